/* SPDX-License-Identifier: MIT */
/*
 * cgrpc's server of bench.Bench: a bidi echo, for the streaming benchmark.
 *
 *   cgrpc_bench_server [--port=N] [--max_workers=N]   (port 0 picks one;
 *                                                     workers >= 1: the
 *                                                     handler blocks)
 *
 * The handler is the plain blocking form a user would write: it receives a
 * message and sends it back until the client half-closes.  Prints
 * "Server started, listening on PORT" and stops on SIGINT or SIGTERM.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cgrpc/cgrpc.h>

#include "bench.grpc-c.h"

static cgrpc_status_code stream(cgrpc_server_ctx *ctx, void *user_data) {
  Bench__Chunk *in = NULL;
  int rv;

  (void)user_data;
  while ((rv = bench__bench__stream__recv(ctx, &in)) == 1) {
    int sent = bench__bench__stream__send(ctx, in);
    protobuf_c_message_free_unpacked(&in->base, NULL);
    if (sent != 0) {
      return CGRPC_STATUS_CANCELLED;
    }
  }
  return rv == 0 ? CGRPC_STATUS_OK : CGRPC_STATUS_CANCELLED;
}

int main(int argc, char **argv) {
  Bench__Bench_Servicer servicer = {.stream = stream};
  cgrpc_server_options *opts = NULL;
  cgrpc_server *server = NULL;
  char addr[64];
  sigset_t stop_signals;
  int port = 50061, workers = -1, sig, rv;

  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--port=", 7) == 0) {
      port = atoi(argv[i] + 7);
    } else if (strncmp(argv[i], "--max_workers=", 14) == 0) {
      workers = atoi(argv[i] + 14);
    } else {
      fprintf(stderr, "usage: %s [--port=N] [--max_workers=N]\n", argv[0]);
      return 2;
    }
  }

  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

  if ((rv = cgrpc_server_options_new(&opts)) != 0) {
    fprintf(stderr, "cgrpc_bench_server: %s\n", cgrpc_strerror(rv));
    return 1;
  }
  if (workers >= 0) {
    cgrpc_server_options_set_max_workers(opts, workers);
  }
  snprintf(addr, sizeof addr, "[::]:%d", port);
  if ((rv = cgrpc_server_new(&server, opts)) != 0 ||
      (rv = cgrpc_server_add_insecure_port(server, addr, &port)) != 0 ||
      (rv = bench__bench__servicer__register(server, &servicer, NULL)) != 0 ||
      (rv = cgrpc_server_start(server)) != 0) {
    fprintf(stderr, "cgrpc_bench_server: %s\n", cgrpc_strerror(rv));
    cgrpc_server_del(server);
    cgrpc_server_options_del(opts);
    return 1;
  }
  cgrpc_server_options_del(opts);
  printf("Server started, listening on %d\n", port);
  fflush(stdout);

  sigwait(&stop_signals, &sig);
  cgrpc_server_shutdown(server, 5000);
  cgrpc_server_del(server);
  return 0;
}
