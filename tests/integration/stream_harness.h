/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the streaming tests: a StreamService server (blocking or
 * async servicer) on 127.0.0.1, memory figures, and the size scale.
 */
#ifndef CGRPC_TEST_STREAM_HARNESS_H
#define CGRPC_TEST_STREAM_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include <cgrpc/cgrpc.h>

#include "harness.h"
#include "stream_service.h"

typedef struct st_config {
  int max_workers;         /* 0: inline server; < 0: the default pool */
  int async;               /* register the async servicer */
  int64_t max_recv;        /* 0: the default */
  uint32_t max_streams;    /* 0: the default */
} st_config;

typedef struct st_server {
  it_server it; /* server, port, target; it.stats unused */
  stream_stats stats;
} st_server;

/* Starts a StreamService server as |cfg| says (NULL: blocking servicer on
 * the default worker pool).  Returns 0 or a cgrpc error. */
int st_server_start(st_server *s, const st_config *cfg);
void st_server_stop(st_server *s, int64_t grace_ms);

/* A channel to |s|; |max_recv| 0 for the default. */
cgrpc_channel *st_channel(const st_server *s, int64_t max_recv);

/* The fixture the streaming tests share: a StreamService server and a
 * channel to it (default receive limit). */
typedef struct st_fixture {
  st_server srv;
  cgrpc_channel *ch;
} st_fixture;

/* cmocka setup for an st_fixture in |*state| whose server is as |cfg| says
 * (NULL as for st_server_start); asserts on failure.  Returns 0. */
int st_fixture_start(void **state, const st_config *cfg);
/* cmocka setup and teardown: st_fixture_start(state, NULL), and the channel
 * deleted, the server stopped with a 1 s grace, the fixture freed. */
int st_fixture_setup(void **state);
int st_fixture_teardown(void **state);
/* A cmocka test |name| run with an st_fixture (default server) in
 * |*state|. */
#define ST_FIXTURE_TEST(name)                                                  \
  cmocka_unit_test_setup_teardown(name, st_fixture_setup, st_fixture_teardown)

/* Nonzero in sanitizer builds (CGRPC_TEST_SANITIZED) or when the environment
 * sets CGRPC_TEST_QUICK: the stress tests then move less data. */
int st_quick(void);

/* The process's current resident set (/proc/self/statm) and its peak so far
 * (getrusage ru_maxrss), in KiB. */
long st_rss_kib(void);
long st_peak_rss_kib(void);

/* Seconds since an arbitrary point, as a double. */
double st_now_s(void);

#endif /* CGRPC_TEST_STREAM_HARNESS_H */
