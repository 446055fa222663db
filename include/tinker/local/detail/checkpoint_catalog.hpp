// Checkpoints and their storage: the index of every checkpoint the engine holds (by run, kind and
// name), who may read or change each (its owner; anyone, read-only, once published), when each
// expires (TTL), and their files in the data directory (through store).
#pragma once

#include <tinker/local/detail/http_error.hpp>
#include <tinker/local/detail/records.hpp>
#include <tinker/local/detail/store.hpp>
#include <tinker/local/model/checkpoint.hpp>
#include <tinker/tinker_path.hpp>
#include <tinker/types.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tinker::local::detail {

/// The longest TTL a checkpoint may have (10 years), in seconds.
inline constexpr std::int64_t max_ttl_seconds = max_checkpoint_ttl_seconds;

/// 400 unless `ttl` (seconds) is absent or in [1, 10 years]. `what` names the field.
inline void check_ttl(const std::optional<std::int64_t>& ttl, std::string_view what = "ttl_seconds") {
  if (!ttl) return;
  if (*ttl <= 0) throw http_error(400, std::string(what) + " must be positive, got " + std::to_string(*ttl));
  if (*ttl > max_ttl_seconds)
    throw http_error(400, std::string(what) + " must be at most 10 years (" + std::to_string(max_ttl_seconds) +
                              " s), got " + std::to_string(*ttl));
}

/// A checkpoint's files as the model reads them.
inline checkpoint_files to_checkpoint_files(std::vector<named_file> files) {
  checkpoint_files out;
  for (auto& [name, contents] : files) {
    if (name == "adapter_config.json")
      out.adapter_config_json = std::move(contents);
    else if (name == "adapter_model.safetensors")
      out.adapter_model_safetensors = std::move(contents);
    else if (name == "optimizer.safetensors")
      out.optimizer_safetensors = std::move(contents);
  }
  return out;
}

/// A model's exported checkpoint as the files the store writes.
inline std::vector<named_file> to_named_files(const checkpoint_files& f) {
  std::vector<named_file> files{{"adapter_config.json", f.adapter_config_json},
                                {"adapter_model.safetensors", f.adapter_model_safetensors}};
  if (f.optimizer_safetensors) files.emplace_back("optimizer.safetensors", *f.optimizer_safetensors);
  return files;
}

class checkpoint_catalog {
public:
  explicit checkpoint_catalog(store& s) : store_(s) {}

  /// The index key of a checkpoint: "<run>/<kind>/<name>".
  static std::string key(const std::string& run_id, checkpoint_kind kind, const std::string& name) {
    return run_id + "/" + std::string(to_string(kind)) + "/" + name;
  }
  static std::string key(const tinker_path& p) { return key(p.training_run_id, p.kind, p.name); }

  /// Adds (or replaces) the record of a checkpoint whose files are in place.
  void add(checkpoint_record c) {
    note_expiry(c);
    auto k = key(c.run_id, c.kind, c.name);
    checkpoints_.insert_or_assign(std::move(k), std::move(c));
  }

  const checkpoint_record* find(const tinker_path& p) const {
    auto it = checkpoints_.find(key(p));
    return it == checkpoints_.end() ? nullptr : &it->second;
  }
  bool contains(const tinker_path& p) const { return find(p) != nullptr; }

  /// The checkpoint at `path` if `tenant` may read it (owner, or published), else 404.
  const checkpoint_record& readable(const std::string& tenant, const tinker_path& path) const {
    const auto* c = find(path);
    if (!c || (c->owner != tenant && !c->is_public)) throw http_error(404, "checkpoint " + path.str() + " not found");
    return *c;
  }

  /// The checkpoint at `path` if `tenant` owns it (403 for someone else's published one, 404 otherwise).
  checkpoint_record& owned(const std::string& tenant, const tinker_path& path) {
    auto it = checkpoints_.find(key(path));
    if (it == checkpoints_.end() || (it->second.owner != tenant && !it->second.is_public))
      throw http_error(404, "checkpoint " + path.str() + " not found");
    if (it->second.owner != tenant)
      throw http_error(403, "checkpoint " + path.str() + " belongs to someone else; it is read-only");
    return it->second;
  }

