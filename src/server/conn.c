/* SPDX-License-Identifier: MIT */
/*
 * The server side of one HTTP/2 connection: turns nghttp2's frame callbacks
 * into gRPC calls, runs the handler (inline or on the worker pool) and
 * writes the response, trailers-only when there is no message.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "call/compress.h"
#include "call/metadata.h"
#include "call/wire.h"
#include "cgrpc/error.h"
#include "h2/hdrs.h"
#include "h2/trace.h"
#include "server/internal.h"
#include "util/clock.h"
#include "util/mem.h"
#include "util/timeout.h"

#define LIT_EQ CGRPC__LIT_EQ

/* Largest request header list accepted (names + values + 32 per field, as
 * HTTP/2 counts it); larger requests are reset.  16 KiB is advertised. */
#define MAX_HEADER_BYTES (64 * 1024)
/* A connection must complete the HTTP/2 handshake this soon. */
#define HANDSHAKE_TIMEOUT_NS (20LL * 1000000000)
/* How much of a request's rest is read and dropped after its answer, and
 * for how long (drain_start). */
#define DRAIN_BYTES ((size_t)2 * 1024 * 1024)
#define DRAIN_MS 2000

typedef struct cgrpc_server_ctx call_t;

static cgrpc__server_conn *conn_of(void *user_data) { return user_data; }

/* ---- method table ---- */

static uint32_t path_hash(const uint8_t *p, size_t n) {
  uint32_t h = 2166136261u;
  while (n--)
    h = (h ^ *p++) * 16777619u;
  return h;
}

static const cgrpc__method_entry *find_method(const cgrpc_server *server,
                                              const char *path, size_t len) {
  size_t mask, i;
  if (server->methods_cap == 0)
    return NULL;
  mask = server->methods_cap - 1;
  for (i = path_hash((const uint8_t *)path, len) & mask;
       server->methods[i].path; i = (i + 1) & mask) {
    const cgrpc__method_entry *m = &server->methods[i];
    if (m->path_len == len && memcmp(m->path, path, len) == 0)
      return m;
  }
  return NULL;
}

int cgrpc__server_methods_insert(cgrpc_server *server,
                                 const cgrpc__method_entry *entry) {
  size_t mask, i;
  if ((server->n_methods + 1) * 2 > server->methods_cap) {
    size_t cap = server->methods_cap ? server->methods_cap * 2 : 16, j;
    cgrpc__method_entry *old = server->methods;
    cgrpc__method_entry *tab = cgrpc__calloc(cap, sizeof *tab);
    if (!tab)
      return CGRPC_ERR_NOMEM;
    for (j = 0; j < server->methods_cap; j++) {
      if (!old[j].path)
        continue;
      for (i = path_hash((const uint8_t *)old[j].path, old[j].path_len) &
               (cap - 1);
           tab[i].path; i = (i + 1) & (cap - 1)) {
      }
      tab[i] = old[j];
    }
    cgrpc__free(old);
    server->methods = tab;
    server->methods_cap = cap;
  }
  if (find_method(server, entry->path, entry->path_len))
    return CGRPC_ERR_ALREADY_EXISTS;
  mask = server->methods_cap - 1;
  for (i = path_hash((const uint8_t *)entry->path, entry->path_len) & mask;
       server->methods[i].path; i = (i + 1) & mask) {
  }
  server->methods[i] = *entry;
  server->n_methods++;
  return 0;
}

/* ---- calls ---- */

static call_t *call_of(cgrpc__ep *ep) { return (call_t *)ep; }

static const cgrpc__ep_ops call_ops;

static call_t *call_new(cgrpc__server_conn *conn, int32_t stream_id) {
  cgrpc_server *server = conn->sl->server;
  call_t *call = cgrpc__calloc(1, sizeof *call);
  if (!call)
    return NULL;
  /* No reference yet: the stream's comes with the binding. */
  cgrpc__ep_init(&call->ep, &call_ops, conn->h2.loop, 0, server->opts.max_recv,
                 NULL, "request");
  call->conn = conn;
  call->server = server;
  call->sl = conn->sl;
  call->code = CGRPC_STATUS_OK;
  call->compression = (signed char)server->opts.compression;
  cgrpc__arena_init(&call->arena);
  /* The connection may go before a running handler: keep a copy. */
  call->peer =
      cgrpc__arena_memdup(&call->arena, conn->peer, strlen(conn->peer) + 1);
  call->peer_cred = conn->peer_cred;
  call->tls_peer = conn->tls_peer;
  if (call->tls_peer)
    cgrpc__tls_peer_ref(call->tls_peer);
  cgrpc__timer_init(&call->deadline_timer, NULL, call);
  cgrpc__ep_bind(&call->ep, &conn->h2, &conn->calls, stream_id);
  return call;
}

/* The last reference went (always on the loop thread). */
static void call_destroy(cgrpc__ep *ep) {
  call_t *call = call_of(ep);
  cgrpc__server_call_leave(call);
  if (call->ic)
    cgrpc__icall_free(call->ic);
  cgrpc__tls_peer_unref(call->tls_peer);
  cgrpc__loop_timer_stop(ep->loop, &call->deadline_timer);
  cgrpc__free(call->fail_message);
  cgrpc__free(call->reply);
  cgrpc_metadata_array_del(call->metadata);
  cgrpc_metadata_array_del(call->initial_md);
  cgrpc_metadata_array_del(call->trailing_md);
  cgrpc__arena_reset(&call->arena);
  cgrpc__ep_free(ep);
  cgrpc__free(call);
}

