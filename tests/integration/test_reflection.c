/* SPDX-License-Identifier: MIT */
/*
 * Server reflection (cgrpc_server_enable_reflection) through our own
 * client: a server with reflect.test.Base (reflect_base.proto, which
 * imports google/protobuf/empty.proto) and reflect.more.Prober
 * (reflect_more.proto, which imports reflect_base.proto) is asked, over
 * v1 and v1alpha streams, for its services, files by name, files by
 * symbol (service, method, message, nested message, enum, enum value,
 * field, extension, well-known type), extensions, and for things it does
 * not have.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cgrpc/cgrpc.h>

#include "grpc/reflection/v1/reflection.grpc-c.h"
#include "grpc/reflection/v1alpha/reflection.grpc-c.h"
#include "harness.h"
#include "reflect_base.grpc-c.h"
#include "reflect_more.grpc-c.h"

typedef Grpc__Reflection__V1__ServerReflectionRequest req_t;
typedef Grpc__Reflection__V1__ServerReflectionResponse resp_t;

/* Shorter names for the generated ones. */
#define CASE(x) GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__##x
#define REQ(x)                                                                 \
  GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_##x
#define ALPHA_REQ(x)                                                           \
  GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_##x
#define ALPHA_RESP(x)                                                          \
  GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_##x
#define V1(fn)                                                                 \
  grpc__reflection__v1__server_reflection__server_reflection_info__##fn
#define V1ALPHA(fn)                                                            \
  grpc__reflection__v1alpha__server_reflection__server_reflection_info__##fn

typedef struct fixture {
  cgrpc_server *server;
  cgrpc_channel *ch;
  cgrpc_call *call; /* a v1 stream, opened by the setup */
} fixture;

static const cgrpc_call_options call_opts = {.timeout_ms = 20000 * IT_SLOW};

static int start(fixture *f, int max_workers) {
  static const Reflect__Test__Base_Servicer base = {0};
  static const Reflect__More__Prober_Servicer prober = {0};
  cgrpc_server_options *opts;
  char target[64];
  int port = 0;
  assert_int_equal(cgrpc_server_options_new(&opts), 0);
  if (max_workers >= 0)
    cgrpc_server_options_set_max_workers(opts, max_workers);
  assert_int_equal(cgrpc_server_new(&f->server, opts), 0);
  cgrpc_server_options_del(opts);
  assert_int_equal(
      reflect__test__base__servicer__register(f->server, &base, NULL), 0);
  assert_int_equal(cgrpc_server_enable_reflection(f->server), 0);
  /* Registered after reflection: still listed. */
  assert_int_equal(
      reflect__more__prober__servicer__register(f->server, &prober, NULL), 0);
  assert_int_equal(
      cgrpc_server_add_insecure_port(f->server, "127.0.0.1:0", &port), 0);
  assert_int_equal(cgrpc_server_start(f->server), 0);
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  assert_int_equal(cgrpc_channel_new(&f->ch, target, NULL), 0);
  return 0;
}

/* Starts a server (max_workers as given; -1: the default), a channel and
 * a v1 stream. */
static void fixture_start(fixture *f, int max_workers) {
  start(f, max_workers);
  assert_int_equal(V1(open)(f->ch, &call_opts, &f->call), 0);
}

/* Ends the fixture's stream (it must end OK) and everything else. */
static void fixture_stop(fixture *f) {
  if (f->call) {
    cgrpc_status st = {0};
    ProtobufCMessage *extra = NULL;
    assert_int_equal(cgrpc_call_writes_done(f->call), 0);
    assert_int_equal(cgrpc_call_read(f->call, &extra), 0);
    cgrpc_call_finish(f->call, &st);
    IT_ASSERT_STATUS(st, CGRPC_STATUS_OK);
    cgrpc_status_clear(&st);
    cgrpc_call_unref(f->call);
  }
  cgrpc_channel_del(f->ch);
  cgrpc_server_shutdown(f->server, 1000);
  cgrpc_server_del(f->server);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  it_watchdog_setup(state);
  *state = f;
  fixture_start(f, -1);
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  fixture_stop(f);
  free(f);
  return it_watchdog_teardown(state);
}

/* Sends |req| on |call| and returns the response (asserts it came). */
static resp_t *ask(cgrpc_call *call, const req_t *req) {
  resp_t *resp = NULL;
  assert_int_equal(V1(write)(call, req), 0);
  assert_int_equal(V1(read)(call, &resp), 1);
  assert_non_null(resp);
  return resp;
}

