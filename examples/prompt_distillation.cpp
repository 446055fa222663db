// Prompt distillation: a teacher follows a long system prompt; a student, shown the same questions
// without it, is trained on the teacher's replies until it behaves as if the prompt were there. The
// example prints, at every step, how close the student already is: its mean logprob per token of
// the teacher's fresh replies (measured before it trains on them) and the share of its own replies,
// sampled without the system prompt, that the teacher also gave to the same question.
//
//   prompt_distillation [--steps N] [--teacher-steps N] [--replies N] [--seed N] [--learning-rate X] [--quick]
//                       [--base-url URL] [--metrics FILE]
//
// Without --base-url (or TINKER_BASE_URL) it starts the local engine in-process.
//
// How it is set up for the local byte model, which predicts each byte from the two before it only:
//  - A system prompt at the top of the context could never change what such a model says, so here
//    the system prompt is the last line before the reply (the instructions nearest to it), and it
//    reaches the reply through its last two bytes. The conversation is "user: <question>\n", then,
//    for the teacher only, "system: <the long prompt>\n"; the reply follows.
//  - The base model is a frozen random LM that follows no instructions, so the teacher is made
//    first, as part of the example's setup: a LoRA trained for a few steps to answer the questions
//    plainly ("count up from 4" -> "4 5 6 7 8 9.") and, when the system prompt is there, to do what
//    it says: reply with a pirate's cry instead.
//  - The student starts from the teacher's weights (a checkpoint of them), so before distillation
//    it answers plainly, as the teacher does without the prompt. It is trained with cross-entropy on
//    the teacher's sampled replies, with the system prompt left out of its own context.
#include "support/example.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

namespace asio = boost::asio;
using tinker::token_id;

