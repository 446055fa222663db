// JSON form of the sampling types (protocol.md §7.7, §7.8, §9.1, §15.3).
#pragma once

#include <tinker/json/model_input.hpp>
#include <tinker/types/sampling.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

TINKER_JSON_TYPE_NAME(sampling_params)
TINKER_JSON_TYPE_NAME(sample_request)
TINKER_JSON_TYPE_NAME(sampled_sequence)
TINKER_JSON_TYPE_NAME(sample_response)

namespace tinker {

namespace json::detail {
/// Cells a JSON top-k matrix may pad beyond 4x the pairs and rows it carries (see sample_response).
inline constexpr std::uint64_t max_topk_padding_slack = std::uint64_t{1} << 20;
}  // namespace json::detail

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, stop_reason r) { jv = to_string(r); }

inline stop_reason tag_invoke(boost::json::value_to_tag<stop_reason>, const boost::json::value& jv) {
  return json::detail::read_enum<stop_reason>(jv, "stop reason", [](std::string_view s) -> std::optional<stop_reason> {
    if (s == "stop") return stop_reason::stop;
    if (s == "length") return stop_reason::length;
    return std::nullopt;
  });
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const sampling_params& p) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "max_tokens", p.max_tokens);
  json::detail::put(o, "seed", p.seed);
  if (p.stop) std::visit([&](const auto& s) { json::detail::put(o, "stop", s); }, *p.stop);
  json::detail::put(o, "temperature", p.temperature);
  json::detail::put(o, "top_k", p.top_k);
  json::detail::put(o, "top_p", p.top_p);
  jv = std::move(o);
}

inline sampling_params tag_invoke(boost::json::value_to_tag<sampling_params>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "sampling_params");
  sampling_params p;
  p.max_tokens = r.optional<std::int32_t>("max_tokens");
  if (const auto* seed = r.object().if_contains("seed"); seed && !seed->is_null()) {
    // Any 64-bit value, including negative ones from clients that use signed integers.
    if (seed->is_int64())
      p.seed = static_cast<std::uint64_t>(seed->get_int64());
    else
      p.seed = r.required<std::uint64_t>("seed");
  }
  if (const auto* stop = r.object().if_contains("stop"); stop && !stop->is_null()) {
    if (stop->is_string()) {
      p.stop = std::string(stop->get_string());
    } else if (stop->is_array() && !stop->get_array().empty() && !stop->get_array()[0].is_string()) {
      p.stop = r.required<std::vector<token_id>>("stop");
    } else if (stop->is_array()) {
      p.stop = r.required<std::vector<std::string>>("stop");
    } else {
      r.fail("stop", std::string("expected a string or an array, got ") + json::detail::kind_name(*stop));
    }
  }
  p.temperature = r.optional_or("temperature", p.temperature);
  p.top_k = r.optional_or("top_k", p.top_k);
  p.top_p = r.optional_or("top_p", p.top_p);
  return p;
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const sample_request& req) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "num_samples", req.num_samples);
  json::detail::put(o, "prompt", req.prompt);
  json::detail::put(o, "sampling_params", req.sampling_params);
  json::detail::put(o, "base_model", req.base_model);
  json::detail::put(o, "model_path", req.model_path);
  json::detail::put(o, "sampling_session_id", req.sampling_session_id);
  json::detail::put(o, "seq_id", req.seq_id);
  json::detail::put(o, "prompt_logprobs", req.prompt_logprobs);
  json::detail::put(o, "topk_prompt_logprobs", req.topk_prompt_logprobs);
  json::detail::put_type(o, "sample");
  jv = std::move(o);
}

/// Unknown keys (newer SDKs send topk_sample_logprobs, prompt_alt_tokens_k, record_stability_info)
/// are ignored, except that a non-default request for a feature we lack is refused.
inline sample_request tag_invoke(boost::json::value_to_tag<sample_request>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "sample_request");
  sample_request req;
  req.num_samples = r.optional_or<std::int32_t>("num_samples", 1);
  req.prompt = r.required<model_input>("prompt");
  req.sampling_params = r.required<sampling_params>("sampling_params");
  req.base_model = r.optional<std::string>("base_model");
  req.model_path = r.optional<std::string>("model_path");
  req.sampling_session_id = r.optional<std::string>("sampling_session_id");
  req.seq_id = r.optional<std::int64_t>("seq_id");
  req.prompt_logprobs = r.optional<bool>("prompt_logprobs");
  req.topk_prompt_logprobs = r.optional_or<std::int32_t>("topk_prompt_logprobs", 0);
  for (const char* unsupported : {"topk_sample_logprobs", "prompt_alt_tokens_k", "prompt_logprobs_last_n"})
    if (r.optional_or<std::int64_t>(unsupported, 0) != 0) r.fail(unsupported, "this server does not support it");
  if (r.has("target_prompt_logprobs") && !r.object().at("target_prompt_logprobs").is_null())
    r.fail("target_prompt_logprobs", "this server does not support it");
  return req;
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const sampled_sequence& s) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "stop_reason", s.stop_reason);
  json::detail::put(o, "tokens", s.tokens);
  json::detail::put(o, "logprobs", s.logprobs);
  json::detail::put(o, "sequence_id", s.sequence_id);
  jv = std::move(o);
}

inline sampled_sequence tag_invoke(boost::json::value_to_tag<sampled_sequence>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "sampled_sequence");
  return sampled_sequence{r.required<stop_reason>("stop_reason"), r.required<std::vector<token_id>>("tokens"),
                          r.optional<std::vector<float>>("logprobs"), r.optional<std::string>("sequence_id")};
}

