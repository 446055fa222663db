// The decision logic of polling one server-side future (docs/protocol.md §5.3), free of I/O:
// the driver sends a retrieve_future request, feeds the outcome in, and does what comes back.
// Differences from the SDK, on purpose: "retry immediately" answers (408, 5xx, bad 400s, try_again
// that came back too fast, complete_metadata repeated after the payload was asked for, and 410s)
// get a small growing delay, so an outage or a server that does not long-poll never becomes a
// tight loop; and a future that keeps answering 410 is resubmitted a bounded number of times.
#pragma once

#include <tinker/client/detail/backoff.hpp>
#include <tinker/client/detail/billing_pause.hpp>
#include <tinker/client/detail/status_error.hpp>
#include <tinker/error.hpp>
#include <tinker/json/future.hpp>
#include <tinker/json/serialize.hpp>
#include <tinker/types/future.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tinker::detail {

struct poll_policy {
  /// Smallest delay before re-polling after an answer that says "try again now" (408, 5xx, 400).
  seconds_d min_retry_delay{0.05};
  /// Cap of the growing delay after consecutive 5xx / 400 answers.
  seconds_d max_fast_retry_delay{2.0};
  /// A try_again answer faster than this means the server did not hold the poll.
  seconds_d min_hold{0.05};
  /// Cap of the 429 / connection-error backoff: min(2^n, cap) seconds.
  seconds_d max_backoff{30.0};
  /// Spurious-400 retries per future.
  int bad_request_budget = 3;
  /// 410 (Gone) answers resubmit the request at most this many times per future; the next 410
  /// is a gone_error. A restarted server forgets futures once; one that forgets them every time
  /// would otherwise be fed the same request forever.
  int max_resubmissions = 5;
  /// The client's account of 402 (billing) answers, shared by all its calls (null: the FSM keeps
  /// its own, on its clock); and the wait before each re-poll while a pause lasts.
  billing_pause* billing = nullptr;
  seconds_d billing_delay{5.0};
  /// Credentials redacted from error bodies and messages (the API key the polls carry): the
  /// client's list, shared by every poll rather than copied into each (one per call in flight).
  /// Null = none. Must outlive the FSM.
  const std::vector<std::string>* secrets = nullptr;
};

/// What to do after one poll.
struct poll_decision {
  enum class kind {
    done_protobuf,  ///< `payload` is the protobuf result
    done_json,      ///< `json` is the result object
    failed,         ///< the future failed: `failure`
    fetch_payload,  ///< complete_metadata: poll again with allow_metadata_only = false
    poll_again,     ///< after `delay`
    resubmit,       ///< 410: the future is gone; submit the original request again
    error,          ///< give up with `error`
  };
  kind what = kind::poll_again;
  seconds_d delay{0};
  std::string payload;
  boost::json::value json;
  request_failed_response failure;
  std::exception_ptr error;
  /// Set when the answer reported the queue state (try_again, 408).
  std::optional<try_again_response> queue;
  bool billing = false;  ///< a 402 waited out (the driver may say so in its log)
};

class poll_fsm {
public:
  using clock_fn = std::function<std::chrono::steady_clock::time_point()>;

  /// `now` is the clock of the FSM's own billing account, when the policy names none.
  explicit poll_fsm(
      poll_policy policy = {}, clock_fn now = [] { return std::chrono::steady_clock::now(); })
      : policy_(policy), bad_requests_left_(policy.bad_request_budget) {
    if (!policy_.billing) policy_.billing = &own_billing_.emplace(std::move(now));
  }

  poll_fsm(const poll_fsm&) = delete;  // (policy_.billing may point into this object)
  poll_fsm& operator=(const poll_fsm&) = delete;

