/* SPDX-License-Identifier: MIT */
/*
 * Monotonic time for deadlines, timers and backoff.
 */
#ifndef CGRPC_UTIL_CLOCK_H
#define CGRPC_UTIL_CLOCK_H

#include <stdint.h>

/*
 * Returns the current CLOCK_MONOTONIC time in nanoseconds.  The origin is
 * unspecified (usually boot); only differences are meaningful.  Never goes
 * backwards.  Thread safety: any thread.
 */
int64_t cgrpc__now_ns(void);

/* Returns cgrpc__now_ns() in milliseconds, rounded down. */
int64_t cgrpc__now_ms(void);

#endif /* CGRPC_UTIL_CLOCK_H */
