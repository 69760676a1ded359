/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target for the whole server: a Greeter server runs in-process on
 * 127.0.0.1, and every input is sent to it over a fresh TCP connection.
 *
 * Input: byte 0 holds flags, the rest is sent as it is.
 *   bit 0  send the HTTP/2 client preface first (clear: the input must
 *          bring its own, so bad prefaces are covered too)
 *   bit 1  use the server with a worker pool (clear: handlers run inline
 *          on the loop, max_workers 0)
 *   bit 2  keep our side open and wait for SILENCE_MS of silence (clear:
 *          half-close right after sending, so the server sees EOF)
 * Then everything the server answers is read until it closes the
 * connection, goes quiet, or MAX_WAIT_MS pass.
 *
 * What this finds: crashes and sanitizer reports in the server's threads,
 * hangs (libFuzzer -timeout), and leaks when the servers are deleted at
 * exit.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cgrpc/cgrpc.h>

#include "helloworld.grpc-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SILENCE_MS 20
#define MAX_WAIT_MS 300
/* Small, so that oversized-message paths are cheap to reach. */
#define MAX_RECV 65536

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static cgrpc_server *servers[2];
static int ports[2];

/* SayHello: the tutorial's handler. */
static cgrpc_status_code say_hello(cgrpc_server_ctx *ctx,
                                   const Helloworld__HelloRequest *request,
                                   Helloworld__HelloReply *reply,
                                   void *user_data) {
  (void)user_data;
  reply->message = cgrpc_server_ctx_printf(ctx, "Hello, %s!", request->name);
  return CGRPC_STATUS_OK;
}

/* SayHelloAgain: echoes the request metadata back as initial and trailing
 * metadata, and fails with the name as message when it starts with "fail",
 * so that metadata and grpc-message encoding see peer-chosen bytes. */
static cgrpc_status_code say_hello_again(cgrpc_server_ctx *ctx,
                                         const Helloworld__HelloRequest *request,
                                         Helloworld__HelloReply *reply,
                                         void *user_data) {
  const cgrpc_metadata_array *md = cgrpc_server_ctx_metadata(ctx);
  size_t i, n = cgrpc_metadata_array_count(md);
  (void)user_data;
  for (i = 0; i < n; i++) {
    const char *key;
    const uint8_t *value;
    size_t len;
    size_t klen;
    if (cgrpc_metadata_array_at(md, i, &key, &value, &len) != 0)
      continue;
    klen = strlen(key);
    if (klen >= 4 && strcmp(key + klen - 4, "-bin") == 0) {
      (void)cgrpc_server_ctx_add_initial_metadata_bin(ctx, key, value, len);
      (void)cgrpc_server_ctx_add_trailing_metadata_bin(ctx, key, value, len);
    } else {
      (void)cgrpc_server_ctx_add_initial_metadata(ctx, key,
                                                  (const char *)value);
      (void)cgrpc_server_ctx_add_trailing_metadata(ctx, key,
                                                   (const char *)value);
    }
  }
  (void)cgrpc_server_ctx_time_remaining_ms(ctx);
  (void)cgrpc_server_ctx_is_cancelled(ctx);
  (void)cgrpc_server_ctx_authority(ctx);
  (void)cgrpc_server_ctx_peer(ctx);
  if (request->name && strncmp(request->name, "fail", 4) == 0)
    return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_INVALID_ARGUMENT, "%s",
                                 request->name);
  reply->message =
      cgrpc_server_ctx_printf(ctx, "Hello again, %s!", request->name);
  return CGRPC_STATUS_OK;
}

static const Helloworld__Greeter_Servicer greeter = {
    .say_hello = say_hello,
    .say_hello_again = say_hello_again,
};

static void stop_servers(void) {
  int i;
  for (i = 0; i < 2; i++) {
    cgrpc_server_del(servers[i]);
    servers[i] = NULL;
  }
}

