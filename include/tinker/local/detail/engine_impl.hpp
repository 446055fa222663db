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
#include <tinker/local/detail/routing.hpp>
#include <tinker/local/detail/store.hpp>
#include <tinker/local/engine_options.hpp>
#include <tinker/local/http_server.hpp>
#include <tinker/proto.hpp>
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
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace tinker::local::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;

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

  /// As a client sent it: only positive ids are ids.
  static requested_seq from_client(std::int64_t id) noexcept { return {id, id > 0}; }
  static requested_seq exactly(std::int64_t id) noexcept { return {id, true}; }
  static requested_seq none() noexcept { return {}; }
};

class engine_impl : public std::enable_shared_from_this<engine_impl> {
public:
  engine_impl(asio::any_io_executor io, engine_options options)
      : io_(std::move(io)),
        options_(std::move(options)),
        data_dir_(prepare_data_dir(options_.data_dir)),
        store_(data_dir_),
        ids_(options_.seed, store_.epoch()),
        pool_(options_.compute_threads ? options_.compute_threads
                                       : std::max<std::size_t>(1, std::thread::hardware_concurrency())),
        maintenance_timer_(io_),
        fault_rng_(options_.faults.seed),
        faults_since_(std::chrono::steady_clock::now()) {
    if (!options_.clock) options_.clock = [] { return std::chrono::system_clock::now(); };
    for (const auto& spec : default_base_models()) base_models_.emplace(spec.name, base_model::create(spec));
    for (const auto& [alias, target] : options_.model_aliases)
      if (!base_models_.contains(target))
        throw tinker::invalid_argument("model alias '" + alias + "' maps to unknown engine model '" + target + "'");
    load_records();
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
    std::weak_ptr<engine_impl> weak = shared_from_this();
    server_ = std::make_unique<http_server>(io_, so, [weak](http_request& req) -> asio::awaitable<std::optional<http_response>> {
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
      if (!s.expired && !s.finished && now - s.last_heartbeat > options_.session_timeout) expired.push_back(id);
    for (const auto& id : expired) expire_session(id, "session expired: no heartbeat for " +
                                                          std::to_string(options_.session_timeout.count() / 1000) + " s");
    std::vector<checkpoint_record> dead;
    for (const auto& [key, c] : checkpoints_)
      if (c.expires_at && to_system(*c.expires_at) <= now) dead.push_back(c);
    for (const auto& c : dead) delete_checkpoint(c);
    futures_.purge(std::chrono::steady_clock::now() - options_.future_retention);
  }

  // Introspection for tests and benchmarks.
  std::size_t future_count() const noexcept { return futures_.size(); }
  std::size_t loaded_model_count() const noexcept { return models_.size(); }
  std::size_t pending_sample_count() const noexcept { return pending_samples_; }
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
    request_context ctx{req, parsed_target::parse(std::string_view(req.target().data(), req.target().size())), {}, {}};
    ctx.route = route_name(req.method(), ctx.target);
    ++route_counts_[ctx.route];
    try {
      if (ctx.route.empty()) throw http_error(404, "no such endpoint: " + std::string(req.method_string()) + " " +
                                                       std::string(ctx.target.segments.empty() ? "/" : "/" + join(ctx.target.segments)));
      if (auto injected = co_await inject_faults(ctx)) co_return std::move(*injected);
      if (ctx.route != "healthz" && ctx.route != "download") ctx.tenant = authenticate(req);
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

  static std::string join(const std::vector<std::string>& segments) {
    std::string out;
    for (const auto& s : segments) out += (out.empty() ? "" : "/") + s;
    return out;
  }

  /// The route's name, or "" when nothing matches (404).
  static std::string route_name(http::verb method, const parsed_target& t) {
    using v = http::verb;
    const auto& s = t.segments;
    if (s.size() >= 1 && s[0] == "downloads" && method == v::get) return "download";
    if (s.size() < 3 || s[0] != "api" || s[1] != "v1") return "";
    const auto n = s.size() - 2;
    const auto& a = s[2];
    if (n == 1) {
      static const std::map<std::string, std::pair<v, std::string>> simple = {
          {"healthz", {v::get, "healthz"}},
          {"telemetry", {v::post, "telemetry"}},
          {"get_server_capabilities", {v::get, "get_server_capabilities"}},
          {"create_session", {v::post, "create_session"}},
          {"session_heartbeat", {v::post, "session_heartbeat"}},
          {"create_sampling_session", {v::post, "create_sampling_session"}},
          {"create_model", {v::post, "create_model"}},
          {"get_info", {v::post, "get_info"}},
          {"unload_model", {v::post, "unload_model"}},
          {"forward_backward", {v::post, "forward_backward"}},
          {"forward", {v::post, "forward"}},
          {"optim_step", {v::post, "optim_step"}},
          {"save_weights", {v::post, "save_weights"}},
          {"save_weights_for_sampler", {v::post, "save_weights_for_sampler"}},
          {"load_weights", {v::post, "load_weights"}},
          {"asample", {v::post, "asample"}},
          {"sample", {v::post, "sample"}},
          {"retrieve_future", {v::post, "retrieve_future"}},
          {"retrieve_futures", {v::post, "retrieve_futures"}},
          {"weights_info", {v::post, "weights_info"}},
          {"training_runs", {v::get, "list_training_runs"}},
          {"checkpoints", {v::get, "list_user_checkpoints"}},
          {"sessions", {v::get, "list_sessions"}},
      };
      auto it = simple.find(a);
      if (it == simple.end() || it->second.first != method) return "";
      return it->second.second;
    }
    if (a == "client" && n == 2 && method == v::post) {
      if (s[3] == "config") return "client_config";
      if (s[3] == "dynamic_config") return "dynamic_config";
      return "";
    }
    if (a == "samplers" && n == 2 && method == v::get) return "get_sampler";
    if (a == "sessions") {
      if (n == 2 && method == v::get) return "get_session";
      if (n == 3 && s[4] == "finish" && method == v::post) return "finish_session";
      return "";
    }
    if (a == "training_runs") {
      if (n == 2 && method == v::get) return "get_training_run";
      if (n == 3 && s[4] == "checkpoints" && method == v::get) return "list_checkpoints";
      if (n >= 5 && s[4] == "checkpoints") {
        if (n == 5 && method == v::delete_) return "delete_checkpoint";
        if (n == 6 && s[7] == "publish" && method == v::post) return "publish_checkpoint";
        if (n == 6 && s[7] == "publish" && method == v::delete_) return "unpublish_checkpoint";
        if (n == 6 && s[7] == "ttl" && method == v::put) return "set_checkpoint_ttl";
        if (n == 6 && s[7] == "archive" && method == v::get) return "checkpoint_archive";
      }
      return "";
    }
    return "";
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
    if (r == "forward_backward" || r == "forward") co_return handle_forward_backward(ctx);
    if (r == "optim_step") co_return handle_optim_step(ctx);
    if (r == "save_weights") co_return handle_save_weights(ctx);
    if (r == "save_weights_for_sampler") co_return handle_save_weights_for_sampler(ctx);
    if (r == "load_weights") co_return handle_load_weights(ctx);
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
    if (r == "publish_checkpoint" || r == "unpublish_checkpoint") co_return handle_publish(ctx, r == "publish_checkpoint");
    if (r == "set_checkpoint_ttl") co_return handle_set_ttl(ctx);
    if (r == "checkpoint_archive") co_return handle_archive(ctx);
    if (r == "download") co_return handle_download(ctx);
    if (r == "list_sessions") co_return handle_list_sessions(ctx);
    if (r == "get_session") co_return handle_get_session(ctx);
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
        if (v.size() > 7 && (v.substr(0, 7) == "Bearer " || v.substr(0, 7) == "bearer ")) key = std::string(v.substr(7));
      }
    if (key.empty()) throw http_error(401, "missing API key: send it in the X-API-Key header");
    const bool known = options_.api_keys.empty()
                           ? key.rfind("tml-", 0) == 0 && key.size() > 4
                           : std::find(options_.api_keys.begin(), options_.api_keys.end(), key) != options_.api_keys.end();
    if (!known) throw http_error(401, "invalid API key");
    return "tenant-" + sha256_hex(key).substr(0, 16);
  }

  // ===== fault injection =========================================================================

  bool faults_apply_to(const std::string& route) const {
    const auto& f = options_.faults;
    if (route == "healthz" || route == "download") return false;
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

  static tinker::error_response error_response_body(std::string detail) { return tinker::error_response{std::move(detail)}; }

  static http_response future_response(const request_context& ctx, const future_entry& f,
                                       std::optional<std::string> model_id = std::nullopt,
                                       std::optional<std::vector<std::string>> sequence_ids = std::nullopt) {
    return json_response(ctx, 200, boost::json::value_from(untyped_api_future{f.id, std::move(model_id), std::move(sequence_ids)}));
  }

  // ===== request bodies ==========================================================================

  template <class T>
  static T decode_json_body(const request_context& ctx) {
    return json::from_json<T>(ctx.request.body());
  }

  static bool content_type_is(const http_request& req, std::string_view type) {
    auto it = req.find(http::field::content_type);
    return it != req.end() && std::string_view(it->value().data(), it->value().size()).find(type) != std::string_view::npos;
  }

  static bool accepts_protobuf(const http_request& req) {
    auto it = req.find(http::field::accept);
    return it != req.end() &&
           std::string_view(it->value().data(), it->value().size()).find("application/x-protobuf") != std::string_view::npos;
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
  asio::awaitable<void> settle(std::shared_ptr<future_entry> future, std::function<asio::awaitable<future_result>()> work) {
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
  std::shared_ptr<future_entry> enqueue_model_op(live_model& m, requested_seq seq_id,
                                                 const std::string& digest, request_type type,
                                                 std::function<asio::awaitable<future_result>()> run) {
    const std::int64_t seq = seq_id.given ? seq_id.value : std::max(m.last_assigned_seq, m.next_seq - 1) + 1;
    if (seq_id.given) {
      if (auto original = m.submissions.check(seq, digest, "seq_id")) return futures_.find(*original);
      if (seq < m.next_seq)
        throw http_error(400, "seq_id " + std::to_string(seq) + " already ran on model " + m.run_id +
                                  " (the next expected seq_id is " + std::to_string(m.next_seq) + ")");
      if (seq < 0) throw http_error(400, "seq_id must not be negative, got " + std::to_string(seq));
    }
    m.last_assigned_seq = std::max(m.last_assigned_seq, seq);
    auto future = futures_.create(ids_.request_id(), m.owner, type);
    m.submissions.remember(seq, digest, future->id);
    m.submissions.forget_below(m.next_seq - 4096);
    m.pending.emplace(seq, queued_op{future, std::move(run)});
    pump_model(m.run_id);
    return future;
  }

  /// A request that named (model, seq_id) but was rejected still uses up that seq_id: otherwise
  /// the model's later operations would wait forever for it. Idempotent.
  void skip_seq(live_model& m, std::int64_t seq, const std::string& why) {
    if (seq < m.next_seq || m.pending.contains(seq) || m.submissions.by_key.contains(seq)) return;
    auto future = futures_.create(ids_.request_id(), m.owner, request_type::forward_backward);
    futures_.fail(*future, "rejected: " + why, error_category::user);
    m.pending.emplace(seq, queued_op{future, []() -> asio::awaitable<future_result> { co_return future_result{}; }});
    m.last_assigned_seq = std::max(m.last_assigned_seq, seq);
    pump_model(m.run_id);
  }

  /// Runs a training handler's checks and submission; a 4xx rejection skips the request's seq_id.
  template <class F>
  http_response guard_seq(live_model& m, requested_seq seq, F&& f) {
    try {
      return f();
    } catch (const http_error& e) {
      if (seq.given && e.status() >= 400 && e.status() < 500) skip_seq(m, seq.value, e.what());
      throw;
    } catch (const tinker::invalid_argument& e) {
      if (seq.given) skip_seq(m, seq.value, e.what());
      throw;
    }
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
        throw http_error(404, "model " + model_id + " is not loaded (its session ended); load one of its checkpoints into a new model");
      throw http_error(404, "unknown model " + model_id);
    }
    return it->second;
  }

  /// Adds a simulated step time to training operations (fault injection).
  asio::awaitable<void> simulate_step_time() {
    if (options_.faults.training_step_time.count() > 0) co_await wait_for(options_.faults.training_step_time);
  }

  // ===== sessions ==================================================================================

  session_state& session_of(const request_context& ctx, const std::string& session_id) {
    auto it = sessions_.find(session_id);
    if (it == sessions_.end() || it->second.record.owner != ctx.tenant) throw http_error(404, "unknown session " + session_id);
    if (it->second.expired) throw http_error(404, "session " + session_id + " expired (no heartbeat)");
    if (it->second.finished) throw http_error(410, "session " + session_id + " is finished");
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
    if (it->second.owner != tenant) throw http_error(403, "checkpoint " + path.str() + " belongs to someone else; it is read-only");
    return it->second;
  }

  void delete_checkpoint(const checkpoint_record& c) {
    store_.remove(c);
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
      if (name == "adapter_config.json") out.adapter_config_json = std::move(contents);
      else if (name == "adapter_model.safetensors") out.adapter_model_safetensors = std::move(contents);
      else if (name == "optimizer.safetensors") out.optimizer_safetensors = std::move(contents);
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

  timestamp now_ts() const { return std::chrono::time_point_cast<std::chrono::microseconds>(options_.clock()); }
  static std::chrono::system_clock::time_point to_system(timestamp t) { return t; }

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
      st.last_heartbeat = now;   // sessions of an earlier run get a fresh grace period
      st.expired = true;         // ...but their models are not in memory any more: treat as ended
      sessions_.emplace(st.record.id, std::move(st));
    }
    for (auto& [run, checkpoints] : store_.load_runs(options_.log)) {
      for (auto& c : checkpoints) checkpoints_.emplace(checkpoint_key(c.run_id, c.kind, c.name), std::move(c));
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
  http_response handle_download(request_context&);
  http_response handle_list_sessions(request_context&);
  http_response handle_get_session(request_context&);

  // helpers shared by the training endpoints
  http_response submit_save_for_sampler(request_context&, live_model&, const save_weights_for_sampler_request&,
                                        requested_seq seq);
  http_response submit_load(request_context&, live_model&, const load_weights_request&, requested_seq seq);
  std::shared_ptr<trainable_model> loaded_model(const std::string& run_id);
  asio::awaitable<void> save_checkpoint(tinker_path path, std::string owner, std::optional<std::int64_t> ttl_seconds,
                                        std::optional<metadata_map> user_metadata, bool overwrite, bool with_optimizer);

  // helpers shared by the sampling endpoints
  sampler_state& sampler_for_request(const request_context& ctx, const sample_request& req);
  std::shared_ptr<future_entry> submit_sample(const request_context& ctx, sampler_state& s, sample_request req,
                                              const std::string& digest);
  void pump_sampler(const std::string& sampler_id);
  static asio::awaitable<void> run_sample_batch(std::shared_ptr<engine_impl> self, std::string sampler_id);
  training_run to_training_run(const run_record& r) const;

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
  std::map<std::string, live_model> models_;
  std::map<std::string, sampler_state> samplers_;
  future_table futures_;
  std::size_t pending_samples_ = 0;
  std::uint64_t sample_batches_ = 0;
  std::map<std::string, std::uint64_t> route_counts_;
};

}  // namespace tinker::local::detail
