/* SPDX-License-Identifier: MIT */
/*
 * A channel's service config against a real server: the method config's
 * timeout caps the call's deadline (the server sees it), its message
 * limits apply where they are lower than the channel's, the default entry
 * and the per-service entry are picked as gRPC picks them, and a config
 * that does not parse is refused with the field's name.
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

static it_server srv;

static int setup(void **state) {
  (void)state;
  assert_int_equal(it_server_start(&srv, NULL, 0), 0);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  it_server_stop(&srv, 1000);
  return 0;
}

/* A channel to the server with |json| as its service config. */
static cgrpc_channel *channel_with(const char *json) {
  cgrpc_channel_options *o;
  cgrpc_channel *ch;
  char err[300] = "";
  assert_int_equal(cgrpc_channel_options_new(&o), 0);
  if (cgrpc_channel_options_set_service_config(o, json, err, sizeof err) != 0)
    fail_msg("service config refused: %s", err);
  ch = it_channel(&srv, o);
  assert_non_null(ch);
  cgrpc_channel_options_del(o);
  return ch;
}

typedef struct echo_out {
  cgrpc_status_code code;
  int64_t remaining_ms; /* what the server saw; -1: no deadline */
  int64_t took_ms;
} echo_out;

static echo_out echo(cgrpc_channel *ch, int64_t timeout_ms, int sleep_ms,
                     size_t payload, int response_size) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_call_options opts = {.timeout_ms = timeout_ms};
  cgrpc_status st = {0};
  uint8_t *buf = calloc(1, payload + 1);
  echo_out out = {0, -2, 0};
  int64_t t0 = it_now_ms();
  assert_non_null(buf);
  req.message = "sc";
  req.sleep_ms = sleep_ms;
  req.payload.data = buf;
  req.payload.len = payload;
  req.response_size = response_size;
  out.code =
      cgrpc__test__echo_service__echo__call(ch, &req, &reply, &opts, &st);
  out.took_ms = it_now_ms() - t0;
  if (reply)
    out.remaining_ms = reply->time_remaining_ms;
  if (reply)
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_status_clear(&st);
  free(buf);
  return out;
}

/* The service's timeout caps calls without a deadline, and calls with a
 * longer one; a shorter deadline of the call's own stays. */
static void test_service_config_timeout(void **state) {
  cgrpc_channel *ch =
      channel_with("{\"methodConfig\": [{\"name\": [{\"service\": "
                   "\"cgrpc.test.EchoService\"}], \"timeout\": \"5s\"}]}");
  echo_out o;
  (void)state;
  o = echo(ch, 0, 0, 0, 0);
  assert_int_equal(o.code, CGRPC_STATUS_OK);
  assert_true(o.remaining_ms > 0 && o.remaining_ms <= 5000);
  o = echo(ch, 60000, 0, 0, 0);
  assert_int_equal(o.code, CGRPC_STATUS_OK);
  assert_true(o.remaining_ms > 0 && o.remaining_ms <= 5000);
  o = echo(ch, 1000, 0, 0, 0);
  assert_int_equal(o.code, CGRPC_STATUS_OK);
  assert_true(o.remaining_ms > 0 && o.remaining_ms <= 1000);
  cgrpc_channel_del(ch);
}

/* A call that outlives the config's timeout ends DEADLINE_EXCEEDED then,
 * not after the handler's sleep. */
static void test_service_config_timeout_expires(void **state) {
  cgrpc_channel *ch = channel_with(
      "{\"methodConfig\": [{\"name\": [{}], \"timeout\": \"0.3s\"}]}");
  echo_out o;
  (void)state;
  o = echo(ch, 0, 10000, 0, 0);
  assert_int_equal(o.code, CGRPC_STATUS_DEADLINE_EXCEEDED);
  assert_true(o.took_ms < 5000);
  cgrpc_channel_del(ch);
}

/* The method's own entry wins over its service's: Echo gets no timeout
 * here (its entry has none), while the service's says 1 s. */
static void test_service_config_method_entry_wins(void **state) {
  cgrpc_channel *ch = channel_with(
      "{\"methodConfig\": ["
      "{\"name\": [{\"service\": \"cgrpc.test.EchoService\"}], "
      "\"timeout\": \"1s\"},"
      "{\"name\": [{\"service\": \"cgrpc.test.EchoService\", "
      "\"method\": \"Echo\"}], \"maxResponseMessageBytes\": 1000000}]}");
  echo_out o;
  (void)state;
  o = echo(ch, 0, 0, 0, 0);
  assert_int_equal(o.code, CGRPC_STATUS_OK);
  assert_int_equal(o.remaining_ms, -1);
  cgrpc_channel_del(ch);
}

/* maxResponseMessageBytes below the channel's limit: a larger reply fails
 * RESOURCE_EXHAUSTED; maxRequestMessageBytes: a larger request fails
 * before it is sent (the handler never runs). */
static void test_service_config_message_limits(void **state) {
  cgrpc_channel *ch = channel_with("{\"methodConfig\": [{\"name\": [{}], "
                                   "\"maxRequestMessageBytes\": 1000, "
                                   "\"maxResponseMessageBytes\": \"2000\"}]}");
  echo_out o;
  int calls;
  (void)state;
  assert_int_equal(echo(ch, 10000, 0, 500, 1500).code, CGRPC_STATUS_OK);
  o = echo(ch, 10000, 0, 0, 4000);
  assert_int_equal(o.code, CGRPC_STATUS_RESOURCE_EXHAUSTED);
  calls = atomic_load(&srv.stats.calls);
  o = echo(ch, 10000, 0, 5000, 0);
  assert_int_equal(o.code, CGRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_int_equal(atomic_load(&srv.stats.calls), calls);
  cgrpc_channel_del(ch);
}

/* A config that does not parse is refused, says why, and leaves the
 * options' config as it was. */
static void test_service_config_refused(void **state) {
  cgrpc_channel_options *o;
  cgrpc_channel *ch;
  char err[300];
  (void)state;
  assert_int_equal(cgrpc_channel_options_new(&o), 0);
  assert_int_equal(cgrpc_channel_options_set_service_config(
                       o,
                       "{\"methodConfig\": [{\"name\": [{}], "
                       "\"timeout\": \"0.3s\"}]}",
                       NULL, 0),
                   0);
  err[0] = '\0';
  assert_int_equal(cgrpc_channel_options_set_service_config(
                       o,
                       "{\"methodConfig\": [{\"name\": [{}], "
                       "\"retryPolicy\": {\"maxAttempts\": 1}}]}",
                       err, sizeof err),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(err, "methodConfig[0].retryPolicy.maxAttempts"));
  assert_int_equal(
      cgrpc_channel_options_set_service_config(o, "{", err, sizeof err),
      CGRPC_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(err, "not JSON"));
  assert_int_equal(
      cgrpc_channel_options_set_service_config(NULL, "{}", NULL, 0),
      CGRPC_ERR_INVALID_ARGUMENT);
  /* The 0.3 s timeout is still there. */
  ch = it_channel(&srv, o);
  cgrpc_channel_options_del(o); /* the channel keeps the config */
  assert_int_equal(echo(ch, 0, 10000, 0, 0).code,
                   CGRPC_STATUS_DEADLINE_EXCEEDED);
  cgrpc_channel_del(ch);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_service_config_timeout),
      T(test_service_config_timeout_expires),
      T(test_service_config_method_entry_wins),
      T(test_service_config_message_limits),
      T(test_service_config_refused),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
