/* SPDX-License-Identifier: MIT */
/*
 * Lifetime regression tests: objects used after their owner is gone, from
 * inside their own callbacks, from other threads, and while the peer has
 * stopped reading (ARCHITECTURE.md, "Lifetimes").  Each test names the
 * defect of the lifetime review it covers (D1 ... D10), or the adversarial
 * case it adds.  On a library with the defect a test crashes (under ASan),
 * hangs or fails an assertion; every wait is bounded, so a hang becomes a
 * failure:
 *
 *  - blocking library calls that may never return run on a helper thread
 *    (it_bg_start) that the test waits for a bounded time, then abandons;
 *  - a watchdog (alarm) ends the process if a test is stuck anyway.
 *
 * Outcomes are checked with CHECK(), which records a failure and lets the
 * test clean up (stop its servers) before it fails, so one broken test does
 * not leave a spinning server behind for the next.  Objects a stuck library
 * thread may still touch are leaked on purpose.
 *
 * Each test is also its own CTest entry (the executable takes a cmocka test
 * filter as its argument): a crash in one does not hide the others.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "h2raw.h"
#include "stream_harness.h"

/* Sanitizers slow everything down; bounds stretch with them. */
#define SLOW IT_SLOW

/* The longest any single wait in a test may take. */
#define BOUND_MS (10000 * SLOW)

static const cgrpc_call_options guard = {.timeout_ms = 30000};

/* ---- soft checks (harness.h) ---- */

#define CHECK IT_CHECK
#define CHECKS_DONE IT_CHECKS_DONE

/* The name of a library return value: an error's, or "ok" for >= 0. */
static const char *rv_name(int rv) {
  return rv >= 0 ? "ok" : cgrpc_err_name(rv);
}

/* Checks that a library call returned |want|. */
#define CHECK_RV(rv, want, what)                                               \
  CHECK((rv) == (want), "%s returned %d (%s), expected %d (%s)", (what),       \
        (int)(rv), rv_name(rv), (int)(want), rv_name(want))

#define CHECK_CODE(code, want, what)                                           \
  CHECK((int)(code) == (int)(want), "%s: status %s, expected %s", (what),      \
        cgrpc_status_code_name(code), cgrpc_status_code_name(want))

/* ---- watchdog ---- */

/* Stops |srv| (grace 0) without hanging the test: the server is abandoned
 * (not freed) when shutting it down does not return. */
static void st_server_stop_bounded(st_server *srv) {
  if (!srv->it.server)
    return;
  if (it_server_del_bounded(srv->it.server, BOUND_MS) < 0)
    print_message("  (server abandoned: cgrpc_server_del did not return)\n");
  srv->it.server = NULL;
}

/* ---- servers with test-local servicers ---- */

typedef struct lt_config {
  int max_workers; /* < 0: the default pool */
  cgrpc_log_cb log_cb;
  void *log_user_data;
  /* Registers the services; |reg_user_data| is passed on. */
  int (*reg)(cgrpc_server *server, void *reg_user_data);
  void *reg_user_data;
} lt_config;

typedef struct lt_server {
  cgrpc_server *server;
  int port;
  char target[64];
} lt_server;

/* Creates a server on 127.0.0.1:0 as |cfg| says and starts it; |*srv_out|
 * (when not NULL) gets the server before anything is registered, so that a
 * servicer's user_data can carry it. */
static int lt_server_start(lt_server *s, const lt_config *cfg,
                           cgrpc_server **srv_out) {
  cgrpc_server_options *o = NULL;
  int rv;
  memset(s, 0, sizeof *s);
  if ((rv = cgrpc_server_options_new(&o)) != 0)
    return rv;
  if (cfg->max_workers >= 0)
    cgrpc_server_options_set_max_workers(o, cfg->max_workers);
  if (cfg->log_cb)
    cgrpc_server_options_set_log(o, cfg->log_cb, cfg->log_user_data);
  else if (getenv("CGRPC_TEST_LOG"))
    cgrpc_server_options_set_log(o, cgrpc_log_stderr, NULL);
  rv = cgrpc_server_new(&s->server, o);
  cgrpc_server_options_del(o);
  if (rv != 0)
    return rv;
  if (srv_out)
    *srv_out = s->server;
  if ((rv = cgrpc_server_add_insecure_port(s->server, "127.0.0.1:0",
                                           &s->port)) != 0 ||
      (rv = cfg->reg(s->server, cfg->reg_user_data)) != 0 ||
      (rv = cgrpc_server_start(s->server)) != 0) {
    cgrpc_server_del(s->server);
    s->server = NULL;
    return rv;
  }
  snprintf(s->target, sizeof s->target, "127.0.0.1:%d", s->port);
  return 0;
}

/* A channel to |target| with no send limit. */
static cgrpc_channel *lt_channel(const char *target) {
  cgrpc_channel *ch = NULL;
  cgrpc_channel_options *o = NULL;
  if (cgrpc_channel_options_new(&o) != 0)
    return NULL;
  cgrpc_channel_options_set_max_send_message_length(o, -1);
  if (getenv("CGRPC_TEST_LOG"))
    cgrpc_channel_options_set_log(o, cgrpc_log_stderr, NULL);
  if (cgrpc_channel_new(&ch, target, o) != 0)
    ch = NULL;
  cgrpc_channel_options_del(o);
  return ch;
}

/* Both test services on one server: EchoService counting in |echo| and the
 * blocking StreamService servicer counting in |stream|. */
typedef struct both_stats {
  echo_stats echo;
  stream_stats stream;
} both_stats;

static int reg_both(cgrpc_server *server, void *user_data) {
  both_stats *b = user_data;
  int rv = echo_service_register(server, &b->echo);
  return rv ? rv : stream_service_register(server, &b->stream);
}

/* ---- small client helpers ---- */

static void chunk_init(chunk_t *c, int64_t seq, uint8_t *buf, size_t len) {
  cgrpc__test__chunk__init(c);
  stream_fill(buf, len, seq);
  c->seq = seq;
  c->data.data = buf;
  c->data.len = len;
}

/* A blocking Echo of |msg| on |ch|: its status code, DATA_LOSS when the
 * reply is not the echo.  (The status is taken from a cgrpc_status:
 * cgrpc_unary_call() with a NULL status returns OK whatever happened.) */
static cgrpc_status_code echo_code(cgrpc_channel *ch, const char *msg) {
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_status st = {0};
  cgrpc_status_code code;
  it_echo(ch, msg, &reply, &st);
  code = st.code;
  if (code == CGRPC_STATUS_OK && (!reply || strcmp(reply->message, msg) != 0))
    code = CGRPC_STATUS_DATA_LOSS;
  if (reply)
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_status_clear(&st);
  return code;
}

/* ==== D1: the server loop spins at 100% CPU ==========================
 *
 * A client opens huge windows, asks Flood for far more than fits in any
 * socket buffer, and never reads.  Once the call's deadline has passed the
 * server has nothing it can do for that connection until the client reads,
 * so it must sleep: its threads may not burn CPU.  Then shutdown must not
 * hang on the stuck connection.
 *
 * (Seen on the current code: the deadline empties the call's send queue
 * while nghttp2 still holds a DATA frame whose length the queue promised;
 * when the socket next takes bytes, the connection's copy loop waits for
 * bytes that never come.  Whether the kernel lets the socket move again
 * without the client reading is a matter of timing, so the second form has
 * the client read a little after the deadline, then stop again.)
 *
 * The bound is well under what a spinning thread burns even on a loaded
 * two-core machine, and far above what a sleeping server uses. */
static void d1_run(int client_reads_later) {
  download_t req = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
  st_server srv;
  h2raw_buf b, msg;
  double cpu;
  int64_t took;
  int fd;
  assert_int_equal(st_server_start(&srv, NULL), 0);
  fd = h2raw_connect(srv.it.port, 4096);
  assert_true(fd >= 0);

  h2raw_buf_init(&b);
  h2raw_buf_init(&msg);
  it_raw_client_greeting(&b);
  it_raw_request_headers(&b, 1, "/cgrpc.test.StreamService/Flood", srv.it.port,
                         "1S", NULL);
  /* The second form sends chunks larger than the send queue's limit,
   * which keeps the queue from running dry even when the handler is slower
   * than the loop (sanitizer builds). */
  req.count = 100000;
  req.size = client_reads_later ? 1 << 20 : 16384;
  it_raw_grpc_message(&msg, &req.base);
  h2raw_data(&b, 1, 1, msg.data, msg.len);
  assert_int_equal(h2raw_send_buf(fd, &b), 0);
  h2raw_buf_free(&b);
  h2raw_buf_free(&msg);

  CHECK(it_wait_flag(&srv.stats.handlers, 1, BOUND_MS) == 1,
        "the Flood handler never ran (the raw request was refused?)");
  /* Past the 1 s deadline, with the socket long full. */
  it_sleep_ms(client_reads_later ? 1500 : 2500);
  if (client_reads_later) {
    long n = h2raw_drain(fd, 300);
    print_message("  the client read %ld bytes after the deadline\n", n);
    it_sleep_ms(700);
  }
  {
    double t0 = st_now_s(), wall;
    cpu = it_cpu_while_sleeping_s(1000);
    wall = st_now_s() - t0;
    print_message("  cpu %.3f s over %.3f s, %lld chunks sent\n", cpu, wall,
                  (long long)atomic_load(&srv.stats.sent));
  }
  CHECK(cpu < 0.2,
        "the process burnt %.2f s of CPU in 1 s with a client that does not "
        "read: a server thread spins",
        cpu);

  took = it_server_shutdown_bounded(srv.it.server, 0, BOUND_MS);
  CHECK(took >= 0, "cgrpc_server_shutdown(grace 0) did not return");
  close(fd);
  if (took >= 0)
    st_server_stop(&srv, 0);
  CHECKS_DONE();
}

static void test_lifetime_d1_unread_flood_no_spin(void **state) {
  (void)state;
  d1_run(0);
}

/* D1 with a client that reads for a moment after the deadline. */
static void test_lifetime_d1_flood_client_reads_later(void **state) {
  (void)state;
  d1_run(1);
}

/* ==== raw peer: a server that never reads ============================ */

