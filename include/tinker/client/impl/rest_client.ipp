// rest_client: the REST calls, on the client's executor.
#pragma once

#include <tinker/client/detail/client_core.hpp>
#include <tinker/client/detail/spawn.hpp>
#include <tinker/client/detail/status_error.hpp>
#include <tinker/client/detail/validation.hpp>
#include <tinker/client/impl/download.ipp>
#include <tinker/client/rest_client.hpp>
#include <tinker/detail/base64.hpp>
#include <tinker/http/url.hpp>
#include <tinker/json.hpp>
#include <tinker/tinker_path.hpp>

#include <boost/json/parse.hpp>

#include <chrono>
#include <ctime>
#include <memory>
#include <optional>
#include <string>

namespace tinker {
namespace detail::rest {

namespace asio = boost::asio;
namespace beast_http = boost::beast::http;
using core_ptr = std::shared_ptr<client_core>;

inline void check_paging(int limit, int offset, const char* call) {
  if (limit < 1) invalid(std::string(call) + ": limit must be >= 1, got " + std::to_string(limit));
  if (offset < 0) invalid(std::string(call) + ": offset must be >= 0, got " + std::to_string(offset));
}

inline void check_id(const std::string& id, const char* call, const char* field) {
  if (id.empty()) invalid(std::string(call) + ": " + field + " is empty");
  for (char c : id)
    if (c == '/' || c == '?' || c == '#' || static_cast<unsigned char>(c) <= 0x20)
      invalid(std::string(call) + ": " + field + " '" + tinker_path::printable(id) +
              "' contains characters not allowed in an id");
}

/// `/api/v1/training_runs/{run}/checkpoints/{kind}/{name}`, every part percent-encoded.
inline std::string checkpoint_route(const std::string& path) {
  const auto p = tinker_path::parse(path);
  return http::path_of({"api", "v1", "training_runs", p.training_run_id, "checkpoints", to_string(p.kind), p.name});
}

/// A call whose answer carries nothing. `conflict_is_final`: a 409 (already public / already
/// private) is the caller's error, not retried (see call_spec::conflict_is_final).
inline asio::awaitable<void> plain_call(core_ptr core, beast_http::verb method, std::string route, std::string body,
                                        bool conflict_is_final = false) {
  call_spec spec;
  spec.conflict_is_final = conflict_is_final;
  spec.method = method;
  spec.path = std::move(route);
  spec.body = std::move(body);
  spec.lane = http::lane::rest;
  (void)co_await core->call(std::move(spec));
}

inline asio::awaitable<void> checkpoint_call(core_ptr core, std::string path, checkpoint_action action,
                                             std::optional<std::int64_t> ttl) {
  switch (action) {
    case checkpoint_action::remove:
      co_await plain_call(core, beast_http::verb::delete_, checkpoint_route(path), {});
      break;
    case checkpoint_action::publish:
      co_await plain_call(core, beast_http::verb::post, checkpoint_route(path) + "/publish", {}, true);
      break;
    case checkpoint_action::unpublish:
      co_await plain_call(core, beast_http::verb::delete_, checkpoint_route(path) + "/publish", {}, true);
      break;
    case checkpoint_action::set_ttl: {
      validate_ttl(ttl, "set_checkpoint_ttl_from_tinker_path");
      const set_checkpoint_ttl_request body{ttl};
      co_await plain_call(core, beast_http::verb::put, checkpoint_route(path) + "/ttl", json::to_json(body));
      break;
    }
  }
}

inline asio::awaitable<training_runs_response> list_training_runs(core_ptr core, int limit, int offset,
                                                                  access_scope scope,
                                                                  std::optional<std::string> project_id) {
  check_paging(limit, offset, "list_training_runs");
  auto path = "/api/v1/training_runs?limit=" + std::to_string(limit) + "&offset=" + std::to_string(offset) +
              "&access_scope=" + std::string(to_string(scope));
  if (project_id) path += "&project_id=" + http::escape_query_value(*project_id);
  co_return co_await core->get_json<training_runs_response>(std::move(path));
}

inline asio::awaitable<training_run> get_training_run(core_ptr core, std::string id, access_scope scope, bool by_path) {
  if (by_path) id = tinker_path::parse(id).training_run_id;
  check_id(id, "get_training_run", "training_run_id");
  // (Paths are built before the co_await: GCC 12 rejects a braced list inside one.)
  const auto path =
      http::path_of({"api", "v1", "training_runs", id}) + "?access_scope=" + std::string(to_string(scope));
  co_return co_await core->get_json<training_run>(path);
}

inline asio::awaitable<weights_info_response> weights_info(core_ptr core, std::string tinker_path_str,
                                                           std::optional<std::string> weights_access_token) {
  (void)tinker_path::parse(tinker_path_str);
  const weights_info_request body{tinker_path_str};  // named: see client_core::server_config
  call_spec spec;
  spec.path = "/api/v1/weights_info";
  spec.body = json::to_json(body);
  spec.lane = http::lane::rest;
  core->add_secret(weights_access_token);
  spec.api_key = std::move(weights_access_token);
  co_return co_await core->call_json<weights_info_response>(std::move(spec));
}

inline asio::awaitable<checkpoints_list_response> list_checkpoints(core_ptr core, std::string run) {
  check_id(run, "list_checkpoints", "training_run_id");
  const auto path = http::path_of({"api", "v1", "training_runs", run, "checkpoints"});
  co_return co_await core->get_json<checkpoints_list_response>(path);
}

inline asio::awaitable<checkpoints_list_response> list_user_checkpoints(core_ptr core, int limit, int offset) {
  check_paging(limit, offset, "list_user_checkpoints");
  co_return co_await core->get_json<checkpoints_list_response>("/api/v1/checkpoints?limit=" + std::to_string(limit) +
                                                               "&offset=" + std::to_string(offset));
}

/// RFC 7231 IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT").
inline std::optional<timestamp> parse_http_date(const std::string& s) {
  std::tm tm{};
  const char* end = strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (!end || *end != '\0') return std::nullopt;
  return std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::from_time_t(timegm(&tm)));
}

/// The archive's signed URL: a 302 to it (Location, Expires), or the newer 200 {url, expires}.
/// Everything else follows the retry policy (a 503 while the archive is being built included).
inline asio::awaitable<checkpoint_archive_url_response> archive_url(core_ptr core, std::string tinker_path_str) {
  const auto route = checkpoint_route(tinker_path_str) + "/archive";
  call_spec spec;
  spec.method = beast_http::verb::get;
  spec.path = route;
  spec.lane = http::lane::rest;
  spec.redirect_is_answer = true;
  auto res = co_await core->call(std::move(spec));
  if (res.status == 200) co_return client_core::decode_json<checkpoint_archive_url_response>("GET", route, res.body);
  auto location = res.headers.find(beast_http::field::location);
  if (res.status != 302 || location == res.headers.end())
    throw api_response_validation_error("GET " + route + ": HTTP " + std::to_string(res.status) +
                                        (res.status == 302 ? " without a Location header" : " is not an archive URL"));
  checkpoint_archive_url_response out;
  out.url = std::string(location->value());
  out.expires = std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now() +
                                                                        std::chrono::minutes(15));
  if (auto e = res.headers.find(beast_http::field::expires); e != res.headers.end())
    if (auto t = parse_http_date(std::string(e->value()))) out.expires = *t;
  co_return out;
}

