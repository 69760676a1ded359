/* SPDX-License-Identifier: MIT */
/*
 * Wire conformance: what our server and client put on the wire, checked
 * frame by frame by a raw HTTP/2 peer (tests/common/h2raw) on loopback.
 * The peer is a real socket and the other side a real cgrpc server or
 * channel; nothing is mocked.  Each test names the rule it checks, from
 * gRPC's PROTOCOL-HTTP2.md ("the gRPC spec"), gRFC A6 (transparent retry)
 * or RFC 9113 (HTTP/2).
 *
 * Server tests play a raw client against an EchoService server; client
 * tests play a raw server (on the test thread, while an async call runs on
 * the channel's loop).  Every wait is bounded: reads take a timeout, and a
 * watchdog (alarm) ends a test that is stuck anyway.  Outcomes are checked
 * with CHECK(), which records a failure and lets the test clean up first.
 *
 * Each test is its own CTest entry (the executable takes a cmocka test
 * filter as its argument).
 */
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>
#include <zlib.h>

#include "h2raw.h"
#include "harness.h"

#define SLOW IT_SLOW

/* The longest any single wait in a test may take. */
#define BOUND_MS (5000 * SLOW)
/* How long a raw server keeps listening after the call has ended, to catch
 * attempts that should not come. */
#define GRACE_MS (300 * SLOW)

#define ECHO_PATH "/cgrpc.test.EchoService/Echo"

/* ---- soft checks (harness.h) ---- */

#define CHECK IT_CHECK
#define CHECKS_DONE IT_CHECKS_DONE

/* |s| or "(none)", for messages. */
static const char *str_or_none(const char *s) { return s ? s : "(none)"; }

/* ---- watchdog ---- */

/* ---- messages ---- */

/* The EchoRequest {message: |text|} as a DATA frame with END_STREAM. */
static void put_echo_request(h2raw_buf *b, uint32_t stream, const char *text) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  h2raw_buf m;
  req.message = (char *)(uintptr_t)text;
  h2raw_buf_init(&m);
  it_raw_grpc_message(&m, &req.base);
  h2raw_data(b, stream, 1, m.data, m.len);
  h2raw_buf_free(&m);
}

/* The one EchoReply in the gRPC message bytes |p| (|n| of them), or NULL. */
static Cgrpc__Test__EchoReply *parse_echo_reply(const uint8_t *p, size_t n) {
  size_t len;
  if (n < 5 || p[0] != 0)
    return NULL;
  len =
      ((size_t)p[1] << 24) | ((size_t)p[2] << 16) | ((size_t)p[3] << 8) | p[4];
  if (len != n - 5)
    return NULL;
  return cgrpc__test__echo_reply__unpack(NULL, len, p + 5);
}

/* ==== a raw client, for the server tests ============================== */

typedef struct rclient {
  int fd, port;
  h2raw_hpack *hp; /* decodes the server's header blocks */
} rclient;

/* Connects to 127.0.0.1:|port| and sends the preface and an empty
 * SETTINGS frame. */
static void rc_open(rclient *c, int port) {
  h2raw_buf b;
  c->port = port;
  c->fd = h2raw_connect(port, 0);
  assert_true(c->fd >= 0);
  assert_int_equal(h2raw_hpack_new(&c->hp), 0);
  h2raw_buf_init(&b);
  h2raw_preface(&b);
  h2raw_settings(&b, NULL, 0);
  assert_int_equal(h2raw_send_buf(c->fd, &b), 0);
  h2raw_buf_free(&b);
}

static void rc_close(rclient *c) {
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  h2raw_hpack_del(c->hp);
  c->hp = NULL;
}

/* Appends request HEADERS for stream |stream| to |b|: :method |method|,
 * the usual :scheme, :path and :authority, then content-type (left out when
 * |ctype| is NULL), te: trailers and, when |timeout| is not NULL,
 * grpc-timeout: |timeout| (which may be empty). */
static void put_request_headers(h2raw_buf *b, const rclient *c, uint32_t stream,
                                const char *method, const char *ctype,
                                const char *timeout, int end_stream) {
  char authority[32];
  const char *kv[20];
  int n = 0;
  snprintf(authority, sizeof authority, "127.0.0.1:%d", c->port);
  kv[n++] = ":method";
  kv[n++] = method;
  kv[n++] = ":scheme";
  kv[n++] = "http";
  kv[n++] = ":path";
  kv[n++] = ECHO_PATH;
  kv[n++] = ":authority";
  kv[n++] = authority;
  if (ctype) {
    kv[n++] = "content-type";
    kv[n++] = ctype;
  }
  kv[n++] = "te";
  kv[n++] = "trailers";
  if (timeout) {
    kv[n++] = "grpc-timeout";
    kv[n++] = timeout;
  }
  kv[n++] = NULL;
  h2raw_headers(b, stream, end_stream, kv);
}

/* Sends a whole Echo request (HEADERS, then DATA with END_STREAM). */
static void rc_send_echo(rclient *c, uint32_t stream, const char *ctype,
                         const char *timeout, const char *text) {
  h2raw_buf b;
  h2raw_buf_init(&b);
  put_request_headers(&b, c, stream, "POST", ctype, timeout, 0);
  put_echo_request(&b, stream, text);
  assert_int_equal(h2raw_send_buf(c->fd, &b), 0);
  h2raw_buf_free(&b);
}

/* What a raw client saw of one stream, and of the connection. */
typedef struct seen {
  h2raw_fields hdrs[2]; /* the stream's HEADERS: response (or Trailers-Only)
                           and trailers */
  int hdrs_end[2];      /* END_STREAM on them */
  int n_hdrs;
  h2raw_buf data; /* the stream's DATA payloads, concatenated */
  int n_data;
  int ended;            /* END_STREAM seen on the stream */
  long rst;             /* its RST_STREAM error code; -1: none */
  long goaway;          /* GOAWAY error code; -1: none */
  uint32_t goaway_last; /* and its last stream id */
  int ping_acked;
  /* WINDOW_UPDATE increments: on the stream, and on the connection */
  uint64_t window_credit, conn_credit;
  int credited;  /* a WINDOW_UPDATE came since the flag was cleared */
  int closed;    /* the server closed the connection */
  int timed_out; /* a read timed out or failed */
  int bad_block; /* a header block did not decode */
} seen;

static void seen_init(seen *s) {
  memset(s, 0, sizeof *s);
  h2raw_buf_init(&s->data);
  s->rst = -1;
  s->goaway = -1;
}

static void seen_free(seen *s) {
  int i;
  for (i = 0; i < s->n_hdrs; i++)
    h2raw_fields_free(&s->hdrs[i]);
  h2raw_buf_free(&s->data);
  seen_init(s);
}

enum {
  UNTIL_STREAM_END = 1, /* END_STREAM or RST_STREAM on the stream */
  UNTIL_GOAWAY = 2,
  UNTIL_CLOSE = 4,
  UNTIL_PING_ACK = 8,
  UNTIL_WINDOW = 16 /* a WINDOW_UPDATE (for the stream or the connection),
                       or the stream's RST_STREAM, after which none comes */
};

static int seen_done(const seen *s, unsigned until) {
  return ((until & UNTIL_STREAM_END) && (s->ended || s->rst >= 0)) ||
         ((until & UNTIL_GOAWAY) && s->goaway >= 0) ||
         ((until & UNTIL_CLOSE) && s->closed) ||
         ((until & UNTIL_PING_ACK) && s->ping_acked) ||
         ((until & UNTIL_WINDOW) && (s->credited || s->rst >= 0));
}

/*
 * Reads frames on |c| for at most |ms|, noting those of |stream| and of
 * the connection in |s|, until one of the |until| events.  SETTINGS are
 * acknowledged; every header block is decoded (to keep the HPACK table in
 * step).  Returns 1 when an |until| event happened, else 0.
 */
static int rc_read(rclient *c, uint32_t stream, seen *s, unsigned until,
                   int ms) {
  int64_t end = it_now_ms() + ms;
  for (;;) {
    h2raw_rframe f;
    int64_t left;
    int rv;
    if (seen_done(s, until))
      return 1;
    if (s->closed)
      return 0;
    left = end - it_now_ms();
    if (left <= 0 || (rv = h2raw_read_frame(c->fd, (int)left, &f)) < 0) {
      s->timed_out = 1;
      return 0;
    }
    if (rv == 0) {
      s->closed = 1;
      continue;
    }
    h2raw_ack_settings(c->fd, &f);
    switch (f.type) {
    case H2RAW_HEADERS: {
      h2raw_fields l;
      if (h2raw_hpack_decode(c->hp, &f, &l) != 0) {
        s->bad_block = 1;
        break;
      }
      if (f.stream == stream && s->n_hdrs < 2) {
        s->hdrs_end[s->n_hdrs] = (f.flags & H2RAW_FLAG_END_STREAM) != 0;
        s->hdrs[s->n_hdrs++] = l;
      } else {
        h2raw_fields_free(&l);
      }
      if (f.stream == stream && (f.flags & H2RAW_FLAG_END_STREAM))
        s->ended = 1;
      break;
    }
    case H2RAW_DATA:
      if (f.stream == stream) {
        h2raw_append(&s->data, f.payload, f.len); /* our servers never pad */
        s->n_data++;
        if (f.flags & H2RAW_FLAG_END_STREAM)
          s->ended = 1;
      }
      break;
    case H2RAW_RST_STREAM:
      if (f.stream == stream)
        s->rst = (long)h2raw_rframe_u32(&f, 0);
      break;
    case H2RAW_GOAWAY:
      s->goaway_last = h2raw_rframe_u32(&f, 0) & 0x7fffffffu;
      s->goaway = (long)h2raw_rframe_u32(&f, 4);
      break;
    case H2RAW_WINDOW_UPDATE:
      if (f.len == 4 && (f.stream == stream || f.stream == 0)) {
        *(f.stream ? &s->window_credit : &s->conn_credit) +=
            h2raw_rframe_u32(&f, 0) & 0x7fffffffu;
        s->credited = 1;
      }
      break;
    case H2RAW_PING:
      if ((f.flags & H2RAW_FLAG_ACK) && f.len == 8 &&
          memcmp(f.payload, "wiresync", 8) == 0)
        s->ping_acked = 1;
      break;
    default:
      break;
    }
    h2raw_rframe_free(&f);
  }
}

/* A PING and its ACK: the server has processed everything sent before.
 * Returns 1, or 0 when no ACK came in time. */
static int rc_sync(rclient *c) {
  h2raw_buf b;
  seen s;
  int ok;
  h2raw_buf_init(&b);
  h2raw_ping(&b, 0, (const uint8_t *)"wiresync");
  assert_int_equal(h2raw_send_buf(c->fd, &b), 0);
  h2raw_buf_free(&b);
  seen_init(&s);
  ok = rc_read(c, 0, &s, UNTIL_PING_ACK, BOUND_MS);
  CHECK(ok, "no PING ACK from the server (closed %d, GOAWAY %ld)", s.closed,
        s.goaway);
  seen_free(&s);
  return ok;
}

/* Checks that |s| is a complete, successful Echo response on |what|: a
 * :status 200 HEADERS, one EchoReply carrying |text| (returned, or NULL),
 * then trailers with grpc-status 0. */
static Cgrpc__Test__EchoReply *check_echo_ok(const seen *s, const char *text,
                                             const char *what) {
  Cgrpc__Test__EchoReply *reply;
  const char *st0 =
      s->n_hdrs > 0 ? h2raw_fields_get(&s->hdrs[0], ":status") : NULL;
  const char *gs =
      s->n_hdrs > 1 ? h2raw_fields_get(&s->hdrs[1], "grpc-status") : NULL;
  CHECK(s->ended,
        "%s: the response did not end (rst %ld, goaway %ld, "
        "closed %d, timed out %d)",
        what, s->rst, s->goaway, s->closed, s->timed_out);
  CHECK(st0 && strcmp(st0, "200") == 0, "%s: :status %s", what,
        str_or_none(st0));
  CHECK(s->n_hdrs == 2 && s->hdrs_end[1], "%s: %d HEADERS frames", what,
        s->n_hdrs);
  CHECK(gs && strcmp(gs, "0") == 0, "%s: grpc-status %s (grpc-message %s)",
        what, str_or_none(gs),
        str_or_none(s->n_hdrs > 1
                        ? h2raw_fields_get(&s->hdrs[1], "grpc-message")
                    : s->n_hdrs ? h2raw_fields_get(&s->hdrs[0], "grpc-message")
                                : NULL));
  reply = parse_echo_reply(s->data.data, s->data.len);
  CHECK(reply && reply->message && strcmp(reply->message, text) == 0,
        "%s: the reply is %s", what,
        reply ? str_or_none(reply->message) : "not one EchoReply");
  return reply;
}

/* ==== 1. Not a gRPC request: plain HTTP answers =========================
 *
 * The gRPC spec (PROTOCOL-HTTP2.md, Requests): "If Content-Type does not
 * begin with "application/grpc", gRPC servers SHOULD respond with HTTP
 * status of 415 (Unsupported Media Type)" -- so that a non-gRPC client does
 * not read the usual :status 200 error response as a success.  The spec
 * allows only ":method POST"; a GET is answered 405 (Method Not Allowed,
 * RFC 9110 15.5.6), as other gRPC servers do.  The answer is a stream-level
 * one: the handler never runs and the connection goes on serving. */
