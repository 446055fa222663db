// tinker:// checkpoint paths: `tinker://<training_run_id>/<weights|sampler_weights>/<name>`
// (protocol.md §11.1). Run ids contain colons (`<session>:train:0`); names contain no '/'.
#pragma once

#include <tinker/error.hpp>
#include <tinker/types/checkpoint.hpp>

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
    tinker_path p;
    const auto sep = s.find("://");
    if (sep == std::string_view::npos)
      return fail("missing scheme: expected tinker://<training_run_id>/<weights|sampler_weights>/<name>");
    p.scheme = std::string(s.substr(0, sep));
    if (p.scheme != "tinker" && p.scheme != "logits")
      return fail("unsupported scheme '" + p.scheme + "://': expected tinker:// (or logits://)");
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
    if (p.training_run_id.empty()) return fail("empty training run id");
    if (kind == "weights")
      p.kind = checkpoint_kind::weights;
    else if (kind == "sampler_weights")
      p.kind = checkpoint_kind::sampler_weights;
    else if (kind == "external_weights")
      p.kind = checkpoint_kind::external_weights;
    else
      return fail("unknown checkpoint kind '" + std::string(kind) + "': expected weights or sampler_weights");
    if (auto why = name_problem(p.name)) return fail(*why);
    return p;
  }

  /// Parses `s` or throws tinker::invalid_argument naming the path and the problem.
  static tinker_path parse(std::string_view s) {
    std::string error;
    auto p = try_parse(s, &error);
    if (!p) throw tinker::invalid_argument("invalid tinker path '" + std::string(s) + "': " + error);
    return *p;
  }

  /// Builds `tinker://<run>/<kind>/<name>`, validating the name.
  static tinker_path make(std::string training_run_id, checkpoint_kind kind, std::string name) {
    if (auto why = name_problem(name)) throw tinker::invalid_argument("invalid checkpoint name '" + name + "': " + *why);
    if (training_run_id.empty() || training_run_id.find('/') != std::string::npos)
      throw tinker::invalid_argument("invalid training run id '" + training_run_id + "'");
    return tinker_path{"tinker", std::move(training_run_id), kind, std::move(name)};
  }

  /// What is wrong with a checkpoint name, if anything (empty, '/', '..', control characters).
  static std::optional<std::string> name_problem(std::string_view name) {
    if (name.empty()) return "empty checkpoint name";
    if (name == "." || name == "..") return "checkpoint name cannot be '.' or '..'";
    for (char c : name) {
      if (c == '/' || c == '\\') return "checkpoint name cannot contain '/' or '\\'";
      if (static_cast<unsigned char>(c) < 0x20) return "checkpoint name cannot contain control characters";
    }
    return std::nullopt;
  }

  /// `<kind>/<name>`, e.g. `weights/step-10`.
  std::string checkpoint_id() const { return std::string(tinker::to_string(kind)) + "/" + name; }

  checkpoint_type type() const noexcept { return type_of(kind); }

  std::string str() const { return scheme + "://" + training_run_id + "/" + checkpoint_id(); }

  friend bool operator==(const tinker_path&, const tinker_path&) = default;
};

}  // namespace tinker
