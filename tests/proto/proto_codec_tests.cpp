// The hand-written protobuf codec: round trips of every message, byte fixtures written out by hand,
// protobuf's decoding leniencies (unknown fields, packed/unpacked, last-wins, oneof), the SDK's
// decoding rules (widening, num_datums, sentinels), and malformed input: every truncation of valid
// messages, wrong wire types, bad varints and lengths, bad offsets, and a seeded mutation loop.
// (The cross-check against python3-protobuf is in proto_python_tests.cpp.)
#include "proto_samples.hpp"

#include <tinker/proto/proto.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <random>
#include <string>
#include <string_view>

using namespace tinker;
namespace pd = tinker::proto::detail;
using proto_samples::nan_f;

namespace {

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}

std::string hex(std::string_view s) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += digits[c >> 4];
    out += digits[c & 15];
    out += ' ';
  }
  return out;
}

/// A message built with the codec's own writer (for decoder tests whose point is not the bytes).
template <class Describe>
std::string message(Describe&& describe) {
  std::string out;
  pd::append_message(out, describe);
  return out;
}

/// The same bytes as message(), described as a length-delimited field body.
std::string length_delimited(std::uint32_t field, std::string_view payload) {
  return message([&](auto& o) { o.bytes_field(field, payload); });
}

template <class F>
protocol_error decode_error(F&& decode) {
  try {
    decode();
  } catch (const protocol_error& e) {
    return e;
  }
  FAIL("decoding did not throw protocol_error");
  return protocol_error("", "", "");
}

protocol_error request_error(std::string_view b) {
  return decode_error([&] { (void)proto::decode_forward_backward_request(b); });
}
protocol_error output_error(std::string_view b) {
  return decode_error([&] { (void)proto::decode_forward_backward_output(b); });
}
protocol_error sample_error(std::string_view b) {
  return decode_error([&] { (void)proto::decode_sample_response(b); });
}

bool bits_equal(float a, float b) { return std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b); }

/// Offsets just past each top-level field of a valid message (and 0): cutting a message there
/// leaves a shorter but well-formed message, cutting it anywhere else must be an error.
std::vector<std::size_t> top_level_field_ends(std::string_view m) {
  std::vector<std::size_t> ends{0};
  std::size_t i = 0;
  auto varint = [&] {
    std::uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      const auto b = static_cast<unsigned char>(m.at(i++));
      v |= std::uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
  };
  while (i < m.size()) {
    switch (varint() & 7) {
      case 0: varint(); break;
      case 1: i += 8; break;
      case 2: i += varint(); break;
      case 5: i += 4; break;
      default: FAIL("unexpected wire type in a valid message");
    }
    ends.push_back(i);
  }
  return ends;
}

/// Decodes every proper prefix of `m`: each must throw protocol_error unless it ends at a
/// top-level field boundary (then it may decode or throw protocol_error). Nothing else may escape.
template <class Decode>
void check_every_truncation(const std::string& m, Decode decode) {
  const auto ends = top_level_field_ends(m);
  std::size_t threw = 0, decoded = 0;
  for (std::size_t n = 0; n < m.size(); ++n) {
    const std::string prefix =
        m.substr(0, n);  // a copy: a decoder reading past n would touch freed/unowned memory under ASan
    bool ok = false;
    try {
      decode(std::string_view(prefix));
      ok = true;
    } catch (const protocol_error&) {
      ++threw;
    } catch (const std::exception& e) {
      FAIL("prefix of " << n << " bytes threw a non-protocol error: " << e.what());
    }
    if (ok) {
      ++decoded;
      const bool at_boundary = std::find(ends.begin(), ends.end(), n) != ends.end();
      CHECK_MESSAGE(at_boundary, "a prefix of " << n << " bytes (inside a field) decoded without error");
    }
  }
  CHECK(threw + decoded == m.size());
  CHECK(threw >= m.size() + 1 - ends.size());  // every position that is not a field boundary
}

}  // namespace

