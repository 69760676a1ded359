/* SPDX-License-Identifier: MIT */
/*
 * The response side of a server call and the handler-facing read/write
 * API (blocking and async), detached handlers, and the loop side that
 * sends the headers, what the handler queued, the reply and the trailers.
 */
#include <stdio.h>
#include <string.h>

#include "call/compress.h"
#include "call/wire.h"
#include "cgrpc/error.h"
#include "h2/hdrs.h"
#include "server/internal.h"
#include "util/mem.h"
#include "util/trace.h"

typedef struct cgrpc_server_ctx call_t;

static call_t *call_of(cgrpc__ep *ep) { return (call_t *)ep; }

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

/* ---- loop side ---- */

int cgrpc__server_call_send_enc(const call_t *call) {
  return cgrpc__compress_pick(call->compression, call->accept_enc);
}

/* The response headers, with |initial| metadata; grpc-encoding when the
 * messages that follow go in |enc|. */
static void add_response_headers(cgrpc__hdrs *h, int enc,
                                 const cgrpc_metadata_array *initial) {
  CGRPC__HDRS_ADD_LIT(h, ":status", "200");
  CGRPC__HDRS_ADD_LIT(h, "content-type", "application/grpc");
  if (cgrpc__compress_on(enc)) {
    const char *name = cgrpc_compression_name(enc);
    cgrpc__hdrs_add(h, "grpc-encoding", 13, name, strlen(name));
  }
  CGRPC__HDRS_ADD_LIT(h, "grpc-accept-encoding", CGRPC__ACCEPT_ENCODING);
  cgrpc__hdrs_add_metadata(h, initial);
}

/* Response headers with a body that follows the send queue (the initial
 * metadata is final: headers_frozen is set). */
static void submit_headers(call_t *call) {
  nghttp2_data_provider prd = cgrpc__ep_provider(&call->ep);
  cgrpc__hdrs h;
  int rv;
  call->headers_submitted = 1;
  cgrpc__hdrs_init(&h);
  add_response_headers(&h, cgrpc__server_call_send_enc(call), call->initial_md);
  rv = h.failed ? -1
                : nghttp2_submit_response(call->ep.conn->session,
                                          call->ep.stream_id, h.nv, h.len,
                                          &prd);
  cgrpc__hdrs_free(&h);
  if (rv != 0) {
    call->responded = 1;
    cgrpc__ep_reset(&call->ep, NGHTTP2_INTERNAL_ERROR);
  }
  cgrpc__h2conn_schedule_flush(call->ep.conn);
}

void cgrpc__server_trailers_only(call_t *call, cgrpc_status_code code,
                                 const char *message,
                                 const cgrpc_metadata_array *initial,
                                 const cgrpc_metadata_array *trailing) {
  cgrpc__hdrs h;
  int rv;
  call->responded = 1;
  CGRPC__TRACE(&call->server->log, CALL, "%s from %s: ends %s%s%s (no message)",
               call->path ? call->path : "?", call->peer,
               cgrpc_status_code_name(code), message ? ": " : "",
               message ? message : "");
  cgrpc__hdrs_init(&h);
  add_response_headers(&h, CGRPC_COMPRESS_IDENTITY, initial); /* no message */
  cgrpc__hdrs_add_status(&h, code, message);
  cgrpc__hdrs_add_metadata(&h, trailing);
  rv = h.failed ? -1
                : nghttp2_submit_response(call->ep.conn->session,
                                          call->ep.stream_id, h.nv, h.len,
                                          NULL);
  cgrpc__hdrs_free(&h);
  if (rv != 0)
    cgrpc__ep_reset(&call->ep, NGHTTP2_INTERNAL_ERROR);
  cgrpc__h2conn_schedule_flush(call->ep.conn);
  if (call->ic)
    cgrpc__icall_set_outcome(call->ic, code, message, trailing);
}

/* The body's end (cgrpc__ep_ops.body_end): the trailers, with the loop's
 * failure if it ended the call, else the handler's outcome. */
