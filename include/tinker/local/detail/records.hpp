// What the local engine remembers about runs, checkpoints, sessions and samplers, and the JSON it
// persists them as in the data directory.
#pragma once

#include <tinker/json.hpp>
#include <tinker/tinker_path.hpp>
#include <tinker/types.hpp>

#include <boost/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace tinker::local::detail {

/// A training run (= a model id, `<session>:train:<n>`).
struct run_record {
  std::string id;
  std::string owner;         ///< tenant (digest of its API key)
  std::string base_model;    ///< the name the client asked for (an engine model or an alias)
  std::string engine_model;  ///< the engine model it runs on
  lora_config lora;          ///< with the seed filled in
  metadata_map user_metadata;
  std::string session_id;
  timestamp created{};
  timestamp last_request_time{};
  bool corrupted = false;
};

struct checkpoint_record {
  std::string run_id;
  checkpoint_kind kind = checkpoint_kind::weights;
  std::string name;
  std::string owner;
  timestamp time{};
  std::int64_t size_bytes = 0;
  bool is_public = false;
  std::optional<timestamp> expires_at;
  std::optional<metadata_map> user_metadata;

  tinker_path path() const { return tinker_path{"tinker", run_id, kind, name}; }

  checkpoint to_checkpoint() const {
    checkpoint c;
    c.checkpoint_id = path().checkpoint_id();
    c.checkpoint_type = type_of(kind);
    c.time = time;
    c.tinker_path = path().str();
    c.size_bytes = size_bytes;
    c.is_public = is_public;
    c.expires_at = expires_at;
    c.user_metadata = user_metadata;
    return c;
  }
};

struct session_record {
  std::string id;
  std::string owner;
  std::vector<std::string> tags;
  metadata_map user_metadata;
  std::optional<std::string> project_id;
  std::string sdk_version;
  timestamp created{};
  std::vector<std::string> training_run_ids;
  std::vector<std::string> sampler_ids;
  /// Set by the first sessions/{id}/finish call (first call wins), with the reason it gave.
  std::optional<timestamp> finished_at;
  std::optional<boost::json::value> finish_reason;
};

/// A sampling session (= a sampler id, `<session>:sample:<n>`).
struct sampler_record {
  std::string id;
  std::string owner;
  std::string session_id;
  std::string base_model;
  std::string engine_model;
  std::optional<std::string> model_path;  ///< a sampler_weights checkpoint; absent = the base model
  timestamp created{};
  /// Created by an unnamed save_weights_for_sampler: its weights live only in memory and are gone
  /// after a restart.
  bool ephemeral = false;
};

// --- persistence as JSON ----------------------------------------------------------------------

inline boost::json::value to_json_value(const run_record& r) {
  return {{"id", r.id},
          {"owner", r.owner},
          {"base_model", r.base_model},
          {"engine_model", r.engine_model},
          {"lora", boost::json::value_from(r.lora)},
          {"user_metadata", json::detail::to_value(r.user_metadata)},
          {"session_id", r.session_id},
          {"created", format_timestamp(r.created)},
          {"last_request_time", format_timestamp(r.last_request_time)},
          {"corrupted", r.corrupted}};
}

inline timestamp read_time(const json::detail::object_reader& r, std::string_view key) {
  auto s = r.required<std::string>(key);
  auto t = parse_timestamp(s);
  if (!t) r.fail(key, "invalid timestamp '" + s + "'");
  return *t;
}

inline run_record run_from_json(const boost::json::value& v) {
  json::detail::object_reader r(v, "run_record");
  return run_record{r.required<std::string>("id"),         r.required<std::string>("owner"),
                    r.required<std::string>("base_model"), r.required<std::string>("engine_model"),
                    r.required<lora_config>("lora"),       r.optional_or<metadata_map>("user_metadata", {}),
                    r.required<std::string>("session_id"), read_time(r, "created"),
                    read_time(r, "last_request_time"),     r.optional_or("corrupted", false)};
}

