# SPDX-License-Identifier: MIT
# Runs protoc + protoc-gen-c-grpc on PROTO and compares the .grpc-c.{h,c}
# with GOLDEN_DIR (MODE=compare), or copies them there (MODE=update).
#
#   cmake -DPROTOC=... -DPLUGIN=... -DPROTO_DIR=... -DPROTO=x.proto
#         -DGOLDEN_DIR=... -DWORK_DIR=... -DMODE=compare|update -P this

foreach(var PROTOC PLUGIN PROTO_DIR PROTO GOLDEN_DIR WORK_DIR MODE)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "golden_test.cmake: ${var} is not set")
  endif()
endforeach()

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
execute_process(
  COMMAND ${PROTOC} -I${PROTO_DIR} --plugin=protoc-gen-c-grpc=${PLUGIN}
          --c-grpc_out=${WORK_DIR} ${PROTO_DIR}/${PROTO}
  RESULT_VARIABLE rc
  ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "protoc failed (${rc}):\n${err}")
endif()

string(REGEX REPLACE "\\.proto$" "" base "${PROTO}")
set(failed FALSE)
foreach(ext grpc-c.h grpc-c.c)
  set(generated ${WORK_DIR}/${base}.${ext})
  set(golden ${GOLDEN_DIR}/${base}.${ext})
  if(MODE STREQUAL "update")
    execute_process(COMMAND ${CMAKE_COMMAND} -E copy ${generated} ${golden})
    message(STATUS "updated ${golden}")
    continue()
  endif()
  execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files
                  ${golden} ${generated} RESULT_VARIABLE differ)
  if(NOT differ EQUAL 0)
    set(failed TRUE)
    find_program(DIFF diff)
    if(DIFF)
      execute_process(COMMAND ${DIFF} -u ${golden} ${generated})
    endif()
    message(SEND_ERROR "${generated} differs from ${golden}")
  endif()
endforeach()
if(failed)
  message(FATAL_ERROR "generated code changed; if that is intended, run "
                      "the plugin_golden_update target and commit the result")
endif()
