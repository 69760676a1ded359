/* SPDX-License-Identifier: MIT */
/*
 * The Greeter server with Prometheus metrics, kept by a server interceptor
 * (cgrpc/interceptor.h) under the names go-grpc-prometheus uses:
 *
 *   grpc_server_started_total{grpc_type,grpc_service,grpc_method}
 *   grpc_server_handled_total{grpc_type,grpc_service,grpc_method,grpc_code}
 *   grpc_server_msg_received_total{grpc_type,grpc_service,grpc_method}
 *   grpc_server_msg_sent_total{grpc_type,grpc_service,grpc_method}
 *   grpc_server_handling_seconds_bucket{grpc_type,grpc_service,grpc_method,le}
 *   grpc_server_handling_seconds_sum{...} and _count{...}
 *
 * served in the Prometheus text format (version 0.0.4) by a small HTTP/1.1
 * server on a port of its own: GET /metrics.
 *
 *   metrics_server [--port=N] [--metrics_port=M]
 *
 * --port is the gRPC port (default 50051, on [::]); --metrics_port the
 * HTTP one (default 9090, on 0.0.0.0).  0 picks a free port; both are
 * printed once serving:
 *
 *   Server started, listening on 50051
 *   Metrics on port 9090
 *
 * SayHello and SayHelloAgain answer as greeter_server's do, but refuse a
 * name longer than 64 bytes with INVALID_ARGUMENT, so that errors can be
 * seen counted (greeter_client --name=...).  Stops on SIGINT or SIGTERM.
 *
 * The interceptor's on_start finds the method's row and keeps it in the
 * call's slot; on_end measures the time since info->start_ns.  Every
 * callback runs on a library thread and only takes a mutex for a few
 * increments: they must not block.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cgrpc/cgrpc.h>

#include "helloworld.grpc-c.h"

#define MAX_NAME 64

/* ---- the Greeter ---- */

/* "Hello, NAME!" or, |again|, "Hello again, NAME!". */
static cgrpc_status_code greet(cgrpc_server_ctx *ctx, int again,
                               const Helloworld__HelloRequest *request,
                               Helloworld__HelloReply *reply) {
  if (strlen(request->name) > MAX_NAME)
    return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_INVALID_ARGUMENT,
                                 "name longer than %d bytes", MAX_NAME);
  reply->message = cgrpc_server_ctx_printf(
      ctx, "Hello%s, %s!", again ? " again" : "", request->name);
  return reply->message ? CGRPC_STATUS_OK : CGRPC_STATUS_RESOURCE_EXHAUSTED;
}

static cgrpc_status_code say_hello(cgrpc_server_ctx *ctx,
                                   const Helloworld__HelloRequest *request,
                                   Helloworld__HelloReply *reply,
                                   void *user_data) {
  (void)user_data;
  return greet(ctx, 0, request, reply);
}

static cgrpc_status_code
say_hello_again(cgrpc_server_ctx *ctx, const Helloworld__HelloRequest *request,
                Helloworld__HelloReply *reply, void *user_data) {
  (void)user_data;
  return greet(ctx, 1, request, reply);
}

/* ---- the metrics ---- */

/* Prometheus's default histogram buckets, in seconds. */
static const double buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                 0.5,   1,    2.5,   5,    10};
#define N_BUCKETS (sizeof buckets / sizeof buckets[0])
#define N_CODES 17

/* One method's counters. */
typedef struct method_row {
  const char *path; /* "/helloworld.Greeter/SayHello" */
  char service[128], method[64];
  const char *type; /* go-grpc-prometheus's grpc_type */
  uint64_t started, received, sent;
  uint64_t handled[N_CODES];
  uint64_t bucket[N_BUCKETS]; /* not cumulative; summed when written */
  uint64_t count;
  double sum;
} method_row;

typedef struct metrics {
  pthread_mutex_t lock;
  method_row *rows;
  size_t n_rows;
} metrics;

static const char *grpc_type(cgrpc_method_kind kind) {
  switch (kind) {
  case CGRPC_METHOD_CLIENT_STREAMING:
    return "client_stream";
  case CGRPC_METHOD_SERVER_STREAMING:
    return "server_stream";
  case CGRPC_METHOD_BIDI_STREAMING:
    return "bidi_stream";
  default:
    return "unary";
  }
}

