/* SPDX-License-Identifier: MIT */
/*
 * Streaming retries (gRFC A6) on the wire: a raw HTTP/2 server (h2raw)
 * records the request bytes of every attempt and ends the first one in the
 * way the test says (Trailers-Only UNAVAILABLE, RST_STREAM REFUSED_STREAM,
 * GOAWAY, the connection closed, response headers then UNAVAILABLE),
 * possibly while a message is cut by its small stream window.  The later
 * attempts get the window they need and are answered OK with an empty
 * message.  The tests check that each retried attempt carries exactly the
 * bytes of every message the application wrote, in order, whole, once.
 */
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"
#include "stream.grpc-c.h"

#define SLOW IT_SLOW
#define BOUND_MS (10000 * SLOW)

#define RW_CONNS 4
#define RW_ATTS 8

/* What the server does with the first attempt. */
enum rw_act {
  RW_ANSWER,            /* nothing special: answered OK at its end */
  RW_TRAILERS_ONLY,     /* Trailers-Only 14, then RST_STREAM(NO_ERROR) */
  RW_REFUSE,            /* RST_STREAM(REFUSED_STREAM) */
  RW_GOAWAY,            /* GOAWAY(last stream 0), then the close */
  RW_CLOSE,             /* the TCP connection closed */
  RW_HEADERS_UNAVAIL,   /* response HEADERS, then trailers 14 (committed) */
  RW_TRAILERS_ONLY_ALL, /* every attempt: Trailers-Only 14 + RST */
  RW_REFUSE_ALL,        /* every attempt: RST_STREAM(REFUSED_STREAM) */
};

typedef struct rw_att {
  int conn;
  uint32_t stream;
  h2raw_buf data; /* the request DATA, concatenated */
  int ended;
  int acted;
  char previous[8]; /* grpc-previous-rpc-attempts, "-" when none */
  char encoding[16];
} rw_att;

typedef struct rw_server {
  int lfd, port;
  char target[64];
  int fd[RW_CONNS];
  h2raw_hpack *hp[RW_CONNS];
  int n_conns;
  pthread_mutex_t lock;
  rw_att att[RW_ATTS];
  int n_att;
  enum rw_act act;
  size_t act_after;     /* bytes of the first attempt before it acts */
  uint32_t window;      /* SETTINGS_INITIAL_WINDOW_SIZE sent */
  int stingy;           /* later attempts get no more window either */
  const char *pushback; /* Trailers-Only's grpc-retry-pushback-ms */
  atomic_int stop;
  it_bg_job *job;
} rw_server;

static void rw_send(rw_server *s, int conn, h2raw_buf *b) {
  if (s->fd[conn] >= 0)
    (void)h2raw_send_buf(s->fd[conn], b);
  h2raw_buf_reset(b);
}

static void rw_accept(rw_server *s) {
  h2raw_setting set = {H2RAW_SETTINGS_INITIAL_WINDOW_SIZE, 0};
  h2raw_buf b;
  int fd = h2raw_accept(s->lfd, 0, 0), c;
  if (fd < 0)
    return;
  if (s->n_conns == RW_CONNS || h2raw_read_preface(fd, BOUND_MS) != 0) {
    close(fd);
    return;
  }
  c = s->n_conns++;
  s->fd[c] = fd;
  assert_int_equal(h2raw_hpack_new(&s->hp[c]), 0);
  set.value = s->window;
  h2raw_buf_init(&b);
  h2raw_settings(&b, &set, 1);
  /* The connection's window never stops anything. */
  h2raw_window_update(&b, 0, 0x7fffffffu - 65535u);
  rw_send(s, c, &b);
  h2raw_buf_free(&b);
}

static void rw_close(rw_server *s, int c) {
  if (s->fd[c] >= 0)
    close(s->fd[c]);
  s->fd[c] = -1;
}

/* Headers 200, one empty message, trailers OK. */
static void rw_answer(rw_server *s, int c, uint32_t stream) {
  static const char *const head[] = {":status", "200", "content-type",
                                     "application/grpc", NULL};
  static const char *const trailers[] = {"grpc-status", "0", NULL};
  static const uint8_t empty[5] = {0, 0, 0, 0, 0};
  h2raw_buf b;
  h2raw_buf_init(&b);
  h2raw_headers(&b, stream, 0, head);
  h2raw_data(&b, stream, 0, empty, sizeof empty);
  h2raw_headers(&b, stream, 1, trailers);
  rw_send(s, c, &b);
  h2raw_buf_free(&b);
}

