// Protobuf codec for SampleResponse, the result of a sample (docs/protocol.md §9): the local engine
// encodes it, the client decodes it.
//
// Wire layout: SampledSequence{stop_reason enum, tokens int32 LE, optional logprobs float32 LE},
// optional prompt_logprobs float32 LE (NaN = not computed), optional TopkPromptLogprobs{token_ids
// int32 LE, logprobs float32 LE, k, prompt_length} (renamed TopkLogprobs/length later, same bytes),
// prompt_cache_hit_tokens. Newer fields (SampleResponse 5/6, SampledSequence 4; docs/protocol.md §9.2)
// are skipped on decode: tinker::sample_response does not carry them yet.
#pragma once

#include <tinker/error.hpp>
#include <tinker/proto/detail/reader.hpp>
#include <tinker/proto/detail/writer.hpp>
#include <tinker/types/sampling.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tinker::proto {

namespace detail {

inline constexpr std::string_view sample_response_type_name = "SampleResponse";

inline void check_encodable(const sample_response& res) {
  if (const auto& topk = res.topk_prompt_logprobs) {
    const auto cells = static_cast<std::uint64_t>(topk->k) * topk->length;
    if (topk->token_ids.size() != cells || topk->logprobs.size() != cells)
      throw tinker::invalid_argument("SampleResponse.topk_prompt_logprobs: token_ids has " +
                                     std::to_string(topk->token_ids.size()) + " and logprobs " +
                                     std::to_string(topk->logprobs.size()) +
                                     " entries, expected length * k = " + std::to_string(cells));
  }
}

template <class Out>
void write_sampled_sequence(Out& out, const sampled_sequence& seq) {
  if (seq.stop_reason != stop_reason::stop) out.int32_field(1, 1);  // STOP_REASON_LENGTH
  if (!seq.tokens.empty()) out.array_field(2, std::span<const token_id>(seq.tokens));
  if (seq.logprobs) out.array_field(3, std::span<const float>(*seq.logprobs));
}

template <class Out>
void write_sample_response(Out& out, const sample_response& res) {
  for (const auto& seq : res.sequences) out.message_field(1, [&](auto& o) { write_sampled_sequence(o, seq); });
  if (res.prompt_logprobs) out.array_field(2, std::span<const float>(*res.prompt_logprobs));
  if (const auto& topk = res.topk_prompt_logprobs)
    out.message_field(3, [&](auto& o) {
      if (!topk->token_ids.empty()) o.array_field(1, std::span<const token_id>(topk->token_ids));
      if (!topk->logprobs.empty()) o.array_field(2, std::span<const float>(topk->logprobs));
      if (topk->k != 0) o.uint32_field(3, topk->k);
      if (topk->length != 0) o.uint32_field(4, topk->length);
    });
  if (res.prompt_cache_hit_tokens != 0) out.int32_field(4, res.prompt_cache_hit_tokens);
}

inline sampled_sequence read_sampled_sequence(reader r) {
  sampled_sequence seq;
  std::int32_t raw_stop_reason = 0;
  std::string_view tokens, logprobs;
  while (!r.at_end()) {
    const auto tag = r.read_tag();
    switch (tag.number) {
      case 1: raw_stop_reason = read_int32_field(r, tag, "stop_reason"); break;
      case 2: tokens = read_bytes_field(r, tag, "tokens"); break;
      case 3: logprobs = read_bytes_field(r, tag, "logprobs"); break;
      default: r.skip(tag);  // 4: topk_sampled_logprobs (newer servers)
    }
  }
  switch (raw_stop_reason) {
    case 0: seq.stop_reason = stop_reason::stop; break;
    case 1: seq.stop_reason = stop_reason::length; break;
    default: fail("stop_reason", "unknown StopReason value " + std::to_string(raw_stop_reason));
  }
  seq.tokens = read_le_array<token_id>(tokens, "tokens", "int32 token ids");
  if (!logprobs.empty()) seq.logprobs = read_le_array<float>(logprobs, "logprobs", "float32 logprobs");
  return seq;
}

struct topk_views {
  std::string_view token_ids, logprobs;
  std::uint32_t k = 0, length = 0;
};

/// Merges a TopkPromptLogprobs message into `out` (scalars: last wins).
inline void read_topk(reader r, topk_views& out) {
  while (!r.at_end()) {
    const auto tag = r.read_tag();
    switch (tag.number) {
      case 1: out.token_ids = read_bytes_field(r, tag, "token_ids"); break;
      case 2: out.logprobs = read_bytes_field(r, tag, "logprobs"); break;
      case 3: out.k = read_uint32_field(r, tag, "k"); break;
      case 4: out.length = read_uint32_field(r, tag, "prompt_length"); break;
      default: r.skip(tag);
    }
  }
}

inline sample_response read_sample_response(reader r) {
  sample_response res;
  std::string_view prompt_logprobs;
  std::optional<topk_views> topk;
  while (!r.at_end()) {
    const auto tag = r.read_tag();
    switch (tag.number) {
      case 1: {
        const auto bytes = read_message_field(r, tag, "sequences");
        const auto index = res.sequences.size();
        res.sequences.push_back(
            within(indexed("sequences", index), [&] { return read_sampled_sequence(r.sub(bytes)); }));
        break;
      }
      case 2: prompt_logprobs = read_bytes_field(r, tag, "prompt_logprobs"); break;
      case 3: {
        const auto bytes = read_message_field(r, tag, "topk_prompt_logprobs");
        if (!topk) topk.emplace();
        within("topk_prompt_logprobs", [&] { read_topk(r.sub(bytes), *topk); });
        break;
      }
      case 4: res.prompt_cache_hit_tokens = read_int32_field(r, tag, "prompt_cache_hit_tokens"); break;
      default: r.skip(tag);  // 5: target_prompt_logprobs, 6: prompt_alt_tokens (newer servers)
    }
  }
  // Empty means "not requested", as for the sequences' logprobs. NaN entries stay NaN.
  if (!prompt_logprobs.empty())
    res.prompt_logprobs = read_le_array<float>(prompt_logprobs, "prompt_logprobs", "float32 logprobs");
  // k == 0 or prompt_length == 0 means "not requested" (the SDK treats the field as absent then).
  if (topk && topk->k != 0 && topk->length != 0) {
    const auto cells = static_cast<std::uint64_t>(topk->k) * topk->length;
    auto check_size = [&](std::string_view bytes, const char* field) {
      if (bytes.size() / 4 != cells || bytes.size() % 4 != 0)
        fail(field, "has " + std::to_string(bytes.size()) +
                        " bytes, expected prompt_length * k * 4 = " + std::to_string(cells * 4) + " (prompt_length " +
                        std::to_string(topk->length) + ", k " + std::to_string(topk->k) + ")");
    };
    check_size(topk->token_ids, "topk_prompt_logprobs.token_ids");
    check_size(topk->logprobs, "topk_prompt_logprobs.logprobs");
    topk_logprobs out;
    out.k = topk->k;
    out.length = topk->length;
    out.token_ids = read_le_array<token_id>(topk->token_ids, "topk_prompt_logprobs.token_ids", "int32 token ids");
    out.logprobs = read_le_array<float>(topk->logprobs, "topk_prompt_logprobs.logprobs", "float32 logprobs");
    res.topk_prompt_logprobs = std::move(out);
  }
  return res;
}

}  // namespace detail

/// Exact size of encode(res). Throws tinker::invalid_argument if the top-k matrices do not hold
/// length * k entries.
inline std::size_t encoded_size(const sample_response& res) {
  detail::check_encodable(res);
  detail::size_counter counter;
  detail::write_sample_response(counter, res);
  return counter.size();
}

/// Appends the SampleResponse encoding of `res` to `out`. Optional fields are written when set
/// (logprobs, prompt_logprobs, top-k); sampled_sequence::sequence_id is not part of the message.
inline void encode_to(std::string& out, const sample_response& res) {
  detail::check_encodable(res);
  detail::append_message(out, [&](auto& sink) { detail::write_sample_response(sink, res); });
}

inline std::string encode(const sample_response& res) {
  std::string out;
  encode_to(out, res);
  return out;
}

/// Decodes a SampleResponse. Empty logprobs / prompt_logprobs mean absent; top-k with k or
/// prompt_length 0 means absent; an unknown stop_reason or mis-sized array throws protocol_error.
inline sample_response decode_sample_response(std::string_view bytes) {
  return detail::decode_top_level(detail::sample_response_type_name,
                                  [&] { return detail::read_sample_response(detail::reader(bytes)); });
}

}  // namespace tinker::proto
