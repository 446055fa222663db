// The README's first program: train a LoRA adapter for a few steps and sample from it, against the
// embedded local engine (set base_url and api_key to use another server).
#include <tinker/local/engine.hpp>
#include <tinker/tinker.hpp>

#include <boost/asio.hpp>

#include <iostream>

namespace asio = boost::asio;

asio::awaitable<void> train(tinker::client_options options) {
  tinker::service_client service(co_await asio::this_coro::executor, std::move(options));
  auto training = co_await service.create_lora_training_client("tinker-local/byte-lm-tiny", {.rank = 8});
  auto tokenizer = co_await training.get_tokenizer();

  // Next-token prediction on one line: the input is tokens[:-1], the targets are tokens[1:].
  const auto tokens = tokenizer.encode("hello, tinker!", /*add_bos=*/true);
  const std::vector<tinker::token_id> input(tokens.begin(), tokens.end() - 1);
  const std::vector<std::int64_t> targets(tokens.begin() + 1, tokens.end());
  tinker::datum example;
  example.model_input = tinker::model_input::from_ints(input);
  example.loss_fn_inputs.emplace("target_tokens", tinker::tensor_data(targets));
  example.loss_fn_inputs.emplace("weights", tinker::tensor_data(std::vector<float>(targets.size(), 1.0f)));
  const std::vector<tinker::datum> batch{example};

  for (int step = 0; step < 20; ++step) {
    // Two submissions back to back (the optimizer step queues right behind the gradients), then two results.
    auto fwd = co_await training.forward_backward(batch, tinker::loss_fn_type::cross_entropy);
    auto opt = co_await training.optim_step({.learning_rate = 0.05});
    auto out = co_await fwd.result();
    (void)co_await opt.result();
    if (step % 5 == 0) std::cout << "step " << step << "  loss " << out.metrics.at("loss:sum") << "\n";
  }

  auto sampler = co_await training.save_weights_and_get_sampling_client();
  const auto prompt = tinker::model_input::from_ints(tokenizer.encode("hello", /*add_bos=*/true));
  auto result = co_await sampler.sample(prompt, 3, tinker::sampling_params(12).with_temperature(0.7));
  for (const auto& s : result.sequences) std::cout << "hello|" << tokenizer.decode(s.tokens) << "\n";
}

int main() {
  tinker::local::embedded_engine engine;  // a Tinker-compatible server on a free local port
  tinker::client_options options;         // empty fields come from TINKER_BASE_URL, TINKER_API_KEY, ...
  options.base_url = engine.base_url();
  options.api_key = "tml-local";

  asio::io_context io;
  asio::co_spawn(io, train(std::move(options)), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);  // leaves io.run() with the error
  });
  io.run();  // returns when train() is done: the service_client (and its heartbeat) ends with it
}
