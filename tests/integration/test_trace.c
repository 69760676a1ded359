/* SPDX-License-Identifier: MIT */
/*
 * CGRPC_TRACE: the tracers it names write their events through the log
 * callback of the server or channel they are about (or to stderr when the
 * options set none), and nothing else is traced.  Each test runs in a
 * process of its own (one CTest entry each) and sets CGRPC_TRACE before the
 * first server or channel reads it.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"

/* ---- what the callbacks received ---- */

#define MAX_LINES 512

typedef struct capture {
  pthread_mutex_t lock;
  int n;
  char *lines[MAX_LINES];
} capture;

static capture server_log = {PTHREAD_MUTEX_INITIALIZER, 0, {0}};
static capture client_log = {PTHREAD_MUTEX_INITIALIZER, 0, {0}};

static void capture_cb(cgrpc_log_level level, const char *msg,
                       void *user_data) {
  capture *c = user_data;
  char *line = malloc(strlen(msg) + 12);
  if (!line)
    return;
  sprintf(line, "%d %s", (int)level, msg);
  pthread_mutex_lock(&c->lock);
  if (c->n < MAX_LINES)
    c->lines[c->n++] = line;
  else
    free(line);
  pthread_mutex_unlock(&c->lock);
}

/* How many lines of |c| contain every one of the NULL-terminated
 * substrings that follow. */
static int count_lines(capture *c, ...) {
  int i, found = 0;
  pthread_mutex_lock(&c->lock);
  for (i = 0; i < c->n; i++) {
    va_list ap;
    const char *want;
    int all = 1;
    va_start(ap, c);
    while ((want = va_arg(ap, const char *)) != NULL)
      if (!strstr(c->lines[i], want))
        all = 0;
    va_end(ap);
    found += all;
  }
  pthread_mutex_unlock(&c->lock);
  return found;
}

static void dump(capture *c, const char *who) {
  int i;
  pthread_mutex_lock(&c->lock);
  for (i = 0; i < c->n; i++)
    print_message("  %s: %s\n", who, c->lines[i]);
  pthread_mutex_unlock(&c->lock);
}

static void clear(capture *c) {
  int i;
  pthread_mutex_lock(&c->lock);
  for (i = 0; i < c->n; i++)
    free(c->lines[i]);
  c->n = 0;
  pthread_mutex_unlock(&c->lock);
}

/* ---- a server and a channel that log into the captures ---- */

typedef struct trace_fixture {
  it_server srv;
  cgrpc_channel *ch;
} trace_fixture;

static void start(trace_fixture *f, int with_callbacks) {
  cgrpc_server_options *so;
  cgrpc_channel_options *co;
  assert_int_equal(cgrpc_server_options_new(&so), 0);
  assert_int_equal(cgrpc_channel_options_new(&co), 0);
  if (with_callbacks) {
    cgrpc_server_options_set_log(so, capture_cb, &server_log);
    cgrpc_channel_options_set_log(co, capture_cb, &client_log);
  }
  assert_int_equal(it_server_start(&f->srv, so, 0), 0);
  f->ch = it_channel(&f->srv, co);
  assert_non_null(f->ch);
  cgrpc_server_options_del(so);
  cgrpc_channel_options_del(co);
}

static void stop(trace_fixture *f) {
  cgrpc_channel_del(f->ch);
  it_server_stop(&f->srv, 1000);
}

static int setup(void **state) {
  static trace_fixture f;
  memset(&f, 0, sizeof f);
  *state = &f;
  return it_watchdog_setup(state);
}

static int teardown(void **state) {
  clear(&server_log);
  clear(&client_log);
  return it_watchdog_teardown(state);
}

/* One OK call and one that fails with a status of the server's. */
static void two_calls(trace_fixture *f) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_status st = {0};
  assert_int_equal(it_echo(f->ch, "traced", &reply, NULL), CGRPC_STATUS_OK);
  protobuf_c_message_free_unpacked(&reply->base, NULL);
  reply = NULL;
  req.status_code = CGRPC_STATUS_NOT_FOUND;
  req.status_message = "no such thing";
  assert_int_equal(
      cgrpc__test__echo_service__echo__call(f->ch, &req, &reply, NULL, &st),
      CGRPC_STATUS_NOT_FOUND);
  cgrpc_status_clear(&st);
}

/* ---- tests ---- */

/* Without CGRPC_TRACE the callbacks get the library's messages, and no
 * trace event at all. */
