// What every fuzz target shares: the rule that a decoder may refuse its input only with one of
// the library's documented error types, and a check that aborts (libFuzzer then saves the input).
//
// A decoder that lets anything else escape (std::out_of_range, boost::system::system_error, a
// bare std::runtime_error) breaks the contract callers rely on: the client maps tinker_error and
// tinker::invalid_argument to its own errors and the engine to 400 answers, and treats anything
// else as an internal failure.
#pragma once

#include <tinker/error.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string_view>
#include <typeinfo>

namespace tinker::fuzz {

/// Aborts with a message: libFuzzer reports it as a crash and writes the reproducer.
[[noreturn]] inline void fail(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "fuzz check failed: %s%s%.*s\n", what, detail.empty() ? "" : ": ",
               static_cast<int>(detail.size()), detail.data());
  std::abort();
}

#define TINKER_FUZZ_CHECK(cond) \
  ((cond) ? (void)0 : ::tinker::fuzz::fail("TINKER_FUZZ_CHECK(" #cond ")", __FILE__ ":" TINKER_FUZZ_STR(__LINE__)))
#define TINKER_FUZZ_STR(x) TINKER_FUZZ_STR2(x)
#define TINKER_FUZZ_STR2(x) #x

/// Runs `decode`; the library's own errors are an accepted outcome (returns false), anything
/// else aborts. Returns true when `decode` returned normally.
template <class F>
bool expect_typed_errors(F&& decode) {
  try {
    decode();
    return true;
  } catch (const tinker::tinker_error&) {
    return false;
  } catch (const tinker::invalid_argument&) {
    return false;
  } catch (const std::exception& e) {
    fail(typeid(e).name(), e.what());
  } catch (...) {
    fail("an exception not derived from std::exception");
  }
}

/// Reads the fuzz input front to back: a selector byte, then the rest.
struct input {
  const std::uint8_t* data;
  std::size_t size;

  std::uint8_t take_byte() {
    if (size == 0) return 0;
    --size;
    return *data++;
  }
  std::string_view rest() const { return {reinterpret_cast<const char*>(data), size}; }
};

}  // namespace tinker::fuzz
