/* SPDX-License-Identifier: MIT */
#include "harness.h"

#include "h2raw.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

static cgrpc_log_cb harness_log_cb(void) {
  return getenv("CGRPC_TEST_LOG") ? cgrpc_log_stderr : NULL;
}

int it_server_start(it_server *s, const cgrpc_server_options *opts, int port) {
  char addr[64];
  int rv;
  cgrpc_server_options *o = NULL;
  memset(s, 0, sizeof *s);
  echo_stats_reset(&s->stats);
  if (!opts && harness_log_cb()) {
    if ((rv = cgrpc_server_options_new(&o)) != 0)
      return rv;
    cgrpc_server_options_set_log(o, harness_log_cb(), NULL);
    opts = o;
  }
  rv = cgrpc_server_new(&s->server, opts);
  cgrpc_server_options_del(o);
  if (rv != 0)
    return rv;
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  if ((rv = cgrpc_server_add_insecure_port(s->server, addr, &s->port)) != 0 ||
      (rv = echo_service_register(s->server, &s->stats)) != 0 ||
      (rv = cgrpc_server_start(s->server)) != 0) {
    cgrpc_server_del(s->server);
    s->server = NULL;
    return rv;
  }
  snprintf(s->target, sizeof s->target, "127.0.0.1:%d", s->port);
  return 0;
}

void it_server_stop(it_server *s, int64_t grace_ms) {
  if (!s || !s->server)
    return;
  cgrpc_server_shutdown(s->server, grace_ms);
  cgrpc_server_del(s->server);
  s->server = NULL;
}

void it_servers_start(it_server *srv, int n) {
  int i;
  for (i = 0; i < n; i++)
    assert_int_equal(it_server_start(&srv[i], NULL, 0), 0);
}

void it_servers_stop(it_server *srv, int n) {
  int i;
  for (i = 0; i < n; i++)
    it_server_stop(&srv[i], 0);
}

cgrpc_channel *it_channel(const it_server *s,
                          const cgrpc_channel_options *opts) {
  cgrpc_channel *ch = NULL;
  cgrpc_channel_options *o = NULL;
  if (!opts && harness_log_cb()) {
    if (cgrpc_channel_options_new(&o) != 0)
      return NULL;
    cgrpc_channel_options_set_log(o, harness_log_cb(), NULL);
    opts = o;
  }
  if (cgrpc_channel_new(&ch, s->target, opts) != 0)
    ch = NULL;
  cgrpc_channel_options_del(o);
  return ch;
}

int it_fixture_setup(void **state) {
  it_fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  assert_int_equal(it_server_start(&f->srv, NULL, 0), 0);
  f->ch = it_channel(&f->srv, NULL);
  assert_non_null(f->ch);
  *state = f;
  return 0;
}

int it_fixture_teardown(void **state) {
  it_fixture *f = *state;
  cgrpc_channel_del(f->ch);
  it_server_stop(&f->srv, 1000);
  free(f);
  return 0;
}

const char *it_md_get(const cgrpc_metadata_array *md, const char *key) {
  return md ? cgrpc_metadata_array_get(md, key, NULL) : NULL;
}

int64_t it_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void it_sleep_ms(int ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) != 0) {
  }
}

int it_wait_flag(const atomic_int *flag, int value, int ms) {
  int64_t end = it_now_ms() + ms;
  int v;
  while ((v = atomic_load(flag)) < value && it_now_ms() < end)
    it_sleep_ms(2);
  return v;
}

void it_async_init(it_async *a) {
  memset(a, 0, sizeof *a);
  pthread_mutex_init(&a->lock, NULL);
  pthread_cond_init(&a->cond, NULL);
}

void it_async_fini(it_async *a) {
  if (a->reply)
    protobuf_c_message_free_unpacked(&a->reply->base, NULL);
  a->reply = NULL;
  cgrpc_status_clear(&a->status);
  pthread_mutex_destroy(&a->lock);
  pthread_cond_destroy(&a->cond);
}

