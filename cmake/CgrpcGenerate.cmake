# SPDX-License-Identifier: MIT
#
# cgrpc_generate(<var>
#                PROTOS a.proto [b.proto ...]
#                [IMPORT_DIRS dir ...]
#                [OUT_DIR dir])
#
# Runs protoc with protobuf-c's protoc-gen-c (--c_out) and protoc-gen-c-grpc
# (--c-grpc_out) on each .proto file and appends the generated .c files to
# <var>; the .h files sit beside them in OUT_DIR (default
# ${CMAKE_CURRENT_BINARY_DIR}/gen), which callers add to their include path.
# The first IMPORT_DIR (default: the first proto's folder) is the root that
# output paths are relative to, as with protoc's -I.
#
# In the source tree CGRPC_PLUGIN_TARGET names the plugin target.  Installed,
# this file sits in <prefix>/<libdir>/cmake/cgrpc/ and cgrpcConfig.cmake sets
# CGRPC_INSTALL_BINDIR to <prefix>/bin, which is searched before PATH (libdir
# may be lib/<multiarch>, so a fixed ../../../bin is only the fallback).
# protoc and protoc-gen-c are needed only when cgrpc_generate() is called, so
# a consumer that links prebuilt stubs does not need them.

find_program(CGRPC_PROTOC protoc)
find_program(CGRPC_PROTOC_GEN_C protoc-gen-c)
if(NOT TARGET "${CGRPC_PLUGIN_TARGET}")
  find_program(CGRPC_PROTOC_GEN_C_GRPC protoc-gen-c-grpc
    HINTS ${CGRPC_INSTALL_BINDIR} ${CMAKE_CURRENT_LIST_DIR}/../../../bin)
endif()

function(cgrpc_generate var)
  cmake_parse_arguments(ARG "" "OUT_DIR" "PROTOS;IMPORT_DIRS" ${ARGN})
  if(NOT ARG_PROTOS)
    message(FATAL_ERROR "cgrpc_generate: PROTOS is required")
  endif()
  foreach(tool CGRPC_PROTOC CGRPC_PROTOC_GEN_C)
    if(NOT ${tool})
      message(FATAL_ERROR "cgrpc_generate: ${tool} not found (install "
        "protobuf-compiler and protobuf-c-compiler, or set ${tool})")
    endif()
  endforeach()
  if(NOT ARG_OUT_DIR)
    set(ARG_OUT_DIR ${CMAKE_CURRENT_BINARY_DIR}/gen)
  endif()
  if(NOT ARG_IMPORT_DIRS)
    list(GET ARG_PROTOS 0 first)
    get_filename_component(first "${first}" ABSOLUTE)
    get_filename_component(root "${first}" DIRECTORY)
    set(ARG_IMPORT_DIRS ${root})
  endif()
  list(GET ARG_IMPORT_DIRS 0 root)
  get_filename_component(root "${root}" ABSOLUTE)
  set(include_flags "")
  foreach(dir ${ARG_IMPORT_DIRS})
    get_filename_component(dir "${dir}" ABSOLUTE)
    list(APPEND include_flags -I${dir})
  endforeach()
  if(TARGET "${CGRPC_PLUGIN_TARGET}")
    set(plugin $<TARGET_FILE:${CGRPC_PLUGIN_TARGET}>)
    set(plugin_dep ${CGRPC_PLUGIN_TARGET})
  elseif(CGRPC_PROTOC_GEN_C_GRPC)
    set(plugin ${CGRPC_PROTOC_GEN_C_GRPC})
    set(plugin_dep ${CGRPC_PROTOC_GEN_C_GRPC})
  else()
    message(FATAL_ERROR "cgrpc_generate: protoc-gen-c-grpc not found")
  endif()
  file(MAKE_DIRECTORY ${ARG_OUT_DIR})
  set(srcs ${${var}})
  foreach(proto ${ARG_PROTOS})
    get_filename_component(abs "${proto}" ABSOLUTE)
    file(RELATIVE_PATH rel "${root}" "${abs}")
    string(REGEX REPLACE "\\.proto$" "" base "${rel}")
    set(outs
      ${ARG_OUT_DIR}/${base}.pb-c.c ${ARG_OUT_DIR}/${base}.pb-c.h
      ${ARG_OUT_DIR}/${base}.grpc-c.c ${ARG_OUT_DIR}/${base}.grpc-c.h)
    add_custom_command(
      OUTPUT ${outs}
      COMMAND ${CGRPC_PROTOC} ${include_flags}
        --plugin=protoc-gen-c=${CGRPC_PROTOC_GEN_C}
        --plugin=protoc-gen-c-grpc=${plugin}
        --c_out=${ARG_OUT_DIR} --c-grpc_out=${ARG_OUT_DIR} ${abs}
      DEPENDS ${abs} ${plugin_dep}
      COMMENT "protoc ${rel} (protobuf-c + cgrpc)"
      VERBATIM)
    list(APPEND srcs ${ARG_OUT_DIR}/${base}.pb-c.c
                     ${ARG_OUT_DIR}/${base}.grpc-c.c)
  endforeach()
  set(${var} ${srcs} PARENT_SCOPE)
endfunction()
