/* SPDX-License-Identifier: MIT */
/*
 * Subchannels: one address of a channel, its connection (TCP, then TLS,
 * then HTTP/2) and its connection backoff (gRPC's connection-backoff.md).
 *
 *   IDLE --connect--> CONNECTING --usable--> READY --drop/GOAWAY--> IDLE
 *                         |                    (before the server's
 *                         | fails               SETTINGS: a failure)
 *                         v
 *                  TRANSIENT_FAILURE --backoff over--> IDLE
 *
 * An attempt may take max(its backoff, the minimum connect timeout); one
 * that fails sooner waits out the rest of its backoff.  Every change is
 * reported to the policy (lb.c), never from within a call the policy made.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/internal.h"
#include "io/sock.h"
#include "util/clock.h"
#include "util/mem.h"
#include "util/trace.h"

#define NS_PER_MS ((int64_t)1000000)

static void sc_set_state(cgrpc__subchannel *sc, int state, int report) {
  int old = sc->state;
  sc->state = state;
  if (old != state)
    CGRPC__TRACE(&sc->ch->log, LB, "%s: subchannel %s: %s -> %s",
                 cgrpc__channel_target_name(sc->ch), sc->name,
                 cgrpc_connectivity_state_name(old),
                 cgrpc_connectivity_state_name(state));
  if (report && old != state)
    cgrpc__lb_subchannel_changed(sc, old);
}

/* ---- the connection ---- */

static void conn_free(cgrpc__client_conn *conn) {
  cgrpc_channel *ch = conn->ch;
  if (conn->prev_conn)
    conn->prev_conn->next_conn = conn->next_conn;
  else
    ch->conns = conn->next_conn;
  if (conn->next_conn)
    conn->next_conn->prev_conn = conn->prev_conn;
  if (conn->sc && conn->sc->conn == conn)
    conn->sc->conn = NULL;
  cgrpc__loop_timer_stop(ch->loop, &conn->connect_timer);
  if (conn->connecting_fd >= 0) {
    cgrpc__loop_unwatch(ch->loop, &conn->connect_watch);
    close(conn->connecting_fd);
  }
  nghttp2_session_del(conn->h2.session);
  cgrpc__free(conn);
  if (ch->close_started && !ch->conns)
    cgrpc__channel_closed(ch);
  cgrpc__channel_unref(ch);
}

static void backoff_done(void *user_data) {
  cgrpc__subchannel *sc = user_data;
  if (sc->state == CGRPC_CHANNEL_TRANSIENT_FAILURE)
    sc_set_state(sc, CGRPC_CHANNEL_IDLE, 1);
}

/* The attempt failed with |why|: TRANSIENT_FAILURE until its backoff is
 * over.  |report|: tell the policy now (not inside its own call). */
static void attempt_failed(cgrpc__subchannel *sc, const char *why,
                           int report) {
  cgrpc_channel *ch = sc->ch;
  const cgrpc_connect_backoff *b = &ch->opts.backoff;
  double next;
  snprintf(ch->last_error, sizeof ch->last_error, "%.120s: %.120s", sc->name,
           why);
  CGRPC__TRACE(&ch->log, CONN, "%s: connect attempt failed: %s", sc->name,
               why);
  cgrpc__log(&ch->log, CGRPC_LOG_WARNING, "failed to connect to %s (%s): %s",
             cgrpc__channel_target_name(ch), sc->name, why);
  next = (double)sc->backoff_ms * b->multiplier;
  sc->backoff_ms = next > (double)b->max_ms ? b->max_ms : (int64_t)next;
  cgrpc__lb_request_resolution(ch);
  /* The timer fires in a later turn even when the deadline has passed:
   * the report of IDLE never comes from inside this call. */
  if (cgrpc__loop_timer_start(ch->loop, &sc->backoff_timer,
                              sc->attempt_deadline_ns) != 0) {
    sc_set_state(sc, CGRPC_CHANNEL_IDLE, report); /* no backoff then */
    return;
  }
  sc_set_state(sc, CGRPC_CHANNEL_TRANSIENT_FAILURE, report);
}

