/* SPDX-License-Identifier: MIT */
/*
 * Keepalive pings of one HTTP/2 connection (gRFC A8, doc/keepalive.md),
 * for either side: after |time| with nothing read from the peer, a PING;
 * if nothing at all comes back within |timeout| (its ACK, or any other
 * byte), the connection fails with a message that names keepalive.
 *
 * Only a connection with keepalive on has this state (allocated once, when
 * it starts; nothing per ping): the connection without it pays one NULL
 * check per read.  One loop timer serves both the ping interval and the ACK
 * deadline.
 */
#ifndef CGRPC_H2_KEEPALIVE_H
#define CGRPC_H2_KEEPALIVE_H

#include <stdint.h>

#include "io/loop.h"

struct cgrpc__h2conn;

/* Nonzero when the connection's owner has calls on it (|owner| is the
 * connection's user_data). */
typedef int (*cgrpc__h2_busy_cb)(void *owner);

/* "Off": the value of an unset keepalive time. */
#define CGRPC__KEEPALIVE_OFF INT64_MAX

typedef struct cgrpc__h2_keepalive {
  struct cgrpc__h2conn *conn;
  cgrpc__timer timer;
  int64_t time_ns, timeout_ns;
  int64_t last_read_ns; /* when the peer was last heard from */
  cgrpc__h2_busy_cb busy;
  int permit_without_calls; /* ping while |busy| says no calls */
  int waiting_ack;          /* a PING is out; the timer is its deadline */
} cgrpc__h2_keepalive;

/*
 * Turns keepalive on for |conn| (started and ready): a PING after
 * |time_ms| without reads, only while |busy| says there are calls unless
 * |permit_without_calls|; the connection fails when |timeout_ms| passes
 * with nothing read after it.  Does nothing when |time_ms| is
 * CGRPC__KEEPALIVE_OFF or not positive.  Returns 0 or CGRPC_ERR_NOMEM.
 * Loop thread only.
 */
int cgrpc__h2_keepalive_start(struct cgrpc__h2conn *conn, int64_t time_ms,
                              int64_t timeout_ms, int permit_without_calls,
                              cgrpc__h2_busy_cb busy);

/* Bytes came from the peer (the connection calls this on each read). */
void cgrpc__h2_keepalive_on_read(cgrpc__h2_keepalive *ka);

/* Stops and frees |ka| (the connection closes).  NULL does nothing. */
void cgrpc__h2_keepalive_free(cgrpc__h2_keepalive *ka);

#endif /* CGRPC_H2_KEEPALIVE_H */
