/* SPDX-License-Identifier: MIT */
/*
 * What a proxy in front of a gRPC server does to the wire, played by a raw
 * HTTP/2 peer (tests/common/h2raw), against our client and our server:
 *  - its own error answers (nginx's 502, HAProxy's 503: an HTML page with
 *    content-type text/html) reach the caller as the status the HTTP code
 *    maps to (gRPC's http-grpc-status-mapping.md), never as a framing
 *    error from deframing the HTML;
 *  - a response that ends without trailers (HAProxy ends a stream with an
 *    empty DATA frame and END_STREAM when its backend dies mid-call) fails,
 *    never ends OK;
 *  - an answer complete while the request is still open ends the client's
 *    call at once, and the client resets its own half (RFC 9113 8.1),
 *    also while an async write waits for window.
 */
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "h2raw.h"
#include "harness.h"
#include "stream_harness.h"

#define CHECK IT_CHECK
#define CHECKS_DONE IT_CHECKS_DONE
#define BOUND_MS (5000 * IT_SLOW)

static const char *str_or_none(const char *s) { return s ? s : "(none)"; }

/* ==== a raw server: one connection, frames read one at a time ========= */

typedef struct peer {
  int lfd, port; /* the listener */
  int fd;
  h2raw_hpack *hp;
  char target[64];
} peer;

static void peer_init(peer *p) {
  memset(p, 0, sizeof *p);
  p->lfd = p->fd = -1;
  assert_int_equal(h2raw_hpack_new(&p->hp), 0);
}

static void peer_close(peer *p) {
  if (p->fd >= 0)
    close(p->fd);
  if (p->lfd >= 0)
    close(p->lfd);
  h2raw_hpack_del(p->hp);
  p->fd = p->lfd = -1;
  p->hp = NULL;
}

static void peer_send(peer *p, h2raw_buf *b) {
  if (p->fd >= 0 && h2raw_send_buf(p->fd, b) != 0)
    print_message("  (raw peer: a send failed)\n");
  h2raw_buf_reset(b);
}

/* A raw server listening on a free port. */
static void server_listen(peer *p) {
  peer_init(p);
  p->lfd = h2raw_listen(&p->port, 0);
  assert_true(p->lfd >= 0);
  snprintf(p->target, sizeof p->target, "127.0.0.1:%d", p->port);
}

/* Accepts the client's connection: its preface, then our SETTINGS. */
static int server_accept(peer *p) {
  h2raw_buf b;
  p->fd = h2raw_accept(p->lfd, 0, BOUND_MS);
  if (p->fd < 0 || h2raw_read_preface(p->fd, BOUND_MS) != 0)
    return -1;
  h2raw_buf_init(&b);
  h2raw_settings(&b, NULL, 0);
  peer_send(p, &b);
  h2raw_buf_free(&b);
  return 0;
}

/*
 * The next frame other than SETTINGS, PING and WINDOW_UPDATE (SETTINGS are
 * acknowledged, PINGs answered, window updates dropped).  A HEADERS frame
 * is decoded into |*hdrs| (free it with h2raw_fields_free()).  Returns 1
 * with |*f| (free it), 0 when the connection closed, -1 on timeout.
 */
static int peer_next(peer *p, int ms, h2raw_rframe *f, h2raw_fields *hdrs) {
  int64_t end = it_now_ms() + ms;
  memset(hdrs, 0, sizeof *hdrs);
  for (;;) {
    int64_t left = end - it_now_ms();
    struct pollfd pfd;
    int rv;
    if (left <= 0)
      return -1;
    pfd.fd = p->fd;
    pfd.events = POLLIN;
    if (poll(&pfd, 1, (int)left) <= 0)
      continue;
    rv = h2raw_read_frame(p->fd, BOUND_MS, f);
    if (rv <= 0)
      return rv;
    if (f->type == H2RAW_SETTINGS) {
      if (h2raw_ack_settings(p->fd, f) < 0)
        print_message("  (raw peer: SETTINGS ACK failed)\n");
    } else if (f->type == H2RAW_PING && !(f->flags & H2RAW_FLAG_ACK) &&
               f->len == 8) {
      h2raw_buf b;
      h2raw_buf_init(&b);
      h2raw_ping(&b, 1, f->payload);
      peer_send(p, &b);
      h2raw_buf_free(&b);
    } else if (f->type != H2RAW_WINDOW_UPDATE) {
      if (f->type == H2RAW_HEADERS && h2raw_hpack_decode(p->hp, f, hdrs) != 0)
        CHECK(0, "an undecodable header block");
      return 1;
    }
    h2raw_rframe_free(f);
  }
}

