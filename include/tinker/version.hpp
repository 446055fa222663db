// Version of tinker-cpp and the protocol generation it speaks.
#pragma once

#define TINKER_VERSION_MAJOR 0
#define TINKER_VERSION_MINOR 1
#define TINKER_VERSION_PATCH 0

namespace tinker {

/// Version of this library.
inline constexpr const char* library_version = "0.1.0";

/// The official Python SDK version whose wire protocol this library speaks. Servers feature-gate on
/// the `sdk_version` a client reports (client/config, create_session), so we report the protocol
/// generation we implement rather than our own version.
inline constexpr const char* protocol_sdk_version = "0.25.0";

}  // namespace tinker
