// The optimizer and the clipped RL losses against arithmetic written out by hand: AdamW with
// non-default hyper-parameters over two steps, and PPO / CISPO with clip thresholds taken from
// loss_fn_config, on ratios chosen inside and outside the clip range.
//
// Gradients of the RL losses are pinned through cross_entropy: its gradient is -w dlp for weights
// w, so a loss whose gradient coefficient is -c A (a constant per element) must produce exactly
// the gradient of cross_entropy with w = c A. That turns "zero gradient where clipped" and "the
// stop-gradient of CISPO" into equalities of whole gradient vectors.
#include "model_test_support.hpp"

#include <tinker/local/model/model.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

using namespace tinker;
using namespace tinker::local;
using namespace tinker::local::test;

namespace {

std::vector<double> parameters_of(const trainable_model& m) { return {m.parameters().begin(), m.parameters().end()}; }
std::vector<double> gradients_of(const trainable_model& m) { return {m.gradients().begin(), m.gradients().end()}; }

/// Small, reproducible, float32-representable parameters (the optimizer keeps float32 values).
std::vector<double> seeded_parameters(std::size_t n, std::uint64_t seed) {
  detail::xoshiro256ss rng(seed);
  std::vector<double> p(n);
  for (auto& x : p) x = static_cast<double>(static_cast<float>(0.05 * rng.normal()));
  return p;
}

/// One datum for an RL loss on `input` (targets = the next bytes, then EOS) whose sampler logprobs
/// put each element's ratio r = exp(lp - q) at `ratios[i]` under `model`; advantages as given.
datum rl_datum_at(trainable_model& model, const std::vector<token_id>& input, const std::vector<double>& ratios,
                  const std::vector<float>& advantages) {
  std::vector<std::int64_t> targets(input.begin() + 1, input.end());
  targets.push_back(257);
  datum probe = rl_datum(input, targets, std::vector<float>(input.size(), 0.f), std::vector<float>(input.size(), 0.f));
  const auto lp = logprobs_of(
      model.forward_backward(std::span(&probe, 1), loss_fn_type::importance_sampling, std::nullopt, true), 0);
  std::vector<float> q;
  for (std::size_t i = 0; i < input.size(); ++i) q.push_back(static_cast<float>(lp[i] - std::log(ratios[i])));
  return rl_datum(input, targets, std::move(q), advantages);
}

/// The gradient cross_entropy gives `d`'s model input and targets with per-element weights `w`.
std::vector<double> weighted_ce_gradient(const std::shared_ptr<const base_model>& base, const lora_config& l,
                                         const std::vector<double>& params, const datum& d,
                                         const std::vector<double>& w) {
  trainable_model m(base, l);
  m.set_parameters(params);
  datum ce;
  ce.model_input = d.model_input;
  ce.loss_fn_inputs.emplace("target_tokens", d.loss_fn_inputs.at("target_tokens"));
  ce.loss_fn_inputs.emplace("weights", tensor_data(std::vector<float>(w.begin(), w.end())));
  m.forward_backward(std::span(&ce, 1), loss_fn_type::cross_entropy, std::nullopt, false);
  return gradients_of(m);
}

void check_same_gradient(const std::vector<double>& got, const std::vector<double>& expected) {
  REQUIRE(got.size() == expected.size());
  double scale = 0;
  for (double x : expected) scale = std::max(scale, std::abs(x));
  REQUIRE(scale > 0);
  for (std::size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    // Relative to the largest component: the weights of the reference are rounded to float32.
    CHECK(got[i] == doctest::Approx(expected[i]).epsilon(1e-5).scale(scale));
  }
}

}  // namespace

