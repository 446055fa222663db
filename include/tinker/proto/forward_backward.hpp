// Protobuf codec for forward/backward: ForwardBackwardRequest (client -> server) and
// ForwardBackwardOutput (the result), both directions each, so the client and the local engine
// share one implementation (docs/protocol.md §9).
//
// Encoding follows protobuf's deterministic serialization (fields in number order, proto3 defaults
// omitted, map entries in key order with key and value always present), so the bytes equal
// python3-protobuf's SerializeToString(deterministic=True) for the same values. One size pass, one
// allocation, one write pass; payload arrays are copied once.
//
// Decoding is bounds-checked and accepts what protobuf accepts (unknown fields, packed or unpacked
// repeated scalars, repeated singular fields with the last one winning). Anything malformed throws
// tinker::protocol_error naming the message, the field path and the problem.
#pragma once

#include <tinker/error.hpp>
#include <tinker/proto/detail/model_input.hpp>
#include <tinker/proto/detail/reader.hpp>
#include <tinker/proto/detail/tensor.hpp>
#include <tinker/proto/detail/wire.hpp>
#include <tinker/proto/detail/writer.hpp>
#include <tinker/types/training.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace tinker::proto {

/// The most datums a decoded ForwardBackwardOutput may describe. A record's `num_datums` is not a
/// length prefix (a record may carry no fields at all), so a few bytes can claim any count and the
/// decoder allocates one (empty) map per datum: the count is capped to keep a hostile message from
/// making it allocate without bound. One answer covers one request chunk, and the SDK puts at most
/// 1024 datums in a chunk (docs/protocol.md §7.3, `fwdbwd_max_chunk_len`); 2^16 leaves room for servers
/// that allow larger chunks while bounding the cost of a hostile count to a few megabytes.
inline constexpr std::size_t max_output_datums = std::size_t{1} << 16;

