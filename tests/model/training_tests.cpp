// The local model's training side: tokenizer, random numbers, base model, LoRA layout, losses and
// their gradients (finite differences), Adam, learning, checkpoints and safetensors.
#include "model_test_support.hpp"

#include <tinker/local/model/model.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <set>

using namespace tinker;
using namespace tinker::local;
using namespace tinker::local::test;

// ===== tokenizer ===================================================================================

TEST_CASE("byte_tokenizer: bytes are tokens, BOS/EOS are skipped on decode, bad ids are named") {
  byte_tokenizer tok;
  static_assert(byte_tokenizer::vocab_size == 258 && byte_tokenizer::bos_token == 256 &&
                byte_tokenizer::eos_token == 257);
  CHECK(byte_tokenizer::tokenizer_id == "tinker-local/byte");
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  const auto ids = tok.encode(all);
  REQUIRE(ids.size() == 256);
  for (int b = 0; b < 256; ++b) CHECK(ids[static_cast<std::size_t>(b)] == b);
  CHECK(tok.decode(ids) == all);
  CHECK(tok.encode("hi", true) == std::vector<token_id>{256, 'h', 'i'});
  CHECK(tok.decode(std::vector<token_id>{256, 'o', 257, 'k', 257}) == "ok");
  CHECK(tok.encode("").empty());
  const auto message = invalid_argument_message([&] { tok.decode(std::vector<token_id>{'a', 300}); });
  CHECK(contains(message, "300"));
  CHECK(contains(message, "position 1"));
  CHECK(contains(invalid_argument_message([&] { tok.decode(std::vector<token_id>{-1}); }), "-1"));
}

// ===== random numbers ==============================================================================

TEST_CASE("random: portable_log matches std::log, the generators are reproducible and normal is N(0, 1)") {
  for (double x : {1e-300, 1e-10, 0.001, 0.3, 0.5, 0.7071, 0.99999, 1.0, 1.5, 2.0, 10.0, 12345.678, 1e300}) {
    CAPTURE(x);
    CHECK(std::abs(detail::portable_log(x) - std::log(x)) <= 4e-16 * std::max(1.0, std::abs(std::log(x))));
  }
  detail::xoshiro256ss a(42), b(42), c(43);
  for (int i = 0; i < 100; ++i) {
    const auto va = a.next();
    CHECK(va == b.next());
    CHECK(va != c.next());
  }
  // Fixed values: the weights of every model depend on these staying the same.
  detail::xoshiro256ss fixed(1);
  const auto first = fixed.next();
  detail::xoshiro256ss again(1);
  CHECK(again.next() == first);
  CHECK(detail::derive_seed(1, 0) != detail::derive_seed(1, 1));
  CHECK(detail::derive_seed(1, 0) != detail::derive_seed(2, 0));

  detail::xoshiro256ss n(7);
  double sum = 0, sq = 0;
  const int count = 200000;
  for (int i = 0; i < count; ++i) {
    const double x = n.normal();
    sum += x;
    sq += x * x;
  }
  CHECK(std::abs(sum / count) < 0.01);
  CHECK(std::abs(sq / count - 1.0) < 0.02);
  for (int i = 0; i < 1000; ++i) {
    const double u = n.uniform();
    CHECK((u >= 0.0 && u < 1.0));
  }
}

// ===== base model ==================================================================================

TEST_CASE("base models: the engine's list, seeded weights, spec validation") {
  const auto specs = default_base_models();
  REQUIRE(specs.size() >= 2);
  CHECK(specs[0].name == "tinker-local/byte-lm-tiny");
  CHECK(specs[0].d_model == 32);
  CHECK(specs[0].d_hidden == 64);
  CHECK(specs[1].name == "tinker-local/byte-lm-small");
  CHECK(specs[1].d_model == 64);
  CHECK(specs[1].d_hidden == 128);
  for (const auto& s : specs) {
    CHECK(!s.arch.empty());
    CHECK(s.max_context_length >= 1024);
    CHECK(s.tokenizer_id == byte_tokenizer::tokenizer_id);
  }
  CHECK(specs[0].seed != specs[1].seed);

  const auto a = base_model::create(specs[0]);
  const auto b = base_model::create(specs[0]);
  CHECK(a->spec().name == specs[0].name);
  CHECK(a->weights().embed == b->weights().embed);
  CHECK(a->weights().unembed == b->weights().unembed);
  CHECK(a->tables().ctx_cur == b->tables().ctx_cur);
  auto other = specs[0];
  other.seed += 1;
  CHECK(base_model::create(other)->weights().embed != a->weights().embed);
  const auto small = base_model::create(specs[1]);
  CHECK(small->weights().embed.size() == 258u * 64u);

  auto bad = specs[0];
  bad.d_model = 0;
  CHECK(contains(invalid_argument_message([&] { base_model::create(bad); }), "d_model"));
  bad = specs[0];
  bad.name.clear();
  CHECK(contains(invalid_argument_message([&] { base_model::create(bad); }), "name"));
  bad = specs[0];
  bad.tokenizer_id = "gpt2";
  CHECK(contains(invalid_argument_message([&] { base_model::create(bad); }), "gpt2"));
}

TEST_CASE("forward pass: logprobs equal a textbook implementation of the architecture") {
  const auto& base = tiny_base();
  trainable_model model(base, lora(4, 1));
  const auto d = text_datum("Hello, world! 0123");
  const auto tokens = d.model_input.to_ints();
  const auto targets = d.loss_fn_inputs.at("target_tokens").int64s();
  const auto out = model.forward_backward(std::span(&d, 1), loss_fn_type::cross_entropy, std::nullopt, true);
  const auto lp = logprobs_of(out, 0);
  const auto ref = reference_logprobs(base->weights(), tokens);
  REQUIRE(lp.size() == tokens.size());
  double sum = 0;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const double expected = ref[i][static_cast<std::size_t>(targets[i])];
    CHECK(std::abs(lp[i] - expected) < 1e-5);
    sum -= expected;
  }
  CHECK(std::abs(loss_sum(out) - sum) < 1e-9);
  // Each row of the reference is a distribution (sanity of the reference itself).
  double total = 0;
  for (double x : ref[3]) total += std::exp(x);
  CHECK(std::abs(total - 1.0) < 1e-12);
}

// ===== LoRA layout =================================================================================

