// Local engine endpoints: models and training (create_model, get_info, unload_model,
// forward_backward / forward, optim_step, save_weights, save_weights_for_sampler, load_weights).
// Every training operation is a future queued on its model in seq_id order.
#pragma once

#include <tinker/local/detail/engine_impl.hpp>

namespace tinker::local::detail {

inline http_response engine_impl::handle_create_model(request_context& ctx) {
  const auto req = decode_json_body<create_model_request>(ctx);
  auto& session = session_of(ctx, req.session_id);
  const auto digest = sha256_hex(ctx.request.body());
  const auto model_id = req.session_id + ":train:" + std::to_string(req.model_seq_id);
  if (auto original = session.model_creations.check(req.model_seq_id, digest, "model_seq_id")) {
    auto f = futures_.find(*original);
    if (f) return future_response(ctx, *f, model_id);
  }
  if (runs_.contains(model_id)) throw http_error(400, "model " + model_id + " already exists");
  auto lora = req.lora_config.value_or(lora_config{});
  if (lora.rank < 1) throw http_error(400, "lora_config.rank must be at least 1, got " + std::to_string(lora.rank));
  if (!lora.train_attn && !lora.train_mlp && !lora.train_unembed)
    throw http_error(400, "lora_config: at least one of train_attn, train_mlp, train_unembed must be true");
  auto [engine_name, base] = resolve_base_model(req.base_model);
  if (!lora.seed) lora.seed = static_cast<std::int64_t>(ids_.next() >> 1);

  run_record run;
  run.id = model_id;
  run.owner = ctx.tenant;
  run.base_model = req.base_model;
  run.engine_model = engine_name;
  run.lora = lora;
  run.user_metadata = req.user_metadata.value_or(metadata_map{});
  run.session_id = req.session_id;
  run.created = run.last_request_time = now_ts();
  store_.save(run);
  runs_.emplace(model_id, run);
  session.record.training_run_ids.push_back(model_id);
  store_.save(session.record);

  live_model m;
  m.run_id = model_id;
  m.owner = ctx.tenant;
  m.session_id = req.session_id;
  m.base = base;
  auto& live = models_.emplace(model_id, std::move(m)).first->second;
  // Model creation is operation 0 of the model's queue: later seq ids wait for it.
  auto future = enqueue_model_op(live, requested_seq::exactly(0), digest, request_type::create_model,
                                 [this, model_id, base = base, lora]() -> asio::awaitable<future_result> {
                                   co_await simulate_step_time();
                                   auto make = [base, lora] { return std::make_shared<trainable_model>(base, lora); };
                                   auto model = co_await compute(std::move(make));
                                   if (auto it = models_.find(model_id); it != models_.end()) it->second.model = std::move(model);
                                   co_return boost::json::value_from(create_model_response{model_id});
                                 });
  session.model_creations.remember(req.model_seq_id, digest, future->id);
  return future_response(ctx, *future, model_id);
}

inline http_response engine_impl::handle_get_info(request_context& ctx) {
  const auto req = decode_json_body<get_info_request>(ctx);
  auto it = runs_.find(req.model_id);
  if (it == runs_.end() || it->second.owner != ctx.tenant) throw http_error(404, "unknown model " + req.model_id);
  const auto& run = it->second;
  const auto& spec = base_models_.at(run.engine_model)->spec();
  get_info_response resp;
  resp.model_data = model_data{spec.arch, run.base_model, std::string(byte_tokenizer::tokenizer_id)};
  resp.model_id = run.id;
  resp.is_lora = true;
  resp.lora_rank = run.lora.rank;
  resp.model_name = run.base_model;
  return json_response(ctx, 200, boost::json::value_from(resp));
}

inline http_response engine_impl::handle_unload_model(request_context& ctx) {
  const auto req = decode_json_body<unload_model_request>(ctx);
  auto& m = model_of(ctx, req.model_id);
  // After everything already queued: unloading mid-queue would fail earlier requests.
  auto future = enqueue_model_op(m, requested_seq::none(), sha256_hex(ctx.request.body()), request_type::unload_model,
                                 [this, id = req.model_id]() -> asio::awaitable<future_result> {
                                   unload_model(id, "model unloaded");
                                   co_return boost::json::value_from(unload_model_response{id});
                                 });
  return future_response(ctx, *future, req.model_id);
}

inline http_response engine_impl::handle_forward_backward(request_context& ctx) {
  auto req = std::make_shared<forward_backward_request>();
  if (auto enc = ctx.request.find(http::field::content_encoding); enc != ctx.request.end())
    throw http_error(415, "unsupported Content-Encoding '" + std::string(enc->value()) +
                              "' (this server advertises proto_compress_fwdbwd=false)");
  if (ctx.route == "forward") {
    auto legacy = decode_json_body<forward_request>(ctx);
    *req = forward_backward_request{std::move(legacy.forward_input), std::move(legacy.model_id), legacy.seq_id, true};
  } else if (content_type_is(ctx.request, "application/x-protobuf")) {
    if (!options_.accept_protobuf_requests)
      throw http_error(415, "this server takes forward_backward requests as JSON only (Content-Type: application/json)");
    *req = proto::decode_forward_backward_request(ctx.request.body());
  } else {
    *req = decode_json_body<forward_backward_request>(ctx);
  }
  auto& m = model_of(ctx, req->model_id);
  const auto seq = requested_seq::from_client(req->seq_id);
  return guard_seq(m, seq, [&] {
    if (req->forward_backward_input.data.empty()) throw http_error(400, "forward_backward_input.data is empty: no data provided");
    touch_run(m.run_id);
    const auto type = req->forward_only ? request_type::forward : request_type::forward_backward;
    auto future = enqueue_model_op(m, seq, sha256_hex(ctx.request.body()), type,
                                   [this, req, id = m.run_id]() -> asio::awaitable<future_result> {
                                     co_await simulate_step_time();
                                     auto model = loaded_model(id);
                                     auto work = [model, req] {
                                       const auto& in = req->forward_backward_input;
                                       return model->forward_backward(in.data, in.loss_fn, in.loss_fn_config, req->forward_only);
                                     };
                                     co_return co_await compute(std::move(work));
                                   });
    return future_response(ctx, *future, m.run_id);
  });
}

inline http_response engine_impl::handle_optim_step(request_context& ctx) {
  const auto req = decode_json_body<optim_step_request>(ctx);
  auto& m = model_of(ctx, req.model_id);
  touch_run(m.run_id);
  const auto seq = requested_seq::from_client(req.seq_id);
  auto future = enqueue_model_op(m, seq, sha256_hex(ctx.request.body()), request_type::optim_step,
                                 [this, params = req.adam_params, id = m.run_id]() -> asio::awaitable<future_result> {
                                   co_await simulate_step_time();
                                   auto model = loaded_model(id);
                                   auto work = [model, params] { return model->optim_step(params); };
                                   auto resp = co_await compute(std::move(work));
                                   co_return boost::json::value_from(resp);
                                 });
  return future_response(ctx, *future, m.run_id);
}

inline http_response engine_impl::handle_save_weights(request_context& ctx) {
  const auto req = decode_json_body<save_weights_request>(ctx);
  auto& m = model_of(ctx, req.model_id);
  const auto seq = requested_seq::from_client(req.seq_id);
  return guard_seq(m, seq, [&] {
    if (!req.path) throw http_error(400, "save_weights needs a path (the checkpoint name)");
    if (auto why = tinker_path::name_problem(*req.path)) throw http_error(400, "invalid checkpoint name '" + *req.path + "': " + *why);
    if (req.ttl_seconds && *req.ttl_seconds <= 0)
      throw http_error(400, "ttl_seconds must be positive, got " + std::to_string(*req.ttl_seconds));
    const auto path = tinker_path{"tinker", m.run_id, checkpoint_kind::weights, *req.path};
    const auto digest = sha256_hex(ctx.request.body());
    if (seq.given)
      if (auto original = m.submissions.check(seq.value, digest, "seq_id"))
        if (auto f = futures_.find(*original)) return future_response(ctx, *f, m.run_id);
    if (!req.overwrite && checkpoints_.contains(checkpoint_key(m.run_id, path.kind, path.name)))
      throw http_error(400, "checkpoint " + path.str() + " already exists (pass overwrite=true to replace it)");
    touch_run(m.run_id);
    auto future = enqueue_model_op(m, seq, digest, request_type::save_weights,
                                   [this, req, path, owner = ctx.tenant]() -> asio::awaitable<future_result> {
                                     co_await simulate_step_time();
                                     co_await save_checkpoint(path, owner, req.ttl_seconds, req.user_metadata, req.overwrite, true);
                                     co_return boost::json::value_from(save_weights_response{path.str()});
                                   });
    return future_response(ctx, *future, m.run_id);
  });
}

inline http_response engine_impl::handle_save_weights_for_sampler(request_context& ctx) {
  const auto req = decode_json_body<save_weights_for_sampler_request>(ctx);
  auto& m = model_of(ctx, req.model_id);
  const auto seq = requested_seq::from_client(req.seq_id);
  return guard_seq(m, seq, [&] { return submit_save_for_sampler(ctx, m, req, seq); });
}

inline http_response engine_impl::submit_save_for_sampler(request_context& ctx, live_model& m,
                                                          const save_weights_for_sampler_request& req,
                                                          requested_seq seq) {
  if (req.ttl_seconds && *req.ttl_seconds <= 0)
    throw http_error(400, "ttl_seconds must be positive, got " + std::to_string(*req.ttl_seconds));
  touch_run(m.run_id);
  const auto digest = sha256_hex(ctx.request.body());
  if (seq.given)
    if (auto original = m.submissions.check(seq.value, digest, "seq_id"))
      if (auto f = futures_.find(*original)) return future_response(ctx, *f, m.run_id);
  if (req.path) {
    if (auto why = tinker_path::name_problem(*req.path)) throw http_error(400, "invalid checkpoint name '" + *req.path + "': " + *why);
    const auto path = tinker_path{"tinker", m.run_id, checkpoint_kind::sampler_weights, *req.path};
    auto future = enqueue_model_op(m, seq, digest, request_type::save_weights_for_sampler,
                                   [this, req, path, owner = ctx.tenant]() -> asio::awaitable<future_result> {
                                     co_await simulate_step_time();
                                     co_await save_checkpoint(path, owner, req.ttl_seconds, req.user_metadata, true, false);
                                     save_weights_for_sampler_response resp;
                                     resp.path = path.str();
                                     co_return boost::json::value_from(resp);
                                   });
    return future_response(ctx, *future, m.run_id);
  }
  if (!req.sampling_session_seq_id)
    throw http_error(400, "save_weights_for_sampler needs a path (named) or a sampling_session_seq_id (unnamed)");
  auto& session = session_of(ctx, m.session_id);
  const auto sampler_id = session.record.id + ":sample:" + std::to_string(*req.sampling_session_seq_id);
  if (samplers_.contains(sampler_id))
    throw http_error(400, "sampling_session_seq_id " + std::to_string(*req.sampling_session_seq_id) + " is already in use");
  auto future = enqueue_model_op(
      m, seq, digest, request_type::save_weights_for_sampler,
      [this, sampler_id, id = m.run_id, owner = ctx.tenant]() -> asio::awaitable<future_result> {
        co_await simulate_step_time();
        auto model = loaded_model(id);
        // A snapshot: training the model further never changes what this sampler samples.
        auto snapshot = [model] { return model->snapshot(); };
        auto weights = co_await compute(std::move(snapshot));
        const auto& run = runs_.at(id);
        sampler_state s;
        s.record.id = sampler_id;
        s.record.owner = owner;
        s.record.session_id = run.session_id;
        s.record.base_model = run.base_model;
        s.record.engine_model = run.engine_model;
        s.record.created = now_ts();
        s.record.ephemeral = true;
        s.base = base_models_.at(run.engine_model);
        s.weights = std::move(weights);
        store_.save(s.record);
        if (auto session = sessions_.find(run.session_id); session != sessions_.end()) {
          session->second.record.sampler_ids.push_back(sampler_id);
          store_.save(session->second.record);
        }
        samplers_.insert_or_assign(sampler_id, std::move(s));
        save_weights_for_sampler_response resp;
        resp.sampling_session_id = sampler_id;
        co_return boost::json::value_from(resp);
      });
  return future_response(ctx, *future, m.run_id);
}

inline http_response engine_impl::handle_load_weights(request_context& ctx) {
  const auto req = decode_json_body<load_weights_request>(ctx);
  if (!req.model_id)
    throw http_error(400, "create-via-load (session_id + model_seq_id) is not enabled on this server: "
                          "create the model, then load_weights with its model_id");
  auto& m = model_of(ctx, *req.model_id);
  const auto seq = requested_seq::from_client(req.seq_id.value_or(0));
  return guard_seq(m, seq, [&] { return submit_load(ctx, m, req, seq); });
}

inline http_response engine_impl::submit_load(request_context& ctx, live_model& m, const load_weights_request& req,
                                              requested_seq seq) {
  const auto path = tinker_path::parse(req.path);
  if (path.kind != checkpoint_kind::weights)
    throw http_error(400, "load_weights needs a training-state checkpoint (tinker://<run>/weights/<name>), got " + path.str());
  const auto& c = readable_checkpoint(ctx.tenant, path);
  const auto& source = runs_.at(c.run_id);
  if (source.engine_model != runs_.at(m.run_id).engine_model)
    throw http_error(400, "checkpoint " + path.str() + " was trained on " + source.base_model + ", not on this model's " +
                              runs_.at(m.run_id).base_model);
  touch_run(m.run_id);
  auto future = enqueue_model_op(
      m, seq, sha256_hex(ctx.request.body()), request_type::load_weights,
      [this, c, optimizer = req.optimizer, id = m.run_id, path]() -> asio::awaitable<future_result> {
        co_await simulate_step_time();
        auto model = loaded_model(id);
        auto read = [this, c, optimizer] { return to_checkpoint_files(read_checkpoint_files(c, optimizer)); };
        auto files = co_await compute(std::move(read));
        auto import = [model, files = std::move(files), optimizer] { model->import_checkpoint(files, optimizer); };
        co_await compute(std::move(import));
        co_return boost::json::value_from(load_weights_response{path.str(), id});
      });
  return future_response(ctx, *future, m.run_id);
}

/// The trainable model of a live run (inside its queue, so creation has run).
inline std::shared_ptr<trainable_model> engine_impl::loaded_model(const std::string& run_id) {
  auto it = models_.find(run_id);
  if (it == models_.end()) throw http_error(404, "model " + run_id + " was unloaded");
  if (!it->second.model) throw http_error(400, "model " + run_id + " failed to initialise");
  return it->second.model;
}

/// Exports the model's state to a checkpoint (files written off the I/O thread), then registers it.
inline asio::awaitable<void> engine_impl::save_checkpoint(tinker_path path, std::string owner,
                                                          std::optional<std::int64_t> ttl_seconds,
                                                          std::optional<metadata_map> user_metadata, bool overwrite,
                                                          bool with_optimizer) {
  const auto key = checkpoint_key(path.training_run_id, path.kind, path.name);
  if (!overwrite && checkpoints_.contains(key))
    throw http_error(400, "checkpoint " + path.str() + " already exists (pass overwrite=true to replace it)");
  auto model = loaded_model(path.training_run_id);
  checkpoint_record record;
  record.run_id = path.training_run_id;
  record.kind = path.kind;
  record.name = path.name;
  record.owner = std::move(owner);
  record.time = now_ts();
  if (ttl_seconds) record.expires_at = record.time + std::chrono::seconds(*ttl_seconds);
  record.user_metadata = std::move(user_metadata);
  if (auto existing = checkpoints_.find(key); existing != checkpoints_.end()) record.is_public = existing->second.is_public;
  auto write = [this, model, record, with_optimizer] {
    return store_.write_checkpoint(record, to_named_files(model->export_checkpoint(with_optimizer)));
  };
  record.size_bytes = co_await compute(std::move(write));
  checkpoints_.insert_or_assign(key, std::move(record));
}

}  // namespace tinker::local::detail
