/* SPDX-License-Identifier: MIT */
/*
 * The server side of one HTTP/2 connection: turns nghttp2's frame callbacks
 * into gRPC calls, runs the handler (inline or on the worker pool) and
 * writes the response, trailers-only when there is no message.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "call/metadata.h"
#include "call/wire.h"
#include "cgrpc/error.h"
#include "h2/hdrs.h"
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

/* Exposed to server.c through a tiny wrapper below. */
int cgrpc__server_methods_insert(cgrpc_server *server,
                                 const cgrpc__method_entry *entry);
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

static call_t *call_new(cgrpc__server_conn *conn, int32_t stream_id) {
  cgrpc_server *server = conn->sl->server;
  call_t *call = cgrpc__calloc(1, sizeof *call);
  if (!call)
    return NULL;
  call->conn = conn;
  call->server = server;
  call->loop = conn->h2.loop;
  call->linked = 1;
  call->stream_id = stream_id;
  call->code = CGRPC_STATUS_OK;
  cgrpc__arena_init(&call->arena);
  /* The connection may go before a running handler: keep a copy. */
  call->peer = cgrpc__arena_memdup(&call->arena, conn->h2.peer,
                                   strlen(conn->h2.peer) + 1);
  cgrpc__deframer_init(&call->deframer, server->opts.max_recv);
  cgrpc__timer_init(&call->deadline_timer, NULL, call);
  call->next = conn->calls;
  if (conn->calls)
    conn->calls->prev = call;
  conn->calls = call;
  return call;
}

static void call_unlink(call_t *call) {
  cgrpc__server_conn *conn = call->conn;
  cgrpc__loop_timer_stop(call->loop, &call->deadline_timer);
  if (!conn || !call->linked)
    return;
  call->linked = 0;
  if (call->prev)
    call->prev->next = call->next;
  else
    conn->calls = call->next;
  if (call->next)
    call->next->prev = call->prev;
  call->prev = call->next = NULL;
}

void cgrpc__server_call_free(call_t *call) {
  cgrpc__server_call_leave(call);
  call_unlink(call);
  if (call->st) {
    cgrpc__loop_undefer(call->loop, &call->notify);
    cgrpc__stream_free(call->st);
    cgrpc__free(call->st);
  }
  cgrpc__deframer_free(&call->deframer);
  cgrpc__free(call->fail_message);
  cgrpc__free(call->request_owned);
  cgrpc_metadata_array_del(call->metadata);
  cgrpc_metadata_array_del(call->initial_md);
  cgrpc_metadata_array_del(call->trailing_md);
  cgrpc__free(call->response);
  cgrpc__arena_reset(&call->arena);
  cgrpc__free(call);
}

int cgrpc__server_call_release(call_t *call) {
  if (!(call->stream_closed || !call->conn) || call->handler_running ||
      (atomic_load(&call->detached) && !call->app_finished) ||
      atomic_load(&call->posted) > 0)
    return 0;
  cgrpc__server_call_free(call);
  return 1;
}

void cgrpc__server_submit_trailers(call_t *call) {
  nghttp2_session *session = call->conn->h2.session;
  cgrpc__hdrs h;
  call->responded = 1;
  cgrpc__hdrs_init(&h);
  if (call->fail_code != CGRPC_STATUS_OK) {
    cgrpc__hdrs_add_status(&h, call->fail_code, call->fail_message);
  } else {
    cgrpc__hdrs_add_status(&h, call->code, call->status_message);
    cgrpc__hdrs_add_metadata(&h, call->trailing_md);
  }
  if (h.failed ||
      nghttp2_submit_trailer(session, call->stream_id, h.nv, h.len) != 0)
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, call->stream_id,
                              NGHTTP2_INTERNAL_ERROR);
  cgrpc__hdrs_free(&h);
}

/* The response body of a unary call: nghttp2 is told how much there is (no
 * copy here; the connection takes the bytes through server_body), then the
 * trailers follow. */
static ssize_t response_read(nghttp2_session *session, int32_t stream_id,
                             uint8_t *buf, size_t length, uint32_t *data_flags,
                             nghttp2_data_source *source, void *user_data) {
  call_t *call = source->ptr;
  size_t n = call->response_len - call->response_off;
  (void)session;
  (void)stream_id;
  (void)buf;
  (void)user_data;
  if (n > length)
    n = length;
  *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  if (call->response_off + n < call->response_len)
    return (ssize_t)n;
  *data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
  cgrpc__server_submit_trailers(call);
  return (ssize_t)n;
}

