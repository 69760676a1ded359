/* SPDX-License-Identifier: MIT */
#include "test_server.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

int test_server_parse_ll(const char *s, long long min, long long max,
                         long long *out) {
  char *end;
  long long v;
  errno = 0;
  v = strtoll(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
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

static int listen_on(cgrpc_server *server, const char *addr,
                     const test_server_config *cfg, int *bound_port) {
  if (cfg->creds != NULL)
    return cgrpc_server_add_secure_port(server, addr, cfg->creds, bound_port);
  return cgrpc_server_add_insecure_port(server, addr, bound_port);
}

int test_server_run(const test_server_config *cfg) {
  cgrpc_server_options *opts = NULL;
  cgrpc_server *server = NULL;
  sigset_t stop_signals;
  char addr[64];
  int bound_port = 0, sig, rv;

  /* Block the stop signals in every thread; we wait for them below. */
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

  if ((rv = cgrpc_server_options_new(&opts)) != 0) {
    fprintf(stderr, "%s: %s\n", cfg->name, cgrpc_strerror(rv));
    return 1;
  }
  if (cfg->max_workers >= 0)
    cgrpc_server_options_set_max_workers(opts, (int)cfg->max_workers);
  if (cfg->max_recv != -2)
    cgrpc_server_options_set_max_receive_message_length(opts, cfg->max_recv);
  if (getenv("CGRPC_TRACE") == NULL)
    cgrpc_server_options_set_log(opts, log_warnings, NULL);
  if (cfg->configure)
    cfg->configure(opts, cfg->arg);

  rv = cgrpc_server_new(&server, opts);
  cgrpc_server_options_del(opts);
  if (rv == 0 && cfg->address) {
    rv = listen_on(server, cfg->address, cfg, &bound_port);
  } else if (rv == 0) {
    /* Dual-stack where the system allows it, else IPv4 only. */
    snprintf(addr, sizeof addr, "[::]:%lld", cfg->port);
    rv = listen_on(server, addr, cfg, &bound_port);
    if (rv != 0 && rv != CGRPC_ERR_ADDR_IN_USE) {
      snprintf(addr, sizeof addr, "0.0.0.0:%lld", cfg->port);
      rv = listen_on(server, addr, cfg, &bound_port);
    }
  }
  if (rv == 0)
    rv = cfg->register_services(server, cfg->arg);
  if (rv == 0)
    rv = cgrpc_server_start(server);
  if (rv != 0) {
    fprintf(stderr, "%s: %s\n", cfg->name, cgrpc_strerror(rv));
    cgrpc_server_del(server);
    return 1;
  }
  printf("listening on %d\n", bound_port);
  fflush(stdout);

  sigwait(&stop_signals, &sig);
  cgrpc_server_shutdown(server, cfg->grace_ms);
  cgrpc_server_del(server);
  return 0;
}
