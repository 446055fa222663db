// base_model: the frozen, seeded random byte LM that LoRA adapters train on, and the engine's list
// of models. Immutable after construction: share it as std::shared_ptr<const base_model> and read
// it from any thread.
#pragma once

#include <tinker/byte_tokenizer.hpp>
#include <tinker/error.hpp>
#include <tinker/local/model/detail/forward.hpp>
#include <tinker/local/model/detail/random.hpp>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace tinker::local {

/// What a base model is: its name (what clients ask for), architecture label, sizes, the seed its
/// weights come from, the longest sequence it accepts, and its tokenizer.
struct base_model_spec {
  std::string name;
  std::string arch;
  int d_model = 32;
  int d_hidden = 64;
  std::uint64_t seed = 0;
  int max_context_length = 4096;
  std::string tokenizer_id = std::string(byte_tokenizer::tokenizer_id);
};

/// The models the local engine serves.
inline std::vector<base_model_spec> default_base_models() {
  return {
      base_model_spec{"tinker-local/byte-lm-tiny", "byte-lm", 32, 64, 0x7117'0001'5eed'0032ull, 4096,
                      std::string(byte_tokenizer::tokenizer_id)},
      base_model_spec{"tinker-local/byte-lm-small", "byte-lm", 64, 128, 0x7117'0002'5eed'0064ull, 4096,
                      std::string(byte_tokenizer::tokenizer_id)},
  };
}

class base_model {
  struct private_tag {};

public:
  static constexpr int vocab_size = byte_tokenizer::vocab_size;

  /// Generates the weights of `spec` from its seed. Throws tinker::invalid_argument for a spec
  /// that is not a model (empty name, sizes out of range, other tokenizer).
  static std::shared_ptr<const base_model> create(const base_model_spec& spec) {
    return std::make_shared<const base_model>(private_tag{}, spec);
  }

  base_model(private_tag, base_model_spec spec) : spec_(std::move(spec)) {
    validate(spec_);
    weights_ = generate(spec_);
    tables_ = detail::make_forward_tables(weights_, weights_.mix, weights_.up, weights_.down, weights_.unembed);
  }

  const base_model_spec& spec() const noexcept { return spec_; }
  const std::string& name() const noexcept { return spec_.name; }
  detail::model_dims dims() const noexcept { return weights_.dims; }

  /// Internal: the dense weights and the forward tables (for sampling without an adapter).
  const detail::dense_weights& weights() const noexcept { return weights_; }
  const detail::forward_tables& tables() const noexcept { return tables_; }

private:
  static void validate(const base_model_spec& s) {
    auto fail = [&](const std::string& what) {
      throw tinker::invalid_argument("base_model_spec '" + s.name + "': " + what);
    };
    if (s.name.empty()) throw tinker::invalid_argument("base_model_spec: name is empty");
    if (s.d_model < 1 || s.d_model > 4096) fail("d_model must be in [1, 4096], got " + std::to_string(s.d_model));
    if (s.d_hidden < 1 || s.d_hidden > 16384) fail("d_hidden must be in [1, 16384], got " + std::to_string(s.d_hidden));
    if (s.max_context_length < 1)
      fail("max_context_length must be positive, got " + std::to_string(s.max_context_length));
    if (s.tokenizer_id != byte_tokenizer::tokenizer_id)
      fail("tokenizer_id must be '" + std::string(byte_tokenizer::tokenizer_id) + "', got '" + s.tokenizer_id + "'");
  }

  /// Seeded weights, one random stream per tensor. Scales keep every pre-activation near unit
  /// variance, so the base model's next-byte distribution is varied but far from one-hot
  /// (its loss starts near log V and there is room both to learn and to sample diversely).
  static detail::dense_weights generate(const base_model_spec& s) {
    detail::dense_weights w;
    w.dims = detail::model_dims{vocab_size, s.d_model, s.d_hidden};
    const auto v = w.dims.v(), d = w.dims.dm(), h = w.dims.h();
    auto fill = [&](std::vector<double>& out, std::size_t n, std::uint64_t stream, double stddev) {
      detail::xoshiro256ss rng(detail::derive_seed(s.seed, stream));
      out.resize(n);
      for (auto& x : out) x = stddev * rng.normal();
    };
    const double dd = static_cast<double>(d), hh = static_cast<double>(h);
    fill(w.embed, v * d, 1, 1.0);
    fill(w.mix, d * 2 * d, 2, 0.5 / std::sqrt(2.0 * dd));
    fill(w.up, h * d, 3, 1.0 / std::sqrt(dd));
    fill(w.up_bias, h, 4, 0.5);
    fill(w.down, d * h, 5, 1.0 / std::sqrt(hh));
    fill(w.unembed, v * d, 6, 0.6 / std::sqrt(dd));
    fill(w.unembed_bias, v, 7, 0.5);
    return w;
  }

  base_model_spec spec_;
  detail::dense_weights weights_;
  detail::forward_tables tables_;
};

}  // namespace tinker::local
