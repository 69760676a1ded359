/* SPDX-License-Identifier: MIT */
/*
 * Health checking: grpc.health.v1.Health (Check and Watch), gRPC's
 * doc/health-checking.md.
 *
 * One lock guards the table of statuses and the watchers.  A service that
 * was never set has no entry unless someone watches it: "" and the
 * registered services are SERVING by default (NOT_SERVING once the
 * shutdown began), any other name SERVICE_UNKNOWN.
 *
 * A Watch is a detached handler whose state (a watcher) lives in the
 * call's arena.  It has at most one write in flight: a change while one is
 * on its way is not queued, the write's completion (on the loop) compares
 * what was sent with the status now and sends again if they differ.  So a
 * watcher that does not read holds one message, and the setter only ever
 * queues a write without waiting.
 * Server-streaming calls have no read to see a cancel with, so the server
 * tells the watcher when its call leaves the stream
 * (cgrpc__server_ctx_on_gone()).  A watcher is finished, and taken off its
 * entry, only when no write of it is in flight; after that nothing here
 * touches its call.
 *
 * Lock order: the health lock, then a call's stream lock (taken inside the
 * server ctx functions); the server calls back here holding neither.  A
 * write is never queued under the health lock: it runs the call's
 * interceptors in place, under the call's interceptor lock, and an
 * interceptor may set a status itself (from on_message of that write, or
 * from on_end on the loop, which holds the interceptor lock of a Watch
 * that is still on its entry).  So an update decides under the lock (the
 * watcher is marked writing, which keeps anyone else from finishing it)
 * and the caller sends after unlocking (watchers_send()).
 */
#include "services/health.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#include "cgrpc/error.h"
#include "cgrpc/health.h"
#include "grpc/health/v1/health.pb-c.h"
#include "server/internal.h"
#include "util/clock.h"
#include "util/mem.h"

typedef Grpc__Health__V1__HealthCheckRequest health_request;
typedef Grpc__Health__V1__HealthCheckResponse health_response;

/* How long a shutdown waits at most for its NOT_SERVING to reach the
 * watchers (within its grace): a client that does not read would
 * otherwise hold it up. */
#define SHUTDOWN_WAIT_MS 1000

typedef struct watcher watcher;
typedef struct entry entry;

typedef struct health {
  cgrpc_server *server;
  pthread_mutex_t lock;
  pthread_cond_t cond; /* a watcher was finished (shutdown waits) */
  entry *entries;
  size_t n_watchers;
  int shut; /* the shutdown began: every status is NOT_SERVING for good */
} health;

/* One service name that was set or is watched. */
struct entry {
  entry *next;
  watcher *watchers; /* doubly linked */
  int known;         /* set with cgrpc_server_set_health() */
  int status;        /* when |known| */
  char name[];
};

struct watcher {
  watcher *prev, *next;
  health *h;
  entry *e;
  cgrpc_server_ctx *ctx;
  int last_sent;        /* the status last queued, or -1 */
  watcher *send_next;   /* on a list of watchers_send(), while |writing| */
  unsigned writing : 1; /* a write is in flight */
  unsigned gone : 1;    /* the call left its stream, or cannot write */
  unsigned done : 1;    /* finished: |ctx| is not ours any more */
};

/* ---- the table ----------------------------------------------------------- */

static entry *entry_find(const health *h, const char *name) {
  entry *e;
  for (e = h->entries; e; e = e->next)
    if (strcmp(e->name, name) == 0)
      return e;
  return NULL;
}

/* The entry of |name|, made if need be; NULL when out of memory. */
static entry *entry_get(health *h, const char *name) {
  entry *e = entry_find(h, name);
  size_t n;
  if (e)
    return e;
  n = strlen(name) + 1;
  e = cgrpc__malloc(sizeof *e + n);
  if (!e)
    return NULL;
  memset(e, 0, sizeof *e);
  memcpy(e->name, name, n);
  e->next = h->entries;
  h->entries = e;
  return e;
}

/* Frees |e| once nothing needs it: never set, nobody watching. */
static void entry_maybe_free(health *h, entry *e) {
  entry **p;
  if (e->known || e->watchers)
    return;
  for (p = &h->entries; *p; p = &(*p)->next)
    if (*p == e) {
      *p = e->next;
      break;
    }
  cgrpc__free(e);
}

