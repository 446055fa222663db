// gzip for HTTP bodies (Content-Encoding: gzip) with the system zlib. Beast's zlib port speaks raw
// deflate only, so it cannot read gzip or zlib framing.
//
// Decompression is bounded: the caller states the largest output it accepts, so a small
// compressed body cannot expand into gigabytes (a "decompression bomb").
#pragma once

#include <tinker/error.hpp>

#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <limits>
#include <string>
#include <string_view>

namespace tinker::http {

/// A body that cannot be (de)compressed. `too_large()` tells a bomb or an over-limit body from
/// corrupt data (a server answers 413 for the first, 400 for the second).
class gzip_error : public tinker_error {
public:
  enum class kind { corrupt, too_large, internal };
  gzip_error(kind k, const std::string& what) : tinker_error(what), kind_(k) {}
  kind which() const noexcept { return kind_; }
  bool too_large() const noexcept { return kind_ == kind::too_large; }

private:
  kind kind_;
};

namespace detail {

// zlib counts in uInt; feed larger inputs in slices.
inline constexpr std::size_t zlib_max_chunk = std::numeric_limits<uInt>::max();

}  // namespace detail

/// gzip-compresses `data` (RFC 1952 framing). `level` is zlib's 0..9 (-1 = zlib's default).
inline std::string gzip_compress(std::string_view data, int level = 6) {
  z_stream zs{};
  // windowBits 15 + 16 = gzip header and trailer instead of the zlib ones.
  if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw gzip_error(gzip_error::kind::internal,
                     "gzip: cannot initialise the compressor (level " + std::to_string(level) + ")");
  struct end_guard {
    z_stream& zs;
    ~end_guard() { deflateEnd(&zs); }
  } guard{zs};

  std::string out;
  // deflateBound is exact for one-shot compression of inputs that fit in uLong; +32 covers the gzip
  // header/trailer difference to zlib framing.
  out.resize(static_cast<std::size_t>(deflateBound(&zs, static_cast<uLong>(data.size()))) + 32);
  std::size_t produced = 0;
  auto* in = reinterpret_cast<const Bytef*>(data.data());
  std::size_t remaining = data.size();
  int rc = Z_OK;
  do {
    const auto chunk = std::min(remaining, detail::zlib_max_chunk);
    zs.next_in = const_cast<Bytef*>(in);
    zs.avail_in = static_cast<uInt>(chunk);
    const int flush = chunk == remaining ? Z_FINISH : Z_NO_FLUSH;
    do {
      if (produced == out.size()) out.resize(out.size() * 2 + 64);
      const auto room = std::min(out.size() - produced, detail::zlib_max_chunk);
      zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
      zs.avail_out = static_cast<uInt>(room);
      rc = deflate(&zs, flush);
      if (rc == Z_STREAM_ERROR) throw gzip_error(gzip_error::kind::internal, "gzip: compression failed");
      produced += room - zs.avail_out;
    } while (zs.avail_out == 0 || (flush == Z_FINISH && rc != Z_STREAM_END));
    in += chunk;
    remaining -= chunk;
  } while (remaining > 0);
  out.resize(produced);
  return out;
}

/// Inflates a gzip (or zlib-framed) body. Concatenated gzip members are joined (RFC 1952 §2.2).
/// Throws gzip_error: corrupt or truncated data, trailing garbage, or output beyond `max_output`.
inline std::string gzip_decompress(std::string_view data, std::size_t max_output) {
  z_stream zs{};
  // windowBits 15 + 32 = detect gzip or zlib framing from the header.
  if (inflateInit2(&zs, 15 + 32) != Z_OK)
    throw gzip_error(gzip_error::kind::internal, "gzip: cannot initialise the decompressor");
  struct end_guard {
    z_stream& zs;
    ~end_guard() { inflateEnd(&zs); }
  } guard{zs};

  auto corrupt = [&](const char* why) {
    std::string msg = std::string("gzip: corrupt compressed data (") + why;
    if (zs.msg) msg += std::string(": ") + zs.msg;
    msg += ")";
    throw gzip_error(gzip_error::kind::corrupt, msg);
  };
  if (data.empty()) corrupt("empty input");

  std::string out;
  // A guess at the ratio of JSON/protobuf payloads; the loop grows the buffer as needed.
  out.resize(std::min<std::size_t>(std::max<std::size_t>(data.size() * 4, 256), max_output + 1));
  std::size_t produced = 0;
  auto* in = reinterpret_cast<const Bytef*>(data.data());
  std::size_t remaining = data.size();
  for (;;) {
    if (zs.avail_in == 0 && remaining > 0) {
      const auto chunk = std::min(remaining, detail::zlib_max_chunk);
      zs.next_in = const_cast<Bytef*>(in);
      zs.avail_in = static_cast<uInt>(chunk);
      in += chunk;
      remaining -= chunk;
    }
    if (produced == out.size()) {
      if (produced > max_output) break;  // reported below
      out.resize(std::min(out.size() * 2, max_output + 1));
    }
    const auto room = std::min(out.size() - produced, detail::zlib_max_chunk);
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    zs.avail_out = static_cast<uInt>(room);
    const int rc = inflate(&zs, Z_NO_FLUSH);
    produced += room - zs.avail_out;
    if (produced > max_output) break;
    if (rc == Z_STREAM_END) {
      if (zs.avail_in == 0 && remaining == 0) {
        out.resize(produced);
        return out;
      }
      // Another gzip member follows (or trailing garbage, which the next inflate rejects).
      if (inflateReset(&zs) != Z_OK) corrupt("cannot continue after a member");
      continue;
    }
    if (rc == Z_NEED_DICT) corrupt("a preset dictionary is required");
    if (rc == Z_DATA_ERROR) corrupt("invalid data");
    if (rc == Z_MEM_ERROR) throw gzip_error(gzip_error::kind::internal, "gzip: out of memory");
    if (rc == Z_BUF_ERROR || (rc == Z_OK && zs.avail_in == 0 && remaining == 0 && zs.avail_out != 0)) {
      // No progress possible: either the output is full (grow and retry) or the input ended early.
      if (zs.avail_out == 0) continue;
      corrupt("truncated input");
    }
  }
  throw gzip_error(gzip_error::kind::too_large,
                   "gzip: decompressed data exceeds the limit of " + std::to_string(max_output) + " bytes");
}

}  // namespace tinker::http
