// JSON text in and out. Serialisation matches what the official Python SDK puts on the wire
// (compact separators, non-ASCII left as UTF-8, floats in Python's repr form: 1.0, 0.0001, 1e-12),
// so our requests are byte-for-byte what the SDK sends, modulo key order.
#pragma once

#include <tinker/error.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

namespace tinker::json {

namespace detail {

/// Python's float.__repr__: the shortest digits that round-trip, written in fixed notation when
/// the decimal exponent is in [-4, 16), otherwise as d.ddde+XX (as to_chars writes it: at least two
/// exponent digits).
inline void append_python_float(std::string& out, double d) {
  if (!std::isfinite(d)) throw tinker::invalid_argument("JSON cannot carry NaN or Infinity");
  char buf[32];
  const auto end = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific).ptr;
  const auto e = std::find(buf, end, 'e');  // buf = [-]D[.DDDD]e(+|-)XX
  int exponent = 0;
  std::from_chars(e + 1 + (e[1] == '+'), end, exponent);
  if (exponent < -4 || exponent >= 16) return (void)out.append(buf, end);
  char buf_digits[24];  // the digits without the point, placed around a new one
  const std::string_view digits(buf_digits, std::remove_copy(buf + (buf[0] == '-'), e, buf_digits, '.'));
  if (buf[0] == '-') out += '-';
  if (exponent < 0)
    out.append("0.").append(std::size_t(-exponent - 1), '0').append(digits);
  else if (const auto point = std::size_t(exponent) + 1; point >= digits.size())
    out.append(digits).append(point - digits.size(), '0').append(".0");
  else
    out.append(digits.substr(0, point)).append(1, '.').append(digits.substr(point));
}

inline void append_string(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char esc[8];
          std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += esc;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

inline void append_value(std::string& out, const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::null: out += "null"; break;
    case boost::json::kind::bool_: out += v.get_bool() ? "true" : "false"; break;
    case boost::json::kind::int64:
    case boost::json::kind::uint64: {
      char buf[24];
      auto r = v.is_int64() ? std::to_chars(buf, buf + sizeof buf, v.get_int64())
                            : std::to_chars(buf, buf + sizeof buf, v.get_uint64());
      out.append(buf, r.ptr);
      break;
    }
    case boost::json::kind::double_: append_python_float(out, v.get_double()); break;
    case boost::json::kind::string: append_string(out, v.get_string()); break;
    case boost::json::kind::array:
      out += '[';
      for (const auto& e : v.get_array()) {
        if (&e != v.get_array().begin()) out += ',';
        append_value(out, e);
      }
      out += ']';
      break;
    case boost::json::kind::object:
      out += '{';
      for (const auto& kv : v.get_object()) {
        if (&kv != v.get_object().begin()) out += ',';
        append_string(out, kv.key());
        out += ':';
        append_value(out, kv.value());
      }
      out += '}';
      break;
  }
}

}  // namespace detail

/// Compact JSON text, Python-SDK style. Throws tinker::invalid_argument for NaN/Infinity.
inline std::string dump(const boost::json::value& v) {
  std::string out;
  detail::append_value(out, v);
  return out;
}

/// Parses JSON text; a syntax error becomes a protocol_error naming `type_name`.
inline boost::json::value parse(std::string_view text, std::string_view type_name) {
  boost::system::error_code ec;
  auto v = boost::json::parse(text, ec);
  if (ec) throw protocol_error(std::string(type_name), "", "invalid JSON: " + ec.message());
  return v;
}

}  // namespace tinker::json
