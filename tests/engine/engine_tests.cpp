// The local engine over real HTTP: every endpoint, the semantics clients depend on (seq_id order,
// idempotent resubmission, sampler immutability, exact resume), security, bad input, persistence
// across restarts, and fault injection.
#include "engine_fixture.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>

using namespace tinker;
using namespace tinker::test;
using boost::beast::http::verb;

namespace {

std::string run_command(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p);
  char buf[4096];
  while (auto n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  REQUIRE_MESSAGE(pclose(p) == 0, "command failed: " << cmd);
  return out;
}

}  // namespace

TEST_SUITE("engine") {
  TEST_CASE("service endpoints: health, config, telemetry, capabilities, auth") {
    engine_fixture f;
    auto health = f.http->get("/api/v1/healthz");
    CHECK(health.status == 200);
    CHECK(health.body == R"({"status":"ok"})");

    // Every other route needs a key; the answer never echoes it.
    f.http->set_api_key("");
    auto no_key = f.http->post_raw("/api/v1/client/config", R"({"sdk_version":"0.25.0"})", "application/json");
    CHECK(no_key.status == 401);
    CHECK(detail_of(no_key).find("API key") != std::string::npos);
    f.http->set_api_key("not-a-tinker-key");
    auto bad_key = f.http->post_raw("/api/v1/client/config", R"({"sdk_version":"0.25.0"})", "application/json");
    CHECK(bad_key.status == 401);
    CHECK(bad_key.body.find("not-a-tinker-key") == std::string::npos);
    // Authorization: Bearer works as well as X-API-Key.
    f.http->set_api_key("");
    auto bearer = f.http->request(verb::post, "/api/v1/client/config", R"({"sdk_version":"0.25.0"})",
                                  {{"Authorization", "Bearer tml-test-key"}});
    CHECK(bearer.status == 200);
    f.http->set_api_key("tml-test-key");

    auto config =
        json::from_json<client_config_response>(f.post("/api/v1/client/config", client_config_request{"0.25.0"}).body);
    CHECK(config.sample_use_retrieve_futures);
    CHECK_FALSE(config.use_pyqwest_transport);  // the Python SDK's stock httpx transport is enough here
    CHECK(f.post("/api/v1/client/dynamic_config", client_config_request{"0.25.0"}).body.find("refresh_interval_sec") !=
          std::string::npos);

    telemetry_send_request t;
    t.events.push_back(boost::json::object{{"event", "SESSION_START"}});
    CHECK(f.post("/api/v1/telemetry", t).body == R"({"status":"accepted"})");

    auto caps = json::from_json<get_server_capabilities_response>(f.http->get("/api/v1/get_server_capabilities").body);
    std::set<std::string> names;
    for (const auto& m : caps.supported_models) names.insert(*m.model_name);
    CHECK(names.contains(tiny_model));
    CHECK(f.http->get("/api/v1/no_such_route").status == 404);
  }

  TEST_CASE("model aliases map other names onto engine models") {
    auto o = test_engine_options();
    o.model_aliases["Qwen/Qwen3-8B"] = tiny_model;
    engine_fixture f(o);
    auto caps = json::from_json<get_server_capabilities_response>(f.http->get("/api/v1/get_server_capabilities").body);
    bool found = false;
    for (const auto& m : caps.supported_models) found |= m.model_name == "Qwen/Qwen3-8B";
    CHECK(found);
    const auto session = f.create_session();
    const auto model = f.create_model(session, 0, 4, "Qwen/Qwen3-8B");
    auto info = json::from_json<get_info_response>(f.post("/api/v1/get_info", get_info_request{model}).body);
    CHECK(info.model_data.model_name == "Qwen/Qwen3-8B");
    CHECK(info.model_data.tokenizer_id == std::string(byte_tokenizer::tokenizer_id));
    CHECK(info.lora_rank == 4);
    create_model_request bad{session, 1, "no/such-model", std::nullopt, lora_config{}};
    auto res = f.post("/api/v1/create_model", bad, 400);
    CHECK(detail_of(res).find("unknown base model 'no/such-model'") != std::string::npos);
  }

  TEST_CASE("create_model is a future, ids follow <session>:train:<n>, training lowers the loss") {
    engine_fixture f;
    const auto session = f.create_session();
    const auto model = f.create_model(session, 0);
    CHECK(model == session + ":train:0");
    const auto data = std::vector<datum>{engine_fixture::text_datum("the quick brown fox jumps over the lazy dog")};
    const double first = loss_sum(f.forward_backward(model, 1, data));
    CHECK(first > 0);
    f.optim_step(model, 2, 0.05);
    double last = first;
    std::int64_t seq = 3;
    for (int step = 0; step < 25; ++step) {
      last = loss_sum(f.forward_backward(model, seq++, data));
      f.optim_step(model, seq++, 0.05);
    }
    CHECK(last < 0.5 * first);
    // forward_only computes the loss without changing anything.
    const auto fwd1 = loss_sum(f.forward_backward(model, seq++, data, loss_fn_type::cross_entropy, true));
    const auto fwd2 = loss_sum(f.forward_backward(model, seq++, data, loss_fn_type::cross_entropy, true));
    CHECK(fwd1 == fwd2);
  }

  TEST_CASE(
      "forward_backward outputs: per-datum logprobs and elementwise_loss, name:reduction metrics, JSON paths too") {
    engine_fixture f;
    const auto model = f.create_model(f.create_session());
    auto data = std::vector<datum>{engine_fixture::text_datum("hello"), engine_fixture::text_datum("world!")};
    auto out = f.forward_backward(model, 1, data);
    REQUIRE(out.loss_fn_outputs.size() == 2);
    CHECK(out.loss_fn_outputs[0].at("logprobs").stored_size() == 5);
    CHECK(out.loss_fn_outputs[1].at("logprobs").stored_size() == 6);
    CHECK(out.loss_fn_outputs[1].at("elementwise_loss").stored_size() == 6);
    for (const auto& [key, v] : out.metrics) CHECK(std::count(key.begin(), key.end(), ':') == 1);
    double sum = 0;
    for (const auto& o : out.loss_fn_outputs)
      for (float x : o.at("elementwise_loss").floats()) sum += x;
    CHECK(std::abs(sum - loss_sum(out)) < 1e-3 * std::abs(sum));

    // Legacy JSON request, JSON result (no protobuf Accept) gives the same numbers.
    forward_backward_request req{forward_backward_input{data, loss_fn_type::cross_entropy, std::nullopt}, model, 2,
                                 true};
    auto json_out =
        json::from_value<forward_backward_output>(f.submit_and_wait("/api/v1/forward_backward", json::to_json(req)));
    auto forward_only = f.forward_backward(model, 3, data, loss_fn_type::cross_entropy, true);
    CHECK(json_out.loss_fn_outputs.size() == 2);
    CHECK(std::abs(json_out.metrics.at("loss:sum") - loss_sum(forward_only)) < 1e-4);
    // Legacy /api/v1/forward.
    auto legacy = json::from_value<forward_backward_output>(
        f.submit_and_wait("/api/v1/forward", json::to_json(forward_request{req.forward_backward_input, model, 4})));
    CHECK(std::abs(legacy.metrics.at("loss:sum") - loss_sum(forward_only)) < 1e-4);
  }

  TEST_CASE("RL losses run with their inputs and configs, bad inputs are refused at submission naming the field") {
    engine_fixture f;
    const auto model = f.create_model(f.create_session());
    auto d = engine_fixture::text_datum("abcabc");
    const auto n = d.loss_fn_inputs.at("weights").stored_size();
    d.loss_fn_inputs.erase("weights");
    d.loss_fn_inputs.emplace("logprobs", tensor_data(std::vector<float>(n, -5.0f)));
    d.loss_fn_inputs.emplace("advantages", tensor_data(std::vector<float>(n, 1.0f)));
    std::int64_t seq = 1;
    for (auto loss : {loss_fn_type::importance_sampling, loss_fn_type::ppo, loss_fn_type::cispo, loss_fn_type::dro}) {
      CAPTURE(to_string(loss));
      auto out = f.forward_backward(model, seq++, {d}, loss);
      CHECK(out.metrics.contains("loss:sum"));
      CHECK(std::isfinite(loss_sum(out)));
    }
    // Input the loss cannot take is refused when it arrives (400 naming the field, never retried),
    // not queued to fail later; each refused request still uses up its seq_id.
    auto refused = [&](const forward_backward_request& r, const std::string& needle) {
      auto res = f.http->post_raw("/api/v1/forward_backward", proto::encode(r), "application/x-protobuf");
      CHECK_MESSAGE(res.status == 400, res.status << " " << res.body);
      CHECK_MESSAGE(detail_of(res).find(needle) != std::string::npos, res.body);
    };
    // A loss config key the loss does not know.
    refused(
        {forward_backward_input{{d}, loss_fn_type::ppo, loss_fn_config{{"no_such_knob", 1.0}}}, model, seq++, false},
        "no_such_knob");
    // Mismatched tensor lengths.
    auto bad = engine_fixture::text_datum("abc");
    bad.loss_fn_inputs.at("weights") = tensor_data(std::vector<float>{1.0f});
    refused({forward_backward_input{{bad}, loss_fn_type::cross_entropy, std::nullopt}, model, seq++, false},
            "loss_fn_inputs.weights");
    // Out-of-range tokens, in the input and in the targets.
    auto oob = engine_fixture::text_datum("abc");
    oob.model_input = model_input::from_ints({1, 2, 100000});
    refused({forward_backward_input{{oob}, loss_fn_type::cross_entropy, std::nullopt}, model, seq++, false}, "100000");
    auto oob_target = engine_fixture::text_datum("abc");
    oob_target.loss_fn_inputs.at("target_tokens") = tensor_data(std::vector<std::int64_t>{1, 2, 999});
    refused({forward_backward_input{{oob_target}, loss_fn_type::cross_entropy, std::nullopt}, model, seq++, false},
            "target_tokens");
    // Inputs the loss does not take, or lacks.
    auto extra = engine_fixture::text_datum("abc");
    extra.loss_fn_inputs.emplace("advantages", tensor_data(std::vector<float>(3, 1.0f)));
    refused({forward_backward_input{{extra}, loss_fn_type::cross_entropy, std::nullopt}, model, seq++, false},
            "advantages");
    refused({forward_backward_input{{engine_fixture::text_datum("abc")}, loss_fn_type::ppo, std::nullopt}, model, seq++,
             false},
            "logprobs");
    // Bad Adam parameters likewise.
    adam_params negative;
    negative.learning_rate = -1;
    auto opt = f.post("/api/v1/optim_step", optim_step_request{negative, model, seq++}, 400);
    CHECK(detail_of(opt).find("learning_rate") != std::string::npos);
    // The model still works afterwards, at the next seq_id.
    CHECK(std::isfinite(loss_sum(f.forward_backward(model, seq++, {engine_fixture::text_datum("ok")}))));
  }

  TEST_CASE("requests run in seq_id order whatever order they arrive in, resubmissions run once") {
    engine_fixture f;
    const auto model = f.create_model(f.create_session());
    const auto data = std::vector<datum>{engine_fixture::text_datum("order matters here")};
    auto post_fb = [&](std::int64_t seq, bool forward_only) {
      forward_backward_request req{forward_backward_input{data, loss_fn_type::cross_entropy, std::nullopt}, model, seq,
                                   forward_only};
      auto res = f.http->post_raw("/api/v1/forward_backward", proto::encode(req), "application/x-protobuf");
      REQUIRE(res.status == 200);
      return json::from_json<untyped_api_future>(res.body).request_id;
    };
    auto post_optim = [&](std::int64_t seq) {
      adam_params p;
      p.learning_rate = 0.05;
      auto res = f.post("/api/v1/optim_step", optim_step_request{p, model, seq});
      return json::from_json<untyped_api_future>(res.body).request_id;
    };
    // Arrival order: 4 (forward), 3 (optim), 2 (forward_backward), 1 (forward).
    const auto r4 = post_fb(4, true);
    const auto r3 = post_optim(3);
    const auto r2 = post_fb(2, false);
    const auto r1 = post_fb(1, true);
    auto fetch = [&](const std::string& id) { return proto::decode_forward_backward_output(f.wait(id, true).body); };
    const auto before = loss_sum(fetch(r1));
    const auto during = loss_sum(fetch(r2));
    CHECK(f.wait(r3).status == 200);
    const auto after = loss_sum(fetch(r4));
    CHECK(before == during);  // 1 and 2 saw the same weights
    CHECK(after < before);    // 4 ran after the optim step 3

    // Same (model, seq_id, body) again: the original request id, and it does not run twice.
    CHECK(post_fb(2, false) == r2);
    CHECK(post_optim(3) == r3);
    // Same seq_id with a different body: a clear 400 (not retried by clients).
    forward_backward_request other{
        forward_backward_input{{engine_fixture::text_datum("different")}, loss_fn_type::cross_entropy, std::nullopt},
        model, 2, false};
    auto conflict = f.http->post_raw("/api/v1/forward_backward", proto::encode(other), "application/x-protobuf");
    CHECK(conflict.status == 400);
    CHECK(detail_of(conflict).find("seq_id 2") != std::string::npos);
    // The next forward sees exactly one optim step applied.
    CHECK(loss_sum(f.forward_backward(model, 5, data, loss_fn_type::cross_entropy, true)) == after);
  }

  TEST_CASE("save_state then load_state_with_optimizer reproduces the next step exactly") {
    engine_fixture f;
    const auto session = f.create_session();
    const auto model = f.create_model(session, 0);
    const auto data = std::vector<datum>{engine_fixture::text_datum("resume me exactly, please")};
    std::int64_t seq = 1;
    for (int i = 0; i < 3; ++i) {
      f.forward_backward(model, seq++, data);
      f.optim_step(model, seq++);
    }
    save_weights_request save{model, "resume-point", seq++, std::nullopt, false, std::nullopt};
    auto saved =
        json::from_value<save_weights_response>(f.submit_and_wait("/api/v1/save_weights", json::to_json(save)));
    CHECK(saved.path == "tinker://" + model + "/weights/resume-point");
    // The original continues: one more step, then its loss.
    f.forward_backward(model, seq++, data);
    f.optim_step(model, seq++);
    const auto expected = loss_sum(f.forward_backward(model, seq++, data, loss_fn_type::cross_entropy, true));

    // A new model loads the state with the optimizer and takes the same step.
    const auto copy = f.create_model(session, 1);
    load_weights_request load;
    load.model_id = copy;
    load.seq_id = 1;
    load.path = saved.path;
    load.optimizer = true;
    f.submit_and_wait("/api/v1/load_weights", json::to_json(load));
    f.forward_backward(copy, 2, data);
    f.optim_step(copy, 3);
    CHECK(loss_sum(f.forward_backward(copy, 4, data, loss_fn_type::cross_entropy, true)) == expected);

    // Without the optimizer the weights match but the next step differs (fresh Adam moments).
    const auto weights_only = f.create_model(session, 2);
    load.model_id = weights_only;
    load.optimizer = false;
    f.submit_and_wait("/api/v1/load_weights", json::to_json(load));
    f.forward_backward(weights_only, 2, data);
    f.optim_step(weights_only, 3);
    CHECK(loss_sum(f.forward_backward(weights_only, 4, data, loss_fn_type::cross_entropy, true)) != expected);

    // Saving under an existing name needs overwrite.
    save.seq_id = seq++;
    auto exists = f.post("/api/v1/save_weights", save, 400);
    CHECK(detail_of(exists).find("overwrite") != std::string::npos);
  }

  TEST_CASE("sampling: sampler checkpoints are immutable, params, stop, logprobs, sequence ids, protobuf and JSON") {
    engine_fixture f;
    const auto session = f.create_session();
    const auto model = f.create_model(session, 0);
    save_weights_for_sampler_request sfs;
    sfs.model_id = model;
    sfs.path = "before";
    sfs.seq_id = 1;
    auto saved = json::from_value<save_weights_for_sampler_response>(
        f.submit_and_wait("/api/v1/save_weights_for_sampler", json::to_json(sfs)));
    REQUIRE(saved.path == "tinker://" + model + "/sampler_weights/before");
    auto sampler = json::from_json<create_sampling_session_response>(
                       f.post("/api/v1/create_sampling_session",
                              create_sampling_session_request{session, 0, std::nullopt, saved.path})
                           .body)
                       .sampling_session_id;
    CHECK(sampler == session + ":sample:0");

    sample_request req;
    req.num_samples = 3;
    req.prompt = model_input::from_ints(byte_tokenizer{}.encode("Once upon", true));
    req.sampling_params.max_tokens = 12;
    req.sampling_params.seed = 42;
    req.sampling_session_id = sampler;
    req.seq_id = 0;
    req.prompt_logprobs = true;
    req.topk_prompt_logprobs = 3;
    auto submit = [&](const sample_request& r) {
      auto res = f.post("/api/v1/asample", r);
      return json::from_json<untyped_api_future>(res.body);
    };
    auto handle = submit(req);
    REQUIRE(handle.sample_sequence_ids);
    CHECK(handle.sample_sequence_ids->size() == 3);
    CHECK(std::set<std::string>(handle.sample_sequence_ids->begin(), handle.sample_sequence_ids->end()).size() == 3);
    auto first = proto::decode_sample_response(f.wait(handle.request_id, true).body);
    REQUIRE(first.sequences.size() == 3);
    for (const auto& s : first.sequences) {
      CHECK(s.tokens.size() <= 12);
      REQUIRE(s.logprobs);
      CHECK(s.logprobs->size() == s.tokens.size());
    }
    REQUIRE(first.prompt_logprobs);
    CHECK(first.prompt_logprobs->size() == req.prompt.length());
    CHECK(std::isnan((*first.prompt_logprobs)[0]));
    REQUIRE(first.topk_prompt_logprobs);
    CHECK(first.topk_prompt_logprobs->k == 3);
    CHECK_FALSE(first.topk_prompt_logprobs->row_present(0));
    CHECK(first.topk_prompt_logprobs->row_present(1));

    // Train the model a lot; the sampler checkpoint must not change.
    const auto data = std::vector<datum>{engine_fixture::text_datum("zzzzzzzzzzzzzzzzzzzzzzzz")};
    std::int64_t seq = 2;
    for (int i = 0; i < 10; ++i) {
      f.forward_backward(model, seq++, data);
      f.optim_step(model, seq++, 0.1);
    }
    req.seq_id = 1;
    auto again = proto::decode_sample_response(f.wait(submit(req).request_id, true).body);
    CHECK(again.sequences == first.sequences);  // same seed, same (old) weights

    // The same request as JSON (no protobuf Accept) carries the same sequences.
    req.seq_id = 2;
    auto as_json = json::from_json<sample_response>(f.wait(submit(req).request_id).body);
    CHECK(as_json.sequences.size() == 3);
    CHECK(as_json.sequences[0].tokens == first.sequences[0].tokens);

    // A stop token ends sequences with stop_reason "stop", the stop token included.
    req.seq_id = 3;
    req.prompt_logprobs = false;
    req.topk_prompt_logprobs = 0;
    req.sampling_params.max_tokens = 64;
    req.sampling_params.stop = std::vector<token_id>{first.sequences[0].tokens[0]};
    auto stopped = proto::decode_sample_response(f.wait(submit(req).request_id, true).body);
    CHECK(stopped.sequences[0].stop_reason == stop_reason::stop);
    CHECK(stopped.sequences[0].tokens.size() == 1);

    // Unnamed save creates a sampling session on the trained weights.
    save_weights_for_sampler_request unnamed;
    unnamed.model_id = model;
    unnamed.seq_id = seq++;
    unnamed.sampling_session_seq_id = 1;
    auto eph = json::from_value<save_weights_for_sampler_response>(
        f.submit_and_wait("/api/v1/save_weights_for_sampler", json::to_json(unnamed)));
    REQUIRE(eph.sampling_session_id);
    CHECK(*eph.sampling_session_id == session + ":sample:1");
    req.sampling_session_id = eph.sampling_session_id;
    req.sampling_params.stop.reset();
    req.seq_id = 0;
    auto trained = proto::decode_sample_response(f.wait(submit(req).request_id, true).body);
    CHECK(trained.sequences != first.sequences);
    auto info = json::from_json<get_sampler_response>(f.http->get("/api/v1/samplers/" + *eph.sampling_session_id).body);
    CHECK(info.base_model == tiny_model);
    // Bad sampling parameters are refused at once.
    req.sampling_params.max_tokens = 0;
    CHECK(f.post("/api/v1/asample", req, 400).status == 400);
  }

  TEST_CASE("retrieve_future: long-poll, try_again with queue_state, unknown ids, failures as JSON") {
    engine_fixture f;
    auto res = f.post("/api/v1/retrieve_future", future_retrieve_request{"req-999999-1", true}, 410);
    CHECK(detail_of(res).find("earlier run") != std::string::npos);
    f.post("/api/v1/retrieve_future", future_retrieve_request{"nonsense", true}, 404);

    // try_again for the first polls of every future (fault injection), then the result.
    local::fault_options faults;
    faults.try_again_first_polls = 2;
    f.engine->set_faults(faults);
    const auto session = f.create_session();
    create_model_request req{session, 0, tiny_model, std::nullopt, lora_config{4, 1, true, true, true}};
    auto id = json::from_json<untyped_api_future>(f.post("/api/v1/create_model", req).body).request_id;
    for (int i = 0; i < 2; ++i) {
      auto t = json::from_json<try_again_response>(
          f.post("/api/v1/retrieve_future", future_retrieve_request{id, true}).body);
      CHECK(t.request_id == id);
      CHECK(t.queue_state == queue_state::active);
    }
    CHECK(f.wait(id).body.find(session + ":train:0") != std::string::npos);

    // Pause windows report the queue state.
    faults = {};
    faults.pause_state = queue_state::paused_capacity;
    faults.pause_period = std::chrono::hours(2);
    faults.pause_duration = std::chrono::hours(1);  // paused from t = 1 h: not yet
    f.engine->set_faults(faults);
    CHECK(f.wait(id).status == 200);
    faults.pause_duration = std::chrono::hours(2);  // paused all the time
    f.engine->set_faults(faults);
    auto paused =
        json::from_json<try_again_response>(f.post("/api/v1/retrieve_future", future_retrieve_request{id, true}).body);
    CHECK(paused.queue_state == queue_state::paused_capacity);
    CHECK(paused.queue_state_reason);
    f.engine->set_faults({});
    // Another tenant cannot see this future.
    f.http->set_api_key("tml-someone-else");
    f.post("/api/v1/retrieve_future", future_retrieve_request{id, true}, 404);
  }

  TEST_CASE("batched completion polling reports finished samples") {
    engine_fixture f;
    const auto session = f.create_session();
    auto sampler = json::from_json<create_sampling_session_response>(
                       f.post("/api/v1/create_sampling_session",
                              create_sampling_session_request{session, 0, tiny_model, std::nullopt})
                           .body)
                       .sampling_session_id;
    std::set<std::string> submitted;
    for (int i = 0; i < 5; ++i) {
      sample_request r;
      r.prompt = model_input::from_ints({256, 65});
      r.sampling_params.max_tokens = 4;
      r.sampling_session_id = sampler;
      r.seq_id = i;
      submitted.insert(json::from_json<untyped_api_future>(f.post("/api/v1/asample", r).body).request_id);
    }
    std::set<std::string> done;
    std::int64_t cursor = 0;
    for (int polls = 0; done.size() < submitted.size() && polls < 20; ++polls) {
      auto resp = json::from_json<retrieve_futures_response>(
          f.post("/api/v1/retrieve_futures", retrieve_futures_request{{sampler, 0}, cursor, std::nullopt}).body);
      CHECK(resp.cursor >= cursor);
      cursor = resp.cursor;
      for (const auto& c : resp.completions) {
        CHECK(c.state == completion_state::finished);
        done.insert(c.request_id);
      }
    }
    CHECK(done == submitted);
    // Payloads stay retrievable after being reported.
    CHECK(f.wait(*done.begin(), true).status == 200);
    // A cursor from an earlier run of the engine (beyond this log's last one, as after a restart):
    // everything this run's log holds is reported, with the engine's own cursor to go on from.
    auto resumed = json::from_json<retrieve_futures_response>(
        f.post("/api/v1/retrieve_futures", retrieve_futures_request{{sampler, 0}, cursor + 1000, std::nullopt}).body);
    CHECK(resumed.cursor == cursor);
    std::set<std::string> again;
    for (const auto& c : resumed.completions) again.insert(c.request_id);
    CHECK(again == submitted);
  }

  TEST_CASE("REST: training runs, checkpoints, publish, TTL, archive and download, sessions, weights_info") {
    engine_fixture f;
    const auto session = f.create_session();
    const auto model = f.create_model(session, 0, 8);
    save_weights_request save{model, "ckpt-a", 1, std::nullopt, false, std::nullopt};
    f.submit_and_wait("/api/v1/save_weights", json::to_json(save));
    save_weights_for_sampler_request sfs;
    sfs.model_id = model;
    sfs.path = "sampler-a";
    sfs.seq_id = 2;
    f.submit_and_wait("/api/v1/save_weights_for_sampler", json::to_json(sfs));
    const auto ckpt = "tinker://" + model + "/weights/ckpt-a";

    auto info = json::from_json<weights_info_response>(f.post("/api/v1/weights_info", weights_info_request{ckpt}).body);
    CHECK(info.base_model == tiny_model);
    CHECK(info.lora_rank == 8);

    auto runs = json::from_json<training_runs_response>(
        f.http->get("/api/v1/training_runs?limit=20&offset=0&access_scope=owned").body);
    REQUIRE(runs.training_runs.size() == 1);
    CHECK(runs.cursor.total_count == 1);
    CHECK(runs.training_runs[0].training_run_id == model);
    REQUIRE(runs.training_runs[0].last_checkpoint);
    CHECK(runs.training_runs[0].last_checkpoint->tinker_path == ckpt);
    REQUIRE(runs.training_runs[0].last_sampler_checkpoint);
    auto run = json::from_json<training_run>(f.http->get("/api/v1/training_runs/" + model).body);
    CHECK(run.lora_rank == 8);

    auto list =
        json::from_json<checkpoints_list_response>(f.http->get("/api/v1/training_runs/" + model + "/checkpoints").body);
    CHECK(list.checkpoints.size() == 2);
    auto mine = json::from_json<checkpoints_list_response>(f.http->get("/api/v1/checkpoints?limit=1&offset=0").body);
    CHECK(mine.checkpoints.size() == 1);
    REQUIRE(mine.cursor);
    CHECK(mine.cursor->total_count == 2);
    for (const auto& c : list.checkpoints) CHECK(c.size_bytes.value_or(0) > 0);

    // Another tenant sees nothing until the checkpoint is published, then may read but not change it.
    f.http->set_api_key("tml-other-tenant");
    f.post("/api/v1/weights_info", weights_info_request{ckpt}, 404);
    CHECK(f.http->get("/api/v1/training_runs/" + model).status == 404);
    f.http->set_api_key("tml-test-key");
    const auto route = "/api/v1/training_runs/" + model + "/checkpoints/weights/ckpt-a";
    CHECK(f.http->post_raw(route + "/publish", "", "application/json").status == 200);
    CHECK(f.http->post_raw(route + "/publish", "", "application/json").status == 200);  // idempotent
    f.http->set_api_key("tml-other-tenant");
    CHECK(f.post("/api/v1/weights_info", weights_info_request{ckpt}).status == 200);
    CHECK(f.http->del(route).status == 403);
    CHECK(json::from_json<training_runs_response>(f.http->get("/api/v1/training_runs?access_scope=accessible").body)
              .training_runs.size() == 1);
    CHECK(json::from_json<training_runs_response>(f.http->get("/api/v1/training_runs?access_scope=owned").body)
              .training_runs.empty());
    f.http->set_api_key("tml-test-key");
    CHECK(f.http->request(verb::delete_, route + "/publish").status == 200);
    f.http->set_api_key("tml-other-tenant");
    f.post("/api/v1/weights_info", weights_info_request{ckpt}, 404);
    f.http->set_api_key("tml-test-key");

    // Archive: a 302 to a signed URL that downloads a real .tar.gz PEFT adapter.
    auto archive = f.http->get(route + "/archive");
    REQUIRE(archive.status == 302);
    const auto location = archive.header("Location");
    CHECK(!archive.header("Expires").empty());
    REQUIRE(location.find("/downloads/") != std::string::npos);
    const auto download_target = location.substr(location.find("/downloads/"));
    f.http->set_api_key("");  // signed URLs need no key
    auto download = f.http->get(download_target);
    REQUIRE(download.status == 200);
    temp_dir tmp;
    {
      std::ofstream out(tmp.path / "a.tar.gz", std::ios::binary);
      out << download.body;
    }
    const auto listing = run_command("tar tzf " + (tmp.path / "a.tar.gz").string());
    CHECK(listing.find("adapter_config.json") != std::string::npos);
    CHECK(listing.find("adapter_model.safetensors") != std::string::npos);
    const auto config = run_command("tar xzOf " + (tmp.path / "a.tar.gz").string() + " adapter_config.json");
    CHECK(boost::json::parse(config).as_object().at("peft_type") == "LORA");
    // The signature opens only this checkpoint, and only until it expires.
    auto tampered = download_target;
    tampered.replace(tampered.find("ckpt-a"), 6, "ckpt-b");
    CHECK(f.http->get(tampered).status == 403);
    f.clock.advance(std::chrono::hours(2));
    CHECK(f.http->get(download_target).status == 403);
    f.http->set_api_key("tml-test-key");

    // TTL: set, clear, set again; expiry really deletes.
    CHECK(f.http->put(route + "/ttl", boost::json::object{{"ttl_seconds", 0}}).status == 400);
    CHECK(f.http->put(route + "/ttl", boost::json::object{{"ttl_seconds", 60}}).status == 200);
    list =
        json::from_json<checkpoints_list_response>(f.http->get("/api/v1/training_runs/" + model + "/checkpoints").body);
    bool has_expiry = false;
    for (const auto& c : list.checkpoints) has_expiry |= c.expires_at.has_value();
    CHECK(has_expiry);
    CHECK(f.http->put(route + "/ttl", boost::json::object{{"ttl_seconds", nullptr}}).status == 200);
    f.clock.advance(std::chrono::hours(1));
    f.engine->run_maintenance();
    CHECK(f.post("/api/v1/weights_info", weights_info_request{ckpt}).status == 200);
    CHECK(f.http->put(route + "/ttl", boost::json::object{{"ttl_seconds", 60}}).status == 200);
    f.clock.advance(std::chrono::seconds(61));
    f.engine->run_maintenance();
    f.post("/api/v1/weights_info", weights_info_request{ckpt}, 404);
    CHECK(!std::filesystem::exists(f.engine->data_dir() / "runs" / model / "weights" / "ckpt-a"));

    // Delete the sampler checkpoint.
    CHECK(f.http->del("/api/v1/training_runs/" + model + "/checkpoints/sampler_weights/sampler-a").status == 200);
    CHECK(
        json::from_json<checkpoints_list_response>(f.http->get("/api/v1/training_runs/" + model + "/checkpoints").body)
            .checkpoints.empty());

    // Sessions.
    auto sessions = json::from_json<list_sessions_response>(f.http->get("/api/v1/sessions?limit=20&offset=0").body);
    CHECK(sessions.sessions == std::vector<std::string>{session});
    auto s = json::from_json<get_session_response>(f.http->get("/api/v1/sessions/" + session).body);
    CHECK(s.training_run_ids == std::vector<std::string>{model});
  }

  TEST_CASE("checkpoint names: percent-encoded path segments are decoded, the legal set is enforced when saving") {
    engine_fixture f;
    const auto session = f.create_session();
    const auto model = f.create_model(session, 0, 4);
    // What an HTTP client that pastes ids into URLs sends (httpx, under the official SDK): bytes
    // outside a path's allowed set percent-encoded (lower-case hex, to show either case works),
    // sub-delimiters such as '+', '&', '=', ';' and ',' left as they are.
    auto pasted = [](std::string_view s) {
      std::string out;
      for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (std::isalnum(u) || std::string_view("-._~!$&'()*+,;=:@").find(c) != std::string_view::npos) {
          out += c;
        } else {
          char buf[4];
          std::snprintf(buf, sizeof buf, "%%%02x", static_cast<unsigned>(u));
          out += buf;
        }
      }
      return out;
    };
    const std::vector<std::string> names = {"step 10 | {draft}", "caf\xc3\xa9 \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac",
                                            "a+b=c&d;e,f", "quote\"and'apostrophe", "<tag>^`[x]"};
    std::int64_t seq = 1;
    for (const auto& name : names) {
      CAPTURE(name);
      save_weights_request save{model, name, seq++, std::nullopt, false, std::nullopt};
      const auto saved = f.submit_and_wait("/api/v1/save_weights", json::to_json(save));
      const auto path = "tinker://" + model + "/weights/" + name;
      CHECK(json::from_value<save_weights_response>(saved).path == path);
      const auto route = "/api/v1/training_runs/" + pasted(model) + "/checkpoints/weights/" + pasted(name);
      CHECK(f.http->put(route + "/ttl", boost::json::object{{"ttl_seconds", 3600}}).status == 200);
      CHECK(f.http->post_raw(route + "/publish", "", "application/json").status == 200);
      CHECK(f.http->request(verb::delete_, route + "/publish").status == 200);
      auto archive = f.http->get(route + "/archive");
      REQUIRE_MESSAGE(archive.status == 302, archive.body);
      // The signed URL the engine hands out is itself a valid, encoded URL that opens the archive.
      const auto location = archive.header("Location");
      CHECK(location.find(' ') == std::string::npos);
      CHECK(location.find('|') == std::string::npos);
      CHECK(
          std::none_of(location.begin(), location.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; }));
      f.http->set_api_key("");
      auto download = f.http->get(location.substr(location.find("/downloads/")));
      f.http->set_api_key("tml-test-key");
      CHECK_MESSAGE(download.status == 200, download.body);
      CHECK(download.header("Content-Disposition").find("filename*=UTF-8''") != std::string::npos);
      auto list = json::from_json<checkpoints_list_response>(
          f.http->get("/api/v1/training_runs/" + pasted(model) + "/checkpoints").body);
      CHECK(std::any_of(list.checkpoints.begin(), list.checkpoints.end(),
                        [&](const checkpoint& c) { return c.tinker_path == path && c.expires_at; }));
      CHECK(f.http->del(route).status == 200);
      list = json::from_json<checkpoints_list_response>(
          f.http->get("/api/v1/training_runs/" + pasted(model) + "/checkpoints").body);
      CHECK(std::none_of(list.checkpoints.begin(), list.checkpoints.end(),
                         [&](const checkpoint& c) { return c.tinker_path == path; }));
    }

    // Names outside the legal set are refused when saving, with a 400 naming the problem.
    const std::vector<std::pair<std::string, std::string>> illegal = {
        {"50%", "cannot contain '%'"},
        {"a?b", "cannot contain '?'"},
        {"a#b", "cannot contain '#'"},
        {"a\\b", "cannot contain '\\'"},
        {" lead", "cannot begin or end with a space"},
        {"trail ", "cannot begin or end with a space"},
        {"c1\xc2\x85", "control character 0x85"},
        {"..", "cannot be '.' or '..'"},
    };
    for (const auto& [name, why] : illegal) {
      CAPTURE(name);
      save_weights_request save{model, name, seq++, std::nullopt, false, std::nullopt};
      auto refused = f.post("/api/v1/save_weights", save, 400);
      CHECK(contains(detail_of(refused), why));
      save_weights_for_sampler_request sfs;
      sfs.model_id = model;
      sfs.path = name;
      sfs.seq_id = seq++;
      refused = f.post("/api/v1/save_weights_for_sampler", sfs, 400);
      CHECK(contains(detail_of(refused), why));
    }

    // A segment that is still not a legal segment after decoding is a 400 naming it, whatever
    // the route (and never reaches a handler).
    const auto base = "/api/v1/training_runs/" + model + "/checkpoints/weights/";
    for (const auto& [segment, why] : std::vector<std::pair<std::string, std::string>>{
             {"a%2Fb", "%2F"}, {"a%ffb", "not UTF-8"}, {"a%0Ab", "control character"}, {"a%zzb", "two hex digits"}}) {
      CAPTURE(segment);
      for (auto res : {f.http->del(base + segment), f.http->get(base + segment + "/archive"),
                       f.http->get("/api/v1/training_runs/" + segment)}) {
        CHECK(res.status == 400);
        CHECK(contains(detail_of(res), "invalid request path"));
        CHECK(contains(detail_of(res), why));
      }
    }
  }

  TEST_CASE("a checkpoint past its TTL is gone at once, whether or not the expiry sweep has run") {
    auto o = test_engine_options();
    o.maintenance_interval = std::chrono::hours(1);  // the periodic sweep does not run in this test
    engine_fixture f(o);
    const auto session = f.create_session();
    const auto model = f.create_model(session, 0, 4);
    f.submit_and_wait("/api/v1/save_weights",
                      json::to_json(save_weights_request{model, "brief", 1, 60, false, std::nullopt}));
    save_weights_for_sampler_request sfs;
    sfs.model_id = model;
    sfs.path = "brief-sampler";
    sfs.seq_id = 2;
    sfs.ttl_seconds = 60;
    f.submit_and_wait("/api/v1/save_weights_for_sampler", json::to_json(sfs));
    const auto ckpt = "tinker://" + model + "/weights/brief";
    const auto sampler_ckpt = "tinker://" + model + "/sampler_weights/brief-sampler";
    const auto route = "/api/v1/training_runs/" + model + "/checkpoints/weights/brief";
    auto archive = f.http->get(route + "/archive");
    REQUIRE(archive.status == 302);
    const auto download = archive.header("Location").substr(archive.header("Location").find("/downloads/"));
    auto listed = [&] {
      return json::from_json<checkpoints_list_response>(
                 f.http->get("/api/v1/training_runs/" + model + "/checkpoints").body)
          .checkpoints.size();
    };
    CHECK(listed() == 2);

    f.clock.advance(std::chrono::seconds(61));  // past expires_at; no run_maintenance()
    CHECK(listed() == 0);
    CHECK(json::from_json<checkpoints_list_response>(f.http->get("/api/v1/checkpoints").body).checkpoints.empty());
    f.post("/api/v1/weights_info", weights_info_request{ckpt}, 404);
    f.post("/api/v1/weights_info", weights_info_request{sampler_ckpt}, 404);
    CHECK(f.http->get(route + "/archive").status == 404);
    f.http->set_api_key("");
    CHECK(f.http->get(download).status == 404);  // a link handed out before the expiry
    f.http->set_api_key("tml-test-key");
    load_weights_request load;
    load.model_id = model;
    load.path = ckpt;
    load.seq_id = 3;
    auto loaded = f.http->post_raw("/api/v1/load_weights", json::to_json(load), "application/json");
    if (loaded.status == 200) {  // refused at submission or as a failed future: either way not loaded
      auto done = f.wait(future_id(loaded));
      CHECK(done.json().as_object().contains("error"));
    } else {
      CHECK(loaded.status == 404);
    }
    create_sampling_session_request cs;
    cs.session_id = session;
    cs.sampling_session_seq_id = 0;
    cs.model_path = sampler_ckpt;
    CHECK(f.http->post_raw("/api/v1/create_sampling_session", json::to_json(cs), "application/json").status == 404);
    CHECK(!std::filesystem::exists(f.engine->data_dir() / "runs" / model / "weights" / "brief"));
  }

  TEST_CASE("sessions expire without heartbeats and their models unload") {
    auto o = test_engine_options();
    o.session_timeout = std::chrono::seconds(30);
    engine_fixture f(o);
    const auto session = f.create_session();
    const auto model = f.create_model(session, 0);
    CHECK(f.hook().loaded_model_count() == 1);
    f.clock.advance(std::chrono::seconds(20));
    f.post("/api/v1/session_heartbeat", session_heartbeat_request{session});
    f.clock.advance(std::chrono::seconds(20));
    f.engine->run_maintenance();
    CHECK(f.hook().loaded_model_count() == 1);  // the heartbeat kept it alive
    f.clock.advance(std::chrono::seconds(31));
    f.engine->run_maintenance();
    CHECK(f.hook().loaded_model_count() == 0);
    auto hb = f.post("/api/v1/session_heartbeat", session_heartbeat_request{session}, 404);
    CHECK(detail_of(hb).find("expired") != std::string::npos);
    adam_params p;
    auto gone = f.post("/api/v1/optim_step", optim_step_request{p, model, 1}, 404);
    CHECK(detail_of(gone).find("not loaded") != std::string::npos);
    // The run itself is still listed.
    CHECK(f.http->get("/api/v1/training_runs/" + model).status == 200);
  }

  TEST_CASE("bad input: clear 4xx with a JSON detail, never 500, never an empty body") {
    auto o = test_engine_options();
    o.max_body_bytes = 4096;
    engine_fixture f(o);
    const auto session = f.create_session();
    const auto model = f.create_model(session);
    auto expect = [&](const sync_response& r, unsigned status, const std::string& needle) {
      CHECK_MESSAGE(r.status == status, r.status << " " << r.body);
      CHECK(!r.body.empty());
      CHECK_MESSAGE(detail_of(r).find(needle) != std::string::npos, r.body);
    };
    expect(f.http->post_raw("/api/v1/create_session", "{not json", "application/json"), 400, "invalid JSON");
    expect(f.http->post_raw("/api/v1/create_model", R"({"session_id":5})", "application/json"), 400, "session_id");
    expect(f.http->post_raw("/api/v1/forward_backward", "\xff\xff\xff", "application/x-protobuf"), 400,
           "ForwardBackwardRequest");
    expect(f.http->post_raw(
               "/api/v1/forward_backward",
               R"({"model_id":")" + model + R"(","seq_id":1,"forward_backward_input":{"loss_fn":"magic","data":[]}})",
               "application/json"),
           400, "unknown loss function 'magic'");
    expect(f.http->post_raw("/api/v1/forward_backward",
                            R"({"model_id":")" + model +
                                R"(","seq_id":1,"forward_backward_input":{"loss_fn":"cross_entropy","data":[]}})",
                            "application/json"),
           400, "no data");
    expect(f.http->post_raw("/api/v1/forward_backward", std::string(8000, 'x'), "application/x-protobuf"), 413, "");
    save_weights_request bad_name{model, "../escape", 1, std::nullopt, false, std::nullopt};
    expect(f.http->post_raw("/api/v1/save_weights", json::to_json(bad_name), "application/json"), 400,
           "invalid checkpoint name");
    bad_name.path = "a/b";
    expect(f.http->post_raw("/api/v1/save_weights", json::to_json(bad_name), "application/json"), 400,
           "invalid checkpoint name");
    expect(f.http->post_raw("/api/v1/weights_info", R"({"tinker_path":"s3://x/y"})", "application/json"), 400,
           "unsupported scheme");
    expect(f.http->get("/api/v1/training_runs?limit=abc"), 400, "limit");
    expect(f.http->post_raw(
               "/api/v1/create_model",
               R"({"session_id":")" + session + R"(","model_seq_id":5,"base_model":")" + tiny_model +
                   R"(","lora_config":{"rank":4,"train_mlp":false,"train_attn":false,"train_unembed":false}})",
               "application/json"),
           400, "at least one");
    expect(f.http->post_raw("/api/v1/load_weights",
                            R"({"model_id":")" + model +
                                R"(","seq_id":1,"path":"tinker://nope:train:0/weights/x","optimizer":false})",
                            "application/json"),
           404, "not found");
    // A rejected request that named seq_id 1 still used it up, so the model's queue does not stall
    // waiting for it: the next operation, seq_id 2, runs.
    CHECK(std::isfinite(loss_sum(f.forward_backward(model, 2, {engine_fixture::text_datum("still fine")}))));
  }

  TEST_CASE("runs, checkpoints and samplers persist across restarts, old futures answer 410") {
    temp_dir dir;
    std::string model, ckpt, sampler_ckpt, future_id;
    sample_response before;
    sample_request req;
    req.prompt = model_input::from_ints({256, 72, 105});
    req.sampling_params.max_tokens = 8;
    req.sampling_params.seed = 7;
    {
      engine_fixture f(test_engine_options(dir.path.string()));
      const auto session = f.create_session();
      model = f.create_model(session);
      f.forward_backward(model, 1, {engine_fixture::text_datum("persist")});
      f.optim_step(model, 2, 0.1);
      save_weights_request save{model, "kept", 3, std::nullopt, false, std::nullopt};
      ckpt =
          json::from_value<save_weights_response>(f.submit_and_wait("/api/v1/save_weights", json::to_json(save))).path;
      save_weights_for_sampler_request sfs;
      sfs.model_id = model;
      sfs.path = "kept-sampler";
      sfs.seq_id = 4;
      sampler_ckpt = *json::from_value<save_weights_for_sampler_response>(
                          f.submit_and_wait("/api/v1/save_weights_for_sampler", json::to_json(sfs)))
                          .path;
      req.model_path = sampler_ckpt;
      auto res = f.post("/api/v1/asample", req);
      future_id = json::from_json<untyped_api_future>(res.body).request_id;
      before = proto::decode_sample_response(f.wait(future_id, true).body);
    }
    engine_fixture f(test_engine_options(dir.path.string()));
    CHECK(json::from_json<training_run>(f.http->get("/api/v1/training_runs/" + model).body).training_run_id == model);
    auto list =
        json::from_json<checkpoints_list_response>(f.http->get("/api/v1/training_runs/" + model + "/checkpoints").body);
    CHECK(list.checkpoints.size() == 2);
    CHECK(f.post("/api/v1/weights_info", weights_info_request{ckpt}).status == 200);
    // The sampler checkpoint samples the same as before the restart.
    auto after = proto::decode_sample_response(
        f.wait(json::from_json<untyped_api_future>(f.post("/api/v1/asample", req).body).request_id, true).body);
    CHECK(after.sequences == before.sequences);
    // A future from the earlier run: 410 Gone (clients re-submit samples), not a confusing 404.
    f.post("/api/v1/retrieve_future", future_retrieve_request{future_id, true}, 410);
    // And a new model can load the saved state.
    const auto session = f.create_session();
    const auto copy = f.create_model(session);
    load_weights_request load;
    load.model_id = copy;
    load.seq_id = 1;
    load.path = ckpt;
    load.optimizer = true;
    f.submit_and_wait("/api/v1/load_weights", json::to_json(load));
  }

  TEST_CASE("fault injection: errors with Retry-After, dropped connections, step time") {
    auto options = test_engine_options();
    options.long_poll_hold = std::chrono::milliseconds(200);
    engine_fixture f(options);
    local::fault_options faults;
    faults.fraction_429 = 1.0;
    faults.retry_after = std::chrono::seconds(3);
    faults.error_routes = {"create_session"};
    f.engine->set_faults(faults);
    create_session_request req;
    auto limited = f.post("/api/v1/create_session", req, 429);
    CHECK(limited.header("Retry-After") == "3");
    CHECK(!limited.body.empty());
    CHECK(f.http->get("/api/v1/get_server_capabilities").status == 200);  // other routes unaffected

    faults = {};
    faults.fraction_500 = 1.0;
    faults.error_routes = {"create_session"};
    f.engine->set_faults(faults);
    f.post("/api/v1/create_session", req, 500);
    faults.fraction_500 = 0;
    faults.fraction_503 = 1.0;
    f.engine->set_faults(faults);
    f.post("/api/v1/create_session", req, 503);

    faults = {};
    faults.fraction_drop = 1.0;
    faults.error_routes = {"create_session"};
    f.engine->set_faults(faults);
    CHECK_THROWS_AS(f.http->post_raw("/api/v1/create_session", json::to_json(req), "application/json"),
                    boost::system::system_error);

    // Half the answers as 500, deterministically from the seed: roughly half over many calls.
    faults = {};
    faults.fraction_500 = 0.5;
    faults.seed = 99;
    faults.error_routes = {"get_server_capabilities"};
    f.engine->set_faults(faults);
    int errors = 0;
    for (int i = 0; i < 200; ++i) errors += f.http->get("/api/v1/get_server_capabilities").status == 500;
    CHECK(errors > 60);
    CHECK(errors < 140);

    // Simulated step time: with an hour per step, the model is still being created when a poll
    // (held for this engine's 200 ms) gives up: try_again, deterministically, without timing anything.
    faults = {};
    faults.training_step_time = std::chrono::hours(1);
    f.engine->set_faults(faults);
    const auto session = f.create_session();
    create_model_request create{session, 0, tiny_model, std::nullopt, lora_config{4, 1, true, true, true}};
    const auto id = json::from_json<untyped_api_future>(f.post("/api/v1/create_model", create).body).request_id;
    auto poll = f.post("/api/v1/retrieve_future", future_retrieve_request{id, true});
    CHECK(json::from_json<try_again_response>(poll.body).request_id == id);
    f.engine->set_faults({});
  }

}  // TEST_SUITE
