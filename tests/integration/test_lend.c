/* SPDX-License-Identifier: MIT */
/*
 * Blocking calls that drive the channel's loop on the caller's thread
 * (issue 9; io/loop.h).  Back-to-back blocking calls from one thread lend
 * the loop to that thread; these tests check what must hold whichever
 * thread drives: deadlines, async calls and their callbacks, cancels from
 * other threads, the channel deleted from another thread or from a
 * callback the caller is driving, several blocking callers at once, and
 * reconnection done by the caller.  Whether a given call borrowed the loop
 * depends on the scheduling, so no test asserts that it did; each prints
 * how often callbacks ran on the blocking caller's thread.  Every wait is
 * bounded (IT_WAIT_MS, IT_SLOW; CTest's timeout behind them).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <cmocka.h>

#include "harness.h"

/* An Echo call with |sleep_ms| on the server and |timeout_ms| (0: none). */
static cgrpc_status_code echo_sleep(cgrpc_channel *ch, int sleep_ms,
                                    int64_t timeout_ms, int wait_for_ready,
                                    cgrpc_status *status) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_call_options opts = {0};
  cgrpc_status_code code;
  req.message = "lend";
  req.sleep_ms = sleep_ms;
  opts.timeout_ms = timeout_ms;
  opts.wait_for_ready = wait_for_ready ? CGRPC_WAIT_FOR_READY : 0;
  code = cgrpc__test__echo_service__echo__call(ch, &req, &reply, &opts, status);
  if (code == CGRPC_STATUS_OK &&
      (!reply || !reply->message || strcmp(reply->message, "lend") != 0))
    code = CGRPC_STATUS_DATA_LOSS; /* not what was sent */
  if (reply)
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  return code;
}

/* A few quick calls, so that the next one finds the loop's thread parked
 * (it parks after completing a blocked caller's call). */
static void warm_up(cgrpc_channel *ch) {
  int i;
  for (i = 0; i < 3; i++)
    assert_int_equal(echo_sleep(ch, 0, 0, 0, NULL), CGRPC_STATUS_OK);
}

/* An async call whose callback notes the thread it ran on. */
typedef struct tracked {
  it_async a;
  pthread_t ran_on;
  atomic_int ran;
} tracked;

static void tracked_done(cgrpc_call *call, const cgrpc_status *status,
                         ProtobufCMessage *reply, void *user_data) {
  tracked *t = user_data;
  t->ran_on = pthread_self();
  atomic_store(&t->ran, 1);
  it_async_done(call, status, reply, &t->a);
}

static void start_tracked(cgrpc_channel *ch, tracked *t, int sleep_ms,
                          cgrpc_call **call_ptr) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  req.message = "async";
  req.sleep_ms = sleep_ms;
  it_async_init(&t->a);
  atomic_init(&t->ran, 0);
  assert_int_equal(cgrpc__test__echo_service__echo__start(
                       ch, &req, NULL, tracked_done, t, call_ptr),
                   0);
}

/* A thread making one blocking call. */
typedef struct blocker {
  cgrpc_channel *ch;
  int sleep_ms;
  int64_t timeout_ms;
  int repeat; /* calls to make, one after another */
  pthread_t thread;
  atomic_int started, finished;
  cgrpc_status_code code; /* OK, or the first failure's */
  int failures;
  cgrpc_status status; /* of the last call */
  int64_t elapsed_ms;  /* of the last call */
} blocker;

static void *blocker_main(void *arg) {
  blocker *b = arg;
  int i, n = b->repeat ? b->repeat : 1;
  /* Quick calls first, right before the measured ones, so that this
   * thread finds the loop's thread parked (a new thread may come too late
   * for the grace period after another thread's calls). */
  for (i = 0; i < 3; i++)
    echo_sleep(b->ch, 0, 0, 0, NULL);
  atomic_store(&b->started, 1);
  b->code = CGRPC_STATUS_OK;
  for (i = 0; i < n; i++) {
    int64_t t0 = it_now_ms();
    cgrpc_status_code code;
    cgrpc_status_clear(&b->status);
    code = echo_sleep(b->ch, b->sleep_ms, b->timeout_ms, 0, &b->status);
    b->elapsed_ms = it_now_ms() - t0;
    if (code != CGRPC_STATUS_OK && b->failures++ == 0)
      b->code = code;
  }
  atomic_store(&b->finished, 1);
  return NULL;
}

static void blocker_start(blocker *b, cgrpc_channel *ch, int sleep_ms,
                          int64_t timeout_ms, int repeat) {
  memset(b, 0, sizeof *b);
  b->ch = ch;
  b->sleep_ms = sleep_ms;
  b->timeout_ms = timeout_ms;
  b->repeat = repeat;
  atomic_init(&b->started, 0);
  atomic_init(&b->finished, 0);
  assert_int_equal(pthread_create(&b->thread, NULL, blocker_main, b), 0);
  it_wait_flag(&b->started, 1, IT_WAIT_MS);
}

