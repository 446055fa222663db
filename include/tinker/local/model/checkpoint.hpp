// checkpoint_files: the files of a saved adapter (PEFT layout, see detail/adapter_files.hpp), and
// load_lora_weights() for sampler checkpoints.
#pragma once

#include <tinker/error.hpp>
#include <tinker/local/model/base_model.hpp>
#include <tinker/local/model/detail/adapter_files.hpp>
#include <tinker/local/model/lora_weights.hpp>

#include <memory>
#include <optional>
#include <string>

namespace tinker::local {

/// The contents of `adapter_config.json`, `adapter_model.safetensors` and, for a training state
/// saved with its optimizer, `optimizer.safetensors`.
struct checkpoint_files {
  std::string adapter_config_json;
  std::string adapter_model_safetensors;
  std::optional<std::string> optimizer_safetensors;

  friend bool operator==(const checkpoint_files&, const checkpoint_files&) = default;
};

namespace detail {

/// The adapter configuration of `files`, checked against `base`: a malformed file is a
/// protocol_error, an adapter for another base model a tinker::invalid_argument.
inline adapter_config_info read_checked_config(const checkpoint_files& files, const base_model& base) {
  auto info = read_adapter_config(files.adapter_config_json);
  if (info.base_model != base.name())
    throw tinker::invalid_argument("the checkpoint's adapter was trained on base model '" + info.base_model +
                                   "', not on '" + base.name() + "'");
  return info;
}

}  // namespace detail

/// The adapter saved in `files` (adapter_config.json + adapter_model.safetensors; an optimizer
/// file is ignored), merged into `base` for sampling.
inline std::shared_ptr<const lora_weights> load_lora_weights(const checkpoint_files& files, const base_model& base) {
  auto info = detail::read_checked_config(files, base);
  auto layout = detail::adapter_layout::make(base.dims(), info.lora, info.alpha);
  auto params = detail::read_adapter_tensors(files.adapter_model_safetensors, layout);
  return lora_weights::create(base, std::move(layout), info.lora, std::move(params));
}

}  // namespace tinker::local
