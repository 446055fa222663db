// tinker-local-server: the local engine as a process.
//
//   tinker-local-server --port 0 --data-dir ./engine-data --api-key tml-dev
//
// Prints "listening on <base url>" once it serves (with the real port when --port 0), and runs
// until SIGINT or SIGTERM.
#include <tinker/local/engine.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace {

const char* usage = R"(usage: tinker-local-server [options]

A Tinker-compatible training and sampling server with a small byte-level model that trains on CPU.

  --host ADDR              listen address (default 127.0.0.1)
  --port N                 port; 0 picks a free one and prints it (default 0)
  --data-dir DIR           where runs, checkpoints and sessions persist (default: a temporary directory)
  --api-key KEY            an accepted API key (repeatable; each key is its own tenant).
                           Without any, every key starting with tml- is accepted.
  --alias NAME=MODEL       serve NAME (e.g. Qwen/Qwen3-8B) with the engine model MODEL (repeatable)
  --tls-cert FILE --tls-key FILE   serve HTTPS
  --compute-threads N      training/sampling threads (default: hardware threads)
  --long-poll-hold-ms N    how long retrieve_future holds an unfinished future, 1..40000 (default 25000)
  --session-timeout-s N    sessions without heartbeats expire after N seconds (default 300)
  --max-body-bytes N       request body limit (default 67108864)
  --max-request-dense-elements N
                           most dense elements (tokens + loss-input shape elements) one forward_backward
                           may declare (default 4194304)
  --no-batched-polling     do not offer POST /api/v1/retrieve_futures to clients
  --create-via-load        tell clients to create models from checkpoints with one load_weights
                           (client/config create_model_via_load_weights; the form is accepted either way)

fault injection (off by default):
  --fault-latency ROUTE=MS added latency before ROUTE is handled ("*" = every route; repeatable)
  --fault-429 FRACTION     answer this fraction of requests 429 (with Retry-After)
  --fault-retry-after S    Retry-After of injected 429s (default 1)
  --fault-402 FRACTION     ... 402 Payment Required (detail: billing: payment required)
  --fault-500 FRACTION     ... 500
  --fault-503 FRACTION     ... 503
  --fault-drop FRACTION    drop this fraction of connections without answering
  --fault-routes A,B,...   routes the fractions apply to (default: every route but healthz)
  --fault-try-again N      answer try_again to the first N polls of each future
  --fault-pause STATE:PERIOD_MS:DURATION_MS
                           report queue_state STATE (paused_capacity | paused_rate_limit) and hold results
                           for DURATION_MS out of every PERIOD_MS
  --fault-step-time MS     simulated step time of every training operation
  --fault-sample-step-time MS
                           simulated time of every sample batch (its results are held back that long)
  --fault-fail-route ROUTE=CATEGORY
                           futures of requests on ROUTE (forward_backward, optim_step, asample, ...) fail
                           with {"error": "injected failure: ...", "category": CATEGORY} instead of running;
                           CATEGORY is user or server (repeatable)
  --fault-seed N           seed of the random fault decisions (default 1)

  --help                   this text
)";

[[noreturn]] void die(const std::string& message) {
  std::cerr << "tinker-local-server: " << message << "\n(see --help)\n";
  std::exit(2);
}

/// FLAG's value as an integer in [min, max]; anything else (not a number, trailing text, a
/// negative count, a value beyond the range or beyond 64 bits) exits with code 2 naming the flag,
/// the value and the range. Every numeric flag is bounded, so no later arithmetic on it (a
/// seconds-to-milliseconds conversion, a port narrowed to 16 bits) can overflow or wrap.
template <class T = std::int64_t>
T integer(std::string_view flag, std::string_view text, T min, T max) {
  T value{};
  auto r = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || r.ec != std::errc{} || r.ptr != text.data() + text.size() || value < min || value > max)
    die(std::string(flag) + ": expected an integer in [" + std::to_string(min) + ", " + std::to_string(max) +
        "], got '" + std::string(text) + "'");
  return value;
}

/// A duration in milliseconds, at most a day (latencies and step times are for tests).
std::chrono::milliseconds milliseconds(std::string_view flag, std::string_view text, std::int64_t min = 0) {
  return std::chrono::milliseconds(integer<std::int64_t>(flag, text, min, 86'400'000));
}

double fraction(std::string_view flag, std::string_view text) {
  double v = 0;
  auto r = std::from_chars(text.data(), text.data() + text.size(), v);
  // (Written so that NaN, which from_chars accepts, fails the range check too.)
  if (text.empty() || r.ec != std::errc{} || r.ptr != text.data() + text.size() || !(v >= 0.0 && v <= 1.0))
    die(std::string(flag) + ": expected a fraction in [0, 1], got '" + std::string(text) + "'");
  return v;
}

std::pair<std::string, std::string> split_pair(std::string_view flag, std::string_view text, char sep) {
  auto pos = text.find(sep);
  if (pos == std::string_view::npos || pos == 0 || pos + 1 == text.size())
    die(std::string(flag) + ": expected A" + sep + "B, got '" + std::string(text) + "'");
  return {std::string(text.substr(0, pos)), std::string(text.substr(pos + 1))};
}

}  // namespace

