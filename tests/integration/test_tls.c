/* SPDX-License-Identifier: MIT */
/*
 * TLS between our client and server on loopback, with certificates that
 * tests/common/make_test_certs.sh made for this run (the directory is in
 * CGRPC_TEST_CERTS): the happy paths (IP and DNS names, the name override,
 * mutual TLS and what the handler sees of the client, a server with both
 * kinds of ports, a certificate swapped while serving) and every failure
 * with the message it must carry (an unknown CA, a wrong name, an expired
 * certificate, plaintext against TLS and TLS against plaintext).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <cmocka.h>

#include "echo.grpc-c.h"
#include "harness.h"

static char certs[512];

static const char *cert_path(const char *name) {
  static _Thread_local char buf[4][600]; /* threads: the raw peers */
  static _Thread_local int next;
  char *p = buf[next++ % 4];
  snprintf(p, sizeof buf[0], "%s/%s", certs, name);
  return p;
}

/* ---- a server whose Echo reports what it saw of the client's TLS ---- */

static atomic_int echo_calls; /* Echo calls that reached the handler */

static cgrpc_status_code tls_echo(cgrpc_server_ctx *ctx,
                                  const Cgrpc__Test__EchoRequest *request,
                                  Cgrpc__Test__EchoReply *reply,
                                  void *user_data) {
  char sans[512] = "";
  size_t i, n = cgrpc_server_ctx_peer_san_count(ctx);
  const char *subject = cgrpc_server_ctx_peer_subject(ctx);
  (void)user_data;
  for (i = 0; i < n; i++) {
    size_t len = strlen(sans);
    snprintf(sans + len, sizeof sans - len, "%s%s", i ? "," : "",
             cgrpc_server_ctx_peer_san(ctx, i));
  }
  const char *auth = cgrpc_metadata_array_get(cgrpc_server_ctx_metadata(ctx),
                                              "authorization", NULL);
  atomic_fetch_add(&echo_calls, 1);
  reply->message = cgrpc_server_ctx_printf(
      ctx,
      "%s|secure=%d verified=%d subject=%s sans=%s|%s %s reused=%d|auth=%s",
      request->message, cgrpc_server_ctx_is_secure(ctx),
      cgrpc_server_ctx_peer_verified(ctx), subject ? subject : "-", sans,
      cgrpc_server_ctx_tls_version(ctx) ? cgrpc_server_ctx_tls_version(ctx)
                                        : "-",
      cgrpc_server_ctx_tls_cipher(ctx) ? cgrpc_server_ctx_tls_cipher(ctx) : "-",
      cgrpc_server_ctx_tls_session_reused(ctx), auth ? auth : "-");
  reply->authority =
      cgrpc_server_ctx_strdup(ctx, cgrpc_server_ctx_authority(ctx));
  return CGRPC_STATUS_OK;
}

typedef struct tls_server {
  cgrpc_server *server;
  cgrpc_server_credentials *creds;
  int tls_port, plain_port;
} tls_server;

/* A server with a TLS port (certificate |cert|, client CAs and |auth|) and
 * a plaintext one. */
static void server_start_on(tls_server *s, const char *cert,
                            cgrpc_client_auth auth, int tls_port);

static void server_start(tls_server *s, const char *cert,
                         cgrpc_client_auth auth) {
  server_start_on(s, cert, auth, 0);
}

/* The same, with the TLS port |tls_port| (0: any). */
static void server_start_on(tls_server *s, const char *cert,
                            cgrpc_client_auth auth, int tls_port) {
  static const Cgrpc__Test__EchoService_Servicer servicer = {tls_echo, NULL};
  char key[64], addr[32];
  memset(s, 0, sizeof *s);
  snprintf(addr, sizeof addr, "127.0.0.1:%d", tls_port);
  snprintf(key, sizeof key, "%s", cert);
  strcpy(strstr(key, ".pem"), ".key");
  assert_int_equal(cgrpc_server_credentials_new(&s->creds), 0);
  assert_int_equal(cgrpc_server_credentials_set_cert_files(
                       s->creds, cert_path(cert), cert_path(key)),
                   0);
  if (auth != CGRPC_CLIENT_AUTH_NONE) {
    assert_int_equal(cgrpc_server_credentials_set_client_ca_file(
                         s->creds, cert_path("ca.pem")),
                     0);
    assert_int_equal(cgrpc_server_credentials_set_client_auth(s->creds, auth),
                     0);
  }
  assert_int_equal(cgrpc_server_new(&s->server, NULL), 0);
  assert_int_equal(
      cgrpc_server_add_secure_port(s->server, addr, s->creds, &s->tls_port), 0);
  assert_int_equal(
      cgrpc_server_add_insecure_port(s->server, "127.0.0.1:0", &s->plain_port),
      0);
  assert_int_equal(
      cgrpc__test__echo_service__servicer__register(s->server, &servicer, NULL),
      0);
  assert_int_equal(cgrpc_server_start(s->server), 0);
}

