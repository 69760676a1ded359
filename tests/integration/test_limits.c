/* SPDX-License-Identifier: MIT */
/*
 * Message size limits on both sides, and a request that does not decode.
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
#include "not_echo.pb-c.h"

static cgrpc_status_code echo_payload(cgrpc_channel *ch, size_t payload_len,
                                      int response_size, cgrpc_status *status) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply = NULL;
  uint8_t *buf = calloc(1, payload_len + 1);
  cgrpc_status_code code;
  req.payload.data = buf;
  req.payload.len = payload_len;
  req.response_size = response_size;
  code = cgrpc__test__echo_service__echo__call(ch, &req, &reply, NULL, status);
  if (reply)
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  free(buf);
  return code;
}

/* Message size limits; 0 leaves one at its default.  With none on a side,
 * that side gets the harness's default options. */
typedef struct limits {
  int64_t server_recv, server_send, client_recv, client_send;
} limits;

/* Starts |srv| with |lim|'s server limits and returns a channel to it with
 * its client limits; asserts on failure. */
static cgrpc_channel *start_limited(it_server *srv, limits lim) {
  cgrpc_server_options *so = NULL;
  cgrpc_channel_options *co = NULL;
  cgrpc_channel *ch;
  if (lim.server_recv || lim.server_send) {
    assert_int_equal(cgrpc_server_options_new(&so), 0);
    if (lim.server_recv)
      cgrpc_server_options_set_max_receive_message_length(so, lim.server_recv);
    if (lim.server_send)
      cgrpc_server_options_set_max_send_message_length(so, lim.server_send);
  }
  assert_int_equal(it_server_start(srv, so, 0), 0);
  cgrpc_server_options_del(so);
  if (lim.client_recv || lim.client_send) {
    assert_int_equal(cgrpc_channel_options_new(&co), 0);
    if (lim.client_recv)
      cgrpc_channel_options_set_max_receive_message_length(co, lim.client_recv);
    if (lim.client_send)
      cgrpc_channel_options_set_max_send_message_length(co, lim.client_send);
  }
  ch = it_channel(srv, co);
  cgrpc_channel_options_del(co);
  assert_non_null(ch);
  return ch;
}

static void test_limits_server_receive(void **state) {
  it_server srv;
  cgrpc_channel *ch;
  cgrpc_status status = {0};
  (void)state;
  ch = start_limited(&srv, (limits){.server_recv = 1024});
  assert_int_equal(echo_payload(ch, 500, 0, NULL), CGRPC_STATUS_OK);
  echo_payload(ch, 2048, 0, &status);
  IT_ASSERT_STATUS(status, CGRPC_STATUS_RESOURCE_EXHAUSTED);
  cgrpc_status_clear(&status);
  /* Far over the limit: the server stops reading it. */
  echo_payload(ch, 3u << 20, 0, &status);
  IT_ASSERT_STATUS(status, CGRPC_STATUS_RESOURCE_EXHAUSTED);
  cgrpc_status_clear(&status);
  assert_int_equal(atomic_load(&srv.stats.calls), 1);
  /* The connection is still usable; a large response is fine. */
  assert_int_equal(echo_payload(ch, 0, 100000, NULL), CGRPC_STATUS_OK);
  cgrpc_channel_del(ch);
  it_server_stop(&srv, 1000);
}

static void test_limits_client_receive(void **state) {
  it_server srv;
  cgrpc_channel *ch;
  cgrpc_status status = {0};
  (void)state;
  ch = start_limited(&srv, (limits){.client_recv = 1024});
  assert_int_equal(echo_payload(ch, 0, 500, NULL), CGRPC_STATUS_OK);
  echo_payload(ch, 0, 4096, &status);
  IT_ASSERT_STATUS(status, CGRPC_STATUS_RESOURCE_EXHAUSTED);
  cgrpc_status_clear(&status);
  echo_payload(ch, 0, 2 << 20, &status);
  IT_ASSERT_STATUS(status, CGRPC_STATUS_RESOURCE_EXHAUSTED);
  cgrpc_status_clear(&status);
  assert_int_equal(echo_payload(ch, 100, 0, NULL), CGRPC_STATUS_OK);
  cgrpc_channel_del(ch);
  it_server_stop(&srv, 1000);
}

