// download_and_extract / download_to_file over real HTTP on loopback: a python server written at
// test time (redirects, status codes, Content-Length lies, stalls) and nginx with a CA and server
// certificates made by the openssl CLI (TLS, throughput).
#include "common/run_coro.hpp"
#include "common/test_certs.hpp"
#include "download/download_test_support.hpp"

#include <tinker/client/download.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace tinker::test;
using namespace std::chrono_literals;

python_http_server& server() {
  static python_http_server s(archives().dir());
  return s;
}

std::vector<std::string> extract(const std::string& url, const fs::path& destination, tinker::download_options o = {}) {
  asio::io_context io;
  return run_coro(io, tinker::download_and_extract(io.get_executor(), url, destination, std::move(o)));
}

std::uint64_t to_file(const std::string& url, const fs::path& file, tinker::download_options o = {}) {
  asio::io_context io;
  return run_coro(io, tinker::download_to_file(io.get_executor(), url, file, std::move(o)));
}

/// Runs a download that must fail with E; checks that nothing appeared in `dir` (no destination,
/// no temporary left behind) and returns the exception.
template <class E>
E extract_fails(const std::string& url, const temp_dir& dir, tinker::download_options o = {}) {
  const auto before = list_dir(dir.path());
  try {
    extract(url, dir / "checkpoint", std::move(o));
  } catch (const E& e) {
    CHECK_MESSAGE(list_dir(dir.path()) == before, "something was left behind after: " << e.what());
    CHECK(!fs::exists(fs::symlink_status(dir / "checkpoint")));
    return e;
  } catch (const std::exception& e) {
    FAIL("unexpected exception type: " << e.what());
  }
  FAIL("the download succeeded: " << url);
  throw std::logic_error("unreachable");
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

/// Archives big enough to measure: 200 MiB of zeros (compresses to ~200 KiB) and 64 MiB of random
/// bytes (incompressible), made on first use next to the other archives.
struct big_archives {
  static constexpr std::uint64_t zeros_bytes = 200ull << 20;
  static constexpr std::uint64_t random_size_bytes = 64ull << 20;
  big_archives() {
    const auto a = archives().dir();
    const auto zdir = a / "big-zeros-src", rdir = a / "big-random-src";
    fs::create_directories(zdir);
    fs::create_directories(rdir);
    run_shell("head -c " + std::to_string(zeros_bytes) + " /dev/zero > " +
              shell_quote(zdir / "adapter_model.safetensors"));
    run_shell("echo '{\"r\": 64}' > " + shell_quote(zdir / "adapter_config.json"));
    run_shell("tar -czf " + shell_quote(a / "zeros.tar.gz") + " -C " + shell_quote(zdir) + " .");
    run_shell("head -c " + std::to_string(random_size_bytes) + " /dev/urandom > " +
              shell_quote(rdir / "adapter_model.safetensors"));
    run_shell("tar -cf - -C " + shell_quote(rdir) + " . | gzip -1 > " + shell_quote(a / "random.tar.gz"));
    fs::remove_all(zdir);
    random_model = rdir / "adapter_model.safetensors";
  }
  fs::path random_model;
};

big_archives& big() {
  static big_archives b;
  return b;
}

/// nginx serving the archives over plain HTTP, over TLS with a certificate for localhost and
/// 127.0.0.1, and over TLS with a certificate for another name.
class nginx_server {
public:
  nginx_server() : dir_("tinker-nginx") {
    const auto good = pki_.issue("localhost", {"localhost"}, {"127.0.0.1"});
    const auto other = pki_.issue("other", {"other.test"}, {});
    plain_port_ = pick_free_port();
    do tls_port_ = pick_free_port();
    while (tls_port_ == plain_port_);
    do mismatch_port_ = pick_free_port();
    while (mismatch_port_ == plain_port_ || mismatch_port_ == tls_port_);
    const auto d = dir_.path().string(), root = archives().dir().string();
    fs::create_directories(dir_ / "tmp");
    const auto temp_paths = "client_body_temp_path " + d + "/tmp; proxy_temp_path " + d + "/tmp; fastcgi_temp_path " +
                            d + "/tmp; uwsgi_temp_path " + d + "/tmp; scgi_temp_path " + d + "/tmp;";
    write_file(dir_ / "nginx.conf",
               "daemon off; master_process off; worker_processes 1;\n"
               "pid " +
                   d + "/nginx.pid; error_log " + d +
                   "/error.log warn;\n"
                   "events { worker_connections 256; }\n"
                   "http {\n  access_log off; sendfile on; default_type application/octet-stream;\n  " +
                   temp_paths +
                   "\n"
                   "  server { listen 127.0.0.1:" +
                   std::to_string(plain_port_) + "; root " + root +
                   "; }\n"
                   "  server { listen 127.0.0.1:" +
                   std::to_string(tls_port_) + " ssl; root " + root +
                   ";\n"
                   "    ssl_certificate " +
                   good.cert_file + "; ssl_certificate_key " + good.key_file +
                   ";\n"
                   "    location /downgrade/ { return 302 http://127.0.0.1:" +
                   std::to_string(plain_port_) +
                   "/gnu.tar.gz; }\n"
                   "  }\n"
                   // Two names on one port: without SNI nginx presents the default (other.test) certificate.
                   "  server { listen 127.0.0.1:" +
                   std::to_string(mismatch_port_) + " ssl default_server; root " + root +
                   ";\n"
                   "    ssl_certificate " +
                   other.cert_file + "; ssl_certificate_key " + other.key_file +
                   "; }\n"
                   "  server { listen 127.0.0.1:" +
                   std::to_string(mismatch_port_) + " ssl; server_name localhost; root " + root +
                   ";\n"
                   "    ssl_certificate " +
                   good.cert_file + "; ssl_certificate_key " + good.key_file +
                   "; }\n"
                   "}\n");
    process_.emplace(
        std::vector<std::string>{"/usr/sbin/nginx", "-p", d, "-c", d + "/nginx.conf", "-e", d + "/error.log"}, false);
    for (const auto port : {plain_port_, tls_port_, mismatch_port_}) wait_for_port(port, process_->pid());
  }

  std::string http(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(plain_port_) + path; }
  std::string https(const std::string& path, const std::string& host = "127.0.0.1") const {
    return "https://" + host + ":" + std::to_string(tls_port_) + path;
  }
  /// The port where the certificate depends on SNI: localhost gets a valid one, anything else
  /// (an IP literal, which is never sent as SNI) one for other.test.
  std::string https_sni(const std::string& path, const std::string& host) const {
    return "https://" + host + ":" + std::to_string(mismatch_port_) + path;
  }
  const test_pki& pki() const noexcept { return pki_; }

  tinker::download_options trusting() const {
    tinker::download_options o;
    o.tls.ca_file = pki_.ca_file();
    o.tls.use_system_ca = false;
    return o;
  }

private:
  temp_dir dir_;
  test_pki pki_;
  std::uint16_t plain_port_ = 0, tls_port_ = 0, mismatch_port_ = 0;
  std::optional<child_process> process_;
};

nginx_server& nginx() {
  static nginx_server n;
  return n;
}

double mib_per_s(std::uint64_t bytes, std::chrono::steady_clock::duration d) {
  return static_cast<double>(bytes) / (1 << 20) / std::chrono::duration<double>(d).count();
}

}  // namespace

