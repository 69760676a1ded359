/* SPDX-License-Identifier: MIT */
/*
 * An application's resolver (cgrpc_resolver), on loopback with real
 * servers:
 *
 *  - calls follow an update (pick_first and round_robin), round_robin
 *    spreads over the list it was fed, :authority is the endpoint;
 *  - an empty list and a failure: fail-fast calls fail UNAVAILABLE with a
 *    message that says so, wait-for-ready calls (and
 *    cgrpc_channel_wait_for_ready) wait for the next update; a failure
 *    after a good list keeps it;
 *  - the resolve callback: asked when there is no list yet (and answered
 *    from inside the callback), asked again after a connection drop;
 *  - updates from another thread while calls run;
 *  - lifetimes: the channel deleted while another thread updates, the
 *    resolver deleted while its channel runs (its callback is never called
 *    afterwards), deleted while its callback runs on the channel's thread,
 *    deleted (and the channel deleted) from inside the callback, a resolver
 *    used after the channel it fed is gone, options and application
 *    references dropped before the channel is used;
 *  - malformed addresses, schemes and targets are refused with a message.
 *
 * Bounds are several times what the code needs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "echo.grpc-c.h"
#include "harness.h"

#define SLOW IT_SLOW
#define BOUND_MS (10000 * SLOW)

#define CHECK IT_CHECK
#define CHECKS_DONE IT_CHECKS_DONE

/* A backoff short enough for tests: 100 ms, x1.6, at most 400 ms. */
static const cgrpc_connect_backoff quick_backoff = {100, 1.6, 0.2, 400, 0};

static void log_cb(cgrpc_log_level level, const char *msg, void *user_data) {
  (void)level;
  (void)user_data;
  if (getenv("CGRPC_TEST_LOG"))
    fprintf(stderr, "  [log] %s\n", msg);
}

static cgrpc_channel_options *options_for(cgrpc_resolver *r, const char *lb) {
  cgrpc_channel_options *o;
  assert_int_equal(cgrpc_channel_options_new(&o), 0);
  cgrpc_channel_options_set_log(o, log_cb, NULL);
  assert_int_equal(cgrpc_channel_options_set_connect_backoff(o, &quick_backoff),
                   0);
  if (lb)
    assert_int_equal(cgrpc_channel_options_set_lb_policy(o, lb), 0);
  cgrpc_channel_options_set_resolver(o, r);
  return o;
}

static cgrpc_channel *resolver_channel(cgrpc_resolver *r, const char *lb) {
  cgrpc_channel_options *o = options_for(r, lb);
  cgrpc_channel *ch = NULL;
  assert_int_equal(cgrpc_channel_new(&ch, "test:///echo.service", o), 0);
  cgrpc_channel_options_del(o); /* the channel keeps what it needs */
  return ch;
}

/* Feeds the addresses of |srv[idx[0..n-1]]| to |r|. */
static int feed(cgrpc_resolver *r, it_server *srv, const int *idx, int n) {
  const char *addrs[8];
  char err[200];
  int i, rv;
  for (i = 0; i < n; i++)
    addrs[i] = srv[idx[i]].target;
  rv = cgrpc_resolver_update(r, addrs, (size_t)n, err, sizeof err);
  if (rv != 0)
    print_message("update: %s\n", err);
  return rv;
}

static cgrpc_status_code echo(cgrpc_channel *ch, const cgrpc_call_options *co,
                              cgrpc_status *status, char *authority,
                              size_t authority_size) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_status_code code;
  req.message = "resolver";
  code = cgrpc__test__echo_service__echo__call(ch, &req, &reply, co, status);
  if (reply) {
    if (authority)
      snprintf(authority, authority_size, "%s",
               reply->authority ? reply->authority : "");
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  }
  return code;
}

static cgrpc_status_code call(cgrpc_channel *ch) {
  return echo(ch, NULL, NULL, NULL, 0);
}

static int calls_of(it_server *s) { return atomic_load(&s->stats.calls); }

static void reset_stats(it_server *srv, int n) {
  int i;
  for (i = 0; i < n; i++)
    echo_stats_reset(&srv[i].stats);
}

/* Makes calls until |s| answered one, bounded; returns 1 when it did. */
static int until_served_by(cgrpc_channel *ch, it_server *s) {
  int64_t end = it_now_ms() + BOUND_MS;
  int before = calls_of(s);
  while (it_now_ms() < end) {
    call(ch);
    if (calls_of(s) > before)
      return 1;
    it_sleep_ms(2);
  }
  return 0;
}

/* Makes calls until every server of |srv| answered one since the last
 * reset, bounded. */
static int until_all_served(cgrpc_channel *ch, it_server *srv, int n) {
  int64_t end = it_now_ms() + BOUND_MS;
  while (it_now_ms() < end) {
    int i, all = 1;
    call(ch);
    for (i = 0; i < n; i++)
      if (calls_of(&srv[i]) == 0)
        all = 0;
    if (all)
      return 1;
    it_sleep_ms(2);
  }
  return 0;
}

/* Polls the channel's state until it is |want|, bounded. */
static int until_state(cgrpc_channel *ch, cgrpc_connectivity_state want) {
  int64_t end = it_now_ms() + BOUND_MS;
  while (cgrpc_channel_get_state(ch, 0) != want && it_now_ms() < end)
    it_sleep_ms(2);
  return cgrpc_channel_get_state(ch, 0) == want;
}

/* ---- the resolve callback, recorded ---- */

enum { ANSWER_NOTHING, ANSWER_UPDATE, ANSWER_UPDATE_AND_DEL, ANSWER_SLOW };

typedef struct recorder {
  atomic_int calls;
  atomic_int mode;      /* ANSWER_* */
  const char *addrs[4]; /* ANSWER_UPDATE: the list */
  int n_addrs;
  atomic_int gone;             /* the test deleted the resolver */
  atomic_int called_after_del; /* ... and the callback still ran */
  atomic_int in_callback;
  atomic_int update_rv;
  cgrpc_channel *del_channel; /* ANSWER_UPDATE_AND_DEL: also delete it */
} recorder;

