// The local engine behind tinker::local::engine: its core (engine_core.hpp: every component and
// handler, no sockets) served by an HTTP server. The core is shared with the coroutines that work
// for it (model queues, sample batches), so it outlives this object until they end.
#pragma once

#include <tinker/local/detail/dispatch.hpp>
#include <tinker/local/detail/engine_core.hpp>
#include <tinker/local/engine_options.hpp>
#include <tinker/local/http_server.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace tinker::local::detail {

class engine_impl {
public:
  engine_impl(asio::any_io_executor io, engine_options options)
      : io_(io), core_(std::make_shared<engine_core>(std::move(io), std::move(options))) {}

  engine_impl(const engine_impl&) = delete;
  engine_impl& operator=(const engine_impl&) = delete;
  ~engine_impl() { stop(); }

  void start() {
    const auto& o = core_->options();
    http_server_options so;
    so.host = o.host;
    so.port = o.port;
    so.max_body_bytes = o.max_body_bytes;
    so.tls_cert_file = o.tls_cert_file;
    so.tls_key_file = o.tls_key_file;
    so.gzip_executor = core_->compute_executor();  // large answers are compressed off the I/O thread
    std::weak_ptr<engine_core> weak = core_;
    server_ = std::make_unique<http_server>(io_, so,
                                            [weak](http_request& req) -> asio::awaitable<std::optional<http_response>> {
                                              auto self = weak.lock();
                                              if (!self) co_return std::nullopt;
                                              co_return co_await serve(*self, req);
                                            });
    server_->start();
    core_->set_listening_port(server_->port());
    core_->start_maintenance();
  }

  void stop() {
    if (stopped_) return;
    stopped_ = true;
    if (server_) server_->stop();
    core_->stop();
  }

  std::uint16_t port() const { return server_ ? server_->port() : 0; }

  std::string base_url() const {
    const auto& o = core_->options();
    const bool tls = o.tls_cert_file && o.tls_key_file;
    const auto& host = o.host.find(':') != std::string::npos ? "[" + o.host + "]" : o.host;
    return std::string(tls ? "https://" : "http://") + host + ":" + std::to_string(port());
  }

  engine_core& core() noexcept { return *core_; }
  const engine_core& core() const noexcept { return *core_; }
  const http_server* server() const noexcept { return server_.get(); }

private:
  asio::any_io_executor io_;
  std::shared_ptr<engine_core> core_;
  std::unique_ptr<http_server> server_;
  bool stopped_ = false;
};

}  // namespace tinker::local::detail
