# ctest driver for the packaging tests:
#   MODE=install             : install the build tree to a prefix, configure + build + run the consumer with find_package
#   MODE=subdir              : configure + build + run the consumer with add_subdirectory(<source>)
#   MODE=fetchcontent        : pack the source tree into a local .tar.gz (as a release archive would be),
#                              then the consumer gets it with FetchContent_Declare(URL file://... URL_HASH ...)
#   MODE=fetchcontent_source : the consumer gets the tree with FetchContent_Declare(SOURCE_DIR <source>)
# No mode touches the network: FetchContent only ever sees a local file or directory.
foreach(var MODE SOURCE_DIR BUILD_DIR WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_consumer.cmake needs -D${var}=...")
  endif()
endforeach()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

set(consumer_source "${SOURCE_DIR}/tests/packaging/consumer")
if(MODE STREQUAL "install")
  run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix" --component tinker_dev)
  run(${CMAKE_COMMAND} -S "${consumer_source}" -B "${WORK_DIR}/build"
      "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix" -DCMAKE_BUILD_TYPE=Release -DTINKER_CONSUMER_COMPILED=ON)
elseif(MODE STREQUAL "subdir")
  run(${CMAKE_COMMAND} -S "${consumer_source}" -B "${WORK_DIR}/build"
      "-DTINKER_SOURCE_DIR=${SOURCE_DIR}" -DCMAKE_BUILD_TYPE=Release)
elseif(MODE STREQUAL "fetchcontent")
  # What a release archive must hold for a consumer build (tests, tools, examples and benchmarks
  # are off there). Packing only these proves the build does not reach outside them (no .git, no
  # build tree). One top-level directory, as GitHub archives have; FetchContent strips it.
  set(stage "${WORK_DIR}/stage/tinker-cpp")
  file(MAKE_DIRECTORY "${stage}")
  foreach(entry CMakeLists.txt cmake include proto README.md LICENSE)
    if(EXISTS "${SOURCE_DIR}/${entry}")
      file(COPY "${SOURCE_DIR}/${entry}" DESTINATION "${stage}")
    endif()
  endforeach()
  set(archive "${WORK_DIR}/tinker-cpp.tar.gz")
  execute_process(COMMAND ${CMAKE_COMMAND} -E tar czf "${archive}" --format=gnutar tinker-cpp
                  WORKING_DIRECTORY "${WORK_DIR}/stage" RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "cannot pack ${stage}: ${err}")
  endif()
  file(SHA256 "${archive}" archive_sha256)
  run(${CMAKE_COMMAND} -S "${consumer_source}" -B "${WORK_DIR}/build"
      "-DTINKER_FETCH_URL=file://${archive}" "-DTINKER_FETCH_URL_HASH=SHA256=${archive_sha256}"
      # Where FetchContent keeps its copy: inside the work dir, not the consumer's default _deps.
      "-DFETCHCONTENT_BASE_DIR=${WORK_DIR}/deps" -DCMAKE_BUILD_TYPE=Release)
  if(NOT EXISTS "${WORK_DIR}/deps/tinker-src/include/tinker/tinker.hpp")
    message(FATAL_ERROR "FetchContent did not unpack the archive into ${WORK_DIR}/deps/tinker-src")
  endif()
elseif(MODE STREQUAL "fetchcontent_source")
  run(${CMAKE_COMMAND} -S "${consumer_source}" -B "${WORK_DIR}/build"
      "-DTINKER_FETCH_SOURCE_DIR=${SOURCE_DIR}" "-DFETCHCONTENT_BASE_DIR=${WORK_DIR}/deps" -DCMAKE_BUILD_TYPE=Release)
else()
  message(FATAL_ERROR "unknown MODE '${MODE}': expected install, subdir, fetchcontent or fetchcontent_source")
endif()
run(${CMAKE_COMMAND} --build "${WORK_DIR}/build" -j2)
run("${WORK_DIR}/build/consumer")
if(NOT last_output MATCHES "\"adam_params\":\\{\"learning_rate\":0.0001")
  message(FATAL_ERROR "unexpected consumer output: ${last_output}")
endif()
if(MODE STREQUAL "install")
  run("${WORK_DIR}/build/compiled_consumer")
  if(NOT last_output MATCHES "compiled consumer: [1-9]")
    message(FATAL_ERROR "unexpected compiled consumer output: ${last_output}")
  endif()
endif()
message(STATUS "consumer (${MODE}) built and ran: ${last_output}")
