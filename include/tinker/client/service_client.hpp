// service_client: the entry point. Made from an executor and client_options (by default from the
// environment: TINKER_BASE_URL, TINKER_API_KEY, TINKER_TAGS, TINKER_PROJECT_ID); creates training,
// sampling and REST clients.
//
// Threads: the client makes a strand over the executor it is given, and every operation of it and
// of the clients made from it runs there, whatever thread starts it; so an io_context run by
// several threads is safe, and completions arrive on the caller's executor (see completion.hpp).
//
// Lifetime: the session is created on first use and kept alive by a heartbeat every 10 s, and
// connections are kept open for reuse, for as long as the client (or a client or future made from
// it) exists and close() was not called; then they end, and an io_context with nothing else to
// do returns from run(). A heartbeat the server refuses (session expired, key revoked) is
// reported through client_options::on_session_lost and fails later calls that need the session.
#pragma once

#include <tinker/client/api_future.hpp>
#include <tinker/client/client_stats.hpp>
#include <tinker/client/completion.hpp>
#include <tinker/client/options.hpp>
#include <tinker/client/rest_client.hpp>
#include <tinker/client/sampling_client.hpp>
#include <tinker/client/training_client.hpp>
#include <tinker/detail/config.hpp>
#include <tinker/types.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace tinker {

namespace http {
class transport;
}
namespace detail {
class client_core;
}

/// create_lora_training_client's LoRA parameters (SDK defaults). Trivially destructible on
/// purpose, so `{.rank = 8}` is safe inside a co_await expression on GCC 12 (which destroys
/// aggregate temporaries there twice).
struct lora_training_options {
  std::int32_t rank = 32;
  std::optional<std::int64_t> seed;
  bool train_mlp = true;
  bool train_attn = true;
  bool train_unembed = true;
};

class service_client {
public:
  using executor_type = boost::asio::any_io_executor;

  /// Every option from the environment (TINKER_BASE_URL, TINKER_API_KEY, ...). An overload, not a
  /// default argument: GCC 12 destroys a defaulted aggregate argument twice when the call is part
  /// of a co_await expression, as in `service_client service(co_await this_coro::executor);`.
  TINKER_DECL explicit service_client(executor_type executor);

