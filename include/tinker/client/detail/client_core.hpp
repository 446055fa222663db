// The shared heart of every client made from one service_client: the transport, the options,
// the server's client configuration, the session (created lazily, kept alive by a heartbeat), and
// the two primitives everything else is built from — an HTTP call with the retry policy, and a
// server-side future polled into an api_future.
//
// Single-threaded: all of it runs on the executor the service_client was made with.
#pragma once

#include <tinker/client/api_future.hpp>
#include <tinker/client/client_stats.hpp>
#include <tinker/client/detail/backoff.hpp>
#include <tinker/client/detail/future_state.hpp>
#include <tinker/client/detail/poll_fsm.hpp>
#include <tinker/client/detail/status_error.hpp>
#include <tinker/client/options.hpp>
#include <tinker/error.hpp>
#include <tinker/http/transport.hpp>
#include <tinker/http/url.hpp>
#include <tinker/json.hpp>
#include <tinker/types.hpp>
#include <tinker/version.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace tinker::detail {

namespace asio = boost::asio;
namespace beast_http = boost::beast::http;

/// One HTTP call as the client layer describes it.
struct call_spec {
  beast_http::verb method = beast_http::verb::post;
  std::string path;  ///< "/api/v1/..." incl. query
  std::string body;
  std::string content_type = "application/json";
  std::string accept = "application/json";
  http::lane lane = http::lane::train;
  std::optional<std::chrono::milliseconds> timeout;
  bool retry = true;  ///< the retry policy applies (off for polls, heartbeats, asample, saves)
  /// A 409 is the caller's mistake, not a passing conflict: a checkpoint name that exists, a
  /// checkpoint already (un)published. Deviation from the SDK, which retries every 409 for up to
  /// five minutes (protocol.md §5.4, §6.2) before failing with the same answer; here it fails at
  /// once, as a conflict_error with the server's body.
  bool conflict_is_final = false;
  std::vector<std::pair<std::string, std::string>> headers;
  /// Sent as X-API-Key instead of the client's key (a weights_access_token reading someone else's
  /// checkpoint). Like the client's key, never part of a message.
  std::optional<std::string> api_key;
};

/// A server-side future's handle as its submission answered it, and how long the submission took
/// (sent to the server with the first poll, as X-Tinker-Create-Promise-Roundtrip-Time).
struct submission {
  untyped_api_future handle;
  seconds_d roundtrip{0};
};

/// What a poll loop needs to know besides the request id.
struct poll_target {
  std::string request_type;  ///< X-Tinker-Request-Type: CreateModel, ForwardBackward, Sample, ...
  std::string subject;       ///< for queue-state reports: "training of model <id>", ...
  http::lane lane = http::lane::poll;
};

/// How a future's result is decoded: protobuf (forward_backward, sample) or JSON.
template <class T>
struct result_decoder {
  std::function<T(std::string_view)> from_protobuf;  ///< empty = JSON only
  std::function<T(const boost::json::value&)> from_json;
};

class client_core : public std::enable_shared_from_this<client_core> {
public:
  client_core(asio::any_io_executor ex, client_options options)
      : executor_(std::move(ex)),
        options_(std::move(options.resolve())),
        base_(http::url::parse(options_.base_url)),
        transport_(std::make_shared<http::transport>(executor_, base_, transport_options(options_))),
        rng_(std::random_device{}()) {
    secrets_.push_back(options_.api_key);
  }

  ~client_core() {
    if (heartbeat_timer_) heartbeat_timer_->cancel();
    transport_->shutdown();
  }

  const asio::any_io_executor& executor() const noexcept { return executor_; }
  const client_options& options() const noexcept { return options_; }
  http::transport& transport() noexcept { return *transport_; }
  std::mt19937_64& rng() noexcept { return rng_; }

  const client_stats& stats() const noexcept { return stats_; }

  /// Sends one request as it is (no retries), counting it in stats().
  asio::awaitable<http::response> send(http::request req) {
    ++stats_.http_requests;
    auto res = co_await transport_->send(std::move(req));
    if (auto ce = res.headers.find(beast_http::field::content_encoding);
        ce != res.headers.end() && ce->value() == "gzip")
      ++stats_.gzip_responses;
    co_return res;
  }

