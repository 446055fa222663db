// Checkpoint lifecycle: everything a checkpoint goes through, one numbered step at a time. Train a
// LoRA adapter for a step; save its full training state (weights and Adam state) and, with a time
// to live, its weights for sampling; resume training from the state with and without the optimizer
// and compare the next step's loss with simply continuing; sample from the sampler checkpoint; then,
// through the REST client, list the checkpoints, set and clear a time to live, publish and
// unpublish, and download the archive and list its files.
//
//   checkpoint_lifecycle [--steps N] [--seed N] [--learning-rate X] [--out DIR] [--keep] [--quick]
//                        [--base-url URL] [--metrics FILE]
//
// Without --base-url (or TINKER_BASE_URL) it starts the local engine in-process. The text trained
// on repeats the word "checkpoint": for the local byte model, which predicts from the last two
// bytes only, every pair of its bytes has exactly one next byte: after the one step of the default
// run the samples are still mostly noise; with --steps 5 they read "checkpoint checkpoint".
#include "support/example.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace fs = std::filesystem;
using tinker::token_id;

namespace {

struct config {
  example::common_options common;
  double learning_rate = 0.02;
  std::string out_dir;  // empty: the system's temporary directory
  bool keep = false;
};

constexpr const char* text = "checkpoint checkpoint checkpoint checkpoint";
constexpr std::int64_t sampler_ttl_seconds = 3600;
constexpr std::int64_t state_ttl_seconds = 600;

// --- Training -------------------------------------------------------------------------------------

/// The text as one next-token datum: BOS + the bytes, each byte the target of the two before it.
std::vector<tinker::datum> training_batch() {
  std::vector<token_id> tokens{tinker::byte_tokenizer::bos_token};
  for (const char* c = text; *c != '\0'; ++c) tokens.push_back(static_cast<unsigned char>(*c));
  return {tinker::datum::next_token(tokens)};
}

/// The number of target tokens of `text`, to turn the summed loss into a loss per token.
double text_tokens() { return static_cast<double>(std::char_traits<char>::length(text)); }

/// One SFT step; the loss per token before the step's update.
asio::awaitable<double> train_step(tinker::training_client& training, double learning_rate) {
  auto batch = training_batch();
  // Both requests are queued before either result is awaited.
  auto fwd = co_await training.forward_backward(std::move(batch), tinker::loss_fn_type::cross_entropy);
  tinker::adam_params adam;
  adam.learning_rate = learning_rate;
  auto opt = co_await training.optim_step(adam);
  const auto out = co_await fwd.result();
  (void)co_await opt.result();
  co_return out.metrics.at("loss:sum") / text_tokens();
}

/// The loss per token under the current weights, without touching gradients or the optimizer.
asio::awaitable<double> current_loss(tinker::training_client& training) {
  auto batch = training_batch();
  auto fwd = co_await training.forward(std::move(batch), tinker::loss_fn_type::cross_entropy);
  const auto out = co_await fwd.result();
  co_return out.metrics.at("loss:sum") / text_tokens();
}

/// What one more step does: the loss it computes its gradient at, and the loss after its update.
/// The first depends on the weights only; the second on the optimizer's state as well.
struct next_step {
  double before = 0, after = 0;
};

asio::awaitable<next_step> take_next_step(tinker::training_client& training, double learning_rate) {
  next_step s;
  s.before = co_await train_step(training, learning_rate);
  s.after = co_await current_loss(training);
  co_return s;
}

// --- Sampling -------------------------------------------------------------------------------------

/// The mean logprob of the text's bytes under a sampler's weights.
asio::awaitable<double> mean_logprob(tinker::sampling_client& sampler) {
  auto input = training_batch().front().model_input;
  input.append_int(static_cast<unsigned char>(text[std::char_traits<char>::length(text) - 1]));
  const auto logprobs = co_await sampler.compute_logprobs(std::move(input));
  double sum = 0;
  for (std::size_t i = 1; i < logprobs.size(); ++i) sum += logprobs[i];  // the first is BOS's: NaN
  co_return sum / static_cast<double>(logprobs.size() - 1);
}

// --- Checkpoints ----------------------------------------------------------------------------------

std::string expiry(const std::optional<tinker::timestamp>& t) {
  if (!t) return "never";
  return tinker::format_timestamp(std::chrono::floor<std::chrono::seconds>(*t)).substr(0, 19) + "Z";
}

std::string describe(const tinker::checkpoint& c) {
  char line[256];
  std::snprintf(line, sizeof line, "%-24s %-8s  expires %-20s  public %s", c.checkpoint_id.c_str(),
                std::string(tinker::to_string(c.checkpoint_type)).c_str(), expiry(c.expires_at).c_str(),
                c.is_public ? "yes" : "no");
  return line;
}

/// The checkpoint as the server lists it now: every change below is shown as read back, not as asked.
asio::awaitable<tinker::checkpoint> listed(tinker::rest_client& rest, const std::string& run_id,
                                           const std::string& path) {
  const auto list = co_await rest.list_checkpoints(run_id);
  for (const auto& c : list.checkpoints)
    if (c.tinker_path == path) co_return c;
  throw std::runtime_error("the run's checkpoint list has no " + path);
}

/// Removes the download directory at the end (or on failure), unless asked to keep it.
struct download_dir {
  fs::path path;
  bool keep = false;
  ~download_dir() {
    std::error_code ignored;
    if (!keep && !path.empty()) fs::remove_all(path, ignored);
  }
};

// --- The lifecycle ----------------------------------------------------------------------------------

asio::awaitable<void> run(const config& cfg, const example::server& server) {
  const auto start = std::chrono::steady_clock::now();
  const auto& common = cfg.common;
  tinker::service_client service(co_await asio::this_coro::executor, server.options());
  auto rest = service.create_rest_client();
  tinker::lora_training_options lora;
  lora.rank = 8;
  lora.seed = common.seed;
  auto training = co_await service.create_lora_training_client(common.base_model, lora);
  const auto run_id = training.model_id();
  std::printf("training %s on %s (%s): %d step(s) before the first save\n", run_id.c_str(), common.base_model.c_str(),
              server.describe().c_str(), common.steps);
  example::live_line live;
  example::metrics_log metrics(common.metrics_path);

  // 1. Train.
  double loss = 0;
  for (int step = 1; step <= common.steps; ++step) {
    live.show("training step %d/%d", step, common.steps);
    loss = co_await train_step(training, cfg.learning_rate);
    metrics.write({{"step", step}, {"loss", loss}});
  }
  live.clear();
  std::printf("1. trained %d step(s): loss per token %.4f at step %d\n", common.steps, loss, common.steps);

  // 2-3. Save: the training state (to resume from) keeps until deleted; the sampler weights expire.
  const auto name = "step-" + std::to_string(common.steps);
  auto saving_state = co_await training.save_state(name);
  auto saving_sampler = co_await training.save_weights_for_sampler(name, sampler_ttl_seconds);
  const auto state_path = (co_await saving_state.result()).path;
  const auto sampler_saved = co_await saving_sampler.result();
  if (!sampler_saved.path) throw std::runtime_error("save_weights_for_sampler answered without a path");
  const auto sampler_path = *sampler_saved.path;
  std::printf("2. saved state %s (ttl none)\n", state_path.c_str());
  std::printf("3. saved sampler weights %s (ttl %lld s)\n", sampler_path.c_str(),
              static_cast<long long>(sampler_ttl_seconds));

  // 4-6. Resume. Each resumed client is a new training run starting from the saved state; the
  // original client goes on from where it was. With the optimizer, the next step is the same step;
  // without it, the loss it starts from is the same (the weights are) but Adam starts over, so the
  // update differs. (The local engine keeps float32 weights, as saved, so its resumed losses are
  // bit-identical; a server whose checkpoints round the weights would be within ~1e-7.)
  const auto continued = co_await take_next_step(training, cfg.learning_rate);
  std::printf("4. continued the original client one step: loss per token %.9f before, %.9f after\n", continued.before,
              continued.after);
  metrics.write({{"phase", "continued"}, {"loss_before", continued.before}, {"loss_after", continued.after}});

  auto with_optimizer = co_await service.create_training_client_from_state_with_optimizer(state_path);
  const auto resumed = co_await take_next_step(with_optimizer, cfg.learning_rate);
  std::printf(
      "5. resumed with the optimizer (run %s), one step: loss per token %.9f before, %.9f after "
      "(differences %.1e, %.1e)\n",
      with_optimizer.model_id().c_str(), resumed.before, resumed.after, std::abs(resumed.before - continued.before),
      std::abs(resumed.after - continued.after));
  metrics.write({{"phase", "resumed_with_optimizer"}, {"loss_before", resumed.before}, {"loss_after", resumed.after}});

  auto without_optimizer = co_await service.create_training_client_from_state(state_path);
  const auto restarted = co_await take_next_step(without_optimizer, cfg.learning_rate);
  std::printf(
      "6. resumed without the optimizer (run %s), one step: loss per token %.9f before, %.9f after "
      "(differences %.1e, %.1e: Adam starts over)\n",
      without_optimizer.model_id().c_str(), restarted.before, restarted.after,
      std::abs(restarted.before - continued.before), std::abs(restarted.after - continued.after));
  metrics.write(
      {{"phase", "resumed_without_optimizer"}, {"loss_before", restarted.before}, {"loss_after", restarted.after}});

  // 7. Sample from the sampler checkpoint: it holds the weights of step N, as saved (the original
  // client has moved on since). The base model alone, for comparison.
  auto sampler = co_await service.create_sampling_client(sampler_path);
  auto base = co_await service.create_base_model_sampling_client(common.base_model);
  const double trained_logprob = co_await mean_logprob(sampler);
  const double base_logprob = co_await mean_logprob(base);
  auto prompt = tinker::model_input::from_ints(std::vector<token_id>{tinker::byte_tokenizer::bos_token, 'c', 'h'});
  auto params = tinker::sampling_params(20).with_seed(static_cast<std::uint64_t>(common.seed)).with_temperature(0.3);
  const auto samples = co_await sampler.sample(std::move(prompt), 3, std::move(params));
  std::printf("7. sampled from %s: mean logprob of the text %.3f (base model %.3f)\n", sampler_path.c_str(),
              trained_logprob, base_logprob);
  for (std::size_t i = 0; i < samples.sequences.size(); ++i)
    std::printf("   sample %zu: \"ch%s\"\n", i + 1, example::printable(samples.sequences[i].tokens).c_str());

  // 8-9. List: the run's checkpoints, and all of the user's (newest first, paged).
  const auto run_list = co_await rest.list_checkpoints(run_id);
  std::printf("8. run %s lists %zu checkpoint(s):\n", run_id.c_str(), run_list.checkpoints.size());
  for (const auto& c : run_list.checkpoints) std::printf("   %s\n", describe(c).c_str());
  const auto user_list = co_await rest.list_user_checkpoints(100);
  const auto run_prefix = "tinker://" + run_id + "/";
  const auto ours = std::count_if(user_list.checkpoints.begin(), user_list.checkpoints.end(),
                                  [&](const tinker::checkpoint& c) { return c.tinker_path.starts_with(run_prefix); });
  std::printf("9. the user's checkpoints: %lld in all, %zu on the first page, %ld of them this run's\n",
              static_cast<long long>(user_list.cursor ? user_list.cursor->total_count
                                                      : static_cast<std::int64_t>(user_list.checkpoints.size())),
              user_list.checkpoints.size(), static_cast<long>(ours));

  // 10-11. A time to live, set and cleared: an expiring checkpoint is deleted by the server.
  const auto state_id = tinker::tinker_path::parse(state_path).checkpoint_id();
  co_await rest.set_checkpoint_ttl_from_tinker_path(state_path, state_ttl_seconds);
  auto state = co_await listed(rest, run_id, state_path);
  std::printf("10. set the ttl of %s to %lld s: expires %s\n", state_id.c_str(),
              static_cast<long long>(state_ttl_seconds), expiry(state.expires_at).c_str());
  co_await rest.set_checkpoint_ttl_from_tinker_path(state_path, std::nullopt);
  state = co_await listed(rest, run_id, state_path);
  std::printf("11. cleared the ttl of %s: expires %s\n", state_id.c_str(), expiry(state.expires_at).c_str());

  // 12-13. Publishing lets any user read the checkpoint (resume from it, sample from it, download it).
  co_await rest.publish_checkpoint_from_tinker_path(state_path);
  state = co_await listed(rest, run_id, state_path);
  std::printf("12. published %s: public %s\n", state_id.c_str(), state.is_public ? "yes" : "no");
  co_await rest.unpublish_checkpoint_from_tinker_path(state_path);
  state = co_await listed(rest, run_id, state_path);
  std::printf("13. unpublished %s: public %s\n", state_id.c_str(), state.is_public ? "yes" : "no");

  // 14-15. Download the sampler checkpoint's archive: the adapter, as files to use elsewhere. The
  // destination must not exist yet; it appears only once the archive is complete.
  download_dir dir;
  dir.keep = cfg.keep;
  const fs::path parent = cfg.out_dir.empty() ? fs::temp_directory_path() : fs::path(cfg.out_dir);
  const auto destination = parent / ("checkpoint_lifecycle-" + std::to_string(::getpid()) + "-" + name);
  dir.path = destination;
  auto download = rest.default_download_options();
  download.on_progress = [&live](const tinker::download_progress& p) {
    live.show("downloading: %llu bytes", static_cast<unsigned long long>(p.bytes_received));
  };
  const auto files = co_await rest.download_checkpoint_from_tinker_path(sampler_path, destination, std::move(download));
  live.clear();
  std::uintmax_t total = 0;
  for (const auto& f : files) total += fs::file_size(destination / f);
  std::printf("14. downloaded %s into %s: %zu files, %ju bytes\n",
              tinker::tinker_path::parse(sampler_path).checkpoint_id().c_str(), destination.c_str(), files.size(),
              total);
  for (const auto& f : files)
    std::printf("   %-28s %ju bytes\n", f.c_str(), static_cast<std::uintmax_t>(fs::file_size(destination / f)));
  if (cfg.keep)
    std::printf("15. kept %s\n", destination.c_str());
  else
    std::printf("15. removing %s (--keep keeps it)\n", destination.c_str());

  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "summary: %d step(s), 2 checkpoints saved, resumed twice; next-step loss %.6f continued, %.6f resumed with "
      "the optimizer, %.6f without; %zu files downloaded; %.2f s\n",
      common.steps, continued.after, resumed.after, restarted.after, files.size(), seconds);
}

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  cfg.common.steps = 1;
  example::flags flags("checkpoint_lifecycle",
                       "Saves, resumes, samples from, lists, expires, publishes and downloads checkpoints, step by "
                       "step.");
  cfg.common.add_to(flags, [] {});  // the whole run is already short
  flags.number("--learning-rate", cfg.learning_rate, 0, 1, "Adam's learning rate")
      .text("--out", "DIR", cfg.out_dir, "download the archive under DIR (default: the system's temporary directory)")
      .toggle(
          "--keep", [&] { cfg.keep = true; }, "keep the downloaded files");
  return example::main(argc, argv, "checkpoint_lifecycle", flags, cfg.common,
                       [&](const example::server& server) { return run(cfg, server); });
}
