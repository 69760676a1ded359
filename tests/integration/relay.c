/* SPDX-License-Identifier: MIT */
#include "relay.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "h2raw.h"

#ifdef CGRPC_TEST_SANITIZED
#define RELAY_SLOW 3
#else
#define RELAY_SLOW 1
#endif

static int alpn_h2(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned inlen, void *arg) {
  (void)ssl;
  (void)arg;
  if (SSL_select_next_proto((unsigned char **)out, outlen,
                            (const unsigned char *)"\x02h2", 3, in,
                            inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  return SSL_TLSEXT_ERR_OK;
}

void relay_set_timeouts(int fd, int s) {
  struct timeval tv = {s, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* Sets |side| up on |fd| (a TLS handshake with |ctx| unless NULL).
 * Returns 0 or -1. */
static int side_open(relay_side *side, int fd, SSL_CTX *ctx, int server) {
  memset(side, 0, sizeof *side);
  side->fd = fd;
  if (fd < 0)
    return -1;
  relay_set_timeouts(fd, 5 * RELAY_SLOW);
  if (ctx) {
    side->ssl = SSL_new(ctx);
    if (!side->ssl)
      return -1;
    SSL_set_fd(side->ssl, fd);
    if ((server ? SSL_accept(side->ssl) : SSL_connect(side->ssl)) != 1) {
      ERR_clear_error();
      return -1;
    }
  }
  return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void side_close(relay_side *side) {
  SSL_free(side->ssl);
  ERR_clear_error();
  if (side->fd >= 0)
    close(side->fd);
}

/* Bytes read, 0 at the end (or an error), -1 for "nothing now". */
static ssize_t side_read(relay_side *side, uint8_t *buf, size_t n) {
  if (side->ssl) {
    int r = SSL_read(side->ssl, buf, (int)n), e;
    if (r > 0)
      return r;
    e = SSL_get_error(side->ssl, r);
    ERR_clear_error();
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? -1 : 0;
  }
  {
    ssize_t r = recv(side->fd, buf, n, 0);
    if (r < 0)
      return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -1 : 0;
    return r;
  }
}

/* Bytes written, -1 for "not now", -2 on an error. */
static ssize_t side_write(relay_side *side, const uint8_t *p, size_t n) {
  if (side->ssl) {
    int r = SSL_write(side->ssl, p, (int)n), e;
    if (r > 0)
      return r;
    e = SSL_get_error(side->ssl, r);
    ERR_clear_error();
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? -1 : -2;
  }
  {
    ssize_t r = send(side->fd, p, n, MSG_NOSIGNAL);
    if (r < 0)
      return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -1
                                                                       : -2;
    return r;
  }
}

/* Moves what |src| has toward |dst|.  Returns 1 on progress, 0 on none,
 * -1 when the relay is over. */
static int relay_step(relay *r, relay_side *src, relay_side *dst) {
  int progress = 0;
  if (dst->off == dst->len) {
    ssize_t n = side_read(src, dst->buf, sizeof dst->buf);
    if (n == 0)
      return -1;
    if (n > 0) {
      dst->len = (size_t)n;
      dst->off = 0;
      progress = 1;
    }
  }
  if (dst->off < dst->len) {
    ssize_t w = side_write(dst, dst->buf + dst->off, dst->len - dst->off);
    if (w == -2)
      return -1;
    if (w > 0) {
      dst->off += (size_t)w;
      dst->since_update += (size_t)w;
      progress = 1;
    }
  }
  if (dst->ssl && r->key_update_every && dst->off == dst->len &&
      dst->since_update >= r->key_update_every &&
      SSL_key_update(dst->ssl, SSL_KEY_UPDATE_REQUESTED) == 1) {
    dst->since_update = 0;
    atomic_fetch_add(&r->key_updates, 1);
  }
  return progress;
}

/* Nonzero when |dst| has room for what the other side sends: only then is
 * that side read. */
static int has_room(const relay_side *dst) { return dst->off == dst->len; }

static void *relay_main(void *arg) {
  relay *r = arg;
  relay_side *in = calloc(1, sizeof *in), *out = calloc(1, sizeof *out);
  int fd;
  assert_non_null(in);
  assert_non_null(out);
  in->fd = out->fd = -1;
  fd = h2raw_accept(r->lfd, 0, 10000 * RELAY_SLOW);
  if (side_open(in, fd, r->in_tls ? r->sctx : NULL, 1) != 0 ||
      side_open(out, h2raw_connect(r->out_port, 0), r->out_tls ? r->cctx : NULL,
                0) != 0)
    goto done;
  while (!atomic_load(&r->stop)) {
    int a, b;
    if (atomic_load(&r->frozen)) {
      /* A peer that has gone silent: nothing read, nothing written, the
       * connections left open. */
      poll(NULL, 0, 20);
      continue;
    }
    if (atomic_load(&r->corrupt) == 1 && out->ssl) {
      /* Application data that no key decrypts. */
      uint8_t rec[5 + 48] = {0x17, 0x03, 0x03, 0x00, 48};
      memset(rec + 5, 0xab, 48);
      (void)!send(out->fd, rec, sizeof rec, MSG_NOSIGNAL);
      atomic_store(&r->corrupt, 2);
    }
    if ((a = relay_step(r, in, out)) < 0 || (b = relay_step(r, out, in)) < 0)
      break;
    /* A side is read only when what it sends has room on the other. */
    if (!a && !b && !(has_room(out) && in->ssl && SSL_has_pending(in->ssl)) &&
        !(has_room(in) && out->ssl && SSL_has_pending(out->ssl))) {
      struct pollfd p[2] = {{in->fd, 0, 0}, {out->fd, 0, 0}};
      p[0].events = (short)((has_room(out) ? POLLIN : 0) |
                            (in->off < in->len ? POLLOUT : 0));
      p[1].events = (short)((has_room(in) ? POLLIN : 0) |
                            (out->off < out->len ? POLLOUT : 0));
      poll(p, 2, 20);
    }
  }
done:
  side_close(in);
  side_close(out);
  free(in);
  free(out);
  atomic_store(&r->ended, 1);
  return NULL;
}

void relay_start(relay *r) {
  r->sctx = SSL_CTX_new(TLS_server_method());
  r->cctx = SSL_CTX_new(TLS_client_method());
  assert_non_null(r->sctx);
  assert_non_null(r->cctx);
  if (r->in_tls) {
    assert_int_equal(
        SSL_CTX_use_certificate_chain_file(r->sctx, r->cert_file), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(r->sctx, r->key_file,
                                                 SSL_FILETYPE_PEM),
                     1);
  }
  SSL_CTX_set_alpn_select_cb(r->sctx, alpn_h2, NULL);
  SSL_CTX_set_verify(r->cctx, SSL_VERIFY_NONE, NULL);
  assert_int_equal(
      SSL_CTX_set_alpn_protos(r->cctx, (const unsigned char *)"\x02h2", 3), 0);
  SSL_CTX_set_mode(r->sctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_mode(r->cctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_min_proto_version(r->sctx, TLS1_3_VERSION);
  SSL_CTX_set_min_proto_version(r->cctx, TLS1_3_VERSION);
  r->lfd = h2raw_listen(&r->port, 0);
  assert_true(r->lfd >= 0);
  atomic_init(&r->stop, 0);
  atomic_init(&r->ended, 0);
  atomic_init(&r->corrupt, 0);
  atomic_init(&r->key_updates, 0);
  atomic_init(&r->frozen, 0);
  assert_int_equal(pthread_create(&r->thread, NULL, relay_main, r), 0);
}

void relay_stop(relay *r) {
  atomic_store(&r->stop, 1);
  shutdown(r->lfd, SHUT_RDWR);
  pthread_join(r->thread, NULL);
  close(r->lfd);
  SSL_CTX_free(r->sctx);
  SSL_CTX_free(r->cctx);
}

