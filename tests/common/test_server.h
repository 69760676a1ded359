/* SPDX-License-Identifier: MIT */
/*
 * What the standalone test servers (echo_server, interop_server) share:
 * option parsing, a quiet log, and the listen / start / wait / shut down
 * sequence the interop runners expect.
 */
#ifndef CGRPC_TESTS_TEST_SERVER_H
#define CGRPC_TESTS_TEST_SERVER_H

#include <stdint.h>

#include <cgrpc/cgrpc.h>

/* Parses the decimal |s| into |*out| if it lies in [min, max].
 * Returns 0, or -1. */
int test_server_parse_ll(const char *s, long long min, long long max,
                         long long *out);

typedef struct test_server_config {
  const char *name;     /* for error messages */
  long long port;       /* 0 picks a free one */
  long long max_workers; /* -1: the library's default */
  long long max_recv;   /* -2: the default; -1: no limit */
  int64_t grace_ms;     /* shutdown grace on SIGINT/SIGTERM */
  /* Registers the services; returns 0 or a CGRPC_ERR_* code. */
  int (*register_services)(cgrpc_server *server, void *arg);
  void *arg;
  /* NULL: plaintext; else the port is a TLS one with these. */
  cgrpc_server_credentials *creds;
  /* Listen here instead ("unix:/path", "unix-abstract:name"); NULL: the
   * port above. */
  const char *address;
  /* When not NULL, called with the server options (and |arg|) before the
   * server is created, to set what the fields above do not cover. */
  void (*configure)(cgrpc_server_options *opts, void *arg);
} test_server_config;

/*
 * Blocks SIGINT and SIGTERM, creates the server (warnings and errors to
 * stderr unless CGRPC_TRACE is set), listens on [::]:port (0.0.0.0 without
 * IPv6) or on cfg->address, with TLS when cfg->creds is set, registers,
 * starts, prints "listening on PORT" (0 for a Unix socket) and flushes,
 * waits for a stop signal and shuts down.  Returns the process exit code.
 */
int test_server_run(const test_server_config *cfg);

#endif /* CGRPC_TESTS_TEST_SERVER_H */
