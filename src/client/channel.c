/* SPDX-License-Identifier: MIT */
/*
 * The channel: target parsing, its loop thread, the connection with
 * reconnect and backoff.  Calls live in call.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgrpc/error.h"
#include "client/call_creds.h"
#include "client/internal.h"
#include "io/sock.h"
#include "util/clock.h"
#include "util/mem.h"

#define CONNECT_TIMEOUT_MS 20000
#define BACKOFF_INITIAL_MS 1000
#define BACKOFF_MAX_MS 120000
#define DNS_TIMEOUT_MS 20000
/* gRPC's minimum time between two lookups of a channel's name. */
#define RERESOLVE_MIN_NS (30 * (int64_t)1000000000)
/* The shortest keepalive time the ordinary setter accepts, as grpc-go and
 * grpc-java clamp it: servers enforce a ping policy (5 minutes by
 * default), and pings more often than this mostly earn a GOAWAY. */
#define KEEPALIVE_MIN_TIME_MS 10000
#define KEEPALIVE_DEFAULT_TIMEOUT_MS 20000

/* ---- options ---- */

static void options_defaults(struct cgrpc_channel_options *o) {
  memset(o, 0, sizeof *o);
  o->max_recv = 4 * 1024 * 1024;
  o->max_send = -1;
  o->dns_timeout_ms = DNS_TIMEOUT_MS;
  o->keepalive_time_ms = CGRPC__KEEPALIVE_OFF;
  o->keepalive_timeout_ms = KEEPALIVE_DEFAULT_TIMEOUT_MS;
}

int cgrpc_channel_options_new(cgrpc_channel_options **opts_ptr) {
  cgrpc_channel_options *o;
  if (!opts_ptr)
    return CGRPC_ERR_INVALID_ARGUMENT;
  o = cgrpc__malloc(sizeof *o);
  if (!o)
    return CGRPC_ERR_NOMEM;
  options_defaults(o);
  *opts_ptr = o;
  return 0;
}

void cgrpc_channel_options_del(cgrpc_channel_options *opts) {
  if (!opts)
    return;
  cgrpc_channel_credentials_del(opts->creds);
  cgrpc_tls_session_cache_del(opts->sessions);
  cgrpc_call_credentials_del(opts->call_creds);
  cgrpc__service_config_unref(opts->service_config);
  cgrpc__free(opts->target_name_override);
  cgrpc__free(opts->authority);
  cgrpc__free(opts);
}

void cgrpc_channel_options_set_max_receive_message_length(
    cgrpc_channel_options *opts, int64_t max_bytes) {
  if (opts)
    opts->max_recv = max_bytes < 0 ? -1 : max_bytes;
}

void cgrpc_channel_options_set_max_send_message_length(
    cgrpc_channel_options *opts, int64_t max_bytes) {
  if (opts)
    opts->max_send = max_bytes < 0 ? -1 : max_bytes;
}

int cgrpc_channel_options_set_authority(cgrpc_channel_options *opts,
                                        const char *authority) {
  char *a;
  if (!opts || !authority || !*authority)
    return CGRPC_ERR_INVALID_ARGUMENT;
  a = cgrpc__strdup(authority);
  if (!a)
    return CGRPC_ERR_NOMEM;
  cgrpc__free(opts->authority);
  opts->authority = a;
  return 0;
}

void cgrpc_channel_options_set_dns_timeout_ms(cgrpc_channel_options *opts,
                                              int64_t timeout_ms) {
  if (opts)
    opts->dns_timeout_ms = timeout_ms > 0 ? timeout_ms : DNS_TIMEOUT_MS;
}

void cgrpc_channel_options_set_credentials(cgrpc_channel_options *opts,
                                           cgrpc_channel_credentials *creds) {
  if (!opts)
    return;
  if (creds)
    cgrpc__channel_creds_ref(creds);
  cgrpc_channel_credentials_del(opts->creds);
  opts->creds = creds;
}

void cgrpc_channel_options_set_tls_session_cache(
    cgrpc_channel_options *opts, cgrpc_tls_session_cache *cache) {
  if (!opts)
    return;
  if (cache)
    cgrpc__tls_session_cache_ref(cache);
  cgrpc_tls_session_cache_del(opts->sessions);
  opts->sessions = cache;
}

