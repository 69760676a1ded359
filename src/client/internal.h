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
#include "call/intercept.h"
#include "cgrpc/call.h"
#include "cgrpc/call_credentials.h"
#include "cgrpc/channel.h"
#include "cgrpc/tls.h"
#include "client/service_config.h"
#include "h2/conn.h"
#include "h2/hdrs.h"
#include "client/resolver.h"
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
  cgrpc_tls_session_cache *sessions;     /* a reference, or NULL */
  cgrpc_call_credentials *call_creds;    /* a reference, or NULL */
  int insecure_call_creds;               /* allowed on plaintext too */
  cgrpc__service_config *service_config; /* a reference, or NULL */
  int64_t dns_timeout_ms;
  int64_t dns_min_interval_ms; /* between two lookups of the name */
  cgrpc_log_cb log_cb;
  void *log_user_data;
  /* Keepalive (gRFC A8): the time between pings (CGRPC__KEEPALIVE_OFF:
   * none; on the channel's copy, doubled by a "too_many_pings" GOAWAY), how
   * long a ping may go unanswered, and whether to ping with no calls. */
  int64_t keepalive_time_ms;
  int64_t keepalive_timeout_ms;
  int keepalive_permit_without_calls;
  int lb_policy;                 /* CGRPC__LB_*; the service config's wins */
  cgrpc_connect_backoff backoff; /* every field set */
  int64_t idle_timeout_ms;       /* 0: never idle */
  /* gRFC A6's retry buffer: bytes of sent requests kept per call, and by
   * all of a channel's calls together. */
  int64_t retry_buffer_per_call;
  int64_t retry_buffer_per_channel;
  cgrpc_resolver *resolver;   /* a reference, or NULL: the target's own */
  cgrpc__ichain interceptors; /* each options object and channel: its own */
};

typedef struct cgrpc__client_conn cgrpc__client_conn;
typedef struct cgrpc__subchannel cgrpc__subchannel;

/* A watch of cgrpc_channel_watch_state(), until it fires. */
typedef struct cgrpc__state_watch {
  struct cgrpc__state_watch *next;
  cgrpc_connectivity_state last_seen;
  cgrpc_channel_state_cb cb;
  void *user_data;
} cgrpc__state_watch;

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
  int lb_policy; /* CGRPC__LB_*: the service config's, else the options' */

  /* Guards |closing| against new calls, |closed| (cgrpc_channel_del's
   * wait), the watches, and |public_state|'s waiters. */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  pthread_cond_t state_cond; /* CLOCK_MONOTONIC: public_state changed */
  int closing;
  int closed; /* the close task ran and every connection is gone */
  cgrpc__state_watch *watches;
  int watch_task_posted, connect_task_posted;
  cgrpc__task close_task, watch_task, connect_task;
  /* The state as the application reads it (written on the loop). */
  atomic_int public_state;

  /* Loop thread only. */
  int state; /* a cgrpc_connectivity_state */
  int close_started;
  cgrpc__client_conn *conns;  /* every live one, draining ones too */
  struct cgrpc_call *pending; /* calls waiting for a connection */
  /* Calls waiting out a retry backoff (call.c; prev/next as in pending). */
  struct cgrpc_call *backing_off;
  /* retryThrottling (gRFC A6), in thousandths of a token; loop thread. */
  int retry_tokens, retry_max_tokens, retry_token_ratio;
  /* Bytes in the retry buffers of the channel's calls (any thread). */
  atomic_size_t retry_buffered;
  char last_error[256];  /* the last connection attempt's failure */
  char lost_reason[256]; /* why the connection being torn down went */
  /* The subchannels, one per address, in the resolver's order (lb.c);
   * pick_first's chosen one and where its pass is; round_robin's next. */
  cgrpc__subchannel **subs;
  size_t n_subs;
  cgrpc__subchannel *selected;
  size_t pf_index;
  int pf_failed_pass; /* every address failed: each retries on its own */
  size_t rr_next;
  int has_addresses; /* |subs| came from a resolution (or the target) */
  /* Idle: when the last call ended, and the timer that looks. */
  int64_t last_call_ns;
  cgrpc__timer idle_timer;
  /* DNS targets: the resolver (NULL for the others, and once closed),
   * whether a lookup runs, when the last one started, whether a
   * connection dropped or failed since (the name is looked up again, at
   * most once every 30 s), and the timer of a delayed or backed-off
   * lookup with its backoff. */
  cgrpc__dns *dns;
  int resolving;
  int64_t resolved_at_ns;
  int resolve_stale;
  int resolve_failed; /* the last lookup failed: |resolve_timer| retries */
  atomic_int ready_waiters; /* threads in cgrpc_channel_wait_for_ready() */
  int64_t resolve_backoff_ms;
  cgrpc__timer resolve_timer;
  /* An application's resolver (CUSTOM targets; a reference, else NULL)
   * and the channel's link to it.  The timer above then calls its resolve
   * callback (|resolve_stale| asks for that), or ends the backoff after a
   * failed or empty list (|resolve_failed|). */
  cgrpc_resolver *resolver;
  cgrpc__resolver_link resolver_link;
};

