// sampling_client: admission, submission with back-pressure, polling and the sampling retry
// policy, on the client's executor.
#pragma once

#include <tinker/client/detail/backoff.hpp>
#include <tinker/client/detail/sampling_state.hpp>
#include <tinker/client/detail/spawn.hpp>
#include <tinker/client/detail/status_error.hpp>
#include <tinker/client/detail/validation.hpp>
#include <tinker/client/sampling_client.hpp>
#include <tinker/http/url.hpp>
#include <tinker/json.hpp>
#include <tinker/proto.hpp>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace tinker {
namespace detail {

/// A sampling client on `sampler_id`, with the admission limits of the options and the server
/// (the smaller of each), and batched completion polling when both sides want it.
inline sampling_client make_sampler(std::shared_ptr<client_core> core, std::string sampler_id, std::string base_model) {
  const auto& o = core->options();
  const auto config = core->cached_config();
  auto max_in_flight = o.sample_max_in_flight;
  auto max_bytes = o.sample_max_dispatch_bytes;
  const bool batched = o.polling.use_batched_polling && config && config->sample_use_retrieve_futures;
  // With batched polling a sample in flight costs the server no waiting connection, so (as the
  // SDK does) the server's per-sampler concurrency cap no longer applies.
  if (!batched && config && config->sample_max_concurrent_requests > 0)
    max_in_flight = std::min(max_in_flight, static_cast<std::size_t>(config->sample_max_concurrent_requests));
  if (config && config->sample_dispatch_bytes_semaphore_size > 0)
    max_bytes = std::min(max_bytes, static_cast<std::size_t>(config->sample_dispatch_bytes_semaphore_size));
  auto state = std::make_shared<sampling_state>(core, sampler_id, std::move(base_model), max_in_flight, max_bytes);
  if (batched) state->poller = std::make_shared<completion_poller>(std::move(core), std::move(sampler_id));
  return sampling_client(std::move(state));
}

/// create_sampling_session for a checkpoint path or a base model.
inline boost::asio::awaitable<sampling_client> create_sampling_session(std::shared_ptr<client_core> core,
                                                                       std::optional<std::string> model_path,
                                                                       std::optional<std::string> base_model) {
  create_sampling_session_request req;
  req.session_id = co_await core->session_id();
  req.sampling_session_seq_id = core->next_sampling_session_seq_id();
  req.model_path = std::move(model_path);
  req.base_model = base_model;
  auto resp = co_await core->post_json<create_sampling_session_response>("/api/v1/create_sampling_session", req,
                                                                         http::lane::session);
  co_return make_sampler(std::move(core), resp.sampling_session_id, base_model.value_or(""));
}

namespace sampling {

/// The request of one sample call; user mistakes are thrown here, before anything is sent.
inline sample_request make_request(const sampling_state& s, model_input prompt, int num_samples, sampling_params params,
                                   bool include_prompt_logprobs, int topk_prompt_logprobs) {
  validate_sampling(prompt, num_samples, params, topk_prompt_logprobs);
  sample_request req;
  req.num_samples = num_samples;
  req.prompt = std::move(prompt);
  req.sampling_params = std::move(params);
  req.sampling_session_id = s.sampler_id;
  req.prompt_logprobs = include_prompt_logprobs;
  req.topk_prompt_logprobs = topk_prompt_logprobs;
  return req;
}

/// Estimated submission size: 10 bytes per token, raw image / dmel bytes (the SDK's estimate).
inline std::int64_t estimated_bytes(const sample_request& req) {
  std::int64_t n = 0;
  for (const auto& c : req.prompt.chunks) {
    if (auto* t = std::get_if<encoded_text_chunk>(&c))
      n += static_cast<std::int64_t>(t->tokens.size()) * 10;
    else if (auto* i = std::get_if<image_chunk>(&c))
      n += static_cast<std::int64_t>(i->data.size());
    else if (auto* p = std::get_if<image_asset_pointer_chunk>(&c))
      n += static_cast<std::int64_t>(p->location.size());
    else if (auto* d = std::get_if<dmel_chunk>(&c))
      n += static_cast<std::int64_t>(d->dmel.size());
  }
  return n;
}

/// POST asample with the back-pressure protocol: a 429 sets a shared back-off (1 s, or 5 s for
/// prompts over 128 KiB) and the same request is submitted again once it has passed; for 10 s
/// after a back-off, at most 10 submissions run at once and bytes weigh 20x.
inline boost::asio::awaitable<submission> submit(std::shared_ptr<sampling_state> s, const sample_request& req) {
  const auto bytes = estimated_bytes(req);
  const auto body = json::to_json(req);
  while (true) {
    auto now = std::chrono::steady_clock::now();
    while (now < s->backoff_until) {
      co_await s->core->sleep(std::min<seconds_d>(s->backoff_until - now, std::chrono::seconds(1)));
      now = std::chrono::steady_clock::now();
    }
    const bool throttled =
        now - s->last_backoff < std::chrono::seconds(10) && s->last_backoff.time_since_epoch().count() != 0;
    const auto weight = throttled ? bytes * 20 : bytes;
    co_await s->dispatch_bytes.acquire(weight);
    struct release_bytes {
      async_semaphore& sem;
      std::int64_t n;
      ~release_bytes() { sem.release(n); }
    } bytes_guard{s->dispatch_bytes, weight};
    std::optional<release_bytes> throttle_guard;
    if (throttled) {
      co_await s->throttled_dispatch.acquire(1);
      throttle_guard.emplace(release_bytes{s->throttled_dispatch, 1});
    }
    call_spec spec;
    spec.path = "/api/v1/asample";
    spec.body = body;
    spec.lane = http::lane::sample;
    spec.retry = false;         // (the sample as a whole is retried: see run)
    spec.back_pressure = true;  // 429, and 402 in a billing pause, come back as back_off
    spec.headers.emplace_back("X-Tinker-Sampling-Backpressure", "1");
    auto out = co_await s->core->exchange_submission(std::move(spec));
    if (out.what == call_decision::kind::done) co_return std::move(out.sub);
    const auto t = std::chrono::steady_clock::now();
    s->backoff_until =
        std::max(s->backoff_until, t + (bytes > 128 * 1024 ? std::chrono::seconds(5) : std::chrono::seconds(1)));
    s->last_backoff = t;
  }
}

inline result_decoder<sample_response> decoder() {
  return {[](std::string_view bytes) { return proto::decode_sample_response(bytes); },
          [](const boost::json::value& v) { return json::from_value<sample_response>(v); }};
}

inline bool retryable(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const request_failed_error&) {
    return false;
  } catch (const gone_error&) {
    return false;  // the poll loop already resubmitted up to polling.max_resubmissions times
  } catch (const api_status_error& s) {
    return retryable_status(static_cast<unsigned>(s.status()));
  } catch (const api_connection_error&) {
    return true;
  } catch (...) {
    return false;
  }
}

/// Admission, submission and polling of one sample, with the sampling retry policy.
inline boost::asio::awaitable<sample_response> run(std::shared_ptr<sampling_state> s, sample_request req) {
  co_await s->in_flight.acquire(1);
  s->admitted.fetch_add(1, std::memory_order_relaxed);
  struct release_slot {
    sampling_state& s;
    ~release_slot() {
      s.admitted.fetch_sub(1, std::memory_order_relaxed);
      s.in_flight.release(1);
    }
  } slot{*s};
  const auto& retry = s->core->options().retry;
  for (int attempt = 0;; ++attempt) {
    std::exception_ptr failure;
    try {
      req.seq_id = s->next_seq++;  // every attempt is a new request
      auto sub = co_await submit(s, req);
      if (s->poller) co_await s->poller->wait(sub.handle.request_id);  // then the fetch below answers at once
      // The ids of the sequences come with the submission that produced them (a 410 resubmits).
      auto ids = std::make_shared<std::optional<std::vector<std::string>>>(sub.handle.sample_sequence_ids);
      auto resubmit = [s, req, ids]() mutable -> boost::asio::awaitable<submission> {
        req.seq_id = s->next_seq++;
        auto again = co_await submit(s, req);
        *ids = again.handle.sample_sequence_ids;
        co_return again;
      };
      auto fut = s->core->poll<sample_response>(
          std::move(sub), {"Sample", "sampling on sampler " + s->sampler_id, http::lane::sample_poll}, decoder(),
          std::move(resubmit));
      auto resp = co_await await_result(fut);
      if (*ids && (*ids)->size() == resp.sequences.size())
        for (std::size_t i = 0; i < resp.sequences.size(); ++i) resp.sequences[i].sequence_id = (**ids)[i];
      co_return resp;
    } catch (const boost::system::system_error&) {
      throw;  // cancelled
    } catch (...) {
      failure = std::current_exception();
    }
    if (!retryable(failure) || attempt >= retry.max_retries) std::rethrow_exception(failure);
    co_await s->core->sleep(
        backoff_delay(attempt, retry.initial_backoff, retry.max_backoff, retry.jitter, s->core->rng()));
  }
}

/// The request made (and checked) inside the operation: a mistake completes the caller's handler.
inline boost::asio::awaitable<sample_response> checked_run(std::shared_ptr<sampling_state> s, model_input prompt,
                                                           int num_samples, sampling_params params,
                                                           bool include_prompt_logprobs, int topk_prompt_logprobs) {
  auto req = make_request(*s, std::move(prompt), num_samples, std::move(params), include_prompt_logprobs,
                          topk_prompt_logprobs);
  co_return co_await run(std::move(s), std::move(req));
}

inline boost::asio::awaitable<std::vector<float>> compute_logprobs(std::shared_ptr<sampling_state> s,
                                                                   model_input prompt) {
  auto req = make_request(*s, std::move(prompt), 1, sampling_params(1), true, 0);
  auto resp = co_await run(std::move(s), std::move(req));
  if (!resp.prompt_logprobs)
    throw api_response_validation_error("compute_logprobs: the server returned no prompt logprobs");
  co_return std::move(*resp.prompt_logprobs);
}

inline boost::asio::awaitable<std::string> base_model(std::shared_ptr<sampling_state> s) {
  if (s->base_model.empty()) {
    const auto path = http::path_of({"api", "v1", "samplers", s->sampler_id});  // (not in the co_await: GCC 12)
    s->base_model = (co_await s->core->get_json<get_sampler_response>(path)).base_model;
  }
  co_return s->base_model;
}

inline boost::asio::awaitable<byte_tokenizer> tokenizer(std::shared_ptr<sampling_state> s) {
  const auto base = co_await base_model(std::move(s));
  if (base.rfind("tinker-local/", 0) != 0)
    throw tinker_error("no tokenizer for base model '" + base +
                       "' in tinker-cpp (only the local engine's byte tokenizer ships with the library)");
  co_return byte_tokenizer{};
}

}  // namespace sampling
}  // namespace detail

