/* SPDX-License-Identifier: MIT */
/*
 * Message compression end to end (include/cgrpc/compression.h): a cgrpc
 * client against a cgrpc server, gzip and deflate in both directions, the
 * choices at every level (channel and server defaults, the call's, the
 * handler's, CGRPC_WRITE_NO_COMPRESS per message), the compressed-flag
 * getters on every read path (unary, blocking, async; both sides), the
 * receive limit on the inflated size, and misuse.  What goes on the wire
 * against peers that cgrpc does not control (unsupported encodings,
 * clients that accept nothing, hostile frames) is in test_wire.c.
 *
 * The server runs this file's StreamService servicer, which reports what
 * it saw in fields the tests do not otherwise need:
 *
 *   every method  takes the response compression from request metadata
 *                 "x-compress" (gzip, deflate, identity, default), and puts
 *                 cgrpc_server_ctx_last_message_compressed() of each
 *                 request into the sleep_ms of the chunk it answers with;
 *   Unary         echoes the chunk;
 *   Download      count chunks of size bytes; chunk i goes with
 *                 CGRPC_WRITE_NO_COMPRESS when bit i of status_code is set;
 *   Upload        count and bytes as usual; sum is the bitmask of the
 *                 chunks that came compressed;
 *   Chat          echoes each chunk, with CGRPC_WRITE_NO_COMPRESS when its
 *                 status_code is 1 (blocking reads and writes);
 *   SlowChat      Chat, detached, with read_async and write_async_flags.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "harness.h"
#include "stream.grpc-c.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
/* From sanitizer/allocator_interface.h, which not every compiler ships. */
size_t __sanitizer_get_current_allocated_bytes(void);
/* Bytes the process has allocated and not freed. */
static long long heap_bytes(void) {
  return (long long)__sanitizer_get_current_allocated_bytes();
}
#else
#include <malloc.h>
static long long heap_bytes(void) {
  struct mallinfo2 mi = mallinfo2();
  return (long long)(mi.uordblks + mi.hblkhd);
}
#endif

#define SLOW IT_SLOW

#define TIMEOUT_MS (20000 * SLOW)

typedef Cgrpc__Test__Chunk chunk_t;

/* What the handlers saw that a reply cannot carry. */
static atomic_int late_set_rv;  /* set_compression() after a write */
static atomic_int bad_flags_rv; /* write_flags() with an unknown flag */
static atomic_int upload_stall; /* Upload with "x-stall" waits while set */
static atomic_int upload_stalled; /* ... and says it got there */

/* ---- the servicer ---- */

static void apply_compression(cgrpc_server_ctx *ctx) {
  const char *v = it_md_get(cgrpc_server_ctx_metadata(ctx), "x-compress");
  int c;
  if (!v)
    return;
  c = strcmp(v, "gzip") == 0       ? CGRPC_COMPRESS_GZIP
      : strcmp(v, "deflate") == 0  ? CGRPC_COMPRESS_DEFLATE
      : strcmp(v, "identity") == 0 ? CGRPC_COMPRESS_IDENTITY
                                   : CGRPC_COMPRESS_DEFAULT;
  assert_int_equal(cgrpc_server_ctx_set_compression(ctx, c), 0);
}

static cgrpc_status_code h_unary(cgrpc_server_ctx *ctx, const chunk_t *req,
                                 chunk_t *reply, void *user_data) {
  (void)user_data;
  apply_compression(ctx);
  reply->data = req->data; /* the request outlives the reply's packing */
  reply->seq = req->seq;
  reply->sleep_ms = cgrpc_server_ctx_last_message_compressed(ctx);
  return CGRPC_STATUS_OK;
}

static cgrpc_status_code h_download(cgrpc_server_ctx *ctx,
                                    const Cgrpc__Test__DownloadRequest *req,
                                    void *user_data) {
  int was = cgrpc_server_ctx_last_message_compressed(ctx), i, rv;
  uint8_t *buf = calloc((size_t)req->size + 1, 1);
  (void)user_data;
  if (!buf)
    return CGRPC_STATUS_RESOURCE_EXHAUSTED;
  apply_compression(ctx);
  for (i = 0; i < req->count; i++) {
    chunk_t c = CGRPC__TEST__CHUNK__INIT;
    unsigned flags =
        (req->status_code >> i) & 1 ? (unsigned)CGRPC_WRITE_NO_COMPRESS : 0;
    c.data.data = buf;
    c.data.len = (size_t)req->size;
    c.seq = i;
    c.sleep_ms = was;
    rv = cgrpc_server_ctx_write_flags(ctx, &c.base, flags);
    if (i == 0) {
      atomic_store(&late_set_rv,
                   cgrpc_server_ctx_set_compression(ctx, CGRPC_COMPRESS_GZIP));
      atomic_store(&bad_flags_rv,
                   cgrpc_server_ctx_write_flags(ctx, &c.base, 0x80));
    }
    if (rv != 0) {
      free(buf);
      return CGRPC_STATUS_CANCELLED;
    }
  }
  free(buf);
  return CGRPC_STATUS_OK;
}

