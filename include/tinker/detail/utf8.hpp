// UTF-8 as the protocol's strings must be: well formed, no overlong forms, no surrogates, nothing
// above U+10FFFF. Shared by the protobuf reader (proto3 `string` fields) and the rules for names
// that travel in URLs (tinker_path).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tinker::detail {

/// One code point decoded from `s` at byte `i`; `size` is 0 when the bytes there are not
/// well-formed UTF-8.
struct utf8_code_point {
  std::uint32_t value = 0;
  std::size_t size = 0;
};

constexpr utf8_code_point decode_utf8_at(std::string_view s, std::size_t i) noexcept {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return {c, 1};
  std::size_t len = 0;
  std::uint32_t cp = 0;
  if ((c & 0xE0) == 0xC0)
    len = 2, cp = c & 0x1F;
  else if ((c & 0xF0) == 0xE0)
    len = 3, cp = c & 0x0F;
  else if ((c & 0xF8) == 0xF0)
    len = 4, cp = c & 0x07;
  else
    return {};
  if (s.size() - i < len) return {};
  for (std::size_t k = 1; k < len; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return {};
    cp = (cp << 6) | (cc & 0x3F);
  }
  if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return {};  // overlong
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return {};
  return {cp, len};
}

constexpr bool is_valid_utf8(std::string_view s) noexcept {
  for (std::size_t i = 0; i < s.size();) {
    const auto cp = decode_utf8_at(s, i);
    if (cp.size == 0) return false;
    i += cp.size;
  }
  return true;
}

}  // namespace tinker::detail
