// Asynchronous off-policy RL: rollout workers never wait for the trainer. Each worker loops:
// take the newest sampler, sample a group of completions for a prompt, score them, push the group
// into a bounded queue. The trainer takes groups from the queue, trains on a batch of them with the
// importance-sampling loss, publishes a new sampler, and goes on; meanwhile the workers have kept
// sampling with the weights they had. So a group may be a few optimizer steps ("versions") behind
// the weights it trains: its staleness. Groups more than --max-steps-off-policy versions old are
// dropped (and counted); the rest are corrected by the importance-sampling ratio between the current
// weights and the sampler's logprobs. The task: write lowercase letters (the reward is their share
// of the completion); the mean reward rises from about 0.1 to about 1 within a few dozen steps.
//
//   rl_async [--steps N] [--workers N] [--group-size N] [--groups-per-batch N] [--max-steps-off-policy N]
//            [--queue N] [--learning-rate X] [--seed N] [--quick] [--base-url URL] [--metrics FILE]
//
// Without --base-url (or TINKER_BASE_URL) it starts the local engine in-process. Every sample is
// seeded from --seed, the worker and its group count, but which weights a group is sampled with
// depends on timing: async runs are not repeatable to the bit.
//
// The queue is what makes the loop safe to leave running: it is bounded, so workers wait when the
// trainer falls behind (back-pressure instead of an ever-growing backlog of ever-staler groups), and
// closing it is how the trainer stops them at the end. The backlog is the queue plus one finished
// group per waiting worker, so --queue and --workers against --groups-per-batch set how stale the
// groups get when sampling outpaces training (as it does with the local engine: most workers are
// "waiting" in the step lines).
#include "support/example.hpp"

#include <boost/asio/experimental/channel.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace asio = boost::asio;
using tinker::token_id;

namespace {

struct config {
  example::common_options common;
  int workers = 8;
  int group_size = 8;
  int groups_per_batch = 8;
  int max_steps_off_policy = 1;
  int queue_capacity = 4;
  int max_tokens = 8;
  double learning_rate = 0.01;
};

// --- A bounded queue between coroutines ---------------------------------------------------------

/// A FIFO of at most `capacity` items between coroutines on one thread, on an Asio channel: push
/// waits while it is full (the producers' back-pressure), pop waits while it is empty. close() ends
/// it: waiting and later pushes and pops fail. (Boost 1.81's channel::close() completes waiting
/// receivers only, so close() also cancels, which completes waiting senders.)
template <class T>
class bounded_queue {
public:
  bounded_queue(asio::any_io_executor ex, std::size_t capacity)
      : channel_(std::move(ex), capacity), capacity_(capacity) {}

  /// Waits for room and adds `item`; false once the queue is closed (the item is dropped).
  asio::awaitable<bool> push(T item) {
    ++blocked_producers_;
    auto [error] =
        co_await channel_.async_send(boost::system::error_code(), std::move(item), asio::as_tuple(asio::use_awaitable));
    --blocked_producers_;
    if (error) co_return false;
    ++pushed_;
    co_return true;
  }

  /// Waits for an item; nullopt once the queue is closed.
  asio::awaitable<std::optional<T>> pop() {
    auto [error, item] = co_await channel_.async_receive(asio::as_tuple(asio::use_awaitable));
    std::optional<T> out;
    if (error) co_return out;
    ++popped_;
    out.emplace(std::move(item));
    co_return out;
  }

  void close() {
    channel_.close();
    channel_.cancel();
  }

