// training_client: one LoRA model being trained. Every call completes once its request was
// accepted (first await) with an api_future for the result (second await), so calls can be
// queued back to back in the same server clock cycle:
//
//   auto fwd = co_await training.forward_backward(batch, tinker::loss_fn_type::cross_entropy);
//   auto opt = co_await training.optim_step({.learning_rate = 1e-4});
//   auto loss = (co_await fwd.result()).metrics.at("loss:sum");
//
// Every call takes a trailing completion token (see completion.hpp; co_await when none is given)
// and runs on the client's executor.
//
// Requests carry consecutive seq_ids in the order the calls start, and are posted in that order
// even when several coroutines (or threads) use the client at once. Big batches are split into
// chunks (server limits) posted concurrently, the first one last, and their results merged.
//
// Cancellation: the server runs a model's requests strictly in seq_id order, so a call that has
// started is always sent, whole, even if its caller is cancelled while it waits for its turn or
// for the server's answer; the caller then just gives up the future (the operation still runs: a
// cancelled forward_backward's gradient is applied by the next optim_step). Cancelling a wait on
// the future's result() stops its polling. A custom loss whose caller gave up is not called (a
// zero-gradient backward pass takes its seq_ids); a loss must own what it captures, since it runs
// after forward_backward_custom has completed.
#pragma once

#include <tinker/byte_tokenizer.hpp>
#include <tinker/client/api_future.hpp>
#include <tinker/client/completion.hpp>
#include <tinker/client/sampling_client.hpp>
#include <tinker/detail/config.hpp>
#include <tinker/types.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace tinker {

/// What a custom loss returns: its value, d(loss)/d(logprob) for every target token of every
/// datum (same lengths as the logprobs it was given), and metrics to report.
struct custom_loss_result {
  double loss = 0;
  std::vector<std::vector<float>> logprob_gradients;
  std::map<std::string, double> metrics;
};

/// A loss computed by the caller from the model's per-token logprobs (forward_backward_custom).
using custom_loss_fn =
    std::function<custom_loss_result(std::span<const datum> data, std::span<const std::vector<float>> logprobs)>;

namespace detail {
struct training_state;
struct training_client_access;
}  // namespace detail

class training_client {
  template <class T>
  using future_of = api_future<T>;
  friend struct detail::training_client_access;

public:
  using executor_type = boost::asio::any_io_executor;

  training_client() = default;
  explicit training_client(std::shared_ptr<detail::training_state> s) : state_(std::move(s)) {}

  /// The model (= training run) id, `<session>:train:<n>`.
  TINKER_DECL const std::string& model_id() const;

  /// The client's executor (a strand): every operation runs there.
  TINKER_DECL executor_type get_executor() const;

