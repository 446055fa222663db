// Downloading checkpoint archives from the signed, expiring URL the REST API hands out
// (protocol.md §11.7): a .tar.gz holding a PEFT-style adapter (adapter_config.json,
// adapter_model.safetensors, ...).
//
//   tinker::download_options options;
//   options.on_progress = [](const tinker::download_progress& p) {...};
//   auto files = co_await tinker::download_and_extract(ex, url, "checkpoints/step-100", options);
//
// (rest_client::download_checkpoint_from_tinker_path does the same for a tinker:// path, with the
// service client's TLS settings.)
//
// The archive is streamed, never held in memory: socket -> gzip -> tar -> files. It is extracted
// into a hidden sibling directory that is renamed into place only once the archive proved complete
// and valid, so `destination` either appears whole or not at all.
//
// Errors:
//   tinker::invalid_argument         bad URL, destination already exists, unreadable tls.ca_file
//   tinker::api_status_error (+ subclasses by status)   non-2xx answer, too many/bad redirects
//   tinker::api_connection_error     cannot resolve/connect/TLS, connection closed early
//   tinker::api_timeout_error        connect_timeout or idle_timeout passed
//   tinker::archive_error            corrupt/truncated/oversized archive, or a refused entry
//   std::filesystem::filesystem_error   local I/O (disk full, permissions)
//   boost::system::system_error(operation_aborted)   the awaiting coroutine was cancelled
// Messages show scheme, host and path of the URL, never its query (the signature).
//
// Cancellation: cancelling the awaiting coroutine (terminal cancellation, e.g. a bound
// cancellation slot or an awaitable-operators race) closes the connection, removes the temporary
// and completes with operation_aborted.
//
// Threads: like any Asio object, run a download on one thread or a strand. File I/O is
// synchronous on that thread: a download is one sequential stream, and the disk is normally faster
// than the network. Files are not fsync'ed; entry mtimes and owners are not restored.
#pragma once

#include <tinker/client/detail/download_error.hpp>
#include <tinker/client/detail/download_extract.hpp>
#include <tinker/client/detail/download_fs.hpp>
#include <tinker/client/detail/download_http.hpp>
#include <tinker/client/detail/download_url.hpp>
#include <tinker/http/tls_options.hpp>

#include <boost/asio/any_io_executor.hpp>
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

struct download_progress {
  std::uint64_t bytes_received;              ///< body bytes so far (compressed, as on the wire)
  std::optional<std::uint64_t> bytes_total;  ///< Content-Length, when the server sent one
};

struct download_options {
  // A user-declared constructor makes this a non-aggregate on purpose: GCC 12 destroys aggregate
  // temporaries built inside a co_await expression twice, and this one owns a std::function.
  download_options() {}

  http::tls_options tls;
  std::chrono::milliseconds connect_timeout{10'000};  ///< resolve + connect + TLS handshake
  std::chrono::milliseconds idle_timeout{60'000};     ///< no byte for this long -> api_timeout_error
  std::uint64_t max_archive_bytes = 64ull << 30;      ///< compressed size
  std::uint64_t max_extracted_bytes = 256ull << 30;   ///< sum of the extracted file sizes
  /// Called as bytes arrive: once when the answer starts (0 bytes), then at most every 1 MiB or
  /// every 100 ms, and once at the end with everything received. Runs on the download's executor;
  /// it must not throw.
  std::function<void(const download_progress&)> on_progress;
  int max_redirects = 3;  ///< 301/302/303/307/308 followed (https -> http never)
};

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

}  // namespace detail

/// Downloads the .tar.gz at `url` (http or https) and extracts it into `destination`, which must
/// not exist yet (its parent directories are created). Only regular files and directories are
/// extracted; links, devices, FIFOs, absolute paths and ".." are refused (archive_error naming the
/// entry); modes lose setuid/setgid and are capped at 0755. Content-Length, when sent, is verified.
/// Returns the relative paths of the extracted files ('/'-separated, in archive order).
inline boost::asio::awaitable<std::vector<std::string>> download_and_extract(boost::asio::any_io_executor ex,
                                                                             std::string url,
                                                                             std::filesystem::path destination,
                                                                             download_options options = {}) {
  auto settings = detail::make_download_http_settings(options);
  (void)detail::download_url::parse(url);  // a bad URL is a user error, before touching the disk
  destination = detail::download_target(std::move(destination));
  detail::prepare_destination(destination, "download destination");

  detail::temp_path_guard temp(detail::create_sibling_temp_dir(destination));
  detail::archive_extractor extractor(temp.path(), detail::extract_limits{options.max_extracted_bytes});
  detail::download_progress_reporter progress(options.on_progress);
  struct sink {
    detail::archive_extractor& extractor;
    detail::download_progress_reporter& progress;
    void on_response(std::optional<std::uint64_t> length) { progress.start(length); }
    void on_body(std::string_view chunk) {
      extractor.write(chunk);
      progress.add(chunk.size());
    }
  } body_sink{extractor, progress};

  co_await detail::http_download(ex, std::move(url), std::move(settings), body_sink);
  auto files = extractor.finish();
  detail::rename_no_replace(temp.path(), destination);
  temp.release();
  progress.finish();
  co_return files;
}

/// Downloads `url` into `file` as it is (no extraction), through a hidden sibling temporary that is
/// renamed into place when complete; `file` must not exist yet. Returns the number of bytes.
inline boost::asio::awaitable<std::uint64_t> download_to_file(boost::asio::any_io_executor ex, std::string url,
                                                              std::filesystem::path file,
                                                              download_options options = {}) {
  auto settings = detail::make_download_http_settings(options);
  (void)detail::download_url::parse(url);
  file = detail::download_target(std::move(file));
  detail::prepare_destination(file, "download file");

  std::filesystem::path temp_path;
  detail::unique_fd fd = detail::create_sibling_temp_file(file, temp_path);
  detail::temp_path_guard temp(temp_path);
  detail::download_progress_reporter progress(options.on_progress);
  struct sink {
    detail::unique_fd& fd;
    const std::filesystem::path& path;
    detail::download_progress_reporter& progress;
    void on_response(std::optional<std::uint64_t> length) { progress.start(length); }
    void on_body(std::string_view chunk) {
      detail::write_all(fd.get(), chunk, path);
      progress.add(chunk.size());
    }
  } body_sink{fd, temp_path, progress};

  const auto bytes = co_await detail::http_download(ex, std::move(url), std::move(settings), body_sink);
  fd.close_checked(temp_path);
  detail::rename_no_replace(temp_path, file);
  temp.release();
  progress.finish();
  co_return bytes;
}

}  // namespace tinker
