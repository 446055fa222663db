// JSON form of sessions, models, samplers and weights.
#pragma once

#include <tinker/json/detail/described.hpp>
#include <tinker/types/session.hpp>
#include <tinker/types/weights.hpp>

namespace tinker {

// --- sessions -----------------------------------------------------------------------------------------

TINKER_JSON_STRUCT(create_session_request, (tags, user_metadata, sdk_version, project_id), .tag = "create_session",
                   .defaulted = "*")
TINKER_JSON_STRUCT(create_session_response, (session_id, info_message, warning_message, error_message),
                   .tag = "create_session")
TINKER_JSON_STRUCT(session_heartbeat_request, (session_id), .tag = "session_heartbeat")
TINKER_JSON_STRUCT(session_heartbeat_response, (), .tag = "session_heartbeat")
TINKER_JSON_STRUCT(create_sampling_session_request, (session_id, sampling_session_seq_id, base_model, model_path),
                   .tag = "create_sampling_session")
TINKER_JSON_STRUCT(create_sampling_session_response, (sampling_session_id), .tag = "create_sampling_session")
TINKER_JSON_STRUCT(list_sessions_response, (sessions))
TINKER_JSON_STRUCT(get_session_response, (training_run_ids, sampler_ids))
TINKER_JSON_STRUCT(set_session_project_request, (project_id))
TINKER_JSON_ENUM(trace_export_status, "trace export status", pending, ready, failed, unknown)
TINKER_JSON_STRUCT(trace_export_response, (status, url, error))

// --- models -------------------------------------------------------------------------------------------

TINKER_JSON_STRUCT(lora_config, (rank, seed, train_unembed, train_mlp, train_attn),
                   .defaulted = "train_unembed, train_mlp, train_attn")
TINKER_JSON_STRUCT(create_model_request, (session_id, model_seq_id, base_model, user_metadata, lora_config),
                   .tag = "create_model")
TINKER_JSON_STRUCT(create_model_response, (model_id), .tag = "create_model")
TINKER_JSON_STRUCT(get_info_request, (model_id), .tag = "get_info")
TINKER_JSON_STRUCT(model_data, (arch, model_name, tokenizer_id))
TINKER_JSON_STRUCT(get_info_response, (model_data, model_id, is_lora, lora_rank, model_name), .tag = "get_info")
TINKER_JSON_STRUCT(unload_model_request, (model_id), .tag = "unload_model")
TINKER_JSON_STRUCT(unload_model_response, (model_id), .tag = "unload_model")
TINKER_JSON_STRUCT(get_sampler_response, (sampler_id, base_model, model_path))

// --- weights ------------------------------------------------------------------------------------------

TINKER_JSON_STRUCT(save_weights_request, (model_id, path, seq_id, ttl_seconds, overwrite, user_metadata),
                   .tag = "save_weights", .defaulted = "seq_id, overwrite")
TINKER_JSON_STRUCT(save_weights_response, (path), .tag = "save_weights")
TINKER_JSON_STRUCT(save_weights_for_sampler_request,
                   (model_id, path, seq_id, sampling_session_seq_id, ttl_seconds, user_metadata),
                   .tag = "save_weights_for_sampler", .defaulted = "seq_id")
TINKER_JSON_STRUCT(save_weights_for_sampler_response, (path, sampling_session_id), .tag = "save_weights_for_sampler")
TINKER_JSON_STRUCT(load_weights_request,
                   (model_id, seq_id, path, optimizer, weights_access_token, session_id, model_seq_id, base_model,
                    user_metadata),
                   .tag = "load_weights", .defaulted = "optimizer")
TINKER_JSON_STRUCT(load_weights_response, (path, model_id), .tag = "load_weights")
TINKER_JSON_STRUCT(weights_info_request, (tinker_path))
TINKER_JSON_STRUCT(weights_info_response, (base_model, is_lora, lora_rank, train_unembed, train_mlp, train_attn))

/// Either form of load_weights: model_id, or session_id + model_seq_id (create-via-load).
inline load_weights_request tag_invoke(boost::json::value_to_tag<load_weights_request>, const boost::json::value& jv) {
  auto req = json::detail::read_object<load_weights_request>(jv);
  if (!req.model_id && !req.session_id)
    throw protocol_error("load_weights_request", "model_id", "missing: give model_id (or session_id + model_seq_id)");
  return req;
}

}  // namespace tinker
