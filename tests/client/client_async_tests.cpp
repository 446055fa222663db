// The client as an Asio I/O object: the same flows through every kind of completion token
// (use_awaitable, use_future from a plain thread, callbacks, deferred in a parallel group,
// as_tuple, bind_cancellation_slot, bind_executor); operations on the client's own executor
// whatever the caller's; an io_context run by four threads; and background work whose lifetime
// is the clients' (a refused heartbeat reaches the observer and the next call).
#include "client/client_fixture.hpp"
#include "common/sync_http_client.hpp"

#include <tinker/local/engine.hpp>
#include <tinker/tinker.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_future.hpp>
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

using namespace tinker;
using namespace tinker::test;
namespace asio = boost::asio;

namespace {

/// An io_context run by `threads` threads until stop() (or destruction).
class running_context {
public:
  explicit running_context(int threads = 1) : work_(io_.get_executor()) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~running_context() { stop(); }
  void stop() {
    work_.reset();
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  asio::io_context& io() noexcept { return io_; }
  bool runs_here() const {
    for (const auto& t : threads_)
      if (t.get_id() == std::this_thread::get_id()) return true;
    return false;
  }

private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::vector<std::thread> threads_;
};

client_options options_for(const local::embedded_engine& engine, const char* key = "tml-async-key") {
  client_options o;
  o.base_url = engine.base_url();
  o.api_key = key;
  o.log = [](log_level, std::string_view) {};
  return o;
}

}  // namespace

TEST_SUITE("client async") {
  TEST_CASE("use_future from a plain thread: train, sample, REST, and errors in the future") {
    local::embedded_engine engine(engine_opts());
    running_context loop;
    service_client service(loop.io().get_executor(), options_for(engine));
    auto training = service.create_lora_training_client(tiny_model, {.rank = 4, .seed = 3}, asio::use_future).get();
    const auto batch = one(text_datum("futures all the way down"));
    double first = 0, last = 0;
    for (int step = 0; step < 8; ++step) {
      auto fwd = training.forward_backward(batch, loss_fn_type::cross_entropy, asio::use_future).get();
      auto opt = training.optim_step({.learning_rate = 0.05}, asio::use_future).get();
      const auto out = fwd.result(asio::use_future).get();
      (void)opt.result(asio::use_future).get();
      (step == 0 ? first : last) = loss_of(out);
    }
    CHECK(last < first);
    auto sampler = training.save_weights_and_get_sampling_client(asio::use_future).get();
    CHECK(sampler.sample(tokens({256, 'f'}), 2, sampling_params(3), asio::use_future).get().sequences.size() == 2);
    auto rest = service.create_rest_client();
    CHECK(rest.list_training_runs(asio::use_future).get().training_runs.size() == 1);
    // A mistake and a server refusal arrive through the future, with their types.
    auto bad = sampler.sample(tokens({256}), 1, sampling_params(0), asio::use_future);
    CHECK_THROWS_AS(bad.get(), tinker::invalid_argument);
    auto missing = rest.get_training_run("no-such-run", asio::use_future);
    CHECK_THROWS_AS(missing.get(), not_found_error);
    // void operations too.
    const auto saved = training.save_state("via-future", asio::use_future).get().result(asio::use_future).get();
    rest.set_checkpoint_ttl_from_tinker_path(saved.path, 60, asio::use_future).get();
    CHECK(rest.list_checkpoints(training.model_id(), asio::use_future).get().checkpoints.front().expires_at);
    service.close();
  }

  TEST_CASE("callbacks, as_tuple, deferred in a parallel group, bind_executor") {
    client_fixture f;
    auto strand = asio::make_strand(f.io);
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
      // A plain callback: (exception_ptr, value).
      io_event called(f.io);
      std::exception_ptr callback_error;
      api_future<optim_step_response> callback_future;
      training.optim_step({.learning_rate = 0.01}, [&](std::exception_ptr e, api_future<optim_step_response> fut) {
        callback_error = e;
        callback_future = std::move(fut);
        called.fire();
      });
      co_await called.wait();
      CHECK_FALSE(callback_error);
      REQUIRE(callback_future.valid());
      (void)co_await callback_future.result();

      // as_tuple: failures as values, nothing thrown.
      auto [error, out] =
          co_await training.forward(one(datum()), loss_fn_type::cross_entropy, asio::as_tuple(asio::use_awaitable));
      CHECK(error);
      CHECK_FALSE(out.valid());
      CHECK_THROWS_AS(std::rethrow_exception(error), tinker::invalid_argument);

      // deferred: two samples awaited together in a parallel group.
      auto sampler = co_await training.save_weights_and_get_sampling_client();
      const auto prompt = tokens({256, 'p'});
      auto [order, e1, r1, e2, r2] = co_await asio::experimental::make_parallel_group(
                                         sampler.sample(prompt, 1, sampling_params(2), asio::deferred),
                                         sampler.sample(prompt, 3, sampling_params(2), asio::deferred))
                                         .async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
      CHECK_FALSE(e1);
      CHECK_FALSE(e2);
      CHECK(r1.sequences.size() == 1);
      CHECK(r2.sequences.size() == 3);

      // bind_executor: the completion runs on the executor the token names.
      io_event bound(f.io);
      bool on_strand = false;
      f.service.session_id(asio::bind_executor(strand, [&](std::exception_ptr, std::string) {
        on_strand = strand.running_in_this_thread();
        bound.fire();
      }));
      co_await bound.wait();
      CHECK(on_strand);
    }());
  }

  TEST_CASE("bind_cancellation_slot: cancelling a result() wait stops its polling") {
    request_log wire;
    auto eo = engine_opts();
    eo.on_request = wire.observer();
    client_fixture f(eo);
    io_event polled(f.io);
    std::atomic<bool> armed{false};
    {
      std::lock_guard lock(wire.mutex);
      wire.on_record = [&](const local::request_record& r) {  // (engine thread)
        if (armed && (r.route == "retrieve_future" || r.route == "retrieve_futures")) polled.fire();
      };
    }
    local::fault_options slow;
    slow.sample_step_time = std::chrono::seconds(30);  // the sample stays pending while we cancel
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
      auto sampler = co_await training.save_weights_and_get_sampling_client();
      f.engine.set_faults(slow);
      armed = true;
      auto fut = sampler.submit_sample(tokens({256, 'c'}), 1, sampling_params(2));
      asio::cancellation_signal cancel;
      io_event done(f.io);
      std::exception_ptr outcome;
      fut.result(asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, sample_response) {
        outcome = e;
        done.fire();
      }));
      co_await polled.wait();  // the poll reached the server: now cancel the wait
      cancel.emit(asio::cancellation_type::terminal);
      co_await done.wait();
      REQUIRE(outcome);
      CHECK_THROWS_AS(std::rethrow_exception(outcome), boost::system::system_error);
      f.engine.set_faults({});
    }());
  }

}  // TEST_SUITE

