// A reward service that embeds the library: a Beast HTTP server on one io_context answers
//
//   POST /score  {"prompt": "...", "completion": "..."}  ->  {"score": x, "mean_logprob": y, ...}
//
// Each request makes one compute_logprobs call to Tinker, so many requests are in flight at once on
// the one event loop. The score has two parts:
// - the judge's mean log-probability per token of the completion given the prompt;
// - a CPU-heavy part, the closeness to the nearest reference answer by edit distance.
// The CPU part runs on a thread pool, and the request resumes on the loop when it is done. The loop
// also carries the client's heartbeat and its polling for results, and never waits for the pool:
// a 1 ms timer on the loop measures how late it fires, and that lag is reported.
//
// The judge is a LoRA adapter trained for --steps steps on the sentences of a small grammar, the
// style the reward favours (--base-judge: the untrained base model, whose preferences are random).
// By default the program then runs a load driver against its own server. The driver runs on its
// own thread with raw Beast connections, --concurrency of them, keep-alive. It sends --requests
// requests: likely completions, random letters, repeats and malformed requests. It prints latency
// percentiles and requests/s. With --serve the program only serves, until SIGINT or SIGTERM:
//
//   reward_server [--requests N] [--concurrency N] [--pool-threads N] [--port N] [--serve]
//                 [--cpu-on-loop] [--base-judge] [--steps N] [--seed N] [--quick] [--base-url URL] [--metrics FILE]
//   curl -s http://127.0.0.1:PORT/score -d '{"prompt": "the cat ", "completion": "sat on the mat."}'
//
// Without --base-url (or TINKER_BASE_URL) it starts the local engine in-process. --cpu-on-loop
// scores on the loop thread instead: the loop's lag then grows by the CPU part's time.
#include "support/example.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <variant>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

namespace {

struct config {
  example::common_options common;
  int requests = 2000;
  int concurrency = 64;
  int pool_threads = 2;
  int port = 0;
  bool serve = false;
  bool cpu_on_loop = false;
  bool base_judge = false;
};

double ms_since(clock_type::time_point start) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - start).count();
}

// --- The style the reward favours -----------------------------------------------------------------

// Sentences "<subject> <verb> <object>.": 1,728 of them. They train the judge, and they are the
// references the CPU part compares a prompt and its completion against.
constexpr const char* subjects[] = {"the cat",   "a dog",    "the bird",    "my friend", "the old man", "a child",
                                    "the baker", "our aunt", "the teacher", "a farmer",  "the pilot",   "his sister"};
constexpr const char* verbs[] = {"sat on",    "ran to",  "looked at", "walked past", "jumped over", "slept near",
                                 "waited by", "painted", "climbed",   "cleaned",     "found",       "drew"};
constexpr const char* objects[] = {"the mat",  "a tree",      "the house",  "the river", "a red car", "the garden",
                                   "the hill", "a blue boat", "the bridge", "a stone",   "the field", "an old map"};

struct sentence {
  std::string prompt, completion;  // "the cat " and "sat on the mat."
};

std::vector<sentence> grammar() {
  std::vector<sentence> out;
  for (const char* s : subjects)
    for (const char* v : verbs)
      for (const char* o : objects) out.push_back({std::string(s) + " ", std::string(v) + " " + o + "."});
  return out;
}

// --- The CPU-heavy part ---------------------------------------------------------------------------

struct closeness {
  double value = 0;  // 1 - edit distance / the longer length, to the nearest reference: 1 is a match
  std::size_t nearest = 0;
  double cpu_ms = 0;
};

