/* SPDX-License-Identifier: MIT */
/*
 * Client-side cancellation of async calls.
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

static int start_sleep(it_fixture *f, int sleep_ms, it_async *a,
                       cgrpc_call **call) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  req.sleep_ms = sleep_ms;
  req.message = "sleepy";
  return cgrpc__test__echo_service__echo__start(f->ch, &req, NULL,
                                                it_async_done, a, call);
}

static void test_cancel_in_flight(void **state) {
  it_fixture *f = *state;
  cgrpc_call *call = NULL;
  it_async a;
  int64_t t0;
  it_async_init(&a);
  assert_int_equal(start_sleep(f, 3000, &a, &call), 0);
  assert_non_null(call);
  /* Wait until the handler runs, then cancel. */
  assert_int_equal(it_wait_flag(&f->srv.stats.in_flight, 1, IT_WAIT_MS), 1);
  t0 = it_now_ms();
  cgrpc_call_cancel(call);
  assert_int_equal(it_async_wait(&a, 2000), 1);
  assert_true(a.done_at_ms - t0 < 1000);
  IT_ASSERT_STATUS(a.status, CGRPC_STATUS_CANCELLED);
  assert_null(a.reply);
  /* The server sees RST_STREAM and the handler stops sleeping. */
  assert_int_equal(it_wait_flag(&f->srv.stats.cancelled_seen, 1, 2000), 1);
  cgrpc_call_unref(call);
  it_sleep_ms(20);
  assert_int_equal(a.done, 1);
  it_async_fini(&a);
}

static void test_cancel_before_sent(void **state) {
  it_fixture *f = *state;
  cgrpc_call *call = NULL;
  it_async a;
  it_async_init(&a);
  assert_int_equal(start_sleep(f, 3000, &a, &call), 0);
  cgrpc_call_cancel(call); /* likely before the connection is up */
  assert_int_equal(it_async_wait(&a, 2000), 1);
  /* Usually CANCELLED; OK is impossible since the handler sleeps 3 s. */
  IT_ASSERT_STATUS(a.status, CGRPC_STATUS_CANCELLED);
  cgrpc_call_unref(call);
  it_async_fini(&a);
}

static void test_cancel_after_completion(void **state) {
  it_fixture *f = *state;
  cgrpc_call *call = NULL;
  it_async a;
  it_async_init(&a);
  assert_int_equal(start_sleep(f, 0, &a, &call), 0);
  assert_int_equal(it_async_wait(&a, IT_WAIT_MS), 1);
  IT_ASSERT_STATUS(a.status, CGRPC_STATUS_OK);
  cgrpc_call_cancel(call);
  cgrpc_call_cancel(call);
  it_sleep_ms(50);
  assert_int_equal(a.done, 1); /* no second callback */
  assert_non_null(a.reply);
  assert_string_equal(a.reply->message, "sleepy");
  cgrpc_call_unref(call);
  cgrpc_call_unref(NULL);
  it_async_fini(&a);
}

/* Cancelling one call leaves the others on the connection alone. */
static void test_cancel_one_of_many(void **state) {
  it_fixture *f = *state;
  enum { N = 5 };
  cgrpc_call *calls[N];
  it_async a[N];
  int i;
  for (i = 0; i < N; i++) {
    it_async_init(&a[i]);
    assert_int_equal(start_sleep(f, i == 2 ? 3000 : 200, &a[i], &calls[i]), 0);
  }
  assert_true(it_wait_flag(&f->srv.stats.calls, N, IT_WAIT_MS) >= N);
  cgrpc_call_cancel(calls[2]);
  for (i = 0; i < N; i++) {
    assert_int_equal(it_async_wait(&a[i], IT_WAIT_MS), 1);
    IT_ASSERT_STATUS(a[i].status,
                     i == 2 ? CGRPC_STATUS_CANCELLED : CGRPC_STATUS_OK);
    cgrpc_call_unref(calls[i]);
    it_async_fini(&a[i]);
  }
}

/* Deleting the channel cancels what is still in flight. */
static void test_cancel_by_channel_del(void **state) {
  it_fixture *f = *state;
  it_async a;
  int64_t t0;
  it_async_init(&a);
  assert_int_equal(start_sleep(f, 3000, &a, NULL), 0);
  assert_int_equal(it_wait_flag(&f->srv.stats.in_flight, 1, IT_WAIT_MS), 1);
  t0 = it_now_ms();
  cgrpc_channel_del(f->ch);
  f->ch = NULL;
  assert_true(it_now_ms() - t0 < 2000);
  assert_int_equal(it_async_wait(&a, 1000), 1);
  IT_ASSERT_STATUS(a.status, CGRPC_STATUS_CANCELLED);
  it_async_fini(&a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(name) IT_FIXTURE_TEST(name)
      T(test_cancel_in_flight),
      T(test_cancel_before_sent),
      T(test_cancel_after_completion),
      T(test_cancel_one_of_many),
      T(test_cancel_by_channel_del),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
