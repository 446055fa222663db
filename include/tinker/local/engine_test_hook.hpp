// tinker::local::engine_test_hook: counters of the local engine's internals, for tests and
// benchmarks that check what the engine did (how often a client retried, whether futures and
// samples were cleaned up, how samples were batched). Not part of the engine's API: what these
// count may change with the engine's implementation.
#pragma once

#include <tinker/detail/config.hpp>
#include <tinker/local/engine.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace tinker::local {

namespace detail {
class engine_core;
}  // namespace detail

class engine_test_hook {
public:
  /// For an engine on an executor you run: call the members from that executor.
  explicit engine_test_hook(engine& e) noexcept : engine_(&e) {}
  /// For an embedded engine: the members run on its thread (thread-safe, like its own members).
  explicit engine_test_hook(embedded_engine& e) noexcept : embedded_(&e) {}

  /// Requests received on `route` (a route name, see engine.hpp), refused ones included.
  TINKER_DECL std::uint64_t request_count(const std::string& route) const;
  /// Futures the engine holds (pending, or finished and not yet past future_retention).
  TINKER_DECL std::size_t future_count() const;
  /// Models loaded in memory.
  TINKER_DECL std::size_t loaded_model_count() const;
  /// Sample requests accepted and not finished.
  TINKER_DECL std::size_t pending_sample_count() const;
  /// Completion logs of batched polling, one per (sampler, clone) that completed something.
  TINKER_DECL std::size_t completion_log_count() const;
  /// Compute tasks that ran sample requests (several requests on the same weights share one).
  TINKER_DECL std::uint64_t sample_batch_count() const;

private:
  /// `read` applied to the engine's core, on the thread the core lives on.
  TINKER_DECL std::uint64_t read(const std::function<std::uint64_t(const detail::engine_core&)>& reader) const;

  engine* engine_ = nullptr;
  embedded_engine* embedded_ = nullptr;
};

}  // namespace tinker::local

#ifdef TINKER_HEADER_ONLY
#include <tinker/local/impl/engine_test_hook.ipp>
#endif
