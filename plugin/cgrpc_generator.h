// SPDX-License-Identifier: MIT
//
// protoc-gen-c-grpc's CodeGenerator: parses the plugin parameter and writes
// <name>.grpc-c.h and <name>.grpc-c.c for each .proto file, beside the
// <name>.pb-c.h and <name>.pb-c.c that protobuf-c's protoc-gen-c writes.

#ifndef CGRPC_PLUGIN_CGRPC_GENERATOR_H_
#define CGRPC_PLUGIN_CGRPC_GENERATOR_H_

#include <google/protobuf/compiler/code_generator.h>

#include <cstdint>
#include <string>

namespace cgrpc {
namespace plugin {

// The oldest libcgrpc whose public API the generated code works with; the
// generated header refuses to compile against anything older.  Raise it
// only when the generated code starts to use something newer.
constexpr uint32_t kMinRuntimeVersionNum = 0x000100;
constexpr const char kMinRuntimeVersion[] = "0.1.0";

// What to emit, from the plugin parameter ("--c-grpc_out=no_client:DIR").
struct Options {
  // Client stubs (<method>__call, __start; __open, __open_async, __write,
  // __write_async, __read, __finish for streaming methods).
  bool client = true;
  // Servicer vtable, dispatch trampolines, <service>__servicer__register and
  // the handlers' <method>__recv / __send.
  bool server = true;
};

// Parses |parameter|, a comma-separated list of the keys "no_client" and
// "no_server" (both together leave just the descriptors).  Returns false
// and sets |*error| on an unknown key or a key with a value.
bool ParseOptions(const std::string& parameter, Options* options,
                  std::string* error);

class Generator : public google::protobuf::compiler::CodeGenerator {
 public:
  Generator() = default;
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;
  ~Generator() override = default;

  bool Generate(const google::protobuf::FileDescriptor* file,
                const std::string& parameter,
                google::protobuf::compiler::GeneratorContext* context,
                std::string* error) const override;

  uint64_t GetSupportedFeatures() const override {
    return FEATURE_PROTO3_OPTIONAL;
  }
};

}  // namespace plugin
}  // namespace cgrpc

#endif  // CGRPC_PLUGIN_CGRPC_GENERATOR_H_
