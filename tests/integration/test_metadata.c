/* SPDX-License-Identifier: MIT */
/*
 * Metadata end to end: ASCII and -bin values (every byte value, NUL and 0xFF
 * included) from client to server and back as initial and trailing
 * metadata; key and value validation in the public API.
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

/* Echo call with |md| and echo_metadata set; returns the status. */
static void echo_md(it_fixture *f, const cgrpc_metadata_array *md,
                    int status_code, cgrpc_status *status) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_call_options opts = {0};
  opts.metadata = md;
  req.echo_metadata = 1;
  req.status_code = status_code;
  req.status_message = status_code ? "with metadata" : "";
  cgrpc__test__echo_service__echo__call(f->ch, &req, &reply, &opts, status);
  if (reply)
    protobuf_c_message_free_unpacked(&reply->base, NULL);
}

static void expect_md(const cgrpc_metadata_array *md, const char *key,
                         const void *value, size_t len) {
  size_t got_len = 0;
  const char *got = cgrpc_metadata_array_get(md, key, &got_len);
  if (!got)
    fail_msg("metadata key \"%s\" missing", key);
  assert_int_equal(got_len, len);
  assert_memory_equal(got, value, len);
  assert_int_equal(got[len], '\0'); /* values are NUL-terminated too */
}

static void test_metadata_ascii_round_trip(void **state) {
  it_fixture *f = *state;
  cgrpc_metadata_array *md = NULL;
  cgrpc_status status = {0};
  static const char printable[] =
      " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`"
      "abcdefghijklmnopqrstuvwxyz{|}~x";
  assert_int_equal(cgrpc_metadata_array_new(&md), 0);
  assert_int_equal(cgrpc_metadata_array_add(md, "x-ascii", "hello world"), 0);
  assert_int_equal(cgrpc_metadata_array_add(md, "x-printable", printable + 1),
                   0);
  assert_int_equal(cgrpc_metadata_array_add(md, "x.dots_and-dashes", "1"), 0);
  assert_int_equal(cgrpc_metadata_array_add(md, "x-empty", ""), 0);
  assert_int_equal(cgrpc_metadata_array_count(md), 4);
  echo_md(f, md, 0, &status);
  IT_ASSERT_STATUS(status, CGRPC_STATUS_OK);
  expect_md(status.initial_metadata, "x-ascii", "hello world", 11);
  expect_md(status.trailing_metadata, "x-ascii-trailer", "hello world", 11);
  expect_md(status.initial_metadata, "x-printable", printable + 1,
               strlen(printable + 1));
  expect_md(status.trailing_metadata, "x-printable-trailer", printable + 1,
               strlen(printable + 1));
  expect_md(status.initial_metadata, "x.dots_and-dashes", "1", 1);
  expect_md(status.initial_metadata, "x-empty", "", 0);
  cgrpc_status_clear(&status);

  /* The same metadata on a failing call (Trailers-Only). */
  echo_md(f, md, CGRPC_STATUS_PERMISSION_DENIED, &status);
  IT_ASSERT_STATUS(status, CGRPC_STATUS_PERMISSION_DENIED);
  expect_md(status.trailing_metadata, "x-ascii-trailer", "hello world", 11);
  cgrpc_status_clear(&status);
  cgrpc_metadata_array_del(md);
}

static void test_metadata_binary_round_trip(void **state) {
  it_fixture *f = *state;
  cgrpc_metadata_array *md = NULL;
  cgrpc_status status = {0};
  static const uint8_t small[] = {0x00, 0xff, 0x01, 0x80, 0x7f, 0x00, 0xfe};
  uint8_t all[256];
  size_t i, lens[] = {0, 1, 2, 3, 4, 5};
  char key[32];
  for (i = 0; i < sizeof all; i++)
    all[i] = (uint8_t)i;
  assert_int_equal(cgrpc_metadata_array_new(&md), 0);
  assert_int_equal(cgrpc_metadata_array_add_bin(md, "x-small-bin", small,
                                                sizeof small),
                   0);
  assert_int_equal(cgrpc_metadata_array_add_bin(md, "x-all-bin", all,
                                                sizeof all),
                   0);
  /* Every base64 padding case. */
  for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    snprintf(key, sizeof key, "x-len%zu-bin", lens[i]);
    assert_int_equal(cgrpc_metadata_array_add_bin(md, key, all + 250, lens[i]),
                     0);
  }
  /* A "-bin" key through the string form takes the bytes as they are. */
  assert_int_equal(cgrpc_metadata_array_add(md, "x-str-bin", "\x01\xff\n"), 0);
  echo_md(f, md, 0, &status);
  IT_ASSERT_STATUS(status, CGRPC_STATUS_OK);
  expect_md(status.initial_metadata, "x-small-bin", small, sizeof small);
  expect_md(status.trailing_metadata, "x-small-trailer-bin", small,
               sizeof small);
  expect_md(status.initial_metadata, "x-all-bin", all, sizeof all);
  expect_md(status.trailing_metadata, "x-all-trailer-bin", all, sizeof all);
  for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    snprintf(key, sizeof key, "x-len%zu-bin", lens[i]);
    expect_md(status.initial_metadata, key, all + 250, lens[i]);
    snprintf(key, sizeof key, "x-len%zu-trailer-bin", lens[i]);
    expect_md(status.trailing_metadata, key, all + 250, lens[i]);
  }
  expect_md(status.initial_metadata, "x-str-bin", "\x01\xff\n", 3);
  cgrpc_status_clear(&status);
  cgrpc_metadata_array_del(md);
}

