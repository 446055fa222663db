// JSON form of tensor_data and model_input.
#pragma once

#include <tinker/json/detail/described.hpp>
#include <tinker/types/model_input.hpp>
#include <tinker/types/tensor_data.hpp>

#include <algorithm>

TINKER_JSON_TYPE_NAME(tensor_data)

namespace tinker {

TINKER_JSON_ENUM(dtype, "dtype", float32, int64)
TINKER_JSON_ENUM(image_format, "image format", png, jpeg)
TINKER_JSON_STRUCT(encoded_text_chunk, (tokens), .tag = "encoded_text")
TINKER_JSON_STRUCT(image_chunk, (data, format, expected_tokens), .tag = "image", .base64 = "data")
TINKER_JSON_STRUCT(image_asset_pointer_chunk, (format, location, expected_tokens), .tag = "image_asset_pointer")
TINKER_JSON_STRUCT(dmel_chunk, (dmel), .tag = "dmel", .base64 = "dmel")
TINKER_JSON_STRUCT(model_input, (chunks))

// --- tensor_data: {"data", "dtype", "shape"?, "sparse_crow_indices"?, "sparse_col_indices"?} --------
// The values are a variant whose alternative is given by dtype, and the tensor must be consistent.

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const tensor_data& t) {
  auto& o = jv.emplace_object();
  json::detail::put(o, "data", t.values);
  json::detail::put(o, "dtype", t.type());
  json::detail::put(o, "shape", t.shape);
  json::detail::put(o, "sparse_crow_indices", t.sparse_crow_indices);
  json::detail::put(o, "sparse_col_indices", t.sparse_col_indices);
}

inline tensor_data tag_invoke(boost::json::value_to_tag<tensor_data>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "tensor_data");
  tensor_data t;
  // The SDK always sends dtype; a tensor without one is read by the shape of its numbers.
  const auto type = r.optional<dtype>("dtype");
  const auto* data = r.object().if_contains("data");
  const bool all_integers = data && data->is_array() &&
                            std::all_of(data->get_array().begin(), data->get_array().end(),
                                        [](const auto& e) { return e.is_number() && !e.is_double(); });
  if (type.value_or(all_integers ? dtype::int64 : dtype::float32) == dtype::int64)
    t.values = r.required<std::vector<std::int64_t>>("data");
  else
    t.values = r.required<std::vector<float>>("data");
  t.shape = r.optional<std::vector<std::int64_t>>("shape");
  t.sparse_crow_indices = r.optional<std::vector<std::int64_t>>("sparse_crow_indices");
  t.sparse_col_indices = r.optional<std::vector<std::int64_t>>("sparse_col_indices");
  try {
    t.validate();
  } catch (const tinker::invalid_argument& e) {
    throw protocol_error("tensor_data", "", e.what());
  }
  return t;
}

// --- chunks: model_input_chunk holds one of the "type"-discriminated chunks -------------------------

inline model_input_chunk tag_invoke(boost::json::value_to_tag<model_input_chunk>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "model_input_chunk");
  // Older clients may omit "type" on text chunks; infer it from the fields then.
  auto type = r.optional<std::string>("type");
  if (!type && r.has("tokens")) type = "encoded_text";
  if (!type) r.fail("type", "missing required field");
  if (*type == "encoded_text") return json::detail::read_object<encoded_text_chunk>(jv);
  if (*type == "image") return json::detail::read_object<image_chunk>(jv);
  if (*type == "image_asset_pointer") return json::detail::read_object<image_asset_pointer_chunk>(jv);
  if (*type == "dmel") return json::detail::read_object<dmel_chunk>(jv);
  r.fail("type", "unknown chunk type '" + *type + "'");
}

}  // namespace tinker
