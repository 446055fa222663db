// Safe extraction of a .tar.gz into an empty directory that the caller created (the sibling
// temporary of the download destination): gzip -> tar -> files, one chunk at a time.
//
// Only regular files and directories are created. Everything an adapter archive never needs and an
// attacker would use is refused: absolute paths, ".." components, symbolic and hard links, device
// nodes, FIFOs, duplicates. Nothing is ever written outside the root: paths are checked lexically,
// no link is ever created, files are opened with O_EXCL | O_NOFOLLOW, and every directory on the
// way is created by us (so none of them can be a symlink).
#pragma once

#include <tinker/client/detail/download_error.hpp>
#include <tinker/client/detail/download_fs.hpp>
#include <tinker/detail/inflate_stream.hpp>
#include <tinker/detail/tar_reader.hpp>

#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tinker::detail {

struct extract_limits {
  std::uint64_t max_extracted_bytes = std::numeric_limits<std::uint64_t>::max();  ///< sum of file sizes
  std::uint64_t max_entries = 100'000;         ///< an adapter has a handful; this bounds inode and header floods
  std::uint64_t max_path_bytes = 64ull << 20;  ///< all paths remembered (duplicate detection), in bytes
};

/// The relative path an entry will be created at, or an archive_error. Leading "./" and repeated
/// or trailing slashes are dropped; an empty result means the archive root itself ("./").
inline std::string sanitize_entry_path(std::string_view stored) {
  auto reject = [&](const std::string& why) -> std::string { throw archive_error(std::string(stored), why); };
  if (stored.empty()) return reject("the entry has an empty path");
  if (stored.find('\0') != std::string_view::npos) return reject("the path contains a NUL byte");
  if (stored.front() == '/')
    return reject("absolute paths are not allowed (the path must be relative to the archive root)");
  std::string out;
  out.reserve(stored.size());
  std::size_t pos = 0;
  while (pos <= stored.size()) {
    const auto slash = stored.find('/', pos);
    const auto part = stored.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
    if (part == "..") return reject("the path contains a '..' component, which could point outside the destination");
    if (part.size() > 255) return reject("a path component is longer than 255 bytes");
    if (!part.empty() && part != ".") {
      if (!out.empty()) out += '/';
      out += part;
    }
    if (slash == std::string_view::npos) break;
    pos = slash + 1;
  }
  return out;
}

/// Permission bits for what we create: no setuid/setgid/sticky, nothing beyond 0755, and the owner
/// can always read and write (and enter directories) so the result can be used and deleted.
constexpr unsigned sanitize_file_mode(std::uint32_t stored) noexcept { return (stored & 0755u) | 0600u; }
constexpr unsigned sanitize_directory_mode(std::uint32_t stored) noexcept { return (stored & 0755u) | 0700u; }

class archive_extractor {
public:
  /// `root` must be an existing, empty directory owned by the caller.
  archive_extractor(std::filesystem::path root, extract_limits limits)
      : root_(std::move(root)),
        limits_(limits),
        // Headers and padding add to the file bytes; a generous allowance still stops a bomb.
        inflate_(saturating_add(limits.max_extracted_bytes, 1ull << 30)) {}

  archive_extractor(const archive_extractor&) = delete;
  archive_extractor& operator=(const archive_extractor&) = delete;

  /// Feeds compressed (gzip) bytes.
  void write(std::string_view compressed) {
    try {
      inflate_.write(compressed, [this](std::string_view tar_bytes) { tar_.write(tar_bytes, *this); });
    } catch (const inflate_error& e) {
      throw_archive_problem(e.what());
    } catch (const tar_error& e) {
      throw_archive_problem(e.what());
    }
  }

  /// Declares the end of the compressed data: checks that the gzip stream and the tar archive are
  /// complete and returns the relative paths of the extracted regular files, in archive order.
  std::vector<std::string> finish() {
    try {
      inflate_.finish();
      tar_.finish();
    } catch (const inflate_error& e) {
      throw_archive_problem(e.what());
    } catch (const tar_error& e) {
      throw_archive_problem(e.what());
    }
    if (files_.empty()) throw archive_error({}, "the archive contains no files");
    return std::move(files_);
  }

  std::uint64_t extracted_bytes() const noexcept { return extracted_bytes_; }
  std::uint64_t compressed_bytes() const noexcept { return inflate_.total_in(); }

  // tar_reader handler ----------------------------------------------------------------------------

  void on_entry(const tar_entry& e) {
    if (++entries_ > limits_.max_entries)
      throw archive_error(e.path, "the archive has more than " + std::to_string(limits_.max_entries) + " entries");
    check_type(e);
    auto rel = sanitize_entry_path(e.path);
    if (e.type == tar_entry_type::directory) {
      if (e.size != 0)
        throw archive_error(e.path, "a directory entry carries " + std::to_string(e.size) + " bytes of data");
      if (!rel.empty()) make_directory(e.path, rel, e.mode);
      return;
    }
    if (rel.empty()) throw archive_error(e.path, "a file entry names the archive root");
    if (e.size > limits_.max_extracted_bytes - declared_bytes_)
      throw archive_error(e.path, "the file's " + std::to_string(e.size) +
                                      " bytes would take the extracted size past "
                                      "the limit of " +
                                      std::to_string(limits_.max_extracted_bytes) +
                                      " bytes (download_options::max_extracted_bytes)");
    declared_bytes_ += e.size;
    const auto parent = rel.rfind('/');
    if (parent != std::string::npos) make_parents(e.path, rel.substr(0, parent));
    claim(e.path, rel, node::file);
    current_path_ = root_ / rel;
    current_ = create_new_file(current_path_, sanitize_file_mode(e.mode));
    current_rel_ = std::move(rel);
  }

