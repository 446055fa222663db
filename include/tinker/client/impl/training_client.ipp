// training_client: seq_id turns, chunked submission, the 415 fallback to JSON, custom losses and
// polling, on the client's executor.
#pragma once

#include <tinker/client/detail/chunking.hpp>
#include <tinker/client/detail/spawn.hpp>
#include <tinker/client/detail/training_state.hpp>
#include <tinker/client/detail/validation.hpp>
#include <tinker/client/impl/api_future.ipp>
#include <tinker/client/impl/sampling_client.ipp>
#include <tinker/client/training_client.hpp>
#include <tinker/json.hpp>
#include <tinker/proto/forward_backward.hpp>
#include <tinker/tinker_path.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>

#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tinker {
namespace detail::training {

namespace asio = boost::asio;
using state_ptr = std::shared_ptr<training_state>;
using chunk_plan = std::vector<std::pair<std::size_t, std::size_t>>;

/// For calls that take a seq_id: refused once a submission may have been lost, since the server
/// would hold this call behind the missing seq_id forever.
inline void check_submitting(const training_state& s) {
  if (s.broken)
    throw api_connection_error("training_client for model " + s.model_id +
                               " cannot submit more requests: " + *s.broken +
                               ", and the server runs a model's requests strictly in seq_id order; create a new "
                               "training client (e.g. from the last saved state)");
}

inline chunk_plan plan_for(const training_state& s, const std::vector<datum>& data) {
  return plan_chunks(data, s.max_chunk_datums, s.max_chunk_bytes);
}

inline std::vector<std::string> request_ids(const std::vector<submission>& handles) {
  std::vector<std::string> ids;
  for (const auto& h : handles) ids.push_back(h.handle.request_id);
  return ids;
}

/// A chunk's result as the server sent it (`whole`: the call's only chunk, whose result is also
/// put through merge_outputs, so its metrics are reduced and checked exactly as a merged one's).
inline result_decoder<forward_backward_output> fwdbwd_decoder(bool whole) {
  auto finish = [whole](forward_backward_output out) {
    if (!whole) return out;
    std::vector<forward_backward_output> one;
    one.push_back(std::move(out));
    return merge_outputs(std::move(one));
  };
  return {[finish](std::string_view bytes) { return finish(proto::decode_forward_backward_output(bytes)); },
          [finish](const boost::json::value& v) { return finish(json::from_value<forward_backward_output>(v)); }};
}

/// Posts one chunk (protobuf, or JSON; a 415 to protobuf switches this client to JSON).
inline asio::awaitable<submission> post_chunk(state_ptr s, forward_backward_request req) {
  while (true) {
    call_spec spec;
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
    spec.json_fallback = s->format == wire_format::protobuf;  // a 415 comes back as use_json
    auto out = co_await s->core->exchange_submission(std::move(spec));
    if (out.what == call_decision::kind::done) co_return std::move(out.sub);
    s->core->log(log_level::info, "the server does not take protobuf forward_backward requests (415); using JSON");
    s->format = wire_format::json;
  }
}

/// A submission that failed without an answer from the server (connection errors, timeouts,
/// after every retry) may never have reached it: its seq_id may be missing there, and the server
/// would hold every later request of the model waiting for it. Later calls then fail at once
/// (see check_submitting) instead of hanging.
inline void note_failed_submission(training_state& s, const std::exception_ptr& e, std::int64_t seq) {
  try {
    std::rethrow_exception(e);
  } catch (const api_connection_error& c) {
    if (!s.broken)
      s.broken =
          "the request with seq_id " + std::to_string(seq) + " may not have reached the server (" + c.what() + ")";
  } catch (...) {
  }
}

/// Posts the chunks of one call at its turn: all but the first concurrently, then the first
/// (so the server sees the whole batch queued when its head arrives), then gives the turn on.
inline asio::awaitable<std::vector<submission>> post_chunks(state_ptr s, std::vector<datum> data, chunk_plan plan,
                                                            loss_fn_type loss, std::optional<loss_fn_config> config,
                                                            bool forward_only, std::int64_t first_seq) {
  const auto n = static_cast<std::int64_t>(plan.size());
  co_await s->gate.wait_turn(first_seq);
  struct release_turn {
    turn_gate& gate;
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
  std::vector<submission> handles(plan.size());
  std::exception_ptr failure;
  if (plan.size() > 1 && s->parallel_chunks) {
    std::vector<api_future<submission>> rest;
    for (std::size_t i = 1; i < requests.size(); ++i)
      rest.push_back(s->core->spawn_future<submission>(
          [s, r = std::move(requests[i])]() mutable { return post_chunk(s, std::move(r)); }, {}));
    for (std::size_t i = 1; i < requests.size(); ++i) {
      try {
        handles[i] = co_await await_result(rest[i - 1]);
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

/// One api_future over the chunks' results, merged.
inline api_future<forward_backward_output> poll_chunks(const state_ptr& s, const std::vector<submission>& handles,
                                                       bool forward_only) {
  const poll_target target{forward_only ? "Forward" : "ForwardBackward", "training of model " + s->model_id};
  if (handles.size() == 1) return s->core->poll<forward_backward_output>(handles[0], target, fwdbwd_decoder(true));
  std::vector<api_future<forward_backward_output>> parts;
  for (const auto& h : handles)
    parts.push_back(s->core->poll<forward_backward_output>(h, target, fwdbwd_decoder(false)));
  return s->core->spawn_future<forward_backward_output>(
      [parts]() mutable -> asio::awaitable<forward_backward_output> {
        std::vector<forward_backward_output> outs;
        for (auto& p : parts) outs.push_back(co_await await_result(p));
        co_return merge_outputs(std::move(outs));
      },
      request_ids(handles));
}

/// forward / forward_backward: checks, reserves the seq_ids of every chunk, posts them at the
/// model's turn (to completion, whatever happens to the caller) and starts polling.
inline asio::awaitable<api_future<forward_backward_output>> forward(state_ptr s, std::vector<datum> data,
                                                                    loss_fn_type loss,
                                                                    std::optional<loss_fn_config> config,
                                                                    bool forward_only) {
  check_submitting(*s);
  validate_batch(data, loss, s->format == wire_format::protobuf, forward_only ? "forward" : "forward_backward");
  auto plan = plan_for(*s, data);
  const auto first = s->gate.reserve(static_cast<std::int64_t>(plan.size()));
  // (Named: GCC 12 destroys temporaries with destructors inside a co_await expression twice.)
  std::function<asio::awaitable<std::vector<submission>>()> post = [s, data = std::move(data), plan = std::move(plan),
                                                                    loss, config = std::move(config), forward_only,
                                                                    first]() mutable {
    return post_chunks(s, std::move(data), std::move(plan), loss, std::move(config), forward_only, first);
  };
  auto handles = co_await s->core->run_to_completion(std::move(post));
  co_return poll_chunks(s, handles, forward_only);
}

template <class Request>
asio::awaitable<submission> post_json_at_turn(state_ptr s, std::int64_t seq, std::string path, Request req,
                                              bool conflict_is_final = false) {
  co_await s->gate.wait_turn(seq);
  struct release_turn {
    turn_gate& gate;
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

/// Posts one JSON training request at its turn (seq_id `seq`, already reserved) and starts
/// polling its result.
template <class Result, class Request>
asio::awaitable<api_future<Result>> submit_json(state_ptr s, std::int64_t seq, std::string path, Request req,
                                                std::string request_type, bool conflict_is_final = false) {
  std::function<asio::awaitable<submission>()> post =  // named: see forward
      [s, seq, path = std::move(path), req = std::move(req), conflict_is_final] {
        return post_json_at_turn(s, seq, path, req, conflict_is_final);
      };
  auto sub = co_await s->core->run_to_completion(std::move(post));
  co_return s->core->poll<Result>(
      std::move(sub), {std::move(request_type), "training of model " + s->model_id},
      result_decoder<Result>{{}, [](const boost::json::value& v) { return json::from_value<Result>(v); }});
}

/// The whole forward_backward_custom flow, in a task of its own: the forward pass, the caller's
/// loss on its logprobs, the backward pass with the loss's gradients. The backward pass is sent
/// whatever happens (with zero weights when the forward pass or the loss failed, or the caller
/// gave up), since its seq_ids are reserved and the model's queue waits for them.
inline asio::awaitable<void> run_custom_loss(state_ptr s, std::vector<datum> data, chunk_plan plan, custom_loss_fn loss,
                                             std::int64_t first,
                                             std::shared_ptr<future_state<forward_backward_output>> result,
                                             std::shared_ptr<future_state<std::vector<std::string>>> submitted) {
  const auto n = static_cast<std::int64_t>(plan.size());
  auto backward_data = data;                           // the backward pass sends the same inputs with new weights
  auto zero_weights = [](std::vector<datum>& batch) {  // a pass with no gradient, to use up seq_ids
    for (auto& d : batch) {
      auto& w = d.loss_fn_inputs["weights"];
      w = tensor_data(std::vector<float>(w.element_count(), 0.0f), w.dense_shape());
    }
  };
  std::vector<submission> handles;
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
    auto fwd = co_await await_result(poll_chunks(s, handles, true));
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
      invalid("forward_backward_custom: the loss returned " + std::to_string(computed.logprob_gradients.size()) +
              " gradients for " + std::to_string(backward_data.size()) + " datums");
    for (std::size_t i = 0; i < backward_data.size(); ++i) {
      if (computed.logprob_gradients[i].size() != logprobs[i].size())
        invalid("forward_backward_custom: gradient " + std::to_string(i) + " has " +
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
  auto out = co_await await_result(poll_chunks(s, backward, false));
  for (auto& [k, v] : computed.metrics) out.metrics[k] = v;
  result->set_value(std::move(out));
}

inline asio::awaitable<api_future<forward_backward_output>> forward_custom(state_ptr s, std::vector<datum> data,
                                                                           custom_loss_fn loss) {
  check_submitting(*s);
  if (!loss) invalid("forward_backward_custom: the loss function is empty");
  for (std::size_t i = 0; i < data.size(); ++i) {
    auto& inputs = data[i].loss_fn_inputs;
    for (const auto& [name, t] : inputs)
      if (name != "target_tokens" && name != "weights")
        invalid("forward_backward_custom: data[" + std::to_string(i) + "].loss_fn_inputs['" + name +
                "'] is not allowed (only target_tokens and weights)");
    auto target = inputs.find("target_tokens");
    if (target == inputs.end())
      invalid("forward_backward_custom: data[" + std::to_string(i) + "] has no target_tokens");
    if (!inputs.contains("weights")) {
      tensor_data zeros(std::vector<float>(target->second.element_count(), 0.0f));
      zeros.shape = target->second.shape;
      inputs.emplace("weights", std::move(zeros));
    }
  }
  validate_batch(data, loss_fn_type::cross_entropy, s->format == wire_format::protobuf, "forward_backward_custom");
  // Both passes' seq_ids are reserved now, so later calls queue behind the backward pass. Once
  // reserved they must all reach the server, in order, whatever happens to the caller: the
  // whole flow runs in a task of its own (run_custom_loss) that nothing but its own end stops.
  const auto plan = plan_for(*s, data);
  const auto first = s->gate.reserve(static_cast<std::int64_t>(2 * plan.size()));
  auto result = std::make_shared<future_state<forward_backward_output>>(s->core->executor());
  auto submitted = std::make_shared<future_state<std::vector<std::string>>>(s->core->executor());
  asio::co_spawn(s->core->executor(),
                 run_custom_loss(s, std::move(data), plan, std::move(loss), first, result, submitted),
                 asio::bind_cancellation_slot(result->producer_slot(), [result, submitted](std::exception_ptr e) {
                   if (e) {
                     submitted->set_exception(e);
                     result->set_exception(e);
                   }
                 }));
  // A caller cancelled here gives up the future; the flow itself goes on, but must not call the
  // loss (whose captures may be gone with the caller) and sends no gradient.
  struct abandon_unless_done {
    future_state<forward_backward_output>& r;
    bool armed = true;
    ~abandon_unless_done() {
      if (armed) r.abandon();
    }
  } guard{*result};
  co_await submitted->wait_until(std::chrono::steady_clock::time_point::max());
  guard.armed = false;
  co_return api_future<forward_backward_output>(result, submitted->take());
}

inline asio::awaitable<api_future<optim_step_response>> optim_step(state_ptr s, adam_params params) {
  check_submitting(*s);
  validate_adam(params);
  const auto seq = s->gate.reserve();
  optim_step_request req{params, s->model_id, seq};  // named: GCC 12 destroys aggregate temporaries in co_await twice
  co_return co_await submit_json<optim_step_response>(s, seq, "/api/v1/optim_step", std::move(req), "OptimStep");
}

inline asio::awaitable<api_future<save_weights_response>> save_state(state_ptr s, std::string name,
                                                                     std::optional<std::int64_t> ttl_seconds,
                                                                     bool overwrite) {
  check_submitting(*s);
  validate_checkpoint_name(name, "save_state");
  validate_ttl(ttl_seconds, "save_state");
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

inline asio::awaitable<api_future<load_weights_response>> load(state_ptr s, std::string path, bool optimizer,
                                                               std::optional<std::string> token) {
  check_submitting(*s);
  const auto parsed = tinker_path::parse(path);
  if (parsed.kind != checkpoint_kind::weights)
    invalid("load_state: '" + path + "' is not a training-state checkpoint (tinker://<run>/weights/<name>)");
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

inline asio::awaitable<api_future<save_weights_for_sampler_response>> save_weights_for_sampler(
    state_ptr s, std::string name, std::optional<std::int64_t> ttl_seconds) {
  check_submitting(*s);
  validate_checkpoint_name(name, "save_weights_for_sampler");
  validate_ttl(ttl_seconds, "save_weights_for_sampler");
  const auto seq = s->gate.reserve();
  save_weights_for_sampler_request req;
  req.model_id = s->model_id;
  req.path = std::move(name);
  req.seq_id = seq;
  req.ttl_seconds = ttl_seconds;
  co_return co_await submit_json<save_weights_for_sampler_response>(
      s, seq, "/api/v1/save_weights_for_sampler", req, "SaveWeightsForSampler", /*conflict_is_final=*/true);
}

inline asio::awaitable<sampling_client> save_and_sample(state_ptr s) {
  check_submitting(*s);
  const auto seq = s->gate.reserve();
  save_weights_for_sampler_request req;
  req.model_id = s->model_id;
  req.seq_id = seq;
  req.sampling_session_seq_id = s->core->next_sampling_session_seq_id();
  auto fut = co_await submit_json<save_weights_for_sampler_response>(s, seq, "/api/v1/save_weights_for_sampler", req,
                                                                     "SaveWeightsForSampler");
  auto resp = co_await await_result(fut);
  if (!resp.sampling_session_id)
    throw api_response_validation_error("save_weights_for_sampler (unnamed) answered without a sampling_session_id");
  co_return make_sampler(s->core, *resp.sampling_session_id, s->base_model);
}

inline asio::awaitable<sampling_client> create_sampling_client(state_ptr s, std::string model_path) {
  validate_sampler_path(model_path, "create_sampling_client");
  co_return co_await create_sampling_session(s->core, std::move(model_path), std::nullopt);
}

inline asio::awaitable<get_info_response> get_info(state_ptr s) {
  const get_info_request req{s->model_id};
  co_return co_await s->core->post_json<get_info_response>("/api/v1/get_info", req, http::lane::train);
}

inline asio::awaitable<byte_tokenizer> get_tokenizer(state_ptr s) {
  auto info = co_await get_info(std::move(s));
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

/// Runs `op(s, args...)` for a handler: fails at once on an empty client.
template <class Handler, class Op, class... Args>
void start(state_ptr s, Handler h, Op op, Args&&... args) {
  using T = typename decltype(op(std::move(s), std::forward<Args>(args)...))::value_type;
  auto ex = s->core->executor();
  spawn_op<T>(ex, op(std::move(s), std::forward<Args>(args)...), std::move(h));
}

}  // namespace detail::training

namespace detail {
/// The library's own access to a training client's state (service_client's from_state loads into it).
struct training_client_access {
  static const std::shared_ptr<training_state>& state(const training_client& c) noexcept { return c.state_; }
};
}  // namespace detail

TINKER_DECL const training_client::state_ptr& training_client::checked() const {
  if (!state_) throw tinker::invalid_argument("training_client: used before it was created");
  return state_;
}

TINKER_DECL const std::string& training_client::model_id() const { return checked()->model_id; }

TINKER_DECL training_client::executor_type training_client::get_executor() const { return checked()->core->executor(); }

TINKER_DECL void training_client::async_forward(state_ptr s, std::vector<datum> data, loss_fn_type loss,
                                                std::optional<loss_fn_config> config, bool forward_only,
                                                detail::any_handler<future_of<forward_backward_output>> h) {
  detail::training::start(std::move(s), std::move(h), &detail::training::forward, std::move(data), loss,
                          std::move(config), forward_only);
}

TINKER_DECL void training_client::async_forward_custom(state_ptr s, std::vector<datum> data, custom_loss_fn loss,
                                                       detail::any_handler<future_of<forward_backward_output>> h) {
  detail::training::start(std::move(s), std::move(h), &detail::training::forward_custom, std::move(data),
                          std::move(loss));
}

TINKER_DECL void training_client::async_optim_step(state_ptr s, adam_params params,
                                                   detail::any_handler<future_of<optim_step_response>> h) {
  detail::training::start(std::move(s), std::move(h), &detail::training::optim_step, params);
}

TINKER_DECL void training_client::async_save_state(state_ptr s, std::string name,
                                                   std::optional<std::int64_t> ttl_seconds, bool overwrite,
                                                   detail::any_handler<future_of<save_weights_response>> h) {
  detail::training::start(std::move(s), std::move(h), &detail::training::save_state, std::move(name), ttl_seconds,
                          overwrite);
}

TINKER_DECL void training_client::async_load(state_ptr s, std::string path, bool optimizer,
                                             std::optional<std::string> token,
                                             detail::any_handler<future_of<load_weights_response>> h) {
  detail::training::start(std::move(s), std::move(h), &detail::training::load, std::move(path), optimizer,
                          std::move(token));
}

TINKER_DECL void training_client::async_save_weights_for_sampler(
    state_ptr s, std::string name, std::optional<std::int64_t> ttl_seconds,
    detail::any_handler<future_of<save_weights_for_sampler_response>> h) {
  detail::training::start(std::move(s), std::move(h), &detail::training::save_weights_for_sampler, std::move(name),
                          ttl_seconds);
}

TINKER_DECL void training_client::async_save_and_sample(state_ptr s, detail::any_handler<sampling_client> h) {
  detail::training::start(std::move(s), std::move(h), &detail::training::save_and_sample);
}

TINKER_DECL void training_client::async_create_sampling_client(state_ptr s, std::string model_path,
                                                               detail::any_handler<sampling_client> h) {
  detail::training::start(std::move(s), std::move(h), &detail::training::create_sampling_client, std::move(model_path));
}

TINKER_DECL void training_client::async_get_info(state_ptr s, detail::any_handler<get_info_response> h) {
  detail::training::start(std::move(s), std::move(h), &detail::training::get_info);
}

TINKER_DECL void training_client::async_get_tokenizer(state_ptr s, detail::any_handler<byte_tokenizer> h) {
  detail::training::start(std::move(s), std::move(h), &detail::training::get_tokenizer);
}

}  // namespace tinker