/* |conn| failed before it was usable; it is freed. */
static void conn_failed(cgrpc__client_conn *conn, const char *why) {
  cgrpc__subchannel *sc = conn->sc;
  char text[200];
  snprintf(text, sizeof text, "%s", why); /* |why| may live in |conn| */
  cgrpc__ep_conn_lost(&conn->calls); /* none: calls wait for READY */
  conn_free(conn);
  if (sc)
    attempt_failed(sc, text, 1);
}

static void conn_closed(cgrpc__h2conn *h2, void *user_data) {
  cgrpc__client_conn *conn = user_data;
  cgrpc_channel *ch = conn->ch;
  cgrpc__subchannel *sc = conn->sc;
  char why[200];
  if (!conn->ready) {
    /* The TLS handshake failed (or the server closed during it). */
    snprintf(why, sizeof why, "TLS handshake failed: %.160s",
             h2->error ? h2->error : "the server closed the connection");
    conn_failed(conn, why);
    return;
  }
  if (!conn->got_settings) {
    /* Dropped before the server said anything: a failed attempt, so that
     * a server that accepts and closes is not hammered.  (No call was
     * sent on it.) */
    snprintf(why, sizeof why, "%s",
             h2->error ? h2->error : "the server closed the connection");
    conn_failed(conn, why);
    return;
  }
  /* The calls that end here say why (those retried go elsewhere). */
  if (h2->error) {
    snprintf(ch->lost_reason, sizeof ch->lost_reason,
             "connection to %.70s closed: %.160s",
             cgrpc__channel_target_name(ch), h2->error);
    cgrpc__log(&ch->log, CGRPC_LOG_WARNING, "%s", ch->lost_reason);
  } else {
    snprintf(ch->lost_reason, sizeof ch->lost_reason, "connection closed");
  }
  /* First, so that calls retried from here go to another connection. */
  if (sc && sc->conn == conn) {
    sc->conn = NULL;
    conn->sc = NULL;
    cgrpc__lb_request_resolution(ch);
    sc_set_state(sc, CGRPC_CHANNEL_IDLE, 1);
  }
  cgrpc__ep_conn_lost(&conn->calls);
  conn_free(conn);
}

static int conn_busy(void *user_data) {
  const cgrpc__client_conn *conn = user_data;
  return conn->calls != NULL;
}

/* The connection carries HTTP/2 (after the TLS handshake, if any); it is
 * READY once the server's SETTINGS come (cgrpc__channel_conn_settings),
 * within the connect timeout still. */
static void conn_usable(cgrpc__h2conn *h2, void *user_data) {
  cgrpc__client_conn *conn = user_data;
  cgrpc_channel *ch = conn->ch;
  if (cgrpc__h2_keepalive_start(h2, ch->opts.keepalive_time_ms,
                                ch->opts.keepalive_timeout_ms,
                                ch->opts.keepalive_permit_without_calls,
                                conn_busy) != 0) {
    cgrpc__h2conn_fail(h2, "out of memory (keepalive)");
    return;
  }
  conn->ready = 1;
}

static void conn_start(cgrpc__client_conn *conn, int fd) {
  cgrpc_channel *ch = conn->ch;
  SSL *tls = NULL;
  nghttp2_session *session = NULL;
  nghttp2_option *opt = NULL;
  nghttp2_settings_entry settings[2];
  nghttp2_session_callbacks *cbs = cgrpc__client_callbacks();
  if (!cbs || cgrpc__h2_session_option_new(&opt, 0) != 0 ||
      nghttp2_session_client_new3(&session, cbs, conn, opt,
                                  cgrpc__h2_mem()) != 0) {
    nghttp2_option_del(opt);
    close(fd);
    conn_failed(conn, "out of memory");
    return;
  }
  nghttp2_option_del(opt);
  settings[0].settings_id = NGHTTP2_SETTINGS_ENABLE_PUSH;
  settings[0].value = 0;
  settings[1].settings_id = NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE;
  settings[1].value = 1 << 20;
  nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings, 2);
  nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0, 16 << 20);
  if (ch->tls_ctx) {
    tls = cgrpc__tls_conn_new(ch->tls_ctx, fd, 0, ch->tls_name,
                              ch->tls_skip_name, &ch->tls_sessions);
    if (!tls) {
      close(fd);
      nghttp2_session_del(session);
      conn_failed(conn, "out of memory");
      return;
    }
  }
  /* The session now belongs to the connection, which frees it, started or
   * not (conn_free).  With TLS the connect timer runs on through the
   * handshake. */
  conn->h2.session = session;
  conn->h2.log = &ch->log;
  conn->started = 1;
  if (cgrpc__h2conn_start(&conn->h2, ch->loop, fd, session, tls, conn_usable,
                          conn_closed, &cgrpc__ep_body, conn) != 0)
    conn_failed(conn, "cannot watch socket");
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
    conn_failed(conn, strerror(err));
    return;
  }
  snprintf(conn->h2.peer, sizeof conn->h2.peer, "%.63s",
           ch->target.kind == CGRPC__TARGET_UNIX || !conn->sc
               ? ch->target.host
               : conn->sc->name);
  CGRPC__TRACE(&ch->log, CONN, "%s: connected%s", conn->h2.peer,
               ch->tls_ctx ? ", TLS handshake next" : "");
  conn_start(conn, fd);
}

