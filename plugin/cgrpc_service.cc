// SPDX-License-Identifier: MIT

#include "cgrpc_service.h"

#include "cgrpc_helpers.h"

namespace cgrpc {
namespace plugin {

namespace {

bool IsUnary(const pb::MethodDescriptor* method) {
  return !method->client_streaming() && !method->server_streaming();
}

const char* KindEnum(const pb::MethodDescriptor* method) {
  if (method->client_streaming() && method->server_streaming()) {
    return "CGRPC_METHOD_BIDI_STREAMING";
  }
  if (method->client_streaming()) return "CGRPC_METHOD_CLIENT_STREAMING";
  if (method->server_streaming()) return "CGRPC_METHOD_SERVER_STREAMING";
  return "CGRPC_METHOD_UNARY";
}

const char* KindText(const pb::MethodDescriptor* method) {
  if (method->client_streaming() && method->server_streaming()) {
    return "bidirectional-streaming";
  }
  if (method->client_streaming()) return "client-streaming";
  if (method->server_streaming()) return "server-streaming";
  return "unary";
}

// Appends |prose|, wrapped for a comment at |indent|, to |lines|, after a
// blank line if |lines| already has text.
void AddProse(const std::string& prose, int indent,
              std::vector<std::string>* lines) {
  if (!lines->empty()) lines->push_back("");
  for (const std::string& line : WrapWords(prose, 80 - indent - 3)) {
    lines->push_back(line);
  }
}

// Prints |text| (which may span lines) verbatim, then a newline.
void PrintRaw(pb::io::Printer* printer, const std::string& text) {
  printer->Print("$text$\n", "text", text);
}

}  // namespace

ServiceGenerator::ServiceGenerator(const pb::ServiceDescriptor* service,
                                   const Options& options)
    : service_(service), options_(options) {
  std::string lower = ServiceLowerName(service_);
  vars_["service_full"] = service_->full_name();
  vars_["servicer"] = ServiceTypeName(service_) + "_Servicer";
  vars_["methods"] = lower + "__service__methods";
  vars_["desc"] = lower + "__service__desc";
  vars_["register"] = lower + "__servicer__register";
  vars_["n_methods"] = std::to_string(service_->method_count());
}

ServiceGenerator::Vars ServiceGenerator::MethodVars(int index) const {
  const pb::MethodDescriptor* method = service_->method(index);
  std::string scope =
      ServiceLowerName(service_) + "__" + CamelToLower(method->name());
  Vars vars = vars_;
  vars["index"] = std::to_string(index);
  vars["method_name"] = method->name();
  vars["method"] = CamelToLower(method->name());
  vars["path"] = "/" + service_->full_name() + "/" + method->name();
  vars["kind"] = KindEnum(method);
  vars["input_type"] = MessageTypeName(method->input_type());
  vars["output_type"] = MessageTypeName(method->output_type());
  vars["input_desc"] = MessageDescriptorName(method->input_type());
  vars["output_desc"] = MessageDescriptorName(method->output_type());
  vars["call"] = scope + "__call";
  vars["start"] = scope + "__start";
  vars["open"] = scope + "__open";
  vars["dispatch"] = scope + "__dispatch";
  return vars;
}

void ServiceGenerator::AddProtocCNames(
    std::map<std::string, std::string>* names) const {
  std::string lower = ServiceLowerName(service_);
  std::string what = "emitted by protoc-c for " + service_->full_name();
  names->emplace(lower + "__init", what);
  names->emplace(lower + "__descriptor", what);
  names->emplace(ServiceTypeName(service_) + "_Service", what);
  for (int i = 0; i < service_->method_count(); i++) {
    const pb::MethodDescriptor* method = service_->method(i);
    names->emplace(lower + "__" + CamelToLower(method->name()),
                   "emitted by protoc-c for " + method->full_name());
  }
}

std::vector<std::pair<std::string, std::string>> ServiceGenerator::OurNames()
    const {
  std::vector<std::pair<std::string, std::string>> names;
  const std::string& full = service_->full_name();
  names.emplace_back(vars_.at("methods"), "the method table of " + full);
  names.emplace_back(vars_.at("desc"), "the descriptor of " + full);
  if (options_.server) {
    names.emplace_back(vars_.at("servicer"), "the servicer of " + full);
    names.emplace_back(vars_.at("register"),
                       "the register function of " + full);
  }
  for (int i = 0; i < service_->method_count(); i++) {
    const pb::MethodDescriptor* method = service_->method(i);
    Vars vars = MethodVars(i);
    const std::string& mfull = method->full_name();
    if (IsUnary(method)) {
      if (options_.server) {
        names.emplace_back(vars["dispatch"], "the trampoline of " + mfull);
      }
      if (options_.client) {
        names.emplace_back(vars["call"], "the blocking stub of " + mfull);
        names.emplace_back(vars["start"], "the async stub of " + mfull);
      }
    } else if (options_.client) {
      names.emplace_back(vars["open"], "the streaming stub of " + mfull);
    }
  }
  return names;
}

std::string ServiceGenerator::RegisterSignature(const std::string& tail) const {
  return WrapParams(
      "int " + vars_.at("register") + "(",
      {"cgrpc_server *server", "const " + vars_.at("servicer") + " *servicer",
       "void *user_data"},
      ")" + tail, 0);
}

std::string ServiceGenerator::CallSignature(const Vars& vars,
                                            const std::string& tail) const {
  return WrapParams(
      "cgrpc_status_code " + vars.at("call") + "(",
      {"cgrpc_channel *channel", "const " + vars.at("input_type") + " *request",
       vars.at("output_type") + " **reply", "const cgrpc_call_options *opts",
       "cgrpc_status *status"},
      ")" + tail, 0);
}

std::string ServiceGenerator::StartSignature(const Vars& vars,
                                             const std::string& tail) const {
  return WrapParams(
      "int " + vars.at("start") + "(",
      {"cgrpc_channel *channel", "const " + vars.at("input_type") + " *request",
       "const cgrpc_call_options *opts", "cgrpc_unary_done_cb done",
       "void *user_data", "cgrpc_call **call_ptr"},
      ")" + tail, 0);
}

std::string ServiceGenerator::OpenSignature(const Vars& vars,
                                            const std::string& tail) const {
  return WrapParams("int " + vars.at("open") + "(",
                    {"cgrpc_channel *channel", "const cgrpc_call_options *opts",
                     "cgrpc_call **call_ptr"},
                    ")" + tail, 0);
}

void ServiceGenerator::GenerateHeader(pb::io::Printer* printer) const {
  std::string title = "/* ---- " + service_->full_name() + " ";
  if (title.size() < 77) title += std::string(77 - title.size(), '-');
  printer->Print("$title$ */\n\n", "title", title);

  if (service_->method_count() > 0) {
    printer->Print(vars_,
                   "/* The methods of $service_full$, in .proto order. */\n"
                   "extern const cgrpc_method_desc $methods$[$n_methods$];\n"
                   "\n");
  }
  printer->Print(vars_,
                 "/* The descriptor of $service_full$, for the server. */\n"
                 "extern const cgrpc_service_desc $desc$;\n");
  if (options_.server) {
    printer->Print("\n");
    PrintServicerStruct(printer);
  }
  if (options_.client) PrintClientDeclarations(printer);
}

void ServiceGenerator::PrintServicerStruct(pb::io::Printer* printer) const {
  std::vector<std::string> lines = CommentLines(LeadingComment(service_));
  AddProse("Servicer for " + service_->full_name() +
               ": set the methods you implement and leave the others NULL; "
               "the server answers those with UNIMPLEMENTED.  A unary method "
               "fills in |reply| (an empty message of the output type) and "
               "returns CGRPC_STATUS_OK, or another status code (see "
               "cgrpc_server_ctx_fail()).  |user_data| is the pointer given "
               "to " +
               vars_.at("register") + "().",
           0, &lines);
  PrintComment(printer, lines, 0);
  printer->Print(vars_, "typedef struct $servicer$ {\n");
  if (service_->method_count() == 0) {
    printer->Print("  int _unused; /* no methods; C needs one member */\n");
  }
  for (int i = 0; i < service_->method_count(); i++) {
    const pb::MethodDescriptor* method = service_->method(i);
    Vars vars = MethodVars(i);
    if (i > 0) printer->Print("\n");
    std::vector<std::string> comment = CommentLines(LeadingComment(method));
    std::string head = "cgrpc_status_code (*" + vars["method"] + ")(";
    std::vector<std::string> params;
    if (IsUnary(method)) {
      params = {"cgrpc_server_ctx *ctx",
                "const " + vars["input_type"] + " *request",
                vars["output_type"] + " *reply", "void *user_data"};
    } else {
      AddProse(std::string("A ") + KindText(method) +
                   " method: a placeholder until cgrpc supports streaming.  "
                   "Leave it NULL; registering a servicer that sets it fails "
                   "with CGRPC_ERR_UNSUPPORTED.",
               2, &comment);
      params = {"cgrpc_server_ctx *ctx", "void *user_data"};
    }
    PrintComment(printer, comment, 2);
    PrintRaw(printer, "  " + WrapParams(head, params, ");", 2));
  }
  printer->Print(vars_, "} $servicer$;\n\n");

  std::vector<std::string> doc;
  AddProse("Registers |servicer| for " + service_->full_name() +
               " on |server|.  The servicer is copied, so it may live on "
               "the caller's stack; |user_data| reaches every method.",
           0, &doc);
  AddProse(
      "Returns 0, CGRPC_ERR_INVALID_ARGUMENT if |server| or |servicer| "
      "is NULL, or an error from cgrpc_server_register_service().  "
      "Thread safety: one thread at a time per server.",
      0, &doc);
  PrintComment(printer, doc, 0);
  PrintRaw(printer, RegisterSignature(";"));
}

void ServiceGenerator::PrintClientDeclarations(pb::io::Printer* printer) const {
  for (int i = 0; i < service_->method_count(); i++) {
    const pb::MethodDescriptor* method = service_->method(i);
    Vars vars = MethodVars(i);
    std::string full = service_->full_name() + "." + method->name();
    std::vector<std::string> lines = CommentLines(LeadingComment(method));
    printer->Print("\n");
    if (!IsUnary(method)) {
      AddProse(std::string("Opens a ") + KindText(method) + " call to " + full +
                   " (see cgrpc_stream_open()).  This version of "
                   "cgrpc does not support streaming yet: it returns "
                   "CGRPC_ERR_UNSUPPORTED.",
               0, &lines);
      PrintComment(printer, lines, 0);
      PrintRaw(printer, OpenSignature(vars, ";"));
      continue;
    }
    AddProse("Calls " + full +
                 " and waits for the outcome (see "
                 "cgrpc_unary_call()).  On OK, |*reply| receives a " +
                 vars["output_type"] +
                 " that the caller frees with "
                 "protobuf_c_message_free_unpacked(); otherwise it is set "
                 "to NULL.",
             0, &lines);
    PrintComment(printer, lines, 0);
    PrintRaw(printer, CallSignature(vars, ";"));
    printer->Print("\n");
    std::vector<std::string> start;
    AddProse("Starts a call to " + full +
                 " and returns at once (see "
                 "cgrpc_unary_start()).  |done| receives the reply, a " +
                 vars["output_type"] + ", as a ProtobufCMessage pointer.",
             0, &start);
    PrintComment(printer, start, 0);
    PrintRaw(printer, StartSignature(vars, ";"));
  }
}

void ServiceGenerator::GenerateSource(pb::io::Printer* printer) const {
  std::string title = "/* ---- " + service_->full_name() + " ";
  if (title.size() < 77) title += std::string(77 - title.size(), '-');
  printer->Print("$title$ */\n\n", "title", title);

  PrintMethodTable(printer);
  if (options_.server) {
    PrintDispatchers(printer);
    PrintRegister(printer);
  }
  if (options_.client) PrintClientStubs(printer);
}

void ServiceGenerator::PrintMethodTable(pb::io::Printer* printer) const {
  if (service_->method_count() > 0) {
    printer->Print(vars_,
                   "const cgrpc_method_desc $methods$[$n_methods$] = {\n");
    for (int i = 0; i < service_->method_count(); i++) {
      printer->Print(MethodVars(i),
                     "    {\n"
                     "        .name = \"$method_name$\",\n"
                     "        .path = \"$path$\",\n"
                     "        .kind = $kind$,\n"
                     "        .input = &$input_desc$,\n"
                     "        .output = &$output_desc$,\n"
                     "    },\n");
    }
    printer->Print("};\n\n");
  }
  Vars vars = vars_;
  // ISO C has no zero-length arrays: a service without methods has no table.
  vars["methods_ptr"] =
      service_->method_count() > 0 ? vars_.at("methods") : "NULL";
  printer->Print(vars,
                 "const cgrpc_service_desc $desc$ = {\n"
                 "    .name = \"$service_full$\",\n"
                 "    .n_methods = $n_methods$,\n"
                 "    .methods = $methods_ptr$,\n"
                 "};\n");
}

void ServiceGenerator::PrintDispatchers(pb::io::Printer* printer) const {
  for (int i = 0; i < service_->method_count(); i++) {
    const pb::MethodDescriptor* method = service_->method(i);
    if (!IsUnary(method)) continue;
    Vars vars = MethodVars(i);
    printer->Print("\n");
    PrintComment(printer,
                 WrapWords("Calls the servicer's " + vars["method"] +
                               " through its exact type.",
                           77),
                 0);
    // Put the return type on its own line when the name is too long to
    // leave room for a parameter after it.
    std::string head = "static cgrpc_status_code " + vars["dispatch"] + "(";
    if (head.size() > 76) {
      printer->Print("static cgrpc_status_code\n");
      head = vars["dispatch"] + "(";
    }
    PrintRaw(printer,
             WrapParams(head,
                        {"const void *servicer", "cgrpc_server_ctx *ctx",
                         "const ProtobufCMessage *request",
                         "ProtobufCMessage *reply", "void *user_data"},
                        ") {", 0));
    std::string impl = "  const " + vars["servicer"] + " *impl =";
    std::string cast = "(const " + vars["servicer"] + " *)servicer;";
    if (impl.size() + 1 + cast.size() <= 80) {
      PrintRaw(printer, impl + " " + cast + "\n");
    } else {
      PrintRaw(printer, impl + "\n      " + cast + "\n");
    }
    PrintRaw(
        printer,
        "  " + WrapParams("return impl->" + vars["method"] + "(",
                          {"ctx", "(const " + vars["input_type"] + " *)request",
                           "(" + vars["output_type"] + " *)reply", "user_data"},
                          ");", 2, Wrap::kFewestLines));
    printer->Print("}\n");
  }
}

void ServiceGenerator::PrintRegister(pb::io::Printer* printer) const {
  printer->Print("\n");
  PrintRaw(printer, RegisterSignature(" {"));
  int n = service_->method_count();
  if (n > 0) {
    printer->Print(vars_, "  cgrpc_method_handler handlers[$n_methods$];\n\n");
  }
  printer->Print(
      "  if (server == NULL || servicer == NULL) {\n"
      "    return CGRPC_ERR_INVALID_ARGUMENT;\n"
      "  }\n");
  for (int i = 0; i < n; i++) {
    const pb::MethodDescriptor* method = service_->method(i);
    Vars vars = MethodVars(i);
    if (IsUnary(method)) {
      printer->Print(vars,
                     "  handlers[$index$].unary = NULL;\n"
                     "  handlers[$index$].implemented = "
                     "servicer->$method$ != NULL;\n"
                     "  if (handlers[$index$].implemented) {\n");
      std::string assign = "    handlers[" + vars["index"] + "].unary =";
      if (assign.size() + 1 + vars["dispatch"].size() + 1 <= 80) {
        PrintRaw(printer, assign + " " + vars["dispatch"] + ";");
      } else {
        PrintRaw(printer, assign + "\n        " + vars["dispatch"] + ";");
      }
      printer->Print("  }\n");
    } else {
      printer->Print(vars,
                     "  /* $method_name$ streams: the server has no unary "
                     "dispatch for it. */\n"
                     "  handlers[$index$].unary = NULL;\n"
                     "  handlers[$index$].implemented = "
                     "servicer->$method$ != NULL;\n");
    }
  }
  Vars vars = vars_;
  vars["handlers"] = n > 0 ? "handlers" : "NULL";
  PrintRaw(printer, "  " + WrapParams("return cgrpc_server_register_service(",
                                      {"server", "&" + vars_.at("desc"),
                                       vars["handlers"], "servicer",
                                       "sizeof *servicer", "user_data"},
                                      ");", 2, Wrap::kFewestLines));
  printer->Print("}\n");
}

void ServiceGenerator::PrintClientStubs(pb::io::Printer* printer) const {
  for (int i = 0; i < service_->method_count(); i++) {
    const pb::MethodDescriptor* method = service_->method(i);
    Vars vars = MethodVars(i);
    std::string method_ref = "&" + vars["methods"] + "[" + vars["index"] + "]";
    printer->Print("\n");
    if (!IsUnary(method)) {
      PrintRaw(printer, OpenSignature(vars, " {"));
      PrintRaw(printer,
               "  " + WrapParams("return cgrpc_stream_open(",
                                 {"channel", method_ref, "opts", "call_ptr"},
                                 ");", 2, Wrap::kFewestLines));
      printer->Print("}\n");
      continue;
    }
    // A NULL |request| or |reply| goes through to the library, which
    // reports the misuse; taking &request->base of NULL would be undefined.
    PrintRaw(printer, CallSignature(vars, " {"));
    printer->Print(
        "  /* The library writes a ProtobufCMessage pointer; storing it "
        "through\n"
        "   * a cast of |reply| would break strict aliasing, so convert it "
        "here. */\n"
        "  ProtobufCMessage *out = NULL;\n"
        "  cgrpc_status_code code;\n"
        "\n");
    PrintRaw(
        printer,
        "  " + WrapParams("code = cgrpc_unary_call(",
                          {"channel", method_ref,
                           "request != NULL ? &request->base : NULL",
                           "reply != NULL ? &out : NULL", "opts", "status"},
                          ");", 2, Wrap::kFewestLines));
    printer->Print(vars,
                   "\n"
                   "  if (reply != NULL) {\n"
                   "    *reply = ($output_type$ *)out;\n"
                   "  }\n"
                   "  return code;\n"
                   "}\n"
                   "\n");
    PrintRaw(printer, StartSignature(vars, " {"));
    PrintRaw(printer,
             "  " + WrapParams("return cgrpc_unary_start(",
                               {"channel", method_ref,
                                "request != NULL ? &request->base : NULL",
                                "opts", "done", "user_data", "call_ptr"},
                               ");", 2, Wrap::kFewestLines));
    printer->Print("}\n");
  }
}

}  // namespace plugin
}  // namespace cgrpc