TEST_CASE("download_and_extract: GNU tar archive over HTTP (Content-Length, chunked, close-delimited), byte-exact") {
  temp_dir tmp;
  for (const char* route : {"files", "chunked", "eof"}) {
    CAPTURE(route);
    const auto dest = tmp / (std::string("ckpt-") + route);
    // The query plays the signature of a signed URL; the server ignores it.
    const auto files =
        extract(server().url(std::string("/") + route + "/gnu.tar.gz?X-Amz-Signature=abc123&X-Amz-Expires=900"), dest);
    CHECK(std::set<std::string>(files.begin(), files.end()) == archives().file_names());
    CHECK(files.size() == archives().files().size());
    check_extracted_tree(dest);
  }
  // Only the three destinations: no temporary left next to them.
  CHECK(list_dir(tmp.path()) == std::set<std::string>{"ckpt-files", "ckpt-chunked", "ckpt-eof"});
}

TEST_CASE("download_and_extract: pax and python tarfile archives, parents created, trailing slash accepted") {
  temp_dir tmp;
  for (const char* name : {"pax.tar.gz", "py_gnu.tar.gz", "py_pax.tar.gz"}) {
    CAPTURE(name);
    const auto dest = tmp / "nested" / "dirs" / name;
    extract(server().url(std::string("/files/") + name), dest.string() + "/");
    check_extracted_tree(dest);
  }
  CHECK(list_dir(tmp / "nested" / "dirs").size() == 3);
}