namespace detail {

[[noreturn]] inline void invalid(std::string_view type_name, const std::string& field, const std::string& problem) {
  throw tinker::invalid_argument(std::string(type_name) + "." + field + ": " + problem);
}

inline void check_utf8(std::string_view type_name, std::string_view value, const std::string& field) {
  if (!is_valid_utf8(value)) invalid(type_name, field, "is not valid UTF-8 (protobuf string fields must be)");
}

inline void check_tensor(std::string_view type_name, const tensor_data& t, const std::string& field) {
  try {
    t.validate(field);
  } catch (const tinker::invalid_argument& e) {
    throw tinker::invalid_argument(std::string(type_name) + "." + e.what());
  }
}

// --- ForwardBackwardRequest ---------------------------------------------------------------------------------

inline constexpr std::string_view request_type_name = "ForwardBackwardRequest";

/// The user mistakes protobuf cannot carry, caught before anything is sized or written.
inline void check_encodable(const forward_backward_request& req) {
  constexpr auto type = request_type_name;
  if (req.seq_id < std::numeric_limits<std::int32_t>::min() || req.seq_id > std::numeric_limits<std::int32_t>::max())
    invalid(type, "seq_id", std::to_string(req.seq_id) + " does not fit the int32 protobuf field");
  check_utf8(type, req.model_id, "model_id");
  if (const auto& cfg = req.forward_backward_input.loss_fn_config)
    for (const auto& [key, value] : *cfg) check_utf8(type, key, "loss_fn_config key");
  const auto& data = req.forward_backward_input.data;
  for (std::size_t i = 0; i < data.size(); ++i) {
    const auto& chunks = data[i].model_input.chunks;
    for (std::size_t c = 0; c < chunks.size(); ++c)
      if (!is_proto_encodable(chunks[c]))
        invalid(type, "data[" + std::to_string(i) + "].model_input[" + std::to_string(c) + "]",
                "image_asset_pointer chunks cannot be encoded in protobuf (send the image bytes as an image chunk)");
    for (const auto& [name, tensor] : data[i].loss_fn_inputs) {
      const auto field = "data[" + std::to_string(i) + "].loss_fn_inputs[" + name + "]";
      check_utf8(type, name, field);
      check_tensor(type, tensor, field);
    }
  }
}

template <class Out>
void write_datum(Out& out, const datum& d) {
  for (const auto& chunk : d.model_input.chunks) out.message_field(1, [&](auto& o) { write_chunk(o, chunk); });
  // (Plain entries rather than structured bindings: clang < 16 cannot capture bindings in lambdas.)
  for (const auto& input : d.loss_fn_inputs)
    out.message_field(2, [&](auto& entry) {
      entry.string_field(1, input.first);
      entry.message_field(2, [&](auto& o) { write_tensor(o, input.second); });
    });
}

template <class Out>
void write_request(Out& out, const forward_backward_request& req) {
  const auto& in = req.forward_backward_input;
  if (!req.model_id.empty()) out.string_field(1, req.model_id);
  if (req.seq_id != 0) out.int32_field(2, static_cast<std::int32_t>(req.seq_id));
  for (const auto& d : in.data) out.message_field(3, [&](auto& o) { write_datum(o, d); });
  out.string_field(4, to_string(in.loss_fn));
  if (in.loss_fn_config)
    for (const auto& item : *in.loss_fn_config)
      out.message_field(5, [&](auto& entry) {
        entry.string_field(1, item.first);
        entry.double_field(2, item.second);
      });
  if (req.forward_only) out.bool_field(6, true);
}

inline datum read_datum(reader r) {
  datum d;
  while (!r.at_end()) {
    const auto tag = r.read_tag();
    switch (tag.number) {
      case 1: {
        const auto bytes = read_message_field(r, tag, "model_input");
        const auto index = d.model_input.chunks.size();
        d.model_input.chunks.push_back(within(indexed("model_input", index), [&] { return read_chunk(r.sub(bytes)); }));
        break;
      }
      case 2: {
        auto entry_reader = r.sub(read_message_field(r, tag, "loss_fn_inputs"));
        const auto entry = within("loss_fn_inputs", [&] { return read_message_map_entry(entry_reader); });
        d.loss_fn_inputs.insert_or_assign(std::string(entry.key), within(keyed("loss_fn_inputs", entry.key), [&] {
                                            return read_tensor(r.sub(entry.value));
                                          }));
        break;
      }
      // 3, 4: model_input_spans / loss_fn_input_spans (provenance, docs/protocol.md §9.2): not used
      // by this engine; skipped like any unknown field.
      default: r.skip(tag);
    }
  }
  return d;
}

/// LossConfigValue{oneof value {double number = 1; string text = 2;}} (loss_fn_config_v2).
inline double read_loss_config_value(reader r, bool present) {
  enum class member { none, number, text } which = member::none;
  double number = 0;
  std::string_view text;
  while (!r.at_end()) {
    const auto tag = r.read_tag();
    switch (tag.number) {
      case 1:
        number = read_double_field(r, tag, "number");
        which = member::number;
        break;
      case 2:
        text = read_string_view_field(r, tag, "text");
        which = member::text;
        break;
      default: r.skip(tag);
    }
  }
  if (which == member::text)
    fail({}, "string-valued loss configs are unsupported (got text \"" + std::string(text) + "\")");
  if (which == member::none) fail({}, present ? "sets neither number nor text" : "has no value");
  return number;
}

inline forward_backward_request read_request(reader r) {
  forward_backward_request req;
  auto& in = req.forward_backward_input;
  std::string_view loss_fn;
  loss_fn_config config_v1, config_v2;
  while (!r.at_end()) {
    const auto tag = r.read_tag();
    switch (tag.number) {
      case 1: req.model_id = read_string_field(r, tag, "model_id"); break;
      case 2: req.seq_id = read_int32_field(r, tag, "seq_id"); break;
      case 3: {
        const auto bytes = read_message_field(r, tag, "data");
        const auto index = in.data.size();
        in.data.push_back(within(indexed("data", index), [&] { return read_datum(r.sub(bytes)); }));
        break;
      }
      case 4: loss_fn = read_string_view_field(r, tag, "loss_fn"); break;
      case 5: {
        auto entry_reader = r.sub(read_message_field(r, tag, "loss_fn_config"));
        const auto [key, value] = within("loss_fn_config", [&] { return read_double_map_entry(entry_reader); });
        config_v1.insert_or_assign(std::string(key), value);
        break;
      }
      case 6: req.forward_only = read_bool_field(r, tag, "forward_only"); break;
      case 7: {
        auto entry_reader = r.sub(read_message_field(r, tag, "loss_fn_config_v2"));
        const auto entry = within("loss_fn_config_v2", [&] { return read_message_map_entry(entry_reader); });
        const double value = within(keyed("loss_fn_config_v2", entry.key),
                                    [&] { return read_loss_config_value(r.sub(entry.value), entry.has_value); });
        config_v2.insert_or_assign(std::string(entry.key), value);
        break;
      }
      default: r.skip(tag);
    }
  }
  const auto parsed = parse_loss_fn_type(loss_fn);
  if (!parsed) fail("loss_fn", "unknown loss function \"" + std::string(loss_fn) + "\"");
  in.loss_fn = *parsed;
  // Newer SDKs send numbers in both maps and strings only in v2; v2 is the complete one.
  if (!config_v2.empty())
    in.loss_fn_config = std::move(config_v2);
  else if (!config_v1.empty())
    in.loss_fn_config = std::move(config_v1);
  return req;
}

// --- ForwardBackwardOutput ----------------------------------------------------------------------------------

inline constexpr std::string_view output_type_name = "ForwardBackwardOutput";

/// Consecutive datums [begin, end) that share one ArrayRecord.
struct record_range {
  std::size_t begin = 0, end = 0;
};

/// Two datums fit in one record when they have the same fields, each with the same dtype and
/// trailing shape (the record stores one dtype and trailing_shape per field).
inline bool same_record_layout(const loss_fn_output& a, const loss_fn_output& b) {
  if (a.size() != b.size()) return false;
  for (auto i = a.begin(), j = b.begin(); i != a.end(); ++i, ++j) {
    if (i->first != j->first || i->second.type() != j->second.type()) return false;
    const auto ta = trailing_dims(i->second), tb = trailing_dims(j->second);
    if (!std::equal(ta.begin(), ta.end(), tb.begin(), tb.end())) return false;
  }
  return true;
}

inline std::vector<record_range> group_records(const std::vector<loss_fn_output>& outputs) {
  std::vector<record_range> ranges;
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    if (ranges.empty() || !same_record_layout(outputs[ranges.back().begin], outputs[i])) ranges.push_back({i, i});
    ranges.back().end = i + 1;
  }
  return ranges;
}

