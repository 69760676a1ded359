/* SPDX-License-Identifier: MIT */
#include "stream_service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void stream_stats_reset(stream_stats *s) {
  atomic_store(&s->handlers, 0);
  atomic_store(&s->in_flight, 0);
  atomic_store(&s->finished, 0);
  atomic_store(&s->sent, 0);
  atomic_store(&s->received, 0);
  atomic_store(&s->closed_seen, 0);
  atomic_store(&s->cancelled_seen, 0);
  atomic_store(&s->last_error, 0);
  atomic_store(&s->misuse_read, 0);
  atomic_store(&s->misuse_write, 0);
  atomic_store(&s->gate, 0);
  atomic_store(&s->sleep_us, 0);
}

/* ---- data ---- */

static uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}

void stream_fill(uint8_t *buf, size_t len, int64_t seq) {
  uint64_t x = mix((uint64_t)seq + 1);
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    memcpy(buf + i, &x, 8);
  }
  x = x * 6364136223846793005ULL + 1442695040888963407ULL;
  for (; i < len; i++)
    buf[i] = (uint8_t)(x >> (8 * (i & 7)));
}

int stream_check(const uint8_t *buf, size_t len, int64_t seq) {
  uint64_t x = mix((uint64_t)seq + 1), w;
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    memcpy(&w, buf + i, 8);
    if (w != x)
      return 0;
  }
  x = x * 6364136223846793005ULL + 1442695040888963407ULL;
  for (; i < len; i++)
    if (buf[i] != (uint8_t)(x >> (8 * (i & 7))))
      return 0;
  return 1;
}

void stream_csum_init(stream_csum *c) {
  c->a = 1;
  c->b = 0;
  c->bytes = 0;
}

void stream_csum_add(stream_csum *c, const uint8_t *p, size_t n) {
  uint64_t a = c->a, b = c->b, w;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    memcpy(&w, p + i, 8);
    a += w;
    b += a;
  }
  for (; i < n; i++) {
    a += p[i];
    b += a;
  }
  c->a = a;
  c->b = b;
  c->bytes += n;
}

/* ---- helpers ---- */

static void sleep_us(long us) {
  struct timespec ts;
  if (us <= 0)
    return;
  ts.tv_sec = us / 1000000;
  ts.tv_nsec = (us % 1000000) * 1000L;
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void enter(stream_stats *s) {
  atomic_fetch_add(&s->handlers, 1);
  atomic_fetch_add(&s->in_flight, 1);
}

static cgrpc_status_code leave(stream_stats *s, cgrpc_status_code code) {
  atomic_fetch_sub(&s->in_flight, 1);
  atomic_fetch_add(&s->finished, 1);
  return code;
}

/* A read or write failed with |rv|: record it; the handler then returns
 * CANCELLED (or INTERNAL for anything but CLOSED). */
static cgrpc_status_code note_fail(stream_stats *s, cgrpc_server_ctx *ctx,
                                   int rv) {
  atomic_store(&s->last_error, rv);
  if (rv != CGRPC_ERR_CLOSED)
    return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_INTERNAL,
                                 "stream operation failed: %d", rv);
  /* cancelled_seen first: tests wait for closed_seen, then read both. */
  if (cgrpc_server_ctx_is_cancelled(ctx))
    atomic_fetch_add(&s->cancelled_seen, 1);
  atomic_fetch_add(&s->closed_seen, 1);
  return CGRPC_STATUS_CANCELLED;
}

static int has_metadata(cgrpc_server_ctx *ctx, const char *key) {
  const cgrpc_metadata_array *md = cgrpc_server_ctx_metadata(ctx);
  size_t i, n = cgrpc_metadata_array_count(md);
  for (i = 0; i < n; i++) {
    const char *k;
    const uint8_t *v;
    size_t len;
    if (cgrpc_metadata_array_at(md, i, &k, &v, &len) == 0 &&
        strcmp(k, key) == 0)
      return 1;
  }
  return 0;
}