static void http_reject(const char *method, const char *ctype,
                        const char *want) {
  it_server srv;
  rclient c;
  seen s;
  h2raw_buf b;
  Cgrpc__Test__EchoReply *reply;
  const char *st;
  assert_int_equal(it_server_start(&srv, NULL, 0), 0);
  rc_open(&c, srv.port);
  h2raw_buf_init(&b);
  if (strcmp(method, "POST") == 0) {
    put_request_headers(&b, &c, 1, method, ctype, NULL, 0);
    put_echo_request(&b, 1, "not grpc");
  } else {
    put_request_headers(&b, &c, 1, method, ctype, NULL, 1);
  }
  assert_int_equal(h2raw_send_buf(c.fd, &b), 0);
  h2raw_buf_free(&b);

  seen_init(&s);
  rc_read(&c, 1, &s, UNTIL_STREAM_END | UNTIL_GOAWAY, BOUND_MS);
  st = s.n_hdrs ? h2raw_fields_get(&s.hdrs[0], ":status") : NULL;
  CHECK(st && strcmp(st, want) == 0,
        "%s with content-type %s: :status %s, "
        "expected %s (rst %ld, goaway %ld)",
        method, str_or_none(ctype), str_or_none(st), want, s.rst, s.goaway);
  CHECK(s.ended, "the %s response did not end the stream", want);
  CHECK(s.goaway < 0, "GOAWAY(%ld) instead of a stream-level answer", s.goaway);
  CHECK(atomic_load(&srv.stats.calls) == 0, "the Echo handler ran %d times",
        atomic_load(&srv.stats.calls));
  seen_free(&s);

  /* The same connection still serves gRPC. */
  rc_send_echo(&c, 3, "application/grpc", NULL, "after");
  seen_init(&s);
  rc_read(&c, 3, &s, UNTIL_STREAM_END | UNTIL_GOAWAY, BOUND_MS);
  reply = check_echo_ok(&s, "after", "a gRPC call after the rejected one");
  if (reply)
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  seen_free(&s);
  rc_close(&c);
  it_server_stop(&srv, 0);
}

static void test_wire_server_no_content_type_415(void **state) {
  (void)state;
  http_reject("POST", NULL, "415");
  CHECKS_DONE();
}

static void test_wire_server_text_html_415(void **state) {
  (void)state;
  http_reject("POST", "text/html", "415");
  CHECKS_DONE();
}

static void test_wire_server_get_405(void **state) {
  (void)state;
  http_reject("GET", "application/grpc", "405");
  CHECKS_DONE();
}

/* ==== 2. grpc-timeout ==================================================
 *
 * The gRPC spec: Timeout -> "grpc-timeout" TimeoutValue TimeoutUnit, with
 * TimeoutValue -> {positive integer as ASCII string of at most 8 digits}
 * and TimeoutUnit one of H M S m u n.  A value outside that grammar is a
 * malformed request: it gets a Trailers-Only response (one HEADERS frame
 * with END_STREAM: :status 200, grpc-status, grpc-message; no DATA) with
 * INTERNAL and a message saying the timeout is malformed, and the handler
 * never runs.  Valid values work and set the deadline. */
static void test_wire_server_timeout_malformed(void **state) {
  static const char *const bad[] = {"1X", "123456789S", "", "-1S"};
  it_server srv;
  rclient c;
  size_t i;
  (void)state;
  assert_int_equal(it_server_start(&srv, NULL, 0), 0);
  rc_open(&c, srv.port);
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint32_t stream = 1 + 2 * (uint32_t)i;
    const char *st, *gs, *gm;
    seen s;
    rc_send_echo(&c, stream, "application/grpc", bad[i], "bad timeout");
    seen_init(&s);
    rc_read(&c, stream, &s, UNTIL_STREAM_END | UNTIL_GOAWAY, BOUND_MS);
    st = s.n_hdrs ? h2raw_fields_get(&s.hdrs[0], ":status") : NULL;
    gs = s.n_hdrs ? h2raw_fields_get(&s.hdrs[0], "grpc-status") : NULL;
    gm = s.n_hdrs ? h2raw_fields_get(&s.hdrs[0], "grpc-message") : NULL;
    print_message("  grpc-timeout \"%s\": :status %s, grpc-status %s, "
                  "grpc-message \"%s\"\n",
                  bad[i], str_or_none(st), str_or_none(gs), str_or_none(gm));
    CHECK(s.n_hdrs == 1 && s.hdrs_end[0] && s.n_data == 0,
          "grpc-timeout \"%s\": not Trailers-Only (%d HEADERS, END_STREAM "
          "on the first %d, %d DATA, rst %ld, goaway %ld)",
          bad[i], s.n_hdrs, s.hdrs_end[0], s.n_data, s.rst, s.goaway);
    CHECK(st && strcmp(st, "200") == 0, "grpc-timeout \"%s\": :status %s",
          bad[i], str_or_none(st));
    CHECK(gs && strcmp(gs, "13") == 0,
          "grpc-timeout \"%s\": grpc-status %s, expected 13 (INTERNAL)", bad[i],
          str_or_none(gs));
    CHECK(gm && strcasestr(gm, "malformed") && strcasestr(gm, "timeout"),
          "grpc-timeout \"%s\": grpc-message \"%s\" does not say the timeout "
          "is malformed",
          bad[i], str_or_none(gm));
    seen_free(&s);
  }
  CHECK(atomic_load(&srv.stats.calls) == 0, "the Echo handler ran %d times",
        atomic_load(&srv.stats.calls));
  rc_close(&c);
  it_server_stop(&srv, 0);
  CHECKS_DONE();
}

static void test_wire_server_timeout_valid(void **state) {
  static const struct {
    const char *value;
    int64_t ms;
  } good[] = {{"1S", 1000}, {"100m", 100}};
  it_server srv;
  rclient c;
  size_t i;
  (void)state;
  assert_int_equal(it_server_start(&srv, NULL, 0), 0);
  rc_open(&c, srv.port);
  for (i = 0; i < sizeof good / sizeof good[0]; i++) {
    uint32_t stream = 1 + 2 * (uint32_t)i;
    Cgrpc__Test__EchoReply *reply;
    char what[64];
    seen s;
    snprintf(what, sizeof what, "grpc-timeout \"%s\"", good[i].value);
    rc_send_echo(&c, stream, "application/grpc", good[i].value, "timely");
    seen_init(&s);
    rc_read(&c, stream, &s, UNTIL_STREAM_END | UNTIL_GOAWAY, BOUND_MS);
    reply = check_echo_ok(&s, "timely", what);
    if (reply) {
      CHECK(reply->time_remaining_ms > 0 &&
                reply->time_remaining_ms <= good[i].ms,
            "%s: the handler saw %lld ms left", what,
            (long long)reply->time_remaining_ms);
      protobuf_c_message_free_unpacked(&reply->base, NULL);
    }
    seen_free(&s);
  }
  CHECK(atomic_load(&srv.stats.calls) == 2, "the Echo handler ran %d times",
        atomic_load(&srv.stats.calls));
  rc_close(&c);
  it_server_stop(&srv, 0);
  CHECKS_DONE();
}

/* ==== 3. Frames on closed streams (RFC 9113 5.1) ========================
 *
 * "closed": a stream closed by END_STREAM in both directions takes no more
 * frames; one that arrives is a connection error of type STREAM_CLOSED
 * (5.1, and 5.4.1: GOAWAY, then the TCP connection is closed).  A stream
 * closed because the peer sent RST_STREAM is different: a frame the peer
 * sends on it afterwards is a stream error of type STREAM_CLOSED
 * (RST_STREAM), and the connection lives on (RFC 7540 5.1, kept in spirit
 * by RFC 9113 5.1/5.4.2). */

/* A complete Echo exchange on |stream|. */
static void rc_echo_round(rclient *c, uint32_t stream, const char *text) {
  Cgrpc__Test__EchoReply *reply;
  seen s;
  rc_send_echo(c, stream, "application/grpc", NULL, text);
  seen_init(&s);
  rc_read(c, stream, &s, UNTIL_STREAM_END | UNTIL_GOAWAY, BOUND_MS);
  reply = check_echo_ok(&s, text, "the Echo exchange");
  if (reply)
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  seen_free(&s);
}

/* After a full exchange on stream 1, sends |frame_type| on it: expects
 * GOAWAY(STREAM_CLOSED), then the close. */
static void frame_after_end_stream(uint8_t frame_type) {
  it_server srv;
  rclient c;
  h2raw_buf b;
  seen s;
  assert_int_equal(it_server_start(&srv, NULL, 0), 0);
  rc_open(&c, srv.port);
  rc_echo_round(&c, 1, "first");
  rc_sync(&c);

  h2raw_buf_init(&b);
  if (frame_type == H2RAW_DATA) {
    static const uint8_t junk[5] = {0, 0, 0, 0, 0}; /* an empty message */
    h2raw_data(&b, 1, 0, junk, sizeof junk);
  } else {
    put_request_headers(&b, &c, 1, "POST", "application/grpc", NULL, 0);
  }
  assert_int_equal(h2raw_send_buf(c.fd, &b), 0);
  h2raw_buf_free(&b);

  seen_init(&s);
  rc_read(&c, 1, &s, UNTIL_GOAWAY, BOUND_MS);
  print_message("  %s on the closed stream: GOAWAY %ld (last stream %u), "
                "RST_STREAM %ld, closed %d\n",
                frame_type == H2RAW_DATA ? "DATA" : "HEADERS", s.goaway,
                (unsigned)s.goaway_last, s.rst, s.closed);
  CHECK(s.goaway == H2RAW_STREAM_CLOSED,
        "%s on a stream closed by END_STREAM both ways: GOAWAY %ld, "
        "RST_STREAM %ld, expected GOAWAY(STREAM_CLOSED = 5)",
        frame_type == H2RAW_DATA ? "DATA" : "HEADERS", s.goaway, s.rst);
  CHECK(s.goaway < 0 || s.goaway_last == 1,
        "GOAWAY's last stream id is %u, expected 1", (unsigned)s.goaway_last);
  if (s.goaway >= 0) {
    rc_read(&c, 1, &s, UNTIL_CLOSE, BOUND_MS);
    CHECK(s.closed, "the server kept the connection open after its GOAWAY");
  }
  seen_free(&s);
  rc_close(&c);
  it_server_stop(&srv, 0);
}

static void test_wire_server_data_after_end_stream(void **state) {
  (void)state;
  frame_after_end_stream(H2RAW_DATA);
  CHECKS_DONE();
}

static void test_wire_server_headers_after_end_stream(void **state) {
  (void)state;
  frame_after_end_stream(H2RAW_HEADERS);
  CHECKS_DONE();
}

/* The client opens stream 1 (headers only), resets it, waits until the
 * server has processed the reset (a PING round trip), then sends DATA on
 * it: RST_STREAM(STREAM_CLOSED) on stream 1, no GOAWAY, and the connection
 * still serves. */
/* |one_write|: the reset and the DATA go in one write, so they reach the
 * server in one read (the reset must still be taken first). */
static void data_after_client_rst(int one_write) {
  it_server srv;
  rclient c;
  h2raw_buf b;
  seen s;
  long goaway;
  assert_int_equal(it_server_start(&srv, NULL, 0), 0);
  rc_open(&c, srv.port);
  h2raw_buf_init(&b);
  put_request_headers(&b, &c, 1, "POST", "application/grpc", NULL, 0);
  assert_int_equal(h2raw_send_buf(c.fd, &b), 0);
  rc_sync(&c);
  h2raw_buf_reset(&b);
  h2raw_rst_stream(&b, 1, H2RAW_CANCEL);
  if (!one_write) {
    assert_int_equal(h2raw_send_buf(c.fd, &b), 0);
    rc_sync(&c);
    h2raw_buf_reset(&b);
  }
  put_echo_request(&b, 1, "too late");
  assert_int_equal(h2raw_send_buf(c.fd, &b), 0);
  h2raw_buf_free(&b);

  seen_init(&s);
  rc_read(&c, 1, &s, UNTIL_STREAM_END | UNTIL_GOAWAY, BOUND_MS);
  print_message("  DATA after our RST_STREAM: RST_STREAM %ld, GOAWAY %ld, "
                "%d HEADERS, closed %d\n",
                s.rst, s.goaway, s.n_hdrs, s.closed);
  CHECK(s.rst == H2RAW_STREAM_CLOSED,
        "DATA on a stream the client reset: RST_STREAM %ld, GOAWAY %ld, "
        "expected RST_STREAM(STREAM_CLOSED = 5)",
        s.rst, s.goaway);
  CHECK(s.goaway < 0, "GOAWAY(%ld): a stream error became a connection one",
        s.goaway);
  goaway = s.goaway;
  seen_free(&s);
  if (goaway < 0)
    rc_echo_round(&c, 3, "still open");
  rc_close(&c);
  it_server_stop(&srv, 0);
  CHECKS_DONE();
}

static void test_wire_server_data_after_client_rst(void **state) {
  (void)state;
  data_after_client_rst(0);
}

static void test_wire_server_data_after_client_rst_same_read(void **state) {
  (void)state;
  data_after_client_rst(1);
}

/* ==== 4b. An answer before the request has ended =========================
 *
 * RFC 9113 8.1 lets a server that has answered end the client's half with
 * RST_STREAM(NO_ERROR), and the gRPC spec allows it; but a proxy in between
 * may forward that reset as a CANCEL and lose the status (HAProxy before
 * 3.2, its issue #1219).  So the server reads and drops the rest of the
 * request, and resets only past 2 MiB of it or after 2 s: a client that
 * ends its half in time closes the stream with no reset at all.  The
 * answer here is INTERNAL for a malformed grpc-timeout, sent as soon as
 * the request headers arrive. */

/* Starts an Echo server and a raw client of it, opens stream 1 with a
 * malformed grpc-timeout and no END_STREAM, and reads the Trailers-Only
 * answer into |s|. */
