// sample_batch: autoregressive sampling of many requests on the same weights at once. All
// sequences of all jobs advance in lockstep, a block of positions per forward_block call, so the
// weights stream through the cache once per block rather than once per token.
//
// Semantics:
// * The first token is predicted from the prompt's last context (last token, the one before it or
//   BOS), exactly as forward_backward predicts position i from (tokens[i], tokens[i-1]).
// * temperature T > 0 samples from softmax(z / T) after top_k (-1 = all) then top_p (nucleus, on
//   the renormalised top-k distribution); T = 0 is greedy (ties: lowest id).
// * A sampled token's logprob is taken under softmax(z / T) before top-k/top-p truncation (for
//   T = 0: under softmax(z)); at T = 1 it is bit-identical to forward_backward's logprob.
// * Stops: EOS always, stop token ids, stop strings (matched on the bytes generated so far), each
//   with stop_reason "stop" and the triggering token included; otherwise "length" at max_tokens.
// * Sample i of a job uses its own generator seeded from (job seed, i): results do not depend on
//   which other jobs share the batch.
// * prompt_logprobs (untempered, one per prompt token, NaN at 0) and topk_prompt_logprobs (row 0
//   the sentinel, rows sorted by logprob descending, ties by id) when requested.
#pragma once

#include <tinker/byte_tokenizer.hpp>
#include <tinker/error.hpp>
#include <tinker/local/model/base_model.hpp>
#include <tinker/local/model/detail/forward.hpp>
#include <tinker/local/model/detail/losses.hpp>
#include <tinker/local/model/detail/random.hpp>
#include <tinker/local/model/lora_weights.hpp>
#include <tinker/types/sampling.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace tinker::local {

/// One request of a batch and the seed to sample it with (the request's own seed, or one the
/// engine chose when it had none).
struct sample_job {
  const tinker::sample_request* request = nullptr;
  std::uint64_t seed = 0;
};

namespace detail {

/// The most samples one request may ask for (a bound on the memory one request can claim).
inline constexpr std::int32_t max_num_samples = 1 << 16;
/// The most tokens one request may generate, num_samples x max_tokens (a bound on its work).
inline constexpr std::int64_t max_sampled_tokens_per_request = std::int64_t{1} << 22;

/// A validated job.
struct sampling_plan {
  const sample_request* request = nullptr;
  std::vector<token_id> prompt;
  std::size_t num_samples = 1;
  std::size_t max_tokens = 0;
  double temperature = 1.0;
  std::size_t top_k = 0;  ///< effective: vocab size when unlimited
  double top_p = 1.0;
  std::vector<std::string_view> stop_strings;
  std::vector<bool> stop_tokens;  ///< by token id
  std::uint64_t seed = 0;
  bool prompt_logprobs = false;
  std::size_t topk_prompt = 0;

