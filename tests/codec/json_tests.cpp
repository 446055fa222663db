// The JSON codec: exact SDK request shapes, round trips of every type, Python-compatible number
// formatting (cross-checked against python3 itself), and clear errors for malformed input.
#include <tinker/json.hpp>

#include <doctest/doctest.h>

#include <unistd.h>  // write, close

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>  // mkstemp
#include <cstring>  // memcpy
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

using namespace tinker;
using tinker::json::from_json;
using tinker::json::to_json;

namespace {

template <class T>
void check_round_trip(const T& value) {
  const auto text = to_json(value);
  CAPTURE(text);
  const auto back = from_json<T>(text);
  CHECK(back == value);
  CHECK(to_json(back) == text);  // and the encoding is stable
}

/// The message of the protocol_error that decoding `text` as T throws.
template <class T>
std::string decode_error(std::string_view text) {
  try {
    (void)from_json<T>(text);
  } catch (const protocol_error& e) {
    return e.what();
  }
  FAIL("decoding did not throw: " << text);
  return {};
}

/// `actual` is the JSON object `expected` spells, in any key order: for bodies whose key order
/// the protocol does not fix (boost::json::object equality ignores order).
void check_same_json(const std::string& actual, std::string_view expected) {
  const std::string expected_text(expected);
  CAPTURE(actual);
  CAPTURE(expected_text);
  CHECK(boost::json::parse(actual) == boost::json::parse(expected));
}

std::string run_command(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE_MESSAGE(p, "cannot run " << cmd);
  char buf[4096];
  while (auto n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int rc = pclose(p);
  REQUIRE_MESSAGE(rc == 0, "command failed (" << rc << "): " << cmd);
  return out;
}

}  // namespace

TEST_SUITE("json") {
  TEST_CASE("requests are byte-for-byte what the SDK sends (docs/protocol.md §2.5 and the request tables)") {
    CHECK(to_json(client_config_request{"0.25.0"}) == R"({"sdk_version":"0.25.0"})");
    CHECK(to_json(create_session_request{{}, {}, "0.25.0", std::nullopt}) ==
          R"({"tags":[],"user_metadata":{},"sdk_version":"0.25.0","type":"create_session"})");
    CHECK(
        to_json(create_model_request{"S", 0, "Qwen/Qwen3-8B", std::nullopt, lora_config{}}) ==
        R"({"session_id":"S","model_seq_id":0,"base_model":"Qwen/Qwen3-8B",)"
        R"("lora_config":{"rank":32,"train_unembed":true,"train_mlp":true,"train_attn":true},"type":"create_model"})");
    CHECK(to_json(future_retrieve_request{"r1", true}) == R"({"request_id":"r1","allow_metadata_only":true})");
    CHECK(to_json(optim_step_request{adam_params{}, "M", 2}) ==
          R"({"adam_params":{"learning_rate":0.0001,"beta1":0.9,"beta2":0.95,"eps":1e-12,)"
          R"("weight_decay":0.0,"grad_clip_norm":0.0},"model_id":"M","seq_id":2,"type":"optim_step"})");
    save_weights_for_sampler_request sfs;
    sfs.model_id = "M";
    sfs.path = "step1";
    sfs.seq_id = 3;
    CHECK(to_json(sfs) == R"({"model_id":"M","path":"step1","seq_id":3,"type":"save_weights_for_sampler"})");
    create_sampling_session_request css{"S", 0, std::nullopt, "tinker://M/sampler_weights/step1"};
    CHECK(to_json(css) == R"({"session_id":"S","sampling_session_seq_id":0,)"
                          R"("model_path":"tinker://M/sampler_weights/step1","type":"create_sampling_session"})");
    sample_request sample;
    sample.num_samples = 2;
    sample.prompt = model_input::from_ints({1, 2, 3});
    sample.sampling_params.max_tokens = 16;
    sample.sampling_params.temperature = 0.7;
    sample.sampling_session_id = "S:sample:0";
    sample.seq_id = 0;
    sample.prompt_logprobs = false;
    CHECK(
        to_json(sample) ==
        R"({"num_samples":2,"prompt":{"chunks":[{"tokens":[1,2,3],"type":"encoded_text"}]},)"
        R"("sampling_params":{"max_tokens":16,"temperature":0.7,"top_k":-1,"top_p":1.0},)"
        R"("sampling_session_id":"S:sample:0","seq_id":0,"prompt_logprobs":false,"topk_prompt_logprobs":0,"type":"sample"})");
    CHECK(to_json(session_heartbeat_request{"S"}) == R"({"session_id":"S","type":"session_heartbeat"})");
    CHECK(to_json(set_checkpoint_ttl_request{}) == R"({"ttl_seconds":null})");  // explicit null removes the TTL
    CHECK(to_json(set_checkpoint_ttl_request{3600}) == R"({"ttl_seconds":3600})");
    CHECK(to_json(weights_info_request{"tinker://M/weights/a"}) == R"({"tinker_path":"tinker://M/weights/a"})");

    // Beyond §2.5: the request tables of docs/protocol.md §4, §7.1, §11.1, §4.4, fields in the
    // tables' (the SDK's declaration) order.
    // save_weights (§7.1): overwrite is always sent, false by default; ttl_seconds only when set.
    CHECK(to_json(save_weights_request{"M", "ckpt", 4, std::nullopt, false, std::nullopt}) ==
          R"({"model_id":"M","path":"ckpt","seq_id":4,"overwrite":false,"type":"save_weights"})");
    CHECK(to_json(save_weights_request{"M", "ckpt", 4, 3600, false, std::nullopt}) ==
          R"({"model_id":"M","path":"ckpt","seq_id":4,"ttl_seconds":3600,"overwrite":false,"type":"save_weights"})");
    CHECK(to_json(save_weights_request{"M", "ckpt", 5, std::nullopt, true, std::nullopt}) ==
          R"({"model_id":"M","path":"ckpt","seq_id":5,"overwrite":true,"type":"save_weights"})");
    save_weights_request defaults;
    defaults.model_id = "M";
    defaults.path = "c";
    CHECK(to_json(defaults).find(R"("overwrite":false)") != std::string::npos);

    // save_weights_for_sampler (§7.1): named with a TTL; unnamed (sampling_session_seq_id, no path).
    CHECK(to_json(save_weights_for_sampler_request{"M", "step1", 3, std::nullopt, 7200, std::nullopt}) ==
          R"({"model_id":"M","path":"step1","seq_id":3,"ttl_seconds":7200,"type":"save_weights_for_sampler"})");
    const save_weights_for_sampler_request unnamed{"M", std::nullopt, 5, 2, std::nullopt, std::nullopt};
    CHECK(to_json(unnamed) ==
          R"({"model_id":"M","seq_id":5,"sampling_session_seq_id":2,"type":"save_weights_for_sampler"})");
    check_round_trip(unnamed);

    // load_weights (§7.5), legacy form: model_id + seq_id, optimizer always sent.
    load_weights_request legacy;
    legacy.model_id = "M";
    legacy.seq_id = 1;
    legacy.path = "tinker://M/weights/ckpt";
    legacy.optimizer = true;
    CHECK(to_json(legacy) ==
          R"({"model_id":"M","seq_id":1,"path":"tinker://M/weights/ckpt","optimizer":true,"type":"load_weights"})");
    legacy.optimizer = false;
    legacy.weights_access_token = "tml-other";
    CHECK(to_json(legacy) == R"({"model_id":"M","seq_id":1,"path":"tinker://M/weights/ckpt","optimizer":false,)"
                             R"("weights_access_token":"tml-other","type":"load_weights"})");
    check_round_trip(legacy);
    // Create-via-load form: session addressing instead of model_id/seq_id (neither key is sent).
    load_weights_request via_load;
    via_load.session_id = "S";
    via_load.model_seq_id = 0;
    via_load.base_model = "Qwen/Qwen3-8B";
    via_load.user_metadata = metadata_map{{"run", "a"}};
    via_load.path = "tinker://O:train:0/weights/ckpt";
    via_load.optimizer = true;
    check_same_json(to_json(via_load), R"({"session_id":"S","model_seq_id":0,"base_model":"Qwen/Qwen3-8B",)"
                                       R"("user_metadata":{"run":"a"},"path":"tinker://O:train:0/weights/ckpt",)"
                                       R"("optimizer":true,"type":"load_weights"})");
    check_round_trip(via_load);
    const auto decoded = from_json<load_weights_request>(
        R"({"session_id":"S","model_seq_id":3,"path":"tinker://O:train:0/weights/c","optimizer":false,"type":"load_weights"})");
    CHECK_FALSE(decoded.model_id);
    CHECK_FALSE(decoded.seq_id);
    CHECK(decoded.session_id == "S");
    CHECK(decoded.model_seq_id == 3);

    // get_info (§7.1), unload_model (§7.1).
    CHECK(to_json(get_info_request{"M"}) == R"({"model_id":"M","type":"get_info"})");
    CHECK(to_json(unload_model_request{"M"}) == R"({"model_id":"M","type":"unload_model"})");

    // create_model (§7.1) with user_metadata and a LoRA seed (seed omitted when random: §2.5).
    CHECK(
        to_json(create_model_request{"S", 1, "Qwen/Qwen3-8B", metadata_map{{"run", "a"}, {"team", "rl"}},
                                     lora_config{16, 7, true, false, true}}) ==
        R"({"session_id":"S","model_seq_id":1,"base_model":"Qwen/Qwen3-8B","user_metadata":{"run":"a","team":"rl"},)"
        R"("lora_config":{"rank":16,"seed":7,"train_unembed":true,"train_mlp":false,"train_attn":true},"type":"create_model"})");

    // create_session with a project (§4.5), heartbeat (§4.2), sampling session of a base model (§4.5).
    CHECK(
        to_json(create_session_request{{"a"}, {{"k", "v"}}, "0.25.0", "proj"}) ==
        R"({"tags":["a"],"user_metadata":{"k":"v"},"sdk_version":"0.25.0","project_id":"proj","type":"create_session"})");
    CHECK(to_json(session_heartbeat_request{"S"}) == R"({"session_id":"S","type":"session_heartbeat"})");
    CHECK(
        to_json(create_sampling_session_request{"S", 1, "Qwen/Qwen3-8B", std::nullopt}) ==
        R"({"session_id":"S","sampling_session_seq_id":1,"base_model":"Qwen/Qwen3-8B","type":"create_sampling_session"})");

    // Telemetry (§4.4): the batch envelope in table order; events are passed through as given.
    boost::json::object event{{"event", "SESSION_START"},
                              {"event_id", "e1"},
                              {"event_session_index", 0},
                              {"severity", "INFO"},
                              {"timestamp", "2026-11-22T10:11:12.345678+00:00"}};
    CHECK(to_json(telemetry_send_request{{event}, "Linux", "0.25.0", "S", "u1"}) ==
          R"({"events":[{"event":"SESSION_START","event_id":"e1","event_session_index":0,"severity":"INFO",)"
          R"("timestamp":"2026-11-22T10:11:12.345678+00:00"}],"platform":"Linux","sdk_version":"0.25.0",)"
          R"("session_id":"S","process_uuid":"u1"})");

    // Session project (§11.1).
    CHECK(to_json(set_session_project_request{"proj"}) == R"({"project_id":"proj"})");
  }

  TEST_CASE("the SDK's answers decode (docs/protocol.md §2.5)") {
    CHECK(from_json<client_config_response>("{}") == client_config_response{});
    CHECK(from_json<dynamic_config_response>(R"({"refresh_interval_sec":300})").refresh_interval_sec == 300);
    CHECK(from_json<create_session_response>(R"({"session_id":"S","type":"create_session"})").session_id == "S");
    const auto fut = from_json<untyped_api_future>(R"({"request_id":"r1","model_id":"M"})");
    CHECK(fut.request_id == "r1");
    CHECK(fut.model_id == "M");
    CHECK(from_json<create_model_response>(R"({"model_id":"M","type":"create_model"})").model_id == "M");
    CHECK(from_json<optim_step_response>(R"({"metrics":{}})").metrics == std::map<std::string, double>{});
    CHECK(from_json<save_weights_for_sampler_response>(
              R"({"path":"tinker://M/sampler_weights/step1","type":"save_weights_for_sampler"})")
              .path == "tinker://M/sampler_weights/step1");
    CHECK(from_json<create_sampling_session_response>(
              R"({"sampling_session_id":"S:sample:0","type":"create_sampling_session"})")
              .sampling_session_id == "S:sample:0");
  }

  TEST_CASE("retrieve_future answers are classified in the SDK's order") {
    using tinker::json::classify_retrieve_answer;
    auto a = classify_retrieve_answer(boost::json::parse(
        R"({"type":"try_again","request_id":"r1","queue_state":"paused_capacity","queue_state_reason":"busy"})"));
    REQUIRE(std::holds_alternative<try_again_response>(a));
    CHECK(std::get<try_again_response>(a).queue_state == queue_state::paused_capacity);
    CHECK(std::get<try_again_response>(a).queue_state_reason == "busy");
    a = classify_retrieve_answer(boost::json::parse(R"({"type":"try_again","request_id":"r1","queue_state":"weird"})"));
    CHECK(std::get<try_again_response>(a).queue_state == queue_state::unknown);
    a = classify_retrieve_answer(boost::json::parse(R"({"status":"complete_metadata","response_payload_size":1234})"));
    CHECK(std::get<complete_metadata_response>(a).response_payload_size == 1234);
    a = classify_retrieve_answer(
        boost::json::parse(R"({"error":"target_tokens length does not match model_input","category":"user"})"));
    REQUIRE(std::holds_alternative<request_failed_response>(a));
    CHECK(std::get<request_failed_response>(a).category == error_category::user);
    a = classify_retrieve_answer(boost::json::parse(R"({"error":{"code":3},"category":"nonsense"})"));
    CHECK(std::get<request_failed_response>(a).error == R"({"code":3})");
    CHECK(std::get<request_failed_response>(a).category == error_category::unknown);
    a = classify_retrieve_answer(boost::json::parse(R"({"model_id":"M","type":"create_model"})"));
    CHECK(std::holds_alternative<boost::json::value>(a));
    CHECK_THROWS_AS(classify_retrieve_answer(boost::json::parse("[1]")), protocol_error);
    CHECK(to_json(try_again_response{"r1", queue_state::active, std::nullopt}) ==
          R"({"type":"try_again","request_id":"r1","queue_state":"active"})");
    CHECK(to_json(request_failed_response{"bad", error_category::user}) == R"({"error":"bad","category":"user"})");
  }

  TEST_CASE("every type round-trips") {
    tensor_data sparse = tensor_data::sparse_csr(std::vector<float>{1.5f, -2.0f}, 2, 3, {0, 1, 2}, {2, 0});
    datum d{model_input::from_ints({1, 2, 3}),
            {{"target_tokens", tensor_data(std::vector<std::int64_t>{2, 3, 4})},
             {"weights", tensor_data(std::vector<float>{0.0f, 1.0f, 0.25f}, {3})},
             {"mask", sparse}}};
    d.model_input.append(image_chunk{std::string("\x89PNG\0\1\2", 7), image_format::png, 4});
    d.model_input.append(image_asset_pointer_chunk{image_format::jpeg, "s3://bucket/x.jpg", std::nullopt});
    d.model_input.append(dmel_chunk{std::string("\xfe\x01\x02\x05\x03", 5)});
    check_round_trip(d);
    forward_backward_input in{{d, d}, loss_fn_type::ppo, loss_fn_config{{"clip_low_threshold", 0.7}}};
    check_round_trip(forward_backward_request{in, "M", 7, false});
    check_round_trip(forward_backward_request{in, "M", 7, true});
    check_round_trip(forward_request{in, "M", 8});
    check_round_trip(
        forward_backward_output{"ArrayRecord", {{{"logprobs", tensor_data{-0.5f, -1.25f}}}}, {{"loss:sum", 3.5}}});
    check_round_trip(adam_params{1e-3, 0.8, 0.99, 1e-8, 0.01, 1.0});
    check_round_trip(optim_step_request{adam_params{}, "M", 3});
    check_round_trip(optim_step_response{{{{"grad_norm:mean", 0.5}}}});
    check_round_trip(optim_step_response{});

    sampling_params sp;
    sp.max_tokens = 5;
    sp.seed = std::numeric_limits<std::uint64_t>::max();
    sp.stop = std::vector<std::string>{"\n", "END"};
    sp.top_k = 40;
    sp.top_p = 0.9;
    sp.temperature = 0.0;
    sample_request sr{3, model_input::from_ints({9}), sp, "base", std::nullopt, "S:sample:1", 4, true, 5};
    check_round_trip(sr);
    sr.sampling_params.stop = std::string("\n\n");
    check_round_trip(sr);
    sr.sampling_params.stop = std::vector<token_id>{257, 10};
    check_round_trip(sr);
    sample_response resp;
    resp.sequences = {{stop_reason::stop, {1, 2}, std::vector<float>{-0.1f, -0.2f}, "seq-1"},
                      {stop_reason::length, {3}, std::nullopt, std::nullopt}};
    resp.prompt_logprobs = std::vector<float>{std::numeric_limits<float>::quiet_NaN(), -1.5f};
    resp.topk_prompt_logprobs = topk_logprobs{
        2, 2, {0, 0, 7, 8}, {topk_logprobs::sentinel_logprob, topk_logprobs::sentinel_logprob, -0.5f, -1.5f}};
    resp.prompt_cache_hit_tokens = 1;
    check_round_trip(resp);

    check_round_trip(create_session_request{{"a", "b"}, {{"k", "v"}}, "0.25.0", "proj"});
    check_round_trip(create_session_response{"S", "info", "warn", "err"});
    check_round_trip(session_heartbeat_request{"S"});
    check_round_trip(session_heartbeat_response{});
    check_round_trip(create_sampling_session_request{"S", 2, "base", std::nullopt});
    check_round_trip(create_sampling_session_response{"S:sample:2"});
    check_round_trip(
        create_model_request{"S", 1, "base", metadata_map{{"x", "y"}}, lora_config{8, 42, false, true, true}});
    check_round_trip(create_model_response{"S:train:1"});
    check_round_trip(get_info_request{"M"});
    check_round_trip(get_info_response{model_data{"tiny", "base", "tok"}, "M", true, 8, "base"});
    check_round_trip(unload_model_request{"M"});
    check_round_trip(unload_model_response{"M"});
    check_round_trip(get_sampler_response{"S:sample:0", "base", "tinker://M/sampler_weights/x"});
    check_round_trip(list_sessions_response{{"S1", "S2"}});
    check_round_trip(get_session_response{{"S:train:0"}, {"S:sample:0"}});
    check_round_trip(save_weights_request{"M", "ckpt", 4, 3600, true, metadata_map{{"a", "b"}}});
    check_round_trip(save_weights_response{"tinker://M/weights/ckpt"});
    check_round_trip(save_weights_for_sampler_request{"M", std::nullopt, 5, 3, std::nullopt, std::nullopt});
    check_round_trip(save_weights_for_sampler_response{std::nullopt, "S:sample:3"});
    check_round_trip(load_weights_request{"M", 2, "tinker://M/weights/ckpt", true, "tok", std::nullopt, std::nullopt,
                                          std::nullopt, std::nullopt});
    check_round_trip(load_weights_response{"tinker://M/weights/ckpt", "M"});
    check_round_trip(weights_info_request{"tinker://M/weights/ckpt"});
    check_round_trip(weights_info_response{"base", true, 8, false, std::nullopt, true});

    check_round_trip(untyped_api_future{"r1", "M", std::vector<std::string>{"s0", "s1"}});
    check_round_trip(future_retrieve_request{"r1", false});
    check_round_trip(try_again_response{"r1", queue_state::paused_rate_limit, "slow down"});
    check_round_trip(complete_metadata_response{99});
    check_round_trip(request_failed_response{"boom", error_category::server});
    check_round_trip(retrieve_futures_request{{"S:sample:0", 2}, 17, 30.0});
    check_round_trip(retrieve_futures_response{
        {{completion_state::finished, "r1", 10}, {completion_state::failed, "r2", std::nullopt}}, 18});

    const auto t = *parse_timestamp("2026-11-22T10:11:12.345678Z");
    checkpoint c{"weights/ckpt",
                 checkpoint_type::training,
                 t,
                 "tinker://M/weights/ckpt",
                 1234,
                 true,
                 t + std::chrono::hours(1),
                 metadata_map{{"k", "v"}}};
    check_round_trip(c);
    check_round_trip(checkpoints_list_response{{c, c}, cursor{0, 100, 2}});
    check_round_trip(checkpoints_list_response{{}, std::nullopt});
    check_round_trip(checkpoint_archive_url_response{"http://x/y", t});
    check_round_trip(set_checkpoint_ttl_request{60});
    check_round_trip(set_checkpoint_ttl_request{});
    training_run run{"M", "base", "tml-owner", true, false, 8, t, c, std::nullopt, metadata_map{}};
    check_round_trip(run);
    check_round_trip(training_runs_response{{run}, cursor{20, 20, 41}});

    check_round_trip(get_server_capabilities_response{
        {{"m", 4096, true, true}, {std::nullopt, std::nullopt, std::nullopt, std::nullopt}}});
    check_round_trip(health_response{});
    check_round_trip(client_config_request{"0.25.0"});
    client_config_response cc;
    cc.sample_use_retrieve_futures = true;
    cc.fwdbwd_max_chunk_len = 7;
    check_round_trip(cc);
    check_round_trip(dynamic_config_response{10, true, 8});
    check_round_trip(
        telemetry_send_request{{boost::json::object{{"event", "SESSION_START"}}}, "Linux", "0.25.0", "S", "p"});
    check_round_trip(telemetry_response{});
    check_round_trip(auth_token_response{"eyJ..."});
    check_round_trip(error_response{"nope"});

    // Sessions, audit log, billing, whoami (§11.1-§11.2).
    check_round_trip(set_session_project_request{"proj"});
    check_round_trip(trace_export_response{trace_export_status::pending, std::nullopt, std::nullopt});
    check_round_trip(
        trace_export_response{trace_export_status::ready, "https://bucket/trace.json?sig=x", std::nullopt});
    check_round_trip(trace_export_response{trace_export_status::failed, std::nullopt, "export crashed"});
    check_round_trip(trace_export_response{trace_export_status::unknown, std::nullopt, std::nullopt});
    check_round_trip(audit_log_response{
        {audit_log_entry{t, "checkpoint_read", "M", "tinker://M/weights/ckpt", "download",
                         boost::json::object{{"ip", "10.0.0.1"}, {"bytes", 1234}}},
         audit_log_entry{t, "session_create", std::nullopt, std::nullopt, std::nullopt, std::nullopt}}});
    check_round_trip(audit_log_response{});
    billing_usage_response usage;
    auto event = [&](billing_event_info info) {
      return billing_usage_event{
          t, t + std::chrono::hours(1), "Qwen/Qwen3-8B", "u1", "Ada", "S", "proj", std::move(info)};
    };
    usage.data = {event(billing_training_usage{1000}),
                  event(billing_sampling_prefill_usage{true, 300}),
                  event(billing_sampling_prefill_usage{false, 20}),
                  event(billing_sampling_sample_usage{64}),
                  event(billing_checkpoint_usage{2}),
                  event(billing_storage_usage{0.25}),
                  event(billing_other_usage{"gpu_time", boost::json::object{{"seconds", 3.5}}}),
                  billing_usage_event{t, t, std::nullopt, std::nullopt, std::nullopt, std::nullopt, std::nullopt,
                                      billing_training_usage{1}}};
    usage.sessions = {{"S", billing_session_info{metadata_map{{"k", "v"}}}}, {"T", billing_session_info{}}};
    check_round_trip(usage);
    check_round_trip(billing_usage_response{});
    check_round_trip(whoami_response{"urn:tml:user:1", "ada@example.com"});
    check_round_trip(whoami_response{"urn:tml:user:1", std::nullopt});
  }

  TEST_CASE("numbers are read leniently and written as the SDK writes them") {
    // 1 where a float is expected, 1.0 where an integer is expected.
    const auto p = from_json<adam_params>(
        R"({"learning_rate":1,"beta1":0,"beta2":1,"eps":1,"weight_decay":0,"grad_clip_norm":2})");
    CHECK(p.learning_rate == 1.0);
    CHECK(p.grad_clip_norm == 2.0);
    const auto m = from_json<create_model_request>(
        R"({"session_id":"S","model_seq_id":3.0,"base_model":"b","lora_config":{"rank":8.0}})");
    CHECK(m.model_seq_id == 3);
    CHECK(m.lora_config->rank == 8);
    CHECK(m.lora_config->train_mlp);  // defaults when absent
    // Older clients send only four Adam fields.
    CHECK(from_json<adam_params>(R"({"learning_rate":0.5,"beta1":0.9,"beta2":0.95,"eps":1e-12})").grad_clip_norm ==
          0.0);
    // Float fields the user set to integers still go out as floats.
    sampling_params sp;
    sp.temperature = 1;
    CHECK(to_json(sp) == R"({"temperature":1.0,"top_k":-1,"top_p":1.0})");
    // Seeds above 2^63 survive.
    sp.seed = 18446744073709551615ull;
    CHECK(from_json<sampling_params>(to_json(sp)).seed == 18446744073709551615ull);
    // Optional fields are omitted, never null.
    CHECK(to_json(sample_request{}).find("null") == std::string::npos);
    // Unknown fields in answers are ignored.
    CHECK(from_json<create_model_response>(R"({"model_id":"M","type":"create_model","new_field":[1,2]})").model_id ==
          "M");
  }

  TEST_CASE("floats are formatted exactly like Python's repr (checked against python3)") {
    const std::vector<std::pair<double, std::string>> fixed = {{1.0, "1.0"},
                                                               {0.0001, "0.0001"},
                                                               {1e-05, "1e-05"},
                                                               {1e-12, "1e-12"},
                                                               {0.9, "0.9"},
                                                               {0.95, "0.95"},
                                                               {100.0, "100.0"},
                                                               {-2.5, "-2.5"},
                                                               {1e16, "1e+16"},
                                                               {1e15, "1000000000000000.0"},
                                                               {0.1 + 0.2, "0.30000000000000004"},
                                                               {5e-324, "5e-324"},
                                                               {1.7976931348623157e308, "1.7976931348623157e+308"},
                                                               {12345678.9, "12345678.9"},
                                                               {0.0, "0.0"},
                                                               {-0.0, "-0.0"},
                                                               {123456789012345678.0, "1.2345678901234568e+17"}};
    for (const auto& [d, text] : fixed) CHECK(tinker::json::dump(boost::json::value(d)) == text);
    CHECK_THROWS_AS(tinker::json::dump(boost::json::value(std::nan(""))), tinker::invalid_argument);
    CHECK_THROWS_AS(tinker::json::dump(boost::json::value(INFINITY)), tinker::invalid_argument);

    // Many random doubles of all magnitudes, compared with python3's own json.dumps.
    std::mt19937_64 rng(12345);
    boost::json::array values;
    for (int i = 0; i < 2000; ++i) {
      std::uint64_t bits = rng();
      double d;
      std::memcpy(&d, &bits, sizeof d);
      if (!std::isfinite(d)) continue;
      values.push_back(i % 3 == 0 ? d
                                  : std::ldexp(static_cast<double>(rng() % 1000000) / 1000.0, int(rng() % 80) - 40));
    }
    values.push_back("caf\xc3\xa9 \"quoted\" \\ \n\t\x01");
    const auto ours = tinker::json::dump(values);
    char path[] = "/tmp/tinker_json_XXXXXX";
    const int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, ours.data(), ours.size()) == static_cast<ssize_t>(ours.size()));
    close(fd);
    const auto python = run_command(
        std::string("/usr/bin/python3 -c \"import json,sys; v=json.load(open(sys.argv[1], encoding='utf-8')); "
                    "sys.stdout.write(json.dumps(v, separators=(',',':'), ensure_ascii=False))\" ") +
        path);
    std::remove(path);
    CHECK(python == ours);
  }

  TEST_CASE("malformed input is rejected with the type and field named") {
    CHECK(decode_error<create_model_response>("{}") ==
          "cannot decode create_model_response: field 'model_id': missing required field");
    CHECK(decode_error<create_model_response>(R"({"model_id":3})") ==
          "cannot decode create_model_response: field 'model_id': expected a string, got integer");
    CHECK(decode_error<create_model_response>("[]") ==
          "cannot decode create_model_response: expected a JSON object, got array");
    CHECK(decode_error<create_model_response>("{\"model_id\":")
              .find("cannot decode create_model_response: invalid JSON") == 0);
    CHECK(decode_error<sample_response>(
              R"({"sequences":[{"stop_reason":"stop","tokens":[1]},{"stop_reason":"length","tokens":[1,"x"]}]})") ==
          "cannot decode sample_response: field 'sequences[1].tokens[1]': expected an integer, got string");
    CHECK(decode_error<sample_response>(R"({"sequences":[{"stop_reason":"maybe","tokens":[]}]})") ==
          "cannot decode sample_response: field 'sequences[0].stop_reason': unknown stop reason 'maybe'");
    CHECK(decode_error<forward_backward_request>(
              R"({"model_id":"M","forward_backward_input":{"loss_fn":"magic","data":[]}})") ==
          "cannot decode forward_backward_request: field 'forward_backward_input.loss_fn': unknown loss function "
          "'magic'");
    CHECK(decode_error<datum>(
              R"({"model_input":{"chunks":[{"type":"encoded_text","tokens":[1.5]}]},"loss_fn_inputs":{}})") ==
          "cannot decode datum: field 'model_input.chunks[0].tokens[0]': expected an integer, got 1.5");
    CHECK(decode_error<datum>(R"({"model_input":{"chunks":[{"type":"video"}]},"loss_fn_inputs":{}})") ==
          "cannot decode datum: field 'model_input.chunks[0].type': unknown chunk type 'video'");
    CHECK(decode_error<datum>(
              R"({"model_input":{"chunks":[{"type":"image","data":"!!!","format":"png"}]},"loss_fn_inputs":{}})") ==
          "cannot decode datum: field 'model_input.chunks[0].data': invalid base64");
    CHECK(decode_error<datum>(
              R"({"model_input":{"chunks":[]},"loss_fn_inputs":{"w":{"data":[1,2],"dtype":"float32","shape":[3]}}})") ==
          "cannot decode datum: field 'loss_fn_inputs[w]': tensor: shape holds 3 elements but 2 values were given");
    CHECK(decode_error<datum>(
              R"({"model_input":{"chunks":[]},"loss_fn_inputs":{"w":{"data":[1],"dtype":"bfloat16"}}})") ==
          "cannot decode datum: field 'loss_fn_inputs[w].dtype': unknown dtype 'bfloat16'");
    CHECK(decode_error<create_model_request>(
              R"({"session_id":"S","model_seq_id":1,"base_model":"b","lora_config":{"rank":3000000000}})") ==
          "cannot decode create_model_request: field 'lora_config.rank': integer 3000000000 out of range");
    CHECK(decode_error<create_model_request>(R"({"session_id":"S","model_seq_id":1e30,"base_model":"b"})")
              .find("out of range") != std::string::npos);
    CHECK(decode_error<checkpoint>(
              R"({"checkpoint_id":"weights/a","checkpoint_type":"training","time":"yesterday","tinker_path":"t"})") ==
          "cannot decode checkpoint: field 'time': invalid ISO-8601 datetime 'yesterday'");
    CHECK(decode_error<health_response>(R"({"status":"sad"})") ==
          "cannot decode health_response: field 'status': expected \"ok\", got \"sad\"");
    CHECK(decode_error<telemetry_response>(R"({"status":"ok"})").find("expected \"accepted\"") != std::string::npos);
    CHECK(decode_error<sample_request>(R"({"prompt":{"chunks":[]},"sampling_params":{},"prompt_alt_tokens_k":2})") ==
          "cannot decode sample_request: field 'prompt_alt_tokens_k': this server does not support it");
    CHECK(decode_error<optim_step_request>(R"({"model_id":"M","seq_id":1,"optimizer_params":{"type":"dimuon"}})") ==
          "cannot decode optim_step_request: field 'optimizer_params': only Adam is supported: send adam_params");
    CHECK(decode_error<set_checkpoint_ttl_request>("{}").find("send null to remove") != std::string::npos);
    // Newer SDKs' default-valued extra keys are accepted.
    CHECK_NOTHROW(from_json<sample_request>(R"({"prompt":{"chunks":[]},"sampling_params":{},"topk_sample_logprobs":0,)"
                                            R"("prompt_alt_tokens_k":0,"record_stability_info":false})"));

    // A failure answer without "error" (classify_retrieve_answer only routes ones with it here, but
    // the decoder is public): a protocol_error, not std::out_of_range.
    CHECK(decode_error<request_failed_response>(R"({"category":"user"})") ==
          "cannot decode request_failed_response: field 'error': missing required field");
    CHECK(decode_error<request_failed_response>("[]") ==
          "cannot decode request_failed_response: expected a JSON object, got array");

    // The REST types of §11.1-§11.2.
    CHECK(decode_error<set_session_project_request>("{}") ==
          "cannot decode set_session_project_request: field 'project_id': missing required field");
    CHECK(decode_error<trace_export_response>("{}") ==
          "cannot decode trace_export_response: field 'status': missing required field");
    CHECK(decode_error<trace_export_response>(R"({"status":3})") ==
          "cannot decode trace_export_response: field 'status': expected a string, got integer");
    CHECK(decode_error<trace_export_response>(R"({"status":"ready","url":7})") ==
          "cannot decode trace_export_response: field 'url': expected a string, got integer");
    CHECK(decode_error<audit_log_response>("{}") ==
          "cannot decode audit_log_response: field 'entries': missing required field");
    CHECK(decode_error<audit_log_response>(
              R"({"entries":[{"timestamp":"2026-01-01T00:00:00Z","event":"e"},{"timestamp":"x","event":"e"}]})") ==
          "cannot decode audit_log_response: field 'entries[1].timestamp': invalid ISO-8601 datetime 'x'");
    CHECK(decode_error<audit_log_response>(R"({"entries":[{"timestamp":"2026-01-01T00:00:00Z"}]})") ==
          "cannot decode audit_log_response: field 'entries[0].event': missing required field");
    CHECK(decode_error<audit_log_response>(
              R"({"entries":[{"timestamp":"2026-01-01T00:00:00Z","event":"e","event_details":"x"}]})") ==
          "cannot decode audit_log_response: field 'entries[0].event_details': expected an object, got string");
    const std::string bucket = R"("bucket_start":"2026-01-01T00:00:00Z","bucket_end":"2026-01-01T01:00:00Z")";
    CHECK(decode_error<billing_usage_response>(R"({"data":[{)" + bucket +
                                               R"(,"event_info":{"type":"training","token_count":"x"}}]})") ==
          "cannot decode billing_usage_response: field 'data[0].event_info.token_count': expected an integer, got "
          "string");
    CHECK(decode_error<billing_usage_response>(R"({"data":[{)" + bucket +
                                               R"(,"event_info":{"type":"sampling_prefill","cached":true}}]})") ==
          "cannot decode billing_usage_response: field 'data[0].event_info.token_count': missing required field");
    CHECK(decode_error<billing_usage_response>(R"({"data":[{)" + bucket +
                                               R"(,"event_info":{"type":"storage","gigabyte_hours":"1"}}]})") ==
          "cannot decode billing_usage_response: field 'data[0].event_info.gigabyte_hours': expected a number, got "
          "string");
    CHECK(decode_error<billing_usage_response>(R"({"data":[{)" + bucket + R"(,"event_info":3}]})") ==
          "cannot decode billing_usage_response: field 'data[0].event_info': expected a JSON object, got integer");
    CHECK(decode_error<billing_usage_response>(R"({"data":[{)" + bucket + R"(,"event_info":{"type":7}}]})") ==
          "cannot decode billing_usage_response: field 'data[0].event_info.type': expected a string, got integer");
    CHECK(decode_error<billing_usage_response>(R"({"data":[{)" + bucket + R"(}]})") ==
          "cannot decode billing_usage_response: field 'data[0].event_info': missing required field");
    CHECK(
        decode_error<billing_usage_response>(R"({"data":[{"bucket_start":"2026-01-01T00:00:00Z","event_info":{}}]})") ==
        "cannot decode billing_usage_response: field 'data[0].bucket_end': missing required field");
    CHECK(decode_error<billing_usage_response>(R"({"data":[],"sessions":{"S":{"user_metadata":[1]}}})") ==
          "cannot decode billing_usage_response: field 'sessions[S].user_metadata': expected an object, got array");
    CHECK(decode_error<whoami_response>(R"({"email":"a@b"})") ==
          "cannot decode whoami_response: field 'user_urn': missing required field");

    // Sparse top-k padding: a few kilobytes of null rows plus one long row must not claim gigabytes.
    std::string bomb = R"({"sequences":[],"topk_prompt_logprobs":[)";
    for (int i = 0; i < 3000; ++i) bomb += "null,";
    bomb += "[";
    for (int i = 0; i < 3000; ++i) bomb += std::string(i ? "," : "") + "[1,-0.5]";
    bomb += "]]}";
    CHECK(
        decode_error<sample_response>(bomb) ==
        "cannot decode sample_response: field 'topk_prompt_logprobs': 3001 rows of up to 3000 pairs make 9003000 cells "
        "for 3000 pairs given: too many null or short rows (at most 1072580 cells)");
  }

  TEST_CASE("new REST answers: unknown trace export states and billing event types decode") {
    CHECK(from_json<trace_export_response>(R"({"status":"pending"})").status == trace_export_status::pending);
    const auto ready = from_json<trace_export_response>(R"({"status":"ready","url":"https://x/t.json"})");
    CHECK(ready.status == trace_export_status::ready);
    CHECK(ready.url == "https://x/t.json");
    const auto failed = from_json<trace_export_response>(R"({"status":"failed","error":"boom"})");
    CHECK(failed.status == trace_export_status::failed);
    CHECK(failed.error == "boom");
    // Servers add states: an unknown one is not an error.
    CHECK(from_json<trace_export_response>(R"({"status":"archived","extra":1})").status ==
          trace_export_status::unknown);
    CHECK(parse_trace_export_status("READY") == trace_export_status::unknown);

    // Audit entries of newer servers: event_details only, deprecated fields absent.
    const auto audit = from_json<audit_log_response>(
        R"({"entries":[{"timestamp":"2026-11-22T10:11:12Z","event":"checkpoint_read",)"
        R"("event_details":{"tinker_path":"tinker://M/weights/a","n":[1,2]}},)"
        R"({"timestamp":"2026-11-22T10:11:13Z","event":"checkpoint_delete","model_id":"M","tinker_path":"tinker://M/weights/a","purpose":null}]})");
    REQUIRE(audit.entries.size() == 2);
    CHECK(format_timestamp(audit.entries[0].timestamp) == "2026-11-22T10:11:12.000000Z");
    CHECK(audit.entries[0].event == "checkpoint_read");
    REQUIRE(audit.entries[0].event_details);
    CHECK(audit.entries[0].event_details->at("tinker_path").as_string() == "tinker://M/weights/a");
    CHECK_FALSE(audit.entries[0].model_id);
    CHECK(audit.entries[1].model_id == "M");
    CHECK_FALSE(audit.entries[1].purpose);

    // Billing: one unknown event type among known ones does not fail the report; it keeps its name
    // and fields.
    const auto usage = from_json<billing_usage_response>(
        R"({"data":[)"
        R"({"bucket_start":"2026-01-01T00:00:00Z","bucket_end":"2026-01-01T01:00:00Z","base_model":"b","session_id":"S",)"
        R"("event_info":{"type":"training","token_count":1000}},)"
        R"({"bucket_start":"2026-01-01T00:00:00Z","bucket_end":"2026-01-01T01:00:00Z",)"
        R"("event_info":{"gpu_seconds":12.5,"type":"gpu_time","tier":"a100"}},)"
        R"({"bucket_start":"2026-01-01T00:00:00Z","bucket_end":"2026-01-01T01:00:00Z",)"
        R"("event_info":{"type":"sampling_prefill","cached":true,"token_count":7}},)"
        R"({"bucket_start":"2026-01-01T00:00:00Z","bucket_end":"2026-01-01T01:00:00Z",)"
        R"("event_info":{"type":"storage","gigabyte_hours":3}},)"
        R"({"bucket_start":"2026-01-01T00:00:00Z","bucket_end":"2026-01-01T01:00:00Z","event_info":{"count":1}}],)"
        R"("sessions":{"S":{"user_metadata":{"k":"v"}},"T":{"user_metadata":null}}})");
    REQUIRE(usage.data.size() == 5);
    CHECK(std::get<billing_training_usage>(usage.data[0].event_info).token_count == 1000);
    CHECK(usage.data[0].base_model == "b");
    CHECK(usage.data[0].session_id == "S");
    CHECK_FALSE(usage.data[0].user_id);
    const auto& other = std::get<billing_other_usage>(usage.data[1].event_info);
    CHECK(other.type == "gpu_time");
    CHECK(other.fields == boost::json::object{{"gpu_seconds", 12.5}, {"tier", "a100"}});
    CHECK(to_json(usage.data[1]).find(R"("event_info":{"gpu_seconds":12.5,"tier":"a100","type":"gpu_time"})") !=
          std::string::npos);
    CHECK(std::get<billing_sampling_prefill_usage>(usage.data[2].event_info) ==
          billing_sampling_prefill_usage{true, 7});
    CHECK(std::get<billing_storage_usage>(usage.data[3].event_info).gigabyte_hours == 3.0);
    CHECK(std::get<billing_other_usage>(usage.data[4].event_info).type.empty());  // no type at all
    CHECK(usage.sessions.at("S").user_metadata == metadata_map{{"k", "v"}});
    CHECK_FALSE(usage.sessions.at("T").user_metadata);
    CHECK(from_json<billing_usage_response>(R"({"data":[]})").sessions.empty());  // sessions may be absent
    CHECK(to_json(billing_session_info{}) == R"({"user_metadata":null})");

    // whoami: an empty email reads as absent, as the SDK reads the JWT claim.
    CHECK_FALSE(from_json<whoami_response>(R"({"user_urn":"urn:u","email":""})").email);
    CHECK(from_json<whoami_response>(R"({"user_urn":"urn:u","email":"a@b"})").email == "a@b");
  }

  TEST_CASE("ForwardBackwardOutput keeps the class name after the last ':' of loss_fn_output_type") {
    auto type_of = [](const std::string& type) {
      return from_json<forward_backward_output>(R"({"loss_fn_output_type":")" + type +
                                                R"(","loss_fn_outputs":[],"metrics":{}})")
          .loss_fn_output_type;
    };
    CHECK(type_of("tinker.types.torch_loss_return:TorchLossReturn") == "TorchLossReturn");
    CHECK(type_of("a:b:ArrayRecord") == "ArrayRecord");
    CHECK(type_of("ArrayRecord") == "ArrayRecord");
    CHECK(type_of("module:") == "");
    CHECK(type_of(":X") == "X");
  }

  TEST_CASE("integers: the edges of int64, uint64 and int32 given as doubles") {
    auto seq_id_of = [](const std::string& number) {
      return from_json<create_model_request>(R"({"session_id":"S","model_seq_id":)" + number + R"(,"base_model":"b"})")
          .model_seq_id;
    };
    auto seq_id_error = [](const std::string& number) {
      return decode_error<create_model_request>(R"({"session_id":"S","model_seq_id":)" + number +
                                                R"(,"base_model":"b"})");
    };
    // 2^63 as a double: (double)INT64_MAX rounds up to it, so a '>' check would let it through into
    // an undefined cast.
    CHECK(seq_id_error("9223372036854775808.0") ==
          "cannot decode create_model_request: field 'model_seq_id': integer 9.223372036854776e+18 out of range");
    CHECK(seq_id_error("9223372036854775807.0").find("out of range") != std::string::npos);  // the same double
    CHECK(seq_id_error("-9223372036854777856.0") ==
          "cannot decode create_model_request: field 'model_seq_id': integer -9.223372036854778e+18 out of range");
    CHECK(seq_id_of("-9223372036854775808.0") == std::numeric_limits<std::int64_t>::min());  // exactly -2^63
    CHECK(seq_id_of("9223372036854774784.0") == 9223372036854774784);  // the largest double below 2^63
    CHECK(seq_id_of("9223372036854775807") == std::numeric_limits<std::int64_t>::max());
    CHECK(seq_id_error("9223372036854775808") ==
          "cannot decode create_model_request: field 'model_seq_id': integer 9223372036854775808 out of range");
    CHECK(seq_id_error("1e30") ==
          "cannot decode create_model_request: field 'model_seq_id': integer 1e+30 out of range");
    CHECK(seq_id_error("2.5") ==
          "cannot decode create_model_request: field 'model_seq_id': expected an integer, got 2.5");
    CHECK(seq_id_error("1e-7") ==
          "cannot decode create_model_request: field 'model_seq_id': expected an integer, got 1e-07");
    // uint64 (seeds): 2^63 fits, 2^64 does not.
    CHECK(from_json<sampling_params>(R"({"seed":9223372036854775808.0})").seed == 9223372036854775808ull);
    CHECK(decode_error<sampling_params>(R"({"seed":18446744073709551616.0})") ==
          "cannot decode sampling_params: field 'seed': integer 1.8446744073709552e+19 out of range");
    // int32 (lora rank): 2^31 does not fit, -2^31 does.
    CHECK(decode_error<lora_config>(R"({"rank":2147483648.0})") ==
          "cannot decode lora_config: field 'rank': integer 2147483648.0 out of range");
    CHECK(from_json<lora_config>(R"({"rank":-2147483648.0})").rank == std::numeric_limits<std::int32_t>::min());
    // float32 values: beyond float's range is an error; what rounds to FLT_MAX is kept.
    CHECK(decode_error<tensor_data>(R"({"data":[1.0,1e39],"dtype":"float32"})") ==
          "cannot decode tensor_data: field 'data[1]': number 1e+39 is out of float32 range");
    CHECK(decode_error<tensor_data>(R"({"data":[-1e300],"dtype":"float32"})").find("out of float32 range") !=
          std::string::npos);
    CHECK(from_json<tensor_data>(R"({"data":[3.4028235e38],"dtype":"float32"})").floats()[0] ==
          std::numeric_limits<float>::max());
    CHECK(from_json<tensor_data>(R"({"data":[-3.4028235e38],"dtype":"float32"})").floats()[0] ==
          -std::numeric_limits<float>::max());
  }

  TEST_CASE("tensor shapes that overflow or exceed the dense limit are rejected, not wrapped") {
    CHECK(decode_error<tensor_data>(R"({"data":[],"dtype":"float32","shape":[4294967296,4294967296]})") ==
          "cannot decode tensor_data: tensor: shape [4294967296, 4294967296] has more elements than fit in 64 bits");
    CHECK(decode_error<tensor_data>(R"({"data":[1],"dtype":"float32","shape":[4,4611686018427387904],)"
                                    R"("sparse_crow_indices":[0,1,1,1,1],"sparse_col_indices":[5]})") ==
          "cannot decode tensor_data: tensor: shape [4, 4611686018427387904] has more elements than fit in 64 bits");
    CHECK(decode_error<tensor_data>(R"({"data":[1],"dtype":"float32","shape":[4,2305843009213693952],)"
                                    R"("sparse_crow_indices":[0,1,1,1,1],"sparse_col_indices":[5]})") ==
          "cannot decode tensor_data: tensor: shape [4, 2305843009213693952] describes 9223372036854775808 elements, "
          "more "
          "than the limit of 268435456");
    CHECK(decode_error<tensor_data>(R"({"data":[],"dtype":"int64","shape":[3,-1]})") ==
          "cannot decode tensor_data: tensor: negative dimension -1 in shape [3, -1]");
    CHECK(decode_error<tensor_data>(R"({"data":[],"dtype":"int64","shape":[9223372036854775807,0],)"
                                    R"("sparse_crow_indices":[0],"sparse_col_indices":[]})") ==
          "cannot decode tensor_data: tensor: sparse_crow_indices has 1 entries, expected rows + 1 = "
          "9223372036854775808");
    CHECK(decode_error<datum>(
              R"({"model_input":{"chunks":[]},"loss_fn_inputs":{"mask":{"data":[1],"dtype":"float32",)"
              R"("shape":[4,4611686018427387904],"sparse_crow_indices":[0,1,1,1,1],"sparse_col_indices":[5]}}})") ==
          "cannot decode datum: field 'loss_fn_inputs[mask]': tensor: shape [4, 4611686018427387904] has more elements "
          "than "
          "fit in 64 bits");
    // A small sparse tensor still expands.
    const auto t = from_json<tensor_data>(
        R"({"data":[7],"dtype":"int64","shape":[2,2],"sparse_crow_indices":[0,0,1],"sparse_col_indices":[1]})");
    CHECK(t.to_dense<std::int64_t>() == std::vector<std::int64_t>{0, 0, 0, 7});
  }

  namespace {

  /// One JSON text per decoded type (answers the client reads and requests the engine reads), with
  /// its decoder; the robustness loops below mutate them.
  struct json_fixture {
    std::string name;
    std::string text;
    std::function<void(std::string_view)> decode;
  };

  template <class T>
  json_fixture fixture(std::string name, const T& value) {
    return {std::move(name), to_json(value), [](std::string_view text) { (void)from_json<T>(text); }};
  }

  std::vector<json_fixture> json_fixtures() {
    const auto t = *parse_timestamp("2026-11-22T10:11:12.345678Z");
    tensor_data sparse = tensor_data::sparse_csr(std::vector<float>{1.5f, -2.0f}, 2, 3, {0, 1, 2}, {2, 0});
    datum d{model_input::from_ints({1, 2, 3}),
            {{"target_tokens", tensor_data(std::vector<std::int64_t>{2, 3, 4})},
             {"weights", tensor_data(std::vector<float>{0.0f, 1.0f, 0.25f}, {3})},
             {"mask", sparse}}};
    d.model_input.append(image_chunk{std::string("\x89PNG", 4), image_format::png, 4});
    d.model_input.append(image_asset_pointer_chunk{image_format::jpeg, "s3://b/x.jpg", 2});
    d.model_input.append(dmel_chunk{std::string("\xfe\x01\x01\x05", 4)});
    const forward_backward_input in{{d}, loss_fn_type::ppo, loss_fn_config{{"clip_low_threshold", 0.7}}};
    sampling_params sp;
    sp.max_tokens = 5;
    sp.seed = 42;
    sp.stop = std::vector<std::string>{"\n"};
    sample_response resp;
    resp.sequences = {{stop_reason::stop, {1, 2}, std::vector<float>{-0.1f, -0.2f}, "seq-1"},
                      {stop_reason::length, {3}, std::nullopt, std::nullopt}};
    resp.prompt_logprobs = std::vector<float>{std::numeric_limits<float>::quiet_NaN(), -1.5f};
    resp.topk_prompt_logprobs = topk_logprobs{
        2, 2, {0, 0, 7, 8}, {topk_logprobs::sentinel_logprob, topk_logprobs::sentinel_logprob, -0.5f, -1.5f}};
    const checkpoint c{"weights/ckpt",
                       checkpoint_type::training,
                       t,
                       "tinker://M/weights/ckpt",
                       1234,
                       true,
                       t + std::chrono::hours(1),
                       metadata_map{{"k", "v"}}};
    const training_run run{"M", "base", "owner", true, false, 8, t, c, c, metadata_map{{"a", "b"}}};
    load_weights_request load;
    load.model_id = "M";
    load.seq_id = 1;
    load.path = "tinker://M/weights/ckpt";
    load.session_id = "S";
    load.model_seq_id = 2;
    billing_usage_response usage;
    for (billing_event_info info :
         {billing_event_info{billing_training_usage{1}}, billing_event_info{billing_sampling_prefill_usage{true, 2}},
          billing_event_info{billing_sampling_sample_usage{3}}, billing_event_info{billing_checkpoint_usage{4}},
          billing_event_info{billing_storage_usage{0.5}},
          billing_event_info{billing_other_usage{"x", boost::json::object{{"n", 1}}}}})
      usage.data.push_back(billing_usage_event{t, t, "b", "u", "n", "S", "p", info});
    usage.sessions = {{"S", billing_session_info{metadata_map{{"k", "v"}}}}, {"T", billing_session_info{}}};

    std::vector<json_fixture> f;
    // Answers (what the client decodes).
    f.push_back(fixture("create_session_response", create_session_response{"S", "i", "w", "e"}));
    f.push_back(fixture("session_heartbeat_response", session_heartbeat_response{}));
    f.push_back(fixture("create_sampling_session_response", create_sampling_session_response{"S:sample:0"}));
    f.push_back(fixture("create_model_response", create_model_response{"M"}));
    f.push_back(fixture("get_info_response", get_info_response{model_data{"a", "m", "t"}, "M", true, 8, "m"}));
    f.push_back(fixture("unload_model_response", unload_model_response{"M"}));
    f.push_back(
        fixture("get_sampler_response", get_sampler_response{"S:sample:0", "b", "tinker://M/sampler_weights/x"}));
    f.push_back(fixture("list_sessions_response", list_sessions_response{{"S1", "S2"}}));
    f.push_back(fixture("get_session_response", get_session_response{{"S:train:0"}, {"S:sample:0"}}));
    f.push_back(fixture("save_weights_response", save_weights_response{"tinker://M/weights/c"}));
    f.push_back(fixture("save_weights_for_sampler_response",
                        save_weights_for_sampler_response{"tinker://M/sampler_weights/c", "S:sample:1"}));
    f.push_back(fixture("load_weights_response", load_weights_response{"tinker://M/weights/c", "M"}));
    f.push_back(fixture("weights_info_response", weights_info_response{"b", true, 8, false, true, std::nullopt}));
    f.push_back(fixture("untyped_api_future", untyped_api_future{"r1", "M", std::vector<std::string>{"s0", "s1"}}));
    f.push_back(fixture("try_again_response", try_again_response{"r1", queue_state::paused_capacity, "busy"}));
    f.push_back(fixture("complete_metadata_response", complete_metadata_response{99}));
    f.push_back(fixture("request_failed_response", request_failed_response{"boom", error_category::user}));
    f.push_back(
        fixture("retrieve_futures_response",
                retrieve_futures_response{
                    {{completion_state::finished, "r1", 10}, {completion_state::failed, "r2", std::nullopt}}, 18}));
    f.push_back(fixture("checkpoints_list_response", checkpoints_list_response{{c, c}, cursor{0, 100, 2}}));
    f.push_back(fixture("checkpoint_archive_url_response", checkpoint_archive_url_response{"http://x/y", t}));
    f.push_back(fixture("training_run", run));
    f.push_back(fixture("training_runs_response", training_runs_response{{run, run}, cursor{20, 20, 41}}));
    f.push_back(
        fixture("get_server_capabilities_response", get_server_capabilities_response{{{"m", 4096, true, false}}}));
    f.push_back(fixture("health_response", health_response{}));
    client_config_response cc;
    cc.fwdbwd_max_chunk_len = 7;
    f.push_back(fixture("client_config_response", cc));
    f.push_back(fixture("dynamic_config_response", dynamic_config_response{10, true, 8}));
    f.push_back(fixture("telemetry_response", telemetry_response{}));
    f.push_back(fixture("auth_token_response", auth_token_response{"eyJ"}));
    f.push_back(fixture("error_response", error_response{"nope"}));
    f.push_back(fixture("sample_response", resp));
    f.push_back(fixture("forward_backward_output",
                        forward_backward_output{"ArrayRecord",
                                                {{{"logprobs", tensor_data(std::vector<float>{-0.5f, -1.25f}, {2})}}},
                                                {{"loss:sum", 3.5}}}));
    f.push_back(fixture("optim_step_response", optim_step_response{{{{"grad_norm:mean", 0.5}}}}));
    f.push_back(fixture("trace_export_response", trace_export_response{trace_export_status::ready, "https://x", "e"}));
    f.push_back(fixture("audit_log_response",
                        audit_log_response{{audit_log_entry{t, "checkpoint_read", "M", "tinker://M/weights/a", "p",
                                                            boost::json::object{{"k", boost::json::array{1, "x"}}}}}}));
    f.push_back(fixture("billing_usage_response", usage));
    f.push_back(fixture("whoami_response", whoami_response{"urn:u", "a@b"}));
    // Every answer to retrieve_future goes through the classifier first.
    f.push_back({"classify_retrieve_answer", to_json(try_again_response{"r1", queue_state::active, std::nullopt}),
                 [](std::string_view text) {
                   (void)tinker::json::classify_retrieve_answer(tinker::json::parse(text, "answer"));
                 }});
    f.push_back({"classify_retrieve_answer (failure)", to_json(request_failed_response{"boom", error_category::server}),
                 [](std::string_view text) {
                   (void)tinker::json::classify_retrieve_answer(tinker::json::parse(text, "answer"));
                 }});
    // Requests (what the local engine decodes from the network).
    f.push_back(fixture("create_session_request", create_session_request{{"a"}, {{"k", "v"}}, "0.25.0", "p"}));
    f.push_back(fixture("session_heartbeat_request", session_heartbeat_request{"S"}));
    f.push_back(fixture("create_sampling_session_request",
                        create_sampling_session_request{"S", 2, "b", "tinker://M/sampler_weights/x"}));
    f.push_back(fixture("create_model_request", create_model_request{"S", 1, "b", metadata_map{{"x", "y"}},
                                                                     lora_config{8, 42, false, true, true}}));
    f.push_back(fixture("get_info_request", get_info_request{"M"}));
    f.push_back(fixture("unload_model_request", unload_model_request{"M"}));
    f.push_back(
        fixture("save_weights_request", save_weights_request{"M", "c", 4, 3600, true, metadata_map{{"a", "b"}}}));
    f.push_back(fixture("save_weights_for_sampler_request",
                        save_weights_for_sampler_request{"M", "c", 5, 3, 60, metadata_map{}}));
    f.push_back(fixture("load_weights_request", load));
    f.push_back(fixture("weights_info_request", weights_info_request{"tinker://M/weights/c"}));
    f.push_back(fixture("future_retrieve_request", future_retrieve_request{"r1", true}));
    f.push_back(fixture("retrieve_futures_request", retrieve_futures_request{{"S:sample:0", 2}, 17, 30.0}));
    f.push_back(fixture("forward_backward_request", forward_backward_request{in, "M", 7, false}));
    f.push_back(fixture("forward_request", forward_request{in, "M", 8}));
    f.push_back(fixture("optim_step_request", optim_step_request{adam_params{}, "M", 3}));
    f.push_back(fixture("sample_request", sample_request{3, model_input::from_ints({9}), sp, "b",
                                                         "tinker://M/sampler_weights/x", "S:sample:1", 4, true, 5}));
    f.push_back(fixture("set_checkpoint_ttl_request", set_checkpoint_ttl_request{60}));
    f.push_back(fixture("client_config_request", client_config_request{"0.25.0"}));
    f.push_back(fixture(
        "telemetry_send_request",
        telemetry_send_request{{boost::json::object{{"event", "SESSION_START"}}}, "Linux", "0.25.0", "S", "p"}));
    f.push_back(fixture("set_session_project_request", set_session_project_request{"p"}));
    return f;
  }

  /// Runs `decode` on `text`: true if it decoded, false if it threw protocol_error; anything else
  /// escaping fails the test with the input.
  bool decodes(const json_fixture& f, const std::string& text, const char* how) {
    try {
      f.decode(text);
      return true;
    } catch (const protocol_error&) {
      return false;
    } catch (const std::exception& e) {
      // (std::string: doctest prints a const char* as a pointer.)
      FAIL_CHECK(f.name << " (" << std::string(how) << "): " << std::string(typeid(e).name())
                        << " escaped: " << std::string(e.what()) << "\n  input: " << text);
    } catch (...) {
      FAIL_CHECK(f.name << " (" << std::string(how) << "): a non-std exception escaped\n  input: " << text);
    }
    return false;
  }

  /// Values that stress the readers: wrong kinds, integer and float range edges, odd strings.
  std::vector<boost::json::value> stress_values() {
    return {nullptr,
            true,
            false,
            0,
            -1,
            1.5,
            -0.0,
            std::numeric_limits<std::int64_t>::max(),
            std::numeric_limits<std::int64_t>::min(),
            std::numeric_limits<std::uint64_t>::max(),
            9223372036854775808.0,   // 2^63
            18446744073709551616.0,  // 2^64
            -9223372036854775808.0,  // -2^63
            -9223372036854777856.0,  // below -2^63
            1e300,
            -1e300,
            3.5e38,  // beyond float32
            4294967296,
            std::int64_t{1} << 62,
            "",
            "x",
            "\xff\xfe",
            "2026-01-01T00:00:00Z",
            "9999-12-31T23:59:60.999999-23:59",
            "tinker://a/weights/b",
            "training",
            "sampling_prefill",
            "try_again",
            "complete_metadata",
            boost::json::array{},
            boost::json::array{1, 2},
            boost::json::array{-1},
            boost::json::array{4, std::int64_t{1} << 62},
            boost::json::array{std::int64_t{1} << 32, std::int64_t{1} << 32},
            boost::json::array{nullptr, boost::json::array{boost::json::array{1, 0.5}}},
            boost::json::object{},
            boost::json::object{{"type", "training"}},
            boost::json::object{{"type", "x"}, {"error", nullptr}}};
  }

  void collect_nodes(boost::json::value& v, std::vector<boost::json::value*>& out) {
    out.push_back(&v);
    if (v.is_array())
      for (auto& e : v.get_array()) collect_nodes(e, out);
    else if (v.is_object())
      for (auto& kv : v.get_object()) collect_nodes(kv.value(), out);
  }

  }  // namespace

  TEST_CASE("JSON robustness: every truncation and seeded mutations of every fixture throw only protocol_error") {
    const auto fixtures = json_fixtures();
    REQUIRE(fixtures.size() > 50);
    for (const auto& f : fixtures) {
      CAPTURE(f.name);
      REQUIRE_MESSAGE(decodes(f, f.text, "fixture"), f.text);  // each fixture itself is valid
    }

    SUBCASE("every proper prefix is invalid JSON: protocol_error, nothing else") {
      std::size_t prefixes = 0;
      for (const auto& f : fixtures)
        for (std::size_t n = 0; n < f.text.size(); ++n, ++prefixes) {
          const bool ok = decodes(f, f.text.substr(0, n), "truncated");
          CHECK_MESSAGE(!ok, f.name << ": a prefix of " << n << " bytes decoded");
        }
      MESSAGE("truncations: " << prefixes);
    }

    SUBCASE("random byte edits") {
      std::mt19937 rng(0x150ba7e5);  // fixed seed: the same mutations on every run
      auto below = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
      static constexpr std::string_view syntax = "{}[]\":,0123456789-+.eE ntrufalse\\u";
      std::size_t ok = 0, rejected = 0;
      for (int iteration = 0; iteration < 6000; ++iteration) {
        const auto& f = fixtures[static_cast<std::size_t>(iteration) % fixtures.size()];
        std::string m = f.text;
        const auto edits = 1 + below(3);
        for (std::size_t k = 0; k < edits && !m.empty(); ++k) {
          const auto pos = below(m.size());
          switch (below(5)) {
            case 0: m[pos] = syntax[below(syntax.size())]; break;   // a JSON-ish byte
            case 1: m[pos] = static_cast<char>(below(256)); break;  // any byte
            case 2: m.insert(pos, 1, syntax[below(syntax.size())]); break;
            case 3: m.erase(pos, 1); break;
            case 4: m[pos] = static_cast<char>(m[pos] ^ (1 << below(8))); break;  // flip a bit
          }
        }
        (decodes(f, m, "byte edit") ? ok : rejected)++;
      }
      MESSAGE("byte edits: " << ok << " decoded, " << rejected << " rejected");
      CHECK(rejected > 0);
    }

    SUBCASE("random value edits (valid JSON, wrong contents)") {
      std::mt19937 rng(0x7ee5eed);
      auto below = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
      const auto values = stress_values();
      std::size_t ok = 0, rejected = 0;
      for (int iteration = 0; iteration < 8000; ++iteration) {
        const auto& f = fixtures[static_cast<std::size_t>(iteration) % fixtures.size()];
        auto tree = boost::json::parse(f.text);
        const auto edits = 1 + below(3);
        for (std::size_t k = 0; k < edits; ++k) {
          std::vector<boost::json::value*> nodes;
          collect_nodes(tree, nodes);
          auto& node = *nodes[below(nodes.size())];
          switch (below(4)) {
            case 0:
            case 1: node = values[below(values.size())]; break;  // replace a value
            case 2:                                              // drop a key or an element
              if (node.is_object() && !node.get_object().empty()) {
                auto& o = node.get_object();
                o.erase(std::next(o.begin(), static_cast<std::ptrdiff_t>(below(o.size()))));
              } else if (node.is_array() && !node.get_array().empty()) {
                auto& a = node.get_array();
                a.erase(std::next(a.begin(), static_cast<std::ptrdiff_t>(below(a.size()))));
              }
              break;
            case 3:  // duplicate an element (arrays whose lengths must agree)
              if (node.is_array() && !node.get_array().empty()) {
                auto& a = node.get_array();
                a.push_back(boost::json::value(a[below(a.size())]));
              }
              break;
          }
        }
        (decodes(f, boost::json::serialize(tree), "value edit") ? ok : rejected)++;
      }
      MESSAGE("value edits: " << ok << " decoded, " << rejected << " rejected");
      CHECK(ok > 0);
      CHECK(rejected > 0);
    }
  }

  TEST_CASE("tensor dtype is taken from the field, and inferred when absent") {
    auto t = from_json<tensor_data>(R"({"data":[1,2,3],"dtype":"float32"})");
    CHECK(t.type() == dtype::float32);
    t = from_json<tensor_data>(R"({"data":[1,2,3]})");
    CHECK(t.type() == dtype::int64);
    t = from_json<tensor_data>(R"({"data":[1,2.5]})");
    CHECK(t.type() == dtype::float32);
    CHECK(to_json(tensor_data(std::vector<float>{0.5f, 1.0f})) == R"({"data":[0.5,1.0],"dtype":"float32"})");
  }

}  // TEST_SUITE
