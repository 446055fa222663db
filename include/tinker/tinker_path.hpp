// tinker:// checkpoint paths: `tinker://<training_run_id>/<kind>/<name>` with kind one of
// weights, sampler_weights, external_weights. Run ids contain colons (`<session>:train:0`); names
// contain no '/'.
//
// Run ids and names travel as path segments of request URLs (`/training_runs/{run}/checkpoints/
// {kind}/{name}`), percent-encoded by every client that builds URLs properly and pasted as they
// are by clients that format strings; the engine also turns names into directories. A legal name
// (and run id) is therefore one that means the same either way and on disk (docs/checkpoint-names.md):
//   - 1 to 128 bytes (run ids: 256) of well-formed UTF-8, so non-ASCII letters are fine;
//   - no control characters (C0, DEL, C1);
//   - none of '/' (a segment separator), '\', '?' and '#' (which end a pasted path), '%' (a
//     pasted "%41" arrives as "A");
//   - no leading or trailing space (inner spaces are fine), and not '.' or '..'.
#pragma once

#include <tinker/detail/utf8.hpp>
#include <tinker/error.hpp>
#include <tinker/types/checkpoint.hpp>

#include <cstddef>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

namespace tinker {

/// The middle segment of a checkpoint path.
enum class checkpoint_kind { weights, sampler_weights, external_weights };

constexpr std::string_view to_string(checkpoint_kind k) noexcept {
  switch (k) {
    case checkpoint_kind::weights: return "weights";
    case checkpoint_kind::sampler_weights: return "sampler_weights";
    case checkpoint_kind::external_weights: return "external_weights";
  }
  return "weights";
}

constexpr std::optional<checkpoint_kind> parse_checkpoint_kind(std::string_view s) noexcept {
  for (auto k : {checkpoint_kind::weights, checkpoint_kind::sampler_weights, checkpoint_kind::external_weights})
    if (to_string(k) == s) return k;
  return std::nullopt;
}

constexpr checkpoint_type type_of(checkpoint_kind k) noexcept {
  switch (k) {
    case checkpoint_kind::weights: return checkpoint_type::training;
    case checkpoint_kind::sampler_weights: return checkpoint_type::sampler;
    case checkpoint_kind::external_weights: return checkpoint_type::external;
  }
  return checkpoint_type::training;
}

/// A parsed checkpoint path. `logits://` paths parse the same way and keep their scheme.
struct tinker_path {
  /// Longest checkpoint name: well under the 255-byte file name limit of common filesystems,
  /// which the engine's `<kind>/<name>` directories must respect.
  static constexpr std::size_t max_name_size = 128;
  /// Longest training run id (`<session uuid>:train:<n>` is about 50 bytes; room for other servers).
  static constexpr std::size_t max_run_id_size = 256;

  std::string scheme = "tinker";
  std::string training_run_id;
  checkpoint_kind kind = checkpoint_kind::weights;
  std::string name;

  /// Parses `s`; returns nullopt and sets `*error` (when given) to what is wrong.
  static std::optional<tinker_path> try_parse(std::string_view s, std::string* error = nullptr) {
    auto fail = [&](std::string why) -> std::optional<tinker_path> {
      if (error) *error = std::move(why);
      return std::nullopt;
    };
    static constexpr std::string_view form =
        "tinker://<training_run_id>/<weights|sampler_weights|external_weights>/<name>";
    tinker_path p;
    const auto sep = s.find("://");
    if (sep == std::string_view::npos) return fail("missing scheme: expected " + std::string(form));
    p.scheme = std::string(s.substr(0, sep));
    if (p.scheme != "tinker" && p.scheme != "logits")
      return fail("unsupported scheme '" + printable(p.scheme) + "://': expected tinker:// (or logits://)");
    auto rest = s.substr(sep + 3);
    const auto first = rest.find('/');
    if (first == std::string_view::npos)
      return fail("expected three parts <training_run_id>/<kind>/<name> after " + p.scheme + "://");
    const auto second = rest.find('/', first + 1);
    if (second == std::string_view::npos)
      return fail("expected three parts <training_run_id>/<kind>/<name> after " + p.scheme + "://");
    if (rest.find('/', second + 1) != std::string_view::npos)
      return fail("too many '/'-separated parts: a checkpoint name cannot contain '/'");
    p.training_run_id = std::string(rest.substr(0, first));
    const auto kind = rest.substr(first + 1, second - first - 1);
    p.name = std::string(rest.substr(second + 1));
    if (auto why = run_id_problem(p.training_run_id)) return fail(*why);
    const auto parsed_kind = parse_checkpoint_kind(kind);
    if (!parsed_kind)
      return fail("unknown checkpoint kind '" + printable(kind) +
                  "': expected weights, sampler_weights or external_weights");
    p.kind = *parsed_kind;
    if (auto why = name_problem(p.name)) return fail(*why);
    return p;
  }

