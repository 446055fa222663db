// The client's per-call cost against the wire limit, and many calls in flight on one thread.
//
//   bare_http    N concurrent GET /api/v1/healthz through http::transport: the loopback HTTP limit
//                of this engine (keep-alive pool, no client logic).
//   client_call  N concurrent service_client::get_server_capabilities(): the same kind of round
//                trip through the client (headers, retry wrapper, JSON decode). Goal: close to 1.
//   samples      N concurrent sampling_client::sample() calls (max_tokens 1) from one thread:
//                submission, polling (batched when offered) and decode; samples/s, HTTP requests
//                per sample, and the growth of the process's peak RSS per sample in flight
//                (client and engine together: they share the process).
//   training     K training clients on one thread, each enqueuing S forward_backward + optim_step
//                pairs back to back (all submitted before any result is awaited), then awaiting
//                them all: training calls/s and HTTP requests per call (the floor is 2: one
//                submission, one poll; batched polling can go below it).
//
// The engine runs in-process on its own threads, so this measures the client on one core while
// the engine uses the other. Output: JSON lines. `--quick` is the smoke run CI executes.
#include <tinker/http/transport.hpp>
#include <tinker/local/engine.hpp>
#include <tinker/tinker.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace asio = boost::asio;

namespace {

/// A /proc/self/status field in KiB (VmRSS, VmHWM), 0 when unavailable.
long status_kib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  return 0;
}

/// Resets VmHWM to the current RSS (Linux >= 4.0); false when not permitted.
bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  return static_cast<bool>(out.flush());
}

