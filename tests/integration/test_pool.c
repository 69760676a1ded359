/* SPDX-License-Identifier: MIT */
/*
 * The handler pool: it grows while handlers block, so unary calls are not
 * starved by streams whose handlers wait in a read; max_concurrent_rpcs
 * turns calls past the limit away with RESOURCE_EXHAUSTED; idle threads go
 * away again.
 *
 * The blocked streams come from a raw HTTP/2 client: request headers for
 * StreamService.Upload, then a DATA frame with half a length-prefixed
 * message, so each Upload handler sits in cgrpc_server_ctx_read().
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "h2raw.h"
#include "harness.h"
#include "stream_harness.h"

#define SLOW IT_SLOW

/* How fast a unary call must be answered while the streams are held. */
#define UNARY_MS (100 * SLOW)

/* ---- a server with EchoService and StreamService (blocking servicer) ---- */

typedef struct pool_fixture {
  cgrpc_server *server;
  int port;
  char target[64];
  echo_stats echo;
  stream_stats streams;
  cgrpc_channel *ch;
} pool_fixture;

static pool_fixture *fixture_start(int max_rpcs) {
  pool_fixture *f = calloc(1, sizeof *f);
  cgrpc_server_options *o = NULL;
  assert_non_null(f);
  echo_stats_reset(&f->echo);
  stream_stats_reset(&f->streams);
  assert_int_equal(cgrpc_server_options_new(&o), 0);
  if (getenv("CGRPC_TEST_LOG"))
    cgrpc_server_options_set_log(o, cgrpc_log_stderr, NULL);
  if (max_rpcs > 0)
    cgrpc_server_options_set_max_concurrent_rpcs(o, max_rpcs);
  assert_int_equal(cgrpc_server_new(&f->server, o), 0);
  cgrpc_server_options_del(o);
  assert_int_equal(
      cgrpc_server_add_insecure_port(f->server, "127.0.0.1:0", &f->port), 0);
  assert_int_equal(echo_service_register(f->server, &f->echo), 0);
  assert_int_equal(stream_service_register(f->server, &f->streams), 0);
  assert_int_equal(cgrpc_server_start(f->server), 0);
  snprintf(f->target, sizeof f->target, "127.0.0.1:%d", f->port);
  assert_int_equal(cgrpc_channel_new(&f->ch, f->target, NULL), 0);
  return f;
}

static int setup_default(void **state) {
  *state = fixture_start(0);
  return 0;
}

static int teardown(void **state) {
  pool_fixture *f = *state;
  cgrpc_channel_del(f->ch);
  cgrpc_server_shutdown(f->server, 1000);
  cgrpc_server_del(f->server);
  free(f);
  return 0;
}

/* ---- a raw HTTP/2 client that leaves streams half-sent ---- */

/*
 * Connects to |port| and opens |n| Upload streams, each with its headers and
 * a DATA frame that holds the 5-byte prefix of a 16-byte message and 3 of
 * its bytes.  Returns the socket (close it to end the streams), or -1.
 */
static int open_half_sent_streams(int port, int n) {
  static const char *const headers[] = {
      ":method",      "POST",      ":scheme",      "http",
      ":path",        "/cgrpc.test.StreamService/Upload",
      ":authority",   "pool.test", "content-type", "application/grpc",
      "te",           "trailers",  NULL};
  static const uint8_t half_message[] = {0, 0, 0, 0, 16, 0x0a, 0x0e, 'x'};
  h2raw_buf b;
  int fd, i, rv;
  h2raw_buf_init(&b);
  h2raw_preface(&b);
  h2raw_settings(&b, NULL, 0);
  h2raw_settings_ack(&b);
  for (i = 0; i < n; i++) {
    uint32_t id = 2 * (uint32_t)i + 1;
    h2raw_headers(&b, id, 0, headers);
    h2raw_data(&b, id, 0, half_message, sizeof half_message);
  }
  fd = h2raw_connect(port, 0);
  rv = fd < 0 ? -1 : h2raw_send_buf(fd, &b);
  h2raw_buf_free(&b);
  if (rv != 0 && fd >= 0) {
    close(fd);
    fd = -1;
  }
  return fd;
}

/* The number of threads of this process (/proc/self/status), or -1. */
static int thread_count(void) {
  char line[128];
  int n = -1;
  FILE *f = fopen("/proc/self/status", "r");
  if (!f)
    return -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "Threads: %d", &n) == 1)
      break;
  fclose(f);
  return n;
}

/* An Echo call with a deadline; returns its code and its duration in
 * |*ms|, and copies the status message into |msg| (may be NULL). */
