// The client transport against the local HTTP server over real loopback sockets (and TLS with a
// CA and certificates made at test time). No sleeps for synchronisation: tests wait for
// conditions (handlers parked, requests queued) by yielding to the event loop.
#include "common/test_certs.hpp"
#include "http/http_test_support.hpp"

#include <tinker/http/transport.hpp>

#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

using namespace tinker;
using namespace tinker::test;
using http::lane;

namespace {

http::transport make_transport(asio::io_context& io, const std::string& base, http::transport_options o = {}) {
  return http::transport(io.get_executor(), http::url::parse(base), std::move(o));
}

// By index, so that adding a lane does not silently change what the tests use.
http::transport_options caps(std::size_t train, std::size_t poll = 2048) {
  http::transport_options o;
  o.max_connections[static_cast<std::size_t>(lane::train)] = train;
  o.max_connections[static_cast<std::size_t>(lane::poll)] = poll;
  return o;
}

/// Accepts connections and never reads from them: a request body larger than the socket buffers
/// stalls the writer.
struct silent_server {
  asio::ip::tcp::acceptor acceptor;
  std::vector<asio::ip::tcp::socket> held;

  explicit silent_server(asio::io_context& io) : acceptor(io, {asio::ip::make_address("127.0.0.1"), 0}) {
    asio::co_spawn(io, accept_loop(), asio::detached);
  }
  ~silent_server() {
    boost::system::error_code ignored;
    acceptor.close(ignored);
  }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()); }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      held.push_back(std::move(socket));
    }
  }
};

/// Reads a request, then sends a fixed reply a few bytes at a time with a pause after each piece:
/// a server that is slow but never silent for long.
struct trickle_server {
  asio::ip::tcp::acceptor acceptor;

  trickle_server(asio::io_context& io, std::string reply, std::size_t piece, std::chrono::milliseconds pause)
      : acceptor(io, {asio::ip::make_address("127.0.0.1"), 0}) {
    asio::co_spawn(io, accept_loop(std::move(reply), piece, pause), asio::detached);
  }
  ~trickle_server() {
    boost::system::error_code ignored;
    acceptor.close(ignored);
  }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()); }

  // Everything by value: the coroutines must not reach into the server object.
  asio::awaitable<void> accept_loop(std::string reply, std::size_t piece, std::chrono::milliseconds pause) {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      asio::co_spawn(acceptor.get_executor(), serve(std::move(socket), reply, piece, pause), asio::detached);
    }
  }

  static asio::awaitable<void> serve(asio::ip::tcp::socket socket, std::string reply, std::size_t piece,
                                     std::chrono::milliseconds pause) {
    boost::beast::tcp_stream stream(std::move(socket));
    boost::beast::flat_buffer buffer;
    bhttp::request<bhttp::string_body> req;
    auto [ec, n] = co_await bhttp::async_read(stream, buffer, req, asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    asio::steady_timer timer(stream.get_executor());
    for (std::size_t at = 0; at < reply.size(); at += piece) {
      const auto part = asio::buffer(reply) + at;
      auto [wec, wn] =
          co_await asio::async_write(stream, asio::buffer(part, piece), asio::as_tuple(asio::use_awaitable));
      if (wec) co_return;
      timer.expires_after(pause);
      auto [tec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      if (tec) co_return;
    }
  }
};

template <class E>
std::string expect_throw(asio::io_context& io, http::transport& t, http::request req) {
  std::string what;
  run_coro(io, [&]() -> asio::awaitable<void> {
    try {
      (void)co_await t.send(std::move(req));
      FAIL("the call did not throw");
    } catch (const E& e) {
      what = e.what();
    }
  }());
  return what;
}

}  // namespace

TEST_CASE("transport: 100 sequential calls reuse one keep-alive connection") {
  asio::io_context io;
  test_server srv(io);
  auto t = make_transport(io, srv.base_url());
  run_coro(io, [&]() -> asio::awaitable<void> {
    for (int i = 0; i < 100; ++i) {
      auto res = co_await t.send(make_request("/echo", lane::train, "call " + std::to_string(i)));
      CHECK(res.status == 200);
      CHECK(res.body == "call " + std::to_string(i));
    }
  }());
  CHECK(srv.server.accepted_connections() == 1);
  CHECK(t.connections_opened() == 1);
  CHECK(t.open_connections(lane::train) == 1);
  CHECK(t.idle_connections(lane::train) == 1);
  CHECK(t.stale_retries() == 0);
}

