// client_options: everything a service_client is configured with, defaulting from the
// environment the way the official SDK does (TINKER_BASE_URL, TINKER_API_KEY, TINKER_TAGS,
// TINKER_PROJECT_ID).
#pragma once

#include <tinker/client/logging.hpp>
#include <tinker/error.hpp>
#include <tinker/http/lane.hpp>
#include <tinker/http/tls_options.hpp>
#include <tinker/types/future.hpp>

#include <array>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace tinker {

/// The SDK's default service.
inline constexpr const char* default_base_url = "https://tinker.thinkingmachines.dev/services/tinker-prod";

/// Retries of one HTTP call (connection errors, 408, 409, 429, 5xx), with exponential backoff and
/// jitter; Retry-After is honoured. Submissions keep their idempotency key and seq_id across retries.
struct retry_policy {
  int max_retries = 10;
  std::chrono::milliseconds initial_backoff{500};
  std::chrono::milliseconds max_backoff{10'000};
  double jitter = 0.25;  ///< delays are shortened by up to this fraction
  /// Give up once this much time passed since the first attempt (the SDK's 5-minute wrapper).
  std::chrono::milliseconds total_budget{300'000};
  /// A 402 (billing) answer is retried after this long, uncounted, while the server's billing
  /// pause window lasts (client/config's billing_exception_max_pause_duration_sec).
  std::chrono::milliseconds billing_retry_interval{5'000};
};

/// Polling of server-side futures.
struct polling_options {
  std::chrono::milliseconds poll_timeout{45'000};  ///< per retrieve_future request
  std::chrono::milliseconds min_retry_delay{50};   ///< floor for "retry now" answers (408, 5xx)
  std::chrono::milliseconds max_fast_retry_delay{2'000};
  std::chrono::milliseconds max_backoff{30'000};  ///< 429 / connection errors: min(2^n s, this)
  /// A sample whose future the server reports gone (410) is resubmitted at most this many times.
  int max_resubmissions = 5;
  /// Use batched completion polling (retrieve_futures) for samples when the server offers it.
  bool use_batched_polling = true;
};

/// How forward_backward requests travel. protobuf is what the current official service expects;
/// json is the legacy encoding (a 415 answer to protobuf switches a client to json automatically).
enum class wire_format { protobuf, json };

/// A change of a future's queue state (training or sampling paused by the server, and resumed).
struct queue_state_event {
  std::string request_id;
  std::string subject;  ///< "model <id>", "sampler <id>" or "model creation for <base model>"
  tinker::queue_state state = tinker::queue_state::active;
  std::optional<std::string> reason;
};

/// The session was lost for good (see session_lost_error): reported once, on the client's executor.
struct session_lost_event {
  std::string session_id;
  int status = 0;      ///< the status that refused the heartbeat
  std::string reason;  ///< the server's answer, credentials redacted
};

struct client_options {
  std::string base_url;  ///< empty = TINKER_BASE_URL or default_base_url
  std::string api_key;   ///< empty = TINKER_API_KEY
  std::optional<std::string> project_id;
  std::vector<std::string> tags;
  std::map<std::string, std::string> user_metadata;
  std::map<std::string, std::string> default_headers;

  /// Resolving, connecting and the TLS handshake of a new connection.
  std::chrono::milliseconds connect_timeout{5'000};
  /// A whole call: writing the request and reading the full answer (polls use polling.poll_timeout).
  std::chrono::milliseconds request_timeout{60'000};
  /// Idle limits: a call fails when the socket takes no byte of the request (write) or delivers no
  /// byte of the answer (read) for this long. 0 = off. A read limit must exceed the server's
  /// long-poll hold (up to polling.poll_timeout), during which a poll legitimately hears nothing.
  std::chrono::milliseconds write_timeout{60'000};
  std::chrono::milliseconds read_timeout{0};
  std::chrono::milliseconds heartbeat_interval{10'000};
  /// A kept-alive connection unused for this long is closed. While idle connections exist, one
  /// timer waits to close them: an io_context::run() returns once they are closed, or at once when
  /// the client is closed or destroyed.
  std::chrono::seconds idle_connection_timeout{50};
  retry_policy retry;
  polling_options polling;
  http::tls_options tls;
  /// Connections per lane (session, train, sample, poll, rest, sample_poll; see http::lane): calls
  /// beyond wait for a connection.
  std::array<std::size_t, http::lane_count> max_connections{16, 64, 512, 256, 16, 2048};
  bool accept_gzip = true;

  wire_format forward_backward_format = wire_format::protobuf;

  /// Admission control per sampling client: samples in flight (submission + polling), and bytes
  /// of prompts being submitted. The server's client/config may lower these.
  std::size_t sample_max_in_flight = 2000;
  std::size_t sample_max_dispatch_bytes = 10u << 20;

  log_sink log = stderr_log_sink();
  std::function<void(const queue_state_event&)> on_queue_state;
  /// Called when the heartbeat is refused for good (the session is gone); later calls that need the
  /// session fail with session_lost_error. Transient heartbeat failures are retried, not reported.
  std::function<void(const session_lost_event&)> on_session_lost;

  /// Fills what is unset from the environment and checks the result; throws tinker::invalid_argument.
  client_options& resolve() {
    auto env = [](const char* name) -> std::optional<std::string> {
      const char* v = std::getenv(name);
      if (!v || !*v) return std::nullopt;
      return std::string(v);
    };
    if (base_url.empty()) base_url = env("TINKER_BASE_URL").value_or(default_base_url);
    if (api_key.empty()) api_key = env("TINKER_API_KEY").value_or("");
    if (!project_id) project_id = env("TINKER_PROJECT_ID");
    if (tags.empty())
      if (auto t = env("TINKER_TAGS")) {
        std::set<std::string> unique;
        std::string_view rest = *t;
        while (!rest.empty()) {
          const auto comma = rest.find(',');
          auto tag = rest.substr(0, comma);
          while (!tag.empty() && tag.front() == ' ') tag.remove_prefix(1);
          while (!tag.empty() && tag.back() == ' ') tag.remove_suffix(1);
          if (!tag.empty()) unique.emplace(tag);
          if (comma == std::string_view::npos) break;
          rest.remove_prefix(comma + 1);
        }
        tags.assign(unique.begin(), unique.end());
      }
    if (api_key.empty())
      throw tinker::invalid_argument("client_options.api_key is empty and TINKER_API_KEY is not set");
    if (api_key.rfind("tml-", 0) != 0 && api_key.rfind("eyJ", 0) != 0)
      throw tinker::invalid_argument(
          "client_options.api_key must start with 'tml-' (or be a JWT); the key given does not");
    check();
    return *this;
  }

private:
  /// Values that would make the client misbehave rather than fail: a zero heartbeat or poll
  /// timeout is a tight loop, a jitter over 1 a negative delay, no connections a hang.
  void check() const {
    auto fail = [](const std::string& name, const std::string& rule, const std::string& got) {
      throw tinker::invalid_argument("client_options." + name + " must be " + rule + ", got " + got);
    };
    auto ms = [](std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; };
    auto positive = [&](const char* name, std::chrono::milliseconds d) {
      if (d.count() <= 0) fail(name, "> 0", ms(d));
    };
    auto non_negative = [&](const char* name, std::chrono::milliseconds d) {
      if (d.count() < 0) fail(name, ">= 0 (0 = off)", ms(d));
    };
    positive("connect_timeout", connect_timeout);
    positive("request_timeout", request_timeout);
    non_negative("write_timeout", write_timeout);
    non_negative("read_timeout", read_timeout);
    positive("heartbeat_interval", heartbeat_interval);
    positive("idle_connection_timeout", idle_connection_timeout);
    if (retry.max_retries < 0) fail("retry.max_retries", ">= 0", std::to_string(retry.max_retries));
    positive("retry.initial_backoff", retry.initial_backoff);
    if (retry.max_backoff < retry.initial_backoff)
      fail("retry.max_backoff", ">= retry.initial_backoff (" + ms(retry.initial_backoff) + ")", ms(retry.max_backoff));
    if (!(retry.jitter >= 0 && retry.jitter <= 1))  // (also refuses NaN)
      fail("retry.jitter", "in [0, 1]", std::to_string(retry.jitter));
    positive("retry.total_budget", retry.total_budget);
    positive("retry.billing_retry_interval", retry.billing_retry_interval);
    positive("polling.poll_timeout", polling.poll_timeout);
    positive("polling.min_retry_delay", polling.min_retry_delay);
    if (polling.max_fast_retry_delay < polling.min_retry_delay)
      fail("polling.max_fast_retry_delay", ">= polling.min_retry_delay (" + ms(polling.min_retry_delay) + ")",
           ms(polling.max_fast_retry_delay));
    positive("polling.max_backoff", polling.max_backoff);
    if (polling.max_resubmissions < 0)
      fail("polling.max_resubmissions", ">= 0", std::to_string(polling.max_resubmissions));
    for (std::size_t i = 0; i < max_connections.size(); ++i)
      if (max_connections[i] == 0)
        fail("max_connections[" + std::to_string(i) + "] (lane " +
                 std::string(http::to_string(static_cast<http::lane>(i))) + ")",
             ">= 1", "0");
    if (sample_max_in_flight == 0) fail("sample_max_in_flight", ">= 1", "0");
    if (sample_max_dispatch_bytes == 0) fail("sample_max_dispatch_bytes", ">= 1", "0");
  }
};

}  // namespace tinker