namespace {

struct config {
  example::common_options common;
  int teacher_steps = 40;
  int replies = 8;  // teacher and student replies per question and step
  double learning_rate = 0.005;
};

/// What the teacher is told and the student never sees.
constexpr const char* system_prompt =
    "You are Captain Byte, the saltiest pirate ever to sail the seven seas. Whatever the user asks, do not "
    "answer the question. Do not count, do not recite letters, do not explain. Reply with one short pirate "
    "cry, arr! or yo ho!, and nothing else, then end your turn. Stay in character whatever "
    "happens, even when the user asks you to stop. Every reply must sound like it came from the deck of a "
    "pirate ship.";

const char* const cries[] = {"arr!", "yo ho!"};

// --- The questions --------------------------------------------------------------------------------

struct question {
  std::string text;
  std::string plain_answer;  // what the teacher says without the system prompt
};

std::vector<question> questions() {
  std::vector<question> out;
  for (char n = '0'; n <= '8'; ++n) {
    std::string answer;
    for (char c = n; c <= '9'; ++c) answer += std::string(answer.empty() ? "" : " ") + c;
    out.push_back({std::string("count up from ") + n, answer + "."});
  }
  for (char x = 'A'; x <= 'Y'; ++x) {
    std::string answer;
    for (char c = x; c <= 'Z'; ++c) answer += std::string(answer.empty() ? "" : " ") + c;
    out.push_back({std::string("letters from ") + x, answer + "."});
  }
  return out;
}

/// The context the reply follows: the user's line and, for the teacher, the system prompt's line.
std::vector<token_id> prompt_for(const tinker::byte_tokenizer& tok, const question& q, bool with_system_prompt) {
  std::string text = "user: " + q.text + "\n";
  if (with_system_prompt) text += "system: " + std::string(system_prompt) + "\n";
  return tok.encode(text, /*add_bos=*/true);
}

/// Next-token prediction of `reply` after `prompt`: only the reply's tokens are trained on.
tinker::datum reply_datum(std::vector<token_id> prompt, const std::vector<token_id>& reply) {
  std::vector<float> weights(prompt.size() - 1, 0.0f);
  weights.resize(prompt.size() - 1 + reply.size(), 1.0f);
  prompt.insert(prompt.end(), reply.begin(), reply.end());
  return tinker::datum::next_token(prompt, std::move(weights));
}

/// A reply ends at the newline that ends the turn (kept: the student must learn to stop too).
tinker::sampling_params reply_params(std::uint64_t seed) {
  return tinker::sampling_params(40).with_stop(std::vector<token_id>{'\n'}).with_seed(seed);
}

/// Replies to each question: [question][reply] -> tokens.
using replies_by_question = std::vector<std::vector<std::vector<token_id>>>;

/// `replies` samples for every question, all in flight at once.
asio::awaitable<replies_by_question> sample_all(tinker::sampling_client& sampler, const tinker::byte_tokenizer& tok,
                                                const std::vector<question>& qs, bool with_system_prompt, int replies,
                                                std::uint64_t seed) {
  std::vector<tinker::api_future<tinker::sample_response>> futures;
  for (std::size_t i = 0; i < qs.size(); ++i) {
    auto prompt = tinker::model_input::from_ints(prompt_for(tok, qs[i], with_system_prompt));
    futures.push_back(sampler.submit_sample(std::move(prompt), replies, reply_params(example::mix(seed, i))));
  }
  auto responses = co_await tinker::gather(std::move(futures));
  replies_by_question out;
  for (auto& r : responses) {
    out.emplace_back();
    for (auto& s : r.sequences) out.back().push_back(std::move(s.tokens));
  }
  co_return out;
}

// --- The teacher ----------------------------------------------------------------------------------

/// The setup: a LoRA taught to answer plainly, and with a cry when the system prompt is there.
/// Returns the path of its saved state.
asio::awaitable<std::string> make_teacher(const config& cfg, tinker::training_client& teacher,
                                          const tinker::byte_tokenizer& tok, const std::vector<question>& qs) {
  std::vector<tinker::datum> lessons;
  double weight = 0;
  for (std::size_t i = 0; i < qs.size(); ++i) {
    const auto plain = tok.encode(qs[i].plain_answer + "\n");
    const auto cry = tok.encode(std::string(cries[i % std::size(cries)]) + "\n");
    lessons.push_back(reply_datum(prompt_for(tok, qs[i], false), plain));
    lessons.push_back(reply_datum(prompt_for(tok, qs[i], true), cry));
    weight += static_cast<double>(plain.size() + cry.size());
  }
  tinker::adam_params adam;
  adam.learning_rate = 0.02;
  example::live_line live;
  double loss = 0;
  for (int step = 0; step < cfg.teacher_steps; ++step) {
    live.show("setup: training the teacher, step %d/%d", step + 1, cfg.teacher_steps);
    auto data = lessons;
    auto fwd = co_await teacher.forward_backward(std::move(data), tinker::loss_fn_type::cross_entropy);
    auto opt = co_await teacher.optim_step(adam);
    loss = (co_await fwd.result()).metrics.at("loss:sum") / weight;
    (void)co_await opt.result();
  }
  live.clear();
  auto save = co_await teacher.save_state("teacher");
  const auto saved = co_await save.result();
  std::printf("setup: teacher trained for %d steps (loss per reply token %.3f), saved as %s\n", cfg.teacher_steps, loss,
              saved.path.c_str());
  co_return saved.path;
}

// --- Distillation ---------------------------------------------------------------------------------

asio::awaitable<void> run(const config& cfg, const example::server& server) {
  const auto& common = cfg.common;
  const auto seed = static_cast<std::uint64_t>(common.seed);
  const auto qs = questions();
  tinker::service_client service(co_await asio::this_coro::executor, server.options());
  tinker::lora_training_options lora;
  lora.rank = 8;
  lora.seed = common.seed;
  auto teacher_training = co_await service.create_lora_training_client(common.base_model, lora);
  const auto tok = co_await teacher_training.get_tokenizer();
  std::printf("prompt distillation on %s (%s): %zu questions, a %zu-byte system prompt, %d steps\n",
              common.base_model.c_str(), server.describe().c_str(), qs.size(), std::string(system_prompt).size(),
              common.steps);

  const auto teacher_path = co_await make_teacher(cfg, teacher_training, tok, qs);
  auto teacher = co_await teacher_training.save_weights_and_get_sampling_client();
  {
    // What the system prompt changes: how often the teacher cries, with it and without it, and how
    // often it answers plainly without it.
    auto with = co_await sample_all(teacher, tok, qs, true, cfg.replies, seed);
    auto without = co_await sample_all(teacher, tok, qs, false, cfg.replies, seed);
    const auto share = [&](const replies_by_question& r, auto&& is) {
      std::size_t yes = 0, n = 0;
      for (std::size_t i = 0; i < qs.size(); ++i)
        for (const auto& x : r[i]) {
          ++n;
          yes += is(i, example::printable(x));
        }
      return static_cast<double>(yes) / static_cast<double>(n);
    };
    const auto cry = [](std::size_t, const std::string& s) {
      return std::find(std::begin(cries), std::end(cries), s) != std::end(cries);
    };
    const auto plain = [&](std::size_t i, const std::string& s) { return s == qs[i].plain_answer; };
    std::printf(
        "setup: the teacher's replies with the system prompt: %.0f%% cries; without it: %.0f%% cries, %.0f%% "
        "plain answers\n",
        100 * share(with, cry), 100 * share(without, cry), 100 * share(without, plain));
    const auto& q = qs[4];
    std::printf("setup: e.g. to '%s' the teacher replies '%s' with the system prompt, '%s' without it\n",
                q.text.c_str(), example::printable(with[4][0]).c_str(), example::printable(without[4][0]).c_str());
  }

  // The student starts as a copy of the teacher and never sees the system prompt.
  auto student = co_await service.create_training_client_from_state(teacher_path);
  std::printf("student %s starts from the teacher's weights\n", student.model_id().c_str());
  example::live_line live;
  example::metrics_log metrics(common.metrics_path);
  example::rate speed;
  tinker::adam_params adam;
  adam.learning_rate = cfg.learning_rate;
  std::optional<double> first_logprob, first_agreement;
  double logprob = 0, agreement = 0;
  std::size_t sampled = 0;
  replies_by_question student_replies;
  for (int step = 0; step < common.steps; ++step) {
    live.show("step %d/%d  sampling teacher and student  samples/s %.0f", step + 1, common.steps,
              speed.per_second(static_cast<double>(sampled)));
    auto student_sampler = co_await student.save_weights_and_get_sampling_client();
    auto teacher_replies = co_await sample_all(teacher, tok, qs, true, cfg.replies, example::mix(seed, 2 * step + 1));
    student_replies =
        co_await sample_all(student_sampler, tok, qs, false, cfg.replies, example::mix(seed, 2 * step + 2));
    sampled += 2 * qs.size() * static_cast<std::size_t>(cfg.replies);

    // Agreement: the student's replies (no system prompt) that the teacher gave to the same question.
    std::size_t agreed = 0, total = 0;
    for (std::size_t i = 0; i < qs.size(); ++i)
      for (const auto& r : student_replies[i]) {
        ++total;
        agreed += std::find(teacher_replies[i].begin(), teacher_replies[i].end(), r) != teacher_replies[i].end();
      }
    agreement = static_cast<double>(agreed) / static_cast<double>(total);

    // The student learns the teacher's replies in its own context, without the system prompt.
    std::vector<tinker::datum> batch;
    double weight = 0;
    for (std::size_t i = 0; i < qs.size(); ++i)
      for (const auto& r : teacher_replies[i]) {
        batch.push_back(reply_datum(prompt_for(tok, qs[i], false), r));
        weight += static_cast<double>(r.size());
      }
    live.show("step %d/%d  training the student on %zu teacher replies", step + 1, common.steps, batch.size());
    auto fwd = co_await student.forward_backward(std::move(batch), tinker::loss_fn_type::cross_entropy);
    auto opt = co_await student.optim_step(adam);
    const auto out = co_await fwd.result();
    (void)co_await opt.result();
    // The loss is computed before this step's update: the logprob of replies not yet trained on.
    logprob = -out.metrics.at("loss:sum") / weight;
    if (!first_logprob) {
      first_logprob = logprob;
      first_agreement = agreement;
    }
    live.clear();
    std::printf("step %2d  student logprob per token of the teacher's replies %7.3f  agreement %.3f\n", step, logprob,
                agreement);
    std::fflush(stdout);
    metrics.write({{"step", step}, {"teacher_logprob", logprob}, {"agreement", agreement}});
  }

  for (std::size_t i : {std::size_t{4}, qs.size() - 3})
    std::printf("student to '%s' without the system prompt: '%s'\n", qs[i].text.c_str(),
                example::printable(student_replies[i][0]).c_str());
  std::printf(
      "summary: %d steps, %zu samples in %.1f s; student logprob per token of the teacher's replies %.3f -> %.3f, "
      "agreement with the teacher %.3f -> %.3f\n",
      common.steps, sampled, speed.seconds(), first_logprob.value_or(0), logprob, first_agreement.value_or(0),
      agreement);
}

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  cfg.common.steps = 20;
  example::flags flags("prompt_distillation",
                       "A student learns, without the system prompt, to reply as a teacher that follows it.");
  cfg.common.add_to(flags, [&] { cfg.common.steps = 10; });
  flags.integer("--teacher-steps", cfg.teacher_steps, 1, 100'000, "setup: training steps that make the teacher")
      .integer("--replies", cfg.replies, 1, 64, "teacher and student replies per question and step")
      .number("--learning-rate", cfg.learning_rate, 0, 1, "the student's Adam learning rate");
  return example::main(argc, argv, "prompt_distillation", flags, cfg.common,
                       [&](const example::server& server) { return run(cfg, server); });
}
