/* SPDX-License-Identifier: MIT */
/*
 * A standalone cgrpc.test.EchoService server, for the interop tests.
 *
 *   echo_server [--port=N | --address=ADDR] [--max_workers=N]
 *               [--max_receive_message_length=N]
 *               [--keepalive_min_ping_interval_ms=N]
 *               [--keepalive_permit_without_calls=0|1]
 *               [--max_ping_strikes=N]
 *
 * --port=0 (the default) picks a free port; --address listens on a Unix
 * socket instead ("unix:/path", "unix-abstract:name").  The last three set
 * the ping policy for clients, as the server.h setters of the same names
 * do (unset: the library's defaults).  Once serving it prints one line
 * "listening on PORT" to stdout and flushes it.  Stops cleanly on SIGINT or
 * SIGTERM.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cgrpc/cgrpc.h>

#include "echo_service.h"
#include "test_server.h"

static void usage(const char *argv0) {
  fprintf(stderr,
          "usage: %s [--port=N | --address=ADDR] [--max_workers=N] "
          "[--max_receive_message_length=N] "
          "[--keepalive_min_ping_interval_ms=N] "
          "[--keepalive_permit_without_calls=0|1] [--max_ping_strikes=N]\n",
          argv0);
}

/* The ping policy flags; -1: not given. */
typedef struct ping_policy {
  long long min_interval_ms, permit_without_calls, max_strikes;
} ping_policy;

static int register_echo(cgrpc_server *server, void *arg) {
  (void)arg;
  return echo_service_register(server, NULL);
}

static void configure(cgrpc_server_options *opts, void *arg) {
  const ping_policy *p = arg;
  if (p->min_interval_ms >= 0)
    cgrpc_server_options_set_keepalive_min_ping_interval_ms(opts,
                                                            p->min_interval_ms);
  if (p->permit_without_calls >= 0)
    cgrpc_server_options_set_keepalive_permit_without_calls(
        opts, (int)p->permit_without_calls);
  if (p->max_strikes >= 0)
    cgrpc_server_options_set_max_ping_strikes(opts, (int)p->max_strikes);
}

int main(int argc, char **argv) {
  ping_policy policy = {-1, -1, -1};
  test_server_config cfg = {"echo_server", 0, -1, -2, 5000, register_echo,
                            &policy, NULL, NULL, configure};
  int i;

  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    int bad;
    if (strncmp(a, "--port=", 7) == 0)
      bad = test_server_parse_ll(a + 7, 0, 65535, &cfg.port) != 0;
    else if (strncmp(a, "--address=", 10) == 0)
      bad = (cfg.address = a + 10)[0] == '\0';
    else if (strncmp(a, "--max_workers=", 14) == 0)
      bad = test_server_parse_ll(a + 14, 0, 100000, &cfg.max_workers) != 0;
    else if (strncmp(a, "--max_receive_message_length=", 29) == 0)
      bad = test_server_parse_ll(a + 29, -1, INT64_MAX, &cfg.max_recv) != 0;
    else if (strncmp(a, "--keepalive_min_ping_interval_ms=", 33) == 0)
      bad = test_server_parse_ll(a + 33, 0, INT64_MAX / 1000000,
                                 &policy.min_interval_ms) != 0;
    else if (strncmp(a, "--keepalive_permit_without_calls=", 33) == 0)
      bad =
          test_server_parse_ll(a + 33, 0, 1, &policy.permit_without_calls) != 0;
    else if (strncmp(a, "--max_ping_strikes=", 19) == 0)
      bad = test_server_parse_ll(a + 19, 0, 1000, &policy.max_strikes) != 0;
    else
      bad = 1;
    if (bad) {
      usage(argv[0]);
      return 2;
    }
  }
  return test_server_run(&cfg);
}
