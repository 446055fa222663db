// What a protocol type looks like on the wire, and the one codec of the regular ones: structs and
// enumerations described with Boost.Describe (TINKER_JSON_STRUCT, TINKER_JSON_ENUM).
//
// Boost.JSON 1.81 converts described types itself, but not by the protocol's rules: it writes an
// empty optional as null, and reading wants every member's key and no other, with errors that name
// no field. User conversions (tag_invoke) come first, so these templates take over:
//   - members go out in the order of the description, under their names (is_public as "public"),
//     with the shape's `type` literal before or after them;
//   - an empty optional is omitted (or null, if the shape says so); absent or null reads as nullopt;
//   - other members are required (absent or null is an error naming the field), except those the
//     shape lists as defaulted: these keep their initial value;
//   - members the shape lists as base64 hold raw bytes; unknown keys and the `type` are ignored;
//   - enumerations are their enumerators' names; one with an `unknown` enumerator reads names it
//     does not know (servers add values) as that, the others refuse them.
// A type with an irregular wire form declares its own tag_invoke, which wins over these templates
// (a non-template is the better match) and may still call read_object / write_object.
#pragma once

#include <tinker/detail/base64.hpp>
#include <tinker/json/detail/read.hpp>
#include <tinker/json/detail/write.hpp>

#include <boost/describe/class.hpp>
#include <boost/describe/enum.hpp>
#include <boost/describe/enum_to_string.hpp>
#include <boost/describe/enumerators.hpp>
#include <boost/describe/members.hpp>
#include <boost/json/value_from.hpp>
#include <boost/json/value_to.hpp>
#include <boost/mp11/algorithm.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace tinker::json::detail {

/// How a described struct looks on the wire (what TINKER_JSON_STRUCT declares as json_shape).
struct object_shape {
  const char* name;                 ///< the protocol type's name, for errors
  std::string_view tag = {};        ///< the literal written under tag_key ("" = none)
  std::string_view defaulted = {};  ///< members that may be absent, "a, b" ("*" = all)
  bool tag_first = false;           ///< the tag goes before the members rather than after them
  std::string_view tag_key = "type";
  bool nulls = false;            ///< empty optionals are written as null rather than omitted
  std::string_view base64 = {};  ///< string members holding raw bytes, "a, b"
};

/// The protocol name of each type, for errors ("cannot decode sample_response: ..."): a described
/// type's is in its shape, the others declare theirs with TINKER_JSON_TYPE_NAME.
template <class T>
struct type_name {
  static constexpr const char* value = "JSON value";
};

template <class T>
concept described_object = requires(const T* p) {
  { json_shape(p) } -> std::same_as<object_shape>;
};

template <class E>
concept described_enum = std::is_enum_v<E> && requires(const E* p) {
  { json_enum_name(p) } -> std::same_as<const char*>;
};

template <described_object T>
inline constexpr object_shape shape_of = json_shape(static_cast<const T*>(nullptr));

template <described_object T>
struct type_name<T> {
  static constexpr const char* value = shape_of<T>.name;
};

template <class T>
using members_of = boost::describe::describe_members<T, boost::describe::mod_public>;

/// Whether `list` ("a, b, c" or "*") names `name`.
constexpr bool listed(std::string_view list, std::string_view name) {
  if (list == "*") return true;
  for (std::string_view rest = list; !rest.empty();) {
    const auto comma = rest.find(',');
    auto item = rest.substr(0, comma);
    while (item.starts_with(' ')) item.remove_prefix(1);
    if (item == name) return true;
    rest = comma == rest.npos ? std::string_view() : rest.substr(comma + 1);
  }
  return false;
}

/// Whether every name in `list` is a described member of T (a misspelt one would go unnoticed).
template <class T>
constexpr bool names_members(std::string_view list) {
  std::ptrdiff_t found = 0;
  boost::mp11::mp_for_each<members_of<T>>([&](auto d) { found += listed(list, decltype(d)::name); });
  return list == "*" || found == (list.empty() ? 0 : 1 + std::ranges::count(list, ','));
}

constexpr std::string_view wire_key(std::string_view member) { return member == "is_public" ? "public" : member; }