/* One address of the channel and its connection (subchannel.c). */
struct cgrpc__subchannel {
  cgrpc_channel *ch;
  cgrpc__addr addr;
  char name[CGRPC__SOCK_NAME_MAX]; /* the address, as text */
  int state;                       /* cgrpc_connectivity_state, not SHUTDOWN */
  cgrpc__client_conn *conn;        /* the connection: connecting or ready */
  /* Connection backoff (gRPC's connection-backoff.md): the next
   * attempt's backoff, and when the current attempt's backoff ends. */
  int64_t backoff_ms;
  int64_t attempt_deadline_ns;
  cgrpc__timer backoff_timer; /* TRANSIENT_FAILURE until it fires */
  int keep;                   /* lb.c: kept by an address update */
};

struct cgrpc__client_conn {
  cgrpc__h2conn h2;
  cgrpc_channel *ch;
  cgrpc__subchannel *sc; /* its subchannel; NULL once it drains alone */
  cgrpc__client_conn *prev_conn, *next_conn;
  int connecting_fd;
  cgrpc__watch connect_watch;
  cgrpc__timer connect_timer;
  int ready;
  int got_settings; /* the server's SETTINGS came: the backoff resets */
  int started;      /* the h2 connection runs (TLS handshake, then HTTP/2) */
  cgrpc__ep *calls; /* the calls bound to a stream of this connection */
};

enum { CALL_NEW, CALL_STARTED };

/* Kick requests of a client call (beyond the endpoint's own). */
enum {
  CALL_REQ_START = CGRPC__EP_REQ_SIDE << 0,
  CALL_REQ_CANCEL = CGRPC__EP_REQ_SIDE << 1
};