static void connect_timeout(void *user_data) {
  cgrpc__client_conn *conn = user_data;
  if (conn->started) { /* in the TLS handshake */
    cgrpc__h2conn_fail(&conn->h2, "timed out");
    return;
  }
  conn_failed(conn, "connect timed out");
}

/* ---- the subchannel ---- */

cgrpc__subchannel *cgrpc__subchannel_new(cgrpc_channel *ch,
                                         const cgrpc__addr *addr) {
  cgrpc__subchannel *sc = cgrpc__calloc(1, sizeof *sc);
  if (!sc)
    return NULL;
  sc->ch = ch;
  sc->addr = *addr;
  cgrpc__sock_peer_name((const struct sockaddr *)&addr->ss, addr->len,
                        sc->name, sizeof sc->name);
  sc->state = CGRPC_CHANNEL_IDLE;
  sc->backoff_ms = ch->opts.backoff.initial_ms;
  cgrpc__timer_init(&sc->backoff_timer, backoff_done, sc);
  return sc;
}

static int64_t jittered_ms(int64_t ms, double jitter) {
  double unit = 2.0 * ((double)rand() / RAND_MAX) - 1.0;
  return (int64_t)((double)ms * (1.0 + jitter * unit));
}

void cgrpc__subchannel_connect(cgrpc__subchannel *sc) {
  cgrpc_channel *ch = sc->ch;
  const cgrpc_connect_backoff *b = &ch->opts.backoff;
  cgrpc__client_conn *conn;
  int64_t now, until;
  int fd;
  if (sc->state != CGRPC_CHANNEL_IDLE || ch->close_started)
    return;
  now = cgrpc__now_ns();
  sc->attempt_deadline_ns = now + jittered_ms(sc->backoff_ms, b->jitter) * NS_PER_MS;
  until = now + b->min_connect_timeout_ms * NS_PER_MS;
  if (until < sc->attempt_deadline_ns)
    until = sc->attempt_deadline_ns;
  conn = cgrpc__calloc(1, sizeof *conn);
  if (!conn) {
    attempt_failed(sc, "out of memory", 0);
    return;
  }
  fd = cgrpc__sock_connect((const struct sockaddr *)&sc->addr.ss,
                           sc->addr.len);
  if (fd < 0) {
    int e = errno;
    cgrpc__free(conn);
    attempt_failed(sc, strerror(e), 0);
    return;
  }
  cgrpc__channel_ref(ch);
  conn->ch = ch;
  conn->sc = sc;
  conn->next_conn = ch->conns;
  if (ch->conns)
    ch->conns->prev_conn = conn;
  ch->conns = conn;
  conn->h2.fd = -1;
  conn->connecting_fd = fd;
  cgrpc__timer_init(&conn->connect_timer, connect_timeout, conn);
  sc->conn = conn;
  CGRPC__TRACE(&ch->log, CONN, "%s: connecting to %s",
               cgrpc__channel_target_name(ch), sc->name);
  sc_set_state(sc, CGRPC_CHANNEL_CONNECTING, 0);
  if (cgrpc__loop_watch(ch->loop, &conn->connect_watch, fd, CGRPC__IO_WRITE,
                        connect_io, conn) != 0 ||
      cgrpc__loop_timer_start(ch->loop, &conn->connect_timer, until) != 0) {
    conn->sc = NULL;
    sc->conn = NULL;
    sc->state = CGRPC_CHANNEL_IDLE;
    conn_free(conn); /* closes the fd */
    attempt_failed(sc, "cannot watch socket", 0);
  }
}

