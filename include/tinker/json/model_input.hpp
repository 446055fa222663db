// JSON form of tensor_data and model_input (protocol.md §7.1, §7.2).
#pragma once

#include <tinker/detail/base64.hpp>
#include <tinker/json/detail/read.hpp>
#include <tinker/json/detail/type_name.hpp>
#include <tinker/json/detail/write.hpp>
#include <tinker/types/model_input.hpp>
#include <tinker/types/tensor_data.hpp>

#include <boost/json/value_from.hpp>
#include <boost/json/value_to.hpp>

TINKER_JSON_TYPE_NAME(tensor_data)
TINKER_JSON_TYPE_NAME(model_input)

namespace tinker {

// --- dtype, image_format ------------------------------------------------------------------------

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, dtype t) { jv = to_string(t); }

inline dtype tag_invoke(boost::json::value_to_tag<dtype>, const boost::json::value& jv) {
  return json::detail::read_enum<dtype>(jv, "dtype", [](std::string_view s) -> std::optional<dtype> {
    if (s == "float32") return dtype::float32;
    if (s == "int64") return dtype::int64;
    return std::nullopt;
  });
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, image_format f) { jv = to_string(f); }

inline image_format tag_invoke(boost::json::value_to_tag<image_format>, const boost::json::value& jv) {
  return json::detail::read_enum<image_format>(jv, "image format",
                                               [](std::string_view s) -> std::optional<image_format> {
                                                 if (s == "png") return image_format::png;
                                                 if (s == "jpeg") return image_format::jpeg;
                                                 return std::nullopt;
                                               });
}

// --- tensor_data: {"data", "dtype", "shape"?, "sparse_crow_indices"?, "sparse_col_indices"?} --------

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const tensor_data& t) {
  boost::json::object o(jv.storage());
  std::visit([&](const auto& values) { json::detail::put(o, "data", values); }, t.values);
  json::detail::put(o, "dtype", to_string(t.type()));
  json::detail::put(o, "shape", t.shape);
  json::detail::put(o, "sparse_crow_indices", t.sparse_crow_indices);
  json::detail::put(o, "sparse_col_indices", t.sparse_col_indices);
  jv = std::move(o);
}

inline tensor_data tag_invoke(boost::json::value_to_tag<tensor_data>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "tensor_data");
  tensor_data t;
  // The SDK always sends dtype; a tensor without one is read by the shape of its numbers.
  const auto type = r.optional<dtype>("dtype");
  const auto* data = r.object().if_contains("data");
  const bool all_integers = data && data->is_array() && [&] {
    for (const auto& e : data->get_array())
      if (!e.is_int64() && !e.is_uint64()) return false;
    return true;
  }();
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

// --- chunks --------------------------------------------------------------------------------------

// model_input_chunk is a std::variant, for which Boost.JSON has its own (untagged) conversion; we
// need the "type"-discriminated form, so chunks go through these named functions instead.
inline boost::json::value chunk_to_json(const model_input_chunk& c, boost::json::storage_ptr sp = {}) {
  boost::json::object o(sp);
  struct writer {
    boost::json::object& o;
    void operator()(const encoded_text_chunk& t) const {
      json::detail::put(o, "tokens", t.tokens);
      json::detail::put_type(o, "encoded_text");
    }
    void operator()(const image_chunk& i) const {
      json::detail::put(o, "data", tinker::detail::base64_encode(i.data));
      json::detail::put(o, "format", std::string(to_string(i.format)));
      json::detail::put(o, "expected_tokens", i.expected_tokens);
      json::detail::put_type(o, "image");
    }
    void operator()(const image_asset_pointer_chunk& i) const {
      json::detail::put(o, "format", std::string(to_string(i.format)));
      json::detail::put(o, "location", i.location);
      json::detail::put(o, "expected_tokens", i.expected_tokens);
      json::detail::put_type(o, "image_asset_pointer");
    }
    void operator()(const dmel_chunk& d) const {
      json::detail::put(o, "dmel", tinker::detail::base64_encode(d.dmel));
      json::detail::put_type(o, "dmel");
    }
  };
  std::visit(writer{o}, c);
  return o;
}

inline model_input_chunk chunk_from_json(const boost::json::value& jv) {
  json::detail::object_reader r(jv, "model_input_chunk");
  // Older clients may omit "type" on text chunks; infer it from the fields then.
  auto type = r.optional<std::string>("type");
  if (!type) {
    if (!r.has("tokens")) r.fail("type", "missing required field");
    type = "encoded_text";
  }
  auto bytes = [&](std::string_view key) {
    auto decoded = tinker::detail::base64_decode(r.required<std::string>(key));
    if (!decoded) r.fail(key, "invalid base64");
    return std::move(*decoded);
  };
  if (*type == "encoded_text") return encoded_text_chunk{r.required<std::vector<token_id>>("tokens")};
  if (*type == "image")
    return image_chunk{bytes("data"), r.required<image_format>("format"), r.optional<std::int32_t>("expected_tokens")};
  if (*type == "image_asset_pointer")
    return image_asset_pointer_chunk{r.required<image_format>("format"), r.required<std::string>("location"),
                                     r.optional<std::int32_t>("expected_tokens")};
  if (*type == "dmel") return dmel_chunk{bytes("dmel")};
  r.fail("type", "unknown chunk type '" + *type + "'");
}

// --- model_input: {"chunks": [...]} ----------------------------------------------------------------

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const model_input& m) {
  boost::json::object o(jv.storage());
  boost::json::array chunks(jv.storage());
  chunks.reserve(m.chunks.size());
  for (const auto& c : m.chunks) chunks.push_back(chunk_to_json(c, jv.storage()));
  o.emplace("chunks", std::move(chunks));
  jv = std::move(o);
}

inline model_input tag_invoke(boost::json::value_to_tag<model_input>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "model_input");
  const auto& chunks = r.required_array("chunks");
  model_input m;
  m.chunks.reserve(chunks.size());
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    try {
      m.chunks.push_back(chunk_from_json(chunks[i]));
    } catch (const protocol_error& e) {
      throw e.nested_in("model_input", "chunks[" + std::to_string(i) + "]");
    }
  }
  return m;
}

}  // namespace tinker
