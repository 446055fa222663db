// sampling_client: samples from one set of weights (a sampler checkpoint, a base model, or the
// in-memory weights saved by save_weights_and_get_sampling_client).
//
//   auto resp = co_await sampler.sample(prompt, 4, tinker::sampling_params(32).with_temperature(0.7));
//
// Thousands of sample() calls may be in flight at once on one executor: admission control caps
// samples in flight (and prompt bytes being submitted) per sampling client, the server's 429
// back-pressure is honoured (back off, then resubmit the same request), and transient failures are
// retried with jittered backoff. A failed request (request_failed_error) is not retried.
#pragma once

#include <tinker/byte_tokenizer.hpp>
#include <tinker/client/api_future.hpp>
#include <tinker/client/detail/async_semaphore.hpp>
#include <tinker/client/detail/client_core.hpp>
#include <tinker/client/detail/completion_poller.hpp>
#include <tinker/client/detail/validation.hpp>
#include <tinker/proto/sample.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace tinker {

class sampling_client {
public:
  sampling_client() = default;

  /// Samples `num_samples` continuations of `prompt`; waits for the result.
  boost::asio::awaitable<sample_response> sample(model_input prompt, int num_samples, sampling_params params,
                                                 bool include_prompt_logprobs = false, int topk_prompt_logprobs = 0) {
    auto s = checked();
    auto req = make_request(*s, std::move(prompt), num_samples, std::move(params), include_prompt_logprobs,
                            topk_prompt_logprobs);
    co_return co_await run_sample(s, std::move(req));
  }

  /// Submits a sample and returns its future at once (the SDK's sync sample() shape); the work
  /// (admission, submission, polling, retries) runs in the background.
  api_future<sample_response> submit_sample(model_input prompt, int num_samples, sampling_params params,
                                            bool include_prompt_logprobs = false, int topk_prompt_logprobs = 0) {
    auto s = checked();
    auto req = make_request(*s, std::move(prompt), num_samples, std::move(params), include_prompt_logprobs,
                            topk_prompt_logprobs);
    return s->core->spawn_future<sample_response>(
        [s, req = std::move(req)]() mutable { return run_sample(s, std::move(req)); }, {});
  }

  /// Log-probabilities of every prompt token under these weights (NaN for the first token).
  boost::asio::awaitable<std::vector<float>> compute_logprobs(model_input prompt) {
    auto resp = co_await sample(std::move(prompt), 1, sampling_params(1), true, 0);
    if (!resp.prompt_logprobs)
      throw api_response_validation_error("compute_logprobs: the server returned no prompt logprobs");
    co_return std::move(*resp.prompt_logprobs);
  }

  /// The base model these weights belong to (GET samplers/{id}, cached).
  boost::asio::awaitable<std::string> get_base_model() {
    auto s = checked();
    if (s->base_model.empty()) {
      const auto path = http::path_of({"api", "v1", "samplers", s->sampler_id});  // (not in the co_await: GCC 12)
      s->base_model = (co_await s->core->get_json<get_sampler_response>(path)).base_model;
    }
    co_return s->base_model;
  }

  /// The tokenizer of the base model, when tinker-cpp has it: the local engine's byte tokenizer
  /// (its models are named "tinker-local/..."). Other tokenizers throw tinker_error.
  boost::asio::awaitable<byte_tokenizer> get_tokenizer() {
    const auto base = co_await get_base_model();
    if (base.rfind("tinker-local/", 0) != 0)
      throw tinker_error("no tokenizer for base model '" + base +
                         "' in tinker-cpp (only the local engine's byte tokenizer ships with the library)");
    co_return byte_tokenizer{};
  }

  /// The sampling session id.
  const std::string& sampler_id() const { return checked()->sampler_id; }

  /// Samples in flight right now (admitted and not finished).
  std::size_t in_flight() const {
    return static_cast<std::size_t>(checked()->in_flight.capacity() - checked()->in_flight.available());
  }

  // Internal: made by service_client / training_client.
  struct state {
    std::shared_ptr<detail::client_core> core;
    std::string sampler_id;
    std::string base_model;
    std::int64_t next_seq = 0;
    detail::async_semaphore in_flight;
    detail::async_semaphore dispatch_bytes;
    detail::async_semaphore throttled_dispatch{10};
    std::chrono::steady_clock::time_point backoff_until{};
    std::chrono::steady_clock::time_point last_backoff{};
    std::shared_ptr<detail::completion_poller> poller;  ///< set when the server offers batched polling

    state(std::shared_ptr<detail::client_core> c, std::string id, std::string base, std::size_t max_in_flight,
          std::size_t max_bytes)
        : core(std::move(c)),
          sampler_id(std::move(id)),
          base_model(std::move(base)),
          in_flight(static_cast<std::int64_t>(max_in_flight)),
          dispatch_bytes(static_cast<std::int64_t>(max_bytes)) {}
  };
  explicit sampling_client(std::shared_ptr<state> s) : state_(std::move(s)) {}

  /// Uses batched completion polling from now on (when the server offers it).
  void enable_batched_polling() {
    auto s = checked();
    if (!s->poller) s->poller = std::make_shared<detail::completion_poller>(s->core, s->sampler_id);
  }

private:
  std::shared_ptr<state> checked() const {
    if (!state_) throw tinker::invalid_argument("sampling_client: used before it was created");
    return state_;
  }