typedef struct raw_peer {
  int lfd, port;
  atomic_int fd;
  atomic_int accepted;
  atomic_int drain; /* nonzero: read (and drop) what arrives */
  atomic_int stop;
  atomic_llong drained;
  it_bg_job *job;
} raw_peer;

/* Accepts one connection, sends SETTINGS with the largest stream window
 * and opens the connection window likewise, then does nothing (or, once
 * |drain| is set, reads) until |stop|. */
static void raw_peer_main(void *arg) {
  raw_peer *p = arg;
  h2raw_setting s = {H2RAW_SETTINGS_INITIAL_WINDOW_SIZE, H2RAW_MAX_WINDOW};
  h2raw_buf b;
  int fd = h2raw_accept(p->lfd, 4096, BOUND_MS);
  if (fd < 0)
    return;
  atomic_store(&p->fd, fd);
  h2raw_buf_init(&b);
  h2raw_settings(&b, &s, 1);
  h2raw_window_update(&b, 0, H2RAW_MAX_WINDOW - H2RAW_DEFAULT_WINDOW);
  h2raw_send_buf(fd, &b);
  h2raw_buf_free(&b);
  atomic_store(&p->accepted, 1);
  while (!atomic_load(&p->stop)) {
    if (atomic_load(&p->drain)) {
      long n = h2raw_drain(fd, 20);
      if (n > 0)
        atomic_fetch_add(&p->drained, n);
    } else {
      it_sleep_ms(10);
    }
  }
  close(fd);
}

static raw_peer *raw_peer_start(void) {
  raw_peer *p = calloc(1, sizeof *p);
  assert_non_null(p);
  atomic_init(&p->fd, -1);
  p->lfd = h2raw_listen(&p->port, 4096);
  assert_true(p->lfd >= 0);
  p->job = it_bg_start(raw_peer_main, p);
  return p;
}

/* Ends the peer (closing its socket) and frees it. */
static void raw_peer_stop(raw_peer *p) {
  atomic_store(&p->stop, 1);
  if (!it_bg_wait(p->job, BOUND_MS))
    return; /* cannot happen: the peer never blocks for long */
  close(p->lfd);
  free(p);
}

static cgrpc_channel *raw_peer_channel(const raw_peer *p) {
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", p->port);
  return lt_channel(target);
}

/* A 64 MiB Echo request: far more than the sockets hold. */
#define HUGE_PAYLOAD (64u << 20)

typedef struct huge_call {
  cgrpc_channel *ch;
  int64_t timeout_ms;
  cgrpc_status_code code;
  cgrpc_status status;
  int64_t took_ms;
} huge_call;

static void huge_call_main(void *arg) {
  huge_call *h = arg;
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_call_options opts = {.timeout_ms = 0};
  int64_t t0;
  req.message = "huge";
  req.payload.len = HUGE_PAYLOAD;
  req.payload.data = calloc(1, HUGE_PAYLOAD);
  if (!req.payload.data) {
    h->code = CGRPC_STATUS_RESOURCE_EXHAUSTED;
    return;
  }
  opts.timeout_ms = h->timeout_ms;
  t0 = it_now_ms();
  h->code = cgrpc__test__echo_service__echo__call(h->ch, &req, &reply, &opts,
                                                  &h->status);
  h->took_ms = it_now_ms() - t0;
  free(req.payload.data);
  if (reply)
    protobuf_c_message_free_unpacked(&reply->base, NULL);
}

/* ==== D2: client use-after-free in body_peek =========================
 *
 * A unary call whose 64 MiB request is stuck half-sent (the server stopped
 * reading) ends by its deadline.  nghttp2 still holds the request body's
 * data source (the call) for the DATA frame it could not finish: the call
 * must not be freed under it.  The outcome is DEADLINE_EXCEEDED in time,
 * and the channel can be deleted. */
static void d2_deadline(int peer_resumes) {
  raw_peer *peer = raw_peer_start();
  huge_call *h = calloc(1, sizeof *h);
  it_bg_job *job;
  int64_t took;
  assert_non_null(h);
  h->ch = raw_peer_channel(peer);
  assert_non_null(h->ch);
  /* Packing 64 MiB counts against the deadline too: much slower under the
   * sanitizers (ThreadSanitizer took more than 2 s on a 2-core box, and
   * the call then ended before it connected). */
  h->timeout_ms = SLOW > 1 ? 2000 * SLOW : 700;
  job = it_bg_start(huge_call_main, h);
  if (!it_bg_wait(job, 5000 * SLOW)) {
    CHECK(0, "a unary call with a %lld ms deadline did not return in %d ms",
          (long long)h->timeout_ms, 5000 * SLOW);
    raw_peer_stop(peer);
    CHECKS_DONE(); /* |h| and the channel stay with the stuck thread */
    return;
  }
  CHECK_CODE(h->code, CGRPC_STATUS_DEADLINE_EXCEEDED, "huge unary call");
  CHECK(h->took_ms < 3000 * SLOW, "the deadline was reported after %lld ms",
        (long long)h->took_ms);
  CHECK(atomic_load(&peer->accepted), "the channel never connected");
  if (peer_resumes) {
    /* The peer reads again: the stuck DATA frame goes on from where it
     * stopped, out of whatever memory nghttp2 was promised. */
    atomic_store(&peer->drain, 1);
    it_sleep_ms(1000);
    print_message("  the peer read %lld bytes after the deadline\n",
                  (long long)atomic_load(&peer->drained));
  }
  took = it_channel_del_bounded(h->ch, BOUND_MS);
  CHECK(took >= 0, "cgrpc_channel_del did not return");
  CHECK(took < 2000 * SLOW, "cgrpc_channel_del took %lld ms", (long long)took);
  raw_peer_stop(peer);
  cgrpc_status_clear(&h->status);
  free(h);
  CHECKS_DONE();
}

static void test_lifetime_d2_deadline_unread_peer(void **state) {
  (void)state;
  d2_deadline(0);
}

/* D2 again, with a peer that resumes reading once the call has ended. */
static void test_lifetime_d2_deadline_peer_resumes(void **state) {
  (void)state;
  d2_deadline(1);
}

/* D2 with cgrpc_call_cancel() instead of the deadline. */
static void d2_cancel(int peer_resumes) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  raw_peer *peer = raw_peer_start();
  cgrpc_channel *ch = raw_peer_channel(peer);
  it_async *a = calloc(1, sizeof *a);
  cgrpc_call *call = NULL;
  int64_t took, t0;
  assert_non_null(ch);
  assert_non_null(a);
  it_async_init(a);
  req.message = "huge";
  req.payload.len = HUGE_PAYLOAD;
  req.payload.data = calloc(1, HUGE_PAYLOAD);
  assert_non_null(req.payload.data);
  assert_int_equal(cgrpc__test__echo_service__echo__start(
                       ch, &req, NULL, it_async_done, a, &call),
                   0);
  free(req.payload.data);
  CHECK(it_wait_flag(&peer->accepted, 1, 5000 * SLOW),
        "the channel never connected");
  it_sleep_ms(300); /* the request's DATA fills the windows and stops */
  t0 = it_now_ms();
  cgrpc_call_cancel(call);
  if (it_async_wait(a, 3000 * SLOW) != 1) {
    CHECK(0, "a cancelled call did not complete");
    raw_peer_stop(peer);
    CHECKS_DONE(); /* the call, |a| and the channel are abandoned */
    return;
  }
  CHECK_CODE(a->status.code, CGRPC_STATUS_CANCELLED, "cancelled huge call");
  CHECK(a->done_at_ms - t0 < 2000 * SLOW, "cancel took %lld ms",
        (long long)(a->done_at_ms - t0));
  cgrpc_call_unref(call); /* the last reference */
  if (peer_resumes) {
    atomic_store(&peer->drain, 1);
    it_sleep_ms(1000);
    print_message("  the peer read %lld bytes after the cancel\n",
                  (long long)atomic_load(&peer->drained));
  }
  took = it_channel_del_bounded(ch, BOUND_MS);
  CHECK(took >= 0, "cgrpc_channel_del did not return");
  CHECK(took < 2000 * SLOW, "cgrpc_channel_del took %lld ms", (long long)took);
  raw_peer_stop(peer);
  it_async_fini(a);
  free(a);
  CHECKS_DONE();
}

static void test_lifetime_d2_cancel_unread_peer(void **state) {
  (void)state;
  d2_cancel(0);
}

static void test_lifetime_d2_cancel_peer_resumes(void **state) {
  (void)state;
  d2_cancel(1);
}

/* ==== D3: kick_task reads a freed connection =========================
 *
 * A cancelled streaming call keeps pointing at its connection.  Once that
 * connection is gone (the server went away; the channel reconnected to a new
 * one), operations on the call post a kick whose task must not touch the old
 * connection. */

/* Stops |srv|, starts an Echo server on the same port and makes the channel
 * connect to it, so that the old connection is closed and freed and a new
 * one (possibly at the same address) is in use.  |*next| is the new server. */
static void d3_replace_server(st_server *srv, it_server *next,
                              cgrpc_channel *ch) {
  int port = srv->it.port, i;
  cgrpc_status_code code = CGRPC_STATUS_UNAVAILABLE;
  st_server_stop(srv, 0);
  assert_int_equal(it_server_start(next, NULL, port), 0);
  it_sleep_ms(200);
  /* The first call may still meet the old connection: retry a little. */
  for (i = 0; i < 5 && code != CGRPC_STATUS_OK; i++) {
    code = echo_code(ch, "reconnect");
    if (code != CGRPC_STATUS_OK)
      it_sleep_ms(300);
  }
  CHECK_CODE(code, CGRPC_STATUS_OK, "Echo on the new server");
}