static void test_trace_off(void **state) {
  trace_fixture *f = *state;
  unsetenv("CGRPC_TRACE");
  start(f, 1);
  two_calls(f);
  stop(f);
  if (count_lines(&server_log, "[", NULL) + count_lines(&client_log, "[", NULL)) {
    dump(&server_log, "server");
    dump(&client_log, "client");
  }
  assert_int_equal(count_lines(&server_log, "] ", NULL), 0);
  assert_int_equal(count_lines(&client_log, "] ", NULL), 0);
  /* The server's own INFO message still comes. */
  assert_true(count_lines(&server_log, "listening on", NULL) >= 1);
}

/* conn,call,h2: each side's events, at DEBUG, through its own callback;
 * the tracers not named stay quiet. */
static void test_trace_conn_call_h2(void **state) {
  trace_fixture *f = *state;
  char peer[32];
  setenv("CGRPC_TRACE", "conn,call,h2", 1);
  start(f, 1);
  two_calls(f);
  stop(f);
  snprintf(peer, sizeof peer, "127.0.0.1:%d", f->srv.port);
  /* The client: the connection, each call's start and end, its frames. */
  assert_int_equal(count_lines(&client_log, "0 [conn] ", "connecting to ipv4:",
                               peer, NULL),
                   1);
  assert_int_equal(count_lines(&client_log, "0 [conn] ", peer, ": connected",
                               NULL),
                   1);
  assert_int_equal(count_lines(&client_log, "0 [call] ",
                               "/cgrpc.test.EchoService/Echo on stream 1 "
                               "(attempt 1)",
                               NULL),
                   1);
  assert_int_equal(count_lines(&client_log, "0 [call] ",
                               "/cgrpc.test.EchoService/Echo ends OK", NULL),
                   1);
  assert_int_equal(count_lines(&client_log, "0 [call] ",
                               "/cgrpc.test.EchoService/Echo ends NOT_FOUND: "
                               "no such thing",
                               NULL),
                   1);
  assert_int_equal(count_lines(&client_log, "0 [h2] ", "send HEADERS stream=1",
                               ":path=/cgrpc.test.EchoService/Echo", NULL),
                   1);
  assert_true(count_lines(&client_log, "0 [h2] ", "recv SETTINGS stream=0",
                          NULL) >= 1);
  assert_int_equal(count_lines(&client_log, "0 [h2] ",
                               "recv HEADERS stream=3 ", "END_STREAM", NULL),
                   1);
  /* The server: the accept, both calls, the status it sent. */
  assert_int_equal(count_lines(&server_log, "0 [conn] ", ": accepted", NULL),
                   1);
  assert_int_equal(count_lines(&server_log, "0 [call] ",
                               "/cgrpc.test.EchoService/Echo from ipv4:127.0.0.1:",
                               "handler starts", NULL),
                   2);
  assert_int_equal(count_lines(&server_log, "0 [call] ",
                               "ends NOT_FOUND: no such thing", NULL),
                   1);
  assert_int_equal(count_lines(&server_log, "0 [h2] ", "send HEADERS stream=3",
                               "grpc-status=5", NULL),
                   1);
  assert_true(count_lines(&server_log, "0 [conn] ", "connection closed",
                          NULL) >= 1);
  /* Not named: */
  assert_int_equal(count_lines(&client_log, "[lb] ", NULL), 0);
  assert_int_equal(count_lines(&client_log, "[dns] ", NULL), 0);
}

/* "all,-h2": every tracer but h2 (lb's states, the resolution); and the
 * request's credentials-like metadata never reach a trace line. */
static void test_trace_all_but_h2(void **state) {
  trace_fixture *f = *state;
  setenv("CGRPC_TRACE", "all,-h2", 1);
  start(f, 1);
  two_calls(f);
  stop(f);
  assert_int_equal(count_lines(&client_log, "[h2] ", NULL), 0);
  assert_int_equal(count_lines(&server_log, "[h2] ", NULL), 0);
  assert_true(count_lines(&client_log, "0 [lb] ", "channel IDLE -> CONNECTING",
                          NULL) >= 1);
  assert_true(count_lines(&client_log, "0 [lb] ", "CONNECTING -> READY",
                          NULL) >= 1);
  assert_int_equal(count_lines(&client_log, "0 [dns] ",
                               "1 address(es): ipv4:127.0.0.1:", NULL),
                   0); /* an ipv4: literal needs no lookup */
  assert_true(count_lines(&client_log, "0 [call] ", NULL) >= 2);
}

