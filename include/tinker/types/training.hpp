// Training requests and results: datum, loss functions, forward/backward, optim_step
// (docs/protocol.md §7.2, §7.1).
#pragma once

#include <tinker/error.hpp>
#include <tinker/types/model_input.hpp>
#include <tinker/types/sampling.hpp>
#include <tinker/types/tensor_data.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tinker {

/// `{"model_input": ModelInput, "loss_fn_inputs": {name: TensorData}}`.
struct datum {
  tinker::model_input model_input;
  std::map<std::string, tensor_data> loss_fn_inputs;

  // Constructors make this a non-aggregate on purpose: GCC 12 destroys aggregate temporaries built
  // inside a co_await expression twice, and a batch is often built right in the call.
  datum() = default;
  explicit datum(tinker::model_input input, std::map<std::string, tensor_data> inputs = {})
      : model_input(std::move(input)), loss_fn_inputs(std::move(inputs)) {}

  /// Next-token prediction on `tokens` (cross_entropy): the input is tokens[:-1], the targets are
  /// tokens[1:], every target weighted 1. Throws tinker::invalid_argument for fewer than 2 tokens.
  static datum next_token(std::span<const token_id> tokens) {
    return next_token(tokens, std::vector<float>(tokens.size() < 2 ? 0 : tokens.size() - 1, 1.0f));
  }

  /// Next-token prediction with one weight per target (tokens.size() - 1 of them; 0 masks a target
  /// out, e.g. the prompt's). Throws tinker::invalid_argument naming the mismatch.
  static datum next_token(std::span<const token_id> tokens, std::vector<float> weights) {
    if (tokens.size() < 2)
      throw tinker::invalid_argument("datum::next_token: tokens must hold at least 2 tokens, got " +
                                     std::to_string(tokens.size()));
    if (weights.size() != tokens.size() - 1)
      throw tinker::invalid_argument("datum::next_token: weights must hold one weight per target (" +
                                     std::to_string(tokens.size() - 1) + "), got " + std::to_string(weights.size()));
    for (std::size_t i = 0; i < weights.size(); ++i)
      if (!std::isfinite(weights[i]))
        throw tinker::invalid_argument("datum::next_token: weights[" + std::to_string(i) + "] is not finite");
    datum d(model_input::from_ints(std::vector<token_id>(tokens.begin(), tokens.end() - 1)));
    d.loss_fn_inputs.emplace("target_tokens", tensor_data(std::vector<std::int64_t>(tokens.begin() + 1, tokens.end())));
    d.loss_fn_inputs.emplace("weights", tensor_data(std::move(weights)));
    return d;
  }

  /// One sampled completion for the policy-gradient losses (importance_sampling, ppo, cispo): the
  /// input is prompt + completion[:-1], the targets are prompt[1:] + completion, and `logprobs`
  /// (the sampler's, one per completion token) and `advantage` apply to the completion's targets
  /// only; the prompt's targets get logprob 0 and advantage 0, so they contribute nothing. The
  /// prompt may hold any chunks (its length must be known, see chunk_length()); the completion is
  /// appended as text. Throws tinker::invalid_argument for an empty prompt or completion, a
  /// logprob count other than the completion's length, or a non-finite value.
  static datum from_sample(const tinker::model_input& prompt, std::span<const token_id> completion,
                           std::span<const float> logprobs, double advantage) {
    const auto prompt_length = prompt.length();
    if (prompt_length == 0) throw tinker::invalid_argument("datum::from_sample: the prompt is empty");
    if (completion.empty()) throw tinker::invalid_argument("datum::from_sample: the completion is empty");
    if (logprobs.size() != completion.size())
      throw tinker::invalid_argument("datum::from_sample: logprobs must hold one logprob per completion token (" +
                                     std::to_string(completion.size()) + "), got " + std::to_string(logprobs.size()));
    if (!std::isfinite(advantage))
      throw tinker::invalid_argument("datum::from_sample: advantage is not finite (" + std::to_string(advantage) + ")");
    for (std::size_t i = 0; i < logprobs.size(); ++i)
      if (!std::isfinite(logprobs[i]))
        throw tinker::invalid_argument("datum::from_sample: logprobs[" + std::to_string(i) + "] is not finite");

    datum d(prompt);
    for (std::size_t i = 0; i + 1 < completion.size(); ++i) d.model_input.append_int(completion[i]);
    const std::size_t masked = prompt_length - 1;  // targets inside the prompt
    std::vector<std::int64_t> targets;
    targets.reserve(masked + completion.size());
    if (masked > 0) {
      // Only text prompts have known target tokens; other chunks' targets are masked out anyway.
      std::vector<token_id> prompt_tokens;
      bool text = true;
      for (const auto& c : prompt.chunks) text = text && std::holds_alternative<encoded_text_chunk>(c);
      if (text) prompt_tokens = prompt.to_ints();
      for (std::size_t i = 1; i <= masked; ++i) targets.push_back(text ? prompt_tokens[i] : 0);
    }
    targets.insert(targets.end(), completion.begin(), completion.end());
    std::vector<float> sampled(masked, 0.0f);
    sampled.insert(sampled.end(), logprobs.begin(), logprobs.end());
    std::vector<float> advantages(masked, 0.0f);
    advantages.resize(masked + completion.size(), static_cast<float>(advantage));
    d.loss_fn_inputs.emplace("target_tokens", tensor_data(std::move(targets)));
    d.loss_fn_inputs.emplace("logprobs", tensor_data(std::move(sampled)));
    d.loss_fn_inputs.emplace("advantages", tensor_data(std::move(advantages)));
    return d;
  }

