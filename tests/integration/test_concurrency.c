/* SPDX-License-Identifier: MIT */
/*
 * Many calls at once on one channel: blocking calls from 8 threads, and 100
 * async calls in flight together.
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

#define THREADS 8
#define CALLS_PER_THREAD 100
#define ASYNC_CALLS 100

typedef struct worker {
  pthread_t thread;
  it_fixture *f;
  int id;
  int ok, wrong;
  char first_error[160];
} worker;

static void *worker_main(void *arg) {
  worker *w = arg;
  int i;
  for (i = 0; i < CALLS_PER_THREAD; i++) {
    Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
    Cgrpc__Test__EchoReply *reply = NULL;
    cgrpc_status status = {0};
    char msg[64];
    uint8_t payload[64];
    snprintf(msg, sizeof msg, "thread %d call %d", w->id, i);
    memset(payload, (int)(w->id * 31 + i), sizeof payload);
    req.message = msg;
    req.payload.data = payload;
    req.payload.len = (size_t)(i % 64);
    if (cgrpc__test__echo_service__echo__call(w->f->ch, &req, &reply, NULL,
                                              &status) == CGRPC_STATUS_OK &&
        reply && strcmp(reply->message, msg) == 0 &&
        reply->payload.len == req.payload.len &&
        (req.payload.len == 0 ||
         memcmp(reply->payload.data, payload, req.payload.len) == 0)) {
      w->ok++;
    } else {
      if (w->wrong++ == 0)
        snprintf(w->first_error, sizeof w->first_error, "%s: %s (%s)", msg,
                 cgrpc_status_code_name(status.code),
                 status.message ? status.message : "wrong reply");
    }
    if (reply)
      protobuf_c_message_free_unpacked(&reply->base, NULL);
    cgrpc_status_clear(&status);
  }
  return NULL;
}

static void test_concurrency_threads_blocking(void **state) {
  it_fixture *f = *state;
  worker w[THREADS];
  int i, total = 0;
  int64_t t0 = it_now_ms();
  memset(w, 0, sizeof w);
  for (i = 0; i < THREADS; i++) {
    w[i].f = f;
    w[i].id = i;
    assert_int_equal(pthread_create(&w[i].thread, NULL, worker_main, &w[i]), 0);
  }
  for (i = 0; i < THREADS; i++) {
    pthread_join(w[i].thread, NULL);
    if (w[i].wrong)
      fail_msg("thread %d: %d wrong, first: %s", i, w[i].wrong,
               w[i].first_error);
    total += w[i].ok;
  }
  assert_int_equal(total, THREADS * CALLS_PER_THREAD);
  assert_int_equal(atomic_load(&f->srv.stats.calls), THREADS * CALLS_PER_THREAD);
  print_message("%d blocking calls from %d threads in %lld ms\n", total,
                THREADS, (long long)(it_now_ms() - t0));
}

typedef struct batch {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int done, ok, wrong;
  char first_error[160];
} batch;

typedef struct one_call {
  batch *b;
  int index;
} one_call;

static void batch_done(cgrpc_call *call, const cgrpc_status *status,
                       ProtobufCMessage *reply, void *user_data) {
  one_call *c = user_data;
  batch *b = c->b;
  Cgrpc__Test__EchoReply *r = (Cgrpc__Test__EchoReply *)reply;
  char want[32];
  int good;
  (void)call;
  snprintf(want, sizeof want, "async %d", c->index);
  good = status->code == CGRPC_STATUS_OK && r && strcmp(r->message, want) == 0;
  pthread_mutex_lock(&b->lock);
  if (good) {
    b->ok++;
  } else if (b->wrong++ == 0) {
    snprintf(b->first_error, sizeof b->first_error, "%s: %s (%s)", want,
             cgrpc_status_code_name(status->code),
             status->message ? status->message : "wrong reply");
  }
  b->done++;
  pthread_cond_broadcast(&b->cond);
  pthread_mutex_unlock(&b->lock);
  if (reply)
    protobuf_c_message_free_unpacked(reply, NULL);
}

static void run_async_batch(it_fixture *f, int sleep_ms) {
  batch b;
  one_call calls[ASYNC_CALLS];
  char msgs[ASYNC_CALLS][32];
  int i;
  int64_t end;
  memset(&b, 0, sizeof b);
  pthread_mutex_init(&b.lock, NULL);
  pthread_cond_init(&b.cond, NULL);
  for (i = 0; i < ASYNC_CALLS; i++) {
    Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
    snprintf(msgs[i], sizeof msgs[i], "async %d", i);
    req.message = msgs[i];
    req.sleep_ms = sleep_ms;
    calls[i].b = &b;
    calls[i].index = i;
    assert_int_equal(cgrpc__test__echo_service__echo__start(
                         f->ch, &req, NULL, batch_done, &calls[i], NULL),
                     0);
  }
  end = it_now_ms() + 3 * IT_WAIT_MS;
  pthread_mutex_lock(&b.lock);
  while (b.done < ASYNC_CALLS && it_now_ms() < end) {
    pthread_mutex_unlock(&b.lock);
    it_sleep_ms(5);
    pthread_mutex_lock(&b.lock);
  }
  pthread_mutex_unlock(&b.lock);
  if (b.wrong)
    fail_msg("%d async calls failed, first: %s", b.wrong, b.first_error);
  assert_int_equal(b.done, ASYNC_CALLS);
  assert_int_equal(b.ok, ASYNC_CALLS);
  pthread_mutex_destroy(&b.lock);
  pthread_cond_destroy(&b.cond);
}

static void test_concurrency_async_in_flight(void **state) {
  it_fixture *f = *state;
  int64_t t0 = it_now_ms();
  run_async_batch(f, 0);
  /* With a sleep, all of them are on the connection at once; the pool
   * grows a thread for each handler that sleeps (test_pool has more). */
  run_async_batch(f, 50);
  assert_true(atomic_load(&f->srv.stats.max_in_flight) >= 2);
  assert_true(atomic_load(&f->srv.stats.max_in_flight) <= ASYNC_CALLS);
  print_message("2 x %d async calls in %lld ms (max %d handlers at once)\n",
                ASYNC_CALLS, (long long)(it_now_ms() - t0),
                atomic_load(&f->srv.stats.max_in_flight));
}

/* Threads and async calls mixed, on several channels. */
static void test_concurrency_many_channels(void **state) {
  it_fixture *f = *state;
  cgrpc_channel *chans[4];
  int i, j;
  for (i = 0; i < 4; i++) {
    chans[i] = it_channel(&f->srv, NULL);
    assert_non_null(chans[i]);
  }
  for (j = 0; j < 10; j++) {
    for (i = 0; i < 4; i++) {
      Cgrpc__Test__EchoReply *reply = NULL;
      char msg[32];
      snprintf(msg, sizeof msg, "chan %d #%d", i, j);
      assert_int_equal(it_echo(chans[i], msg, &reply, NULL), CGRPC_STATUS_OK);
      assert_string_equal(reply->message, msg);
      protobuf_c_message_free_unpacked(&reply->base, NULL);
    }
  }
  for (i = 0; i < 4; i++)
    cgrpc_channel_del(chans[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(name) IT_FIXTURE_TEST(name)
      T(test_concurrency_threads_blocking),
      T(test_concurrency_async_in_flight),
      T(test_concurrency_many_channels),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
