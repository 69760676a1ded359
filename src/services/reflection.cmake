# SPDX-License-Identifier: MIT
# Server reflection (services/reflection.c) needs, generated at build time
# from protos/grpc/reflection/: protobuf-c's code for the v1 messages (v1alpha
# has the same ones under another package name), and the serialized
# descriptors of both protos, which the service serves for itself.
# Included from src/CMakeLists.txt once the cgrpc and cgrpc_static targets
# exist.

find_program(CGRPC_PROTOC protoc)
find_program(CGRPC_PROTOC_GEN_C protoc-gen-c)
foreach(tool CGRPC_PROTOC CGRPC_PROTOC_GEN_C)
  if(NOT ${tool})
    message(FATAL_ERROR "${tool} not found: server reflection needs protoc "
      "and protobuf-c's protoc-gen-c (protobuf-compiler, protobuf-c-compiler)")
  endif()
endforeach()

set(refl_protos ${PROJECT_SOURCE_DIR}/protos)
set(refl_v1 grpc/reflection/v1/reflection.proto)
set(refl_v1alpha grpc/reflection/v1alpha/reflection.proto)
set(refl_gen ${CMAKE_CURRENT_BINARY_DIR}/gen)
set(refl_pb_c ${refl_gen}/grpc/reflection/v1/reflection.pb-c.c)
set(refl_files_c ${refl_gen}/services/reflection_files.c)

add_custom_command(
  OUTPUT ${refl_pb_c} ${refl_gen}/grpc/reflection/v1/reflection.pb-c.h
  COMMAND ${CMAKE_COMMAND} -E make_directory ${refl_gen}
  COMMAND ${CGRPC_PROTOC} -I${refl_protos}
    --plugin=protoc-gen-c=${CGRPC_PROTOC_GEN_C} --c_out=${refl_gen}
    ${refl_protos}/${refl_v1}
  DEPENDS ${refl_protos}/${refl_v1}
  COMMENT "protoc ${refl_v1} (protobuf-c)"
  VERBATIM)
add_custom_command(
  OUTPUT ${refl_files_c}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${refl_gen}/services
  COMMAND ${CGRPC_PROTOC} -I${refl_protos}
    --descriptor_set_out=${refl_gen}/services/reflection.pb
    ${refl_protos}/${refl_v1} ${refl_protos}/${refl_v1alpha}
  COMMAND ${CMAKE_COMMAND}
    -DINPUT=${refl_gen}/services/reflection.pb -DOUTPUT=${refl_files_c}
    -DSYMBOLS=cgrpc__reflection_v1_file,cgrpc__reflection_v1alpha_file
    -DNAMES=${refl_v1},${refl_v1alpha}
    -P ${CMAKE_CURRENT_SOURCE_DIR}/services/embed_files.cmake
  DEPENDS ${refl_protos}/${refl_v1} ${refl_protos}/${refl_v1alpha}
          ${CMAKE_CURRENT_SOURCE_DIR}/services/embed_files.cmake
  COMMENT "Embedding the reflection protos' descriptors"
  VERBATIM)
# One target runs the commands; both libraries wait for it rather than run
# them twice in parallel.
add_custom_target(cgrpc_reflection_generate DEPENDS ${refl_pb_c} ${refl_files_c})

foreach(lib cgrpc cgrpc_static)
  target_sources(${lib} PRIVATE ${refl_pb_c} ${refl_files_c})
  target_include_directories(${lib} PRIVATE ${refl_gen})
  add_dependencies(${lib} cgrpc_reflection_generate)
endforeach()
