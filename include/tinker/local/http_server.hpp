// The local engine's HTTP/1.1 server (optionally TLS): keep-alive connections, one request at a
// time each, a coroutine handler per request (so it can long-poll), gzip in both directions, and
// JSON error bodies for everything it refuses itself. Thousands of connections, each parked in a
// handler awaiting a timer, cost only their coroutine frames and buffers on one thread.
//
// What the handler sees: the request with its body already inflated when it came with
// `Content-Encoding: gzip` (the header is then removed). What it returns: a response, or nullopt
// to drop the connection without answering (fault injection). An exception becomes a 500.
//
// Refusals, all with a `{"detail": "..."}` body: malformed HTTP -> 400, headers over 64 KiB -> 431,
// a body over max_body_bytes -> 413 (these three close the connection: the request was not read to
// its end); a body over the limit once inflated -> 413, corrupt gzip -> 400, other
// Content-Encodings -> 415, a handler that throws -> 500 (the connection stays usable). Nothing is
// logged; header values never appear in any message.
//
// Single-threaded: call start(), stop() and the accessors from the executor's thread (or while the
// io_context is not running).
#pragma once

#include <tinker/detail/async_event.hpp>
#include <tinker/error.hpp>
#include <tinker/http/detail/request_head.hpp>
#include <tinker/http/gzip.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/consign.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/intrusive/list.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tinker::local {

namespace asio = boost::asio;
namespace beast = boost::beast;

struct http_server_options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  ///< 0 = pick a free port (see http_server::port())
  std::size_t max_body_bytes = 64u << 20;
  /// How long a connection may sit without a request (and how long reading or writing one may take).
  std::chrono::seconds idle_timeout{75};
  /// Beyond this many open connections, accepting pauses until one closes.
  std::size_t max_connections = 16384;
  bool gzip_responses = true;  ///< when the client sent `Accept-Encoding: gzip`
  std::size_t gzip_min_bytes = 1024;
  /// Where bodies of at least `offload_gzip_bytes` are gzipped, and gzip request bodies of at least
  /// that many compressed bytes inflated (e.g. a thread pool's executor), so that large bodies do
  /// not hold up the I/O thread; absent = on the I/O thread.
  std::optional<asio::any_io_executor> gzip_executor;
  std::size_t offload_gzip_bytes = 128 * 1024;
  std::optional<std::string> tls_cert_file, tls_key_file;  ///< PEM; TLS when both are set
};

using http_request = beast::http::request<beast::http::string_body>;
using http_response = beast::http::response<beast::http::string_body>;
/// A coroutine so it can long-poll. nullopt = drop the connection without answering.
using request_handler = std::function<asio::awaitable<std::optional<http_response>>(http_request&)>;

