// Writes POSIX ustar archives (regular files only): what the local engine serves as a
// checkpoint archive, gzip-compressed.
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tinker::detail {

/// Writes `value` as `width - 1` zero-padded octal digits and a NUL (ustar numeric fields).
inline void tar_octal(char* field, std::size_t width, std::uint64_t value) {
  field[width - 1] = '\0';
  for (std::size_t i = width - 1; i-- > 0; value >>= 3) field[i] = static_cast<char>('0' + (value & 7));
  if (value != 0) throw std::invalid_argument("tar: numeric field overflow");
}

/// Appends one 512-byte ustar header plus the padded contents of a regular file.
inline void tar_append_file(std::string& out, std::string_view name, std::string_view contents, std::int64_t mtime,
                            unsigned mode = 0644) {
  if (name.empty() || name.size() > 100) throw std::invalid_argument("tar: file name must be 1..100 bytes");
  char header[512] = {};
  std::memcpy(header, name.data(), name.size());
  tar_octal(header + 100, 8, mode);
  tar_octal(header + 108, 8, 0);  // uid
  tar_octal(header + 116, 8, 0);  // gid
  tar_octal(header + 124, 12, contents.size());
  tar_octal(header + 136, 12, static_cast<std::uint64_t>(mtime < 0 ? 0 : mtime));
  std::memset(header + 148, ' ', 8);  // checksum is computed with its own field as spaces
  header[156] = '0';                  // regular file
  std::memcpy(header + 257, "ustar", 6);
  std::memcpy(header + 263, "00", 2);
  unsigned sum = 0;
  for (unsigned char c : header) sum += c;
  tar_octal(header + 148, 7, sum);  // six digits, NUL, and the space already there
  out.append(header, sizeof header);
  out.append(contents);
  out.append((512 - contents.size() % 512) % 512, '\0');
}

/// Two zero blocks end the archive.
inline void tar_finish(std::string& out) { out.append(1024, '\0'); }

/// A whole archive of regular files.
inline std::string make_tar(const std::vector<std::pair<std::string, std::string>>& files, std::int64_t mtime) {
  std::string out;
  std::size_t total = 1024;
  for (const auto& [name, contents] : files) total += 512 + (contents.size() + 511) / 512 * 512;
  out.reserve(total);
  for (const auto& [name, contents] : files) tar_append_file(out, name, contents, mtime);
  tar_finish(out);
  return out;
}

}  // namespace tinker::detail