void cgrpc_channel_options_set_call_credentials(
    cgrpc_channel_options *opts, cgrpc_call_credentials *creds) {
  if (!opts)
    return;
  if (creds)
    cgrpc__call_creds_ref(creds);
  cgrpc_call_credentials_del(opts->call_creds);
  opts->call_creds = creds;
}

int cgrpc_channel_options_set_service_config(cgrpc_channel_options *opts,
                                             const char *json, char *err,
                                             size_t err_size) {
  char why[300];
  cgrpc__service_config *sc;
  if (!opts)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (!json) {
    cgrpc__service_config_unref(opts->service_config);
    opts->service_config = NULL;
    return 0;
  }
  sc = cgrpc__service_config_parse(json, why, sizeof why);
  if (!sc) {
    cgrpc__logger log;
    cgrpc__logger_init(&log, opts->log_cb, opts->log_user_data);
    cgrpc__log(&log, CGRPC_LOG_ERROR, "service config: %s", why);
    if (err && err_size)
      snprintf(err, err_size, "%s", why);
    return strcmp(why, "out of memory") == 0 ? CGRPC_ERR_NOMEM
                                              : CGRPC_ERR_INVALID_ARGUMENT;
  }
  cgrpc__service_config_unref(opts->service_config);
  opts->service_config = sc;
  return 0;
}

void cgrpc_channel_options_allow_insecure_call_credentials(
    cgrpc_channel_options *opts, int allow) {
  if (opts)
    opts->insecure_call_creds = allow != 0;
}

int cgrpc_channel_options_set_ssl_target_name_override(
    cgrpc_channel_options *opts, const char *name) {
  char *n;
  if (!opts || !name || !*name)
    return CGRPC_ERR_INVALID_ARGUMENT;
  n = cgrpc__strdup(name);
  if (!n)
    return CGRPC_ERR_NOMEM;
  cgrpc__free(opts->target_name_override);
  opts->target_name_override = n;
  return 0;
}

void cgrpc_channel_options_set_keepalive_time_ms(cgrpc_channel_options *opts,
                                                 int64_t time_ms) {
  if (opts)
    cgrpc_channel_options_set_keepalive_time_ms_for_testing(
        opts, time_ms > 0 && time_ms < KEEPALIVE_MIN_TIME_MS
                  ? KEEPALIVE_MIN_TIME_MS
                  : time_ms);
}

void cgrpc_channel_options_set_keepalive_time_ms_for_testing(
    cgrpc_channel_options *opts, int64_t time_ms) {
  if (opts)
    opts->keepalive_time_ms = time_ms > 0 ? time_ms : CGRPC__KEEPALIVE_OFF;
}

void cgrpc_channel_options_set_keepalive_timeout_ms(
    cgrpc_channel_options *opts, int64_t timeout_ms) {
  if (opts)
    opts->keepalive_timeout_ms =
        timeout_ms > 0 ? timeout_ms : KEEPALIVE_DEFAULT_TIMEOUT_MS;
}

void cgrpc_channel_options_set_keepalive_permit_without_calls(
    cgrpc_channel_options *opts, int permit) {
  if (opts)
    opts->keepalive_permit_without_calls = permit != 0;
}

void cgrpc_channel_options_set_log(cgrpc_channel_options *opts, cgrpc_log_cb cb,
                                   void *user_data) {
  if (opts) {
    opts->log_cb = cb;
    opts->log_user_data = user_data;
  }
}

/* ---- connection ---- */

/* The target as messages name it: host:port (or the authority set), or the
 * "unix:" target itself ("localhost" would say nothing). */
static const char *target_name(const cgrpc_channel *ch) {
  return ch->target.kind == CGRPC__TARGET_UNIX ? ch->target.host
                                               : ch->authority;
}

/* What the calls that cannot connect are told. */
#define CONNECT_FAILURE_MAX 600
static void connect_failure(const cgrpc_channel *ch,
                            char msg[CONNECT_FAILURE_MAX]) {
  snprintf(msg, CONNECT_FAILURE_MAX, "failed to connect to %s: %s",
           target_name(ch),
           ch->last_error[0] ? ch->last_error : "unknown error");
}

static void connect_next(cgrpc__client_conn *conn);
static void channel_closed(cgrpc_channel *ch);