uint32_t cgrpc__server_call_body_end(cgrpc__ep *ep) {
  call_t *call = call_of(ep);
  cgrpc__hdrs h;
  call->responded = 1;
  cgrpc__hdrs_init(&h);
  CGRPC__TRACE(&call->server->log, CALL, "%s from %s: ends %s%s%s",
               call->path ? call->path : "?", call->peer,
               cgrpc_status_code_name(call->fail_code != CGRPC_STATUS_OK
                                          ? call->fail_code
                                          : call->code),
               call->fail_code != CGRPC_STATUS_OK || call->status_message
                   ? ": "
                   : "",
               call->fail_code != CGRPC_STATUS_OK ? call->fail_message
               : call->status_message              ? call->status_message
                                                   : "");
  if (call->fail_code != CGRPC_STATUS_OK) {
    cgrpc__hdrs_add_status(&h, call->fail_code, call->fail_message);
    if (call->ic)
      cgrpc__icall_set_outcome(call->ic, call->fail_code, call->fail_message,
                               NULL);
  } else {
    cgrpc__hdrs_add_status(&h, call->code, call->status_message);
    cgrpc__hdrs_add_metadata(&h, call->trailing_md);
    if (call->ic)
      cgrpc__icall_set_outcome(call->ic, call->code, call->status_message,
                               call->trailing_md);
  }
  if (h.failed ||
      nghttp2_submit_trailer(ep->conn->session, ep->stream_id, h.nv, h.len) !=
          0)
    cgrpc__ep_reset(ep, NGHTTP2_INTERNAL_ERROR);
  cgrpc__hdrs_free(&h);
  return NGHTTP2_DATA_FLAG_NO_END_STREAM;
}

void cgrpc__server_call_respond(call_t *call) {
  cgrpc__stream *st = &call->ep.st;
  int queued;
  call->finished = 1;
  if (call->responded || call->fail_code != CGRPC_STATUS_OK ||
      !cgrpc__ep_bound(&call->ep))
    return;
  /* What the handler queued is all there will be; the reply goes last. */
  pthread_mutex_lock(&st->lock);
  call->headers_frozen = 1;
  if (call->reply) {
    call->reply->seq = ++st->send_seq;
    cgrpc__msgq_push(&st->sendq, call->reply);
    call->reply = NULL;
  }
  st->write_closed = 1;
  queued = st->sendq.head != NULL;
  pthread_mutex_unlock(&st->lock);
  if (call->headers_submitted) {
    nghttp2_session_resume_data(call->ep.conn->session, call->ep.stream_id);
    cgrpc__h2conn_schedule_flush(call->ep.conn);
  } else if (queued) {
    submit_headers(call);
  } else {
    /* Nothing was sent: the handler's outcome in one HEADERS frame. */
    cgrpc__server_trailers_only(call, call->code, call->status_message,
                                call->initial_md, call->trailing_md);
  }
}

/* Back on the loop after a pooled handler returned. */
static void handler_done(call_t *call) {
  if (!atomic_load(&call->detached))
    cgrpc__server_call_respond(call);
  cgrpc__ep_unref(&call->ep); /* the handler's */
}

void cgrpc__server_call_kick(cgrpc__ep *ep, unsigned requests) {
  call_t *call = call_of(ep);
  if ((requests & (SCALL_REQ_HEADERS | CGRPC__EP_REQ_SEND)) &&
      !call->headers_submitted && !call->responded && !call->finished &&
      cgrpc__ep_bound(ep))
    submit_headers(call); /* the handler froze the initial metadata */
  if (requests & SCALL_REQ_HANDLER_DONE)
    handler_done(call);
  if (requests & SCALL_REQ_FINISH) {
    cgrpc__server_call_respond(call);
    cgrpc__ep_unref(ep); /* the detached handler's */
  }
}

void cgrpc__server_call_read_done(cgrpc__ep *ep, ProtobufCMessage *msg) {
  call_t *call = call_of(ep);
  cgrpc_server_read_cb cb;
  void *user_data;
  pthread_mutex_lock(&ep->st.lock);
  cb = call->read_cb;
  user_data = call->read_user_data;
  pthread_mutex_unlock(&ep->st.lock);
  cb(call, msg, user_data);
}

