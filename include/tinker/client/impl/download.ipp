// Checkpoint archive downloads: socket -> gzip -> tar -> files, on the caller's executor.
#pragma once

#include <tinker/client/detail/download_error.hpp>
#include <tinker/client/detail/download_extract.hpp>
#include <tinker/client/detail/download_fs.hpp>
#include <tinker/client/detail/download_http.hpp>
#include <tinker/client/detail/download_url.hpp>
#include <tinker/client/detail/spawn.hpp>
#include <tinker/client/download.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tinker {

namespace detail {

/// Calls on_progress monotonically and not too often.
class download_progress_reporter {
public:
  explicit download_progress_reporter(const std::function<void(const download_progress&)>& callback)
      : callback_(callback) {}

  void start(std::optional<std::uint64_t> total) {
    total_ = total;
    received_ = 0;
    report(std::chrono::steady_clock::now());
  }

  void add(std::size_t n) {
    received_ += n;
    if (!callback_) return;
    if (received_ - reported_ >= bytes_between_reports) return report(std::chrono::steady_clock::now());
    const auto now = std::chrono::steady_clock::now();
    if (now - reported_at_ >= time_between_reports) report(now);
  }

  void finish() {
    if (received_ != reported_ || !started_) report(std::chrono::steady_clock::now());
  }

  std::uint64_t received() const noexcept { return received_; }

private:
  static constexpr std::uint64_t bytes_between_reports = 1 << 20;
  static constexpr std::chrono::milliseconds time_between_reports{100};

  void report(std::chrono::steady_clock::time_point now) {
    started_ = true;
    reported_ = received_;
    reported_at_ = now;
    if (callback_) callback_(download_progress{received_, total_});
  }

  const std::function<void(const download_progress&)>& callback_;
  std::optional<std::uint64_t> total_;
  std::uint64_t received_ = 0;
  std::uint64_t reported_ = 0;
  std::chrono::steady_clock::time_point reported_at_{};
  bool started_ = false;
};

inline download_http_settings make_download_http_settings(const download_options& o) {
  if (o.max_redirects < 0)
    throw tinker::invalid_argument("download_options::max_redirects must be >= 0, got " +
                                   std::to_string(o.max_redirects));
  if (o.connect_timeout.count() <= 0 || o.idle_timeout.count() <= 0)
    throw tinker::invalid_argument("download_options::connect_timeout and idle_timeout must be positive");
  return download_http_settings{o.tls, o.connect_timeout, o.idle_timeout, o.max_archive_bytes, o.max_redirects};
}

/// "dir/name/" names "dir/name".
inline std::filesystem::path download_target(std::filesystem::path p) {
  if (!p.has_filename() && p.has_parent_path()) p = p.parent_path();
  return p;
}

/// (download_and_extract) Downloads the .tar.gz at `url` (http or https) and extracts it into `destination`, which must
/// not exist yet (its parent directories are created). Only regular files and directories are
/// extracted; links, devices, FIFOs, absolute paths and ".." are refused (archive_error naming the
/// entry); modes lose setuid/setgid and are capped at 0755. Content-Length, when sent, is verified.
/// Returns the relative paths of the extracted files ('/'-separated, in archive order).
inline boost::asio::awaitable<std::vector<std::string>> download_and_extract_impl(boost::asio::any_io_executor ex,
                                                                                  std::string url,
                                                                                  std::filesystem::path destination,
                                                                                  download_options options) {
  auto settings = make_download_http_settings(options);
  (void)download_url::parse(url);  // a bad URL is a user error, before touching the disk
  destination = download_target(std::move(destination));
  prepare_destination(destination, "download destination");

  temp_path_guard temp(create_sibling_temp_dir(destination));
  archive_extractor extractor(temp.path(), extract_limits{options.max_extracted_bytes});
  download_progress_reporter progress(options.on_progress);
  struct sink {
    archive_extractor& extractor;
    download_progress_reporter& progress;
    void on_response(std::optional<std::uint64_t> length) { progress.start(length); }
    void on_body(std::string_view chunk) {
      extractor.write(chunk);
      progress.add(chunk.size());
    }
  } body_sink{extractor, progress};

  co_await http_download(ex, std::move(url), std::move(settings), body_sink);
  auto files = extractor.finish();
  rename_no_replace(temp.path(), destination);
  temp.release();
  progress.finish();
  co_return files;
}

/// Downloads `url` into `file` as it is (no extraction), through a hidden sibling temporary that is
/// renamed into place when complete; `file` must not exist yet. Returns the number of bytes.
inline boost::asio::awaitable<std::uint64_t> download_to_file_impl(boost::asio::any_io_executor ex, std::string url,
                                                                   std::filesystem::path file,
                                                                   download_options options) {
  auto settings = make_download_http_settings(options);
  (void)download_url::parse(url);
  file = download_target(std::move(file));
  prepare_destination(file, "download file");

  std::filesystem::path temp_path;
  unique_fd fd = create_sibling_temp_file(file, temp_path);
  temp_path_guard temp(temp_path);
  download_progress_reporter progress(options.on_progress);
  struct sink {
    unique_fd& fd;
    const std::filesystem::path& path;
    download_progress_reporter& progress;
    void on_response(std::optional<std::uint64_t> length) { progress.start(length); }
    void on_body(std::string_view chunk) {
      write_all(fd.get(), chunk, path);
      progress.add(chunk.size());
    }
  } body_sink{fd, temp_path, progress};

  const auto bytes = co_await http_download(ex, std::move(url), std::move(settings), body_sink);
  fd.close_checked(temp_path);
  rename_no_replace(temp_path, file);
  temp.release();
  progress.finish();
  co_return bytes;
}

TINKER_DECL void async_download_and_extract(boost::asio::any_io_executor ex, std::string url,
                                            std::filesystem::path destination, download_options options,
                                            any_handler<std::vector<std::string>> h) {
  auto op = download_and_extract_impl(ex, std::move(url), std::move(destination), std::move(options));
  spawn_op<std::vector<std::string>>(ex, std::move(op), std::move(h));
}

TINKER_DECL void async_download_to_file(boost::asio::any_io_executor ex, std::string url, std::filesystem::path file,
                                        download_options options, any_handler<std::uint64_t> h) {
  auto op = download_to_file_impl(ex, std::move(url), std::move(file), std::move(options));
  spawn_op<std::uint64_t>(ex, std::move(op), std::move(h));
}

}  // namespace detail
}  // namespace tinker
