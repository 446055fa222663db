// JSON decoders of every protocol type (responses the client reads, requests the engine reads) and
// the retrieve_future envelope. The first input byte picks the type, the rest is the JSON text.
//
// Each decoded value is encoded again and decoded once more: the second encoding must equal the
// first (what we decode we can send back unchanged, and decoding is a function of the wire form).
#include "fuzz_common.hpp"
#include "json_types.hpp"

#include <tinker/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <tuple>
#include <variant>

namespace {

using namespace tinker;

/// Equal, except that doubles may differ in their last bits: Boost.JSON 1.81 parses numbers
/// imprecisely (1 ulp off for some 17-digit values; precise parsing came in 1.83), so the shortest
/// text we write for a double does not always read back as the same double.
bool same_up_to_rounding(const boost::json::value& a, const boost::json::value& b) {
  if (a.is_double() && b.is_double()) {
    const double x = a.get_double(), y = b.get_double();
    return x == y ||
           std::fabs(x - y) <= 4 * std::numeric_limits<double>::epsilon() * std::max(std::fabs(x), std::fabs(y));
  }
  if (a.kind() != b.kind()) return false;
  if (a.is_array()) {
    const auto &p = a.get_array(), &q = b.get_array();
    if (p.size() != q.size()) return false;
    for (std::size_t i = 0; i < p.size(); ++i)
      if (!same_up_to_rounding(p[i], q[i])) return false;
    return true;
  }
  if (a.is_object()) {
    const auto &p = a.get_object(), &q = b.get_object();
    if (p.size() != q.size()) return false;
    for (const auto& [key, value] : p) {
      const auto* other = q.if_contains(key);
      if (!other || !same_up_to_rounding(value, *other)) return false;
    }
    return true;
  }
  return a == b;
}

template <class T>
void decode_one(std::string_view text) {
  T value;
  if (!fuzz::expect_typed_errors([&] { value = json::from_json<T>(text); })) return;
  if constexpr (requires { json::to_json(value); }) {
    std::string once;
    // Encoding may refuse what the wire allowed (a number beyond double range reads as infinity,
    // which JSON cannot carry): that is a typed error, not a crash.
    if (!fuzz::expect_typed_errors([&] { once = json::to_json(value); })) return;
    std::string twice;
    const bool ok = fuzz::expect_typed_errors([&] { twice = json::to_json(json::from_json<T>(once)); });
    if (!ok) fuzz::fail("our own encoding does not decode", once);
    if (twice != once && !same_up_to_rounding(json::parse(once, "once"), json::parse(twice, "twice")))
      fuzz::fail("decode(encode(decode(x))) differs from decode(x)", once + " vs " + twice);
  }
}

/// The retrieve_future answer as the client reads it: classified, then a payload decoded as the
/// result types a future can carry.
void decode_envelope(std::string_view text) {
  fuzz::expect_typed_errors([&] {
    auto answer = json::classify_retrieve_answer(json::parse(text, "retrieve_future answer"));
    if (auto* payload = std::get_if<boost::json::value>(&answer)) {
      fuzz::expect_typed_errors([&] { (void)json::from_value<forward_backward_output>(*payload); });
      fuzz::expect_typed_errors([&] { (void)json::from_value<sample_response>(*payload); });
      fuzz::expect_typed_errors([&] { (void)json::from_value<optim_step_response>(*payload); });
      fuzz::expect_typed_errors([&] { (void)json::from_value<save_weights_response>(*payload); });
    }
  });
}

template <class... T>
void dispatch(std::size_t which, std::string_view text, tinker::fuzz::type_list<T...>) {
  using fn = void (*)(std::string_view);
  static constexpr fn table[] = {&decode_envelope, &decode_one<T>...};
  table[which % std::size(table)](text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tinker::fuzz::input in{data, size};
  const auto which = in.take_byte();
  dispatch(which, in.rest(), tinker::fuzz::json_types{});
  return 0;
}