  /// Every line goes through the redaction of secrets(): lines quote exception messages and server
  /// answers, and a server may echo a credential back.
  void log(log_level level, const std::string& line) const {
    if (options_.log) options_.log(level, redact_secrets(line, secrets_));
  }

  /// Marks a credential the user handed to a call (a weights_access_token): like the API key, it
  /// is redacted from every error message and log line from now on.
  void add_secret(const std::optional<std::string>& secret) {
    if (!secret || secret->empty()) return;
    for (const auto& s : secrets_)
      if (s == *secret) return;
    // Bounded: the API key stays, older tokens give way (a program cycling through thousands of
    // tokens is not a case worth an unbounded list).
    if (secrets_.size() >= 64) secrets_.erase(secrets_.begin() + 1);
    secrets_.push_back(*secret);
  }

  /// The API key, then the tokens add_secret() was given.
  const std::vector<std::string>& secrets() const noexcept { return secrets_; }

  // ===== plain calls ==============================================================================

  /// Sends `spec`, retrying connection errors, 408, 409 (unless spec.conflict_is_final), 429, 5xx
  /// (and empty-bodied 400s, which proxies produce) per the retry policy. A 402 (billing) is waited out in
  /// retry.billing_retry_interval steps (the SDK's 5 s), uncounted, while the server's billing-pause
  /// window lasts. Returns the 2xx answer; throws the matching
  /// api_error.
  asio::awaitable<http::response> call(call_spec spec) {
    auto started = std::chrono::steady_clock::now();
    const auto idempotency_key = spec.method == beast_http::verb::get ? std::string() : new_idempotency_key();
    // One copy of the body serves every attempt (a big forward_backward batch is not copied per retry).
    const auto body = std::make_shared<const std::string>(std::move(spec.body));
    for (int attempt = 0, sent = 0;; ++sent) {
      http::request req;
      req.method = spec.method;
      req.target = spec.path;
      req.shared_body = body;
      req.lane = spec.lane;
      req.timeout = spec.timeout;
      add_common_headers(req, spec, idempotency_key, sent);
      std::exception_ptr failure;
      std::optional<seconds_d> server_delay;
      try {
        if (sent > 0) ++stats_.retries;
        auto res = co_await send(std::move(req));
        if (res.status >= 200 && res.status < 300) co_return res;
        if (res.status == 402 && spec.retry && billing_pause_continues()) {
          const auto pause_started = std::chrono::steady_clock::now();
          co_await sleep(options_.retry.billing_retry_interval);
          started += std::chrono::steady_clock::now() - pause_started;  // a billing pause is not retry time
          continue;
        }
        const bool empty_400 = res.status == 400 && res.body.empty();
        auto should_retry = retryable_status(res.status) || empty_400;
        if (auto h = res.headers.find("x-should-retry"); h != res.headers.end()) should_retry = h->value() == "true";
        if (res.status == 409 && spec.conflict_is_final) should_retry = false;  // (over x-should-retry too)
        if (spec.api_key) add_secret(spec.api_key);
        failure = make_status_error(verb_name(spec.method), spec.path, res.status, std::move(res.body), secrets_);
        if (!should_retry || !spec.retry) std::rethrow_exception(failure);
        server_delay = parse_retry_after(header(res, "retry-after-ms"), header(res, "retry-after"));
      } catch (const api_connection_error&) {
        if (!spec.retry) throw;
        failure = std::current_exception();
      }
      const auto elapsed = std::chrono::steady_clock::now() - started;
      if (attempt >= options_.retry.max_retries || elapsed >= options_.retry.total_budget)
        std::rethrow_exception(failure);
      auto delay = server_delay ? *server_delay
                                : backoff_delay(attempt, options_.retry.initial_backoff, options_.retry.max_backoff,
                                                options_.retry.jitter, rng_);
      log(log_level::debug, verb_name(spec.method) + " " + spec.path + ": retrying in " +
                                std::to_string(delay.count()) + " s (attempt " + std::to_string(attempt + 1) + ")");
      co_await sleep(delay);
      ++attempt;
    }
  }

