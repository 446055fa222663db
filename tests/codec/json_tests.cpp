// The JSON codec: exact SDK request shapes, round trips of every type, Python-compatible number
// formatting (cross-checked against python3 itself), and clear errors for malformed input.
#include <tinker/json.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <string>

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

TEST_CASE("requests are byte-for-byte what the SDK sends (protocol.md Appendix B)") {
  CHECK(to_json(client_config_request{"0.25.0"}) == R"({"sdk_version":"0.25.0"})");
  CHECK(to_json(create_session_request{{}, {}, "0.25.0", std::nullopt}) ==
        R"({"tags":[],"user_metadata":{},"sdk_version":"0.25.0","type":"create_session"})");
  CHECK(to_json(create_model_request{"S", 0, "Qwen/Qwen3-8B", std::nullopt, lora_config{}}) ==
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
  CHECK(to_json(sample) ==
        R"({"num_samples":2,"prompt":{"chunks":[{"tokens":[1,2,3],"type":"encoded_text"}]},)"
        R"("sampling_params":{"max_tokens":16,"temperature":0.7,"top_k":-1,"top_p":1.0},)"
        R"("sampling_session_id":"S:sample:0","seq_id":0,"prompt_logprobs":false,"topk_prompt_logprobs":0,"type":"sample"})");
  CHECK(to_json(session_heartbeat_request{"S"}) == R"({"session_id":"S","type":"session_heartbeat"})");
  CHECK(to_json(set_checkpoint_ttl_request{}) == R"({"ttl_seconds":null})");  // explicit null removes the TTL
  CHECK(to_json(set_checkpoint_ttl_request{3600}) == R"({"ttl_seconds":3600})");
  CHECK(to_json(weights_info_request{"tinker://M/weights/a"}) == R"({"tinker_path":"tinker://M/weights/a"})");
}

TEST_CASE("the SDK's answers decode (protocol.md Appendix B)") {
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
  auto a = classify_retrieve_answer(boost::json::parse(R"({"type":"try_again","request_id":"r1","queue_state":"paused_capacity","queue_state_reason":"busy"})"));
  REQUIRE(std::holds_alternative<try_again_response>(a));
  CHECK(std::get<try_again_response>(a).queue_state == queue_state::paused_capacity);
  CHECK(std::get<try_again_response>(a).queue_state_reason == "busy");
  a = classify_retrieve_answer(boost::json::parse(R"({"type":"try_again","request_id":"r1","queue_state":"weird"})"));
  CHECK(std::get<try_again_response>(a).queue_state == queue_state::unknown);
  a = classify_retrieve_answer(boost::json::parse(R"({"status":"complete_metadata","response_payload_size":1234})"));
  CHECK(std::get<complete_metadata_response>(a).response_payload_size == 1234);
  a = classify_retrieve_answer(boost::json::parse(R"({"error":"target_tokens length does not match model_input","category":"user"})"));
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
  check_round_trip(forward_backward_output{"ArrayRecord", {{{"logprobs", tensor_data{-0.5f, -1.25f}}}}, {{"loss:sum", 3.5}}});
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
  resp.topk_prompt_logprobs = topk_logprobs{2, 2, {0, 0, 7, 8}, {topk_logprobs::sentinel_logprob, topk_logprobs::sentinel_logprob, -0.5f, -1.5f}};
  resp.prompt_cache_hit_tokens = 1;
  check_round_trip(resp);

  check_round_trip(create_session_request{{"a", "b"}, {{"k", "v"}}, "0.25.0", "proj"});
  check_round_trip(create_session_response{"S", "info", "warn", "err"});
  check_round_trip(session_heartbeat_request{"S"});
  check_round_trip(session_heartbeat_response{});
  check_round_trip(create_sampling_session_request{"S", 2, "base", std::nullopt});
  check_round_trip(create_sampling_session_response{"S:sample:2"});
  check_round_trip(create_model_request{"S", 1, "base", metadata_map{{"x", "y"}}, lora_config{8, 42, false, true, true}});
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
  check_round_trip(retrieve_futures_response{{{completion_state::finished, "r1", 10}, {completion_state::failed, "r2", std::nullopt}}, 18});

  const auto t = *parse_timestamp("2026-11-22T10:11:12.345678Z");
  checkpoint c{"weights/ckpt", checkpoint_type::training, t, "tinker://M/weights/ckpt", 1234, true, t + std::chrono::hours(1),
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

  check_round_trip(get_server_capabilities_response{{{"m", 4096, true, true}, {std::nullopt, std::nullopt, std::nullopt, std::nullopt}}});
  check_round_trip(health_response{});
  check_round_trip(client_config_request{"0.25.0"});
  client_config_response cc;
  cc.sample_use_retrieve_futures = true;
  cc.fwdbwd_max_chunk_len = 7;
  check_round_trip(cc);
  check_round_trip(dynamic_config_response{10, true, 8});
  check_round_trip(telemetry_send_request{{boost::json::object{{"event", "SESSION_START"}}}, "Linux", "0.25.0", "S", "p"});
  check_round_trip(telemetry_response{});
  check_round_trip(auth_token_response{"eyJ..."});
  check_round_trip(error_response{"nope"});
}

TEST_CASE("numbers are read leniently and written as the SDK writes them") {
  // 1 where a float is expected, 1.0 where an integer is expected.
  const auto p = from_json<adam_params>(R"({"learning_rate":1,"beta1":0,"beta2":1,"eps":1,"weight_decay":0,"grad_clip_norm":2})");
  CHECK(p.learning_rate == 1.0);
  CHECK(p.grad_clip_norm == 2.0);
  const auto m = from_json<create_model_request>(R"({"session_id":"S","model_seq_id":3.0,"base_model":"b","lora_config":{"rank":8.0}})");
  CHECK(m.model_seq_id == 3);
  CHECK(m.lora_config->rank == 8);
  CHECK(m.lora_config->train_mlp);  // defaults when absent
  // Older clients send only four Adam fields.
  CHECK(from_json<adam_params>(R"({"learning_rate":0.5,"beta1":0.9,"beta2":0.95,"eps":1e-12})").grad_clip_norm == 0.0);
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
  CHECK(from_json<create_model_response>(R"({"model_id":"M","type":"create_model","new_field":[1,2]})").model_id == "M");
}

TEST_CASE("floats are formatted exactly like Python's repr (checked against python3)") {
  const std::vector<std::pair<double, std::string>> fixed = {
      {1.0, "1.0"},         {0.0001, "0.0001"},    {1e-05, "1e-05"},          {1e-12, "1e-12"},
      {0.9, "0.9"},         {0.95, "0.95"},        {100.0, "100.0"},          {-2.5, "-2.5"},
      {1e16, "1e+16"},      {1e15, "1000000000000000.0"},                    {0.1 + 0.2, "0.30000000000000004"},
      {5e-324, "5e-324"},   {1.7976931348623157e308, "1.7976931348623157e+308"}, {12345678.9, "12345678.9"},
      {0.0, "0.0"},         {-0.0, "-0.0"},        {123456789012345678.0, "1.2345678901234568e+17"}};
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
    values.push_back(i % 3 == 0 ? d : std::ldexp(static_cast<double>(rng() % 1000000) / 1000.0, int(rng() % 80) - 40));
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
                  "sys.stdout.write(json.dumps(v, separators=(',',':'), ensure_ascii=False))\" ") + path);
  std::remove(path);
  CHECK(python == ours);
}

TEST_CASE("malformed input is rejected with the type and field named") {
  CHECK(decode_error<create_model_response>("{}") == "cannot decode create_model_response: field 'model_id': missing required field");
  CHECK(decode_error<create_model_response>(R"({"model_id":3})") ==
        "cannot decode create_model_response: field 'model_id': expected a string, got integer");
  CHECK(decode_error<create_model_response>("[]") == "cannot decode create_model_response: expected a JSON object, got array");
  CHECK(decode_error<create_model_response>("{\"model_id\":") .find("cannot decode create_model_response: invalid JSON") == 0);
  CHECK(decode_error<sample_response>(R"({"sequences":[{"stop_reason":"stop","tokens":[1]},{"stop_reason":"length","tokens":[1,"x"]}]})") ==
        "cannot decode sample_response: field 'sequences[1].tokens[1]': expected an integer, got string");
  CHECK(decode_error<sample_response>(R"({"sequences":[{"stop_reason":"maybe","tokens":[]}]})") ==
        "cannot decode sample_response: field 'sequences[0].stop_reason': unknown stop reason 'maybe'");
  CHECK(decode_error<forward_backward_request>(
            R"({"model_id":"M","forward_backward_input":{"loss_fn":"magic","data":[]}})") ==
        "cannot decode forward_backward_request: field 'forward_backward_input.loss_fn': unknown loss function 'magic'");
  CHECK(decode_error<datum>(R"({"model_input":{"chunks":[{"type":"encoded_text","tokens":[1.5]}]},"loss_fn_inputs":{}})") ==
        "cannot decode datum: field 'model_input.chunks[0].tokens[0]': expected an integer, got 1.500000");
  CHECK(decode_error<datum>(R"({"model_input":{"chunks":[{"type":"video"}]},"loss_fn_inputs":{}})") ==
        "cannot decode datum: field 'model_input.chunks[0].type': unknown chunk type 'video'");
  CHECK(decode_error<datum>(R"({"model_input":{"chunks":[{"type":"image","data":"!!!","format":"png"}]},"loss_fn_inputs":{}})") ==
        "cannot decode datum: field 'model_input.chunks[0].data': invalid base64");
  CHECK(decode_error<datum>(R"({"model_input":{"chunks":[]},"loss_fn_inputs":{"w":{"data":[1,2],"dtype":"float32","shape":[3]}}})") ==
        "cannot decode datum: field 'loss_fn_inputs[w]': tensor: shape holds 3 elements but 2 values were given");
  CHECK(decode_error<datum>(R"({"model_input":{"chunks":[]},"loss_fn_inputs":{"w":{"data":[1],"dtype":"bfloat16"}}})") ==
        "cannot decode datum: field 'loss_fn_inputs[w].dtype': unknown dtype 'bfloat16'");
  CHECK(decode_error<create_model_request>(R"({"session_id":"S","model_seq_id":1,"base_model":"b","lora_config":{"rank":3000000000}})") ==
        "cannot decode create_model_request: field 'lora_config.rank': integer 3000000000 out of range"); CHECK(decode_error<create_model_request>(R"({"session_id":"S","model_seq_id":1e30,"base_model":"b"})").find("out of range") !=
        std::string::npos);
  CHECK(decode_error<checkpoint>(R"({"checkpoint_id":"weights/a","checkpoint_type":"training","time":"yesterday","tinker_path":"t"})") ==
        "cannot decode checkpoint: field 'time': invalid ISO-8601 datetime 'yesterday'");
  CHECK(decode_error<health_response>(R"({"status":"sad"})") == "cannot decode health_response: field 'status': expected \"ok\", got \"sad\"");
  CHECK(decode_error<telemetry_response>(R"({"status":"ok"})").find("expected \"accepted\"") != std::string::npos);
  CHECK(decode_error<sample_request>(
            R"({"prompt":{"chunks":[]},"sampling_params":{},"prompt_alt_tokens_k":2})") ==
        "cannot decode sample_request: field 'prompt_alt_tokens_k': this server does not support it");
  CHECK(decode_error<optim_step_request>(R"({"model_id":"M","seq_id":1,"optimizer_params":{"type":"dimuon"}})") ==
        "cannot decode optim_step_request: field 'optimizer_params': only Adam is supported: send adam_params");
  CHECK(decode_error<set_checkpoint_ttl_request>("{}").find("send null to remove") != std::string::npos);
  // Newer SDKs' default-valued extra keys are accepted.
  CHECK_NOTHROW(from_json<sample_request>(R"({"prompt":{"chunks":[]},"sampling_params":{},"topk_sample_logprobs":0,)"
                                          R"("prompt_alt_tokens_k":0,"record_stability_info":false})"));
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
