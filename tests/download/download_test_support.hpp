// Helpers for the download tests: temporary directories, shell commands, child processes (a
// python HTTP server written at test time, nginx for TLS), process memory readings.
#pragma once

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

extern char** environ;

namespace tinker::test {

namespace fs = std::filesystem;

class temp_dir {
public:
  explicit temp_dir(const char* tag = "tinker-download-test") {
    std::string pattern = (fs::temp_directory_path() / (std::string(tag) + "-XXXXXX")).string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("cannot create a temporary directory");
    path_ = pattern;
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const noexcept { return path_; }
  fs::path operator/(const fs::path& p) const { return path_ / p; }

private:
  fs::path path_;
};

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void write_file(const fs::path& p, std::string_view data) {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out) throw std::runtime_error("cannot write " + p.string());
}

/// Deterministic pseudo-random bytes (incompressible test data).
inline std::string random_bytes(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const auto v = rng();
    std::memcpy(out.data() + i, &v, 8);
  }
  for (; i < n; ++i) out[i] = static_cast<char>(rng());
  return out;
}

inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}
inline std::string shell_quote(const fs::path& p) { return shell_quote(p.string()); }

/// Runs a shell command; throws with its output if it fails.
inline void run_shell(const std::string& command) {
  temp_dir log_dir("tinker-shell-log");
  const auto log = log_dir / "out.log";
  const auto full = "(" + command + ") > " + shell_quote(log) + " 2>&1";
  if (std::system(full.c_str()) != 0) {
    std::string out;
    try {
      out = read_file(log);
    } catch (...) {
    }
    throw std::runtime_error("command failed: " + command + "\n" + out);
  }
}

/// Names in a directory (not recursive).
inline std::set<std::string> list_dir(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

/// Regular files under `dir`, as '/'-separated relative paths.
inline std::set<std::string> list_files_recursive(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out.insert(fs::relative(e.path(), dir).generic_string());
  return out;
}

/// A process we started; stopped (by its pid) when this object goes away.
class child_process {
public:
  /// Starts argv[0] (a full path). With `capture_stdout`, its stdout is readable via read_line().
  child_process(const std::vector<std::string>& argv, bool capture_stdout) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    int pipe_fds[2] = {-1, -1};
    if (capture_stdout) {
      if (::pipe(pipe_fds) != 0) throw std::runtime_error("pipe failed");
      posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
      posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
      posix_spawn_file_actions_addclose(&actions, pipe_fds[1]);
    } else {
      posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    }
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    const int rc = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (capture_stdout) {
      ::close(pipe_fds[1]);
      stdout_fd_ = pipe_fds[0];
    }
    if (rc != 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
  }
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;
  ~child_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    if (stdout_fd_ >= 0) ::close(stdout_fd_);
  }

  /// One line of the child's stdout (blocks until it is written).
  std::string read_line() {
    std::string line;
    char c;
    while (::read(stdout_fd_, &c, 1) == 1) {
      if (c == '\n') return line;
      line += c;
    }
    throw std::runtime_error("the child process exited before writing a line");
  }

  pid_t pid() const noexcept { return pid_; }

private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
};

/// A port that was free a moment ago (for servers that need it in their configuration).
inline std::uint16_t pick_free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) throw std::runtime_error("bind failed");
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

/// Polls until something accepts connections on 127.0.0.1:port.
inline void wait_for_port(std::uint16_t port, pid_t server) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    if (ok) return;
    int status = 0;
    if (::waitpid(server, &status, WNOHANG) == server) throw std::runtime_error("the server exited during startup");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling a connect, not synchronising
  }
  throw std::runtime_error("nothing listens on port " + std::to_string(port));
}

/// A field of /proc/self/status in KiB (VmRSS, VmHWM).
inline std::uint64_t proc_status_kib(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) return std::strtoull(line.c_str() + key.size() + 1, nullptr, 10);
  return 0;
}

