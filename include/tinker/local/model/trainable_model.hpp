// trainable_model: a LoRA adapter on a frozen base_model, with Tinker's forward_backward (loss,
// per-token outputs, accumulated gradients) and optim_step (AdamW), snapshots for sampling and
// PEFT-style checkpoints. NOT thread-safe: run one operation per model at a time.
//
// Parameters are stored as doubles that always hold float32 values (they are rounded after every
// step, as float32 master weights would be), so a checkpoint's F32 tensors restore them exactly.
// Adam moments and pending gradients are saved as F64: save -> load with optimizer -> next step is
// bit-identical to never having saved.
#pragma once

#include <tinker/error.hpp>
#include <tinker/local/model/base_model.hpp>
#include <tinker/local/model/checkpoint.hpp>
#include <tinker/local/model/detail/adapter_files.hpp>
#include <tinker/local/model/detail/adapter_layout.hpp>
#include <tinker/local/model/detail/forward.hpp>
#include <tinker/local/model/detail/losses.hpp>
#include <tinker/local/model/lora_weights.hpp>
#include <tinker/types/session.hpp>
#include <tinker/types/training.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace tinker::local {

class trainable_model {
public:
  /// The LoRA seed used when lora_config.seed is absent.
  static constexpr std::int64_t default_lora_seed = 0x5eed'10ab;

  /// A fresh adapter (equal to the base model) for `config`. Throws tinker::invalid_argument for a
  /// null base, a rank outside [1, 4096] or no train_* flag set.
  trainable_model(std::shared_ptr<const base_model> base, const tinker::lora_config& config)
      : base_(std::move(base)), config_(config) {
    if (!base_) throw tinker::invalid_argument("trainable_model: base model is null");
    if (!config_.seed) config_.seed = default_lora_seed;
    layout_ = detail::adapter_layout::make(base_->dims(), config_);
    params_ = detail::initial_adapter_parameters(layout_, static_cast<std::uint64_t>(*config_.seed));
    reset_optimizer();
  }

  const base_model& base() const noexcept { return *base_; }
  /// Rank, train_* flags and the seed (filled in when it was absent).
  const tinker::lora_config& lora_config() const noexcept { return config_; }
  int rank() const noexcept { return layout_.rank; }
  std::size_t trainable_parameter_count() const noexcept { return layout_.parameter_count; }
  /// Number of optimizer steps taken.
  std::int64_t step() const noexcept { return step_; }

  /// Computes the loss `loss` of every datum and, unless `forward_only`, adds its gradient to the
  /// accumulated gradients (a sum over datums and calls, consumed by optim_step). Validates
  /// everything first: on tinker::invalid_argument nothing has changed.
  forward_backward_output forward_backward(std::span<const datum> data, loss_fn_type loss,
                                           const std::optional<loss_fn_config>& config, bool forward_only) {
    const auto settings = detail::parse_loss_settings(loss, config);
    if (data.empty()) throw tinker::invalid_argument("forward_backward: data is empty (no datums)");
    std::vector<detail::prepared_datum> prepared;
    prepared.reserve(data.size());
    for (std::size_t i = 0; i < data.size(); ++i)
      prepared.push_back(detail::prepare_datum(data[i], i, settings, base_->spec().max_context_length));
    return run_forward_backward(prepared, settings, forward_only);
  }

  /// Checks what forward_backward on a model of `base` would check, without computing anything:
  /// throws the same tinker::invalid_argument (naming the datum, field and value) for bad input.
  /// Lets a server refuse a request when it arrives rather than when it runs.
  static void check_forward_backward_input(const base_model& base, std::span<const datum> data, loss_fn_type loss,
                                           const std::optional<loss_fn_config>& config) {
    const auto settings = detail::parse_loss_settings(loss, config);
    if (data.empty()) throw tinker::invalid_argument("forward_backward: data is empty (no datums)");
    for (std::size_t i = 0; i < data.size(); ++i)
      (void)detail::prepare_datum(data[i], i, settings, base.spec().max_context_length);
  }

