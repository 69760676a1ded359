/* SPDX-License-Identifier: MIT */
/*
 * Load balancing and connectivity, on loopback with real servers:
 *
 *  - round_robin over three servers spreads the calls evenly, goes on over
 *    the two live ones when one is stopped, and takes it back when it
 *    starts again on its port;
 *  - pick_first sends everything to the first address that connects and
 *    fails over, in order, when it goes; a dead first address is skipped;
 *  - the connectivity state API: get (and try to connect), one-shot
 *    watches followed from their own callbacks, SHUTDOWN to the watches
 *    still waiting at deletion, wait-for-ready with its timeout, from
 *    another thread while the channel is deleted, from a callback;
 *  - wait-for-ready calls (call option and service config) against
 *    fail-fast ones while every address fails;
 *  - the idle timeout, and the connection backoff's pace against a server
 *    that accepts and closes at once.
 *
 * Bounds are several times what the code needs.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "echo.grpc-c.h"
#include "harness.h"

#define SLOW IT_SLOW
#define BOUND_MS (10000 * SLOW)

#define CHECK IT_CHECK
#define CHECKS_DONE IT_CHECKS_DONE

#define N_SERVERS 3

/* A backoff short enough for tests: 100 ms, x1.6, at most 400 ms. */
static const cgrpc_connect_backoff quick_backoff = {100, 1.6, 0.2, 400, 0};

static void log_cb(cgrpc_log_level level, const char *msg, void *user_data) {
  (void)level;
  (void)user_data;
  if (getenv("CGRPC_TEST_LOG"))
    fprintf(stderr, "  [log] %s\n", msg);
}

static cgrpc_channel_options *quick_options(const char *lb) {
  cgrpc_channel_options *o;
  assert_int_equal(cgrpc_channel_options_new(&o), 0);
  cgrpc_channel_options_set_log(o, log_cb, NULL);
  assert_int_equal(cgrpc_channel_options_set_connect_backoff(o, &quick_backoff),
                   0);
  if (lb)
    assert_int_equal(cgrpc_channel_options_set_lb_policy(o, lb), 0);
  return o;
}

/* "ipv4:127.0.0.1:A,127.0.0.1:B,..." for |ports|. */
static void list_target(char *buf, size_t size, const int *ports, int n) {
  int i, off = snprintf(buf, size, "ipv4:");
  for (i = 0; i < n; i++)
    off += snprintf(buf + off, size - (size_t)off, "%s127.0.0.1:%d",
                    i ? "," : "", ports[i]);
}

static cgrpc_channel *list_channel(const int *ports, int n,
                                   const cgrpc_channel_options *o) {
  char target[256];
  cgrpc_channel *ch = NULL;
  list_target(target, sizeof target, ports, n);
  assert_int_equal(cgrpc_channel_new(&ch, target, o), 0);
  return ch;
}

static cgrpc_status_code echo(cgrpc_channel *ch, const cgrpc_call_options *co,
                              cgrpc_status *status) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_status_code code;
  req.message = "lb";
  code = cgrpc__test__echo_service__echo__call(ch, &req, &reply, co, status);
  if (reply)
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  return code;
}

static int calls_of(it_server *s) { return atomic_load(&s->stats.calls); }

/* Makes calls until each of |srv|'s live servers answered one, bounded;
 * returns 1 when they all did. */
static int until_all_served(cgrpc_channel *ch, it_server *srv, int n) {
  int64_t end = it_now_ms() + BOUND_MS;
  while (it_now_ms() < end) {
    int i, all = 1;
    echo(ch, NULL, NULL);
    for (i = 0; i < n; i++)
      if (srv[i].server && calls_of(&srv[i]) == 0)
        all = 0;
    if (all)
      return 1;
    it_sleep_ms(5);
  }
  return 0;
}

static void start_servers(it_server *srv, int *ports, int n) {
  int i;
  it_servers_start(srv, n);
  for (i = 0; i < n; i++)
    ports[i] = srv[i].port;
}

/* ---- round_robin ---- */