// Several threads at once: `ctest -L threads` (under ThreadSanitizer: scripts/sanitize.sh thread).
TEST_SUITE("threads") {
  TEST_CASE("operations run on the client's executor, completions come back on the caller's") {
    local::embedded_engine engine(engine_opts());
    running_context client_loop;  // the client's io_context, on its own thread
    running_context caller_loop;  // the caller's coroutines, on another
    service_client service(client_loop.io().get_executor(), options_for(engine));
    auto result = asio::co_spawn(
        caller_loop.io(),
        [&]() -> asio::awaitable<bool> {
          bool all_here = true;
          auto training = co_await service.create_lora_training_client(tiny_model, {.rank = 4});
          all_here &= caller_loop.runs_here();
          auto fwd = co_await training.forward(one(text_datum("where am i")), loss_fn_type::cross_entropy);
          all_here &= caller_loop.runs_here();
          (void)co_await fwd.result();
          all_here &= caller_loop.runs_here();
          co_return all_here;
        },
        asio::use_future);
    CHECK(result.get());
    // The client's strand sits on the client's io_context, not the caller's.
    std::promise<bool> on_client_loop;
    asio::post(service.get_executor(), [&] { on_client_loop.set_value(client_loop.runs_here()); });
    CHECK(on_client_loop.get_future().get());
    service.close();
  }

  TEST_CASE(
      "gather on an io_context run by four threads: 400 awaitables and 40 sample futures with every result in order") {
    local::embedded_engine engine(engine_opts());
    running_context loop(4);
    service_client service(loop.io().get_executor(), options_for(engine));
    auto result = asio::co_spawn(
        loop.io(),
        [&]() -> asio::awaitable<bool> {
          // The tasks hop between threads (each post may resume on another one) while gather counts
          // their completions; the progress callback must see 1, 2, ..., n, never concurrently.
          auto task = [](int v) -> asio::awaitable<int> {
            for (int i = 0; i < 3; ++i) co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
            co_return v * 2;
          };
          constexpr int n = 400;
          std::vector<asio::awaitable<int>> tasks;
          for (int v = 0; v < n; ++v) tasks.push_back(task(v));
          std::atomic<int> inside{0};
          std::size_t last = 0;
          bool progress_ok = true;
          auto on_progress = [&](std::size_t done, std::size_t total) {
            progress_ok &= inside.fetch_add(1) == 0 && done == last + 1 && total == n;
            last = done;
            inside.fetch_sub(1);
          };
          auto values = co_await gather(std::move(tasks), on_progress);
          bool ok = progress_ok && last == n && values.size() == n;
          for (int v = 0; v < n && ok; ++v) ok = values[static_cast<std::size_t>(v)] == v * 2;

          auto training = co_await service.create_lora_training_client(tiny_model, {.rank = 4});
          auto sampler = co_await training.save_weights_and_get_sampling_client();
          std::vector<api_future<sample_response>> futures;
          for (int i = 0; i < 40; ++i)
            futures.push_back(sampler.submit_sample(tokens({256, 't'}), i % 4 + 1, sampling_params(2)));
          auto responses = co_await gather(std::move(futures));
          for (std::size_t i = 0; i < responses.size(); ++i) ok &= responses[i].sequences.size() == i % 4 + 1;
          co_return ok&& responses.size() == 40;
        },
        asio::use_future);
    CHECK(result.get());
    service.close();
  }

  TEST_CASE("an io_context run by four threads: 4 training clients and 200 samples at once stay correct") {
    local::embedded_engine engine(engine_opts());
    running_context loop(4);
    service_client service(loop.io().get_executor(), options_for(engine));
    std::atomic<int> samples_done{0}, trainers_done{0};
    std::mutex failures_mutex;
    std::vector<std::string> failures;
    auto fail = [&](const std::string& what) {
      std::lock_guard lock(failures_mutex);
      failures.push_back(what);
    };
    auto trainer = [&](int id) -> asio::awaitable<void> {
      auto training = co_await service.create_lora_training_client(tiny_model, {.rank = 4, .seed = id});
      const auto batch = one(text_datum("thread " + std::to_string(id)));
      std::vector<api_future<forward_backward_output>> fwds;
      std::vector<api_future<optim_step_response>> opts;
      for (int step = 0; step < 5; ++step) {  // all queued before any result is awaited
        fwds.push_back(co_await training.forward_backward(batch, loss_fn_type::cross_entropy));
        opts.push_back(co_await training.optim_step({.learning_rate = 0.01}));
      }
      double first = 0, last = 0;
      for (std::size_t i = 0; i < fwds.size(); ++i) {
        (i == 0 ? first : last) = loss_of(co_await fwds[i].result());
        (void)co_await opts[i].result();
      }
      if (!(last < first))
        fail("trainer " + std::to_string(id) + ": the loss did not fall: " + std::to_string(first) + " -> " +
             std::to_string(last));
      auto sampler = co_await training.save_weights_and_get_sampling_client();
      std::vector<api_future<sample_response>> samples;
      for (int i = 0; i < 50; ++i)
        samples.push_back(sampler.submit_sample(tokens({256, static_cast<token_id>('a' + id)}), 1, sampling_params(2)));
      for (auto& s : samples) {
        if ((co_await s.result()).sequences.size() == 1) ++samples_done;
      }
      ++trainers_done;
    };
    std::vector<std::future<void>> running;
    for (int id = 0; id < 4; ++id)
      running.push_back(asio::co_spawn(
          loop.io(), [&, id] { return trainer(id); }, asio::use_future));
    for (auto& r : running) r.get();  // rethrows a trainer's exception
    for (const auto& f : failures) MESSAGE(f);
    CHECK(failures.empty());
    CHECK(trainers_done == 4);
    CHECK(samples_done == 200);
    service.close();
  }

}  // TEST_SUITE

