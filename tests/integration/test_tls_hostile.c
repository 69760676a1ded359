/* SPDX-License-Identifier: MIT */
/*
 * TLS against peers that misbehave, on loopback, with the certificates of
 * the tls_certs fixture (CGRPC_TEST_CERTS):
 *
 *  - clients that stall in the handshake (silent, half a ClientHello) or
 *    send something else (HTTP/1.1, noise) next to a client that works;
 *  - a client that asks for a flood over TLS and never reads;
 *  - TLS 1.3 key updates, requested every few kilobytes, each way;
 *  - a corrupt record in the middle of a connection;
 *  - servers that never answer the ClientHello, or answer in HTTP/1.1.
 *
 * The peers that need TLS of their own go through a relay thread (OpenSSL
 * on one side, plaintext on the other), so raw HTTP/2 (tests/common/h2raw)
 * and our own plaintext client can sit behind a TLS connection that the
 * test controls.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <setjmp.h>
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
#include "relay.h"
#include "stream_harness.h"

#define SLOW IT_SLOW
#define BOUND_MS (10000 * SLOW)

#define CHECK IT_CHECK
#define CHECKS_DONE IT_CHECKS_DONE

static const char *cert(const char *name) {
  static _Thread_local char buf[4][600]; /* threads: the raw peers */
  static _Thread_local int next;
  const char *dir = getenv("CGRPC_TEST_CERTS");
  char *p = buf[next++ % 4];
  snprintf(p, sizeof buf[0], "%s/%s", dir ? dir : ".", name);
  return p;
}

/* ---- a server with a TLS port and a plaintext one ---- */

typedef struct hs_server {
  cgrpc_server *server;
  cgrpc_server_credentials *creds;
  int tls_port, plain_port;
  stream_stats stats;
} hs_server;

static void hs_start(hs_server *s) {
  cgrpc_server_options *o;
  memset(s, 0, sizeof *s);
  assert_int_equal(cgrpc_server_credentials_new(&s->creds), 0);
  assert_int_equal(cgrpc_server_credentials_set_cert_files(
                       s->creds, cert("server.pem"), cert("server.key")),
                   0);
  assert_int_equal(cgrpc_server_options_new(&o), 0);
  if (getenv("CGRPC_TEST_LOG"))
    cgrpc_server_options_set_log(o, cgrpc_log_stderr, NULL);
  assert_int_equal(cgrpc_server_new(&s->server, o), 0);
  cgrpc_server_options_del(o);
  assert_int_equal(cgrpc_server_add_secure_port(s->server, "127.0.0.1:0",
                                                s->creds, &s->tls_port),
                   0);
  assert_int_equal(
      cgrpc_server_add_insecure_port(s->server, "127.0.0.1:0", &s->plain_port),
      0);
  assert_int_equal(echo_service_register(s->server, NULL), 0);
  assert_int_equal(stream_service_register(s->server, &s->stats), 0);
  assert_int_equal(cgrpc_server_start(s->server), 0);
}

/* Deletes the server without hanging the test (grace 0). */
static void hs_stop(hs_server *s) {
  if (s->server && it_server_del_bounded(s->server, BOUND_MS) < 0)
    print_message("  (server abandoned: cgrpc_server_del did not return)\n");
  cgrpc_server_credentials_del(s->creds);
  s->server = NULL;
}

/* A channel to 127.0.0.1:|port|: TLS trusting ca.pem, or plaintext. */
static cgrpc_channel *hs_channel(int port, int tls) {
  cgrpc_channel_options *o;
  cgrpc_channel *ch = NULL;
  char target[64];
  assert_int_equal(cgrpc_channel_options_new(&o), 0);
  if (getenv("CGRPC_TEST_LOG"))
    cgrpc_channel_options_set_log(o, cgrpc_log_stderr, NULL);
  if (tls) {
    cgrpc_channel_credentials *cc;
    assert_int_equal(cgrpc_channel_credentials_new(&cc), 0);
    assert_int_equal(
        cgrpc_channel_credentials_set_root_certs_file(cc, cert("ca.pem")), 0);
    cgrpc_channel_options_set_credentials(o, cc);
    cgrpc_channel_credentials_del(cc);
  }
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  assert_int_equal(cgrpc_channel_new(&ch, target, o), 0);
  cgrpc_channel_options_del(o);
  return ch;
}

/* An Echo call of |payload_len| bytes (0: none) with |timeout_ms|; returns
 * its code, DATA_LOSS when an OK reply does not carry the payload back, and
 * the status message in |why|. */