/* A failed connect says why, in the trace and in the status. */
static void test_trace_connect_refused(void **state) {
  trace_fixture *f = *state;
  cgrpc_channel_options *co;
  cgrpc_channel *ch;
  cgrpc_status st = {0};
  Cgrpc__Test__EchoReply *reply = NULL;
  char target[64];
  (void)f;
  setenv("CGRPC_TRACE", "conn", 1);
  assert_int_equal(cgrpc_channel_options_new(&co), 0);
  cgrpc_channel_options_set_log(co, capture_cb, &client_log);
  /* A port nobody listens on: one that was just free. */
  snprintf(target, sizeof target, "127.0.0.1:%d", it_dead_port());
  assert_int_equal(cgrpc_channel_new(&ch, target, co), 0);
  cgrpc_channel_options_del(co);
  assert_int_equal(it_echo(ch, "x", &reply, &st), CGRPC_STATUS_UNAVAILABLE);
  assert_non_null(st.message);
  assert_non_null(strstr(st.message, "Connection refused"));
  cgrpc_status_clear(&st);
  cgrpc_channel_del(ch);
  assert_int_equal(count_lines(&client_log, "0 [conn] ",
                               "connect attempt failed: Connection refused",
                               NULL),
                   1);
}

/* Without a log callback the events go to stderr as "cgrpc DEBUG: [call]
 * ..." lines, and only the named tracers' (INFO and above otherwise). */
static void test_trace_stderr(void **state) {
  trace_fixture *f = *state;
  char path[] = "/tmp/cgrpc-trace-XXXXXX";
  char buf[16384];
  int fd = mkstemp(path), saved = dup(2);
  ssize_t n;
  assert_true(fd >= 0 && saved >= 0);
  unlink(path);
  setenv("CGRPC_TRACE", "call", 1);
  fflush(stderr);
  assert_true(dup2(fd, 2) == 2);
  start(f, 0);
  two_calls(f);
  stop(f);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  n = pread(fd, buf, sizeof buf - 1, 0);
  close(fd);
  assert_true(n > 0);
  buf[n] = '\0';
  assert_non_null(strstr(buf, "cgrpc DEBUG: [call] "));
  assert_non_null(strstr(buf, "/cgrpc.test.EchoService/Echo ends OK"));
  assert_non_null(strstr(buf, "cgrpc INFO: listening on"));
  assert_null(strstr(buf, "[h2]"));
  assert_null(strstr(buf, "[conn]"));
}

/* ---- log callbacks that call back into the library ---- */

/* What the re-entrant callbacks act on (one test per process). */
static struct {
  cgrpc_channel *ch;
  atomic_int deleted, nested_started, blocking_refused, events;
  it_async nested;
} reenter;

/* Deletes the channel from inside its first received-HEADERS frame event
 * (inside nghttp2's callback, on whichever thread drives the loop). */
static void deleting_cb(cgrpc_log_level level, const char *msg,
                        void *user_data) {
  capture_cb(level, msg, user_data);
  if (strstr(msg, "[h2] ") && strstr(msg, "recv HEADERS") &&
      atomic_exchange(&reenter.deleted, 1) == 0)
    cgrpc_channel_del(reenter.ch);
}

/* The first call's end event: a blocking call is refused, an async one
 * starts (its own events come while this one is being delivered), and
 * every event asks for the channel's state (no lock is held). */
static void reentering_cb(cgrpc_log_level level, const char *msg,
                          void *user_data) {
  atomic_fetch_add(&reenter.events, 1);
  capture_cb(level, msg, user_data);
  (void)cgrpc_channel_get_state(reenter.ch, 1);
  if (strstr(msg, "[call] ") && strstr(msg, "ends OK") &&
      atomic_exchange(&reenter.nested_started, 1) == 0) {
    Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
    Cgrpc__Test__EchoReply *reply = NULL;
    cgrpc_status st = {0};
    if (it_echo(reenter.ch, "nested", &reply, &st) ==
        CGRPC_STATUS_FAILED_PRECONDITION)
      atomic_store(&reenter.blocking_refused, 1);
    if (reply)
      protobuf_c_message_free_unpacked(&reply->base, NULL);
    cgrpc_status_clear(&st);
    req.message = "nested";
    it_async_init(&reenter.nested);
    if (cgrpc__test__echo_service__echo__start(reenter.ch, &req, NULL,
                                               it_async_done, &reenter.nested,
                                               NULL) != 0)
      atomic_store(&reenter.nested_started, 2);
  }
}

static cgrpc_channel *channel_logging_to(const it_server *srv,
                                         cgrpc_log_cb cb) {
  cgrpc_channel_options *co;
  cgrpc_channel *ch;
  assert_int_equal(cgrpc_channel_options_new(&co), 0);
  cgrpc_channel_options_set_log(co, cb, &client_log);
  ch = it_channel(srv, co);
  assert_non_null(ch);
  cgrpc_channel_options_del(co);
  return ch;
}

