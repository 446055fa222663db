// The state behind a transport: per-lane pools of keep-alive connections with FIFO waiters, the
// idle sweeper, shared and cached DNS lookups, and the send coroutine. It is owned through a
// shared_ptr: every call in flight holds a reference, so destroying the transport object while
// calls run is safe.
//
// Pool invariants, per lane:
//   open = idle + leased (leased includes connections being opened) <= cap
//   waiters non-empty  =>  idle empty and open == cap
// A released connection (or, when it had to be closed, its slot) goes to the first waiter; only
// when nobody waits does it become idle (or the slot is freed).
#pragma once

#include <tinker/detail/async_event.hpp>
#include <tinker/error.hpp>
#include <tinker/http/detail/connect.hpp>
#include <tinker/http/detail/connection.hpp>
#include <tinker/http/detail/exchange.hpp>
#include <tinker/http/detail/request_head.hpp>
#include <tinker/http/detail/tls_context.hpp>
#include <tinker/http/gzip.hpp>
#include <tinker/http/message.hpp>
#include <tinker/http/transport_options.hpp>
#include <tinker/http/url.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>  // the idle sweeper
#include <boost/asio/this_coro.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/intrusive/list.hpp>
#include <boost/system/system_error.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tinker::http::detail {

class transport_state;

/// A connection (or a slot for one still to be opened) checked out of a lane. Returning it is the
/// destructor's job, so every exit path — result, exception, cancellation — gives the slot back.
class lease {
public:
  lease(std::shared_ptr<transport_state> owner, std::unique_ptr<connection> conn);
  lease(lease&&) noexcept = default;
  lease& operator=(lease&&) = delete;
  ~lease();

  connection& conn() noexcept { return *conn_; }
  /// Closes the current connection and puts a fresh, unconnected one in the same slot.
  void replace_with_fresh();

private:
  std::shared_ptr<transport_state> owner_;
  std::unique_ptr<connection> conn_;
};

class transport_state : public std::enable_shared_from_this<transport_state> {
public:
  using clock = std::chrono::steady_clock;

  transport_state(asio::any_io_executor ex, url base, transport_options options)
      : executor_(std::move(ex)), base_(std::move(base)), options_(std::move(options)), sweep_timer_(executor_) {
    for (std::size_t i = 0; i < lane_count; ++i)
      if (options_.max_connections[i] == 0)
        throw tinker::invalid_argument("transport_options.max_connections[" +
                                       std::string(to_string(static_cast<lane>(i))) + "] must be at least 1");
    if (options_.connect_timeout.count() <= 0 || options_.request_timeout.count() <= 0)
      throw tinker::invalid_argument("transport_options: connect_timeout and request_timeout must be positive");
    if (options_.read_timeout.count() < 0 || options_.write_timeout.count() < 0)
      throw tinker::invalid_argument(
          "transport_options: read_timeout and write_timeout must not be negative (0 turns them off)");
    if (base_.is_tls()) tls_ = make_client_tls_context(options_.tls, base_.str(), options_.warn);
  }

  transport_state(const transport_state&) = delete;
  transport_state& operator=(const transport_state&) = delete;

  const asio::any_io_executor& executor() const noexcept { return executor_; }
  const url& base() const noexcept { return base_; }
  const transport_options& options() const noexcept { return options_; }
  bool stopped() const noexcept { return stopped_; }

