// gzip for HTTP bodies (Content-Encoding: gzip) with the system zlib. Beast's zlib port speaks raw
// deflate only, so it cannot read gzip or zlib framing. Inflating whole bodies is a use of the
// streaming inflater (detail/inflate_stream.hpp), the one the checkpoint download uses too.
//
// Decompression is bounded: the caller states the largest output it accepts, so a small
// compressed body cannot expand into gigabytes (a "decompression bomb").
#pragma once

#include <tinker/detail/inflate_stream.hpp>
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
/// Throws gzip_error: corrupt or truncated data, trailing garbage (zero padding included), or
/// output beyond `max_output`. The streaming inflater does the work, writing straight into the
/// result, which grows as needed.
inline std::string gzip_decompress(std::string_view data, std::size_t max_output) {
  using tinker::detail::inflate_error;
  if (data.empty()) throw gzip_error(gzip_error::kind::corrupt, "gzip: corrupt compressed data (empty input)");
  const auto limit_plus_one = max_output == std::numeric_limits<std::size_t>::max() ? max_output : max_output + 1;
  std::string out;
  try {
    tinker::detail::inflate_stream z(max_output, 0, tinker::detail::inflate_stream::padding::reject);
    // A guess at the ratio of JSON/protobuf payloads; grown below as needed.
    out.resize(std::min(std::max<std::size_t>(data.size() * 4, 256), limit_plus_one));
    std::size_t produced = 0;
    for (;;) {
      produced += z.decompress_some(data, out.data() + produced, out.size() - produced);
      if (produced < out.size()) break;  // the input is used up
      // The inflater throws past max_output, so the result never grows beyond one byte more.
      out.resize(out.size() <= limit_plus_one / 2 ? out.size() * 2 : limit_plus_one);
    }
    out.resize(produced);
    z.finish();
  } catch (const inflate_error& e) {
    if (e.which() == inflate_error::kind::too_large)
      throw gzip_error(gzip_error::kind::too_large,
                       "gzip: decompressed data exceeds the limit of " + std::to_string(max_output) + " bytes");
    if (e.which() == inflate_error::kind::internal) throw gzip_error(gzip_error::kind::internal, e.what());
    throw gzip_error(gzip_error::kind::corrupt, std::string("gzip: corrupt compressed data (") + e.what() + ")");
  }
  return out;
}

}  // namespace tinker::http
