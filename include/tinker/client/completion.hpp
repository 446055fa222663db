// How the client's operations complete. Every asynchronous call of service_client,
// training_client, sampling_client, rest_client and api_future takes a trailing Asio completion
// token, `asio::use_awaitable` when none is given:
//
//   auto fwd = co_await training.forward_backward(batch, loss);                 // awaitable
//   auto f = training.forward_backward(batch, loss, asio::use_future);          // std::future
//   training.optim_step(adam, [](std::exception_ptr e, auto fut) { ... });      // callback
//   auto [e, out] = co_await fut.result(asio::as_tuple(asio::use_awaitable));   // no throw
//   auto op = sampler.sample(prompt, 1, params, asio::deferred);                // parallel groups
//
// An operation producing a T completes with `void(std::exception_ptr, T)` (`void(std::exception_ptr)`
// when it produces nothing): the exception is one of the library's error types (api_error and its
// subclasses, tinker::invalid_argument for mistakes caught before sending), or
// system_error(operation_aborted) when the operation was cancelled. Awaiting rethrows it.
//
// Operations run on the client's executor (a strand made when the service_client is created),
// whatever executor or thread starts them; the completion is delivered through the token's
// associated executor (for use_awaitable, the awaiting coroutine's). Cancellation through the
// token's associated cancellation slot (bind_cancellation_slot, parallel groups, a cancelled
// awaiting coroutine) reaches the operation.
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <exception>

namespace tinker {

/// The token an operation uses when the caller gives none: `co_await client.call(...)`.
using default_completion_token = boost::asio::use_awaitable_t<>;

/// The completion signature of an operation producing a T.
template <class T>
struct completion_signature {
  using type = void(std::exception_ptr, T);
};
template <>
struct completion_signature<void> {
  using type = void(std::exception_ptr);
};
template <class T>
using completion_signature_t = typename completion_signature<T>::type;

namespace detail {

/// The type-erased handler an operation's implementation receives (one non-template function per
/// operation, compiled once in separate-compilation mode, whatever the caller's token).
template <class T>
using any_handler = boost::asio::any_completion_handler<completion_signature_t<T>>;

/// Starts an operation with the caller's token: `impl(args..., handler)` runs inside the
/// initiation, with the token's handler erased into an any_handler<T>.
template <class T, class Token, class Impl, class... Args>
auto initiate(Token&& token, Impl* impl, Args&&... args) {
  return boost::asio::async_initiate<Token, completion_signature_t<T>>(
      [impl](auto handler, auto&&... a) { impl(std::forward<decltype(a)>(a)..., any_handler<T>(std::move(handler))); },
      token, std::forward<Args>(args)...);
}

}  // namespace detail
}  // namespace tinker