static int registered(const health *h, const char *name) {
  size_t i;
  if (name[0] == '\0')
    return 1;
  for (i = 0; i < h->server->n_services; i++)
    if (strcmp(h->server->services[i].desc->name, name) == 0)
      return 1;
  return 0;
}

/* The status of |name| (|e| its entry, or NULL).  Lock held. */
static int status_of(const health *h, const char *name, const entry *e) {
  if (e && e->known)
    return e->status;
  if (!registered(h, name))
    return CGRPC_HEALTH_SERVICE_UNKNOWN;
  return h->shut ? CGRPC_HEALTH_NOT_SERVING : CGRPC_HEALTH_SERVING;
}

/* ---- watchers ------------------------------------------------------------ */

static void watcher_unlink(watcher *w) {
  if (w->prev)
    w->prev->next = w->next;
  else
    w->e->watchers = w->next;
  if (w->next)
    w->next->prev = w->prev;
  w->prev = w->next = NULL;
  w->h->n_watchers--;
  entry_maybe_free(w->h, w->e);
  w->e = NULL;
}

/* Ends the watch.  No write of it may be in flight.  Lock held. */
static void watcher_finish(watcher *w, cgrpc_status_code code) {
  health *h = w->h;
  cgrpc_server_ctx *ctx = w->ctx;
  w->done = 1;
  watcher_unlink(w);
  pthread_cond_broadcast(&h->cond);
  /* If the loop is about to report the call gone, it finds |w| done. */
  cgrpc__server_ctx_on_gone(ctx, NULL, NULL);
  if (code == CGRPC_STATUS_UNAVAILABLE)
    cgrpc_server_ctx_fail(ctx, code, "the server is shutting down");
  cgrpc_server_ctx_finish(ctx, code);
}

static void on_written(cgrpc_server_ctx *ctx, int ok, void *user_data);

/* Decides to send the watcher its service's status unless that is what it
 * was sent last or a write is in flight (the write's completion calls this
 * again): marks it writing and puts it on |*sends| for watchers_send().
 * After the shutdown's NOT_SERVING has gone out, ends the watch.  Lock
 * held. */
static void watcher_update(watcher *w, watcher **sends) {
  int status;
  if (w->done || w->gone || w->writing)
    return;
  status = status_of(w->h, w->e->name, w->e);
  if (status == w->last_sent) {
    if (w->h->shut)
      watcher_finish(w, CGRPC_STATUS_UNAVAILABLE);
    return;
  }
  w->writing = 1;
  w->last_sent = status;
  w->send_next = *sends;
  *sends = w;
}

/* Queues the writes watcher_update() decided on.  Lock not held: the write
 * runs the call's interceptors. */
static void watchers_send(health *h, watcher *w) {
  while (w) {
    watcher *next = w->send_next;
    health_response resp;
    int rv;
    grpc__health__v1__health_check_response__init(&resp);
    resp.status =
        (Grpc__Health__V1__HealthCheckResponse__ServingStatus)w->last_sent;
    /* Serialized before it returns; once it is queued, |w| is on_written's
     * (on the loop, maybe before this returns). */
    rv = cgrpc_server_ctx_write_async(w->ctx, &resp.base, on_written, w);
    if (rv != 0) {
      pthread_mutex_lock(&h->lock);
      w->writing = 0;
      w->gone = 1;
      watcher_finish(w, rv == CGRPC_ERR_CLOSED ? CGRPC_STATUS_CANCELLED
                                               : CGRPC_STATUS_INTERNAL);
      pthread_mutex_unlock(&h->lock);
    }
    w = next;
  }
}

static void on_written(cgrpc_server_ctx *ctx, int ok, void *user_data) {
  watcher *w = user_data, *sends = NULL;
  health *h = w->h;
  (void)ctx;
  pthread_mutex_lock(&h->lock);
  w->writing = 0;
  if (!ok)
    w->gone = 1;
  if (w->gone)
    watcher_finish(w, CGRPC_STATUS_CANCELLED);
  else
    watcher_update(w, &sends);
  pthread_mutex_unlock(&h->lock);
  watchers_send(h, sends);
}