  /// An HTTP answer to a poll that took `elapsed`.
  poll_decision on_response(unsigned status, std::string_view content_type, std::string body, seconds_d elapsed,
                            std::optional<seconds_d> retry_after = std::nullopt,
                            std::string_view path = "/api/v1/retrieve_future") {
    poll_decision d;
    if (status == 429) {
      d.delay = retry_after ? *retry_after : exponential();
      ++backoff_exponent_;
      return d;
    }
    backoff_exponent_ = 0;
    if (status == 402) {
      if (policy_.billing->continues()) {
        d.delay = policy_.billing_delay;
        d.billing = true;
        return d;
      }
      return error(make_status_error("POST", path, status, std::move(body), secrets()));
    }
    if (status == 200) return on_ok(content_type, std::move(body), elapsed, path);
    if (status == 408) {
      // Legacy try_again: the body may carry the queue state like a try_again answer.
      boost::system::error_code ec;
      auto v = boost::json::parse(body, ec);
      if (!ec && v.is_object()) {
        bad_requests_left_ = policy_.bad_request_budget;
        try {
          d.queue = boost::json::value_to<try_again_response>(v);
        } catch (const std::exception&) {
        }
      }
      d.delay = fast_poll_delay(elapsed);
      return d;
    }
    if (status >= 500) {
      d.delay = growing_delay();
      return d;
    }
    if (status == 400 && bad_requests_left_ > 0) {
      --bad_requests_left_;
      d.delay = growing_delay();
      return d;
    }
    if (status == 410) {
      if (resubmissions_ >= policy_.max_resubmissions) {
        const auto what = "POST " + std::string(path) + ": request " + request_id_ + " is gone (HTTP 410) after " +
                          std::to_string(resubmissions_) +
                          " resubmissions; giving up: " + describe_body(redact_secrets(body, secrets()));
        return error(std::make_exception_ptr(gone_error(410, redact_secrets(std::move(body), secrets()), what)));
      }
      d.what = poll_decision::kind::resubmit;
      d.error = make_status_error("POST", path, status, std::move(body), secrets());
      // The backoff floor, growing per resubmission: the usual case (a restart) costs 50 ms.
      d.delay = growing_floor(resubmissions_, policy_.min_retry_delay, policy_.max_fast_retry_delay);
      ++resubmissions_;
      return d;
    }
    return error(make_status_error("POST", path, status, std::move(body), secrets()));
  }

  /// The request the polls are about (for messages); a resubmission names its new request.
  void set_request_id(std::string id) { request_id_ = std::move(id); }
  int resubmissions() const noexcept { return resubmissions_; }

  /// No answer (connection failure or timeout): back off exponentially.
  poll_decision on_transport_error(std::exception_ptr /*why*/) {
    poll_decision d;
    d.delay = exponential();
    ++backoff_exponent_;
    return d;
  }

private:
  poll_decision on_ok(std::string_view content_type, std::string body, seconds_d elapsed, std::string_view path) {
    poll_decision d;
    if (content_type.find("application/x-protobuf") != std::string_view::npos) {
      fast_streak_ = 0;
      d.what = poll_decision::kind::done_protobuf;
      d.payload = std::move(body);
      return d;
    }
    try {
      auto answer = json::classify_retrieve_answer(json::parse(body, "retrieve_future answer"));
      if (auto* t = std::get_if<try_again_response>(&answer)) {
        d.queue = std::move(*t);
        d.delay = fast_poll_delay(elapsed);
        return d;
      }
      if (std::get_if<complete_metadata_response>(&answer)) {
        // The first one is answered at once (fetch the payload); a server that keeps answering
        // complete_metadata although the payload was asked for gets the growing delay.
        d.what = poll_decision::kind::fetch_payload;
        if (metadata_answers_++ > 0) d.delay = growing_delay();
        return d;
      }
      fast_streak_ = 0;
      if (auto* f = std::get_if<request_failed_response>(&answer)) {
        d.what = poll_decision::kind::failed;
        d.failure = std::move(*f);
        return d;
      }
      d.what = poll_decision::kind::done_json;
      d.json = std::move(std::get<boost::json::value>(answer));
      return d;
    } catch (const protocol_error& e) {
      return error(std::make_exception_ptr(api_response_validation_error(
          "POST " + std::string(path) + " answered 200 with an invalid body: " + e.what())));
    }
  }

  poll_decision error(std::exception_ptr e) {
    poll_decision d;
    d.what = poll_decision::kind::error;
    d.error = std::move(e);
    return d;
  }

  seconds_d exponential() const {
    return std::min(seconds_d(std::pow(2.0, std::min(backoff_exponent_, 16))), policy_.max_backoff);
  }

  /// 5xx / 400: min_retry_delay, doubling per consecutive answer, capped.
  seconds_d growing_delay() {
    return growing_floor(fast_streak_++, policy_.min_retry_delay, policy_.max_fast_retry_delay);
  }

  /// A held poll re-polls at once; one that came back too fast waits a growing delay.
  seconds_d fast_poll_delay(seconds_d elapsed) {
    if (elapsed >= policy_.min_hold) {
      fast_streak_ = 0;
      return seconds_d(0);
    }
    return growing_delay();
  }

  const std::vector<std::string>& secrets() const noexcept {
    static const std::vector<std::string> none;
    return policy_.secrets ? *policy_.secrets : none;
  }

  poll_policy policy_;
  int backoff_exponent_ = 0;
  int bad_requests_left_;
  int fast_streak_ = 0;
  int metadata_answers_ = 0;
  int resubmissions_ = 0;
  std::string request_id_;
  std::optional<billing_pause> own_billing_;
};

}  // namespace tinker::detail