TEST_CASE("download_and_extract: setuid bits and wide modes are sanitised") {
  temp_dir tmp;
  const auto files = extract(server().url("/files/setuid.tar.gz"), tmp / "out");
  CHECK(files == std::vector<std::string>{"bin/tool", "locked.txt"});
  auto mode = [](const fs::path& p) { return static_cast<unsigned>(fs::status(p).permissions()) & 07777u; };
  CHECK(mode(tmp / "out" / "bin") == 0755);
  CHECK(mode(tmp / "out" / "bin" / "tool") == 0755);
  CHECK(mode(tmp / "out" / "locked.txt") == 0600);
  CHECK(read_file(tmp / "out" / "bin" / "tool") == "#!/bin/sh\n");
}

TEST_CASE("download_and_extract: hostile archives are refused with the entry named, and nothing is written") {
  struct hostile_case {
    const char* archive;
    const char* entry;
    const char* message;
  };
  const std::string long_pax = std::string(120, 'p') + "/../../evil-pax";
  const std::string long_abs = "/" + std::string(150, 'q');
  const std::vector<hostile_case> cases = {
      {"dotdot", "../evil-dotdot", "contains a '..' component"},
      {"nested_dotdot", "a/b/../../../evil-nested", "contains a '..' component"},
      {"absolute", "/tmp/tinker-evil-absolute", "absolute paths are not allowed"},
      {"symlink", "escape",
       "symbolic links are not allowed (a checkpoint archive needs none); it points to '/etc/passwd'"},
      {"symlink_dir", "dir", "symbolic links are not allowed"},
      {"hardlink", "link", "hard links are not allowed (a checkpoint archive needs none)"},
      {"chardev", "null", "character device entries are not allowed"},
      {"blockdev", "sda", "block device entries are not allowed"},
      {"fifo", "pipe", "FIFO entries are not allowed"},
      {"sparse", "holes.bin", "unsupported entry type 'S'"},
      {"duplicate", "adapter_config.json", "duplicate entry"},
      {"file_dir_clash", "a/b", "must be a directory for this entry, but the archive has a file there"},
      {"pax_dotdot", long_pax.c_str(), "contains a '..' component"},
      {"gnu_long_absolute", long_abs.c_str(), "absolute paths are not allowed"},
      {"huge_size", "huge.bin", "would take the extracted size past the limit"},
      {"bad_checksum", "", "header checksum mismatch"},
      {"truncated", "", "entry 'adapter_model.safetensors' ends after 50000 of 102400 bytes"},
      {"truncated_gzip", "", "the compressed stream is truncated"},
      {"no_end_marker", "", "without the end-of-archive marker"},
      {"pax_huge_header", "", "pax extended header of"},
      {"gnu_name_too_long", "", "GNU long name of"},
      {"trailing_flood", "", "follow the end-of-archive marker"},
      {"empty", "", "contains no files"},
      {"root_dir_only", "", "contains no files"},
  };
  temp_dir tmp;
  REQUIRE(!fs::exists("/tmp/tinker-evil-absolute"));
  for (const auto& c : cases) {
    CAPTURE(c.archive);
    const auto e =
        extract_fails<tinker::archive_error>(server().url(std::string("/files/") + c.archive + ".tar.gz"), tmp);
    CHECK(e.entry() == c.entry);
    CHECK_MESSAGE(contains(e.what(), c.message), e.what());
    CHECK(contains(e.what(), "checkpoint archive rejected"));
    if (*c.entry && std::string(c.entry).size() < 100)
      CHECK(contains(e.what(), "entry '" + std::string(c.entry) + "'"));
  }
  // The escapes went nowhere: not next to the destination, not at the absolute path.
  CHECK(list_dir(tmp.path()).empty());
  CHECK(!fs::exists("/tmp/tinker-evil-absolute"));
  // An archive_error is an api_error / tinker_error.
  CHECK_THROWS_AS(extract(server().url("/files/dotdot.tar.gz"), tmp / "x"), tinker::api_error);
}