/* A row for every method of |desc|, so that each shows from the start. */
static int metrics_add_service(metrics *m, const cgrpc_service_desc *desc) {
  method_row *rows =
      realloc(m->rows, (m->n_rows + desc->n_methods) * sizeof *rows);
  if (!rows)
    return -1;
  m->rows = rows;
  for (size_t i = 0; i < desc->n_methods; i++) {
    method_row *r = &rows[m->n_rows++];
    memset(r, 0, sizeof *r);
    r->path = desc->methods[i].path;
    snprintf(r->service, sizeof r->service, "%s", desc->name);
    snprintf(r->method, sizeof r->method, "%s", desc->methods[i].name);
    r->type = grpc_type(desc->methods[i].kind);
  }
  return 0;
}

static method_row *find_row(metrics *m, const char *path) {
  for (size_t i = 0; i < m->n_rows; i++)
    if (strcmp(m->rows[i].path, path) == 0)
      return &m->rows[i];
  return NULL;
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static cgrpc_status_code on_start(const cgrpc_interceptor_info *info,
                                  const cgrpc_metadata_array *md,
                                  cgrpc_metadata_array *send_initial,
                                  cgrpc_metadata_array *send_trailing,
                                  char *message, size_t message_size,
                                  void **call_data, void *user_data) {
  metrics *m = user_data;
  method_row *r = find_row(m, info->method); /* rows never move now */
  (void)md, (void)send_initial, (void)send_trailing;
  (void)message, (void)message_size;
  *call_data = r;
  if (r) {
    pthread_mutex_lock(&m->lock);
    r->started++;
    pthread_mutex_unlock(&m->lock);
  }
  return CGRPC_STATUS_OK;
}

static void on_message(const cgrpc_interceptor_info *info, int direction,
                       const ProtobufCMessage *msg, void *call_data,
                       void *user_data) {
  metrics *m = user_data;
  method_row *r = call_data;
  (void)info, (void)msg;
  if (!r)
    return;
  pthread_mutex_lock(&m->lock);
  if (direction == CGRPC_INTERCEPT_RECV)
    r->received++;
  else
    r->sent++;
  pthread_mutex_unlock(&m->lock);
}

static void on_end(const cgrpc_interceptor_info *info, cgrpc_status_code code,
                   const char *message, const cgrpc_metadata_array *trailing,
                   void *call_data, void *user_data) {
  metrics *m = user_data;
  method_row *r = call_data;
  double s = (double)(now_ns() - info->start_ns) / 1e9;
  size_t i;
  (void)message, (void)trailing;
  if (!r)
    return;
  pthread_mutex_lock(&m->lock);
  r->handled[(unsigned)code < N_CODES ? code : CGRPC_STATUS_UNKNOWN]++;
  for (i = 0; i < N_BUCKETS && s > buckets[i]; i++) {
  }
  if (i < N_BUCKETS)
    r->bucket[i]++;
  r->count++;
  r->sum += s;
  pthread_mutex_unlock(&m->lock);
}

/* A growable text buffer. */
typedef struct text {
  char *p;
  size_t len, cap;
  int failed;
} text;

static void put(text *t, const char *fmt, ...) CGRPC_PRINTF(2, 3);
static void put(text *t, const char *fmt, ...) {
  va_list ap;
  int n;
  if (t->failed)
    return;
  for (;;) {
    va_start(ap, fmt);
    n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
      t->failed = 1;
      return;
    }
    if ((size_t)n < t->cap - t->len) {
      t->len += (size_t)n;
      return;
    }
    size_t cap = t->cap * 2 + (size_t)n + 1;
    char *p = realloc(t->p, cap);
    if (!p) {
      t->failed = 1;
      return;
    }
    t->p = p;
    t->cap = cap;
  }
}

/* The labels every family has, for row |r|. */
#define LABELS "grpc_type=\"%s\",grpc_service=\"%s\",grpc_method=\"%s\""
#define LABEL_ARGS(r) (r)->type, (r)->service, (r)->method

