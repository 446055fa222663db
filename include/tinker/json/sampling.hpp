// JSON form of the sampling types.
#pragma once

#include <tinker/json/model_input.hpp>
#include <tinker/types/sampling.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

TINKER_JSON_TYPE_NAME(sample_response)

namespace tinker {

TINKER_JSON_ENUM(stop_reason, "stop reason", stop, length)
TINKER_JSON_STRUCT(sampling_params, (max_tokens, seed, stop, temperature, top_k, top_p),
                   .defaulted = "temperature, top_k, top_p")
TINKER_JSON_STRUCT(sample_request,
                   (num_samples, prompt, sampling_params, base_model, model_path, sampling_session_id, seq_id,
                    prompt_logprobs, topk_prompt_logprobs),
                   .tag = "sample", .defaulted = "num_samples, topk_prompt_logprobs")
TINKER_JSON_STRUCT(sampled_sequence, (stop_reason, tokens, logprobs, sequence_id))

/// The seed may be any 64-bit value, negative ones included (from clients with signed integers);
/// stop is a string, an array of strings or an array of token ids.
inline sampling_params tag_invoke(boost::json::value_to_tag<sampling_params>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "sampling_params");
  sampling_params p;
  p.max_tokens = r.optional<std::int32_t>("max_tokens");
  if (const auto* seed = r.object().if_contains("seed"); seed && seed->is_int64())
    p.seed = static_cast<std::uint64_t>(seed->get_int64());
  else
    p.seed = r.optional<std::uint64_t>("seed");
  if (const auto* stop = r.object().if_contains("stop"); stop && stop->is_string())
    p.stop = std::string(stop->get_string());
  else if (stop && stop->is_array() && !stop->get_array().empty() && !stop->get_array()[0].is_string())
    p.stop = r.required<std::vector<token_id>>("stop");
  else if (stop && stop->is_array())
    p.stop = r.required<std::vector<std::string>>("stop");
  else if (stop && !stop->is_null())
    r.fail("stop", std::string("expected a string or an array, got ") + json::detail::kind_name(*stop));
  p.temperature = r.optional_or("temperature", p.temperature);
  p.top_k = r.optional_or("top_k", p.top_k);
  p.top_p = r.optional_or("top_p", p.top_p);
  return p;
}

/// Unknown keys (newer SDKs send topk_sample_logprobs, prompt_alt_tokens_k, record_stability_info)
/// are ignored, except that a non-default request for a feature we lack is refused.
inline sample_request tag_invoke(boost::json::value_to_tag<sample_request>, const boost::json::value& jv) {
  auto req = json::detail::read_object<sample_request>(jv);
  json::detail::object_reader r(jv, "sample_request");
  for (const char* unsupported : {"topk_sample_logprobs", "prompt_alt_tokens_k", "prompt_logprobs_last_n"})
    if (r.optional_or<std::int64_t>(unsupported, 0) != 0) r.fail(unsupported, "this server does not support it");
  if (r.has("target_prompt_logprobs") && !r.object().at("target_prompt_logprobs").is_null())
    r.fail("target_prompt_logprobs", "this server does not support it");
  return req;
}

/// Legacy JSON SampleResponse: prompt logprobs with null for "not computed", top-k rows as null or
/// [[token_id, logprob], ...] (Boost.JSON writes an empty optional as null, a pair as an array).
inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const sample_response& resp) {
  auto& o = jv.emplace_object();
  json::detail::put(o, "sequences", resp.sequences);
  json::detail::put_type(o, "sample");
  if (resp.prompt_logprobs) {
    std::vector<std::optional<float>> lps;
    for (float lp : *resp.prompt_logprobs) lps.push_back(std::isnan(lp) ? std::nullopt : std::optional(lp));
    o.emplace("prompt_logprobs", boost::json::value_from(lps, o.storage()));
  }
  if (const auto& topk = resp.topk_prompt_logprobs) {
    std::vector<std::optional<std::vector<std::pair<token_id, float>>>> rows;
    for (std::size_t i = 0; i < topk->length; ++i)
      rows.push_back(topk->row_present(i) ? std::optional(topk->row(i)) : std::nullopt);
    o.emplace("topk_prompt_logprobs", boost::json::value_from(rows, o.storage()));
  }
  json::detail::put(o, "prompt_cache_hit_tokens", resp.prompt_cache_hit_tokens);
}

