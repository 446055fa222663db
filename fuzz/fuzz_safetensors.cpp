// Checkpoint files the local engine reads back (saved by itself, or uploaded and downloaded by
// users): safetensors files, adapter_config.json, and the adapter and optimizer tensors checked
// against a model's layout. The first input byte picks the decoder.
//
// Input for selector 3 (a whole sampler checkpoint): two bytes of little-endian config length,
// the adapter_config.json, then adapter_model.safetensors.
#include "fuzz_common.hpp"

#include <tinker/local/model/base_model.hpp>
#include <tinker/local/model/checkpoint.hpp>
#include <tinker/local/model/detail/adapter_files.hpp>
#include <tinker/local/model/safetensors.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace {

using namespace tinker;
using namespace tinker::local;

const base_model& tiny_model() {
  static const auto model = base_model::create(default_base_models().front());
  return *model;
}

/// The layout of a rank-1 adapter on every target of the tiny model (the seeds' layout).
const detail::adapter_layout& tiny_layout() {
  static const auto layout = detail::adapter_layout::make(tiny_model().dims(), lora_config{1, 0, true, true, true});
  return layout;
}

void read_safetensors(std::string_view file) {
  fuzz::expect_typed_errors([&] {
    safetensors_reader r(file);
    for (const auto& t : r.tensors()) {
      TINKER_FUZZ_CHECK(t.data.size() == t.element_count * element_size(t.dtype));
      fuzz::expect_typed_errors([&] { (void)r.read_floats(t); });
    }
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tinker::fuzz::input in{data, size};
  const auto which = in.take_byte() % 5;
  const auto rest = in.rest();
  switch (which) {
    case 0: read_safetensors(rest); break;
    case 1: tinker::fuzz::expect_typed_errors([&] { (void)detail::read_adapter_config(rest); }); break;
    case 2: tinker::fuzz::expect_typed_errors([&] { (void)detail::read_adapter_tensors(rest, tiny_layout()); }); break;
    case 3: {
      const std::size_t n = in.take_byte() | std::size_t{in.take_byte()} << 8;
      const auto body = in.rest();
      checkpoint_files files;
      files.adapter_config_json = std::string(body.substr(0, n));
      files.adapter_model_safetensors = std::string(body.substr(std::min(n, body.size())));
      tinker::fuzz::expect_typed_errors([&] {
        const auto weights = load_lora_weights(files, tiny_model());
        for (const double p : weights->parameters()) TINKER_FUZZ_CHECK(std::isfinite(p));
      });
      break;
    }
    case 4: tinker::fuzz::expect_typed_errors([&] { (void)detail::read_optimizer(rest, tiny_layout()); }); break;
  }
  return 0;
}
