// Helpers shared by the model tests: data builders and a naive reference implementation of the
// byte LM's forward pass (written independently of the production kernels).
#pragma once

#include <tinker/local/model/model.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace tinker::local::test {

inline const std::shared_ptr<const base_model>& tiny_base() {
  static const auto base = base_model::create(default_base_models().at(0));
  return base;
}

inline lora_config lora(int rank, std::int64_t seed, bool attn = true, bool mlp = true, bool unembed = true) {
  lora_config c;
  c.rank = rank;
  c.seed = seed;
  c.train_attn = attn;
  c.train_mlp = mlp;
  c.train_unembed = unembed;
  return c;
}

/// Next-byte prediction on `text`: input = BOS + bytes[:-1], targets = bytes, weights 1.
inline datum text_datum(const std::string& text) {
  byte_tokenizer tok;
  auto tokens = tok.encode(text, true);
  std::vector<token_id> input(tokens.begin(), tokens.end() - 1);
  std::vector<std::int64_t> targets(tokens.begin() + 1, tokens.end());
  datum d;
  d.model_input = model_input::from_ints(std::move(input));
  d.loss_fn_inputs.emplace("target_tokens", tensor_data(std::move(targets)));
  d.loss_fn_inputs.emplace("weights", tensor_data(std::vector<float>(tokens.size() - 1, 1.0f)));
  return d;
}

/// A datum for an RL loss: targets, sampler logprobs and advantages given per token.
inline datum rl_datum(std::vector<token_id> input, std::vector<std::int64_t> targets, std::vector<float> logprobs,
                      std::vector<float> advantages) {
  datum d;
  d.model_input = model_input::from_ints(std::move(input));
  d.loss_fn_inputs.emplace("target_tokens", tensor_data(std::move(targets)));
  d.loss_fn_inputs.emplace("logprobs", tensor_data(std::move(logprobs)));
  d.loss_fn_inputs.emplace("advantages", tensor_data(std::move(advantages)));
  return d;
}

inline double loss_sum(const forward_backward_output& out) { return out.metrics.at("loss:sum"); }

inline std::vector<float> logprobs_of(const forward_backward_output& out, std::size_t i) {
  auto span = out.loss_fn_outputs.at(i).at("logprobs").floats();
  return {span.begin(), span.end()};
}

/// Logprobs of every next token of `tokens` under `weights` (the dense, merged matrices), computed
/// the textbook way: concat, matrix-vector products, tanh, softmax.
inline std::vector<std::vector<double>> reference_logprobs(const detail::dense_weights& w,
                                                           const std::vector<token_id>& tokens) {
  const int d = w.dims.d, h = w.dims.hidden, v = w.dims.vocab;
  std::vector<std::vector<double>> out;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const int t = tokens[i], p = i == 0 ? byte_tokenizer::bos_token : tokens[i - 1];
    std::vector<double> c(2 * d), x(d), hid(h), y(d), z(v);
    for (int k = 0; k < d; ++k) {
      c[k] = w.embed[t * d + k];
      c[d + k] = w.embed[p * d + k];
    }
    for (int o = 0; o < d; ++o) {
      double s = 0;
      for (int k = 0; k < 2 * d; ++k) s += w.mix[o * 2 * d + k] * c[k];
      x[o] = c[o] + s;
    }
    for (int o = 0; o < h; ++o) {
      double s = w.up_bias[o];
      for (int k = 0; k < d; ++k) s += w.up[o * d + k] * x[k];
      hid[o] = std::tanh(s);
    }
    for (int o = 0; o < d; ++o) {
      double s = 0;
      for (int k = 0; k < h; ++k) s += w.down[o * h + k] * hid[k];
      y[o] = x[o] + s;
    }
    double m = -1e300;
    for (int o = 0; o < v; ++o) {
      double s = w.unembed_bias[o];
      for (int k = 0; k < d; ++k) s += w.unembed[o * d + k] * y[k];
      z[o] = s;
      m = std::max(m, s);
    }
    double sum = 0;
    for (double zz : z) sum += std::exp(zz - m);
    for (auto& zz : z) zz -= m + std::log(sum);
    out.push_back(std::move(z));
  }
  return out;
}

/// Runs `f` and returns the tinker::invalid_argument message it throws ("" + a test failure if
/// it does not throw one).
template <class F>
std::string invalid_argument_message(F&& f) {
  try {
    f();
  } catch (const tinker::invalid_argument& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("expected tinker::invalid_argument, got: " << e.what());
    return {};
  }
  FAIL("expected tinker::invalid_argument, nothing was thrown");
  return {};
}

template <class F>
std::string protocol_error_message(F&& f) {
  try {
    f();
  } catch (const tinker::protocol_error& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("expected tinker::protocol_error, got: " << e.what());
    return {};
  }
  FAIL("expected tinker::protocol_error, nothing was thrown");
  return {};
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace tinker::local::test