  /// Checks Adam parameters as optim_step does (see there), without changing anything.
  static void check_adam_params(const adam_params& a) {
    auto check = [](const char* field, double v, bool ok, const char* rule) {
      if (!std::isfinite(v) || !ok)
        throw tinker::invalid_argument(std::string("adam_params.") + field + " must be " + rule + ", got " +
                                       detail::format_number(v));
    };
    check("learning_rate", a.learning_rate, a.learning_rate >= 0.0, ">= 0");
    check("beta1", a.beta1, a.beta1 >= 0.0 && a.beta1 < 1.0, "in [0, 1)");
    check("beta2", a.beta2, a.beta2 >= 0.0 && a.beta2 < 1.0, "in [0, 1)");
    check("eps", a.eps, a.eps > 0.0, "> 0");
    check("weight_decay", a.weight_decay, a.weight_decay >= 0.0, ">= 0");
    check("grad_clip_norm", a.grad_clip_norm, a.grad_clip_norm >= 0.0, ">= 0 (0 = no clipping)");
  }

private:
  forward_backward_output run_forward_backward(const std::vector<detail::prepared_datum>& prepared,
                                               const detail::loss_settings& settings, bool forward_only) {
    const auto tables = detail::merged_tables(base_->weights(), layout_, params_.data());
    const auto dims = tables.dims;
    const auto vocab = dims.v();
    pass_state pass(dims, layout_, forward_only);

    forward_backward_output out;
    out.loss_fn_output_type = "ArrayRecord";
    out.loss_fn_outputs.reserve(prepared.size());
    double total = 0.0;
    token_id cur[detail::forward_block_rows], prev[detail::forward_block_rows];
    std::vector<double> coefficients;
    for (const auto& p : prepared) {
      std::vector<float> logprobs(p.rows * p.cols), losses(p.rows * p.cols);
      coefficients.assign(p.cols, 0.0);
      for (std::size_t start = 0; start < p.rows; start += detail::forward_block_rows) {
        const auto n = std::min(detail::forward_block_rows, p.rows - start);
        for (std::size_t b = 0; b < n; ++b) {
          cur[b] = p.tokens[start + b];
          prev[b] = start + b == 0 ? byte_tokenizer::bos_token : p.tokens[start + b - 1];
        }
        detail::forward_block(tables, cur, prev, n, pass.ws);
        for (std::size_t b = 0; b < n; ++b) {
          const auto row = start + b;
          const double* z = &pass.ws.z[b * vocab];
          bool any = false;
          for (std::size_t k = 0; k < p.cols; ++k) {
            const auto e = row * p.cols + k;
            const double lp = z[static_cast<std::size_t>(p.targets[e])] - pass.ws.lse[b];
            const auto l = detail::loss_of(settings, p, e, lp);
            logprobs[e] = static_cast<float>(lp);
            losses[e] = static_cast<float>(l.loss);
            total += l.loss;
            coefficients[k] = l.dloss_dlp;
            any = any || l.dloss_dlp != 0.0;
          }
          if (!forward_only && any)
            backward_row(tables, pass, b, cur[b], prev[b], &p.targets[row * p.cols], coefficients);
        }
      }
      loss_fn_output o;
      tensor_data lp_tensor(std::move(logprobs)), loss_tensor(std::move(losses));
      if (p.shape) lp_tensor.shape = loss_tensor.shape = p.shape;
      o.emplace("logprobs", std::move(lp_tensor));
      o.emplace("elementwise_loss", std::move(loss_tensor));
      out.loss_fn_outputs.push_back(std::move(o));
    }
    out.metrics.emplace("loss:sum", total);
    if (!forward_only) project_gradients(pass);
    return out;
  }

public:
  /// One AdamW step (bias-corrected, decoupled weight decay, optional global-norm clipping) on
  /// the accumulated gradients, which are then zeroed. Throws tinker::invalid_argument for
  /// learning_rate < 0, betas outside [0, 1), eps <= 0, weight_decay < 0, grad_clip_norm < 0 or
  /// any non-finite value.
  optim_step_response optim_step(const adam_params& a) {
    check_adam_params(a);

    double sq = 0.0;
    for (double g : grads_) sq += g * g;
    const double norm = std::sqrt(sq);
    // As torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is < 1.
    const double clip = a.grad_clip_norm > 0.0 ? std::min(1.0, a.grad_clip_norm / (norm + 1e-6)) : 1.0;

    ++step_;
    const double t = static_cast<double>(step_);
    const double bias1 = 1.0 - std::pow(a.beta1, t);
    const double bias2_sqrt = std::sqrt(1.0 - std::pow(a.beta2, t));
    const double step_size = a.learning_rate / bias1;
    const double decay = 1.0 - a.learning_rate * a.weight_decay;
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const double g = grads_[i] * clip;
      exp_avg_[i] = a.beta1 * exp_avg_[i] + (1.0 - a.beta1) * g;
      exp_avg_sq_[i] = a.beta2 * exp_avg_sq_[i] + (1.0 - a.beta2) * g * g;
      double p = params_[i] * decay;
      p -= step_size * exp_avg_[i] / (std::sqrt(exp_avg_sq_[i]) / bias2_sqrt + a.eps);
      params_[i] = static_cast<double>(static_cast<float>(p));
    }
    std::fill(grads_.begin(), grads_.end(), 0.0);