  bool truncates() const noexcept {
    return top_k < static_cast<std::size_t>(byte_tokenizer::vocab_size) || top_p < 1.0;
  }
};

inline sampling_plan plan_job(const sample_job& job, const base_model_spec& spec) {
  constexpr int vocab = byte_tokenizer::vocab_size;
  auto fail = [](const std::string& message) -> void { throw tinker::invalid_argument(message); };
  if (!job.request) fail("sample_batch: a job has no request");
  const auto& r = *job.request;
  const auto& sp = r.sampling_params;
  sampling_plan p;
  p.request = job.request;
  p.seed = job.seed;

  if (r.num_samples < 1 || r.num_samples > max_num_samples)
    fail("num_samples must be in [1, " + std::to_string(max_num_samples) + "], got " + std::to_string(r.num_samples));
  p.num_samples = static_cast<std::size_t>(r.num_samples);
  if (!sp.max_tokens) fail("sampling_params.max_tokens is required (a positive integer)");
  if (*sp.max_tokens <= 0) fail("sampling_params.max_tokens must be positive, got " + std::to_string(*sp.max_tokens));
  p.max_tokens = static_cast<std::size_t>(*sp.max_tokens);
  if (std::int64_t{r.num_samples} * *sp.max_tokens > max_sampled_tokens_per_request)
    fail("num_samples x sampling_params.max_tokens = " + std::to_string(r.num_samples) + " x " +
         std::to_string(*sp.max_tokens) + " exceeds the per-request limit of " +
         std::to_string(max_sampled_tokens_per_request) + " sampled tokens");
  if (!std::isfinite(sp.temperature) || sp.temperature < 0.0)
    fail("sampling_params.temperature must be a finite number >= 0, got " + format_number(sp.temperature));
  p.temperature = sp.temperature;
  if (sp.top_k == 0 || sp.top_k < -1)
    fail("sampling_params.top_k must be -1 (no limit) or positive, got " + std::to_string(sp.top_k));
  p.top_k = sp.top_k == -1 ? static_cast<std::size_t>(vocab)
                           : std::min<std::size_t>(static_cast<std::size_t>(sp.top_k), vocab);
  if (!(sp.top_p > 0.0 && sp.top_p <= 1.0))
    fail("sampling_params.top_p must be in (0, 1], got " + format_number(sp.top_p));
  p.top_p = sp.top_p;
  if (r.topk_prompt_logprobs < 0 || r.topk_prompt_logprobs > vocab)
    fail("topk_prompt_logprobs must be in [0, " + std::to_string(vocab) + "], got " +
         std::to_string(r.topk_prompt_logprobs));
  p.topk_prompt = static_cast<std::size_t>(r.topk_prompt_logprobs);
  p.prompt_logprobs = r.prompt_logprobs.value_or(false);

  std::size_t length = 0;
  for (std::size_t c = 0; c < r.prompt.chunks.size(); ++c) {
    const auto* text = std::get_if<encoded_text_chunk>(&r.prompt.chunks[c]);
    if (!text) {
      static constexpr const char* kinds[] = {"encoded_text", "image", "image_asset_pointer", "dmel"};
      fail("prompt.chunks[" + std::to_string(c) + "] is an " + kinds[r.prompt.chunks[c].index()] +
           " chunk; this model reads text (encoded_text) only");
    }
    length += text->tokens.size();
  }
  if (length == 0) fail("prompt is empty (give at least one token, e.g. BOS)");
  if (length + p.max_tokens > static_cast<std::size_t>(spec.max_context_length))
    fail("prompt (" + std::to_string(length) + " tokens) plus sampling_params.max_tokens (" +
         std::to_string(p.max_tokens) + ") exceed the context length of " + spec.name + " (" +
         std::to_string(spec.max_context_length) + ")");
  p.prompt.reserve(length);
  for (const auto& c : r.prompt.chunks)
    for (auto t : std::get<encoded_text_chunk>(c).tokens) {
      if (!byte_tokenizer::is_valid(t))
        fail("prompt: token id " + std::to_string(t) + " at position " + std::to_string(p.prompt.size()) +
             " is out of range [0, " + std::to_string(vocab) + ")");
      p.prompt.push_back(t);
    }

  p.stop_tokens.assign(vocab, false);
  p.stop_tokens[byte_tokenizer::eos_token] = true;
  if (sp.stop) {
    auto add_string = [&](const std::string& s, const std::string& field) {
      if (s.empty()) fail(field + " is an empty string");
      p.stop_strings.emplace_back(s);
    };
    if (const auto* one = std::get_if<std::string>(&*sp.stop))
      add_string(*one, "sampling_params.stop");
    else if (const auto* many = std::get_if<std::vector<std::string>>(&*sp.stop))
      for (std::size_t i = 0; i < many->size(); ++i)
        add_string((*many)[i], "sampling_params.stop[" + std::to_string(i) + "]");
    else
      for (auto t : std::get<std::vector<token_id>>(*sp.stop)) {
        if (!byte_tokenizer::is_valid(t))
          fail("sampling_params.stop: token id " + std::to_string(t) + " is out of range [0, " + std::to_string(vocab) +
               ")");
        p.stop_tokens[static_cast<std::size_t>(t)] = true;
      }
  }
  return p;
}

/// Buffers reused for every token of a batch.
struct sampling_scratch {
  explicit sampling_scratch(std::size_t vocab) : scaled(vocab), probs(vocab), order(vocab) {}
  std::vector<double> scaled, probs;
  std::vector<token_id> order;
};

/// Sorts the first `k` ids of `order` by value descending, ties by id ascending.
inline void top_ids(const double* values, std::vector<token_id>& order, std::size_t k) {
  for (std::size_t v = 0; v < order.size(); ++v) order[v] = static_cast<token_id>(v);
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                    [&](token_id a, token_id b) {
                      const double va = values[static_cast<std::size_t>(a)], vb = values[static_cast<std::size_t>(b)];
                      return va > vb || (va == vb && a < b);
                    });
}

struct picked {
  token_id token;
  double logprob;
};

