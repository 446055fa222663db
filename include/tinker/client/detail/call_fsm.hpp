// The decision logic of one call that is not a poll (submissions, REST calls, session calls),
// free of I/O: the driver sends the request, feeds in what came back (an answer, or no answer),
// and does what the decision says. The status policy, the backoff with jitter, Retry-After, the
// retry and time budgets, billing pauses, sample back-pressure and the 415 fallback are decided
// here and nowhere else; the expected answers of a hot path (a 429 to a sample) are values.
//
//   2xx                         done
//   402 in a billing pause      retry after the billing interval, uncounted, off the time budget
//                               (back_off instead, for calls under back-pressure)
//   429 under back-pressure     back_off: the driver waits the shared back-off and resubmits
//   415 with the JSON fallback  use_json: the driver re-encodes and sends again
//   connection error, 408, 409, 429, 5xx, an empty 400 (what proxies send) — or what the
//   server's x-should-retry says — retry after Retry-After or min(initial * 2^n, max) shortened
//   by up to `jitter`, while retries and the time budget last; a 409 is final when the call
//   says conflicts are the caller's mistake
//   anything else               fail with the status's error type
#pragma once

#include <tinker/client/detail/backoff.hpp>
#include <tinker/client/detail/billing_pause.hpp>
#include <tinker/client/detail/status_error.hpp>
#include <tinker/error.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace tinker::detail {

struct call_policy {
  bool retry = true;  ///< the generic retries apply (off for heartbeats and sample submissions)
  int max_retries = 10;
  seconds_d initial_backoff{0.5};
  seconds_d max_backoff{10.0};
  double jitter = 0.25;
  seconds_d total_budget{300.0};    ///< since the first attempt, billing pauses not counted
  seconds_d billing_interval{5.0};  ///< between attempts while a billing pause lasts
  bool conflict_is_final = false;   ///< a 409 is the caller's mistake (a name that exists)
  bool back_pressure = false;       ///< 429 (and 402 in a billing pause) mean "back off, resubmit"
  bool json_fallback = false;       ///< a 415 means "send it as JSON"
};

struct call_decision {
  enum class kind {
    done,      ///< a 2xx answer
    retry,     ///< send the same request again after `delay`
    back_off,  ///< under back-pressure: the server asked to slow down (the driver's shared back-off)
    use_json,  ///< the server does not take this encoding: send it again as JSON
    fail,      ///< give up with `error`
  };
  kind what = kind::done;
  seconds_d delay{0};
  std::exception_ptr error;
  bool billing = false;  ///< a retry because of a billing pause (the driver may say so in its log)
};

class call_fsm {
public:
  using clock_fn = std::function<std::chrono::steady_clock::time_point()>;

  /// `method` and `path` name the call in messages; `billing`, `rng` and `secrets` are the
  /// client's (shared, and outliving the FSM); `secrets` are redacted from every error.
  call_fsm(
      call_policy policy, std::string method, std::string path, billing_pause& billing, std::mt19937_64& rng,
      const std::vector<std::string>& secrets, clock_fn now = [] { return std::chrono::steady_clock::now(); })
      : policy_(policy),
        method_(std::move(method)),
        path_(std::move(path)),
        billing_(billing),
        rng_(rng),
        secrets_(secrets),
        now_(std::move(now)),
        started_(now_()) {}

  /// An HTTP answer. `should_retry` is the server's x-should-retry header, if it sent one.
  call_decision on_response(unsigned status, std::string body, std::optional<bool> should_retry = std::nullopt,
                            std::optional<seconds_d> retry_after = std::nullopt) {
    end_billing_wait();
    call_decision d;
    if (status >= 200 && status < 300) return d;
    if (status == 402 && (policy_.retry || policy_.back_pressure) && billing_.continues()) {
      d.billing = true;
      if (policy_.back_pressure) {
        d.what = call_decision::kind::back_off;
        return d;
      }
      d.what = call_decision::kind::retry;
      d.delay = policy_.billing_interval;
      d.billing = true;
      billing_wait_started_ = now_();
      return d;
    }
    if (status == 429 && policy_.back_pressure) return back_off();
    if (status == 415 && policy_.json_fallback) {
      d.what = call_decision::kind::use_json;
      return d;
    }
    bool retryable = retryable_status(status) || (status == 400 && body.empty());
    auto failure = make_status_error(method_, path_, status, std::move(body), secrets_);
    if (should_retry) retryable = *should_retry;
    if (status == 409 && policy_.conflict_is_final) retryable = false;  // (over x-should-retry too)
    if (!retryable || !policy_.retry) return fail(std::move(failure));
    return retry_or_fail(std::move(failure), retry_after);
  }

  /// No answer (connection failure or timeout, as an api_connection_error).
  call_decision on_transport_error(std::exception_ptr error) {
    end_billing_wait();
    if (!policy_.retry) return fail(std::move(error));
    return retry_or_fail(std::move(error), std::nullopt);
  }

  /// Retries decided so far (the X-Stainless-Retry-Count of the next attempt).
  int retries() const noexcept { return retries_; }

private:
  call_decision back_off() {
    call_decision d;
    d.what = call_decision::kind::back_off;
    return d;
  }

  call_decision fail(std::exception_ptr error) {
    call_decision d;
    d.what = call_decision::kind::fail;
    d.error = std::move(error);
    return d;
  }

  call_decision retry_or_fail(std::exception_ptr failure, std::optional<seconds_d> server_delay) {
    const seconds_d spent = now_() - started_ - billing_time_;
    if (retries_ >= policy_.max_retries || spent >= policy_.total_budget) return fail(std::move(failure));
    call_decision d;
    d.what = call_decision::kind::retry;
    d.delay = server_delay
                  ? *server_delay
                  : backoff_delay(retries_, policy_.initial_backoff, policy_.max_backoff, policy_.jitter, rng_);
    d.error = std::move(failure);  // what the retry is about (for a log line)
    ++retries_;
    return d;
  }

  /// A billing wait does not count against the time budget.
  void end_billing_wait() {
    if (!billing_wait_started_) return;
    billing_time_ += now_() - *billing_wait_started_;
    billing_wait_started_.reset();
  }

  call_policy policy_;
  std::string method_, path_;
  billing_pause& billing_;
  std::mt19937_64& rng_;
  const std::vector<std::string>& secrets_;
  clock_fn now_;
  std::chrono::steady_clock::time_point started_;
  seconds_d billing_time_{0};
  std::optional<std::chrono::steady_clock::time_point> billing_wait_started_;
  int retries_ = 0;
};

}  // namespace tinker::detail