static void record_resolve(cgrpc_resolver *r, void *user_data) {
  recorder *rec = user_data;
  if (atomic_load(&rec->gone))
    atomic_store(&rec->called_after_del, 1);
  atomic_fetch_add(&rec->in_callback, 1);
  atomic_fetch_add(&rec->calls, 1);
  switch (atomic_load(&rec->mode)) {
  case ANSWER_UPDATE:
    atomic_store(
        &rec->update_rv,
        cgrpc_resolver_update(r, rec->addrs, (size_t)rec->n_addrs, NULL, 0));
    break;
  case ANSWER_UPDATE_AND_DEL:
    atomic_store(
        &rec->update_rv,
        cgrpc_resolver_update(r, rec->addrs, (size_t)rec->n_addrs, NULL, 0));
    atomic_store(&rec->mode, ANSWER_NOTHING);
    atomic_store(&rec->gone, 1);
    cgrpc_resolver_del(r); /* from inside its own callback */
    if (rec->del_channel)
      cgrpc_channel_del(rec->del_channel); /* and the channel too */
    break;
  case ANSWER_SLOW:
    it_sleep_ms(300); /* a callback that blocks (it should not) */
    break;
  default:
    break;
  }
  atomic_fetch_sub(&rec->in_callback, 1);
}

/* ---- calls follow the list ---- */

static void test_resolver_calls_follow_update(void **state) {
  it_server srv[3];
  cgrpc_resolver *r;
  cgrpc_channel *ch;
  char authority[64] = "";
  int ab[] = {0, 1}, c[] = {2}, i;
  (void)state;
  it_servers_start(srv, 3);
  assert_int_equal(cgrpc_resolver_new(&r, "test", NULL, NULL), 0);
  CHECK(feed(r, srv, ab, 2) == 0, "update A,B");
  ch = resolver_channel(r, NULL); /* pick_first */
  CHECK(echo(ch, NULL, NULL, authority, sizeof authority) == CGRPC_STATUS_OK,
        "first call");
  CHECK(strcmp(authority, "echo.service") == 0, ":authority \"%s\"", authority);
  for (i = 0; i < 9; i++)
    CHECK(call(ch) == CGRPC_STATUS_OK, "call %d", i);
  CHECK(calls_of(&srv[0]) == 10 && calls_of(&srv[1]) == 0,
        "pick_first over A,B: %d %d", calls_of(&srv[0]), calls_of(&srv[1]));
  /* The list becomes C: calls move there, and stay. */
  CHECK(feed(r, srv, c, 1) == 0, "update C");
  CHECK(until_served_by(ch, &srv[2]), "no call reached C after the update");
  reset_stats(srv, 3);
  for (i = 0; i < 10; i++)
    CHECK(call(ch) == CGRPC_STATUS_OK, "call %d on C", i);
  CHECK(calls_of(&srv[2]) == 10 && calls_of(&srv[0]) == 0 &&
            calls_of(&srv[1]) == 0,
        "after the update to C: %d %d %d", calls_of(&srv[0]), calls_of(&srv[1]),
        calls_of(&srv[2]));
  cgrpc_channel_del(ch);
  cgrpc_resolver_del(r);
  it_servers_stop(srv, 3);
  CHECKS_DONE();
}

static void test_resolver_round_robin_spreads(void **state) {
  it_server srv[3];
  cgrpc_resolver *r;
  cgrpc_channel *ch;
  int ab[] = {0, 1}, abc[] = {0, 1, 2}, c[] = {2}, i;
  (void)state;
  it_servers_start(srv, 3);
  assert_int_equal(cgrpc_resolver_new(&r, "test", NULL, NULL), 0);
  CHECK(feed(r, srv, ab, 2) == 0, "update A,B");
  ch = resolver_channel(r, "round_robin");
  CHECK(until_all_served(ch, srv, 2), "A and B were not both used");
  CHECK(cgrpc_channel_wait_for_ready(ch, BOUND_MS) == 0, "not READY");
  reset_stats(srv, 3);
  for (i = 0; i < 20; i++)
    CHECK(call(ch) == CGRPC_STATUS_OK, "call %d", i);
  CHECK(calls_of(&srv[0]) == 10 && calls_of(&srv[1]) == 10 &&
            calls_of(&srv[2]) == 0,
        "over A,B: %d %d %d", calls_of(&srv[0]), calls_of(&srv[1]),
        calls_of(&srv[2]));
  /* C joins: once it is READY, the rotation covers all three exactly. */
  CHECK(feed(r, srv, abc, 3) == 0, "update A,B,C");
  CHECK(until_served_by(ch, &srv[2]), "C never got a call");
  reset_stats(srv, 3);
  for (i = 0; i < 30; i++)
    CHECK(call(ch) == CGRPC_STATUS_OK, "call %d", i);
  for (i = 0; i < 3; i++)
    CHECK(calls_of(&srv[i]) == 10, "server %d served %d of 30", i,
          calls_of(&srv[i]));
  /* Down to C alone. */
  CHECK(feed(r, srv, c, 1) == 0, "update C");
  CHECK(until_state(ch, CGRPC_CHANNEL_READY), "not READY");
  {
    int64_t end = it_now_ms() + BOUND_MS;
    int streak = 0;
    /* The update lands between two calls: wait for 10 in a row on C. */
    while (streak < 10 && it_now_ms() < end) {
      int before = calls_of(&srv[2]);
      CHECK(call(ch) == CGRPC_STATUS_OK, "a call while C takes over");
      streak = calls_of(&srv[2]) > before ? streak + 1 : 0;
    }
    CHECK(streak == 10, "calls did not settle on C");
  }
  reset_stats(srv, 3);
  for (i = 0; i < 10; i++)
    CHECK(call(ch) == CGRPC_STATUS_OK, "call %d", i);
  CHECK(calls_of(&srv[2]) == 10, "C served %d of 10", calls_of(&srv[2]));
  cgrpc_channel_del(ch);
  cgrpc_resolver_del(r);
  it_servers_stop(srv, 3);
  CHECKS_DONE();
}

