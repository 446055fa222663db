// Sessions and models: create_session, heartbeat, sampling sessions, create_model, get_info,
// unload_model, the session REST resources (docs/protocol.md §4, §7.1, §11.1).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tinker {

/// Free-form string metadata attached to sessions, models and checkpoints.
using metadata_map = std::map<std::string, std::string>;

/// `{"tags", "user_metadata", "sdk_version", "project_id"?, "type": "create_session"}`.
struct create_session_request {
  std::vector<std::string> tags;
  metadata_map user_metadata;
  std::string sdk_version;
  std::optional<std::string> project_id;

  friend bool operator==(const create_session_request&, const create_session_request&) = default;
};

struct create_session_response {
  std::string session_id;
  std::optional<std::string> info_message;
  std::optional<std::string> warning_message;
  std::optional<std::string> error_message;

  friend bool operator==(const create_session_response&, const create_session_response&) = default;
};

/// `{"session_id", "type": "session_heartbeat"}` -> `{"type": "session_heartbeat"}`.
struct session_heartbeat_request {
  std::string session_id;

  friend bool operator==(const session_heartbeat_request&, const session_heartbeat_request&) = default;
};

struct session_heartbeat_response {
  friend bool operator==(const session_heartbeat_response&, const session_heartbeat_response&) = default;
};

/// One of `base_model` / `model_path` (a `tinker://.../sampler_weights/...` path) is set.
struct create_sampling_session_request {
  std::string session_id;
  std::int64_t sampling_session_seq_id = 0;
  std::optional<std::string> base_model;
  std::optional<std::string> model_path;

  friend bool operator==(const create_sampling_session_request&, const create_sampling_session_request&) = default;
};

struct create_sampling_session_response {
  std::string sampling_session_id;

  friend bool operator==(const create_sampling_session_response&, const create_sampling_session_response&) = default;
};

/// LoRA adapter configuration; at least one `train_*` must be true.
struct lora_config {
  std::int32_t rank = 32;
  std::optional<std::int64_t> seed;  ///< absent = server picks one
  bool train_unembed = true;
  bool train_mlp = true;
  bool train_attn = true;

  friend bool operator==(const lora_config&, const lora_config&) = default;
};

/// `create_model` (a future whose result is create_model_response).
struct create_model_request {
  std::string session_id;
  std::int64_t model_seq_id = 0;
  std::string base_model;
  std::optional<metadata_map> user_metadata;
  std::optional<tinker::lora_config> lora_config;

  friend bool operator==(const create_model_request&, const create_model_request&) = default;
};

/// `{"model_id": "<session>:train:<n>", "type": "create_model"}`.
struct create_model_response {
  std::string model_id;

  friend bool operator==(const create_model_response&, const create_model_response&) = default;
};

struct get_info_request {
  std::string model_id;

  friend bool operator==(const get_info_request&, const get_info_request&) = default;
};

struct model_data {
  std::optional<std::string> arch;
  std::optional<std::string> model_name;
  std::optional<std::string> tokenizer_id;

  friend bool operator==(const model_data&, const model_data&) = default;
};

struct get_info_response {
  tinker::model_data model_data;
  std::string model_id;
  std::optional<bool> is_lora;
  std::optional<std::int32_t> lora_rank;
  std::optional<std::string> model_name;

  friend bool operator==(const get_info_response&, const get_info_response&) = default;
};

struct unload_model_request {
  std::string model_id;

  friend bool operator==(const unload_model_request&, const unload_model_request&) = default;
};

struct unload_model_response {
  std::string model_id;

  friend bool operator==(const unload_model_response&, const unload_model_response&) = default;
};

/// `GET /api/v1/samplers/{id}`.
struct get_sampler_response {
  std::string sampler_id;
  std::string base_model;
  std::optional<std::string> model_path;

  friend bool operator==(const get_sampler_response&, const get_sampler_response&) = default;
};

/// `GET /api/v1/sessions?limit&offset&access_scope` -> `{"sessions": [id, ...]}`.
struct list_sessions_response {
  std::vector<std::string> sessions;

  friend bool operator==(const list_sessions_response&, const list_sessions_response&) = default;
};

/// `GET /api/v1/sessions/{id}` -> `{"training_run_ids", "sampler_ids"}`.
struct get_session_response {
  std::vector<std::string> training_run_ids;
  std::vector<std::string> sampler_ids;

  friend bool operator==(const get_session_response&, const get_session_response&) = default;
};

/// `PUT /api/v1/sessions/{id}/project` body: moves a session into a project (2xx, body ignored).
struct set_session_project_request {
  std::string project_id;

  friend bool operator==(const set_session_project_request&, const set_session_project_request&) = default;
};

/// The state of a session trace export. Servers may add states: those read as `unknown`, which a
/// client should treat like `pending` or report, but never fail to decode.
enum class trace_export_status { pending, ready, failed, unknown };

constexpr std::string_view to_string(trace_export_status s) noexcept {
  switch (s) {
    case trace_export_status::pending: return "pending";
    case trace_export_status::ready: return "ready";
    case trace_export_status::failed: return "failed";
    case trace_export_status::unknown: return "unknown";
  }
  return "unknown";
}

/// Unknown strings map to trace_export_status::unknown.
constexpr trace_export_status parse_trace_export_status(std::string_view s) noexcept {
  for (auto t : {trace_export_status::pending, trace_export_status::ready, trace_export_status::failed})
    if (to_string(t) == s) return t;
  return trace_export_status::unknown;
}

/// `GET /api/v1/sessions/{id}/trace_export` -> `{"status", "url"?, "error"?}`. The SDK polls every
/// 5 s while pending; `ready` comes with `url` (a signed URL, plain GET without auth, ~1 h), `failed`
/// with `error`. (The codec does not enforce those pairings: the caller reports a missing one.)
struct trace_export_response {
  trace_export_status status = trace_export_status::pending;
  std::optional<std::string> url;
  std::optional<std::string> error;

  friend bool operator==(const trace_export_response&, const trace_export_response&) = default;
};

}  // namespace tinker
