// A request target taken apart (path segments, query parameters) and matched against route
// patterns. Kept apart from the route table, which needs every handler: components and tests
// parse targets without it.
#pragma once

#include <tinker/detail/utf8.hpp>
#include <tinker/http/url.hpp>
#include <tinker/tinker_path.hpp>

#include <algorithm>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tinker::local::detail {

/// A request target taken apart. Path segments are percent-decoded (clients encode ids and names;
/// run ids keep their colons either way); a segment that does not decode to well-formed UTF-8
/// free of '/' and control characters makes the target invalid (`problem` says why: the engine
/// answers 400), so no handler ever sees one.
struct parsed_target {
  std::vector<std::string> segments;  ///< decoded path segments, empty ones dropped
  std::map<std::string, std::string> query;
  std::optional<std::string> problem;  ///< why the path is invalid, if it is

  static parsed_target parse(std::string_view target) {
    parsed_target t;
    const auto q = target.find('?');
    auto path = target.substr(0, q);
    std::size_t start = 0;
    while (start <= path.size()) {
      const auto slash = path.find('/', start);
      const auto end = slash == std::string_view::npos ? path.size() : slash;
      if (end > start) t.add_segment(path.substr(start, end - start));
      if (slash == std::string_view::npos) break;
      start = slash + 1;
    }
    if (q != std::string_view::npos) {
      auto query = target.substr(q + 1);
      // (Lenient: a malformed escape in a query value is kept as written.)
      auto decode = [](std::string_view s) { return tinker::http::percent_decode(s, true).value_or(std::string(s)); };
      while (!query.empty()) {
        const auto amp = query.find('&');
        const auto pair = query.substr(0, amp);
        const auto eq = pair.find('=');
        if (!pair.empty())
          t.query[decode(pair.substr(0, eq))] = eq == std::string_view::npos ? "" : decode(pair.substr(eq + 1));
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

private:
  void add_segment(std::string_view raw) {
    auto decoded = tinker::http::percent_decode(raw);
    std::string why;
    if (!decoded)
      why = "a '%' not followed by two hex digits";
    else if (decoded->find('/') != std::string::npos)
      why = "an encoded '/' (%2F)";
    else if (!tinker::detail::is_valid_utf8(*decoded))
      why = "bytes that are not UTF-8";
    else if (std::any_of(decoded->begin(), decoded->end(),
                         [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
      why = "a control character";
    if (!why.empty()) {
      if (!problem) problem = "invalid request path: segment '" + tinker_path::printable(raw) + "' holds " + why;
      segments.emplace_back(raw);
      return;
    }
    segments.push_back(std::move(*decoded));
  }
};

/// Whether path `segments` (empty ones dropped) match `pattern`, whose segments are literals, `{x}`
/// (any one segment) or a final `{...}` (one or more segments).
inline bool route_pattern_matches(std::string_view pattern, const std::vector<std::string>& segments) {
  std::size_t i = 0;
  while (!pattern.empty()) {
    if (pattern.front() == '/') {
      pattern.remove_prefix(1);
      continue;
    }
    const auto slash = pattern.find('/');
    const auto part = pattern.substr(0, slash);
    pattern.remove_prefix(slash == std::string_view::npos ? pattern.size() : slash);
    if (part == "{...}") return i < segments.size();
    if (i >= segments.size()) return false;
    if (part.front() != '{' && segments[i] != part) return false;
    ++i;
  }
  return i == segments.size();
}

}  // namespace tinker::local::detail
