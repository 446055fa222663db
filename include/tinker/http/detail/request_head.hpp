// The request line and header block of an HTTP/1.1 request, written by hand into one string: one
// allocation per call instead of one per Beast field, and the body is sent after it with a
// gather write instead of being copied into a message object.
#pragma once

#include <tinker/error.hpp>
#include <tinker/http/message.hpp>
#include <tinker/http/url.hpp>
#include <tinker/version.hpp>

#include <boost/beast/http/verb.hpp>

#include <charconv>
#include <string>
#include <string_view>

namespace tinker::http::detail {

inline bool ascii_iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

/// RFC 9110 token character (header names).
inline bool is_token_char(char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return c != '\0' && std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

/// Does a comma-separated header value contain `token` (case-insensitive)? ("close", "gzip").
inline bool header_has_token(std::string_view value, std::string_view token) noexcept {
  while (!value.empty()) {
    const auto comma = value.find(',');
    auto item = value.substr(0, comma);
    if (const auto semi = item.find(';'); semi != std::string_view::npos) item = item.substr(0, semi);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (ascii_iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

/// What the head builder learned about the request while writing it.
struct head_info {
  bool connection_close = false;  ///< the caller asked for `Connection: close`
};

/// Writes "METHOD prefix+target HTTP/1.1\r\n" and the headers. Throws tinker::invalid_argument for a
/// target or header that would corrupt the message (CR/LF injection, bad names); messages name the
/// header, never its value.
inline std::string build_request_head(const request& req, const url& base, bool accept_gzip, head_info& info) {
  namespace bhttp = boost::beast::http;
  if (req.method == bhttp::verb::unknown) throw tinker::invalid_argument("request.method: unknown HTTP method");
  const std::string_view target = req.target;
  if (target.empty() || target.front() != '/')
    throw tinker::invalid_argument("request.target '" + req.target + "' must start with '/'");
  for (char c : target)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
      throw tinker::invalid_argument("request.target '" + req.target + "' contains a space or a control character");

  const auto method = bhttp::to_string(req.method);
  const auto host = base.host_header();
  bool has_user_agent = false, has_accept_encoding = false;
  std::size_t size = method.size() + base.path_prefix.size() + target.size() + 64 + host.size();
  for (const auto& [name, value] : req.headers) {
    if (name.empty()) throw tinker::invalid_argument("request.headers: empty header name");
    for (char c : name)
      if (!is_token_char(c)) throw tinker::invalid_argument("request.headers: invalid header name '" + name + "'");
    for (char c : value)
      if (c == '\r' || c == '\n' || c == '\0')
        throw tinker::invalid_argument("request.headers: the value of '" + name + "' contains CR, LF or NUL");
    if (ascii_iequals(name, "host") || ascii_iequals(name, "content-length") ||
        ascii_iequals(name, "transfer-encoding"))
      throw tinker::invalid_argument("request.headers: '" + name + "' is set by the transport");
    if (ascii_iequals(name, "user-agent")) has_user_agent = true;
    if (ascii_iequals(name, "accept-encoding")) has_accept_encoding = true;
    if (ascii_iequals(name, "connection") && header_has_token(value, "close")) info.connection_close = true;
    size += name.size() + value.size() + 4;
  }

  std::string head;
  head.reserve(size);
  head.append(method.data(), method.size());
  head += ' ';
  head += base.path_prefix;
  head += target;
  head += " HTTP/1.1\r\nHost: ";
  head += host;
  head += "\r\n";
  for (const auto& [name, value] : req.headers) {
    head += name;
    head += ": ";
    head += value;
    head += "\r\n";
  }
  if (!has_user_agent) {
    head += "User-Agent: tinker-cpp/";
    head += library_version;
    head += "\r\n";
  }
  if (accept_gzip && !has_accept_encoding) head += "Accept-Encoding: gzip\r\n";
  // Methods that carry a body always state its length (0 included: some servers answer 411 otherwise).
  const bool body_method =
      req.method == bhttp::verb::post || req.method == bhttp::verb::put || req.method == bhttp::verb::patch;
  if (!req.payload().empty() || body_method) {
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, req.payload().size());
    (void)ec;
    head += "Content-Length: ";
    head.append(digits, end);
    head += "\r\n";
  }
  head += "\r\n";
  return head;
}

}  // namespace tinker::http::detail