/* Repeated keys keep every value, in order. */
static void test_metadata_repeated_keys(void **state) {
  it_fixture *f = *state;
  cgrpc_metadata_array *md = NULL;
  cgrpc_status status = {0};
  const char *key;
  const uint8_t *value;
  size_t i, n, len, seen = 0;
  assert_int_equal(cgrpc_metadata_array_new(&md), 0);
  assert_int_equal(cgrpc_metadata_array_add(md, "x-multi", "one"), 0);
  assert_int_equal(cgrpc_metadata_array_add(md, "x-multi", "two"), 0);
  assert_int_equal(cgrpc_metadata_array_add(md, "x-multi", "three"), 0);
  echo_md(f, md, 0, &status);
  IT_ASSERT_STATUS(status, CGRPC_STATUS_OK);
  n = cgrpc_metadata_array_count(status.initial_metadata);
  for (i = 0; i < n; i++) {
    static const char *const want[] = {"one", "two", "three"};
    assert_int_equal(cgrpc_metadata_array_at(status.initial_metadata, i, &key,
                                             &value, &len),
                     0);
    if (strcmp(key, "x-multi") != 0)
      continue;
    assert_true(seen < 3);
    assert_string_equal((const char *)value, want[seen]);
    seen++;
  }
  assert_int_equal(seen, 3);
  assert_int_equal(cgrpc_metadata_array_at(status.initial_metadata, n, &key,
                                           &value, &len),
                   CGRPC_ERR_INVALID_ARGUMENT);
  cgrpc_status_clear(&status);
  cgrpc_metadata_array_del(md);
}

static void test_metadata_invalid_keys(void **state) {
  cgrpc_metadata_array *md = NULL;
  static const char *const bad[] = {
      "",          "Upper",   "x-Upper", "has space", "a/b",   "a:b",
      ":path",     ":status", "x\x01",   "caf\xc3\xa9", "x=y", "tab\tkey",
      "x-\x7f", "(paren)"};
  size_t i;
  (void)state;
  assert_int_equal(cgrpc_metadata_array_new(&md), 0);
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (cgrpc_metadata_array_add(md, bad[i], "v") != CGRPC_ERR_INVALID_ARGUMENT)
      fail_msg("key \"%s\" was accepted", bad[i]);
  }
  /* Values of ASCII keys must be printable. */
  assert_int_equal(cgrpc_metadata_array_add(md, "x-ok", "line\nbreak"),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_metadata_array_add(md, "x-ok", "tab\there"),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_metadata_array_add(md, "x-ok", "caf\xc3\xa9"),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_metadata_array_add(md, "x-ok", "\x7f"),
                   CGRPC_ERR_INVALID_ARGUMENT);
  /* Binary values need a -bin key. */
  assert_int_equal(cgrpc_metadata_array_add_bin(md, "x-ok", "\0", 1),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_metadata_array_add_bin(md, "x-ok-bin", NULL, 1),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_metadata_array_add(md, NULL, "v"),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_metadata_array_add(md, "x-ok", NULL),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_metadata_array_add(NULL, "x-ok", "v"),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_metadata_array_count(md), 0);
  assert_int_equal(cgrpc_metadata_array_add(md, "x-ok", "fine"), 0);
  assert_int_equal(cgrpc_metadata_array_count(md), 1);
  cgrpc_metadata_array_del(md);
}

