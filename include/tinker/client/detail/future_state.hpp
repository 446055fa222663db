// The shared state behind an api_future: a one-shot result slot that coroutines can await, plus
// the cancellation signal of the task producing it (its poll loop). Lives on the client's
// executor; only ready() may be asked from any thread.
#pragma once

#include <tinker/detail/async_event.hpp>
#include <tinker/error.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <utility>

namespace tinker::detail {

namespace asio = boost::asio;

template <class T>
class future_state {
public:
  explicit future_state(asio::any_io_executor ex) : executor_(std::move(ex)) {}

  const asio::any_io_executor& executor() const noexcept { return executor_; }

  /// Whether the value or the failure is there. Any thread.
  bool ready() const noexcept { return ready_.load(std::memory_order_acquire); }

  void set_value(T v) {
    if (ready()) return;
    value_.emplace(std::move(v));
    wake();
  }

  void set_exception(std::exception_ptr e) {
    if (ready()) return;
    error_ = std::move(e);
    wake();
  }

  /// The producer's cancellation slot (its poll loop binds to this).
  asio::cancellation_slot producer_slot() { return producer_cancel_.slot(); }

  /// Stops the producer (its in-flight request is cancelled, its connection released).
  void cancel_producer() {
    abandoned_ = true;
    producer_cancel_.emit(asio::cancellation_type::terminal);
  }

  /// Marks the result as wanted by nobody, without cancelling the producer.
  void abandon() noexcept { abandoned_ = true; }

  /// Whether the waiter gave up (cancel_producer or abandon was called): a producer that cannot
  /// stop at once (a custom loss must still send its backward pass) checks this before doing more
  /// for nobody.
  bool abandoned() const noexcept { return abandoned_; }

  /// Waits until ready (or `deadline`). Returns false on timeout. Throws
  /// boost::system::system_error(operation_aborted) when the awaiting coroutine is cancelled.
  asio::awaitable<bool> wait_until(std::chrono::steady_clock::time_point deadline) {
    while (!ready()) {
      if (std::chrono::steady_clock::now() >= deadline) co_return false;
      co_await waiters_.wait(deadline);
    }
    co_return true;
  }

  /// Takes the value (once), or rethrows the failure (every time).
  T take() {
    if (error_) std::rethrow_exception(error_);
    if (!value_) throw tinker::invalid_argument("api_future: the result was already taken by an earlier result()");
    T v = std::move(*value_);
    value_.reset();
    taken_ = true;
    return v;
  }

  bool taken() const noexcept { return taken_; }

private:
  void wake() {
    ready_.store(true, std::memory_order_release);
    waiters_.notify_all();
  }

  asio::any_io_executor executor_;
  std::atomic<bool> ready_{false};
  std::optional<T> value_;
  std::exception_ptr error_;
  bool taken_ = false;
  bool abandoned_ = false;
  async_event waiters_;
  asio::cancellation_signal producer_cancel_;
};

}  // namespace tinker::detail
