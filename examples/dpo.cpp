// Direct preference optimization (DPO) with a loss of your own: the policy learns from pairs of
// completions to the same prompt, one preferred ("chosen") and one not ("rejected"), without a
// reward model. The loss is not built into the server; the example writes it in C++ and hands it
// to `forward_backward_custom`, which runs a forward pass, calls the loss with every datum's
// per-token logprobs, and sends the loss's gradients back for the backward pass.
//
//   dpo [--steps N] [--pairs-per-step N] [--beta X] [--learning-rate X] [--seed N] [--quick]
//       [--base-url URL] [--metrics FILE]
//
// Without --base-url (or TINKER_BASE_URL) it starts the local engine in-process. The task is made
// for the byte-level model, which predicts from the last two tokens only: the prompt is BOS, 'q'
// and a digit d; the chosen completion is the next digit, (d + 1) mod 10; the rejected one is any
// other digit. DPO compares the policy with a frozen reference: the initial weights, whose
// logprobs are computed once, before the first step. The margin (the implicit reward of the
// chosen completion minus the rejected one's) starts at 0, since the policy is the reference, and
// grows as the policy learns the preference. At the end, the policy's most likely answer to each
// prompt shows what the preferences taught it.
//
// The completions are one byte on purpose. DPO constrains only the difference between the two
// logprobs: with a '.' after each digit, the cheapest way to widen the margin was to make '.'
// unlikely everywhere, and the chosen completion's likelihood fell along with the rejected one's
// (the "chosen" reward printed each step, going negative, shows when that happens).
#include "support/example.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace asio = boost::asio;
using tinker::token_id;

