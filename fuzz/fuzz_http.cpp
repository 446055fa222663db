// What the client reads from a server socket, fed from a buffer instead: an HTTP response through
// the parser the transport uses (http/detail/exchange.hpp: same limits, interim 1xx answers
// skipped, end of stream as end of body), arriving in pieces of fuzzer-chosen sizes; the
// Content-Encoding step (gzip_decompress, as transport_state::decode_body calls it), cross-checked
// against the streaming inflater fed in the same pieces; the download's parser (buffer_body into a
// fixed chunk); and the URLs a server hands us (archive URLs and redirect Locations).
//
// Input: one selector byte, one byte of piece size, then the bytes of the stream.
#include "fuzz_common.hpp"

#include <tinker/client/detail/download_url.hpp>
#include <tinker/detail/inflate_stream.hpp>
#include <tinker/http/detail/exchange.hpp>
#include <tinker/http/gzip.hpp>

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace {

namespace bhttp = boost::beast::http;
using namespace tinker;

constexpr std::size_t max_body = 1 << 20;

/// Feeds `stream` to `parser` at most `piece` bytes at a time (what one socket read delivers),
/// keeping unconsumed bytes as run_exchange does; ends with put_eof when the stream runs out.
/// Returns the parser's error and how many bytes of `stream` it used.
template <class Parser, class OnProgress>
boost::system::error_code feed(Parser& parser, std::string_view stream, std::size_t piece, std::size_t& used,
                               OnProgress on_progress) {
  std::string buffered;
  std::size_t offered = used;
  boost::system::error_code ec;
  while (!parser.is_done()) {
    if (!buffered.empty()) {
      ec = {};
      const auto n = parser.put(boost::asio::buffer(buffered), ec);
      buffered.erase(0, n);
      used += n;
      on_progress();
      if (ec == bhttp::error::need_buffer) {
        ec = {};
        continue;
      }
      if (ec == bhttp::error::need_more)
        ec = {};
      else if (ec)
        return ec;
      else if (n > 0)
        continue;
    }
    if (offered == stream.size()) {
      if (!parser.got_some()) return bhttp::error::end_of_stream;
      parser.put_eof(ec);
      return ec;
    }
    const auto take = std::min(piece, stream.size() - offered);
    buffered.append(stream.substr(offered, take));
    offered += take;
  }
  return ec;
}

/// The transport's decode_body for a gzip answer, and the streaming inflater on the same bytes.
void decode_gzip_body(std::string_view body, std::size_t piece) {
  std::optional<std::string> whole;
  fuzz::expect_typed_errors([&] { whole = http::gzip_decompress(body, max_body); });
  std::string streamed;
  const bool ok = fuzz::expect_typed_errors([&] {
    tinker::detail::inflate_stream z(max_body, piece, tinker::detail::inflate_stream::padding::reject);
    for (std::size_t i = 0; i < body.size(); i += piece)
      z.write(body.substr(i, piece), [&](std::string_view out) { streamed.append(out); });
    z.finish();
  });
  // One inflater behind both: they must agree on what is valid and on what it holds.
  if (whole.has_value() != ok) fuzz::fail("gzip_decompress and inflate_stream disagree on validity");
  if (whole && *whole != streamed) fuzz::fail("gzip_decompress and inflate_stream disagree on the output");
}

/// An API answer: read as run_exchange reads it, then its Content-Encoding undone.
void read_api_response(std::string_view stream, std::size_t piece) {
  std::size_t used = 0;
  for (;;) {
    bhttp::response_parser<bhttp::string_body> parser;
    parser.header_limit(http::detail::max_response_header_bytes);
    parser.body_limit(max_body);
    if (feed(parser, stream, piece, used, [] {})) return;
    const unsigned status = parser.get().result_int();
    if (status >= 100 && status < 200 && status != 101) continue;  // interim answer: read the next one
    const auto& message = parser.get();
    if (auto it = message.find(bhttp::field::content_encoding); it != message.end()) {
      const auto encoding = it->value();
      if (encoding == "gzip" || encoding == "x-gzip" || encoding == "deflate") decode_gzip_body(message.body(), piece);
    }
    return;
  }
}

/// A download: header, then the body streamed through a small fixed chunk.
void read_download_response(std::string_view stream, std::size_t piece) {
  bhttp::response_parser<bhttp::buffer_body> parser;
  parser.header_limit(64 * 1024);
  parser.body_limit(max_body);
  char chunk[512];
  std::string body;
  parser.get().body().data = chunk;
  parser.get().body().size = sizeof chunk;
  std::size_t used = 0;
  // After each put: take what landed in the chunk and hand the parser an empty chunk again.
  auto drain = [&] {
    const auto got = sizeof chunk - parser.get().body().size;
    body.append(chunk, got);
    TINKER_FUZZ_CHECK(body.size() <= max_body);
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof chunk;
  };
  if (feed(parser, stream, piece, used, drain)) return;
  // A 2xx body is exactly what Content-Length announced (1xx, 204 and 304 answers have none).
  const auto status = parser.get().result_int();
  if (const auto length = parser.content_length(); length && status >= 200 && status < 300 && status != 204)
    TINKER_FUZZ_CHECK(body.size() == *length);
}

/// URLs from the server: a checkpoint archive URL, and a redirect's Location resolved against it.
void parse_urls(std::string_view text) {
  const auto newline = text.find('\n');
  const auto first = text.substr(0, newline);
  std::optional<tinker::detail::download_url> u;
  if (!fuzz::expect_typed_errors([&] { u = tinker::detail::download_url::parse(first); })) return;
  // What parse accepted prints back to a URL that parses to the same parts.
  tinker::detail::download_url again;
  if (!fuzz::expect_typed_errors(
          [&] { again = tinker::detail::download_url::parse(u->scheme + "://" + u->host_header() + u->target()); }))
    fuzz::fail("a parsed download URL does not print to a valid one");
  TINKER_FUZZ_CHECK(again.host == u->host && again.port == u->port && again.path == u->path && again.query == u->query);
  if (newline != std::string_view::npos) fuzz::expect_typed_errors([&] { (void)u->resolve(text.substr(newline + 1)); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tinker::fuzz::input in{data, size};
  const auto which = in.take_byte() % 4;
  const std::size_t piece = std::size_t{in.take_byte()} * 4 + 1;
  const auto rest = in.rest();
  switch (which) {
    case 0: read_api_response(rest, piece); break;
    case 1: read_download_response(rest, piece); break;
    case 2: decode_gzip_body(rest, piece); break;
    case 3: parse_urls(rest); break;
  }
  return 0;
}