static int body_peek(void *source, struct iovec *iov, int max, size_t len) {
  call_t *call = source;
  /* Streamed responses (headers first) read the queue; a single reply,
   * streaming method or not, reads call->response. */
  if (call->headers_submitted)
    return cgrpc__stream_peek_send(call->st, iov, max, len);
  iov[0].iov_base = call->response + call->response_off;
  iov[0].iov_len = len;
  return 1;
}

static void body_consume(void *source, size_t len) {
  call_t *call = source;
  if (!call->headers_submitted)
    call->response_off += len;
  else if (cgrpc__stream_consume_send(call->st, len))
    cgrpc__loop_defer(call->loop, &call->notify);
}

/* How the connection reads response bodies (see h2/conn.h). */
static const cgrpc__h2_body_ops server_body = {body_peek, body_consume};

/* Submits the response headers |h| (and |prd|'s body).  If the client is
 * still sending, on_frame_send resets the stream once the response has gone
 * out: submitting RST_STREAM now would make nghttp2 drop the queued
 * response HEADERS (the stream turns "closing" at once). */
static void submit_final(call_t *call, cgrpc__hdrs *h,
                         const nghttp2_data_provider *prd) {
  nghttp2_session *session = call->conn->h2.session;
  int rv = h->failed ? -1
                     : nghttp2_submit_response(session, call->stream_id, h->nv,
                                               h->len, prd);
  cgrpc__hdrs_free(h);
  if (rv != 0)
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, call->stream_id,
                              NGHTTP2_INTERNAL_ERROR);
  cgrpc__h2conn_schedule_flush(&call->conn->h2);
}

/* Sends the handler's outcome: headers + message + trailers when there is a
 * response message, otherwise a Trailers-Only response. */
void cgrpc__server_call_respond(call_t *call) {
  cgrpc__hdrs h;
  nghttp2_data_provider prd;
  if (call->responded)
    return;
  call->responded = 1;
  cgrpc__hdrs_init(&h);
  CGRPC__HDRS_ADD_LIT(&h, ":status", "200");
  CGRPC__HDRS_ADD_LIT(&h, "content-type", "application/grpc");
  CGRPC__HDRS_ADD_LIT(&h, "grpc-accept-encoding", "identity,gzip");
  cgrpc__hdrs_add_metadata(&h, call->initial_md);
  if (call->code == CGRPC_STATUS_OK && call->response) {
    prd.source.ptr = call;
    prd.read_callback = response_read;
    submit_final(call, &h, &prd);
    return;
  }
  cgrpc__hdrs_add_status(&h, call->code, call->status_message);
  cgrpc__hdrs_add_metadata(&h, call->trailing_md);
  submit_final(call, &h, NULL);
}

/* Ends a call with |code| and a Trailers-Only response, before or instead
 * of its handler.  Touches none of the fields a running handler owns. */
static void call_fail(call_t *call, cgrpc_status_code code, const char *fmt,
                      ...) CGRPC_PRINTF(3, 4);
static void call_fail(call_t *call, cgrpc_status_code code, const char *fmt,
                      ...) {
  char msg[512];
  cgrpc__hdrs h;
  va_list ap;
  if (call->responded)
    return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (call->headers_submitted) {
    /* The response has begun: the status goes in its trailers. */
    cgrpc__server_stream_fail(call, code, msg);
    return;
  }
  call->responded = 1;
  cgrpc__log(&call->server->log, CGRPC_LOG_DEBUG, "%s: %s: %s",
             call->path ? call->path : "?", cgrpc_status_code_name(code), msg);
  cgrpc__hdrs_init(&h);
  CGRPC__HDRS_ADD_LIT(&h, ":status", "200");
  CGRPC__HDRS_ADD_LIT(&h, "content-type", "application/grpc");
  cgrpc__hdrs_add_status(&h, code, msg);
  submit_final(call, &h, NULL);
}

void cgrpc__server_call_abort(call_t *call, cgrpc_status_code code,
                              const char *message) {
  if (call->conn && !call->stream_closed)
    call_fail(call, code, "%s", message);
}

