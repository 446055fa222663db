// What a training_client shares with its copies: the model, its seq_id turn gate, the wire format
// and the server's chunking limits. Lives on the client's executor.
#pragma once

#include <tinker/client/detail/client_core.hpp>
#include <tinker/client/detail/turn_gate.hpp>
#include <tinker/client/options.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

namespace tinker::detail {

struct training_state {
  std::shared_ptr<client_core> core;
  std::string model_id;
  std::string base_model;
  turn_gate gate;
  wire_format format = wire_format::protobuf;
  /// Set when a submission may not have reached the server (see note_failed_submission).
  std::optional<std::string> broken;
  std::size_t max_chunk_datums = 1024;
  std::size_t max_chunk_bytes = 5'000'000;
  bool parallel_chunks = true;
};

}  // namespace tinker::detail
