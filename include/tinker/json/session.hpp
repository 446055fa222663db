// JSON form of sessions, models, samplers and weights (protocol.md §4, §8.1, §8.6-§8.10, §9.3, §11.8, §11.10).
#pragma once

#include <tinker/json/detail/read.hpp>
#include <tinker/json/detail/type_name.hpp>
#include <tinker/json/detail/write.hpp>
#include <tinker/types/session.hpp>
#include <tinker/types/weights.hpp>

#include <boost/json/value_from.hpp>
#include <boost/json/value_to.hpp>

TINKER_JSON_TYPE_NAME(create_session_request)
TINKER_JSON_TYPE_NAME(create_session_response)
TINKER_JSON_TYPE_NAME(session_heartbeat_request)
TINKER_JSON_TYPE_NAME(session_heartbeat_response)
TINKER_JSON_TYPE_NAME(create_sampling_session_request)
TINKER_JSON_TYPE_NAME(create_sampling_session_response)
TINKER_JSON_TYPE_NAME(lora_config)
TINKER_JSON_TYPE_NAME(create_model_request)
TINKER_JSON_TYPE_NAME(create_model_response)
TINKER_JSON_TYPE_NAME(get_info_request)
TINKER_JSON_TYPE_NAME(model_data)
TINKER_JSON_TYPE_NAME(get_info_response)
TINKER_JSON_TYPE_NAME(unload_model_request)
TINKER_JSON_TYPE_NAME(unload_model_response)
TINKER_JSON_TYPE_NAME(get_sampler_response)
TINKER_JSON_TYPE_NAME(list_sessions_response)
TINKER_JSON_TYPE_NAME(get_session_response)
TINKER_JSON_TYPE_NAME(set_session_project_request)
TINKER_JSON_TYPE_NAME(trace_export_response)
TINKER_JSON_TYPE_NAME(save_weights_request)
TINKER_JSON_TYPE_NAME(save_weights_response)
TINKER_JSON_TYPE_NAME(save_weights_for_sampler_request)
TINKER_JSON_TYPE_NAME(save_weights_for_sampler_response)
TINKER_JSON_TYPE_NAME(load_weights_request)
TINKER_JSON_TYPE_NAME(load_weights_response)
TINKER_JSON_TYPE_NAME(weights_info_request)
TINKER_JSON_TYPE_NAME(weights_info_response)

namespace tinker {

// --- sessions ---------------------------------------------------------------------------------------

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const create_session_request& req) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "tags", req.tags);
  json::detail::put(o, "user_metadata", req.user_metadata);
  json::detail::put(o, "sdk_version", req.sdk_version);
  json::detail::put(o, "project_id", req.project_id);
  json::detail::put_type(o, "create_session");
  jv = std::move(o);
}

inline create_session_request tag_invoke(boost::json::value_to_tag<create_session_request>,
                                         const boost::json::value& jv) {
  json::detail::object_reader r(jv, "create_session_request");
  return create_session_request{r.optional_or<std::vector<std::string>>("tags", {}),
                                r.optional_or<metadata_map>("user_metadata", {}),
                                r.optional_or<std::string>("sdk_version", ""), r.optional<std::string>("project_id")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const create_session_response& resp) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "session_id", resp.session_id);
  json::detail::put(o, "info_message", resp.info_message);
  json::detail::put(o, "warning_message", resp.warning_message);
  json::detail::put(o, "error_message", resp.error_message);
  json::detail::put_type(o, "create_session");
  jv = std::move(o);
}

inline create_session_response tag_invoke(boost::json::value_to_tag<create_session_response>,
                                          const boost::json::value& jv) {
  json::detail::object_reader r(jv, "create_session_response");
  return create_session_response{r.required<std::string>("session_id"), r.optional<std::string>("info_message"),
                                 r.optional<std::string>("warning_message"), r.optional<std::string>("error_message")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const session_heartbeat_request& req) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "session_id", req.session_id);
  json::detail::put_type(o, "session_heartbeat");
  jv = std::move(o);
}

inline session_heartbeat_request tag_invoke(boost::json::value_to_tag<session_heartbeat_request>,
                                            const boost::json::value& jv) {
  json::detail::object_reader r(jv, "session_heartbeat_request");
  return session_heartbeat_request{r.required<std::string>("session_id")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const session_heartbeat_response&) {
  boost::json::object o(jv.storage());
  json::detail::put_type(o, "session_heartbeat");
  jv = std::move(o);
}

inline session_heartbeat_response tag_invoke(boost::json::value_to_tag<session_heartbeat_response>,
                                             const boost::json::value& jv) {
  json::detail::object_reader(jv, "session_heartbeat_response");  // must be an object; no required fields
  return {};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv,
                       const create_sampling_session_request& req) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "session_id", req.session_id);
  json::detail::put(o, "sampling_session_seq_id", req.sampling_session_seq_id);
  json::detail::put(o, "base_model", req.base_model);
  json::detail::put(o, "model_path", req.model_path);
  json::detail::put_type(o, "create_sampling_session");
  jv = std::move(o);
}

