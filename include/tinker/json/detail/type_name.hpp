// The protocol name of each type, used in decode errors ("cannot decode sample_response: ...").
#pragma once

namespace tinker::json::detail {

template <class T>
struct type_name {
  static constexpr const char* value = "JSON value";
};

}  // namespace tinker::json::detail

/// Declares the protocol name of tinker::T (use at global scope).
#define TINKER_JSON_TYPE_NAME(T)                        \
  template <>                                           \
  struct tinker::json::detail::type_name<::tinker::T> { \
    static constexpr const char* value = #T;            \
  };