static cgrpc_status_code h_upload(cgrpc_server_ctx *ctx,
                                  Cgrpc__Test__UploadSummary *reply,
                                  void *user_data) {
  chunk_t *c;
  int rv, waited = 0;
  (void)user_data;
  apply_compression(ctx);
  /* "x-stall": a reader that lags, until the test lets it go. */
  if (it_md_get(cgrpc_server_ctx_metadata(ctx), "x-stall")) {
    atomic_store(&upload_stalled, 1);
    while (atomic_load(&upload_stall) && waited++ < TIMEOUT_MS)
      it_sleep_ms(1);
  }
  while ((rv = cgrpc__test__stream_service__upload__recv(ctx, &c)) == 1) {
    if (cgrpc_server_ctx_last_message_compressed(ctx) && reply->count < 64)
      reply->sum |= (uint64_t)1 << reply->count;
    reply->count++;
    reply->bytes += (int64_t)c->data.len;
    reply->last_seq = c->seq;
    protobuf_c_message_free_unpacked(&c->base, NULL);
  }
  /* The end of the stream is no message. */
  if (rv == 0 && cgrpc_server_ctx_last_message_compressed(ctx))
    return CGRPC_STATUS_INTERNAL;
  return rv == 0 ? CGRPC_STATUS_OK : CGRPC_STATUS_CANCELLED;
}

static cgrpc_status_code h_chat(cgrpc_server_ctx *ctx, void *user_data) {
  chunk_t *c;
  int rv;
  (void)user_data;
  apply_compression(ctx);
  while ((rv = cgrpc__test__stream_service__chat__recv(ctx, &c)) == 1) {
    chunk_t r = CGRPC__TEST__CHUNK__INIT;
    r.data = c->data;
    r.seq = c->seq;
    r.sleep_ms = cgrpc_server_ctx_last_message_compressed(ctx);
    rv = cgrpc_server_ctx_write_flags(
        ctx, &r.base, c->status_code == 1 ? CGRPC_WRITE_NO_COMPRESS : 0);
    protobuf_c_message_free_unpacked(&c->base, NULL);
    if (rv != 0)
      return CGRPC_STATUS_CANCELLED;
  }
  return rv == 0 ? CGRPC_STATUS_OK : CGRPC_STATUS_CANCELLED;
}

/* SlowChat: Chat on the async API (detached; callbacks on the loop). */
static void achat_read(cgrpc_server_ctx *ctx, ProtobufCMessage *msg,
                       void *user_data);

static void achat_written(cgrpc_server_ctx *ctx, int ok, void *user_data) {
  if (!ok || cgrpc_server_ctx_read_async(ctx, achat_read, user_data) != 0)
    cgrpc_server_ctx_finish(ctx, CGRPC_STATUS_CANCELLED);
}

static void achat_read(cgrpc_server_ctx *ctx, ProtobufCMessage *msg,
                       void *user_data) {
  chunk_t *c = (chunk_t *)msg, r = CGRPC__TEST__CHUNK__INIT;
  int rv;
  if (!c) {
    cgrpc_server_ctx_finish(ctx, cgrpc_server_ctx_is_cancelled(ctx)
                                     ? CGRPC_STATUS_CANCELLED
                                     : CGRPC_STATUS_OK);
    return;
  }
  r.data = c->data;
  r.seq = c->seq;
  /* Valid during the callback. */
  r.sleep_ms = cgrpc_server_ctx_last_message_compressed(ctx);
  rv = cgrpc_server_ctx_write_async_flags(
      ctx, &r.base, c->status_code == 1 ? CGRPC_WRITE_NO_COMPRESS : 0,
      achat_written, user_data);
  protobuf_c_message_free_unpacked(&c->base, NULL);
  if (rv != 0)
    cgrpc_server_ctx_finish(ctx, CGRPC_STATUS_CANCELLED);
}

static cgrpc_status_code h_achat(cgrpc_server_ctx *ctx, void *user_data) {
  apply_compression(ctx);
  cgrpc_server_ctx_detach(ctx);
  if (cgrpc_server_ctx_read_async(ctx, achat_read, user_data) != 0)
    cgrpc_server_ctx_finish(ctx, CGRPC_STATUS_INTERNAL);
  return CGRPC_STATUS_OK;
}

/* ---- fixture ---- */

typedef struct fixture {
  cgrpc_server *server;
  char target[64];
  cgrpc_channel *ch; /* default options */
} fixture;

/* A server on 127.0.0.1 with response compression |def| by default
 * (CGRPC_COMPRESS_DEFAULT: none set) and the default receive limit. */
