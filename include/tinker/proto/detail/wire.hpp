// Protobuf wire-format basics shared by the writer and the reader: wire types, tags, varint sizes
// and the UTF-8 check that proto3 `string` fields require.
//
// Reference: https://protobuf.dev/programming-guides/encoding/ . A field on the wire is a tag
// (varint of `field_number << 3 | wire_type`) followed by its payload: a varint, 8 or 4 raw bytes,
// or a varint length and that many bytes (strings, bytes, sub-messages, packed repeated scalars).
#pragma once

#include <tinker/detail/utf8.hpp>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tinker::proto::detail {

enum class wire_type : std::uint8_t {
  varint = 0,
  fixed64 = 1,
  length_delimited = 2,
  start_group = 3,  // deprecated proto2 groups: never valid in tinker_public.proto
  end_group = 4,
  fixed32 = 5,
};

constexpr std::string_view to_string(wire_type t) noexcept {
  switch (t) {
    case wire_type::varint: return "varint";
    case wire_type::fixed64: return "fixed64";
    case wire_type::length_delimited: return "length-delimited";
    case wire_type::start_group: return "start-group";
    case wire_type::end_group: return "end-group";
    case wire_type::fixed32: return "fixed32";
  }
  return "invalid";
}

/// Field numbers are at most 2^29 - 1.
inline constexpr std::uint32_t max_field_number = (1u << 29) - 1;

/// Longest varint: 64 bits in 7-bit groups.
inline constexpr std::size_t max_varint_size = 10;

constexpr std::size_t varint_size(std::uint64_t value) noexcept {
  // bit_width(0) == 0 but 0 still takes one byte; (bits + 6) / 7 rounds up to 7-bit groups.
  return (static_cast<std::size_t>(std::bit_width(value | 1)) + 6) / 7;
}

constexpr std::uint64_t make_tag(std::uint32_t field_number, wire_type type) noexcept {
  return (static_cast<std::uint64_t>(field_number) << 3) | static_cast<std::uint64_t>(type);
}

constexpr std::size_t tag_size(std::uint32_t field_number) noexcept {
  return varint_size(make_tag(field_number, wire_type::varint));
}

/// int32/enum values are sign-extended to 64 bits on the wire (a negative int32 takes 10 bytes).
constexpr std::uint64_t int32_to_varint(std::int32_t v) noexcept {
  return static_cast<std::uint64_t>(static_cast<std::int64_t>(v));
}

/// Well-formed UTF-8, as protobuf checks it for proto3 `string` fields.
using tinker::detail::is_valid_utf8;

}  // namespace tinker::proto::detail
