// The local engine's implementation, compiled once: include this in exactly one translation unit
// of a program built with TINKER_SEPARATE_COMPILATION defined (see tinker/detail/config.hpp).
#pragma once

#include <tinker/detail/config.hpp>

#ifndef TINKER_SEPARATE_COMPILATION
#error "<tinker/local/src.hpp> is for programs built with TINKER_SEPARATE_COMPILATION defined"
#endif

#include <tinker/local/impl/engine.ipp>
#include <tinker/local/impl/engine_test_hook.ipp>