namespace detail {

namespace bhttp = boost::beast::http;

/// Largest request header block accepted.
inline constexpr std::uint32_t max_request_header_bytes = 64 * 1024;

/// `{"detail": text}` with the given status. `close`: the request could not be read to its end, so
/// the connection cannot carry another one.
inline http_response json_error_response(bhttp::status status, std::string_view detail, unsigned version, bool close) {
  http_response res{status, version};
  res.set(bhttp::field::content_type, "application/json");
  res.body() = boost::json::serialize(boost::json::object{{"detail", detail}});
  if (close) res.set(bhttp::field::connection, "close");
  return res;
}

/// Does the client accept gzip? Honours `q=0` ("gzip;q=0" refuses it) and `*`.
inline bool accepts_gzip(std::string_view accept_encoding) noexcept {
  bool gzip = false, star = false, gzip_listed = false;
  while (!accept_encoding.empty()) {
    const auto comma = accept_encoding.find(',');
    auto item = accept_encoding.substr(0, comma);
    accept_encoding = comma == std::string_view::npos ? std::string_view() : accept_encoding.substr(comma + 1);
    std::string_view params;
    if (const auto semi = item.find(';'); semi != std::string_view::npos) {
      params = item.substr(semi + 1);
      item = item.substr(0, semi);
    }
    auto trim = [](std::string_view s) {
      while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
      while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
      return s;
    };
    item = trim(item);
    params = trim(params);
    bool refused = false;
    if (params.size() >= 2 && (params[0] == 'q' || params[0] == 'Q') && params[1] == '=') {
      auto q = trim(params.substr(2));
      refused = !q.empty() && q.find_first_not_of("0.") == std::string_view::npos;  // 0, 0.0, 0.000
    }
    if (::tinker::http::detail::ascii_iequals(item, "gzip") || ::tinker::http::detail::ascii_iequals(item, "x-gzip")) {
      gzip_listed = true;
      gzip = !refused;
    } else if (item == "*") {
      star = !refused;
    }
  }
  return gzip || (!gzip_listed && star);
}

/// Bodies that are compressed already (the checkpoint archive is a .tar.gz).
inline bool is_precompressed_type(std::string_view content_type) noexcept {
  for (std::string_view t : {"application/gzip", "application/x-gzip", "application/zip", "application/zstd",
                             "application/x-xz", "application/x-bzip2"})
    if (content_type.substr(0, t.size()) == t) return true;
  return false;
}

/// Registry entry of a live connection: how stop() reaches it.
struct session_entry : boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>>,
                       std::enable_shared_from_this<session_entry> {
  asio::cancellation_signal signal;     ///< cancels the session coroutine (and the handler it awaits)
  beast::tcp_stream* stream = nullptr;  ///< its socket, while the session runs
};

class server_state : public std::enable_shared_from_this<server_state> {
public:
  server_state(asio::any_io_executor ex, http_server_options options, request_handler handler)
      : executor_(std::move(ex)), options_(std::move(options)), handler_(std::move(handler)), acceptor_(executor_) {
    if (!handler_) throw tinker::invalid_argument("http_server: the request handler is empty");
    if (options_.tls_cert_file.has_value() != options_.tls_key_file.has_value())
      throw tinker::invalid_argument("http_server_options: set both tls_cert_file and tls_key_file, or neither");
    if (options_.max_connections == 0)
      throw tinker::invalid_argument("http_server_options.max_connections must be at least 1");
  }

  void start() {
    if (started_) throw tinker::invalid_argument("http_server: start() called twice");
    if (options_.tls_cert_file) tls_ = make_tls_context();
    boost::system::error_code ec;
    asio::ip::tcp::endpoint endpoint;
    const auto address = asio::ip::make_address(options_.host, ec);
    if (!ec) {
      endpoint = {address, options_.port};
    } else {
      asio::ip::tcp::resolver resolver(executor_);
      auto results = resolver.resolve(options_.host, std::to_string(options_.port), ec);
      if (ec || results.empty())
        throw tinker_error("http_server: cannot resolve the listen host '" + options_.host +
                           "': " + (ec ? ec.message() : std::string("no addresses")));
      endpoint = results.begin()->endpoint();
    }
    const auto where = endpoint.address().to_string() + ":" + std::to_string(options_.port);
    auto check = [&](const char* step) {
      if (ec) {
        acceptor_.close(ec);
        throw tinker_error("http_server: cannot listen on " + where + " (" + step + "): " + ec.message());
      }
    };
    acceptor_.open(endpoint.protocol(), ec);
    check("open");
    acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    check("SO_REUSEADDR");
    acceptor_.bind(endpoint, ec);
    check("bind");
    acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    check("listen");
    port_ = acceptor_.local_endpoint(ec).port();
    check("local_endpoint");
    started_ = true;
    asio::co_spawn(executor_, accept_loop(shared_from_this()), asio::detached);
  }

