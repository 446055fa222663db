// What every example needs around its workload, kept here so that each example reads as the
// workload alone: command-line flags with --help, the server to talk to (--base-url, else
// TINKER_BASE_URL, else an in-process local engine), a live status line on a terminal, metrics as
// JSON lines, and a main() that turns any failure into a one-line reason and a non-zero exit.
//
// None of this is library API: copy what you need.
#pragma once

#include <tinker/local/engine.hpp>
#include <tinker/tinker.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace example {

// --- Flags ----------------------------------------------------------------------------------------

/// Command-line flags: each one a name, an optional value and a line of help. `parse` prints the
/// usage and exits on --help, and throws std::invalid_argument naming the flag and the value for
/// anything it cannot take.
class flags {
public:
  flags(std::string program, std::string description)
      : program_(std::move(program)), description_(std::move(description)) {}

  flags& integer(std::string name, long long& target, long long min, long long max, std::string help) {
    return add(std::move(name), "N", std::move(help) + " (default " + std::to_string(target) + ")",
               [&target, min, max](const std::string& flag, const std::string& value) {
                 target = parse_integer(flag, value, min, max);
               });
  }
  flags& integer(std::string name, int& target, int min, int max, std::string help) {
    return add(std::move(name), "N", std::move(help) + " (default " + std::to_string(target) + ")",
               [&target, min, max](const std::string& flag, const std::string& value) {
                 target = static_cast<int>(parse_integer(flag, value, min, max));
               });
  }
  flags& number(std::string name, double& target, double min, double max, std::string help) {
    char shown[32];
    std::snprintf(shown, sizeof shown, "%g", target);
    return add(std::move(name), "X", std::move(help) + " (default " + shown + ")",
               [&target, min, max](const std::string& flag, const std::string& value) {
                 try {
                   std::size_t used = 0;
                   const double v = std::stod(value, &used);
                   if (used == value.size() && v >= min && v <= max) {
                     target = v;
                     return;
                   }
                 } catch (const std::exception&) {
                 }
                 throw std::invalid_argument(flag + " expects a number in [" + format_number(min) + ", " +
                                             format_number(max) + "], got '" + value + "'");
               });
  }
  flags& text(std::string name, std::string meta, std::string& target, std::string help) {
    return add(std::move(name), std::move(meta), std::move(help),
               [&target](const std::string&, const std::string& value) { target = value; });
  }
  /// A flag without a value, e.g. --quick.
  flags& toggle(std::string name, std::function<void()> on, std::string help) {
    entries_.push_back(
        {std::move(name), "", std::move(help), [on = std::move(on)](const std::string&, const std::string&) { on(); }});
    return *this;
  }

  std::string usage() const {
    std::string out = "usage: " + program_ + " [options]\n\n" + description_ + "\n\n";
    for (const auto& e : entries_) {
      std::string head = "  " + e.name + (e.meta.empty() ? "" : " " + e.meta);
      head.resize(std::max<std::size_t>(head.size() + 1, 24), ' ');
      out += head + e.help + "\n";
    }
    out += "  --help                show this and exit\n";
    return out;
  }

  void parse(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--help" || arg == "-h") {
        std::cout << usage();
        std::exit(0);
      }
      const auto e = std::find_if(entries_.begin(), entries_.end(), [&](const entry& x) { return x.name == arg; });
      if (e == entries_.end()) throw std::invalid_argument("unknown argument '" + arg + "' (see --help)");
      std::string value;
      if (!e->meta.empty()) {
        if (i + 1 >= argc) throw std::invalid_argument(arg + " expects a value");
        value = argv[++i];
      }
      e->set(arg, value);
    }
  }

private:
  struct entry {
    std::string name, meta, help;
    std::function<void(const std::string& flag, const std::string& value)> set;
  };

  flags& add(std::string name, std::string meta, std::string help,
             std::function<void(const std::string&, const std::string&)> set) {
    entries_.push_back({std::move(name), std::move(meta), std::move(help), std::move(set)});
    return *this;
  }

  static long long parse_integer(const std::string& flag, const std::string& value, long long min, long long max) {
    try {
      std::size_t used = 0;
      const long long v = std::stoll(value, &used);
      if (used == value.size() && v >= min && v <= max) return v;
    } catch (const std::exception&) {
    }
    throw std::invalid_argument(flag + " expects an integer in [" + std::to_string(min) + ", " + std::to_string(max) +
                                "], got '" + value + "'");
  }
  static std::string format_number(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
  }

  std::string program_, description_;
  std::vector<entry> entries_;
};

/// The flags every example takes. Add them with `add_to`, then the example's own.
struct common_options {
  int steps = 10;
  long long seed = 1;
  bool quick = false;
  std::string base_url;  // empty: TINKER_BASE_URL, else an in-process engine
  std::string base_model = "tinker-local/byte-lm-tiny";
  std::string metrics_path;  // JSON lines, one per step, when set

