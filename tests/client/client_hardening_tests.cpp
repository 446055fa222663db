// The client's defences against hostile or broken servers and careless input: credentials kept
// out of every message even when a server echoes them, bounded resubmission and re-poll loops,
// options and arguments checked before anything is sent, user errors (409) not retried, and what
// reaches the wire, read back from the local engine's request record.
#include "client/client_fixture.hpp"

#include <tinker/client/detail/poll_fsm.hpp>
#include <tinker/http/url.hpp>
#include <tinker/local/http_server.hpp>
#include <tinker/tinker.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/serialize.hpp>
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

using namespace tinker;
using namespace tinker::test;
namespace asio = boost::asio;
namespace bhttp = boost::beast::http;

namespace {

/// A server scripted per test over the parts of the protocol a session needs; `route` answers what
/// a test cares about (returning true when it did). Counts requests by target. Single-threaded: it
/// runs on the test's io_context, like the client.
struct fake_server {
  using route_fn = std::function<bool(const std::string& target, const local::http_request&, local::http_response&)>;
  route_fn route;
  client_config_response config;
  std::map<std::string, int> hits;
  std::map<std::string, std::vector<boost::json::value>> bodies;  ///< JSON request bodies by target
  std::map<std::string, std::string> futures;                     ///< request id -> result, for retrieve_future
  std::string session_warning;                                    ///< create_session's warning_message, when not empty
  local::http_server server;

  explicit fake_server(asio::io_context& io, route_fn r = {})
      : route(std::move(r)), server(io.get_executor(), {}, [this](local::http_request& req) { return handle(req); }) {
    server.start();
  }
  ~fake_server() { server.stop(); }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(server.port()); }

  /// Answers a submission with a new future whose result is `result`.
  void submit(local::http_response& res, std::string result) {
    const auto id = "r-" + std::to_string(futures.size() + 1);
    futures[id] = std::move(result);
    res.body() = boost::json::serialize(boost::json::object{{"request_id", id}});
  }

  static void answer(local::http_response& res, bhttp::status status, const std::string& detail) {
    res.result(status);
    res.body() = boost::json::serialize(boost::json::object{{"detail", detail}});
  }

  asio::awaitable<std::optional<local::http_response>> handle(local::http_request& req) {
    const std::string target(req.target());
    ++hits[target];
    boost::system::error_code ec;
    auto body = boost::json::parse(req.body(), ec);
    if (!ec) bodies[target].push_back(body);
    local::http_response res{bhttp::status::ok, req.version()};
    res.set(bhttp::field::content_type, "application/json");
    if (route && route(target, req, res)) {
    } else if (target == "/api/v1/client/config") {
      res.body() = json::to_json(config);
    } else if (target == "/api/v1/create_session") {
      boost::json::object o{{"session_id", "s-1"}};
      if (!session_warning.empty()) o["warning_message"] = session_warning;
      res.body() = boost::json::serialize(o);
    } else if (target == "/api/v1/session_heartbeat") {
      res.body() = R"({"type": "session_heartbeat"})";
    } else if (target == "/api/v1/retrieve_future" && body.is_object() && body.as_object().contains("request_id") &&
               futures.contains(std::string(body.at("request_id").as_string()))) {
      res.body() = futures.at(std::string(body.at("request_id").as_string()));
    } else if (target == "/api/v1/create_sampling_session") {
      res.body() = R"({"sampling_session_id": "sampler-1"})";
    } else {
      answer(res, bhttp::status::not_found, "no route " + target);
    }
    res.prepare_payload();
    co_return res;
  }
};

}  // namespace

TEST_SUITE("client") {
  TEST_CASE("secrets: an API key or weights_access_token a server echoes never reaches what() or the log") {
    asio::io_context io;
    // A server careless with credentials: its errors quote the X-API-Key it was sent, and so does
    // its create_session warning.
    fake_server srv(io, [](const std::string& target, const local::http_request& req, local::http_response& res) {
      const std::string key(req["X-API-Key"]);
      if (target == "/api/v1/create_model")
        res.body() = R"({"request_id": "r-1"})";
      else if (target == "/api/v1/retrieve_future")
        fake_server::answer(res, bhttp::status::unauthorized, "the key " + key + " may not read r-1");
      else if (target == "/api/v1/weights_info")
        fake_server::answer(res, bhttp::status::forbidden, "token " + key + " may not read this checkpoint");
      else if (target == "/api/v1/get_server_capabilities")
        fake_server::answer(res, bhttp::status::unauthorized, "invalid API key: " + key);
      else
        return false;
      return true;
    });
    const std::string key = "tml-echoed-secret-key-42";
    const std::string token = "tml-other-account-token-77";
    auto lines = std::make_shared<std::vector<std::string>>();
    client_options o;
    o.base_url = srv.base_url();
    o.api_key = key;
    o.log = [lines](log_level, std::string_view line) { lines->emplace_back(line); };
    service_client service(io.get_executor(), o);
    srv.session_warning = "the key " + key + " expires soon";
    std::vector<std::string> messages;
    run_coro(io, [&]() -> asio::awaitable<void> {
      try {  // a plain call's 401 (call())
        (void)co_await service.get_server_capabilities();
      } catch (const authentication_error& e) {
        messages.push_back(e.what());
        CHECK(e.body().find(key) == std::string::npos);
      }
      try {  // a polled future's 401 (poll_fsm); the session's warning goes to the log
        (void)co_await service.create_lora_training_client(tiny_model);
      } catch (const authentication_error& e) {
        messages.push_back(e.what());
      }
      try {  // a call made with another account's token
        auto rest = service.create_rest_client();
        (void)co_await rest.get_weights_info_by_tinker_path("tinker://run-1/weights/w", token);
      } catch (const permission_denied_error& e) {
        messages.push_back(e.what());
      }
    }());
    REQUIRE(messages.size() == 3);
    for (const auto& m : messages) {
      CHECK_MESSAGE(m.find(key) == std::string::npos, m);
      CHECK_MESSAGE(m.find(token) == std::string::npos, m);
      CHECK(m.find("[redacted]") != std::string::npos);  // the server's text is still there, minus the secret
    }
    REQUIRE(std::any_of(lines->begin(), lines->end(),
                        [](const std::string& l) { return l.find("expires soon") != std::string::npos; }));
    for (const auto& l : *lines) CHECK_MESSAGE(l.find(key) == std::string::npos, l);
  }

  TEST_CASE("secrets: a base_url with user info is refused without echoing the password") {
    asio::io_context io;
    client_options o;
    o.base_url = "http://alice:hunter2-pass@127.0.0.1:1/prefix";
    o.api_key = "tml-key";
    const auto what = what_of([&] { service_client s(io.get_executor(), o); });
    CHECK(what.find("user info") != std::string::npos);
    CHECK(what.find("hunter2-pass") == std::string::npos);
    CHECK(what.find("alice") == std::string::npos);
    CHECK(what.find("http://***@127.0.0.1:1/prefix") != std::string::npos);
    // Redaction holds for text that does not parse at all, and for passwords with '@' or '/'.
    CHECK(http::url::redact("ftp://u:p@ss@host") == "ftp://***@host");
    CHECK(http::url::redact("u:pw/x@host:80") == "***@host:80");
    CHECK(http::url::redact("https://host/p") == "https://host/p");
    CHECK(what_of([] { (void)http::url::parse("https//u:s3cr3t@host"); }).find("s3cr3t") == std::string::npos);
  }
}