/* Reads what the client sends until END_STREAM on a request stream, or,
 * with |first_data|, until its first DATA; returns the stream or 0. */
static uint32_t server_read_request(peer *p, int first_data) {
  uint32_t stream = 0;
  for (;;) {
    h2raw_rframe f;
    h2raw_fields h;
    int rv = peer_next(p, BOUND_MS, &f, &h);
    int end;
    if (rv != 1)
      return 0;
    if (f.type == H2RAW_HEADERS && !stream)
      stream = f.stream;
    end = f.stream == stream && stream &&
          ((f.flags & H2RAW_FLAG_END_STREAM) ||
           (first_data && f.type == H2RAW_DATA));
    h2raw_fields_free(&h);
    h2raw_rframe_free(&f);
    if (end)
      return stream;
  }
}

static cgrpc_channel *channel_to(const peer *p) {
  cgrpc_channel *ch = NULL;
  cgrpc_channel_options *o = NULL;
  assert_int_equal(cgrpc_channel_options_new(&o), 0);
  if (getenv("CGRPC_TEST_LOG"))
    cgrpc_channel_options_set_log(o, cgrpc_log_stderr, NULL);
  assert_int_equal(cgrpc_channel_new(&ch, p->target, o), 0);
  cgrpc_channel_options_del(o);
  return ch;
}

static const cgrpc_call_options call_10s = {.timeout_ms = 10000};

/* gRPC's response headers. */
static const char *const grpc_head[] = {":status", "200", "content-type",
                                        "application/grpc", NULL};

static void start_echo(cgrpc_channel *ch, it_async *a) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  req.message = "hi";
  it_async_init(a);
  assert_int_equal(cgrpc__test__echo_service__echo__start(
                       ch, &req, &call_10s, it_async_done, a, NULL),
                   0);
}

/* Appends a framed EchoReply {message: |text|} to |b|. */
static void framed_echo_reply(h2raw_buf *b, const char *text) {
  Cgrpc__Test__EchoReply r = CGRPC__TEST__ECHO_REPLY__INIT;
  uint8_t buf[256];
  size_t n;
  r.message = (char *)text;
  n = cgrpc__test__echo_reply__pack(&r, buf);
  h2raw_grpc_message(b, buf, n);
}

/* ==== 1. a proxy's own error answers =================================== */

static const char html[] =
    "<html><body><h1>502 Bad Gateway</h1>nginx</body></html>\n";

typedef struct answer_case {
  const char *what;
  const char *status, *content_type; /* content_type NULL: none sent */
  int body;                          /* an HTML body, END_STREAM on DATA */
  cgrpc_status_code want;
  const char *want_in_message;
} answer_case;