static void server_stop(tls_server *s) {
  cgrpc_server_shutdown(s->server, 0);
  cgrpc_server_del(s->server);
  cgrpc_server_credentials_del(s->creds);
}

/* A channel to |host|:|port|; TLS trusting |ca| (NULL: plaintext; "": the
 * system's roots), with a client certificate |client| (NULL: none) and a
 * name override. */
static cgrpc_tls_session_cache *session_cache; /* for the next channel() */
static cgrpc_call_credentials *call_creds;     /* for the next channel() */
static int insecure_call_creds;                /* for the next channel() */

static cgrpc_channel *channel(const char *host, int port, const char *ca,
                              const char *client, const char *override) {
  cgrpc_channel_options *o;
  cgrpc_channel_credentials *cc = NULL;
  cgrpc_channel *ch = NULL;
  char target[128];
  assert_int_equal(cgrpc_channel_options_new(&o), 0);
  if (getenv("CGRPC_TEST_LOG"))
    cgrpc_channel_options_set_log(o, cgrpc_log_stderr, NULL);
  if (ca) {
    assert_int_equal(cgrpc_channel_credentials_new(&cc), 0);
    if (*ca)
      assert_int_equal(
          cgrpc_channel_credentials_set_root_certs_file(cc, cert_path(ca)), 0);
    if (client)
      assert_int_equal(
          cgrpc_channel_credentials_set_cert_files(cc, cert_path("client.pem"),
                                                   cert_path("client.key")),
          0);
    cgrpc_channel_options_set_credentials(o, cc);
    cgrpc_channel_credentials_del(cc); /* the options keep theirs */
  }
  if (override)
    assert_int_equal(
        cgrpc_channel_options_set_ssl_target_name_override(o, override), 0);
  cgrpc_channel_options_set_tls_session_cache(o, session_cache);
  cgrpc_channel_options_set_call_credentials(o, call_creds);
  cgrpc_channel_options_allow_insecure_call_credentials(o, insecure_call_creds);
  snprintf(target, sizeof target, "%s:%d", host, port);
  assert_int_equal(cgrpc_channel_new(&ch, target, o), 0);
  cgrpc_channel_options_del(o);
  return ch;
}

/* An Echo call; returns its code, with the reply's message in |out| and
 * the status message in |why|. */
static cgrpc_status_code echo(cgrpc_channel *ch, char *out, size_t out_size,
                              char *why, size_t why_size) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_call_options opts = {.timeout_ms = 10000};
  cgrpc_status st = {0};
  cgrpc_status_code code;
  req.message = "hi";
  code = cgrpc__test__echo_service__echo__call(ch, &req, &reply, &opts, &st);
  if (out)
    snprintf(out, out_size, "%s",
             reply && reply->message ? reply->message : "");
  if (why)
    snprintf(why, why_size, "%s", st.message ? st.message : "");
  if (reply)
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_status_clear(&st);
  return code;
}

static void expect_ok(cgrpc_channel *ch, const char *want_in_message) {
  char out[600], why[300];
  cgrpc_status_code code = echo(ch, out, sizeof out, why, sizeof why);
  if (code != CGRPC_STATUS_OK)
    fail_msg("expected OK, got %s: %s", cgrpc_status_code_name(code), why);
  if (want_in_message && !strstr(out, want_in_message))
    fail_msg("the reply \"%s\" lacks \"%s\"", out, want_in_message);
}

static void expect_unavailable(cgrpc_channel *ch, const char *want_in_why) {
  char why[300];
  cgrpc_status_code code = echo(ch, NULL, 0, why, sizeof why);
  if (code != CGRPC_STATUS_UNAVAILABLE)
    fail_msg("expected UNAVAILABLE, got %s: %s", cgrpc_status_code_name(code),
             why);
  if (!strstr(why, want_in_why))
    fail_msg("the status message \"%s\" lacks \"%s\"", why, want_in_why);
}

/* ---- tests ---- */

static void test_tls_ip_and_dns_names(void **state) {
  tls_server s;
  cgrpc_channel *ch;
  (void)state;
  server_start(&s, "server.pem", CGRPC_CLIENT_AUTH_NONE);
  ch = channel("127.0.0.1", s.tls_port, "ca.pem", NULL, NULL);
  expect_ok(ch, "hi|secure=1 verified=0 subject=- sans=");
  expect_ok(ch, "secure=1"); /* the same connection again */
  cgrpc_channel_del(ch);
  ch = channel("localhost", s.tls_port, "ca.pem", NULL, NULL);
  expect_ok(ch, "secure=1");
  cgrpc_channel_del(ch);
  /* The same server's plaintext port still serves plaintext. */
  ch = channel("127.0.0.1", s.plain_port, NULL, NULL, NULL);
  expect_ok(ch, "secure=0");
  cgrpc_channel_del(ch);
  server_stop(&s);
}

