/* SPDX-License-Identifier: MIT */
/*
 * Keepalive and connection management (gRFC A8, A9; gRPC's
 * doc/keepalive.md), on loopback:
 *
 *  - our client behind a relay that stops forwarding: its calls fail
 *    UNAVAILABLE within keepalive time + timeout (plus a wide margin), and
 *    an idle connection is found dead only with permit_without_calls;
 *  - the server's ping policy against a raw HTTP/2 client that pings too
 *    often (GOAWAY ENHANCE_YOUR_CALM "too_many_pings"), and against our own
 *    client (which then doubles its keepalive time);
 *  - max connection idle, and max connection age with its grace: the
 *    GOAWAY, calls in flight finishing, new calls on a new connection.
 *
 * Times are short (hundreds of ms: the _for_testing setter) and every
 * bound is several times what the code needs, so a slow machine does not
 * make them flaky.
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
#include "relay.h"

#define SLOW IT_SLOW
#define BOUND_MS (10000 * SLOW)

#define CHECK IT_CHECK
#define CHECKS_DONE IT_CHECKS_DONE

/* ---- a log that remembers what it saw ---- */

typedef struct seen_log {
  atomic_int keepalive_closed; /* "keepalive ping not acknowledged" */
  atomic_int too_many_pings;   /* the channel doubled its time */
  char last_doubled[160];      /* the last such message */
  pthread_mutex_t lock;
} seen_log;

static seen_log g_log;

static void log_cb(cgrpc_log_level level, const char *msg, void *user_data) {
  seen_log *l = user_data;
  (void)level;
  if (getenv("CGRPC_TEST_LOG"))
    fprintf(stderr, "  [log] %s\n", msg);
  if (strstr(msg, "keepalive ping not acknowledged"))
    atomic_fetch_add(&l->keepalive_closed, 1);
  if (strstr(msg, "too_many_pings") && strstr(msg, "keepalive time now")) {
    pthread_mutex_lock(&l->lock);
    snprintf(l->last_doubled, sizeof l->last_doubled, "%s", msg);
    pthread_mutex_unlock(&l->lock);
    atomic_fetch_add(&l->too_many_pings, 1);
  }
}

static void log_reset(void) {
  atomic_store(&g_log.keepalive_closed, 0);
  atomic_store(&g_log.too_many_pings, 0);
  g_log.last_doubled[0] = '\0';
}

/* A channel to 127.0.0.1:|port| with keepalive |time_ms| (no 10 s
 * minimum), |timeout_ms| and |permit|. */
static cgrpc_channel *ka_channel(int port, int64_t time_ms, int64_t timeout_ms,
                                 int permit) {
  cgrpc_channel_options *o;
  cgrpc_channel *ch = NULL;
  char target[64];
  assert_int_equal(cgrpc_channel_options_new(&o), 0);
  cgrpc_channel_options_set_log(o, log_cb, &g_log);
  cgrpc_channel_options_set_keepalive_time_ms_for_testing(o, time_ms);
  cgrpc_channel_options_set_keepalive_timeout_ms(o, timeout_ms);
  cgrpc_channel_options_set_keepalive_permit_without_calls(o, permit);
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  assert_int_equal(cgrpc_channel_new(&ch, target, o), 0);
  cgrpc_channel_options_del(o);
  return ch;
}

/* An Echo; its code, and in |peer| the client address the server saw (so
 * that two calls tell whether they shared a connection). */
static cgrpc_status_code echo_peer(cgrpc_channel *ch, char *peer, size_t size) {
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_status st = {0};
  cgrpc_status_code code = it_echo(ch, "ka", &reply, &st);
  if (peer)
    snprintf(peer, size, "%s", reply && reply->peer ? reply->peer : "");
  if (code != CGRPC_STATUS_OK)
    print_message("  echo: %s: %s\n", cgrpc_status_code_name(code),
                  st.message ? st.message : "");
  if (reply)
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_status_clear(&st);
  return code;
}

/* Starts an Echo whose handler sleeps |sleep_ms|. */
static cgrpc_call *start_sleep(cgrpc_channel *ch, int sleep_ms, it_async *a) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  cgrpc_call *call = NULL;
  req.sleep_ms = sleep_ms;
  req.message = "sleepy";
  it_async_init(a);
  assert_int_equal(cgrpc__test__echo_service__echo__start(
                       ch, &req, NULL, it_async_done, a, &call),
                   0);
  return call;
}