  /// The whole call: queue for a connection, connect if needed, exchange, retry once if a reused
  /// connection turned out to be dead, decode the body.
  static asio::awaitable<response> send(std::shared_ptr<transport_state> self, request req) {
    if (static_cast<std::size_t>(req.lane) >= lane_count)
      throw tinker::invalid_argument("request.lane: " + std::to_string(static_cast<int>(req.lane)) + " is not a lane");
    const auto timeout = req.timeout.value_or(self->options_.request_timeout);
    if (timeout.count() <= 0) throw tinker::invalid_argument("request.timeout must be positive");
    head_info info;
    const std::string head = build_request_head(req, self->base_, self->options_.accept_gzip, info);
    if (self->stopped_) throw self->shut_down_error(req);

    lease held = co_await acquire(self, req);
    const auto deadline = clock::now() + timeout;
    const exchange_limits limits{deadline, self->options_.write_timeout, self->options_.read_timeout};
    const bool head_method = req.method == boost::beast::http::verb::head;
    for (int attempt = 0;; ++attempt) {
      if (self->stopped_) throw self->shut_down_error(req);
      const bool reused = held.conn().connected();
      if (!reused) co_await self->connect(held.conn(), req, deadline, timeout);
      connection& conn = held.conn();
      exchange_result r;
      if (conn.is_tls())
        r = co_await run_exchange(conn.tls(), conn, head, req.payload(), limits, head_method,
                                  self->options_.max_response_body);
      else
        r = co_await run_exchange(conn.plain(), conn, head, req.payload(), limits, head_method,
                                  self->options_.max_response_body);
      if (r.ec) {
        if (reused && attempt == 0 && r.nothing_received && is_stale_connection_error(r.ec) && !self->stopped_) {
          ++self->stale_retries_;
          held.replace_with_fresh();
          continue;
        }
        if (r.idle_expired && r.where == phase::writing)
          self->throw_failure(req, r.where, r.ec, self->options_.write_timeout, "write timeout");
        if (r.idle_expired) self->throw_failure(req, r.where, r.ec, self->options_.read_timeout, "read timeout");
        self->throw_failure(req, r.where, r.ec, timeout, "request timeout");
      }
      conn.end_exchange(r.keep_alive && !info.connection_close);
      response res{r.status, std::move(r.headers), std::move(r.body)};
      self->decode_body(req, res);
      co_return res;
    }
  }

  /// Closes idle connections, fails waiters, aborts calls in flight and refuses new ones.
  void shutdown() {
    if (stopped_) return;
    stopped_ = true;
    sweep_timer_.cancel();
    if (resolving_) {
      // A lookup not yet begun ends now; a running getaddrinfo cannot be stopped, so the waiters
      // are woken directly.
      resolving_->cancel();
      resolving_->wake_all();
    }
    for (auto& pool : pools_) {
      for (auto& c : pool.idle) c->close();
      pool.open -= pool.idle.size();
      pool.idle.clear();
      while (auto* front = pool.waiters.front()) {
        auto& w = static_cast<waiter&>(*front);
        w.state = waiter::outcome::shut_down;
        pool.waiters.notify(w);
      }
    }
    // Their operations complete with operation_aborted; the leases then close them.
    for (auto& c : leased_) c.close();
  }

  // ----- observability -----
  std::size_t open_connections(lane l) const noexcept { return pools_[index(l)].open; }
  std::size_t idle_connections(lane l) const noexcept { return pools_[index(l)].idle.size(); }
  std::size_t waiting_requests(lane l) const noexcept { return pools_[index(l)].waiters.size(); }
  std::uint64_t connections_opened() const noexcept { return connections_opened_; }
  std::uint64_t stale_retries() const noexcept { return stale_retries_; }
  std::size_t resolve_waiters() const noexcept { return resolving_ ? resolving_->waiters() : 0; }
  std::uint64_t dns_lookups() const noexcept { return dns_lookups_; }

private:
  friend class lease;

  /// A request queued for a full lane. It lives in the waiting coroutine's frame (no allocation)
  /// and leaves the queue if that frame goes away while queued (cancellation). Whoever wakes it
  /// hands it the outcome first.
  struct waiter : tinker::detail::async_event::waiter {
    enum class outcome { waiting, granted, shut_down };
    std::unique_ptr<connection> conn;  ///< when granted: a connection, or null for "open one in this slot"
    outcome state = outcome::waiting;
  };

  using connection_list = boost::intrusive::list<connection, boost::intrusive::constant_time_size<false>>;

  struct lane_pool {
    std::size_t open = 0;
    std::deque<std::unique_ptr<connection>> idle;  ///< oldest first; reuse takes the newest
    tinker::detail::async_event waiters;           ///< of type waiter, oldest first
  };

