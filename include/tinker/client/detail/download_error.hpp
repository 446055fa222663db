// The exception for a checkpoint archive that cannot be accepted: corrupt, truncated, too large,
// or holding an entry that extraction refuses to create. Public (namespace tinker); it lives here
// so that the detail headers of the download can throw it without including download.hpp.
#pragma once

#include <tinker/error.hpp>

#include <string>
#include <string_view>
#include <utility>

namespace tinker {

/// A downloaded archive was rejected. `entry()` is the offending entry's path as stored in the
/// archive (empty when the problem is the archive as a whole), `problem()` says why.
class archive_error : public api_error {
public:
  archive_error(std::string entry, std::string problem)
      : api_error(format(entry, problem)), entry_(std::move(entry)), problem_(std::move(problem)) {}

  const std::string& entry() const noexcept { return entry_; }
  const std::string& problem() const noexcept { return problem_; }

  /// An archive path fit for a message: hostile names may be huge or hold control characters.
  static std::string printable(std::string_view path) {
    constexpr std::size_t max = 300;
    std::string out;
    for (const char c : path.substr(0, max)) {
      const auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u == 0x7f) {
        static constexpr char hex[] = "0123456789abcdef";
        out += "\\x";
        out += hex[u >> 4];
        out += hex[u & 15];
      } else {
        out += c;
      }
    }
    if (path.size() > max) out += "...(" + std::to_string(path.size()) + " bytes)";
    return out;
  }

private:
  static std::string format(const std::string& entry, const std::string& problem) {
    if (entry.empty()) return "checkpoint archive rejected: " + problem;
    return "checkpoint archive rejected: entry '" + printable(entry) + "': " + problem;
  }

  std::string entry_;
  std::string problem_;
};

}  // namespace tinker
