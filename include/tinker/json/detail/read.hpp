// Reading protocol types out of boost::json values with errors that name the type and the field.
//
// read_as<T>(value) converts one value; object_reader reads fields of one object and prefixes any
// error with its type name and field, so a deep mistake surfaces as
// "cannot decode sample_response: field 'sequences[2].tokens[5]': expected an integer, got string".
#pragma once

#include <tinker/error.hpp>
#include <tinker/json/serialize.hpp>
#include <tinker/types/timestamp.hpp>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_to.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace tinker::json::detail {

/// Whether T is Template<...> (std::optional, std::vector, std::map).
template <class T, template <class...> class Template>
inline constexpr bool instance_of = false;
template <template <class...> class Template, class... A>
inline constexpr bool instance_of<Template<A...>, Template> = true;

inline const char* kind_name(const boost::json::value& v) noexcept {
  switch (v.kind()) {
    case boost::json::kind::null: return "null";
    case boost::json::kind::bool_: return "boolean";
    case boost::json::kind::int64:
    case boost::json::kind::uint64: return "integer";
    case boost::json::kind::double_: return "number";
    case boost::json::kind::string: return "string";
    case boost::json::kind::array: return "array";
    case boost::json::kind::object: return "object";
  }
  return "value";
}

[[noreturn]] inline void type_mismatch(const char* expected, const boost::json::value& got) {
  throw protocol_error("", "", std::string("expected ") + expected + ", got " + kind_name(got));
}

/// A double as Python's repr writes it (1.5, 1e+30), for messages.
inline std::string number_text(double d) {
  if (!std::isfinite(d)) return std::isnan(d) ? "nan" : (d < 0 ? "-inf" : "inf");
  std::string out;
  append_python_float(out, d);
  return out;
}

/// Integers accept 1 and 1.0 (but not 1.5) within T's range.
template <class T>
T read_integer(const boost::json::value& v) {
  auto out_of_range = [&](const std::string& x) -> T {
    throw protocol_error("", "", "integer " + x + " out of range");
  };
  if (v.is_int64()) {
    const auto x = v.get_int64();
    if constexpr (std::is_signed_v<T>) {
      if (x < std::numeric_limits<T>::min() || x > std::numeric_limits<T>::max())
        return out_of_range(std::to_string(x));
    } else {
      if (x < 0 || static_cast<std::uint64_t>(x) > std::numeric_limits<T>::max())
        return out_of_range(std::to_string(x));
    }
    return static_cast<T>(x);
  }
  if (v.is_uint64()) {
    const auto x = v.get_uint64();
    if (x > static_cast<std::uint64_t>(std::numeric_limits<T>::max())) return out_of_range(std::to_string(x));
    return static_cast<T>(x);
  }
  if (v.is_double()) {
    const double d = v.get_double();
    if (std::trunc(d) != d) throw protocol_error("", "", "expected an integer, got " + number_text(d));
    // T's range is [-2^digits, 2^digits) (signed) or [0, 2^digits) (unsigned); both bounds are
    // exact doubles. Comparing with (double)max() instead would let 2^63 through for int64 (the
    // max rounds up to it) and the cast would be undefined.
    const double limit = std::ldexp(1.0, std::numeric_limits<T>::digits);
    const double lowest = std::is_signed_v<T> ? -limit : 0.0;
    if (!(d >= lowest && d < limit)) return out_of_range(number_text(d));
    return static_cast<T>(d);
  }
  type_mismatch("an integer", v);
}

/// A JSON number as float or double. A double beyond float's range is an error rather than an
/// undefined conversion; values that round to the largest float are kept.
template <class T>
T read_floating(double d) {
  if constexpr (std::is_same_v<T, float>) {
    // Halfway between FLT_MAX and the next power of two: below it, rounding gives FLT_MAX.
    constexpr double float_limit = 0x1.ffffffp127;
    if (std::fabs(d) >= float_limit)
      throw protocol_error("", "", "number " + number_text(d) + " is out of float32 range");
    if (std::fabs(d) > std::numeric_limits<float>::max())
      return d < 0 ? -std::numeric_limits<float>::max() : std::numeric_limits<float>::max();
  }
  return static_cast<T>(d);
}

