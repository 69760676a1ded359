/* SPDX-License-Identifier: MIT */
#include "h2raw.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- buffer ---- */

void h2raw_buf_init(h2raw_buf *b) { memset(b, 0, sizeof *b); }

void h2raw_buf_free(h2raw_buf *b) {
  free(b->data);
  h2raw_buf_init(b);
}

void h2raw_buf_reset(h2raw_buf *b) {
  b->len = 0;
  b->failed = 0;
}

static int reserve(h2raw_buf *b, size_t n) {
  size_t cap;
  uint8_t *p;
  if (b->failed)
    return -1;
  if (b->cap - b->len >= n)
    return 0;
  cap = b->cap ? b->cap : 256;
  while (cap - b->len < n)
    cap *= 2;
  p = realloc(b->data, cap);
  if (!p) {
    b->failed = 1;
    return -1;
  }
  b->data = p;
  b->cap = cap;
  return 0;
}

void h2raw_append(h2raw_buf *b, const void *p, size_t n) {
  if (n == 0 || reserve(b, n) != 0)
    return;
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

static void put8(h2raw_buf *b, uint8_t v) { h2raw_append(b, &v, 1); }

static void put16(h2raw_buf *b, uint16_t v) {
  uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
  h2raw_append(b, x, 2);
}

static void put32(h2raw_buf *b, uint32_t v) {
  uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
                  (uint8_t)v};
  h2raw_append(b, x, 4);
}

/* ---- frames ---- */

