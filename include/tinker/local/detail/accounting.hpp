// Accounting: who asked for what and how much. Three ledgers, each small:
// * request_counters: requests per route, and per route for each training run or sampler a
//   request named (session trace exports report those); in memory, since this engine start.
// * audit_log: each tenant's events (checkpoint_*, session_create, model_create), the last
//   `limit` of them, persisted in the data directory (audit/<tenant>.jsonl).
// * usage_meter: billing usage in hourly buckets per tenant, session, base model and kind; in
//   memory only (it starts empty at every engine start).
#pragma once

#include <tinker/json.hpp>
#include <tinker/local/detail/store.hpp>
#include <tinker/tinker_path.hpp>
#include <tinker/types.hpp>

#include <boost/json/object.hpp>

#include <chrono>
#include <compare>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tinker::local::detail {

class request_counters {
public:
  void count_route(const std::string& route) { ++by_route_[route]; }
  /// Requests received on `route` (every one that arrived, refused ones included).
  std::uint64_t route_count(const std::string& route) const {
    auto it = by_route_.find(route);
    return it == by_route_.end() ? 0 : it->second;
  }

  /// Counts a request on `route` that named the training run or sampler `id`.
  void count_naming(const std::string& id, const std::string& route) { ++by_id_[id][route]; }
  /// The requests per route that named `id` (empty when none did).
  std::map<std::string, std::uint64_t> naming(const std::string& id) const {
    auto it = by_id_.find(id);
    return it == by_id_.end() ? std::map<std::string, std::uint64_t>{} : it->second;
  }

private:
  std::map<std::string, std::uint64_t> by_route_;
  std::map<std::string, std::map<std::string, std::uint64_t>> by_id_;
};

class audit_log {
public:
  /// Which events a query returns (GET /api/v1/audit?event_type=).
  enum class filter { all, checkpoints };

  /// Keeps the last `limit` (at least 1) events of each tenant.
  audit_log(store& s, std::size_t limit) : store_(s), limit_(limit) {}

  /// Reads the logs of an earlier engine run (a torn or damaged line is skipped).
  void load() {
    for (auto& [tenant, lines] : store_.load_audit()) {
      auto& log = logs_[tenant];
      for (const auto& line : lines) {
        try {
          log.push_back(json::from_json<audit_log_entry>(line));
        } catch (const std::exception&) {
          // a crash mid-append leaves a torn last line
        }
      }
      while (log.size() > limit_) log.pop_front();
      file_lines_[tenant] = lines.size();
    }
  }

  /// Appends an event to `tenant`'s log at `now`. Checkpoint events carry the (deprecated)
  /// model_id and tinker_path fields; the rest say everything in event_details.
  void record(const std::string& tenant, timestamp now, std::string event,
              std::optional<tinker_path> path = std::nullopt, std::optional<std::string> purpose = std::nullopt,
              std::optional<boost::json::object> details = std::nullopt) {
    audit_log_entry e;
    e.timestamp = now;
    e.event = std::move(event);
    if (path) {
      e.model_id = path->training_run_id;
      e.tinker_path = path->str();
    }
    e.purpose = std::move(purpose);
    e.event_details = std::move(details);
    auto& log = logs_[tenant];
    store_.append_audit(tenant, json::to_json(e));
    log.push_back(std::move(e));
    auto& lines = file_lines_[tenant];
    ++lines;
    while (log.size() > limit_) log.pop_front();
    if (lines > 2 * limit_) {  // the file is compacted to what is kept, not at every append
      std::vector<std::string> kept;
      kept.reserve(log.size());
      for (const auto& entry : log) kept.push_back(json::to_json(entry));
      store_.rewrite_audit(tenant, kept);
      lines = kept.size();
    }
  }

  /// `tenant`'s kept events, oldest first, of the kind `f` selects (checkpoints: the checkpoint_*
  /// events) and, with `day`, of that UTC day only.
  std::vector<audit_log_entry> query(const std::string& tenant, filter f,
                                     std::optional<std::chrono::sys_days> day = std::nullopt) const {
    std::vector<audit_log_entry> out;
    auto it = logs_.find(tenant);
    if (it == logs_.end()) return out;
    for (const auto& e : it->second) {
      if (f == filter::checkpoints && !e.event.starts_with("checkpoint_")) continue;
      if (day && std::chrono::floor<std::chrono::days>(e.timestamp) != *day) continue;
      out.push_back(e);
    }
    return out;
  }

  /// Lines in `tenant`'s log file (compacted at twice the limit).
  std::size_t file_lines(const std::string& tenant) const {
    auto it = file_lines_.find(tenant);
    return it == file_lines_.end() ? 0 : it->second;
  }

private:
  store& store_;
  std::size_t limit_;
  std::map<std::string, std::deque<audit_log_entry>> logs_;  ///< oldest first
  std::map<std::string, std::size_t> file_lines_;
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

class usage_meter {
public:
  /// How long buckets are kept.
  static constexpr std::chrono::hours retention{24 * 31};

  /// Hours since the Unix epoch of `t` (the bucket it falls in).
  static std::int64_t hour_of(std::chrono::system_clock::time_point t) {
    return std::chrono::floor<std::chrono::hours>(t).time_since_epoch().count();
  }

  /// Adds `amount` (if positive) to the bucket of (tenant, the hour of `now`, session, base model, kind).
  void record(const std::string& tenant, std::chrono::system_clock::time_point now, const std::string& session_id,
              const std::string& base_model, usage_kind kind, std::int64_t amount) {
    if (amount <= 0) return;
    buckets_[usage_key{tenant, hour_of(now), session_id, base_model, kind}] += amount;
  }

  /// Drops the buckets older than the retention, as of `now`.
  void purge(std::chrono::system_clock::time_point now) {
    const auto oldest_hour = hour_of(now - retention);
    std::erase_if(buckets_, [&](const auto& kv) { return kv.first.hour < oldest_hour; });
  }

  /// `tenant`'s buckets with first_hour <= hour < end_hour, in key order.
  std::vector<std::pair<usage_key, std::int64_t>> of_tenant(const std::string& tenant, std::int64_t first_hour,
                                                            std::int64_t end_hour) const {
    std::vector<std::pair<usage_key, std::int64_t>> out;
    for (auto it = buckets_.lower_bound(usage_key{tenant, first_hour, {}, {}, usage_kind::training});
         it != buckets_.end() && it->first.tenant == tenant && it->first.hour < end_hour; ++it)
      out.emplace_back(it->first, it->second);
    return out;
  }

  std::size_t size() const noexcept { return buckets_.size(); }

private:
  std::map<usage_key, std::int64_t> buckets_;
};

}  // namespace tinker::local::detail
