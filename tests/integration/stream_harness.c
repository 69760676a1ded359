/* SPDX-License-Identifier: MIT */
#include "stream_harness.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

static cgrpc_log_cb log_cb(void) {
  return getenv("CGRPC_TEST_LOG") ? cgrpc_log_stderr : NULL;
}

int st_server_start(st_server *s, const st_config *cfg) {
  static const st_config defaults = {-1, 0, 0, 0};
  cgrpc_server_options *o = NULL;
  int rv;
  if (!cfg)
    cfg = &defaults;
  memset(s, 0, sizeof *s);
  stream_stats_reset(&s->stats);
  if ((rv = cgrpc_server_options_new(&o)) != 0)
    return rv;
  if (log_cb())
    cgrpc_server_options_set_log(o, log_cb(), NULL);
  if (cfg->max_workers >= 0)
    cgrpc_server_options_set_max_workers(o, cfg->max_workers);
  if (cfg->max_recv)
    cgrpc_server_options_set_max_receive_message_length(o, cfg->max_recv);
  if (cfg->max_streams)
    cgrpc_server_options_set_max_concurrent_streams(o, cfg->max_streams);
  rv = cgrpc_server_new(&s->it.server, o);
  cgrpc_server_options_del(o);
  if (rv != 0)
    return rv;
  if ((rv = cgrpc_server_add_insecure_port(s->it.server, "127.0.0.1:0",
                                           &s->it.port)) != 0 ||
      (rv = cfg->async ? stream_service_register_async(s->it.server, &s->stats)
                       : stream_service_register(s->it.server, &s->stats)) !=
          0 ||
      (rv = cgrpc_server_start(s->it.server)) != 0) {
    cgrpc_server_del(s->it.server);
    s->it.server = NULL;
    return rv;
  }
  snprintf(s->it.target, sizeof s->it.target, "127.0.0.1:%d", s->it.port);
  return 0;
}

void st_server_stop(st_server *s, int64_t grace_ms) {
  it_server_stop(&s->it, grace_ms);
}

cgrpc_channel *st_channel(const st_server *s, int64_t max_recv) {
  cgrpc_channel *ch = NULL;
  cgrpc_channel_options *o = NULL;
  if (cgrpc_channel_options_new(&o) != 0)
    return NULL;
  if (log_cb())
    cgrpc_channel_options_set_log(o, log_cb(), NULL);
  if (max_recv)
    cgrpc_channel_options_set_max_receive_message_length(o, max_recv);
  if (cgrpc_channel_new(&ch, s->it.target, o) != 0)
    ch = NULL;
  cgrpc_channel_options_del(o);
  return ch;
}

int st_fixture_start(void **state, const st_config *cfg) {
  st_fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  assert_int_equal(st_server_start(&f->srv, cfg), 0);
  f->ch = st_channel(&f->srv, 0);
  assert_non_null(f->ch);
  *state = f;
  return 0;
}

int st_fixture_setup(void **state) { return st_fixture_start(state, NULL); }

int st_fixture_teardown(void **state) {
  st_fixture *f = *state;
  cgrpc_channel_del(f->ch);
  st_server_stop(&f->srv, 1000);
  free(f);
  return 0;
}

int st_quick(void) {
#ifdef CGRPC_TEST_SANITIZED
  return 1;
#else
  const char *q = getenv("CGRPC_TEST_QUICK");
  return q && q[0] && strcmp(q, "0") != 0;
#endif
}

long st_rss_kib(void) {
  long size = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f)
    return -1;
  if (fscanf(f, "%ld %ld", &size, &resident) != 2)
    resident = -1;
  fclose(f);
  return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

long st_peak_rss_kib(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return -1;
  return ru.ru_maxrss;
}

double st_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