static void blocker_join(blocker *b) {
  pthread_join(b->thread, NULL);
  cgrpc_status_clear(&b->status);
}

/* Many blocking calls in a row, each right after the previous one: after
 * the first, the caller usually drives the loop itself. */
static void test_lend_back_to_back(void **state) {
  it_fixture *f = *state;
  int i;
  for (i = 0; i < 2000; i++)
    if (echo_sleep(f->ch, 0, 5000, 0, NULL) != CGRPC_STATUS_OK)
      fail_msg("call %d failed", i);
  assert_int_equal(it_wait_flag(&f->srv.stats.in_flight, 0, 0), 0);
}

/* The deadline timer of the caller's own call fires while it drives. */
static void test_lend_deadline_while_driving(void **state) {
  it_fixture *f = *state;
  cgrpc_status st = {0};
  int64_t t0, elapsed;
  warm_up(f->ch);
  t0 = it_now_ms();
  echo_sleep(f->ch, 3000, 200, 0, &st);
  elapsed = it_now_ms() - t0;
  IT_ASSERT_STATUS(st, CGRPC_STATUS_DEADLINE_EXCEEDED);
  cgrpc_status_clear(&st);
  assert_true(elapsed >= 150);
  if (elapsed > 1500 * IT_SLOW)
    fail_msg("DEADLINE_EXCEEDED after %lld ms", (long long)elapsed);
  /* The channel goes on. */
  assert_int_equal(echo_sleep(f->ch, 0, 5000, 0, NULL), CGRPC_STATUS_OK);
}

/* Async calls started from another thread while a blocking caller drives
 * complete while it drives (on its thread, or on the channel's). */
static void test_lend_async_while_driving(void **state) {
  it_fixture *f = *state;
  blocker b;
  tracked t[8];
  int i, on_caller = 0;
  blocker_start(&b, f->ch, 400, 0, 0);
  it_sleep_ms(50); /* the blocker's call is (most likely) out */
  for (i = 0; i < 8; i++)
    start_tracked(f->ch, &t[i], 0, NULL);
  for (i = 0; i < 8; i++) {
    assert_int_equal(it_async_wait(&t[i].a, IT_WAIT_MS), 1);
    IT_ASSERT_STATUS(t[i].a.status, CGRPC_STATUS_OK);
    on_caller += pthread_equal(t[i].ran_on, b.thread) != 0;
  }
  blocker_join(&b);
  assert_int_equal(b.code, CGRPC_STATUS_OK);
  for (i = 0; i < 8; i++)
    it_async_fini(&t[i].a);
  print_message("# %d of 8 async callbacks ran on the blocking caller\n",
                on_caller);
}

/* An async call that outlives a blocking caller who drove the loop: the
 * loop's thread takes over when the caller leaves (at once: a call is in
 * flight) and completes it. */
static void test_lend_async_outlives_borrower(void **state) {
  it_fixture *f = *state;
  blocker b;
  tracked t;
  int64_t t0;
  blocker_start(&b, f->ch, 100, 0, 0);
  it_sleep_ms(30);
  t0 = it_now_ms();
  start_tracked(f->ch, &t, 400, NULL);
  blocker_join(&b);
  assert_int_equal(b.code, CGRPC_STATUS_OK);
  assert_int_equal(it_async_wait(&t.a, IT_WAIT_MS), 1);
  IT_ASSERT_STATUS(t.a.status, CGRPC_STATUS_OK);
  if (it_now_ms() - t0 > 2000 * IT_SLOW)
    fail_msg("a 400 ms async call took %lld ms", (long long)(it_now_ms() - t0));
  it_async_fini(&t.a);
  /* And one started after the caller left, with nobody blocked. */
  start_tracked(f->ch, &t, 0, NULL);
  assert_int_equal(it_async_wait(&t.a, IT_WAIT_MS), 1);
  IT_ASSERT_STATUS(t.a.status, CGRPC_STATUS_OK);
  it_async_fini(&t.a);
}

/* A call cancelled from another thread while a blocking caller drives:
 * its callback comes at once with CANCELLED; the blocking call is fine. */
