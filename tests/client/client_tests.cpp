// The client library against the local engine, in-process, over real loopback sockets: training
// and RL loops that learn, concurrency, ordering, chunking, custom losses, exact resume, sampler
// immutability, the REST surface, cancellation, TLS, JSON and protobuf, retries and back-pressure
// under injected faults, and user errors caught before sending.
#include "client/client_fixture.hpp"
#include "common/test_certs.hpp"

#include <tinker/local/engine.hpp>
#include <tinker/tinker.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <numeric>
#include <set>

using namespace tinker;
using namespace tinker::test;
namespace asio = boost::asio;

TEST_SUITE("client") {
  TEST_CASE("an SFT loop: forward_backward and optim_step queued back to back, the loss falls") {
    client_fixture f;
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 8});
      CHECK(training.model_id().find(":train:0") != std::string::npos);
      const std::vector<datum> batch{text_datum("a stitch in time saves nine"), text_datum("look before you leap")};
      std::vector<double> losses;
      for (int step = 0; step < 30; ++step) {
        auto fwd = co_await training.forward_backward(batch, loss_fn_type::cross_entropy);
        auto opt = co_await training.optim_step({.learning_rate = 0.05});
        losses.push_back(loss_of(co_await fwd.result()));
        (void)co_await opt.result();
      }
      CHECK(losses.back() < 0.5 * losses.front());
      auto tok = co_await training.get_tokenizer();
      CHECK(tok.decode(tok.encode("round trip")) == "round trip");
    }());
  }

  TEST_CASE("an RL loop: sampling, importance-sampling updates, the reward rises") {
    client_fixture f;
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 8, .seed = 7});
      const model_input prompt = model_input::from_ints({byte_tokenizer::bos_token});
      auto reward = [](const std::vector<token_id>& tokens) {
        double lower = 0;
        for (auto t : tokens) lower += (t >= 'a' && t <= 'z');
        return tokens.empty() ? 0.0 : lower / static_cast<double>(tokens.size());
      };
      std::vector<double> mean_rewards;
      for (int iteration = 0; iteration < 25; ++iteration) {
        auto sampler = co_await training.save_weights_and_get_sampling_client();
        auto resp =
            co_await sampler.sample(prompt, 16, sampling_params(8).with_seed(static_cast<std::uint64_t>(iteration)));
        std::vector<double> rewards;
        for (const auto& s : resp.sequences) rewards.push_back(reward(s.tokens));
        const double mean = std::accumulate(rewards.begin(), rewards.end(), 0.0) / static_cast<double>(rewards.size());
        mean_rewards.push_back(mean);
        std::vector<datum> batch;
        for (std::size_t i = 0; i < resp.sequences.size(); ++i) {
          const auto& s = resp.sequences[i];
          if (s.tokens.empty()) continue;
          std::vector<token_id> input{byte_tokenizer::bos_token};
          input.insert(input.end(), s.tokens.begin(), s.tokens.end() - 1);
          datum d;
          d.model_input = model_input::from_ints(std::move(input));
          d.loss_fn_inputs.emplace("target_tokens",
                                   tensor_data(std::vector<std::int64_t>(s.tokens.begin(), s.tokens.end())));
          d.loss_fn_inputs.emplace("logprobs", tensor_data(*s.logprobs));
          d.loss_fn_inputs.emplace(
              "advantages", tensor_data(std::vector<float>(s.tokens.size(), static_cast<float>(rewards[i] - mean))));
          batch.push_back(std::move(d));
        }
        auto fwd = co_await training.forward_backward(batch, loss_fn_type::importance_sampling);
        auto opt = co_await training.optim_step({.learning_rate = 0.02});
        (void)co_await fwd.result();
        (void)co_await opt.result();
      }
      const double early = (mean_rewards[0] + mean_rewards[1] + mean_rewards[2]) / 3;
      const double late = (mean_rewards[22] + mean_rewards[23] + mean_rewards[24]) / 3;
      CAPTURE(early);
      CAPTURE(late);
      CHECK(late > early + 0.2);
    }());
  }

  TEST_CASE("1000 concurrent samples across 4 training clients on one thread") {
    client_fixture f;
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      std::vector<sampling_client> samplers;
      for (int i = 0; i < 4; ++i) {
        auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4, .seed = i});
        samplers.push_back(co_await training.save_weights_and_get_sampling_client());
      }
      std::vector<api_future<sample_response>> futures;
      for (int i = 0; i < 1000; ++i)
        futures.push_back(samplers[static_cast<std::size_t>(i % 4)].submit_sample(
            model_input::from_ints({byte_tokenizer::bos_token, 'A' + i % 26}), 2,
            sampling_params(4).with_seed(static_cast<std::uint64_t>(i))));
      std::size_t sequences = 0;
      for (auto& fut : futures) {
        auto resp = co_await fut.result();
        CHECK(resp.sequences.size() == 2);
        sequences += resp.sequences.size();
        for (const auto& s : resp.sequences) CHECK(s.sequence_id.has_value());
      }
      CHECK(sequences == 2000);
    }());
    CHECK(f.hook().request_count("asample") == 1000);
    // Concurrent samples on the same weights share compute tasks.
    MESSAGE("1000 samples ran in " << f.hook().sample_batch_count() << " compute batches");
    CHECK(f.hook().sample_batch_count() < 500);
  }

  TEST_CASE("seq_id order holds when results are awaited out of order and callers interleave") {
    client_fixture f;
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
      const std::vector<datum> batch{text_datum("order order order")};
      auto before = co_await training.forward(batch, loss_fn_type::cross_entropy);
      auto during = co_await training.forward_backward(batch, loss_fn_type::cross_entropy);
      auto step = co_await training.optim_step({.learning_rate = 0.1});
      auto after = co_await training.forward(batch, loss_fn_type::cross_entropy);
      // Awaited in reverse.
      const auto l_after = loss_of(co_await after.result());
      (void)co_await step.result();
      const auto l_during = loss_of(co_await during.result());
      const auto l_before = loss_of(co_await before.result());
      CHECK(l_before == l_during);
      CHECK(l_after < l_before);

      // Two coroutines calling at once: calls keep their call order (submission happens in order).
      std::vector<std::string> order;
      auto caller = [&](std::string name) -> asio::awaitable<void> {
        auto fut = co_await training.forward(batch, loss_fn_type::cross_entropy);
        order.push_back(name);
        (void)co_await fut.result();
      };
      using namespace asio::experimental::awaitable_operators;
      co_await (caller("first") && caller("second") && caller("third"));
      CHECK(order == std::vector<std::string>{"first", "second", "third"});
    }());
  }

  TEST_CASE(
      "on the wire: seq_ids consecutive in call order, the first chunk posted last, polls carry the SDK's headers") {
    request_log wire;
    auto eo = engine_opts();
    eo.fwdbwd_max_chunk_len = 2;
    eo.on_request = wire.observer();
    client_fixture f(eo);
    std::string model;
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
      model = training.model_id();
      std::vector<datum> batch;
      for (int i = 0; i < 5; ++i) batch.push_back(text_datum("chunk " + std::to_string(i)));
      auto fwd = co_await training.forward_backward(batch, loss_fn_type::cross_entropy);  // seq 1-3 (three chunks)
      auto opt = co_await training.optim_step({.learning_rate = 0.01});                   // seq 4
      std::vector<api_future<forward_backward_output>> concurrent;
      auto caller = [&]() -> asio::awaitable<void> {
        concurrent.push_back(co_await training.forward(one(text_datum("x")), loss_fn_type::cross_entropy));
      };
      using namespace asio::experimental::awaitable_operators;
      co_await (caller() && caller() && caller());       // seq 5-7
      auto save = co_await training.save_state("wire");  // seq 8
      (void)co_await fwd.result();
      (void)co_await opt.result();
      for (auto& c : concurrent) (void)co_await c.result();
      (void)co_await save.result();
    }());
    const auto records = wire.snapshot();
    std::vector<std::int64_t> seqs;
    std::map<std::string, std::vector<const local::request_record*>> polls;  // by request id, in order
    for (const auto& r : records) {
      if (r.model_id == model && r.seq_id && r.route != "retrieve_future") {
        seqs.push_back(*r.seq_id);
        CHECK(r.headers.count("x-idempotency-key") == 1);
        CHECK(r.headers.at("x-stainless-retry-count") == "0");
      }
      if (r.route == "retrieve_future" && r.request_id) polls[*r.request_id].push_back(&r);
    }
    REQUIRE(seqs.size() == 8);
    CHECK(std::set<std::int64_t>(seqs.begin(), seqs.begin() + 2) == std::set<std::int64_t>{2, 3});
    CHECK(seqs[2] == 1);  // the head of the batch arrives last, when the whole batch is queued
    CHECK(std::vector<std::int64_t>(seqs.begin() + 3, seqs.end()) == std::vector<std::int64_t>{4, 5, 6, 7, 8});
    std::set<std::string> types;
    for (const auto& [id, list] : polls) {
      for (std::size_t i = 0; i < list.size(); ++i) {
        const auto& h = list[i]->headers;
        CHECK(h.at("x-tinker-request-iteration") == std::to_string(i));
        CHECK(h.count("x-tinker-create-promise-roundtrip-time") == (i == 0 ? 1u : 0u));
        const auto type = h.at("x-tinker-request-type");
        types.insert(type);
        const bool proto_result = type == "ForwardBackward" || type == "Forward";
        CHECK((h.at("accept").find("application/x-protobuf") != std::string::npos) == proto_result);
      }
      const auto roundtrip = std::stod(list[0]->headers.at("x-tinker-create-promise-roundtrip-time"));
      CHECK(roundtrip > 0);  // the submission's round trip, measured
      CHECK(roundtrip < 60);
    }
    CHECK(types == std::set<std::string>{"CreateModel", "ForwardBackward", "OptimStep", "Forward", "SaveWeights"});
  }

  TEST_CASE("big batches are chunked, posted concurrently, and merged in order") {
    auto eo = engine_opts();
    eo.fwdbwd_max_chunk_len = 2;
    client_fixture f(eo);
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
      std::vector<datum> batch;
      for (int i = 0; i < 5; ++i)
        batch.push_back(text_datum("datum number " + std::to_string(i) + std::string(i, '!')));
      auto fut = co_await training.forward(batch, loss_fn_type::cross_entropy);
      CHECK(fut.request_ids().size() == 3);
      auto merged = co_await fut.result();
      REQUIRE(merged.loss_fn_outputs.size() == 5);
      double sum = 0;
      for (std::size_t i = 0; i < batch.size(); ++i) {
        auto single = co_await (co_await training.forward(one(batch[i]), loss_fn_type::cross_entropy)).result();
        CHECK(single.loss_fn_outputs[0].at("logprobs") == merged.loss_fn_outputs[i].at("logprobs"));
        sum += loss_of(single);
      }
      CHECK(std::abs(loss_of(merged) - sum) < 1e-3);
    }());
    CHECK(f.hook().request_count("forward_backward") == 3 + 5);
  }

  TEST_CASE("forward_backward_custom with the cross-entropy gradient equals the built-in loss") {
    client_fixture f;
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto builtin = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4, .seed = 5});
      auto custom = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4, .seed = 5});
      const std::vector<datum> batch{text_datum("custom losses are losses too"), text_datum("yes")};
      const custom_loss_fn ce_loss = [](std::span<const datum> data, std::span<const std::vector<float>> logprobs) {
        custom_loss_result r;
        for (std::size_t i = 0; i < data.size(); ++i) {
          auto w = data[i].loss_fn_inputs.at("weights").to_dense<float>();
          std::vector<float> grad(logprobs[i].size());
          for (std::size_t j = 0; j < grad.size(); ++j) {
            r.loss -= w[j] * logprobs[i][j];
            grad[j] = -w[j];
          }
          r.logprob_gradients.push_back(std::move(grad));
        }
        r.metrics["custom_loss"] = r.loss;
        return r;
      };
      for (int step = 0; step < 3; ++step) {
        auto a = co_await builtin.forward_backward(batch, loss_fn_type::cross_entropy);
        auto b = co_await custom.forward_backward_custom(batch, ce_loss);
        auto a_out = co_await a.result();
        auto b_out = co_await b.result();
        CHECK(std::abs(b_out.metrics.at("custom_loss") - loss_of(a_out)) < 1e-3);
        (void)co_await (co_await builtin.optim_step({.learning_rate = 0.05})).result();
        (void)co_await (co_await custom.optim_step({.learning_rate = 0.05})).result();
      }
      auto a = loss_of(co_await (co_await builtin.forward(batch, loss_fn_type::cross_entropy)).result());
      auto b = loss_of(co_await (co_await custom.forward(batch, loss_fn_type::cross_entropy)).result());
      CHECK(a == b);
      // A loss function that throws: the error reaches the caller and the model keeps working.
      custom_loss_fn broken = [](auto, auto) -> custom_loss_result { throw std::runtime_error("my loss is broken"); };
      auto bad = co_await custom.forward_backward_custom(batch, broken);
      CHECK_THROWS_WITH_AS(co_await bad.result(), "my loss is broken", std::runtime_error);
      CHECK(loss_of(co_await (co_await custom.forward(batch, loss_fn_type::cross_entropy)).result()) == b);
    }());
  }

  TEST_CASE("save_state and create_training_client_from_state_with_optimizer resume exactly") {
    client_fixture f;
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
      const std::vector<datum> batch{text_datum("exact resume")};
      for (int i = 0; i < 2; ++i) {
        (void)co_await (co_await training.forward_backward(batch, loss_fn_type::cross_entropy)).result();
        (void)co_await (co_await training.optim_step({.learning_rate = 0.05})).result();
      }
      auto saved = co_await (co_await training.save_state("step-2")).result();
      CHECK(saved.path == "tinker://" + training.model_id() + "/weights/step-2");
      (void)co_await (co_await training.forward_backward(batch, loss_fn_type::cross_entropy)).result();
      (void)co_await (co_await training.optim_step({.learning_rate = 0.05})).result();
      const auto expected = loss_of(co_await (co_await training.forward(batch, loss_fn_type::cross_entropy)).result());

      auto resumed = co_await f.service.create_training_client_from_state_with_optimizer(saved.path);
      (void)co_await (co_await resumed.forward_backward(batch, loss_fn_type::cross_entropy)).result();
      (void)co_await (co_await resumed.optim_step({.learning_rate = 0.05})).result();
      CHECK(loss_of(co_await (co_await resumed.forward(batch, loss_fn_type::cross_entropy)).result()) == expected);
      auto weights_only = co_await f.service.create_training_client_from_state(saved.path);
      CHECK((co_await weights_only.get_info()).lora_rank == 4);
    }());
  }

  TEST_CASE("a sampler checkpoint is immutable, base-model samplers work, compute_logprobs") {
    client_fixture f;
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
      auto saved = co_await (co_await training.save_weights_for_sampler("frozen")).result();
      REQUIRE(saved.path);
      auto sampler = co_await f.service.create_sampling_client(*saved.path);
      const auto prompt = model_input::from_ints(byte_tokenizer{}.encode("Hi", true));
      auto first = co_await sampler.sample(prompt, 2, sampling_params(10).with_seed(3));
      for (int i = 0; i < 5; ++i) {
        (void)co_await (co_await training.forward_backward(one(text_datum("zzzzzzzz")), loss_fn_type::cross_entropy))
            .result();
        (void)co_await (co_await training.optim_step({.learning_rate = 0.2})).result();
      }
      auto again = co_await sampler.sample(prompt, 2, sampling_params(10).with_seed(3));
      CHECK(again.sequences[0].tokens == first.sequences[0].tokens);
      CHECK(again.sequences[1].tokens == first.sequences[1].tokens);
      CHECK(co_await sampler.get_base_model() == tiny_model);
      auto base = co_await f.service.create_base_model_sampling_client(tiny_model);
      auto lps = co_await base.compute_logprobs(prompt);
      CHECK(lps.size() == prompt.length());
      CHECK(std::isnan(lps[0]));
      CHECK(lps[1] < 0);
      const std::vector<token_id> ok{'o', 'k'};
      CHECK((co_await base.get_tokenizer()).decode(ok) == "ok");
    }());
  }

  TEST_CASE("every REST call") {
    client_fixture f;
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
      auto state = co_await (co_await training.save_state("rest-state")).result();
      auto sampler_ckpt = *(co_await (co_await training.save_weights_for_sampler("rest-sampler")).result()).path;
      auto rest = f.service.create_rest_client();

      auto runs = co_await rest.list_training_runs();
      REQUIRE(runs.training_runs.size() == 1);
      CHECK(runs.cursor.total_count == 1);
      CHECK((co_await rest.get_training_run(training.model_id())).training_run_id == training.model_id());
      CHECK((co_await rest.get_training_run_by_tinker_path(state.path)).training_run_id == training.model_id());
      auto info = co_await rest.get_weights_info_by_tinker_path(state.path);
      CHECK(info.base_model == tiny_model);
      CHECK(info.lora_rank == 4);
      CHECK((co_await rest.list_checkpoints(training.model_id())).checkpoints.size() == 2);
      auto mine = co_await rest.list_user_checkpoints(1, 0);
      CHECK(mine.checkpoints.size() == 1);
      CHECK(mine.cursor->total_count == 2);
      co_await rest.publish_checkpoint_from_tinker_path(state.path);
      CHECK((co_await rest.list_checkpoints(training.model_id())).checkpoints[0].is_public !=
            (co_await rest.list_checkpoints(training.model_id())).checkpoints[1].is_public);
      co_await rest.unpublish_checkpoint_from_tinker_path(state.path);
      co_await rest.set_checkpoint_ttl_from_tinker_path(state.path, 3600);
      bool expiring = false;
      for (const auto& c : (co_await rest.list_checkpoints(training.model_id())).checkpoints)
        expiring |= c.expires_at.has_value();
      CHECK(expiring);
      co_await rest.set_checkpoint_ttl_from_tinker_path(state.path, std::nullopt);
      for (const auto& c : (co_await rest.list_checkpoints(training.model_id())).checkpoints) CHECK_FALSE(c.expires_at);
      auto url = co_await rest.get_checkpoint_archive_url_from_tinker_path(state.path);
      CHECK(url.url.find("/downloads/") != std::string::npos);
      CHECK(url.expires > now_timestamp());
      auto url2 = co_await rest.get_checkpoint_archive_url(training.model_id(), "weights/rest-state");
      CHECK(url2.url.find("rest-state") != std::string::npos);
      auto sessions = co_await rest.list_sessions();
      REQUIRE(sessions.sessions.size() == 1);
      auto session = co_await rest.get_session(sessions.sessions[0]);
      CHECK(session.training_run_ids == std::vector<std::string>{training.model_id()});
      auto sampler = co_await training.create_sampling_client(sampler_ckpt);
      CHECK((co_await rest.get_sampler(sampler.sampler_id())).model_path == sampler_ckpt);
      co_await rest.delete_checkpoint_from_tinker_path(sampler_ckpt);
      co_await rest.delete_checkpoint(training.model_id(), "weights/rest-state");
      CHECK((co_await rest.list_checkpoints(training.model_id())).checkpoints.empty());
      CHECK_THROWS_AS(co_await rest.get_weights_info_by_tinker_path(state.path), not_found_error);
    }());
  }

  TEST_CASE("checkpoint names that need percent-encoding work through every checkpoint call, sent encoded") {
    request_log log;
    auto eo = engine_opts();
    eo.on_request = log.observer();
    client_fixture f(eo);
    temp_dir dir;
    const std::string name = "step 10 | {draft} caf\xc3\xa9";
    const std::string sampler_name = "sampler \"\xe2\x9c\x93\" <1>";
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
      const auto state = co_await (co_await training.save_state(name)).result();
      CHECK(state.path == "tinker://" + training.model_id() + "/weights/" + name);
      const auto sampler_path = *(co_await (co_await training.save_weights_for_sampler(sampler_name)).result()).path;
      auto rest = f.service.create_rest_client();
      CHECK((co_await rest.get_weights_info_by_tinker_path(state.path)).lora_rank == 4);
      co_await rest.set_checkpoint_ttl_from_tinker_path(state.path, 3600);
      co_await rest.publish_checkpoint_from_tinker_path(state.path);
      co_await rest.unpublish_checkpoint_from_tinker_path(state.path);
      const auto files = co_await rest.download_checkpoint_from_tinker_path(state.path, dir.path / "adapter");
      CHECK(std::find(files.begin(), files.end(), "adapter_model.safetensors") != files.end());
      CHECK(
          (co_await rest.get_checkpoint_archive_url(training.model_id(), "weights/" + name)).url.find("/downloads/") !=
          std::string::npos);
      auto sampler = co_await f.service.create_sampling_client(sampler_path);
      const auto prompt = tokens({1});
      CHECK((co_await sampler.sample(prompt, 1, sampling_params(2))).sequences.size() == 1);
      co_await rest.delete_checkpoint_from_tinker_path(sampler_path);
      co_await rest.delete_checkpoint(training.model_id(), "weights/" + name);
      CHECK((co_await rest.list_checkpoints(training.model_id())).checkpoints.empty());

      // Outside the legal set: refused before anything is sent, naming the name.
      const auto saves_before = f.hook().request_count("save_weights");
      std::string refused;
      try {
        (void)co_await training.save_state("50%");
      } catch (const tinker::invalid_argument& e) {
        refused = e.what();
      }
      CHECK(refused.find("'50%'") != std::string::npos);
      CHECK(refused.find("cannot contain '%'") != std::string::npos);
      CHECK(f.hook().request_count("save_weights") == saves_before);
    }());
    // Every checkpoint route went out percent-encoded: no raw space, '|', '"', '<', '{' or
    // non-ASCII byte in any request target.
    int checkpoint_routes = 0;
    for (const auto& r : log.snapshot()) {
      if (r.target.find("/checkpoints/") == std::string::npos) continue;
      ++checkpoint_routes;
      CAPTURE(r.target);
      CHECK(r.target.find_first_of(" |\"<>{}") == std::string::npos);
      CHECK(
          std::none_of(r.target.begin(), r.target.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; }));
      CHECK((r.target.find("%7C") != std::string::npos || r.target.find("%22") != std::string::npos));
    }
    CHECK(checkpoint_routes >= 7);  // ttl, publish, unpublish, two archive URLs, two deletes
  }

  TEST_CASE("REST: session projects, trace export, the audit log and billing usage") {
    client_fixture f;
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
      (void)co_await (
          co_await training.forward_backward(one(text_datum("billable tokens")), loss_fn_type::cross_entropy))
          .result();
      auto state = co_await (co_await training.save_state("audited")).result();
      auto rest = f.service.create_rest_client();
      const auto session = co_await f.service.session_id();

      co_await rest.assign_session_project(session, "proj-1");
      auto in_project = co_await rest.list_training_runs(20, 0, access_scope::owned, "proj-1");
      REQUIRE(in_project.training_runs.size() == 1);
      CHECK(in_project.training_runs[0].training_run_id == training.model_id());
      CHECK((co_await rest.list_training_runs(20, 0, access_scope::owned, "proj-2")).training_runs.empty());
      CHECK_THROWS_AS(co_await rest.assign_session_project("no-such-session", "proj-1"), not_found_error);

      const auto trace_url = co_await rest.export_session_trace(session);
      CHECK(trace_url.rfind(f.engine.base_url(), 0) == 0);  // signed, served by the engine

      auto audit = co_await rest.get_audit_log();
      std::set<std::string> events;
      for (const auto& e : audit.entries) events.insert(e.event);
      CHECK(events.count("checkpoint_create") == 1);
      CHECK(events.count("model_create") == 1);
      bool saw_path = false;
      for (const auto& e : (co_await rest.get_audit_log("checkpoints")).entries) {
        CHECK(e.event.rfind("checkpoint_", 0) == 0);
        saw_path |= e.tinker_path == state.path;
      }
      CHECK(saw_path);

      using namespace std::chrono;
      const auto hour = time_point_cast<microseconds>(floor<hours>(system_clock::now()));
      auto usage = co_await rest.get_billing_usage(hour - hours(1), hour + hours(1));
      std::int64_t trained = 0;
      for (const auto& e : usage.data)
        if (auto* t = std::get_if<billing_training_usage>(&e.event_info)) trained += t->token_count;
      // BOS + 15 bytes of text: 15 tokens of model input (the last token is only a target).
      CHECK(trained == static_cast<std::int64_t>(std::string("billable tokens").size()));
      CHECK(usage.sessions.count(session) == 1);
    }());
  }

  TEST_CASE("weights_access_token: another account's private checkpoint, read with its owner's key") {
    client_fixture f;  // account A
    client_options owner_options = f.service.options();
    owner_options.api_key = "tml-owner-b";
    service_client owner(f.io.get_executor(), owner_options);  // account B, same engine
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto theirs = co_await owner.create_lora_training_client(tiny_model, {.rank = 4, .seed = 21});
      const auto batch = one(text_datum("private weights"));
      (void)co_await (co_await theirs.forward_backward(batch, loss_fn_type::cross_entropy)).result();
      (void)co_await (co_await theirs.optim_step({.learning_rate = 0.1})).result();
      const auto path = (co_await (co_await theirs.save_state("private")).result()).path;
      const auto expected = loss_of(co_await (co_await theirs.forward(batch, loss_fn_type::cross_entropy)).result());

      CHECK_THROWS_AS(co_await f.service.create_training_client_from_state(path), not_found_error);  // not ours
      auto mine = co_await f.service.create_training_client_from_state(path, std::nullopt, std::string("tml-owner-b"));
      CHECK(loss_of(co_await (co_await mine.forward(batch, loss_fn_type::cross_entropy)).result()) == expected);
    }());
    for (const auto& l : *f.log_lines) CHECK(l.find("tml-owner-b") == std::string::npos);
  }

  TEST_CASE("sampling without max_tokens: the server decides (to a stop token or the context limit)") {
    client_fixture f;
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
      auto sampler = co_await training.save_weights_and_get_sampling_client();
      std::int64_t context = 0;
      for (const auto& m : (co_await f.service.get_server_capabilities()).supported_models)
        if (m.model_name == tiny_model) context = m.max_context_length.value_or(0);
      REQUIRE(context > 0);
      const auto prompt = tokens({256, 'u'});
      auto resp = co_await sampler.sample(prompt, 2, sampling_params().with_seed(5));
      REQUIRE(resp.sequences.size() == 2);
      for (const auto& s : resp.sequences) {
        CHECK(!s.tokens.empty());
        CHECK(static_cast<std::int64_t>(s.tokens.size() + prompt.length()) <= context);
        if (s.stop_reason == stop_reason::length)
          CHECK(static_cast<std::int64_t>(s.tokens.size() + prompt.length()) == context);
      }
    }());
  }

  TEST_CASE("JSON and protobuf forward_backward give the same numbers, a 415 switches to JSON") {
    auto eo = engine_opts();
    eo.accept_protobuf_requests = false;
    client_fixture json_only(eo);
    client_fixture proto;
    double a = 0, b = 0;
    auto run = [](client_fixture& f, double& loss) {
      run_coro(f.io, [&]() -> asio::awaitable<void> {
        auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4, .seed = 11});
        loss = loss_of(
            co_await (co_await training.forward_backward(one(text_datum("same bytes")), loss_fn_type::cross_entropy))
                .result());
        (void)co_await (co_await training.forward(one(text_datum("same bytes")), loss_fn_type::cross_entropy)).result();
      }());
    };
    run(json_only, a);
    run(proto, b);
    CHECK(std::abs(a - b) < 1e-4);
    CHECK(json_only.hook().request_count("forward") == 1);  // forward-only JSON goes to the legacy route
  }

  TEST_CASE("user mistakes are caught before sending, naming the field and value") {
    client_fixture f;
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
      const auto sent_before = f.hook().request_count("forward_backward");
      CHECK_THROWS_WITH_AS(co_await training.forward_backward({}, loss_fn_type::cross_entropy),
                           "forward_backward: data is empty (no data provided)", tinker::invalid_argument);
      auto d = text_datum("abc");
      d.loss_fn_inputs.at("weights") = tensor_data(std::vector<float>{1.0f});
      CHECK_THROWS_WITH_AS(
          co_await training.forward_backward(one(d), loss_fn_type::cross_entropy),
          "forward_backward: data[0].loss_fn_inputs[weights] has 1 elements but model_input has 3 tokens",
          tinker::invalid_argument);
      CHECK_THROWS_WITH_AS(co_await training.forward_backward(one(text_datum("x")), loss_fn_type::ppo),
                           "forward_backward: data[0].loss_fn_inputs is missing 'advantages', which loss ppo needs",
                           tinker::invalid_argument);
      CHECK(f.hook().request_count("forward_backward") == sent_before);
      CHECK_THROWS_WITH_AS(co_await training.optim_step({.learning_rate = -1}),
                           "adam_params.learning_rate must be >= 0, got -1", tinker::invalid_argument);
      CHECK_THROWS_AS(co_await training.save_state("../up"), tinker::invalid_argument);
      CHECK_THROWS_AS(co_await training.load_state("tinker://x/sampler_weights/y"), tinker::invalid_argument);
      CHECK_THROWS_AS(co_await training.load_state("http://x/weights/y"), tinker::invalid_argument);
      auto sampler = co_await training.save_weights_and_get_sampling_client();
      const auto prompt = tokens({1});
      CHECK_THROWS_WITH_AS(co_await sampler.sample(prompt, 1, sampling_params(0)),
                           "sampling_params.max_tokens must be > 0, got 0", tinker::invalid_argument);
      // The training client still works: the rejected calls consumed no seq_ids.
      CHECK(std::isfinite(loss_of(
          co_await (co_await training.forward(one(text_datum("fine")), loss_fn_type::cross_entropy)).result())));
    }());
    CHECK_THROWS_AS(service_client(f.io.get_executor(), client_options{.base_url = "http://x", .api_key = "sk-nope"}),
                    tinker::invalid_argument);
  }

  TEST_CASE("the natural first lines inside a coroutine: no argument GCC 12 would destroy twice") {
    // GCC 12 destroys aggregate temporaries (a defaulted `options = {}` argument included) and
    // lambdas with captures twice when they are built in a co_await expression. Each public entry
    // point below is called the way a user would write it; none may need such a temporary.
    client_fixture f;
    struct env_guard {
      env_guard(const std::string& url) {
        ::setenv("TINKER_BASE_URL", url.c_str(), 1);
        ::setenv("TINKER_API_KEY", "tml-from-the-environment", 1);
      }
      ~env_guard() {
        ::unsetenv("TINKER_BASE_URL");
        ::unsetenv("TINKER_API_KEY");
      }
    } env(f.engine.base_url());
    temp_dir dir;
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      tinker::service_client service(co_await asio::this_coro::executor);  // options from the environment
      tinker::local::engine engine(co_await asio::this_coro::executor);    // default engine options
      CHECK(!(co_await service.session_id()).empty());
      auto training = co_await service.create_lora_training_client(tiny_model, {.rank = 4});
      auto tok = co_await training.get_tokenizer();
      const auto t = tok.encode("ab", true);
      // (Braced lists are built outside co_await expressions: GCC 12 rejects them there.)
      const std::vector<token_id> input{t[0], t[1]};
      const std::vector<std::int64_t> targets{t[1], t[2]};
      const std::vector<float> weights{1, 1};
      std::map<std::string, tensor_data> loss_inputs;
      loss_inputs.emplace("target_tokens", tensor_data(targets));
      loss_inputs.emplace("weights", tensor_data(weights));
      auto fwd = co_await training.forward_backward(one(datum(model_input::from_ints(input), loss_inputs)),
                                                    loss_fn_type::cross_entropy);
      auto opt = co_await training.optim_step({.learning_rate = 1e-3});
      CHECK(std::isfinite(loss_of(co_await fwd.result())));
      (void)co_await opt.result();
      const auto saved = co_await (co_await training.save_state("natural")).result();
      auto rest = service.create_rest_client();
      CHECK(!(co_await rest.download_checkpoint_from_tinker_path(saved.path, dir.path / "a")).empty());
      auto sampler = co_await training.save_weights_and_get_sampling_client();
      const std::vector<token_id> prompt{t[0]};
      CHECK((co_await sampler.sample(model_input::from_ints(prompt), 1, sampling_params(2))).sequences.size() == 1);
      CHECK((co_await sampler.compute_logprobs(model_input::from_ints(input))).size() == 2);
    }());
  }

  TEST_CASE("download_checkpoint_from_tinker_path streams and extracts the PEFT adapter archive") {
    client_fixture f;
    temp_dir dir;
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
      (void)co_await (co_await training.forward_backward(one(text_datum("download me")), loss_fn_type::cross_entropy))
          .result();
      auto saved = co_await (co_await training.save_weights_for_sampler("for-download")).result();
      auto rest = f.service.create_rest_client();
      std::vector<download_progress> progress;
      auto options = rest.default_download_options();
      options.on_progress = [&](const download_progress& p) { progress.push_back(p); };
      const auto target = dir.path / "adapter";
      auto files = co_await rest.download_checkpoint_from_tinker_path(*saved.path, target, options);
      std::set<std::string> names(files.begin(), files.end());
      CHECK(names.count("adapter_config.json") == 1);
      CHECK(names.count("adapter_model.safetensors") == 1);
      CHECK(std::filesystem::file_size(target / "adapter_model.safetensors") > 1000);
      REQUIRE(!progress.empty());
      CHECK(progress.front().bytes_received == 0);
      REQUIRE(progress.back().bytes_total.has_value());
      CHECK(progress.back().bytes_received == *progress.back().bytes_total);
      // The destination must not exist: a second download refuses before fetching anything.
      CHECK_THROWS_AS(co_await rest.download_checkpoint_from_tinker_path(*saved.path, target),
                      tinker::invalid_argument);
      // Nothing but the finished directory is left behind (no temporaries).
      CHECK(std::distance(std::filesystem::directory_iterator(dir.path), std::filesystem::directory_iterator()) == 1);
      CHECK_THROWS_AS(co_await rest.download_checkpoint_from_tinker_path("tinker://nope/weights/x", dir.path / "x"),
                      not_found_error);
    }());
  }

  TEST_CASE("TLS: a CA made at test time verifies the engine, a wrong CA or a wrong host name fails clearly") {
    test::test_pki pki;
    const auto good = pki.issue("engine", {"localhost"}, {"127.0.0.1"});
    const auto elsewhere = pki.issue("elsewhere", {"elsewhere.test"}, {});
    auto tls_engine = [](const test::test_pki::server_cert& cert) {
      auto eo = engine_opts();
      eo.tls_cert_file = cert.cert_file;
      eo.tls_key_file = cert.key_file;
      return eo;
    };
    temp_dir dir;
    {
      client_fixture f(tls_engine(good), [&](client_options& o) { o.tls.ca_file = pki.ca_file(); });
      REQUIRE(f.engine.base_url().rfind("https://", 0) == 0);
      run_coro(f.io, [&]() -> asio::awaitable<void> {
        auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
        auto out =
            co_await (co_await training.forward_backward(one(text_datum("over TLS")), loss_fn_type::cross_entropy))
                .result();
        CHECK(std::isfinite(loss_of(out)));
        auto sampler = co_await training.save_weights_and_get_sampling_client();
        const auto prompt = tokens({256, 'a'});
        CHECK((co_await sampler.sample(prompt, 2, sampling_params(4))).sequences.size() == 2);
        // The archive download is https too and trusts the same CA.
        auto state = co_await (co_await training.save_state("tls-state")).result();
        auto files =
            co_await f.service.create_rest_client().download_checkpoint_from_tinker_path(state.path, dir.path / "tls");
        CHECK(files.size() >= 2);
      }());
    }
    auto failure = [&](const local::engine_options& eo, const std::string& ca_file) {
      client_fixture f(eo, [&](client_options& o) {
        o.tls.ca_file = ca_file;
        o.tls.use_system_ca = false;
        o.retry.max_retries = 0;
      });
      return what_of([&] {
        run_coro(f.io, [&]() -> asio::awaitable<void> { (void)co_await f.service.get_server_capabilities(); }());
      });
    };
    test::test_pki stranger;
    const auto wrong_ca = failure(tls_engine(good), stranger.ca_file());
    MESSAGE("wrong CA: " << wrong_ca);
    CHECK(wrong_ca.find("could not be verified") != std::string::npos);
    CHECK(wrong_ca.find("tls.ca_file") != std::string::npos);  // ... and says what to do about it
    const auto wrong_host = failure(tls_engine(elsewhere), pki.ca_file());
    MESSAGE("wrong host: " << wrong_host);
    CHECK(wrong_host.find("not valid for the host name '127.0.0.1'") != std::string::npos);
  }

  TEST_CASE("gzip: big answers arrive compressed and are inflated, accept_gzip = false turns it off") {
    std::vector<double> losses;
    for (const bool gzip : {true, false}) {
      client_fixture f(engine_opts(), [&](client_options& o) {
        o.accept_gzip = gzip;
        o.forward_backward_format = wire_format::json;  // JSON results: the big, compressible kind
      });
      run_coro(f.io, [&]() -> asio::awaitable<void> {
        auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4, .seed = 3});
        auto out =
            co_await (co_await training.forward(one(text_datum(std::string(300, 'z'))), loss_fn_type::cross_entropy))
                .result();
        REQUIRE(out.loss_fn_outputs.size() == 1);
        CHECK(out.loss_fn_outputs[0].at("logprobs").element_count() >= 300);
        losses.push_back(loss_of(out));
      }());
      if (gzip)
        CHECK(f.service.stats().gzip_responses > 0);
      else
        CHECK(f.service.stats().gzip_responses == 0);
    }
    CHECK(losses[0] == losses[1]);
  }

  TEST_CASE("heartbeats keep the session alive, a client without them loses its model, close() stops them") {
    // The engine's expiry runs on a clock the test moves; the client's heartbeats are real (every
    // 20 ms) and the test waits for one to arrive after the clock jumped, so nothing depends on timing.
    std::atomic<std::int64_t> minutes_ahead{0};
    request_log wire;
    auto eo = engine_opts();
    eo.session_timeout = std::chrono::minutes(5);
    eo.maintenance_interval = std::chrono::hours(1);  // expiry only when the test runs it
    eo.clock = [&] { return std::chrono::system_clock::now() + std::chrono::minutes(minutes_ahead.load()); };
    eo.on_request = wire.observer();
    client_fixture f(eo, [](client_options& o) { o.heartbeat_interval = std::chrono::milliseconds(20); });
    io_event beat_after_jump(f.io);
    int beats_after_jump = 0;  // (engine thread)
    {
      std::lock_guard lock(wire.mutex);
      // The second heartbeat after the jump: by then the first one has been handled (it is the one
      // that must keep the session alive).
      wire.on_record = [&](const local::request_record& r) {
        if (r.route == "session_heartbeat" && minutes_ahead.load() > 0 && ++beats_after_jump == 2)
          beat_after_jump.fire();
      };
    }
    asio::io_context silent_io;  // the same engine, a client whose heartbeat never comes in time
    client_options silent_options;
    silent_options.base_url = f.engine.base_url();
    silent_options.api_key = "tml-silent-key";
    silent_options.heartbeat_interval = std::chrono::hours(1);
    service_client silent(silent_io.get_executor(), silent_options);
    std::optional<training_client> silent_training;
    run_coro(silent_io, [&]() -> asio::awaitable<void> {
      silent_training = co_await silent.create_lora_training_client(tiny_model, {.rank = 4});
    }());
    run_coro(f.io, [&]() -> asio::awaitable<void> {
      auto training = co_await f.service.create_lora_training_client(tiny_model, {.rank = 4});
      minutes_ahead = 10;               // both sessions are now 10 minutes without a heartbeat ...
      co_await beat_after_jump.wait();  // ... until one arrives from the heartbeating client
      f.engine.run_maintenance();
      auto out =
          co_await (co_await training.forward(one(text_datum("still here")), loss_fn_type::cross_entropy)).result();
      CHECK(std::isfinite(loss_of(out)));
    }());
    CHECK(f.service.stats().heartbeats >= 1);
    CHECK(silent.stats().heartbeats == 0);
    CHECK_THROWS_AS(run_coro(silent_io,
                             [&]() -> asio::awaitable<void> {
                               (void)co_await (co_await silent_training->forward(one(text_datum("gone")),
                                                                                 loss_fn_type::cross_entropy))
                                   .result();
                             }()),
                    api_error);
    CHECK(f.hook().loaded_model_count() == 1);
    // close() ends the heartbeat loop: the io_context runs out of work instead of ticking forever.
    const auto beats = f.service.stats().heartbeats;
    f.service.close();
    f.io.restart();
    f.io.run();
    CHECK(f.service.stats().heartbeats == beats);
  }

  TEST_CASE("blocking_client: every call drives the loop on the caller's thread, errors arrive as exceptions") {
    local::embedded_engine engine(engine_opts());
    client_options o;
    o.base_url = engine.base_url();
    o.api_key = "tml-blocking-key";
    blocking_client client(o);
    auto training = client.run(client.service().create_lora_training_client(tiny_model, {.rank = 4, .seed = 2}));
    auto batch = one(text_datum("no coroutines here"));
    double first = 0, last = 0;
    for (int step = 0; step < 10; ++step) {
      auto fwd = client.run(training.forward_backward(batch, loss_fn_type::cross_entropy));
      auto opt = client.run(training.optim_step({.learning_rate = 0.05}));
      const auto out = client.run(fwd.result());
      (void)client.run(opt.result());
      (step == 0 ? first : last) = loss_of(out);
    }
    CHECK(last < first * 0.8);
    auto sampler = client.run(training.save_weights_and_get_sampling_client());
    CHECK(client.run(sampler.sample(tokens({256, 'n'}), 3, sampling_params(4))).sequences.size() == 3);
    CHECK_THROWS_AS(client.run(sampler.sample(tokens({256}), 1, sampling_params(0))), tinker::invalid_argument);
    CHECK_THROWS_AS(client.run(client.service().create_lora_training_client("no/such-model")), api_error);
    // A void awaitable, and the client still works after the errors.
    client.run(client.service().create_rest_client().set_checkpoint_ttl_from_tinker_path(
        client.run(client.run(training.save_state("blocking")).result()).path, 60));
    CHECK(client.run(client.service().create_rest_client().list_checkpoints(training.model_id())).checkpoints.size() >=
          1);
  }

}  // TEST_SUITE
