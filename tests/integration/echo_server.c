/* SPDX-License-Identifier: MIT */
/*
 * A standalone cgrpc.test.EchoService server, for the interop tests.
 *
 *   echo_server [--port=N | --address=ADDR] [--max_workers=N]
 *               [--max_receive_message_length=N]
 *
 * --port=0 (the default) picks a free port; --address listens on a Unix
 * socket instead ("unix:/path", "unix-abstract:name").  Once serving it prints
 * one line "listening on PORT" to stdout and flushes it.  Stops cleanly on
 * SIGINT or SIGTERM.
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
          "[--max_receive_message_length=N]\n",
          argv0);
}

static int register_echo(cgrpc_server *server, void *arg) {
  (void)arg;
  return echo_service_register(server, NULL);
}

int main(int argc, char **argv) {
  test_server_config cfg = {"echo_server", 0, -1, -2, 5000, register_echo,
                            NULL, NULL, NULL};
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
    else
      bad = 1;
    if (bad) {
      usage(argv[0]);
      return 2;
    }
  }
  return test_server_run(&cfg);
}
