// A model's operations run one at a time in the order of the seq_ids clients give them, whatever
// order their requests arrive in; and a request sent twice (the client did not see the answer)
// must get the first one's future back, never run twice. model_queue is that order and that
// memory for one model, free of I/O: the engine core runs what next_to_run() hands out.
#pragma once

#include <tinker/local/detail/futures.hpp>
#include <tinker/local/detail/http_error.hpp>
#include <tinker/local/detail/submission_memory.hpp>

#include <boost/asio/awaitable.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tinker::local::detail {

/// A training request's seq_id as the engine queues it. Clients send positive seq_ids; 0 or none
/// means "after everything queued". (A plain struct rather than std::optional: GCC 12 at -O2 warns
/// "may be used uninitialized" about optional<int64_t> along these exception paths.)
struct requested_seq {
  std::int64_t value = 0;
  bool given = false;

  /// As a client sent it: only positive ids are ids, 0 is "none". A negative one is refused (400
  /// naming seq_id) rather than read as "none": it is a client bug, and queueing the request after
  /// everything else would hide it.
  static requested_seq from_client(std::int64_t id) {
    if (id < 0) throw http_error(400, "seq_id must not be negative, got " + std::to_string(id));
    return {id, id > 0};
  }
  static requested_seq exactly(std::int64_t id) noexcept { return {id, true}; }
  static requested_seq none() noexcept { return {}; }
};

/// A failure injected instead of running an operation (fault_options::fail_routes).
struct injected_failure {
  std::string error;
  error_category category = error_category::server;
};

/// One operation on a model, waiting for its turn (seq_id order).
struct queued_op {
  std::shared_ptr<future_entry> future;
  std::function<boost::asio::awaitable<future_payload>()> run;
  /// Set: the operation fails with this when its turn comes, instead of running.
  std::optional<injected_failure> injected;
};

/// The operations of one model by seq_id, and the (seq_id, body digest) of every submission.
class model_queue {
public:
  /// How far back submissions are remembered, in seq_ids behind the next one to run: a client
  /// re-sends a request it got no answer for soon, not thousands of operations later.
  static constexpr std::int64_t remembered_seq_ids = 4096;

  /// What admit() decided about a request.
  struct admission {
    std::int64_t seq = 0;                 ///< the seq_id it runs as
    std::optional<std::string> original;  ///< set: an identical resubmission of this request id
  };

  /// `max_gap`: how far ahead of the next seq_id a request may be (engine_options::max_seq_id_gap).
  model_queue(std::string model_id, std::int64_t max_gap) : model_id_(std::move(model_id)), max_gap_(max_gap) {}

  /// The seq_id a request with body digest `digest` runs as: the one it names (checked: not run
  /// yet, not used up by a refused request, within the window; 400 otherwise), or, without one,
  /// after everything assigned so far. A resubmission (same seq_id and digest) names its original.
  admission admit(requested_seq requested, const std::string& digest) const {
    if (!requested.given) return {std::max(last_assigned_seq_, next_seq_ - 1) + 1, std::nullopt};
    const auto seq = requested.value;
    if (auto original = submissions_.check(seq, digest, "seq_id")) return {seq, std::move(original)};
    if (seq < next_seq_)
      throw http_error(400, "seq_id " + std::to_string(seq) + " already ran on model " + model_id_ +
                                " (the next expected seq_id is " + std::to_string(next_seq_) + ")");
    if (seq < 0) throw http_error(400, "seq_id must not be negative, got " + std::to_string(seq));
    // Queued but not remembered: a refused request's seq_id, used up by use_up().
    if (pending_.contains(seq))
      throw http_error(400, "seq_id " + std::to_string(seq) + " on model " + model_id_ +
                                " was already used by a request that was refused; send the next seq_id");
    check_window(seq);
    return {seq, std::nullopt};
  }

  /// Queues `op` as operation `seq` (as admit() decided) and remembers the submission.
  void enqueue(std::int64_t seq, std::string digest, queued_op op) {
    last_assigned_seq_ = std::max(last_assigned_seq_, seq);
    submissions_.remember(seq, std::move(digest), op.future->id);
    submissions_.forget_below(next_seq_ - remembered_seq_ids);
    pending_.emplace(seq, std::move(op));
  }

  /// Whether a refused request's `seq` can still be used up: in the window, and not taken.
  bool can_use_up(std::int64_t seq) const {
    return seq >= next_seq_ && seq - next_seq_ <= max_gap_ && !pending_.contains(seq) && !submissions_.contains(seq);
  }

  /// Puts `failed` (an operation whose future has already failed) in place of a refused request,
  /// so that the operations after `seq` do not wait for it forever. Call when can_use_up(seq).
  void use_up(std::int64_t seq, queued_op failed) {
    pending_.emplace(seq, std::move(failed));
    last_assigned_seq_ = std::max(last_assigned_seq_, seq);
  }

  /// The operation whose turn it is, when it has arrived and nothing runs; the queue then counts
  /// as running until finished_running().
  std::optional<queued_op> next_to_run() {
    if (running_ || pending_.empty() || pending_.begin()->first != next_seq_) return std::nullopt;
    running_ = true;
    auto op = std::move(pending_.begin()->second);
    pending_.erase(pending_.begin());
    return op;
  }

  /// The running operation is over: the next seq_id's turn.
  void finished_running() {
    running_ = false;
    ++next_seq_;
  }

  /// Empties the queue (the model is going away): the operations that never ran, in seq_id order.
  std::vector<queued_op> take_pending() {
    std::vector<queued_op> out;
    for (auto& [seq, op] : pending_) out.push_back(std::move(op));
    pending_.clear();
    return out;
  }

  /// The original request id if (`seq`, `digest`) was submitted before (400 for a different digest).
  std::optional<std::string> resubmission_of(std::int64_t seq, const std::string& digest) const {
    return submissions_.check(seq, digest, "seq_id");
  }
  /// Whether some request was submitted as `seq` (and is still remembered).
  bool remembers(std::int64_t seq) const { return submissions_.contains(seq); }

  const std::string& model_id() const noexcept { return model_id_; }
  std::int64_t next_seq() const noexcept { return next_seq_; }
  std::size_t pending_count() const noexcept { return pending_.size(); }
  bool running() const noexcept { return running_; }

private:
  /// 400 for a seq_id so far ahead of the next one that it would wait in memory for thousands of
  /// requests that may never come.
  void check_window(std::int64_t seq) const {
    if (seq - next_seq_ > max_gap_)
      throw http_error(400, "seq_id " + std::to_string(seq) + " is too far ahead of model " + model_id_ +
                                "'s next expected seq_id " + std::to_string(next_seq_) + " (at most " +
                                std::to_string(max_gap_) + " ahead); seq_ids count 1, 2, 3, ... per model");
  }

  std::string model_id_;
  std::int64_t max_gap_;
  std::int64_t next_seq_ = 0;           ///< the seq_id that runs next
  std::int64_t last_assigned_seq_ = 0;  ///< for requests that carry no seq_id (legacy clients)
  std::map<std::int64_t, queued_op> pending_;
  submission_memory submissions_;
  bool running_ = false;
};

}  // namespace tinker::local::detail
