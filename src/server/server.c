/* SPDX-License-Identifier: MIT */
/*
 * The server object: options, listeners, the method table, loop threads,
 * the handler pool, and graceful shutdown.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "call/compress.h"
#include "cgrpc/error.h"
#include "io/sock.h"
#include "io/tls.h"
#include "server/internal.h"
#include "util/clock.h"
#include "util/mem.h"

/* ---- options ---- */

static void options_defaults(struct cgrpc_server_options *o) {
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  memset(o, 0, sizeof *o);
  o->max_workers = CGRPC__DEFAULT_MAX_WORKERS;
  o->num_loops = cores < 1 ? 1 : cores > 4 ? 4 : (int)cores;
  o->max_recv = 4 * 1024 * 1024;
  o->max_send = -1;
  o->max_streams = 1000;
  o->keepalive_time_ms = CGRPC__KEEPALIVE_OFF;
  o->keepalive_timeout_ms = 20000;
  o->min_ping_interval_ms = 5 * 60 * 1000;
  o->max_ping_strikes = 2;
  o->max_idle_ms = CGRPC__KEEPALIVE_OFF;
  o->max_age_ms = CGRPC__KEEPALIVE_OFF;
  o->max_age_grace_ms = CGRPC__KEEPALIVE_OFF;
}

/* A time option: <= 0 means "never". */
static int64_t time_or_off(int64_t ms) {
  return ms > 0 ? ms : CGRPC__KEEPALIVE_OFF;
}

void cgrpc_server_options_set_keepalive_time_ms(cgrpc_server_options *opts,
                                                int64_t time_ms) {
  if (opts)
    opts->keepalive_time_ms = time_or_off(time_ms);
}

void cgrpc_server_options_set_keepalive_timeout_ms(cgrpc_server_options *opts,
                                                   int64_t timeout_ms) {
  if (opts)
    opts->keepalive_timeout_ms = timeout_ms > 0 ? timeout_ms : 20000;
}

void cgrpc_server_options_set_keepalive_min_ping_interval_ms(
    cgrpc_server_options *opts, int64_t interval_ms) {
  if (opts)
    opts->min_ping_interval_ms = interval_ms > 0 ? interval_ms : 0;
}

void cgrpc_server_options_set_keepalive_permit_without_calls(
    cgrpc_server_options *opts, int permit) {
  if (opts)
    opts->permit_pings_without_calls = permit != 0;
}

void cgrpc_server_options_set_max_ping_strikes(cgrpc_server_options *opts,
                                               int strikes) {
  if (opts)
    opts->max_ping_strikes = strikes > 0 ? strikes : 0;
}

void cgrpc_server_options_set_max_connection_idle_ms(
    cgrpc_server_options *opts, int64_t idle_ms) {
  if (opts)
    opts->max_idle_ms = time_or_off(idle_ms);
}

void cgrpc_server_options_set_max_connection_age_ms(cgrpc_server_options *opts,
                                                    int64_t age_ms,
                                                    int64_t grace_ms) {
  if (opts) {
    opts->max_age_ms = time_or_off(age_ms);
    opts->max_age_grace_ms = time_or_off(grace_ms);
  }
}

int cgrpc_server_options_new(cgrpc_server_options **opts_ptr) {
  cgrpc_server_options *o;
  if (!opts_ptr)
    return CGRPC_ERR_INVALID_ARGUMENT;
  o = cgrpc__malloc(sizeof *o);
  if (!o)
    return CGRPC_ERR_NOMEM;
  options_defaults(o);
  *opts_ptr = o;
  return 0;
}

void cgrpc_server_options_del(cgrpc_server_options *opts) { cgrpc__free(opts); }

void cgrpc_server_options_set_max_workers(cgrpc_server_options *opts,
                                          int max_workers) {
  if (opts && max_workers >= 0)
    opts->max_workers = max_workers;
}

void cgrpc_server_options_set_max_concurrent_rpcs(cgrpc_server_options *opts,
                                                  int max_rpcs) {
  if (opts)
    opts->max_rpcs = max_rpcs > 0 ? max_rpcs : 0;
}

