// Splitting a forward/backward batch into requests and merging their results back, as the SDK
// does (docs/protocol.md §7.3): greedy packing under a datum count and an estimated byte
// budget, outputs concatenated, metrics combined by the reduction named after their ':'.
#pragma once

#include <tinker/error.hpp>
#include <tinker/types/training.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace tinker::detail {

/// Estimated wire bytes of one datum: 4 per text token, raw sizes of images/pointers/dmel, and each
/// loss input's dense bytes (8 per CSR index when sparse). Matches the SDK's protobuf-era estimate.
inline std::size_t estimated_bytes(const datum& d) {
  std::size_t n = 0;
  for (const auto& c : d.model_input.chunks) {
    struct visitor {
      std::size_t operator()(const encoded_text_chunk& t) const { return t.tokens.size() * 4; }
      std::size_t operator()(const image_chunk& i) const { return i.data.size(); }
      std::size_t operator()(const image_asset_pointer_chunk& i) const { return i.location.size(); }
      std::size_t operator()(const dmel_chunk& m) const { return m.dmel.size(); }
    };
    n += std::visit(visitor{}, c);
  }
  for (const auto& [name, t] : d.loss_fn_inputs) {
    n += t.stored_size() * element_size(t.type());
    if (t.sparse_crow_indices) n += t.sparse_crow_indices->size() * 8;
    if (t.sparse_col_indices) n += t.sparse_col_indices->size() * 8;
  }
  return n;
}

/// Half-open index ranges [first, last) of `data`, one per request.
inline std::vector<std::pair<std::size_t, std::size_t>> plan_chunks(std::span<const datum> data, std::size_t max_datums,
                                                                    std::size_t max_bytes) {
  std::vector<std::pair<std::size_t, std::size_t>> chunks;
  std::size_t first = 0, bytes = 0;
  for (std::size_t i = 0; i < data.size(); ++i) {
    const auto b = estimated_bytes(data[i]);
    const bool full = i - first >= max_datums || (i > first && bytes + b > max_bytes);
    if (full) {
      chunks.emplace_back(first, i);
      first = i;
      bytes = 0;
    }
    bytes += b;
  }
  if (first < data.size()) chunks.emplace_back(first, data.size());
  return chunks;
}

/// Order-insensitive hash of values (the `hash_unordered` reduction): sum of mixed bit patterns.
inline double hash_unordered(std::span<const double> values) {
  std::uint64_t acc = 0;
  for (double v : values) {
    std::uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    bits ^= bits >> 33;
    bits *= 0xff51afd7ed558ccdull;
    bits ^= bits >> 33;
    acc += bits;
  }
  return static_cast<double>(acc >> 11);  // 53 bits: exactly representable
}

/// Combines per-chunk metrics. `weights` are the datum counts of the chunks (for mean/slack).
/// Keys missing from any chunk and unknown reductions are dropped; a key without exactly one ':'
/// is a protocol violation.
inline std::map<std::string, double> combine_metrics(const std::vector<std::map<std::string, double>>& chunks,
                                                     const std::vector<std::size_t>& weights) {
  std::map<std::string, double> out;
  if (chunks.empty()) return out;
  for (const auto& [key, first_value] : chunks.front()) {
    const auto colon = key.find(':');
    if (colon == std::string::npos || key.find(':', colon + 1) != std::string::npos)
      throw protocol_error("forward_backward_output", "metrics[" + key + "]",
                           "metric keys must have the form <name>:<reduction>");
    std::vector<double> values;
    values.reserve(chunks.size());
    for (const auto& c : chunks) {
      auto it = c.find(key);
      if (it == c.end()) break;
      values.push_back(it->second);
    }
    if (values.size() != chunks.size()) continue;
    const auto reduction = key.substr(colon + 1);
    auto weighted_mean = [&] {
      double sum = 0, total = 0;
      for (std::size_t i = 0; i < values.size(); ++i) {
        sum += values[i] * static_cast<double>(weights[i]);
        total += static_cast<double>(weights[i]);
      }
      return total > 0 ? sum / total : 0.0;
    };
    if (reduction == "sum") {
      double s = 0;
      for (double v : values) s += v;
      out[key] = s;
    } else if (reduction == "mean") {
      out[key] = weighted_mean();
    } else if (reduction == "min") {
      out[key] = *std::min_element(values.begin(), values.end());
    } else if (reduction == "max") {
      out[key] = *std::max_element(values.begin(), values.end());
    } else if (reduction == "slack") {
      out[key] = *std::max_element(values.begin(), values.end()) - weighted_mean();
    } else if (reduction == "hash_unordered") {
      out[key] = hash_unordered(values);
    } else if (reduction == "unique") {
      out[key] = values[0];
      for (std::size_t i = 1; i < values.size(); ++i) out[key + "_" + std::to_string(i + 1)] = values[i];
    }
  }
  return out;
}

/// One result from several chunk results (outputs concatenated in order, metrics combined).
inline forward_backward_output merge_outputs(std::vector<forward_backward_output> parts) {
  if (parts.size() == 1) {
    // Still combined, so a malformed metric key is caught the same way for one chunk or many.
    parts[0].metrics = combine_metrics({parts[0].metrics}, {parts[0].loss_fn_outputs.size()});
    return std::move(parts[0]);
  }
  forward_backward_output out;
  std::vector<std::map<std::string, double>> metrics;
  std::vector<std::size_t> weights;
  for (auto& p : parts) {
    if (out.loss_fn_output_type.empty()) out.loss_fn_output_type = p.loss_fn_output_type;
    weights.push_back(p.loss_fn_outputs.size());
    metrics.push_back(std::move(p.metrics));
    std::move(p.loss_fn_outputs.begin(), p.loss_fn_outputs.end(), std::back_inserter(out.loss_fn_outputs));
  }
  out.metrics = combine_metrics(metrics, weights);
  return out;
}

}  // namespace tinker::detail