inline bool has_sparse_tensor(const forward_backward_output& out) {
  for (const auto& datum_outputs : out.loss_fn_outputs)
    for (const auto& [name, tensor] : datum_outputs)
      if (tensor.is_sparse()) return true;
  return false;
}

/// BatchedTensor has no sparse form: sparse per-datum outputs are expanded (rare; results are dense).
inline forward_backward_output densified(const forward_backward_output& out) {
  auto copy = out;
  for (auto& datum_outputs : copy.loss_fn_outputs)
    for (auto& [name, tensor] : datum_outputs)
      if (tensor.is_sparse()) {
        tensor_data dense;
        if (tensor.type() == tinker::dtype::float32)
          dense.values = tensor.to_dense<float>();
        else
          dense.values = tensor.to_dense<std::int64_t>();
        dense.shape = tensor.shape;
        tensor = std::move(dense);
      }
  return copy;
}

inline void check_encodable(const forward_backward_output& out) {
  constexpr auto type = output_type_name;
  check_utf8(type, out.loss_fn_output_type, "loss_fn_output_type");
  for (const auto& [key, value] : out.metrics) check_utf8(type, key, "metrics key");
  for (std::size_t i = 0; i < out.loss_fn_outputs.size(); ++i)
    for (const auto& [name, tensor] : out.loss_fn_outputs[i]) {
      const auto field = "loss_fn_outputs[" + std::to_string(i) + "][" + name + "]";
      check_utf8(type, name, field);
      check_tensor(type, tensor, field);
    }
}

/// One BatchedTensor: field `name` of datums [range.begin, range.end).
template <class Out>
void write_batched_tensor(Out& out, const std::vector<loss_fn_output>& outputs, record_range range,
                          const std::string& name) {
  const auto& first = outputs[range.begin].at(name);
  std::size_t total = 0;
  for (auto i = range.begin; i < range.end; ++i) total += payload_size(outputs[i].at(name));
  if (total != 0)
    out.bytes_field_parts(1, total, [&](raw_sink& sink) {
      for (auto i = range.begin; i < range.end; ++i)
        std::visit([&](const auto& values) { sink.append_array(std::span(values)); }, outputs[i].at(name).values);
    });
  out.bytes_field_parts(2, 8 * (range.end - range.begin + 1), [&](raw_sink& sink) {
    std::int64_t offset = 0;
    sink.append_value(offset);
    for (auto i = range.begin; i < range.end; ++i) {
      offset += static_cast<std::int64_t>(payload_size(outputs[i].at(name)));
      sink.append_value(offset);
    }
  });
  out.int32_field(3, static_cast<std::int32_t>(to_wire_dtype(first.type())));
  out.packed_int64_field(4, trailing_dims(first));
}

