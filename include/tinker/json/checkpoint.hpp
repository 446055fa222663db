// JSON form of checkpoints, training runs and their listings.
#pragma once

#include <tinker/json/detail/described.hpp>
#include <tinker/types/checkpoint.hpp>

namespace tinker {

TINKER_JSON_ENUM(checkpoint_type, "checkpoint type", training, sampler, external)
TINKER_JSON_STRUCT(checkpoint,
                   (checkpoint_id, checkpoint_type, time, tinker_path, size_bytes, is_public, expires_at,
                    user_metadata),
                   .defaulted = "is_public")
TINKER_JSON_STRUCT(cursor, (offset, limit, total_count))
TINKER_JSON_STRUCT(checkpoints_list_response, (checkpoints, cursor))
TINKER_JSON_STRUCT(checkpoint_archive_url_response, (url, expires))
TINKER_JSON_STRUCT(training_run,
                   (training_run_id, base_model, model_owner, is_lora, corrupted, lora_rank, last_request_time,
                    last_checkpoint, last_sampler_checkpoint, user_metadata),
                   .defaulted = "corrupted")
TINKER_JSON_STRUCT(training_runs_response, (training_runs, cursor))

/// `{"ttl_seconds": <int>}` or, to remove the expiry, an explicit `{"ttl_seconds": null}`.
TINKER_JSON_STRUCT(set_checkpoint_ttl_request, (ttl_seconds), .nulls = true)

inline set_checkpoint_ttl_request tag_invoke(boost::json::value_to_tag<set_checkpoint_ttl_request>,
                                             const boost::json::value& jv) {
  json::detail::object_reader r(jv, "set_checkpoint_ttl_request");
  if (!r.has("ttl_seconds")) r.fail("ttl_seconds", "missing required field (send null to remove the expiry)");
  return json::detail::read_object<set_checkpoint_ttl_request>(jv);
}

}  // namespace tinker
