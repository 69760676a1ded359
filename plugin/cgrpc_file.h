// SPDX-License-Identifier: MIT
//
// Emits <name>.grpc-c.h and <name>.grpc-c.c for one .proto file: the
// banner, include guard, includes and version check around the code that
// ServiceGenerator emits for each service, and the serialized descriptors
// of the file and of everything it imports, for server reflection.

#ifndef CGRPC_PLUGIN_CGRPC_FILE_H_
#define CGRPC_PLUGIN_CGRPC_FILE_H_

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/printer.h>

#include <memory>
#include <string>
#include <vector>

#include "cgrpc_generator.h"
#include "cgrpc_service.h"

namespace cgrpc {
namespace plugin {

class FileGenerator {
 public:
  FileGenerator(const google::protobuf::FileDescriptor* file,
                const Options& options);
  FileGenerator(const FileGenerator&) = delete;
  FileGenerator& operator=(const FileGenerator&) = delete;
  ~FileGenerator();

  // Checks that no name we would emit collides with another one of ours or
  // with one protoc-c emits for the same file (possible with method names
  // such as "Servicer_Register").  Returns false and sets |*error| if so.
  bool Validate(std::string* error) const;

  void GenerateHeader(google::protobuf::io::Printer* printer) const;
  void GenerateSource(google::protobuf::io::Printer* printer) const;

 private:
  void PrintBanner(google::protobuf::io::Printer* printer) const;

  // Prints a static cgrpc_file_desc for this file and for each file it
  // imports, directly or not, dependencies first.  Every generated .c file
  // with services carries its own copies, so nothing depends on how (or
  // whether) the imported files were generated.
  void PrintFileDescs(google::protobuf::io::Printer* printer) const;

  const google::protobuf::FileDescriptor* file_;
  Options options_;
  std::vector<std::unique_ptr<ServiceGenerator>> services_;
};

}  // namespace plugin
}  // namespace cgrpc

#endif  // CGRPC_PLUGIN_CGRPC_FILE_H_
