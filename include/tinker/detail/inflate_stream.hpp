// Incremental gzip/zlib decompression with the system zlib, for bodies too large to hold in memory
// (checkpoint archives). Compressed bytes are fed in chunks of any size; output goes to a callback
// or into a caller's buffer, a bounded amount at a time.
//
// Nothing here grows with the input: memory is zlib's window (32 KiB) plus one output buffer.
// http/gzip.hpp inflates whole bodies of API calls with it, into a buffer of its own.
//
// Concatenated gzip members are joined (RFC 1952 §2.2, what `cat a.gz b.gz` makes); zero padding
// after a member is skipped (archives) or refused (HTTP bodies, which have no reason to carry it).
// A stream that stops inside a member is only detectable at the end, so callers must call finish().
#pragma once

#include <tinker/error.hpp>

#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>

namespace tinker::detail {

/// Decompression failed. `which()` separates bad data, a stream cut short, and output beyond the
/// caller's limit (a "decompression bomb", or simply an archive larger than allowed).
class inflate_error : public tinker_error {
public:
  enum class kind { corrupt, truncated, too_large, internal };
  inflate_error(kind k, const std::string& what) : tinker_error(what), kind_(k) {}
  kind which() const noexcept { return kind_; }

private:
  kind kind_;
};

class inflate_stream {
public:
  static constexpr std::uint64_t unlimited = std::numeric_limits<std::uint64_t>::max();

  /// What zero bytes after a complete member are: tape-style padding, or corrupt data.
  enum class padding { skip, reject };

  /// `max_output`: the most decompressed bytes this stream may produce in total; one byte more is
  /// an inflate_error(too_large). `buffer_size`: the output buffer used by write().
  explicit inflate_stream(std::uint64_t max_output = unlimited, std::size_t buffer_size = 128 * 1024,
                          padding zeros = padding::skip)
      : zs_(new z_stream{}),
        max_output_(max_output),
        buffer_size_(std::max<std::size_t>(buffer_size, 1)),
        skip_padding_(zeros == padding::skip) {
    // windowBits 15 + 32: accept gzip or zlib framing, detected from the header.
    if (inflateInit2(zs_.get(), 15 + 32) != Z_OK) {
      zs_.reset();
      throw inflate_error(inflate_error::kind::internal, "inflate: cannot initialise zlib");
    }
  }

  inflate_stream(inflate_stream&&) noexcept = default;
  inflate_stream& operator=(inflate_stream&&) noexcept = default;
  ~inflate_stream() = default;

  /// Decompresses all of `input`, handing each run of output to `sink(std::string_view)`. The
  /// view is valid only during the call. Output may stay inside zlib until more input arrives.
  template <class Sink>
  void write(std::string_view input, Sink&& sink) {
    if (!buffer_) buffer_.reset(new char[buffer_size_]);
    for (;;) {
      const auto before = input.size();
      const std::size_t n = decompress_some(input, buffer_.get(), buffer_size_);
      if (n > 0) sink(std::string_view(buffer_.get(), n));
      // A partly filled buffer means zlib needs more input (or the input is all consumed).
      if (n < buffer_size_ && input.empty()) return;
      if (n == 0 && input.size() == before)
        throw inflate_error(inflate_error::kind::internal, "inflate: zlib made no progress");
    }
  }