  /// Parses `s` or throws tinker::invalid_argument naming the path and the problem.
  static tinker_path parse(std::string_view s) {
    std::string error;
    auto p = try_parse(s, &error);
    if (!p) throw tinker::invalid_argument("invalid tinker path '" + printable(s) + "': " + error);
    return *p;
  }

  /// Builds `tinker://<run>/<kind>/<name>`, validating the run id and the name.
  static tinker_path make(std::string training_run_id, checkpoint_kind kind, std::string name) {
    if (auto why = run_id_problem(training_run_id))
      throw tinker::invalid_argument("invalid training run id '" + printable(training_run_id) + "': " + *why);
    if (auto why = name_problem(name))
      throw tinker::invalid_argument("invalid checkpoint name '" + printable(name) + "': " + *why);
    return tinker_path{"tinker", std::move(training_run_id), kind, std::move(name)};
  }

  /// What is wrong with a checkpoint name, if anything: empty, '.' or '..', longer than
  /// max_name_size, or a character that breaks a URL path segment or a file name.
  static std::optional<std::string> name_problem(std::string_view name) {
    return segment_problem(name, "checkpoint name", max_name_size);
  }

  /// What is wrong with a training run id, if anything (the rules of name_problem, except that
  /// the limit is max_run_id_size; colons are fine).
  static std::optional<std::string> run_id_problem(std::string_view run_id) {
    return segment_problem(run_id, "training run id", max_run_id_size);
  }

  /// `<kind>/<name>`, e.g. `weights/step-10`.
  std::string checkpoint_id() const { return std::string(tinker::to_string(kind)) + "/" + name; }

  checkpoint_type type() const noexcept { return type_of(kind); }

  std::string str() const { return scheme + "://" + training_run_id + "/" + checkpoint_id(); }

  friend bool operator==(const tinker_path&, const tinker_path&) = default;

  /// `s` with control characters (C0, DEL, C1) and bytes that are not UTF-8 written as \xNN, so
  /// that an error message quoting a hostile path can neither inject line breaks into logs nor
  /// make a JSON error body invalid.
  static std::string printable(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    auto hex = [&](std::string_view bytes) {
      for (const char c : bytes) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(static_cast<unsigned char>(c)));
        out += buf;
      }
    };
    for (std::size_t i = 0; i < s.size();) {
      const auto cp = detail::decode_utf8_at(s, i);
      if (cp.size == 0) {
        hex(s.substr(i, 1));
        ++i;
        continue;
      }
      if (cp.value < 0x20 || (cp.value >= 0x7f && cp.value <= 0x9f))
        hex(s.substr(i, cp.size));
      else
        out += s.substr(i, cp.size);
      i += cp.size;
    }
    return out;
  }

private:
  static std::optional<std::string> segment_problem(std::string_view s, std::string_view what, std::size_t max_size) {
    const std::string w(what);
    if (s.empty()) return "empty " + w;
    if (s == "." || s == "..") return w + " cannot be '.' or '..'";
    if (s.size() > max_size)
      return w + " is " + std::to_string(s.size()) + " bytes long, more than the limit of " + std::to_string(max_size);
    if (s.front() == ' ' || s.back() == ' ') return w + " cannot begin or end with a space";
    for (std::size_t i = 0; i < s.size();) {
      const auto cp = detail::decode_utf8_at(s, i);
      std::string bad;
      if (cp.size == 0) {
        return w + " is not valid UTF-8 (at byte " + std::to_string(i) + ")";
      } else if (cp.value < 0x20 || (cp.value >= 0x7f && cp.value <= 0x9f)) {
        char buf[48];
        std::snprintf(buf, sizeof buf, "control character 0x%02x", static_cast<unsigned>(cp.value));
        bad = buf;
      } else if (cp.value == '/' || cp.value == '\\' || cp.value == '?' || cp.value == '#' || cp.value == '%') {
        bad = std::string("'") + s[i] + "'";
      } else {
        i += cp.size;
        continue;
      }
      return w + " cannot contain " + bad + " (at byte " + std::to_string(i) +
             "): run ids and names travel in request URLs and file names";
    }
    return std::nullopt;
  }
};

}  // namespace tinker