void it_async_done(cgrpc_call *call, const cgrpc_status *status,
                   ProtobufCMessage *reply, void *user_data) {
  it_async *a = user_data;
  (void)status;
  pthread_mutex_lock(&a->lock);
  if (a->done == 0) {
    cgrpc_call_take_status(call, &a->status);
    a->reply = (Cgrpc__Test__EchoReply *)reply;
    a->done_at_ms = it_now_ms();
  } else if (reply) {
    protobuf_c_message_free_unpacked(reply, NULL); /* must not happen */
  }
  a->done++;
  pthread_cond_broadcast(&a->cond);
  pthread_mutex_unlock(&a->lock);
}

int it_async_wait(it_async *a, int ms) {
  struct timespec ts;
  int done;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&a->lock);
  while (!a->done) {
    if (pthread_cond_timedwait(&a->cond, &a->lock, &ts) == ETIMEDOUT)
      break;
  }
  done = a->done;
  pthread_mutex_unlock(&a->lock);
  return done;
}

cgrpc_status_code it_echo(cgrpc_channel *ch, const char *message,
                          Cgrpc__Test__EchoReply **reply,
                          cgrpc_status *status) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  req.message = (char *)(uintptr_t)message;
  return cgrpc__test__echo_service__echo__call(ch, &req, reply, NULL, status);
}

int it_tcp_connect(int port) { return h2raw_connect(port, 0); }

int it_dead_port(void) {
  int port, fd = h2raw_listen(&port, 0);
  assert_true(fd >= 0);
  close(fd);
  return port;
}

int it_tcp_send_all(int fd, const void *buf, size_t len) {
  return h2raw_send(fd, buf, len);
}

int it_tcp_wait_closed(int fd, int ms) {
  int64_t end = it_now_ms() + ms;
  char buf[4096];
  for (;;) {
    struct pollfd pfd;
    int64_t left = end - it_now_ms();
    int rv;
    ssize_t n;
    if (left <= 0)
      return 0;
    pfd.fd = fd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    rv = poll(&pfd, 1, (int)left);
    if (rv < 0 && errno == EINTR)
      continue;
    if (rv < 0)
      return -1;
    if (rv == 0)
      return 0;
    n = recv(fd, buf, sizeof buf, 0);
    if (n == 0)
      return 1;
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN)
        continue;
      return errno == ECONNRESET ? 1 : -1;
    }
  }
}

/* ---- soft checks and the watchdog ---- */

static char first_failure[512];
static int n_failures;

void it_check_failed(int line, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  print_message("  check failed (line %d): %s\n", line, msg);
  if (n_failures++ == 0)
    snprintf(first_failure, sizeof first_failure, "line %d: %s", line, msg);
}

int it_checks_failed(void) { return n_failures; }

const char *it_first_failure(void) { return first_failure; }

static void watchdog_fired(int sig) {
  static const char msg[] =
      "\nwatchdog: the test did not finish in time (a hang); aborting\n";
  ssize_t r;
  (void)sig;
  r = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)r;
  _exit(3);
}

int it_watchdog_setup(void **state) {
  (void)state;
  n_failures = 0;
  first_failure[0] = '\0';
  signal(SIGPIPE, SIG_IGN);
  signal(SIGALRM, watchdog_fired);
  alarm(IT_WATCHDOG_S);
  return 0;
}

int it_watchdog_teardown(void **state) {
  (void)state;
  alarm(0);
  return 0;
}

/* ---- bounded waits, CPU time, raw gRPC requests ---- */

static void *it_bg_main(void *p) {
  it_bg_job *j = p;
  j->fn(j->arg);
  atomic_store(&j->done, 1);
  return NULL;
}

/* Runs |fn(arg)| on a new thread. */
it_bg_job *it_bg_start(void (*fn)(void *), void *arg) {
  it_bg_job *j = calloc(1, sizeof *j);
  assert_non_null(j);
  j->fn = fn;
  j->arg = arg;
  atomic_init(&j->done, 0);
  assert_int_equal(pthread_create(&j->thread, NULL, it_bg_main, j), 0);
  return j;
}

/* Waits up to |ms| for |j|.  Returns 1 when it finished (it is joined and
 * freed); 0 when it is still running: it is then detached and abandoned,
 * and |j| and its argument must stay allocated (they are leaked). */
int it_bg_wait(it_bg_job *j, int ms) {
  if (it_wait_flag(&j->done, 1, ms) < 1) {
    pthread_detach(j->thread);
    return 0;
  }
  pthread_join(j->thread, NULL);
  free(j);
  return 1;
}