static void server_start(fixture *f, int def) {
  Cgrpc__Test__StreamService_Servicer s;
  cgrpc_server_options *o = NULL;
  int port;
  memset(&s, 0, sizeof s);
  s.unary = h_unary;
  s.download = h_download;
  s.upload = h_upload;
  s.chat = h_chat;
  s.slow_chat = h_achat;
  assert_int_equal(cgrpc_server_options_new(&o), 0);
  if (getenv("CGRPC_TEST_LOG"))
    cgrpc_server_options_set_log(o, cgrpc_log_stderr, NULL);
  if (def != CGRPC_COMPRESS_DEFAULT)
    assert_int_equal(cgrpc_server_options_set_default_compression(o, def), 0);
  assert_int_equal(cgrpc_server_new(&f->server, o), 0);
  cgrpc_server_options_del(o);
  assert_int_equal(
      cgrpc_server_add_insecure_port(f->server, "127.0.0.1:0", &port), 0);
  assert_int_equal(
      cgrpc__test__stream_service__servicer__register(f->server, &s, NULL), 0);
  assert_int_equal(cgrpc_server_start(f->server), 0);
  snprintf(f->target, sizeof f->target, "127.0.0.1:%d", port);
}

/* A channel to |f|'s server whose requests go in |def| by default, with
 * receive limit |max_recv| (0: the default). */
static cgrpc_channel *channel(const fixture *f, int def, int64_t max_recv) {
  cgrpc_channel_options *o = NULL;
  cgrpc_channel *ch = NULL;
  assert_int_equal(cgrpc_channel_options_new(&o), 0);
  if (getenv("CGRPC_TEST_LOG"))
    cgrpc_channel_options_set_log(o, cgrpc_log_stderr, NULL);
  if (def != CGRPC_COMPRESS_DEFAULT)
    assert_int_equal(cgrpc_channel_options_set_default_compression(o, def), 0);
  if (max_recv)
    cgrpc_channel_options_set_max_receive_message_length(o, max_recv);
  assert_int_equal(cgrpc_channel_new(&ch, f->target, o), 0);
  cgrpc_channel_options_del(o);
  return ch;
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  server_start(f, CGRPC_COMPRESS_DEFAULT);
  f->ch = channel(f, CGRPC_COMPRESS_DEFAULT, 0);
  atomic_store(&late_set_rv, 1);
  atomic_store(&bad_flags_rv, 1);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  cgrpc_channel_del(f->ch);
  cgrpc_server_shutdown(f->server, 1000);
  cgrpc_server_del(f->server);
  free(f);
  return 0;
}

/* Call options: a deadline, |compression|, and metadata "x-compress:
 * |want|" (none when NULL) in |*md| (free with cgrpc_metadata_array_del). */
static cgrpc_call_options opts_for(int compression, const char *want,
                                   cgrpc_metadata_array **md) {
  cgrpc_call_options o = {.timeout_ms = TIMEOUT_MS, .compression = compression};
  *md = NULL;
  if (want) {
    assert_int_equal(cgrpc_metadata_array_new(md), 0);
    assert_int_equal(cgrpc_metadata_array_add(*md, "x-compress", want), 0);
  }
  o.metadata = *md;
  return o;
}

/* A compressible payload of |n| bytes (free()). */
static uint8_t *text(size_t n) {
  uint8_t *p = malloc(n + 1);
  size_t i;
  assert_non_null(p);
  for (i = 0; i < n; i++)
    p[i] = (uint8_t) "abcdefgh"[i % 8];
  return p;
}

/* ---- unary ---- */

typedef struct unary_result {
  it_async a; /* only its lock, cond and done */
  cgrpc_status_code code;
  char message[256];
  int reply_ok; /* the reply echoed the request */
  int req_was;  /* the server saw the request compressed */
  int resp_was; /* cgrpc_call_last_message_compressed() in the callback */
  size_t n;
} unary_result;

static void unary_done(cgrpc_call *call, const cgrpc_status *status,
                       ProtobufCMessage *reply, void *user_data) {
  unary_result *u = user_data;
  chunk_t *c = (chunk_t *)reply;
  pthread_mutex_lock(&u->a.lock);
  u->code = status->code;
  snprintf(u->message, sizeof u->message, "%s",
           status->message ? status->message : "");
  if (c) {
    u->reply_ok = c->data.len == u->n && c->seq == 7;
    u->req_was = c->sleep_ms;
    protobuf_c_message_free_unpacked(reply, NULL);
  }
  u->resp_was = cgrpc_call_last_message_compressed(call);
  u->a.done++;
  pthread_cond_broadcast(&u->a.cond);
  pthread_mutex_unlock(&u->a.lock);
}

/* A Unary call of |n| bytes with call compression |compression| and the
 * response compression |want| asked of the handler. */
