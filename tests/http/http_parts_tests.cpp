// The pieces of the HTTP layer on their own: URL parsing, gzip with real zlib, the request head
// writer, Accept-Encoding parsing, and the server against raw bytes (garbage, limits, pipelining,
// 100-continue, stop).
#include "common/test_certs.hpp"
#include "http/http_test_support.hpp"

#include <tinker/http/detail/request_head.hpp>
#include <tinker/http/gzip.hpp>
#include <tinker/http/url.hpp>
#include <tinker/local/http_server.hpp>

#include <doctest/doctest.h>

#include <zlib.h>

#include <random>
#include <string>

using namespace tinker;
using namespace tinker::test;

// ===== url =====================================================================================

TEST_CASE("url: parse") {
  auto u = http::url::parse("https://tinker.thinkingmachines.dev/services/tinker-prod");
  CHECK(u.scheme == "https");
  CHECK(u.host == "tinker.thinkingmachines.dev");
  CHECK(u.port == 443);
  CHECK(u.path_prefix == "/services/tinker-prod");
  CHECK(u.is_tls());
  CHECK(u.target("/api/v1/create_session") == "/services/tinker-prod/api/v1/create_session");
  CHECK(u.target("api/v1/x") == "/services/tinker-prod/api/v1/x");
  CHECK(u.host_header() == "tinker.thinkingmachines.dev");

  auto local = http::url::parse("HTTP://LocalHost:8000/");
  CHECK(local.scheme == "http");
  CHECK(local.host == "localhost");
  CHECK(local.port == 8000);
  CHECK(local.path_prefix.empty());
  CHECK(local.target("/api/v1/x?limit=10") == "/api/v1/x?limit=10");
  CHECK(local.host_header() == "localhost:8000");
  CHECK(local.host_port() == "localhost:8000");
  CHECK(local.str() == "http://localhost:8000");

  auto v6 = http::url::parse("http://[::1]:9000/p//");
  CHECK(v6.host == "::1");
  CHECK(v6.port == 9000);
  CHECK(v6.path_prefix == "/p");
  CHECK(v6.host_header() == "[::1]:9000");
  CHECK(http::url::parse("http://[fe80::1]").port == 80);
  CHECK(http::url::parse("http://[fe80::1]").host_header() == "[fe80::1]");
  CHECK(http::url::parse("https://h:443").host_header() == "h");
  CHECK(http::url::parse("http://127.0.0.1").port == 80);
}