TEST_CASE("transport: headers it adds, target prefix, and what it never leaks") {
  asio::io_context io;
  test_server srv(io);
  SUBCASE("defaults: Host, User-Agent, Accept-Encoding, Content-Length") {
    auto t = make_transport(io, srv.base_url());
    auto res = run_coro(io, t.send(make_request("/echo?x=1", lane::rest, "12345")));
    CHECK(header_of(res.headers, "X-Seen-Host") == "127.0.0.1:" + std::to_string(srv.server.port()));
    CHECK(header_of(res.headers, "X-Seen-User-Agent") == std::string("tinker-cpp/") + library_version);
    CHECK(header_of(res.headers, "X-Seen-Accept-Encoding") == "gzip");
    CHECK(header_of(res.headers, "X-Seen-Content-Length") == "5");
    CHECK(header_of(res.headers, "X-Seen-Target") == "/echo?x=1");
  }
  SUBCASE("a base URL path prefix is kept; a given User-Agent wins; no gzip when disabled") {
    http::transport_options o;
    o.accept_gzip = false;
    auto t = make_transport(io, srv.base_url() + "/prefix/", o);
    auto req = make_request("/x", lane::rest);
    req.headers.emplace_back("User-Agent", "custom/1");
    auto res = run_coro(io, t.send(std::move(req)));
    CHECK(res.status == 404);  // the test server has no /prefix/x route: proves the prefix was sent
    auto echo = make_transport(io, srv.base_url());
    auto r2 = run_coro(io, echo.send(make_request("/echo", lane::rest)));
    CHECK(header_of(r2.headers, "X-Seen-Content-Length") == "0");  // POST without body says so
  }
  SUBCASE("bad targets and headers are user errors, raised before anything is sent") {
    auto t = make_transport(io, srv.base_url());
    auto bad_header = make_request("/echo");
    bad_header.headers.emplace_back("X-Injected", "a\r\nEvil: 1");
    auto what = expect_throw<tinker::invalid_argument>(io, t, std::move(bad_header));
    CHECK(what.find("X-Injected") != std::string::npos);
    CHECK(what.find("Evil") == std::string::npos);
    expect_throw<tinker::invalid_argument>(io, t, make_request("no-slash"));
    expect_throw<tinker::invalid_argument>(io, t, make_request("/has space"));
    auto host = make_request("/echo");
    host.headers.emplace_back("Host", "elsewhere");
    expect_throw<tinker::invalid_argument>(io, t, std::move(host));
    CHECK(srv.requests == 0);
  }
  SUBCASE("non-2xx statuses are returned, not thrown") {
    auto t = make_transport(io, srv.base_url());
    auto res = run_coro(io, t.send(make_request("/status?code=503")));
    CHECK(res.status == 503);
    CHECK(res.body == R"({"detail":"as requested"})");
    auto thrown = run_coro(io, t.send(make_request("/throw")));
    CHECK(thrown.status == 500);
    CHECK(thrown.body.find("\"detail\"") != std::string::npos);
    CHECK(thrown.body.find("handler exploded") != std::string::npos);
  }
  SUBCASE("HEAD: the reply has a length but no body") {
    auto t = make_transport(io, srv.base_url());
    auto req = make_request("/big?n=5000");
    req.method = bhttp::verb::head;
    auto res = run_coro(io, t.send(std::move(req)));
    CHECK(res.status == 200);
    CHECK(res.body.empty());
    auto after = run_coro(io, t.send(make_request("/echo", lane::train, "still in sync")));
    CHECK(after.body == "still in sync");
    CHECK(srv.server.accepted_connections() == 1);
  }
}

TEST_CASE("transport: a lane at its cap queues the rest, they reuse the connections") {
  asio::io_context io;
  test_server srv(io);
  constexpr std::size_t cap = 4, extra = 6;
  auto t = make_transport(io, srv.base_url(), caps(cap));
  std::vector<std::shared_ptr<call_outcome>> calls;
  for (std::size_t i = 0; i < cap + extra; ++i) calls.push_back(spawn_call(t, make_request("/hold")));
  run_coro(io, [&]() -> asio::awaitable<void> {
    co_await wait_until([&] { return srv.hold.parked() == cap && t.waiting_requests(lane::train) == extra; },
                        "cap handlers parked, the rest queued");
    CHECK(t.open_connections(lane::train) == cap);
    CHECK(srv.server.active_connections() == cap);
    CHECK(srv.server.accepted_connections() == cap);
    srv.hold.open();
    co_await wait_until([&] { return std::all_of(calls.begin(), calls.end(), [](auto& c) { return c->done; }); },
                        "all calls done");
  }());
  for (auto& c : calls) {
    REQUIRE_MESSAGE(!c->error, c->error_text());
    CHECK(c->response.status == 200);
    CHECK(c->response.body == "released");
  }
  CHECK(srv.server.accepted_connections() == cap);  // the queued calls took over the same connections
  CHECK(t.connections_opened() == cap);
  CHECK(t.waiting_requests(lane::train) == 0);
  CHECK(t.idle_connections(lane::train) == cap);
}

TEST_CASE("transport: lanes are independent: a full poll lane does not block a train call") {
  asio::io_context io;
  test_server srv(io);
  auto t = make_transport(io, srv.base_url(), caps(4, 2));
  std::vector<std::shared_ptr<call_outcome>> polls;
  for (int i = 0; i < 3; ++i) polls.push_back(spawn_call(t, make_request("/hold", lane::poll)));
  run_coro(io, [&]() -> asio::awaitable<void> {
    co_await wait_until([&] { return srv.hold.parked() == 2 && t.waiting_requests(lane::poll) == 1; },
                        "poll lane full");
    auto res = co_await t.send(make_request("/echo", lane::train, "not blocked"));
    CHECK(res.body == "not blocked");
    CHECK(t.waiting_requests(lane::poll) == 1);  // still queued: the train call went around it
    srv.hold.open();
    co_await wait_until([&] { return polls[0]->done && polls[1]->done && polls[2]->done; }, "polls done");
  }());
  for (auto& p : polls) CHECK(p->response.status == 200);
  CHECK(t.open_connections(lane::poll) == 2);
  CHECK(t.open_connections(lane::train) == 1);
}

