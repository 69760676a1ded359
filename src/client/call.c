/* SPDX-License-Identifier: MIT */
/*
 * Client calls: start from any thread, run on the channel's loop, complete
 * through the user's callback, or, in the blocking forms, wake the waiting
 * thread.  Unary calls carry one serialized request and collect one reply;
 * streaming calls move messages through the bounded queues of call/stream.c.
 */
#include <stdio.h>
#include <string.h>

#include "call/metadata.h"
#include "call/wire.h"
#include "cgrpc/error.h"
#include "cgrpc/version.h"
#include "client/internal.h"
#include "util/clock.h"
#include "util/mem.h"
#include "util/timeout.h"

#define LIT_EQ CGRPC__LIT_EQ

/* Largest response header list (headers + trailers) a call stores; a
 * larger one resets the stream. */
#define MAX_HEADER_BYTES (64 * 1024)

void cgrpc__channel_enqueue(cgrpc_channel *ch, struct cgrpc_call *call);
void cgrpc__channel_conn_goaway(cgrpc__client_conn *conn);
void cgrpc__call_submit(cgrpc_call *call);
void cgrpc__call_fail(cgrpc_call *call, cgrpc_status_code code,
                      const char *message);
void cgrpc__client_conn_lost(cgrpc__client_conn *conn, cgrpc_status_code code,
                             const char *why);
nghttp2_session_callbacks *cgrpc__client_callbacks(void);

static void call_unref(cgrpc_call *call) {
  if (atomic_fetch_sub(&call->refs, 1) != 1)
    return;
  cgrpc__hdrs_free(&call->hdrs);
  cgrpc__deframer_free(&call->deframer);
  cgrpc__free(call->request);
  cgrpc__free(call->response);
  cgrpc_status_clear(&call->status);
  if (call->st) {
    cgrpc__stream_free(call->st);
    cgrpc__free(call->st);
  }
  cgrpc__free(call);
}

void cgrpc_call_unref(cgrpc_call *call) {
  if (call)
    call_unref(call);
}

static void call_unlink(cgrpc_call *call) {
  if (!call->linked)
    return;
  call->linked = 0;
  if (call->prev)
    call->prev->next = call->next;
  else if (call->conn)
    call->conn->calls = call->next;
  else
    call->ch->pending = call->next;
  if (call->next)
    call->next->prev = call->prev;
  call->prev = call->next = NULL;
}

static void call_link(cgrpc_call **head, cgrpc_call *call) {
  call->prev = NULL;
  call->next = *head;
  if (*head)
    (*head)->prev = call;
  *head = call;
  call->linked = 1;
}

static int set_message(cgrpc_call *call, const char *message) {
  size_t n;
  cgrpc__free(call->status.message);
  call->status.message = NULL;
  if (!message)
    return 0;
  n = strlen(message) + 1;
  call->status.message = cgrpc__malloc(n);
  if (!call->status.message)
    return CGRPC_ERR_NOMEM;
  memcpy(call->status.message, message, n);
  return 0;
}

/* Delivers the outcome once: stops the timer, detaches from the stream and
 * wakes or calls the user.  The loop's reference goes with it (for async
 * streams, once on_done has run). */
static void call_complete(cgrpc_call *call, ProtobufCMessage *reply) {
  cgrpc_channel *ch = call->ch;
  if (call->completed)
    return;
  call->completed = 1;
  cgrpc__loop_timer_stop(ch->loop, &call->deadline_timer);
  call_unlink(call);
  if (call->conn && call->stream_id > 0 && !call->conn->h2.closed)
    nghttp2_session_set_stream_user_data(call->conn->h2.session,
                                         call->stream_id, NULL);
  if (!call->st) {
    call->done(call, &call->status, reply, call->user_data);
    call_unref(call);
    return;
  }
  pthread_mutex_lock(&call->st->lock);
  call->st->done = 1;
  call->st->read_closed = 1;
  pthread_cond_broadcast(&call->st->cond);
  pthread_mutex_unlock(&call->st->lock);
  if (call->async)
    cgrpc__loop_defer(ch->loop, &call->notify);
  else
    call_unref(call);
}

void cgrpc__call_fail(cgrpc_call *call, cgrpc_status_code code,
                      const char *message) {
  if (call->completed)
    return;
  if (call->conn && call->stream_id > 0 && !call->conn->h2.closed) {
    nghttp2_submit_rst_stream(call->conn->h2.session, NGHTTP2_FLAG_NONE,
                              call->stream_id, NGHTTP2_CANCEL);
    cgrpc__h2conn_schedule_flush(&call->conn->h2);
  }
  call->status.code = code;
  set_message(call, message);
  call_complete(call, NULL);
}

void cgrpc__client_conn_lost(cgrpc__client_conn *conn, cgrpc_status_code code,
                             const char *why) {
  while (conn->calls) {
    cgrpc_call *call = conn->calls;
    call->stream_id = -1; /* nothing to reset on a dead connection */
    cgrpc__call_fail(call, code, why);
  }
}

/* ---- sending ---- */

/* The request body: nghttp2 is told how much there is (no copy here); the
 * connection takes the bytes through cgrpc__client_body. */