void cgrpc_server_options_set_max_receive_message_length(
    cgrpc_server_options *opts, int64_t max_bytes) {
  if (opts)
    opts->max_recv = max_bytes < 0 ? -1 : max_bytes;
}

void cgrpc_server_options_set_max_send_message_length(
    cgrpc_server_options *opts, int64_t max_bytes) {
  if (opts)
    opts->max_send = max_bytes < 0 ? -1 : max_bytes;
}

void cgrpc_server_options_set_max_concurrent_streams(cgrpc_server_options *opts,
                                                     uint32_t max_streams) {
  if (opts && max_streams > 0)
    opts->max_streams = max_streams;
}

int cgrpc_server_options_set_default_compression(cgrpc_server_options *opts,
                                                 int compression) {
  int rv;
  if (!opts)
    return CGRPC_ERR_INVALID_ARGUMENT;
  rv = cgrpc__compress_check_option(compression, opts->log_cb,
                                    opts->log_user_data, __func__);
  if (rv == 0)
    opts->compression = compression;
  return rv;
}

void cgrpc_server_options_set_log(cgrpc_server_options *opts, cgrpc_log_cb cb,
                                  void *user_data) {
  if (opts) {
    opts->log_cb = cb;
    opts->log_user_data = user_data;
  }
}

/* ---- max_concurrent_rpcs ---- */

int cgrpc__server_call_admit(struct cgrpc_server_ctx *call) {
  cgrpc_server *server = call->server;
  int limit = server->opts.max_rpcs;
  int n = atomic_load_explicit(&server->active_rpcs, memory_order_relaxed);
  if (limit == 0)
    return 1;
  do {
    if (n >= limit) {
      char msg[96];
      snprintf(msg, sizeof msg,
               "concurrent RPC limit exceeded (max_concurrent_rpcs %d)", limit);
      cgrpc__server_call_fail(call, CGRPC_STATUS_RESOURCE_EXHAUSTED, msg);
      return 0;
    }
  } while (!atomic_compare_exchange_weak(&server->active_rpcs, &n, n + 1));
  call->admitted = 1;
  return 1;
}

void cgrpc__server_call_leave(struct cgrpc_server_ctx *call) {
  if (!call->admitted)
    return;
  call->admitted = 0;
  atomic_fetch_sub(&call->server->active_rpcs, 1);
}

/* ---- the server ---- */

int cgrpc_server_new(cgrpc_server **server_ptr,
                     const cgrpc_server_options *opts) {
  cgrpc_server *server;
  if (!server_ptr)
    return CGRPC_ERR_INVALID_ARGUMENT;
  server = cgrpc__calloc(1, sizeof *server);
  if (!server)
    return CGRPC_ERR_NOMEM;
  if (opts)
    server->opts = *opts;
  else
    options_defaults(&server->opts);
  cgrpc__logger_init(&server->log, server->opts.log_cb,
                     server->opts.log_user_data);
  pthread_mutex_init(&server->lock, NULL);
  {
    /* Shutdown's grace wait is measured on the monotonic clock. */
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&server->cond, &attr);
    pthread_condattr_destroy(&attr);
  }
  server->state = SERVER_NEW;
  *server_ptr = server;
  return 0;
}

/* "unix:path", "unix:///path", "unix-abstract:name": one socket, port 0. */
static int add_unix_port(cgrpc_server *server, const char *addr,
                         const struct sockaddr_un *sun, socklen_t len,
                         cgrpc_server_credentials *creds, int *bound_port) {
  cgrpc__sock_unix_file *file = &server->unix_files[server->n_unix_files];
  int fd, rv = cgrpc__sock_listen_unix(sun, len, &fd, file);
  if (rv != 0) {
    cgrpc__log(&server->log, CGRPC_LOG_ERROR, "cannot listen on %s: %s (%s)",
               addr, cgrpc_strerror(rv), strerror(errno));
    return rv;
  }
  server->listen_creds[server->n_listeners] = creds;
  if (creds)
    cgrpc__server_creds_ref(creds);
  server->listen_fds[server->n_listeners++] = fd;
  if (file->dir_fd != -1)
    server->n_unix_files++;
  if (bound_port)
    *bound_port = 0;
  cgrpc__log(&server->log, CGRPC_LOG_INFO, "listening on %s%s", addr,
             creds ? " (TLS)" : "");
  return 0;
}

