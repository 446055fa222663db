// The archive pipeline without a network: inflate_stream on real zlib/gzip output, tar_reader on
// archives written by GNU tar and python's tarfile (valid and hostile), and the extractor that
// turns a .tar.gz into files.
#include "download/download_test_support.hpp"

#include <tinker/client/detail/download_extract.hpp>
#include <tinker/client/detail/download_url.hpp>
#include <tinker/detail/inflate_stream.hpp>
#include <tinker/detail/tar_reader.hpp>
#include <tinker/detail/tar_writer.hpp>

#include <doctest/doctest.h>

#include <zlib.h>

#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace tinker::test;
using tinker::detail::inflate_error;
using tinker::detail::inflate_stream;
using tinker::detail::tar_entry;
using tinker::detail::tar_entry_type;
using tinker::detail::tar_error;
using tinker::detail::tar_reader;

/// Compresses with zlib: gzip framing (window 15 + 16) or zlib framing (15).
std::string deflate_with_zlib(std::string_view data, int window_bits, int level = 6) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, level, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&zs, static_cast<uLong>(data.size())) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

/// Text, incompressible bytes and long zero runs: every deflate block type.
std::string mixed_payload() {
  std::string s;
  for (int i = 0; i < 20000; ++i) s += "token " + std::to_string(i * 7919 % 10007) + " ";
  s += random_bytes(1 << 20, 42);
  s += std::string(2 << 20, '\0');
  s += random_bytes(12345, 43);
  return s;
}

/// Inflates `compressed` fed in pieces of `chunk` bytes through write().
std::string inflate_in_chunks(std::string_view compressed, std::size_t chunk,
                              std::uint64_t limit = inflate_stream::unlimited, std::size_t buffer = 128 * 1024) {
  inflate_stream z(limit, buffer);
  std::string out;
  for (std::size_t pos = 0; pos < compressed.size(); pos += chunk)
    z.write(compressed.substr(pos, chunk), [&](std::string_view piece) { out.append(piece); });
  z.finish();
  CHECK(z.total_in() == compressed.size());
  CHECK(z.total_out() == out.size());
  return out;
}

struct recorded_entry {
  tar_entry entry;
  std::string data;
  bool ended = false;
};

struct recorder {
  std::vector<recorded_entry> entries;
  void on_entry(const tar_entry& e) { entries.push_back({e, {}, false}); }
  void on_data(std::string_view d) {
    REQUIRE(!entries.empty());
    REQUIRE(!entries.back().ended);
    entries.back().data.append(d);
  }
  void on_entry_end() {
    REQUIRE(!entries.empty());
    entries.back().ended = true;
  }
};

std::vector<recorded_entry> parse_tar(std::string_view tar, std::size_t chunk, tinker::detail::tar_limits limits = {}) {
  tar_reader reader(limits);
  recorder r;
  for (std::size_t pos = 0; pos < tar.size(); pos += chunk) reader.write(tar.substr(pos, chunk), r);
  reader.finish();
  return std::move(r.entries);
}

std::string tar_error_of(std::string_view tar, std::size_t chunk = 4096, tinker::detail::tar_limits limits = {}) {
  try {
    parse_tar(tar, chunk, limits);
  } catch (const tar_error& e) {
    return e.what();
  }
  FAIL("expected a tar_error");
  return {};
}

