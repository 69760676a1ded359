/* SPDX-License-Identifier: MIT */
/*
 * cgrpc's server of bench.Bench (a bidi echo, for the streaming benchmark)
 * and helloworld.Greeter (for the handshake benchmark).
 *
 *   cgrpc_bench_server [--port=N] [--max_workers=N]
 *                      [--tls_cert_file=F --tls_key_file=F
 *                       [--client_ca_file=F]]
 *
 * Port 0 picks one.  --max_workers >= 1: handlers run on that many worker
 * threads; 0 runs them on the loop threads, which suits only the Greeter
 * (the echo handler blocks).  The TLS flags are greeter_server's: with a
 * certificate and key the port is TLS; --client_ca_file then requires
 * client certificates signed by those CAs (mutual TLS).
 *
 * The echo handler is the plain blocking form a user would write: it
 * receives a message and sends it back until the client half-closes.  The
 * Greeter answers as greeter_server does; when the request carries the
 * header "bench-tls-info" (the load clients send it over TLS) the reply's
 * headers carry the server's view of the connection: bench-tls-version,
 * bench-tls-cipher and bench-tls-reused ("1" when the client resumed a
 * session).  Prints "Server started, listening on PORT" and stops on
 * SIGINT or SIGTERM.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cgrpc/cgrpc.h>

#include "bench.grpc-c.h"
#include "helloworld.grpc-c.h"

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

/* The reply headers for "bench-tls-info" (nothing on plaintext). */
static int add_tls_info(cgrpc_server_ctx *ctx) {
  const char *version = cgrpc_server_ctx_tls_version(ctx);
  const char *cipher = cgrpc_server_ctx_tls_cipher(ctx);
  int rv;

  if (version == NULL) {
    return 0;
  }
  if ((rv = cgrpc_server_ctx_add_initial_metadata(ctx, "bench-tls-version",
                                                  version)) != 0 ||
      (rv = cgrpc_server_ctx_add_initial_metadata(
           ctx, "bench-tls-cipher", cipher ? cipher : "")) != 0) {
    return rv;
  }
  return cgrpc_server_ctx_add_initial_metadata(
      ctx, "bench-tls-reused",
      cgrpc_server_ctx_tls_session_reused(ctx) ? "1" : "0");
}

static cgrpc_status_code say_hello(cgrpc_server_ctx *ctx,
                                   const Helloworld__HelloRequest *request,
                                   Helloworld__HelloReply *reply,
                                   void *user_data) {
  size_t len;

  (void)user_data;
  if (cgrpc_metadata_array_get(cgrpc_server_ctx_metadata(ctx),
                               "bench-tls-info", &len) != NULL &&
      add_tls_info(ctx) != 0) {
    return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_INTERNAL,
                                 "cannot add the TLS info headers");
  }
  reply->message = cgrpc_server_ctx_printf(ctx, "Hello, %s!", request->name);
  return CGRPC_STATUS_OK;
}

/* Server credentials from the TLS flags, or NULL for plaintext. */
static int tls_credentials(cgrpc_server_credentials **creds, const char *cert,
                           const char *key, const char *client_ca) {
  int rv;

  *creds = NULL;
  if (!cert && !key && !client_ca) {
    return 0;
  }
  if (!cert || !key) {
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  if ((rv = cgrpc_server_credentials_new(creds)) != 0 ||
      (rv = cgrpc_server_credentials_set_cert_files(*creds, cert, key)) != 0 ||
      (client_ca &&
       ((rv = cgrpc_server_credentials_set_client_ca_file(*creds, client_ca)) !=
            0 ||
        (rv = cgrpc_server_credentials_set_client_auth(
             *creds, CGRPC_CLIENT_AUTH_REQUIRE)) != 0))) {
    cgrpc_server_credentials_del(*creds);
    *creds = NULL;
    return rv;
  }
  return 0;
}

int main(int argc, char **argv) {
  Bench__Bench_Servicer servicer = {.stream = stream};
  Helloworld__Greeter_Servicer greeter = {.say_hello = say_hello};
  cgrpc_server_options *opts = NULL;
  cgrpc_server_credentials *creds = NULL;
  cgrpc_server *server = NULL;
  const char *cert = NULL, *key = NULL, *client_ca = NULL;
  char addr[64];
  sigset_t stop_signals;
  int port = 50061, workers = -1, sig, rv;

  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--port=", 7) == 0) {
      port = atoi(argv[i] + 7);
    } else if (strncmp(argv[i], "--max_workers=", 14) == 0) {
      workers = atoi(argv[i] + 14);
    } else if (strncmp(argv[i], "--tls_cert_file=", 16) == 0) {
      cert = argv[i] + 16;
    } else if (strncmp(argv[i], "--tls_key_file=", 15) == 0) {
      key = argv[i] + 15;
    } else if (strncmp(argv[i], "--client_ca_file=", 17) == 0) {
      client_ca = argv[i] + 17;
    } else {
      fprintf(stderr,
              "usage: %s [--port=N] [--max_workers=N] [--tls_cert_file=F "
              "--tls_key_file=F [--client_ca_file=F]]\n",
              argv[0]);
      return 2;
    }
  }
  if ((rv = tls_credentials(&creds, cert, key, client_ca)) != 0) {
    if (rv == CGRPC_ERR_INVALID_ARGUMENT) {
      fprintf(stderr, "cgrpc_bench_server: TLS flags: a certificate needs its "
                      "key, and client CAs need both\n");
    } else {
      fprintf(stderr,
              "cgrpc_bench_server: TLS flags: %s: %s, %s%s%s cannot be read, "
              "do not parse, or the key does not match the certificate\n",
              cgrpc_err_name(rv), cert, key, client_ca ? " or " : "",
              client_ca ? client_ca : "");
    }
    return 2;
  }

  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

  if ((rv = cgrpc_server_options_new(&opts)) != 0) {
    fprintf(stderr, "cgrpc_bench_server: %s\n", cgrpc_strerror(rv));
    cgrpc_server_credentials_del(creds);
    return 1;
  }
  if (workers >= 0) {
    cgrpc_server_options_set_max_workers(opts, workers);
  }
  snprintf(addr, sizeof addr, "[::]:%d", port);
  if ((rv = cgrpc_server_new(&server, opts)) != 0 ||
      (rv = creds ? cgrpc_server_add_secure_port(server, addr, creds, &port)
                  : cgrpc_server_add_insecure_port(server, addr, &port)) != 0 ||
      (rv = bench__bench__servicer__register(server, &servicer, NULL)) != 0 ||
      (rv = helloworld__greeter__servicer__register(server, &greeter, NULL)) !=
          0 ||
      (rv = cgrpc_server_start(server)) != 0) {
    fprintf(stderr, "cgrpc_bench_server: %s\n", cgrpc_strerror(rv));
    cgrpc_server_del(server);
    cgrpc_server_options_del(opts);
    cgrpc_server_credentials_del(creds);
    return 1;
  }
  cgrpc_server_options_del(opts);
  cgrpc_server_credentials_del(creds); /* the server keeps its own */
  printf("Server started, listening on %d\n", port);
  fflush(stdout);

  sigwait(&stop_signals, &sig);
  cgrpc_server_shutdown(server, 5000);
  cgrpc_server_del(server);
  return 0;
}