/* Packs the response (on the handler's thread: off the loop). */
void cgrpc__server_call_pack_response(call_t *call) {
  int64_t limit = call->server->opts.max_send;
  char buf[128];
  int err = 0;
  if (call->code != CGRPC_STATUS_OK || !call->response_msg)
    return;
  call->response = cgrpc__pack_framed(call->response_msg, limit, 0,
                                      &call->response_len, &err);
  if (call->response)
    return;
  call->code = CGRPC_STATUS_RESOURCE_EXHAUSTED;
  if (err == CGRPC_ERR_NOMEM) {
    call->status_message = "out of memory packing the response";
  } else if (limit < 0 || call->response_len - CGRPC__FRAME_PREFIX_LEN <=
                              (size_t)limit) {
    call->status_message = "response message larger than 4 GiB";
  } else {
    snprintf(buf, sizeof buf,
             "response message of %zu bytes exceeds the limit of %lld bytes",
             call->response_len - CGRPC__FRAME_PREFIX_LEN, (long long)limit);
    call->status_message =
        cgrpc__arena_memdup(&call->arena, buf, strlen(buf) + 1);
  }
  call->response_len = 0;
}

static void run_handler(call_t *call) {
  const cgrpc__method_entry *m = call->method;
  cgrpc_status_code code =
      m->handler.dispatch(m->service->servicer, call, call->request_msg,
                          call->response_msg, m->service->user_data);
  if (atomic_load(&call->detached))
    return; /* cgrpc_server_ctx_finish() reports the outcome */
  if ((unsigned)code > CGRPC_STATUS_UNAUTHENTICATED) {
    call->status_message = "handler returned an invalid status code";
    code = CGRPC_STATUS_UNKNOWN;
  }
  call->code = code;
  if (code == CGRPC_STATUS_OK)
    call->status_message = NULL;
  cgrpc__server_call_pack_response(call);
}

/* Back on the loop after the handler. */
static void handler_done(void *user_data) {
  call_t *call = user_data;
  call->handler_running = 0;
  if (!atomic_load(&call->detached) && !call->stream_closed && call->conn &&
      !atomic_load(&call->cancelled)) {
    if (call->st)
      cgrpc__server_stream_finish(call);
    else
      cgrpc__server_call_respond(call);
  }
  cgrpc__server_call_release(call);
}

static void worker_run(cgrpc__job *job) {
  call_t *call = (call_t *)job;
  run_handler(call);
  /* The loops outlive the pool (shutdown drains the pool first), so the
   * call's loop is there to take it back. */
  call->done_task.cb = handler_done;
  call->done_task.user_data = call;
  call->done_task.allocated = 0;
  cgrpc__loop_post_task(call->loop, &call->done_task);
}

/* Inflates a gzip message into a malloc'd buffer (*out, freed by the
 * caller), within the receive limit.  Returns a status code. */
static int decompress_gzip(call_t *call, const uint8_t *in, size_t in_len,
                           uint8_t **out, size_t *out_len) {
  int64_t limit = call->server->opts.max_recv;
  size_t cap = in_len * 4 + 64, len = 0;
  uint8_t *buf = NULL;
  z_stream zs;
  int rv, code = CGRPC_STATUS_OK;
  memset(&zs, 0, sizeof zs);
  if (inflateInit2(&zs, 15 + 16) != Z_OK)
    return CGRPC_STATUS_INTERNAL;
  zs.next_in = (Bytef *)(uintptr_t)in;
  zs.avail_in = (uInt)in_len;
  for (;;) {
    uint8_t *nb;
    if (limit >= 0 && (int64_t)cap > limit + 1)
      cap = (size_t)limit + 1;
    nb = cgrpc__realloc(buf, cap);
    if (!nb) {
      code = CGRPC_STATUS_RESOURCE_EXHAUSTED;
      break;
    }
    buf = nb;
    zs.next_out = buf + len;
    zs.avail_out = (uInt)(cap - len);
    rv = inflate(&zs, Z_NO_FLUSH);
    len = cap - zs.avail_out;
    if (limit >= 0 && (int64_t)len > limit) {
      code = CGRPC_STATUS_RESOURCE_EXHAUSTED;
      break;
    }
    if (rv == Z_STREAM_END)
      break;
    if ((rv != Z_OK && rv != Z_BUF_ERROR) ||
        (zs.avail_in == 0 && rv == Z_BUF_ERROR)) {
      code = CGRPC_STATUS_INTERNAL;
      break;
    }
    cap *= 2;
  }
  inflateEnd(&zs);
  if (code != CGRPC_STATUS_OK) {
    cgrpc__free(buf);
    return code;
  }
  *out = buf;
  *out_len = len;
  return CGRPC_STATUS_OK;
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
  call->handler_running = 1;
  if (call->server->opts.max_workers == 0) {
    run_handler(call);
    handler_done(call);
  } else {
    cgrpc__server_loop *sl = call->conn->sl;
    call->job.run = worker_run;
    cgrpc__job_batch_add(&sl->jobs, &call->job);
    cgrpc__loop_defer(call->loop, &sl->submit_jobs);
  }
}