  /// Items in the queue. (A push handed straight to a waiting pop may complete after that pop.)
  std::size_t size() const { return pushed_ > popped_ ? pushed_ - popped_ : 0; }
  std::size_t capacity() const { return capacity_; }
  /// Producers waiting for room right now (or, for an instant, handing an item over).
  std::size_t blocked_producers() const { return blocked_producers_; }

private:
  asio::experimental::channel<void(boost::system::error_code, T)> channel_;
  std::size_t capacity_, pushed_ = 0, popped_ = 0, blocked_producers_ = 0;
};

// --- Rollouts -------------------------------------------------------------------------------------

/// The newest weights the workers can sample from; `version` counts the optimizer steps behind them.
struct policy {
  tinker::sampling_client sampler;
  std::uint64_t version = 0;
};

/// One prompt's completions, ready to train on, and the version of the weights that sampled them.
struct group {
  std::vector<tinker::datum> datums;
  double mean_reward = 0;
  std::uint64_t version = 0;
};

/// What the workers and the trainer share (all on the one io_context thread).
struct rollouts {
  rollouts(const config& c, const asio::any_io_executor& ex)
      : cfg(c),
        queue(ex, static_cast<std::size_t>(c.queue_capacity)),
        stopped(ex, static_cast<std::size_t>(c.workers)) {}

  const config& cfg;
  bounded_queue<group> queue;
  policy latest;
  std::size_t samples = 0, in_flight = 0, peak_in_flight = 0;
  int running = 0;  // workers not yet finished
  // One message per worker that has finished (room for all of them, so sending never waits).
  asio::experimental::channel<void(boost::system::error_code)> stopped;
  std::exception_ptr failure;  // the first worker's that failed
};

/// BOS and one of four start bytes: a few different prompts, each learnable by a model that sees
/// only the last two tokens.
tinker::model_input prompt_for(std::uint64_t seed) {
  const token_id start = static_cast<token_id>('0' + seed % 4);
  return tinker::model_input::from_ints(std::vector<token_id>{tinker::byte_tokenizer::bos_token, start});
}

/// The share of lowercase letters in a completion.
double reward(const std::vector<token_id>& tokens) {
  double lower = 0;
  for (auto t : tokens) lower += (t >= 'a' && t <= 'z');
  return tokens.empty() ? 0.0 : lower / static_cast<double>(tokens.size());
}

/// Each completion with the sampler's logprobs (the importance-sampling loss divides by them) and
/// its advantage: its reward minus the group's mean.
group make_group(const tinker::model_input& prompt, const tinker::sample_response& response, std::uint64_t version) {
  group g;
  g.version = version;
  std::vector<double> rewards;
  for (const auto& s : response.sequences) rewards.push_back(reward(s.tokens));
  if (rewards.empty()) return g;
  g.mean_reward = std::accumulate(rewards.begin(), rewards.end(), 0.0) / static_cast<double>(rewards.size());
  for (std::size_t i = 0; i < response.sequences.size(); ++i)
    if (!response.sequences[i].tokens.empty())
      g.datums.push_back(tinker::datum::from_sample(prompt, response.sequences[i], rewards[i] - g.mean_reward));
  return g;
}

/// A rollout worker: samples groups with the newest weights until the queue is closed.
asio::awaitable<void> rollout_worker(rollouts& r, int id) {
  const auto worker_seed = example::mix(static_cast<std::uint64_t>(r.cfg.common.seed), static_cast<std::uint64_t>(id));
  for (std::uint64_t n = 0;; ++n) {
    // A copy: the trainer may publish newer weights while this group is being sampled.
    policy p = r.latest;
    const auto seed = example::mix(worker_seed, n);
    auto prompt = prompt_for(seed);
    auto params = tinker::sampling_params(r.cfg.max_tokens).with_seed(seed);
    tinker::sample_response response;
    {
      r.peak_in_flight = std::max(r.peak_in_flight, ++r.in_flight);
      struct leave {
        std::size_t& count;
        ~leave() { --count; }
      } sampling{r.in_flight};
      response = co_await p.sampler.sample(prompt, r.cfg.group_size, std::move(params));
    }
    r.samples += response.sequences.size();
    auto g = make_group(prompt, response, p.version);
    if (!co_await r.queue.push(std::move(g))) co_return;  // closed: training is over
  }
}

void spawn_workers(rollouts& r, const asio::any_io_executor& ex) {
  for (int i = 0; i < r.cfg.workers; ++i) {
    ++r.running;
    asio::co_spawn(ex, rollout_worker(r, i), [&r](std::exception_ptr e) {
      if (e) {
        // The trainer would otherwise wait for groups forever: closing the queue tells it.
        if (!r.failure) r.failure = e;
        r.queue.close();
      }
      --r.running;
      r.stopped.try_send(boost::system::error_code());
    });
  }
}

std::string reason(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "unknown error";
  }
}

