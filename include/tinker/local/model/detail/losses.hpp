// Tinker's built-in losses: validation of their inputs and configuration, and the per-element
// loss with its derivative with respect to the model's logprob lp of the target token.
//
//   cross_entropy        target_tokens, weights                 loss = -w lp
//   importance_sampling  target_tokens, logprobs q, advantages A  loss = -exp(lp - q) A
//   ppo                  (as importance_sampling)                 loss = -min(r A, clip(r, lo, hi) A)
//   cispo                (as importance_sampling)                 loss = -sg(clip(r, lo, hi)) lp A
//   dro                  (as importance_sampling)                 loss = -(lp A - beta/2 (lp - q)^2)
//
// Per-token tensors are [N] or [N, K] with N = the model input's length: row i holds the targets
// predicted from position i (K > 1 e.g. for distillation onto several tokens).
#pragma once

#include <tinker/byte_tokenizer.hpp>
#include <tinker/error.hpp>
#include <tinker/types/model_input.hpp>
#include <tinker/types/training.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace tinker::local::detail {

/// A loss with its configuration resolved.
struct loss_settings {
  loss_fn_type type = loss_fn_type::cross_entropy;
  double clip_low = 0.0;
  double clip_high = 0.0;
  double beta = 0.0;
};

inline std::string format_number(double v) {
  std::string s = std::to_string(v);
  if (s.find('.') != std::string::npos) {
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
  }
  return s;
}

/// Resolves `config` for `type`: defaults, unknown keys and bad values are tinker::invalid_argument.
inline loss_settings parse_loss_settings(loss_fn_type type, const std::optional<loss_fn_config>& config) {
  loss_settings s;
  s.type = type;
  std::vector<std::string_view> known;
  switch (type) {
    case loss_fn_type::cross_entropy:
    case loss_fn_type::importance_sampling: break;
    case loss_fn_type::ppo:
      s.clip_low = 0.8, s.clip_high = 1.2;
      known = {"clip_low_threshold", "clip_high_threshold"};
      break;
    case loss_fn_type::cispo:
      s.clip_low = 0.0, s.clip_high = 4.0;
      known = {"clip_low_threshold", "clip_high_threshold"};
      break;
    case loss_fn_type::dro:
      s.beta = 0.05;
      known = {"beta"};
      break;
  }
  if (!config) return s;
  for (const auto& [key, value] : *config) {
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string accepted;
      for (auto k : known) accepted += (accepted.empty() ? "" : ", ") + std::string(k);
      throw tinker::invalid_argument(
          "loss_fn_config: unknown key '" + key + "' for loss " + std::string(to_string(type)) +
          (accepted.empty() ? " (it takes no configuration)" : " (it takes " + accepted + ")"));
    }
    if (!std::isfinite(value))
      throw tinker::invalid_argument("loss_fn_config." + key + " must be a finite number, got " + format_number(value));
    if (key == "clip_low_threshold")
      s.clip_low = value;
    else if (key == "clip_high_threshold")
      s.clip_high = value;
    else if (key == "beta")
      s.beta = value;
  }
  if (s.clip_low < 0.0 || s.clip_low > s.clip_high)
    throw tinker::invalid_argument(
        "loss_fn_config: clip thresholds must satisfy 0 <= clip_low_threshold <= clip_high_threshold, got " +
        format_number(s.clip_low) + " and " + format_number(s.clip_high));
  if (s.beta < 0.0) throw tinker::invalid_argument("loss_fn_config.beta must be >= 0, got " + format_number(s.beta));
  return s;
}

/// The inputs a loss requires and the optional ones it accepts.
struct loss_input_names {
  std::vector<std::string_view> required;
  std::vector<std::string_view> optional;
};

inline loss_input_names input_names(loss_fn_type type) {
  switch (type) {
    case loss_fn_type::cross_entropy: return {{"target_tokens", "weights"}, {}};
    case loss_fn_type::importance_sampling:
    case loss_fn_type::dro: return {{"target_tokens", "logprobs", "advantages"}, {}};
    case loss_fn_type::ppo:
    case loss_fn_type::cispo:
      return {{"target_tokens", "logprobs", "advantages"}, {"clip_low_threshold", "clip_high_threshold"}};
  }
  return {};
}

/// The most targets one position may have (the K of a [N, K] per-token tensor).
inline constexpr int max_targets_per_position = byte_tokenizer::vocab_size;

/// One datum, validated and converted to what the computation reads.
struct prepared_datum {
  std::vector<token_id> tokens;                    ///< model input
  std::size_t rows = 0, cols = 1;                  ///< per-token shape [rows, cols]; rows = tokens.size()
  std::optional<std::vector<std::int64_t>> shape;  ///< target_tokens' shape as given (copied to the outputs)
  std::vector<token_id> targets;                   ///< rows * cols
  std::vector<double> weights, sampler_logprobs, advantages, clip_low, clip_high;  ///< empty when absent
};