static void unary(cgrpc_channel *ch, int compression, const char *want,
                  size_t n, unary_result *u) {
  chunk_t req = CGRPC__TEST__CHUNK__INIT;
  cgrpc_metadata_array *md;
  cgrpc_call_options o = opts_for(compression, want, &md);
  cgrpc_call *call = NULL;
  uint8_t *p = text(n);
  memset(u, 0, sizeof *u);
  it_async_init(&u->a);
  u->n = n;
  req.data.data = p;
  req.data.len = n;
  req.seq = 7;
  assert_int_equal(cgrpc__test__stream_service__unary__start(
                       ch, &req, &o, unary_done, u, &call),
                   0);
  free(p);
  cgrpc_metadata_array_del(md);
  assert_int_equal(it_async_wait(&u->a, TIMEOUT_MS + 5000), 1);
  cgrpc_call_unref(call);
  it_async_fini(&u->a);
}

#define EXPECT_UNARY(u, req_c, resp_c)                                         \
  do {                                                                         \
    if ((u).code != CGRPC_STATUS_OK)                                           \
      fail_msg("status %s (\"%s\")", cgrpc_status_code_name((u).code),         \
               (u).message);                                                   \
    assert_true((u).reply_ok);                                                 \
    assert_int_equal((u).req_was, (req_c));                                    \
    assert_int_equal((u).resp_was, (resp_c));                                  \
  } while (0)

/* Requests compressed by the call's choice, responses by the handler's. */
static void test_compression_unary(void **state) {
  fixture *f = *state;
  static const int encs[] = {CGRPC_COMPRESS_GZIP, CGRPC_COMPRESS_DEFLATE};
  static const char *const names[] = {"gzip", "deflate"};
  unary_result u;
  size_t i;
  unary(f->ch, CGRPC_COMPRESS_DEFAULT, NULL, 1000, &u);
  EXPECT_UNARY(u, 0, 0);
  for (i = 0; i < 2; i++) {
    unary(f->ch, encs[i], NULL, 1000, &u);
    EXPECT_UNARY(u, 1, 0);
    unary(f->ch, CGRPC_COMPRESS_DEFAULT, names[i], 1000, &u);
    EXPECT_UNARY(u, 0, 1);
    unary(f->ch, encs[i], names[i], 300000, &u);
    EXPECT_UNARY(u, 1, 1);
    /* Compressed whatever the size, even empty. */
    unary(f->ch, encs[i], names[i], 0, &u);
    EXPECT_UNARY(u, 1, 1);
  }
  unary(f->ch, CGRPC_COMPRESS_IDENTITY, "identity", 1000, &u);
  EXPECT_UNARY(u, 0, 0);
}

/* The channel's default, and the call's choice over it. */
static void test_compression_channel_default(void **state) {
  fixture *f = *state;
  cgrpc_channel *ch = channel(f, CGRPC_COMPRESS_GZIP, 0);
  unary_result u;
  unary(ch, CGRPC_COMPRESS_DEFAULT, NULL, 5000, &u);
  EXPECT_UNARY(u, 1, 0);
  unary(ch, CGRPC_COMPRESS_IDENTITY, NULL, 5000, &u);
  EXPECT_UNARY(u, 0, 0);
  unary(ch, CGRPC_COMPRESS_DEFLATE, NULL, 5000, &u);
  EXPECT_UNARY(u, 1, 0);
  cgrpc_channel_del(ch);
}

/* The server's default, and the handler's choice over it. */
static void test_compression_server_default(void **state) {
  fixture *f = *state, g;
  unary_result u;
  cgrpc_channel *ch;
  (void)f;
  server_start(&g, CGRPC_COMPRESS_DEFLATE);
  ch = channel(&g, CGRPC_COMPRESS_DEFAULT, 0);
  unary(ch, CGRPC_COMPRESS_DEFAULT, NULL, 5000, &u);
  EXPECT_UNARY(u, 0, 1);
  unary(ch, CGRPC_COMPRESS_DEFAULT, "identity", 5000, &u);
  EXPECT_UNARY(u, 0, 0);
  unary(ch, CGRPC_COMPRESS_DEFAULT, "default", 5000, &u);
  EXPECT_UNARY(u, 0, 1);
  cgrpc_channel_del(ch);
  cgrpc_server_shutdown(g.server, 1000);
  cgrpc_server_del(g.server);
}

/* ---- streams ---- */

/* Upload: the client's per-message opt-out, seen by the server's blocking
 * reads. */
