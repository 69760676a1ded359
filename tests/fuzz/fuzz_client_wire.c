/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target for the client's response parsing: a cgrpc channel calls
 * SayHello on a fake server (this thread, on a 127.0.0.1 socket), which
 * reads the request, then answers with an empty SETTINGS frame followed by
 * the input bytes.  Headers, trailers, grpc-status, grpc-message, -bin
 * metadata and message framing are all the fuzzer's to choose.
 *
 * Input: byte 0 holds flags, the rest is sent after the SETTINGS frame.
 *   bit 0  keep the connection open after sending (clear: close it, so the
 *          client sees EOF right after the input)
 *   bit 1  call with a deadline of DEADLINE_MS
 * The stream the client opens is stream 1.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
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

#define DEADLINE_MS 50
#define WAIT_MS 1000
#define READ_MS 500
#define KEEP_OPEN_WAIT_MS 60

static int listen_fd = -1;
static char target[64];

typedef struct outcome {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int done;
} outcome;

static void on_done(cgrpc_call *call, const cgrpc_status *status,
                    ProtobufCMessage *reply, void *user_data) {
  outcome *o = user_data;
  size_t i, n;
  (void)call;
  /* Touch what the client built from the peer's bytes. */
  if (status->message)
    (void)strlen(status->message);
  n = cgrpc_metadata_array_count(status->trailing_metadata);
  for (i = 0; i < n; i++) {
    const char *key;
    const uint8_t *value;
    size_t len;
    if (cgrpc_metadata_array_at(status->trailing_metadata, i, &key, &value,
                                &len) == 0 &&
        value[len] != '\0')
      abort();
  }
  if (getenv("CGRPC_FUZZ_VERBOSE"))
    fprintf(stderr, "  status %s (%s), reply %s, %zu trailers\n",
            cgrpc_status_code_name((int)status->code),
            status->message ? status->message : "no message",
            reply ? "yes" : "no", n);
  if (reply)
    protobuf_c_message_free_unpacked(reply, NULL);
  pthread_mutex_lock(&o->lock);
  o->done = 1;
  pthread_cond_signal(&o->cond);
  pthread_mutex_unlock(&o->lock);
}

/* A fresh listener per input: a channel may reconnect after its
 * connection is closed, and such a stale connection must not be what the
 * next input accepts. */
static void listen_open(void) {
  struct sockaddr_in sa;
  socklen_t len = sizeof sa;
  listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof sa) ||
      listen(listen_fd, 16) ||
      getsockname(listen_fd, (struct sockaddr *)&sa, &len)) {
    fprintf(stderr, "fuzz_client_wire: cannot listen\n");
    abort();
  }
  snprintf(target, sizeof target, "127.0.0.1:%d", ntohs(sa.sin_port));
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_readable(int fd, int64_t end) {
  struct pollfd pfd = {fd, POLLIN, 0};
  int64_t left = end - now_ms();
  return left > 0 && poll(&pfd, 1, (int)left) == 1;
}

/* Reads the client's preface and frames until the request's END_STREAM, so
 * that stream 1 exists before the answer arrives.  Returns 0 or -1. */
static int read_request(int fd) {
  uint8_t buf[65536];
  size_t len = 0, pos = 24; /* skip the 24-byte preface */
  int64_t end = now_ms() + READ_MS;
  for (;;) {
    while (len >= pos + 9) {
      size_t flen = (size_t)buf[pos] << 16 | (size_t)buf[pos + 1] << 8 |
                    buf[pos + 2];
      uint8_t type = buf[pos + 3], flags = buf[pos + 4];
      if (len < pos + 9 + flen)
        break;
      pos += 9 + flen;
      if ((type == 0 || type == 1) && (flags & 1))
        return 0;
    }
    if (len == sizeof buf || !wait_readable(fd, end))
      return -1;
    ssize_t n = recv(fd, buf + len, sizeof buf - len, 0);
    if (n <= 0)
      return -1;
    len += (size_t)n;
  }
}

static void send_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return;
    p += w;
    n -= (size_t)w;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const uint8_t settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
  cgrpc_channel_options *copts = NULL;
  cgrpc_channel *ch = NULL;
  cgrpc_call_options opts = {.timeout_ms = 0};
  Helloworld__HelloRequest req = HELLOWORLD__HELLO_REQUEST__INIT;
  outcome o = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  int flags, fd = -1;
  int64_t end;

  if (size < 1)
    return 0;
  listen_open();
  flags = data[0];
  data++;
  size--;

  if (cgrpc_channel_options_new(&copts) != 0) {
    close(listen_fd);
    return 0;
  }
  cgrpc_channel_options_set_max_receive_message_length(copts, 65536);
  if (cgrpc_channel_new(&ch, target, copts) != 0) {
    cgrpc_channel_options_del(copts);
    close(listen_fd);
    return 0;
  }
  cgrpc_channel_options_del(copts);
  req.name = "fuzz";
  if (flags & 2)
    opts.timeout_ms = DEADLINE_MS;
  if (helloworld__greeter__say_hello__start(ch, &req, &opts, on_done, &o,
                                            NULL) != 0) {
    cgrpc_channel_del(ch);
    close(listen_fd);
    return 0;
  }

  end = now_ms() + READ_MS;
  if (wait_readable(listen_fd, end))
    fd = accept(listen_fd, NULL, NULL);
  if (fd >= 0 && read_request(fd) == 0) {
    send_all(fd, settings, sizeof settings);
    send_all(fd, data, size);
    if (!(flags & 1)) {
      close(fd);
      fd = -1;
    }
  }

  /* Bounded wait for the outcome; channel_del cancels what is left.  With
   * the connection kept open the call may never end on its own. */
  end = now_ms() + ((flags & 1) ? KEEP_OPEN_WAIT_MS : WAIT_MS);
  pthread_mutex_lock(&o.lock);
  while (!o.done) {
    struct timespec ts;
    int64_t left = end - now_ms();
    if (left <= 0)
      break;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += left / 1000;
    ts.tv_nsec += (left % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&o.cond, &o.lock, &ts);
  }
  pthread_mutex_unlock(&o.lock);
  cgrpc_channel_del(ch);
  if (fd >= 0)
    close(fd);
  close(listen_fd);
  /* channel_del ran the callback (CANCELLED) if it had not run yet. */
  if (!o.done)
    abort();
  return 0;
}