static ssize_t request_read(nghttp2_session *session, int32_t stream_id,
                            uint8_t *buf, size_t length, uint32_t *data_flags,
                            nghttp2_data_source *source, void *user_data) {
  cgrpc_call *call = source->ptr;
  size_t n = call->request_len - call->request_off;
  (void)session;
  (void)stream_id;
  (void)buf;
  (void)user_data;
  if (n > length)
    n = length;
  *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  if (call->request_off + n == call->request_len)
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t)n;
}

/* The request body of a streaming call: whatever the writers queued. */
static ssize_t stream_read(nghttp2_session *session, int32_t stream_id,
                           uint8_t *buf, size_t length, uint32_t *data_flags,
                           nghttp2_data_source *source, void *user_data) {
  cgrpc_call *call = source->ptr;
  cgrpc__stream *st = call->st;
  size_t n;
  (void)session;
  (void)stream_id;
  (void)buf;
  (void)user_data;
  pthread_mutex_lock(&st->lock);
  n = st->sendq.bytes < length ? st->sendq.bytes : length;
  if (n == st->sendq.bytes && st->write_closed)
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  pthread_mutex_unlock(&st->lock);
  if (n == 0 && !(*data_flags & NGHTTP2_DATA_FLAG_EOF))
    return NGHTTP2_ERR_DEFERRED;
  *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  return (ssize_t)n;
}

static int body_peek(void *source, struct iovec *iov, int max, size_t len) {
  cgrpc_call *call = source;
  if (call->st)
    return cgrpc__stream_peek_send(call->st, iov, max, len);
  iov[0].iov_base = call->request + call->request_off;
  iov[0].iov_len = len;
  return 1;
}

static void body_consume(void *source, size_t len) {
  cgrpc_call *call = source;
  if (!call->st)
    call->request_off += len;
  else if (cgrpc__stream_consume_send(call->st, len))
    cgrpc__loop_defer(call->ch->loop, &call->notify);
}

/* How the connection reads request bodies (see h2/conn.h). */
const cgrpc__h2_body_ops cgrpc__client_body = {body_peek, body_consume};