/* The call left its stream (a cancel, the connection went).  With a write
 * in flight, its completion (not ok) finishes the watch. */
static void on_gone(cgrpc_server_ctx *ctx, void *user_data) {
  watcher *w = user_data;
  health *h = w->h;
  (void)ctx;
  pthread_mutex_lock(&h->lock);
  w->gone = 1;
  if (!w->done && !w->writing)
    watcher_finish(w, CGRPC_STATUS_CANCELLED);
  pthread_mutex_unlock(&h->lock);
}

/* ---- the methods --------------------------------------------------------- */

static const char *request_service(const ProtobufCMessage *request) {
  const health_request *req = (const health_request *)request;
  return req && req->service ? req->service : "";
}

static cgrpc_status_code check_handler(const void *servicer,
                                       cgrpc_server_ctx *ctx,
                                       const ProtobufCMessage *request,
                                       ProtobufCMessage *response,
                                       void *user_data) {
  health *h = ctx->server->health.arg;
  const char *name = request_service(request);
  int status;
  (void)servicer;
  (void)user_data;
  pthread_mutex_lock(&h->lock);
  status = status_of(h, name, entry_find(h, name));
  pthread_mutex_unlock(&h->lock);
  if (status == CGRPC_HEALTH_SERVICE_UNKNOWN)
    return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_NOT_FOUND,
                                 "unknown service");
  ((health_response *)response)->status =
      (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
  return CGRPC_STATUS_OK;
}

static cgrpc_status_code watch_handler(const void *servicer,
                                       cgrpc_server_ctx *ctx,
                                       const ProtobufCMessage *request,
                                       ProtobufCMessage *response,
                                       void *user_data) {
  health *h = ctx->server->health.arg;
  watcher *w, *sends = NULL;
  (void)servicer;
  (void)response;
  (void)user_data;
  w = cgrpc_server_ctx_alloc(ctx, sizeof *w);
  if (!w)
    return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_RESOURCE_EXHAUSTED,
                                 "out of memory");
  memset(w, 0, sizeof *w);
  w->h = h;
  w->ctx = ctx;
  w->last_sent = -1;
  pthread_mutex_lock(&h->lock);
  w->e = entry_get(h, request_service(request));
  if (!w->e) {
    pthread_mutex_unlock(&h->lock);
    return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_RESOURCE_EXHAUSTED,
                                 "out of memory");
  }
  w->next = w->e->watchers;
  if (w->next)
    w->next->prev = w;
  w->e->watchers = w;
  h->n_watchers++;
  if (cgrpc__server_ctx_on_gone(ctx, on_gone, w)) {
    /* Cancelled already. */
    watcher_unlink(w);
    pthread_mutex_unlock(&h->lock);
    return CGRPC_STATUS_CANCELLED;
  }
  /* Detached under the lock: on_gone, which may finish the call, waits
   * for it. */
  cgrpc_server_ctx_detach(ctx);
  watcher_update(w, &sends);
  pthread_mutex_unlock(&h->lock);
  watchers_send(h, sends);
  return CGRPC_STATUS_OK; /* ignored: detached */
}

/* ---- the server's hooks -------------------------------------------------- */

/* Every status to NOT_SERVING, sent to every watcher, and (up to the
 * grace, at most SHUTDOWN_WAIT_MS) waits until it has gone out to them
 * and their watches have ended. */
static void health_shutdown(void *arg, int64_t grace_ms) {
  health *h = arg;
  entry *e, *next_e;
  watcher *w, *next_w, *sends = NULL;
  int64_t wait_ms =
      grace_ms < 0 || grace_ms > SHUTDOWN_WAIT_MS ? SHUTDOWN_WAIT_MS : grace_ms;
  int64_t deadline = cgrpc__now_ms() + wait_ms;
  pthread_mutex_lock(&h->lock);
  h->shut = 1;
  for (e = h->entries; e; e = e->next)
    if (e->known)
      e->status = CGRPC_HEALTH_NOT_SERVING;
  /* An update may finish a watcher, and the last one of an entry that was
   * never set takes the entry with it. */
  for (e = h->entries; e; e = next_e) {
    next_e = e->next;
    for (w = e->watchers; w; w = next_w) {
      int last = !w->next;
      next_w = w->next;
      watcher_update(w, &sends);
      if (last)
        break; /* |e| may be gone */
    }
  }
  pthread_mutex_unlock(&h->lock);
  watchers_send(h, sends);
  pthread_mutex_lock(&h->lock);
  while (h->n_watchers > 0) {
    struct timespec ts;
    int64_t left = deadline - cgrpc__now_ms();
    if (left <= 0)
      break;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += left / 1000;
    ts.tv_nsec += (left % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&h->cond, &h->lock, &ts);
  }
  pthread_mutex_unlock(&h->lock);
}