static void test_lifetime_d3_kick_after_conn_freed(void **state) {
  st_server srv;
  it_server next;
  cgrpc_channel *ch;
  cgrpc_call *call = NULL;
  chunk_t c, *echo = NULL;
  cgrpc_status st = {0};
  uint8_t buf[64];
  int rv;
  (void)state;
  assert_int_equal(st_server_start(&srv, NULL), 0);
  ch = st_channel(&srv, 0);
  assert_non_null(ch);
  assert_int_equal(cgrpc__test__stream_service__chat__open(ch, NULL, &call), 0);
  chunk_init(&c, 0, buf, sizeof buf);
  assert_int_equal(cgrpc__test__stream_service__chat__write(call, &c), 0);
  assert_int_equal(cgrpc__test__stream_service__chat__read(call, &echo), 1);
  protobuf_c_message_free_unpacked(&echo->base, NULL);
  echo = NULL;
  cgrpc_call_cancel(call);
  it_sleep_ms(100);

  d3_replace_server(&srv, &next, ch);

  /* Each of these may post a kick for the call. */
  cgrpc_call_writes_done(call);
  rv = cgrpc__test__stream_service__chat__write(call, &c);
  CHECK(rv == CGRPC_ERR_CLOSED || rv == CGRPC_ERR_INVALID_STATE,
        "write after the end returned %d (%s)", rv, rv_name(rv));
  rv = cgrpc__test__stream_service__chat__read(call, &echo);
  CHECK_RV(rv, 0, "read after the end");
  if (echo)
    protobuf_c_message_free_unpacked(&echo->base, NULL);
  CHECK_CODE(cgrpc_call_finish(call, &st), CGRPC_STATUS_CANCELLED,
             "finish of the cancelled call");
  cgrpc_status_clear(&st);
  it_sleep_ms(100); /* let the kicks run */
  cgrpc_call_unref(call);
  it_sleep_ms(50);

  cgrpc_channel_del(ch);
  it_server_stop(&next, 0);
  CHECKS_DONE();
}

/* The async call of D3: callbacks count into this. */
typedef struct d3_async {
  atomic_int reads, writes_ok, writes_failed, done;
  cgrpc_status status;
} d3_async;

static void d3_on_read(cgrpc_call *call, ProtobufCMessage *msg, void *ud) {
  d3_async *d = ud;
  (void)call;
  if (msg) {
    protobuf_c_message_free_unpacked(msg, NULL);
    atomic_fetch_add(&d->reads, 1);
  }
}

static void d3_on_write_done(cgrpc_call *call, int ok, void *ud) {
  d3_async *d = ud;
  (void)call;
  atomic_fetch_add(ok ? &d->writes_ok : &d->writes_failed, 1);
}

static void d3_on_done(cgrpc_call *call, const cgrpc_status *status, void *ud) {
  d3_async *d = ud;
  (void)status;
  if (atomic_load(&d->done) == 0)
    cgrpc_call_take_status(call, &d->status);
  atomic_fetch_add(&d->done, 1);
}

static void test_lifetime_d3_kick_after_conn_freed_async(void **state) {
  static const cgrpc_call_callbacks cbs = {d3_on_read, d3_on_write_done,
                                           d3_on_done};
  st_server srv;
  it_server next;
  cgrpc_channel *ch;
  cgrpc_call *call = NULL;
  d3_async *d = calloc(1, sizeof *d);
  chunk_t c;
  uint8_t buf[64];
  int rv;
  (void)state;
  assert_non_null(d);
  assert_int_equal(st_server_start(&srv, NULL), 0);
  ch = st_channel(&srv, 0);
  assert_non_null(ch);
  assert_int_equal(
      cgrpc__test__stream_service__chat__open_async(ch, NULL, &cbs, d, &call),
      0);
  chunk_init(&c, 0, buf, sizeof buf);
  assert_int_equal(cgrpc__test__stream_service__chat__write_async(call, &c), 0);
  assert_int_equal(cgrpc_call_read_async(call), 0);
  assert_int_equal(it_wait_flag(&d->reads, 1, BOUND_MS), 1);
  cgrpc_call_cancel(call);
  assert_int_equal(it_wait_flag(&d->done, 1, BOUND_MS), 1);
  CHECK_CODE(d->status.code, CGRPC_STATUS_CANCELLED, "on_done after cancel");

  d3_replace_server(&srv, &next, ch);

  cgrpc_call_writes_done(call);
  rv = cgrpc__test__stream_service__chat__write_async(call, &c);
  CHECK(rv == CGRPC_ERR_CLOSED || rv == CGRPC_ERR_INVALID_STATE,
        "write_async after the end returned %d (%s)", rv, rv_name(rv));
  rv = cgrpc_call_read_async(call);
  CHECK(rv == CGRPC_ERR_CLOSED || rv == CGRPC_ERR_INVALID_STATE,
        "read_async after the end returned %d (%s)", rv, rv_name(rv));
  it_sleep_ms(100); /* let the kicks run */
  cgrpc_call_unref(call);
  it_sleep_ms(50);
  CHECK(atomic_load(&d->done) == 1, "on_done ran %d times",
        atomic_load(&d->done));

  cgrpc_channel_del(ch);
  it_server_stop(&next, 0);
  cgrpc_status_clear(&d->status);
  free(d);
  CHECKS_DONE();
}

/* ==== D4: cgrpc_channel_del while call references are held ===========
 *
 * cgrpc_channel_del() cancels the calls in flight and returns, but the
 * application may still hold references to them (and threads blocked in
 * them).  Those calls must stay usable, as ended calls, until released:
 * nothing they do may touch the freed channel. */

enum { D4_DOWNLOAD, D4_CHAT, D4_BLOCKING_UNARY };

/* One application thread with a call in flight.  The thread blocks in the
 * call, reports what that returned, waits until the test has deleted the
 * channel, then uses and releases its call. */
typedef struct d4_user {
  int kind;
  cgrpc_channel *ch;
  atomic_int blocked;      /* the call is open; the thread is about to block */
  atomic_int returned;     /* the blocking operation returned */
  atomic_int channel_gone; /* set by the test: cgrpc_channel_del returned */
  atomic_int finished;     /* the call was finished and released */
  int open_rv, read_rv;
  cgrpc_status_code unary_code, finish_code, finish_again;
  int write_rv, writes_done_rv;
} d4_user;

static void d4_user_main(void *arg) {
  d4_user *u = arg;
  cgrpc_call *call = NULL;
  ProtobufCMessage *msg = NULL;
  uint8_t buf[32];
  chunk_t c;
  chunk_init(&c, 0, buf, sizeof buf);
  if (u->kind == D4_BLOCKING_UNARY) {
    Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
    Cgrpc__Test__EchoReply *reply = NULL;
    cgrpc_status st = {0};
    req.message = "slow";
    req.sleep_ms = 5000;
    atomic_store(&u->blocked, 1);
    /* The code is taken from |st|: with a NULL status the function's return
     * value is that of the cleared status (always OK). */
    cgrpc__test__echo_service__echo__call(u->ch, &req, &reply, NULL, &st);
    u->unary_code = st.code;
    cgrpc_status_clear(&st);
    if (reply)
      protobuf_c_message_free_unpacked(&reply->base, NULL);
    atomic_store(&u->returned, 1);
    atomic_store(&u->finished, 1);
    return;
  }
  if (u->kind == D4_DOWNLOAD) {
    download_t req = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
    req.count = 3;
    req.size = 10;
    req.gate = 1; /* the servicer holds the first chunk */
    u->open_rv =
        cgrpc__test__stream_service__download__open(u->ch, &req, NULL, &call);
  } else {
    /* A chat whose echo the servicer delays by 3 s. */
    u->open_rv = cgrpc__test__stream_service__chat__open(u->ch, NULL, &call);
    if (u->open_rv == 0) {
      c.sleep_ms = 3000;
      u->write_rv = cgrpc__test__stream_service__chat__write(call, &c);
      c.sleep_ms = 0;
    }
  }
  if (u->open_rv != 0) {
    atomic_store(&u->returned, 1);
    atomic_store(&u->finished, 1);
    return;
  }
  atomic_store(&u->blocked, 1);
  u->read_rv = cgrpc_call_read(call, &msg);
  if (msg)
    protobuf_c_message_free_unpacked(msg, NULL);
  atomic_store(&u->returned, 1);
  /* Only once the channel is gone: everything below runs on a call whose
   * channel has been deleted. */
  it_wait_flag(&u->channel_gone, 1, BOUND_MS);
  u->finish_code = cgrpc_call_finish(call, NULL);
  if (u->kind == D4_DOWNLOAD) {
    download_t again = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
    u->write_rv = cgrpc_call_write(call, &again.base);
  } else {
    u->write_rv = cgrpc_call_write(call, &c.base);
  }
  u->writes_done_rv = cgrpc_call_writes_done(call);
  cgrpc_call_cancel(call);
  u->finish_again = cgrpc_call_finish(call, NULL);
  cgrpc_call_unref(call);
  atomic_store(&u->finished, 1);
}

/* Runs |n| users of |kinds| against a server with both services, deletes
 * the channel under them and checks what each saw. */