  /// from_sample() on a sampled sequence, with the logprobs the sampler returned. Throws
  /// tinker::invalid_argument when the sequence carries none.
  static datum from_sample(const tinker::model_input& prompt, const sampled_sequence& sequence, double advantage) {
    if (!sequence.logprobs)
      throw tinker::invalid_argument("datum::from_sample: the sampled sequence carries no logprobs");
    return from_sample(prompt, sequence.tokens, *sequence.logprobs, advantage);
  }

  friend bool operator==(const datum&, const datum&) = default;
};

/// The built-in losses (wire strings in to_string()).
enum class loss_fn_type { cross_entropy, importance_sampling, ppo, cispo, dro };

constexpr std::string_view to_string(loss_fn_type l) noexcept {
  switch (l) {
    case loss_fn_type::cross_entropy: return "cross_entropy";
    case loss_fn_type::importance_sampling: return "importance_sampling";
    case loss_fn_type::ppo: return "ppo";
    case loss_fn_type::cispo: return "cispo";
    case loss_fn_type::dro: return "dro";
  }
  return "cross_entropy";
}

constexpr std::optional<loss_fn_type> parse_loss_fn_type(std::string_view s) noexcept {
  for (auto l : {loss_fn_type::cross_entropy, loss_fn_type::importance_sampling, loss_fn_type::ppo, loss_fn_type::cispo,
                 loss_fn_type::dro})
    if (to_string(l) == s) return l;
  return std::nullopt;
}

/// Numeric loss parameters, e.g. `clip_low_threshold`, `clip_high_threshold`, `beta`.
using loss_fn_config = std::map<std::string, double>;

/// `{"data": [Datum], "loss_fn": str, "loss_fn_config"?: {str: number}}`.
struct forward_backward_input {
  std::vector<datum> data;
  loss_fn_type loss_fn = loss_fn_type::cross_entropy;
  std::optional<tinker::loss_fn_config> loss_fn_config;

  friend bool operator==(const forward_backward_input&, const forward_backward_input&) = default;
};

/// The forward_backward request. On the wire it is protobuf (§9.1) or, for legacy clients, JSON
/// `{"forward_backward_input", "model_id", "seq_id"}` (no forward_only: JSON is always fwd+bwd).
struct forward_backward_request {
  tinker::forward_backward_input forward_backward_input;
  std::string model_id;
  std::int64_t seq_id = 0;
  bool forward_only = false;

  friend bool operator==(const forward_backward_request&, const forward_backward_request&) = default;
};

/// Legacy `POST /api/v1/forward` (SDK <= 0.24): `{"forward_input", "model_id", "seq_id"}`.
struct forward_request {
  forward_backward_input forward_input;
  std::string model_id;
  std::int64_t seq_id = 0;

  friend bool operator==(const forward_request&, const forward_request&) = default;
};

/// Per-datum loss outputs: field name -> tensor (`logprobs`, `elementwise_loss`, ...).
using loss_fn_output = std::map<std::string, tensor_data>;

/// Result of forward / forward_backward. Every metric key has the form `<name>:<reduction>`.
struct forward_backward_output {
  std::string loss_fn_output_type;
  std::vector<loss_fn_output> loss_fn_outputs;
  std::map<std::string, double> metrics;

  friend bool operator==(const forward_backward_output&, const forward_backward_output&) = default;
};

/// Adam(W) hyper-parameters with the SDK's defaults; all six always go on the wire.
struct adam_params {
  double learning_rate = 1e-4;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-12;
  double weight_decay = 0.0;    ///< decoupled (AdamW)
  double grad_clip_norm = 0.0;  ///< 0 = no clipping; otherwise clip the global gradient norm

  friend bool operator==(const adam_params&, const adam_params&) = default;
};

/// `{"adam_params", "model_id", "seq_id", "type": "optim_step"}`.
struct optim_step_request {
  tinker::adam_params adam_params;
  std::string model_id;
  std::int64_t seq_id = 0;

  friend bool operator==(const optim_step_request&, const optim_step_request&) = default;
};

/// `{"metrics"?: {str: number}}`.
struct optim_step_response {
  std::optional<std::map<std::string, double>> metrics;

  friend bool operator==(const optim_step_response&, const optim_step_response&) = default;
};

}  // namespace tinker