void cgrpc__call_submit(cgrpc_call *call) {
  cgrpc__client_conn *conn = call->ch->conn;
  nghttp2_data_provider prd;
  int32_t id;
  call_unlink(call);
  if (call->deadline_ns) {
    char buf[CGRPC__TIMEOUT_BUFLEN];
    int64_t left = call->deadline_ns - cgrpc__now_ns();
    size_t n = cgrpc__timeout_format(buf, left);
    cgrpc__hdrs_add_copy(&call->hdrs, "grpc-timeout", buf, n);
  }
  if (call->hdrs.failed) {
    cgrpc__call_fail(call, CGRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  prd.source.ptr = call;
  prd.read_callback = call->st ? stream_read : request_read;
  id = nghttp2_submit_request(conn->h2.session, NULL, call->hdrs.nv,
                              call->hdrs.len, &prd, call);
  if (id < 0) {
    cgrpc__call_fail(call, CGRPC_STATUS_UNAVAILABLE, nghttp2_strerror(id));
    return;
  }
  /* The header list has been copied by nghttp2. */
  cgrpc__hdrs_free(&call->hdrs);
  cgrpc__hdrs_init(&call->hdrs);
  call->stream_id = id;
  call->conn = conn;
  call_link(&conn->calls, call);
  cgrpc__h2conn_schedule_flush(&conn->h2);
}

static void deadline_fired(void *user_data) {
  cgrpc__call_fail(user_data, CGRPC_STATUS_DEADLINE_EXCEEDED,
                   "Deadline Exceeded");
}

static void start_task(void *user_data) {
  cgrpc_call *call = user_data;
  cgrpc_channel *ch = call->ch;
  if (call->early_code != CGRPC_STATUS_OK) {
    cgrpc__call_fail(call, call->early_code, call->early_message);
    return;
  }
  if (call->completed) /* cancelled before it started */
    return;
  if (call->deadline_ns) {
    if (call->deadline_ns <= cgrpc__now_ns()) {
      cgrpc__call_fail(call, CGRPC_STATUS_DEADLINE_EXCEEDED,
                       "Deadline Exceeded");
      return;
    }
    cgrpc__loop_timer_start(ch->loop, &call->deadline_timer, call->deadline_ns);
  }
  cgrpc__channel_enqueue(ch, call);
}

static void cancel_task(void *user_data) {
  cgrpc_call *call = user_data;
  cgrpc__call_fail(call, CGRPC_STATUS_CANCELLED, "Cancelled");
  call_unref(call);
}

void cgrpc_call_cancel(cgrpc_call *call) {
  if (!call)
    return;
  atomic_fetch_add(&call->refs, 1);
  if (cgrpc__loop_post(call->ch->loop, cancel_task, call) != 0)
    call_unref(call);
}

void cgrpc_call_take_status(cgrpc_call *call, cgrpc_status *dst) {
  if (!call || !dst)
    return;
  *dst = call->status;
  memset(&call->status, 0, sizeof call->status);
}

/* Builds the request headers in the caller's thread. */
static int call_prepare_headers(cgrpc_call *call,
                                const cgrpc_call_options *opts) {
  cgrpc_channel *ch = call->ch;
  cgrpc__hdrs *h = &call->hdrs;
  cgrpc__hdrs_init(h);
  CGRPC__HDRS_ADD_LIT(h, ":method", "POST");
  CGRPC__HDRS_ADD_LIT(h, ":scheme", "http");
  cgrpc__hdrs_add(h, ":path", 5, call->method->path, strlen(call->method->path));
  cgrpc__hdrs_add(h, ":authority", 10, ch->authority, strlen(ch->authority));
  CGRPC__HDRS_ADD_LIT(h, "te", "trailers");
  CGRPC__HDRS_ADD_LIT(h, "content-type", "application/grpc");
  CGRPC__HDRS_ADD_LIT(h, "user-agent", "grpc-c-cgrpc/" CGRPC_VERSION);
  CGRPC__HDRS_ADD_LIT(h, "grpc-accept-encoding", "identity");
  if (opts && opts->metadata)
    cgrpc__hdrs_add_metadata(h, opts->metadata);
  if (opts && opts->timeout_ms > 0)
    call->deadline_ns = cgrpc__now_ns() + opts->timeout_ms * 1000000;
  return h->failed ? CGRPC_ERR_NOMEM : 0;
}

static cgrpc_call *call_new(cgrpc_channel *ch, const cgrpc_method_desc *method,
                            int refs) {
  cgrpc_call *call = cgrpc__calloc(1, sizeof *call);
  if (!call)
    return NULL;
  atomic_init(&call->refs, refs);
  call->ch = ch;
  call->method = method;
  cgrpc__timer_init(&call->deadline_timer, deadline_fired, call);
  cgrpc__deframer_init(&call->deframer, ch->opts.max_recv);
  return call;
}

/* Posts the call's start to the loop unless the channel is closing. */
static int call_post_start(cgrpc_call *call) {
  cgrpc_channel *ch = call->ch;
  int rv;
  pthread_mutex_lock(&ch->lock);
  rv = ch->closing ? CGRPC_ERR_CLOSED
                   : cgrpc__loop_post(ch->loop, start_task, call);
  pthread_mutex_unlock(&ch->lock);
  return rv;
}

int cgrpc_unary_start(cgrpc_channel *ch, const cgrpc_method_desc *method,
                      const ProtobufCMessage *request,
                      const cgrpc_call_options *opts, cgrpc_unary_done_cb done,
                      void *user_data, cgrpc_call **call_ptr) {
  cgrpc_call *call;
  int rv;
  if (!ch || !method || !method->path || !method->output || !request ||
      !done)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (method->kind != CGRPC_METHOD_UNARY ||
      (method->input && request->descriptor != method->input))
    return CGRPC_ERR_INVALID_ARGUMENT;
  call = call_new(ch, method, call_ptr ? 2 : 1);
  if (!call)
    return CGRPC_ERR_NOMEM;
  call->done = done;
  call->user_data = user_data;
  rv = call_prepare_headers(call, opts);
  if (rv == 0) {
    int err = 0;
    call->request = cgrpc__pack_framed(request, ch->opts.max_send, 0,
                                       &call->request_len, &err);
    if (err == CGRPC_ERR_TOO_LARGE) {
      call->early_code = CGRPC_STATUS_RESOURCE_EXHAUSTED;
      call->early_message = "request message larger than the send limit";
    } else if (!call->request) {
      rv = CGRPC_ERR_NOMEM;
    }
  }
  if (rv == 0)
    rv = call_post_start(call);
  if (rv != 0) {
    atomic_store(&call->refs, 1);
    call_unref(call);
    return rv;
  }
  if (call_ptr)
    *call_ptr = call;
  return 0;
}

/* ---- the blocking unary form ---- */

typedef struct sync_wait {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int done;
  cgrpc_status status;
  ProtobufCMessage *reply;
} sync_wait;

static void sync_done(cgrpc_call *call, const cgrpc_status *status,
                      ProtobufCMessage *reply, void *user_data) {
  sync_wait *w = user_data;
  (void)status;
  pthread_mutex_lock(&w->lock);
  cgrpc_call_take_status(call, &w->status);
  w->reply = reply;
  w->done = 1;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->lock);
}

static cgrpc_status_code misuse(cgrpc_status *status, cgrpc_status_code code,
                                const char *message) {
  if (status) {
    size_t n = strlen(message) + 1;
    memset(status, 0, sizeof *status);
    status->code = code;
    status->message = cgrpc__malloc(n);
    if (status->message)
      memcpy(status->message, message, n);
  }
  return code;
}

cgrpc_status_code cgrpc_unary_call(cgrpc_channel *ch,
                                   const cgrpc_method_desc *method,
                                   const ProtobufCMessage *request,
                                   ProtobufCMessage **reply,
                                   const cgrpc_call_options *opts,
                                   cgrpc_status *status) {
  sync_wait w;
  int rv;
  if (reply)
    *reply = NULL;
  if (!ch || !method || !request || !reply)
    return misuse(status, CGRPC_STATUS_INVALID_ARGUMENT,
                  "cgrpc_unary_call: channel, method, request and reply "
                  "must not be NULL");
  if (cgrpc__in_any_loop_thread())
    return misuse(status, CGRPC_STATUS_FAILED_PRECONDITION,
                  "blocking call made from a cgrpc callback or loop thread; "
                  "use the async form there");
  memset(&w, 0, sizeof w);
  pthread_mutex_init(&w.lock, NULL);
  pthread_cond_init(&w.cond, NULL);
  rv = cgrpc_unary_start(ch, method, request, opts, sync_done, &w, NULL);
  if (rv != 0) {
    pthread_mutex_destroy(&w.lock);
    pthread_cond_destroy(&w.cond);
    if (rv == CGRPC_ERR_INVALID_ARGUMENT)
      return misuse(status, CGRPC_STATUS_INVALID_ARGUMENT,
                    "request type does not match the method, or the method "
                    "is not unary");
    return misuse(status,
                  rv == CGRPC_ERR_CLOSED ? CGRPC_STATUS_CANCELLED
                                         : CGRPC_STATUS_RESOURCE_EXHAUSTED,
                  cgrpc_strerror(rv));
  }
  pthread_mutex_lock(&w.lock);
  while (!w.done)
    pthread_cond_wait(&w.cond, &w.lock);
  pthread_mutex_unlock(&w.lock);
  pthread_mutex_destroy(&w.lock);
  pthread_cond_destroy(&w.cond);
  *reply = w.reply;
  if (status)
    *status = w.status;
  else
    cgrpc_status_clear(&w.status);
  return w.status.code;
}

/* ---- streaming calls ---- */

static void notify_run(void *user_data);

/* Loop task: resume the request body, give back consumed window, deliver
 * async callbacks. */
static void kick_task(void *user_data) {
  cgrpc_call *call = user_data;
  cgrpc__stream *st = call->st;
  size_t consume;
  pthread_mutex_lock(&st->lock);
  st->kick_pending = 0;
  consume = st->to_consume;
  st->to_consume = 0;
  pthread_mutex_unlock(&st->lock);
  if (call->conn && call->stream_id > 0 && !call->conn->h2.closed) {
    nghttp2_session *session = call->conn->h2.session;
    if (consume)
      nghttp2_session_consume(session, call->stream_id, consume);
    if (!call->completed)
      nghttp2_session_resume_data(session, call->stream_id);
    cgrpc__h2conn_schedule_flush(&call->conn->h2);
  } else if (consume && call->conn && !call->conn->h2.closed) {
    nghttp2_session_consume_connection(call->conn->h2.session, consume);
    cgrpc__h2conn_schedule_flush(&call->conn->h2);
  }
  if (call->async)
    notify_run(call);
  call_unref(call);
}

/* Asks the loop to look at the call (any thread). */
static void call_kick(cgrpc_call *call) {
  atomic_fetch_add(&call->refs, 1);
  if (cgrpc__loop_post(call->ch->loop, kick_task, call) != 0)
    call_unref(call);
}

/* Decodes a received message; NULL when it does not parse. */
static ProtobufCMessage *decode(cgrpc_call *call, cgrpc__msg *m) {
  ProtobufCMessage *msg =
      protobuf_c_message_unpack(call->method->output, NULL, m->len, m->data);
  cgrpc__free(m);
  return msg;
}

typedef struct fail_req {
  cgrpc_call *call;
  cgrpc_status_code code;
  const char *message; /* static */
} fail_req;

static void fail_task(void *user_data) {
  fail_req *f = user_data;
  cgrpc__call_fail(f->call, f->code, f->message);
  call_unref(f->call);
  cgrpc__free(f);
}

/* Ends |call| with |code| from any thread (on the loop, in order). */
static void post_fail(cgrpc_call *call, cgrpc_status_code code,
                      const char *message) {
  fail_req *f;
  if (cgrpc__loop_in_thread(call->ch->loop)) {
    cgrpc__call_fail(call, code, message);
    return;
  }
  f = cgrpc__malloc(sizeof *f);
  if (!f)
    return; /* the call still ends: by deadline, cancel or the server */
  f->call = call;
  f->code = code;
  f->message = message;
  atomic_fetch_add(&call->refs, 1);
  if (cgrpc__loop_post(call->ch->loop, fail_task, f) != 0) {
    call_unref(call);
    cgrpc__free(f);
  }
}

static void fail_decode(cgrpc_call *call) {
  post_fail(call, CGRPC_STATUS_INTERNAL,
            "could not decode a response message");
}

/* Takes the next received message (st->lock held); kicks the loop when
 * window can be given back. */
static cgrpc__msg *take_received(cgrpc_call *call, int *kick) {
  cgrpc__msg *m = cgrpc__msgq_pop(&call->st->recvq);
  *kick = cgrpc__stream_release_recv(call->st);
  return m;
}

/* Delivers what async callbacks are due (loop thread). */
static void notify_run(void *user_data) {
  cgrpc_call *call = user_data;
  cgrpc__stream *st = call->st;
  for (;;) {
    int kick = 0;
    pthread_mutex_lock(&st->lock);
    if (call->read_pending && (st->recvq.head || st->read_closed || st->done)) {
      cgrpc__msg *m = take_received(call, &kick);
      ProtobufCMessage *msg = NULL;
      call->read_pending = 0;
      pthread_mutex_unlock(&st->lock);
      if (kick)
        call_kick(call);
      if (m) {
        msg = decode(call, m);
        if (!msg)
          fail_decode(call);
      }
      if (call->cbs.on_read)
        call->cbs.on_read(call, msg, call->user_data);
      else if (msg)
        protobuf_c_message_free_unpacked(msg, NULL);
      continue;
    }
    int ok;
    if (cgrpc__stream_async_write_due(st, &ok)) {
      pthread_mutex_unlock(&st->lock);
      if (call->cbs.on_write_done)
        call->cbs.on_write_done(call, ok, call->user_data);
      continue;
    }
    if (st->done && !call->read_pending && !st->async_pending &&
        !call->done_delivered) {
      call->done_delivered = 1;
      pthread_mutex_unlock(&st->lock);
      if (call->cbs.on_done)
        call->cbs.on_done(call, &call->status, call->user_data);
      /* A callback may have deferred this function again (read_async from
       * on_read): without the loop's reference it would run on a call the
       * application may have freed by then. */
      cgrpc__loop_undefer(call->ch->loop, &call->notify);
      call_unref(call); /* the loop's reference */
      return;
    }
    pthread_mutex_unlock(&st->lock);
    return;
  }
}

static int stream_open(cgrpc_channel *ch, const cgrpc_method_desc *method,
                       const cgrpc_call_options *opts,
                       const cgrpc_call_callbacks *cbs, void *user_data,
                       cgrpc_call **call_ptr) {
  cgrpc_call *call;
  int rv;
  if (!ch || !method || !method->path || !method->output || !call_ptr)
    return CGRPC_ERR_INVALID_ARGUMENT;
  *call_ptr = NULL;
  call = call_new(ch, method, 2);
  if (!call)
    return CGRPC_ERR_NOMEM;
  call->st = cgrpc__malloc(sizeof *call->st);
  if (!call->st) {
    atomic_store(&call->refs, 1);
    call_unref(call);
    return CGRPC_ERR_NOMEM;
  }
  cgrpc__stream_init(call->st, CGRPC__STREAM_SEND_LIMIT, CGRPC__STREAM_RECV_LIMIT);
  cgrpc__stream_deframer_init(&call->deframer);
  call->notify.cb = notify_run;
  call->notify.user_data = call;
  if (cbs) {
    call->async = 1;
    call->cbs = *cbs;
    call->user_data = user_data;
  }
  rv = call_prepare_headers(call, opts);
  if (rv == 0)
    rv = call_post_start(call);
  if (rv != 0) {
    atomic_store(&call->refs, 1);
    call_unref(call);
    return rv;
  }
  *call_ptr = call;
  return 0;
}

int cgrpc_call_open(cgrpc_channel *channel, const cgrpc_method_desc *method,
                    const cgrpc_call_options *opts, cgrpc_call **call_ptr) {
  return stream_open(channel, method, opts, NULL, NULL, call_ptr);
}

int cgrpc_call_open_async(cgrpc_channel *channel,
                          const cgrpc_method_desc *method,
                          const cgrpc_call_options *opts,
                          const cgrpc_call_callbacks *cbs, void *user_data,
                          cgrpc_call **call_ptr) {
  static const cgrpc_call_callbacks none = {NULL, NULL, NULL};
  return stream_open(channel, method, opts, cbs ? cbs : &none, user_data,
                     call_ptr);
}

/* Queues one message; |blocking| waits for room. */
static int stream_write(cgrpc_call *call, const ProtobufCMessage *msg,
                        int blocking) {
  cgrpc__stream *st;
  cgrpc__msg *m;
  int rv, kick;
  if (!call || !call->st || !msg ||
      (call->method->input && msg->descriptor != call->method->input))
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (blocking && cgrpc__in_any_loop_thread())
    return CGRPC_ERR_WOULD_DEADLOCK;
  st = call->st;
  m = cgrpc__msg_pack(msg, call->ch->opts.max_send, &rv);
  if (!m) {
    if (rv == CGRPC_ERR_TOO_LARGE)
      post_fail(call, CGRPC_STATUS_RESOURCE_EXHAUSTED,
                "request message larger than the send limit");
    return rv;
  }
  rv = cgrpc__stream_push_send(st, m, blocking, &kick);
  if (rv != 0) {
    cgrpc__free(m);
    return rv;
  }
  if (kick)
    call_kick(call);
  return 0;
}

int cgrpc_call_write(cgrpc_call *call, const ProtobufCMessage *msg) {
  return stream_write(call, msg, 1);
}

int cgrpc_call_write_async(cgrpc_call *call, const ProtobufCMessage *msg) {
  if (call && !call->async)
    return CGRPC_ERR_INVALID_STATE;
  return stream_write(call, msg, 0);
}

int cgrpc_call_writes_done(cgrpc_call *call) {
  cgrpc__stream *st;
  int rv = 0, kick = 0;
  if (!call || !call->st)
    return CGRPC_ERR_INVALID_ARGUMENT;
  st = call->st;
  pthread_mutex_lock(&st->lock);
  if (st->write_closed)
    rv = CGRPC_ERR_INVALID_STATE;
  else {
    st->write_closed = 1;
    kick = cgrpc__stream_want_kick(st);
  }
  pthread_mutex_unlock(&st->lock);
  if (kick)
    call_kick(call);
  return rv;
}

int cgrpc_call_read(cgrpc_call *call, ProtobufCMessage **msg) {
  cgrpc__stream *st;
  cgrpc__msg *m;
  int kick;
  if (!msg)
    return CGRPC_ERR_INVALID_ARGUMENT;
  *msg = NULL;
  if (!call || !call->st || call->async)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (cgrpc__in_any_loop_thread())
    return CGRPC_ERR_WOULD_DEADLOCK;
  st = call->st;
  pthread_mutex_lock(&st->lock);
  while (!st->recvq.head && !st->read_closed && !st->done)
    pthread_cond_wait(&st->cond, &st->lock);
  m = take_received(call, &kick);
  pthread_mutex_unlock(&st->lock);
  if (kick)
    call_kick(call);
  if (!m)
    return 0;
  *msg = decode(call, m);
  if (!*msg) {
    fail_decode(call);
    return 0;
  }
  return 1;
}

int cgrpc_call_read_async(cgrpc_call *call) {
  int rv = 0;
  if (!call || !call->st || !call->async)
    return CGRPC_ERR_INVALID_ARGUMENT;
  pthread_mutex_lock(&call->st->lock);
  if (call->read_pending || call->done_delivered)
    rv = CGRPC_ERR_INVALID_STATE;
  else
    call->read_pending = 1;
  pthread_mutex_unlock(&call->st->lock);
  if (rv == 0) {
    if (cgrpc__loop_in_thread(call->ch->loop))
      cgrpc__loop_defer(call->ch->loop, &call->notify);
    else
      call_kick(call);
  }
  return rv;
}

const cgrpc_metadata_array *cgrpc_call_initial_metadata(cgrpc_call *call) {
  cgrpc__stream *st;
  const cgrpc_metadata_array *md;
  if (!call || !call->st || cgrpc__in_any_loop_thread())
    return NULL;
  st = call->st;
  pthread_mutex_lock(&st->lock);
  while (!call->headers_received && !st->done)
    pthread_cond_wait(&st->cond, &st->lock);
  md = call->headers_received ? call->status.initial_metadata : NULL;
  pthread_mutex_unlock(&st->lock);
  return md;
}

/* A copy of |md| (NULL for NULL, or when out of memory). */
static cgrpc_metadata_array *copy_metadata(const cgrpc_metadata_array *md) {
  cgrpc_metadata_array *copy;
  size_t i, n = cgrpc_metadata_array_count(md);
  if (!md || cgrpc_metadata_array_new(&copy) != 0)
    return NULL;
  for (i = 0; i < n; i++) {
    const char *key;
    const uint8_t *value;
    size_t len;
    cgrpc_metadata_array_at(md, i, &key, &value, &len);
    if (cgrpc__metadata_array_add_raw(copy, key, strlen(key), value, len) != 0) {
      cgrpc_metadata_array_del(copy);
      return NULL;
    }
  }
  return copy;
}

cgrpc_status_code cgrpc_call_finish(cgrpc_call *call, cgrpc_status *status) {
  cgrpc__stream *st;
  cgrpc_status_code code;
  if (!call || !call->st)
    return misuse(status, CGRPC_STATUS_INVALID_ARGUMENT,
                  "cgrpc_call_finish: not a streaming call");
  if (call->async || cgrpc__in_any_loop_thread())
    return misuse(status, CGRPC_STATUS_FAILED_PRECONDITION,
                  "cgrpc_call_finish: blocking wait on an async call or "
                  "from a library thread");
  st = call->st;
  cgrpc_call_writes_done(call); /* no-op when already done */
  pthread_mutex_lock(&st->lock);
  while (!st->done) {
    int kick = 0;
    if (st->recvq.head) {
      /* Drop what the caller will not read, and give its window back: a
       * server with more to send would otherwise wait for ever. */
      cgrpc__msgq_clear(&st->recvq);
      kick = cgrpc__stream_release_recv(st);
    }
    if (kick) {
      pthread_mutex_unlock(&st->lock);
      call_kick(call);
      pthread_mutex_lock(&st->lock);
      continue;
    }
    pthread_cond_wait(&st->cond, &st->lock);
  }
  pthread_mutex_unlock(&st->lock);
  code = call->status.code;
  if (status) {
    /* cgrpc_call_initial_metadata() promised its array until the call is
     * released: the call keeps it, and |status| gets a copy. */
    cgrpc_metadata_array *initial = call->status.initial_metadata;
    cgrpc_call_take_status(call, status);
    call->status.initial_metadata = initial;
    status->initial_metadata = copy_metadata(initial);
  }
  return code;
}

cgrpc_status_code cgrpc_call_finish_with_reply(cgrpc_call *call,
                                               ProtobufCMessage **reply,
                                               cgrpc_status *status) {
  ProtobufCMessage *msg = NULL, *extra = NULL;
  cgrpc_status st;
  const char *problem = NULL;
  if (reply)
    *reply = NULL;
  if (!call || !call->st || !reply)
    return misuse(status, CGRPC_STATUS_INVALID_ARGUMENT,
                  "cgrpc_call_finish_with_reply: NULL call or reply");
  cgrpc_call_writes_done(call); /* no-op when already done */
  if (cgrpc_call_read(call, &msg) == 1 && cgrpc_call_read(call, &extra) == 1) {
    protobuf_c_message_free_unpacked(extra, NULL);
    cgrpc_call_cancel(call);
    problem = "client-streaming call got more than one response";
  }
  cgrpc_call_finish(call, &st);
  if (st.code == CGRPC_STATUS_OK && (problem || !msg)) {
    cgrpc_status_clear(&st);
    misuse(&st, problem ? CGRPC_STATUS_INTERNAL : CGRPC_STATUS_UNIMPLEMENTED,
           problem ? problem
                   : "client-streaming call got no response message");
  }
  if (st.code != CGRPC_STATUS_OK && msg) {
    protobuf_c_message_free_unpacked(msg, NULL);
    msg = NULL;
  }
  *reply = msg;
  if (status)
    *status = st;
  else
    cgrpc_status_clear(&st);
  return st.code;
}

/* ---- nghttp2 callbacks ---- */

static cgrpc_call *stream_call(nghttp2_session *session, int32_t stream_id) {
  return nghttp2_session_get_stream_user_data(session, stream_id);
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame,
                     const uint8_t *name, size_t namelen, const uint8_t *value,
                     size_t valuelen, uint8_t flags, void *user_data) {
  cgrpc_call *call;
  cgrpc_metadata_array **md;
  (void)flags;
  (void)user_data;
  if (frame->hd.type != NGHTTP2_HEADERS)
    return 0;
  call = stream_call(session, frame->hd.stream_id);
  if (!call)
    return 0;
  if (frame->headers.cat == NGHTTP2_HCAT_HEADERS)
    call->in_trailers = 1;
  /* Bounds what one response's headers may make us store. */
  call->header_bytes += namelen + valuelen + 32;
  if (call->header_bytes > MAX_HEADER_BYTES)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  if (LIT_EQ(name, namelen, ":status")) {
    int st;
    if (cgrpc__wire_parse_status(value, valuelen, &st) == 0)
      call->http_status = st;
    return 0;
  }
  if (LIT_EQ(name, namelen, "grpc-status")) {
    int code;
    if (cgrpc__wire_parse_status(value, valuelen, &code) == 0) {
      call->status.code = (cgrpc_status_code)code;
      call->have_grpc_status = 1;
    }
    return 0;
  }
  if (LIT_EQ(name, namelen, "grpc-message")) {
    cgrpc__free(call->status.message);
    call->status.message = cgrpc__wire_decode_message(value, valuelen);
    return 0;
  }
  if (LIT_EQ(name, namelen, "content-type")) {
    call->bad_content_type = !cgrpc__wire_content_type_ok(value, valuelen);
    return 0;
  }
  if (cgrpc__wire_header_reserved(name, namelen))
    return 0;
  md = call->in_trailers ? &call->status.trailing_metadata
                         : &call->status.initial_metadata;
  if (!*md && cgrpc_metadata_array_new(md) != 0)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  if (cgrpc__wire_add_metadata(*md, name, namelen, value, valuelen) ==
      CGRPC_ERR_NOMEM)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  return 0;
}

/* on_message's answer for a compressed message (not a cgrpc error code). */
#define MSG_COMPRESSED 1

/* Deframer callback.  It must not fail the call itself: completing the call
 * may free it, and the deframer it is called from lives inside the call.
 * Errors go back through the deframer to on_data_chunk instead. */
static int on_message(void *user_data, int compressed, const uint8_t *data,
                      size_t len) {
  cgrpc_call *call = user_data;
  if (compressed)
    return MSG_COMPRESSED;
  if (call->st) {
    cgrpc__msg *m = cgrpc__msg_received(&call->deframer, data, len);
    if (!m)
      return CGRPC_ERR_NOMEM;
    pthread_mutex_lock(&call->st->lock);
    cgrpc__msgq_push(&call->st->recvq, m);
    pthread_cond_broadcast(&call->st->cond);
    if (call->read_pending)
      cgrpc__loop_defer(call->ch->loop, &call->notify);
    pthread_mutex_unlock(&call->st->lock);
    return 0;
  }
  if (++call->n_responses > 1)
    return 0;
  call->response = cgrpc__malloc(len ? len : 1);
  if (!call->response)
    return CGRPC_ERR_NOMEM;
  memcpy(call->response, data, len);
  call->response_len = len;
  return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags,
                         int32_t stream_id, const uint8_t *data, size_t len,
                         void *user_data) {
  cgrpc_call *call = stream_call(session, stream_id);
  size_t consume = len;
  int rv;
  (void)flags;
  (void)user_data;
  if (call) {
    rv = cgrpc__deframer_feed(&call->deframer, data, len, on_message, call);
    if (rv == CGRPC_ERR_TOO_LARGE) {
      char msg[128];
      snprintf(msg, sizeof msg, "received message larger than max (%lld bytes)",
               (long long)call->ch->opts.max_recv);
      cgrpc__call_fail(call, CGRPC_STATUS_RESOURCE_EXHAUSTED, msg);
    } else if (rv == CGRPC_ERR_PROTO) {
      cgrpc__call_fail(call, CGRPC_STATUS_INTERNAL, "bad gRPC message framing");
    } else if (rv == CGRPC_ERR_NOMEM) {
      cgrpc__call_fail(call, CGRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    } else if (rv == MSG_COMPRESSED) {
      cgrpc__call_fail(call, CGRPC_STATUS_INTERNAL,
                       "compressed response, but this client asked for "
                       "identity encoding");
    } else if (call->st && !call->completed) {
      /* Hold the window back while the reader lags. */
      pthread_mutex_lock(&call->st->lock);
      consume = cgrpc__stream_account_recv(call->st, len);
      pthread_mutex_unlock(&call->st->lock);
    }
  }
  if (consume)
    nghttp2_session_consume(session, stream_id, consume);
  return 0;
}

/* The stream ended: work out the status the way the gRPC spec says. */
static void call_finish(cgrpc_call *call, uint32_t error_code) {
  ProtobufCMessage *reply = NULL;
  char msg[160];
  if (call->have_grpc_status && !call->in_trailers &&
      !call->status.trailing_metadata) {
    /* Trailers-Only: the one HEADERS frame is the trailers. */
    call->status.trailing_metadata = call->status.initial_metadata;
    call->status.initial_metadata = NULL;
  }
  if (call->have_grpc_status) {
    if ((unsigned)call->status.code > CGRPC_STATUS_UNAUTHENTICATED)
      call->status.code = CGRPC_STATUS_UNKNOWN;
  } else if (call->http_status != 0 && call->http_status != 200) {
    call->status.code = cgrpc__wire_http_to_status(call->http_status);
    snprintf(msg, sizeof msg, "Received http2 header with status: %d",
             call->http_status);
    set_message(call, msg);
  } else if (error_code != 0) {
    call->status.code = cgrpc__wire_rst_to_status(error_code);
    snprintf(msg, sizeof msg, "Stream reset by the server (HTTP/2 error %u)",
             error_code);
    set_message(call, msg);
  } else if (call->http_status == 200 && call->bad_content_type) {
    call->status.code = CGRPC_STATUS_UNKNOWN;
    set_message(call, "response content-type is not application/grpc");
  } else {
    call->status.code = CGRPC_STATUS_INTERNAL;
    set_message(call, "server closed the stream without a grpc-status");
  }
  if (call->status.code == CGRPC_STATUS_OK &&
      !cgrpc__deframer_is_idle(&call->deframer)) {
    call->status.code = CGRPC_STATUS_INTERNAL;
    set_message(call, "response stream ended inside a message");
  }
  if (call->status.code == CGRPC_STATUS_OK && !call->st) {
    if (call->n_responses != 1) {
      call->status.code = call->n_responses == 0 ? CGRPC_STATUS_UNIMPLEMENTED
                                                 : CGRPC_STATUS_INTERNAL;
      snprintf(msg, sizeof msg,
               "unary call expected one response message, got %d",
               call->n_responses);
      set_message(call, msg);
    } else {
      reply = protobuf_c_message_unpack(call->method->output, NULL,
                                        call->response_len, call->response);
      if (!reply) {
        call->status.code = CGRPC_STATUS_INTERNAL;
        snprintf(msg, sizeof msg, "could not decode the response as %s",
                 call->method->output->name);
        set_message(call, msg);
      }
    }
  }
  call_complete(call, reply);
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id,
                           uint32_t error_code, void *user_data) {
  cgrpc_call *call = stream_call(session, stream_id);
  (void)user_data;
  if (call && !call->completed) {
    /* Window held back for a slow reader goes back to the connection. */
    if (call->st) {
      size_t held;
      pthread_mutex_lock(&call->st->lock);
      held = call->st->unconsumed + call->st->to_consume;
      call->st->unconsumed = call->st->to_consume = 0;
      pthread_mutex_unlock(&call->st->lock);
      if (held)
        nghttp2_session_consume_connection(session, held);
    }
    call->stream_id = -1; /* closed: nothing to reset */
    call_finish(call, error_code);
  }
  return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
                         void *user_data) {
  cgrpc_call *call;
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    cgrpc__channel_conn_goaway(user_data);
    return 0;
  }
  if (frame->hd.type != NGHTTP2_HEADERS ||
      frame->headers.cat != NGHTTP2_HCAT_RESPONSE ||
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
    return 0;
  call = stream_call(session, frame->hd.stream_id);
  if (call && call->st) {
    pthread_mutex_lock(&call->st->lock);
    call->headers_received = 1;
    pthread_cond_broadcast(&call->st->cond);
    pthread_mutex_unlock(&call->st->lock);
  }
  return 0;
}

static nghttp2_session_callbacks *client_cbs;
static pthread_once_t client_cbs_once = PTHREAD_ONCE_INIT;

static void client_cbs_init(void) {
  nghttp2_session_callbacks *c;
  if (nghttp2_session_callbacks_new(&c) != 0)
    return;
  nghttp2_session_callbacks_set_on_header_callback(c, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, on_data_chunk);
  nghttp2_session_callbacks_set_on_frame_recv_callback(c, on_frame_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(c, on_stream_close);
  nghttp2_session_callbacks_set_send_callback(c, cgrpc__h2conn_send_cb);
  nghttp2_session_callbacks_set_send_data_callback(c,
                                                   cgrpc__h2conn_send_data_cb);
  client_cbs = c;
}

nghttp2_session_callbacks *cgrpc__client_callbacks(void) {
  pthread_once(&client_cbs_once, client_cbs_init);
  return client_cbs;
}
