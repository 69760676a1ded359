/* SPDX-License-Identifier: MIT */
#include "call/endpoint.h"

#include <stdio.h>
#include <string.h>

#include "call/compress.h"
#include "cgrpc/error.h"
#include "util/mem.h"

static void kick_run(void *user_data);
static void notify_run(void *user_data);

void cgrpc__ep_init(cgrpc__ep *ep, const cgrpc__ep_ops *ops, cgrpc__loop *loop,
                    int refs, int64_t max_recv,
                    const ProtobufCMessageDescriptor *recv_desc,
                    const char *recv_what) {
  atomic_init(&ep->refs, refs);
  ep->ops = ops;
  ep->loop = loop;
  cgrpc__stream_init(&ep->st, CGRPC__STREAM_SEND_LIMIT,
                     CGRPC__STREAM_RECV_LIMIT);
  ep->requests = 0;
  ep->fail_code = CGRPC_STATUS_OK;
  ep->fail_message = NULL;
  ep->read_pending = 0;
  ep->reads_ended = 0;
  cgrpc__task_init(&ep->kick_node, kick_run, ep);
  ep->notify.cb = notify_run;
  ep->notify.user_data = ep;
  ep->notify.queued = 0;
  ep->notify.next = NULL;
  ep->conn = NULL;
  ep->stream_id = -1;
  ep->peer_reset = 0;
  ep->prev = ep->next = NULL;
  ep->list = NULL;
  cgrpc__deframer_init(&ep->deframer, max_recv);
  /* Messages that span DATA frames are adopted, not copied. */
  cgrpc__stream_deframer_init(&ep->deframer);
  ep->header_bytes = 0;
  ep->unary_recv = 0;
  ep->unary_msg = NULL;
  ep->async = 0;
  ep->max_recv = max_recv;
  ep->recv_desc = recv_desc;
  ep->recv_what = recv_what;
  ep->recv_enc = 0;
  ep->inflated = NULL;
  ep->last_compressed = 0;
}

void cgrpc__ep_free(cgrpc__ep *ep) {
  cgrpc__free(ep->unary_msg);
  cgrpc__deframer_free(&ep->deframer);
  cgrpc__stream_free(&ep->st);
}

void cgrpc__ep_ref(cgrpc__ep *ep) { atomic_fetch_add(&ep->refs, 1); }

void cgrpc__ep_unref(cgrpc__ep *ep) {
  if (atomic_fetch_sub(&ep->refs, 1) == 1)
    ep->ops->destroy(ep);
}

/* ---- kicks ---- */

int cgrpc__ep_want_kick(cgrpc__ep *ep, unsigned requests) {
  ep->requests |= requests;
  if (!cgrpc__stream_want_kick(&ep->st))
    return 0;
  /* Taken under the lock: from here until the kick has run, the endpoint
   * stays whatever the other threads do with theirs. */
  cgrpc__ep_ref(ep);
  return 1;
}

int cgrpc__ep_release_recv(cgrpc__ep *ep) {
  if (!cgrpc__stream_release_recv(&ep->st))
    return 0;
  cgrpc__ep_ref(ep);
  return 1;
}

void cgrpc__ep_post_kick(cgrpc__ep *ep) {
  cgrpc__loop_post_task(ep->loop, &ep->kick_node);
}

void cgrpc__ep_kick(cgrpc__ep *ep, unsigned requests) {
  int post;
  pthread_mutex_lock(&ep->st.lock);
  post = cgrpc__ep_want_kick(ep, requests);
  pthread_mutex_unlock(&ep->st.lock);
  if (post)
    cgrpc__ep_post_kick(ep);
}

void cgrpc__ep_fail_any(cgrpc__ep *ep, cgrpc_status_code code,
                        const char *message) {
  int post = 0;
  if (cgrpc__loop_in_thread(ep->loop)) {
    ep->ops->fail(ep, code, message);
    return;
  }
  pthread_mutex_lock(&ep->st.lock);
  if (!(ep->requests & CGRPC__EP_REQ_FAIL)) {
    ep->fail_code = code;
    ep->fail_message = message;
    post = cgrpc__ep_want_kick(ep, CGRPC__EP_REQ_FAIL);
  }
  pthread_mutex_unlock(&ep->st.lock);
  if (post)
    cgrpc__ep_post_kick(ep);
}

