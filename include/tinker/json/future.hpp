// JSON form of the futures protocol (protocol.md §5; protocol-delta.md §1), including the
// classification of a retrieve_future answer.
#pragma once

#include <tinker/json/detail/read.hpp>
#include <tinker/json/detail/type_name.hpp>
#include <tinker/json/detail/write.hpp>
#include <tinker/types/future.hpp>

#include <boost/json/serialize.hpp>
#include <boost/json/value_from.hpp>
#include <boost/json/value_to.hpp>

#include <variant>

TINKER_JSON_TYPE_NAME(untyped_api_future)
TINKER_JSON_TYPE_NAME(future_retrieve_request)
TINKER_JSON_TYPE_NAME(try_again_response)
TINKER_JSON_TYPE_NAME(complete_metadata_response)
TINKER_JSON_TYPE_NAME(request_failed_response)
TINKER_JSON_TYPE_NAME(retrieve_futures_request)
TINKER_JSON_TYPE_NAME(future_completion)
TINKER_JSON_TYPE_NAME(retrieve_futures_response)

namespace tinker {

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const untyped_api_future& f) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "request_id", f.request_id);
  json::detail::put(o, "model_id", f.model_id);
  json::detail::put(o, "sample_sequence_ids", f.sample_sequence_ids);
  jv = std::move(o);
}

inline untyped_api_future tag_invoke(boost::json::value_to_tag<untyped_api_future>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "untyped_api_future");
  return untyped_api_future{r.required<std::string>("request_id"), r.optional<std::string>("model_id"),
                            r.optional<std::vector<std::string>>("sample_sequence_ids")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const future_retrieve_request& req) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "request_id", req.request_id);
  json::detail::put(o, "allow_metadata_only", req.allow_metadata_only);
  jv = std::move(o);
}

inline future_retrieve_request tag_invoke(boost::json::value_to_tag<future_retrieve_request>,
                                          const boost::json::value& jv) {
  json::detail::object_reader r(jv, "future_retrieve_request");
  return future_retrieve_request{r.required<std::string>("request_id"), r.optional_or("allow_metadata_only", false)};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, queue_state q) { jv = to_string(q); }

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const try_again_response& t) {
  boost::json::object o(jv.storage());
  json::detail::put_type(o, "try_again");
  json::detail::put(o, "request_id", t.request_id);
  json::detail::put(o, "queue_state", t.queue_state);
  json::detail::put(o, "queue_state_reason", t.queue_state_reason);
  jv = std::move(o);
}

inline try_again_response tag_invoke(boost::json::value_to_tag<try_again_response>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "try_again_response");
  return try_again_response{r.optional_or<std::string>("request_id", ""),
                            parse_queue_state(r.optional_or<std::string>("queue_state", "active")),
                            r.optional<std::string>("queue_state_reason")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const complete_metadata_response& m) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "status", std::string("complete_metadata"));
  json::detail::put(o, "response_payload_size", m.response_payload_size);
  jv = std::move(o);
}

inline complete_metadata_response tag_invoke(boost::json::value_to_tag<complete_metadata_response>,
                                             const boost::json::value& jv) {
  json::detail::object_reader r(jv, "complete_metadata_response");
  return complete_metadata_response{r.required<std::int64_t>("response_payload_size")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const request_failed_response& f) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "error", f.error);
  json::detail::put(o, "category", std::string(to_string(f.category)));
  jv = std::move(o);
}

inline request_failed_response tag_invoke(boost::json::value_to_tag<request_failed_response>,
                                          const boost::json::value& jv) {
  json::detail::object_reader r(jv, "request_failed_response");
  // An error that is not a string is still a failure; keep its JSON text rather than losing it.
  const auto* err = r.object().if_contains("error");
  if (!err) r.fail("error", "missing required field");
  std::string message = err->is_string() ? std::string(err->get_string()) : boost::json::serialize(*err);
  const auto* cat = r.object().if_contains("category");
  return request_failed_response{
      std::move(message), cat && cat->is_string() ? parse_error_category(cat->get_string()) : error_category::unknown};
}

// --- batched completion polling ------------------------------------------------------------------

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const retrieve_futures_request& req) {
  boost::json::object o(jv.storage());
  boost::json::object target(jv.storage());
  json::detail::put_type(target, "sampling_session");
  json::detail::put(target, "sampling_session_id", req.target.sampling_session_id);
  json::detail::put(target, "cloned_sampler_id", req.target.cloned_sampler_id);
  o.emplace("target", std::move(target));
  json::detail::put(o, "prev_cursor", req.prev_cursor);
  json::detail::put(o, "timeout", req.timeout);
  jv = std::move(o);
}

inline retrieve_futures_request tag_invoke(boost::json::value_to_tag<retrieve_futures_request>,
                                           const boost::json::value& jv) {
  json::detail::object_reader r(jv, "retrieve_futures_request");
  const auto target = r.required<boost::json::value>("target");
  json::detail::object_reader t(target, "retrieve_futures_request.target");
  if (auto type = t.optional<std::string>("type"); type && *type != "sampling_session")
    t.fail("type", "unsupported target type '" + *type + "'");
  return retrieve_futures_request{retrieve_futures_target{t.required<std::string>("sampling_session_id"),
                                                          t.optional_or<std::int64_t>("cloned_sampler_id", 0)},
                                  r.optional_or<std::int64_t>("prev_cursor", 0), r.optional<double>("timeout")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const future_completion& c) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "state", std::string(c.state == completion_state::finished ? "finished" : "failed"));
  json::detail::put(o, "request_id", c.request_id);
  json::detail::put(o, "response_payload_uncompressed_size", c.response_payload_uncompressed_size);
  jv = std::move(o);
}

inline future_completion tag_invoke(boost::json::value_to_tag<future_completion>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "future_completion");
  const auto state = r.required<std::string>("state");
  if (state != "finished" && state != "failed") r.fail("state", "unknown completion state '" + state + "'");
  return future_completion{state == "finished" ? completion_state::finished : completion_state::failed,
                           r.required<std::string>("request_id"),
                           r.optional<std::int64_t>("response_payload_uncompressed_size")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const retrieve_futures_response& resp) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "completions", resp.completions);
  json::detail::put(o, "cursor", resp.cursor);
  jv = std::move(o);
}

inline retrieve_futures_response tag_invoke(boost::json::value_to_tag<retrieve_futures_response>,
                                            const boost::json::value& jv) {
  json::detail::object_reader r(jv, "retrieve_futures_response");
  return retrieve_futures_response{r.required<std::vector<future_completion>>("completions"),
                                   r.required<std::int64_t>("cursor")};
}

namespace json {

/// A JSON answer to retrieve_future, classified in the SDK's order (protocol.md §5.3):
/// try_again, complete_metadata, failure (`error` key), or the result payload itself.
using retrieve_answer =
    std::variant<try_again_response, complete_metadata_response, request_failed_response, boost::json::value>;

inline retrieve_answer classify_retrieve_answer(boost::json::value v) {
  if (!v.is_object())
    throw protocol_error("retrieve_future answer", "",
                         std::string("expected a JSON object, got ") + detail::kind_name(v));
  const auto& o = v.get_object();
  if (const auto* t = o.if_contains("type"); t && t->is_string() && t->get_string() == "try_again")
    return boost::json::value_to<try_again_response>(v);
  if (const auto* s = o.if_contains("status"); s && s->is_string() && s->get_string() == "complete_metadata")
    return boost::json::value_to<complete_metadata_response>(v);
  if (o.contains("error")) return boost::json::value_to<request_failed_response>(v);
  return v;
}

}  // namespace json
}  // namespace tinker