static void test_tls_name_override(void **state) {
  tls_server s;
  cgrpc_channel *ch;
  (void)state;
  server_start(&s, "wrong.pem", CGRPC_CLIENT_AUTH_NONE);
  ch = channel("127.0.0.1", s.tls_port, "ca.pem", NULL, "wrong.test");
  expect_ok(ch, "secure=1");
  cgrpc_channel_del(ch);
  server_stop(&s);
}

static void test_tls_unknown_ca(void **state) {
  tls_server s;
  cgrpc_channel *ch;
  (void)state;
  server_start(&s, "other_server.pem", CGRPC_CLIENT_AUTH_NONE);
  ch = channel("127.0.0.1", s.tls_port, "ca.pem", NULL, NULL);
  expect_unavailable(ch, "certificate verify failed");
  expect_unavailable(ch, "local issuer"); /* the same reason, remembered */
  cgrpc_channel_del(ch);
  server_stop(&s);
}

/* A channel without roots of its own trusts the system's, which OpenSSL
 * reads from SSL_CERT_FILE when it is set: here the test CA.  They are
 * parsed once per process and shared by every such channel. */
static void test_tls_system_roots(void **state) {
  tls_server ok, other;
  cgrpc_channel *a, *b, *c;
  (void)state;
  setenv("SSL_CERT_FILE", cert_path("ca.pem"), 1);
  setenv("SSL_CERT_DIR", certs, 1); /* no hashed CAs there */
  server_start(&ok, "server.pem", CGRPC_CLIENT_AUTH_NONE);
  server_start(&other, "other_server.pem", CGRPC_CLIENT_AUTH_NONE);
  a = channel("127.0.0.1", ok.tls_port, "", NULL, NULL);
  b = channel("localhost", ok.tls_port, "", NULL, NULL);
  c = channel("127.0.0.1", other.tls_port, "", NULL, NULL);
  expect_ok(a, "secure=1");
  expect_ok(b, "secure=1");
  expect_unavailable(c, "certificate verify failed");
  cgrpc_channel_del(a);
  cgrpc_channel_del(b);
  cgrpc_channel_del(c);
  server_stop(&ok);
  server_stop(&other);
}

/* A server presenting |cert| to a channel trusting ca.pem: the call fails
 * UNAVAILABLE with |why| in its message. */
static void expect_certificate_refused(const char *cert, const char *why) {
  tls_server s;
  cgrpc_channel *ch;
  server_start(&s, cert, CGRPC_CLIENT_AUTH_NONE);
  ch = channel("127.0.0.1", s.tls_port, "ca.pem", NULL, NULL);
  expect_unavailable(ch, why);
  cgrpc_channel_del(ch);
  server_stop(&s);
}

static void test_tls_wrong_name(void **state) {
  (void)state;
  expect_certificate_refused("wrong.pem", "mismatch");
}

static void test_tls_expired(void **state) {
  (void)state;
  expect_certificate_refused("expired.pem", "expired");
}

static void test_tls_plaintext_mismatch(void **state) {
  tls_server s;
  cgrpc_channel *ch;
  (void)state;
  server_start(&s, "server.pem", CGRPC_CLIENT_AUTH_NONE);
  /* TLS to the plaintext port. */
  ch = channel("127.0.0.1", s.plain_port, "ca.pem", NULL, NULL);
  expect_unavailable(ch, "TLS");
  cgrpc_channel_del(ch);
  /* Plaintext to the TLS port: refused, and the server keeps serving. */
  ch = channel("127.0.0.1", s.tls_port, NULL, NULL, NULL);
  expect_unavailable(ch, "TLS");
  cgrpc_channel_del(ch);
  ch = channel("127.0.0.1", s.tls_port, "ca.pem", NULL, NULL);
  expect_ok(ch, "secure=1");
  cgrpc_channel_del(ch);
  server_stop(&s);
}

static void test_tls_mutual_required(void **state) {
  tls_server s;
  cgrpc_channel *ch;
  (void)state;
  server_start(&s, "server.pem", CGRPC_CLIENT_AUTH_REQUIRE);
  ch = channel("127.0.0.1", s.tls_port, "ca.pem", "client", NULL);
  expect_ok(ch, "secure=1 verified=1 subject=O=cgrpc tests,CN=client "
                "sans=DNS:client.test,URI:spiffe://cgrpc.test/client");
  cgrpc_channel_del(ch);
  /* Without a client certificate the handshake fails. */
  ch = channel("127.0.0.1", s.tls_port, "ca.pem", NULL, NULL);
  {
    char why[300];
    cgrpc_status_code code = echo(ch, NULL, 0, why, sizeof why);
    if (code != CGRPC_STATUS_UNAVAILABLE)
      fail_msg("no client certificate: %s (%s)", cgrpc_status_code_name(code),
               why);
  }
  cgrpc_channel_del(ch);
  server_stop(&s);
}

