// api_future<T>: a server-side future, the second of the SDK's two awaits.
//
//   auto fwd = co_await training.forward_backward(batch, loss_fn_type::cross_entropy);  // submitted
//   auto opt = co_await training.optim_step(adam);                                      // queued behind it
//   auto out = co_await fwd.result();                                                   // polled result
//
// Polling starts at submission, in the background, on the client's executor. result() takes the
// value out (once, like std::future::get); failures are delivered on every call. It takes a
// completion token like every operation (completion.hpp): `fwd.result(asio::use_future).get()`
// from a plain thread. Cancelling the wait on result() (a cancelled awaiting coroutine, a parallel
// group, bind_cancellation_slot) stops the polling and cancels its in-flight request;
// result(timeout) only bounds the wait and leaves the polling running.
#pragma once

#include <tinker/client/completion.hpp>
#include <tinker/client/detail/future_state.hpp>
#include <tinker/detail/config.hpp>
#include <tinker/error.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tinker {

namespace detail {

/// Waits for the state's result on its executor, then completes `handler` with it. With a
/// deadline, a wait that outlasts it fails with api_timeout_error (`limit` is what the message
/// names); without one, cancelling the wait stops the producer too.
template <class T>
void async_future_result(std::shared_ptr<future_state<T>> state,
                         std::optional<std::chrono::steady_clock::time_point> deadline, std::chrono::milliseconds limit,
                         any_handler<T> handler);

struct future_access;

}  // namespace detail

template <class T>
class api_future {
  friend struct detail::future_access;

public:
  using value_type = T;
  using executor_type = boost::asio::any_io_executor;

  api_future() = default;
  api_future(std::shared_ptr<detail::future_state<T>> state, std::vector<std::string> request_ids)
      : state_(std::move(state)), request_ids_(std::move(request_ids)) {}

  /// Waits for the result and takes it. Fails with request_failed_error when the server-side
  /// request failed, api_error subclasses for transport and protocol failures.
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<T>) Token = default_completion_token>
  auto result(Token&& token = {}) {
    return detail::initiate<T>(std::forward<Token>(token), &detail::async_future_result<T>, checked(),
                               std::optional<std::chrono::steady_clock::time_point>(), std::chrono::milliseconds(0));
  }

  /// Like result(), but fails with api_timeout_error if the result is not there within `timeout`
  /// (counted from this call). The future keeps polling; call result() again later.
  template <class Rep, class Period,
            BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<T>) Token = default_completion_token>
  auto result(std::chrono::duration<Rep, Period> timeout, Token&& token = {}) {
    const auto limit = std::chrono::duration_cast<std::chrono::milliseconds>(timeout);
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout);
    return detail::initiate<T>(std::forward<Token>(token), &detail::async_future_result<T>, checked(),
                               std::optional<std::chrono::steady_clock::time_point>(deadline), limit);
  }

  /// Whether the result (or failure) has arrived. Any thread.
  bool ready() const noexcept { return state_ && state_->ready(); }
  bool valid() const noexcept { return state_ != nullptr; }

  /// Stops polling; a waiting result() then fails with operation_aborted. Runs on the future's
  /// executor (from any thread).
  void cancel() {
    if (!state_) return;
    boost::asio::dispatch(state_->executor(), [state = state_] {
      if (state->ready()) return;
      state->cancel_producer();
      state->set_exception(std::make_exception_ptr(boost::system::system_error(boost::asio::error::operation_aborted)));
    });
  }

  /// The executor the future lives on (its client's strand).
  executor_type get_executor() const { return state_ ? state_->executor() : executor_type(); }

  /// The server's request ids behind this future (several for a chunked forward_backward).
  const std::vector<std::string>& request_ids() const noexcept { return request_ids_; }

private:
  const std::shared_ptr<detail::future_state<T>>& checked() const {
    if (!state_) throw tinker::invalid_argument("api_future: result() on an empty future");
    return state_;
  }

  std::shared_ptr<detail::future_state<T>> state_;
  std::vector<std::string> request_ids_;
};

}  // namespace tinker

#ifdef TINKER_HEADER_ONLY
#include <tinker/client/impl/api_future.ipp>
#endif
