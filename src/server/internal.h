/* SPDX-License-Identifier: MIT */
/*
 * Server internals shared by server.c (the server object, listeners,
 * shutdown), conn.c (one HTTP/2 connection and its calls), stream.c (the
 * handler's reads and writes, the response) and ctx.c (the rest of the
 * handler-facing cgrpc_server_ctx API).
 *
 * A call is an endpoint (call/endpoint.h): its memory goes with its last
 * reference, which the stream, a running handler, a detached handler that
 * has not finished, and every queued task hold.  All of those are dropped
 * on the call's loop thread, so a call is always freed there.
 */
#ifndef CGRPC_SERVER_INTERNAL_H
#define CGRPC_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "call/endpoint.h"
#include "call/intercept.h"
#include "cgrpc/server.h"
#include "h2/conn.h"
#include "io/loop.h"
#include "io/tls.h"
#include "io/sock.h"
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
  int compression; /* the default for responses (a cgrpc_compression) */
  cgrpc_log_cb log_cb;
  void *log_user_data;
  /* Connection management (gRFC A9, doc/keepalive.md); times in ms,
   * CGRPC__KEEPALIVE_OFF for "never". */
  int64_t keepalive_time_ms; /* the server's own pings */
  int64_t keepalive_timeout_ms;
  int64_t min_ping_interval_ms; /* the ping policy for clients */
  int permit_pings_without_calls;
  int max_ping_strikes; /* 0: no limit */
  int64_t max_idle_ms;
  int64_t max_age_ms;
  int64_t max_age_grace_ms;
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
  cgrpc_server_credentials *creds; /* TLS, or NULL (the server's ref) */
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
  /* Shutdown's steps, posted to the loop. */
  cgrpc__task begin_shutdown, force_close;
} cgrpc__server_loop;

enum { SERVER_NEW, SERVER_STARTED, SERVER_SHUTTING_DOWN, SERVER_STOPPED };

/* A built-in service's say in the server's life (services/ sits above
 * server/, so the server reaches it only through these).  |shutdown| runs
 * when a started server's shutdown begins, on the thread that runs it
 * (never a loop thread), before any connection is told to go away; it may
 * wait, briefly, for its streams.  |free| runs in cgrpc_server_del() once
 * the loops have stopped. */
typedef struct cgrpc__server_hook {
  void (*shutdown)(void *arg, int64_t grace_ms);
  void (*free)(void *arg);
  void *arg;
} cgrpc__server_hook;

struct cgrpc_server {
  struct cgrpc_server_options opts;
  cgrpc__logger log;

  int listen_fds[CGRPC__MAX_LISTENERS];
  cgrpc_server_credentials *listen_creds[CGRPC__MAX_LISTENERS]; /* or NULL */
  int n_listeners;
  /* The socket files of the "unix:" listeners, removed at shutdown. */
  cgrpc__sock_unix_file unix_files[CGRPC__MAX_LISTENERS];
  int n_unix_files;

  cgrpc__service_entry *services;
  size_t n_services;
  /* Open-addressing table of methods keyed by :path; size is a power of 2. */
  cgrpc__method_entry *methods;
  size_t methods_cap, n_methods;

  /* Interceptors (cgrpc_server_add_interceptor()), fixed once started. */
  cgrpc__ichain interceptors;

  cgrpc__server_loop *loops;
  int n_loops;
  cgrpc__pool pool;

  atomic_int active_rpcs; /* admitted calls not freed, under max_rpcs */

  pthread_mutex_t lock; /* guards state, live_conns and the shutdown thread */
  pthread_cond_t cond;
  int state;
  int live_conns;
  int closed_loops; /* loops that closed their connections at shutdown */
  unsigned next_loop;
  /* A shutdown begun from one of the server's own threads runs here. */
  pthread_t shutdown_thread;
  int has_shutdown_thread;
  int64_t shutdown_grace_ms;

  /* The health service (services/health.c), once enabled: set before the
   * server starts, read-only afterwards. */
  cgrpc__server_hook health;
};

/* Kick requests of a server call (beyond the endpoint's own). */
enum {
  /* Send the response headers now (cgrpc_server_ctx_send_initial_metadata,
   * or the first write). */
  SCALL_REQ_HEADERS = CGRPC__EP_REQ_SIDE << 0,
  /* The handler returned on a worker thread. */
  SCALL_REQ_HANDLER_DONE = CGRPC__EP_REQ_SIDE << 1,
  /* A detached call was finished. */
  SCALL_REQ_FINISH = CGRPC__EP_REQ_SIDE << 2
};

