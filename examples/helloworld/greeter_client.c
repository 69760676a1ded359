/* SPDX-License-Identifier: MIT */
/*
 * The Greeter client from the gRPC tutorials.
 *
 *   greeter_client [--target=TARGET] [--name=NAME]
 *                  [--ca_file=F [--server_host_override=NAME]
 *                   [--client_cert_file=F --client_key_file=F]
 *                   [--access_token=T]] [--keepalive_time_ms=K]
 *
 * TARGET is any channel target: host:port (default localhost:50051),
 * dns:, ipv4:, ipv6:, unix:.  --ca_file turns TLS on, trusting the CAs in
 * F; --server_host_override checks the server's certificate for NAME
 * instead of the target's host; the client certificate and key make it
 * mutual TLS; --access_token sends "authorization: Bearer T" with the call
 * (greeter_server --require_token=T).  --keepalive_time_ms sends a
 * keepalive PING after K ms without a word from the server (at least
 * 10000).  Prints the server's greeting and
 * exits 0, or prints the status name and its message and exits 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cgrpc/cgrpc.h>

#include "helloworld.grpc-c.h"

/* Channel options for the TLS flags (and a bearer token, which needs TLS);
 * NULL options for plaintext. */
static int tls_options(cgrpc_channel_options **opts, const char *ca,
                       const char *host_override, const char *cert,
                       const char *key, const char *token) {
  cgrpc_channel_credentials *creds = NULL;
  cgrpc_call_credentials *bearer = NULL;
  int rv;
  *opts = NULL;
  if (!ca)
    return cert || key || host_override || token ? CGRPC_ERR_INVALID_ARGUMENT
                                                 : 0;
  if ((rv = cgrpc_channel_options_new(opts)) != 0 ||
      (rv = cgrpc_channel_credentials_new(&creds)) != 0 ||
      (rv = cgrpc_channel_credentials_set_root_certs_file(creds, ca)) != 0 ||
      ((cert || key) &&
       (rv = cgrpc_channel_credentials_set_cert_files(
            creds, cert ? cert : "", key ? key : "")) != 0) ||
      (host_override && (rv = cgrpc_channel_options_set_ssl_target_name_override(
                             *opts, host_override)) != 0) ||
      (token &&
       (rv = cgrpc_call_credentials_new_access_token(&bearer, token)) != 0)) {
    cgrpc_channel_credentials_del(creds);
    return rv;
  }
  cgrpc_channel_options_set_credentials(*opts, creds);
  cgrpc_channel_options_set_call_credentials(*opts, bearer);
  cgrpc_channel_credentials_del(creds);
  cgrpc_call_credentials_del(bearer);
  return 0;
}

int main(int argc, char **argv) {
  const char *target = "localhost:50051";
  const char *ca = NULL, *host_override = NULL, *cert = NULL, *key = NULL;
  const char *token = NULL;
  long long keepalive_ms = 0;
  cgrpc_channel_options *opts = NULL;
  Helloworld__HelloRequest request = HELLOWORLD__HELLO_REQUEST__INIT;
  Helloworld__HelloReply *reply = NULL;
  cgrpc_status status = {0};
  cgrpc_channel *channel = NULL;
  int rv;

  request.name = "world";
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--target=", 9) == 0) {
      target = argv[i] + 9;
    } else if (strncmp(argv[i], "--name=", 7) == 0) {
      request.name = argv[i] + 7;
    } else if (strncmp(argv[i], "--ca_file=", 10) == 0) {
      ca = argv[i] + 10;
    } else if (strncmp(argv[i], "--server_host_override=", 23) == 0) {
      host_override = argv[i] + 23;
    } else if (strncmp(argv[i], "--client_cert_file=", 19) == 0) {
      cert = argv[i] + 19;
    } else if (strncmp(argv[i], "--client_key_file=", 18) == 0) {
      key = argv[i] + 18;
    } else if (strncmp(argv[i], "--access_token=", 15) == 0) {
      token = argv[i] + 15;
    } else if (strncmp(argv[i], "--keepalive_time_ms=", 20) == 0 &&
               (keepalive_ms = atoll(argv[i] + 20)) > 0) {
      /* set below, once the options exist */
    } else {
      fprintf(stderr,
              "usage: %s [--target=TARGET] [--name=NAME] [--ca_file=F "
              "[--server_host_override=NAME] [--client_cert_file=F "
              "--client_key_file=F] [--access_token=T]] "
              "[--keepalive_time_ms=K]\n",
              argv[0]);
      return 2;
    }
  }

  if ((rv = tls_options(&opts, ca, host_override, cert, key, token)) != 0) {
    fprintf(stderr, "greeter_client: TLS flags: %s%s\n", cgrpc_strerror(rv),
            rv == CGRPC_ERR_INVALID_ARGUMENT
                ? " (--ca_file is needed, the client certificate and key go "
                  "together, and a token is printable ASCII)"
                : "");
    return 2;
  }
  if (keepalive_ms > 0) {
    if (!opts && (rv = cgrpc_channel_options_new(&opts)) != 0) {
      fprintf(stderr, "greeter_client: %s\n", cgrpc_strerror(rv));
      return 1;
    }
    cgrpc_channel_options_set_keepalive_time_ms(opts, keepalive_ms);
  }
  rv = cgrpc_channel_new(&channel, target, opts);
  cgrpc_channel_options_del(opts);
  if (rv != 0) {
    fprintf(stderr, "greeter_client: %s: %s\n", target, cgrpc_strerror(rv));
    return 1;
  }
  if (helloworld__greeter__say_hello__call(channel, &request, &reply, NULL,
                                           &status) == CGRPC_STATUS_OK) {
    printf("%s\n", reply->message);
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  } else {
    fprintf(stderr, "greeter_client: RPC failed: %s: %s\n",
            cgrpc_status_code_name(status.code),
            status.message ? status.message : "");
  }
  rv = status.code == CGRPC_STATUS_OK ? 0 : 1;
  cgrpc_status_clear(&status);
  cgrpc_channel_del(channel);
  return rv;
}