static void d4_run(const int *kinds, int n, it_async *unary, int n_unary) {
  both_stats *stats = calloc(1, sizeof *stats);
  /* A worker for every handler: all are in flight at once. */
  lt_config cfg = {16, NULL, NULL, reg_both, NULL};
  lt_server srv;
  cgrpc_channel *ch;
  d4_user *users = calloc((size_t)n, sizeof *users);
  it_bg_job **jobs = calloc((size_t)n, sizeof *jobs);
  cgrpc_call **unary_calls = calloc((size_t)n_unary + 1, sizeof *unary_calls);
  int64_t took;
  int i, abandoned = 0;
  assert_non_null(stats);
  assert_non_null(users);
  assert_non_null(jobs);
  assert_non_null(unary_calls);
  echo_stats_reset(&stats->echo);
  stream_stats_reset(&stats->stream);
  cfg.reg_user_data = stats;
  assert_int_equal(lt_server_start(&srv, &cfg, NULL), 0);
  ch = lt_channel(srv.target);
  assert_non_null(ch);

  for (i = 0; i < n; i++) {
    users[i].kind = kinds[i];
    users[i].ch = ch;
    jobs[i] = it_bg_start(d4_user_main, &users[i]);
  }
  /* Async unary calls in flight too, half of them with a reference kept. */
  for (i = 0; i < n_unary; i++) {
    Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
    req.message = "slow async";
    req.sleep_ms = 5000;
    it_async_init(&unary[i]);
    assert_int_equal(cgrpc__test__echo_service__echo__start(
                         ch, &req, NULL, it_async_done, &unary[i],
                         i % 2 ? &unary_calls[i] : NULL),
                     0);
  }
  for (i = 0; i < n; i++)
    CHECK(it_wait_flag(&users[i].blocked, 1, BOUND_MS) == 1,
          "user %d never got its call open", i);
  /* Once every handler runs, every call is surely in flight (and no user
   * thread is still about to start one on the channel). */
  {
    int n_echo = n_unary, n_stream = 0;
    for (i = 0; i < n; i++) {
      if (kinds[i] == D4_BLOCKING_UNARY)
        n_echo++;
      else
        n_stream++;
    }
    CHECK(it_wait_flag(&stats->echo.in_flight, n_echo, BOUND_MS) >= n_echo,
          "only %d of %d Echo handlers started",
          atomic_load(&stats->echo.in_flight), n_echo);
    CHECK(it_wait_flag(&stats->stream.in_flight, n_stream, BOUND_MS) >=
              n_stream,
          "only %d of %d StreamService handlers started",
          atomic_load(&stats->stream.in_flight), n_stream);
  }
  it_sleep_ms(200);

  took = it_channel_del_bounded(ch, BOUND_MS);
  CHECK(took >= 0, "cgrpc_channel_del did not return with calls in flight");
  CHECK(took < 2000, "cgrpc_channel_del took %lld ms", (long long)took);
  for (i = 0; i < n; i++) {
    CHECK(it_wait_flag(&users[i].returned, 1, 3000 * SLOW) == 1,
          "user %d is still blocked in its call after cgrpc_channel_del", i);
    atomic_store(&users[i].channel_gone, 1);
  }
  for (i = 0; i < n; i++) {
    d4_user *u = &users[i];
    if (!it_bg_wait(jobs[i], BOUND_MS)) {
      CHECK(0, "user %d did not get through its ended call", i);
      abandoned = 1;
      continue;
    }
    if (u->kind == D4_BLOCKING_UNARY) {
      CHECK_CODE(u->unary_code, CGRPC_STATUS_CANCELLED,
                 "blocking unary call when the channel was deleted");
      continue;
    }
    CHECK_RV(u->open_rv, 0, "opening the call");
    CHECK_RV(u->read_rv, 0, "the read blocked when the channel was deleted");
    CHECK_CODE(u->finish_code, CGRPC_STATUS_CANCELLED, "finish");
    CHECK_CODE(u->finish_again, CGRPC_STATUS_CANCELLED, "a second finish");
    CHECK(u->write_rv == CGRPC_ERR_CLOSED ||
              u->write_rv == CGRPC_ERR_INVALID_STATE,
          "write on the ended call returned %d (%s)", u->write_rv,
          rv_name(u->write_rv));
  }
  for (i = 0; i < n_unary; i++) {
    if (it_async_wait(&unary[i], 3000 * SLOW) != 1) {
      CHECK(0, "async unary call %d never completed", i);
      abandoned = 1;
      continue;
    }
    CHECK_CODE(unary[i].status.code, CGRPC_STATUS_CANCELLED,
               "async unary call when the channel was deleted");
    cgrpc_call_unref(unary_calls[i]); /* after the channel: must be fine */
  }
  /* Let the servicers go: the gate, and the sleeps see the cancel. */
  atomic_store(&stats->stream.gate, 1);
  if (it_server_del_bounded(srv.server, BOUND_MS) < 0) {
    CHECK(0, "cgrpc_server_del did not return");
    abandoned = 1;
  }
  if (!abandoned) {
    for (i = 0; i < n_unary; i++)
      it_async_fini(&unary[i]);
    free(users);
    free(stats);
  }
  free(jobs);
  free(unary_calls);
  CHECKS_DONE();
}

/* Thread A blocks in cgrpc_call_read() on a gated Download; the test
 * deletes the channel. */
static void test_lifetime_d4_channel_del_blocked_reader(void **state) {
  static const int kinds[] = {D4_DOWNLOAD};
  (void)state;
  d4_run(kinds, 1, NULL, 0);
}

/* Several threads and calls of every kind in flight. */
static void test_lifetime_d4_channel_del_many_calls(void **state) {
  static const int kinds[] = {D4_DOWNLOAD,       D4_DOWNLOAD,
                              D4_CHAT,           D4_CHAT,
                              D4_BLOCKING_UNARY, D4_BLOCKING_UNARY};
  it_async *unary = calloc(4, sizeof *unary);
  (void)state;
  assert_non_null(unary);
  d4_run(kinds, (int)(sizeof kinds / sizeof kinds[0]), unary, 4);
  free(unary);
}

/* ==== D7: destructors called from the library's own threads ==========
 *
 * The decided behaviour:
 *  (a) cgrpc_server_shutdown() from one of the server's threads (a pool
 *      handler, an inline handler, an async callback) begins the shutdown
 *      and returns 0 at once; the shutdown completes in the background,
 *      cgrpc_server_wait() on another thread returns once it has, and
 *      cgrpc_server_del() from the application frees the server.
 *  (b) cgrpc_server_del() from one of the server's threads is refused: an
 *      error goes to the server's log callback and nothing else happens.
 *  (c) cgrpc_channel_del() from a channel callback cancels the calls in
 *      flight and returns at once, freeing nothing under the caller; the
 *      memory goes with the last call reference.
 *
 * The servicer (EchoService.Echo, and StreamService.Chat in the async form
 * on an inline server) obeys commands: a request "quit" calls
 * cgrpc_server_shutdown(), "del" calls cgrpc_server_del(), from where the
 * handler or callback runs. */

typedef struct ctl {
  cgrpc_server *server;
  int64_t grace_ms;
  atomic_int commands;
  atomic_int shutdown_rv;
  atomic_llong command_ms; /* how long the last command's call took */
  atomic_int log_errors;
} ctl;

static void ctl_log(cgrpc_log_level level, const char *msg, void *user_data) {
  ctl *c = user_data;
  if (level == CGRPC_LOG_ERROR)
    atomic_fetch_add(&c->log_errors, 1);
  if (getenv("CGRPC_TEST_LOG"))
    cgrpc_log_stderr(level, msg, NULL);
}

static void ctl_command(ctl *c, const char *cmd, size_t len) {
  int64_t t0 = it_now_ms();
  if (len == 4 && memcmp(cmd, "quit", 4) == 0)
    atomic_store(&c->shutdown_rv,
                 cgrpc_server_shutdown(c->server, c->grace_ms));
  else if (len == 3 && memcmp(cmd, "del", 3) == 0)
    cgrpc_server_del(c->server);
  else
    return;
  atomic_store(&c->command_ms, it_now_ms() - t0);
  atomic_fetch_add(&c->commands, 1);
}

static cgrpc_status_code ctl_echo(cgrpc_server_ctx *ctx,
                                  const Cgrpc__Test__EchoRequest *req,
                                  Cgrpc__Test__EchoReply *reply,
                                  void *user_data) {
  const char *m = req->message ? req->message : "";
  ctl_command(user_data, m, strlen(m));
  reply->message = cgrpc_server_ctx_strdup(ctx, m);
  return reply->message ? CGRPC_STATUS_OK : CGRPC_STATUS_RESOURCE_EXHAUSTED;
}

/* Async Chat: each chunk's data is a command, run in the read callback (on
 * the server's loop thread); the call ends OK after the client's last. */
static void ctl_chat_read(cgrpc_server_ctx *ctx, ProtobufCMessage *msg,
                          void *user_data) {
  if (msg) {
    chunk_t *c = (chunk_t *)msg;
    ctl_command(user_data, (const char *)c->data.data, c->data.len);
    protobuf_c_message_free_unpacked(msg, NULL);
    if (cgrpc_server_ctx_read_async(ctx, ctl_chat_read, user_data) == 0)
      return;
  }
  cgrpc_server_ctx_finish(ctx, CGRPC_STATUS_OK);
}

static cgrpc_status_code ctl_chat(cgrpc_server_ctx *ctx, void *user_data) {
  cgrpc_server_ctx_detach(ctx);
  if (cgrpc_server_ctx_read_async(ctx, ctl_chat_read, user_data) != 0)
    cgrpc_server_ctx_finish(ctx, CGRPC_STATUS_INTERNAL);
  return CGRPC_STATUS_OK;
}

static int reg_ctl(cgrpc_server *server, void *user_data) {
  Cgrpc__Test__EchoService_Servicer echo;
  Cgrpc__Test__StreamService_Servicer stream;
  int rv;
  memset(&echo, 0, sizeof echo);
  memset(&stream, 0, sizeof stream);
  echo.echo = ctl_echo;
  stream.chat = ctl_chat;
  rv = cgrpc__test__echo_service__servicer__register(server, &echo, user_data);
  return rv ? rv
            : cgrpc__test__stream_service__servicer__register(server, &stream,
                                                              user_data);
}

enum { FROM_WORKER, FROM_INLINE, FROM_CALLBACK };

/* A command sent through a blocking Chat: one chunk, half-close, finish. */
typedef struct chat_cmd {
  cgrpc_channel *ch;
  const char *cmd;
  cgrpc_status_code code;
} chat_cmd;

static void chat_cmd_main(void *arg) {
  chat_cmd *cc = arg;
  cgrpc_call *call = NULL;
  chunk_t c = CGRPC__TEST__CHUNK__INIT;
  cc->code = CGRPC_STATUS_UNKNOWN;
  if (cgrpc__test__stream_service__chat__open(cc->ch, &guard, &call) != 0)
    return;
  c.data.data = (uint8_t *)(uintptr_t)cc->cmd;
  c.data.len = strlen(cc->cmd);
  cgrpc__test__stream_service__chat__write(call, &c);
  cc->code = cgrpc_call_finish(call, NULL);
  cgrpc_call_unref(call);
}

/* Sends |cmd| the way |from| says and waits (bounded) for the call's
 * outcome; -1 when it did not complete. */
static int send_command(cgrpc_channel *ch, int from, const char *cmd) {
  if (from == FROM_CALLBACK) {
    chat_cmd *cc = calloc(1, sizeof *cc);
    int code;
    assert_non_null(cc);
    cc->ch = ch;
    cc->cmd = cmd;
    if (!it_bg_wait(it_bg_start(chat_cmd_main, cc), 5000 * SLOW))
      return -1;
    code = (int)cc->code;
    free(cc);
    return code;
  } else {
    Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
    it_async *a = calloc(1, sizeof *a);
    int code;
    assert_non_null(a);
    it_async_init(a);
    req.message = (char *)(uintptr_t)cmd;
    assert_int_equal(cgrpc__test__echo_service__echo__start(
                         ch, &req, &guard, it_async_done, a, NULL),
                     0);
    if (it_async_wait(a, 5000 * SLOW) != 1)
      return -1; /* |a| stays for the callback that may still come */
    code = (int)a->status.code;
    it_async_fini(a);
    free(a);
    return code;
  }
}

