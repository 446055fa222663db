// The local engine's server-side futures: every submitted request becomes an entry that a
// compute task completes and that retrieve_future long-polls. Also the per-sampler completion
// logs behind batched polling (POST /api/v1/retrieve_futures).
//
// Single-threaded: everything here runs on the engine's I/O executor.
#pragma once

#include <tinker/detail/async_event.hpp>
#include <tinker/types.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace tinker::local::detail {

namespace asio = boost::asio;

/// What kind of request a future belongs to: decides the X-Tinker-Request-Type a poll may carry
/// and whether the result may travel as protobuf.
enum class request_type {
  create_model,
  load_weights,
  forward,
  forward_backward,
  optim_step,
  save_weights,
  save_weights_for_sampler,
  sample,
  unload_model
};

using future_result = std::variant<std::monostate, forward_backward_output, sample_response, boost::json::value>;

/// What a finished operation produces: its result and, for results that travel as protobuf, their
/// encoding, made where the result was computed (on the compute pool, not the I/O thread).
struct future_payload {
  future_result value;
  std::shared_ptr<const std::string> protobuf;

  future_payload() = default;
  future_payload(boost::json::value v) : value(std::move(v)) {}
  future_payload(future_result v, std::shared_ptr<const std::string> encoded = nullptr)
      : value(std::move(v)), protobuf(std::move(encoded)) {}
};

/// Wakes every coroutine waiting on it. size() counts the coroutines inside wait_until(), woken
/// or not yet resumed: whatever holds the list (an entry, a log) must stay while it is non-zero.
class waiter_list {
public:
  /// Waits until notify_all() or `deadline`, whichever comes first. Throws
  /// boost::system::system_error(operation_aborted) when the awaiting coroutine is cancelled.
  asio::awaitable<void> wait_until(std::chrono::steady_clock::time_point deadline) {
    ++inside_;
    struct leave {
      std::size_t& inside;
      ~leave() { --inside; }
    } guard{inside_};
    co_await event_.wait(deadline);
  }

  void notify_all() { event_.notify_all(); }

  std::size_t size() const noexcept { return inside_; }

private:
  tinker::detail::async_event event_;
  std::size_t inside_ = 0;
};

struct future_entry {
  enum class status { pending, done, failed };

  std::string id;
  std::string owner;
  request_type type = request_type::create_model;
  std::optional<std::string> sampler_id;  ///< sample futures: which sampler's completion log to report to
  std::int64_t cloned_sampler_id = 0;

  status state = status::pending;
  future_result result;
  /// The result's wire forms once encoded: protobuf with the result, JSON on the first poll that
  /// wants it (both off the I/O thread); shared so an encoder can hold them while the entry goes.
  std::shared_ptr<const std::string> protobuf_body;
  std::shared_ptr<const std::string> json_body;
  request_failed_response failure;
  int polls = 0;  ///< retrieve_future calls seen (fault injection answers try_again to the first N)
  std::chrono::steady_clock::time_point finished_at{};
  waiter_list waiters;

  bool finished() const noexcept { return state != status::pending; }
};

/// One completion log per (sampler, cloned sampler): what batched polling reports.
struct completion_log {
  struct event {
    std::int64_t cursor;
    future_completion completion;
    std::chrono::steady_clock::time_point at;
  };
  std::deque<event> events;
  std::int64_t last_cursor = 0;
  waiter_list waiters;
};

class future_table {
public:
  std::shared_ptr<future_entry> create(std::string id, std::string owner, request_type type) {
    auto e = std::make_shared<future_entry>();
    e->id = std::move(id);
    e->owner = std::move(owner);
    e->type = type;
    entries_.emplace(e->id, e);
    return e;
  }

  std::shared_ptr<future_entry> find(const std::string& id) const {
    auto it = entries_.find(id);
    return it == entries_.end() ? nullptr : it->second;
  }

  void complete(future_entry& e, future_payload payload) {
    if (e.finished()) return;
    e.state = future_entry::status::done;
    e.result = std::move(payload.value);
    e.protobuf_body = std::move(payload.protobuf);
    finish(e);
  }

  void fail(future_entry& e, std::string message, error_category category) {
    if (e.finished()) return;
    e.state = future_entry::status::failed;
    e.failure = request_failed_response{std::move(message), category};
    finish(e);
  }

  completion_log& log_for(const std::string& sampler_id, std::int64_t cloned) { return logs_[{sampler_id, cloned}]; }

  /// Forgets the log of (sampler, clone) if nothing was ever logged there and nobody waits on it:
  /// polls for clones that never completed anything leave nothing behind. (A log that has events
  /// stays: its cursor must keep counting up.)
  void drop_log_if_unused(const std::string& sampler_id, std::int64_t cloned) {
    auto it = logs_.find({sampler_id, cloned});
    if (it != logs_.end() && it->second.last_cursor == 0 && it->second.waiters.size() == 0) logs_.erase(it);
  }

  std::size_t log_count() const noexcept { return logs_.size(); }

  /// Forgets futures finished before `cutoff` and completion events older than it.
  void purge(std::chrono::steady_clock::time_point cutoff) {
    std::erase_if(entries_, [&](const auto& kv) {
      return kv.second->finished() && kv.second->finished_at < cutoff && kv.second->waiters.size() == 0;
    });
    for (auto& [key, log] : logs_)
      while (!log.events.empty() && log.events.front().at < cutoff) log.events.pop_front();
  }

  std::size_t size() const noexcept { return entries_.size(); }

private:
  void finish(future_entry& e) {
    e.finished_at = std::chrono::steady_clock::now();
    e.waiters.notify_all();
    if (e.sampler_id) {
      auto& log = log_for(*e.sampler_id, e.cloned_sampler_id);
      future_completion c;
      c.state = e.state == future_entry::status::done ? completion_state::finished : completion_state::failed;
      c.request_id = e.id;
      log.events.push_back({++log.last_cursor, std::move(c), e.finished_at});
      log.waiters.notify_all();
    }
  }

  std::unordered_map<std::string, std::shared_ptr<future_entry>> entries_;
  std::map<std::pair<std::string, std::int64_t>, completion_log> logs_;
};

}  // namespace tinker::local::detail
