// POSIX file plumbing for downloads: file descriptors, exclusive creation, a sibling temporary
// that is removed unless committed, and a rename that never replaces an existing destination.
//
// Local failures (disk full, permissions) throw std::filesystem::filesystem_error naming the path.
#pragma once

#include <tinker/error.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace tinker::detail {

[[noreturn]] inline void throw_fs_error(const std::string& what, const std::filesystem::path& p, int err) {
  throw std::filesystem::filesystem_error(what, p, std::error_code(err, std::generic_category()));
}

/// An owned file descriptor.
class unique_fd {
public:
  unique_fd() noexcept = default;
  explicit unique_fd(int fd) noexcept : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~unique_fd() { reset(); }

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  /// Closes and reports a failed close (NFS and some filesystems report write errors only here).
  void close_checked(const std::filesystem::path& p) {
    const int fd = std::exchange(fd_, -1);
    if (fd >= 0 && ::close(fd) != 0 && errno != EINTR) throw_fs_error("cannot close file", p, errno);
  }

private:
  int fd_ = -1;
};

/// Writes all of `data`, retrying short writes.
inline void write_all(int fd, std::string_view data, const std::filesystem::path& p) {
  while (!data.empty()) {
    const auto n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_fs_error("cannot write file", p, errno);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

/// Creates a new regular file; fails if anything (file, directory, symlink) already has the name,
/// so an existing file is never truncated and no link is followed.
inline unique_fd create_new_file(const std::filesystem::path& p, unsigned mode) {
  const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, static_cast<mode_t>(mode));
  if (fd < 0) throw_fs_error("cannot create file", p, errno);
  return unique_fd(fd);
}

/// A random name next to `target`: ".<name>.partial-<hex>". The leading dot keeps it out of
/// directory listings; the suffix tells a leftover (after a crash) for what it is.
inline std::filesystem::path sibling_temp_name(const std::filesystem::path& target) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  char suffix[17];
  std::snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(rng()));
  return target.parent_path() / ("." + target.filename().string() + ".partial-" + suffix);
}

/// Checks that `target` may be created: a name is given, nothing exists there (not even a dangling
/// symlink), and its parent directory exists or can be created.
inline void prepare_destination(const std::filesystem::path& target, const char* what) {
  if (target.empty() || !target.has_filename() || target.filename() == "." || target.filename() == "..")
    throw tinker::invalid_argument(std::string(what) + " '" + target.string() +
                                   "' does not name a new file or directory");
  std::error_code ec;
  if (std::filesystem::symlink_status(target, ec).type() != std::filesystem::file_type::not_found)
    throw tinker::invalid_argument(std::string(what) + " '" + target.string() +
                                   "' already exists; choose a new path or remove it first");
  const auto parent = target.parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);  // throws filesystem_error naming it
}

/// A temporary file or directory that is removed (recursively) unless committed.
class temp_path_guard {
public:
  temp_path_guard() = default;
  explicit temp_path_guard(std::filesystem::path p) : path_(std::move(p)) {}
  temp_path_guard(const temp_path_guard&) = delete;
  temp_path_guard& operator=(const temp_path_guard&) = delete;
  ~temp_path_guard() { remove(); }

  const std::filesystem::path& path() const noexcept { return path_; }
  void remove() noexcept {
    if (path_.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    path_.clear();
  }
  void release() noexcept { path_.clear(); }

private:
  std::filesystem::path path_;
};

/// Creates a fresh directory next to `target` (mode 0755 minus the umask).
inline std::filesystem::path create_sibling_temp_dir(const std::filesystem::path& target) {
  for (int attempt = 0;; ++attempt) {
    auto p = sibling_temp_name(target);
    if (::mkdir(p.c_str(), 0755) == 0) return p;
    if (errno != EEXIST || attempt == 100) throw_fs_error("cannot create a temporary directory", p, errno);
  }
}

/// Creates a fresh file next to `target` (mode 0644 minus the umask).
inline unique_fd create_sibling_temp_file(const std::filesystem::path& target, std::filesystem::path& created) {
  for (int attempt = 0;; ++attempt) {
    auto p = sibling_temp_name(target);
    const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0) {
      created = std::move(p);
      return unique_fd(fd);
    }
    if (errno != EEXIST || attempt == 100) throw_fs_error("cannot create a temporary file", p, errno);
  }
}

/// Renames `from` to `to`, failing if `to` exists (rename(2) alone would replace a file or an
/// empty directory that appeared meanwhile).
inline void rename_no_replace(const std::filesystem::path& from, const std::filesystem::path& to) {
#ifdef RENAME_NOREPLACE
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return;
  if (errno != EINVAL && errno != ENOSYS) {
    if (errno == EEXIST || errno == ENOTEMPTY)
      throw tinker::invalid_argument("'" + to.string() + "' appeared while downloading; the download was discarded");
    throw_fs_error("cannot move the download into place", to, errno);
  }
#endif
  // No renameat2 here (or the filesystem lacks it): check, then rename. The gap between the two
  // is the only window in which a concurrently created destination could be replaced.
  std::error_code ec;
  if (std::filesystem::symlink_status(to, ec).type() != std::filesystem::file_type::not_found)
    throw tinker::invalid_argument("'" + to.string() + "' appeared while downloading; the download was discarded");
  if (::rename(from.c_str(), to.c_str()) != 0) throw_fs_error("cannot move the download into place", to, errno);
}

}  // namespace tinker::detail
