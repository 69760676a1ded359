#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Usage: install_consumer.sh BUILD_DIR SOURCE_DIR WORK_DIR C_COMPILER GENERATOR
#
# Installs BUILD_DIR into WORK_DIR/prefix, then builds and runs
# tests/install/consumer against that prefix through the CMake package and
# through pkg-config.  WORK_DIR is wiped first and left behind for debugging.
set -euo pipefail

if [[ $# -ne 5 ]]; then
  echo "usage: $0 BUILD_DIR SOURCE_DIR WORK_DIR C_COMPILER GENERATOR" >&2
  exit 2
fi
build_dir=$1
source_dir=$2
work_dir=$3
cc=$4
generator=$5

prefix=$work_dir/prefix
consumer_src=$source_dir/tests/install/consumer
consumer_build=$work_dir/consumer-build

step() { printf '== %s\n' "$*"; }
fail() { printf 'install_consumer: FAIL: %s\n' "$*" >&2; exit 1; }

rm -rf "$work_dir"
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd -P)

step "cmake --install $build_dir --prefix $prefix"
cmake --install "$build_dir" --prefix "$prefix"

step "checking the installed files"
config=$(find "$prefix" -path '*/cmake/cgrpc/cgrpcConfig.cmake' -print -quit)
[[ -n $config ]] || fail "no cgrpcConfig.cmake under $prefix"
cmakedir=$(dirname "$config")
libdir=$(cd "$cmakedir/../.." && pwd -P)
for f in \
    "$prefix/include/cgrpc/cgrpc.h" \
    "$prefix/include/cgrpc/version.h" \
    "$cmakedir/cgrpcConfigVersion.cmake" \
    "$cmakedir/cgrpcTargets.cmake" \
    "$cmakedir/CgrpcGenerate.cmake" \
    "$libdir/pkgconfig/cgrpc.pc" \
    "$libdir/libcgrpc.a"; do
  [[ -f $f ]] || fail "missing $f"
done
compgen -G "$libdir/libcgrpc.so*" >/dev/null || fail "missing $libdir/libcgrpc.so"
[[ -x $prefix/bin/protoc-gen-c-grpc ]] ||
  fail "missing $prefix/bin/protoc-gen-c-grpc (plugin/CMakeLists.txt installs it)"

step "consumer: find_package(cgrpc) + cgrpc_generate()"
cmake -S "$consumer_src" -B "$consumer_build" -G "$generator" \
  -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON \
  -DCGRPC_EXPECT_PREFIX="$prefix" \
  -DCGRPC_PROTO_DIR="$source_dir/protos"
cmake --build "$consumer_build" -j2
"$consumer_build/consumer"
"$consumer_build/consumer_static"

step "consumer: pkg-config --cflags --libs cgrpc"
export PKG_CONFIG_PATH=$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
pc_prefix=$(pkg-config --variable=prefix cgrpc)
[[ $pc_prefix == "$prefix" ]] ||
  fail "cgrpc.pc has prefix=$pc_prefix, expected $prefix"
echo "cgrpc $(pkg-config --modversion cgrpc): $(pkg-config --cflags --libs cgrpc)"
static_libs=$(pkg-config --static --libs cgrpc)
for lib in -lcgrpc -lprotobuf-c -lnghttp2 -lcares -ljansson -lz -lpthread -ldl; do
  [[ " $static_libs " == *" $lib "* ]] ||
    fail "pkg-config --static --libs cgrpc lacks $lib: $static_libs"
done
# OpenSSL is loaded at run time (src/io/ossl.c), never linked.
[[ " $static_libs " != *" -lssl "* ]] ||
  fail "pkg-config --static --libs cgrpc links OpenSSL: $static_libs"
# shellcheck disable=SC2046 # pkg-config output is meant to be split
"$cc" -std=c11 -Wall -Wextra -Werror \
  -o "$work_dir/pkgconfig_consumer" "$consumer_src/pkgconfig_main.c" \
  $(pkg-config --cflags --libs cgrpc)
LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
  "$work_dir/pkgconfig_consumer"

step "install_consumer: OK"