static void rw_act_on(rw_server *s, rw_att *a, enum rw_act act) {
  static const char *const only[] = {
      ":status",     "200", "content-type", "application/grpc",
      "grpc-status", "14",  "grpc-message", "failing this attempt",
      NULL};
  static const char *const head[] = {":status", "200", "content-type",
                                     "application/grpc", NULL};
  static const char *const trailers[] = {"grpc-status", "14", NULL};
  h2raw_buf b;
  pthread_mutex_lock(&s->lock);
  a->acted = 1;
  pthread_mutex_unlock(&s->lock);
  h2raw_buf_init(&b);
  switch (act) {
  case RW_TRAILERS_ONLY:
  case RW_TRAILERS_ONLY_ALL:
    if (s->pushback) {
      const char *kv[] = {
          ":status",     "200", "content-type",           "application/grpc",
          "grpc-status", "14",  "grpc-retry-pushback-ms", s->pushback,
          NULL};
      h2raw_headers(&b, a->stream, 1, kv);
    } else {
      h2raw_headers(&b, a->stream, 1, only);
    }
    h2raw_rst_stream(&b, a->stream, H2RAW_NO_ERROR);
    rw_send(s, a->conn, &b);
    break;
  case RW_REFUSE:
  case RW_REFUSE_ALL:
    h2raw_rst_stream(&b, a->stream, H2RAW_REFUSED_STREAM);
    rw_send(s, a->conn, &b);
    break;
  case RW_GOAWAY:
    h2raw_goaway(&b, 0, H2RAW_NO_ERROR);
    rw_send(s, a->conn, &b);
    shutdown(s->fd[a->conn], SHUT_WR);
    (void)h2raw_drain(s->fd[a->conn], 200 * SLOW);
    rw_close(s, a->conn);
    break;
  case RW_CLOSE:
    rw_close(s, a->conn);
    break;
  case RW_HEADERS_UNAVAIL:
    h2raw_headers(&b, a->stream, 0, head);
    h2raw_headers(&b, a->stream, 1, trailers);
    h2raw_rst_stream(&b, a->stream, H2RAW_NO_ERROR);
    rw_send(s, a->conn, &b);
    break;
  case RW_ANSWER:
    break;
  }
  h2raw_buf_free(&b);
}

static rw_att *rw_find(rw_server *s, int c, uint32_t stream) {
  int i;
  for (i = 0; i < s->n_att; i++)
    if (s->att[i].conn == c && s->att[i].stream == stream)
      return &s->att[i];
  return NULL;
}

static void rw_frame(rw_server *s, int c, h2raw_rframe *f) {
  h2raw_buf b;
  rw_att *a;
  int idx;
  h2raw_buf_init(&b);
  if (f->type == H2RAW_PING && !(f->flags & H2RAW_FLAG_ACK) && f->len == 8) {
    h2raw_ping(&b, 1, f->payload);
    rw_send(s, c, &b);
  }
  if (f->type == H2RAW_HEADERS && !rw_find(s, c, f->stream)) {
    h2raw_fields l;
    if (h2raw_hpack_decode(s->hp[c], f, &l) == 0 &&
        h2raw_fields_find(&l, ":method") >= 0 && s->n_att < RW_ATTS) {
      pthread_mutex_lock(&s->lock);
      a = &s->att[s->n_att++];
      a->conn = c;
      a->stream = f->stream;
      h2raw_buf_init(&a->data);
      snprintf(a->previous, sizeof a->previous, "%s",
               h2raw_fields_find(&l, "grpc-previous-rpc-attempts") >= 0
                   ? h2raw_fields_get(&l, "grpc-previous-rpc-attempts")
                   : "-");
      snprintf(a->encoding, sizeof a->encoding, "%s",
               h2raw_fields_find(&l, "grpc-encoding") >= 0
                   ? h2raw_fields_get(&l, "grpc-encoding")
                   : "-");
      a->ended = (f->flags & H2RAW_FLAG_END_STREAM) != 0;
      idx = s->n_att - 1;
      pthread_mutex_unlock(&s->lock);
      if ((idx > 0 || s->act == RW_ANSWER) && !s->stingy) {
        /* Later attempts: all the window they want. */
        h2raw_window_update(&b, f->stream, 0x7fffffffu - s->window);
        rw_send(s, c, &b);
      }
      if ((s->act == RW_TRAILERS_ONLY_ALL || s->act == RW_REFUSE_ALL ||
           (idx == 0 && s->act != RW_ANSWER)) &&
          s->act_after == 0)
        rw_act_on(s, a, s->act);
      else if (a->ended)
        rw_answer(s, c, f->stream);
    }
    h2raw_fields_free(&l);
  } else if (f->type == H2RAW_DATA && (a = rw_find(s, c, f->stream))) {
    int first = a == &s->att[0];
    pthread_mutex_lock(&s->lock);
    h2raw_append(&a->data, f->payload, f->len);
    a->ended = (f->flags & H2RAW_FLAG_END_STREAM) != 0;
    pthread_mutex_unlock(&s->lock);
    if (f->len) {
      h2raw_window_update(&b, 0, (uint32_t)f->len);
      rw_send(s, c, &b);
    }
    if (!a->acted &&
        (s->act == RW_TRAILERS_ONLY_ALL || s->act == RW_REFUSE_ALL ||
         (first && s->act != RW_ANSWER)) &&
        a->data.len >= s->act_after)
      rw_act_on(s, a, s->act);
    else if (!a->acted && a->ended)
      rw_answer(s, c, f->stream);
  } else if (f->type == H2RAW_HEADERS && (a = rw_find(s, c, f->stream)) &&
             (f->flags & H2RAW_FLAG_END_STREAM) && !a->acted) {
    a->ended = 1;
    rw_answer(s, c, f->stream);
  }
  h2raw_buf_free(&b);
}