static void test_proxy_wire_client_proxy_error_answers(void **state) {
  static const answer_case cases[] = {
      {"nginx's 502 page", "502", "text/html", 1, CGRPC_STATUS_UNAVAILABLE,
       "HTTP 502 from the peer (content-type text/html)"},
      {"HAProxy's 503 page", "503", "text/html", 1, CGRPC_STATUS_UNAVAILABLE,
       "HTTP 503 from the peer (content-type text/html)"},
      {"a 504 page", "504", "text/html", 1, CGRPC_STATUS_UNAVAILABLE,
       "HTTP 504"},
      {"a 429 page", "429", "text/html", 1, CGRPC_STATUS_UNAVAILABLE,
       "HTTP 429"},
      {"a 404 page", "404", "text/html", 1, CGRPC_STATUS_UNIMPLEMENTED,
       "HTTP 404"},
      {"a 403 page", "403", "text/html", 1, CGRPC_STATUS_PERMISSION_DENIED,
       "HTTP 403"},
      {"a 401 page", "401", "text/html", 1, CGRPC_STATUS_UNAUTHENTICATED,
       "HTTP 401"},
      {"a 400 page", "400", "text/html", 1, CGRPC_STATUS_INTERNAL, "HTTP 400"},
      {"a 500 page", "500", "text/html", 1, CGRPC_STATUS_UNKNOWN, "HTTP 500"},
      {"a bare 502", "502", NULL, 0, CGRPC_STATUS_UNAVAILABLE,
       "HTTP 502 from the peer (content-type none)"},
      {"a 502 claiming gRPC", "502", "application/grpc", 1,
       CGRPC_STATUS_UNAVAILABLE, "HTTP 502"},
      {"200 with an HTML page", "200", "text/html", 1, CGRPC_STATUS_UNKNOWN,
       "content-type text/html"},
  };
  peer p;
  cgrpc_channel *ch;
  size_t i;
  (void)state;
  server_listen(&p);
  ch = channel_to(&p);
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const answer_case *c = &cases[i];
    const char *head[] = {":status", c->status, NULL, NULL, NULL};
    it_async a;
    h2raw_buf b;
    uint32_t stream;
    start_echo(ch, &a);
    if (i == 0)
      CHECK(server_accept(&p) == 0, "the client did not connect");
    stream = server_read_request(&p, 0);
    CHECK(stream != 0, "%s: no request came", c->what);
    if (c->content_type) {
      head[2] = "content-type";
      head[3] = c->content_type;
    }
    h2raw_buf_init(&b);
    h2raw_headers(&b, stream, !c->body, head);
    if (c->body)
      h2raw_data(&b, stream, 1, html, sizeof html - 1);
    peer_send(&p, &b);
    h2raw_buf_free(&b);
    it_async_wait(&a, BOUND_MS);
    print_message("  %s: %s \"%s\"\n", c->what,
                  cgrpc_status_code_name(a.status.code),
                  str_or_none(a.status.message));
    CHECK(a.done == 1, "%s: the call did not complete", c->what);
    CHECK(a.status.code == c->want, "%s: status %s, expected %s", c->what,
          cgrpc_status_code_name(a.status.code),
          cgrpc_status_code_name(c->want));
    CHECK(a.status.message && strstr(a.status.message, c->want_in_message),
          "%s: message \"%s\" lacks \"%s\"", c->what,
          str_or_none(a.status.message), c->want_in_message);
    it_async_fini(&a);
  }
  cgrpc_channel_del(ch);
  peer_close(&p);
  CHECKS_DONE();
}

/* ==== 2. a response that ends without trailers ========================= */

/* The client connects and sends its request; the answer is gRPC's
 * response headers, |messages| (framed), then an empty DATA with
 * END_STREAM and no trailers (what HAProxy sends when the backend's
 * connection dies mid-call). */
static void answer_without_trailers(peer *p, const h2raw_buf *messages) {
  h2raw_buf b;
  uint32_t stream;
  CHECK(server_accept(p) == 0, "the client did not connect");
  stream = server_read_request(p, 0);
  CHECK(stream != 0, "no request came");
  h2raw_buf_init(&b);
  h2raw_headers(&b, stream, 0, grpc_head);
  h2raw_data(&b, stream, 0, messages->data, messages->len);
  h2raw_data(&b, stream, 1, NULL, 0);
  peer_send(p, &b);
  h2raw_buf_free(&b);
}

/* What such a call must end with: INTERNAL, saying why. */
static void check_no_trailers_status(const cgrpc_status *st) {
  CHECK(st->code == CGRPC_STATUS_INTERNAL, "status %s, expected INTERNAL",
        cgrpc_status_code_name(st->code));
  CHECK(st->message && strstr(st->message, "without trailers"),
        "message \"%s\"", str_or_none(st->message));
}

/* Unary: the reply came, but no trailers. */
static void test_proxy_wire_client_no_trailers_unary(void **state) {
  peer p;
  cgrpc_channel *ch;
  it_async a;
  h2raw_buf m;
  (void)state;
  server_listen(&p);
  ch = channel_to(&p);
  start_echo(ch, &a);
  h2raw_buf_init(&m);
  framed_echo_reply(&m, "half");
  answer_without_trailers(&p, &m);
  h2raw_buf_free(&m);
  it_async_wait(&a, BOUND_MS);
  print_message("  no trailers: %s \"%s\"\n",
                cgrpc_status_code_name(a.status.code),
                str_or_none(a.status.message));
  CHECK(a.done == 1, "the call did not complete");
  check_no_trailers_status(&a.status);
  it_async_fini(&a);
  cgrpc_channel_del(ch);
  peer_close(&p);
  CHECKS_DONE();
}

/* Server streaming: two chunks arrive and are read, then the stream ends
 * without trailers: the call fails. */