TEST_SUITE("client async") {
  TEST_CASE("a heartbeat the server refuses reaches the observer once and the next call that needs the session") {
    local::embedded_engine engine(engine_opts());
    asio::io_context io;
    io_event lost(io);
    std::vector<session_lost_event> events;
    auto o = options_for(engine);
    o.heartbeat_interval = std::chrono::milliseconds(20);
    o.idle_connection_timeout = std::chrono::seconds(1);  // the last run() below waits for idle connections to close
    o.on_session_lost = [&](const session_lost_event& e) {
      events.push_back(e);
      lost.fire();
    };
    service_client service(io.get_executor(), o);
    run_coro(io, [&]() -> asio::awaitable<void> {
      const auto id = co_await service.session_id();
      // The session ends on the server (as an expiry would end it): heartbeats answer 410 from then on.
      sync_http_client http(engine.base_url(), "tml-async-key");
      REQUIRE(http.post_raw("/api/v1/sessions/" + id + "/finish", "{}", "application/json").status == 200);
      co_await lost.wait();
      REQUIRE(events.size() == 1);
      CHECK(events[0].session_id == id);
      CHECK(events[0].status == 410);
      std::string message;
      try {
        (void)co_await service.create_lora_training_client(tiny_model, {.rank = 4});
      } catch (const session_lost_error& e) {
        message = e.what();
        CHECK(e.session_id() == id);
      }
      CHECK(message.find("was lost") != std::string::npos);
    }());
    CHECK(events.size() == 1);
    // Nothing keeps the loop running (the idle connections close after a second): the heartbeat
    // ended with the session.
    io.restart();
    io.run();
    CHECK(io.stopped());
  }

  TEST_CASE("io.run() returns by itself once the coroutine is done and its clients are gone") {
    local::embedded_engine engine(engine_opts());
    asio::io_context io;
    bool done = false;
    auto o = options_for(engine);
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          service_client service(co_await asio::this_coro::executor, o);
          auto training = co_await service.create_lora_training_client(tiny_model, {.rank = 4});
          auto fwd = co_await training.forward_backward(one(text_datum("and then")), loss_fn_type::cross_entropy);
          (void)co_await fwd.result();
          auto sampler = co_await training.save_weights_and_get_sampling_client();
          const auto prompt = tokens({256});
          (void)co_await sampler.sample(prompt, 1, sampling_params(2));
          done = true;
        },
        [](std::exception_ptr e) {
          if (e) std::rethrow_exception(e);
        });
    // A watchdog turns a hang into a failure (not a timing assertion: it acts only if run() never returns).
    std::mutex mutex;
    std::condition_variable cv;
    bool returned = false, stopped_by_watchdog = false;
    std::thread watchdog([&] {
      std::unique_lock lock(mutex);
      if (!cv.wait_for(lock, std::chrono::minutes(2), [&] { return returned; })) {
        stopped_by_watchdog = true;
        io.stop();
      }
    });
    io.run();
    {
      std::lock_guard lock(mutex);
      returned = true;
    }
    cv.notify_one();
    watchdog.join();
    CHECK_FALSE(stopped_by_watchdog);
    CHECK(done);
  }

  TEST_CASE("gather: many sample futures at once with results in their order and progress once per completion") {
    client_fixture f;
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
      auto sampler = co_await training.save_weights_and_get_sampling_client();
      // The futures differ in their number of sequences, so the order of the results is checkable.
      constexpr std::size_t n = 24;
      std::vector<api_future<sample_response>> futures;
      for (std::size_t i = 0; i < n; ++i) {
        auto params = sampling_params(3).with_seed(i);
        futures.push_back(sampler.submit_sample(tokens({256, 'g'}), static_cast<int>(i % 3 + 1), std::move(params)));
      }
      std::vector<std::pair<std::size_t, std::size_t>> progress;
      auto on_progress = [&](std::size_t done, std::size_t total) { progress.emplace_back(done, total); };
      auto responses = co_await gather(futures, on_progress);
      REQUIRE(responses.size() == n);
      for (std::size_t i = 0; i < n; ++i) CHECK(responses[i].sequences.size() == i % 3 + 1);
      REQUIRE(progress.size() == n);
      for (std::size_t i = 0; i < n; ++i) CHECK(progress[i] == std::pair<std::size_t, std::size_t>(i + 1, n));
      // The results were taken out of the futures.
      auto [error, again] = co_await futures[0].result(asio::as_tuple(asio::use_awaitable));
      CHECK(error);

      // Nothing to gather: an empty result at once, no progress.
      progress.clear();
      auto none = co_await gather(std::vector<api_future<sample_response>>(), on_progress);
      CHECK(none.empty());
      CHECK(progress.empty());
      // An empty future is a caller's mistake.
      std::vector<api_future<sample_response>> with_empty(2);
      with_empty[0] = sampler.submit_sample(tokens({256}), 1, sampling_params(1));
      auto [bad, nothing] = co_await asio::co_spawn(f.io, gather(with_empty), asio::as_tuple(asio::use_awaitable));
      CHECK_THROWS_WITH_AS(std::rethrow_exception(bad), "gather: futures[1] is an empty api_future",
                           tinker::invalid_argument);
    }());
  }

  TEST_CASE("gather takes a completion token: a callback on the loop, use_future from a plain thread") {
    local::embedded_engine engine(engine_opts());
    running_context loop;
    service_client service(loop.io().get_executor(), options_for(engine));
    auto training = service.create_lora_training_client(tiny_model, {.rank = 4}, asio::use_future).get();
    auto sampler = training.save_weights_and_get_sampling_client(asio::use_future).get();
    auto submit = [&](std::size_t n) {
      std::vector<api_future<sample_response>> futures;
      for (std::size_t i = 0; i < n; ++i)
        futures.push_back(sampler.submit_sample(tokens({256, 't'}), static_cast<int>(i % 2 + 1), sampling_params(2)));
      return futures;
    };
    // use_future: this thread blocks on the results while the loop's thread does the work.
    std::size_t progress_calls = 0;
    auto responses = gather(
                         submit(8), [&](std::size_t, std::size_t) { ++progress_calls; }, asio::use_future)
                         .get();
    REQUIRE(responses.size() == 8);
    for (std::size_t i = 0; i < 8; ++i) CHECK(responses[i].sequences.size() == i % 2 + 1);
    CHECK(progress_calls == 8);
    // A callback: called once, on the loop's thread, with the results or the failure.
    std::promise<std::pair<std::exception_ptr, std::size_t>> called;
    bool on_loop = false;
    gather(submit(5), {}, [&](std::exception_ptr e, std::vector<sample_response> out) {
      on_loop = loop.runs_here();
      called.set_value({e, out.size()});
    });
    auto [error, count] = called.get_future().get();
    CHECK_FALSE(error);
    CHECK(count == 5);
    CHECK(on_loop);
    // An empty future: the failure arrives through the token too, nothing thrown at the call.
    std::vector<api_future<sample_response>> with_empty = submit(1);
    with_empty.emplace_back();
    auto failed = gather(std::move(with_empty), {}, asio::use_future);
    CHECK_THROWS_WITH_AS(failed.get(), "gather: futures[1] is an empty api_future", tinker::invalid_argument);
    service.close();
  }

  TEST_CASE("gather: a failed future fails the whole gather with its own error") {
    client_fixture f;
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
      auto sampler = co_await training.save_weights_and_get_sampling_client();
      std::vector<api_future<sample_response>> futures;
      for (int i = 0; i < 6; ++i) futures.push_back(sampler.submit_sample(tokens({256, 'c'}), 1, sampling_params(2)));
      futures[3].cancel();  // this one fails with operation_aborted
      auto [error, out] = co_await asio::co_spawn(f.io, gather(futures), asio::as_tuple(asio::use_awaitable));
      REQUIRE(error);
      CHECK(out.empty());
      try {
        std::rethrow_exception(error);
      } catch (const boost::system::system_error& e) {
        CHECK(e.code() == asio::error::operation_aborted);
      }
    }());
  }

  TEST_CASE("gather: with awaitables the first failure cancels the rest and they settle before it is rethrown") {
    asio::io_context io;
    run_coro(
        io,
        [&]() -> asio::awaitable<void> {
          std::vector<std::string> settled;  // what each task saw, in the order they ended
          // Tasks that would wait forever unless cancelled.
          auto forever = [&](std::string name) -> asio::awaitable<int> {
            asio::steady_timer t(co_await asio::this_coro::executor, asio::steady_timer::time_point::max());
            auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
            settled.push_back(name + (ec == asio::error::operation_aborted ? " cancelled" : " woke"));
            co_return 0;
          };
          auto quick = [&](int v) -> asio::awaitable<int> {
            co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
            settled.push_back("quick " + std::to_string(v));
            co_return v;
          };
          auto failing = [&]() -> asio::awaitable<int> {
            co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
            co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
            settled.push_back("failed");
            throw std::runtime_error("task 2 failed");
          };

          // All succeed: results in order.
          std::vector<asio::awaitable<int>> ok;
          for (int v = 0; v < 5; ++v) ok.push_back(quick(v * 10));
          auto values = co_await gather(std::move(ok));
          CHECK(values == std::vector<int>{0, 10, 20, 30, 40});

          settled.clear();
          std::vector<asio::awaitable<int>> tasks;
          tasks.push_back(forever("a"));
          tasks.push_back(quick(1));
          tasks.push_back(failing());
          tasks.push_back(forever("b"));
          auto [error, out] =
              co_await asio::co_spawn(io, gather(std::move(tasks)), asio::as_tuple(asio::use_awaitable));
          REQUIRE(error);
          CHECK_THROWS_WITH_AS(std::rethrow_exception(error), "task 2 failed", std::runtime_error);
          // Both endless tasks were cancelled, and had ended before gather returned.
          REQUIRE(settled.size() == 4);
          CHECK(settled[0] == "quick 1");
          CHECK(settled[1] == "failed");
          CHECK(std::count(settled.begin(), settled.end(), "a cancelled") == 1);
          CHECK(std::count(settled.begin(), settled.end(), "b cancelled") == 1);

          // A throwing progress callback is a failure too.
          settled.clear();
          std::vector<asio::awaitable<int>> more;
          more.push_back(quick(7));
          more.push_back(forever("c"));
          auto throwing = [](std::size_t, std::size_t) { throw std::logic_error("progress refused"); };
          auto [error2, out2] =
              co_await asio::co_spawn(io, gather(std::move(more), throwing), asio::as_tuple(asio::use_awaitable));
          CHECK_THROWS_WITH_AS(std::rethrow_exception(error2), "progress refused", std::logic_error);
          CHECK(settled == std::vector<std::string>{"quick 7", "c cancelled"});
        }(),
        std::chrono::seconds(30));
  }

  TEST_CASE(
      "gather: cancelling the wait of the caller cancels every operation and then completes with operation_aborted") {
    asio::io_context io;
    std::vector<std::string> settled;
    auto forever = [&](std::string name) -> asio::awaitable<int> {
      asio::steady_timer t(co_await asio::this_coro::executor, asio::steady_timer::time_point::max());
      auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
      settled.push_back(name + (ec == asio::error::operation_aborted ? " cancelled" : " woke"));
      co_return 0;
    };
    std::vector<asio::awaitable<int>> tasks;
    tasks.push_back(forever("a"));
    tasks.push_back(forever("b"));
    asio::cancellation_signal signal;
    std::exception_ptr error;
    bool done = false;
    std::size_t settled_when_done = 0;
    asio::co_spawn(io, gather(std::move(tasks)),
                   asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr e, std::vector<int>) {
                     error = e;
                     done = true;
                     settled_when_done = settled.size();
                   }));
    // Run until both tasks wait on their timers (nothing else can make progress), then cancel.
    io.poll();
    REQUIRE_FALSE(done);
    CHECK(settled.empty());
    signal.emit(asio::cancellation_type::terminal);
    io.run_for(std::chrono::seconds(30));
    REQUIRE(done);
    CHECK(settled_when_done == 2);
    CHECK(std::count(settled.begin(), settled.end(), "a cancelled") == 1);
    CHECK(std::count(settled.begin(), settled.end(), "b cancelled") == 1);
    REQUIRE(error);
    try {
      std::rethrow_exception(error);
    } catch (const boost::system::system_error& e) {
      CHECK(e.code() == asio::error::operation_aborted);
    }
  }

}  // TEST_SUITE
