// JSON form of the service-level endpoints.
#pragma once

#include <tinker/json/detail/described.hpp>
#include <tinker/types/service.hpp>

namespace tinker {

TINKER_JSON_STRUCT(supported_model, (model_name, max_context_length, trainable, sampleable))
TINKER_JSON_STRUCT(get_server_capabilities_response, (supported_models))
TINKER_JSON_STRUCT(health_response, (status))
TINKER_JSON_STRUCT(client_config_request, (sdk_version), .defaulted = "sdk_version")
TINKER_JSON_STRUCT(client_config_response,
                   (pjwt_auth_enabled, credential_default_source, sample_dispatch_bytes_semaphore_size,
                    inflight_response_bytes_semaphore_size, parallel_fwdbwd_chunks, proto_compress_fwdbwd,
                    fwdbwd_max_chunk_len, fwdbwd_max_chunk_bytes_count, fwdbwd_dispatch_bytes_semaphore_size,
                    billing_exception_max_pause_duration_sec, sample_no_retries, sample_enable_stuck_detection,
                    sample_max_concurrent_requests, use_pyqwest_transport, create_model_via_load_weights,
                    sample_use_retrieve_futures),
                   .defaulted = "*")
TINKER_JSON_STRUCT(dynamic_config_response, (refresh_interval_sec, sample_cancel_enabled, sample_cancel_max_batch_size),
                   .defaulted = "*")
TINKER_JSON_STRUCT(telemetry_send_request, (events, platform, sdk_version, session_id, process_uuid),
                   .defaulted = "platform, sdk_version, session_id")
TINKER_JSON_STRUCT(telemetry_response, (status))
TINKER_JSON_STRUCT(auth_token_response, (jwt))
TINKER_JSON_STRUCT(error_response, (detail))

/// The status answers have exactly one value.
inline health_response tag_invoke(boost::json::value_to_tag<health_response>, const boost::json::value& jv) {
  auto h = json::detail::read_object<health_response>(jv);
  if (h.status != "ok") throw protocol_error("health_response", "status", "expected \"ok\", got \"" + h.status + "\"");
  return h;
}

inline telemetry_response tag_invoke(boost::json::value_to_tag<telemetry_response>, const boost::json::value& jv) {
  auto t = json::detail::read_object<telemetry_response>(jv);
  if (t.status != "accepted")
    throw protocol_error("telemetry_response", "status", "expected \"accepted\", got \"" + t.status + "\"");
  return t;
}

}  // namespace tinker
