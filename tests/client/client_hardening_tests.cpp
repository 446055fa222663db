// The client's defences against hostile or broken servers and careless input: credentials kept
// out of every message even when a server echoes them, bounded resubmission and re-poll loops,
// options and arguments checked before anything is sent, user errors (409) not retried, and what
// reaches the wire, read back from the local engine's request record.
//
// Where the behaviour under test is a server misbehaving in ways the local engine is built never
// to (echoing credentials, 410 for ever, 409 for duplicates — the engine answers 400, as
// docs/protocol.md §12.2 advises —, batched polls that return at once with nothing), a server scripted
// per test plays it: the engine's own HTTP server over real sockets, with a hand-written handler.
#include "client/client_fixture.hpp"

#include <tinker/client/detail/poll_fsm.hpp>
#include <tinker/http/url.hpp>
#include <tinker/json.hpp>
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

/// A one-sequence sample result as the server sends it.
std::string sample_result_json() {
  sample_response r;
  sampled_sequence seq;
  seq.tokens = {65, 66};
  seq.logprobs = std::vector<float>{-0.5f, -0.25f};
  r.sequences.push_back(seq);
  return json::to_json(r);
}

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

TEST_SUITE("client") {
  TEST_CASE("410 forever: a sample is resubmitted polling.max_resubmissions times with a growing delay, then fails") {
    asio::io_context io;
    int asamples = 0, polls = 0;
    fake_server srv(io, [&](const std::string& target, const local::http_request&, local::http_response& res) {
      if (target == "/api/v1/asample") {
        res.body() = R"({"request_id": "req-)" + std::to_string(++asamples) + R"("})";
      } else if (target == "/api/v1/retrieve_future") {
        ++polls;
        fake_server::answer(res, bhttp::status::gone, "unknown future");
      } else {
        return false;
      }
      return true;
    });
    client_options o;
    o.base_url = srv.base_url();
    o.api_key = "tml-key";
    o.polling.min_retry_delay = std::chrono::milliseconds(20);
    o.polling.max_resubmissions = 3;
    o.log = [](log_level, std::string_view) {};
    service_client service(io.get_executor(), o);
    const auto started = std::chrono::steady_clock::now();
    std::string what;
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto sampler = co_await service.create_base_model_sampling_client(tiny_model);
      try {
        const auto prompt = tokens({65});  // (outside co_await: see one())
        (void)co_await sampler.sample(prompt, 1, sampling_params(2));
      } catch (const gone_error& e) {
        what = e.what();
        CHECK(e.status() == 410);
      }
    }());
    const auto elapsed = std::chrono::steady_clock::now() - started;
    // One submission and three resubmissions, each future polled once; not retried on top (the
    // sampling retry policy would multiply the attempts).
    CHECK(asamples == 4);
    CHECK(polls == 4);
    CHECK(what.find("req-4") != std::string::npos);  // names the request it gave up on
    CHECK(what.find("3 resubmissions") != std::string::npos);
    // The backoff floor: 20 + 40 + 80 ms before the resubmissions, not a tight loop.
    CHECK(elapsed >= std::chrono::milliseconds(140));
  }
}