static void test_proxy_wire_client_no_trailers_stream(void **state) {
  Cgrpc__Test__DownloadRequest req = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
  peer p;
  cgrpc_channel *ch;
  cgrpc_call *call = NULL;
  cgrpc_status st;
  h2raw_buf m;
  int i, got = 0;
  (void)state;
  server_listen(&p);
  ch = channel_to(&p);
  req.count = 2;
  assert_int_equal(cgrpc__test__stream_service__download__open(ch, &req,
                                                               &call_10s,
                                                               &call),
                   0);
  h2raw_buf_init(&m);
  for (i = 0; i < 2; i++) {
    Cgrpc__Test__Chunk c = CGRPC__TEST__CHUNK__INIT;
    uint8_t buf[64];
    c.seq = i + 1;
    h2raw_grpc_message(&m, buf, cgrpc__test__chunk__pack(&c, buf));
  }
  answer_without_trailers(&p, &m);
  h2raw_buf_free(&m);
  for (;;) {
    Cgrpc__Test__Chunk *c = NULL;
    if (cgrpc__test__stream_service__download__read(call, &c) != 1)
      break;
    got++;
    protobuf_c_message_free_unpacked(&c->base, NULL);
  }
  cgrpc_call_finish(call, &st);
  print_message("  %d chunks, then %s \"%s\"\n", got,
                cgrpc_status_code_name(st.code), str_or_none(st.message));
  CHECK(got == 2, "%d chunks read, expected 2", got);
  check_no_trailers_status(&st);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  cgrpc_channel_del(ch);
  peer_close(&p);
  CHECKS_DONE();
}

/* ==== 3. the answer comes while the client is still sending ============ */

/* A client-streaming call: the server answers (Trailers-Only, or headers +
 * trailers) after the first chunk.  The call ends with that status without
 * the client ending its request, the client resets its half with
 * RST_STREAM(NO_ERROR) and sends no END_STREAM, and a later write finds the
 * call over. */
static void answer_while_sending(int trailers_only) {
  static const char *const only[] = {
      ":status",      "200", "content-type", "application/grpc",
      "grpc-status",  "9",   "grpc-message", "early%20end",
      "x-bin-info-bin", "AAEC", NULL};
  static const char *const trailers[] = {"grpc-status", "9", "grpc-message",
                                         "early%20end", "x-bin-info-bin",
                                         "AAEC", NULL};
  Cgrpc__Test__Chunk c = CGRPC__TEST__CHUNK__INIT;
  peer p;
  cgrpc_channel *ch;
  cgrpc_call *call = NULL;
  cgrpc_status st;
  h2raw_buf b;
  uint32_t stream;
  int64_t end;
  long rst = -1;
  int client_end_stream = 0, rv, wrv = 0;
  const char *bin;
  server_listen(&p);
  ch = channel_to(&p);
  assert_int_equal(
      cgrpc__test__stream_service__upload__open(ch, &call_10s, &call), 0);
  c.seq = 1;
  assert_int_equal(cgrpc__test__stream_service__upload__write(call, &c), 0);
  CHECK(server_accept(&p) == 0, "the client did not connect");
  stream = server_read_request(&p, 1);
  CHECK(stream != 0, "no request came");
  h2raw_buf_init(&b);
  if (trailers_only) {
    h2raw_headers(&b, stream, 1, only);
  } else {
    h2raw_headers(&b, stream, 0, grpc_head);
    h2raw_headers(&b, stream, 1, trailers);
  }
  peer_send(&p, &b);
  h2raw_buf_free(&b);
  /* The client's answer on the stream: RST_STREAM, not END_STREAM. */
  end = it_now_ms() + BOUND_MS;
  while (rst < 0 && it_now_ms() < end) {
    h2raw_rframe f;
    h2raw_fields h;
    rv = peer_next(&p, 100, &f, &h);
    if (rv == 0)
      break;
    if (rv < 0)
      continue;
    if (f.stream == stream && (f.flags & H2RAW_FLAG_END_STREAM) &&
        (f.type == H2RAW_DATA || f.type == H2RAW_HEADERS))
      client_end_stream = 1;
    if (f.stream == stream && f.type == H2RAW_RST_STREAM)
      rst = (long)h2raw_rframe_u32(&f, 0);
    h2raw_fields_free(&h);
    h2raw_rframe_free(&f);
  }
  /* The call is over: reading ends, writing fails. */
  {
    Cgrpc__Test__Chunk *r = NULL;
    rv = cgrpc_call_read(call, (ProtobufCMessage **)&r);
    if (rv == 1)
      protobuf_c_message_free_unpacked(&r->base, NULL);
  }
  wrv = cgrpc__test__stream_service__upload__write(call, &c);
  cgrpc_call_finish(call, &st);
  bin = st.trailing_metadata ? it_md_get(st.trailing_metadata, "x-bin-info-bin")
                             : NULL;
  print_message("  %s: client RST_STREAM %ld, END_STREAM %d, read %d, write "
                "%d, status %s \"%s\"\n",
                trailers_only ? "Trailers-Only" : "headers + trailers", rst,
                client_end_stream, rv, wrv, cgrpc_status_code_name(st.code),
                str_or_none(st.message));
  CHECK(rst == H2RAW_NO_ERROR,
        "the client's RST_STREAM: %ld, expected NO_ERROR (0)", rst);
  CHECK(!client_end_stream, "the client ended its request after the answer");
  CHECK(rv == 0, "a read after the answer returned %d, expected 0", rv);
  CHECK(wrv == CGRPC_ERR_CLOSED, "a write after the answer returned %d (%s)",
        wrv, cgrpc_err_name(wrv));
  CHECK(st.code == CGRPC_STATUS_FAILED_PRECONDITION,
        "status %s, expected FAILED_PRECONDITION",
        cgrpc_status_code_name(st.code));
  CHECK(st.message && strcmp(st.message, "early end") == 0, "message \"%s\"",
        str_or_none(st.message));
  CHECK(bin && memcmp(bin, "\x00\x01\x02", 3) == 0,
        "the -bin trailer did not arrive decoded");
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  cgrpc_channel_del(ch);
  peer_close(&p);
}

