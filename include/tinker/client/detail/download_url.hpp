// The URL of a download: what a download adds to http/url.hpp's parsing (which it uses for scheme,
// host and port): a path and a query (signed URLs carry their signature there), redirect targets
// resolved against the current URL (RFC 3986 §5.2), and a redacted form for messages that never
// shows the query.
#pragma once

#include <tinker/error.hpp>
#include <tinker/http/url.hpp>

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
  std::string host_header() const { return http::detail::host_header(host, port, https()); }

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
    if (http::detail::has_space_or_control(location)) return fail("it contains whitespace or control characters");
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
    if (http::detail::has_space_or_control(text)) return "it contains whitespace or control characters";
    std::string_view rest;
    if (auto problem = http::detail::parse_origin(text, scheme, host, port, rest); !problem.empty()) return problem;
    rest = rest.substr(0, rest.find('#'));
    const auto q = rest.find('?');
    path = std::string(rest.substr(0, q));
    query = q == std::string_view::npos ? std::string() : std::string(rest.substr(q + 1));
    if (path.empty()) path = "/";
    return {};
  }
};

}  // namespace tinker::detail
