// tensor_data: the protocol's TensorData (docs/protocol.md §7.2), a dense or CSR-sparse float32/int64 array.
#pragma once

#include <tinker/error.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

namespace tinker {

/// The two public element types. (The protobuf codec also reads int32 and bfloat16 results and
/// widens them to these, as the SDK does.)
enum class dtype : std::uint8_t { float32, int64 };

constexpr std::string_view to_string(dtype t) noexcept { return t == dtype::float32 ? "float32" : "int64"; }

constexpr std::size_t element_size(dtype t) noexcept { return t == dtype::float32 ? 4 : 8; }

/// The most elements a tensor's shape may describe (2^28: 1 GiB of float32, 2 GiB of int64).
/// The protocol's tensors are per-token inputs and outputs, far below this (the SDK packs at most
/// 5 MB of tensors into a request, docs/protocol.md §7.3). The limit matters for CSR tensors, whose
/// shape is not backed by stored values: without it a few bytes claiming a [4, 2^61] shape would
/// make to_dense() allocate without bound.
inline constexpr std::size_t max_dense_elements = std::size_t{1} << 28;

/// A flattened row-major array of float32 or int64 values.
///
/// Dense form: `values` holds every element; `shape` (absent = 1-D) gives the dimensions.
/// Sparse form (2-D only): `values` holds the non-zeros, `sparse_crow_indices` the CSR row pointers
/// (rows + 1 entries) and `sparse_col_indices` the column of each non-zero; `shape` is required.
///
/// Construction from a std::vector moves it in (no copy); from a span it copies once.
struct tensor_data {
  using float_values = std::vector<float>;
  using int64_values = std::vector<std::int64_t>;

  std::variant<float_values, int64_values> values;
  std::optional<std::vector<std::int64_t>> shape;
  std::optional<std::vector<std::int64_t>> sparse_crow_indices;
  std::optional<std::vector<std::int64_t>> sparse_col_indices;

  tensor_data() = default;
  tensor_data(float_values v) : values(std::move(v)) {}
  tensor_data(int64_values v) : values(std::move(v)) {}
  tensor_data(std::initializer_list<float> v) : values(float_values(v)) {}
  tensor_data(std::initializer_list<std::int64_t> v) : values(int64_values(v)) {}
  tensor_data(float_values v, std::vector<std::int64_t> dense_shape)
      : values(std::move(v)), shape(std::move(dense_shape)) {}
  tensor_data(int64_values v, std::vector<std::int64_t> dense_shape)
      : values(std::move(v)), shape(std::move(dense_shape)) {}

  /// Copies a span of float32 values (1-D).
  static tensor_data from_span(std::span<const float> v) { return tensor_data(float_values(v.begin(), v.end())); }
  /// Copies a span of integers as int64 (1-D); accepts int32 token arrays.
  template <class Int>
  requires std::is_integral_v<Int>
  static tensor_data from_span(std::span<const Int> v) { return tensor_data(int64_values(v.begin(), v.end())); }

  /// A CSR-sparse 2-D tensor.
  template <class Values>
  static tensor_data sparse_csr(Values nonzeros, std::int64_t rows, std::int64_t cols,
                                std::vector<std::int64_t> crow_indices, std::vector<std::int64_t> col_indices) {
    tensor_data t(std::move(nonzeros));
    t.shape = std::vector<std::int64_t>{rows, cols};
    t.sparse_crow_indices = std::move(crow_indices);
    t.sparse_col_indices = std::move(col_indices);
    return t;
  }

  dtype type() const noexcept { return values.index() == 0 ? dtype::float32 : dtype::int64; }
  bool is_sparse() const noexcept { return sparse_crow_indices.has_value() || sparse_col_indices.has_value(); }

  /// Number of stored values (the non-zeros when sparse).
  std::size_t stored_size() const noexcept {
    return std::visit([](const auto& v) { return v.size(); }, values);
  }

  /// The dense shape: `shape`, or {stored_size()} when absent.
  std::vector<std::int64_t> dense_shape() const {
    if (shape) return *shape;
    return {static_cast<std::int64_t>(stored_size())};
  }

  /// Number of elements of the dense tensor. Throws tinker::invalid_argument naming the shape if a
  /// dimension is negative or the product overflows (a wrapped product could pass for a small
  /// tensor and make to_dense() write out of bounds).
  std::size_t element_count() const {
    if (!shape) return stored_size();
    std::string problem;
    const auto n = checked_element_count(*shape, &problem);
    if (!n) throw tinker::invalid_argument("tensor_data: " + problem);
    return *n;
  }