static void test_lb_round_robin_spreads(void **state) {
  it_server srv[N_SERVERS];
  int ports[N_SERVERS], i;
  cgrpc_channel_options *o = quick_options("round_robin");
  cgrpc_channel *ch;
  (void)state;
  start_servers(srv, ports, N_SERVERS);
  ch = list_channel(ports, N_SERVERS, o);
  CHECK(cgrpc_channel_wait_for_ready(ch, BOUND_MS) == 0, "not READY");
  CHECK(until_all_served(ch, srv, N_SERVERS), "not every server was used");
  for (i = 0; i < N_SERVERS; i++)
    echo_stats_reset(&srv[i].stats);
  /* Every subchannel READY: the rotation is exact. */
  for (i = 0; i < 30; i++)
    CHECK(echo(ch, NULL, NULL) == CGRPC_STATUS_OK, "call %d", i);
  for (i = 0; i < N_SERVERS; i++)
    CHECK(calls_of(&srv[i]) == 10, "server %d served %d of 30", i,
          calls_of(&srv[i]));
  cgrpc_channel_del(ch);
  cgrpc_channel_options_del(o);
  it_servers_stop(srv, N_SERVERS);
  CHECKS_DONE();
}

static void test_lb_round_robin_kill_restart(void **state) {
  it_server srv[N_SERVERS];
  int ports[N_SERVERS], i, failed = 0;
  cgrpc_channel_options *o = quick_options("round_robin");
  cgrpc_channel *ch;
  int64_t end;
  (void)state;
  start_servers(srv, ports, N_SERVERS);
  ch = list_channel(ports, N_SERVERS, o);
  CHECK(until_all_served(ch, srv, N_SERVERS), "not every server was used");

  /* The second one goes (a GOAWAY, then its connection closes). */
  it_server_stop(&srv[1], 0);
  /* A call already on its way to it may fail; after that, none does. */
  for (i = 0; i < 10; i++)
    if (echo(ch, NULL, NULL) != CGRPC_STATUS_OK)
      failed++;
  CHECK(failed <= 1, "%d of 10 calls failed right after the stop", failed);
  echo_stats_reset(&srv[0].stats);
  echo_stats_reset(&srv[2].stats);
  for (i = 0; i < 40; i++)
    CHECK(echo(ch, NULL, NULL) == CGRPC_STATUS_OK, "call %d with one down", i);
  CHECK(calls_of(&srv[0]) == 20 && calls_of(&srv[2]) == 20,
        "the two live servers served %d and %d of 40", calls_of(&srv[0]),
        calls_of(&srv[2]));
  CHECK(cgrpc_channel_get_state(ch, 0) == CGRPC_CHANNEL_READY, "state %s",
        cgrpc_connectivity_state_name(cgrpc_channel_get_state(ch, 0)));

  /* Back on its port: taken back after its backoff (at most 400 ms). */
  assert_int_equal(it_server_start(&srv[1], NULL, ports[1]), 0);
  end = it_now_ms() + BOUND_MS;
  while (calls_of(&srv[1]) == 0 && it_now_ms() < end) {
    CHECK(echo(ch, NULL, NULL) == CGRPC_STATUS_OK, "a call while it returns");
    it_sleep_ms(10);
  }
  CHECK(calls_of(&srv[1]) > 0, "the restarted server got no call");
  for (i = 0; i < N_SERVERS; i++)
    echo_stats_reset(&srv[i].stats);
  for (i = 0; i < 30; i++)
    CHECK(echo(ch, NULL, NULL) == CGRPC_STATUS_OK, "call %d", i);
  for (i = 0; i < N_SERVERS; i++)
    CHECK(calls_of(&srv[i]) == 10, "server %d served %d of 30 after the "
                                   "restart", i, calls_of(&srv[i]));
  cgrpc_channel_del(ch);
  cgrpc_channel_options_del(o);
  it_servers_stop(srv, N_SERVERS);
  CHECKS_DONE();
}

/* ---- pick_first ---- */

static void test_lb_pick_first_fails_over(void **state) {
  it_server srv[N_SERVERS];
  int ports[N_SERVERS], i, failed = 0;
  cgrpc_channel_options *o = quick_options(NULL); /* the default */
  cgrpc_channel *ch;
  (void)state;
  start_servers(srv, ports, N_SERVERS);
  ch = list_channel(ports, N_SERVERS, o);
  for (i = 0; i < 10; i++)
    CHECK(echo(ch, NULL, NULL) == CGRPC_STATUS_OK, "call %d", i);
  CHECK(calls_of(&srv[0]) == 10 && calls_of(&srv[1]) == 0 &&
            calls_of(&srv[2]) == 0,
        "pick_first spread the calls: %d %d %d", calls_of(&srv[0]),
        calls_of(&srv[1]), calls_of(&srv[2]));

  /* The first goes: the next address in order takes over. */
  it_server_stop(&srv[0], 0);
  for (i = 0; i < 10; i++)
    if (echo(ch, NULL, NULL) != CGRPC_STATUS_OK)
      failed++;
  CHECK(failed <= 1, "%d of 10 calls failed after the stop", failed);
  CHECK(calls_of(&srv[1]) >= 9 && calls_of(&srv[2]) == 0,
        "after the failover: %d %d", calls_of(&srv[1]), calls_of(&srv[2]));

  /* The first comes back: pick_first stays where it is ... */
  assert_int_equal(it_server_start(&srv[0], NULL, ports[0]), 0);
  for (i = 0; i < 5; i++)
    CHECK(echo(ch, NULL, NULL) == CGRPC_STATUS_OK, "call %d", i);
  CHECK(calls_of(&srv[0]) == 0, "moved back while the second was up");
  /* ... until the second goes: then it starts over from the first. */
  it_server_stop(&srv[1], 0);
  failed = 0;
  for (i = 0; i < 10; i++)
    if (echo(ch, NULL, NULL) != CGRPC_STATUS_OK)
      failed++;
  CHECK(failed <= 1, "%d of 10 calls failed after the second stop", failed);
  CHECK(calls_of(&srv[0]) >= 9 && calls_of(&srv[2]) == 0,
        "after the second failover: %d %d", calls_of(&srv[0]),
        calls_of(&srv[2]));
  cgrpc_channel_del(ch);
  cgrpc_channel_options_del(o);
  it_servers_stop(srv, N_SERVERS);
  CHECKS_DONE();
}

