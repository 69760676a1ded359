/* SPDX-License-Identifier: MIT */
#include "util/trace.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRACE_MSG_MAX 1024

unsigned cgrpc__trace_mask;

static const struct {
  const char *name;
  unsigned bit;
} tracers[] = {
    {"conn", CGRPC__TRACE_CONN},           {"call", CGRPC__TRACE_CALL},
    {"h2", CGRPC__TRACE_H2},               {"tls", CGRPC__TRACE_TLS},
    {"dns", CGRPC__TRACE_DNS},             {"lb", CGRPC__TRACE_LB},
    {"keepalive", CGRPC__TRACE_KEEPALIVE}, {"retry", CGRPC__TRACE_RETRY},
};

#define N_TRACERS (sizeof(tracers) / sizeof(tracers[0]))

static const char *tracer_name(unsigned bit) {
  for (size_t i = 0; i < N_TRACERS; i++)
    if (tracers[i].bit == bit)
      return tracers[i].name;
  return "?";
}

/* The bit of the |len| bytes at |name|: a tracer, or every tracer for
 * "all" / "1"; 0 when unknown. */
static unsigned tracer_bit(const char *name, size_t len) {
  if ((len == 3 && memcmp(name, "all", 3) == 0) ||
      (len == 1 && name[0] == '1'))
    return CGRPC__TRACE_ALL;
  for (size_t i = 0; i < N_TRACERS; i++)
    if (strlen(tracers[i].name) == len && memcmp(tracers[i].name, name, len) == 0)
      return tracers[i].bit;
  return 0;
}

int cgrpc__trace_parse(const char *spec, unsigned *mask, char *bad,
                       size_t bad_size) {
  size_t used = 0;
  int everything = 0, first = 1;

  *mask = 0;
  if (bad_size > 0)
    bad[0] = '\0';
  while (spec != NULL && *spec != '\0') {
    const char *end = strchr(spec, ',');
    size_t len = end ? (size_t)(end - spec) : strlen(spec);
    const char *name = spec;
    int off = 0;
    unsigned bit;

    while (len > 0 && (*name == ' ' || *name == '\t'))
      name++, len--;
    while (len > 0 && (name[len - 1] == ' ' || name[len - 1] == '\t'))
      len--;
    if (len > 0 && name[0] == '-')
      off = 1, name++, len--;
    if (len > 0) {
      bit = tracer_bit(name, len);
      if (bit == 0 && !(len == 1 && name[0] == '0')) {
        int n = snprintf(bad + used, bad_size - used, "%s%.*s",
                         used ? "," : "", (int)len, name);
        if (n > 0 && used + (size_t)n < bad_size)
          used += (size_t)n;
        else if (bad_size > 0)
          bad[used] = '\0'; /* whole names only */
      }
      if (off)
        *mask &= ~bit;
      else
        *mask |= bit;
      if (first && !off && bit == CGRPC__TRACE_ALL)
        everything = 1;
      first = 0;
    }
    spec = end ? end + 1 : end;
  }
  return everything;
}

static pthread_once_t trace_once = PTHREAD_ONCE_INIT;

static void trace_read_env(void) {
  char bad[256];
  const char *spec = getenv("CGRPC_TRACE");

  (void)cgrpc__trace_parse(spec, &cgrpc__trace_mask, bad, sizeof(bad));
  if (bad[0] != '\0') {
    char known[128];
    size_t used = 0;
    for (size_t i = 0; i < N_TRACERS; i++) {
      int n = snprintf(known + used, sizeof(known) - used, "%s%s",
                       i ? ", " : "", tracers[i].name);
      if (n > 0 && used + (size_t)n < sizeof(known))
        used += (size_t)n;
    }
    fprintf(stderr,
            "cgrpc WARNING: CGRPC_TRACE: unknown tracer(s) %s (known: %s, "
            "all; \"-name\" leaves one out)\n",
            bad, known);
  }
}

void cgrpc__trace_init(void) { pthread_once(&trace_once, trace_read_env); }

void cgrpc__trace(const cgrpc__logger *lg, unsigned tracer, const char *fmt,
                  ...) {
  char msg[TRACE_MSG_MAX];
  int n;
  va_list ap;

  if (!cgrpc__trace_on(lg, tracer))
    return;
  n = snprintf(msg, sizeof(msg), "[%s] ", tracer_name(tracer));
  if (n < 0 || (size_t)n >= sizeof(msg))
    n = 0;
  va_start(ap, fmt);
  /* Truncation is fine for a trace line; the result is always terminated. */
  (void)vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
  va_end(ap);
  lg->cb(CGRPC_LOG_DEBUG, msg, lg->user_data);
}
