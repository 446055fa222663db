// JSON form of the futures protocol, including the classification of a retrieve_future answer.
#pragma once

#include <tinker/json/detail/described.hpp>
#include <tinker/types/future.hpp>

#include <boost/json/serialize.hpp>

#include <variant>

namespace tinker {

TINKER_JSON_STRUCT(untyped_api_future, (request_id, model_id, sample_sequence_ids))
TINKER_JSON_STRUCT(future_retrieve_request, (request_id, allow_metadata_only))
TINKER_JSON_ENUM(queue_state, "queue state", active, paused_capacity, paused_rate_limit, unknown)
TINKER_JSON_STRUCT(try_again_response, (request_id, queue_state, queue_state_reason), .tag = "try_again",
                   .defaulted = "request_id, queue_state", .tag_first = true)
TINKER_JSON_STRUCT(complete_metadata_response, (response_payload_size), .tag = "complete_metadata", .tag_first = true,
                   .tag_key = "status")
TINKER_JSON_ENUM(error_category, "error category", unknown, server, user)
TINKER_JSON_STRUCT(request_failed_response, (error, category))
TINKER_JSON_STRUCT(retrieve_futures_target, (sampling_session_id, cloned_sampler_id), .tag = "sampling_session",
                   .defaulted = "cloned_sampler_id", .tag_first = true)
TINKER_JSON_STRUCT(retrieve_futures_request, (target, prev_cursor, timeout), .defaulted = "prev_cursor")
TINKER_JSON_ENUM(completion_state, "completion state", finished, failed)
TINKER_JSON_STRUCT(future_completion, (state, request_id, response_payload_uncompressed_size))
TINKER_JSON_STRUCT(retrieve_futures_response, (completions, cursor))

/// `sampling_session` is the only target type: another one is refused rather than misread.
inline retrieve_futures_target tag_invoke(boost::json::value_to_tag<retrieve_futures_target>,
                                          const boost::json::value& jv) {
  json::detail::object_reader r(jv, "retrieve_futures_target");
  if (auto type = r.optional<std::string>("type"); type && *type != "sampling_session")
    r.fail("type", "unsupported target type '" + *type + "'");
  return json::detail::read_object<retrieve_futures_target>(jv);
}

/// An absent flag is false (the SDK's default), whatever the default of the requests we build.
inline future_retrieve_request tag_invoke(boost::json::value_to_tag<future_retrieve_request>,
                                          const boost::json::value& jv) {
  json::detail::object_reader r(jv, "future_retrieve_request");
  return future_retrieve_request{r.required<std::string>("request_id"), r.optional_or("allow_metadata_only", false)};
}

/// A failure is a failure whatever its shape: an `error` that is not a string is kept as JSON
/// text, and a category that is not one we know is `unknown`.
inline request_failed_response tag_invoke(boost::json::value_to_tag<request_failed_response>,
                                          const boost::json::value& jv) {
  json::detail::object_reader r(jv, "request_failed_response");
  const auto* err = r.object().if_contains("error");
  if (!err) r.fail("error", "missing required field");
  const auto* cat = r.object().if_contains("category");
  return {err->is_string() ? std::string(err->get_string()) : boost::json::serialize(*err),
          cat && cat->is_string() ? parse_error_category(cat->get_string()) : error_category::unknown};
}

namespace json {

/// A JSON answer to retrieve_future, classified in the SDK's order: try_again,
/// complete_metadata, failure (`error` key), or the result payload itself.
using retrieve_answer =
    std::variant<try_again_response, complete_metadata_response, request_failed_response, boost::json::value>;

inline retrieve_answer classify_retrieve_answer(boost::json::value v) {
  const auto& o = detail::object_reader(v, "retrieve_future answer").object();
  if (const auto* t = o.if_contains("type"); t && t->is_string() && t->get_string() == "try_again")
    return boost::json::value_to<try_again_response>(v);
  if (const auto* s = o.if_contains("status"); s && s->is_string() && s->get_string() == "complete_metadata")
    return boost::json::value_to<complete_metadata_response>(v);
  if (o.contains("error")) return boost::json::value_to<request_failed_response>(v);
  return v;
}

}  // namespace json
}  // namespace tinker
