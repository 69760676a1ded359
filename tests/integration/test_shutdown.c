/* SPDX-License-Identifier: MIT */
/*
 * Server shutdown: graceful with calls in flight, forced with grace 0,
 * cgrpc_server_wait from another thread, and inline handlers.
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

static int start_sleep(cgrpc_channel *ch, int sleep_ms, it_async *a) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  req.sleep_ms = sleep_ms;
  req.message = "in flight";
  return cgrpc__test__echo_service__echo__start(ch, &req, NULL, it_async_done,
                                                a, NULL);
}

static void test_shutdown_graceful_lets_call_finish(void **state) {
  it_server srv;
  cgrpc_channel *ch;
  it_async a;
  int64_t t0;
  (void)state;
  assert_int_equal(it_server_start(&srv, NULL, 0), 0);
  ch = it_channel(&srv, NULL);
  assert_non_null(ch);
  it_async_init(&a);
  assert_int_equal(start_sleep(ch, 300, &a), 0);
  assert_int_equal(it_wait_flag(&srv.stats.in_flight, 1, IT_WAIT_MS), 1);
  t0 = it_now_ms();
  assert_int_equal(cgrpc_server_shutdown(srv.server, 5000), 0);
  assert_true(it_now_ms() - t0 < 4000);
  assert_int_equal(it_async_wait(&a, IT_WAIT_MS), 1);
  IT_ASSERT_STATUS(a.status, CGRPC_STATUS_OK);
  assert_string_equal(a.reply->message, "in flight");
  it_async_fini(&a);
  /* Twice is harmless. */
  assert_int_equal(cgrpc_server_shutdown(srv.server, 5000), 0);
  it_server_stop(&srv, 0);
  cgrpc_channel_del(ch);
}

static void test_shutdown_grace_zero(void **state) {
  it_server srv;
  cgrpc_channel *ch;
  it_async a;
  int64_t t0, took;
  (void)state;
  assert_int_equal(it_server_start(&srv, NULL, 0), 0);
  ch = it_channel(&srv, NULL);
  assert_non_null(ch);
  it_async_init(&a);
  assert_int_equal(start_sleep(ch, 5000, &a), 0);
  assert_int_equal(it_wait_flag(&srv.stats.in_flight, 1, IT_WAIT_MS), 1);
  t0 = it_now_ms();
  assert_int_equal(cgrpc_server_shutdown(srv.server, 0), 0);
  took = it_now_ms() - t0;
  if (took > 1500)
    fail_msg("shutdown with grace 0 took %lld ms", (long long)took);
  assert_int_equal(it_async_wait(&a, 3000), 1);
  if (a.status.code != CGRPC_STATUS_CANCELLED &&
      a.status.code != CGRPC_STATUS_UNAVAILABLE)
    fail_msg("in-flight call ended %s (%s)",
             cgrpc_status_code_name(a.status.code),
             a.status.message ? a.status.message : "");
  assert_true(atomic_load(&srv.stats.cancelled_seen) == 1);
  it_async_fini(&a);
  it_server_stop(&srv, 0);
  cgrpc_channel_del(ch);
}

typedef struct waiter {
  cgrpc_server *server;
  atomic_int returned;
  int rv;
} waiter;

static void *wait_main(void *arg) {
  waiter *w = arg;
  w->rv = cgrpc_server_wait(w->server);
  atomic_store(&w->returned, 1);
  return NULL;
}

