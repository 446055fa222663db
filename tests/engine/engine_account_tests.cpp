// The local engine's newer surface over real HTTP: weights_access_token and create-via-load,
// unset max_tokens, the fault-injection additions (sample step time, failing routes, 402), session
// projects, trace exports, the audit log and billing usage.
//
// Like the other engine tests, nothing here sleeps or times anything: held futures are held for an
// hour (the poll answers try_again after this engine's short hold), and hour buckets and days come
// from the engine clock frozen at a chosen time.
#include "engine_fixture.hpp"

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

using namespace tinker;
using namespace tinker::test;
using boost::beast::http::verb;

namespace {

std::string str(const boost::json::value& v) {
  REQUIRE_MESSAGE(v.is_string(), boost::json::serialize(v));
  return std::string(v.as_string());
}

/// The failure a finished future answers with ({"error", "category"}); fails the test otherwise.
request_failed_response failure_of(engine_fixture& f, const std::string& request_id) {
  auto done = f.wait(request_id);
  REQUIRE_MESSAGE(done.status == 200, done.body);
  const auto v = done.json();
  REQUIRE_MESSAGE((v.is_object() && v.as_object().contains("error")), done.body);
  return json::from_value<request_failed_response>(v);
}

std::string create_sampler(engine_fixture& f, const std::string& session, std::int64_t seq,
                           std::optional<std::string> base, std::optional<std::string> path = std::nullopt) {
  auto res = f.post("/api/v1/create_sampling_session",
                    create_sampling_session_request{session, seq, std::move(base), std::move(path)});
  return json::from_json<create_sampling_session_response>(res.body).sampling_session_id;
}

sample_request small_sample(const std::string& sampler, std::int64_t seq, int num_samples = 2, int max_tokens = 8) {
  sample_request r;
  r.prompt = model_input::from_ints({256, 72, 105});
  r.sampling_params.max_tokens = max_tokens;
  r.sampling_params.seed = 11;
  r.sampling_session_id = sampler;
  r.seq_id = seq;
  r.num_samples = num_samples;
  return r;
}

sample_response sample_now(engine_fixture& f, const sample_request& r) {
  return proto::decode_sample_response(f.wait(future_id(f.post("/api/v1/asample", r)), true).body);
}

std::string save_state(engine_fixture& f, const std::string& model, const std::string& name, std::int64_t seq) {
  save_weights_request save{model, name, seq, std::nullopt, false, std::nullopt};
  return json::from_value<save_weights_response>(f.submit_and_wait("/api/v1/save_weights", json::to_json(save))).path;
}

load_weights_request load_request(const std::string& model, std::int64_t seq, const std::string& path,
                                  std::optional<std::string> token = std::nullopt) {
  load_weights_request load;
  load.model_id = model;
  load.seq_id = seq;
  load.path = path;
  load.optimizer = true;
  load.weights_access_token = std::move(token);
  return load;
}

std::string create_session_in(engine_fixture& f, std::optional<std::string> project, metadata_map metadata = {}) {
  create_session_request req;
  req.sdk_version = "0.25.0";
  req.project_id = std::move(project);
  req.user_metadata = std::move(metadata);
  return json::from_json<create_session_response>(f.post("/api/v1/create_session", req).body).session_id;
}

/// Every file under `dir`, concatenated (to check what was persisted).
std::string all_files(const std::filesystem::path& dir) {
  std::string out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    out += s.str();
  }
  return out;
}

std::chrono::system_clock::time_point utc(int y, unsigned m, unsigned d, int h, int min) {
  using namespace std::chrono;
  return sys_days{year{y} / month{m} / day{d}} + hours{h} + minutes{min};
}

