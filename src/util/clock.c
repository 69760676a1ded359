/* SPDX-License-Identifier: MIT */
/* clock_gettime() is POSIX; the build defines _GNU_SOURCE, which implies it. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include "util/clock.h"

#include <time.h>

int64_t cgrpc__now_ns(void) {
  struct timespec ts;
  /* CLOCK_MONOTONIC cannot fail on Linux with a valid pointer. */
  (void)clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t cgrpc__now_ms(void) { return cgrpc__now_ns() / 1000000; }