static void kick_run(void *user_data) {
  cgrpc__ep *ep = user_data;
  unsigned requests;
  size_t consume;
  pthread_mutex_lock(&ep->st.lock);
  requests = ep->requests;
  ep->requests = 0;
  ep->st.kick_pending = 0;
  consume = ep->st.to_consume;
  ep->st.to_consume = 0;
  pthread_mutex_unlock(&ep->st.lock);
  if (cgrpc__ep_bound(ep)) {
    nghttp2_session *session = ep->conn->session;
    /* Also counts for the connection when the stream is half gone. */
    if (consume)
      nghttp2_session_consume(session, ep->stream_id, consume);
    if (requests & CGRPC__EP_REQ_SEND)
      nghttp2_session_resume_data(session, ep->stream_id);
    cgrpc__h2conn_schedule_flush(ep->conn);
  }
  if (requests & CGRPC__EP_REQ_FAIL) {
    cgrpc_status_code code;
    const char *message;
    pthread_mutex_lock(&ep->st.lock);
    code = ep->fail_code;
    message = ep->fail_message;
    pthread_mutex_unlock(&ep->st.lock);
    ep->ops->fail(ep, code, message);
  }
  ep->ops->kick(ep, requests);
  if (requests & CGRPC__EP_REQ_NOTIFY)
    cgrpc__ep_defer_notify(ep);
  cgrpc__ep_unref(ep);
}

/* ---- async completions ---- */

void cgrpc__ep_defer_notify(cgrpc__ep *ep) {
  if (ep->notify.queued)
    return;
  cgrpc__ep_ref(ep);
  cgrpc__loop_defer(ep->loop, &ep->notify);
}

static void notify_run(void *user_data) {
  cgrpc__ep *ep = user_data;
  cgrpc__stream *st = &ep->st;
  for (;;) {
    int ok, post;
    pthread_mutex_lock(&st->lock);
    if (ep->read_pending && (st->recvq.head || st->read_closed || st->done)) {
      cgrpc__msg *m = cgrpc__msgq_pop(&st->recvq);
      ProtobufCMessage *msg = NULL;
      ep->read_pending = 0;
      ep->last_compressed = m ? m->compressed : 0;
      post = cgrpc__ep_release_recv(ep);
      pthread_mutex_unlock(&st->lock);
      if (post)
        cgrpc__ep_post_kick(ep);
      if (m) {
        msg = cgrpc__ep_decode(ep, m);
        if (!msg) {
          char buf[96];
          snprintf(buf, sizeof buf, "could not decode a %s message",
                   ep->recv_what);
          ep->ops->fail(ep, CGRPC_STATUS_INTERNAL, buf);
        }
      }
      ep->ops->read_done(ep, msg);
      continue;
    }
    if (cgrpc__stream_async_write_due(st, &ok)) {
      pthread_mutex_unlock(&st->lock);
      ep->ops->write_done(ep, ok);
      continue;
    }
    pthread_mutex_unlock(&st->lock);
    break;
  }
  if (ep->ops->idle)
    ep->ops->idle(ep);
  cgrpc__ep_unref(ep);
}

/* ---- the stream ---- */

void cgrpc__ep_bind(cgrpc__ep *ep, cgrpc__h2conn *conn, cgrpc__ep **list,
                    int32_t stream_id) {
  cgrpc__ep_ref(ep);
  ep->conn = conn;
  ep->stream_id = stream_id;
  ep->list = list;
  ep->prev = NULL;
  ep->next = *list;
  if (*list)
    (*list)->prev = ep;
  *list = ep;
}

cgrpc__ep *cgrpc__ep_find(cgrpc__ep *list, int32_t stream_id) {
  for (; list; list = list->next)
    if (list->stream_id == stream_id)
      return list;
  return NULL;
}

int cgrpc__ep_bound(const cgrpc__ep *ep) {
  return ep->conn && !ep->conn->closed;
}

