// Cross-check of the hand-written protobuf codec against the real library: protoc generates
// tinker_public_pb2 from the repository's proto/tinker_public.proto, and Debian's python3-protobuf
// (run with /usr/bin/python3: `python3` on PATH may be a pyenv without it)
//   (a) parses our bytes and prints a canonical JSON form of every field, which this test compares
//       field by field with the C++ values (and re-serializes them: deterministic protobuf output
//       must equal our bytes), and
//   (b) builds the same messages from those canonical values with its own packing code and
//       serializes them with deterministic=True: the bytes must equal ours exactly.
// Missing tools fail the test with the package to install; nothing is skipped silently.
#include "proto_samples.hpp"

#include <tinker/proto/proto.hpp>

#include <boost/json.hpp>
#include <doctest/doctest.h>

#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

using namespace tinker;
namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

constexpr const char* system_python = "/usr/bin/python3";

// The oracle: parse and build with python3-protobuf, packing payloads with `struct` independently
// of the C++ code. Float values travel as strings (repr / shortest round-trip) so NaN and exact
// values survive JSON.
constexpr const char* cross_check_script = R"PY(
import json, struct, sys
sys.path.insert(0, sys.argv[1])
import tinker_public_pb2 as pb
from google.protobuf.internal import api_implementation

def whole(b, size):
    if len(b) % size:
        raise ValueError("payload of %d bytes is not a multiple of %d" % (len(b), size))
    return len(b) // size

def int32s(b): return list(struct.unpack("<%di" % whole(b, 4), b))
def int64s(b): return list(struct.unpack("<%dq" % whole(b, 8), b))
def float32s(b): return [repr(v) for v in struct.unpack("<%df" % whole(b, 4), b)]
def bfloat16s(b):
    return [repr(struct.unpack("<f", struct.pack("<I", h << 16))[0]) for h in struct.unpack("<%dH" % whole(b, 2), b)]

def unpack(dtype, b):
    if dtype == pb.DTYPE_FLOAT32: return float32s(b)
    if dtype == pb.DTYPE_INT64: return int64s(b)
    if dtype == pb.DTYPE_INT32: return int32s(b)
    if dtype == pb.DTYPE_BFLOAT16: return bfloat16s(b)
    raise ValueError("dtype %d" % dtype)

def pack_int32s(v): return struct.pack("<%di" % len(v), *v)
def pack_int64s(v): return struct.pack("<%dq" % len(v), *v)
def pack_float32s(v): return struct.pack("<%df" % len(v), *[float(x) for x in v])

def pack(dtype, v):
    if dtype == pb.DTYPE_FLOAT32: return pack_float32s(v)
    if dtype == pb.DTYPE_INT64: return pack_int64s(v)
    if dtype == pb.DTYPE_INT32: return pack_int32s(v)
    if dtype == pb.DTYPE_BFLOAT16: return b"".join(struct.pack("<f", float(x))[2:] for x in v)
    raise ValueError("dtype %d" % dtype)

# --- message -> canonical ---
def tensor_out(t):
    out = {"dtype": t.dtype, "shape": list(t.shape)}
    kind = t.WhichOneof("encoding")
    if kind == "dense":
        out["dense"] = unpack(t.dtype, t.dense)
    elif kind == "sparse_csr":
        s = t.sparse_csr
        out["sparse_csr"] = {"values": unpack(t.dtype, s.values), "crow_indices": int64s(s.crow_indices),
                             "col_indices": int64s(s.col_indices)}
    else:
        raise ValueError("Tensor without encoding")
    return out

def chunk_out(c):
    kind = c.WhichOneof("chunk")
    if kind == "encoded_text":
        return {"encoded_text": {"tokens": int32s(c.encoded_text.tokens)}}
    if kind == "image":
        i = c.image
        return {"image": {"data": i.data.hex(), "format": i.format,
                          "expected_tokens": i.expected_tokens if i.HasField("expected_tokens") else None}}
    if kind == "dmel":
        return {"dmel": {"dmel": c.dmel.dmel.hex()}}
    raise ValueError("Chunk without member")

