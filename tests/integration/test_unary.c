/* SPDX-License-Identifier: MIT */
/*
 * Unary calls end to end: round trips, empty and large messages, every
 * status code with its message, Trailers-Only responses, unknown methods,
 * and the async form.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "harness.h"

static int setup(void **state) {
  it_fixture_setup(state);
  assert_true(((it_fixture *)*state)->srv.port > 0);
  return 0;
}

static void free_reply(Cgrpc__Test__EchoReply *reply) {
  if (reply)
    protobuf_c_message_free_unpacked(&reply->base, NULL);
}

static void test_unary_round_trip(void **state) {
  it_fixture *f = *state;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_status status = {0};
  char authority[64];
  assert_int_equal(it_echo(f->ch, "hello", &reply, &status), CGRPC_STATUS_OK);
  assert_int_equal(status.code, CGRPC_STATUS_OK);
  assert_non_null(reply);
  assert_string_equal(reply->message, "hello");
  assert_int_equal(reply->payload.len, 0);
  assert_string_equal(reply->method, "/cgrpc.test.EchoService/Echo");
  snprintf(authority, sizeof authority, "127.0.0.1:%d", f->srv.port);
  assert_string_equal(reply->authority, authority);
  assert_true(strncmp(reply->peer, "ipv4:127.0.0.1:", 15) == 0);
  assert_int_equal(reply->time_remaining_ms, -1);
  free_reply(reply);
  cgrpc_status_clear(&status);
  assert_int_equal(atomic_load(&f->srv.stats.calls), 1);
}

/* Like the Greeter: a few named calls in a row on one channel. */
static void test_unary_say_hello_basics(void **state) {
  it_fixture *f = *state;
  static const char *const names[] = {"world", "cgrpc", "", "a b c", "x\ty"};
  size_t i;
  for (i = 0; i < sizeof names / sizeof names[0]; i++) {
    Cgrpc__Test__EchoReply *reply = NULL;
    /* status may be NULL */
    assert_int_equal(it_echo(f->ch, names[i], &reply, NULL), CGRPC_STATUS_OK);
    assert_non_null(reply);
    assert_string_equal(reply->message, names[i]);
    free_reply(reply);
  }
}

static void test_unary_empty_message(void **state) {
  it_fixture *f = *state;
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_status status = {0};
  assert_int_equal(protobuf_c_message_get_packed_size(&req.base), 0);
  assert_int_equal(
      cgrpc__test__echo_service__echo__call(f->ch, &req, &reply, NULL, &status),
      CGRPC_STATUS_OK);
  assert_non_null(reply);
  assert_string_equal(reply->message, "");
  assert_int_equal(reply->payload.len, 0);
  free_reply(reply);
  cgrpc_status_clear(&status);
}

static void test_unary_large_payload(void **state) {
  it_fixture *f = *state;
  const size_t n = 3u << 20; /* 3 MiB each way, under the 4 MiB default */
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_status status = {0};
  uint8_t *data = malloc(n);
  size_t i;
  assert_non_null(data);
  for (i = 0; i < n; i++)
    data[i] = (uint8_t)(i * 7u + (i >> 13));
  req.payload.data = data;
  req.payload.len = n;
  req.message = "big";
  assert_int_equal(
      cgrpc__test__echo_service__echo__call(f->ch, &req, &reply, NULL, &status),
      CGRPC_STATUS_OK);
  assert_non_null(reply);
  assert_int_equal(reply->payload.len, n);
  assert_memory_equal(reply->payload.data, data, n);
  free_reply(reply);
  cgrpc_status_clear(&status);

  /* A large reply to a small request. */
  req.payload.data = NULL;
  req.payload.len = 0;
  req.response_size = (int32_t)n;
  reply = NULL;
  assert_int_equal(
      cgrpc__test__echo_service__echo__call(f->ch, &req, &reply, NULL, &status),
      CGRPC_STATUS_OK);
  assert_non_null(reply);
  assert_int_equal(reply->payload.len, n);
  for (i = 0; i < n; i++)
    if (reply->payload.data[i] != echo_payload_byte(i))
      fail_msg("payload byte %zu differs", i);
  free_reply(reply);
  cgrpc_status_clear(&status);
  free(data);
}