  void stop() {
    if (stopped_) return;
    stopped_ = true;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    capacity_.notify_all();
    std::vector<std::shared_ptr<session_entry>> live;
    for (auto& session : sessions_) {
      live.push_back(session.shared_from_this());
      if (session.stream) session.stream->close();  // fails any read or write, now or later
    }
    // Cancellation reaches what a session awaits, including its handler's timers. It is emitted
    // from the executor, with the entries kept alive: co_spawn's cancellation handler (Asio 1.26)
    // dispatches the emit, and a deferred emit must not outlive the signal it points into. Sessions
    // that ended in the meantime are skipped.
    asio::dispatch(executor_, [live = std::move(live)] {
      for (auto& session : live)
        if (session->is_linked()) session->signal.emit(asio::cancellation_type::terminal);
    });
  }

  std::uint16_t port() const noexcept { return port_; }
  std::size_t active_connections() const noexcept { return active_; }
  std::uint64_t accepted_connections() const noexcept { return accepted_; }

private:
  using tls_stream = asio::ssl::stream<beast::tcp_stream>;

  std::shared_ptr<asio::ssl::context> make_tls_context() {
    namespace ssl = asio::ssl;
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                     ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
    SSL_CTX_set_mode(ctx->native_handle(), SSL_MODE_RELEASE_BUFFERS);
    boost::system::error_code ec;
    ctx->use_certificate_chain_file(*options_.tls_cert_file, ec);
    if (ec)
      throw tinker::invalid_argument("http_server_options.tls_cert_file '" + *options_.tls_cert_file +
                                     "' cannot be loaded: " + ec.message());
    ctx->use_private_key_file(*options_.tls_key_file, ssl::context::pem, ec);
    if (ec)
      throw tinker::invalid_argument("http_server_options.tls_key_file '" + *options_.tls_key_file +
                                     "' cannot be loaded: " + ec.message());
    return ctx;
  }

  static asio::awaitable<void> accept_loop(std::shared_ptr<server_state> self) {
    for (;;) {
      while (self->active_ >= self->options_.max_connections && !self->stopped_) {
        co_await self->capacity_.wait();
      }
      if (self->stopped_) co_return;
      auto [ec, socket] = co_await self->acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
      if (self->stopped_ || ec == asio::error::operation_aborted) co_return;
      if (ec) {
        // Out of file descriptors and the like: back off instead of spinning on the error.
        asio::steady_timer pause(self->executor_, std::chrono::milliseconds(50));
        (void)co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
        continue;
      }
      ++self->accepted_;
      boost::system::error_code ignored;
      socket.set_option(asio::ip::tcp::no_delay(true), ignored);
      auto entry = std::make_shared<session_entry>();
      self->sessions_.push_back(*entry);
      ++self->active_;
      auto slot = entry->signal.slot();
      asio::co_spawn(self->executor_, run_session(self, entry, std::move(socket)),
                     asio::bind_cancellation_slot(slot, asio::consign(asio::detached, entry)));
    }
  }

  static asio::awaitable<void> run_session(std::shared_ptr<server_state> self, std::shared_ptr<session_entry> entry,
                                           asio::ip::tcp::socket socket) {
    // Leaves the registry while `self` is certainly alive (the completion handler, which also
    // holds the entry, may run after this frame is gone).
    struct leave_guard {
      server_state& state;
      session_entry& entry;
      ~leave_guard() {
        entry.unlink();
        entry.stream = nullptr;
        --state.active_;
        state.capacity_.notify_all();
      }
    } guard{*self, *entry};
    if (self->tls_) {
      tls_stream stream(std::move(socket), *self->tls_);
      entry->stream = &beast::get_lowest_layer(stream);
      if (self->stopped_) co_return;
      beast::get_lowest_layer(stream).expires_after(
          std::min<std::chrono::steady_clock::duration>(self->options_.idle_timeout, std::chrono::seconds(30)));
      auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;  // not TLS, untrusted by the client, timed out: nothing to answer
      co_await serve(self, stream);
    } else {
      beast::tcp_stream stream(std::move(socket));
      entry->stream = &stream;
      if (self->stopped_) co_return;
      co_await serve(self, stream);
    }
  }