/* Unix-domain addresses in the list, beside a TCP one. */
static void test_resolver_unix_address(void **state) {
  it_server tcp;
  cgrpc_server *server;
  echo_stats ustats;
  cgrpc_resolver *r;
  cgrpc_channel *ch;
  char uaddr[80], err[200];
  const char *addrs[2];
  int64_t end;
  (void)state;
  echo_stats_reset(&ustats);
  snprintf(uaddr, sizeof uaddr, "unix-abstract:cgrpc-test-resolver-%d",
           (int)getpid());
  assert_int_equal(cgrpc_server_new(&server, NULL), 0);
  assert_int_equal(cgrpc_server_add_insecure_port(server, uaddr, NULL), 0);
  assert_int_equal(echo_service_register(server, &ustats), 0);
  assert_int_equal(cgrpc_server_start(server), 0);
  assert_int_equal(it_server_start(&tcp, NULL, 0), 0);
  addrs[0] = uaddr;
  addrs[1] = tcp.target;
  assert_int_equal(cgrpc_resolver_new(&r, "test", NULL, NULL), 0);
  CHECK(cgrpc_resolver_update(r, addrs, 2, err, sizeof err) == 0, "update: %s",
        err);
  ch = resolver_channel(r, "round_robin");
  end = it_now_ms() + BOUND_MS;
  while ((atomic_load(&ustats.calls) == 0 || calls_of(&tcp) == 0) &&
         it_now_ms() < end)
    call(ch);
  CHECK(atomic_load(&ustats.calls) > 0, "the Unix server got no call");
  CHECK(calls_of(&tcp) > 0, "the TCP server got no call");
  cgrpc_channel_del(ch);
  cgrpc_resolver_del(r);
  it_server_stop(&tcp, 0);
  cgrpc_server_shutdown(server, 0);
  cgrpc_server_del(server);
  CHECKS_DONE();
}

/* ---- empty lists and failures ---- */

static void start_wait_for_ready(cgrpc_channel *ch, it_async *a) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  cgrpc_call_options opts = {.timeout_ms = BOUND_MS,
                             .wait_for_ready = CGRPC_WAIT_FOR_READY};
  req.message = "waits";
  it_async_init(a);
  assert_int_equal(cgrpc__test__echo_service__echo__start(
                       ch, &req, &opts, it_async_done, a, NULL),
                   0);
}

static void check_fail_fast(cgrpc_channel *ch, const char *want) {
  cgrpc_call_options ff = {.timeout_ms = BOUND_MS,
                           .wait_for_ready = CGRPC_FAIL_FAST};
  cgrpc_status st = {0};
  int64_t t0 = it_now_ms();
  CHECK(echo(ch, &ff, &st, NULL, 0) == CGRPC_STATUS_UNAVAILABLE,
        "fail-fast call: %s (%s)", cgrpc_status_code_name(st.code),
        st.message ? st.message : "");
  CHECK(st.message && strstr(st.message, want), "message \"%s\", not \"%s\"",
        st.message ? st.message : "(none)", want);
  CHECK(it_now_ms() - t0 < 2000 * SLOW, "the fail-fast call took %lld ms",
        (long long)(it_now_ms() - t0));
  cgrpc_status_clear(&st);
}

static void test_resolver_empty_list(void **state) {
  it_server srv[1];
  cgrpc_resolver *r;
  cgrpc_channel *ch;
  it_async a;
  int a0[] = {0};
  (void)state;
  it_servers_start(srv, 1);
  assert_int_equal(cgrpc_resolver_new(&r, "test", NULL, NULL), 0);
  CHECK(feed(r, srv, a0, 1) == 0, "update A");
  ch = resolver_channel(r, NULL);
  CHECK(call(ch) == CGRPC_STATUS_OK, "a call on A");
  /* Nothing left: TRANSIENT_FAILURE, and fail-fast calls say why. */
  CHECK(cgrpc_resolver_update(r, NULL, 0, NULL, 0) == 0, "empty update");
  CHECK(until_state(ch, CGRPC_CHANNEL_TRANSIENT_FAILURE), "state %s",
        cgrpc_connectivity_state_name(cgrpc_channel_get_state(ch, 0)));
  check_fail_fast(ch, "the resolver gave no addresses");
  check_fail_fast(ch, "test:///echo.service");
  /* A wait-for-ready call waits (beyond the 100 ms resolver backoff) ... */
  start_wait_for_ready(ch, &a);
  CHECK(it_async_wait(&a, 300) == 0, "the wait-for-ready call ended: %s",
        cgrpc_status_code_name(a.status.code));
  CHECK(cgrpc_channel_get_state(ch, 0) == CGRPC_CHANNEL_TRANSIENT_FAILURE,
        "state %s",
        cgrpc_connectivity_state_name(cgrpc_channel_get_state(ch, 0)));
  /* ... until a list comes. */
  CHECK(feed(r, srv, a0, 1) == 0, "update A again");
  CHECK(it_async_wait(&a, BOUND_MS) == 1, "the wait-for-ready call hung");
  IT_ASSERT_STATUS(a.status, CGRPC_STATUS_OK);
  it_async_fini(&a);
  CHECK(call(ch) == CGRPC_STATUS_OK, "a fail-fast call after the update");
  cgrpc_channel_del(ch);
  cgrpc_resolver_del(r);
  it_servers_stop(srv, 1);
  CHECKS_DONE();
}

typedef struct waiter {
  cgrpc_channel *ch;
  int rv;
} waiter;

static void wait_job(void *arg) {
  waiter *w = arg;
  w->rv = cgrpc_channel_wait_for_ready(w->ch, BOUND_MS);
}

