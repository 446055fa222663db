// The local engine without its sockets: the components (tenants, sessions, checkpoints, model
// queues, futures, faults, accounting) and the work that spans several of them (running a model's
// queue, batching samples, saving checkpoints, expiry). Handlers (the *_endpoints.hpp headers)
// work on it; the request pipeline (dispatch.hpp) feeds it requests; engine_impl adds the HTTP
// server. A test can build one on an io_context and call handlers on an http_request directly.
//
// Single-threaded: everything runs on the I/O executor, except what compute() sends to the
// compute pool (training, sampling, encoding, checkpoint files), which hands its result back.
#pragma once

#include <tinker/error.hpp>
#include <tinker/local/detail/accounting.hpp>
#include <tinker/local/detail/checkpoint_catalog.hpp>
#include <tinker/local/detail/crypto.hpp>
#include <tinker/local/detail/engine_state.hpp>
#include <tinker/local/detail/fault_injector.hpp>
#include <tinker/local/detail/futures.hpp>
#include <tinker/local/detail/http_error.hpp>
#include <tinker/local/detail/ids.hpp>
#include <tinker/local/detail/model_queue.hpp>
#include <tinker/local/detail/records.hpp>
#include <tinker/local/detail/request_context.hpp>
#include <tinker/local/detail/responses.hpp>
#include <tinker/local/detail/sessions.hpp>
#include <tinker/local/detail/store.hpp>
#include <tinker/local/detail/tenants.hpp>
#include <tinker/local/engine_options.hpp>
#include <tinker/local/model/model.hpp>
#include <tinker/proto.hpp>
#include <tinker/tinker_path.hpp>
#include <tinker/types.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace tinker::local::detail {

namespace asio = boost::asio;

