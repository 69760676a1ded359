// SPDX-License-Identifier: MIT

#include "cgrpc_generator.h"

#include <google/protobuf/io/printer.h>
#include <google/protobuf/io/zero_copy_stream.h>

#include <memory>
#include <utility>
#include <vector>

#include "cgrpc_file.h"
#include "cgrpc_helpers.h"

namespace cgrpc {
namespace plugin {

namespace pb = ::google::protobuf;

bool ParseOptions(const std::string& parameter, Options* options,
                  std::string* error) {
  std::vector<std::pair<std::string, std::string>> pairs;
  pb::compiler::ParseGeneratorParameter(parameter, &pairs);
  for (const auto& pair : pairs) {
    const std::string& key = pair.first;
    if (key == "no_client" || key == "no_server") {
      if (!pair.second.empty()) {
        *error = "protoc-gen-c-grpc: option \"" + key +
                 "\" takes no value (got \"" + key + "=" + pair.second + "\")";
        return false;
      }
      (key == "no_client" ? options->client : options->server) = false;
    } else {
      *error = "protoc-gen-c-grpc: unknown option \"" + key +
               "\"; known options: no_client, no_server";
      return false;
    }
  }
  return true;
}

bool Generator::Generate(const pb::FileDescriptor* file,
                         const std::string& parameter,
                         pb::compiler::GeneratorContext* context,
                         std::string* error) const {
  Options options;
  if (!ParseOptions(parameter, &options, error)) return false;

  FileGenerator generator(file, options);
  if (!generator.Validate(error)) return false;

  {
    std::unique_ptr<pb::io::ZeroCopyOutputStream> output(
        context->Open(GrpcHeaderPath(file)));
    pb::io::Printer printer(output.get(), '$');
    generator.GenerateHeader(&printer);
    if (printer.failed()) {
      *error = "protoc-gen-c-grpc: failed to write " + GrpcHeaderPath(file);
      return false;
    }
  }
  {
    std::unique_ptr<pb::io::ZeroCopyOutputStream> output(
        context->Open(GrpcSourcePath(file)));
    pb::io::Printer printer(output.get(), '$');
    generator.GenerateSource(&printer);
    if (printer.failed()) {
      *error = "protoc-gen-c-grpc: failed to write " + GrpcSourcePath(file);
      return false;
    }
  }
  return true;
}

}  // namespace plugin
}  // namespace cgrpc
