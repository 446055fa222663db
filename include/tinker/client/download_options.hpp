// Settings of checkpoint archive downloads (download.hpp, rest_client::download_checkpoint_from_tinker_path).
#pragma once

#include <tinker/http/tls_options.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>

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

}  // namespace tinker
