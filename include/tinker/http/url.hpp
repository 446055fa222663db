// The base URL of a Tinker server: scheme, host, port and an optional path prefix
// ("https://tinker.thinkingmachines.dev/services/tinker-prod"). Endpoint paths are appended to the
// prefix (docs/protocol.md §2.1), so a deployment behind a path-routing proxy keeps working.
#pragma once

#include <tinker/error.hpp>

#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

namespace tinker::http {

/// `text` percent-encoded as a query value: everything but RFC 3986's unreserved characters, so a
/// user's string can neither end the query ('#'), add a parameter ('&', '='), turn into a space
/// ('+') nor smuggle an escape ('%').
inline std::string escape_query_value(std::string_view text, std::string_view also_keep = {}) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '~' || also_keep.find(c) != std::string_view::npos) {
      out += c;
    } else {
      out += '%';
      out += hex[u >> 4];
      out += hex[u & 15];
    }
  }
  return out;
}

/// `text` percent-encoded as one path segment: as a query value, except that ':' and '@' (which
/// RFC 3986 allows in a segment, and which ids like `<session>:train:0` hold) stay as they are.
/// A '/' cannot add a segment, nor '?' or '#' end the path.
inline std::string escape_path_segment(std::string_view text) { return escape_query_value(text, ":@"); }

/// The request path `/<s1>/<s2>/...`, every segment percent-encoded with escape_path_segment: the
/// one way the client puts ids and names (run ids, checkpoint names, session and sampler ids) into
/// a URL, so none of them can add a segment, end the path or arrive changed.
inline std::string path_of(std::initializer_list<std::string_view> segments) {
  std::string out;
  for (const auto s : segments) {
    out += '/';
    out += escape_path_segment(s);
  }
  return out;
}

/// `text` with its %XX escapes decoded (and, in a form-encoded query, '+' as a space); nullopt when
/// a '%' is not followed by two hex digits. The result may hold any byte: callers check what they
/// accept.
inline std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space = false) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%') {
      if (text.size() - i < 3) return std::nullopt;
      const int hi = hex(text[i + 1]), lo = hex(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += plus_is_space && c == '+' ? ' ' : c;
    }
  }
  return out;
}

namespace detail {

inline char ascii_lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

/// True when `text` holds a space, a control character or DEL: never valid anywhere in a URL.
inline bool has_space_or_control(std::string_view text) noexcept {
  for (const char c : text)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return true;
  return false;
}

/// "host", "host:port" or "[::1]:port": the Host header, with the port only when it is not the
/// scheme's default.
inline std::string host_header(const std::string& host, std::uint16_t port, bool tls) {
  std::string out = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (port != (tls ? 443 : 80)) out += ":" + std::to_string(port);
  return out;
}

/// Parses the front of an absolute http(s) URL, `scheme://host[:port]`: the scheme lower-cased,
/// the host lower-cased (an IPv6 literal without its brackets), the port explicit or the scheme's
/// default. The authority ends at the first '/', '?' or '#'; what follows it is left in `rest`.
/// Returns what is wrong, or "" (the caller words the message and decides about the rest).
inline std::string parse_origin(std::string_view text, std::string& scheme, std::string& host, std::uint16_t& port,
                                std::string_view& rest) {
  const auto sep = text.find("://");
  if (sep == std::string_view::npos) return "expected an absolute http:// or https:// URL";
  scheme.clear();
  for (const char c : text.substr(0, sep)) scheme += ascii_lower(c);
  if (scheme != "http" && scheme != "https") return "the scheme must be http or https";
  const auto after_scheme = text.substr(sep + 3);
  const auto authority_end = after_scheme.find_first_of("/?#");
  const auto authority = after_scheme.substr(0, authority_end);
  rest = authority_end == std::string_view::npos ? std::string_view() : after_scheme.substr(authority_end);
  if (authority.find('@') != std::string_view::npos) return "user info (user@host) is not supported";

  std::string_view host_text, port_text;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return "unterminated IPv6 literal";
    host_text = authority.substr(1, close - 1);
    if (host_text.empty() || host_text.find_first_not_of("0123456789abcdefABCDEF:.") != std::string_view::npos)
      return "malformed IPv6 literal";
    const auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return "unexpected characters after the IPv6 literal";
      port_text = after.substr(1);
      if (port_text.empty()) return "empty port";
    }
  } else {
    const auto colon = authority.rfind(':');
    host_text = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return "empty port";
    }
    if (host_text.find(':') != std::string_view::npos)
      return "IPv6 literals must be written in brackets, e.g. http://[::1]:8000";
    for (const char c : host_text)
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
            c == '_'))
        return "the host contains an invalid character";
  }
  if (host_text.empty()) return "the host is empty";
  host.clear();
  for (const char c : host_text) host += ascii_lower(c);

  if (!port_text.empty()) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || value == 0 || value > 65535)
      return "the port must be a number in 1..65535";
    port = static_cast<std::uint16_t>(value);
  } else {
    port = scheme == "https" ? 443 : 80;
  }
  return {};
}

}  // namespace detail

