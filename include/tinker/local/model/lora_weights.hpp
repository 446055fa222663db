// lora_weights: an immutable adapter snapshot (what a sampler checkpoint holds). It keeps the LoRA
// factors and, merged into its base model, the forward tables sampling reads, so sampling with an
// adapter costs what sampling the base model costs. Share as std::shared_ptr<const lora_weights>.
#pragma once

#include <tinker/local/model/base_model.hpp>
#include <tinker/local/model/detail/adapter_layout.hpp>
#include <tinker/types/session.hpp>

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace tinker::local {

class lora_weights {
  struct private_tag {};

public:
  /// Internal: an adapter for `base` with `layout` and flat `params` (layout order).
  static std::shared_ptr<const lora_weights> create(const base_model& base, detail::adapter_layout layout,
                                                    tinker::lora_config config, std::vector<double> params) {
    return std::make_shared<const lora_weights>(private_tag{}, base, std::move(layout), std::move(config),
                                                std::move(params));
  }

  lora_weights(private_tag, const base_model& base, detail::adapter_layout layout, tinker::lora_config config,
               std::vector<double> params)
      : base_model_name_(base.name()),
        dims_(base.dims()),
        layout_(std::move(layout)),
        config_(std::move(config)),
        params_(std::move(params)),
        tables_(detail::merged_tables(base.weights(), layout_, params_.data())) {}

  int rank() const noexcept { return layout_.rank; }
  double alpha() const noexcept { return layout_.alpha; }
  /// Rank, train_* flags and the seed the adapter was initialised from.
  const tinker::lora_config& lora_config() const noexcept { return config_; }
  std::size_t trainable_parameter_count() const noexcept { return layout_.parameter_count; }
  /// The base model these weights belong to (spec().name).
  const std::string& base_model_name() const noexcept { return base_model_name_; }

  /// Internal: the flat factors, the layout, and the merged forward tables.
  std::span<const double> parameters() const noexcept { return params_; }
  const detail::adapter_layout& layout() const noexcept { return layout_; }
  const detail::forward_tables& tables() const noexcept { return tables_; }
  detail::model_dims dims() const noexcept { return dims_; }

private:
  std::string base_model_name_;
  detail::model_dims dims_;
  detail::adapter_layout layout_;
  tinker::lora_config config_;
  std::vector<double> params_;
  detail::forward_tables tables_;
};

}  // namespace tinker::local
