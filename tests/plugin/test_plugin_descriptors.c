/* SPDX-License-Identifier: MIT */
/*
 * Checks what protoc-gen-c-grpc generated for the protos in protos/test: the
 * method and service descriptors (names, paths, kinds, message descriptors
 * from this and other files and packages), the register function, the
 * dispatch trampolines and the client stubs.
 *
 * The generated code calls four runtime functions.  This file defines them
 * as recording fakes, so the test needs only protobuf-c: it checks exactly
 * what the generated code hands to the runtime.
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

int cgrpc_stream_open(cgrpc_channel *channel, const cgrpc_method_desc *method,
                      const cgrpc_call_options *opts, cgrpc_call **call_ptr) {
  client.calls++;
  client.channel = channel;
  client.method = method;
  client.opts = opts;
  client.call_ptr = call_ptr;
  return CGRPC_ERR_UNSUPPORTED;
}

static int reset(void **state) {
  (void)state;
  memset(&reg, 0, sizeof reg);
  memset(&client, 0, sizeof client);
  fake_reply = NULL;
  return 0;
}

/* Opaque handles are never dereferenced by the generated code, so any
 * distinct address will do. */
static char server_storage, channel_storage, ctx_storage, call_storage;
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

/* ---- register and dispatch ---------------------------------------------- */

static int unary_hits;
static const PluginTest__Req *seen_request;
static PluginTest__Resp *seen_reply;
static void *seen_user_data;
static cgrpc_server_ctx *seen_ctx;

static cgrpc_status_code kinds_unary(cgrpc_server_ctx *ctx,
                                     const PluginTest__Req *request,
                                     PluginTest__Resp *reply,
                                     void *user_data) {
  unary_hits++;
  seen_ctx = ctx;
  seen_request = request;
  seen_reply = reply;
  seen_user_data = user_data;
  return CGRPC_STATUS_NOT_FOUND;
}

static cgrpc_status_code kinds_bidi(cgrpc_server_ctx *ctx, void *user_data) {
  (void)ctx;
  (void)user_data;
  return CGRPC_STATUS_OK;
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

  /* Unary: implemented, with a trampoline. */
  assert_true(reg.handlers[0].implemented);
  assert_non_null(reg.handlers[0].unary);
  /* ClientStream, ServerStream: not set. */
  assert_false(reg.handlers[1].implemented);
  assert_null(reg.handlers[1].unary);
  assert_false(reg.handlers[2].implemented);
  assert_null(reg.handlers[2].unary);
  /* Bidi: implemented, but streaming has no unary trampoline. */
  assert_true(reg.handlers[3].implemented);
  assert_null(reg.handlers[3].unary);
}

static void test_plugin_register_nothing_implemented(void **state) {
  PluginTest__Kinds_Servicer servicer = {0};
  size_t i;
  (void)state;
  assert_int_equal(
      plugin_test__kinds__servicer__register(FAKE_SERVER, &servicer, NULL), 0);
  for (i = 0; i < plugin_test__kinds__service__desc.n_methods; i++) {
    assert_false(reg.handlers[i].implemented);
    assert_null(reg.handlers[i].unary);
  }
}

static void test_plugin_dispatch_calls_typed_method(void **state) {
  PluginTest__Kinds_Servicer servicer = {0};
  PluginTest__Req request = PLUGIN_TEST__REQ__INIT;
  PluginTest__Resp reply = PLUGIN_TEST__RESP__INIT;
  int user_data;
  cgrpc_status_code code;
  (void)state;
  servicer.unary = kinds_unary;
  unary_hits = 0;
  assert_int_equal(
      plugin_test__kinds__servicer__register(FAKE_SERVER, &servicer,
                                             &user_data),
      0);

  /* The server calls the trampoline with its copy of the servicer. */
  code = reg.handlers[0].unary(reg.servicer, FAKE_CTX, &request.base,
                               &reply.base, reg.user_data);
  assert_int_equal(code, CGRPC_STATUS_NOT_FOUND);
  assert_int_equal(unary_hits, 1);
  assert_ptr_equal(seen_ctx, FAKE_CTX);
  assert_ptr_equal(seen_request, &request);
  assert_ptr_equal(seen_reply, &reply);
  assert_ptr_equal(seen_user_data, &user_data);
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

static void test_plugin_open_stub(void **state) {
  cgrpc_call *call = (cgrpc_call *)(void *)&call_storage;
  cgrpc_call_options opts = {0};
  (void)state;
  assert_int_equal(
      plugin_test__kinds__client_stream__open(FAKE_CHANNEL, &opts, &call),
      CGRPC_ERR_UNSUPPORTED);
  assert_ptr_equal(client.method, &plugin_test__kinds__service__methods[1]);
  assert_ptr_equal(client.opts, &opts);
  assert_ptr_equal(client.call_ptr, &call);

  assert_int_equal(plugin_test__kinds__bidi__open(FAKE_CHANNEL, NULL, NULL),
                   CGRPC_ERR_UNSUPPORTED);
  assert_ptr_equal(client.method, &plugin_test__kinds__service__methods[3]);
  assert_int_equal(no_pkg_service__listen__open(FAKE_CHANNEL, NULL, NULL),
                   CGRPC_ERR_UNSUPPORTED);
  assert_ptr_equal(client.method, &no_pkg_service__service__methods[1]);
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
      TEST(test_plugin_register_null_arguments),
      TEST(test_plugin_register_handlers),
      TEST(test_plugin_register_nothing_implemented),
      TEST(test_plugin_dispatch_calls_typed_method),
      TEST(test_plugin_call_stub),
      TEST(test_plugin_call_stub_failure_sets_null),
      TEST(test_plugin_call_stub_null_arguments),
      TEST(test_plugin_start_stub),
      TEST(test_plugin_open_stub),
  };
  return cmocka_run_group_tests_name("plugin", tests, NULL, NULL);
}
