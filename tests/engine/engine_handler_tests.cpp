// The engine's handlers and request pipeline without sockets: an engine_core on an io_context this
// test runs, requests built as http_request values and given to the pipeline (detail::serve) or
// to a handler directly. What goes over the wire is the engine tests' job; these check the route
// table, the pipeline's order (faults, authentication, expiry) and handler logic.
#include "common/run_coro.hpp"

#include <tinker/json.hpp>
#include <tinker/local/detail/dispatch.hpp>
#include <tinker/local/detail/engine_core.hpp>
#include <tinker/local/detail/routing.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <set>
#include <string>

using namespace tinker;
using namespace tinker::local::detail;
using boost::beast::http::verb;

namespace {

constexpr const char* api_key = "tml-handler-test";
constexpr const char* tiny_model = "tinker-local/byte-lm-tiny";

local::engine_options core_options() {
  local::engine_options o;
  o.compute_threads = 1;
  o.long_poll_hold = std::chrono::milliseconds(2000);
  return o;
}

local::http_request request(verb method, const std::string& target, std::string body = {}, const char* key = api_key) {
  local::http_request req{method, target, 11};
  req.set(boost::beast::http::field::host, "engine.test:1234");
  if (key) req.set("X-API-Key", key);
  if (!body.empty()) req.set(boost::beast::http::field::content_type, "application/json");
  req.body() = std::move(body);
  req.prepare_payload();
  return req;
}

std::string detail_of(const local::http_response& res) {
  return std::string(boost::json::parse(res.body()).as_object().at("detail").as_string());
}

/// An engine core on an io_context the test runs; no server, no sockets.
struct core_fixture {
  boost::asio::io_context io;
  std::shared_ptr<engine_core> core;
  std::string tenant;

  explicit core_fixture(local::engine_options o = core_options())
      : core(std::make_shared<engine_core>(io.get_executor(), std::move(o))),
        tenant(*core->tenants.tenant_of_key(api_key)) {}

  /// The pipeline's answer to `req` (nullopt: the connection is dropped).
  std::optional<local::http_response> serve(local::http_request& req) {
    return tinker::test::run_coro(io, tinker::local::detail::serve(*core, req));
  }
  local::http_response answer(local::http_request req) {
    auto res = serve(req);
    REQUIRE(res);
    return std::move(*res);
  }

  /// Runs the engine until the future `request_id` has finished; returns it.
  std::shared_ptr<future_entry> wait(const std::string& request_id) {
    auto f = core->futures.find(request_id);
    REQUIRE(f);
    auto until_finished = [&]() -> boost::asio::awaitable<void> {
      while (!f->finished()) co_await f->waiters.wait_until(std::chrono::steady_clock::now() + std::chrono::hours(1));
    };
    tinker::test::run_coro(io, until_finished());
    return f;
  }

  std::string create_session() {
    auto res = answer(request(verb::post, "/api/v1/create_session", json::to_json(create_session_request{})));
    REQUIRE(res.result_int() == 200);
    return json::from_json<create_session_response>(res.body()).session_id;
  }

  std::string create_model(const std::string& session) {
    const create_model_request req{session, 0, tiny_model, std::nullopt, lora_config{4, 7, true, true, true}};
    auto res = answer(request(verb::post, "/api/v1/create_model", json::to_json(req)));
    REQUIRE(res.result_int() == 200);
    const auto handle = json::from_json<untyped_api_future>(res.body());
    CHECK(wait(handle.request_id)->state == future_entry::status::done);
    return *handle.model_id;
  }
};

}  // namespace