/// One token from logits `z` (log-sum-exp `lse`) under the plan's temperature, top-k and top-p.
inline picked pick_token(const sampling_plan& p, const double* z, double lse, xoshiro256ss& rng, sampling_scratch& s) {
  const auto vocab = s.probs.size();
  if (p.temperature == 0.0) {
    std::size_t best = 0;
    for (std::size_t v = 1; v < vocab; ++v)
      if (z[v] > z[best]) best = v;
    return {static_cast<token_id>(best), z[best] - lse};
  }
  // z / 1.0 == z exactly, so T = 1 reads the same numbers forward_backward does.
  const double* scaled = z;
  double lse_t = lse;
  if (p.temperature != 1.0) {
    for (std::size_t v = 0; v < vocab; ++v) s.scaled[v] = z[v] / p.temperature;
    scaled = s.scaled.data();
    lse_t = log_sum_exp(scaled, vocab);
  }
  const double u = rng.uniform();
  if (!p.truncates()) {
    double total = 0.0;
    for (std::size_t v = 0; v < vocab; ++v) total += s.probs[v] = std::exp(scaled[v] - lse_t);
    const double threshold = u * total;
    double acc = 0.0;
    std::size_t last = 0;
    for (std::size_t v = 0; v < vocab; ++v) {
      if (s.probs[v] <= 0.0) continue;
      last = v;
      acc += s.probs[v];
      if (acc > threshold) return {static_cast<token_id>(v), scaled[v] - lse_t};
    }
    return {static_cast<token_id>(last), scaled[last] - lse_t};  // rounding left u * total unreached
  }
  top_ids(scaled, s.order, p.top_k);
  double total = 0.0;
  for (std::size_t i = 0; i < p.top_k; ++i)
    total += s.probs[i] = std::exp(scaled[static_cast<std::size_t>(s.order[i])] - lse_t);
  std::size_t keep = p.top_k;
  if (p.top_p < 1.0) {
    // The smallest prefix whose mass reaches top_p of the (renormalised) top-k mass.
    double acc = 0.0;
    for (std::size_t i = 0; i < p.top_k; ++i) {
      acc += s.probs[i];
      if (acc >= p.top_p * total) {
        keep = i + 1;
        break;
      }
    }
    total = 0.0;
    for (std::size_t i = 0; i < keep; ++i) total += s.probs[i];
  }
  const double threshold = u * total;
  double acc = 0.0;
  for (std::size_t i = 0; i < keep; ++i) {
    acc += s.probs[i];
    if (acc > threshold) {
      const auto v = static_cast<std::size_t>(s.order[i]);
      return {s.order[i], scaled[v] - lse_t};
    }
  }
  const auto v = static_cast<std::size_t>(s.order[keep - 1]);
  return {s.order[keep - 1], scaled[v] - lse_t};
}

/// prompt_logprobs / topk_prompt_logprobs of one plan.
inline void score_prompt(const forward_tables& t, const sampling_plan& p, forward_workspace& ws, sampling_scratch& s,
                         sample_response& out) {
  const auto n = p.prompt.size();
  const auto vocab = t.dims.v();
  const auto k = p.topk_prompt;
  if (p.prompt_logprobs) out.prompt_logprobs.emplace(n, std::numeric_limits<float>::quiet_NaN());
  if (k > 0) {
    topk_logprobs m;
    m.k = static_cast<std::uint32_t>(k);
    m.length = static_cast<std::uint32_t>(n);
    m.token_ids.assign(n * k, 0);
    m.logprobs.assign(n * k, topk_logprobs::sentinel_logprob);
    out.topk_prompt_logprobs = std::move(m);
  }
  token_id cur[forward_block_rows], prev[forward_block_rows];
  // Position j of the prompt is predicted from (prompt[j-1], prompt[j-2] or BOS).
  for (std::size_t start = 1; start < n; start += forward_block_rows) {
    const auto rows = std::min(forward_block_rows, n - start);
    for (std::size_t b = 0; b < rows; ++b) {
      const auto j = start + b;
      cur[b] = p.prompt[j - 1];
      prev[b] = j >= 2 ? p.prompt[j - 2] : byte_tokenizer::bos_token;
    }
    forward_block(t, cur, prev, rows, ws);
    for (std::size_t b = 0; b < rows; ++b) {
      const auto j = start + b;
      const double* z = &ws.z[b * vocab];
      if (p.prompt_logprobs)
        (*out.prompt_logprobs)[j] = static_cast<float>(z[static_cast<std::size_t>(p.prompt[j])] - ws.lse[b]);
      if (k > 0) {
        top_ids(z, s.order, k);
        auto& m = *out.topk_prompt_logprobs;
        for (std::size_t i = 0; i < k; ++i) {
          m.token_ids[j * k + i] = s.order[i];
          m.logprobs[j * k + i] = static_cast<float>(z[static_cast<std::size_t>(s.order[i])] - ws.lse[b]);
        }
      }
    }
  }
}

/// One sequence being generated.
struct live_sequence {
  std::size_t plan;
  sampled_sequence* out;
  xoshiro256ss rng;
  std::string text;  ///< generated bytes, for stop strings
  token_id cur, prev;
};

}  // namespace detail

