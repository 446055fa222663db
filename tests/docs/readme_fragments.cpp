// The README's short code blocks, compiled and run in context: each block sits between a
// `// README fragment <n>` line and `// end of fragment`, and tests/docs/check_readme.sh checks
// that the README shows exactly those lines. The program fails (exit 1) if a fragment does not do
// what the README says of it.
#include <tinker/local/engine.hpp>
#include <tinker/tinker.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

namespace asio = boost::asio;

namespace {

asio::awaitable<void> double_await(tinker::training_client& training, const std::vector<tinker::datum>& batch) {
  // README fragment 1
  auto fwd = co_await training.forward_backward(batch, tinker::loss_fn_type::cross_entropy);  // submitted
  auto opt = co_await training.optim_step(tinker::adam_params{.learning_rate = 1e-4});        // same clock cycle
  auto out = co_await fwd.result();                                                           // polled result
  // end of fragment
  (void)co_await opt.result();
  if (out.loss_fn_outputs.size() != batch.size()) throw std::runtime_error("fragment 1: one output per datum expected");
  if (out.metrics.count("loss:sum") == 0) throw std::runtime_error("fragment 1: no loss:sum metric");
}

asio::awaitable<void> run(tinker::client_options options) {
  tinker::service_client service(co_await asio::this_coro::executor, options);
  auto training = co_await service.create_lora_training_client("tinker-local/byte-lm-tiny", {.rank = 4});
  const std::vector<tinker::token_id> tokens{256, 'h', 'i', '!'};
  const std::vector<tinker::datum> batch{tinker::datum::next_token(tokens)};
  co_await double_await(training, batch);
}

}  // namespace

int main() {
  try {
    tinker::client_options options;
    // README fragment 2
    tinker::local::embedded_engine engine;  // own thread, free port, temporary data dir
    options.base_url = engine.base_url();   // "http://127.0.0.1:<port>"
    options.api_key = "tml-anything";       // open mode: every tml- key is its own tenant
    // end of fragment
    if (options.base_url.rfind("http://127.0.0.1:", 0) != 0)
      throw std::runtime_error("fragment 2: " + options.base_url);
    asio::io_context io;
    std::exception_ptr failure;
    asio::co_spawn(io, run(std::move(options)), [&](std::exception_ptr e) { failure = e; });
    io.run();
    if (failure) std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "readme_fragments: %s\n", e.what());
    return 1;
  }
  std::puts("readme_fragments: every fragment compiled and did what the README says");
  return 0;
}
