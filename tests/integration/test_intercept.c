/* SPDX-License-Identifier: MIT */
/*
 * Interceptors (cgrpc/interceptor.h) on the server and the channel: the
 * order of a chain, metadata seen and added on both sides, rejections on
 * both sides (the status and message reach the caller; a rejected server
 * call never reaches its handler, a rejected client call never reaches
 * the wire), what the info says (method, authority, peer, deadline), the
 * status on_end gets for OK, an error, a cancel and a deadline, message
 * hooks on streams, async calls, and the per-call slot.  With grpcio
 * (tests/interop, registered there): our client's interceptor against
 * py_echo_server.py, our server's against py_intercept_client.py.
 *
 * Every test runs under the watchdog; every wait is bounded.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"
#include "stream_harness.h"

#define CALL_TIMEOUT_MS 10000
#define WAIT_MS (IT_WAIT_MS * IT_SLOW)

/* ---- an event log shared by every interceptor of a test ---- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char event_log[4096];

static void log_reset(void) {
  pthread_mutex_lock(&log_lock);
  event_log[0] = '\0';
  pthread_mutex_unlock(&log_lock);
}

static void log_event(const char *fmt, ...) CGRPC_PRINTF(1, 2);
static void log_event(const char *fmt, ...) {
  va_list ap;
  size_t n;
  pthread_mutex_lock(&log_lock);
  n = strlen(event_log);
  if (n + 2 < sizeof event_log) {
    if (n)
      event_log[n++] = ' ';
    va_start(ap, fmt);
    vsnprintf(event_log + n, sizeof event_log - n, fmt, ap);
    va_end(ap);
  }
  pthread_mutex_unlock(&log_lock);
}

static void log_copy(char *out, size_t size) {
  pthread_mutex_lock(&log_lock);
  snprintf(out, size, "%s", event_log);
  pthread_mutex_unlock(&log_lock);
}

/* ---- a configurable interceptor that records what it sees ---- */

typedef struct tap {
  const char *name;
  int log;          /* log start/end events */
  int log_messages; /* log each message (name.send / name.recv) */
  /* What on_start does. */
  cgrpc_status_code reject;
  const char *reject_message;
  const char *reject_if_key; /* reject only when the metadata has it */
  const char *add_key, *add_value;
  const char *add_trailer_key, *add_trailer_value;
  const char *watch_key;         /* read from the metadata on_start gets */
  const char *watch_trailer_key; /* read from on_end's trailing */
  /* What it saw (the last call; lock). */
  pthread_mutex_t lock;
  atomic_int starts, ends, sent, received, slot_errors;
  cgrpc_status_code end_code;
  char end_message[128];
  char method[96], authority[96], peer_start[96], peer_end[96];
  char watched[64], watched_trailer[64];
  int64_t deadline_ns, start_ns, start_clock_ns;
  int kind, is_client;
  pthread_t start_thread, end_thread;
} tap;

/* One call's slot: made in on_start, checked and freed in on_end. */
typedef struct slot {
  unsigned magic;
  tap *t;
  int64_t start_ns;
  int msgs;
} slot;
#define SLOT_MAGIC 0x51075107u

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void copy_str(char *out, size_t size, const char *s) {
  snprintf(out, size, "%s", s ? s : "-");
}

static void tap_init(tap *t, const char *name) {
  memset(t, 0, sizeof *t);
  t->name = name;
  t->log = 1;
  t->end_code = (cgrpc_status_code)-1;
  copy_str(t->watched, sizeof t->watched, NULL);
  pthread_mutex_init(&t->lock, NULL);
}

static void tap_fini(tap *t) { pthread_mutex_destroy(&t->lock); }

static cgrpc_status_code tap_start(const cgrpc_interceptor_info *info,
                                   const cgrpc_metadata_array *md,
                                   cgrpc_metadata_array *send_initial,
                                   cgrpc_metadata_array *send_trailing,
                                   char *message, size_t message_size,
                                   void **call_data, void *user_data) {
  tap *t = user_data;
  slot *s = calloc(1, sizeof *s);
  if (s) {
    s->magic = SLOT_MAGIC;
    s->t = t;
    s->start_ns = info->start_ns;
  }
  *call_data = s;
  if (t->log)
    log_event("%s.start", t->name);
  pthread_mutex_lock(&t->lock);
  copy_str(t->method, sizeof t->method, info->method);
  copy_str(t->authority, sizeof t->authority, info->authority);
  copy_str(t->peer_start, sizeof t->peer_start, info->peer);
  /* Kept from an earlier call that had it when this one has not. */
  if (t->watch_key && it_md_get(md, t->watch_key))
    copy_str(t->watched, sizeof t->watched, it_md_get(md, t->watch_key));
  t->deadline_ns = info->deadline_ns;
  t->start_ns = info->start_ns;
  t->start_clock_ns = mono_ns();
  t->kind = info->kind;
  t->is_client = info->is_client;
  t->start_thread = pthread_self();
  pthread_mutex_unlock(&t->lock);
  atomic_fetch_add(&t->starts, 1);
  if (t->add_key &&
      cgrpc_metadata_array_add(send_initial, t->add_key, t->add_value) != 0)
    atomic_fetch_add(&t->slot_errors, 1);
  if (t->add_trailer_key &&
      (!send_trailing ||
       cgrpc_metadata_array_add(send_trailing, t->add_trailer_key,
                                t->add_trailer_value) != 0))
    atomic_fetch_add(&t->slot_errors, 1);
  if (t->reject != CGRPC_STATUS_OK &&
      (!t->reject_if_key || it_md_get(md, t->reject_if_key))) {
    if (t->reject_message)
      snprintf(message, message_size, "%s", t->reject_message);
    return t->reject;
  }
  return CGRPC_STATUS_OK;
}

static void tap_message(const cgrpc_interceptor_info *info, int direction,
                        const ProtobufCMessage *msg, void *call_data,
                        void *user_data) {
  tap *t = user_data;
  slot *s = call_data;
  (void)info;
  if (!s || s->magic != SLOT_MAGIC || s->t != t || !msg)
    atomic_fetch_add(&t->slot_errors, 1);
  else
    s->msgs++;
  if (direction == CGRPC_INTERCEPT_SEND)
    atomic_fetch_add(&t->sent, 1);
  else
    atomic_fetch_add(&t->received, 1);
  if (t->log_messages)
    log_event("%s.%s", t->name,
              direction == CGRPC_INTERCEPT_SEND ? "send" : "recv");
}

