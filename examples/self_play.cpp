// Self-play: one LoRA policy learns a game (one-pile Nim) by playing hundreds of games at once,
// against itself and against a random player, every move a `sample` call interleaved with the
// other games' moves on one io_context. After each round of games it trains on its own moves with
// the importance-sampling loss (reward minus the group's mean as the advantage), then plays the
// next round with the new weights.
//
//   self_play [--steps N] [--games N] [--seed N] [--learning-rate X] [--quick] [--base-url URL] [--metrics FILE]
//
// Without --base-url (or TINKER_BASE_URL) it starts the local engine in-process. The game is
// written in bytes for the byte-level model, which predicts from the last two tokens only: the
// prompt is BOS and the pile as one byte, and a move is one byte, which takes `byte % 3 + 1`
// stones. Taking more stones than are left, or sampling more than one token, is an illegal move and
// loses the game. (Every byte is a move so that all three moves are explored from the first round:
// with only '1' to '3' legal, the first rounds reward whichever legal byte is likeliest at the start
// and the policy collapses onto it before it has learned anything about positions. The game is Nim
// because its positions fit in one byte: tic-tac-toe packed into two base-3 bytes was beyond that
// model.)
#include "support/example.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

namespace asio = boost::asio;
using tinker::token_id;

namespace {

struct config {
  example::common_options common;
  int games = 512;
  double learning_rate = 0.01;
};

// --- The game -----------------------------------------------------------------------------------

// Nim with one pile: players take 1, 2 or 3 stones in turn; who takes the last stone wins. Each game
// starts from a random pile, so every position is seen; the winning move is to leave a multiple of 4.
constexpr int first_player = 1, second_player = 2, nobody = 0;
constexpr int min_pile = 5, max_pile = 24;

/// BOS, then the pile as one byte: the local model predicts from the last two tokens only.
tinker::model_input prompt_for(int pile) {
  return tinker::model_input::from_ints(std::vector<token_id>{tinker::byte_tokenizer::bos_token, pile});
}

/// How many stones a sampled move takes, if it is legal: one byte (not BOS or EOS), taking
/// `byte % 3 + 1` stones, at most the pile.
std::optional<int> legal_take(int pile, const std::vector<token_id>& move) {
  if (move.size() != 1 || move[0] < 0 || move[0] > 255) return std::nullopt;
  const int take = move[0] % 3 + 1;
  if (take > pile) return std::nullopt;
  return take;
}

// --- Playing --------------------------------------------------------------------------------------

// self_play: the policy plays both sides; policy_first / policy_second: against the random player.
enum class game_kind { self_play, policy_first, policy_second };

struct policy_move {
  tinker::model_input prompt;
  tinker::sampled_sequence sampled;
  int side = nobody;
  bool illegal = false;
};

struct game_record {
  game_kind kind = game_kind::self_play;
  int winner = nobody;  // a player who moves illegally loses
  int illegal_by = nobody;
  std::vector<policy_move> moves;
};

/// What the concurrent games share (all on the one io_context thread).
struct arena {
  tinker::sampling_client sampler;
  std::uint64_t seed = 0;
  std::size_t in_flight = 0, peak_in_flight = 0, samples = 0;
};

asio::awaitable<game_record> play(arena& a, game_kind kind, std::uint64_t game_seed) {
  game_record g;
  g.kind = kind;
  std::mt19937_64 random_player(game_seed);
  int pile = min_pile + static_cast<int>(random_player() % (max_pile - min_pile + 1));
  int to_move = first_player;
  for (int turn = 0; pile > 0; ++turn, to_move = 3 - to_move) {
    const bool policy_turn =
        kind == game_kind::self_play || (kind == game_kind::policy_first) == (to_move == first_player);
    if (!policy_turn) {
      pile -= 1 + static_cast<int>(random_player() % static_cast<std::uint64_t>(std::min(3, pile)));
      if (pile == 0) g.winner = to_move;
      continue;
    }
    auto prompt = prompt_for(pile);
    auto params = tinker::sampling_params(1).with_seed(example::mix(game_seed, static_cast<std::uint64_t>(turn)));
    ++a.samples;
    a.peak_in_flight = std::max(a.peak_in_flight, ++a.in_flight);
    struct leave {
      std::size_t& n;
      ~leave() { --n; }
    } in_flight{a.in_flight};
    auto response = co_await a.sampler.sample(prompt, 1, std::move(params));
    policy_move m;
    m.prompt = std::move(prompt);
    m.sampled = std::move(response.sequences.at(0));
    m.side = to_move;
    const auto take = legal_take(pile, m.sampled.tokens);
    m.illegal = !take;
    g.moves.push_back(std::move(m));
    if (!take) {
      g.illegal_by = to_move;
      g.winner = 3 - to_move;
      co_return g;
    }
    pile -= *take;
    if (pile == 0) g.winner = to_move;
  }
  co_return g;
}

// --- Training -------------------------------------------------------------------------------------

/// The importance-sampling batch. A move's reward: -1 for an illegal move; for a legal one, the
/// game's outcome for the side that made it (+1 won, -1 lost; 0 when the game ended with an illegal
/// move, which is that move's fault alone). Its advantage is the reward minus the mean reward of its
/// group: the moves made from the same position (prompt) by the same side in the same kind of game.
/// Moves no better or worse than their group's are left out: they carry no gradient.
std::vector<tinker::datum> make_batch(const std::vector<game_record>& games) {
  using group_key = std::tuple<game_kind, int, token_id>;  // kind of game, side, position
  std::map<group_key, std::pair<double, int>> groups;      // sum, count
  auto key = [](const game_record& g, const policy_move& m) {
    return group_key(g.kind, m.side, m.prompt.to_ints().back());
  };
  auto reward = [](const game_record& g, const policy_move& m) {
    if (m.illegal) return -1.0;
    if (g.illegal_by != nobody) return 0.0;
    return g.winner == m.side ? 1.0 : -1.0;
  };
  for (const auto& g : games)
    for (const auto& m : g.moves) {
      auto& [sum, count] = groups[key(g, m)];
      sum += reward(g, m);
      ++count;
    }
  std::vector<tinker::datum> batch;
  for (const auto& g : games)
    for (const auto& m : g.moves) {
      const auto& [sum, count] = groups[key(g, m)];
      const double advantage = reward(g, m) - sum / count;
      if (std::abs(advantage) < 1e-9) continue;
      batch.push_back(tinker::datum::from_sample(m.prompt, m.sampled, advantage));
    }
  return batch;
}

struct iteration_stats {
  double win = 0, loss = 0, illegal = 0;
};

/// Against the random player: the policy's win and loss rates (a random player against itself
/// wins about half); and the share of all policy moves that were illegal.
iteration_stats measure(const std::vector<game_record>& games) {
  iteration_stats s;
  int evaluated = 0, moves = 0, illegal = 0;
  for (const auto& g : games) {
    for (const auto& m : g.moves) {
      ++moves;
      illegal += m.illegal;
    }
    if (g.kind == game_kind::self_play) continue;
    const int policy = g.kind == game_kind::policy_first ? first_player : second_player;
    ++evaluated;
    s.win += g.winner == policy;
    s.loss += g.winner != policy;
  }
  if (evaluated > 0) {
    s.win /= evaluated;
    s.loss /= evaluated;
  }
  s.illegal = moves > 0 ? static_cast<double>(illegal) / moves : 0.0;
  return s;
}

asio::awaitable<void> run(const config& cfg, const example::server& server) {
  using clock = std::chrono::steady_clock;
  const auto& common = cfg.common;
  tinker::service_client service(co_await asio::this_coro::executor, server.options());
  tinker::lora_training_options lora;
  lora.rank = 8;
  lora.seed = common.seed;
  auto training = co_await service.create_lora_training_client(common.base_model, lora);
  std::printf("training %s on %s (%s): %d iterations of %d games\n", training.model_id().c_str(),
              common.base_model.c_str(), server.describe().c_str(), common.steps, cfg.games);
  example::live_line live;
  example::metrics_log metrics(common.metrics_path);

  const auto start = clock::now();
  std::size_t total_samples = 0, total_games = 0, peak = 0;
  double play_seconds = 0;
  std::optional<iteration_stats> first;
  iteration_stats last;
  for (int it = 0; it < common.steps; ++it) {
    arena a;
    a.sampler = co_await training.save_weights_and_get_sampling_client();
    a.seed = example::mix(static_cast<std::uint64_t>(common.seed), static_cast<std::uint64_t>(it));

    // Every game is a coroutine; all of them run at once, their sample calls interleaved.
    std::vector<asio::awaitable<game_record>> games;
    for (int i = 0; i < cfg.games; ++i) {
      const auto kind = i % 2 == 0   ? game_kind::self_play
                        : i % 4 == 1 ? game_kind::policy_first
                                     : game_kind::policy_second;
      games.push_back(play(a, kind, example::mix(a.seed, static_cast<std::uint64_t>(i))));
    }
    const auto play_start = clock::now();
    example::rate sample_rate;
    auto records = co_await tinker::gather(std::move(games), [&](std::size_t done, std::size_t total) {
      live.show("iteration %d/%d  games %zu/%zu  samples in flight %zu  samples/s %.0f", it + 1, common.steps, done,
                total, a.in_flight, sample_rate.per_second(static_cast<double>(a.samples)));
    });
    const double seconds = std::chrono::duration<double>(clock::now() - play_start).count();

    auto batch = make_batch(records);
    const auto stats = measure(records);
    double loss = 0;
    if (!batch.empty()) {
      live.show("iteration %d/%d  training on %zu moves", it + 1, common.steps, batch.size());
      // Both requests are queued before either result is awaited.
      auto fwd = co_await training.forward_backward(std::move(batch), tinker::loss_fn_type::importance_sampling);
      tinker::adam_params adam;
      adam.learning_rate = cfg.learning_rate;
      auto opt = co_await training.optim_step(adam);
      const auto out = co_await fwd.result();
      (void)co_await opt.result();
      loss = out.metrics.count("loss:sum") ? out.metrics.at("loss:sum") : 0.0;
    }
    live.clear();

    std::printf(
        "iteration %2d  vs random: win %.3f loss %.3f  illegal moves %.3f  samples %zu  peak in flight %zu  "
        "samples/s %.0f\n",
        it, stats.win, stats.loss, stats.illegal, a.samples, a.peak_in_flight,
        static_cast<double>(a.samples) / seconds);
    std::fflush(stdout);
    metrics.write({{"step", it},
                   {"win_rate", stats.win},
                   {"loss_rate", stats.loss},
                   {"illegal_rate", stats.illegal},
                   {"loss", loss},
                   {"samples", a.samples},
                   {"samples_per_s", static_cast<double>(a.samples) / seconds}});
    if (!first) first = stats;
    last = stats;
    total_samples += a.samples;
    total_games += records.size();
    peak = std::max(peak, a.peak_in_flight);
    play_seconds += seconds;
  }
  const double seconds = std::chrono::duration<double>(clock::now() - start).count();
  std::printf(
      "summary: %d iterations, %zu games, %zu samples in %.1f s (%.0f samples/s while playing, peak %zu in flight); "
      "win rate vs random %.3f -> %.3f, illegal moves %.3f -> %.3f\n",
      common.steps, total_games, total_samples, seconds, static_cast<double>(total_samples) / play_seconds, peak,
      first ? first->win : 0.0, last.win, first ? first->illegal : 0.0, last.illegal);
}

}  // namespace

int main(int argc, char** argv) {
  config cfg;
  cfg.common.steps = 30;
  example::flags flags("self_play", "One LoRA policy learns one-pile Nim by playing hundreds of games at once.");
  cfg.common.add_to(flags, [&] {
    cfg.common.steps = 16;
    cfg.games = 256;
  });
  flags.integer("--games", cfg.games, 4, 1'000'000, "games per iteration, half self-play, half against a random player")
      .number("--learning-rate", cfg.learning_rate, 0, 1, "Adam's learning rate");
  return example::main(argc, argv, "self_play", flags, cfg.common,
                       [&](const example::server& server) { return run(cfg, server); });
}
