/* SPDX-License-Identifier: MIT */
/*
 * The channel: its options, its loop thread and lifetime, its
 * connectivity state and the calls waiting for a connection.  Addresses
 * and policies live in lb.c, connections in subchannel.c, calls in
 * call.c.
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
#include "util/trace.h"

#define DNS_TIMEOUT_MS 20000
/* gRPC's minimum time between two lookups of a channel's name. */
#define DNS_MIN_INTERVAL_MS 30000
#define IDLE_TIMEOUT_MS (30 * 60 * (int64_t)1000)
/* gRPC's connection backoff (doc/connection-backoff.md). */
static const cgrpc_connect_backoff default_backoff = {1000, 1.6, 0.2, 120000,
                                                      20000};
/* The shortest keepalive time the ordinary setter accepts, as grpc-go and
 * grpc-java clamp it: servers enforce a ping policy (5 minutes by
 * default), and pings more often than this mostly earn a GOAWAY. */
#define KEEPALIVE_MIN_TIME_MS 10000
#define KEEPALIVE_DEFAULT_TIMEOUT_MS 20000

/* ---- options ---- */

/* Logs a misuse of the options with their log callback: "|what|: |why|". */
static void options_error(const cgrpc_channel_options *opts, const char *what,
                          const char *why) {
  cgrpc__logger log;
  cgrpc__logger_init(&log, opts->log_cb, opts->log_user_data);
  cgrpc__log(&log, CGRPC_LOG_ERROR, "%s: %s", what, why);
}

