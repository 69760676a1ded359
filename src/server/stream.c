/* SPDX-License-Identifier: MIT */
/*
 * Streaming on the server: the handler-facing read/write API (blocking and
 * async), detached handlers, and the loop side that turns the send queue
 * into DATA frames and the trailers.
 */
#include <string.h>

#include "cgrpc/error.h"
#include "h2/hdrs.h"
#include "server/internal.h"
#include "util/mem.h"

typedef struct cgrpc_server_ctx call_t;


int cgrpc__server_call_reads_stream(const call_t *call) {
  return call->method && (call->method->desc->kind ==
                              CGRPC_METHOD_CLIENT_STREAMING ||
                          call->method->desc->kind == CGRPC_METHOD_BIDI_STREAMING);
}

static int writes_stream(const call_t *call) {
  return call->method && (call->method->desc->kind ==
                              CGRPC_METHOD_SERVER_STREAMING ||
                          call->method->desc->kind == CGRPC_METHOD_BIDI_STREAMING);
}

static void notify_run(void *user_data);
static void notify_callbacks(call_t *call);

int cgrpc__server_stream_init(call_t *call) {
  if (call->method->desc->kind == CGRPC_METHOD_UNARY)
    return 0;
  call->st = cgrpc__malloc(sizeof *call->st);
  if (!call->st)
    return CGRPC_ERR_NOMEM;
  cgrpc__stream_init(call->st, CGRPC__STREAM_SEND_LIMIT, CGRPC__STREAM_RECV_LIMIT);
  if (cgrpc__server_call_reads_stream(call))
    cgrpc__stream_deframer_init(&call->deframer);
  call->notify.cb = notify_run;
  call->notify.user_data = call;
  return 0;
}

/* ---- loop side ---- */

/* The response body: what the handler queued, then the trailers.  Only
 * the length is decided here; the connection takes the bytes through
 * cgrpc__stream_peek_send() and _consume_send(). */
static ssize_t stream_read(nghttp2_session *session, int32_t stream_id,
                           uint8_t *buf, size_t length, uint32_t *data_flags,
                           nghttp2_data_source *source, void *user_data) {
  call_t *call = source->ptr;
  cgrpc__stream *st = call->st;
  size_t n;
  int eof;
  (void)session;
  (void)stream_id;
  (void)buf;
  (void)user_data;
  pthread_mutex_lock(&st->lock);
  n = st->sendq.bytes < length ? st->sendq.bytes : length;
  eof = n == st->sendq.bytes && call->finished;
  pthread_mutex_unlock(&st->lock);
  if (eof) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM |
                   NGHTTP2_DATA_FLAG_NO_COPY;
    cgrpc__server_submit_trailers(call);
    return (ssize_t)n;
  }
  if (n == 0)
    return NGHTTP2_ERR_DEFERRED;
  *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  return (ssize_t)n;
}

/* Response headers with a body that follows the send queue. */
static void submit_headers(call_t *call) {
  nghttp2_data_provider prd;
  cgrpc__hdrs h;
  int rv;
  call->headers_submitted = 1;
  cgrpc__hdrs_init(&h);
  CGRPC__HDRS_ADD_LIT(&h, ":status", "200");
  CGRPC__HDRS_ADD_LIT(&h, "content-type", "application/grpc");
  CGRPC__HDRS_ADD_LIT(&h, "grpc-accept-encoding", "identity,gzip");
  cgrpc__hdrs_add_metadata(&h, call->initial_md);
  prd.source.ptr = call;
  prd.read_callback = stream_read;
  rv = h.failed ? -1
                : nghttp2_submit_response(call->conn->h2.session,
                                          call->stream_id, h.nv, h.len, &prd);
  cgrpc__hdrs_free(&h);
  if (rv != 0) {
    call->responded = 1;
    nghttp2_submit_rst_stream(call->conn->h2.session, NGHTTP2_FLAG_NONE,
                              call->stream_id, NGHTTP2_INTERNAL_ERROR);
  }
}

static int stream_open(const call_t *call) {
  return call->conn && !call->stream_closed && !call->conn->h2.closed;
}

