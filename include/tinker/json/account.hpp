// JSON form of the audit log, billing usage and whoami (protocol.md §11.11-§11.13;
// protocol-delta.md §7).
#pragma once

#include <tinker/json/checkpoint.hpp>  // iso_timestamp
#include <tinker/json/detail/read.hpp>
#include <tinker/json/detail/type_name.hpp>
#include <tinker/json/detail/write.hpp>
#include <tinker/types/account.hpp>

#include <boost/json/value_from.hpp>
#include <boost/json/value_to.hpp>

#include <string>
#include <utility>
#include <variant>

TINKER_JSON_TYPE_NAME(audit_log_entry)
TINKER_JSON_TYPE_NAME(audit_log_response)
TINKER_JSON_TYPE_NAME(billing_usage_event)
TINKER_JSON_TYPE_NAME(billing_session_info)
TINKER_JSON_TYPE_NAME(billing_usage_response)
TINKER_JSON_TYPE_NAME(whoami_response)

namespace tinker {

// --- audit log ----------------------------------------------------------------------------------------

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const audit_log_entry& e) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "timestamp", json::detail::iso_timestamp{e.timestamp});
  json::detail::put(o, "event", e.event);
  json::detail::put(o, "model_id", e.model_id);
  json::detail::put(o, "tinker_path", e.tinker_path);
  json::detail::put(o, "purpose", e.purpose);
  json::detail::put(o, "event_details", e.event_details);
  jv = std::move(o);
}

inline audit_log_entry tag_invoke(boost::json::value_to_tag<audit_log_entry>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "audit_log_entry");
  return audit_log_entry{r.required<json::detail::iso_timestamp>("timestamp").value,
                         r.required<std::string>("event"),
                         r.optional<std::string>("model_id"),
                         r.optional<std::string>("tinker_path"),
                         r.optional<std::string>("purpose"),
                         r.optional<boost::json::object>("event_details")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const audit_log_response& resp) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "entries", resp.entries);
  jv = std::move(o);
}

inline audit_log_response tag_invoke(boost::json::value_to_tag<audit_log_response>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "audit_log_response");
  return audit_log_response{r.required<std::vector<audit_log_entry>>("entries")};
}

// --- billing ------------------------------------------------------------------------------------------

namespace json::detail {

// billing_event_info is a std::variant, for which Boost.JSON has its own (untagged) conversion; the
// wire form is discriminated by "type", so it goes through these named functions instead.
inline boost::json::value billing_event_info_to_json(const billing_event_info& info, boost::json::storage_ptr sp = {}) {
  boost::json::object o(sp);
  struct writer {
    boost::json::object& o;
    void operator()(const billing_training_usage& u) const {
      put(o, "token_count", u.token_count);
      put_type(o, "training");
    }
    void operator()(const billing_sampling_prefill_usage& u) const {
      put(o, "cached", u.cached);
      put(o, "token_count", u.token_count);
      put_type(o, "sampling_prefill");
    }
    void operator()(const billing_sampling_sample_usage& u) const {
      put(o, "token_count", u.token_count);
      put_type(o, "sampling_sample");
    }
    void operator()(const billing_checkpoint_usage& u) const {
      put(o, "count", u.count);
      put_type(o, "checkpoint");
    }
    void operator()(const billing_storage_usage& u) const {
      put(o, "gigabyte_hours", u.gigabyte_hours);
      put_type(o, "storage");
    }
    void operator()(const billing_other_usage& u) const {
      for (const auto& kv : u.fields)
        if (kv.key() != "type") o.insert_or_assign(kv.key(), kv.value());
      put_type(o, u.type);
    }
  };
  std::visit(writer{o}, info);
  return o;
}

/// Known types are checked field by field; any other `type` (or none) becomes billing_other_usage.
inline billing_event_info billing_event_info_from_json(const boost::json::value& jv) {
  object_reader r(jv, "billing_event_info");
  const auto type = r.optional_or<std::string>("type", "");
  if (type == "training") return billing_training_usage{r.required<std::int64_t>("token_count")};
  if (type == "sampling_prefill")
    return billing_sampling_prefill_usage{r.optional_or("cached", false), r.required<std::int64_t>("token_count")};
  if (type == "sampling_sample") return billing_sampling_sample_usage{r.required<std::int64_t>("token_count")};
  if (type == "checkpoint") return billing_checkpoint_usage{r.required<std::int64_t>("count")};
  if (type == "storage") return billing_storage_usage{r.required<double>("gigabyte_hours")};
  billing_other_usage other{type, {}};
  for (const auto& kv : r.object())  // copied in order (boost::json::object::erase reorders)
    if (kv.key() != "type") other.fields.emplace(kv.key(), kv.value());
  return other;
}

}  // namespace json::detail

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const billing_usage_event& e) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "bucket_start", json::detail::iso_timestamp{e.bucket_start});
  json::detail::put(o, "bucket_end", json::detail::iso_timestamp{e.bucket_end});
  json::detail::put(o, "base_model", e.base_model);
  json::detail::put(o, "user_id", e.user_id);
  json::detail::put(o, "user_name", e.user_name);
  json::detail::put(o, "session_id", e.session_id);
  json::detail::put(o, "project_id", e.project_id);
  o.insert_or_assign("event_info", json::detail::billing_event_info_to_json(e.event_info, o.storage()));
  jv = std::move(o);
}

