// A counting semaphore for coroutines on one executor (admission control: samples in flight,
// bytes being submitted). FIFO; cancelling a waiter removes it cleanly. A request larger than the
// whole budget still gets in once the budget is full again (as the SDK's byte budgets behave).
#pragma once

#include <tinker/detail/async_event.hpp>

#include <boost/asio/awaitable.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace tinker::detail {

class async_semaphore {
public:
  explicit async_semaphore(std::int64_t capacity) : capacity_(capacity), available_(capacity) {}

  /// Waits until `n` units are available (or the whole budget, for n > capacity), then takes them.
  /// Throws boost::system::system_error(operation_aborted) when the awaiting coroutine is
  /// cancelled before its turn came.
  boost::asio::awaitable<void> acquire(std::int64_t n = 1) {
    const auto need = std::min(n, capacity_);
    if (waiting_ == 0 && available_ >= need) {
      available_ -= n;
      co_return;
    }
    waiter w;
    w.need = need;
    ++waiting_;
    struct cleanup {
      async_semaphore& self;
      waiter& w;
      ~cleanup() {
        w.unlink();
        --self.waiting_;
        if (self.granted_ == &w) self.granted_ = nullptr;
        self.grant();  // the next in line may fit now (or its predecessor was blocking it)
      }
    } guard{*this, w};
    co_await queue_.wait(w);  // returns only when granted: there is no deadline
    available_ -= n;
  }

  void release(std::int64_t n = 1) {
    available_ += n;
    grant();
  }

  std::int64_t available() const noexcept { return available_; }
  std::int64_t capacity() const noexcept { return capacity_; }
  /// Callers in acquire(), including one granted but not yet resumed.
  std::size_t waiting() const noexcept { return waiting_; }

  /// Changes the capacity (e.g. when the server's client/config lowers a budget).
  void set_capacity(std::int64_t capacity) {
    available_ += capacity - capacity_;
    capacity_ = capacity;
    grant();
  }

private:
  struct waiter : async_event::waiter {
    std::int64_t need = 0;
  };

  /// Wakes the first waiter if it fits (strict FIFO: later ones wait behind it). One grant at a
  /// time: the granted waiter takes its units when it resumes, and only then is the next one
  /// considered.
  void grant() {
    if (granted_) return;
    auto* w = static_cast<waiter*>(queue_.front());
    if (w && available_ >= w->need) {
      granted_ = w;
      queue_.notify(*w);
    }
  }

  std::int64_t capacity_;
  std::int64_t available_;
  async_event queue_;          ///< waiters not yet granted, oldest first
  waiter* granted_ = nullptr;  ///< granted, not yet resumed
  std::size_t waiting_ = 0;
};

}  // namespace tinker::detail