static void test_tls_mutual_requested(void **state) {
  tls_server s;
  cgrpc_channel *ch;
  (void)state;
  server_start(&s, "server.pem", CGRPC_CLIENT_AUTH_REQUEST);
  ch = channel("127.0.0.1", s.tls_port, "ca.pem", NULL, NULL);
  expect_ok(ch, "secure=1 verified=0 subject=-");
  cgrpc_channel_del(ch);
  ch = channel("127.0.0.1", s.tls_port, "ca.pem", "client", NULL);
  expect_ok(ch, "verified=1");
  cgrpc_channel_del(ch);
  server_stop(&s);
}

/* The certificate swapped while the server runs: new handshakes present
 * the new one. */
static void test_tls_certificate_swap(void **state) {
  tls_server s;
  cgrpc_channel *before, *ch;
  (void)state;
  server_start(&s, "server.pem", CGRPC_CLIENT_AUTH_NONE);
  before = channel("127.0.0.1", s.tls_port, "ca.pem", NULL, NULL);
  expect_ok(before, "secure=1");
  assert_int_equal(cgrpc_server_credentials_set_cert_files(
                       s.creds, cert_path("wrong.pem"), cert_path("wrong.key")),
                   0);
  ch = channel("127.0.0.1", s.tls_port, "ca.pem", NULL, "wrong.test");
  expect_ok(ch, "secure=1");
  cgrpc_channel_del(ch);
  ch = channel("127.0.0.1", s.tls_port, "ca.pem", NULL, NULL);
  expect_unavailable(ch, "mismatch");
  cgrpc_channel_del(ch);
  /* The connection made before goes on with the old pair. */
  expect_ok(before, "secure=1");
  cgrpc_channel_del(before);
  /* A bad pair is refused and the current one stays. */
  assert_int_not_equal(
      cgrpc_server_credentials_set_cert_files(s.creds, cert_path("server.pem"),
                                              cert_path("wrong.key")),
      0);
  ch = channel("127.0.0.1", s.tls_port, "ca.pem", NULL, "wrong.test");
  expect_ok(ch, "secure=1");
  cgrpc_channel_del(ch);
  server_stop(&s);
}

/* Channels that share a session cache resume each other's sessions (a
 * new channel per call pays one full handshake); the resumed connection
 * still knows the client's certificate.  Without the cache a new channel
 * starts afresh; a cache of one name evicts the other. */
static void test_tls_session_resumption(void **state) {
  tls_server s;
  cgrpc_channel *ch;
  int i;
  (void)state;
  server_start(&s, "server.pem", CGRPC_CLIENT_AUTH_REQUIRE);
  assert_int_equal(cgrpc_tls_session_cache_new(&session_cache, 1), 0);
  for (i = 0; i < 3; i++) {
    ch = channel("127.0.0.1", s.tls_port, "ca.pem", "client", NULL);
    expect_ok(ch, i == 0 ? "reused=0" : "reused=1");
    expect_ok(ch, "verified=1 subject=O=cgrpc tests,CN=client");
    cgrpc_channel_del(ch);
  }
  /* Another name: a full handshake, which takes the cache's only place. */
  ch = channel("localhost", s.tls_port, "ca.pem", "client", NULL);
  expect_ok(ch, "reused=0");
  cgrpc_channel_del(ch);
  ch = channel("127.0.0.1", s.tls_port, "ca.pem", "client", NULL);
  expect_ok(ch, "reused=0");
  cgrpc_channel_del(ch);
  cgrpc_tls_session_cache_del(session_cache); /* the channels had theirs */
  session_cache = NULL;
  ch = channel("127.0.0.1", s.tls_port, "ca.pem", "client", NULL);
  expect_ok(ch, "TLSv1.3 TLS_");
  expect_ok(ch, "reused=0");
  cgrpc_channel_del(ch);
  assert_int_equal(cgrpc_tls_session_cache_new(&session_cache, 0),
                   CGRPC_ERR_INVALID_ARGUMENT);
  server_stop(&s);
}

/* ---- raw OpenSSL peers, for what our own peers never do: ALPN ---- */

/* A TCP socket to 127.0.0.1:|port| (or a listener on a free port when
 * |port| is 0), with 5 s receive and send timeouts. */