TEST_SUITE("proto") {
  // --- round trips ------------------------------------------------------------------------------------------------

  TEST_CASE("ForwardBackwardRequest round trip: every chunk kind, dense and sparse tensors, config") {
    const auto req = proto_samples::mixed_request();
    const auto encoded = proto::encode(req);
    CHECK(encoded.size() == proto::encoded_size(req));
    const auto back = proto::decode_forward_backward_request(encoded);
    CHECK(back == req);
    CHECK(proto::encode(back) == encoded);

    SUBCASE("forward_only, negative seq_id, no config") {
      auto r = req;
      r.forward_only = true;
      r.seq_id = -5;
      r.forward_backward_input.loss_fn_config.reset();
      for (auto l :
           {loss_fn_type::cross_entropy, loss_fn_type::importance_sampling, loss_fn_type::cispo, loss_fn_type::dro}) {
        r.forward_backward_input.loss_fn = l;
        CHECK(proto::decode_forward_backward_request(proto::encode(r)) == r);
      }
    }
    SUBCASE("an empty config map is sent as no entries and reads back as absent") {
      auto r = req;
      r.forward_backward_input.loss_fn_config = loss_fn_config{};
      const auto b = proto::decode_forward_backward_request(proto::encode(r));
      CHECK_FALSE(b.forward_backward_input.loss_fn_config.has_value());
    }
    SUBCASE("NaN values survive bit for bit") {
      auto r = req;
      r.forward_backward_input.data[1].loss_fn_inputs["weights"] = tensor_data{nan_f, -nan_f, 1.0f};
      const auto b = proto::decode_forward_backward_request(proto::encode(r));
      const auto w = b.forward_backward_input.data[1].loss_fn_inputs.at("weights").floats();
      REQUIRE(w.size() == 3);
      CHECK(bits_equal(w[0], nan_f));
      CHECK(bits_equal(w[1], -nan_f));
      CHECK(w[2] == 1.0f);
    }
  }

  TEST_CASE("encode_to appends, encoded_size is exact") {
    const auto req = proto_samples::realistic_request(3, 50);
    std::string buffer = "prefix";
    proto::encode_to(buffer, req);
    CHECK(buffer.size() == 6 + proto::encoded_size(req));
    CHECK(buffer.substr(0, 6) == "prefix");
    CHECK(buffer.substr(6) == proto::encode(req));

    const auto out = proto_samples::single_record_output();
    const auto res = proto_samples::mixed_sample_response();
    CHECK(proto::encode(out).size() == proto::encoded_size(out));
    CHECK(proto::encode(res).size() == proto::encoded_size(res));
  }

  TEST_CASE("ForwardBackwardOutput round trip: one record when datums agree") {
    const auto out = proto_samples::single_record_output();
    const auto encoded = proto::encode(out);
    CHECK(proto::decode_forward_backward_output(encoded) == out);
    // Exactly one ArrayRecord (field 2) on the wire.
    const auto ends = top_level_field_ends(encoded);
    std::size_t records = 0;
    for (std::size_t i = 0; i + 1 < ends.size(); ++i) records += encoded[ends[i]] == 0x12;
    CHECK(records == 1);
  }

  TEST_CASE("ForwardBackwardOutput round trip: records split where fields, dtypes or trailing shapes change") {
    const auto out = proto_samples::multi_record_output();
    const auto encoded = proto::encode(out);
    CHECK(proto::decode_forward_backward_output(encoded) == out);
    const auto ends = top_level_field_ends(encoded);
    std::size_t records = 0;
    for (std::size_t i = 0; i + 1 < ends.size(); ++i) records += encoded[ends[i]] == 0x12;
    CHECK(records == 5);  // [0,2) [2,3) [3,4) [4,6) [6,7)
  }

  TEST_CASE("ForwardBackwardOutput: an empty record with no type name decodes as what it re-encodes to (fuzz)") {
    // Found by fuzz/fuzz_proto: an empty loss_fn_outputs record and an empty type name decoded as
    // type "", but our encoding of that (no record for zero datums) decoded as "ArrayRecord".
    const std::string wire("\x12\x00\x0a\x00", 4);  // loss_fn_outputs[0] = {}, loss_fn_output_type = ""
    const auto out = proto::decode_forward_backward_output(wire);
    CHECK(out.loss_fn_output_type == "ArrayRecord");
    CHECK(out.loss_fn_outputs.empty());
    CHECK(proto::decode_forward_backward_output(proto::encode(out)) == out);
  }

  TEST_CASE("ForwardBackwardOutput: shapes are always explicit after decoding, sparse outputs are expanded") {
    forward_backward_output out;
    out.loss_fn_outputs.push_back({{"a", tensor_data{1.0f, 2.0f}}});  // no shape: 1-D
    out.loss_fn_outputs.push_back({{"a", tensor_data::sparse_csr(std::vector<float>{5}, 2, 2, {0, 0, 1}, {1})}});
    const auto back = proto::decode_forward_backward_output(proto::encode(out));
    REQUIRE(back.loss_fn_outputs.size() == 2);
    CHECK(back.loss_fn_outputs[0].at("a") == tensor_data(std::vector<float>{1, 2}, {2}));
    CHECK(back.loss_fn_outputs[1].at("a") == tensor_data(std::vector<float>{0, 0, 0, 5}, {2, 2}));
    CHECK(back.loss_fn_output_type.empty());  // records present: the (empty) name is kept

    forward_backward_output none;
    CHECK(proto::encode(none).empty());
    CHECK(proto::decode_forward_backward_output("").loss_fn_output_type == "ArrayRecord");
    // Found by fuzz_proto: an empty record (field 2, length 0) and no type describe no datums, as
    // no record at all does, and must decode the same: decode(encode(decode(x))) == decode(x).
    const auto empty_record = proto::decode_forward_backward_output(std::string_view("\x12\x00", 2));
    CHECK(empty_record.loss_fn_output_type == "ArrayRecord");
    CHECK(empty_record.loss_fn_outputs.empty());
    CHECK(proto::decode_forward_backward_output(proto::encode(empty_record)) == empty_record);
  }

  TEST_CASE("SampleResponse round trip: NaN prompt logprobs, top-k sentinels, absent logprobs") {
    const auto res = proto_samples::mixed_sample_response();
    const auto encoded = proto::encode(res);
    const auto back = proto::decode_sample_response(encoded);
    CHECK(back == res);
    REQUIRE(back.prompt_logprobs);
    CHECK(std::isnan((*back.prompt_logprobs)[0]));
    CHECK(std::isnan((*back.prompt_logprobs)[3]));
    REQUIRE(back.topk_prompt_logprobs);
    const auto& topk = *back.topk_prompt_logprobs;
    CHECK_FALSE(topk.row_present(0));
    CHECK(topk.row(1) == std::vector<std::pair<token_id, float>>{{5, -0.1f}, {6, -2.0f}});
    CHECK(topk.row(2) == std::vector<std::pair<token_id, float>>{{7, -0.3f}});
    CHECK_FALSE(back.sequences[1].logprobs.has_value());
    CHECK(proto::encode(back) == encoded);

    SUBCASE("empty response") {
      sample_response empty;
      CHECK(proto::encode(empty).empty());
      CHECK(proto::decode_sample_response("") == empty);
    }
    SUBCASE("empty logprobs and prompt_logprobs read back as absent (as the SDK reads them)") {
      sample_response r;
      r.sequences.push_back({stop_reason::stop, {1}, std::vector<float>{}, std::nullopt});
      r.prompt_logprobs = std::vector<float>{};
      const auto b = proto::decode_sample_response(proto::encode(r));
      CHECK_FALSE(b.sequences.at(0).logprobs.has_value());
      CHECK_FALSE(b.prompt_logprobs.has_value());
    }
    SUBCASE("top-k with k == 0 or length == 0 reads back as absent") {
      sample_response r;
      r.topk_prompt_logprobs = topk_logprobs{};
      CHECK_FALSE(proto::decode_sample_response(proto::encode(r)).topk_prompt_logprobs.has_value());
      r.topk_prompt_logprobs->k = 3;
      CHECK_FALSE(proto::decode_sample_response(proto::encode(r)).topk_prompt_logprobs.has_value());
    }
  }

  // --- hand-computed byte fixtures ---------------------------------------------------------------------------

  TEST_CASE("byte fixture: SampleResponse") {
    sample_response res;
    res.sequences.push_back({stop_reason::length, {1, 300}, std::vector<float>{-0.5f}, std::nullopt});
    res.prompt_cache_hit_tokens = 7;
    const auto expected = bytes({
        0x0a, 0x12,                                                  // field 1 (sequences), length-delimited, 18 bytes
        0x08, 0x01,                                                  //   stop_reason = STOP_REASON_LENGTH (1)
        0x12, 0x08, 0x01, 0x00, 0x00, 0x00, 0x2c, 0x01, 0x00, 0x00,  //   tokens: int32 LE 1, 300 (0x12c)
        0x1a, 0x04, 0x00, 0x00, 0x00, 0xbf,                          //   logprobs: float32 LE -0.5 (0xbf000000)
        0x20, 0x07,                                                  // field 4 (prompt_cache_hit_tokens) = 7
    });
    CHECK(hex(proto::encode(res)) == hex(expected));
    CHECK(proto::decode_sample_response(expected) == res);

    // STOP_REASON_STOP is the proto3 default: not written.
    res.sequences[0].stop_reason = stop_reason::stop;
    res.sequences[0].logprobs.reset();
    res.prompt_cache_hit_tokens = 0;
    CHECK(hex(proto::encode(res)) == hex(bytes({0x0a, 0x0a, 0x12, 0x08, 0x01, 0, 0, 0, 0x2c, 0x01, 0, 0})));

    // Top-k: prompt_length 1, k 1; prompt_logprobs [NaN] (0x7fc00000).
    sample_response t;
    t.prompt_logprobs = std::vector<float>{nan_f};
    t.topk_prompt_logprobs = topk_logprobs{1, 1, {9}, {-1.0f}};
    CHECK(hex(proto::encode(t)) == hex(bytes({
                                       0x12, 0x04, 0x00, 0x00, 0xc0, 0x7f,  // field 2 (prompt_logprobs): float32 NaN
                                       0x1a, 0x10,                          // field 3 (topk_prompt_logprobs), 16 bytes
                                       0x0a, 0x04, 0x09, 0x00, 0x00, 0x00,  //   token_ids: int32 9
                                       0x12, 0x04, 0x00, 0x00, 0x80, 0xbf,  //   logprobs: float32 -1.0
                                       0x18, 0x01,                          //   k = 1
                                       0x20, 0x01,                          //   prompt_length = 1
                                   })));
  }

  TEST_CASE("byte fixture: ForwardBackwardRequest") {
    forward_backward_request req;
    req.model_id = "m";
    req.seq_id = 1;
    req.forward_only = true;
    req.forward_backward_input.loss_fn = loss_fn_type::cross_entropy;
    req.forward_backward_input.loss_fn_config = loss_fn_config{{"a", 0.5}};
    datum d;
    d.model_input = model_input::from_ints(std::vector<token_id>{5});
    d.loss_fn_inputs["w"] = tensor_data{1.0f};
    req.forward_backward_input.data.push_back(d);

    std::string expected = bytes({
        0x0a, 0x01, 'm',                  // field 1 (model_id) = "m"
        0x10, 0x01,                       // field 2 (seq_id) = 1
        0x1a, 0x19,                       // field 3 (data[0]): Datum, 25 bytes
        0x0a, 0x08,                       //   field 1 (model_input[0]): Chunk, 8 bytes
        0x0a, 0x06,                       //     field 1 (encoded_text): EncodedTextChunk, 6 bytes
        0x0a, 0x04, 0x05, 0, 0,    0,     //       field 1 (tokens): int32 LE [5]
        0x12, 0x0d,                       //   field 2 (loss_fn_inputs entry), 13 bytes
        0x0a, 0x01, 'w',                  //     key = "w"
        0x12, 0x08,                       //     value: Tensor, 8 bytes
        0x0a, 0x04, 0,    0, 0x80, 0x3f,  //       field 1 (dense): float32 LE [1.0]
        0x18, 0x01,                       //       field 3 (dtype) = DTYPE_FLOAT32
        0x22, 0x0d,                       // field 4 (loss_fn), 13 bytes:
    });
    expected += "cross_entropy";
    expected += bytes({
        0x2a, 0x0c,                          // field 5 (loss_fn_config entry), 12 bytes
        0x0a, 0x01, 'a',                     //   key = "a"
        0x11, 0, 0, 0, 0, 0, 0, 0xe0, 0x3f,  //   value (fixed64) = 0.5
        0x30, 0x01,                          // field 6 (forward_only) = true
    });
    CHECK(hex(proto::encode(req)) == hex(expected));
    CHECK(proto::decode_forward_backward_request(expected) == req);

    // int64 dense with a shape, then a sparse int64 tensor: Tensor bodies alone.
    auto tensor_bytes = [](const tensor_data& t) { return message([&](auto& o) { pd::write_tensor(o, t); }); };
    CHECK(hex(tensor_bytes(tensor_data(std::vector<std::int64_t>{-1, 300}, {2, 1}))) ==
          hex(bytes({
              0x0a, 0x10,                                      // dense, 16 bytes
              0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,  //   int64 LE -1
              0x2c, 0x01, 0,    0,    0,    0,    0,    0,     //   int64 LE 300
              0x18, 0x02,                                      // dtype = DTYPE_INT64
              0x22, 0x02, 0x02, 0x01,                          // shape: packed varints [2, 1]
          })));
    CHECK(hex(tensor_bytes(tensor_data::sparse_csr(std::vector<float>{2.0f}, 1, 3, {0, 1}, {2}))) ==
          hex(bytes({
              0x12, 0x22,                                                           // sparse_csr, 34 bytes
              0x0a, 0x04, 0,    0,    0, 0x40,                                      //   values: float32 [2.0]
              0x12, 0x10, 0,    0,    0, 0,    0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,  //   crow_indices: int64 [0, 1]
              0x1a, 0x08, 2,    0,    0, 0,    0, 0, 0, 0,                          //   col_indices: int64 [2]
              0x18, 0x01,                                                           // dtype = DTYPE_FLOAT32
              0x22, 0x02, 0x01, 0x03,                                               // shape [1, 3]
          })));

    // Image chunk (data, format, expected_tokens) and dmel chunk, as Chunk bodies.
    auto chunk_bytes = [](const model_input_chunk& c) { return message([&](auto& o) { pd::write_chunk(o, c); }); };
    CHECK(hex(chunk_bytes(image_chunk{"PX", image_format::jpeg, 3})) ==
          hex(bytes({0x12, 0x0c,                      // image, 12 bytes
                     0x0a, 0x02, 'P', 'X',            //   data
                     0x12, 0x04, 'j', 'p', 'e', 'g',  //   format
                     0x18, 0x03})));                  //   expected_tokens = 3
    CHECK(hex(chunk_bytes(dmel_chunk{"\x07"})) == hex(bytes({0x1a, 0x03, 0x0a, 0x01, 0x07})));
    CHECK(hex(chunk_bytes(encoded_text_chunk{})) == hex(bytes({0x0a, 0x00})));  // empty member still present

    // Negative int32 values are sign-extended to ten bytes.
    req = {};
    req.seq_id = -1;
    CHECK(hex(proto::encode(req)) ==
          hex(bytes({0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x22, 0x0d}) + "cross_entropy"));
  }

  TEST_CASE("byte fixture: ForwardBackwardOutput") {
    forward_backward_output out;
    out.loss_fn_output_type = "T";
    out.loss_fn_outputs.push_back({{"lp", tensor_data(std::vector<float>{-1.0f}, {1})}});
    out.loss_fn_outputs.push_back({{"lp", tensor_data(std::vector<float>{-2.0f, -0.5f}, {2})}});
    out.metrics["loss:sum"] = 3.5;
    std::string expected = bytes({
        0x0a, 0x01, 'T',        // field 1 (loss_fn_output_type) = "T"
        0x12, 0x34,             // field 2 (loss_fn_outputs[0]): ArrayRecord, 52 bytes
        0x12, 0x30,             //   field 2 (fields entry), 48 bytes
        0x0a, 0x02, 'l',  'p',  //     key = "lp"
        0x12, 0x2a,             //     value: BatchedTensor, 42 bytes
        0x0a, 0x0c,             //       data, 12 bytes: float32 LE
        0,    0,    0x80, 0xbf, 0,   0,   0,   0xc0, 0,    0,   0, 0xbf,  //         -1.0 | -2.0, -0.5
        0x12, 0x18,                                              //       offsets, 24 bytes: int64 LE byte offsets
        0,    0,    0,    0,    0,   0,   0,   0,                //         0
        4,    0,    0,    0,    0,   0,   0,   0,                //         4  (datum 0 = bytes [0, 4))
        12,   0,    0,    0,    0,   0,   0,   0,                //         12 (datum 1 = bytes [4, 12))
        0x18, 0x01,                                              //       dtype = DTYPE_FLOAT32 (1-D: no trailing_shape)
        0x18, 0x02,                                              //   field 3 (num_datums) = 2
        0x1a, 0x13,                                              // field 3 (metrics entry), 19 bytes
        0x0a, 0x08, 'l',  'o',  's', 's', ':', 's',  'u',  'm',  //   key = "loss:sum"
        0x11, 0,    0,    0,    0,   0,   0,   0x0c, 0x40,       //   value = 3.5
    });
    CHECK(hex(proto::encode(out)) == hex(expected));
    CHECK(proto::decode_forward_backward_output(expected) == out);
  }

  // --- what protobuf accepts ---------------------------------------------------------------------------------

  TEST_CASE("decoding: unknown fields of every wire type are skipped, last value wins") {
    const auto unknown = bytes({0x48, 0x2a,                                  // field 9, varint 42
                                0x51, 1,    2,    3,    4,    5,   6, 7, 8,  // field 10, fixed64
                                0x5d, 1,    2,    3,    4,                   // field 11, fixed32
                                0x62, 0x02, 0xab, 0xcd,                      // field 12, length-delimited
                                0xf8, 0xff, 0xff, 0xff, 0x0f, 0x00});        // field 2^29-1, varint 0
    const auto minimal = message([](auto& o) { o.string_field(4, "dro"); });

    auto req = proto::decode_forward_backward_request(unknown + length_delimited(1, "x") + unknown +
                                                      length_delimited(1, "m") + minimal + unknown);
    CHECK(req.model_id == "m");
    CHECK(req.forward_backward_input.loss_fn == loss_fn_type::dro);

    // Unknown fields inside nested messages, too (a Datum with provenance spans, fields 3 and 4).
    const auto datum = unknown + length_delimited(3, bytes({0x0a, 0x02, 0x0a, 0x00})) + length_delimited(4, "") +
                       message([](auto& o) { o.message_field(1, [](auto& c) { c.bytes_field(3, ""); }); });
    req = proto::decode_forward_backward_request(length_delimited(3, datum) + minimal);
    REQUIRE(req.forward_backward_input.data.size() == 1);
    CHECK(req.forward_backward_input.data[0].model_input.chunks == std::vector<model_input_chunk>{dmel_chunk{}});

    // Repeated scalar: last wins. seq_id twice, forward_only true then false.
    req = proto::decode_forward_backward_request(bytes({0x10, 0x05, 0x10, 0x07, 0x30, 0x01, 0x30, 0x00}) + minimal);
    CHECK(req.seq_id == 7);
    CHECK_FALSE(req.forward_only);

    // Unknown fields in outputs and samples (e.g. newer SampleResponse fields 5 and 6).
    CHECK(proto::decode_sample_response(unknown + length_delimited(5, bytes({0x0a, 0x00})) + length_delimited(6, "")) ==
          sample_response{});

    // SampledSequence field 4 (topk_sampled_logprobs, a length-delimited TopkLogprobs; docs/protocol.md
    // §9.3) is skipped wherever it sits in a sequence, even repeated: the sequence reads as without it.
    const std::vector<token_id> topk_ids{5, 6}, tokens{7, 8};
    const std::vector<float> topk_lps{-0.5f, -1.5f}, lps{-0.25f, -0.75f};
    const auto topk = message([&](auto& t) {
      t.array_field(1, std::span<const token_id>(topk_ids));
      t.array_field(2, std::span<const float>(topk_lps));
      t.uint32_field(3, 1);
      t.uint32_field(4, 2);
    });
    const auto sequence = message([&](auto& q) {
      q.bytes_field(4, topk);
      q.int32_field(1, 1);  // STOP_REASON_LENGTH
      q.array_field(2, std::span<const token_id>(tokens));
      q.bytes_field(4, topk);
      q.array_field(3, std::span<const float>(lps));
      q.bytes_field(4, topk);
    });
    REQUIRE(sequence.find(static_cast<char>(0x22)) == 0);  // field 4, wire type 2 comes first
    const auto with_topk = proto::decode_sample_response(length_delimited(1, sequence) + length_delimited(1, sequence));
    const sampled_sequence expected{stop_reason::length, tokens, lps, std::nullopt};
    REQUIRE(with_topk.sequences.size() == 2);
    CHECK(with_topk.sequences[0] == expected);
    CHECK(with_topk.sequences[1] == expected);
    CHECK_FALSE(with_topk.topk_prompt_logprobs);  // not mistaken for the response's own top-k (field 3)
    // ... but field 4 must still be well-formed at the wire level: a length beyond the sequence is an error.
    const auto e = sample_error(length_delimited(1, bytes({0x22, 0x05, 0x00})));
    CHECK(e.field() == "sequences[0].field 4");
    CHECK(proto::decode_forward_backward_output(unknown).loss_fn_outputs.empty());
  }

  TEST_CASE("decoding: repeated int64 packed and unpacked, oneof and map semantics") {
    auto tensor_field = [](auto&& body) {
      return message([&](auto& o) {
        o.message_field(3, [&](auto& d) {
          d.message_field(2, [&](auto& e) {
            e.string_field(1, "t");
            e.message_field(2, body);
          });
        });
        o.string_field(4, "cross_entropy");
      });
    };
    auto decoded_tensor = [](const std::string& b) {
      return proto::decode_forward_backward_request(b).forward_backward_input.data.at(0).loss_fn_inputs.at("t");
    };

    // shape as unpacked varints, mixed with a packed run: [2] + [1, 3] -> [2, 1, 3].
    auto t = decoded_tensor(tensor_field([](auto& o) {
      o.array_field(1, std::span<const float>(std::vector<float>{1, 2, 3, 4, 5, 6}));
      o.int32_field(3, 1);
      o.int64_field(4, 2);
      o.packed_int64_field(4, std::vector<std::int64_t>{1, 3});
    }));
    CHECK(t == tensor_data(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 1, 3}));

    // oneof: sparse_csr then dense -> dense wins.
    t = decoded_tensor(tensor_field([](auto& o) {
      o.message_field(2, [](auto& c) { c.array_field(1, std::span<const float>(std::vector<float>{9})); });
      o.array_field(1, std::span<const float>(std::vector<float>{7, 8}));
      o.int32_field(3, 1);
    }));
    CHECK(t == tensor_data{7.0f, 8.0f});

    // dense then sparse_csr -> sparse wins (and two sparse_csr occurrences merge).
    t = decoded_tensor(tensor_field([](auto& o) {
      o.array_field(1, std::span<const float>(std::vector<float>{7, 8}));
      o.message_field(2, [](auto& c) { c.array_field(1, std::span<const float>(std::vector<float>{9})); });
      o.message_field(2, [](auto& c) {
        c.array_field(2, std::span<const std::int64_t>(std::vector<std::int64_t>{0, 1}));
        c.array_field(3, std::span<const std::int64_t>(std::vector<std::int64_t>{1}));
      });
      o.int32_field(3, 1);
      o.packed_int64_field(4, std::vector<std::int64_t>{1, 2});
    }));
    CHECK(t == tensor_data::sparse_csr(std::vector<float>{9}, 1, 2, {0, 1}, {1}));

    // Chunk oneof: image then encoded_text -> text.
    auto req = proto::decode_forward_backward_request(message([](auto& o) {
      o.message_field(3, [](auto& d) {
        d.message_field(1, [](auto& c) {
          c.message_field(2, [](auto& i) { i.string_field(2, "png"); });
          c.message_field(1, [](auto& x) { x.array_field(1, std::span<const token_id>(std::vector<token_id>{4})); });
        });
      });
      o.string_field(4, "ppo");
    }));
    CHECK(req.forward_backward_input.data.at(0).model_input.to_ints() == std::vector<token_id>{4});

    // Maps: duplicate keys -> last entry wins; an entry's value may come before its key.
    req = proto::decode_forward_backward_request(message([](auto& o) {
      o.message_field(5, [](auto& e) {
        e.string_field(1, "k");
        e.double_field(2, 1.0);
      });
      o.message_field(5, [](auto& e) {
        e.double_field(2, 2.0);
        e.string_field(1, "k");
      });
      o.message_field(5, [](auto& e) { e.string_field(1, "zero"); });  // value missing: 0.0
      o.string_field(4, "ppo");
    }));
    CHECK(req.forward_backward_input.loss_fn_config == loss_fn_config{{"k", 2.0}, {"zero", 0.0}});
  }

  TEST_CASE("decoding ForwardBackwardRequest: loss_fn_config_v2") {
    auto v2_entry = [](std::string key, auto&& value) {
      return message([&](auto& o) {
        o.message_field(7, [&](auto& e) {
          e.string_field(1, key);
          e.message_field(2, value);
        });
      });
    };
    const auto loss = message([](auto& o) { o.string_field(4, "cispo"); });
    const auto v1 = message([](auto& o) {
      o.message_field(5, [](auto& e) {
        e.string_field(1, "clip_low_threshold");
        e.double_field(2, 0.1);
      });
    });
    const auto v2 = v2_entry("clip_high_threshold", [](auto& v) { v.double_field(1, 4.0); }) +
                    v2_entry("clip_low_threshold", [](auto& v) { v.double_field(1, 0.0); });

    // v2 present and non-empty: preferred over v1 (it is the complete map in newer SDKs).
    auto req = proto::decode_forward_backward_request(v1 + loss + v2);
    CHECK(req.forward_backward_input.loss_fn_config ==
          loss_fn_config{{"clip_high_threshold", 4.0}, {"clip_low_threshold", 0.0}});
    // Only v1: used.
    req = proto::decode_forward_backward_request(v1 + loss);
    CHECK(req.forward_backward_input.loss_fn_config == loss_fn_config{{"clip_low_threshold", 0.1}});

    // A text value: rejected with a clear message (the engine answers 400).
    auto e = request_error(loss + v2 + v2_entry("mode", [](auto& v) { v.string_field(2, "fast"); }));
    CHECK(e.type_name() == "ForwardBackwardRequest");
    CHECK(e.field() == "loss_fn_config_v2[mode]");
    CHECK(e.problem().find("string-valued loss configs are unsupported") != std::string::npos);
    // A value with neither member.
    e = request_error(loss + v2_entry("x", [](auto&) {}));
    CHECK(e.field() == "loss_fn_config_v2[x]");
  }

  TEST_CASE("decoding: int32 and bfloat16 payloads widen to int64 and float32") {
    const float bf16_values[] = {1.0f, -2.5f, 0.15625f, -INFINITY};  // exactly representable in bfloat16
    std::string bf16;
    for (float f : bf16_values) {
      const auto b = std::bit_cast<std::uint32_t>(f) >> 16;
      bf16 += static_cast<char>(b & 0xff);
      bf16 += static_cast<char>(b >> 8);
    }
    const std::vector<std::int32_t> int32_values{-1, 2147483647, 0};

    SUBCASE("BatchedTensor") {
      auto output = [&](std::int32_t dtype, std::string_view data, std::vector<std::int64_t> offsets) {
        return message([&](auto& o) {
          o.message_field(2, [&](auto& r) {
            r.message_field(2, [&](auto& e) {
              e.string_field(1, "f");
              e.message_field(2, [&](auto& bt) {
                bt.bytes_field(1, data);
                bt.array_field(2, std::span<const std::int64_t>(offsets));
                bt.int32_field(3, dtype);
              });
            });
            r.int64_field(3, static_cast<std::int64_t>(offsets.size() - 1));
          });
        });
      };
      auto out = proto::decode_forward_backward_output(output(4, bf16, {0, 2, 8}));  // offsets in bf16 bytes
      REQUIRE(out.loss_fn_outputs.size() == 2);
      CHECK(out.loss_fn_outputs[0].at("f") == tensor_data(std::vector<float>{1.0f}, {1}));
      CHECK(out.loss_fn_outputs[1].at("f") == tensor_data(std::vector<float>{-2.5f, 0.15625f, -INFINITY}, {3}));

      std::string i32(reinterpret_cast<const char*>(int32_values.data()), 12);  // test host is little-endian
      out = proto::decode_forward_backward_output(output(3, i32, {0, 12}));
      CHECK(out.loss_fn_outputs.at(0).at("f") == tensor_data(std::vector<std::int64_t>{-1, 2147483647, 0}, {3}));
    }
    SUBCASE("Tensor (loss_fn_inputs)") {
      auto request = [&](std::int32_t dtype, std::string_view dense) {
        return message([&](auto& o) {
          o.message_field(3, [&](auto& d) {
            d.message_field(2, [&](auto& e) {
              e.string_field(1, "t");
              e.message_field(2, [&](auto& t) {
                t.bytes_field(1, dense);
                t.int32_field(3, dtype);
              });
            });
          });
          o.string_field(4, "cross_entropy");
        });
      };
      auto t = proto::decode_forward_backward_request(request(4, bf16))
                   .forward_backward_input.data[0]
                   .loss_fn_inputs.at("t");
      CHECK(t == tensor_data(std::vector<float>(std::begin(bf16_values), std::end(bf16_values))));
      std::string i32(reinterpret_cast<const char*>(int32_values.data()), 12);
      t = proto::decode_forward_backward_request(request(3, i32)).forward_backward_input.data[0].loss_fn_inputs.at("t");
      CHECK(t == tensor_data{std::int64_t{-1}, std::int64_t{2147483647}, std::int64_t{0}});
    }
  }

  TEST_CASE("decoding ForwardBackwardOutput: num_datums, legacy counts, trailing shapes, type names") {
    auto bt = [](auto& e, std::string name, std::vector<float> data, std::vector<std::int64_t> offsets,
                 std::vector<std::int64_t> trailing) {
      e.string_field(1, name);
      e.message_field(2, [&](auto& b) {
        if (!data.empty()) b.array_field(1, std::span<const float>(data));
        b.array_field(2, std::span<const std::int64_t>(offsets));
        b.int32_field(3, 1);
        b.packed_int64_field(4, trailing);
      });
    };

    SUBCASE("a record with no fields still counts its datums") {
      const auto m = message([&](auto& o) {
        o.string_field(1, "tinker.types:ArrayRecord");
        o.message_field(2, [&](auto& r) { r.int64_field(3, 3); });
        o.message_field(2, [&](auto& r) {
          r.message_field(2, [&](auto& e) { bt(e, "lp", {1, 2, 3, 4, 5, 6}, {0, 24}, {3, 2}); });
          r.int64_field(3, 1);
        });
      });
      const auto out = proto::decode_forward_backward_output(m);
      CHECK(out.loss_fn_output_type == "ArrayRecord");
      REQUIRE(out.loss_fn_outputs.size() == 4);
      CHECK(out.loss_fn_outputs[0].empty());
      CHECK(out.loss_fn_outputs[2].empty());
      // 6 elements, trailing [3, 2] -> shape [1, 3, 2].
      CHECK(out.loss_fn_outputs[3].at("lp") == tensor_data(std::vector<float>{1, 2, 3, 4, 5, 6}, {1, 3, 2}));
    }
    SUBCASE("no num_datums anywhere: the first field's offsets give the count") {
      const auto m = message([&](auto& o) {
        o.message_field(2, [&](auto& r) {
          r.message_field(2, [&](auto& e) { bt(e, "a", {1, 2, 3}, {0, 4, 4, 12}, {}); });
          r.message_field(2, [&](auto& e) { bt(e, "b", {}, {0, 0, 0, 0}, {5}); });
        });
      });
      const auto out = proto::decode_forward_backward_output(m);
      CHECK(out.loss_fn_output_type.empty());
      REQUIRE(out.loss_fn_outputs.size() == 3);
      CHECK(out.loss_fn_outputs[1].at("a") == tensor_data(std::vector<float>{}, {0}));
      CHECK(out.loss_fn_outputs[2].at("a") == tensor_data(std::vector<float>{2, 3}, {2}));
      CHECK(out.loss_fn_outputs[2].at("b") == tensor_data(std::vector<float>{}, {0, 5}));
    }
    SUBCASE("zero-sized trailing dimension") {
      const auto m = message([&](auto& o) {
        o.message_field(2, [&](auto& r) {
          r.message_field(2, [&](auto& e) { bt(e, "z", {}, {0, 0}, {0}); });
          r.int64_field(3, 1);
        });
      });
      CHECK(proto::decode_forward_backward_output(m).loss_fn_outputs.at(0).at("z") ==
            tensor_data(std::vector<float>{}, {0, 0}));
    }
  }

  // --- errors ------------------------------------------------------------------------------------------------

  TEST_CASE("errors name the message, the field path and the problem") {
    // target_tokens declared INT64 with 7 bytes of payload.
    const auto m = message([](auto& o) {
      for (int i = 0; i < 4; ++i)
        o.message_field(3, [&](auto& d) {
          d.message_field(2, [&](auto& e) {
            e.string_field(1, "target_tokens");
            e.message_field(2, [&](auto& t) {
              t.bytes_field(1, std::string(i == 3 ? 7 : 8, '\0'));
              t.int32_field(3, 2);
            });
          });
        });
      o.string_field(4, "cross_entropy");
    });
    const auto e = request_error(m);
    CHECK(e.type_name() == "ForwardBackwardRequest");
    CHECK(e.field() == "data[3].loss_fn_inputs[target_tokens].dense");
    CHECK(e.problem() == "length 7 is not a multiple of 8 for dtype INT64");
    CHECK(
        std::string(e.what()) ==
        "cannot decode ForwardBackwardRequest: field 'data[3].loss_fn_inputs[target_tokens].dense': length 7 is not a "
        "multiple of 8 for dtype INT64");
  }

  TEST_CASE("malformed input: wire level") {
    const auto loss = message([](auto& o) { o.string_field(4, "ppo"); });
    SUBCASE("wrong wire types") {
      auto e = request_error(bytes({0x08, 0x05}) + loss);  // model_id as a varint
      CHECK(e.field() == "model_id");
      CHECK(e.problem() == "has wire type varint, expected length-delimited");
      e = request_error(bytes({0x12, 0x00}) + loss);  // seq_id as bytes
      CHECK(e.field() == "seq_id");
      e = sample_error(bytes({0x0d, 0, 0, 0, 0}));  // sequences as fixed32
      CHECK(e.field() == "sequences");
      e = output_error(bytes({0x1a, 0x04, 0x0a, 0x00, 0x10, 0x01}));  // metrics value as varint
      CHECK(e.field() == "metrics.value");
      e = request_error(message([](auto& o) { o.message_field(5, [](auto& x) { x.int32_field(2, 1); }); }) + loss);
      CHECK(e.field() == "loss_fn_config.value");
    }
    SUBCASE("groups, field number 0, invalid wire types") {
      CHECK(request_error(bytes({0x0b, 0x0c})).problem().find("group wire type") !=
            std::string::npos);  // field 1 start-group
      CHECK(request_error(bytes({0x0c})).problem().find("group wire type") != std::string::npos);  // field 1 end-group
      CHECK(request_error(bytes({0x00, 0x00})).problem().find("invalid field number 0") != std::string::npos);
      CHECK(sample_error(bytes({0x0e, 0x00})).problem().find("invalid wire type 6") != std::string::npos);
      CHECK(sample_error(bytes({0x0f})).problem().find("invalid wire type 7") != std::string::npos);
      CHECK(sample_error(bytes({0x80, 0x80, 0x80, 0x80, 0x10})).problem().find("invalid field number") !=
            std::string::npos);
    }
    SUBCASE("over-long and overflowing varints") {
      auto e = request_error(bytes({0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}) + loss);
      CHECK(e.field() == "seq_id");
      CHECK(e.problem().find("overflows 64 bits") != std::string::npos);
      e = request_error(bytes({0x10, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}) + loss);
      CHECK(e.problem().find("overflows 64 bits") != std::string::npos);
      e = request_error(bytes({0x10, 0x80, 0x80}));
      CHECK(e.problem() == "truncated varint at byte 1");
      // The largest valid varint is fine: 2^64 - 1 in an int64 field.
      CHECK_NOTHROW(proto::decode_forward_backward_output(
          bytes({0x48, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})));
    }
    SUBCASE("lengths beyond the buffer") {
      auto e = request_error(bytes({0x0a, 0x05, 'a'}));
      CHECK(e.field() == "model_id");
      CHECK(e.problem() == "length 5 at byte 1 exceeds the 1 bytes left");
      // A huge length prefix must not allocate: 2^62 bytes claimed.
      e = sample_error(bytes({0x12, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40}));
      CHECK(e.field() == "prompt_logprobs");
      // Nested: the length inside a sub-message may not run past the sub-message.
      e = sample_error(bytes({0x0a, 0x03, 0x12, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00}));
      CHECK(e.field() == "sequences[0].tokens");
      e = request_error(bytes({0x51, 0x00}));  // unknown fixed64 cut short
      CHECK(e.field() == "field 10");
    }
    SUBCASE("invalid UTF-8 in string fields") {
      auto e = request_error(bytes({0x0a, 0x02, 0xc3, 0x28}) + loss);
      CHECK(e.field() == "model_id");
      CHECK(e.problem() == "is not valid UTF-8");
      e = output_error(bytes({0x1a, 0x05, 0x0a, 0x03, 0xed, 0xa0, 0x80}));  // a UTF-16 surrogate
      CHECK(e.field() == "metrics.key");
      e = request_error(bytes({0x0a, 0x02, 0xc0, 0x80}) + loss);  // overlong NUL
      CHECK(e.field() == "model_id");
    }
  }

  TEST_CASE("malformed input: ForwardBackwardRequest semantics") {
    const auto loss = message([](auto& o) { o.string_field(4, "ppo"); });
    auto with_tensor = [&](auto&& body) {
      return message([&](auto& o) {
               o.message_field(3, [&](auto& d) {
                 d.message_field(2, [&](auto& e) {
                   e.string_field(1, "x");
                   e.message_field(2, body);
                 });
               });
             }) +
             loss;
    };
    auto with_chunk = [&](auto&& body) {
      return message([&](auto& o) { o.message_field(3, [&](auto& d) { d.message_field(1, body); }); }) + loss;
    };

    auto e = request_error(message([](auto& o) { o.string_field(4, "dpo"); }));
    CHECK(e.field() == "loss_fn");
    CHECK(e.problem() == "unknown loss function \"dpo\"");
    CHECK(request_error("").problem() == "unknown loss function \"\"");

    e = request_error(with_tensor([](auto& t) { t.bytes_field(1, "abcd"); }));
    CHECK(e.field() == "data[0].loss_fn_inputs[x].dtype");
    CHECK(e.problem() == "is DTYPE_UNSPECIFIED (missing)");
    e = request_error(with_tensor([](auto& t) {
      t.bytes_field(1, "abcd");
      t.int32_field(3, 7);
    }));
    CHECK(e.problem() == "unsupported dtype value 7");
    e = request_error(with_tensor([](auto& t) { t.int32_field(3, 1); }));
    CHECK(e.field() == "data[0].loss_fn_inputs[x]");
    CHECK(e.problem() == "sets neither dense nor sparse_csr");
    e = request_error(with_tensor([](auto& t) {
      t.bytes_field(1, std::string(12, '\0'));
      t.int32_field(3, 1);
      t.packed_int64_field(4, std::vector<std::int64_t>{2, 2});
    }));
    CHECK(e.field() == "data[0].loss_fn_inputs[x].shape");
    CHECK(e.problem() == "describes 4 elements but dense holds 3");
    e = request_error(with_tensor([](auto& t) {
      t.bytes_field(1, "");
      t.int32_field(3, 1);
      t.packed_int64_field(4, std::vector<std::int64_t>{1ll << 40, 1ll << 40});
    }));
    CHECK(e.problem() == "the product of the dimensions overflows 64 bits");
    e = request_error(with_tensor([](auto& t) {
      t.bytes_field(1, "");
      t.int32_field(3, 1);
      t.packed_int64_field(4, std::vector<std::int64_t>{-1});
    }));
    CHECK(e.problem() == "negative dimension -1");
    // A shape whose product wraps to 0 in 64 bits ([2^32, 2^32]) cannot pass for an empty tensor.
    e = request_error(with_tensor([](auto& t) {
      t.bytes_field(1, "");
      t.int32_field(3, 1);
      t.packed_int64_field(4, std::vector<std::int64_t>{1ll << 32, 1ll << 32});
    }));
    CHECK(e.field() == "data[0].loss_fn_inputs[x].shape");
    CHECK(e.problem() == "the product of the dimensions overflows 64 bits");
    // Sparse: crow of the wrong length, a column out of range, no shape.
    auto sparse = [](std::vector<std::int64_t> crow, std::vector<std::int64_t> col, std::vector<std::int64_t> shape) {
      return [=](auto& t) {
        t.message_field(2, [&](auto& c) {
          c.array_field(1, std::span<const float>(std::vector<float>(col.size(), 1.0f)));
          c.array_field(2, std::span<const std::int64_t>(crow));
          c.array_field(3, std::span<const std::int64_t>(col));
        });
        t.int32_field(3, 1);
        t.packed_int64_field(4, shape);
      };
    };
    e = request_error(with_tensor(sparse({0, 1}, {0}, {2, 2})));
    CHECK(e.field() == "data[0].loss_fn_inputs[x].sparse_csr.crow_indices");
    e = request_error(with_tensor(sparse({0, 1}, {0}, {std::numeric_limits<std::int64_t>::max(), 1})));
    CHECK(e.field() == "data[0].loss_fn_inputs[x].sparse_csr.crow_indices");
    // Sparse shapes that tiny CSR indices cannot back: [4, 2^62] overflows, [4, 2^61] (2^63 elements)
    // is beyond max_dense_elements. Both are rejected before anything could be expanded.
    e = request_error(with_tensor(sparse({0, 1, 1, 1, 1}, {5}, {4, std::int64_t{1} << 62})));
    CHECK(e.field() == "data[0].loss_fn_inputs[x].shape");
    CHECK(e.problem() == "the product of the dimensions overflows 64 bits");
    e = request_error(with_tensor(sparse({0, 1, 1, 1, 1}, {0}, {4, std::int64_t{1} << 61})));
    CHECK(e.field() == "data[0].loss_fn_inputs[x]");
    CHECK(e.problem() ==
          "sparse_csr: shape [4, 2305843009213693952] describes 9223372036854775808 elements, more than the limit of "
          "268435456");
    e = request_error(with_tensor(sparse({0, 0, 0, 0, 0}, {}, {4, (std::int64_t{1} << 26) + 1})));
    CHECK(e.problem().find("more than the limit of 268435456") != std::string::npos);
    CHECK_NOTHROW(
        proto::decode_forward_backward_request(with_tensor(sparse({0, 0, 0, 0, 0}, {}, {4, std::int64_t{1} << 26}))));
    e = request_error(with_tensor(sparse({0, 1}, {5}, {1, 2})));
    CHECK(e.problem().find("column index 5 out of range") != std::string::npos);
    e = request_error(with_tensor(sparse({0, 1}, {0}, {})));
    CHECK(e.problem().find("2-D shape") != std::string::npos);
    e = request_error(with_tensor([](auto& t) {
      t.message_field(2, [](auto& c) { c.bytes_field(2, "1234567"); });
      t.int32_field(3, 2);
    }));
    CHECK(e.field() == "data[0].loss_fn_inputs[x].sparse_csr.crow_indices");
    CHECK(e.problem() == "length 7 is not a multiple of 8 for int64 indices");

    e = request_error(with_chunk([](auto&) {}));
    CHECK(e.field() == "data[0].model_input[0]");
    CHECK(e.problem() == "sets none of encoded_text, image, dmel");
    e = request_error(with_chunk([](auto& c) { c.message_field(1, [](auto& t) { t.bytes_field(1, "12345"); }); }));
    CHECK(e.field() == "data[0].model_input[0].encoded_text.tokens");
    CHECK(e.problem() == "length 5 is not a multiple of 4 for int32 token ids");
    e = request_error(with_chunk([](auto& c) { c.message_field(2, [](auto& i) { i.string_field(2, "gif"); }); }));
    CHECK(e.field() == "data[0].model_input[0].image.format");
    e = request_error(with_chunk([](auto& c) { c.message_field(2, [](auto& i) { i.bytes_field(1, "x"); }); }));
    CHECK(e.problem().find("is missing") != std::string::npos);
  }

  TEST_CASE("malformed input: ForwardBackwardOutput offsets and dtypes") {
    auto output = [](std::string data, std::string offsets, std::int32_t dtype, std::vector<std::int64_t> trailing,
                     std::int64_t num_datums) {
      return message([&](auto& o) {
        o.message_field(2, [&](auto& r) {
          r.message_field(2, [&](auto& e) {
            e.string_field(1, "lp");
            e.message_field(2, [&](auto& b) {
              if (!data.empty()) b.bytes_field(1, data);
              if (!offsets.empty()) b.bytes_field(2, offsets);
              if (dtype) b.int32_field(3, dtype);
              b.packed_int64_field(4, trailing);
            });
          });
          if (num_datums) r.int64_field(3, num_datums);
        });
      });
    };
    auto offsets = [](std::vector<std::int64_t> v) {
      return std::string(reinterpret_cast<const char*>(v.data()), 8 * v.size());
    };
    const std::string data(16, '\0');  // four float32 zeros

    CHECK_NOTHROW(proto::decode_forward_backward_output(output(data, offsets({0, 8, 16}), 1, {}, 2)));
    struct bad {
      std::string bytes, field, problem;
    };
    const bad cases[] = {
        {output(data, offsets({0, 8, 16}).substr(0, 20), 1, {}, 2), "loss_fn_outputs[0].fields[lp].offsets",
         "length 20 is not a multiple of 8 for int64 offsets"},
        {output(data, offsets({0, 16}), 1, {}, 2), "loss_fn_outputs[0].fields[lp].offsets",
         "has 2 entries, expected num_datums + 1 = 3"},
        {output(data, offsets({4, 8, 16}), 1, {}, 2), "loss_fn_outputs[0].fields[lp].offsets", "entry 0 (4) must be 0"},
        {output(data, offsets({0, 8, 12}), 1, {}, 2), "loss_fn_outputs[0].fields[lp].offsets",
         "entry 2 (12) must equal the data length 16"},
        {output(data, offsets({0, 12, 8, 16}), 1, {}, 3), "loss_fn_outputs[0].fields[lp].offsets",
         "entry 2 (8) decreases"},
        {output(data, offsets({0, 24, 16}), 1, {}, 2), "loss_fn_outputs[0].fields[lp].offsets",
         "entry 1 (24) is beyond the data length 16"},
        {output(data, offsets({0, -8, 16}), 1, {}, 2), "loss_fn_outputs[0].fields[lp].offsets",
         "entry 1 (-8) decreases"},
        {output(data, offsets({0, 6, 16}), 1, {}, 2), "loss_fn_outputs[0].fields[lp].offsets",
         "entry 1 (6) is not a multiple of 4 (the size of dtype FLOAT32)"},
        {output(data, offsets({0, 16}), 1, {3}, 1), "loss_fn_outputs[0].fields[lp].data",
         "datum 0 has 4 elements, not a multiple of prod(trailing_shape) = 3"},
        {output(data, offsets({0, 16}), 1, {0}, 1), "loss_fn_outputs[0].fields[lp].data",
         "datum 0 has 4 elements but trailing_shape describes empty rows"},
        {output(data, offsets({0, 16}), 1, {-2}, 1), "loss_fn_outputs[0].fields[lp].trailing_shape",
         "negative dimension -2"},
        {output(data, offsets({0, 16}), 9, {}, 1), "loss_fn_outputs[0].fields[lp].dtype", "unsupported dtype value 9"},
        {output(data, offsets({0, 16}), 0, {}, 1), "loss_fn_outputs[0].fields[lp].dtype",
         "is DTYPE_UNSPECIFIED (missing)"},
        {output(data, "", 1, {}, 1), "loss_fn_outputs[0].fields[lp].offsets",
         "is empty, expected num_datums + 1 = 2 entries"},
        {output(data, offsets({0, 16}), 1, {}, -1), "loss_fn_outputs[0].num_datums", "is negative (-1)"},
        {output("", "", 1, {}, std::int64_t{1} << 40), "loss_fn_outputs",
         "num_datums adds up to more than 65536 datums, the most one answer may describe (the SDK sends at most 1024 "
         "per request chunk)"},
        {output("", "", 1, {}, 65537), "loss_fn_outputs",
         "num_datums adds up to more than 65536 datums, the most one answer may describe (the SDK sends at most 1024 "
         "per request chunk)"},
        {output(data, offsets({0, 16}), 1, {std::int64_t{1} << 32, std::int64_t{1} << 32}, 1),
         "loss_fn_outputs[0].fields[lp].trailing_shape", "the product of the dimensions overflows 64 bits"},
    };
    CHECK(proto::max_output_datums == 65536);
    // At the cap, a record without fields still decodes (into empty per-datum maps).
    const auto at_cap = message([](auto& o) { o.message_field(2, [](auto& r) { r.int64_field(3, 65536); }); });
    CHECK(proto::decode_forward_backward_output(at_cap).loss_fn_outputs.size() == 65536);
    for (const auto& c : cases) {
      CAPTURE(c.problem);
      const auto e = output_error(c.bytes);
      CHECK(e.type_name() == "ForwardBackwardOutput");
      CHECK(e.field() == c.field);
      CHECK(e.problem() == c.problem);
    }
    // A bfloat16 payload is sliced in 2-byte elements.
    CHECK(output_error(output(std::string(6, '\0'), offsets({0, 3, 6}), 4, {}, 2)).problem() ==
          "entry 1 (3) is not a multiple of 2 (the size of dtype BFLOAT16)");
  }

  TEST_CASE("malformed input: SampleResponse") {
    auto e = sample_error(bytes({0x0a, 0x02, 0x08, 0x02}));
    CHECK(e.type_name() == "SampleResponse");
    CHECK(e.field() == "sequences[0].stop_reason");
    CHECK(e.problem() == "unknown StopReason value 2");
    e = sample_error(bytes({0x0a, 0x00, 0x0a, 0x0b, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}));
    CHECK(e.field() == "sequences[1].stop_reason");
    CHECK(e.problem() == "unknown StopReason value -1");
    e = sample_error(bytes({0x0a, 0x03, 0x12, 0x01, 0x00}));
    CHECK(e.field() == "sequences[0].tokens");
    e = sample_error(bytes({0x0a, 0x04, 0x1a, 0x02, 0x00, 0x00}));
    CHECK(e.field() == "sequences[0].logprobs");
    CHECK(e.problem() == "length 2 is not a multiple of 4 for float32 logprobs");
    e = sample_error(bytes({0x12, 0x03, 0, 0, 0}));
    CHECK(e.field() == "prompt_logprobs");
    // Top-k: k = 2, prompt_length = 1 needs 8 bytes per matrix.
    e = sample_error(bytes({0x1a, 0x0c, 0x0a, 0x04, 1, 0, 0, 0, 0x12, 0x00, 0x18, 0x02, 0x20, 0x01}));
    CHECK(e.field() == "topk_prompt_logprobs.token_ids");
    CHECK(e.problem() == "has 4 bytes, expected prompt_length * k * 4 = 8 (prompt_length 1, k 2)");
    // The maximum k and prompt_length with tiny payloads: no allocation, a size error.
    e = sample_error(bytes({0x1a, 0x0c, 0x18, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x20, 0xff, 0xff, 0xff, 0xff, 0x0f}));
    CHECK(e.field() == "topk_prompt_logprobs.token_ids");
  }

  TEST_CASE("encoding rejects what protobuf cannot carry, naming the field") {
    auto req = proto_samples::mixed_request();
    auto message_of = [](auto&& f) -> std::string {
      try {
        f();
      } catch (const tinker::invalid_argument& e) {
        return e.what();
      }
      return "(no error)";
    };
    auto bad = req;
    bad.forward_backward_input.data[1].model_input.append(image_asset_pointer_chunk{image_format::png, "s3://x", 3});
    CHECK(message_of([&] { (void)proto::encode(bad); }).find("data[1].model_input[1]: image_asset_pointer") !=
          std::string::npos);
    CHECK(message_of([&] { (void)proto::encoded_size(bad); }) != "(no error)");
    bad = req;
    bad.seq_id = std::int64_t{1} << 31;
    CHECK(message_of([&] { (void)proto::encode(bad); }) ==
          "ForwardBackwardRequest.seq_id: 2147483648 does not fit the int32 protobuf field");
    bad = req;
    bad.forward_backward_input.data[0].loss_fn_inputs["weights"].shape = std::vector<std::int64_t>{4};
    CHECK(message_of([&] {
            (void)proto::encode(bad);
          }).find("ForwardBackwardRequest.data[0].loss_fn_inputs[weights]") == 0);
    bad = req;
    bad.model_id = "\xff";
    CHECK(message_of([&] { (void)proto::encode(bad); }).find("model_id: is not valid UTF-8") != std::string::npos);

    auto res = proto_samples::mixed_sample_response();
    res.topk_prompt_logprobs->token_ids.pop_back();
    CHECK(message_of([&] { (void)proto::encode(res); }).find("SampleResponse.topk_prompt_logprobs") == 0);

    auto out = proto_samples::single_record_output();
    out.loss_fn_outputs[1]["logprobs"].shape = std::vector<std::int64_t>{5};
    CHECK(message_of([&] { (void)proto::encode(out); }).find("ForwardBackwardOutput.loss_fn_outputs[1][logprobs]") ==
          0);
  }

  // --- robustness loops --------------------------------------------------------------------------------------

  TEST_CASE("every truncation of a valid message throws protocol_error (or is a shorter valid message)") {
    SUBCASE("ForwardBackwardRequest") {
      check_every_truncation(proto::encode(proto_samples::mixed_request()),
                             [](std::string_view b) { (void)proto::decode_forward_backward_request(b); });
    }
    SUBCASE("ForwardBackwardOutput (single record)") {
      check_every_truncation(proto::encode(proto_samples::single_record_output()),
                             [](std::string_view b) { (void)proto::decode_forward_backward_output(b); });
    }
    SUBCASE("ForwardBackwardOutput (several records)") {
      check_every_truncation(proto::encode(proto_samples::multi_record_output()),
                             [](std::string_view b) { (void)proto::decode_forward_backward_output(b); });
    }
    SUBCASE("SampleResponse") {
      check_every_truncation(proto::encode(proto_samples::mixed_sample_response()),
                             [](std::string_view b) { (void)proto::decode_sample_response(b); });
    }
  }

  TEST_CASE("random mutations: decoding succeeds or throws protocol_error, nothing else") {
    struct target {
      std::string bytes;
      void (*decode)(std::string_view);
    };
    const target targets[] = {
        {proto::encode(proto_samples::mixed_request()),
         [](std::string_view b) { (void)proto::decode_forward_backward_request(b); }},
        {proto::encode(proto_samples::single_record_output()),
         [](std::string_view b) { (void)proto::decode_forward_backward_output(b); }},
        {proto::encode(proto_samples::multi_record_output()),
         [](std::string_view b) { (void)proto::decode_forward_backward_output(b); }},
        {proto::encode(proto_samples::mixed_sample_response()),
         [](std::string_view b) { (void)proto::decode_sample_response(b); }},
    };
    std::mt19937 rng(0x7419c0de);  // fixed seed: the same mutations on every run
    auto below = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
    std::size_t ok = 0, rejected = 0, other = 0;
    for (int iteration = 0; iteration < 20000; ++iteration) {
      const auto& t = targets[iteration % 4];
      std::string m = t.bytes;
      const auto edits = 1 + below(4);
      for (std::size_t k = 0; k < edits && !m.empty(); ++k) {
        const auto pos = below(m.size());
        switch (below(6)) {
          case 0: m[pos] = static_cast<char>(m[pos] ^ (1 << below(8))); break;  // flip one bit
          case 1: m[pos] = static_cast<char>(below(256)); break;                // overwrite a byte
          case 2: m.insert(m.begin() + static_cast<std::ptrdiff_t>(pos), static_cast<char>(below(256))); break;
          case 3: m.erase(pos, 1); break;
          case 4: m[pos] = static_cast<char>(0x80 | below(128)); break;  // make a varint longer
          case 5: m.resize(pos); break;                                  // truncate
        }
      }
      try {
        t.decode(m);
        ++ok;
      } catch (const protocol_error&) {
        ++rejected;
      } catch (const std::exception& e) {
        ++other;
        FAIL_CHECK("iteration " << iteration << " threw " << e.what() << " for " << hex(m));
      }
    }
    MESSAGE("mutations: " << ok << " decoded, " << rejected << " rejected");
    CHECK(other == 0);
    CHECK(ok > 0);
    CHECK(rejected > 0);
  }

}  // TEST_SUITE
