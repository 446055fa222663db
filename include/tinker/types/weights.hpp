// Saving and loading weights (docs/protocol.md §7.1-§7.5, §10.2).
#pragma once

#include <tinker/types/session.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace tinker {

/// save_weights ("save_state"): full training state (adapters + optimizer) under `path` = a name.
struct save_weights_request {
  std::string model_id;
  std::optional<std::string> path;
  std::int64_t seq_id = 0;
  std::optional<std::int64_t> ttl_seconds;  ///< absent = never expires
  bool overwrite = false;
  std::optional<metadata_map> user_metadata;

  friend bool operator==(const save_weights_request&, const save_weights_request&) = default;
};

/// `{"path": "tinker://<model_id>/weights/<name>"}`.
struct save_weights_response {
  std::string path;

  friend bool operator==(const save_weights_response&, const save_weights_response&) = default;
};

/// Named form: `path` = a name. Unnamed form: no `path`, `sampling_session_seq_id` set; the server
/// then creates a sampling session and answers with its id.
struct save_weights_for_sampler_request {
  std::string model_id;
  std::optional<std::string> path;
  std::int64_t seq_id = 0;
  std::optional<std::int64_t> sampling_session_seq_id;
  std::optional<std::int64_t> ttl_seconds;
  std::optional<metadata_map> user_metadata;

  friend bool operator==(const save_weights_for_sampler_request&, const save_weights_for_sampler_request&) = default;
};

struct save_weights_for_sampler_response {
  std::optional<std::string> path;
  std::optional<std::string> sampling_session_id;

  friend bool operator==(const save_weights_for_sampler_response&, const save_weights_for_sampler_response&) = default;
};

/// load_weights. Normal form: `model_id` + `seq_id`. Create-via-load form: `session_id` +
/// `model_seq_id` (+ `base_model`, `user_metadata`).
struct load_weights_request {
  std::optional<std::string> model_id;
  std::optional<std::int64_t> seq_id;
  std::string path;
  bool optimizer = false;
  std::optional<std::string> weights_access_token;
  std::optional<std::string> session_id;
  std::optional<std::int64_t> model_seq_id;
  std::optional<std::string> base_model;
  std::optional<metadata_map> user_metadata;

  friend bool operator==(const load_weights_request&, const load_weights_request&) = default;
};

struct load_weights_response {
  std::optional<std::string> path;
  std::optional<std::string> model_id;

  friend bool operator==(const load_weights_response&, const load_weights_response&) = default;
};

/// `POST /api/v1/weights_info` `{"tinker_path"}` (no `type`).
struct weights_info_request {
  std::string tinker_path;

  friend bool operator==(const weights_info_request&, const weights_info_request&) = default;
};

struct weights_info_response {
  std::string base_model;
  bool is_lora = true;
  std::optional<std::int32_t> lora_rank;
  std::optional<bool> train_unembed;  ///< absent = true
  std::optional<bool> train_mlp;      ///< absent = true
  std::optional<bool> train_attn;     ///< absent = true

  friend bool operator==(const weights_info_response&, const weights_info_response&) = default;
};

}  // namespace tinker
