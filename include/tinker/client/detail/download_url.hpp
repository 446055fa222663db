// The URL of a download: absolute http(s) URLs with a query (signed URLs carry their signature
// there), redirect targets resolved against the current URL (RFC 3986 §5.2), and a redacted form
// for messages that never shows the query.
#pragma once

#include <tinker/error.hpp>

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tinker::detail {

struct download_url {
  std::string scheme;  ///< "http" or "https"
  std::string host;    ///< lower case; IPv6 literals without brackets
  std::uint16_t port = 0;
  std::string path;   ///< starts with '/'
  std::string query;  ///< without the '?', possibly empty

  bool https() const noexcept { return scheme == "https"; }

  /// "host", "host:port", "[::1]:port": the Host header (the port only when not the default).
  std::string host_header() const {
    std::string out = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    if (port != (https() ? 443 : 80)) out += ":" + std::to_string(port);
    return out;
  }

  /// The request target: path and query.
  std::string target() const { return query.empty() ? path : path + "?" + query; }

  /// For messages and logs: scheme, authority and path. The query (a signature) is never shown.
  std::string redacted() const { return scheme + "://" + host_header() + path; }

  /// Parses an absolute http/https URL. Throws tinker::invalid_argument whose message shows the
  /// URL without its query or fragment.
  static download_url parse(std::string_view text) {
    download_url u;
    if (auto problem = u.parse_into(text); !problem.empty())
      throw tinker::invalid_argument("invalid download URL '" + redact_text(text) + "': " + problem);
    return u;
  }

  /// The URL a redirect's Location points at: absolute, scheme-relative ("//host/p"),
  /// absolute-path ("/p"), query-only ("?q") or relative ("../p") references.
  download_url resolve(std::string_view location) const {
    auto fail = [&](const std::string& why) -> download_url {
      throw tinker::invalid_argument("invalid redirect Location '" + redact_text(location) + "' from " + redacted() +
                                     ": " + why);
    };
    location = trim(location);
    if (location.empty()) return fail("it is empty");
    for (const char c : location)
      if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
        return fail("it contains whitespace or control characters");
    if (const auto hash = location.find('#'); hash != std::string_view::npos) location = location.substr(0, hash);

    if (has_scheme(location)) {
      download_url u;
      if (auto problem = u.parse_into(location); !problem.empty()) return fail(problem);
      return u;
    }
    if (location.substr(0, 2) == "//") {
      download_url u;
      if (auto problem = u.parse_into(scheme + ":" + std::string(location)); !problem.empty()) return fail(problem);
      return u;
    }
    download_url u = *this;
    const auto qpos = location.find('?');
    const auto ref_path = location.substr(0, qpos);
    const auto ref_query = qpos == std::string_view::npos ? std::string_view() : location.substr(qpos + 1);
    if (ref_path.empty()) {  // "?q": same path, new query
      u.query = std::string(ref_query);
      return u;
    }
    std::string merged;
    if (ref_path.front() == '/') {
      merged = std::string(ref_path);
    } else {
      merged = path.substr(0, path.rfind('/') + 1);
      merged += ref_path;
    }
    u.path = remove_dot_segments(merged);
    u.query = std::string(ref_query);
    return u;
  }

  /// Text of a URL fit for a message: without query and fragment (and user info), even if the
  /// URL could not be parsed.
  static std::string redact_text(std::string_view text) {
    text = text.substr(0, text.find_first_of("?#"));
    if (const auto sep = text.find("://"); sep != std::string_view::npos) {
      const auto authority_end = text.find('/', sep + 3);
      const auto at = text.substr(0, authority_end).rfind('@');
      if (at != std::string_view::npos && at > sep)
        return std::string(text.substr(0, sep + 3)) + std::string(text.substr(at + 1));
    }
    std::string out;
    for (const char c : text.substr(0, 500)) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
    return out;
  }

private:
  static char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

  static std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  }

  static bool has_scheme(std::string_view s) noexcept {
    // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"
    for (std::size_t i = 0; i < s.size(); ++i) {
      const char c = s[i];
      if (c == ':') return i > 0;
      const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
      if (!(alpha || (i > 0 && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.')))) return false;
    }
    return false;
  }

  /// RFC 3986 §5.2.4, on a path that starts with '/'.
  static std::string remove_dot_segments(std::string_view in) {
    std::vector<std::string_view> out;
    bool trailing_slash = false;
    std::size_t pos = 1;
    while (pos <= in.size()) {
      const auto next = in.find('/', pos);
      const auto seg = in.substr(pos, next == std::string_view::npos ? std::string_view::npos : next - pos);
      const bool last = next == std::string_view::npos;
      if (seg == "..") {
        if (!out.empty()) out.pop_back();
        trailing_slash = true;
      } else if (seg == ".") {
        trailing_slash = true;
      } else {
        out.push_back(seg);
        trailing_slash = false;
      }
      if (last) break;
      pos = next + 1;
    }
    std::string result;
    for (const auto seg : out) {
      result += '/';
      result += seg;
    }
    if (trailing_slash || result.empty()) result += '/';
    return result;
  }

  /// Returns "" on success, else what is wrong.
  std::string parse_into(std::string_view text) {
    for (const char c : text)
      if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return "it contains whitespace or control characters";
    const auto sep = text.find("://");
    if (sep == std::string_view::npos) return "expected an absolute http:// or https:// URL";
    scheme.clear();
    for (const char c : text.substr(0, sep)) scheme += lower(c);
    if (scheme != "http" && scheme != "https") return "the scheme must be http or https";
    auto rest = text.substr(sep + 3);
    rest = rest.substr(0, rest.find('#'));
    const auto authority_end = rest.find_first_of("/?");
    const auto authority = rest.substr(0, authority_end);
    auto path_and_query = authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
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
      for (const char c : host_text)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
              c == '_'))
          return "the host contains an invalid character";
    }
    if (host_text.empty()) return "the host is empty";
    host.clear();
    for (const char c : host_text) host += lower(c);
    if (!port_text.empty()) {
      unsigned value = 0;
      const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
      if (ec != std::errc() || end != port_text.data() + port_text.size() || value == 0 || value > 65535)
        return "the port must be a number in 1..65535";
      port = static_cast<std::uint16_t>(value);
    } else {
      port = https() ? 443 : 80;
    }
    const auto q = path_and_query.find('?');
    path = std::string(path_and_query.substr(0, q));
    query = q == std::string_view::npos ? std::string() : std::string(path_and_query.substr(q + 1));
    if (path.empty()) path = "/";
    return {};
  }
};

}  // namespace tinker::detail