static void test_lend_cancel_while_driving(void **state) {
  it_fixture *f = *state;
  blocker b;
  tracked t;
  cgrpc_call *call = NULL;
  int64_t t0;
  blocker_start(&b, f->ch, 600, 0, 0);
  it_sleep_ms(50);
  start_tracked(f->ch, &t, 3000, &call);
  it_sleep_ms(50);
  t0 = it_now_ms();
  cgrpc_call_cancel(call);
  assert_int_equal(it_async_wait(&t.a, IT_WAIT_MS), 1);
  IT_ASSERT_STATUS(t.a.status, CGRPC_STATUS_CANCELLED);
  if (it_now_ms() - t0 > 1000 * IT_SLOW)
    fail_msg("the cancel took %lld ms", (long long)(it_now_ms() - t0));
  cgrpc_call_unref(call);
  blocker_join(&b);
  assert_int_equal(b.code, CGRPC_STATUS_OK);
  it_async_fini(&t.a);
}

/* Several threads making blocking calls on one channel at once: none
 * starves or deadlocks whoever drives; all calls succeed. */
static void test_lend_many_callers(void **state) {
  it_fixture *f = *state;
  enum { N = 6 };
  blocker b[N];
  int i;
  for (i = 0; i < N; i++)
    blocker_start(&b[i], f->ch, i % 2 ? 1 : 0, 10000, 300);
  for (i = 0; i < N; i++) {
    blocker_join(&b[i]);
    if (b[i].failures)
      fail_msg("caller %d: %d failed calls, first %s", i, b[i].failures,
               cgrpc_status_code_name(b[i].code));
  }
}

/* Two callers, one with long calls: the short one's calls are never held
 * up for the length of the long one's (whoever drives serves both). */
static void test_lend_short_beside_long(void **state) {
  it_fixture *f = *state;
  blocker lng, shrt;
  blocker_start(&lng, f->ch, 1500, 0, 1);
  it_sleep_ms(50);
  blocker_start(&shrt, f->ch, 0, 0, 20);
  blocker_join(&shrt);
  assert_int_equal(shrt.code, CGRPC_STATUS_OK);
  /* Twenty quick calls, done while the long one still runs (on a box so
   * slow that they take 1.4 s this says nothing; not under sanitizers). */
  if (IT_SLOW == 1 && atomic_load(&lng.finished))
    fail_msg("the short calls waited for the long one");
  blocker_join(&lng);
  assert_int_equal(lng.code, CGRPC_STATUS_OK);
}

/* The channel deleted from another thread while the caller drives: the
 * caller's call ends CANCELLED (or UNAVAILABLE, with the connection) and
 * returns; the delete returns; nothing leaks (ASan). */
static void test_lend_channel_deleted_while_driving(void **state) {
  it_fixture *f = *state;
  cgrpc_channel *ch = it_channel(&f->srv, NULL);
  blocker b;
  int64_t t0;
  assert_non_null(ch);
  blocker_start(&b, ch, 3000, 0, 0);
  it_sleep_ms(100);
  t0 = it_now_ms();
  cgrpc_channel_del(ch);
  blocker_join(&b);
  if (b.code != CGRPC_STATUS_CANCELLED && b.code != CGRPC_STATUS_UNAVAILABLE)
    fail_msg("the call ended %s", cgrpc_status_code_name(b.code));
  if (it_now_ms() - t0 > 2000 * IT_SLOW)
    fail_msg("the delete and the call's end took %lld ms",
             (long long)(it_now_ms() - t0));
}

/* A callback that the blocking caller may be driving deletes the channel:
 * the caller's own call then completes inside that work, on its thread. */
typedef struct deleter {
  it_async a;
  cgrpc_channel *ch;
} deleter;

static void delete_in_callback(cgrpc_call *call, const cgrpc_status *status,
                               ProtobufCMessage *reply, void *user_data) {
  deleter *d = user_data;
  cgrpc_channel_del(d->ch); /* from the loop: does not wait */
  it_async_done(call, status, reply, &d->a);
}

static void test_lend_channel_deleted_in_callback(void **state) {
  it_fixture *f = *state;
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  deleter d;
  blocker b;
  d.ch = it_channel(&f->srv, NULL);
  assert_non_null(d.ch);
  it_async_init(&d.a);
  blocker_start(&b, d.ch, 2000, 0, 0);
  it_sleep_ms(50);
  req.message = "async";
  req.sleep_ms = 100;
  assert_int_equal(cgrpc__test__echo_service__echo__start(
                       d.ch, &req, NULL, delete_in_callback, &d, NULL),
                   0);
  blocker_join(&b);
  if (b.code != CGRPC_STATUS_CANCELLED && b.code != CGRPC_STATUS_UNAVAILABLE)
    fail_msg("the call ended %s", cgrpc_status_code_name(b.code));
  assert_true(b.elapsed_ms < 1900);
  assert_int_equal(it_async_wait(&d.a, IT_WAIT_MS), 1);
  IT_ASSERT_STATUS(d.a.status, CGRPC_STATUS_OK);
  it_async_fini(&d.a);
  /* The channel goes with its last reference, on whichever thread. */
}