static void test_lb_pick_first_skips_dead_address(void **state) {
  it_server srv;
  int ports[2];
  cgrpc_channel_options *o = quick_options("pick_first");
  cgrpc_channel *ch;
  cgrpc_status st = {0};
  (void)state;
  assert_int_equal(it_server_start(&srv, NULL, 0), 0);
  ports[0] = it_dead_port();
  ports[1] = srv.port;
  ch = list_channel(ports, 2, o);
  /* The first call waits through the refused address to the live one. */
  CHECK(echo(ch, NULL, &st) == CGRPC_STATUS_OK, "first call: %s %s",
        cgrpc_status_code_name(st.code), st.message ? st.message : "");
  cgrpc_status_clear(&st);
  CHECK(calls_of(&srv) == 1, "served %d", calls_of(&srv));
  cgrpc_channel_del(ch);
  cgrpc_channel_options_del(o);
  it_server_stop(&srv, 0);
  CHECKS_DONE();
}

static void test_lb_service_config_picks_round_robin(void **state) {
  it_server srv[2];
  int ports[2], i;
  char err[200];
  cgrpc_channel_options *o = quick_options("pick_first");
  cgrpc_channel *ch;
  (void)state;
  /* The service config wins over the option. */
  assert_int_equal(
      cgrpc_channel_options_set_service_config(
          o, "{\"loadBalancingConfig\": [{\"round_robin\": {}}]}", err,
          sizeof err),
      0);
  start_servers(srv, ports, 2);
  ch = list_channel(ports, 2, o);
  CHECK(until_all_served(ch, srv, 2), "not round_robin");
  for (i = 0; i < 2; i++)
    echo_stats_reset(&srv[i].stats);
  for (i = 0; i < 10; i++)
    CHECK(echo(ch, NULL, NULL) == CGRPC_STATUS_OK, "call %d", i);
  CHECK(calls_of(&srv[0]) == 5 && calls_of(&srv[1]) == 5, "%d and %d",
        calls_of(&srv[0]), calls_of(&srv[1]));
  cgrpc_channel_del(ch);
  cgrpc_channel_options_del(o);
  it_servers_stop(srv, 2);
  CHECKS_DONE();
}

/* ---- the state API ---- */

typedef struct watcher {
  pthread_mutex_t lock;
  int states[32];
  int n;
  atomic_int ready, shutdown, fired;
  int follow; /* watch again from the callback */
} watcher;

static void watch_cb(cgrpc_channel *ch, cgrpc_connectivity_state s,
                     void *user_data) {
  watcher *w = user_data;
  pthread_mutex_lock(&w->lock);
  if (w->n < 32)
    w->states[w->n++] = (int)s;
  pthread_mutex_unlock(&w->lock);
  atomic_fetch_add(&w->fired, 1);
  if (s == CGRPC_CHANNEL_READY)
    atomic_store(&w->ready, 1);
  if (s == CGRPC_CHANNEL_SHUTDOWN) {
    atomic_fetch_add(&w->shutdown, 1);
    return;
  }
  /* A blocking wait from the channel's own thread is refused. */
  if (cgrpc_channel_wait_for_ready(ch, 10) != CGRPC_ERR_WOULD_DEADLOCK)
    atomic_store(&w->ready, -1);
  if (w->follow)
    cgrpc_channel_watch_state(ch, s, watch_cb, w);
}

