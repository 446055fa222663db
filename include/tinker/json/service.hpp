// JSON form of the service-level endpoints (protocol.md §12; protocol-delta.md §1-§2).
#pragma once

#include <tinker/json/detail/read.hpp>
#include <tinker/json/detail/type_name.hpp>
#include <tinker/json/detail/write.hpp>
#include <tinker/types/service.hpp>

#include <boost/json/value_from.hpp>
#include <boost/json/value_to.hpp>

TINKER_JSON_TYPE_NAME(supported_model)
TINKER_JSON_TYPE_NAME(get_server_capabilities_response)
TINKER_JSON_TYPE_NAME(health_response)
TINKER_JSON_TYPE_NAME(client_config_request)
TINKER_JSON_TYPE_NAME(client_config_response)
TINKER_JSON_TYPE_NAME(dynamic_config_response)
TINKER_JSON_TYPE_NAME(telemetry_send_request)
TINKER_JSON_TYPE_NAME(telemetry_response)
TINKER_JSON_TYPE_NAME(auth_token_response)
TINKER_JSON_TYPE_NAME(error_response)

namespace tinker {

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const supported_model& m) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "model_name", m.model_name);
  json::detail::put(o, "max_context_length", m.max_context_length);
  json::detail::put(o, "trainable", m.trainable);
  json::detail::put(o, "sampleable", m.sampleable);
  jv = std::move(o);
}

inline supported_model tag_invoke(boost::json::value_to_tag<supported_model>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "supported_model");
  return supported_model{r.optional<std::string>("model_name"), r.optional<std::int64_t>("max_context_length"),
                         r.optional<bool>("trainable"), r.optional<bool>("sampleable")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv,
                       const get_server_capabilities_response& resp) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "supported_models", resp.supported_models);
  jv = std::move(o);
}

inline get_server_capabilities_response tag_invoke(boost::json::value_to_tag<get_server_capabilities_response>,
                                                   const boost::json::value& jv) {
  json::detail::object_reader r(jv, "get_server_capabilities_response");
  return get_server_capabilities_response{r.required<std::vector<supported_model>>("supported_models")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const health_response& h) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "status", h.status);
  jv = std::move(o);
}

inline health_response tag_invoke(boost::json::value_to_tag<health_response>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "health_response");
  auto status = r.required<std::string>("status");
  if (status != "ok") r.fail("status", "expected \"ok\", got \"" + status + "\"");
  return health_response{std::move(status)};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const client_config_request& req) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "sdk_version", req.sdk_version);
  jv = std::move(o);
}

inline client_config_request tag_invoke(boost::json::value_to_tag<client_config_request>,
                                        const boost::json::value& jv) {
  json::detail::object_reader r(jv, "client_config_request");
  return client_config_request{r.optional_or<std::string>("sdk_version", "")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const client_config_response& c) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "pjwt_auth_enabled", c.pjwt_auth_enabled);
  json::detail::put(o, "credential_default_source", c.credential_default_source);
  json::detail::put(o, "sample_dispatch_bytes_semaphore_size", c.sample_dispatch_bytes_semaphore_size);
  json::detail::put(o, "inflight_response_bytes_semaphore_size", c.inflight_response_bytes_semaphore_size);
  json::detail::put(o, "parallel_fwdbwd_chunks", c.parallel_fwdbwd_chunks);
  json::detail::put(o, "proto_compress_fwdbwd", c.proto_compress_fwdbwd);
  json::detail::put(o, "fwdbwd_max_chunk_len", c.fwdbwd_max_chunk_len);
  json::detail::put(o, "fwdbwd_max_chunk_bytes_count", c.fwdbwd_max_chunk_bytes_count);
  json::detail::put(o, "fwdbwd_dispatch_bytes_semaphore_size", c.fwdbwd_dispatch_bytes_semaphore_size);
  json::detail::put(o, "billing_exception_max_pause_duration_sec", c.billing_exception_max_pause_duration_sec);
  json::detail::put(o, "sample_no_retries", c.sample_no_retries);
  json::detail::put(o, "sample_enable_stuck_detection", c.sample_enable_stuck_detection);
  json::detail::put(o, "sample_max_concurrent_requests", c.sample_max_concurrent_requests);
  json::detail::put(o, "use_pyqwest_transport", c.use_pyqwest_transport);
  json::detail::put(o, "create_model_via_load_weights", c.create_model_via_load_weights);
  json::detail::put(o, "sample_use_retrieve_futures", c.sample_use_retrieve_futures);
  jv = std::move(o);
}

