// tinker_public.Chunk and its members (EncodedTextChunk, ImageChunk, DmelChunk): one ModelInput
// chunk on the protobuf wire (docs/protocol.md §9.1).
#pragma once

#include <tinker/error.hpp>
#include <tinker/proto/detail/reader.hpp>
#include <tinker/types/model_input.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

namespace tinker::proto::detail {

/// Whether protobuf can carry the chunk (image_asset_pointer cannot: it is JSON-only).
inline bool is_proto_encodable(const model_input_chunk& c) noexcept {
  return !std::holds_alternative<image_asset_pointer_chunk>(c);
}

/// tinker_public.Chunk. The oneof member is written even when its message is empty: it carries the
/// chunk kind. Callers reject image_asset_pointer chunks before encoding (is_proto_encodable).
template <class Out>
void write_chunk(Out& out, const model_input_chunk& c) {
  if (const auto* text = std::get_if<encoded_text_chunk>(&c)) {
    out.message_field(1, [&](auto& o) {
      if (!text->tokens.empty()) o.array_field(1, std::span<const token_id>(text->tokens));
    });
  } else if (const auto* image = std::get_if<image_chunk>(&c)) {
    out.message_field(2, [&](auto& o) {
      if (!image->data.empty()) o.bytes_field(1, image->data);
      o.string_field(2, to_string(image->format));
      if (image->expected_tokens) o.int32_field(3, *image->expected_tokens);
    });
  } else if (const auto* dmel = std::get_if<dmel_chunk>(&c)) {
    out.message_field(3, [&](auto& o) {
      if (!dmel->dmel.empty()) o.bytes_field(1, dmel->dmel);
    });
  } else {
    throw tinker::invalid_argument("image_asset_pointer chunks cannot be encoded in protobuf");
  }
}

/// Reads a Chunk. Repeated occurrences of the same member merge (scalars: last wins); a member that
/// follows a different one replaces it, as protobuf's oneof does.
inline model_input_chunk read_chunk(reader r) {
  enum class member { none, encoded_text, image, dmel } which = member::none;
  std::string_view tokens;                            // EncodedTextChunk.tokens
  std::string_view image_data;                        // ImageChunk.data
  std::optional<std::string_view> image_format_text;  // ImageChunk.format
  std::optional<std::int32_t> expected_tokens;        // ImageChunk.expected_tokens
  std::string_view dmel;                              // DmelChunk.dmel

  auto start = [&](member m) {
    if (which == m) return;
    which = m;
    tokens = image_data = dmel = {};
    image_format_text.reset();
    expected_tokens.reset();
  };

  while (!r.at_end()) {
    const auto tag = r.read_tag();
    switch (tag.number) {
      case 1: {
        auto sub = r.sub(read_message_field(r, tag, "encoded_text"));
        start(member::encoded_text);
        within("encoded_text", [&] {
          while (!sub.at_end()) {
            const auto t = sub.read_tag();
            if (t.number == 1)
              tokens = read_bytes_field(sub, t, "tokens");
            else
              sub.skip(t);
          }
        });
        break;
      }
      case 2: {
        auto sub = r.sub(read_message_field(r, tag, "image"));
        start(member::image);
        within("image", [&] {
          while (!sub.at_end()) {
            const auto t = sub.read_tag();
            switch (t.number) {
              case 1: image_data = read_bytes_field(sub, t, "data"); break;
              case 2: image_format_text = read_string_view_field(sub, t, "format"); break;
              case 3: expected_tokens = read_int32_field(sub, t, "expected_tokens"); break;
              default: sub.skip(t);
            }
          }
        });
        break;
      }
      case 3: {
        auto sub = r.sub(read_message_field(r, tag, "dmel"));
        start(member::dmel);
        within("dmel", [&] {
          while (!sub.at_end()) {
            const auto t = sub.read_tag();
            if (t.number == 1)
              dmel = read_bytes_field(sub, t, "dmel");
            else
              sub.skip(t);
          }
        });
        break;
      }
      default: r.skip(tag);
    }
  }

  switch (which) {
    case member::encoded_text:
      return encoded_text_chunk{read_le_array<token_id>(tokens, "encoded_text.tokens", "int32 token ids")};
    case member::image: {
      image_chunk image;
      if (!image_format_text) fail("image.format", "is missing (expected \"png\" or \"jpeg\")");
      if (*image_format_text == "png")
        image.format = image_format::png;
      else if (*image_format_text == "jpeg")
        image.format = image_format::jpeg;
      else
        fail("image.format",
             "unknown image format \"" + std::string(*image_format_text) + "\" (expected \"png\" or \"jpeg\")");
      image.data.assign(image_data);
      image.expected_tokens = expected_tokens;
      return image;
    }
    case member::dmel: return dmel_chunk{std::string(dmel)};
    case member::none: break;
  }
  fail({}, "sets none of encoded_text, image, dmel");
}

}  // namespace tinker::proto::detail