static cgrpc_status_code echo_payload(cgrpc_channel *ch, size_t payload_len,
                                      int64_t timeout_ms, char *why,
                                      size_t why_size) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_call_options opts = {.timeout_ms = timeout_ms};
  cgrpc_status st = {0};
  cgrpc_status_code code;
  uint8_t *p = malloc(payload_len ? payload_len : 1);
  size_t i;
  assert_non_null(p);
  for (i = 0; i < payload_len; i++)
    p[i] = (uint8_t)(i * 7 + 3);
  req.message = "hostile";
  req.payload.data = p;
  req.payload.len = payload_len;
  code = cgrpc__test__echo_service__echo__call(ch, &req, &reply, &opts, &st);
  if (code == CGRPC_STATUS_OK &&
      (!reply || reply->payload.len != payload_len ||
       (payload_len && memcmp(reply->payload.data, p, payload_len) != 0)))
    code = CGRPC_STATUS_DATA_LOSS;
  if (why)
    snprintf(why, why_size, "%s", st.message ? st.message : "");
  if (reply)
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_status_clear(&st);
  free(p);
  return code;
}

#define CHECK_ECHO(ch, len, what)                                              \
  do {                                                                         \
    char why_[300];                                                            \
    cgrpc_status_code c_ =                                                     \
        echo_payload((ch), (len), BOUND_MS, why_, sizeof why_);                \
    CHECK(c_ == CGRPC_STATUS_OK, "%s: %s (%s)", (what),                        \
          cgrpc_status_code_name(c_), why_);                                   \
  } while (0)

/* ---- the server's side ---- */

/* The first bytes of a real ClientHello (written to a memory BIO). */
static size_t client_hello(uint8_t *buf, size_t size) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  SSL *ssl;
  BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
  int n;
  assert_non_null(ctx);
  ssl = SSL_new(ctx);
  assert_non_null(ssl);
  SSL_set_bio(ssl, rb, wb);
  SSL_set_connect_state(ssl);
  assert_int_equal(SSL_do_handshake(ssl), -1); /* wants the ServerHello */
  n = BIO_read(wb, buf, (int)size);
  assert_true(n > 100);
  ERR_clear_error();
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  return (size_t)n;
}

/* Clients that stall in the handshake (silent, or half a ClientHello) hold
 * no thread and cost no CPU; clients that speak something else than TLS
 * are closed; a real client next to them is served at once; shutdown does
 * not wait for the stalled ones. */
