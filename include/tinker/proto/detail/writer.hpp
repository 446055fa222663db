// The encoding half of the codec: two "sinks" with the same member functions.
//
// Each message is described once, as a function template `write_x(Out& out, const x&)` that calls
// `out.int32_field(2, ...)`, `out.message_field(3, [&](auto& o) { ... })`, and so on, in field-number
// order. Run with a size_counter it computes the exact encoded size; run with a writer it writes the
// bytes. Sharing one description guarantees that the size and the bytes agree, so an encode is: count,
// allocate the std::string once, write (payload arrays copied once, by memcpy on little-endian hosts).
//
// Omitting proto3 defaults is the description's job: the sinks always write what they are given
// (map entries, for example, always carry key and value, as libprotobuf writes them).
#pragma once

#include <tinker/proto/detail/little_endian.hpp>
#include <tinker/proto/detail/wire.hpp>

#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

namespace tinker::proto::detail {

/// Counts the bytes a description would write.
class size_counter {
public:
  std::size_t size() const noexcept { return size_; }

  void varint_field(std::uint32_t field, std::uint64_t v) noexcept { size_ += tag_size(field) + varint_size(v); }
  void int32_field(std::uint32_t field, std::int32_t v) noexcept { varint_field(field, int32_to_varint(v)); }
  void uint32_field(std::uint32_t field, std::uint32_t v) noexcept { varint_field(field, v); }
  void int64_field(std::uint32_t field, std::int64_t v) noexcept { varint_field(field, static_cast<std::uint64_t>(v)); }
  void bool_field(std::uint32_t field, bool v) noexcept { varint_field(field, v ? 1 : 0); }
  void double_field(std::uint32_t field, double) noexcept { size_ += tag_size(field) + 8; }
  void bytes_field(std::uint32_t field, std::string_view v) noexcept { length_delimited(field, v.size()); }
  void string_field(std::uint32_t field, std::string_view v) noexcept { bytes_field(field, v); }

  /// A `bytes` field holding `values` as little-endian T.
  template <wire_scalar T>
  void array_field(std::uint32_t field, std::span<const T> values) noexcept {
    length_delimited(field, values.size() * sizeof(T));
  }

  /// A packed `repeated int64`; nothing when empty (protobuf never writes an empty packed field).
  void packed_int64_field(std::uint32_t field, std::span<const std::int64_t> values) noexcept {
    if (values.empty()) return;
    length_delimited(field, packed_int64_payload_size(values));
  }

  /// A `bytes` field of `payload_size` bytes whose content `parts(raw_sink&)` appends piecewise.
  template <class Parts>
  void bytes_field_parts(std::uint32_t field, std::size_t payload_size, Parts&&) noexcept {
    length_delimited(field, payload_size);
  }

  /// A sub-message whose fields `body(sink&)` describes.
  template <class Body>
  void message_field(std::uint32_t field, Body&& body) {
    size_counter inner;
    body(inner);
    length_delimited(field, inner.size());
  }

  static std::size_t packed_int64_payload_size(std::span<const std::int64_t> values) noexcept {
    std::size_t n = 0;
    for (auto v : values) n += varint_size(static_cast<std::uint64_t>(v));
    return n;
  }

private:
  void length_delimited(std::uint32_t field, std::size_t payload) noexcept {
    size_ += tag_size(field) + varint_size(payload) + payload;
  }

  std::size_t size_ = 0;
};

/// Appends raw payload pieces inside a bytes_field_parts() field.
class raw_sink {
public:
  explicit raw_sink(char*& pos) noexcept : pos_(pos) {}

  template <wire_scalar T>
  void append_array(std::span<const T> values) noexcept {
    copy_to_le(pos_, values.data(), values.size());
    pos_ += values.size() * sizeof(T);
  }

  template <wire_scalar T>
  void append_value(T value) noexcept {
    store_le(pos_, value);
    pos_ += sizeof(T);
  }

private:
  char*& pos_;
};

/// Writes a description into a buffer that a size_counter has sized exactly (no bounds checks on the
/// way: the size is known; debug builds assert that each sub-message fills what was counted).
class writer {
public:
  explicit writer(char* out) noexcept : pos_(out) {}