  /// A 402 (billing) answer just arrived: whether to wait it out. An incident starts with the first
  /// 402 after 300 s without one, and is waited out for the server's
  /// billing_exception_max_pause_duration_sec (default 3600 s); a warning is logged once a minute.
  bool billing_pause_continues() {
    const auto now = std::chrono::steady_clock::now();
    if (!billing_since_ || now - last_billing_answer_ > std::chrono::seconds(300)) billing_since_ = now;
    last_billing_answer_ = now;
    if (now - *billing_since_ >= billing_pause_window()) return false;
    if (!last_billing_log_ || now - *last_billing_log_ >= std::chrono::minutes(1)) {
      last_billing_log_ = now;
      log(log_level::warning, "the server answers 402 (billing): requests are paused and retried until it lifts");
    }
    return true;
  }

  /// How long a billing pause may last (client/config's billing_exception_max_pause_duration_sec).
  seconds_d billing_pause_window() const {
    return seconds_d(config_ ? static_cast<double>(config_->billing_exception_max_pause_duration_sec) : 3600.0);
  }

  /// A JSON call decoded into Resp; a 2xx answer that does not decode is an api_response_validation_error.
  template <class Resp>
  asio::awaitable<Resp> call_json(call_spec spec) {
    const auto method = verb_name(spec.method), path = spec.path;
    auto res = co_await call(std::move(spec));
    co_return decode_json<Resp>(method, path, res.body);
  }

  template <class Resp, class Req>
  asio::awaitable<Resp> post_json(std::string path, const Req& body, http::lane lane, bool retry = true) {
    call_spec spec;
    spec.path = std::move(path);
    spec.body = json::to_json(body);
    spec.lane = lane;
    spec.retry = retry;
    co_return co_await call_json<Resp>(std::move(spec));
  }

  template <class Resp>
  asio::awaitable<Resp> get_json(std::string path, http::lane lane = http::lane::rest) {
    call_spec spec;
    spec.method = beast_http::verb::get;
    spec.path = std::move(path);
    spec.lane = lane;
    co_return co_await call_json<Resp>(std::move(spec));
  }

  /// Submits a call that answers with a future handle, timing the round trip.
  asio::awaitable<submission> submit(call_spec spec) {
    const auto started = std::chrono::steady_clock::now();
    submission sub;
    sub.handle = co_await call_json<untyped_api_future>(std::move(spec));
    sub.roundtrip = std::chrono::steady_clock::now() - started;
    co_return sub;
  }

  template <class Req>
  asio::awaitable<submission> submit_json(std::string path, const Req& body, http::lane lane,
                                          bool conflict_is_final = false) {
    call_spec spec;
    spec.path = std::move(path);
    spec.body = json::to_json(body);
    spec.lane = lane;
    spec.conflict_is_final = conflict_is_final;
    co_return co_await submit(std::move(spec));
  }

  template <class T>
  static T decode_json(const std::string& method, const std::string& path, const std::string& body) {
    try {
      return json::from_json<T>(body);
    } catch (const protocol_error& e) {
      throw api_response_validation_error(method + " " + path + " answered with an invalid body: " + e.what());
    }
  }

  // ===== server configuration and session =========================================================

  /// client/config, fetched once (a 404 here means the server is not a Tinker server).
  asio::awaitable<client_config_response> server_config() {
    if (config_) co_return *config_;
    // (Named, not a temporary: GCC 12 destroys aggregate temporaries in co_await expressions twice.)
    const client_config_request body{protocol_sdk_version};
    auto c = co_await post_json<client_config_response>("/api/v1/client/config", body, http::lane::session);
    if (!config_) config_ = c;
    co_return *config_;
  }

  /// The configuration fetched so far (set once a session exists).
  const std::optional<client_config_response>& cached_config() const noexcept { return config_; }

