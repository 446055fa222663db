// A push parser for tar streams: feed bytes in chunks of any size, get entries and their contents
// through a handler, without ever holding a whole file in memory.
//
// Formats: POSIX ustar (name + prefix), GNU (long names/link names in 'L'/'K' entries, base-256
// numbers), pax (per-entry 'x' headers: path, linkpath, size; global 'g' headers are skipped), and
// old V7 headers. Every header's checksum is verified; the archive must end with the end-of-archive
// marker (zero blocks), so a stream cut at a block boundary is still reported as truncated.
//
// The parser reports what the archive says; deciding what is safe to create on disk (absolute
// paths, "..", links, devices) is the extractor's job (client/detail/download_extract.hpp).
// Hostile input produces tar_error, never unbounded memory: extension headers are capped by
// tar_limits, file contents are streamed through.
//
// Handler requirements (called synchronously from write()):
//   void on_entry(const tar_entry&);       // a header; data (entry.size bytes) follows
//   void on_data(std::string_view chunk);  // contents of the current entry, in order, in pieces
//   void on_entry_end();                   // after the last data chunk (also for size 0)
#pragma once

#include <tinker/error.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

namespace tinker::detail {

/// Malformed, hostile or truncated tar data. The message says what is wrong and where.
class tar_error : public tinker_error {
public:
  using tinker_error::tinker_error;
};

enum class tar_entry_type { regular, directory, symlink, hardlink, character_device, block_device, fifo, other };

inline std::string_view to_string(tar_entry_type t) noexcept {
  switch (t) {
    case tar_entry_type::regular: return "regular file";
    case tar_entry_type::directory: return "directory";
    case tar_entry_type::symlink: return "symbolic link";
    case tar_entry_type::hardlink: return "hard link";
    case tar_entry_type::character_device: return "character device";
    case tar_entry_type::block_device: return "block device";
    case tar_entry_type::fifo: return "FIFO";
    case tar_entry_type::other: break;
  }
  return "unsupported entry type";
}

struct tar_entry {
  tar_entry_type type = tar_entry_type::regular;
  char typeflag = '0';      ///< the raw type byte of the header ('0', '5', 'S', ...)
  std::string path;         ///< as stored: pax path, else GNU long name, else ustar prefix + "/" + name
  std::string link_target;  ///< links only: pax linkpath, else GNU long link name, else linkname
  std::uint64_t size = 0;   ///< bytes of data following the header (pax size overrides the header)
  std::uint32_t mode = 0;   ///< permission bits as stored (& 07777), unsanitised
  std::int64_t mtime = 0;   ///< seconds since the epoch, as stored
};

struct tar_limits {
  std::size_t max_path_bytes = 4096;                  ///< a GNU long name / link name, or a pax path
  std::size_t max_extended_header_bytes = 64 * 1024;  ///< one pax 'x' header
  std::uint64_t max_trailing_bytes = 16ull << 20;     ///< data after the end-of-archive marker (record padding)
};

class tar_reader {
public:
  static constexpr std::size_t block_size = 512;

  explicit tar_reader(tar_limits limits = {}) : limits_(limits) {}