void cgrpc__ep_reset(cgrpc__ep *ep, uint32_t error_code) {
  if (!cgrpc__ep_bound(ep))
    return;
  if (nghttp2_submit_rst_stream(ep->conn->session, NGHTTP2_FLAG_NONE,
                                ep->stream_id, error_code) != 0)
    cgrpc__h2conn_close(ep->conn);
  else
    cgrpc__h2conn_schedule_flush(ep->conn);
}

int cgrpc__ep_request_open(const cgrpc__ep *ep) {
  nghttp2_session *s;
  if (!cgrpc__ep_bound(ep))
    return 0;
  /* nghttp2 marks the half the frame ends only after the callback; the
   * request's half is the peer's on a server, ours on a client. */
  s = ep->conn->session;
  return (nghttp2_session_check_server_session(s)
              ? nghttp2_session_get_stream_remote_close(s, ep->stream_id)
              : nghttp2_session_get_stream_local_close(s, ep->stream_id)) == 0;
}

static void unbind(cgrpc__ep *ep, cgrpc__ep_end how, uint32_t error_code) {
  size_t held;
  if (!ep->conn)
    return;
  held = 0;
  if (!ep->unary_recv) { /* else nothing was held back */
    pthread_mutex_lock(&ep->st.lock);
    held = ep->st.unconsumed + ep->st.to_consume;
    ep->st.unconsumed = ep->st.to_consume = 0;
    pthread_mutex_unlock(&ep->st.lock);
  }
  /* Window held back for a slow reader goes back to the connection. */
  if (held && !ep->conn->closed)
    nghttp2_session_consume_connection(ep->conn->session, held);
  if (ep->prev)
    ep->prev->next = ep->next;
  else
    *ep->list = ep->next;
  if (ep->next)
    ep->next->prev = ep->prev;
  ep->prev = ep->next = NULL;
  ep->list = NULL;
  ep->conn = NULL;
  ep->stream_id = -1;
  /* May bind |ep| again (a retried request) before the old stream's
   * reference goes. */
  ep->ops->unbound(ep, how, error_code);
  cgrpc__ep_unref(ep);
}

void cgrpc__ep_closed(cgrpc__ep *ep, int32_t stream_id, uint32_t error_code) {
  if (ep->stream_id != stream_id)
    return;
  if (cgrpc__ep_bound(ep)) {
    cgrpc__h2conn_stream_closed(ep->conn, ep->stream_id, ep->peer_reset);
    /* Whatever nghttp2 still reports for the stream finds nothing. */
    nghttp2_session_set_stream_user_data(ep->conn->session, ep->stream_id,
                                         NULL);
  }
  unbind(ep, CGRPC__EP_CLOSED, error_code);
}

void cgrpc__ep_not_sent(cgrpc__ep *ep) {
  /* nghttp2 may close the stream the HEADERS had opened right after: by
   * then |ep| may be bound elsewhere (retried), or gone. */
  if (cgrpc__ep_bound(ep))
    nghttp2_session_set_stream_user_data(ep->conn->session, ep->stream_id,
                                         NULL);
  unbind(ep, CGRPC__EP_NOT_SENT, 0);
}

void cgrpc__ep_conn_lost(cgrpc__ep **list) {
  while (*list) {
    cgrpc__ep *ep = *list;
    /* A request nghttp2 still held in its queue never opened a stream:
     * the session reports no user data for it. */
    int opened = nghttp2_session_get_stream_user_data(ep->conn->session,
                                                      ep->stream_id) == ep;
    unbind(ep, opened ? CGRPC__EP_CONN_LOST : CGRPC__EP_CONN_LOST_UNSENT, 0);
  }
}

/* A message with the compressed flag: inflated in the peer's encoding,
 * within the receive limit, then given to the side. */