/* |conn| leaves its subchannel and ends on its own: a connection in
 * progress at once; a ready one once its calls are done (a GOAWAY tells
 * the server; nghttp2 then ends the session after the last stream). */
static void conn_retire(cgrpc__client_conn *conn) {
  conn->sc = NULL;
  if (!conn->started) {
    conn_free(conn);
    return;
  }
  if (!conn->ready) {
    cgrpc__h2conn_close(&conn->h2); /* conn_closed frees it */
    return;
  }
  if (!conn->calls) {
    nghttp2_submit_goaway(conn->h2.session, NGHTTP2_FLAG_NONE, 0,
                          NGHTTP2_NO_ERROR, NULL, 0);
    cgrpc__h2conn_close_when_sent(&conn->h2);
    return;
  }
  if (nghttp2_submit_goaway(conn->h2.session, NGHTTP2_FLAG_NONE, 0,
                            NGHTTP2_NO_ERROR, NULL, 0) != 0) {
    cgrpc__h2conn_close(&conn->h2);
    return;
  }
  cgrpc__h2conn_schedule_flush(&conn->h2);
}

void cgrpc__channel_conn_stream_closed(cgrpc__client_conn *conn) {
  if (!conn->sc && !conn->calls && conn->ready && !conn->h2.closed)
    cgrpc__h2conn_close_when_sent(&conn->h2);
}

void cgrpc__subchannel_reset(cgrpc__subchannel *sc) {
  cgrpc__loop_timer_stop(sc->ch->loop, &sc->backoff_timer);
  if (sc->conn) {
    cgrpc__client_conn *conn = sc->conn;
    sc->conn = NULL;
    conn_retire(conn);
  }
  sc->state = CGRPC_CHANNEL_IDLE;
}

void cgrpc__subchannel_del(cgrpc__subchannel *sc) {
  cgrpc__subchannel_reset(sc);
  cgrpc__free(sc);
}

cgrpc__client_conn *cgrpc__subchannel_pickable(cgrpc__subchannel *sc) {
  cgrpc__client_conn *conn = sc->conn;
  if (sc->state != CGRPC_CHANNEL_READY || !conn ||
      !nghttp2_session_check_request_allowed(conn->h2.session))
    return NULL;
  return conn;
}

void cgrpc__subchannel_conn_detach(cgrpc__client_conn *conn) {
  cgrpc__subchannel *sc = conn->sc;
  if (!sc || sc->conn != conn)
    return;
  sc->conn = NULL;
  conn->sc = NULL;
  cgrpc__lb_request_resolution(conn->ch);
  sc_set_state(sc, CGRPC_CHANNEL_IDLE, 1);
}

/* The server's first SETTINGS: it speaks HTTP/2, the connection is READY
 * and the backoff starts over (gRPC C-core and grpc-go wait for them
 * too). */
void cgrpc__channel_conn_settings(cgrpc__client_conn *conn) {
  if (conn->got_settings)
    return;
  conn->got_settings = 1;
  cgrpc__loop_timer_stop(conn->ch->loop, &conn->connect_timer);
  if (conn->sc) {
    conn->sc->backoff_ms = conn->ch->opts.backoff.initial_ms;
    sc_set_state(conn->sc, CGRPC_CHANNEL_READY, 1);
  }
}

void cgrpc__subchannel_close_all(cgrpc_channel *ch) {
  cgrpc__client_conn *conn, *next;
  for (conn = ch->conns; conn; conn = next) {
    next = conn->next_conn;
    if (conn->sc && conn->sc->conn == conn)
      conn->sc->conn = NULL;
    conn->sc = NULL;
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
}