TEST_CASE("download_and_extract: data that is not a gzip archive") {
  temp_dir tmp;
  auto e = extract_fails<tinker::archive_error>(server().url("/files/gnu.tar"), tmp);  // uncompressed tar
  CHECK(contains(e.what(), "incorrect header check"));
  e = extract_fails<tinker::archive_error>(server().url("/status/200"), tmp);  // a text body
  CHECK(contains(e.what(), "inflate"));
}

TEST_CASE("download_and_extract: redirects (chains, relative, absolute to another host name, limits)") {
  temp_dir tmp;
  // Three hops are allowed by default; the query survives the chain.
  extract(server().url("/redirect/3/files/gnu.tar.gz?sig=1"), tmp / "three");
  check_extracted_tree(tmp / "three");
  extract(server().url("/relredirect/a/b/gnu.tar.gz"), tmp / "relative");
  check_extracted_tree(tmp / "relative");
  extract(server().url("/absredirect/localhost/gnu.tar.gz"), tmp / "other-host");
  check_extracted_tree(tmp / "other-host");

  temp_dir fail_dir;
  auto e = extract_fails<tinker::api_status_error>(server().url("/redirect/4/files/gnu.tar.gz?sig=SECRET"), fail_dir);
  CHECK(e.status() == 302);
  CHECK(contains(e.what(), "too many redirects"));
  CHECK(!contains(e.what(), "SECRET"));
  tinker::download_options none;
  none.max_redirects = 0;
  e = extract_fails<tinker::api_status_error>(server().url("/redirect/1/files/gnu.tar.gz"), fail_dir, none);
  CHECK(contains(e.what(), "too many redirects"));
  e = extract_fails<tinker::api_status_error>(server().url("/noloc/x"), fail_dir);
  CHECK(contains(e.what(), "without a Location header"));
}

TEST_CASE("download_and_extract: HTTP errors map to the api_status_error hierarchy, without the query") {
  temp_dir tmp;
  const std::string secret = "?X-Amz-Signature=TOPSECRET&X-Amz-Credential=KEY";
  auto e404 = extract_fails<tinker::not_found_error>(server().url("/files/missing.tar.gz" + secret), tmp);
  CHECK(e404.status() == 404);
  CHECK(e404.body() == "no such file: missing.tar.gz");
  CHECK(contains(e404.what(), "GET http://127.0.0.1:" + std::to_string(server().port()) +
                                  "/files/missing.tar.gz failed with HTTP 404"));
  CHECK(!contains(e404.what(), "TOPSECRET"));
  CHECK(!contains(e404.what(), "X-Amz"));
  CHECK(extract_fails<tinker::permission_denied_error>(server().url("/status/403" + secret), tmp).status() == 403);
  CHECK(extract_fails<tinker::rate_limit_error>(server().url("/status/429"), tmp).status() == 429);
  CHECK(extract_fails<tinker::api_status_error>(server().url("/status/410"), tmp).status() == 410);
  // A long error body is kept (bounded) but cut in the message.
  const auto e500 = extract_fails<tinker::internal_server_error>(server().url("/status/503?big"), tmp);
  CHECK(e500.status() == 503);
  CHECK(e500.body().size() == 64 * 1024);
  CHECK(std::string(e500.what()).size() < 2300);
}

