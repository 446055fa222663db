// Endpoints of models and training: create_model, get_info, unload_model, forward_backward /
// forward, optim_step, save_weights, save_weights_for_sampler, load_weights. Every training
// operation is a future queued on its model in seq_id order (model_queue); the handlers check a
// request completely before it is queued, so a refusal is an answer, not a failed future.
#pragma once

#include <tinker/local/detail/engine_core.hpp>
#include <tinker/local/detail/request_limits.hpp>

#include <boost/beast/http/field.hpp>

#include <memory>
#include <optional>
#include <string>

namespace tinker::local::detail::endpoints {

inline http_response create_model(engine_core& core, request_context& ctx) {
  const auto req = decode_json_body_with_metadata<create_model_request>(ctx);
  auto& session = core.sessions.live(ctx.tenant, req.session_id);
  const auto digest = sha256_hex(ctx.request.body());
  const auto model_id = req.session_id + ":train:" + std::to_string(req.model_seq_id);
  if (auto original = session.model_creations.check(req.model_seq_id, digest, "model_seq_id")) {
    auto f = core.futures.find(*original);
    if (f) return future_response(ctx, *f, model_id);
  }
  if (core.runs.contains(model_id)) throw http_error(400, "model " + model_id + " already exists");
  auto lora = req.lora_config.value_or(lora_config{});
  if (lora.rank < 1 || lora.rank > adapter_layout::max_rank)
    throw http_error(400, "lora_config.rank must be in [1, " + std::to_string(adapter_layout::max_rank) + "], got " +
                              std::to_string(lora.rank));
  if (!lora.train_attn && !lora.train_mlp && !lora.train_unembed)
    throw http_error(400, "lora_config: at least one of train_attn, train_mlp, train_unembed must be true");
  auto [engine_name, base] = core.resolve_base_model(req.base_model);
  if (!lora.seed) lora.seed = static_cast<std::int64_t>(core.ids.next() >> 1);

  // Everything is checked: only now does the run exist (and persist).
  auto& live = core.register_new_model(ctx, session, model_id, req.base_model, engine_name, base, lora,
                                       req.user_metadata, boost::json::object{});
  // Model creation is operation 0 of the model's queue: later seq ids wait for it.
  auto future =
      core.enqueue_model_op(ctx.route, live, requested_seq::exactly(0), digest, request_type::create_model,
                            [&core, model_id, base = base, lora]() -> asio::awaitable<future_payload> {
                              co_await core.simulate_step_time();
                              auto make = [base, lora] { return std::make_shared<trainable_model>(base, lora); };
                              auto model = co_await core.compute(std::move(make));
                              if (auto it = core.models.find(model_id); it != core.models.end())
                                it->second.model = std::move(model);
                              co_return boost::json::value_from(create_model_response{model_id});
                            });
  session.model_creations.remember(req.model_seq_id, digest, future->id);
  return future_response(ctx, *future, model_id);
}

inline http_response get_info(engine_core& core, request_context& ctx) {
  const auto req = decode_json_body<get_info_request>(ctx);
  auto it = core.runs.find(req.model_id);
  if (it == core.runs.end() || it->second.owner != ctx.tenant) throw http_error(404, "unknown model " + req.model_id);
  core.requests.count_naming(req.model_id, ctx.route);
  const auto& run = it->second;
  const auto& spec = core.base_models.at(run.engine_model)->spec();
  get_info_response resp;
  resp.model_data = model_data{spec.arch, run.base_model, std::string(byte_tokenizer::tokenizer_id)};
  resp.model_id = run.id;
  resp.is_lora = true;
  resp.lora_rank = run.lora.rank;
  resp.model_name = run.base_model;
  return json_response(ctx, 200, boost::json::value_from(resp));
}

inline http_response unload_model(engine_core& core, request_context& ctx) {
  const auto req = decode_json_body<unload_model_request>(ctx);
  auto& m = core.model_of(ctx, req.model_id);
  // After everything already queued: unloading mid-queue would fail earlier requests.
  auto future = core.enqueue_model_op(ctx.route, m, requested_seq::none(), sha256_hex(ctx.request.body()),
                                      request_type::unload_model,
                                      [&core, id = req.model_id]() -> asio::awaitable<future_payload> {
                                        core.unload_model(id, "model unloaded");
                                        co_return boost::json::value_from(unload_model_response{id});
                                      });
  return future_response(ctx, *future, req.model_id);
}

/// forward_backward (JSON or protobuf) and the legacy forward route (JSON, forward only).
inline http_response forward_backward(engine_core& core, request_context& ctx) {
  auto req = std::make_shared<forward_backward_request>();
  if (auto enc = ctx.request.find(boost::beast::http::field::content_encoding); enc != ctx.request.end())
    throw http_error(415, "unsupported Content-Encoding '" + std::string(enc->value()) +
                              "' (this server advertises proto_compress_fwdbwd=false)");
  if (ctx.route == "forward") {
    auto legacy = decode_json_body<forward_request>(ctx);
    *req = forward_backward_request{std::move(legacy.forward_input), std::move(legacy.model_id), legacy.seq_id, true};
  } else if (content_type_is(ctx.request, "application/x-protobuf")) {
    if (!core.options().accept_protobuf_requests)
      throw http_error(415,
                       "this server takes forward_backward requests as JSON only (Content-Type: application/json)");
    *req = proto::decode_forward_backward_request(ctx.request.body());
  } else {
    *req = decode_json_body<forward_backward_request>(ctx);
  }
  // Bounded before the model is even looked up: the checks below expand the inputs.
  check_dense_size(req->forward_backward_input.data, core.options().max_request_dense_elements);
  auto& m = core.model_of(ctx, req->model_id);
  const auto seq = requested_seq::from_client(req->seq_id);
  const auto& in = req->forward_backward_input;
  if (in.data.empty()) throw http_error(400, "forward_backward_input.data is empty: no data provided");
  const auto digest = sha256_hex(ctx.request.body());
  // An identical resubmission is answered before the (linear) input checks.
  if (!(seq.given && m.queue.remembers(seq.value)))
    trainable_model::check_forward_backward_input(*m.base, in.data, in.loss_fn,
                                                  in.loss_fn_config);  // 400 naming the field
  core.touch_run(m.run_id);
  const auto type = req->forward_only ? request_type::forward : request_type::forward_backward;
  const auto run_id = m.run_id;
  auto future = core.enqueue_model_op(
      ctx.route, m, seq, digest, type, [&core, req, id = m.run_id]() -> asio::awaitable<future_payload> {
        co_await core.simulate_step_time();
        auto model = core.loaded_model(id);
        // The result and its protobuf encoding are both made on the compute pool.
        auto work = [model, req] {
          const auto& input = req->forward_backward_input;
          auto out = model->forward_backward(input.data, input.loss_fn, input.loss_fn_config, req->forward_only);
          auto bytes = std::make_shared<const std::string>(proto::encode(out));
          return future_payload(future_result(std::move(out)), std::move(bytes));
        };
        auto payload = co_await core.compute(std::move(work));
        if (!req->forward_only) {  // billed training tokens: the model inputs of forward_backward (not forward)
          std::int64_t tokens = 0;
          for (const auto& d : req->forward_backward_input.data)
            tokens += static_cast<std::int64_t>(d.model_input.length());
          core.record_run_usage(id, usage_kind::training, tokens);
        }
        co_return payload;
      });
  return future_response(ctx, *future, run_id);
}

inline http_response optim_step(engine_core& core, request_context& ctx) {
  const auto req = decode_json_body<optim_step_request>(ctx);
  auto& m = core.model_of(ctx, req.model_id);
  trainable_model::check_adam_params(req.adam_params);  // 400 naming the field
  core.touch_run(m.run_id);
  const auto seq = requested_seq::from_client(req.seq_id);
  const auto run_id = m.run_id;
  auto future =
      core.enqueue_model_op(ctx.route, m, seq, sha256_hex(ctx.request.body()), request_type::optim_step,
                            [&core, params = req.adam_params, id = m.run_id]() -> asio::awaitable<future_payload> {
                              co_await core.simulate_step_time();
                              auto model = core.loaded_model(id);
                              auto work = [model, params] { return model->optim_step(params); };
                              auto resp = co_await core.compute(std::move(work));
                              co_return boost::json::value_from(resp);
                            });
  return future_response(ctx, *future, run_id);
}

inline http_response save_weights(engine_core& core, request_context& ctx) {
  const auto req = decode_json_body<save_weights_request>(ctx);
  auto& m = core.model_of(ctx, req.model_id);
  const auto seq = requested_seq::from_client(req.seq_id);
  if (!req.path) throw http_error(400, "save_weights needs a path (the checkpoint name)");
  if (auto why = tinker_path::name_problem(*req.path))
    throw http_error(400, "invalid checkpoint name '" + tinker_path::printable(*req.path) + "': " + *why);
  check_ttl(req.ttl_seconds);
  const auto path = tinker_path{"tinker", m.run_id, checkpoint_kind::weights, *req.path};
  const auto digest = sha256_hex(ctx.request.body());
  const auto run_id = m.run_id;
  if (seq.given)
    if (auto original = m.queue.resubmission_of(seq.value, digest))
      if (auto f = core.futures.find(*original)) return future_response(ctx, *f, run_id);
  if (!req.overwrite && core.checkpoints.contains(path))
    throw http_error(400, "checkpoint " + path.str() + " already exists (pass overwrite=true to replace it)");
  core.touch_run(m.run_id);
  auto future = core.enqueue_model_op(ctx.route, m, seq, digest, request_type::save_weights,
                                      [&core, req, path, owner = ctx.tenant]() -> asio::awaitable<future_payload> {
                                        co_await core.simulate_step_time();
                                        co_await core.save_checkpoint(path, owner, req.ttl_seconds, req.user_metadata,
                                                                      req.overwrite, true);
                                        co_return boost::json::value_from(save_weights_response{path.str()});
                                      });
  return future_response(ctx, *future, run_id);
}

inline http_response save_weights_for_sampler(engine_core& core, request_context& ctx) {
  const auto req = decode_json_body<save_weights_for_sampler_request>(ctx);
  auto& m = core.model_of(ctx, req.model_id);
  const auto seq = requested_seq::from_client(req.seq_id);
  check_ttl(req.ttl_seconds);
  core.touch_run(m.run_id);
  const auto digest = sha256_hex(ctx.request.body());
  const auto run_id = m.run_id;
  if (seq.given)
    if (auto original = m.queue.resubmission_of(seq.value, digest))
      if (auto f = core.futures.find(*original)) return future_response(ctx, *f, run_id);
  if (req.path) {
    if (auto why = tinker_path::name_problem(*req.path))
      throw http_error(400, "invalid checkpoint name '" + tinker_path::printable(*req.path) + "': " + *why);
    const auto path = tinker_path{"tinker", m.run_id, checkpoint_kind::sampler_weights, *req.path};
    // Sampler weights are immutable: samplers created from them must keep sampling the same.
    // (400, not 409: clients retry 409 for minutes.)
    if (core.checkpoints.contains(path))
      throw http_error(
          400, "checkpoint " + path.str() + " already exists; sampler weights are immutable, save under a new name");
    auto future = core.enqueue_model_op(ctx.route, m, seq, digest, request_type::save_weights_for_sampler,
                                        [&core, req, path, owner = ctx.tenant]() -> asio::awaitable<future_payload> {
                                          co_await core.simulate_step_time();
                                          co_await core.save_checkpoint(path, owner, req.ttl_seconds, req.user_metadata,
                                                                        false, false);
                                          save_weights_for_sampler_response resp;
                                          resp.path = path.str();
                                          co_return boost::json::value_from(resp);
                                        });
    return future_response(ctx, *future, run_id);
  }
  if (!req.sampling_session_seq_id)
    throw http_error(400, "save_weights_for_sampler needs a path (named) or a sampling_session_seq_id (unnamed)");
  auto& session = core.sessions.live(ctx.tenant, m.session_id);
  const auto sampler_id = session.record.id + ":sample:" + std::to_string(*req.sampling_session_seq_id);
  if (core.samplers.contains(sampler_id) || core.reserved_sampler_ids.contains(sampler_id))
    throw http_error(400,
                     "sampling_session_seq_id " + std::to_string(*req.sampling_session_seq_id) + " is already in use");
  // Reserved before the operation is queued (so it can never finish before the reservation), and
  // released when it runs, or at once if it is refused.
  core.reserved_sampler_ids.insert(sampler_id);
  std::shared_ptr<future_entry> future;
  try {
    future = core.enqueue_model_op(
        ctx.route, m, seq, digest, request_type::save_weights_for_sampler,
        [&core, sampler_id, id = m.run_id, owner = ctx.tenant]() -> asio::awaitable<future_payload> {
          std::shared_ptr<trainable_model> model;
          std::shared_ptr<const lora_weights> weights;
          try {
            co_await core.simulate_step_time();
            model = core.loaded_model(id);
            // A snapshot: training the model further never changes what this sampler samples.
            auto snapshot = [model] { return model->snapshot(); };
            weights = co_await core.compute(std::move(snapshot));
          } catch (...) {
            core.reserved_sampler_ids.erase(sampler_id);  // failed: the id is free again
            throw;
          }
          core.reserved_sampler_ids.erase(sampler_id);
          const auto& run = core.runs.at(id);
          sampler_state s;
          s.record.id = sampler_id;
          s.record.owner = owner;
          s.record.session_id = run.session_id;
          s.record.base_model = run.base_model;
          s.record.engine_model = run.engine_model;
          s.record.created = core.now_ts();
          s.record.ephemeral = true;
          s.base = core.base_models.at(run.engine_model);
          s.weights = std::move(weights);
          core.storage.save(s.record);
          if (auto* session = core.sessions.find(run.session_id)) core.sessions.add_sampler(*session, sampler_id);
          core.samplers.insert_or_assign(sampler_id, std::move(s));
          save_weights_for_sampler_response resp;
          resp.sampling_session_id = sampler_id;
          co_return boost::json::value_from(resp);
        });
  } catch (...) {
    core.reserved_sampler_ids.erase(sampler_id);
    throw;
  }
  return future_response(ctx, *future, run_id);
}

namespace training_detail {

/// The weights checkpoint a load reads, authorized for the caller or its weights_access_token.
inline const checkpoint_record& checkpoint_to_load(engine_core& core, const request_context& ctx,
                                                   const load_weights_request& req, const tinker_path& path) {
  if (path.kind != checkpoint_kind::weights)
    throw http_error(
        400, "load_weights needs a training-state checkpoint (tinker://<run>/weights/<name>), got " + path.str());
  // With a weights_access_token the checkpoint is read as the account that token belongs to.
  return core.checkpoints.readable(core.tenants.checkpoint_reader(ctx.tenant, req.weights_access_token), path);
}

/// Create-via-load (docs/protocol.md §7.5): one request creates model `<session>:train:<model_seq_id>`
/// with the LoRA settings of the checkpoint's run and loads the checkpoint, as the model's
/// operation 0 (its next operation is seq_id 1).
inline http_response create_via_load(engine_core& core, request_context& ctx, const load_weights_request& req) {
  auto& session = core.sessions.live(ctx.tenant, *req.session_id);
  const auto digest = sha256_hex(ctx.request.body());
  const auto model_id = *req.session_id + ":train:" + std::to_string(*req.model_seq_id);
  if (auto original = session.model_creations.check(*req.model_seq_id, digest, "model_seq_id"))
    if (auto f = core.futures.find(*original)) return future_response(ctx, *f, model_id);
  if (core.runs.contains(model_id)) throw http_error(400, "model " + model_id + " already exists");
  const auto path = tinker_path::parse(req.path);
  const auto& c = checkpoint_to_load(core, ctx, req, path);
  const auto& source = core.runs.at(c.run_id);
  if (req.base_model) core.check_base_model_matches(*req.base_model, source, path);
  const auto base_name = req.base_model.value_or(source.base_model);
  auto [engine_name, base] = core.resolve_base_model(base_name);
  auto lora = source.lora;
  lora.seed = static_cast<std::int64_t>(core.ids.next() >> 1);

  auto& live = core.register_new_model(ctx, session, model_id, base_name, engine_name, base, lora, req.user_metadata,
                                       boost::json::object{{"from_checkpoint", path.str()}});
  // Captures the checkpoint record, never the request (its token is not kept anywhere).
  auto future = core.enqueue_model_op(ctx.route, live, requested_seq::exactly(0), digest, request_type::load_weights,
                                      [&core, c = c, optimizer = req.optimizer, model_id, base = base, lora,
                                       path]() -> asio::awaitable<future_payload> {
                                        co_await core.simulate_step_time();
                                        auto read = [&core, c, optimizer] {
                                          return to_checkpoint_files(core.checkpoints.files(c, optimizer));
                                        };
                                        auto files = co_await core.compute(std::move(read));
                                        auto make = [base, lora, files = std::move(files), optimizer] {
                                          auto model = std::make_shared<trainable_model>(base, lora);
                                          model->import_checkpoint(files, optimizer);
                                          return model;
                                        };
                                        auto model = co_await core.compute(std::move(make));
                                        if (auto it = core.models.find(model_id); it != core.models.end())
                                          it->second.model = std::move(model);
                                        co_return boost::json::value_from(load_weights_response{path.str(), model_id});
                                      });
  session.model_creations.remember(*req.model_seq_id, digest, future->id);
  return future_response(ctx, *future, model_id);
}

/// A load into the live model `m`: the checkpoint must come from the same engine model with the
/// same LoRA settings.
inline http_response submit_load(engine_core& core, request_context& ctx, live_model& m,
                                 const load_weights_request& req, requested_seq seq) {
  const auto path = tinker_path::parse(req.path);
  const auto& c = checkpoint_to_load(core, ctx, req, path);
  const auto& source = core.runs.at(c.run_id);
  const auto& target = core.runs.at(m.run_id);
  if (source.engine_model != target.engine_model)
    throw http_error(400, "checkpoint " + path.str() + " was trained on " + source.base_model +
                              ", not on this model's " + target.base_model);
  auto flags = [](const lora_config& l) {
    return "rank " + std::to_string(l.rank) + ", train_attn=" + (l.train_attn ? "true" : "false") +
           ", train_mlp=" + (l.train_mlp ? "true" : "false") +
           ", train_unembed=" + (l.train_unembed ? "true" : "false");
  };
  if (source.lora.rank != target.lora.rank || source.lora.train_attn != target.lora.train_attn ||
      source.lora.train_mlp != target.lora.train_mlp || source.lora.train_unembed != target.lora.train_unembed)
    throw http_error(400, "checkpoint " + path.str() + " has LoRA " + flags(source.lora) + " but model " + m.run_id +
                              " has " + flags(target.lora));
  core.touch_run(m.run_id);
  const auto run_id = m.run_id;
  auto future = core.enqueue_model_op(
      ctx.route, m, seq, sha256_hex(ctx.request.body()), request_type::load_weights,
      [&core, c, optimizer = req.optimizer, id = m.run_id, path]() -> asio::awaitable<future_payload> {
        co_await core.simulate_step_time();
        auto model = core.loaded_model(id);
        auto read = [&core, c, optimizer] { return to_checkpoint_files(core.checkpoints.files(c, optimizer)); };
        auto files = co_await core.compute(std::move(read));
        auto import = [model, files = std::move(files), optimizer] { model->import_checkpoint(files, optimizer); };
        co_await core.compute(std::move(import));
        co_return boost::json::value_from(load_weights_response{path.str(), id});
      });
  return future_response(ctx, *future, run_id);
}

}  // namespace training_detail

/// load_weights: into a live model (model_id + seq_id), or create-via-load (session_id + model_seq_id).
inline http_response load_weights(engine_core& core, request_context& ctx) {
  const auto req = decode_json_body<load_weights_request>(ctx);
  if (!req.model_id) {
    if (req.session_id && req.model_seq_id) return training_detail::create_via_load(core, ctx, req);
    throw http_error(400, "load_weights needs model_id (and seq_id), or session_id and model_seq_id (create-via-load)");
  }
  if (req.session_id || req.model_seq_id)
    throw http_error(400, "load_weights takes model_id or session_id + model_seq_id (create-via-load), not both");
  auto& m = core.model_of(ctx, *req.model_id);
  return training_detail::submit_load(core, ctx, m, req, requested_seq::from_client(req.seq_id.value_or(0)));
}

}  // namespace tinker::local::detail::endpoints
