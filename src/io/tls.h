/* SPDX-License-Identifier: MIT */
/*
 * TLS over OpenSSL: the credentials objects of include/cgrpc/tls.h, the
 * SSL_CTX each side builds from them (ALPN "h2" required, TLS 1.2+, peer
 * verification, session resumption), and the non-blocking I/O of one
 * connection.  Every OpenSSL call of the library lives here and in the h2
 * connection that drives it, through io/ossl.h (OpenSSL is loaded when the
 * first credentials or session cache are made).
 */
#ifndef CGRPC_IO_TLS_H
#define CGRPC_IO_TLS_H

#include <stdatomic.h>
#include <stddef.h>
#include <sys/types.h>

#include "cgrpc/tls.h"
#include "io/ossl.h"
#include "util/log.h"

/* ---- building contexts ---- */

/*
 * The server context of |creds| as it is now, with a reference for the
 * caller (SSL_CTX_free() it); NULL when no certificate is set.  New
 * handshakes take it from here, so a certificate swap applies to them.
 * Thread safety: any thread.
 */
SSL_CTX *cgrpc__server_creds_ctx(cgrpc_server_credentials *creds);
void cgrpc__server_creds_ref(cgrpc_server_credentials *creds);

/*
 * A channel's sessions for resumption: the newest the server handed out,
 * and the shared cache (cgrpc_tls_session_cache) the application gave,
 * under |key| (the server's name and port).  The loop thread of the
 * channel uses it; the cache has its own lock.
 */
typedef struct cgrpc__tls_sessions {
  SSL_SESSION *last;
  cgrpc_tls_session_cache *cache; /* a reference, or NULL */
  char *key;
} cgrpc__tls_sessions;

/* |cache| may be NULL.  Returns 0 or CGRPC_ERR_NOMEM. */
int cgrpc__tls_sessions_init(cgrpc__tls_sessions *s,
                             cgrpc_tls_session_cache *cache, const char *key);
void cgrpc__tls_sessions_clear(cgrpc__tls_sessions *s);
void cgrpc__tls_session_cache_ref(cgrpc_tls_session_cache *cache);

/* A new client context from |creds|, or NULL with the reason in |err|.
 * With |sessions| not NULL, the sessions the server hands out are kept
 * there for resumption; it must outlive the context. */
SSL_CTX *cgrpc__channel_creds_ctx_new(const cgrpc_channel_credentials *creds,
                                      cgrpc__tls_sessions *sessions, char *err,
                                      size_t err_size);
void cgrpc__channel_creds_ref(cgrpc_channel_credentials *creds);
/* Nonzero when the names in the server's certificate are not checked. */
int cgrpc__channel_creds_skip_hostname(const cgrpc_channel_credentials *creds);

/* ---- one connection ---- */

/* Results of the I/O functions below (negative; >= 0 is a byte count). */
enum {
  CGRPC__TLS_WANT_READ = -1,
  CGRPC__TLS_WANT_WRITE = -2,
  CGRPC__TLS_FAILED = -3 /* the reason is in the connection's error */
};

/*
 * An SSL for the connected socket |fd|: a client (|server| 0) sends SNI
 * |host| (unless it is an IP address) and verifies the server's
 * certificate against it (unless |skip_host|), and offers a session from
 * |sessions| for resumption (may be NULL).  NULL when out of memory.
 */
SSL *cgrpc__tls_conn_new(SSL_CTX *ctx, int fd, int server, const char *host,
                         int skip_host, cgrpc__tls_sessions *sessions);

/* One step of the handshake: 0 when done, else a CGRPC__TLS_ code; after
 * FAILED, |err| says why (for people: the verification error, a wrong
 * version from a plaintext peer, ...).  A finished handshake is checked
 * for ALPN "h2". */
int cgrpc__tls_handshake(SSL *ssl, char *err, size_t err_size);

/* Reads up to |n| bytes: their count, 0 when the peer closed, or a
 * CGRPC__TLS_ code. */
ssize_t cgrpc__tls_read(SSL *ssl, void *buf, size_t n, char *err,
                        size_t err_size);
/* Writes what it can of |n| bytes: their count (maybe 0... never: then a
 * WANT code), or a CGRPC__TLS_ code.  After a WANT, the same bytes must
 * be written again (they may have moved: ACCEPT_MOVING_WRITE_BUFFER). */
ssize_t cgrpc__tls_write(SSL *ssl, const void *p, size_t n, char *err,
                         size_t err_size);

/* Writes what a finished handshake chose, for a trace line: "TLSv1.3
 * TLS_AES_128_GCM_SHA256, resumed, peer certificate CN=..." into |buf|. */
void cgrpc__tls_describe(SSL *ssl, char *buf, size_t size);

/* Sends close_notify if it can without waiting, and frees |ssl|. */
void cgrpc__tls_conn_free(SSL *ssl);

/* What a handshake established about the peer, kept by the server for its
 * calls.  Reference counted (the connection and each call hold one). */
typedef struct cgrpc__tls_peer {
  atomic_int refs;
  int verified;      /* a certificate was presented and verified */
  char *subject;     /* "CN=...,O=..." (RFC 2253), or NULL */
  char **sans;       /* "DNS:name", "IP:1.2.3.4", "URI:...", "email:..." */
  size_t n_sans;
  const char *version; /* "TLSv1.3" (OpenSSL's static string) */
  char cipher[64];     /* "TLS_AES_128_GCM_SHA256" */
  int reused;          /* the session was resumed */
} cgrpc__tls_peer;

/* The peer of a finished handshake, or NULL when out of memory. */
cgrpc__tls_peer *cgrpc__tls_peer_new(SSL *ssl);
void cgrpc__tls_peer_ref(cgrpc__tls_peer *peer);
void cgrpc__tls_peer_unref(cgrpc__tls_peer *peer);

#endif /* CGRPC_IO_TLS_H */