typedef struct wait_op {
  cgrpc_server *server;
  int rv;
} wait_op;

static void wait_main(void *arg) {
  wait_op *w = arg;
  w->rv = cgrpc_server_wait(w->server);
}

static void start_ctl_server(lt_server *srv, ctl *c, int from) {
  lt_config cfg = {-1, ctl_log, NULL, reg_ctl, NULL};
  cfg.max_workers = from == FROM_WORKER ? -1 : 0;
  cfg.log_user_data = c;
  cfg.reg_user_data = c;
  assert_int_equal(lt_server_start(srv, &cfg, &c->server), 0);
}

/* D7 (a): cgrpc_server_shutdown() from inside the server. */
static void d7_shutdown_from(int from) {
  ctl *c = calloc(1, sizeof *c);
  wait_op *w = calloc(1, sizeof *w);
  lt_server srv;
  cgrpc_channel *ch;
  it_bg_job *waiter;
  int code, ok = 1;
  assert_non_null(c);
  assert_non_null(w);
  c->grace_ms = 2000;
  start_ctl_server(&srv, c, from);
  ch = lt_channel(srv.target);
  assert_non_null(ch);
  CHECK_CODE(send_command(ch, from, "hello"), CGRPC_STATUS_OK, "a first call");
  w->server = srv.server;
  waiter = it_bg_start(wait_main, w);

  code = send_command(ch, from, "quit");
  CHECK(code >= 0, "the call that shut the server down never completed");
  CHECK_CODE(code, CGRPC_STATUS_OK,
             "the call that shut the server down (in flight: the graceful "
             "shutdown lets it finish)");
  CHECK(it_wait_flag(&c->commands, 1, 5000 * SLOW) == 1,
        "cgrpc_server_shutdown from inside the server did not return (%d)",
        atomic_load(&c->commands));
  CHECK_RV(atomic_load(&c->shutdown_rv), 0, "cgrpc_server_shutdown inside");
  CHECK(atomic_load(&c->command_ms) < 500,
        "cgrpc_server_shutdown from inside the server took %lld ms (grace "
        "%lld ms): it waited instead of returning at once",
        (long long)atomic_load(&c->command_ms), (long long)c->grace_ms);
  if (!it_bg_wait(waiter, BOUND_MS)) {
    CHECK(0, "cgrpc_server_wait did not return after the shutdown");
    ok = 0;
  } else {
    CHECK_RV(w->rv, 0, "cgrpc_server_wait");
  }
  if (ok && it_server_del_bounded(srv.server, BOUND_MS) < 0) {
    CHECK(0, "cgrpc_server_del after the shutdown did not return");
    ok = 0;
  }
  if (it_channel_del_bounded(ch, BOUND_MS) < 0)
    CHECK(0, "cgrpc_channel_del did not return");
  if (ok) {
    free(w);
    free(c);
  }
  CHECKS_DONE();
}

static void test_lifetime_d7_shutdown_from_worker(void **state) {
  (void)state;
  d7_shutdown_from(FROM_WORKER);
}

static void test_lifetime_d7_shutdown_from_inline_handler(void **state) {
  (void)state;
  d7_shutdown_from(FROM_INLINE);
}

static void test_lifetime_d7_shutdown_from_async_callback(void **state) {
  (void)state;
  d7_shutdown_from(FROM_CALLBACK);
}

/* D7 (b): cgrpc_server_del() from inside the server is refused. */
static void d7_del_from(int from) {
  ctl *c = calloc(1, sizeof *c);
  lt_server srv;
  cgrpc_channel *ch;
  int code, ok = 1;
  assert_non_null(c);
  c->grace_ms = 0;
  start_ctl_server(&srv, c, from);
  ch = lt_channel(srv.target);
  assert_non_null(ch);

  code = send_command(ch, from, "del");
  CHECK(code >= 0, "the call that deleted the server never completed");
  CHECK_CODE(code, CGRPC_STATUS_OK,
             "the call whose handler deleted the server");
  CHECK(it_wait_flag(&c->commands, 1, 5000 * SLOW) == 1,
        "cgrpc_server_del from inside the server did not return (%d)",
        atomic_load(&c->commands));
  CHECK(atomic_load(&c->command_ms) < 500,
        "cgrpc_server_del from inside the server took %lld ms",
        (long long)atomic_load(&c->command_ms));
  CHECK(atomic_load(&c->log_errors) >= 1,
        "cgrpc_server_del from inside the server logged no error");
  /* Refused: the server still works. */
  if (code >= 0) {
    code = send_command(ch, from, "still there?");
    CHECK_CODE(code, CGRPC_STATUS_OK, "a call after the refused del");
  }
  /* Only a server that refused can be deleted again: after a del that went
   * through, another would be the test's own double free. */
  if (code != CGRPC_STATUS_OK || atomic_load(&c->log_errors) < 1) {
    print_message("  (server abandoned: the del from inside was not "
                  "refused)\n");
    ok = 0;
  } else if (it_server_del_bounded(srv.server, BOUND_MS) < 0) {
    CHECK(0, "the server could not be deleted afterwards");
    ok = 0;
  }
  if (it_channel_del_bounded(ch, BOUND_MS) < 0)
    CHECK(0, "cgrpc_channel_del did not return");
  if (ok)
    free(c);
  CHECKS_DONE();
}

static void test_lifetime_d7_del_refused_from_worker(void **state) {
  (void)state;
  d7_del_from(FROM_WORKER);
}

static void test_lifetime_d7_del_refused_from_inline_handler(void **state) {
  (void)state;
  d7_del_from(FROM_INLINE);
}

static void test_lifetime_d7_del_refused_from_async_callback(void **state) {
  (void)state;
  d7_del_from(FROM_CALLBACK);
}

/* ==== D7 (c) and the callback matrix: cancel, unref and channel_del from
 * inside every client callback =========================================
 *
 * One call acts from inside one of its callbacks (on_read, on_write_done,
 * on_done, or a unary call's done callback): it cancels itself, releases
 * the application's reference, or deletes its channel.  on_done must still
 * run exactly once, nothing may be used after it is freed, and a
 * cgrpc_channel_del() from a callback must return at once and cancel the
 * other calls in flight (D7 (c)). */

enum cb_where {
  IN_ON_READ,
  IN_ON_WRITE_DONE,
  IN_ON_DONE,
  IN_UNARY_DONE,
  IN_NONE
};
enum cb_action { DO_CANCEL, DO_UNREF, DO_DEL };

static const char *const where_names[] = {"on_read", "on_write_done", "on_done",
                                          "unary done", "none"};
static const char *const action_names[] = {"cancel", "unref", "channel_del"};

typedef struct cb_case {
  int where, action;
  cgrpc_channel *ch;
  atomic_int acted;
  atomic_llong act_ms;
  atomic_int reads, writes, done;
  atomic_int code;
} cb_case;

static void cb_act(cb_case *k, cgrpc_call *call, int where) {
  int64_t t0;
  if (k->where != where || atomic_load(&k->acted))
    return;
  t0 = it_now_ms();
  if (k->action == DO_CANCEL)
    cgrpc_call_cancel(call);
  else if (k->action == DO_UNREF)
    cgrpc_call_unref(call); /* the application's reference */
  else
    cgrpc_channel_del(k->ch);
  atomic_store(&k->act_ms, it_now_ms() - t0);
  atomic_store(&k->acted, 1);
}

static void cb_on_read(cgrpc_call *call, ProtobufCMessage *msg, void *ud) {
  cb_case *k = ud;
  if (!msg)
    return;
  protobuf_c_message_free_unpacked(msg, NULL);
  atomic_fetch_add(&k->reads, 1);
  if (k->where == IN_ON_READ && !atomic_load(&k->acted)) {
    cb_act(k, call, IN_ON_READ);
    return;
  }
  cgrpc_call_read_async(call);
}

static void cb_on_write_done(cgrpc_call *call, int ok, void *ud) {
  cb_case *k = ud;
  (void)ok;
  atomic_fetch_add(&k->writes, 1);
  cb_act(k, call, IN_ON_WRITE_DONE);
}

static void cb_on_done(cgrpc_call *call, const cgrpc_status *status, void *ud) {
  cb_case *k = ud;
  atomic_store(&k->code, (int)status->code);
  atomic_fetch_add(&k->done, 1);
  cb_act(k, call, IN_ON_DONE);
}

static void cb_unary_done(cgrpc_call *call, const cgrpc_status *status,
                          ProtobufCMessage *reply, void *ud) {
  cb_case *k = ud;
  if (reply)
    protobuf_c_message_free_unpacked(reply, NULL);
  atomic_store(&k->code, (int)status->code);
  atomic_fetch_add(&k->done, 1);
  cb_act(k, call, IN_UNARY_DONE);
}

static const cgrpc_call_callbacks cb_cbs = {cb_on_read, cb_on_write_done,
                                            cb_on_done};

/* Runs one case on a fresh channel to |srv|.  With |bystander|, another
 * call (held in flight by the server) must end CANCELLED when the channel
 * goes.  Returns 0, or -1 when something stayed stuck (its memory is then
 * abandoned). */
