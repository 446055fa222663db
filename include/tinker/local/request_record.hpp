// tinker::local::request_record: what the local engine's request observer
// (engine_options::on_request) sees of each request. Lets tests check what a client sent (seq_ids,
// headers, polls) without a proxy.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace tinker::local {

/// One request the engine received, reported after routing and before it is handled (so rejected
/// requests are reported too: bad keys, injected faults, bad bodies), in arrival order, on the
/// engine's I/O thread. Requests that match no route are not reported.
struct request_record {
  std::string route;   ///< route name (see engine.hpp), e.g. "forward_backward"
  std::string method;  ///< "POST", "GET", ...
  std::string target;  ///< path and query as sent, e.g. "/api/v1/retrieve_future"
  /// Every header by lowercase name (repeated headers joined with ", "), except the credentials:
  /// x-api-key and authorization never appear.
  std::map<std::string, std::string> headers;
  /// Training submissions (forward_backward, forward, optim_step, save_weights,
  /// save_weights_for_sampler, load_weights, unload_model) and asample: the model_id and seq_id the
  /// body names, decoded best-effort from JSON or protobuf (absent when missing or undecodable).
  std::optional<std::string> model_id;
  std::optional<std::int64_t> seq_id;
  /// retrieve_future: the request_id the body polls.
  std::optional<std::string> request_id;
  /// The body as the engine read it (inflated when it came gzipped): JSON or protobuf bytes.
  /// Credentials in bodies are not redacted; tests decide what to look at.
  std::string body;
};

}  // namespace tinker::local
