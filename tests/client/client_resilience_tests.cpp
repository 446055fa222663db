// The client when things go wrong, against the local engine over real sockets: callers cancelled
// mid-call (the model's seq_id queue must keep moving), injected faults and back-pressure, queue
// pauses, billing pauses, failed requests, engine restarts, and the API key kept out of every
// message.
#include "client/client_fixture.hpp"

#include <tinker/http/transport.hpp>
#include <tinker/local/engine.hpp>
#include <tinker/tinker.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

using namespace tinker;
using namespace tinker::test;
namespace asio = boost::asio;

namespace {

/// Lets every coroutine that is ready run once before the caller goes on.
asio::awaitable<void> yield() { co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable); }

std::size_t count_lines(const std::vector<std::string>& lines, const std::string& needle) {
  return static_cast<std::size_t>(std::count_if(
      lines.begin(), lines.end(), [&](const std::string& l) { return l.find(needle) != std::string::npos; }));
}

}  // namespace

TEST_SUITE("client") {
  TEST_CASE("a training call cancelled while it waits for its turn is still sent, so the model's queue keeps moving") {
    client_fixture f;
    run_coro(
        f.io,
        [&]() -> asio::awaitable<void> {
          auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
          const auto batch = one(text_datum("turns"));
          local::fault_options slow;
          slow.route_latency["forward_backward"] = std::chrono::milliseconds(300);  // A's POST takes a while
          f.engine.set_faults(slow);
          std::optional<api_future<forward_backward_output>> a;
          asio::co_spawn(
              f.io,
              [&]() -> asio::awaitable<void> {
                a = co_await training.forward_backward(batch, loss_fn_type::cross_entropy);
              },
              asio::detached);
          asio::cancellation_signal cancel_b;
          std::exception_ptr b_error;
          bool b_done = false;
          asio::co_spawn(
              f.io, [&]() -> asio::awaitable<void> { (void)co_await training.optim_step({.learning_rate = 0.01}); },
              asio::bind_cancellation_slot(cancel_b.slot(), [&](std::exception_ptr e) {
                b_error = e;
                b_done = true;
              }));
          co_await yield();  // A is posting; B waits for A's turn to end
          cancel_b.emit(asio::cancellation_type::terminal);
          for (int i = 0; i < 100 && !b_done; ++i) co_await yield();
          CHECK(b_done);
          CHECK(b_error != nullptr);  // B's caller gave up ...
          // ... yet B's seq_id reaches the server, or C (queued behind it) would wait forever.
          auto c = co_await training.forward(batch, loss_fn_type::cross_entropy);
          CHECK(std::isfinite(loss_of(co_await c.result())));
          REQUIRE(a);
          CHECK(std::isfinite(loss_of(co_await a->result())));
          CHECK(f.hook().request_count("optim_step") == 1);
        }(),
        std::chrono::seconds(60));
  }

  TEST_CASE("giving up on a custom-loss result still sends its backward pass (with no gradient) and skips the loss") {
    client_fixture f;
    run_coro(
        f.io,
        [&]() -> asio::awaitable<void> {
          auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4, .seed = 9});
          const auto batch = one(text_datum("abandoned custom loss"));
          const auto before =
              loss_of(co_await (co_await training.forward(batch, loss_fn_type::cross_entropy)).result());
          int loss_calls = 0;
          const custom_loss_fn loss = [&](std::span<const datum>, std::span<const std::vector<float>> logprobs) {
            ++loss_calls;
            custom_loss_result r;
            for (const auto& lp : logprobs) r.logprob_gradients.emplace_back(lp.size(), -1.0f);
            return r;
          };
          local::fault_options hold;
          hold.try_again_first_polls = 1'000'000;  // the forward result is not handed out until we gave up
          f.engine.set_faults(hold);
          auto fut = co_await training.forward_backward_custom(batch, loss);
          asio::cancellation_signal give_up;
          std::exception_ptr waited;
          asio::co_spawn(
              f.io, [&]() -> asio::awaitable<void> { (void)co_await fut.result(); },
              asio::bind_cancellation_slot(give_up.slot(), [&](std::exception_ptr e) { waited = e; }));
          co_await yield();
          give_up.emit(asio::cancellation_type::terminal);
          for (int i = 0; i < 100 && !waited; ++i) co_await yield();
          CHECK(waited != nullptr);
          f.engine.set_faults({});
          // The next call is queued behind the two passes: it finishes only if both were sent.
          (void)co_await (co_await training.optim_step({.learning_rate = 0.5})).result();
          CHECK(loss_calls == 0);                                      // nobody wanted the loss any more
          CHECK(f.hook().request_count("forward_backward") == 1 + 2);  // before, then forward + backward
          // The backward pass carried no gradient: the step changed nothing.
          CHECK(loss_of(co_await (co_await training.forward(batch, loss_fn_type::cross_entropy)).result()) == before);
        }(),
        std::chrono::seconds(60));
  }

  TEST_CASE(
      "a chunk the server refuses: the other chunks are still sent, the error reaches the caller, the model goes on") {
    auto eo = engine_opts();
    eo.fwdbwd_max_chunk_len = 1;
    client_fixture f(eo);
    run_coro(
        f.io,
        [&]() -> asio::awaitable<void> {
          auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
          std::vector<datum> batch;
          for (int i = 0; i < 3; ++i) batch.push_back(text_datum("chunk"));
          // A target token beyond the vocabulary: only the server knows its vocabulary.
          batch[1].loss_fn_inputs.at("target_tokens") = tensor_data(std::vector<std::int64_t>{1, 2, 3, 4, 99'999});
          CHECK_THROWS_AS(co_await training.forward_backward(batch, loss_fn_type::cross_entropy), bad_request_error);
          CHECK(f.hook().request_count("forward_backward") == 3);  // every chunk went out, the head last
          CHECK(std::isfinite(loss_of(
              co_await (co_await training.forward(one(text_datum("next")), loss_fn_type::cross_entropy)).result())));
          // A custom loss whose forward pass is refused: its backward seq_ids are still sent.
          const custom_loss_fn loss = [](std::span<const datum>, std::span<const std::vector<float>> logprobs) {
            custom_loss_result r;
            for (const auto& lp : logprobs) r.logprob_gradients.emplace_back(lp.size(), 0.0f);
            return r;
          };
          std::vector<datum> bad;
          bad.push_back(batch[1]);
          CHECK_THROWS_AS(co_await training.forward_backward_custom(bad, loss), bad_request_error);
          (void)co_await (co_await training.optim_step({.learning_rate = 0.01})).result();
        }(),
        std::chrono::seconds(60));
  }

  TEST_CASE(
      "a submission lost on the way (no answer after every retry) stops the training client instead of hanging it") {
    client_fixture f(engine_opts(), [](client_options& o) {
      o.retry.max_retries = 1;
      o.retry.initial_backoff = std::chrono::milliseconds(1);
    });
    run_coro(
        f.io,
        [&]() -> asio::awaitable<void> {
          auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
          local::fault_options drop;
          drop.fraction_drop = 1.0;
          drop.error_routes = {"optim_step"};
          f.engine.set_faults(drop);
          CHECK_THROWS_AS(co_await training.optim_step({.learning_rate = 0.01}), api_connection_error);
          f.engine.set_faults({});
          const auto message = [&]() -> asio::awaitable<std::string> {
            try {
              (void)co_await training.forward(one(text_datum("after")), loss_fn_type::cross_entropy);
            } catch (const api_connection_error& e) {
              co_return std::string(e.what());
            }
            co_return std::string("(no error)");
          };
          const auto what = co_await message();
          CHECK(what.find("cannot submit more requests") != std::string::npos);
          CHECK(what.find("seq_id 1") != std::string::npos);
          // Other clients of the same service are unaffected.
          auto other = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
          CHECK(std::isfinite(loss_of(
              co_await (co_await other.forward(one(text_datum("fine")), loss_fn_type::cross_entropy)).result())));
        }(),
        std::chrono::seconds(60));
  }

  TEST_CASE("admission control: a sampling client keeps at most sample_max_in_flight samples at the server") {
    request_log wire;
    auto eo = engine_opts();
    eo.offer_batched_polling = false;  // per-request polls: every sample in flight is a held poll
    eo.long_poll_hold = std::chrono::milliseconds(200);
    eo.on_request = wire.observer();
    client_fixture f(eo, [](client_options& o) { o.sample_max_in_flight = 5; });
    io_event polled(f.io);
    int sample_polls = 0;  // (engine thread)
    {
      std::lock_guard lock(wire.mutex);
      wire.on_record = [&](const local::request_record& r) {
        if (r.route == "retrieve_future" && r.headers.count("x-tinker-request-type") &&
            r.headers.at("x-tinker-request-type") == "Sample" && ++sample_polls == 20)
          polled.fire();
      };
    }
    run_coro(
        f.io,
        [&]() -> asio::awaitable<void> {
          auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
          auto sampler = co_await training.save_weights_and_get_sampling_client();
          local::fault_options hold;  // no result is handed out while paused: admitted samples stay in flight
          hold.pause_state = queue_state::paused_capacity;
          hold.pause_period = std::chrono::hours(1);
          hold.pause_duration = hold.pause_period;
          f.engine.set_faults(hold);
          std::vector<api_future<sample_response>> futures;
          for (int i = 0; i < 50; ++i)
            futures.push_back(sampler.submit_sample(tokens({256, 'a'}), 1, sampling_params(2)));
          co_await polled.wait();  // twenty sample polls in: without a cap all fifty would have been submitted by now
          CHECK(f.hook().request_count("asample") == 5);
          CHECK(sampler.in_flight() == 5);
          f.engine.set_faults({});
          for (auto& fut : futures) CHECK((co_await fut.result()).sequences.size() == 1);
          CHECK(f.hook().request_count("asample") == 50);
          CHECK(sampler.in_flight() == 0);
        }(),
        std::chrono::seconds(60));
    std::lock_guard lock(wire.mutex);
    wire.on_record = {};
  }

  TEST_CASE("admission control: prompt bytes being submitted stay within sample_max_dispatch_bytes") {
    // Each asample is held `hold` at the engine before it is handled, so a submission owns its
    // prompt bytes for at least that long. The engine notes when each asample arrives: a sample
    // that must wait for bytes arrives at least `hold` after one that held them.
    constexpr auto hold = std::chrono::milliseconds(150);
    std::mutex arrivals_mutex;
    std::vector<std::chrono::steady_clock::time_point> arrivals;
    auto eo = engine_opts();
    eo.on_request = [&](const local::request_record& r) {
      if (r.route != "asample") return;
      std::lock_guard lock(arrivals_mutex);
      arrivals.push_back(std::chrono::steady_clock::now());
    };
    // Prompts are estimated at 10 bytes per token: two 6-token prompts (60 bytes each) fit in 130.
    client_fixture f(eo, [](client_options& o) { o.sample_max_dispatch_bytes = 130; });
    const auto take_arrivals = [&] {
      std::lock_guard lock(arrivals_mutex);
      auto a = arrivals;
      arrivals.clear();
      std::sort(a.begin(), a.end());
      return a;
    };
    run_coro(
        f.io,
        [&]() -> asio::awaitable<void> {
          auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
          auto sampler = co_await training.save_weights_and_get_sampling_client();
          local::fault_options slow;
          slow.route_latency["asample"] = hold;
          f.engine.set_faults(slow);
          const auto prompt = tokens({256, 'a', 'b', 'c', 'd', 'e'});
          // Six samples at once: at most two submissions at a time, the rest wait and go in as
          // bytes free; every one completes.
          std::vector<api_future<sample_response>> futures;
          for (int i = 0; i < 6; ++i) futures.push_back(sampler.submit_sample(prompt, 1, sampling_params(2)));
          for (auto& fut : futures) CHECK((co_await fut.result()).sequences.size() == 1);
          auto a = take_arrivals();
          REQUIRE(a.size() == 6);
          for (std::size_t i = 2; i < a.size(); ++i)  // a third could only start once one of two ended
            CHECK_MESSAGE(a[i] - a[i - 2] >= hold, "three submissions overlapped: asample " << i);
          // A prompt larger than the whole budget (200 bytes) still gets in, once the budget is
          // entirely free: it never overlaps the small ones submitted with it.
          const auto big = model_input::from_ints(std::vector<token_id>(20, 'z'));
          futures.clear();
          futures.push_back(sampler.submit_sample(prompt, 1, sampling_params(2)));
          futures.push_back(sampler.submit_sample(big, 1, sampling_params(2)));
          futures.push_back(sampler.submit_sample(prompt, 1, sampling_params(2)));
          for (auto& fut : futures) CHECK((co_await fut.result()).sequences.size() == 1);
          a = take_arrivals();
          REQUIRE(a.size() == 3);
          CHECK_MESSAGE(a[1] - a[0] >= hold, "the large prompt went in while bytes were held");
          CHECK_MESSAGE(a[2] - a[1] >= hold, "a small prompt went in beside the large one");
          f.engine.set_faults({});
        }(),
        std::chrono::seconds(60));
  }

  TEST_CASE("a failed request is a request_failed_error with its request id and category, and is not retried") {
    client_fixture f;
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
      auto sampler = co_await training.save_weights_and_get_sampling_client();
      local::fault_options fail;
      fail.fail_routes = {{"optim_step", error_category::user}, {"asample", error_category::server}};
      f.engine.set_faults(fail);
      auto step = co_await training.optim_step({.learning_rate = 0.01});
      try {
        (void)co_await step.result();
        FAIL("the injected failure must reach the caller");
      } catch (const request_failed_error& e) {
        CHECK(e.request_id() == step.request_ids().at(0));
        CHECK(e.category() == error_category::user);
      }
      const auto prompt = tokens({256, 'f'});  // (named: GCC 12 rejects braced lists inside co_await)
      try {
        (void)co_await sampler.sample(prompt, 1, sampling_params(2));
        FAIL("the injected failure must reach the caller");
      } catch (const request_failed_error& e) {
        CHECK(e.category() == error_category::server);
      }
      CHECK(f.hook().request_count("optim_step") == 1);
      CHECK(f.hook().request_count("asample") == 1);  // a failed sample is not resubmitted either
      f.engine.set_faults({});
      // The failed request used its seq_id: the model goes on.
      CHECK(std::isfinite(
          loss_of(co_await (co_await training.forward(one(text_datum("on")), loss_fn_type::cross_entropy)).result())));
    }());
  }

  TEST_CASE("402 (billing) answers pause calls and samples without failing them, while the server's window lasts") {
    client_fixture f(engine_opts(),
                     [](client_options& o) { o.retry.billing_retry_interval = std::chrono::milliseconds(10); });
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
      auto sampler = co_await training.save_weights_and_get_sampling_client();
      local::fault_options billing;
      billing.fraction_402 = 0.5;
      billing.seed = 3;
      billing.error_routes = {"get_server_capabilities"};
      f.engine.set_faults(billing);
      for (int i = 0; i < 10; ++i) CHECK_FALSE((co_await f.service.get_server_capabilities()).supported_models.empty());
      CHECK(f.hook().request_count("get_server_capabilities") > 10);  // some answered 402 and were sent again
      // Then on samples alone: more submissions than samples means some were refused with 402 and
      // resubmitted (none failed).
      billing.error_routes = {"asample"};
      f.engine.set_faults(billing);
      const auto prompt = tokens({256, 'b'});
      for (int i = 0; i < 6; ++i) CHECK((co_await sampler.sample(prompt, 1, sampling_params(2))).sequences.size() == 1);
      CHECK(f.hook().request_count("asample") > 6);
    }());
    CHECK(count_lines(*f.log_lines, "402 (billing)") >= 1);  // said once, not for every answer
    CHECK(count_lines(*f.log_lines, "402 (billing)") <= 2);
  }

  TEST_CASE("training results arrive while held sample polls fill their lane: sample polls have a lane of their own") {
    request_log wire;
    auto eo = engine_opts();
    eo.offer_batched_polling = false;
    eo.long_poll_hold = std::chrono::seconds(30);
    eo.on_request = wire.observer();
    client_fixture f(eo, [](client_options& o) {
      o.max_connections[static_cast<std::size_t>(http::lane::sample_poll)] = 8;  // far fewer than the samples in flight
    });
    io_event lane_full(f.io);
    int sample_polls = 0;  // (engine thread)
    {
      std::lock_guard lock(wire.mutex);
      wire.on_record = [&](const local::request_record& r) {
        if (r.route == "retrieve_future" && r.headers.count("x-tinker-request-type") &&
            r.headers.at("x-tinker-request-type") == "Sample" && ++sample_polls == 8)
          lane_full.fire();
      };
    }
    run_coro(
        f.io,
        [&]() -> asio::awaitable<void> {
          auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
          auto sampler = co_await training.save_weights_and_get_sampling_client();
          local::fault_options slow_samples;
          slow_samples.sample_step_time = std::chrono::hours(1);
          f.engine.set_faults(slow_samples);
          std::vector<api_future<sample_response>> samples;
          for (int i = 0; i < 200; ++i)
            samples.push_back(sampler.submit_sample(tokens({256, 'z'}), 1, sampling_params(2)));
          co_await lane_full.wait();  // every sample poll connection is held by the server, more polls wait ...
          auto fwd =
              co_await training.forward(one(text_datum("not stuck behind samples")), loss_fn_type::cross_entropy);
          CHECK(std::isfinite(loss_of(co_await fwd.result())));  // ... yet the training result arrives.
          CHECK(f.service.transport().open_connections(http::lane::sample_poll) == 8);
          for (auto& s : samples) s.cancel();
        }(),
        std::chrono::seconds(60));
    std::lock_guard lock(wire.mutex);
    wire.on_record = {};
  }

  TEST_CASE("queue pauses reach the observer per future, and are logged once a minute per model") {
    client_fixture f(engine_opts(), [](client_options& o) { o.polling.use_batched_polling = false; });
    std::vector<queue_state_event> events;
    io_event three_paused(f.io);
    // (The observer is set on the service's options through a second client on the same engine.)
    client_options o = f.service.options();
    o.on_queue_state = [&](const queue_state_event& e) {
      events.push_back(e);
      if (std::count_if(events.begin(), events.end(),
                        [](const auto& x) { return x.state == queue_state::paused_capacity; }) == 3)
        three_paused.set();
    };
    service_client service(f.io.get_executor(), o);
    run_coro(
        f.io,
        [&]() -> asio::awaitable<void> {
          auto a = co_await service.create_lora_training_client(tiny_model, {.rank = 4});
          auto b = co_await service.create_lora_training_client(tiny_model, {.rank = 4});
          local::fault_options pause;
          pause.pause_state = queue_state::paused_capacity;
          pause.pause_period = std::chrono::hours(1);
          pause.pause_duration = pause.pause_period;  // paused all the time
          f.engine.set_faults(pause);
          const auto batch = one(text_datum("paused"));
          auto a1 = co_await a.forward(batch, loss_fn_type::cross_entropy);
          auto a2 = co_await a.forward(batch, loss_fn_type::cross_entropy);
          auto b1 = co_await b.forward(batch, loss_fn_type::cross_entropy);
          co_await three_paused.wait();
          f.engine.set_faults({});
          for (auto* fut : {&a1, &a2, &b1}) CHECK(std::isfinite(loss_of(co_await fut->result())));
        }(),
        std::chrono::seconds(60));
    std::set<std::string> subjects;
    for (const auto& e : events)
      if (e.state == queue_state::paused_capacity) {
        subjects.insert(e.subject);
        CHECK(e.reason == "local engine: simulated capacity shortage");
      }
    CHECK(subjects.size() == 2);  // model a (two futures) and model b
    // One warning per model, although three futures reported the pause.
    CHECK(count_lines(*f.log_lines, "is paused (paused_capacity)") == 2);
  }

  TEST_CASE("cancelling a coroutine mid-poll stops the poll and releases its connection") {
    request_log wire;
    auto eo = engine_opts();
    eo.on_request = wire.observer();
    client_fixture f(eo);
    io_event polling(f.io);
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
      local::fault_options slow;
      slow.training_step_time = std::chrono::hours(1);  // the next operation never finishes in this test
      f.engine.set_faults(slow);
      auto fut = co_await training.forward(one(text_datum("never")), loss_fn_type::cross_entropy);
      const auto id = fut.request_ids().at(0);
      auto polls_of = [&](const std::vector<local::request_record>& records) {
        return std::count_if(records.begin(), records.end(), [&](const local::request_record& r) {
          return r.route == "retrieve_future" && r.request_id == id;
        });
      };
      {
        // Cancel once the engine holds a poll of this future (it may have arrived already).
        std::lock_guard lock(wire.mutex);
        if (polls_of(wire.records) > 0) polling.fire();
        wire.on_record = [&polling, id, fired = false](const local::request_record& r) mutable {
          if (!fired && r.route == "retrieve_future" && r.request_id == id) {
            fired = true;
            polling.fire();
          }
        };
      }
      auto [order, e1, out, e2] =
          co_await asio::experimental::make_parallel_group(asio::co_spawn(f.io, fut.result(), asio::deferred),
                                                           asio::co_spawn(f.io, polling.wait(), asio::deferred))
              .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
      (void)out;
      (void)e2;
      CHECK(order[0] == 1);  // the poll was seen first
      CHECK(e1 != nullptr);  // the result() was cancelled ...
      // ... and with it the polling: its in-flight request was cancelled and its connection closed
      // (not pooled), and the future reports the abandonment instead of hanging.
      CHECK_THROWS_AS(co_await fut.result(), boost::system::system_error);
      auto& t = f.service.transport();
      CHECK(t.open_connections(http::lane::poll) == t.idle_connections(http::lane::poll));  // none in flight
      const auto polls_at_cancel = polls_of(wire.snapshot());
      CHECK(polls_at_cancel >= 1);
      f.engine.set_faults({});
      // ... and the client keeps working, while the abandoned future is not polled again.
      auto other = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
      CHECK(!(co_await other.get_info()).model_id.empty());
      (void)co_await (co_await other.forward(one(text_datum("after")), loss_fn_type::cross_entropy)).result();
      CHECK(polls_of(wire.snapshot()) == polls_at_cancel);
      CHECK(t.open_connections(http::lane::poll) == t.idle_connections(http::lane::poll));
    }());
  }

  TEST_CASE("retries under injected faults, back-pressure on samples, user errors are not retried") {
    client_fixture f(engine_opts(), [](client_options& o) {
      o.retry.initial_backoff = std::chrono::milliseconds(10);
      o.retry.max_backoff = std::chrono::milliseconds(50);
    });
    local::fault_options faults;
    faults.fraction_500 = 0.5;
    faults.fraction_503 = 0.2;
    faults.seed = 5;
    faults.error_routes = {"create_session", "create_model", "get_server_capabilities", "retrieve_future"};
    f.engine.set_faults(faults);
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      for (int i = 0; i < 10; ++i) CHECK(!(co_await f.service.get_server_capabilities()).supported_models.empty());
      auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
      auto sampler = co_await training.save_weights_and_get_sampling_client();
      local::fault_options pressure;
      pressure.fraction_429 = 0.5;
      pressure.retry_after = std::chrono::seconds(1);
      pressure.seed = 8;
      pressure.error_routes = {"asample"};
      f.engine.set_faults(pressure);
      std::vector<api_future<sample_response>> futures;
      for (int i = 0; i < 20; ++i)
        futures.push_back(sampler.submit_sample(model_input::from_ints({256, 66}), 1, sampling_params(3)));
      for (auto& fut : futures) CHECK((co_await fut.result()).sequences.size() == 1);
      f.engine.set_faults({});
      // A user error (400) is raised at once, not retried.
      const auto before = f.hook().request_count("save_weights");
      auto bad = co_await training.save_state("dup");
      (void)co_await bad.result();
      CHECK_THROWS_AS(co_await training.save_state("dup"), bad_request_error);
      CHECK(f.hook().request_count("save_weights") == before + 2);
    }());
    CHECK(f.hook().request_count("asample") > 20);  // some were refused with 429 and resubmitted
    CHECK(f.service.stats().retries > 0);           // and the 500s / 503s were retried
  }

  TEST_CASE("session start-up survives transient faults on every start-up route, and dynamic_config is optional") {
    client_fixture f;
    auto fast_retries = [](client_options& o) {
      o.retry.initial_backoff = std::chrono::milliseconds(5);
      o.retry.max_backoff = std::chrono::milliseconds(20);
    };
    // 20 fresh clients start a session each, with 30% 503s and 10% dropped connections on one
    // start-up route at a time: every one gets its session.
    for (const std::string route : {"client_config", "dynamic_config", "create_session"}) {
      CAPTURE(route);
      local::fault_options faults;
      faults.fraction_503 = 0.3;
      faults.fraction_drop = 0.1;
      faults.seed = 11;
      faults.error_routes = {route};
      f.engine.set_faults(faults);
      const auto requests_before = f.hook().request_count(route);
      int sessions = 0;
      run_coro(f.io, [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 20; ++i) {
          service_client fresh(f.io.get_executor(), f.make_options(fast_retries));
          CHECK(!(co_await fresh.session_id()).empty());
          ++sessions;
        }
      }());
      CHECK(sessions == 20);
      CHECK(f.hook().request_count(route) > requests_before + 20);  // the faults hit, and were retried
    }
    // A dynamic_config that keeps failing: the session still starts, on the defaults, and says so.
    local::fault_options broken;
    broken.fraction_500 = 1;
    broken.error_routes = {"dynamic_config"};
    f.engine.set_faults(broken);
    f.log_lines->clear();
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      service_client fresh(f.io.get_executor(), f.make_options([&](client_options& o) {
        fast_retries(o);
        o.retry.max_retries = 2;
      }));
      CHECK(!(co_await fresh.session_id()).empty());
    }());
    CHECK(count_lines(*f.log_lines, "client/dynamic_config failed; starting with its defaults") == 1);
  }

  TEST_CASE("the API key never appears in errors or logs") {
    const std::string key = "tml-super-secret-key-123";
    client_fixture f(engine_opts(), [&](client_options& o) {
      o.api_key = key;
      o.retry.max_retries = 1;
      o.retry.initial_backoff = std::chrono::milliseconds(1);
    });
    local::fault_options faults;
    faults.fraction_500 = 1.0;
    faults.error_routes = {"get_server_capabilities"};
    f.engine.set_faults(faults);
    std::vector<std::string> messages;
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      try {
        (void)co_await f.service.get_server_capabilities();
      } catch (const std::exception& e) {
        messages.push_back(e.what());
      }
      try {
        auto training = co_await f.service.create_lora_training_client("no/such-model");
      } catch (const std::exception& e) {
        messages.push_back(e.what());
      }
    }());
    REQUIRE(messages.size() == 2);
    for (const auto& m : messages) CHECK(m.find(key) == std::string::npos);
    for (const auto& l : *f.log_lines) CHECK(l.find(key) == std::string::npos);
  }

  TEST_CASE("an engine restart mid-poll: polls reconnect, the old future answers 410, the sample is resubmitted") {
    temp_dir dir;
    auto eo = engine_opts();
    eo.data_dir = dir.path.string();
    std::optional<local::embedded_engine> engine;
    engine.emplace(eo);
    eo.port = engine->port();  // the restarted engine listens where the first one did
    asio::io_context io;
    io_event polling_started(io);
    client_options o;
    o.base_url = engine->base_url();
    o.api_key = "tml-restart-key";
    o.polling.max_backoff = std::chrono::milliseconds(200);
    o.retry.initial_backoff = std::chrono::milliseconds(20);
    o.on_queue_state = [&](const queue_state_event&) { polling_started.set(); };
    service_client service(io.get_executor(), o);
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto training = co_await service.create_lora_training_client(tiny_model, {.rank = 4});
      // A named sampler checkpoint: it persists (unnamed ones live in the engine's memory only).
      auto saved = co_await (co_await training.save_weights_for_sampler("before-restart")).result();
      auto sampler = co_await training.create_sampling_client(*saved.path);
      const auto prompt = tokens({256, 'h', 'i'});
      const auto params = sampling_params(6).with_seed(42);
      const auto reference = co_await sampler.sample(prompt, 1, params);
      local::fault_options hold;
      hold.try_again_first_polls = 1'000'000;  // the result is never handed out by this engine
      engine->set_faults(hold);
      auto fut = sampler.submit_sample(prompt, 1, params);
      co_await polling_started.wait();  // first try_again seen
      engine.reset();                   // stop ...
      engine.emplace(eo);               // ... and start again on the same port and data directory: a new epoch
      auto after = co_await fut.result();
      REQUIRE(after.sequences.size() == 1);
      CHECK(after.sequences[0].tokens == reference.sequences[0].tokens);  // the sampler checkpoint survived the restart
      CHECK(local::engine_test_hook(*engine).request_count("asample") == 1);  // the resubmission
    }());
  }

  TEST_CASE("an engine restart mid-poll: a training future surfaces the 410 (training requests are not resubmitted)") {
    temp_dir dir;
    auto eo = engine_opts();
    eo.data_dir = dir.path.string();
    std::optional<local::embedded_engine> engine;
    engine.emplace(eo);
    eo.port = engine->port();
    asio::io_context io;
    io_event polling_started(io);
    client_options o;
    o.base_url = engine->base_url();
    o.api_key = "tml-restart-training-key";
    o.polling.max_backoff = std::chrono::milliseconds(200);
    o.retry.initial_backoff = std::chrono::milliseconds(20);
    o.on_queue_state = [&](const queue_state_event& e) {
      if (e.subject.find("training of model") == 0) polling_started.set();
    };
    service_client service(io.get_executor(), o);
    run_coro(io, [&]() -> asio::awaitable<void> {
      auto training = co_await service.create_lora_training_client(tiny_model, {.rank = 4});
      local::fault_options hold;
      hold.try_again_first_polls = 1'000'000;
      engine->set_faults(hold);
      auto fut = co_await training.forward(one(text_datum("before the restart")), loss_fn_type::cross_entropy);
      co_await polling_started.wait();
      engine.reset();
      engine.emplace(eo);
      try {
        (void)co_await fut.result();
        FAIL("the future of an earlier engine run must fail");
      } catch (const api_status_error& e) {
        CHECK(e.status() == 410);
      }
      CHECK(local::engine_test_hook(*engine).request_count("forward_backward") ==
            0);  // not sent again on its own: seq_ids are the user's to redo
    }());
  }

  TEST_CASE("once the last sample is done nothing keeps polling: the io_context runs out of work") {
    auto eo = engine_opts();
    eo.long_poll_hold =
        std::chrono::seconds(40);  // the longest hold: a batch poll left behind would keep the loop 40 s
    local::embedded_engine engine(eo);
    asio::io_context io;
    client_options o;
    o.base_url = engine.base_url();
    o.api_key = "tml-idle-key";
    bool done = false;
    std::uint64_t batch_polls = 0;
    auto body = [&]() -> asio::awaitable<void> {
      service_client service(co_await asio::this_coro::executor, o);
      auto training = co_await service.create_lora_training_client(tiny_model, {.rank = 4});
      auto sampler = co_await training.save_weights_and_get_sampling_client();
      std::vector<api_future<sample_response>> futures;
      for (int i = 0; i < 10; ++i) futures.push_back(sampler.submit_sample(tokens({256, 'q'}), 1, sampling_params(2)));
      for (auto& f : futures) CHECK((co_await f.result()).sequences.size() == 1);
      batch_polls = local::engine_test_hook(engine).request_count("retrieve_futures");
    };
    asio::co_spawn(io, body, [&](std::exception_ptr e) {
      done = true;
      if (e) std::rethrow_exception(e);
    });
    io.run_for(
        std::chrono::seconds(30));  // a safety net, shorter than the hold: returns at once when the work runs out
    CHECK(done);
    CHECK(batch_polls > 0);  // the batched poller was in use ...
    CHECK(io.stopped());     // ... and let go of the loop when nobody waited any more
  }

}  // TEST_SUITE
