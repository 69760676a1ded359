/* SPDX-License-Identifier: MIT */
/*
 * io/tls: a client and a server SSL over a socketpair, stepped by hand
 * (non-blocking, no loop): the handshake with ALPN "h2", bytes both ways,
 * WANT_READ / WANT_WRITE from the socket BIO when the socket is empty or
 * full, the peer's close, and a write to a peer that is gone, which must
 * fail with EPIPE rather than kill the process with SIGPIPE (left at its
 * default here on purpose).  Certificates come from CGRPC_TEST_CERTS
 * (tests/common/make_test_certs.sh).
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "io/tls.h"

static char certs[512];

static const char *cert_path(const char *name) {
  static char buf[2][600];
  static int next;
  char *p = buf[next++ % 2];
  snprintf(p, sizeof buf[0], "%s/%s", certs, name);
  return p;
}

typedef struct pair {
  int fd[2]; /* [0] client, [1] server */
  SSL_CTX *cctx, *sctx;
  SSL *client, *server;
  cgrpc_server_credentials *sc;
  cgrpc_channel_credentials *cc;
  char err[200];
} pair;

/* Both ends of a non-blocking socketpair, with SSLs not yet shaken. */
static void pair_open(pair *p) {
  memset(p, 0, sizeof *p);
  assert_int_equal(
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->fd), 0);
  assert_int_equal(cgrpc_server_credentials_new(&p->sc), 0);
  assert_int_equal(cgrpc_server_credentials_set_cert_files(
                       p->sc, cert_path("server.pem"), cert_path("server.key")),
                   0);
  p->sctx = cgrpc__server_creds_ctx(p->sc);
  assert_non_null(p->sctx);
  assert_int_equal(cgrpc_channel_credentials_new(&p->cc), 0);
  assert_int_equal(
      cgrpc_channel_credentials_set_root_certs_file(p->cc, cert_path("ca.pem")),
      0);
  p->cctx = cgrpc__channel_creds_ctx_new(p->cc, NULL, p->err, sizeof p->err);
  assert_non_null(p->cctx);
  p->client = cgrpc__tls_conn_new(p->cctx, p->fd[0], 0, "localhost", 0, NULL);
  p->server = cgrpc__tls_conn_new(p->sctx, p->fd[1], 1, NULL, 0, NULL);
  assert_non_null(p->client);
  assert_non_null(p->server);
}

static void pair_close(pair *p) {
  cgrpc__tls_conn_free(p->client);
  cgrpc__tls_conn_free(p->server);
  SSL_CTX_free(p->cctx);
  SSL_CTX_free(p->sctx);
  cgrpc_channel_credentials_del(p->cc);
  cgrpc_server_credentials_del(p->sc);
  for (int i = 0; i < 2; i++)
    if (p->fd[i] >= 0)
      close(p->fd[i]);
}

/* Steps both handshakes until both are done (a bounded number of steps). */
static void handshake(pair *p) {
  int c = CGRPC__TLS_WANT_READ, s = CGRPC__TLS_WANT_READ;
  for (int i = 0; i < 50 && (c != 0 || s != 0); i++) {
    if (c != 0)
      c = cgrpc__tls_handshake(p->client, p->err, sizeof p->err);
    if (c == CGRPC__TLS_FAILED)
      fail_msg("client handshake: %s", p->err);
    if (s != 0)
      s = cgrpc__tls_handshake(p->server, p->err, sizeof p->err);
    if (s == CGRPC__TLS_FAILED)
      fail_msg("server handshake: %s", p->err);
  }
  assert_int_equal(c, 0);
  assert_int_equal(s, 0);
}

static void test_handshake_and_bytes(void **state) {
  pair p;
  char buf[64];
  (void)state;
  pair_open(&p);
  handshake(&p);
  /* Nothing sent yet: the server's read wants more. */
  assert_int_equal(cgrpc__tls_read(p.server, buf, sizeof buf, p.err,
                                   sizeof p.err),
                   CGRPC__TLS_WANT_READ);
  assert_int_equal(cgrpc__tls_write(p.client, "hello", 5, p.err, sizeof p.err),
                   5);
  assert_int_equal(cgrpc__tls_read(p.server, buf, sizeof buf, p.err,
                                   sizeof p.err),
                   5);
  assert_memory_equal(buf, "hello", 5);
  assert_int_equal(cgrpc__tls_write(p.server, "back", 4, p.err, sizeof p.err),
                   4);
  assert_int_equal(cgrpc__tls_read(p.client, buf, sizeof buf, p.err,
                                   sizeof p.err),
                   4);
  assert_memory_equal(buf, "back", 4);
  pair_close(&p);
}

