// What the client transport sends and receives: a request (method, endpoint path, body, headers,
// lane, optional deadline) and a response (status, headers, decoded body).
#pragma once

#include <tinker/http/lane.hpp>

#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/verb.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tinker::http {

struct request {
  boost::beast::http::verb method = boost::beast::http::verb::post;
  /// Endpoint path including any query, e.g. "/api/v1/asample"; the base URL's prefix is added by
  /// the transport.
  std::string target;
  /// Moved into the transport and written from where it lies; never copied.
  std::string body;
  /// Written instead of `body` when set: lets a caller that may resend the same bytes (retries)
  /// keep one copy for all attempts.
  std::shared_ptr<const std::string> shared_body;

  const std::string& payload() const noexcept { return shared_body ? *shared_body : body; }
  /// Extra headers, e.g. X-API-Key, Content-Type, Accept. The transport adds Host, Content-Length,
  /// Accept-Encoding (when accept_gzip and not given) and User-Agent (when not given). Values are
  /// never put into error messages (the API key travels here).
  std::vector<std::pair<std::string, std::string>> headers;
  http::lane lane = http::lane::train;
  /// Overrides transport_options::request_timeout for this call.
  std::optional<std::chrono::milliseconds> timeout;
};

struct response {
  unsigned status = 0;
  /// The headers as received (Content-Encoding included, so callers can see what the wire carried).
  boost::beast::http::fields headers;
  /// Already decoded: a gzip-encoded reply is inflated.
  std::string body;
};

}  // namespace tinker::http