static int raw_socket(int port, int *bound) {
  struct sockaddr_in a;
  struct timeval tv = {5, 0};
  socklen_t len = sizeof a;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)port);
  if (port) {
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  } else {
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *bound = ntohs(a.sin_port);
  }
  return fd;
}

/* Handshakes with our server offering the ALPN list |alpn| (wire format;
 * NULL: no ALPN extension).  Returns 1 when the server let the connection
 * through to HTTP/2 (its SETTINGS arrived), 0 when it refused it (a failed
 * handshake, or a close before any byte). */
static int raw_client_gets_http2(int port, const unsigned char *alpn,
                                 unsigned len) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  SSL *ssl;
  unsigned char buf[9];
  int fd, ok = 0;
  assert_non_null(ctx);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  if (alpn)
    assert_int_equal(SSL_CTX_set_alpn_protos(ctx, alpn, len), 0);
  fd = raw_socket(port, NULL);
  ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  /* A frame header (9 bytes: a SETTINGS frame) if HTTP/2 was let in. */
  if (SSL_connect(ssl) == 1 && SSL_read(ssl, buf, sizeof buf) == 9)
    ok = buf[3] == 0x4;
  ERR_clear_error();
  SSL_free(ssl);
  close(fd);
  SSL_CTX_free(ctx);
  return ok;
}

/* Our server refuses a client that does not ask for "h2", and keeps
 * serving. */
static void test_tls_server_requires_alpn_h2(void **state) {
  static const unsigned char h2[] = {2, 'h', '2'};
  static const unsigned char http11[] = {8,   'h', 't', 't', 'p',
                                         '/', '1', '.', '1'};
  static const unsigned char both[] = {8,   'h', 't', 't', 'p', '/',
                                       '1', '.', '1', 2,   'h', '2'};
  tls_server s;
  cgrpc_channel *ch;
  (void)state;
  server_start(&s, "server.pem", CGRPC_CLIENT_AUTH_NONE);
  assert_int_equal(raw_client_gets_http2(s.tls_port, h2, sizeof h2), 1);
  assert_int_equal(raw_client_gets_http2(s.tls_port, both, sizeof both), 1);
  assert_int_equal(raw_client_gets_http2(s.tls_port, http11, sizeof http11), 0);
  assert_int_equal(raw_client_gets_http2(s.tls_port, NULL, 0), 0);
  ch = channel("127.0.0.1", s.tls_port, "ca.pem", NULL, NULL);
  expect_ok(ch, "secure=1");
  cgrpc_channel_del(ch);
  server_stop(&s);
}

typedef struct raw_server {
  int listen_fd, port;
  int alpn; /* 0: no ALPN in its answer; 1: it picks "http/1.1" */
  pthread_t thread;
} raw_server;

static int pick_http11(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned inlen, void *arg) {
  (void)ssl;
  (void)in;
  (void)inlen;
  (void)arg;
  *out = (const unsigned char *)"http/1.1";
  *outlen = 8;
  return SSL_TLSEXT_ERR_OK;
}

/* Serves TLS without "h2" to up to 4 connections, one at a time, reading
 * each until it closes (every wait bounded by the socket timeouts). */
static void *raw_server_main(void *arg) {
  raw_server *rs = arg;
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx ||
      SSL_CTX_use_certificate_chain_file(ctx, cert_path("server.pem")) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, cert_path("server.key"),
                                  SSL_FILETYPE_PEM) != 1)
    return NULL;
  if (rs->alpn)
    SSL_CTX_set_alpn_select_cb(ctx, pick_http11, NULL);
  for (int i = 0; i < 4; i++) {
    char buf[256];
    int fd = accept(rs->listen_fd, NULL, NULL);
    SSL *ssl;
    if (fd < 0)
      break;
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) == 1)
      while (SSL_read(ssl, buf, sizeof buf) > 0)
        ;
    ERR_clear_error();
    SSL_free(ssl);
    close(fd);
  }
  SSL_CTX_free(ctx);
  return NULL;
}

/* Our client refuses a server that does not pick "h2", naming why. */
static void test_tls_client_requires_alpn_h2(void **state) {
  (void)state;
  for (int alpn = 0; alpn < 2; alpn++) {
    raw_server rs = {-1, 0, alpn, 0};
    cgrpc_channel *ch;
    rs.listen_fd = raw_socket(0, &rs.port);
    assert_int_equal(pthread_create(&rs.thread, NULL, raw_server_main, &rs), 0);
    ch = channel("127.0.0.1", rs.port, "ca.pem", NULL, NULL);
    expect_unavailable(ch, alpn ? "TLS handshake failed" : "ALPN \"h2\"");
    cgrpc_channel_del(ch);
    shutdown(rs.listen_fd, SHUT_RDWR); /* ends the accept loop */
    pthread_join(rs.thread, NULL);
    close(rs.listen_fd);
  }
}