static resp_t *ask_symbol(fixture *f, const char *symbol) {
  req_t req = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
  req.message_request_case = REQ(FILE_CONTAINING_SYMBOL);
  req.file_containing_symbol = (char *)symbol;
  return ask(f->call, &req);
}

static void free_resp(resp_t *resp) {
  protobuf_c_message_free_unpacked(&resp->base, NULL);
}

/* The name (field 1) of the serialized FileDescriptorProto |b|, into
 * |buf|. */
static const char *file_name(const ProtobufCBinaryData *b, char *buf,
                             size_t size) {
  size_t n;
  assert_true(b->len >= 2);
  assert_int_equal(b->data[0], 0x0a);
  n = b->data[1];
  assert_true(n < 128 && n + 2 <= b->len && n < size);
  memcpy(buf, b->data + 2, n);
  buf[n] = '\0';
  return buf;
}

/* |resp| is a file response of exactly the files |names| (NULL-ended), in
 * that order. */
static void check_files(const resp_t *resp, const char *const *names) {
  char buf[128];
  size_t i, n = 0;
  if (resp->message_response_case !=
      CASE(MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE))
    fail_msg("not a file response (case %d; error %s)",
             (int)resp->message_response_case,
             resp->message_response_case ==
                     CASE(MESSAGE_RESPONSE_ERROR_RESPONSE)
                 ? resp->error_response->error_message
                 : "-");
  while (names[n])
    n++;
  assert_int_equal(resp->file_descriptor_response->n_file_descriptor_proto, n);
  for (i = 0; i < n; i++)
    assert_string_equal(
        file_name(&resp->file_descriptor_response->file_descriptor_proto[i],
                  buf, sizeof buf),
        names[i]);
}

static void check_error(const resp_t *resp, cgrpc_status_code code) {
  assert_int_equal(resp->message_response_case,
                   CASE(MESSAGE_RESPONSE_ERROR_RESPONSE));
  assert_int_equal(resp->error_response->error_code, code);
  assert_true(resp->error_response->error_message[0] != '\0');
}

static const char *const more_files[] = {"reflect_more.proto",
                                         "reflect_base.proto",
                                         "google/protobuf/empty.proto", NULL};
static const char *const base_files[] = {"reflect_base.proto",
                                         "google/protobuf/empty.proto", NULL};

/* ---- tests ----------------------------------------------------------------
 */

static void test_reflection_list_services(void **state) {
  fixture *f = *state;
  req_t req = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
  resp_t *resp;
  size_t i;
  static const char *const want[] = {
      "reflect.test.Base", "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection", "reflect.more.Prober"};
  req.host = "somehost";
  req.message_request_case = REQ(LIST_SERVICES);
  req.list_services = "*";
  resp = ask(f->call, &req);
  assert_int_equal(resp->message_response_case,
                   CASE(MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE));
  assert_int_equal(resp->list_services_response->n_service, 4);
  for (i = 0; i < 4; i++)
    assert_string_equal(resp->list_services_response->service[i]->name,
                        want[i]);
  /* The request comes back with its answer. */
  assert_string_equal(resp->valid_host, "somehost");
  assert_non_null(resp->original_request);
  assert_int_equal(resp->original_request->message_request_case,
                   req.message_request_case);
  assert_string_equal(resp->original_request->list_services, "*");
  free_resp(resp);
}

static void test_reflection_file_by_filename(void **state) {
  fixture *f = *state;
  req_t req = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
  const cgrpc_file_desc *embedded =
      reflect__more__prober__service__desc.file_desc;
  resp_t *resp;
  req.message_request_case = REQ(FILE_BY_FILENAME);
  req.file_by_filename = "reflect_more.proto";
  resp = ask(f->call, &req);
  /* The file, then its imports, direct and indirect. */
  check_files(resp, more_files);
  /* Byte for byte what the plugin embedded. */
  assert_int_equal(resp->file_descriptor_response->file_descriptor_proto[0].len,
                   embedded->len);
  assert_memory_equal(
      resp->file_descriptor_response->file_descriptor_proto[0].data,
      embedded->data, embedded->len);
  free_resp(resp);

  /* An imported well-known file by itself. */
  req.file_by_filename = "google/protobuf/empty.proto";
  resp = ask(f->call, &req);
  {
    static const char *const want[] = {"google/protobuf/empty.proto", NULL};
    check_files(resp, want);
  }
  free_resp(resp);

  /* The reflection service's own file. */
  req.file_by_filename = "grpc/reflection/v1/reflection.proto";
  resp = ask(f->call, &req);
  {
    static const char *const want[] = {"grpc/reflection/v1/reflection.proto",
                                       NULL};
    check_files(resp, want);
  }
  free_resp(resp);

  req.file_by_filename = "nope.proto";
  resp = ask(f->call, &req);
  check_error(resp, CGRPC_STATUS_NOT_FOUND);
  free_resp(resp);
}