static void channel_del_main(void *arg) { cgrpc_channel_del(arg); }

/* cgrpc_channel_del(|ch|) on a helper thread: the milliseconds it took, or
 * -1 when it had not returned after |ms| (it is then abandoned). */
int64_t it_channel_del_bounded(cgrpc_channel *ch, int ms) {
  int64_t t0 = it_now_ms();
  if (!it_bg_wait(it_bg_start(channel_del_main, ch), ms))
    return -1;
  return it_now_ms() - t0;
}

typedef struct shutdown_op {
  cgrpc_server *server;
  int64_t grace_ms;
  int rv;
} shutdown_op;

static void shutdown_main(void *arg) {
  shutdown_op *op = arg;
  op->rv = cgrpc_server_shutdown(op->server, op->grace_ms);
}

/* cgrpc_server_shutdown(|server|, |grace_ms|) on a helper thread: the
 * milliseconds it took, or -1 after |ms| without a return. */
int64_t it_server_shutdown_bounded(cgrpc_server *server, int64_t grace_ms,
                                   int ms) {
  shutdown_op *op = calloc(1, sizeof *op);
  int64_t t0 = it_now_ms();
  assert_non_null(op);
  op->server = server;
  op->grace_ms = grace_ms;
  if (!it_bg_wait(it_bg_start(shutdown_main, op), ms))
    return -1; /* |op| stays with the stuck thread */
  free(op);
  return it_now_ms() - t0;
}

static void server_del_main(void *arg) { cgrpc_server_del(arg); }

/* cgrpc_server_del() on a helper thread; as it_server_shutdown_bounded(). */
int64_t it_server_del_bounded(cgrpc_server *server, int ms) {
  int64_t t0 = it_now_ms();
  if (!it_bg_wait(it_bg_start(server_del_main, server), ms))
    return -1;
  return it_now_ms() - t0;
}

/* CPU time of the whole process (every thread), in seconds. */
double it_process_cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double it_cpu_while_sleeping_s(int ms) {
  double c0 = it_process_cpu_s();
  it_sleep_ms(ms);
  return it_process_cpu_s() - c0;
}

/* The gRPC request headers for |path| on a raw connection to |port|. */
void it_raw_request_headers(h2raw_buf *b, uint32_t stream, const char *path,
                            int port, const char *timeout,
                            const char *const *extra) {
  char authority[32];
  const char *kv[40];
  int n = 0;
  snprintf(authority, sizeof authority, "127.0.0.1:%d", port);
  kv[n++] = ":method";
  kv[n++] = "POST";
  kv[n++] = ":scheme";
  kv[n++] = "http";
  kv[n++] = ":path";
  kv[n++] = path;
  kv[n++] = ":authority";
  kv[n++] = authority;
  kv[n++] = "content-type";
  kv[n++] = "application/grpc";
  kv[n++] = "te";
  kv[n++] = "trailers";
  if (timeout) {
    kv[n++] = "grpc-timeout";
    kv[n++] = timeout;
  }
  while (extra && extra[0] && extra[1] && n < 38) {
    kv[n++] = *extra++;
    kv[n++] = *extra++;
  }
  kv[n] = NULL;
  h2raw_headers(b, stream, 0, kv);
}

/* A gRPC message holding |msg|, packed, appended to |b|. */
void it_raw_grpc_message(h2raw_buf *b, const ProtobufCMessage *msg) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  uint8_t *p = malloc(n ? n : 1);
  assert_non_null(p);
  protobuf_c_message_pack(msg, p);
  h2raw_grpc_message(b, p, n);
  free(p);
}

/* The start of a raw client connection that lets the server send as much
 * as it likes: the preface, SETTINGS with the largest stream window, and a
 * connection WINDOW_UPDATE up to the largest window too. */
void it_raw_client_greeting(h2raw_buf *b) {
  h2raw_setting s = {H2RAW_SETTINGS_INITIAL_WINDOW_SIZE, H2RAW_MAX_WINDOW};
  h2raw_preface(b);
  h2raw_settings(b, &s, 1);
  h2raw_window_update(b, 0, H2RAW_MAX_WINDOW - H2RAW_DEFAULT_WINDOW);
}