  void on_data(std::string_view chunk) {
    // Directories have no data (checked in on_entry), so data always belongs to the open file.
    write_all(current_.get(), chunk, current_path_);
    extracted_bytes_ += chunk.size();
  }

  void on_entry_end() {
    if (!current_) return;  // a directory
    current_.close_checked(current_path_);
    files_.push_back(std::move(current_rel_));
  }

private:
  enum class node { file, directory, implicit_directory };

  static std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) noexcept {
    return a > std::numeric_limits<std::uint64_t>::max() - b ? std::numeric_limits<std::uint64_t>::max() : a + b;
  }

  [[noreturn]] static void throw_archive_problem(const char* what) { throw archive_error({}, what); }

  static void check_type(const tar_entry& e) {
    switch (e.type) {
      case tar_entry_type::regular:
      case tar_entry_type::directory: return;
      case tar_entry_type::symlink:
        throw archive_error(e.path, "symbolic links are not allowed (a checkpoint archive needs none); it points to '" +
                                        archive_error::printable(e.link_target) + "'");
      case tar_entry_type::hardlink:
        throw archive_error(e.path, "hard links are not allowed (a checkpoint archive needs none); it links to '" +
                                        archive_error::printable(e.link_target) + "'");
      case tar_entry_type::character_device:
      case tar_entry_type::block_device:
      case tar_entry_type::fifo:
        throw archive_error(e.path, std::string(to_string(e.type)) +
                                        " entries are not allowed (only regular files and "
                                        "directories are extracted)");
      case tar_entry_type::other: break;
    }
    throw archive_error(e.path, "unsupported entry type '" + archive_error::printable(std::string(1, e.typeflag)) +
                                    "' (only regular files and directories are extracted)");
  }

  /// Memory for remembered paths is bounded too: deep, distinct paths in every entry add up.
  void account_path(const std::string& stored, std::size_t bytes) {
    path_bytes_ += bytes + 64;  // + the map node
    if (path_bytes_ > limits_.max_path_bytes)
      throw archive_error(
          stored, "the archive's paths take more than " + std::to_string(limits_.max_path_bytes) + " bytes in total");
  }

  /// Records that `rel` is taken by `kind`; duplicates and file/directory clashes are errors.
  void claim(const std::string& stored, const std::string& rel, node kind) {
    auto [it, inserted] = nodes_.try_emplace(rel, kind);
    if (inserted) return account_path(stored, 2 * rel.size());  // in nodes_ and, for files, in files_
    if (it->second == node::implicit_directory && kind == node::directory) {
      it->second = node::directory;
      return;
    }
    if (it->second == node::file || kind == node::file)
      throw archive_error(stored, it->second == kind ? "duplicate entry: the archive holds this path twice"
                                                     : "the path is both a file and a directory in the archive");
    throw archive_error(stored, "duplicate entry: the archive holds this directory twice");
  }

  void make_parents(const std::string& stored, const std::string& rel_dir) {
    std::size_t pos = 0;
    for (;;) {
      const auto slash = rel_dir.find('/', pos);
      const auto prefix = rel_dir.substr(0, slash);
      const auto it = nodes_.find(prefix);
      if (it == nodes_.end()) {
        create_directory(prefix, 0755);
        nodes_.emplace(prefix, node::implicit_directory);
        account_path(stored, prefix.size());
      } else if (it->second == node::file) {
        throw archive_error(stored, "'" + archive_error::printable(prefix) +
                                        "' must be a directory for this entry, but the archive has a file there");
      }
      if (slash == std::string::npos) return;
      pos = slash + 1;
    }
  }

  void make_directory(const std::string& stored, const std::string& rel, std::uint32_t mode) {
    const auto parent = rel.rfind('/');
    if (parent != std::string::npos) make_parents(stored, rel.substr(0, parent));
    const bool existed = nodes_.count(rel) != 0;
    claim(stored, rel, node::directory);
    if (!existed) create_directory(rel, sanitize_directory_mode(mode));
  }

  void create_directory(const std::string& rel, unsigned mode) {
    const auto p = root_ / rel;
    // mkdir fails on anything already there, including a symlink: nothing is ever followed.
    if (::mkdir(p.c_str(), static_cast<mode_t>(mode)) != 0) throw_fs_error("cannot create directory", p, errno);
  }

  std::filesystem::path root_;
  extract_limits limits_;
  inflate_stream inflate_;
  tar_reader tar_;
  std::unordered_map<std::string, node> nodes_;
  std::vector<std::string> files_;
  unique_fd current_;
  std::filesystem::path current_path_;
  std::string current_rel_;
  std::uint64_t entries_ = 0;
  std::uint64_t path_bytes_ = 0;
  std::uint64_t declared_bytes_ = 0;
  std::uint64_t extracted_bytes_ = 0;
};

}  // namespace tinker::detail
