/* SPDX-License-Identifier: MIT */
/*
 * Logging hook.  The library never writes to stderr on its own: messages go
 * to the callback set on a server's or channel's options, already formatted.
 * Setting the environment variable CGRPC_TRACE=1 (or "all") makes objects
 * that have no callback log at every level to stderr, for debugging.
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
 * during the call.  May be called from any of the library's threads.
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
