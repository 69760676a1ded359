// SPDX-License-Identifier: MIT
//
// protoc-gen-c-grpc: protoc runs it for --c-grpc_out=DIR.

#include <google/protobuf/compiler/plugin.h>

#include "cgrpc_generator.h"

int main(int argc, char* argv[]) {
  cgrpc::plugin::Generator generator;
  return google::protobuf::compiler::PluginMain(argc, argv, &generator);
}
