// The types fuzz_json decodes, in the order its selector byte picks them (after the retrieve_future
// envelope, selector 0): shared with the seed generator, which prefixes each seed with its index.
#pragma once

#include <tinker/json.hpp>

namespace tinker::fuzz {

template <class... T>
struct type_list {};

/// Every type with a JSON codec (include/tinker/json/*.hpp).
using json_types =
    type_list<adam_params, audit_log_entry, audit_log_response, auth_token_response, billing_checkpoint_usage,
              billing_event_info, billing_sampling_prefill_usage, billing_sampling_sample_usage, billing_session_info,
              billing_storage_usage, billing_training_usage, billing_usage_event, billing_usage_response, checkpoint,
              checkpoint_archive_url_response, checkpoints_list_response, client_config_request, client_config_response,
              complete_metadata_response, create_model_request, create_model_response, create_sampling_session_request,
              create_sampling_session_response, create_session_request, create_session_response, cursor, datum,
              dmel_chunk, dynamic_config_response, encoded_text_chunk, error_response, forward_backward_input,
              forward_backward_output, forward_backward_request, forward_request, future_completion,
              future_retrieve_request, get_info_request, get_info_response, get_sampler_response,
              get_server_capabilities_response, get_session_response, health_response, image_asset_pointer_chunk,
              image_chunk, list_sessions_response, load_weights_request, load_weights_response, lora_config, model_data,
              model_input, model_input_chunk, optim_step_request, optim_step_response, request_failed_response,
              retrieve_futures_request, retrieve_futures_response, retrieve_futures_target, sample_request,
              sample_response, sampled_sequence, sampling_params, save_weights_for_sampler_request,
              save_weights_for_sampler_response, save_weights_request, save_weights_response, session_heartbeat_request,
              session_heartbeat_response, set_checkpoint_ttl_request, set_session_project_request, supported_model,
              telemetry_response, telemetry_send_request, tensor_data, trace_export_response, training_run,
              training_runs_response, try_again_response, unload_model_request, unload_model_response,
              untyped_api_future, weights_info_request, weights_info_response, whoami_response>;

}  // namespace tinker::fuzz
