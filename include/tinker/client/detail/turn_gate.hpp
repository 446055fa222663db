// Keeps one training client's submissions in seq_id order: a caller takes numbers when it is
// called (so call order decides), then waits until every smaller number has been posted.
#pragma once

#include <tinker/detail/async_event.hpp>

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <map>

namespace tinker::detail {

class turn_gate {
public:
  /// Reserves `count` consecutive numbers; returns the first. seq_ids start at 1 (0 is the model's creation).
  std::int64_t reserve(std::int64_t count = 1) {
    const auto first = next_reserved_;
    next_reserved_ += count;
    return first;
  }

  /// Waits until numbers below `first` have all been released. Throws
  /// boost::system::system_error(operation_aborted) when the awaiting coroutine is cancelled.
  boost::asio::awaitable<void> wait_turn(std::int64_t first) {
    while (next_turn_ != first) {
      async_event::waiter w;
      // Keyed by number, so a release wakes the one caller whose turn it is, not everyone.
      const auto it = waiters_.emplace(first, &w);
      struct deregister {
        std::multimap<std::int64_t, async_event::waiter*>& w;
        std::multimap<std::int64_t, async_event::waiter*>::iterator it;
        ~deregister() { w.erase(it); }
      } guard{waiters_, it};
      co_await turns_.wait(w);
    }
  }

  /// Marks `count` numbers from the current turn as posted (or abandoned) and wakes the next caller.
  void release(std::int64_t count = 1) {
    next_turn_ += count;
    if (auto it = waiters_.find(next_turn_); it != waiters_.end()) turns_.notify(*it->second);
  }

  std::int64_t next_turn() const noexcept { return next_turn_; }

private:
  std::int64_t next_reserved_ = 1;
  std::int64_t next_turn_ = 1;
  std::multimap<std::int64_t, async_event::waiter*> waiters_;
  async_event turns_;
};

}  // namespace tinker::detail
