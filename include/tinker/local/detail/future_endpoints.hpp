// Local engine endpoints: retrieve_future (long-poll) and batched completion polling
// (retrieve_futures).
#pragma once

#include <tinker/local/detail/engine_impl.hpp>

namespace tinker::local::detail {

inline asio::awaitable<http_response> engine_impl::handle_retrieve_future(request_context& ctx) {
  const auto req = decode_json_body<future_retrieve_request>(ctx);
  auto future = futures_.find(req.request_id);
  if (!future || future->owner != ctx.tenant) {
    const auto epoch = request_id_epoch(req.request_id);
    if (epoch != 0 && epoch != ids_.epoch())
      throw http_error(
          410, "future " + req.request_id + " belongs to an earlier run of this server; submit the request again");
    throw http_error(404, "unknown future " + req.request_id);
  }
  auto try_again = [&](queue_state state, std::optional<std::string> reason) {
    return json_response(ctx, 200, boost::json::value_from(try_again_response{future->id, state, std::move(reason)}));
  };
  const auto deadline = std::chrono::steady_clock::now() + options_.long_poll_hold;
  ++future->polls;
  if (future->polls <= options_.faults.try_again_first_polls) co_return try_again(queue_state::active, std::nullopt);
  if (auto pause = current_pause()) {
    // Paused: hold the poll until the pause ends (or the hold runs out), then report the state.
    co_await wait_for(std::min<std::chrono::steady_clock::duration>(pause->second, options_.long_poll_hold));
    co_return try_again(pause->first, pause->first == queue_state::paused_capacity
                                          ? "local engine: simulated capacity shortage"
                                          : "local engine: simulated rate limit");
  }
  while (!future->finished() && std::chrono::steady_clock::now() < deadline && !stopped_)
    co_await future->waiters.wait_until(io_, deadline);
  if (!future->finished()) co_return try_again(queue_state::active, std::nullopt);
  if (future->state == future_entry::status::failed)
    co_return json_response(ctx, 200, boost::json::value_from(future->failure));
  co_return co_await result_response(ctx, future);
}

inline asio::awaitable<http_response> engine_impl::handle_retrieve_futures(request_context& ctx) {
  const auto req = decode_json_body<retrieve_futures_request>(ctx);
  auto it = samplers_.find(req.target.sampling_session_id);
  if (it == samplers_.end() || it->second.record.owner != ctx.tenant)
    throw http_error(404, "unknown sampling session " + req.target.sampling_session_id);
  const auto& sampler_id = req.target.sampling_session_id;
  const auto cloned = req.target.cloned_sampler_id;
  auto& log = futures_.log_for(sampler_id, cloned);
  // The client's timeout (seconds), clamped to [0, hold]; NaN counts as 0.
  auto hold = options_.long_poll_hold;
  if (req.timeout) {
    const double seconds = *req.timeout;
    if (!(seconds > 0))
      hold = std::chrono::milliseconds::zero();
    else if (seconds * 1000.0 < static_cast<double>(hold.count()))
      hold = std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000.0));
  }
  const auto deadline = std::chrono::steady_clock::now() + hold;
  while (log.last_cursor <= req.prev_cursor && std::chrono::steady_clock::now() < deadline && !stopped_)
    co_await log.waiters.wait_until(io_, deadline);
  retrieve_futures_response resp;
  resp.cursor = std::max(req.prev_cursor, log.last_cursor);
  for (const auto& e : log.events)
    if (e.cursor > req.prev_cursor) resp.completions.push_back(e.completion);
  futures_.drop_log_if_unused(sampler_id, cloned);  // `log` may be gone from here on
  co_return json_response(ctx, 200, boost::json::value_from(resp));
}

}  // namespace tinker::local::detail
