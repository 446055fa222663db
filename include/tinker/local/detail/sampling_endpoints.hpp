// Endpoints of sampling: create_sampling_session, asample, the legacy synchronous sample, and
// samplers/{id}. Samples on the same sampler queue up and run in batches on the compute pool
// (engine_core::submit_sample).
#pragma once

#include <tinker/local/detail/engine_core.hpp>

#include <boost/beast/http/field.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace tinker::local::detail::endpoints {

namespace sampling_detail {

/// The sampler a request addresses: its sampling session, or (legacy clients) a base model or a
/// checkpoint path named in the request itself.
inline sampler_state& sampler_for_request(engine_core& core, const request_context& ctx, const sample_request& req) {
  if (req.sampling_session_id) {
    auto it = core.samplers.find(*req.sampling_session_id);
    if (it == core.samplers.end() || it->second.record.owner != ctx.tenant)
      throw http_error(404, "unknown sampling session " + *req.sampling_session_id);
    if (it->second.weights_lost)
      throw http_error(404, "sampling session " + *req.sampling_session_id +
                                " held in-memory weights of an earlier engine run; save weights for the sampler again");
    if (const auto* session = core.sessions.find(it->second.record.session_id);
        session && session->ended() && !it->second.record.model_path)
      throw http_error(404, "sampling session " + *req.sampling_session_id + " ended with its session");
    core.requests.count_naming(it->first, ctx.route);
    return it->second;
  }
  if (!req.base_model && !req.model_path)
    throw http_error(400, "give sampling_session_id (or base_model / model_path)");
  // Legacy addressing: one sampler per (tenant, target), kept for later requests.
  const auto target = req.model_path ? *req.model_path : *req.base_model;
  const auto id = "legacy:" + ctx.tenant + ":" + target;
  if (auto it = core.samplers.find(id); it != core.samplers.end()) return it->second;
  sampler_state s;
  s.record.id = id;
  s.record.owner = ctx.tenant;
  core.set_sampler_weights(s, ctx.tenant, req.model_path, req.base_model);
  return core.samplers.emplace(id, std::move(s)).first->second;
}

/// Refuses (400) what sampling `req` on `s` would refuse: num_samples, the sampling params, the
/// logprob options, the prompt and its length, and the work one request may ask for. An unset
/// max_tokens (null, which the SDK allows) becomes "up to the context length":
/// max_context_length - prompt length, filled into `req`; num_samples x that is still bounded by
/// the per-request work limit.
inline void check_sample_request(sample_request& req, const sampler_state& s) {
  if (req.num_samples < 1 || req.num_samples > max_num_samples)
    throw http_error(400, "num_samples must be in [1, " + std::to_string(max_num_samples) + "], got " +
                              std::to_string(req.num_samples));
  auto& max_tokens = req.sampling_params.max_tokens;
  if (max_tokens && *max_tokens <= 0)
    throw http_error(400,
                     "sampling_params.max_tokens must be a positive integer (or null: up to the context length), got " +
                         std::to_string(*max_tokens));
  if (!max_tokens) {
    const auto& spec = s.base->spec();
    const auto context = static_cast<std::int64_t>(spec.max_context_length);
    const auto prompt = static_cast<std::int64_t>(req.prompt.length());
    if (prompt >= context)
      throw http_error(400, "sampling_params.max_tokens is unset (up to the context length), but the prompt (" +
                                std::to_string(prompt) + " tokens) already fills the context length of " + spec.name +
                                " (" + std::to_string(context) + "): nothing left to sample");
    const auto effective = context - prompt;
    if (std::int64_t{req.num_samples} * effective > max_sampled_tokens_per_request)
      throw http_error(400, "sampling_params.max_tokens is unset, so each sample may run to the context limit (" +
                                std::to_string(context) + " - " + std::to_string(prompt) +
                                " prompt tokens = " + std::to_string(effective) + " tokens): num_samples x that = " +
                                std::to_string(req.num_samples) + " x " + std::to_string(effective) +
                                " exceeds the per-request limit of " + std::to_string(max_sampled_tokens_per_request) +
                                " sampled tokens; set sampling_params.max_tokens or ask for fewer samples");
    max_tokens = static_cast<std::int32_t>(effective);
  }
  tinker::local::check_sample_request(req, s.base->spec());  // tinker::invalid_argument -> 400
}

/// 429 with Retry-After when the engine holds max_pending_samples already.
inline std::optional<http_response> refuse_if_saturated(const engine_core& core, const request_context& ctx) {
  if (core.pending_sample_count() < core.options().max_pending_samples) return std::nullopt;
  auto res = error_response(ctx.request, 429, "too many samples in flight on this server; retry shortly");
  res.set(boost::beast::http::field::retry_after, "1");
  return res;
}

/// The ids of a sample request's sequences: `<request id>:<i>`.
inline std::vector<std::string> sequence_ids(const future_entry& f, int num_samples) {
  std::vector<std::string> ids;
  ids.reserve(static_cast<std::size_t>(num_samples));
  for (int i = 0; i < num_samples; ++i) ids.push_back(f.id + ":" + std::to_string(i));
  return ids;
}

}  // namespace sampling_detail