/* The caller drives the reconnection: back-to-back wait-for-ready calls
 * while the server goes away and comes back on the same port, three
 * times.  Calls in flight at a stop may fail UNAVAILABLE; the others wait
 * for the new server and succeed, and so do all calls after the last
 * restart. */
typedef struct reconnector {
  cgrpc_channel *ch;
  atomic_int stop;
  int ok, unavailable, other;
  cgrpc_status_code other_code;
} reconnector;

static void *reconnect_caller(void *arg) {
  reconnector *r = arg;
  int64_t until = it_now_ms() + 60000;
  while (!atomic_load(&r->stop) && it_now_ms() < until) {
    cgrpc_status_code code =
        echo_sleep(r->ch, 0, 10000 * IT_SLOW, 1 /* wait for ready */, NULL);
    if (code == CGRPC_STATUS_OK)
      r->ok++;
    else if (code == CGRPC_STATUS_UNAVAILABLE)
      r->unavailable++;
    else if (r->other++ == 0)
      r->other_code = code;
  }
  return NULL;
}

static void test_lend_caller_reconnects(void **state) {
  it_server srv;
  reconnector r;
  pthread_t t;
  int round, port, i;
  (void)state;
  assert_int_equal(it_server_start(&srv, NULL, 0), 0);
  port = srv.port;
  memset(&r, 0, sizeof r);
  atomic_init(&r.stop, 0);
  r.ch = it_channel(&srv, NULL);
  assert_non_null(r.ch);
  assert_int_equal(pthread_create(&t, NULL, reconnect_caller, &r), 0);
  for (round = 0; round < 3; round++) {
    it_sleep_ms(150);
    it_server_stop(&srv, 0);
    it_sleep_ms(50);
    assert_int_equal(it_server_start(&srv, NULL, port), 0);
  }
  it_sleep_ms(200);
  atomic_store(&r.stop, 1);
  pthread_join(t, NULL);
  if (r.other)
    fail_msg("%d calls ended neither OK nor UNAVAILABLE (first %s)", r.other,
             cgrpc_status_code_name(r.other_code));
  assert_true(r.ok > 0);
  /* The channel is well after all that. */
  for (i = 0; i < 20; i++)
    assert_int_equal(echo_sleep(r.ch, 0, 5000, 0, NULL), CGRPC_STATUS_OK);
  print_message("# %d calls OK, %d UNAVAILABLE across 3 restarts\n", r.ok,
                r.unavailable);
  cgrpc_channel_del(r.ch);
  it_server_stop(&srv, 1000);
}

/* State watches and the channel's timers keep working after the caller
 * leaves: a watch registered after back-to-back calls fires when the
 * server goes away (the loop's thread sees the connection drop). */
static void state_seen(cgrpc_channel *ch, cgrpc_connectivity_state state,
                       void *user_data) {
  (void)ch;
  (void)state;
  atomic_store((atomic_int *)user_data, 1);
}

static void test_lend_watch_after_caller_left(void **state) {
  it_server srv;
  cgrpc_channel *ch;
  atomic_int seen;
  (void)state;
  assert_int_equal(it_server_start(&srv, NULL, 0), 0);
  ch = it_channel(&srv, NULL);
  assert_non_null(ch);
  warm_up(ch);
  assert_int_equal(echo_sleep(ch, 0, 5000, 0, NULL), CGRPC_STATUS_OK);
  atomic_init(&seen, 0);
  assert_int_equal(
      cgrpc_channel_watch_state(ch, CGRPC_CHANNEL_READY, state_seen, &seen), 0);
  it_server_stop(&srv, 0);
  assert_int_equal(it_wait_flag(&seen, 1, IT_WAIT_MS), 1);
  cgrpc_channel_del(ch);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      IT_FIXTURE_TEST(test_lend_back_to_back),
      IT_FIXTURE_TEST(test_lend_deadline_while_driving),
      IT_FIXTURE_TEST(test_lend_async_while_driving),
      IT_FIXTURE_TEST(test_lend_async_outlives_borrower),
      IT_FIXTURE_TEST(test_lend_cancel_while_driving),
      IT_FIXTURE_TEST(test_lend_many_callers),
      IT_FIXTURE_TEST(test_lend_short_beside_long),
      IT_FIXTURE_TEST(test_lend_channel_deleted_while_driving),
      IT_FIXTURE_TEST(test_lend_channel_deleted_in_callback),
      cmocka_unit_test(test_lend_caller_reconnects),
      cmocka_unit_test(test_lend_watch_after_caller_left),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
