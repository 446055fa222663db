# Options for the project's own targets (tests, tools, examples, benchmarks). Nothing here leaks
# into consumers of tinker::tinker.
add_library(tinker_project_options INTERFACE)
# GCC before 14 warns about members left out of designated initializers (-Wextra's
# missing-field-initializers), which is how our option structs are meant to be used:
#   co_await training.optim_step({.learning_rate = 1e-4});
target_compile_options(tinker_project_options INTERFACE -Wall -Wextra -Wpedantic -Wno-missing-field-initializers)
# GCC 12 at -O2 reports false "may be used uninitialized" errors inside libstdc++'s own
# std::variant and std::optional move constructors (GCC bugs 80635 and 105593), e.g. for
# model_input::append(chunk). -Wuninitialized (the definite kind) stays on.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  target_compile_options(tinker_project_options INTERFACE -Wno-maybe-uninitialized)
endif()
if(TINKER_WERROR)
  target_compile_options(tinker_project_options INTERFACE -Werror)
endif()

# Asio, its SSL part and Beast compiled once into a static library: every test, tool and benchmark
# links it instead of instantiating the same non-template code in each translation unit.
add_library(tinker_boost_impl STATIC ${PROJECT_SOURCE_DIR}/cmake/boost_impl.cpp)
target_link_libraries(tinker_boost_impl PUBLIC tinker::tinker)
# Our own code is kept free of deprecated Asio names (consumers decide for themselves).
target_compile_definitions(tinker_boost_impl PUBLIC BOOST_ASIO_SEPARATE_COMPILATION BOOST_BEAST_SEPARATE_COMPILATION
                                                    BOOST_ASIO_NO_DEPRECATED)
target_compile_options(tinker_boost_impl PRIVATE -w)
target_link_libraries(tinker_project_options INTERFACE tinker_boost_impl)
