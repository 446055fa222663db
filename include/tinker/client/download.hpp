// Downloading checkpoint archives from the signed, expiring URL the REST API hands out
// (docs/protocol.md §10.4): a .tar.gz holding a PEFT-style adapter (adapter_config.json,
// adapter_model.safetensors, ...).
//
//   tinker::download_options options;
//   options.on_progress = [](const tinker::download_progress& p) {...};
//   auto files = co_await tinker::download_and_extract(ex, url, "checkpoints/step-100", options);
//
// Both calls take a trailing completion token (see completion.hpp) and run on `ex`.
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
// Cancellation: terminal cancellation through the token (a cancelled awaiting coroutine, a bound
// cancellation slot, a parallel group) closes the connection, removes the temporary and
// completes with operation_aborted.
//
// Threads: like any Asio object, run a download on one thread or a strand. File I/O is
// synchronous on that thread: a download is one sequential stream, and the disk is normally faster
// than the network. Files are not fsync'ed; entry mtimes and owners are not restored.
#pragma once

#include <tinker/client/completion.hpp>
#include <tinker/client/detail/download_error.hpp>
#include <tinker/client/download_options.hpp>
#include <tinker/detail/config.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace tinker {

namespace detail {
TINKER_DECL void async_download_and_extract(boost::asio::any_io_executor, std::string, std::filesystem::path,
                                            download_options, any_handler<std::vector<std::string>>);
TINKER_DECL void async_download_to_file(boost::asio::any_io_executor, std::string, std::filesystem::path,
                                        download_options, any_handler<std::uint64_t>);
}  // namespace detail

/// Downloads the .tar.gz at `url` (http or https) and extracts it into `destination`, which must
/// not exist yet (its parent directories are created). Only regular files and directories are
/// extracted; links, devices, FIFOs, absolute paths and ".." are refused (archive_error naming the
/// entry); modes lose setuid/setgid and are capped at 0755. Content-Length, when sent, is verified.
/// Completes with the relative paths of the extracted files ('/'-separated, in archive order).
template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<std::vector<std::string>>)
              Token = default_completion_token>
auto download_and_extract(boost::asio::any_io_executor ex, std::string url, std::filesystem::path destination,
                          Token&& token = {}) {
  return detail::initiate<std::vector<std::string>>(std::forward<Token>(token), &detail::async_download_and_extract,
                                                    std::move(ex), std::move(url), std::move(destination),
                                                    download_options());
}
template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<std::vector<std::string>>)
              Token = default_completion_token>
auto download_and_extract(boost::asio::any_io_executor ex, std::string url, std::filesystem::path destination,
                          download_options options, Token&& token = {}) {
  return detail::initiate<std::vector<std::string>>(std::forward<Token>(token), &detail::async_download_and_extract,
                                                    std::move(ex), std::move(url), std::move(destination),
                                                    std::move(options));
}

/// Downloads `url` into `file` as it is (no extraction), through a hidden sibling temporary that is
/// renamed into place when complete; `file` must not exist yet. Completes with the number of bytes.
template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<std::uint64_t>) Token = default_completion_token>
auto download_to_file(boost::asio::any_io_executor ex, std::string url, std::filesystem::path file,
                      Token&& token = {}) {
  return detail::initiate<std::uint64_t>(std::forward<Token>(token), &detail::async_download_to_file, std::move(ex),
                                         std::move(url), std::move(file), download_options());
}
template <BOOST_ASIO_COMPLETION_TOKEN_FOR(completion_signature_t<std::uint64_t>) Token = default_completion_token>
auto download_to_file(boost::asio::any_io_executor ex, std::string url, std::filesystem::path file,
                      download_options options, Token&& token = {}) {
  return detail::initiate<std::uint64_t>(std::forward<Token>(token), &detail::async_download_to_file, std::move(ex),
                                         std::move(url), std::move(file), std::move(options));
}

}  // namespace tinker

#ifdef TINKER_HEADER_ONLY
#include <tinker/client/impl/download.ipp>
#endif
