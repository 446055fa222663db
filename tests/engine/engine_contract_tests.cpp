// The local engine's contract under hostile or unusual traffic, over real HTTP: bounds checked
// before anything is allocated, refusals at submission (400 naming the field) that still use up
// their seq_id, expired resubmissions, TTL and seq_id windows, immutable sampler weights, long-poll
// holds and wake-ups, finished sessions, tenants and published checkpoints, persistence, every
// route's authentication, fault injection, and the request observer.
//
// Nothing here sleeps or times anything: concurrency is ordered by seq_ids, by the request
// observer (which reports a request when it arrives) and by the engine's single I/O thread.
#include "engine_fixture.hpp"

#include <tinker/local/detail/routing.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <future>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

using namespace tinker;
using namespace tinker::test;
using boost::beast::http::verb;

namespace {

/// A hand-written protobuf message (independent of the library's encoder and its checks), for
/// requests no well-behaved client would send.
struct pb {
  std::string out;

  void varint(std::uint64_t v) {
    while (v >= 0x80) {
      out += static_cast<char>((v & 0x7f) | 0x80);
      v >>= 7;
    }
    out += static_cast<char>(v);
  }
  void tag(int field, int wire_type) {
    varint(static_cast<std::uint64_t>(field) << 3 | static_cast<unsigned>(wire_type));
  }
  pb& bytes(int field, std::string_view b) {
    tag(field, 2);
    varint(b.size());
    out += b;
    return *this;
  }
  pb& message(int field, const pb& m) { return bytes(field, m.out); }
  pb& integer(int field, std::int64_t v) {
    tag(field, 0);
    varint(static_cast<std::uint64_t>(v));
    return *this;
  }
  pb& number(int field, double v) {
    tag(field, 1);
    char b[8];
    std::memcpy(b, &v, 8);
    out.append(b, 8);
    return *this;
  }
  pb& packed(int field, const std::vector<std::int64_t>& values) {
    pb inner;
    for (auto v : values) inner.varint(static_cast<std::uint64_t>(v));
    return bytes(field, inner.out);
  }
  template <class T>
  static std::string little_endian(const std::vector<T>& values) {
    std::string s(values.size() * sizeof(T), '\0');
    if (!values.empty()) std::memcpy(s.data(), values.data(), s.size());
    return s;
  }
};

/// Tensor (dtype: 1 = float32, 2 = int64), dense or CSR.
pb pb_dense(const std::string& values, int dtype, const std::vector<std::int64_t>& shape) {
  pb t;
  t.bytes(1, values).integer(3, dtype);
  if (!shape.empty()) t.packed(4, shape);
  return t;
}
pb pb_sparse(const std::string& values, int dtype, const std::vector<std::int64_t>& shape,
             const std::vector<std::int64_t>& crow, const std::vector<std::int64_t>& col) {
  pb csr;
  csr.bytes(1, values).bytes(2, pb::little_endian(crow)).bytes(3, pb::little_endian(col));
  pb t;
  t.message(2, csr).integer(3, dtype).packed(4, shape);
  return t;
}

/// Datum with model input `tokens` and the given loss inputs.
pb pb_datum(const std::vector<std::int32_t>& tokens, const std::vector<std::pair<std::string, pb>>& inputs) {
  pb text;
  text.bytes(1, pb::little_endian(tokens));
  pb chunk;
  chunk.message(1, text);
  pb d;
  d.message(1, chunk);
  for (const auto& [name, tensor] : inputs) {
    pb entry;
    entry.bytes(1, name).message(2, tensor);
    d.message(2, entry);
  }
  return d;
}

/// ForwardBackwardRequest; `config_v2` entries are (key, LossConfigValue message).
std::string pb_request(const std::string& model, std::int64_t seq, const pb& datum, const std::string& loss,
                       const std::vector<std::pair<std::string, pb>>& config_v2 = {}) {
  pb r;
  r.bytes(1, model).integer(2, seq).message(3, datum).bytes(4, loss);
  for (const auto& [key, value] : config_v2) {
    pb entry;
    entry.bytes(1, key).message(2, value);
    r.message(7, entry);
  }
  return r.out;
}

boost::json::array ints(std::initializer_list<std::int64_t> v) {
  boost::json::array a;
  for (auto x : v) a.emplace_back(x);
  return a;
}

/// A JSON forward_backward body with one datum (model input `tokens`, loss inputs as given).
std::string json_fb(const std::string& model, std::int64_t seq, boost::json::array tokens, boost::json::object inputs,
                    const std::string& loss = "cross_entropy") {
  boost::json::object chunk{{"type", "encoded_text"}, {"tokens", std::move(tokens)}};
  boost::json::object datum{{"model_input", boost::json::object{{"chunks", boost::json::array{chunk}}}},
                            {"loss_fn_inputs", std::move(inputs)}};
  boost::json::object input{{"data", boost::json::array{datum}}, {"loss_fn", loss}};
  return boost::json::serialize(
      boost::json::object{{"model_id", model}, {"seq_id", seq}, {"forward_backward_input", input}});
}

/// Collects what the engine's request observer reports (it runs on the engine's thread), and lets
/// a test wait until a request has arrived.
struct observed {
  std::mutex mutex;
  std::vector<local::request_record> records;
  std::string awaited_route;
  std::optional<std::string> awaited_request_id;
  std::promise<void> arrived;
  bool fired = false;

  static std::shared_ptr<observed> attach(local::engine_options& o) {
    auto self = std::make_shared<observed>();
    o.on_request = [self](const local::request_record& r) {
      std::lock_guard lock(self->mutex);
      self->records.push_back(r);
      if (!self->fired && r.route == self->awaited_route &&
          (!self->awaited_request_id || r.request_id == self->awaited_request_id)) {
        self->fired = true;
        self->arrived.set_value();
      }
    };
    return self;
  }

  /// Arms the arrival signal for the next request on `route` (optionally polling `request_id`).
  std::future<void> expect(const std::string& route, std::optional<std::string> request_id = std::nullopt) {
    std::lock_guard lock(mutex);
    awaited_route = route;
    awaited_request_id = std::move(request_id);
    arrived = std::promise<void>();
    fired = false;
    return arrived.get_future();
  }

