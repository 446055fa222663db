// Local engine endpoints: sampling (asample, the legacy synchronous sample, samplers/{id}).
// Samples on the same sampler queue up and run in batches on the compute pool.
#pragma once

#include <tinker/local/detail/engine_impl.hpp>

namespace tinker::local::detail {

/// The sampler a request addresses: its sampling session, or (legacy clients) a base model or a
/// checkpoint path named in the request itself.
inline sampler_state& engine_impl::sampler_for_request(const request_context& ctx, const sample_request& req) {
  if (req.sampling_session_id) {
    auto it = samplers_.find(*req.sampling_session_id);
    if (it == samplers_.end() || it->second.record.owner != ctx.tenant)
      throw http_error(404, "unknown sampling session " + *req.sampling_session_id);
    if (it->second.weights_lost)
      throw http_error(404, "sampling session " + *req.sampling_session_id +
                                " held in-memory weights of an earlier engine run; save weights for the sampler again");
    if (auto session = sessions_.find(it->second.record.session_id);
        session != sessions_.end() && (session->second.expired || session->second.record.finished_at) &&
        !it->second.record.model_path)
      throw http_error(404, "sampling session " + *req.sampling_session_id + " ended with its session");
    count_request(it->first, ctx.route);
    return it->second;
  }
  if (!req.base_model && !req.model_path)
    throw http_error(400, "give sampling_session_id (or base_model / model_path)");
  // Legacy addressing: one sampler per (tenant, target), kept for later requests.
  const auto target = req.model_path ? *req.model_path : *req.base_model;
  const auto id = "legacy:" + ctx.tenant + ":" + target;
  if (auto it = samplers_.find(id); it != samplers_.end()) return it->second;
  sampler_state s;
  s.record.id = id;
  s.record.owner = ctx.tenant;
  set_sampler_weights(s, ctx.tenant, req.model_path, req.base_model);
  return samplers_.emplace(id, std::move(s)).first->second;
}

/// Refuses (400) what sampling `req` on `s` would refuse: num_samples, the sampling params, the
/// logprob options, the prompt and its length, and the work one request may ask for. An unset
/// max_tokens (null, which the SDK allows) becomes "up to the context length":
/// max_context_length - prompt length, filled into `req`; num_samples x that is still bounded by
/// the per-request work limit.
inline void engine_impl::check_sample_request(sample_request& req, const sampler_state& s) const {
  if (req.num_samples < 1 || req.num_samples > detail::max_num_samples)
    throw http_error(400, "num_samples must be in [1, " + std::to_string(detail::max_num_samples) + "], got " +
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
    if (std::int64_t{req.num_samples} * effective > detail::max_sampled_tokens_per_request)
      throw http_error(400, "sampling_params.max_tokens is unset, so each sample may run to the context limit (" +
                                std::to_string(context) + " - " + std::to_string(prompt) +
                                " prompt tokens = " + std::to_string(effective) +
                                " tokens): num_samples x that = " + std::to_string(req.num_samples) + " x " +
                                std::to_string(effective) + " exceeds the per-request limit of " +
                                std::to_string(detail::max_sampled_tokens_per_request) +
                                " sampled tokens; set sampling_params.max_tokens or ask for fewer samples");
    max_tokens = static_cast<std::int32_t>(effective);
  }
  tinker::local::check_sample_request(req, s.base->spec());  // tinker::invalid_argument -> 400
}

inline http_response engine_impl::handle_asample(request_context& ctx) {
  auto req = decode_json_body<sample_request>(ctx);
  if (req.seq_id && *req.seq_id < 0)
    throw http_error(400, "seq_id must not be negative, got " + std::to_string(*req.seq_id));
  if (req.num_samples < 1 || req.num_samples > detail::max_num_samples)
    throw http_error(400, "num_samples must be in [1, " + std::to_string(detail::max_num_samples) + "], got " +
                              std::to_string(req.num_samples));
  auto& s = sampler_for_request(ctx, req);
  check_sample_request(req, s);
  const auto digest = sha256_hex(ctx.request.body());
  if (req.seq_id)
    if (auto original = s.submissions.check(*req.seq_id, digest, "seq_id"))
      if (auto f = futures_.find(*original)) {
        std::vector<std::string> ids;
        for (int i = 0; i < req.num_samples; ++i) ids.push_back(f->id + ":" + std::to_string(i));
        return future_response(ctx, *f, std::nullopt, std::move(ids));
      }
  if (pending_samples_ >= options_.max_pending_samples) {
    auto res = error_response(ctx.request, 429, "too many samples in flight on this server; retry shortly");
    res.set(http::field::retry_after, "1");
    return res;
  }
  const int n = req.num_samples;
  auto future = submit_sample(ctx, s, std::move(req), digest);
  std::vector<std::string> ids;
  ids.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) ids.push_back(future->id + ":" + std::to_string(i));
  return future_response(ctx, *future, std::nullopt, std::move(ids));
}