static void early_answer(it_server *srv, rclient *c, seen *s) {
  h2raw_buf b;
  const char *gs;
  assert_int_equal(it_server_start(srv, NULL, 0), 0);
  rc_open(c, srv->port);
  h2raw_buf_init(&b);
  put_request_headers(&b, c, 1, "POST", "application/grpc", "bogus", 0);
  assert_int_equal(h2raw_send_buf(c->fd, &b), 0);
  h2raw_buf_free(&b);
  seen_init(s);
  rc_read(c, 1, s, UNTIL_STREAM_END | UNTIL_GOAWAY, BOUND_MS);
  gs = s->n_hdrs ? h2raw_fields_get(&s->hdrs[0], "grpc-status") : NULL;
  CHECK(s->ended && s->rst < 0 && gs && strcmp(gs, "13") == 0,
        "the early answer: ended %d, RST_STREAM %ld, grpc-status %s", s->ended,
        s->rst, str_or_none(gs));
}

/* Sends |n| bytes of request DATA on stream 1 (END_STREAM on the last
 * frame when |end|), 16 KiB a frame, within the server's windows (1 MiB
 * for the stream, the connection's 65535 and its WINDOW_UPDATEs: the server
 * gives the window back as it drops the bytes).  Stops at the first
 * RST_STREAM or GOAWAY; then a PING and its ACK show that the server has
 * taken everything.  Returns the bytes sent. */
static size_t send_rest(rclient *c, seen *s, size_t n, int end) {
  static uint8_t chunk[16 * 1024];
  size_t sent = 0;
  while (sent < n && s->rst < 0 && s->goaway < 0 && !s->closed) {
    size_t k = n - sent < sizeof chunk ? n - sent : sizeof chunk;
    h2raw_buf b;
    if (sent + k > (1u << 20) + s->window_credit ||
        sent + k > 65535 + s->conn_credit) {
      s->credited = 0;
      if (!rc_read(c, 1, s, UNTIL_WINDOW | UNTIL_GOAWAY, BOUND_MS))
        break;
      continue;
    }
    h2raw_buf_init(&b);
    h2raw_data(&b, 1, end && sent + k == n, chunk, k);
    assert_int_equal(h2raw_send_buf(c->fd, &b), 0);
    h2raw_buf_free(&b);
    sent += k;
  }
  if (s->rst < 0 && s->goaway < 0 && !s->closed) {
    h2raw_buf b;
    h2raw_buf_init(&b);
    h2raw_ping(&b, 0, (const uint8_t *)"wiresync");
    assert_int_equal(h2raw_send_buf(c->fd, &b), 0);
    h2raw_buf_free(&b);
    s->ping_acked = 0;
    rc_read(c, 1, s, UNTIL_PING_ACK | UNTIL_GOAWAY, BOUND_MS);
  }
  return sent;
}

/* The client sends the rest of its request and ends it: the stream closes
 * with no reset, and the connection serves the next call. */
static void test_wire_server_early_answer_drains(void **state) {
  it_server srv;
  rclient c;
  seen s;
  (void)state;
  early_answer(&srv, &c, &s);
  CHECK(send_rest(&c, &s, 200 * 1024, 1) == 200 * 1024 && s.rst < 0 &&
            s.goaway < 0,
        "the request's rest after the answer: RST_STREAM %ld, GOAWAY %ld, "
        "expected neither",
        s.rst, s.goaway);
  seen_free(&s);
  rc_echo_round(&c, 3, "after the drain");
  rc_close(&c);
  it_server_stop(&srv, 0);
  CHECKS_DONE();
}

/* The drain ended with RST_STREAM(NO_ERROR) after |what|, and the
 * connection serves the next call; then everything is closed. */
static void check_drain_reset_and_close(it_server *srv, rclient *c, seen *s,
                                        const char *what) {
  CHECK(s->rst == H2RAW_NO_ERROR,
        "%s after the answer: RST_STREAM %ld, GOAWAY %ld, expected "
        "RST_STREAM(NO_ERROR)",
        what, s->rst, s->goaway);
  seen_free(s);
  rc_echo_round(c, 3, "after the reset");
  rc_close(c);
  it_server_stop(srv, 0);
}

/* Past 2 MiB of dropped bytes the stream is reset with NO_ERROR. */
static void test_wire_server_early_answer_drain_bytes(void **state) {
  it_server srv;
  rclient c;
  seen s;
  size_t sent;
  (void)state;
  early_answer(&srv, &c, &s);
  sent = send_rest(&c, &s, 3 * 1024 * 1024, 0);
  print_message("  reset after %zu bytes: RST_STREAM %ld\n", sent, s.rst);
  CHECK(sent > 2 * 1024 * 1024, "reset after %zu bytes, expected past 2 MiB",
        sent);
  check_drain_reset_and_close(&srv, &c, &s, "3 MiB");
  CHECKS_DONE();
}

/* A client that sends nothing more is reset with NO_ERROR after 2 s. */
static void test_wire_server_early_answer_drain_time(void **state) {
  it_server srv;
  rclient c;
  seen s;
  int64_t t0, waited;
  (void)state;
  t0 = it_now_ms();
  early_answer(&srv, &c, &s);
  s.ended = 0; /* now wait for the reset */
  rc_read(&c, 1, &s, UNTIL_STREAM_END | UNTIL_GOAWAY, 2000 + BOUND_MS);
  waited = it_now_ms() - t0;
  print_message("  reset after %lld ms: RST_STREAM %ld\n", (long long)waited,
                s.rst);
  /* The timer starts after the answer went, so never before 2 s. */
  CHECK(waited >= 1900, "reset after %lld ms, expected 2 s", (long long)waited);
  check_drain_reset_and_close(&srv, &c, &s, "silence");
  CHECKS_DONE();
}

/* The server goes while a stream drains: its timer goes with the call
 * (ASan and valgrind see a use after free or a leak otherwise). */
static void test_wire_server_early_answer_server_stop(void **state) {
  it_server srv;
  rclient c;
  seen s;
  (void)state;
  early_answer(&srv, &c, &s);
  send_rest(&c, &s, 64 * 1024, 0);
  CHECK(s.rst < 0, "RST_STREAM %ld while draining", s.rst);
  seen_free(&s);
  it_server_stop(&srv, 0);
  rc_close(&c);
  CHECKS_DONE();
}

/* ==== 5. Compression, server side =====================================
 *
 * gRPC's doc/compression.md and PROTOCOL-HTTP2.md: a message with the
 * Compressed-Flag 1 is compressed with the call's grpc-encoding; a server
 * answers an encoding it does not support with UNIMPLEMENTED and lists
 * what it accepts in grpc-accept-encoding; the flag without a
 * grpc-encoding other than identity is INTERNAL; the server compresses a
 * response only with an encoding the client's grpc-accept-encoding lists.
 * The receive limit applies to the inflated size (gRPC's
 * max_receive_message_length; RESOURCE_EXHAUSTED). */

/* Appends a message with the compressed flag holding |n| bytes of |p|
 * compressed with zlib's |bits| (15 + 16: gzip, 15: zlib-wrapped deflate;
 * 0: not compressed at all, the flag lies). */
static void put_compressed(h2raw_buf *b, int bits, const void *p, size_t n) {
  uint8_t pre[5];
  uLong bound = n + 1024;
  uint8_t *out;
  z_stream zs;
  size_t len = n;
  if (bits) {
    memset(&zs, 0, sizeof zs);
    assert_int_equal(
        deflateInit2(&zs, 9, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
    bound = deflateBound(&zs, (uLong)n);
    out = malloc(bound);
    assert_non_null(out);
    zs.next_in = (Bytef *)(uintptr_t)p;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)bound;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    len = zs.total_out;
    deflateEnd(&zs);
  } else {
    out = malloc(n + 1);
    assert_non_null(out);
    memcpy(out, p, n);
  }
  pre[0] = 1;
  pre[1] = (uint8_t)(len >> 24);
  pre[2] = (uint8_t)(len >> 16);
  pre[3] = (uint8_t)(len >> 8);
  pre[4] = (uint8_t)len;
  h2raw_append(b, pre, 5);
  h2raw_append(b, out, len);
  free(out);
}

/* The packed EchoRequest {message: |text|}; free(). */
static uint8_t *pack_echo_request(const char *text, size_t *n) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  uint8_t *p;
  req.message = (char *)(uintptr_t)text;
  *n = protobuf_c_message_get_packed_size(&req.base);
  p = malloc(*n + 1);
  assert_non_null(p);
  protobuf_c_message_pack(&req.base, p);
  return p;
}

/* Sends an Echo request on |stream| with the extra headers |extra|
 * (name, value, ..., NULL) after the usual ones, and |msg| (a framed
 * message, or NULL for EchoRequest {message: |text|} uncompressed) in
 * DATA frames of at most |max_frame| bytes. */
static void rc_send_custom_n(rclient *c, uint32_t stream,
                             const char *const *extra, const h2raw_buf *msg,
                             const char *text, size_t max_frame) {
  h2raw_buf b, m;
  h2raw_buf_init(&b);
  h2raw_buf_init(&m);
  it_raw_request_headers(&b, stream, ECHO_PATH, c->port, NULL, extra);
  if (!msg) {
    Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
    req.message = (char *)(uintptr_t)text;
    it_raw_grpc_message(&m, &req.base);
    msg = &m;
  }
  assert_int_equal(h2raw_send_buf(c->fd, &b), 0);
  /* DATA in frames the default SETTINGS_MAX_FRAME_SIZE allows. */
  {
    size_t off = 0;
    do {
      size_t k = msg->len - off > max_frame ? max_frame : msg->len - off;
      h2raw_buf_reset(&b);
      h2raw_data(&b, stream, off + k == msg->len, msg->data + off, k);
      if (h2raw_send_buf(c->fd, &b) != 0)
        break; /* the server may have answered and reset already */
      off += k;
    } while (off < msg->len);
  }
  h2raw_buf_free(&m);
  h2raw_buf_free(&b);
}

/* rc_send_custom_n() in frames the default SETTINGS_MAX_FRAME_SIZE
 * allows. */
static void rc_send_custom(rclient *c, uint32_t stream,
                           const char *const *extra, const h2raw_buf *msg,
                           const char *text) {
  rc_send_custom_n(c, stream, extra, msg, text, 16384);
}

/* The grpc-status (from the trailers, or Trailers-Only) of |s|. */
static const char *seen_status(const seen *s) {
  return s->n_hdrs ? h2raw_fields_get(&s->hdrs[s->n_hdrs - 1], "grpc-status")
                   : NULL;
}

static const char *seen_message(const seen *s) {
  return s->n_hdrs ? h2raw_fields_get(&s->hdrs[s->n_hdrs - 1], "grpc-message")
                   : NULL;
}

/* An encoding the server does not support: Trailers-Only UNIMPLEMENTED
 * whose grpc-accept-encoding lists what it does accept (and not the one
 * asked for); the handler never runs and the connection serves on. */
static void test_wire_server_unsupported_encoding(void **state) {
  static const char *const extra[] = {"grpc-encoding", "snappy", NULL};
  static const uint8_t junk[] = "not snappy either";
  it_server srv;
  rclient c;
  h2raw_buf m;
  seen s;
  const char *ae, *gs, *gm;
  (void)state;
  assert_int_equal(it_server_start(&srv, NULL, 0), 0);
  rc_open(&c, srv.port);
  h2raw_buf_init(&m);
  put_compressed(&m, 0, junk, sizeof junk);
  rc_send_custom(&c, 1, extra, &m, NULL);
  h2raw_buf_free(&m);
  seen_init(&s);
  rc_read(&c, 1, &s, UNTIL_STREAM_END | UNTIL_GOAWAY, BOUND_MS);
  gs = seen_status(&s);
  gm = seen_message(&s);
  ae = s.n_hdrs ? h2raw_fields_get(&s.hdrs[0], "grpc-accept-encoding") : NULL;
  print_message("  grpc-encoding snappy: grpc-status %s, grpc-message \"%s\", "
                "grpc-accept-encoding \"%s\"\n",
                str_or_none(gs), str_or_none(gm), str_or_none(ae));
  CHECK(s.n_hdrs == 1 && s.hdrs_end[0] && s.n_data == 0,
        "not Trailers-Only (%d HEADERS, %d DATA, rst %ld)", s.n_hdrs, s.n_data,
        s.rst);
  CHECK(gs && strcmp(gs, "12") == 0,
        "grpc-status %s, expected 12 "
        "(UNIMPLEMENTED)",
        str_or_none(gs));
  CHECK(ae && strcmp(ae, "identity,deflate,gzip") == 0,
        "grpc-accept-encoding \"%s\", expected \"identity,deflate,gzip\"",
        str_or_none(ae));
  CHECK(gm && strstr(gm, "snappy"),
        "grpc-message \"%s\" does not name the "
        "encoding",
        str_or_none(gm));
  CHECK(atomic_load(&srv.stats.calls) == 0, "the Echo handler ran %d times",
        atomic_load(&srv.stats.calls));
  seen_free(&s);
  rc_echo_round(&c, 3, "after");
  rc_close(&c);
  it_server_stop(&srv, 0);
  CHECKS_DONE();
}

