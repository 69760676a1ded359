/* SPDX-License-Identifier: MIT */
/*
 * Checks what protoc-gen-c-grpc generated for the protos in protos/test: the
 * method and service descriptors (names, paths, kinds, message descriptors
 * from this and other files and packages), the register function, the
 * dispatch trampolines and the client stubs.
 *
 * This file defines the runtime functions the generated code calls as
 * recording fakes, so the test needs only protobuf-c: it checks exactly what
 * the generated code hands to the runtime, and in which order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "plugin_common.grpc-c.h"
#include "plugin_empty_service.grpc-c.h"
#include "plugin_import.grpc-c.h"
#include "plugin_nested_pkg.grpc-c.h"
#include "plugin_noservice.grpc-c.h"
#include "plugin_nopkg.grpc-c.h"
#include "plugin_pkg.grpc-c.h"
#include "sub/plugin_sub.grpc-c.h"
#ifdef HAVE_C_PACKAGE_PROTO
#include "plugin_c_package.grpc-c.h"
#endif

/* ---- fake runtime ------------------------------------------------------- */

#define MAX_HANDLERS 16

static struct {
  int calls;
  cgrpc_server *server;
  const cgrpc_service_desc *desc;
  cgrpc_method_handler handlers[MAX_HANDLERS];
  const void *servicer;
  size_t servicer_size;
  void *user_data;
} reg;

static struct {
  int calls;
  cgrpc_channel *channel;
  const cgrpc_method_desc *method;
  const ProtobufCMessage *request;
  ProtobufCMessage **reply;
  const cgrpc_call_options *opts;
  cgrpc_status *status;
  cgrpc_unary_done_cb done;
  void *user_data;
  cgrpc_call **call_ptr;
} client;

static ProtobufCMessage *fake_reply;

int cgrpc_server_register_service(cgrpc_server *server,
                                  const cgrpc_service_desc *desc,
                                  const cgrpc_method_handler *handlers,
                                  const void *servicer, size_t servicer_size,
                                  void *user_data) {
  reg.calls++;
  reg.server = server;
  reg.desc = desc;
  if (handlers != NULL) {
    assert_true(desc->n_methods <= MAX_HANDLERS);
    memcpy(reg.handlers, handlers, desc->n_methods * sizeof *handlers);
  }
  reg.servicer = servicer;
  reg.servicer_size = servicer_size;
  reg.user_data = user_data;
  return 0;
}

cgrpc_status_code cgrpc_unary_call(cgrpc_channel *channel,
                                   const cgrpc_method_desc *method,
                                   const ProtobufCMessage *request,
                                   ProtobufCMessage **reply,
                                   const cgrpc_call_options *opts,
                                   cgrpc_status *status) {
  client.calls++;
  client.channel = channel;
  client.method = method;
  client.request = request;
  client.reply = reply;
  client.opts = opts;
  client.status = status;
  if (reply == NULL) {
    return CGRPC_STATUS_INVALID_ARGUMENT;
  }
  *reply = fake_reply;
  return fake_reply != NULL ? CGRPC_STATUS_OK : CGRPC_STATUS_UNAVAILABLE;
}

int cgrpc_unary_start(cgrpc_channel *channel, const cgrpc_method_desc *method,
                      const ProtobufCMessage *request,
                      const cgrpc_call_options *opts, cgrpc_unary_done_cb done,
                      void *user_data, cgrpc_call **call_ptr) {
  client.calls++;
  client.channel = channel;
  client.method = method;
  client.request = request;
  client.opts = opts;
  client.done = done;
  client.user_data = user_data;
  client.call_ptr = call_ptr;
  return 0;
}

/* The streaming fakes: each appends its name to |stream.log| (so a test can
 * check the order of calls), records its arguments and returns the value the
 * test set in |stream|. */
static struct {
  char log[256];
  cgrpc_channel *channel;
  const cgrpc_method_desc *method;
  const cgrpc_call_options *opts;
  const cgrpc_call_callbacks *cbs;
  void *user_data;
  cgrpc_call **call_ptr;
  cgrpc_call *call;
  cgrpc_server_ctx *ctx;
  const ProtobufCMessage *written;
  ProtobufCMessage **reply;
  cgrpc_status *status;
  /* What the fakes return. */
  int open_rv;
  int write_rv;
  int writes_done_rv;
  ProtobufCMessage *read_msg; /* read: 1 with this message, or 0 if NULL */
  int read_err;               /* read: this error instead, if not 0 */
  cgrpc_status_code finish_code;
} stream;

static void stream_log(const char *name) {
  if (stream.log[0] != '\0') {
    strcat(stream.log, ",");
  }
  strcat(stream.log, name);
}

static char call_storage;
#define FAKE_CALL ((cgrpc_call *)(void *)&call_storage)

