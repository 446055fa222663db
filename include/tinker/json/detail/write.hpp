// Writing protocol types into boost::json objects: optional fields absent when unset (the SDK
// strips nulls from request bodies), floats as doubles, integers as integers.
#pragma once

#include <tinker/json/detail/traits.hpp>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_from.hpp>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace tinker::json::detail {

template <class T>
boost::json::value to_value(const T& v, boost::json::storage_ptr sp = {});

template <class T>
boost::json::value to_value(const T& v, boost::json::storage_ptr sp) {
  if constexpr (std::is_same_v<T, bool>) {
    return boost::json::value(v, sp);
  } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
    return boost::json::value(static_cast<std::int64_t>(v), sp);
  } else if constexpr (std::is_integral_v<T>) {
    return boost::json::value(static_cast<std::uint64_t>(v), sp);
  } else if constexpr (std::is_floating_point_v<T>) {
    return boost::json::value(static_cast<double>(v), sp);
  } else if constexpr (std::is_same_v<T, std::string>) {
    return boost::json::value(boost::json::string_view(v), sp);
  } else if constexpr (std::is_same_v<T, boost::json::object> || std::is_same_v<T, boost::json::value>) {
    return boost::json::value(v, sp);
  } else if constexpr (is_vector<T>::value) {
    boost::json::array a(sp);
    a.reserve(v.size());
    for (const auto& e : v) a.push_back(to_value(e, sp));
    return a;
  } else if constexpr (is_string_map<T>::value) {
    boost::json::object o(sp);
    o.reserve(v.size());
    for (const auto& [k, e] : v) o.emplace(k, to_value(e, sp));
    return o;
  } else {
    return boost::json::value_from(v, sp);  // a protocol type with its own tag_invoke
  }
}

/// Sets `key` to `value`.
template <class T>
void put(boost::json::object& o, std::string_view key, const T& value) {
  o.insert_or_assign(key, to_value(value, o.storage()));
}

/// Sets `key` only when `value` holds something (absent optionals are omitted, never null).
template <class T>
void put(boost::json::object& o, std::string_view key, const std::optional<T>& value) {
  if (value) put(o, key, *value);
}

/// The request models' literal `type` discriminator.
inline void put_type(boost::json::object& o, std::string_view type) { o.insert_or_assign("type", type); }

}  // namespace tinker::json::detail