/* The compressed flag under no grpc-encoding, or "identity": INTERNAL. */
static void test_wire_server_flag_without_encoding(void **state) {
  static const char *const identity[] = {"grpc-encoding", "identity", NULL};
  static const char *const *const extras[] = {NULL, identity};
  it_server srv;
  rclient c;
  size_t n, i;
  uint8_t *p = pack_echo_request("flagged", &n);
  (void)state;
  assert_int_equal(it_server_start(&srv, NULL, 0), 0);
  rc_open(&c, srv.port);
  for (i = 0; i < 2; i++) {
    uint32_t stream = 1 + 2 * (uint32_t)i;
    h2raw_buf m;
    seen s;
    const char *gs;
    h2raw_buf_init(&m);
    put_compressed(&m, 0, p, n);
    rc_send_custom(&c, stream, extras[i], &m, NULL);
    h2raw_buf_free(&m);
    seen_init(&s);
    rc_read(&c, stream, &s, UNTIL_STREAM_END | UNTIL_GOAWAY, BOUND_MS);
    gs = seen_status(&s);
    print_message("  flag 1, grpc-encoding %s: grpc-status %s (\"%s\")\n",
                  i ? "identity" : "(none)", str_or_none(gs),
                  str_or_none(seen_message(&s)));
    CHECK(gs && strcmp(gs, "13") == 0,
          "flag 1 with grpc-encoding %s: grpc-status %s, expected 13 "
          "(INTERNAL)",
          i ? "identity" : "(none)", str_or_none(gs));
    seen_free(&s);
  }
  CHECK(atomic_load(&srv.stats.calls) == 0, "the Echo handler ran %d times",
        atomic_load(&srv.stats.calls));
  rc_echo_round(&c, 5, "after");
  rc_close(&c);
  it_server_stop(&srv, 0);
  free(p);
  CHECKS_DONE();
}

/* gzip and deflate requests from another implementation (zlib's encoder)
 * are read; a corrupt one is INTERNAL. */
static void test_wire_server_compressed_request(void **state) {
  static const char *const gzip[] = {"grpc-encoding", "gzip", NULL};
  static const char *const deflate[] = {"grpc-encoding", "deflate", NULL};
  it_server srv;
  rclient c;
  h2raw_buf m;
  seen s;
  size_t n;
  uint8_t *p = pack_echo_request("squeezed", &n);
  Cgrpc__Test__EchoReply *reply;
  (void)state;
  assert_int_equal(it_server_start(&srv, NULL, 0), 0);
  rc_open(&c, srv.port);
  h2raw_buf_init(&m);
  put_compressed(&m, 15 + 16, p, n);
  rc_send_custom(&c, 1, gzip, &m, NULL);
  seen_init(&s);
  rc_read(&c, 1, &s, UNTIL_STREAM_END | UNTIL_GOAWAY, BOUND_MS);
  reply = check_echo_ok(&s, "squeezed", "a gzip request");
  if (reply)
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  seen_free(&s);
  /* The same bytes as deflate: the wrong wrapper. */
  rc_send_custom(&c, 3, deflate, &m, NULL);
  seen_init(&s);
  rc_read(&c, 3, &s, UNTIL_STREAM_END | UNTIL_GOAWAY, BOUND_MS);
  CHECK(seen_status(&s) && strcmp(seen_status(&s), "13") == 0,
        "gzip bytes under grpc-encoding deflate: grpc-status %s (\"%s\"), "
        "expected 13 (INTERNAL)",
        str_or_none(seen_status(&s)), str_or_none(seen_message(&s)));
  seen_free(&s);
  h2raw_buf_reset(&m);
  put_compressed(&m, 15, p, n);
  rc_send_custom(&c, 5, deflate, &m, NULL);
  seen_init(&s);
  rc_read(&c, 5, &s, UNTIL_STREAM_END | UNTIL_GOAWAY, BOUND_MS);
  reply = check_echo_ok(&s, "squeezed", "a deflate request");
  if (reply)
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  seen_free(&s);
  h2raw_buf_free(&m);
  rc_close(&c);
  it_server_stop(&srv, 0);
  free(p);
  CHECKS_DONE();
}

/* Adversarial compressed requests: deflate and gzip streams cut short
 * (in the middle, and just before their trailer) and bytes that are no
 * stream at all.  Each is INTERNAL without the handler running, and the
 * connection serves on. */
static void test_wire_server_bad_compressed_request(void **state) {
  static const char *const gzip[] = {"grpc-encoding", "gzip", NULL};
  static const char *const deflate[] = {"grpc-encoding", "deflate", NULL};
  static const char *const what[] = {
      "deflate cut in half", "deflate without its adler32",
      "gzip cut in half",    "gzip without its trailer",
      "garbage under gzip",  "garbage under deflate"};
  char text[2048];
  uint8_t noise[512], *p;
  uint32_t x = 12345;
  size_t i, n;
  h2raw_buf full_d, full_g, m;
  it_server srv;
  rclient c;
  (void)state;
  for (i = 0; i + 1 < sizeof text; i++)
    text[i] = (char)('a' + (i * 7 + i / 13) % 26);
  text[sizeof text - 1] = '\0';
  for (i = 0; i < sizeof noise; i++) {
    x = x * 1103515245u + 12345u; /* fixed, so every run sends the same */
    noise[i] = (uint8_t)(x >> 16);
  }
  p = pack_echo_request(text, &n);
  h2raw_buf_init(&full_d);
  h2raw_buf_init(&full_g);
  h2raw_buf_init(&m);
  put_compressed(&full_d, 15, p, n);
  put_compressed(&full_g, 15 + 16, p, n);
  free(p);
  assert_int_equal(it_server_start(&srv, NULL, 0), 0);
  rc_open(&c, srv.port);
  for (i = 0; i < 6; i++) {
    /* The compressed bytes after the 5-byte prefix, cut or replaced. */
    const h2raw_buf *full = i < 2 ? &full_d : &full_g;
    size_t body = full->len - 5;
    size_t keep = i % 2 == 0 ? body / 2 : body - (i < 2 ? 4 : 8);
    uint32_t stream = 1 + 2 * (uint32_t)i;
    seen s;
    h2raw_buf_reset(&m);
    if (i < 4)
      put_compressed(&m, 0, full->data + 5, keep);
    else
      put_compressed(&m, 0, noise, sizeof noise);
    rc_send_custom(&c, stream, i == 5 || i < 2 ? deflate : gzip, &m, NULL);
    seen_init(&s);
    rc_read(&c, stream, &s, UNTIL_STREAM_END | UNTIL_GOAWAY, BOUND_MS);
    print_message("  %s: grpc-status %s (\"%s\")\n", what[i],
                  str_or_none(seen_status(&s)), str_or_none(seen_message(&s)));
    CHECK(seen_status(&s) && strcmp(seen_status(&s), "13") == 0,
          "%s: grpc-status %s, expected 13 (INTERNAL)", what[i],
          str_or_none(seen_status(&s)));
    seen_free(&s);
  }
  CHECK(atomic_load(&srv.stats.calls) == 0, "the Echo handler ran %d times",
        atomic_load(&srv.stats.calls));
  rc_echo_round(&c, 13, "after the bad streams");
  h2raw_buf_free(&full_d);
  h2raw_buf_free(&full_g);
  h2raw_buf_free(&m);
  rc_close(&c);
  it_server_stop(&srv, 0);
  CHECKS_DONE();
}

/* A zip bomb: 128 MiB of zeros in 128 KiB of gzip.  The server stops
 * inflating at its 4 MiB receive limit and answers RESOURCE_EXHAUSTED at
 * once (well before inflating 128 MiB could have finished), and the
 * connection serves on. */
static void test_wire_server_zip_bomb(void **state) {
  static const char *const gzip[] = {"grpc-encoding", "gzip", NULL};
  size_t big = (size_t)128 << 20;
  uint8_t *zeros = calloc(big, 1);
  it_server srv;
  rclient c;
  h2raw_buf m;
  seen s;
  int64_t t0, ms;
  const char *gs;
  (void)state;
  assert_non_null(zeros);
  h2raw_buf_init(&m);
  put_compressed(&m, 15 + 16, zeros, big);
  free(zeros);
  assert_int_equal(it_server_start(&srv, NULL, 0), 0);
  rc_open(&c, srv.port);
  /* The 128 KiB message is sent without waiting for WINDOW_UPDATEs: first
   * a round trip, so that the server's SETTINGS (its large windows) are in
   * force rather than the 64 KiB default (a slow server, as under TSan,
   * would otherwise see a flow-control error). */
  rc_echo_round(&c, 1, "before the bomb");
  t0 = it_now_ms();
  rc_send_custom(&c, 3, gzip, &m, NULL);
  seen_init(&s);
  rc_read(&c, 3, &s, UNTIL_STREAM_END | UNTIL_GOAWAY, BOUND_MS);
  ms = it_now_ms() - t0;
  gs = seen_status(&s);
  print_message("  a %zu-byte bomb (128 MiB inflated): grpc-status %s "
                "(\"%s\") after %lld ms\n",
                m.len, str_or_none(gs), str_or_none(seen_message(&s)),
                (long long)ms);
  CHECK(gs && strcmp(gs, "8") == 0,
        "grpc-status %s, expected 8 (RESOURCE_EXHAUSTED)", str_or_none(gs));
  CHECK(ms < 1000 * SLOW, "the answer took %lld ms", (long long)ms);
  CHECK(atomic_load(&srv.stats.calls) == 1,
        "the Echo handler ran %d times for the bomb",
        atomic_load(&srv.stats.calls) - 1);
  seen_free(&s);
  h2raw_buf_free(&m);
  rc_echo_round(&c, 5, "after the bomb");
  rc_close(&c);
  it_server_stop(&srv, 0);
  CHECKS_DONE();
}

/* zlib's |bits| stream of the |n| bytes at |p| (free()); *out_len bytes. */
static uint8_t *zbytes(int bits, const void *p, size_t n, size_t *out_len) {
  h2raw_buf b;
  uint8_t *out;
  h2raw_buf_init(&b);
  put_compressed(&b, bits, p, n);
  *out_len = b.len - 5;
  out = malloc(*out_len + 1);
  assert_non_null(out);
  memcpy(out, b.data + 5, *out_len);
  h2raw_buf_free(&b);
  return out;
}

/* A framed message with flag |flag| around the |n| bytes at |p|. */
static void put_framed(h2raw_buf *b, int flag, const void *p, size_t n) {
  uint8_t pre[5];
  pre[0] = (uint8_t)flag;
  pre[1] = (uint8_t)(n >> 24);
  pre[2] = (uint8_t)(n >> 16);
  pre[3] = (uint8_t)(n >> 8);
  pre[4] = (uint8_t)n;
  h2raw_append(b, pre, 5);
  if (n)
    h2raw_append(b, p, n);
}

/* Odd compressed requests (PROTOCOL-HTTP2.md, doc/compression.md): a
 * Compressed-Flag other than 0 or 1 is a protocol error (INTERNAL); a
 * grpc-encoding that differs in case, or is empty, is not one this server
 * supports (UNIMPLEMENTED); the last of two grpc-encoding fields counts;
 * a zero-length compressed message, a gzip stream with bytes after its
 * end or a second member, and raw deflate under "deflate" do not inflate
 * (INTERNAL); zlib-wrapped deflate, flag 0 under gzip and a compressed
 * message split into 1-byte DATA frames are read.  The connection serves
 * on. */
static void test_wire_server_odd_compressed_requests(void **state) {
  static const char *const gzip[] = {"grpc-encoding", "gzip", NULL};
  static const char *const deflate[] = {"grpc-encoding", "deflate", NULL};
  static const char *const upper[] = {"grpc-encoding", "GZIP", NULL};
  static const char *const empty[] = {"grpc-encoding", "", NULL};
  static const char *const twice[] = {"grpc-encoding", "gzip", "grpc-encoding",
                                      "gzip", NULL};
  static const char *const gzip_identity[] = {
      "grpc-encoding", "gzip", "grpc-encoding", "identity", NULL};
  static const int want[13] = {13, 13, 12, 12, 0, 13, 13, 13, 13, 13, 0, 0, 0};
  it_server srv;
  rclient c;
  size_t n, zn, dn, rn;
  uint8_t *p = pack_echo_request("odd", &n), *z, *d, *raw, *t;
  uint32_t stream = 1;
  int i;
  (void)state;
  z = zbytes(15 + 16, p, n, &zn);
  d = zbytes(15, p, n, &dn);
  raw = zbytes(-15, p, n, &rn);
  t = malloc(2 * zn + 3);
  assert_non_null(t);
  assert_int_equal(it_server_start(&srv, NULL, 0), 0);
  rc_open(&c, srv.port);
  for (i = 0; i < 13; i++) {
    const char *const *extra = gzip;
    const char *what = "";
    h2raw_buf m;
    seen s;
    h2raw_buf_init(&m);
    switch (i) {
    case 0:
      what = "flag 2 under gzip";
      put_framed(&m, 2, z, zn);
      break;
    case 1:
      what = "flag 255 under gzip";
      put_framed(&m, 255, z, zn);
      break;
    case 2:
      what = "grpc-encoding GZIP";
      extra = upper;
      put_framed(&m, 1, z, zn);
      break;
    case 3:
      what = "an empty grpc-encoding, flag 0";
      extra = empty;
      put_framed(&m, 0, p, n);
      break;
    case 4:
      what = "grpc-encoding gzip twice";
      extra = twice;
      put_framed(&m, 1, z, zn);
      break;
    case 5:
      what = "grpc-encoding gzip, then identity";
      extra = gzip_identity;
      put_framed(&m, 1, z, zn);
      break;
    case 6:
      what = "a zero-length compressed message";
      put_framed(&m, 1, z, 0);
      break;
    case 7:
      what = "gzip and 3 bytes after it";
      memcpy(t, z, zn);
      memcpy(t + zn, "xyz", 3);
      put_framed(&m, 1, t, zn + 3);
      break;
    case 8:
      what = "two gzip members";
      memcpy(t, z, zn);
      memcpy(t + zn, z, zn);
      put_framed(&m, 1, t, 2 * zn);
      break;
    case 9:
      what = "raw deflate under deflate";
      extra = deflate;
      put_framed(&m, 1, raw, rn);
      break;
    case 10:
      what = "zlib-wrapped deflate under deflate";
      extra = deflate;
      put_framed(&m, 1, d, dn);
      break;
    case 11:
      what = "flag 0 under gzip";
      put_framed(&m, 0, p, n);
      break;
    default:
      what = "gzip in 1-byte DATA frames";
      put_framed(&m, 1, z, zn);
      break;
    }
    rc_send_custom_n(&c, stream, extra, &m, NULL, i == 12 ? 1 : 16384);
    seen_init(&s);
    rc_read(&c, stream, &s, UNTIL_STREAM_END | UNTIL_GOAWAY, BOUND_MS);
    print_message("  %s: grpc-status %s (\"%s\")\n", what,
                  str_or_none(seen_status(&s)), str_or_none(seen_message(&s)));
    CHECK(seen_status(&s) && atoi(seen_status(&s)) == want[i],
          "%s: grpc-status %s, expected %d", what, str_or_none(seen_status(&s)),
          want[i]);
    CHECK(s.goaway < 0, "%s: GOAWAY(%ld)", what, s.goaway);
    seen_free(&s);
    h2raw_buf_free(&m);
    stream += 2;
  }
  rc_echo_round(&c, stream, "after the odd ones");
  rc_close(&c);
  it_server_stop(&srv, 0);
  free(p);
  free(z);
  free(d);
  free(raw);
  free(t);
  CHECKS_DONE();
}