static void test_lb_state_api(void **state) {
  it_server srv;
  cgrpc_channel *ch;
  cgrpc_channel_options *o = quick_options(NULL);
  watcher w = {.follow = 1};
  char target[80];
  int i;
  (void)state;
  pthread_mutex_init(&w.lock, NULL);
  assert_int_equal(it_server_start(&srv, NULL, 0), 0);
  snprintf(target, sizeof target, "ipv4:%s", srv.target);
  assert_int_equal(cgrpc_channel_new(&ch, target, o), 0);
  /* Nothing happens before the first call or a try. */
  it_sleep_ms(50);
  CHECK(cgrpc_channel_get_state(ch, 0) == CGRPC_CHANNEL_IDLE, "not IDLE");
  CHECK(cgrpc_channel_watch_state(ch, CGRPC_CHANNEL_IDLE, watch_cb, &w) == 0,
        "watch");
  it_sleep_ms(50);
  CHECK(atomic_load(&w.fired) == 0, "a watch fired with nothing changed");
  CHECK(cgrpc_channel_get_state(ch, 1) == CGRPC_CHANNEL_IDLE,
        "try_to_connect still reads IDLE");
  CHECK(cgrpc_channel_wait_for_ready(ch, BOUND_MS) == 0, "not READY");
  CHECK(cgrpc_channel_get_state(ch, 0) == CGRPC_CHANNEL_READY, "not READY");
  CHECK(it_wait_flag(&w.ready, 1, BOUND_MS) == 1, "the watch never saw READY");
  pthread_mutex_lock(&w.lock);
  for (i = 0; i < w.n; i++)
    print_message("  seen: %s\n", cgrpc_connectivity_state_name(w.states[i]));
  CHECK(w.n >= 1 && w.states[w.n - 1] == CGRPC_CHANNEL_READY,
        "last state seen %d", w.n ? w.states[w.n - 1] : -1);
  pthread_mutex_unlock(&w.lock);
  /* A watch of a state that is not the current one fires soon. */
  {
    watcher w2 = {0};
    pthread_mutex_init(&w2.lock, NULL);
    CHECK(cgrpc_channel_watch_state(ch, CGRPC_CHANNEL_IDLE, watch_cb, &w2) ==
              0,
          "watch");
    CHECK(it_wait_flag(&w2.fired, 1, BOUND_MS) == 1, "did not fire");
    CHECK(w2.states[0] == CGRPC_CHANNEL_READY, "fired with %d", w2.states[0]);
    pthread_mutex_destroy(&w2.lock);
  }
  CHECK(echo(ch, NULL, NULL) == CGRPC_STATUS_OK, "a call");
  /* Deletion: the pending watch (of READY) sees SHUTDOWN before the
   * delete returns; nothing after it. */
  cgrpc_channel_del(ch);
  CHECK(atomic_load(&w.shutdown) == 1, "SHUTDOWN seen %d times",
        atomic_load(&w.shutdown));
  CHECK(cgrpc_channel_get_state(NULL, 0) == CGRPC_CHANNEL_SHUTDOWN, "NULL");
  CHECK(strcmp(cgrpc_connectivity_state_name(CGRPC_CHANNEL_TRANSIENT_FAILURE),
               "TRANSIENT_FAILURE") == 0,
        "name");
  cgrpc_channel_options_del(o);
  it_server_stop(&srv, 0);
  pthread_mutex_destroy(&w.lock);
  CHECKS_DONE();
}

typedef struct waiter {
  cgrpc_channel *ch;
  int64_t timeout_ms;
  int rv;
} waiter;

static void wait_job(void *arg) {
  waiter *w = arg;
  w->rv = cgrpc_channel_wait_for_ready(w->ch, w->timeout_ms);
}

static void test_lb_wait_for_ready_timeout_and_delete(void **state) {
  int port = it_dead_port();
  cgrpc_channel_options *o = quick_options(NULL);
  cgrpc_channel *ch;
  waiter w;
  it_bg_job *j;
  int64_t t0, took;
  (void)state;
  ch = list_channel(&port, 1, o);
  t0 = it_now_ms();
  CHECK(cgrpc_channel_wait_for_ready(ch, 300) == CGRPC_ERR_TIMEOUT,
        "no timeout");
  took = it_now_ms() - t0;
  CHECK(took >= 290 && took < 300 + 2000 * SLOW, "timed out after %lld ms",
        (long long)took);
  CHECK(cgrpc_channel_get_state(ch, 0) == CGRPC_CHANNEL_TRANSIENT_FAILURE,
        "state %s",
        cgrpc_connectivity_state_name(cgrpc_channel_get_state(ch, 0)));
  /* Another thread waits without limit; the channel is deleted. */
  w.ch = ch;
  w.timeout_ms = -1;
  w.rv = 1;
  j = it_bg_start(wait_job, &w);
  it_sleep_ms(100);
  took = it_channel_del_bounded(ch, BOUND_MS);
  CHECK(took >= 0, "cgrpc_channel_del hung with a waiter");
  CHECK(it_bg_wait(j, BOUND_MS) == 1, "the waiter never returned");
  CHECK(w.rv == CGRPC_ERR_CLOSED, "the waiter got %d", w.rv);
  cgrpc_channel_options_del(o);
  CHECKS_DONE();
}

