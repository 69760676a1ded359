/* SPDX-License-Identifier: MIT */
/*
 * A standalone cgrpc.test.EchoService server, for the interop tests.
 *
 *   echo_server [--port=N] [--max_workers=N] [--max_receive_message_length=N]
 *
 * --port=0 (the default) picks a free port.  Once serving it prints one line
 * "listening on PORT" to stdout and flushes it.  Stops cleanly on SIGINT or
 * SIGTERM.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cgrpc/cgrpc.h>

#include "echo_service.h"

static int parse_ll(const char *s, long long min, long long *out) {
  char *end;
  long long v;
  errno = 0;
  v = strtoll(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < min)
    return -1;
  *out = v;
  return 0;
}

/* Warnings and errors to stderr; CGRPC_TRACE=1 shows everything instead. */
static void log_warnings(cgrpc_log_level level, const char *msg,
                         void *user_data) {
  if (level >= CGRPC_LOG_WARNING)
    cgrpc_log_stderr(level, msg, user_data);
}

static void usage(const char *argv0) {
  fprintf(stderr,
          "usage: %s [--port=N] [--max_workers=N] "
          "[--max_receive_message_length=N]\n",
          argv0);
}

int main(int argc, char **argv) {
  cgrpc_server_options *opts = NULL;
  cgrpc_server *server = NULL;
  sigset_t stop_signals;
  char addr[64];
  long long port = 0, max_workers = -1, max_recv = -2;
  int bound_port = 0, sig, rv, i;

  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    int bad;
    if (strncmp(a, "--port=", 7) == 0)
      bad = parse_ll(a + 7, 0, &port) != 0 || port > 65535;
    else if (strncmp(a, "--max_workers=", 14) == 0)
      bad = parse_ll(a + 14, 0, &max_workers) != 0 || max_workers > 100000;
    else if (strncmp(a, "--max_receive_message_length=", 29) == 0)
      bad = parse_ll(a + 29, -1, &max_recv) != 0;
    else
      bad = 1;
    if (bad) {
      usage(argv[0]);
      return 2;
    }
  }

  /* Block the stop signals in every thread; main waits for them below. */
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

  if ((rv = cgrpc_server_options_new(&opts)) != 0) {
    fprintf(stderr, "echo_server: %s\n", cgrpc_strerror(rv));
    return 1;
  }
  if (max_workers >= 0)
    cgrpc_server_options_set_max_workers(opts, (int)max_workers);
  if (max_recv != -2)
    cgrpc_server_options_set_max_receive_message_length(opts, max_recv);
  if (getenv("CGRPC_TRACE") == NULL)
    cgrpc_server_options_set_log(opts, log_warnings, NULL);

  rv = cgrpc_server_new(&server, opts);
  cgrpc_server_options_del(opts);
  if (rv == 0) {
    /* Dual-stack where the system allows it, else IPv4 only. */
    snprintf(addr, sizeof addr, "[::]:%lld", port);
    rv = cgrpc_server_add_insecure_port(server, addr, &bound_port);
    if (rv != 0 && rv != CGRPC_ERR_ADDR_IN_USE) {
      snprintf(addr, sizeof addr, "0.0.0.0:%lld", port);
      rv = cgrpc_server_add_insecure_port(server, addr, &bound_port);
    }
  }
  if (rv == 0)
    rv = echo_service_register(server, NULL);
  if (rv == 0)
    rv = cgrpc_server_start(server);
  if (rv != 0) {
    fprintf(stderr, "echo_server: %s\n", cgrpc_strerror(rv));
    cgrpc_server_del(server);
    return 1;
  }
  printf("listening on %d\n", bound_port);
  fflush(stdout);

  sigwait(&stop_signals, &sig);
  cgrpc_server_shutdown(server, 5000);
  cgrpc_server_del(server);
  return 0;
}
