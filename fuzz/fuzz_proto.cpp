// Protobuf decoders: ForwardBackwardOutput and SampleResponse (answers the client reads) and
// ForwardBackwardRequest (what the engine reads). The first input byte picks the message.
//
// A decoded message is encoded again: decoding that must give the same bytes once more
// (byte equality, not ==, so that NaN payloads compare).
#include "fuzz_common.hpp"

#include <tinker/proto.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

namespace {

using namespace tinker;

template <class Decode>
void decode_and_round_trip(std::string_view bytes, Decode decode) {
  decltype(decode(bytes)) value;
  if (!fuzz::expect_typed_errors([&] { value = decode(bytes); })) return;
  std::string once;
  // What protobuf carries but our encoder refuses (a string that is not UTF-8, say) is a typed
  // refusal; the round trip below needs an encoding.
  if (!fuzz::expect_typed_errors([&] { once = proto::encode(value); })) return;
  std::string twice;
  if (!fuzz::expect_typed_errors([&] { twice = proto::encode(decode(once)); }))
    fuzz::fail("our own encoding does not decode");
  if (twice != once) fuzz::fail("decode(encode(decode(x))) differs from decode(x)");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tinker::fuzz::input in{data, size};
  const auto which = in.take_byte() % 3;
  const auto bytes = in.rest();
  switch (which) {
    case 0:
      decode_and_round_trip(bytes, [](std::string_view b) { return proto::decode_forward_backward_output(b); });
      break;
    case 1: decode_and_round_trip(bytes, [](std::string_view b) { return proto::decode_sample_response(b); }); break;
    case 2:
      decode_and_round_trip(bytes, [](std::string_view b) { return proto::decode_forward_backward_request(b); });
      break;
  }
  return 0;
}
