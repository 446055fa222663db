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
// unpublish_checkpoint, set_checkpoint_ttl, checkpoint_archive, download, list_sessions, get_session.
#pragma once

#include <tinker/local/detail/engine_impl.hpp>
#include <tinker/local/detail/future_endpoints.hpp>
#include <tinker/local/detail/rest_endpoints.hpp>
#include <tinker/local/detail/sampling_endpoints.hpp>
#include <tinker/local/detail/service_endpoints.hpp>
#include <tinker/local/detail/training_endpoints.hpp>
#include <tinker/local/engine_options.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>

namespace tinker::local {

/// The engine on an executor you run. Single-threaded: call its members from that executor
/// (or before the executor runs). Loads the data directory on construction; serves after start().
class engine {
public:
  engine(boost::asio::any_io_executor executor, engine_options options = {})
      : impl_(std::make_shared<detail::engine_impl>(std::move(executor), std::move(options))) {}

  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;
  ~engine() { impl_->stop(); }

  /// Binds and starts serving. Throws if the address is unavailable.
  void start() { impl_->start(); }
  /// Stops serving: closes the listener and every connection. Idempotent.
  void stop() { impl_->stop(); }

  /// The port it listens on (the chosen one when options.port was 0).
  std::uint16_t port() const { return impl_->port(); }
  /// `http://host:port` (or https with TLS options): what a client's base_url should be.
  std::string base_url() const { return impl_->base_url(); }

  /// Replaces the fault-injection settings (takes effect for the next requests).
  void set_faults(fault_options faults) { impl_->set_faults(std::move(faults)); }
  /// Runs expiry now: sessions without heartbeats, checkpoint TTLs, old futures.
  void run_maintenance() { impl_->run_maintenance(); }

  /// Waits for running compute tasks and stops the compute pool (after the executor stopped).
  void join_compute() { impl_->join_compute(); }

  std::size_t loaded_model_count() const { return impl_->loaded_model_count(); }
  std::size_t future_count() const { return impl_->future_count(); }
  std::size_t pending_sample_count() const { return impl_->pending_sample_count(); }
  std::uint64_t sample_batch_count() const { return impl_->sample_batch_count(); }
  std::uint64_t request_count(const std::string& route) const { return impl_->request_count(route); }
  const std::filesystem::path& data_dir() const { return impl_->data_dir(); }

private:
  std::shared_ptr<detail::engine_impl> impl_;
};

/// An engine with its own io_context and I/O thread, started on construction and stopped on
/// destruction: what tests, examples and benchmarks embed. Its members are thread-safe (they run
/// on the engine's thread and wait).
class embedded_engine {
public:
  explicit embedded_engine(engine_options options = {})
      : work_(io_.get_executor()), engine_(std::make_unique<engine>(io_.get_executor(), std::move(options))) {
    engine_->start();
    thread_ = std::thread([this] { io_.run(); });
  }

  embedded_engine(const embedded_engine&) = delete;
  embedded_engine& operator=(const embedded_engine&) = delete;

  ~embedded_engine() {
    call([this] { engine_->stop(); });
    work_.reset();
    io_.stop();
    thread_.join();
    // Compute tasks still running post their results to io_: let them finish while io_ is alive.
    engine_->join_compute();
    engine_.reset();
  }

  std::string base_url() const { return call([this] { return engine_->base_url(); }); }
  std::uint16_t port() const { return call([this] { return engine_->port(); }); }
  void set_faults(fault_options faults) { call([&] { engine_->set_faults(std::move(faults)); }); }
  void run_maintenance() { call([this] { engine_->run_maintenance(); }); }
  std::size_t loaded_model_count() const { return call([this] { return engine_->loaded_model_count(); }); }
  std::size_t future_count() const { return call([this] { return engine_->future_count(); }); }
  std::size_t pending_sample_count() const { return call([this] { return engine_->pending_sample_count(); }); }
  std::uint64_t sample_batch_count() const { return call([this] { return engine_->sample_batch_count(); }); }
  std::uint64_t request_count(const std::string& route) const {
    return call([this, &route] { return engine_->request_count(route); });
  }
  std::filesystem::path data_dir() const { return call([this] { return engine_->data_dir(); }); }

  /// Runs `f` on the engine's thread and returns its result.
  template <class F>
  auto call(F f) const -> decltype(f()) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    boost::asio::post(io_, [&task] { task(); });
    return result.get();
  }

private:
  mutable boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::unique_ptr<engine> engine_;
  std::thread thread_;
};

}  // namespace tinker::local