TEST_CASE("hand-computed: AdamW with beta1=0.5, beta2=0.75, eps=1e-3, weight_decay=0.2 over two steps") {
  const auto& base = tiny_base();
  const auto l = lora(1, 21, false, false, true);  // the smallest adapter: rank 1, unembedding only
  trainable_model model(base, l);
  const auto p0 = seeded_parameters(model.trainable_parameter_count(), 8);
  model.set_parameters(p0);
  const std::vector<datum> data{text_datum("two adam steps")};

  adam_params a;
  a.learning_rate = 0.05;
  a.beta1 = 0.5;
  a.beta2 = 0.75;
  a.eps = 1e-3;
  a.weight_decay = 0.2;

  model.forward_backward(data, loss_fn_type::cross_entropy, std::nullopt, false);
  const auto g1 = gradients_of(model);
  model.optim_step(a);
  const auto p1 = parameters_of(model);
  model.forward_backward(data, loss_fn_type::cross_entropy, std::nullopt, false);
  const auto g2 = gradients_of(model);
  model.optim_step(a);
  const auto p2 = parameters_of(model);
  CHECK(model.step() == 2);

  // By hand, element by element (torch.optim.AdamW):
  //   m_t = b1 m_{t-1} + (1 - b1) g_t,  v_t = b2 v_{t-1} + (1 - b2) g_t^2
  //   p_t = p_{t-1} (1 - lr wd) - lr (m_t / (1 - b1^t)) / (sqrt(v_t / (1 - b2^t)) + eps)
  // step 1: 1 - b1 = 0.5, 1 - b2 = 0.25;  step 2: 1 - b1^2 = 0.75, 1 - b2^2 = 0.4375.
  std::size_t moved_differently = 0;
  for (std::size_t i = 0; i < p0.size(); ++i) {
    CAPTURE(i);
    const double m1 = 0.5 * g1[i], v1 = 0.25 * g1[i] * g1[i];
    const double e1 = static_cast<float>(p0[i] * (1 - 0.05 * 0.2) - 0.05 * (m1 / 0.5) / (std::sqrt(v1 / 0.25) + 1e-3));
    CHECK(p1[i] == doctest::Approx(e1).epsilon(1e-6));
    const double m2 = 0.5 * m1 + 0.5 * g2[i], v2 = 0.75 * v1 + 0.25 * g2[i] * g2[i];
    const double e2 =
        static_cast<float>(p1[i] * (1 - 0.05 * 0.2) - 0.05 * (m2 / 0.75) / (std::sqrt(v2 / 0.4375) + 1e-3));
    CHECK(p2[i] == doctest::Approx(e2).epsilon(1e-6));
    // With the default betas the second step would differ: the test sees the hyper-parameters.
    const double m2d = 0.9 * (0.1 * g1[i]) + 0.1 * g2[i], v2d = 0.999 * (0.001 * g1[i] * g1[i]) + 0.001 * g2[i] * g2[i];
    const double d2 = p1[i] * (1 - 0.05 * 0.2) - 0.05 * (m2d / 0.19) / (std::sqrt(v2d / (1 - 0.999 * 0.999)) + 1e-3);
    if (std::abs(d2 - e2) > 1e-4 * std::abs(e2) + 1e-9) ++moved_differently;
  }
  CHECK(moved_differently > p0.size() / 2);
  CHECK(std::all_of(model.gradients().begin(), model.gradients().end(), [](double g) { return g == 0.0; }));
}

