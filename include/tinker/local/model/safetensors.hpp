// A small reader and writer for the safetensors format (huggingface/safetensors):
//
//   u64 little-endian N | N bytes of JSON header | data section
//
// The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative
// to the data section) plus an optional "__metadata__" object of strings. The reader validates like
// the reference implementation: the header fits the file, every dtype is known, every tensor's
// byte range matches its shape and lies inside the data section, and the ranges tile the data
// section exactly (no overlap, no hole). Any violation is a tinker::protocol_error naming the file
// and the tensor.
#pragma once

#include <tinker/error.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tinker::local {

enum class safetensors_dtype : std::uint8_t {
  boolean,
  u8,
  i8,
  f8_e5m2,
  f8_e4m3,
  i16,
  u16,
  f16,
  bf16,
  i32,
  u32,
  f32,
  f64,
  i64,
  u64
};

constexpr std::string_view to_string(safetensors_dtype t) noexcept {
  switch (t) {
    case safetensors_dtype::boolean: return "BOOL";
    case safetensors_dtype::u8: return "U8";
    case safetensors_dtype::i8: return "I8";
    case safetensors_dtype::f8_e5m2: return "F8_E5M2";
    case safetensors_dtype::f8_e4m3: return "F8_E4M3";
    case safetensors_dtype::i16: return "I16";
    case safetensors_dtype::u16: return "U16";
    case safetensors_dtype::f16: return "F16";
    case safetensors_dtype::bf16: return "BF16";
    case safetensors_dtype::i32: return "I32";
    case safetensors_dtype::u32: return "U32";
    case safetensors_dtype::f32: return "F32";
    case safetensors_dtype::f64: return "F64";
    case safetensors_dtype::i64: return "I64";
    case safetensors_dtype::u64: return "U64";
  }
  return "?";
}

constexpr std::size_t element_size(safetensors_dtype t) noexcept {
  switch (t) {
    case safetensors_dtype::boolean:
    case safetensors_dtype::u8:
    case safetensors_dtype::i8:
    case safetensors_dtype::f8_e5m2:
    case safetensors_dtype::f8_e4m3: return 1;
    case safetensors_dtype::i16:
    case safetensors_dtype::u16:
    case safetensors_dtype::f16:
    case safetensors_dtype::bf16: return 2;
    case safetensors_dtype::i32:
    case safetensors_dtype::u32:
    case safetensors_dtype::f32: return 4;
    case safetensors_dtype::f64:
    case safetensors_dtype::i64:
    case safetensors_dtype::u64: return 8;
  }
  return 1;
}

constexpr std::optional<safetensors_dtype> parse_safetensors_dtype(std::string_view s) noexcept {
  for (auto t : {safetensors_dtype::boolean, safetensors_dtype::u8, safetensors_dtype::i8, safetensors_dtype::f8_e5m2,
                 safetensors_dtype::f8_e4m3, safetensors_dtype::i16, safetensors_dtype::u16, safetensors_dtype::f16,
                 safetensors_dtype::bf16, safetensors_dtype::i32, safetensors_dtype::u32, safetensors_dtype::f32,
                 safetensors_dtype::f64, safetensors_dtype::i64, safetensors_dtype::u64})
    if (to_string(t) == s) return t;
  return std::nullopt;
}

/// One tensor of a parsed file; `data` points into the file the reader was given.
struct safetensors_tensor {
  std::string name;
  safetensors_dtype dtype = safetensors_dtype::f32;
  std::vector<std::uint64_t> shape;
  std::size_t element_count = 0;
  std::size_t data_offset = 0;  ///< where `data` starts in the data section
  std::string_view data;
};

namespace detail {

template <class T>
inline T load_le(const char* p) noexcept {
  using bits_t =
      std::conditional_t<sizeof(T) == 1, std::uint8_t,
                         std::conditional_t<sizeof(T) == 2, std::uint16_t,
                                            std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>>;
  bits_t bits = 0;
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(&bits, p, sizeof(T));
  } else {
    for (std::size_t i = 0; i < sizeof(T); ++i)
      bits |= static_cast<bits_t>(static_cast<bits_t>(static_cast<unsigned char>(p[i])) << (8 * i));
  }
  return std::bit_cast<T>(bits);
}