static void rw_loop(void *arg) {
  rw_server *s = arg;
  while (!atomic_load(&s->stop)) {
    struct pollfd pfd[RW_CONNS + 1];
    int map[RW_CONNS + 1], n = 0, i;
    pfd[n].fd = s->lfd;
    pfd[n].events = POLLIN;
    map[n++] = -1;
    for (i = 0; i < s->n_conns; i++)
      if (s->fd[i] >= 0) {
        pfd[n].fd = s->fd[i];
        pfd[n].events = POLLIN;
        map[n++] = i;
      }
    if (poll(pfd, (nfds_t)n, 20) <= 0)
      continue;
    if (pfd[0].revents)
      rw_accept(s);
    for (i = 1; i < n; i++) {
      h2raw_rframe f;
      int c = map[i];
      if (!pfd[i].revents || s->fd[c] < 0)
        continue;
      if (h2raw_read_frame(s->fd[c], BOUND_MS, &f) <= 0) {
        rw_close(s, c);
        continue;
      }
      (void)h2raw_ack_settings(s->fd[c], &f);
      rw_frame(s, c, &f);
      h2raw_rframe_free(&f);
    }
  }
}

static void rw_start(rw_server *s, enum rw_act act, size_t act_after,
                     uint32_t window) {
  int i;
  memset(s, 0, sizeof *s);
  pthread_mutex_init(&s->lock, NULL);
  for (i = 0; i < RW_CONNS; i++)
    s->fd[i] = -1;
  s->act = act;
  s->act_after = act_after;
  s->window = window;
  s->lfd = h2raw_listen(&s->port, 0);
  assert_true(s->lfd >= 0);
  snprintf(s->target, sizeof s->target, "127.0.0.1:%d", s->port);
  s->job = it_bg_start(rw_loop, s);
}

static void rw_stop(rw_server *s) {
  int i;
  atomic_store(&s->stop, 1);
  assert_true(it_bg_wait(s->job, BOUND_MS));
  for (i = 0; i < s->n_conns; i++) {
    rw_close(s, i);
    h2raw_hpack_del(s->hp[i]);
  }
  close(s->lfd);
}

/* Frees what rw_stop() left for the checks. */
static void rw_free(rw_server *s) {
  int i;
  for (i = 0; i < s->n_att; i++)
    h2raw_buf_free(&s->att[i].data);
  pthread_mutex_destroy(&s->lock);
}

#define UPLOAD_POLICY(attempts)                                                \
  "{\"methodConfig\": [{\"name\": [{\"service\": "                             \
  "\"cgrpc.test.StreamService\"}, {\"service\": "                              \
  "\"cgrpc.test.EchoService\"}], \"retryPolicy\": "                            \
  "{\"maxAttempts\": " #attempts ", \"initialBackoff\": \"0.01s\", "           \
  "\"maxBackoff\": \"0.01s\", \"backoffMultiplier\": 2, "                      \
  "\"retryableStatusCodes\": [\"UNAVAILABLE\"]}}]}"

