// Shared pieces of the HTTP tests: a gate that holds handlers until the test releases them, a
// yield-based wait for conditions (no sleeps), a routed test server, a raw-bytes client for
// garbage input, and spawning transport calls whose outcome the test inspects later.
#pragma once

#include "common/run_coro.hpp"

#include <tinker/detail/async_event.hpp>
#include <tinker/error.hpp>
#include <tinker/http/gzip.hpp>
#include <tinker/http/transport.hpp>
#include <tinker/local/http_server.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <doctest/doctest.h>

#include <chrono>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tinker::test {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using tinker::local::http_request;
using tinker::local::http_response;

/// Handlers that call wait() park until open(); counts arrivals so tests can wait for "N parked".
class gate {
public:
  explicit gate(asio::any_io_executor ex) : ex_(std::move(ex)) {}

  asio::awaitable<void> wait() {
    ++arrived_;
    if (open_) co_return;
    // Shares the event: a frame destroyed with the io_context may outlive the gate.
    const auto parked = parked_;
    try {
      co_await parked->wait();
    } catch (const boost::system::system_error& e) {
      if (e.code() != asio::error::operation_aborted) throw;
      ++cancelled_;  // the server cancelled us
    }
  }

  void open() {
    open_ = true;
    parked_->notify_all();
  }

  std::size_t arrived() const noexcept { return arrived_; }
  std::size_t parked() const noexcept { return parked_->size(); }
  std::size_t cancelled() const noexcept { return cancelled_; }

private:
  asio::any_io_executor ex_;
  std::shared_ptr<tinker::detail::async_event> parked_ = std::make_shared<tinker::detail::async_event>();
  std::size_t arrived_ = 0, cancelled_ = 0;
  bool open_ = false;
};

/// Yields to the event loop until `pred()` holds. Not a sleep: it re-checks after every turn of the
/// loop; the generous limit only turns a hang into a test failure.
inline asio::awaitable<void> wait_until(std::function<bool()> pred, const char* what) {
  const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > limit) FAIL("condition never became true: " << what);
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  }
}

/// The outcome of a transport call spawned in the background.
struct call_outcome {
  bool done = false;
  std::uint64_t order = 0;  ///< completion order among all spawned calls
  std::exception_ptr error;
  http::response response;

  bool aborted() const {
    if (!error) return false;
    try {
      std::rethrow_exception(error);
    } catch (const boost::system::system_error& e) {
      return e.code() == asio::error::operation_aborted;
    } catch (...) {
      return false;
    }
  }
  std::string error_text() const {
    if (!error) return {};
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      return e.what();
    }
  }
};

/// Starts `t.send(req)` as its own coroutine; its cancellation slot is `slot` when given.
inline std::shared_ptr<call_outcome> spawn_call(http::transport& t, http::request req,
                                                asio::cancellation_slot slot = {}) {
  auto out = std::make_shared<call_outcome>();
  auto done = [out](std::exception_ptr e, http::response r) {
    static std::uint64_t completions = 0;
    out->order = ++completions;
    out->error = e;
    if (!e) out->response = std::move(r);
    out->done = true;
  };
  asio::co_spawn(t.get_executor(), t.send(std::move(req)), asio::bind_cancellation_slot(slot, std::move(done)));
  return out;
}

inline http::request make_request(std::string target, http::lane lane = http::lane::train, std::string body = {}) {
  http::request r;
  r.target = std::move(target);
  r.lane = lane;
  r.body = std::move(body);
  r.headers = {{"X-API-Key", "tml-SECRET-do-not-leak"}, {"Content-Type", "application/json"}};
  return r;
}

inline constexpr const char* secret_key = "tml-SECRET-do-not-leak";

inline std::string header_of(const bhttp::fields& h, bhttp::field f) {
  auto it = h.find(f);
  return it == h.end() ? std::string() : std::string(it->value());
}
inline std::string header_of(const bhttp::fields& h, const char* name) {
  auto it = h.find(name);
  return it == h.end() ? std::string() : std::string(it->value());
}

inline std::optional<std::size_t> query_number(const http_request& req, const std::string& key) {
  std::string target(req.target());
  const auto pos = target.find(key + "=");
  if (pos == std::string::npos) return std::nullopt;
  return std::stoull(target.substr(pos + key.size() + 1));
}

/// A server with a few routes used throughout the tests:
///   /echo      body back; X-Seen-* headers report what the handler saw
///   /hold      parks on `hold` until the test opens it
///   /big?n=N   N bytes of text (compressible)
///   /sleep?ms= awaits a timer
///   /drop      no answer: the connection is dropped
///   /drop-once drops the first time, answers afterwards
///   /close     answers with Connection: close
///   /status?code=N  that status with a JSON body
///   /throw     the handler throws
struct test_server {
  asio::io_context& io;
  gate hold;
  std::size_t drop_once_count = 0;
  std::size_t requests = 0;
  local::http_server server;

  explicit test_server(asio::io_context& ctx, local::http_server_options options = {})
      : io(ctx),
        hold(ctx.get_executor()),
        server(ctx.get_executor(), std::move(options), [this](http_request& req) { return handle(req); }) {
    server.start();
  }

