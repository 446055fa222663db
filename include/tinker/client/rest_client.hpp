// rest_client: training runs, checkpoints (list, delete, publish, TTL, archive URL, download),
// sessions and samplers — the SDK's RestClient, every method an awaitable.
#pragma once

#include <tinker/client/detail/client_core.hpp>
#include <tinker/client/download.hpp>
#include <tinker/client/detail/validation.hpp>
#include <tinker/tinker_path.hpp>

#include <boost/asio/awaitable.hpp>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace tinker {

enum class access_scope { owned, accessible };

constexpr std::string_view to_string(access_scope s) noexcept { return s == access_scope::owned ? "owned" : "accessible"; }

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
    if (project_id) path += "&project_id=" + *project_id;
    co_return co_await core()->get_json<training_runs_response>(std::move(path));
  }

  boost::asio::awaitable<training_run> get_training_run(std::string training_run_id, access_scope scope = access_scope::owned) {
    check_id(training_run_id, "get_training_run", "training_run_id");
    co_return co_await core()->get_json<training_run>("/api/v1/training_runs/" + training_run_id +
                                                      "?access_scope=" + std::string(to_string(scope)));
  }

  boost::asio::awaitable<training_run> get_training_run_by_tinker_path(std::string tinker_path_str,
                                                                       access_scope scope = access_scope::owned) {
    co_return co_await get_training_run(tinker_path::parse(tinker_path_str).training_run_id, scope);
  }

  boost::asio::awaitable<weights_info_response> get_weights_info_by_tinker_path(std::string tinker_path_str) {
    (void)tinker_path::parse(tinker_path_str);
    const weights_info_request body{tinker_path_str};  // named: see client_core::server_config
    co_return co_await core()->post_json<weights_info_response>("/api/v1/weights_info", body, http::lane::rest);
  }

  boost::asio::awaitable<checkpoints_list_response> list_checkpoints(std::string training_run_id) {
    check_id(training_run_id, "list_checkpoints", "training_run_id");
    co_return co_await core()->get_json<checkpoints_list_response>("/api/v1/training_runs/" + training_run_id + "/checkpoints");
  }

  boost::asio::awaitable<checkpoints_list_response> list_user_checkpoints(int limit = 100, int offset = 0) {
    check_paging(limit, offset, "list_user_checkpoints");
    co_return co_await core()->get_json<checkpoints_list_response>("/api/v1/checkpoints?limit=" + std::to_string(limit) +
                                                                   "&offset=" + std::to_string(offset));
  }

  boost::asio::awaitable<void> delete_checkpoint(std::string training_run_id, std::string checkpoint_id) {
    co_await checkpoint_call(boost::beast::http::verb::delete_, checkpoint_route(training_run_id, checkpoint_id), {});
  }
  boost::asio::awaitable<void> delete_checkpoint_from_tinker_path(std::string path) {
    co_await checkpoint_call(boost::beast::http::verb::delete_, checkpoint_route(path), {});
  }

  boost::asio::awaitable<void> publish_checkpoint_from_tinker_path(std::string path) {
    co_await checkpoint_call(boost::beast::http::verb::post, checkpoint_route(path) + "/publish", {});
  }
  boost::asio::awaitable<void> unpublish_checkpoint_from_tinker_path(std::string path) {
    co_await checkpoint_call(boost::beast::http::verb::delete_, checkpoint_route(path) + "/publish", {});
  }

  /// Sets (or, with nullopt, removes) the checkpoint's time to live.
  boost::asio::awaitable<void> set_checkpoint_ttl_from_tinker_path(std::string path, std::optional<std::int64_t> ttl_seconds) {
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
  boost::asio::awaitable<checkpoint_archive_url_response> get_checkpoint_archive_url_from_tinker_path(std::string path) {
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
  boost::asio::awaitable<std::vector<std::string>> download_checkpoint_from_tinker_path(std::string path,
                                                                                      std::filesystem::path destination) {
    co_return co_await download_checkpoint_from_tinker_path(std::move(path), std::move(destination), default_download_options());
  }
  boost::asio::awaitable<std::vector<std::string>> download_checkpoint_from_tinker_path(std::string path,
                                                                                      std::filesystem::path destination,
                                                                                      download_options options) {
    auto url = co_await get_checkpoint_archive_url_from_tinker_path(std::move(path));
    co_return co_await download_and_extract(core()->executor(), std::move(url.url), std::move(destination), std::move(options));
  }

  boost::asio::awaitable<list_sessions_response> list_sessions(int limit = 20, int offset = 0,
                                                               access_scope scope = access_scope::owned) {
    check_paging(limit, offset, "list_sessions");
    co_return co_await core()->get_json<list_sessions_response>("/api/v1/sessions?limit=" + std::to_string(limit) + "&offset=" +
                                                                std::to_string(offset) + "&access_scope=" +
                                                                std::string(to_string(scope)));
  }

  boost::asio::awaitable<get_session_response> get_session(std::string session_id, access_scope scope = access_scope::owned) {
    check_id(session_id, "get_session", "session_id");
    co_return co_await core()->get_json<get_session_response>("/api/v1/sessions/" + session_id +
                                                              "?access_scope=" + std::string(to_string(scope)));
  }

  boost::asio::awaitable<get_sampler_response> get_sampler(std::string sampler_id) {
    check_id(sampler_id, "get_sampler", "sampler_id");
    co_return co_await core()->get_json<get_sampler_response>("/api/v1/samplers/" + sampler_id);
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

  static std::string checkpoint_route(const std::string& path) {
    const auto p = tinker_path::parse(path);
    return "/api/v1/training_runs/" + p.training_run_id + "/checkpoints/" + p.checkpoint_id();
  }

  static std::string checkpoint_route(const std::string& run, const std::string& checkpoint_id) {
    return checkpoint_route("tinker://" + run + "/" + checkpoint_id);
  }

  boost::asio::awaitable<void> checkpoint_call(boost::beast::http::verb method, std::string route, std::string body) {
    detail::call_spec spec;
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
      req.headers.emplace_back("X-API-Key", core()->options().api_key);
      req.headers.emplace_back("Accept", "application/json");
      auto res = co_await core()->send(std::move(req));
      if (res.status == 302) {
        auto location = res.headers.find(boost::beast::http::field::location);
        if (location == res.headers.end()) throw api_response_validation_error("GET " + route + ": 302 without a Location header");
        checkpoint_archive_url_response out;
        out.url = std::string(location->value());
        out.expires = std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now() + std::chrono::minutes(15));
        if (auto e = res.headers.find(boost::beast::http::field::expires); e != res.headers.end())
          if (auto t = parse_http_date(std::string(e->value()))) out.expires = *t;
        co_return out;
      }
      if (res.status == 200) co_return detail::client_core::decode_json<checkpoint_archive_url_response>("GET", route, res.body);
      if (res.status == 503 && attempt < 5) {
        core()->log(log_level::info, "checkpoint archive is being built; this may take a while");
        co_await core()->sleep(detail::seconds_d(30));
        continue;
      }
      std::rethrow_exception(detail::make_status_error("GET", route, res.status, std::move(res.body)));
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