/// Runs `n` copies of `make()` concurrently on `io` and returns the wall time in seconds.
template <class Make>
double run_concurrently(asio::io_context& io, int n, Make make) {
  int done = 0, failed = 0;
  std::string first_error;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i)
    asio::co_spawn(io, make(i), [&](std::exception_ptr e) {
      ++done;
      if (e) {
        ++failed;
        if (first_error.empty()) try {
            std::rethrow_exception(e);
          } catch (const std::exception& ex) {
            first_error = ex.what();
          }
      }
    });
  io.restart();
  while (done < n) io.run_one();
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  if (failed) {
    std::fprintf(stderr, "%d of %d calls failed; first: %s\n", failed, n, first_error.c_str());
    std::exit(1);
  }
  return elapsed.count();
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  const int calls = quick ? 300 : 5000;
  const int samples = quick ? 300 : 10'000;

  tinker::local::engine_options eo;
  eo.compute_threads = 1;
  tinker::local::embedded_engine engine(eo);
  asio::io_context io;

  tinker::client_options options;
  options.base_url = engine.base_url();
  options.api_key = "tml-bench";
  options.sample_max_in_flight = static_cast<std::size_t>(samples);
  tinker::service_client service(io.get_executor(), options);

  // Warm-up: session, connections, the sampler.
  std::optional<tinker::sampling_client> sampler;
  run_concurrently(io, 1, [&](int) -> asio::awaitable<void> {
    auto training = co_await service.create_lora_training_client("tinker-local/byte-lm-tiny", {.rank = 4});
    sampler = co_await training.save_weights_and_get_sampling_client();
  });

  // bare_http
  auto& transport = service.transport();
  auto bare = [&](int) -> asio::awaitable<void> {
    tinker::http::request req;
    req.method = boost::beast::http::verb::get;
    req.target = "/api/v1/healthz";
    req.lane = tinker::http::lane::train;
    auto res = co_await transport.send(std::move(req));
    if (res.status != 200) throw std::runtime_error("healthz: " + std::to_string(res.status));
  };
  run_concurrently(io, calls / 10, bare);
  const double bare_s = run_concurrently(io, calls, bare);

  // client_call
  auto client_call = [&](int) -> asio::awaitable<void> {
    auto caps = co_await service.get_server_capabilities();
    if (caps.supported_models.empty()) throw std::runtime_error("no models");
  };
  run_concurrently(io, calls / 10, client_call);
  const double client_s = run_concurrently(io, calls, client_call);
  std::printf(
      "{\"benchmark\":\"client_call_vs_bare_http\",\"calls\":%d,\"bare_calls_per_s\":%.0f,\"client_calls_per_s\":%.0f,"
      "\"ratio_vs_bare_http\":%.3f}\n",
      calls, calls / bare_s, calls / client_s, bare_s / client_s);
  std::fflush(stdout);

  // samples
  const auto prompt = tinker::model_input::from_ints(std::vector<tinker::token_id>{256, 'h', 'i'});
  const auto params = tinker::sampling_params(1).with_seed(1);
  const auto requests_before = service.stats().http_requests;
  const long rss_before = status_kib("VmRSS");
  const bool peak_reset = reset_peak_rss();
  const double samples_s = run_concurrently(io, samples, [&](int) -> asio::awaitable<void> {
    auto r = co_await sampler->sample(prompt, 1, params);
    if (r.sequences.size() != 1) throw std::runtime_error("sample: no sequence");
  });
  const long rss_peak = status_kib("VmHWM");
  const double requests = static_cast<double>(service.stats().http_requests - requests_before);
  std::printf(
      "{\"benchmark\":\"samples_in_flight_one_thread\",\"samples\":%d,\"samples_per_s\":%.0f,"
      "\"http_requests_per_sample\":%.2f,\"peak_rss_growth_kib_per_sample\":%.2f,\"peak_reset\":%s}\n",
      samples, samples / samples_s, requests / samples, static_cast<double>(rss_peak - rss_before) / samples,
      peak_reset ? "true" : "false");
  std::fflush(stdout);
  // training
  const int clients = quick ? 2 : 8;
  const int steps = quick ? 5 : 50;
  std::vector<tinker::training_client> trainers;
  run_concurrently(io, clients, [&](int) -> asio::awaitable<void> {
    trainers.push_back(co_await service.create_lora_training_client("tinker-local/byte-lm-tiny", {.rank = 4}));
  });
  std::vector<tinker::datum> batch;
  {
    const std::string text = "the quick brown fox jumps over the lazy dog";
    std::vector<tinker::token_id> tokens{256};
    for (unsigned char c : text) tokens.push_back(c);
    batch.assign(4, tinker::datum::next_token(tokens));
  }
  const auto training_requests_before = service.stats().http_requests;
  const double training_s = run_concurrently(io, clients, [&](int c) -> asio::awaitable<void> {
    auto& training = trainers[static_cast<std::size_t>(c)];
    std::vector<tinker::api_future<tinker::forward_backward_output>> fwd;
    std::vector<tinker::api_future<tinker::optim_step_response>> opt;
    for (int i = 0; i < steps; ++i) {
      fwd.push_back(co_await training.forward_backward(batch, tinker::loss_fn_type::cross_entropy));
      opt.push_back(co_await training.optim_step(tinker::adam_params{.learning_rate = 1e-3}));
    }
    for (int i = 0; i < steps; ++i) {
      auto out = co_await fwd[static_cast<std::size_t>(i)].result();
      if (out.loss_fn_outputs.size() != batch.size()) throw std::runtime_error("forward_backward: wrong outputs");
      (void)co_await opt[static_cast<std::size_t>(i)].result();
    }
  });
  const double training_calls = 2.0 * clients * steps;
  std::printf(
      "{\"benchmark\":\"training_calls_many_clients_one_thread\",\"clients\":%d,\"calls\":%.0f,"
      "\"calls_per_s\":%.0f,\"http_requests_per_call\":%.2f}\n",
      clients, training_calls, training_calls / training_s,
      static_cast<double>(service.stats().http_requests - training_requests_before) / training_calls);
  std::fflush(stdout);
  service.close();
  return 0;
}
