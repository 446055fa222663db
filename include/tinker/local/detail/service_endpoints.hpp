// Endpoints of the service itself: health, client configuration, telemetry and capabilities.
#pragma once

#include <tinker/local/detail/engine_core.hpp>

namespace tinker::local::detail::endpoints {

inline http_response healthz(engine_core&, request_context& ctx) {
  return json_response(ctx, 200, boost::json::value_from(health_response{}));
}

inline http_response client_config(engine_core& core, request_context& ctx) {
  (void)decode_json_body<client_config_request>(ctx);
  const auto& o = core.options();
  client_config_response c;
  c.sample_use_retrieve_futures = o.offer_batched_polling;
  c.create_model_via_load_weights = o.offer_create_via_load;
  c.use_pyqwest_transport = o.advise_pyqwest_transport;
  c.fwdbwd_max_chunk_len = o.fwdbwd_max_chunk_len;
  c.fwdbwd_max_chunk_bytes_count = o.fwdbwd_max_chunk_bytes;
  return json_response(ctx, 200, boost::json::value_from(c));
}

inline http_response dynamic_config(engine_core&, request_context& ctx) {
  return json_response(ctx, 200, boost::json::value_from(dynamic_config_response{}));
}

inline http_response telemetry(engine_core&, request_context& ctx) {
  (void)decode_json_body<telemetry_send_request>(ctx);  // checked, then dropped
  return json_response(ctx, 200, boost::json::value_from(telemetry_response{}));
}

inline http_response get_server_capabilities(engine_core& core, request_context& ctx) {
  get_server_capabilities_response resp;
  auto describe = [](const std::string& name, const base_model& m) {
    return supported_model{name, m.spec().max_context_length, true, true};
  };
  for (const auto& [name, model] : core.base_models) resp.supported_models.push_back(describe(name, *model));
  for (const auto& [alias, target] : core.options().model_aliases)
    resp.supported_models.push_back(describe(alias, *core.base_models.at(target)));
  return json_response(ctx, 200, boost::json::value_from(resp));
}

}  // namespace tinker::local::detail::endpoints