template <class T>
inline void store_le(char* p, T value) noexcept {
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(p, &value, sizeof(T));
  } else {
    using bits_t = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    const auto bits = std::bit_cast<bits_t>(value);
    for (std::size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<char>(static_cast<unsigned char>(bits >> (8 * i)));
  }
}

/// IEEE half precision to double (exact).
inline double half_to_double(std::uint16_t h) noexcept {
  const int sign = (h >> 15) & 1, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  double v;
  if (exponent == 0)
    v = std::ldexp(static_cast<double>(mantissa), -24);
  else if (exponent == 31)
    v = mantissa ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else
    v = std::ldexp(static_cast<double>(mantissa | 0x400), exponent - 25);
  return sign ? -v : v;
}

}  // namespace detail

class safetensors_reader {
public:
  /// The largest header accepted (the reference implementation's limit).
  static constexpr std::uint64_t max_header_size = 100'000'000;

  /// Parses and validates `file`. The reader refers into `file`, which must outlive it.
  /// `file_label` names the file in errors (e.g. "adapter_model.safetensors").
  explicit safetensors_reader(std::string_view file, std::string file_label = "safetensors")
      : label_(std::move(file_label)) {
    if (file.size() < 8)
      fail("", "truncated: " + std::to_string(file.size()) + " bytes, but the header length alone takes 8");
    const auto header_len = detail::load_le<std::uint64_t>(file.data());
    const auto rest = static_cast<std::uint64_t>(file.size() - 8);
    if (header_len > max_header_size)
      fail("",
           "header length " + std::to_string(header_len) + " exceeds the limit of " + std::to_string(max_header_size));
    if (header_len > rest)
      fail("", "header length " + std::to_string(header_len) + " exceeds the " + std::to_string(rest) +
                   " bytes that follow it (truncated file?)");
    const auto header = file.substr(8, static_cast<std::size_t>(header_len));
    if (header.empty() || header.front() != '{') fail("", "the header is not a JSON object");
    const auto data = file.substr(8 + static_cast<std::size_t>(header_len));
    boost::system::error_code ec;
    auto root = boost::json::parse(boost::json::string_view(header.data(), header.size()), ec);
    if (ec) fail("", "the header is not valid JSON: " + ec.message());
    if (!root.is_object()) fail("", "the header is not a JSON object");

    for (const auto& [key, value] : root.as_object()) {
      const std::string name(key);
      if (name == "__metadata__") {
        if (!value.is_object()) fail(name, "must be an object of strings");
        for (const auto& [mk, mv] : value.as_object()) {
          if (!mv.is_string()) fail(name + "." + std::string(mk), "metadata values must be strings");
          metadata_.emplace(std::string(mk), std::string(mv.as_string()));
        }
        continue;
      }
      tensors_.push_back(parse_entry(name, value, data));
    }
    check_tiling(data.size());
  }

  /// The tensors in data order.
  const std::vector<safetensors_tensor>& tensors() const noexcept { return tensors_; }
  const std::map<std::string, std::string, std::less<>>& metadata() const noexcept { return metadata_; }
  const std::string& label() const noexcept { return label_; }

  const safetensors_tensor* find(std::string_view name) const noexcept {
    for (const auto& t : tensors_)
      if (t.name == name) return &t;
    return nullptr;
  }

  /// The tensor `name`; a protocol_error when the file has none.
  const safetensors_tensor& at(std::string_view name) const {
    if (const auto* t = find(name)) return *t;
    fail(std::string(name), "missing tensor");
  }

  /// Values of a floating-point tensor (F64, F32, F16, BF16) as doubles, into `out` (size = element count).
  void read_floats(const safetensors_tensor& t, std::span<double> out) const {
    if (out.size() != t.element_count)
      fail(t.name, "has " + std::to_string(t.element_count) + " elements, expected " + std::to_string(out.size()));
    const char* p = t.data.data();
    switch (t.dtype) {
      case safetensors_dtype::f64:
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = detail::load_le<double>(p + 8 * i);
        return;
      case safetensors_dtype::f32:
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<double>(detail::load_le<float>(p + 4 * i));
        return;
      case safetensors_dtype::bf16:
        for (std::size_t i = 0; i < out.size(); ++i)
          out[i] = static_cast<double>(
              std::bit_cast<float>(static_cast<std::uint32_t>(detail::load_le<std::uint16_t>(p + 2 * i)) << 16));
        return;
      case safetensors_dtype::f16:
        for (std::size_t i = 0; i < out.size(); ++i)
          out[i] = detail::half_to_double(detail::load_le<std::uint16_t>(p + 2 * i));
        return;
      default: fail(t.name, "dtype " + std::string(to_string(t.dtype)) + " is not a floating-point type");
    }
  }

