// Little-endian numeric arrays, the layout of every `bytes` payload in tinker_public.proto
// (token ids, logprobs, tensor values, offsets). On little-endian hosts these are plain memcpy; the
// byte-by-byte loops are the portable fallback for big-endian hosts.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace tinker::proto::detail {

template <class T>
concept wire_scalar = std::is_arithmetic_v<T> &&(sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8);

/// The unsigned integer with T's width (the bit pattern we shift bytes in and out of).
template <class T>
using bits_of =
    std::conditional_t<sizeof(T) == 2, std::uint16_t, std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>;

inline constexpr bool host_is_little_endian = std::endian::native == std::endian::little;

template <wire_scalar T>
inline void store_le(char* dst, T value) noexcept {
  if constexpr (host_is_little_endian) {
    std::memcpy(dst, &value, sizeof(T));
  } else {
    const auto bits = std::bit_cast<bits_of<T>>(value);
    for (std::size_t i = 0; i < sizeof(T); ++i) dst[i] = static_cast<char>(static_cast<unsigned char>(bits >> (8 * i)));
  }
}

template <wire_scalar T>
inline T load_le(const char* src) noexcept {
  if constexpr (host_is_little_endian) {
    T value;
    std::memcpy(&value, src, sizeof(T));
    return value;
  } else {
    bits_of<T> bits = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i)
      bits |= static_cast<bits_of<T>>(static_cast<unsigned char>(src[i])) << (8 * i);
    return std::bit_cast<T>(bits);
  }
}

/// Writes `count` values as little-endian bytes (count * sizeof(T) bytes at dst).
template <wire_scalar T>
inline void copy_to_le(char* dst, const T* src, std::size_t count) noexcept {
  if constexpr (host_is_little_endian) {
    if (count) std::memcpy(dst, src, count * sizeof(T));
  } else {
    for (std::size_t i = 0; i < count; ++i) store_le(dst + i * sizeof(T), src[i]);
  }
}

/// Reads `count` little-endian values of type Wire from src and stores them as T (same type: a
/// memcpy on little-endian hosts; otherwise a widening conversion such as int32 -> int64).
template <wire_scalar Wire, wire_scalar T>
inline void copy_from_le(T* dst, const char* src, std::size_t count) noexcept {
  if constexpr (std::is_same_v<Wire, T> && host_is_little_endian) {
    if (count) std::memcpy(dst, src, count * sizeof(T));
  } else {
    for (std::size_t i = 0; i < count; ++i) dst[i] = static_cast<T>(load_le<Wire>(src + i * sizeof(Wire)));
  }
}

/// bfloat16 is the upper half of a float32: widening is a 16-bit shift of the bit pattern, exact
/// for every value (NaN payloads included).
inline void copy_bfloat16_from_le(float* dst, const char* src, std::size_t count) noexcept {
  for (std::size_t i = 0; i < count; ++i)
    dst[i] = std::bit_cast<float>(static_cast<std::uint32_t>(load_le<std::uint16_t>(src + 2 * i)) << 16);
}

}  // namespace tinker::proto::detail
