// The answers handlers build: JSON bodies, `{"detail": ...}` errors, raw bytes, and the future
// handle every queued request answers with. Every answer keeps the request's HTTP version and
// keep-alive, and names the server.
#pragma once

#include <tinker/json.hpp>
#include <tinker/local/detail/futures.hpp>
#include <tinker/local/detail/request_context.hpp>
#include <tinker/local/http_server.hpp>
#include <tinker/types.hpp>

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/json.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tinker::local::detail {

inline http_response make_response(const http_request& req, unsigned status) {
  http_response res{static_cast<boost::beast::http::status>(status), req.version()};
  res.keep_alive(req.keep_alive());
  res.set(boost::beast::http::field::server, "tinker-local");
  return res;
}

inline http_response json_response(const request_context& ctx, unsigned status, const boost::json::value& v) {
  auto res = make_response(ctx.request, status);
  res.set(boost::beast::http::field::content_type, "application/json");
  res.body() = json::dump(v);
  res.prepare_payload();
  return res;
}

inline http_response error_response(const http_request& req, unsigned status, std::string detail) {
  auto res = make_response(req, status);
  res.set(boost::beast::http::field::content_type, "application/json");
  res.body() = json::to_json(tinker::error_response{std::move(detail)});
  res.prepare_payload();
  return res;
}

inline http_response bytes_response(const request_context& ctx, const char* content_type, const std::string& bytes) {
  auto res = make_response(ctx.request, 200);
  res.set(boost::beast::http::field::content_type, content_type);
  res.body() = bytes;
  res.prepare_payload();
  return res;
}

/// The handle of a submitted request: `{"request_id", "model_id"?, "sample_sequence_ids"?}`.
inline http_response future_response(const request_context& ctx, const future_entry& f,
                                     std::optional<std::string> model_id = std::nullopt,
                                     std::optional<std::vector<std::string>> sequence_ids = std::nullopt) {
  return json_response(ctx, 200,
                       boost::json::value_from(untyped_api_future{f.id, std::move(model_id), std::move(sequence_ids)}));
}

}  // namespace tinker::local::detail
