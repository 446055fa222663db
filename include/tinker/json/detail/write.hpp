// Writing protocol types into boost::json objects: optional fields absent when unset (the SDK
// strips nulls from request bodies), floats as doubles, integers as integers.
#pragma once

#include <tinker/types/timestamp.hpp>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_from.hpp>

#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>

namespace tinker::json::detail {

/// Boost.JSON's own conversions already write what the protocol wants for numbers (floats as
/// doubles), strings, vectors, string maps and variants (the alternative held), and call the
/// protocol types' tag_invoke; a timestamp is an ISO-8601 string.
template <class T>
boost::json::value to_value(const T& v, boost::json::storage_ptr sp = {}) {
  if constexpr (std::is_same_v<T, timestamp>)
    return boost::json::value(format_timestamp(v), sp);
  else
    return boost::json::value_from(v, std::move(sp));
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