namespace json::detail {

/// Cells a JSON top-k matrix may pad beyond 4x the pairs and rows it carries (see read_topk).
inline constexpr std::uint64_t max_topk_padding_slack = std::uint64_t{1} << 20;

/// The top-k rows, each null (not computed) or [[token_id, logprob], ...], as the length x k matrix
/// (padded with the sentinel where rows are null or short); nullopt when it holds nothing.
inline std::optional<topk_logprobs> read_topk(const object_reader& r) {
  const auto& rows = r.required_array("topk_prompt_logprobs");
  auto where = [](std::size_t i) { return "topk_prompt_logprobs[" + std::to_string(i) + "]"; };
  topk_logprobs topk;
  topk.length = static_cast<std::uint32_t>(rows.size());
  std::uint64_t pairs = 0;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].is_null()) continue;
    if (!rows[i].is_array()) r.fail(where(i), "expected null or an array of [token_id, logprob] pairs");
    topk.k = std::max(topk.k, static_cast<std::uint32_t>(rows[i].get_array().size()));
    pairs += rows[i].get_array().size();
  }
  // A few kilobytes of nulls plus one long row would otherwise claim length * k cells (gigabytes);
  // legitimate answers pad little (the first position is null), so padding is bounded by what the
  // message spells out, with slack for small answers.
  const auto cells = std::uint64_t{topk.length} * topk.k;
  const auto allowed = 4 * (pairs + topk.length) + max_topk_padding_slack;
  if (cells > allowed)
    r.fail("topk_prompt_logprobs", std::to_string(topk.length) + " rows of up to " + std::to_string(topk.k) +
                                       " pairs make " + std::to_string(cells) + " cells for " + std::to_string(pairs) +
                                       " pairs given: too many null or short rows (at most " + std::to_string(allowed) +
                                       " cells)");
  if (cells == 0) return std::nullopt;
  topk.token_ids.assign(cells, 0);
  topk.logprobs.assign(cells, topk_logprobs::sentinel_logprob);
  for (std::size_t i = 0; i < rows.size(); ++i)
    for (std::size_t j = 0; rows[i].is_array() && j < rows[i].get_array().size(); ++j) {
      const auto& pair = rows[i].get_array()[j];
      if (!pair.is_array() || pair.get_array().size() != 2)
        r.fail(where(i) + "[" + std::to_string(j) + "]", "expected a [token_id, logprob] pair");
      try {
        topk.token_ids[i * topk.k + j] = read_as<token_id>(pair.get_array()[0]);
        topk.logprobs[i * topk.k + j] = read_as<float>(pair.get_array()[1]);
      } catch (const protocol_error& e) {
        throw e.nested_in("sample_response", where(i) + "[" + std::to_string(j) + "]");
      }
    }
  return topk;
}

}  // namespace json::detail

inline sample_response tag_invoke(boost::json::value_to_tag<sample_response>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "sample_response");
  sample_response resp;
  resp.sequences = r.required<std::vector<sampled_sequence>>("sequences");
  if (auto lps = r.optional<std::vector<std::optional<float>>>("prompt_logprobs"))
    for (auto& out = resp.prompt_logprobs.emplace(); const auto& lp : *lps)
      out.push_back(lp.value_or(std::numeric_limits<float>::quiet_NaN()));
  if (const auto* topk = r.object().if_contains("topk_prompt_logprobs"); topk && !topk->is_null())
    resp.topk_prompt_logprobs = json::detail::read_topk(r);
  resp.prompt_cache_hit_tokens = r.optional_or<std::int32_t>("prompt_cache_hit_tokens", 0);
  return resp;
}

}  // namespace tinker