static void test_compression_upload_opt_out(void **state) {
  fixture *f = *state;
  Cgrpc__Test__UploadSummary *sum = NULL;
  cgrpc_metadata_array *md;
  cgrpc_call_options o = opts_for(CGRPC_COMPRESS_GZIP, NULL, &md);
  cgrpc_status st = {0};
  cgrpc_call *call = NULL;
  uint8_t *p = text(20000);
  int i;
  assert_int_equal(cgrpc__test__stream_service__upload__open(f->ch, &o, &call),
                   0);
  for (i = 0; i < 6; i++) {
    chunk_t c = CGRPC__TEST__CHUNK__INIT;
    c.data.data = p;
    c.data.len = (size_t)(i * 3000);
    c.seq = i;
    /* Chunks 1 and 4 go uncompressed. */
    assert_int_equal(
        cgrpc_call_write_flags(call, &c.base,
                               i == 1 || i == 4 ? CGRPC_WRITE_NO_COMPRESS : 0),
        0);
  }
  {
    chunk_t c = CGRPC__TEST__CHUNK__INIT;
    assert_int_equal(cgrpc_call_write_flags(call, &c.base, 2),
                     CGRPC_ERR_INVALID_ARGUMENT);
  }
  assert_int_equal(cgrpc__test__stream_service__upload__finish(call, &sum, &st),
                   CGRPC_STATUS_OK);
  assert_int_equal(sum->count, 6);
  assert_int_equal(sum->bytes, 45000);
  assert_int_equal(sum->sum, 0x2d); /* 0b101101 */
  protobuf_c_message_free_unpacked(&sum->base, NULL);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  cgrpc_metadata_array_del(md);
  free(p);
}

/* Download: the server's per-message opt-out, seen by the client's
 * blocking reads; set_compression() after the first write is refused. */
static void test_compression_download_opt_out(void **state) {
  fixture *f = *state;
  static const char *const names[] = {"gzip", "deflate"};
  size_t k;
  for (k = 0; k < 2; k++) {
    Cgrpc__Test__DownloadRequest req = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
    cgrpc_metadata_array *md;
    cgrpc_call_options o = opts_for(CGRPC_COMPRESS_DEFLATE, names[k], &md);
    cgrpc_status st = {0};
    cgrpc_call *call = NULL;
    chunk_t *c;
    int n = 0;
    req.count = 5;
    req.size = 10000;
    req.status_code = 0x6; /* chunks 1 and 2 uncompressed */
    assert_int_equal(
        cgrpc__test__stream_service__download__open(f->ch, &req, &o, &call), 0);
    while (cgrpc__test__stream_service__download__read(call, &c) == 1) {
      int want = n == 1 || n == 2 ? 0 : 1;
      assert_int_equal(c->seq, n);
      assert_int_equal(c->data.len, 10000);
      assert_int_equal(c->sleep_ms, 1); /* the request was compressed */
      if (cgrpc_call_last_message_compressed(call) != want)
        fail_msg("chunk %d: compressed %d, expected %d", n,
                 cgrpc_call_last_message_compressed(call), want);
      protobuf_c_message_free_unpacked(&c->base, NULL);
      n++;
    }
    assert_int_equal(cgrpc_call_last_message_compressed(call), 0);
    assert_int_equal(cgrpc_call_finish(call, &st), CGRPC_STATUS_OK);
    assert_int_equal(n, 5);
    assert_int_equal(atomic_load(&late_set_rv), CGRPC_ERR_INVALID_STATE);
    assert_int_equal(atomic_load(&bad_flags_rv), CGRPC_ERR_INVALID_ARGUMENT);
    cgrpc_status_clear(&st);
    cgrpc_call_unref(call);
    cgrpc_metadata_array_del(md);
  }
}

/* Chat, blocking on both sides, both directions compressed, each side
 * opting single messages out. */
static void test_compression_chat_blocking(void **state) {
  fixture *f = *state;
  cgrpc_metadata_array *md;
  cgrpc_call_options o = opts_for(CGRPC_COMPRESS_GZIP, "gzip", &md);
  cgrpc_status st = {0};
  cgrpc_call *call = NULL;
  uint8_t *p = text(4096);
  int i;
  assert_int_equal(cgrpc__test__stream_service__chat__open(f->ch, &o, &call),
                   0);
  for (i = 0; i < 8; i++) {
    chunk_t c = CGRPC__TEST__CHUNK__INIT, *r;
    int req_plain = i % 3 == 1, resp_plain = i % 2 == 1;
    c.data.data = p;
    c.data.len = (size_t)(i * 500);
    c.seq = i;
    c.status_code = resp_plain; /* asks the server to opt out */
    assert_int_equal(
        cgrpc_call_write_flags(call, &c.base,
                               req_plain ? CGRPC_WRITE_NO_COMPRESS : 0),
        0);
    assert_int_equal(cgrpc__test__stream_service__chat__read(call, &r), 1);
    assert_int_equal(r->seq, i);
    assert_int_equal(r->data.len, (size_t)(i * 500));
    assert_int_equal(r->sleep_ms, !req_plain);
    assert_int_equal(cgrpc_call_last_message_compressed(call), !resp_plain);
    protobuf_c_message_free_unpacked(&r->base, NULL);
  }
  cgrpc_call_writes_done(call);
  assert_int_equal(cgrpc_call_finish(call, &st), CGRPC_STATUS_OK);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  cgrpc_metadata_array_del(md);
  free(p);
}

