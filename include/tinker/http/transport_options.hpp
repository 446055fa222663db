// Settings of the client transport: deadlines, per-lane connection caps, idle closing, response
// limits, compression and TLS.
#pragma once

#include <tinker/http/message.hpp>
#include <tinker/http/tls_options.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <functional>
#include <string_view>

namespace tinker::http {

struct transport_options {
  /// Resolving, connecting and the TLS handshake of a new connection, together.
  std::chrono::milliseconds connect_timeout{5000};
  /// Default whole-request deadline: connect + write + read of the full response. It starts when
  /// the request gets its connection; time spent queueing for a busy lane is not counted (cancel
  /// the call to give up waiting).
  std::chrono::milliseconds request_timeout{60000};
  /// Connections per lane, indexed by `lane`. A request that finds its lane at the cap waits for a
  /// connection, first come first served.
  std::array<std::size_t, lane_count> max_connections{16, 64, 512, 2048, 16};
  /// Idle pooled connections are closed after this long.
  std::chrono::seconds idle_timeout{50};
  /// Largest response body accepted, both as received and after decompression.
  std::size_t max_response_body = 256u << 20;
  /// Send `Accept-Encoding: gzip` and inflate gzip replies.
  bool accept_gzip = true;
  tls_options tls;
  /// Sink for warnings (insecure TLS settings); may be empty.
  std::function<void(std::string_view)> warn;
};

}  // namespace tinker::http
