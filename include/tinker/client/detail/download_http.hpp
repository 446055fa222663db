// One streaming HTTP(S) GET on its own connection, for downloads: resolve + connect + TLS under a
// connect deadline, redirects followed (each on a new connection), the body handed to a sink in
// chunks as it arrives, an idle timeout between reads.
//
// Not a call through the pooled API transport: a signed URL usually points at another host (object
// storage), the body can be gigabytes, and it must never be decoded (Accept-Encoding: identity; the
// archive itself is gzip). The connection is opened with the transport's own pieces
// (http/detail/connect.hpp: the lookup that never outlives its deadline, connect, TLS handshake).
//
// Sink requirements:
//   void on_response(std::optional<std::uint64_t> content_length);  // once, for the final 2xx answer
//   void on_body(std::string_view chunk);                             // the body, in order
// Errors: non-2xx -> the api_status_error hierarchy; no answer -> api_connection_error; a deadline
// -> api_timeout_error; cancellation -> boost::system::system_error(operation_aborted). Messages
// name scheme, host and path only: the query of a signed URL is a credential.
#pragma once

#include <tinker/client/detail/download_error.hpp>
#include <tinker/client/detail/download_url.hpp>
#include <tinker/client/detail/status_error.hpp>
#include <tinker/error.hpp>
#include <tinker/http/detail/connect.hpp>
#include <tinker/http/detail/tls_context.hpp>
#include <tinker/http/tls_options.hpp>
#include <tinker/version.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/system/system_error.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace tinker::detail {