TEST_CASE("hand-computed: PPO clips at loss_fn_config's thresholds, clipped elements get exactly zero gradient") {
  const auto& base = tiny_base();
  const auto l = lora(2, 5);
  trainable_model model(base, l);
  model.set_parameters(seeded_parameters(model.trainable_parameter_count(), 17));
  const auto params = parameters_of(model);
  // Thresholds 0.9 / 1.1 (the defaults are 0.8 / 1.2). Per element (r, A) and what min(rA, clip(r) A) picks:
  //   1.5,  +1   above 1.1, A > 0: clipped, loss -1.1, gradient 0
  //   0.5,  -1   below 0.9, A < 0: clipped, loss +0.9, gradient 0
  //   1.15, +2   above 1.1 (inside the default range): clipped, loss -2.2, gradient 0
  //   1.05, +1   inside: unclipped, loss -1.05, gradient coefficient -r A
  //   1.5,  -1   above 1.1 but A < 0: unclipped (rA = -1.5 < -1.1), loss +1.5
  //   0.5,  +0.5 below 0.9 but A > 0: unclipped (0.25 < 0.45), loss -0.25
  const std::vector<double> r{1.5, 0.5, 1.15, 1.05, 1.5, 0.5};
  const std::vector<float> adv{1, -1, 2, 1, -1, 0.5};
  const std::vector<double> expected_loss{-1.1, 0.9, -2.2, -1.05, 1.5, -0.25};
  const std::vector<bool> clipped{true, true, true, false, false, false};
  const auto d = rl_datum_at(model, {256, 'c', 'l', 'i', 'p', 's'}, r, adv);
  const loss_fn_config config{{"clip_low_threshold", 0.9}, {"clip_high_threshold", 1.1}};

  trainable_model m(base, l);
  m.set_parameters(params);
  const auto out = m.forward_backward(std::span(&d, 1), loss_fn_type::ppo, config, false);
  const auto losses = out.loss_fn_outputs.at(0).at("elementwise_loss").floats();
  REQUIRE(losses.size() == r.size());
  for (std::size_t i = 0; i < r.size(); ++i) {
    CAPTURE(i);
    CHECK(losses[i] == doctest::Approx(expected_loss[i]).epsilon(1e-5));
  }
  std::vector<double> w(r.size());
  for (std::size_t i = 0; i < r.size(); ++i) w[i] = clipped[i] ? 0.0 : r[i] * adv[i];
  check_same_gradient(gradients_of(m), weighted_ce_gradient(base, l, params, d, w));

  // Only clipped elements carry an advantage: the whole gradient is exactly zero.
  auto only_clipped = d;
  std::vector<float> a2(adv);
  for (std::size_t i = 0; i < a2.size(); ++i)
    if (!clipped[i]) a2[i] = 0.f;
  only_clipped.loss_fn_inputs["advantages"] = tensor_data(std::move(a2));
  trainable_model z(base, l);
  z.set_parameters(params);
  z.forward_backward(std::span(&only_clipped, 1), loss_fn_type::ppo, config, false);
  CHECK(std::all_of(z.gradients().begin(), z.gradients().end(), [](double g) { return g == 0.0; }));
  // Under the default thresholds (0.8 / 1.2) the 1.15 element is inside: not zero any more.
  trainable_model dflt(base, l);
  dflt.set_parameters(params);
  dflt.forward_backward(std::span(&only_clipped, 1), loss_fn_type::ppo, std::nullopt, false);
  CHECK(std::any_of(dflt.gradients().begin(), dflt.gradients().end(), [](double g) { return g != 0.0; }));
}

TEST_CASE("hand-computed: CISPO clamps the stop-gradient ratio to loss_fn_config's thresholds") {
  const auto& base = tiny_base();
  const auto l = lora(2, 6);
  trainable_model model(base, l);
  model.set_parameters(seeded_parameters(model.trainable_parameter_count(), 23));
  const auto params = parameters_of(model);
  // Thresholds 0.5 / 1.25 (the defaults are 0 / 4): c = clamp(r, 0.5, 1.25); loss -c lp A, gradient -c A dlp.
  const std::vector<double> r{3.0, 0.2, 1.1, 2.0, 0.8};
  const std::vector<double> c{1.25, 0.5, 1.1, 1.25, 0.8};
  const std::vector<float> adv{1, -2, 0.5, -1, 1.5};
  const auto d = rl_datum_at(model, {256, 'c', 'i', 's', 'p'}, r, adv);
  const loss_fn_config config{{"clip_low_threshold", 0.5}, {"clip_high_threshold", 1.25}};

  trainable_model m(base, l);
  m.set_parameters(params);
  const auto out = m.forward_backward(std::span(&d, 1), loss_fn_type::cispo, config, false);
  const auto losses = out.loss_fn_outputs.at(0).at("elementwise_loss").floats();
  const auto lp = logprobs_of(out, 0);
  REQUIRE(losses.size() == r.size());
  std::vector<double> w(r.size());
  for (std::size_t i = 0; i < r.size(); ++i) {
    CAPTURE(i);
    CHECK(losses[i] == doctest::Approx(-c[i] * lp[i] * adv[i]).epsilon(1e-5));
    w[i] = c[i] * adv[i];
  }
  check_same_gradient(gradients_of(m), weighted_ce_gradient(base, l, params, d, w));
  // Without the config (0 / 4) the 3.0 and 2.0 and 0.2 elements are not clamped: a different gradient.
  trainable_model dflt(base, l);
  dflt.set_parameters(params);
  dflt.forward_backward(std::span(&d, 1), loss_fn_type::cispo, std::nullopt, false);
  const auto g_default = gradients_of(dflt), g_config = gradients_of(m);
  CHECK(g_default != g_config);
}