TEST_SUITE("engine handlers") {
  TEST_CASE("the route table names each route once and gives each a handler") {
    std::set<std::string_view> names;
    for (const auto& route : route_table()) {
      CAPTURE(route.name);
      CHECK((route.handler != nullptr));
      CHECK(names.insert(route.name).second);
      CHECK(route.pattern.front() == '/');
    }
    const auto target = parsed_target::parse("/api/v1/training_runs/run-1/checkpoints/weights/a/publish");
    const auto* publish = find_route(verb::post, target);
    const auto* unpublish = find_route(verb::delete_, target);
    REQUIRE(publish);
    REQUIRE(unpublish);
    CHECK(publish->name == "publish_checkpoint");
    CHECK(unpublish->name == "unpublish_checkpoint");
    CHECK((publish->handler != unpublish->handler));
    CHECK(find_route(verb::get, parsed_target::parse("/downloads/traces/s.json"))->name == "trace_download");
    CHECK(find_route(verb::get, parsed_target::parse("/downloads/r/weights/a.tar.gz"))->name == "download");
    CHECK_FALSE(find_route(verb::put, parsed_target::parse("/api/v1/healthz")));
  }

  TEST_CASE("a request reaches its route's handler through the pipeline, counted under the route's name") {
    core_fixture f;
    const auto session = f.create_session();
    const auto* s = f.core->sessions.find(session);
    REQUIRE(s);
    CHECK(s->record.owner == f.tenant);
    CHECK(f.core->requests.route_count("create_session") == 1);

    auto res = f.answer(request(verb::get, "/api/v1/sessions/" + session));
    CHECK(res.result_int() == 200);
    CHECK(json::from_json<get_session_response>(res.body()).training_run_ids.empty());
    CHECK(res[boost::beast::http::field::server] == "tinker-local");
    CHECK(f.core->requests.route_count("get_session") == 1);
  }

  TEST_CASE("the pipeline turns refusals into detail answers: no route, no key, a bad path, a bad body") {
    core_fixture f;
    auto unknown = f.answer(request(verb::get, "/api/v1/no/such/thing"));
    CHECK(unknown.result_int() == 404);
    CHECK(detail_of(unknown) == "no such endpoint: GET /api/v1/no/such/thing");
    CHECK(f.core->requests.route_count("") == 1);  // counted, under no name

    auto keyless = f.answer(request(verb::post, "/api/v1/create_session", "{}", nullptr));
    CHECK(keyless.result_int() == 401);
    CHECK(f.core->sessions.size() == 0);  // the handler never ran

    auto bad_path = f.answer(request(verb::get, "/api/v1/sessions/%zz"));
    CHECK(bad_path.result_int() == 400);
    CHECK(detail_of(bad_path).find("invalid request path") != std::string::npos);

    auto bad_body = f.answer(request(verb::post, "/api/v1/create_session", "{\"tags\": 3}"));
    CHECK(bad_body.result_int() == 400);
    CHECK(f.core->sessions.size() == 0);
    CHECK(f.answer(request(verb::get, "/api/v1/healthz", {}, nullptr)).result_int() == 200);  // needs no key
  }

  TEST_CASE("handlers run on a request context directly: a session is created, kept alive and finished") {
    core_fixture f;
    auto create = request(verb::post, "/api/v1/create_session", "{\"sdk_version\": \"0.1\", \"tags\": [\"t\"]}");
    auto create_ctx = request_context::of(create, "create_session", f.tenant);
    const auto created = endpoints::create_session(*f.core, create_ctx);
    REQUIRE(created.result_int() == 200);
    const auto id = json::from_json<create_session_response>(created.body()).session_id;
    CHECK(f.core->sessions.find(id)->record.tags == std::vector<std::string>{"t"});
    CHECK(f.core->audit.query(f.tenant, audit_log::filter::all).at(0).event == "session_create");

    auto beat = request(verb::post, "/api/v1/session_heartbeat", json::to_json(session_heartbeat_request{id}));
    auto beat_ctx = request_context::of(beat, "session_heartbeat", f.tenant);
    CHECK(endpoints::session_heartbeat(*f.core, beat_ctx).result_int() == 200);
    CHECK(f.core->sessions.find(id)->heartbeats == 1);
    auto strangers_ctx = request_context::of(beat, "session_heartbeat", "tenant-someone-else");
    CHECK_THROWS_AS(endpoints::session_heartbeat(*f.core, strangers_ctx), http_error);

    auto finish = request(verb::post, "/api/v1/sessions/" + id + "/finish", "{\"reason\": \"done\"}");
    auto finish_ctx = request_context::of(finish, "finish_session", f.tenant);
    CHECK(endpoints::finish_session(*f.core, finish_ctx).result_int() == 200);
    try {
      (void)endpoints::session_heartbeat(*f.core, beat_ctx);
      FAIL("a heartbeat on a finished session was accepted");
    } catch (const http_error& e) {
      CHECK(e.status() == 410);
    }
  }

  TEST_CASE("a training request refused for good uses up its seq_id, so the model's next operation runs") {
    core_fixture f;
    const auto model = f.create_model(f.create_session());
    adam_params bad;
    bad.learning_rate = -1;
    auto refused =
        f.answer(request(verb::post, "/api/v1/optim_step", json::to_json(optim_step_request{bad, model, 1})));
    CHECK(refused.result_int() == 400);
    CHECK(detail_of(refused).find("adam_params.learning_rate") != std::string::npos);

    // Without the used-up seq_id 1, seq_id 2 would wait for it forever.
    auto next = f.answer(request(verb::post, "/api/v1/optim_step", json::to_json(optim_step_request{{}, model, 2})));
    REQUIRE(next.result_int() == 200);
    const auto done = f.wait(json::from_json<untyped_api_future>(next.body()).request_id);
    CHECK(done->state == future_entry::status::done);
    CHECK(f.core->models.at(model).queue.next_seq() == 3);

    auto again = f.answer(request(verb::post, "/api/v1/optim_step", json::to_json(optim_step_request{{}, model, 1})));
    CHECK(again.result_int() == 400);
    CHECK(detail_of(again).find("already ran") != std::string::npos);
  }

  TEST_CASE("fault injection comes before authentication, spares health checks, and can drop a request") {
    core_fixture f;
    local::fault_options limited;
    limited.fraction_429 = 1;
    limited.retry_after = std::chrono::seconds(3);
    f.core->set_faults(limited);
    auto res = f.answer(request(verb::post, "/api/v1/create_session", "{}", nullptr));
    CHECK(res.result_int() == 429);
    CHECK(res[boost::beast::http::field::retry_after] == "3");
    CHECK(f.answer(request(verb::get, "/api/v1/healthz")).result_int() == 200);

    local::fault_options dropping;
    dropping.fraction_drop = 1;
    f.core->set_faults(dropping);
    auto req = request(verb::post, "/api/v1/create_session", "{}");
    CHECK_FALSE(f.serve(req));
    CHECK(f.core->sessions.size() == 0);
    f.core->set_faults({});
    CHECK(f.answer(request(verb::post, "/api/v1/create_session", "{}")).result_int() == 200);
  }

  TEST_CASE("a checkpoint past its TTL is deleted before the request that would list it") {
    core_fixture f;
    checkpoint_record c;
    c.run_id = "run-1";
    c.name = "brief";
    c.owner = f.tenant;
    c.time = f.core->now_ts() - std::chrono::seconds(10);
    c.expires_at = f.core->now_ts() - std::chrono::seconds(1);
    f.core->checkpoints.add(c);
    auto res = f.answer(request(verb::get, "/api/v1/checkpoints"));
    REQUIRE(res.result_int() == 200);
    CHECK(json::from_json<checkpoints_list_response>(res.body()).checkpoints.empty());
    CHECK_FALSE(f.core->checkpoints.contains(c.path()));
    const auto events = f.core->audit.query(f.tenant, audit_log::filter::checkpoints);
    REQUIRE(events.size() == 1);
    CHECK(events[0].event == "checkpoint_delete");
    CHECK(events[0].purpose == "ttl_expired");
  }

  TEST_CASE("signed URLs use the Host the client reached, and a trace export's URL opens without a key") {
    core_fixture f;
    const auto session = f.create_session();
    auto res = f.answer(request(verb::get, "/api/v1/sessions/" + session + "/trace_export"));
    REQUIRE(res.result_int() == 200);
    const auto url = json::from_json<trace_export_response>(res.body()).url;
    REQUIRE(url);
    const std::string base = "http://engine.test:1234";
    REQUIRE(url->rfind(base, 0) == 0);
    auto trace = f.answer(request(verb::get, url->substr(base.size()), {}, nullptr));
    CHECK(trace.result_int() == 200);
    CHECK(boost::json::parse(trace.body()).as_object().at("session_id").as_string() == session);
    auto forged = f.answer(request(verb::get, url->substr(base.size()) + "0", {}, nullptr));
    CHECK(forged.result_int() == 403);
  }
}