TEST_CASE("url: bad input names the URL") {
  for (const char* bad : {"", "tinker.dev", "ftp://h", "http://", "http://:80", "http://h:", "http://h:0",
                          "http://h:65536", "http://h:8x", "http://h/p?q=1", "http://h/#f", "http://[::1",
                          "http://::1:80", "http://[zz::1]", "http://h h", "http://[::1]x"}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH_AS(http::url::parse(bad), doctest::Contains((std::string("'") + bad + "'").c_str()),
                         tinker::invalid_argument);
  }
  // User info is refused too, but named without it: a password must not reach the message.
  const auto what = [] {
    try {
      (void)http::url::parse("http://user:pw-secret@h");
    } catch (const tinker::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  }();
  CHECK(what.find("'http://***@h'") != std::string::npos);
  CHECK(what.find("pw-secret") == std::string::npos);
}

// ===== gzip ====================================================================================

TEST_CASE("gzip: round trips and framing") {
  std::mt19937 rng(7);
  std::string random(300000, '\0');
  for (auto& c : random) c = static_cast<char>(rng());
  std::string text;
  while (text.size() < 1'000'000) text += "{\"tokens\":[1,2,3],\"weights\":[0.5,0.25]},";
  for (const std::string& input : {std::string(), std::string("x"), text, random}) {
    CAPTURE(input.size());
    const auto packed = http::gzip_compress(input);
    REQUIRE(packed.size() >= 18);
    CHECK(static_cast<unsigned char>(packed[0]) == 0x1f);  // gzip magic
    CHECK(static_cast<unsigned char>(packed[1]) == 0x8b);
    CHECK(http::gzip_decompress(packed, input.size()) == input);
  }
  CHECK(http::gzip_compress(text).size() < text.size() / 20);
  CHECK(http::gzip_compress(text, 1).size() < text.size() / 5);

  SUBCASE("zlib framing is accepted too") {
    uLongf size = compressBound(static_cast<uLong>(text.size()));
    std::string z(size, '\0');
    REQUIRE(compress2(reinterpret_cast<Bytef*>(z.data()), &size, reinterpret_cast<const Bytef*>(text.data()),
                      static_cast<uLong>(text.size()), 6) == Z_OK);
    z.resize(size);
    CHECK(http::gzip_decompress(z, text.size()) == text);
  }
  SUBCASE("concatenated members are joined") {
    CHECK(http::gzip_decompress(http::gzip_compress("hello ") + http::gzip_compress("world"), 100) == "hello world");
  }
}

TEST_CASE("gzip: corrupt, truncated and oversized input is refused") {
  const auto packed = http::gzip_compress(std::string(100000, 'a'));
  auto kind_of = [](auto&& fn) {
    try {
      fn();
    } catch (const http::gzip_error& e) {
      return e.which();
    }
    FAIL("no gzip_error");
    return http::gzip_error::kind::internal;
  };
  CHECK(kind_of([&] { http::gzip_decompress("not gzip", 1000); }) == http::gzip_error::kind::corrupt);
  CHECK(kind_of([&] { http::gzip_decompress("", 1000); }) == http::gzip_error::kind::corrupt);
  CHECK(kind_of([&] { http::gzip_decompress(packed.substr(0, packed.size() / 2), 1 << 20); }) ==
        http::gzip_error::kind::corrupt);
  CHECK(kind_of([&] { http::gzip_decompress(packed + "trailing garbage", 1 << 20); }) ==
        http::gzip_error::kind::corrupt);
  // Zero padding after the member (which archives may carry) is garbage in an HTTP body.
  CHECK(kind_of([&] { http::gzip_decompress(packed + std::string(16, '\0'), 1 << 20); }) ==
        http::gzip_error::kind::corrupt);
  auto flipped = packed;
  flipped[packed.size() - 6] ^= 0x55;  // CRC / length trailer
  CHECK(kind_of([&] { http::gzip_decompress(flipped, 1 << 20); }) == http::gzip_error::kind::corrupt);
  // A bomb: 100 KB from ~100 bytes, refused at the limit, not after inflating everything.
  CHECK(kind_of([&] { http::gzip_decompress(packed, 99999); }) == http::gzip_error::kind::too_large);
  CHECK(http::gzip_decompress(packed, 100000).size() == 100000);
  CHECK_THROWS_WITH(http::gzip_decompress(packed, 10), doctest::Contains("exceeds the limit of 10 bytes"));
}

// ===== request head =============================================================================

TEST_CASE("request head: exact bytes") {
  const auto base = http::url::parse("https://api.example/services/x");
  http::request req;
  req.target = "/api/v1/asample";
  req.body = R"({"a":1})";
  req.headers = {{"X-API-Key", "tml-k"}, {"Content-Type", "application/json"}};
  http::detail::head_info info;
  CHECK(http::detail::build_request_head(req, base, true, info) ==
        "POST /services/x/api/v1/asample HTTP/1.1\r\nHost: api.example\r\nX-API-Key: tml-k\r\n"
        "Content-Type: application/json\r\nUser-Agent: tinker-cpp/" +
            std::string(library_version) + "\r\nAccept-Encoding: gzip\r\nContent-Length: 7\r\n\r\n");
  CHECK_FALSE(info.connection_close);

  http::request get;
  get.method = boost::beast::http::verb::get;
  get.target = "/api/v1/healthz";
  get.headers = {{"user-agent", "me/2"}, {"Connection", "keep-alive, close"}};
  http::detail::head_info get_info;
  CHECK(http::detail::build_request_head(get, http::url::parse("http://h:81"), false, get_info) ==
        "GET /api/v1/healthz HTTP/1.1\r\nHost: h:81\r\nuser-agent: me/2\r\nConnection: keep-alive, close\r\n\r\n");
  CHECK(get_info.connection_close);

  http::request bad;
  bad.target = "/x";
  bad.headers = {{"Bad Name", "v"}};
  CHECK_THROWS_AS(http::detail::build_request_head(bad, base, true, info), tinker::invalid_argument);
  bad.headers = {{"Content-Length", "5"}};
  CHECK_THROWS_AS(http::detail::build_request_head(bad, base, true, info), tinker::invalid_argument);
  bad.headers = {{"X-Key", "secret\nvalue"}};
  CHECK_THROWS_WITH(http::detail::build_request_head(bad, base, true, info), doctest::Contains("X-Key"));
  try {
    http::detail::build_request_head(bad, base, true, info);
  } catch (const std::exception& e) {
    CHECK(std::string(e.what()).find("secret") == std::string::npos);
  }
}

TEST_CASE("server: Accept-Encoding parsing") {
  using local::detail::accepts_gzip;
  CHECK(accepts_gzip("gzip"));
  CHECK(accepts_gzip("deflate, GZIP;q=0.8"));
  CHECK(accepts_gzip("*"));
  CHECK(accepts_gzip("br, x-gzip"));
  CHECK_FALSE(accepts_gzip(""));
  CHECK_FALSE(accepts_gzip("identity"));
  CHECK_FALSE(accepts_gzip("gzip;q=0"));
  CHECK_FALSE(accepts_gzip("gzip; q=0.0, *"));  // explicitly refused; the wildcard does not bring it back
  CHECK_FALSE(accepts_gzip("*;q=0"));
}

// ===== server against raw bytes ================================================================

namespace {

std::string status_line(const std::string& reply) { return reply.substr(0, reply.find("\r\n")); }
std::string body_of(const std::string& reply) {
  auto pos = reply.find("\r\n\r\n");
  return pos == std::string::npos ? std::string() : reply.substr(pos + 4);
}

}  // namespace

TEST_CASE("server: garbage and malformed requests get JSON errors and never crash it") {
  asio::io_context io;
  test_server srv(io);
  const auto port = srv.server.port();
  run_coro(io, [&]() -> asio::awaitable<void> {
    auto reply = co_await raw_exchange(port, "GARBAGE\r\n\r\n");
    CHECK(status_line(reply) == "HTTP/1.1 400 Bad Request");
    CHECK(body_of(reply).find("{\"detail\":\"malformed HTTP request") == 0);
    CHECK(reply.find("Connection: close") != std::string::npos);

    reply = co_await raw_exchange(port, "GET /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n");
    CHECK(status_line(reply) == "HTTP/1.1 400 Bad Request");

    reply = co_await raw_exchange(
        port, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nxx\r\n0\r\n\r\n");
    CHECK(status_line(reply) == "HTTP/1.1 400 Bad Request");

    reply =
        co_await raw_exchange(port, "GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(70000, 'a') + "\r\n\r\n");
    CHECK(status_line(reply) == "HTTP/1.1 431 Request Header Fields Too Large");
    CHECK(body_of(reply).find("\"detail\"") != std::string::npos);

    std::mt19937 rng(11);
    for (int round = 0; round < 20; ++round) {
      std::string junk(1 + rng() % 3000, '\0');
      for (auto& c : junk) c = static_cast<char>(rng());
      reply = co_await raw_exchange(port, junk + "\r\n\r\n", true);
      CHECK((reply.empty() || reply.rfind("HTTP/1.1 4", 0) == 0));
    }

    // An incomplete request followed by EOF: closed without an answer.
    reply = co_await raw_exchange(port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nshort", true);
    CHECK(reply.empty());

    // Still serving.
    reply = co_await raw_exchange(port,
                                  "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    CHECK(status_line(reply) == "HTTP/1.1 200 OK");
    CHECK(body_of(reply) == "ok");
  }());
  CHECK(srv.requests == 1);
}

TEST_CASE("server: keep-alive details on the wire") {
  asio::io_context io;
  test_server srv(io);
  const auto port = srv.server.port();
  run_coro(io, [&]() -> asio::awaitable<void> {
    // Two pipelined requests: answered in order, one at a time, on the same connection.
    auto reply =
        co_await raw_exchange(port,
                              "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none"
                              "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\ntwo");
    const auto first = reply.find("\r\n\r\none");
    const auto second = reply.find("\r\n\r\ntwo");
    CHECK(first != std::string::npos);
    CHECK(second != std::string::npos);
    CHECK(first < second);

    // HTTP/1.0 without keep-alive: answered as 1.0 and closed.
    reply = co_await raw_exchange(port, "GET /echo HTTP/1.0\r\nHost: x\r\n\r\n");
    CHECK(status_line(reply) == "HTTP/1.0 200 OK");

    // Expect: 100-continue gets the interim answer before the body is sent.
    reply = co_await raw_exchange(port,
                                  "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n"
                                  "Connection: close\r\n\r\nbody");
    CHECK(reply.rfind("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK", 0) == 0);
    CHECK(body_of(body_of(reply)) == "body");

    // gzip only when asked, Vary either way for bodies that could be compressed.
    reply = co_await raw_exchange(port, "GET /big?n=5000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(reply.find("Content-Encoding") == std::string::npos);
    CHECK(reply.find("Vary: Accept-Encoding") != std::string::npos);
    reply = co_await raw_exchange(
        port, "GET /big?n=5000 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip;q=0\r\nConnection: close\r\n\r\n");
    CHECK(reply.find("Content-Encoding") == std::string::npos);
    reply = co_await raw_exchange(
        port, "GET /big?n=5000 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br, gzip\r\nConnection: close\r\n\r\n");
    CHECK(reply.find("Content-Encoding: gzip") != std::string::npos);
    CHECK(http::gzip_decompress(body_of(reply), 5000).size() == 5000);
  }());
}

TEST_CASE("server: stop closes connections and cancels handlers, start reports bind failures") {
  asio::io_context io;
  test_server srv(io);
  auto t = http::transport(io.get_executor(), http::url::parse(srv.base_url()), {});
  std::vector<std::shared_ptr<call_outcome>> calls;
  for (int i = 0; i < 20; ++i) calls.push_back(spawn_call(t, make_request("/hold", http::lane::poll)));
  run_coro(io, [&]() -> asio::awaitable<void> {
    co_await wait_until([&] { return srv.hold.parked() == 20; }, "handlers parked");
    CHECK(srv.server.active_connections() == 20);
    srv.server.stop();
    srv.server.stop();  // idempotent
    co_await wait_until([&] { return srv.server.active_connections() == 0; }, "sessions ended");
    co_await wait_until([&] { return std::all_of(calls.begin(), calls.end(), [](auto& c) { return c->done; }); },
                        "calls end");
  }());
  CHECK(srv.hold.cancelled() == 20);
  for (auto& c : calls) {
    REQUIRE(c->error);
    CHECK_THROWS_AS(std::rethrow_exception(c->error), api_connection_error);
  }
  // The port is free again... but a second server on a busy port fails loudly.
  test_server other(io);
  local::http_server_options clash;
  clash.port = other.server.port();
  local::http_server dup(io.get_executor(), clash, [](http_request&) -> asio::awaitable<std::optional<http_response>> {
    co_return std::nullopt;
  });
  CHECK_THROWS_WITH_AS(dup.start(), doctest::Contains(("127.0.0.1:" + std::to_string(clash.port)).c_str()),
                       tinker_error);
}

TEST_CASE("server: TLS option errors") {
  asio::io_context io;
  auto handler = [](http_request&) -> asio::awaitable<std::optional<http_response>> { co_return std::nullopt; };
  local::http_server_options half;
  half.tls_cert_file = "/x.pem";
  CHECK_THROWS_AS(local::http_server(io.get_executor(), half, handler), tinker::invalid_argument);
  local::http_server_options missing;
  missing.tls_cert_file = "/nonexistent/cert.pem";
  missing.tls_key_file = "/nonexistent/key.pem";
  local::http_server s(io.get_executor(), missing, handler);
  CHECK_THROWS_WITH_AS(s.start(), doctest::Contains("/nonexistent/cert.pem"), tinker::invalid_argument);
}

TEST_CASE("server: a plain-HTTP client talking to a TLS port is dropped, the server keeps serving") {
  test_pki pki;
  const auto cert = pki.issue("localhost", {"localhost"}, {"127.0.0.1"});
  asio::io_context io;
  local::http_server_options so;
  so.tls_cert_file = cert.cert_file;
  so.tls_key_file = cert.key_file;
  test_server srv(io, so);
  run_coro(io, [&]() -> asio::awaitable<void> {
    auto reply = co_await raw_exchange(srv.server.port(), "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(reply.find("HTTP/1.1 200") == std::string::npos);
    co_await wait_until([&] { return srv.server.active_connections() == 0; }, "dropped");
  }());
  http::transport_options o;
  o.tls.ca_file = pki.ca_file();
  auto t = http::transport(io.get_executor(), http::url::parse(srv.base_url("https")), o);
  CHECK(run_coro(io, t.send(make_request("/echo", http::lane::train, "tls ok"))).body == "tls ok");
}
