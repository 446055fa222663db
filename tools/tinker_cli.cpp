// tinker: a command-line client for the Tinker REST surface, like the official `tinker` CLI.
//
//   tinker run list [--limit N] [--offset N]       tinker run info RUN_ID
//   tinker checkpoint list [RUN_ID]                tinker checkpoint info TINKER_PATH
//   tinker checkpoint publish|unpublish PATH       tinker checkpoint set-ttl PATH SECONDS|none
//   tinker checkpoint delete PATH                  tinker checkpoint download PATH [DIR]
//   tinker session list                            tinker session info SESSION_ID
//   tinker version
//
// Reads TINKER_BASE_URL and TINKER_API_KEY (or --base-url / --api-key). --json prints raw JSON.
#include <tinker/json.hpp>
#include <tinker/tinker.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace asio = boost::asio;

namespace {

const char* usage = R"(usage: tinker [--base-url URL] [--api-key KEY] [--json] COMMAND ...

  run list [--limit N] [--offset N]     training runs you own
  run info RUN_ID                       one training run and its checkpoints
  checkpoint list [RUN_ID]              checkpoints of a run, or all of yours
  checkpoint info TINKER_PATH           weights info of a checkpoint
  checkpoint publish TINKER_PATH        make a checkpoint readable by everyone
  checkpoint unpublish TINKER_PATH
  checkpoint set-ttl TINKER_PATH SECONDS|none
  checkpoint delete TINKER_PATH
  checkpoint download TINKER_PATH [DIR] download and extract the checkpoint archive (default DIR: its name);
                                        a progress bar when stdout is a terminal
  session list                          your sessions
  session info SESSION_ID
  version

Environment: TINKER_BASE_URL, TINKER_API_KEY.
)";

struct cli {
  std::vector<std::string> args;
  bool json = false;
  tinker::client_options options;
};

[[noreturn]] void usage_error(const std::string& message) {
  std::cerr << "tinker: " << message << "\n\n" << usage;
  std::exit(2);
}

template <class T>
void print_json(const T& value) {
  std::cout << tinker::json::to_json(value) << "\n";
}

std::string format_bytes(std::int64_t b) {
  char buf[32];
  if (b >= (1 << 20))
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1 << 20));
  else if (b >= 1024)
    std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(b) / 1024);
  else
    std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(b));
  return buf;
}

void print_checkpoints(const tinker::checkpoints_list_response& list) {
  std::printf("%-60s %-9s %-10s %-6s %s\n", "TINKER PATH", "TYPE", "SIZE", "PUBLIC", "EXPIRES");
  for (const auto& c : list.checkpoints)
    std::printf("%-60s %-9s %-10s %-6s %s\n", c.tinker_path.c_str(),
                std::string(tinker::to_string(c.checkpoint_type)).c_str(),
                c.size_bytes ? format_bytes(*c.size_bytes).c_str() : "-", c.is_public ? "yes" : "no",
                c.expires_at ? tinker::format_timestamp(*c.expires_at).c_str() : "never");
}

std::string format_duration(double seconds) {
  char buf[32];
  const auto s = static_cast<long long>(seconds + 0.5);
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
  return buf;
}

/// A one-line progress bar (bytes, rate, ETA) redrawn in place on stdout, at most ten times a
/// second and once at the end. Only used when stdout is a terminal: in a pipe or a file the
/// command prints just the extracted files.
struct progress_bar {
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point drawn{};
  bool shown = false;

