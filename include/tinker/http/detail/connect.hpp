// Opening a client connection, step by step, under one deadline: the DNS lookup, the TCP connect
// and the TLS handshake (SNI, certificate and host name verification). The pooled transport and
// the one-off download stream both open their connections with these; each words its own errors.
#pragma once

#include <tinker/detail/async_event.hpp>
#include <tinker/http/detail/tls_context.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace tinker::http::detail {

using endpoint_list = std::vector<boost::asio::ip::tcp::endpoint>;

/// A DNS lookup that belongs to no caller. getaddrinfo cannot be interrupted (a cancelled lookup
/// still runs to its end), so nobody waits for it past their own deadline: each caller waits for
/// `done` with its deadline and cancellation, and whoever gives up leaves the lookup running into
/// this shared state (for the other waiters, or for nobody).
class host_lookup {
public:
  using clock = std::chrono::steady_clock;

  explicit host_lookup(const boost::asio::any_io_executor& ex) : resolver_(ex) {}

  /// Starts looking `host` up, out of reach of any caller's cancellation. When it ends, every
  /// waiter is woken and then `on_done(host_lookup&)` runs (to fill a cache, say).
  template <class OnDone>
  static std::shared_ptr<host_lookup> start(const boost::asio::any_io_executor& ex, const std::string& host,
                                            std::uint16_t port, OnDone on_done) {
    auto lookup = std::make_shared<host_lookup>(ex);
    lookup->resolver_.async_resolve(
        host, std::to_string(port),
        [lookup, on_done = std::move(on_done)](boost::system::error_code ec,
                                               boost::asio::ip::tcp::resolver::results_type results) mutable {
          auto list = std::make_shared<endpoint_list>();
          for (const auto& entry : results) list->push_back(entry.endpoint());
          if (!ec && list->empty()) ec = boost::asio::error::host_not_found;
          lookup->finished_ = true;
          lookup->ec_ = ec;
          lookup->endpoints_ = std::move(list);
          lookup->done_.notify_all();
          on_done(*lookup);
        });
    return lookup;
  }

  /// Waits until the lookup ends (true) or until `deadline` (false); true also when someone else
  /// wakes the waiters (wake_all()), so callers check finished(). Throws
  /// boost::system::system_error(operation_aborted) when the awaiting coroutine is cancelled first.
  boost::asio::awaitable<bool> wait(clock::time_point deadline) {
    if (finished_) co_return true;
    co_return co_await done_.wait(deadline);
  }

  /// Wakes every waiter now (a shutdown): the lookup itself runs on.
  void wake_all() { done_.notify_all(); }
  /// Stops a lookup that has not begun; a running one ends on its own.
  void cancel() { resolver_.cancel(); }

  bool finished() const noexcept { return finished_; }
  const boost::system::error_code& error() const noexcept { return ec_; }
  const std::shared_ptr<const endpoint_list>& endpoints() const noexcept { return endpoints_; }
  std::size_t waiters() const noexcept { return done_.size(); }

private:
  boost::asio::ip::tcp::resolver resolver_;
  tinker::detail::async_event done_;
  bool finished_ = false;
  boost::system::error_code ec_;
  std::shared_ptr<const endpoint_list> endpoints_;
};

/// Connects `tcp` to the first endpoint that answers, before `deadline`. The error is
/// beast::error::timeout when the deadline passed; the stream's deadline stays set (for a
/// handshake that follows).
inline boost::asio::awaitable<boost::system::error_code> connect_before(
    boost::beast::tcp_stream& tcp, const endpoint_list& endpoints, std::chrono::steady_clock::time_point deadline) {
  tcp.expires_at(deadline);
  auto [ec, endpoint] = co_await tcp.async_connect(endpoints, boost::asio::as_tuple(boost::asio::use_awaitable));
  (void)endpoint;
  co_return ec;
}

/// The client TLS handshake on a connected stream, under the deadline already set on its TCP
/// layer: SNI and, when `verify`, the host name check (configure_client_tls). `host_mismatch` must
/// outlive the stream; describe_tls_failure() explains a failure.
template <class NextLayer>
boost::asio::awaitable<boost::system::error_code> client_handshake(boost::asio::ssl::stream<NextLayer>& stream,
                                                                   const std::string& host, bool verify,
                                                                   bool& host_mismatch) {
  configure_client_tls(stream, host, verify, host_mismatch);
  auto [ec] = co_await stream.async_handshake(boost::asio::ssl::stream_base::client,
                                              boost::asio::as_tuple(boost::asio::use_awaitable));
  co_return ec;
}

}  // namespace tinker::http::detail
