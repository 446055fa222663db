// The main demo: start the local engine in-process, fine-tune a LoRA adapter on a few lines of
// text with cross-entropy, then sample from the trained weights — all offline, on this CPU.
//
// With --remote it runs against the server in TINKER_BASE_URL / TINKER_API_KEY instead (one whose
// model reports the local engine's byte tokenizer, e.g. tinker-local-server: the demo encodes its
// text with get_tokenizer()).
#include <tinker/local/engine.hpp>
#include <tinker/tinker.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <cstring>
#include <iostream>

namespace asio = boost::asio;

namespace {

const char* corpus[] = {
    "the cat sat on the mat.",
    "the dog sat on the log.",
    "the bird sat on the word.",
};

asio::awaitable<void> demo(tinker::client_options options, std::string base_model) {
  tinker::service_client service(co_await asio::this_coro::executor, std::move(options));
  auto training = co_await service.create_lora_training_client(base_model, {.rank = 16});
  std::cout << "training " << training.model_id() << " on " << base_model << "\n";
  auto tok = co_await training.get_tokenizer();

  std::vector<tinker::datum> batch;
  std::size_t tokens = 0;
  for (const char* line : corpus) {
    batch.push_back(tinker::datum::next_token(tok.encode(line, /*add_bos=*/true)));  // input BOS + bytes[:-1]
    tokens += std::strlen(line);
  }
  for (int step = 1; step <= 40; ++step) {
    // Both requests are queued before either result is awaited: they share a server clock cycle.
    auto fwd = co_await training.forward_backward(batch, tinker::loss_fn_type::cross_entropy);
    auto opt = co_await training.optim_step({.learning_rate = 0.03});
    const auto out = co_await fwd.result();
    (void)co_await opt.result();
    if (step == 1 || step % 5 == 0)
      std::printf("step %2d  loss per token %.3f\n", step, out.metrics.at("loss:sum") / static_cast<double>(tokens));
  }

  auto saved = co_await (co_await training.save_state("sft-final")).result();
  std::cout << "saved training state: " << saved.path << "\n";
  auto sampler = co_await training.save_weights_and_get_sampling_client();
  for (const char* prompt : {"the cat", "the dog", "the b"}) {
    auto resp = co_await sampler.sample(
        tinker::model_input::from_ints(tok.encode(prompt, true)), 1,
        tinker::sampling_params(24).with_seed(1).with_stop(std::string(".")).with_temperature(0.5));
    std::cout << "  " << prompt << "|" << tok.decode(resp.sequences[0].tokens) << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool remote = argc > 1 && std::string(argv[1]) == "--remote";
  try {
    std::optional<tinker::local::embedded_engine> engine;
    tinker::client_options options;
    if (!remote) {
      engine.emplace();
      options.base_url = engine->base_url();
      options.api_key = "tml-local-demo";
    }
    asio::io_context io;
    std::exception_ptr failure;
    asio::co_spawn(io, demo(std::move(options), remote ? "Qwen/Qwen3-8B" : "tinker-local/byte-lm-tiny"),
                   [&](std::exception_ptr e) { failure = e; });
    io.run();
    if (failure) std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    std::cerr << "sft_and_sample: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