static void tap_end(const cgrpc_interceptor_info *info, cgrpc_status_code code,
                    const char *message, const cgrpc_metadata_array *trailing,
                    void *call_data, void *user_data) {
  tap *t = user_data;
  slot *s = call_data;
  if (!s || s->magic != SLOT_MAGIC || s->t != t ||
      s->start_ns != info->start_ns)
    atomic_fetch_add(&t->slot_errors, 1);
  if (s) {
    s->magic = 0;
    free(s);
  }
  if (t->log)
    log_event("%s.end", t->name);
  pthread_mutex_lock(&t->lock);
  t->end_code = code;
  copy_str(t->end_message, sizeof t->end_message, message);
  copy_str(t->peer_end, sizeof t->peer_end, info->peer);
  copy_str(t->watched_trailer, sizeof t->watched_trailer,
           t->watch_trailer_key ? it_md_get(trailing, t->watch_trailer_key)
                                : NULL);
  t->end_thread = pthread_self();
  pthread_mutex_unlock(&t->lock);
  atomic_fetch_add(&t->ends, 1);
}

static cgrpc_interceptor tap_interceptor(tap *t, int with_messages) {
  cgrpc_interceptor ic = {0};
  ic.on_start = tap_start;
  ic.on_message = with_messages ? tap_message : NULL;
  ic.on_end = tap_end;
  ic.user_data = t;
  return ic;
}

/* The last end code, once |n| calls have ended (bounded wait). */
static cgrpc_status_code tap_wait_end(tap *t, int n) {
  cgrpc_status_code code;
  it_wait_flag(&t->ends, n, WAIT_MS);
  pthread_mutex_lock(&t->lock);
  code = t->end_code;
  pthread_mutex_unlock(&t->lock);
  return code;
}

/* Waits (bounded) for |*v| to come down to 0; returns its last value. */
static int wait_zero(const atomic_int *v) {
  int64_t until = it_now_ms() + WAIT_MS;
  int n;
  while ((n = atomic_load(v)) != 0 && it_now_ms() < until)
    it_sleep_ms(2);
  return n;
}

/* ---- a server with interceptors: EchoService and StreamService ---- */

typedef struct isrv {
  cgrpc_server *server;
  int port;
  char target[64];
  echo_stats echo;
  stream_stats stream;
} isrv;

static void isrv_start(isrv *s, tap *const *taps, size_t n, int max_workers,
                       int with_messages) {
  cgrpc_server_options *o;
  size_t i;
  memset(s, 0, sizeof *s);
  echo_stats_reset(&s->echo);
  assert_int_equal(cgrpc_server_options_new(&o), 0);
  if (max_workers >= 0)
    cgrpc_server_options_set_max_workers(o, max_workers);
  assert_int_equal(cgrpc_server_new(&s->server, o), 0);
  cgrpc_server_options_del(o);
  assert_int_equal(
      cgrpc_server_add_insecure_port(s->server, "127.0.0.1:0", &s->port), 0);
  assert_int_equal(echo_service_register(s->server, &s->echo), 0);
  assert_int_equal(stream_service_register(s->server, &s->stream), 0);
  for (i = 0; i < n; i++) {
    cgrpc_interceptor ic = tap_interceptor(taps[i], with_messages);
    assert_int_equal(cgrpc_server_add_interceptor(s->server, &ic), 0);
  }
  assert_int_equal(cgrpc_server_start(s->server), 0);
  snprintf(s->target, sizeof s->target, "127.0.0.1:%d", s->port);
}

static void isrv_stop(isrv *s) {
  if (s->server) {
    cgrpc_server_shutdown(s->server, 1000);
    cgrpc_server_del(s->server);
    s->server = NULL;
  }
}

/* A channel to |target| with the client interceptors |taps|. */
static cgrpc_channel *ichannel(const char *target, tap *const *taps, size_t n,
                               int with_messages) {
  cgrpc_channel_options *o;
  cgrpc_channel *ch = NULL;
  size_t i;
  assert_int_equal(cgrpc_channel_options_new(&o), 0);
  for (i = 0; i < n; i++) {
    cgrpc_interceptor ic = tap_interceptor(taps[i], with_messages);
    assert_int_equal(cgrpc_channel_options_add_interceptor(o, &ic), 0);
  }
  assert_int_equal(cgrpc_channel_new(&ch, target, o), 0);
  cgrpc_channel_options_del(o);
  return ch;
}

static cgrpc_status_code echo(cgrpc_channel *ch, Cgrpc__Test__EchoRequest *req,
                              const cgrpc_metadata_array *md,
                              int64_t timeout_ms, cgrpc_status *st) {
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_call_options opts = {0};
  cgrpc_status_code code;
  opts.timeout_ms = timeout_ms ? timeout_ms : CALL_TIMEOUT_MS;
  opts.metadata = md;
  code = cgrpc__test__echo_service__echo__call(ch, req, &reply, &opts, st);
  if (reply) {
    if (code == CGRPC_STATUS_OK && req->message && reply->message)
      assert_string_equal(reply->message, req->message);
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  }
  return code;
}

/* ---- tests ---- */

/* Two server and two client interceptors: on_start in the order added,
 * on_end in reverse, on both sides; an interceptor without callbacks is
 * harmless. */
static void test_intercept_chain_order(void **state) {
  tap s1, s2, c1, c2;
  tap *stabs[2] = {&s1, &s2}, *ctabs[2] = {&c1, &c2};
  cgrpc_interceptor empty = {0};
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  cgrpc_channel_options *o;
  cgrpc_channel *ch;
  isrv srv;
  char got[4096];
  (void)state;
  tap_init(&s1, "S1");
  tap_init(&s2, "S2");
  tap_init(&c1, "C1");
  tap_init(&c2, "C2");
  log_reset();
  isrv_start(&srv, stabs, 2, -1, 0);
  ch = ichannel(srv.target, ctabs, 2, 0);
  req.message = "order";
  assert_int_equal(echo(ch, &req, NULL, 0, NULL), CGRPC_STATUS_OK);
  assert_int_equal(tap_wait_end(&s1, 1), CGRPC_STATUS_OK);
  log_copy(got, sizeof got);
  /* The client's ends come before the reply is handed over; the server's
   * after the response went, so they may interleave with the client's. */
  assert_non_null(strstr(got, "C1.start C2.start S1.start S2.start"));
  {
    const char *c2e = strstr(got, "C2.end"), *c1e = strstr(got, "C1.end");
    const char *s2e = strstr(got, "S2.end"), *s1e = strstr(got, "S1.end");
    assert_true(c2e && c1e && c2e < c1e);
    assert_true(s2e && s1e && s2e < s1e);
  }
  assert_int_equal(atomic_load(&c1.slot_errors) + atomic_load(&c2.slot_errors) +
                       atomic_load(&s1.slot_errors) +
                       atomic_load(&s2.slot_errors),
                   0);
  cgrpc_channel_del(ch);

  /* Adding is refused once the server runs; NULL is refused. */
  assert_int_equal(cgrpc_server_add_interceptor(srv.server, &empty),
                   CGRPC_ERR_INVALID_STATE);
  assert_int_equal(cgrpc_server_add_interceptor(NULL, &empty),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_channel_options_new(&o), 0);
  assert_int_equal(cgrpc_channel_options_add_interceptor(o, NULL),
                   CGRPC_ERR_INVALID_ARGUMENT);
  /* An interceptor with no callbacks, and the options used for two
   * channels (each copies the chain). */
  assert_int_equal(cgrpc_channel_options_add_interceptor(o, &empty), 0);
  {
    cgrpc_interceptor ic = tap_interceptor(&c1, 0);
    cgrpc_channel *ch2;
    assert_int_equal(cgrpc_channel_options_add_interceptor(o, &ic), 0);
    assert_int_equal(cgrpc_channel_new(&ch, srv.target, o), 0);
    assert_int_equal(cgrpc_channel_new(&ch2, srv.target, o), 0);
    cgrpc_channel_options_del(o);
    assert_int_equal(echo(ch, &req, NULL, 0, NULL), CGRPC_STATUS_OK);
    assert_int_equal(echo(ch2, &req, NULL, 0, NULL), CGRPC_STATUS_OK);
    assert_int_equal(atomic_load(&c1.starts), 3);
    assert_int_equal(atomic_load(&c1.ends), 3);
    cgrpc_channel_del(ch);
    cgrpc_channel_del(ch2);
  }
  isrv_stop(&srv);
  tap_fini(&s1);
  tap_fini(&s2);
  tap_fini(&c1);
  tap_fini(&c2);
}

