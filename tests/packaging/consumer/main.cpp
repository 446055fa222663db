// Compiles against the installed (or subdirectory) tinker-cpp and prints an SDK-shaped request.
#include <tinker/json.hpp>
#include <tinker/proto.hpp>
#include <tinker/tinker_path.hpp>

#include <iostream>

int main() {
  tinker::optim_step_request req{tinker::adam_params{}, "S:train:0", 1};
  std::cout << tinker::json::to_json(req) << "\n";
  tinker::sample_response resp;
  resp.sequences.push_back({tinker::stop_reason::stop, {1, 2, 3}, std::vector<float>{-1.f, -2.f, -3.f}, std::nullopt});
  const bool ok = tinker::proto::decode_sample_response(tinker::proto::encode(resp)) == resp &&
                  tinker::tinker_path::parse("tinker://S:train:0/weights/a").name == "a" &&
                  tinker::json::to_json(tinker::set_session_project_request{"p"}) == R"({"project_id":"p"})";
  return ok ? 0 : 1;
}