/* A server whose default is gzip compresses for clients that accept gzip
 * (with grpc-encoding: gzip), and only for them. */
static void test_wire_server_negotiation(void **state) {
  static const char *const ae_identity[] = {"grpc-accept-encoding", "identity",
                                            NULL};
  static const char *const ae_gzip[] = {"grpc-accept-encoding",
                                        "identity, gzip", NULL};
  static const char *const ae_deflate[] = {"grpc-accept-encoding", "deflate",
                                           NULL};
  static const struct {
    const char *const *extra;
    const char *what;
    int compressed;
  } cases[] = {{ae_identity, "accepting identity", 0},
               {ae_gzip, "accepting gzip", 1},
               {NULL, "with no grpc-accept-encoding", 0},
               {ae_deflate, "accepting deflate only", 0}};
  cgrpc_server_options *o = NULL;
  it_server srv;
  rclient c;
  size_t i;
  (void)state;
  assert_int_equal(cgrpc_server_options_new(&o), 0);
  assert_int_equal(
      cgrpc_server_options_set_default_compression(o, CGRPC_COMPRESS_GZIP), 0);
  assert_int_equal(it_server_start(&srv, o, 0), 0);
  cgrpc_server_options_del(o);
  rc_open(&c, srv.port);
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint32_t stream = 1 + 2 * (uint32_t)i;
    const char *ge, *ae;
    int flag;
    seen s;
    rc_send_custom(&c, stream, cases[i].extra, NULL, "negotiated");
    seen_init(&s);
    rc_read(&c, stream, &s, UNTIL_STREAM_END | UNTIL_GOAWAY, BOUND_MS);
    ge = s.n_hdrs ? h2raw_fields_get(&s.hdrs[0], "grpc-encoding") : NULL;
    ae = s.n_hdrs ? h2raw_fields_get(&s.hdrs[0], "grpc-accept-encoding") : NULL;
    flag = s.data.len >= 5 ? s.data.data[0] : -1;
    print_message("  a client %s: grpc-encoding %s, flag %d\n", cases[i].what,
                  str_or_none(ge), flag);
    CHECK(seen_status(&s) && strcmp(seen_status(&s), "0") == 0,
          "%s: grpc-status %s", cases[i].what, str_or_none(seen_status(&s)));
    CHECK(flag == cases[i].compressed, "%s: the reply's flag is %d",
          cases[i].what, flag);
    CHECK(cases[i].compressed ? ge && strcmp(ge, "gzip") == 0 : ge == NULL,
          "%s: grpc-encoding %s", cases[i].what, str_or_none(ge));
    CHECK(ae && strcmp(ae, "identity,deflate,gzip") == 0,
          "%s: grpc-accept-encoding %s", cases[i].what, str_or_none(ae));
    if (flag == 1 && s.data.len >= 5) {
      /* It inflates to the reply. */
      uint8_t *out = malloc(4096);
      z_stream zs;
      Cgrpc__Test__EchoReply *r = NULL;
      assert_non_null(out);
      memset(&zs, 0, sizeof zs);
      assert_int_equal(inflateInit2(&zs, 15 + 16), Z_OK);
      zs.next_in = s.data.data + 5;
      zs.avail_in = (uInt)(s.data.len - 5);
      zs.next_out = out;
      zs.avail_out = 4096;
      if (inflate(&zs, Z_FINISH) == Z_STREAM_END)
        r = cgrpc__test__echo_reply__unpack(NULL, zs.total_out, out);
      inflateEnd(&zs);
      CHECK(r && r->message && strcmp(r->message, "negotiated") == 0,
            "%s: the compressed reply does not inflate to the EchoReply",
            cases[i].what);
      if (r)
        protobuf_c_message_free_unpacked(&r->base, NULL);
      free(out);
    }
    seen_free(&s);
  }
  rc_close(&c);
  it_server_stop(&srv, 0);
  CHECKS_DONE();
}

/* ==== a raw server, for the client tests ============================== */

#define RS_MAX_CONNS 8

typedef struct rs_conn {
  int fd; /* -1 once closed */
  h2raw_hpack *hp;
} rs_conn;

typedef struct rserver {
  int lfd, port;
  char target[64];
  rs_conn c[RS_MAX_CONNS];
  int n; /* connections accepted */
} rserver;

enum { RS_NONE, RS_HEADERS, RS_DATA, RS_RST, RS_GOAWAY, RS_CLOSED };

/* One thing the client did. */
typedef struct rs_event {
  int kind;
  int conn;
  uint32_t stream;
  uint8_t flags;
  h2raw_fields hdrs; /* RS_HEADERS: the decoded block (the event owns it) */
  uint32_t code;     /* RS_RST, RS_GOAWAY: the error code */
  size_t len;        /* RS_DATA: the payload length */
  int first_byte;    /* RS_DATA: the payload's first byte, or -1 */
} rs_event;

static void rs_start(rserver *rs) {
  memset(rs, 0, sizeof *rs);
  rs->lfd = h2raw_listen(&rs->port, 0);
  assert_true(rs->lfd >= 0);
  snprintf(rs->target, sizeof rs->target, "127.0.0.1:%d", rs->port);
}

static void rs_conn_close(rs_conn *c) {
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
}

static void rs_stop(rserver *rs) {
  int i;
  for (i = 0; i < rs->n; i++) {
    rs_conn_close(&rs->c[i]);
    h2raw_hpack_del(rs->c[i].hp);
  }
  close(rs->lfd);
}

static void rs_send(rserver *rs, int conn, const h2raw_buf *b) {
  if (rs->c[conn].fd >= 0 && h2raw_send_buf(rs->c[conn].fd, b) != 0)
    print_message("  (raw server: send on connection %d failed)\n", conn);
}

/* Accepts a connection: reads the client preface, sends our SETTINGS. */
static void rs_accept(rserver *rs) {
  h2raw_buf b;
  rs_conn *c;
  int fd = h2raw_accept(rs->lfd, 0, 0);
  if (fd < 0)
    return;
  if (rs->n == RS_MAX_CONNS) {
    CHECK(0, "the client opened more than %d connections", RS_MAX_CONNS);
    close(fd);
    return;
  }
  c = &rs->c[rs->n];
  c->fd = fd;
  assert_int_equal(h2raw_hpack_new(&c->hp), 0);
  rs->n++;
  if (h2raw_read_preface(fd, BOUND_MS) != 0) {
    CHECK(0, "connection %d: no HTTP/2 client preface", rs->n - 1);
    rs_conn_close(c);
    return;
  }
  h2raw_buf_init(&b);
  h2raw_settings(&b, NULL, 0);
  rs_send(rs, rs->n - 1, &b);
  h2raw_buf_free(&b);
}

/*
 * The next thing the client does on any connection within |ms| (RS_NONE
 * when nothing): new connections are accepted on the way, SETTINGS
 * acknowledged, PINGs answered, WINDOW_UPDATEs skipped.
 */
static void rs_next(rserver *rs, int ms, rs_event *ev) {
  int64_t end = it_now_ms() + ms;
  memset(ev, 0, sizeof *ev);
  ev->kind = RS_NONE;
  for (;;) {
    struct pollfd pfd[RS_MAX_CONNS + 1];
    int map[RS_MAX_CONNS + 1], n = 0, i, rv;
    int64_t left = end - it_now_ms();
    if (left < 0)
      return;
    pfd[n].fd = rs->lfd;
    pfd[n].events = POLLIN;
    map[n++] = -1;
    for (i = 0; i < rs->n; i++) {
      if (rs->c[i].fd < 0)
        continue;
      pfd[n].fd = rs->c[i].fd;
      pfd[n].events = POLLIN;
      map[n++] = i;
    }
    rv = poll(pfd, (nfds_t)n, (int)left);
    if (rv <= 0) {
      if (rv == 0)
        return;
      continue; /* EINTR */
    }
    if (pfd[0].revents) {
      rs_accept(rs);
      continue;
    }
    for (i = 1; i < n; i++) {
      rs_conn *c;
      h2raw_rframe f;
      int conn = map[i];
      if (!pfd[i].revents)
        continue;
      c = &rs->c[conn];
      rv = h2raw_read_frame(c->fd, BOUND_MS, &f);
      if (rv <= 0) {
        rs_conn_close(c);
        ev->kind = RS_CLOSED;
        ev->conn = conn;
        return;
      }
      ev->conn = conn;
      ev->stream = f.stream;
      ev->flags = f.flags;
      if (h2raw_ack_settings(c->fd, &f) != 0) {
        h2raw_rframe_free(&f);
        break;
      }
      switch (f.type) {
      case H2RAW_HEADERS:
        if (h2raw_hpack_decode(c->hp, &f, &ev->hdrs) != 0)
          CHECK(0, "connection %d: an undecodable header block", conn);
        else
          ev->kind = RS_HEADERS;
        break;
      case H2RAW_DATA:
        ev->kind = RS_DATA;
        ev->len = f.len;
        ev->first_byte = f.len ? f.payload[0] : -1;
        break;
      case H2RAW_RST_STREAM:
        ev->kind = RS_RST;
        ev->code = h2raw_rframe_u32(&f, 0);
        break;
      case H2RAW_GOAWAY:
        ev->kind = RS_GOAWAY;
        ev->code = h2raw_rframe_u32(&f, 4);
        break;
      case H2RAW_PING:
        if (!(f.flags & H2RAW_FLAG_ACK) && f.len == 8) {
          h2raw_buf b;
          h2raw_buf_init(&b);
          h2raw_ping(&b, 1, f.payload);
          rs_send(rs, conn, &b);
          h2raw_buf_free(&b);
        }
        break;
      default:
        break;
      }
      h2raw_rframe_free(&f);
      if (ev->kind != RS_NONE)
        return;
      break; /* poll again */
    }
  }
}

static void rs_event_free(rs_event *ev) { h2raw_fields_free(&ev->hdrs); }

/* A proper answer to an Echo call on |stream|: :status 200 and
 * content-type (and grpc-encoding: |encoding| when not NULL), one EchoReply
 * {message: |text|} (or the framed message |msg| when not NULL), trailers
 * grpc-status 0. */
static void rs_answer_with(rserver *rs, int conn, uint32_t stream,
                           const char *text, const char *encoding,
                           const h2raw_buf *msg) {
  const char *head[] = {
      ":status", "200", "content-type", "application/grpc", NULL, NULL, NULL};
  static const char *const trailers[] = {"grpc-status", "0", NULL};
  Cgrpc__Test__EchoReply reply = CGRPC__TEST__ECHO_REPLY__INIT;
  h2raw_buf b, m;
  size_t off = 0;
  if (encoding) {
    head[4] = "grpc-encoding";
    head[5] = encoding;
  }
  reply.message = (char *)(uintptr_t)text;
  h2raw_buf_init(&b);
  h2raw_buf_init(&m);
  if (!msg) {
    it_raw_grpc_message(&m, &reply.base);
    msg = &m;
  }
  h2raw_headers(&b, stream, 0, head);
  /* The client's initial windows (64 KiB) take a small answer at once. */
  do {
    size_t k = msg->len - off > 16384 ? 16384 : msg->len - off;
    h2raw_data(&b, stream, 0, msg->data + off, k);
    off += k;
  } while (off < msg->len);
  h2raw_headers(&b, stream, 1, trailers);
  rs_send(rs, conn, &b);
  h2raw_buf_free(&m);
  h2raw_buf_free(&b);
}

/* What the raw server does with each request attempt. */
enum rs_action {
  ANSWER,             /* rs_answer_with() once the request has ended */
  GOAWAY_CLOSE,       /* GOAWAY(last stream 0, NO_ERROR), then close */
  REFUSE,             /* RST_STREAM(REFUSED_STREAM) at once */
  HEADERS_REFUSE,     /* response HEADERS, then RST_STREAM(REFUSED_STREAM) */
  UNAVAILABLE,        /* Trailers-Only grpc-status 14 (not committed) */
  PUSHBACK,           /* the same with grpc-retry-pushback-ms: sc->pushback */
  HEADERS_UNAVAILABLE /* response HEADERS, then trailers with status 14 */
};