/* Metadata: the client's interceptor sees the call's metadata and adds to
 * the request; the server's sees both and adds response headers and
 * trailers, which the client's on_end and the caller get. */
static void test_intercept_metadata(void **state) {
  tap s, c;
  tap *stabs[1] = {&s}, *ctabs[1] = {&c};
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  cgrpc_metadata_array *md;
  cgrpc_status st = {0};
  cgrpc_channel *ch;
  isrv srv;
  (void)state;
  tap_init(&s, "S");
  tap_init(&c, "C");
  c.watch_key = "x-app";
  c.add_key = "x-client-added";
  c.add_value = "by-client-interceptor";
  c.watch_trailer_key = "x-server-trailer";
  s.watch_key = "x-client-added";
  s.add_key = "x-server-initial";
  s.add_value = "hello";
  s.add_trailer_key = "x-server-trailer";
  s.add_trailer_value = "bye";
  s.watch_trailer_key = "x-server-trailer";
  isrv_start(&srv, stabs, 1, -1, 0);
  ch = ichannel(srv.target, ctabs, 1, 0);
  assert_int_equal(cgrpc_metadata_array_new(&md), 0);
  assert_int_equal(cgrpc_metadata_array_add(md, "x-app", "app-value"), 0);
  req.message = "metadata";
  req.echo_metadata = 1; /* the handler echoes the request's metadata */
  assert_int_equal(echo(ch, &req, md, 0, &st), CGRPC_STATUS_OK);
  assert_string_equal(c.watched, "app-value");
  assert_string_equal(s.watched, "by-client-interceptor");
  assert_string_equal(it_md_get(st.initial_metadata, "x-server-initial"),
                      "hello");
  /* The handler saw what the client's interceptor added. */
  assert_string_equal(it_md_get(st.initial_metadata, "x-client-added"),
                      "by-client-interceptor");
  assert_string_equal(it_md_get(st.trailing_metadata, "x-server-trailer"),
                      "bye");
  assert_string_equal(it_md_get(st.trailing_metadata, "x-client-added-trailer"),
                      "by-client-interceptor");
  assert_string_equal(c.watched_trailer, "bye");
  assert_int_equal(tap_wait_end(&s, 1), CGRPC_STATUS_OK);
  assert_string_equal(s.watched_trailer, "bye");
  cgrpc_status_clear(&st);

  /* The same on a call whose answer is Trailers-Only (an error). */
  req.status_code = CGRPC_STATUS_NOT_FOUND;
  req.status_message = "nothing here";
  assert_int_equal(echo(ch, &req, md, 0, &st), CGRPC_STATUS_NOT_FOUND);
  assert_string_equal(it_md_get(st.trailing_metadata, "x-server-initial"),
                      "hello");
  assert_string_equal(it_md_get(st.trailing_metadata, "x-server-trailer"),
                      "bye");
  assert_int_equal(tap_wait_end(&s, 2), CGRPC_STATUS_NOT_FOUND);
  cgrpc_status_clear(&st);
  cgrpc_metadata_array_del(md);
  cgrpc_channel_del(ch);
  isrv_stop(&srv);
  tap_fini(&s);
  tap_fini(&c);
}

/* A server interceptor rejects: the handler never runs, the client gets
 * the status and the message (and the metadata added so far), and every
 * started interceptor (the rejecting one too) gets on_end; one after it is
 * not started.  Streams are rejected as unary calls are. */
static void test_intercept_server_reject(void **state) {
  tap s1, s2, s3;
  tap *stabs[3] = {&s1, &s2, &s3};
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  cgrpc_status st = {0};
  cgrpc_channel *ch;
  isrv srv;
  char got[4096];
  (void)state;
  tap_init(&s1, "S1");
  tap_init(&s2, "S2");
  tap_init(&s3, "S3");
  s1.add_key = "x-before-reject";
  s1.add_value = "yes";
  s2.reject = CGRPC_STATUS_PERMISSION_DENIED;
  s2.reject_message = "denied by policy";
  log_reset();
  isrv_start(&srv, stabs, 3, -1, 0);
  assert_int_equal(cgrpc_channel_new(&ch, srv.target, NULL), 0);
  req.message = "let me in";
  assert_int_equal(echo(ch, &req, NULL, 0, &st),
                   CGRPC_STATUS_PERMISSION_DENIED);
  assert_non_null(st.message);
  assert_string_equal(st.message, "denied by policy");
  assert_string_equal(it_md_get(st.trailing_metadata, "x-before-reject"),
                      "yes");
  cgrpc_status_clear(&st);
  assert_int_equal(tap_wait_end(&s1, 1), CGRPC_STATUS_PERMISSION_DENIED);
  assert_int_equal(tap_wait_end(&s2, 1), CGRPC_STATUS_PERMISSION_DENIED);
  assert_string_equal(s1.end_message, "denied by policy");
  assert_int_equal(atomic_load(&s3.starts), 0);
  assert_int_equal(atomic_load(&s3.ends), 0);
  assert_int_equal(atomic_load(&srv.echo.calls), 0);
  log_copy(got, sizeof got);
  assert_string_equal(got, "S1.start S2.start S2.end S1.end");

  /* A bidi stream is refused the same way: the handler never reads. */
  {
    cgrpc_call *call = NULL;
    Cgrpc__Test__Chunk c = CGRPC__TEST__CHUNK__INIT, *r = NULL;
    cgrpc_call_options opts = {.timeout_ms = CALL_TIMEOUT_MS};
    assert_int_equal(cgrpc__test__stream_service__chat__open(ch, &opts, &call),
                     0);
    cgrpc__test__stream_service__chat__write(call, &c); /* may be CLOSED */
    cgrpc_call_writes_done(call);
    assert_int_equal(cgrpc__test__stream_service__chat__read(call, &r), 0);
    assert_int_equal(cgrpc_call_finish(call, &st),
                     CGRPC_STATUS_PERMISSION_DENIED);
    assert_string_equal(st.message, "denied by policy");
    cgrpc_status_clear(&st);
    cgrpc_call_unref(call);
    assert_int_equal(tap_wait_end(&s1, 2), CGRPC_STATUS_PERMISSION_DENIED);
  }
  cgrpc_channel_del(ch);
  isrv_stop(&srv);
  tap_fini(&s1);
  tap_fini(&s2);
  tap_fini(&s3);
}