static void health_free(void *arg) {
  health *h = arg;
  entry *e, *next;
  for (e = h->entries; e; e = next) {
    next = e->next;
    cgrpc__free(e);
  }
  pthread_mutex_destroy(&h->lock);
  pthread_cond_destroy(&h->cond);
  cgrpc__free(h);
}

/* ---- the service --------------------------------------------------------- */

static const cgrpc_method_desc health_methods[2] = {
    {
        .name = "Check",
        .path = "/grpc.health.v1.Health/Check",
        .kind = CGRPC_METHOD_UNARY,
        .input = &grpc__health__v1__health_check_request__descriptor,
        .output = &grpc__health__v1__health_check_response__descriptor,
    },
    {
        .name = "Watch",
        .path = "/grpc.health.v1.Health/Watch",
        .kind = CGRPC_METHOD_SERVER_STREAMING,
        .input = &grpc__health__v1__health_check_request__descriptor,
        .output = &grpc__health__v1__health_check_response__descriptor,
    },
};

static const cgrpc_service_desc health_service = {
    .name = "grpc.health.v1.Health",
    .n_methods = 2,
    .methods = health_methods,
    .file_desc = &cgrpc__health_v1_file,
};

int cgrpc_server_enable_health(cgrpc_server *server) {
  static const cgrpc_method_handler handlers[2] = {{check_handler},
                                                   {watch_handler}};
  static const char servicer = 0; /* the server wants one; it is unused */
  pthread_condattr_t attr;
  health *h;
  size_t i;
  int rv;
  if (!server)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (server->state != SERVER_NEW)
    return CGRPC_ERR_INVALID_STATE;
  if (server->health.arg)
    return CGRPC_ERR_ALREADY_EXISTS;
  for (i = 0; i < server->n_services; i++)
    if (strcmp(server->services[i].desc->name, health_service.name) == 0)
      return CGRPC_ERR_ALREADY_EXISTS;
  h = cgrpc__calloc(1, sizeof *h);
  if (!h)
    return CGRPC_ERR_NOMEM;
  h->server = server;
  rv = cgrpc_server_register_service(server, &health_service, handlers,
                                     &servicer, sizeof servicer, NULL);
  if (rv != 0) {
    cgrpc__free(h);
    return rv;
  }
  pthread_mutex_init(&h->lock, NULL);
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&h->cond, &attr);
  pthread_condattr_destroy(&attr);
  server->health.shutdown = health_shutdown;
  server->health.free = health_free;
  server->health.arg = h;
  return 0;
}

int cgrpc_server_set_health(cgrpc_server *server, const char *service,
                            cgrpc_health_status status) {
  health *h;
  entry *e;
  watcher *w, *next, *sends = NULL;
  if (!server || !service || (unsigned)status > CGRPC_HEALTH_SERVICE_UNKNOWN)
    return CGRPC_ERR_INVALID_ARGUMENT;
  h = server->health.arg;
  if (!h)
    return CGRPC_ERR_INVALID_STATE;
  pthread_mutex_lock(&h->lock);
  if (h->shut) {
    pthread_mutex_unlock(&h->lock);
    return 0;
  }
  e = entry_get(h, service);
  if (!e) {
    pthread_mutex_unlock(&h->lock);
    return CGRPC_ERR_NOMEM;
  }
  e->known = 1;
  e->status = (int)status;
  /* |e| is known: it stays while its watchers come and go. */
  for (w = e->watchers; w; w = next) {
    next = w->next;
    watcher_update(w, &sends);
  }
  pthread_mutex_unlock(&h->lock);
  watchers_send(h, sends);
  return 0;
}