static int cb_run(lt_server *srv, both_stats *stats, int where, int action,
                  int bystander) {
  cb_case *k = calloc(1, sizeof *k), *by = NULL;
  cgrpc_call *call = NULL, *by_call = NULL;
  cgrpc_channel *ch = lt_channel(srv->target);
  int want, stuck = 0, i;
  uint8_t buf[32];
  chunk_t c;
  assert_non_null(k);
  assert_non_null(ch);
  print_message("  case: %s from %s%s\n", action_names[action],
                where_names[where],
                bystander ? ", another call in flight" : "");
  k->where = where;
  k->action = action;
  k->ch = ch;
  atomic_store(&stats->stream.gate, 0);
  if (bystander) {
    /* Held by the servicer until the gate opens. */
    download_t req = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
    int in_flight = atomic_load(&stats->stream.in_flight);
    by = calloc(1, sizeof *by);
    assert_non_null(by);
    by->where = IN_NONE;
    by->ch = ch;
    req.count = 1;
    req.gate = 1;
    assert_int_equal(cgrpc__test__stream_service__download__open_async(
                         ch, &req, &guard, &cb_cbs, by, &by_call),
                     0);
    assert_int_equal(cgrpc_call_read_async(by_call), 0);
    CHECK(it_wait_flag(&stats->stream.in_flight, in_flight + 1, BOUND_MS) >
              in_flight,
          "the bystander call never reached its handler");
  }
  if (where == IN_UNARY_DONE) {
    Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
    req.message = "act";
    assert_int_equal(cgrpc__test__echo_service__echo__start(
                         ch, &req, &guard, cb_unary_done, k, &call),
                     0);
  } else {
    /* Created unstarted so that the first read is asked for before the
     * server can answer: a call that half-closes can otherwise end, and
     * report on_done, before cgrpc_call_read_async() (call.h). */
    assert_int_equal(cgrpc__test__stream_service__chat__new_async(
                         ch, &guard, &cb_cbs, k, &call),
                     0);
    chunk_init(&c, 0, buf, sizeof buf);
    assert_int_equal(cgrpc__test__stream_service__chat__write_async(call, &c),
                     0);
    /* Only a call meant to end by itself half-closes; the others stay open
     * until their action (or the final channel_del) ends them. */
    if (where == IN_ON_DONE)
      assert_int_equal(cgrpc_call_writes_done(call), 0);
    assert_int_equal(cgrpc_call_read_async(call), 0);
    assert_int_equal(cgrpc_call_start(call), 0);
  }

  if (it_wait_flag(&k->acted, 1, 5000 * SLOW) != 1) {
    CHECK(0, "the callback never acted (reads %d, writes %d, done %d)",
          atomic_load(&k->reads), atomic_load(&k->writes),
          atomic_load(&k->done));
    stuck = 1;
  }
  if (action == DO_DEL) {
    CHECK(atomic_load(&k->act_ms) < 500 * SLOW,
          "cgrpc_channel_del from %s took %lld ms", where_names[where],
          (long long)atomic_load(&k->act_ms));
  } else if (!stuck) {
    it_sleep_ms(50);
    if (it_channel_del_bounded(ch, BOUND_MS) < 0) {
      CHECK(0, "cgrpc_channel_del did not return");
      stuck = 1;
    }
  }
  if (it_wait_flag(&k->done, 1, 3000 * SLOW) != 1) {
    CHECK(0, "on_done never ran");
    stuck = 1;
  }
  /* Ending by itself (on_done, unary done) is OK; every other call was
   * cancelled, by itself or by the channel's end. */
  want = where == IN_ON_DONE || where == IN_UNARY_DONE ? CGRPC_STATUS_OK
                                                       : CGRPC_STATUS_CANCELLED;
  if (atomic_load(&k->done))
    CHECK_CODE(atomic_load(&k->code), want, "the acting call");
  if (by) {
    CHECK(it_wait_flag(&by->done, 1, 3000 * SLOW) == 1,
          "the other call in flight never ended");
    if (atomic_load(&by->done))
      CHECK_CODE(atomic_load(&by->code), CGRPC_STATUS_CANCELLED,
                 "the other call in flight");
    else
      stuck = 1;
  }
  atomic_store(&stats->stream.gate, 1);
  it_sleep_ms(50);
  CHECK(atomic_load(&k->done) <= 1, "on_done ran %d times",
        atomic_load(&k->done));
  if (stuck)
    return -1;
  /* The application's references go last, after the channel. */
  if (action != DO_UNREF)
    cgrpc_call_unref(call);
  cgrpc_call_unref(by_call);
  /* Let the servicers see the gate and the cancellations. */
  for (i = 0; i < 100 && atomic_load(&stats->stream.in_flight) > 0; i++)
    it_sleep_ms(10);
  free(by);
  free(k);
  return 0;
}

static void cb_matrix(int where, const int *actions, int n, int bystander) {
  both_stats *stats = calloc(1, sizeof *stats);
  lt_config cfg = {-1, NULL, NULL, reg_both, NULL};
  lt_server srv;
  int i, stuck = 0;
  assert_non_null(stats);
  echo_stats_reset(&stats->echo);
  stream_stats_reset(&stats->stream);
  cfg.reg_user_data = stats;
  assert_int_equal(lt_server_start(&srv, &cfg, NULL), 0);
  for (i = 0; i < n && !stuck; i++)
    stuck = cb_run(&srv, stats, where, actions[i], bystander) != 0;
  if (stuck || it_server_del_bounded(srv.server, BOUND_MS) < 0)
    print_message("  (server abandoned)\n");
  else
    free(stats);
  CHECKS_DONE();
}

static const int all_actions[] = {DO_CANCEL, DO_UNREF, DO_DEL};
static const int del_only[] = {DO_DEL};

/* D7 (c): cgrpc_channel_del() from a unary call's done callback, with
 * another call in flight. */
static void test_lifetime_d7_channel_del_in_unary_done(void **state) {
  (void)state;
  cb_matrix(IN_UNARY_DONE, del_only, 1, 1);
}

/* D7 (c): ... from an async stream's on_read. */
static void test_lifetime_d7_channel_del_in_on_read(void **state) {
  (void)state;
  cb_matrix(IN_ON_READ, del_only, 1, 1);
}

/* D7 (c): ... from an async stream's on_done. */
static void test_lifetime_d7_channel_del_in_on_done(void **state) {
  (void)state;
  cb_matrix(IN_ON_DONE, del_only, 1, 1);
}

/* Adversarial: cancel, unref and channel_del from each callback. */
static void test_lifetime_cb_on_read_actions(void **state) {
  (void)state;
  cb_matrix(IN_ON_READ, all_actions, 3, 0);
}

static void test_lifetime_cb_on_write_done_actions(void **state) {
  (void)state;
  cb_matrix(IN_ON_WRITE_DONE, all_actions, 3, 0);
}

static void test_lifetime_cb_on_done_actions(void **state) {
  (void)state;
  cb_matrix(IN_ON_DONE, all_actions, 3, 0);
}

static void test_lifetime_cb_unary_done_actions(void **state) {
  (void)state;
  cb_matrix(IN_UNARY_DONE, all_actions, 3, 0);
}

/* ==== D5: initial metadata added after the headers ====================
 *
 * Once the first message is written (or cgrpc_server_ctx_send_initial_-
 * metadata() was called) the response headers are on their way:
 * cgrpc_server_ctx_add_initial_metadata() must say so
 * (CGRPC_ERR_INVALID_STATE) instead of changing, unlocked, the list the loop
 * thread is sending from (and losing the entry).  Before that it works and
 * the client sees the entry.  TSan also watches this one. */

enum { D5_BEFORE_WRITE, D5_AFTER_WRITE, D5_AFTER_SEND_HEADERS };

typedef struct d5_state {
  atomic_int rv;
  atomic_int ran;
} d5_state;

/* Download whose request |count| picks when the metadata is added. */
static cgrpc_status_code d5_download(cgrpc_server_ctx *ctx,
                                     const download_t *req, void *user_data) {
  d5_state *s = user_data;
  chunk_t c = CGRPC__TEST__CHUNK__INIT;
  uint8_t buf[16];
  int rv = 0;
  chunk_init(&c, 0, buf, sizeof buf);
  switch (req->count) {
  case D5_BEFORE_WRITE:
    rv = cgrpc_server_ctx_add_initial_metadata(ctx, "x-when", "before");
    cgrpc__test__stream_service__download__send(ctx, &c);
    break;
  case D5_AFTER_WRITE:
    cgrpc__test__stream_service__download__send(ctx, &c);
    rv = cgrpc_server_ctx_add_initial_metadata(ctx, "x-when", "after-write");
    break;
  default:
    cgrpc_server_ctx_send_initial_metadata(ctx);
    rv = cgrpc_server_ctx_add_initial_metadata(ctx, "x-when", "after-send");
    cgrpc__test__stream_service__download__send(ctx, &c);
    break;
  }
  atomic_store(&s->rv, rv);
  atomic_fetch_add(&s->ran, 1);
  return CGRPC_STATUS_OK;
}

static int reg_d5(cgrpc_server *server, void *user_data) {
  Cgrpc__Test__StreamService_Servicer sv;
  memset(&sv, 0, sizeof sv);
  sv.download = d5_download;
  return cgrpc__test__stream_service__servicer__register(server, &sv,
                                                         user_data);
}

static void test_lifetime_d5_initial_metadata_after_headers(void **state) {
  static const char *const expect[] = {"before", NULL, NULL};
  static const int want_rv[] = {0, CGRPC_ERR_INVALID_STATE,
                                CGRPC_ERR_INVALID_STATE};
  static const char *const names[] = {"before the first write",
                                      "after the first write",
                                      "after send_initial_metadata"};
  d5_state *s = calloc(1, sizeof *s);
  lt_config cfg = {-1, NULL, NULL, reg_d5, NULL};
  lt_server srv;
  cgrpc_channel *ch;
  int mode, round;
  (void)state;
  assert_non_null(s);
  cfg.reg_user_data = s;
  assert_int_equal(lt_server_start(&srv, &cfg, NULL), 0);
  ch = lt_channel(srv.target);
  assert_non_null(ch);
  /* A few rounds: the race (after the first write) is timing-dependent. */
  for (round = 0; round < 20; round++) {
    for (mode = 0; mode < 3; mode++) {
      download_t req = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
      cgrpc_call *call = NULL;
      ProtobufCMessage *msg = NULL;
      const cgrpc_metadata_array *md;
      const char *value;
      char seen[32] = "";
      int found;
      cgrpc_status_code code;
      int ran = atomic_load(&s->ran);
      req.count = mode;
      assert_int_equal(
          cgrpc__test__stream_service__download__open(ch, &req, &guard, &call),
          0);
      md = cgrpc_call_initial_metadata(call);
      value = it_md_get(md, "x-when");
      found = value != NULL; /* valid until the call is released */
      if (found)
        snprintf(seen, sizeof seen, "%s", value);
      while (cgrpc_call_read(call, &msg) == 1)
        protobuf_c_message_free_unpacked(msg, NULL);
      code = cgrpc_call_finish(call, NULL);
      cgrpc_call_unref(call);
      CHECK_CODE(code, CGRPC_STATUS_OK, names[mode]);
      CHECK(it_wait_flag(&s->ran, ran + 1, BOUND_MS) > ran,
            "the handler did not run");
      CHECK(atomic_load(&s->rv) == want_rv[mode],
            "cgrpc_server_ctx_add_initial_metadata %s returned %d (%s), "
            "expected %d (%s)",
            names[mode], atomic_load(&s->rv), rv_name(atomic_load(&s->rv)),
            want_rv[mode], rv_name(want_rv[mode]));
      if (expect[mode])
        CHECK(found && strcmp(seen, expect[mode]) == 0,
              "%s: the client saw x-when \"%s\", expected \"%s\"", names[mode],
              found ? seen : "(none)", expect[mode]);
      if (it_checks_failed())
        break;
    }
    if (it_checks_failed())
      break;
  }
  cgrpc_channel_del(ch);
  cgrpc_server_del(srv.server);
  free(s);
  CHECKS_DONE();
}