static void conn_free(cgrpc__client_conn *conn) {
  cgrpc_channel *ch = conn->ch;
  if (conn->prev_conn)
    conn->prev_conn->next_conn = conn->next_conn;
  else
    ch->conns = conn->next_conn;
  if (conn->next_conn)
    conn->next_conn->prev_conn = conn->prev_conn;
  cgrpc__loop_timer_stop(ch->loop, &conn->connect_timer);
  if (conn->connecting_fd >= 0) {
    cgrpc__loop_unwatch(ch->loop, &conn->connect_watch);
    close(conn->connecting_fd);
  }
  if (conn->resolving)
    cgrpc__dns_cancel(ch->dns);
  cgrpc__free(conn->addrs);
  nghttp2_session_del(conn->h2.session);
  cgrpc__free(conn);
  if (ch->close_started && !ch->conns)
    channel_closed(ch);
  cgrpc__channel_unref(ch);
}

static void backoff_done(void *user_data) {
  cgrpc_channel *ch = user_data;
  if (ch->state == CHANNEL_TRANSIENT_FAILURE)
    ch->state = CHANNEL_IDLE;
}

/* Every address failed: fail the waiting calls and back off. */
static void connect_failed(cgrpc__client_conn *conn) {
  cgrpc_channel *ch = conn->ch;
  char msg[CONNECT_FAILURE_MAX];
  double jitter;
  int64_t wait;
  connect_failure(ch, msg);
  cgrpc__log(&ch->log, CGRPC_LOG_WARNING, "%s", msg);
  if (ch->conn == conn)
    ch->conn = NULL;
  conn_free(conn);
  ch->state = CHANNEL_TRANSIENT_FAILURE;
  ch->resolve_stale = 1;
  while (ch->pending)
    cgrpc__call_fail(ch->pending, CGRPC_STATUS_UNAVAILABLE, msg);
  if (ch->close_started)
    return;
  /* Backoff: 1 s, x1.6, +-20% jitter, at most 120 s. */
  jitter = 1.0 + 0.2 * (2.0 * ((double)rand() / RAND_MAX) - 1.0);
  wait = (int64_t)((double)ch->backoff_ms * jitter);
  if (cgrpc__loop_timer_start(ch->loop, &ch->backoff_timer,
                              cgrpc__now_ns() + wait * 1000000) != 0)
    ch->state = CHANNEL_IDLE; /* no timer to end the backoff: skip it */
  ch->backoff_ms = (int64_t)((double)ch->backoff_ms * 1.6);
  if (ch->backoff_ms > BACKOFF_MAX_MS)
    ch->backoff_ms = BACKOFF_MAX_MS;
}

static void conn_closed(cgrpc__h2conn *h2, void *user_data) {
  cgrpc__client_conn *conn = user_data;
  cgrpc_channel *ch = conn->ch;
  if (!conn->ready) {
    /* The TLS handshake failed (or the server closed during it): a
     * connection failure, with backoff. */
    snprintf(ch->last_error, sizeof ch->last_error, "TLS handshake failed: %.200s",
             h2->error ? h2->error
                          : "the server closed the connection");
    connect_failed(conn);
    return;
  }
  ch->resolve_stale = 1;
  /* First, so that calls retried from here go to another connection. */
  if (ch->conn == conn) {
    ch->conn = NULL;
    ch->state = CHANNEL_IDLE;
  }
  /* The calls that end here say why (those retried go elsewhere). */
  if (h2->error) {
    snprintf(ch->lost_reason, sizeof ch->lost_reason,
             "connection to %.70s closed: %.160s", target_name(ch), h2->error);
    cgrpc__log(&ch->log, CGRPC_LOG_WARNING, "%s", ch->lost_reason);
  } else {
    snprintf(ch->lost_reason, sizeof ch->lost_reason, "connection closed");
  }
  cgrpc__ep_conn_lost(&conn->calls);
  conn_free(conn);
}

static int conn_busy(void *user_data) {
  const cgrpc__client_conn *conn = user_data;
  return conn->calls != NULL;
}

/* The connection carries HTTP/2 (after the TLS handshake, if any): the
 * waiting calls go. */
static void conn_usable(cgrpc__h2conn *h2, void *user_data) {
  cgrpc__client_conn *conn = user_data;
  cgrpc_channel *ch = conn->ch;
  cgrpc__loop_timer_stop(ch->loop, &conn->connect_timer);
  if (cgrpc__h2_keepalive_start(h2, ch->opts.keepalive_time_ms,
                                ch->opts.keepalive_timeout_ms,
                                ch->opts.keepalive_permit_without_calls,
                                conn_busy) != 0) {
    cgrpc__h2conn_fail(h2, "out of memory (keepalive)");
    return;
  }
  conn->ready = 1;
  ch->state = CHANNEL_READY;
  ch->backoff_ms = BACKOFF_INITIAL_MS;
  while (ch->pending) {
    struct cgrpc_call *call = ch->pending;
    cgrpc__channel_dequeue(ch, call);
    cgrpc__call_submit(call);
  }
}

