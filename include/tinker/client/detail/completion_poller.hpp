// Batched completion polling (POST /api/v1/retrieve_futures, offered by newer servers through
// client/config's sample_use_retrieve_futures): one long-poll per sampler reports which of its
// samples finished, so thousands of samples in flight need one waiting connection, not thousands.
// A finished sample's payload is then fetched with one ordinary retrieve_future. If the batched
// poll fails for good (a server that offers it but answers 404, say), the sampler falls back to
// per-request polling, which is always correct, only costlier.
#pragma once

#include <tinker/client/detail/client_core.hpp>
#include <tinker/detail/async_event.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>

#include <chrono>
#include <cmath>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace tinker::detail {

class completion_poller : public std::enable_shared_from_this<completion_poller> {
public:
  completion_poller(std::shared_ptr<client_core> core, std::string sampler_id)
      : core_(std::move(core)), sampler_id_(std::move(sampler_id)) {}

  /// Waits until the server reports `request_id` finished or failed (either way its outcome is then
  /// fetched with retrieve_future), or until batched polling stops being useful (then the caller's
  /// retrieve_future long-polls by itself).
  asio::awaitable<void> wait(const std::string& request_id) {
    if (disabled_ || early_.erase(request_id)) co_return;
    async_event::waiter node;
    auto& w = waiting_[request_id];
    w.node = &node;
    struct deregister {
      completion_poller* self;
      const std::string& id;
      ~deregister() {
        self->waiting_.erase(id);
        // Nobody waits any more: end the batch poll now rather than when the server's hold runs
        // out (it would keep the client, and the caller's io_context, busy for up to 25 s).
        if (auto signal = self->loop_cancel_.lock(); signal && self->waiting_.empty())
          signal->emit(asio::cancellation_type::terminal);
      }
    } guard{this, request_id};
    ensure_running();
    while (!w.done && !disabled_) co_await wakeups_.wait(node);
  }

  std::size_t waiting() const noexcept { return waiting_.size(); }
  /// Whether batched polling was given up for this sampler (its samples poll one by one).
  bool disabled() const noexcept { return disabled_; }

private:
  struct waiter {
    async_event::waiter* node = nullptr;  ///< in wakeups_
    bool done = false;
  };

  void ensure_running() {
    if (running_) return;
    running_ = true;
    auto signal = std::make_shared<asio::cancellation_signal>();
    loop_cancel_ = signal;
    // The completion handler owns the signal: it outlives the coroutine bound to its slot.
    asio::co_spawn(core_->executor(), loop(shared_from_this(), signal),
                   asio::bind_cancellation_slot(signal->slot(), [signal](std::exception_ptr) {}));
  }

  /// Polls while anyone waits; idles otherwise.
  static asio::awaitable<void> loop(std::shared_ptr<completion_poller> self,
                                    std::weak_ptr<asio::cancellation_signal> signal) {
    int failures = 0;
    int fast_empty = 0;  ///< consecutive answers that came back at once with nothing in them
    bool billing_pause = false;
    while (!self->waiting_.empty() && !self->disabled_) {
      retrieve_futures_request req;
      req.target.sampling_session_id = self->sampler_id_;
      req.prev_cursor = self->cursor_;
      call_spec spec;
      spec.path = "/api/v1/retrieve_futures";
      spec.body = json::to_json(req);
      spec.lane = http::lane::sample_poll;
      spec.retry = false;
      spec.timeout = self->core_->options().polling.poll_timeout;
      const auto sent = std::chrono::steady_clock::now();
      std::optional<seconds_d> empty_floor;
      try {
        auto resp = co_await self->core_->call_json<retrieve_futures_response>(std::move(spec));
        failures = 0;
        self->cursor_ = resp.cursor;  // the server's word: a restarted server counts from its own start
        for (const auto& c : resp.completions) self->complete(c.request_id);
        // A server that does not hold the poll (or a cursor that never settles) would make this
        // a tight loop: an empty answer that came back at once waits min_retry_delay, doubling.
        const auto& polling = self->core_->options().polling;
        if (resp.completions.empty() && std::chrono::steady_clock::now() - sent < std::chrono::milliseconds(50))
          empty_floor = growing_floor(fast_empty++, polling.min_retry_delay, polling.max_fast_retry_delay);
        else
          fast_empty = 0;
      } catch (const api_status_error& e) {
        if (e.status() == 402 && self->core_->billing().continues()) {
          billing_pause = true;  // waited out below, like any call in a billing pause (the one account of them)
          self->core_->warn_billing();
        } else if (!retryable_status(static_cast<unsigned>(e.status())) && e.status() != 400) {
          self->disable(e.what());
          break;
        } else {
          ++failures;
        }
      } catch (const api_connection_error&) {
        ++failures;
      } catch (const boost::system::system_error&) {
        break;  // cancelled: the last waiter left (a new one gets a new loop below)
      } catch (const std::exception& e) {
        self->disable(e.what());
        break;
      }
      // After a failed batch poll the server may have restarted and forgotten our requests: the
      // waiters fall back to their own retrieve_future, which long-polls, or answers 410 Gone so
      // the sample is resubmitted. Nobody waits for a completion that will never be reported.
      if (failures > 0) self->release_all();
      if (failures > 0 || billing_pause || empty_floor) {
        const auto delay = billing_pause ? seconds_d(self->core_->options().retry.billing_retry_interval)
                           : empty_floor ? *empty_floor
                                         : seconds_d(std::min(1 << std::min(failures - 1, 4), 10));
        billing_pause = false;
        try {
          co_await self->core_->sleep(delay);
        } catch (const boost::system::system_error&) {
          break;  // cancelled
        }
      }
    }
    if (self->loop_cancel_.lock() == signal.lock()) self->loop_cancel_.reset();
    self->running_ = false;
    if (!self->waiting_.empty() && !self->disabled_) self->ensure_running();
  }

  void complete(const std::string& request_id) {
    auto it = waiting_.find(request_id);
    if (it == waiting_.end()) {
      // Finished before its waiter registered (the submission's answer was still on its way).
      early_.insert(request_id);
      if (early_.size() > 100'000) early_.clear();
      return;
    }
    it->second.done = true;
    wakeups_.notify(*it->second.node);
  }

  void release_all() {
    for (auto& [id, w] : waiting_) w.done = true;
    wakeups_.notify_all();
  }

  /// Gives batched polling up for good: every waiter (and every later one) polls its own future.
  void disable(const std::string& why) {
    disabled_ = true;
    core_->log(log_level::warning, "batched completion polling for sampler " + sampler_id_ +
                                       " failed; its samples are polled one by one from now on: " + why);
    release_all();
  }

  std::shared_ptr<client_core> core_;
  std::string sampler_id_;
  std::unordered_map<std::string, waiter> waiting_;
  async_event wakeups_;  ///< the waiters of waiting_, woken by request id or all at once
  std::unordered_set<std::string> early_;
  std::int64_t cursor_ = 0;
  bool running_ = false;
  bool disabled_ = false;
  std::weak_ptr<asio::cancellation_signal> loop_cancel_;  ///< of the running loop
};

}  // namespace tinker::detail