template <described_object T>
void write_object(boost::json::object& o, const T& v) {
  constexpr const object_shape& shape = shape_of<T>;
  o.reserve(boost::mp11::mp_size<members_of<T>>::value + 1);
  if (shape.tag_first && !shape.tag.empty()) o.insert_or_assign(shape.tag_key, shape.tag);
  boost::mp11::mp_for_each<members_of<T>>([&](auto d) {
    using D = decltype(d);
    const auto& m = v.*D::pointer;
    constexpr auto key = wire_key(D::name);
    if constexpr (listed(shape_of<T>.base64, D::name))
      put(o, key, tinker::detail::base64_encode(m));
    else if constexpr (shape_of<T>.nulls && instance_of<std::remove_cvref_t<decltype(m)>, std::optional>)
      o.insert_or_assign(key, m ? to_value(*m, o.storage()) : boost::json::value(nullptr));
    else
      put(o, key, m);
  });
  if (!shape.tag_first && !shape.tag.empty()) o.insert_or_assign(shape.tag_key, shape.tag);
}

template <described_object T>
T read_object(const boost::json::value& jv) {
  static_assert(names_members<T>(shape_of<T>.defaulted) && names_members<T>(shape_of<T>.base64),
                "TINKER_JSON_STRUCT: the shape names a member that is not described");
  object_reader r(jv, shape_of<T>.name);
  T out;
  boost::mp11::mp_for_each<members_of<T>>([&](auto d) {
    using D = decltype(d);
    auto& m = out.*D::pointer;
    using M = std::remove_cvref_t<decltype(m)>;
    constexpr auto key = wire_key(D::name);
    if constexpr (listed(shape_of<T>.base64, D::name)) {
      auto bytes = tinker::detail::base64_decode(r.required<std::string>(key));
      if (!bytes) r.fail(key, "invalid base64");
      m = std::move(*bytes);
    } else if constexpr (instance_of<M, std::optional>) {
      m = r.optional<typename M::value_type>(key);
    } else if constexpr (listed(shape_of<T>.defaulted, D::name)) {
      m = r.optional_or<M>(key, std::move(m));
    } else {
      m = r.required<M>(key);
    }
  });
  return out;
}

}  // namespace tinker::json::detail

namespace tinker {

template <json::detail::described_object T>
void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, const T& v) {
  json::detail::write_object(jv.emplace_object(), v);
}

template <json::detail::described_object T>
T tag_invoke(boost::json::value_to_tag<T>, const boost::json::value& jv) {
  return json::detail::read_object<T>(jv);
}

template <json::detail::described_enum E>
void tag_invoke(boost::json::value_from_tag, boost::json::value& jv, E e) {
  const char* name = boost::describe::enum_to_string(e, nullptr);
  if (!name) throw invalid_argument(std::string("JSON: not a valid ") + json_enum_name(&e));
  jv = name;
}

template <json::detail::described_enum E>
E tag_invoke(boost::json::value_to_tag<E>, const boost::json::value& jv) {
  if (!jv.is_string()) json::detail::type_mismatch("a string", jv);
  const std::string_view s = jv.get_string();
  std::optional<E> known, unknown;
  boost::mp11::mp_for_each<boost::describe::describe_enumerators<E>>([&](auto d) {
    if (s == d.name) known = d.value;
    if (std::string_view(d.name) == "unknown") unknown = d.value;
  });
  if (!known && !unknown) {
    const char* what = json_enum_name(static_cast<const E*>(nullptr));
    throw protocol_error("", "", "unknown " + std::string(what) + " '" + std::string(s) + "'");
  }
  return known ? *known : *unknown;
}

}  // namespace tinker

/// Declares tinker::T (in namespace tinker) a regular protocol object: its members, in wire order,
/// then the rest of its shape as designated initializers (.tag = "create_model", .defaulted = ...).
#define TINKER_JSON_STRUCT(T, members, ...) \
  BOOST_DESCRIBE_STRUCT(T, (), members)     \
  constexpr ::tinker::json::detail::object_shape json_shape(const T*) { return {.name = #T, __VA_ARGS__}; }

/// Declares the protocol name of tinker::T, a type with its own codec (use at global scope).
#define TINKER_JSON_TYPE_NAME(T)                        \
  template <>                                           \
  struct tinker::json::detail::type_name<::tinker::T> { \
    static constexpr const char* value = #T;            \
  };

/// Declares tinker::E (in namespace tinker) an enumeration written as its enumerators' names;
/// `what` names it in errors ("unknown <what> 'x'").
#define TINKER_JSON_ENUM(E, what, ...) \
  BOOST_DESCRIBE_ENUM(E, __VA_ARGS__)  \
  constexpr const char* json_enum_name(const E*) { return what; }