TEST_CASE("LoRA: rank and train_* flags set the trainable parameters, a fresh adapter is the base model") {
  const auto& base = tiny_base();
  const std::size_t d = 32, h = 64, v = 258;
  const auto attn = 2 * d + d, up = d + h, down = h + d, unembed = d + v;
  for (int r : {1, 4, 8, 32}) {
    const auto ur = static_cast<std::size_t>(r);
    CHECK(trainable_model(base, lora(r, 1)).trainable_parameter_count() == ur * (attn + up + down + unembed));
    CHECK(trainable_model(base, lora(r, 1, true, false, false)).trainable_parameter_count() == ur * attn);
    CHECK(trainable_model(base, lora(r, 1, false, true, false)).trainable_parameter_count() == ur * (up + down));
    CHECK(trainable_model(base, lora(r, 1, false, false, true)).trainable_parameter_count() == ur * unembed);
  }
  CHECK(trainable_model(base, lora(8, 1)).trainable_parameter_count() >
        trainable_model(base, lora(4, 1)).trainable_parameter_count());
  const auto small = base_model::create(default_base_models()[1]);
  CHECK(trainable_model(small, lora(2, 1)).trainable_parameter_count() == 2u * (3 * 64 + 2 * (64 + 128) + 64 + 258));

  CHECK(contains(invalid_argument_message([&] { trainable_model(base, lora(4, 1, false, false, false)); }),
                 "train_attn"));
  CHECK(contains(invalid_argument_message([&] { trainable_model(base, lora(0, 1)); }), "rank"));
  CHECK(contains(invalid_argument_message([&] { trainable_model(nullptr, lora(4, 1)); }), "null"));

  // No seed: a fixed default, reported back.
  lora_config no_seed;
  no_seed.rank = 2;
  trainable_model defaulted(base, no_seed);
  REQUIRE(defaulted.lora_config().seed.has_value());
  CHECK(*defaulted.lora_config().seed == trainable_model::default_lora_seed);
  CHECK(trainable_model(base, no_seed).parameters()[0] == defaulted.parameters()[0]);

  // Fresh adapters (any seed, any parts) compute exactly what the base model computes.
  const std::vector<datum> data{text_datum("fresh adapters change nothing")};
  trainable_model m1(base, lora(4, 1)), m2(base, lora(16, 99, false, true, false));
  const auto o1 = m1.forward_backward(data, loss_fn_type::cross_entropy, std::nullopt, true);
  const auto o2 = m2.forward_backward(data, loss_fn_type::cross_entropy, std::nullopt, true);
  CHECK(o1 == o2);
  CHECK(m1.snapshot()->tables().unembed == base->tables().unembed);
  CHECK(m1.snapshot()->tables().ctx_cur == base->tables().ctx_cur);
  // Training changes exactly the selected parts of the network.
  for (int which = 0; which < 3; ++which) {
    CAPTURE(which);
    trainable_model part(base, lora(4, 1, which == 0, which == 1, which == 2));
    adam_params p;
    p.learning_rate = 0.01;
    part.forward_backward(data, loss_fn_type::cross_entropy, std::nullopt, false);
    part.optim_step(p);
    part.forward_backward(data, loss_fn_type::cross_entropy, std::nullopt, false);
    part.optim_step(p);
    const auto snap = part.snapshot();
    const auto& t = snap->tables();
    const auto& b = base->tables();
    CHECK((t.ctx_cur != b.ctx_cur) == (which == 0));
    CHECK((t.ctx_prev != b.ctx_prev) == (which == 0));
    CHECK((t.up != b.up) == (which == 1));
    CHECK((t.down != b.down) == (which == 1));
    CHECK((t.unembed != b.unembed) == (which == 2));
    CHECK(t.up_bias == b.up_bias);
    CHECK(t.unembed_bias == b.unembed_bias);
  }
  // A is seeded, B is zero.
  CHECK(m1.parameters()[0] != 0.0);
  CHECK(trainable_model(base, lora(4, 2)).parameters()[0] != m1.parameters()[0]);
  const auto params = m1.parameters();
  CHECK(std::all_of(params.end() - 258 * 4, params.end(), [](double x) { return x == 0.0; }));
}

// ===== gradients ===================================================================================

namespace {

// A named empty configuration: GCC 12 at -O3 reports a false maybe-uninitialized for a
// std::optional<std::map> temporary built from std::nullopt in an inlined call.
const std::optional<loss_fn_config> no_config;

/// Random adapter parameters, so that every gradient path is non-zero (with B = 0 the gradient of A
/// vanishes).
std::vector<double> random_parameters(std::size_t n, std::uint64_t seed, double stddev = 0.05) {
  detail::xoshiro256ss rng(seed);
  std::vector<double> p(n);
  for (auto& x : p) x = stddev * rng.normal();
  return p;
}

/// Compares model.gradients() after one forward_backward of `data` with central finite
/// differences of loss:sum, on a sample of coordinates and along random directions.
void check_gradient(trainable_model model, const std::vector<datum>& data, loss_fn_type loss,
                    const std::optional<loss_fn_config>& config) {
  REQUIRE(std::all_of(model.gradients().begin(), model.gradients().end(), [](double g) { return g == 0.0; }));
  const std::vector<double> theta(model.parameters().begin(), model.parameters().end());
  model.forward_backward(data, loss, config, false);
  const std::vector<double> grad(model.gradients().begin(), model.gradients().end());
  auto loss_at = [&](const std::vector<double>& p) {
    model.set_parameters(p);
    return loss_sum(model.forward_backward(data, loss, config, true));
  };
  const double h = 1e-5;
  detail::xoshiro256ss rng(5);
  // Coordinates: spread over the whole vector (every factor of every part) plus the largest ones.
  std::set<std::size_t> coords;
  for (std::size_t k = 0; k < 14; ++k) coords.insert(static_cast<std::size_t>(rng.next() % theta.size()));
  std::vector<std::size_t> by_size(theta.size());
  std::iota(by_size.begin(), by_size.end(), std::size_t{0});
  std::partial_sort(by_size.begin(), by_size.begin() + 4, by_size.end(),
                    [&](std::size_t a, std::size_t b) { return std::abs(grad[a]) > std::abs(grad[b]); });
  coords.insert(by_size.begin(), by_size.begin() + 4);
  double err2 = 0, norm2 = 0;
  for (auto i : coords) {
    auto plus = theta, minus = theta;
    plus[i] += h;
    minus[i] -= h;
    const double fd = (loss_at(plus) - loss_at(minus)) / (2 * h);
    err2 += (fd - grad[i]) * (fd - grad[i]);
    norm2 += grad[i] * grad[i];
  }
  CAPTURE(norm2);
  REQUIRE(norm2 > 0);
  CHECK(std::sqrt(err2 / norm2) < 1e-5);
  for (int dir = 0; dir < 2; ++dir) {
    auto u = random_parameters(theta.size(), 100 + static_cast<std::uint64_t>(dir), 1.0);
    double analytic = 0;
    for (std::size_t i = 0; i < u.size(); ++i) analytic += u[i] * grad[i];
    auto plus = theta, minus = theta;
    for (std::size_t i = 0; i < u.size(); ++i) plus[i] += h * u[i], minus[i] -= h * u[i];
    const double fd = (loss_at(plus) - loss_at(minus)) / (2 * h);
    CAPTURE(analytic);
    CAPTURE(fd);
    CHECK(std::abs(fd - analytic) <= 1e-5 * std::abs(analytic) + 1e-9);
  }
}

/// RL data whose sampler logprobs put r = exp(lp - q) at chosen places (in or out of the clip range).
std::vector<datum> rl_data(trainable_model& model, const std::vector<double>& log_ratios) {
  std::vector<datum> data;
  const std::vector<std::vector<token_id>> inputs{{256, 'a', 'b', 'c', 'd', 'e'}, {256, 'x', 'y', 200, 'z'}};
  std::size_t k = 0;
  for (const auto& input : inputs) {
    std::vector<std::int64_t> targets;
    for (std::size_t i = 1; i < input.size(); ++i) targets.push_back(input[i]);
    targets.push_back(257);
    datum probe =
        rl_datum(input, targets, std::vector<float>(input.size(), 0.f), std::vector<float>(input.size(), 0.f));
    const auto lp = logprobs_of(
        model.forward_backward(std::span(&probe, 1), loss_fn_type::importance_sampling, std::nullopt, true), 0);
    std::vector<float> q, adv;
    for (std::size_t i = 0; i < input.size(); ++i, ++k) {
      q.push_back(static_cast<float>(lp[i] - log_ratios[k % log_ratios.size()]));
      adv.push_back(static_cast<float>((k % 3 == 0 ? -1.0 : 1.0) * (0.5 + 0.25 * static_cast<double>(k % 4))));
    }
    data.push_back(rl_datum(input, targets, std::move(q), std::move(adv)));
  }
  return data;
}

}  // namespace

