// rest_client: training runs, checkpoints (list, delete, publish, TTL, archive URL, download),
// sessions (list, get, project, trace export), samplers, the audit log, billing usage and whoami —
// the SDK's RestClient. Every call takes a trailing completion token (see completion.hpp) and runs
// on the client's executor.
#pragma once

#include <tinker/client/completion.hpp>
#include <tinker/client/download_options.hpp>
#include <tinker/detail/config.hpp>
#include <tinker/types.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tinker {

namespace detail {
class client_core;
/// What a checkpoint call without an answer does.
enum class checkpoint_action { remove, publish, unpublish, set_ttl };
}  // namespace detail

enum class access_scope { owned, accessible };

constexpr std::string_view to_string(access_scope s) noexcept {
  return s == access_scope::owned ? "owned" : "accessible";
}

class rest_client {
  template <class T>
  using sig = completion_signature_t<T>;

public:
  using executor_type = boost::asio::any_io_executor;

  rest_client() = default;
  explicit rest_client(std::shared_ptr<detail::client_core> core) : core_(std::move(core)) {}

  // ----- training runs -----

  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<training_runs_response>) Token = default_completion_token>
  auto list_training_runs(Token&& token = {}) {
    return list_training_runs(20, 0, access_scope::owned, std::nullopt, std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<training_runs_response>) Token = default_completion_token>
  auto list_training_runs(int limit, Token&& token = {}) {
    return list_training_runs(limit, 0, access_scope::owned, std::nullopt, std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<training_runs_response>) Token = default_completion_token>
  auto list_training_runs(int limit, int offset, Token&& token = {}) {
    return list_training_runs(limit, offset, access_scope::owned, std::nullopt, std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<training_runs_response>) Token = default_completion_token>
  auto list_training_runs(int limit, int offset, access_scope scope, Token&& token = {}) {
    return list_training_runs(limit, offset, scope, std::nullopt, std::forward<Token>(token));
  }
  /// Runs, newest first; `project_id` limits them to the caller's sessions of that project.
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<training_runs_response>) Token = default_completion_token>
  auto list_training_runs(int limit, int offset, access_scope scope, std::optional<std::string> project_id,
                          Token&& token = {}) {
    return detail::initiate<training_runs_response>(std::forward<Token>(token), &async_list_training_runs, checked(),
                                                    limit, offset, scope, std::move(project_id));
  }

  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<training_run>) Token = default_completion_token>
  auto get_training_run(std::string training_run_id, Token&& token = {}) {
    return get_training_run(std::move(training_run_id), access_scope::owned, std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<training_run>) Token = default_completion_token>
  auto get_training_run(std::string training_run_id, access_scope scope, Token&& token = {}) {
    return detail::initiate<training_run>(std::forward<Token>(token), &async_get_training_run, checked(),
                                          std::move(training_run_id), scope, false);
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<training_run>) Token = default_completion_token>
  auto get_training_run_by_tinker_path(std::string tinker_path, Token&& token = {}) {
    return get_training_run_by_tinker_path(std::move(tinker_path), access_scope::owned, std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<training_run>) Token = default_completion_token>
  auto get_training_run_by_tinker_path(std::string tinker_path, access_scope scope, Token&& token = {}) {
    return detail::initiate<training_run>(std::forward<Token>(token), &async_get_training_run, checked(),
                                          std::move(tinker_path), scope, true);
  }

  // ----- checkpoints -----

  /// `weights_access_token` reads a checkpoint of another account with that account's credential.
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<weights_info_response>) Token = default_completion_token>
  auto get_weights_info_by_tinker_path(std::string tinker_path, Token&& token = {}) {
    return get_weights_info_by_tinker_path(std::move(tinker_path), std::nullopt, std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<weights_info_response>) Token = default_completion_token>
  auto get_weights_info_by_tinker_path(std::string tinker_path, std::optional<std::string> weights_access_token,
                                       Token&& token = {}) {
    return detail::initiate<weights_info_response>(std::forward<Token>(token), &async_weights_info, checked(),
                                                   std::move(tinker_path), std::move(weights_access_token));
  }

  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<checkpoints_list_response>) Token = default_completion_token>
  auto list_checkpoints(std::string training_run_id, Token&& token = {}) {
    return detail::initiate<checkpoints_list_response>(std::forward<Token>(token), &async_list_checkpoints, checked(),
                                                       std::move(training_run_id));
  }

  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<checkpoints_list_response>) Token = default_completion_token>
  auto list_user_checkpoints(Token&& token = {}) {
    return list_user_checkpoints(100, 0, std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<checkpoints_list_response>) Token = default_completion_token>
  auto list_user_checkpoints(int limit, Token&& token = {}) {
    return list_user_checkpoints(limit, 0, std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<checkpoints_list_response>) Token = default_completion_token>
  auto list_user_checkpoints(int limit, int offset, Token&& token = {}) {
    return detail::initiate<checkpoints_list_response>(std::forward<Token>(token), &async_list_user_checkpoints,
                                                       checked(), limit, offset);
  }

  /// `checkpoint_id` is `<kind>/<name>`, e.g. `weights/step-10`.
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<void>) Token = default_completion_token>
  auto delete_checkpoint(std::string training_run_id, std::string checkpoint_id, Token&& token = {}) {
    return detail::initiate<void>(std::forward<Token>(token), &async_checkpoint_call, checked(),
                                  join(training_run_id, checkpoint_id), checkpoint_action::remove,
                                  std::optional<std::int64_t>());
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<void>) Token = default_completion_token>
  auto delete_checkpoint_from_tinker_path(std::string tinker_path, Token&& token = {}) {
    return detail::initiate<void>(std::forward<Token>(token), &async_checkpoint_call, checked(), std::move(tinker_path),
                                  checkpoint_action::remove, std::optional<std::int64_t>());
  }

  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<void>) Token = default_completion_token>
  auto publish_checkpoint_from_tinker_path(std::string tinker_path, Token&& token = {}) {
    return detail::initiate<void>(std::forward<Token>(token), &async_checkpoint_call, checked(), std::move(tinker_path),
                                  checkpoint_action::publish, std::optional<std::int64_t>());
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<void>) Token = default_completion_token>
  auto unpublish_checkpoint_from_tinker_path(std::string tinker_path, Token&& token = {}) {
    return detail::initiate<void>(std::forward<Token>(token), &async_checkpoint_call, checked(), std::move(tinker_path),
                                  checkpoint_action::unpublish, std::optional<std::int64_t>());
  }

  /// Sets (or, with nullopt, removes) the checkpoint's time to live.
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<void>) Token = default_completion_token>
  auto set_checkpoint_ttl_from_tinker_path(std::string tinker_path, std::optional<std::int64_t> ttl_seconds,
                                           Token&& token = {}) {
    return detail::initiate<void>(std::forward<Token>(token), &async_checkpoint_call, checked(), std::move(tinker_path),
                                  checkpoint_action::set_ttl, ttl_seconds);
  }

  /// A signed, expiring URL for downloading the checkpoint as a .tar.gz (302 Location / Expires,
  /// or the newer 200 {url, expires}; 503 "still building" is waited out).
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<checkpoint_archive_url_response>) Token = default_completion_token>
  auto get_checkpoint_archive_url(std::string training_run_id, std::string checkpoint_id, Token&& token = {}) {
    return get_checkpoint_archive_url_from_tinker_path(join(training_run_id, checkpoint_id),
                                                       std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<checkpoint_archive_url_response>) Token = default_completion_token>
  auto get_checkpoint_archive_url_from_tinker_path(std::string tinker_path, Token&& token = {}) {
    return detail::initiate<checkpoint_archive_url_response>(std::forward<Token>(token), &async_archive_url, checked(),
                                                             std::move(tinker_path));
  }

  /// Download options with the service client's TLS settings (CA file, verification).
  TINKER_DECL download_options default_download_options() const;

  /// Downloads the checkpoint's archive and extracts it into `destination` (which must not exist
  /// yet): streamed to disk, never whole in memory, size checked, unsafe entries refused, the
  /// directory appearing only when complete. Completes with the extracted files' relative paths.
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<std::vector<std::string>>) Token = default_completion_token>
  auto download_checkpoint_from_tinker_path(std::string tinker_path, std::filesystem::path destination,
                                            Token&& token = {}) {
    return download_checkpoint_from_tinker_path(std::move(tinker_path), std::move(destination),
                                                default_download_options(), std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<std::vector<std::string>>) Token = default_completion_token>
  auto download_checkpoint_from_tinker_path(std::string tinker_path, std::filesystem::path destination,
                                            download_options options, Token&& token = {}) {
    return detail::initiate<std::vector<std::string>>(std::forward<Token>(token), &async_download, checked(),
                                                      std::move(tinker_path), std::move(destination),
                                                      std::move(options));
  }

  // ----- sessions and samplers -----

  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<list_sessions_response>) Token = default_completion_token>
  auto list_sessions(Token&& token = {}) {
    return list_sessions(20, 0, access_scope::owned, std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<list_sessions_response>) Token = default_completion_token>
  auto list_sessions(int limit, Token&& token = {}) {
    return list_sessions(limit, 0, access_scope::owned, std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<list_sessions_response>) Token = default_completion_token>
  auto list_sessions(int limit, int offset, Token&& token = {}) {
    return list_sessions(limit, offset, access_scope::owned, std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<list_sessions_response>) Token = default_completion_token>
  auto list_sessions(int limit, int offset, access_scope scope, Token&& token = {}) {
    return detail::initiate<list_sessions_response>(std::forward<Token>(token), &async_list_sessions, checked(), limit,
                                                    offset, scope);
  }

  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<get_session_response>) Token = default_completion_token>
  auto get_session(std::string session_id, Token&& token = {}) {
    return get_session(std::move(session_id), access_scope::owned, std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<get_session_response>) Token = default_completion_token>
  auto get_session(std::string session_id, access_scope scope, Token&& token = {}) {
    return detail::initiate<get_session_response>(std::forward<Token>(token), &async_get_session, checked(),
                                                  std::move(session_id), scope);
  }

  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<get_sampler_response>) Token = default_completion_token>
  auto get_sampler(std::string sampler_id, Token&& token = {}) {
    return detail::initiate<get_sampler_response>(std::forward<Token>(token), &async_get_sampler, checked(),
                                                  std::move(sampler_id));
  }

  /// Moves a session into a project (sessions cannot be moved out of one).
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<void>) Token = default_completion_token>
  auto assign_session_project(std::string session_id, std::string project_id, Token&& token = {}) {
    return detail::initiate<void>(std::forward<Token>(token), &async_assign_project, checked(), std::move(session_id),
                                  std::move(project_id));
  }

  /// Exports the session's trace and completes with a signed URL to it (valid about an hour,
  /// fetched without credentials). The server prepares it meanwhile: "pending" answers are
  /// re-asked every `poll_interval` (the SDK's 5 s); "failed" is an api_error with the reason.
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<std::string>) Token = default_completion_token>
  auto export_session_trace(std::string session_id, Token&& token = {}) {
    return export_session_trace(std::move(session_id), std::chrono::seconds(5), std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<std::string>) Token = default_completion_token>
  auto export_session_trace(std::string session_id, std::chrono::milliseconds poll_interval, Token&& token = {}) {
    return detail::initiate<std::string>(std::forward<Token>(token), &async_export_trace, checked(),
                                         std::move(session_id), poll_interval);
  }

  // ----- account -----

  /// The account's audit log (the service requires an admin role). `event_type` is "all" or
  /// "checkpoints"; `day` ("YYYY-MM-DD") limits it to one UTC day.
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<audit_log_response>) Token = default_completion_token>
  auto get_audit_log(Token&& token = {}) {
    return get_audit_log("all", std::nullopt, std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<audit_log_response>) Token = default_completion_token>
  auto get_audit_log(std::string event_type, Token&& token = {}) {
    return get_audit_log(std::move(event_type), std::nullopt, std::forward<Token>(token));
  }
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<audit_log_response>) Token = default_completion_token>
  auto get_audit_log(std::string event_type, std::optional<std::string> day, Token&& token = {}) {
    return detail::initiate<audit_log_response>(std::forward<Token>(token), &async_audit_log, checked(),
                                                std::move(event_type), std::move(day));
  }

  /// Usage events in [starting_on, ending_before): whole hours, at most 14 days (a window in the
  /// future is the server's to refuse).
  template <BOOST_ASIO_COMPLETION_TOKEN_FOR(sig<billing_usage_response>) Token = default_completion_token>
  auto get_billing_usage(timestamp starting_on, timestamp ending_before, Token&& token = {}) {
    return detail::initiate<billing_usage_response>(std::forward<Token>(token), &async_billing_usage, checked(),
                                                    starting_on, ending_before);
  }

  /// Who the credential belongs to, read from the JWT credential itself (no request), as the SDK
  /// does. A plain `tml-` API key carries no identity: tinker::invalid_argument.
  TINKER_DECL whoami_response whoami() const;

  /// The client's executor (a strand): every operation runs there.
  TINKER_DECL executor_type get_executor() const;

