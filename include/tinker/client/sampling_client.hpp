// sampling_client: samples from one set of weights (a sampler checkpoint, a base model, or weights
// just snapshotted by a training client). Made by service_client or training_client.
//
// Per client, at most `sample_max_in_flight` samples are at the server at once (further calls
// wait their turn, first come first served), prompts being submitted hold a byte budget, and the
// server's back-pressure (429) is honoured; every call takes a trailing completion token (see
// completion.hpp) and runs on the client's executor.
#pragma once

#include <tinker/byte_tokenizer.hpp>
#include <tinker/client/api_future.hpp>
#include <tinker/client/completion.hpp>
#include <tinker/detail/config.hpp>
#include <tinker/types/model_input.hpp>
#include <tinker/types/sampling.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace tinker {

namespace detail {
struct sampling_state;
}

class sampling_client {
public:
  using executor_type = boost::asio::any_io_executor;

  sampling_client() = default;
  explicit sampling_client(std::shared_ptr<detail::sampling_state> s) : state_(std::move(s)) {}

  /// Samples `num_samples` continuations of `prompt`; completes with the result. With
  /// `include_prompt_logprobs`, the prompt's logprobs come too (and the `topk_prompt_logprobs`
  /// most likely tokens at each prompt position, when > 0).
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<sample_response>) Token = default_completion_token>
  auto sample(model_input prompt, int num_samples, sampling_params params, Token&& token = {}) {
    return sample(std::move(prompt), num_samples, std::move(params), false, 0, std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<sample_response>) Token = default_completion_token>
  auto sample(model_input prompt, int num_samples, sampling_params params, bool include_prompt_logprobs,
              Token&& token = {}) {
    return sample(std::move(prompt), num_samples, std::move(params), include_prompt_logprobs, 0,
                  std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<sample_response>) Token = default_completion_token>
  auto sample(model_input prompt, int num_samples, sampling_params params, bool include_prompt_logprobs,
              int topk_prompt_logprobs, Token&& token = {}) {
    return detail::initiate<sample_response>(std::forward<Token>(token), &async_sample, checked(), std::move(prompt),
                                             num_samples, std::move(params), include_prompt_logprobs,
                                             topk_prompt_logprobs);
  }

  /// Submits a sample and returns its future at once (the SDK's sync sample() shape); the work
  /// (admission, submission, polling, retries) runs in the background on the client's executor.
  /// Mistakes in the arguments throw tinker::invalid_argument here, before anything is sent.
  TINKER_DECL api_future<sample_response> submit_sample(model_input prompt, int num_samples, sampling_params params,
                                                        bool include_prompt_logprobs = false,
                                                        int topk_prompt_logprobs = 0);

  /// Log-probabilities of every prompt token under these weights (NaN for the first token).
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<std::vector<float>>)
                Token = default_completion_token>
  auto compute_logprobs(model_input prompt, Token&& token = {}) {
    return detail::initiate<std::vector<float>>(std::forward<Token>(token), &async_compute_logprobs, checked(),
                                                std::move(prompt));
  }

  /// The base model these weights belong to (GET samplers/{id}, cached).
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<std::string>) Token = default_completion_token>
  auto get_base_model(Token&& token = {}) {
    return detail::initiate<std::string>(std::forward<Token>(token), &async_get_base_model, checked());
  }

  /// The tokenizer of the base model, when tinker-cpp has it: the local engine's byte tokenizer
  /// (its models are named "tinker-local/..."). Other tokenizers fail with tinker_error.
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<byte_tokenizer>) Token = default_completion_token>
  auto get_tokenizer(Token&& token = {}) {
    return detail::initiate<byte_tokenizer>(std::forward<Token>(token), &async_get_tokenizer, checked());
  }

  /// The sampling session id.
  TINKER_DECL const std::string& sampler_id() const;

  /// Samples in flight right now (admitted and not finished). A snapshot; any thread.
  TINKER_DECL std::size_t in_flight() const;

  /// The client's executor (a strand): every operation runs there.
  TINKER_DECL executor_type get_executor() const;

private:
  using state_ptr = std::shared_ptr<detail::sampling_state>;

  /// The state, or tinker::invalid_argument for a client that was never created.
  TINKER_DECL const state_ptr& checked() const;

  TINKER_DECL static void async_sample(state_ptr, model_input, int, sampling_params, bool, int,
                                       detail::any_handler<sample_response>);
  TINKER_DECL static void async_compute_logprobs(state_ptr, model_input, detail::any_handler<std::vector<float>>);
  TINKER_DECL static void async_get_base_model(state_ptr, detail::any_handler<std::string>);
  TINKER_DECL static void async_get_tokenizer(state_ptr, detail::any_handler<byte_tokenizer>);

  state_ptr state_;
};

}  // namespace tinker

#ifdef TINKER_HEADER_ONLY
#include <tinker/client/impl/sampling_client.ipp>
#endif