TEST_CASE("gradients match central finite differences for every LoRA part and every loss") {
  const auto& base = tiny_base();
  struct parts {
    const char* name;
    bool attn, mlp, unembed;
  };
  for (auto p : {parts{"attn", true, false, false}, parts{"mlp", false, true, false},
                 parts{"unembed", false, false, true}, parts{"all", true, true, true}}) {
    CAPTURE(p.name);
    trainable_model model(base, lora(2, 3, p.attn, p.mlp, p.unembed));
    model.set_parameters(random_parameters(model.trainable_parameter_count(), 11));
    // check_gradient takes a copy: each check starts from zero gradients.

    {
      CAPTURE("cross_entropy");
      auto a = text_datum("finite differences"), b = text_datum("agree");
      // Non-uniform weights, including zero and negative ones.
      std::vector<float> w{1.0f, 0.5f, 0.0f, 2.0f, -0.5f};
      w.resize(a.model_input.length(), 0.75f);
      a.loss_fn_inputs["weights"] = tensor_data(std::move(w));
      const std::vector<datum> data{a, b};
      check_gradient(model, data, loss_fn_type::cross_entropy, no_config);
    }
    {
      CAPTURE("importance_sampling");
      check_gradient(model, rl_data(model, {0.1, -0.3, 0.7, -0.05}), loss_fn_type::importance_sampling, std::nullopt);
    }
    {
      CAPTURE("ppo: ratios inside and outside the clip range, both advantage signs");
      check_gradient(model, rl_data(model, {0.1, -0.5, 0.4, -0.05, 0.0}), loss_fn_type::ppo, std::nullopt);
      check_gradient(model, rl_data(model, {0.1, -0.5, 0.4, -0.05}), loss_fn_type::ppo,
                     loss_fn_config{{"clip_low_threshold", 0.9}, {"clip_high_threshold", 1.05}});
    }
    {
      CAPTURE("cispo: every ratio clipped, so the stop-gradient weight is constant");
      check_gradient(model, rl_data(model, {1.0, -1.0, 2.0, -2.0}), loss_fn_type::cispo,
                     loss_fn_config{{"clip_low_threshold", 0.5}, {"clip_high_threshold", 1.5}});
    }
    {
      CAPTURE("dro");
      check_gradient(model, rl_data(model, {0.1, -0.3, 0.7}), loss_fn_type::dro, std::nullopt);
      check_gradient(model, rl_data(model, {0.1, -0.3, 0.7}), loss_fn_type::dro, loss_fn_config{{"beta", 0.7}});
    }
  }
}

TEST_CASE("loss definitions: values per element, stop-gradient of cispo, zero PPO gradient where clipped") {
  const auto& base = tiny_base();
  trainable_model model(base, lora(2, 3));
  model.set_parameters(random_parameters(model.trainable_parameter_count(), 12));
  // log ratios: in range for PPO defaults (0.1, -0.05), clipped (0.5 -> r = 1.65 > 1.2; -0.5 -> r = 0.61 < 0.8).
  const auto data = rl_data(model, {0.1, 0.5, -0.5, -0.05});
  auto run = [&](loss_fn_type l, const std::optional<loss_fn_config>& c = std::nullopt) {
    trainable_model m(base, lora(2, 3));
    m.set_parameters(model.parameters());
    auto out = m.forward_backward(data, l, c, false);
    return std::pair{out, std::vector<double>(m.gradients().begin(), m.gradients().end())};
  };
  const auto [is_out, is_grad] = run(loss_fn_type::importance_sampling);
  const auto [ppo_out, ppo_grad] = run(loss_fn_type::ppo);
  const auto [cispo_out, cispo_grad] = run(loss_fn_type::cispo);  // defaults 0 / 4: every ratio here is in range
  const auto [dro_out, dro_grad] = run(loss_fn_type::dro, loss_fn_config{{"beta", 0.5}});

  std::size_t k = 0;
  for (std::size_t i = 0; i < data.size(); ++i) {
    const auto lp = logprobs_of(is_out, i);
    const auto q = data[i].loss_fn_inputs.at("logprobs").floats();
    const auto a = data[i].loss_fn_inputs.at("advantages").floats();
    const auto is_loss = is_out.loss_fn_outputs[i].at("elementwise_loss").floats();
    const auto ppo_loss = ppo_out.loss_fn_outputs[i].at("elementwise_loss").floats();
    const auto cispo_loss = cispo_out.loss_fn_outputs[i].at("elementwise_loss").floats();
    const auto dro_loss = dro_out.loss_fn_outputs[i].at("elementwise_loss").floats();
    for (std::size_t j = 0; j < lp.size(); ++j, ++k) {
      const double r = std::exp(static_cast<double>(lp[j]) - q[j]);
      CHECK(is_loss[j] == doctest::Approx(-r * a[j]).epsilon(1e-5));
      CHECK(ppo_loss[j] == doctest::Approx(-std::min(r * a[j], std::clamp(r, 0.8, 1.2) * a[j])).epsilon(1e-5));
      CHECK(cispo_loss[j] == doctest::Approx(-r * lp[j] * a[j]).epsilon(1e-5));
      const double diff = lp[j] - q[j];
      CHECK(dro_loss[j] == doctest::Approx(-(lp[j] * a[j] - 0.25 * diff * diff)).epsilon(1e-5));
    }
  }
  // In range, cispo's gradient -sg(r) A dlp equals importance sampling's -r A dlp.
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < is_grad.size(); ++i) {
    diff = std::max(diff, std::abs(cispo_grad[i] - is_grad[i]));
    norm = std::max(norm, std::abs(is_grad[i]));
  }
  CHECK(diff <= 1e-12 * norm);
  // PPO differs from IS exactly by the clipped elements, whose gradient is zero: a PPO run on only
  // the unclipped elements (advantage 0 elsewhere) has the same gradient.
  auto unclipped_only = data;
  std::size_t e = 0;
  for (auto& d : unclipped_only) {
    auto adv = d.loss_fn_inputs.at("advantages").to_dense<float>();
    const auto lp = logprobs_of(is_out, static_cast<std::size_t>(&d - unclipped_only.data()));
    const auto q = d.loss_fn_inputs.at("logprobs").floats();
    for (std::size_t j = 0; j < adv.size(); ++j, ++e) {
      const double r = std::exp(static_cast<double>(lp[j]) - q[j]);
      const bool clipped = std::min(r * adv[j], std::clamp(r, 0.8, 1.2) * adv[j]) < r * adv[j];
      if (clipped) adv[j] = 0.0f;
    }
    d.loss_fn_inputs["advantages"] = tensor_data(std::move(adv));
  }
  trainable_model m(base, lora(2, 3));
  m.set_parameters(model.parameters());
  m.forward_backward(unclipped_only, loss_fn_type::ppo, std::nullopt, false);
  for (std::size_t i = 0; i < ppo_grad.size(); ++i)
    CHECK(m.gradients()[i] == doctest::Approx(ppo_grad[i]).epsilon(1e-12));
  bool any_difference = false;
  for (std::size_t i = 0; i < ppo_grad.size(); ++i) any_difference = any_difference || ppo_grad[i] != is_grad[i];
  CHECK(any_difference);  // some elements were clipped
}