static void conn_ready(cgrpc__client_conn *conn, int fd) {
  cgrpc_channel *ch = conn->ch;
  SSL *tls = NULL;
  nghttp2_session *session = NULL;
  nghttp2_option *opt = NULL;
  nghttp2_settings_entry settings[2];
  nghttp2_session_callbacks *cbs = cgrpc__client_callbacks();
  if (!cbs || ch->close_started || cgrpc__h2_session_option_new(&opt, 0) != 0 ||
      nghttp2_session_client_new3(&session, cbs, conn, opt,
                                  cgrpc__h2_mem()) != 0) {
    nghttp2_option_del(opt);
    close(fd);
    snprintf(ch->last_error, sizeof ch->last_error, "out of memory");
    connect_failed(conn);
    return;
  }
  nghttp2_option_del(opt);
  settings[0].settings_id = NGHTTP2_SETTINGS_ENABLE_PUSH;
  settings[0].value = 0;
  settings[1].settings_id = NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE;
  settings[1].value = 1 << 20;
  nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings, 2);
  nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0, 16 << 20);
  cgrpc__free(conn->addrs);
  conn->addrs = NULL;
  conn->n_addrs = conn->next_addr = 0;
  if (ch->tls_ctx) {
    tls = cgrpc__tls_conn_new(ch->tls_ctx, fd, 0, ch->tls_name,
                              ch->tls_skip_name, &ch->tls_sessions);
    if (!tls) {
      close(fd);
      snprintf(ch->last_error, sizeof ch->last_error, "out of memory");
      nghttp2_session_del(session);
      connect_failed(conn);
      return;
    }
  }
  /* The session now belongs to the connection, which frees it, started or
   * not (conn_free).  With TLS the connect timer runs on through the
   * handshake. */
  conn->h2.session = session;
  conn->started = 1;
  if (cgrpc__h2conn_start(&conn->h2, ch->loop, fd, session, tls, conn_usable,
                          conn_closed, &cgrpc__ep_body, conn) != 0) {
    snprintf(ch->last_error, sizeof ch->last_error, "cannot watch socket");
    connect_failed(conn);
  }
}

static void connect_io(void *user_data, unsigned events) {
  cgrpc__client_conn *conn = user_data;
  cgrpc_channel *ch = conn->ch;
  int fd = conn->connecting_fd, err;
  (void)events;
  cgrpc__loop_unwatch(ch->loop, &conn->connect_watch);
  conn->connecting_fd = -1;
  err = cgrpc__sock_connect_result(fd);
  if (err != 0) {
    close(fd);
    snprintf(ch->last_error, sizeof ch->last_error, "%s", strerror(err));
    connect_next(conn);
    return;
  }
  if (ch->target.kind == CGRPC__TARGET_UNIX)
    snprintf(conn->h2.peer, sizeof conn->h2.peer, "%.63s", ch->target.host);
  else
    snprintf(conn->h2.peer, sizeof conn->h2.peer, "%.48s:%.6s",
             ch->target.host, ch->target.port);
  conn_ready(conn, fd);
}

static void connect_timeout(void *user_data) {
  cgrpc__client_conn *conn = user_data;
  if (conn->started) { /* in the TLS handshake */
    cgrpc__h2conn_fail(&conn->h2, "timed out");
    return;
  }
  snprintf(conn->ch->last_error, sizeof conn->ch->last_error,
           "connect timed out");
  if (conn->connecting_fd >= 0) {
    cgrpc__loop_unwatch(conn->ch->loop, &conn->connect_watch);
    close(conn->connecting_fd);
    conn->connecting_fd = -1;
  }
  conn->next_addr = conn->n_addrs;
  connect_failed(conn);
}

