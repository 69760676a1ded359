/* SPDX-License-Identifier: MIT */
/*
 * The Greeter server from the gRPC tutorials.
 *
 *   greeter_server [--port=N | --listen=ADDR ...] [--max_workers=N]
 *                  [--name=S]
 *                  [--tls_cert_file=F --tls_key_file=F [--client_ca_file=F]]
 *                  [--require_token=T]
 *
 * --port listens on [::]:N (default 50051); --listen (repeatable) on any
 * address form instead: host:port, [::]:port, unix:/path, unix-abstract:n.
 * With a certificate and key every address is TLS; --client_ca_file then
 * requires client certificates signed by those CAs (mutual TLS).
 * --require_token answers UNAUTHENTICATED to calls without the metadata
 * "authorization: Bearer T" (greeter_client --access_token=T).
 * --name=S adds " (from S)" to every greeting, so that a client that
 * spreads its calls over several servers shows which one answered.
 * --max_workers caps the handler thread pool,
 * which grows on demand (default: the library's, 1024); 0 runs handlers on
 * the server's own threads, which suits handlers like these that never
 * block.
 *
 * Server reflection is on, so tools need no .proto file:
 *   grpcurl -plaintext localhost:50051 describe helloworld.Greeter
 * and so is health checking (grpc.health.v1.Health), for probes:
 *   grpc_health_probe -addr=localhost:50051
 *
 * Stops cleanly on SIGINT or SIGTERM: the health service turns
 * NOT_SERVING, then calls in flight get up to 5 s to finish.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cgrpc/cgrpc.h>

#include "helloworld.grpc-c.h"

/* What the handlers are told by the flags. */
typedef struct greeter_config {
  const char *bearer; /* "Bearer T" from --require_token=T, or NULL */
  const char *name;   /* --name=S, or NULL */
} greeter_config;

/* Whether the call carries the "authorization" value |cfg| asks for. */
static int authorized(cgrpc_server_ctx *ctx, const greeter_config *cfg) {
  const char *got;
  if (!cfg->bearer)
    return 1;
  got = cgrpc_metadata_array_get(cgrpc_server_ctx_metadata(ctx),
                                 "authorization", NULL);
  return got && strcmp(got, cfg->bearer) == 0;
}

/* The greeting |fmt| (one %s: the name) to |request|'s name; with --name,
 * and which server says it. */
#define GREET(ctx, fmt, request, cfg)                                          \
  ((cfg)->name ? cgrpc_server_ctx_printf((ctx), fmt " (from %s)",              \
                                         (request)->name, (cfg)->name)         \
               : cgrpc_server_ctx_printf((ctx), fmt, (request)->name))

static cgrpc_status_code say_hello(cgrpc_server_ctx *ctx,
                                   const Helloworld__HelloRequest *request,
                                   Helloworld__HelloReply *reply,
                                   void *user_data) {
  const greeter_config *cfg = user_data;
  if (!authorized(ctx, cfg))
    return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_UNAUTHENTICATED,
                                 "missing or wrong bearer token");
  reply->message = GREET(ctx, "Hello, %s!", request, cfg);
  return reply->message ? CGRPC_STATUS_OK : CGRPC_STATUS_RESOURCE_EXHAUSTED;
}

static cgrpc_status_code
say_hello_again(cgrpc_server_ctx *ctx, const Helloworld__HelloRequest *request,
                Helloworld__HelloReply *reply, void *user_data) {
  const greeter_config *cfg = user_data;
  if (!authorized(ctx, cfg))
    return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_UNAUTHENTICATED,
                                 "missing or wrong bearer token");
  reply->message = GREET(ctx, "Hello again, %s!", request, cfg);
  return reply->message ? CGRPC_STATUS_OK : CGRPC_STATUS_RESOURCE_EXHAUSTED;
}

#define MAX_LISTEN 8

/* Server credentials from the TLS flags, or NULL for plaintext. */
static int tls_credentials(cgrpc_server_credentials **creds, const char *cert,
                           const char *key, const char *client_ca) {
  int rv;
  *creds = NULL;
  if (!cert && !key && !client_ca)
    return 0;
  if (!cert || !key)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if ((rv = cgrpc_server_credentials_new(creds)) != 0 ||
      (rv = cgrpc_server_credentials_set_cert_files(*creds, cert, key)) != 0 ||
      (client_ca && ((rv = cgrpc_server_credentials_set_client_ca_file(
                          *creds, client_ca)) != 0 ||
                     (rv = cgrpc_server_credentials_set_client_auth(
                          *creds, CGRPC_CLIENT_AUTH_REQUIRE)) != 0))) {
    cgrpc_server_credentials_del(*creds);
    *creds = NULL;
    return rv;
  }
  return 0;
}

