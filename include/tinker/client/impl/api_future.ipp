// api_future<T>::result: waiting on the state, on the client's executor.
#pragma once

#include <tinker/client/api_future.hpp>
#include <tinker/client/detail/spawn.hpp>
#include <tinker/types.hpp>

#include <boost/asio/awaitable.hpp>

#include <string>

namespace tinker::detail {

template <class T>
boost::asio::awaitable<T> wait_for_result(std::shared_ptr<future_state<T>> state,
                                          std::optional<std::chrono::steady_clock::time_point> deadline,
                                          std::chrono::milliseconds limit) {
  if (deadline) {
    if (!co_await state->wait_until(*deadline))
      throw api_timeout_error("api_future: no result within " + std::to_string(limit.count()) + " ms (still polling)");
    co_return state->take();
  }
  struct abandon_guard {
    future_state<T>* s;
    bool armed = true;
    ~abandon_guard() {
      if (armed && !s->ready()) s->cancel_producer();  // our waiter was cancelled: stop polling too
    }
  } guard{state.get()};
  co_await state->wait_until(std::chrono::steady_clock::time_point::max());
  guard.armed = false;
  co_return state->take();
}

/// The library's own way to await one of its futures: straight on the state, on the executor the
/// caller already runs on (the client's), without the initiation a user's call goes through.
struct future_access {
  template <class T>
  static const std::shared_ptr<future_state<T>>& state(const api_future<T>& f) noexcept {
    return f.state_;
  }
};

template <class T>
boost::asio::awaitable<T> await_result(api_future<T> f) {
  auto state = future_access::state(f);
  if (!state) throw tinker::invalid_argument("api_future: result() on an empty future");
  co_return co_await wait_for_result<T>(std::move(state), std::nullopt, std::chrono::milliseconds(0));
}

template <class T>
void async_future_result(std::shared_ptr<future_state<T>> state,
                         std::optional<std::chrono::steady_clock::time_point> deadline, std::chrono::milliseconds limit,
                         any_handler<T> handler) {
  auto ex = state->executor();
  spawn_op<T>(ex, wait_for_result<T>(std::move(state), deadline, limit), std::move(handler));
}

#ifdef TINKER_SEPARATE_COMPILATION
// The results the library's futures carry, compiled here once.
#define TINKER_INSTANTIATE_FUTURE_RESULT(T)                                                  \
  template void async_future_result<T>(std::shared_ptr<future_state<T>>,                     \
                                       std::optional<std::chrono::steady_clock::time_point>, \
                                       std::chrono::milliseconds, any_handler<T>);
TINKER_INSTANTIATE_FUTURE_RESULT(forward_backward_output)
TINKER_INSTANTIATE_FUTURE_RESULT(optim_step_response)
TINKER_INSTANTIATE_FUTURE_RESULT(save_weights_response)
TINKER_INSTANTIATE_FUTURE_RESULT(load_weights_response)
TINKER_INSTANTIATE_FUTURE_RESULT(save_weights_for_sampler_response)
TINKER_INSTANTIATE_FUTURE_RESULT(sample_response)
#undef TINKER_INSTANTIATE_FUTURE_RESULT
#endif

}  // namespace tinker::detail