/* Tries the next resolved address. */
static void connect_next(cgrpc__client_conn *conn) {
  cgrpc_channel *ch = conn->ch;
  while (conn->next_addr < conn->n_addrs) {
    const cgrpc__addr *a = &conn->addrs[conn->next_addr++];
    int fd = cgrpc__sock_connect((const struct sockaddr *)&a->ss, a->len);
    if (fd < 0) {
      snprintf(ch->last_error, sizeof ch->last_error, "%s", strerror(errno));
      continue;
    }
    conn->connecting_fd = fd;
    if (cgrpc__loop_watch(ch->loop, &conn->connect_watch, fd, CGRPC__IO_WRITE,
                          connect_io, conn) != 0) {
      close(fd);
      conn->connecting_fd = -1;
      continue;
    }
    return;
  }
  connect_failed(conn);
}

/* Takes a copy of |addrs| to try in order, and starts on the first one
 * under the connect timeout. */
static void conn_connect(cgrpc__client_conn *conn, const cgrpc__addr *addrs,
                         size_t n) {
  cgrpc_channel *ch = conn->ch;
  conn->addrs = cgrpc__calloc(n, sizeof *addrs);
  if (!conn->addrs) {
    snprintf(ch->last_error, sizeof ch->last_error, "out of memory");
    connect_failed(conn);
    return;
  }
  memcpy(conn->addrs, addrs, n * sizeof *addrs);
  conn->n_addrs = n;
  if (cgrpc__loop_timer_start(ch->loop, &conn->connect_timer,
                              cgrpc__now_ns() +
                                  (int64_t)CONNECT_TIMEOUT_MS * 1000000) != 0) {
    snprintf(ch->last_error, sizeof ch->last_error, "out of memory");
    conn->next_addr = conn->n_addrs;
  }
  connect_next(conn);
}

/* The channel's lookup ended (loop thread; maybe inside
 * cgrpc__dns_resolve()). */
static void conn_resolved(void *user_data, const cgrpc__addr *addrs, size_t n,
                          const char *error) {
  cgrpc__client_conn *conn = user_data;
  cgrpc_channel *ch = conn->ch;
  conn->resolving = 0;
  cgrpc__free(ch->resolved);
  ch->resolved = NULL;
  ch->n_resolved = 0;
  if (error) {
    snprintf(ch->last_error, sizeof ch->last_error, "%s", error);
    connect_failed(conn);
    return;
  }
  ch->resolved = cgrpc__calloc(n, sizeof *addrs);
  if (ch->resolved) { /* else the next attempt looks the name up again */
    memcpy(ch->resolved, addrs, n * sizeof *addrs);
    ch->n_resolved = n;
    ch->resolve_stale = 0;
  }
  conn_connect(conn, addrs, n);
}

/* Starts connecting (loop thread, state IDLE): to the target's own
 * addresses, or to those of the last lookup, or after a new one (there
 * are none yet, or a connection dropped and the last lookup is 30 s old). */
static void channel_connect(cgrpc_channel *ch) {
  int64_t now = cgrpc__now_ns();
  int rv;
  cgrpc__client_conn *conn = cgrpc__calloc(1, sizeof *conn);
  if (!conn) {
    while (ch->pending)
      cgrpc__call_fail(ch->pending, CGRPC_STATUS_RESOURCE_EXHAUSTED,
                       "out of memory");
    return;
  }
  cgrpc__channel_ref(ch);
  conn->ch = ch;
  conn->next_conn = ch->conns;
  if (ch->conns)
    ch->conns->prev_conn = conn;
  ch->conns = conn;
  conn->connecting_fd = -1;
  conn->h2.fd = -1;
  cgrpc__timer_init(&conn->connect_timer, connect_timeout, conn);
  ch->conn = conn;
  ch->state = CHANNEL_CONNECTING;
  if (ch->target.kind != CGRPC__TARGET_DNS) {
    conn_connect(conn, ch->target.addrs, ch->target.n_addrs);
    return;
  }
  if (ch->n_resolved &&
      !(ch->resolve_stale && now - ch->resolved_at_ns >= RERESOLVE_MIN_NS)) {
    conn_connect(conn, ch->resolved, ch->n_resolved);
    return;
  }
  ch->resolved_at_ns = now;
  conn->resolving = 1;
  rv = cgrpc__dns_resolve(ch->dns, ch->target.host, ch->target.port,
                          ch->opts.dns_timeout_ms, conn_resolved, conn);
  if (rv != 0) {
    conn->resolving = 0;
    snprintf(ch->last_error, sizeof ch->last_error, "cannot resolve %.200s: %s",
             ch->target.host, cgrpc_strerror(rv));
    connect_failed(conn);
  }
}