/* TLS over a Unix socket: the name checked is the authority, "localhost". */
static void test_tls_over_unix_socket(void **state) {
  static const Cgrpc__Test__EchoService_Servicer servicer = {tls_echo, NULL};
  cgrpc_server_credentials *sc;
  cgrpc_server *server;
  cgrpc_channel *ch;
  char dir[] = "/tmp/cgrpc-tls-XXXXXX", addr[100], path[64];
  (void)state;
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/s.sock", dir);
  snprintf(addr, sizeof addr, "unix:%s", path);
  assert_int_equal(cgrpc_server_credentials_new(&sc), 0);
  assert_int_equal(cgrpc_server_credentials_set_cert_files(
                       sc, cert_path("server.pem"), cert_path("server.key")),
                   0);
  assert_int_equal(cgrpc_server_new(&server, NULL), 0);
  assert_int_equal(cgrpc_server_add_secure_port(server, addr, sc, NULL), 0);
  assert_int_equal(
      cgrpc__test__echo_service__servicer__register(server, &servicer, NULL),
      0);
  assert_int_equal(cgrpc_server_start(server), 0);
  {
    cgrpc_channel_options *o;
    cgrpc_channel_credentials *cc;
    assert_int_equal(cgrpc_channel_options_new(&o), 0);
    assert_int_equal(cgrpc_channel_credentials_new(&cc), 0);
    assert_int_equal(
        cgrpc_channel_credentials_set_root_certs_file(cc, cert_path("ca.pem")),
        0);
    cgrpc_channel_options_set_credentials(o, cc);
    cgrpc_channel_credentials_del(cc);
    assert_int_equal(cgrpc_channel_new(&ch, addr, o), 0);
    cgrpc_channel_options_del(o);
  }
  expect_ok(ch, "secure=1");
  cgrpc_channel_del(ch);
  cgrpc_server_shutdown(server, 0);
  cgrpc_server_del(server);
  cgrpc_server_credentials_del(sc);
  assert_int_equal(rmdir(dir), 0); /* the socket file went at shutdown */
}

/* ---- call credentials ---- */

typedef struct seen_context {
  char service_url[200], method[100], authority[100];
  cgrpc_status_code fail_with; /* OK: adds "x-api-key: k1" */
} seen_context;

static cgrpc_status_code api_key(const cgrpc_auth_metadata_context *context,
                                 cgrpc_metadata_array *metadata, char *message,
                                 size_t message_size, void *user_data) {
  seen_context *seen = user_data;
  snprintf(seen->service_url, sizeof seen->service_url, "%s",
           context->service_url);
  snprintf(seen->method, sizeof seen->method, "%s", context->method);
  snprintf(seen->authority, sizeof seen->authority, "%s", context->authority);
  if (seen->fail_with != CGRPC_STATUS_OK) {
    snprintf(message, message_size, "no token for %s", context->method);
    return seen->fail_with;
  }
  /* Reserved keys are refused, whatever the callback tries. */
  assert_int_equal(cgrpc_metadata_array_add(metadata, "grpc-status", "0"),
                   CGRPC_ERR_INVALID_ARGUMENT);
  return cgrpc_metadata_array_add(metadata, "authorization", "ApiKey k1") == 0
             ? CGRPC_STATUS_OK
             : CGRPC_STATUS_UNAVAILABLE;
}

/* A bearer token reaches the handler over TLS. */
static void test_call_creds_access_token(void **state) {
  tls_server s;
  cgrpc_channel *ch;
  (void)state;
  server_start(&s, "server.pem", CGRPC_CLIENT_AUTH_NONE);
  assert_int_equal(
      cgrpc_call_credentials_new_access_token(&call_creds, "s3cr3t"), 0);
  ch = channel("127.0.0.1", s.tls_port, "ca.pem", NULL, NULL);
  cgrpc_call_credentials_del(call_creds); /* the channel keeps its own */
  call_creds = NULL;
  expect_ok(ch, "auth=Bearer s3cr3t");
  expect_ok(ch, "auth=Bearer s3cr3t");
  cgrpc_channel_del(ch);
  assert_int_equal(cgrpc_call_credentials_new_access_token(&call_creds, "a\nb"),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_call_credentials_new_access_token(&call_creds, ""),
                   CGRPC_ERR_INVALID_ARGUMENT);
  server_stop(&s);
}

/* The callback sees the call's method, authority and service URL; a
 * failure fails the call with its status before anything is sent; codes
 * reserved to the control plane become INTERNAL (gRFC A54). */
