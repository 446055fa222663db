// The local engine's components on their own, without HTTP or an engine around them: the
// per-model seq_id queue and its idempotency memory, tenants and authentication, sessions,
// checkpoints and their storage, futures and completion logs, fault injection, and accounting
// (request counts, audit log, billing usage). Stores live in scratch directories: real files.
#include "common/run_coro.hpp"

#include <tinker/local/detail/accounting.hpp>
#include <tinker/local/detail/checkpoint_catalog.hpp>
#include <tinker/local/detail/fault_injector.hpp>
#include <tinker/local/detail/futures.hpp>
#include <tinker/local/detail/model_queue.hpp>
#include <tinker/local/detail/sessions.hpp>
#include <tinker/local/detail/store.hpp>
#include <tinker/local/detail/submission_memory.hpp>
#include <tinker/local/detail/tenants.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

using namespace tinker;
using namespace tinker::local::detail;
using namespace std::chrono_literals;

namespace {

/// A data directory removed at the end of the test.
struct scratch_dir {
  std::filesystem::path path;
  scratch_dir() {
    static std::atomic<int> counter{0};
    path = std::filesystem::temp_directory_path() /
           ("tinker-component-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~scratch_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

/// The status and detail of the http_error `f` throws; fails the test if it throws none.
template <class F>
std::pair<unsigned, std::string> refusal_of(F&& f) {
  try {
    f();
  } catch (const http_error& e) {
    return {e.status(), e.what()};
  }
  FAIL("no http_error thrown");
  return {};
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

/// An operation for a queue whose turn is all that is tested (it never runs).
queued_op op_for(future_table& futures, const std::string& id) {
  return queued_op{futures.create(id, "tenant", request_type::forward_backward), nullptr, std::nullopt};
}

/// Takes the operation whose turn it is and finishes it at once; returns its future's id.
std::optional<std::string> run_next(model_queue& q) {
  auto op = q.next_to_run();
  if (!op) return std::nullopt;
  q.finished_running();
  return op->future->id;
}

timestamp at_seconds(std::int64_t s) { return timestamp(std::chrono::seconds(s)); }

checkpoint_record checkpoint_of(const std::string& run, const std::string& name, const std::string& owner) {
  checkpoint_record c;
  c.run_id = run;
  c.kind = checkpoint_kind::weights;
  c.name = name;
  c.owner = owner;
  c.time = at_seconds(1'700'000'000);
  return c;
}

/// A checkpoint whose files are in `storage`, as every checkpoint the engine indexes.
checkpoint_record stored_checkpoint(store& storage, const std::string& run, const std::string& name,
                                    std::optional<timestamp> expires_at = std::nullopt) {
  auto c = checkpoint_of(run, name, "alice");
  c.expires_at = expires_at;
  c.size_bytes = storage.write_checkpoint(c, to_named_files(local::checkpoint_files{"{}", "weights", std::nullopt}));
  return c;
}

}  // namespace

TEST_SUITE("engine components") {
  // ===== the seq_id queue and its idempotency ===================================================

  TEST_CASE("model_queue hands out operations in seq_id order, one at a time, whatever order they arrive in") {
    future_table futures;
    model_queue q("S:train:0", 100);
    for (std::int64_t seq : {0, 3, 1}) {
      const auto a = q.admit(requested_seq::exactly(seq), "digest-" + std::to_string(seq));
      CHECK(a.seq == seq);
      CHECK_FALSE(a.original);
      q.enqueue(a.seq, "digest-" + std::to_string(seq), op_for(futures, "op-" + std::to_string(seq)));
    }
    auto first = q.next_to_run();
    REQUIRE(first);
    CHECK(first->future->id == "op-0");
    CHECK(q.running());
    CHECK_FALSE(q.next_to_run());  // one at a time
    q.finished_running();
    CHECK(run_next(q) == "op-1");
    CHECK_FALSE(run_next(q));  // seq_id 2 has not arrived: 3 waits for it
    CHECK(q.next_seq() == 2);
    q.enqueue(2, "digest-2", op_for(futures, "op-2"));
    CHECK(run_next(q) == "op-2");
    CHECK(run_next(q) == "op-3");
    CHECK(q.pending_count() == 0);
    CHECK(q.next_seq() == 4);
  }

  TEST_CASE(
      "model_queue answers an identical resubmission with the original and refuses another body under its seq_id") {
    future_table futures;
    model_queue q("S:train:0", 100);
    q.enqueue(0, "create", op_for(futures, "op-0"));
    q.enqueue(1, "body-a", op_for(futures, "op-1"));
    const auto again = q.admit(requested_seq::exactly(1), "body-a");
    CHECK(again.original == "op-1");
    CHECK(q.resubmission_of(1, "body-a") == "op-1");
    CHECK_FALSE(q.resubmission_of(2, "body-a"));
    CHECK(q.remembers(1));
    const auto [status, detail] = refusal_of([&] { (void)q.admit(requested_seq::exactly(1), "body-b"); });
    CHECK(status == 400);
    CHECK(detail == "seq_id 1 was already used by a different request");
    // Still remembered after it ran: a late resubmission gets the original, not a second run.
    CHECK(run_next(q) == "op-0");
    CHECK(run_next(q) == "op-1");
    CHECK(q.admit(requested_seq::exactly(1), "body-a").original == "op-1");
  }

  TEST_CASE("model_queue refuses seq_ids that ran, were used up by a refusal, or lie beyond the window") {
    future_table futures;
    model_queue q("S:train:0", 10);
    q.enqueue(0, "create", op_for(futures, "op-0"));
    CHECK(q.can_use_up(1));
    q.use_up(1, op_for(futures, "refused-1"));
    CHECK_FALSE(q.can_use_up(1));  // once only
    CHECK(run_next(q) == "op-0");
    CHECK(run_next(q) == "refused-1");  // the used-up seq_id takes its turn, so 2 can run
    CHECK(q.next_seq() == 2);

    auto [ran_status, ran] = refusal_of([&] { (void)q.admit(requested_seq::exactly(1), "late"); });
    CHECK(ran_status == 400);
    CHECK(ran == "seq_id 1 already ran on model S:train:0 (the next expected seq_id is 2)");

    q.use_up(4, op_for(futures, "refused-4"));
    auto [used_status, used] = refusal_of([&] { (void)q.admit(requested_seq::exactly(4), "retry"); });
    CHECK(used_status == 400);
    CHECK(contains(used, "was already used by a request that was refused"));

    CHECK(q.admit(requested_seq::exactly(12), "edge").seq == 12);  // next (2) + the gap (10)
    auto [far_status, far] = refusal_of([&] { (void)q.admit(requested_seq::exactly(13), "far"); });
    CHECK(far_status == 400);
    CHECK(contains(far, "seq_id 13 is too far ahead of model S:train:0's next expected seq_id 2 (at most 10 ahead)"));
    CHECK_FALSE(q.can_use_up(13));
    CHECK_FALSE(q.can_use_up(0));
  }

  TEST_CASE("model_queue puts requests without a seq_id after everything assigned, and empties on unload") {
    future_table futures;
    model_queue q("S:train:0", 100);
    q.enqueue(0, "create", op_for(futures, "op-0"));
    q.enqueue(5, "five", op_for(futures, "op-5"));
    const auto unnumbered = q.admit(requested_seq::none(), "unload");
    CHECK(unnumbered.seq == 6);
    CHECK_FALSE(unnumbered.original);
    q.enqueue(unnumbered.seq, "unload", op_for(futures, "op-6"));
    const auto left = q.take_pending();
    REQUIRE(left.size() == 3);
    CHECK(left[0].future->id == "op-0");
    CHECK(left[2].future->id == "op-6");
    CHECK(q.pending_count() == 0);
    CHECK_FALSE(q.next_to_run());
  }

  TEST_CASE("requested_seq reads 0 as none and refuses negative seq_ids") {
    CHECK_FALSE(requested_seq::from_client(0).given);
    CHECK(requested_seq::from_client(7).given);
    CHECK(requested_seq::from_client(7).value == 7);
    const auto [status, detail] = refusal_of([] { (void)requested_seq::from_client(-1); });
    CHECK(status == 400);
    CHECK(detail == "seq_id must not be negative, got -1");
  }

  TEST_CASE("submission_memory forgets old keys only when told to") {
    submission_memory m;
    for (std::int64_t k = 1; k <= 5; ++k) m.remember(k, "d" + std::to_string(k), "req-" + std::to_string(k));
    CHECK(m.check(3, "d3", "model_seq_id") == "req-3");
    CHECK_FALSE(m.check(9, "d9", "model_seq_id"));
    CHECK(refusal_of([&] { (void)m.check(3, "other", "model_seq_id"); }).second ==
          "model_seq_id 3 was already used by a different request");
    m.forget_below(3);
    CHECK_FALSE(m.contains(2));
    CHECK(m.contains(3));
    m.forget_oldest_beyond(2);
    CHECK(m.size() == 2);
    CHECK_FALSE(m.contains(3));
    CHECK(m.contains(5));
  }

  // ===== tenants and authentication =============================================================

  TEST_CASE("tenant_directory: every key its own tenant, known only by a digest, in open and allowlist mode") {
    tenant_directory open({});
    const auto a = open.tenant_of_key("tml-alpha");
    const auto b = open.tenant_of_key("tml-beta");
    REQUIRE(a);
    REQUIRE(b);
    CHECK(*a != *b);
    CHECK(open.tenant_of_key("tml-alpha") == a);  // stable
    CHECK_FALSE(contains(*a, "alpha"));
    CHECK(a->rfind("tenant-", 0) == 0);
    CHECK_FALSE(open.tenant_of_key("tml-"));
    CHECK_FALSE(open.tenant_of_key("sk-alpha"));

    tenant_directory listed({"tml-listed"});
    CHECK(listed.tenant_of_key("tml-listed") == open.tenant_of_key("tml-listed"));
    CHECK_FALSE(listed.tenant_of_key("tml-alpha"));
  }

  TEST_CASE("tenant_directory authenticates X-API-Key or a Bearer token, and never echoes a key") {
    tenant_directory tenants({});
    auto request_with = [](const char* field, const std::string& value) {
      local::http_request req{boost::beast::http::verb::get, "/api/v1/healthz", 11};
      if (field) req.set(field, value);
      return req;
    };
    const auto expected = tenants.tenant_of_key("tml-secret-key");
    CHECK(tenants.authenticate(request_with("X-API-Key", "tml-secret-key")) == expected);
    CHECK(tenants.authenticate(request_with("Authorization", "Bearer tml-secret-key")) == expected);
    CHECK(tenants.authenticate(request_with("Authorization", "bearer tml-secret-key")) == expected);

    auto [missing_status, missing] = refusal_of([&] { (void)tenants.authenticate(request_with(nullptr, "")); });
    CHECK(missing_status == 401);
    CHECK(contains(missing, "missing API key"));
    auto [bad_status, bad] =
        refusal_of([&] { (void)tenants.authenticate(request_with("X-API-Key", "wrong-secret-key")); });
    CHECK(bad_status == 401);
    CHECK_FALSE(contains(bad, "wrong-secret-key"));
    CHECK(refusal_of([&] {
            (void)tenants.authenticate(request_with("Authorization", "Basic tml-secret-key"));
          }).first == 401);
  }

  TEST_CASE("tenant_directory reads checkpoints as the caller, or as the account a weights_access_token names") {
    tenant_directory tenants({});
    CHECK(tenants.checkpoint_reader("caller", std::nullopt) == "caller");
    CHECK(tenants.checkpoint_reader("caller", std::string("tml-owner")) == tenants.tenant_of_key("tml-owner"));
    CHECK(refusal_of([&] { (void)tenants.checkpoint_reader("caller", std::string()); }).first == 403);
    auto [status, detail] = refusal_of([&] { (void)tenants.checkpoint_reader("caller", std::string("stolen-key")); });
    CHECK(status == 403);
    CHECK_FALSE(contains(detail, "stolen-key"));
  }

  // ===== sessions ===============================================================================

  TEST_CASE("session_table: live sessions, heartbeats, expiry, and finishing once, persisted") {
    scratch_dir dir;
    store storage(dir.path);
    session_table sessions(storage);
    const auto t0 = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));
    session_record r;
    r.id = "session-a";
    r.owner = "alice";
    r.created = at_seconds(1'700'000'000);
    auto& s = sessions.open(r, t0);
    CHECK(&sessions.live("alice", "session-a") == &s);
    CHECK(refusal_of([&] { (void)sessions.live("bob", "session-a"); }) ==
          std::pair<unsigned, std::string>{404, "unknown session session-a"});
    CHECK(refusal_of([&] { (void)sessions.owned("alice", "nope"); }).first == 404);

    // Heartbeats keep it alive; silence past the timeout expires it.
    sessions.heartbeat(s, t0 + 50s);
    CHECK(s.heartbeats == 1);
    CHECK(sessions.due_to_expire(t0 + 100s, 60s).empty());
    CHECK(sessions.due_to_expire(t0 + 111s, 60s) == std::vector<std::string>{"session-a"});
    sessions.mark_expired(s);
    CHECK(sessions.due_to_expire(t0 + 500s, 60s).empty());
    CHECK(refusal_of([&] { (void)sessions.live("alice", "session-a"); }).second ==
          "session session-a expired (no heartbeat)");

    // Finishing: the first call wins, and it is persisted.
    CHECK(sessions.finish(s, boost::json::value("done"), at_seconds(1'700'000'100)));
    CHECK_FALSE(sessions.finish(s, boost::json::value("again"), at_seconds(1'700'000'200)));
    CHECK(*s.record.finish_reason == boost::json::value("done"));
    CHECK(&sessions.owned("alice", "session-a") == &s);  // still readable
    sessions.add_training_run(s, "session-a:train:0");
    const auto stored = storage.load_sessions();
    REQUIRE(stored.size() == 1);
    CHECK(stored[0].finished_at == at_seconds(1'700'000'100));
    CHECK(stored[0].training_run_ids == std::vector<std::string>{"session-a:train:0"});
  }

  TEST_CASE("session_table: a finished session answers 410, sessions of an earlier run come back ended") {
    scratch_dir dir;
    store storage(dir.path);
    const auto t0 = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));
    {
      session_table sessions(storage);
      for (const auto* id : {"old", "new"}) {
        session_record r;
        r.id = id;
        r.owner = "alice";
        r.created = at_seconds(std::string(id) == "old" ? 1'700'000'000 : 1'700'000'500);
        sessions.open(r, t0);
      }
      auto& s = sessions.live("alice", "old");
      sessions.finish(s, std::nullopt, at_seconds(1'700'000'001));
      CHECK(refusal_of([&] { (void)sessions.live("alice", "old"); }) ==
            std::pair<unsigned, std::string>{410, "session old is finished"});
      const auto listed = sessions.of_tenant("alice");
      REQUIRE(listed.size() == 2);
      CHECK(listed[0]->id == "new");  // newest first
      CHECK(sessions.of_tenant("bob").empty());
    }
    session_table restarted(storage);
    restarted.load(storage.load_sessions(), t0 + 1000s);
    CHECK(restarted.size() == 2);
    CHECK(restarted.find("new")->ended());
    CHECK(refusal_of([&] { (void)restarted.live("alice", "new"); }).first == 404);
    CHECK(restarted.due_to_expire(t0 + 100'000s, 60s).empty());  // ended already: nothing to expire
  }

  // ===== checkpoints and storage ================================================================

  TEST_CASE("checkpoint_catalog: owners read and change, published checkpoints are readable by all and read-only") {
    scratch_dir dir;
    store storage(dir.path);
    checkpoint_catalog catalog(storage);
    const auto c = stored_checkpoint(storage, "run-1", "step-1");
    catalog.add(c);
    const auto path = c.path();
    CHECK(&catalog.readable("alice", path) == catalog.find(path));
    CHECK(refusal_of([&] { (void)catalog.readable("bob", path); }) ==
          std::pair<unsigned, std::string>{404, "checkpoint " + path.str() + " not found"});
    CHECK(refusal_of([&] { (void)catalog.owned("bob", path); }).first == 404);  // does not reveal it exists

    auto& mine = catalog.owned("alice", path);
    CHECK(catalog.set_public(mine, true));
    CHECK_FALSE(catalog.set_public(mine, true));  // idempotent
    CHECK(catalog.readable("bob", path).owner == "alice");
    CHECK(refusal_of([&] { (void)catalog.owned("bob", path); }).first == 403);
    CHECK(catalog.has_public("run-1"));
    CHECK_FALSE(catalog.has_public("run-2"));

    const auto files = dir.path / "runs" / "run-1" / "weights" / "step-1";
    CHECK(std::filesystem::exists(files / "adapter_model.safetensors"));
    catalog.remove(mine);
    CHECK_FALSE(std::filesystem::exists(files));
    CHECK_FALSE(catalog.contains(path));
    CHECK(refusal_of([&] { (void)catalog.readable("alice", path); }).first == 404);
  }

  TEST_CASE("checkpoint_catalog: TTL expiry finds exactly the due checkpoints and keeps the next expiry") {
    scratch_dir dir;
    store storage(dir.path);
    checkpoint_catalog catalog(storage);
    const auto soon = stored_checkpoint(storage, "run-1", "soon", at_seconds(1'700'000'010));
    const auto later = stored_checkpoint(storage, "run-1", "later", at_seconds(1'700'000'020));
    catalog.add(soon);
    catalog.add(later);
    catalog.add(stored_checkpoint(storage, "run-1", "forever"));
    CHECK(catalog.next_expiry() == soon.expires_at);
    const auto t = [](std::int64_t s) { return std::chrono::system_clock::time_point(std::chrono::seconds(s)); };
    CHECK(catalog.expired_by(t(1'700'000'005)).empty());
    const auto due = catalog.expired_by(t(1'700'000'015));
    REQUIRE(due.size() == 1);
    CHECK(due[0].name == "soon");
    CHECK(catalog.next_expiry() == later.expires_at);
    catalog.remove(due[0]);

    // A TTL removed or set anew moves the next expiry.
    catalog.set_expiry(catalog.owned("alice", later.path()), std::nullopt);
    CHECK(catalog.expired_by(t(1'700'000'030)).empty());
    catalog.set_expiry(catalog.owned("alice", later.path()), at_seconds(1'700'000'040));
    CHECK(catalog.expired_by(t(1'700'000'040)).size() == 1);
    CHECK(catalog.all().size() == 2);  // expired_by reports, the caller deletes
  }

  TEST_CASE("checkpoint_catalog: files written through the store read back, optimizer state only when present") {
    scratch_dir dir;
    store storage(dir.path);
    checkpoint_catalog catalog(storage);
    run_record run;
    run.id = "run-1";
    run.owner = "alice";
    run.base_model = run.engine_model = "tinker-local/byte-lm-tiny";
    run.session_id = "session-a";
    storage.save(run);
    auto c = checkpoint_of("run-1", "step-1", "alice");
    local::checkpoint_files exported{"{\"r\": 4}", "adapter-bytes", std::nullopt};
    c.size_bytes = storage.write_checkpoint(c, to_named_files(exported));
    CHECK(c.size_bytes == 8 + 13);
    catalog.add(c);
    CHECK(to_checkpoint_files(catalog.files(c, false)) == exported);
    CHECK(refusal_of([&] { (void)catalog.files(c, true); }) ==
          std::pair<unsigned, std::string>{400, "checkpoint " + c.path().str() + " has no optimizer state"});
    catalog.set_public(catalog.owned("alice", c.path()), true);

    // What a restart sees: the run with its checkpoint, published.
    const auto loaded = storage.load_runs();
    REQUIRE(loaded.size() == 1);
    REQUIRE(loaded[0].second.size() == 1);
    CHECK(loaded[0].second[0].is_public);
    CHECK(loaded[0].second[0].size_bytes == c.size_bytes);

    std::filesystem::remove(dir.path / "runs" / "run-1" / "weights" / "step-1" / "adapter_model.safetensors");
    CHECK(refusal_of([&] { (void)catalog.files(c, false); }).first == 500);
  }

  TEST_CASE("check_ttl takes 1 s to 10 years and names the field") {
    CHECK_NOTHROW(check_ttl(std::nullopt));
    CHECK_NOTHROW(check_ttl(1));
    CHECK_NOTHROW(check_ttl(max_ttl_seconds));
    CHECK(refusal_of([] { check_ttl(0); }) ==
          std::pair<unsigned, std::string>{400, "ttl_seconds must be positive, got 0"});
    CHECK(contains(refusal_of([] { check_ttl(max_ttl_seconds + 1, "ttl"); }).second, "ttl must be at most 10 years"));
  }

  // ===== futures ================================================================================

  TEST_CASE("future_table: the first outcome wins, and sample completions are logged per sampler and clone") {
    future_table futures;
    auto plain = futures.create("req-1-1", "alice", request_type::optim_step);
    auto sample = futures.create("req-1-2", "alice", request_type::sample);
    sample->sampler_id = "sampler-a";
    auto clone = futures.create("req-1-3", "alice", request_type::sample);
    clone->sampler_id = "sampler-a";
    clone->cloned_sampler_id = 1;
    CHECK(futures.find("req-1-1") == plain);
    CHECK_FALSE(futures.find("req-9-9"));

    futures.complete(*plain, future_payload(boost::json::value("ok")));
    futures.fail(*plain, "too late", error_category::server);
    CHECK(plain->state == future_entry::status::done);
    CHECK(std::get<boost::json::value>(plain->result) == "ok");
    CHECK(futures.log_count() == 0);  // not a sample: no completion log

    futures.fail(*sample, "bad prompt", error_category::user);
    futures.complete(*clone, future_payload(boost::json::value("sampled")));
    CHECK(sample->failure.category == error_category::user);
    auto& log = futures.log_for("sampler-a", 0);
    REQUIRE(log.events.size() == 1);
    CHECK(log.last_cursor == 1);
    CHECK(log.events[0].completion.request_id == "req-1-2");
    CHECK(log.events[0].completion.state == completion_state::failed);
    CHECK(futures.log_for("sampler-a", 1).events.at(0).completion.state == completion_state::finished);

    futures.log_for("sampler-b", 0);  // a poll for a sampler that never completed anything
    CHECK(futures.log_count() == 3);
    futures.drop_log_if_unused("sampler-b", 0);
    futures.drop_log_if_unused("sampler-a", 0);  // has events: its cursor must keep counting
    CHECK(futures.log_count() == 2);
  }

  TEST_CASE("future_table: purge forgets finished futures older than the cutoff, never pending ones") {
    future_table futures;
    auto finished = futures.create("req-1-1", "alice", request_type::optim_step);
    auto pending = futures.create("req-1-2", "alice", request_type::optim_step);
    futures.complete(*finished, future_payload(boost::json::value(1)));
    futures.purge(finished->finished_at);  // finished exactly at the cutoff: kept
    CHECK(futures.size() == 2);
    futures.purge(finished->finished_at + 1ns);
    CHECK(futures.size() == 1);
    CHECK_FALSE(futures.find("req-1-1"));
    CHECK(futures.find("req-1-2") == pending);
  }

  TEST_CASE("a long poll on a future wakes when it completes, not at its deadline") {
    boost::asio::io_context io;
    future_table futures;
    auto f = futures.create("req-1-1", "alice", request_type::optim_step);
    auto poll = [&]() -> boost::asio::awaitable<int> {
      // Completed by a handler that runs once this coroutine waits.
      boost::asio::post(io, [&] { futures.complete(*f, future_payload(boost::json::value("done"))); });
      int wakeups = 0;
      while (!f->finished()) {
        co_await f->waiters.wait_until(std::chrono::steady_clock::now() + std::chrono::hours(1));
        ++wakeups;
      }
      co_return wakeups;
    };
    CHECK(tinker::test::run_coro(io, poll()) == 1);
    CHECK(f->waiters.size() == 0);  // deregistered
  }

  // ===== fault injection ========================================================================

  TEST_CASE("fault_injector: decisions replay from the seed, in a fixed order, sparing health checks and downloads") {
    local::fault_options o;
    o.fraction_drop = 0.2;
    o.fraction_503 = 0.3;
    o.seed = 42;
    const auto t0 = std::chrono::steady_clock::now();
    fault_injector a(o, t0), b(o, t0);
    int drops = 0, refusals = 0;
    std::vector<bool> first_run;
    for (int i = 0; i < 200; ++i) {
      const auto x = a.decide("asample");
      const auto y = b.decide("asample");
      REQUIRE(x.has_value() == y.has_value());
      first_run.push_back(x.has_value() && x->drop);
      if (x && x->drop) ++drops;
      if (x && !x->drop) {
        CHECK(x->status == 503);
        CHECK(x->detail == "unavailable (injected fault)");
        ++refusals;
      }
    }
    CHECK(drops > 0);
    CHECK(refusals > 0);
    CHECK(drops + refusals < 200);
    a.set(o, t0);  // the generator restarts from the seed
    for (int i = 0; i < 200; ++i) {
      const auto x = a.decide("asample");
      CHECK((x.has_value() && x->drop) == first_run[static_cast<std::size_t>(i)]);
    }
    for (const auto* spared : {"healthz", "download", "trace_download"}) CHECK_FALSE(a.errors_apply_to(spared));

    local::fault_options only;
    only.fraction_429 = 1;
    only.retry_after = 7s;
    only.error_routes = {"optim_step"};
    fault_injector c(only, t0);
    CHECK_FALSE(c.decide("asample"));
    const auto limited = c.decide("optim_step");
    REQUIRE(limited);
    CHECK(limited->status == 429);
    CHECK(limited->retry_after == 7s);
  }

  TEST_CASE("fault_injector: latency per route, pause windows, held polls and failing routes") {
    const auto t0 = std::chrono::steady_clock::now();
    fault_injector none(local::fault_options{}, t0);
    CHECK_FALSE(none.any());
    CHECK(none.latency_for("asample") == 0ms);
    CHECK_FALSE(none.pause_at(t0 + 1h));
    CHECK_FALSE(none.holds_poll(1));
    CHECK_FALSE(none.failure_for("optim_step"));

    local::fault_options o;
    o.route_latency = {{"*", 5ms}, {"asample", 20ms}};
    o.pause_state = queue_state::paused_capacity;
    o.pause_period = 10s;
    o.pause_duration = 4s;
    o.try_again_first_polls = 2;
    o.fail_routes = {{"optim_step", error_category::user}};
    fault_injector f(o, t0);
    CHECK(f.any());
    CHECK(f.latency_for("asample") == 20ms);
    CHECK(f.latency_for("optim_step") == 5ms);
    // Each 10 s period: 6 s active, then 4 s paused.
    CHECK_FALSE(f.pause_at(t0 + 5s));
    const auto paused = f.pause_at(t0 + 7s);
    REQUIRE(paused);
    CHECK(paused->state == queue_state::paused_capacity);
    CHECK(paused->remaining == 3s);
    CHECK_FALSE(f.pause_at(t0 + 12s));
    CHECK(f.pause_at(t0 + 16s)->remaining == 4s);
    CHECK(f.holds_poll(2));
    CHECK_FALSE(f.holds_poll(3));
    const auto failure = f.failure_for("optim_step");
    REQUIRE(failure);
    CHECK(failure->category == error_category::user);
    CHECK(contains(failure->error, "injected failure: optim_step"));
    CHECK_FALSE(f.failure_for("asample"));
  }

  // ===== accounting =============================================================================

  TEST_CASE("request_counters count per route and per id named") {
    request_counters counters;
    counters.count_route("asample");
    counters.count_route("asample");
    counters.count_naming("S:train:0", "forward_backward");
    counters.count_naming("S:train:0", "forward_backward");
    counters.count_naming("S:train:0", "optim_step");
    CHECK(counters.route_count("asample") == 2);
    CHECK(counters.route_count("optim_step") == 0);
    CHECK(counters.naming("S:train:0") ==
          std::map<std::string, std::uint64_t>{{"forward_backward", 2}, {"optim_step", 1}});
    CHECK(counters.naming("S:sample:0").empty());
  }

  TEST_CASE("audit_log keeps the last events per tenant, filters them, compacts its file and survives a restart") {
    scratch_dir dir;
    store storage(dir.path);
    audit_log log(storage, 3);
    const auto path = tinker_path{"tinker", "run-1", checkpoint_kind::weights, "a"};
    const auto day1 = at_seconds(1'700'000'000);  // 2023-11-14
    const auto day2 = day1 + std::chrono::hours(24);
    log.record("alice", day1, "session_create");
    log.record("alice", day1, "checkpoint_create", path, "save_state");
    log.record("alice", day2, "model_create");
    log.record("alice", day2, "checkpoint_publish", path);
    log.record("bob", day2, "session_create");

    const auto all = log.query("alice", audit_log::filter::all);
    REQUIRE(all.size() == 3);  // the oldest dropped
    CHECK(all[0].event == "checkpoint_create");
    CHECK(all[0].tinker_path == path.str());
    CHECK(all[0].model_id == "run-1");
    const auto checkpoints = log.query("alice", audit_log::filter::checkpoints);
    REQUIRE(checkpoints.size() == 2);
    CHECK(checkpoints[1].event == "checkpoint_publish");
    const auto on_day2 = log.query("alice", audit_log::filter::all, std::chrono::floor<std::chrono::days>(day2));
    CHECK(on_day2.size() == 2);
    CHECK(log.query("carol", audit_log::filter::all).empty());

    CHECK(log.file_lines("alice") == 4);
    log.record("alice", day2, "checkpoint_ttl_set", path);
    log.record("alice", day2, "checkpoint_delete", path, "user_request");
    CHECK(log.file_lines("alice") == 6);  // compacted only past twice the limit, not at every append
    log.record("alice", day2, "checkpoint_read", path, "archive_download");
    CHECK(log.file_lines("alice") == 3);

    // A torn last line (a crash mid-append) is skipped at the next start.
    {
      std::ofstream torn(dir.path / "audit" / "alice.jsonl", std::ios::app);
      torn << "{\"timestamp\": \"2023-";
    }
    audit_log restarted(storage, 3);
    restarted.load();
    CHECK(restarted.query("alice", audit_log::filter::all) == log.query("alice", audit_log::filter::all));
    CHECK(restarted.query("bob", audit_log::filter::all).size() == 1);
  }

  TEST_CASE("usage_meter buckets usage per hour, tenant, session, base model and kind, and forgets old hours") {
    usage_meter usage;
    const auto t = std::chrono::system_clock::time_point(std::chrono::hours(472'000)) + 10min;
    usage.record("alice", t, "s1", "m", usage_kind::training, 100);
    usage.record("alice", t + 30min, "s1", "m", usage_kind::training, 20);  // same hour
    usage.record("alice", t + 1h, "s1", "m", usage_kind::training, 5);      // next hour
    usage.record("alice", t, "s1", "m", usage_kind::sampling_sample, 0);    // nothing to bill
    usage.record("bob", t, "s2", "m", usage_kind::checkpoint, 1);
    CHECK(usage.size() == 3);
    const auto hour = usage_meter::hour_of(t);
    CHECK(hour == 472'000);
    const auto first = usage.of_tenant("alice", hour, hour + 1);
    REQUIRE(first.size() == 1);
    CHECK(first[0].second == 120);
    CHECK(first[0].first.kind == usage_kind::training);
    CHECK(usage.of_tenant("alice", hour, hour + 2).size() == 2);
    CHECK(usage.of_tenant("alice", hour + 2, hour + 10).empty());
    CHECK(usage.of_tenant("bob", hour, hour + 1).size() == 1);
    usage.purge(t + usage_meter::retention + 1h);  // the first hour is now past the retention
    CHECK(usage.of_tenant("alice", hour, hour + 2).size() == 1);
  }
}