static cgrpc_status_code call_with_status(it_fixture *f, int code,
                                          const char *message,
                                          cgrpc_status *status) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply = (Cgrpc__Test__EchoReply *)(uintptr_t)1;
  cgrpc_status_code rc;
  req.status_code = code;
  req.status_message = (char *)(uintptr_t)message;
  rc = cgrpc__test__echo_service__echo__call(f->ch, &req, &reply, NULL, status);
  assert_null(reply); /* set to NULL on failure */
  return rc;
}

static void test_unary_every_status_code(void **state) {
  it_fixture *f = *state;
  int code;
  for (code = 1; code <= 16; code++) {
    cgrpc_status status = {0};
    char msg[64];
    snprintf(msg, sizeof msg, "status %d (%s)", code,
             cgrpc_status_code_name(code));
    assert_int_equal(call_with_status(f, code, msg, &status), code);
    assert_int_equal(status.code, code);
    assert_non_null(status.message);
    assert_string_equal(status.message, msg);
    cgrpc_status_clear(&status);
    assert_int_equal(status.code, CGRPC_STATUS_OK);
    assert_null(status.message);
  }
}

static void test_unary_status_message_utf8(void **state) {
  it_fixture *f = *state;
  static const char *const messages[] = {
      "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa"
      "\x9e \xf0\x9f\x98\x80",
      "100% done\nsecond line\r\nthird %41 %zz %",
      "%",
      "%%25",
      " leading and trailing spaces ",
      "tab\there, quote \" and backslash \\",
      "\x7f del and \x01 control",
  };
  size_t i;
  for (i = 0; i < sizeof messages / sizeof messages[0]; i++) {
    cgrpc_status status = {0};
    call_with_status(f, CGRPC_STATUS_INVALID_ARGUMENT, messages[i], &status);
    IT_ASSERT_STATUS(status, CGRPC_STATUS_INVALID_ARGUMENT);
    if (!status.message || strcmp(status.message, messages[i]) != 0)
      fail_msg("message %zu: sent \"%s\", got \"%s\"", i, messages[i],
               status.message ? status.message : "(none)");
    cgrpc_status_clear(&status);
  }
}

/* A failure without a message is a Trailers-Only response; the metadata the
 * handler added still arrives. */
static void test_unary_trailers_only_metadata(void **state) {
  it_fixture *f = *state;
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_status status = {0};
  cgrpc_metadata_array *md = NULL;
  cgrpc_call_options opts = {0};
  assert_int_equal(cgrpc_metadata_array_new(&md), 0);
  assert_int_equal(cgrpc_metadata_array_add(md, "x-only", "trailers"), 0);
  opts.metadata = md;
  req.status_code = CGRPC_STATUS_NOT_FOUND;
  req.echo_metadata = 1;
  cgrpc__test__echo_service__echo__call(f->ch, &req, &reply, &opts, &status);
  IT_ASSERT_STATUS(status, CGRPC_STATUS_NOT_FOUND);
  assert_null(reply);
  assert_null(status.message);
  /* A Trailers-Only response has no separate headers: gRPC clients report
   * its metadata as trailing metadata. */
  assert_non_null(it_md_get(status.trailing_metadata, "x-only-trailer"));
  assert_string_equal(it_md_get(status.trailing_metadata, "x-only-trailer"),
                      "trailers");
  assert_non_null(it_md_get(status.trailing_metadata, "x-only"));
  cgrpc_status_clear(&status);
  cgrpc_metadata_array_del(md);
}

static void test_unary_unimplemented_method(void **state) {
  it_fixture *f = *state;
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_status status = {0};
  cgrpc__test__echo_service__unimplemented__call(f->ch, &req, &reply, NULL,
                                                 &status);
  IT_ASSERT_STATUS(status, CGRPC_STATUS_UNIMPLEMENTED);
  assert_null(reply);
  cgrpc_status_clear(&status);
  assert_int_equal(atomic_load(&f->srv.stats.calls), 0);
}

