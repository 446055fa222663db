// The shared heart of every client made from one service_client: the transport, the options,
// the server's client configuration, the session (created lazily, kept alive by a heartbeat), and
// the two primitives everything else is built from — an HTTP call with the retry policy, and a
// server-side future polled into an api_future.
//
// All of it runs on one strand, made at construction over the executor the service_client was
// given: operations are started there (see completion.hpp) whatever thread calls them, so an
// io_context run by several threads is safe. Only stats() and what is documented as "any thread"
// may be used from elsewhere.
#pragma once

#include <tinker/client/api_future.hpp>
#include <tinker/client/client_stats.hpp>
#include <tinker/client/detail/backoff.hpp>
#include <tinker/client/detail/billing_pause.hpp>
#include <tinker/client/detail/call_fsm.hpp>
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
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
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
  bool retry = true;  ///< the retry policy applies (off for polls, heartbeats and sample submissions)
  /// A 409 is the caller's mistake, not a passing conflict: a checkpoint name that exists, a
  /// checkpoint already (un)published. Deviation from the SDK, which retries every 409 for up to
  /// five minutes (docs/protocol.md §5.3, §3.4) before failing with the same answer; here it fails at
  /// once, as a conflict_error with the server's body.
  bool conflict_is_final = false;
  /// A 429 (or a 402 in a billing pause) is the caller's to handle: exchange() returns back_off
  /// (sample submissions, with their shared back-off).
  bool back_pressure = false;
  /// A 415 is the caller's to handle: exchange() returns use_json (protobuf forward_backward).
  bool json_fallback = false;
  /// A 3xx answer is the answer (the checkpoint archive's 302 to its signed URL), not a failure.
  bool redirect_is_answer = false;
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
      : strand_(asio::make_strand(std::move(ex))),
        executor_(strand_),
        options_(std::move(options.resolve())),
        base_(http::url::parse(options_.base_url)),
        transport_(std::make_shared<http::transport>(executor_, base_, transport_options(options_))),
        rng_(std::random_device{}()) {
    secrets_.push_back(options_.api_key);
  }

  /// The heartbeat and the connections end on the strand (now, when this runs there; otherwise as
  /// soon as the strand runs next): a core may be released from any thread.
  ~client_core() { end_background_work(); }

  const asio::any_io_executor& executor() const noexcept { return executor_; }
  const client_options& options() const noexcept { return options_; }
  http::transport& transport() noexcept { return *transport_; }
  std::mt19937_64& rng() noexcept { return rng_; }

  /// A snapshot of the counters (any thread).
  client_stats stats() const noexcept {
    client_stats s;
    s.http_requests = stats_.http_requests.load(std::memory_order_relaxed);
    s.retries = stats_.retries.load(std::memory_order_relaxed);
    s.polls = stats_.polls.load(std::memory_order_relaxed);
    s.heartbeats = stats_.heartbeats.load(std::memory_order_relaxed);
    s.gzip_responses = stats_.gzip_responses.load(std::memory_order_relaxed);
    return s;
  }

  /// Sends one request as it is (no retries), counting it in stats().
  asio::awaitable<http::response> send(http::request req) {
    stats_.http_requests.fetch_add(1, std::memory_order_relaxed);
    auto res = co_await transport_->send(std::move(req));
    if (auto ce = res.headers.find(beast_http::field::content_encoding);
        ce != res.headers.end() && ce->value() == "gzip")
      stats_.gzip_responses.fetch_add(1, std::memory_order_relaxed);
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

  /// What a call ended with when it did not fail: its 2xx answer, or, for calls that allow them,
  /// the server's request to back off (spec.back_pressure) or to send JSON (spec.json_fallback).
  struct call_outcome {
    call_decision::kind what = call_decision::kind::done;
    http::response response;  ///< (done)
  };

  /// Sends `spec` and does what call_fsm decides (see call_fsm.hpp for the policy): retries with
  /// the same body, idempotency key and seq_id, waits billing pauses out; throws the final
  /// failure as the matching api_error.
  asio::awaitable<call_outcome> exchange(call_spec spec) {
    const auto idempotency_key = spec.method == beast_http::verb::get ? std::string() : new_idempotency_key();
    // One copy of the body serves every attempt (a big forward_backward batch is not copied per retry).
    const auto body = std::make_shared<const std::string>(std::move(spec.body));
    if (spec.api_key) add_secret(spec.api_key);
    call_fsm fsm(policy_for(spec), verb_name(spec.method), spec.path, billing_, rng_, secrets_);
    for (int sent = 0;; ++sent) {
      http::request req;
      req.method = spec.method;
      req.target = spec.path;
      req.shared_body = body;
      req.lane = spec.lane;
      req.timeout = spec.timeout;
      add_common_headers(req, spec, idempotency_key, sent);
      call_decision d;
      try {
        if (sent > 0) stats_.retries.fetch_add(1, std::memory_order_relaxed);
        auto res = co_await send(std::move(req));
        if ((res.status >= 200 && res.status < 300) ||
            (spec.redirect_is_answer && res.status >= 300 && res.status < 400))
          co_return call_outcome{call_decision::kind::done, std::move(res)};
        std::optional<bool> should_retry;
        if (auto h = res.headers.find("x-should-retry"); h != res.headers.end()) should_retry = h->value() == "true";
        const auto retry_after = parse_retry_after(header(res, "retry-after-ms"), header(res, "retry-after"));
        d = fsm.on_response(res.status, std::move(res.body), should_retry, retry_after);
      } catch (const api_connection_error&) {
        d = fsm.on_transport_error(std::current_exception());
      }
      if (d.billing) warn_billing();
      switch (d.what) {
        case call_decision::kind::retry:
          if (!d.billing)
            log(log_level::debug, verb_name(spec.method) + " " + spec.path + ": retrying in " +
                                      std::to_string(d.delay.count()) + " s (retry " + std::to_string(fsm.retries()) +
                                      ")");
          co_await sleep(d.delay);
          break;
        case call_decision::kind::fail: std::rethrow_exception(d.error);
        case call_decision::kind::done:  // (a 2xx returned above)
        case call_decision::kind::back_off:
        case call_decision::kind::use_json: co_return call_outcome{d.what, {}};
      }
    }
  }

  /// exchange() for calls whose only success is a 2xx answer: returns it.
  asio::awaitable<http::response> call(call_spec spec) {
    auto out = co_await exchange(std::move(spec));
    co_return std::move(out.response);
  }

  /// The client's account of 402 (billing) answers, shared by every call.
  billing_pause& billing() noexcept { return billing_; }

  /// A 402 was waited out: a warning, the first time and then once a minute while it lasts.
  void warn_billing() {
    if (billing_.warning_due())
      log(log_level::warning, "the server answers 402 (billing): requests are paused and retried until it lifts");
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

  /// A submission's outcome: its future's handle (done), or what exchange() returned instead.
  struct submit_outcome {
    call_decision::kind what = call_decision::kind::done;
    submission sub;  ///< (done)
  };

  /// Submits a call that answers with a future handle, timing the round trip; a back-off or a
  /// switch to JSON (when the spec allows them) comes back as a value.
  asio::awaitable<submit_outcome> exchange_submission(call_spec spec) {
    const auto started = std::chrono::steady_clock::now();
    const auto method = verb_name(spec.method), path = spec.path;
    auto out = co_await exchange(std::move(spec));
    if (out.what != call_decision::kind::done) co_return submit_outcome{out.what, {}};
    submit_outcome s;
    s.sub.handle = decode_json<untyped_api_future>(method, path, out.response.body);
    s.sub.roundtrip = std::chrono::steady_clock::now() - started;
    co_return s;
  }

  /// Submits a call that answers with a future handle, timing the round trip.
  asio::awaitable<submission> submit(call_spec spec) {
    auto out = co_await exchange_submission(std::move(spec));
    co_return std::move(out.sub);
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
    if (!config_) {
      config_ = c;
      billing_.set_window(seconds_d(static_cast<double>(c.billing_exception_max_pause_duration_sec)));
    }
    co_return *config_;
  }

  /// The configuration fetched so far (set once a session exists).
  const std::optional<client_config_response>& cached_config() const noexcept { return config_; }

  /// The session id, creating the session on first use (concurrent first uses share one creation).
  asio::awaitable<std::string> session_id() {
    if (session_lost_) std::rethrow_exception(session_lost_);
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

  /// Stops the heartbeat and the transport; later calls fail. Idempotent. On the strand.
  void close() {
    closed_ = true;
    if (heartbeat_timer_) heartbeat_timer_->cancel();
    heartbeat_timer_.reset();
    transport_->shutdown();
  }

  /// close(), from any thread: on the strand, at once when the caller runs there.
  void close_from_anywhere() {
    asio::dispatch(strand_, [self = shared_from_this()] { self->close(); });
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
    t.idle_timeout = o.idle_connection_timeout;
    t.accept_gzip = o.accept_gzip;
    t.tls = o.tls;
    if (o.log) t.warn = [log = o.log](std::string_view line) { log(log_level::warning, line); };
    return t;
  }

  call_policy policy_for(const call_spec& spec) const {
    const auto& r = options_.retry;
    call_policy p;
    p.retry = spec.retry;
    p.max_retries = r.max_retries;
    p.initial_backoff = r.initial_backoff;
    p.max_backoff = r.max_backoff;
    p.jitter = r.jitter;
    p.total_budget = r.total_budget;
    p.billing_interval = r.billing_retry_interval;
    p.conflict_is_final = spec.conflict_is_final;
    p.back_pressure = spec.back_pressure;
    p.json_fallback = spec.json_fallback;
    return p;
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
        self->stats_.heartbeats.fetch_add(1, std::memory_order_relaxed);
        failing_since.reset();
      } catch (const boost::system::system_error&) {
        co_return;  // cancelled: shutting down
      } catch (const api_status_error& e) {
        // A refusal that no retry will change: the session is gone (404, 410) or the key no longer
        // opens it (401, 403). The next calls that need the session report it, and so does the
        // observer, rather than a log line nobody reads.
        if (e.status() == 401 || e.status() == 403 || e.status() == 404 || e.status() == 410) {
          self->lose_session(e.status(), e.what());
          co_return;
        }
        const auto now = std::chrono::steady_clock::now();
        if (!failing_since) failing_since = now;
        if (now - *failing_since > std::chrono::seconds(120))
          self->log(log_level::warning,
                    std::string("session heartbeats have failed for over 120 s; the server may end the session: ") +
                        e.what());
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

  /// The session is gone for good: later session_id() calls fail with session_lost_error, the
  /// observer hears of it once, and the heartbeat stops.
  void lose_session(int status, const std::string& why) {
    const auto id = session_id_.value_or("");
    const auto message = "session " + id + " was lost: its heartbeat was refused (" + why + ")";
    session_lost_ = std::make_exception_ptr(session_lost_error(id, status, redact_secrets(message, secrets_)));
    session_id_.reset();
    if (heartbeat_timer_) heartbeat_timer_->cancel();
    heartbeat_timer_.reset();
    log(log_level::error, message);
    if (options_.on_session_lost) {
      try {
        options_.on_session_lost(session_lost_event{id, status, redact_secrets(why, secrets_)});
      } catch (...) {
        // an observer's failure never affects the client
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
                             .billing = &self->billing_,
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
        self->stats_.polls.fetch_add(1, std::memory_order_relaxed);
        auto res = co_await self->send(std::move(req));
        d = fsm.on_response(res.status, header(res, "content-type"), std::move(res.body),
                            std::chrono::steady_clock::now() - sent,
                            parse_retry_after(header(res, "retry-after-ms"), header(res, "retry-after")));
      } catch (const api_connection_error&) {
        d = fsm.on_transport_error(std::current_exception());
      }
      if (d.billing) self->warn_billing();
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

  /// What stats() reads (from any thread) while the strand counts.
  struct atomic_stats {
    std::atomic<std::uint64_t> http_requests{0}, retries{0}, polls{0}, heartbeats{0}, gzip_responses{0};
  };

  void end_background_work() noexcept {
    auto end = [timer = heartbeat_timer_, transport = transport_] {
      if (timer) timer->cancel();
      transport->shutdown();
    };
    if (strand_.running_in_this_thread())
      end();
    else
      asio::post(strand_, std::move(end));
  }

  asio::strand<asio::any_io_executor> strand_;
  asio::any_io_executor executor_;  ///< strand_, type-erased: what every operation runs on
  client_options options_;
  http::url base_;
  std::shared_ptr<http::transport> transport_;
  std::mt19937_64 rng_;
  std::vector<std::string> secrets_;  ///< never part of a message: see log() and add_secret()
  std::optional<client_config_response> config_;
  std::optional<std::string> session_id_;
  std::shared_ptr<future_state<std::string>> session_once_;
  std::exception_ptr session_lost_;  ///< set once the heartbeat was refused for good
  std::shared_ptr<asio::steady_timer> heartbeat_timer_;
  std::int64_t next_model_seq_id_ = 0;
  std::int64_t next_sampling_session_seq_id_ = 0;
  std::map<std::string, std::chrono::steady_clock::time_point> last_pause_log_;  ///< per subject
  billing_pause billing_;
  bool closed_ = false;
  atomic_stats stats_;
};

}  // namespace tinker::detail
