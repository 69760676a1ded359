/* SPDX-License-Identifier: MIT */
/*
 * The Greeter client from the gRPC tutorials.
 *
 *   greeter_client [--target=HOST:PORT] [--name=NAME]
 *
 * Prints the server's greeting and exits 0, or prints the status and exits 1.
 */
#include <stdio.h>
#include <string.h>

#include <cgrpc/cgrpc.h>

#include "helloworld.grpc-c.h"

int main(int argc, char **argv) {
  const char *target = "localhost:50051";
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
    } else {
      fprintf(stderr, "usage: %s [--target=HOST:PORT] [--name=NAME]\n",
              argv[0]);
      return 2;
    }
  }

  if ((rv = cgrpc_channel_new(&channel, target, NULL)) != 0) {
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