  static constexpr std::chrono::seconds dns_cache_ttl{60};

  static std::size_t index(lane l) noexcept { return static_cast<std::size_t>(l); }

  std::unique_ptr<connection> new_connection(lane l) { return std::make_unique<connection>(executor_, l, tls_.get()); }

  static asio::awaitable<lease> acquire(std::shared_ptr<transport_state> self, const request& req) {
    auto& pool = self->pools_[index(req.lane)];
    const auto now = clock::now();
    while (!pool.idle.empty()) {
      auto conn = std::move(pool.idle.back());
      pool.idle.pop_back();
      if (now - conn->idle_since() < self->options_.idle_timeout && conn->looks_alive())
        co_return lease(self, std::move(conn));
      conn->close();  // the server closed it, or it idled too long
      --pool.open;
    }
    if (pool.open < self->options_.max_connections[index(req.lane)]) {
      ++pool.open;
      co_return lease(self, self->new_connection(req.lane));
    }
    waiter w;
    bool cancelled = false;
    try {
      // Granted even if a cancellation raced with the grant (a notified waiter counts as
      // notified): the lease hands the slot on when the next co_await throws.
      co_await pool.waiters.wait(w);
    } catch (const boost::system::system_error& e) {
      if (e.code() != asio::error::operation_aborted) throw;
      cancelled = true;
    }
    if (cancelled)
      throw boost::system::system_error(asio::error::operation_aborted,
                                        self->describe(req) + ": cancelled while waiting for a connection");
    if (w.state == waiter::outcome::shut_down) throw self->shut_down_error(req);
    co_return lease(self, w.conn ? std::move(w.conn) : self->new_connection(req.lane));
  }

  /// Back from a lease: to the first waiter, to the idle list, or closed (slot to a waiter or freed).
  void release(std::unique_ptr<connection> conn) {
    conn->unlink();
    auto& pool = pools_[index(conn->which())];
    if (stopped_ || !conn->reusable()) {
      conn->close();
      conn.reset();
    }
    if (auto* front = pool.waiters.front()) {
      auto& w = static_cast<waiter&>(*front);
      w.conn = std::move(conn);
      w.state = waiter::outcome::granted;
      pool.waiters.notify(w);
      return;
    }
    if (!conn) {
      --pool.open;
      return;
    }
    conn->set_idle_since(clock::now());
    pool.idle.push_back(std::move(conn));
    arm_sweeper();
  }

  // ----- idle sweeping: one timer for the whole transport, armed only while something is idle -----

  void arm_sweeper() {
    if (sweeper_armed_ || stopped_) return;
    auto earliest = clock::time_point::max();
    for (auto& pool : pools_)
      if (!pool.idle.empty()) earliest = std::min(earliest, pool.idle.front()->idle_since());
    if (earliest == clock::time_point::max()) return;
    sweeper_armed_ = true;
    sweep_timer_.expires_at(earliest + options_.idle_timeout);
    sweep_timer_.async_wait([weak = weak_from_this()](boost::system::error_code) {
      if (auto self = weak.lock()) self->sweep();
    });
  }

  void sweep() {
    sweeper_armed_ = false;
    if (stopped_) return;
    const auto now = clock::now();
    for (auto& pool : pools_)
      while (!pool.idle.empty() && now - pool.idle.front()->idle_since() >= options_.idle_timeout) {
        pool.idle.front()->close();
        pool.idle.pop_front();
        --pool.open;
      }
    arm_sweeper();
  }

  // ----- connecting -----

