// Training requests and results: datum, loss functions, forward/backward, optim_step
// (docs/protocol.md §7.2, §7.1).
#pragma once

#include <tinker/types/model_input.hpp>
#include <tinker/types/tensor_data.hpp>

#include <cstdint>
#include <map>
#include <optional>
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