static void test_unary_unknown_path(void **state) {
  it_fixture *f = *state;
  const cgrpc_method_desc method = {"Method", "/no.Such/Method",
                                    CGRPC_METHOD_UNARY,
                                    &cgrpc__test__echo_request__descriptor,
                                    &cgrpc__test__echo_reply__descriptor};
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  ProtobufCMessage *reply = NULL;
  cgrpc_status status = {0};
  req.message = "anyone there?";
  cgrpc_unary_call(f->ch, &method, &req.base, &reply, NULL, &status);
  IT_ASSERT_STATUS(status, CGRPC_STATUS_UNIMPLEMENTED);
  assert_null(reply);
  assert_non_null(status.message);
  assert_non_null(strstr(status.message, "/no.Such/Method"));
  cgrpc_status_clear(&status);
  /* The channel is still good. */
  assert_int_equal(
      it_echo(f->ch, "still here", (Cgrpc__Test__EchoReply **)&reply, NULL),
      CGRPC_STATUS_OK);
  protobuf_c_message_free_unpacked(reply, NULL);
}

static void test_unary_async_start(void **state) {
  it_fixture *f = *state;
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  it_async a;
  cgrpc_call *call = NULL;
  it_async_init(&a);
  req.message = "async";
  assert_int_equal(cgrpc__test__echo_service__echo__start(
                       f->ch, &req, NULL, it_async_done, &a, &call),
                   0);
  assert_non_null(call);
  assert_int_equal(it_async_wait(&a, IT_WAIT_MS), 1);
  assert_int_equal(a.status.code, CGRPC_STATUS_OK);
  assert_non_null(a.reply);
  assert_string_equal(a.reply->message, "async");
  cgrpc_call_unref(call);

  /* Without a call reference. */
  it_async_fini(&a);
  it_async_init(&a);
  req.message = "fire and forget";
  assert_int_equal(cgrpc__test__echo_service__echo__start(
                       f->ch, &req, NULL, it_async_done, &a, NULL),
                   0);
  assert_int_equal(it_async_wait(&a, IT_WAIT_MS), 1);
  assert_int_equal(a.status.code, CGRPC_STATUS_OK);
  assert_string_equal(a.reply->message, "fire and forget");
  it_sleep_ms(20);
  assert_int_equal(a.done, 1); /* once only */
  it_async_fini(&a);

  /* Bad arguments: the callback never runs. */
  assert_int_equal(cgrpc__test__echo_service__echo__start(f->ch, &req, NULL,
                                                          NULL, NULL, NULL),
                   CGRPC_ERR_INVALID_ARGUMENT);
}

/* cgrpc_call_take_status moves the status out: it stays valid after the
 * callback and carries code, message and metadata. */
typedef struct taken {
  pthread_mutex_t lock;
  int done;
  cgrpc_status status;
  int reply_was_null;
} taken;

static void take_done(cgrpc_call *call, const cgrpc_status *status,
                      ProtobufCMessage *reply, void *user_data) {
  taken *t = user_data;
  pthread_mutex_lock(&t->lock);
  if (status->code != CGRPC_STATUS_ABORTED || !status->message) {
    fprintf(stderr, "take_done: %s \"%s\"\n",
            cgrpc_status_code_name(status->code),
            status->message ? status->message : "(none)");
    t->done = -1;
  }
  cgrpc_call_take_status(call, &t->status);
  t->reply_was_null = reply == NULL;
  if (reply)
    protobuf_c_message_free_unpacked(reply, NULL);
  if (t->done == 0)
    t->done = 1;
  pthread_mutex_unlock(&t->lock);
}