inline asio::awaitable<std::vector<std::string>> download(core_ptr core, std::string tinker_path_str,
                                                          std::filesystem::path destination, download_options options) {
  auto url = co_await archive_url(core, std::move(tinker_path_str));
  co_return co_await download_and_extract_impl(core->executor(), std::move(url.url), std::move(destination),
                                               std::move(options));
}

inline asio::awaitable<list_sessions_response> list_sessions(core_ptr core, int limit, int offset, access_scope scope) {
  check_paging(limit, offset, "list_sessions");
  co_return co_await core->get_json<list_sessions_response>("/api/v1/sessions?limit=" + std::to_string(limit) +
                                                            "&offset=" + std::to_string(offset) +
                                                            "&access_scope=" + std::string(to_string(scope)));
}

inline asio::awaitable<get_session_response> get_session(core_ptr core, std::string session_id, access_scope scope) {
  check_id(session_id, "get_session", "session_id");
  const auto path =
      http::path_of({"api", "v1", "sessions", session_id}) + "?access_scope=" + std::string(to_string(scope));
  co_return co_await core->get_json<get_session_response>(path);
}

inline asio::awaitable<get_sampler_response> get_sampler(core_ptr core, std::string sampler_id) {
  check_id(sampler_id, "get_sampler", "sampler_id");
  const auto path = http::path_of({"api", "v1", "samplers", sampler_id});
  co_return co_await core->get_json<get_sampler_response>(path);
}

inline asio::awaitable<void> assign_project(core_ptr core, std::string session_id, std::string project_id) {
  check_id(session_id, "assign_session_project", "session_id");
  if (project_id.empty()) invalid("assign_session_project: project_id is empty");
  const set_session_project_request body{std::move(project_id)};
  const auto path = http::path_of({"api", "v1", "sessions", session_id, "project"});
  co_await plain_call(std::move(core), beast_http::verb::put, path, json::to_json(body));
}

