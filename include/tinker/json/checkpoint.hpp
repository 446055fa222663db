// JSON form of checkpoints, training runs and their listings (protocol.md §11).
#pragma once

#include <tinker/json/detail/read.hpp>
#include <tinker/json/detail/type_name.hpp>
#include <tinker/json/detail/write.hpp>
#include <tinker/types/checkpoint.hpp>
#include <tinker/types/timestamp.hpp>

#include <boost/json/value_from.hpp>
#include <boost/json/value_to.hpp>

TINKER_JSON_TYPE_NAME(checkpoint)
TINKER_JSON_TYPE_NAME(cursor)
TINKER_JSON_TYPE_NAME(checkpoints_list_response)
TINKER_JSON_TYPE_NAME(checkpoint_archive_url_response)
TINKER_JSON_TYPE_NAME(set_checkpoint_ttl_request)
TINKER_JSON_TYPE_NAME(training_run)
TINKER_JSON_TYPE_NAME(training_runs_response)

namespace tinker {

namespace json::detail {

/// Timestamps travel as ISO-8601 strings. (Its conversions live here, beside it, for ADL.)
struct iso_timestamp {
  timestamp value;
};

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const iso_timestamp& t) {
  jv = format_timestamp(t.value);
}

inline iso_timestamp tag_invoke(boost::json::value_to_tag<iso_timestamp>, const boost::json::value& jv) {
  if (!jv.is_string()) type_mismatch("an ISO-8601 datetime string", jv);
  auto t = parse_timestamp(jv.get_string());
  if (!t) throw protocol_error("", "", "invalid ISO-8601 datetime '" + std::string(jv.get_string()) + "'");
  return {*t};
}

inline std::optional<iso_timestamp> wrap(const std::optional<timestamp>& t) {
  return t ? std::optional<iso_timestamp>(iso_timestamp{*t}) : std::nullopt;
}
inline std::optional<timestamp> unwrap(const std::optional<iso_timestamp>& t) {
  return t ? std::optional<timestamp>(t->value) : std::nullopt;
}

}  // namespace json::detail

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, checkpoint_type t) { jv = to_string(t); }

inline checkpoint_type tag_invoke(boost::json::value_to_tag<checkpoint_type>, const boost::json::value& jv) {
  return json::detail::read_enum<checkpoint_type>(jv, "checkpoint type", parse_checkpoint_type);
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const checkpoint& c) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "checkpoint_id", c.checkpoint_id);
  json::detail::put(o, "checkpoint_type", c.checkpoint_type);
  json::detail::put(o, "time", json::detail::iso_timestamp{c.time});
  json::detail::put(o, "tinker_path", c.tinker_path);
  json::detail::put(o, "size_bytes", c.size_bytes);
  json::detail::put(o, "public", c.is_public);
  json::detail::put(o, "expires_at", json::detail::wrap(c.expires_at));
  json::detail::put(o, "user_metadata", c.user_metadata);
  jv = std::move(o);
}

inline checkpoint tag_invoke(boost::json::value_to_tag<checkpoint>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "checkpoint");
  checkpoint c;
  c.checkpoint_id = r.required<std::string>("checkpoint_id");
  c.checkpoint_type = r.required<checkpoint_type>("checkpoint_type");
  c.time = r.required<json::detail::iso_timestamp>("time").value;
  c.tinker_path = r.required<std::string>("tinker_path");
  c.size_bytes = r.optional<std::int64_t>("size_bytes");
  c.is_public = r.optional_or("public", false);
  c.expires_at = json::detail::unwrap(r.optional<json::detail::iso_timestamp>("expires_at"));
  c.user_metadata = r.optional<metadata_map>("user_metadata");
  return c;
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const cursor& c) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "offset", c.offset);
  json::detail::put(o, "limit", c.limit);
  json::detail::put(o, "total_count", c.total_count);
  jv = std::move(o);
}

