// training_client: one LoRA model being trained. Every call returns once its request was
// accepted (first await) with an api_future for the result (second await), so calls can be
// queued back to back in the same server clock cycle:
//
//   auto fwd = co_await training.forward_backward(batch, tinker::loss_fn_type::cross_entropy);
//   auto opt = co_await training.optim_step({.learning_rate = 1e-4});
//   auto loss = (co_await fwd.result()).metrics.at("loss:sum");
//
// Requests carry consecutive seq_ids in call order and are posted in that order even when several
// coroutines use the client at once. Big batches are split into chunks (server limits) posted
// concurrently, the first one last, and their results merged.
#pragma once

#include <tinker/byte_tokenizer.hpp>
#include <tinker/client/api_future.hpp>
#include <tinker/client/detail/chunking.hpp>
#include <tinker/client/detail/client_core.hpp>
#include <tinker/client/detail/turn_gate.hpp>
#include <tinker/client/detail/validation.hpp>
#include <tinker/client/sampling_client.hpp>
#include <tinker/proto/forward_backward.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

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

class training_client {
public:
  training_client() = default;

  /// The model (= training run) id, `<session>:train:<n>`.
  const std::string& model_id() const { return checked()->model_id; }

  /// Loss and per-token outputs without accumulating gradients.
  boost::asio::awaitable<api_future<forward_backward_output>> forward(std::vector<datum> data, loss_fn_type loss,
                                                                      std::optional<loss_fn_config> config = {}) {
    auto s = checked();
    detail::validate_batch(data, loss, s->format == wire_format::protobuf, "forward");
    co_return co_await submit_fwdbwd(s, std::move(data), loss, std::move(config), true);
  }

  /// Loss, per-token outputs, and gradients accumulated for the next optim_step.
  boost::asio::awaitable<api_future<forward_backward_output>> forward_backward(std::vector<datum> data, loss_fn_type loss,
                                                                               std::optional<loss_fn_config> config = {}) {
    auto s = checked();
    detail::validate_batch(data, loss, s->format == wire_format::protobuf, "forward_backward");
    co_return co_await submit_fwdbwd(s, std::move(data), loss, std::move(config), false);
  }

