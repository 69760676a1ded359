/* SPDX-License-Identifier: MIT */
/*
 * Retries of the service config's retryPolicy (gRFC A6) against our
 * server failing the first N attempts (counted server-side): retries until
 * OK, maxAttempts, which codes are retried, and retryThrottling.  What
 * goes on the wire (grpc-previous-rpc-attempts, pushback, committed calls,
 * a backoff cut by the deadline or the channel's deletion) is checked
 * against a raw server in test_wire.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "harness.h"

#define SLOW IT_SLOW
#define BOUND_MS (10000 * SLOW)

/* ---- the server: Echo fails the first |fail_first| attempts ---- */

typedef struct flaky {
  pthread_mutex_t lock;
  int attempts;           /* Echo calls seen */
  int fail_first;         /* attempts that fail */
  cgrpc_status_code code; /* with this */
} flaky;

static flaky fl = {PTHREAD_MUTEX_INITIALIZER, 0, 0, CGRPC_STATUS_OK};

static cgrpc_status_code flaky_echo(cgrpc_server_ctx *ctx,
                                    const Cgrpc__Test__EchoRequest *request,
                                    Cgrpc__Test__EchoReply *reply,
                                    void *user_data) {
  int fail;
  (void)user_data;
  pthread_mutex_lock(&fl.lock);
  fail = fl.attempts++ < fl.fail_first;
  pthread_mutex_unlock(&fl.lock);
  if (!fail) {
    reply->message = cgrpc_server_ctx_strdup(ctx, request->message);
    return CGRPC_STATUS_OK;
  }
  return cgrpc_server_ctx_fail(ctx, fl.code, "failing on purpose");
}

static cgrpc_server *server;
static int port;

static int setup(void **state) {
  static const Cgrpc__Test__EchoService_Servicer servicer = {flaky_echo, NULL};
  (void)state;
  pthread_mutex_lock(&fl.lock);
  fl.attempts = 0;
  fl.fail_first = 0;
  fl.code = CGRPC_STATUS_UNAVAILABLE;
  pthread_mutex_unlock(&fl.lock);
  assert_int_equal(cgrpc_server_new(&server, NULL), 0);
  assert_int_equal(cgrpc_server_add_insecure_port(server, "127.0.0.1:0", &port),
                   0);
  assert_int_equal(
      cgrpc__test__echo_service__servicer__register(server, &servicer, NULL),
      0);
  assert_int_equal(cgrpc_server_start(server), 0);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  cgrpc_server_shutdown(server, 1000);
  cgrpc_server_del(server);
  return 0;
}

#define POLICY(attempts, codes)                                                \
  "{\"methodConfig\": [{\"name\": [{\"service\": "                             \
  "\"cgrpc.test.EchoService\"}], \"retryPolicy\": "                            \
  "{\"maxAttempts\": " #attempts                                               \
  ", \"initialBackoff\": \"0.01s\", \"maxBackoff\": \"0.05s\", "               \
  "\"backoffMultiplier\": 2, \"retryableStatusCodes\": [" codes "]}}]"

static cgrpc_channel *channel_with(const char *json) {
  cgrpc_channel_options *o;
  cgrpc_channel *ch = NULL;
  char err[300] = "", target[64];
  assert_int_equal(cgrpc_channel_options_new(&o), 0);
  if (cgrpc_channel_options_set_service_config(o, json, err, sizeof err) != 0)
    fail_msg("service config refused: %s", err);
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  assert_int_equal(cgrpc_channel_new(&ch, target, o), 0);
  cgrpc_channel_options_del(o);
  return ch;
}

static cgrpc_status_code echo(cgrpc_channel *ch, int64_t timeout_ms) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_call_options opts = {.timeout_ms = timeout_ms};
  cgrpc_status st = {0};
  cgrpc_status_code code;
  req.message = "again";
  code = cgrpc__test__echo_service__echo__call(ch, &req, &reply, &opts, &st);
  if (code == CGRPC_STATUS_OK)
    assert_string_equal(reply->message, "again");
  if (reply)
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_status_clear(&st);
  return code;
}

static int attempts(void) {
  int n;
  pthread_mutex_lock(&fl.lock);
  n = fl.attempts;
  pthread_mutex_unlock(&fl.lock);
  return n;
}

/* Two failures, then the third attempt answers.  (What each attempt sends,
 * the pushback, committed calls and backoffs are checked on the wire by
 * test_wire's retry_policy tests.) */
static void test_retry_until_ok(void **state) {
  cgrpc_channel *ch = channel_with(POLICY(3, "\"UNAVAILABLE\"") "}");
  (void)state;
  fl.fail_first = 2;
  assert_int_equal(echo(ch, BOUND_MS), CGRPC_STATUS_OK);
  assert_int_equal(attempts(), 3);
  cgrpc_channel_del(ch);
}

/* maxAttempts counts the original call: 3 attempts, then the status. */
static void test_retry_max_attempts(void **state) {
  cgrpc_channel *ch = channel_with(POLICY(3, "\"UNAVAILABLE\"") "}");
  (void)state;
  fl.fail_first = 100;
  assert_int_equal(echo(ch, BOUND_MS), CGRPC_STATUS_UNAVAILABLE);
  assert_int_equal(attempts(), 3);
  cgrpc_channel_del(ch);
}

/* A code the policy does not list is not retried; one it lists by number
 * is. */
static void test_retry_codes(void **state) {
  cgrpc_channel *ch = channel_with(POLICY(4, "\"UNAVAILABLE\", 8") "}");
  (void)state;
  fl.fail_first = 1;
  fl.code = CGRPC_STATUS_INTERNAL;
  assert_int_equal(echo(ch, BOUND_MS), CGRPC_STATUS_INTERNAL);
  assert_int_equal(attempts(), 1);
  fl.attempts = 0;
  fl.code = CGRPC_STATUS_RESOURCE_EXHAUSTED; /* 8 */
  assert_int_equal(echo(ch, BOUND_MS), CGRPC_STATUS_OK);
  assert_int_equal(attempts(), 2);
  cgrpc_channel_del(ch);
}

/* retryThrottling: with maxTokens 2, one failure leaves 1 token, at or
 * below half: no retry. */
static void test_retry_throttled(void **state) {
  cgrpc_channel *ch = channel_with(
      POLICY(3, "\"UNAVAILABLE\"") ", \"retryThrottling\": {\"maxTokens\": "
                                   "2, \"tokenRatio\": 0.5}}");
  (void)state;
  fl.fail_first = 100;
  assert_int_equal(echo(ch, BOUND_MS), CGRPC_STATUS_UNAVAILABLE);
  assert_int_equal(attempts(), 1);
  cgrpc_channel_del(ch);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_retry_until_ok),
      T(test_retry_max_attempts),
      T(test_retry_codes),
      T(test_retry_throttled),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