    optim_step_response r;
    r.metrics = std::map<std::string, double>{{"grad_norm:mean", norm}, {"learning_rate:mean", a.learning_rate}};
    return r;
  }

  /// The current adapter as an immutable snapshot (later training does not change it).
  std::shared_ptr<const lora_weights> snapshot() const {
    return lora_weights::create(*base_, layout_, config_, params_);
  }

  /// adapter_config.json + adapter_model.safetensors and, `with_optimizer`, optimizer.safetensors
  /// (Adam moments, step count and the gradients accumulated since the last step).
  checkpoint_files export_checkpoint(bool with_optimizer) const {
    checkpoint_files f;
    f.adapter_config_json = detail::write_adapter_config(base_->name(), layout_, config_);
    f.adapter_model_safetensors = detail::write_adapter_tensors(layout_, params_);
    if (with_optimizer)
      f.optimizer_safetensors =
          detail::write_optimizer(layout_, detail::optimizer_state{exp_avg_, exp_avg_sq_, grads_, step_});
    return f;
  }

  /// Replaces the adapter with the checkpoint's and, `with_optimizer`, the optimizer state too
  /// (otherwise the optimizer starts fresh). Malformed files throw tinker::protocol_error; a
  /// checkpoint of another base model, rank or set of trained parts, or a missing optimizer file,
  /// throws tinker::invalid_argument. Nothing changes when it throws.
  void import_checkpoint(const checkpoint_files& files, bool with_optimizer) {
    auto info = detail::read_checked_config(files, *base_);
    auto flags = [](const tinker::lora_config& c) {
      return std::string("train_attn=") + (c.train_attn ? "true" : "false") +
             ", train_mlp=" + (c.train_mlp ? "true" : "false") +
             ", train_unembed=" + (c.train_unembed ? "true" : "false");
    };
    if (info.lora.rank != config_.rank)
      throw tinker::invalid_argument("the checkpoint's LoRA rank is " + std::to_string(info.lora.rank) +
                                     " but this model's is " + std::to_string(config_.rank));
    if (info.lora.train_attn != config_.train_attn || info.lora.train_mlp != config_.train_mlp ||
        info.lora.train_unembed != config_.train_unembed)
      throw tinker::invalid_argument("the checkpoint trains " + flags(info.lora) + " but this model " + flags(config_));
    if (with_optimizer && !files.optimizer_safetensors)
      throw tinker::invalid_argument("the checkpoint has no optimizer state (optimizer.safetensors)");
    auto layout = detail::adapter_layout::make(base_->dims(), info.lora, info.alpha);
    auto params = detail::read_adapter_tensors(files.adapter_model_safetensors, layout);
    std::optional<detail::optimizer_state> optimizer;
    if (with_optimizer) optimizer = detail::read_optimizer(*files.optimizer_safetensors, layout);

    layout_ = std::move(layout);
    params_ = std::move(params);
    if (info.lora.seed) config_.seed = info.lora.seed;
    if (optimizer) {
      exp_avg_ = std::move(optimizer->exp_avg);
      exp_avg_sq_ = std::move(optimizer->exp_avg_sq);
      grads_ = std::move(optimizer->grad);
      step_ = optimizer->step;
    } else {
      reset_optimizer();
    }
  }

  /// For tests and tools: the flat adapter parameters (per trained part, in the order attn, mlp
  /// up, mlp down, unembed: lora_A [r x in] then lora_B [out x r], row-major), and the gradients
  /// accumulated since the last optim_step, in the same layout.
  std::span<const double> parameters() const noexcept { return params_; }
  std::span<const double> gradients() const noexcept { return grads_; }
  /// For tests and tools: replaces the parameters (taken as given, not rounded to float32).
  void set_parameters(std::span<const double> values) {
    if (values.size() != params_.size())
      throw tinker::invalid_argument("set_parameters: " + std::to_string(values.size()) + " values for " +
                                     std::to_string(params_.size()) + " parameters");
    std::copy(values.begin(), values.end(), params_.begin());
  }