  /// A loss of your own on the per-token logprobs: a forward pass, your function, then a backward
  /// pass that applies your gradients (through cross_entropy with weights = -gradient). Data may
  /// carry only `target_tokens` and optionally `weights`.
  boost::asio::awaitable<api_future<forward_backward_output>> forward_backward_custom(std::vector<datum> data, custom_loss_fn loss) {
    auto s = checked();
    if (!loss) detail::invalid("forward_backward_custom: the loss function is empty");
    for (std::size_t i = 0; i < data.size(); ++i) {
      auto& inputs = data[i].loss_fn_inputs;
      for (const auto& [name, t] : inputs)
        if (name != "target_tokens" && name != "weights")
          detail::invalid("forward_backward_custom: data[" + std::to_string(i) + "].loss_fn_inputs['" + name +
                          "'] is not allowed (only target_tokens and weights)");
      auto target = inputs.find("target_tokens");
      if (target == inputs.end())
        detail::invalid("forward_backward_custom: data[" + std::to_string(i) + "] has no target_tokens");
      if (!inputs.contains("weights")) {
        tensor_data zeros(std::vector<float>(target->second.element_count(), 0.0f));
        zeros.shape = target->second.shape;
        inputs.emplace("weights", std::move(zeros));
      }
    }
    detail::validate_batch(data, loss_fn_type::cross_entropy, s->format == wire_format::protobuf, "forward_backward_custom");
    // Both passes' seq_ids are reserved now, so later calls queue behind the backward pass.
    const auto plan = plan_for(s, data);
    const auto first = s->gate.reserve(static_cast<std::int64_t>(2 * plan.size()));
    auto backward_data = data;  // the backward pass sends the same inputs with new weights
    std::vector<untyped_api_future> handles;
    try {
      handles = co_await post_chunks(s, std::move(data), plan, loss_fn_type::cross_entropy, std::nullopt, true, first);
    } catch (...) {
      s->gate.release(static_cast<std::int64_t>(plan.size()));  // the backward pass will not come either
      throw;
    }
    auto forward_future = poll_chunks(s, handles, true);
    auto ids = request_ids(handles);
    co_return s->core->spawn_future<forward_backward_output>(
        [s, forward_future, backward_data = std::move(backward_data), plan, loss = std::move(loss),
         backward_first = first + static_cast<std::int64_t>(plan.size())]() mutable
        -> boost::asio::awaitable<forward_backward_output> {
          std::exception_ptr user_error;
          custom_loss_result result;
          try {
            auto fwd = co_await forward_future.result();
            std::vector<std::vector<float>> logprobs;
            for (auto& out : fwd.loss_fn_outputs) {
              auto it = out.find("logprobs");
              if (it == out.end()) throw api_response_validation_error("forward_backward_custom: the forward pass returned no logprobs");
              logprobs.push_back(it->second.to_dense<float>());
            }
            result = loss(backward_data, logprobs);
            if (result.logprob_gradients.size() != backward_data.size())
              detail::invalid("forward_backward_custom: the loss returned " + std::to_string(result.logprob_gradients.size()) +
                              " gradients for " + std::to_string(backward_data.size()) + " datums");
            for (std::size_t i = 0; i < backward_data.size(); ++i) {
              if (result.logprob_gradients[i].size() != logprobs[i].size())
                detail::invalid("forward_backward_custom: gradient " + std::to_string(i) + " has " +
                                std::to_string(result.logprob_gradients[i].size()) + " values for " +
                                std::to_string(logprobs[i].size()) + " logprobs");
              std::vector<float> weights(result.logprob_gradients[i].size());
              for (std::size_t j = 0; j < weights.size(); ++j) weights[j] = -result.logprob_gradients[i][j];
              auto& w = backward_data[i].loss_fn_inputs["weights"];
              auto shape = w.shape;
              w = tensor_data(std::move(weights));
              w.shape = shape;
            }
          } catch (...) {
            user_error = std::current_exception();
            // The backward seq_ids must still reach the server or the model's queue stalls: send a
            // zero-weight pass (no gradient) in their place.
            for (auto& d : backward_data) {
              auto& w = d.loss_fn_inputs["weights"];
              w = tensor_data(std::vector<float>(w.element_count(), 0.0f), w.dense_shape());
            }
          }
          auto handles = co_await post_chunks(s, std::move(backward_data), plan, loss_fn_type::cross_entropy, std::nullopt,
                                              false, backward_first);
          auto out = co_await poll_chunks(s, handles, false).result();
          if (user_error) std::rethrow_exception(user_error);
          for (auto& [k, v] : result.metrics) out.metrics[k] = v;
          co_return out;
        },
        std::move(ids));
  }

  /// An Adam(W) step on the accumulated gradients.
  boost::asio::awaitable<api_future<optim_step_response>> optim_step(adam_params params) {
    auto s = checked();
    detail::validate_adam(params);
    const auto seq = s->gate.reserve();
    optim_step_request req{params, s->model_id, seq};  // named: GCC 12 destroys aggregate temporaries in co_await twice
    co_return co_await submit_json<optim_step_response>(s, seq, "/api/v1/optim_step", std::move(req), "OptimStep");
  }

  /// Saves the full training state (weights + optimizer) as `tinker://<model>/weights/<name>`.
  boost::asio::awaitable<api_future<save_weights_response>> save_state(std::string name,
                                                                       std::optional<std::int64_t> ttl_seconds = std::nullopt,
                                                                       bool overwrite = false) {
    auto s = checked();
    detail::validate_checkpoint_name(name, "save_state");
    detail::validate_ttl(ttl_seconds, "save_state");
    const auto seq = s->gate.reserve();
    save_weights_request req;
    req.model_id = s->model_id;
    req.path = std::move(name);
    req.seq_id = seq;
    req.ttl_seconds = ttl_seconds;
    req.overwrite = overwrite;
    co_return co_await submit_json<save_weights_response>(s, seq, "/api/v1/save_weights", req, "SaveWeights");
  }