static void test_reflection_file_containing_symbol(void **state) {
  fixture *f = *state;
  static const struct {
    const char *symbol;
    const char *const *files;
  } cases[] = {
      {"reflect.more.Prober", more_files},       /* service */
      {"reflect.more.Prober.Watch", more_files}, /* method */
      {"reflect.more.Thing", more_files},        /* message */
      {"reflect.more.Thing.color", more_files},  /* field */
      {"reflect.more.flag", more_files},         /* extension */
      {"reflect.test.Base", base_files},         /* service, other file */
      {"reflect.test.Base.Ping", base_files},    /* method */
      {"reflect.test.Outer", base_files},        /* message */
      {"reflect.test.Outer.Inner", base_files},  /* nested message */
      {"reflect.test.Outer.Inner.text", base_files},
      {"reflect.test.Outer.Mood", base_files},   /* nested enum */
      {"reflect.test.Outer.SAD", base_files},    /* its value */
      {"reflect.test.Outer.choice", base_files}, /* oneof */
      {"reflect.test.Color", base_files},        /* enum */
      {"reflect.test.GREEN", base_files},        /* enum value */
      {"reflect.test.weight", base_files},       /* extension */
  };
  static const char *const empty_files[] = {"google/protobuf/empty.proto",
                                            NULL};
  static const char *const refl_files[] = {
      "grpc/reflection/v1alpha/reflection.proto", NULL};
  size_t i;
  resp_t *resp;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    resp = ask_symbol(f, cases[i].symbol);
    check_files(resp, cases[i].files);
    free_resp(resp);
  }
  resp = ask_symbol(f, "google.protobuf.Empty");
  check_files(resp, empty_files);
  free_resp(resp);
  resp = ask_symbol(f, "grpc.reflection.v1alpha.ServerReflection");
  check_files(resp, refl_files);
  free_resp(resp);
}

static void test_reflection_unknown_symbol(void **state) {
  fixture *f = *state;
  static const char *const unknown[] = {
      "reflect.test.Nope",
      "reflect.test",
      "reflect",
      "",
      "reflect.test.Outer.",
      ".reflect.test.Outer",
      "reflect.test.Outer.Inner.text.more",
      "reflect.test.Mood.SAD" /* values live beside their enum */};
  size_t i;
  resp_t *resp;
  for (i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    resp = ask_symbol(f, unknown[i]);
    check_error(resp, CGRPC_STATUS_NOT_FOUND);
    assert_non_null(strstr(resp->error_response->error_message, "not found"));
    free_resp(resp);
  }
  /* The stream goes on after errors. */
  resp = ask_symbol(f, "reflect.test.Outer");
  check_files(resp, base_files);
  free_resp(resp);
}

static void test_reflection_extensions(void **state) {
  fixture *f = *state;
  req_t req = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
  Grpc__Reflection__V1__ExtensionRequest ext =
      GRPC__REFLECTION__V1__EXTENSION_REQUEST__INIT;
  resp_t *resp;
  int32_t a, b;

  req.message_request_case = REQ(FILE_CONTAINING_EXTENSION);
  req.file_containing_extension = &ext;
  ext.containing_type = "reflect.test.Outer";
  ext.extension_number = 150;
  resp = ask(f->call, &req);
  check_files(resp, more_files);
  free_resp(resp);
  ext.extension_number = 100;
  resp = ask(f->call, &req);
  check_files(resp, base_files);
  free_resp(resp);
  ext.extension_number = 101;
  resp = ask(f->call, &req);
  check_error(resp, CGRPC_STATUS_NOT_FOUND);
  free_resp(resp);
  ext.containing_type = "reflect.more.Thing";
  ext.extension_number = 150;
  resp = ask(f->call, &req);
  check_error(resp, CGRPC_STATUS_NOT_FOUND);
  free_resp(resp);

  req.message_request_case = REQ(ALL_EXTENSION_NUMBERS_OF_TYPE);
  req.all_extension_numbers_of_type = "reflect.test.Outer";
  resp = ask(f->call, &req);
  assert_int_equal(resp->message_response_case,
                   CASE(MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE));
  assert_string_equal(resp->all_extension_numbers_response->base_type_name,
                      "reflect.test.Outer");
  assert_int_equal(resp->all_extension_numbers_response->n_extension_number, 2);
  a = resp->all_extension_numbers_response->extension_number[0];
  b = resp->all_extension_numbers_response->extension_number[1];
  assert_true((a == 100 && b == 150) || (a == 150 && b == 100));
  free_resp(resp);

  /* A message without extensions: an empty list. */
  req.all_extension_numbers_of_type = "reflect.more.Thing";
  resp = ask(f->call, &req);
  assert_int_equal(resp->message_response_case,
                   CASE(MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE));
  assert_int_equal(resp->all_extension_numbers_response->n_extension_number, 0);
  free_resp(resp);

  /* Not a message. */
  req.all_extension_numbers_of_type = "reflect.test.Color";
  resp = ask(f->call, &req);
  check_error(resp, CGRPC_STATUS_NOT_FOUND);
  free_resp(resp);
}