  std::vector<double> read_floats(const safetensors_tensor& t) const {
    std::vector<double> out(t.element_count);
    read_floats(t, out);
    return out;
  }

  /// Throws protocol_error(label, field, problem).
  [[noreturn]] void fail(const std::string& field, const std::string& problem) const {
    throw protocol_error(label_, field, problem);
  }

private:
  static std::optional<std::uint64_t> as_count(const boost::json::value& v) {
    if (v.is_uint64()) return v.get_uint64();
    if (v.is_int64() && v.get_int64() >= 0) return static_cast<std::uint64_t>(v.get_int64());
    return std::nullopt;
  }

  safetensors_tensor parse_entry(const std::string& name, const boost::json::value& value,
                                 std::string_view data) const {
    if (!value.is_object()) fail(name, "must be an object with dtype, shape and data_offsets");
    const auto& o = value.as_object();
    safetensors_tensor t;
    t.name = name;

    const auto* dtype = o.if_contains("dtype");
    if (!dtype || !dtype->is_string()) fail(name + ".dtype", "missing or not a string");
    const std::string_view dtype_name(dtype->as_string().data(), dtype->as_string().size());
    auto parsed = parse_safetensors_dtype(dtype_name);
    if (!parsed) fail(name + ".dtype", "unknown dtype '" + std::string(dtype_name) + "'");
    t.dtype = *parsed;

    const auto* shape = o.if_contains("shape");
    if (!shape || !shape->is_array()) fail(name + ".shape", "missing or not an array");
    std::uint64_t count = 1;
    bool overflow = false;
    for (const auto& d : shape->as_array()) {
      auto dim = as_count(d);
      if (!dim) fail(name + ".shape", "dimensions must be non-negative integers");
      t.shape.push_back(*dim);
      if (*dim != 0 && count > std::numeric_limits<std::uint64_t>::max() / *dim)
        overflow = true;
      else
        count *= *dim;
    }
    const auto esize = static_cast<std::uint64_t>(element_size(t.dtype));
    if (overflow || count > std::numeric_limits<std::uint64_t>::max() / esize)
      fail(name + ".shape", "element count overflows");

    const auto* offsets = o.if_contains("data_offsets");
    if (!offsets || !offsets->is_array() || offsets->as_array().size() != 2)
      fail(name + ".data_offsets", "missing or not an array [begin, end]");
    auto begin = as_count(offsets->as_array()[0]);
    auto end = as_count(offsets->as_array()[1]);
    if (!begin || !end) fail(name + ".data_offsets", "offsets must be non-negative integers");
    const auto range = "[" + std::to_string(*begin) + ", " + std::to_string(*end) + "]";
    if (*begin > *end) fail(name + ".data_offsets", range + " ends before it begins");
    if (*end > data.size())
      fail(name + ".data_offsets",
           range + " out of range: the data section has " + std::to_string(data.size()) + " bytes");
    if (*end - *begin != count * esize) {
      std::string dims;
      for (auto d : t.shape) dims += (dims.empty() ? "" : ", ") + std::to_string(d);
      fail(name, "shape [" + dims + "] of " + std::string(to_string(t.dtype)) + " needs " +
                     std::to_string(count * esize) + " bytes but data_offsets " + range + " cover " +
                     std::to_string(*end - *begin));
    }
    t.element_count = static_cast<std::size_t>(count);
    t.data_offset = static_cast<std::size_t>(*begin);
    t.data = data.substr(static_cast<std::size_t>(*begin), static_cast<std::size_t>(*end - *begin));
    return t;
  }

  /// The byte ranges must tile the data section: sorted by offset, each starts where the previous
  /// one ended, and the last ends at the end of the file.
  void check_tiling(std::size_t data_size) {
    std::stable_sort(tensors_.begin(), tensors_.end(), [](const auto& a, const auto& b) {
      return std::pair(a.data_offset, a.data.size()) < std::pair(b.data_offset, b.data.size());
    });
    std::size_t expected = 0;
    const safetensors_tensor* previous = nullptr;
    for (const auto& t : tensors_) {
      if (t.data_offset < expected) fail(t.name + ".data_offsets", "overlaps tensor '" + previous->name + "'");
      if (t.data_offset > expected)
        fail(t.name + ".data_offsets", "leaves bytes [" + std::to_string(expected) + ", " +
                                           std::to_string(t.data_offset) + ") of the data section unused");
      expected = t.data_offset + t.data.size();
      previous = &t;
    }
    if (expected != data_size)
      fail("", "the data section has " + std::to_string(data_size) + " bytes but the tensors cover " +
                   std::to_string(expected));
  }