/* A client interceptor rejects: the call fails with its status and
 * message, in the blocking, async and streaming forms, and nothing goes
 * to the wire: the server sees no call and the channel never connects. */
static void test_intercept_client_reject(void **state) {
  tap s, c;
  tap *stabs[1] = {&s}, *ctabs[1] = {&c};
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  cgrpc_status st = {0};
  cgrpc_channel *ch;
  isrv srv;
  it_async a;
  (void)state;
  tap_init(&s, "S");
  tap_init(&c, "C");
  c.reject = CGRPC_STATUS_UNAUTHENTICATED;
  c.reject_message = "no token";
  isrv_start(&srv, stabs, 1, -1, 0);
  ch = ichannel(srv.target, (tap *const *)ctabs, 1, 1);
  req.message = "nope";
  assert_int_equal(echo(ch, &req, NULL, 0, &st), CGRPC_STATUS_UNAUTHENTICATED);
  assert_string_equal(st.message, "no token");
  cgrpc_status_clear(&st);
  assert_int_equal(c.end_code, CGRPC_STATUS_UNAUTHENTICATED);
  assert_string_equal(c.end_message, "no token");
  assert_string_equal(c.peer_end, "-");      /* it never got a connection */
  assert_int_equal(atomic_load(&c.sent), 0); /* nor did its request go */

  it_async_init(&a);
  assert_int_equal(cgrpc__test__echo_service__echo__start(
                       ch, &req, NULL, it_async_done, &a, NULL),
                   0);
  assert_int_equal(it_async_wait(&a, WAIT_MS), 1);
  IT_ASSERT_STATUS(a.status, CGRPC_STATUS_UNAUTHENTICATED);
  assert_string_equal(a.status.message, "no token");
  it_async_fini(&a);
  {
    cgrpc_call *call = NULL;
    Cgrpc__Test__Chunk *r = NULL;
    assert_int_equal(cgrpc__test__stream_service__chat__open(ch, NULL, &call),
                     0);
    assert_int_equal(cgrpc__test__stream_service__chat__read(call, &r), 0);
    assert_int_equal(cgrpc_call_finish(call, &st),
                     CGRPC_STATUS_UNAUTHENTICATED);
    cgrpc_status_clear(&st);
    cgrpc_call_unref(call);
  }
  assert_int_equal(atomic_load(&c.starts), 3);
  assert_int_equal(atomic_load(&c.ends), 3);
  assert_int_equal(atomic_load(&c.slot_errors), 0);
  assert_int_equal(atomic_load(&s.starts), 0);
  assert_int_equal(atomic_load(&srv.echo.calls), 0);
  assert_int_equal(cgrpc_channel_get_state(ch, 0), CGRPC_CHANNEL_IDLE);
  cgrpc_channel_del(ch);
  isrv_stop(&srv);
  tap_fini(&s);
  tap_fini(&c);
}

/* The info: method, kind, authority, peer (the client's once it has a
 * connection), the deadline on CLOCK_MONOTONIC, is_client; and the
 * threads: the client's on_start on the caller's, the server's on its
 * loop. */
static void test_intercept_info(void **state) {
  tap s, c;
  tap *stabs[1] = {&s}, *ctabs[1] = {&c};
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  cgrpc_channel *ch;
  isrv srv;
  char want[96];
  int64_t before;
  (void)state;
  tap_init(&s, "S");
  tap_init(&c, "C");
  isrv_start(&srv, stabs, 1, -1, 0);
  ch = ichannel(srv.target, ctabs, 1, 0);
  req.message = "info";
  before = mono_ns();
  assert_int_equal(echo(ch, &req, NULL, 5000, NULL), CGRPC_STATUS_OK);
  assert_int_equal(tap_wait_end(&s, 1), CGRPC_STATUS_OK);

  assert_string_equal(c.method, "/cgrpc.test.EchoService/Echo");
  assert_string_equal(s.method, "/cgrpc.test.EchoService/Echo");
  assert_int_equal(c.kind, CGRPC_METHOD_UNARY);
  assert_int_equal(s.kind, CGRPC_METHOD_UNARY);
  assert_int_equal(c.is_client, 1);
  assert_int_equal(s.is_client, 0);
  assert_string_equal(c.authority, srv.target);
  assert_string_equal(s.authority, srv.target);
  snprintf(want, sizeof want, "ipv4:%s", srv.target);
  assert_string_equal(c.peer_start, "-");
  assert_string_equal(c.peer_end, want);
  assert_int_equal(strncmp(s.peer_start, "ipv4:127.0.0.1:", 15), 0);
  assert_string_equal(s.peer_end, s.peer_start);
  /* 5 s ahead of the call's start, on the monotonic clock. */
  assert_true(c.deadline_ns >= before + 5000LL * 1000000);
  assert_true(c.deadline_ns <= c.start_clock_ns + 5000LL * 1000000);
  assert_true(s.deadline_ns > s.start_clock_ns);
  assert_true(s.deadline_ns <= c.deadline_ns + 100LL * 1000000);
  assert_true(c.start_ns >= before && c.start_ns <= c.start_clock_ns);
  assert_true(pthread_equal(c.start_thread, pthread_self()));
  assert_false(pthread_equal(s.start_thread, pthread_self()));

  /* Without a deadline: 0. */
  assert_int_equal(
      cgrpc__test__echo_service__echo__call(ch, &req, NULL, NULL, NULL),
      CGRPC_STATUS_INVALID_ARGUMENT); /* NULL reply: misuse */
  {
    Cgrpc__Test__EchoReply *reply = NULL;
    assert_int_equal(
        cgrpc__test__echo_service__echo__call(ch, &req, &reply, NULL, NULL),
        CGRPC_STATUS_OK);
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  }
  assert_int_equal(c.deadline_ns, 0);
  assert_int_equal(tap_wait_end(&s, 2), CGRPC_STATUS_OK);
  assert_int_equal(s.deadline_ns, 0);
  cgrpc_channel_del(ch);
  isrv_stop(&srv);
  tap_fini(&s);
  tap_fini(&c);
}

/* What on_end gets: OK, a handler's error with its message, a client's
 * cancel, and a deadline (the client's; and the server's, with a raw
 * client that does not reset the stream at its deadline). */