inline create_sampling_session_request tag_invoke(boost::json::value_to_tag<create_sampling_session_request>,
                                                  const boost::json::value& jv) {
  json::detail::object_reader r(jv, "create_sampling_session_request");
  return create_sampling_session_request{r.required<std::string>("session_id"),
                                         r.required<std::int64_t>("sampling_session_seq_id"),
                                         r.optional<std::string>("base_model"), r.optional<std::string>("model_path")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv,
                       const create_sampling_session_response& resp) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "sampling_session_id", resp.sampling_session_id);
  json::detail::put_type(o, "create_sampling_session");
  jv = std::move(o);
}

inline create_sampling_session_response tag_invoke(boost::json::value_to_tag<create_sampling_session_response>,
                                                   const boost::json::value& jv) {
  json::detail::object_reader r(jv, "create_sampling_session_response");
  return create_sampling_session_response{r.required<std::string>("sampling_session_id")};
}

// --- models -----------------------------------------------------------------------------------------

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const lora_config& c) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "rank", c.rank);
  json::detail::put(o, "seed", c.seed);
  json::detail::put(o, "train_unembed", c.train_unembed);
  json::detail::put(o, "train_mlp", c.train_mlp);
  json::detail::put(o, "train_attn", c.train_attn);
  jv = std::move(o);
}

inline lora_config tag_invoke(boost::json::value_to_tag<lora_config>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "lora_config");
  return lora_config{r.required<std::int32_t>("rank"), r.optional<std::int64_t>("seed"),
                     r.optional_or("train_unembed", true), r.optional_or("train_mlp", true),
                     r.optional_or("train_attn", true)};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const create_model_request& req) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "session_id", req.session_id);
  json::detail::put(o, "model_seq_id", req.model_seq_id);
  json::detail::put(o, "base_model", req.base_model);
  json::detail::put(o, "user_metadata", req.user_metadata);
  json::detail::put(o, "lora_config", req.lora_config);
  json::detail::put_type(o, "create_model");
  jv = std::move(o);
}

inline create_model_request tag_invoke(boost::json::value_to_tag<create_model_request>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "create_model_request");
  return create_model_request{r.required<std::string>("session_id"), r.required<std::int64_t>("model_seq_id"),
                              r.required<std::string>("base_model"), r.optional<metadata_map>("user_metadata"),
                              r.optional<lora_config>("lora_config")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const create_model_response& resp) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "model_id", resp.model_id);
  json::detail::put_type(o, "create_model");
  jv = std::move(o);
}

inline create_model_response tag_invoke(boost::json::value_to_tag<create_model_response>,
                                        const boost::json::value& jv) {
  json::detail::object_reader r(jv, "create_model_response");
  return create_model_response{r.required<std::string>("model_id")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const get_info_request& req) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "model_id", req.model_id);
  json::detail::put_type(o, "get_info");
  jv = std::move(o);
}

inline get_info_request tag_invoke(boost::json::value_to_tag<get_info_request>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "get_info_request");
  return get_info_request{r.required<std::string>("model_id")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const model_data& d) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "arch", d.arch);
  json::detail::put(o, "model_name", d.model_name);
  json::detail::put(o, "tokenizer_id", d.tokenizer_id);
  jv = std::move(o);
}

inline model_data tag_invoke(boost::json::value_to_tag<model_data>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "model_data");
  return model_data{r.optional<std::string>("arch"), r.optional<std::string>("model_name"),
                    r.optional<std::string>("tokenizer_id")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const get_info_response& resp) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "model_data", resp.model_data);
  json::detail::put(o, "model_id", resp.model_id);
  json::detail::put(o, "is_lora", resp.is_lora);
  json::detail::put(o, "lora_rank", resp.lora_rank);
  json::detail::put(o, "model_name", resp.model_name);
  json::detail::put_type(o, "get_info");
  jv = std::move(o);
}

inline get_info_response tag_invoke(boost::json::value_to_tag<get_info_response>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "get_info_response");
  return get_info_response{r.required<model_data>("model_data"), r.required<std::string>("model_id"),
                           r.optional<bool>("is_lora"), r.optional<std::int32_t>("lora_rank"),
                           r.optional<std::string>("model_name")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const unload_model_request& req) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "model_id", req.model_id);
  json::detail::put_type(o, "unload_model");
  jv = std::move(o);
}

