// Identifier generation for the local engine. Deterministic given the engine seed and the
// engine's epoch (a counter persisted in the data directory and bumped at every start), so ids
// never repeat across restarts and a run can be replayed.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace tinker::local::detail {

/// splitmix64: small, fast, and good enough to derive ids and seeds.
class id_generator {
public:
  id_generator(std::uint64_t seed, std::uint64_t epoch)
      : state_(seed ^ (epoch * 0x9e3779b97f4a7c15ull)), epoch_(epoch) {}

  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

  /// A UUID-shaped (version 4 layout) session id.
  std::string uuid() {
    const auto a = next(), b = next();
    char buf[40];
    std::snprintf(buf, sizeof buf, "%08x-%04x-4%03x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                  static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0xfff),
                  static_cast<unsigned>(0x8000 | ((b >> 48) & 0x3fff)),
                  static_cast<unsigned long long>(b & 0xffffffffffffull));
    return buf;
  }

  /// A future's request id: `req-<epoch>-<n>`. The epoch tells a poll for a future of an earlier
  /// engine run (answered 410 Gone, so clients re-submit samples) from an unknown id (404).
  std::string request_id() { return "req-" + std::to_string(epoch_) + "-" + std::to_string(++requests_); }

  std::uint64_t epoch() const noexcept { return epoch_; }

private:
  std::uint64_t state_;
  std::uint64_t epoch_;
  std::uint64_t requests_ = 0;
};

/// The epoch a request id was issued in, or 0 when it is not one of ours.
inline std::uint64_t request_id_epoch(const std::string& id) {
  if (id.rfind("req-", 0) != 0) return 0;
  const auto dash = id.find('-', 4);
  if (dash == std::string::npos) return 0;
  std::uint64_t epoch = 0;
  for (std::size_t i = 4; i < dash; ++i) {
    if (id[i] < '0' || id[i] > '9') return 0;
    epoch = epoch * 10 + static_cast<std::uint64_t>(id[i] - '0');
  }
  return epoch;
}

}  // namespace tinker::local::detail
