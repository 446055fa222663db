// tinker::local::engine — a Tinker-compatible server with a small byte-level model that really
// trains on CPU. Start it in-process (engine on your executor, or embedded_engine on its own
// thread) and point a client at base_url(); or run the tinker-local-server tool.
//
// Route names (for fault_options): healthz, client_config, dynamic_config, telemetry,
// get_server_capabilities, create_session, session_heartbeat, create_sampling_session,
// finish_session, create_model, get_info, unload_model, forward_backward, forward, optim_step,
// save_weights, save_weights_for_sampler, load_weights, asample, sample, get_sampler,
// retrieve_future, retrieve_futures, weights_info, list_training_runs, get_training_run,
// list_checkpoints, list_user_checkpoints, delete_checkpoint, publish_checkpoint,
// unpublish_checkpoint, set_checkpoint_ttl, checkpoint_archive, download, list_sessions, get_session,
// set_session_project, trace_export, trace_download, audit, billing_usage.
// (Methods and paths: detail::route_table() in detail/routing.hpp.) engine_options::on_request
// observes every routed request (see request_record.hpp).
//
// Beyond the training and sampling protocol:
// * load_weights takes an optional weights_access_token (an API key of the account owning the
//   checkpoint; never stored or logged): the checkpoint is then read as that key's tenant. An
//   invalid token answers 403. Both addressing forms: model_id + seq_id, and create-via-load
//   (session_id + model_seq_id: creates the model with the checkpoint's LoRA settings and loads
//   it as the model's operation 0; advertised when engine_options::offer_create_via_load).
// * sampling_params.max_tokens may be null: sampling runs to EOS / a stop, or the context limit
//   (max_context_length - prompt length), within the per-request work limit.
// * PUT  /api/v1/sessions/{id}/project {"project_id"} -> {} (persisted); GET
//   /api/v1/training_runs?project_id=P lists only runs created in the caller's sessions of P.
// * GET  /api/v1/sessions/{id}/trace_export -> {"status":"ready","url"}: a signed URL
//   (/downloads/traces/<id>.json, no key, engine_options::trace_url_lifetime) answering a JSON
//   trace of the session: its runs and samplers with request counts per route, heartbeats.
// * GET  /api/v1/audit?event_type=all|checkpoints[&day=YYYY-MM-DD] -> {"entries"}: checkpoint
//   events (checkpoint_create, _delete, _publish, _unpublish, _ttl_set, _read for archive URLs)
//   and, for all, session_create and model_create; the last audit_log_limit per tenant, kept in
//   the data directory.
// * GET  /api/v1/billing/usage/events?starting_on=&ending_before= -> {"data","sessions"}: hourly
//   usage per session and base model (training, sampling_prefill, sampling_sample, checkpoint),
//   counted in memory against the engine clock (it starts empty at every engine start).
//
// Refusals: permanent mistakes answer 400/403/404/422 with {"detail": "..."} naming the field, when
// they arrive (sampling parameters, tensor shapes and tokens, loss inputs, Adam parameters, LoRA
// ranks, TTLs up to 10 years, seq_ids more than max_seq_id_gap ahead); a refused training request
// still uses up its seq_id, so the model's later operations run. Only errors that can be found
// when a request runs fail its future (category "user" or "server").
//
// Compilation: header-only by default. With TINKER_SEPARATE_COMPILATION defined, this header only
// declares (it costs about what <boost/asio/io_context.hpp> does) and <tinker/local/src.hpp>,
// included in one translation unit, compiles the engine (see tinker/detail/config.hpp).
#pragma once

#include <tinker/detail/config.hpp>
#include <tinker/local/engine_options.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <cstdint>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <thread>

namespace tinker::local {

namespace detail {
class engine_impl;
}  // namespace detail

class engine_test_hook;

/// The engine on an executor you run. Single-threaded: call its members from that executor
/// (or before the executor runs). Loads the data directory on construction; serves after start().
/// Throws tinker::invalid_argument for options that cannot work (a long_poll_hold outside
/// (0, 40 s], an alias onto an unknown model, ...).
class engine {
public:
  /// Default options. (Overloads, not a default argument: GCC 12 destroys a defaulted aggregate
  /// argument twice when the call is part of a co_await expression.)
  TINKER_DECL explicit engine(boost::asio::any_io_executor executor);
  TINKER_DECL engine(boost::asio::any_io_executor executor, engine_options options);

  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;
  TINKER_DECL ~engine();

  /// Binds and starts serving. Throws if the address is unavailable.
  TINKER_DECL void start();
  /// Stops serving: closes the listener and every connection. Idempotent.
  TINKER_DECL void stop();

  /// The port it listens on (the chosen one when options.port was 0).
  TINKER_DECL std::uint16_t port() const;
  /// `http://host:port` (or https with TLS options): what a client's base_url should be.
  TINKER_DECL std::string base_url() const;

  /// Replaces the fault-injection settings (takes effect for the next requests).
  TINKER_DECL void set_faults(fault_options faults);
  /// Runs expiry now: sessions without heartbeats, checkpoint TTLs, old futures.
  TINKER_DECL void run_maintenance();

  /// Waits for running compute tasks and stops the compute pool (after the executor stopped).
  TINKER_DECL void join_compute();

  /// Where runs, checkpoints, sessions and samplers persist (engine_options::data_dir, or the
  /// temporary directory the engine made).
  TINKER_DECL const std::filesystem::path& data_dir() const;

private:
  friend class engine_test_hook;
  std::shared_ptr<detail::engine_impl> impl_;
};

/// An engine with its own io_context and I/O thread, started on construction and stopped on
/// destruction: what tests, examples and benchmarks embed. Its members are thread-safe (they run
/// on the engine's thread and wait).
class embedded_engine {
public:
  TINKER_DECL embedded_engine();
  TINKER_DECL explicit embedded_engine(engine_options options);

  embedded_engine(const embedded_engine&) = delete;
  embedded_engine& operator=(const embedded_engine&) = delete;
  TINKER_DECL ~embedded_engine();

  TINKER_DECL std::string base_url() const;
  TINKER_DECL std::uint16_t port() const;
  TINKER_DECL void set_faults(fault_options faults);
  TINKER_DECL void run_maintenance();
  TINKER_DECL std::filesystem::path data_dir() const;

  /// Runs `f` on the engine's thread and returns its result.
  template <class F>
  auto call(F f) const -> decltype(f()) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    boost::asio::post(io_, [&task] { task(); });
    return result.get();
  }

private:
  friend class engine_test_hook;
  mutable boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::unique_ptr<engine> engine_;
  std::thread thread_;
};

}  // namespace tinker::local

#ifdef TINKER_HEADER_ONLY
#include <tinker/local/impl/engine.ipp>
#endif