inline unload_model_request tag_invoke(boost::json::value_to_tag<unload_model_request>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "unload_model_request");
  return unload_model_request{r.required<std::string>("model_id")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const unload_model_response& resp) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "model_id", resp.model_id);
  json::detail::put_type(o, "unload_model");
  jv = std::move(o);
}

inline unload_model_response tag_invoke(boost::json::value_to_tag<unload_model_response>,
                                        const boost::json::value& jv) {
  json::detail::object_reader r(jv, "unload_model_response");
  return unload_model_response{r.required<std::string>("model_id")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const get_sampler_response& resp) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "sampler_id", resp.sampler_id);
  json::detail::put(o, "base_model", resp.base_model);
  json::detail::put(o, "model_path", resp.model_path);
  jv = std::move(o);
}

inline get_sampler_response tag_invoke(boost::json::value_to_tag<get_sampler_response>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "get_sampler_response");
  return get_sampler_response{r.required<std::string>("sampler_id"), r.required<std::string>("base_model"),
                              r.optional<std::string>("model_path")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const list_sessions_response& resp) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "sessions", resp.sessions);
  jv = std::move(o);
}

inline list_sessions_response tag_invoke(boost::json::value_to_tag<list_sessions_response>,
                                         const boost::json::value& jv) {
  json::detail::object_reader r(jv, "list_sessions_response");
  return list_sessions_response{r.required<std::vector<std::string>>("sessions")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const get_session_response& resp) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "training_run_ids", resp.training_run_ids);
  json::detail::put(o, "sampler_ids", resp.sampler_ids);
  jv = std::move(o);
}

inline get_session_response tag_invoke(boost::json::value_to_tag<get_session_response>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "get_session_response");
  return get_session_response{r.required<std::vector<std::string>>("training_run_ids"),
                              r.required<std::vector<std::string>>("sampler_ids")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const set_session_project_request& req) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "project_id", req.project_id);
  jv = std::move(o);
}

inline set_session_project_request tag_invoke(boost::json::value_to_tag<set_session_project_request>,
                                              const boost::json::value& jv) {
  json::detail::object_reader r(jv, "set_session_project_request");
  return set_session_project_request{r.required<std::string>("project_id")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, trace_export_status s) {
  jv = to_string(s);
}

/// Any string is a status: ones this library does not know read as trace_export_status::unknown.
inline trace_export_status tag_invoke(boost::json::value_to_tag<trace_export_status>, const boost::json::value& jv) {
  if (!jv.is_string()) json::detail::type_mismatch("a string", jv);
  return parse_trace_export_status(jv.get_string());
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const trace_export_response& resp) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "status", resp.status);
  json::detail::put(o, "url", resp.url);
  json::detail::put(o, "error", resp.error);
  jv = std::move(o);
}

inline trace_export_response tag_invoke(boost::json::value_to_tag<trace_export_response>,
                                        const boost::json::value& jv) {
  json::detail::object_reader r(jv, "trace_export_response");
  return trace_export_response{r.required<trace_export_status>("status"), r.optional<std::string>("url"),
                               r.optional<std::string>("error")};
}

// --- weights ----------------------------------------------------------------------------------------

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const save_weights_request& req) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "model_id", req.model_id);
  json::detail::put(o, "path", req.path);
  json::detail::put(o, "seq_id", req.seq_id);
  json::detail::put(o, "ttl_seconds", req.ttl_seconds);
  json::detail::put(o, "overwrite", req.overwrite);
  json::detail::put(o, "user_metadata", req.user_metadata);
  json::detail::put_type(o, "save_weights");
  jv = std::move(o);
}

inline save_weights_request tag_invoke(boost::json::value_to_tag<save_weights_request>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "save_weights_request");
  return save_weights_request{r.required<std::string>("model_id"),      r.optional<std::string>("path"),
                              r.optional_or<std::int64_t>("seq_id", 0), r.optional<std::int64_t>("ttl_seconds"),
                              r.optional_or("overwrite", false),        r.optional<metadata_map>("user_metadata")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const save_weights_response& resp) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "path", resp.path);
  json::detail::put_type(o, "save_weights");
  jv = std::move(o);
}

inline save_weights_response tag_invoke(boost::json::value_to_tag<save_weights_response>,
                                        const boost::json::value& jv) {
  json::detail::object_reader r(jv, "save_weights_response");
  return save_weights_response{r.required<std::string>("path")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv,
                       const save_weights_for_sampler_request& req) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "model_id", req.model_id);
  json::detail::put(o, "path", req.path);
  json::detail::put(o, "seq_id", req.seq_id);
  json::detail::put(o, "sampling_session_seq_id", req.sampling_session_seq_id);
  json::detail::put(o, "ttl_seconds", req.ttl_seconds);
  json::detail::put(o, "user_metadata", req.user_metadata);
  json::detail::put_type(o, "save_weights_for_sampler");
  jv = std::move(o);
}

