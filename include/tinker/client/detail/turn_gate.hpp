// Keeps one training client's submissions in seq_id order: a caller takes numbers when it is
// called (so call order decides), then waits until every smaller number has been posted.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <chrono>
#include <cstdint>
#include <map>

namespace tinker::detail {

namespace asio = boost::asio;

class turn_gate {
public:
  /// Reserves `count` consecutive numbers; returns the first. seq_ids start at 1 (0 is the model's creation).
  std::int64_t reserve(std::int64_t count = 1) {
    const auto first = next_reserved_;
    next_reserved_ += count;
    return first;
  }

  /// Waits until numbers below `first` have all been released.
  asio::awaitable<void> wait_turn(asio::any_io_executor ex, std::int64_t first) {
    while (next_turn_ != first) {
      asio::steady_timer timer(ex, std::chrono::steady_clock::time_point::max());
      waiters_.emplace(first, &timer);
      struct deregister {
        std::multimap<std::int64_t, asio::steady_timer*>& w;
        std::int64_t key;
        asio::steady_timer* t;
        ~deregister() {
          for (auto [it, end] = w.equal_range(key); it != end; ++it)
            if (it->second == t) {
              w.erase(it);
              break;
            }
        }
      } guard{waiters_, first, &timer};
      auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      (void)ec;
      if (next_turn_ != first) {
        // Woken without our turn: only cancellation does that.
        auto cs = co_await asio::this_coro::cancellation_state;
        if (cs.cancelled() != asio::cancellation_type::none)
          throw boost::system::system_error(asio::error::operation_aborted);
      }
    }
  }

  /// Marks `count` numbers from the current turn as posted (or abandoned) and wakes the next caller.
  void release(std::int64_t count = 1) {
    next_turn_ += count;
    if (auto it = waiters_.find(next_turn_); it != waiters_.end()) it->second->cancel();
  }

  std::int64_t next_turn() const noexcept { return next_turn_; }

private:
  std::int64_t next_reserved_ = 1;
  std::int64_t next_turn_ = 1;
  std::multimap<std::int64_t, asio::steady_timer*> waiters_;
};

}  // namespace tinker::detail
