// gather: awaits many futures (or awaitables) at once.
//
//   std::vector<tinker::api_future<tinker::sample_response>> futures;
//   for (auto& prompt : prompts) futures.push_back(sampler.submit_sample(prompt, 4, params));
//   auto responses = co_await tinker::gather(std::move(futures), [](std::size_t done, std::size_t total) {
//     std::printf("\r%zu/%zu", done, total);
//   });
//
// The results come back in the order of the inputs, whatever order they finish in. On the first
// failure (or when the caller's wait is cancelled, or the progress callback throws) every
// operation still running is cancelled (an api_future stops polling, an awaitable is cancelled
// through its cancellation state), gather waits until all of them have settled, so nothing it
// started outlives it, and then rethrows that first failure; later failures are dropped. Use
// as_tuple on a single future's result() instead to keep partial results.
//
// The progress callback is called once per finished operation, with done = 1, 2, ..., total, from
// gather's own coroutine (never concurrently with itself, never after gather returned). Awaitables
// run on the caller's executor; gather's bookkeeping runs on a strand of it, so a multi-threaded
// executor is fine.
#pragma once

#include <tinker/client/api_future.hpp>
#include <tinker/detail/async_event.hpp>
#include <tinker/error.hpp>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace tinker {

/// Called as operations finish: `done` of `total` have (done = 1, 2, ..., total).
using gather_progress = std::function<void(std::size_t done, std::size_t total)>;

namespace detail {

/// What gather's operations share with it: written by their completion handlers and read by
/// gather's coroutine, all on one strand.
template <class T>
struct gather_state {
  using strand_type = boost::asio::strand<boost::asio::any_io_executor>;

  gather_state(const boost::asio::any_io_executor& ex, std::size_t n)
      : strand(boost::asio::make_strand(ex)), results(n), signals(n), settled(n, false) {}

  strand_type strand;
  async_event wake;  // notified to wake the waiting coroutine
  std::vector<std::optional<T>> results;
  std::vector<boost::asio::cancellation_signal> signals;  // one per operation
  std::vector<bool> settled;
  std::size_t done = 0;
  std::exception_ptr failure;  // the first one
  bool cancelling = false;

  /// A completion handler for operation i, run on the strand.
  auto handler(std::size_t i, const std::shared_ptr<gather_state>& self) {
    auto bound = boost::asio::bind_executor(strand, [self, i](std::exception_ptr e, T value) {
      self->settled[i] = true;
      ++self->done;
      if (e) {
        if (!self->failure) self->failure = e;
      } else {
        self->results[i].emplace(std::move(value));
      }
      self->wake.notify_all();
    });
    return boost::asio::bind_cancellation_slot(signals[i].slot(), std::move(bound));
  }

  /// Cancels every operation still running (once).
  void cancel_rest() {
    if (cancelling) return;
    cancelling = true;
    for (std::size_t i = 0; i < signals.size(); ++i)
      if (!settled[i]) signals[i].emit(boost::asio::cancellation_type::terminal);
  }
};

/// Runs on the state's strand: starts every operation with `start(i, handler)`, reports progress,
/// waits for all to settle, and returns the results in order or rethrows the first failure.
template <class T, class Start>
boost::asio::awaitable<std::vector<T>> gather_on_strand(std::shared_ptr<gather_state<T>> s, Start start,
                                                        gather_progress on_progress) {
  namespace asio = boost::asio;
  // A cancelled caller must still wait for what it started: no await may throw on cancellation.
  co_await asio::this_coro::throw_if_cancelled(false);
  const std::size_t total = s->results.size();
  for (std::size_t i = 0; i < total; ++i) start(i, s->handler(i, s));
  std::size_t reported = 0;
  for (;;) {
    while (reported < s->done) {
      ++reported;
      if (on_progress && !s->failure) {
        try {
          on_progress(reported, total);
        } catch (...) {
          s->failure = std::current_exception();
        }
      }
    }
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cs.cancelled() != asio::cancellation_type::none) {
      // The caller stopped waiting: cancel everything, then keep waiting for it to settle.
      if (!s->failure)
        s->failure = std::make_exception_ptr(boost::system::system_error(asio::error::operation_aborted));
      co_await asio::this_coro::reset_cancellation_state();
    }
    if (s->failure) s->cancel_rest();
    if (s->done == total) break;
    // Woken by each completion, and by the caller's cancellation (which the loop above handles).
    try {
      co_await s->wake.wait();
    } catch (const boost::system::system_error& e) {
      if (e.code() != asio::error::operation_aborted) throw;
    }
  }
  if (s->failure) std::rethrow_exception(s->failure);
  std::vector<T> out;
  out.reserve(total);
  for (auto& r : s->results) out.push_back(std::move(*r));
  co_return out;
}