TEST_SUITE("client logic") {
  using tinker::detail::poll_decision;
  using tinker::detail::poll_fsm;
  using tinker::detail::poll_policy;
  using kind = poll_decision::kind;
  constexpr tinker::detail::seconds_d instant{0};

  TEST_CASE("poll_fsm: 410 resubmits max_resubmissions times after a growing delay, then a gone_error naming it") {
    poll_policy p;
    p.max_resubmissions = 3;
    poll_fsm fsm(p);
    fsm.set_request_id("req-1");
    std::vector<double> delays;
    for (int i = 0; i < 3; ++i) {
      auto d = fsm.on_response(410, "application/json", R"({"detail":"gone"})", instant);
      REQUIRE(d.what == kind::resubmit);
      delays.push_back(d.delay.count());
      fsm.set_request_id("req-" + std::to_string(i + 2));
    }
    CHECK(delays[0] >= p.min_retry_delay.count());  // the floor applies to the first one too
    CHECK(delays[1] > delays[0]);
    CHECK(delays[2] > delays[1]);
    auto d = fsm.on_response(410, "application/json", R"({"detail":"gone"})", instant);
    REQUIRE(d.what == kind::error);
    try {
      std::rethrow_exception(d.error);
    } catch (const gone_error& e) {
      CHECK(std::string(e.what()).find("req-4") != std::string::npos);
      CHECK(std::string(e.what()).find("3 resubmissions") != std::string::npos);
      CHECK(e.body() == R"({"detail":"gone"})");
    }
  }

  TEST_CASE("poll_fsm: complete_metadata again after the payload was asked for waits a growing delay") {
    poll_fsm fsm;
    const std::string metadata = R"({"status": "complete_metadata", "response_payload_size": 10})";
    auto first = fsm.on_response(200, "application/json", metadata, instant);
    CHECK(first.what == kind::fetch_payload);
    CHECK(first.delay.count() == 0);  // fetching the payload is what the answer asks for
    auto second = fsm.on_response(200, "application/json", metadata, instant);
    CHECK(second.what == kind::fetch_payload);
    CHECK(second.delay >= poll_policy{}.min_retry_delay);
    auto third = fsm.on_response(200, "application/json", metadata, instant);
    CHECK(third.delay > second.delay);
    // Answers that come back at once with try_again wait too, whatever came before.
    CHECK(fsm.on_response(200, "application/json", R"({"type": "try_again"})", instant).delay.count() > 0);
  }
}

TEST_SUITE("client") {
  TEST_CASE("batched completion polls that return at once with nothing wait a growing floor, not a tight loop") {
    asio::io_context io;
    int batch_polls = 0;
    std::vector<std::chrono::steady_clock::time_point> batch_times;
    fake_server srv(io, [&](const std::string& target, const local::http_request&, local::http_response& res) {
      if (target == "/api/v1/asample") {
        res.body() = R"({"request_id": "req-1"})";
      } else if (target == "/api/v1/retrieve_futures") {
        // Six empty answers at once (a server that does not hold the poll), then the completion.
        batch_times.push_back(std::chrono::steady_clock::now());
        retrieve_futures_response r;
        r.cursor = ++batch_polls;
        if (batch_polls > 6) r.completions.push_back(future_completion{completion_state::finished, "req-1", {}});
        res.body() = json::to_json(r);
      } else if (target == "/api/v1/retrieve_future") {
        res.body() = sample_result_json();
      } else {
        return false;
      }
      return true;
    });
    srv.config.sample_use_retrieve_futures = true;
    client_options o;
    o.base_url = srv.base_url();
    o.api_key = "tml-key";
    o.polling.min_retry_delay = std::chrono::milliseconds(20);
    o.log = [](log_level, std::string_view) {};
    service_client service(io.get_executor(), o);
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto sampler = co_await service.create_base_model_sampling_client(tiny_model);
      const auto prompt = tokens({65});  // (outside co_await: see one())
      auto resp = co_await sampler.sample(prompt, 1, sampling_params(2));
      CHECK(resp.sequences.size() == 1);
    }());
    // (One more batch poll may start before the waiter leaves; it is cancelled then.)
    REQUIRE(batch_polls >= 7);
    CHECK(srv.hits["/api/v1/retrieve_future"] == 1);  // fetched once, after the batch poll reported it
    // 20 + 40 + 80 + 160 + 320 + 640 ms between the first seven polls (capped at max_fast_retry_delay).
    CHECK(batch_times[6] - batch_times[0] >= std::chrono::milliseconds(1200));
  }
}

