/* SPDX-License-Identifier: MIT */
/* Built with `cc pkgconfig_main.c $(pkg-config --cflags --libs cgrpc)`. */
#include <stdio.h>
#include <string.h>

#include <cgrpc/cgrpc.h>

int main(void) {
  cgrpc_server *server = NULL;
  const char *name = cgrpc_status_code_name(CGRPC_STATUS_NOT_FOUND);
  int rv;

  if (strcmp(name, "NOT_FOUND") != 0) {
    fprintf(stderr, "cgrpc_status_code_name: got %s\n", name);
    return 1;
  }
  rv = cgrpc_server_new(&server, NULL);
  if (rv != 0) {
    fprintf(stderr, "cgrpc_server_new: %s\n", cgrpc_strerror(rv));
    return 1;
  }
  cgrpc_server_del(server);
  printf("cgrpc %s via pkg-config: ok\n", CGRPC_VERSION);
  return 0;
}