TEST_CASE("forward_backward: gradients accumulate over datums and calls, forward_only leaves them alone") {
  const auto& base = tiny_base();
  const auto a = text_datum("first datum"), b = text_datum("and the second one");
  trainable_model both(base, lora(4, 9)), split(base, lora(4, 9));
  both.set_parameters(random_parameters(both.trainable_parameter_count(), 2));
  split.set_parameters(both.parameters());
  const auto out = both.forward_backward(std::vector<datum>{a, b}, loss_fn_type::cross_entropy, std::nullopt, false);
  const auto oa = split.forward_backward(std::vector<datum>{a}, loss_fn_type::cross_entropy, std::nullopt, false);
  split.forward_backward(std::vector<datum>{b}, loss_fn_type::cross_entropy, std::nullopt, true);  // no effect
  const auto ob = split.forward_backward(std::vector<datum>{b}, loss_fn_type::cross_entropy, std::nullopt, false);
  CHECK(loss_sum(out) == doctest::Approx(loss_sum(oa) + loss_sum(ob)).epsilon(1e-14));
  CHECK(out.loss_fn_outputs[0] == oa.loss_fn_outputs[0]);
  CHECK(out.loss_fn_outputs[1] == ob.loss_fn_outputs[0]);
  for (std::size_t i = 0; i < both.gradients().size(); ++i)
    CHECK(both.gradients()[i] == doctest::Approx(split.gradients()[i]).epsilon(1e-12));

  // Output shapes and metrics.
  CHECK(out.loss_fn_output_type == "ArrayRecord");
  REQUIRE(out.loss_fn_outputs.size() == 2);
  CHECK(out.loss_fn_outputs[1].at("logprobs").stored_size() == b.model_input.length());
  CHECK(out.loss_fn_outputs[1].at("elementwise_loss").stored_size() == b.model_input.length());
  for (const auto& [key, value] : out.metrics) CHECK(std::count(key.begin(), key.end(), ':') == 1);
  double sum = 0;
  for (const auto& o : out.loss_fn_outputs)
    for (float x : o.at("elementwise_loss").floats()) sum += x;
  CHECK(sum == doctest::Approx(loss_sum(out)).epsilon(1e-6));

  // forward_only alone: gradients stay zero.
  trainable_model fresh(base, lora(4, 9));
  fresh.forward_backward(std::vector<datum>{a}, loss_fn_type::cross_entropy, std::nullopt, true);
  CHECK(std::all_of(fresh.gradients().begin(), fresh.gradients().end(), [](double g) { return g == 0.0; }));
}

TEST_CASE("forward_backward: 2-D targets (N x K), sparse (CSR) inputs and per-token clip thresholds") {
  const auto& base = tiny_base();
  trainable_model model(base, lora(4, 9));
  model.set_parameters(random_parameters(model.trainable_parameter_count(), 3));
  const std::vector<token_id> input{256, 'c', 'a', 't'};
  // Two targets per position with weights: a distillation-style soft target.
  datum two;
  two.model_input = model_input::from_ints(input);
  two.loss_fn_inputs.emplace("target_tokens",
                             tensor_data(std::vector<std::int64_t>{'c', 'k', 'a', 'o', 't', 'r', 257, 's'}, {4, 2}));
  two.loss_fn_inputs.emplace("weights",
                             tensor_data(std::vector<float>{0.75f, 0.25f, 1.f, 0.f, 0.5f, 0.5f, 1.f, 0.f}, {4, 2}));
  const auto out = model.forward_backward(std::span(&two, 1), loss_fn_type::cross_entropy, std::nullopt, true);
  const auto& lp = out.loss_fn_outputs[0].at("logprobs");
  CHECK(lp.shape == std::vector<std::int64_t>{4, 2});
  // Column k equals a 1-D run on column k.
  for (int col = 0; col < 2; ++col) {
    datum one;
    one.model_input = model_input::from_ints(input);
    std::vector<std::int64_t> t;
    for (int i = 0; i < 4; ++i)
      t.push_back(two.loss_fn_inputs.at("target_tokens").int64s()[static_cast<std::size_t>(2 * i + col)]);
    one.loss_fn_inputs.emplace("target_tokens", tensor_data(t));
    one.loss_fn_inputs.emplace("weights", tensor_data(std::vector<float>(4, 1.f)));
    const auto lp1 =
        logprobs_of(model.forward_backward(std::span(&one, 1), loss_fn_type::cross_entropy, std::nullopt, true), 0);
    for (int i = 0; i < 4; ++i)
      CHECK(lp.floats()[static_cast<std::size_t>(2 * i + col)] == lp1[static_cast<std::size_t>(i)]);
  }
  // The same targets and weights as CSR-sparse tensors: the zero-weight slots become (token 0, weight 0).
  datum sparse;
  sparse.model_input = model_input::from_ints(input);
  sparse.loss_fn_inputs.emplace("target_tokens",
                                tensor_data::sparse_csr(std::vector<std::int64_t>{'c', 'k', 'a', 't', 'r', 257}, 4, 2,
                                                        {0, 2, 3, 5, 6}, {0, 1, 0, 0, 1, 0}));
  sparse.loss_fn_inputs.emplace(
      "weights", tensor_data::sparse_csr(std::vector<float>{0.75f, 0.25f, 1.f, 0.5f, 0.5f, 1.f}, 4, 2, {0, 2, 3, 5, 6},
                                         {0, 1, 0, 0, 1, 0}));
  const auto sparse_out =
      model.forward_backward(std::span(&sparse, 1), loss_fn_type::cross_entropy, std::nullopt, true);
  CHECK(loss_sum(sparse_out) == doctest::Approx(loss_sum(out)).epsilon(1e-14));

  // Per-token clip thresholds (as loss_fn_inputs) override the configuration.
  auto data = rl_data(model, {0.5, 0.5, 0.5});
  const auto per_config = loss_sum(model.forward_backward(
      data, loss_fn_type::ppo, loss_fn_config{{"clip_low_threshold", 0.5}, {"clip_high_threshold", 2.0}}, true));
  for (auto& d : data) {
    const auto n = d.model_input.length();
    d.loss_fn_inputs.emplace("clip_low_threshold", tensor_data(std::vector<float>(n, 0.5f)));
    d.loss_fn_inputs.emplace("clip_high_threshold", tensor_data(std::vector<float>(n, 2.0f)));
  }
  CHECK(loss_sum(model.forward_backward(data, loss_fn_type::ppo, std::nullopt, true)) == per_config);
}