static cgrpc_channel *rw_channel(const rw_server *s, const char *json) {
  cgrpc_channel_options *o;
  cgrpc_channel *ch = NULL;
  char err[300] = "";
  assert_int_equal(cgrpc_channel_options_new(&o), 0);
  if (getenv("CGRPC_TEST_LOG"))
    cgrpc_channel_options_set_log(o, cgrpc_log_stderr, NULL);
  if (cgrpc_channel_options_set_service_config(o, json, err, sizeof err) != 0)
    fail_msg("service config refused: %s", err);
  assert_int_equal(cgrpc_channel_new(&ch, s->target, o), 0);
  cgrpc_channel_options_del(o);
  return ch;
}

/* The messages the uploads send: sizes chosen so that with a 1000-byte
 * stream window three are sent whole, the fourth (100 KiB) in part. */
#define N_MSGS 5
static const size_t msg_sizes[N_MSGS] = {100, 100, 100, 100 * 1024, 10};
static uint8_t payload[100 * 1024];

static void chunk_of(Cgrpc__Test__Chunk *c, int i) {
  cgrpc__test__chunk__init(c);
  c->seq = i;
  c->data.data = payload;
  c->data.len = msg_sizes[i];
}

/* The framed bytes of all the messages, as they must reach the server. */
static void expected_bytes(h2raw_buf *b) {
  int i;
  h2raw_buf_init(b);
  for (i = 0; i < N_MSGS; i++) {
    Cgrpc__Test__Chunk c;
    chunk_of(&c, i);
    it_raw_grpc_message(b, &c.base);
  }
}

static void fill_payload(void) {
  size_t i;
  for (i = 0; i < sizeof payload; i++)
    payload[i] = (uint8_t)(i * 7 + 1);
}

/* A blocking upload of the N_MSGS messages; returns the status. */
static cgrpc_status_code upload_all(cgrpc_channel *ch,
                                    const cgrpc_call_options *opts) {
  cgrpc_call_options o = {.timeout_ms = BOUND_MS};
  Cgrpc__Test__UploadSummary *reply = NULL;
  cgrpc_status st = {0};
  cgrpc_status_code code;
  cgrpc_call *call;
  int i;
  if (!opts)
    opts = &o;
  assert_int_equal(cgrpc__test__stream_service__upload__open(ch, opts, &call),
                   0);
  for (i = 0; i < N_MSGS; i++) {
    Cgrpc__Test__Chunk c;
    chunk_of(&c, i);
    if (cgrpc__test__stream_service__upload__write(call, &c) != 0)
      break;
  }
  code = cgrpc__test__stream_service__upload__finish(call, &reply, &st);
  if (code != CGRPC_STATUS_OK)
    print_message("  upload: %s \"%s\"\n", cgrpc_status_code_name(code),
                  st.message ? st.message : "");
  if (reply)
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  return code;
}

/* Attempt |i|'s bytes are exactly |want| and ended with END_STREAM. */
static void check_attempt_bytes(rw_server *s, int i, const h2raw_buf *want) {
  rw_att *a;
  pthread_mutex_lock(&s->lock);
  a = &s->att[i];
  if (a->data.len != want->len ||
      memcmp(a->data.data, want->data, want->len) != 0) {
    size_t k = 0;
    while (k < a->data.len && k < want->len && a->data.data[k] == want->data[k])
      k++;
    fail_msg("attempt %d sent %zu bytes, expected the %zu bytes of the %d "
             "messages (first difference at %zu)",
             i + 1, a->data.len, want->len, N_MSGS, k);
  }
  if (!a->ended)
    fail_msg("attempt %d did not end its request", i + 1);
  pthread_mutex_unlock(&s->lock);
}

static void rw_print(rw_server *s) {
  int i;
  for (i = 0; i < s->n_att; i++)
    print_message("  attempt %d: connection %d, stream %u, %zu bytes%s\n",
                  i + 1, s->att[i].conn, (unsigned)s->att[i].stream,
                  s->att[i].data.len, s->att[i].ended ? ", ended" : "");
}

/* Whether the first attempt was ended by the server. */
static int rw_acted(rw_server *s) {
  int acted;
  pthread_mutex_lock(&s->lock);
  acted = s->n_att > 0 && s->att[0].acted;
  pthread_mutex_unlock(&s->lock);
  return acted;
}

static int n_attempts(rw_server *s) {
  int n;
  pthread_mutex_lock(&s->lock);
  n = s->n_att;
  pthread_mutex_unlock(&s->lock);
  return n;
}

