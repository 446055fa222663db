// rest_client: training runs, checkpoints (list, delete, publish, TTL, archive URL, download),
// sessions (list, get, project, trace export), samplers, the audit log, billing usage and whoami —
// the SDK's RestClient, every method an awaitable.
#pragma once

#include <tinker/client/detail/client_core.hpp>
#include <tinker/client/detail/validation.hpp>
#include <tinker/client/download.hpp>
#include <tinker/detail/base64.hpp>
#include <tinker/tinker_path.hpp>

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace tinker {

enum class access_scope { owned, accessible };

constexpr std::string_view to_string(access_scope s) noexcept {
  return s == access_scope::owned ? "owned" : "accessible";
}

class rest_client {
public:
  rest_client() = default;
  explicit rest_client(std::shared_ptr<detail::client_core> core) : core_(std::move(core)) {}

  boost::asio::awaitable<training_runs_response> list_training_runs(int limit = 20, int offset = 0,
                                                                    access_scope scope = access_scope::owned,
                                                                    std::optional<std::string> project_id = {}) {
    check_paging(limit, offset, "list_training_runs");
    auto path = "/api/v1/training_runs?limit=" + std::to_string(limit) + "&offset=" + std::to_string(offset) +
                "&access_scope=" + std::string(to_string(scope));
    if (project_id) path += "&project_id=" + http::escape_query_value(*project_id);
    co_return co_await core()->get_json<training_runs_response>(std::move(path));
  }

  boost::asio::awaitable<training_run> get_training_run(std::string training_run_id,
                                                        access_scope scope = access_scope::owned) {
    check_id(training_run_id, "get_training_run", "training_run_id");
    // (Paths are built before the co_await: GCC 12 rejects a braced list inside one.)
    const auto path = http::path_of({"api", "v1", "training_runs", training_run_id}) +
                      "?access_scope=" + std::string(to_string(scope));
    co_return co_await core()->get_json<training_run>(path);
  }

  boost::asio::awaitable<training_run> get_training_run_by_tinker_path(std::string tinker_path_str,
                                                                       access_scope scope = access_scope::owned) {
    co_return co_await get_training_run(tinker_path::parse(tinker_path_str).training_run_id, scope);
  }

  /// `weights_access_token` reads a checkpoint of another account with that account's credential.
  boost::asio::awaitable<weights_info_response> get_weights_info_by_tinker_path(
      std::string tinker_path_str, std::optional<std::string> weights_access_token = std::nullopt) {
    (void)tinker_path::parse(tinker_path_str);
    const weights_info_request body{tinker_path_str};  // named: see client_core::server_config
    detail::call_spec spec;
    spec.path = "/api/v1/weights_info";
    spec.body = json::to_json(body);
    spec.lane = http::lane::rest;
    core()->add_secret(weights_access_token);
    spec.api_key = std::move(weights_access_token);
    co_return co_await core()->call_json<weights_info_response>(std::move(spec));
  }

  boost::asio::awaitable<checkpoints_list_response> list_checkpoints(std::string training_run_id) {
    check_id(training_run_id, "list_checkpoints", "training_run_id");
    const auto path = http::path_of({"api", "v1", "training_runs", training_run_id, "checkpoints"});
    co_return co_await core()->get_json<checkpoints_list_response>(path);
  }

  boost::asio::awaitable<checkpoints_list_response> list_user_checkpoints(int limit = 100, int offset = 0) {
    check_paging(limit, offset, "list_user_checkpoints");
    co_return co_await core()->get_json<checkpoints_list_response>(
        "/api/v1/checkpoints?limit=" + std::to_string(limit) + "&offset=" + std::to_string(offset));
  }

  boost::asio::awaitable<void> delete_checkpoint(std::string training_run_id, std::string checkpoint_id) {
    co_await checkpoint_call(boost::beast::http::verb::delete_, checkpoint_route(training_run_id, checkpoint_id), {});
  }
  boost::asio::awaitable<void> delete_checkpoint_from_tinker_path(std::string path) {
    co_await checkpoint_call(boost::beast::http::verb::delete_, checkpoint_route(path), {});
  }

  boost::asio::awaitable<void> publish_checkpoint_from_tinker_path(std::string path) {
    co_await checkpoint_call(boost::beast::http::verb::post, checkpoint_route(path) + "/publish", {}, true);
  }
  boost::asio::awaitable<void> unpublish_checkpoint_from_tinker_path(std::string path) {
    co_await checkpoint_call(boost::beast::http::verb::delete_, checkpoint_route(path) + "/publish", {}, true);
  }

  /// Sets (or, with nullopt, removes) the checkpoint's time to live.
  boost::asio::awaitable<void> set_checkpoint_ttl_from_tinker_path(std::string path,
                                                                   std::optional<std::int64_t> ttl_seconds) {
    detail::validate_ttl(ttl_seconds, "set_checkpoint_ttl_from_tinker_path");
    const set_checkpoint_ttl_request body{ttl_seconds};
    co_await checkpoint_call(boost::beast::http::verb::put, checkpoint_route(path) + "/ttl", json::to_json(body));
  }

  /// A signed, expiring URL for downloading the checkpoint as a .tar.gz (302 Location / Expires,
  /// or the newer 200 {url, expires}; 503 "still building" is waited out).
  boost::asio::awaitable<checkpoint_archive_url_response> get_checkpoint_archive_url(std::string training_run_id,
                                                                                     std::string checkpoint_id) {
    co_return co_await archive_url(checkpoint_route(training_run_id, checkpoint_id) + "/archive");
  }
  boost::asio::awaitable<checkpoint_archive_url_response> get_checkpoint_archive_url_from_tinker_path(
      std::string path) {
    co_return co_await archive_url(checkpoint_route(path) + "/archive");
  }

  /// Download options with the service client's TLS settings (CA file, verification).
  download_options default_download_options() const {
    download_options o;
    o.tls = core()->options().tls;
    return o;
  }

  /// Downloads the checkpoint's archive and extracts it into `destination` (which must not exist
  /// yet): streamed to disk, never whole in memory, size checked, unsafe entries refused, the
  /// directory appearing only when complete. Returns the extracted files' relative paths.
  boost::asio::awaitable<std::vector<std::string>> download_checkpoint_from_tinker_path(
      std::string path, std::filesystem::path destination) {
    co_return co_await download_checkpoint_from_tinker_path(std::move(path), std::move(destination),
                                                            default_download_options());
  }
  boost::asio::awaitable<std::vector<std::string>> download_checkpoint_from_tinker_path(
      std::string path, std::filesystem::path destination, download_options options) {
    auto url = co_await get_checkpoint_archive_url_from_tinker_path(std::move(path));
    co_return co_await download_and_extract(core()->executor(), std::move(url.url), std::move(destination),
                                            std::move(options));
  }

  boost::asio::awaitable<list_sessions_response> list_sessions(int limit = 20, int offset = 0,
                                                               access_scope scope = access_scope::owned) {
    check_paging(limit, offset, "list_sessions");
    co_return co_await core()->get_json<list_sessions_response>("/api/v1/sessions?limit=" + std::to_string(limit) +
                                                                "&offset=" + std::to_string(offset) +
                                                                "&access_scope=" + std::string(to_string(scope)));
  }

  boost::asio::awaitable<get_session_response> get_session(std::string session_id,
                                                           access_scope scope = access_scope::owned) {
    check_id(session_id, "get_session", "session_id");
    const auto path =
        http::path_of({"api", "v1", "sessions", session_id}) + "?access_scope=" + std::string(to_string(scope));
    co_return co_await core()->get_json<get_session_response>(path);
  }

  boost::asio::awaitable<get_sampler_response> get_sampler(std::string sampler_id) {
    check_id(sampler_id, "get_sampler", "sampler_id");
    const auto path = http::path_of({"api", "v1", "samplers", sampler_id});
    co_return co_await core()->get_json<get_sampler_response>(path);
  }

  /// Moves a session into a project (sessions cannot be moved out of one).
  boost::asio::awaitable<void> assign_session_project(std::string session_id, std::string project_id) {
    check_id(session_id, "assign_session_project", "session_id");
    if (project_id.empty()) detail::invalid("assign_session_project: project_id is empty");
    const set_session_project_request body{std::move(project_id)};
    const auto path = http::path_of({"api", "v1", "sessions", session_id, "project"});
    co_await checkpoint_call(boost::beast::http::verb::put, path, json::to_json(body));
  }

  /// Exports the session's trace and returns a signed URL to it (valid about an hour, fetched
  /// without credentials). The server prepares it meanwhile: "pending" answers are re-asked every
  /// `poll_interval` (the SDK's 5 s); "failed" throws api_error with the server's reason.
  boost::asio::awaitable<std::string> export_session_trace(
      std::string session_id, std::chrono::milliseconds poll_interval = std::chrono::seconds(5)) {
    check_id(session_id, "export_session_trace", "session_id");
    const auto route = http::path_of({"api", "v1", "sessions", session_id, "trace_export"});
    while (true) {
      auto r = co_await core()->get_json<trace_export_response>(route);
      switch (r.status) {
        case trace_export_status::ready:
          if (!r.url) throw api_response_validation_error("GET " + route + ": status 'ready' without a url");
          co_return std::move(*r.url);
        case trace_export_status::failed:
          throw api_error("trace export of session " + session_id +
                          " failed: " + r.error.value_or("(no reason given)"));
        case trace_export_status::pending: co_await core()->sleep(poll_interval); break;
        case trace_export_status::unknown:
          throw api_response_validation_error("GET " + route + ": unknown trace export status");
      }
    }
  }

  /// The account's audit log (the service requires an admin role). `event_type` is "all" or
  /// "checkpoints"; `day` ("YYYY-MM-DD") limits it to one UTC day.
  boost::asio::awaitable<audit_log_response> get_audit_log(std::string event_type = "all",
                                                           std::optional<std::string> day = {}) {
    if (event_type != "all" && event_type != "checkpoints")
      detail::invalid("get_audit_log: event_type must be 'all' or 'checkpoints', got '" + event_type + "'");
    auto path = "/api/v1/audit?event_type=" + event_type;
    if (day) {
      if (day->size() != 10 || !parse_timestamp(*day + "T00:00:00Z"))
        detail::invalid("get_audit_log: day must be YYYY-MM-DD, got '" + *day + "'");
      path += "&day=" + *day;
    }
    co_return co_await core()->get_json<audit_log_response>(std::move(path));
  }

  /// Usage events in [starting_on, ending_before): whole hours, at most 14 days, not in the future.
  boost::asio::awaitable<billing_usage_response> get_billing_usage(timestamp starting_on, timestamp ending_before) {
    using namespace std::chrono;
    auto whole_hour = [](timestamp t) { return t == floor<hours>(t); };
    if (!whole_hour(starting_on) || !whole_hour(ending_before))
      detail::invalid("get_billing_usage: starting_on and ending_before must be whole hours, got " +
                      format_timestamp(starting_on) + " and " + format_timestamp(ending_before));
    if (ending_before <= starting_on || ending_before - starting_on > days(14))
      detail::invalid("get_billing_usage: the window must be more than 0 and at most 14 days, got " +
                      format_timestamp(starting_on) + " to " + format_timestamp(ending_before));
    // (Formatted without fraction or '+': both would need escaping in a query.)
    auto rfc3339 = [](timestamp t) { return format_timestamp(t).substr(0, 19) + "Z"; };
    co_return co_await core()->get_json<billing_usage_response>(
        "/api/v1/billing/usage/events?starting_on=" + rfc3339(starting_on) +
        "&ending_before=" + rfc3339(ending_before));
  }

  /// Who the credential belongs to, read from the JWT credential itself (no request), as the SDK
  /// does. A plain `tml-` API key carries no identity: tinker::invalid_argument.
  whoami_response whoami() const {
    const auto& key = core()->options().api_key;
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

private:
  const std::shared_ptr<detail::client_core>& core() const {
    if (!core_) throw tinker::invalid_argument("rest_client: used before it was created");
    return core_;
  }

  static void check_paging(int limit, int offset, const char* call) {
    if (limit < 1) detail::invalid(std::string(call) + ": limit must be >= 1, got " + std::to_string(limit));
    if (offset < 0) detail::invalid(std::string(call) + ": offset must be >= 0, got " + std::to_string(offset));
  }

  static void check_id(const std::string& id, const char* call, const char* field) {
    if (id.empty()) detail::invalid(std::string(call) + ": " + field + " is empty");
    for (char c : id)
      if (c == '/' || c == '?' || c == '#' || static_cast<unsigned char>(c) <= 0x20)
        detail::invalid(std::string(call) + ": " + field + " '" + id + "' contains characters not allowed in an id");
  }

  /// `/api/v1/training_runs/{run}/checkpoints/{kind}/{name}`, every part percent-encoded.
  static std::string checkpoint_route(const std::string& path) {
    const auto p = tinker_path::parse(path);
    return http::path_of({"api", "v1", "training_runs", p.training_run_id, "checkpoints", to_string(p.kind), p.name});
  }

  static std::string checkpoint_route(const std::string& run, const std::string& checkpoint_id) {
    return checkpoint_route("tinker://" + run + "/" + checkpoint_id);
  }

  /// `conflict_is_final`: a 409 (already public / already private) is the caller's error, not
  /// retried (see call_spec::conflict_is_final).
  boost::asio::awaitable<void> checkpoint_call(boost::beast::http::verb method, std::string route, std::string body,
                                               bool conflict_is_final = false) {
    detail::call_spec spec;
    spec.conflict_is_final = conflict_is_final;
    spec.method = method;
    spec.path = std::move(route);
    spec.body = std::move(body);
    spec.lane = http::lane::rest;
    (void)co_await core()->call(std::move(spec));
  }

  boost::asio::awaitable<checkpoint_archive_url_response> archive_url(std::string route) {
    for (int attempt = 0;; ++attempt) {
      http::request req;
      req.method = boost::beast::http::verb::get;
      req.target = route;
      req.lane = http::lane::rest;
      // (Sent by hand, to see the 302 before any redirect handling: the default headers go too.)
      for (const auto& [k, v] : core()->options().default_headers) req.headers.emplace_back(k, v);
      req.headers.emplace_back("X-API-Key", core()->options().api_key);
      req.headers.emplace_back("Accept", "application/json");
      auto res = co_await core()->send(std::move(req));
      if (res.status == 302) {
        auto location = res.headers.find(boost::beast::http::field::location);
        if (location == res.headers.end())
          throw api_response_validation_error("GET " + route + ": 302 without a Location header");
        checkpoint_archive_url_response out;
        out.url = std::string(location->value());
        out.expires = std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now() +
                                                                              std::chrono::minutes(15));
        if (auto e = res.headers.find(boost::beast::http::field::expires); e != res.headers.end())
          if (auto t = parse_http_date(std::string(e->value()))) out.expires = *t;
        co_return out;
      }
      if (res.status == 200)
        co_return detail::client_core::decode_json<checkpoint_archive_url_response>("GET", route, res.body);
      if (res.status == 503 && attempt < 5) {
        core()->log(log_level::info, "checkpoint archive is being built; this may take a while");
        co_await core()->sleep(detail::seconds_d(30));
        continue;
      }
      std::rethrow_exception(
          detail::make_status_error("GET", route, res.status, std::move(res.body), core()->secrets()));
    }
  }

  /// RFC 7231 IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT").
  static std::optional<timestamp> parse_http_date(const std::string& s) {
    std::tm tm{};
    const char* end = strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end != '\0') return std::nullopt;
    return std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::from_time_t(timegm(&tm)));
  }

  std::shared_ptr<detail::client_core> core_;
};

}  // namespace tinker