inline std::shared_ptr<future_entry> engine_impl::submit_sample(const request_context& ctx, sampler_state& s,
                                                                sample_request req, const std::string& digest) {
  auto future = futures_.create(ids_.request_id(), ctx.tenant, request_type::sample);
  future->sampler_id = s.record.id;
  // Unpickled SDK clients number their samples from 1e9 x clone: the clone id is that block.
  future->cloned_sampler_id = req.seq_id ? *req.seq_id / 1'000'000'000 : 0;
  if (req.seq_id) {
    s.submissions.remember(*req.seq_id, digest, future->id);
    if (s.submissions.by_key.size() > 65536) s.submissions.by_key.erase(s.submissions.by_key.begin());
  }
  if (auto injected = injected_failure_for(ctx.route)) {  // fault injection: fails instead of running
    futures_.fail(*future, std::move(injected->error), injected->category);
    return future;
  }
  const auto seed = req.sampling_params.seed ? *req.sampling_params.seed : ids_.next();
  s.queue.push_back(pending_sample{future, std::move(req), seed});
  ++pending_samples_;
  pump_sampler(s.record.id);
  return future;
}

/// Starts batch workers while there is work and compute to spare. A sampler whose weights are
/// still on disk gets one worker, which loads them first.
inline void engine_impl::pump_sampler(const std::string& sampler_id) {
  auto it = samplers_.find(sampler_id);
  if (it == samplers_.end()) return;
  auto& s = it->second;
  const std::size_t max_workers =
      s.needs_weights ? 1 : std::max<std::size_t>(1, options_.compute_threads ? options_.compute_threads : 2);
  while (!s.queue.empty() && s.running_batches < max_workers) {
    ++s.running_batches;
    asio::co_spawn(io_, run_sample_batch(shared_from_this(), sampler_id), asio::detached);
    if (s.needs_weights) break;
  }
}