void cgrpc__channel_enqueue(cgrpc_channel *ch, struct cgrpc_call *call) {
  if (ch->close_started) {
    cgrpc__call_fail(call, CGRPC_STATUS_CANCELLED, "channel closed");
    return;
  }
  if (ch->state == CHANNEL_READY && ch->conn &&
      nghttp2_session_check_request_allowed(ch->conn->h2.session)) {
    cgrpc__call_submit(call);
    return;
  }
  if (ch->state == CHANNEL_READY) {
    /* The server sent GOAWAY: let that connection drain, open another. */
    ch->conn = NULL;
    ch->state = CHANNEL_IDLE;
  }
  if (ch->state == CHANNEL_TRANSIENT_FAILURE) {
    char msg[CONNECT_FAILURE_MAX];
    connect_failure(ch, msg);
    cgrpc__call_fail(call, CGRPC_STATUS_UNAVAILABLE, msg);
    return;
  }
  call->next = ch->pending;
  if (ch->pending)
    ch->pending->prev = call;
  ch->pending = call;
  call->prev = NULL;
  call->pending = 1;
  if (ch->state == CHANNEL_IDLE)
    channel_connect(ch);
}

void cgrpc__channel_dequeue(cgrpc_channel *ch, struct cgrpc_call *call) {
  if (!call->pending)
    return;
  call->pending = 0;
  if (call->prev)
    call->prev->next = call->next;
  else
    ch->pending = call->next;
  if (call->next)
    call->next->prev = call->prev;
  call->prev = call->next = NULL;
}

void cgrpc__channel_conn_goaway(cgrpc__client_conn *conn,
                                const nghttp2_goaway *goaway) {
  static const char too_many_pings[] = "too_many_pings";
  cgrpc_channel *ch = conn->ch;
  /* The server's ping policy says we ping too often: later connections
   * ping half as often, as gRPC C-core does (gRFC A8). */
  if (goaway->error_code == NGHTTP2_ENHANCE_YOUR_CALM &&
      goaway->opaque_data_len == sizeof too_many_pings - 1 &&
      memcmp(goaway->opaque_data, too_many_pings,
             sizeof too_many_pings - 1) == 0 &&
      ch->opts.keepalive_time_ms != CGRPC__KEEPALIVE_OFF) {
    ch->opts.keepalive_time_ms = ch->opts.keepalive_time_ms > INT64_MAX / 4000000
                                     ? CGRPC__KEEPALIVE_OFF
                                     : ch->opts.keepalive_time_ms * 2;
    cgrpc__log(&ch->log, CGRPC_LOG_WARNING,
               "%s sent GOAWAY ENHANCE_YOUR_CALM \"too_many_pings\": "
               "keepalive time now %lld ms",
               target_name(ch), (long long)ch->opts.keepalive_time_ms);
  }
  if (ch->conn == conn) {
    ch->conn = NULL;
    ch->state = CHANNEL_IDLE;
  }
}

/* ---- lifetime ---- */

/* What cgrpc_channel_new() copies of the options beyond the plain fields,
 * and the TLS state; NULL-safe parts of both. */
static void channel_free_parts(cgrpc_channel *ch) {
  if (ch->tls_ctx) /* a plaintext channel may not have loaded OpenSSL */
    SSL_CTX_free(ch->tls_ctx);
  cgrpc__tls_sessions_clear(&ch->tls_sessions);
  cgrpc__free(ch->tls_name);
  cgrpc_channel_credentials_del(ch->opts.creds);
  cgrpc_call_credentials_del(ch->opts.call_creds);
  cgrpc__service_config_unref(ch->opts.service_config);
  cgrpc__free(ch->authority);
  cgrpc__target_free(&ch->target);
  cgrpc__free(ch->resolved);
  cgrpc__dns_del(ch->dns); /* only when the channel never started */
}

static void channel_free(void *user_data) {
  cgrpc_channel *ch = user_data;
  cgrpc__loop_del(ch->loop);
  pthread_mutex_destroy(&ch->lock);
  pthread_cond_destroy(&ch->cond);
  channel_free_parts(ch);
  cgrpc__free(ch);
}

void cgrpc__channel_ref(cgrpc_channel *ch) { atomic_fetch_add(&ch->refs, 1); }

