// Local engine endpoints: account-level REST resources, the audit log (GET /api/v1/audit) and
// billing usage events (GET /api/v1/billing/usage/events); protocol.md §11.11-§11.12.
//
// The audit log keeps the last engine_options::audit_log_limit events of each tenant and persists
// them in the data directory (audit/<tenant>.jsonl). Usage is counted in memory only (it starts
// empty at every engine start) in hourly buckets of the engine clock, kept for 31 days.
#pragma once

#include <tinker/local/detail/engine_impl.hpp>

#include <charconv>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace tinker::local::detail {

namespace account_detail {

/// `YYYY-MM-DD` (exactly that: ten characters, a real date), or nullopt.
inline std::optional<std::chrono::sys_days> parse_day(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  int y = 0, m = 0, d = 0;
  auto digits = [&](std::size_t at, std::size_t n, int& out) {
    auto r = std::from_chars(s.data() + at, s.data() + at + n, out);
    return r.ec == std::errc{} && r.ptr == s.data() + at + n && s[at] != '-' && s[at] != '+';
  };
  if (!digits(0, 4, y) || !digits(5, 2, m) || !digits(8, 2, d)) return std::nullopt;
  const std::chrono::year_month_day ymd{std::chrono::year{y}, std::chrono::month{static_cast<unsigned>(m)},
                                        std::chrono::day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  return std::chrono::sys_days{ymd};
}

inline billing_event_info event_info_of(usage_kind k, std::int64_t amount) {
  switch (k) {
    case usage_kind::training: return billing_training_usage{amount};
    case usage_kind::sampling_prefill: return billing_sampling_prefill_usage{false, amount};
    case usage_kind::sampling_sample: return billing_sampling_sample_usage{amount};
    case usage_kind::checkpoint: return billing_checkpoint_usage{amount};
  }
  return billing_training_usage{amount};
}

}  // namespace account_detail

/// GET /api/v1/audit?event_type=all|checkpoints[&day=YYYY-MM-DD]: the caller's audit events,
/// oldest first. `checkpoints` = the checkpoint_* events (create, delete, publish, unpublish,
/// ttl_set, read); `all` adds session_create and model_create. `day` keeps that UTC day's.
inline http_response engine_impl::handle_audit(request_context& ctx) {
  const auto type = ctx.target.query_value("event_type").value_or("all");
  if (type != "all" && type != "checkpoints")
    throw http_error(400, "query parameter event_type must be all or checkpoints, got '" + type + "'");
  std::optional<std::chrono::sys_days> day;
  if (auto d = ctx.target.query_value("day")) {
    day = account_detail::parse_day(*d);
    if (!day) throw http_error(400, "query parameter day must be a date YYYY-MM-DD, got '" + *d + "'");
  }
  audit_log_response resp;
  if (auto it = audit_.find(ctx.tenant); it != audit_.end())
    for (const auto& e : it->second) {
      if (type == "checkpoints" && !e.event.starts_with("checkpoint_")) continue;
      if (day && std::chrono::floor<std::chrono::days>(e.timestamp) != *day) continue;
      resp.entries.push_back(e);
    }
  return json_response(ctx, 200, boost::json::value_from(resp));
}

/// GET /api/v1/billing/usage/events?starting_on=<RFC 3339>&ending_before=<RFC 3339>: the caller's
/// usage in hourly buckets per session and base model within [starting_on, ending_before):
/// training (forward_backward input tokens; forward-only passes are not billed), sampling_prefill
/// (prompt tokens, once per request), sampling_sample (sampled tokens), checkpoint (saves). Both
/// bounds hour-aligned, at most 14 days apart, starting_on not in the future and ending_before at
/// most the end of the current hour (engine clock).
inline http_response engine_impl::handle_billing_usage(request_context& ctx) {
  using namespace std::chrono;
  auto bound = [&](const std::string& key) {
    const auto v = ctx.target.query_value(key);
    if (!v)
      throw http_error(
          400, "query parameter " + key + " is required (an hour-aligned RFC 3339 time such as 2025-01-01T00:00:00Z)");
    const auto t = parse_timestamp(*v);
    if (!t)
      throw http_error(
          400, "query parameter " + key + " must be an RFC 3339 time such as 2025-01-01T00:00:00Z, got '" + *v + "'");
    if (*t != floor<hours>(*t))
      throw http_error(400, "query parameter " + key +
                                " must be hour-aligned (minutes, seconds and fractions zero), got '" + *v + "'");
    return *t;
  };
  const auto start = bound("starting_on");
  const auto end = bound("ending_before");
  if (end <= start) throw http_error(400, "query parameter ending_before must be after starting_on");
  if (end - start > days(14))
    throw http_error(400, "query parameters starting_on .. ending_before span " +
                              std::to_string(duration_cast<hours>(end - start).count()) +
                              " hours; the window is at most 14 days (336 hours)");
  const auto now = options_.clock();
  const auto current_hour_end = floor<hours>(now) + hours(1);
  if (start > now)
    throw http_error(400, "query parameter starting_on is in the future (" + format_timestamp(start) + ")");
  if (end > current_hour_end)
    throw http_error(400,
                     "query parameter ending_before is in the future: at most the end of the current hour, " +
                         format_timestamp(timestamp(duration_cast<microseconds>(current_hour_end.time_since_epoch()))));
  const auto first_hour = floor<hours>(start).time_since_epoch().count();
  const auto last_hour = floor<hours>(end).time_since_epoch().count();  // exclusive

  billing_usage_response resp;
  for (auto it = usage_.lower_bound(usage_key{ctx.tenant, first_hour, {}, {}, usage_kind::training});
       it != usage_.end() && it->first.tenant == ctx.tenant && it->first.hour < last_hour; ++it) {
    const auto& [key, amount] = *it;
    billing_usage_event e;
    e.bucket_start = timestamp(duration_cast<microseconds>(hours(key.hour)));
    e.bucket_end = e.bucket_start + hours(1);
    e.base_model = key.base_model;
    e.user_id = ctx.tenant;
    e.event_info = account_detail::event_info_of(key.kind, amount);
    if (!key.session_id.empty()) {
      e.session_id = key.session_id;
      if (auto s = sessions_.find(key.session_id); s != sessions_.end()) {
        e.project_id = s->second.record.project_id;
        const auto& meta = s->second.record.user_metadata;
        resp.sessions[key.session_id] = billing_session_info{meta.empty() ? std::nullopt : std::optional(meta)};
      } else {
        resp.sessions[key.session_id] = billing_session_info{};
      }
    }
    resp.data.push_back(std::move(e));
  }
  return json_response(ctx, 200, boost::json::value_from(resp));
}

}  // namespace tinker::local::detail