  std::string label_;
  std::vector<safetensors_tensor> tensors_;
  std::map<std::string, std::string, std::less<>> metadata_;
};

/// Builds a safetensors file. Tensors are laid out in the order they are added; the header is
/// padded with spaces to a multiple of 8 bytes so that the data section is aligned.
class safetensors_writer {
public:
  void add_metadata(std::string key, std::string value) {
    metadata_.insert_or_assign(std::move(key), std::move(value));
  }

  void add(std::string name, std::vector<std::uint64_t> shape, std::span<const float> values) {
    add_values(std::move(name), safetensors_dtype::f32, std::move(shape), values);
  }
  void add(std::string name, std::vector<std::uint64_t> shape, std::span<const double> values) {
    add_values(std::move(name), safetensors_dtype::f64, std::move(shape), values);
  }
  /// Doubles written as F32 (rounded to nearest).
  void add_as_f32(std::string name, std::vector<std::uint64_t> shape, std::span<const double> values) {
    check(name, shape, values.size());
    const auto begin = data_.size();
    data_.resize(begin + 4 * values.size());
    for (std::size_t i = 0; i < values.size(); ++i)
      detail::store_le(&data_[begin + 4 * i], static_cast<float>(values[i]));
    entries_.push_back(entry{std::move(name), safetensors_dtype::f32, std::move(shape), begin, data_.size()});
  }

  /// The complete file.
  std::string finish() const {
    boost::json::object header;
    if (!metadata_.empty()) {
      boost::json::object meta;
      for (const auto& [k, v] : metadata_) meta[k] = v;
      header["__metadata__"] = std::move(meta);
    }
    for (const auto& e : entries_) {
      boost::json::array shape;
      for (auto d : e.shape) shape.push_back(d);
      header[e.name] = boost::json::object{{"dtype", to_string(e.dtype)},
                                           {"shape", std::move(shape)},
                                           {"data_offsets", boost::json::array{e.begin, e.end}}};
    }
    auto text = boost::json::serialize(header);
    text.append((8 - text.size() % 8) % 8, ' ');
    std::string out(8, '\0');
    detail::store_le(out.data(), static_cast<std::uint64_t>(text.size()));
    out.reserve(8 + text.size() + data_.size());
    out += text;
    out += data_;
    return out;
  }

private:
  struct entry {
    std::string name;
    safetensors_dtype dtype;
    std::vector<std::uint64_t> shape;
    std::size_t begin, end;
  };

  void check(const std::string& name, const std::vector<std::uint64_t>& shape, std::size_t count) const {
    if (name.empty() || name == "__metadata__")
      throw tinker::invalid_argument("safetensors_writer: bad tensor name '" + name + "'");
    for (const auto& e : entries_)
      if (e.name == name) throw tinker::invalid_argument("safetensors_writer: tensor '" + name + "' added twice");
    std::uint64_t n = 1;
    for (auto d : shape) n *= d;
    if (n != count)
      throw tinker::invalid_argument("safetensors_writer: tensor '" + name + "' has " + std::to_string(count) +
                                     " values but its shape holds " + std::to_string(n));
  }

  template <class T>
  void add_values(std::string name, safetensors_dtype dtype, std::vector<std::uint64_t> shape,
                  std::span<const T> values) {
    check(name, shape, values.size());
    const auto begin = data_.size();
    data_.resize(begin + sizeof(T) * values.size());
    if constexpr (std::endian::native == std::endian::little) {
      if (!values.empty()) std::memcpy(&data_[begin], values.data(), sizeof(T) * values.size());
    } else {
      for (std::size_t i = 0; i < values.size(); ++i) detail::store_le(&data_[begin + sizeof(T) * i], values[i]);
    }
    entries_.push_back(entry{std::move(name), dtype, std::move(shape), begin, data_.size()});
  }

  std::vector<entry> entries_;
  std::map<std::string, std::string> metadata_;
  std::string data_;
};

}  // namespace tinker::local
