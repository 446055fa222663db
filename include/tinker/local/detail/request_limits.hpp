// The dense size a forward_backward / forward request declares, bounded before anything is
// allocated from it. A CSR tensor's shape is not backed by stored values, so a few bytes can
// declare a [4, 2^26] tensor; each tensor is bounded on its own (max_dense_elements, the context
// length, the vocabulary), but only a total bounds what one request, with many datums, makes the
// engine allocate when its inputs are expanded for the loss.
#pragma once

#include <tinker/error.hpp>
#include <tinker/types.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>

namespace tinker::local::detail {

/// The model-input tokens a chunk declares, as the engine would have to hold them. Images declare
/// theirs (expected_tokens); a chunk whose length is unknowable counts as 0 here and is refused by
/// the input checks that follow, which name what is wrong with it.
inline std::size_t declared_chunk_tokens(const model_input_chunk& c) {
  if (const auto* text = std::get_if<encoded_text_chunk>(&c)) return text->tokens.size();
  auto image = [](const std::optional<std::int32_t>& n) {
    return n && *n > 0 ? static_cast<std::size_t>(*n) : std::size_t{0};
  };
  if (const auto* i = std::get_if<image_chunk>(&c)) return image(i->expected_tokens);
  if (const auto* i = std::get_if<image_asset_pointer_chunk>(&c)) return image(i->expected_tokens);
  try {
    return std::get<dmel_chunk>(c).length();
  } catch (const tinker::invalid_argument&) {
    return 0;
  }
}

/// Throws tinker::invalid_argument (answered 400) if the data's dense size — every datum's model-input tokens plus the
/// elements of every loss input's declared shape — exceeds `limit`, or a shape's product is
/// undefined (a negative dimension, more than 64 bits). The message names the field where the
/// total crossed the limit and that field's value. Checked arithmetic throughout: the running
/// total never exceeds `limit`, so it cannot wrap.
inline void check_dense_size(std::span<const datum> data, std::size_t limit) {
  std::size_t total = 0;
  auto add = [&](std::size_t n, const std::string& field, const std::string& value) {
    if (n > limit - total)
      throw tinker::invalid_argument("forward_backward_input." + field + ": " + value +
                                     " takes the request's dense size past " + std::to_string(limit) +
                                     " elements (the engine's max_request_dense_elements; model-input tokens plus the "
                                     "elements of every loss input's shape, over all datums)");
    total += n;
  };
  for (std::size_t i = 0; i < data.size(); ++i) {
    const auto where = "data[" + std::to_string(i) + "]";
    const auto& d = data[i];
    for (std::size_t c = 0; c < d.model_input.chunks.size(); ++c) {
      const auto n = declared_chunk_tokens(d.model_input.chunks[c]);
      add(n, where + ".model_input.chunks[" + std::to_string(c) + "]", std::to_string(n) + " tokens");
    }
    for (const auto& [name, tensor] : d.loss_fn_inputs) {
      const auto field = where + ".loss_fn_inputs." + name;
      if (!tensor.shape) {
        add(tensor.stored_size(), field, std::to_string(tensor.stored_size()) + " values");
        continue;
      }
      std::string problem;
      const auto n = tensor_data::checked_element_count(*tensor.shape, &problem);
      if (!n) throw tinker::invalid_argument("forward_backward_input." + field + ": " + problem);
      add(*n, field, "shape " + tensor_data::shape_string(*tensor.shape) + " (" + std::to_string(*n) + " elements)");
    }
  }
}

}  // namespace tinker::local::detail
