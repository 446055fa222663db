// The client's decision logic without sockets: the call state machine (status policy, backoff,
// budgets, billing pauses, back-pressure, the 415 fallback), the poll state machine (docs/protocol.md
// §5.3 plus our backoff floor), chunk planning and metric reduction (§7.3), retry delays and
// Retry-After parsing, the seq_id turn gate, the awaitable event under the client's waits, and
// options from the environment.
#include "common/run_coro.hpp"

#include <tinker/client/detail/backoff.hpp>
#include <tinker/client/detail/call_fsm.hpp>
#include <tinker/client/detail/chunking.hpp>
#include <tinker/client/detail/poll_fsm.hpp>
#include <tinker/client/detail/turn_gate.hpp>
#include <tinker/client/options.hpp>
#include <tinker/client/service_client.hpp>
#include <tinker/detail/async_event.hpp>
#include <tinker/detail/base64.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/system_error.hpp>
#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using namespace tinker;
using tinker::detail::poll_decision;
using tinker::detail::poll_fsm;
using tinker::detail::seconds_d;
namespace asio = boost::asio;

namespace {

using kind = poll_decision::kind;
constexpr seconds_d held{1.0};  // a poll the server held (a long-poll)
constexpr seconds_d instant{0.001};

/// A steady clock the test moves by hand.
struct manual_clock {
  std::chrono::steady_clock::time_point now = std::chrono::steady_clock::time_point() + std::chrono::hours(1);
  poll_fsm::clock_fn fn() {
    return [this] { return now; };
  }
};

std::string try_again(const char* state = "active") {
  return std::string(R"({"type":"try_again","request_id":"r1","queue_state":")") + state + "\"}";
}

datum tokens_datum(std::size_t n) {
  datum d;
  d.model_input = model_input::from_ints(std::vector<token_id>(n, 7));
  d.loss_fn_inputs.emplace("target_tokens", tensor_data(std::vector<std::int64_t>(n, 8)));
  d.loss_fn_inputs.emplace("weights", tensor_data(std::vector<float>(n, 1.0f)));
  return d;
}

/// Sets an environment variable for one scope (and restores it).
struct scoped_env {
  std::string name;
  std::optional<std::string> old;
  scoped_env(std::string n, const char* value) : name(std::move(n)) {
    if (const char* v = std::getenv(name.c_str())) old = v;
    if (value)
      ::setenv(name.c_str(), value, 1);
    else
      ::unsetenv(name.c_str());
  }
  ~scoped_env() {
    if (old)
      ::setenv(name.c_str(), old->c_str(), 1);
    else
      ::unsetenv(name.c_str());
  }
};

}  // namespace