/* The first attempt fails as |act| says after |after| bytes (the fourth
 * message cut by the 1000-byte window); the second carries every message
 * whole, once, in order. */
static void resend_case(enum rw_act act, size_t after) {
  rw_server s;
  cgrpc_channel *ch;
  h2raw_buf want;
  fill_payload();
  rw_start(&s, act, after, 1000);
  ch = rw_channel(&s, UPLOAD_POLICY(3));
  assert_int_equal(upload_all(ch, NULL), CGRPC_STATUS_OK);
  cgrpc_channel_del(ch);
  rw_stop(&s);
  rw_print(&s);
  assert_int_equal(s.n_att, 2);
  expected_bytes(&want);
  assert_true(s.att[0].data.len >= after);
  assert_true(s.att[0].data.len < want.len);
  check_attempt_bytes(&s, 1, &want);
  assert_string_equal(s.att[0].previous, "-");
  if (act != RW_REFUSE && act != RW_GOAWAY)
    assert_string_equal(s.att[1].previous, "1");
  h2raw_buf_free(&want);
  rw_free(&s);
}

static void test_retry_wire_trailers_only_partial(void **state) {
  (void)state;
  resend_case(RW_TRAILERS_ONLY, 1000);
}

static void test_retry_wire_refused_partial(void **state) {
  (void)state;
  resend_case(RW_REFUSE, 1000);
}

static void test_retry_wire_goaway_partial(void **state) {
  (void)state;
  resend_case(RW_GOAWAY, 1000);
}

static void test_retry_wire_conn_lost_partial(void **state) {
  (void)state;
  resend_case(RW_CLOSE, 1000);
}

/* Response headers, then trailers UNAVAILABLE: committed, one attempt. */
static void test_retry_wire_headers_then_unavailable(void **state) {
  rw_server s;
  cgrpc_channel *ch;
  (void)state;
  fill_payload();
  rw_start(&s, RW_HEADERS_UNAVAIL, 300, 1000);
  ch = rw_channel(&s, UPLOAD_POLICY(3));
  assert_int_equal(upload_all(ch, NULL), CGRPC_STATUS_UNAVAILABLE);
  cgrpc_channel_del(ch);
  rw_stop(&s);
  assert_int_equal(s.n_att, 1);
  rw_free(&s);
}

/* Compressed requests: the second attempt sends the same compressed bytes
 * again, under the same grpc-encoding. */
static void test_retry_wire_gzip_resend(void **state) {
  cgrpc_call_options o = {.timeout_ms = BOUND_MS,
                          .compression = CGRPC_COMPRESS_GZIP};
  rw_server s;
  cgrpc_channel *ch;
  size_t off = 0;
  int n = 0;
  (void)state;
  memset(payload, 'z', sizeof payload); /* compressible */
  rw_start(&s, RW_TRAILERS_ONLY, 1, 1000);
  ch = rw_channel(&s, UPLOAD_POLICY(3));
  assert_int_equal(upload_all(ch, &o), CGRPC_STATUS_OK);
  cgrpc_channel_del(ch);
  rw_stop(&s);
  assert_int_equal(s.n_att, 2);
  assert_string_equal(s.att[0].encoding, "gzip");
  assert_string_equal(s.att[1].encoding, "gzip");
  /* What the first attempt sent is where the second starts. */
  assert_true(s.att[0].data.len <= s.att[1].data.len);
  assert_memory_equal(s.att[0].data.data, s.att[1].data.data,
                      s.att[0].data.len);
  /* N_MSGS whole messages, each with the compressed flag. */
  while (off + 5 <= s.att[1].data.len) {
    const uint8_t *p = s.att[1].data.data + off;
    size_t len = ((size_t)p[1] << 24) | ((size_t)p[2] << 16) |
                 ((size_t)p[3] << 8) | p[4];
    assert_int_equal(p[0], 1);
    off += 5 + len;
    n++;
  }
  assert_int_equal(off, s.att[1].data.len);
  assert_int_equal(n, N_MSGS);
  rw_free(&s);
}

/* ---- the async form: a write pending when the attempt fails ---- */

typedef struct aup {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int next; /* the next message to write */
  int write_done[N_MSGS];
  int bad_ok;
  int done;
  cgrpc_status_code code;
} aup;