TEST_SUITE("client logic") {
  TEST_CASE("client_options::resolve refuses values that would loop, hang or misbehave, naming option and value") {
    auto what = [](const std::function<void(client_options&)>& tweak) {
      client_options o;
      o.base_url = "http://127.0.0.1:1";
      o.api_key = "tml-key";
      tweak(o);
      try {
        o.resolve();
      } catch (const std::invalid_argument& e) {
        return std::string(e.what());
      }
      return std::string("(accepted)");
    };
    using std::chrono::milliseconds;
    CHECK(what([](auto&) {}) == "(accepted)");
    CHECK(what([](auto& o) { o.heartbeat_interval = milliseconds(0); }) ==
          "client_options.heartbeat_interval must be > 0, got 0 ms");
    CHECK(what([](auto& o) { o.heartbeat_interval = milliseconds(-5); }) ==
          "client_options.heartbeat_interval must be > 0, got -5 ms");
    CHECK(what([](auto& o) { o.polling.poll_timeout = milliseconds(0); }) ==
          "client_options.polling.poll_timeout must be > 0, got 0 ms");
    CHECK(what([](auto& o) {
            o.retry.jitter = -0.1;
          }).find("client_options.retry.jitter must be in [0, 1], got -0.1") == 0);
    CHECK(what([](auto& o) { o.retry.jitter = 1.5; }).find("client_options.retry.jitter must be in [0, 1], got 1.5") ==
          0);
    CHECK(what([](auto& o) { o.retry.jitter = std::nan(""); }).find("client_options.retry.jitter") == 0);
    CHECK(what([](auto& o) { o.retry.billing_retry_interval = milliseconds(0); }) ==
          "client_options.retry.billing_retry_interval must be > 0, got 0 ms");
    CHECK(what([](auto& o) { o.retry.max_retries = -1; }) == "client_options.retry.max_retries must be >= 0, got -1");
    CHECK(what([](auto& o) { o.retry.initial_backoff = milliseconds(-1); }) ==
          "client_options.retry.initial_backoff must be > 0, got -1 ms");
    CHECK(what([](auto& o) { o.retry.max_backoff = milliseconds(100); }) ==
          "client_options.retry.max_backoff must be >= retry.initial_backoff (500 ms), got 100 ms");
    CHECK(what([](auto& o) { o.retry.total_budget = milliseconds(0); }) ==
          "client_options.retry.total_budget must be > 0, got 0 ms");
    CHECK(what([](auto& o) { o.connect_timeout = milliseconds(0); }) ==
          "client_options.connect_timeout must be > 0, got 0 ms");
    CHECK(what([](auto& o) { o.request_timeout = milliseconds(-1); }) ==
          "client_options.request_timeout must be > 0, got -1 ms");
    CHECK(what([](auto& o) { o.read_timeout = milliseconds(-1); }) ==
          "client_options.read_timeout must be >= 0 (0 = off), got -1 ms");
    CHECK(what([](auto& o) { o.polling.min_retry_delay = milliseconds(0); }) ==
          "client_options.polling.min_retry_delay must be > 0, got 0 ms");
    CHECK(what([](auto& o) { o.polling.max_resubmissions = -1; }) ==
          "client_options.polling.max_resubmissions must be >= 0, got -1");
    CHECK(what([](auto& o) { o.max_connections[static_cast<std::size_t>(http::lane::poll)] = 0; }) ==
          "client_options.max_connections[3] (lane poll) must be >= 1, got 0");
    CHECK(what([](auto& o) { o.sample_max_in_flight = 0; }) ==
          "client_options.sample_max_in_flight must be >= 1, got 0");
    CHECK(what([](auto& o) { o.sample_max_dispatch_bytes = 0; }) ==
          "client_options.sample_max_dispatch_bytes must be >= 1, got 0");
  }

  TEST_CASE("escaping: user strings put into URLs cannot add segments, parameters or escapes") {
    CHECK(http::escape_query_value("team a&b=c/d?e#f%g+h") == "team%20a%26b%3Dc%2Fd%3Fe%23f%25g%2Bh");
    CHECK(http::escape_query_value("plain-id_1.2~") == "plain-id_1.2~");
    CHECK(http::escape_path_segment("s-1:train:0") == "s-1:train:0");  // ids keep their colons
    CHECK(http::escape_path_segment("a/../b%2F") == "a%2F..%2Fb%252F");
  }
}