static void add_count_trailer(cgrpc_server_ctx *ctx, long long n) {
  char buf[32];
  snprintf(buf, sizeof buf, "%lld", n);
  cgrpc_server_ctx_add_trailing_metadata(ctx, "x-count", buf);
}

static cgrpc_status_code end_status(cgrpc_server_ctx *ctx, int code,
                                    const char *message) {
  if (code == 0)
    return CGRPC_STATUS_OK;
  if (message && message[0])
    return cgrpc_server_ctx_fail(ctx, (cgrpc_status_code)code, "%s", message);
  return (cgrpc_status_code)code;
}

/* Accounts one uploaded chunk in |reply|. */
static void summarize(summary_t *reply, const chunk_t *c) {
  size_t i;
  if (c->seq != (reply->count ? reply->last_seq + 1 : 0))
    reply->out_of_order++;
  reply->count++;
  reply->bytes += (int64_t)c->data.len;
  for (i = 0; i < c->data.len; i++)
    reply->sum += c->data.data[i];
  reply->last_seq = c->seq;
}

/* ---- blocking servicer ---- */

static cgrpc_status_code send_chunks(cgrpc_server_ctx *ctx,
                                     const download_t *req, stream_stats *s,
                                     int paced) {
  chunk_t c = CGRPC__TEST__CHUNK__INIT;
  size_t size = req->size > 0 ? (size_t)req->size : 0;
  uint8_t *buf = malloc(size ? size : 1);
  cgrpc_status_code code = CGRPC_STATUS_OK;
  int32_t i;
  int rv;
  if (!buf)
    return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_RESOURCE_EXHAUSTED, "oom");
  for (i = 0; i < req->count; i++) {
    if (paced) {
      stream_fill(buf, size, i);
      sleep_us(req->interval_us);
    }
    c.data.data = buf;
    c.data.len = size;
    c.seq = i;
    rv = cgrpc_server_ctx_write(ctx, &c.base);
    if (rv != 0) {
      code = note_fail(s, ctx, rv);
      break;
    }
    atomic_fetch_add(&s->sent, 1);
  }
  free(buf);
  return code;
}

static cgrpc_status_code download(cgrpc_server_ctx *ctx, const download_t *req,
                                  void *user_data) {
  stream_stats *s = user_data;
  cgrpc_status_code code;
  enter(s);
  if (req->early_metadata) {
    cgrpc_server_ctx_add_initial_metadata(ctx, "x-stream", "download");
    if (cgrpc_server_ctx_send_initial_metadata(ctx) != 0)
      return leave(s, cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_INTERNAL,
                                            "send_initial_metadata failed"));
  }
  if (req->gate) {
    int64_t end = now_ms() + 10000;
    while (!atomic_load(&s->gate) && !cgrpc_server_ctx_is_cancelled(ctx) &&
           now_ms() < end)
      sleep_us(1000);
  }
  code = send_chunks(ctx, req, s, 1);
  if (code != CGRPC_STATUS_OK)
    return leave(s, code);
  add_count_trailer(ctx, req->count);
  return leave(s, end_status(ctx, req->status_code, req->status_message));
}

static cgrpc_status_code flood(cgrpc_server_ctx *ctx, const download_t *req,
                               void *user_data) {
  stream_stats *s = user_data;
  enter(s);
  return leave(s, send_chunks(ctx, req, s, 0));
}

static cgrpc_status_code upload_impl(cgrpc_server_ctx *ctx, summary_t *reply,
                                     stream_stats *s, int slow) {
  for (;;) {
    chunk_t *c = NULL;
    int rv, code;
    if (slow)
      sleep_us(atomic_load(&s->sleep_us));
    rv = cgrpc__test__stream_service__upload__recv(ctx, &c);
    if (rv == 0)
      break;
    if (rv < 0)
      return note_fail(s, ctx, rv);
    atomic_fetch_add(&s->received, 1);
    summarize(reply, c);
    code = c->status_code;
    protobuf_c_message_free_unpacked(&c->base, NULL);
    if (code != 0)
      return cgrpc_server_ctx_fail(ctx, (cgrpc_status_code)code,
                                   "upload ended at chunk %lld",
                                   (long long)reply->last_seq);
  }
  return CGRPC_STATUS_OK;
}