inline asio::awaitable<std::string> export_trace(core_ptr core, std::string session_id,
                                                 std::chrono::milliseconds poll_interval) {
  check_id(session_id, "export_session_trace", "session_id");
  if (poll_interval.count() <= 0)
    invalid("export_session_trace: poll_interval must be > 0, got " + std::to_string(poll_interval.count()) + " ms");
  const auto route = http::path_of({"api", "v1", "sessions", session_id, "trace_export"});
  while (true) {
    auto r = co_await core->get_json<trace_export_response>(route);
    switch (r.status) {
      case trace_export_status::ready:
        if (!r.url) throw api_response_validation_error("GET " + route + ": status 'ready' without a url");
        co_return std::move(*r.url);
      case trace_export_status::failed:
        throw api_error("trace export of session " + session_id + " failed: " + r.error.value_or("(no reason given)"));
      case trace_export_status::pending: co_await core->sleep(poll_interval); break;
      case trace_export_status::unknown:
        throw api_response_validation_error("GET " + route + ": unknown trace export status");
    }
  }
}

inline asio::awaitable<audit_log_response> audit_log(core_ptr core, std::string event_type,
                                                     std::optional<std::string> day) {
  if (event_type != "all" && event_type != "checkpoints")
    invalid("get_audit_log: event_type must be 'all' or 'checkpoints', got '" + event_type + "'");
  auto path = "/api/v1/audit?event_type=" + event_type;
  if (day) {
    if (day->size() != 10 || !parse_timestamp(*day + "T00:00:00Z"))
      invalid("get_audit_log: day must be YYYY-MM-DD, got '" + *day + "'");
    path += "&day=" + *day;
  }
  co_return co_await core->get_json<audit_log_response>(std::move(path));
}

inline asio::awaitable<billing_usage_response> billing_usage(core_ptr core, timestamp starting_on,
                                                             timestamp ending_before) {
  using namespace std::chrono;
  auto whole_hour = [](timestamp t) { return t == floor<hours>(t); };
  if (!whole_hour(starting_on) || !whole_hour(ending_before))
    invalid("get_billing_usage: starting_on and ending_before must be whole hours, got " +
            format_timestamp(starting_on) + " and " + format_timestamp(ending_before));
  if (ending_before <= starting_on || ending_before - starting_on > days(14))
    invalid("get_billing_usage: the window must be more than 0 and at most 14 days, got " +
            format_timestamp(starting_on) + " to " + format_timestamp(ending_before));
  // (Formatted without fraction or '+': both would need escaping in a query.)
  auto rfc3339 = [](timestamp t) { return format_timestamp(t).substr(0, 19) + "Z"; };
  co_return co_await core->get_json<billing_usage_response>(
      "/api/v1/billing/usage/events?starting_on=" + rfc3339(starting_on) + "&ending_before=" + rfc3339(ending_before));
}

template <class Handler, class Op, class... Args>
void start(core_ptr core, Handler h, Op op, Args&&... args) {
  using T = typename decltype(op(std::move(core), std::forward<Args>(args)...))::value_type;
  auto ex = core->executor();
  spawn_op<T>(ex, op(std::move(core), std::forward<Args>(args)...), std::move(h));
}

}  // namespace detail::rest

TINKER_DECL void rest_client::async_list_training_runs(core_ptr core, int limit, int offset, access_scope scope,
                                                       std::optional<std::string> project_id,
                                                       detail::any_handler<training_runs_response> h) {
  detail::rest::start(std::move(core), std::move(h), &detail::rest::list_training_runs, limit, offset, scope,
                      std::move(project_id));
}

TINKER_DECL void rest_client::async_get_training_run(core_ptr core, std::string id, access_scope scope, bool by_path,
                                                     detail::any_handler<training_run> h) {
  detail::rest::start(std::move(core), std::move(h), &detail::rest::get_training_run, std::move(id), scope, by_path);
}

TINKER_DECL void rest_client::async_weights_info(core_ptr core, std::string path, std::optional<std::string> token,
                                                 detail::any_handler<weights_info_response> h) {
  detail::rest::start(std::move(core), std::move(h), &detail::rest::weights_info, std::move(path), std::move(token));
}

TINKER_DECL void rest_client::async_list_checkpoints(core_ptr core, std::string run,
                                                     detail::any_handler<checkpoints_list_response> h) {
  detail::rest::start(std::move(core), std::move(h), &detail::rest::list_checkpoints, std::move(run));
}

TINKER_DECL void rest_client::async_list_user_checkpoints(core_ptr core, int limit, int offset,
                                                          detail::any_handler<checkpoints_list_response> h) {
  detail::rest::start(std::move(core), std::move(h), &detail::rest::list_user_checkpoints, limit, offset);
}

