/* SPDX-License-Identifier: MIT */
#include "h2/keepalive.h"

#include <stdio.h>

#include "cgrpc/error.h"
#include "h2/conn.h"
#include "util/clock.h"
#include "util/mem.h"
#include "util/trace.h"

/* Arms the one timer; a heap that cannot grow fails the connection (the
 * timer's slot is usually there already: it was just taken off). */
static void arm(cgrpc__h2_keepalive *ka, int64_t when_ns) {
  if (cgrpc__loop_timer_start(ka->conn->loop, &ka->timer, when_ns) != 0)
    cgrpc__h2conn_fail(ka->conn, "out of memory (keepalive timer)");
}

static void fired(void *user_data) {
  cgrpc__h2_keepalive *ka = user_data;
  cgrpc__h2conn *conn = ka->conn;
  int64_t now = cgrpc__now_ns();
  if (conn->closed)
    return;
  if (ka->waiting_ack) {
    char why[96];
    snprintf(why, sizeof why,
             "keepalive ping not acknowledged within %lld ms",
             (long long)(ka->timeout_ns / 1000000));
    CGRPC__TRACE(conn->log, KEEPALIVE, "%s: %s", conn->peer, why);
    cgrpc__h2conn_fail(conn, why); /* frees |ka| */
    return;
  }
  /* Heard from the peer lately: no need to ask (grpc-go does the same). */
  if (now - ka->last_read_ns < ka->time_ns) {
    arm(ka, ka->last_read_ns + ka->time_ns);
    return;
  }
  if (!ka->permit_without_calls && !ka->busy(conn->user_data)) {
    arm(ka, now + ka->time_ns);
    return;
  }
  if (nghttp2_submit_ping(conn->session, NGHTTP2_FLAG_NONE, NULL) != 0) {
    cgrpc__h2conn_fail(conn, "out of memory (keepalive ping)");
    return;
  }
  CGRPC__TRACE(conn->log, KEEPALIVE, "%s: ping sent, ack due in %lld ms",
               conn->peer, (long long)(ka->timeout_ns / 1000000));
  cgrpc__h2conn_schedule_flush(conn);
  ka->waiting_ack = 1;
  arm(ka, now + ka->timeout_ns);
}

int cgrpc__h2_keepalive_start(cgrpc__h2conn *conn, int64_t time_ms,
                              int64_t timeout_ms, int permit_without_calls,
                              cgrpc__h2_busy_cb busy) {
  cgrpc__h2_keepalive *ka;
  int64_t now = cgrpc__now_ns();
  if (time_ms <= 0 || time_ms >= CGRPC__KEEPALIVE_OFF / 1000000 || conn->ka)
    return 0;
  ka = cgrpc__calloc(1, sizeof *ka);
  if (!ka)
    return CGRPC_ERR_NOMEM;
  ka->conn = conn;
  ka->time_ns = time_ms * 1000000;
  if (timeout_ms <= 0)
    timeout_ms = 1;
  ka->timeout_ns = timeout_ms >= INT64_MAX / 2000000 ? INT64_MAX / 2
                                                      : timeout_ms * 1000000;
  ka->permit_without_calls = permit_without_calls != 0;
  ka->busy = busy;
  ka->last_read_ns = now;
  cgrpc__timer_init(&ka->timer, fired, ka);
  if (cgrpc__loop_timer_start(conn->loop, &ka->timer, now + ka->time_ns) !=
      0) {
    cgrpc__free(ka);
    return CGRPC_ERR_NOMEM;
  }
  conn->ka = ka;
  return 0;
}

void cgrpc__h2_keepalive_on_read(cgrpc__h2_keepalive *ka) {
  ka->last_read_ns = cgrpc__now_ns();
  if (ka->waiting_ack) {
    /* The peer is there (an ACK, or anything else it sent). */
    CGRPC__TRACE(ka->conn->log, KEEPALIVE, "%s: the peer answered the ping",
                 ka->conn->peer);
    ka->waiting_ack = 0;
    arm(ka, ka->last_read_ns + ka->time_ns);
  }
}

void cgrpc__h2_keepalive_free(cgrpc__h2_keepalive *ka) {
  if (!ka)
    return;
  cgrpc__loop_timer_stop(ka->conn->loop, &ka->timer);
  cgrpc__free(ka);
}