/* ---- wait-for-ready calls ---- */

typedef struct late_start {
  it_server *srv;
  int port, delay_ms, rv;
} late_start;

static void late_start_job(void *arg) {
  late_start *l = arg;
  it_sleep_ms(l->delay_ms);
  l->rv = it_server_start(l->srv, NULL, l->port);
}

static void wait_for_ready_case(const char *service_config, int opt) {
  int port = it_dead_port();
  cgrpc_channel_options *o = quick_options(NULL);
  cgrpc_channel *ch;
  cgrpc_call_options wfr = {.timeout_ms = 600 * SLOW, .wait_for_ready = opt};
  cgrpc_call_options ff = {.timeout_ms = 5000, .wait_for_ready = CGRPC_FAIL_FAST};
  cgrpc_status st = {0};
  it_server srv;
  late_start l = {&srv, port, 300, -1};
  it_bg_job *j;
  int64_t t0, took;
  char err[200];
  if (service_config)
    assert_int_equal(cgrpc_channel_options_set_service_config(
                         o, service_config, err, sizeof err),
                     0);
  ch = list_channel(&port, 1, o);
  /* Nothing listens: a fail-fast call fails UNAVAILABLE at once ... */
  t0 = it_now_ms();
  CHECK(echo(ch, &ff, &st) == CGRPC_STATUS_UNAVAILABLE, "fail fast: %s",
        cgrpc_status_code_name(st.code));
  CHECK(st.message && strstr(st.message, "failed to connect"), "message %s",
        st.message ? st.message : "(none)");
  cgrpc_status_clear(&st);
  CHECK(it_now_ms() - t0 < 2000 * SLOW, "fail fast took %lld ms",
        (long long)(it_now_ms() - t0));
  CHECK(cgrpc_channel_get_state(ch, 0) == CGRPC_CHANNEL_TRANSIENT_FAILURE,
        "state %s",
        cgrpc_connectivity_state_name(cgrpc_channel_get_state(ch, 0)));
  CHECK(echo(ch, &ff, &st) == CGRPC_STATUS_UNAVAILABLE, "in TRANSIENT_FAILURE");
  cgrpc_status_clear(&st);
  /* ... a wait-for-ready one waits out its deadline ... */
  t0 = it_now_ms();
  CHECK(echo(ch, &wfr, &st) == CGRPC_STATUS_DEADLINE_EXCEEDED,
        "wait for ready: %s %s", cgrpc_status_code_name(st.code),
        st.message ? st.message : "");
  cgrpc_status_clear(&st);
  took = it_now_ms() - t0;
  CHECK(took >= 590 * SLOW, "ended after %lld ms", (long long)took);
  /* ... and gets through when the server comes up meanwhile. */
  wfr.timeout_ms = BOUND_MS;
  j = it_bg_start(late_start_job, &l);
  t0 = it_now_ms();
  CHECK(echo(ch, &wfr, &st) == CGRPC_STATUS_OK, "after the server came: %s %s",
        cgrpc_status_code_name(st.code), st.message ? st.message : "");
  cgrpc_status_clear(&st);
  CHECK(it_now_ms() - t0 >= 250, "answered before the server was up");
  CHECK(it_bg_wait(j, BOUND_MS) == 1 && l.rv == 0, "server start");
  cgrpc_channel_del(ch);
  cgrpc_channel_options_del(o);
  it_server_stop(&srv, 0);
}

static void test_lb_wait_for_ready_call(void **state) {
  (void)state;
  wait_for_ready_case(NULL, CGRPC_WAIT_FOR_READY);
  CHECKS_DONE();
}

static void test_lb_wait_for_ready_service_config(void **state) {
  (void)state;
  wait_for_ready_case("{\"methodConfig\": [{\"name\": [{\"service\": "
                      "\"cgrpc.test.EchoService\"}], \"waitForReady\": true}]}",
                      0);
  CHECKS_DONE();
}

/* ---- idle ---- */