/* One call (an HTTP/2 stream) on the server. */
struct cgrpc_server_ctx {
  cgrpc__ep ep;             /* first: the endpoint is the call */
  cgrpc__job job;           /* the worker pool's node */
  cgrpc__server_conn *conn; /* NULL once the connection is gone */
  cgrpc_server *server;
  struct cgrpc__server_loop *sl;
  const cgrpc__method_entry *method;
  char *path;
  char *authority;
  const char *peer;          /* a copy in the arena: outlives the connection */
  cgrpc__tls_peer *tls_peer; /* the connection's, a reference; or NULL */
  /* The peer's credentials (Unix sockets), copied from the connection. */
  cgrpc__sock_cred peer_cred;
  /* Request metadata: kept raw in the arena as it arrives, and turned into
   * |metadata| only if the handler asks (most never do). */
  struct cgrpc__raw_header *raw_headers, **raw_tail;
  cgrpc_metadata_array *metadata;
  int64_t deadline_ns; /* 0: none */
  /* The request's deadline; once the response has ended while the request
   * is still open, the end of the drain (server/conn.c). */
  cgrpc__timer deadline_timer;
  /* Request bytes still dropped, while draining, before the stream is
   * reset. */
  size_t drain_left;
  int n_requests;

  /* The encodings the client's grpc-accept-encoding lists
   * (CGRPC__COMPRESS_BIT; 0 when it sent none: identity only).  Set by the
   * loop before the handler runs. */
  unsigned accept_enc;
  /* The compression asked for (the handler's, else the server's default);
   * final once headers_frozen is set (cgrpc__server_call_send_enc()). */
  signed char compression;

  /* Loop thread only. */
  const char *bad_encoding_name; /* the unsupported grpc-encoding, or NULL */
  unsigned bad_method : 1;       /* request-header checks, decided at the */
  unsigned bad_content_type : 1; /* end of the headers */
  unsigned seen_content_type : 1;
  unsigned bad_encoding : 1;
  unsigned bad_timeout : 1;
  unsigned headers_done : 1;
  unsigned draining : 1;  /* answered; dropping the rest of the request */
  unsigned responded : 1; /* the final response or trailers are on
                             their way */
  unsigned headers_submitted : 1; /* response headers with a body */
  unsigned finished : 1; /* the handler's work is over: what it queued is
                            all there will be */
  unsigned stream_closed : 1;
  /* Set by the loop when it ends a call whose response had begun; the
   * trailers then carry this instead of the handler's outcome. */
  cgrpc_status_code fail_code;
  char *fail_message;

  atomic_int cancelled;
  atomic_int detached;
  atomic_int finish_called;
  unsigned char admitted; /* counted in server->active_rpcs; loop thread */

  cgrpc__arena arena;

  /* The call's run through the server's interceptors; NULL without any
   * (or for a call no method took).  Loop thread, but for on_message
   * (call/intercept.h). */
  cgrpc__icall *ic;

  /* The handler's results (its thread, then the loop's once it is done). */
  ProtobufCMessage *request_msg;
  ProtobufCMessage *response_msg;
  cgrpc_status_code code;
  char *status_message;
  cgrpc_metadata_array *trailing_md;
  cgrpc__msg *reply; /* the packed response_msg */

  /* Guarded by ep.st.lock: handler threads and the loop. */
  cgrpc_metadata_array *initial_md;
  /* The response headers are on their way: initial metadata is final. */
  unsigned char headers_frozen;
  cgrpc_server_read_cb read_cb;
  void *read_user_data;
  cgrpc_server_write_cb write_cb;
  void *write_user_data;
  /* The library's own detached handlers (services/): told, on the loop,
   * when the call leaves its stream (cgrpc__server_ctx_on_gone()). */
  void (*gone_cb)(struct cgrpc_server_ctx *ctx, void *user_data);
  void *gone_user_data;
  unsigned char gone;
};