TINKER_DECL void rest_client::async_checkpoint_call(core_ptr core, std::string path, checkpoint_action action,
                                                    std::optional<std::int64_t> ttl_seconds,
                                                    detail::any_handler<void> h) {
  detail::rest::start(std::move(core), std::move(h), &detail::rest::checkpoint_call, std::move(path), action,
                      ttl_seconds);
}

TINKER_DECL void rest_client::async_archive_url(core_ptr core, std::string path,
                                                detail::any_handler<checkpoint_archive_url_response> h) {
  detail::rest::start(std::move(core), std::move(h), &detail::rest::archive_url, std::move(path));
}

TINKER_DECL const rest_client::core_ptr& rest_client::checked() const {
  if (!core_) throw tinker::invalid_argument("rest_client: used before it was created");
  return core_;
}

TINKER_DECL download_options rest_client::default_download_options() const {
  download_options o;
  o.tls = checked()->options().tls;
  return o;
}

TINKER_DECL void rest_client::async_download(core_ptr core, std::string path, std::filesystem::path destination,
                                             download_options options,
                                             detail::any_handler<std::vector<std::string>> h) {
  detail::rest::start(std::move(core), std::move(h), &detail::rest::download, std::move(path), std::move(destination),
                      std::move(options));
}

TINKER_DECL void rest_client::async_list_sessions(core_ptr core, int limit, int offset, access_scope scope,
                                                  detail::any_handler<list_sessions_response> h) {
  detail::rest::start(std::move(core), std::move(h), &detail::rest::list_sessions, limit, offset, scope);
}

TINKER_DECL void rest_client::async_get_session(core_ptr core, std::string id, access_scope scope,
                                                detail::any_handler<get_session_response> h) {
  detail::rest::start(std::move(core), std::move(h), &detail::rest::get_session, std::move(id), scope);
}

TINKER_DECL void rest_client::async_get_sampler(core_ptr core, std::string id,
                                                detail::any_handler<get_sampler_response> h) {
  detail::rest::start(std::move(core), std::move(h), &detail::rest::get_sampler, std::move(id));
}

TINKER_DECL void rest_client::async_assign_project(core_ptr core, std::string session_id, std::string project_id,
                                                   detail::any_handler<void> h) {
  detail::rest::start(std::move(core), std::move(h), &detail::rest::assign_project, std::move(session_id),
                      std::move(project_id));
}

TINKER_DECL void rest_client::async_export_trace(core_ptr core, std::string session_id,
                                                 std::chrono::milliseconds poll_interval,
                                                 detail::any_handler<std::string> h) {
  detail::rest::start(std::move(core), std::move(h), &detail::rest::export_trace, std::move(session_id), poll_interval);
}

TINKER_DECL void rest_client::async_audit_log(core_ptr core, std::string event_type, std::optional<std::string> day,
                                              detail::any_handler<audit_log_response> h) {
  detail::rest::start(std::move(core), std::move(h), &detail::rest::audit_log, std::move(event_type), std::move(day));
}

TINKER_DECL void rest_client::async_billing_usage(core_ptr core, timestamp starting_on, timestamp ending_before,
                                                  detail::any_handler<billing_usage_response> h) {
  detail::rest::start(std::move(core), std::move(h), &detail::rest::billing_usage, starting_on, ending_before);
}

TINKER_DECL rest_client::executor_type rest_client::get_executor() const { return checked()->executor(); }

TINKER_DECL whoami_response rest_client::whoami() const {
  const auto& key = checked()->options().api_key;
  auto fail = [](const std::string& why) -> whoami_response { detail::invalid("whoami: " + why); };
  if (key.rfind("eyJ", 0) != 0) return fail("the credential is an API key, not a JWT; it names no user");
  const auto first = key.find('.'), second = key.find('.', first + 1);
  if (first == std::string::npos || second == std::string::npos) return fail("the JWT credential is malformed");
  auto payload = key.substr(first + 1, second - first - 1);
  for (auto& c : payload) c = c == '-' ? '+' : c == '_' ? '/' : c;  // base64url -> base64
  const auto decoded = tinker::detail::base64_decode(payload);
  if (!decoded) return fail("the JWT credential's payload is not base64url");
  boost::system::error_code ec;
  const auto claims = boost::json::parse(*decoded, ec);
  const auto* obj = ec ? nullptr : claims.if_object();
  const auto* sub = obj ? obj->if_contains("sub") : nullptr;
  if (!sub || !sub->is_string()) return fail("the JWT credential has no 'sub' claim");
  whoami_response out;
  out.user_urn = std::string(sub->as_string());
  if (const auto* email = obj->if_contains("email"); email && email->is_string() && !email->as_string().empty())
    out.email = std::string(email->as_string());
  return out;
}

}  // namespace tinker