static cgrpc_status_code timed_echo(pool_fixture *f, const char *text,
                                    int64_t *ms, char *msg, size_t msg_size) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_call_options opts = {.timeout_ms = 2000 * SLOW};
  cgrpc_status status = {0};
  cgrpc_status_code code;
  int64_t t0 = it_now_ms();
  req.message = (char *)(uintptr_t)text;
  code = cgrpc__test__echo_service__echo__call(f->ch, &req, &reply, &opts,
                                               &status);
  *ms = it_now_ms() - t0;
  if (code == CGRPC_STATUS_OK && (!reply || strcmp(reply->message, text) != 0))
    code = CGRPC_STATUS_DATA_LOSS; /* a wrong reply */
  if (msg)
    snprintf(msg, msg_size, "%s", status.message ? status.message : "");
  if (reply)
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_status_clear(&status);
  return code;
}

/* Closes |fd| and waits (bounded) until |left| stream handlers remain. */
static void release_streams(pool_fixture *f, int fd, int left) {
  int64_t end = it_now_ms() + IT_WAIT_MS * SLOW;
  close(fd);
  while (atomic_load(&f->streams.in_flight) > left && it_now_ms() < end)
    it_sleep_ms(5);
  assert_int_equal(atomic_load(&f->streams.in_flight), left);
}

/* ---- tests ---- */

#define HELD_STREAMS 500

/* 500 handlers blocked in a read do not keep a unary call waiting. */
static void test_pool_unary_not_starved_by_blocked_streams(void **state) {
  pool_fixture *f = *state;
  int64_t worst = 0, t0 = it_now_ms();
  int fd, i, started;
  fd = open_half_sent_streams(f->port, HELD_STREAMS);
  assert_true(fd >= 0);
  started = it_wait_flag(&f->streams.handlers, HELD_STREAMS, 5000 * SLOW);
  print_message("%d of %d stream handlers running after %lld ms (%d threads)\n",
                started, HELD_STREAMS, (long long)(it_now_ms() - t0),
                thread_count());
  for (i = 0; i < 20; i++) {
    char text[32];
    int64_t ms;
    cgrpc_status_code code;
    snprintf(text, sizeof text, "unary %d", i);
    code = timed_echo(f, text, &ms, NULL, 0);
    if (code != CGRPC_STATUS_OK || ms > UNARY_MS)
      fail_msg("Echo #%d: %s after %lld ms (limit %d ms) with %d of %d stream "
               "handlers blocked in a read",
               i, cgrpc_status_code_name(code), (long long)ms, UNARY_MS,
               atomic_load(&f->streams.handlers), HELD_STREAMS);
    if (ms > worst)
      worst = ms;
  }
  print_message("20 Echo calls, the slowest %lld ms\n", (long long)worst);
  assert_int_equal(atomic_load(&f->streams.handlers), HELD_STREAMS);
  assert_int_equal(atomic_load(&f->streams.in_flight), HELD_STREAMS);
  release_streams(f, fd, 0);
  assert_int_equal(atomic_load(&f->streams.closed_seen), HELD_STREAMS);
}

/* The same with 500 clients, a connection each, every one holding a
 * half-sent stream. */
static void test_pool_unary_not_starved_by_500_clients(void **state) {
  pool_fixture *f = *state;
  int fds[HELD_STREAMS], i, started;
  int64_t worst = 0;
  for (i = 0; i < HELD_STREAMS; i++) {
    fds[i] = open_half_sent_streams(f->port, 1);
    assert_true(fds[i] >= 0);
  }
  started = it_wait_flag(&f->streams.handlers, HELD_STREAMS, 5000 * SLOW);
  print_message("%d of %d clients' handlers running (%d threads)\n", started,
                HELD_STREAMS, thread_count());
  for (i = 0; i < 20; i++) {
    char text[32];
    int64_t ms;
    cgrpc_status_code code;
    snprintf(text, sizeof text, "unary %d", i);
    code = timed_echo(f, text, &ms, NULL, 0);
    if (code != CGRPC_STATUS_OK || ms > UNARY_MS)
      fail_msg("Echo #%d: %s after %lld ms (limit %d ms) with %d clients' "
               "handlers blocked in a read",
               i, cgrpc_status_code_name(code), (long long)ms, UNARY_MS,
               atomic_load(&f->streams.handlers));
    if (ms > worst)
      worst = ms;
  }
  print_message("20 Echo calls, the slowest %lld ms\n", (long long)worst);
  assert_int_equal(atomic_load(&f->streams.handlers), HELD_STREAMS);
  for (i = 0; i < HELD_STREAMS - 1; i++)
    close(fds[i]);
  release_streams(f, fds[HELD_STREAMS - 1], 0);
}

#define MAX_RPCS 4

static int setup_limited(void **state) {
  *state = fixture_start(MAX_RPCS);
  return 0;
}

/* max_concurrent_rpcs: the call past the limit fails at once, and calls go
 * through again once others have finished. */
