// The client transport: pooled keep-alive HTTP/1.1 (optionally TLS) to one base URL, with a
// separate connection pool per lane, deadlines, gzip, and per-operation cancellation.
//
// Contract of send():
//  * Waiting: a request that finds its lane at max_connections waits (FIFO) for a connection.
//    The request timeout does not run while waiting; cancel the call to stop waiting.
//  * Reuse: keep-alive connections are reused; `Connection: close` and HTTP/1.0 replies are not.
//    A reused connection found dead (write fails, or EOF/reset before any reply byte) is replaced
//    by a fresh one and the request sent again, once.
//  * Deadlines: connect_timeout bounds the DNS lookup, connect and TLS handshake of a new
//    connection; write_timeout and read_timeout are idle limits (no byte taken by the socket, or
//    none received, for that long; zero = off), re-armed on progress; request_timeout (or
//    request.timeout) bounds the whole call from when it gets its connection, whatever the idle
//    limits say. Each raises tinker::api_timeout_error naming the phase and the limit that fired,
//    e.g. "timed out while writing the request (write timeout 60000 ms)".
//  * DNS: names are looked up once per minute; concurrent connects share one lookup, which runs
//    detached from any caller, so a caller that is cancelled or times out leaves it to the others.
//  * Errors: connect/TLS/write/read failures throw tinker::api_connection_error, deadlines
//    tinker::api_timeout_error; messages name method, URL and phase, never header values. A reply
//    that breaks limits (max_response_body, undecodable gzip) throws
//    tinker::api_response_validation_error. Non-2xx statuses are returned, not thrown.
//  * Cancellation (terminal, via the awaiting coroutine's cancellation slot, e.g. a parallel group
//    or bind_cancellation_slot on co_spawn): while waiting, the request leaves the queue; once
//    bytes may be on the wire, the connection is closed (never pooled). Either way the call throws
//    boost::system::system_error(operation_aborted) and the lane's slot is released.
//  * shutdown(): idle connections are closed, waiting and in-flight calls fail with
//    system_error(operation_aborted), new calls are refused the same way.
//
// Single-threaded: use one transport from its executor's thread only. Emit cancellation from that
// thread too (Asio 1.26's co_spawn forwards a cancellation emitted elsewhere through a deferred
// dispatch that must not outlive the signal).
//
// While idle connections exist, one timer is pending to close them after idle_timeout; it keeps
// io_context::run() from returning until then, or until shutdown() (the client calls it when it
// goes away).
//
// Memory (measured, Release build, 2000 of each): an idle plain connection ~9.5 KiB of heap (8 KiB
// of it the read buffer kept between requests) plus the kernel's socket; an idle TLS connection
// ~115 KiB (Asio's SSL engine keeps 2 x 17 KiB record buffers and a 2 x 17 KiB BIO pair per stream,
// plus OpenSSL's session state). A request waiting for a connection ~2.8 KiB (its coroutine frames,
// the queue node with its wake-up timer, the request head) on top of its own body and headers.
#pragma once

#include <tinker/http/detail/transport_state.hpp>
#include <tinker/http/message.hpp>
#include <tinker/http/transport_options.hpp>
#include <tinker/http/url.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

namespace tinker::http {

class transport {
public:
  /// Throws tinker::invalid_argument for unusable options (a zero lane cap, an unreadable CA file).
  transport(boost::asio::any_io_executor ex, url base, transport_options options)
      : state_(std::make_shared<detail::transport_state>(std::move(ex), std::move(base), std::move(options))) {}

  transport(const transport&) = delete;
  transport& operator=(const transport&) = delete;

  /// Shuts down; calls still in flight keep the shared state alive until they finish.
  ~transport() { state_->shutdown(); }

  /// Sends one request and returns the response (any status). See the contract above.
  boost::asio::awaitable<response> send(request req) { return detail::transport_state::send(state_, std::move(req)); }

  void shutdown() { state_->shutdown(); }

  const url& base() const noexcept { return state_->base(); }
  const transport_options& options() const noexcept { return state_->options(); }
  const boost::asio::any_io_executor& get_executor() const noexcept { return state_->executor(); }

  // ----- observability (tests, benchmarks) -----
  /// Connections of a lane that exist or are being opened (idle + in use).
  std::size_t open_connections(lane l) const noexcept { return state_->open_connections(l); }
  std::size_t idle_connections(lane l) const noexcept { return state_->idle_connections(l); }
  /// Requests queued because their lane is at its cap.
  std::size_t waiting_requests(lane l) const noexcept { return state_->waiting_requests(l); }
  /// Connections successfully established since construction (all lanes).
  std::uint64_t connections_opened() const noexcept { return state_->connections_opened(); }
  /// Requests re-sent on a fresh connection because a reused one was found dead.
  std::uint64_t stale_retries() const noexcept { return state_->stale_retries(); }
  /// Connection attempts waiting for the DNS lookup in progress (0 when none runs).
  std::size_t resolve_waiters() const noexcept { return state_->resolve_waiters(); }
  /// DNS lookups started since construction (IP literals and cache hits need none).
  std::uint64_t dns_lookups() const noexcept { return state_->dns_lookups(); }

private:
  std::shared_ptr<detail::transport_state> state_;
};

}  // namespace tinker::http
