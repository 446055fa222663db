// Protocol value types: tensors, model inputs, timestamps, tinker paths.
#include <tinker/tinker_path.hpp>
#include <tinker/types.hpp>

#include <doctest/doctest.h>

using namespace tinker;

TEST_SUITE("types") {

TEST_CASE("tensor_data: dense and CSR forms, validation, conversions") {
  tensor_data t(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(t.type() == dtype::float32);
  CHECK(t.element_count() == 6);
  CHECK_NOTHROW(t.validate());
  t.shape = std::vector<std::int64_t>{4, 2};
  CHECK_THROWS_WITH_AS(t.validate("weights"), "weights: shape holds 8 elements but 6 values were given", tinker::invalid_argument);

  auto s = tensor_data::sparse_csr(std::vector<std::int64_t>{7, 8, 9}, 2, 4, {0, 2, 3}, {1, 3, 0});
  CHECK(s.is_sparse());
  CHECK(s.to_dense<std::int64_t>() == std::vector<std::int64_t>{0, 7, 0, 8, 9, 0, 0, 0});
  CHECK(s.to_dense<float>() == std::vector<float>{0, 7, 0, 8, 9, 0, 0, 0});
  auto bad = s;
  bad.sparse_col_indices = std::vector<std::int64_t>{1, 4, 0};
  CHECK_THROWS_WITH_AS(bad.validate("mask"), "mask: sparse column index 4 out of range [0, 4)", tinker::invalid_argument);
  bad = s;
  bad.sparse_crow_indices = std::vector<std::int64_t>{0, 3, 2};
  CHECK_THROWS_AS(bad.validate(), tinker::invalid_argument);

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
  CHECK(error("s3://bucket/weights/a") == "invalid tinker path 's3://bucket/weights/a': unsupported scheme 's3://': expected tinker:// (or logits://)");
  CHECK(error("S:train:0/weights/a").find("missing scheme") != std::string::npos);
  CHECK(error("tinker://S:train:0/weights") .find("expected three parts") != std::string::npos);
  CHECK(error("tinker://S:train:0/checkpoints/a").find("unknown checkpoint kind 'checkpoints'") != std::string::npos);
  CHECK(error("tinker://S:train:0/weights/a/b").find("cannot contain '/'") != std::string::npos);
  CHECK(error("tinker:///weights/a").find("empty training run id") != std::string::npos);
  CHECK(error("tinker://S:train:0/weights/..").find("'.' or '..'") != std::string::npos);
  CHECK(error("tinker://S:train:0/weights/").find("empty checkpoint name") != std::string::npos);
  CHECK_THROWS_AS(tinker_path::make("S:train:0", checkpoint_kind::weights, "../x"), tinker::invalid_argument);
  std::string why;
  CHECK_FALSE(tinker_path::try_parse("nope", &why));
  CHECK_FALSE(why.empty());
}

}  // TEST_SUITE
