# SPDX-License-Identifier: MIT
# Checks protoc-gen-c-grpc's parameter handling:
#   no_client   drops the stubs, keeps the servicer; the result compiles
#   no_server   drops the servicer, keeps the stubs; the result compiles
#   bogus       fails with an error that names the option
# and that a method name whose C name clashes with ours is refused.
#
#   cmake -DPROTOC=... -DPROTOC_GEN_C=... -DPLUGIN=... -DPROTO_DIR=...
#         -DBAD_DIR=... -DWORK_DIR=... -DCC=... -DCFLAGS=... -P this

set(proto plugin_pkg.proto)

function(run_plugin param out_dir result_var output_var)
  file(REMOVE_RECURSE ${out_dir})
  file(MAKE_DIRECTORY ${out_dir})
  set(out ${out_dir})
  if(param)
    set(out ${param}:${out_dir})
  endif()
  execute_process(
    COMMAND ${PROTOC} -I${PROTO_DIR}
            --plugin=protoc-gen-c=${PROTOC_GEN_C}
            --plugin=protoc-gen-c-grpc=${PLUGIN}
            --c_out=${out_dir} --c-grpc_out=${out} ${PROTO_DIR}/${proto}
    RESULT_VARIABLE rc
    OUTPUT_VARIABLE stdout
    ERROR_VARIABLE stderr)
  set(${result_var} ${rc} PARENT_SCOPE)
  set(${output_var} "${stdout}${stderr}" PARENT_SCOPE)
endfunction()

function(expect_compiles dir)
  execute_process(
    COMMAND ${CC} ${CFLAGS} -I${dir} -fsyntax-only ${dir}/plugin_pkg.grpc-c.c
    RESULT_VARIABLE rc
    ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${dir}/plugin_pkg.grpc-c.c does not compile:\n${err}")
  endif()
endfunction()

function(expect_text dir want pattern)
  file(READ ${dir}/plugin_pkg.grpc-c.h header)
  string(FIND "${header}" "${pattern}" pos)
  if(want AND pos EQUAL -1)
    message(FATAL_ERROR "${dir}: \"${pattern}\" is missing")
  elseif(NOT want AND NOT pos EQUAL -1)
    message(FATAL_ERROR "${dir}: \"${pattern}\" should not be there")
  endif()
endfunction()

run_plugin(no_client ${WORK_DIR}/no_client rc out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "no_client failed:\n${out}")
endif()
expect_text(${WORK_DIR}/no_client TRUE "plugin_test__kinds__servicer__register(")
expect_text(${WORK_DIR}/no_client FALSE "plugin_test__kinds__unary__call(")
expect_text(${WORK_DIR}/no_client FALSE "plugin_test__kinds__bidi__open(")
expect_compiles(${WORK_DIR}/no_client)

run_plugin(no_server ${WORK_DIR}/no_server rc out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "no_server failed:\n${out}")
endif()
expect_text(${WORK_DIR}/no_server FALSE "PluginTest__Kinds_Servicer")
expect_text(${WORK_DIR}/no_server TRUE "plugin_test__kinds__unary__call(")
expect_text(${WORK_DIR}/no_server TRUE "plugin_test__kinds__service__desc;")
expect_compiles(${WORK_DIR}/no_server)

foreach(bad "bogus" "no_client=yes")
  run_plugin("${bad}" ${WORK_DIR}/bad rc out)
  if(rc EQUAL 0)
    message(FATAL_ERROR "option \"${bad}\" was accepted")
  endif()
  string(REGEX REPLACE "=.*" "" key "${bad}")
  string(FIND "${out}" "\"${key}\"" pos)
  if(pos EQUAL -1)
    message(FATAL_ERROR "error for \"${bad}\" does not name it:\n${out}")
  endif()
  message(STATUS "\"${bad}\" rejected: ${out}")
endforeach()

# A method name that makes protoc-c emit our register function's name.
file(REMOVE_RECURSE ${WORK_DIR}/clash)
file(MAKE_DIRECTORY ${WORK_DIR}/clash)
execute_process(
  COMMAND ${PROTOC} -I${BAD_DIR} --plugin=protoc-gen-c-grpc=${PLUGIN}
          --c-grpc_out=${WORK_DIR}/clash ${BAD_DIR}/name_clash.proto
  RESULT_VARIABLE rc
  ERROR_VARIABLE err)
if(rc EQUAL 0)
  message(FATAL_ERROR "name_clash.proto was accepted")
endif()
string(FIND "${err}" "\"plugin_bad__s__servicer__register\"" pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "the clash error does not name the symbol:\n${err}")
endif()
message(STATUS "clash rejected: ${err}")