/* Chat on the async API on both sides: the getters in the read
 * callbacks. */
typedef struct achat {
  it_async a; /* lock, cond, done */
  int n, sent, bad;
  uint8_t *p;
  cgrpc_status_code code;
} achat;

static void achat_send(cgrpc_call *call, achat *s) {
  chunk_t c = CGRPC__TEST__CHUNK__INIT;
  c.data.data = s->p;
  c.data.len = (size_t)(s->sent * 700);
  c.seq = s->sent;
  c.status_code = s->sent % 2; /* odd replies go uncompressed */
  if (cgrpc_call_write_async_flags(
          call, &c.base, s->sent % 3 == 2 ? CGRPC_WRITE_NO_COMPRESS : 0) != 0)
    s->bad++;
  s->sent++;
}

static void achat_on_read(cgrpc_call *call, ProtobufCMessage *msg,
                          void *user_data) {
  achat *s = user_data;
  chunk_t *r = (chunk_t *)msg;
  if (!r) {
    if (cgrpc_call_last_message_compressed(call) != 0)
      s->bad++;
    return;
  }
  if (r->seq != s->n || r->sleep_ms != (s->n % 3 != 2) ||
      cgrpc_call_last_message_compressed(call) != (s->n % 2 == 0)) {
    print_message("reply %d: seq %lld, request compressed %d, reply "
                  "compressed %d\n",
                  s->n, (long long)r->seq, r->sleep_ms,
                  cgrpc_call_last_message_compressed(call));
    s->bad++;
  }
  s->n++;
  protobuf_c_message_free_unpacked(msg, NULL);
  if (s->n < 6)
    achat_send(call, s);
  else
    cgrpc_call_writes_done(call);
  cgrpc_call_read_async(call);
}

static void achat_on_done(cgrpc_call *call, const cgrpc_status *status,
                          void *user_data) {
  achat *s = user_data;
  (void)call;
  pthread_mutex_lock(&s->a.lock);
  s->code = status->code;
  s->a.done++;
  pthread_cond_broadcast(&s->a.cond);
  pthread_mutex_unlock(&s->a.lock);
}

static void test_compression_chat_async(void **state) {
  fixture *f = *state;
  cgrpc_call_callbacks cbs = {achat_on_read, NULL, achat_on_done};
  cgrpc_metadata_array *md;
  cgrpc_call_options o = opts_for(CGRPC_COMPRESS_DEFLATE, "gzip", &md);
  cgrpc_call *call = NULL;
  achat s;
  memset(&s, 0, sizeof s);
  it_async_init(&s.a);
  s.p = text(4000);
  assert_int_equal(cgrpc__test__stream_service__slow_chat__new_async(
                       f->ch, &o, &cbs, &s, &call),
                   0);
  cgrpc_metadata_array_del(md);
  assert_int_equal(cgrpc_call_read_async(call), 0);
  achat_send(call, &s);
  assert_int_equal(cgrpc_call_start(call), 0);
  assert_int_equal(it_async_wait(&s.a, TIMEOUT_MS + 5000), 1);
  assert_int_equal(s.code, CGRPC_STATUS_OK);
  assert_int_equal(s.n, 6);
  assert_int_equal(s.bad, 0);
  cgrpc_call_unref(call);
  it_async_fini(&s.a);
  free(s.p);
}

/* ---- limits ---- */

/* The receive limit applies to the inflated size: 32 MiB that compress to
 * a few KiB are refused by a server with the default 4 MiB limit, and by
 * a client with a 1 MiB one; a message just under the limit passes. */
static void test_compression_bomb(void **state) {
  fixture *f = *state;
  size_t big = (size_t)32 << 20;
  unary_result u;
  cgrpc_channel *ch = channel(f, CGRPC_COMPRESS_GZIP, 1 << 20);
  int64_t t0 = it_now_ms();
  /* To the server. */
  unary(f->ch, CGRPC_COMPRESS_GZIP, NULL, big, &u);
  if (u.code != CGRPC_STATUS_RESOURCE_EXHAUSTED)
    fail_msg("a 32 MiB request inflating past the server's limit: %s "
             "(\"%s\")",
             cgrpc_status_code_name(u.code), u.message);
  print_message("  server: \"%s\" after %lld ms\n", u.message,
                (long long)(it_now_ms() - t0));
  assert_non_null(strstr(u.message, "decompressed"));
  /* To the client: the reply inflates past its 1 MiB limit. */
  unary(ch, CGRPC_COMPRESS_GZIP, "gzip", (1 << 20) + 100, &u);
  if (u.code != CGRPC_STATUS_RESOURCE_EXHAUSTED)
    fail_msg("a reply inflating past the client's limit: %s (\"%s\")",
             cgrpc_status_code_name(u.code), u.message);
  assert_non_null(strstr(u.message, "decompressed"));
  /* Under the limits, in both directions. */
  unary(ch, CGRPC_COMPRESS_GZIP, "gzip", (1 << 20) - 100, &u);
  EXPECT_UNARY(u, 1, 1);
  cgrpc_channel_del(ch);
}

