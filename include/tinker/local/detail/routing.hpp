// The engine's route table: each endpoint's name (what fault injection, request counts and the
// request observer call it), method, path pattern, whether it needs an API key, and its handler.
// The request pipeline (dispatch.hpp) calls the handler of the route that matched; nothing else
// decides which code serves a request.
#pragma once

#include <tinker/local/detail/account_endpoints.hpp>
#include <tinker/local/detail/checkpoint_endpoints.hpp>
#include <tinker/local/detail/engine_core.hpp>
#include <tinker/local/detail/future_endpoints.hpp>
#include <tinker/local/detail/request_target.hpp>
#include <tinker/local/detail/sampling_endpoints.hpp>
#include <tinker/local/detail/service_endpoints.hpp>
#include <tinker/local/detail/session_endpoints.hpp>
#include <tinker/local/detail/training_endpoints.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/verb.hpp>

#include <ostream>  // before Beast's verb.hpp, which needs it (Boost 1.81) but does not include it
#include <string_view>
#include <vector>

namespace tinker::local::detail {

/// Serves one request of its route (a coroutine, so it may long-poll or wait for compute).
using route_handler = asio::awaitable<http_response> (*)(engine_core&, request_context&);
/// A handler that answers at once.
using immediate_handler = http_response (*)(engine_core&, request_context&);

/// A handler that answers at once, as a route_handler.
template <immediate_handler Handler>
asio::awaitable<http_response> at_once(engine_core& core, request_context& ctx) {
  co_return Handler(core, ctx);
}

/// A training submission, as a route_handler: when the handler refuses the request for good, the
/// seq_id it names is used up (engine_core::consume_seq_if_rejected).
template <immediate_handler Handler>
asio::awaitable<http_response> training_submission(engine_core& core, request_context& ctx) {
  co_return core.consume_seq_if_rejected(ctx, [&] { return Handler(core, ctx); });
}

/// One endpoint of the engine. Pattern segments are literals, `{x}` (any one segment) or a final
/// `{...}` (one or more segments).
struct route_spec {
  std::string_view name;
  boost::beast::http::verb method;
  std::string_view pattern;
  bool authenticated = true;
  route_handler handler = nullptr;
};

/// Every route the engine serves (the first match wins).
inline const std::vector<route_spec>& route_table() {
  using v = boost::beast::http::verb;
  namespace e = endpoints;
  static const std::vector<route_spec> table = {
      {"healthz", v::get, "/api/v1/healthz", false, at_once<e::healthz>},
      {"client_config", v::post, "/api/v1/client/config", true, at_once<e::client_config>},
      {"dynamic_config", v::post, "/api/v1/client/dynamic_config", true, at_once<e::dynamic_config>},
      {"telemetry", v::post, "/api/v1/telemetry", true, at_once<e::telemetry>},
      {"get_server_capabilities", v::get, "/api/v1/get_server_capabilities", true, at_once<e::get_server_capabilities>},
      {"create_session", v::post, "/api/v1/create_session", true, at_once<e::create_session>},
      {"session_heartbeat", v::post, "/api/v1/session_heartbeat", true, at_once<e::session_heartbeat>},
      {"create_sampling_session", v::post, "/api/v1/create_sampling_session", true,
       at_once<e::create_sampling_session>},
      {"finish_session", v::post, "/api/v1/sessions/{session}/finish", true, at_once<e::finish_session>},
      {"create_model", v::post, "/api/v1/create_model", true, at_once<e::create_model>},
      {"get_info", v::post, "/api/v1/get_info", true, at_once<e::get_info>},
      {"unload_model", v::post, "/api/v1/unload_model", true, at_once<e::unload_model>},
      {"forward_backward", v::post, "/api/v1/forward_backward", true, training_submission<e::forward_backward>},
      {"forward", v::post, "/api/v1/forward", true, training_submission<e::forward_backward>},
      {"optim_step", v::post, "/api/v1/optim_step", true, training_submission<e::optim_step>},
      {"save_weights", v::post, "/api/v1/save_weights", true, training_submission<e::save_weights>},
      {"save_weights_for_sampler", v::post, "/api/v1/save_weights_for_sampler", true,
       training_submission<e::save_weights_for_sampler>},
      {"load_weights", v::post, "/api/v1/load_weights", true, training_submission<e::load_weights>},
      {"asample", v::post, "/api/v1/asample", true, at_once<e::asample>},
      {"sample", v::post, "/api/v1/sample", true, e::sample},
      {"get_sampler", v::get, "/api/v1/samplers/{sampler}", true, at_once<e::get_sampler>},
      {"retrieve_future", v::post, "/api/v1/retrieve_future", true, e::retrieve_future},
      {"retrieve_futures", v::post, "/api/v1/retrieve_futures", true, e::retrieve_futures},
      {"weights_info", v::post, "/api/v1/weights_info", true, at_once<e::weights_info>},
      {"list_training_runs", v::get, "/api/v1/training_runs", true, at_once<e::list_training_runs>},
      {"get_training_run", v::get, "/api/v1/training_runs/{run}", true, at_once<e::get_training_run>},
      {"list_checkpoints", v::get, "/api/v1/training_runs/{run}/checkpoints", true, at_once<e::list_checkpoints>},
      {"list_user_checkpoints", v::get, "/api/v1/checkpoints", true, at_once<e::list_user_checkpoints>},
      {"delete_checkpoint", v::delete_, "/api/v1/training_runs/{run}/checkpoints/{kind}/{name}", true,
       at_once<e::delete_checkpoint>},
      {"publish_checkpoint", v::post, "/api/v1/training_runs/{run}/checkpoints/{kind}/{name}/publish", true,
       at_once<e::publish_checkpoint>},
      {"unpublish_checkpoint", v::delete_, "/api/v1/training_runs/{run}/checkpoints/{kind}/{name}/publish", true,
       at_once<e::unpublish_checkpoint>},
      {"set_checkpoint_ttl", v::put, "/api/v1/training_runs/{run}/checkpoints/{kind}/{name}/ttl", true,
       at_once<e::set_checkpoint_ttl>},
      {"checkpoint_archive", v::get, "/api/v1/training_runs/{run}/checkpoints/{kind}/{name}/archive", true,
       at_once<e::checkpoint_archive>},
      // before "download", which would match it too
      {"trace_download", v::get, "/downloads/traces/{file}", false, at_once<e::trace_download>},
      {"download", v::get, "/downloads/{...}", false, e::download},
      {"list_sessions", v::get, "/api/v1/sessions", true, at_once<e::list_sessions>},
      {"get_session", v::get, "/api/v1/sessions/{session}", true, at_once<e::get_session>},
      {"set_session_project", v::put, "/api/v1/sessions/{session}/project", true, at_once<e::set_session_project>},
      {"trace_export", v::get, "/api/v1/sessions/{session}/trace_export", true, at_once<e::trace_export>},
      {"audit", v::get, "/api/v1/audit", true, at_once<e::audit>},
      {"billing_usage", v::get, "/api/v1/billing/usage/events", true, at_once<e::billing_usage>},
  };
  return table;
}

/// The route `method` + `target` names, or nullptr when none does (404).
inline const route_spec* find_route(boost::beast::http::verb method, const parsed_target& target) {
  for (const auto& r : route_table())
    if (r.method == method && route_pattern_matches(r.pattern, target.segments)) return &r;
  return nullptr;
}

}  // namespace tinker::local::detail