/// Legacy JSON SampleResponse: prompt logprobs with null for "not computed", top-k rows as null or
/// [[token_id, logprob], ...].
inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const sample_response& resp) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "sequences", resp.sequences);
  json::detail::put_type(o, "sample");
  if (resp.prompt_logprobs) {
    boost::json::array a(jv.storage());
    a.reserve(resp.prompt_logprobs->size());
    for (float lp : *resp.prompt_logprobs) {
      if (std::isnan(lp))
        a.emplace_back(nullptr);
      else
        a.emplace_back(static_cast<double>(lp));
    }
    o.emplace("prompt_logprobs", std::move(a));
  }
  if (const auto& topk = resp.topk_prompt_logprobs) {
    boost::json::array rows(jv.storage());
    rows.reserve(topk->length);
    for (std::size_t i = 0; i < topk->length; ++i) {
      if (!topk->row_present(i)) {
        rows.emplace_back(nullptr);
        continue;
      }
      boost::json::array row(jv.storage());
      for (const auto& [id, lp] : topk->row(i)) row.emplace_back(boost::json::array{id, static_cast<double>(lp)});
      rows.emplace_back(std::move(row));
    }
    o.emplace("topk_prompt_logprobs", std::move(rows));
  }
  json::detail::put(o, "prompt_cache_hit_tokens", resp.prompt_cache_hit_tokens);
  jv = std::move(o);
}

inline sample_response tag_invoke(boost::json::value_to_tag<sample_response>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "sample_response");
  sample_response resp;
  resp.sequences = r.required<std::vector<sampled_sequence>>("sequences");
  if (auto lps = r.optional<std::vector<std::optional<float>>>("prompt_logprobs")) {
    std::vector<float> out(lps->size());
    std::transform(lps->begin(), lps->end(), out.begin(),
                   [](const std::optional<float>& lp) { return lp.value_or(std::numeric_limits<float>::quiet_NaN()); });
    resp.prompt_logprobs = std::move(out);
  }
  using row_t = std::optional<std::vector<std::pair<token_id, float>>>;
  if (r.has("topk_prompt_logprobs") && !r.object().at("topk_prompt_logprobs").is_null()) {
    const auto& rows = r.required_array("topk_prompt_logprobs");
    std::vector<row_t> parsed;
    parsed.reserve(rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const auto where = "topk_prompt_logprobs[" + std::to_string(i) + "]";
      if (rows[i].is_null()) {
        parsed.emplace_back();
        continue;
      }
      if (!rows[i].is_array()) r.fail(where, "expected null or an array of [token_id, logprob] pairs");
      std::vector<std::pair<token_id, float>> row;
      for (std::size_t j = 0; j < rows[i].get_array().size(); ++j) {
        const auto& pair = rows[i].get_array()[j];
        if (!pair.is_array() || pair.get_array().size() != 2)
          r.fail(where + "[" + std::to_string(j) + "]", "expected a [token_id, logprob] pair");
        try {
          row.emplace_back(json::detail::read_as<token_id>(pair.get_array()[0]),
                           json::detail::read_as<float>(pair.get_array()[1]));
        } catch (const protocol_error& e) {
          throw e.nested_in("sample_response", where + "[" + std::to_string(j) + "]");
        }
      }
      parsed.emplace_back(std::move(row));
    }
    topk_logprobs topk;
    topk.length = static_cast<std::uint32_t>(parsed.size());
    std::size_t pairs = 0;
    for (const auto& row : parsed)
      if (row) {
        topk.k = std::max<std::uint32_t>(topk.k, static_cast<std::uint32_t>(row->size()));
        pairs += row->size();
      }
    // The matrix is length x k cells, padded where rows are null or short. A few kilobytes of
    // nulls plus one long row would otherwise claim length * k cells (gigabytes); legitimate
    // answers pad little (the first position is null), so padding is bounded by what the message
    // spells out, with slack for small answers.
    const auto cells = std::uint64_t{topk.length} * topk.k;
    const auto allowed = 4 * (std::uint64_t{pairs} + topk.length) + json::detail::max_topk_padding_slack;
    if (cells > allowed)
      r.fail("topk_prompt_logprobs", std::to_string(topk.length) + " rows of up to " + std::to_string(topk.k) +
                                         " pairs make " + std::to_string(cells) + " cells for " +
                                         std::to_string(pairs) + " pairs given: too many null or short rows (at most " +
                                         std::to_string(allowed) + " cells)");
    topk.token_ids.assign(std::size_t(topk.length) * topk.k, 0);
    topk.logprobs.assign(std::size_t(topk.length) * topk.k, topk_logprobs::sentinel_logprob);
    for (std::size_t i = 0; i < parsed.size(); ++i)
      if (parsed[i])
        for (std::size_t j = 0; j < parsed[i]->size(); ++j) {
          topk.token_ids[i * topk.k + j] = (*parsed[i])[j].first;
          topk.logprobs[i * topk.k + j] = (*parsed[i])[j].second;
        }
    if (topk.k > 0 && topk.length > 0) resp.topk_prompt_logprobs = std::move(topk);
  }
  resp.prompt_cache_hit_tokens = r.optional_or<std::int32_t>("prompt_cache_hit_tokens", 0);
  return resp;
}

}  // namespace tinker