void cgrpc__server_call_write_done(cgrpc__ep *ep, int ok) {
  call_t *call = call_of(ep);
  cgrpc_server_write_cb cb;
  void *user_data;
  pthread_mutex_lock(&ep->st.lock);
  cb = call->write_cb;
  user_data = call->write_user_data;
  pthread_mutex_unlock(&ep->st.lock);
  if (cb)
    cb(call, ok, user_data);
}

/* ---- the handler's side ---- */

void cgrpc__server_call_set_outcome(call_t *call, cgrpc_status_code code) {
  int64_t limit = call->server->opts.max_send;
  char buf[128];
  int err = 0;
  if ((unsigned)code > CGRPC_STATUS_UNAUTHENTICATED) {
    call->status_message = "handler returned an invalid status code";
    code = CGRPC_STATUS_UNKNOWN;
  }
  call->code = code;
  if (code != CGRPC_STATUS_OK)
    return;
  call->status_message = NULL;
  if (!call->response_msg)
    return;
  if (cgrpc__icall_wants_messages(call->ic))
    cgrpc__icall_message(call->ic, CGRPC_INTERCEPT_SEND, call->response_msg);
  call->reply = cgrpc__msg_pack(call->response_msg, limit,
                                cgrpc__server_call_send_enc(call), &err);
  if (call->reply)
    return;
  call->code = CGRPC_STATUS_RESOURCE_EXHAUSTED;
  if (err == CGRPC_ERR_NOMEM) {
    call->status_message = "out of memory packing the response";
    return;
  }
  {
    size_t len = protobuf_c_message_get_packed_size(call->response_msg);
    if (limit < 0 || len <= (size_t)limit) {
      call->status_message = "response message larger than 4 GiB";
      return;
    }
    snprintf(buf, sizeof buf,
             "response message of %zu bytes exceeds the limit of %lld bytes",
             len, (long long)limit);
    call->status_message =
        cgrpc__arena_memdup(&call->arena, buf, strlen(buf) + 1);
  }
}

static int stream_write(call_t *call, const ProtobufCMessage *msg,
                        unsigned flags, int blocking, cgrpc_server_write_cb cb,
                        void *user_data) {
  cgrpc__msg *m;
  int rv = 0;
  if (!call || !msg || (flags & ~(unsigned)CGRPC_WRITE_NO_COMPRESS))
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (!writes_stream(call) || atomic_load(&call->finish_called))
    return CGRPC_ERR_INVALID_STATE;
  if (msg->descriptor != call->method->desc->output)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (blocking && cgrpc__in_any_loop_thread())
    return CGRPC_ERR_WOULD_DEADLOCK;
  if (cgrpc__icall_wants_messages(call->ic))
    cgrpc__icall_message(call->ic, CGRPC_INTERCEPT_SEND, msg);
  /* The compression cannot change from here on: this write freezes the
   * headers, and the writer is the one thread that could have changed it. */
  m = cgrpc__msg_pack(msg, call->server->opts.max_send,
                      (flags & CGRPC_WRITE_NO_COMPRESS)
                          ? CGRPC_COMPRESS_IDENTITY
                          : cgrpc__server_call_send_enc(call),
                      &rv);
  if (!m)
    return rv;
  pthread_mutex_lock(&call->ep.st.lock);
  /* The headers go with the first message: their metadata is final. */
  call->headers_frozen = 1;
  if (!blocking) {
    /* Set before the push: the callback may be due at once. */
    if (call->ep.st.async_pending)
      rv = CGRPC_ERR_INVALID_STATE;
    else {
      call->write_cb = cb;
      call->write_user_data = user_data;
    }
  }
  pthread_mutex_unlock(&call->ep.st.lock);
  if (rv == 0)
    rv = cgrpc__ep_write(&call->ep, m, blocking);
  if (rv != 0)
    cgrpc__free(m);
  return rv;
}

int cgrpc_server_ctx_write(cgrpc_server_ctx *ctx, const ProtobufCMessage *msg) {
  return stream_write(ctx, msg, 0, 1, NULL, NULL);
}

