// byte_tokenizer: the tokenizer of the local engine's models ("tinker-local/byte"). Every byte is
// its own token (ids 0..255); two special tokens follow: BOS (256) and EOS (257).
//
//   tinker::byte_tokenizer tok;
//   auto ids = tok.encode("hello", /*add_bos=*/true);   // {256, 'h', 'e', 'l', 'l', 'o'}
//   auto text = tok.decode(ids);                         // "hello" (special tokens are skipped)
//
// Stateless and trivially copyable; the client hands it out from get_tokenizer().
#pragma once

#include <tinker/error.hpp>
#include <tinker/types/model_input.hpp>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tinker {

class byte_tokenizer {
public:
  static constexpr token_id bos_token = 256;
  static constexpr token_id eos_token = 257;
  static constexpr int vocab_size = 258;
  static constexpr std::string_view tokenizer_id = "tinker-local/byte";

  /// Whether `id` is BOS or EOS.
  static constexpr bool is_special(token_id id) noexcept { return id == bos_token || id == eos_token; }

  /// Whether `id` is a token of this vocabulary.
  static constexpr bool is_valid(token_id id) noexcept { return id >= 0 && id < vocab_size; }

  /// One token per byte of `text`, preceded by BOS when `add_bos`.
  std::vector<token_id> encode(std::string_view text, bool add_bos = false) const {
    std::vector<token_id> out;
    out.reserve(text.size() + (add_bos ? 1 : 0));
    if (add_bos) out.push_back(bos_token);
    for (char c : text) out.push_back(static_cast<token_id>(static_cast<unsigned char>(c)));
    return out;
  }

  /// The bytes of `tokens`; BOS and EOS are skipped. Throws tinker::invalid_argument naming the
  /// first id that is not in the vocabulary.
  std::string decode(std::span<const token_id> tokens) const {
    std::string out;
    out.reserve(tokens.size());
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      const auto id = tokens[i];
      if (id >= 0 && id < 256) {
        out.push_back(static_cast<char>(static_cast<unsigned char>(id)));
      } else if (!is_special(id)) {
        throw tinker::invalid_argument("byte_tokenizer::decode: token id " + std::to_string(id) + " at position " +
                                       std::to_string(i) + " is out of range [0, " + std::to_string(vocab_size) + ")");
      }
    }
    return out;
  }
};

}  // namespace tinker