/* Loop task: headers or more DATA, window given back, async callbacks. */
static void kick_task(void *user_data) {
  call_t *call = user_data;
  cgrpc__stream *st = call->st;
  size_t consume;
  int want_headers;
  pthread_mutex_lock(&st->lock);
  st->kick_pending = 0;
  consume = st->to_consume;
  st->to_consume = 0;
  want_headers = call->want_headers || st->sendq.head != NULL;
  pthread_mutex_unlock(&st->lock);
  if (stream_open(call)) {
    nghttp2_session *session = call->conn->h2.session;
    if (consume)
      nghttp2_session_consume(session, call->stream_id, consume);
    if (!call->responded) {
      if (!call->headers_submitted && want_headers)
        submit_headers(call);
      else if (call->headers_submitted)
        nghttp2_session_resume_data(session, call->stream_id);
    }
    cgrpc__h2conn_schedule_flush(&call->conn->h2);
  } else if (consume && call->conn && !call->conn->h2.closed) {
    nghttp2_session_consume_connection(call->conn->h2.session, consume);
  }
  notify_callbacks(call);
  atomic_fetch_sub(&call->posted, 1);
  cgrpc__server_call_release(call);
}

/* Asks the loop to look at the call (any thread). */
static void kick(call_t *call) {
  atomic_fetch_add(&call->posted, 1);
  if (cgrpc__loop_post(call->loop, kick_task, call) != 0)
    atomic_fetch_sub(&call->posted, 1);
}

int cgrpc__server_stream_on_message(call_t *call, const uint8_t *data,
                                    size_t len) {
  cgrpc__msg *m = cgrpc__msg_received(&call->deframer, data, len);
  if (!m)
    return CGRPC_ERR_NOMEM;
  pthread_mutex_lock(&call->st->lock);
  cgrpc__msgq_push(&call->st->recvq, m);
  pthread_cond_broadcast(&call->st->cond);
  if (call->read_pending)
    cgrpc__loop_defer(call->loop, &call->notify);
  pthread_mutex_unlock(&call->st->lock);
  return 0;
}

size_t cgrpc__server_stream_account(call_t *call, size_t len) {
  size_t n;
  pthread_mutex_lock(&call->st->lock);
  n = cgrpc__stream_account_recv(call->st, len);
  pthread_mutex_unlock(&call->st->lock);
  return n;
}

void cgrpc__server_stream_on_end(call_t *call) {
  pthread_mutex_lock(&call->st->lock);
  call->st->read_closed = 1;
  pthread_cond_broadcast(&call->st->cond);
  if (call->read_pending)
    cgrpc__loop_defer(call->loop, &call->notify);
  pthread_mutex_unlock(&call->st->lock);
}

void cgrpc__server_stream_on_close(call_t *call) {
  size_t held;
  cgrpc__stream *st = call->st;
  pthread_mutex_lock(&st->lock);
  st->done = 1;
  held = st->unconsumed + st->to_consume;
  st->unconsumed = st->to_consume = 0;
  pthread_cond_broadcast(&st->cond);
  pthread_mutex_unlock(&st->lock);
  /* Window held back for a slow handler goes back to the connection. */
  if (held && call->conn && !call->conn->h2.closed)
    nghttp2_session_consume_connection(call->conn->h2.session, held);
  cgrpc__loop_defer(call->loop, &call->notify);
}

void cgrpc__server_stream_finish(call_t *call) {
  cgrpc__stream *st = call->st;
  call->finished = 1;
  if (call->responded || call->fail_code != CGRPC_STATUS_OK ||
      !stream_open(call))
    return;
  if (!call->headers_submitted) {
    int queued;
    pthread_mutex_lock(&st->lock);
    queued = st->sendq.head != NULL || call->want_headers;
    pthread_mutex_unlock(&st->lock);
    if (!queued) {
      /* Nothing was written: Trailers-Only, or headers + reply. */
      cgrpc__server_call_respond(call);
      return;
    }
    submit_headers(call);
  }
  /* Headers went out early: the reply (client-streaming) goes through the
   * queue, then the trailers. */
  if (call->code == CGRPC_STATUS_OK && call->response) {
    cgrpc__msg *m = cgrpc__msg_new(call->response_len);
    if (m) {
      memcpy(m->data, call->response, call->response_len);
      pthread_mutex_lock(&st->lock);
      cgrpc__msgq_push(&st->sendq, m);
      pthread_mutex_unlock(&st->lock);
    }
  }
  nghttp2_session_resume_data(call->conn->h2.session, call->stream_id);
  cgrpc__h2conn_schedule_flush(&call->conn->h2);
}

