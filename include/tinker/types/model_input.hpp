// model_input: the protocol's ModelInput (docs/protocol.md §7.2), an ordered list of typed chunks.
#pragma once

#include <tinker/error.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace tinker {

/// Token ids travel as int32 on the protobuf wire; we keep them in that width everywhere.
using token_id = std::int32_t;

enum class image_format { png, jpeg };

constexpr std::string_view to_string(image_format f) noexcept { return f == image_format::png ? "png" : "jpeg"; }

/// `{"type": "encoded_text", "tokens": [...]}`
struct encoded_text_chunk {
  std::vector<token_id> tokens;

  std::size_t length() const noexcept { return tokens.size(); }
  friend bool operator==(const encoded_text_chunk&, const encoded_text_chunk&) = default;
};

/// `{"type": "image", "data": <base64>, "format": "png"|"jpeg", "expected_tokens"?}`.
/// `data` holds the raw image bytes (base64 only on the JSON wire).
struct image_chunk {
  std::string data;
  image_format format = image_format::png;
  std::optional<std::int32_t> expected_tokens;

  friend bool operator==(const image_chunk&, const image_chunk&) = default;
};

/// `{"type": "image_asset_pointer", "format", "location", "expected_tokens"?}`; JSON only (the
/// protobuf forward_backward path cannot carry it).
struct image_asset_pointer_chunk {
  image_format format = image_format::png;
  std::string location;
  std::optional<std::int32_t> expected_tokens;

  friend bool operator==(const image_asset_pointer_chunk&, const image_asset_pointer_chunk&) = default;
};

/// `{"type": "dmel", "dmel": <base64>}`: a serialised audio TensorContainer, passed through as bytes.
struct dmel_chunk {
  std::string dmel;

  /// Number of tokens = dimension 0 of the TensorContainer header (optional constant marker 254,
  /// dtype byte 0..7, LEB128 ndim, LEB128 dims). Throws tinker::invalid_argument on a bad header.
  std::size_t length() const {
    std::size_t i = 0;
    auto byte = [&]() -> std::uint8_t {
      if (i >= dmel.size()) throw tinker::invalid_argument("dmel chunk: truncated TensorContainer header");
      return static_cast<std::uint8_t>(dmel[i++]);
    };
    auto varint = [&]() -> std::uint64_t {
      std::uint64_t v = 0;
      for (int shift = 0; shift < 64; shift += 7) {
        auto b = byte();
        v |= std::uint64_t(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
      }
      throw tinker::invalid_argument("dmel chunk: varint too long in TensorContainer header");
    };
    auto first = byte();
    if (first == 254) first = byte();
    if (first > 7) throw tinker::invalid_argument("dmel chunk: unknown dtype byte " + std::to_string(first));
    auto ndim = varint();
    if (ndim == 0) throw tinker::invalid_argument("dmel chunk: TensorContainer has no dimensions");
    return static_cast<std::size_t>(varint());
  }

  friend bool operator==(const dmel_chunk&, const dmel_chunk&) = default;
};

using model_input_chunk = std::variant<encoded_text_chunk, image_chunk, image_asset_pointer_chunk, dmel_chunk>;

/// The length of one chunk in tokens. Image chunks need `expected_tokens` (the server computes the
/// real count; without the hint the client cannot know it).
inline std::size_t chunk_length(const model_input_chunk& c) {
  struct visitor {
    std::size_t operator()(const encoded_text_chunk& t) const { return t.length(); }
    std::size_t operator()(const image_chunk& i) const { return image(i.expected_tokens); }
    std::size_t operator()(const image_asset_pointer_chunk& i) const { return image(i.expected_tokens); }
    std::size_t operator()(const dmel_chunk& d) const { return d.length(); }
    static std::size_t image(const std::optional<std::int32_t>& expected) {
      if (!expected)
        throw tinker::invalid_argument("model_input: the length of an image chunk is unknown without expected_tokens");
      return static_cast<std::size_t>(*expected);
    }
  };
  return std::visit(visitor{}, c);
}

/// An ordered list of chunks. (Not an aggregate, so a temporary inside a co_await expression is
/// safe on GCC 12; see sampling_params.)
struct model_input {
  std::vector<model_input_chunk> chunks;

  model_input() = default;
  explicit model_input(std::vector<model_input_chunk> c) : chunks(std::move(c)) {}

  /// A single encoded_text chunk holding `tokens`.
  static model_input from_ints(std::vector<token_id> tokens) {
    model_input m;
    m.chunks.emplace_back(encoded_text_chunk{std::move(tokens)});
    return m;
  }
  static model_input from_ints(std::span<const token_id> tokens) {
    return from_ints(std::vector<token_id>(tokens.begin(), tokens.end()));
  }
  static model_input empty() { return {}; }

  /// All tokens, in order. Throws tinker::invalid_argument if a chunk is not text.
  std::vector<token_id> to_ints() const {
    std::vector<token_id> out;
    out.reserve(length_if_text());
    for (const auto& c : chunks) {
      auto* t = std::get_if<encoded_text_chunk>(&c);
      if (!t) throw tinker::invalid_argument("model_input::to_ints: the input has non-text chunks");
      out.insert(out.end(), t->tokens.begin(), t->tokens.end());
    }
    return out;
  }

  /// Total length in tokens (see chunk_length()).
  std::size_t length() const {
    std::size_t n = 0;
    for (const auto& c : chunks) n += chunk_length(c);
    return n;
  }

  bool is_empty() const noexcept { return chunks.empty(); }

  model_input& append(model_input_chunk c) {
    chunks.push_back(std::move(c));
    return *this;
  }

  /// Appends one token, extending the last chunk when it is text.
  model_input& append_int(token_id t) {
    if (!chunks.empty())
      if (auto* last = std::get_if<encoded_text_chunk>(&chunks.back())) {
        last->tokens.push_back(t);
        return *this;
      }
    chunks.emplace_back(encoded_text_chunk{{t}});
    return *this;
  }

  friend bool operator==(const model_input&, const model_input&) = default;

private:
  std::size_t length_if_text() const noexcept {
    std::size_t n = 0;
    for (const auto& c : chunks)
      if (auto* t = std::get_if<encoded_text_chunk>(&c)) n += t->tokens.size();
    return n;
  }
};

}  // namespace tinker
