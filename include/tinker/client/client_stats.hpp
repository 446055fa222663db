// client_stats: counters a service_client keeps about its HTTP traffic, for dashboards, tests and
// benchmarks (how often did we retry? did the server compress? are heartbeats flowing?).
#pragma once

#include <cstdint>

namespace tinker {

struct client_stats {
  std::uint64_t http_requests = 0;   ///< every request sent, polls and heartbeats included
  std::uint64_t retries = 0;         ///< calls sent again after a retryable failure
  std::uint64_t polls = 0;           ///< retrieve_future requests
  std::uint64_t heartbeats = 0;      ///< session heartbeats answered by the server
  std::uint64_t gzip_responses = 0;  ///< answers that arrived gzip-encoded (and were inflated)
};

}  // namespace tinker