struct download_http_settings {
  http::tls_options tls;
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds idle_timeout{60'000};
  std::uint64_t max_body_bytes = 0;
  int max_redirects = 3;
};

/// The body is read through a buffer of this size: large enough for few wake-ups per megabyte,
/// small enough not to matter.
inline constexpr std::size_t download_chunk_bytes = 256 * 1024;
/// How much of an error body is kept for the exception.
inline constexpr std::size_t download_error_body_bytes = 64 * 1024;

/// Throws operation_aborted if the awaiting coroutine was cancelled (even between operations).
inline boost::asio::awaitable<void> download_throw_if_cancelled() {
  const auto state = co_await boost::asio::this_coro::cancellation_state;
  if (state.cancelled() != boost::asio::cancellation_type::none)
    throw boost::system::system_error(boost::asio::error::operation_aborted);
}

/// The exception for a failed read or write on the connection.
[[noreturn]] inline void throw_download_transfer_error(const boost::system::error_code& ec, const download_url& u,
                                                       const char* doing, const download_http_settings& s,
                                                       std::uint64_t received = 0,
                                                       std::optional<std::uint64_t> expected = std::nullopt) {
  namespace bhttp = boost::beast::http;
  if (ec == boost::asio::error::operation_aborted) throw boost::system::system_error(ec);
  if (ec == boost::beast::error::timeout)
    throw api_timeout_error(std::string(doing) + " " + u.redacted() + ": nothing received for " +
                            std::to_string(s.idle_timeout.count()) + " ms (download_options::idle_timeout)");
  if (ec == bhttp::error::body_limit)
    throw archive_error({}, "the download exceeds the limit of " + std::to_string(s.max_body_bytes) +
                                " bytes (download_options::max_archive_bytes)");
  if (ec == bhttp::error::partial_message) {
    std::string what = "the connection to " + u.host_header() + " closed before the end of the body of " + u.redacted();
    if (expected) what += " (received " + std::to_string(received) + " of " + std::to_string(*expected) + " bytes)";
    throw api_connection_error(what);
  }
  throw api_connection_error(std::string(doing) + " " + u.redacted() + " failed: " + ec.message());
}

/// Resolves and connects `tcp` to the URL's host before `deadline`.
inline boost::asio::awaitable<void> download_connect(boost::beast::tcp_stream& tcp, const download_url& u,
                                                     const download_http_settings& s,
                                                     std::chrono::steady_clock::time_point deadline) {
  namespace asio = boost::asio;
  const auto lookup = http::detail::host_lookup::start(tcp.get_executor(), u.host, u.port, [](auto&) {});
  if (!co_await lookup->wait(deadline)) {
    lookup->cancel();
    throw api_timeout_error("resolving '" + u.host + "' took longer than " + std::to_string(s.connect_timeout.count()) +
                            " ms (download_options::connect_timeout)");
  }
  co_await download_throw_if_cancelled();
  if (lookup->error()) throw api_connection_error("cannot resolve host '" + u.host + "': " + lookup->error().message());

  const auto connect_ec = co_await http::detail::connect_before(tcp, *lookup->endpoints(), deadline);
  if (connect_ec == asio::error::operation_aborted) throw boost::system::system_error(connect_ec);
  if (connect_ec == boost::beast::error::timeout)
    throw api_timeout_error("connecting to " + u.host_header() + " took longer than " +
                            std::to_string(s.connect_timeout.count()) + " ms (download_options::connect_timeout)");
  if (connect_ec) throw api_connection_error("cannot connect to " + u.host_header() + ": " + connect_ec.message());
}

/// What one request/response exchange ended with.
struct download_step {
  bool redirect = false;
  unsigned status = 0;
  std::string location;  ///< redirects only
  std::uint64_t bytes = 0;
};

template <class Stream>
boost::asio::awaitable<std::string> read_download_error_body(
    Stream& stream, boost::beast::flat_buffer& buffer,
    boost::beast::http::response_parser<boost::beast::http::buffer_body>& parser, const download_http_settings& s) {
  namespace asio = boost::asio;
  namespace bhttp = boost::beast::http;
  std::string body;
  body.resize(download_error_body_bytes);
  std::size_t filled = 0;
  while (!parser.is_done() && filled < body.size()) {
    parser.get().body().data = body.data() + filled;
    parser.get().body().size = body.size() - filled;
    boost::beast::get_lowest_layer(stream).expires_after(s.idle_timeout);
    auto [ec, n] = co_await bhttp::async_read_some(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
    (void)n;
    filled = body.size() - parser.get().body().size;
    if (ec == bhttp::error::need_buffer) continue;
    if (ec == asio::error::operation_aborted) throw boost::system::system_error(ec);
    if (ec) break;  // the status is what matters; keep what arrived
  }
  body.resize(filled);
  co_return body;
}

/// Sends the GET and reads the answer: a redirect's Location, or the whole 2xx body into `sink`.
template <class Stream, class Sink>
boost::asio::awaitable<download_step> download_exchange(Stream& stream, const download_url& u,
                                                        const download_http_settings& s, Sink& sink) {
  namespace asio = boost::asio;
  namespace beast = boost::beast;
  namespace bhttp = boost::beast::http;
  auto& tcp = beast::get_lowest_layer(stream);

  bhttp::request<bhttp::empty_body> req{bhttp::verb::get, u.target(), 11};
  req.set(bhttp::field::host, u.host_header());
  req.set(bhttp::field::user_agent, std::string("tinker-cpp/") + library_version);
  req.set(bhttp::field::accept, "*/*");
  req.set(bhttp::field::accept_encoding, "identity");  // the archive is gzip already: never decode it
  req.set(bhttp::field::connection, "close");
  tcp.expires_after(s.idle_timeout);
  {
    auto [ec, n] = co_await bhttp::async_write(stream, req, asio::as_tuple(asio::use_awaitable));
    (void)n;
    if (ec) throw_download_transfer_error(ec, u, "sending the request to", s);
  }

  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::buffer_body> parser;
  parser.header_limit(64 * 1024);
  parser.body_limit(s.max_body_bytes);
  tcp.expires_after(s.idle_timeout);
  {
    auto [ec, n] = co_await bhttp::async_read_header(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
    (void)n;
    if (ec) throw_download_transfer_error(ec, u, "reading the response header from", s);
  }
  const unsigned status = parser.get().result_int();
  if (status == 301 || status == 302 || status == 303 || status == 307 || status == 308) {
    const auto location = parser.get()[bhttp::field::location];
    if (location.empty())
      throw api_status_error(
          static_cast<int>(status), {},
          "GET " + u.redacted() + " answered HTTP " + std::to_string(status) + " without a Location header");
    co_return download_step{true, status, std::string(location), 0};
  }
  if (status < 200 || status >= 300) {
    auto body = co_await read_download_error_body(stream, buffer, parser, s);
    // The same exception types and message as an API call's (the URL shown without its query).
    std::rethrow_exception(make_status_error("GET", u.redacted(), status, std::move(body)));
  }

  // Beast reads at most the buffer's free capacity per call: without room, a body arrives in
  // header-sized (~1 KiB) reads.
  buffer.reserve(download_chunk_bytes);
  std::optional<std::uint64_t> length;
  if (const auto cl = parser.content_length()) length = *cl;
  if (length && *length > s.max_body_bytes)
    throw archive_error({}, "the server announces " + std::to_string(*length) + " bytes, more than the limit of " +
                                std::to_string(s.max_body_bytes) + " bytes (download_options::max_archive_bytes)");
  sink.on_response(length);

  const std::unique_ptr<char[]> chunk(new char[download_chunk_bytes]);
  std::uint64_t received = 0;
  while (!parser.is_done()) {
    parser.get().body().data = chunk.get();
    parser.get().body().size = download_chunk_bytes;
    tcp.expires_after(s.idle_timeout);
    auto [ec, n] = co_await bhttp::async_read_some(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
    (void)n;
    if (ec == bhttp::error::need_buffer) ec = {};
    const std::size_t got = download_chunk_bytes - parser.get().body().size;
    if (got > 0) {
      received += got;
      sink.on_body(std::string_view(chunk.get(), got));
    }
    if (ec == asio::ssl::error::stream_truncated && !length && !parser.chunked()) {
      // A body delimited by the end of the connection, closed without TLS close_notify (common).
      // Its integrity is the archive's own (gzip CRC, tar end marker).
      beast::error_code eof_ec;
      parser.put_eof(eof_ec);
      ec = eof_ec;
    }
    if (ec) throw_download_transfer_error(ec, u, "reading the body of", s, received, length);
    co_await download_throw_if_cancelled();
  }
  if (length && received != *length)
    throw api_connection_error("the body of " + u.redacted() + " has " + std::to_string(received) + " bytes, but " +
                               std::to_string(*length) + " were announced");
  co_return download_step{false, status, {}, received};
}

/// GETs `url_text`, following redirects, and streams the final 2xx body into `sink`. Returns the
/// number of body bytes.
template <class Sink>
boost::asio::awaitable<std::uint64_t> http_download(boost::asio::any_io_executor ex, std::string url_text,
                                                    download_http_settings s, Sink& sink) {
  namespace asio = boost::asio;
  namespace beast = boost::beast;
  auto url = download_url::parse(url_text);
  // The download has its own connection (a signed URL may point at object storage on another host)
  // but the same TLS rules as the API transport: system CAs and/or tls.ca_file / ca_dir, SNI,
  // host name checks, and a loud opt-out.
  std::shared_ptr<asio::ssl::context> tls_context;
  for (int redirects = 0;; ++redirects) {
    download_step step;
    const auto deadline = std::chrono::steady_clock::now() + s.connect_timeout;
    if (url.https()) {
      if (!tls_context) tls_context = http::detail::make_client_tls_context(s.tls, url.host_header(), {});
      asio::ssl::stream<beast::tcp_stream> stream(ex, *tls_context);
      bool host_mismatch = false;
      co_await download_connect(stream.next_layer(), url, s, deadline);
      const auto ec = co_await http::detail::client_handshake(
          stream, url.host, !http::detail::tls_verification_disabled(s.tls), host_mismatch);
      if (ec == asio::error::operation_aborted) throw boost::system::system_error(ec);
      if (ec == beast::error::timeout)
        throw api_timeout_error("the TLS handshake with " + url.host_header() + " took longer than " +
                                std::to_string(s.connect_timeout.count()) + " ms (download_options::connect_timeout)");
      if (ec)
        throw api_connection_error("cannot connect to " + url.host_header() + ": " +
                                   http::detail::describe_tls_failure(stream, ec, url.host, host_mismatch));
      step = co_await download_exchange(stream, url, s, sink);
    } else {
      beast::tcp_stream stream(ex);
      co_await download_connect(stream, url, s, deadline);
      step = co_await download_exchange(stream, url, s, sink);
    }
    if (!step.redirect) co_return step.bytes;

    const auto status = static_cast<int>(step.status);
    if (redirects >= s.max_redirects)
      throw api_status_error(
          status, {},
          "GET " + url.redacted() + " answered HTTP " + std::to_string(status) + " after " + std::to_string(redirects) +
              " redirects: too many redirects (download_options::max_redirects = " + std::to_string(s.max_redirects) +
              ")");
    download_url next;
    try {
      next = url.resolve(step.location);
    } catch (const tinker::invalid_argument& e) {
      throw api_status_error(status, {}, std::string("GET ") + url.redacted() + ": " + e.what());
    }
    if (url.https() && !next.https())
      throw api_status_error(
          status, {},
          "GET " + url.redacted() + " redirects to " + next.redacted() +
              ": refusing to follow a redirect from https to plain http (it would expose the signed URL)");
    url = std::move(next);
  }
}

}  // namespace tinker::detail
