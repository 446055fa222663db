// A local engine on its own thread plus a synchronous HTTP client, and helpers that speak the
// protocol step by step (sessions, models, futures) so each test reads like the wire exchange.
#pragma once

#include "common/sync_http_client.hpp"

#include <tinker/byte_tokenizer.hpp>
#include <tinker/json.hpp>
#include <tinker/local/engine.hpp>
#include <tinker/local/engine_test_hook.hpp>
#include <tinker/proto.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

namespace tinker::test {

inline constexpr const char* tiny_model = "tinker-local/byte-lm-tiny";

/// The engine clock: real time plus an offset the test moves forward (expiry without sleeping), or
/// frozen at a time the test chooses (then only advance() moves it: hour buckets, days).
struct manual_clock {
  std::shared_ptr<std::atomic<std::int64_t>> offset_s = std::make_shared<std::atomic<std::int64_t>>(0);
  /// Microseconds since the epoch the clock stands at; 0 = it follows real time.
  std::shared_ptr<std::atomic<std::int64_t>> frozen_us = std::make_shared<std::atomic<std::int64_t>>(0);
  void advance(std::chrono::seconds s) { *offset_s += s.count(); }
  void freeze_at(std::chrono::system_clock::time_point t) {
    *frozen_us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  }
  std::function<std::chrono::system_clock::time_point()> fn() const {
    return [o = offset_s, f = frozen_us] {
      const auto frozen = f->load();
      const auto base = frozen ? std::chrono::system_clock::time_point(std::chrono::microseconds(frozen))
                               : std::chrono::system_clock::now();
      return base + std::chrono::seconds(o->load());
    };
  }
};

inline local::engine_options test_engine_options(const std::string& data_dir = {}) {
  local::engine_options o;
  o.data_dir = data_dir;
  o.long_poll_hold = std::chrono::milliseconds(2000);
  o.compute_threads = 2;
  return o;
}

/// A scratch directory removed at the end of the test.
struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    path = std::filesystem::temp_directory_path() /
           ("tinker-engine-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  static std::atomic<int>& counter() {
    static std::atomic<int> c{0};
    return c;
  }
};

struct engine_fixture {
  manual_clock clock;
  std::unique_ptr<local::embedded_engine> engine;
  std::unique_ptr<sync_http_client> http;

  explicit engine_fixture(local::engine_options o = test_engine_options()) { start(std::move(o)); }

  void start(local::engine_options o) {
    o.clock = clock.fn();
    engine = std::make_unique<local::embedded_engine>(std::move(o));
    http = std::make_unique<sync_http_client>(engine->base_url());
  }

  /// The engine's internal counters (requests per route, futures held, ...).
  local::engine_test_hook hook() { return local::engine_test_hook(*engine); }

  /// POSTs `body` (a protocol value) as JSON and returns the answer, requiring `status`.
  template <class T>
  sync_response post(const std::string& path, const T& body, unsigned status = 200) {
    auto res = http->post_raw(path, json::to_json(body), "application/json");
    CHECK_MESSAGE(res.status == status, path << " -> " << res.status << " " << res.body);
    return res;
  }

  std::string create_session() {
    create_session_request req;
    req.sdk_version = "0.25.0";
    return json::from_json<create_session_response>(post("/api/v1/create_session", req).body).session_id;
  }

  /// Polls until the future is done; returns the final answer (protobuf or JSON).
  sync_response wait(const std::string& request_id, bool accept_protobuf = false) {
    for (int i = 0; i < 1000; ++i) {
      auto res = http->request(
          boost::beast::http::verb::post, "/api/v1/retrieve_future",
          json::to_json(future_retrieve_request{request_id, true}),
          accept_protobuf ? std::vector<std::pair<std::string, std::string>>{{"Accept", "application/x-protobuf"}}
                          : std::vector<std::pair<std::string, std::string>>{});
      if (res.status != 200) return res;
      if (res.header("Content-Type").find("protobuf") != std::string::npos) return res;
      auto v = res.json();
      if (v.is_object() && v.as_object().contains("type") && v.as_object().at("type") == "try_again") continue;
      return res;
    }
    FAIL("future " << request_id << " never finished");
    return {};
  }