static void test_resolver_fail(void **state) {
  it_server srv[1];
  cgrpc_resolver *r;
  cgrpc_channel *ch;
  it_async a;
  waiter w = {NULL, 1};
  it_bg_job *j;
  int a0[] = {0}, i;
  (void)state;
  it_servers_start(srv, 1);
  assert_int_equal(cgrpc_resolver_new(&r, "test", NULL, NULL), 0);
  /* A failure before the channel exists: it starts failed. */
  CHECK(cgrpc_resolver_fail(r, "no backends registered") == 0, "fail");
  ch = resolver_channel(r, "round_robin");
  check_fail_fast(ch, "no backends registered");
  /* TRANSIENT_FAILURE, or IDLE once the 100 ms backoff is over with no
   * call waiting (the next call finds the failure again). */
  CHECK(cgrpc_channel_get_state(ch, 0) == CGRPC_CHANNEL_TRANSIENT_FAILURE ||
            cgrpc_channel_get_state(ch, 0) == CGRPC_CHANNEL_IDLE,
        "state %s",
        cgrpc_connectivity_state_name(cgrpc_channel_get_state(ch, 0)));
  check_fail_fast(ch, "no backends registered");
  start_wait_for_ready(ch, &a);
  w.ch = ch;
  j = it_bg_start(wait_job, &w);
  CHECK(it_async_wait(&a, 300) == 0, "the wait-for-ready call ended");
  CHECK(cgrpc_resolver_fail(r, NULL) == 0, "fail without a message");
  check_fail_fast(ch, "resolution failed");
  /* The list comes: both waits end. */
  CHECK(feed(r, srv, a0, 1) == 0, "update A");
  CHECK(it_async_wait(&a, BOUND_MS) == 1, "the wait-for-ready call hung");
  IT_ASSERT_STATUS(a.status, CGRPC_STATUS_OK);
  it_async_fini(&a);
  CHECK(it_bg_wait(j, BOUND_MS) == 1, "cgrpc_channel_wait_for_ready hung");
  CHECK(w.rv == 0, "cgrpc_channel_wait_for_ready gave %d", w.rv);
  /* A failure after a good list keeps it. */
  CHECK(cgrpc_resolver_fail(r, "the registry is down") == 0, "fail");
  for (i = 0; i < 10; i++) {
    CHECK(call(ch) == CGRPC_STATUS_OK, "call %d after the failure", i);
    it_sleep_ms(5);
  }
  CHECK(cgrpc_channel_get_state(ch, 0) == CGRPC_CHANNEL_READY, "state %s",
        cgrpc_connectivity_state_name(cgrpc_channel_get_state(ch, 0)));
  cgrpc_channel_del(ch);
  cgrpc_resolver_del(r);
  it_servers_stop(srv, 1);
  CHECKS_DONE();
}

/* ---- the resolve callback ---- */

/* No list yet: the first call asks, the callback answers from inside. */
static void test_resolver_answer_from_callback(void **state) {
  it_server srv[1];
  recorder rec = {0};
  cgrpc_resolver *r;
  cgrpc_channel *ch;
  (void)state;
  it_servers_start(srv, 1);
  rec.addrs[0] = srv[0].target;
  rec.n_addrs = 1;
  atomic_store(&rec.mode, ANSWER_UPDATE);
  atomic_store(&rec.update_rv, -1);
  assert_int_equal(cgrpc_resolver_new(&r, "test", record_resolve, &rec), 0);
  ch = resolver_channel(r, NULL);
  it_sleep_ms(50);
  CHECK(atomic_load(&rec.calls) == 0, "asked before anything was needed");
  CHECK(call(ch) == CGRPC_STATUS_OK, "the first call");
  CHECK(atomic_load(&rec.calls) >= 1, "the callback was not asked");
  CHECK(atomic_load(&rec.update_rv) == 0, "update from the callback: %d",
        atomic_load(&rec.update_rv));
  CHECK(calls_of(&srv[0]) == 1, "served %d", calls_of(&srv[0]));
  cgrpc_channel_del(ch);
  cgrpc_resolver_del(r);
  it_servers_stop(srv, 1);
  CHECKS_DONE();
}

/* A connection drop asks for a fresh list; the answer moves the calls. */
static void reresolve_case(const char *lb) {
  it_server srv[2];
  recorder rec = {0};
  cgrpc_resolver *r;
  cgrpc_channel *ch;
  int a0[] = {0}, asked;
  int64_t end;
  it_servers_start(srv, 2);
  assert_int_equal(cgrpc_resolver_new(&r, "test", record_resolve, &rec), 0);
  CHECK(feed(r, srv, a0, 1) == 0, "update A");
  ch = resolver_channel(r, lb);
  CHECK(call(ch) == CGRPC_STATUS_OK, "a call on A");
  it_sleep_ms(50);
  asked = atomic_load(&rec.calls);
  CHECK(asked == 0, "asked %d times with a list and no drop", asked);
  /* A goes; the callback is asked and answers with B. */
  rec.addrs[0] = srv[1].target;
  rec.n_addrs = 1;
  atomic_store(&rec.mode, ANSWER_UPDATE);
  it_server_stop(&srv[0], 0);
  CHECK(it_wait_flag(&rec.calls, asked + 1, BOUND_MS) > asked,
        "not asked after the connection dropped");
  end = it_now_ms() + BOUND_MS;
  while (calls_of(&srv[1]) == 0 && it_now_ms() < end) {
    call(ch);
    it_sleep_ms(2);
  }
  CHECK(calls_of(&srv[1]) > 0, "B got no call after the answer");
  CHECK(call(ch) == CGRPC_STATUS_OK, "a call on B");
  cgrpc_channel_del(ch);
  cgrpc_resolver_del(r);
  it_servers_stop(srv, 2);
}

static void test_resolver_reresolve_after_drop(void **state) {
  (void)state;
  reresolve_case(NULL);
  reresolve_case("round_robin");
  CHECKS_DONE();
}

/* After the idle timeout, the next call asks for a fresh list (and goes on
 * with the one it has meanwhile). */
static void test_resolver_idle_asks_again(void **state) {
  it_server srv[1];
  recorder rec = {0};
  cgrpc_resolver *r;
  cgrpc_channel_options *o;
  cgrpc_channel *ch;
  int a0[] = {0};
  (void)state;
  it_servers_start(srv, 1);
  assert_int_equal(cgrpc_resolver_new(&r, "test", record_resolve, &rec), 0);
  CHECK(feed(r, srv, a0, 1) == 0, "update A");
  o = options_for(r, NULL);
  cgrpc_channel_options_set_idle_timeout_ms(o, 200);
  assert_int_equal(cgrpc_channel_new(&ch, "test:///echo.service", o), 0);
  cgrpc_channel_options_del(o);
  CHECK(call(ch) == CGRPC_STATUS_OK, "a call");
  CHECK(until_state(ch, CGRPC_CHANNEL_IDLE), "never IDLE");
  CHECK(atomic_load(&rec.calls) == 0, "asked %d times before the next call",
        atomic_load(&rec.calls));
  CHECK(call(ch) == CGRPC_STATUS_OK, "a call after IDLE");
  CHECK(it_wait_flag(&rec.calls, 1, BOUND_MS) == 1, "asked %d times",
        atomic_load(&rec.calls));
  cgrpc_channel_del(ch);
  cgrpc_resolver_del(r);
  it_servers_stop(srv, 1);
  CHECKS_DONE();
}

