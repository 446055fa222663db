// JSON form of the training types.
#pragma once

#include <tinker/json/model_input.hpp>
#include <tinker/types/training.hpp>

namespace tinker {

TINKER_JSON_ENUM(loss_fn_type, "loss function", cross_entropy, importance_sampling, ppo, cispo, dro)
TINKER_JSON_STRUCT(datum, (loss_fn_inputs, model_input))
TINKER_JSON_STRUCT(forward_backward_input, (data, loss_fn, loss_fn_config))
TINKER_JSON_STRUCT(forward_backward_request, (forward_backward_input, model_id, seq_id, forward_only),
                   .defaulted = "seq_id, forward_only")
TINKER_JSON_STRUCT(forward_request, (forward_input, model_id, seq_id), .defaulted = "seq_id")
TINKER_JSON_STRUCT(forward_backward_output, (loss_fn_output_type, loss_fn_outputs, metrics))
TINKER_JSON_STRUCT(adam_params, (learning_rate, beta1, beta2, eps, weight_decay, grad_clip_norm), .defaulted = "*")
TINKER_JSON_STRUCT(optim_step_request, (adam_params, model_id, seq_id), .tag = "optim_step", .defaulted = "seq_id")
TINKER_JSON_STRUCT(optim_step_response, (metrics))

/// The legacy JSON body of POST /api/v1/forward_backward: `forward_only` only when true, which
/// legacy servers never see because legacy clients use /forward for that.
inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const forward_backward_request& req) {
  auto& o = jv.emplace_object();
  json::detail::write_object(o, req);
  if (!req.forward_only) o.erase("forward_only");  // the last key: erasing it reorders nothing
}

/// The SDK sends the Python class path ("module:ClassName"); we keep the class name.
inline forward_backward_output tag_invoke(boost::json::value_to_tag<forward_backward_output>,
                                          const boost::json::value& jv) {
  auto out = json::detail::read_object<forward_backward_output>(jv);
  if (auto colon = out.loss_fn_output_type.rfind(':'); colon != std::string::npos)
    out.loss_fn_output_type.erase(0, colon + 1);
  return out;
}

/// Only Adam is supported: a request for another optimizer is refused rather than read as Adam.
inline optim_step_request tag_invoke(boost::json::value_to_tag<optim_step_request>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "optim_step_request");
  if (!r.has("adam_params") && r.has("optimizer_params"))
    r.fail("optimizer_params", "only Adam is supported: send adam_params");
  return json::detail::read_object<optim_step_request>(jv);
}

}  // namespace tinker