TEST_CASE("forward_backward: bad inputs are tinker::invalid_argument naming the datum, the field and the value") {
  const auto& base = tiny_base();
  trainable_model model(base, lora(4, 9));
  const auto good = text_datum("valid");
  auto fb = [&](const datum& d, loss_fn_type loss = loss_fn_type::cross_entropy,
                std::optional<loss_fn_config> config = std::nullopt) {
    return invalid_argument_message([&] { model.forward_backward(std::vector<datum>{good, d}, loss, config, false); });
  };
  auto with = [&](auto change) {
    auto d = good;
    change(d);
    return d;
  };
  std::string m;

  m = invalid_argument_message([&] { model.forward_backward({}, loss_fn_type::cross_entropy, std::nullopt, false); });
  CHECK(contains(m, "empty"));
  m = fb(with([](datum& d) { d.loss_fn_inputs.erase("weights"); }));
  CHECK(contains(m, "data[1].loss_fn_inputs"));
  CHECK(contains(m, "missing 'weights'"));
  m = fb(with([](datum& d) { d.loss_fn_inputs.emplace("advantages", tensor_data(std::vector<float>(5, 1.f))); }));
  CHECK(contains(m, "unknown input 'advantages'"));
  CHECK(contains(m, "cross_entropy"));
  m = fb(good, loss_fn_type::importance_sampling);
  CHECK(contains(m, "data[0]"));  // the first bad datum
  CHECK(contains(m, "'weights'"));
  m = fb(with([](datum& d) { d.loss_fn_inputs["weights"] = tensor_data(std::vector<float>(3, 1.f)); }));
  CHECK(contains(m, "data[1].loss_fn_inputs.weights"));
  CHECK(contains(m, "3 rows"));
  CHECK(contains(m, "5 tokens"));
  m = fb(with([](datum& d) {
    d.loss_fn_inputs["target_tokens"] = tensor_data(std::vector<std::int64_t>{'a', 'b', 300, 'c', 'd'});
  }));
  CHECK(contains(m, "target_tokens"));
  CHECK(contains(m, "300"));
  m = fb(with([](datum& d) { d.loss_fn_inputs["target_tokens"] = tensor_data(std::vector<float>{1, 2, 3, 4, 5}); }));
  CHECK(contains(m, "int64"));
  m = fb(with([](datum& d) { d.model_input = model_input::from_ints({256, 'a', -4, 'c', 'd'}); }));
  CHECK(contains(m, "data[1].model_input"));
  CHECK(contains(m, "-4"));
  m = fb(with([](datum& d) { d.model_input.chunks.emplace_back(image_chunk{"\x89PNG", image_format::png, 1}); }));
  CHECK(contains(m, "model_input.chunks[1]"));
  CHECK(contains(m, "image"));
  m = fb(with([](datum& d) { d.model_input = model_input::empty(); }));
  CHECK(contains(m, "no tokens"));
  m = fb(with([](datum& d) {
    d.model_input = model_input::from_ints(std::vector<token_id>(5000, 'a'));
    d.loss_fn_inputs["target_tokens"] = tensor_data(std::vector<std::int64_t>(5000, 'a'));
    d.loss_fn_inputs["weights"] = tensor_data(std::vector<float>(5000, 1.f));
  }));
  CHECK(contains(m, "5000 tokens"));
  CHECK(contains(m, "4096"));
  m = fb(with([](datum& d) {
    d.loss_fn_inputs["weights"] = tensor_data(std::vector<float>{1, 1, std::nanf(""), 1, 1});
  }));
  CHECK(contains(m, "weights"));
  CHECK(contains(m, "not finite"));
  m = fb(with([](datum& d) { d.loss_fn_inputs["weights"] = tensor_data(std::vector<float>(10, 1.f), {5, 2}); }));
  CHECK(contains(m, "does not match target_tokens"));
  // Shapes whose dense size wraps around 64 bits, or wider than the vocabulary: refused before
  // anything is allocated from them.
  constexpr std::int64_t huge = std::int64_t{1} << 62;
  m = fb(with([&](datum& d) {
    d.loss_fn_inputs["target_tokens"] =
        tensor_data::sparse_csr(std::vector<std::int64_t>{1}, 5, huge, {0, 0, 1, 1, 1, 1}, {5});
  }));
  CHECK(contains(m, "data[1].loss_fn_inputs.target_tokens"));
  CHECK(contains(m, "columns"));
  m = fb(with([&](datum& d) {
    d.loss_fn_inputs["target_tokens"] = tensor_data(std::vector<std::int64_t>{}, {5, huge});
  }));
  CHECK(contains(m, "columns"));
  m = fb(with([&](datum& d) { d.loss_fn_inputs["weights"] = tensor_data(std::vector<float>{}, {5, huge}); }));
  CHECK(contains(m, "loss_fn_inputs.weights"));
  m = fb(with([](datum& d) {
    d.loss_fn_inputs["target_tokens"] = tensor_data(std::vector<std::int64_t>(5 * 259, 1), {5, 259});
  }));
  CHECK(contains(m, "259 columns"));
  m = fb(with([](datum& d) { d.loss_fn_inputs["weights"] = tensor_data(std::vector<float>{1, 1}, {5, 1}); }));
  CHECK(contains(m, "2 values"));
  // check_forward_backward_input refuses the same, with the same message, without a model.
  {
    const std::vector<datum> data{good, with([](datum& d) { d.loss_fn_inputs.erase("weights"); })};
    const auto direct = invalid_argument_message(
        [&] { trainable_model::check_forward_backward_input(*base, data, loss_fn_type::cross_entropy, std::nullopt); });
    CHECK(direct == fb(data[1]));
    CHECK_NOTHROW(trainable_model::check_forward_backward_input(*base, std::vector<datum>{good},
                                                                loss_fn_type::cross_entropy, std::nullopt));
    adam_params a;
    a.beta2 = 1.0;
    CHECK(contains(invalid_argument_message([&] { trainable_model::check_adam_params(a); }), "beta2"));
  }
  m = fb(good, loss_fn_type::cross_entropy, loss_fn_config{{"beta", 0.1}});
  CHECK(contains(m, "loss_fn_config"));
  CHECK(contains(m, "'beta'"));
  m = invalid_argument_message([&] {
    model.forward_backward(rl_data(model, {0.0}), loss_fn_type::ppo, loss_fn_config{{"clip_low_threshold", 1.5}},
                           false);
  });
  CHECK(contains(m, "clip_low_threshold"));
  CHECK(contains(m, "1.5"));
  m = invalid_argument_message([&] {
    model.forward_backward(rl_data(model, {0.0}), loss_fn_type::dro, loss_fn_config{{"clip_high_threshold", 2.0}},
                           false);
  });
  CHECK(contains(m, "unknown key 'clip_high_threshold'"));
  CHECK(contains(m, "beta"));
  // Nothing was accumulated by the failed calls.
  CHECK(std::all_of(model.gradients().begin(), model.gradients().end(), [](double g) { return g == 0.0; }));
}

// ===== Adam ========================================================================================