int main(int argc, char** argv) {
  tinker::local::engine_options o;
  std::vector<std::string_view> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto flag = args[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= args.size()) die(std::string(flag) + " needs a value");
      return args[++i];
    };
    if (flag == "--help" || flag == "-h") {
      std::cout << usage;
      return 0;
    } else if (flag == "--host")
      o.host = value();
    else if (flag == "--port")
      o.port = static_cast<std::uint16_t>(integer<std::int64_t>(flag, value(), 0, 65535));
    else if (flag == "--data-dir")
      o.data_dir = value();
    else if (flag == "--api-key")
      o.api_keys.emplace_back(value());
    else if (flag == "--alias") {
      auto [name, model] = split_pair(flag, value(), '=');
      o.model_aliases[name] = model;
    } else if (flag == "--tls-cert")
      o.tls_cert_file = std::string(value());
    else if (flag == "--tls-key")
      o.tls_key_file = std::string(value());
    else if (flag == "--compute-threads")
      o.compute_threads = static_cast<std::size_t>(integer<std::int64_t>(flag, value(), 0, 1024));
    else if (flag == "--long-poll-hold-ms") {
      // At most 40 s: below the SDK's 45 s poll timeout.
      o.long_poll_hold = std::chrono::milliseconds(integer<std::int64_t>(flag, value(), 1, 40'000));
    } else if (flag == "--session-timeout-s")
      o.session_timeout = std::chrono::seconds(integer<std::int64_t>(flag, value(), 1, 30 * 86'400));
    else if (flag == "--max-body-bytes")
      o.max_body_bytes = static_cast<std::size_t>(integer<std::int64_t>(flag, value(), 1, std::int64_t{1} << 34));
    else if (flag == "--max-request-dense-elements")
      o.max_request_dense_elements =
          static_cast<std::size_t>(integer<std::int64_t>(flag, value(), 1, std::int64_t{1} << 34));
    else if (flag == "--no-batched-polling")
      o.offer_batched_polling = false;
    else if (flag == "--create-via-load")
      o.offer_create_via_load = true;
    else if (flag == "--fault-latency") {
      auto [route, ms] = split_pair(flag, value(), '=');
      o.faults.route_latency[route] = milliseconds(flag, ms);
    } else if (flag == "--fault-429")
      o.faults.fraction_429 = fraction(flag, value());
    else if (flag == "--fault-402")
      o.faults.fraction_402 = fraction(flag, value());
    else if (flag == "--fault-retry-after")
      o.faults.retry_after = std::chrono::seconds(integer<std::int64_t>(flag, value(), 0, 86'400));
    else if (flag == "--fault-500")
      o.faults.fraction_500 = fraction(flag, value());
    else if (flag == "--fault-503")
      o.faults.fraction_503 = fraction(flag, value());
    else if (flag == "--fault-drop")
      o.faults.fraction_drop = fraction(flag, value());
    else if (flag == "--fault-routes") {
      std::string_view rest = value();
      while (!rest.empty()) {
        auto comma = rest.find(',');
        if (comma != 0) o.faults.error_routes.emplace(rest.substr(0, comma));
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
      }
    } else if (flag == "--fault-try-again")
      o.faults.try_again_first_polls = integer<int>(flag, value(), 0, 1'000'000);
    else if (flag == "--fault-pause") {
      auto [state, rest] = split_pair(flag, value(), ':');
      auto [period, duration] = split_pair(flag, rest, ':');
      if (state == "paused_capacity")
        o.faults.pause_state = tinker::queue_state::paused_capacity;
      else if (state == "paused_rate_limit")
        o.faults.pause_state = tinker::queue_state::paused_rate_limit;
      else
        die("--fault-pause: state must be paused_capacity or paused_rate_limit, got '" + state + "'");
      o.faults.pause_period = milliseconds(flag, period, 1);
      o.faults.pause_duration = milliseconds(flag, duration);
      if (o.faults.pause_duration > o.faults.pause_period)
        die("--fault-pause: DURATION_MS " + duration + " is longer than PERIOD_MS " + period);
    } else if (flag == "--fault-step-time")
      o.faults.training_step_time = milliseconds(flag, value());
    else if (flag == "--fault-sample-step-time")
      o.faults.sample_step_time = milliseconds(flag, value());
    else if (flag == "--fault-fail-route") {
      auto [route, category] = split_pair(flag, value(), '=');
      static const std::set<std::string> future_routes = {
          "create_model", "forward_backward", "forward", "optim_step", "save_weights", "save_weights_for_sampler",
          "load_weights", "unload_model",     "asample", "sample"};
      if (!future_routes.contains(route))
        die("--fault-fail-route: '" + route +
            "' is not a route whose requests become futures (e.g. forward_backward, optim_step, asample)");
      if (category == "user")
        o.faults.fail_routes[route] = tinker::error_category::user;
      else if (category == "server")
        o.faults.fail_routes[route] = tinker::error_category::server;
      else
        die("--fault-fail-route: category must be user or server, got '" + category + "'");
    } else if (flag == "--fault-seed")
      o.faults.seed = integer<std::uint64_t>(flag, value(), 0, std::numeric_limits<std::uint64_t>::max());
    else
      die("unknown option '" + std::string(flag) + "'");
  }
  if (o.tls_cert_file.has_value() != o.tls_key_file.has_value()) die("--tls-cert and --tls-key go together");
  for (const auto& key : o.api_keys)
    if (key.rfind("tml-", 0) != 0) die("API keys must start with tml- (the official client refuses others)");
  o.log = [](const std::string& line) { std::cerr << "tinker-local-server: " << line << "\n"; };

  try {
    boost::asio::io_context io;
    tinker::local::engine engine(io.get_executor(), o);
    engine.start();
    std::cout << "listening on " << engine.base_url() << std::endl;
    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](boost::system::error_code, int) {
      engine.stop();
      io.stop();
    });
    io.run();
    engine.join_compute();
  } catch (const std::exception& e) {
    std::cerr << "tinker-local-server: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