int main(int argc, char **argv) {
  Helloworld__Greeter_Servicer greeter = {
      .say_hello = say_hello,
      .say_hello_again = say_hello_again,
  };
  cgrpc_server_options *options = NULL;
  cgrpc_server_credentials *creds = NULL;
  cgrpc_server *server = NULL;
  const char *listen[MAX_LISTEN];
  const char *cert = NULL, *key = NULL, *client_ca = NULL;
  char addr[64], bearer_buf[256];
  greeter_config config = {NULL, NULL};
  sigset_t stop_signals;
  int port = 50051, first_port = -1, max_workers = -1, n_listen = 0, sig, rv;

  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--port=", 7) == 0) {
      port = atoi(argv[i] + 7);
    } else if (strncmp(argv[i], "--listen=", 9) == 0 && n_listen < MAX_LISTEN) {
      listen[n_listen++] = argv[i] + 9;
    } else if (strncmp(argv[i], "--max_workers=", 14) == 0) {
      max_workers = atoi(argv[i] + 14);
    } else if (strncmp(argv[i], "--tls_cert_file=", 16) == 0) {
      cert = argv[i] + 16;
    } else if (strncmp(argv[i], "--tls_key_file=", 15) == 0) {
      key = argv[i] + 15;
    } else if (strncmp(argv[i], "--client_ca_file=", 17) == 0) {
      client_ca = argv[i] + 17;
    } else if (strncmp(argv[i], "--require_token=", 16) == 0 &&
               argv[i][16] != '\0') {
      snprintf(bearer_buf, sizeof bearer_buf, "Bearer %s", argv[i] + 16);
      config.bearer = bearer_buf;
    } else if (strncmp(argv[i], "--name=", 7) == 0 && argv[i][7] != '\0') {
      config.name = argv[i] + 7;
    } else {
      fprintf(stderr,
              "usage: %s [--port=N | --listen=ADDR ...] [--max_workers=N] "
              "[--name=S] [--tls_cert_file=F --tls_key_file=F "
              "[--client_ca_file=F]] [--require_token=T]\n",
              argv[0]);
      return 2;
    }
  }
  if ((rv = tls_credentials(&creds, cert, key, client_ca)) != 0) {
    fprintf(stderr, "greeter_server: TLS flags: %s%s\n", cgrpc_strerror(rv),
            rv == CGRPC_ERR_INVALID_ARGUMENT
                ? " (a certificate needs its key, and client CAs need both)"
                : "");
    return 2;
  }
  if (n_listen == 0) {
    snprintf(addr, sizeof addr, "[::]:%d", port);
    listen[n_listen++] = addr;
  }

  /* Block the stop signals in every thread; main waits for them below. */
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

  if ((rv = cgrpc_server_options_new(&options)) != 0) {
    fprintf(stderr, "greeter_server: %s\n", cgrpc_strerror(rv));
    return 1;
  }
  if (max_workers >= 0)
    cgrpc_server_options_set_max_workers(options, max_workers);
  rv = cgrpc_server_new(&server, options);
  cgrpc_server_options_del(options);
  for (int i = 0; rv == 0 && i < n_listen; i++) {
    int bound = 0;
    rv = creds ? cgrpc_server_add_secure_port(server, listen[i], creds, &bound)
               : cgrpc_server_add_insecure_port(server, listen[i], &bound);
    if (rv != 0)
      fprintf(stderr, "greeter_server: cannot listen on %s\n", listen[i]);
    if (first_port < 0)
      first_port = bound;
  }
  cgrpc_server_credentials_del(creds); /* the server keeps its own */
  if (rv != 0 ||
      (rv = helloworld__greeter__servicer__register(server, &greeter,
                                                    &config)) != 0 ||
      (rv = cgrpc_server_enable_reflection(server)) != 0 ||
      (rv = cgrpc_server_enable_health(server)) != 0 ||
      (rv = cgrpc_server_start(server)) != 0) {
    fprintf(stderr, "greeter_server: %s\n", cgrpc_strerror(rv));
    cgrpc_server_del(server);
    return 1;
  }
  printf("Server started, listening on %d\n", first_port);
  fflush(stdout);

  sigwait(&stop_signals, &sig);
  cgrpc_server_shutdown(server, 5000);
  cgrpc_server_del(server);
  return 0;
}