inline save_weights_for_sampler_request tag_invoke(boost::json::value_to_tag<save_weights_for_sampler_request>,
                                                   const boost::json::value& jv) {
  json::detail::object_reader r(jv, "save_weights_for_sampler_request");
  return save_weights_for_sampler_request{
      r.required<std::string>("model_id"),      r.optional<std::string>("path"),
      r.optional_or<std::int64_t>("seq_id", 0), r.optional<std::int64_t>("sampling_session_seq_id"),
      r.optional<std::int64_t>("ttl_seconds"),  r.optional<metadata_map>("user_metadata")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv,
                       const save_weights_for_sampler_response& resp) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "path", resp.path);
  json::detail::put(o, "sampling_session_id", resp.sampling_session_id);
  json::detail::put_type(o, "save_weights_for_sampler");
  jv = std::move(o);
}

inline save_weights_for_sampler_response tag_invoke(boost::json::value_to_tag<save_weights_for_sampler_response>,
                                                    const boost::json::value& jv) {
  json::detail::object_reader r(jv, "save_weights_for_sampler_response");
  return save_weights_for_sampler_response{r.optional<std::string>("path"),
                                           r.optional<std::string>("sampling_session_id")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const load_weights_request& req) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "model_id", req.model_id);
  json::detail::put(o, "seq_id", req.seq_id);
  json::detail::put(o, "path", req.path);
  json::detail::put(o, "optimizer", req.optimizer);
  json::detail::put(o, "weights_access_token", req.weights_access_token);
  json::detail::put(o, "session_id", req.session_id);
  json::detail::put(o, "model_seq_id", req.model_seq_id);
  json::detail::put(o, "base_model", req.base_model);
  json::detail::put(o, "user_metadata", req.user_metadata);
  json::detail::put_type(o, "load_weights");
  jv = std::move(o);
}

inline load_weights_request tag_invoke(boost::json::value_to_tag<load_weights_request>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "load_weights_request");
  load_weights_request req;
  req.model_id = r.optional<std::string>("model_id");
  req.seq_id = r.optional<std::int64_t>("seq_id");
  req.path = r.required<std::string>("path");
  req.optimizer = r.optional_or("optimizer", false);
  req.weights_access_token = r.optional<std::string>("weights_access_token");
  req.session_id = r.optional<std::string>("session_id");
  req.model_seq_id = r.optional<std::int64_t>("model_seq_id");
  req.base_model = r.optional<std::string>("base_model");
  req.user_metadata = r.optional<metadata_map>("user_metadata");
  if (!req.model_id && !req.session_id) r.fail("model_id", "missing: give model_id (or session_id + model_seq_id)");
  return req;
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const load_weights_response& resp) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "path", resp.path);
  json::detail::put(o, "model_id", resp.model_id);
  json::detail::put_type(o, "load_weights");
  jv = std::move(o);
}

inline load_weights_response tag_invoke(boost::json::value_to_tag<load_weights_response>,
                                        const boost::json::value& jv) {
  json::detail::object_reader r(jv, "load_weights_response");
  return load_weights_response{r.optional<std::string>("path"), r.optional<std::string>("model_id")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const weights_info_request& req) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "tinker_path", req.tinker_path);
  jv = std::move(o);
}

inline weights_info_request tag_invoke(boost::json::value_to_tag<weights_info_request>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "weights_info_request");
  return weights_info_request{r.required<std::string>("tinker_path")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const weights_info_response& resp) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "base_model", resp.base_model);
  json::detail::put(o, "is_lora", resp.is_lora);
  json::detail::put(o, "lora_rank", resp.lora_rank);
  json::detail::put(o, "train_unembed", resp.train_unembed);
  json::detail::put(o, "train_mlp", resp.train_mlp);
  json::detail::put(o, "train_attn", resp.train_attn);
  jv = std::move(o);
}

inline weights_info_response tag_invoke(boost::json::value_to_tag<weights_info_response>,
                                        const boost::json::value& jv) {
  json::detail::object_reader r(jv, "weights_info_response");
  return weights_info_response{r.required<std::string>("base_model"), r.required<bool>("is_lora"),
                               r.optional<std::int32_t>("lora_rank"), r.optional<bool>("train_unembed"),
                               r.optional<bool>("train_mlp"),         r.optional<bool>("train_attn")};
}

}  // namespace tinker