static void test_proxy_wire_client_trailers_only_while_sending(void **state) {
  (void)state;
  answer_while_sending(1);
  CHECKS_DONE();
}

static void test_proxy_wire_client_trailers_while_sending(void **state) {
  (void)state;
  answer_while_sending(0);
  CHECKS_DONE();
}

/* ==== 4. the answer comes while an async write waits for window ======= */

/* How the application lets go of the call. */
enum release_how {
  RELEASE_AFTER,       /* after on_done, from the test's thread */
  RELEASE_IN_DONE,     /* cancel and unref from inside on_done */
  RELEASE_RACING_LOOP, /* cancel and unref from the test's thread while the
                          answer is on its way to the loop */
};

typedef struct pending_write {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  enum release_how how;
  int write_done, write_ok, write_again_rv, done, done_before_write;
  cgrpc_status_code code;
} pending_write;

static void pw_write_done(cgrpc_call *call, int ok, void *user_data) {
  pending_write *w = user_data;
  Cgrpc__Test__Chunk c = CGRPC__TEST__CHUNK__INIT;
  /* The call is over: another write is refused, a cancel does nothing. */
  int rv = cgrpc__test__stream_service__upload__write_async(call, &c);
  cgrpc_call_cancel(call);
  pthread_mutex_lock(&w->lock);
  w->write_done++;
  w->write_ok += ok;
  w->write_again_rv = rv;
  pthread_mutex_unlock(&w->lock);
}

static void pw_done(cgrpc_call *call, const cgrpc_status *status,
                    void *user_data) {
  pending_write *w = user_data;
  pthread_mutex_lock(&w->lock);
  w->code = status->code;
  w->done_before_write += w->write_done == 0;
  pthread_mutex_unlock(&w->lock);
  if (w->how == RELEASE_IN_DONE) {
    cgrpc_call_cancel(call);
    cgrpc_call_unref(call); /* the call lives until on_done returns */
  }
  pthread_mutex_lock(&w->lock);
  w->done++;
  pthread_cond_broadcast(&w->cond);
  pthread_mutex_unlock(&w->lock);
}

/* A client-streaming async call writes a message larger than the windows
 * (the raw server never gives any back), so the write stays pending; the
 * server answers Trailers-Only.  on_write_done comes once with ok 0, then
 * on_done once with the answer, however the application lets go of the
 * call (valgrind / ASan see the rest: no leak, no use after free). */