  /// Loads weights (not the optimizer state) from a `tinker://.../weights/...` checkpoint.
  boost::asio::awaitable<api_future<load_weights_response>> load_state(std::string path,
                                                                       std::optional<std::string> weights_access_token = {}) {
    co_return co_await load(std::move(path), false, std::move(weights_access_token));
  }

  /// Loads weights and Adam state: the next step continues exactly where the saved run was.
  boost::asio::awaitable<api_future<load_weights_response>> load_state_with_optimizer(
      std::string path, std::optional<std::string> weights_access_token = {}) {
    co_return co_await load(std::move(path), true, std::move(weights_access_token));
  }

  /// Saves the weights for sampling as `tinker://<model>/sampler_weights/<name>` (immutable).
  boost::asio::awaitable<api_future<save_weights_for_sampler_response>> save_weights_for_sampler(
      std::string name, std::optional<std::int64_t> ttl_seconds = std::nullopt) {
    auto s = checked();
    detail::validate_checkpoint_name(name, "save_weights_for_sampler");
    detail::validate_ttl(ttl_seconds, "save_weights_for_sampler");
    const auto seq = s->gate.reserve();
    save_weights_for_sampler_request req;
    req.model_id = s->model_id;
    req.path = std::move(name);
    req.seq_id = seq;
    req.ttl_seconds = ttl_seconds;
    co_return co_await submit_json<save_weights_for_sampler_response>(s, seq, "/api/v1/save_weights_for_sampler", req,
                                                                      "SaveWeightsForSampler");
  }

  /// Snapshots the current weights into a new sampler (no named checkpoint) and returns its client.
  boost::asio::awaitable<sampling_client> save_weights_and_get_sampling_client() {
    auto s = checked();
    const auto seq = s->gate.reserve();
    save_weights_for_sampler_request req;
    req.model_id = s->model_id;
    req.seq_id = seq;
    req.sampling_session_seq_id = s->core->next_sampling_session_seq_id();
    auto fut = co_await submit_json<save_weights_for_sampler_response>(s, seq, "/api/v1/save_weights_for_sampler", req,
                                                                       "SaveWeightsForSampler");
    auto resp = co_await fut.result();
    if (!resp.sampling_session_id)
      throw api_response_validation_error("save_weights_for_sampler (unnamed) answered without a sampling_session_id");
    co_return make_sampler(s->core, *resp.sampling_session_id, s->base_model);
  }

  /// A sampler over a saved `tinker://.../sampler_weights/...` checkpoint.
  boost::asio::awaitable<sampling_client> create_sampling_client(std::string model_path) {
    auto s = checked();
    (void)tinker_path::parse(model_path);
    co_return co_await make_sampling_session(s->core, std::move(model_path), std::nullopt);
  }

  boost::asio::awaitable<get_info_response> get_info() {
    auto s = checked();
    const get_info_request req{s->model_id};
    co_return co_await s->core->post_json<get_info_response>("/api/v1/get_info", req, http::lane::train);
  }

  /// The model's tokenizer, when tinker-cpp has it (the local engine's byte tokenizer); other
  /// tokenizers throw tinker_error naming them.
  boost::asio::awaitable<byte_tokenizer> get_tokenizer() {
    auto info = co_await get_info();
    auto id = info.model_data.tokenizer_id.value_or("");
    if (auto colon = id.find(':'); colon != std::string::npos) id.erase(colon);
    if (id != byte_tokenizer::tokenizer_id)
      throw tinker_error("no tokenizer '" + id + "' in tinker-cpp (only the local engine's byte tokenizer ships with the library)");
    co_return byte_tokenizer{};
  }

  // Internal: made by service_client.
  struct state {
    std::shared_ptr<detail::client_core> core;
    std::string model_id;
    std::string base_model;
    detail::turn_gate gate;
    wire_format format = wire_format::protobuf;
    std::size_t max_chunk_datums = 1024;
    std::size_t max_chunk_bytes = 5'000'000;
    bool parallel_chunks = true;
  };
  explicit training_client(std::shared_ptr<state> s) : state_(std::move(s)) {}