inline asio::awaitable<void> engine_impl::run_sample_batch(std::shared_ptr<engine_impl> self, std::string sampler_id) {
  auto find = [&]() -> sampler_state* {
    auto it = self->samplers_.find(sampler_id);
    return it == self->samplers_.end() ? nullptr : &it->second;
  };
  while (auto* s = find()) {
    if (s->queue.empty()) {
      --s->running_batches;
      co_return;
    }
    if (s->needs_weights) {
      std::shared_ptr<const lora_weights> loaded;
      try {
        const auto& c = self->readable_checkpoint(s->record.owner, tinker_path::parse(*s->record.model_path));
        auto base = s->base;
        auto load = [self, c, base] {
          return load_lora_weights(to_checkpoint_files(self->read_checkpoint_files(c, false)), *base);
        };
        loaded = co_await self->compute(std::move(load));
      } catch (const std::exception& e) {
        // The checkpoint is gone (deleted, expired) or unreadable: fail what waits.
        s = find();
        if (!s) co_return;
        for (auto& p : s->queue)
          self->futures_.fail(*p.future, std::string("cannot load sampler weights: ") + e.what(), error_category::user);
        self->pending_samples_ -= s->queue.size();
        s->queue.clear();
        --s->running_batches;
        co_return;
      }
      s = find();  // re-found: the map may have changed while we were away
      if (!s) co_return;
      s->weights = std::move(loaded);
      s->needs_weights = false;
      self->pump_sampler(sampler_id);  // weights are in: let more workers in
    }
    std::vector<pending_sample> batch;
    const auto n = std::min(s->queue.size(), std::max<std::size_t>(1, self->options_.sample_batch_size));
    batch.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      batch.push_back(std::move(s->queue.front()));
      s->queue.pop_front();
    }
    auto base = s->base;
    auto weights = s->weights;
    const auto record = s->record;  // whose usage this is (the sampler may go while the batch runs)
    ++self->sample_batches_;
    auto shared_batch = std::make_shared<std::vector<pending_sample>>(std::move(batch));
    // Each job's result (with its protobuf encoding, made here on the compute pool) or error, so
    // that one bad request does not fail its batch-mates.
    using outcome = std::variant<future_payload, std::pair<std::string, error_category>>;
    auto run_batch = [base, weights, shared_batch] {
      std::vector<sample_job> jobs;
      jobs.reserve(shared_batch->size());
      for (const auto& p : *shared_batch) jobs.push_back(sample_job{&p.request, p.seed});
      auto payload = [](sample_response r) {
        auto bytes = std::make_shared<const std::string>(proto::encode(r));
        return future_payload(future_result(std::move(r)), std::move(bytes));
      };
      std::vector<outcome> out;
      out.reserve(jobs.size());
      try {
        for (auto& r : sample_batch(*base, weights.get(), jobs)) out.emplace_back(payload(std::move(r)));
        return out;
      } catch (const std::exception&) {
        out.clear();  // retry one by one to find the culprit(s)
      }
      for (const auto& job : jobs) {
        try {
          out.emplace_back(payload(std::move(sample_batch(*base, weights.get(), std::span(&job, 1)).at(0))));
        } catch (const tinker::invalid_argument& e) {
          out.emplace_back(std::pair{std::string(e.what()), error_category::user});
        } catch (const std::exception& e) {
          out.emplace_back(std::pair{std::string(e.what()), error_category::server});
        }
      }
      return out;
    };
    auto outcomes = co_await self->compute(std::move(run_batch));
    // Fault injection: the results are held back for the simulated step time.
    if (const auto hold = self->options_.faults.sample_step_time; hold.count() > 0) co_await self->wait_for(hold);
    for (std::size_t i = 0; i < shared_batch->size(); ++i) {
      const auto& job = (*shared_batch)[i];
      auto& f = *job.future;
      if (auto* r = std::get_if<future_payload>(&outcomes[i])) {
        // Billed: the prompt once per request (not per sample), and every sampled token.
        if (const auto* resp = std::get_if<sample_response>(&r->value)) {
          std::int64_t sampled = 0;
          for (const auto& seq : resp->sequences) sampled += static_cast<std::int64_t>(seq.tokens.size());
          self->record_usage(record.owner, record.session_id, record.base_model, usage_kind::sampling_prefill,
                             static_cast<std::int64_t>(job.request.prompt.length()));
          self->record_usage(record.owner, record.session_id, record.base_model, usage_kind::sampling_sample, sampled);
        }
        self->futures_.complete(f, std::move(*r));
      } else {
        auto& [message, category] = std::get<1>(outcomes[i]);
        self->futures_.fail(f, message, category);
      }
    }
    self->pending_samples_ -= shared_batch->size();
  }
}

/// Legacy synchronous POST /api/v1/sample: the SampleResponse in the answer itself.
inline asio::awaitable<http_response> engine_impl::handle_sync_sample(request_context& ctx) {
  auto req = decode_json_body<sample_request>(ctx);
  auto& s = sampler_for_request(ctx, req);
  check_sample_request(req, s);
  if (pending_samples_ >= options_.max_pending_samples) {
    auto res = error_response(ctx.request, 429, "too many samples in flight on this server; retry shortly");
    res.set(http::field::retry_after, "1");
    co_return res;
  }
  auto future = submit_sample(ctx, s, std::move(req), sha256_hex(ctx.request.body()));
  while (!future->finished() && !stopped_)
    co_await future->waiters.wait_until(io_, std::chrono::steady_clock::now() + std::chrono::hours(1));
  if (!future->finished()) throw http_error(503, "the server is stopping");
  if (future->state == future_entry::status::failed)
    throw http_error(future->failure.category == error_category::user ? 400 : 500, future->failure.error);
  auto copy = future;
  co_return co_await result_response(ctx, copy, /*allow_protobuf=*/false);
}

inline http_response engine_impl::handle_get_sampler(request_context& ctx) {
  const auto& id = ctx.target.api_segment(1);
  auto it = samplers_.find(id);
  if (it == samplers_.end() || it->second.record.owner != ctx.tenant) throw http_error(404, "unknown sampler " + id);
  const auto& r = it->second.record;
  return json_response(ctx, 200, boost::json::value_from(get_sampler_response{r.id, r.base_model, r.model_path}));
}

}  // namespace tinker::local::detail
