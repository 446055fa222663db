// The checkpoint archive extractor (client/detail/download_extract.hpp): gzip -> tar -> files,
// into a fresh directory per input. Besides the error contract, it checks what the extractor
// promises: nothing is created outside the destination, nothing inside is a link or anything but
// a regular file or directory, and the files it reports exist there.
//
// Input: one selector byte, one byte of piece size, then the archive. Selector bit 0 set: the rest
// is a tar that we gzip first (so mutations act on tar structure, not on deflate bits); clear: the
// rest is the .tar.gz as downloaded.
#include "fuzz_common.hpp"

#include <tinker/client/detail/download_extract.hpp>
#include <tinker/http/gzip.hpp>

#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace {

namespace fs = std::filesystem;
using namespace tinker;

/// A directory of this process holding only the current input's destination.
const fs::path& sandbox() {
  static const fs::path dir = [] {
    std::string templ = (fs::temp_directory_path() / "tinker-fuzz-archive-XXXXXX").string();
    if (!::mkdtemp(templ.data())) fuzz::fail("cannot create the sandbox directory");
    return fs::path(templ);
  }();
  return dir;
}

/// Removes `p` whatever the modes the archive asked for (the extractor keeps owner rwx anyway).
void remove_tree(const fs::path& p) {
  std::error_code ec;
  fs::remove_all(p, ec);
  if (ec) fuzz::fail("cannot clean up the destination", ec.message());
}

/// Local I/O failures are documented (std::filesystem::filesystem_error), but ones an archive can
/// provoke on purpose are not local failures: they must be caught as archive problems first.
bool is_archive_induced(const std::error_code& ec) {
  return ec == std::errc::file_exists || ec == std::errc::filename_too_long || ec == std::errc::not_a_directory ||
         ec == std::errc::too_many_symbolic_link_levels || ec == std::errc::is_a_directory;
}

void check_tree(const fs::path& root, const std::vector<std::string>& files) {
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    const auto st = entry.symlink_status();
    if (!fs::is_regular_file(st) && !fs::is_directory(st))
      fuzz::fail("extracted something that is neither file nor directory", entry.path().string());
  }
  for (const auto& f : files)
    if (!fs::is_regular_file(fs::symlink_status(root / f))) fuzz::fail("a reported file is missing", f);
  // Only the destination in the sandbox: nothing was written beside it.
  std::size_t n = 0;
  for (const auto& entry : fs::directory_iterator(sandbox())) {
    ++n;
    if (entry.path() != root) fuzz::fail("something was created outside the destination", entry.path().string());
  }
  TINKER_FUZZ_CHECK(n == 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  tinker::fuzz::input in{data, size};
  const auto which = in.take_byte();
  const std::size_t piece = std::size_t{in.take_byte()} * 64 + 1;
  std::string archive(in.rest());
  if (which & 1) archive = http::gzip_compress(archive, 1);

  const auto root = sandbox() / "dest";
  remove_tree(root);
  fs::create_directory(root);
  tinker::detail::extract_limits limits;
  limits.max_extracted_bytes = 1 << 20;
  limits.max_entries = 1000;
  limits.max_path_bytes = 1 << 20;
  std::vector<std::string> files;
  try {
    tinker::detail::archive_extractor x(root, limits);
    for (std::size_t i = 0; i < archive.size(); i += piece) x.write(std::string_view(archive).substr(i, piece));
    files = x.finish();
  } catch (const tinker_error&) {
  } catch (const fs::filesystem_error& e) {
    if (is_archive_induced(e.code())) fuzz::fail("an archive provoked a file system error", e.what());
  } catch (const std::exception& e) {
    fuzz::fail(typeid(e).name(), e.what());
  }
  check_tree(root, files);
  remove_tree(root);
  return 0;
}
