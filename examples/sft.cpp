// Supervised fine-tuning on chat data: conversations from a JSONL file, each line
// {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}, rendered in a plain
// byte chat format and trained with cross-entropy on the assistant's words only. A share of the
// conversations is held out: after every epoch (a pass over the rest in shuffled batches) the
// example prints the loss on them, from a forward pass that does not train, and saves a checkpoint.
// At the end the final weights answer a few held-out prompts.
//
//   sft [--data FILE] [--epochs N] [--batch-size N] [--eval-fraction X] [--steps N] [--seed N] [--quick]
//       [--base-url URL] [--metrics FILE]
//
// Without --base-url (or TINKER_BASE_URL) it starts the local engine in-process. The shipped data
// (examples/data/chat.jsonl, written by make_chat.py next to it) suits the local byte model, which
// predicts each byte from the two before it: the answers count up to 9, run through the alphabet to
// Z, or say "yes."/"no.". Such a model cannot see the question from the answer (the header
// "assistant: " is in between), so the first byte of an answer stays a guess; every later byte
// follows from the two before it, and that is what the loss shows it learning.
#include "support/example.hpp"

#include <boost/json/parse.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#ifndef TINKER_EXAMPLES_DATA_DIR
#define TINKER_EXAMPLES_DATA_DIR "examples/data"
#endif

namespace asio = boost::asio;
namespace json = boost::json;
using tinker::token_id;