static int start_server(int i, int max_workers) {
  cgrpc_server_options *opts = NULL;
  int rv;
  if ((rv = cgrpc_server_options_new(&opts)) != 0)
    return rv;
  cgrpc_server_options_set_max_workers(opts, max_workers);
  cgrpc_server_options_set_max_receive_message_length(opts, MAX_RECV);
  cgrpc_server_options_set_max_concurrent_streams(opts, 16);
  rv = cgrpc_server_new(&servers[i], opts);
  cgrpc_server_options_del(opts);
  if (rv == 0)
    rv = cgrpc_server_add_insecure_port(servers[i], "127.0.0.1:0", &ports[i]);
  if (rv == 0)
    rv = helloworld__greeter__servicer__register(servers[i], &greeter, NULL);
  if (rv == 0)
    rv = cgrpc_server_start(servers[i]);
  return rv;
}

static void init_once(void) {
  static int done;
  if (done)
    return;
  done = 1;
  if (start_server(0, 0) != 0 || start_server(1, 2) != 0) {
    fprintf(stderr, "fuzz_server_wire: cannot start the servers\n");
    abort();
  }
  atexit(stop_servers);
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends all of |p|; returns -1 once the server has gone away. */
static int send_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* With CGRPC_FUZZ_VERBOSE set, prints the frame headers the server sent,
 * to check what a seed does. */
static void trace_frames(const uint8_t *p, size_t n) {
  size_t pos = 0;
  while (n - pos >= 9) {
    size_t len = (size_t)p[pos] << 16 | (size_t)p[pos + 1] << 8 | p[pos + 2];
    fprintf(stderr, "  frame type %u flags 0x%02x stream %u len %zu\n",
            p[pos + 3], p[pos + 4],
            (unsigned)((uint32_t)(p[pos + 5] & 0x7f) << 24 |
                       (uint32_t)p[pos + 6] << 16 |
                       (uint32_t)p[pos + 7] << 8 | p[pos + 8]),
            len);
    if (n - pos - 9 < len)
      break;
    if ((p[pos + 3] == 3 && len == 4) || (p[pos + 3] == 7 && len >= 8)) {
      const uint8_t *e = p + pos + 9 + (p[pos + 3] == 7 ? 4 : 0);
      fprintf(stderr, "    error code %u\n",
              (unsigned)((uint32_t)e[0] << 24 | (uint32_t)e[1] << 16 |
                         (uint32_t)e[2] << 8 | e[3]));
    }
    pos += 9 + len;
  }
}

/* Reads until EOF, an error, |silence_ms| without data, or MAX_WAIT_MS. */
static void drain(int fd, int silence_ms) {
  static uint8_t buf[1 << 16];
  int64_t end = now_ms() + MAX_WAIT_MS;
  size_t len = 0;
  for (;;) {
    struct pollfd pfd = {fd, POLLIN, 0};
    int64_t left = end - now_ms();
    ssize_t r;
    if (left <= 0)
      break;
    r = poll(&pfd, 1, left < silence_ms ? (int)left : silence_ms);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    /* Keep the first 64 KiB for the trace, discard the rest. */
    r = recv(fd, buf + (len < sizeof buf ? len : 0),
             len < sizeof buf ? sizeof buf - len : sizeof buf, 0);
    if (r <= 0)
      break;
    if (len < sizeof buf)
      len += (size_t)r;
  }
  if (getenv("CGRPC_FUZZ_VERBOSE"))
    trace_frames(buf, len < sizeof buf ? len : sizeof buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct sockaddr_in sa;
  int fd, one = 1, flags;
  if (size < 1)
    return 0;
  init_once();
  flags = data[0];
  data++;
  size--;

  fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return 0;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons((uint16_t)ports[(flags >> 1) & 1]);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return 0;
  }
  if (((flags & 1) == 0 ||
       send_all(fd, (const uint8_t *)preface, sizeof preface - 1) == 0) &&
      send_all(fd, data, size) == 0) {
    if (flags & 4) {
      drain(fd, SILENCE_MS);
    } else {
      shutdown(fd, SHUT_WR);
      drain(fd, MAX_WAIT_MS);
    }
  }
  close(fd);
  return 0;
}
