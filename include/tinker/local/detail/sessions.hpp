// Sessions: what a client opens first and keeps alive with heartbeats. A session owns its
// training runs and samplers (the engine core unloads them when it ends), ends for good when
// finished (first call wins) and expires without heartbeats. Records persist in the data
// directory; sessions of an earlier engine run come back ended (their models are gone).
#pragma once

#include <tinker/local/detail/http_error.hpp>
#include <tinker/local/detail/records.hpp>
#include <tinker/local/detail/store.hpp>
#include <tinker/local/detail/submission_memory.hpp>

#include <boost/json/value.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tinker::local::detail {

struct session_state {
  session_record record;
  std::chrono::system_clock::time_point last_heartbeat{};
  std::uint64_t heartbeats = 0;  ///< session_heartbeat calls answered 200 (since this engine started)
  bool expired = false;  ///< no heartbeat for too long, or from an earlier engine run (finished: record.finished_at)
  submission_memory model_creations;  ///< by model_seq_id

  bool ended() const noexcept { return expired || record.finished_at.has_value(); }
};

class session_table {
public:
  explicit session_table(store& s) : store_(s) {}

  /// Sessions of an earlier engine run: they get a fresh grace period (`now`), but their models
  /// are not in memory any more, so they count as ended.
  void load(std::vector<session_record> records, std::chrono::system_clock::time_point now) {
    for (auto& r : records) {
      session_state st;
      st.record = std::move(r);
      st.last_heartbeat = now;
      st.expired = true;
      sessions_.emplace(st.record.id, std::move(st));
    }
  }

  /// Opens (and persists) a new session with its first heartbeat at `now`.
  session_state& open(session_record record, std::chrono::system_clock::time_point now) {
    session_state s;
    s.record = std::move(record);
    s.last_heartbeat = now;
    store_.save(s.record);
    const auto id = s.record.id;
    return sessions_.emplace(id, std::move(s)).first->second;
  }

  session_state* find(const std::string& id) {
    auto it = sessions_.find(id);
    return it == sessions_.end() ? nullptr : &it->second;
  }
  const session_state* find(const std::string& id) const {
    auto it = sessions_.find(id);
    return it == sessions_.end() ? nullptr : &it->second;
  }

  /// The session `id` if `tenant` owns it (finished or expired ones too), else 404.
  session_state& owned(const std::string& tenant, const std::string& id) {
    auto* s = find(id);
    if (!s || s->record.owner != tenant) throw http_error(404, "unknown session " + id);
    return *s;
  }

  /// The session `id` if `tenant` owns it and it has not ended: 404 (unknown or expired) or 410
  /// (finished) otherwise.
  session_state& live(const std::string& tenant, const std::string& id) {
    auto& s = owned(tenant, id);
    if (s.record.finished_at) throw http_error(410, "session " + id + " is finished");
    if (s.expired) throw http_error(404, "session " + id + " expired (no heartbeat)");
    return s;
  }

  void heartbeat(session_state& s, std::chrono::system_clock::time_point now) {
    s.last_heartbeat = now;
    ++s.heartbeats;
  }

  /// Sessions still running whose last heartbeat is more than `timeout` before `now`.
  std::vector<std::string> due_to_expire(std::chrono::system_clock::time_point now,
                                         std::chrono::milliseconds timeout) const {
    std::vector<std::string> out;
    for (const auto& [id, s] : sessions_)
      if (!s.ended() && now - s.last_heartbeat > timeout) out.push_back(id);
    return out;
  }

  void mark_expired(session_state& s) { s.expired = true; }

  /// Finishes `s` at `now` with `reason` and persists it, unless it is finished already (the
  /// first call wins). Returns whether this call finished it.
  bool finish(session_state& s, std::optional<boost::json::value> reason, timestamp now) {
    if (s.record.finished_at) return false;
    s.record.finished_at = now;
    s.record.finish_reason = std::move(reason);
    store_.save(s.record);
    return true;
  }

  void add_training_run(session_state& s, const std::string& run_id) {
    s.record.training_run_ids.push_back(run_id);
    store_.save(s.record);
  }
  void add_sampler(session_state& s, const std::string& sampler_id) {
    s.record.sampler_ids.push_back(sampler_id);
    store_.save(s.record);
  }

  /// Moves `s` into project `project_id` (persisted when it changes).
  void set_project(session_state& s, const std::string& project_id) {
    if (s.record.project_id == project_id) return;
    s.record.project_id = project_id;
    store_.save(s.record);
  }

  /// `tenant`'s sessions, newest first (ties by id).
  std::vector<const session_record*> of_tenant(const std::string& tenant) const {
    std::vector<const session_record*> mine;
    for (const auto& [id, s] : sessions_)
      if (s.record.owner == tenant) mine.push_back(&s.record);
    std::sort(mine.begin(), mine.end(),
              [](auto* a, auto* b) { return a->created > b->created || (a->created == b->created && a->id < b->id); });
    return mine;
  }

  std::size_t size() const noexcept { return sessions_.size(); }

private:
  store& store_;
  std::map<std::string, session_state> sessions_;
};

}  // namespace tinker::local::detail
