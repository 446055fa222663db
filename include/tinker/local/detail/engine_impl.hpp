// The local engine's implementation: one object owning the records, the loaded models and
// samplers, the futures and the HTTP server. All state lives on the I/O executor (one thread);
// training and sampling run on a compute thread pool and hand their results back.
//
// Endpoint handlers are member functions defined in service_endpoints.hpp, training_endpoints.hpp,
// sampling_endpoints.hpp and rest_endpoints.hpp.
#pragma once

#include <tinker/error.hpp>
#include <tinker/json.hpp>
#include <tinker/local/detail/crypto.hpp>
#include <tinker/local/detail/engine_state.hpp>
#include <tinker/local/detail/futures.hpp>
#include <tinker/local/detail/ids.hpp>
#include <tinker/local/detail/records.hpp>
#include <tinker/local/detail/request_limits.hpp>
#include <tinker/local/detail/routing.hpp>
#include <tinker/local/detail/store.hpp>
#include <tinker/local/engine_options.hpp>
#include <tinker/local/http_server.hpp>
#include <tinker/local/request_record.hpp>
#include <tinker/proto.hpp>
#include <tinker/proto/detail/reader.hpp>
#include <tinker/tinker_path.hpp>
#include <tinker/types.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace tinker::local::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;

/// The longest TTL a checkpoint may have (10 years; protocol-delta §5.3), in seconds.
inline constexpr std::int64_t max_ttl_seconds = max_checkpoint_ttl_seconds;
/// The longest long_poll_hold an engine accepts (below the SDK's 45 s per-poll timeout).
inline constexpr std::chrono::milliseconds max_long_poll_hold{40'000};

/// The model and seq_id a training request's body names, decoded best-effort (for requests that
/// are rejected before or while being decoded, and for the request observer).
struct body_target {
  std::optional<std::string> model_id;
  std::optional<std::int64_t> seq_id;
  std::optional<std::string> request_id;
};

/// Everything a handler knows about the request it serves.
struct request_context {
  http_request& request;
  parsed_target target;
  std::string route;   ///< route name, e.g. "asample"
  std::string tenant;  ///< digest of the API key ("" for unauthenticated routes)
};

/// A training request's seq_id as the engine queues it. Clients send positive seq_ids; 0 or none
/// means "after everything queued". (A plain struct rather than std::optional: GCC 12 at -O2 warns
/// "may be used uninitialized" about optional<int64_t> along these exception paths.)
struct requested_seq {
  std::int64_t value = 0;
  bool given = false;

  /// As a client sent it: only positive ids are ids, 0 is "none". A negative one is refused (400
  /// naming seq_id) rather than read as "none": it is a client bug, and queueing the request after
  /// everything else would hide it.
  static requested_seq from_client(std::int64_t id) {
    if (id < 0) throw http_error(400, "seq_id must not be negative, got " + std::to_string(id));
    return {id, id > 0};
  }
  static requested_seq exactly(std::int64_t id) noexcept { return {id, true}; }
  static requested_seq none() noexcept { return {}; }
};

class engine_impl : public std::enable_shared_from_this<engine_impl> {
public:
  engine_impl(asio::any_io_executor io, engine_options options)
      : io_(std::move(io)),
        options_(checked_options(std::move(options))),
        data_dir_(prepare_data_dir(options_.data_dir)),
        store_(data_dir_),
        ids_(options_.seed, store_.epoch()),
        pool_(options_.compute_threads ? options_.compute_threads
                                       : std::max<std::size_t>(1, std::thread::hardware_concurrency())),
        maintenance_timer_(io_),
        fault_rng_(options_.faults.seed),
        faults_since_(std::chrono::steady_clock::now()) {
    for (const auto& spec : default_base_models()) base_models_.emplace(spec.name, base_model::create(spec));
    load_records();
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
    for (const auto& [alias, target] : o.model_aliases)
      if (std::none_of(models.begin(), models.end(), [&](const auto& m) { return m.name == target; }))
        throw tinker::invalid_argument("model alias '" + alias + "' maps to unknown engine model '" + target + "'");
    return o;
  }

  ~engine_impl() {
    pool_.join();
    if (owns_data_dir_) {
      std::error_code ec;
      std::filesystem::remove_all(data_dir_, ec);
    }
  }

  void start() {
    http_server_options so;
    so.host = options_.host;
    so.port = options_.port;
    so.max_body_bytes = options_.max_body_bytes;
    so.tls_cert_file = options_.tls_cert_file;
    so.tls_key_file = options_.tls_key_file;
    so.gzip_executor = pool_.get_executor();  // large answers are compressed off the I/O thread
    std::weak_ptr<engine_impl> weak = shared_from_this();
    server_ = std::make_unique<http_server>(io_, so,
                                            [weak](http_request& req) -> asio::awaitable<std::optional<http_response>> {
                                              auto self = weak.lock();
                                              if (!self) co_return std::nullopt;
                                              co_return co_await self->handle(req);
                                            });
    server_->start();
    schedule_maintenance();
  }

  void stop() {
    if (stopped_) return;
    stopped_ = true;
    if (server_) server_->stop();
    maintenance_timer_.cancel();
  }

  void join_compute() {
    pool_.stop();
    pool_.join();
  }

  std::uint16_t port() const { return server_ ? server_->port() : 0; }

  std::string base_url() const {
    const bool tls = options_.tls_cert_file && options_.tls_key_file;
    const auto& host = options_.host.find(':') != std::string::npos ? "[" + options_.host + "]" : options_.host;
    return std::string(tls ? "https://" : "http://") + host + ":" + std::to_string(port());
  }

  void set_faults(fault_options f) {
    options_.faults = std::move(f);
    fault_rng_.seed(options_.faults.seed);
    faults_since_ = std::chrono::steady_clock::now();
  }

  /// Runs expiry now (sessions, checkpoint TTLs, old futures) against the engine clock.
  void run_maintenance() {
    const auto now = options_.clock();
    std::vector<std::string> expired;
    for (auto& [id, s] : sessions_)
      if (!s.expired && !s.record.finished_at && now - s.last_heartbeat > options_.session_timeout)
        expired.push_back(id);
    for (const auto& id : expired)
      expire_session(
          id, "session expired: no heartbeat for " + std::to_string(options_.session_timeout.count() / 1000) + " s");
    expire_checkpoints(now);
    futures_.purge(std::chrono::steady_clock::now() - options_.future_retention);
    // Usage older than the retention is dropped (it lives in memory only).
    const auto oldest_hour = hour_of(now - usage_retention);
    std::erase_if(usage_, [&](const auto& kv) { return kv.first.hour < oldest_hour; });
  }

  // Introspection for tests and benchmarks.
  std::size_t future_count() const noexcept { return futures_.size(); }
  std::size_t loaded_model_count() const noexcept { return models_.size(); }
  std::size_t pending_sample_count() const noexcept { return pending_samples_; }
  /// Completion logs of batched polling, one per (sampler, clone) that completed something.
  std::size_t completion_log_count() const noexcept { return futures_.log_count(); }
  /// Compute tasks that ran sample requests (several requests on the same weights share one).
  std::uint64_t sample_batch_count() const noexcept { return sample_batches_; }
  /// Requests received per route name (for tests: how often a client retried).
  std::uint64_t request_count(const std::string& route) const {
    auto it = route_counts_.find(route);
    return it == route_counts_.end() ? 0 : it->second;
  }
  const http_server* server() const noexcept { return server_.get(); }
  const engine_options& options() const noexcept { return options_; }
  const std::filesystem::path& data_dir() const noexcept { return data_dir_; }

private:
  // ===== request dispatch =====================================================================

  asio::awaitable<std::optional<http_response>> handle(http_request& req) {
    expire_checkpoints(options_.clock());
    request_context ctx{req, parsed_target::parse(std::string_view(req.target().data(), req.target().size())), {}, {}};
    const auto* route = find_route(req.method(), ctx.target);
    if (route) ctx.route = std::string(route->name);
    ++route_counts_[ctx.route];
    if (route && options_.on_request) observe(ctx);
    try {
      if (ctx.target.problem) throw http_error(400, *ctx.target.problem);
      if (!route)
        throw http_error(404, "no such endpoint: " + std::string(req.method_string()) + " " +
                                  std::string(ctx.target.segments.empty() ? "/" : "/" + join(ctx.target.segments)));
      if (auto injected = co_await inject_faults(ctx)) co_return std::move(*injected);
      if (route->authenticated) ctx.tenant = authenticate(req);
      co_return co_await dispatch(ctx);
    } catch (const http_error& e) {
      co_return error_response(req, e.status(), e.what());
    } catch (const tinker::protocol_error& e) {
      co_return error_response(req, 400, e.what());
    } catch (const tinker::invalid_argument& e) {
      co_return error_response(req, 400, e.what());
    } catch (const std::exception& e) {
      co_return error_response(req, 500, std::string("internal error: ") + e.what());
    }
  }

  /// Deletes every checkpoint whose TTL has run out by `now` (audited as ttl_expired), and notes
  /// when the next one will. Runs before every request as well as in the maintenance sweep: a
  /// checkpoint past its expires_at is never listed, loaded, sampled from or downloaded, however
  /// long ago the last sweep was.
  void expire_checkpoints(std::chrono::system_clock::time_point now) {
    if (!next_checkpoint_expiry_ || to_system(*next_checkpoint_expiry_) > now) return;
    std::vector<checkpoint_record> dead;
    next_checkpoint_expiry_.reset();
    for (const auto& [key, c] : checkpoints_) {
      if (!c.expires_at) continue;
      if (to_system(*c.expires_at) <= now)
        dead.push_back(c);
      else
        note_checkpoint_expiry(c);
    }
    for (const auto& c : dead) delete_checkpoint(c, "ttl_expired");
  }

  /// Keeps next_checkpoint_expiry_ at or before `c`'s expiry (call whenever an expires_at is set).
  void note_checkpoint_expiry(const checkpoint_record& c) {
    if (c.expires_at && (!next_checkpoint_expiry_ || *c.expires_at < *next_checkpoint_expiry_))
      next_checkpoint_expiry_ = c.expires_at;
  }

  static std::string join(const std::vector<std::string>& segments) {
    std::string out;
    for (const auto& s : segments) out += (out.empty() ? "" : "/") + s;
    return out;
  }

  /// Reports the request to options_.on_request (never the credentials).
  void observe(const request_context& ctx) const {
    try {
      request_record r;
      r.route = ctx.route;
      r.method = std::string(ctx.request.method_string());
      r.target = std::string(ctx.request.target());
      for (const auto& field : ctx.request) {
        std::string name(field.name_string());
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (name == "x-api-key" || name == "authorization") continue;
        auto [it, inserted] = r.headers.emplace(name, std::string(field.value()));
        if (!inserted) it->second += ", " + std::string(field.value());
      }
      if (names_model_op(ctx.route) || ctx.route == "asample" || ctx.route == "retrieve_future") {
        auto t = body_target_of(ctx);
        r.model_id = std::move(t.model_id);
        r.seq_id = t.seq_id;
        r.request_id = std::move(t.request_id);
      }
      r.body = ctx.request.body();
      options_.on_request(r);
    } catch (...) {
      // an observer's failure never affects the request
    }
  }

  /// Routes whose requests name (model_id, seq_id) and queue on that model.
  static bool names_model_op(std::string_view route) {
    return route == "forward_backward" || route == "forward" || route == "optim_step" || route == "save_weights" ||
           route == "save_weights_for_sampler" || route == "load_weights" || route == "unload_model";
  }

  /// What the body names (model_id, seq_id, request_id), decoded best-effort: never throws.
  static body_target body_target_of(const request_context& ctx) noexcept {
    body_target t;
    try {
      const auto& body = ctx.request.body();
      if (ctx.route == "forward_backward" && content_type_is(ctx.request, "application/x-protobuf")) {
        // ForwardBackwardRequest: model_id = 1 (string), seq_id = 2 (int32); other fields skipped.
        namespace pd = tinker::proto::detail;
        pd::reader r(body);
        while (!r.at_end()) {
          const auto tag = r.read_tag();
          if (tag.number == 1 && tag.type == pd::wire_type::length_delimited)
            t.model_id = std::string(r.read_length_delimited());
          else if (tag.number == 2 && tag.type == pd::wire_type::varint)
            t.seq_id = pd::read_int32_field(r, tag, "seq_id");
          else
            r.skip(tag);
        }
        return t;
      }
      boost::system::error_code ec;
      const auto v = boost::json::parse(body, ec);
      if (ec || !v.is_object()) return t;
      const auto& o = v.as_object();
      if (auto* m = o.if_contains("model_id"); m && m->is_string()) t.model_id = std::string(m->as_string());
      if (auto* q = o.if_contains("seq_id")) {
        if (q->is_int64())
          t.seq_id = q->as_int64();
        else if (q->is_uint64() &&
                 q->as_uint64() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
          t.seq_id = static_cast<std::int64_t>(q->as_uint64());
      }
      if (auto* id = o.if_contains("request_id"); id && id->is_string()) t.request_id = std::string(id->as_string());
    } catch (...) {
      // best-effort: a malformed body names nothing (what was read so far is kept)
    }
    return t;
  }

  asio::awaitable<http_response> dispatch(request_context& ctx) {
    const auto& r = ctx.route;
    // service
    if (r == "healthz") co_return json_response(ctx, 200, boost::json::value_from(health_response{}));
    if (r == "client_config") co_return handle_client_config(ctx);
    if (r == "dynamic_config") co_return json_response(ctx, 200, boost::json::value_from(dynamic_config_response{}));
    if (r == "telemetry") co_return handle_telemetry(ctx);
    if (r == "get_server_capabilities") co_return handle_capabilities(ctx);
    // sessions
    if (r == "create_session") co_return handle_create_session(ctx);
    if (r == "session_heartbeat") co_return handle_heartbeat(ctx);
    if (r == "create_sampling_session") co_return handle_create_sampling_session(ctx);
    if (r == "finish_session") co_return handle_finish_session(ctx);
    // training
    if (r == "create_model") co_return handle_create_model(ctx);
    if (r == "get_info") co_return handle_get_info(ctx);
    if (r == "unload_model") co_return handle_unload_model(ctx);
    if (r == "forward_backward" || r == "forward")
      co_return consume_seq_if_rejected(ctx, [&] { return handle_forward_backward(ctx); });
    if (r == "optim_step") co_return consume_seq_if_rejected(ctx, [&] { return handle_optim_step(ctx); });
    if (r == "save_weights") co_return consume_seq_if_rejected(ctx, [&] { return handle_save_weights(ctx); });
    if (r == "save_weights_for_sampler")
      co_return consume_seq_if_rejected(ctx, [&] { return handle_save_weights_for_sampler(ctx); });
    if (r == "load_weights") co_return consume_seq_if_rejected(ctx, [&] { return handle_load_weights(ctx); });
    // sampling
    if (r == "asample") co_return handle_asample(ctx);
    if (r == "sample") co_return co_await handle_sync_sample(ctx);
    if (r == "get_sampler") co_return handle_get_sampler(ctx);
    // futures
    if (r == "retrieve_future") co_return co_await handle_retrieve_future(ctx);
    if (r == "retrieve_futures") co_return co_await handle_retrieve_futures(ctx);
    // REST
    if (r == "weights_info") co_return handle_weights_info(ctx);
    if (r == "list_training_runs") co_return handle_list_training_runs(ctx);
    if (r == "get_training_run") co_return handle_get_training_run(ctx);
    if (r == "list_checkpoints") co_return handle_list_checkpoints(ctx);
    if (r == "list_user_checkpoints") co_return handle_list_user_checkpoints(ctx);
    if (r == "delete_checkpoint") co_return handle_delete_checkpoint(ctx);
    if (r == "publish_checkpoint" || r == "unpublish_checkpoint")
      co_return handle_publish(ctx, r == "publish_checkpoint");
    if (r == "set_checkpoint_ttl") co_return handle_set_ttl(ctx);
    if (r == "checkpoint_archive") co_return handle_archive(ctx);
    if (r == "download") co_return co_await handle_download(ctx);
    if (r == "list_sessions") co_return handle_list_sessions(ctx);
    if (r == "get_session") co_return handle_get_session(ctx);
    if (r == "set_session_project") co_return handle_set_session_project(ctx);
    if (r == "trace_export") co_return handle_trace_export(ctx);
    if (r == "trace_download") co_return handle_trace_download(ctx);
    if (r == "audit") co_return handle_audit(ctx);
    if (r == "billing_usage") co_return handle_billing_usage(ctx);
    throw http_error(404, "no such endpoint");
  }

  // ===== authentication =========================================================================

  /// The tenant of the request's API key (X-API-Key, or Authorization: Bearer). Never echoes the key.
  std::string authenticate(const http_request& req) const {
    std::string key;
    if (auto it = req.find("X-API-Key"); it != req.end()) key = std::string(it->value());
    if (key.empty())
      if (auto it = req.find(http::field::authorization); it != req.end()) {
        const std::string_view v(it->value().data(), it->value().size());
        if (v.size() > 7 && (v.substr(0, 7) == "Bearer " || v.substr(0, 7) == "bearer "))
          key = std::string(v.substr(7));
      }
    if (key.empty()) throw http_error(401, "missing API key: send it in the X-API-Key header");
    auto tenant = tenant_of_key(key);
    if (!tenant) throw http_error(401, "invalid API key");
    return *tenant;
  }

  /// The tenant of an API key of this engine (open mode: any tml- key; allowlist mode: a listed
  /// key), or nullopt. The key itself is never kept.
  std::optional<std::string> tenant_of_key(std::string_view key) const {
    const bool known = options_.api_keys.empty() ? key.rfind("tml-", 0) == 0 && key.size() > 4
                                                 : std::find(options_.api_keys.begin(), options_.api_keys.end(), key) !=
                                                       options_.api_keys.end();
    if (!known) return std::nullopt;
    return "tenant-" + sha256_hex(key).substr(0, 16);
  }

  /// Whose checkpoints a load may read: the caller's, or, with a weights_access_token (a
  /// credential of the account owning the checkpoint, protocol.md §8.8), that key's tenant. An
  /// invalid token is refused (403) without echoing it.
  std::string checkpoint_reader(const request_context& ctx,
                                const std::optional<std::string>& weights_access_token) const {
    if (!weights_access_token) return ctx.tenant;
    if (weights_access_token->empty())
      throw http_error(403, "weights_access_token is empty; omit it to load with your own API key");
    auto tenant = tenant_of_key(*weights_access_token);
    if (!tenant)
      throw http_error(403,
                       "weights_access_token is not a valid API key of this server: it must be a credential of the "
                       "account that owns the checkpoint");
    return *tenant;
  }

  // ===== fault injection =========================================================================

  bool faults_apply_to(const std::string& route) const {
    const auto& f = options_.faults;
    if (route == "healthz" || route == "download" || route == "trace_download") return false;
    return f.error_routes.empty() || f.error_routes.contains(route);
  }

  asio::awaitable<std::optional<std::optional<http_response>>> inject_faults(request_context& ctx) {
    const auto& f = options_.faults;
    if (!f.any()) co_return std::nullopt;
    auto latency = f.route_latency.find(ctx.route);
    if (latency == f.route_latency.end()) latency = f.route_latency.find("*");
    if (latency != f.route_latency.end() && latency->second.count() > 0) co_await wait_for(latency->second);
    if (!faults_apply_to(ctx.route)) co_return std::nullopt;
    std::uniform_real_distribution<double> u(0.0, 1.0);
    if (f.fraction_drop > 0 && u(fault_rng_) < f.fraction_drop) co_return std::optional<http_response>{};  // drop
    if (f.fraction_429 > 0 && u(fault_rng_) < f.fraction_429) {
      auto res = error_response(ctx.request, 429, "rate limited (injected fault)");
      res.set(http::field::retry_after, std::to_string(f.retry_after.count()));
      co_return std::optional<http_response>(std::move(res));
    }
    if (f.fraction_402 > 0 && u(fault_rng_) < f.fraction_402)
      co_return std::optional<http_response>(
          error_response(ctx.request, 402, "billing: payment required (injected fault)"));
    if (f.fraction_500 > 0 && u(fault_rng_) < f.fraction_500)
      co_return std::optional<http_response>(error_response(ctx.request, 500, "internal error (injected fault)"));
    if (f.fraction_503 > 0 && u(fault_rng_) < f.fraction_503)
      co_return std::optional<http_response>(error_response(ctx.request, 503, "unavailable (injected fault)"));
    co_return std::nullopt;
  }

  /// The paused queue state and how long the current pause still lasts, if in a pause window.
  std::optional<std::pair<queue_state, std::chrono::steady_clock::duration>> current_pause() const {
    const auto& f = options_.faults;
    if (!f.pause_state || f.pause_period.count() <= 0 || f.pause_duration.count() <= 0) return std::nullopt;
    const auto since = std::chrono::steady_clock::now() - faults_since_;
    // Each period starts active for (period - duration), then pauses for `duration`.
    const auto in_period = since % f.pause_period;
    const auto active_part = f.pause_period - f.pause_duration;
    if (in_period < active_part) return std::nullopt;
    return std::pair{*f.pause_state, f.pause_period - in_period};
  }

  /// The failure fault injection puts in place of running a request on `route`, if any.
  std::optional<injected_failure> injected_failure_for(std::string_view route) const {
    const auto& routes = options_.faults.fail_routes;
    auto it = routes.find(std::string(route));
    if (it == routes.end()) return std::nullopt;
    return injected_failure{"injected failure: " + std::string(route) + " is in fault_options.fail_routes (category " +
                                std::string(to_string(it->second)) + ")",
                            it->second};
  }

  asio::awaitable<void> wait_for(std::chrono::steady_clock::duration d) {
    asio::steady_timer t(io_, d);
    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
  }

  // ===== responses ===============================================================================

  static http_response make_response(const http_request& req, unsigned status) {
    http_response res{static_cast<http::status>(status), req.version()};
    res.keep_alive(req.keep_alive());
    res.set(http::field::server, "tinker-local");
    return res;
  }

  static http_response json_response(const request_context& ctx, unsigned status, const boost::json::value& v) {
    auto res = make_response(ctx.request, status);
    res.set(http::field::content_type, "application/json");
    res.body() = json::dump(v);
    res.prepare_payload();
    return res;
  }

  static http_response error_response(const http_request& req, unsigned status, std::string detail) {
    auto res = make_response(req, status);
    res.set(http::field::content_type, "application/json");
    res.body() = json::to_json(error_response_body(std::move(detail)));
    res.prepare_payload();
    return res;
  }

  static tinker::error_response error_response_body(std::string detail) {
    return tinker::error_response{std::move(detail)};
  }

  static http_response bytes_response(const request_context& ctx, const char* content_type, const std::string& bytes) {
    auto res = make_response(ctx.request, 200);
    res.set(http::field::content_type, content_type);
    res.body() = bytes;
    res.prepare_payload();
    return res;
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

  /// 400 unless `ttl` (seconds) is absent or in [1, 10 years].
  static void check_ttl(const std::optional<std::int64_t>& ttl, std::string_view what = "ttl_seconds") {
    if (!ttl) return;
    if (*ttl <= 0) throw http_error(400, std::string(what) + " must be positive, got " + std::to_string(*ttl));
    if (*ttl > max_ttl_seconds)
      throw http_error(400, std::string(what) + " must be at most 10 years (" + std::to_string(max_ttl_seconds) +
                                " s), got " + std::to_string(*ttl));
  }

  static http_response future_response(const request_context& ctx, const future_entry& f,
                                       std::optional<std::string> model_id = std::nullopt,
                                       std::optional<std::vector<std::string>> sequence_ids = std::nullopt) {
    return json_response(
        ctx, 200, boost::json::value_from(untyped_api_future{f.id, std::move(model_id), std::move(sequence_ids)}));
  }

  // ===== request bodies ==========================================================================

  template <class T>
  static T decode_json_body(const request_context& ctx) {
    return json::from_json<T>(ctx.request.body());
  }

  /// A body whose `user_metadata` is string -> any (protocol.md §4.1, §8.1; the SDK sends
  /// strings): non-string values are kept as their JSON text, which the typed decoder
  /// (string -> string) accepts.
  template <class T>
  static T decode_json_body_with_metadata(const request_context& ctx) {
    auto body = json::parse(ctx.request.body(), json::detail::type_name<T>::value);
    if (auto* o = body.if_object())
      if (auto* meta = o->if_contains("user_metadata"); meta && meta->is_object())
        for (auto& [key, value] : meta->as_object())
          if (!value.is_string()) value = json::dump(value);
    return json::from_value<T>(body);
  }

  static bool content_type_is(const http_request& req, std::string_view type) {
    auto it = req.find(http::field::content_type);
    return it != req.end() &&
           std::string_view(it->value().data(), it->value().size()).find(type) != std::string_view::npos;
  }

  static bool accepts_protobuf(const http_request& req) {
    auto it = req.find(http::field::accept);
    return it != req.end() && std::string_view(it->value().data(), it->value().size()).find("application/x-protobuf") !=
                                  std::string_view::npos;
  }

  // ===== compute =================================================================================

  /// Runs `f` on the compute pool and resumes on the I/O executor with its result (or exception).
  /// Call sites name their lambda and move it in: GCC 12 destroys lambda and aggregate temporaries
  /// that appear inside a co_await expression twice.
  template <class F>
  asio::awaitable<std::invoke_result_t<F>> compute(F f) {
    return asio::co_spawn(pool_.get_executor(), run_on_pool(std::move(f)), asio::use_awaitable);
  }

  template <class F>
  static asio::awaitable<std::invoke_result_t<F>> run_on_pool(F f) {
    if constexpr (std::is_void_v<std::invoke_result_t<F>>) {
      f();
      co_return;
    } else {
      co_return f();
    }
  }

  /// Completes or fails `future` with what `work` produces, mapping exceptions to categories:
  /// bad input is the user's fault, anything else the server's.
  asio::awaitable<void> settle(std::shared_ptr<future_entry> future,
                               std::function<asio::awaitable<future_payload>()> work) {
    try {
      auto result = co_await work();
      futures_.complete(*future, std::move(result));
    } catch (const http_error& e) {
      futures_.fail(*future, e.what(), e.status() < 500 ? error_category::user : error_category::server);
    } catch (const tinker::invalid_argument& e) {
      futures_.fail(*future, e.what(), error_category::user);
    } catch (const tinker::protocol_error& e) {
      futures_.fail(*future, e.what(), error_category::user);
    } catch (const std::exception& e) {
      futures_.fail(*future, e.what(), error_category::server);
    }
  }

  // ===== models and their seq_id queues ========================================================

  /// Queues `run` as operation `seq_id` of `model` (or after the last one when the client sent
  /// no seq_id); a resubmission of an already-seen (seq_id, body) returns the original future.
  /// Requests on a route in fault_options::fail_routes are queued to fail instead of running.
  std::shared_ptr<future_entry> enqueue_model_op(std::string_view route, live_model& m, requested_seq seq_id,
                                                 const std::string& digest, request_type type,
                                                 std::function<asio::awaitable<future_payload>()> run) {
    const std::int64_t seq = seq_id.given ? seq_id.value : std::max(m.last_assigned_seq, m.next_seq - 1) + 1;
    if (seq_id.given) {
      if (auto original = m.submissions.check(seq, digest, "seq_id")) {
        if (auto f = futures_.find(*original)) return f;
        // The identical request ran and its result was forgotten (future_retention): it cannot
        // run twice, and there is nothing to return.
        throw http_error(400, "seq_id " + std::to_string(seq) + " already ran on model " + m.run_id +
                                  "; its result expired (results are kept " +
                                  std::to_string(options_.future_retention.count() / 1000) + " s)");
      }
      if (seq < m.next_seq)
        throw http_error(400, "seq_id " + std::to_string(seq) + " already ran on model " + m.run_id +
                                  " (the next expected seq_id is " + std::to_string(m.next_seq) + ")");
      if (seq < 0) throw http_error(400, "seq_id must not be negative, got " + std::to_string(seq));
      // Queued but not remembered: a refused request's seq_id, used up by skip_seq.
      if (m.pending.contains(seq))
        throw http_error(400, "seq_id " + std::to_string(seq) + " on model " + m.run_id +
                                  " was already used by a request that was refused; send the next seq_id");
      check_seq_window(m, seq);
    }
    m.last_assigned_seq = std::max(m.last_assigned_seq, seq);
    auto future = futures_.create(ids_.request_id(), m.owner, type);
    m.submissions.remember(seq, digest, future->id);
    m.submissions.forget_below(m.next_seq - 4096);
    m.pending.emplace(seq, queued_op{future, std::move(run), injected_failure_for(route)});
    pump_model(m.run_id);
    return future;
  }

  /// 400 for a seq_id so far ahead of the model's next one that it would wait in memory for
  /// thousands of requests that may never come.
  void check_seq_window(const live_model& m, std::int64_t seq) const {
    if (seq - m.next_seq > options_.max_seq_id_gap)
      throw http_error(400, "seq_id " + std::to_string(seq) + " is too far ahead of model " + m.run_id +
                                "'s next expected seq_id " + std::to_string(m.next_seq) + " (at most " +
                                std::to_string(options_.max_seq_id_gap) +
                                " ahead); seq_ids count 1, 2, 3, ... per model");
  }

  /// A request that named (model, seq_id) but was rejected still uses up that seq_id: otherwise
  /// the model's later operations would wait forever for it. Idempotent; a seq_id outside the
  /// window (already run, or too far ahead) is left alone.
  void skip_seq(live_model& m, std::int64_t seq, const std::string& why) {
    if (seq < m.next_seq || seq - m.next_seq > options_.max_seq_id_gap || m.pending.contains(seq) ||
        m.submissions.by_key.contains(seq))
      return;
    auto future = futures_.create(ids_.request_id(), m.owner, request_type::forward_backward);
    futures_.fail(*future, "rejected: " + why, error_category::user);
    m.pending.emplace(
        seq, queued_op{future, []() -> asio::awaitable<future_payload> { co_return future_payload{}; }, std::nullopt});
    m.last_assigned_seq = std::max(m.last_assigned_seq, seq);
    pump_model(m.run_id);
  }

  /// Runs a training handler (decoding, checks, submission). When it rejects the request for
  /// good (400, 403, 404, 422, malformed bodies included), the seq_id the body names is used up on
  /// the model it names, so the model's later operations do not wait for it forever. Not for 415
  /// (the client re-sends the same seq_id as JSON) or statuses clients retry.
  template <class F>
  http_response consume_seq_if_rejected(request_context& ctx, F&& f) {
    try {
      return f();
    } catch (const http_error& e) {
      const auto s = e.status();
      if (s == 400 || s == 403 || s == 404 || s == 422) skip_rejected(ctx, e.what());
      throw;
    } catch (const tinker::invalid_argument& e) {
      skip_rejected(ctx, e.what());
      throw;
    } catch (const tinker::protocol_error& e) {
      skip_rejected(ctx, e.what());
      throw;
    }
  }

  void skip_rejected(const request_context& ctx, const std::string& why) {
    const auto t = body_target_of(ctx);
    if (!t.model_id || !t.seq_id || *t.seq_id <= 0) return;
    auto it = models_.find(*t.model_id);
    if (it == models_.end() || it->second.owner != ctx.tenant) return;
    skip_seq(it->second, *t.seq_id, why);
  }

  /// Starts the model's worker when its next operation has arrived and nothing runs.
  void pump_model(const std::string& run_id) {
    auto it = models_.find(run_id);
    if (it == models_.end()) return;
    auto& m = it->second;
    if (m.running || m.pending.empty() || m.pending.begin()->first != m.next_seq) return;
    m.running = true;
    asio::co_spawn(io_, run_model_ops(shared_from_this(), run_id), asio::detached);
  }

  /// Runs a model's operations strictly in seq_id order, one at a time.
  static asio::awaitable<void> run_model_ops(std::shared_ptr<engine_impl> self, std::string run_id) {
    while (true) {
      auto it = self->models_.find(run_id);
      if (it == self->models_.end()) co_return;  // unloaded meanwhile
      auto& m = it->second;
      if (m.pending.empty() || m.pending.begin()->first != m.next_seq) {
        m.running = false;
        co_return;
      }
      auto op = std::move(m.pending.begin()->second);
      m.pending.erase(m.pending.begin());
      if (op.injected)
        self->futures_.fail(*op.future, std::move(op.injected->error), op.injected->category);
      else
        co_await self->settle(op.future, std::move(op.run));
      if (auto again = self->models_.find(run_id); again != self->models_.end()) ++again->second.next_seq;
    }
  }

  /// The live model `model_id` of `tenant`, or 404.
  live_model& model_of(const request_context& ctx, const std::string& model_id) {
    auto it = models_.find(model_id);
    if (it == models_.end() || it->second.owner != ctx.tenant) {
      auto run = runs_.find(model_id);
      if (run != runs_.end() && run->second.owner == ctx.tenant)
        throw http_error(404, "model " + model_id +
                                  " is not loaded (its session ended); load one of its checkpoints into a new model");
      throw http_error(404, "unknown model " + model_id);
    }
    count_request(model_id, ctx.route);
    return it->second;
  }

  /// Adds a simulated step time to training operations (fault injection).
  asio::awaitable<void> simulate_step_time() {
    if (options_.faults.training_step_time.count() > 0) co_await wait_for(options_.faults.training_step_time);
  }

  // ===== sessions ==================================================================================

  /// The session `session_id` if `ctx`'s tenant owns it (finished or expired ones too), else 404.
  session_state& owned_session(const request_context& ctx, const std::string& session_id) {
    auto it = sessions_.find(session_id);
    if (it == sessions_.end() || it->second.record.owner != ctx.tenant)
      throw http_error(404, "unknown session " + session_id);
    return it->second;
  }

  session_state& session_of(const request_context& ctx, const std::string& session_id) {
    auto it = sessions_.find(session_id);
    if (it == sessions_.end() || it->second.record.owner != ctx.tenant)
      throw http_error(404, "unknown session " + session_id);
    if (it->second.record.finished_at) throw http_error(410, "session " + session_id + " is finished");
    if (it->second.expired) throw http_error(404, "session " + session_id + " expired (no heartbeat)");
    return it->second;
  }

  void expire_session(const std::string& id, const std::string& why) {
    auto& s = sessions_.at(id);
    s.expired = true;
    for (const auto& run_id : s.record.training_run_ids) unload_model(run_id, why);
    for (const auto& sampler_id : s.record.sampler_ids) {
      auto it = samplers_.find(sampler_id);
      if (it == samplers_.end()) continue;
      for (auto& p : it->second.queue) futures_.fail(*p.future, why, error_category::user);
      pending_samples_ -= it->second.queue.size();
      it->second.queue.clear();
    }
  }

  /// Drops a model from memory, failing what waits in its queue. Its run and checkpoints stay.
  void unload_model(const std::string& run_id, const std::string& why) {
    auto it = models_.find(run_id);
    if (it == models_.end()) return;
    for (auto& [seq, op] : it->second.pending) futures_.fail(*op.future, why, error_category::user);
    models_.erase(it);
  }

  // ===== checkpoints ===============================================================================

  static std::string checkpoint_key(const std::string& run_id, checkpoint_kind kind, const std::string& name) {
    return run_id + "/" + std::string(to_string(kind)) + "/" + name;
  }

  /// The checkpoint at `path` if `tenant` may read it (owner, or published), else 404.
  const checkpoint_record& readable_checkpoint(const std::string& tenant, const tinker_path& path) const {
    auto it = checkpoints_.find(checkpoint_key(path.training_run_id, path.kind, path.name));
    if (it == checkpoints_.end() || (it->second.owner != tenant && !it->second.is_public))
      throw http_error(404, "checkpoint " + path.str() + " not found");
    return it->second;
  }

  /// The checkpoint at `path` if `tenant` owns it (403 for someone else's published one, 404 otherwise).
  checkpoint_record& owned_checkpoint(const std::string& tenant, const tinker_path& path) {
    auto it = checkpoints_.find(checkpoint_key(path.training_run_id, path.kind, path.name));
    if (it == checkpoints_.end() || (it->second.owner != tenant && !it->second.is_public))
      throw http_error(404, "checkpoint " + path.str() + " not found");
    if (it->second.owner != tenant)
      throw http_error(403, "checkpoint " + path.str() + " belongs to someone else; it is read-only");
    return it->second;
  }

  /// Deletes a checkpoint (files and record), audited with `purpose` (user_request, ttl_expired).
  void delete_checkpoint(const checkpoint_record& c, const std::string& purpose) {
    store_.remove(c);
    audit(c.owner, "checkpoint_delete", c.path(), purpose);
    checkpoints_.erase(checkpoint_key(c.run_id, c.kind, c.name));
  }

  std::vector<named_file> read_checkpoint_files(const checkpoint_record& c, bool with_optimizer) const {
    std::vector<named_file> files;
    for (const char* name : {"adapter_config.json", "adapter_model.safetensors", "optimizer.safetensors"}) {
      if (!with_optimizer && std::string_view(name) == "optimizer.safetensors") continue;
      auto contents = store_.read_checkpoint_file(c, name);
      if (!contents) {
        if (std::string_view(name) == "optimizer.safetensors")
          throw http_error(400, "checkpoint " + c.path().str() + " has no optimizer state");
        throw http_error(500, "checkpoint " + c.path().str() + " is missing " + name);
      }
      files.emplace_back(name, std::move(*contents));
    }
    return files;
  }

  static checkpoint_files to_checkpoint_files(std::vector<named_file> files) {
    checkpoint_files out;
    for (auto& [name, contents] : files) {
      if (name == "adapter_config.json")
        out.adapter_config_json = std::move(contents);
      else if (name == "adapter_model.safetensors")
        out.adapter_model_safetensors = std::move(contents);
      else if (name == "optimizer.safetensors")
        out.optimizer_safetensors = std::move(contents);
    }
    return out;
  }

  static std::vector<named_file> to_named_files(const checkpoint_files& f) {
    std::vector<named_file> files{{"adapter_config.json", f.adapter_config_json},
                                  {"adapter_model.safetensors", f.adapter_model_safetensors}};
    if (f.optimizer_safetensors) files.emplace_back("optimizer.safetensors", *f.optimizer_safetensors);
    return files;
  }

  // ===== models ==================================================================================

  /// The engine model behind a requested base model name (its own names and the aliases).
  std::pair<std::string, std::shared_ptr<const base_model>> resolve_base_model(const std::string& name) const {
    auto target = name;
    if (auto a = options_.model_aliases.find(name); a != options_.model_aliases.end()) target = a->second;
    auto it = base_models_.find(target);
    if (it == base_models_.end()) {
      std::string available;
      for (const auto& [n, m] : base_models_) available += (available.empty() ? "" : ", ") + n;
      for (const auto& [n, m] : options_.model_aliases) available += ", " + n;
      throw http_error(400, "unknown base model '" + name + "'; this server has: " + available);
    }
    return {target, it->second};
  }

  /// 400 unless `base_model` (an engine model or an alias) is the model checkpoint `path` of `run` was trained on.
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
    store_.save(run);
    runs_.emplace(model_id, run);
    session.record.training_run_ids.push_back(model_id);
    store_.save(session.record);
    count_request(model_id, ctx.route);
    audit_details["model_id"] = model_id;
    audit_details["session_id"] = session.record.id;
    audit_details["base_model"] = base_name;
    audit_details["lora_rank"] = lora.rank;
    audit(ctx.tenant, "model_create", std::nullopt, std::nullopt, std::move(audit_details));

    live_model m;
    m.run_id = model_id;
    m.owner = ctx.tenant;
    m.session_id = session.record.id;
    m.base = std::move(base);
    return models_.emplace(model_id, std::move(m)).first->second;
  }

  /// What a new sampler samples from: a sampler checkpoint `model_path` the tenant may read (with
  /// `base_model`, if given, agreeing with it), or the base model `base_model`.
  void set_sampler_weights(sampler_state& s, const std::string& tenant, const std::optional<std::string>& model_path,
                           const std::optional<std::string>& base_model) const {
    if (model_path) {
      const auto path = tinker_path::parse(*model_path);
      const auto& c = readable_checkpoint(tenant, path);
      const auto& run = runs_.at(c.run_id);
      if (base_model) check_base_model_matches(*base_model, run, path);
      s.record.base_model = run.base_model;
      s.record.engine_model = run.engine_model;
      s.record.model_path = path.str();
      s.needs_weights = true;
    } else {
      s.record.base_model = *base_model;
      s.record.engine_model = resolve_base_model(*base_model).first;
    }
    s.base = base_models_.at(s.record.engine_model);
  }

  void check_base_model_matches(const std::string& base_model, const run_record& run, const tinker_path& path) const {
    const auto engine_name = resolve_base_model(base_model).first;
    if (engine_name != run.engine_model)
      throw http_error(400, "base_model '" + base_model + "' does not match model_path " + path.str() +
                                ", which was trained on " + run.base_model + " (" + run.engine_model +
                                "); give one of them, or matching ones");
  }

  timestamp now_ts() const { return std::chrono::time_point_cast<std::chrono::microseconds>(options_.clock()); }
  static std::chrono::system_clock::time_point to_system(timestamp t) { return t; }

  // ===== request counts, audit log, usage ==========================================================

  /// Counts a request that named a training run or sampler (for session trace exports).
  void count_request(const std::string& id, const std::string& route) { ++id_request_counts_[id][route]; }

  /// Appends an event to `tenant`'s audit log (bounded; persisted in the data directory).
  /// Checkpoint events carry the (deprecated) model_id and tinker_path fields; the rest say
  /// everything in event_details.
  void audit(const std::string& tenant, std::string event, std::optional<tinker_path> path = std::nullopt,
             std::optional<std::string> purpose = std::nullopt,
             std::optional<boost::json::object> details = std::nullopt) {
    audit_log_entry e;
    e.timestamp = now_ts();
    e.event = std::move(event);
    if (path) {
      e.model_id = path->training_run_id;
      e.tinker_path = path->str();
    }
    e.purpose = std::move(purpose);
    e.event_details = std::move(details);
    auto& log = audit_[tenant];
    store_.append_audit(tenant, json::to_json(e));
    log.push_back(std::move(e));
    auto& lines = audit_file_lines_[tenant];
    ++lines;
    while (log.size() > options_.audit_log_limit) log.pop_front();
    if (lines > 2 * options_.audit_log_limit) {  // compact the file to what is kept
      std::vector<std::string> kept;
      kept.reserve(log.size());
      for (const auto& entry : log) kept.push_back(json::to_json(entry));
      store_.rewrite_audit(tenant, kept);
      lines = kept.size();
    }
  }

  /// Hours since the Unix epoch of `t` (the usage bucket it falls in).
  static std::int64_t hour_of(std::chrono::system_clock::time_point t) {
    return std::chrono::floor<std::chrono::hours>(t).time_since_epoch().count();
  }

  /// Adds `amount` to the current hour's usage bucket of (tenant, session, base model, kind).
  void record_usage(const std::string& tenant, const std::string& session_id, const std::string& base_model,
                    usage_kind kind, std::int64_t amount) {
    if (amount <= 0) return;
    usage_[usage_key{tenant, hour_of(options_.clock()), session_id, base_model, kind}] += amount;
  }

  /// Usage of the run `run_id` (its owner, session and base model).
  void record_run_usage(const std::string& run_id, usage_kind kind, std::int64_t amount) {
    auto it = runs_.find(run_id);
    if (it != runs_.end()) record_usage(it->second.owner, it->second.session_id, it->second.base_model, kind, amount);
  }

  void touch_run(const std::string& run_id) {
    if (auto it = runs_.find(run_id); it != runs_.end()) it->second.last_request_time = now_ts();
  }

  // ===== start-up ================================================================================

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
    const auto now = options_.clock();
    for (auto& s : store_.load_sessions()) {
      session_state st;
      st.record = std::move(s);
      st.last_heartbeat = now;  // sessions of an earlier run get a fresh grace period
      st.expired = true;        // ...but their models are not in memory any more: treat as ended
      sessions_.emplace(st.record.id, std::move(st));
    }
    for (auto& [tenant, lines] : store_.load_audit()) {
      auto& log = audit_[tenant];
      for (const auto& line : lines) {
        try {
          log.push_back(json::from_json<audit_log_entry>(line));
        } catch (const std::exception&) {
          // a torn or damaged line (a crash mid-append) is skipped
        }
      }
      while (log.size() > options_.audit_log_limit) log.pop_front();
      audit_file_lines_[tenant] = lines.size();
    }
    for (auto& [run, checkpoints] : store_.load_runs(options_.log)) {
      for (auto& c : checkpoints) {
        note_checkpoint_expiry(c);
        checkpoints_.emplace(checkpoint_key(c.run_id, c.kind, c.name), std::move(c));
      }
      runs_.emplace(run.id, std::move(run));
    }
    for (auto& s : store_.load_samplers()) {
      sampler_state st;
      st.record = std::move(s);
      auto base = base_models_.find(st.record.engine_model);
      if (base == base_models_.end()) continue;
      st.base = base->second;
      st.needs_weights = st.record.model_path.has_value();
      st.weights_lost = st.record.ephemeral;
      samplers_.emplace(st.record.id, std::move(st));
    }
  }

  void schedule_maintenance() {
    maintenance_timer_.expires_after(options_.maintenance_interval);
    maintenance_timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
      auto self = weak.lock();
      if (ec || !self || self->stopped_) return;
      self->run_maintenance();
      self->schedule_maintenance();
    });
  }

  // ===== endpoint handlers (defined in *_endpoints.hpp) ==========================================

  http_response handle_client_config(request_context&);
  http_response handle_telemetry(request_context&);
  http_response handle_capabilities(request_context&);
  http_response handle_create_session(request_context&);
  http_response handle_heartbeat(request_context&);
  http_response handle_create_sampling_session(request_context&);
  http_response handle_finish_session(request_context&);
  http_response handle_create_model(request_context&);
  http_response handle_get_info(request_context&);
  http_response handle_unload_model(request_context&);
  http_response handle_forward_backward(request_context&);
  http_response handle_optim_step(request_context&);
  http_response handle_save_weights(request_context&);
  http_response handle_save_weights_for_sampler(request_context&);
  http_response handle_load_weights(request_context&);
  http_response handle_asample(request_context&);
  asio::awaitable<http_response> handle_sync_sample(request_context&);
  http_response handle_get_sampler(request_context&);
  asio::awaitable<http_response> handle_retrieve_future(request_context&);
  asio::awaitable<http_response> handle_retrieve_futures(request_context&);
  http_response handle_weights_info(request_context&);
  http_response handle_list_training_runs(request_context&);
  http_response handle_get_training_run(request_context&);
  http_response handle_list_checkpoints(request_context&);
  http_response handle_list_user_checkpoints(request_context&);
  http_response handle_delete_checkpoint(request_context&);
  http_response handle_publish(request_context&, bool publish);
  http_response handle_set_ttl(request_context&);
  http_response handle_archive(request_context&);
  asio::awaitable<http_response> handle_download(request_context&);
  http_response handle_list_sessions(request_context&);
  http_response handle_get_session(request_context&);
  http_response handle_set_session_project(request_context&);
  http_response handle_trace_export(request_context&);
  http_response handle_trace_download(request_context&);
  http_response handle_audit(request_context&);
  http_response handle_billing_usage(request_context&);

  // helpers shared by the training endpoints
  http_response submit_save_for_sampler(request_context&, live_model&, const save_weights_for_sampler_request&,
                                        requested_seq seq);
  http_response submit_load(request_context&, live_model&, const load_weights_request&, requested_seq seq);
  http_response create_via_load(request_context&, const load_weights_request&);
  /// The weights checkpoint a load reads, authorized for the caller or its weights_access_token.
  const checkpoint_record& checkpoint_to_load(const request_context&, const load_weights_request&,
                                              const tinker_path&) const;
  std::shared_ptr<trainable_model> loaded_model(const std::string& run_id);
  asio::awaitable<void> save_checkpoint(tinker_path path, std::string owner, std::optional<std::int64_t> ttl_seconds,
                                        std::optional<metadata_map> user_metadata, bool overwrite, bool with_optimizer);

  // helpers shared by the sampling endpoints
  sampler_state& sampler_for_request(const request_context& ctx, const sample_request& req);
  void check_sample_request(sample_request& req, const sampler_state& s) const;
  std::shared_ptr<future_entry> submit_sample(const request_context& ctx, sampler_state& s, sample_request req,
                                              const std::string& digest);
  void pump_sampler(const std::string& sampler_id);
  static asio::awaitable<void> run_sample_batch(std::shared_ptr<engine_impl> self, std::string sampler_id);
  training_run to_training_run(const run_record& r) const;
  /// `scheme://host` as the client reached the engine (for the signed URLs it hands out).
  std::string public_base(const request_context& ctx) const;

  // ===== state =====================================================================================

  asio::any_io_executor io_;
  engine_options options_;
  bool owns_data_dir_ = false;
  std::filesystem::path data_dir_;
  store store_;
  id_generator ids_;
  asio::thread_pool pool_;
  asio::steady_timer maintenance_timer_;
  std::mt19937_64 fault_rng_;
  std::chrono::steady_clock::time_point faults_since_;
  std::unique_ptr<http_server> server_;
  bool stopped_ = false;

  std::map<std::string, std::shared_ptr<const base_model>> base_models_;
  std::map<std::string, session_state> sessions_;
  std::map<std::string, run_record> runs_;
  std::map<std::string, checkpoint_record> checkpoints_;  ///< by "<run>/<kind>/<name>"
  std::optional<timestamp> next_checkpoint_expiry_;       ///< at or before the earliest expires_at
  std::map<std::string, live_model> models_;
  std::map<std::string, sampler_state> samplers_;
  /// Sampler ids an accepted unnamed save_weights_for_sampler will create when it runs. Taken at
  /// submission, so a second request naming the same sampling_session_seq_id (or a
  /// create_sampling_session) cannot be accepted for the same id before the first one has run.
  std::set<std::string> reserved_sampler_ids_;
  future_table futures_;
  std::size_t pending_samples_ = 0;
  std::uint64_t sample_batches_ = 0;
  std::map<std::string, std::uint64_t> route_counts_;
  /// Requests per route that named each training run or sampler (in memory: since this start).
  std::map<std::string, std::map<std::string, std::uint64_t>> id_request_counts_;
  /// Audit log per tenant, oldest first (the last options_.audit_log_limit entries), and how many
  /// lines each tenant's log file has (it is compacted at twice the limit).
  std::map<std::string, std::deque<audit_log_entry>> audit_;
  std::map<std::string, std::size_t> audit_file_lines_;
  /// Billing usage by hourly bucket (in memory only: it starts empty at every engine start).
  std::map<usage_key, std::int64_t> usage_;
  static constexpr std::chrono::hours usage_retention{24 * 31};
};

}  // namespace tinker::local::detail