template <class T, class Start>
boost::asio::awaitable<std::vector<T>> gather_impl(std::size_t n, Start start, gather_progress on_progress) {
  auto ex = co_await boost::asio::this_coro::executor;
  if (n == 0) co_return std::vector<T>{};
  auto state = std::make_shared<gather_state<T>>(ex, n);
  auto strand = state->strand;
  auto body = gather_on_strand<T>(std::move(state), std::move(start), std::move(on_progress));
  co_return co_await boost::asio::co_spawn(strand, std::move(body), boost::asio::use_awaitable);
}

template <class T>
boost::asio::awaitable<std::vector<T>> gather_futures(std::vector<api_future<T>> futures, gather_progress on_progress) {
  for (std::size_t i = 0; i < futures.size(); ++i)
    if (!futures[i].valid())
      throw tinker::invalid_argument("gather: futures[" + std::to_string(i) + "] is an empty api_future");
  const auto n = futures.size();
  auto start = [futures = std::move(futures)](std::size_t i, auto handler) mutable {
    futures[i].result(std::move(handler));
  };
  auto op = gather_impl<T>(n, std::move(start), std::move(on_progress));
  co_return co_await std::move(op);
}

}  // namespace detail

/// Awaits every future; completes with their results in the futures' order, taken out of them as
/// result() takes them (the futures may be passed as copies; their results are gone afterwards).
/// See the top of this file for failures, cancellation and progress; an empty future is a
/// tinker::invalid_argument, delivered like any failure.
///
/// Like every operation it takes a completion token, `use_awaitable` by default: `co_await
/// gather(futures)`, `gather(futures, {}, asio::use_future).get()`, or a callback
/// `void(std::exception_ptr, std::vector<T>)`. The gathering runs on the token's associated
/// executor, else on the first future's.
template <class T, BOOST_ASIO_COMPLETION_TOKEN_FOR(void(std::exception_ptr, std::vector<T>))
                       Token = boost::asio::use_awaitable_t<>>
auto gather(std::vector<api_future<T>> futures, gather_progress on_progress = {}, Token&& token = {}) {
  auto initiation = [](auto handler, std::vector<api_future<T>> futures, gather_progress on_progress) {
    boost::asio::any_io_executor fallback = boost::asio::system_executor();
    for (const auto& f : futures)
      if (f.valid()) {
        fallback = f.get_executor();
        break;
      }
    auto ex = boost::asio::get_associated_executor(handler, fallback);
    boost::asio::co_spawn(ex, detail::gather_futures(std::move(futures), std::move(on_progress)), std::move(handler));
  };
  return boost::asio::async_initiate<Token, void(std::exception_ptr, std::vector<T>)>(
      std::move(initiation), token, std::move(futures), std::move(on_progress));
}

/// Runs every awaitable concurrently on the caller's executor; returns their results in order.
/// See the top of this file for failures, cancellation and progress.
template <class T>
requires(!std::is_void_v<T>) boost::asio::awaitable<std::vector<T>> gather(std::vector<boost::asio::awaitable<T>> tasks,
                                                                           gather_progress on_progress = {}) {
  auto ex = co_await boost::asio::this_coro::executor;
  const auto n = tasks.size();
  auto start = [ex, tasks = std::move(tasks)](std::size_t i, auto handler) mutable {
    boost::asio::co_spawn(ex, std::move(tasks[i]), std::move(handler));
  };
  auto op = detail::gather_impl<T>(n, std::move(start), std::move(on_progress));
  co_return co_await std::move(op);
}

}  // namespace tinker