void cgrpc__server_stream_fail(call_t *call, cgrpc_status_code code,
                               const char *message) {
  cgrpc__stream *st = call->st;
  size_t n = strlen(message) + 1;
  if (call->fail_code != CGRPC_STATUS_OK)
    return;
  call->fail_code = code;
  call->fail_message = cgrpc__malloc(n);
  if (call->fail_message)
    memcpy(call->fail_message, message, n);
  atomic_store(&call->cancelled, 1);
  pthread_mutex_lock(&st->lock);
  cgrpc__msgq_clear(&st->sendq);
  st->done = 1;
  pthread_cond_broadcast(&st->cond);
  pthread_mutex_unlock(&st->lock);
  /* The provider now sees an empty queue and a finished call: EOF, then
   * these trailers. */
  call->finished = 1;
  nghttp2_session_resume_data(call->conn->h2.session, call->stream_id);
  cgrpc__h2conn_schedule_flush(&call->conn->h2);
  cgrpc__loop_defer(call->loop, &call->notify);
}

/* Delivers what async callbacks are due (loop thread).  The caller keeps
 * the call alive: a callback may finish it. */
static void notify_callbacks(call_t *call) {
  cgrpc__stream *st = call->st;
  for (;;) {
    pthread_mutex_lock(&st->lock);
    if (call->read_pending && (st->recvq.head || st->read_closed || st->done)) {
      cgrpc__msg *m = cgrpc__msgq_pop(&st->recvq);
      cgrpc_server_read_cb cb = call->read_cb;
      int kick_needed = cgrpc__stream_release_recv(st);
      ProtobufCMessage *msg = NULL;
      call->read_pending = 0;
      pthread_mutex_unlock(&st->lock);
      if (kick_needed)
        kick(call);
      if (m) {
        msg = protobuf_c_message_unpack(call->method->desc->input, NULL, m->len,
                                        m->data);
        cgrpc__free(m);
        if (!msg)
          cgrpc__server_call_abort(call, CGRPC_STATUS_INTERNAL,
                                   "could not decode a request message");
      }
      cb(call, msg, call->read_user_data);
      continue;
    }
    int ok;
    if (cgrpc__stream_async_write_due(st, &ok)) {
      cgrpc_server_write_cb cb = call->write_cb;
      pthread_mutex_unlock(&st->lock);
      if (cb)
        cb(call, ok, call->write_user_data);
      continue;
    }
    pthread_mutex_unlock(&st->lock);
    return;
  }
}

/* The deferred entry point of notify_callbacks(). */
static void notify_run(void *user_data) {
  call_t *call = user_data;
  atomic_fetch_add(&call->posted, 1);
  notify_callbacks(call);
  atomic_fetch_sub(&call->posted, 1);
  cgrpc__server_call_release(call);
}

/* ---- the handler's side ---- */

static int stream_write(call_t *call, const ProtobufCMessage *msg, int blocking,
                        cgrpc_server_write_cb cb, void *user_data) {
  cgrpc__msg *m;
  int rv, need_kick;
  if (!call || !msg)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (!call->st || !writes_stream(call))
    return CGRPC_ERR_INVALID_STATE;
  if (msg->descriptor != call->method->desc->output)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (blocking && cgrpc__in_any_loop_thread())
    return CGRPC_ERR_WOULD_DEADLOCK;
  m = cgrpc__msg_pack(msg, call->server->opts.max_send, &rv);
  if (!m)
    return rv;
  if (!blocking) {
    /* Set before the push: the callback may be due at once. */
    pthread_mutex_lock(&call->st->lock);
    if (call->st->async_pending) {
      pthread_mutex_unlock(&call->st->lock);
      cgrpc__free(m);
      return CGRPC_ERR_INVALID_STATE;
    }
    call->write_cb = cb;
    call->write_user_data = user_data;
    pthread_mutex_unlock(&call->st->lock);
  }
  rv = cgrpc__stream_push_send(call->st, m, blocking, &need_kick);
  if (rv != 0) {
    cgrpc__free(m);
    return rv;
  }
  if (need_kick)
    kick(call);
  return 0;
}

int cgrpc_server_ctx_write(cgrpc_server_ctx *ctx, const ProtobufCMessage *msg) {
  return stream_write(ctx, msg, 1, NULL, NULL);
}

int cgrpc_server_ctx_write_async(cgrpc_server_ctx *ctx,
                                 const ProtobufCMessage *msg,
                                 cgrpc_server_write_cb cb, void *user_data) {
  return stream_write(ctx, msg, 0, cb, user_data);
}

