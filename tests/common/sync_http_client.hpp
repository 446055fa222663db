// A deliberately small, synchronous HTTP/1.1 client for tests of the local engine: one keep-alive
// connection, no retries, no pooling — independent of the library's own transport, so engine
// tests do not depend on the code the client tests exercise.
#pragma once

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tinker::test {

struct sync_response {
  unsigned status = 0;
  boost::beast::http::fields headers;
  std::string body;

  boost::json::value json() const { return boost::json::parse(body); }
  std::string header(boost::beast::string_view name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : std::string(it->value());
  }
};

class sync_http_client {
public:
  /// `base` is "http://host:port".
  explicit sync_http_client(std::string base, std::string api_key = "tml-test-key") : api_key_(std::move(api_key)) {
    auto rest = base.substr(base.find("://") + 3);
    const auto colon = rest.rfind(':');
    host_ = rest.substr(0, colon);
    port_ = rest.substr(colon + 1);
  }

  void set_api_key(std::string key) { api_key_ = std::move(key); }

  sync_response request(boost::beast::http::verb method, const std::string& target, std::string body = {},
                        std::vector<std::pair<std::string, std::string>> headers = {},
                        std::string content_type = "application/json") {
    namespace http = boost::beast::http;
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, host_ + ":" + port_);
    if (!api_key_.empty()) req.set("X-API-Key", api_key_);
    if (!body.empty() || method == http::verb::post || method == http::verb::put)
      req.set(http::field::content_type, content_type);
    for (auto& [k, v] : headers) req.set(k, v);
    req.body() = std::move(body);
    req.prepare_payload();
    for (int attempt = 0;; ++attempt) {
      try {
        ensure_connected();
        http::write(*stream_, req);
        boost::beast::flat_buffer buffer;
        http::response_parser<http::string_body> parser;
        parser.body_limit(1u << 30);
        http::read(*stream_, buffer, parser);
        auto res = parser.release();
        if (!res.keep_alive()) stream_.reset();
        return sync_response{res.result_int(), res.base(), std::move(res.body())};
      } catch (const boost::system::system_error&) {
        stream_.reset();  // the server closed an idle keep-alive connection: one fresh try
        if (attempt > 0) throw;
      }
    }
  }

  sync_response get(const std::string& target) { return request(boost::beast::http::verb::get, target); }
  sync_response post(const std::string& target, const boost::json::value& body) {
    return request(boost::beast::http::verb::post, target, boost::json::serialize(body));
  }
  sync_response post_raw(const std::string& target, std::string body, std::string content_type,
                         std::vector<std::pair<std::string, std::string>> headers = {}) {
    return request(boost::beast::http::verb::post, target, std::move(body), std::move(headers),
                   std::move(content_type));
  }
  sync_response del(const std::string& target) { return request(boost::beast::http::verb::delete_, target); }
  sync_response put(const std::string& target, const boost::json::value& body) {
    return request(boost::beast::http::verb::put, target, boost::json::serialize(body));
  }

private:
  void ensure_connected() {
    if (stream_) return;
    boost::asio::ip::tcp::resolver resolver(io_);
    stream_.emplace(io_);
    stream_->connect(resolver.resolve(host_, port_));
  }

  boost::asio::io_context io_;
  std::optional<boost::beast::tcp_stream> stream_;
  std::string host_, port_, api_key_;
};

}  // namespace tinker::test