TINKER_DECL void sampling_client::async_sample(state_ptr s, model_input prompt, int num_samples, sampling_params params,
                                               bool include_prompt_logprobs, int topk_prompt_logprobs,
                                               detail::any_handler<sample_response> h) {
  auto ex = s->core->executor();
  detail::spawn_op<sample_response>(
      ex,
      detail::sampling::checked_run(std::move(s), std::move(prompt), num_samples, std::move(params),
                                    include_prompt_logprobs, topk_prompt_logprobs),
      std::move(h));
}

TINKER_DECL api_future<sample_response> sampling_client::submit_sample(model_input prompt, int num_samples,
                                                                       sampling_params params,
                                                                       bool include_prompt_logprobs,
                                                                       int topk_prompt_logprobs) {
  auto req = detail::sampling::make_request(*checked(), std::move(prompt), num_samples, std::move(params),
                                            include_prompt_logprobs, topk_prompt_logprobs);
  auto s = state_;
  return s->core->spawn_future<sample_response>(
      [s, req = std::move(req)]() mutable { return detail::sampling::run(s, std::move(req)); }, {});
}

TINKER_DECL void sampling_client::async_compute_logprobs(state_ptr s, model_input prompt,
                                                         detail::any_handler<std::vector<float>> h) {
  auto ex = s->core->executor();
  detail::spawn_op<std::vector<float>>(ex, detail::sampling::compute_logprobs(std::move(s), std::move(prompt)),
                                       std::move(h));
}

TINKER_DECL void sampling_client::async_get_base_model(state_ptr s, detail::any_handler<std::string> h) {
  auto ex = s->core->executor();
  detail::spawn_op<std::string>(ex, detail::sampling::base_model(std::move(s)), std::move(h));
}

TINKER_DECL void sampling_client::async_get_tokenizer(state_ptr s, detail::any_handler<byte_tokenizer> h) {
  auto ex = s->core->executor();
  detail::spawn_op<byte_tokenizer>(ex, detail::sampling::tokenizer(std::move(s)), std::move(h));
}

TINKER_DECL const sampling_client::state_ptr& sampling_client::checked() const {
  if (!state_) throw tinker::invalid_argument("sampling_client: used before it was created");
  return state_;
}

TINKER_DECL const std::string& sampling_client::sampler_id() const { return checked()->sampler_id; }

TINKER_DECL std::size_t sampling_client::in_flight() const {
  return checked()->admitted.load(std::memory_order_relaxed);
}

TINKER_DECL sampling_client::executor_type sampling_client::get_executor() const { return checked()->core->executor(); }

}  // namespace tinker
