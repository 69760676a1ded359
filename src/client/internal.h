/* SPDX-License-Identifier: MIT */
/*
 * Client internals: the channel (one loop thread, one current connection,
 * reconnect with backoff) and its calls, and what channel.c and call.c ask
 * of each other.
 *
 * Lifetimes.  A call holds a reference on its channel, and so does every
 * connection and queued channel task; cgrpc_channel_del() drops the
 * application's.  The channel's memory and thread go with the last
 * reference, so a call the application still holds stays usable (it has
 * ended with CANCELLED) after the channel was deleted.
 */
#ifndef CGRPC_CLIENT_INTERNAL_H
#define CGRPC_CLIENT_INTERNAL_H

#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/un.h>

#include "call/endpoint.h"
#include "cgrpc/call.h"
#include "cgrpc/call_credentials.h"
#include "cgrpc/channel.h"
#include "cgrpc/tls.h"
#include "client/service_config.h"
#include "h2/conn.h"
#include "h2/hdrs.h"
#include "client/target.h"
#include "io/dns.h"
#include "io/loop.h"
#include "io/tls.h"
#include "util/log.h"

struct cgrpc_channel_options {
  int64_t max_recv;
  int64_t max_send;
  int compression; /* the default for requests (a cgrpc_compression) */
  char *authority;
  cgrpc_channel_credentials *creds; /* a reference; NULL: plaintext */
  char *target_name_override;
  cgrpc_tls_session_cache *sessions; /* a reference, or NULL */
  cgrpc_call_credentials *call_creds; /* a reference, or NULL */
  int insecure_call_creds;            /* allowed on plaintext too */
  cgrpc__service_config *service_config; /* a reference, or NULL */
  int64_t dns_timeout_ms;
  cgrpc_log_cb log_cb;
  void *log_user_data;
  /* Keepalive (gRFC A8): the time between pings (CGRPC__KEEPALIVE_OFF:
   * none; on the channel's copy, doubled by a "too_many_pings" GOAWAY), how
   * long a ping may go unanswered, and whether to ping with no calls. */
  int64_t keepalive_time_ms;
  int64_t keepalive_timeout_ms;
  int keepalive_permit_without_calls;
};

typedef struct cgrpc__client_conn cgrpc__client_conn;

enum {
  CHANNEL_IDLE,
  CHANNEL_CONNECTING,
  CHANNEL_READY,
  CHANNEL_TRANSIENT_FAILURE
};

struct cgrpc_channel {
  atomic_int refs;
  /* Calls the application holds (returned to it, not yet released): the
   * references cgrpc_channel_del() does not wait for. */
  atomic_int app_calls;
  atomic_int del_waiting; /* cgrpc_channel_del() waits for references */
  struct cgrpc_channel_options opts;
  cgrpc__logger log;
  /* The parsed target: its host and port (for a "unix:" target the target
   * itself, for messages), its addresses when they are known without a
   * lookup, the DNS server to ask. */
  cgrpc__target target;
  char *authority;
  cgrpc__loop *loop;
  /* TLS (NULL: plaintext): the context, the name the server's certificate
   * must carry, and the sessions for resumption (loop thread). */
  SSL_CTX *tls_ctx;
  char *tls_name;
  int tls_skip_name;
  cgrpc__tls_sessions tls_sessions;

  /* Guards |closing| against new calls, and |closed| (cgrpc_channel_del's
   * wait). */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int closing;
  int closed; /* the close task ran and every connection is gone */
  cgrpc__task close_task;

  /* Loop thread only. */
  int state;
  int close_started;
  cgrpc__client_conn *conn;    /* current: connecting or ready */
  cgrpc__client_conn *conns;   /* every live one, draining ones too */
  struct cgrpc_call *pending;  /* calls waiting for a connection */
  /* Calls waiting out a retry backoff (call.c; prev/next as in pending). */
  struct cgrpc_call *backing_off;
  /* retryThrottling (gRFC A6), in thousandths of a token; loop thread. */
  int retry_tokens, retry_max_tokens, retry_token_ratio;
  int64_t backoff_ms;
  cgrpc__timer backoff_timer;
  char last_error[256];
  char lost_reason[256]; /* why the connection being torn down went */
  /* DNS targets: the resolver (NULL for the others, and once closed), the
   * addresses of the last lookup, when it started, and whether a
   * connection dropped or failed since (then the next connection attempt
   * looks the name up again, at most once every 30 s). */
  cgrpc__dns *dns;
  cgrpc__addr *resolved;
  size_t n_resolved;
  int64_t resolved_at_ns;
  int resolve_stale;
};