struct cgrpc_call {
  cgrpc__ep ep;      /* first: the endpoint is the call */
  cgrpc_channel *ch; /* a reference, dropped when the call is freed */
  const cgrpc_method_desc *method;
  /* The service config's entry for the method (the channel holds the
   * config), or NULL; and the send limit it and the channel make. */
  const cgrpc__method_config *mc;
  int64_t max_send;
  cgrpc_unary_done_cb done;
  void *user_data;
  cgrpc_call_callbacks cbs;
  /* The call's run through the channel's interceptors, or NULL without
   * any (call/intercept.h). */
  cgrpc__icall *ic;
  unsigned unary : 1;
  unsigned async : 1;
  unsigned wait_for_ready : 1; /* waits out TRANSIENT_FAILURE */
  signed char send_enc;   /* the requests' encoding (a cgrpc_compression) */
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
  cgrpc__hdrs hdrs;     /* request headers, kept for a transparent retry */
  size_t timeout_index; /* where grpc-timeout goes in hdrs (0: none) */
  int attempts;         /* times the request was submitted */
  /* Retries of the service config's retryPolicy (gRFC A6): attempts made
   * (1 for the original), the next backoff's ceiling, the backoff timer,
   * and where grpc-previous-rpc-attempts is in hdrs (0: not yet). */
  int policy_attempts;
  int64_t retry_backoff_ns;
  cgrpc__timer retry_timer;
  unsigned backing_off : 1;
  unsigned has_pushback : 1; /* grpc-retry-pushback-ms came */
  int64_t pushback_ms;       /* its value; -1: not a valid one */
  size_t retry_header_index;
  char retry_header_value[12];
  int64_t deadline_ns; /* 0: none */
  cgrpc__timer deadline_timer;
  int n_responses;
  int http_status;
  /* The response's content-type (cut short), for the status message of an
   * answer that is not gRPC's (a proxy's own error page). */
  char content_type[48];
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

/* Submits |call| on |conn|, a ready connection that takes requests. */
void cgrpc__call_submit(struct cgrpc_call *call, cgrpc__client_conn *conn);
/* Ends |call| with |code| (resets its stream if it has one). */
void cgrpc__call_fail(struct cgrpc_call *call, cgrpc_status_code code,
                      const char *message);
/* Ends every call of |ch| that waits out a retry backoff with |code|. */
void cgrpc__call_fail_backing_off(cgrpc_channel *ch, cgrpc_status_code code,
                                  const char *message);
/* The session callbacks of every client connection. */
nghttp2_session_callbacks *cgrpc__client_callbacks(void);

/* ---- from channel.c, for call.c and the rest (loop thread) ---- */

/* Queues a started call for a connection, or submits it on a ready one. */
void cgrpc__channel_enqueue(cgrpc_channel *ch, struct cgrpc_call *call);
/* Takes a call out of the channel's waiting list. */
void cgrpc__channel_dequeue(cgrpc_channel *ch, struct cgrpc_call *call);
/* A call of |ch| ended (for the idle timeout). */
void cgrpc__channel_call_ended(cgrpc_channel *ch);
/* Whether anything on |ch| may need its loop at any moment: calls in
 * flight, waiters for READY.  Loop thread (its driver). */
int cgrpc__channel_busy(const cgrpc_channel *ch);
/* A GOAWAY arrived on |conn|: new calls go to another connection. */
void cgrpc__channel_conn_goaway(cgrpc__client_conn *conn,
                                const nghttp2_goaway *goaway);
/* The server's first SETTINGS arrived on |conn|. */
void cgrpc__channel_conn_settings(cgrpc__client_conn *conn);
/* A stream of |conn| closed: a connection left to drain closes with its
 * last one. */
void cgrpc__channel_conn_stream_closed(cgrpc__client_conn *conn);
/* Moves the channel to |state| (a cgrpc_connectivity_state): tells the
 * watchers; READY submits the waiting calls, TRANSIENT_FAILURE fails
 * those that do not wait for ready. */
void cgrpc__channel_set_state(cgrpc_channel *ch, int state);
/* Submits waiting calls while the policy picks a connection for them. */
void cgrpc__channel_submit_pending(cgrpc_channel *ch);
/* The target as messages name it. */
const char *cgrpc__channel_target_name(const cgrpc_channel *ch);
/* References on the channel (any thread); the last one frees it. */
void cgrpc__channel_ref(cgrpc_channel *ch);
void cgrpc__channel_unref(cgrpc_channel *ch);
/* Every connection is gone after the close. */
void cgrpc__channel_closed(cgrpc_channel *ch);

/* ---- subchannel.c: an address and its connection (loop thread) ---- */

/* A subchannel for |addr|, IDLE; NULL when out of memory. */
cgrpc__subchannel *cgrpc__subchannel_new(cgrpc_channel *ch,
                                         const cgrpc__addr *addr);
/* Frees |sc|: a connection in progress is abandoned, a ready one drains
 * on its own. */
void cgrpc__subchannel_del(cgrpc__subchannel *sc);
/* Starts connecting an IDLE subchannel.  Its state changes are reported
 * to cgrpc__lb_subchannel_changed(), but never from within this call: a
 * failure at once leaves it in TRANSIENT_FAILURE, reported later. */
void cgrpc__subchannel_connect(cgrpc__subchannel *sc);
/* Back to IDLE without a report: an attempt or a backoff is abandoned, a
 * ready connection drains on its own. */
void cgrpc__subchannel_reset(cgrpc__subchannel *sc);
/* Whether |sc| takes a new call now; its connection. */
cgrpc__client_conn *cgrpc__subchannel_pickable(cgrpc__subchannel *sc);
/* The connection left its subchannel (GOAWAY): the subchannel goes IDLE
 * and reports it; the connection drains on its own. */
void cgrpc__subchannel_conn_detach(cgrpc__client_conn *conn);
/* Closes every connection of the channel with its calls cancelled; the
 * subchannels are left without one. */
void cgrpc__subchannel_close_all(cgrpc_channel *ch);

/* ---- lb.c: resolution, the subchannel list, the policies ---- */

/* Sets up the channel's part of lb.c (at its creation). */
void cgrpc__lb_init(cgrpc_channel *ch);
/* Leaves IDLE: resolves if needed, then connects as the policy says. */
void cgrpc__lb_exit_idle(cgrpc_channel *ch);
/* |sc| changed state from |old|. */
void cgrpc__lb_subchannel_changed(cgrpc__subchannel *sc, int old);
/* A connection for a new call, or NULL. */
cgrpc__client_conn *cgrpc__lb_pick(cgrpc_channel *ch);
/* A connection dropped or failed: the name is looked up again. */
void cgrpc__lb_request_resolution(cgrpc_channel *ch);
/* Goes IDLE (the idle timeout): connections drain, the policy stops. */
void cgrpc__lb_go_idle(cgrpc_channel *ch);
/* The channel closes: the subchannels and the resolver go. */
void cgrpc__lb_shutdown(cgrpc_channel *ch);
/* The task an application's resolver posts after an update (a
 * cgrpc__task_cb; |user_data| is the channel, with a reference). */
void cgrpc__lb_resolver_updated(void *user_data);

#endif /* CGRPC_CLIENT_INTERNAL_H */