inline boost::json::value to_json_value(const checkpoint_record& c) {
  boost::json::object o{{"run_id", c.run_id},   {"kind", to_string(c.kind)},        {"name", c.name},
                        {"owner", c.owner},     {"time", format_timestamp(c.time)}, {"size_bytes", c.size_bytes},
                        {"public", c.is_public}};
  if (c.expires_at) o["expires_at"] = format_timestamp(*c.expires_at);
  if (c.user_metadata) o["user_metadata"] = json::detail::to_value(*c.user_metadata);
  return o;
}

inline checkpoint_record checkpoint_from_json(const boost::json::value& v) {
  json::detail::object_reader r(v, "checkpoint_record");
  checkpoint_record c;
  c.run_id = r.required<std::string>("run_id");
  const auto kind = r.required<std::string>("kind");
  auto parsed = tinker_path::try_parse("tinker://x/" + kind + "/x");
  if (!parsed) r.fail("kind", "unknown checkpoint kind '" + kind + "'");
  c.kind = parsed->kind;
  c.name = r.required<std::string>("name");
  c.owner = r.required<std::string>("owner");
  c.time = read_time(r, "time");
  c.size_bytes = r.optional_or<std::int64_t>("size_bytes", 0);
  c.is_public = r.optional_or("public", false);
  if (r.has("expires_at")) c.expires_at = read_time(r, "expires_at");
  c.user_metadata = r.optional<metadata_map>("user_metadata");
  return c;
}

inline boost::json::value to_json_value(const session_record& s) {
  boost::json::object o{{"id", s.id},
                        {"owner", s.owner},
                        {"tags", json::detail::to_value(s.tags)},
                        {"user_metadata", json::detail::to_value(s.user_metadata)},
                        {"sdk_version", s.sdk_version},
                        {"created", format_timestamp(s.created)},
                        {"training_run_ids", json::detail::to_value(s.training_run_ids)},
                        {"sampler_ids", json::detail::to_value(s.sampler_ids)}};
  if (s.project_id) o["project_id"] = *s.project_id;
  if (s.finished_at) o["finished_at"] = format_timestamp(*s.finished_at);
  if (s.finish_reason) o["finish_reason"] = *s.finish_reason;
  return o;
}

inline session_record session_from_json(const boost::json::value& v) {
  json::detail::object_reader r(v, "session_record");
  session_record s;
  s.id = r.required<std::string>("id");
  s.owner = r.required<std::string>("owner");
  s.tags = r.optional_or<std::vector<std::string>>("tags", {});
  s.user_metadata = r.optional_or<metadata_map>("user_metadata", {});
  s.project_id = r.optional<std::string>("project_id");
  s.sdk_version = r.optional_or<std::string>("sdk_version", "");
  s.created = read_time(r, "created");
  s.training_run_ids = r.optional_or<std::vector<std::string>>("training_run_ids", {});
  s.sampler_ids = r.optional_or<std::vector<std::string>>("sampler_ids", {});
  if (r.has("finished_at")) s.finished_at = read_time(r, "finished_at");
  if (const auto* o = v.as_object().if_contains("finish_reason")) s.finish_reason = *o;
  return s;
}

inline boost::json::value to_json_value(const sampler_record& s) {
  boost::json::object o{{"id", s.id},
                        {"owner", s.owner},
                        {"session_id", s.session_id},
                        {"base_model", s.base_model},
                        {"engine_model", s.engine_model},
                        {"created", format_timestamp(s.created)}};
  if (s.model_path) o["model_path"] = *s.model_path;
  if (s.ephemeral) o["ephemeral"] = true;
  return o;
}

inline sampler_record sampler_from_json(const boost::json::value& v) {
  json::detail::object_reader r(v, "sampler_record");
  return sampler_record{r.required<std::string>("id"),
                        r.required<std::string>("owner"),
                        r.required<std::string>("session_id"),
                        r.required<std::string>("base_model"),
                        r.required<std::string>("engine_model"),
                        r.optional<std::string>("model_path"),
                        read_time(r, "created"),
                        r.optional_or("ephemeral", false)};
}

}  // namespace tinker::local::detail