/* The call left its stream: a stream that closes before our response was
 * sent was cancelled (a client reset, or the connection went). */
static void call_unbound(cgrpc__ep *ep, cgrpc__ep_end how,
                         uint32_t error_code) {
  call_t *call = call_of(ep);
  (void)error_code;
  if (!call->responded)
    atomic_store(&call->cancelled, 1);
  call->stream_closed = 1;
  if (how != CGRPC__EP_CLOSED)
    call->conn = NULL;
  cgrpc__loop_timer_stop(ep->loop, &call->deadline_timer);
  cgrpc__ep_stop(ep);
  /* The service hears it first, so that on_end, which holds the call's
   * interceptor lock, finds the call out of the service's hands: a status
   * an interceptor sets there (cgrpc_server_set_health()) does not write
   * to this very call, whose write would wait for that lock. */
  {
    void (*gone_cb)(call_t *, void *);
    void *gone_user_data;
    pthread_mutex_lock(&ep->st.lock);
    call->gone = 1;
    gone_cb = call->gone_cb;
    gone_user_data = call->gone_user_data;
    call->gone_cb = NULL;
    pthread_mutex_unlock(&ep->st.lock);
    if (gone_cb)
      gone_cb(call, gone_user_data);
  }
  /* The response has gone, or the client went before it did. */
  if (call->ic)
    cgrpc__icall_end_recorded(call->ic, CGRPC_STATUS_CANCELLED, "Cancelled");
}

int cgrpc__server_ctx_on_gone(call_t *call, void (*cb)(call_t *, void *),
                              void *user_data) {
  int gone;
  pthread_mutex_lock(&call->ep.st.lock);
  gone = call->gone;
  if (!gone) {
    call->gone_cb = cb;
    call->gone_user_data = user_data;
  }
  pthread_mutex_unlock(&call->ep.st.lock);
  return gone;
}

/* Answers a request that is not a gRPC call in plain HTTP. */
static void respond_http(call_t *call, const char *status) {
  nghttp2_nv nv = {(uint8_t *)":status", (uint8_t *)(uintptr_t)status, 7,
                   strlen(status), NGHTTP2_NV_FLAG_NONE};
  call->responded = 1;
  if (nghttp2_submit_response(call->ep.conn->session, call->ep.stream_id, &nv,
                              1, NULL) != 0)
    cgrpc__ep_reset(&call->ep, NGHTTP2_INTERNAL_ERROR);
  cgrpc__h2conn_schedule_flush(call->ep.conn);
  cgrpc__ep_stop(&call->ep);
}

void cgrpc__server_call_fail(call_t *call, cgrpc_status_code code,
                             const char *message) {
  nghttp2_session *session;
  size_t n;
  if (call->responded || call->fail_code != CGRPC_STATUS_OK ||
      !cgrpc__ep_bound(&call->ep))
    return;
  session = call->ep.conn->session;
  cgrpc__log(&call->server->log, CGRPC_LOG_DEBUG, "%s: %s: %s",
             call->path ? call->path : "?", cgrpc_status_code_name(code),
             message);
  CGRPC__TRACE(&call->server->log, CALL, "%s from %s: fails %s: %s",
               call->path ? call->path : "?", call->peer,
               cgrpc_status_code_name(code), message);
  /* A running handler's work no longer matters. */
  atomic_store(&call->cancelled, 1);
  if (call->headers_submitted) {
    /* The response has begun: what is promised goes out, then trailers
     * with |code| (the data provider's end, body_end). */
    n = strlen(message) + 1;
    call->fail_code = code;
    call->fail_message = cgrpc__malloc(n);
    if (call->fail_message)
      memcpy(call->fail_message, message, n);
    cgrpc__ep_stop(&call->ep);
    nghttp2_session_resume_data(session, call->ep.stream_id);
    cgrpc__h2conn_schedule_flush(call->ep.conn);
    return;
  }
  /* Trailers-Only, without the handler's metadata (it may be running).  If
   * the client is still sending, on_frame_send resets the stream once the
   * response has gone out: submitting RST_STREAM now would make nghttp2
   * drop the queued response (the stream turns "closing" at once). */
  cgrpc__server_trailers_only(call, code, message, NULL, NULL);
  cgrpc__ep_stop(&call->ep);
}

static void call_fail(call_t *call, cgrpc_status_code code, const char *fmt,
                      ...) CGRPC_PRINTF(3, 4);
static void call_fail(call_t *call, cgrpc_status_code code, const char *fmt,
                      ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  cgrpc__server_call_fail(call, code, msg);
}

static void ep_fail(cgrpc__ep *ep, cgrpc_status_code code,
                    const char *message) {
  cgrpc__server_call_fail(call_of(ep), code, message);
}