  /// The session id, creating the session on first use (concurrent first uses share one creation).
  asio::awaitable<std::string> session_id() {
    if (session_id_) co_return *session_id_;
    if (!session_once_) {
      session_once_ = std::make_shared<future_state<std::string>>(executor_);
      asio::co_spawn(executor_, create_session(shared_from_this()),
                     [self = shared_from_this(), once = session_once_](std::exception_ptr e, std::string id) {
                       if (e) {
                         self->session_once_.reset();  // let a later call try again
                         once->set_exception(e);
                       } else {
                         self->session_id_ = id;
                         once->set_value(std::move(id));
                         self->start_heartbeat();
                       }
                     });
    }
    auto once = session_once_;
    co_await once->wait_until(std::chrono::steady_clock::time_point::max());
    if (session_id_) co_return *session_id_;
    co_return once->take();  // rethrows the creation failure
  }

  std::int64_t next_model_seq_id() noexcept { return next_model_seq_id_++; }
  std::int64_t next_sampling_session_seq_id() noexcept { return next_sampling_session_seq_id_++; }

  /// Stops the heartbeat and the transport; later calls fail. Idempotent.
  void close() {
    closed_ = true;
    if (heartbeat_timer_) heartbeat_timer_->cancel();
    heartbeat_timer_.reset();
    transport_->shutdown();
  }

  // ===== futures ======================================================================================

  /// Starts polling the future of `sub` in the background and returns its api_future.
  /// `resubmit` (samples) submits the original request again when the server says 410 Gone.
  template <class T>
  api_future<T> poll(submission sub, poll_target target, result_decoder<T> decoder,
                     std::function<asio::awaitable<submission>()> resubmit = {}) {
    auto state = std::make_shared<future_state<T>>(executor_);
    const auto slot = state->producer_slot();
    auto id = sub.handle.request_id;
    asio::co_spawn(executor_,
                   poll_loop<T>(shared_from_this(), state, std::move(sub), std::move(target), std::move(decoder),
                                std::move(resubmit)),
                   asio::bind_cancellation_slot(slot, [state](std::exception_ptr e) {
                     if (e) state->set_exception(e);
                   }));
    return api_future<T>(std::move(state), {std::move(id)});
  }

  /// An api_future whose value a coroutine computes (combined and custom-loss futures).
  template <class T>
  api_future<T> spawn_future(std::function<asio::awaitable<T>()> producer, std::vector<std::string> request_ids) {
    auto state = std::make_shared<future_state<T>>(executor_);
    const auto slot = state->producer_slot();
    // The function object itself goes to co_spawn, which keeps it alive while the coroutine it
    // returns runs: a coroutine lambda's captures live in the lambda, not in the coroutine frame.
    asio::co_spawn(executor_, std::move(producer),
                   asio::bind_cancellation_slot(slot, [state](std::exception_ptr e, T value) {
                     if (e)
                       state->set_exception(e);
                     else
                       state->set_value(std::move(value));
                   }));
    return api_future<T>(std::move(state), std::move(request_ids));
  }

  /// Runs `task` to its end whatever happens to the caller, and waits for it. A caller cancelled
  /// while waiting gives up the result; the task goes on. For work that must finish once begun: a
  /// training submission holds a reserved seq_id, and the server runs a model's requests strictly
  /// in seq_id order, so a seq_id that never arrives would stall every later request on the model.
  template <class T>
  asio::awaitable<T> run_to_completion(std::function<asio::awaitable<T>()> task) {
    auto state = std::make_shared<future_state<T>>(executor_);
    // No cancellation slot is bound: the task is out of reach of the caller's cancellation.
    asio::co_spawn(executor_, std::move(task), [state](std::exception_ptr e, T value) {
      if (e)
        state->set_exception(e);
      else
        state->set_value(std::move(value));
    });
    co_await state->wait_until(std::chrono::steady_clock::time_point::max());
    co_return state->take();
  }

  asio::awaitable<void> sleep(seconds_d d) {
    asio::steady_timer t(executor_, std::chrono::duration_cast<std::chrono::steady_clock::duration>(d));
    co_await t.async_wait(asio::use_awaitable);
  }

