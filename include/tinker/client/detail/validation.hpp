// Checks of user input made before anything is sent: the exception names the field and the value.
#pragma once

#include <tinker/error.hpp>
#include <tinker/tinker_path.hpp>
#include <tinker/types.hpp>

#include <cmath>
#include <set>
#include <string>
#include <variant>

namespace tinker::detail {

[[noreturn]] inline void invalid(const std::string& what) { throw tinker::invalid_argument(what); }

inline std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

/// The loss inputs each built-in loss needs.
inline std::set<std::string> required_loss_inputs(loss_fn_type loss) {
  switch (loss) {
    case loss_fn_type::cross_entropy: return {"target_tokens", "weights"};
    default: return {"target_tokens", "logprobs", "advantages"};
  }
}

/// A loss_fn_type made from an integer (a config file, a Python binding) may name no loss; it
/// would go out as an empty "loss_fn" and come back as a confusing server error.
inline void validate_loss(loss_fn_type loss, const char* call) {
  switch (loss) {
    case loss_fn_type::cross_entropy:
    case loss_fn_type::importance_sampling:
    case loss_fn_type::ppo:
    case loss_fn_type::cispo:
    case loss_fn_type::dro: return;
  }
  invalid(std::string(call) + ": loss_fn_type " + std::to_string(static_cast<int>(loss)) +
          " is not a loss (cross_entropy, importance_sampling, ppo, cispo or dro)");
}

/// A sampling client needs sampler weights: a training-state path (weights/...) names a checkpoint
/// the sampler cannot load, which the server would only refuse later, less clearly.
inline void validate_sampler_path(const std::string& path, const char* call) {
  if (tinker_path::parse(path).kind == checkpoint_kind::weights)
    invalid(std::string(call) + ": '" + path +
            "' is a training-state checkpoint (weights/...); sample from sampler_weights: "
            "tinker://<run>/sampler_weights/<name>, from save_weights_for_sampler");
}

/// A forward/backward batch: not empty; every datum carries the loss's inputs, each per-token
/// input as long as the model input; tensors consistent; inputs encodable on `protobuf` wire.
inline void validate_batch(const std::vector<datum>& data, loss_fn_type loss, bool protobuf, const char* call) {
  validate_loss(loss, call);
  if (data.empty()) invalid(std::string(call) + ": data is empty (no data provided)");
  const auto required = required_loss_inputs(loss);
  for (std::size_t i = 0; i < data.size(); ++i) {
    const auto where = std::string(call) + ": data[" + std::to_string(i) + "]";
    const auto& d = data[i];
    if (d.model_input.is_empty()) invalid(where + ".model_input is empty");
    std::optional<std::size_t> length;
    try {
      length = d.model_input.length();
    } catch (const tinker::invalid_argument&) {
      // image chunks without expected_tokens: the server knows the length, we cannot check it
    }
    for (const auto& c : d.model_input.chunks)
      if (protobuf && std::holds_alternative<image_asset_pointer_chunk>(c))
        invalid(where +
                ".model_input: image_asset_pointer chunks cannot be sent in a forward_backward request; send the image "
                "bytes");
    for (const auto& name : required)
      if (!d.loss_fn_inputs.contains(name))
        invalid(where + ".loss_fn_inputs is missing '" + name + "', which loss " + std::string(to_string(loss)) +
                " needs");
    // Per-token inputs have one row per model-input token (position i predicts target_tokens[i]).
    // When the model input's length is unknown (images without expected_tokens), they must at
    // least agree with each other.
    std::optional<std::pair<std::string, std::size_t>> reference;
    for (const auto& [name, t] : d.loss_fn_inputs) {
      t.validate(where + ".loss_fn_inputs[" + name + "]");
      if (name == "target_tokens" && t.type() != dtype::int64)
        invalid(where + ".loss_fn_inputs[target_tokens] must be int64, got float32");
      const auto rows = t.shape && !t.shape->empty() ? static_cast<std::size_t>(t.shape->front()) : t.element_count();
      const char* unit = t.shape && t.shape->size() > 1 ? " rows" : " elements";
      if (length && rows != *length)
        invalid(where + ".loss_fn_inputs[" + name + "] has " + std::to_string(rows) + unit + " but model_input has " +
                std::to_string(*length) + " tokens");
      if (!reference)
        reference.emplace(name, rows);
      else if (rows != reference->second)
        invalid(where + ".loss_fn_inputs[" + name + "] has " + std::to_string(rows) + unit + " but loss_fn_inputs[" +
                reference->first + "] has " + std::to_string(reference->second));
    }
  }
}

inline void validate_adam(const adam_params& p) {
  auto finite = [](double v) { return std::isfinite(v); };
  if (!finite(p.learning_rate) || p.learning_rate < 0)
    invalid("adam_params.learning_rate must be >= 0, got " + fmt(p.learning_rate));
  if (!finite(p.beta1) || p.beta1 < 0 || p.beta1 >= 1)
    invalid("adam_params.beta1 must be in [0, 1), got " + fmt(p.beta1));
  if (!finite(p.beta2) || p.beta2 < 0 || p.beta2 >= 1)
    invalid("adam_params.beta2 must be in [0, 1), got " + fmt(p.beta2));
  if (!finite(p.eps) || p.eps <= 0) invalid("adam_params.eps must be > 0, got " + fmt(p.eps));
  if (!finite(p.weight_decay) || p.weight_decay < 0)
    invalid("adam_params.weight_decay must be >= 0, got " + fmt(p.weight_decay));
  if (!finite(p.grad_clip_norm) || p.grad_clip_norm < 0)
    invalid("adam_params.grad_clip_norm must be >= 0 (0 = no clipping), got " + fmt(p.grad_clip_norm));
}

inline void validate_sampling(const model_input& prompt, int num_samples, const sampling_params& p,
                              int topk_prompt_logprobs) {
  if (prompt.is_empty()) invalid("sample: prompt is empty");
  if (num_samples < 1) invalid("sample: num_samples must be >= 1, got " + std::to_string(num_samples));
  // Unset max_tokens is the server's choice (as in the SDK); a set one must be positive.
  if (p.max_tokens && *p.max_tokens <= 0)
    invalid("sampling_params.max_tokens must be > 0, got " + std::to_string(*p.max_tokens));
  if (!std::isfinite(p.temperature) || p.temperature < 0)
    invalid("sampling_params.temperature must be >= 0, got " + fmt(p.temperature));
  if (!std::isfinite(p.top_p) || p.top_p <= 0 || p.top_p > 1)
    invalid("sampling_params.top_p must be in (0, 1], got " + fmt(p.top_p));
  if (p.top_k == 0 || p.top_k < -1)
    invalid("sampling_params.top_k must be -1 (no limit) or >= 1, got " + std::to_string(p.top_k));
  if (topk_prompt_logprobs < 0)
    invalid("topk_prompt_logprobs must be >= 0, got " + std::to_string(topk_prompt_logprobs));
}

inline void validate_checkpoint_name(const std::string& name, const char* call) {
  if (auto why = tinker_path::name_problem(name))
    invalid(std::string(call) + ": invalid checkpoint name '" + tinker_path::printable(name) + "': " + *why);
}

/// Checkpoint lifetimes: positive, at most ten years (the service's documented maximum).
inline void validate_ttl(const std::optional<std::int64_t>& ttl, const char* call) {
  if (ttl && *ttl <= 0) invalid(std::string(call) + ": ttl_seconds must be > 0, got " + std::to_string(*ttl));
  if (ttl && *ttl > max_checkpoint_ttl_seconds)
    invalid(std::string(call) + ": ttl_seconds must be at most ten years (" +
            std::to_string(max_checkpoint_ttl_seconds) + "), got " + std::to_string(*ttl));
}

}  // namespace tinker::detail
