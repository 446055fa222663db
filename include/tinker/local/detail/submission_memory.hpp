// Idempotency: a client that did not see an answer sends the same request again, under the same
// key (a seq_id, a model_seq_id). The engine must answer it with the request id of the first
// submission instead of running it twice, and must refuse a different body under a used key.
#pragma once

#include <tinker/local/detail/http_error.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace tinker::local::detail {

/// Remembers which request a (key, body digest) pair was, so a resubmission gets the original
/// request id back instead of running twice.
class submission_memory {
public:
  /// nullopt = new; the request id = an identical resubmission; throws 400 for a different body
  /// (`what` names the key in the message, e.g. "seq_id").
  std::optional<std::string> check(std::int64_t key, const std::string& digest, std::string_view what) const {
    auto it = by_key_.find(key);
    if (it == by_key_.end()) return std::nullopt;
    if (it->second.digest != digest)
      throw http_error(400, std::string(what) + " " + std::to_string(key) + " was already used by a different request");
    return it->second.request_id;
  }

  bool contains(std::int64_t key) const { return by_key_.contains(key); }
  std::size_t size() const noexcept { return by_key_.size(); }

  void remember(std::int64_t key, std::string digest, std::string request_id) {
    by_key_[key] = entry{std::move(digest), std::move(request_id)};
  }

  /// Keeps memory bounded: forgets keys below `floor`.
  void forget_below(std::int64_t floor) { by_key_.erase(by_key_.begin(), by_key_.lower_bound(floor)); }

  /// Keeps memory bounded when keys do not grow in order: forgets the lowest keys beyond `limit`.
  void forget_oldest_beyond(std::size_t limit) {
    while (by_key_.size() > limit) by_key_.erase(by_key_.begin());
  }

private:
  struct entry {
    std::string digest;
    std::string request_id;
  };
  std::map<std::int64_t, entry> by_key_;
};

}  // namespace tinker::local::detail