static void family(text *t, const char *name, const char *type,
                   const char *help) {
  put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The exposition (text format 0.0.4) of everything counted so far. */
static void metrics_render(metrics *m, text *t) {
  size_t i, j;
  pthread_mutex_lock(&m->lock);
  family(t, "grpc_server_started_total", "counter",
         "Total number of RPCs started on the server.");
  for (i = 0; i < m->n_rows; i++)
    put(t, "grpc_server_started_total{" LABELS "} %llu\n",
        LABEL_ARGS(&m->rows[i]), (unsigned long long)m->rows[i].started);
  family(t, "grpc_server_handled_total", "counter",
         "Total number of RPCs completed on the server, regardless of "
         "success or failure.");
  for (i = 0; i < m->n_rows; i++)
    for (j = 0; j < N_CODES; j++)
      if (m->rows[i].handled[j])
        put(t, "grpc_server_handled_total{" LABELS ",grpc_code=\"%s\"} %llu\n",
            LABEL_ARGS(&m->rows[i]), cgrpc_status_code_name((int)j),
            (unsigned long long)m->rows[i].handled[j]);
  family(t, "grpc_server_msg_received_total", "counter",
         "Total number of RPC stream messages received on the server.");
  for (i = 0; i < m->n_rows; i++)
    put(t, "grpc_server_msg_received_total{" LABELS "} %llu\n",
        LABEL_ARGS(&m->rows[i]), (unsigned long long)m->rows[i].received);
  family(t, "grpc_server_msg_sent_total", "counter",
         "Total number of gRPC stream messages sent by the server.");
  for (i = 0; i < m->n_rows; i++)
    put(t, "grpc_server_msg_sent_total{" LABELS "} %llu\n",
        LABEL_ARGS(&m->rows[i]), (unsigned long long)m->rows[i].sent);
  family(t, "grpc_server_handling_seconds", "histogram",
         "Histogram of response latency (seconds) of gRPC that had been "
         "application-level handled by the server.");
  for (i = 0; i < m->n_rows; i++) {
    const method_row *r = &m->rows[i];
    uint64_t cum = 0;
    for (j = 0; j < N_BUCKETS; j++) {
      cum += r->bucket[j];
      put(t, "grpc_server_handling_seconds_bucket{" LABELS ",le=\"%g\"} %llu\n",
          LABEL_ARGS(r), buckets[j], (unsigned long long)cum);
    }
    put(t, "grpc_server_handling_seconds_bucket{" LABELS ",le=\"+Inf\"} %llu\n",
        LABEL_ARGS(r), (unsigned long long)r->count);
    put(t, "grpc_server_handling_seconds_sum{" LABELS "} %.9g\n", LABEL_ARGS(r),
        r->sum);
    put(t, "grpc_server_handling_seconds_count{" LABELS "} %llu\n",
        LABEL_ARGS(r), (unsigned long long)r->count);
  }
  pthread_mutex_unlock(&m->lock);
}

/* ---- the HTTP endpoint: one connection at a time, blocking ---- */

#define MAX_REQUEST 8192

typedef struct http_server {
  int fd;
  int stop_pipe[2];
  metrics *m;
} http_server;

static int send_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return -1;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

static void respond(int fd, const char *status, const char *extra,
                    const char *type, const char *body, size_t len) {
  char head[512];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %s\r\nContent-Type: %s\r\n%sContent-Length: "
                   "%zu\r\nConnection: close\r\n\r\n",
                   status, type, extra, len);
  if (send_all(fd, head, (size_t)n) == 0 && body)
    send_all(fd, body, len);
}

static void respond_text(int fd, const char *status, const char *extra,
                         const char *body) {
  respond(fd, status, extra, "text/plain; charset=utf-8", body, strlen(body));
}

/* Reads the request's head (up to the blank line); returns its length, 0
 * when it is too large, -1 when the client went or took too long. */
