# SPDX-License-Identifier: MIT
# The health service (services/health.c) needs, generated at build time
# from protos/grpc/health/v1/health.proto: protobuf-c's code for its two
# messages, and the file's serialized descriptor, which reflection serves
# for it.  Included from src/CMakeLists.txt after services/reflection.cmake
# (which finds protoc and protoc-gen-c).

set(health_protos ${PROJECT_SOURCE_DIR}/protos)
set(health_proto grpc/health/v1/health.proto)
set(health_gen ${CMAKE_CURRENT_BINARY_DIR}/gen)
set(health_pb_c ${health_gen}/grpc/health/v1/health.pb-c.c)
set(health_files_c ${health_gen}/services/health_files.c)

add_custom_command(
  OUTPUT ${health_pb_c} ${health_gen}/grpc/health/v1/health.pb-c.h
  COMMAND ${CMAKE_COMMAND} -E make_directory ${health_gen}
  COMMAND ${CGRPC_PROTOC} -I${health_protos}
    --plugin=protoc-gen-c=${CGRPC_PROTOC_GEN_C} --c_out=${health_gen}
    ${health_protos}/${health_proto}
  DEPENDS ${health_protos}/${health_proto}
  COMMENT "protoc ${health_proto} (protobuf-c)"
  VERBATIM)
add_custom_command(
  OUTPUT ${health_files_c}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${health_gen}/services
  COMMAND ${CGRPC_PROTOC} -I${health_protos}
    --descriptor_set_out=${health_gen}/services/health.pb
    ${health_protos}/${health_proto}
  COMMAND ${CMAKE_COMMAND}
    -DINPUT=${health_gen}/services/health.pb -DOUTPUT=${health_files_c}
    -DSYMBOLS=cgrpc__health_v1_file -DNAMES=${health_proto}
    -DHEADER=services/health.h
    -P ${CMAKE_CURRENT_SOURCE_DIR}/services/embed_files.cmake
  DEPENDS ${health_protos}/${health_proto}
          ${CMAKE_CURRENT_SOURCE_DIR}/services/embed_files.cmake
  COMMENT "Embedding the health proto's descriptor"
  VERBATIM)
add_custom_target(cgrpc_health_generate DEPENDS ${health_pb_c} ${health_files_c})

foreach(lib cgrpc cgrpc_static)
  target_sources(${lib} PRIVATE ${health_pb_c} ${health_files_c})
  target_include_directories(${lib} PRIVATE ${health_gen})
  add_dependencies(${lib} cgrpc_health_generate)
endforeach()