static void test_intercept_end_status(void **state) {
  tap s, c;
  tap *stabs[1] = {&s}, *ctabs[1] = {&c};
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  cgrpc_channel *ch;
  isrv srv;
  it_async a;
  cgrpc_call *call = NULL;
  (void)state;
  tap_init(&s, "S");
  tap_init(&c, "C");
  isrv_start(&srv, stabs, 1, -1, 0);
  ch = ichannel(srv.target, ctabs, 1, 0);

  req.message = "ok";
  assert_int_equal(echo(ch, &req, NULL, 0, NULL), CGRPC_STATUS_OK);
  assert_int_equal(c.end_code, CGRPC_STATUS_OK);
  assert_string_equal(c.end_message, "-");
  assert_int_equal(tap_wait_end(&s, 1), CGRPC_STATUS_OK);

  req.status_code = CGRPC_STATUS_FAILED_PRECONDITION;
  req.status_message = "not yet";
  assert_int_equal(echo(ch, &req, NULL, 0, NULL),
                   CGRPC_STATUS_FAILED_PRECONDITION);
  assert_int_equal(c.end_code, CGRPC_STATUS_FAILED_PRECONDITION);
  assert_string_equal(c.end_message, "not yet");
  assert_int_equal(tap_wait_end(&s, 2), CGRPC_STATUS_FAILED_PRECONDITION);
  assert_string_equal(s.end_message, "not yet");

  /* Cancel once the handler runs. */
  req.status_code = 0;
  req.status_message = "";
  req.sleep_ms = 5000;
  it_async_init(&a);
  assert_int_equal(cgrpc__test__echo_service__echo__start(
                       ch, &req, NULL, it_async_done, &a, &call),
                   0);
  assert_int_equal(it_wait_flag(&srv.echo.in_flight, 1, WAIT_MS), 1);
  cgrpc_call_cancel(call);
  assert_int_equal(it_async_wait(&a, WAIT_MS), 1);
  IT_ASSERT_STATUS(a.status, CGRPC_STATUS_CANCELLED);
  assert_int_equal(c.end_code, CGRPC_STATUS_CANCELLED);
  assert_int_equal(tap_wait_end(&s, 3), CGRPC_STATUS_CANCELLED);
  cgrpc_call_unref(call);
  it_async_fini(&a);
  assert_int_equal(wait_zero(&srv.echo.in_flight), 0);

  /* The client's deadline. */
  assert_int_equal(echo(ch, &req, NULL, 200, NULL),
                   CGRPC_STATUS_DEADLINE_EXCEEDED);
  assert_int_equal(c.end_code, CGRPC_STATUS_DEADLINE_EXCEEDED);
  /* The server sees the client's reset, or its own deadline first. */
  {
    cgrpc_status_code code = tap_wait_end(&s, 4);
    assert_true(code == CGRPC_STATUS_DEADLINE_EXCEEDED ||
                code == CGRPC_STATUS_CANCELLED);
  }
  assert_int_equal(wait_zero(&srv.echo.in_flight), 0);

  /* The server's own deadline: a raw client sends grpc-timeout 200m and
   * waits. */
  {
    h2raw_buf b, msg;
    int fd;
    h2raw_buf_init(&b);
    h2raw_buf_init(&msg);
    it_raw_client_greeting(&b);
    it_raw_request_headers(&b, 1, "/cgrpc.test.EchoService/Echo", srv.port,
                           "200m", NULL);
    it_raw_grpc_message(&msg, &req.base);
    h2raw_data(&b, 1, 1, msg.data, msg.len);
    fd = h2raw_connect(srv.port, 0);
    assert_true(fd >= 0);
    assert_int_equal(h2raw_send(fd, b.data, b.len), 0);
    assert_int_equal(tap_wait_end(&s, 5), CGRPC_STATUS_DEADLINE_EXCEEDED);
    close(fd);
    h2raw_buf_free(&b);
    h2raw_buf_free(&msg);
  }
  assert_int_equal(atomic_load(&s.slot_errors) + atomic_load(&c.slot_errors),
                   0);
  cgrpc_channel_del(ch);
  isrv_stop(&srv);
  tap_fini(&s);
  tap_fini(&c);
}

/* Message hooks on a bidi stream (blocking client, pooled server): each
 * side's interceptors see every message in the direction it goes,
 * requests in the order added, responses in reverse. */