  /// The product of `dims`, or nullopt with `*problem` (when given) saying why: a negative
  /// dimension, or a product beyond std::size_t.
  static std::optional<std::size_t> checked_element_count(std::span<const std::int64_t> dims,
                                                          std::string* problem = nullptr) {
    bool zero = false, overflow = false;
    std::size_t n = 1;
    for (auto d : dims) {
      if (d < 0) {
        if (problem) *problem = "negative dimension " + std::to_string(d) + " in shape " + shape_string(dims);
        return std::nullopt;
      }
      const auto u = static_cast<std::size_t>(d);
      if (u == 0)
        zero = true;  // a zero dimension makes the product empty, however large the others
      else if (n > std::numeric_limits<std::size_t>::max() / u)
        overflow = true;
      else
        n *= u;
    }
    if (zero) return 0;
    if (overflow) {
      if (problem) *problem = "shape " + shape_string(dims) + " has more elements than fit in 64 bits";
      return std::nullopt;
    }
    return n;
  }

  /// `[2, 3]`, for messages.
  static std::string shape_string(std::span<const std::int64_t> dims) {
    std::string out = "[";
    for (std::size_t i = 0; i < dims.size(); ++i) {
      if (i) out += ", ";
      out += std::to_string(dims[i]);
    }
    return out + "]";
  }

  std::span<const float> floats() const {
    if (auto* p = std::get_if<float_values>(&values)) return *p;
    throw tinker::invalid_argument("tensor_data: expected dtype float32, got int64");
  }
  std::span<const std::int64_t> int64s() const {
    if (auto* p = std::get_if<int64_values>(&values)) return *p;
    throw tinker::invalid_argument("tensor_data: expected dtype int64, got float32");
  }

  /// Checks the internal consistency (shape vs. size, CSR structure, max_dense_elements). Throws
  /// tinker::invalid_argument naming `what` and the problem.
  void validate(std::string_view what = "tensor") const {
    auto fail = [&](const std::string& problem) { throw tinker::invalid_argument(std::string(what) + ": " + problem); };
    std::size_t elements = stored_size();
    if (shape) {
      std::string problem;
      const auto n = checked_element_count(*shape, &problem);
      if (!n) fail(problem);
      elements = *n;
    }
    if (elements > max_dense_elements)
      fail((shape ? "shape " + shape_string(*shape) : std::string("the tensor")) + " describes " +
           std::to_string(elements) + " elements, more than the limit of " + std::to_string(max_dense_elements));
    if (!is_sparse()) {
      if (shape && elements != stored_size())
        fail("shape holds " + std::to_string(elements) + " elements but " + std::to_string(stored_size()) +
             " values were given");
      return;
    }
    if (!sparse_crow_indices || !sparse_col_indices) fail("sparse tensors need both crow and col indices");
    if (!shape || shape->size() != 2) fail("sparse (CSR) tensors must have a 2-D shape");
    // Both dimensions are >= 0 here; unsigned arithmetic keeps rows + 1 defined for any row count.
    const auto rows = static_cast<std::uint64_t>((*shape)[0]);
    const auto cols = (*shape)[1];
    const auto& crow = *sparse_crow_indices;
    const auto& col = *sparse_col_indices;
    if (crow.size() != rows + 1)
      fail("sparse_crow_indices has " + std::to_string(crow.size()) +
           " entries, expected rows + 1 = " + std::to_string(rows + 1));
    if (col.size() != stored_size())
      fail("sparse_col_indices has " + std::to_string(col.size()) + " entries but there are " +
           std::to_string(stored_size()) + " values");
    if (crow.front() != 0 || crow.back() != static_cast<std::int64_t>(col.size()))
      fail("sparse_crow_indices must start at 0 and end at the number of values");
    for (std::size_t i = 1; i < crow.size(); ++i)
      if (crow[i] < crow[i - 1]) fail("sparse_crow_indices must be non-decreasing");
    for (auto c : col)
      if (c < 0 || c >= cols)
        fail("sparse column index " + std::to_string(c) + " out of range [0, " + std::to_string(cols) + ")");
  }

  /// The dense values, converted to T (CSR expanded with zeros). A sparse tensor is validated
  /// first: nothing is allocated or written for a shape that its indices do not fit, nor beyond
  /// max_dense_elements.
  template <class T>
  std::vector<T> to_dense() const {
    return std::visit(
        [&](const auto& v) {
          std::vector<T> out;
          if (!is_sparse()) {
            out.assign(v.begin(), v.end());
            return out;
          }
          validate();
          const auto cols = static_cast<std::size_t>((*shape)[1]);
          out.assign(element_count(), T{});
          const auto& crow = *sparse_crow_indices;
          const auto& col = *sparse_col_indices;
          for (std::size_t r = 0; r + 1 < crow.size(); ++r)
            for (auto k = crow[r]; k < crow[r + 1]; ++k)
              out[r * cols + static_cast<std::size_t>(col[static_cast<std::size_t>(k)])] =
                  static_cast<T>(v[static_cast<std::size_t>(k)]);
          return out;
        },
        values);
  }

  friend bool operator==(const tensor_data&, const tensor_data&) = default;
};

}  // namespace tinker