  /// Estimated submission size: 10 bytes per token, raw image / dmel bytes (the SDK's estimate).
  /// The request of one sample call; user mistakes are thrown here, before anything is sent.
  static sample_request make_request(const state& s, model_input prompt, int num_samples, sampling_params params,
                                     bool include_prompt_logprobs, int topk_prompt_logprobs) {
    detail::validate_sampling(prompt, num_samples, params, topk_prompt_logprobs);
    sample_request req;
    req.num_samples = num_samples;
    req.prompt = std::move(prompt);
    req.sampling_params = std::move(params);
    req.sampling_session_id = s.sampler_id;
    req.prompt_logprobs = include_prompt_logprobs;
    req.topk_prompt_logprobs = topk_prompt_logprobs;
    return req;
  }

  static std::int64_t estimated_bytes(const sample_request& req) {
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
  static boost::asio::awaitable<detail::submission> submit(std::shared_ptr<state> s, const sample_request& req) {
    const auto bytes = estimated_bytes(req);
    const auto body = json::to_json(req);
    while (true) {
      auto now = std::chrono::steady_clock::now();
      while (now < s->backoff_until) {
        co_await s->core->sleep(std::min<detail::seconds_d>(s->backoff_until - now, std::chrono::seconds(1)));
        now = std::chrono::steady_clock::now();
      }
      const bool throttled =
          now - s->last_backoff < std::chrono::seconds(10) && s->last_backoff.time_since_epoch().count() != 0;
      const auto weight = throttled ? bytes * 20 : bytes;
      co_await s->dispatch_bytes.acquire(s->core->executor(), weight);
      struct release_bytes {
        detail::async_semaphore& sem;
        std::int64_t n;
        ~release_bytes() { sem.release(n); }
      } bytes_guard{s->dispatch_bytes, weight};
      std::optional<release_bytes> throttle_guard;
      if (throttled) {
        co_await s->throttled_dispatch.acquire(s->core->executor(), 1);
        throttle_guard.emplace(release_bytes{s->throttled_dispatch, 1});
      }
      detail::call_spec spec;
      spec.path = "/api/v1/asample";
      spec.body = body;
      spec.lane = http::lane::sample;
      spec.retry = false;
      spec.headers.emplace_back("X-Tinker-Sampling-Backpressure", "1");
      try {
        co_return co_await s->core->submit(std::move(spec));
      } catch (const api_status_error& e) {
        // 429, and 402 (billing) while the server lets a billing pause last, mean "back off".
        if (e.status() != 429 && !(e.status() == 402 && s->core->billing_pause_continues())) throw;
        const auto t = std::chrono::steady_clock::now();
        s->backoff_until =
            std::max(s->backoff_until, t + (bytes > 128 * 1024 ? std::chrono::seconds(5) : std::chrono::seconds(1)));
        s->last_backoff = t;
      }
    }
  }

  static detail::result_decoder<sample_response> decoder() {
    return {[](std::string_view bytes) { return proto::decode_sample_response(bytes); },
            [](const boost::json::value& v) { return json::from_value<sample_response>(v); }};
  }

  static bool retryable(const std::exception_ptr& e) {
    try {
      std::rethrow_exception(e);
    } catch (const request_failed_error&) {
      return false;
    } catch (const gone_error&) {
      return false;  // the poll loop already resubmitted up to polling.max_resubmissions times
    } catch (const api_status_error& s) {
      return detail::retryable_status(static_cast<unsigned>(s.status()));
    } catch (const api_connection_error&) {
      return true;
    } catch (...) {
      return false;
    }
  }

  /// Admission, submission and polling of one sample, with the sampling retry policy.
  static boost::asio::awaitable<sample_response> run_sample(std::shared_ptr<state> s, sample_request req) {
    co_await s->in_flight.acquire(s->core->executor(), 1);
    struct release_slot {
      detail::async_semaphore& sem;
      ~release_slot() { sem.release(1); }
    } slot{s->in_flight};
    const auto& retry = s->core->options().retry;
    for (int attempt = 0;; ++attempt) {
      std::exception_ptr failure;
      try {
        req.seq_id = s->next_seq++;  // every attempt is a new request
        auto sub = co_await submit(s, req);
        if (s->poller) co_await s->poller->wait(sub.handle.request_id);  // then the fetch below answers at once
        // The ids of the sequences come with the submission that produced them (a 410 resubmits).
        auto ids = std::make_shared<std::optional<std::vector<std::string>>>(sub.handle.sample_sequence_ids);
        auto resubmit = [s, req, ids]() mutable -> boost::asio::awaitable<detail::submission> {
          req.seq_id = s->next_seq++;
          auto again = co_await submit(s, req);
          *ids = again.handle.sample_sequence_ids;
          co_return again;
        };
        auto fut = s->core->poll<sample_response>(
            std::move(sub), {"Sample", "sampling on sampler " + s->sampler_id, http::lane::sample_poll}, decoder(),
            std::move(resubmit));
        auto resp = co_await fut.result();
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
          detail::backoff_delay(attempt, retry.initial_backoff, retry.max_backoff, retry.jitter, s->core->rng()));
    }
  }

  std::shared_ptr<state> state_;
};

}  // namespace tinker