static void test_intercept_stream_messages(void **state) {
  tap s1, s2, c1, c2, plain;
  tap *stabs[2] = {&s1, &s2}, *ctabs[2] = {&c1, &c2};
  cgrpc_channel *ch;
  cgrpc_call *call = NULL;
  Cgrpc__Test__Chunk c = CGRPC__TEST__CHUNK__INIT, *r = NULL;
  cgrpc_call_options opts = {.timeout_ms = CALL_TIMEOUT_MS};
  isrv srv;
  char got[4096];
  int i;
  (void)state;
  tap_init(&s1, "S1");
  tap_init(&s2, "S2");
  tap_init(&c1, "C1");
  tap_init(&c2, "C2");
  tap_init(&plain, "P");
  s1.log = s2.log = c1.log = c2.log = 0;
  s1.log_messages = s2.log_messages = c1.log_messages = c2.log_messages = 1;
  isrv_start(&srv, stabs, 2, -1, 1);
  ch = ichannel(srv.target, ctabs, 2, 1);
  log_reset();
  assert_int_equal(cgrpc__test__stream_service__chat__open(ch, &opts, &call),
                   0);
  /* Ping-pong, so that the log has a fixed order. */
  for (i = 0; i < 3; i++) {
    c.seq = i;
    assert_int_equal(cgrpc__test__stream_service__chat__write(call, &c), 0);
    assert_int_equal(cgrpc__test__stream_service__chat__read(call, &r), 1);
    assert_int_equal(r->seq, i);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    log_copy(got, sizeof got);
    /* This round's four hops, in order; the client's receive is logged
     * by the loop as the echo arrives, before the read returns. */
    assert_non_null(strstr(got, "C1.send C2.send S1.recv S2.recv S2.send "
                                "S1.send C2.recv C1.recv"));
    log_reset();
  }
  cgrpc_call_writes_done(call);
  assert_int_equal(cgrpc__test__stream_service__chat__read(call, &r), 0);
  assert_int_equal(cgrpc_call_finish(call, NULL), CGRPC_STATUS_OK);
  cgrpc_call_unref(call);
  assert_int_equal(tap_wait_end(&s1, 1), CGRPC_STATUS_OK);
  assert_int_equal(atomic_load(&c1.sent), 3);
  assert_int_equal(atomic_load(&c1.received), 3);
  assert_int_equal(atomic_load(&s1.sent), 3);
  assert_int_equal(atomic_load(&s1.received), 3);
  assert_int_equal(atomic_load(&s2.received), 3);
  assert_int_equal(atomic_load(&c2.sent), 3);

  /* A server-streaming Download and a client-streaming Upload. */
  {
    Cgrpc__Test__DownloadRequest dreq = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
    Cgrpc__Test__UploadSummary *sum = NULL;
    cgrpc_call *up = NULL;
    int n = 0;
    dreq.count = 5;
    dreq.size = 10;
    assert_int_equal(
        cgrpc__test__stream_service__download__open(ch, &dreq, &opts, &call),
        0);
    while (cgrpc__test__stream_service__download__read(call, &r) == 1) {
      protobuf_c_message_free_unpacked(&r->base, NULL);
      n++;
    }
    assert_int_equal(n, 5);
    assert_int_equal(cgrpc_call_finish(call, NULL), CGRPC_STATUS_OK);
    cgrpc_call_unref(call);
    assert_int_equal(atomic_load(&c1.sent), 4);
    assert_int_equal(atomic_load(&c1.received), 8);
    assert_int_equal(tap_wait_end(&s1, 2), CGRPC_STATUS_OK);
    assert_int_equal(atomic_load(&s1.received), 4);
    assert_int_equal(atomic_load(&s1.sent), 8);

    assert_int_equal(cgrpc__test__stream_service__upload__open(ch, &opts, &up),
                     0);
    for (i = 0; i < 4; i++) {
      c.seq = i + 1;
      assert_int_equal(cgrpc__test__stream_service__upload__write(up, &c), 0);
    }
    assert_int_equal(
        cgrpc__test__stream_service__upload__finish(up, &sum, NULL),
        CGRPC_STATUS_OK);
    assert_int_equal(sum->count, 4);
    protobuf_c_message_free_unpacked(&sum->base, NULL);
    cgrpc_call_unref(up);
    assert_int_equal(atomic_load(&c1.sent), 8);
    assert_int_equal(atomic_load(&c1.received), 9);
    assert_int_equal(tap_wait_end(&s1, 3), CGRPC_STATUS_OK);
    assert_int_equal(atomic_load(&s1.received), 8);
    assert_int_equal(atomic_load(&s1.sent), 9);
  }
  assert_int_equal(atomic_load(&s1.slot_errors) + atomic_load(&s2.slot_errors) +
                       atomic_load(&c1.slot_errors) +
                       atomic_load(&c2.slot_errors),
                   0);
  cgrpc_channel_del(ch);
  isrv_stop(&srv);

  /* Without on_message (on_start and on_end only), messages cost nothing
   * and are not reported. */
  {
    tap *ptabs[1] = {&plain};
    Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
    isrv_start(&srv, ptabs, 1, -1, 0);
    ch = ichannel(srv.target, ptabs, 1, 0);
    req.message = "plain";
    assert_int_equal(echo(ch, &req, NULL, 0, NULL), CGRPC_STATUS_OK);
    assert_int_equal(it_wait_flag(&plain.ends, 2, WAIT_MS), 2);
    assert_int_equal(atomic_load(&plain.sent) + atomic_load(&plain.received),
                     0);
    cgrpc_channel_del(ch);
    isrv_stop(&srv);
  }
  tap_fini(&s1);
  tap_fini(&s2);
  tap_fini(&c1);
  tap_fini(&c2);
  tap_fini(&plain);
}

/* ---- async calls ---- */

typedef struct async_chat {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int reads, done;
  cgrpc_status_code code;
  tap *t;
  int ended_before_done; /* the interceptor's on_end came first */
  pthread_t done_thread;
} async_chat;

static void ac_on_read(cgrpc_call *call, ProtobufCMessage *msg, void *ud) {
  async_chat *a = ud;
  if (!msg)
    return;
  protobuf_c_message_free_unpacked(msg, NULL);
  pthread_mutex_lock(&a->lock);
  a->reads++;
  pthread_mutex_unlock(&a->lock);
  cgrpc_call_read_async(call);
}

static void ac_on_done(cgrpc_call *call, const cgrpc_status *status, void *ud) {
  async_chat *a = ud;
  (void)call;
  pthread_mutex_lock(&a->lock);
  a->code = status->code;
  a->done = 1;
  a->ended_before_done = atomic_load(&a->t->ends) == 1;
  a->done_thread = pthread_self();
  pthread_cond_broadcast(&a->cond);
  pthread_mutex_unlock(&a->lock);
}

/* An async unary call and an async stream on an inline (max_workers 0)
 * server with an async servicer: the client's on_end runs on the
 * channel's thread before the completion; the hooks need no thread of
 * their own. */
