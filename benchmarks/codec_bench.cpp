// Codec hot paths against memcpy of the same bytes, in one run:
//   - encoding a forward_backward batch (protobuf), decoding its output
//   - decoding sample results (protobuf), and the legacy JSON forms for comparison
// Prints one JSON line per measurement; `ratio_vs_memcpy` (1.0 = as fast as memcpy) is the goal.
// `--quick` runs tiny sizes once (a smoke test that the benchmark still builds and runs).
#include "bench_util.hpp"

#include <tinker/json.hpp>
#include <tinker/proto.hpp>

#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace tinker;

namespace {

forward_backward_request make_batch(int datums, int tokens) {
  std::mt19937 rng(1);
  forward_backward_request req;
  req.model_id = "S:train:0";
  req.seq_id = 1;
  req.forward_backward_input.loss_fn = loss_fn_type::cross_entropy;
  for (int d = 0; d < datums; ++d) {
    std::vector<token_id> input(static_cast<std::size_t>(tokens));
    std::vector<std::int64_t> targets(static_cast<std::size_t>(tokens));
    for (int i = 0; i < tokens; ++i) input[static_cast<std::size_t>(i)] = static_cast<token_id>(rng() % 150000);
    for (int i = 0; i < tokens; ++i) targets[static_cast<std::size_t>(i)] = rng() % 150000;
    datum x;
    x.model_input = model_input::from_ints(std::move(input));
    x.loss_fn_inputs.emplace("target_tokens", tensor_data(std::move(targets)));
    x.loss_fn_inputs.emplace("weights", tensor_data(std::vector<float>(static_cast<std::size_t>(tokens), 1.0f)));
    req.forward_backward_input.data.push_back(std::move(x));
  }
  return req;
}

forward_backward_output make_output(int datums, int tokens) {
  forward_backward_output out;
  out.loss_fn_output_type = "ArrayRecord";
  out.metrics["loss:sum"] = 1.0;
  for (int d = 0; d < datums; ++d) {
    loss_fn_output o;
    o.emplace("logprobs", tensor_data(std::vector<float>(static_cast<std::size_t>(tokens), -1.5f)));
    o.emplace("elementwise_loss", tensor_data(std::vector<float>(static_cast<std::size_t>(tokens), 1.5f)));
    out.loss_fn_outputs.push_back(std::move(o));
  }
  return out;
}

sample_response make_samples(int sequences, int tokens) {
  sample_response resp;
  for (int s = 0; s < sequences; ++s) {
    sampled_sequence seq;
    seq.stop_reason = stop_reason::length;
    seq.tokens.assign(static_cast<std::size_t>(tokens), 42);
    seq.logprobs = std::vector<float>(static_cast<std::size_t>(tokens), -0.25f);
    resp.sequences.push_back(std::move(seq));
  }
  return resp;
}

double memcpy_seconds(std::size_t bytes, int iterations) {
  std::string src(bytes, 'x'), dst(bytes, '\0');
  return bench::best_seconds(
      [&] {
        std::memcpy(dst.data(), src.data(), bytes);
        bench::keep(dst);
      },
      iterations);
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  const int datums = quick ? 2 : 64, tokens = quick ? 16 : 2048, iterations = quick ? 1 : 20;

  const auto batch = make_batch(datums, tokens);
  const auto encoded = proto::encode(batch);
  bench::report("proto_encode_forward_backward_request", static_cast<double>(encoded.size()),
                bench::best_seconds([&] { bench::keep(proto::encode(batch)); }, iterations),
                memcpy_seconds(encoded.size(), iterations));
  bench::report("proto_decode_forward_backward_request", static_cast<double>(encoded.size()),
                bench::best_seconds([&] { bench::keep(proto::decode_forward_backward_request(encoded)); }, iterations),
                memcpy_seconds(encoded.size(), iterations));

  const auto output = make_output(datums, tokens);
  const auto out_bytes = proto::encode(output);
  bench::report("proto_decode_forward_backward_output", static_cast<double>(out_bytes.size()),
                bench::best_seconds([&] { bench::keep(proto::decode_forward_backward_output(out_bytes)); }, iterations),
                memcpy_seconds(out_bytes.size(), iterations));

  const auto samples = make_samples(quick ? 4 : 1024, quick ? 8 : 256);
  const auto sample_bytes = proto::encode(samples);
  bench::report("proto_decode_sample_response", static_cast<double>(sample_bytes.size()),
                bench::best_seconds([&] { bench::keep(proto::decode_sample_response(sample_bytes)); }, iterations),
                memcpy_seconds(sample_bytes.size(), iterations));
  const auto sample_json = json::to_json(samples);
  bench::report("json_decode_sample_response", static_cast<double>(sample_json.size()),
                bench::best_seconds([&] { bench::keep(json::from_json<sample_response>(sample_json)); }, quick ? 1 : 3),
                memcpy_seconds(sample_json.size(), iterations));
  return 0;
}
