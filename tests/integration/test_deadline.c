/* SPDX-License-Identifier: MIT */
/*
 * Deadlines: an expired call ends DEADLINE_EXCEEDED on time, the handler
 * sees the time left and the cancellation, a generous deadline succeeds.
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

static cgrpc_status_code echo_with(it_fixture *f, int sleep_ms,
                                   int64_t timeout_ms,
                                   Cgrpc__Test__EchoReply **reply,
                                   cgrpc_status *status) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  cgrpc_call_options opts = {0};
  req.message = "tick";
  req.sleep_ms = sleep_ms;
  opts.timeout_ms = timeout_ms;
  return cgrpc__test__echo_service__echo__call(f->ch, &req, reply, &opts,
                                               status);
}

static void test_deadline_exceeded(void **state) {
  it_fixture *f = *state;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_status status = {0};
  int64_t t0, elapsed;
  /* Connect first so the measurement is about the call. */
  assert_int_equal(it_echo(f->ch, "warm up", &reply, NULL), CGRPC_STATUS_OK);
  protobuf_c_message_free_unpacked(&reply->base, NULL);
  reply = NULL;
  t0 = it_now_ms();
  echo_with(f, 2000, 200, &reply, &status);
  elapsed = it_now_ms() - t0;
  IT_ASSERT_STATUS(status, CGRPC_STATUS_DEADLINE_EXCEEDED);
  assert_null(reply);
  assert_true(elapsed >= 150);
  if (elapsed > 1500)
    fail_msg("DEADLINE_EXCEEDED after %lld ms for a 200 ms deadline",
             (long long)elapsed);
  cgrpc_status_clear(&status);
  /* The handler notices: its sleep is cut short well before 2 s. */
  assert_int_equal(it_wait_flag(&f->srv.stats.cancelled_seen, 1, 1500), 1);
  assert_true(it_now_ms() - t0 < 1900);
  assert_int_equal(it_wait_flag(&f->srv.stats.in_flight, 0, 0), 0);
}

static void test_deadline_time_remaining(void **state) {
  it_fixture *f = *state;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_status status = {0};
  echo_with(f, 0, 5000, &reply, &status);
  IT_ASSERT_STATUS(status, CGRPC_STATUS_OK);
  assert_non_null(reply);
  assert_true(reply->time_remaining_ms > 0);
  assert_true(reply->time_remaining_ms <= 5000);
  protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_status_clear(&status);
  reply = NULL;
  /* After a 300 ms sleep, at most 700 ms of a 1 s deadline are left. */
  echo_with(f, 300, 1000, &reply, &status);
  IT_ASSERT_STATUS(status, CGRPC_STATUS_OK);
  assert_true(reply->time_remaining_ms >= 0);
  assert_true(reply->time_remaining_ms <= 700);
  protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_status_clear(&status);
}

static void test_deadline_generous(void **state) {
  it_fixture *f = *state;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_status status = {0};
  echo_with(f, 100, 30000, &reply, &status);
  IT_ASSERT_STATUS(status, CGRPC_STATUS_OK);
  assert_string_equal(reply->message, "tick");
  protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_status_clear(&status);
  assert_int_equal(atomic_load(&f->srv.stats.cancelled_seen), 0);
}

/* A deadline that has passed before the call could start. */
static void test_deadline_tiny(void **state) {
  it_fixture *f = *state;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_status status = {0};
  int64_t t0 = it_now_ms();
  echo_with(f, 1000, 1, &reply, &status);
  IT_ASSERT_STATUS(status, CGRPC_STATUS_DEADLINE_EXCEEDED);
  assert_true(it_now_ms() - t0 < 900);
  cgrpc_status_clear(&status);
  /* The channel still works. */
  assert_int_equal(it_echo(f->ch, "after", &reply, NULL), CGRPC_STATUS_OK);
  protobuf_c_message_free_unpacked(&reply->base, NULL);
}

/* Async form: the callback sees DEADLINE_EXCEEDED. */
static void test_deadline_async(void **state) {
  it_fixture *f = *state;
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  cgrpc_call_options opts = {0};
  it_async a;
  it_async_init(&a);
  req.sleep_ms = 2000;
  opts.timeout_ms = 150;
  assert_int_equal(cgrpc__test__echo_service__echo__start(
                       f->ch, &req, &opts, it_async_done, &a, NULL),
                   0);
  assert_int_equal(it_async_wait(&a, 1500), 1);
  IT_ASSERT_STATUS(a.status, CGRPC_STATUS_DEADLINE_EXCEEDED);
  assert_null(a.reply);
  it_async_fini(&a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(name) IT_FIXTURE_TEST(name)
      T(test_deadline_exceeded),
      T(test_deadline_time_remaining),
      T(test_deadline_generous),
      T(test_deadline_tiny),
      T(test_deadline_async),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
