// Request routing for the local engine: splits a target into path segments and query
// parameters, and names each route (fault injection and logs refer to routes by these names).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tinker::local::detail {

/// Decodes %XX escapes and '+' in a query component.
inline std::string url_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else {
      out += s[i] == '+' ? ' ' : s[i];
    }
  }
  return out;
}

/// Escapes everything but unreserved characters (for the query strings the engine writes).
inline std::string url_encode(std::string_view s) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += digits[c >> 4];
      out += digits[c & 15];
    }
  }
  return out;
}

/// A request target taken apart. Path parameters are kept verbatim (run ids contain colons).
struct parsed_target {
  std::vector<std::string> segments;  ///< path segments, empty ones dropped
  std::map<std::string, std::string> query;

  static parsed_target parse(std::string_view target) {
    parsed_target t;
    const auto q = target.find('?');
    auto path = target.substr(0, q);
    std::size_t start = 0;
    while (start <= path.size()) {
      const auto slash = path.find('/', start);
      const auto end = slash == std::string_view::npos ? path.size() : slash;
      if (end > start) t.segments.emplace_back(path.substr(start, end - start));
      if (slash == std::string_view::npos) break;
      start = slash + 1;
    }
    if (q != std::string_view::npos) {
      auto query = target.substr(q + 1);
      while (!query.empty()) {
        const auto amp = query.find('&');
        const auto pair = query.substr(0, amp);
        const auto eq = pair.find('=');
        if (!pair.empty())
          t.query[url_decode(pair.substr(0, eq))] = eq == std::string_view::npos ? "" : url_decode(pair.substr(eq + 1));
        if (amp == std::string_view::npos) break;
        query.remove_prefix(amp + 1);
      }
    }
    return t;
  }

  /// Whether the path is /api/v1/<rest...> with `rest` matching `pattern` ("*" matches one segment).
  bool matches_api(std::initializer_list<std::string_view> pattern) const {
    if (segments.size() != pattern.size() + 2 || segments[0] != "api" || segments[1] != "v1") return false;
    std::size_t i = 2;
    for (auto p : pattern) {
      if (p != "*" && segments[i] != p) return false;
      ++i;
    }
    return true;
  }

  const std::string& api_segment(std::size_t i) const { return segments.at(i + 2); }

  std::optional<std::string> query_value(const std::string& key) const {
    auto it = query.find(key);
    return it == query.end() ? std::nullopt : std::optional<std::string>(it->second);
  }
};

}  // namespace tinker::local::detail
