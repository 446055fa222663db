// The local engine's data directory: metadata as small JSON files, checkpoint contents as the
// files a PEFT adapter ships with. Every write goes to a temporary file first and is renamed
// into place, so a crash never leaves a half-written record behind.
//
//   <root>/engine.json                         epoch counter and URL-signing secret
//   <root>/sessions/<session>.json
//   <root>/samplers/<sampler>.json
//   <root>/runs/<run>/run.json
//   <root>/runs/<run>/<weights|sampler_weights>/<name>/checkpoint.json + adapter files
//   <root>/runs/<run>/<kind>/<name>#tmp-<hex>  a checkpoint being written (renamed to <name>)
//   <root>/audit/<tenant>.jsonl                 audit log, one JSON entry a line (appended; rewritten
//                                              when it grows to twice what the engine keeps)
#pragma once

#include <tinker/json/serialize.hpp>
#include <tinker/local/detail/crypto.hpp>
#include <tinker/local/detail/records.hpp>

#include <boost/json.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace tinker::local::detail {

/// A named file's contents.
using named_file = std::pair<std::string, std::string>;

class store {
public:
  explicit store(std::filesystem::path root) : root_(std::move(root)) {
    for (auto dir : {"sessions", "samplers", "runs", "audit"}) std::filesystem::create_directories(root_ / dir);
    const auto meta = root_ / "engine.json";
    boost::json::object state;
    if (std::filesystem::exists(meta)) state = read_json(meta).as_object();
    epoch_ = (state.contains("epoch") ? static_cast<std::uint64_t>(state["epoch"].to_number<std::int64_t>()) : 0) + 1;
    secret_ = state.contains("secret") ? std::string(state["secret"].as_string()) : random_hex(32);
    write_json(meta, boost::json::object{{"epoch", epoch_}, {"secret", secret_}, {"format", 1}});
  }

  const std::filesystem::path& root() const noexcept { return root_; }
  /// This start's epoch (1 for a new directory, then 2, 3, ...).
  std::uint64_t epoch() const noexcept { return epoch_; }
  /// Secret for signing download URLs; stable across restarts so issued URLs stay valid.
  const std::string& secret() const noexcept { return secret_; }

  void save(const session_record& s) { write_json(root_ / "sessions" / (s.id + ".json"), to_json_value(s)); }
  void save(const sampler_record& s) { write_json(root_ / "samplers" / (s.id + ".json"), to_json_value(s)); }
  void save(const run_record& r) { write_json(run_dir(r.id) / "run.json", to_json_value(r)); }
  void save(const checkpoint_record& c) { write_json(checkpoint_dir(c) / "checkpoint.json", to_json_value(c)); }

  /// Writes a checkpoint's files and then its record into a scratch directory beside it, then
  /// renames that into place, so a crash mid-write never leaves a half checkpoint, nor loses the
  /// one an overwrite replaces. (rename(2) cannot replace a non-empty directory, so an existing
  /// checkpoint is first renamed aside, then removed; recover_checkpoint_dirs() undoes a crash
  /// between the two renames at the next start.) Returns the total size of the files.
  std::int64_t write_checkpoint(checkpoint_record c, const std::vector<named_file>& files) {
    const auto dir = checkpoint_dir(c);
    std::filesystem::create_directories(dir.parent_path());
    const auto scratch = scratch_dir(dir, "tmp");
    std::error_code ec;
    try {
      std::filesystem::create_directory(scratch);
      std::int64_t size = 0;
      for (const auto& [name, contents] : files) {
        write_file(scratch / name, contents);
        size += static_cast<std::int64_t>(contents.size());
      }
      c.size_bytes = size;
      write_json(scratch / "checkpoint.json", to_json_value(c));
      if (std::filesystem::exists(dir)) {
        const auto old = scratch_dir(dir, "old");
        std::filesystem::rename(dir, old);
        std::filesystem::rename(scratch, dir);
        std::filesystem::remove_all(old, ec);
      } else {
        std::filesystem::rename(scratch, dir);
      }
      return size;
    } catch (...) {
      std::filesystem::remove_all(scratch, ec);
      throw;
    }
  }

  /// Reads one file of a checkpoint; nullopt when absent.
  std::optional<std::string> read_checkpoint_file(const checkpoint_record& c, const std::string& name) const {
    const auto p = checkpoint_dir(c) / name;
    if (!std::filesystem::exists(p)) return std::nullopt;
    return read_file(p);
  }

  void remove(const checkpoint_record& c) {
    std::error_code ec;
    std::filesystem::remove_all(checkpoint_dir(c), ec);
  }

  /// Appends one line (a JSON audit entry, no newline) to `tenant`'s audit log. Best-effort: the
  /// log is a record, a failed append never fails the request that caused it.
  void append_audit(const std::string& tenant, const std::string& line) noexcept {
    try {
      std::ofstream out(root_ / "audit" / (tenant + ".jsonl"), std::ios::binary | std::ios::app);
      out << line << '\n';
    } catch (...) {
    }
  }

  /// Replaces `tenant`'s audit log with `lines` (atomically, like every other write).
  void rewrite_audit(const std::string& tenant, const std::vector<std::string>& lines) noexcept {
    try {
      std::string contents;
      for (const auto& l : lines) contents += l + "\n";
      write_file(root_ / "audit" / (tenant + ".jsonl"), contents);
    } catch (...) {
    }
  }