TEST_CASE("optim_step: AdamW with bias correction, decoupled weight decay, clipping, gradients are consumed") {
  const auto& base = tiny_base();
  const std::vector<datum> data{text_datum("adam adam adam")};
  trainable_model model(base, lora(4, 9));
  model.set_parameters(random_parameters(model.trainable_parameter_count(), 4));
  {
    // Re-round to float32 as the optimizer keeps parameters.
    std::vector<double> p(model.parameters().begin(), model.parameters().end());
    for (auto& x : p) x = static_cast<double>(static_cast<float>(x));
    model.set_parameters(p);
  }
  const std::vector<double> before(model.parameters().begin(), model.parameters().end());
  model.forward_backward(data, loss_fn_type::cross_entropy, std::nullopt, false);
  const std::vector<double> g(model.gradients().begin(), model.gradients().end());
  adam_params p;
  p.learning_rate = 0.01;
  p.weight_decay = 0.1;
  p.eps = 1e-8;
  const auto r = model.optim_step(p);
  REQUIRE(r.metrics.has_value());
  double norm = 0;
  for (double x : g) norm += x * x;
  CHECK(r.metrics->at("grad_norm:mean") == doctest::Approx(std::sqrt(norm)).epsilon(1e-12));
  CHECK(r.metrics->at("learning_rate:mean") == 0.01);
  for (const auto& [key, value] : *r.metrics) CHECK(std::count(key.begin(), key.end(), ':') == 1);
  // First step: m_hat = g, v_hat = g^2, so p <- p (1 - lr wd) - lr g / (|g| + eps).
  for (std::size_t i = 0; i < g.size(); i += 37) {
    const double expected = before[i] * (1 - 0.01 * 0.1) - 0.01 * g[i] / (std::abs(g[i]) + 1e-8);
    CHECK(model.parameters()[i] == doctest::Approx(expected).epsilon(1e-6));
    CHECK(model.parameters()[i] == static_cast<double>(static_cast<float>(model.parameters()[i])));  // float32 values
  }
  CHECK(model.step() == 1);
  CHECK(std::all_of(model.gradients().begin(), model.gradients().end(), [](double x) { return x == 0.0; }));

  // Clipping: with eps large the step is proportional to the (clipped) gradient.
  trainable_model clipped(base, lora(4, 9)), free(base, lora(4, 9));
  clipped.set_parameters(before);
  free.set_parameters(before);
  clipped.forward_backward(data, loss_fn_type::cross_entropy, std::nullopt, false);
  free.forward_backward(data, loss_fn_type::cross_entropy, std::nullopt, false);
  adam_params q;
  q.learning_rate = 1000.0;
  q.eps = 1e6;
  auto qc = q;
  qc.grad_clip_norm = std::sqrt(norm) / 4;
  const auto rc = clipped.optim_step(qc);
  free.optim_step(q);
  CHECK(rc.metrics->at("grad_norm:mean") == doctest::Approx(std::sqrt(norm)));  // reported before clipping
  const auto big = static_cast<std::size_t>(
      std::max_element(g.begin(), g.end(), [](double a, double b) { return std::abs(a) < std::abs(b); }) - g.begin());
  const double step_free = free.parameters()[big] - before[big];
  const double step_clipped = clipped.parameters()[big] - before[big];
  CHECK(step_clipped / step_free == doctest::Approx(0.25).epsilon(1e-3));

  // Validation.
  auto bad = [&](auto change) {
    adam_params a;
    change(a);
    return invalid_argument_message([&] { model.optim_step(a); });
  };
  CHECK(contains(bad([](adam_params& a) { a.learning_rate = -1; }), "learning_rate"));
  CHECK(contains(bad([](adam_params& a) { a.beta1 = 1.0; }), "beta1"));
  CHECK(contains(bad([](adam_params& a) { a.beta2 = -0.1; }), "beta2"));
  CHECK(contains(bad([](adam_params& a) { a.eps = 0; }), "eps"));
  CHECK(contains(bad([](adam_params& a) { a.weight_decay = -0.5; }), "-0.5"));
  CHECK(contains(bad([](adam_params& a) { a.grad_clip_norm = std::numeric_limits<double>::infinity(); }),
                 "grad_clip_norm"));
  CHECK(contains(bad([](adam_params& a) { a.learning_rate = std::nan(""); }), "learning_rate"));
  CHECK(model.step() == 1);
}

// ===== learning ====================================================================================

TEST_CASE("learning: cross_entropy with Adam halves the loss of a sentence within 30 steps") {
  const auto& base = tiny_base();
  trainable_model model(base, lora(8, 21));
  const std::vector<datum> data{text_datum("The quick brown fox jumps over the dog.")};  // 39 bytes
  adam_params p;
  p.learning_rate = 0.02;
  double first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    last = loss_sum(model.forward_backward(data, loss_fn_type::cross_entropy, std::nullopt, false));
    if (step == 0) first = last;
    model.optim_step(p);
  }
  last = loss_sum(model.forward_backward(data, loss_fn_type::cross_entropy, std::nullopt, true));
  CAPTURE(first);
  CAPTURE(last);
  CHECK(first > 100.0);  // ~log(258) per byte
  CHECK(last < 0.5 * first);
}

TEST_CASE("learning: importance sampling with a group-mean baseline raises a lowercase-letter reward") {
  const auto& base = tiny_base();
  trainable_model model(base, lora(8, 7));
  sample_request request;
  request.prompt = model_input::from_ints({byte_tokenizer::bos_token});
  request.num_samples = 16;
  request.sampling_params.max_tokens = 8;
  auto reward = [](const std::vector<token_id>& tokens) {
    double lower = 0;
    for (auto t : tokens) lower += (t >= 'a' && t <= 'z');
    return tokens.empty() ? 0.0 : lower / static_cast<double>(tokens.size());
  };
  adam_params p;
  p.learning_rate = 0.02;
  std::vector<double> means;
  for (int iteration = 0; iteration < 30; ++iteration) {
    const auto weights = model.snapshot();
    const sample_job job{&request, static_cast<std::uint64_t>(1000 + iteration)};
    const auto response = sample_batch(*base, weights.get(), std::span(&job, 1)).at(0);
    std::vector<double> rewards;
    for (const auto& s : response.sequences) rewards.push_back(reward(s.tokens));
    const double mean = std::accumulate(rewards.begin(), rewards.end(), 0.0) / static_cast<double>(rewards.size());
    means.push_back(mean);
    std::vector<datum> batch;
    for (std::size_t i = 0; i < response.sequences.size(); ++i) {
      const auto& s = response.sequences[i];
      std::vector<token_id> input{byte_tokenizer::bos_token};
      input.insert(input.end(), s.tokens.begin(), s.tokens.end() - 1);
      batch.push_back(rl_datum(std::move(input), std::vector<std::int64_t>(s.tokens.begin(), s.tokens.end()),
                               *s.logprobs,
                               std::vector<float>(s.tokens.size(), static_cast<float>(rewards[i] - mean))));
    }
    const auto out = model.forward_backward(batch, loss_fn_type::importance_sampling, std::nullopt, false);
    if (iteration == 0) {
      // On-policy: the sampler's logprobs are the model's, so every ratio is exactly 1.
      for (std::size_t i = 0; i < batch.size(); ++i)
        CHECK(logprobs_of(out, i) == std::vector<float>(batch[i].loss_fn_inputs.at("logprobs").floats().begin(),
                                                        batch[i].loss_fn_inputs.at("logprobs").floats().end()));
    }
    model.optim_step(p);
  }
  const double early = (means[0] + means[1] + means[2]) / 3;
  const double late = (means[27] + means[28] + means[29]) / 3;
  CAPTURE(early);
  CAPTURE(late);
  CHECK(early < 0.3);
  CHECK(late > early + 0.3);
}