struct url {
  std::string scheme;       ///< "http" or "https" (lower case)
  std::string host;         ///< host name or IP literal; IPv6 without brackets ("::1")
  std::uint16_t port = 0;   ///< explicit, or 80 / 443 by scheme
  std::string path_prefix;  ///< "" or "/services/tinker-prod" (never a trailing '/')

  /// Parses `http[s]://host[:port][/prefix]`. IPv6 literals go in brackets. User info, query
  /// strings, fragments and other schemes are rejected with tinker::invalid_argument naming the URL
  /// (as redact() shows it: a password in it never reaches the message).
  static url parse(std::string_view text) {
    auto fail = [&](std::string_view why) -> url {
      throw tinker::invalid_argument("invalid base URL '" + redact(text) + "': " + std::string(why));
    };
    if (text.find("://") == std::string_view::npos) return fail("expected http://host[:port][/path] or https://...");
    if (detail::has_space_or_control(text)) return fail("it contains whitespace or control characters");
    url u;
    std::string_view path;
    if (auto problem = detail::parse_origin(text, u.scheme, u.host, u.port, path); !problem.empty())
      return fail(problem);
    if (path.find_first_of("?#") != std::string_view::npos) return fail("a query string or fragment is not allowed");
    while (!path.empty() && path.back() == '/') path.remove_suffix(1);
    u.path_prefix = std::string(path);
    return u;
  }

  bool is_tls() const noexcept { return scheme == "https"; }

  /// URL text fit for a message: user info ("user:pass@") becomes "***@", even when the text does
  /// not parse. Everything up to the last '@' before the path is treated as user info — a password
  /// may hold ':' or an unescaped '/', and over-redacting a malformed URL costs nothing.
  static std::string redact(std::string_view text) {
    const auto sep = text.find("://");
    const auto start = sep == std::string_view::npos ? 0 : sep + 3;
    const auto at = text.rfind('@');
    if (at == std::string_view::npos || at < start) return std::string(text);
    return std::string(text.substr(0, start)) + "***" + std::string(text.substr(at));
  }

  /// The request target for an endpoint: prefix + path ("/api/v1/x?y=1"); a missing leading '/'
  /// on the endpoint is supplied.
  std::string target(std::string_view endpoint_path) const {
    std::string out;
    out.reserve(path_prefix.size() + endpoint_path.size() + 1);
    out += path_prefix;
    if (endpoint_path.empty() || endpoint_path.front() != '/') out += '/';
    out += endpoint_path;
    return out;
  }

  /// The Host header value: the port only when it is not the scheme's default; IPv6 in brackets.
  std::string host_header() const { return detail::host_header(host, port, is_tls()); }

  /// "host:port" for messages ("[::1]:8000" for IPv6).
  std::string host_port() const {
    return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  }

  /// The URL back as text, without a trailing slash.
  std::string str() const { return scheme + "://" + host_header() + path_prefix; }
};

}  // namespace tinker::http