typedef struct rs_attempt {
  int conn;
  uint32_t stream;
  char path[128];
  size_t data_bytes; /* request DATA received on the attempt's stream */
  int ended;         /* with END_STREAM */
  int first_flag;    /* the first DATA byte (the compressed flag), or -1 */
  char previous[8];  /* its grpc-previous-rpc-attempts ("-": none) */
  int64_t at_ms;     /* when its HEADERS came */
} rs_attempt;

typedef struct scenario {
  enum rs_action act[4]; /* per attempt; the last one repeats */
  int n_act;
  rs_attempt att[8];
  int n_att;
  h2raw_fields first; /* the first request's header block */
  int answered_conn;  /* where ANSWER answered (-1: nowhere) */
  uint32_t answered_stream;
  /* ANSWER's grpc-encoding (NULL: none) and message (NULL: the plain
   * EchoReply "wire ok"). */
  const char *reply_encoding;
  const h2raw_buf *reply_msg;
  const char *pushback; /* PUSHBACK's grpc-retry-pushback-ms */
} scenario;

static void scenario_init(scenario *sc) {
  memset(sc, 0, sizeof *sc);
  sc->answered_conn = -1;
}

/* Ends connection |conn| after a GOAWAY: a FIN, what the client still
 * sends read and dropped (so that the close sends no TCP reset over the
 * GOAWAY), then the close. */
static void rs_goaway_close(rserver *rs, int conn) {
  h2raw_buf b;
  h2raw_buf_init(&b);
  h2raw_goaway(&b, 0, H2RAW_NO_ERROR);
  rs_send(rs, conn, &b);
  h2raw_buf_free(&b);
  shutdown(rs->c[conn].fd, SHUT_WR);
  print_message("  connection %d: %ld more bytes from the client after the "
                "GOAWAY\n",
                conn, h2raw_drain(rs->c[conn].fd, 200 * SLOW));
  rs_conn_close(&rs->c[conn]);
}

/*
 * Serves the requests of the async call |a| as |sc| says, until the call
 * has ended and GRACE_MS more have passed (or BOUND_MS in all).  Records
 * each attempt (a request HEADERS frame) in |sc|.
 */
static void rs_run(rserver *rs, it_async *a, scenario *sc) {
  int64_t end = it_now_ms() + BOUND_MS, done_at = -1;
  int pend_conn = -1; /* an ANSWER waiting for its request's end */
  uint32_t pend_stream = 0;
  for (;;) {
    rs_event ev;
    int64_t now = it_now_ms();
    if (done_at < 0 && it_async_wait(a, 0))
      done_at = now;
    if (now >= end || (done_at >= 0 && now - done_at >= GRACE_MS))
      return;
    rs_next(rs, 20, &ev);
    if (ev.kind == RS_HEADERS && ev.stream % 2 == 1 &&
        h2raw_fields_find(&ev.hdrs, ":method") >= 0) {
      enum rs_action act =
          sc->act[sc->n_att < sc->n_act ? sc->n_att : sc->n_act - 1];
      const char *path = h2raw_fields_get(&ev.hdrs, ":path");
      if (sc->n_att < 8) {
        rs_attempt *at = &sc->att[sc->n_att];
        at->conn = ev.conn;
        at->stream = ev.stream;
        at->first_flag = -1;
        snprintf(at->path, sizeof at->path, "%s", path ? path : "");
        snprintf(at->previous, sizeof at->previous, "%s",
                 h2raw_fields_find(&ev.hdrs, "grpc-previous-rpc-attempts") >= 0
                     ? h2raw_fields_get(&ev.hdrs, "grpc-previous-rpc-attempts")
                     : "-");
        at->at_ms = it_now_ms();
      }
      if (sc->n_att++ == 0) {
        sc->first = ev.hdrs;
        memset(&ev.hdrs, 0, sizeof ev.hdrs);
      }
      print_message("  attempt %d: connection %d, stream %u, %s\n", sc->n_att,
                    ev.conn, (unsigned)ev.stream,
                    act == ANSWER           ? "answered"
                    : act == GOAWAY_CLOSE   ? "GOAWAY(0) and close"
                    : act == REFUSE         ? "refused"
                    : act == HEADERS_REFUSE ? "headers, then refused"
                                            : "failed UNAVAILABLE");
      if (act == UNAVAILABLE || act == PUSHBACK || act == HEADERS_UNAVAILABLE) {
        static const char *const head[] = {":status", "200", "content-type",
                                           "application/grpc", NULL};
        const char *only[] = {
            ":status",     "200", "content-type", "application/grpc",
            "grpc-status", "14",  NULL,           NULL,
            NULL};
        h2raw_buf b;
        h2raw_buf_init(&b);
        if (act == HEADERS_UNAVAILABLE) {
          static const char *const trailers[] = {"grpc-status", "14", NULL};
          h2raw_headers(&b, ev.stream, 0, head);
          h2raw_headers(&b, ev.stream, 1, trailers);
        } else {
          if (act == PUSHBACK) {
            only[6] = "grpc-retry-pushback-ms";
            only[7] = sc->pushback;
          }
          h2raw_headers(&b, ev.stream, 1, only);
        }
        rs_send(rs, ev.conn, &b);
        h2raw_buf_free(&b);
      } else if (act == GOAWAY_CLOSE) {
        rs_goaway_close(rs, ev.conn);
      } else if (act == REFUSE || act == HEADERS_REFUSE) {
        static const char *const head[] = {":status", "200", "content-type",
                                           "application/grpc", NULL};
        h2raw_buf b;
        h2raw_buf_init(&b);
        if (act == HEADERS_REFUSE)
          h2raw_headers(&b, ev.stream, 0, head);
        h2raw_rst_stream(&b, ev.stream, H2RAW_REFUSED_STREAM);
        rs_send(rs, ev.conn, &b);
        h2raw_buf_free(&b);
      } else {
        pend_conn = ev.conn;
        pend_stream = ev.stream;
      }
    }
    if (ev.kind == RS_DATA) {
      int i;
      for (i = 0; i < sc->n_att && i < 8; i++)
        if (sc->att[i].conn == ev.conn && sc->att[i].stream == ev.stream) {
          if (sc->att[i].data_bytes == 0)
            sc->att[i].first_flag = ev.first_byte;
          sc->att[i].data_bytes += ev.len;
          sc->att[i].ended |= (ev.flags & H2RAW_FLAG_END_STREAM) != 0;
        }
    }
    if ((ev.kind == RS_HEADERS || ev.kind == RS_DATA) && ev.conn == pend_conn &&
        ev.stream == pend_stream && (ev.flags & H2RAW_FLAG_END_STREAM)) {
      rs_answer_with(rs, pend_conn, pend_stream, "wire ok", sc->reply_encoding,
                     sc->reply_msg);
      sc->answered_conn = pend_conn;
      sc->answered_stream = pend_stream;
      pend_conn = -1;
    }
    rs_event_free(&ev);
  }
}

/* A channel to the raw server. */
static cgrpc_channel *rs_channel_with(const rserver *rs,
                                      const char *service_config) {
  cgrpc_channel *ch = NULL;
  cgrpc_channel_options *o = NULL;
  assert_int_equal(cgrpc_channel_options_new(&o), 0);
  if (getenv("CGRPC_TEST_LOG"))
    cgrpc_channel_options_set_log(o, cgrpc_log_stderr, NULL);
  if (service_config)
    assert_int_equal(
        cgrpc_channel_options_set_service_config(o, service_config, NULL, 0),
        0);
  assert_int_equal(cgrpc_channel_new(&ch, rs->target, o), 0);
  cgrpc_channel_options_del(o);
  return ch;
}

static cgrpc_channel *rs_channel(const rserver *rs) {
  return rs_channel_with(rs, NULL);
}

/* Starts an async Echo {message: "hi"} on |ch| with |opts|. */
static void start_echo(cgrpc_channel *ch, const cgrpc_call_options *opts,
                       it_async *a) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  req.message = "hi";
  it_async_init(a);
  assert_int_equal(cgrpc__test__echo_service__echo__start(
                       ch, &req, opts, it_async_done, a, NULL),
                   0);
}

/* The call's outcome, for messages. */
#define CALL_OUTCOME(a)                                                        \
  cgrpc_status_code_name((a)->status.code), str_or_none((a)->status.message)

/* Checks that |a| completed OK with the reply rs_answer_with() sends. */
static void check_call_ok(it_async *a, const char *what) {
  CHECK(a->done == 1, "%s: the call completed %d times", what, a->done);
  CHECK(a->status.code == CGRPC_STATUS_OK, "%s: status %s (\"%s\")", what,
        CALL_OUTCOME(a));
  CHECK(a->status.code != CGRPC_STATUS_OK ||
            (a->reply && a->reply->message &&
             strcmp(a->reply->message, "wire ok") == 0),
        "%s: the reply is not the one sent", what);
}

static const cgrpc_call_options call_10s = {.timeout_ms = 10000};

/* ---- 3 (client side): DATA after the server's END_STREAM ----
 *
 * RFC 9113 5.1: once a stream is closed by END_STREAM both ways, a frame
 * on it is a connection error of type STREAM_CLOSED.  The raw server
 * completes the response, waits until the call has completed (OK), then
 * sends DATA on the stream: the client answers GOAWAY(STREAM_CLOSED) and
 * closes. */
static void test_wire_client_data_after_end_stream(void **state) {
  static const uint8_t junk[5] = {0, 0, 0, 0, 0};
  rserver rs;
  scenario sc;
  cgrpc_channel *ch;
  it_async a;
  h2raw_buf b;
  int64_t end;
  long goaway = -1;
  int closed = 0;
  (void)state;
  rs_start(&rs);
  ch = rs_channel(&rs);
  scenario_init(&sc);
  sc.act[sc.n_act++] = ANSWER;
  start_echo(ch, &call_10s, &a);
  rs_run(&rs, &a, &sc);
  check_call_ok(&a, "the call before the stray DATA");
  CHECK(sc.answered_conn >= 0, "the request was never answered");

  if (sc.answered_conn >= 0) {
    h2raw_buf_init(&b);
    h2raw_data(&b, sc.answered_stream, 0, junk, sizeof junk);
    rs_send(&rs, sc.answered_conn, &b);
    h2raw_buf_free(&b);
    end = it_now_ms() + BOUND_MS;
    while (it_now_ms() < end && !closed) {
      rs_event ev;
      rs_next(&rs, 50, &ev);
      if (ev.conn == sc.answered_conn && ev.kind == RS_GOAWAY)
        goaway = (long)ev.code;
      if (ev.conn == sc.answered_conn && ev.kind == RS_CLOSED)
        closed = 1;
      rs_event_free(&ev);
    }
    print_message("  the client's answer to the stray DATA: GOAWAY %ld, "
                  "closed %d\n",
                  goaway, closed);
    CHECK(goaway == H2RAW_STREAM_CLOSED,
          "DATA on a stream closed both ways: the client sent GOAWAY %ld, "
          "expected GOAWAY(STREAM_CLOSED = 5)",
          goaway);
    CHECK(closed, "the client did not close the connection");
  }
  CHECK(a.done == 1, "the call completed %d times", a.done);
  CHECK(a.status.code == CGRPC_STATUS_OK,
        "the completed call's status changed to %s (\"%s\")", CALL_OUTCOME(&a));
  it_async_fini(&a);
  cgrpc_channel_del(ch);
  h2raw_fields_free(&sc.first);
  rs_stop(&rs);
  CHECKS_DONE();
}

/* ==== 4. Request header order ==========================================
 *
 * The gRPC spec, Requests: Request-Headers -> Call-Definition
 * *Custom-Metadata, and Call-Definition -> Method Scheme Path TE
 * [Authority] [Timeout] Content-Type [Message-Type] [Message-Encoding]
 * [Message-Accept-Encoding] [User-Agent]; with RFC 9113 8.3, which puts
 * every pseudo-header (:authority too) before the regular fields.  So: the
 * pseudo-headers first (:method POST, :scheme, :path, :authority), then
 * te: trailers, grpc-timeout (TimeoutValue: 1 to 8 digits, then a unit),
 * content-type, the encodings and user-agent, and the custom metadata last.
 * Then a proper answer completes the call. */

/* Nonzero when |name| is one of the Call-Definition headers. */
static int call_definition_header(const char *name) {
  static const char *const names[] = {"te",
                                      "grpc-timeout",
                                      "content-type",
                                      "grpc-encoding",
                                      "grpc-accept-encoding",
                                      "user-agent",
                                      "grpc-message-type"};
  size_t i;
  if (name[0] == ':')
    return 1;
  for (i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(name, names[i]) == 0)
      return 1;
  return 0;
}

/* Nonzero when |v| is a valid grpc-timeout value. */
static int timeout_value_ok(const char *v) {
  size_t n = strlen(v), i;
  if (n < 2 || n > 9 || !strchr("HMSmun", v[n - 1]))
    return 0;
  for (i = 0; i + 1 < n; i++)
    if (v[i] < '0' || v[i] > '9')
      return 0;
  return 1;
}