TEST_CASE("transport: a dead keep-alive connection is replaced and the request sent again, once") {
  asio::io_context io;
  SUBCASE("the server closed the pooled connection while it was idle") {
    // Answers keep-alive, then closes: exactly what an idle timeout on the server side looks like.
    scripted_server raw(io, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nanswer", true);
    auto t = make_transport(io, raw.base_url());
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto first = co_await t.send(make_request("/a"));
      CHECK(first.body == "answer");
      co_await wait_until([&] { return raw.closed == 1; }, "server closed the connection");
      CHECK(t.idle_connections(lane::train) == 1);  // the transport does not know yet
      auto second = co_await t.send(make_request("/b"));
      CHECK(second.body == "answer");
    }());
    CHECK(raw.accepted == 2);
    CHECK(raw.requests == 2);
    CHECK(t.open_connections(lane::train) == 1);
  }
  SUBCASE("the server drops the reused connection without answering: retried on a fresh one") {
    test_server srv(io);
    auto t = make_transport(io, srv.base_url());
    run_coro(io, [&]() -> asio::awaitable<void> {
      (void)co_await t.send(make_request("/echo"));
      auto res = co_await t.send(make_request("/drop-once"));
      CHECK(res.body == "second time lucky");
    }());
    CHECK(t.stale_retries() == 1);
    CHECK(srv.server.accepted_connections() == 2);
    CHECK(t.connections_opened() == 2);
  }
  SUBCASE("a fresh connection that gets no answer is not retried") {
    test_server srv(io);
    auto t = make_transport(io, srv.base_url());
    auto what = expect_throw<api_connection_error>(io, t, make_request("/drop"));
    CHECK(what.find("reading the response") != std::string::npos);
    CHECK(what.find("POST http://127.0.0.1:") != std::string::npos);
    CHECK(srv.requests == 1);
    CHECK(t.stale_retries() == 0);
    CHECK(t.open_connections(lane::train) == 0);
  }
}

TEST_CASE("transport: Connection: close and HTTP/1.0 answers are not reused") {
  asio::io_context io;
  SUBCASE("Connection: close, from the server or the caller") {
    test_server srv(io);
    auto t = make_transport(io, srv.base_url());
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto a = co_await t.send(make_request("/close"));
      CHECK(a.body == "bye");
      CHECK(t.open_connections(lane::train) == 0);
      auto req = make_request("/echo");
      req.headers.emplace_back("Connection", "close");  // the caller's own wish is honoured too
      (void)co_await t.send(std::move(req));
      CHECK(t.open_connections(lane::train) == 0);
      (void)co_await t.send(make_request("/echo"));
    }());
    CHECK(srv.server.accepted_connections() == 3);
    CHECK(t.stale_retries() == 0);
  }
  SUBCASE("an HTTP/1.0 reply (no keep-alive) leaves the connection unused even though the server keeps it open") {
    scripted_server raw(io, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false);
    auto t = make_transport(io, raw.base_url());
    for (int i = 0; i < 3; ++i) CHECK(run_coro(io, t.send(make_request("/x"))).body == "ok");
    CHECK(raw.accepted == 3);
    CHECK(t.open_connections(lane::train) == 0);
  }
  SUBCASE("a reply delimited by the end of the connection (no Content-Length)") {
    scripted_server raw(io, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", true);
    auto t = make_transport(io, raw.base_url());
    CHECK(run_coro(io, t.send(make_request("/x"))).body == "until the end");
    CHECK(t.open_connections(lane::train) == 0);
  }
}

TEST_CASE("transport: queued calls get connections first come, first served") {
  asio::io_context io;
  test_server srv(io);
  auto t = make_transport(io, srv.base_url(), caps(1));
  auto holder = spawn_call(t, make_request("/hold"));
  std::vector<std::shared_ptr<call_outcome>> queued;
  run_coro(io, [&]() -> asio::awaitable<void> {
    co_await wait_until([&] { return srv.hold.parked() == 1; }, "holder parked");
    for (int i = 0; i < 8; ++i) {
      queued.push_back(spawn_call(t, make_request("/echo", lane::train, std::to_string(i))));
      co_await wait_until([&] { return t.waiting_requests(lane::train) == static_cast<std::size_t>(i + 1); },
                          "queued in order");
    }
    srv.hold.open();
    co_await wait_until([&] { return std::all_of(queued.begin(), queued.end(), [](auto& c) { return c->done; }); },
                        "all queued calls done");
  }());
  for (int i = 0; i < 8; ++i) {
    CHECK(queued[i]->response.body == std::to_string(i));
    if (i > 0) CHECK(queued[i]->order > queued[i - 1]->order);
  }
  CHECK(srv.server.accepted_connections() == 1);
}