TEST_CASE("determinism: same seeds give bit-identical training, other seeds differ") {
  const auto& base = tiny_base();
  const std::vector<datum> data{text_datum("deterministic"), text_datum("training run")};
  auto train = [&](std::int64_t seed) {
    trainable_model m(base, lora(4, seed));
    std::vector<double> losses;
    adam_params p;
    p.learning_rate = 0.02;
    for (int i = 0; i < 3; ++i) {
      losses.push_back(loss_sum(m.forward_backward(data, loss_fn_type::cross_entropy, std::nullopt, false)));
      m.optim_step(p);
    }
    return std::pair{losses, std::vector<double>(m.parameters().begin(), m.parameters().end())};
  };
  const auto a = train(5), b = train(5), c = train(6);
  CHECK(a.first == b.first);
  CHECK(a.second == b.second);
  CHECK(a.first[0] == c.first[0]);  // fresh adapters are the base model
  CHECK(a.first[2] != c.first[2]);
  CHECK(a.second != c.second);
}

// ===== checkpoints =================================================================================

TEST_CASE("checkpoints: save -> load with optimizer reproduces the next steps exactly, without it the weights") {
  const auto& base = tiny_base();
  const std::vector<datum> data{text_datum("resume me exactly, please")};
  adam_params p;
  p.learning_rate = 0.02;
  p.weight_decay = 0.01;
  trainable_model original(base, lora(4, 1234));
  for (int i = 0; i < 3; ++i) {
    original.forward_backward(data, loss_fn_type::cross_entropy, std::nullopt, false);
    original.optim_step(p);
  }
  // Pending gradients are part of the state too.
  original.forward_backward(data, loss_fn_type::cross_entropy, std::nullopt, false);
  const auto files = original.export_checkpoint(true);
  REQUIRE(files.optimizer_safetensors.has_value());
  CHECK(!original.export_checkpoint(false).optimizer_safetensors.has_value());

  trainable_model resumed(base, lora(4, 777));  // another seed: everything comes from the files
  resumed.import_checkpoint(files, true);
  CHECK(resumed.step() == 3);
  CHECK(std::equal(resumed.parameters().begin(), resumed.parameters().end(), original.parameters().begin()));
  CHECK(*resumed.lora_config().seed == 1234);
  for (int i = 0; i < 2; ++i) {
    original.optim_step(p);
    resumed.optim_step(p);
    const auto lo = loss_sum(original.forward_backward(data, loss_fn_type::cross_entropy, std::nullopt, false));
    const auto lr = loss_sum(resumed.forward_backward(data, loss_fn_type::cross_entropy, std::nullopt, false));
    CHECK(lo == lr);
  }
  CHECK(std::equal(resumed.parameters().begin(), resumed.parameters().end(), original.parameters().begin()));

  // Weights only: the same weights, a fresh optimizer (so the next step differs).
  trainable_model weights_only(base, lora(4, 5));
  weights_only.import_checkpoint(files, false);
  trainable_model reference(base, lora(4, 5));
  reference.import_checkpoint(files, true);
  CHECK(std::equal(weights_only.parameters().begin(), weights_only.parameters().end(), reference.parameters().begin()));
  CHECK(weights_only.step() == 0);
  CHECK(
      std::all_of(weights_only.gradients().begin(), weights_only.gradients().end(), [](double g) { return g == 0.0; }));
  weights_only.forward_backward(data, loss_fn_type::cross_entropy, std::nullopt, false);
  reference.forward_backward(data, loss_fn_type::cross_entropy, std::nullopt, false);
  weights_only.optim_step(p);
  reference.optim_step(p);
  CHECK(loss_sum(weights_only.forward_backward(data, loss_fn_type::cross_entropy, std::nullopt, true)) !=
        loss_sum(reference.forward_backward(data, loss_fn_type::cross_entropy, std::nullopt, true)));

  // The sampler path: load_lora_weights gives the snapshot's weights.
  const auto loaded = load_lora_weights(original.export_checkpoint(false), *base);
  const auto snap = original.snapshot();
  CHECK(loaded->rank() == 4);
  CHECK(loaded->trainable_parameter_count() == original.trainable_parameter_count());
  CHECK(loaded->tables().unembed == snap->tables().unembed);
  CHECK(loaded->tables().ctx_prev == snap->tables().ctx_prev);
  CHECK(loaded->lora_config() == original.lora_config());
}

TEST_CASE("checkpoints: PEFT layout of adapter_config.json and adapter_model.safetensors") {
  const auto& base = tiny_base();
  trainable_model model(base, lora(4, 42, false, true, true));
  const auto files = model.export_checkpoint(true);
  const auto config = boost::json::parse(files.adapter_config_json).as_object();
  CHECK(config.at("peft_type") == "LORA");
  CHECK(config.at("task_type") == "CAUSAL_LM");
  CHECK(config.at("r") == 4);
  CHECK(config.at("lora_alpha").to_number<double>() == 32.0);
  CHECK(config.at("base_model_name_or_path") == "tinker-local/byte-lm-tiny");
  CHECK(config.at("target_modules") == boost::json::array{"up_proj", "down_proj", "lm_head"});
  CHECK(config.at("train_attn") == false);
  CHECK(config.at("train_mlp") == true);
  CHECK(config.at("train_unembed") == true);
  CHECK(config.at("seed") == 42);

  const safetensors_reader adapter(files.adapter_model_safetensors);
  CHECK(adapter.tensors().size() == 6);
  const auto& a = adapter.at("base_model.model.lm_head.lora_A.weight");
  CHECK(a.dtype == safetensors_dtype::f32);
  CHECK(a.shape == std::vector<std::uint64_t>{4, 32});
  CHECK(adapter.at("base_model.model.lm_head.lora_B.weight").shape == std::vector<std::uint64_t>{258, 4});
  CHECK(adapter.at("base_model.model.model.layers.0.mlp.up_proj.lora_A.weight").shape ==
        std::vector<std::uint64_t>{4, 32});
  CHECK(adapter.at("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight").shape ==
        std::vector<std::uint64_t>{32, 4});
  CHECK(adapter.find("base_model.model.model.layers.0.attn.mix_proj.lora_A.weight") == nullptr);
  // The file's values are the parameters.
  const auto values = adapter.read_floats(a);
  const auto params = model.parameters();
  const auto offset = static_cast<std::size_t>(4 * 32 + 64 * 4 + 4 * 64 + 32 * 4);  // after up (A, B) and down (A, B)
  for (std::size_t i = 0; i < values.size(); ++i) CHECK(values[i] == params[offset + i]);

  const safetensors_reader optimizer(*files.optimizer_safetensors);
  CHECK(optimizer.metadata().at("step") == "0");
  CHECK(optimizer.at("base_model.model.lm_head.lora_B.weight.exp_avg_sq").dtype == safetensors_dtype::f64);
}

