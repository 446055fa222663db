// How an operation's implementation completes its caller's (type-erased) handler: by running a
// coroutine on the client's executor to its end.
#pragma once

#include <tinker/client/completion.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>

#include <utility>

namespace tinker::detail {

/// Runs `op` on `ex` (the client's strand) and completes `handler` with its outcome, through the
/// handler's own executor. The handler's cancellation slot reaches `op`.
template <class T>
void spawn_op(const boost::asio::any_io_executor& ex, boost::asio::awaitable<T> op, any_handler<T> handler) {
  boost::asio::co_spawn(ex, std::move(op), std::move(handler));
}

}  // namespace tinker::detail