static void server_start(it_server *s, cgrpc_server_options *o) {
  cgrpc_server_options_set_log(o, log_cb, &g_log);
  assert_int_equal(it_server_start(s, o, 0), 0);
  cgrpc_server_options_del(o);
}

static cgrpc_server_options *server_options(void) {
  cgrpc_server_options *o;
  assert_int_equal(cgrpc_server_options_new(&o), 0);
  return o;
}

/* ---- the client's keepalive ---- */

/* A call in flight when the server stops answering (a relay that stops
 * forwarding): UNAVAILABLE, naming keepalive, within time + timeout. */
static void test_keepalive_dead_peer_in_flight(void **state) {
  it_server s;
  relay r;
  cgrpc_channel *ch;
  cgrpc_call *call;
  it_async a;
  int64_t t0, took;
  (void)state;
  log_reset();
  assert_int_equal(it_server_start(&s, NULL, 0), 0);
  memset(&r, 0, sizeof r);
  r.out_port = s.port;
  relay_start(&r);
  ch = ka_channel(r.port, 300, 500, 0);
  CHECK(echo_peer(ch, NULL, 0) == CGRPC_STATUS_OK, "an Echo through the relay");
  call = start_sleep(ch, 20000, &a);
  CHECK(it_wait_flag(&s.stats.in_flight, 1, BOUND_MS) == 1,
        "the sleeping call never reached the server");
  atomic_store(&r.frozen, 1);
  t0 = it_now_ms();
  CHECK(it_async_wait(&a, BOUND_MS) == 1, "the call did not end");
  took = it_now_ms() - t0;
  print_message("  failed after %lld ms (time 300 + timeout 500): %s\n",
                (long long)took, a.status.message ? a.status.message : "");
  CHECK(a.status.code == CGRPC_STATUS_UNAVAILABLE, "status %s",
        cgrpc_status_code_name(a.status.code));
  CHECK(a.status.message && strstr(a.status.message, "keepalive"),
        "the message does not name keepalive: %s",
        a.status.message ? a.status.message : "(none)");
  CHECK(took < 800 + 2000 * SLOW, "%lld ms to find the dead peer",
        (long long)took);
  cgrpc_call_unref(call);
  it_async_fini(&a);
  cgrpc_channel_del(ch);
  relay_stop(&r);
  it_server_stop(&s, 0);
  CHECKS_DONE();
}

/* An idle connection to a server that went silent: found dead with
 * permit_without_calls, left alone without it (no calls, no pings: it
 * works again once the relay forwards again). */
static void idle_dead_peer(int permit) {
  it_server s;
  relay r;
  cgrpc_channel *ch;
  log_reset();
  assert_int_equal(it_server_start(&s, NULL, 0), 0);
  memset(&r, 0, sizeof r);
  r.out_port = s.port;
  relay_start(&r);
  ch = ka_channel(r.port, 300, 500, permit);
  CHECK(echo_peer(ch, NULL, 0) == CGRPC_STATUS_OK, "an Echo through the relay");
  atomic_store(&r.frozen, 1);
  if (permit) {
    CHECK(it_wait_flag(&g_log.keepalive_closed, 1, 800 + 2000 * SLOW) == 1,
          "an idle connection to a silent server was not closed");
  } else {
    it_sleep_ms(2000);
    CHECK(atomic_load(&g_log.keepalive_closed) == 0,
          "pings without calls, though permit_without_calls is off");
    atomic_store(&r.frozen, 0);
    CHECK(echo_peer(ch, NULL, 0) == CGRPC_STATUS_OK,
          "an Echo on the connection after the relay forwards again");
  }
  cgrpc_channel_del(ch);
  relay_stop(&r);
  it_server_stop(&s, 0);
  CHECKS_DONE();
}

static void test_keepalive_dead_peer_idle_permitted(void **state) {
  (void)state;
  idle_dead_peer(1);
}

static void test_keepalive_idle_not_permitted(void **state) {
  (void)state;
  idle_dead_peer(0);
}