  char* position() const noexcept { return pos_; }

  void varint_field(std::uint32_t field, std::uint64_t v) noexcept {
    tag(field, wire_type::varint);
    varint(v);
  }
  void int32_field(std::uint32_t field, std::int32_t v) noexcept { varint_field(field, int32_to_varint(v)); }
  void uint32_field(std::uint32_t field, std::uint32_t v) noexcept { varint_field(field, v); }
  void int64_field(std::uint32_t field, std::int64_t v) noexcept { varint_field(field, static_cast<std::uint64_t>(v)); }
  void bool_field(std::uint32_t field, bool v) noexcept { varint_field(field, v ? 1 : 0); }
  void double_field(std::uint32_t field, double v) noexcept {
    tag(field, wire_type::fixed64);
    store_le(pos_, v);
    pos_ += 8;
  }
  void bytes_field(std::uint32_t field, std::string_view v) noexcept {
    length_prefix(field, v.size());
    if (!v.empty()) std::memcpy(pos_, v.data(), v.size());
    pos_ += v.size();
  }
  void string_field(std::uint32_t field, std::string_view v) noexcept { bytes_field(field, v); }

  template <wire_scalar T>
  void array_field(std::uint32_t field, std::span<const T> values) noexcept {
    length_prefix(field, values.size() * sizeof(T));
    copy_to_le(pos_, values.data(), values.size());
    pos_ += values.size() * sizeof(T);
  }

  void packed_int64_field(std::uint32_t field, std::span<const std::int64_t> values) noexcept {
    if (values.empty()) return;
    length_prefix(field, size_counter::packed_int64_payload_size(values));
    for (auto v : values) varint(static_cast<std::uint64_t>(v));
  }

  template <class Parts>
  void bytes_field_parts(std::uint32_t field, std::size_t payload_size, Parts&& parts) {
    length_prefix(field, payload_size);
    [[maybe_unused]] const char* start = pos_;
    raw_sink sink(pos_);
    parts(sink);
    assert(static_cast<std::size_t>(pos_ - start) == payload_size);
  }

  template <class Body>
  void message_field(std::uint32_t field, Body&& body) {
    size_counter counter;
    body(counter);
    length_prefix(field, counter.size());
    [[maybe_unused]] const char* start = pos_;
    body(*this);
    assert(static_cast<std::size_t>(pos_ - start) == counter.size());
  }

private:
  void tag(std::uint32_t field, wire_type type) noexcept { varint(make_tag(field, type)); }

  void length_prefix(std::uint32_t field, std::size_t payload) noexcept {
    tag(field, wire_type::length_delimited);
    varint(payload);
  }

  void varint(std::uint64_t v) noexcept {
    while (v >= 0x80) {
      *pos_++ = static_cast<char>(static_cast<unsigned char>(v | 0x80));
      v >>= 7;
    }
    *pos_++ = static_cast<char>(static_cast<unsigned char>(v));
  }

  char* pos_;
};

/// Appends the message that `describe(sink&)` describes to `out`: one size pass, one allocation
/// (growing `out` by the exact size), one write pass.
template <class Describe>
void append_message(std::string& out, Describe&& describe) {
  size_counter counter;
  describe(counter);
  const std::size_t old_size = out.size();
  const std::size_t size = counter.size();
#if defined(__cpp_lib_string_resize_and_overwrite)
  // Skips zero-filling bytes that are overwritten right away.
  out.resize_and_overwrite(old_size + size, [&](char* data, std::size_t n) {
    writer w(data + old_size);
    describe(w);
    assert(w.position() == data + n);
    return n;
  });
#else
  out.resize(old_size + size);
  writer w(out.data() + old_size);
  describe(w);
  assert(w.position() == out.data() + out.size());
#endif
}

}  // namespace tinker::proto::detail
