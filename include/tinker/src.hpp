// The client library's implementation, for separate compilation: include this header in exactly
// one translation unit of a program built with TINKER_SEPARATE_COMPILATION defined everywhere (or
// link the CMake target tinker::client_compiled, which does). See detail/config.hpp.
#pragma once

#ifndef TINKER_SEPARATE_COMPILATION
#error "<tinker/src.hpp> is for separate compilation: define TINKER_SEPARATE_COMPILATION for every translation unit"
#endif

#include <tinker/client/impl/api_future.ipp>
#include <tinker/client/impl/download.ipp>
#include <tinker/client/impl/rest_client.ipp>
#include <tinker/client/impl/sampling_client.ipp>
#include <tinker/client/impl/service_client.ipp>
#include <tinker/client/impl/training_client.ipp>