/* ---- threads ---- */

typedef struct updater {
  cgrpc_resolver *r;
  it_server *srv;
  atomic_int stop;
  atomic_int updates, failures;
  int max_updates;
  int del_at_end; /* cgrpc_resolver_del() once done */
  recorder *rec;  /* marked gone at the delete */
} updater;

static void update_job(void *arg) {
  updater *u = arg;
  static const int lists[][3] = {{0, 1, 2},   {1, 2, -1}, {2, 0, -1},
                                 {0, -1, -1}, {1, 0, 2},  {2, -1, -1}};
  int i;
  for (i = 0; i < u->max_updates && !atomic_load(&u->stop); i++) {
    const int *l = lists[i % 6];
    int n = l[1] < 0 ? 1 : l[2] < 0 ? 2 : 3;
    if (feed(u->r, u->srv, l, n) != 0)
      atomic_fetch_add(&u->failures, 1);
    atomic_fetch_add(&u->updates, 1);
    if (i % 4 == 0)
      usleep(500); /* pacing, so that calls run between updates */
  }
  if (u->del_at_end) {
    if (u->rec)
      atomic_store(&u->rec->gone, 1);
    cgrpc_resolver_del(u->r);
  }
}

static void updates_while_calls(const char *lb) {
  it_server srv[3];
  cgrpc_resolver *r;
  cgrpc_channel *ch;
  updater u = {0};
  it_bg_job *j;
  it_async a[8];
  int all[] = {0, 1, 2}, c[] = {2}, i, n = 0, failed = 0;
  it_servers_start(srv, 3);
  assert_int_equal(cgrpc_resolver_new(&r, "test", NULL, NULL), 0);
  CHECK(feed(r, srv, all, 3) == 0, "update");
  ch = resolver_channel(r, lb);
  CHECK(call(ch) == CGRPC_STATUS_OK, "first call");
  u.r = r;
  u.srv = srv;
  u.max_updates = 400;
  j = it_bg_start(update_job, &u);
  for (i = 0; i < 8; i++)
    start_wait_for_ready(ch, &a[i]);
  while (atomic_load(&u.updates) < u.max_updates && n < 5000) {
    cgrpc_status st = {0};
    if (echo(ch, NULL, &st, NULL, 0) != CGRPC_STATUS_OK) {
      if (failed++ == 0)
        print_message("failed: %s %s\n", cgrpc_status_code_name(st.code),
                      st.message ? st.message : "");
    }
    cgrpc_status_clear(&st);
    n++;
  }
  CHECK(it_bg_wait(j, BOUND_MS) == 1, "the updater hung");
  CHECK(failed == 0, "%d of %d calls failed while the list changed", failed, n);
  CHECK(atomic_load(&u.failures) == 0, "%d updates failed",
        atomic_load(&u.failures));
  for (i = 0; i < 8; i++) {
    CHECK(it_async_wait(&a[i], BOUND_MS) == 1, "async call %d hung", i);
    IT_ASSERT_STATUS(a[i].status, CGRPC_STATUS_OK);
    it_async_fini(&a[i]);
  }
  print_message("  %s: %d calls over %d updates\n", lb, n,
                atomic_load(&u.updates));
  /* The last word wins. */
  CHECK(feed(r, srv, c, 1) == 0, "update C");
  {
    int64_t end = it_now_ms() + BOUND_MS;
    int streak = 0;
    while (streak < 10 && it_now_ms() < end) {
      int before = calls_of(&srv[2]);
      CHECK(call(ch) == CGRPC_STATUS_OK, "a call while C takes over");
      streak = calls_of(&srv[2]) > before ? streak + 1 : 0;
    }
    CHECK(streak == 10, "calls did not settle on C");
  }
  cgrpc_channel_del(ch);
  cgrpc_resolver_del(r);
  it_servers_stop(srv, 3);
}

static void test_resolver_updates_from_thread(void **state) {
  (void)state;
  updates_while_calls("pick_first");
  updates_while_calls("round_robin");
  CHECKS_DONE();
}

/* ---- lifetimes ---- */

/* Channels deleted (and made again) while another thread updates. */
static void test_resolver_channel_deleted_while_updating(void **state) {
  it_server srv[3];
  cgrpc_resolver *r;
  updater u = {0};
  it_bg_job *j, *j2;
  int all[] = {0, 1, 2}, i;
  (void)state;
  it_servers_start(srv, 3);
  assert_int_equal(cgrpc_resolver_new(&r, "test", NULL, NULL), 0);
  CHECK(feed(r, srv, all, 3) == 0, "update");
  u.r = r;
  u.srv = srv;
  u.max_updates = 1000000;         /* until told to stop */
  j = it_bg_start(update_job, &u); /* two threads update at once */
  j2 = it_bg_start(update_job, &u);
  for (i = 0; i < 20; i++) {
    cgrpc_channel *ch = resolver_channel(r, i % 2 ? "round_robin" : NULL);
    it_async a;
    int64_t took;
    CHECK(call(ch) == CGRPC_STATUS_OK, "channel %d: a call", i);
    start_wait_for_ready(ch, &a); /* in flight at the delete, maybe */
    took = it_channel_del_bounded(ch, BOUND_MS);
    CHECK(took >= 0, "channel %d: cgrpc_channel_del hung", i);
    CHECK(it_async_wait(&a, BOUND_MS) == 1, "channel %d: the call hung", i);
    CHECK(a.status.code == CGRPC_STATUS_OK ||
              a.status.code == CGRPC_STATUS_CANCELLED,
          "channel %d: the call ended %s", i,
          cgrpc_status_code_name(a.status.code));
    it_async_fini(&a);
  }
  atomic_store(&u.stop, 1);
  CHECK(it_bg_wait(j, BOUND_MS) == 1, "the updater hung");
  CHECK(it_bg_wait(j2, BOUND_MS) == 1, "the second updater hung");
  CHECK(atomic_load(&u.updates) > 0, "no update ran");
  CHECK(atomic_load(&u.failures) == 0, "%d updates failed",
        atomic_load(&u.failures));
  cgrpc_resolver_del(r);
  it_servers_stop(srv, 3);
  CHECKS_DONE();
}

