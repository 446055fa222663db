// How the library is compiled. Two modes, chosen by the program as a whole:
//
// * Header-only (the default): every function is defined in the headers (inline), and each public
//   header includes its implementation files (impl/*.ipp) at its bottom. Nothing to link but the
//   dependencies.
// * Separate compilation: define TINKER_SEPARATE_COMPILATION in every translation unit of the
//   program, and compile the implementation once: include <tinker/src.hpp> (codecs and clients)
//   and, if the program embeds the engine, <tinker/local/src.hpp> in exactly one translation
//   unit each, or link the CMake targets tinker::client_compiled / tinker::local_compiled, which
//   do both. Public headers then declare, and user translation units compile much faster.
//
// Non-template definitions in impl/*.ipp are written `TINKER_DECL`: inline in the first mode,
// ordinary (defined once) in the second.
#pragma once

#ifdef TINKER_SEPARATE_COMPILATION
#define TINKER_DECL
#else
#define TINKER_HEADER_ONLY 1
#define TINKER_DECL inline
#endif