static void test_wire_client_header_order(void **state) {
  static const char *const pseudo[][2] = {{":method", "POST"},
                                          {":scheme", NULL},
                                          {":path", ECHO_PATH},
                                          {":authority", NULL}};
  rserver rs;
  scenario sc;
  cgrpc_channel *ch;
  cgrpc_metadata_array *md = NULL;
  cgrpc_call_options opts = {.timeout_ms = 5000};
  it_async a;
  h2raw_fields *h;
  int i, te, to, ct, xa;
  char listing[1024];
  size_t off = 0;
  (void)state;
  rs_start(&rs);
  ch = rs_channel(&rs);
  assert_int_equal(cgrpc_metadata_array_new(&md), 0);
  assert_int_equal(cgrpc_metadata_array_add(md, "x-a", "1"), 0);
  opts.metadata = md;
  scenario_init(&sc);
  sc.act[sc.n_act++] = ANSWER;
  start_echo(ch, &opts, &a);
  rs_run(&rs, &a, &sc);
  h = &sc.first;

  for (i = 0; i < (int)h->n && off < sizeof listing - 1; i++)
    off += (size_t)snprintf(listing + off, sizeof listing - off, "%s%s: %s",
                            i ? ", " : "", h->v[i].name, h->v[i].value);
  print_message("  request headers: %s\n", h->n ? listing : "(none)");
  CHECK(sc.n_att == 1, "%d request attempts, expected 1", sc.n_att);

  /* Pseudo-headers first, in the order of the spec. */
  for (i = 0; i < 4; i++) {
    const char *name = pseudo[i][0], *want = pseudo[i][1];
    CHECK(i < (int)h->n && strcmp(h->v[i].name, name) == 0,
          "field %d is %s, expected %s", i,
          i < (int)h->n ? h->v[i].name : "(missing)", name);
    if (i < (int)h->n && strcmp(h->v[i].name, name) == 0 && want)
      CHECK(strcmp(h->v[i].value, want) == 0, "%s is \"%s\", expected \"%s\"",
            name, h->v[i].value, want);
  }
  {
    const char *auth = h2raw_fields_get(h, ":authority");
    CHECK(auth && strcmp(auth, rs.target) == 0, ":authority is %s, not %s",
          str_or_none(auth), rs.target);
  }
  for (i = 4; i < (int)h->n; i++)
    CHECK(h->v[i].name[0] != ':', "pseudo-header %s after regular fields",
          h->v[i].name);

  te = h2raw_fields_find(h, "te");
  to = h2raw_fields_find(h, "grpc-timeout");
  ct = h2raw_fields_find(h, "content-type");
  xa = h2raw_fields_find(h, "x-a");
  CHECK(te == 4, "te is field %d, expected 4 (right after the pseudo-headers)",
        te);
  CHECK(te < 0 || strcmp(h->v[te].value, "trailers") == 0, "te: %s",
        h->v[te].value);
  CHECK(to > te, "grpc-timeout is field %d, te %d", to, te);
  CHECK(to < 0 || timeout_value_ok(h->v[to].value),
        "grpc-timeout \"%s\" is not 1-8 digits and a unit",
        to < 0 ? "" : h->v[to].value);
  CHECK(ct > to && to >= 0, "content-type is field %d, grpc-timeout %d", ct,
        to);
  CHECK(ct < 0 || strcmp(h->v[ct].value, "application/grpc") == 0,
        "content-type: %s", h->v[ct].value);
  CHECK(xa > ct && xa > to,
        "x-a is field %d (content-type %d, grpc-timeout "
        "%d)",
        xa, ct, to);
  CHECK(xa < 0 || strcmp(h->v[xa].value, "1") == 0, "x-a: %s", h->v[xa].value);
  /* Custom metadata last: no Call-Definition header after x-a. */
  for (i = xa < 0 ? (int)h->n : xa + 1; i < (int)h->n; i++)
    CHECK(!call_definition_header(h->v[i].name),
          "%s (field %d) comes after the custom metadata (x-a, field %d)",
          h->v[i].name, i, xa);

  check_call_ok(&a, "the call");
  it_async_fini(&a);
  cgrpc_metadata_array_del(md);
  cgrpc_channel_del(ch);
  h2raw_fields_free(&sc.first);
  rs_stop(&rs);
  CHECKS_DONE();
}

/* ==== 5. Transparent retry (gRFC A6) ===================================
 *
 * gRFC A6, "Transparent Retries": an RPC that never left the client, or
 * that reached the server but was never seen by its application (a GOAWAY
 * whose last stream id is below it, RST_STREAM(REFUSED_STREAM); RFC 9113
 * 6.8 and 8.7: such a request "has not been processed" and "can be safely
 * retried"), is retried transparently -- once, then it counts against the
 * retry policy, which this library does not have.  Once the server has
 * answered anything (response HEADERS), the RPC is committed: no retry. */

/* Runs a scenario of |n| actions against one async Echo; fills |sc|. */
/* How retry_run_with() sets the call up. */
typedef struct retry_setup {
  const char *service_config; /* the channel's (NULL: none) */
  const char *pushback;       /* PUSHBACK's grpc-retry-pushback-ms */
  int64_t timeout_ms;         /* the call's deadline (0: 10 s) */
} retry_setup;

static void retry_run_with(const enum rs_action *acts, int n,
                           const retry_setup *setup, scenario *sc, it_async *a,
                           rserver *rs) {
  cgrpc_call_options opts = call_10s;
  cgrpc_channel *ch;
  int i;
  rs_start(rs);
  ch = rs_channel_with(rs, setup ? setup->service_config : NULL);
  scenario_init(sc);
  if (setup) {
    sc->pushback = setup->pushback;
    if (setup->timeout_ms)
      opts.timeout_ms = setup->timeout_ms;
  }
  for (i = 0; i < n; i++)
    sc->act[sc->n_act++] = acts[i];
  start_echo(ch, &opts, a);
  rs_run(rs, a, sc);
  CHECK(a->done == 1, "the call completed %d times", a->done);
  print_message("  outcome: %s (\"%s\") after %d attempt(s) on %d "
                "connection(s)\n",
                CALL_OUTCOME(a), sc->n_att, rs->n);
  /* Evidence for a missing retry: the request body was already on the
   * wire when the server refused it (which does not commit the RPC). */
  for (i = 0; i < sc->n_att && i < 8; i++)
    print_message("  attempt %d: %zu bytes of request DATA%s seen on "
                  "connection %d stream %u\n",
                  i + 1, sc->att[i].data_bytes,
                  sc->att[i].ended ? " (with END_STREAM)" : "", sc->att[i].conn,
                  (unsigned)sc->att[i].stream);
  cgrpc_channel_del(ch);
}

static void retry_run(const enum rs_action *acts, int n, scenario *sc,
                      it_async *a, rserver *rs) {
  retry_run_with(acts, n, NULL, sc, a, rs);
}

static void retry_done(scenario *sc, it_async *a, rserver *rs) {
  it_async_fini(a);
  h2raw_fields_free(&sc->first);
  rs_stop(rs);
}

/* (a) GOAWAY(last_stream_id 0, NO_ERROR) and a close: the channel connects
 * again to the same address and the request goes there. */
static void test_wire_retry_goaway_last_stream_0(void **state) {
  static const enum rs_action acts[] = {GOAWAY_CLOSE, ANSWER};
  rserver rs;
  scenario sc;
  it_async a;
  (void)state;
  retry_run(acts, 2, &sc, &a, &rs);
  check_call_ok(&a, "the call refused by GOAWAY(0)");
  CHECK(rs.n == 2, "the raw server saw %d connections, expected 2", rs.n);
  CHECK(sc.n_att == 2, "%d request attempts, expected 2", sc.n_att);
  CHECK(sc.n_att < 2 || sc.att[1].conn == 1,
        "the retry went to connection %d, expected the second (1)",
        sc.att[1].conn);
  CHECK(sc.n_att < 2 || strcmp(sc.att[1].path, sc.att[0].path) == 0,
        "the retry asked for %s, the first attempt for %s", sc.att[1].path,
        sc.att[0].path);
  retry_done(&sc, &a, &rs);
  CHECKS_DONE();
}

/* (b) RST_STREAM(REFUSED_STREAM) on the first attempt, a proper answer to
 * the retry (a new stream, on this connection or another). */
static void test_wire_retry_refused_stream(void **state) {
  static const enum rs_action acts[] = {REFUSE, ANSWER};
  rserver rs;
  scenario sc;
  it_async a;
  (void)state;
  retry_run(acts, 2, &sc, &a, &rs);
  check_call_ok(&a, "the call refused with REFUSED_STREAM once");
  CHECK(sc.n_att == 2, "%d request attempts, expected 2", sc.n_att);
  CHECK(sc.n_att < 2 || sc.att[1].conn != sc.att[0].conn ||
            sc.att[1].stream > sc.att[0].stream,
        "the retry reused stream %u", (unsigned)sc.att[1].stream);
  CHECK(sc.n_att < 2 || strcmp(sc.att[1].path, sc.att[0].path) == 0,
        "the retry asked for %s, the first attempt for %s", sc.att[1].path,
        sc.att[0].path);
  retry_done(&sc, &a, &rs);
  CHECKS_DONE();
}

/* (c) Only once: every attempt refused; the call fails UNAVAILABLE after
 * exactly 2. */
static void test_wire_retry_only_once(void **state) {
  static const enum rs_action acts[] = {REFUSE};
  rserver rs;
  scenario sc;
  it_async a;
  (void)state;
  retry_run(acts, 1, &sc, &a, &rs);
  CHECK(a.status.code == CGRPC_STATUS_UNAVAILABLE,
        "a call refused every time ended %s (\"%s\"), expected UNAVAILABLE",
        CALL_OUTCOME(&a));
  CHECK(sc.n_att == 2, "%d request attempts, expected exactly 2", sc.n_att);
  retry_done(&sc, &a, &rs);
  CHECKS_DONE();
}

/* (d) Committed: REFUSED_STREAM after the response HEADERS is not retried;
 * the call fails. */
static void test_wire_retry_not_after_headers(void **state) {
  static const enum rs_action acts[] = {HEADERS_REFUSE, ANSWER};
  rserver rs;
  scenario sc;
  it_async a;
  (void)state;
  retry_run(acts, 2, &sc, &a, &rs);
  CHECK(a.done == 1 && a.status.code != CGRPC_STATUS_OK,
        "a call reset after its response HEADERS ended %s (\"%s\")",
        CALL_OUTCOME(&a));
  CHECK(sc.n_att == 1, "%d request attempts, expected 1 (no retry)", sc.n_att);
  retry_done(&sc, &a, &rs);
  CHECKS_DONE();
}

/* ==== 6. Compression, client side =====================================
 *
 * What the client sends (grpc-encoding when it compresses, always
 * grpc-accept-encoding with what it reads, the compressed flag), and how
 * it takes compressed responses from another implementation: read in the
 * response's grpc-encoding; INTERNAL for the flag without one (or in an
 * encoding it cannot read, or corrupt); RESOURCE_EXHAUSTED for a reply
 * that inflates past its receive limit. */

/* An Echo call to the raw server with channel default |def|; the server
 * answers with |encoding| and |msg| (see scenario).  Returns the first
 * attempt's request headers and first DATA byte in |sc|, the outcome in
 * |a| (it_async_fini it). */
static void compressed_round(int def, const char *encoding,
                             const h2raw_buf *msg, scenario *sc, it_async *a) {
  rserver rs;
  cgrpc_channel *ch = NULL;
  cgrpc_channel_options *o = NULL;
  rs_start(&rs);
  assert_int_equal(cgrpc_channel_options_new(&o), 0);
  if (def)
    assert_int_equal(cgrpc_channel_options_set_default_compression(o, def), 0);
  assert_int_equal(cgrpc_channel_new(&ch, rs.target, o), 0);
  cgrpc_channel_options_del(o);
  scenario_init(sc);
  sc->act[sc->n_act++] = ANSWER;
  sc->reply_encoding = encoding;
  sc->reply_msg = msg;
  start_echo(ch, &call_10s, a);
  rs_run(&rs, a, sc);
  CHECK(a->done == 1, "the call completed %d times", a->done);
  cgrpc_channel_del(ch);
  rs_stop(&rs);
}

/* ---- the service config's retryPolicy (gRFC A6) on the wire ---- */

#define RETRY_POLICY                                                           \
  "{\"methodConfig\": [{\"name\": [{\"service\": "                             \
  "\"cgrpc.test.EchoService\"}], \"retryPolicy\": {\"maxAttempts\": 3, "       \
  "\"initialBackoff\": \"0.01s\", \"maxBackoff\": \"0.05s\", "                 \
  "\"backoffMultiplier\": 2, \"retryableStatusCodes\": [\"UNAVAILABLE\"]}}]}"

/* Trailers-Only UNAVAILABLE twice, then an answer: three attempts, the
 * retries saying how many came before them; the original says nothing. */
static void test_wire_retry_policy_attempts(void **state) {
  static const enum rs_action acts[] = {UNAVAILABLE, UNAVAILABLE, ANSWER};
  static const retry_setup setup = {RETRY_POLICY, NULL, 0};
  rserver rs;
  scenario sc;
  it_async a;
  (void)state;
  retry_run_with(acts, 3, &setup, &sc, &a, &rs);
  check_call_ok(&a, "the call that failed UNAVAILABLE twice");
  CHECK(sc.n_att == 3, "%d attempts, expected 3", sc.n_att);
  CHECK(sc.n_att < 3 || (strcmp(sc.att[0].previous, "-") == 0 &&
                         strcmp(sc.att[1].previous, "1") == 0 &&
                         strcmp(sc.att[2].previous, "2") == 0),
        "grpc-previous-rpc-attempts %s, %s, %s; expected -, 1, 2",
        sc.att[0].previous, sc.att[1].previous, sc.att[2].previous);
  CHECK(sc.n_att < 3 || sc.att[2].data_bytes > 0,
        "the third attempt carried no request");
  retry_done(&sc, &a, &rs);
  CHECKS_DONE();
}