std::vector<std::string> training_run_ids(engine_fixture& f, const std::string& query) {
  auto res = f.http->get("/api/v1/training_runs" + query);
  REQUIRE_MESSAGE(res.status == 200, res.body);
  std::vector<std::string> ids;
  for (const auto& r : json::from_json<training_runs_response>(res.body).training_runs)
    ids.push_back(r.training_run_id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

}  // namespace

TEST_SUITE("engine") {
  TEST_CASE("weights_access_token: another tenant's private state loads with its owner's key as the token, only then") {
    auto seen_log = std::make_shared<std::vector<std::string>>();
    auto o = test_engine_options();
    o.log = [seen_log](const std::string& line) { seen_log->push_back(line); };
    engine_fixture f(o);
    const std::string owner_key = "tml-tenant-b-owner";
    const auto data = std::vector<datum>{engine_fixture::text_datum("private knowledge of tenant b")};

    // Tenant B trains and saves a private training state; its next forward is the reference.
    f.http->set_api_key(owner_key);
    const auto b_model = f.create_model(f.create_session());
    f.forward_backward(b_model, 1, data);
    f.optim_step(b_model, 2, 0.1);
    const auto state = save_state(f, b_model, "private", 3);
    const auto expected = loss_sum(f.forward_backward(b_model, 4, data, loss_fn_type::cross_entropy, true));

    // Tenant A cannot load it with its own key.
    f.http->set_api_key("tml-tenant-a");
    const auto session = f.create_session();
    const auto a_model = f.create_model(session);
    auto res = f.post("/api/v1/load_weights", load_request(a_model, 1, state), 404);
    CHECK(contains(detail_of(res), "not found"));
    // A token that is not a key of this engine: 403, without echoing it.
    res = f.post("/api/v1/load_weights", load_request(a_model, 2, state, "not-a-key-xyzzy"), 403);
    CHECK(contains(detail_of(res), "weights_access_token"));
    CHECK(!contains(res.body, "xyzzy"));
    // A valid key of a third tenant (which does not own it): authorized against that tenant, 404.
    f.post("/api/v1/load_weights", load_request(a_model, 3, state, "tml-tenant-c"), 404);
    // B's key as the token: it loads, and the next forward equals B's.
    f.submit_and_wait("/api/v1/load_weights", json::to_json(load_request(a_model, 4, state, owner_key)));
    CHECK(loss_sum(f.forward_backward(a_model, 5, data, loss_fn_type::cross_entropy, true)) == expected);

    // Create-via-load takes the token too (and refuses without it).
    load_weights_request via;
    via.session_id = session;
    via.model_seq_id = 1;
    via.path = state;
    via.optimizer = true;
    f.post("/api/v1/load_weights", via, 404);
    via.model_seq_id = 2;
    via.weights_access_token = owner_key;
    auto v = f.submit_and_wait("/api/v1/load_weights", json::to_json(via));
    CHECK(json::from_value<load_weights_response>(v).model_id == session + ":train:2");
    CHECK(loss_sum(f.forward_backward(session + ":train:2", 1, data, loss_fn_type::cross_entropy, true)) == expected);

    // The token is neither kept nor logged; the checkpoint stays B's and private.
    CHECK(!contains(all_files(f.engine->data_dir()), owner_key));
    for (const auto& line : *seen_log) CHECK(!contains(line, owner_key));
    f.post("/api/v1/weights_info", weights_info_request{state}, 404);
  }

  TEST_CASE("weights_access_token in allowlist mode must be a listed key") {
    auto o = test_engine_options();
    o.api_keys = {"tml-listed-a", "tml-listed-b"};
    engine_fixture f(o);
    f.http->set_api_key("tml-listed-b");
    const auto b_model = f.create_model(f.create_session());
    const auto state = save_state(f, b_model, "s", 1);
    f.http->set_api_key("tml-listed-a");
    const auto a_model = f.create_model(f.create_session());
    auto res = f.post("/api/v1/load_weights", load_request(a_model, 1, state, "tml-not-listed"), 403);
    CHECK(!contains(res.body, "tml-not-listed"));
    f.submit_and_wait("/api/v1/load_weights", json::to_json(load_request(a_model, 2, state, "tml-listed-b")));
  }

  TEST_CASE("create-via-load: one load_weights creates the model from a checkpoint as its operation 0") {
    auto o = test_engine_options();
    o.offer_create_via_load = true;
    engine_fixture f(o);
    auto config =
        json::from_json<client_config_response>(f.post("/api/v1/client/config", client_config_request{"0.25.0"}).body);
    CHECK(config.create_model_via_load_weights);
    const auto session = f.create_session();
    const auto source = f.create_model(session, 0, 8);
    const auto data = std::vector<datum>{engine_fixture::text_datum("created by loading")};
    f.forward_backward(source, 1, data);
    f.optim_step(source, 2, 0.1);
    const auto state = save_state(f, source, "s", 3);
    f.forward_backward(source, 4, data);
    f.optim_step(source, 5, 0.1);
    const auto expected = loss_sum(f.forward_backward(source, 6, data, loss_fn_type::cross_entropy, true));

    load_weights_request via;
    via.session_id = session;
    via.model_seq_id = 1;
    via.path = state;
    via.optimizer = true;
    const auto first = future_id(f.post("/api/v1/load_weights", via));
    CHECK(future_id(f.post("/api/v1/load_weights", via)) == first);  // an identical retry: the same future
    REQUIRE(f.wait(first).status == 200);
    const auto model = session + ":train:1";
    CHECK(json::from_json<get_info_response>(f.post("/api/v1/get_info", get_info_request{model}).body).lora_rank ==
          8);  // the checkpoint's LoRA
    // Its next operation is seq_id 1, and with the optimizer state it trains exactly like the source.
    f.forward_backward(model, 1, data);
    f.optim_step(model, 2, 0.1);
    CHECK(loss_sum(f.forward_backward(model, 3, data, loss_fn_type::cross_entropy, true)) == expected);
    // The model id is taken now; a sampler checkpoint cannot be loaded.
    auto again = via;
    again.optimizer = false;
    CHECK(contains(detail_of(f.post("/api/v1/load_weights", again, 400)), "model_seq_id 1"));
    via.model_seq_id = 2;
    via.path = "tinker://" + source + "/sampler_weights/x";
    CHECK(contains(detail_of(f.post("/api/v1/load_weights", via, 400)), "training-state checkpoint"));
  }

  TEST_CASE(
      "sampling_params.max_tokens may be unset: samples run to a stop or the context limit, within the work limit") {
    engine_fixture f;
    const auto sampler = create_sampler(f, f.create_session(), 0, tiny_model);
    auto r = small_sample(sampler, 0, 4);
    r.sampling_params.max_tokens.reset();
    const auto context = 4096u;
    const auto prompt = r.prompt.length();
    const auto out = sample_now(f, r);
    REQUIRE(out.sequences.size() == 4);
    for (const auto& s : out.sequences) {
      CHECK(prompt + s.tokens.size() <= context);
      if (s.stop_reason == stop_reason::length) {
        CHECK(prompt + s.tokens.size() == context);
      } else {
        REQUIRE(s.stop_reason == stop_reason::stop);
        REQUIRE(!s.tokens.empty());
        CHECK(s.tokens.back() == byte_tokenizer::eos_token);
      }
    }
    // Explicit null over JSON, with a stop token: ends at the stop.
    boost::json::object body = boost::json::value_from(small_sample(sampler, 1, 1)).as_object();
    body["sampling_params"].as_object()["max_tokens"] = nullptr;
    body["sampling_params"].as_object()["stop"] = boost::json::array{105, 72, 65, 97, 101, 32};
    auto stopped = proto::decode_sample_response(
        f.wait(future_id(f.http->post_raw("/api/v1/asample", boost::json::serialize(body), "application/json")), true)
            .body);
    REQUIRE(stopped.sequences.size() == 1);
    CHECK(prompt + stopped.sequences[0].tokens.size() <= context);
    // Unset, num_samples x (context - prompt) beyond the per-request limit: 400 saying so.
    r = small_sample(sampler, 2, 2000);
    r.sampling_params.max_tokens.reset();
    auto res = f.post("/api/v1/asample", r, 400);
    CHECK(contains(detail_of(res), "max_tokens"));
    CHECK(contains(detail_of(res), "unset"));
    // Unset with a prompt that fills the context: nothing to sample, 400.
    r = small_sample(sampler, 3, 1);
    r.sampling_params.max_tokens.reset();
    r.prompt = model_input::from_ints(std::vector<token_id>(context, 65));
    CHECK(contains(detail_of(f.post("/api/v1/asample", r, 400)), "unset"));
    CHECK(f.hook().pending_sample_count() == 0);
  }

  TEST_CASE("fault injection: sample_step_time holds sample results back") {
    auto o = test_engine_options();
    o.long_poll_hold = std::chrono::milliseconds(200);
    engine_fixture f(o);
    const auto session = f.create_session();
    const auto held_sampler = create_sampler(f, session, 0, tiny_model);
    local::fault_options faults;
    faults.sample_step_time = std::chrono::hours(1);
    f.engine->set_faults(faults);
    const auto id = future_id(f.post("/api/v1/asample", small_sample(held_sampler, 0)));
    // An hour per batch: the poll (held for 200 ms) answers try_again, deterministically.
    auto poll = f.post("/api/v1/retrieve_future", future_retrieve_request{id, true});
    CHECK(is_try_again(poll));
    CHECK(f.hook().pending_sample_count() == 1);
    // Without it, samples answer.
    f.engine->set_faults({});
    const auto other = create_sampler(f, session, 1, tiny_model);
    CHECK(sample_now(f, small_sample(other, 0)).sequences.size() == 2);
    CHECK(f.hook().pending_sample_count() == 1);  // the held one is still held
  }

  TEST_CASE("fault injection: fail_routes fails those futures instead of running them, the queue goes on") {
    engine_fixture f;
    const auto session = f.create_session();
    const auto model = f.create_model(session);
    const auto data = std::vector<datum>{engine_fixture::text_datum("fail the step")};
    const auto before = loss_sum(f.forward_backward(model, 1, data));  // accumulates a gradient
    local::fault_options faults;
    faults.fail_routes = {{"optim_step", error_category::user}, {"asample", error_category::server}};
    f.engine->set_faults(faults);
    adam_params p;
    p.learning_rate = 0.5;
    const auto failed = failure_of(f, future_id(f.post("/api/v1/optim_step", optim_step_request{p, model, 2})));
    CHECK(failed.category == error_category::user);
    CHECK(contains(failed.error, "injected failure"));
    CHECK(contains(failed.error, "optim_step"));
    // The seq_id was used up: the next operation runs, on weights the failed step did not change.
    CHECK(loss_sum(f.forward_backward(model, 3, data, loss_fn_type::cross_entropy, true)) == before);
    const auto sampler = create_sampler(f, session, 0, tiny_model);
    const auto sample_failure = failure_of(f, future_id(f.post("/api/v1/asample", small_sample(sampler, 0))));
    CHECK(sample_failure.category == error_category::server);
    CHECK(contains(sample_failure.error, "injected failure"));
    CHECK(f.hook().pending_sample_count() == 0);
    f.engine->set_faults({});
    f.optim_step(model, 4, 0.05);  // runs now: the weights change
    CHECK(loss_sum(f.forward_backward(model, 5, data, loss_fn_type::cross_entropy, true)) != before);
    CHECK(sample_now(f, small_sample(sampler, 1)).sequences.size() == 2);
  }

  TEST_CASE("fault injection: fraction_402 answers payment required on the chosen routes") {
    engine_fixture f;
    local::fault_options faults;
    faults.fraction_402 = 1.0;
    faults.error_routes = {"create_session"};
    f.engine->set_faults(faults);
    create_session_request req;
    auto res = f.post("/api/v1/create_session", req, 402);
    CHECK(detail_of(res) == "billing: payment required (injected fault)");
    CHECK(f.http->get("/api/v1/get_server_capabilities").status == 200);
    f.engine->set_faults({});
    f.post("/api/v1/create_session", req, 200);
  }

  TEST_CASE("session projects: PUT sessions/id/project, training_runs filtered by project_id, persisted") {
    temp_dir dir;
    std::string alpha_run, beta_run, none_run, beta_session;
    {
      engine_fixture f(test_engine_options(dir.path.string()));
      const auto alpha = create_session_in(f, "alpha");
      beta_session = create_session_in(f, std::nullopt);
      const auto none = create_session_in(f, std::nullopt);
      alpha_run = f.create_model(alpha);
      beta_run = f.create_model(beta_session);
      none_run = f.create_model(none);
      const auto route = "/api/v1/sessions/" + beta_session + "/project";
      auto ok = f.http->put(route, boost::json::object{{"project_id", "beta"}});
      REQUIRE_MESSAGE(ok.status == 200, ok.body);
      CHECK(ok.body == "{}");
      CHECK(contains(detail_of(f.http->put(route, boost::json::object{{"project_id", ""}})), "project_id"));
      CHECK(f.http->put(route, boost::json::object{{"project_id", ""}}).status == 400);
      CHECK(f.http->put(route, boost::json::object{}).status == 400);
      CHECK(f.http->put("/api/v1/sessions/no-such-session/project", boost::json::object{{"project_id", "x"}}).status ==
            404);
      CHECK(training_run_ids(f, "?project_id=alpha") == std::vector<std::string>{alpha_run});
      CHECK(training_run_ids(f, "?project_id=beta") == std::vector<std::string>{beta_run});
      CHECK(training_run_ids(f, "?project_id=gamma").empty());
      CHECK(training_run_ids(f, "").size() == 3);
      // Another tenant: not its session, and its project filter sees nothing of ours.
      f.http->set_api_key("tml-other-tenant");
      CHECK(f.http->put(route, boost::json::object{{"project_id", "mine"}}).status == 404);
      CHECK(training_run_ids(f, "?project_id=beta&access_scope=accessible").empty());
    }
    engine_fixture f(test_engine_options(dir.path.string()));
    CHECK(training_run_ids(f, "?project_id=beta") == std::vector<std::string>{beta_run});
    CHECK(training_run_ids(f, "?project_id=alpha") == std::vector<std::string>{alpha_run});
    // Moving it to another project.
    REQUIRE(f.http->put("/api/v1/sessions/" + beta_session + "/project", boost::json::object{{"project_id", "alpha"}})
                .status == 200);
    auto both = std::vector<std::string>{alpha_run, beta_run};
    std::sort(both.begin(), both.end());
    CHECK(training_run_ids(f, "?project_id=alpha") == both);
    CHECK(f.http->get("/api/v1/training_runs?project_id=").status == 400);
  }

  TEST_CASE(
      "trace_export: a signed URL whose GET without a key describes the session, refused when tampered or expired") {
    engine_fixture f;
    const auto session = f.create_session();
    const auto model = f.create_model(session);
    const auto data = std::vector<datum>{engine_fixture::text_datum("trace me")};
    f.forward_backward(model, 1, data);
    f.forward_backward(model, 2, data);
    f.optim_step(model, 3);
    for (int i = 0; i < 3; ++i) f.post("/api/v1/session_heartbeat", session_heartbeat_request{session});
    const auto sampler = create_sampler(f, session, 0, tiny_model);
    sample_now(f, small_sample(sampler, 0));

    auto res = f.http->get("/api/v1/sessions/" + session + "/trace_export");
    REQUIRE_MESSAGE(res.status == 200, res.body);
    const auto exp = json::from_json<trace_export_response>(res.body);
    CHECK(exp.status == trace_export_status::ready);
    REQUIRE(exp.url);
    REQUIRE(contains(*exp.url, "/downloads/"));
    CHECK(exp.url->starts_with(f.engine->base_url()));
    const auto target = exp.url->substr(exp.url->find("/downloads/"));

    f.http->set_api_key("");  // signed URLs need no key
    auto doc_res = f.http->get(target);
    REQUIRE_MESSAGE(doc_res.status == 200, doc_res.body);
    CHECK(contains(doc_res.header("Content-Type"), "application/json"));
    const auto doc = doc_res.json().as_object();
    CHECK(str(doc.at("session_id")) == session);
    CHECK(doc.contains("created"));
    CHECK(doc.at("heartbeat_count") == 3);
    const auto& runs = doc.at("training_runs").as_array();
    REQUIRE(runs.size() == 1);
    const auto& run = runs[0].as_object();
    CHECK(str(run.at("training_run_id")) == model);
    const auto& counts = run.at("request_counts").as_object();
    CHECK(counts.at("forward_backward") == 2);
    CHECK(counts.at("optim_step") == 1);
    CHECK(counts.at("create_model") == 1);
    const auto& samplers = doc.at("samplers").as_array();
    REQUIRE(samplers.size() == 1);
    CHECK(str(samplers[0].as_object().at("sampler_id")) == sampler);
    CHECK(samplers[0].as_object().at("request_counts").as_object().at("asample") == 1);

    // Tampered: another session under the same signature, or another signature.
    const auto other_session = [&] {
      f.http->set_api_key("tml-test-key");
      auto id = f.create_session();
      f.http->set_api_key("");
      return id;
    }();
    auto tampered = target;
    tampered.replace(tampered.find(session), session.size(), other_session);
    CHECK(f.http->get(tampered).status == 403);
    auto bad_signature = target;
    const auto sig = bad_signature.find("signature=") + 10;
    bad_signature[sig] = bad_signature[sig] == '0' ? '1' : '0';
    CHECK(f.http->get(bad_signature).status == 403);
    CHECK(f.http->get(target.substr(0, target.find('?'))).status == 403);
    // Expired after its lifetime (one hour by default).
    f.clock.advance(std::chrono::minutes(61));
    CHECK(contains(detail_of(f.http->get(target)), "expired"));

    // Unknown sessions and other tenants' sessions: 404.
    f.http->set_api_key("tml-test-key");
    CHECK(f.http->get("/api/v1/sessions/no-such-session/trace_export").status == 404);
    f.http->set_api_key("tml-other-tenant");
    CHECK(f.http->get("/api/v1/sessions/" + session + "/trace_export").status == 404);
  }

  TEST_CASE(
      "audit log: checkpoint events, session and model creation, day filter, bad queries, persisted and bounded") {
    temp_dir dir;
    std::string model, path;
    auto o = test_engine_options(dir.path.string());
    {
      engine_fixture f(o);
      f.clock.freeze_at(utc(2030, 3, 4, 10, 30));
      const auto session = f.create_session();
      model = f.create_model(session);
      path = save_state(f, model, "audited", 1);
      const auto route = "/api/v1/training_runs/" + model + "/checkpoints/weights/audited";
      REQUIRE(f.http->post_raw(route + "/publish", "", "application/json").status == 200);
      REQUIRE(f.http->request(verb::delete_, route + "/publish").status == 200);
      REQUIRE(f.http->put(route + "/ttl", boost::json::object{{"ttl_seconds", 3600}}).status == 200);
      REQUIRE(f.http->get(route + "/archive").status == 302);
      REQUIRE(f.http->del(route).status == 200);
      // A TTL expiry is a delete too.
      save_state(f, model, "expiring", 2);
      REQUIRE(f.http
                  ->put("/api/v1/training_runs/" + model + "/checkpoints/weights/expiring/ttl",
                        boost::json::object{{"ttl_seconds", 60}})
                  .status == 200);
      f.clock.advance(std::chrono::seconds(61));
      f.engine->run_maintenance();

      auto entries =
          json::from_json<audit_log_response>(f.http->get("/api/v1/audit?event_type=checkpoints").body).entries;
      std::vector<std::string> events;
      for (const auto& e : entries) events.push_back(e.event);
      CHECK(events == std::vector<std::string>{"checkpoint_create", "checkpoint_publish", "checkpoint_unpublish",
                                               "checkpoint_ttl_set", "checkpoint_read", "checkpoint_delete",
                                               "checkpoint_create", "checkpoint_ttl_set", "checkpoint_delete"});
      REQUIRE(entries.size() == 9);
      for (std::size_t i = 0; i < 6; ++i) {
        CHECK(entries[i].tinker_path == path);
        CHECK(entries[i].model_id == model);
      }
      CHECK(entries[4].purpose == "archive_download");
      CHECK(entries[5].purpose == "user_request");
      CHECK(entries[8].purpose == "ttl_expired");
      REQUIRE(entries[3].event_details);
      CHECK(entries[3].event_details->at("ttl_seconds") == 3600);
      CHECK(format_timestamp(entries[0].timestamp) == "2030-03-04T10:30:00.000000Z");

      auto all = json::from_json<audit_log_response>(f.http->get("/api/v1/audit?event_type=all").body).entries;
      REQUIRE(all.size() == 11);
      CHECK(all[0].event == "session_create");
      REQUIRE(all[0].event_details);
      CHECK(str(all[0].event_details->at("session_id")) == session);
      CHECK(!all[0].tinker_path);
      CHECK(all[1].event == "model_create");
      CHECK(str(all[1].event_details->at("model_id")) == model);
      CHECK(json::from_json<audit_log_response>(f.http->get("/api/v1/audit?event_type=all&day=2030-03-04").body)
                .entries.size() == 11);
      CHECK(json::from_json<audit_log_response>(f.http->get("/api/v1/audit?event_type=all&day=2030-03-05").body)
                .entries.empty());
      for (const auto* bad :
           {"?event_type=everything", "?event_type=all&day=2030-13-01", "?event_type=all&day=20300304",
            "?event_type=all&day=2030-02-30", "?event_type=all&day=2030-3-4"}) {
        CAPTURE(bad);
        auto res = f.http->get(std::string("/api/v1/audit") + bad);
        CHECK(res.status == 400);
        CHECK(contains(detail_of(res), contains(bad, "day") ? "day" : "event_type"));
      }
      // Each tenant sees only its own.
      f.http->set_api_key("tml-other-tenant");
      CHECK(json::from_json<audit_log_response>(f.http->get("/api/v1/audit?event_type=all").body).entries.empty());
    }
    {
      engine_fixture f(o);  // kept across a restart
      CHECK(json::from_json<audit_log_response>(f.http->get("/api/v1/audit?event_type=all").body).entries.size() == 11);
    }
    // Bounded: only the last audit_log_limit entries per tenant, in memory and on disk.
    o.audit_log_limit = 4;
    std::vector<std::string> sessions;
    {
      engine_fixture f(o);
      for (int i = 0; i < 12; ++i) sessions.push_back(f.create_session());
      auto entries = json::from_json<audit_log_response>(f.http->get("/api/v1/audit?event_type=all").body).entries;
      REQUIRE(entries.size() == 4);
      CHECK(str(entries.back().event_details->at("session_id")) == sessions.back());
    }
    engine_fixture f(o);
    auto entries = json::from_json<audit_log_response>(f.http->get("/api/v1/audit?event_type=all").body).entries;
    REQUIRE(entries.size() == 4);
    CHECK(str(entries.front().event_details->at("session_id")) == sessions[8]);
    std::size_t lines = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.path / "audit")) {
      std::ifstream in(e.path());
      for (std::string line; std::getline(in, line);) ++lines;
    }
    CHECK(lines <= 2 * 4);  // the file is compacted to what is kept
  }

  TEST_CASE("billing usage events: hourly buckets per session and base model with token counts, window checks") {
    engine_fixture f;
    f.clock.freeze_at(utc(2030, 3, 4, 10, 30));
    const auto session = create_session_in(f, "billing-project", metadata_map{{"team", "rl"}});
    const auto model = f.create_model(session);
    const auto d1 = engine_fixture::text_datum("count these tokens");
    const auto d2 = engine_fixture::text_datum("and these");
    const auto training_tokens = static_cast<std::int64_t>(d1.model_input.length() + d2.model_input.length());
    f.forward_backward(model, 1, {d1, d2});
    f.forward_backward(model, 2, {d1}, loss_fn_type::cross_entropy, true);  // forward only: not billed
    save_state(f, model, "billed", 3);
    const auto sampler = create_sampler(f, session, 0, tiny_model);
    const auto out = sample_now(f, small_sample(sampler, 0, 3, 5));
    std::int64_t sampled = 0;
    for (const auto& s : out.sequences) sampled += static_cast<std::int64_t>(s.tokens.size());

    auto usage = [&](const std::string& from, const std::string& to) {
      auto res = f.http->get("/api/v1/billing/usage/events?starting_on=" + from + "&ending_before=" + to);
      REQUIRE_MESSAGE(res.status == 200, res.body);
      return json::from_json<billing_usage_response>(res.body);
    };
    const auto resp = usage("2030-03-04T10:00:00Z", "2030-03-04T11:00:00Z");
    std::map<std::string, billing_event_info> by_type;
    for (const auto& e : resp.data) {
      CHECK(format_timestamp(e.bucket_start) == "2030-03-04T10:00:00.000000Z");
      CHECK(format_timestamp(e.bucket_end) == "2030-03-04T11:00:00.000000Z");
      CHECK(e.session_id == session);
      CHECK(e.base_model == std::string(tiny_model));
      CHECK(e.project_id == "billing-project");
      const auto type = std::visit(
          [](const auto& i) -> std::string {
            using T = std::decay_t<decltype(i)>;
            if constexpr (std::is_same_v<T, billing_training_usage>)
              return "training";
            else if constexpr (std::is_same_v<T, billing_sampling_prefill_usage>)
              return "sampling_prefill";
            else if constexpr (std::is_same_v<T, billing_sampling_sample_usage>)
              return "sampling_sample";
            else if constexpr (std::is_same_v<T, billing_checkpoint_usage>)
              return "checkpoint";
            else
              return "other";
          },
          e.event_info);
      CHECK_MESSAGE(!by_type.contains(type), type);
      by_type.emplace(type, e.event_info);
    }
    REQUIRE(by_type.size() == 4);
    CHECK(std::get<billing_training_usage>(by_type.at("training")).token_count == training_tokens);
    CHECK(std::get<billing_sampling_prefill_usage>(by_type.at("sampling_prefill")) ==
          billing_sampling_prefill_usage{false, 3});
    CHECK(std::get<billing_sampling_sample_usage>(by_type.at("sampling_sample")).token_count == sampled);
    CHECK(std::get<billing_checkpoint_usage>(by_type.at("checkpoint")).count == 1);
    REQUIRE(resp.sessions.contains(session));
    CHECK(resp.sessions.at(session).user_metadata == metadata_map{{"team", "rl"}});

    // The hour before is empty; the next hour gets its own bucket.
    CHECK(usage("2030-03-04T09:00:00Z", "2030-03-04T10:00:00Z").data.empty());
    f.clock.advance(std::chrono::hours(1));
    sample_now(f, small_sample(sampler, 1, 1, 4));
    const auto two_hours = usage("2030-03-04T10:00:00Z", "2030-03-04T12:00:00Z");
    std::set<std::string> buckets;
    for (const auto& e : two_hours.data) buckets.insert(format_timestamp(e.bucket_start));
    CHECK(buckets == std::set<std::string>{"2030-03-04T10:00:00.000000Z", "2030-03-04T11:00:00.000000Z"});
    CHECK(usage("2030-03-04T11:00:00Z", "2030-03-04T12:00:00Z").data.size() == 2);  // prefill + sample

    // Bad windows: 400 naming the parameter.
    auto refused = [&](const std::string& query, const std::string& needle) {
      CAPTURE(query);
      auto res = f.http->get("/api/v1/billing/usage/events" + query);
      CHECK(res.status == 400);
      CHECK(contains(detail_of(res), needle));
    };
    refused("?starting_on=2030-03-04T10:30:00Z&ending_before=2030-03-04T11:00:00Z", "starting_on");  // not hour-aligned
    refused("?starting_on=2030-03-04T10:00:00Z&ending_before=2030-03-04T10:00:05Z",
            "ending_before");  // not hour-aligned
    refused("?starting_on=2030-03-04T11:00:00Z&ending_before=2030-03-04T10:00:00Z",
            "ending_before");  // before the start
    refused("?starting_on=2030-02-01T00:00:00Z&ending_before=2030-02-16T00:00:00Z", "14 days");
    refused("?starting_on=2030-03-04T12:00:00Z&ending_before=2030-03-04T13:00:00Z", "starting_on");    // in the future
    refused("?starting_on=2030-03-04T10:00:00Z&ending_before=2030-03-04T13:00:00Z", "ending_before");  // in the future
    refused("?ending_before=2030-03-04T11:00:00Z", "starting_on");
    refused("?starting_on=yesterday&ending_before=2030-03-04T11:00:00Z", "starting_on");
    // Another tenant has no usage.
    f.http->set_api_key("tml-other-tenant");
    CHECK(usage("2030-03-04T10:00:00Z", "2030-03-04T12:00:00Z").data.empty());
  }

}  // TEST_SUITE
