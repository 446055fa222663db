// Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/) from the library's own
// encoders, so that every seed is a valid input the fuzzer mutates from deep inside the decoder:
//   fuzz_make_seeds <fuzz/corpus directory>
// The committed corpora came from this program; rerun it when a wire format changes.
#include "json_types.hpp"
#include "proto/proto_samples.hpp"

#include <tinker/detail/tar_writer.hpp>
#include <tinker/http/gzip.hpp>
#include <tinker/json.hpp>
#include <tinker/local/model/base_model.hpp>
#include <tinker/local/model/detail/adapter_files.hpp>
#include <tinker/local/model/safetensors.hpp>
#include <tinker/proto.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace tinker;

fs::path corpus_root;

void write_seed(const std::string& target, const std::string& name, const std::string& bytes) {
  const auto dir = corpus_root / target;
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

std::string with_selector(unsigned selector, std::string_view rest) {
  return std::string(1, static_cast<char>(selector)) + std::string(rest);
}

// ----- fuzz_json: a default value of every type, and realistic answers for the common ones -----

template <class T>
void json_default_seed(unsigned index) {
  try {
    write_seed("fuzz_json", "default-" + std::to_string(index), with_selector(index, json::to_json(T{})));
  } catch (const std::exception&) {
    // (a default value that is not encodable, e.g. an empty tensor_data: the realistic seeds cover it)
  }
}

template <class... T>
void json_default_seeds(fuzz::type_list<T...>) {
  unsigned index = 1;  // 0 is the retrieve_future envelope
  (json_default_seed<T>(index++), ...);
}

template <class T, class... All>
constexpr unsigned json_index(fuzz::type_list<All...>) {
  unsigned index = 1, found = 0;
  ((std::is_same_v<T, All> ? (void)(found = index) : (void)0, ++index), ...);
  return found;
}

template <class T>
void json_seed(const std::string& name, const T& value) {
  try {
    write_seed("fuzz_json", name, with_selector(json_index<T>(fuzz::json_types{}), json::to_json(value)));
  } catch (const tinker::invalid_argument& e) {
    std::fprintf(stderr, "fuzz_json seed %s: %s\n", name.c_str(), e.what());
  }
}

void json_seeds() {
  json_default_seeds(fuzz::json_types{});
  auto sampled = proto_samples::mixed_sample_response();
  sampled.prompt_logprobs.reset();  // NaN marks "not computed" there, which JSON cannot carry
  json_seed("sample_response", sampled);
  json_seed("forward_backward_output", proto_samples::single_record_output());
  json_seed("forward_backward_request", proto_samples::realistic_request(2, 4));
  const char* envelopes[] = {
      R"({"type":"try_again","request_id":"r-1","queue_state":"paused_rate_limit","queue_state_reason":"busy"})",
      R"({"status":"complete_metadata","response_payload_size":1234})",
      R"({"error":"out of memory","category":"server"})",
      R"({"loss_fn_output_type":"ArrayRecord","loss_fn_outputs":[{"logprobs":{"data":[-0.5,-1.25],"dtype":"float32","shape":[2]}}],"metrics":{"loss:sum":3.5}})",
  };
  int i = 0;
  for (const char* e : envelopes) write_seed("fuzz_json", "envelope-" + std::to_string(i++), with_selector(0, e));
}

// ----- fuzz_proto -------------------------------------------------------------------------------

void proto_seeds() {
  write_seed("fuzz_proto", "output-single", with_selector(0, proto::encode(proto_samples::single_record_output())));
  write_seed("fuzz_proto", "output-multi", with_selector(0, proto::encode(proto_samples::multi_record_output())));
  write_seed("fuzz_proto", "sample-response", with_selector(1, proto::encode(proto_samples::mixed_sample_response())));
  write_seed("fuzz_proto", "request-mixed", with_selector(2, proto::encode(proto_samples::mixed_request())));
  write_seed("fuzz_proto", "request-realistic",
             with_selector(2, proto::encode(proto_samples::realistic_request(2, 8))));
}

// ----- fuzz_tinker_path -------------------------------------------------------------------------

void tinker_path_seeds() {
  const char* paths[] = {"tinker://3f2a-11:train:0/weights/step-10", "tinker://run/sampler_weights/final",
                         "logits://run:train:2/external_weights/ext",
                         "tinker://r\xc3\xa9sum\xc3\xa9/weights/n\xc3\xa4me"};
  int i = 0;
  for (const char* p : paths) write_seed("fuzz_tinker_path", "path-" + std::to_string(i++), p);
}

// ----- fuzz_http: selector, piece size, stream ------------------------------------------------------

void http_seeds() {
  const std::string json_body = R"({"session_id":"s-1","info_message":null})";
  const auto gz = http::gzip_compress(json_body);
  const std::string responses[] = {
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(json_body.size()) +
          "\r\n\r\n" + json_body,
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n "
      "world\r\n0\r\nTrailer: x\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: " + std::to_string(gz.size()) + "\r\n\r\n" + gz,
      "HTTP/1.0 404 Not Found\r\nConnection: close\r\n\r\n{\"detail\":\"no such model\"}",
  };
  int i = 0;
  for (const auto& r : responses) {
    write_seed("fuzz_http", "api-" + std::to_string(i), with_selector(0, std::string(1, char(i * 3)) + r));
    write_seed("fuzz_http", "download-" + std::to_string(i), with_selector(1, std::string(1, char(i * 5 + 1)) + r));
    ++i;
  }
  write_seed("fuzz_http", "gzip-body", with_selector(2, std::string(1, '\x02') + gz + http::gzip_compress("second")));
  write_seed("fuzz_http", "urls",
             with_selector(3, std::string(1, '\0') +
                                  "https://storage.example.com:8443/bucket/a%20b/../ckpt.tar.gz?X-Sig=abc&e=1\n"
                                  "//cdn.example.com/x/./y?z#frag"));
  write_seed("fuzz_http", "urls-ipv6", with_selector(3, std::string(1, '\0') + "http://[::1]:8080/p\n../q?r"));
}

// ----- fuzz_archive: selector (bit 0: gzip the rest first), piece size, archive ---------------------

void archive_seeds() {
  const auto tar = tinker::detail::make_tar(
      {{"adapter_config.json", R"({"r":1})"}, {"adapter_model.safetensors", std::string(40, 'x')}}, 1700000000);
  write_seed("fuzz_archive", "tar-gz", with_selector(0, std::string(1, '\x03') + http::gzip_compress(tar)));
  write_seed("fuzz_archive", "tar", with_selector(1, std::string(1, '\0') + tar));
  // A directory entry and a nested file, written by hand (make_tar writes regular files only).
  std::string nested;
  tinker::detail::tar_append_file(nested, "dir/sub/file.bin", "abc", 0);
  tinker::detail::tar_append_file(nested, "./other", "", 0, 0700);
  tinker::detail::tar_finish(nested);
  write_seed("fuzz_archive", "tar-nested", with_selector(1, std::string(1, '\x01') + nested));
}

// ----- fuzz_safetensors -----------------------------------------------------------------------------

void safetensors_seeds() {
  local::safetensors_writer w;
  w.add_metadata("format", "pt");
  const std::vector<float> f{1.0f, -2.5f, 3.25f, 0.0f};
  const std::vector<double> d{1e-3, 2.0};
  w.add("a", {2, 2}, std::span<const float>(f));
  w.add("b", {2}, std::span<const double>(d));
  write_seed("fuzz_safetensors", "file", with_selector(0, w.finish()));

  const auto base = local::base_model::create(local::default_base_models().front());
  const lora_config config{1, 7, true, true, true};
  const auto layout = local::detail::adapter_layout::make(base->dims(), config);
  const auto params = local::detail::initial_adapter_parameters(layout, 7);
  const auto adapter_config = local::detail::write_adapter_config(base->name(), layout, config);
  const auto tensors = local::detail::write_adapter_tensors(layout, params);
  write_seed("fuzz_safetensors", "adapter-config", with_selector(1, adapter_config));
  write_seed("fuzz_safetensors", "adapter-tensors", with_selector(2, tensors));
  std::string checkpoint = with_selector(3, "");
  checkpoint += static_cast<char>(adapter_config.size() & 0xff);
  checkpoint += static_cast<char>(adapter_config.size() >> 8);
  write_seed("fuzz_safetensors", "checkpoint", checkpoint + adapter_config + tensors);
  local::detail::optimizer_state state{params, params, params, 3};
  write_seed("fuzz_safetensors", "optimizer", with_selector(4, local::detail::write_optimizer(layout, state)));
}

// ----- fuzz_engine_requests: raw HTTP requests ----------------------------------------------------------

std::string request(const std::string& method, const std::string& target, const std::string& body,
                    const std::string& content_type = "application/json", const std::string& extra = {}) {
  return method + " " + target +
         " HTTP/1.1\r\nHost: engine.test\r\nX-API-Key: tml-fuzz\r\nContent-Type: " + content_type + "\r\n" + extra +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

void engine_seeds() {
  auto fb = proto_samples::realistic_request(2, 4);
  fb.model_id = "m-1";
  fb.seq_id = 1;
  const std::pair<std::string, std::string> seeds[] = {
      {"create-session", request("POST", "/api/v1/create_session", json::to_json(create_session_request{}))},
      {"create-model", request("POST", "/api/v1/create_model",
                               json::to_json(create_model_request{"s-1", 0, "tinker-local/byte-lm-tiny", std::nullopt,
                                                                  lora_config{4, 7, true, true, true}}))},
      {"forward-backward-json", request("POST", "/api/v1/forward_backward", json::to_json(fb))},
      {"forward-backward-proto",
       request("POST", "/api/v1/forward_backward", proto::encode(fb), "application/x-protobuf")},
      {"asample", request("POST", "/api/v1/asample", json::to_json(sample_request{}))},
      {"retrieve-future", request("POST", "/api/v1/retrieve_future", R"({"request_id":"f-1"})")},
      {"optim-step-gzip",
       request("POST", "/api/v1/optim_step", http::gzip_compress(json::to_json(optim_step_request{})),
               "application/json", "Content-Encoding: gzip\r\n")},
      {"checkpoint-ttl",
       request("PUT", "/api/v1/training_runs/r%3Atrain%3A0/checkpoints/weights/s1/ttl", R"({"ttl_seconds":60})")},
      {"list-checkpoints", request("GET", "/api/v1/checkpoints?limit=5&offset=0", "")},
      {"session-project", request("PUT", "/api/v1/sessions/s-1/project", R"({"project_id":"p"})")},
  };
  for (const auto& [name, bytes] : seeds) write_seed("fuzz_engine_requests", name, bytes);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <fuzz/corpus directory>\n", argv[0]);
    return 2;
  }
  corpus_root = argv[1];
  json_seeds();
  proto_seeds();
  tinker_path_seeds();
  http_seeds();
  archive_seeds();
  safetensors_seeds();
  engine_seeds();
}