  /// Submits and waits; returns the result JSON (fails the test on a failed future).
  boost::json::value submit_and_wait(const std::string& path, const std::string& body) {
    auto res = http->post_raw(path, body, "application/json");
    REQUIRE_MESSAGE(res.status == 200, path << " -> " << res.status << " " << res.body);
    auto id = json::from_json<untyped_api_future>(res.body).request_id;
    auto done = wait(id);
    REQUIRE_MESSAGE(done.status == 200, done.body);
    auto v = done.json();
    REQUIRE_MESSAGE(!v.as_object().contains("error"), done.body);
    return v;
  }

  std::string create_model(const std::string& session, std::int64_t model_seq_id = 0, int rank = 4,
                           const std::string& base = tiny_model) {
    create_model_request req{session, model_seq_id, base, std::nullopt, lora_config{rank, 1234, true, true, true}};
    auto v = submit_and_wait("/api/v1/create_model", json::to_json(req));
    return json::from_value<create_model_response>(v).model_id;
  }

  /// A next-byte-prediction datum for `text` (input = bytes[:-1], targets = bytes[1:], weights 1).
  static datum text_datum(const std::string& text) {
    byte_tokenizer tok;
    auto tokens = tok.encode(text, true);
    std::vector<token_id> input(tokens.begin(), tokens.end() - 1);
    std::vector<std::int64_t> targets(tokens.begin() + 1, tokens.end());
    datum d;
    d.model_input = model_input::from_ints(std::move(input));
    d.loss_fn_inputs.emplace("target_tokens", tensor_data(std::move(targets)));
    d.loss_fn_inputs.emplace("weights", tensor_data(std::vector<float>(tokens.size() - 1, 1.0f)));
    return d;
  }

  /// forward_backward (protobuf request, protobuf result) of `data` as operation `seq` of `model`.
  forward_backward_output forward_backward(const std::string& model, std::int64_t seq, std::vector<datum> data,
                                           loss_fn_type loss = loss_fn_type::cross_entropy, bool forward_only = false) {
    forward_backward_request req{forward_backward_input{std::move(data), loss, std::nullopt}, model, seq, forward_only};
    auto res = http->post_raw("/api/v1/forward_backward", proto::encode(req), "application/x-protobuf");
    REQUIRE_MESSAGE(res.status == 200, res.body);
    auto done = wait(json::from_json<untyped_api_future>(res.body).request_id, true);
    REQUIRE_MESSAGE(done.status == 200, done.body);
    REQUIRE_MESSAGE(done.header("Content-Type") == "application/x-protobuf", done.body);
    return proto::decode_forward_backward_output(done.body);
  }

  optim_step_response optim_step(const std::string& model, std::int64_t seq, double lr = 0.02) {
    adam_params p;
    p.learning_rate = lr;
    return json::from_value<optim_step_response>(
        submit_and_wait("/api/v1/optim_step", json::to_json(optim_step_request{p, model, seq})));
  }
};

/// Helpers the engine test files share.
inline double loss_sum(const forward_backward_output& out) { return out.metrics.at("loss:sum"); }

/// The `detail` of a JSON error answer; fails the test if the answer has none.
inline std::string detail_of(const sync_response& r) {
  auto v = r.json();
  REQUIRE_MESSAGE(v.is_object(), r.body);
  REQUIRE_MESSAGE(v.as_object().contains("detail"), r.body);
  return std::string(v.as_object().at("detail").as_string());
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

/// The request id of a future-returning submission's answer; fails the test unless it is a 200.
inline std::string future_id(const sync_response& res) {
  REQUIRE_MESSAGE(res.status == 200, res.status << " " << res.body);
  return json::from_json<untyped_api_future>(res.body).request_id;
}

/// Whether a retrieve_future answer is a try_again.
inline bool is_try_again(const sync_response& res) {
  if (res.status != 200 || res.header("Content-Type").find("json") == std::string::npos) return false;
  auto v = res.json();
  return v.is_object() && v.as_object().contains("type") && v.as_object().at("type") == "try_again";
}

}  // namespace tinker::test
