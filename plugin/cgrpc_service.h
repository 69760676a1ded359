// SPDX-License-Identifier: MIT
//
// Emits the code for one `service`: its cgrpc_service_desc, the servicer
// vtable with one typed function pointer per method, the dispatch
// trampolines and register function, and the client stubs.
//
// Names, for `package helloworld; service Greeter { rpc SayHello ... }`:
//
//   Helloworld__Greeter_Servicer               servicer vtable (struct)
//   helloworld__greeter__service__methods      cgrpc_method_desc[]
//   helloworld__greeter__service__desc         cgrpc_service_desc
//   helloworld__greeter__servicer__register()  adds a servicer to a server
//   helloworld__greeter__say_hello__call()     blocking unary stub
//   helloworld__greeter__say_hello__start()    async unary stub
//   helloworld__greeter__say_hello__open()     streaming stub
//   helloworld__greeter__say_hello__dispatch() static trampoline
//
// protoc-c already uses helloworld__greeter__<method>, __init and
// __descriptor and the type Helloworld__Greeter_Service; the "__" after the
// service or method scope keeps ours apart from those for every method name
// protoc-c can lowercase without a "__" of its own (FileGenerator::Validate
// rejects the rest).

#ifndef CGRPC_PLUGIN_CGRPC_SERVICE_H_
#define CGRPC_PLUGIN_CGRPC_SERVICE_H_

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/printer.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "cgrpc_generator.h"

namespace cgrpc {
namespace plugin {

class ServiceGenerator {
 public:
  ServiceGenerator(const google::protobuf::ServiceDescriptor* service,
                   const Options& options);
  ServiceGenerator(const ServiceGenerator&) = delete;
  ServiceGenerator& operator=(const ServiceGenerator&) = delete;

  // Adds the names protoc-c emits for this service to |names| (name ->
  // description).
  void AddProtocCNames(std::map<std::string, std::string>* names) const;

  // The C names we emit for this service, with descriptions.
  std::vector<std::pair<std::string, std::string>> OurNames() const;

  void GenerateHeader(google::protobuf::io::Printer* printer) const;
  void GenerateSource(google::protobuf::io::Printer* printer) const;

 private:
  using Vars = std::map<std::string, std::string>;

  Vars MethodVars(int index) const;

  void PrintServicerStruct(google::protobuf::io::Printer* printer) const;
  void PrintClientDeclarations(google::protobuf::io::Printer* printer) const;
  void PrintMethodTable(google::protobuf::io::Printer* printer) const;
  void PrintDispatchers(google::protobuf::io::Printer* printer) const;
  void PrintRegister(google::protobuf::io::Printer* printer) const;
  void PrintClientStubs(google::protobuf::io::Printer* printer) const;

  // Signatures shared by declarations and definitions; |tail| is ";" or
  // " {", and |vars| come from MethodVars().
  std::string RegisterSignature(const std::string& tail) const;
  std::string CallSignature(const Vars& vars, const std::string& tail) const;
  std::string StartSignature(const Vars& vars, const std::string& tail) const;
  std::string OpenSignature(const Vars& vars, const std::string& tail) const;

  const google::protobuf::ServiceDescriptor* service_;
  Options options_;
  Vars vars_;
};

}  // namespace plugin
}  // namespace cgrpc

#endif  // CGRPC_PLUGIN_CGRPC_SERVICE_H_