/// Checks `request` as sample_batch would on a model of `spec` (num_samples, sampling params,
/// logprob options, the prompt and its length), without sampling: throws the same
/// tinker::invalid_argument naming the field and value. Lets a server refuse a request when it
/// arrives. Allocates only O(vocabulary + prompt length).
inline void check_sample_request(const tinker::sample_request& request, const base_model_spec& spec) {
  (void)detail::plan_job(sample_job{&request, 0}, spec);
}

/// Samples every job on `base` with `adapter` merged in (null: the base model itself). Returns one
/// response per job, in order. Throws tinker::invalid_argument (naming the field and value) if
/// any job is invalid; then nothing was sampled.
inline std::vector<sample_response> sample_batch(const base_model& base, const lora_weights* adapter,
                                                 std::span<const sample_job> jobs) {
  if (adapter && adapter->base_model_name() != base.name())
    throw tinker::invalid_argument("sample_batch: the adapter belongs to base model '" + adapter->base_model_name() +
                                   "', not '" + base.name() + "'");
  std::vector<detail::sampling_plan> plans;
  plans.reserve(jobs.size());
  for (const auto& job : jobs) plans.push_back(detail::plan_job(job, base.spec()));

  const auto& tables = adapter ? adapter->tables() : base.tables();
  const auto vocab = tables.dims.v();
  detail::forward_workspace ws(tables.dims);
  detail::sampling_scratch scratch(vocab);

  std::vector<sample_response> responses(plans.size());
  std::size_t total_sequences = 0;
  for (std::size_t j = 0; j < plans.size(); ++j) {
    const auto& p = plans[j];
    if (p.prompt_logprobs || p.topk_prompt > 0) detail::score_prompt(tables, p, ws, scratch, responses[j]);
    responses[j].sequences.resize(p.num_samples);
    total_sequences += p.num_samples;
  }

  std::vector<detail::live_sequence> live;
  live.reserve(total_sequences);
  for (std::size_t j = 0; j < plans.size(); ++j) {
    const auto& p = plans[j];
    const auto n = p.prompt.size();
    const auto reserve = std::min<std::size_t>(p.max_tokens, 1024);
    for (std::size_t i = 0; i < p.num_samples; ++i) {
      auto& out = responses[j].sequences[i];
      out.tokens.reserve(reserve);
      out.logprobs.emplace().reserve(reserve);
      detail::live_sequence s{j,
                              &out,
                              detail::xoshiro256ss(detail::derive_seed(p.seed, i)),
                              {},
                              p.prompt[n - 1],
                              n >= 2 ? p.prompt[n - 2] : byte_tokenizer::bos_token};
      if (!p.stop_strings.empty()) s.text.reserve(reserve);
      live.push_back(std::move(s));
    }
  }

  std::vector<std::size_t> active(live.size());
  for (std::size_t i = 0; i < active.size(); ++i) active[i] = i;
  std::vector<std::size_t> still;
  still.reserve(active.size());
  token_id cur[detail::forward_block_rows], prev[detail::forward_block_rows];
  while (!active.empty()) {
    still.clear();
    for (std::size_t start = 0; start < active.size(); start += detail::forward_block_rows) {
      const auto rows = std::min(detail::forward_block_rows, active.size() - start);
      for (std::size_t b = 0; b < rows; ++b) {
        const auto& s = live[active[start + b]];
        cur[b] = s.cur;
        prev[b] = s.prev;
      }
      detail::forward_block(tables, cur, prev, rows, ws);
      for (std::size_t b = 0; b < rows; ++b) {
        auto& s = live[active[start + b]];
        const auto& p = plans[s.plan];
        const auto choice = detail::pick_token(p, &ws.z[b * vocab], ws.lse[b], s.rng, scratch);
        s.out->tokens.push_back(choice.token);
        s.out->logprobs->push_back(static_cast<float>(choice.logprob));
        s.prev = s.cur;
        s.cur = choice.token;
        bool stop = p.stop_tokens[static_cast<std::size_t>(choice.token)];
        if (!stop && !p.stop_strings.empty() && choice.token < 256) {
          s.text.push_back(static_cast<char>(static_cast<unsigned char>(choice.token)));
          for (auto str : p.stop_strings)
            if (s.text.size() >= str.size() && std::string_view(s.text).substr(s.text.size() - str.size()) == str)
              stop = true;
        }
        if (stop)
          s.out->stop_reason = stop_reason::stop;
        else if (s.out->tokens.size() >= p.max_tokens)
          s.out->stop_reason = stop_reason::length;
        else
          still.push_back(active[start + b]);
      }
    }
    active.swap(still);
  }
  return responses;
}

}  // namespace tinker::local
