// tinker_public.DType, Tensor and SparseCsr (docs/protocol.md §9.1): loss_fn_inputs on the wire.
//
// Encoding writes the two public dtypes (FLOAT32, INT64). Decoding also accepts INT32 (surfaced as
// int64) and BFLOAT16 (surfaced as float32), the widenings the SDK applies to results, so a
// server-produced tensor in either width reads the same.
#pragma once

#include <tinker/error.hpp>
#include <tinker/proto/detail/little_endian.hpp>
#include <tinker/proto/detail/reader.hpp>
#include <tinker/types/tensor_data.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace tinker::proto::detail {

/// tinker_public.DType.
enum class wire_dtype : std::int32_t { unspecified = 0, float32 = 1, int64 = 2, int32 = 3, bfloat16 = 4 };

constexpr std::string_view dtype_name(wire_dtype t) noexcept {
  switch (t) {
    case wire_dtype::unspecified: return "UNSPECIFIED";
    case wire_dtype::float32: return "FLOAT32";
    case wire_dtype::int64: return "INT64";
    case wire_dtype::int32: return "INT32";
    case wire_dtype::bfloat16: return "BFLOAT16";
  }
  return "unknown";
}

constexpr std::size_t element_size(wire_dtype t) noexcept {
  switch (t) {
    case wire_dtype::float32:
    case wire_dtype::int32: return 4;
    case wire_dtype::int64: return 8;
    case wire_dtype::bfloat16: return 2;
    case wire_dtype::unspecified: break;
  }
  return 1;
}

constexpr wire_dtype to_wire_dtype(tinker::dtype t) noexcept {
  return t == tinker::dtype::float32 ? wire_dtype::float32 : wire_dtype::int64;
}

/// A DType value read from the wire, checked to be one we can decode.
inline wire_dtype checked_dtype(std::int32_t raw, std::string_view field) {
  if (raw == 0) fail(field, "is DTYPE_UNSPECIFIED (missing)");
  if (raw < 0 || raw > 4) fail(field, "unsupported dtype value " + std::to_string(raw));
  return static_cast<wire_dtype>(raw);
}

using tensor_values = decltype(tensor_data::values);

/// The values of a payload in dtype `t`, widened to the public dtypes. Throws protocol_error at
/// `field` if the length is not a whole number of elements.
inline tensor_values decode_values(std::string_view bytes, wire_dtype t, std::string_view field) {
  const std::string kind = "dtype " + std::string(dtype_name(t));
  switch (t) {
    case wire_dtype::float32: return read_le_array<float>(bytes, field, kind);
    case wire_dtype::int64: return read_le_array<std::int64_t>(bytes, field, kind);
    case wire_dtype::int32: return read_le_array<std::int32_t, std::int64_t>(bytes, field, kind);
    case wire_dtype::bfloat16: {
      check_array_length(bytes, 2, field, kind);
      std::vector<float> out(bytes.size() / 2);
      copy_bfloat16_from_le(out.data(), bytes.data(), out.size());
      return out;
    }
    case wire_dtype::unspecified: break;
  }
  fail(field, "unsupported dtype");
}

/// The number of elements a shape describes, or an error if a dimension is negative or the
/// product overflows (a shape must never claim more elements than could exist). For dense tensors
/// the payload must then match it; for sparse ones tensor_data::validate() caps it.
inline std::uint64_t checked_element_count(std::span<const std::int64_t> dims, std::string_view field) {
  std::uint64_t n = 1;
  bool zero = false;
  for (auto d : dims) {
    if (d < 0) fail(field, "negative dimension " + std::to_string(d));
    if (d == 0)
      zero = true;
    else if (n > std::numeric_limits<std::uint64_t>::max() / static_cast<std::uint64_t>(d))
      fail(field, "the product of the dimensions overflows 64 bits");
    else
      n *= static_cast<std::uint64_t>(d);
  }
  return zero ? 0 : n;
}

// --- encoding ---------------------------------------------------------------------------------------------

/// The dims after the first: the BatchedTensor trailing_shape of a per-datum tensor (empty for
/// 1-D tensors and for tensors without a shape).
inline std::span<const std::int64_t> trailing_dims(const tensor_data& t) noexcept {
  if (!t.shape || t.shape->empty()) return {};
  return std::span<const std::int64_t>(*t.shape).subspan(1);
}

/// Bytes of the stored values in their dtype.
inline std::size_t payload_size(const tensor_data& t) noexcept {
  return t.stored_size() * element_size(to_wire_dtype(t.type()));
}

