// One client connection of the pool: a TCP or TLS stream, its read buffer and the bookkeeping that
// decides whether it may be reused.
#pragma once

#include <tinker/http/message.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/intrusive/list.hpp>

#include <chrono>
#include <cstdint>
#include <variant>

namespace tinker::http::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;

using tcp_stream = beast::tcp_stream;
using tls_stream = asio::ssl::stream<beast::tcp_stream>;

/// Hook that unlinks itself when its object is destroyed (for "everything currently leased").
using auto_unlink_hook = boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>>;

class connection : public auto_unlink_hook {
public:
  /// The read buffer keeps this much capacity between requests: most replies fit in one read, and
  /// an idle connection stays small. Bigger bodies are read in slices of this size.
  static constexpr std::size_t read_buffer_bytes = 8 * 1024;

  connection(const asio::any_io_executor& ex, http::lane which, asio::ssl::context* tls) : which_(which) {
    if (tls)
      stream_.emplace<tls_stream>(ex, *tls);
    else
      stream_.emplace<tcp_stream>(ex);
  }

  http::lane which() const noexcept { return which_; }
  bool is_tls() const noexcept { return std::holds_alternative<tls_stream>(stream_); }
  tls_stream& tls() { return std::get<tls_stream>(stream_); }
  tcp_stream& plain() { return std::get<tcp_stream>(stream_); }
  tcp_stream& tcp() { return is_tls() ? beast::get_lowest_layer(tls()) : plain(); }
  beast::flat_buffer& buffer() noexcept { return buffer_; }

  /// Connected (and TLS-handshaken): usable for a request.
  bool connected() const noexcept { return connected_; }
  void set_connected() noexcept { connected_ = true; }

  /// A request was started but its response was not read to the end: the stream is in an unknown
  /// state and the connection must be closed, never pooled.
  void begin_exchange() noexcept { dirty_ = true; }
  void end_exchange(bool keep_alive) noexcept {
    dirty_ = false;
    if (!keep_alive) must_close_ = true;
    ++exchanges_;
    // A reply with huge headers grew the buffer; do not keep that while idle.
    if (buffer_.size() == 0 && buffer_.capacity() > 4 * read_buffer_bytes) buffer_.shrink_to_fit();
  }
  std::uint64_t exchanges() const noexcept { return exchanges_; }

  /// May go back to the pool: connected, nothing half-done, and the server did not ask to close.
  bool reusable() const noexcept { return connected_ && !dirty_ && !must_close_; }

  void prepare_read_buffer() {
    if (buffer_.capacity() < read_buffer_bytes) buffer_.reserve(read_buffer_bytes);
  }

  /// Set by the TLS verify callback when the chain was trusted but the host name did not match.
  /// Lives here, not in a coroutine frame, because the callback lives as long as the stream.
  bool& host_mismatch() noexcept { return host_mismatch_; }

  std::chrono::steady_clock::time_point idle_since() const noexcept { return idle_since_; }
  void set_idle_since(std::chrono::steady_clock::time_point t) noexcept { idle_since_ = t; }

  /// Cheap check before reusing an idle connection: a non-blocking peek sees a server that closed
  /// it while it sat in the pool (EOF or reset). Data waiting on an idle plain connection is a
  /// protocol violation; on TLS it can be a post-handshake message (session ticket), so it is kept.
  bool looks_alive() {
    auto& socket = tcp().socket();
    if (!socket.is_open()) return false;
    boost::system::error_code ec;
    socket.non_blocking(true, ec);  // affects synchronous calls only; async operations are unchanged
    if (ec) return false;
    char byte;
    socket.receive(asio::buffer(&byte, 1), asio::socket_base::message_peek, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) return true;
    if (ec) return false;
    return is_tls();
  }

  /// Closes the socket; pending operations complete with operation_aborted.
  void close() noexcept {
    tcp().close();  // beast closes with an error_code internally: does not throw
    connected_ = false;
  }

private:
  http::lane which_;
  std::variant<std::monostate, tcp_stream, tls_stream> stream_;
  beast::flat_buffer buffer_;
  std::chrono::steady_clock::time_point idle_since_{};
  std::uint64_t exchanges_ = 0;
  bool connected_ = false;
  bool dirty_ = false;
  bool must_close_ = false;
  bool host_mismatch_ = false;
};

}  // namespace tinker::http::detail