  std::vector<local::request_record> snapshot() {
    std::lock_guard lock(mutex);
    return records;
  }
};

sample_request small_sample(const std::string& sampler, std::int64_t seq) {
  sample_request r;
  r.prompt = model_input::from_ints({256, 72, 105});
  r.sampling_params.max_tokens = 8;
  r.sampling_params.seed = 11;
  r.sampling_session_id = sampler;
  r.seq_id = seq;
  r.num_samples = 2;
  return r;
}

std::string create_sampler(engine_fixture& f, const std::string& session, std::int64_t seq,
                           std::optional<std::string> base, std::optional<std::string> path) {
  auto res = f.post("/api/v1/create_sampling_session",
                    create_sampling_session_request{session, seq, std::move(base), std::move(path)});
  return json::from_json<create_sampling_session_response>(res.body).sampling_session_id;
}

sample_response sample_now(engine_fixture& f, const sample_request& r) {
  return proto::decode_sample_response(f.wait(future_id(f.post("/api/v1/asample", r)), true).body);
}

std::string save_sampler(engine_fixture& f, const std::string& model, const std::string& name, std::int64_t seq) {
  save_weights_for_sampler_request sfs;
  sfs.model_id = model;
  sfs.path = name;
  sfs.seq_id = seq;
  return *json::from_value<save_weights_for_sampler_response>(
              f.submit_and_wait("/api/v1/save_weights_for_sampler", json::to_json(sfs)))
              .path;
}

std::string save_state(engine_fixture& f, const std::string& model, const std::string& name, std::int64_t seq,
                       std::optional<std::int64_t> ttl = std::nullopt, bool overwrite = false) {
  save_weights_request save{model, name, seq, ttl, overwrite, std::nullopt};
  return json::from_value<save_weights_response>(f.submit_and_wait("/api/v1/save_weights", json::to_json(save))).path;
}

std::vector<checkpoint> checkpoints_of(engine_fixture& f, const std::string& model) {
  return json::from_json<checkpoints_list_response>(f.http->get("/api/v1/training_runs/" + model + "/checkpoints").body)
      .checkpoints;
}

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_SUITE("engine") {
  TEST_CASE("per-token tensors with huge shapes are refused before anything is allocated, over JSON and protobuf") {
    engine_fixture f;
    const auto model = f.create_model(f.create_session());
    constexpr std::int64_t huge = std::int64_t{1} << 62;  // 4 x 2^62 wraps to 0 in 64 bits
    boost::json::object weights{{"data", boost::json::array{1.0, 1.0, 1.0, 1.0}}, {"dtype", "float32"}};
    auto expect_refused = [&](const sync_response& res) {
      CHECK_MESSAGE(res.status == 400, res.status << " " << res.body);
      CHECK_MESSAGE(contains(detail_of(res), "target_tokens"), res.body);
    };
    std::int64_t seq = 1;
    // Sparse [4, 2^62] with one non-zero at column 5.
    boost::json::object sparse{{"data", ints({1})},
                               {"dtype", "int64"},
                               {"shape", ints({4, huge})},
                               {"sparse_crow_indices", ints({0, 0, 1, 1, 1})},
                               {"sparse_col_indices", ints({5})}};
    expect_refused(
        f.http->post_raw("/api/v1/forward_backward",
                         json_fb(model, seq++, ints({1, 2, 3, 4}), {{"target_tokens", sparse}, {"weights", weights}}),
                         "application/json"));
    // Dense [4, 2^62] with no values (the element count wraps to the number of values given).
    boost::json::object dense{{"data", boost::json::array{}}, {"dtype", "int64"}, {"shape", ints({4, huge})}};
    expect_refused(
        f.http->post_raw("/api/v1/forward_backward",
                         json_fb(model, seq++, ints({1, 2, 3, 4}), {{"target_tokens", dense}, {"weights", weights}}),
                         "application/json"));
    // The same over protobuf.
    const auto w = pb_dense(pb::little_endian(std::vector<float>{1, 1, 1, 1}), 1, {4});
    const auto sparse_pb =
        pb_sparse(pb::little_endian(std::vector<std::int64_t>{1}), 2, {4, huge}, {0, 0, 1, 1, 1}, {5});
    expect_refused(f.http->post_raw(
        "/api/v1/forward_backward",
        pb_request(model, seq++, pb_datum({1, 2, 3, 4}, {{"target_tokens", sparse_pb}, {"weights", w}}),
                   "cross_entropy"),
        "application/x-protobuf"));
    const auto dense_pb = pb_dense("", 2, {4, huge});
    expect_refused(
        f.http->post_raw("/api/v1/forward_backward",
                         pb_request(model, seq++, pb_datum({1, 2, 3, 4}, {{"target_tokens", dense_pb}, {"weights", w}}),
                                    "cross_entropy"),
                         "application/x-protobuf"));
    // Wider than the vocabulary, but otherwise consistent: refused too (K <= vocab).
    const auto wide = pb_sparse(pb::little_endian(std::vector<std::int64_t>{1}), 2, {4, 100000}, {0, 0, 1, 1, 1}, {5});
    expect_refused(f.http->post_raw(
        "/api/v1/forward_backward",
        pb_request(model, seq++, pb_datum({1, 2, 3, 4}, {{"target_tokens", wide}, {"weights", w}}), "cross_entropy"),
        "application/x-protobuf"));
    // The server is fine, and the model's queue moved past every refused seq_id.
    CHECK(f.http->get("/api/v1/healthz").status == 200);
    CHECK(std::isfinite(loss_sum(f.forward_backward(model, seq++, {engine_fixture::text_datum("still here")}))));
  }

  TEST_CASE("a request declaring more dense elements than max_request_dense_elements is refused, naming the field") {
    engine_fixture f;
    const auto model = f.create_model(f.create_session());
    std::int64_t seq = 1;
    auto expect_capped = [&](const sync_response& res, const std::string& field, const std::string& value) {
      REQUIRE_MESSAGE(res.status == 400, res.status << " " << res.body);
      const auto detail = detail_of(res);
      CHECK_MESSAGE(contains(detail, "forward_backward_input." + field + ": " + value), detail);
      CHECK_MESSAGE(contains(detail, "4194304 elements (the engine's max_request_dense_elements"), detail);
    };
    // One CSR tensor of a few bytes declaring [4, 2^26] (within a single tensor's own bound, 2^28).
    constexpr std::int64_t wide = std::int64_t{1} << 26;
    boost::json::object sparse{{"data", ints({1})},
                               {"dtype", "int64"},
                               {"shape", ints({4, wide})},
                               {"sparse_crow_indices", ints({0, 1, 1, 1, 1})},
                               {"sparse_col_indices", ints({5})}};
    boost::json::object weights{{"data", boost::json::array{1.0, 1.0, 1.0, 1.0}}, {"dtype", "float32"}};
    expect_capped(
        f.http->post_raw("/api/v1/forward_backward",
                         json_fb(model, seq++, ints({1, 2, 3, 4}), {{"target_tokens", sparse}, {"weights", weights}}),
                         "application/json"),
        "data[0].loss_fn_inputs.target_tokens", "shape [4, 67108864] (268435456 elements)");
    const auto w = pb_dense(pb::little_endian(std::vector<float>{1, 1, 1, 1}), 1, {4});
    const auto sparse_pb =
        pb_sparse(pb::little_endian(std::vector<std::int64_t>{1}), 2, {4, wide}, {0, 1, 1, 1, 1}, {5});
    expect_capped(f.http->post_raw(
                      "/api/v1/forward_backward",
                      pb_request(model, seq++, pb_datum({1, 2, 3, 4}, {{"target_tokens", sparse_pb}, {"weights", w}}),
                                 "cross_entropy"),
                      "application/x-protobuf"),
                  "data[0].loss_fn_inputs.target_tokens", "shape [4, 67108864] (268435456 elements)");
    // Datums each valid on their own (1024 tokens, [1024, 258] CSR inputs with one non-zero: 529408
    // dense elements) but 8 of them together past 4 Mi: the 8th datum's weights cross the limit.
    // Without the total cap this ~150 KB body would be expanded to 4.2 M elements and run.
    std::vector<std::int32_t> tokens(1024, 65);
    std::vector<std::int64_t> crow(1025, 1);
    crow[0] = 0;
    pb r;
    r.bytes(1, model).integer(2, seq++);
    for (int i = 0; i < 8; ++i)
      r.message(
          3, pb_datum(tokens,
                      {{"target_tokens",
                        pb_sparse(pb::little_endian(std::vector<std::int64_t>{66}), 2, {1024, 258}, crow, {5})},
                       {"weights", pb_sparse(pb::little_endian(std::vector<float>{1}), 1, {1024, 258}, crow, {5})}}));
    r.bytes(4, "cross_entropy");
    expect_capped(f.http->post_raw("/api/v1/forward_backward", r.out, "application/x-protobuf"),
                  "data[7].loss_fn_inputs.weights", "shape [1024, 258] (264192 elements)");
    // The server is fine, and the model's queue moved past every refused seq_id.
    CHECK(f.http->get("/api/v1/healthz").status == 200);
    CHECK(std::isfinite(loss_sum(f.forward_backward(model, seq++, {engine_fixture::text_datum("still here")}))));
  }

  TEST_CASE("max_request_dense_elements counts model-input tokens and every loss input, the limit itself is allowed") {
    const auto d = engine_fixture::text_datum("hello");  // 5 tokens, targets [5], weights [5]
    const std::size_t exact = 15;
    auto options = test_engine_options();
    options.max_request_dense_elements = exact;
    engine_fixture f(options);
    const auto model = f.create_model(f.create_session());
    CHECK(std::isfinite(loss_sum(f.forward_backward(model, 1, {d}))));
    forward_backward_request req{forward_backward_input{{d, d}, loss_fn_type::cross_entropy, std::nullopt}, model, 2,
                                 false};
    auto res = f.http->post_raw("/api/v1/forward_backward", json::to_json(req), "application/json");
    REQUIRE_MESSAGE(res.status == 400, res.body);
    CHECK_MESSAGE(contains(detail_of(res),
                           "forward_backward_input.data[1].model_input.chunks[0]: 5 tokens takes the "
                           "request's dense size past 15 elements"),
                  res.body);
    CHECK(std::isfinite(loss_sum(f.forward_backward(model, 3, {d}))));
    auto zero = test_engine_options();
    zero.max_request_dense_elements = 0;
    boost::asio::io_context io;
    CHECK_THROWS_AS(local::engine(io.get_executor(), zero), tinker::invalid_argument);
  }

  TEST_CASE("negative or non-integer seq_ids are refused with 400 naming seq_id, on every queued route") {
    engine_fixture f;
    const auto model = f.create_model(f.create_session());
    auto expect_refused = [&](const std::string& route, const std::string& body, const std::string& type,
                              const std::string& value) {
      auto res = f.http->post_raw("/api/v1/" + route, body, type);
      REQUIRE_MESSAGE(res.status == 400, route << " " << value << " -> " << res.status << " " << res.body);
      CHECK_MESSAGE(contains(detail_of(res), "seq_id"), res.body);
      if (!value.empty()) CHECK_MESSAGE(contains(detail_of(res), value), res.body);
    };
    boost::json::object weights{{"data", boost::json::array{1.0, 1.0}}, {"dtype", "float32"}};
    boost::json::object targets{{"data", ints({3, 4})}, {"dtype", "int64"}};
    auto fb = [&](boost::json::value seq) {
      auto v = boost::json::parse(json_fb(model, 1, ints({1, 2}), {{"target_tokens", targets}, {"weights", weights}}));
      v.as_object()["seq_id"] = std::move(seq);
      return boost::json::serialize(v);
    };
    expect_refused("forward_backward", fb(-1), "application/json", "-1");
    {
      auto v = boost::json::parse(fb(-7)).as_object();
      v["forward_input"] = v["forward_backward_input"];
      v.erase("forward_backward_input");
      expect_refused("forward", boost::json::serialize(v), "application/json", "-7");
    }
    expect_refused("forward_backward", fb(1.5), "application/json", "");
    expect_refused("forward_backward", fb("2"), "application/json", "");
    // Protobuf: seq_id is an int32 field; -3 travels as a 10-byte varint.
    const auto w = pb_dense(pb::little_endian(std::vector<float>{1, 1}), 1, {2});
    const auto t = pb_dense(pb::little_endian(std::vector<std::int64_t>{3, 4}), 2, {2});
    expect_refused("forward_backward",
                   pb_request(model, -3, pb_datum({1, 2}, {{"target_tokens", t}, {"weights", w}}), "cross_entropy"),
                   "application/x-protobuf", "-3");
    adam_params p;
    expect_refused("optim_step", json::to_json(optim_step_request{p, model, -2}), "application/json", "-2");
    expect_refused("save_weights",
                   json::to_json(save_weights_request{model, "neg", -4, std::nullopt, false, std::nullopt}),
                   "application/json", "-4");
    save_weights_for_sampler_request sfs;
    sfs.model_id = model;
    sfs.path = "neg";
    sfs.seq_id = -5;
    expect_refused("save_weights_for_sampler", json::to_json(sfs), "application/json", "-5");
    const auto sampler = create_sampler(f, f.create_session(), 0, std::string(tiny_model), std::nullopt);
    auto sample = small_sample(sampler, -6);
    expect_refused("asample", json::to_json(sample), "application/json", "-6");
    // Nothing was queued or used up: the model's first operation is still seq_id 1.
    CHECK(std::isfinite(loss_sum(f.forward_backward(model, 1, {engine_fixture::text_datum("after")}))));
    CHECK(checkpoints_of(f, model).empty());
  }

  TEST_CASE("asample refuses impossible sampling parameters at submission, naming the field") {
    engine_fixture f;
    const auto session = f.create_session();
    const auto sampler = create_sampler(f, session, 0, tiny_model, std::nullopt);
    auto refused = [&](sample_request r, const std::string& needle, const std::string& route = "/api/v1/asample") {
      auto res = f.post(route, r, 400);
      CHECK_MESSAGE(contains(detail_of(res), needle), res.body);
    };
    auto r = small_sample(sampler, 0);
    r.num_samples = 1'000'000'000;
    refused(r, "num_samples");
    refused(r, "num_samples", "/api/v1/sample");
    CHECK(f.hook().pending_sample_count() == 0);
    CHECK(f.hook().future_count() == 0);
    r = small_sample(sampler, 1);
    r.sampling_params.max_tokens = 5000;  // prompt + max_tokens > the 4096-token context
    refused(r, "max_tokens");
    r = small_sample(sampler, 2);
    r.num_samples = 60'000;
    r.sampling_params.max_tokens = 4000;  // 240 M tokens for one request
    refused(r, "per-request limit");
    r = small_sample(sampler, 3);
    r.sampling_params.temperature = -1;
    refused(r, "temperature");
    r = small_sample(sampler, 4);
    r.sampling_params.top_p = 0;
    refused(r, "top_p");
    r = small_sample(sampler, 5);
    r.sampling_params.top_k = 0;
    refused(r, "top_k");
    r = small_sample(sampler, 6);
    r.topk_prompt_logprobs = 100'000;
    refused(r, "topk_prompt_logprobs");
    r = small_sample(sampler, 7);
    r.prompt = model_input::from_ints({256, 70000});
    refused(r, "70000");
    CHECK(f.hook().pending_sample_count() == 0);
    // Still serving.
    CHECK(sample_now(f, small_sample(sampler, 8)).sequences.size() == 2);
  }

  TEST_CASE("an identical resubmission whose result expired answers 400 (never a crash), and the model goes on") {
    auto o = test_engine_options();
    o.future_retention = std::chrono::milliseconds(0);
    o.maintenance_interval = std::chrono::hours(1);  // expiry only when the test says so
    engine_fixture f(o);
    const auto model = f.create_model(f.create_session());
    const auto data = std::vector<datum>{engine_fixture::text_datum("expire me")};
    forward_backward_request req{forward_backward_input{data, loss_fn_type::cross_entropy, std::nullopt}, model, 1,
                                 false};
    const auto body = proto::encode(req);
    const auto id = future_id(f.http->post_raw("/api/v1/forward_backward", body, "application/x-protobuf"));
    REQUIRE(f.wait(id, true).status == 200);
    adam_params p;
    const auto optim_body = json::to_json(optim_step_request{p, model, 2});
    const auto optim_id = future_id(f.http->post_raw("/api/v1/optim_step", optim_body, "application/json"));
    REQUIRE(f.wait(optim_id).status == 200);
    f.engine->run_maintenance();
    CHECK(f.hook().future_count() == 0);
    f.post("/api/v1/retrieve_future", future_retrieve_request{id, true}, 404);
    auto again = f.http->post_raw("/api/v1/forward_backward", body, "application/x-protobuf");
    CHECK(again.status == 400);
    CHECK_MESSAGE(contains(detail_of(again), "expired"), again.body);
    auto optim_again = f.http->post_raw("/api/v1/optim_step", optim_body, "application/json");
    CHECK(optim_again.status == 400);
    CHECK_MESSAGE(contains(detail_of(optim_again), "expired"), optim_again.body);
    CHECK(std::isfinite(loss_sum(f.forward_backward(model, 3, data))));
  }

  TEST_CASE("a request refused while being decoded still uses up its seq_id, a 415 does not") {
    auto o = test_engine_options();
    o.long_poll_hold = std::chrono::milliseconds(200);
    engine_fixture f(o);
    const auto model = f.create_model(f.create_session());
    const auto data = std::vector<datum>{engine_fixture::text_datum("keep going")};
    // optim_step with another optimizer family (no adam_params).
    const auto dimuon = boost::json::serialize(
        boost::json::object{{"model_id", model},
                            {"seq_id", 1},
                            {"optimizer_params", boost::json::object{{"type", "dimuon"}, {"learning_rate", 0.1}}},
                            {"type", "optim_step"}});
    auto res = f.http->post_raw("/api/v1/optim_step", dimuon, "application/json");
    CHECK(res.status == 400);
    CHECK_MESSAGE(contains(detail_of(res), "optimizer_params"), res.body);
    CHECK(std::isfinite(loss_sum(f.forward_backward(model, 2, data))));
    // Protobuf with a text value in loss_fn_config_v2.
    const auto w = pb_dense(pb::little_endian(std::vector<float>{1, 1}), 1, {2});
    const auto t = pb_dense(pb::little_endian(std::vector<std::int64_t>{2, 3}), 2, {2});
    pb text_value;
    text_value.bytes(2, "high");
    res = f.http->post_raw("/api/v1/forward_backward",
                           pb_request(model, 3, pb_datum({1, 2}, {{"target_tokens", t}, {"weights", w}}), "ppo",
                                      {{"clip_high_threshold", text_value}}),
                           "application/x-protobuf");
    CHECK(res.status == 400);
    CHECK_MESSAGE(contains(detail_of(res), "high"), res.body);
    CHECK(std::isfinite(loss_sum(f.forward_backward(model, 4, data))));
    // Protobuf and JSON with an unknown loss.
    res = f.http->post_raw("/api/v1/forward_backward",
                           pb_request(model, 5, pb_datum({1, 2}, {{"target_tokens", t}, {"weights", w}}), "magic"),
                           "application/x-protobuf");
    CHECK(res.status == 400);
    CHECK_MESSAGE(contains(detail_of(res), "magic"), res.body);
    CHECK(std::isfinite(loss_sum(f.forward_backward(model, 6, data))));
    boost::json::object target{{"data", ints({2, 3})}, {"dtype", "int64"}};
    boost::json::object weights{{"data", boost::json::array{1.0, 1.0}}, {"dtype", "float32"}};
    res = f.http->post_raw("/api/v1/forward_backward",
                           json_fb(model, 7, ints({1, 2}), {{"target_tokens", target}, {"weights", weights}}, "magic"),
                           "application/json");
    CHECK(res.status == 400);
    CHECK(std::isfinite(loss_sum(f.forward_backward(model, 8, data))));
    // 415 (an encoding the server does not take): the client re-sends the same seq_id, which must still be free.
    forward_backward_request req{forward_backward_input{data, loss_fn_type::cross_entropy, std::nullopt}, model, 9,
                                 false};
    res = f.http->post_raw("/api/v1/forward_backward", proto::encode(req), "application/x-protobuf",
                           {{"Content-Encoding", "zstd"}});
    CHECK(res.status == 415);
    auto out =
        json::from_value<forward_backward_output>(f.submit_and_wait("/api/v1/forward_backward", json::to_json(req)));
    CHECK(std::isfinite(out.metrics.at("loss:sum")));
  }

  TEST_CASE("seq_ids far beyond the next expected one are refused, the model keeps its place") {
    auto o = test_engine_options();
    o.max_seq_id_gap = 100;
    engine_fixture f(o);
    const auto model = f.create_model(f.create_session());
    const auto data = std::vector<datum>{engine_fixture::text_datum("window")};
    forward_backward_request far{forward_backward_input{data, loss_fn_type::cross_entropy, std::nullopt}, model, 102,
                                 false};
    auto res = f.http->post_raw("/api/v1/forward_backward", proto::encode(far), "application/x-protobuf");
    CHECK(res.status == 400);
    CHECK_MESSAGE(contains(detail_of(res), "seq_id 102"), res.body);
    adam_params p;
    res = f.post("/api/v1/optim_step", optim_step_request{p, model, 1'000'000'000}, 400);
    CHECK(contains(detail_of(res), "too far ahead"));
    // Within the window: parked until its turn, then run.
    far.seq_id = 3;
    const auto parked =
        future_id(f.http->post_raw("/api/v1/forward_backward", proto::encode(far), "application/x-protobuf"));
    CHECK(std::isfinite(loss_sum(f.forward_backward(model, 1, data))));
    f.optim_step(model, 2);
    CHECK(f.wait(parked, true).status == 200);
    // A bad engine option is refused.
    o.max_seq_id_gap = 0;
    CHECK_THROWS_AS(local::embedded_engine{o}, tinker::invalid_argument);
  }

  TEST_CASE("checkpoint TTLs are capped at 10 years, saves with ttl_seconds expire, overwrite=true replaces") {
    auto o = test_engine_options();
    o.session_timeout = std::chrono::hours(24 * 365);  // the clock jumps an hour below: keep the session
    engine_fixture f(o);
    const auto model = f.create_model(f.create_session());
    const auto ckpt = save_state(f, model, "kept", 1);
    const auto route = "/api/v1/training_runs/" + model + "/checkpoints/weights/kept";
    auto res = f.http->put(route + "/ttl", boost::json::object{{"ttl_seconds", 10'000'000'000'000}});
    CHECK(res.status == 400);
    CHECK(contains(detail_of(res), "ttl_seconds"));
    CHECK(contains(detail_of(res), "10 years"));
    f.engine->run_maintenance();
    CHECK(f.post("/api/v1/weights_info", weights_info_request{ckpt}).status == 200);
    // Exactly 10 years is fine, and its expiry formats as a timestamp.
    CHECK(f.http->put(route + "/ttl", boost::json::object{{"ttl_seconds", 10 * 365 * 86'400}}).status == 200);
    auto list = checkpoints_of(f, model);
    REQUIRE(list.size() == 1);
    REQUIRE(list[0].expires_at);
    CHECK(*list[0].expires_at > std::chrono::system_clock::now() + std::chrono::hours(24 * 365 * 9));
    f.engine->run_maintenance();
    CHECK(f.post("/api/v1/weights_info", weights_info_request{ckpt}).status == 200);

    // The saves refuse such TTLs too (and use up their seq_id).
    save_weights_request save{model, "forever", 2, 10'000'000'000'000, false, std::nullopt};
    CHECK(contains(detail_of(f.post("/api/v1/save_weights", save, 400)), "ttl_seconds"));
    save_weights_for_sampler_request sfs;
    sfs.model_id = model;
    sfs.path = "forever-sampler";
    sfs.seq_id = 3;
    sfs.ttl_seconds = 10'000'000'000'000;
    CHECK(contains(detail_of(f.post("/api/v1/save_weights_for_sampler", sfs, 400)), "ttl_seconds"));

    // ttl_seconds on a save: listed, then really deleted once it passes.
    const auto short_lived = save_state(f, model, "short", 4, 3600);
    bool expiring = false;
    for (const auto& c : checkpoints_of(f, model)) expiring |= c.tinker_path == short_lived && c.expires_at.has_value();
    CHECK(expiring);
    f.clock.advance(std::chrono::seconds(3601));
    f.engine->run_maintenance();
    f.post("/api/v1/weights_info", weights_info_request{short_lived}, 404);
    CHECK(!std::filesystem::exists(f.engine->data_dir() / "runs" / model / "weights" / "short"));

    // overwrite=true replaces a training state: loading it gives the newer weights.
    const auto data = std::vector<datum>{engine_fixture::text_datum("overwrite me")};
    const auto at_save = loss_sum(f.forward_backward(model, 5, data, loss_fn_type::cross_entropy, true));
    f.forward_backward(model, 6, data);
    f.optim_step(model, 7, 0.1);
    const auto trained = loss_sum(f.forward_backward(model, 8, data, loss_fn_type::cross_entropy, true));
    REQUIRE(trained != at_save);
    CHECK(save_state(f, model, "kept", 9, std::nullopt, true) == ckpt);
    load_weights_request load;
    load.model_id = model;
    load.seq_id = 10;
    load.path = ckpt;
    f.submit_and_wait("/api/v1/load_weights", json::to_json(load));
    CHECK(loss_sum(f.forward_backward(model, 11, data, loss_fn_type::cross_entropy, true)) == trained);
  }

  TEST_CASE("unnamed save_weights_for_sampler reserves its sampler id at submission: a second one cannot take it") {
    engine_fixture f;
    const auto session = f.create_session();
    const auto model = f.create_model(session);
    auto unnamed = [&](std::int64_t seq, std::int64_t sampler_seq) {
      save_weights_for_sampler_request sfs;
      sfs.model_id = model;
      sfs.seq_id = seq;
      sfs.sampling_session_seq_id = sampler_seq;
      return f.http->post_raw("/api/v1/save_weights_for_sampler", json::to_json(sfs), "application/json");
    };
    // seq_id 2 waits in the model's queue for seq_id 1: accepted, not yet run, so no sampler exists.
    const auto first = future_id(unnamed(2, 7));
    auto second = unnamed(3, 7);
    REQUIRE_MESSAGE(second.status == 400, second.body);
    CHECK(contains(detail_of(second), "sampling_session_seq_id 7 is already in use"));
    auto direct = f.post("/api/v1/create_sampling_session",
                         create_sampling_session_request{session, 7, std::string(tiny_model), std::nullopt}, 400);
    CHECK(contains(detail_of(direct), "sampling_session_seq_id 7"));
    const auto data = std::vector<datum>{engine_fixture::text_datum("zzzzzzzzzzzzzzzz")};
    f.forward_backward(model, 1, data);  // lets seq_id 2 run
    const auto first_sampler =
        *json::from_json<save_weights_for_sampler_response>(f.wait(first).body).sampling_session_id;
    CHECK(first_sampler == session + ":sample:7");
    // Back to back, with a training step between them: two ids, two different sets of weights.
    f.optim_step(model, 4, 0.2);  // (seq_id 3 was used up by the refused request)
    const auto second_sampler =
        *json::from_json<save_weights_for_sampler_response>(f.wait(future_id(unnamed(5, 8))).body).sampling_session_id;
    CHECK(second_sampler == session + ":sample:8");
    auto sample = [&](const std::string& sampler, std::int64_t seq) {
      auto r = small_sample(sampler, seq);
      r.prompt_logprobs = true;  // compared NaN-aware by sample_response's ==
      auto out = sample_now(f, r);
      REQUIRE(out.prompt_logprobs.has_value());
      return out;
    };
    const auto a = sample(first_sampler, 1), b = sample(second_sampler, 1);
    CHECK_FALSE(a == b);
    CHECK(sample(first_sampler, 2) == a);  // the first sampler kept its weights
  }

  TEST_CASE("overwrite=true renames a complete new checkpoint into place: no scratch left, crashes recovered") {
    temp_dir dir;
    const auto options = test_engine_options(dir.path.string());
    const auto data = std::vector<datum>{engine_fixture::text_datum("overwrite me on disk")};
    auto scratch_entries = [&] {
      std::vector<std::string> found;
      for (const auto& e : std::filesystem::recursive_directory_iterator(dir.path))
        if (contains(e.path().filename().string(), "#") || e.path().extension() == ".tmp")
          found.push_back(e.path().string());
      return found;
    };
    std::string model, ckpt;
    double trained = 0;
    {
      engine_fixture f(options);
      model = f.create_model(f.create_session());
      ckpt = save_state(f, model, "ck", 1);
      const auto at_save = loss_sum(f.forward_backward(model, 2, data, loss_fn_type::cross_entropy, true));
      f.forward_backward(model, 3, data);
      f.optim_step(model, 4, 0.1);
      trained = loss_sum(f.forward_backward(model, 5, data, loss_fn_type::cross_entropy, true));
      REQUIRE(trained != at_save);
      CHECK(save_state(f, model, "ck", 6, std::nullopt, true) == ckpt);
      CHECK(scratch_entries().empty());
      CHECK(checkpoints_of(f, model).size() == 1);
    }
    const auto weights_dir = dir.path / "runs" / model / "weights";
    auto load_into_new_model = [&](engine_fixture& f) {
      const auto copy = f.create_model(f.create_session());
      load_weights_request load;
      load.model_id = copy;
      load.seq_id = 1;
      load.path = ckpt;
      f.submit_and_wait("/api/v1/load_weights", json::to_json(load));
      return loss_sum(f.forward_backward(copy, 2, data, loss_fn_type::cross_entropy, true));
    };
    {
      // After a restart the checkpoint on disk is the new one.
      engine_fixture f(options);
      CHECK(load_into_new_model(f) == trained);
    }
    // A crash between renaming the old checkpoint aside and the new one into place, with another
    // write unfinished: the next start puts the checkpoint back and removes the scratch.
    std::filesystem::rename(weights_dir / "ck", weights_dir / "ck#old-0123");
    std::filesystem::create_directories(weights_dir / "ck#tmp-4567");
    {
      std::ofstream half(weights_dir / "ck#tmp-4567" / "adapter_model.safetensors", std::ios::binary);
      half << "half";
    }
    engine_fixture f(options);
    CHECK(scratch_entries().empty());
    CHECK(checkpoints_of(f, model).size() == 1);
    CHECK(load_into_new_model(f) == trained);
  }

  TEST_CASE(
      "sampler weights are immutable: saving the name again answers 400, uses the seq_id, and samples stay the same") {
    engine_fixture f;
    const auto session = f.create_session();
    const auto model = f.create_model(session);
    save_weights_for_sampler_request sfs;
    sfs.model_id = model;
    sfs.path = "x";
    sfs.seq_id = 1;
    const auto first_id = future_id(f.post("/api/v1/save_weights_for_sampler", sfs));
    const auto path = *json::from_json<save_weights_for_sampler_response>(f.wait(first_id).body).path;
    auto request = small_sample(create_sampler(f, session, 0, std::nullopt, path), 0);
    const auto before = sample_now(f, request);

    const auto data = std::vector<datum>{engine_fixture::text_datum("zzzzzzzzzzzzzzzz")};
    f.forward_backward(model, 2, data);
    f.optim_step(model, 3, 0.2);
    // The identical first request again: the original request id (it does not run twice).
    CHECK(future_id(f.post("/api/v1/save_weights_for_sampler", sfs)) == first_id);
    // The same name at a later seq_id: refused for good (400, not 409).
    sfs.seq_id = 4;
    auto res = f.post("/api/v1/save_weights_for_sampler", sfs, 400);
    CHECK(contains(detail_of(res), "already exists"));
    // Its seq_id is used up: the next operation runs.
    CHECK(std::isfinite(loss_sum(f.forward_backward(model, 5, data))));
    // The sampler, and a new one loading the checkpoint from disk, sample what they did before.
    request.seq_id = 1;
    CHECK(sample_now(f, request).sequences == before.sequences);
    auto fresh = small_sample(create_sampler(f, session, 1, std::nullopt, path), 0);
    CHECK(sample_now(f, fresh).sequences == before.sequences);
  }

  TEST_CASE(
      "create_model refuses a rank above the maximum without leaving a run behind, load_weights refuses another LoRA "
      "shape") {
    engine_fixture f;
    const auto session = f.create_session();
    create_model_request big{session, 0, tiny_model, std::nullopt, lora_config{5000, 1, true, true, true}};
    auto res = f.post("/api/v1/create_model", big, 400);
    CHECK(contains(detail_of(res), "rank"));
    CHECK(json::from_json<training_runs_response>(f.http->get("/api/v1/training_runs").body).training_runs.empty());
    CHECK(!std::filesystem::exists(f.engine->data_dir() / "runs" / (session + ":train:0")));
    CHECK(f.hook().loaded_model_count() == 0);
    // The model_seq_id is still free.
    const auto rank4 = f.create_model(session, 0, 4);
    const auto rank8 = f.create_model(session, 1, 8);
    const auto ckpt = save_state(f, rank8, "rank8", 1);
    load_weights_request load;
    load.model_id = rank4;
    load.seq_id = 1;
    load.path = ckpt;
    res = f.post("/api/v1/load_weights", load, 400);
    CHECK(contains(detail_of(res), "rank 8"));
    CHECK(std::isfinite(loss_sum(f.forward_backward(rank4, 2, {engine_fixture::text_datum("next")}))));
  }

  TEST_CASE("create_sampling_session takes base_model and model_path together when they agree") {
    auto o = test_engine_options();
    o.model_aliases["Qwen/Qwen3-8B"] = tiny_model;
    engine_fixture f(o);
    const auto session = f.create_session();
    const auto model = f.create_model(session);
    const auto path = save_sampler(f, model, "s", 1);
    const auto both = create_sampler(f, session, 0, std::string(tiny_model), path);
    CHECK(sample_now(f, small_sample(both, 0)).sequences.size() == 2);
    // Through an alias of the same engine model.
    const auto aliased = create_sampler(f, session, 1, std::string("Qwen/Qwen3-8B"), path);
    CHECK(json::from_json<get_sampler_response>(f.http->get("/api/v1/samplers/" + aliased).body).model_path == path);
    // An identical retry gets the same sampler.
    CHECK(create_sampler(f, session, 1, std::string("Qwen/Qwen3-8B"), path) == aliased);
    // Disagreeing, or unknown: 400 naming the problem.
    auto res =
        f.post("/api/v1/create_sampling_session",
               create_sampling_session_request{session, 2, std::string("tinker-local/byte-lm-small"), path}, 400);
    CHECK(contains(detail_of(res), "does not match"));
    res = f.post("/api/v1/create_sampling_session",
                 create_sampling_session_request{session, 3, std::string("no/such-model"), path}, 400);
    CHECK(contains(detail_of(res), "no/such-model"));
    res = f.post("/api/v1/create_sampling_session",
                 create_sampling_session_request{session, 4, std::nullopt, std::nullopt}, 400);
    CHECK(contains(detail_of(res), "base_model"));
  }

  TEST_CASE("long_poll_hold must be positive and at most 40 s") {
    for (auto hold : {std::chrono::milliseconds(0), std::chrono::milliseconds(-5), std::chrono::milliseconds(40'001),
                      std::chrono::milliseconds(std::chrono::hours(1))}) {
      auto o = test_engine_options();
      o.long_poll_hold = hold;
      boost::asio::io_context io;
      CHECK_THROWS_AS(local::engine(io.get_executor(), o), tinker::invalid_argument);
    }
    auto o = test_engine_options();
    o.long_poll_hold = std::chrono::seconds(40);
    boost::asio::io_context io;
    CHECK_NOTHROW(local::engine(io.get_executor(), o));
  }

  TEST_CASE("a poll of an unfinished future is held, then answers try_again: one answer per poll") {
    auto o = test_engine_options();
    o.long_poll_hold = std::chrono::milliseconds(300);
    o.faults.training_step_time = std::chrono::hours(1);
    engine_fixture f(o);
    create_model_request create{f.create_session(), 0, tiny_model, std::nullopt, lora_config{4, 1, true, true, true}};
    const auto id = future_id(f.post("/api/v1/create_model", create));
    for (std::uint64_t n = 1; n <= 2; ++n) {
      auto res = f.post("/api/v1/retrieve_future", future_retrieve_request{id, true});
      CHECK(is_try_again(res));
      CHECK(json::from_json<try_again_response>(res.body).queue_state == queue_state::active);
      CHECK(f.hook().request_count("retrieve_future") == n);
    }
    // retrieve_futures clamps absurd timeouts to [0, hold] and answers.
    const auto sampler = create_sampler(f, create.session_id, 0, tiny_model, std::nullopt);
    for (double timeout : {1e300, -5.0, 0.0}) {
      auto resp = json::from_json<retrieve_futures_response>(
          f.post("/api/v1/retrieve_futures", retrieve_futures_request{{sampler, 0}, 0, timeout}).body);
      CHECK(resp.completions.empty());
      CHECK(resp.cursor == 0);
    }
    // Polls for clones that never completed anything leave no completion log behind.
    for (std::int64_t clone = 1; clone <= 50; ++clone)
      f.post("/api/v1/retrieve_futures", retrieve_futures_request{{sampler, clone * 1'000'000'000}, 0, 0.0});
    CHECK(f.hook().completion_log_count() == 0);
  }

  TEST_CASE("a held poll answers with the result as soon as it is ready") {
    auto o = test_engine_options();
    o.long_poll_hold = std::chrono::seconds(40);  // a broken wake-up would answer try_again only after 40 s
    auto seen = observed::attach(o);
    engine_fixture f(o);
    const auto model = f.create_model(f.create_session());
    const auto data = std::vector<datum>{engine_fixture::text_datum("wake up")};
    // seq 2 waits for seq 1, which is not sent yet: its future cannot finish before we say so.
    forward_backward_request second{forward_backward_input{data, loss_fn_type::cross_entropy, std::nullopt}, model, 2,
                                    true};
    const auto id =
        future_id(f.http->post_raw("/api/v1/forward_backward", proto::encode(second), "application/x-protobuf"));
    const auto polls_before = f.hook().request_count("retrieve_future");
    auto arrived = seen->expect("retrieve_future", id);
    sync_response held;
    std::thread poller([&, url = f.engine->base_url()] {
      sync_http_client client(url);
      held = client.request(verb::post, "/api/v1/retrieve_future", json::to_json(future_retrieve_request{id, true}),
                            {{"Accept", "application/x-protobuf"}});
    });
    arrived.wait();  // the poll is in the engine, waiting
    CHECK(std::isfinite(loss_sum(f.forward_backward(model, 1, data))));
    poller.join();
    CHECK(held.status == 200);
    CHECK(held.header("Content-Type") == "application/x-protobuf");
    CHECK(proto::decode_forward_backward_output(held.body).loss_fn_outputs.size() == 1);
    CHECK(f.hook().request_count("retrieve_future") - polls_before ==
          2);  // the held poll + the fixture's one for seq 1
  }

  TEST_CASE("route latency holds that route's requests while other routes answer") {
    auto o = test_engine_options();
    o.faults.route_latency["create_session"] = std::chrono::hours(1);
    auto seen = observed::attach(o);
    std::thread slow;
    std::atomic<bool> answered{false};
    {
      engine_fixture f(o);
      auto arrived = seen->expect("create_session");
      slow = std::thread([&, url = f.engine->base_url()] {
        try {
          sync_http_client client(url);
          create_session_request req;
          client.post_raw("/api/v1/create_session", json::to_json(req), "application/json");
          answered = true;
        } catch (const std::exception&) {
          // the engine stopped with the request still held: its connection closed
        }
      });
      arrived.wait();
      // The held request has arrived but not been handled: no session exists yet, while other
      // routes answer (the engine handles requests one at a time on one thread, so without the
      // latency the session would exist before these are even read).
      CHECK(f.http->get("/api/v1/get_server_capabilities").status == 200);
      CHECK(json::from_json<list_sessions_response>(f.http->get("/api/v1/sessions").body).sessions.empty());
      CHECK(f.hook().request_count("create_session") == 1);
      CHECK_FALSE(answered.load());
    }  // stopping the engine closes the held connection
    slow.join();
    CHECK_FALSE(answered.load());
  }

  TEST_CASE("pause windows report paused_rate_limit with a reason") {
    auto o = test_engine_options();
    o.long_poll_hold = std::chrono::milliseconds(200);
    engine_fixture f(o);
    create_model_request create{f.create_session(), 0, tiny_model, std::nullopt, lora_config{4, 1, true, true, true}};
    const auto id = future_id(f.post("/api/v1/create_model", create));
    REQUIRE(f.wait(id).status == 200);
    local::fault_options faults;
    faults.pause_state = queue_state::paused_rate_limit;
    faults.pause_period = std::chrono::hours(2);
    faults.pause_duration = std::chrono::hours(2);
    f.engine->set_faults(faults);
    auto paused =
        json::from_json<try_again_response>(f.post("/api/v1/retrieve_future", future_retrieve_request{id, true}).body);
    CHECK(paused.queue_state == queue_state::paused_rate_limit);
    REQUIRE(paused.queue_state_reason);
    CHECK(contains(*paused.queue_state_reason, "rate limit"));
    f.engine->set_faults({});
    CHECK(f.wait(id).body.find("model_id") != std::string::npos);
  }

  TEST_CASE("finish_session: the first call wins, heartbeats answer 410, and it stays finished across restarts") {
    temp_dir dir;
    std::string session;
    {
      engine_fixture f(test_engine_options(dir.path.string()));
      session = f.create_session();
      const auto model = f.create_model(session);
      const auto finish = "/api/v1/sessions/" + session + "/finish";
      auto first = f.http->post(
          finish, boost::json::object{{"reason", boost::json::object{{"type", "success"}, {"detail", "done"}}}});
      REQUIRE(first.status == 200);
      const auto answer = first.json().as_object();
      CHECK(answer.at("reason").as_object().at("type") == "success");
      CHECK(f.hook().loaded_model_count() == 0);
      auto second = f.http->post(finish, boost::json::object{{"reason", boost::json::object{{"type", "errored"}}}});
      REQUIRE(second.status == 200);
      CHECK(second.json().as_object() == answer);  // the recorded reason and time
      CHECK(f.post("/api/v1/session_heartbeat", session_heartbeat_request{session}, 410).status == 410);
      adam_params p;
      f.post("/api/v1/optim_step", optim_step_request{p, model, 1}, 404);
      // Someone else's session: 404.
      f.http->set_api_key("tml-someone-else");
      CHECK(f.http->post(finish, boost::json::object{}).status == 404);
    }
    engine_fixture f(test_engine_options(dir.path.string()));
    CHECK(f.post("/api/v1/session_heartbeat", session_heartbeat_request{session}, 410).status == 410);
    auto again = f.http->post("/api/v1/sessions/" + session + "/finish", boost::json::object{});
    REQUIRE(again.status == 200);
    CHECK(again.json().as_object().at("reason").as_object().at("type") == "success");
  }

  TEST_CASE("unload_model is a future, the unloaded model answers 404, its run stays") {
    engine_fixture f;
    const auto session = f.create_session();
    const auto model = f.create_model(session);
    f.forward_backward(model, 1, {engine_fixture::text_datum("bye")});
    auto v = f.submit_and_wait("/api/v1/unload_model", json::to_json(unload_model_request{model}));
    CHECK(json::from_value<unload_model_response>(v).model_id == model);
    CHECK(f.hook().loaded_model_count() == 0);
    adam_params p;
    CHECK(contains(detail_of(f.post("/api/v1/optim_step", optim_step_request{p, model, 2}, 404)), "not loaded"));
    f.post("/api/v1/unload_model", unload_model_request{model}, 404);
    CHECK(f.post("/api/v1/get_info", get_info_request{model}).status == 200);
    CHECK(f.http->get("/api/v1/training_runs/" + model).status == 200);
  }

  TEST_CASE("create_session accepts user_metadata values of any JSON type") {
    engine_fixture f;
    const auto body = boost::json::serialize(boost::json::object{
        {"tags", boost::json::array{}},
        {"user_metadata",
         boost::json::object{
             {"name", "x"}, {"n", 5}, {"nested", boost::json::object{{"k", ints({1, 2})}}}, {"flag", true}}},
        {"sdk_version", "0.25.0"},
        {"type", "create_session"}});
    auto res = f.http->post_raw("/api/v1/create_session", body, "application/json");
    REQUIRE_MESSAGE(res.status == 200, res.body);
    const auto id = json::from_json<create_session_response>(res.body).session_id;
    const auto stored = boost::json::parse(read_text(f.engine->data_dir() / "sessions" / (id + ".json"))).as_object();
    const auto& meta = stored.at("user_metadata").as_object();
    CHECK(meta.at("name") == "x");
    CHECK(meta.at("n") == "5");
    CHECK(meta.at("flag") == "true");
    CHECK(boost::json::parse(meta.at("nested").as_string()) == boost::json::parse(R"({"k":[1,2]})"));
    // create_model's user_metadata likewise.
    const auto create =
        boost::json::serialize(boost::json::object{{"session_id", id},
                                                   {"model_seq_id", 0},
                                                   {"base_model", tiny_model},
                                                   {"user_metadata", boost::json::object{{"step", 3}, {"tag", "a"}}},
                                                   {"lora_config", boost::json::object{{"rank", 4}}}});
    const auto model =
        json::from_value<create_model_response>(f.submit_and_wait("/api/v1/create_model", create)).model_id;
    const auto run = json::from_json<training_run>(f.http->get("/api/v1/training_runs/" + model).body);
    REQUIRE(run.user_metadata);
    CHECK(*run.user_metadata == metadata_map{{"step", "3"}, {"tag", "a"}});
    // Still an object of something: anything else is a 400 naming the field.
    res = f.http->post_raw("/api/v1/create_session", R"({"tags":[],"user_metadata":[1],"sdk_version":"0.25.0"})",
                           "application/json");
    CHECK(res.status == 400);
    CHECK(contains(detail_of(res), "user_metadata"));
  }

  TEST_CASE("another tenant may sample from and load a published checkpoint, but never change it") {
    engine_fixture f;
    const auto owner_session = f.create_session();
    const auto model = f.create_model(owner_session);
    f.forward_backward(model, 1, {engine_fixture::text_datum("shared knowledge")});
    f.optim_step(model, 2, 0.1);
    const auto state = save_state(f, model, "state", 3, 86'400);
    const auto sampler_path = save_sampler(f, model, "sampler", 4);
    const auto base = "/api/v1/training_runs/" + model + "/checkpoints/";
    for (const auto* c : {"weights/state", "sampler_weights/sampler"})
      REQUIRE(f.http->post_raw(base + c + "/publish", "", "application/json").status == 200);
    const auto listed = checkpoints_of(f, model);
    const auto owner_sample =
        sample_now(f, small_sample(create_sampler(f, owner_session, 0, std::nullopt, sampler_path), 0));

    f.http->set_api_key("tml-another-tenant");
    const auto session = f.create_session();
    // Sampling from it and loading it are allowed.
    CHECK(sample_now(f, small_sample(create_sampler(f, session, 0, std::nullopt, sampler_path), 0)).sequences ==
          owner_sample.sequences);
    const auto mine = f.create_model(session);
    load_weights_request load;
    load.model_id = mine;
    load.seq_id = 1;
    load.path = state;
    load.optimizer = true;
    f.submit_and_wait("/api/v1/load_weights", json::to_json(load));
    f.forward_backward(mine, 2, {engine_fixture::text_datum("my own training")});
    f.optim_step(mine, 3, 0.5);
    CHECK(save_state(f, mine, "state", 4).find(mine) != std::string::npos);  // saves go to its own run
    // Changing it is not: 403 for each.
    for (const auto* c : {"weights/state", "sampler_weights/sampler"}) {
      CAPTURE(c);
      CHECK(f.http->del(base + c).status == 403);
      CHECK(f.http->request(verb::delete_, base + c + "/publish").status == 403);
      CHECK(f.http->post_raw(base + c + "/publish", "", "application/json").status == 403);
      CHECK(f.http->put(base + c + "/ttl", boost::json::object{{"ttl_seconds", 60}}).status == 403);
    }
    // Nor can it train the owner's model or use the owner's sessions.
    adam_params p;
    f.post("/api/v1/optim_step", optim_step_request{p, model, 5}, 404);
    f.post("/api/v1/create_sampling_session",
           create_sampling_session_request{owner_session, 5, std::string(tiny_model), std::nullopt}, 404);

    // The owner sees its checkpoints exactly as before and samples the same.
    f.http->set_api_key("tml-test-key");
    const auto after = checkpoints_of(f, model);
    CHECK(after == listed);
    CHECK(sample_now(f, small_sample(create_sampler(f, owner_session, 1, std::nullopt, sampler_path), 0)).sequences ==
          owner_sample.sequences);
    CHECK(std::isfinite(loss_sum(f.forward_backward(model, 5, {engine_fixture::text_datum("owner again")}))));
  }

  TEST_CASE("publishing, TTLs and sessions survive a restart") {
    temp_dir dir;
    std::string session, model, ckpt;
    std::vector<checkpoint> before;
    {
      engine_fixture f(test_engine_options(dir.path.string()));
      session = f.create_session();
      model = f.create_model(session);
      ckpt = save_state(f, model, "durable", 1);
      save_sampler(f, model, "durable-sampler", 2);
      const auto route = "/api/v1/training_runs/" + model + "/checkpoints/weights/durable";
      REQUIRE(f.http->post_raw(route + "/publish", "", "application/json").status == 200);
      REQUIRE(f.http->put(route + "/ttl", boost::json::object{{"ttl_seconds", 7200}}).status == 200);
      before = checkpoints_of(f, model);
    }
    engine_fixture f(test_engine_options(dir.path.string()));
    const auto after = checkpoints_of(f, model);
    CHECK(after == before);
    bool published = false, expiring = false;
    for (const auto& c : after)
      if (c.tinker_path == ckpt) {
        published = c.is_public;
        expiring = c.expires_at.has_value();
      }
    CHECK(published);
    CHECK(expiring);
    f.http->set_api_key("tml-reader");
    CHECK(f.post("/api/v1/weights_info", weights_info_request{ckpt}).status == 200);
    f.http->set_api_key("tml-test-key");
    CHECK(json::from_json<list_sessions_response>(f.http->get("/api/v1/sessions").body).sessions ==
          std::vector<std::string>{session});
    CHECK(json::from_json<get_session_response>(f.http->get("/api/v1/sessions/" + session).body).training_run_ids ==
          std::vector<std::string>{model});
    // The TTL still runs: two hours later the checkpoint is gone.
    f.clock.advance(std::chrono::hours(3));
    f.engine->run_maintenance();
    f.post("/api/v1/weights_info", weights_info_request{ckpt}, 404);
  }

  TEST_CASE(
      "asample: an identical resubmission returns the same request id, a different body with the same seq_id is "
      "refused") {
    engine_fixture f;
    const auto sampler = create_sampler(f, f.create_session(), 0, tiny_model, std::nullopt);
    const auto request = small_sample(sampler, 7);
    auto first = json::from_json<untyped_api_future>(f.post("/api/v1/asample", request).body);
    auto again = json::from_json<untyped_api_future>(f.post("/api/v1/asample", request).body);
    CHECK(again.request_id == first.request_id);
    CHECK(again.sample_sequence_ids == first.sample_sequence_ids);
    REQUIRE(f.wait(first.request_id, true).status == 200);
    CHECK(future_id(f.post("/api/v1/asample", request)) == first.request_id);  // after it finished, too
    auto other = request;
    other.sampling_params.max_tokens = 3;
    CHECK(contains(detail_of(f.post("/api/v1/asample", other, 400)), "seq_id 7"));
  }

  TEST_CASE("allowlist mode accepts only the listed keys") {
    auto o = test_engine_options();
    o.api_keys = {"tml-allowed-key"};
    engine_fixture f(o);
    f.http->set_api_key("tml-allowed-key");
    CHECK(f.http->get("/api/v1/get_server_capabilities").status == 200);
    f.http->set_api_key("tml-not-listed");
    auto res = f.http->get("/api/v1/get_server_capabilities");
    CHECK(res.status == 401);
    CHECK(contains(detail_of(res), "API key"));
    CHECK(!contains(res.body, "tml-not-listed"));
    f.http->set_api_key("");
    CHECK(f.http->get("/api/v1/healthz").status == 200);
  }

  TEST_CASE("training_runs pages with offset and limit: no duplicates, no gaps, the cursor counts the tenant's runs") {
    engine_fixture f;
    f.http->set_api_key("tml-someone-else");
    const auto other_session = f.create_session();
    f.create_model(other_session, 0);
    f.create_model(other_session, 1);
    f.http->set_api_key("tml-test-key");
    const auto session = f.create_session();
    std::set<std::string> mine;
    for (int i = 0; i < 7; ++i) mine.insert(f.create_model(session, i));
    auto list = [&](const std::string& query) {
      auto res = f.http->get("/api/v1/training_runs" + query);
      REQUIRE_MESSAGE(res.status == 200, query << " -> " << res.status << " " << res.body);
      return json::from_json<training_runs_response>(res.body);
    };
    auto ids = [](const training_runs_response& r) {
      std::vector<std::string> out;
      for (const auto& run : r.training_runs) out.push_back(run.training_run_id);
      return out;
    };
    const auto all = list("?offset=0&limit=100");
    CHECK(all.cursor == cursor{0, 100, 7});
    const auto everything = ids(all);
    REQUIRE(everything.size() == 7);
    CHECK(std::set<std::string>(everything.begin(), everything.end()) == mine);  // only this tenant's runs
    // Pages of 3 from offset 1, then the one run before it: every run exactly once, in one order.
    std::vector<std::string> paged;
    for (std::int64_t offset = 1; offset < 7; offset += 3) {
      const auto page = list("?offset=" + std::to_string(offset) + "&limit=3");
      CHECK(page.cursor == cursor{offset, 3, 7});
      CHECK(page.training_runs.size() == static_cast<std::size_t>(std::min<std::int64_t>(3, 7 - offset)));
      for (auto& id : ids(page)) paged.push_back(id);
    }
    CHECK(paged == std::vector<std::string>(everything.begin() + 1, everything.end()));
    const auto first = list("?offset=0&limit=1");
    CHECK(ids(first) == std::vector<std::string>{everything.front()});
    CHECK(first.cursor == cursor{0, 1, 7});
    // Past the end: empty pages, still the right total.
    CHECK(list("?offset=7&limit=3").training_runs.empty());
    CHECK(list("?offset=7&limit=3").cursor == cursor{7, 3, 7});
    CHECK(list("?offset=1000000&limit=5").training_runs.empty());
    // Out-of-range paging parameters are refused, naming them.
    for (const auto* bad : {"?limit=0", "?offset=-1", "?limit=abc", "?limit=10001"}) {
      auto res = f.http->get(std::string("/api/v1/training_runs") + bad);
      CHECK_MESSAGE(res.status == 400, bad << " -> " << res.status << " " << res.body);
      CHECK(contains(detail_of(res), std::string(bad).substr(1, std::string(bad).find('=') - 1)));
    }
  }

  TEST_CASE("sessions/{id} of another tenant answers 404, exactly as an unknown session does") {
    engine_fixture f;
    const auto session = f.create_session();
    const auto model = f.create_model(session);
    auto own = f.http->get("/api/v1/sessions/" + session);
    REQUIRE(own.status == 200);
    CHECK(json::from_json<get_session_response>(own.body).training_run_ids == std::vector<std::string>{model});
    f.http->set_api_key("tml-another-tenant");
    auto theirs = f.http->get("/api/v1/sessions/" + session);
    CHECK(theirs.status == 404);
    CHECK(detail_of(theirs) == "unknown session " + session);
    CHECK(!contains(theirs.body, model));
    auto unknown = f.http->get("/api/v1/sessions/no-such-session");
    CHECK(unknown.status == 404);
    CHECK(detail_of(unknown) == "unknown session no-such-session");
    // Nor do its sub-resources answer for the other tenant.
    CHECK(f.http->get("/api/v1/sessions/" + session + "/trace_export").status == 404);
    f.http->set_api_key("tml-test-key");
    CHECK(f.http->get("/api/v1/sessions/" + session).status == 200);
  }

  TEST_CASE("every authenticated route answers 401 without a valid key, and routes are named as the table says") {
    auto o = test_engine_options();
    auto seen = observed::attach(o);
    engine_fixture f(o);
    std::set<std::string> names;
    for (const auto& route : local::detail::route_table()) {
      CAPTURE(route.name);
      names.insert(std::string(route.name));
      // A concrete target for the pattern.
      std::string target;
      std::string_view pattern = route.pattern;
      while (!pattern.empty()) {
        const auto start = pattern.find('{');
        if (start == std::string_view::npos) {
          target += pattern;
          break;
        }
        target += pattern.substr(0, start);
        const auto end = pattern.find('}', start);
        target += pattern.substr(start, end - start + 1) == "{...}" ? "run/weights/name.tar.gz" : "x";
        pattern.remove_prefix(end + 1);
      }
      for (const auto* key : {"", "not-a-tinker-key", "tml-"}) {
        f.http->set_api_key(key);
        auto res = f.http->request(route.method, target,
                                   route.method == verb::get || route.method == verb::delete_ ? "" : "{}");
        if (route.authenticated) {
          CHECK_MESSAGE(res.status == 401, target << " -> " << res.status << " " << res.body);
          CHECK(contains(detail_of(res), "API key"));
        } else if (route.name == "healthz") {
          CHECK_MESSAGE(res.status == 200, target << " -> " << res.status);
        } else {
          // Signed download URLs take no key, and without a valid signature they serve nothing.
          CHECK_MESSAGE((res.status == 403 || res.status == 404), target << " -> " << res.status << " " << res.body);
        }
        auto records = seen->snapshot();
        REQUIRE(!records.empty());
        CHECK(records.back().route == route.name);
        CHECK(records.back().target == target);
      }
    }
    // Exactly these routes skip authentication; of them only healthz answers without a signature.
    std::set<std::string> open;
    for (const auto& route : local::detail::route_table())
      if (!route.authenticated) open.insert(std::string(route.name));
    CHECK(open == std::set<std::string>{"healthz", "download", "trace_download"});
    CHECK(names.size() == local::detail::route_table().size());  // no route named twice
    CHECK(names.contains("forward_backward"));
    CHECK(names.contains("download"));
  }

  TEST_CASE("the request observer reports each routed request in order: seq_ids, request ids, headers, never the key") {
    auto o = test_engine_options();
    auto seen = observed::attach(o);
    engine_fixture f(o);
    const auto model = f.create_model(f.create_session());
    forward_backward_request req{
        forward_backward_input{{engine_fixture::text_datum("observe")}, loss_fn_type::cross_entropy, std::nullopt},
        model, 1, false};
    const auto id =
        future_id(f.http->post_raw("/api/v1/forward_backward", proto::encode(req), "application/x-protobuf"));
    auto done = f.http->request(verb::post, "/api/v1/retrieve_future", json::to_json(future_retrieve_request{id, true}),
                                {{"X-Tinker-Request-Type", "ForwardBackward"},
                                 {"Accept", "application/x-protobuf"},
                                 {"Authorization", "Bearer tml-test-key"}});
    REQUIRE(done.status == 200);
    adam_params p;
    f.post("/api/v1/optim_step", optim_step_request{p, model, 2});
    f.http->set_api_key("bad-key");
    f.http->get("/api/v1/get_server_capabilities");  // refused, still reported
    f.http->get("/api/v1/not_a_route");              // unrouted: not reported

    const auto records = seen->snapshot();
    std::vector<std::string> routes;
    for (const auto& r : records) routes.push_back(r.route);
    const std::vector<std::string> tail(routes.end() - 4, routes.end());
    CHECK(tail ==
          std::vector<std::string>{"forward_backward", "retrieve_future", "optim_step", "get_server_capabilities"});
    const auto& fb = records[records.size() - 4];
    CHECK(fb.method == "POST");
    CHECK(fb.target == "/api/v1/forward_backward");
    CHECK(fb.model_id == model);
    CHECK(fb.seq_id == 1);
    CHECK(fb.headers.at("content-type") == "application/x-protobuf");
    const auto& poll = records[records.size() - 3];
    CHECK(poll.headers.at("x-tinker-request-type") == "ForwardBackward");
    CHECK(poll.request_id == id);
    CHECK(!poll.seq_id);
    const auto& optim = records[records.size() - 2];
    CHECK(optim.seq_id == 2);
    CHECK(optim.model_id == model);
    for (const auto& r : records) {
      CHECK(!r.headers.contains("x-api-key"));
      CHECK(!r.headers.contains("authorization"));
      for (const auto& [name, value] : r.headers) {
        CHECK(!contains(value, "tml-test-key"));
        CHECK(!contains(value, "bad-key"));
      }
    }
  }

}  // TEST_SUITE