/* The limit on the inflated size holds on streams too, whichever way the
 * reader reads: the server's blocking read (Upload) and async read
 * (SlowChat) answer RESOURCE_EXHAUSTED for 8 MiB of zeros under its
 * 4 MiB limit; the client's blocking read does for 2 MiB under its 1 MiB
 * one.  A message that does not inflate at all is INTERNAL. */
static void test_compression_stream_bomb(void **state) {
  fixture *f = *state;
  size_t big = (size_t)8 << 20;
  uint8_t *zeros = calloc(big, 1);
  cgrpc_metadata_array *md;
  cgrpc_call_options o = opts_for(CGRPC_COMPRESS_GZIP, "gzip", &md);
  cgrpc_channel *small = channel(f, CGRPC_COMPRESS_GZIP, 1 << 20);
  int k;
  assert_non_null(zeros);
  for (k = 0; k < 2; k++) { /* Upload, then SlowChat */
    cgrpc_status st = {0};
    cgrpc_call *call = NULL;
    chunk_t c = CGRPC__TEST__CHUNK__INIT, *r = NULL;
    cgrpc_status_code code;
    c.data.data = zeros;
    c.data.len = big;
    if (k == 0)
      assert_int_equal(
          cgrpc__test__stream_service__upload__open(f->ch, &o, &call), 0);
    else
      assert_int_equal(
          cgrpc__test__stream_service__slow_chat__open(f->ch, &o, &call), 0);
    assert_int_equal(cgrpc_call_write(call, &c.base), 0);
    if (k == 1)
      assert_int_equal(cgrpc__test__stream_service__slow_chat__read(call, &r),
                       0);
    cgrpc_call_writes_done(call);
    code = cgrpc_call_finish(call, &st);
    print_message("  %s, 8 MiB of zeros: %s (\"%s\")\n",
                  k ? "SlowChat" : "Upload", cgrpc_status_code_name(code),
                  st.message ? st.message : "");
    if (code != CGRPC_STATUS_RESOURCE_EXHAUSTED ||
        !strstr(st.message ? st.message : "", "decompressed"))
      fail_msg("%s: %s (\"%s\"), expected RESOURCE_EXHAUSTED",
               k ? "SlowChat" : "Upload", cgrpc_status_code_name(code),
               st.message ? st.message : "");
    cgrpc_status_clear(&st);
    cgrpc_call_unref(call);
  }
  {
    Cgrpc__Test__DownloadRequest req = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
    cgrpc_status st = {0};
    cgrpc_call *call = NULL;
    cgrpc_status_code code;
    chunk_t *r = NULL;
    req.count = 3;
    req.size = 2 << 20;
    assert_int_equal(
        cgrpc__test__stream_service__download__open(small, &req, &o, &call), 0);
    assert_int_equal(cgrpc__test__stream_service__download__read(call, &r), 0);
    code = cgrpc_call_finish(call, &st);
    print_message("  Download, 2 MiB under a 1 MiB limit: %s (\"%s\")\n",
                  cgrpc_status_code_name(code), st.message ? st.message : "");
    if (code != CGRPC_STATUS_RESOURCE_EXHAUSTED)
      fail_msg("Download: %s, expected RESOURCE_EXHAUSTED",
               cgrpc_status_code_name(code));
    cgrpc_status_clear(&st);
    cgrpc_call_unref(call);
  }
  cgrpc_channel_del(small);
  cgrpc_metadata_array_del(md);
  free(zeros);
}

/* A reader that lags holds what the stream window lets in, as for
 * uncompressed messages, not that inflated: 64 messages of 3 MiB of zeros
 * (about 3 KiB each on the wire, 192 MiB inflated) sent to an Upload
 * handler that does not read yet cost the server little memory, and all
 * 64 are read in full once it does. */