int cgrpc_call_open(cgrpc_channel *channel, const cgrpc_method_desc *method,
                    const cgrpc_call_options *opts, cgrpc_call **call_ptr) {
  stream_log("open");
  stream.channel = channel;
  stream.method = method;
  stream.opts = opts;
  stream.call_ptr = call_ptr;
  if (call_ptr == NULL) {
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  *call_ptr = stream.open_rv == 0 ? FAKE_CALL : NULL;
  return stream.open_rv;
}

int cgrpc_call_open_async(cgrpc_channel *channel,
                          const cgrpc_method_desc *method,
                          const cgrpc_call_options *opts,
                          const cgrpc_call_callbacks *cbs, void *user_data,
                          cgrpc_call **call_ptr) {
  stream_log("open_async");
  stream.channel = channel;
  stream.method = method;
  stream.opts = opts;
  stream.cbs = cbs;
  stream.user_data = user_data;
  stream.call_ptr = call_ptr;
  if (call_ptr == NULL) {
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  *call_ptr = stream.open_rv == 0 ? FAKE_CALL : NULL;
  return stream.open_rv;
}

int cgrpc_call_new_async(cgrpc_channel *channel,
                         const cgrpc_method_desc *method,
                         const cgrpc_call_options *opts,
                         const cgrpc_call_callbacks *cbs, void *user_data,
                         cgrpc_call **call_ptr) {
  stream_log("new_async");
  stream.channel = channel;
  stream.method = method;
  stream.opts = opts;
  stream.cbs = cbs;
  stream.user_data = user_data;
  stream.call_ptr = call_ptr;
  if (call_ptr == NULL) {
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  *call_ptr = stream.open_rv == 0 ? FAKE_CALL : NULL;
  return stream.open_rv;
}

int cgrpc_call_write(cgrpc_call *call, const ProtobufCMessage *msg) {
  stream_log("write");
  stream.call = call;
  stream.written = msg;
  return stream.write_rv;
}

int cgrpc_call_write_async(cgrpc_call *call, const ProtobufCMessage *msg) {
  stream_log("write_async");
  stream.call = call;
  stream.written = msg;
  return stream.write_rv;
}

int cgrpc_call_writes_done(cgrpc_call *call) {
  stream_log("writes_done");
  stream.call = call;
  return stream.writes_done_rv;
}

int cgrpc_call_read(cgrpc_call *call, ProtobufCMessage **msg) {
  stream_log("read");
  stream.call = call;
  if (stream.read_err != 0) {
    *msg = NULL;
    return stream.read_err;
  }
  *msg = stream.read_msg;
  return stream.read_msg != NULL;
}

cgrpc_status_code cgrpc_call_finish_with_reply(cgrpc_call *call,
                                               ProtobufCMessage **reply,
                                               cgrpc_status *status) {
  stream_log("finish_with_reply");
  stream.call = call;
  stream.reply = reply;
  stream.status = status;
  if (reply == NULL) {
    return CGRPC_STATUS_INVALID_ARGUMENT;
  }
  *reply = stream.finish_code == CGRPC_STATUS_OK ? stream.read_msg : NULL;
  return stream.finish_code;
}

void cgrpc_call_cancel(cgrpc_call *call) {
  stream_log("cancel");
  assert_ptr_equal(call, FAKE_CALL);
}

void cgrpc_call_unref(cgrpc_call *call) {
  stream_log("unref");
  assert_ptr_equal(call, FAKE_CALL);
}

int cgrpc_server_ctx_read(cgrpc_server_ctx *ctx, ProtobufCMessage **msg) {
  stream_log("ctx_read");
  stream.ctx = ctx;
  if (stream.read_err != 0) {
    *msg = NULL;
    return stream.read_err;
  }
  *msg = stream.read_msg;
  return stream.read_msg != NULL;
}

int cgrpc_server_ctx_write(cgrpc_server_ctx *ctx, const ProtobufCMessage *msg) {
  stream_log("ctx_write");
  stream.ctx = ctx;
  stream.written = msg;
  return stream.write_rv;
}

static int reset(void **state) {
  (void)state;
  memset(&reg, 0, sizeof reg);
  memset(&client, 0, sizeof client);
  memset(&stream, 0, sizeof stream);
  fake_reply = NULL;
  return 0;
}

/* Opaque handles are never dereferenced by the generated code, so any
 * distinct address will do. */
static char server_storage, channel_storage, ctx_storage;
#define FAKE_SERVER ((cgrpc_server *)(void *)&server_storage)
#define FAKE_CHANNEL ((cgrpc_channel *)(void *)&channel_storage)
#define FAKE_CTX ((cgrpc_server_ctx *)(void *)&ctx_storage)

/* ---- descriptors -------------------------------------------------------- */

static void check_method(const cgrpc_method_desc *m, const char *name,
                         const char *path, cgrpc_method_kind kind,
                         const ProtobufCMessageDescriptor *input,
                         const ProtobufCMessageDescriptor *output) {
  assert_string_equal(m->name, name);
  assert_string_equal(m->path, path);
  assert_int_equal(m->kind, kind);
  assert_ptr_equal(m->input, input);
  assert_ptr_equal(m->output, output);
}

static void test_plugin_pkg_all_kinds(void **state) {
  const cgrpc_service_desc *d = &plugin_test__kinds__service__desc;
  (void)state;
  assert_string_equal(d->name, "plugin_test.Kinds");
  assert_int_equal(d->n_methods, 4);
  assert_ptr_equal(d->methods, plugin_test__kinds__service__methods);
  check_method(&d->methods[0], "Unary", "/plugin_test.Kinds/Unary",
               CGRPC_METHOD_UNARY, &plugin_test__req__descriptor,
               &plugin_test__resp__descriptor);
  check_method(&d->methods[1], "ClientStream",
               "/plugin_test.Kinds/ClientStream",
               CGRPC_METHOD_CLIENT_STREAMING, &plugin_test__req__descriptor,
               &plugin_test__resp__descriptor);
  check_method(&d->methods[2], "ServerStream",
               "/plugin_test.Kinds/ServerStream",
               CGRPC_METHOD_SERVER_STREAMING, &plugin_test__req__descriptor,
               &plugin_test__resp__descriptor);
  check_method(&d->methods[3], "Bidi", "/plugin_test.Kinds/Bidi",
               CGRPC_METHOD_BIDI_STREAMING, &plugin_test__req__descriptor,
               &plugin_test__resp__descriptor);
}

static void test_plugin_pkg_second_service(void **state) {
  const cgrpc_service_desc *d = &plugin_test__second__service__desc;
  (void)state;
  assert_string_equal(d->name, "plugin_test.Second");
  assert_int_equal(d->n_methods, 1);
  check_method(&d->methods[0], "Echo", "/plugin_test.Second/Echo",
               CGRPC_METHOD_UNARY, &plugin_test__req__descriptor,
               &plugin_test__resp__descriptor);
}

static void test_plugin_nested_pkg_names(void **state) {
  const cgrpc_service_desc *d = &a__b__c__http2__service__service__desc;
  (void)state;
  assert_string_equal(d->name, "a.b.c.Http2_Service");
  assert_int_equal(d->n_methods, 8);
  check_method(&d->methods[0], "GetV2Thing", "/a.b.c.Http2_Service/GetV2Thing",
               CGRPC_METHOD_UNARY, &a__b__c__outer__inner__descriptor,
               &a__b__c__outer__inner__deeper__descriptor);
  check_method(&d->methods[1], "HTTPFetch", "/a.b.c.Http2_Service/HTTPFetch",
               CGRPC_METHOD_UNARY, &a__b__c__httpthing__descriptor,
               &a__b__c__outer__descriptor);
  check_method(&d->methods[2], "do_it_now", "/a.b.c.Http2_Service/do_it_now",
               CGRPC_METHOD_UNARY, &a__b__c__outer__descriptor,
               &a__b__c__outer__descriptor);
  check_method(&d->methods[3], "Method_With_Underscores",
               "/a.b.c.Http2_Service/Method_With_Underscores",
               CGRPC_METHOD_UNARY, &a__b__c__outer__inner__deeper__descriptor,
               &a__b__c__httpthing__descriptor);
  check_method(&d->methods[4], "Stream2Things",
               "/a.b.c.Http2_Service/Stream2Things",
               CGRPC_METHOD_BIDI_STREAMING, &a__b__c__outer__descriptor,
               &a__b__c__outer__inner__descriptor);
  assert_string_equal(d->methods[5].path, "/a.b.c.Http2_Service/Call");
  assert_string_equal(d->methods[6].path, "/a.b.c.Http2_Service/Service");
  assert_string_equal(d->methods[7].path, "/a.b.c.Http2_Service/Servicer");
}

static void test_plugin_nopkg_names(void **state) {
  const cgrpc_service_desc *d = &no_pkg_service__service__desc;
  (void)state;
  assert_string_equal(d->name, "NoPkgService");
  assert_int_equal(d->n_methods, 2);
  check_method(&d->methods[0], "DoIt", "/NoPkgService/DoIt",
               CGRPC_METHOD_UNARY, &no_pkg_request__descriptor,
               &no_pkg_reply__descriptor);
  check_method(&d->methods[1], "Listen", "/NoPkgService/Listen",
               CGRPC_METHOD_SERVER_STREAMING, &no_pkg_request__descriptor,
               &no_pkg_reply__descriptor);
}

static void test_plugin_import_types_from_other_files(void **state) {
  const cgrpc_service_desc *d = &plugin__importer__importer__service__desc;
  (void)state;
  assert_string_equal(d->name, "plugin.importer.Importer");
  assert_int_equal(d->n_methods, 4);
  check_method(&d->methods[0], "PingPong",
               "/plugin.importer.Importer/PingPong", CGRPC_METHOD_UNARY,
               &plugin__common__ping__descriptor,
               &plugin__common__pong__descriptor);
  check_method(&d->methods[1], "Upload", "/plugin.importer.Importer/Upload",
               CGRPC_METHOD_UNARY, &plugin__common__ping__payload__descriptor,
               &plugin__importer__local__descriptor);
  check_method(&d->methods[2], "FromSub", "/plugin.importer.Importer/FromSub",
               CGRPC_METHOD_UNARY, &plugin__importer__local__descriptor,
               &plugin__sub__sub_message__descriptor);
  check_method(&d->methods[3], "Watch", "/plugin.importer.Importer/Watch",
               CGRPC_METHOD_SERVER_STREAMING,
               &plugin__importer__local__descriptor,
               &plugin__common__pong__descriptor);
}

static void test_plugin_sub_folder(void **state) {
  const cgrpc_service_desc *d = &plugin__sub__sub_service__service__desc;
  (void)state;
  assert_string_equal(d->name, "plugin.sub.SubService");
  assert_int_equal(d->n_methods, 1);
  check_method(&d->methods[0], "Relay", "/plugin.sub.SubService/Relay",
               CGRPC_METHOD_UNARY, &plugin__common__ping__descriptor,
               &plugin__sub__sub_message__descriptor);
}

static void test_plugin_empty_service(void **state) {
  const cgrpc_service_desc *d = &plugin_test__empty__empty__service__desc;
  PluginTest__Empty__Empty_Servicer servicer = {0};
  (void)state;
  assert_string_equal(d->name, "plugin_test.empty.Empty");
  assert_int_equal(d->n_methods, 0);
  assert_null(d->methods);
  assert_int_equal(plugin_test__empty__empty__servicer__register(
                       FAKE_SERVER, &servicer, NULL),
                   0);
  assert_int_equal(reg.calls, 1);
  assert_ptr_equal(reg.desc, d);
}

#ifdef HAVE_C_PACKAGE_PROTO
static void test_plugin_c_package(void **state) {
  /* C names follow c_package; the wire names keep the .proto package. */
  const cgrpc_service_desc *d = &plugin_c__renamed__renamed__service__desc;
  (void)state;
  assert_string_equal(d->name, "plugin.orig.Renamed");
  check_method(&d->methods[0], "GetPart", "/plugin.orig.Renamed/GetPart",
               CGRPC_METHOD_UNARY, &plugin_c__renamed__thing__descriptor,
               &plugin_c__renamed__thing__part__descriptor);
}
#endif

/* ---- embedded file descriptors (server reflection) --------------------- */

/* |f| is the file |name| and its bytes start with FileDescriptorProto's
 * field 1 (name) holding it. */
static void check_file(const cgrpc_file_desc *f, const char *name) {
  size_t n = strlen(name);
  assert_non_null(f);
  assert_string_equal(f->name, name);
  assert_true(n < 128 && f->len > n + 2);
  assert_int_equal(f->data[0], 0x0a);
  assert_int_equal(f->data[1], n);
  assert_memory_equal(f->data + 2, name, n);
  assert_true(f->n_deps == 0 ? f->deps == NULL : f->deps != NULL);
}

static void test_plugin_file_desc_of_service(void **state) {
  (void)state;
  check_file(plugin_test__kinds__service__desc.file_desc, "plugin_pkg.proto");
  assert_int_equal(plugin_test__kinds__service__desc.file_desc->n_deps, 0);
  /* Two services of one file share its descriptor. */
  assert_ptr_equal(plugin_test__second__service__desc.file_desc,
                   plugin_test__kinds__service__desc.file_desc);
  check_file(no_pkg_service__service__desc.file_desc, "plugin_nopkg.proto");
  check_file(plugin__sub__sub_service__service__desc.file_desc,
             "sub/plugin_sub.proto");
}

static void test_plugin_file_desc_imports(void **state) {
  const cgrpc_file_desc *f = plugin__importer__importer__service__desc.file_desc;
  (void)state;
  check_file(f, "plugin_import.proto");
  assert_int_equal(f->n_deps, 2);
  /* plugin_common.proto has no services, so nothing of ours was generated
   * for it: the importing file carries it. */
  check_file(f->deps[0], "plugin_common.proto");
  check_file(f->deps[1], "sub/plugin_sub.proto");
  /* A copy of its own, not the one plugin_sub.grpc-c.c embeds. */
  assert_ptr_not_equal(f->deps[1],
                       plugin__sub__sub_service__service__desc.file_desc);
  assert_int_equal(f->deps[1]->len,
                   plugin__sub__sub_service__service__desc.file_desc->len);
  assert_memory_equal(f->deps[1]->data,
                      plugin__sub__sub_service__service__desc.file_desc->data,
                      f->deps[1]->len);
}

#ifdef HAVE_C_PACKAGE_PROTO
static void test_plugin_file_desc_transitive_imports(void **state) {
  /* plugin_c_package.proto -> protobuf-c/protobuf-c.proto ->
   * google/protobuf/descriptor.proto: a well-known file, embedded too. */
  const cgrpc_file_desc *f = plugin_c__renamed__renamed__service__desc.file_desc;
  (void)state;
  check_file(f, "plugin_c_package.proto");
  assert_int_equal(f->n_deps, 1);
  check_file(f->deps[0], "protobuf-c/protobuf-c.proto");
  assert_int_equal(f->deps[0]->n_deps, 1);
  check_file(f->deps[0]->deps[0], "google/protobuf/descriptor.proto");
  assert_true(f->deps[0]->deps[0]->len > 1000);
}
#endif

/* ---- register and dispatch ---------------------------------------------- */

/* What the typed servicer methods below saw. */
static struct {
  const char *which;
  cgrpc_server_ctx *ctx;
  const PluginTest__Req *request;
  PluginTest__Resp *reply;
  void *user_data;
} seen;

static cgrpc_status_code kinds_unary(cgrpc_server_ctx *ctx,
                                     const PluginTest__Req *request,
                                     PluginTest__Resp *reply,
                                     void *user_data) {
  seen.which = "unary";
  seen.ctx = ctx;
  seen.request = request;
  seen.reply = reply;
  seen.user_data = user_data;
  return CGRPC_STATUS_NOT_FOUND;
}

static cgrpc_status_code kinds_client_stream(cgrpc_server_ctx *ctx,
                                             PluginTest__Resp *reply,
                                             void *user_data) {
  seen.which = "client_stream";
  seen.ctx = ctx;
  seen.reply = reply;
  seen.user_data = user_data;
  return CGRPC_STATUS_ABORTED;
}

static cgrpc_status_code kinds_server_stream(cgrpc_server_ctx *ctx,
                                             const PluginTest__Req *request,
                                             void *user_data) {
  seen.which = "server_stream";
  seen.ctx = ctx;
  seen.request = request;
  seen.user_data = user_data;
  return CGRPC_STATUS_OUT_OF_RANGE;
}

static cgrpc_status_code kinds_bidi(cgrpc_server_ctx *ctx, void *user_data) {
  seen.which = "bidi";
  seen.ctx = ctx;
  seen.user_data = user_data;
  return CGRPC_STATUS_DATA_LOSS;
}

static void test_plugin_register_null_arguments(void **state) {
  PluginTest__Kinds_Servicer servicer = {0};
  (void)state;
  assert_int_equal(
      plugin_test__kinds__servicer__register(NULL, &servicer, NULL),
      CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(
      plugin_test__kinds__servicer__register(FAKE_SERVER, NULL, NULL),
      CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(reg.calls, 0);
}

static void test_plugin_register_handlers(void **state) {
  PluginTest__Kinds_Servicer servicer = {0};
  int user_data;
  (void)state;
  servicer.unary = kinds_unary;
  servicer.bidi = kinds_bidi;

  assert_int_equal(
      plugin_test__kinds__servicer__register(FAKE_SERVER, &servicer,
                                             &user_data),
      0);
  assert_int_equal(reg.calls, 1);
  assert_ptr_equal(reg.server, FAKE_SERVER);
  assert_ptr_equal(reg.desc, &plugin_test__kinds__service__desc);
  assert_ptr_equal(reg.servicer, &servicer);
  assert_int_equal(reg.servicer_size, sizeof servicer);
  assert_ptr_equal(reg.user_data, &user_data);

  /* A trampoline for each method the servicer sets, of any kind. */
  assert_non_null(reg.handlers[0].dispatch);
  assert_null(reg.handlers[1].dispatch);
  assert_null(reg.handlers[2].dispatch);
  assert_non_null(reg.handlers[3].dispatch);
}

static void test_plugin_register_nothing_implemented(void **state) {
  PluginTest__Kinds_Servicer servicer = {0};
  size_t i;
  (void)state;
  /* Garbage that register must overwrite. */
  memset(reg.handlers, 0xff, sizeof reg.handlers);
  assert_int_equal(
      plugin_test__kinds__servicer__register(FAKE_SERVER, &servicer, NULL), 0);
  for (i = 0; i < plugin_test__kinds__service__desc.n_methods; i++) {
    assert_null(reg.handlers[i].dispatch);
  }
}

/* Registers a servicer with all four methods set. */
static void register_all_kinds(PluginTest__Kinds_Servicer *servicer,
                               void *user_data) {
  servicer->unary = kinds_unary;
  servicer->client_stream = kinds_client_stream;
  servicer->server_stream = kinds_server_stream;
  servicer->bidi = kinds_bidi;
  memset(&seen, 0, sizeof seen);
  assert_int_equal(
      plugin_test__kinds__servicer__register(FAKE_SERVER, servicer, user_data),
      0);
  assert_non_null(reg.handlers[0].dispatch);
  assert_non_null(reg.handlers[1].dispatch);
  assert_non_null(reg.handlers[2].dispatch);
  assert_non_null(reg.handlers[3].dispatch);
}

static void test_plugin_dispatch_unary(void **state) {
  PluginTest__Kinds_Servicer servicer = {0};
  PluginTest__Req request = PLUGIN_TEST__REQ__INIT;
  PluginTest__Resp reply = PLUGIN_TEST__RESP__INIT;
  int user_data;
  (void)state;
  register_all_kinds(&servicer, &user_data);

  /* The server calls the trampoline with its copy of the servicer. */
  assert_int_equal(reg.handlers[0].dispatch(reg.servicer, FAKE_CTX,
                                            &request.base, &reply.base,
                                            reg.user_data),
                   CGRPC_STATUS_NOT_FOUND);
  assert_string_equal(seen.which, "unary");
  assert_ptr_equal(seen.ctx, FAKE_CTX);
  assert_ptr_equal(seen.request, &request);
  assert_ptr_equal(seen.reply, &reply);
  assert_ptr_equal(seen.user_data, &user_data);
}

static void test_plugin_dispatch_client_stream(void **state) {
  PluginTest__Kinds_Servicer servicer = {0};
  PluginTest__Resp reply = PLUGIN_TEST__RESP__INIT;
  int user_data;
  (void)state;
  register_all_kinds(&servicer, &user_data);

  /* No request (the handler reads them); the reply to fill in. */
  assert_int_equal(reg.handlers[1].dispatch(reg.servicer, FAKE_CTX, NULL,
                                            &reply.base, reg.user_data),
                   CGRPC_STATUS_ABORTED);
  assert_string_equal(seen.which, "client_stream");
  assert_ptr_equal(seen.ctx, FAKE_CTX);
  assert_ptr_equal(seen.reply, &reply);
  assert_ptr_equal(seen.user_data, &user_data);
}

static void test_plugin_dispatch_server_stream(void **state) {
  PluginTest__Kinds_Servicer servicer = {0};
  PluginTest__Req request = PLUGIN_TEST__REQ__INIT;
  int user_data;
  (void)state;
  register_all_kinds(&servicer, &user_data);

  /* The request; no reply (the handler sends the responses). */
  assert_int_equal(reg.handlers[2].dispatch(reg.servicer, FAKE_CTX,
                                            &request.base, NULL,
                                            reg.user_data),
                   CGRPC_STATUS_OUT_OF_RANGE);
  assert_string_equal(seen.which, "server_stream");
  assert_ptr_equal(seen.ctx, FAKE_CTX);
  assert_ptr_equal(seen.request, &request);
  assert_ptr_equal(seen.user_data, &user_data);
}

static void test_plugin_dispatch_bidi(void **state) {
  PluginTest__Kinds_Servicer servicer = {0};
  int user_data;
  (void)state;
  register_all_kinds(&servicer, &user_data);

  assert_int_equal(reg.handlers[3].dispatch(reg.servicer, FAKE_CTX, NULL, NULL,
                                            reg.user_data),
                   CGRPC_STATUS_DATA_LOSS);
  assert_string_equal(seen.which, "bidi");
  assert_ptr_equal(seen.ctx, FAKE_CTX);
  assert_ptr_equal(seen.user_data, &user_data);
}

/* ---- handler helpers (__recv, __send) ----------------------------------- */

static void test_plugin_recv(void **state) {
  PluginTest__Req canned = PLUGIN_TEST__REQ__INIT;
  PluginTest__Req *request = &canned; /* must be overwritten */
  (void)state;

  stream.read_msg = &canned.base;
  assert_int_equal(plugin_test__kinds__client_stream__recv(FAKE_CTX, &request),
                   1);
  assert_ptr_equal(stream.ctx, FAKE_CTX);
  assert_ptr_equal(request, &canned);

  /* End of the requests. */
  stream.read_msg = NULL;
  assert_int_equal(plugin_test__kinds__bidi__recv(FAKE_CTX, &request), 0);
  assert_null(request);

  /* Errors pass through, with NULL. */
  request = &canned;
  stream.read_err = CGRPC_ERR_CLOSED;
  assert_int_equal(plugin_test__kinds__bidi__recv(FAKE_CTX, &request),
                   CGRPC_ERR_CLOSED);
  assert_null(request);
  assert_string_equal(stream.log, "ctx_read,ctx_read,ctx_read");

  /* A NULL out-pointer never reaches the runtime. */
  assert_int_equal(plugin_test__kinds__client_stream__recv(FAKE_CTX, NULL),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_string_equal(stream.log, "ctx_read,ctx_read,ctx_read");
}

static void test_plugin_send(void **state) {
  PluginTest__Resp reply = PLUGIN_TEST__RESP__INIT;
  (void)state;

  assert_int_equal(plugin_test__kinds__server_stream__send(FAKE_CTX, &reply),
                   0);
  assert_ptr_equal(stream.ctx, FAKE_CTX);
  assert_ptr_equal(stream.written, &reply.base);

  stream.write_rv = CGRPC_ERR_CLOSED;
  assert_int_equal(plugin_test__kinds__bidi__send(FAKE_CTX, &reply),
                   CGRPC_ERR_CLOSED);
  assert_string_equal(stream.log, "ctx_write,ctx_write");

  assert_int_equal(plugin_test__kinds__bidi__send(FAKE_CTX, NULL),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(plugin_test__kinds__server_stream__send(FAKE_CTX, NULL),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_string_equal(stream.log, "ctx_write,ctx_write");
}

/* ---- client stubs ------------------------------------------------------- */

static void test_plugin_call_stub(void **state) {
  PluginTest__Req request = PLUGIN_TEST__REQ__INIT;
  PluginTest__Resp canned = PLUGIN_TEST__RESP__INIT;
  PluginTest__Resp *reply = NULL;
  cgrpc_call_options opts = {0};
  cgrpc_status status = {0};
  (void)state;
  fake_reply = &canned.base;

  assert_int_equal(plugin_test__second__echo__call(FAKE_CHANNEL, &request,
                                                   &reply, &opts, &status),
                   CGRPC_STATUS_OK);
  assert_int_equal(client.calls, 1);
  assert_ptr_equal(client.channel, FAKE_CHANNEL);
  assert_ptr_equal(client.method, &plugin_test__second__service__methods[0]);
  assert_ptr_equal(client.request, &request.base);
  assert_ptr_equal(client.opts, &opts);
  assert_ptr_equal(client.status, &status);
  assert_ptr_equal(reply, &canned);
}

static void test_plugin_call_stub_failure_sets_null(void **state) {
  PluginTest__Req request = PLUGIN_TEST__REQ__INIT;
  PluginTest__Resp canned = PLUGIN_TEST__RESP__INIT;
  PluginTest__Resp *reply = &canned; /* must be overwritten */
  (void)state;
  assert_int_equal(plugin_test__kinds__unary__call(FAKE_CHANNEL, &request,
                                                   &reply, NULL, NULL),
                   CGRPC_STATUS_UNAVAILABLE);
  assert_null(reply);
  assert_ptr_equal(client.method, &plugin_test__kinds__service__methods[0]);
}

static void test_plugin_call_stub_null_arguments(void **state) {
  PluginTest__Req request = PLUGIN_TEST__REQ__INIT;
  PluginTest__Resp *reply = NULL;
  (void)state;
  /* NULL request and reply go through to the runtime, which reports them;
   * the stub itself must not dereference them. */
  plugin_test__kinds__unary__call(FAKE_CHANNEL, NULL, &reply, NULL, NULL);
  assert_int_equal(client.calls, 1);
  assert_null(client.request);
  assert_non_null(client.reply);

  assert_int_equal(plugin_test__kinds__unary__call(FAKE_CHANNEL, &request,
                                                   NULL, NULL, NULL),
                   CGRPC_STATUS_INVALID_ARGUMENT);
  assert_int_equal(client.calls, 2);
  assert_null(client.reply);
}

static void done_cb(cgrpc_call *call, const cgrpc_status *status,
                    ProtobufCMessage *reply, void *user_data) {
  (void)call;
  (void)status;
  (void)reply;
  (void)user_data;
}

static void test_plugin_start_stub(void **state) {
  A__B__C__Outer__Inner request = A__B__C__OUTER__INNER__INIT;
  cgrpc_call *call = NULL;
  int user_data;
  (void)state;
  assert_int_equal(a__b__c__http2__service__get_v2_thing__start(
                       FAKE_CHANNEL, &request, NULL, done_cb, &user_data,
                       &call),
                   0);
  assert_int_equal(client.calls, 1);
  assert_ptr_equal(client.method,
                   &a__b__c__http2__service__service__methods[0]);
  assert_ptr_equal(client.request, &request.base);
  assert_ptr_equal(client.done, done_cb);
  assert_ptr_equal(client.user_data, &user_data);
  assert_ptr_equal(client.call_ptr, &call);

  assert_int_equal(a__b__c__http2__service__get_v2_thing__start(
                       FAKE_CHANNEL, NULL, NULL, done_cb, NULL, NULL),
                   0);
  assert_null(client.request);
}

/* ---- streaming stubs ---------------------------------------------------- */

static void on_read(cgrpc_call *call, ProtobufCMessage *msg, void *user_data) {
  (void)call;
  (void)msg;
  (void)user_data;
}

static const cgrpc_call_callbacks callbacks = {on_read, NULL, NULL};

static void test_plugin_client_stream_stubs(void **state) {
  const cgrpc_method_desc *m = &plugin_test__kinds__service__methods[1];
  PluginTest__Req request = PLUGIN_TEST__REQ__INIT;
  PluginTest__Resp canned = PLUGIN_TEST__RESP__INIT;
  PluginTest__Resp *reply = &canned;
  cgrpc_call_options opts = {0};
  cgrpc_status status = {0};
  cgrpc_call *call = NULL;
  int user_data;
  (void)state;

  assert_int_equal(
      plugin_test__kinds__client_stream__open(FAKE_CHANNEL, &opts, &call), 0);
  assert_ptr_equal(stream.channel, FAKE_CHANNEL);
  assert_ptr_equal(stream.method, m);
  assert_ptr_equal(stream.opts, &opts);
  assert_ptr_equal(stream.call_ptr, &call);
  assert_ptr_equal(call, FAKE_CALL);

  call = NULL;
  assert_int_equal(plugin_test__kinds__client_stream__open_async(
                       FAKE_CHANNEL, &opts, &callbacks, &user_data, &call),
                   0);
  assert_ptr_equal(stream.method, m);
  assert_ptr_equal(stream.cbs, &callbacks);
  assert_ptr_equal(stream.user_data, &user_data);
  assert_ptr_equal(call, FAKE_CALL);

  assert_int_equal(plugin_test__kinds__client_stream__write(call, &request), 0);
  assert_ptr_equal(stream.call, FAKE_CALL);
  assert_ptr_equal(stream.written, &request.base);
  stream.written = NULL;
  assert_int_equal(
      plugin_test__kinds__client_stream__write_async(call, &request), 0);
  assert_ptr_equal(stream.written, &request.base);

  /* finish: the reply on OK... */
  stream.read_msg = &canned.base;
  reply = NULL;
  assert_int_equal(
      plugin_test__kinds__client_stream__finish(call, &reply, &status),
      CGRPC_STATUS_OK);
  assert_ptr_equal(stream.call, FAKE_CALL);
  assert_ptr_equal(stream.status, &status);
  assert_ptr_equal(reply, &canned);
  /* ...NULL otherwise... */
  stream.finish_code = CGRPC_STATUS_UNAVAILABLE;
  assert_int_equal(
      plugin_test__kinds__client_stream__finish(call, &reply, NULL),
      CGRPC_STATUS_UNAVAILABLE);
  assert_null(reply);
  assert_null(stream.status);
  /* ...and a NULL |reply| goes through for the runtime to report. */
  assert_int_equal(plugin_test__kinds__client_stream__finish(call, NULL, NULL),
                   CGRPC_STATUS_INVALID_ARGUMENT);
  assert_null(stream.reply);

  assert_string_equal(stream.log, "open,open_async,write,write_async,"
                                  "finish_with_reply,finish_with_reply,"
                                  "finish_with_reply");

  /* NULL requests never reach the runtime. */
  assert_int_equal(plugin_test__kinds__client_stream__write(call, NULL),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(plugin_test__kinds__client_stream__write_async(call, NULL),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(plugin_test__kinds__bidi__write(call, NULL),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(plugin_test__kinds__bidi__write_async(call, NULL),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_string_equal(stream.log, "open,open_async,write,write_async,"
                                  "finish_with_reply,finish_with_reply,"
                                  "finish_with_reply");
}

static void test_plugin_server_stream_open(void **state) {
  PluginTest__Req request = PLUGIN_TEST__REQ__INIT;
  cgrpc_call_options opts = {0};
  cgrpc_call *call = NULL;
  (void)state;

  /* Open, send the one request, half-close. */
  assert_int_equal(plugin_test__kinds__server_stream__open(
                       FAKE_CHANNEL, &request, &opts, &call),
                   0);
  assert_string_equal(stream.log, "open,write,writes_done");
  assert_ptr_equal(stream.channel, FAKE_CHANNEL);
  assert_ptr_equal(stream.method, &plugin_test__kinds__service__methods[2]);
  assert_ptr_equal(stream.opts, &opts);
  assert_ptr_equal(stream.call, FAKE_CALL);
  assert_ptr_equal(stream.written, &request.base);
  assert_ptr_equal(call, FAKE_CALL);
}

static void test_plugin_server_stream_open_failures(void **state) {
  PluginTest__Req request = PLUGIN_TEST__REQ__INIT;
  cgrpc_call *call = FAKE_CALL;
  (void)state;

  /* Bad arguments: nothing reaches the runtime, *call_ptr is cleared. */
  assert_int_equal(plugin_test__kinds__server_stream__open(FAKE_CHANNEL, NULL,
                                                           NULL, &call),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_null(call);
  assert_int_equal(plugin_test__kinds__server_stream__open(
                       FAKE_CHANNEL, &request, NULL, NULL),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_string_equal(stream.log, "");

  /* The open fails: nothing to undo. */
  call = FAKE_CALL;
  stream.open_rv = CGRPC_ERR_CLOSED;
  assert_int_equal(plugin_test__kinds__server_stream__open(
                       FAKE_CHANNEL, &request, NULL, &call),
                   CGRPC_ERR_CLOSED);
  assert_string_equal(stream.log, "open");
  assert_null(call);

  /* The write fails: the call is cancelled and released. */
  memset(stream.log, 0, sizeof stream.log);
  stream.open_rv = 0;
  stream.write_rv = CGRPC_ERR_NOMEM;
  assert_int_equal(plugin_test__kinds__server_stream__open(
                       FAKE_CHANNEL, &request, NULL, &call),
                   CGRPC_ERR_NOMEM);
  assert_string_equal(stream.log, "open,write,cancel,unref");
  assert_null(call);

  /* The half-close fails: the same. */
  memset(stream.log, 0, sizeof stream.log);
  stream.write_rv = 0;
  stream.writes_done_rv = CGRPC_ERR_INVALID_STATE;
  assert_int_equal(plugin_test__kinds__server_stream__open(
                       FAKE_CHANNEL, &request, NULL, &call),
                   CGRPC_ERR_INVALID_STATE);
  assert_string_equal(stream.log, "open,write,writes_done,cancel,unref");
  assert_null(call);

  /* The call ended before the request went out: not an error; the caller
   * gets the call, and cgrpc_call_finish() its status. */
  memset(stream.log, 0, sizeof stream.log);
  stream.writes_done_rv = 0;
  stream.write_rv = CGRPC_ERR_CLOSED;
  assert_int_equal(plugin_test__kinds__server_stream__open(
                       FAKE_CHANNEL, &request, NULL, &call),
                   0);
  assert_string_equal(stream.log, "open,write");
  assert_ptr_equal(call, FAKE_CALL);
}

static void test_plugin_server_stream_open_async(void **state) {
  PluginTest__Req request = PLUGIN_TEST__REQ__INIT;
  cgrpc_call_options opts = {0};
  cgrpc_call *call = NULL;
  int user_data;
  (void)state;

  assert_int_equal(plugin_test__kinds__server_stream__open_async(
                       FAKE_CHANNEL, &request, &opts, &callbacks, &user_data,
                       &call),
                   0);
  assert_string_equal(stream.log, "open_async,write_async,writes_done");
  assert_ptr_equal(stream.method, &plugin_test__kinds__service__methods[2]);
  assert_ptr_equal(stream.opts, &opts);
  assert_ptr_equal(stream.cbs, &callbacks);
  assert_ptr_equal(stream.user_data, &user_data);
  assert_ptr_equal(stream.written, &request.base);
  assert_ptr_equal(call, FAKE_CALL);

  memset(stream.log, 0, sizeof stream.log);
  stream.write_rv = CGRPC_ERR_NOMEM;
  assert_int_equal(plugin_test__kinds__server_stream__open_async(
                       FAKE_CHANNEL, &request, NULL, &callbacks, NULL, &call),
                   CGRPC_ERR_NOMEM);
  assert_string_equal(stream.log, "open_async,write_async,cancel,unref");
  assert_null(call);

  /* The unstarted form queues the same request and half-close. */
  memset(stream.log, 0, sizeof stream.log);
  stream.write_rv = 0;
  assert_int_equal(plugin_test__kinds__server_stream__new_async(
                       FAKE_CHANNEL, &request, &opts, &callbacks, &user_data,
                       &call),
                   0);
  assert_string_equal(stream.log, "new_async,write_async,writes_done");
  assert_ptr_equal(stream.method, &plugin_test__kinds__service__methods[2]);
  assert_ptr_equal(stream.cbs, &callbacks);
  assert_ptr_equal(call, FAKE_CALL);
  stream.write_rv = CGRPC_ERR_NOMEM;

  memset(stream.log, 0, sizeof stream.log);
  assert_int_equal(plugin_test__kinds__server_stream__open_async(
                       FAKE_CHANNEL, NULL, NULL, &callbacks, NULL, &call),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(plugin_test__kinds__server_stream__open_async(
                       FAKE_CHANNEL, &request, NULL, &callbacks, NULL, NULL),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_string_equal(stream.log, "");

  /* A server-streaming method from a file without a package. */
  stream.write_rv = 0;
  {
    NoPkgRequest req = NO_PKG_REQUEST__INIT;
    assert_int_equal(
        no_pkg_service__listen__open(FAKE_CHANNEL, &req, NULL, &call), 0);
    assert_ptr_equal(stream.method, &no_pkg_service__service__methods[1]);
    assert_ptr_equal(stream.written, &req.base);
  }
}

static void test_plugin_read_stubs(void **state) {
  PluginTest__Resp canned = PLUGIN_TEST__RESP__INIT;
  PluginTest__Resp *reply = NULL;
  (void)state;

  stream.read_msg = &canned.base;
  assert_int_equal(plugin_test__kinds__server_stream__read(FAKE_CALL, &reply),
                   1);
  assert_ptr_equal(stream.call, FAKE_CALL);
  assert_ptr_equal(reply, &canned);

  stream.read_msg = NULL;
  assert_int_equal(plugin_test__kinds__bidi__read(FAKE_CALL, &reply), 0);
  assert_null(reply);

  reply = &canned;
  stream.read_err = CGRPC_ERR_WOULD_DEADLOCK;
  assert_int_equal(plugin_test__kinds__bidi__read(FAKE_CALL, &reply),
                   CGRPC_ERR_WOULD_DEADLOCK);
  assert_null(reply);
  assert_string_equal(stream.log, "read,read,read");

  assert_int_equal(plugin_test__kinds__server_stream__read(FAKE_CALL, NULL),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(plugin_test__kinds__bidi__read(FAKE_CALL, NULL),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_string_equal(stream.log, "read,read,read");
}

static void test_plugin_bidi_stubs(void **state) {
  const cgrpc_method_desc *m = &plugin_test__kinds__service__methods[3];
  PluginTest__Req request = PLUGIN_TEST__REQ__INIT;
  cgrpc_call *call = NULL;
  int user_data;
  (void)state;

  assert_int_equal(plugin_test__kinds__bidi__open(FAKE_CHANNEL, NULL, &call),
                   0);
  assert_ptr_equal(stream.method, m);
  assert_null(stream.opts);
  assert_ptr_equal(call, FAKE_CALL);

  assert_int_equal(plugin_test__kinds__bidi__open_async(
                       FAKE_CHANNEL, NULL, &callbacks, &user_data, &call),
                   0);
  assert_ptr_equal(stream.method, m);
  assert_ptr_equal(stream.cbs, &callbacks);
  assert_ptr_equal(stream.user_data, &user_data);

  assert_int_equal(plugin_test__kinds__bidi__write(call, &request), 0);
  assert_ptr_equal(stream.written, &request.base);
  stream.write_rv = CGRPC_ERR_CLOSED;
  assert_int_equal(plugin_test__kinds__bidi__write_async(call, &request),
                   CGRPC_ERR_CLOSED);
  assert_string_equal(stream.log, "open,open_async,write,write_async");

  /* Errors from the open pass through. */
  stream.open_rv = CGRPC_ERR_CLOSED;
  assert_int_equal(plugin_test__kinds__bidi__open(FAKE_CHANNEL, NULL, &call),
                   CGRPC_ERR_CLOSED);
  assert_null(call);

  /* A bidi method of a nested package, with digits in its name. */
  assert_int_equal(a__b__c__http2__service__stream2_things__open(FAKE_CHANNEL,
                                                                 NULL, &call),
                   CGRPC_ERR_CLOSED);
  assert_ptr_equal(stream.method,
                   &a__b__c__http2__service__service__methods[4]);
}

#define TEST(fn) cmocka_unit_test_setup(fn, reset)

int main(void) {
  const struct CMUnitTest tests[] = {
      TEST(test_plugin_pkg_all_kinds),
      TEST(test_plugin_pkg_second_service),
      TEST(test_plugin_nested_pkg_names),
      TEST(test_plugin_nopkg_names),
      TEST(test_plugin_import_types_from_other_files),
      TEST(test_plugin_sub_folder),
      TEST(test_plugin_empty_service),
#ifdef HAVE_C_PACKAGE_PROTO
      TEST(test_plugin_c_package),
#endif
      TEST(test_plugin_file_desc_of_service),
      TEST(test_plugin_file_desc_imports),
#ifdef HAVE_C_PACKAGE_PROTO
      TEST(test_plugin_file_desc_transitive_imports),
#endif
      TEST(test_plugin_register_null_arguments),
      TEST(test_plugin_register_handlers),
      TEST(test_plugin_register_nothing_implemented),
      TEST(test_plugin_dispatch_unary),
      TEST(test_plugin_dispatch_client_stream),
      TEST(test_plugin_dispatch_server_stream),
      TEST(test_plugin_dispatch_bidi),
      TEST(test_plugin_recv),
      TEST(test_plugin_send),
      TEST(test_plugin_call_stub),
      TEST(test_plugin_call_stub_failure_sets_null),
      TEST(test_plugin_call_stub_null_arguments),
      TEST(test_plugin_start_stub),
      TEST(test_plugin_client_stream_stubs),
      TEST(test_plugin_server_stream_open),
      TEST(test_plugin_server_stream_open_failures),
      TEST(test_plugin_server_stream_open_async),
      TEST(test_plugin_read_stubs),
      TEST(test_plugin_bidi_stubs),
  };
  return cmocka_run_group_tests_name("plugin", tests, NULL, NULL);
}