template <class Out>
void write_output(Out& out, const forward_backward_output& fbo, std::span<const record_range> records) {
  if (!fbo.loss_fn_output_type.empty()) out.string_field(1, fbo.loss_fn_output_type);
  for (const auto range : records)
    out.message_field(2, [&](auto& record) {
      for (const auto& field : fbo.loss_fn_outputs[range.begin])
        record.message_field(2, [&](auto& entry) {
          entry.string_field(1, field.first);
          entry.message_field(2, [&](auto& o) { write_batched_tensor(o, fbo.loss_fn_outputs, range, field.first); });
        });
      record.int64_field(3, static_cast<std::int64_t>(range.end - range.begin));
    });
  for (const auto& metric : fbo.metrics)
    out.message_field(3, [&](auto& entry) {
      entry.string_field(1, metric.first);
      entry.double_field(2, metric.second);
    });
}

struct batched_tensor_views {
  std::string_view data, offsets;
  std::int32_t dtype = 0;
  std::vector<std::int64_t> trailing_shape;
};

inline batched_tensor_views read_batched_tensor(reader r) {
  batched_tensor_views bt;
  while (!r.at_end()) {
    const auto tag = r.read_tag();
    switch (tag.number) {
      case 1: bt.data = read_bytes_field(r, tag, "data"); break;
      case 2: bt.offsets = read_bytes_field(r, tag, "offsets"); break;
      case 3: bt.dtype = read_int32_field(r, tag, "dtype"); break;
      case 4: read_repeated_int64_field(r, tag, "trailing_shape", bt.trailing_shape); break;
      default: r.skip(tag);
    }
  }
  return bt;
}

struct array_record_views {
  std::map<std::string_view, batched_tensor_views> fields;  // keys and payloads point into the input
  std::int64_t num_datums = 0;
};

inline array_record_views read_array_record(reader r) {
  array_record_views record;
  while (!r.at_end()) {
    const auto tag = r.read_tag();
    switch (tag.number) {
      case 1: (void)read_string_view_field(r, tag, "type_tag"); break;  // not needed to decode
      case 2: {
        auto entry_reader = r.sub(read_message_field(r, tag, "fields"));
        const auto entry = within("fields", [&] { return read_message_map_entry(entry_reader); });
        record.fields.insert_or_assign(
            entry.key, within(keyed("fields", entry.key), [&] { return read_batched_tensor(r.sub(entry.value)); }));
        break;
      }
      case 3: record.num_datums = read_int64_field(r, tag, "num_datums"); break;
      default: r.skip(tag);
    }
  }
  if (record.num_datums < 0) fail("num_datums", "is negative (" + std::to_string(record.num_datums) + ")");
  return record;
}

/// The datum count a field's offsets imply (for encoders that predate num_datums).
inline std::size_t datums_in_offsets(const batched_tensor_views& bt) {
  return bt.offsets.size() >= 8 ? bt.offsets.size() / 8 - 1 : 0;
}