static void aup_write_done(cgrpc_call *call, int ok, void *user_data) {
  aup *u = user_data;
  Cgrpc__Test__Chunk c;
  pthread_mutex_lock(&u->lock);
  if (u->next > 0)
    u->write_done[u->next - 1]++;
  if (!ok)
    u->bad_ok++;
  pthread_mutex_unlock(&u->lock);
  if (!ok)
    return;
  if (u->next < N_MSGS) {
    chunk_of(&c, u->next++);
    assert_int_equal(cgrpc_call_write_async(call, &c.base), 0);
  } else {
    cgrpc_call_writes_done(call);
  }
}

static void aup_read(cgrpc_call *call, ProtobufCMessage *msg, void *user_data) {
  (void)call;
  (void)user_data;
  if (msg)
    protobuf_c_message_free_unpacked(msg, NULL);
}

static void aup_done(cgrpc_call *call, const cgrpc_status *status,
                     void *user_data) {
  aup *u = user_data;
  (void)call;
  pthread_mutex_lock(&u->lock);
  u->code = status->code;
  u->done++;
  pthread_cond_broadcast(&u->cond);
  pthread_mutex_unlock(&u->lock);
}

/* Every on_write_done once, ok, and the bytes of the second attempt
 * exactly the messages, though the fourth was pending (cut by the window)
 * when the first attempt failed, and three had completed. */
static void test_retry_wire_async_pending_write(void **state) {
  static const cgrpc_call_callbacks cbs = {aup_read, aup_write_done, aup_done};
  cgrpc_call_options o = {.timeout_ms = BOUND_MS};
  aup u = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}, 0, 0,
           CGRPC_STATUS_UNKNOWN};
  Cgrpc__Test__Chunk c;
  struct timespec until;
  rw_server s;
  cgrpc_channel *ch;
  cgrpc_call *call;
  h2raw_buf want;
  int i;
  (void)state;
  fill_payload();
  rw_start(&s, RW_TRAILERS_ONLY, 1000, 1000);
  ch = rw_channel(&s, UPLOAD_POLICY(3));
  assert_int_equal(
      cgrpc__test__stream_service__upload__open_async(ch, &o, &cbs, &u, &call),
      0);
  chunk_of(&c, 0);
  pthread_mutex_lock(&u.lock);
  u.next = 1;
  pthread_mutex_unlock(&u.lock);
  assert_int_equal(cgrpc_call_write_async(call, &c.base), 0);
  assert_int_equal(cgrpc_call_read_async(call), 0);
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 10 * SLOW;
  pthread_mutex_lock(&u.lock);
  while (!u.done && pthread_cond_timedwait(&u.cond, &u.lock, &until) == 0)
    ;
  pthread_mutex_unlock(&u.lock);
  assert_int_equal(u.done, 1);
  assert_int_equal(u.code, CGRPC_STATUS_OK);
  assert_int_equal(u.bad_ok, 0);
  for (i = 0; i < N_MSGS; i++)
    if (u.write_done[i] != 1)
      fail_msg("on_write_done for message %d ran %d times", i, u.write_done[i]);
  cgrpc_call_unref(call);
  cgrpc_channel_del(ch);
  rw_stop(&s);
  assert_int_equal(s.n_att, 2);
  expected_bytes(&want);
  check_attempt_bytes(&s, 1, &want);
  h2raw_buf_free(&want);
  rw_free(&s);
}

/* ---- the retry buffer's limit and a message sent in part ---- */

/* A unary request over the 256 KiB retry buffer is committed at once (as
 * before streaming retries: never retried), also when the first attempt
 * fails while the request is still cut by the window.
 * DEFECT (fails at 319b15d): the message counts against the buffer only once
 * sent whole, so an attempt failing before that is retried. */
static void test_retry_wire_unary_over_buffer_partial(void **state) {
  static char big[300 * 1024];
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_call_options o = {.timeout_ms = BOUND_MS};
  cgrpc_status st = {0};
  rw_server s;
  cgrpc_channel *ch;
  (void)state;
  memset(big, 'a', sizeof big - 1);
  req.message = big;
  rw_start(&s, RW_TRAILERS_ONLY_ALL, 1000, 1000);
  ch = rw_channel(&s, UPLOAD_POLICY(3));
  assert_int_equal(
      cgrpc__test__echo_service__echo__call(ch, &req, &reply, &o, &st),
      CGRPC_STATUS_UNAVAILABLE);
  cgrpc_status_clear(&st);
  if (reply)
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_channel_del(ch);
  rw_stop(&s);
  if (s.n_att != 1)
    fail_msg("a %zu-byte request (over the 256 KiB retry buffer) was sent "
             "%d times",
             sizeof big, s.n_att);
  rw_free(&s);
}