TEST_SUITE("client") {
  TEST_CASE(
      "arguments checked before sending: loss_fn_type out of range, a training-state path to a sampler, "
      "a project_id escaped") {
    request_log wire;
    auto eo = engine_opts();
    eo.on_request = wire.observer();
    client_fixture f(eo);
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
      const auto sent_before = f.hook().request_count("forward_backward") + f.hook().request_count("forward");
      const auto bad = static_cast<loss_fn_type>(42);
      CHECK_THROWS_WITH_AS(co_await training.forward_backward(one(text_datum("x")), bad),
                           "forward_backward: loss_fn_type 42 is not a loss (cross_entropy, importance_sampling, ppo, "
                           "cispo or dro)",
                           tinker::invalid_argument);
      CHECK_THROWS_AS(co_await training.forward(one(text_datum("x")), static_cast<loss_fn_type>(-1)),
                      tinker::invalid_argument);
      CHECK(f.hook().request_count("forward_backward") + f.hook().request_count("forward") == sent_before);

      auto saved = co_await (co_await training.save_state("state-1")).result();
      const auto sessions_before = f.hook().request_count("create_sampling_session");
      for (int i = 0; i < 2; ++i) {
        try {
          if (i == 0)
            (void)co_await f.service.create_sampling_client(saved.path);
          else
            (void)co_await training.create_sampling_client(saved.path);
          FAIL("a training-state path was accepted");
        } catch (const tinker::invalid_argument& e) {
          const std::string what = e.what();
          CHECK(what.find("create_sampling_client: '" + saved.path + "'") == 0);
          CHECK(what.find("sampler_weights") != std::string::npos);
        }
      }
      CHECK(f.hook().request_count("create_sampling_session") == sessions_before);

      auto rest = f.service.create_rest_client();
      try {
        (void)co_await rest.list_training_runs(5, 0, access_scope::owned, std::string("team a&b=c"));
      } catch (const api_status_error&) {  // only what was sent matters here
      }
    }());
    const auto records = wire.snapshot();
    auto it = std::find_if(records.begin(), records.end(),
                           [](const local::request_record& r) { return r.route == "list_training_runs"; });
    REQUIRE(it != records.end());
    CHECK(it->target.find("&project_id=team%20a%26b%3Dc") != std::string::npos);
    CHECK(it->target.find("&b=c") == std::string::npos);  // no parameter smuggled in
  }
}

TEST_SUITE("client") {
  TEST_CASE(
      "409 on save_state, save_weights_for_sampler, publish and unpublish: a conflict_error at once, not retried") {
    // (The local engine answers these cases 400 or 200, never 409, so a scripted server plays
    // one that follows docs/protocol.md §7.1: 409 "exists" / "already public" / "already private".)
    asio::io_context io;
    fake_server srv(io, [](const std::string& target, const local::http_request&, local::http_response& res) {
      if (target == "/api/v1/create_model") {
        res.body() = R"({"request_id": "r-model"})";
      } else if (target == "/api/v1/retrieve_future") {
        create_model_response created;
        created.model_id = "m-1";
        res.body() = json::to_json(created);
      } else if (target == "/api/v1/save_weights" || target == "/api/v1/save_weights_for_sampler" ||
                 target.ends_with("/publish")) {
        fake_server::answer(res, bhttp::status::conflict, "already exists: " + target);
      } else {
        return false;
      }
      return true;
    });
    client_options o;
    o.base_url = srv.base_url();
    o.api_key = "tml-key";
    o.log = [](log_level, std::string_view) {};
    service_client service(io.get_executor(), o);
    std::vector<std::string> bodies;
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto training = co_await service.create_lora_training_client(tiny_model, {.rank = 4});
      auto rest = service.create_rest_client();
      for (int call = 0; call < 4; ++call) {
        try {
          if (call == 0) (void)co_await training.save_state("dup");
          if (call == 1) (void)co_await training.save_weights_for_sampler("dup");
          if (call == 2) co_await rest.publish_checkpoint_from_tinker_path("tinker://m-1/sampler_weights/dup");
          if (call == 3) co_await rest.unpublish_checkpoint_from_tinker_path("tinker://m-1/sampler_weights/dup");
          FAIL("call " << call << " succeeded");
        } catch (const conflict_error& e) {
          CHECK(e.status() == 409);
          bodies.push_back(e.body());
          CHECK(std::string(e.what()).find("already exists") != std::string::npos);  // the body, in the message
        }
      }
    }());
    REQUIRE(bodies.size() == 4);
    CHECK(bodies[0].find("/api/v1/save_weights") != std::string::npos);
    CHECK(srv.hits["/api/v1/save_weights"] == 1);
    CHECK(srv.hits["/api/v1/save_weights_for_sampler"] == 1);
    // POST and DELETE on the same target: one request each.
    CHECK(srv.hits["/api/v1/training_runs/m-1/checkpoints/sampler_weights/dup/publish"] == 2);
  }

  TEST_CASE("a forward_backward in one chunk has its metrics reduced and checked like a merged one") {
    asio::io_context io;
    fake_server srv(io);
    std::vector<std::string> results = {
        R"({"loss_fn_output_type":"CrossEntropyLossReturn","loss_fn_outputs":[],)"
        R"("metrics":{"loss:sum":2.5,"odd:median":1.0}})",
        R"({"loss_fn_output_type":"CrossEntropyLossReturn","loss_fn_outputs":[],"metrics":{"bogus":1.0}})"};
    create_model_response created;
    created.model_id = "m-1";
    srv.route = [&](const std::string& target, const local::http_request&, local::http_response& res) {
      if (target == "/api/v1/create_model") {
        srv.submit(res, json::to_json(created));
      } else if (target == "/api/v1/forward_backward") {
        srv.submit(res, results.front());
        results.erase(results.begin());
      } else {
        return false;
      }
      return true;
    };
    client_options o;
    o.base_url = srv.base_url();
    o.api_key = "tml-key";
    o.log = [](log_level, std::string_view) {};
    service_client service(io.get_executor(), o);
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto training = co_await service.create_lora_training_client(tiny_model, {.rank = 4});
      const auto batch = one(text_datum("one chunk"));
      auto out = co_await (co_await training.forward_backward(batch, loss_fn_type::cross_entropy)).result();
      CHECK(out.metrics == std::map<std::string, double>{{"loss:sum", 2.5}});  // an unknown reduction is dropped
      std::string message;
      try {
        (void)co_await (co_await training.forward_backward(batch, loss_fn_type::cross_entropy)).result();
      } catch (const api_response_validation_error& e) {
        message = e.what();
      }
      CHECK(message.find("metrics[bogus]") != std::string::npos);
    }());
  }

  TEST_CASE("409 elsewhere is still retried as the SDK does (a passing conflict)") {
    asio::io_context io;
    int capabilities = 0;
    fake_server srv(io, [&](const std::string& target, const local::http_request&, local::http_response& res) {
      if (target != "/api/v1/get_server_capabilities") return false;
      if (++capabilities == 1)
        fake_server::answer(res, bhttp::status::conflict, "busy");
      else
        res.body() = json::to_json(get_server_capabilities_response{});
      return true;
    });
    client_options o;
    o.base_url = srv.base_url();
    o.api_key = "tml-key";
    o.retry.initial_backoff = std::chrono::milliseconds(1);
    o.log = [](log_level, std::string_view) {};
    service_client service(io.get_executor(), o);
    run_coro(io, [&]() -> asio::awaitable<void> { (void)co_await service.get_server_capabilities(); }());
    CHECK(capabilities == 2);
  }
}