static void test_pool_max_concurrent_rpcs(void **state) {
  pool_fixture *f = *state;
  char msg[256];
  int64_t ms, end;
  int fd, fd_last;
  cgrpc_status_code code;
  /* MAX_RPCS - 1 streams held: the Echo is the MAX_RPCS-th call. */
  fd = open_half_sent_streams(f->port, MAX_RPCS - 1);
  assert_true(fd >= 0);
  assert_int_equal(it_wait_flag(&f->streams.handlers, MAX_RPCS - 1, IT_WAIT_MS),
                   MAX_RPCS - 1);
  code = timed_echo(f, "at the limit", &ms, msg, sizeof msg);
  if (code != CGRPC_STATUS_OK)
    fail_msg("the call at the limit: %s (\"%s\")", cgrpc_status_code_name(code),
             msg);
  /* One more stream: the limit is reached, the next call is turned away. */
  fd_last = open_half_sent_streams(f->port, 1);
  assert_true(fd_last >= 0);
  assert_int_equal(it_wait_flag(&f->streams.handlers, MAX_RPCS, IT_WAIT_MS),
                   MAX_RPCS);
  code = timed_echo(f, "past the limit", &ms, msg, sizeof msg);
  print_message("past the limit: %s (\"%s\") after %lld ms\n",
                cgrpc_status_code_name(code), msg, (long long)ms);
  assert_int_equal(code, CGRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_true(ms <= UNARY_MS);
  assert_non_null(strstr(msg, "concurrent"));
  assert_int_equal(atomic_load(&f->echo.calls), 1); /* no handler ran */
  /* A stream past the limit is refused too: its handler never starts. */
  {
    int fd_extra = open_half_sent_streams(f->port, 1);
    assert_true(fd_extra >= 0);
    it_sleep_ms(50);
    assert_int_equal(atomic_load(&f->streams.handlers), MAX_RPCS);
    close(fd_extra);
  }
  /* Let one stream go: a call fits again.  The slot is given back when the
   * server has freed the call, which may come a moment after the client
   * sees it end, so allow a bounded retry. */
  release_streams(f, fd_last, MAX_RPCS - 1);
  end = it_now_ms() + 2000 * SLOW;
  do {
    code = timed_echo(f, "room again", &ms, msg, sizeof msg);
  } while (code == CGRPC_STATUS_RESOURCE_EXHAUSTED && it_now_ms() < end &&
           (it_sleep_ms(5), 1));
  if (code != CGRPC_STATUS_OK)
    fail_msg("after a stream ended: %s (\"%s\")", cgrpc_status_code_name(code),
             msg);
  release_streams(f, fd, 0);
  code = timed_echo(f, "all free", &ms, msg, sizeof msg);
  assert_int_equal(code, CGRPC_STATUS_OK);
}

#define GROW_STREAMS 200

/* Idle threads exit: after a burst of blocked handlers the process is back
 * to about the thread count it had before. */
static void test_pool_shrinks_when_idle(void **state) {
  pool_fixture *f = *state;
  int64_t ms, t0, end;
  int before, peak, now, fd;
  assert_int_equal(timed_echo(f, "warm", &ms, NULL, 0), CGRPC_STATUS_OK);
  before = thread_count();
  assert_true(before > 0);
  fd = open_half_sent_streams(f->port, GROW_STREAMS);
  assert_true(fd >= 0);
  assert_int_equal(
      it_wait_flag(&f->streams.handlers, GROW_STREAMS, IT_WAIT_MS * SLOW),
      GROW_STREAMS);
  peak = thread_count();
  /* A thread per blocked handler (the idle floor may have had a few). */
  assert_true(peak >= before + GROW_STREAMS - 4);
  release_streams(f, fd, 0);
  t0 = it_now_ms();
  end = t0 + 15000;
  while ((now = thread_count()) > before + 1 && it_now_ms() < end)
    it_sleep_ms(50);
  print_message("threads: %d before, %d with %d blocked handlers, %d after "
                "%lld ms idle\n",
                before, peak, GROW_STREAMS, now, (long long)(it_now_ms() - t0));
  assert_true(now <= before + 1);
  /* And it still serves, and grows again. */
  assert_int_equal(timed_echo(f, "after", &ms, NULL, 0), CGRPC_STATUS_OK);
  fd = open_half_sent_streams(f->port, 20);
  assert_true(fd >= 0);
  assert_int_equal(
      it_wait_flag(&f->streams.handlers, GROW_STREAMS + 20, IT_WAIT_MS * SLOW),
      GROW_STREAMS + 20);
  release_streams(f, fd, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(
          test_pool_unary_not_starved_by_blocked_streams, setup_default,
          teardown),
      cmocka_unit_test_setup_teardown(
          test_pool_unary_not_starved_by_500_clients, setup_default,
          teardown),
      cmocka_unit_test_setup_teardown(test_pool_max_concurrent_rpcs,
                                      setup_limited, teardown),
      cmocka_unit_test_setup_teardown(test_pool_shrinks_when_idle,
                                      setup_default, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
