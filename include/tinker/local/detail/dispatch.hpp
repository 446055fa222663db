// The request pipeline: what happens to every request before and around its handler. Expired
// checkpoints go first; then the target is parsed and routed, the request counted and shown to
// the observer, faults injected, the caller authenticated, and the route's handler called; every
// refusal becomes a `{"detail": ...}` answer.
#pragma once

#include <tinker/error.hpp>
#include <tinker/local/detail/engine_core.hpp>
#include <tinker/local/detail/routing.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/field.hpp>

#include <cctype>
#include <optional>
#include <string>
#include <vector>

namespace tinker::local::detail {

namespace dispatch_detail {

inline std::string join(const std::vector<std::string>& segments) {
  std::string out;
  for (const auto& s : segments) out += (out.empty() ? "" : "/") + s;
  return out;
}

/// Reports the request to engine_options::on_request (never the credentials).
inline void observe(const engine_core& core, const request_context& ctx) {
  try {
    request_record r;
    r.route = ctx.route;
    r.method = std::string(ctx.request.method_string());
    r.target = std::string(ctx.request.target());
    for (const auto& field : ctx.request) {
      std::string name(field.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (name == "x-api-key" || name == "authorization") continue;
      auto [it, inserted] = r.headers.emplace(name, std::string(field.value()));
      if (!inserted) it->second += ", " + std::string(field.value());
    }
    if (names_model_op(ctx.route) || ctx.route == "asample" || ctx.route == "retrieve_future") {
      auto t = body_target_of(ctx);
      r.model_id = std::move(t.model_id);
      r.seq_id = t.seq_id;
      r.request_id = std::move(t.request_id);
    }
    r.body = ctx.request.body();
    core.options().on_request(r);
  } catch (...) {
    // an observer's failure never affects the request
  }
}

/// Fault injection before the handler: the route's extra latency, then a random refusal or drop.
/// nullopt = handle the request; an empty inner optional = drop the connection.
inline asio::awaitable<std::optional<std::optional<http_response>>> inject_faults(engine_core& core,
                                                                                  request_context& ctx) {
  if (!core.faults.any()) co_return std::nullopt;
  if (const auto latency = core.faults.latency_for(ctx.route); latency.count() > 0) co_await core.wait_for(latency);
  auto fault = core.faults.decide(ctx.route);
  if (!fault) co_return std::nullopt;
  if (fault->drop) co_return std::optional<http_response>{};
  auto res = error_response(ctx.request, fault->status, std::move(fault->detail));
  if (fault->retry_after) res.set(boost::beast::http::field::retry_after, std::to_string(fault->retry_after->count()));
  co_return std::optional<http_response>(std::move(res));
}

}  // namespace dispatch_detail

/// Serves `req` on `core`: the answer, or nullopt to drop the connection without one (injected).
inline asio::awaitable<std::optional<http_response>> serve(engine_core& core, http_request& req) {
  core.expire_checkpoints(core.now());
  auto ctx = request_context::of(req);
  const auto* route = find_route(req.method(), ctx.target);
  if (route) ctx.route = std::string(route->name);
  core.requests.count_route(ctx.route);
  if (route && core.options().on_request) dispatch_detail::observe(core, ctx);
  try {
    if (ctx.target.problem) throw http_error(400, *ctx.target.problem);
    if (!route)
      throw http_error(
          404, "no such endpoint: " + std::string(req.method_string()) + " " +
                   std::string(ctx.target.segments.empty() ? "/" : "/" + dispatch_detail::join(ctx.target.segments)));
    if (auto injected = co_await dispatch_detail::inject_faults(core, ctx)) co_return std::move(*injected);
    if (route->authenticated) ctx.tenant = core.tenants.authenticate(req);
    co_return co_await route->handler(core, ctx);
  } catch (const http_error& e) {
    co_return error_response(req, e.status(), e.what());
  } catch (const tinker::protocol_error& e) {
    co_return error_response(req, 400, e.what());
  } catch (const tinker::invalid_argument& e) {
    co_return error_response(req, 400, e.what());
  } catch (const std::exception& e) {
    co_return error_response(req, 500, std::string("internal error: ") + e.what());
  }
}

}  // namespace tinker::local::detail