std::size_t edit_distance(std::string_view a, std::string_view b, std::vector<std::size_t>& row) {
  row.resize(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

/// A stand-in for the CPU-bound checks a reward often adds (a parser, a rule set, a unit test run):
/// about a million cells of dynamic programming per request, a millisecond or more.
closeness nearest_reference(const std::vector<std::string>& references, std::string_view text) {
  const auto start = clock_type::now();
  closeness out;
  std::vector<std::size_t> row;
  for (std::size_t i = 0; i < references.size(); ++i) {
    const auto longer = std::max(references[i].size(), text.size());
    const double value =
        longer == 0 ? 1.0
                    : 1.0 - static_cast<double>(edit_distance(references[i], text, row)) / static_cast<double>(longer);
    if (i == 0 || value > out.value) {
      out.value = value;
      out.nearest = i;
    }
  }
  out.cpu_ms = ms_since(start);
  return out;
}

// --- The server -----------------------------------------------------------------------------------

/// What the connections share. Everything but the atomics is used on the loop thread only; the
/// atomics are also read by the load driver's thread and written by the pool's.
struct reward_server {
  reward_server(const asio::any_io_executor& ex, tinker::sampling_client j, tinker::byte_tokenizer t, int pool_threads)
      : loop(ex),
        acceptor(ex),
        ticker(ex),
        pool(static_cast<std::size_t>(pool_threads)),
        judge(std::move(j)),
        tokenizer(t) {}

  asio::any_io_executor loop;
  std::thread::id loop_thread = std::this_thread::get_id();
  tcp::acceptor acceptor;
  asio::steady_timer ticker;
  asio::thread_pool pool;
  tinker::sampling_client judge;
  tinker::byte_tokenizer tokenizer;
  std::vector<std::string> references;
  bool cpu_on_loop = false;

  bool stopping = false;
  std::set<beast::tcp_stream*> connections;
  std::atomic<std::size_t> in_flight{0}, peak_in_flight{0}, answered{0};
  std::atomic<std::size_t> cpu_on_pool_threads{0}, cpu_on_loop_thread{0};
  std::size_t ticks = 0;
  double max_lag_ms = 0, total_lag_ms = 0;

  /// Stops accepting and ends idle connections; requests being scored are still answered.
  void stop() {
    stopping = true;
    beast::error_code ignored;
    acceptor.close(ignored);
    ticker.cancel();
    for (auto* c : connections) c->cancel();
  }
};
using server_ptr = std::shared_ptr<reward_server>;

struct score_request {
  std::string prompt, completion;
};

/// The request's fields, or the reason it is not a scoring request (answered with 400).
std::variant<score_request, std::string> parse_score_request(std::string_view body) {
  boost::system::error_code ec;
  const auto value = json::parse(body, ec);
  if (ec) return "malformed JSON: " + ec.message();
  const auto* object = value.if_object();
  if (object == nullptr) return std::string("the body must be a JSON object");
  const auto* prompt = object->if_contains("prompt");
  const auto* completion = object->if_contains("completion");
  if (prompt == nullptr || !prompt->is_string()) return std::string("missing field 'prompt' (a string)");
  if (completion == nullptr || !completion->is_string()) return std::string("missing field 'completion' (a string)");
  score_request r{std::string(prompt->get_string()), std::string(completion->get_string())};
  if (r.completion.empty()) return std::string("'completion' must not be empty");
  if (r.prompt.size() + r.completion.size() > 1024) return std::string("prompt and completion exceed 1024 bytes");
  return r;
}

/// Runs where it is spawned: on the pool. It takes the server by reference (the request awaiting it
/// holds the server), so that the last reference to the server is never dropped on a pool thread.
asio::awaitable<closeness> nearest_reference_on_pool(reward_server& s, std::string text) {
  if (std::this_thread::get_id() == s.loop_thread)
    ++s.cpu_on_loop_thread;
  else
    ++s.cpu_on_pool_threads;
  co_return nearest_reference(s.references, text);
}

asio::awaitable<json::object> score(server_ptr s, score_request r) {
  // The judge: one request to Tinker. While it is out, the loop serves the other connections.
  auto tokens = s->tokenizer.encode(r.prompt, /*add_bos=*/true);
  const std::size_t first = tokens.size();
  const auto completion = s->tokenizer.encode(r.completion);
  tokens.insert(tokens.end(), completion.begin(), completion.end());
  auto input = tinker::model_input::from_ints(std::move(tokens));
  const auto logprobs = co_await s->judge.compute_logprobs(std::move(input));
  double logprob = 0;
  for (std::size_t i = first; i < logprobs.size(); ++i) logprob += logprobs[i];
  const double mean_logprob = logprob / static_cast<double>(completion.size());

  // The CPU part: co_spawn on the pool runs it there, and the completion resumes this coroutine on
  // the loop (use_awaitable completes on the awaiting coroutine's executor).
  auto text = r.prompt + r.completion;
  closeness near;
  if (s->cpu_on_loop) {
    ++s->cpu_on_loop_thread;
    near = nearest_reference(s->references, text);
  } else {
    auto on_pool = asio::co_spawn(s->pool, nearest_reference_on_pool(*s, std::move(text)), asio::use_awaitable);
    near = co_await std::move(on_pool);
  }

  json::object out;
  out["score"] = mean_logprob + near.value;
  out["mean_logprob"] = mean_logprob;
  out["logprob"] = logprob;
  out["tokens"] = completion.size();
  out["closeness"] = near.value;
  out["nearest_reference"] = s->references[near.nearest];
  out["cpu_ms"] = near.cpu_ms;
  co_return out;
}

http::response<http::string_body> json_response(unsigned version, bool keep_alive, http::status status,
                                                const json::object& body) {
  http::response<http::string_body> res(status, version);
  res.set(http::field::content_type, "application/json");
  res.keep_alive(keep_alive);
  res.body() = json::serialize(body) + "\n";
  res.prepare_payload();
  return res;
}

http::response<http::string_body> error_response(unsigned version, bool keep_alive, http::status status,
                                                 std::string message) {
  json::object body;
  body["error"] = std::move(message);
  return json_response(version, keep_alive, status, body);
}

asio::awaitable<http::response<http::string_body>> handle(server_ptr s, const http::request<http::string_body>& req) {
  const auto error = [&](http::status status, std::string message) {
    return error_response(req.version(), req.keep_alive(), status, std::move(message));
  };
  if (req.target() != "/score") co_return error(http::status::not_found, "not found: try POST /score");
  if (req.method() != http::verb::post) co_return error(http::status::method_not_allowed, "/score takes POST");
  auto parsed = parse_score_request(req.body());
  if (auto* reason = std::get_if<std::string>(&parsed)) co_return error(http::status::bad_request, std::move(*reason));
  try {
    auto work = score(s, std::move(std::get<score_request>(parsed)));
    const auto body = co_await std::move(work);
    co_return json_response(req.version(), req.keep_alive(), http::status::ok, body);
  } catch (const std::exception& e) {
    // The judge failed (the server is down, the session was lost, ...): the caller may retry.
    co_return error(http::status::bad_gateway, std::string("judge: ") + e.what());
  }
}

asio::awaitable<void> serve_connection(server_ptr s, tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  s->connections.insert(&stream);
  struct forget {
    reward_server& s;
    beast::tcp_stream* stream;
    ~forget() { s.connections.erase(stream); }
  } registered{*s, &stream};

  beast::flat_buffer buffer;
  while (!s->stopping) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(64 * 1024);
    stream.expires_after(std::chrono::seconds(60));  // idle keep-alive connections end after a minute
    auto [read_error, read] = co_await http::async_read(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
    if (read_error == http::error::body_limit) {
      auto too_large = error_response(11, false, http::status::payload_too_large, "the body exceeds 64 KiB");
      (void)co_await http::async_write(stream, too_large, asio::as_tuple(asio::use_awaitable));
    }
    if (read_error) break;  // closed by the peer, timed out, stopped, too large, or not HTTP
    stream.expires_never();

    const auto req = parser.release();
    s->peak_in_flight = std::max(s->peak_in_flight.load(), ++s->in_flight);
    auto response = co_await handle(s, req);
    --s->in_flight;
    ++s->answered;
    auto [write_error, written] = co_await http::async_write(stream, response, asio::as_tuple(asio::use_awaitable));
    if (write_error || !response.keep_alive()) break;
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

asio::awaitable<void> accept_connections(server_ptr s) {
  for (;;) {
    auto [ec, socket] = co_await s->acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;  // the acceptor was closed
    asio::co_spawn(s->loop, serve_connection(s, std::move(socket)), asio::detached);
  }
}

/// Fires every millisecond and records how late: the loop's lag. A loop blocked by CPU work, or by
/// anything else, shows here first (and so would the client's heartbeats and polls).
asio::awaitable<void> watch_loop_lag(server_ptr s) {
  constexpr auto period = std::chrono::milliseconds(1);
  auto next = clock_type::now();
  while (!s->stopping) {
    next += period;
    s->ticker.expires_at(next);
    auto [ec] = co_await s->ticker.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    const double lag = std::chrono::duration<double, std::milli>(clock_type::now() - next).count();
    ++s->ticks;
    s->total_lag_ms += lag;
    s->max_lag_ms = std::max(s->max_lag_ms, lag);
    if (lag > 1.0) next = clock_type::now();  // no burst of ticks to catch up
  }
}

// --- The load driver ------------------------------------------------------------------------------

enum class kind { likely, random_letters, repeat, malformed_json, missing_field };

struct planned {
  kind what = kind::likely;
  std::string body;
  std::size_t same_as = 0;  // for a repeat: the request it repeats
};

struct outcome {
  int status = 0;
  double latency_ms = 0;
  double score = NAN, mean_logprob = NAN;
  bool as_expected = false;
};

/// The requests, in order: grammar sentences the judge should like, alternating with random
/// letters of the same length after the same prompt; every tenth a repeat of an earlier request,
/// every twentieth malformed (bad JSON or a missing field).
std::vector<planned> plan_requests(int n, std::uint64_t seed) {
  const auto sentences = grammar();
  std::mt19937_64 random(seed);
  std::vector<planned> plan;
  for (int i = 0; i < n; ++i) {
    planned p;
    const auto& s = sentences[random() % sentences.size()];
    if (i % 20 == 19) {
      p.what = i % 40 == 19 ? kind::malformed_json : kind::missing_field;
      p.body = p.what == kind::malformed_json ? R"({"prompt": "the cat ", "completion": )" : R"({"prompt": "a dog "})";
    } else if (i % 10 == 9) {
      std::size_t j = random() % plan.size();
      while (plan[j].what != kind::likely && plan[j].what != kind::random_letters) j = random() % plan.size();
      p.what = kind::repeat;
      p.body = plan[j].body;
      p.same_as = j;
    } else if (i % 2 == 0) {
      p.body = json::serialize(json::object{{"prompt", s.prompt}, {"completion", s.completion}});
    } else {
      std::string letters(s.completion.size(), ' ');
      for (auto& c : letters) c = "abcdefghijklmnopqrstuvwxyz "[random() % 27];
      p.what = kind::random_letters;
      p.body = json::serialize(json::object{{"prompt", s.prompt}, {"completion", letters}});
    }
    plan.push_back(std::move(p));
  }
  return plan;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::min(rank == 0 ? 0 : rank - 1, v.size() - 1)];
}

/// The driver's state, used on the driver's thread only; of the server it reads only the atomics.
struct load {
  std::vector<planned> plan;
  std::vector<outcome> outcomes;
  std::size_t next = 0, done = 0, batch_size = 1;
  const reward_server* server = nullptr;
  clock_type::time_point start = clock_type::now(), batch_start = start;
  std::vector<double> batch_latencies;
  int batch = 0;
  example::live_line live;
  example::metrics_log* metrics = nullptr;
};

/// Checks one answer against what its request should get, and prints a line per batch of answers.
void record(load& l, std::size_t i, const http::response<http::string_body>& res, double latency_ms) {
  auto& o = l.outcomes[i];
  o.status = static_cast<int>(res.result_int());
  o.latency_ms = latency_ms;
  boost::system::error_code ec;
  const auto body = json::parse(res.body(), ec);
  const auto* object = ec ? nullptr : body.if_object();
  const auto what = l.plan[i].what;
  if (what == kind::malformed_json || what == kind::missing_field) {
    o.as_expected = o.status == 400 && object && object->contains("error");
  } else if (o.status == 200 && object && object->contains("score") && object->contains("mean_logprob")) {
    o.score = object->at("score").to_number<double>();
    o.mean_logprob = object->at("mean_logprob").to_number<double>();
    o.as_expected = std::isfinite(o.score) && std::isfinite(o.mean_logprob);
  }
  if (!o.as_expected) {
    l.live.clear();
    std::fprintf(stderr, "request %zu: unexpected answer %d %s\n", i, o.status, res.body().c_str());
  }

  ++l.done;
  l.batch_latencies.push_back(latency_ms);
  l.live.show("requests %zu/%zu  in flight at the server %zu  requests/s %.0f", l.done, l.plan.size(),
              l.server->in_flight.load(), static_cast<double>(l.done) * 1000.0 / ms_since(l.start));
  if (l.done % l.batch_size != 0 && l.done != l.plan.size()) return;

  // One line per batch of answers: their latency and rate, and the server's concurrency now.
  const double p50 = percentile(l.batch_latencies, 0.5), p99 = percentile(l.batch_latencies, 0.99);
  const double per_second = static_cast<double>(l.batch_latencies.size()) * 1000.0 / ms_since(l.batch_start);
  l.live.clear();
  std::printf(
      "batch %2d  requests %5zu/%zu  p50 %7.2f ms  p99 %7.2f ms  requests/s %6.0f  in flight at the server %zu\n",
      ++l.batch, l.done, l.plan.size(), p50, p99, per_second, l.server->in_flight.load());
  std::fflush(stdout);
  l.metrics->write({{"batch", l.batch},
                    {"requests", l.done},
                    {"p50_ms", p50},
                    {"p99_ms", p99},
                    {"requests_per_s", per_second},
                    {"server_peak_in_flight", l.server->peak_in_flight.load()}});
  l.batch_latencies.clear();
  l.batch_start = clock_type::now();
}

/// One keep-alive connection: takes the next request from the plan until none is left.
asio::awaitable<std::size_t> drive_connection(load& l, tcp::endpoint server) {
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  stream.expires_after(std::chrono::seconds(10));
  co_await stream.async_connect(server, asio::use_awaitable);
  beast::flat_buffer buffer;
  std::size_t sent = 0;
  while (l.next < l.plan.size()) {
    const std::size_t i = l.next++;
    http::request<http::string_body> req(http::verb::post, "/score", 11);
    req.set(http::field::host, "127.0.0.1");
    req.set(http::field::content_type, "application/json");
    req.keep_alive(true);
    req.body() = l.plan[i].body;
    req.prepare_payload();

    const auto start = clock_type::now();
    stream.expires_after(std::chrono::seconds(60));
    co_await http::async_write(stream, req, asio::use_awaitable);
    http::response<http::string_body> res;
    co_await http::async_read(stream, buffer, res, asio::use_awaitable);
    ++sent;
    record(l, i, res, ms_since(start));
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  co_return sent;
}

asio::awaitable<void> drive(load& l, tcp::endpoint server, int concurrency) {
  std::vector<asio::awaitable<std::size_t>> connections;
  for (int c = 0; c < concurrency; ++c) connections.push_back(drive_connection(l, server));
  l.start = l.batch_start = clock_type::now();
  (void)co_await tinker::gather(std::move(connections));
}

/// The driver's own io_context and thread: the server's loop serves, the client side runs apart.
struct driver_thread {
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
  std::thread thread{[this] { io.run(); }};
  ~driver_thread() {
    work.reset();
    thread.join();
  }
};

// --- The run --------------------------------------------------------------------------------------

/// Trains the judge: a LoRA adapter on sentences of the grammar, next-token prediction.
asio::awaitable<tinker::sampling_client> train_judge(tinker::service_client& service, const config& cfg) {
  const auto& common = cfg.common;
  tinker::lora_training_options lora;
  lora.rank = 8;
  lora.seed = common.seed;
  auto training = co_await service.create_lora_training_client(common.base_model, lora);
  auto tokenizer = co_await training.get_tokenizer();
  const auto sentences = grammar();
  std::mt19937_64 random(static_cast<std::uint64_t>(common.seed));
  example::live_line live;
  double first_loss = NAN, loss = NAN;
  for (int step = 0; step < common.steps; ++step) {
    std::vector<tinker::datum> batch;
    std::size_t targets = 0;
    for (int k = 0; k < 64; ++k) {
      const auto& s = sentences[random() % sentences.size()];
      const auto tokens = tokenizer.encode(s.prompt + s.completion, /*add_bos=*/true);
      targets += tokens.size() - 1;
      batch.push_back(tinker::datum::next_token(tokens));
    }
    auto fwd = co_await training.forward_backward(std::move(batch), tinker::loss_fn_type::cross_entropy);
    tinker::adam_params adam;
    adam.learning_rate = 0.05;
    auto opt = co_await training.optim_step(adam);
    const auto out = co_await fwd.result();
    (void)co_await opt.result();
    loss = out.metrics.at("loss:sum") / static_cast<double>(targets);
    if (step == 0) first_loss = loss;
    live.show("training the judge: step %d/%d  loss per token %.3f", step + 1, common.steps, loss);
  }
  live.clear();
  std::printf("judge: %s trained %d steps on the grammar's sentences, loss per token %.3f -> %.3f\n",
              training.model_id().c_str(), common.steps, first_loss, loss);
  co_return co_await training.save_weights_and_get_sampling_client();
}

template <class Awaitable>
void spawn(const asio::any_io_executor& ex, Awaitable work) {
  // A failure leaves io.run() with the error, and example::main reports it.
  asio::co_spawn(ex, std::move(work), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
}

struct load_summary {
  std::size_t scored = 0, rejected = 0, unexpected = 0, repeats = 0, repeats_same = 0;
  double likely_score = 0, likely_logprob = 0, random_score = 0, random_logprob = 0;
};

load_summary summarize(const load& l) {
  load_summary s;
  std::size_t likely = 0, random = 0;
  for (std::size_t i = 0; i < l.plan.size(); ++i) {
    const auto& o = l.outcomes[i];
    if (!o.as_expected) {
      ++s.unexpected;
      continue;
    }
    switch (l.plan[i].what) {
      case kind::malformed_json:
      case kind::missing_field: ++s.rejected; continue;
      case kind::likely:
        ++likely;
        s.likely_score += o.score;
        s.likely_logprob += o.mean_logprob;
        break;
      case kind::random_letters:
        ++random;
        s.random_score += o.score;
        s.random_logprob += o.mean_logprob;
        break;
      case kind::repeat:
        ++s.repeats;
        s.repeats_same += o.score == l.outcomes[l.plan[i].same_as].score;
        break;
    }
    ++s.scored;
  }
  s.likely_score /= static_cast<double>(std::max<std::size_t>(likely, 1));
  s.likely_logprob /= static_cast<double>(std::max<std::size_t>(likely, 1));
  s.random_score /= static_cast<double>(std::max<std::size_t>(random, 1));
  s.random_logprob /= static_cast<double>(std::max<std::size_t>(random, 1));
  return s;
}

void print_loop_line(const reward_server& s) {
  std::printf(
      "loop: %zu ticks of a 1 ms timer, lag mean %.3f ms max %.2f ms; cpu part: %zu on pool threads, %zu on "
      "the loop thread\n",
      s.ticks, s.ticks ? s.total_lag_ms / static_cast<double>(s.ticks) : 0.0, s.max_lag_ms,
      s.cpu_on_pool_threads.load(), s.cpu_on_loop_thread.load());
}

asio::awaitable<void> run(const config& cfg, const example::server& server) {
  const auto ex = co_await asio::this_coro::executor;
  tinker::service_client service(ex, server.options());
  std::printf("reward server: judge on %s (%s), cpu part on %s\n", cfg.common.base_model.c_str(),
              server.describe().c_str(),
              cfg.cpu_on_loop ? "the loop thread" : (std::to_string(cfg.pool_threads) + " pool threads").c_str());
  tinker::sampling_client judge;
  if (cfg.base_judge)
    judge = co_await service.create_base_model_sampling_client(cfg.common.base_model);
  else
    judge = co_await train_judge(service, cfg);
  auto tokenizer = co_await judge.get_tokenizer();

  auto s = std::make_shared<reward_server>(ex, std::move(judge), tokenizer, cfg.pool_threads);
  for (const auto& sentence : grammar()) s->references.push_back(sentence.prompt + sentence.completion);
  s->cpu_on_loop = cfg.cpu_on_loop;
  const tcp::endpoint listen(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(cfg.port));
  s->acceptor.open(listen.protocol());
  s->acceptor.set_option(tcp::acceptor::reuse_address(true));
  s->acceptor.bind(listen);
  s->acceptor.listen();
  const auto endpoint = s->acceptor.local_endpoint();
  std::printf("listening on http://127.0.0.1:%u/score\n", static_cast<unsigned>(endpoint.port()));
  std::fflush(stdout);
  spawn(ex, accept_connections(s));
  spawn(ex, watch_loop_lag(s));

  if (cfg.serve) {
    std::printf(
        "try: curl -s http://127.0.0.1:%u/score -d '{\"prompt\": \"the cat \", \"completion\": \"sat on the "
        "mat.\"}'\nserving until SIGINT or SIGTERM\n",
        static_cast<unsigned>(endpoint.port()));
    std::fflush(stdout);
    asio::signal_set signals(ex, SIGINT, SIGTERM);
    (void)co_await signals.async_wait(asio::use_awaitable);
    s->stop();
    std::printf("summary: stopped after %zu requests, %zu in flight at peak\n", s->answered.load(),
                s->peak_in_flight.load());
    print_loop_line(*s);
    co_return;
  }

  // The load: a thread of its own runs the driver; this coroutine waits for it on the loop.
  example::metrics_log metrics(cfg.common.metrics_path);
  load l;
  l.plan = plan_requests(cfg.requests, static_cast<std::uint64_t>(cfg.common.seed));
  l.outcomes.resize(l.plan.size());
  l.batch_size = std::max<std::size_t>(1, l.plan.size() / 10);
  l.server = s.get();
  l.metrics = &metrics;
  std::printf("load: %d requests from %d keep-alive connections\n", cfg.requests, cfg.concurrency);
  std::fflush(stdout);
  double seconds = 0;
  {
    driver_thread driver;
    auto work = asio::co_spawn(driver.io, drive(l, endpoint, cfg.concurrency), asio::use_awaitable);
    co_await std::move(work);
    seconds = ms_since(l.start) / 1000.0;
  }
  s->stop();

  std::vector<double> latencies;
  for (const auto& o : l.outcomes) latencies.push_back(o.latency_ms);
  const auto r = summarize(l);
  std::printf("answers: %zu scored with a finite score, %zu malformed requests answered 400, %zu unexpected\n",
              r.scored, r.rejected, r.unexpected);
  std::printf(
      "scores: likely completions %.3f (judge mean logprob %.3f), random letters %.3f (judge mean logprob "
      "%.3f)\n",
      r.likely_score, r.likely_logprob, r.random_score, r.random_logprob);
  std::printf("determinism: %zu/%zu repeated requests scored the same\n", r.repeats_same, r.repeats);
  print_loop_line(*s);
  std::printf(
      "summary: %zu requests from %d connections in %.2f s, %.0f requests/s; latency p50 %.2f ms p90 %.2f ms "
      "p99 %.2f ms; server: %zu requests in flight at peak\n",
      l.plan.size(), cfg.concurrency, seconds, static_cast<double>(l.plan.size()) / seconds, percentile(latencies, 0.5),
      percentile(latencies, 0.9), percentile(latencies, 0.99), s->peak_in_flight.load());
}

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  cfg.common.steps = 30;
  example::flags flags("reward_server",
                       "A reward service on one io_context (Beast + Tinker compute_logprobs + a thread pool for CPU "
                       "work), and a load driver that measures it.");
  cfg.common.add_to(flags, [&] {
    cfg.common.steps = 20;
    cfg.requests = 600;
    cfg.concurrency = 32;
  });
  flags.integer("--requests", cfg.requests, 20, 10'000'000, "scoring requests the load driver sends")
      .integer("--concurrency", cfg.concurrency, 1, 10'000, "the driver's connections, each one request at a time")
      .integer("--pool-threads", cfg.pool_threads, 1, 256, "threads for the CPU part of the score")
      .integer("--port", cfg.port, 0, 65535, "the port to listen on, 127.0.0.1 (0: a free one)")
      .toggle(
          "--serve", [&] { cfg.serve = true; }, "serve until SIGINT/SIGTERM; no load driver")
      .toggle(
          "--cpu-on-loop", [&] { cfg.cpu_on_loop = true; }, "run the CPU part on the loop thread (to see the lag)")
      .toggle(
          "--base-judge", [&] { cfg.base_judge = true; },
          "judge with the untrained base model (its preferences are then random)");
  return example::main(argc, argv, "reward_server", flags, cfg.common,
                       [&](const example::server& server) { return run(cfg, server); });
}