/// Validates datum `index` for the loss of `settings` (model input text only and in vocabulary, not longer than
/// `max_context_length`, exactly the inputs the loss takes, matching shapes, finite values).
inline prepared_datum prepare_datum(const datum& d, std::size_t index, const loss_settings& settings,
                                    int max_context_length) {
  const auto type = settings.type;
  const auto where = "data[" + std::to_string(index) + "]";
  auto fail = [&](const std::string& field, const std::string& problem) -> void {
    throw tinker::invalid_argument(where + "." + field + ": " + problem);
  };
  prepared_datum p;

  // Model input.
  std::size_t length = 0;
  for (std::size_t c = 0; c < d.model_input.chunks.size(); ++c) {
    const auto* text = std::get_if<encoded_text_chunk>(&d.model_input.chunks[c]);
    if (!text) {
      static constexpr const char* kinds[] = {"encoded_text", "image", "image_asset_pointer", "dmel"};
      fail("model_input.chunks[" + std::to_string(c) + "]", std::string("is an ") +
                                                                kinds[d.model_input.chunks[c].index()] +
                                                                " chunk; this model reads text (encoded_text) only");
    }
    length += text->tokens.size();
  }
  if (length == 0) fail("model_input", "has no tokens");
  if (length > static_cast<std::size_t>(max_context_length))
    fail("model_input", "has " + std::to_string(length) + " tokens, more than the model's context length " +
                            std::to_string(max_context_length));
  p.tokens.reserve(length);
  for (const auto& c : d.model_input.chunks)
    for (auto t : std::get<encoded_text_chunk>(c).tokens) {
      if (!byte_tokenizer::is_valid(t))
        fail("model_input", "token id " + std::to_string(t) + " at position " + std::to_string(p.tokens.size()) +
                                " is out of range [0, " + std::to_string(byte_tokenizer::vocab_size) + ")");
      p.tokens.push_back(t);
    }
  p.rows = length;

  // Which inputs.
  const auto names = input_names(type);
  for (const auto& [name, tensor] : d.loss_fn_inputs) {
    const bool known = std::find(names.required.begin(), names.required.end(), name) != names.required.end() ||
                       std::find(names.optional.begin(), names.optional.end(), name) != names.optional.end();
    if (!known) {
      std::string accepted;
      for (auto n : names.required) accepted += (accepted.empty() ? "" : ", ") + std::string(n);
      for (auto n : names.optional) accepted += ", " + std::string(n) + " (optional)";
      fail("loss_fn_inputs",
           "unknown input '" + name + "' for loss " + std::string(to_string(type)) + " (it takes " + accepted + ")");
    }
  }
  for (auto name : names.required)
    if (!d.loss_fn_inputs.contains(std::string(name))) {
      std::string needed;
      for (auto n : names.required) needed += (needed.empty() ? "" : ", ") + std::string(n);
      fail("loss_fn_inputs",
           "missing '" + std::string(name) + "' (loss " + std::string(to_string(type)) + " needs " + needed + ")");
    }

  // Shapes: target_tokens fixes [rows, cols]; every other input must have the same. The dense size
  // rows x cols is bounded (rows = the model input's length, cols <= the vocabulary) before the
  // tensor's own consistency checks run and before anything is allocated from its shape.
  auto shape_of = [&](const std::string& name, const tensor_data& t) {
    const auto field = "loss_fn_inputs." + name;
    const auto dims = t.dense_shape();
    std::string text;
    for (auto x : dims) text += (text.empty() ? "" : ", ") + std::to_string(x);
    text = "[" + text + "]";
    if (dims.size() != 1 && dims.size() != 2) fail(field, "shape " + text + " must be [N] or [N, K]");
    for (auto x : dims)
      if (x < 0) fail(field, "shape " + text + " has a negative dimension");
    const auto rows = static_cast<std::uint64_t>(dims[0]);
    const auto cols = dims.size() == 2 ? static_cast<std::uint64_t>(dims[1]) : std::uint64_t{1};
    if (rows != p.rows)
      fail(field, "shape " + text + " has " + std::to_string(rows) + " rows but model_input has " +
                      std::to_string(p.rows) + " tokens (position i predicts row i)");
    if (cols == 0) fail(field, "shape " + text + " has no columns");
    if (cols > static_cast<std::uint64_t>(max_targets_per_position))
      fail(field, "shape " + text + " has " + std::to_string(cols) + " columns; at most " +
                      std::to_string(max_targets_per_position) + " targets per position (the vocabulary size)");
    // rows <= context length and cols <= vocabulary: the product cannot overflow.
    if (!t.is_sparse() && t.stored_size() != rows * cols)
      fail(field, "shape " + text + " holds " + std::to_string(rows * cols) + " elements but " +
                      std::to_string(t.stored_size()) + " values were given");
    t.validate(where + "." + field);
    return std::pair{static_cast<std::size_t>(cols), text};
  };

  const auto& target = d.loss_fn_inputs.at("target_tokens");
  // (No structured binding: lambdas below use the shape text, and clang < 16 cannot capture bindings.)
  const auto target_dims = shape_of("target_tokens", target);
  p.cols = target_dims.first;
  const std::string target_shape = target_dims.second;
  p.shape = target.shape;
  if (target.type() != dtype::int64) fail("loss_fn_inputs.target_tokens", "must be int64, got float32");
  {
    const auto values = target.to_dense<std::int64_t>();
    p.targets.resize(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (values[i] < 0 || values[i] >= byte_tokenizer::vocab_size)
        fail("loss_fn_inputs.target_tokens", "token id " + std::to_string(values[i]) + " at index " +
                                                 std::to_string(i) + " is out of range [0, " +
                                                 std::to_string(byte_tokenizer::vocab_size) + ")");
      p.targets[i] = static_cast<token_id>(values[i]);
    }
  }

  auto read = [&](std::string_view name, std::vector<double>& out) {
    auto it = d.loss_fn_inputs.find(std::string(name));
    if (it == d.loss_fn_inputs.end()) return;
    const auto field = "loss_fn_inputs." + std::string(name);
    const auto [c, text] = shape_of(std::string(name), it->second);
    if (c != p.cols) fail(field, "shape " + text + " does not match target_tokens' shape " + target_shape);
    out = it->second.to_dense<double>();
    for (std::size_t i = 0; i < out.size(); ++i)
      if (!std::isfinite(out[i]))
        fail(field, "value " + format_number(out[i]) + " at index " + std::to_string(i) + " is not finite");
  };
  read("weights", p.weights);
  read("logprobs", p.sampler_logprobs);
  read("advantages", p.advantages);
  read("clip_low_threshold", p.clip_low);
  read("clip_high_threshold", p.clip_high);
  for (std::size_t i = 0; i < p.clip_low.size() || i < p.clip_high.size(); ++i) {
    const double lo = p.clip_low.empty() ? settings.clip_low : p.clip_low[i];
    const double hi = p.clip_high.empty() ? settings.clip_high : p.clip_high[i];
    if (lo < 0.0 || lo > hi)
      fail(p.clip_low.empty() ? "loss_fn_inputs.clip_high_threshold" : "loss_fn_inputs.clip_low_threshold",
           "at index " + std::to_string(i) + " the thresholds are " + format_number(lo) + " and " + format_number(hi) +
               "; they must satisfy 0 <= clip_low_threshold <= clip_high_threshold");
  }
  return p;
}