TEST_CASE("transport + server: gzip in both directions") {
  asio::io_context io;
  test_server srv(io);
  SUBCASE("replies are gzip on the wire and inflated for the caller") {
    auto t = make_transport(io, srv.base_url());
    auto res = run_coro(io, t.send(make_request("/big?n=100000")));
    CHECK(header_of(res.headers, bhttp::field::content_encoding) == "gzip");
    CHECK(header_of(res.headers, bhttp::field::vary).find("Accept-Encoding") != std::string::npos);
    const auto wire_length = std::stoull(header_of(res.headers, bhttp::field::content_length));
    CHECK(wire_length < 10000);  // what travelled was compressed
    REQUIRE(res.body.size() == 100000);
    CHECK(res.body.substr(0, 9) == "tinker-cp");
  }
  SUBCASE("no gzip unless asked, nor for small bodies") {
    http::transport_options o;
    o.accept_gzip = false;
    auto plain = make_transport(io, srv.base_url(), o);
    auto res = run_coro(io, plain.send(make_request("/big?n=100000")));
    CHECK(header_of(res.headers, bhttp::field::content_encoding).empty());
    CHECK(header_of(res.headers, bhttp::field::content_length) == "100000");
    auto t = make_transport(io, srv.base_url());
    auto small = run_coro(io, t.send(make_request("/big?n=1000")));
    CHECK(header_of(small.headers, bhttp::field::content_encoding).empty());
    CHECK(small.body.size() == 1000);
  }
  SUBCASE("gzip request bodies reach the handler inflated") {
    auto t = make_transport(io, srv.base_url());
    std::string text;
    for (int i = 0; i < 2000; ++i) text += "{\"token\":" + std::to_string(i) + "},";
    auto req = make_request("/echo", lane::train, http::gzip_compress(text));
    const auto wire_size = req.body.size();
    CHECK(wire_size < text.size() / 3);
    req.headers.emplace_back("Content-Encoding", "gzip");
    auto res = run_coro(io, t.send(std::move(req)));
    CHECK(res.status == 200);
    CHECK(res.body == text);
    CHECK(header_of(res.headers, "X-Seen-Content-Encoding").empty());  // removed after inflating
    CHECK(header_of(res.headers, "X-Seen-Content-Length") == std::to_string(text.size()));
  }
  SUBCASE("corrupt gzip -> 400, unknown encoding -> 415, both with JSON bodies") {
    auto t = make_transport(io, srv.base_url());
    auto bad = make_request("/echo", lane::train, "this is not gzip at all");
    bad.headers.emplace_back("Content-Encoding", "gzip");
    auto res = run_coro(io, t.send(std::move(bad)));
    CHECK(res.status == 400);
    CHECK(res.body.find("\"detail\"") != std::string::npos);
    CHECK(res.body.find("gzip") != std::string::npos);
    auto br = make_request("/echo", lane::train, "x");
    br.headers.emplace_back("Content-Encoding", "br");
    auto r415 = run_coro(io, t.send(std::move(br)));
    CHECK(r415.status == 415);
    CHECK(r415.body.find("br") != std::string::npos);
    CHECK(srv.requests == 0);                       // refused before the handler
    CHECK(srv.server.accepted_connections() == 1);  // the requests were read whole: connection kept
  }
}

TEST_CASE("server: request body limits, before and after inflating") {
  asio::io_context io;
  local::http_server_options so;
  so.max_body_bytes = 4096;
  test_server srv(io, so);
  auto t = make_transport(io, srv.base_url());
  SUBCASE("a body over the limit gets 413; the next call works") {
    auto res = run_coro(io, t.send(make_request("/echo", lane::train, std::string(100000, 'x'))));
    CHECK(res.status == 413);
    CHECK(res.body.find("\"detail\"") != std::string::npos);
    CHECK(res.body.find("4096") != std::string::npos);
    auto ok = run_coro(io, t.send(make_request("/echo", lane::train, "fits")));
    CHECK(ok.body == "fits");
  }
  SUBCASE("a gzip bomb gets 413") {
    auto bomb = make_request("/echo", lane::train, http::gzip_compress(std::string(1 << 20, '\0'), 9));
    CHECK(bomb.body.size() < 4096);
    bomb.headers.emplace_back("Content-Encoding", "gzip");
    auto res = run_coro(io, t.send(std::move(bomb)));
    CHECK(res.status == 413);
    CHECK(res.body.find("decompression") != std::string::npos);
  }
  CHECK(srv.requests <= 1);
}