private:
  /// Scratch for one forward_backward: activations and the dense gradients of the effective
  /// matrices (projected onto the factors at the end).
  struct pass_state {
    pass_state(detail::model_dims dims, const detail::adapter_layout& layout, bool forward_only)
        : ws(dims), gz(dims.v()), gy(dims.dm()), gh(dims.h()), ga(dims.h()), gx(dims.dm()) {
      if (forward_only) return;
      for (const auto& p : layout.parts) dense[static_cast<int>(p.target)].assign(p.out * p.in, 0.0);
    }
    detail::forward_workspace ws;
    std::vector<double> gz, gy, gh, ga, gx;
    std::vector<double> dense[4];  ///< by lora_target; empty = not trained
  };

  void reset_optimizer() {
    exp_avg_.assign(params_.size(), 0.0);
    exp_avg_sq_.assign(params_.size(), 0.0);
    grads_.assign(params_.size(), 0.0);
    step_ = 0;
  }

  /// Back-propagates dloss/dlp of row `b` of the current block into the dense gradients.
  void backward_row(const detail::forward_tables& t, pass_state& s, std::size_t b, token_id cur, token_id prev,
                    const token_id* targets, const std::vector<double>& coefficients) const {
    using detail::axpy;
    const auto d = t.dims.dm(), hd = t.dims.h(), vocab = t.dims.v();
    const double* z = &s.ws.z[b * vocab];
    const double lse = s.ws.lse[b];
    const double* x = &s.ws.x[b * d];
    const double* h = &s.ws.h[b * hd];
    const double* y = &s.ws.y[b * d];

    // d loss / d z_v = sum_k c_k (onehot(t_k)_v - softmax(z)_v)
    double csum = 0.0;
    for (double c : coefficients) csum += c;
    for (std::size_t v = 0; v < vocab; ++v) s.gz[v] = -csum * std::exp(z[v] - lse);
    for (std::size_t k = 0; k < coefficients.size(); ++k) s.gz[static_cast<std::size_t>(targets[k])] += coefficients[k];

    auto& g_unembed = s.dense[static_cast<int>(detail::lora_target::unembed)];
    auto& g_up = s.dense[static_cast<int>(detail::lora_target::up)];
    auto& g_down = s.dense[static_cast<int>(detail::lora_target::down)];
    auto& g_mix = s.dense[static_cast<int>(detail::lora_target::mix)];
    if (!g_unembed.empty())
      for (std::size_t v = 0; v < vocab; ++v) axpy(s.gz[v], y, &g_unembed[v * d], d);
    if (g_up.empty() && g_mix.empty()) return;

    std::fill(s.gy.begin(), s.gy.end(), 0.0);
    for (std::size_t v = 0; v < vocab; ++v) axpy(s.gz[v], &t.unembed[v * d], s.gy.data(), d);
    std::fill(s.gh.begin(), s.gh.end(), 0.0);
    for (std::size_t o = 0; o < d; ++o) axpy(s.gy[o], &t.down[o * hd], s.gh.data(), hd);
    if (!g_down.empty())
      for (std::size_t o = 0; o < d; ++o) axpy(s.gy[o], h, &g_down[o * hd], hd);
    for (std::size_t j = 0; j < hd; ++j) s.ga[j] = s.gh[j] * (1.0 - h[j] * h[j]);
    if (!g_up.empty())
      for (std::size_t j = 0; j < hd; ++j) axpy(s.ga[j], x, &g_up[j * d], d);
    if (g_mix.empty()) return;

    std::copy(s.gy.begin(), s.gy.end(), s.gx.begin());  // residual x -> y
    for (std::size_t j = 0; j < hd; ++j) axpy(s.ga[j], &t.up[j * d], s.gx.data(), d);
    const auto& embed = base_->weights().embed;
    const double* e_cur = &embed[static_cast<std::size_t>(cur) * d];
    const double* e_prev = &embed[static_cast<std::size_t>(prev) * d];
    for (std::size_t o = 0; o < d; ++o) {
      axpy(s.gx[o], e_cur, &g_mix[o * 2 * d], d);
      axpy(s.gx[o], e_prev, &g_mix[o * 2 * d + d], d);
    }
  }

  /// dW_eff -> factors: W_eff = W + s B A gives dA = s B^T dW, dB = s dW A^T.
  void project_gradients(const pass_state& s) {
    const auto r = layout_.r();
    const double scale = layout_.scale();
    for (const auto& p : layout_.parts) {
      const auto& g = s.dense[static_cast<int>(p.target)];
      const double* a = &params_[p.a_offset];
      const double* bm = &params_[p.b_offset];
      double* da = &grads_[p.a_offset];
      double* db = &grads_[p.b_offset];
      for (std::size_t o = 0; o < p.out; ++o) {
        const double* row = &g[o * p.in];
        for (std::size_t k = 0; k < r; ++k) {
          detail::axpy(scale * bm[o * r + k], row, da + k * p.in, p.in);
          db[o * r + k] += scale * detail::dot(row, a + k * p.in, p.in);
        }
      }
    }
  }

  std::shared_ptr<const base_model> base_;
  tinker::lora_config config_;
  detail::adapter_layout layout_;
  std::vector<double> params_, grads_, exp_avg_, exp_avg_sq_;
  std::int64_t step_ = 0;
};

}  // namespace tinker::local