TEST_SUITE("client") {
  TEST_CASE("on the wire (bodies): tags, user_metadata, project_id, LoRA flags, optimizer flag, ttl and overwrite") {
    request_log wire;
    auto eo = engine_opts();
    eo.on_request = wire.observer();
    client_fixture f(eo, [](client_options& o) {
      o.tags = {"exp-7", "nightly"};
      o.user_metadata = {{"owner", "alice"}};
      o.project_id = "proj-9";
    });
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto training = co_await f.service.create_lora_training_client(
          tiny_model, {.rank = 4, .train_mlp = false, .train_attn = true, .train_unembed = false});
      auto saved = co_await (co_await training.save_state("s", 3600, true)).result();
      (void)co_await (co_await training.save_state("t")).result();
      (void)co_await (co_await training.load_state(saved.path)).result();
      (void)co_await (co_await training.load_state_with_optimizer(saved.path)).result();
    }());
    // The JSON bodies of one route, in arrival order.
    auto bodies = [&](const std::string& route) {
      std::vector<boost::json::value> out;
      for (const auto& r : wire.snapshot())
        if (r.route == route) out.push_back(boost::json::parse(r.body));
      return out;
    };
    const auto sessions = bodies("create_session");
    REQUIRE(sessions.size() == 1);
    const auto& session = sessions[0].as_object();
    CHECK(session.at("tags") == boost::json::array{"exp-7", "nightly"});
    CHECK(session.at("user_metadata") == boost::json::object{{"owner", "alice"}});
    CHECK(session.at("project_id") == "proj-9");
    const auto models = bodies("create_model");
    REQUIRE(models.size() == 1);
    const auto& lora = models[0].at("lora_config").as_object();
    CHECK(lora.at("rank") == 4);
    CHECK(lora.at("train_mlp") == false);
    CHECK(lora.at("train_attn") == true);
    CHECK(lora.at("train_unembed") == false);
    const auto loads = bodies("load_weights");
    REQUIRE(loads.size() == 2);
    CHECK(loads[0].at("optimizer") == false);  // load_state: weights only
    CHECK(loads[1].at("optimizer") == true);   // load_state_with_optimizer
    CHECK(std::string(loads[0].at("path").as_string()).ends_with("/weights/s"));
    const auto saves = bodies("save_weights");
    REQUIRE(saves.size() == 2);
    CHECK(saves[0].at("ttl_seconds") == 3600);
    CHECK(saves[0].at("overwrite") == true);
    CHECK(saves[1].at("overwrite") == false);
    const auto* ttl = saves[1].as_object().if_contains("ttl_seconds");
    CHECK((ttl == nullptr || ttl->is_null()));  // no expiry asked for
  }
}