/* The server's pushback is waited before the retry. */
static void test_wire_retry_policy_pushback(void **state) {
  static const enum rs_action acts[] = {PUSHBACK, ANSWER};
  static const retry_setup setup = {RETRY_POLICY, "300", 0};
  rserver rs;
  scenario sc;
  it_async a;
  (void)state;
  retry_run_with(acts, 2, &setup, &sc, &a, &rs);
  check_call_ok(&a, "the call pushed back for 300 ms");
  CHECK(sc.n_att == 2, "%d attempts, expected 2", sc.n_att);
  CHECK(sc.n_att < 2 || sc.att[1].at_ms - sc.att[0].at_ms >= 300,
        "the retry came %lld ms after the pushback of 300 ms",
        (long long)(sc.att[1].at_ms - sc.att[0].at_ms));
  retry_done(&sc, &a, &rs);
  CHECKS_DONE();
}

/* A pushback that is not a non-negative number stops the retries; so does
 * one that would end past the deadline (the server's status comes at
 * once, not the deadline's). */
static void test_wire_retry_policy_no_retry(void **state) {
  static const enum rs_action acts[] = {PUSHBACK, ANSWER};
  static const retry_setup negative = {RETRY_POLICY, "-1", 0};
  static const retry_setup past_deadline = {RETRY_POLICY, "60000", 3000};
  const retry_setup *setups[] = {&negative, &past_deadline};
  (void)state;
  for (int k = 0; k < 2; k++) {
    rserver rs;
    scenario sc;
    it_async a;
    retry_run_with(acts, 2, setups[k], &sc, &a, &rs);
    CHECK(a.done == 1 && a.status.code == CGRPC_STATUS_UNAVAILABLE,
          "pushback %s: %s (%s), expected UNAVAILABLE", setups[k]->pushback,
          CALL_OUTCOME(&a));
    CHECK(sc.n_att == 1, "pushback %s: %d attempts, expected 1",
          setups[k]->pushback, sc.n_att);
    CHECK(a.done_at_ms - sc.att[0].at_ms < 2000 * SLOW,
          "pushback %s: the status came %lld ms after the answer",
          setups[k]->pushback, (long long)(a.done_at_ms - sc.att[0].at_ms));
    retry_done(&sc, &a, &rs);
  }
  CHECKS_DONE();
}

/* Response headers commit the call: their UNAVAILABLE is final. */
static void test_wire_retry_policy_committed(void **state) {
  static const enum rs_action acts[] = {HEADERS_UNAVAILABLE, ANSWER};
  static const retry_setup setup = {RETRY_POLICY, NULL, 0};
  rserver rs;
  scenario sc;
  it_async a;
  (void)state;
  retry_run_with(acts, 2, &setup, &sc, &a, &rs);
  CHECK(a.done == 1 && a.status.code == CGRPC_STATUS_UNAVAILABLE,
        "%s (%s), expected UNAVAILABLE", CALL_OUTCOME(&a));
  CHECK(sc.n_att == 1, "%d attempts after response headers, expected 1",
        sc.n_att);
  retry_done(&sc, &a, &rs);
  CHECKS_DONE();
}

/* Cancels the call |arg| (from a thread of its own). */
static void cancel_main(void *arg) { cgrpc_call_cancel(arg); }

/* A call waiting out a pushback of 60 s ends CANCELLED, at once, when its
 * channel is deleted (|cancel| 0) or another thread cancels it (1). */
static void retry_backoff_interrupted(int cancel) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  cgrpc_call *call = NULL;
  rserver rs;
  it_async a;
  cgrpc_channel *ch;
  rs_event ev;
  int64_t took, t0;
  int i;
  rs_start(&rs);
  ch = rs_channel_with(&rs, RETRY_POLICY);
  req.message = "hi";
  it_async_init(&a);
  assert_int_equal(cgrpc__test__echo_service__echo__start(
                       ch, &req, NULL, it_async_done, &a, &call),
                   0);
  for (i = 0; i < 200; i++) {
    rs_next(&rs, 50, &ev);
    if (ev.kind == RS_HEADERS && h2raw_fields_find(&ev.hdrs, ":method") >= 0) {
      const char *only[] = {
          ":status",     "200", "content-type",           "application/grpc",
          "grpc-status", "14",  "grpc-retry-pushback-ms", "60000",
          NULL};
      h2raw_buf b;
      h2raw_buf_init(&b);
      h2raw_headers(&b, ev.stream, 1, only);
      rs_send(&rs, ev.conn, &b);
      h2raw_buf_free(&b);
      rs_event_free(&ev);
      break;
    }
    rs_event_free(&ev);
  }
  CHECK(i < 200, "the request never came");
  for (i = 0; i < 10; i++) /* let the answer reach the client */
    rs_next(&rs, 20, &ev), rs_event_free(&ev);
  CHECK(!it_async_wait(&a, 0), "the call ended (%s, %s) instead of waiting",
        CALL_OUTCOME(&a));
  if (cancel) {
    t0 = it_now_ms();
    CHECK(it_bg_wait(it_bg_start(cancel_main, call), BOUND_MS),
          "cgrpc_call_cancel did not return");
    CHECK(it_async_wait(&a, BOUND_MS) == 1 &&
              a.status.code == CGRPC_STATUS_CANCELLED &&
              it_now_ms() - t0 < 2000 * SLOW,
          "the call cancelled in its backoff: %s (%s), expected CANCELLED at "
          "once",
          CALL_OUTCOME(&a));
  }
  cgrpc_call_unref(call);
  took = it_channel_del_bounded(ch, BOUND_MS);
  CHECK(took >= 0 && took < 2000 * SLOW,
        "cgrpc_channel_del took %lld ms with a call in its backoff",
        (long long)took);
  CHECK(it_async_wait(&a, BOUND_MS) == 1 &&
            a.status.code == CGRPC_STATUS_CANCELLED,
        "the call in its backoff: %s (%s), expected CANCELLED",
        CALL_OUTCOME(&a));
  it_async_fini(&a);
  rs_stop(&rs);
  CHECKS_DONE();
}

static void test_wire_retry_policy_channel_deleted(void **state) {
  (void)state;
  retry_backoff_interrupted(0);
}

static void test_wire_retry_policy_cancelled(void **state) {
  (void)state;
  retry_backoff_interrupted(1);
}

/* A framed EchoReply {message: |text|} compressed with zlib's |bits|. */
static void put_compressed_reply(h2raw_buf *m, int bits, const char *text) {
  Cgrpc__Test__EchoReply reply = CGRPC__TEST__ECHO_REPLY__INIT;
  size_t n = 0;
  uint8_t *p;
  reply.message = (char *)(uintptr_t)text;
  n = protobuf_c_message_get_packed_size(&reply.base);
  p = malloc(n + 1);
  assert_non_null(p);
  protobuf_c_message_pack(&reply.base, p);
  put_compressed(m, bits, p, n);
  free(p);
}

static void test_wire_client_sends_encoding(void **state) {
  static const int defs[] = {0, CGRPC_COMPRESS_GZIP, CGRPC_COMPRESS_DEFLATE};
  static const char *const names[] = {NULL, "gzip", "deflate"};
  size_t i;
  (void)state;
  for (i = 0; i < 3; i++) {
    scenario sc;
    it_async a;
    const char *ge, *ae;
    compressed_round(defs[i], NULL, NULL, &sc, &a);
    check_call_ok(&a, "a call answered uncompressed");
    ge = h2raw_fields_get(&sc.first, "grpc-encoding");
    ae = h2raw_fields_get(&sc.first, "grpc-accept-encoding");
    print_message("  channel default %s: grpc-encoding %s, "
                  "grpc-accept-encoding %s, flag %d\n",
                  str_or_none(names[i]), str_or_none(ge), str_or_none(ae),
                  sc.att[0].first_flag);
    CHECK(names[i] ? ge && strcmp(ge, names[i]) == 0 : ge == NULL,
          "default %s: grpc-encoding %s", str_or_none(names[i]),
          str_or_none(ge));
    CHECK(ae && strcmp(ae, "identity,deflate,gzip") == 0,
          "grpc-accept-encoding %s, expected identity,deflate,gzip",
          str_or_none(ae));
    CHECK(sc.att[0].first_flag == (names[i] ? 1 : 0),
          "default %s: the request's flag is %d", str_or_none(names[i]),
          sc.att[0].first_flag);
    it_async_fini(&a);
    h2raw_fields_free(&sc.first);
  }
  CHECKS_DONE();
}

/* gzip and deflate replies from another implementation (zlib's encoder). */
static void test_wire_client_compressed_reply(void **state) {
  static const int bits[] = {15 + 16, 15};
  static const char *const names[] = {"gzip", "deflate"};
  size_t i;
  (void)state;
  for (i = 0; i < 2; i++) {
    scenario sc;
    it_async a;
    h2raw_buf m;
    h2raw_buf_init(&m);
    put_compressed_reply(&m, bits[i], "wire ok");
    compressed_round(0, names[i], &m, &sc, &a);
    check_call_ok(&a, names[i]);
    it_async_fini(&a);
    h2raw_fields_free(&sc.first);
    h2raw_buf_free(&m);
  }
  CHECKS_DONE();
}

/* Replies the client must refuse. */
static void test_wire_client_bad_compressed_reply(void **state) {
  size_t big = (size_t)64 << 20;
  uint8_t *zeros = calloc(big, 1);
  h2raw_buf plain, gz, bomb, corrupt;
  static const char *const what[] = {"flag 1 without grpc-encoding",
                                     "flag 1 under grpc-encoding identity",
                                     "flag 1 under grpc-encoding snappy",
                                     "gzip bytes under deflate",
                                     "corrupt gzip",
                                     "a gzip bomb (64 MiB of zeros)"};
  const char *enc[6] = {NULL, "identity", "snappy", "deflate", "gzip", "gzip"};
  const h2raw_buf *msg[6];
  static const int want[6] = {
      CGRPC_STATUS_INTERNAL, CGRPC_STATUS_INTERNAL,
      CGRPC_STATUS_INTERNAL, CGRPC_STATUS_INTERNAL,
      CGRPC_STATUS_INTERNAL, CGRPC_STATUS_RESOURCE_EXHAUSTED};
  size_t i;
  (void)state;
  assert_non_null(zeros);
  h2raw_buf_init(&plain);
  h2raw_buf_init(&gz);
  h2raw_buf_init(&bomb);
  h2raw_buf_init(&corrupt);
  put_compressed_reply(&plain, 0, "wire ok");
  put_compressed_reply(&gz, 15 + 16, "wire ok");
  put_compressed(&bomb, 15 + 16, zeros, big);
  free(zeros);
  put_compressed_reply(&corrupt, 15 + 16, "wire ok");
  corrupt.data[corrupt.len - 3] ^= 0x5a; /* the gzip trailer */
  msg[0] = msg[1] = msg[2] = &plain;
  msg[3] = &gz;
  msg[4] = &corrupt;
  msg[5] = &bomb;
  for (i = 0; i < 6; i++) {
    scenario sc;
    it_async a;
    compressed_round(0, enc[i], msg[i], &sc, &a);
    print_message("  %s: %s (\"%s\")\n", what[i], CALL_OUTCOME(&a));
    CHECK((int)a.status.code == want[i], "%s: %s (\"%s\"), expected %s",
          what[i], CALL_OUTCOME(&a), cgrpc_status_code_name(want[i]));
    it_async_fini(&a);
    h2raw_fields_free(&sc.first);
  }
  h2raw_buf_free(&plain);
  h2raw_buf_free(&gz);
  h2raw_buf_free(&bomb);
  h2raw_buf_free(&corrupt);
  CHECKS_DONE();
}

/* ---- main ---- */

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
#define T(name)                                                                \
  cmocka_unit_test_setup_teardown(name, it_watchdog_setup, it_watchdog_teardown)
      T(test_wire_server_no_content_type_415),
      T(test_wire_server_text_html_415),
      T(test_wire_server_get_405),
      T(test_wire_server_timeout_malformed),
      T(test_wire_server_timeout_valid),
      T(test_wire_server_data_after_end_stream),
      T(test_wire_server_headers_after_end_stream),
      T(test_wire_server_data_after_client_rst),
      T(test_wire_server_data_after_client_rst_same_read),
      T(test_wire_server_early_answer_drains),
      T(test_wire_server_early_answer_drain_bytes),
      T(test_wire_server_early_answer_drain_time),
      T(test_wire_server_early_answer_server_stop),
      T(test_wire_server_unsupported_encoding),
      T(test_wire_server_flag_without_encoding),
      T(test_wire_server_compressed_request),
      T(test_wire_server_bad_compressed_request),
      T(test_wire_server_zip_bomb),
      T(test_wire_server_negotiation),
      T(test_wire_server_odd_compressed_requests),
      T(test_wire_client_data_after_end_stream),
      T(test_wire_client_header_order),
      T(test_wire_retry_goaway_last_stream_0),
      T(test_wire_retry_refused_stream),
      T(test_wire_retry_only_once),
      T(test_wire_retry_not_after_headers),
      T(test_wire_retry_policy_attempts),
      T(test_wire_retry_policy_pushback),
      T(test_wire_retry_policy_no_retry),
      T(test_wire_retry_policy_committed),
      T(test_wire_retry_policy_channel_deleted),
      T(test_wire_retry_policy_cancelled),
      T(test_wire_client_sends_encoding),
      T(test_wire_client_compressed_reply),
      T(test_wire_client_bad_compressed_reply),
#undef T
  };
  /* One test (a cmocka filter pattern) per CTest entry. */
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
