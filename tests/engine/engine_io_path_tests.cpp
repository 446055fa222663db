// The engine's I/O thread never waits for compute: while its compute pool is saturated with
// training work, health checks, heartbeats, capabilities, sample submissions and long polls are
// still answered. The proof is an ordering, not a timing: every cheap request finishes before the
// queued training work does, which cannot happen if any of it ran on the I/O thread.
#include "engine_fixture.hpp"

#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

using namespace tinker;
using namespace tinker::test;

TEST_SUITE("engine") {
  TEST_CASE("a saturated compute pool does not stall healthz, heartbeats, sample submissions or long polls") {
    auto options = test_engine_options();
    options.compute_threads = 1;  // one compute thread, kept busy by the queue below
    options.long_poll_hold = std::chrono::milliseconds(1000);
    engine_fixture f(options);
    const auto session = f.create_session();
    const auto model = f.create_model(session);

    // Heavy work queued on one model: consecutive forward_backward requests over a long batch.
    std::string text;
    for (int i = 0; i < 15; ++i) text += "the quick brown fox jumps over the lazy dog; ";
    std::vector<datum> batch(24, engine_fixture::text_datum(text));
    constexpr int heavy_requests = 8;
    std::vector<std::string> ids;
    for (int seq = 1; seq <= heavy_requests; ++seq) {
      forward_backward_request req{forward_backward_input{batch, loss_fn_type::cross_entropy, std::nullopt}, model, seq,
                                   false};
      ids.push_back(
          future_id(f.http->post_raw("/api/v1/forward_backward", proto::encode(req), "application/x-protobuf")));
    }

    // A second connection long-polls the last of them and notes when its result arrives.
    auto finished_at = std::async(std::launch::async, [&] {
      sync_http_client poller(f.engine->base_url());
      for (;;) {
        auto res =
            poller.post("/api/v1/retrieve_future", boost::json::value_from(future_retrieve_request{ids.back(), true}));
        if (!is_try_again(res)) return std::make_pair(res.status, std::chrono::steady_clock::now());
      }
    });

    // Meanwhile, on the first connection: the cheap requests, each of which must answer. Sample
    // submissions are accepted at once (their results wait for the pool like everything else).
    sample_request sample;
    sample.prompt = model_input::from_ints(byte_tokenizer{}.encode("Once", true));
    sample.sampling_params.max_tokens = 2;
    sample.base_model = tiny_model;
    int answered = 0;
    for (int i = 0; i < 20; ++i) {  // each counts only when it was answered as it should be
      answered += f.http->get("/api/v1/healthz").status == 200;
      answered += f.http->post("/api/v1/session_heartbeat", boost::json::value_from(session_heartbeat_request{session}))
                      .status == 200;
      answered += f.http->get("/api/v1/get_server_capabilities").status == 200;
      answered += !future_id(f.post("/api/v1/asample", sample)).empty();
    }
    // A long poll on a future that is still queued answers try_again after its hold, not after
    // the queue drains.
    auto poll = f.http->post("/api/v1/retrieve_future",
                             boost::json::value_from(future_retrieve_request{ids[heavy_requests - 2], true}));
    const bool second_to_last_was_pending = is_try_again(poll);
    const auto cheap_done = std::chrono::steady_clock::now();

    const auto [status, heavy_done] = finished_at.get();
    CHECK(status == 200);
    CHECK(answered == 80);
    CHECK_MESSAGE(cheap_done < heavy_done, "the cheap requests waited for the training queue");
    CHECK_MESSAGE(second_to_last_was_pending, "the queue drained within one long-poll hold: make the work heavier");
    MESSAGE("training queue outlasted the cheap requests by "
            << std::chrono::duration_cast<std::chrono::milliseconds>(heavy_done - cheap_done).count() << " ms");
  }
}
