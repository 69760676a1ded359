/* SPDX-License-Identifier: MIT */
/*
 * Server internals shared by server.c (the server object, listeners,
 * shutdown), conn.c (one HTTP/2 connection and its calls) and ctx.c (the
 * handler-facing cgrpc_server_ctx API).
 */
#ifndef CGRPC_SERVER_INTERNAL_H
#define CGRPC_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "call/deframer.h"
#include "call/stream.h"
#include "cgrpc/server.h"
#include "h2/conn.h"
#include "io/loop.h"
#include "server/pool.h"
#include "util/arena.h"
#include "util/log.h"

#define CGRPC__MAX_LISTENERS 16

/* The default max_workers: the most handler threads the pool grows to.
 * More than one connection's default stream limit (1000), so one client
 * cannot starve the others by holding blocked streams. */
#define CGRPC__DEFAULT_MAX_WORKERS 1024

struct cgrpc_server_options {
  int max_workers;
  int max_rpcs; /* max_concurrent_rpcs; 0: no limit */
  int num_loops;
  int64_t max_recv;
  int64_t max_send;
  uint32_t max_streams;
  cgrpc_log_cb log_cb;
  void *log_user_data;
};

typedef struct cgrpc__service_entry {
  const cgrpc_service_desc *desc;
  void *servicer; /* a copy of the user's vtable */
  void *user_data;
} cgrpc__service_entry;

typedef struct cgrpc__method_entry {
  const char *path;
  size_t path_len;
  const cgrpc_method_desc *desc;
  cgrpc_method_handler handler;
  const cgrpc__service_entry *service;
} cgrpc__method_entry;

typedef struct cgrpc__server_conn cgrpc__server_conn;

typedef struct cgrpc__raw_header {
  struct cgrpc__raw_header *next;
  const uint8_t *name, *value;
  size_t name_len, value_len;
} cgrpc__raw_header;

struct cgrpc__server_loop;

/* A listening socket as seen by one loop. */
typedef struct cgrpc__server_listener {
  cgrpc__watch watch;
  int fd;
  cgrpc__timer pause; /* re-arms the watch after running out of fds */
  struct cgrpc__server_loop *sl;
} cgrpc__server_listener;

/* One event-loop thread of a server and the connections it owns. */
typedef struct cgrpc__server_loop {
  cgrpc_server *server;
  cgrpc__loop *loop;
  cgrpc__server_listener listeners[CGRPC__MAX_LISTENERS];
  cgrpc__server_conn *conns; /* doubly linked, loop thread only */
  /* Handler jobs of this loop turn, submitted together at its end. */
  cgrpc__job_batch jobs;
  cgrpc__deferred submit_jobs;
  cgrpc__task force_close; /* shutdown's last task (posting cannot fail) */
} cgrpc__server_loop;

enum { SERVER_NEW, SERVER_STARTED, SERVER_SHUTTING_DOWN, SERVER_STOPPED };

struct cgrpc_server {
  struct cgrpc_server_options opts;
  cgrpc__logger log;

  int listen_fds[CGRPC__MAX_LISTENERS];
  int n_listeners;

  cgrpc__service_entry *services;
  size_t n_services;
  /* Open-addressing table of methods keyed by :path; size is a power of 2. */
  cgrpc__method_entry *methods;
  size_t methods_cap, n_methods;

  cgrpc__server_loop *loops;
  int n_loops;
  cgrpc__pool pool;

  atomic_int active_rpcs; /* admitted calls not freed, under max_rpcs */

  pthread_mutex_t lock; /* guards state, live_conns and quiet_loops */
  pthread_cond_t cond;
  int state;
  int live_conns;
  int quiet_loops; /* loops that closed their connections at shutdown */
  unsigned next_loop;
};

/* One call (an HTTP/2 stream) on the server. */
struct cgrpc_server_ctx {
  cgrpc__job job; /* first: the worker pool hands it back */
  cgrpc__task done_task;   /* the worker's way back to the loop */
  cgrpc__task finish_node; /* cgrpc_server_ctx_finish()'s */
  cgrpc__server_conn *conn; /* NULL once the connection is gone */
  cgrpc_server *server;
  cgrpc__loop *loop;
  struct cgrpc_server_ctx *prev, *next;
  int32_t stream_id;
  const cgrpc__method_entry *method;
  char *path;
  char *authority;
  const char *peer; /* the connection's, outlives the call */
  /* Request metadata: kept raw in the arena as it arrives, and turned into
   * |metadata| only if the handler asks (most never do). */
  struct cgrpc__raw_header *raw_headers, **raw_tail;
  cgrpc_metadata_array *metadata;
  int64_t deadline_ns; /* 0: none */
  cgrpc__timer deadline_timer;
  cgrpc__deframer deframer;
  const uint8_t *request; /* in the arena, or request_owned */
  uint8_t *request_owned; /* a decompressed request */
  size_t request_len;
  int n_requests;
  size_t header_bytes; /* request headers seen so far, for the cap */
  int compressed_gzip; /* grpc-encoding: gzip */

  /* Request-header checks, decided at the end of the headers. */
  unsigned bad_method : 1;
  unsigned bad_content_type : 1;
  unsigned bad_encoding : 1;
  unsigned headers_done : 1;
  unsigned remote_closed : 1;
  unsigned handler_running : 1;
  unsigned responded : 1;
  unsigned stream_closed : 1;
  unsigned linked : 1; /* in conn->calls */
  atomic_int cancelled;
  unsigned char admitted; /* counted in server->active_rpcs; loop thread */

