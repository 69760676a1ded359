/* SPDX-License-Identifier: MIT */
/*
 * The Greeter server from the gRPC tutorials.
 *
 *   greeter_server [--port=N] [--max_workers=N]
 *
 * --port defaults to 50051.  --max_workers caps the handler thread pool,
 * which grows on demand (default: the library's, 1024); 0 runs handlers on
 * the server's own threads, which suits handlers like these that never
 * block.
 *
 * Stops cleanly on SIGINT or SIGTERM.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cgrpc/cgrpc.h>

#include "helloworld.grpc-c.h"

static cgrpc_status_code say_hello(cgrpc_server_ctx *ctx,
                                   const Helloworld__HelloRequest *request,
                                   Helloworld__HelloReply *reply,
                                   void *user_data) {
  (void)user_data;
  reply->message = cgrpc_server_ctx_printf(ctx, "Hello, %s!", request->name);
  return CGRPC_STATUS_OK;
}

static cgrpc_status_code say_hello_again(cgrpc_server_ctx *ctx,
                                         const Helloworld__HelloRequest *request,
                                         Helloworld__HelloReply *reply,
                                         void *user_data) {
  (void)user_data;
  reply->message =
      cgrpc_server_ctx_printf(ctx, "Hello again, %s!", request->name);
  return CGRPC_STATUS_OK;
}

int main(int argc, char **argv) {
  Helloworld__Greeter_Servicer greeter = {
      .say_hello = say_hello,
      .say_hello_again = say_hello_again,
  };
  cgrpc_server_options *options = NULL;
  cgrpc_server *server = NULL;
  char addr[64];
  sigset_t stop_signals;
  int port = 50051, max_workers = -1, sig, rv;

  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--port=", 7) == 0) {
      port = atoi(argv[i] + 7);
    } else if (strncmp(argv[i], "--max_workers=", 14) == 0) {
      max_workers = atoi(argv[i] + 14);
    } else {
      fprintf(stderr, "usage: %s [--port=N] [--max_workers=N]\n", argv[0]);
      return 2;
    }
  }

  /* Block the stop signals in every thread; main waits for them below. */
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

  snprintf(addr, sizeof addr, "[::]:%d", port);
  if ((rv = cgrpc_server_options_new(&options)) != 0) {
    fprintf(stderr, "greeter_server: %s\n", cgrpc_strerror(rv));
    return 1;
  }
  if (max_workers >= 0)
    cgrpc_server_options_set_max_workers(options, max_workers);
  rv = cgrpc_server_new(&server, options);
  cgrpc_server_options_del(options);
  if (rv != 0 ||
      (rv = cgrpc_server_add_insecure_port(server, addr, &port)) != 0 ||
      (rv = helloworld__greeter__servicer__register(server, &greeter, NULL)) !=
          0 ||
      (rv = cgrpc_server_start(server)) != 0) {
    fprintf(stderr, "greeter_server: %s\n", cgrpc_strerror(rv));
    cgrpc_server_del(server);
    return 1;
  }
  printf("Server started, listening on %d\n", port);
  fflush(stdout);

  sigwait(&stop_signals, &sig);
  cgrpc_server_shutdown(server, 5000);
  cgrpc_server_del(server);
  return 0;
}