  /// A poll answer carried a queue state: changes (per future) go to the observer, and a pause is
  /// logged at most once a minute per subject (model or sampler) while it lasts.
  void report_queue_state(const std::string& request_id, const std::string& subject, const try_again_response& t,
                          bool changed) {
    if (changed && options_.on_queue_state)
      options_.on_queue_state(queue_state_event{request_id, subject, t.queue_state, t.queue_state_reason});
    if (t.queue_state == queue_state::active || t.queue_state == queue_state::unknown) return;
    const auto now = std::chrono::steady_clock::now();
    auto [last, first_time] = last_pause_log_.try_emplace(subject, now);
    if (!first_time && now - last->second < std::chrono::minutes(1)) return;
    last->second = now;
    if (last_pause_log_.size() > 10'000) last_pause_log_.clear();  // bounded: subjects are models and samplers
    const auto reason = t.queue_state_reason.value_or(t.queue_state == queue_state::paused_capacity
                                                          ? "the backend is running short on capacity"
                                                          : "a rate limit was hit");
    log(log_level::warning, subject + " is paused (" + std::string(to_string(t.queue_state)) + "): " + reason);
  }

private:
  static http::transport_options transport_options(const client_options& o) {
    http::transport_options t;
    t.connect_timeout = o.connect_timeout;
    t.request_timeout = o.request_timeout;
    t.write_timeout = o.write_timeout;
    t.read_timeout = o.read_timeout;
    t.max_connections = o.max_connections;
    t.accept_gzip = o.accept_gzip;
    t.tls = o.tls;
    if (o.log) t.warn = [log = o.log](std::string_view line) { log(log_level::warning, line); };
    return t;
  }

  static std::string verb_name(beast_http::verb v) { return std::string(beast_http::to_string(v)); }

  static std::string_view header(const http::response& res, std::string_view name) {
    auto it = res.headers.find(boost::beast::string_view(name.data(), name.size()));
    return it == res.headers.end() ? std::string_view() : std::string_view(it->value().data(), it->value().size());
  }

  std::string new_idempotency_key() {
    char buf[64];
    std::snprintf(buf, sizeof buf, "tinker-cpp-retry-%016llx%016llx", static_cast<unsigned long long>(rng_()),
                  static_cast<unsigned long long>(rng_()));
    return buf;
  }

  void add_common_headers(http::request& req, const call_spec& spec, const std::string& idempotency_key, int attempt) {
    for (const auto& [k, v] : options_.default_headers) req.headers.emplace_back(k, v);
    req.headers.emplace_back("X-API-Key", spec.api_key ? *spec.api_key : options_.api_key);
    req.headers.emplace_back("Accept", spec.accept);
    if (spec.method != beast_http::verb::get) req.headers.emplace_back("Content-Type", spec.content_type);
    if (!idempotency_key.empty()) req.headers.emplace_back("X-Idempotency-Key", idempotency_key);
    req.headers.emplace_back("X-Stainless-Retry-Count", std::to_string(attempt));
    req.headers.emplace_back("User-Agent", std::string("tinker-cpp/") + library_version);
    for (const auto& h : spec.headers) req.headers.push_back(h);
  }

  static asio::awaitable<std::string> create_session(std::shared_ptr<client_core> self) {
    (void)co_await self->server_config();
    // dynamic_config is optional (a server without it answers 404, and nothing in it is needed
    // to start): it is retried like every other call, and if it still fails the session starts
    // on the defaults. Only cancellation (a system_error, not an api_error) ends the start-up.
    try {
      const client_config_request body{protocol_sdk_version};
      (void)co_await self->post_json<dynamic_config_response>("/api/v1/client/dynamic_config", body,
                                                              http::lane::session);
    } catch (const not_found_error&) {
    } catch (const api_error& e) {
      self->log(log_level::info, std::string("client/dynamic_config failed; starting with its defaults: ") + e.what());
    }
    create_session_request req;
    req.tags = self->options_.tags;
    req.user_metadata = self->options_.user_metadata;
    req.sdk_version = protocol_sdk_version;
    req.project_id = self->options_.project_id;
    auto resp = co_await self->post_json<create_session_response>("/api/v1/create_session", req, http::lane::session);
    if (resp.info_message) self->log(log_level::info, *resp.info_message);
    if (resp.warning_message) self->log(log_level::warning, *resp.warning_message);
    if (resp.error_message) self->log(log_level::error, *resp.error_message);
    co_return resp.session_id;
  }

  /// Heartbeats every heartbeat_interval. Holds the core only weakly: it ends when the last
  /// client handle is gone (or close() is called), without keeping anything alive.
  void start_heartbeat() {
    heartbeat_timer_ = std::make_shared<asio::steady_timer>(executor_);
    asio::co_spawn(executor_, heartbeat_loop(weak_from_this(), heartbeat_timer_), asio::detached);
  }

  static asio::awaitable<void> heartbeat_loop(std::weak_ptr<client_core> weak,
                                              std::shared_ptr<asio::steady_timer> timer) {
    std::optional<std::chrono::steady_clock::time_point> failing_since;
    while (true) {
      std::chrono::milliseconds interval;
      {
        auto self = weak.lock();
        if (!self || self->closed_ || self->heartbeat_timer_ != timer) co_return;
        interval = self->options_.heartbeat_interval;
      }
      timer->expires_after(interval);
      auto [ec] = co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
      auto self = weak.lock();
      if (ec || !self || self->closed_ || self->heartbeat_timer_ != timer) co_return;
      try {
        call_spec spec;
        spec.path = "/api/v1/session_heartbeat";
        spec.body = json::to_json(session_heartbeat_request{*self->session_id_});
        spec.lane = http::lane::session;
        spec.retry = false;
        spec.timeout = std::chrono::milliseconds(10'000);
        (void)co_await self->call(std::move(spec));
        ++self->stats_.heartbeats;
        failing_since.reset();
      } catch (const boost::system::system_error&) {
        co_return;  // cancelled: shutting down
      } catch (const std::exception& e) {
        const auto now = std::chrono::steady_clock::now();
        if (!failing_since) failing_since = now;
        if (now - *failing_since > std::chrono::seconds(120))
          self->log(log_level::warning,
                    std::string("session heartbeats have failed for over 120 s; the server may end the session: ") +
                        e.what());
      }
    }
  }

  template <class T>
  static asio::awaitable<void> poll_loop(std::shared_ptr<client_core> self, std::shared_ptr<future_state<T>> state,
                                         submission sub, poll_target target, result_decoder<T> decoder,
                                         std::function<asio::awaitable<submission>()> resubmit) {
    auto request_id = std::move(sub.handle.request_id);
    const auto& request_type = target.request_type;
    const auto& subject = target.subject;
    const auto& polling = self->options_.polling;
    poll_fsm fsm(poll_policy{.min_retry_delay = polling.min_retry_delay,
                             .max_fast_retry_delay = polling.max_fast_retry_delay,
                             .min_hold = seconds_d(0.05),
                             .max_backoff = polling.max_backoff,
                             .bad_request_budget = 3,
                             .max_resubmissions = polling.max_resubmissions,
                             .billing_pause_limit = self->billing_pause_window(),
                             .billing_delay = self->options_.retry.billing_retry_interval,
                             .secrets = &self->secrets_});
    fsm.set_request_id(request_id);
    bool allow_metadata_only = true;
    auto roundtrip = sub.roundtrip;
    std::optional<queue_state> last_state;
    for (int iteration = 0; !state->ready(); ++iteration) {
      http::request req;
      req.target = "/api/v1/retrieve_future";
      req.body = json::to_json(future_retrieve_request{request_id, allow_metadata_only});
      req.lane = target.lane;
      req.timeout = self->options_.polling.poll_timeout;
      for (const auto& [k, v] : self->options_.default_headers) req.headers.emplace_back(k, v);
      req.headers.emplace_back("X-API-Key", self->options_.api_key);
      req.headers.emplace_back("Content-Type", "application/json");
      req.headers.emplace_back("Accept",
                               decoder.from_protobuf ? "application/x-protobuf, application/json" : "application/json");
      req.headers.emplace_back("X-Tinker-Request-Iteration", std::to_string(iteration));
      req.headers.emplace_back("X-Tinker-Request-Type", request_type);
      if (iteration == 0)
        req.headers.emplace_back("X-Tinker-Create-Promise-Roundtrip-Time", std::to_string(roundtrip.count()));
      const auto sent = std::chrono::steady_clock::now();
      poll_decision d;
      try {
        ++self->stats_.polls;
        auto res = co_await self->send(std::move(req));
        d = fsm.on_response(res.status, header(res, "content-type"), std::move(res.body),
                            std::chrono::steady_clock::now() - sent,
                            parse_retry_after(header(res, "retry-after-ms"), header(res, "retry-after")));
      } catch (const api_connection_error&) {
        d = fsm.on_transport_error(std::current_exception());
      }
      if (d.queue) {
        self->report_queue_state(request_id, subject, *d.queue, d.queue->queue_state != last_state);
        last_state = d.queue->queue_state;
      }
      using kind = poll_decision::kind;
      switch (d.what) {
        case kind::done_protobuf:
          if (!decoder.from_protobuf) {
            state->set_exception(std::make_exception_ptr(api_response_validation_error(
                "retrieve_future for " + request_id + " answered protobuf for a JSON result")));
            co_return;
          }
          try {
            state->set_value(decoder.from_protobuf(d.payload));
          } catch (const protocol_error& e) {
            state->set_exception(std::make_exception_ptr(api_response_validation_error(
                "retrieve_future for " + request_id + ": invalid protobuf result: " + e.what())));
          }
          co_return;
        case kind::done_json: try { state->set_value(decoder.from_json(d.json));
          } catch (const protocol_error& e) {
            state->set_exception(std::make_exception_ptr(
                api_response_validation_error("retrieve_future for " + request_id + ": invalid result: " + e.what())));
          }
          co_return;
        case kind::failed:
          state->set_exception(std::make_exception_ptr(
              request_failed_error(request_id, d.failure.category,
                                   "request " + request_id + " failed (" + std::string(to_string(d.failure.category)) +
                                       "): " + d.failure.error)));
          co_return;
        case kind::fetch_payload:
          allow_metadata_only = false;
          if (d.delay.count() > 0) co_await self->sleep(d.delay);
          break;
        case kind::poll_again:
          if (d.delay.count() > 0) co_await self->sleep(d.delay);
          break;
        case kind::resubmit:
          if (!resubmit) {
            state->set_exception(d.error);
            co_return;
          }
          if (d.delay.count() > 0) co_await self->sleep(d.delay);
          {
            auto again = co_await resubmit();
            request_id = std::move(again.handle.request_id);
            roundtrip = again.roundtrip;
          }
          fsm.set_request_id(request_id);
          allow_metadata_only = true;
          iteration = -1;
          break;
        case kind::error: state->set_exception(d.error); co_return;
      }
    }
  }

  asio::any_io_executor executor_;
  client_options options_;
  http::url base_;
  std::shared_ptr<http::transport> transport_;
  std::mt19937_64 rng_;
  std::vector<std::string> secrets_;  ///< never part of a message: see log() and add_secret()
  std::optional<client_config_response> config_;
  std::optional<std::string> session_id_;
  std::shared_ptr<future_state<std::string>> session_once_;
  std::shared_ptr<asio::steady_timer> heartbeat_timer_;
  std::int64_t next_model_seq_id_ = 0;
  std::int64_t next_sampling_session_seq_id_ = 0;
  std::map<std::string, std::chrono::steady_clock::time_point> last_pause_log_;  ///< per subject
  std::optional<std::chrono::steady_clock::time_point> billing_since_, last_billing_log_;
  std::chrono::steady_clock::time_point last_billing_answer_{};
  bool closed_ = false;
  client_stats stats_;
};

}  // namespace tinker::detail
