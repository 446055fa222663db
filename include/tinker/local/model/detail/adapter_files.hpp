// Encoding and decoding of the checkpoint files (PEFT layout):
//   adapter_config.json        peft_type "LORA", r, lora_alpha, target_modules, base model, and
//                              our own train_attn / train_mlp / train_unembed / seed
//   adapter_model.safetensors  F32 lora_A [r x in] and lora_B [out x r] per module
//   optimizer.safetensors      F64 Adam moments and pending gradients per factor; step in metadata
// Malformed or self-contradictory files are tinker::protocol_error naming the file and the field.
#pragma once

#include <tinker/error.hpp>
#include <tinker/local/model/detail/adapter_layout.hpp>
#include <tinker/local/model/safetensors.hpp>
#include <tinker/types/session.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tinker::local::detail {

inline constexpr std::string_view adapter_config_file = "adapter_config.json";
inline constexpr std::string_view adapter_model_file = "adapter_model.safetensors";
inline constexpr std::string_view optimizer_file = "optimizer.safetensors";
inline constexpr std::string_view optimizer_format = "tinker-local/adamw";

struct adapter_config_info {
  std::string base_model;
  tinker::lora_config lora;  ///< rank, train_* flags, seed (if recorded)
  double alpha = adapter_layout::default_alpha;
};

inline std::string write_adapter_config(const std::string& base_model, const adapter_layout& layout,
                                        const tinker::lora_config& config) {
  boost::json::array modules;
  for (const auto& p : layout.parts) modules.emplace_back(boost::json::string(module_name(p.target)));
  boost::json::object o;
  o["peft_type"] = "LORA";
  o["task_type"] = "CAUSAL_LM";
  o["r"] = layout.rank;
  o["lora_alpha"] = layout.alpha;
  o["lora_dropout"] = 0.0;
  o["bias"] = "none";
  o["fan_in_fan_out"] = false;
  o["inference_mode"] = true;
  o["target_modules"] = std::move(modules);
  o["base_model_name_or_path"] = base_model;
  o["train_attn"] = config.train_attn;
  o["train_mlp"] = config.train_mlp;
  o["train_unembed"] = config.train_unembed;
  if (config.seed) o["seed"] = *config.seed;
  return boost::json::serialize(o);
}