static cgrpc_status_code upload(cgrpc_server_ctx *ctx, summary_t *reply,
                                void *user_data) {
  stream_stats *s = user_data;
  enter(s);
  return leave(s, upload_impl(ctx, reply, s, 0));
}

static cgrpc_status_code slow_upload(cgrpc_server_ctx *ctx, summary_t *reply,
                                     void *user_data) {
  stream_stats *s = user_data;
  enter(s);
  return leave(s, upload_impl(ctx, reply, s, 1));
}

static cgrpc_status_code chat_impl(cgrpc_server_ctx *ctx, stream_stats *s,
                                   int slow) {
  long long echoed = 0;
  if (has_metadata(ctx, "x-early")) {
    cgrpc_server_ctx_add_initial_metadata(ctx, "x-stream", "chat");
    if (cgrpc_server_ctx_send_initial_metadata(ctx) != 0)
      return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_INTERNAL,
                                   "send_initial_metadata failed");
  }
  for (;;) {
    chunk_t *c = NULL;
    int rv;
    if (slow)
      sleep_us(atomic_load(&s->sleep_us));
    rv = cgrpc__test__stream_service__chat__recv(ctx, &c);
    if (rv == 0)
      break;
    if (rv < 0)
      return note_fail(s, ctx, rv);
    atomic_fetch_add(&s->received, 1);
    if (c->sleep_ms > 0)
      sleep_us(c->sleep_ms * 1000L);
    if (c->status_code != 0) {
      cgrpc_status_code code = cgrpc_server_ctx_fail(
          ctx, (cgrpc_status_code)c->status_code, "chat ended at seq %lld",
          (long long)c->seq);
      protobuf_c_message_free_unpacked(&c->base, NULL);
      return code;
    }
    rv = cgrpc__test__stream_service__chat__send(ctx, c);
    protobuf_c_message_free_unpacked(&c->base, NULL);
    if (rv != 0)
      return note_fail(s, ctx, rv);
    atomic_fetch_add(&s->sent, 1);
    echoed++;
  }
  add_count_trailer(ctx, echoed);
  return CGRPC_STATUS_OK;
}

static cgrpc_status_code chat(cgrpc_server_ctx *ctx, void *user_data) {
  stream_stats *s = user_data;
  enter(s);
  return leave(s, chat_impl(ctx, s, 0));
}

static cgrpc_status_code slow_chat(cgrpc_server_ctx *ctx, void *user_data) {
  stream_stats *s = user_data;
  enter(s);
  return leave(s, chat_impl(ctx, s, 1));
}

static cgrpc_status_code unary(cgrpc_server_ctx *ctx, const chunk_t *request,
                               chunk_t *reply, void *user_data) {
  stream_stats *s = user_data;
  ProtobufCMessage *m = NULL;
  int rv;
  enter(s);
  rv = cgrpc_server_ctx_read(ctx, &m);
  if (rv == 1)
    protobuf_c_message_free_unpacked(m, NULL);
  atomic_store(&s->misuse_read, rv);
  atomic_store(&s->misuse_write, cgrpc_server_ctx_write(ctx, &request->base));
  reply->seq = request->seq;
  reply->data = request->data; /* the request outlives the packing */
  return leave(s, CGRPC_STATUS_OK);
}