/// Every field optional with its default; unknown fields ignored.
inline client_config_response tag_invoke(boost::json::value_to_tag<client_config_response>,
                                         const boost::json::value& jv) {
  json::detail::object_reader r(jv, "client_config_response");
  client_config_response c;
  c.pjwt_auth_enabled = r.optional_or("pjwt_auth_enabled", c.pjwt_auth_enabled);
  c.credential_default_source = r.optional_or("credential_default_source", c.credential_default_source);
  c.sample_dispatch_bytes_semaphore_size =
      r.optional_or("sample_dispatch_bytes_semaphore_size", c.sample_dispatch_bytes_semaphore_size);
  c.inflight_response_bytes_semaphore_size =
      r.optional_or("inflight_response_bytes_semaphore_size", c.inflight_response_bytes_semaphore_size);
  c.parallel_fwdbwd_chunks = r.optional_or("parallel_fwdbwd_chunks", c.parallel_fwdbwd_chunks);
  c.proto_compress_fwdbwd = r.optional_or("proto_compress_fwdbwd", c.proto_compress_fwdbwd);
  c.fwdbwd_max_chunk_len = r.optional_or("fwdbwd_max_chunk_len", c.fwdbwd_max_chunk_len);
  c.fwdbwd_max_chunk_bytes_count = r.optional_or("fwdbwd_max_chunk_bytes_count", c.fwdbwd_max_chunk_bytes_count);
  c.fwdbwd_dispatch_bytes_semaphore_size =
      r.optional_or("fwdbwd_dispatch_bytes_semaphore_size", c.fwdbwd_dispatch_bytes_semaphore_size);
  c.billing_exception_max_pause_duration_sec =
      r.optional_or("billing_exception_max_pause_duration_sec", c.billing_exception_max_pause_duration_sec);
  c.sample_no_retries = r.optional_or("sample_no_retries", c.sample_no_retries);
  c.sample_enable_stuck_detection = r.optional_or("sample_enable_stuck_detection", c.sample_enable_stuck_detection);
  c.sample_max_concurrent_requests = r.optional_or("sample_max_concurrent_requests", c.sample_max_concurrent_requests);
  c.use_pyqwest_transport = r.optional_or("use_pyqwest_transport", c.use_pyqwest_transport);
  c.create_model_via_load_weights = r.optional_or("create_model_via_load_weights", c.create_model_via_load_weights);
  c.sample_use_retrieve_futures = r.optional_or("sample_use_retrieve_futures", c.sample_use_retrieve_futures);
  return c;
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const dynamic_config_response& c) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "refresh_interval_sec", c.refresh_interval_sec);
  json::detail::put(o, "sample_cancel_enabled", c.sample_cancel_enabled);
  json::detail::put(o, "sample_cancel_max_batch_size", c.sample_cancel_max_batch_size);
  jv = std::move(o);
}

inline dynamic_config_response tag_invoke(boost::json::value_to_tag<dynamic_config_response>,
                                          const boost::json::value& jv) {
  json::detail::object_reader r(jv, "dynamic_config_response");
  dynamic_config_response c;
  c.refresh_interval_sec = r.optional_or("refresh_interval_sec", c.refresh_interval_sec);
  c.sample_cancel_enabled = r.optional_or("sample_cancel_enabled", c.sample_cancel_enabled);
  c.sample_cancel_max_batch_size = r.optional_or("sample_cancel_max_batch_size", c.sample_cancel_max_batch_size);
  return c;
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const telemetry_send_request& req) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "events", req.events);
  json::detail::put(o, "platform", req.platform);
  json::detail::put(o, "sdk_version", req.sdk_version);
  json::detail::put(o, "session_id", req.session_id);
  json::detail::put(o, "process_uuid", req.process_uuid);
  jv = std::move(o);
}

inline telemetry_send_request tag_invoke(boost::json::value_to_tag<telemetry_send_request>,
                                         const boost::json::value& jv) {
  json::detail::object_reader r(jv, "telemetry_send_request");
  return telemetry_send_request{r.required<std::vector<boost::json::object>>("events"),
                                r.optional_or<std::string>("platform", ""),
                                r.optional_or<std::string>("sdk_version", ""),
                                r.optional_or<std::string>("session_id", ""), r.optional<std::string>("process_uuid")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const telemetry_response& t) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "status", t.status);
  jv = std::move(o);
}

inline telemetry_response tag_invoke(boost::json::value_to_tag<telemetry_response>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "telemetry_response");
  auto status = r.required<std::string>("status");
  if (status != "accepted") r.fail("status", "expected \"accepted\", got \"" + status + "\"");
  return telemetry_response{std::move(status)};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const auth_token_response& a) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "jwt", a.jwt);
  jv = std::move(o);
}

inline auth_token_response tag_invoke(boost::json::value_to_tag<auth_token_response>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "auth_token_response");
  return auth_token_response{r.required<std::string>("jwt")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const error_response& e) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "detail", e.detail);
  jv = std::move(o);
}

inline error_response tag_invoke(boost::json::value_to_tag<error_response>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "error_response");
  return error_response{r.required<std::string>("detail")};
}

}  // namespace tinker