namespace {

struct config {
  example::common_options common;
  std::string data = TINKER_EXAMPLES_DATA_DIR "/chat.jsonl";
  int epochs = 8;
  int batch_size = 8;
  double eval_fraction = 0.2;
  double learning_rate = 0.02;
  int samples = 4;
};

// --- The data -------------------------------------------------------------------------------------

struct message {
  std::string role, content;
};

struct conversation {
  std::vector<message> messages;
};

/// One conversation from line `line` of `path`; throws std::runtime_error naming both for anything
/// that is not {"messages": [{"role": ..., "content": ...}, ...]} with at least one assistant turn.
conversation parse_conversation(const std::string& text, const std::string& path, std::size_t line) {
  const auto fail = [&](const std::string& why) {
    return std::runtime_error(path + ":" + std::to_string(line) + ": " + why);
  };
  boost::system::error_code ec;
  const json::value v = json::parse(text, ec);
  if (ec) throw fail("not valid JSON (" + ec.message() + ")");
  const auto* messages = v.is_object() ? v.as_object().if_contains("messages") : nullptr;
  if (!messages || !messages->is_array()) throw fail("expected an object with a \"messages\" array");
  conversation c;
  bool answered = false;
  for (const auto& m : messages->as_array()) {
    const auto* role = m.is_object() ? m.as_object().if_contains("role") : nullptr;
    const auto* content = m.is_object() ? m.as_object().if_contains("content") : nullptr;
    if (!role || !role->is_string() || !content || !content->is_string())
      throw fail("message " + std::to_string(c.messages.size()) + " needs a string \"role\" and \"content\"");
    const std::string r(role->as_string());
    if (r != "system" && r != "user" && r != "assistant")
      throw fail("message " + std::to_string(c.messages.size()) + " has role '" + r +
                 "' (system, user or assistant expected)");
    answered = answered || r == "assistant";
    c.messages.push_back({r, std::string(content->as_string())});
  }
  if (!answered) throw fail("the conversation has no assistant message to learn from");
  return c;
}

/// Every conversation in the JSONL file at `path` (blank lines are skipped).
std::vector<conversation> load_conversations(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open the data file '" + path + "'");
  std::vector<conversation> out;
  std::string text;
  for (std::size_t line = 1; std::getline(in, text); ++line)
    if (text.find_first_not_of(" \t\r") != std::string::npos) out.push_back(parse_conversation(text, path, line));
  if (out.size() < 2)
    throw std::runtime_error(path + ": needs at least 2 conversations (one to train, one to hold out)");
  return out;
}

// --- The chat format ------------------------------------------------------------------------------

/// Tokens and one weight per next-token target (tokens.size() - 1 of them).
struct rendered {
  std::vector<token_id> tokens;
  std::vector<float> weights;
};

/// The chat format: BOS, then each message as the bytes "<role>: <content>\n". Only what the
/// assistant writes, its content and the newline that ends its turn, is trained on (weight 1): the
/// role labels and the system and user messages are context the model reads but is not asked to
/// produce (weight 0). Learning the newline is what makes the model stop after its answer.
rendered render(const tinker::byte_tokenizer& tok, const std::vector<message>& messages) {
  rendered r;
  r.tokens.push_back(tinker::byte_tokenizer::bos_token);
  const auto append = [&](const std::string& text, float weight) {
    for (auto t : tok.encode(text)) {
      r.tokens.push_back(t);
      r.weights.push_back(weight);  // the weight of predicting t
    }
  };
  for (const auto& m : messages) {
    append(m.role + ": ", 0.0f);
    append(m.content + "\n", m.role == "assistant" ? 1.0f : 0.0f);
  }
  return r;
}

/// What the model is given to answer the conversation's last assistant turn: everything before
/// it, then the assistant's header.
std::vector<token_id> prompt_for(const tinker::byte_tokenizer& tok, const conversation& c) {
  std::size_t last = c.messages.size() - 1;
  while (c.messages[last].role != "assistant") --last;
  const std::vector<message> before(c.messages.begin(), c.messages.begin() + static_cast<std::ptrdiff_t>(last));
  auto tokens = render(tok, before).tokens;
  for (auto t : tok.encode("assistant: ")) tokens.push_back(t);
  return tokens;
}

struct weighted_batch {
  std::vector<tinker::datum> data;
  double weight = 0;  // assistant tokens in the batch: the loss is reported per such token
};

weighted_batch make_batch(const tinker::byte_tokenizer& tok, const std::vector<conversation>& all,
                          const std::vector<std::size_t>& which) {
  weighted_batch b;
  for (auto i : which) {
    auto r = render(tok, all[i].messages);
    b.weight += std::accumulate(r.weights.begin(), r.weights.end(), 0.0);
    b.data.push_back(tinker::datum::next_token(r.tokens, std::move(r.weights)));
  }
  return b;
}

// --- Training -------------------------------------------------------------------------------------

/// The held-out loss per assistant token: a forward pass only, nothing is trained.
asio::awaitable<double> eval_loss(tinker::training_client& training, const weighted_batch& held_out) {
  auto data = held_out.data;
  auto fwd = co_await training.forward(std::move(data), tinker::loss_fn_type::cross_entropy);
  const auto out = co_await fwd.result();
  co_return out.metrics.at("loss:sum") / held_out.weight;
}

asio::awaitable<void> run(const config& cfg, const example::server& server) {
  const auto& common = cfg.common;
  const auto conversations = load_conversations(cfg.data);

  // The split: a seeded shuffle, then the first eval_fraction of it held out.
  std::vector<std::size_t> order(conversations.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::mt19937_64 rng(static_cast<std::uint64_t>(common.seed));
  std::shuffle(order.begin(), order.end(), rng);
  const auto held = std::clamp<std::size_t>(
      static_cast<std::size_t>(cfg.eval_fraction * static_cast<double>(order.size()) + 0.5), 1, order.size() - 1);
  const std::vector<std::size_t> eval_ids(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(held));
  std::vector<std::size_t> train_ids(order.begin() + static_cast<std::ptrdiff_t>(held), order.end());

  tinker::service_client service(co_await asio::this_coro::executor, server.options());
  tinker::lora_training_options lora;
  lora.rank = 8;
  lora.seed = common.seed;
  auto training = co_await service.create_lora_training_client(common.base_model, lora);
  const auto tok = co_await training.get_tokenizer();
  const auto held_out = make_batch(tok, conversations, eval_ids);
  const auto batch_size = static_cast<std::size_t>(cfg.batch_size);
  const auto steps_per_epoch = (train_ids.size() + batch_size - 1) / batch_size;
  std::printf(
      "training %s on %s (%s): %zu conversations from %s, %zu trained on, %zu held out; %d epochs of %zu "
      "steps\n",
      training.model_id().c_str(), common.base_model.c_str(), server.describe().c_str(), conversations.size(),
      cfg.data.c_str(), train_ids.size(), eval_ids.size(), cfg.epochs, steps_per_epoch);

  example::live_line live;
  example::metrics_log metrics(common.metrics_path);
  example::rate speed;
  const double eval_before = co_await eval_loss(training, held_out);
  std::printf("epoch 0  eval loss per assistant token %.3f  (before training)\n", eval_before);
  metrics.write({{"epoch", 0}, {"eval_loss", eval_before}});

  int step = 0;
  std::size_t trained = 0;
  double first_train = 0, last_train = 0, last_eval = eval_before;
  tinker::adam_params adam;
  adam.learning_rate = cfg.learning_rate;
  for (int epoch = 1; epoch <= cfg.epochs && step < common.steps; ++epoch) {
    std::shuffle(train_ids.begin(), train_ids.end(), rng);
    for (std::size_t start = 0; start < train_ids.size() && step < common.steps; start += batch_size, ++step) {
      const std::vector<std::size_t> which(
          train_ids.begin() + static_cast<std::ptrdiff_t>(start),
          train_ids.begin() + static_cast<std::ptrdiff_t>(std::min(start + batch_size, train_ids.size())));
      auto batch = make_batch(tok, conversations, which);
      live.show("epoch %d/%d  step %d  conversations/s %.0f", epoch, cfg.epochs, step,
                speed.per_second(static_cast<double>(trained)));
      // Both requests are queued before either result is awaited.
      auto fwd = co_await training.forward_backward(std::move(batch.data), tinker::loss_fn_type::cross_entropy);
      auto opt = co_await training.optim_step(adam);
      const auto out = co_await fwd.result();
      (void)co_await opt.result();
      trained += which.size();
      const double loss = out.metrics.at("loss:sum") / batch.weight;
      if (step == 0) first_train = loss;
      last_train = loss;
      live.clear();
      std::printf("epoch %d  step %3d  train loss per assistant token %.3f\n", epoch, step, loss);
      std::fflush(stdout);
      metrics.write({{"epoch", epoch}, {"step", step}, {"train_loss", loss}});
    }
    live.show("epoch %d/%d  evaluating and saving", epoch, cfg.epochs);
    last_eval = co_await eval_loss(training, held_out);
    const std::string name = "sft-epoch-" + std::to_string(epoch);
    auto save = co_await training.save_state(name);
    const auto saved = co_await save.result();
    live.clear();
    std::printf("epoch %d  eval loss per assistant token %.3f  checkpoint %s\n", epoch, last_eval, saved.path.c_str());
    std::fflush(stdout);
    metrics.write({{"epoch", epoch}, {"eval_loss", last_eval}, {"checkpoint", saved.path}});
  }

  // Held-out prompts, answered by the final weights, all sampled at once.
  auto sampler = co_await training.save_weights_and_get_sampling_client();
  const auto shown = std::min<std::size_t>(static_cast<std::size_t>(cfg.samples), eval_ids.size());
  std::vector<tinker::api_future<tinker::sample_response>> answers;
  for (std::size_t i = 0; i < shown; ++i) {
    auto prompt = tinker::model_input::from_ints(prompt_for(tok, conversations[eval_ids[i]]));
    auto params = tinker::sampling_params(64).with_stop("\n").with_temperature(0.5).with_seed(
        static_cast<std::uint64_t>(common.seed) + i);
    answers.push_back(sampler.submit_sample(std::move(prompt), 1, std::move(params)));
  }
  const auto responses = co_await tinker::gather(std::move(answers));
  for (std::size_t i = 0; i < shown; ++i) {
    const auto& c = conversations[eval_ids[i]];
    const auto answer = example::printable(tok.decode(responses[i].sequences.at(0).tokens));
    std::string question, reference;
    for (const auto& m : c.messages) (m.role == "assistant" ? reference : question) = m.content;
    std::printf("sample  user: %-28s assistant: %-28s (held-out answer: %s)\n", question.c_str(), answer.c_str(),
                reference.c_str());
  }
  std::printf(
      "summary: %d steps over %zu conversations in %.1f s; train loss per assistant token %.3f -> %.3f, held-out "
      "%.3f -> %.3f\n",
      step, trained, speed.seconds(), first_train, last_train, eval_before, last_eval);
}

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  cfg.common.steps = 1'000'000;  // the epochs end the run unless --steps is smaller
  example::flags flags("sft", "Supervised fine-tuning on chat conversations, with a held-out loss per epoch.");
  cfg.common.add_to(flags, [&] { cfg.epochs = 5; });
  flags.text("--data", "FILE", cfg.data, "the conversations, one JSON object a line (default " + cfg.data + ")")
      .integer("--epochs", cfg.epochs, 1, 10'000, "passes over the training conversations")
      .integer("--batch-size", cfg.batch_size, 1, 100'000, "conversations per step")
      .number("--eval-fraction", cfg.eval_fraction, 0.01, 0.9, "the share of conversations held out")
      .number("--learning-rate", cfg.learning_rate, 0, 1, "Adam's learning rate")
      .integer("--samples", cfg.samples, 0, 1000, "held-out prompts answered at the end");
  return example::main(argc, argv, "sft", flags, cfg.common,
                       [&](const example::server& server) { return run(cfg, server); });
}
