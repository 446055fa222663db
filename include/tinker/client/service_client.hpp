// service_client: the entry point. Made from an executor and client_options (by default from the
// environment: TINKER_BASE_URL, TINKER_API_KEY, TINKER_TAGS, TINKER_PROJECT_ID); creates training,
// sampling and REST clients. Its session is created on first use and kept alive by a heartbeat
// every 10 s until close() or the last client made from it is gone.
//
// All clients made from one service_client share its connections and must be used from its
// executor (one thread, or a strand).
#pragma once

#include <tinker/client/detail/client_core.hpp>
#include <tinker/client/rest_client.hpp>
#include <tinker/client/sampling_client.hpp>
#include <tinker/client/training_client.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <memory>
#include <optional>
#include <string>

namespace tinker {

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
  /// Every option from the environment (TINKER_BASE_URL, TINKER_API_KEY, ...). An overload, not a
  /// default argument: GCC 12 destroys a defaulted aggregate argument twice when the call is part
  /// of a co_await expression, as in `service_client service(co_await this_coro::executor);`.
  explicit service_client(boost::asio::any_io_executor executor)
      : service_client(std::move(executor), client_options()) {}

  /// Throws tinker::invalid_argument when the options are unusable (no API key, malformed URL).
  service_client(boost::asio::any_io_executor executor, client_options options)
      : core_(std::make_shared<detail::client_core>(std::move(executor), std::move(options))) {}

  boost::asio::awaitable<get_server_capabilities_response> get_server_capabilities() {
    co_return co_await core_->get_json<get_server_capabilities_response>("/api/v1/get_server_capabilities",
                                                                         http::lane::train);
  }

  /// A new LoRA model on `base_model`.
  boost::asio::awaitable<training_client> create_lora_training_client(std::string base_model,
                                                                      lora_training_options o = {},
                                                                      metadata_map user_metadata = {}) {
    if (base_model.empty()) detail::invalid("create_lora_training_client: base_model is empty");
    if (o.rank < 1) detail::invalid("create_lora_training_client: rank must be >= 1, got " + std::to_string(o.rank));
    if (!o.train_mlp && !o.train_attn && !o.train_unembed)
      detail::invalid("create_lora_training_client: at least one of train_mlp, train_attn, train_unembed must be true");
    auto session = co_await core_->session_id();
    const auto config = co_await core_->server_config();
    create_model_request req;
    req.session_id = session;
    req.model_seq_id = core_->next_model_seq_id();
    req.base_model = base_model;
    if (!user_metadata.empty()) req.user_metadata = std::move(user_metadata);
    req.lora_config = lora_config{o.rank, o.seed, o.train_unembed, o.train_mlp, o.train_attn};
    auto sub = co_await core_->submit_json("/api/v1/create_model", req, http::lane::train);
    auto fut = core_->poll<create_model_response>(std::move(sub), {"CreateModel", "model creation for " + base_model},
                                                  json_decoder<create_model_response>());
    auto created = co_await fut.result();
    auto s = std::make_shared<training_client::state>();
    s->core = core_;
    s->model_id = created.model_id;
    s->base_model = base_model;
    s->format = core_->options().forward_backward_format;
    s->max_chunk_datums = static_cast<std::size_t>(std::max<std::int64_t>(1, config.fwdbwd_max_chunk_len));
    s->max_chunk_bytes = static_cast<std::size_t>(std::max<std::int64_t>(1, config.fwdbwd_max_chunk_bytes_count));
    s->parallel_chunks = config.parallel_fwdbwd_chunks;
    co_return training_client(std::move(s));
  }

  /// A new model initialised from a `tinker://.../weights/...` checkpoint (weights only):
  /// weights_info, then create_model with the checkpoint's LoRA settings, then load_state.
  /// `base_model` overrides the checkpoint's; `weights_access_token` reads someone else's checkpoint.
  boost::asio::awaitable<training_client> create_training_client_from_state(
      std::string path, std::optional<std::string> base_model = {},
      std::optional<std::string> weights_access_token = {}, metadata_map user_metadata = {}) {
    co_return co_await from_state(std::move(path), std::move(base_model), std::move(weights_access_token),
                                  std::move(user_metadata), false);
  }

  /// The same with the optimizer state: training continues exactly where the checkpoint was.
  boost::asio::awaitable<training_client> create_training_client_from_state_with_optimizer(
      std::string path, std::optional<std::string> base_model = {},
      std::optional<std::string> weights_access_token = {}, metadata_map user_metadata = {}) {
    co_return co_await from_state(std::move(path), std::move(base_model), std::move(weights_access_token),
                                  std::move(user_metadata), true);
  }

  /// A sampling client on a sampler checkpoint (`tinker://.../sampler_weights/...`).
  boost::asio::awaitable<sampling_client> create_sampling_client(std::string model_path) {
    detail::validate_sampler_path(model_path, "create_sampling_client");
    co_return co_await training_client::make_sampling_session(core_, std::move(model_path), std::nullopt);
  }

  /// A sampling client on a base model (no adapter).
  boost::asio::awaitable<sampling_client> create_base_model_sampling_client(std::string base_model) {
    if (base_model.empty()) detail::invalid("create_base_model_sampling_client: base_model is empty");
    co_return co_await training_client::make_sampling_session(core_, std::nullopt, std::move(base_model));
  }

  rest_client create_rest_client() const { return rest_client(core_); }

  /// The session id (creating the session if none exists yet).
  boost::asio::awaitable<std::string> session_id() { co_return co_await core_->session_id(); }

  /// Stops the heartbeat and closes connections; clients made from this one stop working.
  void close() { core_->close(); }

  const client_options& options() const noexcept { return core_->options(); }

  /// Counters of this client's HTTP traffic (requests, retries, polls, heartbeats, gzip answers).
  const client_stats& stats() const noexcept { return core_->stats(); }

  /// The transport, for observability (connections per lane).
  http::transport& transport() { return core_->transport(); }

private:
  template <class T>
  static detail::result_decoder<T> json_decoder() {
    return {{}, [](const boost::json::value& v) { return json::from_value<T>(v); }};
  }

  boost::asio::awaitable<training_client> from_state(std::string path, std::optional<std::string> base_model,
                                                     std::optional<std::string> token, metadata_map user_metadata,
                                                     bool with_optimizer) {
    const auto parsed = tinker_path::parse(path);
    if (parsed.kind != checkpoint_kind::weights)
      detail::invalid("create_training_client_from_state: '" + path +
                      "' is not a training-state checkpoint (tinker://<run>/weights/<name>)");
    auto rest = create_rest_client();
    auto info = co_await rest.get_weights_info_by_tinker_path(path, token);
    lora_training_options lora;
    lora.rank = info.lora_rank.value_or(32);
    lora.train_mlp = info.train_mlp.value_or(true);
    lora.train_attn = info.train_attn.value_or(true);
    lora.train_unembed = info.train_unembed.value_or(true);
    auto client =
        co_await create_lora_training_client(base_model.value_or(info.base_model), lora, std::move(user_metadata));
    // (if/else, not ?: — GCC 12 mishandles co_await inside a conditional expression)
    api_future<load_weights_response> loaded;
    if (with_optimizer)
      loaded = co_await client.load_state_with_optimizer(path, token);
    else
      loaded = co_await client.load_state(path, token);
    (void)co_await loaded.result();
    co_return client;
  }

  std::shared_ptr<detail::client_core> core_;
};

}  // namespace tinker
