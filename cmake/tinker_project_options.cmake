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
# It also reports -Wmismatched-new-delete for coroutine frames whose promise has its own operator
# new/delete (Asio's awaitable frames; GCC bug 109224), depending on what gets inlined.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  target_compile_options(tinker_project_options INTERFACE -Wno-maybe-uninitialized -Wno-mismatched-new-delete)
endif()
if(TINKER_WERROR)
  target_compile_options(tinker_project_options INTERFACE -Werror)
endif()

# The library's own compiled targets get the project's warnings too. (BOOST_ASIO_NO_DEPRECATED,
# which keeps our code free of deprecated Asio names, changes Asio's classes: it must be the same
# in every translation unit of a program, so it is not set here but in the header check, which
# compiles every public header with it.)
foreach(target tinker_client_compiled tinker_local_compiled)
  target_compile_options(${target} PRIVATE $<TARGET_PROPERTY:tinker_project_options,INTERFACE_COMPILE_OPTIONS>)
endforeach()