/* The application deletes the resolver on another thread while calls
 * run; the channel goes on with the last list, and a later drop does not
 * call the callback of the deleted resolver. */
static void test_resolver_deleted_while_channel_runs(void **state) {
  it_server srv[3];
  recorder *rec = calloc(1, sizeof *rec);
  cgrpc_resolver *r;
  cgrpc_channel *ch;
  updater u = {0};
  it_bg_job *j;
  int all[] = {0, 1, 2}, i, n = 0, failed = 0;
  (void)state;
  assert_non_null(rec);
  it_servers_start(srv, 3);
  assert_int_equal(cgrpc_resolver_new(&r, "test", record_resolve, rec), 0);
  CHECK(feed(r, srv, all, 3) == 0, "update");
  ch = resolver_channel(r, "round_robin");
  u.r = r;
  u.srv = srv;
  u.max_updates = 200;
  u.del_at_end = 1;
  u.rec = rec;
  j = it_bg_start(update_job, &u);
  while (!atomic_load(&rec->gone) && n < 5000) {
    if (call(ch) != CGRPC_STATUS_OK)
      failed++;
    n++;
  }
  CHECK(it_bg_wait(j, BOUND_MS) == 1, "the updater hung");
  CHECK(failed == 0, "%d of %d calls failed", failed, n);
  /* The channel keeps the last list (update 200 gave {1, 2}). */
  for (i = 0; i < 10; i++)
    CHECK(call(ch) == CGRPC_STATUS_OK, "call %d after the delete", i);
  /* A drop would ask for a new list: nobody is asked now. */
  it_server_stop(&srv[1], 0);
  it_server_stop(&srv[2], 0);
  CHECK(until_state(ch, CGRPC_CHANNEL_TRANSIENT_FAILURE),
        "not TRANSIENT_FAILURE with every address down");
  it_sleep_ms(100);
  CHECK(atomic_load(&rec->called_after_del) == 0,
        "the resolve callback ran after cgrpc_resolver_del()");
  cgrpc_channel_del(ch);
  it_servers_stop(srv, 3);
  free(rec);
  CHECKS_DONE();
}

typedef struct del_job_arg {
  cgrpc_resolver *r;
  recorder *rec;
  int in_callback_at_return;
} del_job_arg;

static void del_job(void *arg) {
  del_job_arg *d = arg;
  cgrpc_resolver_del(d->r);
  d->in_callback_at_return = atomic_load(&d->rec->in_callback);
  atomic_store(&d->rec->gone, 1);
}

/* cgrpc_resolver_del() while the callback runs on the channel's thread: it
 * returns only once the callback has, so that its user_data may go. */
static void test_resolver_deleted_during_callback(void **state) {
  recorder rec = {0};
  cgrpc_resolver *r;
  cgrpc_channel *ch;
  it_async a;
  del_job_arg d;
  it_bg_job *j;
  (void)state;
  atomic_store(&rec.mode, ANSWER_SLOW);
  assert_int_equal(cgrpc_resolver_new(&r, "test", record_resolve, &rec), 0);
  ch = resolver_channel(r, NULL);
  start_wait_for_ready(ch, &a); /* no list: the callback is asked */
  CHECK(it_wait_flag(&rec.in_callback, 1, BOUND_MS) == 1,
        "the callback was not called");
  d.r = r;
  d.rec = &rec;
  d.in_callback_at_return = -1;
  j = it_bg_start(del_job, &d);
  CHECK(it_bg_wait(j, BOUND_MS) == 1, "cgrpc_resolver_del hung");
  CHECK(d.in_callback_at_return == 0,
        "cgrpc_resolver_del returned while the callback ran");
  cgrpc_channel_del(ch);
  CHECK(it_async_wait(&a, BOUND_MS) == 1, "the call hung");
  IT_ASSERT_STATUS(a.status, CGRPC_STATUS_CANCELLED);
  it_async_fini(&a);
  CHECK(atomic_load(&rec.called_after_del) == 0, "called after the delete");
  CHECKS_DONE();
}

/* The callback answers, deletes its resolver, and deletes the channel
 * that called it. */
static void test_resolver_deleted_in_callback(void **state) {
  it_server srv[1];
  recorder rec = {0};
  cgrpc_resolver *r;
  cgrpc_channel *ch, *other;
  it_async a;
  (void)state;
  it_servers_start(srv, 1);
  rec.addrs[0] = srv[0].target;
  rec.n_addrs = 1;
  atomic_store(&rec.mode, ANSWER_UPDATE_AND_DEL);
  assert_int_equal(cgrpc_resolver_new(&r, "test", record_resolve, &rec), 0);
  ch = resolver_channel(r, NULL);
  other = resolver_channel(r, NULL);
  rec.del_channel = ch;
  start_wait_for_ready(ch, &a); /* asks; the callback deletes both */
  CHECK(it_async_wait(&a, BOUND_MS) == 1, "the call hung");
  CHECK(a.status.code == CGRPC_STATUS_OK ||
            a.status.code == CGRPC_STATUS_CANCELLED,
        "the call ended %s", cgrpc_status_code_name(a.status.code));
  it_async_fini(&a);
  CHECK(atomic_load(&rec.calls) == 1, "asked %d times",
        atomic_load(&rec.calls));
  CHECK(atomic_load(&rec.update_rv) == 0, "update in the callback: %d",
        atomic_load(&rec.update_rv));
  /* The other channel has the answer, and nobody to ask any more. */
  CHECK(call(other) == CGRPC_STATUS_OK, "a call on the other channel");
  it_server_stop(&srv[0], 0);
  CHECK(until_state(other, CGRPC_CHANNEL_IDLE) ||
            cgrpc_channel_get_state(other, 0) ==
                CGRPC_CHANNEL_TRANSIENT_FAILURE,
        "state %s",
        cgrpc_connectivity_state_name(cgrpc_channel_get_state(other, 0)));
  call(other);
  it_sleep_ms(50);
  CHECK(atomic_load(&rec.called_after_del) == 0, "called after the delete");
  cgrpc_channel_del(other);
  CHECKS_DONE();
}