/* Binds |addr| for plaintext (|creds| NULL) or TLS. */
static int add_port(cgrpc_server *server, const char *addr,
                    cgrpc_server_credentials *creds, int *bound_port) {
  struct sockaddr_un sun;
  socklen_t sun_len;
  const char *why = NULL;
  int n, i, port, rv;
  if (!server || !addr)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (server->state != SERVER_NEW)
    return CGRPC_ERR_INVALID_STATE;
  if (server->n_listeners == CGRPC__MAX_LISTENERS)
    return CGRPC_ERR_INVALID_ARGUMENT;
  rv = cgrpc__sock_parse_unix(addr, &sun, &sun_len, &why);
  if (rv < 0) {
    cgrpc__log(&server->log, CGRPC_LOG_ERROR, "cannot listen on %s: %s", addr,
               why);
    return rv;
  }
  if (rv == 1)
    return add_unix_port(server, addr, &sun, sun_len, creds, bound_port);
  rv = cgrpc__sock_listen(addr, server->listen_fds + server->n_listeners,
                          CGRPC__MAX_LISTENERS - server->n_listeners, &n,
                          &port);
  if (rv != 0) {
    cgrpc__log(&server->log, CGRPC_LOG_ERROR, "cannot listen on %s: %s", addr,
               cgrpc_strerror(rv));
    return rv;
  }
  for (i = 0; i < n; i++) {
    server->listen_creds[server->n_listeners + i] = creds;
    if (creds)
      cgrpc__server_creds_ref(creds);
  }
  server->n_listeners += n;
  if (bound_port)
    *bound_port = port;
  cgrpc__log(&server->log, CGRPC_LOG_INFO, "listening on %s (port %d%s)", addr,
             port, creds ? ", TLS" : "");
  return 0;
}

int cgrpc_server_add_insecure_port(cgrpc_server *server, const char *addr,
                                   int *bound_port) {
  return add_port(server, addr, NULL, bound_port);
}

