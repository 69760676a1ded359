/* SPDX-License-Identifier: MIT */
/*
 * Client calls: start from any thread, run on the channel's loop, complete
 * through the user's callback; the blocking form waits on a condition.
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

/* Delivers the outcome once: stops the timer, detaches from the stream,
 * calls the user, and drops the loop's reference. */
static void call_complete(cgrpc_call *call, ProtobufCMessage *reply) {
  cgrpc_channel *ch = call->ch;
  if (call->completed)
    return;
  call->completed = 1;
  cgrpc__loop_timer_stop(ch->loop, &call->deadline_timer);
  call_unlink(call);
  if (call->conn && call->stream_id > 0)
    nghttp2_session_set_stream_user_data(call->conn->h2.session,
                                         call->stream_id, NULL);
  call->done(call, &call->status, reply, call->user_data);
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

static ssize_t request_read(nghttp2_session *session, int32_t stream_id,
                            uint8_t *buf, size_t length, uint32_t *data_flags,
                            nghttp2_data_source *source, void *user_data) {
  cgrpc_call *call = source->ptr;
  size_t n = call->request_len - call->request_off;
  (void)session;
  (void)stream_id;
  (void)user_data;
  if (n > length)
    n = length;
  memcpy(buf, call->request + call->request_off, n);
  call->request_off += n;
  if (call->request_off == call->request_len)
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t)n;
}

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
  prd.read_callback = request_read;
  id = nghttp2_submit_request(conn->h2.session, NULL, call->hdrs.nv,
                              call->hdrs.len, &prd, call);
  if (id < 0) {
    cgrpc__call_fail(call, CGRPC_STATUS_UNAVAILABLE, nghttp2_strerror(id));
    return;
  }
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

/* Builds the request headers and message in the caller's thread. */
static int call_prepare(cgrpc_call *call, const ProtobufCMessage *request,
                        const cgrpc_call_options *opts) {
  cgrpc_channel *ch = call->ch;
  size_t size;
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
  if (h->failed)
    return CGRPC_ERR_NOMEM;
  size = protobuf_c_message_get_packed_size(request);
  if ((ch->opts.max_send >= 0 && (int64_t)size > ch->opts.max_send) ||
      size > UINT32_MAX) {
    call->early_code = CGRPC_STATUS_RESOURCE_EXHAUSTED;
    call->early_message = "request message larger than the send limit";
    return 0;
  }
  call->request = cgrpc__malloc(CGRPC__FRAME_PREFIX_LEN + size);
  if (!call->request)
    return CGRPC_ERR_NOMEM;
  cgrpc__frame_prefix(call->request, 0, (uint32_t)size);
  protobuf_c_message_pack(request, call->request + CGRPC__FRAME_PREFIX_LEN);
  call->request_len = CGRPC__FRAME_PREFIX_LEN + size;
  return 0;
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
  call = cgrpc__calloc(1, sizeof *call);
  if (!call)
    return CGRPC_ERR_NOMEM;
  atomic_init(&call->refs, call_ptr ? 2 : 1);
  call->ch = ch;
  call->method = method;
  call->done = done;
  call->user_data = user_data;
  cgrpc__timer_init(&call->deadline_timer, deadline_fired, call);
  cgrpc__deframer_init(&call->deframer, ch->opts.max_recv);
  rv = call_prepare(call, request, opts);
  if (rv == 0) {
    pthread_mutex_lock(&ch->lock);
    rv = ch->closing ? CGRPC_ERR_CLOSED
                     : cgrpc__loop_post(ch->loop, start_task, call);
    pthread_mutex_unlock(&ch->lock);
  }
  if (rv != 0) {
    atomic_store(&call->refs, 1);
    call_unref(call);
    return rv;
  }
  if (call_ptr)
    *call_ptr = call;
  return 0;
}

/* ---- the blocking form ---- */

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

int cgrpc_stream_open(cgrpc_channel *channel, const cgrpc_method_desc *method,
                      const cgrpc_call_options *opts, cgrpc_call **call_ptr) {
  (void)channel;
  (void)method;
  (void)opts;
  if (call_ptr)
    *call_ptr = NULL;
  return CGRPC_ERR_UNSUPPORTED;
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

static int on_message(void *user_data, int compressed, const uint8_t *data,
                      size_t len) {
  cgrpc_call *call = user_data;
  if (++call->n_responses > 1)
    return 0;
  if (compressed) {
    cgrpc__call_fail(call, CGRPC_STATUS_INTERNAL,
                     "compressed response, but this client asked for "
                     "identity encoding");
    return 1;
  }
  call->response = cgrpc__malloc(len ? len : 1);
  if (!call->response) {
    cgrpc__call_fail(call, CGRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return 1;
  }
  memcpy(call->response, data, len);
  call->response_len = len;
  return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags,
                         int32_t stream_id, const uint8_t *data, size_t len,
                         void *user_data) {
  cgrpc_call *call = stream_call(session, stream_id);
  int rv;
  (void)flags;
  (void)user_data;
  if (!call)
    return 0;
  rv = cgrpc__deframer_feed(&call->deframer, data, len, on_message, call);
  if (rv == CGRPC_ERR_TOO_LARGE) {
    char msg[128];
    snprintf(msg, sizeof msg,
             "received message larger than max (%lld bytes)",
             (long long)call->ch->opts.max_recv);
    cgrpc__call_fail(call, CGRPC_STATUS_RESOURCE_EXHAUSTED, msg);
  } else if (rv == CGRPC_ERR_PROTO) {
    cgrpc__call_fail(call, CGRPC_STATUS_INTERNAL, "bad gRPC message framing");
  } else if (rv == CGRPC_ERR_NOMEM) {
    cgrpc__call_fail(call, CGRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  }
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
  if (call->status.code == CGRPC_STATUS_OK) {
    if (call->n_responses != 1 || !cgrpc__deframer_is_idle(&call->deframer)) {
      call->status.code = call->n_responses == 0 ? CGRPC_STATUS_UNIMPLEMENTED
                                                 : CGRPC_STATUS_INTERNAL;
      snprintf(msg, sizeof msg,
               "unary call expected one response message, got %d%s",
               call->n_responses,
               cgrpc__deframer_is_idle(&call->deframer) ? ""
                                                         : " and a partial one");
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
    call->stream_id = -1; /* closed: nothing to reset */
    call_finish(call, error_code);
  }
  return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
                         void *user_data) {
  (void)session;
  if (frame->hd.type == NGHTTP2_GOAWAY)
    cgrpc__channel_conn_goaway(user_data);
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
  client_cbs = c;
}

nghttp2_session_callbacks *cgrpc__client_callbacks(void) {
  pthread_once(&client_cbs_once, client_cbs_init);
  return client_cbs;
}