static void test_compression_lagging_reader_memory(void **state) {
  fixture *f = *state;
  Cgrpc__Test__UploadSummary *sum = NULL;
  cgrpc_metadata_array *md;
  cgrpc_call_options o = opts_for(CGRPC_COMPRESS_GZIP, NULL, &md);
  cgrpc_status st = {0};
  cgrpc_call *call = NULL;
  size_t each = (size_t)3 << 20;
  uint8_t *zeros = calloc(each, 1);
  long long before, grew;
  int i, waited = 0;
  assert_non_null(zeros);
  assert_int_equal(cgrpc_metadata_array_new(&md), 0);
  assert_int_equal(cgrpc_metadata_array_add(md, "x-stall", "1"), 0);
  o.metadata = md;
  atomic_store(&upload_stall, 1);
  atomic_store(&upload_stalled, 0);
  assert_int_equal(cgrpc__test__stream_service__upload__open(f->ch, &o, &call),
                   0);
  /* The first write sends the headers. */
  {
    chunk_t c = CGRPC__TEST__CHUNK__INIT;
    assert_int_equal(cgrpc_call_write(call, &c.base), 0);
  }
  while (!atomic_load(&upload_stalled) && waited++ < TIMEOUT_MS)
    it_sleep_ms(1);
  assert_int_equal(atomic_load(&upload_stalled), 1);
  before = heap_bytes();
  for (i = 0; i < 64; i++) {
    chunk_t c = CGRPC__TEST__CHUNK__INIT;
    c.data.data = zeros;
    c.data.len = each;
    c.seq = i + 1;
    assert_int_equal(cgrpc_call_write(call, &c.base), 0);
  }
  /* Time for the server to take them all in. */
  it_sleep_ms(500 * SLOW);
  grew = heap_bytes() - before;
  print_message("  64 x 3 MiB of zeros, gzip, to a reader that lags: the "
                "heap grew by %lld KiB\n",
                grew / 1024);
  atomic_store(&upload_stall, 0);
  assert_int_equal(cgrpc__test__stream_service__upload__finish(call, &sum, &st),
                   CGRPC_STATUS_OK);
  assert_int_equal(sum->count, 65);
  assert_int_equal(sum->bytes, (int64_t)(64 * each));
  protobuf_c_message_free_unpacked(&sum->base, NULL);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  cgrpc_metadata_array_del(md);
  free(zeros);
  if (grew > (32ll << 20))
    fail_msg("the server held %lld MiB for 192 KiB of compressed messages "
             "its handler had not read",
             grew >> 20);
}

/* ---- misuse ---- */

static int misuse_logged;

static void count_errors(cgrpc_log_level level, const char *msg,
                         void *user_data) {
  (void)user_data;
  if (level >= CGRPC_LOG_ERROR && strstr(msg, "cgrpc_compression"))
    misuse_logged++;
}

static void test_compression_misuse(void **state) {
  fixture *f = *state;
  cgrpc_channel_options *co = NULL;
  cgrpc_server_options *so = NULL;
  cgrpc_call_options o = {.timeout_ms = TIMEOUT_MS, .compression = 4};
  chunk_t req = CGRPC__TEST__CHUNK__INIT, *reply = NULL;
  cgrpc_status st = {0};
  cgrpc_call *call = NULL;
  assert_int_equal(cgrpc_channel_options_new(&co), 0);
  assert_int_equal(cgrpc_server_options_new(&so), 0);
  /* Each bad value is also named in the log. */
  cgrpc_channel_options_set_log(co, count_errors, NULL);
  cgrpc_server_options_set_log(so, count_errors, NULL);
  misuse_logged = 0;
  assert_int_equal(cgrpc_channel_options_set_default_compression(co, 4),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_channel_options_set_default_compression(co, -1),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_channel_options_set_default_compression(NULL, 1),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_server_options_set_default_compression(so, 4),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_server_options_set_default_compression(so, -1),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(
      cgrpc_server_options_set_default_compression(so, CGRPC_COMPRESS_DEFLATE),
      0);
  assert_int_equal(misuse_logged, 4);
  cgrpc_channel_options_del(co);
  cgrpc_server_options_del(so);
  assert_int_equal(cgrpc_server_ctx_set_compression(NULL, 1),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_server_ctx_last_message_compressed(NULL), 0);
  assert_int_equal(cgrpc_call_last_message_compressed(NULL), 0);
  /* An unknown compression in the call options. */
  assert_int_equal(
      cgrpc__test__stream_service__unary__call(f->ch, &req, &reply, &o, &st),
      CGRPC_STATUS_INVALID_ARGUMENT);
  assert_null(reply);
  cgrpc_status_clear(&st);
  assert_int_equal(cgrpc__test__stream_service__chat__open(f->ch, &o, &call),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_null(call);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
      T(test_compression_unary),
      T(test_compression_channel_default),
      T(test_compression_server_default),
      T(test_compression_upload_opt_out),
      T(test_compression_download_opt_out),
      T(test_compression_chat_blocking),
      T(test_compression_chat_async),
      T(test_compression_bomb),
      T(test_compression_stream_bomb),
      T(test_compression_lagging_reader_memory),
      T(test_compression_misuse),
#undef T
  };
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