namespace {

/// The request log, with the time each request arrived.
struct timed_wire {
  request_log log;
  std::vector<std::chrono::steady_clock::time_point> times;  ///< parallel to log.records (under its mutex)
  timed_wire() {
    log.on_record = [this](const local::request_record&) { times.push_back(std::chrono::steady_clock::now()); };
  }
};

struct attempt {
  std::optional<std::int64_t> seq_id;
  std::string retry_count;
  std::chrono::steady_clock::time_point at;
};

/// Attempts of `route`'s requests, grouped by idempotency key, in arrival order.
std::map<std::string, std::vector<attempt>> attempts_by_key(timed_wire& wire, const std::string& route) {
  std::lock_guard lock(wire.log.mutex);
  std::map<std::string, std::vector<attempt>> out;
  for (std::size_t i = 0; i < wire.log.records.size(); ++i) {
    const auto& r = wire.log.records[i];
    if (r.route != route) continue;
    auto key = r.headers.find("x-idempotency-key");
    auto count = r.headers.find("x-stainless-retry-count");
    REQUIRE(key != r.headers.end());
    REQUIRE(count != r.headers.end());
    out[key->second].push_back({r.seq_id, count->second, wire.times.at(i)});
  }
  return out;
}

}  // namespace

TEST_SUITE("client") {
  TEST_CASE("on the wire: a retried submission keeps its idempotency key and seq_id, its retry count rises") {
    timed_wire wire;
    auto eo = engine_opts();
    eo.on_request = wire.log.observer();
    client_fixture f(eo, [](client_options& o) {
      o.retry.initial_backoff = std::chrono::milliseconds(5);
      o.retry.max_backoff = std::chrono::milliseconds(20);
    });
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
      local::fault_options faults;
      faults.fraction_500 = 0.3;
      faults.fraction_503 = 0.2;
      faults.fraction_drop = 0.2;
      faults.seed = 11;
      faults.error_routes = {"forward_backward"};
      f.engine.set_faults(faults);
      std::vector<api_future<forward_backward_output>> futures;
      for (int i = 0; i < 8; ++i)
        futures.push_back(co_await training.forward_backward(one(text_datum("retry " + std::to_string(i))),
                                                             loss_fn_type::cross_entropy));
      for (auto& fut : futures) CHECK(std::isfinite(loss_of(co_await fut.result())));
      f.engine.set_faults({});
    }());
    const auto groups = attempts_by_key(wire, "forward_backward");
    CHECK(groups.size() == 8);  // one key per submission
    std::set<std::int64_t> seqs;
    std::size_t retried = 0;
    for (const auto& [key, list] : groups) {
      REQUIRE(list.front().seq_id);
      seqs.insert(*list.front().seq_id);
      CHECK(list.front().retry_count == "0");
      for (std::size_t i = 1; i < list.size(); ++i) {
        CHECK(list[i].seq_id == list.front().seq_id);  // the same seq_id on every attempt
        // Each retry of the policy counts one up; the transport's one resend on a stale pooled
        // connection (a dropped answer on a reused socket) goes out as it was, count unchanged.
        const auto before = std::stoi(list[i - 1].retry_count), now = std::stoi(list[i].retry_count);
        CHECK((now == before || now == before + 1));
      }
      if (std::stoi(list.back().retry_count) > 0) ++retried;
    }
    CHECK(seqs.size() == 8);
    CHECK(retried > 0);  // the faults did hit (seeded: the same ones every run)
  }

  TEST_CASE("on the wire: 429 with Retry-After is waited out as the server asks, and the call succeeds") {
    timed_wire wire;
    auto eo = engine_opts();
    eo.on_request = wire.log.observer();
    client_fixture f(eo, [](client_options& o) {
      o.retry.initial_backoff = std::chrono::milliseconds(5);  // far shorter than the server's word
      o.retry.max_backoff = std::chrono::milliseconds(10);
    });
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
      local::fault_options faults;
      faults.fraction_429 = 0.5;
      faults.retry_after = std::chrono::seconds(1);
      faults.seed = 4;
      faults.error_routes = {"get_info"};
      f.engine.set_faults(faults);
      for (int i = 0; i < 4; ++i) CHECK((co_await training.get_info()).model_id == training.model_id());
      f.engine.set_faults({});
    }());
    const auto groups = attempts_by_key(wire, "get_info");
    CHECK(groups.size() == 4);
    std::size_t refused = 0;
    for (const auto& [key, list] : groups)
      for (std::size_t i = 1; i < list.size(); ++i) {
        ++refused;
        CHECK(list[i].retry_count == std::to_string(i));
        CHECK(list[i].at - list[i - 1].at >= std::chrono::milliseconds(900));  // Retry-After: 1, not 5 ms
      }
    CHECK(refused > 0);
  }

  TEST_CASE("on the wire: default_headers go with every request, polls and REST included") {
    request_log wire;
    auto eo = engine_opts();
    eo.on_request = wire.observer();
    client_fixture f(eo, [](client_options& o) { o.default_headers = {{"X-Trace-Tag", "trace-42"}}; });
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
      (void)co_await (co_await training.forward(one(text_datum("hdr")), loss_fn_type::cross_entropy)).result();
      auto saved = co_await (co_await training.save_state("hdr")).result();
      auto sampler = co_await training.save_weights_and_get_sampling_client();
      const auto prompt = tokens({65, 66});  // (outside co_await: see one())
      (void)co_await sampler.sample(prompt, 1, sampling_params(2));
      auto rest = f.service.create_rest_client();
      (void)co_await rest.list_training_runs();
      (void)co_await rest.get_checkpoint_archive_url_from_tinker_path(saved.path);
    }());
    std::set<std::string> routes;
    for (const auto& r : wire.snapshot()) {
      routes.insert(r.route);
      auto h = r.headers.find("x-trace-tag");
      CHECK_MESSAGE((h != r.headers.end() && h->second == "trace-42"), r.route);
    }
    for (const char* route : {"create_session", "create_model", "forward_backward", "retrieve_future", "asample",
                              "list_training_runs", "checkpoint_archive"})
      CHECK_MESSAGE(routes.contains(route), std::string(route));
  }

  TEST_CASE("sample() with include_prompt_logprobs and topk_prompt_logprobs returns both, one row per prompt token") {
    client_fixture f;
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto sampler = co_await f.service.create_base_model_sampling_client(tiny_model);
      const auto prompt = tokens({256, 72, 105, 33});
      auto resp = co_await sampler.sample(prompt, 1, sampling_params(2), true, 3);
      REQUIRE(resp.prompt_logprobs);
      REQUIRE(resp.prompt_logprobs->size() == 4);
      CHECK(std::isnan((*resp.prompt_logprobs)[0]));  // nothing predicts the first token
      for (std::size_t i = 1; i < 4; ++i) CHECK((*resp.prompt_logprobs)[i] <= 0);
      REQUIRE(resp.topk_prompt_logprobs);
      CHECK(resp.topk_prompt_logprobs->k == 3);
      CHECK(resp.topk_prompt_logprobs->length == 4);
      const auto row = resp.topk_prompt_logprobs->row(2);
      REQUIRE(row.size() == 3);
      CHECK(row[0].second >= row[1].second);  // best first
      CHECK(row[1].second >= row[2].second);
      // Without them asked for, neither comes back.
      auto plain = co_await sampler.sample(prompt, 1, sampling_params(2));
      CHECK(!plain.prompt_logprobs);
      CHECK(!plain.topk_prompt_logprobs);
    }());
  }
}