TEST_SUITE("client logic") {
  TEST_CASE("poll_fsm: 200 answers are classified in the SDK's order") {
    poll_fsm fsm;
    auto d = fsm.on_response(200, "application/x-protobuf", std::string("\x0a\x00", 2), held);
    CHECK(d.what == kind::done_protobuf);
    CHECK(d.payload == std::string("\x0a\x00", 2));
    d = fsm.on_response(200, "application/json", try_again("paused_capacity"), held);
    CHECK(d.what == kind::poll_again);
    CHECK(d.delay.count() == 0);  // held: poll again at once
    REQUIRE(d.queue);
    CHECK(d.queue->queue_state == queue_state::paused_capacity);
    d = fsm.on_response(200, "application/json", R"({"status":"complete_metadata","response_payload_size":10})", held);
    CHECK(d.what == kind::fetch_payload);
    d = fsm.on_response(200, "application/json", R"({"error":"bad tokens","category":"user"})", held);
    REQUIRE(d.what == kind::failed);
    CHECK(d.failure.error == "bad tokens");
    CHECK(d.failure.category == error_category::user);
    d = fsm.on_response(200, "application/json", R"({"metrics":{}})", held);
    CHECK(d.what == kind::done_json);
    d = fsm.on_response(200, "application/json", "{not json", held);
    REQUIRE(d.what == kind::error);
    CHECK_THROWS_AS(std::rethrow_exception(d.error), api_response_validation_error);
  }

  TEST_CASE("poll_fsm: a try_again that was not held gets a growing delay (no tight loop), a held one resets it") {
    poll_fsm fsm;
    std::vector<double> delays;
    for (int i = 0; i < 8; ++i)
      delays.push_back(fsm.on_response(200, "application/json", try_again(), instant).delay.count());
    CHECK(delays[0] == doctest::Approx(0.05));
    CHECK(delays[1] == doctest::Approx(0.1));
    CHECK(delays[2] == doctest::Approx(0.2));
    CHECK(delays.back() == doctest::Approx(2.0));  // capped by max_fast_retry_delay
    CHECK(fsm.on_response(200, "application/json", try_again(), held).delay.count() == 0);
    CHECK(fsm.on_response(200, "application/json", try_again(), instant).delay.count() == doctest::Approx(0.05));
  }

  TEST_CASE("poll_fsm: 5xx and 408 are retried with the backoff floor, 408 carries the queue state") {
    poll_fsm fsm;
    auto d = fsm.on_response(503, "text/plain", "unavailable", instant);
    CHECK(d.what == kind::poll_again);
    CHECK(d.delay.count() == doctest::Approx(0.05));
    d = fsm.on_response(500, "text/plain", "oops", instant);
    CHECK(d.delay.count() == doctest::Approx(0.1));
    d = fsm.on_response(408, "application/json",
                        R"({"queue_state":"paused_rate_limit","queue_state_reason":"slow down"})", held);
    CHECK(d.what == kind::poll_again);
    CHECK(d.delay.count() == 0);  // a held 408 is a legacy try_again
    REQUIRE(d.queue);
    CHECK(d.queue->queue_state == queue_state::paused_rate_limit);
    CHECK(d.queue->queue_state_reason == "slow down");
  }

  TEST_CASE("poll_fsm: 429 and connection errors back off min(2^n, 30) s, any other answer resets n") {
    poll_fsm fsm;
    std::vector<double> delays;
    for (int i = 0; i < 7; ++i)
      delays.push_back((i % 2 ? fsm.on_transport_error(nullptr) : fsm.on_response(429, "", "", instant)).delay.count());
    CHECK(delays == std::vector<double>{1, 2, 4, 8, 16, 30, 30});
    CHECK(fsm.on_response(200, "application/json", try_again(), held).delay.count() == 0);
    CHECK(fsm.on_response(429, "", "", instant).delay.count() == 1);
    // Retry-After wins over the exponent.
    CHECK(fsm.on_response(429, "", "", instant, seconds_d(7)).delay.count() == 7);
  }

  TEST_CASE("poll_fsm: three spurious 400s are retried, the fourth fails, a 408 with a body restores the budget") {
    poll_fsm fsm;
    for (int i = 0; i < 3; ++i)
      CHECK(fsm.on_response(400, "application/json", R"({"detail":"?"})", instant).what == kind::poll_again);
    auto d = fsm.on_response(400, "application/json", R"({"detail":"really bad"})", instant);
    REQUIRE(d.what == kind::error);
    CHECK_THROWS_AS(std::rethrow_exception(d.error), bad_request_error);

    poll_fsm again;
    for (int i = 0; i < 3; ++i) (void)again.on_response(400, "application/json", "{}", instant);
    (void)again.on_response(408, "application/json", R"({"queue_state":"active"})", held);
    for (int i = 0; i < 3; ++i)
      CHECK(again.on_response(400, "application/json", "{}", instant).what == kind::poll_again);
    CHECK(again.on_response(400, "application/json", "{}", instant).what == kind::error);
  }

  TEST_CASE("poll_fsm: 402 pauses in 5 s steps until the billing window has passed, then fails") {
    manual_clock clock;
    detail::billing_pause billing(clock.fn());
    billing.set_window(seconds_d(60));
    detail::poll_policy policy;
    policy.billing = &billing;
    poll_fsm fsm(policy);
    for (int i = 0; i < 12; ++i) {
      auto d = fsm.on_response(402, "application/json", R"({"detail":"billing"})", instant);
      REQUIRE(d.what == kind::poll_again);
      CHECK(d.delay.count() == 5);
      clock.now += std::chrono::seconds(5);
    }
    auto d = fsm.on_response(402, "application/json", R"({"detail":"billing"})", instant);
    REQUIRE(d.what == kind::error);
    CHECK_THROWS_AS(std::rethrow_exception(d.error), api_status_error);
    // Other answers in between do not end an incident; five quiet minutes do.
    detail::billing_pause fresh(clock.fn());
    fresh.set_window(seconds_d(60));
    policy.billing = &fresh;
    poll_fsm again(policy);
    CHECK(again.on_response(402, "application/json", "{}", instant).what == kind::poll_again);
    clock.now += std::chrono::seconds(50);
    (void)again.on_response(200, "application/json", try_again(), held);
    clock.now += std::chrono::seconds(20);
    CHECK(again.on_response(402, "application/json", "{}", instant).what == kind::error);  // 70 s into the incident
    clock.now += std::chrono::minutes(6);
    CHECK(again.on_response(402, "application/json", "{}", instant).what == kind::poll_again);  // a new incident
  }

  TEST_CASE("poll_fsm: 410 asks for a resubmission, other 4xx are fatal with their type") {
    poll_fsm fsm;
    auto d = fsm.on_response(410, "application/json", R"({"detail":"gone"})", instant);
    CHECK(d.what == kind::resubmit);
    CHECK(d.error != nullptr);
    d = fsm.on_response(404, "application/json", R"({"detail":"no such future"})", instant);
    REQUIRE(d.what == kind::error);
    CHECK_THROWS_AS(std::rethrow_exception(d.error), not_found_error);
    d = poll_fsm().on_response(401, "application/json", R"({"detail":"who are you"})", instant);
    CHECK_THROWS_AS(std::rethrow_exception(d.error), authentication_error);
  }

  // ----- call_fsm -----------------------------------------------------------------------------

  struct call_env {
    manual_clock clock;
    detail::billing_pause billing{clock.fn()};
    std::mt19937_64 rng{1};
    std::vector<std::string> secrets{"tml-secret-key"};
    detail::call_policy policy;
    call_env() {
      policy.jitter = 0;  // delays exact
      policy.max_retries = 3;
    }
    detail::call_fsm fsm() { return detail::call_fsm(policy, "POST", "/api/v1/x", billing, rng, secrets, clock.fn()); }
  };
  using call_kind = detail::call_decision::kind;

  TEST_CASE("call_fsm: retryable answers and connection errors retry with the backoff, then the last failure") {
    call_env env;
    auto fsm = env.fsm();
    auto d = fsm.on_response(500, "{}");
    REQUIRE(d.what == call_kind::retry);
    CHECK(d.delay.count() == 0.5);
    d = fsm.on_transport_error(std::make_exception_ptr(api_connection_error("reset")));
    REQUIRE(d.what == call_kind::retry);
    CHECK(d.delay.count() == 1.0);
    d = fsm.on_response(408, "{}");
    REQUIRE(d.what == call_kind::retry);
    CHECK(d.delay.count() == 2.0);
    CHECK(fsm.retries() == 3);
    d = fsm.on_response(429, R"({"detail":"slow down, tml-secret-key"})");  // the fourth: retries are used up
    REQUIRE(d.what == call_kind::fail);
    CHECK_THROWS_AS(std::rethrow_exception(d.error), rate_limit_error);
    std::string message;
    try {
      std::rethrow_exception(d.error);
    } catch (const std::exception& e) {
      message = e.what();
    }
    CHECK(message.find("POST /api/v1/x failed with HTTP 429") != std::string::npos);
    CHECK(message.find("tml-secret-key") == std::string::npos);  // redacted
    // With jitter the delay only shortens.
    env.policy.jitter = 0.25;
    auto jittered = env.fsm();
    const auto j = jittered.on_response(503, "{}");
    CHECK(j.delay.count() <= 0.5);
    CHECK(j.delay.count() >= 0.375);
  }

  TEST_CASE("call_fsm: Retry-After and x-should-retry win, an empty 400 is retried, 409 is final when asked") {
    call_env env;
    auto fsm = env.fsm();
    CHECK(fsm.on_response(503, "{}", std::nullopt, seconds_d(7)).delay.count() == 7);
    CHECK(fsm.on_response(500, "{}", false).what == call_kind::fail);  // the server says: do not retry
    auto again = env.fsm();
    CHECK(again.on_response(404, "{}", true).what == call_kind::retry);  // ... or: do retry
    CHECK(again.on_response(400, "").what == call_kind::retry);          // a proxy's empty 400
    auto bad = again.on_response(400, R"({"detail":"bad"})");
    REQUIRE(bad.what == call_kind::fail);
    CHECK_THROWS_AS(std::rethrow_exception(bad.error), bad_request_error);
    CHECK(env.fsm().on_response(409, "{}").what == call_kind::retry);
    env.policy.conflict_is_final = true;
    auto conflict = env.fsm().on_response(409, "{}", true);  // final, whatever x-should-retry says
    REQUIRE(conflict.what == call_kind::fail);
    CHECK_THROWS_AS(std::rethrow_exception(conflict.error), conflict_error);
  }

  TEST_CASE("call_fsm: the time budget ends retries, billing pauses are not counted against it") {
    call_env env;
    env.policy.max_retries = 100;
    env.policy.total_budget = seconds_d(10);
    auto fsm = env.fsm();
    CHECK(fsm.on_response(500, "{}").what == call_kind::retry);
    env.clock.now += std::chrono::seconds(11);
    CHECK(fsm.on_response(500, "{}").what == call_kind::fail);
    // A 402 while the server's billing window lasts: retried every billing_interval, uncounted,
    // and the time waited is not retry time.
    env.billing.set_window(seconds_d(60));
    auto billed = env.fsm();
    for (int i = 0; i < 10; ++i) {
      auto d = billed.on_response(402, "{}");
      REQUIRE(d.what == call_kind::retry);
      CHECK(d.billing);
      CHECK(d.delay.count() == 5);
      env.clock.now += std::chrono::seconds(5);
    }
    CHECK(billed.retries() == 0);
    CHECK(billed.on_response(500, "{}").what == call_kind::retry);  // 50 s passed, all of it billing
    env.clock.now += std::chrono::seconds(20);                      // the window (60 s) has passed
    auto over = billed.on_response(402, "{}");
    REQUIRE(over.what == call_kind::fail);
    CHECK_THROWS_AS(std::rethrow_exception(over.error), api_status_error);
  }

  TEST_CASE("call_fsm: back-pressure and the 415 fallback are values, and without retries every failure is final") {
    call_env env;
    env.policy.retry = false;
    env.policy.back_pressure = true;
    auto fsm = env.fsm();
    CHECK(fsm.on_response(429, "{}").what == call_kind::back_off);
    auto billing = fsm.on_response(402, "{}");  // a 402 in a billing pause: the same back-off
    CHECK(billing.what == call_kind::back_off);
    CHECK(billing.billing);
    CHECK(fsm.on_response(503, "{}").what == call_kind::fail);
    CHECK(fsm.on_transport_error(std::make_exception_ptr(api_connection_error("down"))).what == call_kind::fail);
    call_env protobuf;
    protobuf.policy.json_fallback = true;
    CHECK(protobuf.fsm().on_response(415, "{}").what == call_kind::use_json);
    call_env plain;
    auto unsupported = plain.fsm().on_response(415, "{}");
    REQUIRE(unsupported.what == call_kind::fail);
    CHECK_THROWS_AS(std::rethrow_exception(unsupported.error), api_status_error);
  }

  TEST_CASE("plan_chunks: datum and byte limits, greedy and in order, an oversized datum alone") {
    std::vector<datum> data;
    for (int i = 0; i < 5; ++i) data.push_back(tokens_datum(10));  // 10*4 + 10*8 + 10*4 = 160 bytes each
    CHECK(detail::estimated_bytes(data[0]) == 160);
    using plan = std::vector<std::pair<std::size_t, std::size_t>>;
    CHECK(detail::plan_chunks(data, 2, 1'000'000) == plan{{0, 2}, {2, 4}, {4, 5}});
    CHECK(detail::plan_chunks(data, 1024, 320) == plan{{0, 2}, {2, 4}, {4, 5}});
    CHECK(detail::plan_chunks(data, 1024, 319) == plan{{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}});
    data.insert(data.begin() + 1, tokens_datum(1000));  // 16000 bytes: over the budget by itself
    CHECK(detail::plan_chunks(data, 1024, 1000) == plan{{0, 1}, {1, 2}, {2, 6}});
    CHECK(detail::plan_chunks(std::vector<datum>{}, 1024, 1000).empty());
  }

  TEST_CASE("combine_metrics: every reduction, weighted by datums, partial and malformed keys") {
    const std::vector<std::map<std::string, double>> chunks{
        {{"loss:sum", 1},
         {"acc:mean", 0.5},
         {"lo:min", 3},
         {"hi:max", 3},
         {"s:slack", 4},
         {"h:hash_unordered", 1},
         {"u:unique", 10},
         {"only:sum", 1},
         {"x:median", 1}},
        {{"loss:sum", 2},
         {"acc:mean", 1.0},
         {"lo:min", 1},
         {"hi:max", 9},
         {"s:slack", 1},
         {"h:hash_unordered", 2},
         {"u:unique", 20},
         {"x:median", 2}},
        {{"loss:sum", 3},
         {"acc:mean", 0.0},
         {"lo:min", 2},
         {"hi:max", 1},
         {"s:slack", 1},
         {"h:hash_unordered", 3},
         {"u:unique", 30},
         {"x:median", 3}},
    };
    const std::vector<std::size_t> weights{1, 2, 1};
    auto m = detail::combine_metrics(chunks, weights);
    CHECK(m.at("loss:sum") == 6);
    CHECK(m.at("acc:mean") == doctest::Approx((0.5 * 1 + 1.0 * 2 + 0.0 * 1) / 4));
    CHECK(m.at("lo:min") == 1);
    CHECK(m.at("hi:max") == 9);
    CHECK(m.at("s:slack") == doctest::Approx(4 - (4.0 * 1 + 1 * 2 + 1 * 1) / 4));
    CHECK(m.at("u:unique") == 10);
    CHECK(m.at("u:unique_2") == 20);
    CHECK(m.at("u:unique_3") == 30);
    CHECK_FALSE(m.contains("only:sum"));  // not in every chunk
    CHECK_FALSE(m.contains("x:median"));  // unknown reduction
    // hash_unordered does not depend on the order of the chunks, but on the values.
    auto reordered = chunks;
    std::swap(reordered[0], reordered[2]);
    CHECK(detail::combine_metrics(reordered, weights).at("h:hash_unordered") == m.at("h:hash_unordered"));
    auto changed = chunks;
    changed[1]["h:hash_unordered"] = 5;
    CHECK(detail::combine_metrics(changed, weights).at("h:hash_unordered") != m.at("h:hash_unordered"));
    // A key without exactly one ':' breaks the SDK: we refuse it, naming it.
    CHECK_THROWS_WITH_AS(detail::combine_metrics({{{"loss", 1}}}, {1}), doctest::Contains("metrics[loss]"),
                         protocol_error);
    CHECK_THROWS_AS(detail::combine_metrics({{{"a:b:sum", 1}}}, {1}), protocol_error);
  }

  TEST_CASE("merge_outputs: outputs concatenated in chunk order, metrics combined") {
    std::vector<forward_backward_output> parts(2);
    parts[0].loss_fn_output_type = "ArrayRecord";
    parts[0].loss_fn_outputs.resize(2);
    parts[0].loss_fn_outputs[0]["logprobs"] = tensor_data(std::vector<float>{-1});
    parts[0].loss_fn_outputs[1]["logprobs"] = tensor_data(std::vector<float>{-2});
    parts[0].metrics = {{"loss:sum", 3}};
    parts[1].loss_fn_outputs.resize(1);
    parts[1].loss_fn_outputs[0]["logprobs"] = tensor_data(std::vector<float>{-3});
    parts[1].metrics = {{"loss:sum", 3}};
    auto out = detail::merge_outputs(parts);
    CHECK(out.loss_fn_output_type == "ArrayRecord");
    REQUIRE(out.loss_fn_outputs.size() == 3);
    CHECK(out.loss_fn_outputs[2].at("logprobs").to_dense<float>() == std::vector<float>{-3});
    CHECK(out.metrics.at("loss:sum") == 6);
  }

  TEST_CASE("backoff_delay doubles to its cap and jitter only shortens, Retry-After within 0 to 60 s") {
    std::mt19937_64 rng(1);
    for (int attempt = 0; attempt < 8; ++attempt) {
      const double raw = std::min(0.5 * std::pow(2.0, attempt), 10.0);
      const auto d = detail::backoff_delay(attempt, seconds_d(0.5), seconds_d(10), 0.25, rng).count();
      CHECK(d <= raw);
      CHECK(d >= 0.75 * raw);
    }
    CHECK(detail::backoff_delay(3, seconds_d(0.5), seconds_d(10), 0.0, rng).count() == 4.0);
    CHECK(detail::parse_retry_after("1500", "")->count() == doctest::Approx(1.5));
    CHECK(detail::parse_retry_after("", "2")->count() == 2);
    CHECK(detail::parse_retry_after("250", "9")->count() == doctest::Approx(0.25));  // the ms header wins
    CHECK(detail::parse_retry_after("", " 0.5 ")->count() == 0.5);
    CHECK_FALSE(detail::parse_retry_after("", "0"));
    CHECK_FALSE(detail::parse_retry_after("", "61"));
    CHECK_FALSE(detail::parse_retry_after("", "Wed, 21 Oct 2015 07:28:00 GMT"));
    CHECK_FALSE(detail::parse_retry_after("nan", ""));
  }

  TEST_CASE("turn_gate: callers post in reserved order whatever order they arrive in, a cancelled waiter leaves") {
    asio::io_context io;
    detail::turn_gate gate;
    std::vector<std::int64_t> order;
    auto caller = [&](std::int64_t seq) -> asio::awaitable<void> {
      co_await gate.wait_turn(seq);
      order.push_back(seq);
      gate.release();
    };
    const auto a = gate.reserve(), b = gate.reserve(2), c = gate.reserve();
    CHECK(a == 1);
    CHECK(b == 2);
    CHECK(c == 4);
    asio::co_spawn(io, caller(c), asio::detached);
    asio::cancellation_signal cancel_b;
    bool b_cancelled = false;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          co_await gate.wait_turn(b);
          order.push_back(b);
          gate.release(2);
        },
        asio::bind_cancellation_slot(cancel_b.slot(), [&](std::exception_ptr e) { b_cancelled = e != nullptr; }));
    io.poll();
    CHECK(order.empty());  // nobody has the turn yet: 1 has not been posted
    cancel_b.emit(asio::cancellation_type::terminal);
    io.poll();
    CHECK(b_cancelled);  // a cancelled wait throws (the caller must then give its numbers back)
    asio::co_spawn(io, caller(a), asio::detached);
    io.poll();
    CHECK(order == std::vector<std::int64_t>{1});  // 2 and 3 were never released: 4 waits
    gate.release(2);
    io.poll();
    CHECK(order == std::vector<std::int64_t>{1, 4});
  }

  // async_event: every waiter is a coroutine on a real io_context, driven with poll() (whatever is
  // ready runs, nobody sleeps) or run() (until every coroutine is done).

  TEST_CASE("async_event: notify_one wakes the oldest waiter, notify wakes one by name") {
    asio::io_context io;
    detail::async_event ev;
    std::vector<int> woken;
    auto waiter = [&](int id) -> asio::awaitable<void> {
      if (co_await ev.wait()) woken.push_back(id);
    };
    detail::async_event::waiter named;
    auto named_waiter = [&]() -> asio::awaitable<void> {
      if (co_await ev.wait(named)) woken.push_back(99);
    };
    for (int id : {1, 2, 3}) asio::co_spawn(io, waiter(id), asio::detached);
    asio::co_spawn(io, named_waiter(), asio::detached);
    io.poll();
    CHECK(ev.size() == 4);
    CHECK(woken.empty());
    CHECK(named.queued());

    ev.notify(named);  // the newest, by name
    CHECK_FALSE(named.queued());
    ev.notify(named);  // no longer queued: nothing happens
    io.poll();
    CHECK(woken == std::vector<int>{99});
    CHECK(ev.size() == 3);

    CHECK(ev.notify_one());
    io.poll();
    CHECK(woken == std::vector<int>{99, 1});
    CHECK(ev.notify_one());
    CHECK(ev.notify_one());
    CHECK_FALSE(ev.notify_one());  // nobody left: a notify is not remembered
    io.poll();
    CHECK(woken == std::vector<int>{99, 1, 2, 3});
    CHECK(ev.empty());
  }

  TEST_CASE("async_event: notify_all reaches only the waiters queued before it") {
    asio::io_context io;
    detail::async_event ev;
    std::vector<int> woken;
    auto waiter = [&](int id) -> asio::awaitable<void> {
      if (co_await ev.wait()) woken.push_back(id);
    };
    // Woken, it queues again at once: the same notify_all must not wake it twice.
    auto rewaiter = [&](int id) -> asio::awaitable<void> {
      if (co_await ev.wait()) woken.push_back(id);
      if (co_await ev.wait()) woken.push_back(id + 100);
    };
    asio::co_spawn(io, rewaiter(1), asio::detached);
    asio::co_spawn(io, waiter(2), asio::detached);
    io.poll();
    CHECK(ev.notify_all() == 2);
    asio::co_spawn(io, waiter(3), asio::detached);  // queues after the notify_all
    io.poll();
    CHECK(woken == std::vector<int>{1, 2});
    CHECK(ev.size() == 2);  // 1 again, and 3
    CHECK(ev.notify_all() == 2);
    io.poll();
    CHECK(woken == std::vector<int>{1, 2, 101, 3});
    CHECK(ev.notify_all() == 0);
  }

  TEST_CASE("async_event: a deadline ends the wait with false, a notify in the same turn counts as notified") {
    using clock = detail::async_event::clock;
    asio::io_context io;
    detail::async_event ev;
    std::optional<bool> timed_out;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> { timed_out = co_await ev.wait(clock::now() + std::chrono::milliseconds(1)); },
        asio::detached);
    io.run();
    CHECK(timed_out == false);
    CHECK(ev.empty());

    // Both timers expire at the same instant and the notifier's was armed first, so its handler
    // runs first, in the turn that already completed the waiter's deadline.
    io.restart();
    asio::steady_timer notifier(io);
    std::optional<bool> raced;
    bool notified_someone = false;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          const auto deadline = clock::now();
          notifier.expires_at(deadline);
          notifier.async_wait([&](boost::system::error_code) { notified_someone = ev.notify_one(); });
          raced = co_await ev.wait(deadline);
        },
        asio::detached);
    io.run();
    CHECK(notified_someone);
    CHECK(raced == true);
  }

  TEST_CASE("async_event: cancellation throws operation_aborted, a notify in the same turn counts as notified") {
    asio::io_context io;
    detail::async_event ev;
    auto aborted = [](const std::exception_ptr& e) {
      try {
        if (e) std::rethrow_exception(e);
      } catch (const boost::system::system_error& error) {
        return error.code() == asio::error::operation_aborted;
      }
      return false;
    };

    asio::cancellation_signal cancel;
    std::optional<bool> result;
    std::exception_ptr error;
    bool done = false;
    auto waiter = [&]() -> asio::awaitable<void> { result = co_await ev.wait(); };
    auto finished = [&](std::exception_ptr e) {
      error = e;
      done = true;
    };
    asio::co_spawn(io, waiter(), asio::bind_cancellation_slot(cancel.slot(), finished));
    io.poll();
    CHECK(ev.size() == 1);
    cancel.emit(asio::cancellation_type::terminal);
    io.poll();
    CHECK(done);
    CHECK(aborted(error));
    CHECK_FALSE(result);
    CHECK(ev.empty());  // a cancelled waiter leaves the queue

    done = false;
    error = nullptr;
    io.restart();  // it ran out of work
    asio::cancellation_signal cancel2;
    asio::co_spawn(io, waiter(), asio::bind_cancellation_slot(cancel2.slot(), finished));
    io.poll();
    cancel2.emit(asio::cancellation_type::terminal);
    CHECK(ev.notify_one());  // before the cancelled wait resumes: the wake-up must not be lost
    io.poll();
    CHECK(done);
    CHECK_FALSE(error);
    CHECK(result == true);
  }

  TEST_CASE("async_event: the event may go before its waiters, and waiters before the event") {
    std::optional<asio::io_context> io(std::in_place);
    auto ev = std::make_unique<detail::async_event>();
    auto waiter = [&]() -> asio::awaitable<void> { co_await ev->wait(); };
    asio::co_spawn(*io, waiter(), asio::detached);
    asio::co_spawn(*io, waiter(), asio::detached);
    io->poll();
    CHECK(ev->size() == 2);
    io.reset();  // the suspended frames are destroyed: they leave the queue
    CHECK(ev->empty());

    io.emplace();
    asio::co_spawn(*io, waiter(), asio::detached);
    io->poll();
    ev.reset();  // the queue goes first; the frame destroyed later must not touch it
    io.reset();
  }

  TEST_CASE("client_options from the environment, as the SDK reads it") {
    SUBCASE("TINKER_* variables fill what is unset; empty counts as unset") {
      scoped_env url("TINKER_BASE_URL", "");
      scoped_env key("TINKER_API_KEY", "tml-from-env");
      scoped_env tags("TINKER_TAGS", "b, a,b,,c ");
      scoped_env project("TINKER_PROJECT_ID", "proj-7");
      client_options o;
      o.resolve();
      CHECK(o.base_url == default_base_url);
      CHECK(o.api_key == "tml-from-env");
      CHECK(o.tags == std::vector<std::string>{"a", "b", "c"});
      CHECK(o.project_id == "proj-7");
    }
    SUBCASE("explicit settings win over the environment") {
      scoped_env url("TINKER_BASE_URL", "http://env.example");
      scoped_env key("TINKER_API_KEY", "tml-from-env");
      scoped_env tags("TINKER_TAGS", "env-tag");
      scoped_env project("TINKER_PROJECT_ID", "env-project");
      client_options o;
      o.base_url = "http://explicit.example";
      o.api_key = "tml-explicit";
      o.tags = {"mine"};
      o.project_id = "mine";
      o.resolve();
      CHECK(o.base_url == "http://explicit.example");
      CHECK(o.api_key == "tml-explicit");
      CHECK(o.tags == std::vector<std::string>{"mine"});
      CHECK(o.project_id == "mine");
    }
    SUBCASE("TINKER_BASE_URL is used when set") {
      scoped_env url("TINKER_BASE_URL", "http://127.0.0.1:9/prefix");
      scoped_env key("TINKER_API_KEY", "tml-x");
      client_options o;
      CHECK(o.resolve().base_url == "http://127.0.0.1:9/prefix");
    }
    SUBCASE("no key, or a key of the wrong form, is refused before anything is sent (without echoing it)") {
      scoped_env key("TINKER_API_KEY", nullptr);
      client_options none;
      CHECK_THROWS_WITH_AS(none.resolve(), doctest::Contains("TINKER_API_KEY is not set"), tinker::invalid_argument);
      scoped_env bad("TINKER_API_KEY", "sk-secret-value");
      client_options wrong;
      const auto message = [&] {
        try {
          wrong.resolve();
        } catch (const std::exception& e) {
          return std::string(e.what());
        }
        return std::string();
      }();
      CHECK(message.find("tml-") != std::string::npos);
      CHECK(message.find("sk-secret-value") == std::string::npos);
      scoped_env jwt("TINKER_API_KEY", "eyJhbGciOiJIUzI1NiJ9.e30.sig");
      client_options token;
      CHECK_NOTHROW(token.resolve());
    }
  }

  TEST_CASE("whoami reads the JWT credential without a request, and refuses a plain API key") {
    asio::io_context io;
    auto b64url = [](std::string_view json) {
      auto s = tinker::detail::base64_encode(json);
      for (auto& c : s) c = c == '+' ? '-' : c == '/' ? '_' : c;
      while (!s.empty() && s.back() == '=') s.pop_back();
      return s;
    };
    auto client_with = [&](std::string key) {
      client_options o;
      o.base_url = "http://127.0.0.1:9";  // never contacted
      o.api_key = std::move(key);
      return service_client(io.get_executor(), o);
    };
    const auto jwt =
        "eyJhbGciOiJIUzI1NiJ9." + b64url(R"({"sub":"urn:user:42","email":"ada@example.com","exp":1})") + ".sig";
    auto who = client_with(jwt).create_rest_client().whoami();
    CHECK(who.user_urn == "urn:user:42");
    CHECK(who.email == "ada@example.com");
    const auto no_email = "eyJhbGciOiJIUzI1NiJ9." + b64url(R"({"sub":"urn:user:7","email":""})") + ".sig";
    CHECK_FALSE(client_with(no_email).create_rest_client().whoami().email);
    CHECK_THROWS_WITH_AS(client_with("tml-plain-key").create_rest_client().whoami(), doctest::Contains("not a JWT"),
                         tinker::invalid_argument);
    CHECK_THROWS_WITH_AS(client_with("eyJnot-a-jwt").create_rest_client().whoami(), doctest::Contains("malformed"),
                         tinker::invalid_argument);
    const auto no_sub = "eyJhbGciOiJIUzI1NiJ9." + b64url(R"({"email":"x@y"})") + ".sig";
    CHECK_THROWS_WITH_AS(client_with(no_sub).create_rest_client().whoami(), doctest::Contains("'sub'"),
                         tinker::invalid_argument);
  }

  TEST_CASE("REST arguments are checked before anything is sent") {
    asio::io_context io;
    client_options o;
    o.base_url = "http://127.0.0.1:9";  // nothing listens: a call that got past its checks would fail differently
    o.api_key = "tml-checks";
    o.retry.max_retries = 0;  // the one call that gets past its checks fails at its first refused connection
    service_client service(io.get_executor(), o);
    auto rest = service.create_rest_client();
    using namespace std::chrono;
    const auto hour = floor<hours>(system_clock::now()) - hours(48);
    const auto t0 = time_point_cast<microseconds>(hour);
    auto message = [&](asio::awaitable<void> call) {
      std::string what;
      try {
        test::run_coro(io, std::move(call));
      } catch (const tinker::invalid_argument& e) {
        what = e.what();
      } catch (const std::exception& e) {
        what = std::string("not a user error: ") + e.what();
      }
      return what;
    };
    auto billing = [&](timestamp a, timestamp b) -> asio::awaitable<void> {
      (void)co_await rest.get_billing_usage(a, b);
    };
    CHECK(message(billing(t0 + minutes(30), t0 + hours(2))).find("whole hours") != std::string::npos);
    CHECK(message(billing(t0, t0)).find("at most 14 days") != std::string::npos);
    CHECK(message(billing(t0 - days(15), t0)).find("at most 14 days") != std::string::npos);
    auto audit = [&](std::string type, std::optional<std::string> day) -> asio::awaitable<void> {
      (void)co_await rest.get_audit_log(std::move(type), std::move(day));
    };
    CHECK(message(audit("everything", std::nullopt)).find("event_type must be 'all' or 'checkpoints'") !=
          std::string::npos);
    CHECK(message(audit("all", "2026/01/02")).find("day must be YYYY-MM-DD") != std::string::npos);
    auto project = [&](std::string session, std::string id) -> asio::awaitable<void> {
      co_await rest.assign_session_project(std::move(session), std::move(id));
    };
    CHECK(message(project("s/../x", "p")).find("session_id") != std::string::npos);
    CHECK(message(project("s", "")).find("project_id is empty") != std::string::npos);
    auto ttl = [&](std::optional<std::int64_t> t) -> asio::awaitable<void> {
      co_await rest.set_checkpoint_ttl_from_tinker_path("tinker://run:train:0/weights/w", t);
    };
    CHECK(message(ttl(0)).find("ttl_seconds must be > 0") != std::string::npos);
    CHECK(message(ttl(std::int64_t{1} << 40)).find("at most ten years") != std::string::npos);
    auto path = [&](std::string p) -> asio::awaitable<void> {
      co_await rest.delete_checkpoint_from_tinker_path(std::move(p));
    };
    CHECK(message(path("tinker://run?x=1/weights/w")).find("tinker://run?x=1/weights/w") != std::string::npos);
    // Outside the legal name set ('%' would be read as an escape by clients that paste names into URLs).
    const auto percent = message(path("tinker://run/weights/50%"));
    CHECK(percent.find("cannot contain '%'") != std::string::npos);
    CHECK(percent.find("not a user error") == std::string::npos);
    // Inside it (spaces, '|', non-ASCII letters): past the checks, the call reaches the network.
    CHECK(message(path("tinker://run/weights/a b|caf\xc3\xa9")).find("not a user error") != std::string::npos);
  }

}  // TEST_SUITE