static void test_lb_idle_timeout(void **state) {
  it_server srv;
  cgrpc_channel_options *o = quick_options(NULL);
  cgrpc_channel *ch;
  watcher w = {0};
  int64_t end;
  (void)state;
  pthread_mutex_init(&w.lock, NULL);
  cgrpc_channel_options_set_idle_timeout_ms(o, 300);
  assert_int_equal(it_server_start(&srv, NULL, 0), 0);
  ch = it_channel(&srv, o);
  assert_non_null(ch);
  /* Calls 100 ms apart keep it busy past the timeout. */
  end = it_now_ms() + 800;
  while (it_now_ms() < end) {
    CHECK(echo(ch, NULL, NULL) == CGRPC_STATUS_OK, "a call");
    CHECK(cgrpc_channel_get_state(ch, 0) == CGRPC_CHANNEL_READY,
          "went %s between calls",
          cgrpc_connectivity_state_name(cgrpc_channel_get_state(ch, 0)));
    it_sleep_ms(100);
  }
  /* Then nothing: IDLE within the timeout (and a margin). */
  CHECK(cgrpc_channel_watch_state(ch, CGRPC_CHANNEL_READY, watch_cb, &w) == 0,
        "watch");
  CHECK(it_wait_flag(&w.fired, 1, BOUND_MS) == 1, "never left READY");
  CHECK(w.states[0] == CGRPC_CHANNEL_IDLE, "went %s",
        cgrpc_connectivity_state_name(w.states[0]));
  /* The next call connects again. */
  CHECK(echo(ch, NULL, NULL) == CGRPC_STATUS_OK, "a call after IDLE");
  CHECK(cgrpc_channel_get_state(ch, 0) == CGRPC_CHANNEL_READY, "not READY");
  cgrpc_channel_del(ch);
  cgrpc_channel_options_del(o);
  it_server_stop(&srv, 0);
  pthread_mutex_destroy(&w.lock);
  CHECKS_DONE();
}

/* ---- backoff against a server that accepts and closes ---- */

typedef struct slammer {
  int lfd, port;
  atomic_int accepts, stop;
  int64_t first_ms;
} slammer;

static void slam_job(void *arg) {
  slammer *s = arg;
  while (!atomic_load(&s->stop)) {
    struct pollfd p = {s->lfd, POLLIN, 0};
    if (poll(&p, 1, 20) == 1) {
      int fd = accept(s->lfd, NULL, NULL);
      if (fd >= 0) {
        if (atomic_fetch_add(&s->accepts, 1) == 0)
          s->first_ms = it_now_ms();
        close(fd);
      }
    }
  }
}

static void slammer_start(slammer *s) {
  struct sockaddr_in a = {0};
  socklen_t len = sizeof a;
  memset(s, 0, sizeof *s);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  s->lfd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(s->lfd >= 0);
  assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(s->lfd, 64), 0);
  assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &len), 0);
  s->port = ntohs(a.sin_port);
}

static void test_lb_backoff_paces_attempts(void **state) {
  slammer s;
  it_bg_job *j;
  cgrpc_channel_options *o = quick_options(NULL);
  /* 200 ms each time, no growth, no jitter. */
  cgrpc_connect_backoff b = {200, 1.0, 0.0, 200, 0};
  cgrpc_channel *ch;
  int n;
  (void)state;
  /* Bad values are refused and change nothing. */
  {
    cgrpc_connect_backoff bad = {100, 0.5, 0, 0, 0};
    CHECK(cgrpc_channel_options_set_connect_backoff(o, &bad) ==
              CGRPC_ERR_INVALID_ARGUMENT,
          "multiplier 0.5 taken");
    bad.multiplier = 2;
    bad.jitter = 1.5;
    CHECK(cgrpc_channel_options_set_connect_backoff(o, &bad) ==
              CGRPC_ERR_INVALID_ARGUMENT,
          "jitter 1.5 taken");
    CHECK(cgrpc_channel_options_set_lb_policy(o, "grpclb") ==
              CGRPC_ERR_INVALID_ARGUMENT,
          "grpclb taken");
  }
  assert_int_equal(cgrpc_channel_options_set_connect_backoff(o, &b), 0);
  slammer_start(&s);
  j = it_bg_start(slam_job, &s);
  ch = list_channel(&s.port, 1, o);
  cgrpc_channel_get_state(ch, 1);
  /* A connection that closes before the server's SETTINGS is a failed
   * attempt: the channel retries on its own, every 200 ms, not at once. */
  CHECK(it_wait_flag(&s.accepts, 1, BOUND_MS) >= 1, "never connected");
  it_sleep_ms(1000);
  n = atomic_load(&s.accepts);
  print_message("  %d attempts in about 1 s\n", n);
  CHECK(n >= 3 && n <= 8, "%d attempts in 1 s with a 200 ms backoff", n);
  CHECK(cgrpc_channel_get_state(ch, 0) == CGRPC_CHANNEL_TRANSIENT_FAILURE,
        "state %s",
        cgrpc_connectivity_state_name(cgrpc_channel_get_state(ch, 0)));
  cgrpc_channel_del(ch);
  atomic_store(&s.stop, 1);
  CHECK(it_bg_wait(j, BOUND_MS) == 1, "listener thread");
  close(s.lfd);
  cgrpc_channel_options_del(o);
  CHECKS_DONE();
}