// --- Training -------------------------------------------------------------------------------------

struct step_stats {
  double reward = 0, staleness_sum = 0, staleness_mean = 0;
  std::uint64_t staleness_max = 0;
};

struct totals {
  std::size_t used = 0, dropped = 0;
  double staleness_sum = 0;
  std::uint64_t staleness_max = 0;
  std::vector<double> rewards;  // per step
};

asio::awaitable<void> train(rollouts& r, tinker::training_client& training, totals& t) {
  using clock = std::chrono::steady_clock;
  const auto& cfg = r.cfg;
  example::live_line live;
  example::metrics_log metrics(cfg.common.metrics_path);
  for (int step = 0; step < cfg.common.steps; ++step) {
    const auto step_start = clock::now();
    const auto samples_before = r.samples;

    // A batch of groups no more than max_steps_off_policy versions behind the weights it trains.
    std::vector<group> batch_groups;
    step_stats s;
    while (batch_groups.size() < static_cast<std::size_t>(cfg.groups_per_batch)) {
      live.show("step %d/%d  groups %zu/%d  queue %zu/%zu  sampling %zu  dropped %zu", step + 1, cfg.common.steps,
                batch_groups.size(), cfg.groups_per_batch, r.queue.size(), r.queue.capacity(), r.in_flight, t.dropped);
      auto g = co_await r.queue.pop();
      if (!g) throw std::runtime_error("a rollout worker failed: " + reason(r.failure));
      const auto staleness = r.latest.version - g->version;
      if (staleness > static_cast<std::uint64_t>(cfg.max_steps_off_policy)) {
        ++t.dropped;
        continue;
      }
      s.reward += g->mean_reward;
      s.staleness_sum += static_cast<double>(staleness);
      s.staleness_max = std::max(s.staleness_max, staleness);
      batch_groups.push_back(std::move(*g));
    }
    const auto n = static_cast<double>(batch_groups.size());
    s.reward /= n;
    s.staleness_mean = s.staleness_sum / n;
    t.staleness_sum += s.staleness_sum;
    t.staleness_max = std::max(t.staleness_max, s.staleness_max);
    t.used += batch_groups.size();
    t.rewards.push_back(s.reward);

    std::vector<tinker::datum> batch;
    for (auto& g : batch_groups)
      for (auto& d : g.datums) batch.push_back(std::move(d));
    live.show("step %d/%d  training on %zu completions  queue %zu/%zu  sampling %zu", step + 1, cfg.common.steps,
              batch.size(), r.queue.size(), r.queue.capacity(), r.in_flight);
    // Both requests are queued before either result is awaited; the workers sample meanwhile.
    auto fwd = co_await training.forward_backward(std::move(batch), tinker::loss_fn_type::importance_sampling);
    tinker::adam_params adam;
    adam.learning_rate = cfg.learning_rate;
    auto opt = co_await training.optim_step(adam);
    (void)co_await fwd.result();
    (void)co_await opt.result();
    // Publish the new weights: groups started from now on sample with them.
    auto sampler = co_await training.save_weights_and_get_sampling_client();
    r.latest.sampler = std::move(sampler);
    ++r.latest.version;

    const double seconds = std::chrono::duration<double>(clock::now() - step_start).count();
    const double samples_per_s = static_cast<double>(r.samples - samples_before) / seconds;
    live.clear();
    std::printf(
        "step %2d  reward %.3f  staleness mean %.2f max %llu  dropped %zu  samples/s %.0f  queue %zu/%zu  "
        "sampling %zu  waiting %zu\n",
        step, s.reward, s.staleness_mean, static_cast<unsigned long long>(s.staleness_max), t.dropped, samples_per_s,
        r.queue.size(), r.queue.capacity(), r.in_flight, r.queue.blocked_producers());
    std::fflush(stdout);
    metrics.write({{"step", step},
                   {"reward", s.reward},
                   {"staleness_mean", s.staleness_mean},
                   {"staleness_max", s.staleness_max},
                   {"dropped", t.dropped},
                   {"samples_per_s", samples_per_s},
                   {"queue", r.queue.size()},
                   {"in_flight", r.in_flight},
                   {"waiting", r.queue.blocked_producers()}});
  }
}