static void test_intercept_async_calls(void **state) {
  tap s, c;
  tap *stabs[1] = {&s}, *ctabs[1] = {&c};
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  cgrpc_server_options *o;
  cgrpc_channel *ch;
  cgrpc_interceptor sic;
  isrv srv;
  it_async a;
  async_chat ac;
  cgrpc_call *call = NULL;
  cgrpc_call_callbacks cbs = {ac_on_read, NULL, ac_on_done};
  Cgrpc__Test__Chunk chunk = CGRPC__TEST__CHUNK__INIT;
  int i;
  (void)state;
  tap_init(&s, "S");
  tap_init(&c, "C");
  memset(&srv, 0, sizeof srv);
  assert_int_equal(cgrpc_server_options_new(&o), 0);
  cgrpc_server_options_set_max_workers(o, 0);
  assert_int_equal(cgrpc_server_new(&srv.server, o), 0);
  cgrpc_server_options_del(o);
  assert_int_equal(
      cgrpc_server_add_insecure_port(srv.server, "127.0.0.1:0", &srv.port), 0);
  assert_int_equal(stream_service_register_async(srv.server, &srv.stream), 0);
  sic = tap_interceptor(stabs[0], 1);
  assert_int_equal(cgrpc_server_add_interceptor(srv.server, &sic), 0);
  assert_int_equal(cgrpc_server_start(srv.server), 0);
  snprintf(srv.target, sizeof srv.target, "127.0.0.1:%d", srv.port);
  ch = ichannel(srv.target, ctabs, 1, 1);

  /* Async unary against an unregistered method: the server's
   * interceptors do not see it (no method took it). */
  it_async_init(&a);
  req.message = "async";
  assert_int_equal(cgrpc__test__echo_service__echo__start(
                       ch, &req, NULL, it_async_done, &a, NULL),
                   0);
  assert_int_equal(it_async_wait(&a, WAIT_MS), 1);
  IT_ASSERT_STATUS(a.status, CGRPC_STATUS_UNIMPLEMENTED);
  it_async_fini(&a);
  assert_int_equal(atomic_load(&c.ends), 1);
  assert_int_equal(c.end_code, CGRPC_STATUS_UNIMPLEMENTED);
  assert_false(pthread_equal(c.end_thread, pthread_self()));
  assert_int_equal(atomic_load(&s.starts), 0);

  /* An async bidi stream. */
  memset(&ac, 0, sizeof ac);
  pthread_mutex_init(&ac.lock, NULL);
  pthread_cond_init(&ac.cond, NULL);
  atomic_store(&c.ends, 0);
  ac.t = &c;
  assert_int_equal(
      cgrpc__test__stream_service__chat__new_async(ch, NULL, &cbs, &ac, &call),
      0);
  assert_int_equal(cgrpc_call_read_async(call), 0);
  assert_int_equal(cgrpc_call_start(call), 0);
  chunk.seq = 1;
  assert_int_equal(cgrpc__test__stream_service__chat__write_async(call, &chunk),
                   0);
  {
    int64_t until = it_now_ms() + WAIT_MS;
    pthread_mutex_lock(&ac.lock);
    while (ac.reads < 1 && it_now_ms() < until) {
      pthread_mutex_unlock(&ac.lock);
      it_sleep_ms(2);
      pthread_mutex_lock(&ac.lock);
    }
    pthread_mutex_unlock(&ac.lock);
  }
  cgrpc_call_writes_done(call);
  for (i = 0; i < WAIT_MS / 5; i++) {
    int done;
    pthread_mutex_lock(&ac.lock);
    done = ac.done;
    pthread_mutex_unlock(&ac.lock);
    if (done)
      break;
    it_sleep_ms(5);
  }
  pthread_mutex_lock(&ac.lock);
  assert_int_equal(ac.done, 1);
  assert_int_equal(ac.code, CGRPC_STATUS_OK);
  assert_int_equal(ac.reads, 1);
  assert_int_equal(ac.ended_before_done, 1);
  assert_true(pthread_equal(ac.done_thread, c.end_thread));
  pthread_mutex_unlock(&ac.lock);
  cgrpc_call_unref(call);
  assert_int_equal(atomic_load(&c.sent), 2); /* the unary request too */
  assert_int_equal(atomic_load(&c.received), 1);
  assert_int_equal(tap_wait_end(&s, 1), CGRPC_STATUS_OK);
  assert_int_equal(atomic_load(&s.received), 1);
  assert_int_equal(atomic_load(&s.sent), 1);

  /* A call made with new_async and released unstarted still ends. */
  atomic_store(&c.ends, 0);
  assert_int_equal(
      cgrpc__test__stream_service__chat__new_async(ch, NULL, &cbs, &ac, &call),
      0);
  cgrpc_call_unref(call);
  assert_int_equal(atomic_load(&c.ends), 1);
  assert_int_equal(c.end_code, CGRPC_STATUS_CANCELLED);
  assert_int_equal(atomic_load(&s.slot_errors) + atomic_load(&c.slot_errors),
                   0);
  pthread_mutex_destroy(&ac.lock);
  pthread_cond_destroy(&ac.cond);
  cgrpc_channel_del(ch);
  isrv_stop(&srv);
  tap_fini(&s);
  tap_fini(&c);
}

/* The per-call slot with many calls in flight at once: each on_end gets
 * the slot its own on_start made (the tap checks the call's start time
 * against it), on both sides. */
static void test_intercept_slot_concurrent(void **state) {
  enum { N = 32 };
  tap s, c;
  tap *stabs[1] = {&s}, *ctabs[1] = {&c};
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  cgrpc_channel *ch;
  isrv srv;
  it_async a[N];
  int i;
  (void)state;
  tap_init(&s, "S");
  tap_init(&c, "C");
  s.log = c.log = 0;
  isrv_start(&srv, stabs, 1, -1, 1);
  ch = ichannel(srv.target, ctabs, 1, 1);
  req.message = "slot";
  req.sleep_ms = 20;
  for (i = 0; i < N; i++) {
    it_async_init(&a[i]);
    assert_int_equal(cgrpc__test__echo_service__echo__start(
                         ch, &req, NULL, it_async_done, &a[i], NULL),
                     0);
  }
  for (i = 0; i < N; i++) {
    assert_int_equal(it_async_wait(&a[i], WAIT_MS), 1);
    IT_ASSERT_STATUS(a[i].status, CGRPC_STATUS_OK);
    it_async_fini(&a[i]);
  }
  assert_int_equal(tap_wait_end(&s, N), CGRPC_STATUS_OK);
  assert_int_equal(atomic_load(&c.starts), N);
  assert_int_equal(atomic_load(&c.ends), N);
  assert_int_equal(atomic_load(&c.sent), N);
  assert_int_equal(atomic_load(&c.received), N);
  assert_int_equal(atomic_load(&s.starts), N);
  assert_int_equal(atomic_load(&s.received), N);
  assert_int_equal(atomic_load(&s.sent), N);
  assert_int_equal(atomic_load(&s.slot_errors) + atomic_load(&c.slot_errors),
                   0);
  cgrpc_channel_del(ch);
  isrv_stop(&srv);
  tap_fini(&s);
  tap_fini(&c);
}

/* ---- grpcio peers (registered by tests/interop when grpcio is there) ---- */

/* Starts /usr/bin/python3 |argv|...; with |port| not NULL, reads the port
 * the program prints on its first line, and leaves the pipe open in
 * |*pipe_fd| (close it once the program has gone), else the program
 * writes to our stdout.  Returns the pid, or -1. */
static pid_t py_spawn(char *const argv[], int *port, int *pipe_fd) {
  int fds[2] = {-1, -1};
  pid_t pid;
  if (port && pipe(fds) != 0)
    return -1;
  pid = fork();
  if (pid < 0) {
    if (port) {
      close(fds[0]);
      close(fds[1]);
    }
    return -1;
  }
  if (pid == 0) {
    if (port) {
      dup2(fds[1], 1);
      close(fds[0]);
      close(fds[1]);
    }
    execv("/usr/bin/python3", argv);
    _exit(127);
  }
  if (port) {
    close(fds[1]);
    char line[32];
    size_t n = 0;
    int64_t until = it_now_ms() + 20000 * IT_SLOW;
    *port = 0;
    while (n + 1 < sizeof line && it_now_ms() < until) {
      struct pollfd p = {fds[0], POLLIN, 0};
      ssize_t k;
      if (poll(&p, 1, 100) <= 0)
        continue;
      k = read(fds[0], line + n, 1);
      if (k <= 0)
        break;
      if (line[n] == '\n')
        break;
      n++;
    }
    line[n] = '\0';
    *port = atoi(line);
    *pipe_fd = fds[0];
  }
  return pid;
}

/* Waits up to |ms| for |pid|; kills it if it has not exited.  Returns its
 * exit status, or -1. */
static int py_wait(pid_t pid, int ms) {
  int64_t until = it_now_ms() + ms;
  int st;
  while (it_now_ms() < until) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid)
      return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    it_sleep_ms(20);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  return -1;
}

static const char *env_or_skip(const char *name) {
  const char *v = getenv(name);
  if (!v || !*v) {
    print_message("%s is not set: this test runs from tests/interop\n", name);
    skip();
  }
  return v;
}