int cgrpc_server_add_secure_port(cgrpc_server *server, const char *addr,
                                 cgrpc_server_credentials *creds,
                                 int *bound_port) {
  SSL_CTX *ctx;
  if (!creds)
    return CGRPC_ERR_INVALID_ARGUMENT;
  /* Usable now, or refused now rather than at each handshake. */
  ctx = cgrpc__server_creds_ctx(creds);
  if (!ctx) {
    if (server)
      cgrpc__log(&server->log, CGRPC_LOG_ERROR,
                 "cannot listen on %s: the server credentials have no "
                 "certificate, or client authentication without client CAs",
                 addr ? addr : "(null)");
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  SSL_CTX_free(ctx);
  return add_port(server, addr, creds, bound_port);
}

int cgrpc_server_add_interceptor(cgrpc_server *server,
                                 const cgrpc_interceptor *interceptor) {
  if (!server || !interceptor)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (server->state != SERVER_NEW)
    return CGRPC_ERR_INVALID_STATE;
  return cgrpc__ichain_add(&server->interceptors, interceptor);
}

int cgrpc_server_register_service(cgrpc_server *server,
                                  const cgrpc_service_desc *desc,
                                  const cgrpc_method_handler *handlers,
                                  const void *servicer, size_t servicer_size,
                                  void *user_data) {
  cgrpc__service_entry *svc, *services;
  size_t i;
  int rv;
  if (!server || !desc || !desc->name || (desc->n_methods && !handlers) ||
      (desc->n_methods && !desc->methods) || !servicer)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (server->state != SERVER_NEW)
    return CGRPC_ERR_INVALID_STATE;
  for (i = 0; i < server->n_services; i++)
    if (strcmp(server->services[i].desc->name, desc->name) == 0)
      return CGRPC_ERR_ALREADY_EXISTS;
  for (i = 0; i < desc->n_methods; i++) {
    const cgrpc_method_desc *m = &desc->methods[i];
    if (!m->path || m->path[0] != '/' || !m->input || !m->output ||
        (unsigned)m->kind > CGRPC_METHOD_BIDI_STREAMING)
      return CGRPC_ERR_INVALID_ARGUMENT;
  }
  services = cgrpc__realloc(server->services,
                            (server->n_services + 1) * sizeof *services);
  if (!services)
    return CGRPC_ERR_NOMEM;
  server->services = services;
  svc = &services[server->n_services];
  svc->desc = desc;
  svc->user_data = user_data;
  svc->servicer = cgrpc__malloc(servicer_size);
  if (!svc->servicer)
    return CGRPC_ERR_NOMEM;
  memcpy(svc->servicer, servicer, servicer_size);
  server->n_services++;
  for (i = 0; i < desc->n_methods; i++) {
    cgrpc__method_entry e;
    e.path = desc->methods[i].path;
    e.path_len = strlen(e.path);
    e.desc = &desc->methods[i];
    e.handler = handlers[i];
    e.service = NULL; /* set below: services may move on realloc */
    rv = cgrpc__server_methods_insert(server, &e);
    if (rv != 0)
      return rv;
  }
  /* Point every method at its (possibly moved) service entry. */
  for (i = 0; i < server->methods_cap; i++) {
    cgrpc__method_entry *m = &server->methods[i];
    size_t j, k;
    if (!m->path)
      continue;
    for (j = 0; j < server->n_services; j++)
      for (k = 0; k < server->services[j].desc->n_methods; k++)
        if (&server->services[j].desc->methods[k] == m->desc)
          m->service = &server->services[j];
  }
  return 0;
}

static void accept_ready(void *user_data, unsigned events);
static void loop_begin_shutdown(void *user_data);
static void loop_force_close(void *user_data);

/* Out of file descriptors: stop watching the listener for a moment, or
 * level-triggered epoll would wake us for the same pending connection in a
 * busy loop. */
static void accept_resume(void *user_data) {
  cgrpc__server_listener *l = user_data;
  cgrpc__loop_watch(l->sl->loop, &l->watch, l->fd, CGRPC__IO_READ,
                    accept_ready, l);
}

/* A connection on |l|: over TLS when the listener has credentials (whose
 * certificate as it is now the handshake uses). */
static void accept_one(cgrpc__server_listener *l, int fd, const char *peer,
                       const cgrpc__sock_cred *cred) {
  SSL *tls = NULL;
  if (l->creds) {
    SSL_CTX *ctx = cgrpc__server_creds_ctx(l->creds);
    tls = ctx ? cgrpc__tls_conn_new(ctx, fd, 1, NULL, 0, NULL) : NULL;
    SSL_CTX_free(ctx); /* the SSL holds its own */
    if (!tls) {
      cgrpc__log(&l->sl->server->log, CGRPC_LOG_ERROR,
                 "%s: cannot set up TLS; closing", peer);
      close(fd);
      return;
    }
  }
  cgrpc__server_conn_accept(l->sl, fd, peer, cred, tls);
}

static void accept_ready(void *user_data, unsigned events) {
  cgrpc__server_listener *l = user_data;
  int i;
  (void)events;
  /* A bounded batch per wake-up; level-triggered epoll brings the rest. */
  for (i = 0; i < 64; i++) {
    char peer[CGRPC__SOCK_NAME_MAX];
    cgrpc__sock_cred cred;
    int fd = cgrpc__sock_accept(l->fd, peer, sizeof peer, &cred);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
          errno == ENOMEM) {
        cgrpc__log(&l->sl->server->log, CGRPC_LOG_WARNING,
                   "accept: %s; pausing accepts for 100 ms", strerror(errno));
        /* Without the timer that re-arms it, the listener stays watched. */
        if (cgrpc__loop_timer_start(l->sl->loop, &l->pause,
                                    cgrpc__now_ns() + 100 * 1000000LL) == 0)
          cgrpc__loop_unwatch(l->sl->loop, &l->watch);
      } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                 errno != ECONNABORTED) {
        cgrpc__log(&l->sl->server->log, CGRPC_LOG_WARNING, "accept: %s",
                   strerror(errno));
      }
      return;
    }
    accept_one(l, fd, peer, &cred);
  }
}