/// Checks a parsed archive against the source tree of archives().
void check_entries_match_source(const std::vector<recorded_entry>& entries) {
  std::set<std::string> seen_files, seen_dirs;
  for (const auto& r : entries) {
    CHECK(r.ended);
    const auto rel = tinker::detail::sanitize_entry_path(r.entry.path);
    if (r.entry.type == tar_entry_type::directory) {
      seen_dirs.insert(rel);
      continue;
    }
    REQUIRE_MESSAGE(r.entry.type == tar_entry_type::regular, r.entry.path);
    const auto it = archives().files().find(rel);
    REQUIRE_MESSAGE(it != archives().files().end(), "unexpected entry " << r.entry.path);
    CHECK(r.entry.size == it->second.contents.size());
    CHECK_MESSAGE(r.data == it->second.contents, rel);
    CHECK_MESSAGE(r.entry.mode == it->second.mode, rel << std::oct << " mode " << r.entry.mode);
    seen_files.insert(rel);
  }
  CHECK(seen_files == archives().file_names());
  // Intermediate directories come from the tar CLI / tarfile as entries of their own.
  CHECK(seen_dirs.count("sub dir/nested") == 1);
  CHECK(seen_dirs.count("deep/" + std::string(120, 'd')) == 1);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// inflate_stream

TEST_CASE("inflate_stream: gzip and zlib round trips in tiny and large chunks") {
  const auto payload = mixed_payload();
  for (const int window : {15 + 16, 15}) {
    const auto compressed = deflate_with_zlib(payload, window);
    REQUIRE(compressed.size() < payload.size());
    for (const std::size_t chunk :
         {std::size_t{1}, std::size_t{3}, std::size_t{4096}, std::size_t{1} << 20, compressed.size()}) {
      CAPTURE(window);
      CAPTURE(chunk);
      CHECK(inflate_in_chunks(compressed, chunk) == payload);
    }
  }
}

TEST_CASE("inflate_stream: a tiny output buffer and the caller-buffer form") {
  const auto payload = mixed_payload().substr(0, 300000);
  const auto compressed = deflate_with_zlib(payload, 15 + 16, 9);
  CHECK(inflate_in_chunks(compressed, 777, inflate_stream::unlimited, 1) == payload);

  inflate_stream z;
  std::string out;
  char buffer[7];
  for (std::size_t pos = 0; pos < compressed.size(); pos += 1000) {
    std::string_view in = std::string_view(compressed).substr(pos, 1000);
    for (;;) {
      const auto n = z.decompress_some(in, buffer, sizeof buffer);
      out.append(buffer, n);
      if (n < sizeof buffer) {
        CHECK(in.empty());  // a short read means the input is used up
        break;
      }
    }
  }
  z.finish();
  CHECK(out == payload);
  CHECK(z.members() == 1);
}

TEST_CASE("inflate_stream: concatenated gzip members (made by the gzip CLI) are joined") {
  temp_dir dir;
  write_file(dir / "a.txt", "first member\n");
  write_file(dir / "b.txt", random_bytes(100000, 5));
  run_shell("cd " + shell_quote(dir.path()) + " && gzip -k a.txt b.txt && cat a.txt.gz b.txt.gz > both.gz");
  const auto both = read_file(dir / "both.gz");
  const auto expected = "first member\n" + random_bytes(100000, 5);
  for (const std::size_t chunk : {std::size_t{1}, std::size_t{10}, both.size()})
    CHECK(inflate_in_chunks(both, chunk) == expected);
  inflate_stream z;
  z.write(both, [](std::string_view) {});
  z.finish();
  CHECK(z.members() == 2);
}

TEST_CASE("inflate_stream: a truncated stream is reported at finish()") {
  const auto compressed = deflate_with_zlib(mixed_payload(), 15 + 16);
  for (const std::size_t keep :
       {std::size_t{1}, std::size_t{10}, compressed.size() / 2, compressed.size() - 8, compressed.size() - 1}) {
    CAPTURE(keep);
    inflate_stream z;
    z.write(std::string_view(compressed).substr(0, keep), [](std::string_view) {});
    try {
      z.finish();
      FAIL("finish() accepted a truncated stream");
    } catch (const inflate_error& e) {
      CHECK(e.which() == inflate_error::kind::truncated);
      CHECK(std::string(e.what()).find("truncated") != std::string::npos);
    }
  }
  inflate_stream empty;
  CHECK_THROWS_WITH_AS(empty.finish(), doctest::Contains("no compressed data"), inflate_error);
}

TEST_CASE("inflate_stream: corrupt data, data that is not gzip, and trailing garbage") {
  const auto payload = mixed_payload();
  auto compressed = deflate_with_zlib(payload, 15 + 16);
  auto expect_corrupt = [](std::string_view data, const char* needle) {
    inflate_stream z;
    try {
      z.write(data, [](std::string_view) {});
      z.finish();
      FAIL("corrupt data was accepted");
    } catch (const inflate_error& e) {
      CHECK(e.which() == inflate_error::kind::corrupt);
      CHECK_MESSAGE(std::string(e.what()).find(needle) != std::string::npos, e.what());
    }
  };
  // A flipped byte in the middle: bad codes, or at the latest a CRC mismatch in the trailer.
  for (const std::size_t at : {compressed.size() / 3, compressed.size() / 2, compressed.size() - 6}) {
    auto bad = compressed;
    bad[at] = static_cast<char>(bad[at] ^ 0x55);
    expect_corrupt(bad, "corrupt");
  }
  expect_corrupt("this is plain text, not gzip", "incorrect header check");
  expect_corrupt(compressed + "GARBAGE AFTER THE END", "not another gzip member");
  expect_corrupt(compressed + std::string(100, '\0') + "GARBAGE", "not another gzip member");

  // Zero padding after the last member is not garbage (tape blocking; gzip and python accept it).
  CHECK(inflate_in_chunks(compressed + std::string(1000, '\0'), 300) == payload);
}

TEST_CASE("inflate_stream: output is bounded (decompression bombs stop at the limit)") {
  const std::string zeros(64 << 20, '\0');
  const auto bomb = deflate_with_zlib(zeros, 15 + 16, 9);
  REQUIRE(bomb.size() < 200 * 1024);  // 64 MiB from ~64 KiB
  std::uint64_t produced = 0;
  inflate_stream z(10 << 20, 64 * 1024);
  try {
    z.write(bomb, [&](std::string_view piece) { produced += piece.size(); });
    FAIL("the bomb was not stopped");
  } catch (const inflate_error& e) {
    CHECK(e.which() == inflate_error::kind::too_large);
    CHECK(std::string(e.what()).find("10485760") != std::string::npos);
  }
  CHECK(produced <= (10u << 20) + 1);

  // Exactly at the limit is fine.
  const auto small = deflate_with_zlib(std::string(1000, 'a'), 15 + 16);
  inflate_stream exact(1000);
  exact.write(small, [](std::string_view) {});
  exact.finish();
  CHECK(exact.total_out() == 1000);
}

TEST_CASE("inflate_stream: moves keep the zlib state usable") {
  const auto payload = random_bytes(50000, 9);
  const auto compressed = deflate_with_zlib(payload, 15 + 16);
  inflate_stream a;
  std::string out;
  a.write(std::string_view(compressed).substr(0, 100), [&](std::string_view p) { out.append(p); });
  inflate_stream b(std::move(a));
  b.write(std::string_view(compressed).substr(100), [&](std::string_view p) { out.append(p); });
  b.finish();
  CHECK(out == payload);
}

// ---------------------------------------------------------------------------------------------
// tar_reader

TEST_CASE("tar_reader: GNU tar archives (gnu and pax formats) in any chunking") {
  for (const char* name : {"gnu.tar", "pax.tar"}) {
    const auto tar = read_file(archives() / name);
    if (std::string(name) == "gnu.tar")
      CHECK(tar.find("././@LongLink") != std::string::npos);  // 'L' entries used
    else
      CHECK(tar.find("PaxHeaders") != std::string::npos);  // 'x' headers used
    for (const std::size_t chunk :
         {std::size_t{1}, std::size_t{511}, std::size_t{512}, std::size_t{513}, std::size_t{65536}, tar.size()}) {
      CAPTURE(name);
      CAPTURE(chunk);
      check_entries_match_source(parse_tar(tar, chunk));
    }
  }
}

TEST_CASE("tar_reader: python tarfile archives (GNU and pax formats)") {
  for (const char* name : {"py_gnu.tar", "py_pax.tar"}) {
    CAPTURE(name);
    const auto tar = read_file(archives() / name);
    check_entries_match_source(parse_tar(tar, 1000));
    check_entries_match_source(parse_tar(tar, tar.size()));
  }
}

TEST_CASE("tar_reader: ustar prefix + name, and our own tar_writer") {
  const auto entries = parse_tar(read_file(archives() / "ustar.tar"), 100);
  REQUIRE(entries.size() >= 1);
  CHECK(entries.back().entry.path == archives().ustar_path());
  CHECK(entries.back().data == "split path\n");

  const auto tar = tinker::detail::make_tar(
      {{"adapter_config.json", "{}"}, {"adapter_model.safetensors", random_bytes(5000, 1)}}, 1700000000);
  const auto written = parse_tar(tar, 333);
  REQUIRE(written.size() == 2);
  CHECK(written[0].entry.path == "adapter_config.json");
  CHECK(written[0].entry.mtime == 1700000000);
  CHECK(written[1].data == random_bytes(5000, 1));
  CHECK(written[1].entry.mode == 0644);
}

TEST_CASE("tar_reader: reports links and special files for the extractor to judge") {
  auto entries = parse_tar(read_file(archives() / "symlink.tar"), 512);
  REQUIRE(entries.size() == 2);
  CHECK(entries[1].entry.type == tar_entry_type::symlink);
  CHECK(entries[1].entry.link_target == "/etc/passwd");
  entries = parse_tar(read_file(archives() / "hardlink.tar"), 512);
  CHECK(entries[1].entry.type == tar_entry_type::hardlink);
  entries = parse_tar(read_file(archives() / "chardev.tar"), 512);
  CHECK(entries[1].entry.type == tar_entry_type::character_device);
  entries = parse_tar(read_file(archives() / "fifo.tar"), 512);
  CHECK(entries[1].entry.type == tar_entry_type::fifo);
  entries = parse_tar(read_file(archives() / "sparse.tar"), 512);
  CHECK(entries[1].entry.type == tar_entry_type::other);
  CHECK(entries[1].entry.typeflag == 'S');
  entries = parse_tar(read_file(archives() / "pax_dotdot.tar"), 512);
  CHECK(entries[1].entry.path == std::string(120, 'p') + "/../../evil-pax");
  entries = parse_tar(read_file(archives() / "gnu_long_absolute.tar"), 512);
  CHECK(entries[0].entry.path == "/" + std::string(150, 'q'));
}

TEST_CASE("tar_reader: hostile and broken archives are errors, not crashes") {
  auto expect = [](const std::string& what, const char* needle) {
    CHECK_MESSAGE(what.find(needle) != std::string::npos, what);
  };
  expect(tar_error_of(read_file(archives() / "bad_checksum.tar")), "checksum mismatch");
  expect(tar_error_of(read_file(archives() / "truncated.tar"), 100),
         "entry 'adapter_model.safetensors' ends after 50000 of 102400 bytes");
  expect(tar_error_of(read_file(archives() / "no_end_marker.tar")), "without the end-of-archive marker");
  expect(tar_error_of(read_file(archives() / "pax_huge_header.tar")), "pax extended header of");
  expect(tar_error_of(read_file(archives() / "gnu_name_too_long.tar")), "GNU long name of");
  expect(tar_error_of(read_file(archives() / "trailing_flood.tar"), 1 << 20), "follow the end-of-archive marker");
  expect(tar_error_of(""), "empty archive");
  expect(tar_error_of(random_bytes(4096, 77)), "tar: ");
  expect(tar_error_of(std::string(700, '\0')), "inside a header block");

  // A header claiming 1 TiB (GNU base-256 size): reported as such, then the missing data is a
  // truncation; nothing is allocated for it.
  {
    tar_reader reader;
    recorder r;
    reader.write(read_file(archives() / "huge_size.tar"), r);
    REQUIRE(r.entries.size() == 1);
    CHECK(r.entries[0].entry.size == (std::uint64_t{1} << 40));
    CHECK_THROWS_WITH_AS(reader.finish(), doctest::Contains("ends after 4096 of 1099511627776 bytes"), tar_error);
  }

  // A zero block followed by another header.
  {
    std::string tar = tinker::detail::make_tar({{"a.txt", "a"}}, 0);
    tar.resize(tar.size() - 512);                          // one zero block left
    tar += tinker::detail::make_tar({{"b.txt", "b"}}, 0);  // then more entries
    expect(tar_error_of(tar), "lone zero block");
  }

  // Every prefix of a valid archive is either complete or reported as truncated.
  const auto tar = read_file(archives() / "pax.tar");
  for (std::size_t cut = 0; cut < 20000; cut += 373) {
    tar_reader reader;
    recorder r;
    reader.write(std::string_view(tar).substr(0, cut), r);
    CHECK_THROWS_AS(reader.finish(), tar_error);
  }

  // Smaller limits apply.
  tinker::detail::tar_limits tight;
  tight.max_path_bytes = 100;
  expect(tar_error_of(read_file(archives() / "gnu.tar"), 4096, tight), "GNU long name of");
}

TEST_CASE("tar_reader and extractor: randomly corrupted archives give errors, never crashes or escapes") {
  std::mt19937_64 rng(20240601);
  temp_dir outer;
  std::size_t rejected = 0, accepted = 0;
  for (const char* name : {"small-gnu.tar", "small-pax.tar"}) {
    const auto original = read_file(archives() / name);
    const auto header_area = std::min<std::size_t>(original.size(), 6 * 512);
    for (int round = 0; round < 300; ++round) {
      auto tar = original;
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int i = 0; i < flips; ++i) {
        // Mostly in the first blocks, where the headers are; sometimes anywhere.
        const auto at = (rng() % 4 == 0) ? rng() % tar.size() : rng() % header_area;
        tar[at] = static_cast<char>(rng());
      }
      if (rng() % 8 == 0) tar.resize(rng() % tar.size());
      // Straight into the reader, in random chunks.
      {
        tar_reader reader;
        recorder r;
        try {
          for (std::size_t pos = 0; pos < tar.size();) {
            const auto n = 1 + rng() % 3000;
            reader.write(std::string_view(tar).substr(pos, n), r);
            pos += n;
          }
          reader.finish();
        } catch (const tar_error&) {
        }
      }
      // Through gzip into the extractor, inside a fresh root.
      const auto root = outer / ("r" + std::to_string(round));
      fs::create_directory(root);
      try {
        tinker::detail::archive_extractor x(root, {});
        x.write(deflate_with_zlib(tar, 15 + 16, 1));
        x.finish();
        ++accepted;
      } catch (const tinker::archive_error&) {
        ++rejected;
      } catch (const fs::filesystem_error&) {
        ++rejected;  // e.g. a corrupted name that the filesystem refuses
      }
      fs::remove_all(root);
      REQUIRE(list_dir(outer.path()).empty());  // nothing appeared next to the root
    }
  }
  MESSAGE("mutated archives: " << accepted << " accepted, " << rejected << " rejected");
  CHECK(rejected > 0);
}