TEST_CASE("server: large gzip request bodies are inflated on the gzip executor, with the same refusals") {
  asio::io_context io;
  asio::thread_pool pool(1);
  local::http_server_options so;
  so.max_body_bytes = 1 << 20;
  so.gzip_executor = pool.get_executor();
  so.offload_gzip_bytes = 256;  // every body below is at least this big once compressed
  test_server srv(io, so);
  auto t = make_transport(io, srv.base_url());
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "{\"token\":" + std::to_string(i * 7919 % 100003) + "},";
  auto req = make_request("/echo", lane::train, http::gzip_compress(text));
  REQUIRE(req.body.size() >= so.offload_gzip_bytes);
  req.headers.emplace_back("Content-Encoding", "gzip");
  auto res = run_coro(io, t.send(std::move(req)));
  CHECK(res.status == 200);
  CHECK(res.body == text);
  CHECK(header_of(res.headers, "X-Seen-Content-Length") == std::to_string(text.size()));

  auto corrupt = make_request("/echo", lane::train, std::string(1000, 'x'));
  corrupt.headers.emplace_back("Content-Encoding", "gzip");
  auto r400 = run_coro(io, t.send(std::move(corrupt)));
  CHECK(r400.status == 400);
  CHECK(r400.body.find("gzip") != std::string::npos);

  std::string noise(300000, '\0');
  for (std::size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<char>((i * 2654435761u) >> 13);
  auto bomb = make_request("/echo", lane::train, http::gzip_compress(noise + std::string(2 << 20, '\0')));
  REQUIRE(bomb.body.size() >= so.offload_gzip_bytes);
  bomb.headers.emplace_back("Content-Encoding", "gzip");
  auto r413 = run_coro(io, t.send(std::move(bomb)));
  CHECK(r413.status == 413);
  CHECK(r413.body.find("decompression") != std::string::npos);
  CHECK(srv.requests == 1);  // only the good body reached the handler
  CHECK(srv.server.accepted_connections() == 1);
}

TEST_CASE("transport: response body limit, as received and after inflating") {
  asio::io_context io;
  test_server srv(io);
  http::transport_options o;
  o.max_response_body = 1000;
  SUBCASE("plain") {
    o.accept_gzip = false;
    auto t = make_transport(io, srv.base_url(), o);
    auto what = expect_throw<api_response_validation_error>(io, t, make_request("/big?n=5000"));
    CHECK(what.find("max_response_body") != std::string::npos);
    auto ok = run_coro(io, t.send(make_request("/big?n=900")));
    CHECK(ok.body.size() == 900);
  }
  SUBCASE("gzip: small on the wire, too big inflated") {
    auto t = make_transport(io, srv.base_url(), o);
    auto what = expect_throw<api_response_validation_error>(io, t, make_request("/big?n=50000"));
    CHECK(what.find("exceeds the limit of 1000") != std::string::npos);
    CHECK(t.open_connections(lane::train) == 1);  // the reply was read completely: connection kept
  }
}

TEST_CASE("transport: connection refused -> api_connection_error naming the phase and the address") {
  asio::io_context io;
  std::uint16_t port;
  {
    asio::ip::tcp::acceptor probe(io, {asio::ip::make_address("127.0.0.1"), 0});
    port = probe.local_endpoint().port();
  }  // closed again: nothing listens there now
  auto t = make_transport(io, "http://127.0.0.1:" + std::to_string(port));
  std::string what;
  run_coro(io, [&]() -> asio::awaitable<void> {
    try {
      (void)co_await t.send(make_request("/api/v1/create_session"));
      FAIL("connected to a closed port");
    } catch (const api_timeout_error&) {
      FAIL("a refusal is not a timeout");
    } catch (const api_connection_error& e) {
      what = e.what();
    }
  }());
  CHECK(what.find("connecting") != std::string::npos);
  CHECK(what.find("127.0.0.1:" + std::to_string(port)) != std::string::npos);
  CHECK(what.find("POST") != std::string::npos);
  CHECK(what.find("/api/v1/create_session") != std::string::npos);
  CHECK(what.find(secret_key) == std::string::npos);
  CHECK(t.open_connections(lane::train) == 0);
}

TEST_CASE("transport: a reply slower than the deadline -> api_timeout_error, the connection is closed") {
  asio::io_context io;
  test_server srv(io);
  auto t = make_transport(io, srv.base_url());
  auto req = make_request("/sleep?ms=3600000");
  req.timeout = std::chrono::milliseconds(200);
  auto what = expect_throw<api_timeout_error>(io, t, std::move(req));
  CHECK(what.find("timed out while reading the response") != std::string::npos);
  CHECK(what.find("request timeout 200 ms") != std::string::npos);
  CHECK(what.find(secret_key) == std::string::npos);
  CHECK(t.open_connections(lane::train) == 0);
  auto ok = run_coro(io, t.send(make_request("/echo", lane::train, "later")));
  CHECK(ok.body == "later");
  srv.server.stop();  // cancels the sleeping handler
}

TEST_CASE("transport: read idle limit: a server that reads the request and never answers") {
  asio::io_context io;
  test_server srv(io);
  http::transport_options o;
  o.read_timeout = std::chrono::milliseconds(200);
  o.request_timeout = std::chrono::seconds(60);
  SUBCASE("the read timeout fires long before the request deadline, naming itself") {
    auto t = make_transport(io, srv.base_url(), o);
    auto what = expect_throw<api_timeout_error>(io, t, make_request("/hold"));
    CHECK(what.find("timed out while reading the response (read timeout 200 ms)") != std::string::npos);
    CHECK(what.find("POST http://127.0.0.1:") != std::string::npos);
    CHECK(what.find(secret_key) == std::string::npos);
    CHECK(srv.hold.arrived() == 1);  // the request was sent whole: it is the reply that never came
    CHECK(t.open_connections(lane::train) == 0);
    auto ok = run_coro(io, t.send(make_request("/echo", lane::train, "still usable")));
    CHECK(ok.body == "still usable");
  }
  SUBCASE("a deadline shorter than the idle limit is what fires") {
    o.read_timeout = std::chrono::seconds(60);
    auto t = make_transport(io, srv.base_url(), o);
    auto req = make_request("/hold");
    req.timeout = std::chrono::milliseconds(200);
    auto what = expect_throw<api_timeout_error>(io, t, std::move(req));
    CHECK(what.find("timed out while reading the response (request timeout 200 ms)") != std::string::npos);
  }
}

TEST_CASE("transport: read idle limit: progress re-arms it, the request deadline still bounds the whole") {
  asio::io_context io;
  // ~130 bytes, two every 25 ms: over 1.5 s in all, the headers alone over a second, never more
  // than 25 ms without a byte.
  const std::string body = "slow but steady";
  const std::string reply = "HTTP/1.1 200 OK\r\nX-Padding: " + std::string(60, 'p') +
                            "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  trickle_server srv(io, reply, 2, std::chrono::milliseconds(25));
  http::transport_options o;
  o.read_timeout = std::chrono::milliseconds(1000);
  SUBCASE("no gap reaches the idle limit: the reply arrives") {
    o.request_timeout = std::chrono::seconds(60);
    auto t = make_transport(io, srv.base_url(), o);
    auto res = run_coro(io, t.send(make_request("/slow")));
    CHECK(res.status == 200);
    CHECK(res.body == body);
    CHECK(header_of(res.headers, "X-Padding").size() == 60);
  }
  SUBCASE("the whole-request deadline is not extended by progress") {
    o.request_timeout = std::chrono::milliseconds(500);
    auto t = make_transport(io, srv.base_url(), o);
    auto what = expect_throw<api_timeout_error>(io, t, make_request("/slow"));
    CHECK(what.find("timed out while reading the response (request timeout 500 ms)") != std::string::npos);
  }
}

TEST_CASE("transport: write idle limit: a server that never reads stalls a large body") {
  asio::io_context io;
  silent_server srv(io);
  http::transport_options o;
  o.write_timeout = std::chrono::milliseconds(200);
  o.request_timeout = std::chrono::seconds(60);
  auto t = make_transport(io, srv.base_url(), o);
  // Far more than loopback socket buffers hold on both ends together.
  auto what = expect_throw<api_timeout_error>(io, t, make_request("/upload", lane::train, std::string(64u << 20, 'x')));
  CHECK(what.find("timed out while writing the request (write timeout 200 ms)") != std::string::npos);
  CHECK(what.find("/upload") != std::string::npos);
  CHECK(t.open_connections(lane::train) == 0);
  CHECK(srv.held.size() == 1);
}

TEST_CASE("transport: DNS lookups") {
  asio::io_context io;
  SUBCASE("a name that does not resolve fails as a connection error naming the phase") {
    auto t = make_transport(io, "http://no-such-host.invalid:8080");
    // A resolver that answers NXDOMAIN gives a connection error; one that never answers gives its
    // subclass api_timeout_error after connect_timeout. Either names the phase.
    auto what = expect_throw<api_connection_error>(io, t, make_request("/api/v1/healthz"));
    CHECK(what.find("resolving the host name") != std::string::npos);
    CHECK(what.find("no-such-host.invalid") != std::string::npos);
    CHECK(t.open_connections(lane::train) == 0);
    CHECK(t.resolve_waiters() == 0);
  }
  SUBCASE("cancelling one of two connects sharing a lookup leaves the other to finish") {
    test_server srv(io);
    for (int cancelled_one = 0; cancelled_one < 2; ++cancelled_one) {
      CAPTURE(cancelled_one);  // 0: the call that started the lookup, 1: the one that joined it
      auto t = make_transport(io, srv.base_url("http", "localhost"));
      asio::cancellation_signal cancel;
      std::shared_ptr<call_outcome> calls[2];
      run_coro(io, [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 2; ++i)
          calls[i] = spawn_call(t, make_request("/echo", lane::train, "call " + std::to_string(i)),
                                i == cancelled_one ? cancel.slot() : asio::cancellation_slot());
        co_await wait_until([&] { return t.resolve_waiters() == 2; }, "both wait for one lookup");
        cancel.emit(asio::cancellation_type::terminal);
        co_await wait_until([&] { return calls[0]->done && calls[1]->done; }, "both calls done");
      }());
      const auto& gone = *calls[cancelled_one];
      const auto& kept = *calls[1 - cancelled_one];
      CHECK(gone.aborted());
      CHECK(gone.error_text().find("cancelled while resolving the host name") != std::string::npos);
      REQUIRE_MESSAGE(!kept.error, kept.error_text());
      CHECK(kept.response.body == "call " + std::to_string(1 - cancelled_one));
      CHECK(t.dns_lookups() == 1);
      CHECK(run_coro(io, t.send(make_request("/echo", lane::train, "cached"))).body == "cached");
      CHECK(t.dns_lookups() == 1);  // the answer was cached
    }
  }
  SUBCASE("shutdown wakes a connect waiting for a lookup") {
    test_server srv(io);
    auto t = make_transport(io, srv.base_url("http", "localhost"));
    std::shared_ptr<call_outcome> call;
    run_coro(io, [&]() -> asio::awaitable<void> {
      call = spawn_call(t, make_request("/echo"));
      co_await wait_until([&] { return t.resolve_waiters() == 1; }, "waiting for the lookup");
      t.shutdown();
      co_await wait_until([&] { return call->done; }, "call done");
    }());
    CHECK(call->aborted());
    CHECK(call->error_text().find("shut down") != std::string::npos);
    CHECK(srv.server.accepted_connections() == 0);
  }
}