/* ---- lifetimes ---- */

typedef struct del_in_watch {
  atomic_int deleted, shutdown_seen;
} del_in_watch;

static void shutdown_cb(cgrpc_channel *ch, cgrpc_connectivity_state s,
                        void *user_data) {
  del_in_watch *d = user_data;
  (void)ch;
  if (s == CGRPC_CHANNEL_SHUTDOWN)
    atomic_fetch_add(&d->shutdown_seen, 1);
}

static void delete_cb(cgrpc_channel *ch, cgrpc_connectivity_state s,
                      void *user_data) {
  del_in_watch *d = user_data;
  if (s != CGRPC_CHANNEL_READY) { /* CONNECTING first: watch on */
    cgrpc_channel_watch_state(ch, s, delete_cb, d);
    return;
  }
  /* Another watch waits for READY to end; then the channel is deleted
   * from its own thread, inside its own callback. */
  cgrpc_channel_watch_state(ch, CGRPC_CHANNEL_READY, shutdown_cb, d);
  cgrpc_channel_del(ch);
  atomic_store(&d->deleted, 1);
}

static void test_lb_channel_deleted_in_its_watch(void **state) {
  it_server srv;
  cgrpc_channel *ch;
  del_in_watch d = {0};
  (void)state;
  assert_int_equal(it_server_start(&srv, NULL, 0), 0);
  ch = it_channel(&srv, NULL);
  assert_non_null(ch);
  assert_int_equal(
      cgrpc_channel_watch_state(ch, CGRPC_CHANNEL_IDLE, delete_cb, &d), 0);
  cgrpc_channel_get_state(ch, 1);
  CHECK(it_wait_flag(&d.deleted, 1, BOUND_MS) == 1, "not deleted");
  CHECK(it_wait_flag(&d.shutdown_seen, 1, BOUND_MS) == 1,
        "the other watch never saw SHUTDOWN");
  it_sleep_ms(50);
  CHECK(atomic_load(&d.shutdown_seen) == 1, "SHUTDOWN seen %d times",
        atomic_load(&d.shutdown_seen));
  it_server_stop(&srv, 0);
  CHECKS_DONE();
}

typedef struct watch_storm {
  cgrpc_channel *ch;
  atomic_int registered, fired;
} watch_storm;

static void storm_cb(cgrpc_channel *ch, cgrpc_connectivity_state s,
                     void *user_data) {
  watch_storm *w = user_data;
  (void)ch;
  (void)s;
  atomic_fetch_add(&w->fired, 1);
}

static void storm_job(void *arg) {
  watch_storm *w = arg;
  int i;
  for (i = 0; i < 200; i++) {
    /* Half fire at once (the state is not IDLE), half wait for the end. */
    cgrpc_connectivity_state last =
        i % 2 ? CGRPC_CHANNEL_IDLE : cgrpc_channel_get_state(w->ch, 1);
    if (cgrpc_channel_watch_state(w->ch, last, storm_cb, w) == 0)
      atomic_fetch_add(&w->registered, 1);
  }
}

/* Watches from four threads while calls run: every one fires exactly
 * once, the last of them with SHUTDOWN inside cgrpc_channel_del. */
static void test_lb_watches_from_threads(void **state) {
  it_server srv;
  watch_storm w = {0};
  it_bg_job *jobs[4];
  int i;
  (void)state;
  assert_int_equal(it_server_start(&srv, NULL, 0), 0);
  w.ch = it_channel(&srv, NULL);
  assert_non_null(w.ch);
  for (i = 0; i < 4; i++)
    jobs[i] = it_bg_start(storm_job, &w);
  for (i = 0; i < 20; i++)
    CHECK(echo(w.ch, NULL, NULL) == CGRPC_STATUS_OK, "call %d", i);
  for (i = 0; i < 4; i++)
    CHECK(it_bg_wait(jobs[i], BOUND_MS) == 1, "watcher thread %d", i);
  cgrpc_channel_del(w.ch);
  CHECK(atomic_load(&w.registered) == 800, "registered %d",
        atomic_load(&w.registered));
  CHECK(atomic_load(&w.fired) == atomic_load(&w.registered),
        "%d of %d watches fired", atomic_load(&w.fired),
        atomic_load(&w.registered));
  it_server_stop(&srv, 0);
  CHECKS_DONE();
}