/* Writes the next bytes of the endless pattern chunk[i] = i (mod 256)
 * after |*sent| of them; after a WANT, the same call is the retry. */
static ssize_t write_more(pair *p, const unsigned char *chunk, size_t size,
                          size_t *sent) {
  size_t off = *sent % size;
  ssize_t n = cgrpc__tls_write(p->client, chunk + off, size - off, p->err,
                               sizeof p->err);
  if (n > 0)
    *sent += (size_t)n;
  return n;
}

/* A reader that stops: the writer gets WANT_WRITE once the socket is full,
 * and everything arrives, in order, once the reader drains. */
static void test_full_socket(void **state) {
  static unsigned char chunk[16384], got[16384];
  size_t sent = 0, received = 0;
  ssize_t n = 0;
  pair p;
  (void)state;
  pair_open(&p);
  handshake(&p);
  for (size_t i = 0; i < sizeof chunk; i++)
    chunk[i] = (unsigned char)i;
  for (int i = 0; i < 10000 && n >= 0; i++)
    n = write_more(&p, chunk, sizeof chunk, &sent);
  assert_int_equal(n, CGRPC__TLS_WANT_WRITE);
  assert_true(sent > 0);
  /* Drain, retrying the pending write as the socket frees. */
  for (int i = 0; i < 100000 && (n < 0 || received < sent); i++) {
    ssize_t r;
    if (n == CGRPC__TLS_WANT_WRITE)
      n = write_more(&p, chunk, sizeof chunk, &sent);
    r = cgrpc__tls_read(p.server, got, sizeof got, p.err, sizeof p.err);
    if (r > 0) {
      for (ssize_t j = 0; j < r; j++)
        if (got[j] != (unsigned char)(received + (size_t)j))
          fail_msg("byte %zu differs", received + (size_t)j);
      received += (size_t)r;
    } else {
      assert_int_equal(r, CGRPC__TLS_WANT_READ);
    }
  }
  assert_true(n > 0);
  assert_int_equal(received, sent);
  pair_close(&p);
}

/* The server goes away: the client reads a close. */
static void test_peer_close(void **state) {
  char buf[16];
  ssize_t r;
  pair p;
  (void)state;
  pair_open(&p);
  handshake(&p);
  cgrpc__tls_conn_free(p.server); /* close_notify */
  p.server = NULL;
  close(p.fd[1]);
  p.fd[1] = -1;
  r = cgrpc__tls_read(p.client, buf, sizeof buf, p.err, sizeof p.err);
  assert_int_equal(r, 0);
  pair_close(&p);
}

/* A write to a socket whose peer is gone fails with EPIPE; the process
 * lives on although SIGPIPE is at its default (which would kill it). */
static void test_no_sigpipe(void **state) {
  pair p;
  int rv;
  (void)state;
  assert_true(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
  pair_open(&p);
  handshake(&p);
  close(p.fd[1]);
  p.fd[1] = -1;
  assert_int_equal(cgrpc__tls_write(p.client, "x", 1, p.err, sizeof p.err),
                   CGRPC__TLS_FAILED);
  assert_non_null(strstr(p.err, strerror(EPIPE)));
  pair_close(&p);

  /* The same during the handshake: the ClientHello meets a closed peer. */
  pair_open(&p);
  close(p.fd[1]);
  p.fd[1] = -1;
  rv = cgrpc__tls_handshake(p.client, p.err, sizeof p.err);
  assert_int_equal(rv, CGRPC__TLS_FAILED);
  assert_non_null(strstr(p.err, strerror(EPIPE)));
  pair_close(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_handshake_and_bytes),
      cmocka_unit_test(test_full_socket),
      cmocka_unit_test(test_peer_close),
      cmocka_unit_test(test_no_sigpipe),
  };
  const char *dir = getenv("CGRPC_TEST_CERTS");
  if (!dir) {
    fprintf(stderr, "test_tls: set CGRPC_TEST_CERTS to the directory that "
                    "tests/common/make_test_certs.sh made\n");
    return 1;
  }
  snprintf(certs, sizeof certs, "%s", dir);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