static void test_unary_take_status(void **state) {
  it_fixture *f = *state;
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  cgrpc_metadata_array *md = NULL;
  cgrpc_call_options opts = {0};
  taken t;
  int64_t end;
  int done = 0;
  memset(&t, 0, sizeof t);
  pthread_mutex_init(&t.lock, NULL);
  assert_int_equal(cgrpc_metadata_array_new(&md), 0);
  assert_int_equal(cgrpc_metadata_array_add(md, "x-take", "me"), 0);
  opts.metadata = md;
  req.status_code = CGRPC_STATUS_ABORTED;
  req.status_message = "aborted on purpose";
  req.echo_metadata = 1;
  assert_int_equal(cgrpc__test__echo_service__echo__start(f->ch, &req, &opts,
                                                          take_done, &t, NULL),
                   0);
  cgrpc_metadata_array_del(md); /* read before start returned */
  end = it_now_ms() + IT_WAIT_MS;
  while (it_now_ms() < end) {
    pthread_mutex_lock(&t.lock);
    done = t.done;
    pthread_mutex_unlock(&t.lock);
    if (done)
      break;
    it_sleep_ms(2);
  }
  assert_int_equal(done, 1);
  assert_true(t.reply_was_null);
  assert_int_equal(t.status.code, CGRPC_STATUS_ABORTED);
  assert_string_equal(t.status.message, "aborted on purpose");
  assert_string_equal(it_md_get(t.status.initial_metadata, "x-take") != NULL
                          ? it_md_get(t.status.initial_metadata, "x-take")
                          : it_md_get(t.status.trailing_metadata, "x-take"),
                      "me");
  assert_string_equal(it_md_get(t.status.trailing_metadata, "x-take-trailer"),
                      "me");
  cgrpc_status_clear(&t.status);
  pthread_mutex_destroy(&t.lock);
}

static void test_unary_misuse(void **state) {
  it_fixture *f = *state;
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_status status = {0};
  /* Wrong request type for the method. */
  Cgrpc__Test__EchoReply wrong = CGRPC__TEST__ECHO_REPLY__INIT;
  ProtobufCMessage *out = NULL;
  assert_int_equal(
      cgrpc_unary_call(f->ch, &cgrpc__test__echo_service__service__methods[0],
                       &wrong.base, &out, NULL, &status),
      CGRPC_STATUS_INVALID_ARGUMENT);
  assert_null(out);
  cgrpc_status_clear(&status);
  assert_int_equal(
      cgrpc__test__echo_service__echo__call(NULL, &req, &reply, NULL, &status),
      CGRPC_STATUS_INVALID_ARGUMENT);
  assert_null(reply);
  cgrpc_status_clear(&status);
}

/* Nonzero when this process maps a library whose path contains |name|. */
static int maps_library(const char *name) {
  char line[512];
  int found = 0;
  FILE *f = fopen("/proc/self/maps", "r");
  assert_non_null(f);
  while (!found && fgets(line, sizeof line, f))
    found = strstr(line, name) != NULL;
  fclose(f);
  return found;
}

/* A process that uses only plaintext never maps OpenSSL (about 1.7 MB of
 * resident memory once relocated); TLS credentials load it.  (This test
 * binary does not link OpenSSL; the TLS tests do.) */
static void test_unary_plaintext_leaves_openssl_unloaded(void **state) {
  it_fixture *f = *state;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_status status = {0};
  cgrpc_channel_credentials *creds = NULL;
  assert_int_equal(it_echo(f->ch, "plain", &reply, &status), CGRPC_STATUS_OK);
  protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_status_clear(&status);
  assert_false(maps_library("libssl.so"));
  assert_false(maps_library("libcrypto.so"));
  assert_int_equal(cgrpc_channel_credentials_new(&creds), 0);
  assert_null(cgrpc_tls_load_error());
  assert_true(maps_library("libssl.so"));
  assert_true(maps_library("libcrypto.so"));
  cgrpc_channel_credentials_del(creds);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(name)                                                                \
  cmocka_unit_test_setup_teardown(name, setup, it_fixture_teardown)
      T(test_unary_round_trip),
      T(test_unary_say_hello_basics),
      T(test_unary_empty_message),
      T(test_unary_large_payload),
      T(test_unary_every_status_code),
      T(test_unary_status_message_utf8),
      T(test_unary_trailers_only_metadata),
      T(test_unary_unimplemented_method),
      T(test_unary_unknown_path),
      T(test_unary_async_start),
      T(test_unary_take_status),
      T(test_unary_misuse),
      /* Last: OpenSSL stays loaded once it is. */
      T(test_unary_plaintext_leaves_openssl_unloaded),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
