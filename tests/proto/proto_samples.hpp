// Protocol values shared by the protobuf codec tests: each exercises as many wire features as it can
// (every chunk kind, dense and CSR tensors, empty payloads, NaN / -0.0, negative ints, non-ASCII
// strings, map entries with empty keys and zero values, multi-record outputs, top-k sentinels).
#pragma once

#include <tinker/types.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace proto_samples {

using namespace tinker;

inline constexpr float nan_f = std::numeric_limits<float>::quiet_NaN();

inline forward_backward_request mixed_request() {
  forward_backward_request req;
  req.model_id = "model-\xc3\xa9-1";  // "model-é-1"
  req.seq_id = 42;
  auto& in = req.forward_backward_input;
  in.loss_fn = loss_fn_type::ppo;
  in.loss_fn_config = loss_fn_config{{"clip_high_threshold", 1.2}, {"clip_low_threshold", 0.8}, {"", 0.0}};

  datum d0;
  d0.model_input.append(encoded_text_chunk{{1, 2, -3, 2147483647}});
  d0.model_input.append(image_chunk{std::string("\x89PNG\0\x01", 6), image_format::png, 4});
  d0.model_input.append(encoded_text_chunk{});  // an empty chunk still marks its kind
  d0.model_input.append(dmel_chunk{std::string("\x01\x02\x00\x03", 4)});
  d0.model_input.append(image_chunk{"", image_format::jpeg, std::nullopt});
  d0.model_input.append(image_chunk{"J", image_format::jpeg, 0});  // optional set to its default: still sent
  d0.loss_fn_inputs["target_tokens"] = tensor_data{std::int64_t{5}, std::int64_t{-1}, std::int64_t{1} << 40};
  d0.loss_fn_inputs["weights"] = tensor_data(std::vector<float>{1.0f, 0.5f, -0.0f}, {3});
  d0.loss_fn_inputs["advantages"] = tensor_data(std::vector<float>{1, 2, 3, 4, 1e-30f, -INFINITY}, {2, 3});
  d0.loss_fn_inputs["mask"] = tensor_data::sparse_csr(std::vector<float>{0.25f, 7.0f}, 2, 3, {0, 1, 2}, {2, 0});
  d0.loss_fn_inputs["ids"] = tensor_data::sparse_csr(std::vector<std::int64_t>{9}, 3, 2, {0, 0, 1, 1}, {1});
  d0.loss_fn_inputs["empty"] = tensor_data(std::vector<float>{}, {0});
  d0.loss_fn_inputs["empty_sparse"] = tensor_data::sparse_csr(std::vector<float>{}, 0, 4, {0}, {});
  d0.loss_fn_inputs["\xe2\x88\x87"] = tensor_data{1.5f};  // "∇"
  in.data.push_back(std::move(d0));

  datum d1;
  std::vector<token_id> tokens(100);
  for (int i = 0; i < 100; ++i) tokens[static_cast<std::size_t>(i)] = i * 1000;
  d1.model_input = model_input::from_ints(tokens);
  d1.loss_fn_inputs["target_tokens"] = tensor_data::from_span(std::span<const token_id>(tokens));
  in.data.push_back(std::move(d1));

  in.data.push_back(datum{});  // no chunks, no inputs
  return req;
}

/// A forward_backward batch shaped like real training traffic: `datums` sequences of `tokens`
/// tokens, with int64 target_tokens and float32 weights.
inline forward_backward_request realistic_request(std::size_t datums, std::size_t tokens) {
  forward_backward_request req;
  req.model_id = "a7b3c9d1-0000-4000-8000-000000000001:train:0";
  req.seq_id = 7;
  req.forward_backward_input.loss_fn = loss_fn_type::cross_entropy;
  std::uint32_t state = 12345;
  auto next = [&] { return state = state * 1664525u + 1013904223u; };
  for (std::size_t d = 0; d < datums; ++d) {
    std::vector<token_id> ids(tokens);
    std::vector<std::int64_t> targets(tokens);
    std::vector<float> weights(tokens);
    for (std::size_t i = 0; i < tokens; ++i) {
      ids[i] = static_cast<token_id>(next() % 151936);
      targets[i] = static_cast<std::int64_t>(next() % 151936);
      weights[i] = i < tokens / 4 ? 0.0f : 1.0f;
    }
    datum x;
    x.model_input = model_input::from_ints(std::move(ids));
    x.loss_fn_inputs["target_tokens"] = tensor_data(std::move(targets));
    x.loss_fn_inputs["weights"] = tensor_data(std::move(weights));
    req.forward_backward_input.data.push_back(std::move(x));
  }
  return req;
}