double mean_of(const std::vector<double>& v, std::size_t from, std::size_t to) {
  if (from >= to) return 0.0;
  return std::accumulate(v.begin() + static_cast<std::ptrdiff_t>(from), v.begin() + static_cast<std::ptrdiff_t>(to),
                         0.0) /
         static_cast<double>(to - from);
}

asio::awaitable<void> run(const config& cfg, const example::server& server) {
  const auto ex = co_await asio::this_coro::executor;
  tinker::service_client service(ex, server.options());
  tinker::lora_training_options lora;
  lora.rank = 8;
  lora.seed = cfg.common.seed;
  auto training = co_await service.create_lora_training_client(cfg.common.base_model, lora);
  std::printf(
      "training %s on %s (%s): %d steps of %d groups of %d, %d rollout workers, queue of %d groups, groups more than "
      "%d versions old dropped\n",
      training.model_id().c_str(), cfg.common.base_model.c_str(), server.describe().c_str(), cfg.common.steps,
      cfg.groups_per_batch, cfg.group_size, cfg.workers, cfg.queue_capacity, cfg.max_steps_off_policy);
  std::fflush(stdout);

  rollouts r(cfg, ex);
  r.latest.sampler = co_await training.save_weights_and_get_sampling_client();
  example::rate elapsed;
  spawn_workers(r, ex);

  totals t;
  std::exception_ptr failure;
  try {
    co_await train(r, training, t);
  } catch (...) {
    failure = std::current_exception();
  }
  // Stop the workers, failed or not: closing the queue fails their next push (a worker in the
  // middle of a sample call finishes it first). `r` must outlive them, so wait for all of them.
  const std::size_t left_in_queue = r.queue.size();
  r.queue.close();
  for (int i = 0; i < cfg.workers; ++i) co_await r.stopped.async_receive(asio::use_awaitable);
  if (failure) std::rethrow_exception(failure);

  const auto k = std::min<std::size_t>(3, t.rewards.size());
  std::printf(
      "summary: %d steps, %zu groups trained on, %zu dropped (more than %d versions old), %zu unused at the end; "
      "%zu samples in %.1f s (%.0f samples/s, peak %zu sample calls in flight); staleness mean %.2f max %llu; "
      "reward %.3f -> %.3f (first %zu steps -> last %zu); workers stopped %d/%d\n",
      cfg.common.steps, t.used, t.dropped, cfg.max_steps_off_policy, left_in_queue, r.samples, elapsed.seconds(),
      elapsed.per_second(static_cast<double>(r.samples)), r.peak_in_flight,
      t.used ? t.staleness_sum / static_cast<double>(t.used) : 0.0, static_cast<unsigned long long>(t.staleness_max),
      mean_of(t.rewards, 0, k), mean_of(t.rewards, t.rewards.size() - k, t.rewards.size()), k, k,
      cfg.workers - r.running, cfg.workers);
}

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  cfg.common.steps = 40;
  example::flags flags("rl_async",
                       "Off-policy RL: rollout workers keep sampling groups into a bounded queue while the trainer "
                       "trains on them.");
  cfg.common.add_to(flags, [&] { cfg.common.steps = 20; });
  flags.integer("--workers", cfg.workers, 1, 10'000, "rollout workers, each sampling one group at a time")
      .integer("--group-size", cfg.group_size, 2, 1'000, "completions per group (sharing a prompt and a baseline)")
      .integer("--groups-per-batch", cfg.groups_per_batch, 1, 10'000, "groups per training step")
      .integer("--max-steps-off-policy", cfg.max_steps_off_policy, 0, 1'000,
               "drop groups sampled more than this many optimizer steps ago")
      .integer("--queue", cfg.queue_capacity, 1, 100'000, "groups the queue holds before workers wait")
      .number("--learning-rate", cfg.learning_rate, 0, 1, "Adam's learning rate");
  return example::main(argc, argv, "rl_async", flags, cfg.common,
                       [&](const example::server& server) { return run(cfg, server); });
}