/* End of a loop turn: hand this turn's handler jobs to the pool at once. */
static void submit_jobs(void *user_data) {
  cgrpc__server_loop *sl = user_data;
  cgrpc__pool_submit_batch(&sl->server->pool, &sl->jobs);
}

static void server_free_loops(cgrpc_server *server) {
  int i;
  for (i = 0; i < server->n_loops; i++)
    cgrpc__loop_del(server->loops[i].loop);
  cgrpc__free(server->loops);
  server->loops = NULL;
  server->n_loops = 0;
}

int cgrpc_server_start(cgrpc_server *server) {
  int i, j, rv;
  if (!server)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (server->state != SERVER_NEW || server->n_listeners == 0)
    return CGRPC_ERR_INVALID_STATE;
  server->loops = cgrpc__calloc((size_t)server->opts.num_loops,
                                sizeof *server->loops);
  if (!server->loops)
    return CGRPC_ERR_NOMEM;
  for (i = 0; i < server->opts.num_loops; i++) {
    cgrpc__server_loop *sl = &server->loops[i];
    sl->server = server;
    sl->submit_jobs.cb = submit_jobs;
    sl->submit_jobs.user_data = sl;
    cgrpc__task_init(&sl->begin_shutdown, loop_begin_shutdown, sl);
    cgrpc__task_init(&sl->force_close, loop_force_close, sl);
    rv = cgrpc__loop_new(&sl->loop);
    if (rv != 0) {
      server_free_loops(server);
      return rv;
    }
    server->n_loops++;
    for (j = 0; j < server->n_listeners; j++) {
      sl->listeners[j].sl = sl;
      sl->listeners[j].fd = server->listen_fds[j];
      sl->listeners[j].creds = server->listen_creds[j];
      cgrpc__timer_init(&sl->listeners[j].pause, accept_resume,
                        &sl->listeners[j]);
      /* Every loop watches every listener, so a new connection may wake
       * several of them; the ones that lose the race to accept() just see
       * EAGAIN. */
      rv = cgrpc__loop_watch(sl->loop, &sl->listeners[j].watch,
                             server->listen_fds[j], CGRPC__IO_READ,
                             accept_ready, &sl->listeners[j]);
      if (rv != 0) {
        server_free_loops(server);
        return rv;
      }
    }
  }
  if (server->opts.max_workers > 0) {
    rv = cgrpc__pool_start(&server->pool, server->opts.max_workers,
                           server->n_loops, &server->log);
    if (rv != 0) {
      server_free_loops(server);
      return rv;
    }
  }
  for (i = 0; i < server->n_loops; i++) {
    rv = cgrpc__loop_start_thread(server->loops[i].loop, "cgrpc-server");
    if (rv != 0) {
      while (--i >= 0)
        cgrpc__loop_stop_join(server->loops[i].loop);
      cgrpc__pool_stop(&server->pool);
      server_free_loops(server);
      return rv;
    }
  }
  pthread_mutex_lock(&server->lock);
  server->state = SERVER_STARTED;
  pthread_mutex_unlock(&server->lock);
  return 0;
}

/* Nonzero on one of |server|'s own threads (a loop or a pool worker),
 * where waiting for the server to stop would wait for ourselves. */
static int on_own_thread(const cgrpc_server *server) {
  int i;
  if (cgrpc__pool_in_worker(&server->pool))
    return 1;
  for (i = 0; i < server->n_loops; i++)
    if (cgrpc__loop_in_thread(server->loops[i].loop))
      return 1;
  return 0;
}