  asio::awaitable<void> connect(connection& conn, const request& req, clock::time_point deadline,
                                std::chrono::milliseconds request_timeout) {
    const auto connect_deadline = std::min(deadline, clock::now() + options_.connect_timeout);
    const bool connect_bound = connect_deadline < deadline;
    const auto limit = connect_bound ? options_.connect_timeout : request_timeout;
    const char* limit_name = connect_bound ? "connect timeout" : "request timeout";

    auto endpoints = co_await resolve(req, connect_deadline, limit, limit_name);
    if (stopped_) throw shut_down_error(req);
    auto& tcp = conn.tcp();
    if (const auto ec = co_await connect_before(tcp, *endpoints, connect_deadline)) {
      if (ec != boost::beast::error::timeout && ec != asio::error::operation_aborted)
        endpoints_.reset();  // look up again next time
      throw_failure(req, phase::connecting, ec, limit, limit_name);
    }
    boost::system::error_code ignored;
    tcp.socket().set_option(asio::ip::tcp::no_delay(true), ignored);  // head and body leave at once
    if (conn.is_tls()) {
      const bool verify = !tls_verification_disabled(options_.tls);
      if (const auto hs_ec = co_await client_handshake(conn.tls(), base_.host, verify, conn.host_mismatch())) {
        if (hs_ec == boost::beast::error::timeout || hs_ec == asio::error::operation_aborted)
          throw_failure(req, phase::tls_handshake, hs_ec, limit, limit_name);
        throw api_connection_error(describe(req) + ": failed in the TLS handshake with " + base_.host_port() + ": " +
                                   describe_tls_failure(conn.tls(), hs_ec, base_.host, conn.host_mismatch()));
      }
    }
    tcp.expires_never();
    conn.set_connected();
    ++connections_opened_;
  }

  /// IP literals need no lookup; names are looked up once per minute, and concurrent connects share
  /// one lookup instead of queueing thousands of getaddrinfo calls. The wait is bounded by the
  /// connect deadline (getaddrinfo itself cannot be interrupted: it runs on, for the others).
  asio::awaitable<std::shared_ptr<const endpoint_list>> resolve(const request& req, clock::time_point deadline,
                                                                std::chrono::milliseconds limit,
                                                                std::string_view limit_name) {
    if (endpoints_ && clock::now() < endpoints_expiry_) co_return endpoints_;
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(base_.host, ec);
    if (!ec) {
      endpoints_ = std::make_shared<const endpoint_list>(endpoint_list{{address, base_.port}});
      endpoints_expiry_ = clock::time_point::max();
      co_return endpoints_;
    }
    const auto lookup = resolving_ ? resolving_ : start_lookup();
    bool cancelled = false;
    try {
      co_await lookup->wait(deadline);
    } catch (const boost::system::system_error& e) {
      if (e.code() != asio::error::operation_aborted) throw;
      cancelled = true;
    }
    if (stopped_) throw shut_down_error(req);
    // The caller's cancellation wins even when the lookup finished in the same turn of the loop.
    const asio::cancellation_state cancel_state = co_await asio::this_coro::cancellation_state;
    if (cancelled || cancel_state.cancelled() != asio::cancellation_type::none)
      throw boost::system::system_error(asio::error::operation_aborted,
                                        describe(req) + ": cancelled while resolving the host name");
    if (!lookup->finished()) throw_failure(req, phase::resolving, boost::beast::error::timeout, limit, limit_name);
    if (lookup->error()) throw_failure(req, phase::resolving, lookup->error(), limit, limit_name);
    co_return lookup->endpoints();
  }

  /// Starts the shared lookup. It wakes every waiter and fills the cache, even if all of them gave up.
  std::shared_ptr<host_lookup> start_lookup() {
    ++dns_lookups_;
    resolving_ = host_lookup::start(executor_, base_.host, base_.port, [weak = weak_from_this()](host_lookup& lookup) {
      auto self = weak.lock();
      if (!self) return;
      if (self->resolving_.get() == &lookup) self->resolving_.reset();
      if (lookup.error()) return;  // failures are not cached: the next connect looks up again
      self->endpoints_ = lookup.endpoints();
      self->endpoints_expiry_ = clock::now() + dns_cache_ttl;
    });
    return resolving_;
  }

  // ----- results and errors -----