struct element_loss {
  double loss;
  double dloss_dlp;  ///< the gradient that flows back into the model (stop-gradients applied)
};

/// The loss of element `e` of `p` whose target has model logprob `lp`.
inline element_loss loss_of(const loss_settings& s, const prepared_datum& p, std::size_t e, double lp) noexcept {
  switch (s.type) {
    case loss_fn_type::cross_entropy: {
      const double w = p.weights[e];
      return {-w * lp, -w};
    }
    case loss_fn_type::importance_sampling: {
      const double ra = std::exp(lp - p.sampler_logprobs[e]) * p.advantages[e];
      return {-ra, -ra};
    }
    case loss_fn_type::ppo: {
      const double lo = p.clip_low.empty() ? s.clip_low : p.clip_low[e];
      const double hi = p.clip_high.empty() ? s.clip_high : p.clip_high[e];
      const double a = p.advantages[e];
      const double r = std::exp(lp - p.sampler_logprobs[e]);
      const double unclipped = r * a;
      const double clipped = std::clamp(r, lo, hi) * a;
      // min picks the unclipped term (gradient r A) unless clipping makes it smaller, which only
      // happens outside [lo, hi] where the clipped term is constant (gradient 0).
      if (unclipped <= clipped) return {-unclipped, -unclipped};
      return {-clipped, 0.0};
    }
    case loss_fn_type::cispo: {
      const double lo = p.clip_low.empty() ? s.clip_low : p.clip_low[e];
      const double hi = p.clip_high.empty() ? s.clip_high : p.clip_high[e];
      const double a = p.advantages[e];
      const double c = std::clamp(std::exp(lp - p.sampler_logprobs[e]), lo, hi);
      return {-c * lp * a, -c * a};
    }
    case loss_fn_type::dro: {
      const double a = p.advantages[e];
      const double diff = lp - p.sampler_logprobs[e];
      return {-(lp * a - 0.5 * s.beta * diff * diff), -(a - s.beta * diff)};
    }
  }
  return {0.0, 0.0};
}

}  // namespace tinker::local::detail
