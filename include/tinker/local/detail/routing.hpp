// Request routing for the local engine: splits a target into path segments and query
// parameters, and names each route (fault injection and logs refer to routes by these names).
#pragma once

#include <tinker/detail/utf8.hpp>
#include <tinker/http/url.hpp>
#include <tinker/tinker_path.hpp>

#include <boost/beast/http/verb.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <ostream>  // before Beast's verb.hpp, which needs it (Boost 1.81) but does not include it
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

/// One endpoint of the engine: its name (what fault injection, request counts and the request
/// observer call it), method, path pattern and whether it needs an API key. Pattern segments are
/// literals, `{x}` (any one segment) or a final `{...}` (one or more segments).
struct route_spec {
  std::string_view name;
  boost::beast::http::verb method;
  std::string_view pattern;
  bool authenticated = true;
};

/// Every route the engine serves (the first match wins).
inline const std::vector<route_spec>& route_table() {
  using v = boost::beast::http::verb;
  static const std::vector<route_spec> table = {
      {"healthz", v::get, "/api/v1/healthz", false},
      {"client_config", v::post, "/api/v1/client/config"},
      {"dynamic_config", v::post, "/api/v1/client/dynamic_config"},
      {"telemetry", v::post, "/api/v1/telemetry"},
      {"get_server_capabilities", v::get, "/api/v1/get_server_capabilities"},
      {"create_session", v::post, "/api/v1/create_session"},
      {"session_heartbeat", v::post, "/api/v1/session_heartbeat"},
      {"create_sampling_session", v::post, "/api/v1/create_sampling_session"},
      {"finish_session", v::post, "/api/v1/sessions/{session}/finish"},
      {"create_model", v::post, "/api/v1/create_model"},
      {"get_info", v::post, "/api/v1/get_info"},
      {"unload_model", v::post, "/api/v1/unload_model"},
      {"forward_backward", v::post, "/api/v1/forward_backward"},
      {"forward", v::post, "/api/v1/forward"},
      {"optim_step", v::post, "/api/v1/optim_step"},
      {"save_weights", v::post, "/api/v1/save_weights"},
      {"save_weights_for_sampler", v::post, "/api/v1/save_weights_for_sampler"},
      {"load_weights", v::post, "/api/v1/load_weights"},
      {"asample", v::post, "/api/v1/asample"},
      {"sample", v::post, "/api/v1/sample"},
      {"get_sampler", v::get, "/api/v1/samplers/{sampler}"},
      {"retrieve_future", v::post, "/api/v1/retrieve_future"},
      {"retrieve_futures", v::post, "/api/v1/retrieve_futures"},
      {"weights_info", v::post, "/api/v1/weights_info"},
      {"list_training_runs", v::get, "/api/v1/training_runs"},
      {"get_training_run", v::get, "/api/v1/training_runs/{run}"},
      {"list_checkpoints", v::get, "/api/v1/training_runs/{run}/checkpoints"},
      {"list_user_checkpoints", v::get, "/api/v1/checkpoints"},
      {"delete_checkpoint", v::delete_, "/api/v1/training_runs/{run}/checkpoints/{kind}/{name}"},
      {"publish_checkpoint", v::post, "/api/v1/training_runs/{run}/checkpoints/{kind}/{name}/publish"},
      {"unpublish_checkpoint", v::delete_, "/api/v1/training_runs/{run}/checkpoints/{kind}/{name}/publish"},
      {"set_checkpoint_ttl", v::put, "/api/v1/training_runs/{run}/checkpoints/{kind}/{name}/ttl"},
      {"checkpoint_archive", v::get, "/api/v1/training_runs/{run}/checkpoints/{kind}/{name}/archive"},
      {"trace_download", v::get, "/downloads/traces/{file}", false},  // before "download", which would match it too
      {"download", v::get, "/downloads/{...}", false},
      {"list_sessions", v::get, "/api/v1/sessions"},
      {"get_session", v::get, "/api/v1/sessions/{session}"},
      {"set_session_project", v::put, "/api/v1/sessions/{session}/project"},
      {"trace_export", v::get, "/api/v1/sessions/{session}/trace_export"},
      {"audit", v::get, "/api/v1/audit"},
      {"billing_usage", v::get, "/api/v1/billing/usage/events"},
  };
  return table;
}

/// Whether path `segments` (empty ones dropped) match `pattern` (see route_spec).
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

/// The route `method` + `target` names, or nullptr when none does (404).
inline const route_spec* find_route(boost::beast::http::verb method, const parsed_target& target) {
  for (const auto& r : route_table())
    if (r.method == method && route_pattern_matches(r.pattern, target.segments)) return &r;
  return nullptr;
}

}  // namespace tinker::local::detail