TEST_CASE("download_and_extract: Content-Length lies and dropped connections") {
  temp_dir tmp;
  const auto size = fs::file_size(archives() / "gnu.tar.gz");
  // Fewer bytes than announced: a connection error that says how many arrived.
  const auto short_e = extract_fails<tinker::api_connection_error>(server().url("/short/gnu.tar.gz"), tmp);
  CHECK(contains(short_e.what(), "closed before the end of the body"));
  CHECK(contains(short_e.what(), "of " + std::to_string(size) + " bytes"));
  // Fewer announced than sent: we stop at Content-Length, so the archive is cut short.
  const auto long_e = extract_fails<tinker::archive_error>(server().url("/long/gnu.tar.gz"), tmp);
  CHECK(contains(long_e.what(), "truncated"));
  // A close-delimited body cut short is caught by gzip.
  CHECK(contains(extract_fails<tinker::archive_error>(server().url("/eof/truncated_gzip.tar.gz"), tmp).what(),
                 "truncated"));
}

TEST_CASE("download_and_extract: idle and connect timeouts, refused connections") {
  temp_dir tmp;
  tinker::download_options quick;
  quick.idle_timeout = 300ms;
  auto e = extract_fails<tinker::api_timeout_error>(server().url("/stall/gnu.tar.gz?sig=SECRET"), tmp, quick);
  CHECK(contains(e.what(), "nothing received for 300 ms"));
  CHECK(!contains(e.what(), "SECRET"));
  e = extract_fails<tinker::api_timeout_error>(server().url("/stall-header/x"), tmp, quick);
  CHECK(contains(e.what(), "idle_timeout"));

  const auto closed_port = pick_free_port();
  try {
    extract("http://127.0.0.1:" + std::to_string(closed_port) + "/a.tar.gz", tmp / "refused");
    FAIL("connected to a closed port");
  } catch (const tinker::api_timeout_error& e) {
    FAIL("a refused connection is not a timeout: " << e.what());
  } catch (const tinker::api_connection_error& e) {
    CHECK(contains(e.what(), "cannot connect to 127.0.0.1:" + std::to_string(closed_port)));
  }
  CHECK(list_dir(tmp.path()).empty());
}

TEST_CASE("download_and_extract: user errors before anything is touched") {
  temp_dir tmp;
  CHECK_THROWS_WITH_AS(extract("ftp://example.com/a.tar.gz", tmp / "x"),
                       doctest::Contains("scheme must be http or https"), tinker::invalid_argument);
  CHECK_THROWS_WITH_AS(extract("not a url?sig=SECRET", tmp / "x"),
                       doctest::Contains("invalid download URL 'not a url'"), tinker::invalid_argument);
  CHECK_THROWS_WITH_AS(extract("http://user:pw@example.com/a", tmp / "x"), doctest::Contains("user info"),
                       tinker::invalid_argument);
  fs::create_directories(tmp / "exists");
  CHECK_THROWS_WITH_AS(extract(server().url("/files/gnu.tar.gz"), tmp / "exists"), doctest::Contains("already exists"),
                       tinker::invalid_argument);
  fs::create_symlink(tmp / "nowhere", tmp / "dangling");
  CHECK_THROWS_WITH_AS(extract(server().url("/files/gnu.tar.gz"), tmp / "dangling"),
                       doctest::Contains("already exists"), tinker::invalid_argument);
  tinker::download_options bad;
  bad.max_redirects = -1;
  CHECK_THROWS_AS(extract(server().url("/files/gnu.tar.gz"), tmp / "y", bad), tinker::invalid_argument);
  CHECK(list_dir(tmp.path()) == std::set<std::string>{"exists", "dangling"});
}

TEST_CASE("download_and_extract: size limits (announced, streamed and extracted)") {
  temp_dir tmp;
  tinker::download_options small;
  small.max_archive_bytes = 1000;
  auto e = extract_fails<tinker::archive_error>(server().url("/files/gnu.tar.gz"), tmp, small);
  CHECK(contains(e.what(), "max_archive_bytes"));
  e = extract_fails<tinker::archive_error>(server().url("/chunked/gnu.tar.gz"), tmp, small);  // no Content-Length
  CHECK(contains(e.what(), "max_archive_bytes"));
  tinker::download_options few;
  few.max_extracted_bytes = 1 << 20;  // the safetensors file is 4 MiB
  e = extract_fails<tinker::archive_error>(server().url("/files/gnu.tar.gz"), tmp, few);
  CHECK(e.entry() == "./adapter_model.safetensors");
  CHECK(contains(e.what(), "max_extracted_bytes"));
}