inline adapter_config_info read_adapter_config(std::string_view json) {
  const std::string file(adapter_config_file);
  auto fail = [&](const std::string& field, const std::string& problem) -> void {
    throw protocol_error(file, field, problem);
  };
  boost::system::error_code ec;
  auto root = boost::json::parse(boost::json::string_view(json.data(), json.size()), ec);
  if (ec) fail("", "not valid JSON: " + ec.message());
  if (!root.is_object()) fail("", "not a JSON object");
  const auto& o = root.as_object();

  auto string_field = [&](const char* key) -> std::string {
    const auto* v = o.if_contains(key);
    if (!v || !v->is_string()) fail(key, "missing or not a string");
    return std::string(v->as_string());
  };
  auto bool_field = [&](const char* key) -> std::optional<bool> {
    const auto* v = o.if_contains(key);
    if (!v || v->is_null()) return std::nullopt;
    if (!v->is_bool()) fail(key, "not a boolean");
    return v->as_bool();
  };

  adapter_config_info info;
  if (auto peft = string_field("peft_type"); peft != "LORA") fail("peft_type", "'" + peft + "' is not LORA");
  info.base_model = string_field("base_model_name_or_path");

  const auto* r = o.if_contains("r");
  if (!r || !(r->is_int64() || r->is_uint64())) fail("r", "missing or not an integer");
  const auto rank =
      r->is_int64() ? r->get_int64() : static_cast<std::int64_t>(std::min<std::uint64_t>(r->get_uint64(), 1u << 30));
  if (rank < 1 || rank > 4096) fail("r", "must be in [1, 4096], got " + std::to_string(rank));
  info.lora.rank = static_cast<std::int32_t>(rank);

  const auto* alpha = o.if_contains("lora_alpha");
  if (!alpha || !alpha->is_number()) fail("lora_alpha", "missing or not a number");
  info.alpha = alpha->to_number<double>();
  if (!(info.alpha > 0.0) || !std::isfinite(info.alpha)) fail("lora_alpha", "must be a positive number");

  const auto* modules = o.if_contains("target_modules");
  if (!modules || !modules->is_array()) fail("target_modules", "missing or not an array of module names");
  bool has[4] = {false, false, false, false};
  for (const auto& m : modules->as_array()) {
    if (!m.is_string()) fail("target_modules", "not an array of module names");
    const std::string_view name(m.as_string().data(), m.as_string().size());
    bool known = false;
    for (auto t : all_lora_targets)
      if (module_name(t) == name) has[static_cast<int>(t)] = known = true;
    if (!known)
      fail("target_modules",
           "unknown module '" + std::string(name) + "' (this model has mix_proj, up_proj, down_proj, lm_head)");
  }
  if (has[1] != has[2]) fail("target_modules", "up_proj and down_proj (the MLP) are trained together");
  info.lora.train_attn = has[0];
  info.lora.train_mlp = has[1];
  info.lora.train_unembed = has[3];
  if (!info.lora.train_attn && !info.lora.train_mlp && !info.lora.train_unembed) fail("target_modules", "is empty");
  auto agree = [&](const char* key, bool derived) {
    if (auto flag = bool_field(key); flag && *flag != derived)
      fail(key, std::string("is ") + (*flag ? "true" : "false") + " but target_modules says otherwise");
  };
  agree("train_attn", info.lora.train_attn);
  agree("train_mlp", info.lora.train_mlp);
  agree("train_unembed", info.lora.train_unembed);

  if (const auto* seed = o.if_contains("seed"); seed && !seed->is_null()) {
    if (seed->is_int64())
      info.lora.seed = seed->get_int64();
    else if (seed->is_uint64() &&
             seed->get_uint64() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      info.lora.seed = static_cast<std::int64_t>(seed->get_uint64());
    else
      fail("seed", "not a 64-bit signed integer");
  }
  return info;
}

/// The factors of `params` as F32 tensors (they are float32 values already).
inline std::string write_adapter_tensors(const adapter_layout& l, std::span<const double> params) {
  safetensors_writer w;
  w.add_metadata("format", "pt");
  for (const auto& p : l.parts) {
    w.add_as_f32(lora_tensor_name(p.target, true), {l.r(), p.in}, params.subspan(p.a_offset, l.r() * p.in));
    w.add_as_f32(lora_tensor_name(p.target, false), {p.out, l.r()}, params.subspan(p.b_offset, p.out * l.r()));
  }
  return w.finish();
}

namespace adapter_files_detail {

/// Checks that `file` holds exactly the tensors `names` expects, with the shapes given.
inline void expect_tensor_set(const safetensors_reader& r,
                              const std::vector<std::pair<std::string, std::vector<std::uint64_t>>>& expected) {
  for (const auto& [name, shape] : expected) {
    const auto& t = r.at(name);
    if (t.shape != shape) {
      auto dims = [](const std::vector<std::uint64_t>& s) {
        std::string out;
        for (auto d : s) out += (out.empty() ? "" : ", ") + std::to_string(d);
        return "[" + out + "]";
      };
      r.fail(name, "shape " + dims(t.shape) + " does not match the adapter configuration, which needs " + dims(shape));
    }
  }
  for (const auto& t : r.tensors()) {
    bool known = false;
    for (const auto& e : expected) known = known || e.first == t.name;
    if (!known) r.fail(t.name, "unexpected tensor for this adapter configuration");
  }
}

inline void read_finite(const safetensors_reader& r, const std::string& name, double* out, std::size_t n,
                        bool round_to_float) {
  const auto& t = r.at(name);
  r.read_floats(t, std::span<double>(out, n));
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(out[i]))
      r.fail(name, "value " + std::to_string(out[i]) + " at index " + std::to_string(i) + " is not finite");
    if (round_to_float) out[i] = static_cast<double>(static_cast<float>(out[i]));
  }
}

}  // namespace adapter_files_detail