  /// Throws tinker::invalid_argument when the options are unusable (no API key, malformed URL).
  TINKER_DECL service_client(executor_type executor, client_options options);

  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<get_server_capabilities_response>)
                Token = default_completion_token>
  auto get_server_capabilities(Token&& token = {}) {
    return detail::initiate<get_server_capabilities_response>(std::forward<Token>(token), &async_capabilities,
                                                              checked());
  }

  /// A new LoRA model on `base_model`.
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<training_client>) Token = default_completion_token>
  auto create_lora_training_client(std::string base_model, Token&& token = {}) {
    return create_lora_training_client(std::move(base_model), lora_training_options(), metadata_map(),
                                       std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<training_client>) Token = default_completion_token>
  auto create_lora_training_client(std::string base_model, lora_training_options lora, Token&& token = {}) {
    return create_lora_training_client(std::move(base_model), lora, metadata_map(), std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<training_client>) Token = default_completion_token>
  auto create_lora_training_client(std::string base_model, lora_training_options lora, metadata_map user_metadata,
                                   Token&& token = {}) {
    return detail::initiate<training_client>(std::forward<Token>(token), &async_create_lora, checked(),
                                             std::move(base_model), lora, std::move(user_metadata));
  }

  /// A new model initialised from a `tinker://.../weights/...` checkpoint (weights only):
  /// weights_info, then create_model with the checkpoint's LoRA settings, then load_state.
  /// `base_model` overrides the checkpoint's; `weights_access_token` reads someone else's checkpoint.
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<training_client>) Token = default_completion_token>
  auto create_training_client_from_state(std::string path, Token&& token = {}) {
    return from_state(std::move(path), {}, {}, {}, false, std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<training_client>) Token = default_completion_token>
  auto create_training_client_from_state(std::string path, std::optional<std::string> base_model, Token&& token = {}) {
    return from_state(std::move(path), std::move(base_model), {}, {}, false, std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<training_client>) Token = default_completion_token>
  auto create_training_client_from_state(std::string path, std::optional<std::string> base_model,
                                         std::optional<std::string> weights_access_token, Token&& token = {}) {
    return from_state(std::move(path), std::move(base_model), std::move(weights_access_token), {}, false,
                      std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<training_client>) Token = default_completion_token>
  auto create_training_client_from_state(std::string path, std::optional<std::string> base_model,
                                         std::optional<std::string> weights_access_token, metadata_map user_metadata,
                                         Token&& token = {}) {
    return from_state(std::move(path), std::move(base_model), std::move(weights_access_token), std::move(user_metadata),
                      false, std::forward<Token>(token));
  }

  /// The same with the optimizer state: training continues exactly where the checkpoint was.
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<training_client>) Token = default_completion_token>
  auto create_training_client_from_state_with_optimizer(std::string path, Token&& token = {}) {
    return from_state(std::move(path), {}, {}, {}, true, std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<training_client>) Token = default_completion_token>
  auto create_training_client_from_state_with_optimizer(std::string path, std::optional<std::string> base_model,
                                                        Token&& token = {}) {
    return from_state(std::move(path), std::move(base_model), {}, {}, true, std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<training_client>) Token = default_completion_token>
  auto create_training_client_from_state_with_optimizer(std::string path, std::optional<std::string> base_model,
                                                        std::optional<std::string> weights_access_token,
                                                        Token&& token = {}) {
    return from_state(std::move(path), std::move(base_model), std::move(weights_access_token), {}, true,
                      std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<training_client>) Token = default_completion_token>
  auto create_training_client_from_state_with_optimizer(std::string path, std::optional<std::string> base_model,
                                                        std::optional<std::string> weights_access_token,
                                                        metadata_map user_metadata, Token&& token = {}) {
    return from_state(std::move(path), std::move(base_model), std::move(weights_access_token), std::move(user_metadata),
                      true, std::forward<Token>(token));
  }

  /// A sampling client on a sampler checkpoint (`tinker://.../sampler_weights/...`).
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<sampling_client>) Token = default_completion_token>
  auto create_sampling_client(std::string model_path, Token&& token = {}) {
    return detail::initiate<sampling_client>(std::forward<Token>(token), &async_create_sampler, checked(),
                                             std::move(model_path), false);
  }

  /// A sampling client on a base model (no adapter).
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<sampling_client>) Token = default_completion_token>
  auto create_base_model_sampling_client(std::string base_model, Token&& token = {}) {
    return detail::initiate<sampling_client>(std::forward<Token>(token), &async_create_sampler, checked(),
                                             std::move(base_model), true);
  }

  TINKER_DECL rest_client create_rest_client() const;

  /// The session id (creating the session if none exists yet).
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<std::string>) Token = default_completion_token>
  auto session_id(Token&& token = {}) {
    return detail::initiate<std::string>(std::forward<Token>(token), &async_session_id, checked());
  }

  /// Stops the heartbeat and closes connections; clients made from this one stop working. Any
  /// thread (it runs on the client's executor).
  TINKER_DECL void close();

  TINKER_DECL const client_options& options() const noexcept;

  /// Counters of this client's HTTP traffic (requests, retries, polls, heartbeats, gzip answers):
  /// a snapshot, from any thread.
  TINKER_DECL client_stats stats() const noexcept;

  /// The transport, for observability (connections per lane); use it on the client's executor.
  TINKER_DECL http::transport& transport();

  /// The client's executor (a strand): every operation runs there.
  TINKER_DECL executor_type get_executor() const noexcept;

private:
  using core_ptr = std::shared_ptr<detail::client_core>;

  /// The core, or tinker::invalid_argument for a moved-from client.
  TINKER_DECL const core_ptr& checked() const;

  template <class Token>
  auto from_state(std::string path, std::optional<std::string> base_model, std::optional<std::string> token_str,
                  metadata_map user_metadata, bool with_optimizer, Token&& token) {
    return detail::initiate<training_client>(std::forward<Token>(token), &async_from_state, checked(), std::move(path),
                                             std::move(base_model), std::move(token_str), std::move(user_metadata),
                                             with_optimizer);
  }

  TINKER_DECL static void async_capabilities(core_ptr, detail::any_handler<get_server_capabilities_response>);
  TINKER_DECL static void async_create_lora(core_ptr, std::string, lora_training_options, metadata_map,
                                            detail::any_handler<training_client>);
  TINKER_DECL static void async_from_state(core_ptr, std::string, std::optional<std::string>,
                                           std::optional<std::string>, metadata_map, bool,
                                           detail::any_handler<training_client>);
  TINKER_DECL static void async_create_sampler(core_ptr, std::string, bool base_model,
                                               detail::any_handler<sampling_client>);
  TINKER_DECL static void async_session_id(core_ptr, detail::any_handler<std::string>);

  core_ptr core_;
};

}  // namespace tinker

#ifdef TINKER_HEADER_ONLY
#include <tinker/client/impl/service_client.ipp>
#endif
