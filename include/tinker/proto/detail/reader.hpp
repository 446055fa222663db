// The decoding half of the codec: a bounds-checked cursor over untrusted bytes, typed field readers
// that check wire types, and helpers that give errors their field path.
//
// Nothing here trusts a length prefix: every length is compared with the bytes that remain before
// anything is sliced or allocated, so the memory a decode allocates is bounded by its input size.
// Errors are tinker::protocol_error with the field relative to the message being read; each
// enclosing message prefixes its own field (within()), and the public decode function finally
// names the top-level type, giving ("ForwardBackwardRequest", "data[3].loss_fn_inputs[x].dense", ...).
#pragma once

#include <tinker/error.hpp>
#include <tinker/proto/detail/little_endian.hpp>
#include <tinker/proto/detail/wire.hpp>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace tinker::proto::detail {

struct field_tag {
  std::uint32_t number = 0;
  wire_type type = wire_type::varint;
};

[[noreturn]] inline void fail(std::string_view field, std::string problem) {
  throw protocol_error("", std::string(field), std::move(problem));
}

/// A cursor over one message's bytes. `origin` is the start of the outermost message, so that
/// errors can name absolute byte offsets.
class reader {
public:
  explicit reader(std::string_view input) noexcept : reader(input, input.data()) {}
  reader(std::string_view input, const char* origin) noexcept
      : pos_(input.data()), end_(input.data() + input.size()), origin_(origin) {}

  bool at_end() const noexcept { return pos_ == end_; }
  std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - pos_); }
  std::size_t offset() const noexcept { return static_cast<std::size_t>(pos_ - origin_); }

  /// A reader for a sub-message's bytes (as returned by read_length_delimited()).
  reader sub(std::string_view bytes) const noexcept { return reader(bytes, origin_); }

  field_tag read_tag() {
    const auto at = offset();
    const auto raw = read_varint();
    const auto number = raw >> 3;
    const auto type = static_cast<unsigned>(raw & 7);
    if (number == 0 || number > max_field_number)
      fail({}, "invalid field number " + std::to_string(number) + " in the tag at byte " + std::to_string(at));
    if (type == 3 || type == 4)
      fail({}, "field " + std::to_string(number) + " uses a group wire type (" + std::to_string(type) +
                   "), which tinker_public.proto never uses (at byte " + std::to_string(at) + ")");
    if (type > 5) fail({}, "invalid wire type " + std::to_string(type) + " in the tag at byte " + std::to_string(at));
    return {static_cast<std::uint32_t>(number), static_cast<wire_type>(type)};
  }

  std::uint64_t read_varint(std::string_view field = {}) {
    if (pos_ != end_ && static_cast<unsigned char>(*pos_) < 0x80) return static_cast<unsigned char>(*pos_++);
    const auto at = offset();
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < max_varint_size; ++i) {
      if (pos_ == end_) fail(field, "truncated varint at byte " + std::to_string(at));
      const auto byte = static_cast<unsigned char>(*pos_++);
      if (i == max_varint_size - 1 && byte > 1)
        fail(field, "varint at byte " + std::to_string(at) + " overflows 64 bits");
      value |= static_cast<std::uint64_t>(byte & 0x7f) << (7 * i);
      if (byte < 0x80) return value;
    }
    fail(field, "varint at byte " + std::to_string(at) + " is longer than 10 bytes");
  }

  std::uint32_t read_fixed32(std::string_view field = {}) {
    need(4, field, "fixed32 value");
    const auto v = load_le<std::uint32_t>(pos_);
    pos_ += 4;
    return v;
  }

  std::uint64_t read_fixed64(std::string_view field = {}) {
    need(8, field, "fixed64 value");
    const auto v = load_le<std::uint64_t>(pos_);
    pos_ += 8;
    return v;
  }

  /// The payload of a length-delimited field (a view into the input; nothing is copied).
  std::string_view read_length_delimited(std::string_view field = {}) {
    const auto at = offset();
    const auto length = read_varint(field);
    if (length > remaining())
      fail(field, "length " + std::to_string(length) + " at byte " + std::to_string(at) + " exceeds the " +
                      std::to_string(remaining()) + " bytes left");
    std::string_view out(pos_, static_cast<std::size_t>(length));
    pos_ += length;
    return out;
  }

  /// Skips the payload of an unknown field.
  void skip(field_tag tag) {
    const std::string name = "field " + std::to_string(tag.number);
    switch (tag.type) {
      case wire_type::varint: (void)read_varint(name); return;
      case wire_type::fixed64: (void)read_fixed64(name); return;
      case wire_type::length_delimited: (void)read_length_delimited(name); return;
      case wire_type::fixed32: (void)read_fixed32(name); return;
      case wire_type::start_group:
      case wire_type::end_group: break;  // rejected by read_tag()
    }
    fail(name, "cannot skip wire type " + std::string(to_string(tag.type)));
  }

