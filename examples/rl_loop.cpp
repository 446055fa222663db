// A minimal RL loop (like the cookbook's rl_loop): sample a group of completions per iteration
// from the current weights, reward the fraction of lowercase letters, use group-mean-baseline
// advantages with the importance-sampling loss, and watch the mean reward rise.
#include <tinker/local/engine.hpp>
#include <tinker/tinker.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <iostream>
#include <numeric>

namespace asio = boost::asio;

namespace {

double reward(const std::vector<tinker::token_id>& tokens) {
  double lower = 0;
  for (auto t : tokens) lower += (t >= 'a' && t <= 'z');
  return tokens.empty() ? 0.0 : lower / static_cast<double>(tokens.size());
}

asio::awaitable<void> rl(tinker::client_options options) {
  tinker::service_client service(co_await asio::this_coro::executor, std::move(options));
  auto training = co_await service.create_lora_training_client("tinker-local/byte-lm-tiny", {.rank = 8, .seed = 1});
  const auto prompt = tinker::model_input::from_ints(std::vector<tinker::token_id>{tinker::byte_tokenizer::bos_token});
  constexpr int groups = 4, group_size = 8;
  for (int iteration = 0; iteration < 25; ++iteration) {
    auto sampler = co_await training.save_weights_and_get_sampling_client();
    // All groups are sampled concurrently: the futures are submitted first, then awaited.
    std::vector<tinker::api_future<tinker::sample_response>> futures;
    for (int g = 0; g < groups; ++g)
      futures.push_back(sampler.submit_sample(
          prompt, group_size,
          tinker::sampling_params(8).with_seed(static_cast<std::uint64_t>(iteration * groups + g))));
    std::vector<tinker::datum> batch;
    double total = 0;
    for (auto& future : futures) {
      const auto resp = co_await future.result();
      std::vector<double> rewards;
      for (const auto& s : resp.sequences) rewards.push_back(reward(s.tokens));
      const double mean = std::accumulate(rewards.begin(), rewards.end(), 0.0) / static_cast<double>(rewards.size());
      total += mean;
      // Each completion with its sampler logprobs and its advantage over the group's mean.
      for (std::size_t i = 0; i < resp.sequences.size(); ++i)
        if (!resp.sequences[i].tokens.empty())
          batch.push_back(tinker::datum::from_sample(prompt, resp.sequences[i], rewards[i] - mean));
    }
    auto fwd = co_await training.forward_backward(std::move(batch), tinker::loss_fn_type::importance_sampling);
    auto opt = co_await training.optim_step({.learning_rate = 0.02});
    (void)co_await fwd.result();
    (void)co_await opt.result();
    if (iteration % 4 == 0 || iteration == 24)
      std::printf("iteration %2d  mean reward %.3f\n", iteration, total / groups);
  }
}

}  // namespace

int main() {
  try {
    tinker::local::embedded_engine engine;
    tinker::client_options options;
    options.base_url = engine.base_url();
    options.api_key = "tml-local-demo";
    asio::io_context io;
    std::exception_ptr failure;
    asio::co_spawn(io, rl(std::move(options)), [&](std::exception_ptr e) { failure = e; });
    io.run();
    if (failure) std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    std::cerr << "rl_loop: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