static void run_handler(call_t *call) {
  const cgrpc__method_entry *m = call->method;
  cgrpc_status_code code =
      m->handler.dispatch(m->service->servicer, call, call->request_msg,
                          call->response_msg, m->service->user_data);
  if (atomic_load(&call->detached))
    return; /* cgrpc_server_ctx_finish() reports the outcome */
  cgrpc__server_call_set_outcome(call, code);
}

static void worker_run(cgrpc__job *job) {
  call_t *call = (call_t *)(void *)((char *)job - offsetof(call_t, job));
  run_handler(call);
  /* The loops outlive the pool (shutdown drains the pool first), so the
   * call's loop is there to take it back. */
  cgrpc__ep_kick(&call->ep, SCALL_REQ_HANDLER_DONE);
}

/* Runs the handler: inline on the loop, or on the worker pool. */
static void start_handler(call_t *call) {
  const cgrpc_method_desc *desc = call->method->desc;
  if (!cgrpc__server_call_admit(call))
    return; /* turned away: RESOURCE_EXHAUSTED */
  if (desc->kind == CGRPC_METHOD_UNARY ||
      desc->kind == CGRPC_METHOD_CLIENT_STREAMING) {
    call->response_msg =
        cgrpc__arena_alloc(&call->arena, desc->output->sizeof_message);
    if (!call->response_msg) {
      call_fail(call, CGRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
      return;
    }
    protobuf_c_message_init(desc->output, call->response_msg);
  }
  CGRPC__TRACE(&call->server->log, CALL, "%s from %s: handler starts (%s%s)",
               call->path, call->peer,
               call->server->opts.max_workers == 0 ? "inline" : "worker pool",
               call->deadline_ns ? ", has a deadline" : "");
  cgrpc__ep_ref(&call->ep); /* the handler's, until it is done */
  if (call->server->opts.max_workers == 0) {
    run_handler(call);
    if (!atomic_load(&call->detached))
      cgrpc__server_call_respond(call);
    cgrpc__ep_unref(&call->ep);
  } else {
    cgrpc__server_loop *sl = call->sl;
    call->job.run = worker_run;
    cgrpc__job_batch_add(&sl->jobs, &call->job);
    cgrpc__loop_defer(sl->loop, &sl->submit_jobs);
  }
}

/* The one request of a unary or server-streaming call is complete: decode
 * it and run the handler. */
static void call_dispatch(call_t *call) {
  if (call->n_requests != 1) {
    call_fail(call,
              call->n_requests ? CGRPC_STATUS_UNIMPLEMENTED
                               : CGRPC_STATUS_INTERNAL,
              "method %s expects one request message, got %d", call->path,
              call->n_requests);
    return;
  }
  start_handler(call);
}

/* The one request of a unary or server-streaming call, decoded into the
 * call's arena as it arrives (protobuf-c copies what it keeps).  Returns 0,
 * or 1 after failing the call. */
static int decode_request(call_t *call, const uint8_t *data, size_t len) {
  const ProtobufCMessageDescriptor *input = call->method->desc->input;
  ProtobufCAllocator alloc;
  cgrpc__arena_protobuf_allocator(&call->arena, &alloc);
  call->request_msg = protobuf_c_message_unpack(input, &alloc, len, data);
  if (call->request_msg) {
    if (cgrpc__icall_wants_messages(call->ic))
      cgrpc__icall_message(call->ic, CGRPC_INTERCEPT_RECV, call->request_msg);
    return 0;
  }
  call_fail(call, CGRPC_STATUS_INTERNAL, "could not decode the request as %s",
            input->name);
  return 1;
}

/* Runs the server's interceptors' on_start for a call to a registered
 * method.  Returns 1 to go on, or 0 when the call was rejected (answered
 * Trailers-Only with the interceptor's status and the metadata added so
 * far) or could not be set up. */
static int intercept_start(call_t *call) {
  cgrpc__icall *ic;
  cgrpc_status_code code;
  char msg[256];
  ic = call->ic = cgrpc__icall_new(&call->server->interceptors, call->path,
                                   call->method->desc->kind, 0);
  if (!ic ||
      (!call->initial_md && cgrpc_metadata_array_new(&call->initial_md)) ||
      (!call->trailing_md && cgrpc_metadata_array_new(&call->trailing_md))) {
    call_fail(call, CGRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return 0;
  }
  ic->info.authority = call->authority ? call->authority : "";
  ic->info.peer = call->peer;
  ic->info.deadline_ns = call->deadline_ns;
  /* No handler runs yet: the metadata arrays are the loop's. */
  code =
      cgrpc__icall_start(ic, cgrpc_server_ctx_metadata(call), call->initial_md,
                         call->trailing_md, msg, sizeof msg);
  if (code == CGRPC_STATUS_OK)
    return 1;
  cgrpc__log(&call->server->log, CGRPC_LOG_DEBUG,
             "%s: rejected by an interceptor: %s: %s", call->path,
             cgrpc_status_code_name(code), msg);
  atomic_store(&call->cancelled, 1);
  cgrpc__server_trailers_only(call, code, msg[0] ? msg : NULL, call->initial_md,
                              call->trailing_md);
  cgrpc__ep_stop(&call->ep);
  return 0;
}

/* Past the drain's bounds (on_frame_send): the stream ends with
 * RST_STREAM(NO_ERROR), whose close unbinds the call. */
static void drain_end(call_t *call) {
  call->draining = 0;
  cgrpc__ep_reset(&call->ep, NGHTTP2_NO_ERROR);
}

static void drain_expired(void *user_data) { drain_end(user_data); }

static void deadline_fired(void *user_data) {
  call_fail(user_data, CGRPC_STATUS_DEADLINE_EXCEEDED, "Deadline Exceeded");
}

/* After the request headers: check them and find the method. */
static void call_headers_done(call_t *call) {
  cgrpc_server *server = call->server;
  call->headers_done = 1;
  /* Not a gRPC request: answer in plain HTTP, as other gRPC servers do
   * (405 for a method other than POST, 415 for another or no
   * content-type). */
  if (call->bad_method) {
    respond_http(call, "405");
    return;
  }
  if (call->bad_content_type) {
    respond_http(call, "415");
    return;
  }
  if (call->bad_encoding) {
    /* doc/compression.md: UNIMPLEMENTED, and the answer's
     * grpc-accept-encoding says what would do. */
    call_fail(call, CGRPC_STATUS_UNIMPLEMENTED,
              "unsupported grpc-encoding \"%s\"; this server "
              "accepts " CGRPC__ACCEPT_ENCODING,
              call->bad_encoding_name ? call->bad_encoding_name : "?");
    return;
  }
  if (call->bad_timeout) {
    call_fail(call, CGRPC_STATUS_INTERNAL, "malformed grpc-timeout");
    return;
  }
  if (!call->path) {
    call_fail(call, CGRPC_STATUS_INTERNAL, "missing :path");
    return;
  }
  call->method = find_method(server, call->path, strlen(call->path));
  if (!call->method || !call->method->handler.dispatch) {
    call->method = NULL;
    call_fail(call, CGRPC_STATUS_UNIMPLEMENTED, "Method not found: %s",
              call->path);
    return;
  }
  call->ep.recv_desc = call->method->desc->input;
  call->ep.unary_recv = !cgrpc__server_call_reads_stream(call);
  if (call->deadline_ns) {
    call->deadline_timer.cb = deadline_fired;
    if (cgrpc__loop_timer_start(call->ep.loop, &call->deadline_timer,
                                call->deadline_ns) != 0) {
      call_fail(call, CGRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
      return;
    }
  }
  if (server->interceptors.n && !intercept_start(call))
    return;
  /* A request stream is read by the running handler. */
  if (cgrpc__server_call_reads_stream(call))
    start_handler(call);
}

/* ---- nghttp2 callbacks ---- */

static call_t *stream_call(nghttp2_session *session, int32_t stream_id) {
  return nghttp2_session_get_stream_user_data(session, stream_id);
}

static int on_begin_headers(nghttp2_session *session,
                            const nghttp2_frame *frame, void *user_data) {
  cgrpc__server_conn *conn = conn_of(user_data);
  call_t *call;
  if (frame->hd.type != NGHTTP2_HEADERS ||
      frame->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  call = call_new(conn, frame->hd.stream_id);
  if (!call)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, call);
  return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame,
                     const uint8_t *name, size_t namelen, const uint8_t *value,
                     size_t valuelen, uint8_t flags, void *user_data) {
  call_t *call;
  (void)flags;
  (void)user_data;
  if (frame->hd.type != NGHTTP2_HEADERS)
    return 0;
  call = stream_call(session, frame->hd.stream_id);
  if (!call || call->headers_done)
    return 0; /* client trailers carry nothing for gRPC */
  /* Bounds what one request's headers may make us store. */
  if (cgrpc__ep_header_over(&call->ep, namelen, valuelen))
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  if (name[0] == ':') {
    if (LIT_EQ(name, namelen, ":path")) {
      call->path = cgrpc__arena_alloc(&call->arena, valuelen + 1);
      if (!call->path)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
      memcpy(call->path, value, valuelen);
      call->path[valuelen] = '\0';
    } else if (LIT_EQ(name, namelen, ":method")) {
      call->bad_method = !LIT_EQ(value, valuelen, "POST");
    } else if (LIT_EQ(name, namelen, ":authority")) {
      call->authority = cgrpc__arena_alloc(&call->arena, valuelen + 1);
      if (!call->authority)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
      memcpy(call->authority, value, valuelen);
      call->authority[valuelen] = '\0';
    }
    return 0;
  }
  if (LIT_EQ(name, namelen, "content-type")) {
    call->seen_content_type = 1;
    call->bad_content_type = !cgrpc__wire_content_type_ok(value, valuelen);
  } else if (LIT_EQ(name, namelen, "grpc-timeout")) {
    int64_t ns;
    if (cgrpc__timeout_parse((const char *)value, valuelen, &ns) == 0) {
      int64_t now = cgrpc__now_ns();
      call->deadline_ns = ns > INT64_MAX - now ? INT64_MAX : now + ns;
    } else {
      call->bad_timeout = 1;
    }
  } else if (LIT_EQ(name, namelen, "grpc-encoding")) {
    int enc = cgrpc__compress_parse(value, valuelen);
    call->ep.recv_enc = (signed char)enc;
    if (enc == CGRPC__COMPRESS_UNKNOWN) {
      /* For the answer's message; a long name is cut. */
      size_t n = valuelen < 64 ? valuelen : 64;
      char *copy = cgrpc__arena_alloc(&call->arena, n + 1);
      if (copy) {
        memcpy(copy, value, n);
        copy[n] = '\0';
      }
      call->bad_encoding_name = copy;
      call->bad_encoding = 1;
    }
  } else if (LIT_EQ(name, namelen, "grpc-accept-encoding")) {
    /* A list: it may come split over several fields. */
    call->accept_enc |= cgrpc__compress_parse_accept(value, valuelen);
  } else if (!cgrpc__wire_header_reserved(name, namelen)) {
    cgrpc__raw_header *rh = cgrpc__arena_alloc(&call->arena, sizeof *rh);
    uint8_t *copy = cgrpc__arena_alloc(&call->arena, namelen + valuelen);
    if (!rh || !copy)
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    memcpy(copy, name, namelen);
    memcpy(copy + namelen, value, valuelen);
    rh->next = NULL;
    rh->name = copy;
    rh->name_len = namelen;
    rh->value = copy + namelen;
    rh->value_len = valuelen;
    if (!call->raw_tail)
      call->raw_tail = &call->raw_headers;
    *call->raw_tail = rh;
    call->raw_tail = &rh->next;
  }
  return 0;
}

/* A received message (cgrpc__ep_ops.message). */
static int call_message(cgrpc__ep *ep, int compressed, const uint8_t *data,
                        size_t len) {
  call_t *call = call_of(ep);
  cgrpc__msg *m;
  /* A unary request keeps its first message; the count is checked at the
   * end of the request. */
  if (!cgrpc__server_call_reads_stream(call)) {
    if (++call->n_requests > 1)
      return 0;
    ep->last_compressed = (unsigned char)compressed; /* read by the handler */
    return decode_request(call, data, len);
  }
  call->n_requests++;
  if (cgrpc__icall_wants_messages(call->ic)) {
    ProtobufCMessage *msg = cgrpc__ep_peek_message(ep, compressed, data, len);
    if (msg) {
      cgrpc__icall_message(call->ic, CGRPC_INTERCEPT_RECV, msg);
      protobuf_c_message_free_unpacked(msg, NULL);
    }
  }
  m = cgrpc__ep_take_message(ep, compressed, data, len);
  if (!m)
    return CGRPC_ERR_NOMEM;
  cgrpc__ep_push_received(ep, m);
  return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags,
                         int32_t stream_id, const uint8_t *data, size_t len,
                         void *user_data) {
  call_t *call = stream_call(session, stream_id);
  size_t consume = len;
  (void)flags;
  (void)user_data;
  if (call && !call->responded && call->fail_code == CGRPC_STATUS_OK &&
      call->method)
    consume = cgrpc__ep_on_data(&call->ep, data, len);
  /* Everything else is given back to the peer's window at once. */
  if (consume)
    nghttp2_session_consume(session, stream_id, consume);
  if (call && call->draining) {
    if (len > call->drain_left)
      drain_end(call);
    else
      call->drain_left -= len;
  }
  return 0;
}

static void ping_policy(cgrpc__server_conn *conn);

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
                         void *user_data) {
  cgrpc__server_conn *conn = conn_of(user_data);
  call_t *call;
  cgrpc__h2_trace_frame(&conn->h2, 0, frame);
  switch (frame->hd.type) {
  case NGHTTP2_SETTINGS:
    cgrpc__loop_timer_stop(conn->h2.loop, &conn->handshake_timer);
    return 0;
  case NGHTTP2_PING:
    if (!(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
      ping_policy(conn);
      return 0;
    }
    if (conn->shutdown_ping_sent == 1) {
      conn->shutdown_ping_sent = 2;
      nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE,
                            nghttp2_session_get_last_proc_stream_id(session),
                            NGHTTP2_NO_ERROR, NULL, 0);
      cgrpc__h2conn_schedule_flush(&conn->h2);
    }
    return 0;
  case NGHTTP2_HEADERS:
  case NGHTTP2_DATA:
  case NGHTTP2_RST_STREAM:
    break;
  default:
    return 0;
  }
  call = stream_call(session, frame->hd.stream_id);
  if (!call)
    return 0;
  cgrpc__ep_frame_recv(&call->ep, frame);
  if (frame->hd.type == NGHTTP2_RST_STREAM)
    return 0;
  if (frame->hd.type == NGHTTP2_HEADERS && !call->headers_done) {
    if (!call->seen_content_type)
      call->bad_content_type = 1;
    call_headers_done(call);
  }
  if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
    if (call->responded || call->fail_code != CGRPC_STATUS_OK || !call->method)
      return 0;
    if (!cgrpc__deframer_is_idle(&call->ep.deframer)) {
      call_fail(call, CGRPC_STATUS_INTERNAL,
                "request stream ended inside a message");
      return 0;
    }
    if (cgrpc__server_call_reads_stream(call)) {
      pthread_mutex_lock(&call->ep.st.lock);
      call->ep.st.read_closed = 1;
      cgrpc__stream_wake(&call->ep.st);
      pthread_mutex_unlock(&call->ep.st.lock);
      cgrpc__ep_defer_notify(&call->ep);
    } else {
      call_dispatch(call);
    }
  }
  return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id,
                           uint32_t error_code, void *user_data) {
  cgrpc__server_conn *conn = conn_of(user_data);
  call_t *call = stream_call(session, stream_id);
  if (call)
    cgrpc__ep_closed(&call->ep, stream_id, error_code);
  /* Max connection idle counts from the end of the last call. */
  if (conn->manage_timer.cb && !conn->calls)
    conn->idle_since_ns = cgrpc__now_ns();
  return 0;
}

/* The response ended (END_STREAM sent) while the client is still sending:
 * the rest of its request is read and dropped, up to DRAIN_BYTES or for
 * DRAIN_MS, so that its END_STREAM closes the stream; only past either
 * bound does RST_STREAM(NO_ERROR) end it.  A reset at once is what the
 * spec allows, but a proxy in between may turn it into a CANCEL toward the
 * client and lose the status it already has (HAProxy before 3.2, its
 * issue #1219); gRPC's clients end their half when the status comes, ours
 * with a reset (cgrpc__ep_request_open), so the drain is short. */
static void drain_start(call_t *call) {
  cgrpc__loop_timer_stop(call->ep.loop, &call->deadline_timer);
  call->deadline_timer.cb = drain_expired;
  call->drain_left = DRAIN_BYTES;
  call->draining = 1;
  if (cgrpc__loop_timer_start(call->ep.loop, &call->deadline_timer,
                              cgrpc__now_ns() + (int64_t)DRAIN_MS * 1000000) !=
      0)
    drain_end(call);
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame,
                         void *user_data) {
  cgrpc__server_conn *conn = conn_of(user_data);
  call_t *call;
  cgrpc__h2_trace_frame(&conn->h2, 1, frame);
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
    return 0;
  /* What we send may make the client ping (C-core's BDP probes do): the
   * ping policy starts over. */
  conn->ping_last_ns = 0;
  conn->ping_strikes = 0;
  if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
    return 0;
  call = stream_call(session, frame->hd.stream_id);
  if (call && cgrpc__ep_request_open(&call->ep))
    drain_start(call);
  return 0;
}

/* ---- connection management (gRFC A9) ---- */

/* A client's PING (not an ACK) arrived: a strike if it came too soon (see
 * cgrpc_server_options_set_keepalive_min_ping_interval_ms()); too many,
 * and the connection ends with GOAWAY ENHANCE_YOUR_CALM "too_many_pings". */
static void ping_policy(cgrpc__server_conn *conn) {
  static const char why[] = "too_many_pings";
  const struct cgrpc_server_options *o = &conn->sl->server->opts;
  int64_t now = cgrpc__now_ns(), last = conn->ping_last_ns, gap;
  conn->ping_last_ns = now;
  CGRPC__TRACE(&conn->sl->server->log, KEEPALIVE,
               "%s: ping from the client (%d strike(s) so far)", conn->h2.peer,
               conn->ping_strikes);
  if (last == 0)
    return;
  /* Without calls, C-core allows one ping in two hours. */
  gap = !conn->calls && !o->permit_pings_without_calls
            ? 2LL * 3600 * 1000
            : o->min_ping_interval_ms;
  if (now - last >= gap * 1000000 ||
      ++conn->ping_strikes <= o->max_ping_strikes || o->max_ping_strikes == 0 ||
      conn->h2.close_when_sent)
    return;
  cgrpc__log(&conn->sl->server->log, CGRPC_LOG_WARNING,
             "%s: %d pings too soon: GOAWAY ENHANCE_YOUR_CALM too_many_pings",
             conn->h2.peer, conn->ping_strikes);
  nghttp2_submit_goaway(
      conn->h2.session, NGHTTP2_FLAG_NONE,
      nghttp2_session_get_last_proc_stream_id(conn->h2.session),
      NGHTTP2_ENHANCE_YOUR_CALM, (const uint8_t *)why, sizeof why - 1);
  cgrpc__h2conn_close_when_sent(&conn->h2);
}

static int conn_busy(void *user_data) {
  const cgrpc__server_conn *conn = user_data;
  return conn->calls != NULL;
}

static void manage_arm(cgrpc__server_conn *conn, int64_t when_ns) {
  if (cgrpc__loop_timer_start(conn->h2.loop, &conn->manage_timer, when_ns) != 0)
    cgrpc__h2conn_fail(&conn->h2, "out of memory (connection timer)");
}

/* How long an idle connection's drain may take (GOAWAY, PING, GOAWAY with
 * the last stream) before it is closed anyway: as long as the idle time,
 * within 1 to 10 s. */
static int64_t idle_drain_grace_ns(int64_t max_idle_ms) {
  int64_t ms = max_idle_ms < 1000    ? 1000
               : max_idle_ms > 10000 ? 10000
                                     : max_idle_ms;
  return ms * 1000000;
}

/* Max connection idle and age: drain when one is reached; close when the
 * grace after the age (or the idle drain's) is over. */
static void manage_fired(void *user_data) {
  cgrpc__server_conn *conn = user_data;
  const struct cgrpc_server_options *o = &conn->sl->server->opts;
  int64_t now = cgrpc__now_ns(), next = INT64_MAX;
  if (conn->h2.closed)
    return;
  if (conn->grace_deadline_ns) {
    if (now >= conn->grace_deadline_ns) {
      cgrpc__log(&conn->sl->server->log, CGRPC_LOG_DEBUG,
                 "%s: connection drain's grace over: closing", conn->h2.peer);
      cgrpc__h2conn_close(&conn->h2);
      return;
    }
    manage_arm(conn, conn->grace_deadline_ns);
    return;
  }
  if (conn->shutdown_ping_sent)
    return; /* draining already (server shutdown, or idle) */
  if (conn->age_deadline_ns && now >= conn->age_deadline_ns) {
    cgrpc__log(&conn->sl->server->log, CGRPC_LOG_DEBUG,
               "%s: max connection age: GOAWAY", conn->h2.peer);
    cgrpc__server_conn_begin_shutdown(conn);
    if (o->max_age_grace_ms != CGRPC__KEEPALIVE_OFF) {
      conn->grace_deadline_ns = now + o->max_age_grace_ms * 1000000;
      manage_arm(conn, conn->grace_deadline_ns);
    }
    return;
  }
  if (conn->age_deadline_ns)
    next = conn->age_deadline_ns;
  if (o->max_idle_ms != CGRPC__KEEPALIVE_OFF) {
    int64_t idle = o->max_idle_ms * 1000000;
    if (conn->calls) {
      if (now + idle < next)
        next = now + idle; /* checked again then */
    } else if (now - conn->idle_since_ns >= idle) {
      cgrpc__log(&conn->sl->server->log, CGRPC_LOG_DEBUG,
                 "%s: max connection idle: GOAWAY", conn->h2.peer);
      cgrpc__server_conn_begin_shutdown(conn);
      /* Nothing is in flight: a client that never answers the drain's
       * PING (or sends nothing more) is not waited for past this. */
      conn->grace_deadline_ns = now + idle_drain_grace_ns(o->max_idle_ms);
      manage_arm(conn, conn->grace_deadline_ns);
      return;
    } else if (conn->idle_since_ns + idle < next) {
      next = conn->idle_since_ns + idle;
    }
  }
  if (next != INT64_MAX)
    manage_arm(conn, next);
}

/* Starts what the options ask for on a usable connection: keepalive pings,
 * and the idle and age timer.  Returns 0 or CGRPC_ERR_NOMEM. */
static int manage_start(cgrpc__server_conn *conn) {
  const struct cgrpc_server_options *o = &conn->sl->server->opts;
  int64_t now = cgrpc__now_ns(), first = INT64_MAX;
  if (cgrpc__h2_keepalive_start(&conn->h2, o->keepalive_time_ms,
                                o->keepalive_timeout_ms, 1, conn_busy) != 0)
    return CGRPC_ERR_NOMEM;
  if (o->max_idle_ms == CGRPC__KEEPALIVE_OFF &&
      o->max_age_ms == CGRPC__KEEPALIVE_OFF)
    return 0;
  conn->idle_since_ns = now;
  if (o->max_idle_ms != CGRPC__KEEPALIVE_OFF)
    first = now + o->max_idle_ms * 1000000;
  if (o->max_age_ms != CGRPC__KEEPALIVE_OFF) {
    /* +-10%, so that connections made together do not all go together. */
    double jitter = 0.9 + 0.2 * ((double)rand() / RAND_MAX);
    conn->age_deadline_ns =
        now + (int64_t)((double)o->max_age_ms * jitter) * 1000000;
    if (conn->age_deadline_ns < first)
      first = conn->age_deadline_ns;
  }
  cgrpc__timer_init(&conn->manage_timer, manage_fired, conn);
  return cgrpc__loop_timer_start(conn->h2.loop, &conn->manage_timer, first);
}

static const cgrpc__ep_ops call_ops = {cgrpc__server_call_kick,
                                       call_message,
                                       ep_fail,
                                       cgrpc__server_call_body_end,
                                       cgrpc__server_call_read_done,
                                       cgrpc__server_call_write_done,
                                       NULL,
                                       call_unbound,
                                       call_destroy};

static nghttp2_session_callbacks *server_cbs;
static pthread_once_t server_cbs_once = PTHREAD_ONCE_INIT;

static void server_cbs_init(void) {
  nghttp2_session_callbacks *c;
  if (nghttp2_session_callbacks_new(&c) != 0)
    return;
  nghttp2_session_callbacks_set_on_begin_headers_callback(c, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(c, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, on_data_chunk);
  nghttp2_session_callbacks_set_on_frame_recv_callback(c, on_frame_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(c, on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(c, on_frame_send);
  nghttp2_session_callbacks_set_send_callback(c, cgrpc__h2conn_send_cb);
  nghttp2_session_callbacks_set_send_data_callback(c,
                                                   cgrpc__h2conn_send_data_cb);
  cgrpc__h2_trace_callbacks(c, 0);
  server_cbs = c;
}

/* The callbacks never change, so one immutable table serves every session. */
static nghttp2_session_callbacks *server_callbacks(void) {
  pthread_once(&server_cbs_once, server_cbs_init);
  return server_cbs;
}

/* ---- connection lifetime ---- */

static void conn_closed(cgrpc__h2conn *h2, void *user_data) {
  cgrpc__server_conn *conn = user_data;
  cgrpc__server_loop *sl = conn->sl;
  cgrpc_server *server = sl->server;
  if (!h2->ready && h2->error)
    cgrpc__log(&server->log, CGRPC_LOG_WARNING, "%s: TLS handshake failed: %s",
               h2->peer, h2->error);
  cgrpc__loop_timer_stop(sl->loop, &conn->handshake_timer);
  if (conn->manage_timer.cb)
    cgrpc__loop_timer_stop(sl->loop, &conn->manage_timer);
  cgrpc__ep_conn_lost(&conn->calls);
  cgrpc__tls_peer_unref(conn->tls_peer);
  if (conn->prev)
    conn->prev->next = conn->next;
  else
    sl->conns = conn->next;
  if (conn->next)
    conn->next->prev = conn->prev;
  nghttp2_session_del(conn->h2.session);
  cgrpc__free(conn);
  cgrpc__server_conn_gone(server);
}

static void handshake_expired(void *user_data) {
  cgrpc__server_conn *conn = user_data;
  cgrpc__log(&conn->sl->server->log, CGRPC_LOG_INFO,
             "%s: no HTTP/2 handshake in time; closing", conn->h2.peer);
  cgrpc__h2conn_close(&conn->h2);
}

/* After the TLS handshake: who the client is, for its calls. */
static void conn_usable(cgrpc__h2conn *h2, void *user_data) {
  cgrpc__server_conn *conn = user_data;
  if (h2->tls)
    conn->tls_peer = cgrpc__tls_peer_new(h2->tls);
  if (manage_start(conn) != 0)
    cgrpc__h2conn_fail(h2, "out of memory (connection management)");
}

void cgrpc__server_conn_accept(cgrpc__server_loop *sl, int fd, const char *peer,
                               const cgrpc__sock_cred *cred, SSL *tls) {
  cgrpc_server *server = sl->server;
  size_t peer_len = strlen(peer);
  cgrpc__server_conn *conn = cgrpc__calloc(1, sizeof *conn + peer_len + 1);
  nghttp2_session *session = NULL;
  nghttp2_option *opt = NULL;
  nghttp2_session_callbacks *cbs = server_callbacks();
  nghttp2_settings_entry settings[3];
  if (!conn || !cbs || cgrpc__h2_session_option_new(&opt, 1) != 0)
    goto fail;
  if (nghttp2_session_server_new3(&session, cbs, conn, opt, cgrpc__h2_mem()) !=
      0)
    goto fail;
  nghttp2_option_del(opt);
  opt = NULL;
  settings[0].settings_id = NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS;
  settings[0].value = server->opts.max_streams;
  settings[1].settings_id = NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE;
  settings[1].value = 1 << 20;
  settings[2].settings_id = NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE;
  settings[2].value = 16 << 10;
  if (nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings, 3) != 0)
    goto fail;
  /* A larger connection window so many streams do not stall on it. */
  nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0,
                                        16 << 20);
  conn->sl = sl;
  snprintf(conn->h2.peer, sizeof conn->h2.peer, "%s", peer);
  conn->h2.log = &server->log;
  CGRPC__TRACE(&server->log, CONN, "%s: accepted%s", peer,
               tls ? ", TLS handshake next" : "");
  memcpy(conn->peer, peer, peer_len + 1);
  conn->peer_cred = *cred;
  pthread_mutex_lock(&server->lock);
  server->live_conns++;
  pthread_mutex_unlock(&server->lock);
  conn->next = sl->conns;
  if (sl->conns)
    sl->conns->prev = conn;
  sl->conns = conn;
  cgrpc__timer_init(&conn->handshake_timer, handshake_expired, conn);
  if (cgrpc__h2conn_start(&conn->h2, sl->loop, fd, session, tls, conn_usable,
                          conn_closed, &cgrpc__ep_body, conn) != 0) {
    /* fd is closed; unwind through the normal close path. */
    conn_closed(&conn->h2, conn);
    return;
  }
  /* A connection whose handshake cannot be timed is not kept. */
  if (cgrpc__loop_timer_start(sl->loop, &conn->handshake_timer,
                              cgrpc__now_ns() + HANDSHAKE_TIMEOUT_NS) != 0)
    cgrpc__h2conn_close(&conn->h2);
  return;
fail:
  cgrpc__log(&server->log, CGRPC_LOG_ERROR,
             "could not set up connection from %s", peer);
  nghttp2_option_del(opt);
  nghttp2_session_del(session);
  cgrpc__free(conn);
  cgrpc__tls_conn_free(tls);
  close(fd);
}

void cgrpc__server_conn_begin_shutdown(cgrpc__server_conn *conn) {
  nghttp2_session *session = conn->h2.session;
  if (conn->shutdown_ping_sent || conn->h2.closed)
    return;
  conn->shutdown_ping_sent = 1;
  nghttp2_submit_shutdown_notice(session);
  nghttp2_submit_ping(session, NGHTTP2_FLAG_NONE, NULL);
  cgrpc__h2conn_schedule_flush(&conn->h2);
}
