// JSON form of the audit log, billing usage and whoami.
#pragma once

#include <tinker/json/detail/described.hpp>
#include <tinker/types/account.hpp>

#include <string>
#include <variant>

namespace tinker {

TINKER_JSON_STRUCT(audit_log_entry, (timestamp, event, model_id, tinker_path, purpose, event_details))
TINKER_JSON_STRUCT(audit_log_response, (entries))
TINKER_JSON_STRUCT(billing_training_usage, (token_count), .tag = "training")
TINKER_JSON_STRUCT(billing_sampling_prefill_usage, (cached, token_count), .tag = "sampling_prefill",
                   .defaulted = "cached")
TINKER_JSON_STRUCT(billing_sampling_sample_usage, (token_count), .tag = "sampling_sample")
TINKER_JSON_STRUCT(billing_checkpoint_usage, (count), .tag = "checkpoint")
TINKER_JSON_STRUCT(billing_storage_usage, (gigabyte_hours), .tag = "storage")
TINKER_JSON_STRUCT(billing_usage_event,
                   (bucket_start, bucket_end, base_model, user_id, user_name, session_id, project_id, event_info))
/// `sessions` may be absent (a report with no events names no sessions).
TINKER_JSON_STRUCT(billing_usage_response, (data, sessions), .defaulted = "sessions")
TINKER_JSON_STRUCT(whoami_response, (user_urn, email))

/// `user_metadata` is null, not absent, when a session has none: the server sends the key for every session.
TINKER_JSON_STRUCT(billing_session_info, (user_metadata), .nulls = true)

/// An event type this library does not know: its fields as they came, and its `type`.
inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const billing_other_usage& u) {
  auto& o = jv.emplace_object();
  for (const auto& kv : u.fields)
    if (kv.key() != "type") o.insert_or_assign(kv.key(), kv.value());
  json::detail::put_type(o, u.type);
}

/// billing_event_info is discriminated by `type`: known types are checked field by field; any
/// other `type` (or none) becomes billing_other_usage.
inline billing_event_info tag_invoke(boost::json::value_to_tag<billing_event_info>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "billing_event_info");
  const auto type = r.optional_or<std::string>("type", "");
  if (type == "training") return json::detail::read_object<billing_training_usage>(jv);
  if (type == "sampling_prefill") return json::detail::read_object<billing_sampling_prefill_usage>(jv);
  if (type == "sampling_sample") return json::detail::read_object<billing_sampling_sample_usage>(jv);
  if (type == "checkpoint") return json::detail::read_object<billing_checkpoint_usage>(jv);
  if (type == "storage") return json::detail::read_object<billing_storage_usage>(jv);
  billing_other_usage other{type, {}};
  for (const auto& kv : r.object())  // copied in order (boost::json::object::erase reorders)
    if (kv.key() != "type") other.fields.emplace(kv.key(), kv.value());
  return other;
}

/// An empty email reads as absent, as the SDK reads the JWT claim.
inline whoami_response tag_invoke(boost::json::value_to_tag<whoami_response>, const boost::json::value& jv) {
  auto w = json::detail::read_object<whoami_response>(jv);
  if (w.email && w.email->empty()) w.email.reset();
  return w;
}

}  // namespace tinker