static ssize_t read_head(int fd, char *buf, size_t size) {
  size_t len = 0;
  while (len + 1 < size) {
    ssize_t k = recv(fd, buf + len, size - 1 - len, 0);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return -1; /* closed, or the receive timeout */
    len += (size_t)k;
    buf[len] = '\0';
    if (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n"))
      return (ssize_t)len;
  }
  return 0;
}

static void serve_one(http_server *h, int fd) {
  char buf[MAX_REQUEST], *sp1, *sp2, *eol;
  struct timeval tv = {5, 0};
  ssize_t n;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  n = read_head(fd, buf, sizeof buf);
  if (n < 0)
    return;
  if (n == 0) {
    respond_text(fd, "431 Request Header Fields Too Large", "",
                 "request head too large\n");
    return;
  }
  /* "METHOD SP target SP HTTP/1.x" */
  eol = strpbrk(buf, "\r\n");
  *eol = '\0';
  sp1 = strchr(buf, ' ');
  sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
  if (!sp1 || !sp2 || sp1 == buf || sp2 == sp1 + 1 || strchr(sp2 + 1, ' ') ||
      strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
    respond_text(fd, "400 Bad Request", "", "malformed request line\n");
    return;
  }
  *sp1 = *sp2 = '\0';
  sp1[1 + strcspn(sp1 + 1, "?")] = '\0'; /* the query does not matter */
  if (strcmp(sp1 + 1, "/metrics") != 0) {
    respond_text(fd, "404 Not Found", "", "try /metrics\n");
    return;
  }
  if (strcmp(buf, "GET") != 0 && strcmp(buf, "HEAD") != 0) {
    respond_text(fd, "405 Method Not Allowed", "Allow: GET, HEAD\r\n",
                 "GET /metrics\n");
    return;
  }
  {
    text t = {NULL, 0, 0, 0};
    metrics_render(h->m, &t);
    if (t.failed)
      respond_text(fd, "500 Internal Server Error", "", "out of memory\n");
    else
      respond(fd, "200 OK", "", "text/plain; version=0.0.4; charset=utf-8",
              strcmp(buf, "HEAD") == 0 ? NULL : t.p, t.len);
    free(t.p);
  }
}

static void *http_thread(void *arg) {
  http_server *h = arg;
  for (;;) {
    struct pollfd p[2] = {{h->fd, POLLIN, 0}, {h->stop_pipe[0], POLLIN, 0}};
    int fd;
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (p[1].revents)
      break;
    fd = accept(h->fd, NULL, NULL);
    if (fd < 0)
      continue; /* the client went, or out of fds: try the next */
    serve_one(h, fd);
    close(fd);
  }
  return NULL;
}

/* Listens on 0.0.0.0:|port| (0: a free one, written back). */
static int http_listen(http_server *h, int *port) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  int one = 1;
  h->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (h->fd < 0)
    return -1;
  setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  a.sin_port = htons((uint16_t)*port);
  if (bind(h->fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      listen(h->fd, 64) != 0 ||
      getsockname(h->fd, (struct sockaddr *)&a, &len) != 0 ||
      pipe(h->stop_pipe) != 0) {
    close(h->fd);
    return -1;
  }
  *port = ntohs(a.sin_port);
  return 0;
}

int main(int argc, char **argv) {
  Helloworld__Greeter_Servicer greeter = {
      .say_hello = say_hello,
      .say_hello_again = say_hello_again,
  };
  metrics m = {PTHREAD_MUTEX_INITIALIZER, NULL, 0};
  cgrpc_interceptor ic = {on_start, on_message, on_end, &m};
  http_server h = {-1, {-1, -1}, &m};
  cgrpc_server *server = NULL;
  pthread_t http;
  sigset_t stop_signals;
  char addr[64];
  int port = 50051, metrics_port = 9090, bound = 0, sig, rv;

  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--port=", 7) == 0) {
      port = atoi(argv[i] + 7);
    } else if (strncmp(argv[i], "--metrics_port=", 15) == 0) {
      metrics_port = atoi(argv[i] + 15);
    } else {
      fprintf(stderr, "usage: %s [--port=N] [--metrics_port=M]\n", argv[0]);
      return 2;
    }
  }
  /* Block the stop signals in every thread; main waits for them below. */
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

  if (metrics_add_service(&m, &helloworld__greeter__service__desc) != 0) {
    fprintf(stderr, "metrics_server: out of memory\n");
    return 1;
  }
  if (http_listen(&h, &metrics_port) != 0) {
    fprintf(stderr, "metrics_server: cannot listen on port %d: %s\n",
            metrics_port, strerror(errno));
    return 1;
  }
  snprintf(addr, sizeof addr, "[::]:%d", port);
  if ((rv = cgrpc_server_new(&server, NULL)) != 0 ||
      (rv = cgrpc_server_add_insecure_port(server, addr, &bound)) != 0 ||
      (rv = helloworld__greeter__servicer__register(server, &greeter, NULL)) !=
          0 ||
      (rv = cgrpc_server_add_interceptor(server, &ic)) != 0 ||
      (rv = cgrpc_server_start(server)) != 0) {
    fprintf(stderr, "metrics_server: %s\n", cgrpc_strerror(rv));
    cgrpc_server_del(server);
    return 1;
  }
  if (pthread_create(&http, NULL, http_thread, &h) != 0) {
    fprintf(stderr, "metrics_server: cannot start the HTTP thread\n");
    cgrpc_server_del(server);
    return 1;
  }
  printf("Server started, listening on %d\nMetrics on port %d\n", bound,
         metrics_port);
  fflush(stdout);

  sigwait(&stop_signals, &sig);
  cgrpc_server_shutdown(server, 5000);
  cgrpc_server_del(server); /* no callback runs after this */
  if (write(h.stop_pipe[1], "x", 1) != 1)
    fprintf(stderr, "metrics_server: cannot stop the HTTP thread\n");
  else
    pthread_join(http, NULL);
  close(h.fd);
  close(h.stop_pipe[0]);
  close(h.stop_pipe[1]);
  free(m.rows);
  return 0;
}
