/* SPDX-License-Identifier: MIT */
/*
 * TLS: credentials for servers and channels (OpenSSL underneath; nothing of
 * it shows here).
 *
 *   cgrpc_server_credentials *sc;
 *   cgrpc_server_credentials_new(&sc);
 *   cgrpc_server_credentials_set_cert_files(sc, "server.pem", "server.key");
 *   cgrpc_server_add_secure_port(server, "[::]:50051", sc, NULL);
 *   cgrpc_server_credentials_del(sc);          (the server keeps its own)
 *
 *   cgrpc_channel_credentials *cc;
 *   cgrpc_channel_credentials_new(&cc);
 *   cgrpc_channel_credentials_set_root_certs_file(cc, "ca.pem");
 *   cgrpc_channel_options_set_credentials(opts, cc);
 *   cgrpc_channel_credentials_del(cc);         (the options keep their own)
 *   cgrpc_channel_new(&ch, "example.com:443", opts);
 *
 * Connections negotiate HTTP/2 with ALPN "h2" (a peer that does not is
 * refused), TLS 1.2 or 1.3 with OpenSSL's default ciphers, and resume
 * sessions where they can.  A channel always checks the server's
 * certificate: its chain against the root certificates, and its names
 * (DNS and IP subjectAltNames) against the target's host, or the name set
 * with cgrpc_channel_options_set_ssl_target_name_override().
 *
 * Credentials objects are reference counted: everything that takes one
 * (options, servers, channels) keeps its own reference, so the caller may
 * delete its object at once.
 *
 * OpenSSL (libssl.so.3 and libcrypto.so.3) is loaded when the first
 * credentials or session cache are made, so a program that never uses TLS
 * never maps it.  When it cannot be loaded, those constructors return
 * CGRPC_ERR_UNSUPPORTED and cgrpc_tls_load_error() says why.
 */
#ifndef CGRPC_TLS_H
#define CGRPC_TLS_H

#include <stddef.h>

#include "cgrpc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- server credentials ---------------------------------------------- */

typedef struct cgrpc_server_credentials cgrpc_server_credentials;

/* Whether the server asks for a client certificate (mutual TLS). */
typedef enum cgrpc_client_auth {
  /* No client certificate is requested (the default). */
  CGRPC_CLIENT_AUTH_NONE = 0,
  /* One is requested and, if sent, verified against the client CAs; a
   * client without one is let in (unverified). */
  CGRPC_CLIENT_AUTH_REQUEST = 1,
  /* One is required and verified; the handshake fails without it. */
  CGRPC_CLIENT_AUTH_REQUIRE = 2
} cgrpc_client_auth;

/*
 * Loads OpenSSL if that has not been tried yet.  Returns NULL when TLS can
 * be used, or why not (a static string, e.g. that libssl.so.3 is missing).
 * Thread safety: any thread.
 */
CGRPC_EXTERN const char *cgrpc_tls_load_error(void);

/* Creates empty server credentials (a certificate must be set before they
 * are used).  Returns 0, CGRPC_ERR_NOMEM, or CGRPC_ERR_UNSUPPORTED when
 * OpenSSL cannot be loaded (cgrpc_tls_load_error()).  Thread safety: any
 * thread. */
CGRPC_EXTERN int cgrpc_server_credentials_new(cgrpc_server_credentials **creds);

/* Releases the caller's reference.  NULL does nothing.  Any thread. */
CGRPC_EXTERN void cgrpc_server_credentials_del(cgrpc_server_credentials *creds);

/*
 * Sets the certificate chain (the server's certificate first, then any
 * intermediates) and its private key, as PEM, from files or from memory
 * (|cert_len| and |key_len| bytes; the library keeps copies).  May be
 * called again while servers use the credentials: handshakes that begin
 * afterwards use the new pair, those under way finish with the old one.
 *
 * Returns 0, or one of:
 *   CGRPC_ERR_INVALID_ARGUMENT  a NULL argument.
 *   CGRPC_ERR_NOT_FOUND         a file cannot be read.
 *   CGRPC_ERR_PROTO             the PEM does not parse, or the key does not
 *                               match the certificate (the log says which).
 *   CGRPC_ERR_NOMEM             Out of memory.
 * On error the credentials keep their previous pair.
 * Thread safety: any thread.
 */
CGRPC_EXTERN int cgrpc_server_credentials_set_cert_files(
    cgrpc_server_credentials *creds, const char *cert_chain_file,
    const char *private_key_file);
CGRPC_EXTERN int cgrpc_server_credentials_set_cert_pem(
    cgrpc_server_credentials *creds, const char *cert_chain, size_t cert_len,
    const char *private_key, size_t key_len);

