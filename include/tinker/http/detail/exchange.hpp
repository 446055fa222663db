// One request/response exchange on a connected stream: gather-write the head and the body, read
// the reply with Beast's parser. Errors are returned, not thrown, together with what the caller
// needs to decide on a retry (did any byte of a reply arrive?).
#pragma once

#include <tinker/http/detail/connection.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>

#include <array>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace tinker::http::detail {

/// Where a request was when it failed (for messages and for the retry decision).
enum class phase { resolving, connecting, tls_handshake, writing, reading };

constexpr std::string_view phase_text(phase p) noexcept {
  switch (p) {
    case phase::resolving:
      return "resolving the host name";
    case phase::connecting:
      return "connecting";
    case phase::tls_handshake:
      return "in the TLS handshake";
    case phase::writing:
      return "writing the request";
    case phase::reading:
      return "reading the response";
  }
  return "?";
}

/// Response headers larger than this are refused (Beast's default for responses is 8 KiB).
inline constexpr std::uint32_t max_response_header_bytes = 64 * 1024;

struct exchange_result {
  boost::system::error_code ec;
  phase where = phase::writing;
  bool nothing_received = false;  ///< failed before any byte of a reply arrived
  bool keep_alive = false;        ///< the connection may carry another request
  unsigned status = 0;
  boost::beast::http::fields headers;
  std::string body;
};

/// Errors that mean "the server had closed this connection before our request arrived" when they
/// happen on a reused connection before any reply byte: safe to retry once on a fresh one.
inline bool is_stale_connection_error(const boost::system::error_code& ec) noexcept {
  namespace asio = boost::asio;
  return ec == boost::beast::http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::error::connection_aborted || ec == asio::error::not_connected ||
         ec == asio::ssl::error::stream_truncated;
}

/// Sends `head` + `body` and reads one final response (interim 1xx replies are skipped). The
/// deadline applies to both directions via the TCP stream's timer, which closes the socket when it
/// fires (the error is then beast::error::timeout).
template <class Stream>
asio::awaitable<exchange_result> run_exchange(Stream& stream, connection& conn, const std::string& head,
                                              const std::string& body, std::chrono::steady_clock::time_point deadline,
                                              bool head_method, std::size_t max_body) {
  namespace bhttp = boost::beast::http;
  exchange_result r;
  auto& tcp = beast::get_lowest_layer(stream);
  tcp.expires_at(deadline);
  conn.begin_exchange();
  const std::array<asio::const_buffer, 2> buffers{asio::buffer(head), asio::buffer(body)};
  auto [write_ec, written] = co_await asio::async_write(stream, buffers, asio::as_tuple(asio::use_awaitable));
  (void)written;
  if (write_ec) {
    r.ec = write_ec;
    r.where = phase::writing;
    r.nothing_received = true;
    co_return r;
  }

  conn.prepare_read_buffer();
  std::optional<bhttp::response_parser<bhttp::string_body>> parser;
  bool got_interim = false;
  for (;;) {
    parser.emplace();
    parser->header_limit(max_response_header_bytes);
    parser->body_limit(max_body);
    if (head_method) parser->skip(true);  // a reply to HEAD announces a length but carries no body
    auto [read_ec, read] =
        co_await bhttp::async_read(stream, conn.buffer(), *parser, asio::as_tuple(asio::use_awaitable));
    (void)read;
    // A TLS peer that closes without close_notify ends a read-until-EOF body: that is the end of it.
    if (read_ec == asio::ssl::error::stream_truncated && parser->is_header_done() && parser->need_eof()) {
      boost::beast::error_code eof_ec;
      parser->put_eof(eof_ec);
      read_ec = eof_ec;
    }
    if (read_ec) {
      r.ec = read_ec;
      r.where = phase::reading;
      r.nothing_received = !got_interim && !parser->got_some() && conn.buffer().size() == 0;
      co_return r;
    }
    const unsigned status = parser->get().result_int();
    if (status >= 100 && status < 200 && status != 101) {
      got_interim = true;
      continue;
    }
    break;
  }
  tcp.expires_never();
  auto& message = parser->get();
  r.status = message.result_int();
  // Leftover bytes after a complete response would be read as the next reply: do not reuse.
  r.keep_alive = parser->keep_alive() && conn.buffer().size() == 0 && r.status != 101;
  r.headers = std::move(static_cast<bhttp::fields&>(message.base()));
  r.body = std::move(message.body());
  co_return r;
}

}  // namespace tinker::http::detail