static CGRPC__COLD int on_compressed(cgrpc__ep *ep, const uint8_t *data,
                                     size_t len) {
  size_t headroom = offsetof(cgrpc__msg, data), n;
  char msg[160];
  int rv;
  if (!cgrpc__compress_on(ep->recv_enc)) {
    /* doc/compression.md: the flag without a grpc-encoding other than
     * identity is an INTERNAL error. */
    snprintf(msg, sizeof msg, "compressed %s message %s", ep->recv_what,
             ep->recv_enc == CGRPC__COMPRESS_UNKNOWN
                 ? "in an unsupported grpc-encoding (this side "
                   "accepts " CGRPC__ACCEPT_ENCODING ")"
             : ep->recv_enc == CGRPC_COMPRESS_IDENTITY
                 ? "under grpc-encoding identity"
                 : "without a grpc-encoding");
    ep->ops->fail(ep, CGRPC_STATUS_INTERNAL, msg);
    return 1;
  }
  /* A stream's messages wait in the receive queue as they came, and are
   * inflated by the reader (cgrpc__ep_decode()): the queue's limit and the
   * window it holds back then bound what is kept, as for uncompressed
   * ones.  Inflated here, 1 KiB of wire could be 1 MiB in the queue. */
  if (!ep->unary_recv)
    return ep->ops->message(ep, 1, data, len);
  rv = cgrpc__decompress(ep->recv_enc, data, len, ep->max_recv, headroom,
                         &ep->inflated, &n);
  if (rv != 0) {
    cgrpc_status_code code = CGRPC_STATUS_INTERNAL;
    if (rv == CGRPC_ERR_TOO_LARGE) {
      code = CGRPC_STATUS_RESOURCE_EXHAUSTED;
      snprintf(msg, sizeof msg,
               "decompressed %s message larger than max (%lld bytes)",
               ep->recv_what, (long long)ep->max_recv);
    } else if (rv == CGRPC_ERR_NOMEM) {
      code = CGRPC_STATUS_RESOURCE_EXHAUSTED;
      snprintf(msg, sizeof msg, "out of memory decompressing a %s message",
               ep->recv_what);
    } else {
      snprintf(msg, sizeof msg, "could not decompress a %s message (%s)",
               ep->recv_what, cgrpc_compression_name(ep->recv_enc));
    }
    ep->ops->fail(ep, code, msg);
    return 1;
  }
  rv = ep->ops->message(ep, 1, ep->inflated + headroom, n);
  cgrpc__free(ep->inflated); /* unless the side took it */
  ep->inflated = NULL;
  return rv;
}

static int on_message(void *user_data, int compressed, const uint8_t *data,
                      size_t len) {
  cgrpc__ep *ep = user_data;
  if (compressed)
    return on_compressed(ep, data, len);
  return ep->ops->message(ep, 0, data, len);
}

ProtobufCMessage *cgrpc__ep_peek_message(cgrpc__ep *ep, int compressed,
                                         const uint8_t *data, size_t len) {
  ProtobufCMessage *msg;
  uint8_t *inflated = NULL;
  size_t n = len;
  /* A unary side hands over |data| inflated already. */
  if (compressed && !ep->unary_recv) {
    if (cgrpc__decompress(ep->recv_enc, data, len, ep->max_recv, 0, &inflated,
                          &n) != 0)
      return NULL;
    data = inflated;
  }
  msg = protobuf_c_message_unpack(ep->recv_desc, NULL, n, data);
  cgrpc__free(inflated);
  return msg;
}

cgrpc__msg *cgrpc__ep_take_message(cgrpc__ep *ep, int compressed,
                                   const uint8_t *data, size_t len) {
  cgrpc__msg *m;
  if (ep->inflated && data == ep->inflated + offsetof(cgrpc__msg, data)) {
    m = cgrpc__msg_adopt(ep->inflated, len);
    ep->inflated = NULL;
  } else {
    m = cgrpc__msg_received(&ep->deframer, data, len);
    /* Still compressed (see on_compressed()). */
    if (m && compressed)
      m->deflated = ep->recv_enc;
  }
  if (m)
    m->compressed = (unsigned char)(compressed != 0);
  return m;
}