/*
 * The CAs that client certificates are verified against (PEM, one or
 * more), and whether to ask for one.  Setting CAs alone does not ask for
 * client certificates: use cgrpc_server_credentials_set_client_auth().
 * Returns 0, or as cgrpc_server_credentials_set_cert_files().
 * Thread safety: any thread; used from the next handshake on.
 */
CGRPC_EXTERN int cgrpc_server_credentials_set_client_ca_file(
    cgrpc_server_credentials *creds, const char *ca_file);
CGRPC_EXTERN int cgrpc_server_credentials_set_client_ca_pem(
    cgrpc_server_credentials *creds, const char *ca, size_t len);
/* Returns 0, or CGRPC_ERR_INVALID_ARGUMENT (REQUEST or REQUIRE without
 * client CAs is refused when the credentials are used). */
CGRPC_EXTERN int cgrpc_server_credentials_set_client_auth(
    cgrpc_server_credentials *creds, cgrpc_client_auth mode);

/* ---- channel credentials --------------------------------------------- */

typedef struct cgrpc_channel_credentials cgrpc_channel_credentials;

/* Creates channel credentials that trust the system's root certificates
 * (OpenSSL's default store) until others are set.  Returns 0,
 * CGRPC_ERR_NOMEM or CGRPC_ERR_UNSUPPORTED (OpenSSL cannot be loaded).
 * Thread safety: any thread. */
CGRPC_EXTERN int
cgrpc_channel_credentials_new(cgrpc_channel_credentials **creds);

/* Releases the caller's reference.  NULL does nothing.  Any thread. */
CGRPC_EXTERN void
cgrpc_channel_credentials_del(cgrpc_channel_credentials *creds);

/*
 * The root certificates (PEM) that server certificates are verified
 * against, instead of the system's.  Returns 0, or as
 * cgrpc_server_credentials_set_cert_files().  Thread safety: one thread at
 * a time per object; channels made before keep what they had.
 */
CGRPC_EXTERN int cgrpc_channel_credentials_set_root_certs_file(
    cgrpc_channel_credentials *creds, const char *ca_file);
CGRPC_EXTERN int cgrpc_channel_credentials_set_root_certs_pem(
    cgrpc_channel_credentials *creds, const char *ca, size_t len);

/* A client certificate chain and key for mutual TLS (PEM).  Returns 0, or
 * as cgrpc_server_credentials_set_cert_files(). */
CGRPC_EXTERN int cgrpc_channel_credentials_set_cert_files(
    cgrpc_channel_credentials *creds, const char *cert_chain_file,
    const char *private_key_file);
CGRPC_EXTERN int cgrpc_channel_credentials_set_cert_pem(
    cgrpc_channel_credentials *creds, const char *cert_chain, size_t cert_len,
    const char *private_key, size_t key_len);

/*
 * FOR TESTS ONLY: when |insecure| is nonzero the server's certificate names
 * are not checked (its chain still is), so any certificate from a trusted
 * CA is accepted for any host.  Never in production.
 */
CGRPC_EXTERN void
cgrpc_channel_credentials_set_insecure_skip_hostname_check_for_testing(
    cgrpc_channel_credentials *creds, int insecure);

/* ---- session resumption across channels ---------------------------- */

/*
 * A channel resumes its own TLS sessions when it reconnects.  Channels
 * that share a cache also resume each other's: a program that makes a new
 * channel per call, or many channels to one server, saves the full
 * handshake (certificate checks and key exchange) on all but the first.
 * Sessions are kept per server name and port, the least recently used
 * going first once |capacity| names are held.
 *
 *   cgrpc_tls_session_cache *cache;
 *   cgrpc_tls_session_cache_new(&cache, 64);
 *   cgrpc_channel_options_set_tls_session_cache(opts, cache);
 *   cgrpc_tls_session_cache_del(cache);       (the options keep their own)
 *
 * Returns 0, CGRPC_ERR_INVALID_ARGUMENT (NULL, or a capacity of 0 or above
 * 1000000), CGRPC_ERR_NOMEM or CGRPC_ERR_UNSUPPORTED (OpenSSL cannot be
 * loaded).  Reference counted like the credentials.
 * Thread safety: any thread; channels on any threads may share one.
 */
typedef struct cgrpc_tls_session_cache cgrpc_tls_session_cache;

CGRPC_EXTERN int cgrpc_tls_session_cache_new(cgrpc_tls_session_cache **cache,
                                             size_t capacity);
/* Releases the caller's reference.  NULL does nothing.  Any thread. */
CGRPC_EXTERN void cgrpc_tls_session_cache_del(cgrpc_tls_session_cache *cache);

#ifdef __cplusplus
}
#endif

#endif /* CGRPC_TLS_H */