inline billing_usage_event tag_invoke(boost::json::value_to_tag<billing_usage_event>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "billing_usage_event");
  billing_usage_event e;
  e.bucket_start = r.required<json::detail::iso_timestamp>("bucket_start").value;
  e.bucket_end = r.required<json::detail::iso_timestamp>("bucket_end").value;
  e.base_model = r.optional<std::string>("base_model");
  e.user_id = r.optional<std::string>("user_id");
  e.user_name = r.optional<std::string>("user_name");
  e.session_id = r.optional<std::string>("session_id");
  e.project_id = r.optional<std::string>("project_id");
  const auto& info = r.required<boost::json::value>("event_info");
  try {
    e.event_info = json::detail::billing_event_info_from_json(info);
  } catch (const protocol_error& err) {
    throw err.nested_in("billing_usage_event", "event_info");
  }
  return e;
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const billing_session_info& s) {
  boost::json::object o(jv.storage());
  // null, not absent: the server sends the key for every session.
  if (s.user_metadata)
    json::detail::put(o, "user_metadata", *s.user_metadata);
  else
    o.emplace("user_metadata", nullptr);
  jv = std::move(o);
}

inline billing_session_info tag_invoke(boost::json::value_to_tag<billing_session_info>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "billing_session_info");
  return billing_session_info{r.optional<metadata_map>("user_metadata")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const billing_usage_response& resp) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "data", resp.data);
  json::detail::put(o, "sessions", resp.sessions);
  jv = std::move(o);
}

/// `sessions` may be absent (a report with no events names no sessions).
inline billing_usage_response tag_invoke(boost::json::value_to_tag<billing_usage_response>,
                                         const boost::json::value& jv) {
  json::detail::object_reader r(jv, "billing_usage_response");
  return billing_usage_response{r.required<std::vector<billing_usage_event>>("data"),
                                r.optional_or<std::map<std::string, billing_session_info>>("sessions", {})};
}

// --- whoami -------------------------------------------------------------------------------------------

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const whoami_response& w) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "user_urn", w.user_urn);
  json::detail::put(o, "email", w.email);
  jv = std::move(o);
}

/// An empty email reads as absent, as the SDK reads the JWT claim.
inline whoami_response tag_invoke(boost::json::value_to_tag<whoami_response>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "whoami_response");
  auto email = r.optional<std::string>("email");
  if (email && email->empty()) email.reset();
  return whoami_response{r.required<std::string>("user_urn"), std::move(email)};
}

}  // namespace tinker