/* ---- the server's ping policy ---- */

/* A raw client sends |n| PINGs in a row with no calls; returns 1 when the
 * server answered with GOAWAY ENHANCE_YOUR_CALM "too_many_pings" and
 * closed, 0 when every PING was acknowledged, -1 otherwise. */
static int ping_flood(int port, int n, int *acks) {
  h2raw_buf b;
  h2raw_rframe f;
  int fd = h2raw_connect(port, 0), i, goaway = 0, rv;
  *acks = 0;
  if (fd < 0)
    return -1;
  h2raw_buf_init(&b);
  h2raw_preface(&b);
  h2raw_settings(&b, NULL, 0);
  for (i = 0; i < n; i++)
    h2raw_ping(&b, 0, (const uint8_t *)"pingpong");
  rv = h2raw_send_buf(fd, &b);
  h2raw_buf_free(&b);
  /* Everything the server sends, until it closes (or 1 s of silence). */
  while (rv == 0 && (rv = h2raw_read_frame(fd, 1000 * SLOW, &f)) == 1) {
    h2raw_ack_settings(fd, &f);
    if (f.type == H2RAW_PING && (f.flags & H2RAW_FLAG_ACK))
      ++*acks;
    if (f.type == H2RAW_GOAWAY && h2raw_rframe_u32(&f, 4) == 0xb &&
        f.len == 8 + 14 && memcmp(f.payload + 8, "too_many_pings", 14) == 0)
      goaway = 1;
    h2raw_rframe_free(&f);
    rv = 0;
  }
  close(fd);
  if (goaway)
    return rv == 0 ? 1 : -1; /* and closed after the GOAWAY */
  return *acks == n && rv == -1 ? 0 : -1;
}

/* The default policy (5 minutes, none without calls, 2 strikes): the
 * fourth PING in a row gets the GOAWAY, and the connection is closed.
 * (nghttp2 acknowledges them all: ACKs go out before the GOAWAY.) */
static void test_keepalive_policy_too_many_pings(void **state) {
  it_server s;
  int acks, rv;
  (void)state;
  assert_int_equal(it_server_start(&s, NULL, 0), 0);
  rv = ping_flood(s.port, 6, &acks);
  CHECK(rv == 1, "no GOAWAY ENHANCE_YOUR_CALM too_many_pings and close (%d)",
        rv);
  it_server_stop(&s, 0);
  CHECKS_DONE();
}

/* A server that permits pings without calls at any rate acknowledges them
 * all; one with no strike limit too. */
static void test_keepalive_policy_permitted(void **state) {
  it_server s;
  cgrpc_server_options *o = server_options();
  int acks, rv;
  (void)state;
  cgrpc_server_options_set_keepalive_permit_without_calls(o, 1);
  cgrpc_server_options_set_keepalive_min_ping_interval_ms(o, 0);
  server_start(&s, o);
  rv = ping_flood(s.port, 10, &acks);
  CHECK(rv == 0 && acks == 10, "permitted pings: %d, %d acks", rv, acks);
  it_server_stop(&s, 0);
  o = server_options();
  cgrpc_server_options_set_max_ping_strikes(o, 0);
  server_start(&s, o);
  rv = ping_flood(s.port, 10, &acks);
  CHECK(rv == 0 && acks == 10, "no strike limit: %d, %d acks", rv, acks);
  it_server_stop(&s, 0);
  CHECKS_DONE();
}

/* Our client pinging every 200 ms, our server allowing one a second: the
 * server sends too_many_pings, the channel doubles its time (twice, for
 * two such connections), and calls go on on new connections. */