private:
  void need(std::size_t n, std::string_view field, const char* what) {
    if (remaining() < n)
      fail(field, std::string("truncated ") + what + " at byte " + std::to_string(offset()) + " (" +
                      std::to_string(remaining()) + " of " + std::to_string(n) + " bytes left)");
  }

  const char* pos_;
  const char* end_;
  const char* origin_;
};

// --- typed field readers: check the wire type, then read -------------------------------------------------

inline void expect_wire_type(field_tag tag, wire_type expected, std::string_view field) {
  if (tag.type != expected)
    fail(field, "has wire type " + std::string(to_string(tag.type)) + ", expected " + std::string(to_string(expected)));
}

inline std::uint64_t read_varint_field(reader& r, field_tag tag, std::string_view field) {
  expect_wire_type(tag, wire_type::varint, field);
  return r.read_varint(field);
}

/// int32 and enum fields: like protobuf, keep the low 32 bits of the (sign-extended) varint.
inline std::int32_t read_int32_field(reader& r, field_tag tag, std::string_view field) {
  return static_cast<std::int32_t>(static_cast<std::uint32_t>(read_varint_field(r, tag, field)));
}

inline std::uint32_t read_uint32_field(reader& r, field_tag tag, std::string_view field) {
  return static_cast<std::uint32_t>(read_varint_field(r, tag, field));
}

inline std::int64_t read_int64_field(reader& r, field_tag tag, std::string_view field) {
  return static_cast<std::int64_t>(read_varint_field(r, tag, field));
}

inline bool read_bool_field(reader& r, field_tag tag, std::string_view field) {
  return read_varint_field(r, tag, field) != 0;
}

inline double read_double_field(reader& r, field_tag tag, std::string_view field) {
  expect_wire_type(tag, wire_type::fixed64, field);
  return std::bit_cast<double>(r.read_fixed64(field));
}

inline std::string_view read_bytes_field(reader& r, field_tag tag, std::string_view field) {
  expect_wire_type(tag, wire_type::length_delimited, field);
  return r.read_length_delimited(field);
}

/// A sub-message's bytes; decode them with r.sub(bytes).
inline std::string_view read_message_field(reader& r, field_tag tag, std::string_view field) {
  return read_bytes_field(r, tag, field);
}

inline std::string_view read_string_view_field(reader& r, field_tag tag, std::string_view field) {
  const auto s = read_bytes_field(r, tag, field);
  if (!is_valid_utf8(s)) fail(field, "is not valid UTF-8");
  return s;
}

inline std::string read_string_field(reader& r, field_tag tag, std::string_view field) {
  return std::string(read_string_view_field(r, tag, field));
}

/// `repeated int64`, accepted packed (length-delimited) and unpacked (one varint per element),
/// appended to `out`.
inline void read_repeated_int64_field(reader& r, field_tag tag, std::string_view field,
                                      std::vector<std::int64_t>& out) {
  if (tag.type == wire_type::varint) {
    out.push_back(static_cast<std::int64_t>(r.read_varint(field)));
    return;
  }
  expect_wire_type(tag, wire_type::length_delimited, field);
  auto packed = r.sub(r.read_length_delimited(field));
  while (!packed.at_end()) out.push_back(static_cast<std::int64_t>(packed.read_varint(field)));
}