int cgrpc_server_ctx_write_flags(cgrpc_server_ctx *ctx,
                                 const ProtobufCMessage *msg, unsigned flags) {
  return stream_write(ctx, msg, flags, 1, NULL, NULL);
}

int cgrpc_server_ctx_write_async(cgrpc_server_ctx *ctx,
                                 const ProtobufCMessage *msg,
                                 cgrpc_server_write_cb cb, void *user_data) {
  return stream_write(ctx, msg, 0, 0, cb, user_data);
}

int cgrpc_server_ctx_write_async_flags(cgrpc_server_ctx *ctx,
                                       const ProtobufCMessage *msg,
                                       unsigned flags, cgrpc_server_write_cb cb,
                                       void *user_data) {
  return stream_write(ctx, msg, flags, 0, cb, user_data);
}

int cgrpc_server_ctx_read(cgrpc_server_ctx *ctx, ProtobufCMessage **msg) {
  cgrpc__msg *m;
  int ended;
  if (!msg)
    return CGRPC_ERR_INVALID_ARGUMENT;
  *msg = NULL;
  if (!ctx)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (!cgrpc__server_call_reads_stream(ctx))
    return CGRPC_ERR_INVALID_STATE;
  if (cgrpc__in_any_loop_thread())
    return CGRPC_ERR_WOULD_DEADLOCK;
  m = cgrpc__ep_read_wait(&ctx->ep);
  if (!m) {
    /* The end of the requests, or a call that ended before them. */
    pthread_mutex_lock(&ctx->ep.st.lock);
    ended = ctx->ep.st.done && !ctx->ep.st.read_closed;
    pthread_mutex_unlock(&ctx->ep.st.lock);
    return ended ? CGRPC_ERR_CLOSED : 0;
  }
  *msg = cgrpc__ep_decode(&ctx->ep, m);
  return *msg ? 1 : CGRPC_ERR_PROTO;
}

int cgrpc_server_ctx_read_async(cgrpc_server_ctx *ctx, cgrpc_server_read_cb cb,
                                void *user_data) {
  int busy;
  if (!ctx || !cb)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (!cgrpc__server_call_reads_stream(ctx))
    return CGRPC_ERR_INVALID_STATE;
  pthread_mutex_lock(&ctx->ep.st.lock);
  busy = ctx->ep.read_pending;
  if (!busy) {
    ctx->read_cb = cb;
    ctx->read_user_data = user_data;
  }
  pthread_mutex_unlock(&ctx->ep.st.lock);
  return busy ? CGRPC_ERR_INVALID_STATE : cgrpc__ep_read_async(&ctx->ep);
}

int cgrpc_server_ctx_send_initial_metadata(cgrpc_server_ctx *ctx) {
  int rv = 0, post = 0;
  if (!ctx)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (!ctx->method || ctx->method->desc->kind == CGRPC_METHOD_UNARY)
    return CGRPC_ERR_INVALID_STATE; /* unary: headers go with the reply */
  pthread_mutex_lock(&ctx->ep.st.lock);
  if (ctx->headers_frozen)
    rv = CGRPC_ERR_INVALID_STATE;
  else {
    ctx->headers_frozen = 1;
    post = cgrpc__ep_want_kick(&ctx->ep, SCALL_REQ_HEADERS);
  }
  pthread_mutex_unlock(&ctx->ep.st.lock);
  if (post)
    cgrpc__ep_post_kick(&ctx->ep);
  return rv;
}

void cgrpc_server_ctx_detach(cgrpc_server_ctx *ctx) {
  /* The call lives on until cgrpc_server_ctx_finish() has reached the
   * loop. */
  if (ctx && !atomic_exchange(&ctx->detached, 1))
    cgrpc__ep_ref(&ctx->ep);
}

int cgrpc_server_ctx_finish(cgrpc_server_ctx *ctx, cgrpc_status_code code) {
  if (!ctx)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (!atomic_load(&ctx->detached) || atomic_exchange(&ctx->finish_called, 1))
    return CGRPC_ERR_INVALID_STATE;
  cgrpc__server_call_set_outcome(ctx, code);
  cgrpc__ep_kick(&ctx->ep, SCALL_REQ_FINISH);
  return 0;
}
