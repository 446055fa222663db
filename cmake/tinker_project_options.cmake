# Options for the project's own targets (tests, tools, examples, benchmarks). Nothing here leaks
# into consumers of tinker::tinker.
add_library(tinker_project_options INTERFACE)
target_compile_options(tinker_project_options INTERFACE -Wall -Wextra -Wpedantic)
if(TINKER_WERROR)
  target_compile_options(tinker_project_options INTERFACE -Werror)
endif()

# Asio, its SSL part and Beast compiled once into a static library: every test, tool and benchmark
# links it instead of instantiating the same non-template code in each translation unit.
add_library(tinker_boost_impl STATIC ${PROJECT_SOURCE_DIR}/cmake/boost_impl.cpp)
target_link_libraries(tinker_boost_impl PUBLIC tinker::tinker)
target_compile_definitions(tinker_boost_impl PUBLIC BOOST_ASIO_SEPARATE_COMPILATION BOOST_BEAST_SEPARATE_COMPILATION)
target_compile_options(tinker_boost_impl PRIVATE -w)
target_link_libraries(tinker_project_options INTERFACE tinker_boost_impl)
