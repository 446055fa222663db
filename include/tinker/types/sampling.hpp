// Sampling requests and results (docs/protocol.md §8.2, §8.3, §8).
#pragma once

#include <tinker/types/model_input.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace tinker {

/// Stop condition: one stop string, several stop strings, or stop token ids.
using stop_condition = std::variant<std::string, std::vector<std::string>, std::vector<token_id>>;

/// `{"max_tokens"?, "seed"?, "stop"?, "temperature", "top_k", "top_p"}` with the SDK's defaults.
///
/// Build it with the with_* setters, which also work on a temporary right inside a call:
///
///   co_await sampler.sample(prompt, 4, tinker::sampling_params(32).with_temperature(0.7).with_stop("\n"));
///
/// (It is deliberately not an aggregate: GCC 12 destroys aggregate temporaries that appear in a
/// co_await expression twice, which would double-free an engaged `stop`.)
struct sampling_params {
  std::optional<std::int32_t> max_tokens;
  std::optional<std::uint64_t> seed;  ///< any 64-bit value; the server folds it into its own range
  std::optional<stop_condition> stop;
  double temperature = 1.0;
  std::int32_t top_k = -1;  ///< -1 = unlimited
  double top_p = 1.0;       ///< 1.0 = disabled

  sampling_params() = default;
  /// The common case: how many tokens at most.
  explicit sampling_params(std::int32_t max_new_tokens) : max_tokens(max_new_tokens) {}

#define TINKER_SAMPLING_SETTER(name, type, field) \
  sampling_params& name(type v)& {                \
    field = std::move(v);                         \
    return *this;                                 \
  }                                               \
  sampling_params&& name(type v)&& {              \
    field = std::move(v);                         \
    return std::move(*this);                      \
  }
  TINKER_SAMPLING_SETTER(with_max_tokens, std::int32_t, max_tokens)
  TINKER_SAMPLING_SETTER(with_seed, std::uint64_t, seed)
  TINKER_SAMPLING_SETTER(with_stop, stop_condition, stop)
  TINKER_SAMPLING_SETTER(with_temperature, double, temperature)
  TINKER_SAMPLING_SETTER(with_top_k, std::int32_t, top_k)
  TINKER_SAMPLING_SETTER(with_top_p, double, top_p)
#undef TINKER_SAMPLING_SETTER

  /// One stop string (a plain string literal would otherwise be ambiguous among the stop forms).
  sampling_params& with_stop(const char* text) & { return with_stop(stop_condition(std::string(text))); }
  sampling_params&& with_stop(const char* text) && { return std::move(with_stop(stop_condition(std::string(text)))); }

  friend bool operator==(const sampling_params&, const sampling_params&) = default;
};

/// The asample request. The 0.25 client addresses a sampling session (`sampling_session_id` +
/// `seq_id`); `base_model` / `model_path` are the legacy per-request addressing.
struct sample_request {
  std::int32_t num_samples = 1;
  model_input prompt;
  tinker::sampling_params sampling_params;
  std::optional<std::string> base_model;
  std::optional<std::string> model_path;
  std::optional<std::string> sampling_session_id;
  std::optional<std::int64_t> seq_id;
  std::optional<bool> prompt_logprobs;
  std::int32_t topk_prompt_logprobs = 0;

  friend bool operator==(const sample_request&, const sample_request&) = default;
};

enum class stop_reason { stop, length };

constexpr std::string_view to_string(stop_reason r) noexcept { return r == stop_reason::stop ? "stop" : "length"; }

/// One generated sequence.
struct sampled_sequence {
  tinker::stop_reason stop_reason = tinker::stop_reason::length;
  std::vector<token_id> tokens;
  std::optional<std::vector<float>> logprobs;  ///< one per token when produced
  std::optional<std::string> sequence_id;      ///< from the future handle's sample_sequence_ids (newer servers)

  friend bool operator==(const sampled_sequence&, const sampled_sequence&) = default;
};

/// A `length x k` matrix of (token id, logprob) pairs, row-major, as the protobuf wire carries it.
/// Unused slots hold the sentinel (token 0, logprob -99999); a row whose first slot is the sentinel
/// was not computed (the JSON wire writes null for it).
struct topk_logprobs {
  static constexpr float sentinel_logprob = -99999.0f;

  std::uint32_t k = 0;
  std::uint32_t length = 0;
  std::vector<token_id> token_ids;
  std::vector<float> logprobs;

  static bool is_sentinel(token_id t, float lp) noexcept { return t == 0 && lp == sentinel_logprob; }

  /// Whether row i was computed.
  bool row_present(std::size_t i) const noexcept { return k > 0 && !is_sentinel(token_ids[i * k], logprobs[i * k]); }

  /// Number of entries in row i once trailing sentinel slots are trimmed (0 if not computed).
  std::size_t row_size(std::size_t i) const noexcept {
    std::size_t n = k;
    while (n > 0 && is_sentinel(token_ids[i * k + n - 1], logprobs[i * k + n - 1])) --n;
    return row_present(i) ? n : 0;
  }

  /// Row i as (token id, logprob) pairs, trimmed; empty if not computed.
  std::vector<std::pair<token_id, float>> row(std::size_t i) const {
    std::vector<std::pair<token_id, float>> out;
    const auto n = row_size(i);
    out.reserve(n);
    for (std::size_t j = 0; j < n; ++j) out.emplace_back(token_ids[i * k + j], logprobs[i * k + j]);
    return out;
  }

  friend bool operator==(const topk_logprobs&, const topk_logprobs&) = default;
};

/// The result of a sample. `prompt_logprobs` has one entry per prompt token with NaN where the
/// logprob was not computed (always position 0); the JSON wire writes null there.
struct sample_response {
  std::vector<sampled_sequence> sequences;
  std::optional<std::vector<float>> prompt_logprobs;
  std::optional<topk_logprobs> topk_prompt_logprobs;
  std::int32_t prompt_cache_hit_tokens = 0;

  /// NaN-aware equality (NaN marks "not computed" and must compare equal to itself).
  friend bool operator==(const sample_response& a, const sample_response& b) {
    if (a.sequences != b.sequences || a.topk_prompt_logprobs != b.topk_prompt_logprobs ||
        a.prompt_cache_hit_tokens != b.prompt_cache_hit_tokens ||
        a.prompt_logprobs.has_value() != b.prompt_logprobs.has_value())
      return false;
    if (!a.prompt_logprobs) return true;
    const auto& x = *a.prompt_logprobs;
    const auto& y = *b.prompt_logprobs;
    if (x.size() != y.size()) return false;
    for (std::size_t i = 0; i < x.size(); ++i)
      if (!(x[i] == y[i] || (std::isnan(x[i]) && std::isnan(y[i])))) return false;
    return true;
  }
};

}  // namespace tinker