static void start_sleep(cgrpc_channel *ch, int sleep_ms, it_async *a) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  cgrpc_call_options opts = {.timeout_ms = BOUND_MS};
  req.message = "slow";
  req.sleep_ms = sleep_ms;
  it_async_init(a);
  assert_int_equal(cgrpc__test__echo_service__echo__start(
                       ch, &req, &opts, it_async_done, a, NULL),
                   0);
}

/* A call longer than the idle timeout keeps the channel out of IDLE, and
 * its connection open until it ends. */
static void test_lb_idle_waits_for_calls(void **state) {
  it_server srv;
  cgrpc_channel_options *o = quick_options(NULL);
  cgrpc_channel *ch;
  it_async a;
  (void)state;
  cgrpc_channel_options_set_idle_timeout_ms(o, 100);
  assert_int_equal(it_server_start(&srv, NULL, 0), 0);
  ch = it_channel(&srv, o);
  assert_non_null(ch);
  start_sleep(ch, 600, &a);
  CHECK(it_async_wait(&a, BOUND_MS) == 1, "the call never ended");
  CHECK(a.status.code == CGRPC_STATUS_OK, "the call ended %s (%s)",
        cgrpc_status_code_name(a.status.code),
        a.status.message ? a.status.message : "");
  CHECK(cgrpc_channel_get_state(ch, 0) == CGRPC_CHANNEL_READY,
        "%s right after a call",
        cgrpc_connectivity_state_name(cgrpc_channel_get_state(ch, 0)));
  it_async_fini(&a);
  cgrpc_channel_del(ch);
  cgrpc_channel_options_del(o);
  it_server_stop(&srv, 0);
  CHECKS_DONE();
}

/* round_robin: calls in flight on every server while one is stopped
 * (GOAWAY, drain): the one on the stopped server finishes, or fails with
 * UNAVAILABLE; none hangs, and the others finish OK. */
static void test_lb_round_robin_stop_with_calls_in_flight(void **state) {
  it_server srv[N_SERVERS];
  int ports[N_SERVERS], i, ok = 0;
  cgrpc_channel_options *o = quick_options("round_robin");
  cgrpc_channel *ch;
  it_async a[6];
  (void)state;
  start_servers(srv, ports, N_SERVERS);
  ch = list_channel(ports, N_SERVERS, o);
  CHECK(until_all_served(ch, srv, N_SERVERS), "not every server was used");
  for (i = 0; i < 6; i++)
    start_sleep(ch, 300, &a[i]);
  it_sleep_ms(50);
  it_server_stop(&srv[1], 2000); /* a grace longer than the calls */
  for (i = 0; i < 6; i++) {
    CHECK(it_async_wait(&a[i], BOUND_MS) == 1, "call %d hung", i);
    if (a[i].status.code == CGRPC_STATUS_OK)
      ok++;
    it_async_fini(&a[i]);
  }
  CHECK(ok == 6, "%d of 6 calls OK across a graceful stop", ok);
  for (i = 0; i < 10; i++)
    CHECK(echo(ch, NULL, NULL) == CGRPC_STATUS_OK, "call %d afterwards", i);
  cgrpc_channel_del(ch);
  cgrpc_channel_options_del(o);
  it_servers_stop(srv, N_SERVERS);
  CHECKS_DONE();
}

#define T(name)                                                                \
  cmocka_unit_test_setup_teardown(name, it_watchdog_setup, it_watchdog_teardown)

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      T(test_lb_round_robin_spreads),
      T(test_lb_round_robin_kill_restart),
      T(test_lb_pick_first_fails_over),
      T(test_lb_pick_first_skips_dead_address),
      T(test_lb_service_config_picks_round_robin),
      T(test_lb_state_api),
      T(test_lb_wait_for_ready_timeout_and_delete),
      T(test_lb_wait_for_ready_call),
      T(test_lb_wait_for_ready_service_config),
      T(test_lb_idle_timeout),
      T(test_lb_backoff_paces_attempts),
      T(test_lb_channel_deleted_in_its_watch),
      T(test_lb_watches_from_threads),
      T(test_lb_idle_waits_for_calls),
      T(test_lb_round_robin_stop_with_calls_in_flight),
  };
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