static void test_reflection_bad_requests(void **state) {
  fixture *f = *state;
  req_t req = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
  size_t big = 1 << 20;
  char *huge = malloc(big + 1);
  resp_t *resp;
  assert_non_null(huge);
  memset(huge, 'a', big);
  huge[big] = '\0';
  /* A name longer than any we look up. */
  resp = ask_symbol(f, huge);
  check_error(resp, CGRPC_STATUS_INVALID_ARGUMENT);
  /* The error message quotes none of it. */
  assert_true(strlen(resp->error_response->error_message) < 200);
  free_resp(resp);
  req.message_request_case = REQ(FILE_BY_FILENAME);
  req.file_by_filename = huge;
  resp = ask(f->call, &req);
  check_error(resp, CGRPC_STATUS_INVALID_ARGUMENT);
  free_resp(resp);
  /* Just within the limit: looked up, not found. */
  huge[4096] = '\0';
  resp = ask_symbol(f, huge);
  check_error(resp, CGRPC_STATUS_NOT_FOUND);
  free_resp(resp);
  free(huge);
  /* A request that asks nothing. */
  req.message_request_case = REQ(_NOT_SET);
  resp = ask(f->call, &req);
  check_error(resp, CGRPC_STATUS_UNIMPLEMENTED);
  free_resp(resp);
  /* An empty extension request. */
  {
    Grpc__Reflection__V1__ExtensionRequest ext =
        GRPC__REFLECTION__V1__EXTENSION_REQUEST__INIT;
    req.message_request_case = REQ(FILE_CONTAINING_EXTENSION);
    req.file_containing_extension = &ext;
    resp = ask(f->call, &req);
    check_error(resp, CGRPC_STATUS_NOT_FOUND);
    free_resp(resp);
  }
  /* Still answering. */
  resp = ask_symbol(f, "reflect.more.Prober");
  check_files(resp, more_files);
  free_resp(resp);
}

/* Many requests written before any response is read: all answered, in
 * order. */
static void test_reflection_pipelined(void **state) {
  fixture *f = *state;
  enum { N = 300 };
  static const char *const symbols[] = {
      "reflect.more.Prober", "reflect.test.Nope", "reflect.test.Outer.Inner"};
  int i;
  for (i = 0; i < N; i++) {
    req_t req = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    req.message_request_case = REQ(FILE_CONTAINING_SYMBOL);
    req.file_containing_symbol = (char *)symbols[i % 3];
    assert_int_equal(V1(write)(f->call, &req), 0);
  }
  for (i = 0; i < N; i++) {
    resp_t *resp = NULL;
    assert_int_equal(V1(read)(f->call, &resp), 1);
    assert_string_equal(resp->original_request->file_containing_symbol,
                        symbols[i % 3]);
    if (i % 3 == 1)
      check_error(resp, CGRPC_STATUS_NOT_FOUND);
    else
      check_files(resp, i % 3 == 0 ? more_files : base_files);
    free_resp(resp);
  }
}

