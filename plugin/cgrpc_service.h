// SPDX-License-Identifier: MIT
//
// Emits the code for one `service`: its cgrpc_service_desc, the servicer
// vtable with one typed function pointer per method, the dispatch
// trampolines, the register function, the handlers' typed read/write
// helpers and the client stubs.
//
// Names, for `package helloworld; service Greeter { rpc SayHello ... }`:
//
//   Helloworld__Greeter_Servicer               servicer vtable (struct)
//   helloworld__greeter__service__methods      cgrpc_method_desc[]
//   helloworld__greeter__service__desc         cgrpc_service_desc
//   helloworld__greeter__servicer__register()  adds a servicer to a server
//   helloworld__greeter__say_hello__dispatch() static trampoline (any kind)
//
// and per method kind (U unary, C client-, S server-streaming, B bidi):
//
//   __call()          U   blocking stub
//   __start()         U   async stub
//   __open()          CSB opens a blocking streaming call (S: sends the
//                         request and half-closes)
//   __open_async()    CSB the same, callback form
//   __write()         C B sends one request
//   __write_async()   C B queues one request
//   __read()          SB  waits for one response
//   __finish()        C   half-closes, waits for the reply and status
//   __recv()          C B handler: reads one request
//   __send()          SB  handler: sends one response
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

  // One generated function with external linkage: declared with |doc| in
  // the header, defined with |body| in the source.
  struct Function {
    std::string ret;                  // "int"
    std::string name;                 // "helloworld__greeter__say_hello__call"
    std::vector<std::string> params;  // "cgrpc_channel *channel", ...
    std::vector<std::string> doc;     // comment lines, already wrapped
    std::string body;                 // the lines between the braces
    std::string what;                 // "the blocking stub", for OurNames()
  };

  Vars MethodVars(int index) const;

  // The functions emitted for method |index|: the handler helpers (server
  // side) and the client stubs, each in the order they are printed.
  std::vector<Function> ServerFunctions(int index) const;
  std::vector<Function> ClientFunctions(int index) const;

  void PrintServicerStruct(google::protobuf::io::Printer* printer) const;
  void PrintMethodTable(google::protobuf::io::Printer* printer) const;
  void PrintDispatchers(google::protobuf::io::Printer* printer) const;
  void PrintRegister(google::protobuf::io::Printer* printer) const;

  // "<ret> <name>(<params>)<tail>", wrapped; |tail| is ";" or " {".
  static std::string Signature(const Function& function,
                               const std::string& tail);
  static void PrintDeclaration(const Function& function,
                               google::protobuf::io::Printer* printer);
  static void PrintDefinition(const Function& function,
                              google::protobuf::io::Printer* printer);

  std::string RegisterSignature(const std::string& tail) const;

  const google::protobuf::ServiceDescriptor* service_;
  Options options_;
  Vars vars_;
};

}  // namespace plugin
}  // namespace cgrpc

#endif  // CGRPC_PLUGIN_CGRPC_SERVICE_H_