/// Splits one BatchedTensor into `n` per-datum tensors stored under `name` in dst[0..n).
inline void read_batched_field(const batched_tensor_views& bt, std::size_t n, std::string_view name,
                               loss_fn_output* dst) {
  const auto type = checked_dtype(bt.dtype, "dtype");
  const auto esize = element_size(type);
  check_array_length(bt.offsets, 8, "offsets", "int64 offsets");
  const auto count = bt.offsets.size() / 8;
  if (count == 0) {
    if (n == 0 && bt.data.empty()) return;
    fail("offsets", "is empty, expected num_datums + 1 = " + std::to_string(n + 1) + " entries");
  }
  if (count != n + 1)
    fail("offsets", "has " + std::to_string(count) + " entries, expected num_datums + 1 = " + std::to_string(n + 1));
  const auto per_row = checked_element_count(bt.trailing_shape, "trailing_shape");

  auto offset_at = [&](std::size_t i) { return load_le<std::int64_t>(bt.offsets.data() + 8 * i); };
  auto offset_error = [&](std::size_t i, const std::string& problem) {
    fail("offsets", "entry " + std::to_string(i) + " (" + std::to_string(offset_at(i)) + ") " + problem);
  };
  if (offset_at(0) != 0) offset_error(0, "must be 0");
  if (static_cast<std::uint64_t>(offset_at(n)) != bt.data.size())
    offset_error(n, "must equal the data length " + std::to_string(bt.data.size()));

  const std::string key(name);
  std::uint64_t begin = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const auto end_signed = offset_at(i + 1);
    if (end_signed < 0 || static_cast<std::uint64_t>(end_signed) < begin) offset_error(i + 1, "decreases");
    const auto end = static_cast<std::uint64_t>(end_signed);
    if (end > bt.data.size()) offset_error(i + 1, "is beyond the data length " + std::to_string(bt.data.size()));
    if (end % esize != 0)
      offset_error(i + 1, "is not a multiple of " + std::to_string(esize) + " (the size of dtype " +
                              std::string(dtype_name(type)) + ")");
    const auto elements = (end - begin) / esize;
    std::uint64_t leading = 0;
    if (per_row == 0) {
      if (elements != 0)
        fail("data", "datum " + std::to_string(i) + " has " + std::to_string(elements) +
                         " elements but trailing_shape describes empty rows");
    } else {
      if (elements % per_row != 0)
        fail("data", "datum " + std::to_string(i) + " has " + std::to_string(elements) +
                         " elements, not a multiple of prod(trailing_shape) = " + std::to_string(per_row));
      leading = elements / per_row;
    }
    tensor_data t;
    t.values = decode_values(bt.data.substr(static_cast<std::size_t>(begin), static_cast<std::size_t>(end - begin)),
                             type, "data");
    std::vector<std::int64_t> shape;
    shape.reserve(1 + bt.trailing_shape.size());
    shape.push_back(static_cast<std::int64_t>(leading));
    shape.insert(shape.end(), bt.trailing_shape.begin(), bt.trailing_shape.end());
    t.shape = std::move(shape);
    dst[i].insert_or_assign(key, std::move(t));
    begin = end;
  }
}

inline forward_backward_output read_output(reader r) {
  forward_backward_output out;
  std::string_view output_type;
  std::vector<array_record_views> records;
  while (!r.at_end()) {
    const auto tag = r.read_tag();
    switch (tag.number) {
      case 1: output_type = read_string_view_field(r, tag, "loss_fn_output_type"); break;
      case 2: {
        const auto bytes = read_message_field(r, tag, "loss_fn_outputs");
        const auto index = records.size();
        records.push_back(within(indexed("loss_fn_outputs", index), [&] { return read_array_record(r.sub(bytes)); }));
        break;
      }
      case 3: {
        auto entry_reader = r.sub(read_message_field(r, tag, "metrics"));
        const auto [key, value] = within("metrics", [&] { return read_double_map_entry(entry_reader); });
        out.metrics.insert_or_assign(std::string(key), value);
        break;
      }
      default: r.skip(tag);
    }
  }

  // num_datums is authoritative; only when every record leaves it at 0 does the count come from
  // the first field's offsets (encoders that predate num_datums).
  std::uint64_t total = 0;
  for (const auto& record : records) {
    total += static_cast<std::uint64_t>(record.num_datums);
    if (total > max_output_datums)
      fail("loss_fn_outputs",
           "num_datums adds up to more than " + std::to_string(max_output_datums) +
               " datums, the most one answer may describe (the SDK sends at most 1024 per request chunk)");
  }
  const bool legacy_counts = total == 0;
  std::vector<std::size_t> counts;
  counts.reserve(records.size());
  total = 0;
  for (const auto& record : records) {
    const std::size_t n = legacy_counts ? (record.fields.empty() ? 0 : datums_in_offsets(record.fields.begin()->second))
                                        : static_cast<std::size_t>(record.num_datums);
    counts.push_back(n);
    total += n;
  }
  if (total > max_output_datums)
    fail("loss_fn_outputs",
         "the offsets describe more than " + std::to_string(max_output_datums) +
             " datums, the most one answer may describe (the SDK sends at most 1024 per request chunk)");

  // The SDK keeps the class name after the last ':' ("module:ClassName"). An empty name with no
  // datums reads as ArrayRecord whether or not empty records were sent: our encoder writes no
  // record for zero datums, so deciding on the records would make decoding depend on who encoded.
  if (const auto colon = output_type.rfind(':'); colon != std::string_view::npos) output_type.remove_prefix(colon + 1);
  out.loss_fn_output_type = total == 0 && output_type.empty() ? "ArrayRecord" : std::string(output_type);

  out.loss_fn_outputs.resize(static_cast<std::size_t>(total));
  std::size_t base = 0;
  for (std::size_t ri = 0; ri < records.size(); ++ri) {
    within(indexed("loss_fn_outputs", ri), [&] {
      for (const auto& field : records[ri].fields)
        within(keyed("fields", field.first),
               [&] { read_batched_field(field.second, counts[ri], field.first, out.loss_fn_outputs.data() + base); });
    });
    base += counts[ri];
  }
  return out;
}

}  // namespace detail