  /// A sampling client on `sampler_id`, with the admission limits of the options and the server
  /// (the smaller of each), and batched completion polling when both sides want it.
  static sampling_client make_sampler(std::shared_ptr<detail::client_core> core, std::string sampler_id, std::string base_model) {
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
    sampling_client client(std::make_shared<sampling_client::state>(std::move(core), std::move(sampler_id), std::move(base_model),
                                                                    max_in_flight, max_bytes));
    if (batched) client.enable_batched_polling();
    return client;
  }

  /// create_sampling_session for a checkpoint path or a base model.
  static boost::asio::awaitable<sampling_client> make_sampling_session(std::shared_ptr<detail::client_core> core,
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

private:
  std::shared_ptr<state> checked() const {
    if (!state_) throw tinker::invalid_argument("training_client: used before it was created");
    return state_;
  }

  static std::vector<std::pair<std::size_t, std::size_t>> plan_for(const std::shared_ptr<state>& s, const std::vector<datum>& data) {
    return detail::plan_chunks(data, s->max_chunk_datums, s->max_chunk_bytes);
  }

  static std::vector<std::string> request_ids(const std::vector<untyped_api_future>& handles) {
    std::vector<std::string> ids;
    for (const auto& h : handles) ids.push_back(h.request_id);
    return ids;
  }

  static detail::result_decoder<forward_backward_output> fwdbwd_decoder() {
    return {[](std::string_view bytes) { return proto::decode_forward_backward_output(bytes); },
            [](const boost::json::value& v) { return json::from_value<forward_backward_output>(v); }};
  }

  /// Posts one chunk (protobuf, or JSON; a 415 to protobuf switches this client to JSON).
  static boost::asio::awaitable<untyped_api_future> post_chunk(std::shared_ptr<state> s, forward_backward_request req) {
    while (true) {
      detail::call_spec spec;
      if (s->format == wire_format::protobuf) {
        spec.path = "/api/v1/forward_backward";
        spec.body = proto::encode(req);
        spec.content_type = "application/x-protobuf";
      } else if (req.forward_only) {
        spec.path = "/api/v1/forward";
        spec.body = json::to_json(forward_request{req.forward_backward_input, req.model_id, req.seq_id});
      } else {
        spec.path = "/api/v1/forward_backward";
        spec.body = json::to_json(req);
      }
      spec.lane = http::lane::train;
      try {
        co_return co_await s->core->call_json<untyped_api_future>(std::move(spec));
      } catch (const api_status_error& e) {
        if (e.status() != 415 || s->format == wire_format::json) throw;
        s->core->log(log_level::info, "the server does not take protobuf forward_backward requests (415); using JSON");
        s->format = wire_format::json;
      }
    }
  }

  /// Posts the chunks of one call at its turn: all but the first concurrently, then the first
  /// (so the server sees the whole batch queued when its head arrives), then gives the turn on.
  static boost::asio::awaitable<std::vector<untyped_api_future>> post_chunks(
      std::shared_ptr<state> s, std::vector<datum> data, const std::vector<std::pair<std::size_t, std::size_t>>& plan,
      loss_fn_type loss, std::optional<loss_fn_config> config, bool forward_only, std::int64_t first_seq) {
    const auto n = static_cast<std::int64_t>(plan.size());
    co_await s->gate.wait_turn(s->core->executor(), first_seq);
    struct release_turn {
      detail::turn_gate& gate;
      std::int64_t n;
      ~release_turn() { gate.release(n); }
    } release{s->gate, n};
    std::vector<forward_backward_request> requests;
    requests.reserve(plan.size());
    for (std::size_t i = 0; i < plan.size(); ++i) {
      forward_backward_request r;
      r.model_id = s->model_id;
      r.seq_id = first_seq + static_cast<std::int64_t>(i);
      r.forward_only = forward_only;
      r.forward_backward_input.loss_fn = loss;
      r.forward_backward_input.loss_fn_config = config;
      r.forward_backward_input.data.assign(std::make_move_iterator(data.begin() + static_cast<std::ptrdiff_t>(plan[i].first)),
                                           std::make_move_iterator(data.begin() + static_cast<std::ptrdiff_t>(plan[i].second)));
      requests.push_back(std::move(r));
    }
    std::vector<untyped_api_future> handles(plan.size());
    if (plan.size() > 1 && s->parallel_chunks) {
      std::vector<api_future<untyped_api_future>> rest;
      for (std::size_t i = 1; i < requests.size(); ++i)
        rest.push_back(s->core->spawn_future<untyped_api_future>(
            [s, r = std::move(requests[i])]() mutable { return post_chunk(s, std::move(r)); }, {}));
      for (std::size_t i = 1; i < requests.size(); ++i) handles[i] = co_await rest[i - 1].result();
      handles[0] = co_await post_chunk(s, std::move(requests[0]));
    } else {
      for (std::size_t i = 0; i < requests.size(); ++i) handles[i] = co_await post_chunk(s, std::move(requests[i]));
    }
    co_return handles;
  }

  /// One api_future over the chunks' results, merged.
  static api_future<forward_backward_output> poll_chunks(const std::shared_ptr<state>& s,
                                                         const std::vector<untyped_api_future>& handles, bool forward_only) {
    const char* type = forward_only ? "Forward" : "ForwardBackward";
    const auto subject = "training of model " + s->model_id;
    if (handles.size() == 1) return s->core->poll<forward_backward_output>(handles[0], type, subject, fwdbwd_decoder());
    std::vector<api_future<forward_backward_output>> parts;
    for (const auto& h : handles) parts.push_back(s->core->poll<forward_backward_output>(h, type, subject, fwdbwd_decoder()));
    return s->core->spawn_future<forward_backward_output>(
        [parts]() mutable -> boost::asio::awaitable<forward_backward_output> {
          std::vector<forward_backward_output> outs;
          for (auto& p : parts) outs.push_back(co_await p.result());
          co_return detail::merge_outputs(std::move(outs));
        },
        request_ids(handles));
  }

  static boost::asio::awaitable<api_future<forward_backward_output>> submit_fwdbwd(std::shared_ptr<state> s, std::vector<datum> data,
                                                                                  loss_fn_type loss,
                                                                                  std::optional<loss_fn_config> config,
                                                                                  bool forward_only) {
    const auto plan = plan_for(s, data);
    const auto first = s->gate.reserve(static_cast<std::int64_t>(plan.size()));
    auto handles = co_await post_chunks(s, std::move(data), plan, loss, std::move(config), forward_only, first);
    co_return poll_chunks(s, handles, forward_only);
  }

  template <class Result, class Request>
  static boost::asio::awaitable<api_future<Result>> submit_json(std::shared_ptr<state> s, std::int64_t seq, std::string path,
                                                                Request req, std::string request_type) {
    co_await s->gate.wait_turn(s->core->executor(), seq);
    untyped_api_future handle;
    {
      struct release_turn {
        detail::turn_gate& gate;
        ~release_turn() { gate.release(1); }
      } release{s->gate};
      handle = co_await s->core->post_json<untyped_api_future>(std::move(path), req, http::lane::train);
    }
    co_return s->core->poll<Result>(handle, std::move(request_type), "training of model " + s->model_id,
                                    detail::result_decoder<Result>{{}, [](const boost::json::value& v) {
                                                                     return json::from_value<Result>(v);
                                                                   }});
  }

  boost::asio::awaitable<api_future<load_weights_response>> load(std::string path, bool optimizer,
                                                                 std::optional<std::string> token) {
    auto s = checked();
    const auto parsed = tinker_path::parse(path);
    if (parsed.kind != checkpoint_kind::weights)
      detail::invalid("load_state: '" + path + "' is not a training-state checkpoint (tinker://<run>/weights/<name>)");
    const auto seq = s->gate.reserve();
    load_weights_request req;
    req.model_id = s->model_id;
    req.seq_id = seq;
    req.path = std::move(path);
    req.optimizer = optimizer;
    req.weights_access_token = std::move(token);
    co_return co_await submit_json<load_weights_response>(s, seq, "/api/v1/load_weights", req, "LoadWeights");
  }

  std::shared_ptr<state> state_;
};

}  // namespace tinker