  /// `on_quick` switches the example to the short configuration its test runs.
  void add_to(flags& f, std::function<void()> on_quick) {
    f.integer("--steps", steps, 1, 1'000'000, "training steps")
        .integer("--seed", seed, 0, 1LL << 53, "seeds everything random in the run")
        .toggle(
            "--quick",
            [this, on_quick = std::move(on_quick)] {
              quick = true;
              on_quick();
            },
            "the short configuration the tests run")
        .text("--base-url", "URL", base_url, "the server (default: TINKER_BASE_URL, else an in-process local engine)")
        .text("--base-model", "NAME", base_model, "the model to train (default " + base_model + ")")
        .text("--metrics", "FILE", metrics_path, "append each step's metrics to FILE as JSON lines");
  }
};

// --- The server -----------------------------------------------------------------------------------

/// The server the example talks to: --base-url, else TINKER_BASE_URL (with TINKER_API_KEY), else a
/// local engine started in this process for the run.
class server {
public:
  explicit server(const std::string& base_url) {
    options_.base_url = base_url;  // empty fields come from TINKER_BASE_URL, TINKER_API_KEY
    if (base_url.empty() && std::getenv("TINKER_BASE_URL") == nullptr) {
      engine_.emplace();
      options_.base_url = engine_->base_url();
      options_.api_key = "tml-local-example";
    }
  }

  tinker::client_options options() const { return options_; }
  /// "the in-process local engine" or the URL, for the first line an example prints.
  std::string describe() const {
    if (engine_) return "the in-process local engine";
    return options_.base_url.empty() ? std::string(std::getenv("TINKER_BASE_URL")) : options_.base_url;
  }

private:
  std::optional<tinker::local::embedded_engine> engine_;
  tinker::client_options options_;
};

// --- Output ---------------------------------------------------------------------------------------

/// A status line rewritten in place on stderr while the example runs, at most ten times a second;
/// silent when stderr is not a terminal, so logs and tests see only the lines printed to stdout.
class live_line {
public:
  live_line() : enabled_(::isatty(STDERR_FILENO) == 1 || std::getenv("EXAMPLE_LIVE") != nullptr) {}
  ~live_line() { clear(); }
  live_line(const live_line&) = delete;
  live_line& operator=(const live_line&) = delete;

  template <class... Args>
  void show(const char* format, Args... args) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (shown_ && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    char line[256];
    std::snprintf(line, sizeof line, format, args...);
    std::fprintf(stderr, "\r\033[K%s", line);
    std::fflush(stderr);
    shown_ = true;
  }
  /// Removes the line, before a line is printed to stdout and at the end.
  void clear() {
    if (!shown_) return;
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    shown_ = false;
  }

private:
  bool enabled_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point last_{};
};

/// Events per second since construction (or the last reset).
class rate {
public:
  void reset() { start_ = std::chrono::steady_clock::now(); }
  double per_second(double events) const {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    return s > 0 ? events / s : 0.0;
  }
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

/// Appends one JSON object per line to a file (nothing when the path is empty), flushed each time
/// so a plot or a `tail -f` sees every step as it finishes.
class metrics_log {
public:
  explicit metrics_log(const std::string& path) {
    if (path.empty()) return;
    out_.open(path, std::ios::app);
    if (!out_) throw std::runtime_error("cannot open the metrics file '" + path + "'");
  }
  void write(const boost::json::object& row) {
    if (!out_.is_open()) return;
    out_ << boost::json::serialize(row) << '\n';
    out_.flush();
  }

private:
  std::ofstream out_;
};

// --- Small helpers --------------------------------------------------------------------------------

/// Mixes two numbers into a well-spread seed (splitmix64's finaliser): distinct seeds per
/// iteration, game or request from one --seed, so runs are reproducible.
inline std::uint64_t mix(std::uint64_t a, std::uint64_t b) {
  std::uint64_t z = a * 0x9e3779b97f4a7c15ull + b + 0x632be59bd9b4e019ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/// Bytes as text fit to print: printable ASCII as is, anything else (an untrained model writes
/// many) spelled \xNN, and a trailing newline dropped.
inline std::string printable(std::string_view bytes) {
  if (!bytes.empty() && bytes.back() == '\n') bytes.remove_suffix(1);
  std::string out;
  for (const unsigned char c : bytes) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", c);
      out += escaped;
    }
  }
  return out;
}

/// Sampled tokens as text fit to print (see above); BOS and EOS are not text and are left out.
inline std::string printable(const std::vector<tinker::token_id>& tokens) {
  std::string bytes;
  for (const auto t : tokens)
    if (t >= 0 && t <= 255) bytes += static_cast<char>(t);
  return printable(std::string_view(bytes));
}

// --- main -----------------------------------------------------------------------------------------

/// Parses the flags, starts the server (see `server`) and runs `body(server)`, an awaitable<void>,
/// on one io_context until it and everything it started are done. Returns main's exit code: 0; 2
/// after a bad flag; 1 after any other failure; each failure printed as "<program>: <reason>".
template <class Body>
int main(int argc, char** argv, const char* program, flags& f, const common_options& common, Body body) {
  try {
    f.parse(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 2;
  }
  try {
    const server srv(common.base_url);
    boost::asio::io_context io;
    std::exception_ptr failure;
    boost::asio::co_spawn(io, body(srv), [&](std::exception_ptr e) { failure = e; });
    io.run();
    if (failure) std::rethrow_exception(failure);
    return 0;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 1;
  }
}

}  // namespace example