template <class T>
T read_as(const boost::json::value& v) {
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_bool()) type_mismatch("a boolean", v);
    return v.get_bool();
  } else if constexpr (std::is_integral_v<T>) {
    return read_integer<T>(v);
  } else if constexpr (std::is_floating_point_v<T>) {
    if (v.is_double()) return read_floating<T>(v.get_double());
    if (v.is_int64()) return static_cast<T>(v.get_int64());  // |x| < 2^64: always within float's range
    if (v.is_uint64()) return static_cast<T>(v.get_uint64());
    type_mismatch("a number", v);
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) type_mismatch("a string", v);
    return std::string(v.get_string());
  } else if constexpr (std::is_same_v<T, timestamp>) {  // an ISO-8601 string
    if (!v.is_string()) type_mismatch("an ISO-8601 datetime string", v);
    if (auto t = parse_timestamp(v.get_string())) return *t;
    throw protocol_error("", "", "invalid ISO-8601 datetime '" + std::string(v.get_string()) + "'");
  } else if constexpr (instance_of<T, std::optional>) {
    if (v.is_null()) return std::nullopt;
    return read_as<typename T::value_type>(v);
  } else if constexpr (instance_of<T, std::vector>) {
    if (!v.is_array()) type_mismatch("an array", v);
    const auto& a = v.get_array();
    T out;
    out.reserve(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      try {
        out.push_back(read_as<typename T::value_type>(a[i]));
      } catch (const protocol_error& e) {
        throw e.nested_in("", "[" + std::to_string(i) + "]");
      }
    }
    return out;
  } else if constexpr (instance_of<T, std::map>) {
    if (!v.is_object()) type_mismatch("an object", v);
    T out;
    for (const auto& kv : v.get_object()) {
      try {
        out.emplace(std::string(kv.key()), read_as<typename T::mapped_type>(kv.value()));
      } catch (const protocol_error& e) {
        throw e.nested_in("", "[" + std::string(kv.key()) + "]");
      }
    }
    return out;
  } else if constexpr (std::is_same_v<T, boost::json::object>) {
    if (!v.is_object()) type_mismatch("an object", v);
    return v.get_object();
  } else if constexpr (std::is_same_v<T, boost::json::value>) {
    return v;
  } else {
    return boost::json::value_to<T>(v);  // a protocol type or enumeration: its tag_invoke
  }
}

/// Reads the fields of one JSON object on behalf of protocol type `type_name`.
/// Unknown keys are ignored (servers add fields); missing required keys and wrong types throw.
class object_reader {
public:
  object_reader(const boost::json::value& v, const char* type_name) : type_name_(type_name) {
    if (!v.is_object())
      throw protocol_error(type_name_, "", std::string("expected a JSON object, got ") + kind_name(v));
    object_ = &v.get_object();
  }

  bool has(std::string_view key) const { return object_->contains(key); }

  const boost::json::object& object() const noexcept { return *object_; }

  /// A required field; null counts as missing.
  template <class T>
  T required(std::string_view key) const {
    const auto* v = object_->if_contains(key);
    if (!v || v->is_null()) throw protocol_error(type_name_, std::string(key), "missing required field");
    return convert<T>(*v, key);
  }

  /// A required array field, by reference (no copy of large arrays).
  const boost::json::array& required_array(std::string_view key) const {
    const auto* v = object_->if_contains(key);
    if (!v || v->is_null()) throw protocol_error(type_name_, std::string(key), "missing required field");
    if (!v->is_array())
      throw protocol_error(type_name_, std::string(key), std::string("expected an array, got ") + kind_name(*v));
    return v->get_array();
  }

  /// An optional field: absent or null -> nullopt.
  template <class T>
  std::optional<T> optional(std::string_view key) const {
    const auto* v = object_->if_contains(key);
    if (!v || v->is_null()) return std::nullopt;
    return convert<T>(*v, key);
  }

  /// A field with a default: absent or null -> `fallback`.
  template <class T>
  T optional_or(std::string_view key, T fallback) const {
    auto v = optional<T>(key);
    return v ? std::move(*v) : std::move(fallback);
  }

  /// Fails with `problem` reported at `key`.
  [[noreturn]] void fail(std::string_view key, std::string problem) const {
    throw protocol_error(type_name_, std::string(key), std::move(problem));
  }

private:
  template <class T>
  T convert(const boost::json::value& v, std::string_view key) const {
    try {
      return read_as<T>(v);
    } catch (const protocol_error& e) {
      throw e.nested_in(type_name_, key);
    }
  }

  const char* type_name_;
  const boost::json::object* object_ = nullptr;
};

}  // namespace tinker::json::detail