TEST_CASE("transport: cancellation") {
  asio::io_context io;
  test_server srv(io);
  auto t = make_transport(io, srv.base_url(), caps(1));

  SUBCASE("while waiting for a connection: the call leaves the queue") {
    auto holder = spawn_call(t, make_request("/hold"));
    asio::cancellation_signal cancel;
    auto waiting = spawn_call(t, make_request("/echo"), cancel.slot());
    run_coro(io, [&]() -> asio::awaitable<void> {
      co_await wait_until([&] { return srv.hold.parked() == 1 && t.waiting_requests(lane::train) == 1; },
                          "one holds, one waits");
      cancel.emit(asio::cancellation_type::terminal);
      co_await wait_until([&] { return waiting->done; }, "cancelled call completes");
      CHECK(waiting->aborted());
      CHECK(t.waiting_requests(lane::train) == 0);
      CHECK(t.open_connections(lane::train) == 1);
      CHECK_FALSE(holder->done);
      srv.hold.open();
      co_await wait_until([&] { return holder->done; }, "holder done");
      auto later = co_await t.send(make_request("/echo", lane::train, "works"));
      CHECK(later.body == "works");
    }());
    CHECK(holder->response.status == 200);
    CHECK(srv.server.accepted_connections() == 1);  // nothing was sent for the cancelled call
  }

  SUBCASE("mid-request: the connection is closed, not pooled; the slot is freed") {
    asio::cancellation_signal cancel;
    auto call = spawn_call(t, make_request("/hold"), cancel.slot());
    run_coro(io, [&]() -> asio::awaitable<void> {
      co_await wait_until([&] { return srv.hold.parked() == 1; }, "request reached the handler");
      cancel.emit(asio::cancellation_type::terminal);
      co_await wait_until([&] { return call->done; }, "cancelled call completes");
      CHECK(call->aborted());
      CHECK(call->error_text().find("cancelled while reading the response") != std::string::npos);
      CHECK(t.open_connections(lane::train) == 0);
      CHECK(t.idle_connections(lane::train) == 0);
      auto later = co_await t.send(make_request("/echo", lane::train, "fresh"));
      CHECK(later.body == "fresh");
      srv.hold.open();
      co_await wait_until([&] { return srv.server.active_connections() == 1; }, "server noticed the closed connection");
    }());
    CHECK(srv.server.accepted_connections() == 2);
    CHECK(t.connections_opened() == 2);
  }

  SUBCASE("through a parallel group (wait_for_one): the losing call is cancelled") {
    gate other(io.get_executor());
    run_coro(io, [&]() -> asio::awaitable<void> {
      co_spawn(
          io,
          [&]() -> asio::awaitable<void> {
            co_await wait_until([&] { return srv.hold.parked() == 1; }, "request parked");
            other.open();
          },
          asio::detached);
      auto [order, call_error, response, other_error] =
          co_await asio::experimental::make_parallel_group(
              asio::co_spawn(io, t.send(make_request("/hold")), asio::deferred),
              asio::co_spawn(io, other.wait(), asio::deferred))
              .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
      CHECK(order[0] == 1);
      REQUIRE(call_error);
      CHECK_THROWS_AS(std::rethrow_exception(call_error), boost::system::system_error);
      CHECK(t.open_connections(lane::train) == 0);
      auto later = co_await t.send(make_request("/echo", lane::train, "after the race"));
      CHECK(later.body == "after the race");
      srv.hold.open();
    }());
  }
}