TEST_CASE("download_and_extract: progress is monotonic, starts at 0 and ends at the total") {
  temp_dir tmp;
  std::vector<tinker::download_progress> seen;
  tinker::download_options o;
  o.on_progress = [&](const tinker::download_progress& p) { seen.push_back(p); };
  extract(server().url("/files/gnu.tar.gz"), tmp / "out", o);
  const auto size = fs::file_size(archives() / "gnu.tar.gz");
  REQUIRE(seen.size() >= 2);
  CHECK(seen.front().bytes_received == 0);
  CHECK(seen.back().bytes_received == size);
  for (std::size_t i = 0; i < seen.size(); ++i) {
    CHECK(seen[i].bytes_total == std::optional<std::uint64_t>(size));
    if (i > 0) CHECK(seen[i].bytes_received > seen[i - 1].bytes_received);
  }
  CHECK(seen.size() < 2 + size / (1 << 20) + 50);  // throttled, not once per read

  // Without Content-Length the total is unknown.
  seen.clear();
  extract(server().url("/chunked/gnu.tar.gz"), tmp / "chunked", o);
  REQUIRE(!seen.empty());
  CHECK(!seen.back().bytes_total);
  CHECK(seen.back().bytes_received == size);
}

TEST_CASE("download_and_extract: cancelling mid-download closes the socket and removes the temporary") {
  temp_dir tmp;
  asio::io_context io;
  asio::cancellation_signal cancel;
  bool requested = false;
  std::uint64_t received_at_cancel = 0;
  tinker::download_options o;
  o.idle_timeout = 300s;  // the server stalls after half the body: only cancellation ends this
  o.on_progress = [&](const tinker::download_progress& p) {
    if (p.bytes_received > 0 && !requested) {
      requested = true;
      received_at_cancel = p.bytes_received;
      asio::post(io, [&] { cancel.emit(asio::cancellation_type::terminal); });
    }
  };
  std::exception_ptr error;
  bool done = false;
  asio::co_spawn(io, tinker::download_and_extract(io.get_executor(), server().url("/stall/gnu.tar.gz"), tmp / "out", o),
                 asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e, std::vector<std::string>) {
                   error = e;
                   done = true;
                 }));
  const auto limit = std::chrono::steady_clock::now() + 120s;
  while (!done && std::chrono::steady_clock::now() < limit) io.run_one_for(100ms);
  REQUIRE(done);
  CHECK(requested);
  CHECK(received_at_cancel > 0);
  REQUIRE(error);
  try {
    std::rethrow_exception(error);
  } catch (const boost::system::system_error& e) {
    CHECK(e.code() == asio::error::operation_aborted);
  }
  CHECK(list_dir(tmp.path()).empty());
}

TEST_CASE("download_and_extract: losing a race against a timer (awaitable operators) cleans up too") {
  using namespace asio::experimental::awaitable_operators;
  temp_dir tmp;
  asio::io_context io;
  tinker::download_options o;
  o.idle_timeout = 300s;
  run_coro(io, [&]() -> asio::awaitable<void> {
    asio::steady_timer timer(io, 200ms);
    auto result =
        co_await (tinker::download_and_extract(io.get_executor(), server().url("/stall/gnu.tar.gz"), tmp / "out", o) ||
                  timer.async_wait(asio::use_awaitable));
    CHECK(result.index() == 1);
  }());
  CHECK(list_dir(tmp.path()).empty());
}