/* Our client's interceptor against grpcio's EchoService: the metadata it
 * adds reaches the grpcio server (which echoes it back), and on_end sees
 * the status, the echoed trailer and the server's address. */
static void test_intercept_py_server(void **state) {
  const char *stubs = env_or_skip("CGRPC_TEST_PY_STUBS");
  const char *dir = env_or_skip("CGRPC_TEST_INTEROP_DIR");
  char script[512], stubs_arg[512], target[64], want[96];
  char *argv[] = {"/usr/bin/python3", script, "--port=0", stubs_arg, NULL};
  tap c;
  tap *ctabs[1] = {&c};
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  cgrpc_status st = {0};
  cgrpc_channel *ch;
  cgrpc_status_code code;
  int port = 0, out = -1;
  pid_t pid;
  (void)state;
  snprintf(script, sizeof script, "%s/py_echo_server.py", dir);
  snprintf(stubs_arg, sizeof stubs_arg, "--stubs-dir=%s", stubs);
  pid = py_spawn(argv, &port, &out);
  assert_true(pid > 0);
  if (port <= 0) {
    kill(pid, SIGKILL);
    py_wait(pid, 5000);
    close(out);
    fail_msg("py_echo_server.py printed no port");
  }
  tap_init(&c, "C");
  c.add_key = "x-intercepted";
  c.add_value = "by-cgrpc";
  c.watch_trailer_key = "x-intercepted-trailer";
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  ch = ichannel(target, ctabs, 1, 1);
  req.message = "to grpcio";
  req.echo_metadata = 1;
  code = echo(ch, &req, NULL, 0, &st);
  IT_CHECK(code == CGRPC_STATUS_OK, "status %s (%s)",
           cgrpc_status_code_name(code), st.message ? st.message : "");
  IT_CHECK(it_md_get(st.initial_metadata, "x-intercepted") &&
               strcmp(it_md_get(st.initial_metadata, "x-intercepted"),
                      "by-cgrpc") == 0,
           "grpcio did not see the interceptor's metadata");
  IT_CHECK(strcmp(c.watched_trailer, "by-cgrpc") == 0, "on_end trailer %s",
           c.watched_trailer);
  snprintf(want, sizeof want, "ipv4:%s", target);
  IT_CHECK(strcmp(c.peer_end, want) == 0, "peer %s", c.peer_end);
  IT_CHECK(atomic_load(&c.sent) == 1 && atomic_load(&c.received) == 1,
           "messages %d/%d", atomic_load(&c.sent), atomic_load(&c.received));
  cgrpc_status_clear(&st);

  /* An error from grpcio reaches on_end with its message. */
  req.status_code = CGRPC_STATUS_ABORTED;
  req.status_message = "py says no";
  code = echo(ch, &req, NULL, 0, &st);
  IT_CHECK(code == CGRPC_STATUS_ABORTED, "status %s",
           cgrpc_status_code_name(code));
  IT_CHECK(c.end_code == CGRPC_STATUS_ABORTED &&
               strcmp(c.end_message, "py says no") == 0,
           "on_end %s %s", cgrpc_status_code_name(c.end_code), c.end_message);
  cgrpc_status_clear(&st);
  cgrpc_channel_del(ch);
  kill(pid, SIGTERM);
  IT_CHECK(py_wait(pid, 10000 * IT_SLOW) == 0, "py_echo_server.py exit");
  close(out);
  tap_fini(&c);
  IT_CHECKS_DONE();
}

/* Our server's interceptor against grpcio's client
 * (py_intercept_client.py): the response metadata it adds reaches grpcio,
 * and a call it rejects fails there with its status and message. */
static void test_intercept_py_client(void **state) {
  const char *stubs = env_or_skip("CGRPC_TEST_PY_STUBS");
  const char *dir = env_or_skip("CGRPC_TEST_INTEROP_DIR");
  char script[512], stubs_arg[512], target_arg[96];
  char *argv[] = {"/usr/bin/python3", script, target_arg, stubs_arg, NULL};
  tap s;
  tap *stabs[1] = {&s};
  isrv srv;
  pid_t pid;
  int rc;
  (void)state;
  tap_init(&s, "S");
  s.log = 0;
  s.watch_key = "x-from-grpcio";
  s.add_key = "x-server-intercepted";
  s.add_value = "yes";
  s.add_trailer_key = "x-server-trailer";
  s.add_trailer_value = "done";
  s.reject = CGRPC_STATUS_PERMISSION_DENIED;
  s.reject_message = "denied by interceptor";
  s.reject_if_key = "x-deny";
  isrv_start(&srv, stabs, 1, -1, 1);
  snprintf(script, sizeof script, "%s/py_intercept_client.py", dir);
  snprintf(stubs_arg, sizeof stubs_arg, "--stubs-dir=%s", stubs);
  snprintf(target_arg, sizeof target_arg, "--target=%s", srv.target);
  pid = py_spawn(argv, NULL, NULL);
  assert_true(pid > 0);
  rc = py_wait(pid, 30000 * IT_SLOW);
  IT_CHECK(rc == 0, "py_intercept_client.py exited with %d", rc);
  IT_CHECK(tap_wait_end(&s, 2) == CGRPC_STATUS_PERMISSION_DENIED,
           "last on_end %s", cgrpc_status_code_name(s.end_code));
  IT_CHECK(atomic_load(&s.starts) == 2, "starts %d", atomic_load(&s.starts));
  IT_CHECK(atomic_load(&srv.echo.calls) == 1, "handler calls %d",
           atomic_load(&srv.echo.calls));
  IT_CHECK(strcmp(s.watched, "from-python") == 0, "metadata seen: %s",
           s.watched);
  IT_CHECK(strncmp(s.peer_start, "ipv4:127.0.0.1:", 15) == 0, "peer %s",
           s.peer_start);
  /* The rejected call's request never reached the interceptors. */
  IT_CHECK(atomic_load(&s.received) == 1 && atomic_load(&s.sent) == 1,
           "messages %d/%d", atomic_load(&s.received), atomic_load(&s.sent));
  isrv_stop(&srv);
  tap_fini(&s);
  IT_CHECKS_DONE();
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
#define T(name)                                                                \
  cmocka_unit_test_setup_teardown(name, it_watchdog_setup, it_watchdog_teardown)
      T(test_intercept_chain_order),
      T(test_intercept_metadata),
      T(test_intercept_server_reject),
      T(test_intercept_client_reject),
      T(test_intercept_info),
      T(test_intercept_end_status),
      T(test_intercept_stream_messages),
      T(test_intercept_async_calls),
      T(test_intercept_slot_concurrent),
  /* Registered by tests/interop (they need grpcio); P, not T, so that
   * tests/integration does not register them. */
#define P(name) T(name)
      P(test_intercept_py_server),
      P(test_intercept_py_client),
#undef P
#undef T
  };
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
