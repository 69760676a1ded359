/* SPDX-License-Identifier: MIT */
/*
 * A relay thread for integration tests: it accepts one connection on a
 * port of its own and forwards bytes both ways to 127.0.0.1:out_port.
 * Either side may be TLS (OpenSSL on one side, plaintext on the other), so
 * raw HTTP/2 peers and our plaintext client can sit behind TLS; TLS 1.3 key
 * updates can be asked for every few kilobytes; a corrupt record can be
 * sent toward the out side; and forwarding can be stopped at any time
 * (|frozen|), which makes the peer look dead to both sides without closing
 * anything (what keepalive is there to find).
 *
 *   relay r;
 *   memset(&r, 0, sizeof r);
 *   r.out_port = server_port;     (in_tls needs cert_file and key_file)
 *   relay_start(&r);              (connect to r.port)
 *   atomic_store(&r.frozen, 1);
 *   relay_stop(&r);
 */
#ifndef CGRPC_TEST_RELAY_H
#define CGRPC_TEST_RELAY_H

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct relay_side {
  int fd;
  SSL *ssl;           /* NULL: plaintext */
  uint8_t buf[16384]; /* bytes read from the other side, to write here */
  size_t len, off;
  size_t since_update; /* bytes written since the last key update */
} relay_side;

typedef struct relay {
  int lfd, port;           /* where the relay's client connects */
  int in_tls;              /* that side is a TLS server (server.pem, ALPN h2) */
  int out_port;            /* the relay connects to 127.0.0.1:out_port ... */
  int out_tls;             /* ... as a TLS client (no verification, ALPN h2) */
  size_t key_update_every; /* 0: none; else SSL_key_update(REQUESTED) */
  atomic_int corrupt;      /* 1: write a bogus record toward the out side */
  const char *cert_file, *key_file; /* the in side's, when in_tls */
  atomic_int frozen;       /* 1: stop forwarding (the sockets stay open) */
  atomic_int stop, ended, key_updates;
  SSL_CTX *sctx, *cctx;
  pthread_t thread;
} relay;

/* Starts |r| (its fields in_tls, out_port, out_tls, key_update_every and
 * the certificate files set; the rest zero); r->port is where to connect.
 * Fails the test (cmocka) when it cannot. */
void relay_start(relay *r);

/* Send and receive timeouts of |s| seconds on |fd| (also for the tests'
 * own blocking sockets). */
void relay_set_timeouts(int fd, int s);

/* Stops the relay, joins its thread and frees what it holds. */
void relay_stop(relay *r);

#endif /* CGRPC_TEST_RELAY_H */