int stream_service_register(cgrpc_server *server, stream_stats *stats) {
  Cgrpc__Test__StreamService_Servicer sv;
  memset(&sv, 0, sizeof sv);
  sv.download = download;
  sv.upload = upload;
  sv.chat = chat;
  sv.slow_chat = slow_chat;
  sv.flood = flood;
  sv.slow_upload = slow_upload;
  sv.unary = unary;
  return cgrpc__test__stream_service__servicer__register(server, &sv, stats);
}

/* ---- async servicer (detached handlers, callbacks on the loop) ---- */

typedef struct astate {
  cgrpc_server_ctx *ctx;
  stream_stats *stats;
  long long count;
  /* Download */
  int32_t next, total, status_code;
  size_t size;
  uint8_t *buf;
  char *status_message;
  /* Upload */
  summary_t *reply;
} astate;

static astate *astate_new(cgrpc_server_ctx *ctx, stream_stats *s) {
  astate *a = calloc(1, sizeof *a);
  if (!a)
    return NULL;
  a->ctx = ctx;
  a->stats = s;
  enter(s);
  cgrpc_server_ctx_detach(ctx);
  return a;
}

/* Finishes the call and frees the state; |a->ctx| is gone afterwards. */
static void afinish(astate *a, cgrpc_status_code code) {
  stream_stats *s = a->stats;
  cgrpc_server_ctx_finish(a->ctx, code);
  free(a->buf);
  free(a->status_message);
  free(a);
  leave(s, CGRPC_STATUS_OK);
}

static void afail(astate *a, int rv) {
  afinish(a, note_fail(a->stats, a->ctx, rv));
}

/* The end of the requests: NULL with the call cancelled, or a half-close. */
static int aended(astate *a) {
  if (!cgrpc_server_ctx_is_cancelled(a->ctx))
    return 0;
  afail(a, CGRPC_ERR_CLOSED);
  return 1;
}

static void achat_read(cgrpc_server_ctx *ctx, ProtobufCMessage *msg,
                       void *user_data);

static void achat_written(cgrpc_server_ctx *ctx, int ok, void *user_data) {
  astate *a = user_data;
  int rv;
  if (!ok) {
    afail(a, CGRPC_ERR_CLOSED);
    return;
  }
  atomic_fetch_add(&a->stats->sent, 1);
  a->count++;
  rv = cgrpc_server_ctx_read_async(ctx, achat_read, a);
  if (rv != 0)
    afail(a, rv);
}

static void achat_read(cgrpc_server_ctx *ctx, ProtobufCMessage *msg,
                       void *user_data) {
  astate *a = user_data;
  chunk_t *c = (chunk_t *)msg;
  int rv;
  if (!msg) {
    if (!aended(a)) {
      add_count_trailer(ctx, a->count);
      afinish(a, CGRPC_STATUS_OK);
    }
    return;
  }
  atomic_fetch_add(&a->stats->received, 1);
  if (c->status_code != 0) {
    cgrpc_status_code code =
        cgrpc_server_ctx_fail(ctx, (cgrpc_status_code)c->status_code,
                              "chat ended at seq %lld", (long long)c->seq);
    protobuf_c_message_free_unpacked(msg, NULL);
    afinish(a, code);
    return;
  }
  /* Serialized before write_async returns: the message can go at once. */
  rv = cgrpc_server_ctx_write_async(ctx, msg, achat_written, a);
  protobuf_c_message_free_unpacked(msg, NULL);
  if (rv != 0)
    afail(a, rv);
}

static cgrpc_status_code achat(cgrpc_server_ctx *ctx, void *user_data) {
  astate *a = astate_new(ctx, user_data);
  int rv;
  if (!a)
    return CGRPC_STATUS_RESOURCE_EXHAUSTED; /* not detached */
  if (has_metadata(ctx, "x-early")) {
    cgrpc_server_ctx_add_initial_metadata(ctx, "x-stream", "chat");
    cgrpc_server_ctx_send_initial_metadata(ctx);
  }
  rv = cgrpc_server_ctx_read_async(ctx, achat_read, a);
  if (rv != 0)
    afail(a, rv);
  return CGRPC_STATUS_OK; /* ignored: detached */
}

