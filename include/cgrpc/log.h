/* SPDX-License-Identifier: MIT */
/*
 * Logging hook.  The library never writes to stderr on its own: messages go
 * to the callback set on a server's or channel's options, already formatted.
 *
 * Tracing, as gRPC's GRPC_TRACE: the environment variable CGRPC_TRACE names
 * groups of debug events, comma-separated, read once per process:
 *
 *   conn       connections: connecting, connected, accepted, closed, why
 *   call       calls: start (peer, path, stream, attempt), end with status
 *   h2         HTTP/2 frames sent and received (type, stream, flags, the
 *              gRPC headers; other metadata values are never printed)
 *   tls        TLS handshakes: protocol, cipher, resumption, the peer's
 *              certificate, or the failure
 *   dns        name resolution: lookups and their results
 *   lb         connectivity states of channels and subchannels
 *   keepalive  keepalive pings, their answers and timeouts, ping policy
 *   retry      retry attempts, backoff, transparent retries
 *
 * "all" (or "1") is every tracer and "-name" leaves one out
 * ("CGRPC_TRACE=all,-h2").  Each event is one "[name] text" message at
 * CGRPC_LOG_DEBUG to the log callback of the server or channel it is about;
 * objects with no callback then print to stderr (cgrpc_log_stderr()): the
 * events, and messages of INFO and above, or of every level with "all".
 * An unknown name is reported once on stderr.  A tracer that is off costs
 * one bit test.
 */
#ifndef CGRPC_LOG_H
#define CGRPC_LOG_H

#include "cgrpc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cgrpc_log_level {
  CGRPC_LOG_DEBUG = 0,
  CGRPC_LOG_INFO = 1,
  CGRPC_LOG_WARNING = 2,
  CGRPC_LOG_ERROR = 3
} cgrpc_log_level;

/*
 * Receives one formatted message (no trailing newline).  |msg| is valid only
 * during the call.  May be called from any of the library's threads, and
 * from an application thread inside a blocking call (which drives its
 * channel's loop while it waits).
 *
 * It runs with no lock of the library held, often from inside the library's
 * own event handling (a trace event of a frame being read), and may call
 * the library back as any other callback may: an async call, a cancel, a
 * state query, or cgrpc_channel_del() of the channel it logs for (which then
 * returns at once; the channel goes after the callback).  Blocking calls
 * are refused there (cgrpc_unary_call() ends FAILED_PRECONDITION at once).
 * Messages those calls log come to the callback while it is still running.
 */
typedef void (*cgrpc_log_cb)(cgrpc_log_level level, const char *msg,
                             void *user_data);

/* A ready-made callback that prints "cgrpc LEVEL: msg" lines to stderr. */
CGRPC_EXTERN void cgrpc_log_stderr(cgrpc_log_level level, const char *msg,
                                   void *user_data);

#ifdef __cplusplus
}
#endif

#endif /* CGRPC_LOG_H */