void cgrpc__channel_unref(cgrpc_channel *ch) {
  if (atomic_fetch_sub(&ch->refs, 1) != 1) {
    if (atomic_load(&ch->del_waiting)) {
      pthread_mutex_lock(&ch->lock);
      pthread_cond_broadcast(&ch->cond);
      pthread_mutex_unlock(&ch->lock);
    }
    return;
  }
  /* Nothing refers to the channel any more: stop its thread and free it;
   * from that very thread, once its loop has returned. */
  if (cgrpc__loop_in_thread(ch->loop)) {
    cgrpc__loop_on_exit(ch->loop, channel_free, ch);
    cgrpc__loop_stop(ch->loop);
  } else {
    cgrpc__loop_stop_join(ch->loop);
    channel_free(ch);
  }
}

static void close_task(void *user_data);

/* The TLS context of a channel with credentials, and the name the server's
 * certificate must carry: |override|, else the target's host. */
static int channel_tls_setup(cgrpc_channel *ch, const char *override,
                             cgrpc_tls_session_cache *cache) {
  char err[160], key[300];
  int rv;
  /* A Unix socket has no host: the authority ("localhost") stands in. */
  ch->tls_name = cgrpc__strdup(override ? override
                               : ch->target.kind == CGRPC__TARGET_UNIX
                                   ? ch->authority
                                   : ch->target.host);
  if (!ch->tls_name)
    return CGRPC_ERR_NOMEM;
  snprintf(key, sizeof key, "%s|%s", ch->tls_name, target_name(ch));
  if ((rv = cgrpc__tls_sessions_init(&ch->tls_sessions, cache, key)) != 0)
    return rv;
  ch->tls_skip_name = cgrpc__channel_creds_skip_hostname(ch->opts.creds);
  ch->tls_ctx = cgrpc__channel_creds_ctx_new(ch->opts.creds, &ch->tls_sessions,
                                             err, sizeof err);
  if (!ch->tls_ctx) {
    cgrpc__log(&ch->log, CGRPC_LOG_ERROR, "channel credentials: %s", err);
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  return 0;
}

int cgrpc_channel_new(cgrpc_channel **channel_ptr, const char *target,
                      const cgrpc_channel_options *opts) {
  cgrpc_channel *ch;
  const char *why = NULL;
  int rv;
  if (!channel_ptr || !target)
    return CGRPC_ERR_INVALID_ARGUMENT;
  ch = cgrpc__calloc(1, sizeof *ch);
  if (!ch)
    return CGRPC_ERR_NOMEM;
  if (opts) {
    ch->opts = *opts;
    ch->opts.authority = NULL;
    ch->opts.target_name_override = NULL;
    ch->opts.sessions = NULL; /* the channel's sessions hold the cache */
    if (ch->opts.creds)
      cgrpc__channel_creds_ref(ch->opts.creds);
    if (ch->opts.call_creds)
      cgrpc__call_creds_ref(ch->opts.call_creds);
    if (ch->opts.service_config) {
      cgrpc__service_config_ref(ch->opts.service_config);
      if (cgrpc__service_config_throttling(ch->opts.service_config,
                                           &ch->retry_max_tokens,
                                           &ch->retry_token_ratio))
        ch->retry_tokens = ch->retry_max_tokens;
    }
  } else {
    options_defaults(&ch->opts);
  }
  cgrpc__logger_init(&ch->log, ch->opts.log_cb, ch->opts.log_user_data);
  rv = cgrpc__target_parse(&ch->target, target, &why);
  if (rv != 0)
    cgrpc__log(&ch->log, CGRPC_LOG_ERROR, "bad target \"%s\"%s%s", target,
               why ? ": " : "", why ? why : "");
  if (rv == 0) { /* the channel's :authority unless the options say */
    ch->authority = ch->target.authority;
    ch->target.authority = NULL;
  }
  if (rv == 0 && opts && opts->authority) {
    cgrpc__free(ch->authority);
    ch->authority = cgrpc__strdup(opts->authority);
    if (!ch->authority)
      rv = CGRPC_ERR_NOMEM;
  }
  if (rv == 0 && ch->opts.creds)
    rv = channel_tls_setup(ch, opts ? opts->target_name_override : NULL,
                           opts ? opts->sessions : NULL);
  if (rv == 0 && ch->opts.call_creds && !ch->opts.creds &&
      !ch->opts.insecure_call_creds) {
    cgrpc__log(&ch->log, CGRPC_LOG_ERROR,
               "call credentials on a plaintext channel to \"%s\": they go "
               "only over TLS (set channel credentials, or allow them with "
               "cgrpc_channel_options_allow_insecure_call_credentials())",
               target);
    rv = CGRPC_ERR_INVALID_ARGUMENT;
  }
  if (rv != 0) {
    channel_free_parts(ch);
    cgrpc__free(ch);
    return rv;
  }
  atomic_init(&ch->refs, 1);
  atomic_init(&ch->app_calls, 0);
  atomic_init(&ch->del_waiting, 0);
  pthread_mutex_init(&ch->lock, NULL);
  pthread_cond_init(&ch->cond, NULL);
  cgrpc__task_init(&ch->close_task, close_task, ch);
  ch->backoff_ms = BACKOFF_INITIAL_MS;
  cgrpc__timer_init(&ch->backoff_timer, backoff_done, ch);
  rv = cgrpc__loop_new(&ch->loop);
  if (rv == 0 && ch->target.kind == CGRPC__TARGET_DNS) {
    rv = cgrpc__dns_new(&ch->dns, ch->loop, ch->target.dns_server);
    if (rv != 0) {
      cgrpc__log(&ch->log, CGRPC_LOG_ERROR,
                 "target \"%s\": the DNS resolver would not start: %s",
                 target, cgrpc_strerror(rv));
      cgrpc__loop_del(ch->loop);
    }
  }
  if (rv == 0) {
    rv = cgrpc__loop_start_thread(ch->loop, "cgrpc-channel");
    if (rv != 0)
      cgrpc__loop_del(ch->loop);
  }
  if (rv != 0) {
    pthread_mutex_destroy(&ch->lock);
    pthread_cond_destroy(&ch->cond);
    channel_free_parts(ch);
    cgrpc__free(ch);
    return rv;
  }
  *channel_ptr = ch;
  return 0;
}

/* Every connection is gone after the close: cgrpc_channel_del may return. */
static void channel_closed(cgrpc_channel *ch) {
  pthread_mutex_lock(&ch->lock);
  ch->closed = 1;
  pthread_cond_broadcast(&ch->cond);
  pthread_mutex_unlock(&ch->lock);
}

/* Loop task: cancel every call, close every connection. */
static void close_task(void *user_data) {
  cgrpc_channel *ch = user_data;
  cgrpc__client_conn *conn, *next;
  ch->close_started = 1;
  while (ch->pending)
    cgrpc__call_fail(ch->pending, CGRPC_STATUS_CANCELLED, "channel closed");
  cgrpc__call_fail_backing_off(ch, CGRPC_STATUS_CANCELLED, "channel closed");
  cgrpc__loop_timer_stop(ch->loop, &ch->backoff_timer);
  ch->conn = NULL;
  for (conn = ch->conns; conn; conn = next) {
    next = conn->next_conn;
    if (conn->started) {
      cgrpc__ep *ep;
      for (ep = conn->calls; ep; ep = ep->next)
        cgrpc__call_fail((struct cgrpc_call *)ep, CGRPC_STATUS_CANCELLED,
                         "channel closed");
      cgrpc__h2conn_close(&conn->h2); /* conn_closed frees it */
    } else {
      conn_free(conn);
    }
  }
  /* Its lookup, if any, was cancelled with its connection. */
  cgrpc__dns_del(ch->dns);
  ch->dns = NULL;
  if (!ch->conns)
    channel_closed(ch);
  cgrpc__channel_unref(ch); /* the task's */
}

void cgrpc_channel_del(cgrpc_channel *ch) {
  int again;
  if (!ch)
    return;
  pthread_mutex_lock(&ch->lock);
  again = ch->closing;
  ch->closing = 1;
  pthread_mutex_unlock(&ch->lock);
  if (again)
    return; /* a second delete of the same channel: the first one counts */
  cgrpc__channel_ref(ch);
  cgrpc__loop_post_task(ch->loop, &ch->close_task);
  if (!cgrpc__loop_in_thread(ch->loop)) {
    /* Wait for the connections, and for every reference but ours and the
     * calls the application holds (tasks on their way, calls ending), so
     * that the channel's memory and thread are gone at return unless the
     * application still holds calls. */
    atomic_store(&ch->del_waiting, 1);
    pthread_mutex_lock(&ch->lock);
    while (!ch->closed ||
           atomic_load(&ch->refs) > 1 + atomic_load(&ch->app_calls))
      pthread_cond_wait(&ch->cond, &ch->lock);
    pthread_mutex_unlock(&ch->lock);
  }
  cgrpc__channel_unref(ch);
}
