# SPDX-License-Identifier: MIT
#
# Install rules: public headers, the shared and static libraries with an
# exported target set (cgrpc::cgrpc, cgrpc::cgrpc_static), a CMake package
# (cgrpcConfig.cmake + cgrpcConfigVersion.cmake + CgrpcGenerate.cmake) and a
# pkg-config file.  protoc-gen-c-grpc is installed by plugin/CMakeLists.txt.
#
# Consumers:
#   find_package(cgrpc REQUIRED)
#   cgrpc_generate(GEN_SRCS PROTOS foo.proto)
#   add_executable(app main.c ${GEN_SRCS})
#   target_include_directories(app PRIVATE ${CMAKE_CURRENT_BINARY_DIR}/gen)
#   target_link_libraries(app PRIVATE cgrpc::cgrpc)
# or: cc app.c $(pkg-config --cflags --libs cgrpc)

include(CMakePackageConfigHelpers)

set(CGRPC_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/cgrpc
  CACHE STRING "Where cgrpcConfig.cmake is installed, relative to the prefix")
set(CGRPC_INSTALL_PKGCONFIGDIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig
  CACHE STRING "Where cgrpc.pc is installed, relative to the prefix")

# ---- headers ---------------------------------------------------------------
file(GLOB CGRPC_PUBLIC_HEADERS CONFIGURE_DEPENDS
  ${PROJECT_SOURCE_DIR}/include/cgrpc/*.h)
install(FILES ${CGRPC_PUBLIC_HEADERS}
              ${PROJECT_BINARY_DIR}/include/cgrpc/version.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/cgrpc
  COMPONENT cgrpc_dev)

# ---- libraries and exported targets ---------------------------------------
install(TARGETS cgrpc cgrpc_static
  EXPORT cgrpcTargets
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT cgrpc_runtime
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT cgrpc_runtime
          NAMELINK_COMPONENT cgrpc_dev
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT cgrpc_dev
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

install(EXPORT cgrpcTargets
  NAMESPACE cgrpc::
  FILE cgrpcTargets.cmake
  DESTINATION ${CGRPC_INSTALL_CMAKEDIR}
  COMPONENT cgrpc_dev)

# ---- CMake package ---------------------------------------------------------
# PATH_VARS makes the bin dir relative to the installed config, so the
# package stays relocatable (cmake --install --prefix, DESTDIR, tarballs).
configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/cgrpcConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cgrpcConfig.cmake
  INSTALL_DESTINATION ${CGRPC_INSTALL_CMAKEDIR}
  PATH_VARS CMAKE_INSTALL_BINDIR)

# Before 1.0 a minor release may break the API, so only 0.N.x matches 0.N.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(cgrpc_compat SameMinorVersion)
else()
  set(cgrpc_compat SameMajorVersion)
endif()
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/cgrpcConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY ${cgrpc_compat})

install(FILES
    ${PROJECT_BINARY_DIR}/cgrpcConfig.cmake
    ${PROJECT_BINARY_DIR}/cgrpcConfigVersion.cmake
    ${PROJECT_SOURCE_DIR}/cmake/CgrpcGenerate.cmake
  DESTINATION ${CGRPC_INSTALL_CMAKEDIR}
  COMPONENT cgrpc_dev)

# ---- pkg-config ------------------------------------------------------------
# The prefix is only final at install time (cmake --install --prefix may
# differ from CMAKE_INSTALL_PREFIX), so cgrpc.pc is written then.
foreach(dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${dir}}")
    set(CGRPC_PC_${dir} "${CMAKE_INSTALL_${dir}}")
  else()
    set(CGRPC_PC_${dir} "\${prefix}/${CMAKE_INSTALL_${dir}}")
  endif()
endforeach()
set(CGRPC_PC_STAGED ${PROJECT_BINARY_DIR}/pkgconfig/cgrpc.pc)
install(CODE "
  set(CGRPC_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  set(CGRPC_PC_LIBDIR [[${CGRPC_PC_LIBDIR}]])
  set(CGRPC_PC_INCLUDEDIR [[${CGRPC_PC_INCLUDEDIR}]])
  set(PROJECT_VERSION [[${PROJECT_VERSION}]])
  configure_file([[${PROJECT_SOURCE_DIR}/cmake/cgrpc.pc.in]]
                 [[${CGRPC_PC_STAGED}]] @ONLY)
" COMPONENT cgrpc_dev)
install(FILES ${CGRPC_PC_STAGED}
  DESTINATION ${CGRPC_INSTALL_PKGCONFIGDIR}
  COMPONENT cgrpc_dev)