  /// Publishes or unpublishes `c` (persisted). Returns whether that changed anything.
  bool set_public(checkpoint_record& c, bool is_public) {
    if (c.is_public == is_public) return false;
    c.is_public = is_public;
    store_.save(c);
    return true;
  }

  /// Sets (or, with nullopt, removes) `c`'s expiry (persisted).
  void set_expiry(checkpoint_record& c, std::optional<timestamp> expires_at) {
    c.expires_at = expires_at;
    note_expiry(c);
    store_.save(c);
  }

  /// Deletes a checkpoint: its files, then its record.
  void remove(const checkpoint_record& c) {
    store_.remove(c);
    checkpoints_.erase(key(c.run_id, c.kind, c.name));
  }

  /// The checkpoints whose TTL has run out by `now` (still in the catalog: the caller removes
  /// them). Cheap when none is due: the earliest expiry is kept, so this runs before every request.
  std::vector<checkpoint_record> expired_by(std::chrono::system_clock::time_point now) {
    if (!next_expiry_ || static_cast<std::chrono::system_clock::time_point>(*next_expiry_) > now) return {};
    std::vector<checkpoint_record> dead;
    next_expiry_.reset();
    for (const auto& [k, c] : checkpoints_) {
      if (!c.expires_at) continue;
      if (*c.expires_at <= now)
        dead.push_back(c);
      else
        note_expiry(c);
    }
    return dead;
  }

  /// A checkpoint's files (the optimizer state only `with_optimizer`): 400 when a load asks for
  /// optimizer state the checkpoint lacks, 500 when a file that must be there is not. Reads files
  /// only, so it may run on the compute pool.
  std::vector<named_file> files(const checkpoint_record& c, bool with_optimizer) const {
    std::vector<named_file> out;
    for (const char* name : {"adapter_config.json", "adapter_model.safetensors", "optimizer.safetensors"}) {
      if (!with_optimizer && std::string_view(name) == "optimizer.safetensors") continue;
      auto contents = store_.read_checkpoint_file(c, name);
      if (!contents) {
        if (std::string_view(name) == "optimizer.safetensors")
          throw http_error(400, "checkpoint " + c.path().str() + " has no optimizer state");
        throw http_error(500, "checkpoint " + c.path().str() + " is missing " + name);
      }
      out.emplace_back(name, std::move(*contents));
    }
    return out;
  }

  /// Whether run `run_id` has a published checkpoint.
  bool has_public(const std::string& run_id) const {
    for (const auto& [k, c] : checkpoints_)
      if (c.run_id == run_id && c.is_public) return true;
    return false;
  }

  /// The newest checkpoint of `kind` of run `run_id`.
  std::optional<checkpoint> latest(const std::string& run_id, checkpoint_kind kind) const {
    std::optional<checkpoint> out;
    for (const auto& [k, c] : checkpoints_)
      if (c.run_id == run_id && c.kind == kind && (!out || out->time < c.time)) out = c.to_checkpoint();
    return out;
  }

  /// Every checkpoint, by key.
  const std::map<std::string, checkpoint_record>& all() const noexcept { return checkpoints_; }

  /// When the next checkpoint expires (at or before the earliest expires_at).
  const std::optional<timestamp>& next_expiry() const noexcept { return next_expiry_; }

private:
  void note_expiry(const checkpoint_record& c) {
    if (c.expires_at && (!next_expiry_ || *c.expires_at < *next_expiry_)) next_expiry_ = c.expires_at;
  }

  store& store_;
  std::map<std::string, checkpoint_record> checkpoints_;  ///< by key()
  std::optional<timestamp> next_expiry_;                  ///< at or before the earliest expires_at
};

}  // namespace tinker::local::detail