  /// Read errors that end a connection silently (the peer left, timed out, or we are stopping).
  static bool quiet_read_error(const boost::system::error_code& ec) noexcept {
    return ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message || ec == asio::error::eof ||
           ec == asio::error::connection_reset || ec == asio::error::operation_aborted || ec == beast::error::timeout ||
           ec == asio::error::bad_descriptor || ec == asio::error::broken_pipe ||
           ec == asio::ssl::error::stream_truncated || ec == asio::error::not_connected;
  }

  template <class Stream>
  static asio::awaitable<void> serve(std::shared_ptr<server_state> self, Stream& stream) {
    auto& tcp = beast::get_lowest_layer(stream);
    beast::flat_buffer buffer;
    std::optional<bhttp::request_parser<bhttp::string_body>> parser;
    for (;;) {
      parser.emplace();
      parser->header_limit(max_request_header_bytes);
      parser->body_limit(self->options_.max_body_bytes);
      tcp.expires_after(self->options_.idle_timeout);
      auto [header_ec, header_bytes] =
          co_await bhttp::async_read_header(stream, buffer, *parser, asio::as_tuple(asio::use_awaitable));
      (void)header_bytes;
      if (header_ec) {
        co_await refuse_after_read_error(self, stream, buffer, header_ec);
        co_return;
      }
      if (!parser->is_done()) {
        const auto expect = parser->get()[bhttp::field::expect];
        if (::tinker::http::detail::ascii_iequals(std::string_view(expect.data(), expect.size()), "100-continue")) {
          static constexpr std::string_view go_on = "HTTP/1.1 100 Continue\r\n\r\n";
          auto [ec, n] = co_await asio::async_write(stream, asio::buffer(go_on.data(), go_on.size()),
                                                    asio::as_tuple(asio::use_awaitable));
          (void)n;
          if (ec) co_return;
        }
        auto [body_ec, body_bytes] =
            co_await bhttp::async_read(stream, buffer, *parser, asio::as_tuple(asio::use_awaitable));
        (void)body_bytes;
        if (body_ec) {
          co_await refuse_after_read_error(self, stream, buffer, body_ec);
          co_return;
        }
      }
      tcp.expires_never();
      http_request request = parser->release();
      const bool head_method = request.method() == bhttp::verb::head;
      const unsigned version = request.version() == 10 ? 10 : 11;

      std::optional<http_response> response = co_await self->inflate_request_body(request);
      if (!response) {
        std::string failure;
        try {
          response = co_await self->handler_(request);
          if (!response) co_return;  // the handler drops the connection (fault injection)
        } catch (const std::exception& e) {
          failure = e.what();
        } catch (...) {
          failure = "unknown exception";
        }
        if (self->stopped_) co_return;
        if (!failure.empty())
          response = json_error_response(bhttp::status::internal_server_error, "internal server error: " + failure,
                                         version, false);
      }
      if (self->stopped_) co_return;

      auto& res = *response;
      res.version(version);
      const auto connection_header = res[bhttp::field::connection];
      const bool keep_alive =
          request.keep_alive() && !::tinker::http::detail::header_has_token(
                                      std::string_view(connection_header.data(), connection_header.size()), "close");
      co_await self->maybe_compress(request, res);
      res.keep_alive(keep_alive);
      res.prepare_payload();
      tcp.expires_after(self->options_.idle_timeout);
      boost::system::error_code write_ec;
      if (head_method) {
        bhttp::response_serializer<bhttp::string_body> serializer{res};
        auto [ec, n] = co_await bhttp::async_write_header(stream, serializer, asio::as_tuple(asio::use_awaitable));
        (void)n;
        write_ec = ec;
      } else {
        auto [ec, n] = co_await bhttp::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
        (void)n;
        write_ec = ec;
      }
      if (write_ec) co_return;
      if (!keep_alive) {
        co_await linger_close(stream, 64 * 1024);
        co_return;
      }
    }
  }