  cgrpc__arena arena;

  /* The handler's results. */
  ProtobufCMessage *request_msg;
  ProtobufCMessage *response_msg;
  cgrpc_status_code code;
  char *status_message;
  cgrpc_metadata_array *initial_md;
  cgrpc_metadata_array *trailing_md;
  uint8_t *response;
  size_t response_len, response_off;

  /* Streaming methods only (st != NULL). */
  cgrpc__stream *st;
  cgrpc__deferred notify; /* async callbacks, loop thread */
  atomic_int posted;      /* loop tasks in flight for this call */
  cgrpc_server_read_cb read_cb;
  void *read_user_data;
  cgrpc_server_write_cb write_cb;
  void *write_user_data;
  /* Guarded by st->lock and written by application threads: kept out of
   * the bitfields below, which the loop writes without the lock. */
  unsigned char read_pending;
  unsigned char want_headers;
  unsigned headers_submitted : 1;
  unsigned finished : 1;     /* no more messages: the provider may end */
  unsigned app_finished : 1; /* a detached call's finish reached the loop */
  /* Set by the loop when it ends a call whose response had begun; the
   * trailers then carry this instead of the handler's outcome. */
  cgrpc_status_code fail_code;
  char *fail_message;
  atomic_int detached;
  atomic_int finish_called;
};

struct cgrpc__server_conn {
  cgrpc__h2conn h2;
  cgrpc__server_loop *sl;
  cgrpc__server_conn *prev, *next;
  struct cgrpc_server_ctx *calls;
  int shutdown_ping_sent;
  /* Closes a connection that never completes the HTTP/2 handshake. */
  cgrpc__timer handshake_timer;
};

/* Takes a freshly accepted socket onto |sl|'s loop.  Loop thread only. */
void cgrpc__server_conn_accept(cgrpc__server_loop *sl, int fd,
                               const char *peer);

/* Graceful shutdown of one connection: GOAWAY(2^31-1) + PING, then the
 * final GOAWAY when the PING comes back. */
void cgrpc__server_conn_begin_shutdown(cgrpc__server_conn *conn);

/* Tells the server a connection went away (for shutdown's wait). */
void cgrpc__server_conn_gone(cgrpc_server *server);

/* Counts |call| in the server's concurrent RPCs before its handler runs.
 * Returns 1, or 0 when max_concurrent_rpcs calls are running already: the
 * call has then been answered RESOURCE_EXHAUSTED (Trailers-Only) and its
 * handler must not run.  Loop thread only. */
int cgrpc__server_call_admit(struct cgrpc_server_ctx *call);
/* Gives back the slot cgrpc__server_call_admit() took, if it took one.
 * Loop thread only. */
void cgrpc__server_call_leave(struct cgrpc_server_ctx *call);

/* Frees a call's memory.  Loop thread only. */
void cgrpc__server_call_free(struct cgrpc_server_ctx *call);

/* Frees |call| once nothing refers to it any more: the stream is closed,
 * no handler runs, a detached call was finished, no task is in flight.
 * Returns nonzero if it was freed.  Loop thread only. */
int cgrpc__server_call_release(struct cgrpc_server_ctx *call);

/* ---- streaming (stream.c) ---- */

/* Nonzero when the method reads a request stream (client-streaming, bidi). */
int cgrpc__server_call_reads_stream(const struct cgrpc_server_ctx *call);

/* Allocates the stream queues when the method streams.  Returns 0 or
 * CGRPC_ERR_NOMEM. */
int cgrpc__server_stream_init(struct cgrpc_server_ctx *call);

/* Loop side: a received message, the end of the requests, the end of the
 * stream. */
int cgrpc__server_stream_on_message(struct cgrpc_server_ctx *call,
                                    const uint8_t *data, size_t len);
void cgrpc__server_stream_on_end(struct cgrpc_server_ctx *call);
void cgrpc__server_stream_on_close(struct cgrpc_server_ctx *call);
/* How many of |len| received bytes may be given back to the peer now. */
size_t cgrpc__server_stream_account(struct cgrpc_server_ctx *call, size_t len);

/* The handler's work is over (returned, or finished when detached): send
 * what is left and the trailers.  Loop thread. */
void cgrpc__server_stream_finish(struct cgrpc_server_ctx *call);

/* From conn.c, for stream.c: the final response when no headers were sent
 * yet (Trailers-Only, or headers + reply + trailers). */
void cgrpc__server_call_respond(struct cgrpc_server_ctx *call);
/* Ends a call with |code| now, whatever its handler does (loop thread). */
void cgrpc__server_call_abort(struct cgrpc_server_ctx *call,
                              cgrpc_status_code code, const char *message);
/* Packs the handler's reply (any thread). */
void cgrpc__server_call_pack_response(struct cgrpc_server_ctx *call);

/* Trailers of a call, submitted after the last message. */
void cgrpc__server_submit_trailers(struct cgrpc_server_ctx *call);

/* Ends a call whose response headers went out: drops what is queued, stops
 * the handler's reads and writes, and sends |code| in the trailers. */
void cgrpc__server_stream_fail(struct cgrpc_server_ctx *call,
                               cgrpc_status_code code, const char *message);

#endif /* CGRPC_SERVER_INTERNAL_H */
