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

#include <nghttp2/nghttp2.h>

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

/* ---- reading ---- */

/* Reads exactly |n| bytes into |p| by |end| (a now_ms() time).  Returns 1
 * when done; 0 when the peer closed (EOF or reset) before the first byte;
 * -1 on timeout, an error or a close after some bytes. */
static int read_exact(int fd, uint8_t *p, size_t n, int64_t end) {
  size_t got = 0;
  while (got < n) {
    struct pollfd pfd;
    int64_t left = end - now_ms();
    ssize_t r;
    int rv;
    if (left <= 0)
      return -1;
    pfd.fd = fd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    rv = poll(&pfd, 1, (int)left);
    if (rv < 0 && errno == EINTR)
      continue;
    if (rv <= 0)
      return -1;
    r = recv(fd, p + got, n - got, 0);
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (r == 0 || (r < 0 && errno == ECONNRESET))
      return got == 0 ? 0 : -1;
    if (r < 0)
      return -1;
    got += (size_t)r;
  }
  return 1;
}

int h2raw_read_preface(int fd, int ms) {
  static const char magic[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  uint8_t buf[sizeof magic - 1];
  if (read_exact(fd, buf, sizeof buf, now_ms() + ms) != 1)
    return -1;
  return memcmp(buf, magic, sizeof buf) == 0 ? 0 : -1;
}

int h2raw_read_frame(int fd, int ms, h2raw_rframe *f) {
  int64_t end = now_ms() + ms;
  uint8_t hd[9], *payload = NULL;
  size_t len;
  int rv = read_exact(fd, hd, sizeof hd, end);
  if (rv != 1)
    return rv;
  len = ((size_t)hd[0] << 16) | ((size_t)hd[1] << 8) | hd[2];
  if (len > 0) {
    payload = malloc(len);
    if (!payload || read_exact(fd, payload, len, end) != 1) {
      free(payload);
      return -1;
    }
  }
  f->type = hd[3];
  f->flags = hd[4];
  f->stream = ((uint32_t)(hd[5] & 0x7f) << 24) | ((uint32_t)hd[6] << 16) |
              ((uint32_t)hd[7] << 8) | hd[8];
  f->payload = payload;
  f->len = len;
  return 1;
}

void h2raw_rframe_free(h2raw_rframe *f) {
  free(f->payload);
  f->payload = NULL;
  f->len = 0;
}

uint32_t h2raw_rframe_u32(const h2raw_rframe *f, size_t off) {
  const uint8_t *p = f->payload + off;
  if (f->len < off + 4)
    return 0;
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
         ((uint32_t)p[2] << 8) | p[3];
}

int h2raw_ack_settings(int fd, const h2raw_rframe *f) {
  static const uint8_t ack[9] = {0, 0, 0, H2RAW_SETTINGS, H2RAW_FLAG_ACK, 0,
                                 0, 0, 0};
  if (f->type != H2RAW_SETTINGS || (f->flags & H2RAW_FLAG_ACK))
    return 0;
  return h2raw_send(fd, ack, sizeof ack) == 0 ? 1 : -1;
}

/* ---- HPACK decoding ---- */

struct h2raw_hpack {
  nghttp2_hd_inflater *inflater;
};

int h2raw_hpack_new(h2raw_hpack **hp) {
  h2raw_hpack *d = calloc(1, sizeof *d);
  if (!d)
    return -1;
  if (nghttp2_hd_inflate_new(&d->inflater) != 0) {
    free(d);
    return -1;
  }
  *hp = d;
  return 0;
}

void h2raw_hpack_del(h2raw_hpack *hp) {
  if (!hp)
    return;
  nghttp2_hd_inflate_del(hp->inflater);
  free(hp);
}

static char *dup_bytes(const uint8_t *p, size_t n) {
  char *s = malloc(n + 1);
  if (s) {
    memcpy(s, p, n);
    s[n] = '\0';
  }
  return s;
}

/* Appends a copy of |nv| to |l|; returns 0 or -1. */
static int fields_add(h2raw_fields *l, const nghttp2_nv *nv) {
  h2raw_field *v = realloc(l->v, (l->n + 1) * sizeof *v), *fl;
  if (!v)
    return -1;
  l->v = v;
  fl = &v[l->n];
  fl->name = dup_bytes(nv->name, nv->namelen);
  fl->value = dup_bytes(nv->value, nv->valuelen);
  fl->name_len = nv->namelen;
  fl->value_len = nv->valuelen;
  l->n++; /* even half-filled, so that h2raw_fields_free() frees it */
  return fl->name && fl->value ? 0 : -1;
}

int h2raw_hpack_decode(h2raw_hpack *hp, const h2raw_rframe *f,
                       h2raw_fields *out) {
  const uint8_t *p = f->payload;
  size_t n = f->len, pad = 0;
  out->v = NULL;
  out->n = 0;
  if (f->type != H2RAW_HEADERS || !(f->flags & H2RAW_FLAG_END_HEADERS))
    return -1;
  if (f->flags & H2RAW_FLAG_PADDED) { /* RFC 9113 6.2 */
    if (n < 1)
      return -1;
    pad = p[0];
    p++;
    n--;
  }
  if (f->flags & H2RAW_FLAG_PRIORITY) { /* dependency and weight */
    if (n < 5)
      return -1;
    p += 5;
    n -= 5;
  }
  if (pad > n)
    return -1;
  n -= pad;
  for (;;) {
    nghttp2_nv nv;
    int flags = 0;
    ssize_t rv = nghttp2_hd_inflate_hd2(hp->inflater, &nv, &flags, p, n, 1);
    if (rv < 0)
      goto fail;
    p += rv;
    n -= (size_t)rv;
    if ((flags & NGHTTP2_HD_INFLATE_EMIT) && fields_add(out, &nv) != 0)
      goto fail;
    if (flags & NGHTTP2_HD_INFLATE_FINAL) {
      nghttp2_hd_inflate_end_headers(hp->inflater);
      return 0;
    }
    if (!(flags & NGHTTP2_HD_INFLATE_EMIT) && n == 0)
      goto fail; /* cannot happen with in_final set */
  }
fail:
  h2raw_fields_free(out);
  return -1;
}

void h2raw_fields_free(h2raw_fields *l) {
  size_t i;
  for (i = 0; i < l->n; i++) {
    free(l->v[i].name);
    free(l->v[i].value);
  }
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

int h2raw_fields_find(const h2raw_fields *l, const char *name) {
  size_t i;
  for (i = 0; i < l->n; i++)
    if (strcmp(l->v[i].name, name) == 0)
      return (int)i;
  return -1;
}

const char *h2raw_fields_get(const h2raw_fields *l, const char *name) {
  int i = h2raw_fields_find(l, name);
  return i < 0 ? NULL : l->v[i].value;
}