static void test_tls_hostile_stalled_handshakes(void **state) {
  enum { SILENT = 6, HALF = 4, NOISE = 4 };
  static const char http1[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  int silent[SILENT], half[HALF], noise[NOISE], i;
  uint8_t hello[2048], junk[64];
  size_t hello_len = client_hello(hello, sizeof hello);
  hs_server s;
  cgrpc_channel *ch;
  double cpu;
  int64_t took;
  (void)state;
  hs_start(&s);
  for (i = 0; i < SILENT; i++)
    assert_true((silent[i] = it_tcp_connect(s.tls_port)) >= 0);
  for (i = 0; i < HALF; i++) {
    assert_true((half[i] = it_tcp_connect(s.tls_port)) >= 0);
    assert_int_equal(it_tcp_send_all(half[i], hello, hello_len / 2), 0);
  }
  for (i = 0; i < (int)sizeof junk; i++)
    junk[i] = (uint8_t)(i * 37 + 11);
  for (i = 0; i < NOISE; i++) {
    assert_true((noise[i] = it_tcp_connect(s.tls_port)) >= 0);
    if (i % 2)
      assert_int_equal(it_tcp_send_all(noise[i], http1, sizeof http1 - 1), 0);
    else
      assert_int_equal(it_tcp_send_all(noise[i], junk, sizeof junk), 0);
  }

  ch = hs_channel(s.tls_port, 1);
  for (i = 0; i < 3; i++)
    CHECK_ECHO(ch, 1000, "a TLS call beside stalled handshakes");
  for (i = 0; i < NOISE; i++)
    CHECK(it_tcp_wait_closed(noise[i], BOUND_MS) == 1,
          "the server kept a connection that sent %s",
          i % 2 ? "HTTP/1.1" : "noise");

  cpu = it_cpu_while_sleeping_s(1000);
  print_message("  cpu %.3f s over 1 s with %d stalled handshakes\n", cpu,
                SILENT + HALF);
  CHECK(cpu < 0.2,
        "%.2f s of CPU in 1 s: a thread spins on a stalled "
        "handshake",
        cpu);

  cgrpc_channel_del(ch);
  took = it_server_shutdown_bounded(s.server, 0, BOUND_MS);
  CHECK(took >= 0 && took < 2000 * SLOW,
        "shutdown with stalled handshakes took %lld ms", (long long)took);
  for (i = 0; i < SILENT; i++)
    close(silent[i]);
  for (i = 0; i < HALF; i++)
    close(half[i]);
  for (i = 0; i < NOISE; i++)
    close(noise[i]);
  if (took >= 0)
    hs_stop(&s);
  CHECKS_DONE();
}

/* A client behind TLS asks for a flood and never reads: past the call's
 * deadline the server sleeps, and shutdown does not hang on it (the
 * lifetime tests' D1, over TLS). */
static void test_tls_hostile_unread_flood(void **state) {
  Cgrpc__Test__DownloadRequest req = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
  hs_server s;
  relay r;
  h2raw_buf b;
  double cpu;
  int64_t took;
  int fd;
  (void)state;
  hs_start(&s);
  memset(&r, 0, sizeof r);
  r.out_port = s.tls_port;
  r.out_tls = 1;
  relay_start(&r);
  fd = h2raw_connect(r.port, 4096);
  assert_true(fd >= 0);
  h2raw_buf_init(&b);
  it_raw_client_greeting(&b);
  it_raw_request_headers(&b, 1, "/cgrpc.test.StreamService/Flood", r.port, "1S",
                         NULL);
  req.count = 100000;
  req.size = 16384;
  {
    h2raw_buf msg;
    h2raw_buf_init(&msg);
    it_raw_grpc_message(&msg, &req.base);
    h2raw_data(&b, 1, 1, msg.data, msg.len);
    h2raw_buf_free(&msg);
  }
  assert_int_equal(h2raw_send_buf(fd, &b), 0);
  h2raw_buf_free(&b);

  CHECK(it_wait_flag(&s.stats.handlers, 1, BOUND_MS) == 1,
        "the Flood handler never ran");
  it_sleep_ms(2500); /* past the 1 s deadline, with every buffer full */
  cpu = it_cpu_while_sleeping_s(1000);
  print_message("  cpu %.3f s over 1 s, %lld chunks sent\n", cpu,
                (long long)atomic_load(&s.stats.sent));
  CHECK(cpu < 0.2,
        "%.2f s of CPU in 1 s with a TLS client that does not "
        "read: a thread spins",
        cpu);
  took = it_server_shutdown_bounded(s.server, 0, BOUND_MS);
  CHECK(took >= 0, "cgrpc_server_shutdown(grace 0) did not return");
  close(fd);
  relay_stop(&r);
  if (took >= 0)
    hs_stop(&s);
  CHECKS_DONE();
}

/* Key updates every 16 KiB each way, requested of the peer too: 256 KiB
 * echoed both ways eight times, through our server's TLS (our plaintext
 * client behind the relay) or our client's (our plaintext server behind
 * it). */
static void key_updates(int client_side) {
  hs_server s;
  relay r;
  cgrpc_channel *ch;
  int i;
  hs_start(&s);
  memset(&r, 0, sizeof r);
  r.in_tls = client_side;
  r.cert_file = cert("server.pem");
  r.key_file = cert("server.key");
  r.out_tls = !client_side;
  r.out_port = client_side ? s.plain_port : s.tls_port;
  r.key_update_every = 16384;
  relay_start(&r);
  ch = hs_channel(r.port, client_side);
  for (i = 0; i < 8; i++)
    CHECK_ECHO(ch, 256 * 1024, "an Echo of 256 KiB through key updates");
  print_message("  %d key updates\n", atomic_load(&r.key_updates));
  CHECK(atomic_load(&r.key_updates) >= 64, "only %d key updates",
        atomic_load(&r.key_updates));
  cgrpc_channel_del(ch);
  relay_stop(&r);
  hs_stop(&s);
  CHECKS_DONE();
}

static void test_tls_hostile_key_updates_server(void **state) {
  (void)state;
  key_updates(0);
}

static void test_tls_hostile_key_updates_client(void **state) {
  (void)state;
  key_updates(1);
}

/* A record that does not decrypt, mid-connection: the server closes that
 * connection (the relay sees it end) and serves the others. */
static void test_tls_hostile_corrupt_record(void **state) {
  hs_server s;
  relay r;
  cgrpc_channel *ch, *direct;
  (void)state;
  hs_start(&s);
  memset(&r, 0, sizeof r);
  r.out_port = s.tls_port;
  r.out_tls = 1;
  relay_start(&r);
  ch = hs_channel(r.port, 0);
  direct = hs_channel(s.tls_port, 1);
  CHECK_ECHO(ch, 100, "an Echo through the relay");
  atomic_store(&r.corrupt, 1);
  CHECK(it_wait_flag(&r.ended, 1, BOUND_MS) == 1,
        "the server kept a connection after a record that does not decrypt");
  CHECK_ECHO(direct, 100, "an Echo on another connection");
  cgrpc_channel_del(ch);
  cgrpc_channel_del(direct);
  relay_stop(&r);
  hs_stop(&s);
  CHECKS_DONE();
}

/* ---- the client's side ---- */

typedef struct blocked_call {
  cgrpc_channel *ch;
  cgrpc_status_code code;
} blocked_call;

static void blocked_call_main(void *arg) {
  blocked_call *c = arg;
  c->code = echo_payload(c->ch, 0, 30000, NULL, 0);
}

/* A server that accepts the connection and never answers the ClientHello:
 * a call ends at its deadline, and deleting the channel while another
 * thread's call waits on the handshake returns at once. */
static void test_tls_hostile_silent_server(void **state) {
  cgrpc_channel *ch;
  blocked_call *bc = calloc(1, sizeof *bc);
  it_bg_job *job;
  char why[300];
  cgrpc_status_code code;
  int64_t t0, took;
  int port, lfd = h2raw_listen(&port, 0); /* the kernel accepts for it */
  (void)state;
  assert_true(lfd >= 0);
  assert_non_null(bc);
  ch = hs_channel(port, 1);
  t0 = it_now_ms();
  code = echo_payload(ch, 0, 300, why, sizeof why);
  took = it_now_ms() - t0;
  CHECK(code == CGRPC_STATUS_DEADLINE_EXCEEDED,
        "a call to a silent TLS server: %s (%s)", cgrpc_status_code_name(code),
        why);
  CHECK(took < 3000 * SLOW, "its 300 ms deadline took %lld ms",
        (long long)took);

  bc->ch = ch;
  job = it_bg_start(blocked_call_main, bc);
  it_sleep_ms(200);
  took = it_channel_del_bounded(ch, BOUND_MS);
  CHECK(took >= 0 && took < 2000 * SLOW,
        "cgrpc_channel_del during a stalled handshake took %lld ms",
        (long long)took);
  if (it_bg_wait(job, BOUND_MS)) {
    CHECK(bc->code != CGRPC_STATUS_OK &&
              bc->code != CGRPC_STATUS_DEADLINE_EXCEEDED,
          "the call blocked in the handshake ended %s",
          cgrpc_status_code_name(bc->code));
    free(bc);
  } else {
    CHECK(0, "the call blocked in the handshake never returned");
  }
  close(lfd);
  CHECKS_DONE();
}

typedef struct http1_server {
  int lfd, port;
  pthread_t thread;
} http1_server;

static void *http1_main(void *arg) {
  static const char answer[] =
      "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
      "Connection: close\r\n\r\n";
  http1_server *h = arg;
  char buf[4096];
  int fd = h2raw_accept(h->lfd, 0, BOUND_MS);
  if (fd < 0)
    return NULL;
  relay_set_timeouts(fd, 5);
  (void)!recv(fd, buf, sizeof buf, 0);
  (void)!send(fd, answer, sizeof answer - 1, MSG_NOSIGNAL);
  close(fd);
  return NULL;
}

/* A server that answers the ClientHello in HTTP/1.1: UNAVAILABLE, with a
 * message that says the peer does not speak TLS. */
static void test_tls_hostile_http1_server(void **state) {
  http1_server h;
  cgrpc_channel *ch;
  char why[300];
  cgrpc_status_code code;
  (void)state;
  h.lfd = h2raw_listen(&h.port, 0);
  assert_true(h.lfd >= 0);
  assert_int_equal(pthread_create(&h.thread, NULL, http1_main, &h), 0);
  ch = hs_channel(h.port, 1);
  code = echo_payload(ch, 0, BOUND_MS, why, sizeof why);
  CHECK(code == CGRPC_STATUS_UNAVAILABLE, "against an HTTP/1.1 server: %s (%s)",
        cgrpc_status_code_name(code), why);
  CHECK(strstr(why, "TLS") != NULL, "the message \"%s\" does not name TLS",
        why);
  print_message("  %s: %s\n", cgrpc_status_code_name(code), why);
  cgrpc_channel_del(ch);
  pthread_join(h.thread, NULL);
  close(h.lfd);
  CHECKS_DONE();
}

#define T(name)                                                                \
  cmocka_unit_test_setup_teardown(name, it_watchdog_setup, it_watchdog_teardown)

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      T(test_tls_hostile_stalled_handshakes),
      T(test_tls_hostile_unread_flood),
      T(test_tls_hostile_key_updates_server),
      T(test_tls_hostile_key_updates_client),
      T(test_tls_hostile_corrupt_record),
      T(test_tls_hostile_silent_server),
      T(test_tls_hostile_http1_server),
  };
  if (!getenv("CGRPC_TEST_CERTS")) {
    fprintf(stderr, "test_tls_hostile: set CGRPC_TEST_CERTS to the directory "
                    "that tests/common/make_test_certs.sh made\n");
    return 1;
  }
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
