// One request/response exchange on a connected stream: gather-write the head and the body, read
// the reply with Beast's parser, under the request deadline and the idle limits. Errors are
// returned, not thrown, together with what the caller needs to decide on a retry (did any byte of
// a reply arrive?).
#pragma once

#include <tinker/http/detail/connection.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/parser.hpp>
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
    case phase::resolving: return "resolving the host name";
    case phase::connecting: return "connecting";
    case phase::tls_handshake: return "in the TLS handshake";
    case phase::writing: return "writing the request";
    case phase::reading: return "reading the response";
  }
  return "?";
}

/// Response headers larger than this are refused (Beast's default for responses is 8 KiB).
inline constexpr std::uint32_t max_response_header_bytes = 64 * 1024;

struct exchange_result {
  boost::system::error_code ec;
  phase where = phase::writing;
  bool nothing_received = false;  ///< failed before any byte of a reply arrived
  bool idle_expired = false;      ///< a timeout of the phase's idle limit, not of the request deadline
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

/// What bounds one exchange: the whole-request deadline, and idle limits per direction (zero = off).
struct exchange_limits {
  std::chrono::steady_clock::time_point deadline;
  std::chrono::milliseconds write_idle{0};
  std::chrono::milliseconds read_idle{0};
};

/// Arms the TCP stream's timer for its next operation: `idle` from now, or the deadline when that
/// comes first or `idle` is off. Returns whether the idle limit is the one armed, so that a timeout
/// is reported against the limit that actually fired.
inline bool arm_timer(tcp_stream& tcp, std::chrono::steady_clock::time_point deadline, std::chrono::milliseconds idle) {
  if (idle.count() > 0) {
    const auto idle_end = std::chrono::steady_clock::now() + idle;
    if (idle_end < deadline) {
      tcp.expires_at(idle_end);
      return true;
    }
  }
  tcp.expires_at(deadline);
  return false;
}

/// Sends `head` + `body` and reads one final response (interim 1xx replies are skipped).
///
/// Deadlines use the TCP stream's timer, which closes the socket when it fires (the error is then
/// beast::error::timeout). The timer is re-armed before every read and write on the stream, to
/// the idle limit or the whole-request deadline, whichever ends first: progress extends the idle
/// limit, never the deadline. That is why this does not use asio::async_write and
/// http::async_read: they run many stream operations under one expiry (Beast's read keeps reading
/// while the parser needs more, so a header arriving slowly but steadily would look idle). Over
/// TLS each step is one TLS operation, so progress is counted per record.
template <class Stream>
asio::awaitable<exchange_result> run_exchange(Stream& stream, connection& conn, const std::string& head,
                                              const std::string& body, exchange_limits limits, bool head_method,
                                              std::size_t max_body) {
  namespace bhttp = boost::beast::http;
  exchange_result r;
  auto& tcp = beast::get_lowest_layer(stream);
  conn.begin_exchange();

  // Head and body go out as one gather write per step (one segment per step over TLS).
  const std::size_t total = head.size() + body.size();
  for (std::size_t sent = 0; sent < total;) {
    const std::array<asio::const_buffer, 2> rest{asio::buffer(head) + sent,
                                                 asio::buffer(body) + (sent > head.size() ? sent - head.size() : 0)};
    const bool idle = arm_timer(tcp, limits.deadline, limits.write_idle);
    auto [write_ec, written] = co_await stream.async_write_some(rest, asio::as_tuple(asio::use_awaitable));
    if (write_ec) {
      r.ec = write_ec;
      r.where = phase::writing;
      r.idle_expired = idle && write_ec == beast::error::timeout;
      r.nothing_received = true;
      co_return r;
    }
    sent += written;
  }

  conn.prepare_read_buffer();
  auto& buffer = conn.buffer();
  std::optional<bhttp::response_parser<bhttp::string_body>> parser;
  bool got_interim = false;
  for (;;) {
    parser.emplace();
    parser->header_limit(max_response_header_bytes);
    parser->body_limit(max_body);
    if (head_method) parser->skip(true);  // a reply to HEAD announces a length but carries no body
    boost::system::error_code ec;
    bool idle = false;
    // What http::async_read_some does, one stream read per timer arming: parse what the buffer
    // holds, read more only when the parser cannot go on.
    while (!parser->is_done()) {
      if (buffer.size() > 0) {
        const auto used = parser->put(buffer.data(), ec);
        buffer.consume(used);
        if (ec == bhttp::error::need_more)
          ec = {};
        else if (ec)
          break;
        else if (used > 0)
          continue;
      }
      const auto size = beast::read_size(buffer, 64 * 1024);
      if (size == 0) {
        ec = bhttp::error::buffer_overflow;
        break;
      }
      idle = arm_timer(tcp, limits.deadline, limits.read_idle);
      auto [read_ec, read] = co_await stream.async_read_some(buffer.prepare(size), asio::as_tuple(asio::use_awaitable));
      buffer.commit(read);
      // The end of the stream ends a read-until-EOF body. A TLS peer that closes without
      // close_notify (stream_truncated) does that too, once the headers are in.
      const bool end_of_body = read_ec == asio::error::eof || (read_ec == asio::ssl::error::stream_truncated &&
                                                               parser->is_header_done() && parser->need_eof());
      if (end_of_body && parser->got_some()) {
        ec = {};
        parser->put_eof(ec);  // partial_message unless the body was delimited by the end
        break;
      }
      if (read_ec == asio::error::eof) {
        ec = bhttp::error::end_of_stream;
        break;
      }
      if (read_ec) {
        ec = read_ec;
        break;
      }
    }
    if (ec) {
      r.ec = ec;
      r.where = phase::reading;
      r.idle_expired = idle && ec == beast::error::timeout;
      r.nothing_received = !got_interim && !parser->got_some() && buffer.size() == 0;
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
  r.keep_alive = parser->keep_alive() && buffer.size() == 0 && r.status != 101;
  r.headers = std::move(static_cast<bhttp::fields&>(message.base()));
  r.body = std::move(message.body());
  co_return r;
}

}  // namespace tinker::http::detail