/// The factors in `file`, checked against `l`; values are rounded to float32 (F64 files are accepted).
inline std::vector<double> read_adapter_tensors(std::string_view file, const adapter_layout& l) {
  safetensors_reader r(file, std::string(adapter_model_file));
  std::vector<std::pair<std::string, std::vector<std::uint64_t>>> expected;
  for (const auto& p : l.parts) {
    expected.emplace_back(lora_tensor_name(p.target, true), std::vector<std::uint64_t>{l.r(), p.in});
    expected.emplace_back(lora_tensor_name(p.target, false), std::vector<std::uint64_t>{p.out, l.r()});
  }
  adapter_files_detail::expect_tensor_set(r, expected);
  std::vector<double> params(l.parameter_count);
  for (const auto& p : l.parts) {
    adapter_files_detail::read_finite(r, lora_tensor_name(p.target, true), &params[p.a_offset], l.r() * p.in, true);
    adapter_files_detail::read_finite(r, lora_tensor_name(p.target, false), &params[p.b_offset], p.out * l.r(), true);
  }
  return params;
}

/// Adam state plus the gradients accumulated since the last step (all in parameter layout).
struct optimizer_state {
  std::vector<double> exp_avg, exp_avg_sq, grad;
  std::int64_t step = 0;
};

inline constexpr const char* optimizer_slots[3] = {"exp_avg", "exp_avg_sq", "grad"};

inline std::string write_optimizer(const adapter_layout& l, const optimizer_state& s) {
  safetensors_writer w;
  w.add_metadata("format", std::string(optimizer_format));
  w.add_metadata("step", std::to_string(s.step));
  const std::vector<double>* slots[3] = {&s.exp_avg, &s.exp_avg_sq, &s.grad};
  for (int k = 0; k < 3; ++k) {
    const std::span<const double> all(*slots[k]);
    for (const auto& p : l.parts) {
      w.add(lora_tensor_name(p.target, true) + "." + optimizer_slots[k], {l.r(), p.in},
            all.subspan(p.a_offset, l.r() * p.in));
      w.add(lora_tensor_name(p.target, false) + "." + optimizer_slots[k], {p.out, l.r()},
            all.subspan(p.b_offset, p.out * l.r()));
    }
  }
  return w.finish();
}

inline optimizer_state read_optimizer(std::string_view file, const adapter_layout& l) {
  safetensors_reader r(file, std::string(optimizer_file));
  const auto& meta = r.metadata();
  auto format = meta.find("format");
  if (format == meta.end() || format->second != optimizer_format)
    r.fail("__metadata__.format", "expected '" + std::string(optimizer_format) + "'");
  optimizer_state s;
  auto step = meta.find("step");
  if (step == meta.end()) r.fail("__metadata__.step", "missing");
  const auto& text = step->second;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), s.step);
  if (ec != std::errc{} || end != text.data() + text.size() || s.step < 0)
    r.fail("__metadata__.step", "'" + text + "' is not a non-negative integer");

  std::vector<std::pair<std::string, std::vector<std::uint64_t>>> expected;
  for (const char* slot : optimizer_slots)
    for (const auto& p : l.parts) {
      expected.emplace_back(lora_tensor_name(p.target, true) + "." + slot, std::vector<std::uint64_t>{l.r(), p.in});
      expected.emplace_back(lora_tensor_name(p.target, false) + "." + slot, std::vector<std::uint64_t>{p.out, l.r()});
    }
  adapter_files_detail::expect_tensor_set(r, expected);
  std::vector<double>* slots[3] = {&s.exp_avg, &s.exp_avg_sq, &s.grad};
  for (int k = 0; k < 3; ++k) {
    slots[k]->resize(l.parameter_count);
    for (const auto& p : l.parts) {
      adapter_files_detail::read_finite(r, lora_tensor_name(p.target, true) + "." + optimizer_slots[k],
                                        slots[k]->data() + p.a_offset, l.r() * p.in, false);
      adapter_files_detail::read_finite(r, lora_tensor_name(p.target, false) + "." + optimizer_slots[k],
                                        slots[k]->data() + p.b_offset, p.out * l.r(), false);
    }
  }
  for (std::size_t i = 0; i < s.exp_avg_sq.size(); ++i)
    if (s.exp_avg_sq[i] < 0.0) r.fail("exp_avg_sq", "negative second moment at parameter " + std::to_string(i));
  return s;
}

}  // namespace tinker::local::detail