static void answer_while_write_pending(enum release_how how) {
  static const char *const only[] = {":status",     "200",
                                     "content-type", "application/grpc",
                                     "grpc-status", "9",
                                     NULL};
  static const cgrpc_call_callbacks cbs = {NULL, pw_write_done, pw_done};
  static uint8_t big[200 * 1024];
  pending_write w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, how,
                     0, 0, 0, 0, 0, CGRPC_STATUS_OK};
  Cgrpc__Test__Chunk c = CGRPC__TEST__CHUNK__INIT;
  peer p;
  cgrpc_channel *ch;
  cgrpc_call *call = NULL;
  h2raw_buf b;
  uint32_t stream;
  int64_t end;
  server_listen(&p);
  ch = channel_to(&p);
  assert_int_equal(cgrpc__test__stream_service__upload__open_async(
                       ch, &call_10s, &cbs, &w, &call),
                   0);
  c.data.data = big;
  c.data.len = sizeof big;
  assert_int_equal(cgrpc__test__stream_service__upload__write_async(call, &c),
                   0);
  CHECK(server_accept(&p) == 0, "the client did not connect");
  stream = server_read_request(&p, 1);
  CHECK(stream != 0, "no request came");
  h2raw_buf_init(&b);
  h2raw_headers(&b, stream, 1, only);
  peer_send(&p, &b);
  h2raw_buf_free(&b);
  if (how == RELEASE_RACING_LOOP) {
    cgrpc_call_cancel(call);
    cgrpc_call_unref(call);
  }
  end = it_now_ms() + BOUND_MS;
  pthread_mutex_lock(&w.lock);
  while (!w.done && it_now_ms() < end) {
    pthread_mutex_unlock(&w.lock);
    it_sleep_ms(5);
    pthread_mutex_lock(&w.lock);
  }
  pthread_mutex_unlock(&w.lock);
  if (how == RELEASE_AFTER)
    cgrpc_call_unref(call);
  /* No callback runs after this. */
  cgrpc_channel_del(ch);
  peer_close(&p);
  print_message("  on_write_done %d (ok %d, write again %s), on_done %d "
                "(%s, before the write's %d)\n",
                w.write_done, w.write_ok, cgrpc_err_name(w.write_again_rv),
                w.done, cgrpc_status_code_name(w.code), w.done_before_write);
  CHECK(w.write_done == 1, "on_write_done ran %d times", w.write_done);
  CHECK(w.write_ok == 0, "the pending write was reported sent");
  CHECK(w.write_again_rv == CGRPC_ERR_CLOSED,
        "a write from on_write_done returned %s",
        cgrpc_err_name(w.write_again_rv));
  CHECK(w.done == 1, "on_done ran %d times", w.done);
  CHECK(w.done_before_write == 0, "on_done came before on_write_done");
  /* Racing the answer, the cancel may win. */
  CHECK(w.code == CGRPC_STATUS_FAILED_PRECONDITION ||
            (how == RELEASE_RACING_LOOP && w.code == CGRPC_STATUS_CANCELLED),
        "status %s", cgrpc_status_code_name(w.code));
}

static void test_proxy_wire_client_answer_while_write_pending(void **state) {
  (void)state;
  answer_while_write_pending(RELEASE_AFTER);
  CHECKS_DONE();
}

static void
test_proxy_wire_client_answer_while_write_pending_unref_in_done(void **state) {
  (void)state;
  answer_while_write_pending(RELEASE_IN_DONE);
  CHECKS_DONE();
}

static void
test_proxy_wire_client_answer_while_write_pending_unref_racing(void **state) {
  (void)state;
  answer_while_write_pending(RELEASE_RACING_LOOP);
  CHECKS_DONE();
}

#define T(name)                                                                \
  cmocka_unit_test_setup_teardown(name, it_watchdog_setup, it_watchdog_teardown)

int main(int argc, char **argv) {
  const struct CMUnitTest all[] = {
      T(test_proxy_wire_client_proxy_error_answers),
      T(test_proxy_wire_client_no_trailers_unary),
      T(test_proxy_wire_client_no_trailers_stream),
      T(test_proxy_wire_client_trailers_only_while_sending),
      T(test_proxy_wire_client_trailers_while_sending),
      T(test_proxy_wire_client_answer_while_write_pending),
      T(test_proxy_wire_client_answer_while_write_pending_unref_in_done),
      T(test_proxy_wire_client_answer_while_write_pending_unref_racing),
  };
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests_name("proxy_wire", all, NULL, NULL);
}