static void adownload_next(astate *a);

static void adownload_written(cgrpc_server_ctx *ctx, int ok, void *user_data) {
  astate *a = user_data;
  (void)ctx;
  if (!ok) {
    afail(a, CGRPC_ERR_CLOSED);
    return;
  }
  atomic_fetch_add(&a->stats->sent, 1);
  adownload_next(a);
}

static void adownload_next(astate *a) {
  chunk_t c = CGRPC__TEST__CHUNK__INIT;
  int rv;
  if (a->next >= a->total) {
    add_count_trailer(a->ctx, a->total);
    afinish(a, end_status(a->ctx, a->status_code, a->status_message));
    return;
  }
  stream_fill(a->buf, a->size, a->next);
  c.data.data = a->buf;
  c.data.len = a->size;
  c.seq = a->next++;
  rv = cgrpc_server_ctx_write_async(a->ctx, &c.base, adownload_written, a);
  if (rv != 0)
    afail(a, rv);
}

static cgrpc_status_code adownload(cgrpc_server_ctx *ctx, const download_t *req,
                                   void *user_data) {
  astate *a = astate_new(ctx, user_data);
  if (!a)
    return CGRPC_STATUS_RESOURCE_EXHAUSTED;
  a->total = req->count;
  a->size = req->size > 0 ? (size_t)req->size : 0;
  a->status_code = req->status_code;
  a->buf = malloc(a->size ? a->size : 1);
  if (req->status_message && req->status_message[0])
    a->status_message = strdup(req->status_message);
  if (!a->buf) {
    afinish(a, CGRPC_STATUS_RESOURCE_EXHAUSTED);
    return CGRPC_STATUS_OK;
  }
  if (req->early_metadata) {
    cgrpc_server_ctx_add_initial_metadata(ctx, "x-stream", "download");
    cgrpc_server_ctx_send_initial_metadata(ctx);
  }
  /* |req| is valid only during the handler: everything is copied. */
  adownload_next(a);
  return CGRPC_STATUS_OK;
}

static void aupload_read(cgrpc_server_ctx *ctx, ProtobufCMessage *msg,
                         void *user_data) {
  astate *a = user_data;
  chunk_t *c = (chunk_t *)msg;
  int code, rv;
  if (!msg) {
    if (!aended(a))
      afinish(a, CGRPC_STATUS_OK); /* sends *a->reply */
    return;
  }
  atomic_fetch_add(&a->stats->received, 1);
  summarize(a->reply, c);
  code = c->status_code;
  protobuf_c_message_free_unpacked(msg, NULL);
  if (code != 0) {
    afinish(a, cgrpc_server_ctx_fail(ctx, (cgrpc_status_code)code,
                                     "upload ended at chunk %lld",
                                     (long long)a->reply->last_seq));
    return;
  }
  rv = cgrpc_server_ctx_read_async(ctx, aupload_read, a);
  if (rv != 0)
    afail(a, rv);
}

static cgrpc_status_code aupload(cgrpc_server_ctx *ctx, summary_t *reply,
                                 void *user_data) {
  astate *a = astate_new(ctx, user_data);
  int rv;
  if (!a)
    return CGRPC_STATUS_RESOURCE_EXHAUSTED;
  a->reply = reply; /* valid until the call is finished */
  rv = cgrpc_server_ctx_read_async(ctx, aupload_read, a);
  if (rv != 0)
    afail(a, rv);
  return CGRPC_STATUS_OK;
}

int stream_service_register_async(cgrpc_server *server, stream_stats *stats) {
  Cgrpc__Test__StreamService_Servicer sv;
  memset(&sv, 0, sizeof sv);
  sv.download = adownload;
  sv.upload = aupload;
  sv.chat = achat;
  return cgrpc__test__stream_service__servicer__register(server, &sv, stats);
}