/* The objects used after their owner let go: a resolver updated after the
 * channel it fed is gone, then feeding a new channel; a channel whose
 * options and resolver were released before its first call. */
static void test_resolver_used_after_owner_gone(void **state) {
  it_server srv[2];
  cgrpc_resolver *r;
  cgrpc_channel_options *o;
  cgrpc_channel *ch;
  int a0[] = {0}, b[] = {1}, port;
  (void)state;
  it_servers_start(srv, 2);
  assert_int_equal(cgrpc_resolver_new(&r, "test", NULL, NULL), 0);
  CHECK(feed(r, srv, a0, 1) == 0, "update A");
  ch = resolver_channel(r, NULL);
  CHECK(call(ch) == CGRPC_STATUS_OK, "a call");
  cgrpc_channel_del(ch);
  /* Nobody follows the resolver now: updates still work. */
  CHECK(feed(r, srv, b, 1) == 0, "update B with no channel");
  CHECK(cgrpc_resolver_fail(r, "x") == 0, "fail with no channel");
  CHECK(feed(r, srv, b, 1) == 0, "update B again");
  /* A new channel from options that let go of everything at once. */
  o = options_for(r, NULL);
  cgrpc_resolver_del(r); /* the options hold it */
  assert_int_equal(cgrpc_channel_new(&ch, "TEST:///echo.service", o), 0);
  cgrpc_channel_options_del(o); /* the channel holds it */
  CHECK(call(ch) == CGRPC_STATUS_OK, "a call on the last list");
  CHECK(calls_of(&srv[1]) == 1 && calls_of(&srv[0]) == 1, "served %d %d",
        calls_of(&srv[0]), calls_of(&srv[1]));
  /* Its connection drops: nobody to ask, nothing breaks; it reconnects. */
  port = srv[1].port;
  it_server_stop(&srv[1], 0);
  assert_int_equal(it_server_start(&srv[1], NULL, port), 0);
  {
    int64_t end = it_now_ms() + BOUND_MS;
    while (call(ch) != CGRPC_STATUS_OK && it_now_ms() < end)
      it_sleep_ms(20);
  }
  CHECK(call(ch) == CGRPC_STATUS_OK, "a call after the restart");
  cgrpc_channel_del(ch);
  it_servers_stop(srv, 2);
  CHECKS_DONE();
}

/* ---- what is refused ---- */

