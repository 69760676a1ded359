/* SPDX-License-Identifier: MIT */
/*
 * Built against an installed cgrpc: the public header, the generated Greeter
 * code and the library.  Creates a server and a channel and deletes them,
 * then TLS credentials (which load OpenSSL at run time).
 */
#include <stdio.h>

#include <cgrpc/cgrpc.h>

#include "helloworld.grpc-c.h"

static cgrpc_status_code say_hello(cgrpc_server_ctx *ctx,
                                   const Helloworld__HelloRequest *req,
                                   Helloworld__HelloReply *reply,
                                   void *user_data) {
  (void)user_data;
  reply->message = cgrpc_server_ctx_printf(ctx, "Hello, %s!", req->name);
  return reply->message ? CGRPC_STATUS_OK : CGRPC_STATUS_RESOURCE_EXHAUSTED;
}

int main(void) {
  Helloworld__Greeter_Servicer greeter = {.say_hello = say_hello};
  cgrpc_server *server = NULL;
  cgrpc_channel *channel = NULL;
  cgrpc_channel_credentials *creds = NULL;
  int rv;

  rv = cgrpc_server_new(&server, NULL);
  if (rv != 0) {
    fprintf(stderr, "cgrpc_server_new: %s\n", cgrpc_strerror(rv));
    return 1;
  }
  rv = helloworld__greeter__servicer__register(server, &greeter, NULL);
  if (rv != 0) {
    fprintf(stderr, "register: %s\n", cgrpc_strerror(rv));
    cgrpc_server_del(server);
    return 1;
  }
  rv = cgrpc_channel_new(&channel, "localhost:50051", NULL);
  if (rv != 0) {
    fprintf(stderr, "cgrpc_channel_new: %s\n", cgrpc_strerror(rv));
    cgrpc_server_del(server);
    return 1;
  }
  cgrpc_channel_del(channel);
  cgrpc_server_del(server);
  rv = cgrpc_channel_credentials_new(&creds);
  if (rv != 0) {
    fprintf(stderr, "cgrpc_channel_credentials_new: %s (%s)\n",
            cgrpc_strerror(rv),
            cgrpc_tls_load_error() ? cgrpc_tls_load_error() : "?");
    return 1;
  }
  cgrpc_channel_credentials_del(creds);
  printf("cgrpc %s: server, channel and TLS credentials created and deleted\n",
         CGRPC_VERSION);
  return 0;
}
