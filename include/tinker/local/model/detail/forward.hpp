// The forward pass of the byte LM, shared by training and sampling.
//
//   context     current token t, previous token p (BOS before the first position)
//   "attn"      x = E[t] + Wa [E[t]; E[p]]            Wa: d x 2d
//   "mlp"       h = tanh(W1 x + b1), y = x + W2 h      W1: H x d, W2: d x H
//   "unembed"   z = U y + bu                           U: V x d
//
// Training and sampling run the very same kernels on the very same tables, so a sampled token's
// logprob at temperature 1 is bit-identical to what forward_backward reports for it. Dot products
// use a fixed summation order (no dependence on block size or on which rows share a block).
#pragma once

#include <tinker/types/model_input.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace tinker::local::detail {

struct model_dims {
  int vocab = 0;   ///< V
  int d = 0;       ///< d_model
  int hidden = 0;  ///< H

  std::size_t v() const noexcept { return static_cast<std::size_t>(vocab); }
  std::size_t dm() const noexcept { return static_cast<std::size_t>(d); }
  std::size_t h() const noexcept { return static_cast<std::size_t>(hidden); }
};

/// Sum of a[i] * b[i] with four interleaved partial sums: a fixed order (deterministic), and
/// independent dependency chains (fast even without -ffast-math).
inline double dot(const double* a, const double* b, std::size_t n) noexcept {
  double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

/// y += alpha * x
inline void axpy(double alpha, const double* x, double* y, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

/// log(sum(exp(z))) computed stably.
inline double log_sum_exp(const double* z, std::size_t n) noexcept {
  double m = z[0];
  for (std::size_t i = 1; i < n; ++i) m = std::max(m, z[i]);
  double s = 0.0;
  for (std::size_t i = 0; i < n; ++i) s += std::exp(z[i] - m);
  return m + std::log(s);
}

/// The weights of a model in dense form (row-major). For a base model these are the seeded random
/// weights; merged with an adapter they are the effective weights.
struct dense_weights {
  model_dims dims;
  std::vector<double> embed;         ///< E  [V x d]
  std::vector<double> mix;           ///< Wa [d x 2d]
  std::vector<double> up;            ///< W1 [H x d]
  std::vector<double> up_bias;       ///< b1 [H]
  std::vector<double> down;          ///< W2 [d x H]
  std::vector<double> unembed;       ///< U  [V x d]
  std::vector<double> unembed_bias;  ///< bu [V]
};

/// What the forward pass reads. The attention part collapses into two per-token tables:
/// x = ctx_cur[t] + ctx_prev[p] with ctx_cur = E + Wa[:, :d] E and ctx_prev = Wa[:, d:] E.
struct forward_tables {
  model_dims dims;
  std::vector<double> ctx_cur;   ///< [V x d]
  std::vector<double> ctx_prev;  ///< [V x d]
  std::vector<double> up, up_bias, down, unembed, unembed_bias;
};

/// Builds the tables from the embeddings and biases of `base` and the four (possibly merged)
/// matrices given.
inline forward_tables make_forward_tables(const dense_weights& base, const std::vector<double>& mix,
                                          const std::vector<double>& up, const std::vector<double>& down,
                                          const std::vector<double>& unembed) {
  const auto dims = base.dims;
  const auto d = dims.dm();
  forward_tables t;
  t.dims = dims;
  t.ctx_cur.resize(dims.v() * d);
  t.ctx_prev.resize(dims.v() * d);
  for (std::size_t v = 0; v < dims.v(); ++v) {
    const double* e = &base.embed[v * d];
    for (std::size_t o = 0; o < d; ++o) {
      const double* row = &mix[o * 2 * d];
      t.ctx_cur[v * d + o] = e[o] + dot(row, e, d);
      t.ctx_prev[v * d + o] = dot(row + d, e, d);
    }
  }
  t.up = up;
  t.up_bias = base.up_bias;
  t.down = down;
  t.unembed = unembed;
  t.unembed_bias = base.unembed_bias;
  return t;
}

/// The most positions one forward_block call handles (rows share each weight row while it is in
/// L1 cache).
inline constexpr std::size_t forward_block_rows = 16;

/// Activations of up to forward_block_rows positions (row-major, one row per position).
struct forward_workspace {
  explicit forward_workspace(model_dims dims)
      : x(forward_block_rows * dims.dm()),
        h(forward_block_rows * dims.h()),
        y(forward_block_rows * dims.dm()),
        z(forward_block_rows * dims.v()),
        lse(forward_block_rows) {}

  std::vector<double> x, h, y, z, lse;
};

/// Runs the forward pass for `n` <= forward_block_rows positions with contexts (cur[i], prev[i]).
/// Afterwards row i of ws.z holds the logits and ws.lse[i] their log-sum-exp, so the logprob of
/// token k is ws.z[i * V + k] - ws.lse[i].
inline void forward_block(const forward_tables& t, const token_id* cur, const token_id* prev, std::size_t n,
                          forward_workspace& ws) noexcept {
  const auto d = t.dims.dm(), hd = t.dims.h(), vocab = t.dims.v();
  for (std::size_t i = 0; i < n; ++i) {
    const double* a = &t.ctx_cur[static_cast<std::size_t>(cur[i]) * d];
    const double* b = &t.ctx_prev[static_cast<std::size_t>(prev[i]) * d];
    double* x = &ws.x[i * d];
    for (std::size_t k = 0; k < d; ++k) x[k] = a[k] + b[k];
  }
  for (std::size_t o = 0; o < hd; ++o) {
    const double* w = &t.up[o * d];
    for (std::size_t i = 0; i < n; ++i) ws.h[i * hd + o] = std::tanh(dot(w, &ws.x[i * d], d) + t.up_bias[o]);
  }
  for (std::size_t o = 0; o < d; ++o) {
    const double* w = &t.down[o * hd];
    for (std::size_t i = 0; i < n; ++i) ws.y[i * d + o] = ws.x[i * d + o] + dot(w, &ws.h[i * hd], hd);
  }
  for (std::size_t v = 0; v < vocab; ++v) {
    const double* w = &t.unembed[v * d];
    for (std::size_t i = 0; i < n; ++i) ws.z[i * vocab + v] = dot(w, &ws.y[i * d], d) + t.unembed_bias[v];
  }
  for (std::size_t i = 0; i < n; ++i) ws.lse[i] = log_sum_exp(&ws.z[i * vocab], vocab);
}

}  // namespace tinker::local::detail