/// Every datum has the same fields, dtypes and trailing shapes: one ArrayRecord.
inline forward_backward_output single_record_output() {
  forward_backward_output out;
  out.loss_fn_output_type = "TorchLossReturn";
  for (std::int64_t n : {3, 1, 4}) {
    loss_fn_output o;
    std::vector<float> lp, loss;
    std::vector<std::int64_t> top;
    for (std::int64_t i = 0; i < n; ++i) {
      lp.push_back(-0.5f * static_cast<float>(i + 1));
      loss.push_back(0.25f * static_cast<float>(i));
      top.push_back(100 + i);
      top.push_back(-(200 + i));
    }
    o["logprobs"] = tensor_data(std::move(lp), {n});
    o["elementwise_loss"] = tensor_data(std::move(loss), {n});
    o["top_ids"] = tensor_data(std::move(top), {n, 2});
    out.loss_fn_outputs.push_back(std::move(o));
  }
  out.metrics = {{"loss:sum", 1.5}, {"ntokens:sum", 8}, {"e_max:max", -0.25}, {"", 0.0}};
  return out;
}

/// Datums whose layouts differ, so the encoder needs records [0,2) [2,3) [3,4) [4,6) [6,7).
inline forward_backward_output multi_record_output() {
  forward_backward_output out;
  out.loss_fn_output_type = "ArrayRecord";
  auto logprobs = [](std::vector<float> v) {
    const auto n = static_cast<std::int64_t>(v.size());
    return tensor_data(std::move(v), {n});
  };
  out.loss_fn_outputs.push_back({{"logprobs", logprobs({-1.0f, -2.0f})}});
  out.loss_fn_outputs.push_back({{"logprobs", logprobs({})}});
  out.loss_fn_outputs.push_back(
      {{"logprobs", logprobs({-3.0f})}, {"extra", tensor_data(std::vector<std::int64_t>{4}, {1})}});
  out.loss_fn_outputs.push_back({{"logprobs", tensor_data(std::vector<std::int64_t>{1, 2}, {2})}});  // dtype differs
  out.loss_fn_outputs.push_back({});                                                                 // no fields
  out.loss_fn_outputs.push_back({});
  out.loss_fn_outputs.push_back({{"logprobs", tensor_data(std::vector<float>{1, 2, 3, 4, 5, 6}, {3, 2})}});  // 2-D
  out.metrics = {{"loss:mean", 0.125}};
  return out;
}

inline sample_response mixed_sample_response() {
  sample_response res;
  res.sequences.push_back({stop_reason::stop, {1, 2, 3}, std::vector<float>{-0.1f, -0.2f, -0.3f}, std::nullopt});
  res.sequences.push_back({stop_reason::length, {}, std::nullopt, std::nullopt});
  res.sequences.push_back({stop_reason::length, {-7, 151935}, std::nullopt, std::nullopt});
  res.prompt_logprobs = std::vector<float>{nan_f, -1.5f, -0.25f, nan_f};
  topk_logprobs topk;
  topk.k = 2;
  topk.length = 3;
  // Row 0: not computed (sentinel first); row 1: two entries; row 2: one entry + trailing sentinel.
  topk.token_ids = {0, 0, 5, 6, 7, 0};
  topk.logprobs = {-99999.0f, -99999.0f, -0.1f, -2.0f, -0.3f, -99999.0f};
  res.topk_prompt_logprobs = topk;
  res.prompt_cache_hit_tokens = 5;
  return res;
}

}  // namespace proto_samples
