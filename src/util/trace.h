/* SPDX-License-Identifier: MIT */
/*
 * Tracers: named groups of debug events (connections, calls, HTTP/2 frames,
 * ...) switched on by the environment variable CGRPC_TRACE, as gRPC's
 * GRPC_TRACE does: a comma-separated list of tracer names, "all" (or "1")
 * for every tracer, and "-name" to leave one out ("all,-h2").  The list is
 * read once, when the first logger is set up.
 *
 * A trace event goes to the logger of the object it is about (a server's or
 * a channel's): to its options' log callback at CGRPC_LOG_DEBUG, or to
 * stderr when the options set no callback.  An event whose tracer is off
 * costs one test of a global bit mask.
 */
#ifndef CGRPC_UTIL_TRACE_H
#define CGRPC_UTIL_TRACE_H

#include "util/log.h"

enum {
  CGRPC__TRACE_CONN = 1u << 0,      /* connections: connect, accept, close */
  CGRPC__TRACE_CALL = 1u << 1,      /* calls: start, end with status */
  CGRPC__TRACE_H2 = 1u << 2,        /* HTTP/2 frames in and out */
  CGRPC__TRACE_TLS = 1u << 3,       /* handshakes and their outcome */
  CGRPC__TRACE_DNS = 1u << 4,       /* name resolution and resolvers */
  CGRPC__TRACE_LB = 1u << 5,        /* connectivity states, subchannels */
  CGRPC__TRACE_KEEPALIVE = 1u << 6, /* keepalive pings, ping policy */
  CGRPC__TRACE_RETRY = 1u << 7,     /* retry attempts, backoff, commit */
  CGRPC__TRACE_ALL = (1u << 8) - 1
};

/* The tracers CGRPC_TRACE switches on (read by cgrpc__trace_init()). */
extern unsigned cgrpc__trace_mask;

/*
 * Reads CGRPC_TRACE once (later calls do nothing).  Names it does not know
 * are reported once on stderr with the list of known ones.
 *
 * Thread safety: any thread.
 */
void cgrpc__trace_init(void);

/*
 * Parses |spec| as CGRPC_TRACE would be; sets |*mask| and returns 1 when
 * the spec asks for everything ("all", "1", ...) at the start, so that
 * messages of every level should print.  Unknown names are written to
 * |bad| (up to |bad_size| bytes, comma-separated; empty when none).
 */
int cgrpc__trace_parse(const char *spec, unsigned *mask, char *bad,
                       size_t bad_size);

/* Nonzero when |tracer| is on and |lg| has somewhere to write. */
static inline int cgrpc__trace_on(const cgrpc__logger *lg, unsigned tracer) {
  return (cgrpc__trace_mask & tracer) != 0 && lg != NULL && lg->cb != NULL;
}

/*
 * Writes one trace event "[name] message" to |lg| at CGRPC_LOG_DEBUG,
 * whatever the logger's level.  Use through CGRPC__TRACE, which formats
 * nothing when the tracer is off.
 */
void cgrpc__trace(const cgrpc__logger *lg, unsigned tracer, const char *fmt,
                  ...) CGRPC_PRINTF(3, 4);

#define CGRPC__TRACE(lg, tracer, ...)                                          \
  do {                                                                         \
    if (cgrpc__trace_on((lg), CGRPC__TRACE_##tracer))                          \
      cgrpc__trace((lg), CGRPC__TRACE_##tracer, __VA_ARGS__);                  \
  } while (0)

#endif /* CGRPC_UTIL_TRACE_H */