  void operator()(const tinker::download_progress& p) {
    const auto now = std::chrono::steady_clock::now();
    const bool done = p.bytes_total && p.bytes_received >= *p.bytes_total;
    if (shown && !done && now - drawn < std::chrono::milliseconds(100)) return;
    drawn = now;
    shown = true;
    const double secs = std::chrono::duration<double>(now - start).count();
    const double rate = secs > 0 ? static_cast<double>(p.bytes_received) / secs : 0;
    const auto received = format_bytes(static_cast<std::int64_t>(p.bytes_received));
    const auto per_second = format_bytes(static_cast<std::int64_t>(rate));
    if (p.bytes_total && *p.bytes_total > 0) {
      const double frac = std::min(1.0, static_cast<double>(p.bytes_received) / static_cast<double>(*p.bytes_total));
      const int width = 30, filled = static_cast<int>(frac * width);
      const double left = static_cast<double>(*p.bytes_total - std::min(*p.bytes_total, p.bytes_received));
      const auto eta = rate > 0 ? format_duration(left / rate) : std::string("--:--");
      std::printf("\r\033[K[%.*s%*s] %5.1f%%  %s / %s  %s/s  ETA %s", filled,
                  "==============================", width - filled, "", frac * 100, received.c_str(),
                  format_bytes(static_cast<std::int64_t>(*p.bytes_total)).c_str(), per_second.c_str(), eta.c_str());
    } else {
      std::printf("\r\033[K%s  %s/s", received.c_str(), per_second.c_str());
    }
    std::fflush(stdout);
  }
  /// Ends the bar's line, so what follows starts on a line of its own.
  void finish() const {
    if (shown) std::printf("\n");
  }
};

