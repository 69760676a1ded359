/* SPDX-License-Identifier: MIT */
/*
 * The Greeter client with its own address list (cgrpc_resolver): the
 * channel's target is "static:///greeter", and the addresses come from the
 * command line or from a file that the client reads again whenever it
 * changes.
 *
 *   greeter_client_resolver [--file=PATH] [--count=N] [--interval_ms=M]
 *                           [--lb=pick_first|round_robin] [ADDRESS...]
 *
 * ADDRESS is "1.2.3.4:50051", "[::1]:50051" or "unix:/path".  PATH holds
 * one address a line ('#' starts a comment); an empty file leaves no
 * address, and the calls fail with UNAVAILABLE until it has one again.
 * Prints one line per call: the greeting, or the status and its message;
 * exits 0 when every call succeeded, else 1.
 *
 *   greeter_server --port=50051 --name=a & greeter_server --port=50052 --name=b
 * & echo 127.0.0.1:50051 > list greeter_client_resolver --file=list --count=100
 * --interval_ms=200 & echo 127.0.0.1:50052 > list        (the greetings now
 * come from b)
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, st_mtim */

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cgrpc/cgrpc.h>

#include "helloworld.grpc-c.h"

#define MAX_ADDRS 64

/* Set by the channel (on its own thread) when it would like a fresh list:
 * a connection dropped or failed.  The main loop reads the file again. */
static atomic_int asked;

static void on_resolve(cgrpc_resolver *resolver, void *user_data) {
  (void)resolver;
  (void)user_data;
  atomic_store(&asked, 1); /* the callback must not block: just note it */
}

/* Feeds the addresses in |path| to |resolver|.  Returns 0, or -1 when the
 * file cannot be read or holds a malformed address (the list stays). */
static int feed_file(cgrpc_resolver *resolver, const char *path) {
  char lines[MAX_ADDRS][256], err[300];
  const char *addrs[MAX_ADDRS];
  size_t n = 0;
  FILE *f = fopen(path, "r");
  if (!f) {
    perror(path);
    return -1;
  }
  while (n < MAX_ADDRS && fgets(lines[n], sizeof lines[n], f)) {
    char *s = lines[n] + strspn(lines[n], " \t");
    s[strcspn(s, "# \t\r\n")] = '\0';
    if (*s)
      addrs[n++] = s;
  }
  fclose(f);
  if (cgrpc_resolver_update(resolver, addrs, n, err, sizeof err) != 0) {
    fprintf(stderr, "%s: %s\n", path, err);
    return -1;
  }
  fprintf(stderr, "(%zu address%s from %s)\n", n, n == 1 ? "" : "es", path);
  return 0;
}

/* Whether |path| changed since |*last| (and records it). */
static int file_changed(const char *path, struct stat *last) {
  struct stat st;
  int changed;
  if (stat(path, &st) != 0)
    return 0;
  changed = st.st_ino != last->st_ino || st.st_size != last->st_size ||
            st.st_mtim.tv_sec != last->st_mtim.tv_sec ||
            st.st_mtim.tv_nsec != last->st_mtim.tv_nsec;
  *last = st;
  return changed;
}

int main(int argc, char **argv) {
  const char *file = NULL, *lb = NULL;
  const char *addrs[MAX_ADDRS];
  size_t n_addrs = 0;
  long count = 1, interval_ms = 0, failed = 0;
  struct stat seen = {0};
  cgrpc_resolver *resolver = NULL;
  cgrpc_channel_options *opts = NULL;
  cgrpc_channel *channel = NULL;
  Helloworld__HelloRequest request = HELLOWORLD__HELLO_REQUEST__INIT;
  char err[300];
  int rv;

  request.name = "world";
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--file=", 7) == 0) {
      file = argv[i] + 7;
    } else if (strncmp(argv[i], "--count=", 8) == 0 && atol(argv[i] + 8) > 0) {
      count = atol(argv[i] + 8);
    } else if (strncmp(argv[i], "--interval_ms=", 14) == 0) {
      interval_ms = atol(argv[i] + 14);
    } else if (strncmp(argv[i], "--lb=", 5) == 0) {
      lb = argv[i] + 5;
    } else if (argv[i][0] != '-' && n_addrs < MAX_ADDRS) {
      addrs[n_addrs++] = argv[i];
    } else {
      fprintf(stderr,
              "usage: %s [--file=PATH] [--count=N] [--interval_ms=M] "
              "[--lb=pick_first|round_robin] [ADDRESS...]\n",
              argv[0]);
      return 2;
    }
  }

  /* The resolver, and the first list: the command line's, then the
   * file's.  Either may come before the channel exists. */
  if ((rv = cgrpc_resolver_new(&resolver, "static", on_resolve, NULL)) != 0) {
    fprintf(stderr, "cgrpc_resolver_new: %s\n", cgrpc_strerror(rv));
    return 1;
  }
  if (n_addrs &&
      cgrpc_resolver_update(resolver, addrs, n_addrs, err, sizeof err) != 0) {
    fprintf(stderr, "greeter_client_resolver: %s\n", err);
    cgrpc_resolver_del(resolver);
    return 2;
  }
  if (file) {
    file_changed(file, &seen);
    feed_file(resolver, file);
  }

  if ((rv = cgrpc_channel_options_new(&opts)) != 0 ||
      (lb && (rv = cgrpc_channel_options_set_lb_policy(opts, lb)) != 0)) {
    fprintf(stderr, "channel options: %s\n", cgrpc_strerror(rv));
    cgrpc_channel_options_del(opts);
    cgrpc_resolver_del(resolver);
    return 2;
  }
  cgrpc_channel_options_set_resolver(opts, resolver);
  rv = cgrpc_channel_new(&channel, "static:///greeter", opts);
  cgrpc_channel_options_del(opts);
  if (rv != 0) {
    fprintf(stderr, "cgrpc_channel_new: %s\n", cgrpc_strerror(rv));
    cgrpc_resolver_del(resolver);
    return 1;
  }

  for (long n = 0; n < count; n++) {
    Helloworld__HelloReply *reply = NULL;
    cgrpc_status status = {0};
    if (n > 0 && interval_ms > 0) {
      struct timespec ts = {interval_ms / 1000, (interval_ms % 1000) * 1000000};
      nanosleep(&ts, NULL);
    }
    /* A new list when the file changed, or when the channel asked. */
    if (file && (file_changed(file, &seen) || atomic_exchange(&asked, 0)))
      feed_file(resolver, file);
    if (helloworld__greeter__say_hello__call(channel, &request, &reply, NULL,
                                             &status) == CGRPC_STATUS_OK) {
      printf("%s\n", reply->message);
      protobuf_c_message_free_unpacked(&reply->base, NULL);
    } else {
      printf("RPC failed: %s: %s\n", cgrpc_status_code_name(status.code),
             status.message ? status.message : "");
      failed++;
    }
    fflush(stdout);
    cgrpc_status_clear(&status);
  }

  cgrpc_channel_del(channel);
  cgrpc_resolver_del(resolver); /* after the channel, or before: either */
  return failed ? 1 : 0;
}