int cgrpc_server_wait(cgrpc_server *server) {
  if (!server)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (on_own_thread(server))
    return CGRPC_ERR_WOULD_DEADLOCK;
  pthread_mutex_lock(&server->lock);
  if (server->state == SERVER_NEW) {
    pthread_mutex_unlock(&server->lock);
    return CGRPC_ERR_INVALID_STATE;
  }
  while (server->state != SERVER_STOPPED)
    pthread_cond_wait(&server->cond, &server->lock);
  pthread_mutex_unlock(&server->lock);
  return 0;
}

void cgrpc__server_conn_gone(cgrpc_server *server) {
  pthread_mutex_lock(&server->lock);
  server->live_conns--;
  pthread_cond_broadcast(&server->cond);
  pthread_mutex_unlock(&server->lock);
}

/* Loop task: stop accepting, and start the GOAWAY dance on each conn. */
static void loop_begin_shutdown(void *user_data) {
  cgrpc__server_loop *sl = user_data;
  cgrpc__server_conn *conn;
  int j;
  for (j = 0; j < sl->server->n_listeners; j++) {
    cgrpc__loop_timer_stop(sl->loop, &sl->listeners[j].pause);
    cgrpc__loop_unwatch(sl->loop, &sl->listeners[j].watch);
  }
  for (conn = sl->conns; conn; conn = conn->next)
    cgrpc__server_conn_begin_shutdown(conn);
}

/* Loop task: the grace period is over; close what is left. */
static void loop_force_close(void *user_data) {
  cgrpc__server_loop *sl = user_data;
  cgrpc_server *server = sl->server;
  cgrpc__server_conn *conn;
  for (conn = sl->conns; conn; conn = conn->next)
    cgrpc__h2conn_close(&conn->h2);
  /* Handlers started in this turn go to the pool now, not after it. */
  cgrpc__loop_undefer(sl->loop, &sl->submit_jobs);
  if (server->opts.max_workers > 0)
    cgrpc__pool_submit_batch(&server->pool, &sl->jobs);
  /* No call starts on this loop any more. */
  pthread_mutex_lock(&server->lock);
  server->closed_loops++;
  pthread_cond_broadcast(&server->cond);
  pthread_mutex_unlock(&server->lock);
}

/* Closes the listening sockets and removes the socket files of the "unix:"
 * ones.  Once only: the second call finds none. */
static void listeners_close(cgrpc_server *server) {
  int i;
  for (i = 0; i < server->n_listeners; i++)
    close(server->listen_fds[i]);
  server->n_listeners = 0;
  for (i = 0; i < server->n_unix_files; i++)
    cgrpc__sock_unix_file_remove(&server->unix_files[i]);
  server->n_unix_files = 0;
}

static void deadline_from_now(struct timespec *ts, int64_t ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (ms % 1000) * 1000000;
  if (ts->tv_nsec >= 1000000000) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000;
  }
}

/* The shutdown itself: GOAWAY everywhere, wait up to the grace, close
 * what is left, drain the pool, stop the loops. */
static void shutdown_run(cgrpc_server *server, int64_t grace_ms) {
  int i;
  /* The health service says NOT_SERVING to its watchers before any
   * connection hears of the drain. */
  if (server->health.shutdown)
    server->health.shutdown(server->health.arg, grace_ms);
  for (i = 0; i < server->n_loops; i++)
    cgrpc__loop_post_task(server->loops[i].loop,
                          &server->loops[i].begin_shutdown);
  /* Wait for the connections to finish their calls, up to the grace. */
  {
    int64_t deadline = grace_ms < 0 ? INT64_MAX : cgrpc__now_ms() + grace_ms;
    pthread_mutex_lock(&server->lock);
    while (server->live_conns > 0) {
      struct timespec ts;
      int64_t left = deadline - cgrpc__now_ms();
      if (left <= 0)
        break;
      deadline_from_now(&ts, left > 3600000 ? 3600000 : left);
      pthread_cond_timedwait(&server->cond, &server->lock, &ts);
    }
    pthread_mutex_unlock(&server->lock);
  }
  for (i = 0; i < server->n_loops; i++)
    cgrpc__loop_post_task(server->loops[i].loop,
                          &server->loops[i].force_close);
  /* Once every loop has closed its connections, no handler job can come:
   * the handlers finish (they see is_cancelled), the loops take back the
   * calls they completed, then the loops stop. */
  pthread_mutex_lock(&server->lock);
  while (server->closed_loops < server->n_loops)
    pthread_cond_wait(&server->cond, &server->lock);
  pthread_mutex_unlock(&server->lock);
  cgrpc__pool_stop(&server->pool);
  for (i = 0; i < server->n_loops; i++)
    cgrpc__loop_stop_join(server->loops[i].loop);
  listeners_close(server);
  pthread_mutex_lock(&server->lock);
  server->state = SERVER_STOPPED;
  pthread_cond_broadcast(&server->cond);
  pthread_mutex_unlock(&server->lock);
}