// ---------------------------------------------------------------------------------------------
// the extractor (gzip -> tar -> files), without the network

TEST_CASE("archive_extractor: GNU tar and tarfile archives are extracted byte-exact in any chunking") {
  for (const char* name : {"gnu.tar.gz", "pax.tar.gz", "py_gnu.tar.gz", "py_pax.tar.gz"}) {
    const auto gz = read_file(archives() / name);
    for (const std::size_t chunk : {std::size_t{1}, std::size_t{1000}, std::size_t{65536}}) {
      if (chunk == 1 && std::string(name) != "gnu.tar.gz") continue;  // one byte-at-a-time run is enough
      CAPTURE(name);
      CAPTURE(chunk);
      temp_dir root;
      tinker::detail::archive_extractor x(root.path(), {});
      for (std::size_t pos = 0; pos < gz.size(); pos += chunk) x.write(std::string_view(gz).substr(pos, chunk));
      const auto files = x.finish();
      CHECK(std::set<std::string>(files.begin(), files.end()) == archives().file_names());
      CHECK(files.size() == archives().files().size());
      check_extracted_tree(root.path());
    }
  }
}

TEST_CASE("archive_extractor: path rules") {
  using tinker::detail::sanitize_entry_path;
  CHECK(sanitize_entry_path("./adapter_config.json") == "adapter_config.json");
  CHECK(sanitize_entry_path("a//b/./c/") == "a/b/c");
  CHECK(sanitize_entry_path("./") == "");
  CHECK(sanitize_entry_path("a..b/..c/d..") == "a..b/..c/d..");  // dots inside names are fine
  CHECK_THROWS_WITH_AS(sanitize_entry_path("../x"), doctest::Contains("'..' component"), tinker::archive_error);
  CHECK_THROWS_WITH_AS(sanitize_entry_path("a/.."), doctest::Contains("'..' component"), tinker::archive_error);
  CHECK_THROWS_WITH_AS(sanitize_entry_path("/etc/passwd"), doctest::Contains("absolute"), tinker::archive_error);
  CHECK_THROWS_WITH_AS(sanitize_entry_path(""), doctest::Contains("empty path"), tinker::archive_error);
  CHECK_THROWS_WITH_AS(sanitize_entry_path(std::string("a\0b", 3)), doctest::Contains("NUL"), tinker::archive_error);
  CHECK_THROWS_WITH_AS(sanitize_entry_path(std::string(256, 'x')), doctest::Contains("255"), tinker::archive_error);
  CHECK(tinker::detail::sanitize_file_mode(06777) == 0755);
  CHECK(tinker::detail::sanitize_file_mode(0) == 0600);
  CHECK(tinker::detail::sanitize_file_mode(0444) == 0644);
  CHECK(tinker::detail::sanitize_directory_mode(01777) == 0755);
  CHECK(tinker::detail::sanitize_directory_mode(0) == 0700);
}

