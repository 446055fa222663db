// training_client: one LoRA model being trained. Every call returns once its request was
// accepted (first await) with an api_future for the result (second await), so calls can be
// queued back to back in the same server clock cycle:
//
//   auto fwd = co_await training.forward_backward(batch, tinker::loss_fn_type::cross_entropy);
//   auto opt = co_await training.optim_step({.learning_rate = 1e-4});
//   auto loss = (co_await fwd.result()).metrics.at("loss:sum");
//
// Requests carry consecutive seq_ids in the order the calls start, and are posted in that order
// even when several coroutines use the client at once. Big batches are split into chunks (server
// limits) posted concurrently, the first one last, and their results merged.
//
// Cancellation: the server runs a model's requests strictly in seq_id order, so a call that has
// started is always sent, whole, even if its caller is cancelled while it waits for its turn or
// for the server's answer; the caller then just gives up the future (the operation still runs: a
// cancelled forward_backward's gradient is applied by the next optim_step). Cancelling a wait on
// the future's result() stops its polling. A custom loss whose caller gave up is not called (a
// zero-gradient backward pass takes its seq_ids); a loss must own what it captures, since it runs
// after forward_backward_custom has returned.
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
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>

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
    auto s = submitting();
    detail::validate_batch(data, loss, s->format == wire_format::protobuf, "forward");
    co_return co_await submit_fwdbwd(s, std::move(data), loss, std::move(config), true);
  }

  /// Loss, per-token outputs, and gradients accumulated for the next optim_step.
  boost::asio::awaitable<api_future<forward_backward_output>> forward_backward(
      std::vector<datum> data, loss_fn_type loss, std::optional<loss_fn_config> config = {}) {
    auto s = submitting();
    detail::validate_batch(data, loss, s->format == wire_format::protobuf, "forward_backward");
    co_return co_await submit_fwdbwd(s, std::move(data), loss, std::move(config), false);
  }

  /// A loss of your own on the per-token logprobs: a forward pass, your function, then a backward
  /// pass that applies your gradients (through cross_entropy with weights = -gradient). Data may
  /// carry only `target_tokens` and optionally `weights`.
  boost::asio::awaitable<api_future<forward_backward_output>> forward_backward_custom(std::vector<datum> data,
                                                                                      custom_loss_fn loss) {
    auto s = submitting();
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
    detail::validate_batch(data, loss_fn_type::cross_entropy, s->format == wire_format::protobuf,
                           "forward_backward_custom");
    // Both passes' seq_ids are reserved now, so later calls queue behind the backward pass. Once
    // reserved they must all reach the server, in order, whatever happens to the caller: the
    // whole flow runs in a task of its own (run_custom_loss) that nothing but its own end stops.
    const auto plan = plan_for(s, data);
    const auto first = s->gate.reserve(static_cast<std::int64_t>(2 * plan.size()));
    auto result = std::make_shared<detail::future_state<forward_backward_output>>(s->core->executor());
    auto submitted = std::make_shared<detail::future_state<std::vector<std::string>>>(s->core->executor());
    boost::asio::co_spawn(
        s->core->executor(), run_custom_loss(s, std::move(data), plan, std::move(loss), first, result, submitted),
        boost::asio::bind_cancellation_slot(result->producer_slot(), [result, submitted](std::exception_ptr e) {
          if (e) {
            submitted->set_exception(e);
            result->set_exception(e);
          }
        }));
    // A caller cancelled here gives up the future; the flow itself goes on, but must not call the
    // loss (whose captures may be gone with the caller) and sends no gradient.
    struct abandon_unless_done {
      detail::future_state<forward_backward_output>& r;
      bool armed = true;
      ~abandon_unless_done() {
        if (armed) r.abandon();
      }
    } guard{*result};
    co_await submitted->wait_until(std::chrono::steady_clock::time_point::max());
    guard.armed = false;
    co_return api_future<forward_backward_output>(result, submitted->take());
  }

  /// An Adam(W) step on the accumulated gradients.
  boost::asio::awaitable<api_future<optim_step_response>> optim_step(adam_params params) {
    auto s = submitting();
    detail::validate_adam(params);
    const auto seq = s->gate.reserve();
    optim_step_request req{params, s->model_id, seq};  // named: GCC 12 destroys aggregate temporaries in co_await twice
    co_return co_await submit_json<optim_step_response>(s, seq, "/api/v1/optim_step", std::move(req), "OptimStep");
  }

  /// Saves the full training state (weights + optimizer) as `tinker://<model>/weights/<name>`.
  boost::asio::awaitable<api_future<save_weights_response>> save_state(
      std::string name, std::optional<std::int64_t> ttl_seconds = std::nullopt, bool overwrite = false) {
    auto s = submitting();
    detail::validate_checkpoint_name(name, "save_state");
    detail::validate_ttl(ttl_seconds, "save_state");
    const auto seq = s->gate.reserve();
    save_weights_request req;
    req.model_id = s->model_id;
    req.path = std::move(name);
    req.seq_id = seq;
    req.ttl_seconds = ttl_seconds;
    req.overwrite = overwrite;
    // A 409 here means the name exists: the caller's error, not retried (client_core's call_spec).
    co_return co_await submit_json<save_weights_response>(s, seq, "/api/v1/save_weights", req, "SaveWeights",
                                                          /*conflict_is_final=*/true);
  }

  /// Loads weights (not the optimizer state) from a `tinker://.../weights/...` checkpoint.
  boost::asio::awaitable<api_future<load_weights_response>> load_state(
      std::string path, std::optional<std::string> weights_access_token = {}) {
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
    auto s = submitting();
    detail::validate_checkpoint_name(name, "save_weights_for_sampler");
    detail::validate_ttl(ttl_seconds, "save_weights_for_sampler");
    const auto seq = s->gate.reserve();
    save_weights_for_sampler_request req;
    req.model_id = s->model_id;
    req.path = std::move(name);
    req.seq_id = seq;
    req.ttl_seconds = ttl_seconds;
    co_return co_await submit_json<save_weights_for_sampler_response>(
        s, seq, "/api/v1/save_weights_for_sampler", req, "SaveWeightsForSampler", /*conflict_is_final=*/true);
  }

  /// Snapshots the current weights into a new sampler (no named checkpoint) and returns its client.
  boost::asio::awaitable<sampling_client> save_weights_and_get_sampling_client() {
    auto s = submitting();
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
    detail::validate_sampler_path(model_path, "create_sampling_client");
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
    if (!info.model_data.tokenizer_id)
      throw tinker_error("model " + info.model_id +
                         " reports no tokenizer (get_info's model_data.tokenizer_id is absent)");
    auto id = *info.model_data.tokenizer_id;
    if (auto colon = id.find(':'); colon != std::string::npos) id.erase(colon);
    if (id != byte_tokenizer::tokenizer_id)
      throw tinker_error("no tokenizer '" + id +
                         "' in tinker-cpp (only the local engine's byte tokenizer ships with the library)");
    co_return byte_tokenizer{};
  }

  // Internal: made by service_client.
  struct state {
    std::shared_ptr<detail::client_core> core;
    std::string model_id;
    std::string base_model;
    detail::turn_gate gate;
    wire_format format = wire_format::protobuf;
    /// Set when a submission may not have reached the server (see note_failed_submission).
    std::optional<std::string> broken;
    std::size_t max_chunk_datums = 1024;
    std::size_t max_chunk_bytes = 5'000'000;
    bool parallel_chunks = true;
  };
  explicit training_client(std::shared_ptr<state> s) : state_(std::move(s)) {}

  /// A sampling client on `sampler_id`, with the admission limits of the options and the server
  /// (the smaller of each), and batched completion polling when both sides want it.
  static sampling_client make_sampler(std::shared_ptr<detail::client_core> core, std::string sampler_id,
                                      std::string base_model) {
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
    sampling_client client(std::make_shared<sampling_client::state>(std::move(core), std::move(sampler_id),
                                                                    std::move(base_model), max_in_flight, max_bytes));
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

  /// checked(), for calls that take a seq_id: refused once a submission may have been lost, since
  /// the server would hold this call behind the missing seq_id forever.
  std::shared_ptr<state> submitting() const {
    auto s = checked();
    if (s->broken)
      throw api_connection_error("training_client for model " + s->model_id +
                                 " cannot submit more requests: " + *s->broken +
                                 ", and the server runs a model's requests strictly in seq_id order; create a new "
                                 "training client (e.g. from the last saved state)");
    return s;
  }

  static std::vector<std::pair<std::size_t, std::size_t>> plan_for(const std::shared_ptr<state>& s,
                                                                   const std::vector<datum>& data) {
    return detail::plan_chunks(data, s->max_chunk_datums, s->max_chunk_bytes);
  }

  static std::vector<std::string> request_ids(const std::vector<detail::submission>& handles) {
    std::vector<std::string> ids;
    for (const auto& h : handles) ids.push_back(h.handle.request_id);
    return ids;
  }

  static detail::result_decoder<forward_backward_output> fwdbwd_decoder() {
    return {[](std::string_view bytes) { return proto::decode_forward_backward_output(bytes); },
            [](const boost::json::value& v) { return json::from_value<forward_backward_output>(v); }};
  }

  /// Posts one chunk (protobuf, or JSON; a 415 to protobuf switches this client to JSON).
  static boost::asio::awaitable<detail::submission> post_chunk(std::shared_ptr<state> s, forward_backward_request req) {
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
        co_return co_await s->core->submit(std::move(spec));
      } catch (const api_status_error& e) {
        if (e.status() != 415 || s->format == wire_format::json) throw;
        s->core->log(log_level::info, "the server does not take protobuf forward_backward requests (415); using JSON");
        s->format = wire_format::json;
      }
    }
  }

  /// Posts the chunks of one call at its turn: all but the first concurrently, then the first
  /// (so the server sees the whole batch queued when its head arrives), then gives the turn on.
  static boost::asio::awaitable<std::vector<detail::submission>> post_chunks(
      std::shared_ptr<state> s, std::vector<datum> data, std::vector<std::pair<std::size_t, std::size_t>> plan,
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
      r.forward_backward_input.data.assign(
          std::make_move_iterator(data.begin() + static_cast<std::ptrdiff_t>(plan[i].first)),
          std::make_move_iterator(data.begin() + static_cast<std::ptrdiff_t>(plan[i].second)));
      requests.push_back(std::move(r));
    }
    // Every chunk is posted even when one fails: the server runs the model's requests in seq_id
    // order and uses up the seq_id of a request it refuses, so a chunk left unsent would hold every
    // later request of the model forever. The first failure is rethrown once all were sent.
    std::vector<detail::submission> handles(plan.size());
    std::exception_ptr failure;
    if (plan.size() > 1 && s->parallel_chunks) {
      std::vector<api_future<detail::submission>> rest;
      for (std::size_t i = 1; i < requests.size(); ++i)
        rest.push_back(s->core->spawn_future<detail::submission>(
            [s, r = std::move(requests[i])]() mutable { return post_chunk(s, std::move(r)); }, {}));
      for (std::size_t i = 1; i < requests.size(); ++i) {
        try {
          handles[i] = co_await rest[i - 1].result();
        } catch (...) {
          if (!failure) failure = std::current_exception();
        }
      }
      try {
        handles[0] = co_await post_chunk(s, std::move(requests[0]));
      } catch (...) {
        if (!failure) failure = std::current_exception();
      }
    } else {
      for (std::size_t i = 0; i < requests.size(); ++i) {
        try {
          handles[i] = co_await post_chunk(s, std::move(requests[i]));
        } catch (...) {
          if (!failure) failure = std::current_exception();
        }
      }
    }
    if (failure) {
      note_failed_submission(*s, failure, first_seq);
      std::rethrow_exception(failure);
    }
    co_return handles;
  }

  /// A submission that failed without an answer from the server (connection errors, timeouts,
  /// after every retry) may never have reached it: its seq_id may be missing there, and the server
  /// would hold every later request of the model waiting for it. Later calls then fail at once
  /// (see submitting()) instead of hanging.
  static void note_failed_submission(state& s, const std::exception_ptr& e, std::int64_t seq) {
    try {
      std::rethrow_exception(e);
    } catch (const api_connection_error& c) {
      if (!s.broken)
        s.broken =
            "the request with seq_id " + std::to_string(seq) + " may not have reached the server (" + c.what() + ")";
    } catch (...) {
    }
  }

  /// One api_future over the chunks' results, merged.
  static api_future<forward_backward_output> poll_chunks(const std::shared_ptr<state>& s,
                                                         const std::vector<detail::submission>& handles,
                                                         bool forward_only) {
    const detail::poll_target target{forward_only ? "Forward" : "ForwardBackward", "training of model " + s->model_id};
    if (handles.size() == 1) return s->core->poll<forward_backward_output>(handles[0], target, fwdbwd_decoder());
    std::vector<api_future<forward_backward_output>> parts;
    for (const auto& h : handles) parts.push_back(s->core->poll<forward_backward_output>(h, target, fwdbwd_decoder()));
    return s->core->spawn_future<forward_backward_output>(
        [parts]() mutable -> boost::asio::awaitable<forward_backward_output> {
          std::vector<forward_backward_output> outs;
          for (auto& p : parts) outs.push_back(co_await p.result());
          co_return detail::merge_outputs(std::move(outs));
        },
        request_ids(handles));
  }

  static boost::asio::awaitable<api_future<forward_backward_output>> submit_fwdbwd(std::shared_ptr<state> s,
                                                                                   std::vector<datum> data,
                                                                                   loss_fn_type loss,
                                                                                   std::optional<loss_fn_config> config,
                                                                                   bool forward_only) {
    auto plan = plan_for(s, data);
    const auto first = s->gate.reserve(static_cast<std::int64_t>(plan.size()));
    // (Named: GCC 12 destroys temporaries with destructors inside a co_await expression twice.)
    std::function<boost::asio::awaitable<std::vector<detail::submission>>()> post =
        [s, data = std::move(data), plan = std::move(plan), loss, config = std::move(config), forward_only,
         first]() mutable {
          return post_chunks(s, std::move(data), std::move(plan), loss, std::move(config), forward_only, first);
        };
    auto handles = co_await s->core->run_to_completion(std::move(post));
    co_return poll_chunks(s, handles, forward_only);
  }

  /// Posts one JSON training request at its turn (seq_id `seq`, already reserved) and starts
  /// polling its result.
  template <class Result, class Request>
  static boost::asio::awaitable<api_future<Result>> submit_json(std::shared_ptr<state> s, std::int64_t seq,
                                                                std::string path, Request req, std::string request_type,
                                                                bool conflict_is_final = false) {
    std::function<boost::asio::awaitable<detail::submission>()> post =  // named: see submit_fwdbwd
        [s, seq, path = std::move(path), req = std::move(req), conflict_is_final] {
          return post_json_at_turn(s, seq, path, req, conflict_is_final);
        };
    auto sub = co_await s->core->run_to_completion(std::move(post));
    co_return s->core->poll<Result>(
        std::move(sub), {std::move(request_type), "training of model " + s->model_id},
        detail::result_decoder<Result>{{}, [](const boost::json::value& v) { return json::from_value<Result>(v); }});
  }

  template <class Request>
  static boost::asio::awaitable<detail::submission> post_json_at_turn(std::shared_ptr<state> s, std::int64_t seq,
                                                                      std::string path, Request req,
                                                                      bool conflict_is_final = false) {
    co_await s->gate.wait_turn(s->core->executor(), seq);
    struct release_turn {
      detail::turn_gate& gate;
      ~release_turn() { gate.release(1); }
    } release{s->gate};
    std::exception_ptr failure;
    try {
      co_return co_await s->core->submit_json(std::move(path), req, http::lane::train, conflict_is_final);
    } catch (...) {
      failure = std::current_exception();
    }
    note_failed_submission(*s, failure, seq);
    std::rethrow_exception(failure);
  }

  /// The whole forward_backward_custom flow, in a task of its own: the forward pass, the caller's
  /// loss on its logprobs, the backward pass with the loss's gradients. The backward pass is sent
  /// whatever happens (with zero weights when the forward pass or the loss failed, or the caller
  /// gave up), since its seq_ids are reserved and the model's queue waits for them.
  static boost::asio::awaitable<void> run_custom_loss(
      std::shared_ptr<state> s, std::vector<datum> data, std::vector<std::pair<std::size_t, std::size_t>> plan,
      custom_loss_fn loss, std::int64_t first, std::shared_ptr<detail::future_state<forward_backward_output>> result,
      std::shared_ptr<detail::future_state<std::vector<std::string>>> submitted) {
    namespace asio = boost::asio;
    const auto n = static_cast<std::int64_t>(plan.size());
    auto backward_data = data;                           // the backward pass sends the same inputs with new weights
    auto zero_weights = [](std::vector<datum>& batch) {  // a pass with no gradient, to use up seq_ids
      for (auto& d : batch) {
        auto& w = d.loss_fn_inputs["weights"];
        w = tensor_data(std::vector<float>(w.element_count(), 0.0f), w.dense_shape());
      }
    };
    std::vector<detail::submission> handles;
    std::exception_ptr forward_failure;
    try {
      // (Not cancellable: this task is bound to the result's abandonment, which only comes later.)
      handles = co_await post_chunks(s, std::move(data), plan, loss_fn_type::cross_entropy, std::nullopt, true, first);
    } catch (...) {
      forward_failure = std::current_exception();
    }
    if (forward_failure) {
      // The backward pass's seq_ids are reserved: they must reach the server too.
      zero_weights(backward_data);
      try {
        (void)co_await post_chunks(s, std::move(backward_data), std::move(plan), loss_fn_type::cross_entropy,
                                   std::nullopt, false, first + n);
      } catch (...) {
      }
      std::rethrow_exception(forward_failure);
    }
    submitted->set_value(request_ids(handles));

    std::exception_ptr failure;
    custom_loss_result computed;
    try {
      auto fwd = co_await poll_chunks(s, handles, true).result();
      std::vector<std::vector<float>> logprobs;
      for (auto& out : fwd.loss_fn_outputs) {
        auto it = out.find("logprobs");
        if (it == out.end())
          throw api_response_validation_error("forward_backward_custom: the forward pass returned no logprobs");
        logprobs.push_back(it->second.to_dense<float>());
      }
      if (result->abandoned()) throw boost::system::system_error(asio::error::operation_aborted);
      computed = loss(backward_data, logprobs);
      if (computed.logprob_gradients.size() != backward_data.size())
        detail::invalid("forward_backward_custom: the loss returned " +
                        std::to_string(computed.logprob_gradients.size()) + " gradients for " +
                        std::to_string(backward_data.size()) + " datums");
      for (std::size_t i = 0; i < backward_data.size(); ++i) {
        if (computed.logprob_gradients[i].size() != logprobs[i].size())
          detail::invalid("forward_backward_custom: gradient " + std::to_string(i) + " has " +
                          std::to_string(computed.logprob_gradients[i].size()) + " values for " +
                          std::to_string(logprobs[i].size()) + " logprobs");
        std::vector<float> weights(computed.logprob_gradients[i].size());
        for (std::size_t j = 0; j < weights.size(); ++j) weights[j] = -computed.logprob_gradients[i][j];
        auto& w = backward_data[i].loss_fn_inputs["weights"];
        auto shape = w.shape;
        w = tensor_data(std::move(weights));
        w.shape = shape;
      }
    } catch (...) {
      failure = std::current_exception();
      zero_weights(backward_data);  // no gradient: a zero-weight pass takes the reserved seq_ids
    }
    // The backward pass goes out even when the caller gave up (cancellation stopped the wait above).
    co_await asio::this_coro::reset_cancellation_state(asio::disable_cancellation());
    auto backward = co_await post_chunks(s, std::move(backward_data), std::move(plan), loss_fn_type::cross_entropy,
                                         std::nullopt, false, first + n);
    if (result->abandoned()) co_return;  // nobody waits for the result
    if (failure) {
      result->set_exception(failure);
      co_return;
    }
    co_await asio::this_coro::reset_cancellation_state();  // polling the result may be given up again
    auto out = co_await poll_chunks(s, backward, false).result();
    for (auto& [k, v] : computed.metrics) out.metrics[k] = v;
    result->set_value(std::move(out));
  }

  boost::asio::awaitable<api_future<load_weights_response>> load(std::string path, bool optimizer,
                                                                 std::optional<std::string> token) {
    auto s = submitting();
    const auto parsed = tinker_path::parse(path);
    if (parsed.kind != checkpoint_kind::weights)
      detail::invalid("load_state: '" + path + "' is not a training-state checkpoint (tinker://<run>/weights/<name>)");
    const auto seq = s->gate.reserve();
    load_weights_request req;
    req.model_id = s->model_id;
    req.seq_id = seq;
    req.path = std::move(path);
    req.optimizer = optimizer;
    s->core->add_secret(token);  // a server echoing the body back must not put it in a message
    req.weights_access_token = std::move(token);
    co_return co_await submit_json<load_weights_response>(s, seq, "/api/v1/load_weights", req, "LoadWeights");
  }

  std::shared_ptr<state> state_;
};

}  // namespace tinker