TEST_CASE("checkpoints: mismatches are invalid_argument, malformed files protocol_error, nothing changes on error") {
  const auto& base = tiny_base();
  trainable_model model(base, lora(4, 1));
  const std::vector<double> before(model.parameters().begin(), model.parameters().end());
  const auto other_rank = trainable_model(base, lora(8, 1)).export_checkpoint(true);
  const auto other_parts = trainable_model(base, lora(4, 1, true, false, true)).export_checkpoint(true);
  const auto small = base_model::create(default_base_models()[1]);
  const auto other_base = trainable_model(small, lora(4, 1)).export_checkpoint(true);
  const auto good = trainable_model(base, lora(4, 3)).export_checkpoint(true);

  CHECK(contains(invalid_argument_message([&] { model.import_checkpoint(other_rank, true); }), "rank is 8"));
  CHECK(contains(invalid_argument_message([&] { model.import_checkpoint(other_parts, true); }), "train_mlp=false"));
  CHECK(contains(invalid_argument_message([&] { model.import_checkpoint(other_base, true); }), "byte-lm-small"));
  CHECK(contains(invalid_argument_message([&] { load_lora_weights(other_base, *base); }), "byte-lm-small"));
  auto no_optimizer = good;
  no_optimizer.optimizer_safetensors.reset();
  CHECK(contains(invalid_argument_message([&] { model.import_checkpoint(no_optimizer, true); }), "optimizer"));

  auto broken = good;
  broken.adapter_config_json = "{\"peft_type\": \"LORA\"";
  CHECK(contains(protocol_error_message([&] { model.import_checkpoint(broken, false); }), "adapter_config.json"));
  broken = good;
  broken.adapter_config_json = good.adapter_config_json;
  broken.adapter_config_json.replace(broken.adapter_config_json.find("\"lm_head\""), 9, "\"q_proj\"");
  CHECK(contains(protocol_error_message([&] { model.import_checkpoint(broken, false); }), "q_proj"));
  // Tensors of a rank-8 adapter under a rank-4 configuration.
  broken = good;
  broken.adapter_model_safetensors = other_rank.adapter_model_safetensors;
  const auto message = protocol_error_message([&] { model.import_checkpoint(broken, false); });
  CHECK(contains(message, "adapter_model.safetensors"));
  CHECK(contains(message, "shape"));
  broken = good;
  broken.adapter_model_safetensors.resize(broken.adapter_model_safetensors.size() - 1);
  CHECK(contains(protocol_error_message([&] { model.import_checkpoint(broken, false); }), "adapter_model.safetensors"));
  broken = good;
  broken.optimizer_safetensors = good.adapter_model_safetensors;  // not an optimizer file
  CHECK(contains(protocol_error_message([&] { model.import_checkpoint(broken, true); }), "optimizer.safetensors"));
  // A NaN weight.
  {
    safetensors_reader r(good.adapter_model_safetensors);
    const auto& t = r.at("base_model.model.lm_head.lora_A.weight");
    broken = good;
    const auto pos = static_cast<std::size_t>(t.data.data() - good.adapter_model_safetensors.data());
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::memcpy(&broken.adapter_model_safetensors[pos], &nan, 4);
    CHECK(contains(protocol_error_message([&] { model.import_checkpoint(broken, false); }), "not finite"));
  }
  CHECK(std::equal(model.parameters().begin(), model.parameters().end(), before.begin()));
}

// ===== safetensors =================================================================================

namespace {

std::string make_file(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

}  // namespace

TEST_CASE("safetensors: round trip, a hand-made reference file, and rejection of malformed files") {
  safetensors_writer w;
  const std::vector<float> f{1.5f, -2.25f, 3.0f, 0.0f, 1e-30f, -0.0f};
  const std::vector<double> d{3.141592653589793, -1e300};
  w.add("weights", {2, 3}, std::span<const float>(f));
  w.add("moments", {2}, std::span<const double>(d));
  w.add("empty", {0, 4}, std::span<const float>());
  w.add_metadata("format", "pt");
  const auto file = w.finish();
  std::uint64_t header_len = 0;
  std::memcpy(&header_len, file.data(), 8);
  CHECK(header_len % 8 == 0);  // padded: the data section is aligned

  const safetensors_reader r(file);
  CHECK(r.metadata().at("format") == "pt");
  REQUIRE(r.tensors().size() == 3);
  CHECK(r.at("weights").shape == std::vector<std::uint64_t>{2, 3});
  const auto back = r.read_floats(r.at("weights"));
  for (std::size_t i = 0; i < f.size(); ++i) CHECK(back[i] == static_cast<double>(f[i]));
  CHECK(r.read_floats(r.at("moments")) == d);
  CHECK(r.at("empty").element_count == 0);
  CHECK(contains(protocol_error_message([&] { (void)r.at("nope"); }), "nope"));
  CHECK(
      contains(invalid_argument_message([&] { w.add("weights", {1}, std::span<const float>(f.data(), 1)); }), "twice"));
  CHECK(contains(invalid_argument_message([&] { w.add("x", {4}, std::span<const float>(f.data(), 3)); }), "shape"));

  // Written by hand after the format description (as the reference implementation lays it out):
  // BF16 and F16 values, keys in any order, metadata last.
  const std::string bf16{'\x80', '\x3f', '\x00', '\xc0'};  // 1.0, -2.0
  const std::string f16{'\x00', '\x3c', '\x00', '\x38'};   // 1.0, 0.5
  const auto reference = make_file(
      R"({"b":{"dtype":"F16","shape":[2],"data_offsets":[4,8]},"a":{"dtype":"BF16","shape":[1,2],"data_offsets":[0,4]},"__metadata__":{"k":"v"}})",
      bf16 + f16);
  const safetensors_reader ref(reference, "reference.safetensors");
  CHECK(ref.tensors()[0].name == "a");  // data order
  CHECK(ref.read_floats(ref.at("a")) == std::vector<double>{1.0, -2.0});
  CHECK(ref.read_floats(ref.at("b")) == std::vector<double>{1.0, 0.5});
  CHECK(ref.metadata().at("k") == "v");

  auto rejected = [](const std::string& bytes, const std::string& expected) {
    CAPTURE(expected);
    const auto m = protocol_error_message([&] { safetensors_reader(bytes, "bad.safetensors"); });
    CAPTURE(m);
    CHECK(contains(m, "bad.safetensors"));
    CHECK(contains(m, expected));
  };
  const std::string ok_entry = R"("t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string eight(8, '\0');
  rejected("abc", "truncated");
  rejected(make_file("{" + ok_entry + "}", eight).substr(0, 20), "exceeds");
  {
    auto huge = make_file("{}", "");
    for (int i = 0; i < 8; ++i) huge[static_cast<std::size_t>(i)] = '\xff';
    rejected(huge, "exceeds");
  }
  rejected(make_file("[1,2]", ""), "not a JSON object");
  rejected(make_file("{\"t\":", ""), "not valid JSON");
  rejected(make_file(R"({"t":{"dtype":"F17","shape":[2],"data_offsets":[0,8]}})", eight), "unknown dtype 'F17'");
  rejected(make_file(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight), "needs 12 bytes");
  rejected(make_file(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", eight), "out of range");
  rejected(make_file(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", eight), "ends before it begins");
  rejected(make_file(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight), "non-negative");
  rejected(
      make_file(
          R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"u":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
          eight),
      "overlaps");
  rejected(make_file(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight), "unused");
  rejected(make_file("{" + ok_entry + "}", eight + "xx"), "cover 8");
  rejected(make_file(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", eight),
           "overflow");
  rejected(make_file(R"({"__metadata__":{"k":1}})", ""), "strings");
  rejected(make_file(R"({"t":{"dtype":"F32","shape":[2]}})", eight), "data_offsets");
  // Reading integers as floats is refused.
  const auto ints = make_file(R"({"t":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})", eight);
  const safetensors_reader ir(ints);
  CHECK(contains(protocol_error_message([&] { (void)ir.read_floats(ir.at("t")); }), "not a floating-point"));
}
