/* SPDX-License-Identifier: MIT */
#include "util/log.h"

#include "util/trace.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define LOG_MSG_MAX 1024

static const char *level_name(cgrpc_log_level level) {
  switch (level) {
  case CGRPC_LOG_DEBUG:
    return "DEBUG";
  case CGRPC_LOG_INFO:
    return "INFO";
  case CGRPC_LOG_WARNING:
    return "WARNING";
  case CGRPC_LOG_ERROR:
    return "ERROR";
  }
  return "?";
}

void cgrpc_log_stderr(cgrpc_log_level level, const char *msg, void *user_data) {
  (void)user_data;
  /* One fprintf per line so lines from different threads do not interleave
   * (stdio locks the stream for the whole call). */
  fprintf(stderr, "cgrpc %s: %s\n", level_name(level), msg);
}

void cgrpc__logger_init(cgrpc__logger *lg, cgrpc_log_cb cb, void *ud) {
  const char *trace;

  lg->cb = cb;
  lg->user_data = ud;
  lg->level_min = CGRPC_LOG_DEBUG;
  cgrpc__trace_init();
  if (cb != NULL) {
    return;
  }
  trace = getenv("CGRPC_TRACE");
  if (trace != NULL && trace[0] != '\0' &&
      !(trace[0] == '0' && trace[1] == '\0')) {
    /* Named tracers print their events and the library's warnings and
     * errors; "all" prints every message too. */
    lg->cb = cgrpc_log_stderr;
    lg->user_data = NULL;
    unsigned mask;
    char bad[1];
    if (!cgrpc__trace_parse(trace, &mask, bad, sizeof bad))
      lg->level_min = CGRPC_LOG_INFO;
  } else {
    lg->level_min = CGRPC__LOG_OFF;
  }
}

void cgrpc__log(const cgrpc__logger *lg, cgrpc_log_level lvl, const char *fmt,
                ...) {
  char msg[LOG_MSG_MAX];
  va_list ap;

  if (!cgrpc__log_enabled(lg, lvl)) {
    return;
  }
  va_start(ap, fmt);
  /* Truncation is fine for a log line; the result is always terminated. */
  (void)vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  lg->cb(lvl, msg, lg->user_data);
}