TEST_CASE("transport: shutdown fails waiters and calls in flight, closes idle connections, refuses new calls") {
  asio::io_context io;
  test_server srv(io);
  auto t = make_transport(io, srv.base_url(), caps(1));
  (void)run_coro(io, t.send(make_request("/echo", lane::session)));
  CHECK(t.idle_connections(lane::session) == 1);
  auto in_flight = spawn_call(t, make_request("/hold"));
  auto waiting = spawn_call(t, make_request("/echo"));
  run_coro(io, [&]() -> asio::awaitable<void> {
    co_await wait_until([&] { return srv.hold.parked() == 1 && t.waiting_requests(lane::train) == 1; }, "busy");
    t.shutdown();
    co_await wait_until([&] { return in_flight->done && waiting->done; }, "both fail");
  }());
  CHECK(in_flight->aborted());
  CHECK(waiting->aborted());
  CHECK(waiting->error_text().find("shut down") != std::string::npos);
  for (std::size_t i = 0; i < http::lane_count; ++i) {
    const auto l = static_cast<lane>(i);
    CHECK(t.open_connections(l) == 0);
    CHECK(t.idle_connections(l) == 0);
    CHECK(t.waiting_requests(l) == 0);
  }
  run_coro(io, [&]() -> asio::awaitable<void> {
    try {
      (void)co_await t.send(make_request("/echo"));
      FAIL("a send after shutdown went through");
    } catch (const boost::system::system_error& e) {
      CHECK(e.code() == asio::error::operation_aborted);
    }
    srv.hold.open();
    co_await wait_until([&] { return srv.server.active_connections() == 0; }, "server side closed");
  }());
  t.shutdown();  // idempotent
}

TEST_CASE("transport + server: a thousand concurrent long polls on one thread") {
  asio::io_context io;
  test_server srv(io);
  constexpr std::size_t n = 1000;
  http::transport_options o;  // the default cap of the poll lane may be lower than n
  o.max_connections[static_cast<std::size_t>(lane::poll)] = n;
  auto t = make_transport(io, srv.base_url(), o);
  std::vector<std::shared_ptr<call_outcome>> calls;
  for (std::size_t i = 0; i < n; ++i) calls.push_back(spawn_call(t, make_request("/hold", lane::poll)));
  run_coro(io, [&]() -> asio::awaitable<void> {
    co_await wait_until([&] { return srv.hold.parked() == n; }, "all polls parked in the handler");
    CHECK(srv.server.active_connections() == n);
    CHECK(t.open_connections(lane::poll) == n);
    srv.hold.open();
    co_await wait_until([&] { return std::all_of(calls.begin(), calls.end(), [](auto& c) { return c->done; }); },
                        "all done");
  }());
  std::size_t ok = 0;
  for (auto& c : calls) ok += !c->error && c->response.status == 200;
  CHECK(ok == n);
  CHECK(t.idle_connections(lane::poll) == n);
}