static void test_resolver_bad_input(void **state) {
  static const struct {
    const char *addr, *why;
  } bad[] = {
      {"", "empty address"},
      {"10.0.0.2", "no port"},
      {"::1", "no port"},
      {"[::1]", "no port"},
      {"::1:50051", "needs brackets"},
      {"localhost:50051", "not an IP address"},
      {"1.2.3.4:0", "port"},
      {"1.2.3.4:99999", "port"},
      {"1.2.3.4:http", "port"},
      {"[::1:50051", "'['"},
      {"unix:", "empty"},
      {"unix://host/path", "host"},
      {"dns:///1.2.3.4:50051", "not an address"},
      {"ipv4:1.2.3.4:50051", "not an address"},
  };
  it_server srv[1];
  cgrpc_resolver *r, *tmp = NULL;
  cgrpc_channel_options *o;
  cgrpc_channel *ch = NULL;
  char err[200], authority[64];
  const char *list[2];
  size_t i;
  int a0[] = {0};
  (void)state;
  it_servers_start(srv, 1);
  assert_int_equal(cgrpc_resolver_new(&r, "test", NULL, NULL), 0);
  CHECK(feed(r, srv, a0, 1) == 0, "update A");
  ch = resolver_channel(r, NULL);
  CHECK(call(ch) == CGRPC_STATUS_OK, "a call");
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    list[0] = srv[0].target;
    list[1] = bad[i].addr;
    err[0] = 'x';
    CHECK(cgrpc_resolver_update(r, list, 2, err, sizeof err) ==
              CGRPC_ERR_INVALID_ARGUMENT,
          "\"%s\" taken", bad[i].addr);
    CHECK(strstr(err, bad[i].why) && strstr(err, "address 1"), "\"%s\": \"%s\"",
          bad[i].addr, err);
    print_message("  %s\n", err);
  }
  list[0] = NULL;
  CHECK(cgrpc_resolver_update(r, list, 1, err, sizeof err) ==
            CGRPC_ERR_INVALID_ARGUMENT,
        "NULL address taken");
  CHECK(cgrpc_resolver_update(r, NULL, 1, NULL, 0) ==
            CGRPC_ERR_INVALID_ARGUMENT,
        "NULL list taken");
  CHECK(cgrpc_resolver_update(NULL, NULL, 0, NULL, 0) ==
            CGRPC_ERR_INVALID_ARGUMENT,
        "NULL resolver taken");
  CHECK(cgrpc_resolver_fail(NULL, "x") == CGRPC_ERR_INVALID_ARGUMENT,
        "fail(NULL) taken");
  /* The list is as it was: calls still go to A. */
  it_sleep_ms(20);
  CHECK(call(ch) == CGRPC_STATUS_OK, "a call after the refused updates");
  CHECK(calls_of(&srv[0]) == 2, "served %d", calls_of(&srv[0]));
  cgrpc_channel_del(ch);
  /* Good forms of every kind. */
  {
    const char *good[] = {"127.0.0.1:1",        "[::1]:50051",
                          "unix:/tmp/x.sock",   "unix:rel.sock",
                          "unix:///tmp/y.sock", "unix-abstract:name"};
    CHECK(cgrpc_resolver_update(r, good, 6, err, sizeof err) == 0, "good: %s",
          err);
  }

  /* Schemes. */
  CHECK(cgrpc_resolver_new(&tmp, "dns", NULL, NULL) ==
            CGRPC_ERR_INVALID_ARGUMENT,
        "\"dns\" taken");
  CHECK(cgrpc_resolver_new(&tmp, "Unix", NULL, NULL) ==
            CGRPC_ERR_INVALID_ARGUMENT,
        "\"Unix\" taken");
  CHECK(cgrpc_resolver_new(&tmp, "1abc", NULL, NULL) ==
            CGRPC_ERR_INVALID_ARGUMENT,
        "\"1abc\" taken");
  CHECK(cgrpc_resolver_new(&tmp, "a b", NULL, NULL) ==
            CGRPC_ERR_INVALID_ARGUMENT,
        "\"a b\" taken");
  CHECK(cgrpc_resolver_new(&tmp, "", NULL, NULL) == CGRPC_ERR_INVALID_ARGUMENT,
        "\"\" taken");
  CHECK(cgrpc_resolver_new(&tmp, NULL, NULL, NULL) ==
            CGRPC_ERR_INVALID_ARGUMENT,
        "NULL taken");
  CHECK(tmp == NULL, "*resolver_ptr written on failure");
  CHECK(cgrpc_resolver_new(&tmp, "my-scheme.v2+x", NULL, NULL) == 0,
        "a scheme with every allowed character refused");
  cgrpc_resolver_del(tmp);
  cgrpc_resolver_del(NULL);

  /* Targets: another scheme, a missing endpoint; the endpoint's forms. */
  o = options_for(r, NULL);
  ch = NULL;
  CHECK(cgrpc_channel_new(&ch, "dns:///localhost:50051", o) ==
            CGRPC_ERR_INVALID_ARGUMENT,
        "a dns: target with a resolver taken");
  CHECK(cgrpc_channel_new(&ch, "other:///svc", o) == CGRPC_ERR_INVALID_ARGUMENT,
        "another scheme taken");
  CHECK(cgrpc_channel_new(&ch, "testx:///svc", o) == CGRPC_ERR_INVALID_ARGUMENT,
        "a longer scheme taken");
  CHECK(cgrpc_channel_new(&ch, "test:///", o) == CGRPC_ERR_INVALID_ARGUMENT,
        "an empty endpoint taken");
  CHECK(cgrpc_channel_new(&ch, "test://auth", o) == CGRPC_ERR_INVALID_ARGUMENT,
        "no endpoint after the authority taken");
  CHECK(cgrpc_channel_new(&ch, "test:///a b", o) == CGRPC_ERR_INVALID_ARGUMENT,
        "a space taken");
  CHECK(ch == NULL, "*channel_ptr written on failure");
  CHECK(feed(r, srv, a0, 1) == 0, "update A");
  {
    static const struct {
      const char *target, *authority;
    } forms[] = {{"test:svc.example:443", "svc.example:443"},
                 {"test://ignored/svc", "svc"},
                 {"TeSt:///Svc", "Svc"}};
    for (i = 0; i < sizeof forms / sizeof forms[0]; i++) {
      CHECK(cgrpc_channel_new(&ch, forms[i].target, o) == 0, "%s refused",
            forms[i].target);
      if (!ch)
        continue;
      authority[0] = '\0';
      CHECK(echo(ch, NULL, NULL, authority, sizeof authority) ==
                CGRPC_STATUS_OK,
            "a call on %s", forms[i].target);
      CHECK(strcmp(authority, forms[i].authority) == 0, "%s: :authority \"%s\"",
            forms[i].target, authority);
      cgrpc_channel_del(ch);
      ch = NULL;
    }
  }
  /* An empty endpoint with an authority set. */
  assert_int_equal(cgrpc_channel_options_set_authority(o, "set.by.option"), 0);
  CHECK(cgrpc_channel_new(&ch, "test:///", o) == 0, "refused with authority");
  if (ch) {
    CHECK(echo(ch, NULL, NULL, authority, sizeof authority) == CGRPC_STATUS_OK,
          "a call");
    CHECK(strcmp(authority, "set.by.option") == 0, ":authority \"%s\"",
          authority);
    cgrpc_channel_del(ch);
  }
  cgrpc_channel_options_del(o);
  /* Without a resolver, the scheme is unknown. */
  ch = NULL;
  CHECK(cgrpc_channel_new(&ch, "test:///svc", NULL) ==
            CGRPC_ERR_INVALID_ARGUMENT,
        "test:/// taken without a resolver");
  cgrpc_resolver_del(r);
  it_servers_stop(srv, 1);
  CHECKS_DONE();
}

/* One resolver, two channels: both follow its updates. */
static void test_resolver_shared_by_channels(void **state) {
  it_server srv[2];
  cgrpc_resolver *r;
  cgrpc_channel *ch1, *ch2;
  int a0[] = {0}, b[] = {1};
  (void)state;
  it_servers_start(srv, 2);
  assert_int_equal(cgrpc_resolver_new(&r, "test", NULL, NULL), 0);
  CHECK(feed(r, srv, a0, 1) == 0, "update A");
  ch1 = resolver_channel(r, NULL);
  ch2 = resolver_channel(r, "round_robin");
  CHECK(call(ch1) == CGRPC_STATUS_OK && call(ch2) == CGRPC_STATUS_OK,
        "calls on A");
  CHECK(calls_of(&srv[0]) == 2, "A served %d", calls_of(&srv[0]));
  CHECK(feed(r, srv, b, 1) == 0, "update B");
  CHECK(until_served_by(ch1, &srv[1]), "channel 1 did not follow");
  CHECK(until_served_by(ch2, &srv[1]), "channel 2 did not follow");
  cgrpc_channel_del(ch1);
  CHECK(call(ch2) == CGRPC_STATUS_OK, "channel 2 after channel 1 went");
  cgrpc_channel_del(ch2);
  cgrpc_resolver_del(r);
  it_servers_stop(srv, 2);
  CHECKS_DONE();
}

#define T(name)                                                                \
  cmocka_unit_test_setup_teardown(name, it_watchdog_setup, it_watchdog_teardown)

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      T(test_resolver_calls_follow_update),
      T(test_resolver_round_robin_spreads),
      T(test_resolver_unix_address),
      T(test_resolver_empty_list),
      T(test_resolver_fail),
      T(test_resolver_answer_from_callback),
      T(test_resolver_reresolve_after_drop),
      T(test_resolver_idle_asks_again),
      T(test_resolver_updates_from_thread),
      T(test_resolver_channel_deleted_while_updating),
      T(test_resolver_deleted_while_channel_runs),
      T(test_resolver_deleted_during_callback),
      T(test_resolver_deleted_in_callback),
      T(test_resolver_used_after_owner_gone),
      T(test_resolver_bad_input),
      T(test_resolver_shared_by_channels),
  };
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
