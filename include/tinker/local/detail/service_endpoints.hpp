// Local engine endpoints: client configuration, telemetry, capabilities and sessions.
#pragma once

#include <tinker/local/detail/engine_impl.hpp>

namespace tinker::local::detail {

inline http_response engine_impl::handle_client_config(request_context& ctx) {
  (void)decode_json_body<client_config_request>(ctx);
  client_config_response c;
  c.sample_use_retrieve_futures = options_.offer_batched_polling;
  c.create_model_via_load_weights = options_.offer_create_via_load;
  c.use_pyqwest_transport = options_.advise_pyqwest_transport;
  c.fwdbwd_max_chunk_len = options_.fwdbwd_max_chunk_len;
  c.fwdbwd_max_chunk_bytes_count = options_.fwdbwd_max_chunk_bytes;
  return json_response(ctx, 200, boost::json::value_from(c));
}

inline http_response engine_impl::handle_telemetry(request_context& ctx) {
  (void)decode_json_body<telemetry_send_request>(ctx);  // checked, then dropped
  return json_response(ctx, 200, boost::json::value_from(telemetry_response{}));
}

inline http_response engine_impl::handle_capabilities(request_context& ctx) {
  get_server_capabilities_response resp;
  auto describe = [](const std::string& name, const base_model& m) {
    return supported_model{name, m.spec().max_context_length, true, true};
  };
  for (const auto& [name, model] : base_models_) resp.supported_models.push_back(describe(name, *model));
  for (const auto& [alias, target] : options_.model_aliases)
    resp.supported_models.push_back(describe(alias, *base_models_.at(target)));
  return json_response(ctx, 200, boost::json::value_from(resp));
}

inline http_response engine_impl::handle_create_session(request_context& ctx) {
  auto req = decode_json_body_with_metadata<create_session_request>(ctx);
  session_state s;
  s.record.id = ids_.uuid();
  s.record.owner = ctx.tenant;
  s.record.tags = std::move(req.tags);
  s.record.user_metadata = std::move(req.user_metadata);
  s.record.project_id = std::move(req.project_id);
  s.record.sdk_version = std::move(req.sdk_version);
  s.record.created = now_ts();
  s.last_heartbeat = options_.clock();
  store_.save(s.record);
  const auto id = s.record.id;
  boost::json::object details{{"session_id", id}};
  if (s.record.project_id) details["project_id"] = *s.record.project_id;
  sessions_.emplace(id, std::move(s));
  audit(ctx.tenant, "session_create", std::nullopt, std::nullopt, std::move(details));
  create_session_response resp;
  resp.session_id = id;
  return json_response(ctx, 200, boost::json::value_from(resp));
}

inline http_response engine_impl::handle_heartbeat(request_context& ctx) {
  const auto req = decode_json_body<session_heartbeat_request>(ctx);
  auto& session = session_of(ctx, req.session_id);
  session.last_heartbeat = options_.clock();
  ++session.heartbeats;
  return json_response(ctx, 200, boost::json::value_from(session_heartbeat_response{}));
}

/// Marks the session terminal; the first call wins: later calls answer what it recorded (200), and
/// heartbeats answer 410 from then on. Persisted, so a restart keeps it finished.
inline http_response engine_impl::handle_finish_session(request_context& ctx) {
  const auto& id = ctx.target.api_segment(1);
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second.record.owner != ctx.tenant) throw http_error(404, "unknown session " + id);
  auto& s = it->second;
  if (!s.record.finished_at) {
    std::optional<boost::json::value> reason;
    if (!ctx.request.body().empty()) {
      auto body = json::parse(ctx.request.body(), "finish_session_request");
      if (!body.is_object()) throw http_error(400, "finish_session_request must be a JSON object");
      if (auto* r = body.as_object().if_contains("reason"); r && !r->is_null()) reason = *r;
    }
    s.record.finished_at = now_ts();
    s.record.finish_reason = std::move(reason);
    store_.save(s.record);
    for (const auto& run_id : s.record.training_run_ids) unload_model(run_id, "session finished");
  }
  boost::json::object resp{{"session_id", s.record.id}, {"finished_at", format_timestamp(*s.record.finished_at)}};
  if (s.record.finish_reason) resp["reason"] = *s.record.finish_reason;
  return json_response(ctx, 200, resp);
}

inline http_response engine_impl::handle_create_sampling_session(request_context& ctx) {
  const auto req = decode_json_body<create_sampling_session_request>(ctx);
  auto& session = session_of(ctx, req.session_id);
  if (!req.base_model && !req.model_path)
    throw http_error(400, "give base_model or model_path (or both, when they agree)");
  const auto id = req.session_id + ":sample:" + std::to_string(req.sampling_session_seq_id);
  if (auto it = samplers_.find(id); it != samplers_.end()) {
    // An identical retry gets the same sampler; a different request reusing the seq id is an error.
    const auto& r = it->second.record;
    bool same = false;
    if (req.model_path) {
      auto path = tinker_path::try_parse(*req.model_path);
      same = path && r.model_path == path->str() &&
             (!req.base_model ||
              (options_.model_aliases.contains(*req.base_model) ? options_.model_aliases.at(*req.base_model)
                                                                : *req.base_model) == r.engine_model);
    } else {
      same = !r.model_path && r.base_model == *req.base_model;
    }
    if (same) return json_response(ctx, 200, boost::json::value_from(create_sampling_session_response{id}));
    throw http_error(400, "sampling_session_seq_id " + std::to_string(req.sampling_session_seq_id) +
                              " was already used for a different sampler");
  }
  if (reserved_sampler_ids_.contains(id))
    throw http_error(400, "sampling_session_seq_id " + std::to_string(req.sampling_session_seq_id) +
                              " is already used by a save_weights_for_sampler that has not finished yet");
  sampler_state s;
  s.record.id = id;
  s.record.owner = ctx.tenant;
  s.record.session_id = req.session_id;
  s.record.created = now_ts();
  set_sampler_weights(s, ctx.tenant, req.model_path, req.base_model);
  store_.save(s.record);
  session.record.sampler_ids.push_back(id);
  store_.save(session.record);
  samplers_.emplace(id, std::move(s));
  count_request(id, ctx.route);
  return json_response(ctx, 200, boost::json::value_from(create_sampling_session_response{id}));
}

}  // namespace tinker::local::detail
