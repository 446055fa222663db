// The JSON wire codec: every protocol type converts to and from boost::json values (through
// tag_invoke, so boost::json::value_from / value_to work on them) and JSON text.
#pragma once

#include <tinker/json/account.hpp>
#include <tinker/json/checkpoint.hpp>
#include <tinker/json/future.hpp>
#include <tinker/json/model_input.hpp>
#include <tinker/json/sampling.hpp>
#include <tinker/json/serialize.hpp>
#include <tinker/json/service.hpp>
#include <tinker/json/session.hpp>
#include <tinker/json/training.hpp>

#include <string>
#include <string_view>

namespace tinker::json {

/// JSON text for a protocol value, byte-compatible with the Python SDK (modulo key order).
template <class T>
std::string to_json(const T& value) {
  return json::dump(boost::json::value_from(value));
}

/// Decodes a protocol value from a JSON value; throws protocol_error naming the type and field.
template <class T>
T from_value(const boost::json::value& v) {
  try {
    return boost::json::value_to<T>(v);
  } catch (const protocol_error& e) {
    if (!e.type_name().empty()) throw;
    throw e.nested_in(detail::type_name<T>::value, "");  // a bare value (not an object) was wrong
  }
}

/// Decodes a protocol value from JSON text; throws protocol_error naming the type and field.
template <class T>
T from_json(std::string_view text) {
  return from_value<T>(parse(text, detail::type_name<T>::value));
}

}  // namespace tinker::json
