// The one way the engine's parts refuse a request: an http_error carries the status and the
// `{"detail": ...}` text the client gets. Thrown by components and handlers alike, mapped to an
// answer by the request pipeline (detail/dispatch.hpp), and to a failed future's category when a
// queued operation throws it.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace tinker::local::detail {

/// An error answered with an HTTP status and `{"detail": ...}`.
class http_error : public std::runtime_error {
public:
  http_error(unsigned status, std::string detail) : std::runtime_error(std::move(detail)), status_(status) {}
  unsigned status() const noexcept { return status_; }

private:
  unsigned status_;
};

}  // namespace tinker::local::detail