static void test_call_creds_callback(void **state) {
  seen_context seen;
  tls_server s;
  cgrpc_channel *ch;
  char why[300], want[200];
  cgrpc_status_code code;
  int before;
  (void)state;
  memset(&seen, 0, sizeof seen);
  server_start(&s, "server.pem", CGRPC_CLIENT_AUTH_NONE);
  assert_int_equal(
      cgrpc_call_credentials_new_callback(&call_creds, api_key, &seen, NULL),
      0);
  ch = channel("localhost", s.tls_port, "ca.pem", NULL, NULL);
  expect_ok(ch, "auth=ApiKey k1");
  snprintf(want, sizeof want, "https://localhost:%d/cgrpc.test.EchoService",
           s.tls_port);
  assert_string_equal(seen.service_url, want);
  assert_string_equal(seen.method, "/cgrpc.test.EchoService/Echo");
  snprintf(want, sizeof want, "localhost:%d", s.tls_port);
  assert_string_equal(seen.authority, want);

  before = atomic_load(&echo_calls);
  seen.fail_with = CGRPC_STATUS_UNAUTHENTICATED;
  code = echo(ch, NULL, 0, why, sizeof why);
  assert_int_equal(code, CGRPC_STATUS_UNAUTHENTICATED);
  assert_string_equal(why, "no token for /cgrpc.test.EchoService/Echo");
  seen.fail_with = CGRPC_STATUS_FAILED_PRECONDITION;
  assert_int_equal(echo(ch, NULL, 0, why, sizeof why), CGRPC_STATUS_INTERNAL);
  seen.fail_with = (cgrpc_status_code)99;
  assert_int_equal(echo(ch, NULL, 0, why, sizeof why), CGRPC_STATUS_UNKNOWN);
  assert_int_equal(atomic_load(&echo_calls), before); /* none reached it */
  seen.fail_with = CGRPC_STATUS_OK;
  expect_ok(ch, "auth=ApiKey k1");
  cgrpc_channel_del(ch);
  cgrpc_call_credentials_del(call_creds);
  call_creds = NULL;
  server_stop(&s);
}