int cgrpc_server_ctx_read(cgrpc_server_ctx *ctx, ProtobufCMessage **msg) {
  cgrpc__stream *st;
  cgrpc__msg *m;
  int need_kick, done;
  if (!msg)
    return CGRPC_ERR_INVALID_ARGUMENT;
  *msg = NULL;
  if (!ctx)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (!ctx->st || !cgrpc__server_call_reads_stream(ctx))
    return CGRPC_ERR_INVALID_STATE;
  if (cgrpc__in_any_loop_thread())
    return CGRPC_ERR_WOULD_DEADLOCK;
  st = ctx->st;
  pthread_mutex_lock(&st->lock);
  while (!st->recvq.head && !st->read_closed && !st->done)
    pthread_cond_wait(&st->cond, &st->lock);
  m = cgrpc__msgq_pop(&st->recvq);
  need_kick = cgrpc__stream_release_recv(st);
  done = st->done && !st->read_closed;
  pthread_mutex_unlock(&st->lock);
  if (need_kick)
    kick(ctx);
  if (!m)
    return done ? CGRPC_ERR_CLOSED : 0;
  *msg = protobuf_c_message_unpack(ctx->method->desc->input, NULL, m->len,
                                   m->data);
  cgrpc__free(m);
  return *msg ? 1 : CGRPC_ERR_PROTO;
}

int cgrpc_server_ctx_read_async(cgrpc_server_ctx *ctx, cgrpc_server_read_cb cb,
                                void *user_data) {
  int rv = 0;
  if (!ctx || !cb)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (!ctx->st || !cgrpc__server_call_reads_stream(ctx))
    return CGRPC_ERR_INVALID_STATE;
  pthread_mutex_lock(&ctx->st->lock);
  if (ctx->read_pending)
    rv = CGRPC_ERR_INVALID_STATE;
  else {
    ctx->read_pending = 1;
    ctx->read_cb = cb;
    ctx->read_user_data = user_data;
  }
  pthread_mutex_unlock(&ctx->st->lock);
  if (rv == 0) {
    if (cgrpc__loop_in_thread(ctx->loop))
      cgrpc__loop_defer(ctx->loop, &ctx->notify);
    else
      kick(ctx);
  }
  return rv;
}

int cgrpc_server_ctx_send_initial_metadata(cgrpc_server_ctx *ctx) {
  int rv = 0, need_kick = 0;
  if (!ctx)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (!ctx->st)
    return CGRPC_ERR_INVALID_STATE; /* unary: headers go with the reply */
  pthread_mutex_lock(&ctx->st->lock);
  if (ctx->want_headers)
    rv = CGRPC_ERR_INVALID_STATE;
  else {
    ctx->want_headers = 1;
    need_kick = cgrpc__stream_want_kick(ctx->st);
  }
  pthread_mutex_unlock(&ctx->st->lock);
  if (need_kick)
    kick(ctx);
  return rv;
}

void cgrpc_server_ctx_detach(cgrpc_server_ctx *ctx) {
  if (ctx)
    atomic_store(&ctx->detached, 1);
}

/* Loop task: a detached call was finished. */
static void finish_task(void *user_data) {
  call_t *call = user_data;
  atomic_fetch_sub(&call->posted, 1);
  call->app_finished = 1;
  if (call->st)
    cgrpc__server_stream_finish(call);
  else {
    call->finished = 1;
    if (!call->responded && stream_open(call))
      cgrpc__server_call_respond(call);
  }
  cgrpc__server_call_release(call);
}

int cgrpc_server_ctx_finish(cgrpc_server_ctx *ctx, cgrpc_status_code code) {
  if (!ctx)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (!atomic_load(&ctx->detached) || atomic_exchange(&ctx->finish_called, 1))
    return CGRPC_ERR_INVALID_STATE;
  if (ctx->st) {
    pthread_mutex_lock(&ctx->st->lock);
    ctx->st->write_closed = 1;
    pthread_mutex_unlock(&ctx->st->lock);
  }
  if ((unsigned)code > CGRPC_STATUS_UNAUTHENTICATED) {
    ctx->status_message = "handler returned an invalid status code";
    code = CGRPC_STATUS_UNKNOWN;
  }
  ctx->code = code;
  if (code == CGRPC_STATUS_OK)
    ctx->status_message = NULL;
  cgrpc__server_call_pack_response(ctx);
  atomic_fetch_add(&ctx->posted, 1);
  if (cgrpc__loop_in_thread(ctx->loop)) {
    finish_task(ctx);
    return 0;
  }
  ctx->finish_node.cb = finish_task;
  ctx->finish_node.user_data = ctx;
  ctx->finish_node.allocated = 0;
  cgrpc__loop_post_task(ctx->loop, &ctx->finish_node);
  return 0;
}