TEST_CASE("download_to_file: the raw archive, byte-exact, through a temporary") {
  temp_dir tmp;
  std::uint64_t last = 0;
  tinker::download_options o;
  o.on_progress = [&](const tinker::download_progress& p) { last = p.bytes_received; };
  const auto n = to_file(server().url("/redirect/2/files/gnu.tar.gz?sig=x"), tmp / "ckpt.tar.gz", o);
  const auto expected = read_file(archives() / "gnu.tar.gz");
  CHECK(n == expected.size());
  CHECK(last == expected.size());
  CHECK(read_file(tmp / "ckpt.tar.gz") == expected);
  CHECK(list_dir(tmp.path()) == std::set<std::string>{"ckpt.tar.gz"});

  CHECK_THROWS_WITH_AS(to_file(server().url("/files/gnu.tar.gz"), tmp / "ckpt.tar.gz"),
                       doctest::Contains("already exists"), tinker::invalid_argument);
  CHECK_THROWS_AS(to_file(server().url("/short/gnu.tar.gz"), tmp / "short.tar.gz"), tinker::api_connection_error);
  CHECK_THROWS_AS(to_file(server().url("/status/500"), tmp / "err.tar.gz"), tinker::internal_server_error);
  CHECK(list_dir(tmp.path()) == std::set<std::string>{"ckpt.tar.gz"});
}

TEST_CASE("download over TLS (nginx): the right CA works, a wrong CA or host name fails clearly") {
  auto& n = nginx();
  temp_dir tmp;
  extract(n.https("/gnu.tar.gz?X-Amz-Signature=abc"), tmp / "by-ip", n.trusting());
  check_extracted_tree(tmp / "by-ip");
  extract(n.https("/pax.tar.gz", "localhost"), tmp / "by-name", n.trusting());  // DNS name check
  check_extracted_tree(tmp / "by-name");
  extract(n.https_sni("/gnu.tar.gz", "localhost"), tmp / "by-sni", n.trusting());  // only works if SNI was sent
  check_extracted_tree(tmp / "by-sni");

  temp_dir fail_dir;
  test_pki other_ca;
  tinker::download_options wrong;
  wrong.tls.ca_file = other_ca.ca_file();
  wrong.tls.use_system_ca = false;
  auto e = extract_fails<tinker::api_connection_error>(n.https("/gnu.tar.gz?sig=SECRET"), fail_dir, wrong);
  CHECK(contains(e.what(), "TLS certificate problem"));
  CHECK(contains(e.what(), "could not be verified"));
  CHECK(!contains(e.what(), "SECRET"));
  // The system store does not know our test CA either.
  e = extract_fails<tinker::api_connection_error>(n.https("/gnu.tar.gz"), fail_dir);
  CHECK(contains(e.what(), "TLS certificate problem"));
  // Trusted chain, wrong name.
  e = extract_fails<tinker::api_connection_error>(n.https_sni("/gnu.tar.gz", "127.0.0.1"), fail_dir, n.trusting());
  CHECK(contains(e.what(), "host name mismatch"));
  // A hashed CA directory (tls.ca_dir) works like a CA file.
  const auto ca_dir = fail_dir / "ca-dir";
  fs::create_directories(ca_dir);
  fs::copy_file(n.pki().ca_file(), ca_dir / "test-ca.pem");
  run_shell("openssl rehash " + shell_quote(ca_dir));
  tinker::download_options by_dir;
  by_dir.tls.ca_dir = ca_dir.string();
  by_dir.tls.use_system_ca = false;
  extract(n.https("/gnu.tar.gz"), tmp / "ca-dir", by_dir);
  check_extracted_tree(tmp / "ca-dir");
  fs::remove_all(ca_dir);
  // The explicit opt-out accepts anything.
  tinker::download_options insecure = wrong;
  insecure.tls.insecure_skip_verify = true;
  extract(n.https_sni("/gnu.tar.gz", "127.0.0.1"), tmp / "insecure", insecure);
  check_extracted_tree(tmp / "insecure");
  // An https URL never redirects to plain http.
  const auto down = extract_fails<tinker::api_status_error>(n.https("/downgrade/x"), fail_dir, n.trusting());
  CHECK(contains(down.what(), "refusing to follow a redirect from https to plain http"));
  // A CA file that cannot be read is a user error.
  tinker::download_options missing;
  missing.tls.ca_file = (fail_dir / "no-such-ca.pem").string();
  CHECK_THROWS_WITH_AS(extract(n.https("/gnu.tar.gz"), fail_dir / "x", missing), doctest::Contains("tls.ca_file"),
                       tinker::invalid_argument);
  CHECK(list_dir(fail_dir.path()).empty());
}

