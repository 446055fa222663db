// tinker:// paths, as they arrive in server answers, user input and engine requests: parsing
// either succeeds or says why (try_parse) / throws tinker::invalid_argument (parse), and a parsed
// path prints back to text that parses to the same path.
#include "fuzz_common.hpp"

#include <tinker/tinker_path.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using tinker::tinker_path;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string error;
  const auto parsed = tinker_path::try_parse(text, &error);
  TINKER_FUZZ_CHECK(parsed.has_value() == error.empty());
  const bool threw = !tinker::fuzz::expect_typed_errors([&] { (void)tinker_path::parse(text); });
  TINKER_FUZZ_CHECK(threw != parsed.has_value());
  if (!parsed) return 0;
  const auto printed = parsed->str();
  const auto again = tinker_path::try_parse(printed);
  if (!again) tinker::fuzz::fail("a parsed path does not print to a valid one", printed);
  TINKER_FUZZ_CHECK(again->str() == printed);
  TINKER_FUZZ_CHECK(*again == *parsed);
  // make() validates the same rules as parsing (a path from a server can be rebuilt).
  if (parsed->scheme == "tinker")
    if (!tinker::fuzz::expect_typed_errors(
            [&] { (void)tinker_path::make(parsed->training_run_id, parsed->kind, parsed->name); }))
      tinker::fuzz::fail("make() refuses the parts of a parsed path", printed);
  return 0;
}