def request_out(m):
    return {"model_id": m.model_id, "seq_id": m.seq_id, "loss_fn": m.loss_fn, "forward_only": m.forward_only,
            "loss_fn_config": {k: repr(v) for k, v in m.loss_fn_config.items()},
            "data": [{"model_input": [chunk_out(c) for c in d.model_input],
                      "loss_fn_inputs": {k: tensor_out(t) for k, t in d.loss_fn_inputs.items()}} for d in m.data]}

def output_out(m):
    return {"loss_fn_output_type": m.loss_fn_output_type,
            "metrics": {k: repr(v) for k, v in m.metrics.items()},
            "loss_fn_outputs": [{"type_tag": r.type_tag, "num_datums": r.num_datums,
                                 "fields": {k: {"dtype": b.dtype, "trailing_shape": list(b.trailing_shape),
                                                "offsets": int64s(b.offsets), "data": unpack(b.dtype, b.data)}
                                            for k, b in r.fields.items()}} for r in m.loss_fn_outputs]}

def sample_out(m):
    topk = None
    if m.HasField("topk_prompt_logprobs"):
        t = m.topk_prompt_logprobs
        topk = {"token_ids": int32s(t.token_ids), "logprobs": float32s(t.logprobs), "k": t.k,
                "prompt_length": t.prompt_length}
    return {"sequences": [{"stop_reason": s.stop_reason, "tokens": int32s(s.tokens),
                           "logprobs": float32s(s.logprobs) if s.HasField("logprobs") else None} for s in m.sequences],
            "prompt_logprobs": float32s(m.prompt_logprobs) if m.HasField("prompt_logprobs") else None,
            "topk_prompt_logprobs": topk, "prompt_cache_hit_tokens": m.prompt_cache_hit_tokens}

# --- canonical -> message ---
def tensor_in(tm, t):
    tm.dtype = t["dtype"]
    if "dense" in t:
        tm.dense = pack(t["dtype"], t["dense"])
    else:
        s = t["sparse_csr"]
        tm.sparse_csr.SetInParent()
        tm.sparse_csr.values = pack(t["dtype"], s["values"])
        tm.sparse_csr.crow_indices = pack_int64s(s["crow_indices"])
        tm.sparse_csr.col_indices = pack_int64s(s["col_indices"])
    tm.shape.extend(t["shape"])

def request_in(c):
    m = pb.ForwardBackwardRequest()
    m.model_id = c["model_id"]
    m.seq_id = c["seq_id"]
    m.loss_fn = c["loss_fn"]
    m.forward_only = c["forward_only"]
    for k, v in c["loss_fn_config"].items():
        m.loss_fn_config[k] = float(v)
    for d in c["data"]:
        dm = m.data.add()
        for ch in d["model_input"]:
            cm = dm.model_input.add()
            if "encoded_text" in ch:
                cm.encoded_text.SetInParent()
                cm.encoded_text.tokens = pack_int32s(ch["encoded_text"]["tokens"])
            elif "image" in ch:
                i = ch["image"]
                cm.image.SetInParent()
                cm.image.data = bytes.fromhex(i["data"])
                cm.image.format = i["format"]
                if i["expected_tokens"] is not None:
                    cm.image.expected_tokens = i["expected_tokens"]
            else:
                cm.dmel.SetInParent()
                cm.dmel.dmel = bytes.fromhex(ch["dmel"]["dmel"])
        for name, t in d["loss_fn_inputs"].items():
            tensor_in(dm.loss_fn_inputs[name], t)
    return m

def output_in(c):
    m = pb.ForwardBackwardOutput()
    m.loss_fn_output_type = c["loss_fn_output_type"]
    for k, v in c["metrics"].items():
        m.metrics[k] = float(v)
    for r in c["loss_fn_outputs"]:
        rm = m.loss_fn_outputs.add()
        rm.type_tag = r["type_tag"]
        rm.num_datums = r["num_datums"]
        for name, b in r["fields"].items():
            bm = rm.fields[name]
            bm.data = pack(b["dtype"], b["data"])
            bm.offsets = pack_int64s(b["offsets"])
            bm.dtype = b["dtype"]
            bm.trailing_shape.extend(b["trailing_shape"])
    return m