namespace {

struct config {
  example::common_options common;
  int pairs_per_step = 32;
  double beta = 0.1;
  double learning_rate = 0.01;
};

// --- The preference data ------------------------------------------------------------------------

/// One preference: a prompt and two completions of it, the chosen one preferred.
struct preference_pair {
  std::vector<token_id> prompt, chosen, rejected;
};

std::vector<token_id> prompt_for(int digit) { return {tinker::byte_tokenizer::bos_token, 'q', '0' + digit}; }

/// Every prompt with every wrong answer: 10 prompts x 9 rejected digits = 90 pairs, each
/// completion one byte.
std::vector<preference_pair> make_pairs() {
  std::vector<preference_pair> pairs;
  for (int d = 0; d < 10; ++d) {
    const int answer = (d + 1) % 10;
    for (int wrong = 0; wrong < 10; ++wrong) {
      if (wrong == answer) continue;
      pairs.push_back({prompt_for(d), {'0' + answer}, {'0' + wrong}});
    }
  }
  return pairs;
}

/// A next-token datum for prompt + completion whose weights are 1 on the completion's tokens and 0
/// on the prompt's: the sums of logprobs below are the completion's logprob given the prompt.
tinker::datum completion_datum(const std::vector<token_id>& prompt, const std::vector<token_id>& completion) {
  std::vector<token_id> tokens = prompt;
  tokens.insert(tokens.end(), completion.begin(), completion.end());
  std::vector<float> weights(prompt.size() - 1, 0.0f);
  weights.resize(tokens.size() - 1, 1.0f);
  return tinker::datum::next_token(tokens, std::move(weights));
}

/// Two datums per pair, chosen then rejected, so that datum 2k and 2k + 1 are pair k.
std::vector<tinker::datum> make_batch(const std::vector<preference_pair>& pairs, std::span<const std::size_t> which) {
  std::vector<tinker::datum> batch;
  for (const auto i : which) {
    batch.push_back(completion_datum(pairs[i].prompt, pairs[i].chosen));
    batch.push_back(completion_datum(pairs[i].prompt, pairs[i].rejected));
  }
  return batch;
}

/// log p(completion | prompt): the datum's per-token logprobs summed over its weighted (completion) tokens.
double completion_logprob(const tinker::datum& d, std::span<const float> logprobs) {
  const auto weights = d.loss_fn_inputs.at("weights").to_dense<float>();
  double sum = 0;
  for (std::size_t j = 0; j < logprobs.size(); ++j) sum += weights[j] * logprobs[j];
  return sum;
}

// --- The loss -------------------------------------------------------------------------------------

/// The DPO loss over a batch made by make_batch, given the reference's completion logprob for each
/// datum of that batch. For pair k, with lp = log p(completion | prompt) under the policy and ref
/// the same under the reference, its margin is
///
///   z = beta * ((lp_chosen - ref_chosen) - (lp_rejected - ref_rejected))
///
/// and its loss -log sigmoid(z) (= log(1 + e^-z): log 2 at z = 0, towards 0 as z grows). The batch's
/// loss is the mean over its P pairs.
///
/// The gradient with respect to every token logprob: dL/dz = -(1 - sigmoid(z)) = -sigmoid(-z), and
/// lp is a sum of token logprobs with weight w_j (1 on completion tokens, 0 on the prompt's), so
///
///   dL/dlogprob_j = -sigmoid(-z) * beta * w_j / P   for the chosen datum's tokens,
///                   +sigmoid(-z) * beta * w_j / P   for the rejected datum's.
///
/// Descending it raises the chosen completion's logprob and lowers the rejected one's, each pair
/// weighted by how wrong the policy still has it (sigmoid(-z) is near 1 for z << 0, near 0 for
/// z >> 0). The function owns its copy of the reference logprobs: it runs after
/// forward_backward_custom has returned.
tinker::custom_loss_fn dpo_loss(std::vector<double> reference, double beta) {
  return [reference = std::move(reference), beta](std::span<const tinker::datum> data,
                                                  std::span<const std::vector<float>> logprobs) {
    const std::size_t pairs = data.size() / 2;
    tinker::custom_loss_result r;
    double margin_sum = 0, chosen_sum = 0, rejected_sum = 0, correct = 0;
    for (std::size_t k = 0; k < pairs; ++k) {
      const std::size_t c = 2 * k, j = 2 * k + 1;  // chosen, rejected
      const double chosen = completion_logprob(data[c], logprobs[c]) - reference[c];
      const double rejected = completion_logprob(data[j], logprobs[j]) - reference[j];
      const double z = beta * (chosen - rejected);
      // -log sigmoid(z) = log(1 + e^-z), written so that neither sign of z overflows.
      r.loss += (z > 0 ? std::log1p(std::exp(-z)) : -z + std::log1p(std::exp(z))) / static_cast<double>(pairs);
      const double pull = beta / (1.0 + std::exp(z)) / static_cast<double>(pairs);  // beta * sigmoid(-z) / P
      for (const std::size_t i : {c, j}) {
        const auto weights = data[i].loss_fn_inputs.at("weights").to_dense<float>();
        std::vector<float> gradient(logprobs[i].size());
        const double sign = i == c ? -1.0 : 1.0;
        for (std::size_t t = 0; t < gradient.size(); ++t) gradient[t] = static_cast<float>(sign * pull * weights[t]);
        r.logprob_gradients.push_back(std::move(gradient));
      }
      margin_sum += z;
      chosen_sum += beta * chosen;
      rejected_sum += beta * rejected;
      correct += z > 0;
    }
    // Measured on this step's forward pass, before its update; reported in the pass's metrics.
    r.metrics["dpo:loss"] = r.loss;
    r.metrics["dpo:margin"] = margin_sum / static_cast<double>(pairs);
    r.metrics["dpo:accuracy"] = correct / static_cast<double>(pairs);
    r.metrics["dpo:chosen"] = chosen_sum / static_cast<double>(pairs);
    r.metrics["dpo:rejected"] = rejected_sum / static_cast<double>(pairs);
    return r;
  };
}

// --- Running --------------------------------------------------------------------------------------

/// The reference's completion logprob for every datum of make_batch(pairs, all pairs): one forward
/// pass (no gradients) of the training client before its first step, i.e. of the initial weights.
asio::awaitable<std::vector<double>> reference_logprobs(tinker::training_client& training,
                                                        const std::vector<tinker::datum>& all) {
  auto fwd = co_await training.forward(all, tinker::loss_fn_type::cross_entropy);
  const auto out = co_await fwd.result();
  std::vector<double> reference;
  for (std::size_t i = 0; i < all.size(); ++i)
    reference.push_back(completion_logprob(all[i], out.loss_fn_outputs.at(i).at("logprobs").to_dense<float>()));
  co_return reference;
}

/// The policy's most likely completion of every prompt (top-k 1), to show what the preferences taught.
asio::awaitable<int> show_answers(tinker::training_client& training) {
  auto sampler = co_await training.save_weights_and_get_sampling_client();
  std::vector<asio::awaitable<tinker::sample_response>> calls;
  for (int d = 0; d < 10; ++d) {
    auto prompt = tinker::model_input::from_ints(prompt_for(d));
    calls.push_back(sampler.sample(std::move(prompt), 1, tinker::sampling_params(1).with_top_k(1).with_seed(1)));
  }
  const auto responses = co_await tinker::gather(std::move(calls));
  int right = 0;
  std::printf("most likely answers:");
  for (int d = 0; d < 10; ++d) {
    const auto& tokens = responses[static_cast<std::size_t>(d)].sequences.at(0).tokens;
    const token_id answer = tokens.empty() ? -1 : tokens[0];
    right += answer == '0' + (d + 1) % 10;
    if (answer >= ' ' && answer <= '~')
      std::printf(" q%d->%c", d, static_cast<char>(answer));
    else
      std::printf(" q%d->#%d", d, answer);  // a byte that does not print, or no token at all
  }
  std::printf("\n");
  co_return right;
}

struct step_stats {
  double loss = 0, margin = 0, accuracy = 0, chosen = 0, rejected = 0;
};

asio::awaitable<void> run(const config& cfg, const example::server& server) {
  using clock = std::chrono::steady_clock;
  const auto& common = cfg.common;
  tinker::service_client service(co_await asio::this_coro::executor, server.options());
  tinker::lora_training_options lora;
  lora.rank = 8;
  lora.seed = common.seed;
  auto training = co_await service.create_lora_training_client(common.base_model, lora);
  const auto pairs = make_pairs();
  std::printf("training %s on %s (%s): %d steps of %d preference pairs (of %zu), beta %g\n",
              training.model_id().c_str(), common.base_model.c_str(), server.describe().c_str(), common.steps,
              cfg.pairs_per_step, pairs.size(), cfg.beta);
  example::live_line live;
  example::metrics_log metrics(common.metrics_path);
  const auto start = clock::now();

  // The frozen reference, once: datum 2i and 2i + 1 of the full batch are pair i's.
  std::vector<std::size_t> order(pairs.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  live.show("computing the reference logprobs of %zu pairs", pairs.size());
  const auto all_pairs = make_batch(pairs, order);
  const auto reference = co_await reference_logprobs(training, all_pairs);

  std::mt19937_64 shuffle(static_cast<std::uint64_t>(common.seed));
  std::size_t next = order.size();  // where the next mini-batch starts in `order`; reshuffled when used up
  std::vector<step_stats> history;
  example::rate pair_rate;
  std::size_t pairs_seen = 0;
  for (int step = 0; step < common.steps; ++step) {
    std::vector<std::size_t> which;
    while (which.size() < static_cast<std::size_t>(cfg.pairs_per_step)) {
      if (next == order.size()) {
        std::shuffle(order.begin(), order.end(), shuffle);
        next = 0;
      }
      which.push_back(order[next++]);
    }
    std::vector<double> batch_reference;
    for (const auto i : which) {
      batch_reference.push_back(reference[2 * i]);
      batch_reference.push_back(reference[2 * i + 1]);
    }
    auto batch = make_batch(pairs, which);
    auto loss = dpo_loss(std::move(batch_reference), cfg.beta);

    // The optimizer step is queued right behind the custom forward-backward, before either result.
    auto fwd = co_await training.forward_backward_custom(std::move(batch), std::move(loss));
    tinker::adam_params adam;
    adam.learning_rate = cfg.learning_rate;
    auto opt = co_await training.optim_step(adam);
    live.show("step %d/%d  margin %.3f  calls in flight 2  pairs/s %.0f", step + 1, common.steps,
              history.empty() ? 0.0 : history.back().margin, pair_rate.per_second(static_cast<double>(pairs_seen)));
    const auto out = co_await fwd.result();
    (void)co_await opt.result();
    pairs_seen += which.size();

    const step_stats s{out.metrics.at("dpo:loss"), out.metrics.at("dpo:margin"), out.metrics.at("dpo:accuracy"),
                       out.metrics.at("dpo:chosen"), out.metrics.at("dpo:rejected")};
    history.push_back(s);
    live.clear();
    // chosen / rejected: the implicit rewards beta * (lp - ref), whose difference is the margin.
    std::printf("step %3d  dpo loss %.4f  margin %+.4f  accuracy %.3f  (chosen %+.4f  rejected %+.4f)\n", step, s.loss,
                s.margin, s.accuracy, s.chosen, s.rejected);
    std::fflush(stdout);
    metrics.write({{"step", step},
                   {"dpo_loss", s.loss},
                   {"margin", s.margin},
                   {"accuracy", s.accuracy},
                   {"chosen_reward", s.chosen},
                   {"rejected_reward", s.rejected},
                   {"pairs", which.size()}});
  }
  const double seconds = std::chrono::duration<double>(clock::now() - start).count();
  const int right = co_await show_answers(training);
  std::printf(
      "summary: %d steps, %zu pairs in %.1f s; dpo loss %.4f -> %.4f, margin %+.4f -> %+.4f, accuracy %.3f -> %.3f; "
      "most likely answer is the chosen one for %d/10 prompts\n",
      common.steps, pairs_seen, seconds, history.front().loss, history.back().loss, history.front().margin,
      history.back().margin, history.front().accuracy, history.back().accuracy, right);
}

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  cfg.common.steps = 60;
  example::flags flags("dpo", "Preference learning (DPO) with a custom loss: the chosen-minus-rejected margin grows.");
  cfg.common.add_to(flags, [&] { cfg.common.steps = 30; });
  flags.integer("--pairs-per-step", cfg.pairs_per_step, 1, 100'000, "preference pairs per training step")
      .number("--beta", cfg.beta, 1e-6, 1e6,
              "DPO's beta, the scale of the implicit reward: larger keeps the policy nearer the reference")
      .number("--learning-rate", cfg.learning_rate, 0, 1, "Adam's learning rate");
  return example::main(argc, argv, "dpo", flags, cfg.common,
                       [&](const example::server& server) { return run(cfg, server); });
}
