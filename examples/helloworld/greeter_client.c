/* SPDX-License-Identifier: MIT */
/*
 * The Greeter client from the gRPC tutorials.
 *
 *   greeter_client [--target=TARGET] [--name=NAME]
 *                  [--count=N [--interval_ms=M]] [--timeout_ms=T]
 *                  [--service_config=JSON] [--keepalive_time_ms=K]
 *                  [--lb=pick_first|round_robin] [--wait_for_ready]
 *                  [--ca_file=F [--server_host_override=NAME]
 *                   [--client_cert_file=F --client_key_file=F]
 *                   [--access_token=T]]
 *
 * TARGET is any channel target: host:port (default localhost:50051),
 * dns:, ipv4:, ipv6:, unix:.  --ca_file turns TLS on, trusting the CAs in
 * F; --server_host_override checks the server's certificate for NAME
 * instead of the target's host; the client certificate and key make it
 * mutual TLS; --access_token sends "authorization: Bearer T" with the call
 * (greeter_server --require_token=T).  --count makes N calls on the one
 * channel, M milliseconds apart (default 0), each with a deadline of T
 * milliseconds when --timeout_ms is given.  --service_config gives the
 * channel a service config (gRPC's JSON; a wrong one is refused with the
 * field that is wrong).  --keepalive_time_ms sends a keepalive PING after
 * K ms without a word from the server (at least 10000).  --lb picks the
 * load-balancing policy for a target with several addresses
 * (--target=ipv4:127.0.0.1:50051,127.0.0.1:50052: round_robin spreads the
 * calls, pick_first keeps to the first address that answers).
 * --wait_for_ready makes each call wait (until its deadline) for a server
 * while none can be reached, instead of failing at once.  Prints one line
 * per call: the server's greeting (stdout), or the status name and its
 * message (stderr); exits 0 when every call succeeded, else 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
      ((cert || key) && (rv = cgrpc_channel_credentials_set_cert_files(
                             creds, cert ? cert : "", key ? key : "")) != 0) ||
      (host_override &&
       (rv = cgrpc_channel_options_set_ssl_target_name_override(
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

/* Parses a whole decimal number of at least |min| into |*out|; returns 1,
 * or 0 when |s| is not one. */
static int parse_number(const char *s, long min, long *out) {
  char *end;
  long v = strtol(s, &end, 10);
  if (end == s || *end || v < min)
    return 0;
  *out = v;
  return 1;
}

int main(int argc, char **argv) {
  const char *target = "localhost:50051";
  const char *ca = NULL, *host_override = NULL, *cert = NULL, *key = NULL;
  const char *token = NULL, *service_config = NULL, *lb = NULL;
  cgrpc_channel_options *opts = NULL;
  Helloworld__HelloRequest request = HELLOWORLD__HELLO_REQUEST__INIT;
  cgrpc_call_options call_opts = {0};
  cgrpc_channel *channel = NULL;
  long count = 1, interval_ms = 0, timeout_ms = 0, keepalive_ms = 0;
  long failed = 0;
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
    } else if (strncmp(argv[i], "--lb=", 5) == 0) {
      lb = argv[i] + 5;
    } else if (strcmp(argv[i], "--wait_for_ready") == 0) {
      call_opts.wait_for_ready = CGRPC_WAIT_FOR_READY;
    } else if (strncmp(argv[i], "--service_config=", 17) == 0) {
      service_config = argv[i] + 17;
    } else if (strncmp(argv[i], "--count=", 8) == 0 &&
               parse_number(argv[i] + 8, 1, &count)) {
      /* parsed */
    } else if (strncmp(argv[i], "--interval_ms=", 14) == 0 &&
               parse_number(argv[i] + 14, 0, &interval_ms)) {
      /* parsed */
    } else if (strncmp(argv[i], "--keepalive_time_ms=", 20) == 0 &&
               parse_number(argv[i] + 20, 1, &keepalive_ms)) {
      /* set below, once the options exist */
    } else if (strncmp(argv[i], "--timeout_ms=", 13) == 0 &&
               parse_number(argv[i] + 13, 1, &timeout_ms)) {
      call_opts.timeout_ms = timeout_ms;
    } else {
      fprintf(stderr,
              "usage: %s [--target=TARGET] [--name=NAME] [--count=N "
              "[--interval_ms=M]] [--timeout_ms=T] [--service_config=JSON] "
              "[--keepalive_time_ms=K] [--lb=pick_first|round_robin] "
              "[--wait_for_ready] [--ca_file=F "
              "[--server_host_override=NAME] [--client_cert_file=F "
              "--client_key_file=F] [--access_token=T]]\n"
              "  (N, T and K positive, M at least 0)\n",
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
  if ((service_config || keepalive_ms > 0 || lb) && !opts &&
      (rv = cgrpc_channel_options_new(&opts)) != 0) {
    fprintf(stderr, "greeter_client: %s\n", cgrpc_strerror(rv));
    return 1;
  }
  if (keepalive_ms > 0)
    cgrpc_channel_options_set_keepalive_time_ms(opts, keepalive_ms);
  if (lb && cgrpc_channel_options_set_lb_policy(opts, lb) != 0) {
    fprintf(stderr, "greeter_client: --lb=%s: pick_first or round_robin\n",
            lb);
    cgrpc_channel_options_del(opts);
    return 2;
  }
  if (service_config) {
    char why[300];
    if (cgrpc_channel_options_set_service_config(opts, service_config, why,
                                                 sizeof why) != 0) {
      fprintf(stderr, "greeter_client: --service_config: %s\n", why);
      cgrpc_channel_options_del(opts);
      return 2;
    }
  }
  rv = cgrpc_channel_new(&channel, target, opts);
  cgrpc_channel_options_del(opts);
  if (rv != 0) {
    fprintf(stderr, "greeter_client: %s: %s\n", target, cgrpc_strerror(rv));
    return 1;
  }
  for (long n = 0; n < count; n++) {
    Helloworld__HelloReply *reply = NULL;
    cgrpc_status status = {0};
    if (n > 0 && interval_ms > 0) {
      struct timespec ts = {interval_ms / 1000, (interval_ms % 1000) * 1000000};
      nanosleep(&ts, NULL);
    }
    if (helloworld__greeter__say_hello__call(channel, &request, &reply,
                                             &call_opts,
                                             &status) == CGRPC_STATUS_OK) {
      printf("%s\n", reply->message);
      fflush(stdout);
      protobuf_c_message_free_unpacked(&reply->base, NULL);
    } else {
      fprintf(stderr, "greeter_client: RPC failed: %s: %s\n",
              cgrpc_status_code_name(status.code),
              status.message ? status.message : "");
      failed++;
    }
    cgrpc_status_clear(&status);
  }
  rv = failed ? 1 : 0;
  cgrpc_channel_del(channel);
  return rv;
}
