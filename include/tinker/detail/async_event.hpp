// An event coroutines wait for: a FIFO queue of waiters that another coroutine on the same
// executor wakes one by one (oldest first), all at once, or by name (a waiter it kept a reference
// to). Each wait may have a deadline and honours the awaiting coroutine's cancellation.
//
// It carries no state of its own, like a condition variable: waiters check their condition before
// and after waiting. A notify with nobody queued does nothing; a notify never reaches a waiter that
// queued after it (notify_all takes only those queued when it runs). A waiter that was notified
// counts as notified even if its deadline or a cancellation arrived in the same turn of the event
// loop, so a wake-up handed to it (a connection, a grant) is never lost.
//
// Underneath, each wait is a steady_timer: a notify cancels it, a deadline is its expiry, and
// the coroutine's cancellation reaches it through Asio's cancellation slot.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/intrusive/list.hpp>
#include <boost/system/system_error.hpp>

#include <chrono>
#include <cstddef>

namespace tinker::detail {

class async_event {
public:
  using clock = std::chrono::steady_clock;

  /// One coroutine's place in the queue, living in that coroutine's frame. A caller that wakes
  /// particular waiters, or hands a woken waiter something, derives from it (or keeps a pointer to
  /// it) and passes it to wait(). It leaves the queue when notified, when its wait ends, and when
  /// it is destroyed.
  class waiter : public boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>> {
  public:
    waiter() = default;
    waiter(const waiter&) = delete;
    waiter& operator=(const waiter&) = delete;

    /// In a queue, not yet woken.
    bool queued() const noexcept { return is_linked(); }

  private:
    friend class async_event;
    boost::asio::steady_timer* timer_ = nullptr;  ///< while waiting
    bool notified_ = false;
  };

  async_event() = default;
  async_event(const async_event&) = delete;
  async_event& operator=(const async_event&) = delete;

  /// Waits until notified (true) or until `deadline` (false). Throws
  /// boost::system::system_error(operation_aborted) when the awaiting coroutine is cancelled first.
  boost::asio::awaitable<bool> wait(clock::time_point deadline = clock::time_point::max()) {
    waiter w;
    co_return co_await wait(w, deadline);
  }

  /// wait(), queued as `w`, which a caller can then notify by name (or recognise at the front).
  boost::asio::awaitable<bool> wait(waiter& w, clock::time_point deadline = clock::time_point::max()) {
    namespace asio = boost::asio;
    const auto ex = co_await asio::this_coro::executor;
    asio::steady_timer timer(ex, deadline);
    w.notified_ = false;
    w.timer_ = &timer;
    queue_.push_back(w);
    // Leaves the queue however this frame ends: resumed, thrown out of, or destroyed unresumed.
    struct leave {
      waiter& w;
      ~leave() {
        w.unlink();
        w.timer_ = nullptr;
      }
    } guard{w};
    const auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (w.notified_) co_return true;
    // Only notify cancels the timer, and only the coroutine's cancellation aborts it otherwise.
    if (ec != asio::error::operation_aborted) co_return false;
    throw boost::system::system_error(asio::error::operation_aborted);
  }

  /// Wakes `w` if it waits in this queue (it then leaves the queue at once, so the next notify
  /// goes to someone else).
  void notify(waiter& w) {
    if (!w.is_linked()) return;
    w.unlink();
    w.notified_ = true;
    if (w.timer_) w.timer_->cancel();  // resumes it later, through the executor: never re-entrant
  }

  /// Wakes the longest-waiting waiter; false if nobody waits.
  bool notify_one() {
    if (queue_.empty()) return false;
    notify(queue_.front());
    return true;
  }

  /// Wakes everyone queued now; returns how many.
  std::size_t notify_all() {
    std::size_t woken = 0;
    for (; !queue_.empty(); ++woken) notify(queue_.front());
    return woken;
  }

  /// The longest-waiting waiter, or null.
  waiter* front() noexcept { return queue_.empty() ? nullptr : &queue_.front(); }
  bool empty() const noexcept { return queue_.empty(); }
  /// Linear in the number of waiters (observability and tests).
  std::size_t size() const noexcept { return queue_.size(); }

private:
  boost::intrusive::list<waiter, boost::intrusive::constant_time_size<false>> queue_;
};

}  // namespace tinker::detail