static void test_keepalive_client_doubles_time(void **state) {
  it_server s;
  cgrpc_server_options *o = server_options();
  cgrpc_channel *ch;
  (void)state;
  log_reset();
  cgrpc_server_options_set_keepalive_permit_without_calls(o, 1);
  cgrpc_server_options_set_keepalive_min_ping_interval_ms(o, 1000);
  server_start(&s, o);
  ch = ka_channel(s.port, 200, 1000, 1);
  CHECK(echo_peer(ch, NULL, 0) == CGRPC_STATUS_OK, "the first Echo");
  CHECK(it_wait_flag(&g_log.too_many_pings, 1, 2000 + 2000 * SLOW) == 1,
        "no too_many_pings GOAWAY seen by the channel");
  pthread_mutex_lock(&g_log.lock);
  print_message("  %s\n", g_log.last_doubled);
  CHECK(strstr(g_log.last_doubled, "now 400 ms") != NULL,
        "not doubled to 400 ms: %s", g_log.last_doubled);
  pthread_mutex_unlock(&g_log.lock);
  CHECK(echo_peer(ch, NULL, 0) == CGRPC_STATUS_OK,
        "an Echo on a new connection after the GOAWAY");
  CHECK(it_wait_flag(&g_log.too_many_pings, 2, 4000 + 2000 * SLOW) == 2,
        "no second too_many_pings at 400 ms");
  pthread_mutex_lock(&g_log.lock);
  CHECK(strstr(g_log.last_doubled, "now 800 ms") != NULL,
        "not doubled to 800 ms: %s", g_log.last_doubled);
  pthread_mutex_unlock(&g_log.lock);
  CHECK(echo_peer(ch, NULL, 0) == CGRPC_STATUS_OK, "a third Echo");
  cgrpc_channel_del(ch);
  it_server_stop(&s, 0);
  CHECKS_DONE();
}

/* ---- max connection idle and age ---- */

/* Idle 300 ms: calls close together share a connection; after a pause a
 * new one is used (the old one was sent GOAWAY and closed). */
static void test_keepalive_max_idle(void **state) {
  it_server s;
  cgrpc_server_options *o = server_options();
  cgrpc_channel *ch;
  char p1[64], p2[64], p3[64];
  (void)state;
  cgrpc_server_options_set_max_connection_idle_ms(o, 300);
  server_start(&s, o);
  ch = it_channel(&s, NULL);
  assert_non_null(ch);
  CHECK(echo_peer(ch, p1, sizeof p1) == CGRPC_STATUS_OK, "Echo 1");
  CHECK(echo_peer(ch, p2, sizeof p2) == CGRPC_STATUS_OK, "Echo 2");
  it_sleep_ms(1200);
  CHECK(echo_peer(ch, p3, sizeof p3) == CGRPC_STATUS_OK,
        "Echo after the idle GOAWAY");
  print_message("  peers %s %s %s\n", p1, p2, p3);
  CHECK(strcmp(p1, p2) == 0, "two calls in a row used two connections");
  CHECK(strcmp(p1, p3) != 0, "the idle connection was kept");
  cgrpc_channel_del(ch);
  it_server_stop(&s, 0);
  CHECKS_DONE();
}

/* Idle 300 ms against a raw client that never answers the drain's PING:
 * GOAWAY, then the connection is closed within the drain's grace (1 s),
 * not kept forever. */
static void test_keepalive_max_idle_unanswered_drain(void **state) {
  it_server s;
  cgrpc_server_options *o = server_options();
  h2raw_buf b;
  h2raw_rframe f;
  int fd, rv, goaway = 0, closed = 0;
  int64_t t0;
  (void)state;
  cgrpc_server_options_set_max_connection_idle_ms(o, 300);
  server_start(&s, o);
  fd = h2raw_connect(s.port, 0);
  assert_true(fd >= 0);
  h2raw_buf_init(&b);
  h2raw_preface(&b);
  h2raw_settings(&b, NULL, 0);
  assert_int_equal(h2raw_send_buf(fd, &b), 0);
  h2raw_buf_free(&b);
  t0 = it_now_ms();
  /* Read (SETTINGS acknowledged, PINGs not) until the server closes. */
  while (it_now_ms() - t0 < 8000 * SLOW) {
    rv = h2raw_read_frame(fd, 500, &f);
    if (rv == 0) {
      closed = 1;
      break;
    }
    if (rv == 1) {
      h2raw_ack_settings(fd, &f);
      goaway |= f.type == H2RAW_GOAWAY;
      h2raw_rframe_free(&f);
    }
  }
  print_message("  GOAWAY %s, closed after %lld ms\n",
                goaway ? "seen" : "not seen", (long long)(it_now_ms() - t0));
  CHECK(goaway, "no GOAWAY after 300 ms idle");
  CHECK(closed, "the connection was still open %lld ms later",
        (long long)(it_now_ms() - t0));
  CHECK(it_now_ms() - t0 < 300 + 1000 + 2000 * SLOW,
        "closed only after %lld ms", (long long)(it_now_ms() - t0));
  close(fd);
  it_server_stop(&s, 0);
  CHECKS_DONE();
}

