// Turning a non-2xx answer into the matching exception (docs/protocol.md §3.1).
#pragma once

#include <tinker/error.hpp>

#include <exception>
#include <string>
#include <string_view>
#include <vector>

namespace tinker::detail {

/// The server's error text: a JSON body is kept as it is (the protocol does not fix its shape),
/// long bodies are cut.
inline std::string describe_body(std::string_view body) {
  constexpr std::size_t max = 2000;
  if (body.empty()) return "(empty body)";
  if (body.size() <= max) return std::string(body);
  return std::string(body.substr(0, max)) + "... (" + std::to_string(body.size()) + " bytes)";
}

/// `text` with every occurrence of each (non-empty) secret replaced by "[redacted]". A server may
/// echo what it was sent (a 401 quoting the key, a 422 quoting the request body with its
/// weights_access_token), and error bodies end up in exception messages and log lines.
inline std::string redact_secrets(std::string text, const std::vector<std::string>& secrets) {
  for (const auto& secret : secrets) {
    if (secret.empty()) continue;
    for (auto pos = text.find(secret); pos != std::string::npos; pos = text.find(secret, pos + 10))
      text.replace(pos, secret.size(), "[redacted]");
  }
  return text;
}

/// The exception for an HTTP status, e.g. not_found_error for 404, with a message naming the call.
/// `secrets` (the credentials the call carried) are redacted from the body and the message.
inline std::exception_ptr make_status_error(std::string_view method, std::string_view path, unsigned status,
                                            std::string body, const std::vector<std::string>& secrets = {}) {
  body = redact_secrets(std::move(body), secrets);
  const auto what = std::string(method) + " " + std::string(path) + " failed with HTTP " + std::to_string(status) +
                    ": " + describe_body(body);
  const int s = static_cast<int>(status);
  switch (status) {
    case 400: return std::make_exception_ptr(bad_request_error(s, std::move(body), what));
    case 401: return std::make_exception_ptr(authentication_error(s, std::move(body), what));
    case 403: return std::make_exception_ptr(permission_denied_error(s, std::move(body), what));
    case 404: return std::make_exception_ptr(not_found_error(s, std::move(body), what));
    case 409: return std::make_exception_ptr(conflict_error(s, std::move(body), what));
    case 410: return std::make_exception_ptr(gone_error(s, std::move(body), what));
    case 422: return std::make_exception_ptr(unprocessable_entity_error(s, std::move(body), what));
    case 429: return std::make_exception_ptr(rate_limit_error(s, std::move(body), what));
    default:
      if (status >= 500) return std::make_exception_ptr(internal_server_error(s, std::move(body), what));
      return std::make_exception_ptr(api_status_error(s, std::move(body), what));
  }
}

/// Whether the generic retry layer retries this status: 408, 409, 429 and 5xx (as the SDK does).
constexpr bool retryable_status(unsigned status) noexcept {
  return status == 408 || status == 409 || status == 429 || status >= 500;
}

}  // namespace tinker::detail