TEST_CASE("archive_extractor: the memory for remembered paths is bounded") {
  temp_dir root;
  tinker::detail::extract_limits limits;
  limits.max_path_bytes = 1000;
  tinker::detail::archive_extractor x(root.path(), limits);
  CHECK_THROWS_WITH_AS(x.write(read_file(archives() / "gnu.tar.gz")),
                       doctest::Contains("paths take more than 1000 bytes"), tinker::archive_error);
}

TEST_CASE("download_url: parsing, redaction of the query, redirect resolution") {
  using tinker::detail::download_url;
  const auto u =
      download_url::parse("HTTPS://Storage.Example.com/bucket/run%201/ckpt.tar.gz?X-Amz-Signature=SECRET#frag");
  CHECK(u.scheme == "https");
  CHECK(u.host == "storage.example.com");
  CHECK(u.port == 443);
  CHECK(u.path == "/bucket/run%201/ckpt.tar.gz");
  CHECK(u.query == "X-Amz-Signature=SECRET");
  CHECK(u.target() == "/bucket/run%201/ckpt.tar.gz?X-Amz-Signature=SECRET");
  CHECK(u.host_header() == "storage.example.com");
  CHECK(u.redacted() == "https://storage.example.com/bucket/run%201/ckpt.tar.gz");

  const auto v6 = download_url::parse("http://[::1]:8080?x=1");
  CHECK(v6.host == "::1");
  CHECK(v6.port == 8080);
  CHECK(v6.path == "/");
  CHECK(v6.host_header() == "[::1]:8080");

  CHECK(u.resolve("/other?sig=2").target() == "/other?sig=2");
  CHECK(u.resolve("../x/y.tar.gz").path == "/bucket/x/y.tar.gz");
  CHECK(u.resolve("../../../../up").path == "/up");
  CHECK(u.resolve("./same/").path == "/bucket/run%201/same/");
  CHECK(u.resolve("?sig=3").target() == "/bucket/run%201/ckpt.tar.gz?sig=3");
  CHECK(u.resolve("//cdn.example.net/a").redacted() == "https://cdn.example.net/a");
  CHECK(u.resolve("http://h:81/p#f").redacted() == "http://h:81/p");

  for (const char* bad : {"ftp://h/x", "h/x", "http://", "http://h:0/", "http://h:99999/", "http://us:pw@h/x",
                          "http://h /x", "http://[::1/x", "http://h:/x"})
    CHECK_THROWS_AS(download_url::parse(bad), tinker::invalid_argument);
  CHECK_THROWS_WITH(download_url::parse("gopher://h/p?sig=SECRET"),
                    "invalid download URL 'gopher://h/p': the scheme must be http or https");
  CHECK(download_url::redact_text("https://user:pw@h/p?s=1") == "https://h/p");
  CHECK_THROWS_AS(u.resolve("mailto:x@y"), tinker::invalid_argument);
}

TEST_CASE("archive_extractor: the extracted-size limit is checked against each header before writing") {
  temp_dir root;
  tinker::detail::archive_extractor x(root.path(), {1000});
  try {
    x.write(read_file(archives() / "big_file.tar.gz"));
    x.finish();
    FAIL("the limit was not enforced");
  } catch (const tinker::archive_error& e) {
    CHECK(e.entry() == "big.bin");
    CHECK(std::string(e.what()).find("max_extracted_bytes") != std::string::npos);
  }
  CHECK(list_dir(root.path()).empty());  // refused before the file was created
}