static void options_defaults(struct cgrpc_channel_options *o) {
  memset(o, 0, sizeof *o);
  o->max_recv = 4 * 1024 * 1024;
  o->max_send = -1;
  o->dns_timeout_ms = DNS_TIMEOUT_MS;
  o->dns_min_interval_ms = DNS_MIN_INTERVAL_MS;
  o->keepalive_time_ms = CGRPC__KEEPALIVE_OFF;
  o->keepalive_timeout_ms = KEEPALIVE_DEFAULT_TIMEOUT_MS;
  o->lb_policy = CGRPC__LB_PICK_FIRST;
  o->backoff = default_backoff;
  o->idle_timeout_ms = IDLE_TIMEOUT_MS;
  o->retry_buffer_per_call = 256 * 1024;
  o->retry_buffer_per_channel = 16 * 1024 * 1024;
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

int cgrpc_channel_options_add_interceptor(
    cgrpc_channel_options *opts, const cgrpc_interceptor *interceptor) {
  if (!opts || !interceptor)
    return CGRPC_ERR_INVALID_ARGUMENT;
  return cgrpc__ichain_add(&opts->interceptors, interceptor);
}

void cgrpc_channel_options_del(cgrpc_channel_options *opts) {
  if (!opts)
    return;
  cgrpc_channel_credentials_del(opts->creds);
  cgrpc_tls_session_cache_del(opts->sessions);
  cgrpc_call_credentials_del(opts->call_creds);
  cgrpc__service_config_unref(opts->service_config);
  cgrpc__resolver_unref(opts->resolver);
  cgrpc__ichain_free(&opts->interceptors);
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

void cgrpc_channel_options_set_dns_min_resolution_interval_ms(
    cgrpc_channel_options *opts, int64_t interval_ms) {
  if (opts)
    opts->dns_min_interval_ms =
        interval_ms >= 0 ? interval_ms : DNS_MIN_INTERVAL_MS;
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

void cgrpc_channel_options_set_call_credentials(cgrpc_channel_options *opts,
                                                cgrpc_call_credentials *creds) {
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
    options_error(opts, "service config", why);
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

void cgrpc_channel_options_set_keepalive_timeout_ms(cgrpc_channel_options *opts,
                                                    int64_t timeout_ms) {
  if (opts)
    opts->keepalive_timeout_ms =
        timeout_ms > 0 ? timeout_ms : KEEPALIVE_DEFAULT_TIMEOUT_MS;
}

void cgrpc_channel_options_set_keepalive_permit_without_calls(
    cgrpc_channel_options *opts, int permit) {
  if (opts)
    opts->keepalive_permit_without_calls = permit != 0;
}

int cgrpc_channel_options_set_lb_policy(cgrpc_channel_options *opts,
                                        const char *name) {
  if (!opts || !name)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (strcmp(name, "pick_first") == 0) {
    opts->lb_policy = CGRPC__LB_PICK_FIRST;
  } else if (strcmp(name, "round_robin") == 0) {
    opts->lb_policy = CGRPC__LB_ROUND_ROBIN;
  } else {
    options_error(opts, name,
                  "not a load-balancing policy this library has "
                  "(\"pick_first\", \"round_robin\")");
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  return 0;
}

int cgrpc_channel_options_set_connect_backoff(cgrpc_channel_options *opts,
                                              const cgrpc_connect_backoff *b) {
  cgrpc_connect_backoff v = default_backoff;
  const char *bad = NULL;
  if (!opts)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (b) {
    if (b->initial_ms)
      v.initial_ms = b->initial_ms;
    if (b->multiplier != 0)
      v.multiplier = b->multiplier;
    if (b->jitter != 0)
      v.jitter = b->jitter;
    if (b->max_ms)
      v.max_ms = b->max_ms;
    if (b->min_connect_timeout_ms)
      v.min_connect_timeout_ms = b->min_connect_timeout_ms;
    if (b->max_ms == 0 && v.max_ms < v.initial_ms)
      v.max_ms = v.initial_ms; /* only the initial one was given */
  }
  if (v.initial_ms < 0 || v.max_ms < 0 || v.min_connect_timeout_ms < 0)
    bad = "times must not be negative";
  else if (!(v.multiplier >= 1.0) || v.multiplier > 1000.0)
    bad = "the multiplier must be between 1 and 1000";
  else if (!(v.jitter >= 0.0 && v.jitter <= 1.0))
    bad = "the jitter must be between 0 and 1";
  else if (v.max_ms < v.initial_ms)
    bad = "max_ms must not be below initial_ms";
  if (bad) {
    options_error(opts, "connect backoff", bad);
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  opts->backoff = v;
  return 0;
}

void cgrpc_channel_options_set_idle_timeout_ms(cgrpc_channel_options *opts,
                                               int64_t timeout_ms) {
  if (opts)
    opts->idle_timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
}

void cgrpc_channel_options_set_retry_buffer_size(cgrpc_channel_options *opts,
                                                 int64_t per_call,
                                                 int64_t per_channel) {
  if (!opts)
    return;
  if (per_call >= 0)
    opts->retry_buffer_per_call = per_call;
  if (per_channel >= 0)
    opts->retry_buffer_per_channel = per_channel;
}

void cgrpc_channel_options_set_resolver(cgrpc_channel_options *opts,
                                        cgrpc_resolver *resolver) {
  if (!opts)
    return;
  if (resolver)
    cgrpc__resolver_ref(resolver);
  cgrpc__resolver_unref(opts->resolver);
  opts->resolver = resolver;
}

void cgrpc_channel_options_set_log(cgrpc_channel_options *opts, cgrpc_log_cb cb,
                                   void *user_data) {
  if (opts) {
    opts->log_cb = cb;
    opts->log_user_data = user_data;
  }
}

/* ---- state ---- */

const char *cgrpc__channel_target_name(const cgrpc_channel *ch) {
  return ch->target.kind == CGRPC__TARGET_UNIX ||
                 ch->target.kind == CGRPC__TARGET_CUSTOM
             ? ch->target.host
             : ch->authority;
}

/* What the calls that cannot connect are told. */
#define CONNECT_FAILURE_MAX 600
static void connect_failure(const cgrpc_channel *ch,
                            char msg[CONNECT_FAILURE_MAX]) {
  snprintf(msg, CONNECT_FAILURE_MAX, "failed to connect to %s: %s",
           cgrpc__channel_target_name(ch),
           ch->last_error[0] ? ch->last_error : "unknown error");
}

const char *cgrpc_connectivity_state_name(cgrpc_connectivity_state state) {
  switch (state) {
  case CGRPC_CHANNEL_IDLE:
    return "IDLE";
  case CGRPC_CHANNEL_CONNECTING:
    return "CONNECTING";
  case CGRPC_CHANNEL_READY:
    return "READY";
  case CGRPC_CHANNEL_TRANSIENT_FAILURE:
    return "TRANSIENT_FAILURE";
  case CGRPC_CHANNEL_SHUTDOWN:
    return "SHUTDOWN";
  }
  return "UNKNOWN";
}

void cgrpc__channel_submit_pending(cgrpc_channel *ch) {
  while (ch->pending) {
    struct cgrpc_call *call = ch->pending;
    cgrpc__client_conn *conn = cgrpc__lb_pick(ch);
    if (!conn)
      return;
    cgrpc__channel_dequeue(ch, call);
    cgrpc__call_submit(call, conn);
  }
}

/* Fails the waiting calls that do not wait for ready. */
static void fail_fast_calls(cgrpc_channel *ch) {
  char msg[CONNECT_FAILURE_MAX];
  struct cgrpc_call *call, *next;
  int again = 1;
  connect_failure(ch, msg);
  /* A failed call's callback may queue or end others: start over after
   * each one. */
  while (again) {
    again = 0;
    for (call = ch->pending; call; call = next) {
      next = call->next;
      if (!call->wait_for_ready) {
        cgrpc__call_fail(call, CGRPC_STATUS_UNAVAILABLE, msg);
        again = 1;
        break;
      }
    }
  }
}

static void post_watch_task(cgrpc_channel *ch) {
  if (!ch->watch_task_posted) {
    ch->watch_task_posted = 1;
    cgrpc__channel_ref(ch);
    cgrpc__loop_post_task(ch->loop, &ch->watch_task);
  }
}

void cgrpc__channel_set_state(cgrpc_channel *ch, int state) {
  if (ch->state == state)
    return;
  CGRPC__TRACE(&ch->log, LB, "%s: channel %s -> %s",
               cgrpc__channel_target_name(ch),
               cgrpc_connectivity_state_name(ch->state),
               cgrpc_connectivity_state_name(state));
  if (ch->state == CGRPC_CHANNEL_IDLE && state != CGRPC_CHANNEL_SHUTDOWN &&
      ch->opts.idle_timeout_ms > 0) {
    /* Idleness counts from here until a call has run. */
    ch->last_call_ns = cgrpc__now_ns();
    if (cgrpc__loop_timer_start(ch->loop, &ch->idle_timer,
                                ch->last_call_ns +
                                    ch->opts.idle_timeout_ms * 1000000) != 0)
      cgrpc__log(&ch->log, CGRPC_LOG_WARNING,
                 "out of memory: the channel will not go idle");
  }
  ch->state = state;
  pthread_mutex_lock(&ch->lock);
  atomic_store(&ch->public_state, state);
  if (atomic_load(&ch->ready_waiters))
    pthread_cond_broadcast(&ch->state_cond);
  if (ch->watches)
    post_watch_task(ch);
  pthread_mutex_unlock(&ch->lock);
  if (state == CGRPC_CHANNEL_READY)
    cgrpc__channel_submit_pending(ch);
  else if (state == CGRPC_CHANNEL_TRANSIENT_FAILURE)
    fail_fast_calls(ch);
}

/* Loop task: the watches whose state changed are called. */
static void watch_task(void *user_data) {
  cgrpc_channel *ch = user_data;
  cgrpc__state_watch *w, *fire = NULL, **tail = &fire, **pp;
  int state;
  pthread_mutex_lock(&ch->lock);
  ch->watch_task_posted = 0;
  state = atomic_load(&ch->public_state);
  for (pp = &ch->watches; (w = *pp);) {
    if ((int)w->last_seen != state) {
      *pp = w->next;
      w->next = NULL;
      *tail = w;
      tail = &w->next;
    } else {
      pp = &w->next;
    }
  }
  pthread_mutex_unlock(&ch->lock);
  while ((w = fire)) {
    fire = w->next;
    w->cb(ch, (cgrpc_connectivity_state)state, w->user_data);
    cgrpc__free(w);
  }
  cgrpc__channel_unref(ch); /* the task's */
}

static void connect_task(void *user_data) {
  cgrpc_channel *ch = user_data;
  pthread_mutex_lock(&ch->lock);
  ch->connect_task_posted = 0;
  pthread_mutex_unlock(&ch->lock);
  cgrpc__lb_exit_idle(ch);
  cgrpc__channel_unref(ch); /* the task's */
}

/* Asks the loop to leave IDLE (any thread). */
static void request_connect(cgrpc_channel *ch) {
  pthread_mutex_lock(&ch->lock);
  if (!ch->closing && !ch->connect_task_posted) {
    ch->connect_task_posted = 1;
    cgrpc__channel_ref(ch);
    cgrpc__loop_post_task(ch->loop, &ch->connect_task);
  }
  pthread_mutex_unlock(&ch->lock);
}

cgrpc_connectivity_state cgrpc_channel_get_state(cgrpc_channel *ch,
                                                 int try_to_connect) {
  int state;
  if (!ch)
    return CGRPC_CHANNEL_SHUTDOWN;
  state = atomic_load(&ch->public_state);
  if (try_to_connect && state == CGRPC_CHANNEL_IDLE)
    request_connect(ch);
  return (cgrpc_connectivity_state)state;
}

int cgrpc_channel_watch_state(cgrpc_channel *ch,
                              cgrpc_connectivity_state last_seen,
                              cgrpc_channel_state_cb cb, void *user_data) {
  cgrpc__state_watch *w;
  if (!ch || !cb)
    return CGRPC_ERR_INVALID_ARGUMENT;
  w = cgrpc__calloc(1, sizeof *w);
  if (!w)
    return CGRPC_ERR_NOMEM;
  w->last_seen = last_seen;
  w->cb = cb;
  w->user_data = user_data;
  pthread_mutex_lock(&ch->lock);
  if (ch->closing) {
    pthread_mutex_unlock(&ch->lock);
    cgrpc__free(w);
    return CGRPC_ERR_CLOSED;
  }
  w->next = ch->watches;
  ch->watches = w;
  if ((int)last_seen != atomic_load(&ch->public_state))
    post_watch_task(ch);
  pthread_mutex_unlock(&ch->lock);
  return 0;
}

int cgrpc_channel_wait_for_ready(cgrpc_channel *ch, int64_t timeout_ms) {
  struct timespec until;
  int rv = 0;
  if (!ch)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (cgrpc__in_any_loop_thread()) {
    cgrpc__log(&ch->log, CGRPC_LOG_ERROR,
               "cgrpc_channel_wait_for_ready() called from one of the "
               "library's threads (a callback or handler): it would block "
               "the loop it waits for");
    return CGRPC_ERR_WOULD_DEADLOCK;
  }
  if (timeout_ms >= 0) {
    int64_t t =
        cgrpc__now_ns() +
        (timeout_ms < INT64_MAX / 2000000 ? timeout_ms : INT64_MAX / 2000000) *
            1000000;
    until.tv_sec = (time_t)(t / 1000000000);
    until.tv_nsec = (long)(t % 1000000000);
  }
  cgrpc__channel_ref(ch);
  atomic_fetch_add(&ch->ready_waiters, 1);
  request_connect(ch);
  pthread_mutex_lock(&ch->lock);
  for (;;) {
    int state = atomic_load(&ch->public_state);
    if (state == CGRPC_CHANNEL_READY)
      break;
    if (state == CGRPC_CHANNEL_SHUTDOWN || ch->closing) {
      rv = CGRPC_ERR_CLOSED;
      break;
    }
    if (state == CGRPC_CHANNEL_IDLE && !ch->connect_task_posted) {
      /* Went IDLE again (a dropped connection): connect again. */
      ch->connect_task_posted = 1;
      cgrpc__channel_ref(ch);
      cgrpc__loop_post_task(ch->loop, &ch->connect_task);
    }
    if (timeout_ms < 0) {
      pthread_cond_wait(&ch->state_cond, &ch->lock);
    } else if (pthread_cond_timedwait(&ch->state_cond, &ch->lock, &until) ==
               ETIMEDOUT) {
      rv = atomic_load(&ch->public_state) == CGRPC_CHANNEL_READY
               ? 0
               : CGRPC_ERR_TIMEOUT;
      break;
    }
  }
  pthread_mutex_unlock(&ch->lock);
  atomic_fetch_sub(&ch->ready_waiters, 1);
  cgrpc__channel_unref(ch);
  return rv;
}

/* ---- calls ---- */

void cgrpc__channel_enqueue(cgrpc_channel *ch, struct cgrpc_call *call) {
  if (ch->close_started) {
    cgrpc__call_fail(call, CGRPC_STATUS_CANCELLED, "channel closed");
    return;
  }
  if (ch->state == CGRPC_CHANNEL_READY) {
    cgrpc__client_conn *conn = cgrpc__lb_pick(ch);
    if (conn) {
      cgrpc__call_submit(call, conn);
      return;
    }
  }
  if (ch->state == CGRPC_CHANNEL_TRANSIENT_FAILURE && !call->wait_for_ready) {
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
  if (ch->state == CGRPC_CHANNEL_IDLE)
    cgrpc__lb_exit_idle(ch);
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

void cgrpc__channel_call_ended(cgrpc_channel *ch) {
  ch->last_call_ns = cgrpc__now_ns();
}

/* Whether any call of |ch| is in flight (queued, backing off, on a
 * connection). */
static int channel_has_calls(const cgrpc_channel *ch) {
  const cgrpc__client_conn *conn;
  if (ch->pending || ch->backing_off)
    return 1;
  for (conn = ch->conns; conn; conn = conn->next_conn)
    if (conn->calls)
      return 1;
  return 0;
}

int cgrpc__channel_busy(const cgrpc_channel *ch) {
  return channel_has_calls(ch) || atomic_load(&ch->ready_waiters) > 0;
}

/* The idle timer: a channel that ran no call for the idle timeout goes
 * IDLE; else the timer looks again when it could be so. */
static void idle_check(void *user_data) {
  cgrpc_channel *ch = user_data;
  int64_t now = cgrpc__now_ns(), span = ch->opts.idle_timeout_ms * 1000000;
  int64_t at = now + span;
  if (ch->close_started || ch->state == CGRPC_CHANNEL_IDLE)
    return;
  if (!channel_has_calls(ch) && atomic_load(&ch->ready_waiters) == 0) {
    if (now - ch->last_call_ns >= span) {
      cgrpc__log(
          &ch->log, CGRPC_LOG_DEBUG, "%s: no call for %lld ms, going IDLE",
          cgrpc__channel_target_name(ch), (long long)ch->opts.idle_timeout_ms);
      cgrpc__lb_go_idle(ch);
      return;
    }
    at = ch->last_call_ns + span;
  }
  cgrpc__loop_timer_start(ch->loop, &ch->idle_timer, at);
}

void cgrpc__channel_conn_goaway(cgrpc__client_conn *conn,
                                const nghttp2_goaway *goaway) {
  static const char too_many_pings[] = "too_many_pings";
  cgrpc_channel *ch = conn->ch;
  /* The server's ping policy says we ping too often: later connections
   * ping half as often, as gRPC C-core does (gRFC A8). */
  if (goaway->error_code == NGHTTP2_ENHANCE_YOUR_CALM &&
      goaway->opaque_data_len == sizeof too_many_pings - 1 &&
      memcmp(goaway->opaque_data, too_many_pings, sizeof too_many_pings - 1) ==
          0 &&
      ch->opts.keepalive_time_ms != CGRPC__KEEPALIVE_OFF) {
    ch->opts.keepalive_time_ms =
        ch->opts.keepalive_time_ms > INT64_MAX / 4000000
            ? CGRPC__KEEPALIVE_OFF
            : ch->opts.keepalive_time_ms * 2;
    cgrpc__log(&ch->log, CGRPC_LOG_WARNING,
               "%s sent GOAWAY ENHANCE_YOUR_CALM \"too_many_pings\": "
               "keepalive time now %lld ms",
               cgrpc__channel_target_name(ch),
               (long long)ch->opts.keepalive_time_ms);
  }
  /* New calls go elsewhere; this one drains. */
  cgrpc__subchannel_conn_detach(conn);
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
  cgrpc__ichain_free(&ch->opts.interceptors);
  cgrpc__free(ch->authority);
  cgrpc__target_free(&ch->target);
  cgrpc__dns_del(ch->dns);             /* only when the channel never started */
  cgrpc__resolver_unref(ch->resolver); /* unlinked by the close task */
  while (ch->watches) { /* those that waited for SHUTDOWN itself */
    cgrpc__state_watch *w = ch->watches;
    ch->watches = w->next;
    cgrpc__free(w);
  }
}

static void channel_free(void *user_data) {
  cgrpc_channel *ch = user_data;
  cgrpc__loop_del(ch->loop);
  pthread_mutex_destroy(&ch->lock);
  pthread_cond_destroy(&ch->cond);
  pthread_cond_destroy(&ch->state_cond);
  channel_free_parts(ch);
  cgrpc__free(ch);
}

void cgrpc__channel_ref(cgrpc_channel *ch) { atomic_fetch_add(&ch->refs, 1); }

void cgrpc__channel_unref(cgrpc_channel *ch) {
  int last;
  if (atomic_load(&ch->del_waiting)) {
    /* cgrpc_channel_del() waits for this: drop the reference under the
     * lock it checks under, so that it cannot free the channel before the
     * broadcast. */
    pthread_mutex_lock(&ch->lock);
    last = atomic_fetch_sub(&ch->refs, 1) == 1;
    pthread_cond_broadcast(&ch->cond);
    pthread_mutex_unlock(&ch->lock);
  } else {
    /* Nothing touches the channel after this (a delete that began
     * meanwhile finds the count on its next look). */
    last = atomic_fetch_sub(&ch->refs, 1) == 1;
  }
  if (!last)
    return;
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
  /* A Unix socket has no host: the authority ("localhost") stands in, as
   * it does for a resolver's target (its endpoint, or the option). */
  ch->tls_name = cgrpc__strdup(override ? override
                               : ch->target.kind == CGRPC__TARGET_UNIX ||
                                       ch->target.kind == CGRPC__TARGET_CUSTOM
                                   ? ch->authority
                                   : ch->target.host);
  if (!ch->tls_name)
    return CGRPC_ERR_NOMEM;
  snprintf(key, sizeof key, "%s|%s", ch->tls_name,
           cgrpc__channel_target_name(ch));
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
    ch->opts.resolver = NULL; /* ch->resolver holds it */
    if (cgrpc__ichain_copy(&ch->opts.interceptors, &opts->interceptors) != 0) {
      cgrpc__free(ch);
      return CGRPC_ERR_NOMEM;
    }
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
  ch->lb_policy = cgrpc__service_config_lb_policy(ch->opts.service_config);
  if (ch->lb_policy == CGRPC__LB_UNSET)
    ch->lb_policy = ch->opts.lb_policy;
  if (opts && opts->resolver) {
    ch->resolver = opts->resolver;
    cgrpc__resolver_ref(ch->resolver);
    rv = cgrpc__target_parse_custom(&ch->target, target,
                                    cgrpc__resolver_scheme(ch->resolver), &why);
    if (rv == 0 && !ch->target.authority && !opts->authority) {
      why = "empty endpoint (name it, \"scheme:///name\", or set "
            "cgrpc_channel_options_set_authority())";
      rv = CGRPC_ERR_INVALID_ARGUMENT;
    }
  } else {
    rv = cgrpc__target_parse(&ch->target, target, &why);
  }
  if (rv != 0)
    cgrpc__log(&ch->log, CGRPC_LOG_ERROR, "bad target \"%s\"%s%s%s%s", target,
               why ? ": " : "", why ? why : "",
               ch->resolver ? "; the resolver's scheme is " : "",
               ch->resolver ? cgrpc__resolver_scheme(ch->resolver) : "");
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
  {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&ch->cond, &attr);
    pthread_cond_init(&ch->state_cond, &attr);
    pthread_condattr_destroy(&attr);
  }
  cgrpc__task_init(&ch->close_task, close_task, ch);
  cgrpc__task_init(&ch->watch_task, watch_task, ch);
  cgrpc__task_init(&ch->connect_task, connect_task, ch);
  atomic_init(&ch->public_state, CGRPC_CHANNEL_IDLE);
  atomic_init(&ch->ready_waiters, 0);
  ch->state = CGRPC_CHANNEL_IDLE;
  cgrpc__timer_init(&ch->idle_timer, idle_check, ch);
  cgrpc__lb_init(ch);
  rv = cgrpc__loop_new(&ch->loop);
  if (rv == 0 && ch->target.kind == CGRPC__TARGET_DNS) {
    rv = cgrpc__dns_new(&ch->dns, ch->loop, ch->target.dns_server);
    if (rv != 0) {
      cgrpc__log(&ch->log, CGRPC_LOG_ERROR,
                 "target \"%s\": the DNS resolver would not start: %s", target,
                 cgrpc_strerror(rv));
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
    pthread_cond_destroy(&ch->state_cond);
    channel_free_parts(ch);
    cgrpc__free(ch);
    return rv;
  }
  /* Last: from here on, updates post tasks to the channel's loop. */
  if (ch->resolver)
    cgrpc__resolver_link_add(ch->resolver, &ch->resolver_link, ch,
                             cgrpc__lb_resolver_updated);
  *channel_ptr = ch;
  return 0;
}

/* Every connection is gone after the close: cgrpc_channel_del may return. */
void cgrpc__channel_closed(cgrpc_channel *ch) {
  pthread_mutex_lock(&ch->lock);
  ch->closed = 1;
  pthread_cond_broadcast(&ch->cond);
  pthread_mutex_unlock(&ch->lock);
}

/* Loop task: cancel every call, close every connection. */
static void close_task(void *user_data) {
  cgrpc_channel *ch = user_data;
  ch->close_started = 1;
  /* No update is posted to the channel after this (one on its way holds a
   * reference and finds it closing). */
  if (ch->resolver)
    cgrpc__resolver_link_remove(ch->resolver, &ch->resolver_link);
  while (ch->pending)
    cgrpc__call_fail(ch->pending, CGRPC_STATUS_CANCELLED, "channel closed");
  cgrpc__call_fail_backing_off(ch, CGRPC_STATUS_CANCELLED, "channel closed");
  cgrpc__loop_timer_stop(ch->loop, &ch->idle_timer);
  cgrpc__lb_shutdown(ch);
  /* Its lookup, if any, was cancelled. */
  cgrpc__dns_del(ch->dns);
  ch->dns = NULL;
  cgrpc__channel_set_state(ch, CGRPC_CHANNEL_SHUTDOWN);
  if (!ch->conns)
    cgrpc__channel_closed(ch);
  cgrpc__channel_unref(ch); /* the task's */
}

void cgrpc_channel_del(cgrpc_channel *ch) {
  int again;
  if (!ch)
    return;
  pthread_mutex_lock(&ch->lock);
  again = ch->closing;
  ch->closing = 1;
  pthread_cond_broadcast(&ch->state_cond); /* cgrpc_channel_wait_for_ready */
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
           atomic_load(&ch->refs) > 1 + atomic_load(&ch->app_calls)) {
      /* A reference dropped just before |del_waiting| was seen comes
       * without a broadcast: look again every 10 ms. */
      struct timespec ts;
      int64_t t = cgrpc__now_ns() + 10 * 1000000;
      ts.tv_sec = (time_t)(t / 1000000000);
      ts.tv_nsec = (long)(t % 1000000000);
      pthread_cond_timedwait(&ch->cond, &ch->lock, &ts);
    }
    pthread_mutex_unlock(&ch->lock);
  }
  cgrpc__channel_unref(ch);
}