struct cgrpc__client_conn {
  cgrpc__h2conn h2;
  cgrpc_channel *ch;
  cgrpc__client_conn *prev_conn, *next_conn;
  cgrpc__addr *addrs; /* the addresses to try, in order; its own copy */
  size_t n_addrs, next_addr;
  int resolving; /* waiting for the channel's lookup */
  int connecting_fd;
  cgrpc__watch connect_watch;
  cgrpc__timer connect_timer;
  int ready;
  int started; /* the h2 connection runs (TLS handshake, then HTTP/2) */
  cgrpc__ep *calls; /* the calls bound to a stream of this connection */
};

enum { CALL_NEW, CALL_STARTED };

/* Kick requests of a client call (beyond the endpoint's own). */
enum {
  CALL_REQ_START = CGRPC__EP_REQ_SIDE << 0,
  CALL_REQ_CANCEL = CGRPC__EP_REQ_SIDE << 1
};

struct cgrpc_call {
  cgrpc__ep ep; /* first: the endpoint is the call */
  cgrpc_channel *ch; /* a reference, dropped when the call is freed */
  const cgrpc_method_desc *method;
  /* The service config's entry for the method (the channel holds the
   * config), or NULL; and the send limit it and the channel make. */
  const cgrpc__method_config *mc;
  int64_t max_send;
  cgrpc_unary_done_cb done;
  void *user_data;
  cgrpc_call_callbacks cbs;
  unsigned unary : 1;
  unsigned async : 1;
  signed char send_enc; /* the requests' encoding (a cgrpc_compression) */
  atomic_int start_state; /* CALL_NEW until cgrpc_call_start() */
  atomic_int start_called;

  /* Loop thread only. */
  struct cgrpc_call *prev, *next; /* in ch->pending */
  unsigned pending : 1;
  unsigned completed : 1; /* the outcome is final */
  unsigned done_delivered : 1;
  unsigned in_trailers : 1;
  unsigned have_grpc_status : 1;
  unsigned bad_content_type : 1;
  cgrpc__hdrs hdrs;      /* request headers, kept for a transparent retry */
  size_t timeout_index;  /* where grpc-timeout goes in hdrs (0: none) */
  int attempts;          /* times the request was submitted */
  /* Retries of the service config's retryPolicy (gRFC A6): attempts made
   * (1 for the original), the next backoff's ceiling, the backoff timer,
   * and where grpc-previous-rpc-attempts is in hdrs (0: not yet). */
  int policy_attempts;
  int64_t retry_backoff_ns;
  cgrpc__timer retry_timer;
  unsigned backing_off : 1;
  unsigned retry_committed : 1; /* too large a request to keep */
  unsigned has_pushback : 1;    /* grpc-retry-pushback-ms came */
  int64_t pushback_ms;          /* its value; -1: not a valid one */
  size_t retry_header_index;
  char retry_header_value[12];
  int64_t deadline_ns;   /* 0: none */
  cgrpc__timer deadline_timer;
  int n_responses;
  int http_status;
  /* Pre-start failure (reported on the loop so callbacks stay there). */
  cgrpc_status_code early_code;
  const char *early_message;

  /* The outcome; written on the loop until |completed|, then read by the
   * application (cgrpc_call_finish) under ep.st.lock's ordering. */
  cgrpc_status status;
  /* Guarded by ep.st.lock. */
  unsigned char headers_received;
};

/* ---- from call.c, for channel.c (loop thread) ---- */

/* Submits |call| on the channel's current, ready connection. */
void cgrpc__call_submit(struct cgrpc_call *call);
/* Ends |call| with |code| (resets its stream if it has one). */
void cgrpc__call_fail(struct cgrpc_call *call, cgrpc_status_code code,
                      const char *message);
/* Ends every call of |ch| that waits out a retry backoff with |code|. */
void cgrpc__call_fail_backing_off(cgrpc_channel *ch, cgrpc_status_code code,
                                  const char *message);
/* The session callbacks of every client connection. */
nghttp2_session_callbacks *cgrpc__client_callbacks(void);

/* ---- from channel.c, for call.c ---- */

/* Queues a started call for a connection, or submits it on the ready one
 * (loop thread). */
void cgrpc__channel_enqueue(cgrpc_channel *ch, struct cgrpc_call *call);
/* Takes a call out of the channel's waiting list (loop thread). */
void cgrpc__channel_dequeue(cgrpc_channel *ch, struct cgrpc_call *call);
/* A GOAWAY arrived on |conn|: new calls go to a new connection. */
void cgrpc__channel_conn_goaway(cgrpc__client_conn *conn,
                                const nghttp2_goaway *goaway);
/* References on the channel (any thread); the last one frees it. */
void cgrpc__channel_ref(cgrpc_channel *ch);
void cgrpc__channel_unref(cgrpc_channel *ch);

#endif /* CGRPC_CLIENT_INTERNAL_H */