asio::awaitable<int> run(cli c) {
  tinker::service_client service(co_await asio::this_coro::executor, c.options);
  auto rest = service.create_rest_client();
  auto& a = c.args;
  auto need = [&](std::size_t n, const char* what) {
    if (a.size() < n) usage_error(std::string("missing ") + what);
  };
  need(1, "command");
  const auto group = a[0];
  if (group == "version") {
    std::cout << "tinker-cpp " << tinker::library_version << " (protocol of SDK " << tinker::protocol_sdk_version
              << ")\n";
    co_return 0;
  }
  need(2, "subcommand");
  const auto cmd = a[1];
  if (group == "run" && cmd == "list") {
    int limit = 20, offset = 0;
    for (std::size_t i = 2; i + 1 < a.size(); i += 2) {
      if (a[i] == "--limit")
        limit = std::stoi(a[i + 1]);
      else if (a[i] == "--offset")
        offset = std::stoi(a[i + 1]);
      else
        usage_error("unknown option " + a[i]);
    }
    auto runs = co_await rest.list_training_runs(limit, offset);
    if (c.json)
      print_json(runs);
    else {
      std::printf("%-50s %-30s %-5s %s\n", "RUN", "BASE MODEL", "RANK", "LAST REQUEST");
      for (const auto& r : runs.training_runs)
        std::printf("%-50s %-30s %-5d %s\n", r.training_run_id.c_str(), r.base_model.c_str(), r.lora_rank.value_or(0),
                    tinker::format_timestamp(r.last_request_time).c_str());
      std::printf("(%zu of %lld)\n", runs.training_runs.size(), static_cast<long long>(runs.cursor.total_count));
    }
  } else if (group == "run" && cmd == "info") {
    need(3, "RUN_ID");
    const auto run = co_await rest.get_training_run(a[2]);
    const auto checkpoints = co_await rest.list_checkpoints(a[2]);
    if (c.json) {
      // The run's own JSON with its checkpoints added, so scripts get both from one command.
      auto out = boost::json::value_from(run);
      out.as_object()["checkpoints"] = boost::json::value_from(checkpoints.checkpoints);
      std::cout << tinker::json::dump(out) << "\n";
    } else {
      std::printf("run          %s\n", run.training_run_id.c_str());
      std::printf("base model   %s\n", run.base_model.c_str());
      std::printf("owner        %s\n", run.model_owner.c_str());
      if (run.is_lora)
        std::printf("lora rank    %d\n", run.lora_rank.value_or(0));
      else
        std::printf("lora rank    - (full fine-tuning)\n");
      std::printf("last request %s\n", tinker::format_timestamp(run.last_request_time).c_str());
      if (run.corrupted) std::printf("corrupted    yes\n");
      std::printf("\n");
      if (checkpoints.checkpoints.empty())
        std::printf("no checkpoints\n");
      else
        print_checkpoints(checkpoints);
    }
  } else if (group == "checkpoint" && cmd == "list") {
    tinker::checkpoints_list_response list;
    if (a.size() > 2)
      list = co_await rest.list_checkpoints(a[2]);
    else
      list = co_await rest.list_user_checkpoints();
    if (c.json)
      print_json(list);
    else
      print_checkpoints(list);
  } else if (group == "checkpoint" && cmd == "info") {
    need(3, "TINKER_PATH");
    print_json(co_await rest.get_weights_info_by_tinker_path(a[2]));
  } else if (group == "checkpoint" && (cmd == "publish" || cmd == "unpublish" || cmd == "delete")) {
    need(3, "TINKER_PATH");
    // (if/else, not a table of member pointers: each call and its message read together)
    if (cmd == "publish") {
      co_await rest.publish_checkpoint_from_tinker_path(a[2]);
      std::cout << "published " << a[2] << "\n";
    } else if (cmd == "unpublish") {
      co_await rest.unpublish_checkpoint_from_tinker_path(a[2]);
      std::cout << "unpublished " << a[2] << "\n";
    } else {
      co_await rest.delete_checkpoint_from_tinker_path(a[2]);
      std::cout << "deleted " << a[2] << "\n";
    }
  } else if (group == "checkpoint" && cmd == "set-ttl") {
    need(4, "TINKER_PATH and SECONDS|none");
    std::optional<std::int64_t> ttl;
    if (a[3] != "none") ttl = std::stoll(a[3]);
    co_await rest.set_checkpoint_ttl_from_tinker_path(a[2], ttl);
    if (ttl)
      std::cout << "set the ttl of " << a[2] << " to " << *ttl << " s\n";
    else
      std::cout << "removed the ttl of " << a[2] << "\n";
  } else if (group == "checkpoint" && cmd == "download") {
    need(3, "TINKER_PATH");
    const auto path = tinker::tinker_path::parse(a[2]);
    const std::filesystem::path dir = a.size() > 3 ? a[3] : path.name;
    auto o = rest.default_download_options();
    auto bar = std::make_shared<progress_bar>();
    if (::isatty(STDOUT_FILENO) == 1) o.on_progress = [bar](const tinker::download_progress& p) { (*bar)(p); };
    auto files = co_await rest.download_checkpoint_from_tinker_path(a[2], dir, o);
    bar->finish();
    for (const auto& f : files) std::cout << (dir / f).string() << "\n";
  } else if (group == "session" && cmd == "list") {
    auto sessions = co_await rest.list_sessions();
    if (c.json)
      print_json(sessions);
    else
      for (const auto& s : sessions.sessions) std::cout << s << "\n";
  } else if (group == "session" && cmd == "info") {
    need(3, "SESSION_ID");
    print_json(co_await rest.get_session(a[2]));
  } else {
    usage_error("unknown command '" + group + " " + cmd + "'");
  }
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  cli c;
  c.options.log = tinker::stderr_log_sink();
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << usage;
      return 0;
    } else if (arg == "--json")
      c.json = true;
    else if (arg == "--base-url" && i + 1 < argc)
      c.options.base_url = argv[++i];
    else if (arg == "--api-key" && i + 1 < argc)
      c.options.api_key = argv[++i];
    else if (arg == "--ca-file" && i + 1 < argc)
      c.options.tls.ca_file = argv[++i];
    else
      c.args.push_back(arg);
  }
  if (!c.args.empty() && c.args[0] == "version") {
    std::cout << "tinker-cpp " << tinker::library_version << " (protocol of SDK " << tinker::protocol_sdk_version
              << ")\n";
    return 0;
  }
  try {
    asio::io_context io;
    int rc = 1;
    std::exception_ptr failure;
    asio::co_spawn(io, run(std::move(c)), [&](std::exception_ptr e, int r) {
      failure = e;
      rc = r;
    });
    io.run();
    if (failure) std::rethrow_exception(failure);
    return rc;
  } catch (const std::exception& e) {
    std::cerr << "tinker: " << e.what() << "\n";
    return 1;
  }
}