  /// Parses `data`, calling the handler for every complete piece. Throws tar_error on bad input;
  /// after a throw the reader must not be used again.
  template <class Handler>
  void write(std::string_view data, Handler& handler) {
    while (!data.empty()) {
      switch (state_) {
        case state::header: {
          const auto take = std::min(block_size - block_fill_, data.size());
          std::memcpy(block_.data() + block_fill_, data.data(), take);
          block_fill_ += take;
          consume(data, take);
          if (block_fill_ < block_size) return;
          block_fill_ = 0;
          on_header_block(handler);
          break;
        }
        case state::data: {
          const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, data.size()));
          const auto piece = data.substr(0, take);
          switch (data_kind_) {
            case data_kind::entry: handler.on_data(piece); break;
            case data_kind::pax:
            case data_kind::long_name:
            case data_kind::long_link: extension_.append(piece); break;
            case data_kind::skipped: break;
          }
          remaining_ -= take;
          consume(data, take);
          if (remaining_ == 0) end_of_data(handler);
          break;
        }
        case state::padding: {
          const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, data.size()));
          remaining_ -= take;
          consume(data, take);
          if (remaining_ == 0) state_ = state::header;
          break;
        }
        case state::end: {
          // Writers pad the archive to a record size (GNU tar: 10 KiB) after the marker.
          trailing_ += data.size();
          offset_ += data.size();
          if (trailing_ > limits_.max_trailing_bytes)
            fail("more than " + std::to_string(limits_.max_trailing_bytes) +
                 " bytes of data follow the end-of-archive marker");
          return;
        }
      }
    }
  }

  /// Declares the end of the input. Throws tar_error unless the archive was complete.
  void finish() const {
    switch (state_) {
      case state::end: return;
      case state::header:
        if (block_fill_ != 0)
          fail("truncated archive: it ends inside a header block (" + std::to_string(block_fill_) + " of 512 bytes)");
        if (zero_blocks_ == 1 && !extension_pending()) return;  // one zero block then EOF: every entry is complete
        if (offset_ == 0) fail("empty archive: no data at all");
        if (extension_pending()) fail("truncated archive: it ends after an extended header, before its entry");
        fail("truncated archive: it ends after " + std::to_string(entries_) + (entries_ == 1 ? " entry" : " entries") +
             " without the end-of-archive marker (more entries may be missing)");
      case state::data:
      case state::padding:
        if (data_kind_ == data_kind::entry && state_ == state::data)
          fail("truncated archive: entry '" + entry_.path + "' ends after " + std::to_string(entry_.size - remaining_) +
               " of " + std::to_string(entry_.size) + " bytes");
        fail("truncated archive: it ends inside the data of an entry");
    }
  }

  bool done() const noexcept { return state_ == state::end; }
  std::uint64_t entries() const noexcept { return entries_; }
  /// Bytes of tar data consumed so far.
  std::uint64_t offset() const noexcept { return offset_; }