  /// Answers a request that could not be read (if it deserves an answer), then closes.
  template <class Stream>
  static asio::awaitable<void> refuse_after_read_error(std::shared_ptr<server_state> self, Stream& stream,
                                                       beast::flat_buffer&, boost::system::error_code ec) {
    if (quiet_read_error(ec) || self->stopped_) co_return;
    http_response res;
    std::size_t drain = 64 * 1024;
    if (ec == bhttp::error::body_limit) {
      res = json_error_response(
          bhttp::status::payload_too_large,
          "request body exceeds the limit of " + std::to_string(self->options_.max_body_bytes) + " bytes", 11, true);
      drain = 16u << 20;  // let the client finish sending so it can read the 413
    } else if (ec == bhttp::error::header_limit) {
      res = json_error_response(bhttp::status::request_header_fields_too_large,
                                "request headers exceed " + std::to_string(max_request_header_bytes) + " bytes", 11,
                                true);
    } else {
      res = json_error_response(bhttp::status::bad_request, "malformed HTTP request: " + ec.message(), 11, true);
    }
    res.prepare_payload();
    beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(5));
    auto [write_ec, n] = co_await bhttp::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
    (void)n;
    if (!write_ec) co_await linger_close(stream, drain);
  }

  /// Closing a socket with unread input makes the kernel send a reset, which can destroy the reply
  /// we just wrote before the client reads it. So: stop sending, read and discard what the client
  /// still sends (bounded in bytes and time), then close.
  template <class Stream>
  static asio::awaitable<void> linger_close(Stream& stream, std::size_t max_drain) {
    auto& tcp = beast::get_lowest_layer(stream);
    boost::system::error_code ignored;
    tcp.socket().shutdown(asio::socket_base::shutdown_send, ignored);
    tcp.expires_after(std::chrono::seconds(5));
    std::array<char, 16 * 1024> scratch;
    for (std::size_t drained = 0; drained < max_drain;) {
      auto [ec, n] = co_await stream.async_read_some(asio::buffer(scratch), asio::as_tuple(asio::use_awaitable));
      if (ec) break;
      drained += n;
    }
    tcp.close();
  }

  static asio::awaitable<std::string> gunzip_body(std::string body, std::size_t limit) {
    co_return ::tinker::http::gzip_decompress(body, limit);
  }

  /// Content-Encoding of the request body: gzip is inflated here (large bodies on gzip_executor),
  /// others refused. nullopt = go on to the handler.
  asio::awaitable<std::optional<http_response>> inflate_request_body(http_request& request) const {
    auto it = request.find(bhttp::field::content_encoding);
    if (it == request.end()) co_return std::nullopt;
    std::string_view encoding(it->value().data(), it->value().size());
    while (!encoding.empty() && (encoding.back() == ' ' || encoding.back() == '\t')) encoding.remove_suffix(1);
    while (!encoding.empty() && (encoding.front() == ' ' || encoding.front() == '\t')) encoding.remove_prefix(1);
    const unsigned version = request.version() == 10 ? 10 : 11;
    if (encoding.empty() || ::tinker::http::detail::ascii_iequals(encoding, "identity")) {
      request.erase(bhttp::field::content_encoding);
      co_return std::nullopt;
    }
    if (!::tinker::http::detail::ascii_iequals(encoding, "gzip") &&
        !::tinker::http::detail::ascii_iequals(encoding, "x-gzip"))
      co_return json_error_response(
          bhttp::status::unsupported_media_type,
          "unsupported Content-Encoding '" + std::string(encoding) + "' (supported: gzip, identity)", version, false);
    std::optional<::tinker::http::gzip_error> failure;
    try {
      if (options_.gzip_executor && request.body().size() >= options_.offload_gzip_bytes)
        request.body() = co_await asio::co_spawn(*options_.gzip_executor,
                                                 gunzip_body(std::move(request.body()), options_.max_body_bytes),
                                                 asio::use_awaitable);
      else
        request.body() = ::tinker::http::gzip_decompress(request.body(), options_.max_body_bytes);
    } catch (const ::tinker::http::gzip_error& e) {
      failure = e;
    }
    if (failure) {
      if (failure->too_large())
        co_return json_error_response(bhttp::status::payload_too_large,
                                      "request body exceeds the limit of " + std::to_string(options_.max_body_bytes) +
                                          " bytes after gzip decompression",
                                      version, false);
      co_return json_error_response(bhttp::status::bad_request, std::string("request body: ") + failure->what(),
                                    version, false);
    }
    request.erase(bhttp::field::content_encoding);
    request.prepare_payload();
    co_return std::nullopt;
  }