static void test_metadata_reserved_keys(void **state) {
  cgrpc_metadata_array *md = NULL;
  static const char *const reserved[] = {
      "grpc-status", "grpc-message", "grpc-timeout", "grpc-encoding",
      "grpc-foo",    "grpc-x-bin",   "content-type", "te"};
  size_t i;
  (void)state;
  assert_int_equal(cgrpc_metadata_array_new(&md), 0);
  for (i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
    if (cgrpc_metadata_array_add(md, reserved[i], "v") !=
        CGRPC_ERR_INVALID_ARGUMENT)
      fail_msg("reserved key \"%s\" was accepted", reserved[i]);
  }
  assert_int_equal(cgrpc_metadata_array_add_bin(md, "grpc-trace-bin", "x", 1),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_metadata_array_count(md), 0);
  cgrpc_metadata_array_del(md);
}

/* A handler's own metadata additions follow the same rules. */
static cgrpc_status_code strict_echo(cgrpc_server_ctx *ctx,
                                     const Cgrpc__Test__EchoRequest *request,
                                     Cgrpc__Test__EchoReply *reply,
                                     void *user_data) {
  (void)request;
  (void)user_data;
  if (cgrpc_server_ctx_add_initial_metadata(ctx, "grpc-status", "0") !=
          CGRPC_ERR_INVALID_ARGUMENT ||
      cgrpc_server_ctx_add_trailing_metadata(ctx, "content-type", "x") !=
          CGRPC_ERR_INVALID_ARGUMENT ||
      cgrpc_server_ctx_add_initial_metadata(ctx, "Bad", "x") !=
          CGRPC_ERR_INVALID_ARGUMENT ||
      cgrpc_server_ctx_add_initial_metadata_bin(ctx, "no-bin-suffix", "x", 1) !=
          CGRPC_ERR_INVALID_ARGUMENT ||
      cgrpc_server_ctx_add_trailing_metadata(ctx, "x-ok", "bad\nvalue") !=
          CGRPC_ERR_INVALID_ARGUMENT)
    return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_INTERNAL,
                                 "a bad key or value was accepted");
  if (cgrpc_server_ctx_add_initial_metadata(ctx, "x-from-handler", "yes") != 0 ||
      cgrpc_server_ctx_add_trailing_metadata_bin(ctx, "x-t-bin", "\0\xff", 2) !=
          0)
    return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_INTERNAL,
                                 "a good key was refused");
  reply->message = "checked";
  return CGRPC_STATUS_OK;
}

static void test_metadata_server_ctx_rules(void **state) {
  it_server srv;
  cgrpc_server *server = NULL;
  cgrpc_channel *ch = NULL;
  Cgrpc__Test__EchoService_Servicer servicer;
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_status status = {0};
  int port = 0;
  (void)state;
  memset(&servicer, 0, sizeof servicer);
  servicer.echo = strict_echo;
  assert_int_equal(cgrpc_server_new(&server, NULL), 0);
  assert_int_equal(cgrpc_server_add_insecure_port(server, "127.0.0.1:0", &port),
                   0);
  assert_int_equal(
      cgrpc__test__echo_service__servicer__register(server, &servicer, NULL),
      0);
  assert_int_equal(cgrpc_server_start(server), 0);
  memset(&srv, 0, sizeof srv);
  snprintf(srv.target, sizeof srv.target, "127.0.0.1:%d", port);
  ch = it_channel(&srv, NULL);
  assert_non_null(ch);
  cgrpc__test__echo_service__echo__call(ch, &req, &reply, NULL, &status);
  IT_ASSERT_STATUS(status, CGRPC_STATUS_OK);
  assert_string_equal(reply->message, "checked");
  expect_md(status.initial_metadata, "x-from-handler", "yes", 3);
  expect_md(status.trailing_metadata, "x-t-bin", "\0\xff", 2);
  protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_status_clear(&status);
  cgrpc_channel_del(ch);
  cgrpc_server_shutdown(server, 1000);
  cgrpc_server_del(server);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      IT_FIXTURE_TEST(test_metadata_ascii_round_trip),
      IT_FIXTURE_TEST(test_metadata_binary_round_trip),
      IT_FIXTURE_TEST(test_metadata_repeated_keys),
      cmocka_unit_test(test_metadata_invalid_keys),
      cmocka_unit_test(test_metadata_reserved_keys),
      cmocka_unit_test(test_metadata_server_ctx_rules),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