  /// Every tenant's audit log lines, oldest first (a torn last line included: the caller skips
  /// what it cannot read).
  std::map<std::string, std::vector<std::string>> load_audit() const {
    std::map<std::string, std::vector<std::string>> out;
    for (const auto& entry : std::filesystem::directory_iterator(root_ / "audit")) {
      if (entry.path().extension() != ".jsonl") continue;
      std::ifstream in(entry.path(), std::ios::binary);
      auto& lines = out[entry.path().stem().string()];
      for (std::string line; std::getline(in, line);)
        if (!line.empty()) lines.push_back(std::move(line));
    }
    return out;
  }

  std::vector<session_record> load_sessions() const {
    return load_all<session_record>(root_ / "sessions", session_from_json);
  }
  std::vector<sampler_record> load_samplers() const {
    return load_all<sampler_record>(root_ / "samplers", sampler_from_json);
  }

  /// Every run, each with its checkpoints. Unreadable records are skipped (and reported through `warn`).
  std::vector<std::pair<run_record, std::vector<checkpoint_record>>> load_runs(
      const std::function<void(const std::string&)>& warn = {}) const {
    std::vector<std::pair<run_record, std::vector<checkpoint_record>>> out;
    for (const auto& entry : std::filesystem::directory_iterator(root_ / "runs")) {
      try {
        auto run = run_from_json(read_json(entry.path() / "run.json"));
        std::vector<checkpoint_record> checkpoints;
        for (auto kind : {"weights", "sampler_weights"}) {
          const auto dir = entry.path() / kind;
          if (!std::filesystem::exists(dir)) continue;
          recover_checkpoint_dirs(dir);
          for (const auto& c : std::filesystem::directory_iterator(dir)) {
            if (is_scratch(c.path())) continue;
            if (!std::filesystem::exists(c.path() / "checkpoint.json")) continue;  // incomplete write
            checkpoints.push_back(checkpoint_from_json(read_json(c.path() / "checkpoint.json")));
          }
        }
        out.emplace_back(std::move(run), std::move(checkpoints));
      } catch (const std::exception& e) {
        if (warn) warn("skipping unreadable run " + entry.path().string() + ": " + e.what());
      }
    }
    return out;
  }

private:
  std::filesystem::path run_dir(const std::string& run_id) const {
    auto dir = root_ / "runs" / run_id;
    std::filesystem::create_directories(dir);
    return dir;
  }
  std::filesystem::path checkpoint_dir(const checkpoint_record& c) const {
    return root_ / "runs" / c.run_id / std::string(to_string(c.kind)) / c.name;
  }

  /// `<dir>#<what>-<random>`: '#' never occurs in a checkpoint name (tinker_path::name_problem),
  /// so scratch directories cannot be mistaken for checkpoints, nor collide with one.
  static std::filesystem::path scratch_dir(const std::filesystem::path& dir, const char* what) {
    auto p = dir;
    p += std::string("#") + what + "-" + random_hex(8);
    return p;
  }
  static bool is_scratch(const std::filesystem::path& p) {
    return p.filename().string().find('#') != std::string::npos;
  }

  /// After a crash: an overwrite's old checkpoint renamed aside whose replacement never got into
  /// place is put back; every other scratch directory (unfinished writes, replaced checkpoints
  /// not yet removed) is removed.
  static void recover_checkpoint_dirs(const std::filesystem::path& kind_dir) {
    std::vector<std::filesystem::path> scratch;
    for (const auto& e : std::filesystem::directory_iterator(kind_dir))
      if (is_scratch(e.path())) scratch.push_back(e.path());
    std::error_code ec;
    for (const auto& p : scratch) {
      const auto name = p.filename().string();
      const auto hash = name.rfind('#');
      const auto target = kind_dir / name.substr(0, hash);
      if (name.compare(hash, 5, "#old-") == 0 && !std::filesystem::exists(target))
        std::filesystem::rename(p, target, ec);
      else
        std::filesystem::remove_all(p, ec);
    }
  }

  template <class Record, class Parse>
  static std::vector<Record> load_all(const std::filesystem::path& dir, Parse parse) {
    std::vector<Record> out;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      if (entry.path().extension() != ".json") continue;
      try {
        out.push_back(parse(read_json(entry.path())));
      } catch (const std::exception&) {
        // a damaged record is skipped rather than taking the whole engine down
      }
    }
    return out;
  }

  static std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + p.string());
    std::ostringstream s;
    s << in.rdbuf();
    return std::move(s).str();
  }

  static boost::json::value read_json(const std::filesystem::path& p) {
    return json::parse(read_file(p), p.filename().string());
  }

  static void write_file(const std::filesystem::path& p, std::string_view contents) {
    auto tmp = p;
    tmp += ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      if (!out) throw std::runtime_error("cannot write " + tmp.string());
      out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
      if (!out) throw std::runtime_error("cannot write " + tmp.string());
    }
    std::filesystem::rename(tmp, p);
  }

  static void write_json(const std::filesystem::path& p, const boost::json::value& v) { write_file(p, json::dump(v)); }

  std::filesystem::path root_;
  std::uint64_t epoch_ = 1;
  std::string secret_;
};

}  // namespace tinker::local::detail