  /// Loss and per-token outputs without accumulating gradients.
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<future_of<forward_backward_output>>)
                Token = default_completion_token>
  auto forward(std::vector<datum> data, loss_fn_type loss, Token&& token = {}) {
    return forward(std::move(data), loss, std::nullopt, std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<future_of<forward_backward_output>>)
                Token = default_completion_token>
  auto forward(std::vector<datum> data, loss_fn_type loss, std::optional<loss_fn_config> config, Token&& token = {}) {
    return detail::initiate<future_of<forward_backward_output>>(std::forward<Token>(token), &async_forward, checked(),
                                                                std::move(data), loss, std::move(config), true);
  }

  /// Loss, per-token outputs, and gradients accumulated for the next optim_step.
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<future_of<forward_backward_output>>)
                Token = default_completion_token>
  auto forward_backward(std::vector<datum> data, loss_fn_type loss, Token&& token = {}) {
    return forward_backward(std::move(data), loss, std::nullopt, std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<future_of<forward_backward_output>>)
                Token = default_completion_token>
  auto forward_backward(std::vector<datum> data, loss_fn_type loss, std::optional<loss_fn_config> config,
                        Token&& token = {}) {
    return detail::initiate<future_of<forward_backward_output>>(std::forward<Token>(token), &async_forward, checked(),
                                                                std::move(data), loss, std::move(config), false);
  }

  /// A loss of your own on the per-token logprobs: a forward pass, your function, then a backward
  /// pass that applies your gradients (through cross_entropy with weights = -gradient). Data may
  /// carry only `target_tokens` and optionally `weights`.
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<future_of<forward_backward_output>>)
                Token = default_completion_token>
  auto forward_backward_custom(std::vector<datum> data, custom_loss_fn loss, Token&& token = {}) {
    return detail::initiate<future_of<forward_backward_output>>(std::forward<Token>(token), &async_forward_custom,
                                                                checked(), std::move(data), std::move(loss));
  }

  /// An Adam(W) step on the accumulated gradients.
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<future_of<optim_step_response>>)
                Token = default_completion_token>
  auto optim_step(adam_params params, Token&& token = {}) {
    return detail::initiate<future_of<optim_step_response>>(std::forward<Token>(token), &async_optim_step, checked(),
                                                            params);
  }

  /// Saves the full training state (weights + optimizer) as `tinker://<model>/weights/<name>`,
  /// optionally expiring after `ttl_seconds`; `overwrite` replaces a checkpoint of that name.
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<future_of<save_weights_response>>)
                Token = default_completion_token>
  auto save_state(std::string name, Token&& token = {}) {
    return save_state(std::move(name), std::nullopt, false, std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<future_of<save_weights_response>>)
                Token = default_completion_token>
  auto save_state(std::string name, std::optional<std::int64_t> ttl_seconds, Token&& token = {}) {
    return save_state(std::move(name), ttl_seconds, false, std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<future_of<save_weights_response>>)
                Token = default_completion_token>
  auto save_state(std::string name, std::optional<std::int64_t> ttl_seconds, bool overwrite, Token&& token = {}) {
    return detail::initiate<future_of<save_weights_response>>(std::forward<Token>(token), &async_save_state, checked(),
                                                              std::move(name), ttl_seconds, overwrite);
  }

  /// Loads weights (not the optimizer state) from a `tinker://.../weights/...` checkpoint;
  /// `weights_access_token` reads another account's checkpoint with that account's credential.
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<future_of<load_weights_response>>)
                Token = default_completion_token>
  auto load_state(std::string path, Token&& token = {}) {
    return load_state(std::move(path), std::nullopt, std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<future_of<load_weights_response>>)
                Token = default_completion_token>
  auto load_state(std::string path, std::optional<std::string> weights_access_token, Token&& token = {}) {
    return detail::initiate<future_of<load_weights_response>>(std::forward<Token>(token), &async_load, checked(),
                                                              std::move(path), false, std::move(weights_access_token));
  }

  /// Loads weights and Adam state: the next step continues exactly where the saved run was.
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<future_of<load_weights_response>>)
                Token = default_completion_token>
  auto load_state_with_optimizer(std::string path, Token&& token = {}) {
    return load_state_with_optimizer(std::move(path), std::nullopt, std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<future_of<load_weights_response>>)
                Token = default_completion_token>
  auto load_state_with_optimizer(std::string path, std::optional<std::string> weights_access_token,
                                 Token&& token = {}) {
    return detail::initiate<future_of<load_weights_response>>(std::forward<Token>(token), &async_load, checked(),
                                                              std::move(path), true, std::move(weights_access_token));
  }

  /// Saves the weights for sampling as `tinker://<model>/sampler_weights/<name>` (immutable).
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<future_of<save_weights_for_sampler_response>>)
                Token = default_completion_token>
  auto save_weights_for_sampler(std::string name, Token&& token = {}) {
    return save_weights_for_sampler(std::move(name), std::nullopt, std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<future_of<save_weights_for_sampler_response>>)
                Token = default_completion_token>
  auto save_weights_for_sampler(std::string name, std::optional<std::int64_t> ttl_seconds, Token&& token = {}) {
    return detail::initiate<future_of<save_weights_for_sampler_response>>(
        std::forward<Token>(token), &async_save_weights_for_sampler, checked(), std::move(name), ttl_seconds);
  }

  /// Snapshots the current weights into a new sampler (no named checkpoint) and gives its client.
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<sampling_client>) Token = default_completion_token>
  auto save_weights_and_get_sampling_client(Token&& token = {}) {
    return detail::initiate<sampling_client>(std::forward<Token>(token), &async_save_and_sample, checked());
  }

  /// A sampler over a saved `tinker://.../sampler_weights/...` checkpoint.
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<sampling_client>) Token = default_completion_token>
  auto create_sampling_client(std::string model_path, Token&& token = {}) {
    return detail::initiate<sampling_client>(std::forward<Token>(token), &async_create_sampling_client, checked(),
                                             std::move(model_path));
  }

  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<get_info_response>) Token = default_completion_token>
  auto get_info(Token&& token = {}) {
    return detail::initiate<get_info_response>(std::forward<Token>(token), &async_get_info, checked());
  }

  /// The model's tokenizer, when tinker-cpp has it (the local engine's byte tokenizer); other
  /// tokenizers fail with tinker_error naming them.
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<byte_tokenizer>) Token = default_completion_token>
  auto get_tokenizer(Token&& token = {}) {
    return detail::initiate<byte_tokenizer>(std::forward<Token>(token), &async_get_tokenizer, checked());
  }

private:
  using state_ptr = std::shared_ptr<detail::training_state>;

  /// The state, or tinker::invalid_argument for a client that was never created.
  TINKER_DECL const state_ptr& checked() const;

  TINKER_DECL static void async_forward(state_ptr, std::vector<datum>, loss_fn_type, std::optional<loss_fn_config>,
                                        bool forward_only, detail::any_handler<future_of<forward_backward_output>>);
  TINKER_DECL static void async_forward_custom(state_ptr, std::vector<datum>, custom_loss_fn,
                                               detail::any_handler<future_of<forward_backward_output>>);
  TINKER_DECL static void async_optim_step(state_ptr, adam_params, detail::any_handler<future_of<optim_step_response>>);
  TINKER_DECL static void async_save_state(state_ptr, std::string, std::optional<std::int64_t>, bool,
                                           detail::any_handler<future_of<save_weights_response>>);
  TINKER_DECL static void async_load(state_ptr, std::string, bool optimizer, std::optional<std::string>,
                                     detail::any_handler<future_of<load_weights_response>>);
  TINKER_DECL static void async_save_weights_for_sampler(
      state_ptr, std::string, std::optional<std::int64_t>,
      detail::any_handler<future_of<save_weights_for_sampler_response>>);
  TINKER_DECL static void async_save_and_sample(state_ptr, detail::any_handler<sampling_client>);
  TINKER_DECL static void async_create_sampling_client(state_ptr, std::string, detail::any_handler<sampling_client>);
  TINKER_DECL static void async_get_info(state_ptr, detail::any_handler<get_info_response>);
  TINKER_DECL static void async_get_tokenizer(state_ptr, detail::any_handler<byte_tokenizer>);

  state_ptr state_;
};

}  // namespace tinker

#ifdef TINKER_HEADER_ONLY
#include <tinker/client/impl/training_client.ipp>
#endif
