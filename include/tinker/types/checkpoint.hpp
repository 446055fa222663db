// Checkpoints, training runs and their REST listings (docs/protocol.md §10).
#pragma once

#include <tinker/types/session.hpp>
#include <tinker/types/timestamp.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tinker {

/// The longest time to live a checkpoint may be given: ten years (docs/protocol.md §10.3), in seconds.
inline constexpr std::int64_t max_checkpoint_ttl_seconds = (10ll * 365 + 3) * 86'400;  // with leap days

/// "training" = full state saved by save_state (tinker://.../weights/...); "sampler" = weights for
/// sampling (tinker://.../sampler_weights/...); "external" = exported layout (newer servers).
enum class checkpoint_type { training, sampler, external };

constexpr std::string_view to_string(checkpoint_type t) noexcept {
  switch (t) {
    case checkpoint_type::training: return "training";
    case checkpoint_type::sampler: return "sampler";
    case checkpoint_type::external: return "external";
  }
  return "training";
}

constexpr std::optional<checkpoint_type> parse_checkpoint_type(std::string_view s) noexcept {
  for (auto t : {checkpoint_type::training, checkpoint_type::sampler, checkpoint_type::external})
    if (to_string(t) == s) return t;
  return std::nullopt;
}

struct checkpoint {
  std::string checkpoint_id;  ///< `weights/<name>` or `sampler_weights/<name>`
  tinker::checkpoint_type checkpoint_type = tinker::checkpoint_type::training;
  timestamp time;
  std::string tinker_path;
  std::optional<std::int64_t> size_bytes;
  bool is_public = false;  ///< JSON key "public"
  std::optional<timestamp> expires_at;
  std::optional<metadata_map> user_metadata;

  friend bool operator==(const checkpoint&, const checkpoint&) = default;
};

/// Offset/limit paging: the next page starts at offset + limit while that is < total_count.
struct cursor {
  std::int64_t offset = 0;
  std::int64_t limit = 0;
  std::int64_t total_count = 0;

  friend bool operator==(const cursor&, const cursor&) = default;
};

struct checkpoints_list_response {
  std::vector<checkpoint> checkpoints;
  std::optional<tinker::cursor> cursor;

  friend bool operator==(const checkpoints_list_response&, const checkpoints_list_response&) = default;
};

/// A signed, expiring download URL for a checkpoint archive.
struct checkpoint_archive_url_response {
  std::string url;
  timestamp expires;

  friend bool operator==(const checkpoint_archive_url_response&, const checkpoint_archive_url_response&) = default;
};

/// `PUT .../ttl` body; null (absent here) removes the expiry and is sent explicitly as null.
struct set_checkpoint_ttl_request {
  std::optional<std::int64_t> ttl_seconds;

  friend bool operator==(const set_checkpoint_ttl_request&, const set_checkpoint_ttl_request&) = default;
};

struct training_run {
  std::string training_run_id;
  std::string base_model;
  std::string model_owner;
  bool is_lora = true;
  bool corrupted = false;
  std::optional<std::int32_t> lora_rank;
  timestamp last_request_time;
  std::optional<checkpoint> last_checkpoint;
  std::optional<checkpoint> last_sampler_checkpoint;
  std::optional<metadata_map> user_metadata;

  friend bool operator==(const training_run&, const training_run&) = default;
};

struct training_runs_response {
  std::vector<training_run> training_runs;
  tinker::cursor cursor;

  friend bool operator==(const training_runs_response&, const training_runs_response&) = default;
};

}  // namespace tinker