/* ==== D8: a huge timeout overflows into an expired deadline ========== */

static void test_lifetime_d8_timeout_int64_max(void **state) {
  static const cgrpc_call_options forever = {.timeout_ms = INT64_MAX};
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  download_t dreq = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
  both_stats *stats = calloc(1, sizeof *stats);
  lt_config cfg = {-1, NULL, NULL, reg_both, NULL};
  lt_server srv;
  cgrpc_channel *ch;
  cgrpc_call *call = NULL;
  ProtobufCMessage *msg = NULL;
  cgrpc_status st = {0};
  it_async a;
  int n = 0;
  (void)state;
  assert_non_null(stats);
  echo_stats_reset(&stats->echo);
  stream_stats_reset(&stats->stream);
  cfg.reg_user_data = stats;
  assert_int_equal(lt_server_start(&srv, &cfg, NULL), 0);
  ch = lt_channel(srv.target);
  assert_non_null(ch);

  /* Unary. */
  it_async_init(&a);
  req.message = "forever";
  assert_int_equal(cgrpc__test__echo_service__echo__start(
                       ch, &req, &forever, it_async_done, &a, NULL),
                   0);
  CHECK(it_async_wait(&a, BOUND_MS) == 1, "the unary call never completed");
  if (a.done) {
    CHECK_CODE(a.status.code, CGRPC_STATUS_OK,
               "unary Echo with timeout INT64_MAX");
    CHECK(a.reply && strcmp(a.reply->message, "forever") == 0,
          "wrong or no reply");
  }
  it_async_fini(&a);

  /* Streaming. */
  dreq.count = 3;
  dreq.size = 8;
  assert_int_equal(
      cgrpc__test__stream_service__download__open(ch, &dreq, &forever, &call),
      0);
  while (cgrpc_call_read(call, &msg) == 1) {
    protobuf_c_message_free_unpacked(msg, NULL);
    n++;
  }
  cgrpc_call_finish(call, &st);
  CHECK_CODE(st.code, CGRPC_STATUS_OK, "Download with timeout INT64_MAX");
  CHECK(n == 3, "read %d of 3 messages", n);
  if (st.code != CGRPC_STATUS_OK)
    print_message("  status message: %s\n", st.message ? st.message : "");
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);

  cgrpc_channel_del(ch);
  cgrpc_server_del(srv.server);
  free(stats);
  CHECKS_DONE();
}

/* ==== D10: a second cgrpc_call_finish() ============================== */

static void test_lifetime_d10_second_finish(void **state) {
  st_fixture *f;
  download_t req = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
  cgrpc_call *call = NULL;
  ProtobufCMessage *msg = NULL;
  cgrpc_status first = {0}, second = {0};
  cgrpc_status_code c1, c2, c3;
  st_fixture_setup(state);
  f = *state;
  req.count = 2;
  req.size = 8;
  req.status_code = CGRPC_STATUS_NOT_FOUND;
  req.status_message = "nothing here";
  assert_int_equal(
      cgrpc__test__stream_service__download__open(f->ch, &req, &guard, &call),
      0);
  while (cgrpc_call_read(call, &msg) == 1)
    protobuf_c_message_free_unpacked(msg, NULL);
  c1 = cgrpc_call_finish(call, &first);
  c2 = cgrpc_call_finish(call, &second);
  c3 = cgrpc_call_finish(call, NULL);
  CHECK_CODE(c1, CGRPC_STATUS_NOT_FOUND, "the first finish");
  CHECK_CODE(first.code, CGRPC_STATUS_NOT_FOUND, "the first status");
  CHECK(first.message && strcmp(first.message, "nothing here") == 0,
        "the first status message is \"%s\"",
        first.message ? first.message : "(none)");
  CHECK_CODE(c2, CGRPC_STATUS_NOT_FOUND, "the second finish");
  CHECK_CODE(second.code, CGRPC_STATUS_NOT_FOUND, "the second status");
  CHECK(second.message && strcmp(second.message, "nothing here") == 0,
        "the second status message is \"%s\"",
        second.message ? second.message : "(none)");
  CHECK_CODE(c3, CGRPC_STATUS_NOT_FOUND, "a third finish (no status)");
  cgrpc_status_clear(&first);
  cgrpc_status_clear(&second);
  cgrpc_call_unref(call);
  st_fixture_teardown(state);
  CHECKS_DONE();
}

/* ==== Adversarial: a blocked cgrpc_call_write() and the call's end ====
 *
 * A writer blocked because the server does not read (SlowUpload sleeping
 * before its first read, or a raw peer that never reads) must be released
 * by the call's deadline or by a cancel from another thread, with
 * CGRPC_ERR_CLOSED; the call then finishes with that status. */

typedef struct writer {
  cgrpc_call *call;
  atomic_int writes;
  int rv;
  int64_t ended_at;
} writer;

static void writer_main(void *arg) {
  writer *w = arg;
  size_t len = 64 * 1024;
  uint8_t *buf = calloc(1, len);
  chunk_t c = CGRPC__TEST__CHUNK__INIT;
  int i;
  w->rv = CGRPC_ERR_NOMEM;
  if (!buf)
    return;
  c.data.data = buf;
  c.data.len = len;
  /* At most 1 GiB: far past any buffer, and a bound if nothing blocks. */
  for (i = 0; i < 16384; i++) {
    c.seq = i;
    w->rv = cgrpc_call_write(w->call, &c.base);
    if (w->rv != 0)
      break;
    atomic_fetch_add(&w->writes, 1);
  }
  w->ended_at = it_now_ms();
  free(buf);
}

/* Opens an upload (|slow|: SlowUpload) on |ch| with |timeout_ms|, blocks a
 * writer, ends the call by deadline (|cancel| 0) or cgrpc_call_cancel()
 * from this thread, and checks the writer and the outcome.  Returns 0, or
 * -1 when the writer stayed stuck. */
static int blocked_writer(cgrpc_channel *ch, int slow, int cancel,
                          int64_t timeout_ms) {
  cgrpc_call_options opts = {.timeout_ms = 0};
  writer *w = calloc(1, sizeof *w);
  cgrpc_status st = {0};
  cgrpc_status_code want;
  it_bg_job *job;
  int64_t t_end, last = -1;
  int i;
  assert_non_null(w);
  opts.timeout_ms = timeout_ms;
  if (slow)
    assert_int_equal(
        cgrpc__test__stream_service__slow_upload__open(ch, &opts, &w->call), 0);
  else
    assert_int_equal(
        cgrpc__test__stream_service__upload__open(ch, &opts, &w->call), 0);
  job = it_bg_start(writer_main, w);
  /* Blocked: the count stops moving. */
  for (i = 0; i < 100; i++) {
    int64_t now = atomic_load(&w->writes);
    if (now > 0 && now == last)
      break;
    last = now;
    it_sleep_ms(cancel ? 50 : 20);
    if (atomic_load(&job->done))
      break;
  }
  CHECK(!atomic_load(&job->done),
        "the writer never blocked (write returned %d after %d messages)", w->rv,
        atomic_load(&w->writes));
  if (cancel)
    cgrpc_call_cancel(w->call);
  t_end = it_now_ms();
  if (!it_bg_wait(job, 3000 * SLOW + (int)timeout_ms)) {
    CHECK(0, "the blocked writer was not released by the %s",
          cancel ? "cancel" : "deadline");
    return -1;
  }
  CHECK_RV(w->rv, CGRPC_ERR_CLOSED, "the blocked write");
  if (cancel)
    CHECK(w->ended_at - t_end < 2000 * SLOW,
          "the writer was released %lld ms after the cancel",
          (long long)(w->ended_at - t_end));
  want = cancel ? CGRPC_STATUS_CANCELLED : CGRPC_STATUS_DEADLINE_EXCEEDED;
  CHECK_CODE(cgrpc_call_finish(w->call, &st), want, "finish");
  cgrpc_status_clear(&st);
  cgrpc_call_unref(w->call);
  free(w);
  return 0;
}

static void blocked_writer_slow_upload(int cancel) {
  st_server srv;
  cgrpc_channel *ch;
  int stuck;
  assert_int_equal(st_server_start(&srv, NULL), 0);
  /* The handler sleeps 2 s before each read: long past the deadline. */
  atomic_store(&srv.stats.sleep_us, 2000000);
  ch = st_channel(&srv, 0);
  assert_non_null(ch);
  stuck = blocked_writer(ch, 1, cancel, cancel ? 0 : 700);
  atomic_store(&srv.stats.sleep_us, 0);
  if (stuck)
    return; /* the channel and server stay with the stuck writer */
  if (it_channel_del_bounded(ch, BOUND_MS) < 0)
    CHECK(0, "cgrpc_channel_del did not return");
  st_server_stop_bounded(&srv);
}

static void test_lifetime_blocked_write_deadline_slow_server(void **state) {
  (void)state;
  blocked_writer_slow_upload(0);
  CHECKS_DONE();
}

static void test_lifetime_blocked_write_cancel_slow_server(void **state) {
  (void)state;
  blocked_writer_slow_upload(1);
  CHECKS_DONE();
}