static void test_limits_client_send(void **state) {
  it_server srv;
  cgrpc_channel *ch;
  cgrpc_status status = {0};
  it_async a;
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  uint8_t big[2048];
  (void)state;
  ch = start_limited(&srv, (limits){.client_send = 1024});
  assert_int_equal(echo_payload(ch, 1000, 0, NULL), CGRPC_STATUS_OK);
  echo_payload(ch, 2048, 0, &status);
  IT_ASSERT_STATUS(status, CGRPC_STATUS_RESOURCE_EXHAUSTED);
  cgrpc_status_clear(&status);
  /* Async: reported through the callback. */
  memset(big, 'b', sizeof big);
  req.payload.data = big;
  req.payload.len = sizeof big;
  it_async_init(&a);
  assert_int_equal(cgrpc__test__echo_service__echo__start(
                       ch, &req, NULL, it_async_done, &a, NULL),
                   0);
  assert_int_equal(it_async_wait(&a, IT_WAIT_MS), 1);
  IT_ASSERT_STATUS(a.status, CGRPC_STATUS_RESOURCE_EXHAUSTED);
  it_async_fini(&a);
  /* Nothing over the limit reached the server. */
  assert_int_equal(atomic_load(&srv.stats.calls), 1);
  cgrpc_channel_del(ch);
  it_server_stop(&srv, 1000);
}

static void test_limits_malformed_request(void **state) {
  it_server srv;
  cgrpc_channel *ch;
  cgrpc_status status = {0};
  Cgrpc__Integ__NotEchoRequest bad = CGRPC__INTEG__NOT_ECHO_REQUEST__INIT;
  const cgrpc_method_desc method = {
      "Echo", "/cgrpc.test.EchoService/Echo", CGRPC_METHOD_UNARY,
      &cgrpc__integ__not_echo_request__descriptor,
      &cgrpc__test__echo_reply__descriptor};
  ProtobufCMessage *reply = NULL, *check;
  uint8_t buf[32];
  size_t n;
  (void)state;
  bad.message = 12345;
  /* Make sure the bytes really are not an EchoRequest. */
  n = protobuf_c_message_pack(&bad.base, buf);
  assert_true(n > 0 && n < sizeof buf);
  check = protobuf_c_message_unpack(&cgrpc__test__echo_request__descriptor,
                                    NULL, n, buf);
  if (check) {
    protobuf_c_message_free_unpacked(check, NULL);
    fail_msg("the look-alike request decodes as an EchoRequest");
  }
  assert_int_equal(it_server_start(&srv, NULL, 0), 0);
  ch = it_channel(&srv, NULL);
  assert_non_null(ch);
  cgrpc_unary_call(ch, &method, &bad.base, &reply, NULL, &status);
  IT_ASSERT_STATUS(status, CGRPC_STATUS_INTERNAL);
  assert_null(reply);
  cgrpc_status_clear(&status);
  assert_int_equal(atomic_load(&srv.stats.calls), 0);
  assert_int_equal(echo_payload(ch, 10, 0, NULL), CGRPC_STATUS_OK);
  cgrpc_channel_del(ch);
  it_server_stop(&srv, 1000);
}

/* Server-side send limit: a response over it fails RESOURCE_EXHAUSTED. */
static void test_limits_server_send(void **state) {
  it_server srv;
  cgrpc_channel *ch;
  cgrpc_status status = {0};
  (void)state;
  ch = start_limited(&srv, (limits){.server_send = 2048});
  assert_int_equal(echo_payload(ch, 0, 1000, NULL), CGRPC_STATUS_OK);
  echo_payload(ch, 0, 4096, &status);
  IT_ASSERT_STATUS(status, CGRPC_STATUS_RESOURCE_EXHAUSTED);
  cgrpc_status_clear(&status);
  cgrpc_channel_del(ch);
  it_server_stop(&srv, 1000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_limits_server_receive),
      cmocka_unit_test(test_limits_client_receive),
      cmocka_unit_test(test_limits_client_send),
      cmocka_unit_test(test_limits_malformed_request),
      cmocka_unit_test(test_limits_server_send),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
