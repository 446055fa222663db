// Endpoints of sessions: create_session, session_heartbeat, sessions/{id}/finish, the session
// listing and lookup, session projects, and trace exports (a signed URL, no API key, answering a
// JSON trace of the session's runs and samplers).
#pragma once

#include <tinker/local/detail/engine_core.hpp>
#include <tinker/local/detail/rest_support.hpp>

#include <boost/beast/http/field.hpp>

#include <limits>
#include <optional>
#include <string>

namespace tinker::local::detail::endpoints {

inline http_response create_session(engine_core& core, request_context& ctx) {
  auto req = decode_json_body_with_metadata<create_session_request>(ctx);
  session_record r;
  r.id = core.ids.uuid();
  r.owner = ctx.tenant;
  r.tags = std::move(req.tags);
  r.user_metadata = std::move(req.user_metadata);
  r.project_id = std::move(req.project_id);
  r.sdk_version = std::move(req.sdk_version);
  r.created = core.now_ts();
  const auto& s = core.sessions.open(std::move(r), core.now());
  boost::json::object details{{"session_id", s.record.id}};
  if (s.record.project_id) details["project_id"] = *s.record.project_id;
  core.audit.record(ctx.tenant, core.now_ts(), "session_create", std::nullopt, std::nullopt, std::move(details));
  create_session_response resp;
  resp.session_id = s.record.id;
  return json_response(ctx, 200, boost::json::value_from(resp));
}

inline http_response session_heartbeat(engine_core& core, request_context& ctx) {
  const auto req = decode_json_body<session_heartbeat_request>(ctx);
  core.sessions.heartbeat(core.sessions.live(ctx.tenant, req.session_id), core.now());
  return json_response(ctx, 200, boost::json::value_from(session_heartbeat_response{}));
}

/// Marks the session terminal; the first call wins: later calls answer what it recorded (200), and
/// heartbeats answer 410 from then on. Persisted, so a restart keeps it finished.
inline http_response finish_session(engine_core& core, request_context& ctx) {
  auto& s = core.sessions.owned(ctx.tenant, ctx.target.api_segment(1));
  if (!s.record.finished_at) {
    std::optional<boost::json::value> reason;
    if (!ctx.request.body().empty()) {
      auto body = json::parse(ctx.request.body(), "finish_session_request");
      if (!body.is_object()) throw http_error(400, "finish_session_request must be a JSON object");
      if (auto* r = body.as_object().if_contains("reason"); r && !r->is_null()) reason = *r;
    }
    core.sessions.finish(s, std::move(reason), core.now_ts());
    for (const auto& run_id : s.record.training_run_ids) core.unload_model(run_id, "session finished");
  }
  boost::json::object resp{{"session_id", s.record.id}, {"finished_at", format_timestamp(*s.record.finished_at)}};
  if (s.record.finish_reason) resp["reason"] = *s.record.finish_reason;
  return json_response(ctx, 200, resp);
}

inline http_response list_sessions(engine_core& core, request_context& ctx) {
  const auto limit = query_int(ctx.target, "limit", 20, 1, 10'000);
  const auto offset = query_int(ctx.target, "offset", 0, 0, std::numeric_limits<std::int64_t>::max());
  list_sessions_response resp;
  for (const auto* s : page(core.sessions.of_tenant(ctx.tenant), offset, limit)) resp.sessions.push_back(s->id);
  return json_response(ctx, 200, boost::json::value_from(resp));
}

inline http_response get_session(engine_core& core, request_context& ctx) {
  const auto& s = core.sessions.owned(ctx.tenant, ctx.target.api_segment(1));
  return json_response(ctx, 200,
                       boost::json::value_from(get_session_response{s.record.training_run_ids, s.record.sampler_ids}));
}

/// PUT /api/v1/sessions/{id}/project {"project_id"}: puts the session (and so its training runs,
/// for GET /api/v1/training_runs?project_id=) into a project; persisted. Setting it again moves it.
inline http_response set_session_project(engine_core& core, request_context& ctx) {
  auto& s = core.sessions.owned(ctx.tenant, ctx.target.api_segment(1));
  const auto req = decode_json_body<set_session_project_request>(ctx);
  if (req.project_id.empty()) throw http_error(400, "project_id must not be empty");
  core.sessions.set_project(s, req.project_id);
  return json_response(ctx, 200, boost::json::object{});
}

namespace session_detail {

/// What a trace export URL's signature covers, before the expiry (distinct from archive URLs,
/// which sign "<run>/<kind>/<name>\n<expires>").
inline std::string trace_signed_prefix(const std::string& session_id) { return "trace-export\n" + session_id + "\n"; }

}  // namespace session_detail

/// GET /api/v1/sessions/{id}/trace_export: ready at once, with a signed URL (no API key needed,
/// valid for engine_options::trace_url_lifetime) whose GET answers the session's trace document.
inline http_response trace_export(engine_core& core, request_context& ctx) {
  const auto& s = core.sessions.owned(ctx.tenant, ctx.target.api_segment(1));
  const auto expires_unix = signed_url_expiry(core, core.options().trace_url_lifetime).second;
  const auto signature =
      hmac_sha256_hex(core.storage.secret(), session_detail::trace_signed_prefix(s.record.id) + expires_unix);
  trace_export_response resp;
  resp.status = trace_export_status::ready;
  resp.url = public_base(core, ctx) + tinker::http::path_of({"downloads", "traces", s.record.id + ".json"}) +
             "?expires=" + expires_unix + "&signature=" + signature;
  return json_response(ctx, 200, boost::json::value_from(resp));
}

/// GET /downloads/traces/<session>.json?expires=&signature=: the session's trace as JSON (its
/// training runs and samplers with the requests that named them, per route, and its heartbeats;
/// counts are since this engine started).
inline http_response trace_download(engine_core& core, request_context& ctx) {
  const auto& file = ctx.target.segments.at(2);
  if (!file.ends_with(".json")) throw http_error(404, "no such trace");
  const auto session_id = file.substr(0, file.size() - 5);
  check_signed_url(core, ctx, session_detail::trace_signed_prefix(session_id), "trace export");
  const auto* found = core.sessions.find(session_id);
  if (!found) throw http_error(404, "session " + session_id + " no longer exists");
  const auto& s = *found;
  auto counts_of = [&core](const std::string& id) {
    boost::json::object counts;
    for (const auto& [route, n] : core.requests.naming(id)) counts[route] = n;
    return counts;
  };
  boost::json::array runs;
  for (const auto& run_id : s.record.training_run_ids) {
    boost::json::object o{{"training_run_id", run_id}, {"request_counts", counts_of(run_id)}};
    if (auto r = core.runs.find(run_id); r != core.runs.end()) {
      o["base_model"] = r->second.base_model;
      o["lora_rank"] = r->second.lora.rank;
      o["created"] = format_timestamp(r->second.created);
      o["last_request_time"] = format_timestamp(r->second.last_request_time);
    }
    o["loaded"] = core.models.contains(run_id);
    runs.push_back(std::move(o));
  }
  boost::json::array samplers;
  for (const auto& sampler_id : s.record.sampler_ids) {
    boost::json::object o{{"sampler_id", sampler_id}, {"request_counts", counts_of(sampler_id)}};
    if (auto r = core.samplers.find(sampler_id); r != core.samplers.end()) {
      o["base_model"] = r->second.record.base_model;
      if (r->second.record.model_path) o["model_path"] = *r->second.record.model_path;
      o["created"] = format_timestamp(r->second.record.created);
    }
    samplers.push_back(std::move(o));
  }
  boost::json::object doc{{"format", "tinker-local-trace/1"},
                          {"session_id", s.record.id},
                          {"created", format_timestamp(s.record.created)},
                          {"exported_at", format_timestamp(core.now_ts())},
                          {"sdk_version", s.record.sdk_version},
                          {"tags", json::detail::to_value(s.record.tags)},
                          {"user_metadata", json::detail::to_value(s.record.user_metadata)},
                          {"heartbeat_count", s.heartbeats},
                          {"training_runs", std::move(runs)},
                          {"samplers", std::move(samplers)}};
  if (s.record.project_id) doc["project_id"] = *s.record.project_id;
  if (s.record.finished_at) doc["finished_at"] = format_timestamp(*s.record.finished_at);
  auto res = json_response(ctx, 200, doc);
  res.set(boost::beast::http::field::content_disposition, attachment(file));
  return res;
}

}  // namespace tinker::local::detail::endpoints