/// The highest VmRSS seen while it lives, read every millisecond on a thread of its own: a measure
/// of peak memory that does not depend on being allowed to reset VmHWM.
class rss_sampler {
public:
  rss_sampler() : peak_(proc_status_kib("VmRSS")), thread_([this] { run(); }) {}
  rss_sampler(const rss_sampler&) = delete;
  rss_sampler& operator=(const rss_sampler&) = delete;
  ~rss_sampler() { stop(); }
  /// Stops sampling; the peak seen.
  std::uint64_t stop() {
    if (thread_.joinable()) {
      stop_ = true;
      thread_.join();
    }
    return peak_;
  }

private:
  void run() {
    while (!stop_) {
      peak_ = std::max<std::uint64_t>(peak_, proc_status_kib("VmRSS"));
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  std::uint64_t peak_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

/// Resets VmHWM to the current RSS (Linux >= 4.0). False if not permitted.
inline bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

// The test HTTP server: python's http.server with routes that misbehave on purpose.
//   /files/<f>          200 with Content-Length (query ignored)
//   /chunked/<f>        chunked transfer encoding
//   /eof/<f>            no Content-Length: the body ends when the connection closes
//   /short/<f>          announces the full size, sends half, closes
//   /long/<f>           announces 1000 bytes less than it sends
//   /stall/<f>          announces the full size, sends half, then nothing
//   /stall-header/x     accepts the request, never answers
//   /status/<code>      that status with a short body (?big: 100000 bytes)
//   /redirect/<n>/<p>   302 chain of n hops ending at /<p> (query kept)
//   /relredirect/a/b/<f>  302 to "../../../files/<f>?sig=relative"
//   /absredirect/<host>/<f> 307 to http://<host>:<port>/files/<f>
//   /noloc/x            302 without Location
// Every request must carry "Accept-Encoding: identity", else 400.
inline constexpr const char* python_server_script = R"PY(
import http.server, os, sys, threading, urllib.parse

ROOT = sys.argv[1]
NEVER = threading.Event()

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_file(self, path, limit=None):
        sent = 0
        with open(path, "rb") as f:
            while limit is None or sent < limit:
                n = 65536 if limit is None else min(65536, limit - sent)
                chunk = f.read(n)
                if not chunk:
                    break
                self.wfile.write(chunk)
                sent += len(chunk)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.split("/")[1:]
        kind = parts[0]
        if self.headers.get("Accept-Encoding") != "identity":
            return self.reply(400, ("expected Accept-Encoding: identity, got %r" % self.headers.get("Accept-Encoding")).encode())
        if kind == "status":
            code = int(parts[1])
            body = ("x" * 100000) if "big" in url.query else ("the body of a %d answer" % code)
            return self.reply(code, body.encode())
        if kind == "redirect":
            n = int(parts[1])
            target = "/".join(parts[2:])
            loc = ("/redirect/%d/%s" % (n - 1, target)) if n > 1 else ("/" + target)
            if url.query:
                loc += "?" + url.query
            return self.reply(302, b"", [("Location", loc)])
        if kind == "relredirect":
            return self.reply(302, b"", [("Location", "../../../files/" + parts[-1] + "?sig=relative")])
        if kind == "absredirect":
            loc = "http://%s:%d/files/%s" % (parts[1], self.server.server_address[1], parts[2])
            return self.reply(307, b"", [("Location", loc)])
        if kind == "noloc":
            return self.reply(302, b"")
        if kind == "stall-header":
            NEVER.wait(300)
            return
        rest = urllib.parse.unquote("/".join(parts[1:]))
        path = os.path.join(ROOT, rest)
        if not os.path.isfile(path):
            return self.reply(404, ("no such file: " + rest).encode())
        size = os.path.getsize(path)
        if kind == "files":
            self.send_response(200)
            self.send_header("Content-Type", "application/gzip")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.send_file(path)
        elif kind == "chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            with open(path, "rb") as f:
                while True:
                    chunk = f.read(50000)
                    if not chunk:
                        break
                    self.wfile.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif kind == "eof":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.send_file(path)
            self.close_connection = True
        elif kind == "short":
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.send_file(path, size // 2)
            self.close_connection = True
        elif kind == "long":
            self.send_response(200)
            self.send_header("Content-Length", str(size - 1000))
            self.end_headers()
            self.send_file(path)
            self.close_connection = True
        elif kind == "stall":
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.send_file(path, size // 2)
            NEVER.wait(300)
            self.close_connection = True
        else:
            self.reply(404, b"unknown route")

class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
)PY";

/// The python server above, serving files from `root`.
class python_http_server {
public:
  explicit python_http_server(const fs::path& root)
      : script_dir_("tinker-pyserver"),
        process_((write_file(script_dir_ / "server.py", python_server_script),
                  std::vector<std::string>{"/usr/bin/python3", (script_dir_ / "server.py").string(), root.string()}),
                 true) {
    port_ = static_cast<std::uint16_t>(std::stoi(process_.read_line()));
    wait_for_port(port_, process_.pid());
  }
  std::uint16_t port() const noexcept { return port_; }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

private:
  temp_dir script_dir_;
  child_process process_;
  std::uint16_t port_ = 0;
};

// Archives made at test time. Valid ones by the real GNU tar (gnu/pax/ustar formats) and by
// python's tarfile (GNU and pax), hostile ones by python's tarfile. Each exists as <name>.tar and
// <name>.tar.gz in archives().dir.
inline constexpr const char* python_valid_archives_script = R"PY(
import tarfile, os, sys
src, out = sys.argv[1], sys.argv[2]
for fmt, name in ((tarfile.GNU_FORMAT, "py_gnu"), (tarfile.PAX_FORMAT, "py_pax")):
    for mode, ext in (("w", ".tar"), ("w:gz", ".tar.gz")):
        with tarfile.open(os.path.join(out, name + ext), mode, format=fmt) as t:
            for entry in sorted(os.listdir(src)):
                t.add(os.path.join(src, entry), arcname=entry)
)PY";

inline constexpr const char* python_hostile_archives_script = R"PY(
import gzip, io, os, sys, tarfile
out = sys.argv[1]

def info(name, type=tarfile.REGTYPE, data=b"", **kw):
    ti = tarfile.TarInfo(name)
    ti.type = type
    ti.size = len(data) if type == tarfile.REGTYPE else 0
    ti.mtime = 1700000000
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti, data

def build(members, fmt=tarfile.GNU_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for ti, data in members:
            t.addfile(ti, io.BytesIO(data) if ti.type == tarfile.REGTYPE else None)
    return buf.getvalue()

def save(name, tar_bytes, gz=None):
    with open(os.path.join(out, name + ".tar"), "wb") as f:
        f.write(tar_bytes)
    with open(os.path.join(out, name + ".tar.gz"), "wb") as f:
        f.write(gz if gz is not None else gzip.compress(tar_bytes))

ok = info("adapter_config.json", data=b'{"r": 8}')
save("dotdot", build([ok, info("../evil-dotdot", data=b"pwned")]))
save("nested_dotdot", build([ok, info("a/b/../../../evil-nested", data=b"pwned")]))
save("absolute", build([ok, info("/tmp/tinker-evil-absolute", data=b"pwned")]))
save("symlink", build([ok, info("escape", tarfile.SYMTYPE, linkname="/etc/passwd")]))
save("symlink_dir", build([info("dir", tarfile.SYMTYPE, linkname=".."), info("dir/evil-through-link", data=b"pwned")]))
save("hardlink", build([ok, info("link", tarfile.LNKTYPE, linkname="/etc/passwd")]))
save("chardev", build([ok, info("null", tarfile.CHRTYPE, devmajor=1, devminor=3)]))
save("blockdev", build([ok, info("sda", tarfile.BLKTYPE, devmajor=8, devminor=0)]))
save("fifo", build([ok, info("pipe", tarfile.FIFOTYPE)]))
save("sparse", build([ok, info("holes.bin", tarfile.GNUTYPE_SPARSE)]))
save("duplicate", build([ok, info("adapter_config.json", data=b"second copy")]))
save("file_dir_clash", build([info("a", data=b"a file"), info("a/b", data=b"under a file")]))
save("pax_dotdot", build([ok, info("p" * 120 + "/../../evil-pax", data=b"pwned")], tarfile.PAX_FORMAT))
save("gnu_long_absolute", build([info("/" + "q" * 150, data=b"pwned")], tarfile.GNU_FORMAT))
save("pax_huge_header", build([info("f.txt", data=b"x", pax_headers={"comment": "c" * (1 << 20)})], tarfile.PAX_FORMAT))
save("gnu_name_too_long", build([info("n/" * 3000 + "f", data=b"x")], tarfile.GNU_FORMAT))
save("setuid", build([info("bin", tarfile.DIRTYPE, mode=0o7777), info("bin/tool", data=b"#!/bin/sh\n", mode=0o6777),
                      info("locked.txt", data=b"locked", mode=0o000)]))
save("empty", b"\0" * 10240)
save("root_dir_only", build([info(".", tarfile.DIRTYPE)]))
save("big_file", build([info("big.bin", data=b"x" * 5000)]))

huge = tarfile.TarInfo("huge.bin")
huge.size = 1 << 40
huge.mtime = 0
save("huge_size", huge.tobuf(tarfile.GNU_FORMAT) + b"\0" * 4096)

good = build([ok])
bad = bytearray(good)
bad[0] ^= 0x20
save("bad_checksum", bytes(bad))

model = build([info("adapter_model.safetensors", data=bytes(range(256)) * 400)])
save("truncated", model[:512 + 50000])
save("no_end_marker", good[:1024])

trailing = good + b"\0" * (40 << 20)
save("trailing_flood", trailing)

whole = gzip.compress(model)
save("truncated_gzip", model, whole[: len(whole) // 2])
)PY";

/// The source tree of the valid archives: name -> (contents, mode).
struct source_file {
  std::string contents;
  unsigned mode;
};

class test_archives {
public:
  test_archives() : dir_("tinker-archives") {
    ::umask(022);
    src_ = dir_ / "src";
    out_ = dir_ / "archives";
    fs::create_directories(out_);
    add("adapter_config.json", R"({"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]})", 0644);
    add("adapter_model.safetensors", random_bytes(3 << 20, 1) + std::string(1 << 20, '\0'), 0644);
    add("sub dir/nested/block513.bin", random_bytes(513, 2), 0644);
    add("exact512.bin", random_bytes(512, 3), 0644);
    add("empty.txt", "", 0644);
    add("deep/" + std::string(120, 'd') + "/" + std::string(110, 'f') + ".bin", random_bytes(1000, 4), 0644);
    add("\xc3\xbc"
        "n"
        "\xc3\xaf"
        "c"
        "\xc3\xb8"
        "d"
        "\xc3\xa9-\xe5\x90\x8d\xe5\x89\x8d.txt",
        "unicode name\n", 0644);  // "ünïcødé-名前.txt"
    add("tool.sh", "#!/bin/sh\necho hi\n", 04755);
    add("private.key", "secret\n", 0600);
    add("readonly.txt", "read only\n", 0444);
    const auto s = shell_quote(src_), o = shell_quote(out_);
    for (const char* format : {"gnu", "pax"}) {
      run_shell(std::string("tar --format=") + format + " -cf " + o + "/" + format + ".tar -C " + s + " .");
      run_shell(std::string("tar --format=") + format + " -czf " + o + "/" + format + ".tar.gz -C " + s + " .");
    }
    write_file(dir_ / "valid.py", python_valid_archives_script);
    write_file(dir_ / "hostile.py", python_hostile_archives_script);
    run_shell("/usr/bin/python3 " + shell_quote(dir_ / "valid.py") + " " + s + " " + o);
    run_shell("/usr/bin/python3 " + shell_quote(dir_ / "hostile.py") + " " + o);
    // ustar: a path split into prefix and name.
    const auto ustar_src = dir_ / "ustar-src";
    ustar_path_ = std::string(90, 'p') + "/" + std::string(90, 'n') + ".txt";
    write_file(ustar_src / ustar_path_, "split path\n");
    run_shell("tar --format=ustar -cf " + o + "/ustar.tar -C " + shell_quote(ustar_src) + " " +
              shell_quote(ustar_path_));
    // Small archives with every header kind, for mutation tests.
    const auto small_src = dir_ / "small-src";
    write_file(small_src / "adapter_config.json", "{\"r\": 4}\n");
    write_file(small_src / (std::string(150, 'L') + ".bin"), random_bytes(2000, 6));
    write_file(small_src / "d1" / "d2" / "f.txt", "nested\n");
    for (const char* format : {"gnu", "pax"})
      run_shell(std::string("tar --format=") + format + " -cf " + o + "/small-" + format + ".tar -C " +
                shell_quote(small_src) + " .");
  }

  const fs::path& dir() const noexcept { return out_; }
  fs::path operator/(const std::string& name) const { return out_ / name; }
  const std::map<std::string, source_file>& files() const noexcept { return files_; }
  const std::string& ustar_path() const noexcept { return ustar_path_; }

  std::set<std::string> file_names() const {
    std::set<std::string> names;
    for (const auto& [name, f] : files_) names.insert(name);
    return names;
  }

  /// What extraction must produce for a stored mode (umask 022).
  static unsigned expected_mode(unsigned stored) { return ((stored & 0755u) | 0600u) & ~022u; }

private:
  void add(const std::string& name, std::string contents, unsigned mode) {
    const auto p = src_ / name;
    write_file(p, contents);
    fs::permissions(p, static_cast<fs::perms>(mode), fs::perm_options::replace);
    files_[name] = source_file{std::move(contents), mode};
  }

  temp_dir dir_;
  fs::path src_, out_;
  std::map<std::string, source_file> files_;
  std::string ustar_path_;
};

/// Built once per process, on first use.
inline test_archives& archives() {
  static test_archives a;
  return a;
}

/// Checks that `root` holds exactly the source tree of the valid archives, byte for byte, with
/// sanitised modes.
inline void check_extracted_tree(const fs::path& root) {
  const auto& a = archives();
  CHECK(list_files_recursive(root) == a.file_names());
  for (const auto& [name, f] : a.files()) {
    const auto p = root / name;
    REQUIRE_MESSAGE(fs::is_regular_file(fs::symlink_status(p)), name);
    CHECK_MESSAGE(read_file(p) == f.contents, name);
    const auto mode = static_cast<unsigned>(fs::status(p).permissions()) & 07777u;
    CHECK_MESSAGE(mode == test_archives::expected_mode(f.mode), name << ": mode " << std::oct << mode);
  }
}

}  // namespace tinker::test