inline http_response create_sampling_session(engine_core& core, request_context& ctx) {
  const auto req = decode_json_body<create_sampling_session_request>(ctx);
  auto& session = core.sessions.live(ctx.tenant, req.session_id);
  if (!req.base_model && !req.model_path)
    throw http_error(400, "give base_model or model_path (or both, when they agree)");
  const auto id = req.session_id + ":sample:" + std::to_string(req.sampling_session_seq_id);
  if (auto it = core.samplers.find(id); it != core.samplers.end()) {
    // An identical retry gets the same sampler; a different request reusing the seq id is an error.
    const auto& r = it->second.record;
    const auto& aliases = core.options().model_aliases;
    bool same = false;
    if (req.model_path) {
      auto path = tinker_path::try_parse(*req.model_path);
      same = path && r.model_path == path->str() &&
             (!req.base_model ||
              (aliases.contains(*req.base_model) ? aliases.at(*req.base_model) : *req.base_model) == r.engine_model);
    } else {
      same = !r.model_path && r.base_model == *req.base_model;
    }
    if (same) return json_response(ctx, 200, boost::json::value_from(create_sampling_session_response{id}));
    throw http_error(400, "sampling_session_seq_id " + std::to_string(req.sampling_session_seq_id) +
                              " was already used for a different sampler");
  }
  if (core.reserved_sampler_ids.contains(id))
    throw http_error(400, "sampling_session_seq_id " + std::to_string(req.sampling_session_seq_id) +
                              " is already used by a save_weights_for_sampler that has not finished yet");
  sampler_state s;
  s.record.id = id;
  s.record.owner = ctx.tenant;
  s.record.session_id = req.session_id;
  s.record.created = core.now_ts();
  core.set_sampler_weights(s, ctx.tenant, req.model_path, req.base_model);
  core.storage.save(s.record);
  core.sessions.add_sampler(session, id);
  core.samplers.emplace(id, std::move(s));
  core.requests.count_naming(id, ctx.route);
  return json_response(ctx, 200, boost::json::value_from(create_sampling_session_response{id}));
}

inline http_response asample(engine_core& core, request_context& ctx) {
  auto req = decode_json_body<sample_request>(ctx);
  if (req.seq_id && *req.seq_id < 0)
    throw http_error(400, "seq_id must not be negative, got " + std::to_string(*req.seq_id));
  if (req.num_samples < 1 || req.num_samples > max_num_samples)
    throw http_error(400, "num_samples must be in [1, " + std::to_string(max_num_samples) + "], got " +
                              std::to_string(req.num_samples));
  auto& s = sampling_detail::sampler_for_request(core, ctx, req);
  sampling_detail::check_sample_request(req, s);
  const auto digest = sha256_hex(ctx.request.body());
  if (req.seq_id)
    if (auto original = s.submissions.check(*req.seq_id, digest, "seq_id"))
      if (auto f = core.futures.find(*original))
        return future_response(ctx, *f, std::nullopt, sampling_detail::sequence_ids(*f, req.num_samples));
  if (auto refused = sampling_detail::refuse_if_saturated(core, ctx)) return std::move(*refused);
  const int n = req.num_samples;
  auto future = core.submit_sample(ctx, s, std::move(req), digest);
  return future_response(ctx, *future, std::nullopt, sampling_detail::sequence_ids(*future, n));
}

/// Legacy synchronous POST /api/v1/sample: the SampleResponse in the answer itself.
inline asio::awaitable<http_response> sample(engine_core& core, request_context& ctx) {
  auto req = decode_json_body<sample_request>(ctx);
  auto& s = sampling_detail::sampler_for_request(core, ctx, req);
  sampling_detail::check_sample_request(req, s);
  if (auto refused = sampling_detail::refuse_if_saturated(core, ctx)) co_return std::move(*refused);
  auto future = core.submit_sample(ctx, s, std::move(req), sha256_hex(ctx.request.body()));
  while (!future->finished() && !core.stopping())
    co_await future->waiters.wait_until(std::chrono::steady_clock::now() + std::chrono::hours(1));
  if (!future->finished()) throw http_error(503, "the server is stopping");
  if (future->state == future_entry::status::failed)
    throw http_error(future->failure.category == error_category::user ? 400 : 500, future->failure.error);
  auto copy = future;
  co_return co_await core.result_response(ctx, copy, /*allow_protobuf=*/false);
}

inline http_response get_sampler(engine_core& core, request_context& ctx) {
  const auto& id = ctx.target.api_segment(1);
  auto it = core.samplers.find(id);
  if (it == core.samplers.end() || it->second.record.owner != ctx.tenant)
    throw http_error(404, "unknown sampler " + id);
  const auto& r = it->second.record;
  return json_response(ctx, 200, boost::json::value_from(get_sampler_response{r.id, r.base_model, r.model_path}));
}

}  // namespace tinker::local::detail::endpoints