// --- public interface ---------------------------------------------------------------------------------------

/// Exact size of encode(req). Throws tinker::invalid_argument for what protobuf cannot carry
/// (image_asset_pointer chunks, seq_id outside int32, invalid tensors, non-UTF-8 strings).
inline std::size_t encoded_size(const forward_backward_request& req) {
  detail::check_encodable(req);
  detail::size_counter counter;
  detail::write_request(counter, req);
  return counter.size();
}

/// Appends the ForwardBackwardRequest encoding of `req` to `out`.
inline void encode_to(std::string& out, const forward_backward_request& req) {
  detail::check_encodable(req);
  detail::append_message(out, [&](auto& sink) { detail::write_request(sink, req); });
}

/// The ForwardBackwardRequest encoding of `req` (see encode_to for the errors).
inline std::string encode(const forward_backward_request& req) {
  std::string out;
  encode_to(out, req);
  return out;
}

/// Decodes a ForwardBackwardRequest. Reads loss_fn_config_v2 (field 7) when present and prefers it;
/// a string-valued entry there, an unknown loss_fn or any malformed field throws protocol_error.
inline forward_backward_request decode_forward_backward_request(std::string_view bytes) {
  return detail::decode_top_level(detail::request_type_name,
                                  [&] { return detail::read_request(detail::reader(bytes)); });
}

/// Exact size of encode(out).
inline std::size_t encoded_size(const forward_backward_output& out) {
  detail::check_encodable(out);
  if (detail::has_sparse_tensor(out)) return encoded_size(detail::densified(out));
  const auto records = detail::group_records(out.loss_fn_outputs);
  detail::size_counter counter;
  detail::write_output(counter, out, records);
  return counter.size();
}

/// Appends the ForwardBackwardOutput encoding of `out`: one ArrayRecord per run of consecutive datums
/// with the same fields, dtypes and trailing shapes (a single record in the usual case), metrics in
/// key order. Per-datum tensors are stored with shape [rows, *trailing_shape]; a tensor without a
/// shape is 1-D (so is a 0-D one: it reads back as shape [1]), and a sparse one is expanded
/// (BatchedTensor is dense only).
inline void encode_to(std::string& buffer, const forward_backward_output& out) {
  detail::check_encodable(out);
  if (detail::has_sparse_tensor(out)) return encode_to(buffer, detail::densified(out));
  const auto records = detail::group_records(out.loss_fn_outputs);
  detail::append_message(buffer, [&](auto& sink) { detail::write_output(sink, out, records); });
}

inline std::string encode(const forward_backward_output& out) {
  std::string buffer;
  encode_to(buffer, out);
  return buffer;
}

/// Decodes a ForwardBackwardOutput into one loss_fn_output per datum (records concatenated in
/// order), every tensor with its full shape [elements / prod(trailing_shape), *trailing_shape];
/// INT32 results surface as int64 and BFLOAT16 as float32.
inline forward_backward_output decode_forward_backward_output(std::string_view bytes) {
  return detail::decode_top_level(detail::output_type_name, [&] { return detail::read_output(detail::reader(bytes)); });
}

}  // namespace tinker::proto
