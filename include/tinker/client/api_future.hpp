// api_future<T>: a server-side future, the second of the SDK's two awaits.
//
//   auto fwd = co_await training.forward_backward(batch, loss_fn_type::cross_entropy);  // submitted
//   auto opt = co_await training.optim_step(adam);                                      // queued behind it
//   auto out = co_await fwd.result();                                                   // polled result
//
// Polling starts at submission, in the background. result() takes the value out (once, like
// std::future::get); failures rethrow on every call. Cancelling the coroutine awaiting result()
// (e.g. from an asio::experimental::parallel_group) stops the polling and cancels its in-flight
// request; result(timeout) only bounds the wait and leaves the polling running.
#pragma once

#include <tinker/client/detail/future_state.hpp>
#include <tinker/error.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace tinker {

template <class T>
class api_future {
public:
  using value_type = T;

  api_future() = default;
  api_future(std::shared_ptr<detail::future_state<T>> state, std::vector<std::string> request_ids)
      : state_(std::move(state)), request_ids_(std::move(request_ids)) {}

  /// Waits for the result and takes it. Throws request_failed_error when the server-side request
  /// failed, api_error subclasses for transport and protocol failures.
  boost::asio::awaitable<T> result() {
    auto state = checked();
    struct abandon_guard {
      detail::future_state<T>* s;
      bool armed = true;
      ~abandon_guard() {
        if (armed && !s->ready()) s->cancel_producer();  // our waiter was cancelled: stop polling too
      }
    } guard{state.get()};
    co_await state->wait_until(std::chrono::steady_clock::time_point::max());
    guard.armed = false;
    co_return state->take();
  }

  /// Like result(), but throws api_timeout_error if the result is not there within `timeout`.
  /// The future keeps polling; call result() again later.
  template <class Rep, class Period>
  boost::asio::awaitable<T> result(std::chrono::duration<Rep, Period> timeout) {
    auto state = checked();
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout);
    if (!co_await state->wait_until(deadline))
      throw api_timeout_error("api_future: no result within " +
                              std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) +
                              " ms (still polling)");
    co_return state->take();
  }

  /// Whether the result (or failure) has arrived.
  bool ready() const noexcept { return state_ && state_->ready(); }
  bool valid() const noexcept { return state_ != nullptr; }

  /// Stops polling; a waiting result() then fails with operation_aborted.
  void cancel() {
    if (state_ && !state_->ready()) {
      state_->cancel_producer();
      state_->set_exception(
          std::make_exception_ptr(boost::system::system_error(boost::asio::error::operation_aborted)));
    }
  }

  /// The server's request ids behind this future (several for a chunked forward_backward).
  const std::vector<std::string>& request_ids() const noexcept { return request_ids_; }

private:
  std::shared_ptr<detail::future_state<T>> checked() const {
    if (!state_) throw tinker::invalid_argument("api_future: result() on an empty future");
    return state_;
  }

  std::shared_ptr<detail::future_state<T>> state_;
  std::vector<std::string> request_ids_;
};

}  // namespace tinker