// --- little-endian array payloads ---------------------------------------------------------------------------

inline void check_array_length(std::string_view bytes, std::size_t element_size, std::string_view field,
                               std::string_view element_kind) {
  if (bytes.size() % element_size != 0)
    fail(field, "length " + std::to_string(bytes.size()) + " is not a multiple of " + std::to_string(element_size) +
                    " for " + std::string(element_kind));
}

/// Decodes a `bytes` payload of little-endian Wire values into a vector<T> sized once (memcpy when
/// Wire == T on little-endian hosts, otherwise a widening loop).
template <wire_scalar Wire, wire_scalar T = Wire>
std::vector<T> read_le_array(std::string_view bytes, std::string_view field, std::string_view element_kind) {
  check_array_length(bytes, sizeof(Wire), field, element_kind);
  std::vector<T> out(bytes.size() / sizeof(Wire));
  copy_from_le<Wire>(out.data(), bytes.data(), out.size());
  return out;
}

// --- error paths --------------------------------------------------------------------------------------------

template <class Name>
std::string field_name_of(const Name& name) {
  if constexpr (std::is_invocable_v<const Name&>)
    return std::string(name());
  else
    return std::string(name);
}

/// Runs `body`; a protocol_error escaping it gets `name` (a string, or a callable producing one
/// only when needed) prefixed to its field path.
template <class Name, class Body>
decltype(auto) within(const Name& name, Body&& body) {
  try {
    return std::forward<Body>(body)();
  } catch (const protocol_error& e) {
    throw e.nested_in("", field_name_of(name));
  }
}

/// "name[i]", built only on the error path.
inline auto indexed(std::string_view name, std::size_t i) {
  return [name, i] { return std::string(name) + "[" + std::to_string(i) + "]"; };
}

/// "name[key]", built only on the error path.
inline auto keyed(std::string_view name, std::string_view key) {
  return [name, key] { return std::string(name) + "[" + std::string(key) + "]"; };
}

/// Runs a top-level decode; errors get the protobuf message name as their type.
template <class Body>
auto decode_top_level(std::string_view type_name, Body&& body) {
  try {
    return std::forward<Body>(body)();
  } catch (const protocol_error& e) {
    throw e.nested_in(type_name, "");
  }
}

// --- map entries --------------------------------------------------------------------------------------------

/// One `map<string, V>` entry: the key and the raw value bytes (field 2), for maps whose value is
/// a message or a scalar read by the caller. Missing fields keep their defaults, as in protobuf.
struct map_entry {
  std::string_view key;
  std::string_view value;  ///< message payload (length-delimited values only)
  bool has_value = false;
};

/// Reads a map<string, message> entry.
inline map_entry read_message_map_entry(reader& entry) {
  map_entry out;
  while (!entry.at_end()) {
    const auto tag = entry.read_tag();
    switch (tag.number) {
      case 1: out.key = read_string_view_field(entry, tag, "key"); break;
      case 2:
        out.value = read_message_field(entry, tag, "value");
        out.has_value = true;
        break;
      default: entry.skip(tag);
    }
  }
  return out;
}

/// Reads a map<string, double> entry.
inline std::pair<std::string_view, double> read_double_map_entry(reader& entry) {
  std::pair<std::string_view, double> out{{}, 0.0};
  while (!entry.at_end()) {
    const auto tag = entry.read_tag();
    switch (tag.number) {
      case 1: out.first = read_string_view_field(entry, tag, "key"); break;
      case 2: out.second = read_double_field(entry, tag, "value"); break;
      default: entry.skip(tag);
    }
  }
  return out;
}

}  // namespace tinker::proto::detail