  /// Stops the server and lets its sessions (and parked handlers) finish while this object and the
  /// io_context are both alive.
  ~test_server() {
    server.stop();
    hold.open();
    io.restart();
    const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (server.active_connections() > 0 && std::chrono::steady_clock::now() < limit)
      io.run_one_for(std::chrono::milliseconds(10));
  }

  std::string base_url(const char* scheme = "http", const char* host = "127.0.0.1") const {
    return std::string(scheme) + "://" + host + ":" + std::to_string(server.port());
  }

  asio::awaitable<std::optional<http_response>> handle(http_request& req) {
    ++requests;
    std::string target(req.target());
    std::string path = target.substr(0, target.find('?'));
    http_response res{bhttp::status::ok, req.version()};
    res.set(bhttp::field::content_type, "text/plain");
    if (path == "/echo") {
      res.body() = req.body();
      res.set("X-Seen-Content-Encoding", std::string(req[bhttp::field::content_encoding]));
      res.set("X-Seen-Accept-Encoding", std::string(req[bhttp::field::accept_encoding]));
      res.set("X-Seen-User-Agent", std::string(req[bhttp::field::user_agent]));
      res.set("X-Seen-Host", std::string(req[bhttp::field::host]));
      res.set("X-Seen-Content-Length", std::string(req[bhttp::field::content_length]));
      res.set("X-Seen-Target", target);
    } else if (path == "/hold") {
      co_await hold.wait();
      res.body() = "released";
    } else if (path == "/big") {
      const auto n = query_number(req, "n").value_or(100000);
      res.body().reserve(n);
      while (res.body().size() < n) res.body() += "tinker-cpp says hello to the gzip encoder; ";
      res.body().resize(n);
    } else if (path == "/sleep") {
      asio::steady_timer t(io, std::chrono::milliseconds(query_number(req, "ms").value_or(1000)));
      co_await t.async_wait(asio::use_awaitable);
      res.body() = "slept";
    } else if (path == "/drop") {
      co_return std::nullopt;
    } else if (path == "/drop-once") {
      if (drop_once_count++ == 0) co_return std::nullopt;
      res.body() = "second time lucky";
    } else if (path == "/close") {
      res.set(bhttp::field::connection, "close");
      res.body() = "bye";
    } else if (path == "/status") {
      res.result(static_cast<unsigned>(query_number(req, "code").value_or(500)));
      res.set(bhttp::field::content_type, "application/json");
      res.body() = R"({"detail":"as requested"})";
    } else if (path == "/throw") {
      throw std::runtime_error("handler exploded");
    } else {
      res.result(bhttp::status::not_found);
      res.body() = "no route";
    }
    co_return res;
  }
};

/// A bare server that answers every request with fixed bytes, for replies the real server never
/// sends (HTTP/1.0, no Content-Length) and for closing a connection right after a keep-alive reply
/// (what a server-side idle timeout looks like).
struct scripted_server {
  asio::ip::tcp::acceptor acceptor;
  std::string reply;
  bool close_after_reply = false;
  int accepted = 0, requests = 0, closed = 0;

  scripted_server(asio::io_context& io, std::string raw_reply, bool close_after)
      : acceptor(io, {asio::ip::make_address("127.0.0.1"), 0}),
        reply(std::move(raw_reply)),
        close_after_reply(close_after) {
    asio::co_spawn(io, accept_loop(), asio::detached);
  }
  ~scripted_server() {
    boost::system::error_code ignored;
    acceptor.close(ignored);
  }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()); }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      ++accepted;
      asio::co_spawn(acceptor.get_executor(), serve(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> serve(asio::ip::tcp::socket socket) {
    boost::beast::tcp_stream stream(std::move(socket));
    boost::beast::flat_buffer buffer;
    for (;;) {
      bhttp::request<bhttp::string_body> req;
      auto [ec, n] = co_await bhttp::async_read(stream, buffer, req, asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      ++requests;
      auto [wec, wn] = co_await asio::async_write(stream, asio::buffer(reply), asio::as_tuple(asio::use_awaitable));
      if (wec) co_return;
      if (close_after_reply) {
        boost::system::error_code ignored;
        stream.socket().shutdown(asio::socket_base::shutdown_both, ignored);
        stream.close();
        ++closed;
        co_return;
      }
    }
  }
};

/// Writes `bytes` on a fresh connection and returns everything the server sends until it closes.
inline asio::awaitable<std::string> raw_exchange(std::uint16_t port, std::string bytes, bool half_close = false) {
  auto ex = co_await asio::this_coro::executor;
  boost::beast::tcp_stream stream(ex);
  stream.expires_after(std::chrono::seconds(30));  // safety net only
  co_await stream.async_connect(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                                asio::use_awaitable);
  co_await asio::async_write(stream, asio::buffer(bytes), asio::use_awaitable);
  if (half_close) stream.socket().shutdown(asio::socket_base::shutdown_send);
  std::string received;
  char buf[4096];
  for (;;) {
    auto [ec, n] = co_await stream.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
    received.append(buf, n);
    if (ec) break;
  }
  co_return received;
}

}  // namespace tinker::test
