// SPDX-License-Identifier: MIT

#include "cgrpc_service.h"

#include <functional>

#include "cgrpc_helpers.h"

namespace cgrpc {
namespace plugin {

namespace {

enum class Kind { kUnary, kClientStreaming, kServerStreaming, kBidi };

Kind KindOf(const pb::MethodDescriptor* method) {
  if (method->client_streaming() && method->server_streaming()) {
    return Kind::kBidi;
  }
  if (method->client_streaming()) return Kind::kClientStreaming;
  if (method->server_streaming()) return Kind::kServerStreaming;
  return Kind::kUnary;
}

// The client sends a stream of requests (client-streaming, bidi).
bool StreamsRequests(Kind kind) {
  return kind == Kind::kClientStreaming || kind == Kind::kBidi;
}

// The server sends a stream of responses (server-streaming, bidi).
bool StreamsResponses(Kind kind) {
  return kind == Kind::kServerStreaming || kind == Kind::kBidi;
}

const char* KindEnum(Kind kind) {
  switch (kind) {
    case Kind::kClientStreaming:
      return "CGRPC_METHOD_CLIENT_STREAMING";
    case Kind::kServerStreaming:
      return "CGRPC_METHOD_SERVER_STREAMING";
    case Kind::kBidi:
      return "CGRPC_METHOD_BIDI_STREAMING";
    case Kind::kUnary:
      break;
  }
  return "CGRPC_METHOD_UNARY";
}

const char* KindText(Kind kind) {
  switch (kind) {
    case Kind::kClientStreaming:
      return "client-streaming";
    case Kind::kServerStreaming:
      return "server-streaming";
    case Kind::kBidi:
      return "bidirectional-streaming";
    case Kind::kUnary:
      break;
  }
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

// One statement of a function body: "  <head><args><tail>\n", wrapped the
// way clang-format wraps a call.
std::string Statement(const std::string& head,
                      const std::vector<std::string>& args,
                      const std::string& tail) {
  return "  " + WrapParams(head, args, tail, 2, Wrap::kFewestLines) + "\n";
}

// "  <lhs> <rhs>\n", with <rhs> on a continuation line when it does not fit.
std::string Assignment(const std::string& lhs, const std::string& rhs,
                       int indent) {
  std::string pad(indent, ' ');
  if (indent + lhs.size() + 1 + rhs.size() <= 80) {
    return pad + lhs + " " + rhs + "\n";
  }
  return pad + lhs + "\n" + pad + "    " + rhs + "\n";
}

const char kInvalidArgument[] = "    return CGRPC_ERR_INVALID_ARGUMENT;\n";

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
  vars_["file_desc"] = FileDescName(service_->file());
}

ServiceGenerator::Vars ServiceGenerator::MethodVars(int index) const {
  const pb::MethodDescriptor* method = service_->method(index);
  std::string scope =
      ServiceLowerName(service_) + "__" + CamelToLower(method->name());
  Vars vars = vars_;
  vars["index"] = std::to_string(index);
  vars["method_name"] = method->name();
  vars["method_full"] = service_->full_name() + "." + method->name();
  vars["method"] = CamelToLower(method->name());
  vars["path"] = "/" + service_->full_name() + "/" + method->name();
  vars["kind"] = KindEnum(KindOf(method));
  vars["input_type"] = MessageTypeName(method->input_type());
  vars["output_type"] = MessageTypeName(method->output_type());
  vars["input_desc"] = MessageDescriptorName(method->input_type());
  vars["output_desc"] = MessageDescriptorName(method->output_type());
  vars["method_ref"] = "&" + vars_.at("methods") + "[" + vars["index"] + "]";
  for (const char* suffix :
       {"call", "start", "open", "open_async", "new_async", "write",
        "write_async", "read", "finish", "recv", "send", "dispatch"}) {
    vars[suffix] = scope + "__" + suffix;
  }
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
    const std::string& mfull = service_->method(i)->full_name();
    std::vector<Function> functions;
    if (options_.server) {
      names.emplace_back(MethodVars(i)["dispatch"],
                         "the trampoline of " + mfull);
      functions = ServerFunctions(i);
    }
    if (options_.client) {
      std::vector<Function> client = ClientFunctions(i);
      functions.insert(functions.end(), client.begin(), client.end());
    }
    for (const Function& function : functions) {
      names.emplace_back(function.name, function.what + " of " + mfull);
    }
  }
  return names;
}

std::string ServiceGenerator::Signature(const Function& function,
                                        const std::string& tail) {
  return WrapParams(function.ret + " " + function.name + "(", function.params,
                    ")" + tail, 0);
}

void ServiceGenerator::PrintDeclaration(const Function& function,
                                        pb::io::Printer* printer) {
  printer->Print("\n");
  PrintComment(printer, function.doc, 0);
  PrintRaw(printer, Signature(function, ";"));
}

void ServiceGenerator::PrintDefinition(const Function& function,
                                       pb::io::Printer* printer) {
  printer->Print("\n");
  PrintRaw(printer, Signature(function, " {"));
  printer->Print("$body$}\n", "body", function.body);
}

std::string ServiceGenerator::RegisterSignature(const std::string& tail) const {
  return WrapParams(
      "int " + vars_.at("register") + "(",
      {"cgrpc_server *server", "const " + vars_.at("servicer") + " *servicer",
       "void *user_data"},
      ")" + tail, 0);
}

std::vector<ServiceGenerator::Function> ServiceGenerator::ServerFunctions(
    int index) const {
  Kind kind = KindOf(service_->method(index));
  Vars v = MethodVars(index);
  std::vector<Function> functions;

  if (StreamsRequests(kind)) {
    Function f;
    f.ret = "int";
    f.name = v["recv"];
    f.params = {"cgrpc_server_ctx *ctx", v["input_type"] + " **request"};
    f.what = "the handler's read function";
    AddProse("For the handler of " + v["method_full"] +
                 ": waits for the next request (see "
                 "cgrpc_server_ctx_read()).  Returns 1 and sets |*request| "
                 "to a " +
                 v["input_type"] +
                 " that the handler frees with "
                 "protobuf_c_message_free_unpacked(); 0 once the client has "
                 "sent all its requests; or an error: CGRPC_ERR_CLOSED when "
                 "the call was cancelled or failed (the handler should "
                 "return), CGRPC_ERR_INVALID_ARGUMENT when |request| is "
                 "NULL.  |*request| is NULL unless 1 is returned.",
             0, &f.doc);
    f.body =
        "  ProtobufCMessage *msg = NULL;\n"
        "  int rv;\n"
        "\n"
        "  if (request == NULL) {\n" +
        std::string(kInvalidArgument) +
        "  }\n"
        "  rv = cgrpc_server_ctx_read(ctx, &msg);\n"
        "  /* Converted here, not through a cast of |request|, which "
        "would break\n"
        "   * strict aliasing. */\n" +
        Assignment("*request =", "(" + v["input_type"] + " *)msg;", 2) +
        "  return rv;\n";
    functions.push_back(f);
  }

  if (StreamsResponses(kind)) {
    Function f;
    f.ret = "int";
    f.name = v["send"];
    f.params = {"cgrpc_server_ctx *ctx",
                "const " + v["output_type"] + " *reply"};
    f.what = "the handler's write function";
    AddProse("For the handler of " + v["method_full"] +
                 ": sends |reply| as the next response (see "
                 "cgrpc_server_ctx_write()).  |reply| is serialized before "
                 "this returns and stays the caller's; this blocks while the "
                 "client is not reading.  Returns 0, "
                 "CGRPC_ERR_INVALID_ARGUMENT when |reply| is NULL, or an "
                 "error from cgrpc_server_ctx_write(): CGRPC_ERR_CLOSED when "
                 "the call has ended (the handler should return).",
             0, &f.doc);
    f.body = "  if (reply == NULL) {\n" + std::string(kInvalidArgument) +
             "  }\n"
             "  return cgrpc_server_ctx_write(ctx, &reply->base);\n";
    functions.push_back(f);
  }
  return functions;
}

std::vector<ServiceGenerator::Function> ServiceGenerator::ClientFunctions(
    int index) const {
  Kind kind = KindOf(service_->method(index));
  Vars v = MethodVars(index);
  const std::string& full = v["method_full"];
  const std::string& ref = v["method_ref"];
  std::vector<Function> functions;

  if (kind == Kind::kUnary) {
    Function call;
    call.ret = "cgrpc_status_code";
    call.name = v["call"];
    call.params = {"cgrpc_channel *channel",
                   "const " + v["input_type"] + " *request",
                   v["output_type"] + " **reply",
                   "const cgrpc_call_options *opts", "cgrpc_status *status"};
    call.what = "the blocking stub";
    AddProse("Calls " + full +
                 " and waits for the outcome (see "
                 "cgrpc_unary_call()).  On OK, |*reply| receives a " +
                 v["output_type"] +
                 " that the caller frees with "
                 "protobuf_c_message_free_unpacked(); otherwise it is set "
                 "to NULL.",
             0, &call.doc);
    // A NULL |request| or |reply| goes through to the library, which
    // reports the misuse; taking &request->base of NULL would be undefined.
    call.body =
        "  /* The library writes a ProtobufCMessage pointer; storing it "
        "through\n"
        "   * a cast of |reply| would break strict aliasing, so convert it "
        "here. */\n"
        "  ProtobufCMessage *out = NULL;\n"
        "  cgrpc_status_code code;\n"
        "\n" +
        Statement("code = cgrpc_unary_call(",
                  {"channel", ref, "request != NULL ? &request->base : NULL",
                   "reply != NULL ? &out : NULL", "opts", "status"},
                  ");") +
        "\n"
        "  if (reply != NULL) {\n"
        "    *reply = (" +
        v["output_type"] +
        " *)out;\n"
        "  }\n"
        "  return code;\n";
    functions.push_back(call);

    Function start;
    start.ret = "int";
    start.name = v["start"];
    start.params = {"cgrpc_channel *channel",
                    "const " + v["input_type"] + " *request",
                    "const cgrpc_call_options *opts",
                    "cgrpc_unary_done_cb done",
                    "void *user_data",
                    "cgrpc_call **call_ptr"};
    start.what = "the async stub";
    AddProse("Starts a call to " + full +
                 " and returns at once (see "
                 "cgrpc_unary_start()).  |done| receives the reply, a " +
                 v["output_type"] + ", as a ProtobufCMessage pointer.",
             0, &start.doc);
    start.body =
        Statement("return cgrpc_unary_start(",
                  {"channel", ref, "request != NULL ? &request->base : NULL",
                   "opts", "done", "user_data", "call_ptr"},
                  ");");
    functions.push_back(start);
    return functions;
  }

  // How each kind goes on after the call is open, for the comments.
  std::string then_blocking;
  std::string then_async;
  std::string read_loop = "read the responses with " + v["read"] +
                          "() until it returns 0, then get the status with "
                          "cgrpc_call_finish()";
  std::string async_reads =
      "ask for each response with cgrpc_call_read_async(); |on_read| "
      "receives it (NULL at the end), and |on_done| runs last with the "
      "status";
  switch (kind) {
    case Kind::kClientStreaming:
      then_blocking = "send the requests with " + v["write"] +
                      "(), then get the reply and the status with " +
                      v["finish"] + "()";
      then_async = "send the requests with " + v["write_async"] +
                   "() and end them with cgrpc_call_writes_done(); ask for "
                   "the reply with cgrpc_call_read_async(), which |on_read| "
                   "receives; |on_done| runs last with the status";
      break;
    case Kind::kServerStreaming:
      then_blocking = read_loop;
      then_async = async_reads;
      break;
    default:
      then_blocking = "send the requests with " + v["write"] +
                      "() and end them with cgrpc_call_writes_done() "
                      "(one thread may write while another reads); " +
                      read_loop;
      then_async = "send the requests with " + v["write_async"] +
                   "() and end them with cgrpc_call_writes_done(); " +
                   async_reads;
      break;
  }
  const char* kRelease =
      ".  Release the call with cgrpc_call_unref() when done with it.";

  Function open;
  open.ret = "int";
  open.name = v["open"];
  open.what = "the streaming stub";
  Function open_async;
  open_async.ret = "int";
  open_async.name = v["open_async"];
  open_async.what = "the async streaming stub";
  std::function<std::string(const std::string&)> async_body;
  if (kind == Kind::kServerStreaming) {
    open.params = {"cgrpc_channel *channel",
                   "const " + v["input_type"] + " *request",
                   "const cgrpc_call_options *opts", "cgrpc_call **call_ptr"};
    open_async.params = {"cgrpc_channel *channel",
                         "const " + v["input_type"] + " *request",
                         "const cgrpc_call_options *opts",
                         "const cgrpc_call_callbacks *cbs",
                         "void *user_data",
                         "cgrpc_call **call_ptr"};
    AddProse("Starts a server-streaming call to " + full +
                 ": opens it (see cgrpc_call_open()), sends |request| "
                 "(serialized before this returns; it stays the caller's) "
                 "and half-closes.  |*call_ptr| receives the call: " +
                 then_blocking + kRelease,
             0, &open.doc);
    AddProse(
        "Returns 0, CGRPC_ERR_INVALID_ARGUMENT when |request| or "
        "|call_ptr| is NULL, or an error from cgrpc_call_open(), "
        "cgrpc_call_write() or cgrpc_call_writes_done(); |*call_ptr| is "
        "then NULL, and a call that was opened has been cancelled and "
        "released.  A call that ends before the request is sent is not "
        "an error here: cgrpc_call_finish() reports its status.",
        0, &open.doc);
    AddProse("Like " + v["open"] +
                 "(), in the callback form (see cgrpc_call_open_async()): "
                 "opens the call, queues |request| with "
                 "cgrpc_call_write_async() (|on_write_done| reports it) and "
                 "half-closes.  |cbs| is copied; its callbacks run "
                 "on the channel's thread with |user_data|: " +
                 then_async + kRelease,
             0, &open_async.doc);
    AddProse("Returns as " + v["open"] +
                 "().  When the error comes after the call was opened, the "
                 "call has been cancelled and released, and |on_done| still "
                 "runs once.",
             0, &open_async.doc);

    // Unwinds a call that could not be set up: cancel, then drop our
    // reference, so that no half-open call is left behind.
    std::string guards =
        "  cgrpc_call *call = NULL;\n"
        "  int rv;\n"
        "\n"
        "  if (call_ptr == NULL) {\n" +
        std::string(kInvalidArgument) +
        "  }\n"
        "  *call_ptr = NULL;\n"
        "  if (request == NULL) {\n" +
        std::string(kInvalidArgument) + "  }\n";
    std::string finish_setup =
        "  /* CGRPC_ERR_CLOSED: the call has already ended and reports its "
        "own\n"
        "   * status, so hand it over rather than fail. */\n"
        "  if (rv != 0 && rv != CGRPC_ERR_CLOSED) {\n"
        "    cgrpc_call_cancel(call);\n"
        "    cgrpc_call_unref(call);\n"
        "    return rv;\n"
        "  }\n"
        "  *call_ptr = call;\n"
        "  return 0;\n";
    open.body = guards +
                Statement("rv = cgrpc_call_open(",
                          {"channel", ref, "opts", "&call"}, ");") +
                "  if (rv != 0) {\n"
                "    return rv;\n"
                "  }\n"
                "  rv = cgrpc_call_write(call, &request->base);\n"
                "  if (rv == 0) {\n"
                "    rv = cgrpc_call_writes_done(call);\n"
                "  }\n" +
                finish_setup;
    async_body = [=](const std::string& opener) {
      return guards +
             Statement("rv = " + opener + "(",
                       {"channel", ref, "opts", "cbs", "user_data", "&call"},
                       ");") +
             "  if (rv != 0) {\n"
             "    return rv;\n"
             "  }\n"
             "  rv = cgrpc_call_write_async(call, &request->base);\n"
             "  if (rv == 0) {\n"
             "    rv = cgrpc_call_writes_done(call);\n"
             "  }\n" +
             finish_setup;
    };
  } else {
    open.params = {"cgrpc_channel *channel", "const cgrpc_call_options *opts",
                   "cgrpc_call **call_ptr"};
    open_async.params = {"cgrpc_channel *channel",
                         "const cgrpc_call_options *opts",
                         "const cgrpc_call_callbacks *cbs", "void *user_data",
                         "cgrpc_call **call_ptr"};
    AddProse(std::string("Opens a ") + KindText(kind) + " call to " + full +
                 " (see cgrpc_call_open()).  |*call_ptr| receives the "
                 "call: " +
                 then_blocking + kRelease,
             0, &open.doc);
    AddProse("Returns 0, or an error from cgrpc_call_open().", 0, &open.doc);
    AddProse("Like " + v["open"] +
                 "(), in the callback form (see cgrpc_call_open_async()).  "
                 "|cbs| is copied; its callbacks run on the channel's "
                 "thread with |user_data|: " +
                 then_async + kRelease,
             0, &open_async.doc);
    AddProse("Returns 0, or an error from cgrpc_call_open_async().", 0,
             &open_async.doc);
    open.body = Statement("return cgrpc_call_open(",
                          {"channel", ref, "opts", "call_ptr"}, ");");
    async_body = [=](const std::string& opener) {
      return Statement("return " + opener + "(",
                       {"channel", ref, "opts", "cbs", "user_data", "call_ptr"},
                       ");");
    };
  }
  open_async.body = async_body("cgrpc_call_open_async");
  // The same call, not started yet: the first read can be asked for before
  // any message can arrive.
  Function new_async = open_async;
  new_async.name = v["new_async"];
  new_async.what = "the unstarted async streaming stub";
  new_async.doc.clear();
  AddProse("Like " + v["open_async"] +
               "(), but the call does not start until cgrpc_call_start() "
               "(see cgrpc_call_new_async()): ask for the first message "
               "with cgrpc_call_read_async() in between, and no message "
               "can be missed.  A call released without being started is "
               "freed and reports nothing.",
           0, &new_async.doc);
  AddProse("Returns as " + v["open_async"] +
               "(), except that a call that could not be set up has been "
               "released without reporting anything.",
           0, &new_async.doc);
  new_async.body = async_body("cgrpc_call_new_async");
  functions.push_back(open);
  functions.push_back(open_async);
  functions.push_back(new_async);

  if (StreamsRequests(kind)) {
    std::string why = kind == Kind::kClientStreaming
                          ? v["finish"] + "()"
                          : std::string("cgrpc_call_finish()");
    Function write;
    write.ret = "int";
    write.name = v["write"];
    write.params = {"cgrpc_call *call",
                    "const " + v["input_type"] + " *request"};
    write.what = "the write stub";
    AddProse("Sends |request| on a call from " + v["open"] +
                 "() (see cgrpc_call_write()).  |request| is serialized "
                 "before this returns and stays the caller's; this blocks "
                 "while the call's send buffer is full.  Returns 0, "
                 "CGRPC_ERR_INVALID_ARGUMENT when |request| is NULL, or an "
                 "error from cgrpc_call_write(): CGRPC_ERR_CLOSED when the "
                 "call has ended (" +
                 why + " tells why).",
             0, &write.doc);
    write.body = "  if (request == NULL) {\n" + std::string(kInvalidArgument) +
                 "  }\n"
                 "  return cgrpc_call_write(call, &request->base);\n";
    functions.push_back(write);

    Function write_async;
    write_async.ret = "int";
    write_async.name = v["write_async"];
    write_async.params = write.params;
    write_async.what = "the async write stub";
    AddProse("Queues |request| on a call from " + v["open_async"] +
                 "() without blocking (see cgrpc_call_write_async()); "
                 "|on_write_done| runs once it has gone out.  |request| is "
                 "serialized before this returns and stays the caller's.  "
                 "One write may be pending at a time.  Returns 0, "
                 "CGRPC_ERR_INVALID_ARGUMENT when |request| is NULL, or an "
                 "error from cgrpc_call_write_async().",
             0, &write_async.doc);
    write_async.body =
        "  if (request == NULL) {\n" + std::string(kInvalidArgument) +
        "  }\n"
        "  return cgrpc_call_write_async(call, &request->base);\n";
    functions.push_back(write_async);
  }

  if (StreamsResponses(kind)) {
    Function read;
    read.ret = "int";
    read.name = v["read"];
    read.params = {"cgrpc_call *call", v["output_type"] + " **reply"};
    read.what = "the read stub";
    AddProse("Waits for the next response on a call from " + v["open"] +
                 "() (see cgrpc_call_read()).  Returns 1 and sets |*reply| "
                 "to a " +
                 v["output_type"] +
                 " that the caller frees with "
                 "protobuf_c_message_free_unpacked(); 0 at the end of the "
                 "stream (then call cgrpc_call_finish()); or an error, such "
                 "as CGRPC_ERR_INVALID_ARGUMENT when |reply| is NULL.  "
                 "|*reply| is NULL unless 1 is returned.",
             0, &read.doc);
    read.body =
        "  ProtobufCMessage *msg = NULL;\n"
        "  int rv;\n"
        "\n"
        "  if (reply == NULL) {\n" +
        std::string(kInvalidArgument) +
        "  }\n"
        "  rv = cgrpc_call_read(call, &msg);\n"
        "  /* Converted here, not through a cast of |reply|, which "
        "would break\n"
        "   * strict aliasing. */\n" +
        Assignment("*reply =", "(" + v["output_type"] + " *)msg;", 2) +
        "  return rv;\n";
    functions.push_back(read);
  }

  if (kind == Kind::kClientStreaming) {
    Function finish;
    finish.ret = "cgrpc_status_code";
    finish.name = v["finish"];
    finish.params = {"cgrpc_call *call", v["output_type"] + " **reply",
                     "cgrpc_status *status"};
    finish.what = "the finish stub";
    AddProse("Ends the requests of a call from " + v["open"] +
                 "() if that has not been done, then waits for the reply "
                 "and the status (see cgrpc_call_finish_with_reply()).  On "
                 "OK, |*reply| receives a " +
                 v["output_type"] +
                 " that the caller frees with "
                 "protobuf_c_message_free_unpacked(); otherwise it is set to "
                 "NULL.  |status|, when not NULL, receives the code, message "
                 "and metadata; free them with cgrpc_status_clear().  Returns "
                 "the status code.  The call still needs cgrpc_call_unref().",
             0, &finish.doc);
    // The call does not depend on names, so it is laid out by hand, the
    // way clang-format does.
    finish.body =
        std::string(
            "  ProtobufCMessage *out = NULL;\n"
            "  cgrpc_status_code code;\n"
            "\n"
            "  code =\n"
            "      cgrpc_call_finish_with_reply(call, reply != NULL "
            "? &out : NULL, status);\n"
            "\n"
            "  if (reply != NULL) {\n") +
        Assignment("*reply =", "(" + v["output_type"] + " *)out;", 4) +
        "  }\n"
        "  return code;\n";
    functions.push_back(finish);
  }
  return functions;
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
    for (int i = 0; i < service_->method_count(); i++) {
      for (const Function& function : ServerFunctions(i)) {
        PrintDeclaration(function, printer);
      }
    }
  }
  if (options_.client) {
    for (int i = 0; i < service_->method_count(); i++) {
      std::vector<Function> functions = ClientFunctions(i);
      // The method's own comment goes with its first stub.
      std::vector<std::string> lead =
          CommentLines(LeadingComment(service_->method(i)));
      if (!lead.empty() && !functions.empty()) {
        lead.push_back("");
        functions[0].doc.insert(functions[0].doc.begin(), lead.begin(),
                                lead.end());
      }
      for (const Function& function : functions) {
        PrintDeclaration(function, printer);
      }
    }
  }
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
    Kind kind = KindOf(method);
    Vars vars = MethodVars(i);
    if (i > 0) printer->Print("\n");
    std::vector<std::string> comment = CommentLines(LeadingComment(method));
    std::vector<std::string> params = {"cgrpc_server_ctx *ctx"};
    if (!StreamsRequests(kind)) {
      params.push_back("const " + vars["input_type"] + " *request");
    }
    if (!StreamsResponses(kind)) {
      params.push_back(vars["output_type"] + " *reply");
    }
    params.push_back("void *user_data");
    switch (kind) {
      case Kind::kClientStreaming:
        AddProse("Client-streaming: read the requests with " + vars["recv"] +
                     "() until it returns 0, then fill in |reply| and "
                     "return the status.",
                 2, &comment);
        break;
      case Kind::kServerStreaming:
        AddProse("Server-streaming: send the responses with " + vars["send"] +
                     "(), then return the status.",
                 2, &comment);
        break;
      case Kind::kBidi:
        AddProse("Bidirectional-streaming: read the requests with " +
                     vars["recv"] + "() and send the responses with " +
                     vars["send"] +
                     "(), in any order, then return the "
                     "status.",
                 2, &comment);
        break;
      case Kind::kUnary:
        break;
    }
    PrintComment(printer, comment, 2);
    std::string head = "cgrpc_status_code (*" + vars["method"] + ")(";
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

void ServiceGenerator::GenerateSource(pb::io::Printer* printer) const {
  std::string title = "/* ---- " + service_->full_name() + " ";
  if (title.size() < 77) title += std::string(77 - title.size(), '-');
  printer->Print("$title$ */\n\n", "title", title);

  PrintMethodTable(printer);
  if (options_.server) {
    PrintDispatchers(printer);
    PrintRegister(printer);
    for (int i = 0; i < service_->method_count(); i++) {
      for (const Function& function : ServerFunctions(i)) {
        PrintDefinition(function, printer);
      }
    }
  }
  if (options_.client) {
    for (int i = 0; i < service_->method_count(); i++) {
      for (const Function& function : ClientFunctions(i)) {
        PrintDefinition(function, printer);
      }
    }
  }
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
                 "    .file_desc = &$file_desc$,\n"
                 "};\n");
}

void ServiceGenerator::PrintDispatchers(pb::io::Printer* printer) const {
  for (int i = 0; i < service_->method_count(); i++) {
    Kind kind = KindOf(service_->method(i));
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
    // The server passes NULL for what the method kind does not use: a
    // streaming handler reads its requests or writes its responses itself.
    std::vector<std::string> args = {"ctx"};
    switch (kind) {
      case Kind::kClientStreaming:
        printer->Print(
            "  /* NULL: the handler reads the requests itself. */\n"
            "  (void)request;\n");
        break;
      case Kind::kServerStreaming:
        printer->Print(
            "  /* NULL: the handler sends the responses itself. */\n"
            "  (void)reply;\n");
        break;
      case Kind::kBidi:
        printer->Print(
            "  /* NULL: the handler reads and sends the messages itself. */\n"
            "  (void)request;\n"
            "  (void)reply;\n");
        break;
      case Kind::kUnary:
        break;
    }
    if (!StreamsRequests(kind)) {
      args.push_back("(const " + vars["input_type"] + " *)request");
    }
    if (!StreamsResponses(kind)) {
      args.push_back("(" + vars["output_type"] + " *)reply");
    }
    args.push_back("user_data");
    PrintRaw(printer, "  " + WrapParams("return impl->" + vars["method"] + "(",
                                        args, ");", 2, Wrap::kFewestLines));
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
    Vars vars = MethodVars(i);
    // A NULL dispatch makes the server answer UNIMPLEMENTED.
    printer->Print(vars,
                   "  handlers[$index$].dispatch = NULL;\n"
                   "  if (servicer->$method$ != NULL) {\n");
    PrintRaw(printer, Assignment("handlers[" + vars["index"] + "].dispatch =",
                                 vars["dispatch"] + ";", 4) +
                          "  }");
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

}  // namespace plugin
}  // namespace cgrpc
