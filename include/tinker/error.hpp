// The exception hierarchy shared by the client, the codecs and the local engine.
//
//   tinker_error                      anything this library throws on purpose
//   ├── protocol_error                a message on the wire could not be decoded (names type + field)
//   └── api_error                     a call to a server failed
//       ├── api_status_error          the server answered with a non-2xx status (status, body)
//       │   ├── bad_request_error (400), authentication_error (401), permission_denied_error (403),
//       │   │   not_found_error (404), conflict_error (409), gone_error (410), unprocessable_entity_error (422),
//       │   │   rate_limit_error (429), internal_server_error (>= 500)
//       ├── api_connection_error      no response: connect/read/write failure
//       │   └── api_timeout_error     ... because a deadline passed
//       ├── api_response_validation_error   a 2xx answer that is not what the protocol promises
//       └── request_failed_error      a server-side future finished with {"error", "category"}
//   tinker::invalid_argument (a std::invalid_argument)   user mistakes caught before sending
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace tinker {

/// Base of every exception this library throws on purpose (except tinker::invalid_argument, which
/// is a std::invalid_argument so that generic code can catch user errors the standard way).
class tinker_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// A user mistake caught before anything was sent: the message names the field and the value.
class invalid_argument : public std::invalid_argument {
public:
  using std::invalid_argument::invalid_argument;
};

/// A JSON or protobuf message that does not follow the protocol. `type_name` is the protocol type
/// being decoded, `field` the dotted path inside it ("sequences[2].tokens"), `problem` what is wrong.
class protocol_error : public tinker_error {
public:
  protocol_error(std::string type_name, std::string field, std::string problem)
      : tinker_error(format(type_name, field, problem)),
        type_name_(std::move(type_name)),
        field_(std::move(field)),
        problem_(std::move(problem)) {}

  const std::string& type_name() const noexcept { return type_name_; }
  const std::string& field() const noexcept { return field_; }
  const std::string& problem() const noexcept { return problem_; }

  /// The same problem seen from an enclosing message: `outer_type.outer_field.<our field>`.
  protocol_error nested_in(std::string_view outer_type, std::string_view outer_field) const {
    std::string path(outer_field);
    if (!field_.empty()) {
      if (!path.empty() && field_.front() != '[') path += '.';
      path += field_;
    }
    return protocol_error(std::string(outer_type), std::move(path), problem_);
  }

private:
  static std::string format(const std::string& type_name, const std::string& field, const std::string& problem) {
    std::string out = "cannot decode " + type_name;
    if (!field.empty()) out += ": field '" + field + "'";
    out += ": " + problem;
    return out;
  }

  std::string type_name_;
  std::string field_;
  std::string problem_;
};

/// A call to a server failed.
class api_error : public tinker_error {
public:
  using tinker_error::tinker_error;
};

/// The server answered with a non-2xx status. `body` is the raw response body (JSON error bodies
/// are kept verbatim; the protocol does not fix their shape).
class api_status_error : public api_error {
public:
  api_status_error(int status, std::string body, std::string what)
      : api_error(std::move(what)), status_(status), body_(std::move(body)) {}

  int status() const noexcept { return status_; }
  const std::string& body() const noexcept { return body_; }

private:
  int status_;
  std::string body_;
};

#define TINKER_DEFINE_STATUS_ERROR(name)      \
  class name : public api_status_error {      \
  public:                                     \
    using api_status_error::api_status_error; \
  };
TINKER_DEFINE_STATUS_ERROR(bad_request_error)           // 400
TINKER_DEFINE_STATUS_ERROR(authentication_error)        // 401
TINKER_DEFINE_STATUS_ERROR(permission_denied_error)     // 403
TINKER_DEFINE_STATUS_ERROR(not_found_error)             // 404
TINKER_DEFINE_STATUS_ERROR(conflict_error)              // 409
TINKER_DEFINE_STATUS_ERROR(gone_error)                  // 410
TINKER_DEFINE_STATUS_ERROR(unprocessable_entity_error)  // 422
TINKER_DEFINE_STATUS_ERROR(rate_limit_error)            // 429
TINKER_DEFINE_STATUS_ERROR(internal_server_error)       // >= 500
#undef TINKER_DEFINE_STATUS_ERROR

/// No response: connecting, writing or reading failed.
class api_connection_error : public api_error {
public:
  using api_error::api_error;
};

/// No response because a deadline passed.
class api_timeout_error : public api_connection_error {
public:
  using api_connection_error::api_connection_error;
};

/// A 2xx answer that does not follow the protocol (missing field, wrong type, bad protobuf).
class api_response_validation_error : public api_error {
public:
  using api_error::api_error;
};

/// Category of a failed server-side request, as the server reports it.
enum class error_category { unknown, server, user };

/// A server-side future finished with an error.
class request_failed_error : public api_error {
public:
  request_failed_error(std::string request_id, error_category category, std::string message)
      : api_error(std::move(message)), request_id_(std::move(request_id)), category_(category) {}

  const std::string& request_id() const noexcept { return request_id_; }
  error_category category() const noexcept { return category_; }

private:
  std::string request_id_;
  error_category category_;
};

/// The service client's session is gone for good: its heartbeat was refused (the session expired
/// on the server, the key was revoked). Calls that need the session fail with this; make a new
/// service_client to go on.
class session_lost_error : public api_error {
public:
  session_lost_error(std::string session_id, int status, std::string message)
      : api_error(std::move(message)), session_id_(std::move(session_id)), status_(status) {}

  const std::string& session_id() const noexcept { return session_id_; }
  /// The status that refused the heartbeat.
  int status() const noexcept { return status_; }

private:
  std::string session_id_;
  int status_;
};

}  // namespace tinker
