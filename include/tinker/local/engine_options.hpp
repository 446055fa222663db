// Options of the local engine (tinker::local::engine) and its server executable.
#pragma once

#include <tinker/local/faults.hpp>
#include <tinker/local/request_record.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace tinker::local {

struct engine_options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  ///< 0 = pick a free port (see engine::port())

  /// Where runs, checkpoints, sessions and samplers persist across restarts. Empty = a fresh
  /// temporary directory, removed when the engine is destroyed.
  std::string data_dir;

  /// Accepted API keys; each key is a separate tenant. Empty = open mode: any key of the form
  /// `tml-...` is accepted (and is still its own tenant).
  std::vector<std::string> api_keys;

  /// Extra model names mapped onto the engine's own models (e.g. "Qwen/Qwen3-8B" -> "tinker-local/byte-lm-tiny").
  std::map<std::string, std::string> model_aliases;

  /// How long retrieve_future holds a request that is not ready before answering try_again
  /// (below the SDK's 45 s per-poll timeout). Must be in (0, 40 s]: the engine throws
  /// tinker::invalid_argument otherwise.
  std::chrono::milliseconds long_poll_hold{25'000};
  /// Sessions without a heartbeat for this long expire and their models unload.
  std::chrono::milliseconds session_timeout{300'000};
  /// How long finished futures stay retrievable.
  std::chrono::milliseconds future_retention{900'000};
  /// How often expiry (sessions, TTLs, futures) is checked.
  std::chrono::milliseconds maintenance_interval{5'000};
  /// Lifetime of signed archive download URLs.
  std::chrono::milliseconds download_url_lifetime{900'000};
  /// Lifetime of signed session trace export URLs (GET /api/v1/sessions/{id}/trace_export).
  std::chrono::milliseconds trace_url_lifetime{3'600'000};
  /// Audit log entries kept per tenant (GET /api/v1/audit); older ones are dropped. At least 1.
  std::size_t audit_log_limit = 10'000;

  std::size_t max_body_bytes = 64u << 20;
  /// The most dense elements one forward_backward / forward request may declare: every datum's
  /// model-input tokens plus the elements of every loss input's shape (a CSR tensor's shape counts
  /// in full, since the loss expands it). Larger requests are refused with 400 before anything is
  /// allocated from their shapes. 4 Mi elements is ~4x what the SDK's 5 MB request chunks can hold
  /// densely, and bounds a request's expanded inputs to tens of MiB. At least 1.
  std::size_t max_request_dense_elements = std::size_t{1} << 22;
  /// Compute threads (training and sampling run there, never on the I/O thread). 0 = hardware threads.
  std::size_t compute_threads = 0;
  /// Sample requests on the same weights processed together in one compute task.
  std::size_t sample_batch_size = 64;
  /// Sample requests pending (accepted, not finished) beyond which asample answers 429.
  std::size_t max_pending_samples = 100'000;
  /// How far ahead of a model's next expected seq_id a training request may be (it waits in memory
  /// for the ones before it); further ones are refused with 400. At least 1.
  std::int64_t max_seq_id_gap = 10'000;
  /// Chunk limits advertised to clients through client/config (forward_backward batches above
  /// them are split by the client).
  std::int64_t fwdbwd_max_chunk_len = 1024;
  std::int64_t fwdbwd_max_chunk_bytes = 5'000'000;
  /// Accept protobuf forward_backward bodies; false answers them 415 (like servers that only speak
  /// the legacy JSON), so clients' fallback can be tested.
  bool accept_protobuf_requests = true;
  /// Offer batched completion polling (POST /api/v1/retrieve_futures) to clients through client/config.
  bool offer_batched_polling = true;
  /// Tell clients (client/config create_model_via_load_weights) to create models from checkpoints
  /// with one load_weights request (session_id + model_seq_id). The engine accepts that form either way.
  bool offer_create_via_load = false;
  /// client/config use_pyqwest_transport: which HTTP stack the official Python SDK picks (no wire
  /// effect). Off by default: the engine speaks plain HTTP/1.1, where the SDK's stock httpx
  /// transport is all that is needed, and pyqwest is not packaged everywhere (Debian 12 lacks it),
  /// so the SDK then runs against the engine with fewer dependencies.
  bool advise_pyqwest_transport = false;

  /// Serve HTTPS with this certificate chain and key (PEM files).
  std::optional<std::string> tls_cert_file;
  std::optional<std::string> tls_key_file;

  fault_options faults;

  /// Seed of everything random the engine chooses (ids, default sampling seeds, LoRA seeds).
  std::uint64_t seed = 0x7417'6b65'7200'0001ull;

  /// Receives warnings (unreadable records at start-up, ...). Never sees API keys.
  std::function<void(const std::string&)> log;

  /// Observes every routed request (see request_record): called on the engine's I/O thread, in
  /// arrival order, before the request is authenticated or handled. Must not block; exceptions it
  /// throws are ignored.
  std::function<void(const request_record&)> on_request;

  /// Wall clock used for expiry (sessions, TTLs, URLs). Tests advance it by hand; default = system clock.
  std::function<std::chrono::system_clock::time_point()> clock;
};

}  // namespace tinker::local
