// Endpoints of futures: retrieve_future (a long poll on one future) and batched completion polling
// (retrieve_futures: a long poll on a sampler's completion log).
#pragma once

#include <tinker/local/detail/engine_core.hpp>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>

namespace tinker::local::detail::endpoints {

inline asio::awaitable<http_response> retrieve_future(engine_core& core, request_context& ctx) {
  const auto req = decode_json_body<future_retrieve_request>(ctx);
  auto future = core.futures.find(req.request_id);
  if (!future || future->owner != ctx.tenant) {
    const auto epoch = request_id_epoch(req.request_id);
    if (epoch != 0 && epoch != core.ids.epoch())
      throw http_error(
          410, "future " + req.request_id + " belongs to an earlier run of this server; submit the request again");
    throw http_error(404, "unknown future " + req.request_id);
  }
  auto try_again = [&](queue_state state, std::optional<std::string> reason) {
    return json_response(ctx, 200, boost::json::value_from(try_again_response{future->id, state, std::move(reason)}));
  };
  const auto hold = core.options().long_poll_hold;
  const auto deadline = std::chrono::steady_clock::now() + hold;
  ++future->polls;
  if (core.faults.holds_poll(future->polls)) co_return try_again(queue_state::active, std::nullopt);
  if (auto pause = core.faults.pause_at(std::chrono::steady_clock::now())) {
    // Paused: hold the poll until the pause ends (or the hold runs out), then report the state.
    co_await core.wait_for(std::min<std::chrono::steady_clock::duration>(pause->remaining, hold));
    co_return try_again(pause->state, pause->state == queue_state::paused_capacity
                                          ? "local engine: simulated capacity shortage"
                                          : "local engine: simulated rate limit");
  }
  while (!future->finished() && std::chrono::steady_clock::now() < deadline && !core.stopping())
    co_await future->waiters.wait_until(deadline);
  if (!future->finished()) co_return try_again(queue_state::active, std::nullopt);
  if (future->state == future_entry::status::failed)
    co_return json_response(ctx, 200, boost::json::value_from(future->failure));
  co_return co_await core.result_response(ctx, future);
}

inline asio::awaitable<http_response> retrieve_futures(engine_core& core, request_context& ctx) {
  const auto req = decode_json_body<retrieve_futures_request>(ctx);
  auto it = core.samplers.find(req.target.sampling_session_id);
  if (it == core.samplers.end() || it->second.record.owner != ctx.tenant)
    throw http_error(404, "unknown sampling session " + req.target.sampling_session_id);
  const auto& sampler_id = req.target.sampling_session_id;
  const auto cloned = req.target.cloned_sampler_id;
  auto& log = core.futures.log_for(sampler_id, cloned);
  // The client's timeout (seconds), clamped to [0, hold]; NaN counts as 0.
  auto hold = core.options().long_poll_hold;
  if (req.timeout) {
    const double seconds = *req.timeout;
    if (!(seconds > 0))
      hold = std::chrono::milliseconds::zero();
    else if (seconds * 1000.0 < static_cast<double>(hold.count()))
      hold = std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000.0));
  }
  // A cursor beyond this log's last one was handed out by an earlier run of the engine (a log
  // counts from zero again after a restart): the client has seen nothing of this run's log yet.
  const auto prev = req.prev_cursor > log.last_cursor ? std::int64_t{0} : req.prev_cursor;
  const auto deadline = std::chrono::steady_clock::now() + hold;
  while (log.last_cursor <= prev && std::chrono::steady_clock::now() < deadline && !core.stopping())
    co_await log.waiters.wait_until(deadline);
  retrieve_futures_response resp;
  resp.cursor = std::max(prev, log.last_cursor);
  for (const auto& e : log.events)
    if (e.cursor > prev) resp.completions.push_back(e.completion);
  core.futures.drop_log_if_unused(sampler_id, cloned);  // `log` may be gone from here on
  co_return json_response(ctx, 200, boost::json::value_from(resp));
}

}  // namespace tinker::local::detail::endpoints