void h2raw_preface(h2raw_buf *b) {
  static const char magic[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  h2raw_append(b, magic, sizeof magic - 1);
}

void h2raw_frame(h2raw_buf *b, uint8_t type, uint8_t flags, uint32_t stream,
                 const void *payload, size_t len) {
  uint8_t hd[9];
  hd[0] = (uint8_t)(len >> 16);
  hd[1] = (uint8_t)(len >> 8);
  hd[2] = (uint8_t)len;
  hd[3] = type;
  hd[4] = flags;
  hd[5] = (uint8_t)((stream >> 24) & 0x7f); /* the reserved bit stays 0 */
  hd[6] = (uint8_t)(stream >> 16);
  hd[7] = (uint8_t)(stream >> 8);
  hd[8] = (uint8_t)stream;
  h2raw_append(b, hd, sizeof hd);
  h2raw_append(b, payload, len);
}

/* Frames the payload built in |p|, then frees |p|: each builder below only
 * writes the fields of its frame type. */
static void frame_from(h2raw_buf *b, uint8_t type, uint8_t flags,
                       uint32_t stream, h2raw_buf *p) {
  if (p->failed)
    b->failed = 1;
  else
    h2raw_frame(b, type, flags, stream, p->data, p->len);
  h2raw_buf_free(p);
}

void h2raw_settings(h2raw_buf *b, const h2raw_setting *s, size_t n) {
  h2raw_buf p;
  size_t i;
  h2raw_buf_init(&p);
  for (i = 0; i < n; i++) {
    put16(&p, s[i].id);
    put32(&p, s[i].value);
  }
  frame_from(b, H2RAW_SETTINGS, 0, 0, &p);
}

void h2raw_settings_ack(h2raw_buf *b) {
  h2raw_frame(b, H2RAW_SETTINGS, H2RAW_FLAG_ACK, 0, NULL, 0);
}

void h2raw_window_update(h2raw_buf *b, uint32_t stream, uint32_t increment) {
  h2raw_buf p;
  h2raw_buf_init(&p);
  put32(&p, increment & 0x7fffffffu);
  frame_from(b, H2RAW_WINDOW_UPDATE, 0, stream, &p);
}

/* An HPACK integer with an |nbits| prefix whose high bits are |first|
 * (RFC 7541 §5.1). */
static void hpack_int(h2raw_buf *b, uint8_t first, int nbits, size_t v) {
  size_t max = ((size_t)1 << nbits) - 1;
  if (v < max) {
    put8(b, (uint8_t)(first | v));
    return;
  }
  put8(b, (uint8_t)(first | max));
  v -= max;
  while (v >= 128) {
    put8(b, (uint8_t)(0x80 | (v & 0x7f)));
    v >>= 7;
  }
  put8(b, (uint8_t)v);
}

/* A raw (H = 0) string literal. */
static void hpack_str(h2raw_buf *b, const char *s) {
  size_t n = strlen(s);
  hpack_int(b, 0x00, 7, n);
  h2raw_append(b, s, n);
}

void h2raw_hpack_block(h2raw_buf *b, const char *const *kv) {
  for (; kv && kv[0] && kv[1]; kv += 2) {
    put8(b, 0x00); /* literal without indexing, new name (index 0) */
    hpack_str(b, kv[0]);
    hpack_str(b, kv[1]);
  }
}

void h2raw_headers(h2raw_buf *b, uint32_t stream, int end_stream,
                   const char *const *kv) {
  h2raw_buf p;
  h2raw_buf_init(&p);
  h2raw_hpack_block(&p, kv);
  frame_from(b, H2RAW_HEADERS,
             (uint8_t)(H2RAW_FLAG_END_HEADERS |
                       (end_stream ? H2RAW_FLAG_END_STREAM : 0)),
             stream, &p);
}

void h2raw_data(h2raw_buf *b, uint32_t stream, int end_stream, const void *p,
                size_t n) {
  h2raw_frame(b, H2RAW_DATA, end_stream ? H2RAW_FLAG_END_STREAM : 0, stream, p,
              n);
}

void h2raw_rst_stream(h2raw_buf *b, uint32_t stream, uint32_t error_code) {
  h2raw_buf p;
  h2raw_buf_init(&p);
  put32(&p, error_code);
  frame_from(b, H2RAW_RST_STREAM, 0, stream, &p);
}

void h2raw_ping(h2raw_buf *b, int ack, const uint8_t *opaque) {
  static const uint8_t zeros[8];
  h2raw_frame(b, H2RAW_PING, ack ? H2RAW_FLAG_ACK : 0, 0,
              opaque ? opaque : zeros, 8);
}

void h2raw_goaway(h2raw_buf *b, uint32_t last_stream, uint32_t error_code) {
  h2raw_buf p;
  h2raw_buf_init(&p);
  put32(&p, last_stream & 0x7fffffffu);
  put32(&p, error_code);
  frame_from(b, H2RAW_GOAWAY, 0, 0, &p);
}

void h2raw_grpc_message(h2raw_buf *b, const void *p, size_t n) {
  put8(b, 0);
  put32(b, (uint32_t)n);
  h2raw_append(b, p, n);
}

/* ---- sockets ---- */

static void loopback(struct sockaddr_in *sa, int port) {
  memset(sa, 0, sizeof *sa);
  sa->sin_family = AF_INET;
  sa->sin_port = htons((uint16_t)port);
  sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

static void set_rcvbuf(int fd, int rcvbuf) {
  if (rcvbuf > 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
}

int h2raw_connect(int port, int rcvbuf) {
  struct sockaddr_in sa;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  set_rcvbuf(fd, rcvbuf);
  loopback(&sa, port);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int h2raw_listen(int *port, int rcvbuf) {
  struct sockaddr_in sa;
  socklen_t len = sizeof sa;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  set_rcvbuf(fd, rcvbuf);
  loopback(&sa, 0);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 8) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
    close(fd);
    return -1;
  }
  *port = ntohs(sa.sin_port);
  return fd;
}

int h2raw_accept(int lfd, int rcvbuf, int ms) {
  struct pollfd pfd;
  int rv, fd;
  pfd.fd = lfd;
  pfd.events = POLLIN;
  pfd.revents = 0;
  do
    rv = poll(&pfd, 1, ms);
  while (rv < 0 && errno == EINTR);
  if (rv <= 0)
    return -1;
  fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  if (fd >= 0)
    set_rcvbuf(fd, rcvbuf);
  return fd;
}

int h2raw_send(int fd, const void *p, size_t n) {
  const uint8_t *q = p;
  while (n > 0) {
    ssize_t w = send(fd, q, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    q += w;
    n -= (size_t)w;
  }
  return 0;
}

int h2raw_send_buf(int fd, const h2raw_buf *b) {
  if (b->failed)
    return -1;
  return h2raw_send(fd, b->data, b->len);
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long h2raw_drain(int fd, int ms) {
  int64_t end = now_ms() + ms;
  long total = 0;
  char buf[16384];
  for (;;) {
    struct pollfd pfd;
    int64_t left = end - now_ms();
    ssize_t n;
    int rv;
    if (left <= 0)
      return total;
    pfd.fd = fd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    rv = poll(&pfd, 1, (int)left);
    if (rv < 0 && errno == EINTR)
      continue;
    if (rv < 0)
      return -1;
    if (rv == 0)
      return total;
    n = recv(fd, buf, sizeof buf, 0);
    if (n == 0)
      return total;
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN)
        continue;
      return errno == ECONNRESET ? total : -1;
    }
    total += (long)n;
  }
}