/* A log callback may delete its channel from inside a trace event: the
 * call in flight ends (OK, or CANCELLED by the delete), nothing is used
 * after the channel goes, and the delete itself does not wait there. */
static void test_trace_callback_deletes_channel(void **state) {
  trace_fixture *f = *state;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_status st = {0};
  cgrpc_status_code code;
  int64_t end;
  setenv("CGRPC_TRACE", "all", 1);
  assert_int_equal(it_server_start(&f->srv, NULL, 0), 0);
  reenter.ch = channel_logging_to(&f->srv, deleting_cb);
  code = it_echo(reenter.ch, "deleted under me", &reply, &st);
  print_message("  the call: %s \"%s\"\n", cgrpc_status_code_name(code),
                st.message ? st.message : "");
  assert_int_equal(atomic_load(&reenter.deleted), 1);
  assert_true(code == CGRPC_STATUS_OK || code == CGRPC_STATUS_CANCELLED);
  if (reply)
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_status_clear(&st);
  /* The channel finishes going on its own thread: its connection closes
   * (a trace event through the same callback). */
  end = it_now_ms() + 5000 * IT_SLOW;
  while (count_lines(&client_log, "[conn] ", "connection closed", NULL) == 0 &&
         it_now_ms() < end)
    it_sleep_ms(5);
  assert_int_equal(
      count_lines(&client_log, "[conn] ", "connection closed", NULL), 1);
  it_server_stop(&f->srv, 1000);
}

/* A log callback may call the library from inside a trace event: a
 * blocking call is refused there (FAILED_PRECONDITION, at once), an async
 * call starts and completes, and asking for the state takes no lock the
 * event holds. */
static void test_trace_callback_reenters(void **state) {
  trace_fixture *f = *state;
  setenv("CGRPC_TRACE", "all", 1);
  assert_int_equal(it_server_start(&f->srv, NULL, 0), 0);
  reenter.ch = f->ch = channel_logging_to(&f->srv, reentering_cb);
  two_calls(f);
  assert_int_equal(atomic_load(&reenter.nested_started), 1);
  assert_int_equal(atomic_load(&reenter.blocking_refused), 1);
  assert_int_equal(it_async_wait(&reenter.nested, 5000 * IT_SLOW), 1);
  assert_int_equal(reenter.nested.status.code, CGRPC_STATUS_OK);
  it_async_fini(&reenter.nested);
  stop(f);
  assert_true(count_lines(&client_log, "[call] ", "ends OK", NULL) >= 2);
  assert_true(atomic_load(&reenter.events) > 0);
}

/* A channel deleted from another thread while its connection is tracing
 * every frame of calls in flight: the calls end, the connection's last
 * events come before cgrpc_channel_del() returns, and none after. */
static void test_trace_channel_deleted_while_tracing(void **state) {
  trace_fixture *f = *state;
  it_async a[8];
  int i, lines;
  setenv("CGRPC_TRACE", "all", 1);
  start(f, 1);
  for (i = 0; i < 8; i++) {
    Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
    req.message = "in flight";
    it_async_init(&a[i]);
    assert_int_equal(cgrpc__test__echo_service__echo__start(
                         f->ch, &req, NULL, it_async_done, &a[i], NULL),
                     0);
  }
  cgrpc_channel_del(f->ch);
  f->ch = NULL;
  pthread_mutex_lock(&client_log.lock);
  lines = client_log.n;
  pthread_mutex_unlock(&client_log.lock);
  for (i = 0; i < 8; i++) {
    assert_int_equal(it_async_wait(&a[i], 5000 * IT_SLOW), 1);
    assert_true(a[i].status.code == CGRPC_STATUS_OK ||
                a[i].status.code == CGRPC_STATUS_CANCELLED);
    it_async_fini(&a[i]);
  }
  it_server_stop(&f->srv, 1000);
  pthread_mutex_lock(&client_log.lock);
  assert_int_equal(client_log.n, lines);
  pthread_mutex_unlock(&client_log.lock);
  assert_true(count_lines(&client_log, "[lb] ", "-> SHUTDOWN", NULL) >= 1);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
      T(test_trace_off),
      T(test_trace_conn_call_h2),
      T(test_trace_all_but_h2),
      T(test_trace_connect_refused),
      T(test_trace_stderr),
      T(test_trace_callback_deletes_channel),
      T(test_trace_callback_reenters),
      T(test_trace_channel_deleted_while_tracing),
#undef T
  };
  /* One test (a cmocka filter pattern) per CTest entry: CGRPC_TRACE is
   * read once per process. */
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
