# SPDX-License-Identifier: MIT
# Checks protoc-gen-c-grpc's parameter handling:
#   no_client   drops the stubs, keeps the servicer; the result compiles
#   no_server   drops the servicer, keeps the stubs; the result compiles
#   bogus       fails with an error that names the option
# and that method names whose C names clash with ours are refused.
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
expect_text(${WORK_DIR}/no_client TRUE "plugin_test__kinds__bidi__recv(")
expect_text(${WORK_DIR}/no_client TRUE "plugin_test__kinds__server_stream__send(")
expect_text(${WORK_DIR}/no_client FALSE "plugin_test__kinds__unary__call(")
expect_text(${WORK_DIR}/no_client FALSE "plugin_test__kinds__bidi__open(")
expect_text(${WORK_DIR}/no_client FALSE "plugin_test__kinds__server_stream__read(")
expect_text(${WORK_DIR}/no_client FALSE "plugin_test__kinds__client_stream__finish(")
expect_compiles(${WORK_DIR}/no_client)

run_plugin(no_server ${WORK_DIR}/no_server rc out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "no_server failed:\n${out}")
endif()
expect_text(${WORK_DIR}/no_server FALSE "PluginTest__Kinds_Servicer")
expect_text(${WORK_DIR}/no_server TRUE "plugin_test__kinds__unary__call(")
expect_text(${WORK_DIR}/no_server TRUE "plugin_test__kinds__service__desc;")
expect_text(${WORK_DIR}/no_server TRUE "plugin_test__kinds__bidi__open_async(")
expect_text(${WORK_DIR}/no_server TRUE "plugin_test__kinds__client_stream__finish(")
expect_text(${WORK_DIR}/no_server FALSE "plugin_test__kinds__bidi__recv(")
expect_text(${WORK_DIR}/no_server FALSE "plugin_test__kinds__server_stream__send(")
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

# Method names that make protoc-c emit one of our names: refused, with an
# error that names the symbol (an empty symbol: accepted).
function(expect_clash param file symbol)
  set(out_dir ${WORK_DIR}/clash)
  file(REMOVE_RECURSE ${out_dir})
  file(MAKE_DIRECTORY ${out_dir})
  set(out ${out_dir})
  if(param)
    set(out ${param}:${out_dir})
  endif()
  execute_process(
    COMMAND ${PROTOC} -I${BAD_DIR} --plugin=protoc-gen-c-grpc=${PLUGIN}
            --c-grpc_out=${out} ${BAD_DIR}/${file}
    RESULT_VARIABLE rc
    ERROR_VARIABLE err)
  if(NOT symbol)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "${file} (${param}) was refused:\n${err}")
    endif()
    return()
  endif()
  if(rc EQUAL 0)
    message(FATAL_ERROR "${file} was accepted")
  endif()
  string(FIND "${err}" "\"${symbol}\"" pos)
  if(pos EQUAL -1)
    message(FATAL_ERROR "the clash error for ${file} does not name "
                        "${symbol}:\n${err}")
  endif()
  message(STATUS "clash rejected: ${err}")
endfunction()

expect_clash("" name_clash.proto plugin_bad__s__servicer__register)
expect_clash("" name_clash_stream.proto plugin_bad__s2__chat__open_async)
expect_clash("" name_clash_recv.proto plugin_bad__s3__feed__recv)
# Without the server side there is no __recv to clash with.
expect_clash(no_server name_clash_recv.proto "")