def sample_in(c):
    m = pb.SampleResponse()
    for s in c["sequences"]:
        sm = m.sequences.add()
        sm.stop_reason = s["stop_reason"]
        sm.tokens = pack_int32s(s["tokens"])
        if s["logprobs"] is not None:
            sm.logprobs = pack_float32s(s["logprobs"])
    if c["prompt_logprobs"] is not None:
        m.prompt_logprobs = pack_float32s(c["prompt_logprobs"])
    t = c["topk_prompt_logprobs"]
    if t is not None:
        m.topk_prompt_logprobs.SetInParent()
        m.topk_prompt_logprobs.token_ids = pack_int32s(t["token_ids"])
        m.topk_prompt_logprobs.logprobs = pack_float32s(t["logprobs"])
        m.topk_prompt_logprobs.k = t["k"]
        m.topk_prompt_logprobs.prompt_length = t["prompt_length"]
    m.prompt_cache_hit_tokens = c["prompt_cache_hit_tokens"]
    return m

TYPES = {
    "ForwardBackwardRequest": (pb.ForwardBackwardRequest, request_out, request_in),
    "ForwardBackwardOutput": (pb.ForwardBackwardOutput, output_out, output_in),
    "SampleResponse": (pb.SampleResponse, sample_out, sample_in),
}

results = []
for job in json.load(open(sys.argv[2])):
    cls, to_canonical, from_canonical = TYPES[job["type"]]
    try:
        if job["op"] == "parse":
            m = cls()
            with open(job["file"], "rb") as f:
                m.ParseFromString(f.read())
            results.append({"canonical": to_canonical(m), "reserialized": m.SerializeToString(deterministic=True).hex()})
        else:
            results.append({"hex": from_canonical(job["value"]).SerializeToString(deterministic=True).hex()})
    except Exception as e:
        results.append({"error": "%s: %s" % (type(e).__name__, e)})