  void decode_body(const request& req, response& res) const {
    auto it = res.headers.find(boost::beast::http::field::content_encoding);
    if (it == res.headers.end()) return;
    std::string_view encoding(it->value().data(), it->value().size());
    while (!encoding.empty() && (encoding.back() == ' ' || encoding.back() == '\t')) encoding.remove_suffix(1);
    while (!encoding.empty() && (encoding.front() == ' ' || encoding.front() == '\t')) encoding.remove_prefix(1);
    if (encoding.empty() || ascii_iequals(encoding, "identity")) return;
    if (ascii_iequals(encoding, "gzip") || ascii_iequals(encoding, "x-gzip") || ascii_iequals(encoding, "deflate")) {
      try {
        res.body = gzip_decompress(res.body, options_.max_response_body);
      } catch (const gzip_error& e) {
        throw api_response_validation_error(describe(req) + ": cannot decode the " + std::string(encoding) +
                                            " response body (HTTP " + std::to_string(res.status) + "): " + e.what());
      }
      return;
    }
    throw api_response_validation_error(describe(req) + ": the response uses an unsupported Content-Encoding '" +
                                        std::string(encoding) + "'");
  }

  /// "POST https://host:443/prefix/api/v1/x": method, URL, never a header.
  std::string describe(const request& req) const {
    const auto method = boost::beast::http::to_string(req.method);
    std::string out(method.data(), method.size());
    out += ' ';
    out += base_.scheme;
    out += "://";
    out += base_.host_port();
    out += base_.path_prefix;
    out += req.target;
    return out;
  }

  boost::system::system_error shut_down_error(const request& req) const {
    return boost::system::system_error(asio::error::operation_aborted, describe(req) + ": the transport was shut down");
  }

  [[noreturn]] void throw_failure(const request& req, phase where, const boost::system::error_code& ec,
                                  std::chrono::milliseconds limit, std::string_view limit_name) const {
    const auto what = describe(req);
    const auto during = std::string(phase_text(where));
    if (ec == asio::error::operation_aborted) {
      if (stopped_)
        throw boost::system::system_error(ec, what + ": aborted while " + during + ": the transport was shut down");
      throw boost::system::system_error(ec, what + ": cancelled while " + during);
    }
    if (ec == boost::beast::error::timeout)
      throw api_timeout_error(what + ": timed out while " + during + " (" + std::string(limit_name) + " " +
                              std::to_string(limit.count()) + " ms)");
    if (ec == boost::beast::http::error::body_limit)
      throw api_response_validation_error(what + ": the response body exceeds the limit of " +
                                          std::to_string(options_.max_response_body) +
                                          " bytes (transport_options.max_response_body)");
    if (ec == boost::beast::http::error::header_limit)
      throw api_response_validation_error(what + ": the response headers exceed " +
                                          std::to_string(max_response_header_bytes) + " bytes");
    throw api_connection_error(what + ": failed while " + during + ": " + ec.message());
  }

  asio::any_io_executor executor_;
  url base_;
  transport_options options_;
  std::shared_ptr<asio::ssl::context> tls_;
  std::array<lane_pool, lane_count> pools_;
  connection_list leased_;
  asio::steady_timer sweep_timer_;
  bool sweeper_armed_ = false;
  bool stopped_ = false;
  std::shared_ptr<const endpoint_list> endpoints_;
  clock::time_point endpoints_expiry_{};
  std::shared_ptr<host_lookup> resolving_;
  std::uint64_t connections_opened_ = 0;
  std::uint64_t stale_retries_ = 0;
  std::uint64_t dns_lookups_ = 0;
};

inline lease::lease(std::shared_ptr<transport_state> owner, std::unique_ptr<connection> conn)
    : owner_(std::move(owner)), conn_(std::move(conn)) {
  owner_->leased_.push_back(*conn_);
}

inline lease::~lease() {
  if (conn_) owner_->release(std::move(conn_));
}

inline void lease::replace_with_fresh() {
  const auto which = conn_->which();
  conn_->close();
  conn_ = owner_->new_connection(which);  // the old one unlinks itself as it is destroyed
  owner_->leased_.push_back(*conn_);
}

}  // namespace tinker::http::detail
