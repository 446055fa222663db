// In-memory state of the local engine beyond the persisted records: loaded models with their
// seq_id queues, and samplers with their weights and batch queues.
#pragma once

#include <tinker/local/detail/futures.hpp>
#include <tinker/local/detail/model_queue.hpp>
#include <tinker/local/detail/records.hpp>
#include <tinker/local/detail/submission_memory.hpp>
#include <tinker/local/model/model.hpp>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>

namespace tinker::local::detail {

/// A model loaded in memory (a training run that belongs to a live session).
struct live_model {
  live_model(std::string run, std::string owner_tenant, std::string session, std::shared_ptr<const base_model> b,
             std::int64_t max_seq_id_gap)
      : run_id(std::move(run)),
        owner(std::move(owner_tenant)),
        session_id(std::move(session)),
        base(std::move(b)),
        queue(run_id, max_seq_id_gap) {}

  std::string run_id;
  std::string owner;
  std::string session_id;
  std::shared_ptr<const base_model> base;
  std::shared_ptr<trainable_model> model;  ///< set by its creation (operation 0 of the queue)
  model_queue queue;
};

struct pending_sample {
  std::shared_ptr<future_entry> future;
  sample_request request;
  std::uint64_t seed = 0;
};

/// A sampler (sampling session) with its weights and its queue of pending samples.
struct sampler_state {
  sampler_record record;
  std::shared_ptr<const base_model> base;
  /// Adapter weights; null for the base model. Immutable: later training never changes them.
  std::shared_ptr<const lora_weights> weights;
  bool needs_weights = false;  ///< weights are loaded from `record.model_path` before the first batch
  bool weights_lost = false;   ///< ephemeral weights of an earlier engine run
  std::deque<pending_sample> queue;
  std::size_t running_batches = 0;
  submission_memory submissions;  ///< by the samples' seq_ids
};

}  // namespace tinker::local::detail