TEST_CASE("transport over TLS") {
  test_pki pki;
  const auto good = pki.issue("localhost", {"localhost"}, {"127.0.0.1"});
  asio::io_context io;
  local::http_server_options so;
  so.tls_cert_file = good.cert_file;
  so.tls_key_file = good.key_file;
  test_server srv(io, so);

  http::transport_options trusting;
  trusting.tls.ca_file = pki.ca_file();
  trusting.tls.use_system_ca = false;

  SUBCASE("a client trusting the CA: by name and by IP, keep-alive, gzip") {
    for (const char* host : {"localhost", "127.0.0.1"}) {
      auto t = make_transport(io, srv.base_url("https", host), trusting);
      run_coro(io, [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 5; ++i) {
          auto res = co_await t.send(make_request("/echo", lane::train, "secure " + std::to_string(i)));
          CHECK(res.body == "secure " + std::to_string(i));
        }
        auto big = co_await t.send(make_request("/big?n=200000"));
        CHECK(header_of(big.headers, bhttp::field::content_encoding) == "gzip");
        CHECK(big.body.size() == 200000);
      }());
      CHECK(t.connections_opened() == 1);
    }
    CHECK(srv.server.accepted_connections() == 2);
  }
  SUBCASE("a stale TLS connection is retried too") {
    auto t = make_transport(io, srv.base_url("https", "localhost"), trusting);
    run_coro(io, [&]() -> asio::awaitable<void> {
      (void)co_await t.send(make_request("/echo"));
      auto res = co_await t.send(make_request("/drop-once"));
      CHECK(res.body == "second time lucky");
    }());
    CHECK(t.stale_retries() == 1);
  }
  SUBCASE("the read idle limit over TLS") {
    auto o = trusting;
    o.read_timeout = std::chrono::milliseconds(200);
    auto t = make_transport(io, srv.base_url("https", "localhost"), o);
    CHECK(run_coro(io, t.send(make_request("/echo", lane::train, "before"))).body == "before");
    auto what = expect_throw<api_timeout_error>(io, t, make_request("/hold"));
    CHECK(what.find("timed out while reading the response (read timeout 200 ms)") != std::string::npos);
    CHECK(t.open_connections(lane::train) == 0);
  }
  SUBCASE("a client without the CA fails with a certificate error") {
    http::transport_options o;  // system CAs only
    auto t = make_transport(io, srv.base_url("https", "localhost"), o);
    auto what = expect_throw<api_connection_error>(io, t, make_request("/echo"));
    CHECK(what.find("certificate") != std::string::npos);
    CHECK(what.find("CA") != std::string::npos);
    CHECK(what.find("TLS handshake") != std::string::npos);
    CHECK(what.find(secret_key) == std::string::npos);
    CHECK(t.open_connections(lane::train) == 0);
  }
  SUBCASE("a client connecting by a name the certificate does not list fails") {
    const auto other = pki.issue("other", {"other.test"}, {});
    local::http_server_options so2;
    so2.tls_cert_file = other.cert_file;
    so2.tls_key_file = other.key_file;
    test_server srv2(io, so2);
    auto t = make_transport(io, srv2.base_url("https", "localhost"), trusting);
    auto what = expect_throw<api_connection_error>(io, t, make_request("/echo"));
    CHECK(what.find("certificate") != std::string::npos);
    CHECK(what.find("host name mismatch") != std::string::npos);
    CHECK(what.find("'localhost'") != std::string::npos);
  }
  SUBCASE("insecure_skip_verify succeeds and warns, once per transport") {
    http::transport_options o;
    o.tls.insecure_skip_verify = true;
    std::vector<std::string> warnings;
    o.warn = [&](std::string_view w) { warnings.emplace_back(w); };
    auto t = make_transport(io, srv.base_url("https", "localhost"), o);
    for (int i = 0; i < 3; ++i) CHECK(run_coro(io, t.send(make_request("/echo", lane::train, "ok"))).body == "ok");
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].find("DISABLED") != std::string::npos);
  }
  SUBCASE("a CA file that cannot be read is a user error naming it") {
    http::transport_options o;
    o.tls.ca_file = "/nonexistent/ca.pem";
    CHECK_THROWS_WITH_AS(make_transport(io, srv.base_url("https"), o), doctest::Contains("/nonexistent/ca.pem"),
                         tinker::invalid_argument);
  }
}

TEST_CASE("transport: option checks") {
  asio::io_context io;
  auto zero = caps(0);
  CHECK_THROWS_AS(make_transport(io, "http://127.0.0.1:1", zero), tinker::invalid_argument);
  http::transport_options o;
  o.request_timeout = std::chrono::milliseconds(0);
  CHECK_THROWS_AS(make_transport(io, "http://127.0.0.1:1", o), tinker::invalid_argument);
  http::transport_options negative;
  negative.read_timeout = std::chrono::milliseconds(-1);
  CHECK_THROWS_WITH_AS(make_transport(io, "http://127.0.0.1:1", negative), doctest::Contains("read_timeout"),
                       tinker::invalid_argument);
  http::transport_options off;  // zero turns the idle limits off: accepted
  off.read_timeout = off.write_timeout = std::chrono::milliseconds(0);
  CHECK_NOTHROW(make_transport(io, "http://127.0.0.1:1", off));
}

TEST_CASE("transport: sequential keep-alive calls per second on loopback (measured, not asserted)" * doctest::skip()) {
  asio::io_context io;
  test_server srv(io);
  auto t = make_transport(io, srv.base_url());
  constexpr int calls = 20000;
  const auto start = std::chrono::steady_clock::now();
  run_coro(io, [&]() -> asio::awaitable<void> {
    for (int i = 0; i < calls; ++i) (void)co_await t.send(make_request("/echo", lane::train, R"({"request_id":"x"})"));
  }());
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  MESSAGE("sequential keep-alive calls: " << calls / s << " calls/s (" << 1e6 * s / calls << " us per call)");
  CHECK(srv.server.accepted_connections() == 1);
}
