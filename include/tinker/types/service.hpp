// Service-level endpoints: capabilities, health, client configuration, telemetry
// (docs/protocol.md §4.4, §5.7).
#pragma once

#include <boost/json/object.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tinker {

struct supported_model {
  std::optional<std::string> model_name;
  std::optional<std::int64_t> max_context_length;
  std::optional<bool> trainable;
  std::optional<bool> sampleable;

  friend bool operator==(const supported_model&, const supported_model&) = default;
};

struct get_server_capabilities_response {
  std::vector<supported_model> supported_models;

  friend bool operator==(const get_server_capabilities_response&, const get_server_capabilities_response&) = default;
};

/// `GET /api/v1/healthz` -> `{"status": "ok"}`.
struct health_response {
  std::string status = "ok";

  friend bool operator==(const health_response&, const health_response&) = default;
};

/// `POST /api/v1/client/config` and `/client/dynamic_config` body.
struct client_config_request {
  std::string sdk_version;

  friend bool operator==(const client_config_request&, const client_config_request&) = default;
};

/// Server-chosen client settings; every field is optional on the wire with these defaults.
struct client_config_response {
  bool pjwt_auth_enabled = false;
  std::string credential_default_source = "api_key";
  std::int64_t sample_dispatch_bytes_semaphore_size = 10 * 1024 * 1024;
  std::int64_t inflight_response_bytes_semaphore_size = 50 * 1024 * 1024;
  bool parallel_fwdbwd_chunks = true;
  bool proto_compress_fwdbwd = false;
  std::int64_t fwdbwd_max_chunk_len = 1024;
  std::int64_t fwdbwd_max_chunk_bytes_count = 5'000'000;
  std::int64_t fwdbwd_dispatch_bytes_semaphore_size = 50'000'000;
  std::int64_t billing_exception_max_pause_duration_sec = 3600;
  bool sample_no_retries = false;
  bool sample_enable_stuck_detection = true;
  std::int64_t sample_max_concurrent_requests = 2000;
  bool use_pyqwest_transport = true;
  bool create_model_via_load_weights = false;
  bool sample_use_retrieve_futures = false;  ///< newer SDKs: batched completion polling

  friend bool operator==(const client_config_response&, const client_config_response&) = default;
};

struct dynamic_config_response {
  std::int64_t refresh_interval_sec = 300;
  bool sample_cancel_enabled = false;
  std::int64_t sample_cancel_max_batch_size = 64;

  friend bool operator==(const dynamic_config_response&, const dynamic_config_response&) = default;
};

/// `POST /api/v1/telemetry`. Events are free-form objects (the server only stores them).
struct telemetry_send_request {
  std::vector<boost::json::object> events;
  std::string platform;
  std::string sdk_version;
  std::string session_id;
  std::optional<std::string> process_uuid;

  friend bool operator==(const telemetry_send_request&, const telemetry_send_request&) = default;
};

/// Must be exactly `{"status": "accepted"}`.
struct telemetry_response {
  std::string status = "accepted";

  friend bool operator==(const telemetry_response&, const telemetry_response&) = default;
};

/// `POST /api/v1/auth/token` -> `{"jwt"}` (JWT mode only).
struct auth_token_response {
  std::string jwt;

  friend bool operator==(const auth_token_response&, const auth_token_response&) = default;
};

/// A server's error body, `{"detail": "..."}` (FastAPI convention; the local engine uses it).
struct error_response {
  std::string detail;

  friend bool operator==(const error_response&, const error_response&) = default;
};

}  // namespace tinker