/* Age 400 ms, grace 3 s: a call sleeping 1.5 s from the start finishes on
 * the old connection; a call made after the GOAWAY goes on a new one. */
static void test_keepalive_max_age_drains(void **state) {
  it_server s;
  cgrpc_server_options *o = server_options();
  cgrpc_channel *ch;
  cgrpc_call *call;
  it_async a;
  char p1[64], p2[64];
  (void)state;
  cgrpc_server_options_set_max_connection_age_ms(o, 400, 3000 * SLOW);
  server_start(&s, o);
  ch = it_channel(&s, NULL);
  assert_non_null(ch);
  CHECK(echo_peer(ch, p1, sizeof p1) == CGRPC_STATUS_OK, "Echo 1");
  call = start_sleep(ch, 1500, &a);
  it_sleep_ms(800); /* past the age (400 ms +10%) */
  CHECK(echo_peer(ch, p2, sizeof p2) == CGRPC_STATUS_OK,
        "an Echo after the max-age GOAWAY");
  CHECK(strcmp(p1, p2) != 0, "no new connection after max age (%s)", p2);
  CHECK(it_async_wait(&a, BOUND_MS) == 1, "the draining call did not end");
  CHECK(a.status.code == CGRPC_STATUS_OK,
        "the call in flight failed within the grace: %s %s",
        cgrpc_status_code_name(a.status.code),
        a.status.message ? a.status.message : "");
  cgrpc_call_unref(call);
  it_async_fini(&a);
  cgrpc_channel_del(ch);
  it_server_stop(&s, 0);
  CHECKS_DONE();
}

/* Age 300 ms, grace 500 ms: a call sleeping 20 s is cut off when the
 * grace is over, and the channel goes on on a new connection. */
static void test_keepalive_max_age_grace_over(void **state) {
  it_server s;
  cgrpc_server_options *o = server_options();
  cgrpc_channel *ch;
  cgrpc_call *call;
  it_async a;
  int64_t t0, took;
  (void)state;
  cgrpc_server_options_set_max_connection_age_ms(o, 300, 500);
  server_start(&s, o);
  ch = it_channel(&s, NULL);
  assert_non_null(ch);
  t0 = it_now_ms();
  call = start_sleep(ch, 20000, &a);
  CHECK(it_async_wait(&a, BOUND_MS) == 1, "the call outlived the grace");
  took = it_now_ms() - t0;
  print_message("  cut off after %lld ms: %s %s\n", (long long)took,
                cgrpc_status_code_name(a.status.code),
                a.status.message ? a.status.message : "");
  CHECK(a.status.code == CGRPC_STATUS_UNAVAILABLE, "status %s",
        cgrpc_status_code_name(a.status.code));
  CHECK(took < 830 + 2000 * SLOW, "cut off only after %lld ms",
        (long long)took);
  CHECK(echo_peer(ch, NULL, 0) == CGRPC_STATUS_OK, "an Echo afterwards");
  cgrpc_call_unref(call);
  it_async_fini(&a);
  cgrpc_channel_del(ch);
  it_server_stop(&s, 0);
  CHECKS_DONE();
}

#define T(name)                                                                \
  cmocka_unit_test_setup_teardown(name, it_watchdog_setup, it_watchdog_teardown)

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      T(test_keepalive_dead_peer_in_flight),
      T(test_keepalive_dead_peer_idle_permitted),
      T(test_keepalive_idle_not_permitted),
      T(test_keepalive_policy_too_many_pings),
      T(test_keepalive_policy_permitted),
      T(test_keepalive_client_doubles_time),
      T(test_keepalive_max_idle),
      T(test_keepalive_max_idle_unanswered_drain),
      T(test_keepalive_max_age_drains),
      T(test_keepalive_max_age_grace_over),
  };
  pthread_mutex_init(&g_log.lock, NULL);
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
