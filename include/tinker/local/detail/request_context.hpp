// What a handler knows about the request it serves, and how it reads the body: typed JSON
// decoding, content negotiation, and a best-effort look at which model and seq_id a body names
// (for requests refused before or while they are decoded, and for the request observer).
#pragma once

#include <tinker/json.hpp>
#include <tinker/local/detail/request_target.hpp>
#include <tinker/local/http_server.hpp>
#include <tinker/proto/detail/reader.hpp>

#include <boost/beast/http/field.hpp>
#include <boost/json.hpp>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

namespace tinker::local::detail {

/// Everything a handler knows about the request it serves.
struct request_context {
  http_request& request;
  parsed_target target;
  std::string route;   ///< route name, e.g. "asample"
  std::string tenant;  ///< digest of the API key ("" for unauthenticated routes)

  /// The context of `req` as its route `route` and caller `tenant` see it (target parsed).
  static request_context of(http_request& req, std::string route = {}, std::string tenant = {}) {
    return request_context{req, parsed_target::parse(std::string_view(req.target().data(), req.target().size())),
                           std::move(route), std::move(tenant)};
  }
};

template <class T>
T decode_json_body(const request_context& ctx) {
  return json::from_json<T>(ctx.request.body());
}

/// A body whose `user_metadata` is string -> any (docs/protocol.md §4.5, §7.1; the SDK sends
/// strings): non-string values are kept as their JSON text, which the typed decoder
/// (string -> string) accepts.
template <class T>
T decode_json_body_with_metadata(const request_context& ctx) {
  auto body = json::parse(ctx.request.body(), json::detail::type_name<T>::value);
  if (auto* o = body.if_object())
    if (auto* meta = o->if_contains("user_metadata"); meta && meta->is_object())
      for (auto& [key, value] : meta->as_object())
        if (!value.is_string()) value = json::dump(value);
  return json::from_value<T>(body);
}

inline bool content_type_is(const http_request& req, std::string_view type) {
  auto it = req.find(boost::beast::http::field::content_type);
  return it != req.end() &&
         std::string_view(it->value().data(), it->value().size()).find(type) != std::string_view::npos;
}

inline bool accepts_protobuf(const http_request& req) {
  auto it = req.find(boost::beast::http::field::accept);
  return it != req.end() && std::string_view(it->value().data(), it->value().size()).find("application/x-protobuf") !=
                                std::string_view::npos;
}

/// Routes whose requests name (model_id, seq_id) and queue on that model.
inline bool names_model_op(std::string_view route) {
  return route == "forward_backward" || route == "forward" || route == "optim_step" || route == "save_weights" ||
         route == "save_weights_for_sampler" || route == "load_weights" || route == "unload_model";
}

/// The model and seq_id a training request's body names, decoded best-effort.
struct body_target {
  std::optional<std::string> model_id;
  std::optional<std::int64_t> seq_id;
  std::optional<std::string> request_id;
};

/// What the body names (model_id, seq_id, request_id), decoded best-effort: never throws.
inline body_target body_target_of(const request_context& ctx) noexcept {
  body_target t;
  try {
    const auto& body = ctx.request.body();
    if (ctx.route == "forward_backward" && content_type_is(ctx.request, "application/x-protobuf")) {
      // ForwardBackwardRequest: model_id = 1 (string), seq_id = 2 (int32); other fields skipped.
      namespace pd = tinker::proto::detail;
      pd::reader r(body);
      while (!r.at_end()) {
        const auto tag = r.read_tag();
        if (tag.number == 1 && tag.type == pd::wire_type::length_delimited)
          t.model_id = std::string(r.read_length_delimited());
        else if (tag.number == 2 && tag.type == pd::wire_type::varint)
          t.seq_id = pd::read_int32_field(r, tag, "seq_id");
        else
          r.skip(tag);
      }
      return t;
    }
    boost::system::error_code ec;
    const auto v = boost::json::parse(body, ec);
    if (ec || !v.is_object()) return t;
    const auto& o = v.as_object();
    if (auto* m = o.if_contains("model_id"); m && m->is_string()) t.model_id = std::string(m->as_string());
    if (auto* q = o.if_contains("seq_id")) {
      if (q->is_int64())
        t.seq_id = q->as_int64();
      else if (q->is_uint64() && q->as_uint64() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        t.seq_id = static_cast<std::int64_t>(q->as_uint64());
    }
    if (auto* id = o.if_contains("request_id"); id && id->is_string()) t.request_id = std::string(id->as_string());
  } catch (...) {
    // best-effort: a malformed body names nothing (what was read so far is kept)
  }
  return t;
}

}  // namespace tinker::local::detail