/* v1alpha speaks the same protocol under its own names. */
static void test_reflection_v1alpha(void **state) {
  fixture *f = *state;
  Grpc__Reflection__V1alpha__ServerReflectionRequest req =
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;
  Grpc__Reflection__V1alpha__ServerReflectionResponse *resp = NULL;
  cgrpc_call *call = NULL;
  cgrpc_status st = {0};
  char buf[128];
  assert_int_equal(V1ALPHA(open)(f->ch, &call_opts, &call), 0);
  req.message_request_case = ALPHA_REQ(FILE_CONTAINING_SYMBOL);
  req.file_containing_symbol = "reflect.test.Outer.Mood";
  assert_int_equal(V1ALPHA(write)(call, &req), 0);
  assert_int_equal(V1ALPHA(read)(call, &resp), 1);
  assert_int_equal(resp->message_response_case,
                   ALPHA_RESP(FILE_DESCRIPTOR_RESPONSE));
  assert_int_equal(resp->file_descriptor_response->n_file_descriptor_proto, 2);
  assert_string_equal(
      file_name(&resp->file_descriptor_response->file_descriptor_proto[0], buf,
                sizeof buf),
      "reflect_base.proto");
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  resp = NULL;
  assert_int_equal(cgrpc_call_writes_done(call), 0);
  assert_int_equal(V1ALPHA(read)(call, &resp), 0);
  cgrpc_call_finish(call, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_OK);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
}

/* Streams waiting for requests hold no handler thread: with a pool of 2,
 * many open streams leave room for another stream and for unary calls. */
static void test_reflection_streams_hold_no_thread(void **state) {
  fixture pool2 = {0}, *f = &pool2;
  enum { N = 16 };
  cgrpc_call *calls[N];
  cgrpc_status st = {0};
  Reflect__More__Thing thing = REFLECT__MORE__THING__INIT;
  Reflect__Test__Outer *outer = NULL;
  resp_t *resp;
  int i;
  (void)state;
  fixture_start(f, 2);
  for (i = 0; i < N; i++) {
    assert_int_equal(V1(open)(f->ch, &call_opts, &calls[i]), 0);
    /* One answer each: every stream's handler has run. */
    resp = ask_symbol(&(fixture){.call = calls[i]}, "reflect.test.Color");
    check_files(resp, base_files);
    free_resp(resp);
  }
  /* Unimplemented, but its handler runs on the pool (or finds no thread). */
  assert_int_equal(reflect__more__prober__probe__call(f->ch, &thing, &outer,
                                                      &call_opts, &st),
                   CGRPC_STATUS_UNIMPLEMENTED);
  cgrpc_status_clear(&st);
  resp = ask_symbol(f, "reflect.more.Prober.Probe");
  check_files(resp, more_files);
  free_resp(resp);
  for (i = 0; i < N; i++) {
    /* Cancelled, or left by the client: both end the stream. */
    if (i % 2)
      cgrpc_call_cancel(calls[i]);
    else
      assert_int_equal(cgrpc_call_writes_done(calls[i]), 0);
    cgrpc_call_finish(calls[i], &st);
    if (i % 2 == 0)
      IT_ASSERT_STATUS(st, CGRPC_STATUS_OK);
    cgrpc_status_clear(&st);
    cgrpc_call_unref(calls[i]);
  }
  fixture_stop(f);
}

/* The same questions on a server that runs handlers on the loop thread. */
static void test_reflection_inline_server(void **state) {
  fixture inl = {0}, *f = &inl;
  resp_t *resp;
  (void)state;
  fixture_start(f, 0);
  resp = ask_symbol(f, "reflect.more.Thing");
  check_files(resp, more_files);
  free_resp(resp);
  resp = ask_symbol(f, "nope");
  check_error(resp, CGRPC_STATUS_NOT_FOUND);
  free_resp(resp);
  fixture_stop(f);
}

static void test_reflection_enable_errors(void **state) {
  cgrpc_server *server;
  (void)state;
  assert_int_equal(cgrpc_server_enable_reflection(NULL),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_server_new(&server, NULL), 0);
  assert_int_equal(cgrpc_server_enable_reflection(server), 0);
  assert_int_equal(cgrpc_server_enable_reflection(server),
                   CGRPC_ERR_ALREADY_EXISTS);
  cgrpc_server_del(server);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
      T(test_reflection_list_services),
      T(test_reflection_file_by_filename),
      T(test_reflection_file_containing_symbol),
      T(test_reflection_unknown_symbol),
      T(test_reflection_extensions),
      T(test_reflection_bad_requests),
      T(test_reflection_pipelined),
      T(test_reflection_v1alpha),
      T(test_reflection_streams_hold_no_thread),
      T(test_reflection_inline_server),
      T(test_reflection_enable_errors),
#undef T
  };
  /* One test (a cmocka filter pattern) per CTest entry. */
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