json.dump({"implementation": api_implementation.Type(), "results": results}, sys.stdout)
)PY";

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string run_command(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE_MESSAGE(p, "cannot run " << cmd);
  char buf[65536];
  while (auto n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int rc = pclose(p);
  REQUIRE_MESSAGE(rc == 0, "command failed (status " << rc << "): " << cmd);
  return out;
}

std::string hex(std::string_view s) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::string from_hex(std::string_view h) {
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  return out;
}

std::string first_difference(std::string_view a, std::string_view b) {
  std::size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  if (i == a.size() && i == b.size()) return "identical";
  return "lengths " + std::to_string(a.size() / 2) + " / " + std::to_string(b.size() / 2) +
         " bytes, first difference at byte " + std::to_string(i / 2) + ": ..." + std::string(a.substr(i - i % 2, 32)) +
         " vs ..." + std::string(b.substr(i - i % 2, 32));
}

/// A temporary directory holding the generated tinker_public_pb2.py and the script.
class python_oracle {
public:
  python_oracle() {
    // Fail loudly, naming the package, rather than skipping.
    REQUIRE_MESSAGE(std::system("command -v protoc >/dev/null 2>&1") == 0,
                    "protoc not found on PATH: install the Debian package protobuf-compiler "
                    "(scripts/install-deps.sh installs protobuf-compiler and python3-protobuf)");
    REQUIRE_MESSAGE(fs::exists(system_python),
                    system_python << " not found: install the Debian packages python3 and python3-protobuf "
                                     "(scripts/install-deps.sh does)");
    REQUIRE_MESSAGE(
        std::system((std::string(system_python) + " -c 'import google.protobuf' >/dev/null 2>&1").c_str()) == 0,
        system_python << " cannot import google.protobuf: install the Debian package python3-protobuf "
                         "(scripts/install-deps.sh does)");

    std::string pattern = (fs::temp_directory_path() / "tinker-proto-XXXXXX").string();
    REQUIRE_MESSAGE(mkdtemp(pattern.data()) != nullptr, "mkdtemp failed for " << pattern);
    dir_ = pattern;
    const fs::path proto_dir = fs::path(TINKER_TEST_SOURCE_DIR) / "proto";
    REQUIRE_MESSAGE(fs::exists(proto_dir / "tinker_public.proto"), "missing " << (proto_dir / "tinker_public.proto"));
    run_command("protoc --python_out=" + shell_quote(dir_.string()) + " -I" + shell_quote(proto_dir.string()) +
                " tinker_public.proto 2>&1");
    REQUIRE(fs::exists(dir_ / "tinker_public_pb2.py"));
    std::ofstream(dir_ / "cross_check.py") << cross_check_script;
  }
  ~python_oracle() {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  python_oracle(const python_oracle&) = delete;
  python_oracle& operator=(const python_oracle&) = delete;

  /// Queues python parsing `bytes` as `type`; returns the job's index.
  std::size_t parse(std::string_view type, std::string_view bytes) {
    const auto file = dir_ / ("message" + std::to_string(jobs_.size()) + ".bin");
    std::ofstream(file, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    jobs_.push_back(json::object{{"op", "parse"}, {"type", type}, {"file", file.string()}});
    return jobs_.size() - 1;
  }

  /// Queues python building `type` from canonical values; returns the job's index.
  std::size_t build(std::string_view type, json::value canonical) {
    jobs_.push_back(json::object{{"op", "build"}, {"type", type}, {"value", std::move(canonical)}});
    return jobs_.size() - 1;
  }

  /// Runs every queued job in one python process.
  json::array run() {
    const auto jobs_file = dir_ / "jobs.json";
    std::ofstream(jobs_file) << json::serialize(jobs_);
    const auto out = run_command(std::string(system_python) + " " + shell_quote((dir_ / "cross_check.py").string()) +
                                 " " + shell_quote(dir_.string()) + " " + shell_quote(jobs_file.string()));
    auto result = json::parse(out).as_object();
    MESSAGE("python3-protobuf implementation: " << result.at("implementation").as_string());
    auto results = result.at("results").as_array();
    REQUIRE(results.size() == jobs_.size());
    for (std::size_t i = 0; i < results.size(); ++i)
      if (const auto* error = results[i].as_object().if_contains("error"))
        FAIL_CHECK("python job " << i << " (" << json::serialize(jobs_[i].at("op"))
                                 << ") failed: " << error->as_string());
    return results;
  }

private:
  fs::path dir_;
  json::array jobs_;
};

// --- canonical JSON of the C++ values (the same shape the script produces and consumes) -------------------

std::string number(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

json::array floats(std::span<const float> v) {
  json::array a;
  for (float f : v) a.emplace_back(number(f));
  return a;
}

template <class Int>
json::array ints(std::span<const Int> v) {
  json::array a;
  for (auto x : v) a.emplace_back(static_cast<std::int64_t>(x));
  return a;
}

json::array values_of(const tensor_data& t) {
  if (t.type() == dtype::float32) return floats(t.floats());
  return ints(t.int64s());
}

int wire_dtype(dtype t) { return t == dtype::float32 ? 1 : 2; }

json::object canonical(const forward_backward_request& r) {
  json::object config;
  if (r.forward_backward_input.loss_fn_config)
    for (const auto& [k, v] : *r.forward_backward_input.loss_fn_config) config[k] = number(v);
  json::array data;
  for (const auto& d : r.forward_backward_input.data) {
    json::array chunks;
    for (const auto& c : d.model_input.chunks) {
      if (const auto* t = std::get_if<encoded_text_chunk>(&c))
        chunks.push_back(
            json::object{{"encoded_text", json::object{{"tokens", ints(std::span<const token_id>(t->tokens))}}}});
      else if (const auto* i = std::get_if<image_chunk>(&c))
        chunks.push_back(json::object{
            {"image", json::object{{"data", hex(i->data)},
                                   {"format", to_string(i->format)},
                                   {"expected_tokens",
                                    i->expected_tokens ? json::value(*i->expected_tokens) : json::value(nullptr)}}}});
      else if (const auto* m = std::get_if<dmel_chunk>(&c))
        chunks.push_back(json::object{{"dmel", json::object{{"dmel", hex(m->dmel)}}}});
    }
    json::object inputs;
    for (const auto& [name, t] : d.loss_fn_inputs) {
      json::object o{{"dtype", wire_dtype(t.type())},
                     {"shape", t.shape ? ints(std::span<const std::int64_t>(*t.shape)) : json::array{}}};
      if (!t.is_sparse())
        o["dense"] = values_of(t);
      else
        o["sparse_csr"] = json::object{{"values", values_of(t)},
                                       {"crow_indices", ints(std::span<const std::int64_t>(*t.sparse_crow_indices))},
                                       {"col_indices", ints(std::span<const std::int64_t>(*t.sparse_col_indices))}};
      inputs[name] = std::move(o);
    }
    data.push_back(json::object{{"model_input", std::move(chunks)}, {"loss_fn_inputs", std::move(inputs)}});
  }
  return json::object{{"model_id", r.model_id},
                      {"seq_id", r.seq_id},
                      {"loss_fn", to_string(r.forward_backward_input.loss_fn)},
                      {"forward_only", r.forward_only},
                      {"loss_fn_config", std::move(config)},
                      {"data", std::move(data)}};
}

std::vector<std::int64_t> trailing_of(const tensor_data& t) {
  if (!t.shape || t.shape->empty()) return {};
  return {t.shape->begin() + 1, t.shape->end()};
}

/// Independent of the codec's grouping: a new record whenever the field names, a dtype or a
/// trailing shape change from the previous datum.
json::object canonical(const forward_backward_output& out) {
  json::array records;
  const auto& outs = out.loss_fn_outputs;
  std::size_t begin = 0;
  auto layout = [](const loss_fn_output& o) {
    std::vector<std::tuple<std::string, dtype, std::vector<std::int64_t>>> l;
    for (const auto& [name, t] : o) l.emplace_back(name, t.type(), trailing_of(t));
    return l;
  };
  while (begin < outs.size()) {
    auto end = begin + 1;
    while (end < outs.size() && layout(outs[end]) == layout(outs[begin])) ++end;
    json::object fields;
    for (const auto& field : outs[begin]) {
      const auto& name = field.first;
      const auto& first = field.second;
      json::array offsets{0}, data;
      std::int64_t offset = 0;
      for (auto i = begin; i < end; ++i) {
        const auto& t = outs[i].at(name);
        for (auto& v : values_of(t)) data.push_back(v);
        offset += static_cast<std::int64_t>(t.stored_size() * element_size(t.type()));
        offsets.push_back(offset);
      }
      const auto trailing = trailing_of(first);
      fields[name] = json::object{{"dtype", wire_dtype(first.type())},
                                  {"trailing_shape", ints(std::span<const std::int64_t>(trailing))},
                                  {"offsets", std::move(offsets)},
                                  {"data", std::move(data)}};
    }
    records.push_back(json::object{{"type_tag", ""}, {"num_datums", end - begin}, {"fields", std::move(fields)}});
    begin = end;
  }
  json::object metrics;
  for (const auto& [k, v] : out.metrics) metrics[k] = number(v);
  return json::object{{"loss_fn_output_type", out.loss_fn_output_type},
                      {"metrics", std::move(metrics)},
                      {"loss_fn_outputs", std::move(records)}};
}

json::object canonical(const sample_response& res) {
  json::array sequences;
  for (const auto& s : res.sequences)
    sequences.push_back(
        json::object{{"stop_reason", s.stop_reason == stop_reason::stop ? 0 : 1},
                     {"tokens", ints(std::span<const token_id>(s.tokens))},
                     {"logprobs", s.logprobs ? json::value(floats(*s.logprobs)) : json::value(nullptr)}});
  json::value topk = nullptr;
  if (const auto& t = res.topk_prompt_logprobs)
    topk = json::object{{"token_ids", ints(std::span<const token_id>(t->token_ids))},
                        {"logprobs", floats(t->logprobs)},
                        {"k", t->k},
                        {"prompt_length", t->length}};
  return json::object{
      {"sequences", std::move(sequences)},
      {"prompt_logprobs", res.prompt_logprobs ? json::value(floats(*res.prompt_logprobs)) : json::value(nullptr)},
      {"topk_prompt_logprobs", std::move(topk)},
      {"prompt_cache_hit_tokens", res.prompt_cache_hit_tokens}};
}

// --- field-by-field comparison ----------------------------------------------------------------------------

bool parse_number(const json::string& s, double& out) {
  const std::string text(s.data(), s.size());
  char* end = nullptr;
  out = std::strtod(text.c_str(), &end);
  return !text.empty() && end == text.c_str() + text.size();
}

/// Appends to `diffs` every path where `actual` differs from `expected`. Strings that both parse as
/// numbers compare as numbers (the two sides format floats differently; NaN equals NaN).
void compare(const json::value& expected, const json::value& actual, const std::string& path,
             std::vector<std::string>& diffs) {
  auto differ = [&] {
    diffs.push_back(path + ": expected " + json::serialize(expected) + ", got " + json::serialize(actual));
  };
  if (expected.is_number() && actual.is_number()) {
    auto as_int = [](const json::value& v) {
      return v.is_int64()    ? static_cast<long double>(v.get_int64())
             : v.is_uint64() ? static_cast<long double>(v.get_uint64())
                             : static_cast<long double>(v.get_double());
    };
    if (as_int(expected) != as_int(actual)) differ();
    return;
  }
  if (expected.kind() != actual.kind()) return differ();
  switch (expected.kind()) {
    case json::kind::string: {
      double a, b;
      if (parse_number(expected.get_string(), a) && parse_number(actual.get_string(), b)) {
        if (!(a == b || (std::isnan(a) && std::isnan(b)))) differ();
      } else if (expected.get_string() != actual.get_string()) {
        differ();
      }
      return;
    }
    case json::kind::array: {
      const auto &e = expected.get_array(), &a = actual.get_array();
      if (e.size() != a.size()) {
        diffs.push_back(path + ": expected " + std::to_string(e.size()) + " elements, got " + std::to_string(a.size()));
        return;
      }
      for (std::size_t i = 0; i < e.size(); ++i) compare(e[i], a[i], path + "[" + std::to_string(i) + "]", diffs);
      return;
    }
    case json::kind::object: {
      const auto &e = expected.get_object(), &a = actual.get_object();
      for (const auto& [k, v] : e) {
        if (const auto* other = a.if_contains(k))
          compare(v, *other, path + "." + std::string(k), diffs);
        else
          diffs.push_back(path + "." + std::string(k) + ": missing");
      }
      for (const auto& [k, v] : a)
        if (!e.contains(k)) diffs.push_back(path + "." + std::string(k) + ": unexpected");
      return;
    }
    default:
      if (expected != actual) differ();
  }
}

void check_same(const json::value& expected, const json::value& actual, std::string_view what) {
  std::vector<std::string> diffs;
  compare(expected, actual, "", diffs);
  std::string shown;
  for (std::size_t i = 0; i < diffs.size() && i < 10; ++i) shown += "\n  " + diffs[i];
  CHECK_MESSAGE(diffs.empty(), what << ": " << diffs.size() << " differences" << shown);
}

template <class T>
struct case_of {
  std::string name;
  T value;
};

/// For every value: python parses our bytes to the same canonical values and re-serializes them
/// to our exact bytes; python builds the same values into our exact bytes.
template <class T>
void cross_check(std::string_view type, const std::vector<case_of<T>>& cases) {
  python_oracle python;
  struct pending {
    std::string name, ours;
    json::object expected;
    std::size_t parse_job, build_job;
  };
  std::vector<pending> jobs;
  for (const auto& c : cases) {
    auto ours = proto::encode(c.value);
    auto expected = canonical(c.value);
    const auto parse_job = python.parse(type, ours);
    const auto build_job = python.build(type, expected);
    jobs.push_back({c.name, std::move(ours), std::move(expected), parse_job, build_job});
  }
  const auto results = python.run();
  for (const auto& j : jobs) {
    CAPTURE(j.name);
    const auto& parsed = results[j.parse_job].as_object();
    const auto& built = results[j.build_job].as_object();
    if (parsed.contains("error") || built.contains("error")) continue;  // reported by run()
    check_same(j.expected, parsed.at("canonical"), "python's parse of our bytes");
    const auto ours = hex(j.ours);
    const std::string reserialized(parsed.at("reserialized").as_string());
    const std::string theirs(built.at("hex").as_string());
    CHECK_MESSAGE(reserialized == ours, "python re-serialization differs: " << first_difference(reserialized, ours));
    CHECK_MESSAGE(theirs == ours, "python's deterministic bytes differ: " << first_difference(theirs, ours));
  }
}

}  // namespace

TEST_SUITE("proto") {
  TEST_CASE("python3-protobuf agrees: ForwardBackwardRequest") {
    auto forward_only = proto_samples::mixed_request();
    forward_only.forward_only = true;
    forward_only.seq_id = -123456;  // negative int32: ten-byte varint
    forward_only.forward_backward_input.loss_fn = loss_fn_type::importance_sampling;
    forward_only.forward_backward_input.loss_fn_config.reset();
    forward_only.forward_backward_input.data[1].loss_fn_inputs["weights"] = tensor_data{
        proto_samples::nan_f, -proto_samples::nan_f, INFINITY, -0.0f, std::numeric_limits<float>::denorm_min()};

    forward_backward_request empty;  // only the loss_fn string
    cross_check<forward_backward_request>("ForwardBackwardRequest",
                                          {{"mixed", proto_samples::mixed_request()},
                                           {"forward_only", forward_only},
                                           {"realistic", proto_samples::realistic_request(4, 300)},
                                           {"empty", empty}});
  }

  TEST_CASE("python3-protobuf agrees: ForwardBackwardOutput") {
    cross_check<forward_backward_output>("ForwardBackwardOutput",
                                         {{"single record", proto_samples::single_record_output()},
                                          {"several records", proto_samples::multi_record_output()},
                                          {"empty", forward_backward_output{}}});
  }

  TEST_CASE("python3-protobuf agrees: SampleResponse") {
    auto plain = proto_samples::mixed_sample_response();
    plain.topk_prompt_logprobs.reset();
    plain.prompt_logprobs.reset();
    plain.prompt_cache_hit_tokens = -1;
    cross_check<sample_response>(
        "SampleResponse",
        {{"mixed", proto_samples::mixed_sample_response()}, {"plain", plain}, {"empty", sample_response{}}});
  }

  TEST_CASE("python3-protobuf messages with INT32 and BFLOAT16 payloads decode widened") {
    python_oracle python;
    // Values exactly representable in bfloat16.
    const auto output_job = python.build(
        "ForwardBackwardOutput", json::parse(R"({"loss_fn_output_type": "mod.sub:TorchLossReturn", "metrics": {},
        "loss_fn_outputs": [
          {"type_tag": "", "num_datums": 2, "fields": {
             "lp":  {"dtype": 4, "trailing_shape": [], "offsets": [0, 4, 6], "data": ["-1.5", "0.25", "-inf"]},
             "ids": {"dtype": 3, "trailing_shape": [2], "offsets": [0, 8, 24], "data": [7, -8, 1, 2, 2147483647, -2147483648]}}},
          {"type_tag": "", "num_datums": 1, "fields": {}}]})"));
    const auto request_job =
        python.build("ForwardBackwardRequest",
                     json::parse(R"({"model_id": "m", "seq_id": 3, "loss_fn": "cross_entropy", "forward_only": false,
        "loss_fn_config": {}, "data": [{"model_input": [{"encoded_text": {"tokens": [1, 2]}}],
          "loss_fn_inputs": {
            "target_tokens": {"dtype": 3, "shape": [2], "dense": [5, -6]},
            "weights": {"dtype": 4, "shape": [], "dense": ["0.5", "1.0"]},
            "mask": {"dtype": 4, "shape": [1, 2], "sparse_csr": {"values": ["2.0"], "crow_indices": [0, 1], "col_indices": [1]}}}}]})"));
    const auto results = python.run();

    const auto out = proto::decode_forward_backward_output(from_hex(results[output_job].at("hex").as_string()));
    CHECK(out.loss_fn_output_type == "TorchLossReturn");
    REQUIRE(out.loss_fn_outputs.size() == 3);
    CHECK(out.loss_fn_outputs[0].at("lp") == tensor_data(std::vector<float>{-1.5f, 0.25f}, {2}));
    CHECK(out.loss_fn_outputs[1].at("lp") == tensor_data(std::vector<float>{-INFINITY}, {1}));
    CHECK(out.loss_fn_outputs[0].at("ids") == tensor_data(std::vector<std::int64_t>{7, -8}, {1, 2}));
    CHECK(out.loss_fn_outputs[1].at("ids") ==
          tensor_data(std::vector<std::int64_t>{1, 2, 2147483647, -2147483648}, {2, 2}));
    CHECK(out.loss_fn_outputs[2].empty());

    const auto req = proto::decode_forward_backward_request(from_hex(results[request_job].at("hex").as_string()));
    const auto& inputs = req.forward_backward_input.data.at(0).loss_fn_inputs;
    CHECK(inputs.at("target_tokens") == tensor_data(std::vector<std::int64_t>{5, -6}, {2}));
    CHECK(inputs.at("weights") == tensor_data{0.5f, 1.0f});
    CHECK(inputs.at("mask") == tensor_data::sparse_csr(std::vector<float>{2.0f}, 1, 2, {0, 1}, {1}));
  }

}  // TEST_SUITE