  /// The caller-buffer form: decompresses from the front of `input` (which is advanced past what
  /// was consumed) into `out`, returning how many bytes were written. Returns less than `out_size`
  /// only once `input` is exhausted.
  std::size_t decompress_some(std::string_view& input, char* out, std::size_t out_size) {
    if (!zs_) throw inflate_error(inflate_error::kind::internal, "inflate: stream used after being moved from");
    std::size_t produced = 0;
    while (produced < out_size) {
      if (member_ended_) {
        // Zero bytes after a member are padding (tape blocking; gzip and python skip them too).
        const auto zeros = skip_padding_ ? std::min(input.find_first_not_of('\0'), input.size()) : std::size_t{0};
        input.remove_prefix(zeros);
        total_in_ += zeros;
        if (input.empty()) break;
        // More bytes after a complete member: the next member of a concatenated gzip file.
        if (inflateReset(zs_.get()) != Z_OK)
          throw inflate_error(inflate_error::kind::internal, "inflate: reset failed");
        member_ended_ = false;
        member_started_at_ = total_in_;
      }
      // Never let zlib produce more than one byte past the limit, whatever the ratio.
      const std::uint64_t budget = max_output_ == unlimited ? unlimited : max_output_ - total_out_ + 1;
      const auto room =
          static_cast<uInt>(std::min<std::uint64_t>({out_size - produced, budget, std::numeric_limits<uInt>::max()}));
      const auto feed = static_cast<uInt>(std::min<std::size_t>(input.size(), std::numeric_limits<uInt>::max()));
      zs_->next_in = reinterpret_cast<Bytef*>(const_cast<char*>(input.data()));
      zs_->avail_in = feed;
      zs_->next_out = reinterpret_cast<Bytef*>(out + produced);
      zs_->avail_out = room;
      const int rc = inflate(zs_.get(), Z_NO_FLUSH);
      const std::size_t consumed = feed - zs_->avail_in;
      const std::size_t got = room - zs_->avail_out;
      input.remove_prefix(consumed);
      total_in_ += consumed;
      total_out_ += got;
      produced += got;
      if (total_out_ > max_output_)
        throw inflate_error(inflate_error::kind::too_large, "inflate: decompressed data exceeds the limit of " +
                                                                std::to_string(max_output_) + " bytes");
      switch (rc) {
        case Z_STREAM_END:
          member_ended_ = true;
          ++members_;
          continue;
        case Z_OK:
          if (consumed == 0 && got == 0) return produced;  // defensive: zlib reports Z_BUF_ERROR for this
          continue;
        case Z_BUF_ERROR:  // no progress possible: the input is used up (the output has room)
          return produced;
        case Z_NEED_DICT: corrupt("the stream needs a preset dictionary");
        case Z_DATA_ERROR:
          if (members_ > 0 && total_in_ - consumed == member_started_at_)
            corrupt("data after the end of the compressed stream is not another gzip member");
          corrupt("invalid compressed data");
        case Z_MEM_ERROR: throw inflate_error(inflate_error::kind::internal, "inflate: out of memory");
        default: corrupt("unexpected zlib status " + std::to_string(rc));
      }
    }
    return produced;
  }

  /// Declares the end of the compressed input. Throws inflate_error(truncated) unless every member
  /// was complete (checked against its length and CRC trailer).
  void finish() const {
    if (total_in_ == 0) throw inflate_error(inflate_error::kind::truncated, "inflate: no compressed data at all");
    if (!member_ended_)
      throw inflate_error(inflate_error::kind::truncated,
                          "inflate: the compressed stream is truncated (it ends inside gzip member " +
                              std::to_string(members_ + 1) + " after " + std::to_string(total_in_) +
                              " compressed bytes)");
  }

  std::uint64_t total_in() const noexcept { return total_in_; }
  std::uint64_t total_out() const noexcept { return total_out_; }
  std::uint64_t max_output() const noexcept { return max_output_; }
  /// Number of complete gzip/zlib members seen so far.
  std::size_t members() const noexcept { return members_; }
  /// True when the input so far ends exactly at the end of a member (a valid place to stop).
  bool at_member_end() const noexcept { return member_ended_; }

private:
  struct z_stream_deleter {
    void operator()(z_stream* zs) const noexcept {
      inflateEnd(zs);
      delete zs;
    }
  };

  [[noreturn]] void corrupt(const std::string& why) const {
    std::string msg = "inflate: corrupt compressed data at byte " + std::to_string(total_in_) + ": " + why;
    if (zs_ && zs_->msg) msg += std::string(" (zlib: ") + zs_->msg + ")";
    throw inflate_error(inflate_error::kind::corrupt, msg);
  }

  // zlib keeps a pointer back to its z_stream, so the z_stream lives on the heap and the object
  // stays movable.
  std::unique_ptr<z_stream, z_stream_deleter> zs_;
  std::uint64_t max_output_;
  std::size_t buffer_size_;
  std::unique_ptr<char[]> buffer_;
  std::uint64_t total_in_ = 0;
  std::uint64_t total_out_ = 0;
  std::uint64_t member_started_at_ = 0;
  std::size_t members_ = 0;
  bool skip_padding_ = true;
  bool member_ended_ = false;
};

}  // namespace tinker::detail