/* The same for a stream: one 300 KiB message, cut by the window when the
 * attempt fails, cannot be kept: committed, not retried.
 * DEFECT (fails at 319b15d), as above. */
static void test_retry_wire_stream_over_buffer_partial(void **state) {
  static uint8_t big[300 * 1024];
  cgrpc_call_options o = {.timeout_ms = BOUND_MS};
  Cgrpc__Test__UploadSummary *reply = NULL;
  Cgrpc__Test__Chunk c = CGRPC__TEST__CHUNK__INIT;
  cgrpc_status st = {0};
  rw_server s;
  cgrpc_channel *ch;
  cgrpc_call *call;
  (void)state;
  rw_start(&s, RW_TRAILERS_ONLY_ALL, 1000, 1000);
  ch = rw_channel(&s, UPLOAD_POLICY(3));
  assert_int_equal(cgrpc__test__stream_service__upload__open(ch, &o, &call), 0);
  c.data.data = big;
  c.data.len = sizeof big;
  (void)cgrpc__test__stream_service__upload__write(call, &c);
  assert_int_equal(
      cgrpc__test__stream_service__upload__finish(call, &reply, &st),
      CGRPC_STATUS_UNAVAILABLE);
  cgrpc_status_clear(&st);
  if (reply)
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_call_unref(call);
  cgrpc_channel_del(ch);
  rw_stop(&s);
  if (s.n_att != 1)
    fail_msg("a stream with a %zu-byte message (over the 256 KiB retry "
             "buffer) was sent %d times",
             sizeof big, s.n_att);
  rw_free(&s);
}

/* gRFC A6: a request refused (REFUSED_STREAM) is retried once at once;
 * when that fails too, the retry policy handles it: with maxAttempts 3 and
 * UNAVAILABLE retryable, every attempt refused, the call is tried at least
 * three times.
 * DEFECT (fails at 319b15d and before, for unary calls too): after the one
 * transparent retry, a REFUSED_STREAM ends the call without the policy. */
static void test_retry_wire_refused_then_policy(void **state) {
  rw_server s;
  cgrpc_channel *ch;
  (void)state;
  fill_payload();
  rw_start(&s, RW_REFUSE_ALL, 300, 1000);
  ch = rw_channel(&s, UPLOAD_POLICY(3));
  assert_int_equal(upload_all(ch, NULL), CGRPC_STATUS_UNAVAILABLE);
  cgrpc_channel_del(ch);
  rw_stop(&s);
  rw_print(&s);
  if (s.n_att < 3)
    fail_msg("%d attempts, every one refused, under maxAttempts 3", s.n_att);
  rw_free(&s);
}

/* The deadline in the middle of the replay (the second attempt gets no
 * window past its first 1000 bytes): DEADLINE_EXCEEDED, and nothing kept
 * or promised is touched after (the sanitizer build checks). */
static void test_retry_wire_deadline_mid_replay(void **state) {
  cgrpc_call_options o = {.timeout_ms = 1500 * SLOW};
  rw_server s;
  cgrpc_channel *ch;
  int64_t t0;
  (void)state;
  fill_payload();
  rw_start(&s, RW_TRAILERS_ONLY, 1000, 1000);
  s.stingy = 1;
  ch = rw_channel(&s, UPLOAD_POLICY(3));
  t0 = it_now_ms();
  assert_int_equal(upload_all(ch, &o), CGRPC_STATUS_DEADLINE_EXCEEDED);
  assert_true(it_now_ms() - t0 < 5000 * SLOW);
  cgrpc_channel_del(ch);
  rw_stop(&s);
  assert_int_equal(s.n_att, 2);
  rw_free(&s);
}

typedef struct writer_job {
  cgrpc_call *call;
  int writes, rv;
} writer_job;

/* Writes 64 KiB chunks until a write fails (bounded). */
static void writer_bg(void *arg) {
  writer_job *w = arg;
  int i;
  for (i = 0; i < 1000; i++) {
    Cgrpc__Test__Chunk c = CGRPC__TEST__CHUNK__INIT;
    c.data.data = payload;
    c.data.len = 64 * 1024;
    w->rv = cgrpc__test__stream_service__upload__write(w->call, &c);
    if (w->rv != 0)
      return;
    w->writes++;
  }
}