/* Plaintext: refused unless allowed, and then the URL says http. */
static void test_call_creds_plaintext(void **state) {
  seen_context seen;
  cgrpc_channel_options *o;
  cgrpc_channel *ch = NULL;
  tls_server s;
  char target[64];
  (void)state;
  memset(&seen, 0, sizeof seen);
  server_start(&s, "server.pem", CGRPC_CLIENT_AUTH_NONE);
  assert_int_equal(
      cgrpc_call_credentials_new_callback(&call_creds, api_key, &seen, NULL),
      0);
  assert_int_equal(cgrpc_channel_options_new(&o), 0);
  cgrpc_channel_options_set_call_credentials(o, call_creds);
  snprintf(target, sizeof target, "127.0.0.1:%d", s.plain_port);
  assert_int_equal(cgrpc_channel_new(&ch, target, o),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_null(ch);
  cgrpc_channel_options_del(o);
  insecure_call_creds = 1;
  ch = channel("127.0.0.1", s.plain_port, NULL, NULL, NULL);
  insecure_call_creds = 0;
  expect_ok(ch, "secure=0");
  assert_true(strncmp(seen.service_url, "http://127.0.0.1:", 17) == 0);
  cgrpc_channel_del(ch);
  cgrpc_call_credentials_del(call_creds);
  call_creds = NULL;
  assert_int_equal(
      cgrpc_call_credentials_new_callback(&call_creds, NULL, NULL, NULL),
      CGRPC_ERR_INVALID_ARGUMENT);
  server_stop(&s);
}

static void test_tls_bad_credentials(void **state) {
  cgrpc_server_credentials *sc;
  cgrpc_channel_credentials *cc;
  cgrpc_server *server;
  (void)state;
  assert_int_equal(cgrpc_server_credentials_new(&sc), 0);
  assert_int_equal(cgrpc_server_credentials_set_cert_files(
                       sc, cert_path("nonexistent.pem"), cert_path("x.key")),
                   CGRPC_ERR_NOT_FOUND);
  assert_int_equal(
      cgrpc_server_credentials_set_cert_pem(sc, "junk", 4, "junk", 4),
      CGRPC_ERR_PROTO);
  assert_int_equal(cgrpc_server_new(&server, NULL), 0);
  /* No certificate yet. */
  assert_int_equal(
      cgrpc_server_add_secure_port(server, "127.0.0.1:0", sc, NULL),
      CGRPC_ERR_INVALID_ARGUMENT);
  cgrpc_server_del(server);
  cgrpc_server_credentials_del(sc);
  assert_int_equal(cgrpc_channel_credentials_new(&cc), 0);
  assert_int_equal(cgrpc_channel_credentials_set_root_certs_pem(cc, "junk", 4),
                   CGRPC_ERR_PROTO);
  cgrpc_channel_credentials_del(cc);
}

/* ---- blocking callers driving the channel's loop (issue 9) ---- */

typedef struct tls_caller {
  cgrpc_channel *ch;
  atomic_int *stop;
  pthread_t thread;
  int ok, unavailable, other;
  cgrpc_status_code other_code;
} tls_caller;

/* Back-to-back wait-for-ready calls until |*stop| (bounded: 60 s). */
static void *tls_caller_main(void *arg) {
  tls_caller *c = arg;
  int64_t until = it_now_ms() + 60000;
  while (!atomic_load(c->stop) && it_now_ms() < until) {
    Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
    Cgrpc__Test__EchoReply *reply = NULL;
    cgrpc_call_options opts = {.timeout_ms = 10000 * IT_SLOW,
                               .wait_for_ready = CGRPC_WAIT_FOR_READY};
    cgrpc_status_code code;
    req.message = "hi";
    code =
        cgrpc__test__echo_service__echo__call(c->ch, &req, &reply, &opts, NULL);
    if (code == CGRPC_STATUS_OK)
      c->ok++;
    else if (code == CGRPC_STATUS_UNAVAILABLE)
      c->unavailable++;
    else if (c->other++ == 0)
      c->other_code = code;
    if (reply)
      protobuf_c_message_free_unpacked(&reply->base, NULL);
  }
  return NULL;
}

/* Two threads making blocking calls back to back over TLS, so that they
 * drive the channel's loop; the server goes away and comes back on the same
 * port, so a caller drives the reconnection and the TLS handshake too. */
static void test_tls_blocking_callers_drive(void **state) {
  tls_server s;
  tls_caller c[2];
  atomic_int stop;
  cgrpc_channel *ch;
  int i, port;
  (void)state;
  server_start(&s, "server.pem", CGRPC_CLIENT_AUTH_NONE);
  port = s.tls_port;
  ch = channel("127.0.0.1", port, "ca.pem", NULL, NULL);
  atomic_init(&stop, 0);
  for (i = 0; i < 2; i++) {
    memset(&c[i], 0, sizeof c[i]);
    c[i].ch = ch;
    c[i].stop = &stop;
    assert_int_equal(pthread_create(&c[i].thread, NULL, tls_caller_main, &c[i]),
                     0);
  }
  it_sleep_ms(200);
  server_stop(&s);
  it_sleep_ms(50);
  server_start_on(&s, "server.pem", CGRPC_CLIENT_AUTH_NONE, port);
  it_sleep_ms(300);
  atomic_store(&stop, 1);
  for (i = 0; i < 2; i++) {
    pthread_join(c[i].thread, NULL);
    if (c[i].other)
      fail_msg("caller %d: %d calls ended neither OK nor UNAVAILABLE "
               "(first %s)",
               i, c[i].other, cgrpc_status_code_name(c[i].other_code));
    assert_true(c[i].ok > 0);
  }
  for (i = 0; i < 20; i++)
    expect_ok(ch, "secure=1");
  cgrpc_channel_del(ch);
  server_stop(&s);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tls_ip_and_dns_names),
      cmocka_unit_test(test_tls_name_override),
      cmocka_unit_test(test_tls_unknown_ca),
      cmocka_unit_test(test_tls_system_roots),
      cmocka_unit_test(test_tls_wrong_name),
      cmocka_unit_test(test_tls_expired),
      cmocka_unit_test(test_tls_plaintext_mismatch),
      cmocka_unit_test(test_tls_mutual_required),
      cmocka_unit_test(test_tls_mutual_requested),
      cmocka_unit_test(test_tls_certificate_swap),
      cmocka_unit_test(test_tls_session_resumption),
      cmocka_unit_test(test_tls_server_requires_alpn_h2),
      cmocka_unit_test(test_tls_client_requires_alpn_h2),
      cmocka_unit_test(test_tls_over_unix_socket),
      cmocka_unit_test(test_call_creds_access_token),
      cmocka_unit_test(test_call_creds_callback),
      cmocka_unit_test(test_call_creds_plaintext),
      cmocka_unit_test(test_tls_bad_credentials),
      cmocka_unit_test(test_tls_blocking_callers_drive),
  };
  const char *dir = getenv("CGRPC_TEST_CERTS");
  if (!dir) {
    fprintf(stderr, "test_tls: set CGRPC_TEST_CERTS to the directory that "
                    "tests/common/make_test_certs.sh made\n");
    return 1;
  }
  snprintf(certs, sizeof certs, "%s", dir);
  /* The raw OpenSSL peers write with write(), which raises SIGPIPE when our
   * side has closed; the library itself never does (tests/unit/io). */
  signal(SIGPIPE, SIG_IGN);
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
