// Settings of the client transport: deadlines (connect, idle write and read, whole request),
// per-lane connection caps, idle closing, response limits, compression and TLS.
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
  /// Idle limit while sending a request: the call fails when the socket takes no byte of it for
  /// this long (a peer that stopped reading). Re-armed on every bit of progress, so a big body on a
  /// slow but moving link is not cut short; the whole-request deadline still bounds the total.
  /// Zero turns it off.
  std::chrono::milliseconds write_timeout{60000};
  /// Idle limit while waiting for and reading the response: the call fails when no byte of it
  /// arrives for this long, the wait for the first byte included (over TLS: no decrypted data;
  /// progress is counted per record). Off (zero) by default: a long poll legitimately gets nothing
  /// for 25-45 s while the server holds it, so a value must exceed that; request_timeout bounds
  /// the wait meanwhile.
  std::chrono::milliseconds read_timeout{0};
  /// Connections per lane, indexed by `lane`. A request that finds its lane at the cap waits for a
  /// connection, first come first served.
  std::array<std::size_t, lane_count> max_connections{16, 64, 512, 256, 16, 2048};
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