template <class Out>
void write_stored_values(Out& out, std::uint32_t field, const tensor_data& t) {
  std::visit([&](const auto& values) { out.array_field(field, std::span(values)); }, t.values);
}

/// tinker_public.Tensor. The `dense` oneof member is written even when empty: it carries the
/// encoding choice.
template <class Out>
void write_tensor(Out& out, const tensor_data& t) {
  if (!t.is_sparse()) {
    write_stored_values(out, 1, t);
  } else {
    out.message_field(2, [&](auto& csr) {
      if (t.stored_size() != 0) write_stored_values(csr, 1, t);
      if (!t.sparse_crow_indices->empty()) csr.array_field(2, std::span<const std::int64_t>(*t.sparse_crow_indices));
      if (!t.sparse_col_indices->empty()) csr.array_field(3, std::span<const std::int64_t>(*t.sparse_col_indices));
    });
  }
  out.int32_field(3, static_cast<std::int32_t>(to_wire_dtype(t.type())));
  if (t.shape) out.packed_int64_field(4, *t.shape);
}

// --- decoding ---------------------------------------------------------------------------------------------

struct sparse_csr_views {
  std::string_view values, crow_indices, col_indices;
};

/// Merges a SparseCsr message into `out` (bytes fields: last occurrence wins).
inline void read_sparse_csr(reader r, sparse_csr_views& out) {
  while (!r.at_end()) {
    const auto tag = r.read_tag();
    switch (tag.number) {
      case 1: out.values = read_bytes_field(r, tag, "values"); break;
      case 2: out.crow_indices = read_bytes_field(r, tag, "crow_indices"); break;
      case 3: out.col_indices = read_bytes_field(r, tag, "col_indices"); break;
      default: r.skip(tag);
    }
  }
}

/// A Tensor message as a tensor_data, with its shape and CSR structure checked.
inline tensor_data read_tensor(reader r) {
  enum class encoding { none, dense, sparse } which = encoding::none;
  std::string_view dense;
  sparse_csr_views sparse;
  std::int32_t raw_dtype = 0;
  std::vector<std::int64_t> shape;

  while (!r.at_end()) {
    const auto tag = r.read_tag();
    switch (tag.number) {
      case 1:
        dense = read_bytes_field(r, tag, "dense");
        which = encoding::dense;
        break;
      case 2: {
        const auto bytes = read_message_field(r, tag, "sparse_csr");
        if (which != encoding::sparse) sparse = {};  // a oneof member that follows another starts fresh
        which = encoding::sparse;
        within("sparse_csr", [&] { read_sparse_csr(r.sub(bytes), sparse); });
        break;
      }
      case 3: raw_dtype = read_int32_field(r, tag, "dtype"); break;
      case 4: read_repeated_int64_field(r, tag, "shape", shape); break;
      default: r.skip(tag);
    }
  }

  if (which == encoding::none) fail({}, "sets neither dense nor sparse_csr");
  const auto type = checked_dtype(raw_dtype, "dtype");
  tensor_data t;
  const auto element_count = shape.empty() ? 0 : checked_element_count(shape, "shape");
  if (which == encoding::dense) {
    t.values = decode_values(dense, type, "dense");
    if (!shape.empty() && element_count != t.stored_size())
      fail("shape", "describes " + std::to_string(element_count) + " elements but dense holds " +
                        std::to_string(t.stored_size()));
  } else {
    t.values = decode_values(sparse.values, type, "sparse_csr.values");
    t.sparse_crow_indices =
        read_le_array<std::int64_t>(sparse.crow_indices, "sparse_csr.crow_indices", "int64 indices");
    t.sparse_col_indices = read_le_array<std::int64_t>(sparse.col_indices, "sparse_csr.col_indices", "int64 indices");
  }
  if (!shape.empty()) t.shape = std::move(shape);
  if (which == encoding::sparse) {
    // Checked here first so that validate() never does arithmetic on an absurd row count.
    if (t.shape && t.shape->size() == 2 &&
        static_cast<std::uint64_t>((*t.shape)[0]) + 1 != t.sparse_crow_indices->size())
      fail("sparse_csr.crow_indices",
           "has " + std::to_string(t.sparse_crow_indices->size()) +
               " entries, expected rows + 1 = " + std::to_string(static_cast<std::uint64_t>((*t.shape)[0]) + 1));
    // validate() also bounds the dense size the shape implies (max_dense_elements): no payload
    // backs a CSR shape, so [4, 2^61] with one value would otherwise reach to_dense().
    try {
      t.validate("sparse_csr");
    } catch (const tinker::invalid_argument& e) {
      fail({}, e.what());
    }
  }
  return t;
}

}  // namespace tinker::proto::detail