/// The longest long_poll_hold an engine accepts (below the SDK's 45 s per-poll timeout).
inline constexpr std::chrono::milliseconds max_long_poll_hold{40'000};

class engine_core : public std::enable_shared_from_this<engine_core> {
public:
  /// Loads the data directory. Throws tinker::invalid_argument for options that cannot work.
  engine_core(asio::any_io_executor io, engine_options o)
      : executor_(std::move(io)),
        options_(checked_options(std::move(o))),
        data_dir_(prepare_data_dir(options_.data_dir)),
        storage(data_dir_),
        ids(options_.seed, storage.epoch()),
        tenants(options_.api_keys),
        sessions(storage),
        checkpoints(storage),
        faults(options_.faults, std::chrono::steady_clock::now()),
        audit(storage, options_.audit_log_limit),
        pool_(options_.compute_threads ? options_.compute_threads
                                       : std::max<std::size_t>(1, std::thread::hardware_concurrency())),
        maintenance_timer_(executor_) {
    for (const auto& spec : default_base_models()) base_models.emplace(spec.name, base_model::create(spec));
    load_records();
  }

  engine_core(const engine_core&) = delete;
  engine_core& operator=(const engine_core&) = delete;

  ~engine_core() {
    pool_.join();
    if (owns_data_dir_) {
      std::error_code ec;
      std::filesystem::remove_all(data_dir_, ec);
    }
  }

  /// `o` with defaults filled in; throws tinker::invalid_argument for settings that cannot work
  /// (before anything, such as a temporary data directory, is created).
  static engine_options checked_options(engine_options o) {
    if (!o.clock) o.clock = [] { return std::chrono::system_clock::now(); };
    if (o.long_poll_hold <= std::chrono::milliseconds::zero() || o.long_poll_hold > max_long_poll_hold)
      throw tinker::invalid_argument(
          "engine_options.long_poll_hold must be in (0, 40000] ms (below the SDK's 45 s poll timeout), got " +
          std::to_string(o.long_poll_hold.count()) + " ms");
    if (o.max_seq_id_gap < 1)
      throw tinker::invalid_argument("engine_options.max_seq_id_gap must be at least 1, got " +
                                     std::to_string(o.max_seq_id_gap));
    if (o.audit_log_limit < 1) throw tinker::invalid_argument("engine_options.audit_log_limit must be at least 1");
    if (o.max_request_dense_elements < 1)
      throw tinker::invalid_argument("engine_options.max_request_dense_elements must be at least 1");
    // Signed URLs: bounded, so expiry arithmetic on the clock cannot overflow.
    constexpr std::chrono::milliseconds max_url_lifetime = std::chrono::hours(24 * 30);
    for (auto [name, lifetime] : {std::pair{"trace_url_lifetime", o.trace_url_lifetime},
                                  std::pair{"download_url_lifetime", o.download_url_lifetime}})
      if (lifetime <= std::chrono::milliseconds::zero() || lifetime > max_url_lifetime)
        throw tinker::invalid_argument(std::string("engine_options.") + name + " must be in (0, 30 days], got " +
                                       std::to_string(lifetime.count()) + " ms");
    const auto models = default_base_models();
    // (No structured binding here: Clang before 16 cannot capture one in a lambda.)
    for (const auto& alias : o.model_aliases)
      if (std::none_of(models.begin(), models.end(), [&](const auto& m) { return m.name == alias.second; }))
        throw tinker::invalid_argument("model alias '" + alias.first + "' maps to unknown engine model '" +
                                       alias.second + "'");
    return o;
  }

  // ===== lifecycle ===============================================================================

  /// Runs maintenance every options().maintenance_interval until stop().
  void start_maintenance() { schedule_maintenance(); }

  /// Stops maintenance and ends long polls (they answer what they have). Idempotent.
  void stop() {
    stopping_ = true;
    maintenance_timer_.cancel();
  }
  bool stopping() const noexcept { return stopping_; }

  /// Waits for running compute tasks and stops the compute pool (after the executor stopped).
  void join_compute() {
    pool_.stop();
    pool_.join();
  }

  /// The port the engine's server listens on (for URLs, when a request carries no Host header).
  void set_listening_port(std::uint16_t port) noexcept { listening_port_ = port; }
  std::uint16_t listening_port() const noexcept { return listening_port_; }

  void set_faults(fault_options f) { faults.set(std::move(f), std::chrono::steady_clock::now()); }

  /// Runs expiry now (sessions, checkpoint TTLs, old futures, old usage) against the engine clock.
  void run_maintenance() {
    const auto now = options_.clock();
    for (const auto& id : sessions.due_to_expire(now, options_.session_timeout))
      expire_session(
          id, "session expired: no heartbeat for " + std::to_string(options_.session_timeout.count() / 1000) + " s");
    expire_checkpoints(now);
    futures.purge(std::chrono::steady_clock::now() - options_.future_retention);
    usage.purge(now);
  }

  /// Deletes every checkpoint whose TTL has run out by `now` (audited as ttl_expired). Runs before
  /// every request as well as in the maintenance sweep: a checkpoint past its expires_at is never
  /// listed, loaded, sampled from or downloaded, however long ago the last sweep was.
  void expire_checkpoints(std::chrono::system_clock::time_point now) {
    for (const auto& c : checkpoints.expired_by(now)) delete_checkpoint(c, "ttl_expired");
  }

  const engine_options& options() const noexcept { return options_; }
  const std::filesystem::path& data_dir() const noexcept { return data_dir_; }
  const asio::any_io_executor& executor() const noexcept { return executor_; }
  /// Where compute() runs work (also fit for other CPU-heavy work off the I/O thread, e.g. gzip).
  asio::thread_pool::executor_type compute_executor() noexcept { return pool_.get_executor(); }

  /// The engine clock, and its reading as a protocol timestamp.
  std::chrono::system_clock::time_point now() const { return options_.clock(); }
  timestamp now_ts() const { return std::chrono::time_point_cast<std::chrono::microseconds>(options_.clock()); }

  // ===== compute =================================================================================

  /// Runs `f` on the compute pool and resumes on the I/O executor with its result (or exception).
  /// Call sites name their lambda and move it in: GCC 12 destroys lambda and aggregate temporaries
  /// that appear inside a co_await expression twice.
  template <class F>
  asio::awaitable<std::invoke_result_t<F>> compute(F f) {
    return asio::co_spawn(pool_.get_executor(), run_on_pool(std::move(f)), asio::use_awaitable);
  }

  asio::awaitable<void> wait_for(std::chrono::steady_clock::duration d) {
    asio::steady_timer t(executor_, d);
    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
  }

  /// Adds the simulated step time of training operations (fault injection).
  asio::awaitable<void> simulate_step_time() {
    if (faults.training_step_time().count() > 0) co_await wait_for(faults.training_step_time());
  }

  /// Completes or fails `future` with what `work` produces, mapping exceptions to categories:
  /// bad input is the user's fault, anything else the server's.
  asio::awaitable<void> settle(std::shared_ptr<future_entry> future,
                               std::function<asio::awaitable<future_payload>()> work) {
    try {
      auto result = co_await work();
      futures.complete(*future, std::move(result));
    } catch (const http_error& e) {
      futures.fail(*future, e.what(), e.status() < 500 ? error_category::user : error_category::server);
    } catch (const tinker::invalid_argument& e) {
      futures.fail(*future, e.what(), error_category::user);
    } catch (const tinker::protocol_error& e) {
      futures.fail(*future, e.what(), error_category::user);
    } catch (const std::exception& e) {
      futures.fail(*future, e.what(), error_category::server);
    }
  }

  /// The answer carrying a finished future's result: protobuf (encoded with the result) when the
  /// poll accepts it and the result has that form, JSON otherwise. Large JSON is encoded on the
  /// compute pool the first time it is asked for, and kept.
  asio::awaitable<http_response> result_response(const request_context& ctx, std::shared_ptr<future_entry> future,
                                                 bool allow_protobuf = true) {
    const bool binary = std::holds_alternative<forward_backward_output>(future->result) ||
                        std::holds_alternative<sample_response>(future->result);
    if (!binary) {
      if (auto* v = std::get_if<boost::json::value>(&future->result)) co_return json_response(ctx, 200, *v);
      throw http_error(500, "future " + future->id + " finished without a result");
    }
    if (allow_protobuf && accepts_protobuf(ctx.request)) {
      if (!future->protobuf_body) {
        auto encode = [future] {
          if (auto* out = std::get_if<forward_backward_output>(&future->result))
            return std::make_shared<const std::string>(proto::encode(*out));
          return std::make_shared<const std::string>(proto::encode(std::get<sample_response>(future->result)));
        };
        auto bytes = co_await compute(std::move(encode));
        if (!future->protobuf_body) future->protobuf_body = std::move(bytes);
      }
      co_return bytes_response(ctx, "application/x-protobuf", *future->protobuf_body);
    }
    if (!future->json_body) {
      auto encode = [future] {
        if (auto* out = std::get_if<forward_backward_output>(&future->result))
          return std::make_shared<const std::string>(json::dump(boost::json::value_from(*out)));
        return std::make_shared<const std::string>(
            json::dump(boost::json::value_from(std::get<sample_response>(future->result))));
      };
      auto bytes = co_await compute(std::move(encode));
      if (!future->json_body) future->json_body = std::move(bytes);
    }
    co_return bytes_response(ctx, "application/json", *future->json_body);
  }

  // ===== models and their seq_id queues ==========================================================

  /// Queues `run` as operation `seq_id` of `model` (or after the last one when the client sent
  /// no seq_id); a resubmission of an already-seen (seq_id, body) returns the original future.
  /// Requests on a route in fault_options::fail_routes are queued to fail instead of running.
  /// May run the operation at once: `m` must not be used afterwards (an unload erases it).
  std::shared_ptr<future_entry> enqueue_model_op(std::string_view route, live_model& m, requested_seq seq_id,
                                                 const std::string& digest, request_type type,
                                                 std::function<asio::awaitable<future_payload>()> run) {
    const auto admitted = m.queue.admit(seq_id, digest);
    if (admitted.original) {
      if (auto f = futures.find(*admitted.original)) return f;
      // The identical request ran and its result was forgotten (future_retention): it cannot
      // run twice, and there is nothing to return.
      throw http_error(400, "seq_id " + std::to_string(admitted.seq) + " already ran on model " + m.run_id +
                                "; its result expired (results are kept " +
                                std::to_string(options_.future_retention.count() / 1000) + " s)");
    }
    auto future = futures.create(ids.request_id(), m.owner, type);
    m.queue.enqueue(admitted.seq, digest, queued_op{future, std::move(run), faults.failure_for(route)});
    pump_model(m.run_id);
    return future;
  }

  /// A request that named (model, seq_id) but was refused still uses up that seq_id: otherwise
  /// the model's later operations would wait forever for it. Idempotent; a seq_id outside the
  /// window (already run, or too far ahead) is left alone.
  void use_up_seq(live_model& m, std::int64_t seq, const std::string& why) {
    if (!m.queue.can_use_up(seq)) return;
    auto future = futures.create(ids.request_id(), m.owner, request_type::forward_backward);
    futures.fail(*future, "rejected: " + why, error_category::user);
    auto nothing = []() -> asio::awaitable<future_payload> { co_return future_payload{}; };
    m.queue.use_up(seq, queued_op{future, std::move(nothing), std::nullopt});
    pump_model(m.run_id);
  }

  /// Runs a training handler (decoding, checks, submission). When it refuses the request for
  /// good (400, 403, 404, 422, malformed bodies included), the seq_id the body names is used up on
  /// the model it names, so the model's later operations do not wait for it forever. Not for 415
  /// (the client re-sends the same seq_id as JSON) or statuses clients retry.
  template <class F>
  http_response consume_seq_if_rejected(request_context& ctx, F&& f) {
    try {
      return f();
    } catch (const http_error& e) {
      const auto s = e.status();
      if (s == 400 || s == 403 || s == 404 || s == 422) use_up_rejected_seq(ctx, e.what());
      throw;
    } catch (const tinker::invalid_argument& e) {
      use_up_rejected_seq(ctx, e.what());
      throw;
    } catch (const tinker::protocol_error& e) {
      use_up_rejected_seq(ctx, e.what());
      throw;
    }
  }

  /// Starts the model's worker when its next operation has arrived and nothing runs.
  void pump_model(const std::string& run_id) {
    auto it = models.find(run_id);
    if (it == models.end()) return;
    if (auto op = it->second.queue.next_to_run())
      asio::co_spawn(executor_, run_model_ops(shared_from_this(), run_id, std::move(*op)), asio::detached);
  }

  /// The live model `model_id` of `ctx`'s tenant (counted as named by the request), or 404.
  live_model& model_of(const request_context& ctx, const std::string& model_id) {
    auto it = models.find(model_id);
    if (it == models.end() || it->second.owner != ctx.tenant) {
      auto run = runs.find(model_id);
      if (run != runs.end() && run->second.owner == ctx.tenant)
        throw http_error(404, "model " + model_id +
                                  " is not loaded (its session ended); load one of its checkpoints into a new model");
      throw http_error(404, "unknown model " + model_id);
    }
    requests.count_naming(model_id, ctx.route);
    return it->second;
  }

  /// The trainable model of a live run (inside its queue, so creation has run).
  std::shared_ptr<trainable_model> loaded_model(const std::string& run_id) {
    auto it = models.find(run_id);
    if (it == models.end()) throw http_error(404, "model " + run_id + " was unloaded");
    if (!it->second.model) throw http_error(400, "model " + run_id + " failed to initialise");
    return it->second.model;
  }

  /// Drops a model from memory, failing what waits in its queue. Its run and checkpoints stay.
  void unload_model(const std::string& run_id, const std::string& why) {
    auto it = models.find(run_id);
    if (it == models.end()) return;
    for (auto& op : it->second.queue.take_pending()) futures.fail(*op.future, why, error_category::user);
    models.erase(it);
  }

  /// A new training run `model_id` in `session`: persisted, listed in the session, audited, and
  /// its live model (whose queue starts with operation 0: the creation, or a create-via-load).
  live_model& register_new_model(const request_context& ctx, session_state& session, const std::string& model_id,
                                 const std::string& base_name, const std::string& engine_name,
                                 std::shared_ptr<const base_model> base, const lora_config& lora,
                                 const std::optional<metadata_map>& user_metadata, boost::json::object audit_details) {
    run_record run;
    run.id = model_id;
    run.owner = ctx.tenant;
    run.base_model = base_name;
    run.engine_model = engine_name;
    run.lora = lora;
    run.user_metadata = user_metadata.value_or(metadata_map{});
    run.session_id = session.record.id;
    run.created = run.last_request_time = now_ts();
    storage.save(run);
    runs.emplace(model_id, run);
    sessions.add_training_run(session, model_id);
    requests.count_naming(model_id, ctx.route);
    audit_details["model_id"] = model_id;
    audit_details["session_id"] = session.record.id;
    audit_details["base_model"] = base_name;
    audit_details["lora_rank"] = lora.rank;
    audit.record(ctx.tenant, now_ts(), "model_create", std::nullopt, std::nullopt, std::move(audit_details));
    live_model m(model_id, ctx.tenant, session.record.id, std::move(base), options_.max_seq_id_gap);
    return models.emplace(model_id, std::move(m)).first->second;
  }

  /// Notes a request on the run (its last_request_time).
  void touch_run(const std::string& run_id) {
    if (auto it = runs.find(run_id); it != runs.end()) it->second.last_request_time = now_ts();
  }

  // ===== base models =============================================================================

  /// The engine model behind a requested base model name (its own names and the aliases), or 400.
  std::pair<std::string, std::shared_ptr<const base_model>> resolve_base_model(const std::string& name) const {
    auto target = name;
    if (auto a = options_.model_aliases.find(name); a != options_.model_aliases.end()) target = a->second;
    auto it = base_models.find(target);
    if (it == base_models.end()) {
      std::string available;
      for (const auto& [n, m] : base_models) available += (available.empty() ? "" : ", ") + n;
      for (const auto& [n, m] : options_.model_aliases) available += ", " + n;
      throw http_error(400, "unknown base model '" + name + "'; this server has: " + available);
    }
    return {target, it->second};
  }

  /// 400 unless `base_model` (an engine model or an alias) is the model checkpoint `path` of `run`
  /// was trained on.
  void check_base_model_matches(const std::string& base_model, const run_record& run, const tinker_path& path) const {
    const auto engine_name = resolve_base_model(base_model).first;
    if (engine_name != run.engine_model)
      throw http_error(400, "base_model '" + base_model + "' does not match model_path " + path.str() +
                                ", which was trained on " + run.base_model + " (" + run.engine_model +
                                "); give one of them, or matching ones");
  }

  // ===== samplers ================================================================================

  /// What a new sampler samples from: a sampler checkpoint `model_path` the tenant may read (with
  /// `base_model`, if given, agreeing with it), or the base model `base_model`.
  void set_sampler_weights(sampler_state& s, const std::string& tenant, const std::optional<std::string>& model_path,
                           const std::optional<std::string>& base_model) const {
    if (model_path) {
      const auto path = tinker_path::parse(*model_path);
      const auto& c = checkpoints.readable(tenant, path);
      const auto& run = runs.at(c.run_id);
      if (base_model) check_base_model_matches(*base_model, run, path);
      s.record.base_model = run.base_model;
      s.record.engine_model = run.engine_model;
      s.record.model_path = path.str();
      s.needs_weights = true;
    } else {
      s.record.base_model = *base_model;
      s.record.engine_model = resolve_base_model(*base_model).first;
    }
    s.base = base_models.at(s.record.engine_model);
  }

  /// Queues a sample request on `s` (remembering its seq_id, if any, for resubmissions) and
  /// starts its batch workers; a request on a route in fault_options::fail_routes fails at once.
  std::shared_ptr<future_entry> submit_sample(const request_context& ctx, sampler_state& s, sample_request req,
                                              const std::string& digest) {
    auto future = futures.create(ids.request_id(), ctx.tenant, request_type::sample);
    future->sampler_id = s.record.id;
    // Unpickled SDK clients number their samples from 1e9 x clone: the clone id is that block.
    future->cloned_sampler_id = req.seq_id ? *req.seq_id / 1'000'000'000 : 0;
    if (req.seq_id) {
      s.submissions.remember(*req.seq_id, digest, future->id);
      s.submissions.forget_oldest_beyond(65536);
    }
    if (auto injected = faults.failure_for(ctx.route)) {
      futures.fail(*future, std::move(injected->error), injected->category);
      return future;
    }
    const auto seed = req.sampling_params.seed ? *req.sampling_params.seed : ids.next();
    s.queue.push_back(pending_sample{future, std::move(req), seed});
    ++pending_samples_;
    pump_sampler(s.record.id);
    return future;
  }

  /// Fails every sample waiting on `s` with `why`.
  void fail_pending_samples(sampler_state& s, const std::string& why, error_category category) {
    for (auto& p : s.queue) futures.fail(*p.future, why, category);
    pending_samples_ -= s.queue.size();
    s.queue.clear();
  }

  /// Starts batch workers while there is work and compute to spare. A sampler whose weights are
  /// still on disk gets one worker, which loads them first.
  void pump_sampler(const std::string& sampler_id) {
    auto it = samplers.find(sampler_id);
    if (it == samplers.end()) return;
    auto& s = it->second;
    const std::size_t max_workers =
        s.needs_weights ? 1 : std::max<std::size_t>(1, options_.compute_threads ? options_.compute_threads : 2);
    while (!s.queue.empty() && s.running_batches < max_workers) {
      ++s.running_batches;
      asio::co_spawn(executor_, run_sample_batches(shared_from_this(), sampler_id), asio::detached);
      if (s.needs_weights) break;
    }
  }

  /// Sample requests accepted and not finished (asample answers 429 beyond max_pending_samples).
  std::size_t pending_sample_count() const noexcept { return pending_samples_; }
  /// Compute tasks that ran sample requests (several requests on the same weights share one).
  std::uint64_t sample_batch_count() const noexcept { return sample_batches_; }

  // ===== sessions and checkpoints ================================================================

  /// Ends session `id` for good: its models unload and its samplers' waiting samples fail.
  void expire_session(const std::string& id, const std::string& why) {
    auto* s = sessions.find(id);
    if (!s) return;
    sessions.mark_expired(*s);
    for (const auto& run_id : s->record.training_run_ids) unload_model(run_id, why);
    for (const auto& sampler_id : s->record.sampler_ids)
      if (auto it = samplers.find(sampler_id); it != samplers.end())
        fail_pending_samples(it->second, why, error_category::user);
  }

  /// Deletes a checkpoint (files and record), audited with `purpose` (user_request, ttl_expired).
  void delete_checkpoint(const checkpoint_record& c, const std::string& purpose) {
    // `c` may be the catalog's own record: audit before it is removed.
    audit.record(c.owner, now_ts(), "checkpoint_delete", c.path(), purpose);
    checkpoints.remove(c);
  }

  /// Exports a model's state to a checkpoint (files written off the I/O thread), then registers it.
  asio::awaitable<void> save_checkpoint(tinker_path path, std::string owner, std::optional<std::int64_t> ttl_seconds,
                                        std::optional<metadata_map> user_metadata, bool overwrite,
                                        bool with_optimizer) {
    if (!overwrite && checkpoints.contains(path))
      throw http_error(400, "checkpoint " + path.str() + " already exists (pass overwrite=true to replace it)");
    auto model = loaded_model(path.training_run_id);
    checkpoint_record record;
    record.run_id = path.training_run_id;
    record.kind = path.kind;
    record.name = path.name;
    record.owner = std::move(owner);
    record.time = now_ts();
    check_ttl(ttl_seconds);  // checked at submission too: bounded, so this cannot overflow
    if (ttl_seconds) record.expires_at = record.time + std::chrono::seconds(*ttl_seconds);
    record.user_metadata = std::move(user_metadata);
    if (const auto* existing = checkpoints.find(path)) record.is_public = existing->is_public;
    auto write = [this, model, record, with_optimizer] {
      return storage.write_checkpoint(record, to_named_files(model->export_checkpoint(with_optimizer)));
    };
    record.size_bytes = co_await compute(std::move(write));
    const auto owner_tenant = record.owner;
    boost::json::object details{{"checkpoint_type", std::string(to_string(type_of(path.kind)))},
                                {"size_bytes", record.size_bytes},
                                {"overwrite", overwrite && checkpoints.contains(path)}};
    checkpoints.add(std::move(record));
    audit.record(owner_tenant, now_ts(), "checkpoint_create", path,
                 path.kind == checkpoint_kind::weights ? "save_state" : "save_weights_for_sampler", std::move(details));
    record_run_usage(path.training_run_id, usage_kind::checkpoint, 1);
  }

  // ===== usage ===================================================================================

  /// Usage of `tenant` in the current hour of the engine clock.
  void record_usage(const std::string& tenant, const std::string& session_id, const std::string& base_model,
                    usage_kind kind, std::int64_t amount) {
    usage.record(tenant, options_.clock(), session_id, base_model, kind, amount);
  }

  /// Usage of the run `run_id` (its owner, session and base model).
  void record_run_usage(const std::string& run_id, usage_kind kind, std::int64_t amount) {
    auto it = runs.find(run_id);
    if (it != runs.end()) record_usage(it->second.owner, it->second.session_id, it->second.base_model, kind, amount);
  }

private:
  // Declared first: the components below are built from them.
  asio::any_io_executor executor_;
  engine_options options_;
  bool owns_data_dir_ = false;
  std::filesystem::path data_dir_;

public:
  // ===== components (single-threaded: used on the I/O executor) ==================================

  store storage;
  id_generator ids;
  tenant_directory tenants;
  session_table sessions;
  checkpoint_catalog checkpoints;
  future_table futures;
  fault_injector faults;
  request_counters requests;
  audit_log audit;
  usage_meter usage;

  std::map<std::string, std::shared_ptr<const base_model>> base_models;
  std::map<std::string, run_record> runs;
  std::map<std::string, live_model> models;
  std::map<std::string, sampler_state> samplers;
  /// Sampler ids an accepted unnamed save_weights_for_sampler will create when it runs. Taken at
  /// submission, so a second request naming the same sampling_session_seq_id (or a
  /// create_sampling_session) cannot be accepted for the same id before the first one has run.
  std::set<std::string> reserved_sampler_ids;

private:
  template <class F>
  static asio::awaitable<std::invoke_result_t<F>> run_on_pool(F f) {
    if constexpr (std::is_void_v<std::invoke_result_t<F>>) {
      f();
      co_return;
    } else {
      co_return f();
    }
  }

  void use_up_rejected_seq(const request_context& ctx, const std::string& why) {
    const auto t = body_target_of(ctx);
    if (!t.model_id || !t.seq_id || *t.seq_id <= 0) return;
    auto it = models.find(*t.model_id);
    if (it == models.end() || it->second.owner != ctx.tenant) return;
    use_up_seq(it->second, *t.seq_id, why);
  }

  /// Runs a model's operations strictly in seq_id order, one at a time, starting with `op`.
  static asio::awaitable<void> run_model_ops(std::shared_ptr<engine_core> self, std::string run_id, queued_op op) {
    while (true) {
      if (op.injected)
        self->futures.fail(*op.future, std::move(op.injected->error), op.injected->category);
      else
        co_await self->settle(op.future, std::move(op.run));
      auto it = self->models.find(run_id);
      if (it == self->models.end()) co_return;  // unloaded meanwhile
      it->second.queue.finished_running();
      auto next = it->second.queue.next_to_run();
      if (!next) co_return;
      op = std::move(*next);
    }
  }

  /// A sampler's batch worker: takes up to sample_batch_size requests at a time (loading the
  /// sampler's weights first when they are still on disk) until its queue is empty.
  static asio::awaitable<void> run_sample_batches(std::shared_ptr<engine_core> self, std::string sampler_id) {
    auto find = [&]() -> sampler_state* {
      auto it = self->samplers.find(sampler_id);
      return it == self->samplers.end() ? nullptr : &it->second;
    };
    while (auto* s = find()) {
      if (s->queue.empty()) {
        --s->running_batches;
        co_return;
      }
      if (s->needs_weights) {
        std::shared_ptr<const lora_weights> loaded;
        try {
          const auto& c = self->checkpoints.readable(s->record.owner, tinker_path::parse(*s->record.model_path));
          auto base = s->base;
          auto load = [self, c, base] {
            return load_lora_weights(to_checkpoint_files(self->checkpoints.files(c, false)), *base);
          };
          loaded = co_await self->compute(std::move(load));
        } catch (const std::exception& e) {
          // The checkpoint is gone (deleted, expired) or unreadable: fail what waits.
          s = find();
          if (!s) co_return;
          self->fail_pending_samples(*s, std::string("cannot load sampler weights: ") + e.what(), error_category::user);
          --s->running_batches;
          co_return;
        }
        s = find();  // re-found: the map may have changed while we were away
        if (!s) co_return;
        s->weights = std::move(loaded);
        s->needs_weights = false;
        self->pump_sampler(sampler_id);  // weights are in: let more workers in
      }
      std::vector<pending_sample> batch;
      const auto n = std::min(s->queue.size(), std::max<std::size_t>(1, self->options_.sample_batch_size));
      batch.reserve(n);
      for (std::size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(s->queue.front()));
        s->queue.pop_front();
      }
      auto base = s->base;
      auto weights = s->weights;
      const auto record = s->record;  // whose usage this is (the sampler may go while the batch runs)
      ++self->sample_batches_;
      auto shared_batch = std::make_shared<std::vector<pending_sample>>(std::move(batch));
      // Each job's result (with its protobuf encoding, made here on the compute pool) or error, so
      // that one bad request does not fail its batch-mates.
      using outcome = std::variant<future_payload, std::pair<std::string, error_category>>;
      auto run_batch = [base, weights, shared_batch] {
        std::vector<sample_job> jobs;
        jobs.reserve(shared_batch->size());
        for (const auto& p : *shared_batch) jobs.push_back(sample_job{&p.request, p.seed});
        auto payload = [](sample_response r) {
          auto bytes = std::make_shared<const std::string>(proto::encode(r));
          return future_payload(future_result(std::move(r)), std::move(bytes));
        };
        std::vector<outcome> out;
        out.reserve(jobs.size());
        try {
          for (auto& r : sample_batch(*base, weights.get(), jobs)) out.emplace_back(payload(std::move(r)));
          return out;
        } catch (const std::exception&) {
          out.clear();  // retry one by one to find the culprit(s)
        }
        for (const auto& job : jobs) {
          try {
            out.emplace_back(payload(std::move(sample_batch(*base, weights.get(), std::span(&job, 1)).at(0))));
          } catch (const tinker::invalid_argument& e) {
            out.emplace_back(std::pair{std::string(e.what()), error_category::user});
          } catch (const std::exception& e) {
            out.emplace_back(std::pair{std::string(e.what()), error_category::server});
          }
        }
        return out;
      };
      auto outcomes = co_await self->compute(std::move(run_batch));
      // Fault injection: the results are held back for the simulated step time.
      if (const auto hold = self->faults.sample_step_time(); hold.count() > 0) co_await self->wait_for(hold);
      for (std::size_t i = 0; i < shared_batch->size(); ++i) {
        const auto& job = (*shared_batch)[i];
        auto& f = *job.future;
        if (auto* r = std::get_if<future_payload>(&outcomes[i])) {
          // Billed: the prompt once per request (not per sample), and every sampled token.
          if (const auto* resp = std::get_if<sample_response>(&r->value)) {
            std::int64_t sampled = 0;
            for (const auto& seq : resp->sequences) sampled += static_cast<std::int64_t>(seq.tokens.size());
            self->record_usage(record.owner, record.session_id, record.base_model, usage_kind::sampling_prefill,
                               static_cast<std::int64_t>(job.request.prompt.length()));
            self->record_usage(record.owner, record.session_id, record.base_model, usage_kind::sampling_sample,
                               sampled);
          }
          self->futures.complete(f, std::move(*r));
        } else {
          auto& [message, category] = std::get<1>(outcomes[i]);
          self->futures.fail(f, message, category);
        }
      }
      self->pending_samples_ -= shared_batch->size();
    }
  }

  std::filesystem::path prepare_data_dir(const std::string& configured) {
    if (!configured.empty()) {
      std::filesystem::create_directories(configured);
      return configured;
    }
    auto dir = std::filesystem::temp_directory_path() / ("tinker-local-" + random_hex(8));
    std::filesystem::create_directories(dir);
    owns_data_dir_ = true;
    return dir;
  }

  void load_records() {
    sessions.load(storage.load_sessions(), options_.clock());
    audit.load();
    for (auto& [run, run_checkpoints] : storage.load_runs(options_.log)) {
      for (auto& c : run_checkpoints) checkpoints.add(std::move(c));
      runs.emplace(run.id, std::move(run));
    }
    for (auto& s : storage.load_samplers()) {
      sampler_state st;
      st.record = std::move(s);
      auto base = base_models.find(st.record.engine_model);
      if (base == base_models.end()) continue;
      st.base = base->second;
      st.needs_weights = st.record.model_path.has_value();
      st.weights_lost = st.record.ephemeral;
      samplers.emplace(st.record.id, std::move(st));
    }
  }

  void schedule_maintenance() {
    maintenance_timer_.expires_after(options_.maintenance_interval);
    maintenance_timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
      auto self = weak.lock();
      if (ec || !self || self->stopping_) return;
      self->run_maintenance();
      self->schedule_maintenance();
    });
  }

  asio::thread_pool pool_;
  asio::steady_timer maintenance_timer_;
  bool stopping_ = false;
  std::uint16_t listening_port_ = 0;
  std::size_t pending_samples_ = 0;
  std::uint64_t sample_batches_ = 0;
};

}  // namespace tinker::local::detail
