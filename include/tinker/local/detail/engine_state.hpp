// In-memory state of the local engine beyond the persisted records: loaded models with their
// seq_id queues, samplers with their batch queues, live sessions.
#pragma once

#include <tinker/local/detail/futures.hpp>
#include <tinker/local/detail/records.hpp>
#include <tinker/local/model/model.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <compare>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace tinker::local::detail {

/// An error answered with an HTTP status and `{"detail": ...}`.
class http_error : public std::runtime_error {
public:
  http_error(unsigned status, std::string detail) : std::runtime_error(std::move(detail)), status_(status) {}
  unsigned status() const noexcept { return status_; }

private:
  unsigned status_;
};

/// Remembers which request a (key, body digest) pair was, so a resubmission gets the original
/// request id back instead of running twice.
struct submission_memory {
  struct entry {
    std::string digest;
    std::string request_id;
  };
  std::map<std::int64_t, entry> by_key;

  /// nullopt = new; the request id = an identical resubmission; throws 400 for a different body.
  std::optional<std::string> check(std::int64_t key, const std::string& digest, std::string_view what) const {
    auto it = by_key.find(key);
    if (it == by_key.end()) return std::nullopt;
    if (it->second.digest != digest)
      throw http_error(400, std::string(what) + " " + std::to_string(key) + " was already used by a different request");
    return it->second.request_id;
  }
  void remember(std::int64_t key, std::string digest, std::string request_id) {
    by_key[key] = entry{std::move(digest), std::move(request_id)};
  }
  /// Keeps memory bounded: forgets keys below `floor`.
  void forget_below(std::int64_t floor) { by_key.erase(by_key.begin(), by_key.lower_bound(floor)); }
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

/// A model loaded in memory (a training run that belongs to a live session).
struct live_model {
  std::string run_id;
  std::string owner;
  std::string session_id;
  std::shared_ptr<const base_model> base;
  std::shared_ptr<trainable_model> model;  ///< set by its create_model operation (seq 0)
  std::int64_t next_seq = 0;               ///< the seq_id that runs next
  std::int64_t last_assigned_seq = 0;      ///< for requests that carry no seq_id (legacy clients)
  std::map<std::int64_t, queued_op> pending;
  submission_memory submissions;
  bool running = false;
};

struct pending_sample {
  std::shared_ptr<future_entry> future;
  sample_request request;
  std::uint64_t seed = 0;
};

/// A sampler (sampling session) with its weights and its queue of pending samples.
struct sampler_state {
  sampler_record record;
  std::shared_ptr<const base_model> base;
  /// Adapter weights; null for the base model. Immutable: later training never changes them.
  std::shared_ptr<const lora_weights> weights;
  bool needs_weights = false;  ///< weights are loaded from `record.model_path` before the first batch
  bool weights_lost = false;   ///< ephemeral weights of an earlier engine run
  std::deque<pending_sample> queue;
  std::size_t running_batches = 0;
  submission_memory submissions;
};

struct session_state {
  session_record record;
  std::chrono::system_clock::time_point last_heartbeat{};
  std::uint64_t heartbeats = 0;  ///< session_heartbeat calls answered 200 (since this engine started)
  bool expired = false;  ///< no heartbeat for too long, or from an earlier engine run (finished: record.finished_at)
  submission_memory model_creations;  ///< by model_seq_id
};

/// What billing usage counts (GET /api/v1/billing/usage/events).
enum class usage_kind { training, sampling_prefill, sampling_sample, checkpoint };

/// One hourly usage bucket of a tenant, per session and base model.
struct usage_key {
  std::string tenant;
  std::int64_t hour = 0;   ///< hours since the Unix epoch (engine clock)
  std::string session_id;  ///< "" for requests outside a session (legacy sampling)
  std::string base_model;
  usage_kind kind = usage_kind::training;

  friend auto operator<=>(const usage_key&, const usage_key&) = default;
};

}  // namespace tinker::local::detail
