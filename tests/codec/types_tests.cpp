// Protocol value types: tensors, model inputs, timestamps, tinker paths.
#include <tinker/tinker_path.hpp>
#include <tinker/types.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

using namespace tinker;

TEST_SUITE("types") {
  TEST_CASE("tensor_data: dense and CSR forms, validation, conversions") {
    tensor_data t(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
    CHECK(t.type() == dtype::float32);
    CHECK(t.element_count() == 6);
    CHECK_NOTHROW(t.validate());
    t.shape = std::vector<std::int64_t>{4, 2};
    CHECK_THROWS_WITH_AS(t.validate("weights"), "weights: shape holds 8 elements but 6 values were given",
                         tinker::invalid_argument);

    auto s = tensor_data::sparse_csr(std::vector<std::int64_t>{7, 8, 9}, 2, 4, {0, 2, 3}, {1, 3, 0});
    CHECK(s.is_sparse());
    CHECK(s.to_dense<std::int64_t>() == std::vector<std::int64_t>{0, 7, 0, 8, 9, 0, 0, 0});
    CHECK(s.to_dense<float>() == std::vector<float>{0, 7, 0, 8, 9, 0, 0, 0});
    auto bad = s;
    bad.sparse_col_indices = std::vector<std::int64_t>{1, 4, 0};
    CHECK_THROWS_WITH_AS(bad.validate("mask"), "mask: sparse column index 4 out of range [0, 4)",
                         tinker::invalid_argument);
    bad = s;
    bad.sparse_crow_indices = std::vector<std::int64_t>{0, 3, 2};
    CHECK_THROWS_AS(bad.validate(), tinker::invalid_argument);

    // Shapes whose product overflows or is negative are errors naming the shape, never a wrapped count.
    tensor_data wrap(std::vector<float>{}, {std::int64_t{1} << 32, std::int64_t{1} << 32});
    CHECK_THROWS_WITH_AS(wrap.validate("w"), "w: shape [4294967296, 4294967296] has more elements than fit in 64 bits",
                         tinker::invalid_argument);
    CHECK_THROWS_WITH_AS((void)wrap.element_count(),
                         "tensor_data: shape [4294967296, 4294967296] has more elements than fit in 64 bits",
                         tinker::invalid_argument);
    tensor_data negative(std::vector<float>{}, {-1, -1});
    CHECK_THROWS_WITH_AS(negative.validate("w"), "w: negative dimension -1 in shape [-1, -1]",
                         tinker::invalid_argument);
    CHECK_THROWS_AS((void)negative.element_count(), tinker::invalid_argument);
    tensor_data zero_then_negative(std::vector<float>{}, {0, -3});
    CHECK_THROWS_WITH_AS(zero_then_negative.validate("w"), "w: negative dimension -3 in shape [0, -3]",
                         tinker::invalid_argument);
    tensor_data empty_huge(std::vector<float>{}, {0, std::numeric_limits<std::int64_t>::max()});
    CHECK(empty_huge.element_count() == 0);
    CHECK_NOTHROW(empty_huge.validate());
    CHECK(tensor_data::checked_element_count(std::vector<std::int64_t>{3, 0, std::int64_t{1} << 62, 8}) == 0u);
    CHECK_FALSE(tensor_data::checked_element_count(std::vector<std::int64_t>{8, std::int64_t{1} << 61}));
    // A sparse tensor whose shape its tiny indices cannot back: [4, 2^62] overflows, [4, 2^61] is
    // beyond max_dense_elements; neither validates, and to_dense() refuses instead of writing out of
    // bounds.
    auto sparse_huge =
        tensor_data::sparse_csr(std::vector<float>{1.0f}, 4, std::int64_t{1} << 62, {0, 1, 1, 1, 1}, {5});
    CHECK_THROWS_WITH_AS(sparse_huge.validate("mask"),
                         "mask: shape [4, 4611686018427387904] has more elements than fit in 64 bits",
                         tinker::invalid_argument);
    CHECK_THROWS_AS((void)sparse_huge.to_dense<float>(), tinker::invalid_argument);
    auto sparse_big = tensor_data::sparse_csr(std::vector<float>{1.0f}, 4, std::int64_t{1} << 61, {0, 1, 1, 1, 1}, {5});
    CHECK_THROWS_WITH_AS(sparse_big.validate("mask"),
                         "mask: shape [4, 2305843009213693952] describes 9223372036854775808 elements, more than the "
                         "limit of 268435456",
                         tinker::invalid_argument);
    CHECK_THROWS_AS((void)sparse_big.to_dense<std::int64_t>(), tinker::invalid_argument);
    // Exactly at the limit is fine (validated only: expanding it would take a gigabyte).
    CHECK(max_dense_elements == std::size_t{1} << 28);
    auto at_limit = tensor_data::sparse_csr(std::vector<float>{}, 1, std::int64_t{1} << 28, {0, 0}, {});
    CHECK_NOTHROW(at_limit.validate());
    auto over_limit = tensor_data::sparse_csr(std::vector<float>{}, 1, (std::int64_t{1} << 28) + 1, {0, 0}, {});
    CHECK_THROWS_AS(over_limit.validate(), tinker::invalid_argument);
    // A row count near INT64_MAX with an empty column range: rows + 1 is computed without overflow.
    auto many_rows =
        tensor_data::sparse_csr(std::vector<float>{}, std::numeric_limits<std::int64_t>::max(), 0, {0}, {});
    CHECK_THROWS_WITH_AS(many_rows.validate("m"),
                         "m: sparse_crow_indices has 1 entries, expected rows + 1 = 9223372036854775808",
                         tinker::invalid_argument);

    const std::vector<std::int32_t> tokens{5, 6};
    auto from_tokens = tensor_data::from_span(std::span<const std::int32_t>(tokens));
    CHECK(from_tokens.type() == dtype::int64);
    CHECK(from_tokens.int64s()[1] == 6);
    CHECK_THROWS_AS((void)from_tokens.floats(), tinker::invalid_argument);
    // Moving a vector in does not copy it.
    std::vector<float> big(1000, 1.0f);
    const float* data = big.data();
    tensor_data moved(std::move(big));
    CHECK(moved.floats().data() == data);
  }

  TEST_CASE("model_input: lengths, appends, text extraction") {
    auto m = model_input::from_ints({1, 2});
    m.append_int(3);
    CHECK(m.chunks.size() == 1);
    CHECK(m.to_ints() == std::vector<token_id>{1, 2, 3});
    m.append(image_chunk{"img", image_format::png, 5});
    m.append_int(4);
    CHECK(m.chunks.size() == 3);
    CHECK(m.length() == 9);
    CHECK_THROWS_AS(m.to_ints(), tinker::invalid_argument);
    m.append(image_asset_pointer_chunk{image_format::png, "x", std::nullopt});
    CHECK_THROWS_WITH_AS(m.length(), "model_input: the length of an image chunk is unknown without expected_tokens",
                         tinker::invalid_argument);
    // dmel: [254 constant marker] dtype ndim dims...; length is dim 0 (LEB128).
    CHECK(dmel_chunk{std::string("\x02\x02\x96\x01\x08", 5)}.length() == 150);
    CHECK(dmel_chunk{std::string("\xfe\x01\x01\x07", 4)}.length() == 7);
    CHECK_THROWS_AS(dmel_chunk{std::string("\x09\x01\x01", 3)}.length(), tinker::invalid_argument);
    CHECK_THROWS_AS(dmel_chunk{std::string("\x01\x01", 2)}.length(), tinker::invalid_argument);
  }

  TEST_CASE("topk_logprobs: sentinel rows and trimming") {
    const float s = topk_logprobs::sentinel_logprob;
    topk_logprobs t{3, 2, {0, 0, 0, 5, 6, 0}, {s, s, s, -0.1f, -0.2f, s}};
    CHECK_FALSE(t.row_present(0));
    CHECK(t.row_size(0) == 0);
    CHECK(t.row_present(1));
    CHECK(t.row_size(1) == 2);
    CHECK(t.row(1) == std::vector<std::pair<token_id, float>>{{5, -0.1f}, {6, -0.2f}});
  }

  TEST_CASE("timestamps: ISO-8601 in all the forms servers write") {
    using namespace std::chrono;
    const auto t = parse_timestamp("2026-11-22T10:11:12.345678Z");
    REQUIRE(t);
    CHECK(format_timestamp(*t) == "2026-11-22T10:11:12.345678Z");
    CHECK(parse_timestamp("2026-11-22T12:11:12.345678+02:00") == t);
    CHECK(parse_timestamp("2026-11-22 10:11:12.345678") == t);
    CHECK(parse_timestamp("2026-11-22T10:11:12.3456789123Z") == t);
    CHECK(parse_timestamp("2026-11-22T10:11Z") == *t - seconds(12) - microseconds(345678));
    CHECK(parse_timestamp("2026-11-22T05:41:12.345678-0430") == t);
    CHECK_FALSE(parse_timestamp("2026-13-01T00:00:00Z"));
    CHECK_FALSE(parse_timestamp("2026-11-22"));
    CHECK_FALSE(parse_timestamp("2026-11-22T10:11:12Zjunk"));
    CHECK_FALSE(parse_timestamp(""));
  }

  TEST_CASE("tinker paths: run ids with colons, both kinds, logits://, clear errors") {
    const auto p = tinker_path::parse("tinker://b89f6676-49c4:train:0/weights/final");
    CHECK(p.training_run_id == "b89f6676-49c4:train:0");
    CHECK(p.kind == checkpoint_kind::weights);
    CHECK(p.name == "final");
    CHECK(p.checkpoint_id() == "weights/final");
    CHECK(p.type() == checkpoint_type::training);
    CHECK(p.str() == "tinker://b89f6676-49c4:train:0/weights/final");
    const auto s = tinker_path::parse("tinker://S:train:1/sampler_weights/step-10");
    CHECK(s.kind == checkpoint_kind::sampler_weights);
    CHECK(s.type() == checkpoint_type::sampler);
    const auto l = tinker_path::parse("logits://S:train:1/sampler_weights/x");
    CHECK(l.scheme == "logits");
    CHECK(l.str() == "logits://S:train:1/sampler_weights/x");
    CHECK(tinker_path::make("S:train:0", checkpoint_kind::weights, "a").str() == "tinker://S:train:0/weights/a");

    auto error = [](std::string_view s) {
      try {
        (void)tinker_path::parse(s);
      } catch (const tinker::invalid_argument& e) {
        return std::string(e.what());
      }
      return std::string("no error");
    };
    CHECK(error("s3://bucket/weights/a") ==
          "invalid tinker path 's3://bucket/weights/a': unsupported scheme 's3://': expected tinker:// (or logits://)");
    CHECK(error("S:train:0/weights/a").find("missing scheme") != std::string::npos);
    CHECK(error("tinker://S:train:0/weights").find("expected three parts") != std::string::npos);
    CHECK(error("tinker://S:train:0/checkpoints/a").find("unknown checkpoint kind 'checkpoints'") != std::string::npos);
    CHECK(error("tinker://S:train:0/weights/a/b").find("cannot contain '/'") != std::string::npos);
    CHECK(error("tinker:///weights/a").find("empty training run id") != std::string::npos);
    CHECK(error("tinker://S:train:0/weights/..").find("'.' or '..'") != std::string::npos);
    CHECK(error("tinker://S:train:0/weights/").find("empty checkpoint name") != std::string::npos);
    CHECK_THROWS_AS(tinker_path::make("S:train:0", checkpoint_kind::weights, "../x"), tinker::invalid_argument);
    std::string why;
    CHECK_FALSE(tinker_path::try_parse("nope", &why));
    CHECK_FALSE(why.empty());

    // external_weights (docs/protocol.md §11.2): parses, formats, and is listed in the kind error.
    const auto x = tinker_path::parse("tinker://S:train:0/external_weights/hf-export");
    CHECK(x.kind == checkpoint_kind::external_weights);
    CHECK(x.type() == checkpoint_type::external);
    CHECK(x.checkpoint_id() == "external_weights/hf-export");
    CHECK(x.str() == "tinker://S:train:0/external_weights/hf-export");
    CHECK(tinker_path::make("S:train:0", checkpoint_kind::external_weights, "e").str() ==
          "tinker://S:train:0/external_weights/e");
    CHECK(error("tinker://S:train:0/checkpoints/a") ==
          "invalid tinker path 'tinker://S:train:0/checkpoints/a': unknown checkpoint kind 'checkpoints': "
          "expected weights, sampler_weights or external_weights");
    CHECK(error("S:train:0/weights/a").find("external_weights") != std::string::npos);

    // Characters that break the request URL the client builds, in names and in run ids.
    for (const char* bad :
         {"a?b", "a#b", "a%2Fb", " ab", "ab ", "a\\b", "a\x7f", "a\rb", "a\nb", "a\tb", "\x01", "a\xc2\x85",
          "a\xff"
          "b",
          "a\xc3", "\xc0\xaf", "\xed\xa0\x80"}) {
      CAPTURE(tinker_path::printable(bad));
      CHECK(tinker_path::name_problem(bad).has_value());
      CHECK(tinker_path::run_id_problem(bad).has_value());
      CHECK_FALSE(tinker_path::try_parse(std::string("tinker://S:train:0/weights/") + bad));
      CHECK_FALSE(tinker_path::try_parse(std::string("tinker://") + bad + "/weights/a"));
      CHECK_THROWS_AS(tinker_path::make(bad, checkpoint_kind::weights, "a"), tinker::invalid_argument);
      CHECK_THROWS_AS(tinker_path::make("S:train:0", checkpoint_kind::weights, bad), tinker::invalid_argument);
    }
    CHECK(error("tinker://S:train:0/weights/a?b") ==
          "invalid tinker path 'tinker://S:train:0/weights/a?b': checkpoint name cannot contain '?' (at byte 1): "
          "run ids and names travel in request URLs and file names");
    CHECK(error("tinker://S:train:0/weights/ a").find("checkpoint name cannot begin or end with a space") !=
          std::string::npos);
    CHECK(error("tinker://S:train:0/weights/a\xff"
                "b")
              .find("checkpoint name is not valid UTF-8 (at byte 1)") != std::string::npos);
    CHECK(error("tinker://S:train:0/weights/a\xff"
                "b")
              .find("'tinker://S:train:0/weights/a\\xffb'") != std::string::npos);
    CHECK(error("tinker://S:train:0/weights/ab\xc2\x85").find("control character 0x85 (at byte 2)") !=
          std::string::npos);
    CHECK(error("tinker://S:train:0/weights/50%").find("cannot contain '%' (at byte 2)") != std::string::npos);
    CHECK(error("tinker://S#x/weights/a").find("training run id cannot contain '#' (at byte 1)") != std::string::npos);
    // CR/LF are named and escaped in the message, so a hostile path cannot forge log lines.
    const auto crlf = error("tinker://S:train:0/weights/a\r\nINFO forged");
    CHECK(crlf.find("control character 0x0d (at byte 1)") != std::string::npos);
    CHECK(crlf.find("a\\x0d\\x0aINFO forged") != std::string::npos);
    CHECK(crlf.find('\n') == std::string::npos);
    CHECK(crlf.find('\r') == std::string::npos);
    CHECK(error("tinker://S:train:0/weights/a\x7f").find("control character 0x7f") != std::string::npos);
    // '.' and '..' as run ids, too.
    CHECK(error("tinker://../weights/a").find("training run id cannot be '.' or '..'") != std::string::npos);
    CHECK(error("tinker://./weights/a").find("training run id cannot be '.' or '..'") != std::string::npos);
    CHECK(error("tinker://S:train:0/weights/.").find("checkpoint name cannot be '.' or '..'") != std::string::npos);
    CHECK_THROWS_WITH_AS(tinker_path::make("..", checkpoint_kind::weights, "a"),
                         "invalid training run id '..': training run id cannot be '.' or '..'",
                         tinker::invalid_argument);
    CHECK_THROWS_WITH_AS(tinker_path::make("", checkpoint_kind::weights, "a"),
                         "invalid training run id '': empty training run id", tinker::invalid_argument);
    // Dots, dashes, underscores, colons, '@', '+', inner spaces, what a URL must escape and UTF-8
    // letters stay valid (clients percent-encode them).
    CHECK(tinker_path::parse("tinker://S:train:0/weights/step-1.final_v2+x@y").name == "step-1.final_v2+x@y");
    CHECK(tinker_path::parse("tinker://S:train:0/weights/step 10 | {x} \"q\" <a>^`").name ==
          "step 10 | {x} \"q\" <a>^`");
    CHECK(tinker_path::parse("tinker://S:train:0/weights/\xe6\x97\xa5\xe6\x9c\xac").name == "\xe6\x97\xa5\xe6\x9c\xac");
    CHECK(tinker_path::parse("tinker://S:train:0/weights/caf\xc3\xa9").name == "caf\xc3\xa9");
    CHECK(tinker_path::parse("tinker://...:x/weights/...").name == "...");

    // Length limits: names up to 128 bytes (a file name on any common filesystem), run ids up to 256.
    const std::string name128(tinker_path::max_name_size, 'n');
    const std::string run256(tinker_path::max_run_id_size, 'r');
    CHECK(tinker_path::max_name_size == 128);
    CHECK(tinker_path::max_run_id_size == 256);
    CHECK(tinker_path::parse("tinker://" + run256 + "/weights/" + name128).name == name128);
    CHECK(error("tinker://S/weights/" + name128 + "n")
              .find("checkpoint name is 129 bytes long, more than the limit of 128") != std::string::npos);
    CHECK(error("tinker://" + run256 + "r/weights/a")
              .find("training run id is 257 bytes long, more than the limit of 256") != std::string::npos);
    CHECK_THROWS_AS(tinker_path::make(run256 + "r", checkpoint_kind::weights, "a"), tinker::invalid_argument);
    CHECK_THROWS_AS(tinker_path::make("S", checkpoint_kind::weights, name128 + "n"), tinker::invalid_argument);
  }

  TEST_CASE("datum::next_token: the input is all tokens but the last and the targets all but the first (validated)") {
    const std::vector<token_id> tokens{256, 'h', 'i', '!'};
    const auto d = datum::next_token(tokens);
    CHECK(d.model_input.to_ints() == std::vector<token_id>{256, 'h', 'i'});
    CHECK(d.loss_fn_inputs.size() == 2);
    CHECK(d.loss_fn_inputs.at("target_tokens") == tensor_data(std::vector<std::int64_t>{'h', 'i', '!'}));
    CHECK(d.loss_fn_inputs.at("weights") == tensor_data(std::vector<float>{1, 1, 1}));

    // A prompt masked out by its weights.
    const auto masked = datum::next_token(tokens, std::vector<float>{0, 0, 1});
    CHECK(masked.loss_fn_inputs.at("weights") == tensor_data(std::vector<float>{0, 0, 1}));
    CHECK(masked.model_input == d.model_input);

    CHECK_THROWS_WITH_AS(datum::next_token(std::vector<token_id>{256}),
                         "datum::next_token: tokens must hold at least 2 tokens, got 1", tinker::invalid_argument);
    CHECK_THROWS_WITH_AS(datum::next_token(std::vector<token_id>{}),
                         "datum::next_token: tokens must hold at least 2 tokens, got 0", tinker::invalid_argument);
    CHECK_THROWS_WITH_AS(datum::next_token(tokens, std::vector<float>{1, 1, 1, 1}),
                         "datum::next_token: weights must hold one weight per target (3), got 4",
                         tinker::invalid_argument);
    CHECK_THROWS_WITH_AS(datum::next_token(tokens, std::vector<float>{1, std::numeric_limits<float>::quiet_NaN(), 1}),
                         "datum::next_token: weights[1] is not finite", tinker::invalid_argument);
  }

  TEST_CASE("datum::from_sample: prompt targets masked and the sampler logprobs and advantage on the completion") {
    const auto prompt = model_input::from_ints(std::vector<token_id>{256, 'a', 'b'});
    const std::vector<token_id> completion{'c', 'd'};
    const std::vector<float> logprobs{-0.5f, -1.5f};
    const auto d = datum::from_sample(prompt, completion, logprobs, 0.75);
    // input = prompt + completion[:-1]; targets = prompt[1:] + completion
    CHECK(d.model_input.to_ints() == std::vector<token_id>{256, 'a', 'b', 'c'});
    CHECK(d.loss_fn_inputs.size() == 3);
    CHECK(d.loss_fn_inputs.at("target_tokens") == tensor_data(std::vector<std::int64_t>{'a', 'b', 'c', 'd'}));
    CHECK(d.loss_fn_inputs.at("logprobs") == tensor_data(std::vector<float>{0, 0, -0.5f, -1.5f}));
    CHECK(d.loss_fn_inputs.at("advantages") == tensor_data(std::vector<float>{0, 0, 0.75f, 0.75f}));

    // A one-token prompt (BOS) and a one-token completion: the input is the prompt alone.
    const auto bos = model_input::from_ints(std::vector<token_id>{256});
    const auto one = datum::from_sample(bos, std::vector<token_id>{'x'}, std::vector<float>{-2.0f}, -1.0);
    CHECK(one.model_input.to_ints() == std::vector<token_id>{256});
    CHECK(one.loss_fn_inputs.at("target_tokens") == tensor_data(std::vector<std::int64_t>{'x'}));
    CHECK(one.loss_fn_inputs.at("advantages") == tensor_data(std::vector<float>{-1.0f}));

    // From a sampled sequence: its own logprobs.
    sampled_sequence seq;
    seq.tokens = completion;
    seq.logprobs = logprobs;
    CHECK(datum::from_sample(prompt, seq, 0.75) == d);
    seq.logprobs.reset();
    CHECK_THROWS_WITH_AS(datum::from_sample(prompt, seq, 0.75),
                         "datum::from_sample: the sampled sequence carries no logprobs", tinker::invalid_argument);

    CHECK_THROWS_WITH_AS(datum::from_sample(model_input(), completion, logprobs, 1.0),
                         "datum::from_sample: the prompt is empty", tinker::invalid_argument);
    CHECK_THROWS_WITH_AS(datum::from_sample(prompt, std::vector<token_id>{}, std::vector<float>{}, 1.0),
                         "datum::from_sample: the completion is empty", tinker::invalid_argument);
    CHECK_THROWS_WITH_AS(datum::from_sample(prompt, completion, std::vector<float>{-0.5f}, 1.0),
                         "datum::from_sample: logprobs must hold one logprob per completion token (2), got 1",
                         tinker::invalid_argument);
    CHECK_THROWS_WITH_AS(datum::from_sample(prompt, completion, logprobs, std::numeric_limits<double>::infinity()),
                         "datum::from_sample: advantage is not finite (inf)", tinker::invalid_argument);
    CHECK_THROWS_WITH_AS(
        datum::from_sample(prompt, completion, std::vector<float>{-0.5f, std::numeric_limits<float>::quiet_NaN()}, 1.0),
        "datum::from_sample: logprobs[1] is not finite", tinker::invalid_argument);
  }

}  // TEST_SUITE
