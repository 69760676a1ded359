/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the integration tests: an EchoService server on 127.0.0.1
 * with its port read back, a channel to it, clocks, a bounded wait for async
 * calls, and raw TCP sockets.  Functions return 0 or a cgrpc error; the
 * tests assert on them.
 */
#ifndef CGRPC_TEST_HARNESS_H
#define CGRPC_TEST_HARNESS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <cgrpc/cgrpc.h>

#include "echo_service.h"
#include "h2raw.h"

/* Bounds used across the tests (before any sanitizer slow-down). */
#define IT_WAIT_MS 10000
/* How much slower the tests built with the sanitizers run (their targets
 * define CGRPC_TEST_SANITIZED): a factor for time bounds. */
#ifdef CGRPC_TEST_SANITIZED
#define IT_SLOW 3
#else
#define IT_SLOW 1
#endif

typedef struct it_server {
  cgrpc_server *server;
  int port;
  char target[64]; /* "127.0.0.1:PORT" */
  echo_stats stats;
} it_server;

/*
 * Starts an EchoService server on 127.0.0.1:|port| (0 picks one) with
 * |opts| (may be NULL).  On success s->port and s->target are set.
 */
int it_server_start(it_server *s, const cgrpc_server_options *opts, int port);

/* Shuts down (grace |grace_ms|) and deletes the server; NULL-safe. */
void it_server_stop(it_server *s, int64_t grace_ms);

/* it_server_start() on free ports for each of the |n| servers of |srv|
 * (asserts that they started), and it_server_stop() with no grace for
 * each (those already stopped are skipped). */
void it_servers_start(it_server *srv, int n);
void it_servers_stop(it_server *srv, int n);

/* A channel to |s| with |opts| (may be NULL); NULL on failure. */
cgrpc_channel *it_channel(const it_server *s,
                          const cgrpc_channel_options *opts);

/* The fixture most tests share: an EchoService server (default options,
 * port 0) and a channel to it. */
typedef struct it_fixture {
  it_server srv;
  cgrpc_channel *ch;
} it_fixture;

/* cmocka setup and teardown for an it_fixture in |*state|: the setup
 * allocates and starts it (asserting on failure), the teardown deletes the
 * channel, stops the server with a 1 s grace and frees it. */
int it_fixture_setup(void **state);
int it_fixture_teardown(void **state);
/* A cmocka test |name| run with an it_fixture in |*state|. */
#define IT_FIXTURE_TEST(name)                                                  \
  cmocka_unit_test_setup_teardown(name, it_fixture_setup, it_fixture_teardown)

/* The value of |key| in |md| (may be NULL), or NULL. */
const char *it_md_get(const cgrpc_metadata_array *md, const char *key);

int64_t it_now_ms(void);
void it_sleep_ms(int ms);

/* Polls |*flag| every few ms until it is nonzero or |ms| pass; returns the
 * last value seen. */
int it_wait_flag(const atomic_int *flag, int value, int ms);

/* One async call's outcome, filled by it_async_done. */
typedef struct it_async {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int done;            /* times the callback ran */
  cgrpc_status status; /* taken with cgrpc_call_take_status */
  Cgrpc__Test__EchoReply *reply;
  int64_t done_at_ms;
} it_async;

void it_async_init(it_async *a);
/* Frees the reply and status and destroys the lock. */
void it_async_fini(it_async *a);
/* A cgrpc_unary_done_cb; user_data is an it_async. */
void it_async_done(cgrpc_call *call, const cgrpc_status *status,
                   ProtobufCMessage *reply, void *user_data);
/* Waits until the callback ran or |ms| passed; returns a->done. */
int it_async_wait(it_async *a, int ms);

/* Makes a blocking Echo call with |message| and returns its code; |*reply|
 * and |status| as with the generated stub. */
cgrpc_status_code it_echo(cgrpc_channel *ch, const char *message,
                          Cgrpc__Test__EchoReply **reply, cgrpc_status *status);

/* A connected, blocking TCP socket to 127.0.0.1:|port|, or -1. */
int it_tcp_connect(int port);
/* A loopback port nothing listens on (bound, then closed). */
int it_dead_port(void);
/* Sends all of |buf|; returns 0 or -1. */
int it_tcp_send_all(int fd, const void *buf, size_t len);
/*
 * Reads and discards what the peer sends until it closes the connection
 * (read returns 0, or ECONNRESET) or |ms| pass.  Returns 1 if the peer
 * closed, 0 on timeout, -1 on another error.
 */
