// What the client tests share: a local engine with a service_client pointed at it, and small
// builders of data.
#pragma once

#include "common/run_coro.hpp"

#include <tinker/detail/async_event.hpp>
#include <tinker/local/engine.hpp>
#include <tinker/local/engine_test_hook.hpp>
#include <tinker/tinker.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace tinker::test {

namespace asio = boost::asio;

/// What the engine received, as its request observer reports it (on the engine's thread).
struct request_log {
  std::mutex mutex;
  std::vector<local::request_record> records;
  /// Called (on the engine's thread) after each record is added.
  std::function<void(const local::request_record&)> on_record;

  std::function<void(const local::request_record&)> observer() {
    return [this](const local::request_record& r) {
      std::lock_guard lock(mutex);
      records.push_back(r);
      if (on_record) on_record(r);
    };
  }
  std::vector<local::request_record> snapshot() {
    std::lock_guard lock(mutex);
    return records;
  }
};

/// A one-shot event a coroutine on `io` can wait for, fired from any thread.
class io_event {
public:
  explicit io_event(asio::io_context& io) : io_(io) {}
  /// Thread-safe.
  void fire() {
    asio::post(io_, [this] { set(); });
  }
  /// From a handler running on `io` itself: at once.
  void set() {
    fired_ = true;
    event_.notify_all();
  }
  asio::awaitable<void> wait() {
    while (!fired_) co_await event_.wait();
  }

private:
  asio::io_context& io_;
  tinker::detail::async_event event_;
  bool fired_ = false;
};

inline constexpr const char* tiny_model = "tinker-local/byte-lm-tiny";

inline local::engine_options engine_opts() {
  local::engine_options o;
  o.long_poll_hold = std::chrono::milliseconds(2000);
  o.compute_threads = 2;
  return o;
}

/// A local engine plus an io_context and a service_client pointed at it. Log lines are kept.
struct client_fixture {
  local::embedded_engine engine;
  asio::io_context io;
  std::shared_ptr<std::vector<std::string>> log_lines = std::make_shared<std::vector<std::string>>();
  service_client service;

  explicit client_fixture(local::engine_options eo = engine_opts(), std::function<void(client_options&)> tweak = {})
      : engine(std::move(eo)), service(io.get_executor(), make_options(tweak)) {}

  client_options make_options(const std::function<void(client_options&)>& tweak) {
    client_options o;
    o.base_url = engine.base_url();
    o.api_key = "tml-client-test-key";
    o.log = [lines = log_lines](log_level level, std::string_view line) {
      lines->push_back(std::string(to_string(level)) + ": " + std::string(line));
    };
    if (tweak) tweak(o);
    return o;
  }

  /// The engine's internal counters (requests per route, ...).
  local::engine_test_hook hook() { return local::engine_test_hook(engine); }
};

inline datum text_datum(const std::string& text) { return datum::next_token(byte_tokenizer().encode(text, true)); }

inline double loss_of(const forward_backward_output& out) { return out.metrics.at("loss:sum"); }

/// A one-datum batch. (GCC 12 miscompiles braced initializer lists inside co_await expressions,
/// "array used as initializer", so batches are built outside them.)
inline std::vector<datum> one(datum d) {
  std::vector<datum> v;
  v.push_back(std::move(d));
  return v;
}

inline model_input tokens(std::initializer_list<token_id> t) {
  return model_input::from_ints(std::vector<token_id>(t));
}

/// A directory removed at the end of the test.
struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "tinker-client-test-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

inline std::string what_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}

}  // namespace tinker::test
