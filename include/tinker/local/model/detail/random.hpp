// Random numbers for the local model: splitmix64 (seeding, stream derivation), xoshiro256**
// (the generator) and a normal sampler of our own. The std:: distributions are
// implementation-defined, and our weights and samples must be bit-reproducible from their seeds,
// so everything here uses integer arithmetic and +, -, *, /, sqrt on doubles only (no libm).
#pragma once

#include <cmath>
#include <cstdint>

namespace tinker::local::detail {

/// One splitmix64 step: advances `state` and returns a well-mixed 64-bit value.
constexpr std::uint64_t splitmix64_next(std::uint64_t& state) noexcept {
  state += 0x9e3779b97f4a7c15ull;
  std::uint64_t z = state;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/// An independent seed for sub-stream `stream` of `seed` (e.g. one per weight tensor, one per
/// sample), so that adding a stream never shifts the numbers of another.
constexpr std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t stream) noexcept {
  std::uint64_t s = seed ^ (stream * 0xd1b54a32d192ed03ull + 0x632be59bd9b4e019ull);
  splitmix64_next(s);
  return splitmix64_next(s);
}

/// Natural logarithm from IEEE basic operations only (frexp is exact): log(x) = e ln2 + 2 atanh(f)
/// with f = (m - 1) / (m + 1), |f| < 0.172, summed far past double precision. For x > 0.
inline double portable_log(double x) noexcept {
  int e = 0;
  double m = std::frexp(x, &e);  // x = m 2^e, m in [0.5, 1)
  if (m < 0.70710678118654752440) {
    m *= 2.0;
    --e;
  }
  const double f = (m - 1.0) / (m + 1.0);
  const double f2 = f * f;
  double series = 0.0;  // 1 + f2/3 + f2^2/5 + ... (Horner, 13 terms: f2^13 < 1e-19)
  for (int k = 12; k >= 0; --k) series = series * f2 + 1.0 / static_cast<double>(2 * k + 1);
  return static_cast<double>(e) * 0.69314718055994530942 + 2.0 * f * series;
}

/// xoshiro256** (Blackman and Vigna), seeded through splitmix64.
class xoshiro256ss {
public:
  explicit xoshiro256ss(std::uint64_t seed) noexcept {
    for (auto& w : s_) w = splitmix64_next(seed);
  }

  std::uint64_t next() noexcept {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  /// Uniform in [0, 1) with 53 random bits.
  double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  /// Standard normal, Marsaglia's polar method (with portable_log, so the values are the same on
  /// every IEEE-754 platform).
  double normal() noexcept {
    for (;;) {
      const double u = 2.0 * uniform() - 1.0;
      const double v = 2.0 * uniform() - 1.0;
      const double s = u * u + v * v;
      if (s >= 1.0 || s == 0.0) continue;
      return u * std::sqrt(-2.0 * portable_log(s) / s);
    }
  }

private:
  static constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }

  std::uint64_t s_[4];
};

}  // namespace tinker::local::detail