int it_tcp_wait_closed(int fd, int ms);

/* Asserts (cmocka) that |st| (a cgrpc_status) has code |want|, printing the
 * message it came with when it does not. */
#define IT_ASSERT_STATUS(st, want)                                             \
  do {                                                                         \
    if ((int)(st).code != (int)(want))                                         \
      fail_msg("status %s (\"%s\"), expected %s",                              \
               cgrpc_status_code_name((st).code),                              \
               (st).message ? (st).message : "(none)",                         \
               cgrpc_status_code_name(want));                                  \
  } while (0)

/*
 * Soft checks for tests that must clean up (threads, raw peers) before they
 * fail: IT_CHECK records and prints a failed expectation and goes on;
 * IT_CHECKS_DONE fails the test if any check failed.
 */
void it_check_failed(int line, const char *fmt, ...) CGRPC_PRINTF(2, 3);
/* The number of failed checks since it_watchdog_setup(), and the first. */
int it_checks_failed(void);
const char *it_first_failure(void);
#define IT_CHECK(cond, ...)                                                    \
  do {                                                                         \
    if (!(cond))                                                               \
      it_check_failed(__LINE__, __VA_ARGS__);                                  \
  } while (0)
#define IT_CHECKS_DONE()                                                       \
  do {                                                                         \
    if (it_checks_failed())                                                    \
      fail_msg("%d check(s) failed; first: %s", it_checks_failed(),            \
               it_first_failure());                                            \
  } while (0)

/* cmocka setup and teardown for tests that may hang on a broken library:
 * the setup resets the checks, ignores SIGPIPE and arms an alarm that ends
 * the process after IT_WATCHDOG_S seconds (30, three times that under the
 * sanitizers) with a message; the teardown disarms it. */
int it_watchdog_setup(void **state);
int it_watchdog_teardown(void **state);
#ifdef CGRPC_TEST_SANITIZED
#define IT_WATCHDOG_S 90
#else
#define IT_WATCHDOG_S 30
#endif

/* ---- bounded waits (a broken library must fail a test, not hang it) ---- */

/* A function running on a helper thread of its own. */
typedef struct it_bg_job {
  pthread_t thread;
  void (*fn)(void *arg);
  void *arg;
  atomic_int done;
} it_bg_job;

/* Runs |fn(arg)| on a new thread (asserts that it started). */
it_bg_job *it_bg_start(void (*fn)(void *), void *arg);
/* Waits up to |ms| for |j|.  Returns 1 when it finished (it is joined and
 * freed); 0 when it is still running: it is then detached and abandoned,
 * and |j| and its argument must stay allocated (they are leaked). */
int it_bg_wait(it_bg_job *j, int ms);
/* cgrpc_channel_del(), cgrpc_server_shutdown(|grace_ms|) and
 * cgrpc_server_del() on a helper thread: the milliseconds they took, or -1
 * when they had not returned after |ms| (the thread is then abandoned). */
int64_t it_channel_del_bounded(cgrpc_channel *ch, int ms);
int64_t it_server_shutdown_bounded(cgrpc_server *server, int64_t grace_ms,
                                   int ms);
int64_t it_server_del_bounded(cgrpc_server *server, int ms);

/* CPU time of the whole process (every thread), in seconds: a thread that
 * spins shows here. */
double it_process_cpu_s(void);
/* Sleeps |ms| milliseconds and returns the CPU time the process used
 * meanwhile: a sleeping library uses next to none. */
double it_cpu_while_sleeping_s(int ms);

/* ---- raw gRPC requests (tests/common/h2raw) ---- */

/* The gRPC request headers for |path| on a raw connection to
 * 127.0.0.1:|port| (scheme http), with grpc-timeout |timeout| (NULL: none)
 * and then the fields |extra| (name, value, ..., NULL; NULL: none; at most
 * 12 pairs), without END_STREAM, appended to |b|. */
void it_raw_request_headers(h2raw_buf *b, uint32_t stream, const char *path,
                            int port, const char *timeout,
                            const char *const *extra);
/* A gRPC message holding |msg|, packed, appended to |b|. */
void it_raw_grpc_message(h2raw_buf *b, const ProtobufCMessage *msg);
/* The start of a raw client connection that lets the server send as much
 * as it likes: the preface, SETTINGS with the largest stream window, and a
 * connection WINDOW_UPDATE up to the largest window too. */
void it_raw_client_greeting(h2raw_buf *b);

#endif /* CGRPC_TEST_HARNESS_H */