/* A blocking writer waiting for room in the full send queue while the call
 * backs off (the server's pushback: 5 s) returns at once when another
 * thread cancels the call; finish says CANCELLED. */
static void test_retry_wire_blocked_writer_cancel_in_backoff(void **state) {
  cgrpc_call_options o = {.timeout_ms = BOUND_MS};
  writer_job w = {NULL, 0, 0};
  cgrpc_status st = {0};
  rw_server s;
  cgrpc_channel *ch;
  it_bg_job *job;
  int64_t t0;
  int i;
  (void)state;
  fill_payload();
  rw_start(&s, RW_TRAILERS_ONLY, 1000, 1000);
  s.pushback = "5000";
  ch = rw_channel(&s, UPLOAD_POLICY(3));
  assert_int_equal(cgrpc__test__stream_service__upload__open(ch, &o, &w.call),
                   0);
  job = it_bg_start(writer_bg, &w);
  /* The first attempt failed, and the queue (256 KiB) filled up. */
  for (i = 0; i < 1000 * SLOW && !rw_acted(&s); i++)
    usleep(2000);
  assert_true(rw_acted(&s));
  assert_false(it_bg_wait(job, 300 * SLOW)); /* blocked */
  t0 = it_now_ms();
  cgrpc_call_cancel(w.call);
  assert_true(it_bg_wait(job, 2000 * SLOW));
  assert_true(it_now_ms() - t0 < 2000 * SLOW);
  assert_int_not_equal(w.rv, 0);
  assert_int_equal(cgrpc_call_finish(w.call, &st), CGRPC_STATUS_CANCELLED);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(w.call);
  cgrpc_channel_del(ch);
  rw_stop(&s);
  assert_int_equal(s.n_att, 1);
  rw_free(&s);
}

/* The last message and the half-close written during the backoff (the
 * server's pushback: 300 ms), after the first attempt failed with four
 * messages queued: the second attempt sends all five, in order, once. */
static void test_retry_wire_write_during_backoff(void **state) {
  cgrpc_call_options o = {.timeout_ms = BOUND_MS};
  Cgrpc__Test__UploadSummary *reply = NULL;
  cgrpc_status st = {0};
  Cgrpc__Test__Chunk c;
  rw_server s;
  cgrpc_channel *ch;
  cgrpc_call *call;
  h2raw_buf want;
  int i;
  (void)state;
  fill_payload();
  rw_start(&s, RW_TRAILERS_ONLY, 1000, 1000);
  s.pushback = "300";
  ch = rw_channel(&s, UPLOAD_POLICY(3));
  assert_int_equal(cgrpc__test__stream_service__upload__open(ch, &o, &call), 0);
  for (i = 0; i < N_MSGS - 1; i++) {
    chunk_of(&c, i);
    assert_int_equal(cgrpc__test__stream_service__upload__write(call, &c), 0);
  }
  for (i = 0; i < 1000 * SLOW && !rw_acted(&s); i++)
    usleep(2000);
  assert_true(rw_acted(&s));
  assert_int_equal(n_attempts(&s), 1);
  chunk_of(&c, N_MSGS - 1);
  assert_int_equal(cgrpc__test__stream_service__upload__write(call, &c), 0);
  assert_int_equal(
      cgrpc__test__stream_service__upload__finish(call, &reply, &st),
      CGRPC_STATUS_OK);
  if (reply)
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  cgrpc_channel_del(ch);
  rw_stop(&s);
  assert_int_equal(s.n_att, 2);
  expected_bytes(&want);
  check_attempt_bytes(&s, 1, &want);
  h2raw_buf_free(&want);
  rw_free(&s);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
#define T(name)                                                                \
  cmocka_unit_test_setup_teardown(name, it_watchdog_setup, it_watchdog_teardown)
      T(test_retry_wire_trailers_only_partial),
      T(test_retry_wire_refused_partial),
      T(test_retry_wire_goaway_partial),
      T(test_retry_wire_conn_lost_partial),
      T(test_retry_wire_headers_then_unavailable),
      T(test_retry_wire_gzip_resend),
      T(test_retry_wire_async_pending_write),
      T(test_retry_wire_unary_over_buffer_partial),
      T(test_retry_wire_stream_over_buffer_partial),
      T(test_retry_wire_refused_then_policy),
      T(test_retry_wire_deadline_mid_replay),
      T(test_retry_wire_blocked_writer_cancel_in_backoff),
      T(test_retry_wire_write_during_backoff),
#undef T
  };
  (void)n_attempts;
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
