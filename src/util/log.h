/* SPDX-License-Identifier: MIT */
/*
 * Internal logging.  Each object that logs holds a cgrpc__logger copied from
 * its options; messages are formatted only when the logger would print them,
 * so a silent logger costs one comparison per call.
 */
#ifndef CGRPC_UTIL_LOG_H
#define CGRPC_UTIL_LOG_H

#include <stddef.h>

#include "cgrpc/export.h"
#include "cgrpc/log.h"

/*
 * Level that disables a logger: above every cgrpc_log_level.
 */
#define CGRPC__LOG_OFF (CGRPC_LOG_ERROR + 1)

/*
 * A log destination.  |cb| receives formatted messages of level |level_min|
 * or above, with |user_data|.  When |cb| is NULL, |level_min| is
 * CGRPC__LOG_OFF.
 */
typedef struct cgrpc__logger {
  cgrpc_log_cb cb;
  void *user_data;
  int level_min;
} cgrpc__logger;

/*
 * Initializes |lg| to send every level to |cb| with |ud|.  When |cb| is NULL
 * and the environment variable CGRPC_TRACE is set to a non-empty value other
 * than "0", logs to stderr through cgrpc_log_stderr(): every level when the
 * value starts with "all" or "1", else INFO and above (plus the events of
 * the tracers it names: util/trace.h); otherwise the logger is silent.  The
 * environment is read once, by the first call, not per message.
 *
 * Thread safety: any thread (getenv() must not race with setenv()).
 */
void cgrpc__logger_init(cgrpc__logger *lg, cgrpc_log_cb cb, void *ud);

/*
 * Returns nonzero when |lg| would deliver a message of level |lvl|.  Use it
 * to skip work done only to build log arguments.  |lg| may be NULL.
 */
static inline int cgrpc__log_enabled(const cgrpc__logger *lg,
                                     cgrpc_log_level lvl) {
  return lg != NULL && lg->cb != NULL && (int)lvl >= lg->level_min;
}

/*
 * Formats |fmt| printf-style and passes the message to |lg|'s callback if
 * |lvl| is enabled.  |lg| may be NULL (silent).  Messages longer than 1023
 * bytes are truncated.  Does not allocate.
 *
 * Thread safety: any thread, provided the callback is.
 */
void cgrpc__log(const cgrpc__logger *lg, cgrpc_log_level lvl, const char *fmt,
                ...) CGRPC_PRINTF(3, 4);

#endif /* CGRPC_UTIL_LOG_H */
