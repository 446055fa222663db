// Where each LoRA factor lives in an adapter's flat parameter vector, and how an adapter merges
// into the base weights: W_eff = W + (alpha / r) B A with A [r x in], B [out x r].
#pragma once

#include <tinker/error.hpp>
#include <tinker/local/model/detail/forward.hpp>
#include <tinker/local/model/detail/random.hpp>
#include <tinker/types/session.hpp>

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tinker::local::detail {

/// The four matrices an adapter can change, in parameter order.
enum class lora_target : std::uint8_t { mix, up, down, unembed };

inline constexpr std::array<lora_target, 4> all_lora_targets{lora_target::mix, lora_target::up, lora_target::down,
                                                             lora_target::unembed};

/// PEFT module name (as in `target_modules`).
constexpr std::string_view module_name(lora_target t) noexcept {
  switch (t) {
    case lora_target::mix: return "mix_proj";
    case lora_target::up: return "up_proj";
    case lora_target::down: return "down_proj";
    case lora_target::unembed: return "lm_head";
  }
  return "";
}

/// Module path inside the model, as PEFT tensor names spell it.
constexpr std::string_view module_path(lora_target t) noexcept {
  switch (t) {
    case lora_target::mix: return "model.layers.0.attn.mix_proj";
    case lora_target::up: return "model.layers.0.mlp.up_proj";
    case lora_target::down: return "model.layers.0.mlp.down_proj";
    case lora_target::unembed: return "lm_head";
  }
  return "";
}

/// `base_model.model.<path>.lora_A.weight` / `lora_B.weight`.
inline std::string lora_tensor_name(lora_target t, bool is_a) {
  return "base_model.model." + std::string(module_path(t)) + (is_a ? ".lora_A.weight" : ".lora_B.weight");
}

/// Whether lora_config `c` trains the part `t` belongs to.
constexpr bool trains(const tinker::lora_config& c, lora_target t) noexcept {
  switch (t) {
    case lora_target::mix: return c.train_attn;
    case lora_target::up:
    case lora_target::down: return c.train_mlp;
    case lora_target::unembed: return c.train_unembed;
  }
  return false;
}

struct lora_part {
  lora_target target;
  std::size_t in = 0, out = 0;  ///< the base matrix is [out x in]
  std::size_t a_offset = 0;     ///< A [r x in], row-major
  std::size_t b_offset = 0;     ///< B [out x r], row-major
};

/// The shape of an adapter: rank, alpha and the parts it trains.
struct adapter_layout {
  int rank = 0;
  double alpha = 32.0;
  std::vector<lora_part> parts;
  std::size_t parameter_count = 0;

  static constexpr double default_alpha = 32.0;
  /// The largest LoRA rank an adapter may have.
  static constexpr int max_rank = 4096;

  std::size_t r() const noexcept { return static_cast<std::size_t>(rank); }
  double scale() const noexcept { return alpha / static_cast<double>(rank); }

  const lora_part* find(lora_target t) const noexcept {
    for (const auto& p : parts)
      if (p.target == t) return &p;
    return nullptr;
  }

  /// The layout for `config` on a model of size `dims`. Throws tinker::invalid_argument for a
  /// rank < 1 or when no train_* flag is set.
  static adapter_layout make(model_dims dims, const tinker::lora_config& config, double alpha = default_alpha) {
    if (config.rank < 1 || config.rank > max_rank)
      throw tinker::invalid_argument("lora_config.rank must be in [1, " + std::to_string(max_rank) + "], got " +
                                     std::to_string(config.rank));
    if (!config.train_attn && !config.train_mlp && !config.train_unembed)
      throw tinker::invalid_argument(
          "lora_config: at least one of train_attn, train_mlp, train_unembed must be true (all are false)");
    if (!(alpha > 0.0) || !std::isfinite(alpha))
      throw tinker::invalid_argument("lora_alpha must be a positive number, got " + std::to_string(alpha));
    adapter_layout l;
    l.rank = config.rank;
    l.alpha = alpha;
    for (auto t : all_lora_targets) {
      if (!trains(config, t)) continue;
      lora_part p{t, 0, 0, 0, 0};
      switch (t) {
        case lora_target::mix: p.in = 2 * dims.dm(), p.out = dims.dm(); break;
        case lora_target::up: p.in = dims.dm(), p.out = dims.h(); break;
        case lora_target::down: p.in = dims.h(), p.out = dims.dm(); break;
        case lora_target::unembed: p.in = dims.dm(), p.out = dims.v(); break;
      }
      p.a_offset = l.parameter_count;
      p.b_offset = p.a_offset + l.r() * p.in;
      l.parameter_count = p.b_offset + p.out * l.r();
      l.parts.push_back(p);
    }
    return l;
  }
};

/// Fresh adapter parameters: A ~ N(0, 1/in) from the LoRA seed (one stream per part, so a part's
/// initialisation does not depend on which other parts are trained), B = 0 (a fresh adapter is the
/// base model). Values are rounded to float32, as every stored parameter is (checkpoints are F32).
inline std::vector<double> initial_adapter_parameters(const adapter_layout& l, std::uint64_t seed) {
  std::vector<double> params(l.parameter_count, 0.0);
  for (const auto& p : l.parts) {
    xoshiro256ss rng(derive_seed(seed, 100 + static_cast<std::uint64_t>(p.target)));
    const double stddev = 1.0 / std::sqrt(static_cast<double>(p.in));
    for (std::size_t i = 0; i < l.r() * p.in; ++i)
      params[p.a_offset + i] = static_cast<double>(static_cast<float>(stddev * rng.normal()));
  }
  return params;
}

/// W + scale * B A for part `p` of `params`, as a new [out x in] matrix.
inline std::vector<double> merge_part(const std::vector<double>& base, const adapter_layout& l, const lora_part& p,
                                      const double* params) {
  std::vector<double> out(base);
  std::vector<double> row(p.in);
  const double* a = params + p.a_offset;
  const double* b = params + p.b_offset;
  const double s = l.scale();
  for (std::size_t o = 0; o < p.out; ++o) {
    std::fill(row.begin(), row.end(), 0.0);
    for (std::size_t k = 0; k < l.r(); ++k) axpy(b[o * l.r() + k], a + k * p.in, row.data(), p.in);
    double* w = &out[o * p.in];
    for (std::size_t i = 0; i < p.in; ++i) w[i] += s * row[i];
  }
  return out;
}

/// The forward tables of `base` with the adapter `params` merged in.
inline forward_tables merged_tables(const dense_weights& base, const adapter_layout& l, const double* params) {
  auto pick = [&](lora_target t, const std::vector<double>& w) {
    const auto* p = l.find(t);
    return p ? merge_part(w, l, *p, params) : w;
  };
  return make_forward_tables(base, pick(lora_target::mix, base.mix), pick(lora_target::up, base.up),
                             pick(lora_target::down, base.down), pick(lora_target::unembed, base.unembed));
}

}  // namespace tinker::local::detail
