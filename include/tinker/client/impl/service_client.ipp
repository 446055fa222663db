// service_client: sessions, model creation (new, from a checkpoint), sampling sessions.
#pragma once

#include <tinker/client/detail/client_core.hpp>
#include <tinker/client/detail/spawn.hpp>
#include <tinker/client/detail/training_state.hpp>
#include <tinker/client/detail/validation.hpp>
#include <tinker/client/impl/api_future.ipp>
#include <tinker/client/impl/rest_client.ipp>
#include <tinker/client/impl/sampling_client.ipp>
#include <tinker/client/impl/training_client.ipp>
#include <tinker/client/service_client.hpp>
#include <tinker/json.hpp>
#include <tinker/tinker_path.hpp>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>

namespace tinker {
namespace detail::service {

namespace asio = boost::asio;
using core_ptr = std::shared_ptr<client_core>;

template <class T>
result_decoder<T> json_decoder() {
  return {{}, [](const boost::json::value& v) { return json::from_value<T>(v); }};
}

inline asio::awaitable<get_server_capabilities_response> capabilities(core_ptr core) {
  co_return co_await core->get_json<get_server_capabilities_response>("/api/v1/get_server_capabilities",
                                                                      http::lane::train);
}

inline asio::awaitable<training_client> create_lora(core_ptr core, std::string base_model, lora_training_options o,
                                                    metadata_map user_metadata) {
  if (base_model.empty()) invalid("create_lora_training_client: base_model is empty");
  if (o.rank < 1) invalid("create_lora_training_client: rank must be >= 1, got " + std::to_string(o.rank));
  if (!o.train_mlp && !o.train_attn && !o.train_unembed)
    invalid("create_lora_training_client: at least one of train_mlp, train_attn, train_unembed must be true");
  auto session = co_await core->session_id();
  const auto config = co_await core->server_config();
  create_model_request req;
  req.session_id = session;
  req.model_seq_id = core->next_model_seq_id();
  req.base_model = base_model;
  if (!user_metadata.empty()) req.user_metadata = std::move(user_metadata);
  req.lora_config = lora_config{o.rank, o.seed, o.train_unembed, o.train_mlp, o.train_attn};
  auto sub = co_await core->submit_json("/api/v1/create_model", req, http::lane::train);
  auto fut = core->poll<create_model_response>(std::move(sub), {"CreateModel", "model creation for " + base_model},
                                               json_decoder<create_model_response>());
  auto created = co_await await_result(fut);
  auto s = std::make_shared<training_state>();
  s->core = core;
  s->model_id = created.model_id;
  s->base_model = base_model;
  s->format = core->options().forward_backward_format;
  s->max_chunk_datums = static_cast<std::size_t>(std::max<std::int64_t>(1, config.fwdbwd_max_chunk_len));
  s->max_chunk_bytes = static_cast<std::size_t>(std::max<std::int64_t>(1, config.fwdbwd_max_chunk_bytes_count));
  s->parallel_chunks = config.parallel_fwdbwd_chunks;
  co_return training_client(std::move(s));
}

inline asio::awaitable<training_client> from_state(core_ptr core, std::string path,
                                                   std::optional<std::string> base_model,
                                                   std::optional<std::string> token, metadata_map user_metadata,
                                                   bool with_optimizer) {
  const auto parsed = tinker_path::parse(path);
  if (parsed.kind != checkpoint_kind::weights)
    invalid("create_training_client_from_state: '" + path +
            "' is not a training-state checkpoint (tinker://<run>/weights/<name>)");
  auto info = co_await rest::weights_info(core, path, token);
  lora_training_options lora;
  lora.rank = info.lora_rank.value_or(32);
  lora.train_mlp = info.train_mlp.value_or(true);
  lora.train_attn = info.train_attn.value_or(true);
  lora.train_unembed = info.train_unembed.value_or(true);
  auto client = co_await create_lora(core, base_model.value_or(info.base_model), lora, std::move(user_metadata));
  auto state = training_client_access::state(client);
  auto loaded = co_await training::load(state, path, with_optimizer, token);
  (void)co_await await_result(loaded);
  co_return client;
}

inline asio::awaitable<sampling_client> create_sampler(core_ptr core, std::string what, bool base_model) {
  if (base_model) {
    if (what.empty()) invalid("create_base_model_sampling_client: base_model is empty");
    co_return co_await create_sampling_session(std::move(core), std::nullopt, std::move(what));
  }
  validate_sampler_path(what, "create_sampling_client");
  co_return co_await create_sampling_session(std::move(core), std::move(what), std::nullopt);
}

inline asio::awaitable<std::string> session_id(core_ptr core) { co_return co_await core->session_id(); }

template <class Handler, class Op, class... Args>
void start(core_ptr core, Handler h, Op op, Args&&... args) {
  using T = typename decltype(op(std::move(core), std::forward<Args>(args)...))::value_type;
  auto ex = core->executor();
  spawn_op<T>(ex, op(std::move(core), std::forward<Args>(args)...), std::move(h));
}

}  // namespace detail::service

TINKER_DECL service_client::service_client(executor_type executor)
    : service_client(std::move(executor), client_options()) {}

TINKER_DECL service_client::service_client(executor_type executor, client_options options)
    : core_(std::make_shared<detail::client_core>(std::move(executor), std::move(options))) {}

TINKER_DECL const service_client::core_ptr& service_client::checked() const {
  if (!core_) throw tinker::invalid_argument("service_client: used after it was moved from");
  return core_;
}

TINKER_DECL rest_client service_client::create_rest_client() const { return rest_client(checked()); }

TINKER_DECL void service_client::close() { core_->close_from_anywhere(); }

TINKER_DECL const client_options& service_client::options() const noexcept { return core_->options(); }

TINKER_DECL client_stats service_client::stats() const noexcept { return core_->stats(); }

TINKER_DECL http::transport& service_client::transport() { return core_->transport(); }

TINKER_DECL service_client::executor_type service_client::get_executor() const noexcept { return core_->executor(); }

TINKER_DECL void service_client::async_capabilities(core_ptr core,
                                                    detail::any_handler<get_server_capabilities_response> h) {
  detail::service::start(std::move(core), std::move(h), &detail::service::capabilities);
}

TINKER_DECL void service_client::async_create_lora(core_ptr core, std::string base_model, lora_training_options lora,
                                                   metadata_map user_metadata, detail::any_handler<training_client> h) {
  detail::service::start(std::move(core), std::move(h), &detail::service::create_lora, std::move(base_model), lora,
                         std::move(user_metadata));
}

TINKER_DECL void service_client::async_from_state(core_ptr core, std::string path,
                                                  std::optional<std::string> base_model,
                                                  std::optional<std::string> token, metadata_map user_metadata,
                                                  bool with_optimizer, detail::any_handler<training_client> h) {
  detail::service::start(std::move(core), std::move(h), &detail::service::from_state, std::move(path),
                         std::move(base_model), std::move(token), std::move(user_metadata), with_optimizer);
}

TINKER_DECL void service_client::async_create_sampler(core_ptr core, std::string what, bool base_model,
                                                      detail::any_handler<sampling_client> h) {
  detail::service::start(std::move(core), std::move(h), &detail::service::create_sampler, std::move(what), base_model);
}

TINKER_DECL void service_client::async_session_id(core_ptr core, detail::any_handler<std::string> h) {
  detail::service::start(std::move(core), std::move(h), &detail::service::session_id);
}

}  // namespace tinker
