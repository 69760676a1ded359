/* SPDX-License-Identifier: MIT */
/*
 * The grpc-timeout header: 1 to 8 ASCII digits followed by one unit,
 * H (hours), M (minutes), S (seconds), m (milliseconds), u (microseconds) or
 * n (nanoseconds).
 */
#ifndef CGRPC_UTIL_TIMEOUT_H
#define CGRPC_UTIL_TIMEOUT_H

#include <stddef.h>
#include <stdint.h>

/* Size of the buffer cgrpc__timeout_format() needs: 8 digits, unit, NUL. */
#define CGRPC__TIMEOUT_BUFLEN 16

/*
 * Parses the |n| characters at |s| (no NUL needed) as a grpc-timeout value
 * and stores it in nanoseconds in |*out_ns|.  A value too large for int64_t
 * (e.g. "99999999H") is stored as INT64_MAX.  "0n" and other zero values are
 * accepted and give 0.  |*out_ns| is written only on success.
 *
 * Returns 0, or -1 when |s| is empty, has no digits or more than 8, has a
 * unit other than H M S m u n, or has anything after the unit (whitespace
 * included).
 */
int cgrpc__timeout_parse(const char *s, size_t n, int64_t *out_ns);

/*
 * Formats the duration |ns| as a grpc-timeout value into |buf|: the finest
 * unit (n, u, m, S, M, H) whose value fits in 8 digits, rounding up so that
 * the peer's deadline is never earlier than ours.  |ns| <= 0 gives "1n", the
 * smallest value that still means "already expired soon" rather than "no
 * deadline".  The result is NUL-terminated.
 *
 * Returns the length of the string written (2 to 9).
 */
size_t cgrpc__timeout_format(char buf[CGRPC__TIMEOUT_BUFLEN], int64_t ns);

#endif /* CGRPC_UTIL_TIMEOUT_H */