static void test_shutdown_wait_from_other_thread(void **state) {
  it_server srv;
  waiter w;
  pthread_t thread;
  cgrpc_server *unstarted = NULL;
  (void)state;
  assert_int_equal(it_server_start(&srv, NULL, 0), 0);
  memset(&w, 0, sizeof w);
  w.server = srv.server;
  assert_int_equal(pthread_create(&thread, NULL, wait_main, &w), 0);
  it_sleep_ms(100);
  assert_int_equal(atomic_load(&w.returned), 0);
  assert_int_equal(cgrpc_server_shutdown(srv.server, 1000), 0);
  assert_int_equal(it_wait_flag(&w.returned, 1, 3000), 1);
  pthread_join(thread, NULL);
  assert_int_equal(w.rv, 0);
  /* Waiting on a stopped server returns at once. */
  assert_int_equal(cgrpc_server_wait(srv.server), 0);
  it_server_stop(&srv, 0);
  /* Never started: an error, not a hang. */
  assert_int_equal(cgrpc_server_new(&unstarted, NULL), 0);
  assert_int_equal(cgrpc_server_wait(unstarted), CGRPC_ERR_INVALID_STATE);
  cgrpc_server_del(unstarted);
}

static void test_shutdown_inline_handlers(void **state) {
  it_server srv;
  cgrpc_server_options *opts = NULL;
  cgrpc_channel *ch;
  it_async a[10];
  int i;
  (void)state;
  assert_int_equal(cgrpc_server_options_new(&opts), 0);
  cgrpc_server_options_set_max_workers(opts, 0);
  assert_int_equal(it_server_start(&srv, opts, 0), 0);
  cgrpc_server_options_del(opts);
  ch = it_channel(&srv, NULL);
  assert_non_null(ch);
  for (i = 0; i < 20; i++) {
    Cgrpc__Test__EchoReply *reply = NULL;
    assert_int_equal(it_echo(ch, "inline", &reply, NULL), CGRPC_STATUS_OK);
    assert_string_equal(reply->message, "inline");
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  }
  for (i = 0; i < 10; i++) {
    it_async_init(&a[i]);
    assert_int_equal(start_sleep(ch, 0, &a[i]), 0);
  }
  for (i = 0; i < 10; i++) {
    assert_int_equal(it_async_wait(&a[i], IT_WAIT_MS), 1);
    IT_ASSERT_STATUS(a[i].status, CGRPC_STATUS_OK);
    it_async_fini(&a[i]);
  }
  /* A short blocking handler inline, then a graceful shutdown. */
  it_async_init(&a[0]);
  assert_int_equal(start_sleep(ch, 100, &a[0]), 0);
  assert_int_equal(it_wait_flag(&srv.stats.in_flight, 1, IT_WAIT_MS), 1);
  assert_int_equal(cgrpc_server_shutdown(srv.server, 5000), 0);
  assert_int_equal(it_async_wait(&a[0], IT_WAIT_MS), 1);
  IT_ASSERT_STATUS(a[0].status, CGRPC_STATUS_OK);
  it_async_fini(&a[0]);
  it_server_stop(&srv, 0);
  cgrpc_channel_del(ch);
}

/* Shutting down with idle connections and no calls is prompt. */
static void test_shutdown_idle_connections(void **state) {
  it_server srv;
  cgrpc_channel *ch[3];
  int i;
  int64_t t0;
  (void)state;
  assert_int_equal(it_server_start(&srv, NULL, 0), 0);
  for (i = 0; i < 3; i++) {
    Cgrpc__Test__EchoReply *reply = NULL;
    ch[i] = it_channel(&srv, NULL);
    assert_non_null(ch[i]);
    assert_int_equal(it_echo(ch[i], "idle", &reply, NULL), CGRPC_STATUS_OK);
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  }
  t0 = it_now_ms();
  assert_int_equal(cgrpc_server_shutdown(srv.server, 10000), 0);
  assert_true(it_now_ms() - t0 < 2000);
  it_server_stop(&srv, 0);
  for (i = 0; i < 3; i++)
    cgrpc_channel_del(ch[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shutdown_graceful_lets_call_finish),
      cmocka_unit_test(test_shutdown_grace_zero),
      cmocka_unit_test(test_shutdown_wait_from_other_thread),
      cmocka_unit_test(test_shutdown_inline_handlers),
      cmocka_unit_test(test_shutdown_idle_connections),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
