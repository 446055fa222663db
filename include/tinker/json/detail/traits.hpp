// Type traits shared by the JSON readers and writers.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace tinker::json::detail {

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
template <class T>
struct is_vector : std::false_type {};
template <class T, class A>
struct is_vector<std::vector<T, A>> : std::true_type {};
template <class T>
struct is_string_map : std::false_type {};
template <class T, class C, class A>
struct is_string_map<std::map<std::string, T, C, A>> : std::true_type {};

}  // namespace tinker::json::detail