private:
  using core_ptr = std::shared_ptr<detail::client_core>;
  using checkpoint_action = detail::checkpoint_action;

  /// The core, or tinker::invalid_argument for a client that was never created.
  TINKER_DECL const core_ptr& checked() const;

  /// `tinker://<run>/<checkpoint_id>` (checked when the operation runs).
  static std::string join(const std::string& run, const std::string& checkpoint_id) {
    return "tinker://" + run + "/" + checkpoint_id;
  }

  TINKER_DECL static void async_list_training_runs(core_ptr, int, int, access_scope, std::optional<std::string>,
                                                   detail::any_handler<training_runs_response>);
  TINKER_DECL static void async_get_training_run(core_ptr, std::string, access_scope, bool by_path,
                                                 detail::any_handler<training_run>);
  TINKER_DECL static void async_weights_info(core_ptr, std::string, std::optional<std::string>,
                                             detail::any_handler<weights_info_response>);
  TINKER_DECL static void async_list_checkpoints(core_ptr, std::string, detail::any_handler<checkpoints_list_response>);
  TINKER_DECL static void async_list_user_checkpoints(core_ptr, int, int,
                                                      detail::any_handler<checkpoints_list_response>);
  TINKER_DECL static void async_checkpoint_call(core_ptr, std::string, checkpoint_action, std::optional<std::int64_t>,
                                                detail::any_handler<void>);
  TINKER_DECL static void async_archive_url(core_ptr, std::string,
                                            detail::any_handler<checkpoint_archive_url_response>);
  TINKER_DECL static void async_download(core_ptr, std::string, std::filesystem::path, download_options,
                                         detail::any_handler<std::vector<std::string>>);
  TINKER_DECL static void async_list_sessions(core_ptr, int, int, access_scope,
                                              detail::any_handler<list_sessions_response>);
  TINKER_DECL static void async_get_session(core_ptr, std::string, access_scope,
                                            detail::any_handler<get_session_response>);
  TINKER_DECL static void async_get_sampler(core_ptr, std::string, detail::any_handler<get_sampler_response>);
  TINKER_DECL static void async_assign_project(core_ptr, std::string, std::string, detail::any_handler<void>);
  TINKER_DECL static void async_export_trace(core_ptr, std::string, std::chrono::milliseconds,
                                             detail::any_handler<std::string>);
  TINKER_DECL static void async_audit_log(core_ptr, std::string, std::optional<std::string>,
                                          detail::any_handler<audit_log_response>);
  TINKER_DECL static void async_billing_usage(core_ptr, timestamp, timestamp,
                                              detail::any_handler<billing_usage_response>);

  core_ptr core_;
};

}  // namespace tinker

#ifdef TINKER_HEADER_ONLY
#include <tinker/client/impl/rest_client.ipp>
#endif