TEST_CASE("download: a 200 MiB archive streams in constant memory, throughput (informational)") {
  auto& b = big();
  auto& n = nginx();
  temp_dir tmp;
  const auto rss_before = proc_status_kib("VmRSS");
  const bool peak_resettable = reset_peak_rss();
  rss_sampler sampled;
  const auto t0 = std::chrono::steady_clock::now();
  const auto files = extract(n.http("/zeros.tar.gz"), tmp / "zeros");
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  const auto sampled_peak = sampled.stop();
  // The kernel's high-water mark where it can be reset; what the sampler saw always (it cannot
  // miss 200 MiB held for the length of the stream).
  const auto peak = peak_resettable ? std::max(proc_status_kib("VmHWM"), sampled_peak) : sampled_peak;
  CHECK(std::set<std::string>(files.begin(), files.end()) ==
        std::set<std::string>{"adapter_config.json", "adapter_model.safetensors"});
  const auto model = tmp / "zeros" / "adapter_model.safetensors";
  REQUIRE(fs::file_size(model) == big_archives::zeros_bytes);
  {
    std::ifstream in(model, std::ios::binary);
    std::vector<char> block(1 << 20);
    bool all_zero = true;
    while (in.read(block.data(), static_cast<std::streamsize>(block.size())) || in.gcount() > 0) {
      for (std::streamsize i = 0; i < in.gcount(); ++i) all_zero = all_zero && block[static_cast<std::size_t>(i)] == 0;
      if (!in) break;
    }
    CHECK(all_zero);
  }
  const auto compressed = fs::file_size(archives() / "zeros.tar.gz");
  std::printf(
      "[download] 200 MiB of zeros (%.1f KiB compressed) over HTTP: %.0f MiB/s extracted; RSS %llu KiB before, peak "
      "%llu KiB during (peak reset: %s)\n",
      static_cast<double>(compressed) / 1024, mib_per_s(big_archives::zeros_bytes, elapsed),
      static_cast<unsigned long long>(rss_before), static_cast<unsigned long long>(peak),
      peak_resettable ? "yes" : "no");
  CHECK(peak < rss_before + 48 * 1024);  // buffers are fixed; 200 MiB never in memory
  fs::remove_all(tmp / "zeros");

  // Incompressible: the network and TLS dominate.
  const auto random_size = fs::file_size(archives() / "random.tar.gz");
  const auto expected_model = fs::file_size(b.random_model);
  struct run_case {
    const char* label;
    std::string url;
    tinker::download_options options;
  };
  for (const auto& c :
       {run_case{"HTTP", n.http("/random.tar.gz"), {}}, run_case{"HTTPS", n.https("/random.tar.gz"), n.trusting()}}) {
    auto t = std::chrono::steady_clock::now();
    const auto got = to_file(c.url, tmp / (std::string(c.label) + ".tar.gz"), c.options);
    const auto raw_time = std::chrono::steady_clock::now() - t;
    CHECK(got == random_size);
    t = std::chrono::steady_clock::now();
    extract(c.url, tmp / c.label, c.options);
    const auto extract_time = std::chrono::steady_clock::now() - t;
    CHECK(fs::file_size(tmp / c.label / "adapter_model.safetensors") == expected_model);
    std::printf(
        "[download] %s, %.1f MiB random archive: download_to_file %.0f MiB/s, download_and_extract %.0f MiB/s\n",
        c.label, static_cast<double>(random_size) / (1 << 20), mib_per_s(random_size, raw_time),
        mib_per_s(random_size, extract_time));
  }
  CHECK(read_file(b.random_model) == read_file(tmp / "HTTPS" / "adapter_model.safetensors"));
}
