// Account-level REST resources: the audit log, billing usage events and whoami
// (docs/protocol.md §11.2).
#pragma once

#include <tinker/types/session.hpp>
#include <tinker/types/timestamp.hpp>

#include <boost/json/object.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace tinker {

// --- audit log: GET /api/v1/audit?event_type=all|checkpoints[&day=YYYY-MM-DD] ------------------------

/// One audit event. Newer servers name events `<resource>_<action>` (`checkpoint_read`) and put the
/// particulars in `event_details`; `model_id`, `tinker_path` and `purpose` are deprecated and set
/// only on checkpoint events.
struct audit_log_entry {
  tinker::timestamp timestamp;
  std::string event;
  std::optional<std::string> model_id;
  std::optional<std::string> tinker_path;
  std::optional<std::string> purpose;
  std::optional<boost::json::object> event_details;  ///< free-form

  friend bool operator==(const audit_log_entry&, const audit_log_entry&) = default;
};

struct audit_log_response {
  std::vector<audit_log_entry> entries;

  friend bool operator==(const audit_log_response&, const audit_log_response&) = default;
};

// --- billing: GET /api/v1/billing/usage/events?starting_on=<RFC3339>&ending_before=<RFC3339> ----------

/// `event_info` of `type: "training"`.
struct billing_training_usage {
  std::int64_t token_count = 0;

  friend bool operator==(const billing_training_usage&, const billing_training_usage&) = default;
};

/// `type: "sampling_prefill"`: prompt tokens, `cached` when billed as prefix-cache hits.
struct billing_sampling_prefill_usage {
  bool cached = false;
  std::int64_t token_count = 0;

  friend bool operator==(const billing_sampling_prefill_usage&, const billing_sampling_prefill_usage&) = default;
};

/// `type: "sampling_sample"`: sampled tokens.
struct billing_sampling_sample_usage {
  std::int64_t token_count = 0;

  friend bool operator==(const billing_sampling_sample_usage&, const billing_sampling_sample_usage&) = default;
};

/// `type: "checkpoint"`.
struct billing_checkpoint_usage {
  std::int64_t count = 0;

  friend bool operator==(const billing_checkpoint_usage&, const billing_checkpoint_usage&) = default;
};

/// `type: "storage"`.
struct billing_storage_usage {
  double gigabyte_hours = 0;

  friend bool operator==(const billing_storage_usage&, const billing_storage_usage&) = default;
};

/// An event type this library does not know (servers add them): its `type` and its other fields,
/// kept as they came so that one new kind of event does not make a whole usage report unreadable.
struct billing_other_usage {
  std::string type;
  boost::json::object fields;  ///< every key of event_info except "type"

  friend bool operator==(const billing_other_usage&, const billing_other_usage&) = default;
};

/// A billing event's `event_info`, discriminated on the wire by its `type` field.
using billing_event_info =
    std::variant<billing_training_usage, billing_sampling_prefill_usage, billing_sampling_sample_usage,
                 billing_checkpoint_usage, billing_storage_usage, billing_other_usage>;

/// Usage in one time bucket. The attribution fields are absent when the server does not know them.
struct billing_usage_event {
  tinker::timestamp bucket_start;
  tinker::timestamp bucket_end;
  std::optional<std::string> base_model;
  std::optional<std::string> user_id;
  std::optional<std::string> user_name;
  std::optional<std::string> session_id;
  std::optional<std::string> project_id;
  billing_event_info event_info;

  friend bool operator==(const billing_usage_event&, const billing_usage_event&) = default;
};

/// What the report says about a session named by its events.
struct billing_session_info {
  std::optional<metadata_map> user_metadata;  ///< null when the session has none

  friend bool operator==(const billing_session_info&, const billing_session_info&) = default;
};

/// `{"data": [event, ...], "sessions": {session_id: {"user_metadata": {...}|null}}}`.
struct billing_usage_response {
  std::vector<billing_usage_event> data;
  std::map<std::string, billing_session_info> sessions;

  friend bool operator==(const billing_usage_response&, const billing_usage_response&) = default;
};

// --- whoami -------------------------------------------------------------------------------------------

/// Who the credential belongs to. The SDK decodes it from the JWT (`sub` -> user_urn, `email`; an
/// empty email reads as absent) rather than calling the server; this is its JSON form.
struct whoami_response {
  std::string user_urn;
  std::optional<std::string> email;

  friend bool operator==(const whoami_response&, const whoami_response&) = default;
};

}  // namespace tinker