  static asio::awaitable<std::string> gzip_body(std::string body) { co_return ::tinker::http::gzip_compress(body, 1); }

  asio::awaitable<void> maybe_compress(const http_request& request, http_response& res) const {
    if (!options_.gzip_responses || res.body().size() < options_.gzip_min_bytes) co_return;
    if (res.find(bhttp::field::content_encoding) != res.end()) co_return;
    const auto type = res[bhttp::field::content_type];
    if (is_precompressed_type(std::string_view(type.data(), type.size()))) co_return;
    // The representation depends on Accept-Encoding from here on, whatever this client sent.
    const auto vary = res[bhttp::field::vary];
    if (vary.empty())
      res.set(bhttp::field::vary, "Accept-Encoding");
    else if (!::tinker::http::detail::header_has_token(std::string_view(vary.data(), vary.size()), "accept-encoding"))
      res.set(bhttp::field::vary, std::string(vary) + ", Accept-Encoding");
    const auto accept = request[bhttp::field::accept_encoding];
    if (!accepts_gzip(std::string_view(accept.data(), accept.size()))) co_return;
    if (request.method() == bhttp::verb::head) co_return;
    // Level 1: the engine is CPU-bound, loopback is fast.
    if (options_.gzip_executor && res.body().size() >= options_.offload_gzip_bytes)
      res.body() =
          co_await asio::co_spawn(*options_.gzip_executor, gzip_body(std::move(res.body())), asio::use_awaitable);
    else
      res.body() = ::tinker::http::gzip_compress(res.body(), 1);
    res.set(bhttp::field::content_encoding, "gzip");
  }

  using session_list = boost::intrusive::list<session_entry, boost::intrusive::constant_time_size<false>>;

  asio::any_io_executor executor_;
  http_server_options options_;
  request_handler handler_;
  asio::ip::tcp::acceptor acceptor_;
  tinker::detail::async_event capacity_;  ///< wakes the accept loop when a connection closes below the cap
  std::shared_ptr<asio::ssl::context> tls_;
  session_list sessions_;
  std::size_t active_ = 0;
  std::uint64_t accepted_ = 0;
  std::uint16_t port_ = 0;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace detail

class http_server {
public:
  /// Throws tinker::invalid_argument for inconsistent options (one TLS file without the other).
  http_server(asio::any_io_executor ex, http_server_options options, request_handler handler)
      : state_(std::make_shared<detail::server_state>(std::move(ex), std::move(options), std::move(handler))) {}

  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;
  ~http_server() { state_->stop(); }

  /// Binds, listens and starts accepting. Throws tinker::tinker_error naming the address when the
  /// port cannot be bound, tinker::invalid_argument when the TLS files cannot be loaded.
  void start() { state_->start(); }
  /// The bound port (the real one when the options asked for 0); valid after start().
  std::uint16_t port() const noexcept { return state_->port(); }
  /// Stops accepting, closes every connection and cancels the handlers they await. Idempotent.
  void stop() { state_->stop(); }

  std::size_t active_connections() const noexcept { return state_->active_connections(); }
  std::uint64_t accepted_connections() const noexcept { return state_->accepted_connections(); }

private:
  std::shared_ptr<detail::server_state> state_;
};

}  // namespace tinker::local
