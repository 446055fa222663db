// Where the client's log lines go: a user-settable sink. Silent by default except warnings and
// errors (to stderr). Lines never contain the API key.
#pragma once

#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

namespace tinker {

enum class log_level { debug, info, warning, error };

constexpr std::string_view to_string(log_level l) noexcept {
  switch (l) {
    case log_level::debug: return "debug";
    case log_level::info: return "info";
    case log_level::warning: return "warning";
    case log_level::error: return "error";
  }
  return "info";
}

using log_sink = std::function<void(log_level, std::string_view)>;

/// The default sink: warnings and errors to stderr, prefixed with "tinker: ".
inline log_sink stderr_log_sink(log_level min_level = log_level::warning) {
  return [min_level](log_level level, std::string_view line) {
    if (level < min_level) return;
    std::fprintf(stderr, "tinker: %.*s: %.*s\n", static_cast<int>(to_string(level).size()), to_string(level).data(),
                 static_cast<int>(line.size()), line.data());
  };
}

}  // namespace tinker