/* The one request of a unary or server-streaming call is complete: decode
 * it and run the handler. */
static void call_dispatch(call_t *call) {
  const cgrpc_method_desc *desc = call->method->desc;
  ProtobufCAllocator alloc;
  if (call->responded)
    return;
  if (call->n_requests != 1) {
    call_fail(call, call->n_requests ? CGRPC_STATUS_UNIMPLEMENTED
                                     : CGRPC_STATUS_INTERNAL,
              "method %s expects one request message, got %d", call->path,
              call->n_requests);
    return;
  }
  cgrpc__arena_protobuf_allocator(&call->arena, &alloc);
  call->request_msg = protobuf_c_message_unpack(desc->input, &alloc,
                                                call->request_len, call->request);
  if (!call->request_msg) {
    call_fail(call, CGRPC_STATUS_INTERNAL,
              "could not decode the request as %s", desc->input->name);
    return;
  }
  start_handler(call);
}

static void deadline_fired(void *user_data) {
  call_t *call = user_data;
  atomic_store(&call->cancelled, 1);
  call_fail(call, CGRPC_STATUS_DEADLINE_EXCEEDED, "Deadline Exceeded");
}

/* After the request headers: check them and find the method. */
static void call_headers_done(call_t *call) {
  cgrpc_server *server = call->server;
  call->headers_done = 1;
  /* Not a gRPC request: answer in plain HTTP, as other gRPC servers do
   * (405 for a method other than POST, 415 for another content-type). */
  if (call->bad_method || call->bad_content_type) {
    static const nghttp2_nv status_405 = {(uint8_t *)":status",
                                          (uint8_t *)"405", 7, 3,
                                          NGHTTP2_NV_FLAG_NONE};
    static const nghttp2_nv status_415 = {(uint8_t *)":status",
                                          (uint8_t *)"415", 7, 3,
                                          NGHTTP2_NV_FLAG_NONE};
    call->responded = 1;
    nghttp2_submit_response(call->conn->h2.session, call->stream_id,
                            call->bad_method ? &status_405 : &status_415, 1,
                            NULL);
    cgrpc__h2conn_schedule_flush(&call->conn->h2);
    return;
  }
  if (call->bad_encoding) {
    call_fail(call, CGRPC_STATUS_UNIMPLEMENTED,
              "unsupported grpc-encoding; this server accepts identity,gzip");
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
  if (cgrpc__server_stream_init(call) != 0) {
    call->method = NULL;
    call_fail(call, CGRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  if (call->deadline_ns) {
    call->deadline_timer.cb = deadline_fired;
    cgrpc__loop_timer_start(call->loop, &call->deadline_timer,
                            call->deadline_ns);
  }
  /* A request stream is read by the running handler. */
  if (cgrpc__server_call_reads_stream(call))
    start_handler(call);
}

/* ---- nghttp2 callbacks ---- */

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame,
                            void *user_data) {
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
  call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
  if (!call || call->headers_done)
    return 0; /* client trailers carry nothing for gRPC */
  /* Bounds what one request's headers may make us store. */
  call->header_bytes += namelen + valuelen + 32;
  if (call->header_bytes > MAX_HEADER_BYTES)
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
    call->bad_content_type = !cgrpc__wire_content_type_ok(value, valuelen);
  } else if (LIT_EQ(name, namelen, "grpc-timeout")) {
    int64_t ns;
    if (cgrpc__timeout_parse((const char *)value, valuelen, &ns) == 0) {
      int64_t now = cgrpc__now_ns();
      call->deadline_ns = ns > INT64_MAX - now ? INT64_MAX : now + ns;
    }
  } else if (LIT_EQ(name, namelen, "grpc-encoding")) {
    if (LIT_EQ(value, valuelen, "gzip"))
      call->compressed_gzip = 1;
    else if (!LIT_EQ(value, valuelen, "identity"))
      call->bad_encoding = 1;
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

static int on_message(void *user_data, int compressed, const uint8_t *data,
                      size_t len) {
  call_t *call = user_data;
  call->n_requests++;
  if (cgrpc__server_call_reads_stream(call)) {
    uint8_t *plain = NULL;
    int rv;
    if (compressed) {
      int code = call->compressed_gzip
                     ? decompress_gzip(call, data, len, &plain, &len)
                     : CGRPC_STATUS_INTERNAL;
      if (code != CGRPC_STATUS_OK) {
        call_fail(call, (cgrpc_status_code)code,
                  "could not decompress a request message");
        return 1;
      }
      data = plain;
    }
    rv = cgrpc__server_stream_on_message(call, data, len);
    cgrpc__free(plain);
    if (rv != 0) {
      call_fail(call, CGRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
      return 1;
    }
    return 0;
  }
  if (call->n_requests > 1)
    return 0; /* reported at dispatch */
  if (compressed) {
    int code;
    if (!call->compressed_gzip) {
      call_fail(call, CGRPC_STATUS_INTERNAL,
                "compressed message without grpc-encoding");
      return 1;
    }
    code = decompress_gzip(call, data, len, &call->request_owned,
                           &call->request_len);
    call->request = call->request_owned;
    if (code != CGRPC_STATUS_OK) {
      call_fail(call, (cgrpc_status_code)code,
                code == CGRPC_STATUS_RESOURCE_EXHAUSTED
                    ? "decompressed request exceeds the receive limit"
                    : "could not decompress the request");
      return 1;
    }
    return 0;
  }
  call->request = cgrpc__arena_memdup(&call->arena, data, len);
  if (!call->request && len) {
    call_fail(call, CGRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return 1;
  }
  call->request_len = len;
  return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags,
                         int32_t stream_id, const uint8_t *data, size_t len,
                         void *user_data) {
  call_t *call = nghttp2_session_get_stream_user_data(session, stream_id);
  size_t consume = len;
  int rv;
  (void)flags;
  (void)user_data;
  if (call && !call->responded && call->method) {
    rv = cgrpc__deframer_feed(&call->deframer, data, len, on_message, call);
    if (rv == CGRPC_ERR_TOO_LARGE) {
      call_fail(call, CGRPC_STATUS_RESOURCE_EXHAUSTED,
                "received message larger than max (%lld bytes)",
                (long long)call->server->opts.max_recv);
    } else if (rv == CGRPC_ERR_PROTO) {
      call_fail(call, CGRPC_STATUS_INTERNAL, "bad gRPC message framing");
    } else if (rv == CGRPC_ERR_NOMEM) {
      call_fail(call, CGRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    } else if (rv == 0 && cgrpc__server_call_reads_stream(call)) {
      /* Hold the window back while the handler lags behind. */
      consume = cgrpc__server_stream_account(call, len);
    }
  }
  /* Everything else is given back to the peer's window at once. */
  if (consume)
    nghttp2_session_consume(session, stream_id, consume);
  return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
                         void *user_data) {
  cgrpc__server_conn *conn = conn_of(user_data);
  call_t *call;
  switch (frame->hd.type) {
  case NGHTTP2_SETTINGS:
    cgrpc__loop_timer_stop(conn->h2.loop, &conn->handshake_timer);
    return 0;
  case NGHTTP2_PING:
    if ((frame->hd.flags & NGHTTP2_FLAG_ACK) && conn->shutdown_ping_sent == 1) {
      conn->shutdown_ping_sent = 2;
      nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE,
                            nghttp2_session_get_last_proc_stream_id(session),
                            NGHTTP2_NO_ERROR, NULL, 0);
      cgrpc__h2conn_schedule_flush(&conn->h2);
    }
    return 0;
  case NGHTTP2_HEADERS:
  case NGHTTP2_DATA:
    break;
  default:
    return 0;
  }
  call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
  if (!call)
    return 0;
  if (frame->hd.type == NGHTTP2_HEADERS && !call->headers_done)
    call_headers_done(call);
  if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
    call->remote_closed = 1;
    if (call->responded || !call->method)
      return 0;
    if (!cgrpc__deframer_is_idle(&call->deframer)) {
      call_fail(call, CGRPC_STATUS_INTERNAL,
                "request stream ended inside a message");
      return 0;
    }
    if (cgrpc__server_call_reads_stream(call))
      cgrpc__server_stream_on_end(call);
    else
      call_dispatch(call);
  }
  return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id,
                           uint32_t error_code, void *user_data) {
  call_t *call = nghttp2_session_get_stream_user_data(session, stream_id);
  (void)error_code;
  (void)user_data;
  if (!call)
    return 0;
  nghttp2_session_set_stream_user_data(session, stream_id, NULL);
  /* A stream that closes before our response was sent was cancelled (a
   * client reset); one that closes after it simply ended. */
  if (!call->responded)
    atomic_store(&call->cancelled, 1);
  call->stream_closed = 1;
  call_unlink(call);
  cgrpc__loop_timer_stop(call->loop, &call->deadline_timer);
  if (call->st)
    cgrpc__server_stream_on_close(call);
  cgrpc__server_call_release(call);
  return 0;
}

/* The response ended (END_STREAM sent): if the client is still sending,
 * reset the stream with NO_ERROR so it stops, as the gRPC spec allows. */
static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame,
                         void *user_data) {
  call_t *call;
  (void)user_data;
  if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
      !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
    return 0;
  call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
  if (call && !call->remote_closed)
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                              NGHTTP2_NO_ERROR);
  return 0;
}

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
  call_t *call, *next;
  (void)h2;
  cgrpc__loop_timer_stop(sl->loop, &conn->handshake_timer);
  for (call = conn->calls; call; call = next) {
    next = call->next;
    if (!call->responded)
      atomic_store(&call->cancelled, 1);
    call_unlink(call);
    call->stream_closed = 1;
    call->conn = NULL;
    if (call->st)
      cgrpc__server_stream_on_close(call);
    cgrpc__server_call_release(call);
  }
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

void cgrpc__server_conn_accept(cgrpc__server_loop *sl, int fd,
                               const char *peer) {
  cgrpc_server *server = sl->server;
  cgrpc__server_conn *conn = cgrpc__calloc(1, sizeof *conn);
  nghttp2_session *session = NULL;
  nghttp2_option *opt = NULL;
  nghttp2_session_callbacks *cbs = server_callbacks();
  nghttp2_settings_entry settings[3];
  if (!conn || !cbs || cgrpc__h2_session_option_new(&opt, 1) != 0)
    goto fail;
  if (nghttp2_session_server_new3(&session, cbs, conn, opt,
                                  cgrpc__h2_mem()) != 0)
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
  nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0, 16 << 20);
  conn->sl = sl;
  snprintf(conn->h2.peer, sizeof conn->h2.peer, "%s", peer);
  pthread_mutex_lock(&server->lock);
  server->live_conns++;
  pthread_mutex_unlock(&server->lock);
  conn->next = sl->conns;
  if (sl->conns)
    sl->conns->prev = conn;
  sl->conns = conn;
  cgrpc__timer_init(&conn->handshake_timer, handshake_expired, conn);
  if (cgrpc__h2conn_start(&conn->h2, sl->loop, fd, session, conn_closed,
                          &server_body, conn) != 0) {
    /* fd is closed; unwind through the normal close path. */
    conn_closed(&conn->h2, conn);
    return;
  }
  cgrpc__loop_timer_start(sl->loop, &conn->handshake_timer,
                          cgrpc__now_ns() + HANDSHAKE_TIMEOUT_NS);
  return;
fail:
  cgrpc__log(&server->log, CGRPC_LOG_ERROR, "could not set up connection from %s",
             peer);
  nghttp2_option_del(opt);
  nghttp2_session_del(session);
  cgrpc__free(conn);
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