struct cgrpc__server_conn {
  cgrpc__h2conn h2;
  cgrpc__server_loop *sl;
  cgrpc__server_conn *prev, *next;
  cgrpc__ep *calls;          /* the calls bound to this connection's streams */
  cgrpc__tls_peer *tls_peer; /* after a TLS handshake, else NULL */
  int shutdown_ping_sent;
  /* Closes a connection that never completes the HTTP/2 handshake. */
  cgrpc__timer handshake_timer;
  /* The ping policy: when the client's last ping came (0: none since we
   * last sent HEADERS or DATA) and how many came too soon. */
  int64_t ping_last_ns;
  int ping_strikes;
  /* Max connection idle and age: one timer for both (armed only when one
   * is set), the time the last call ended (0: none yet), the age at which
   * to drain and, once draining, when the grace is over. */
  cgrpc__timer manage_timer;
  int64_t idle_since_ns;
  int64_t age_deadline_ns;
  int64_t grace_deadline_ns;
  /* The peer as accept() saw it: on a Unix socket its credentials, and its
   * whole name (h2.peer, for the log, may be cut short), allocated with
   * the connection at its length (a Unix path may take 300 bytes; an IP
   * address and port about 25, and an idle connection's memory counts). */
  cgrpc__sock_cred peer_cred;
  char peer[];
};

/* ---- conn.c ---- */

/* Takes a freshly accepted socket onto |sl|'s loop; |peer| and |cred| are
 * what cgrpc__sock_accept() reported (both copied); over |tls| when not
 * NULL (owned from here on).  Loop thread only. */
void cgrpc__server_conn_accept(cgrpc__server_loop *sl, int fd, const char *peer,
                               const cgrpc__sock_cred *cred, SSL *tls);

/* Graceful shutdown of one connection: GOAWAY(2^31-1) + PING, then the
 * final GOAWAY when the PING comes back. */
void cgrpc__server_conn_begin_shutdown(cgrpc__server_conn *conn);

/* Adds a method to the server's table.  Returns 0, CGRPC_ERR_ALREADY_EXISTS
 * or CGRPC_ERR_NOMEM. */
int cgrpc__server_methods_insert(cgrpc_server *server,
                                 const cgrpc__method_entry *entry);

/* Ends a call with |code| now, whatever its handler does: Trailers-Only, or
 * the trailers after what was sent (loop thread). */
void cgrpc__server_call_fail(struct cgrpc_server_ctx *call,
                             cgrpc_status_code code, const char *message);

/* ---- server.c ---- */

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

/* Has |cb| run on the loop thread, once, when |ctx| leaves its stream
 * (the response went, the client cancelled, the connection or the server
 * went): what a detached server-streaming handler, which has no read to
 * see a cancel with, learns it from.  A NULL |cb| takes it back.  Returns
 * 0, or 1 when the call has left its stream already (|cb| is then not
 * set and never runs).  Thread safety: any thread. */
int cgrpc__server_ctx_on_gone(struct cgrpc_server_ctx *ctx,
                              void (*cb)(struct cgrpc_server_ctx *, void *),
                              void *user_data);

/* ---- stream.c: the response ---- */

/* Nonzero when the method reads a request stream (client-streaming, bidi). */
int cgrpc__server_call_reads_stream(const struct cgrpc_server_ctx *call);

/* The handler's work is over (returned, or finished when detached): send
 * the headers if they have not gone, what is queued, the reply, then the
 * trailers; or a Trailers-Only response.  Loop thread. */
void cgrpc__server_call_respond(struct cgrpc_server_ctx *call);

/* A Trailers-Only response: one HEADERS frame with END_STREAM, |code|
 * and |message|, and the metadata given (NULL for none).  Loop thread. */
void cgrpc__server_trailers_only(struct cgrpc_server_ctx *call,
                                 cgrpc_status_code code, const char *message,
                                 const cgrpc_metadata_array *initial,
                                 const cgrpc_metadata_array *trailing);

/* The kick of a server call (cgrpc__ep_ops.kick), its async completions,
 * and its body's end (the trailers). */
void cgrpc__server_call_kick(cgrpc__ep *ep, unsigned requests);
void cgrpc__server_call_read_done(cgrpc__ep *ep, ProtobufCMessage *msg);
void cgrpc__server_call_write_done(cgrpc__ep *ep, int ok);
uint32_t cgrpc__server_call_body_end(cgrpc__ep *ep);

/* The encoding the responses go in: the compression asked for if the
 * client accepts it, else identity. */
int cgrpc__server_call_send_enc(const struct cgrpc_server_ctx *call);

/* The handler's outcome: its status code checked and its reply packed (on
 * the handler's thread, off the loop). */
void cgrpc__server_call_set_outcome(struct cgrpc_server_ctx *call,
                                    cgrpc_status_code code);

#endif /* CGRPC_SERVER_INTERNAL_H */