inline cursor tag_invoke(boost::json::value_to_tag<cursor>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "cursor");
  return cursor{r.required<std::int64_t>("offset"), r.required<std::int64_t>("limit"),
                r.required<std::int64_t>("total_count")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const checkpoints_list_response& resp) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "checkpoints", resp.checkpoints);
  json::detail::put(o, "cursor", resp.cursor);
  jv = std::move(o);
}

inline checkpoints_list_response tag_invoke(boost::json::value_to_tag<checkpoints_list_response>,
                                            const boost::json::value& jv) {
  json::detail::object_reader r(jv, "checkpoints_list_response");
  return checkpoints_list_response{r.required<std::vector<checkpoint>>("checkpoints"), r.optional<cursor>("cursor")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv,
                       const checkpoint_archive_url_response& resp) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "url", resp.url);
  json::detail::put(o, "expires", json::detail::iso_timestamp{resp.expires});
  jv = std::move(o);
}

inline checkpoint_archive_url_response tag_invoke(boost::json::value_to_tag<checkpoint_archive_url_response>,
                                                  const boost::json::value& jv) {
  json::detail::object_reader r(jv, "checkpoint_archive_url_response");
  return checkpoint_archive_url_response{r.required<std::string>("url"),
                                         r.required<json::detail::iso_timestamp>("expires").value};
}

/// `{"ttl_seconds": <int>}` or, to remove the expiry, an explicit `{"ttl_seconds": null}`.
inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const set_checkpoint_ttl_request& req) {
  boost::json::object o(jv.storage());
  if (req.ttl_seconds)
    json::detail::put(o, "ttl_seconds", *req.ttl_seconds);
  else
    o.emplace("ttl_seconds", nullptr);
  jv = std::move(o);
}

inline set_checkpoint_ttl_request tag_invoke(boost::json::value_to_tag<set_checkpoint_ttl_request>,
                                             const boost::json::value& jv) {
  json::detail::object_reader r(jv, "set_checkpoint_ttl_request");
  if (!r.has("ttl_seconds")) r.fail("ttl_seconds", "missing required field (send null to remove the expiry)");
  return set_checkpoint_ttl_request{r.optional<std::int64_t>("ttl_seconds")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const training_run& t) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "training_run_id", t.training_run_id);
  json::detail::put(o, "base_model", t.base_model);
  json::detail::put(o, "model_owner", t.model_owner);
  json::detail::put(o, "is_lora", t.is_lora);
  json::detail::put(o, "corrupted", t.corrupted);
  json::detail::put(o, "lora_rank", t.lora_rank);
  json::detail::put(o, "last_request_time", json::detail::iso_timestamp{t.last_request_time});
  json::detail::put(o, "last_checkpoint", t.last_checkpoint);
  json::detail::put(o, "last_sampler_checkpoint", t.last_sampler_checkpoint);
  json::detail::put(o, "user_metadata", t.user_metadata);
  jv = std::move(o);
}

inline training_run tag_invoke(boost::json::value_to_tag<training_run>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "training_run");
  training_run t;
  t.training_run_id = r.required<std::string>("training_run_id");
  t.base_model = r.required<std::string>("base_model");
  t.model_owner = r.required<std::string>("model_owner");
  t.is_lora = r.required<bool>("is_lora");
  t.corrupted = r.optional_or("corrupted", false);
  t.lora_rank = r.optional<std::int32_t>("lora_rank");
  t.last_request_time = r.required<json::detail::iso_timestamp>("last_request_time").value;
  t.last_checkpoint = r.optional<checkpoint>("last_checkpoint");
  t.last_sampler_checkpoint = r.optional<checkpoint>("last_sampler_checkpoint");
  t.user_metadata = r.optional<metadata_map>("user_metadata");
  return t;
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const training_runs_response& resp) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "training_runs", resp.training_runs);
  json::detail::put(o, "cursor", resp.cursor);
  jv = std::move(o);
}

inline training_runs_response tag_invoke(boost::json::value_to_tag<training_runs_response>,
                                         const boost::json::value& jv) {
  json::detail::object_reader r(jv, "training_runs_response");
  return training_runs_response{r.required<std::vector<training_run>>("training_runs"), r.required<cursor>("cursor")};
}

}  // namespace tinker