private:
  enum class state { header, data, padding, end };
  enum class data_kind { entry, pax, long_name, long_link, skipped };

  void consume(std::string_view& data, std::size_t n) noexcept {
    data.remove_prefix(n);
    offset_ += n;
  }

  [[noreturn]] void fail(const std::string& what) const { throw tar_error("tar: " + what); }

  [[noreturn]] void fail_at_header(const std::string& what) const {
    fail(what + " (header at offset " + std::to_string(offset_ - block_size) + ")");
  }

  bool extension_pending() const noexcept {
    return pax_path_ || pax_linkpath_ || pax_size_ || long_name_ || long_link_ || pax_sparse_;
  }

  static std::string_view field(const char* p, std::size_t n) noexcept {
    const auto* end = static_cast<const char*>(std::memchr(p, '\0', n));
    return std::string_view(p, end ? static_cast<std::size_t>(end - p) : n);
  }

  /// A numeric header field: octal text (optionally space/NUL padded), or GNU base-256 (first byte
  /// has the high bit set). Negative base-256 values and overflow are errors.
  std::uint64_t numeric(std::size_t at, std::size_t width, std::string_view name) const {
    const auto* p = reinterpret_cast<const unsigned char*>(block_.data() + at);
    if (p[0] & 0x80) {
      if (p[0] & 0x40) fail_at_header("negative " + std::string(name) + " field");
      std::uint64_t v = p[0] & 0x3f;
      for (std::size_t i = 1; i < width; ++i) {
        if (v > (std::numeric_limits<std::uint64_t>::max() >> 8))
          fail_at_header(std::string(name) + " field is too large");
        v = (v << 8) | p[i];
      }
      return v;
    }
    std::size_t i = 0;
    while (i < width && p[i] == ' ') ++i;
    std::uint64_t v = 0;
    for (; i < width && p[i] >= '0' && p[i] <= '7'; ++i) {
      if (v > (std::numeric_limits<std::uint64_t>::max() >> 3))
        fail_at_header(std::string(name) + " field is too large");
      v = (v << 3) | static_cast<unsigned>(p[i] - '0');
    }
    for (; i < width; ++i)
      if (p[i] != ' ' && p[i] != '\0') fail_at_header("invalid " + std::string(name) + " field (not an octal number)");
    return v;
  }

  template <class Handler>
  void on_header_block(Handler& handler) {
    if (std::all_of(block_.begin(), block_.end(), [](char c) { return c == '\0'; })) {
      if (extension_pending()) fail_at_header("an extended header is followed by a zero block instead of its entry");
      if (++zero_blocks_ == 2) state_ = state::end;
      return;
    }
    if (zero_blocks_ != 0) fail_at_header("a lone zero block in the middle of the archive (corrupt archive)");
    verify_checksum();

    const std::string_view magic(block_.data() + 257, 8);
    const bool posix = magic.substr(0, 6) == std::string_view("ustar\0", 6);
    const char typeflag = block_[156];

    switch (typeflag) {
      case 'x': return begin_extension(data_kind::pax, limits_.max_extended_header_bytes, "pax extended header");
      case 'L': return begin_extension(data_kind::long_name, limits_.max_path_bytes + 1, "GNU long name");
      case 'K': return begin_extension(data_kind::long_link, limits_.max_path_bytes + 1, "GNU long link name");
      case 'g':
        return begin_extension(data_kind::skipped, std::numeric_limits<std::uint64_t>::max(), "pax global header");
      default: break;
    }

    entry_ = tar_entry{};
    entry_.typeflag = typeflag;
    if (pax_path_) {
      entry_.path = std::move(*pax_path_);
    } else if (long_name_) {
      entry_.path = std::move(*long_name_);
    } else {
      const auto name = field(block_.data(), 100);
      const auto prefix = posix ? field(block_.data() + 345, 155) : std::string_view();
      if (!prefix.empty()) {
        entry_.path.reserve(prefix.size() + 1 + name.size());
        entry_.path.append(prefix).append(1, '/');
      }
      entry_.path.append(name);
    }
    if (pax_linkpath_)
      entry_.link_target = std::move(*pax_linkpath_);
    else if (long_link_)
      entry_.link_target = std::move(*long_link_);
    else
      entry_.link_target = std::string(field(block_.data() + 157, 100));
    entry_.size = pax_size_ ? *pax_size_ : numeric(124, 12, "size");
    entry_.mode = static_cast<std::uint32_t>(numeric(100, 8, "mode") & 07777);
    // A negative (pre-1970, base-256) mtime is legal; it is informational only, so it reads as 0.
    entry_.mtime = (static_cast<unsigned char>(block_[136]) & 0xc0) == 0xc0
                       ? 0
                       : static_cast<std::int64_t>(std::min<std::uint64_t>(numeric(136, 12, "mtime"), INT64_MAX));
    const bool sparse = pax_sparse_;
    pax_path_.reset();
    pax_linkpath_.reset();
    pax_size_.reset();
    long_name_.reset();
    long_link_.reset();
    pax_sparse_ = false;

    switch (typeflag) {
      case '0':
      case '7': entry_.type = tar_entry_type::regular; break;
      case '\0':
        // V7 archives mark directories only by a trailing slash.
        entry_.type =
            !entry_.path.empty() && entry_.path.back() == '/' ? tar_entry_type::directory : tar_entry_type::regular;
        break;
      case '1': entry_.type = tar_entry_type::hardlink; break;
      case '2': entry_.type = tar_entry_type::symlink; break;
      case '3': entry_.type = tar_entry_type::character_device; break;
      case '4': entry_.type = tar_entry_type::block_device; break;
      case '5': entry_.type = tar_entry_type::directory; break;
      case '6': entry_.type = tar_entry_type::fifo; break;
      default: entry_.type = tar_entry_type::other; break;
    }
    if (sparse) fail_at_header("'" + entry_.path + "' is a GNU sparse file, which is not supported");
    ++entries_;
    handler.on_entry(entry_);
    begin_data(data_kind::entry, entry_.size, handler);
  }

  void verify_checksum() const {
    const auto stored = numeric(148, 8, "checksum");
    std::uint64_t unsigned_sum = 0;
    std::int64_t signed_sum = 0;
    for (std::size_t i = 0; i < block_size; ++i) {
      const char c = (i >= 148 && i < 156) ? ' ' : block_[i];
      unsigned_sum += static_cast<unsigned char>(c);
      signed_sum += static_cast<signed char>(c);  // some historic writers summed signed chars
    }
    if (stored != unsigned_sum && static_cast<std::int64_t>(stored) != signed_sum)
      fail_at_header("header checksum mismatch: stored " + std::to_string(stored) + ", computed " +
                     std::to_string(unsigned_sum) + " (corrupt data, or not a tar archive)");
  }

  void begin_extension(data_kind kind, std::uint64_t max, const char* what) {
    const auto size = numeric(124, 12, "size");
    if (size > max)
      fail_at_header(std::string(what) + " of " + std::to_string(size) + " bytes exceeds the limit of " +
                     std::to_string(max) + " bytes");
    extension_.clear();
    if (kind != data_kind::skipped) extension_.reserve(static_cast<std::size_t>(size));
    struct no_handler {
      void on_entry_end() {}
    } none;
    begin_data(kind, size, none);
  }

  template <class Handler>
  void begin_data(data_kind kind, std::uint64_t size, Handler& handler) {
    data_kind_ = kind;
    remaining_ = size;
    data_size_ = size;
    if (size == 0)
      end_of_data(handler);
    else
      state_ = state::data;
  }

  template <class Handler>
  void end_of_data(Handler& handler) {
    switch (data_kind_) {
      case data_kind::entry: handler.on_entry_end(); break;
      case data_kind::pax: parse_pax(); break;
      case data_kind::long_name: long_name_ = std::string(field(extension_.data(), extension_.size())); break;
      case data_kind::long_link: long_link_ = std::string(field(extension_.data(), extension_.size())); break;
      case data_kind::skipped: break;
    }
    extension_.clear();
    if (data_kind_ != data_kind::entry) extension_.shrink_to_fit();
    remaining_ = (block_size - data_size_ % block_size) % block_size;
    state_ = remaining_ ? state::padding : state::header;
  }

  /// pax records: "<length> <key>=<value>\n", the length counting the whole record.
  void parse_pax() {
    std::string_view rest = extension_;
    while (!rest.empty()) {
      std::size_t length = 0;
      const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), length);
      const auto digits = static_cast<std::size_t>(end - rest.data());
      if (ec != std::errc() || digits == 0 || digits >= rest.size() || *end != ' ' || length <= digits + 1 ||
          length > rest.size() || rest[length - 1] != '\n')
        fail("malformed pax extended header record");
      const auto record = rest.substr(digits + 1, length - digits - 2);
      rest.remove_prefix(length);
      const auto eq = record.find('=');
      if (eq == std::string_view::npos || eq == 0) fail("malformed pax extended header record (no key=value)");
      const auto key = record.substr(0, eq);
      const auto value = record.substr(eq + 1);
      // An empty value deletes the override: the header's own field applies again.
      auto set = [&](std::optional<std::string>& slot) {
        if (value.empty())
          slot.reset();
        else if (value.size() > limits_.max_path_bytes)
          fail("pax " + std::string(key) + " of " + std::to_string(value.size()) + " bytes exceeds the limit of " +
               std::to_string(limits_.max_path_bytes));
        else
          slot = std::string(value);
      };
      if (key == "path") {
        set(pax_path_);
      } else if (key == "linkpath") {
        set(pax_linkpath_);
      } else if (key == "size") {
        if (value.empty()) {
          pax_size_.reset();
          continue;
        }
        std::uint64_t size = 0;
        const auto [vend, vec] = std::from_chars(value.data(), value.data() + value.size(), size);
        if (vec != std::errc() || vend != value.data() + value.size())
          fail("invalid pax size '" + std::string(value) + "'");
        pax_size_ = size;
      } else if (key.substr(0, 11) == "GNU.sparse.") {
        pax_sparse_ = true;
      }
      // Everything else (mtime, uid, uname, charset, SCHILY.*, ...) does not affect extraction.
    }
  }

  tar_limits limits_;
  state state_ = state::header;
  std::array<char, block_size> block_{};
  std::size_t block_fill_ = 0;
  data_kind data_kind_ = data_kind::entry;
  std::uint64_t remaining_ = 0;  // data or padding bytes still expected
  std::uint64_t data_size_ = 0;
  std::string extension_;  // the data of the current 'x' / 'L' / 'K' entry (bounded)
  std::optional<std::string> pax_path_, pax_linkpath_, long_name_, long_link_;
  std::optional<std::uint64_t> pax_size_;
  bool pax_sparse_ = false;
  tar_entry entry_;
  unsigned zero_blocks_ = 0;
  std::uint64_t entries_ = 0;
  std::uint64_t offset_ = 0;
  std::uint64_t trailing_ = 0;
};

}  // namespace tinker::detail
