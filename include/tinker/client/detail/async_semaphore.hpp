// A counting semaphore for coroutines on one executor (admission control: samples in flight,
// bytes being submitted). FIFO; cancelling a waiter removes it cleanly. A request larger than the
// whole budget still gets in once the budget is full again (as the SDK's byte budgets behave).
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
#include <list>

namespace tinker::detail {

namespace asio = boost::asio;

class async_semaphore {
public:
  explicit async_semaphore(std::int64_t capacity) : capacity_(capacity), available_(capacity) {}

  /// Waits until `n` units are available (or the whole budget, for n > capacity), then takes them.
  asio::awaitable<void> acquire(asio::any_io_executor ex, std::int64_t n = 1) {
    const auto need = std::min(n, capacity_);
    if (waiters_.empty() && available_ >= need) {
      available_ -= n;
      co_return;
    }
    asio::steady_timer timer(ex, std::chrono::steady_clock::time_point::max());
    auto it = waiters_.insert(waiters_.end(), waiter{&timer, need, false});
    struct cleanup {
      std::list<waiter>& list;
      std::list<waiter>::iterator it;
      async_semaphore* self;
      bool granted() const { return it->granted; }
      ~cleanup() {
        const bool was_first = it == list.begin();
        list.erase(it);
        if (was_first) self->grant();  // the next in line may fit now
      }
    } guard{waiters_, it, this};
    while (!it->granted) {
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      if (!it->granted) {
        auto cs = co_await asio::this_coro::cancellation_state;
        if (cs.cancelled() != asio::cancellation_type::none)
          throw boost::system::system_error(asio::error::operation_aborted);
      }
    }
    available_ -= n;
  }

  void release(std::int64_t n = 1) {
    available_ += n;
    grant();
  }

  std::int64_t available() const noexcept { return available_; }
  std::int64_t capacity() const noexcept { return capacity_; }
  std::size_t waiting() const noexcept { return waiters_.size(); }

  /// Changes the capacity (e.g. when the server's client/config lowers a budget).
  void set_capacity(std::int64_t capacity) {
    available_ += capacity - capacity_;
    capacity_ = capacity;
    grant();
  }

private:
  struct waiter {
    asio::steady_timer* timer;
    std::int64_t need;
    bool granted;
  };

  /// Wakes the first waiter if it fits (strict FIFO: later ones wait behind it).
  void grant() {
    if (waiters_.empty()) return;
    auto& w = waiters_.front();
    if (!w.granted && available_ >= w.need) {
      w.granted = true;
      w.timer->cancel();
    }
  }

  std::int64_t capacity_;
  std::int64_t available_;
  std::list<waiter> waiters_;
};

}  // namespace tinker::detail
