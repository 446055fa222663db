// The local engine's request side: an HTTP request as it arrives on the wire, read by the parser
// the engine's server uses (same header limit), its gzip Content-Encoding undone as the server
// does, then served by the engine's pipeline (detail::serve: target parsing, routing, the
// request observer's best-effort body look, authentication, the route's JSON or protobuf body
// decoder and its checks). An engine core per input, so that every run is reproducible alone.
//
// A refusal is any 4xx answer; a bug is a 500 "internal error" (an exception the pipeline did not
// expect escaped a decoder or handler), or a crash. The input is the raw request; an X-API-Key
// header is added when it has none, so authenticated routes reach their decoders.
#include "fuzz_common.hpp"

#include <tinker/http/gzip.hpp>
#include <tinker/local/detail/dispatch.hpp>
#include <tinker/local/detail/engine_core.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/json/parse.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>

namespace {

namespace bhttp = boost::beast::http;
using namespace tinker;

constexpr std::size_t max_body = 1 << 20;

std::optional<local::http_request> read_request(std::string_view wire) {
  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(local::detail::max_request_header_bytes);
  parser.body_limit(max_body);
  boost::system::error_code ec;
  while (!wire.empty() && !parser.is_done()) {
    const auto n = parser.put(boost::asio::buffer(wire.data(), wire.size()), ec);
    wire.remove_prefix(n);
    if (ec == bhttp::error::need_more) {
      ec = {};
      if (n == 0) break;
      continue;
    }
    if (ec) return std::nullopt;
  }
  if (!parser.is_done()) return std::nullopt;
  auto req = parser.release();
  // The server's inflate_request_body, minus its offloading and answers for bad bodies.
  if (auto it = req.find(bhttp::field::content_encoding); it != req.end()) {
    const auto encoding = it->value();
    if (encoding != "gzip" && encoding != "x-gzip") return std::nullopt;
    try {
      req.body() = http::gzip_decompress(req.body(), max_body);
    } catch (const http::gzip_error&) {
      return std::nullopt;
    }
    req.erase(bhttp::field::content_encoding);
    req.prepare_payload();
  }
  return req;
}

local::engine_options fuzz_options() {
  local::engine_options o;
  o.compute_threads = 1;
  o.long_poll_hold = std::chrono::milliseconds(1);
  o.max_body_bytes = max_body;
  o.on_request = [](const local::request_record&) {};  // so the observer's body look runs too
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto req = read_request(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!req) return 0;
  if (req->find("X-API-Key") == req->end()) req->set("X-API-Key", "tml-fuzz");

  boost::asio::io_context io;
  auto core = std::make_shared<local::detail::engine_core>(io.get_executor(), fuzz_options());
  std::optional<local::http_response> answer;
  std::exception_ptr escaped;
  bool done = false;
  boost::asio::co_spawn(io, local::detail::serve(*core, *req),
                        [&](std::exception_ptr e, std::optional<local::http_response> res) {
                          escaped = e;
                          answer = std::move(res);
                          done = true;
                        });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!done && std::chrono::steady_clock::now() < deadline) io.run_one_for(std::chrono::milliseconds(50));
  if (!done) tinker::fuzz::fail("the engine did not answer within 5 s");
  if (escaped) {
    try {
      std::rethrow_exception(escaped);
    } catch (const std::exception& e) {
      tinker::fuzz::fail("an exception escaped the engine's pipeline", e.what());
    }
  }
  if (answer && answer->result_int() == 500) {
    const auto& body = answer->body();
    if (body.find("internal error") != std::string::npos) tinker::fuzz::fail("the engine answered 500", body);
  }
  // Background work the request started (a model loading, say) finishes before the next input.
  core->stop();
  core->join_compute();
  io.poll();
  return 0;
}
