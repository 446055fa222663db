// Endpoints of the account: the audit log (GET /api/v1/audit) and billing usage events
// (GET /api/v1/billing/usage/events), read from the accounting ledgers (accounting.hpp).
#pragma once

#include <tinker/local/detail/engine_core.hpp>

#include <charconv>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace tinker::local::detail::endpoints {

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
inline http_response audit(engine_core& core, request_context& ctx) {
  const auto type = ctx.target.query_value("event_type").value_or("all");
  if (type != "all" && type != "checkpoints")
    throw http_error(400, "query parameter event_type must be all or checkpoints, got '" + type + "'");
  std::optional<std::chrono::sys_days> day;
  if (auto d = ctx.target.query_value("day")) {
    day = account_detail::parse_day(*d);
    if (!day) throw http_error(400, "query parameter day must be a date YYYY-MM-DD, got '" + *d + "'");
  }
  audit_log_response resp;
  resp.entries = core.audit.query(ctx.tenant,
                                  type == "checkpoints" ? audit_log::filter::checkpoints : audit_log::filter::all, day);
  return json_response(ctx, 200, boost::json::value_from(resp));
}

/// GET /api/v1/billing/usage/events?starting_on=<RFC 3339>&ending_before=<RFC 3339>: the caller's
/// usage in hourly buckets per session and base model within [starting_on, ending_before):
/// training (forward_backward input tokens; forward-only passes are not billed), sampling_prefill
/// (prompt tokens, once per request), sampling_sample (sampled tokens), checkpoint (saves). Both
/// bounds hour-aligned, at most 14 days apart, starting_on not in the future and ending_before at
/// most the end of the current hour (engine clock).
inline http_response billing_usage(engine_core& core, request_context& ctx) {
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
  const auto now = core.now();
  const auto current_hour_end = floor<hours>(now) + hours(1);
  if (start > now)
    throw http_error(400, "query parameter starting_on is in the future (" + format_timestamp(start) + ")");
  if (end > current_hour_end)
    throw http_error(400,
                     "query parameter ending_before is in the future: at most the end of the current hour, " +
                         format_timestamp(timestamp(duration_cast<microseconds>(current_hour_end.time_since_epoch()))));
  const auto first_hour = floor<hours>(start).time_since_epoch().count();
  const auto end_hour = floor<hours>(end).time_since_epoch().count();  // exclusive

  billing_usage_response resp;
  for (const auto& [key, amount] : core.usage.of_tenant(ctx.tenant, first_hour, end_hour)) {
    billing_usage_event e;
    e.bucket_start = timestamp(duration_cast<microseconds>(hours(key.hour)));
    e.bucket_end = e.bucket_start + hours(1);
    e.base_model = key.base_model;
    e.user_id = ctx.tenant;
    e.event_info = account_detail::event_info_of(key.kind, amount);
    if (!key.session_id.empty()) {
      e.session_id = key.session_id;
      if (const auto* s = core.sessions.find(key.session_id)) {
        e.project_id = s->record.project_id;
        const auto& meta = s->record.user_metadata;
        resp.sessions[key.session_id] = billing_session_info{meta.empty() ? std::nullopt : std::optional(meta)};
      } else {
        resp.sessions[key.session_id] = billing_session_info{};
      }
    }
    resp.data.push_back(std::move(e));
  }
  return json_response(ctx, 200, boost::json::value_from(resp));
}

}  // namespace tinker::local::detail::endpoints