static void *shutdown_thread(void *arg) {
  cgrpc_server *server = arg;
  shutdown_run(server, server->shutdown_grace_ms);
  return NULL;
}

int cgrpc_server_shutdown(cgrpc_server *server, int64_t grace_ms) {
  int state, own;
  if (!server)
    return CGRPC_ERR_INVALID_ARGUMENT;
  own = on_own_thread(server);
  pthread_mutex_lock(&server->lock);
  state = server->state;
  if (state == SERVER_STARTED)
    server->state = SERVER_SHUTTING_DOWN;
  else if (state == SERVER_NEW) {
    server->state = SERVER_STOPPED;
    pthread_cond_broadcast(&server->cond);
  }
  if (state == SERVER_STARTED && own) {
    /* From a handler or a callback ("Quit" RPCs): the shutdown waits for
     * handlers and joins the loops, so it runs on a thread of its own;
     * cgrpc_server_wait() tells when it is over, cgrpc_server_del() joins
     * it. */
    server->shutdown_grace_ms = grace_ms;
    if (pthread_create(&server->shutdown_thread, NULL, shutdown_thread,
                       server) != 0) {
      server->state = SERVER_STARTED;
      pthread_mutex_unlock(&server->lock);
      cgrpc__log(&server->log, CGRPC_LOG_ERROR,
                 "cgrpc_server_shutdown: cannot start a thread for it");
      return CGRPC_ERR_IO;
    }
    server->has_shutdown_thread = 1;
  }
  pthread_mutex_unlock(&server->lock);
  if (state == SERVER_NEW || own)
    return 0;
  if (state != SERVER_STARTED) {
    /* Another thread is shutting down: wait for it. */
    pthread_mutex_lock(&server->lock);
    while (server->state != SERVER_STOPPED)
      pthread_cond_wait(&server->cond, &server->lock);
    pthread_mutex_unlock(&server->lock);
    return 0;
  }
  shutdown_run(server, grace_ms);
  return 0;
}

void cgrpc_server_del(cgrpc_server *server) {
  size_t i;
  int joinable;
  if (!server)
    return;
  if (on_own_thread(server)) {
    cgrpc__log(&server->log, CGRPC_LOG_ERROR,
               "cgrpc_server_del called from one of the server's own "
               "threads; ignored (use cgrpc_server_shutdown there, and "
               "delete the server from another thread)");
    return;
  }
  cgrpc_server_shutdown(server, 0);
  pthread_mutex_lock(&server->lock);
  joinable = server->has_shutdown_thread;
  server->has_shutdown_thread = 0;
  pthread_mutex_unlock(&server->lock);
  if (joinable)
    pthread_join(server->shutdown_thread, NULL);
  server_free_loops(server);
  listeners_close(server);
  for (i = 0; i < CGRPC__MAX_LISTENERS; i++)
    cgrpc_server_credentials_del(server->listen_creds[i]);
  for (i = 0; i < server->n_services; i++)
    cgrpc__free(server->services[i].servicer);
  cgrpc__free(server->services);
  cgrpc__free(server->methods);
  cgrpc__ichain_free(&server->interceptors);
  if (server->health.free)
    server->health.free(server->health.arg);
  pthread_mutex_destroy(&server->lock);
  pthread_cond_destroy(&server->cond);
  cgrpc__free(server);
}
