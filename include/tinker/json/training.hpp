// JSON form of the training types (protocol.md §7.3-§7.6, §8.5, §15.3).
#pragma once

#include <tinker/json/model_input.hpp>
#include <tinker/types/training.hpp>

TINKER_JSON_TYPE_NAME(datum)
TINKER_JSON_TYPE_NAME(forward_backward_input)
TINKER_JSON_TYPE_NAME(forward_backward_request)
TINKER_JSON_TYPE_NAME(forward_request)
TINKER_JSON_TYPE_NAME(forward_backward_output)
TINKER_JSON_TYPE_NAME(adam_params)
TINKER_JSON_TYPE_NAME(optim_step_request)
TINKER_JSON_TYPE_NAME(optim_step_response)

namespace tinker {

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, loss_fn_type l) { jv = to_string(l); }

inline loss_fn_type tag_invoke(boost::json::value_to_tag<loss_fn_type>, const boost::json::value& jv) {
  return json::detail::read_enum<loss_fn_type>(jv, "loss function", parse_loss_fn_type);
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const datum& d) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "loss_fn_inputs", d.loss_fn_inputs);
  json::detail::put(o, "model_input", d.model_input);
  jv = std::move(o);
}

inline datum tag_invoke(boost::json::value_to_tag<datum>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "datum");
  return datum{r.required<model_input>("model_input"),
               r.required<std::map<std::string, tensor_data>>("loss_fn_inputs")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const forward_backward_input& in) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "data", in.data);
  json::detail::put(o, "loss_fn", in.loss_fn);
  json::detail::put(o, "loss_fn_config", in.loss_fn_config);
  jv = std::move(o);
}

inline forward_backward_input tag_invoke(boost::json::value_to_tag<forward_backward_input>,
                                         const boost::json::value& jv) {
  json::detail::object_reader r(jv, "forward_backward_input");
  return forward_backward_input{r.required<std::vector<datum>>("data"), r.required<loss_fn_type>("loss_fn"),
                                r.optional<loss_fn_config>("loss_fn_config")};
}

/// The legacy JSON body of POST /api/v1/forward_backward (no `type`; `forward_only` only when true,
/// which legacy servers never see because legacy clients use /forward for that).
inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const forward_backward_request& req) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "forward_backward_input", req.forward_backward_input);
  json::detail::put(o, "model_id", req.model_id);
  json::detail::put(o, "seq_id", req.seq_id);
  if (req.forward_only) json::detail::put(o, "forward_only", true);
  jv = std::move(o);
}

inline forward_backward_request tag_invoke(boost::json::value_to_tag<forward_backward_request>,
                                           const boost::json::value& jv) {
  json::detail::object_reader r(jv, "forward_backward_request");
  return forward_backward_request{r.required<forward_backward_input>("forward_backward_input"),
                                  r.required<std::string>("model_id"), r.optional_or<std::int64_t>("seq_id", 0),
                                  r.optional_or("forward_only", false)};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const forward_request& req) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "forward_input", req.forward_input);
  json::detail::put(o, "model_id", req.model_id);
  json::detail::put(o, "seq_id", req.seq_id);
  jv = std::move(o);
}

inline forward_request tag_invoke(boost::json::value_to_tag<forward_request>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "forward_request");
  return forward_request{r.required<forward_backward_input>("forward_input"), r.required<std::string>("model_id"),
                         r.optional_or<std::int64_t>("seq_id", 0)};
}

/// JSON ForwardBackwardOutput: all three fields required.
inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const forward_backward_output& out) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "loss_fn_output_type", out.loss_fn_output_type);
  json::detail::put(o, "loss_fn_outputs", out.loss_fn_outputs);
  json::detail::put(o, "metrics", out.metrics);
  jv = std::move(o);
}

inline forward_backward_output tag_invoke(boost::json::value_to_tag<forward_backward_output>,
                                          const boost::json::value& jv) {
  json::detail::object_reader r(jv, "forward_backward_output");
  auto type = r.required<std::string>("loss_fn_output_type");
  if (auto colon = type.rfind(':'); colon != std::string::npos) type.erase(0, colon + 1);
  return forward_backward_output{std::move(type), r.required<std::vector<loss_fn_output>>("loss_fn_outputs"),
                                 r.required<std::map<std::string, double>>("metrics")};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const adam_params& p) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "learning_rate", p.learning_rate);
  json::detail::put(o, "beta1", p.beta1);
  json::detail::put(o, "beta2", p.beta2);
  json::detail::put(o, "eps", p.eps);
  json::detail::put(o, "weight_decay", p.weight_decay);
  json::detail::put(o, "grad_clip_norm", p.grad_clip_norm);
  jv = std::move(o);
}

/// Missing fields take the SDK defaults (older clients send only the first four).
inline adam_params tag_invoke(boost::json::value_to_tag<adam_params>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "adam_params");
  const adam_params d;
  return adam_params{r.optional_or("learning_rate", d.learning_rate),
                     r.optional_or("beta1", d.beta1),
                     r.optional_or("beta2", d.beta2),
                     r.optional_or("eps", d.eps),
                     r.optional_or("weight_decay", d.weight_decay),
                     r.optional_or("grad_clip_norm", d.grad_clip_norm)};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const optim_step_request& req) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "adam_params", req.adam_params);
  json::detail::put(o, "model_id", req.model_id);
  json::detail::put(o, "seq_id", req.seq_id);
  json::detail::put_type(o, "optim_step");
  jv = std::move(o);
}

inline optim_step_request tag_invoke(boost::json::value_to_tag<optim_step_request>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "optim_step_request");
  if (!r.has("adam_params") && r.has("optimizer_params"))
    r.fail("optimizer_params", "only Adam is supported: send adam_params");
  return optim_step_request{r.required<adam_params>("adam_params"), r.required<std::string>("model_id"),
                            r.optional_or<std::int64_t>("seq_id", 0)};
}

inline void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const optim_step_response& resp) {
  boost::json::object o(jv.storage());
  json::detail::put(o, "metrics", resp.metrics);
  jv = std::move(o);
}

inline optim_step_response tag_invoke(boost::json::value_to_tag<optim_step_response>, const boost::json::value& jv) {
  json::detail::object_reader r(jv, "optim_step_response");
  return optim_step_response{r.optional<std::map<std::string, double>>("metrics")};
}

}  // namespace tinker