/* The same against a raw peer that never reads; then the peer reads again
 * after the call was released, so the stream's stuck DATA frame resumes
 * (the streaming form of D2). */
static void blocked_writer_raw_peer(int cancel) {
  raw_peer *peer = raw_peer_start();
  cgrpc_channel *ch = raw_peer_channel(peer);
  assert_non_null(ch);
  if (blocked_writer(ch, 0, cancel, cancel ? 0 : 700) != 0) {
    raw_peer_stop(peer);
    return;
  }
  atomic_store(&peer->drain, 1);
  it_sleep_ms(1000);
  print_message("  the peer read %lld bytes after the call ended\n",
                (long long)atomic_load(&peer->drained));
  if (it_channel_del_bounded(ch, BOUND_MS) < 0)
    CHECK(0, "cgrpc_channel_del did not return");
  raw_peer_stop(peer);
}

static void test_lifetime_blocked_write_deadline_raw_peer(void **state) {
  (void)state;
  blocked_writer_raw_peer(0);
  CHECKS_DONE();
}

static void test_lifetime_blocked_write_cancel_raw_peer(void **state) {
  (void)state;
  blocked_writer_raw_peer(1);
  CHECKS_DONE();
}

/* ==== Adversarial: server shutdown while handlers block ===============
 *
 * Handlers blocked in cgrpc_server_ctx_read() (a Chat whose client sends
 * nothing) or in cgrpc_server_ctx_write() (a Flood whose client does not
 * read) when the server shuts down, with grace 0 and 500 ms: shutdown
 * returns soon after the grace, the handlers see CGRPC_ERR_CLOSED, and the
 * clients' calls end. */

typedef struct finisher {
  cgrpc_call *call;
  cgrpc_status_code code;
} finisher;

static void finisher_main(void *arg) {
  finisher *f = arg;
  f->code = cgrpc_call_finish(f->call, NULL);
}

static void shutdown_blocked(int in_write, int64_t grace_ms) {
  st_server srv;
  cgrpc_channel *ch;
  cgrpc_call *calls[3];
  finisher *fin[3];
  int i, n = 3, stuck = 0;
  int64_t took;
  assert_int_equal(st_server_start(&srv, NULL), 0);
  ch = st_channel(&srv, 0);
  assert_non_null(ch);
  for (i = 0; i < n; i++) {
    if (in_write) {
      download_t req = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
      req.count = 100000;
      req.size = 16384;
      assert_int_equal(
          cgrpc__test__stream_service__flood__open(ch, &req, NULL, &calls[i]),
          0);
    } else {
      assert_int_equal(
          cgrpc__test__stream_service__chat__open(ch, NULL, &calls[i]), 0);
    }
  }
  CHECK(it_wait_flag(&srv.stats.in_flight, n, BOUND_MS) == n,
        "only %d of %d handlers started", atomic_load(&srv.stats.in_flight), n);
  if (in_write) {
    /* Until the writers stall on the unread streams. */
    long long last = -1, now;
    for (i = 0; i < 200; i++) {
      it_sleep_ms(20);
      now = atomic_load(&srv.stats.sent);
      if (now > 0 && now == last)
        break;
      last = now;
    }
  } else {
    it_sleep_ms(100);
  }

  took = it_server_shutdown_bounded(srv.it.server, grace_ms, BOUND_MS);
  CHECK(took >= 0, "cgrpc_server_shutdown(grace %lld) did not return",
        (long long)grace_ms);
  CHECK(took < grace_ms + 3000 * SLOW,
        "cgrpc_server_shutdown(grace %lld) took %lld ms", (long long)grace_ms,
        (long long)took);
  if (took >= 0) {
    CHECK(atomic_load(&srv.stats.in_flight) == 0,
          "%d handlers still running after the shutdown",
          atomic_load(&srv.stats.in_flight));
    CHECK(atomic_load(&srv.stats.closed_seen) == n,
          "%d of %d handlers saw CGRPC_ERR_CLOSED",
          atomic_load(&srv.stats.closed_seen), n);
  }
  for (i = 0; i < n; i++) {
    fin[i] = calloc(1, sizeof *fin[i]);
    assert_non_null(fin[i]);
    fin[i]->call = calls[i];
    if (!it_bg_wait(it_bg_start(finisher_main, fin[i]), 3000 * SLOW)) {
      CHECK(0, "call %d did not end after the server shut down", i);
      stuck = 1;
      continue;
    }
    CHECK(fin[i]->code == CGRPC_STATUS_UNAVAILABLE ||
              fin[i]->code == CGRPC_STATUS_CANCELLED,
          "call %d ended %s", i, cgrpc_status_code_name(fin[i]->code));
    cgrpc_call_unref(calls[i]);
    free(fin[i]);
  }
  if (!stuck && it_channel_del_bounded(ch, BOUND_MS) < 0)
    CHECK(0, "cgrpc_channel_del did not return");
  if (took >= 0)
    st_server_stop(&srv, 0);
  CHECKS_DONE();
}

static void test_lifetime_shutdown_handlers_in_read_grace0(void **state) {
  (void)state;
  shutdown_blocked(0, 0);
}

static void test_lifetime_shutdown_handlers_in_read_grace500(void **state) {
  (void)state;
  shutdown_blocked(0, 500);
}

static void test_lifetime_shutdown_handlers_in_write_grace0(void **state) {
  (void)state;
  shutdown_blocked(1, 0);
}

static void test_lifetime_shutdown_handlers_in_write_grace500(void **state) {
  (void)state;
  shutdown_blocked(1, 500);
}

/* ==== Adversarial: a raw client that vanishes mid-frame ===============
 *
 * Requests cut at every interesting place (inside the frame header, the
 * HPACK block, the DATA payload, the gRPC message prefix), each followed by
 * a close (half of them abortive).  The server drops those connections and
 * keeps serving. */
static void test_lifetime_peer_vanishes_mid_frame(void **state) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  it_fixture *f;
  h2raw_buf b, msg;
  size_t prefix_len, cuts[12], n_cuts = 0, i;
  (void)state;
  it_fixture_setup(state);
  f = *state;
  h2raw_buf_init(&b);
  h2raw_buf_init(&msg);
  h2raw_preface(&b);
  h2raw_settings(&b, NULL, 0);
  prefix_len = b.len;
  it_raw_request_headers(&b, 1, "/cgrpc.test.EchoService/Echo", f->srv.port,
                         NULL, NULL);
  req.message = "cut short";
  req.response_size = 100000;
  it_raw_grpc_message(&msg, &req.base);
  cuts[n_cuts++] = prefix_len + 4;     /* inside the HEADERS frame header */
  cuts[n_cuts++] = prefix_len + 9 + 5; /* inside the HPACK block */
  cuts[n_cuts++] = b.len;              /* after HEADERS, before DATA */
  cuts[n_cuts++] = b.len + 3;          /* inside the DATA frame header */
  cuts[n_cuts++] = b.len + 9 + 2;      /* inside the gRPC prefix */
  cuts[n_cuts++] = b.len + 9 + msg.len / 2; /* inside the message */
  h2raw_data(&b, 1, 1, msg.data, msg.len);
  cuts[n_cuts++] = b.len; /* complete: the reply has nowhere */
  for (i = 0; i < 2 * n_cuts; i++) {
    int fd = h2raw_connect(f->srv.port, 0);
    assert_true(fd >= 0);
    assert_int_equal(h2raw_send(fd, b.data, cuts[i % n_cuts]), 0);
    if (i >= n_cuts) {
      struct linger lg = {1, 0}; /* RST instead of FIN */
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(fd);
    CHECK_CODE(echo_code(f->ch, "still serving"), CGRPC_STATUS_OK,
               "a call after a peer vanished mid-frame");
  }
  h2raw_buf_free(&b);
  h2raw_buf_free(&msg);
  it_fixture_teardown(state);
  CHECKS_DONE();
}

/* ---- main ---- */

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
#define T(name)                                                                \
  cmocka_unit_test_setup_teardown(name, it_watchdog_setup, it_watchdog_teardown)
      T(test_lifetime_d1_unread_flood_no_spin),
      T(test_lifetime_d1_flood_client_reads_later),
      T(test_lifetime_d2_deadline_unread_peer),
      T(test_lifetime_d2_deadline_peer_resumes),
      T(test_lifetime_d2_cancel_unread_peer),
      T(test_lifetime_d2_cancel_peer_resumes),
      T(test_lifetime_d3_kick_after_conn_freed),
      T(test_lifetime_d3_kick_after_conn_freed_async),
      T(test_lifetime_d4_channel_del_blocked_reader),
      T(test_lifetime_d4_channel_del_many_calls),
      T(test_lifetime_d5_initial_metadata_after_headers),
      T(test_lifetime_d7_shutdown_from_worker),
      T(test_lifetime_d7_shutdown_from_inline_handler),
      T(test_lifetime_d7_shutdown_from_async_callback),
      T(test_lifetime_d7_del_refused_from_worker),
      T(test_lifetime_d7_del_refused_from_inline_handler),
      T(test_lifetime_d7_del_refused_from_async_callback),
      T(test_lifetime_d7_channel_del_in_unary_done),
      T(test_lifetime_d7_channel_del_in_on_read),
      T(test_lifetime_d7_channel_del_in_on_done),
      T(test_lifetime_d8_timeout_int64_max),
      T(test_lifetime_d10_second_finish),
      T(test_lifetime_cb_on_read_actions),
      T(test_lifetime_cb_on_write_done_actions),
      T(test_lifetime_cb_on_done_actions),
      T(test_lifetime_cb_unary_done_actions),
      T(test_lifetime_blocked_write_deadline_slow_server),
      T(test_lifetime_blocked_write_cancel_slow_server),
      T(test_lifetime_blocked_write_deadline_raw_peer),
      T(test_lifetime_blocked_write_cancel_raw_peer),
      T(test_lifetime_shutdown_handlers_in_read_grace0),
      T(test_lifetime_shutdown_handlers_in_read_grace500),
      T(test_lifetime_shutdown_handlers_in_write_grace0),
      T(test_lifetime_shutdown_handlers_in_write_grace500),
      T(test_lifetime_peer_vanishes_mid_frame),
#undef T
  };
  /* One test (a cmocka filter pattern) per CTest entry. */
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