size_t cgrpc__ep_on_data(cgrpc__ep *ep, const uint8_t *data, size_t len) {
  char msg[128];
  size_t consume = len;
  int rv = cgrpc__deframer_feed(&ep->deframer, data, len, on_message, ep);
  switch (rv) {
  case 0:
    if (ep->unary_recv)
      break;
    /* Hold the window back while the reader lags. */
    pthread_mutex_lock(&ep->st.lock);
    consume = cgrpc__stream_account_recv(&ep->st, len);
    pthread_mutex_unlock(&ep->st.lock);
    break;
  case 1: /* the side ended the call */
    break;
  case CGRPC_ERR_TOO_LARGE:
    snprintf(msg, sizeof msg, "received message larger than max (%lld bytes)",
             (long long)ep->max_recv);
    ep->ops->fail(ep, CGRPC_STATUS_RESOURCE_EXHAUSTED, msg);
    break;
  case CGRPC_ERR_PROTO:
    ep->ops->fail(ep, CGRPC_STATUS_INTERNAL, "bad gRPC message framing");
    break;
  default:
    ep->ops->fail(ep, CGRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    break;
  }
  return consume;
}

/* ---- the body ---- */

static ssize_t provider_read(nghttp2_session *session, int32_t stream_id,
                             uint8_t *buf, size_t length, uint32_t *data_flags,
                             nghttp2_data_source *source, void *user_data) {
  cgrpc__ep *ep = source->ptr;
  cgrpc__stream *st = &ep->st;
  size_t avail, n;
  int eof;
  (void)session;
  (void)stream_id;
  (void)buf;
  (void)user_data;
  pthread_mutex_lock(&st->lock);
  avail = st->sendq.bytes - st->promised;
  n = avail < length ? avail : length;
  /* The end: no more writes, or the call is over (a server sends its
   * failure's trailers then; a client's stream is reset first). */
  eof = n == avail && (st->write_closed || st->done);
  st->promised += n;
  pthread_mutex_unlock(&st->lock);
  if (n == 0 && !eof)
    return NGHTTP2_ERR_DEFERRED;
  *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  if (eof)
    *data_flags |= NGHTTP2_DATA_FLAG_EOF | ep->ops->body_end(ep);
  return (ssize_t)n;
}

nghttp2_data_provider cgrpc__ep_provider(cgrpc__ep *ep) {
  nghttp2_data_provider prd;
  prd.source.ptr = ep;
  prd.read_callback = provider_read;
  return prd;
}

static size_t body_take(void *source, uint8_t *dst, size_t len) {
  cgrpc__ep *ep = source;
  int due;
  size_t n = cgrpc__stream_take_body(&ep->st, dst, len, &due);
  if (due)
    cgrpc__ep_defer_notify(ep);
  return n;
}

const cgrpc__h2_body_ops cgrpc__ep_body = {body_take};

void cgrpc__ep_stop(cgrpc__ep *ep) {
  int notify;
  pthread_mutex_lock(&ep->st.lock);
  cgrpc__stream_drop_unpromised(&ep->st);
  cgrpc__stream_drop_kept(&ep->st);
  ep->st.done = 1;
  cgrpc__stream_wake(&ep->st);
  notify = ep->async || ep->read_pending || ep->st.async_pending;
  pthread_mutex_unlock(&ep->st.lock);
  if (notify)
    cgrpc__ep_defer_notify(ep);
}

void cgrpc__ep_push_received(cgrpc__ep *ep, cgrpc__msg *m) {
  int notify;
  if (ep->unary_recv) {
    if (!ep->unary_msg)
      ep->unary_msg = m;
    else
      cgrpc__free(m);
    return;
  }
  pthread_mutex_lock(&ep->st.lock);
  cgrpc__msgq_push(&ep->st.recvq, m);
  cgrpc__stream_wake(&ep->st);
  notify = ep->read_pending;
  pthread_mutex_unlock(&ep->st.lock);
  if (notify)
    cgrpc__ep_defer_notify(ep);
}

/* ---- the application's side ---- */

int cgrpc__ep_write(cgrpc__ep *ep, cgrpc__msg *m, int blocking) {
  cgrpc__stream *st = &ep->st;
  int rv = 0, post = 0;
  pthread_mutex_lock(&st->lock);
  if (blocking)
    while (st->sendq.bytes >= st->send_limit && !st->done)
      cgrpc__stream_wait(st);
  if (st->done)
    rv = CGRPC_ERR_CLOSED;
  else if (st->write_closed || (!blocking && st->async_pending))
    rv = CGRPC_ERR_INVALID_STATE;
  if (rv == 0) {
    m->seq = ++st->send_seq;
    cgrpc__msgq_push(&st->sendq, m);
    if (!blocking) {
      st->async_pending = 1;
      st->async_seq = m->seq;
    }
    post = cgrpc__ep_want_kick(ep, CGRPC__EP_REQ_SEND);
  }
  pthread_mutex_unlock(&st->lock);
  if (post)
    cgrpc__ep_post_kick(ep);
  return rv;
}

int cgrpc__ep_close_writes(cgrpc__ep *ep) {
  int rv = 0, post = 0;
  pthread_mutex_lock(&ep->st.lock);
  if (ep->st.write_closed)
    rv = CGRPC_ERR_INVALID_STATE;
  else {
    ep->st.write_closed = 1;
    post = cgrpc__ep_want_kick(ep, CGRPC__EP_REQ_SEND);
  }
  pthread_mutex_unlock(&ep->st.lock);
  if (post)
    cgrpc__ep_post_kick(ep);
  return rv;
}

cgrpc__msg *cgrpc__ep_read_wait(cgrpc__ep *ep) {
  cgrpc__stream *st = &ep->st;
  cgrpc__msg *m;
  int post;
  pthread_mutex_lock(&st->lock);
  while (!st->recvq.head && !st->read_closed && !st->done)
    cgrpc__stream_wait(st);
  m = cgrpc__msgq_pop(&st->recvq);
  ep->last_compressed = m ? m->compressed : 0;
  post = cgrpc__ep_release_recv(ep);
  pthread_mutex_unlock(&st->lock);
  if (post)
    cgrpc__ep_post_kick(ep);
  return m;
}

int cgrpc__ep_read_async(cgrpc__ep *ep) {
  int rv = 0, post = 0, on_loop = cgrpc__loop_in_thread(ep->loop);
  pthread_mutex_lock(&ep->st.lock);
  if (ep->read_pending || ep->reads_ended)
    rv = CGRPC_ERR_INVALID_STATE;
  else {
    ep->read_pending = 1;
    if (!on_loop)
      post = cgrpc__ep_want_kick(ep, CGRPC__EP_REQ_NOTIFY);
  }
  pthread_mutex_unlock(&ep->st.lock);
  /* From another thread, only the kick's reference keeps |ep| now. */
  if (post)
    cgrpc__ep_post_kick(ep);
  else if (rv == 0 && on_loop)
    cgrpc__ep_defer_notify(ep); /* the caller's reference holds it */
  return rv;
}

/* A message still compressed: inflated within the receive limit, then
 * decoded.  The failure's message is static: from a reader's thread,
 * cgrpc__ep_fail_any() keeps only the pointer. */
static CGRPC__COLD ProtobufCMessage *decode_deflated(cgrpc__ep *ep,
                                                     cgrpc__msg *m) {
  ProtobufCMessage *msg = NULL;
  uint8_t *plain;
  size_t n;
  int rv = cgrpc__decompress(m->deflated, m->data, m->len, ep->max_recv, 0,
                             &plain, &n);
  cgrpc__free(m);
  switch (rv) {
  case 0:
    msg = protobuf_c_message_unpack(ep->recv_desc, NULL, n, plain);
    cgrpc__free(plain);
    break;
  case CGRPC_ERR_TOO_LARGE:
    cgrpc__ep_fail_any(ep, CGRPC_STATUS_RESOURCE_EXHAUSTED,
                       "decompressed message larger than the receive limit "
                       "(max_receive_message_length)");
    break;
  case CGRPC_ERR_NOMEM:
    cgrpc__ep_fail_any(ep, CGRPC_STATUS_RESOURCE_EXHAUSTED,
                       "out of memory decompressing a message");
    break;
  default:
    cgrpc__ep_fail_any(ep, CGRPC_STATUS_INTERNAL,
                       "could not decompress a message");
    break;
  }
  return msg;
}

ProtobufCMessage *cgrpc__ep_decode(cgrpc__ep *ep, cgrpc__msg *m) {
  ProtobufCMessage *msg;
  if (m->deflated)
    return decode_deflated(ep, m);
  msg = protobuf_c_message_unpack(ep->recv_desc, NULL, m->len, m->data);
  cgrpc__free(m);
  return msg;
}
