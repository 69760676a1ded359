/* SPDX-License-Identifier: MIT */
/*
 * The channel: a client's connections to one target, shared by any number
 * of calls from any number of threads.  It resolves the target's name,
 * connects on the first call to one address (pick_first) or to all of
 * them (round_robin), and reconnects (with backoff) when a connection is
 * lost.
 *
 * The channel's thread.  Each channel runs its connections, timers and
 * callbacks on one event loop, driven by one thread at a time: the
 * channel's own thread, or, while it waits for its own call, a thread
 * blocked in cgrpc_unary_call() on that channel when the channel's thread
 * had nothing else to do (the loop lends itself to the waiter, which saves
 * two thread wake-ups per call).  "The channel's thread" in this API means
 * whichever of them drives the loop: callbacks (async completions, state
 * watches) may run on an application thread inside its cgrpc_unary_call(),
 * but never two at once, never after that call has returned, and with the
 * same rules as on the channel's own thread (they must not block; blocking
 * calls from them fail with CGRPC_ERR_WOULD_DEADLOCK or
 * FAILED_PRECONDITION).  A callback that takes a lock the blocked caller
 * holds deadlocks either way: with the loop lent, on the caller's thread;
 * without, because the caller waits for the loop that waits for the lock.
 */
#ifndef CGRPC_CHANNEL_H
#define CGRPC_CHANNEL_H

#include <stdint.h>

#include "cgrpc/call_credentials.h"
#include "cgrpc/compression.h"
#include "cgrpc/export.h"
#include "cgrpc/log.h"
#include "cgrpc/resolver.h"
#include "cgrpc/tls.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cgrpc_channel cgrpc_channel;
typedef struct cgrpc_channel_options cgrpc_channel_options;

/*
 * A channel's connectivity state (gRPC's doc/connectivity-semantics-and-
 * api.md):
 *
 *   IDLE               no connection, none being made: the first call (or
 *                      cgrpc_channel_get_state(ch, 1)) starts one
 *   CONNECTING         resolving the name, connecting, TLS handshake
 *   READY              a connection takes calls
 *   TRANSIENT_FAILURE  every address failed; the channel keeps trying
 *                      (with backoff) and stays here until one connects.
 *                      Calls fail at once with UNAVAILABLE unless they
 *                      wait for ready
 *   SHUTDOWN           cgrpc_channel_del() was called
 *
 * READY goes back to IDLE when the connection drops or the server sends
 * GOAWAY (pick_first; round_robin reconnects at once), and when no call
 * ran for the idle timeout.
 */
typedef enum cgrpc_connectivity_state {
  CGRPC_CHANNEL_IDLE = 0,
  CGRPC_CHANNEL_CONNECTING = 1,
  CGRPC_CHANNEL_READY = 2,
  CGRPC_CHANNEL_TRANSIENT_FAILURE = 3,
  CGRPC_CHANNEL_SHUTDOWN = 4
} cgrpc_connectivity_state;

/* "IDLE", "CONNECTING", "READY", "TRANSIENT_FAILURE", "SHUTDOWN", or
 * "UNKNOWN". */
CGRPC_EXTERN const char *
cgrpc_connectivity_state_name(cgrpc_connectivity_state state);

/*
 * Connection backoff (gRPC's doc/connection-backoff.md): the first
 * attempt gets |initial_ms|, each later one |multiplier| times the last
 * (at most |max_ms|), each randomised by +-|jitter|; an attempt that fails
 * sooner waits out its backoff before the next, and each attempt may take
 * at least |min_connect_timeout_ms| (TCP connect and TLS handshake).  A
 * connection that got the server's SETTINGS starts over at |initial_ms|.
 * Zero fields take the defaults: 1000, 1.6, 0.2, 120000, 20000.
 */
typedef struct cgrpc_connect_backoff {
  int64_t initial_ms;
  double multiplier;
  double jitter;
  int64_t max_ms;
  int64_t min_connect_timeout_ms;
} cgrpc_connect_backoff;

/* Creates options with the defaults.  Returns 0 or CGRPC_ERR_NOMEM. */
CGRPC_EXTERN int cgrpc_channel_options_new(cgrpc_channel_options **opts_ptr);

/* Frees |opts|.  Passing NULL does nothing. */
CGRPC_EXTERN void cgrpc_channel_options_del(cgrpc_channel_options *opts);

/* Largest response message accepted (default 4 MiB); a larger one fails the
 * call with RESOURCE_EXHAUSTED.  -1 means no limit. */
CGRPC_EXTERN void cgrpc_channel_options_set_max_receive_message_length(
    cgrpc_channel_options *opts, int64_t max_bytes);

/* Largest request message sent (default: no limit, -1); a larger one fails
 * the call with RESOURCE_EXHAUSTED before anything is sent. */
CGRPC_EXTERN void
cgrpc_channel_options_set_max_send_message_length(cgrpc_channel_options *opts,
                                                  int64_t max_bytes);

/*
 * Compresses the requests of the channel's calls with |compression| (a
 * cgrpc_compression; default identity, which CGRPC_COMPRESS_DEFAULT also
 * means here), unless a call chooses otherwise
 * (cgrpc_call_options.compression).  See compression.h for what is sent.
 *
 * Thread safety: one thread at a time per object.
 *
 * Returns 0, or CGRPC_ERR_INVALID_ARGUMENT (|opts| is NULL or
 * |compression| is not a cgrpc_compression).
 */
CGRPC_EXTERN int
cgrpc_channel_options_set_default_compression(cgrpc_channel_options *opts,
                                              int compression);

/* Overrides the ":authority" header (default: the target's host:port, or
 * "localhost" for a Unix-domain socket target). */
CGRPC_EXTERN int
cgrpc_channel_options_set_authority(cgrpc_channel_options *opts,
                                    const char *authority);

/*
 * Bounds a name lookup of a "dns:" (or plain "host:port") target to
 * |timeout_ms| (default 20000; 0 or less restores it).  A lookup that
 * takes longer fails the calls waiting for it with UNAVAILABLE and a
 * message that names the host.
 * Thread safety: one thread at a time per object.
 */
CGRPC_EXTERN void
cgrpc_channel_options_set_dns_timeout_ms(cgrpc_channel_options *opts,
                                         int64_t timeout_ms);

/*
 * The shortest time between two lookups of a "dns:" target's name
 * (default 30000, as gRPC's grpc.dns_min_time_between_resolutions_ms; a
 * negative value restores it).  The name is looked up again when a
 * connection drops or fails, but not sooner than this after the last
 * lookup began.  Thread safety: one thread at a time per object.
 */
CGRPC_EXTERN void cgrpc_channel_options_set_dns_min_resolution_interval_ms(
    cgrpc_channel_options *opts, int64_t interval_ms);

/*
 * Makes channels from these options use TLS with |creds| (see tls.h); NULL
 * goes back to plaintext (the default).  The options keep a reference.
 * Thread safety: one thread at a time per object.
 */
CGRPC_EXTERN void
cgrpc_channel_options_set_credentials(cgrpc_channel_options *opts,
                                      cgrpc_channel_credentials *creds);

/*
 * The name the server's certificate must carry (and the SNI sent), instead
 * of the target's host: for tests whose certificate names another host
 * (grpc's ssl_target_name_override, the interop client's
 * --server_host_override).  :authority is not changed (see
 * cgrpc_channel_options_set_authority()).  Returns 0,
 * CGRPC_ERR_INVALID_ARGUMENT (NULL or empty) or CGRPC_ERR_NOMEM.
 */
CGRPC_EXTERN int
cgrpc_channel_options_set_ssl_target_name_override(cgrpc_channel_options *opts,
                                                   const char *name);

/*
 * Makes channels from these options keep and resume their TLS sessions in
 * |cache|, which other channels may share (see tls.h); NULL: each channel
 * resumes only its own (the default).  The options keep a reference.
 */
CGRPC_EXTERN void
cgrpc_channel_options_set_tls_session_cache(cgrpc_channel_options *opts,
                                            cgrpc_tls_session_cache *cache);

/*
 * Makes channels from these options add |creds| to every call (see
 * call_credentials.h); NULL: none (the default).  The options keep a
 * reference.  A channel with call credentials but no TLS is refused unless
 * cgrpc_channel_options_allow_insecure_call_credentials() allows it with a
 * nonzero |allow| (gRPC sends call credentials over TLS only; a test, or a
 * trusted Unix socket, may want them in plaintext).
 */
CGRPC_EXTERN void
cgrpc_channel_options_set_call_credentials(cgrpc_channel_options *opts,
                                           cgrpc_call_credentials *creds);
CGRPC_EXTERN void cgrpc_channel_options_allow_insecure_call_credentials(
    cgrpc_channel_options *opts, int allow);

/*
 * Gives channels from these options a service config (gRPC's
 * doc/service_config.md), in JSON:
 *
 *   {"methodConfig": [{"name": [{"service": "helloworld.Greeter"}],
 *                      "timeout": "1.5s", "waitForReady": true,
 *                      "maxRequestMessageBytes": 1048576,
 *                      "retryPolicy": {"maxAttempts": 3,
 *                                      "initialBackoff": "0.1s",
 *                                      "maxBackoff": "1s",
 *                                      "backoffMultiplier": 2,
 *                                      "retryableStatusCodes":
 *                                          ["UNAVAILABLE"]}}],
 *    "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
 *    "loadBalancingConfig": [{"round_robin": {}}]}
 *
 * A methodConfig applies to the methods its names list: a name with a
 * service and a method, else one with only the service, else the default
 * (an empty name {}).  Applied to every call now: "timeout" caps the
 * call's own deadline, and the message limits apply where they are lower
 * than the channel's (cgrpc_channel_options_set_max_*_message_length()),
 * waitForReady applies to calls whose options leave it to the config,
 * loadBalancingConfig names the policy (over
 * cgrpc_channel_options_set_lb_policy()), and retryPolicy and
 * retryThrottling retry calls as gRFC A6 says (see the README's
 * "Channels").  Unknown fields are ignored, as gRPC does.
 *
 * The JSON is checked here: a syntax error, or a field with a wrong value,
 * returns CGRPC_ERR_INVALID_ARGUMENT, logs why (with the options' log
 * callback) and writes it to |err| when not NULL (at most |err_size|
 * bytes), e.g. "methodConfig[0].retryPolicy.maxAttempts: must be an
 * integer of at least 2".  The options keep the config they had then.
 * NULL |json| removes the config.  Returns 0, CGRPC_ERR_INVALID_ARGUMENT or
 * CGRPC_ERR_NOMEM.  Thread safety: one thread at a time per object.
 */
CGRPC_EXTERN int cgrpc_channel_options_set_service_config(
    cgrpc_channel_options *opts, const char *json, char *err, size_t err_size);

/*
 * The retry buffer of gRFC A6: a call whose method has a retryPolicy keeps
 * the request messages it has sent, so that another attempt can send them
 * again, until the call is committed to an attempt (the server's response
 * headers came).  A call keeps at most |per_call| bytes (default 256 KiB,
 * as gRPC's grpc.per_rpc_retry_buffer_size) and the channel's calls
 * together at most |per_channel| (default 16 MiB); a call that would pass
 * either is committed to its current attempt then and is not retried.
 * Sizes count framed (5-byte prefix), compressed messages; 0 keeps nothing
 * (a retry then only happens while no request byte was sent).  Negative
 * values keep the current setting.
 */
CGRPC_EXTERN void cgrpc_channel_options_set_retry_buffer_size(
    cgrpc_channel_options *opts, int64_t per_call, int64_t per_channel);

/*
 * Keepalive (gRPC's doc/keepalive.md, gRFC A8).  With a keepalive time set,
 * a connection that has read nothing from the server for |time_ms| sends a
 * PING; if nothing comes back within the keepalive timeout, the connection
 * is closed and its calls fail with UNAVAILABLE ("keepalive ping not
 * acknowledged within ... ms").  Values <= 0 turn keepalive off (the
 * default).  Times below 10 s are raised to 10 s, as grpc-go and grpc-java
 * do.  Servers limit how often they accept pings (gRPC servers: every 5
 * minutes by default, and only with calls in flight); a server that finds
 * them too frequent answers with GOAWAY ENHANCE_YOUR_CALM "too_many_pings",
 * and the channel then doubles its keepalive time for its later
 * connections.
 *
 * Thread safety: one thread at a time per object.
 */
CGRPC_EXTERN void
cgrpc_channel_options_set_keepalive_time_ms(cgrpc_channel_options *opts,
                                            int64_t time_ms);

/*
 * As cgrpc_channel_options_set_keepalive_time_ms(), without the 10 s
 * minimum: for tests that need a dead peer found in a second.  Not for
 * production use (servers will call such a client abusive).
 */
CGRPC_EXTERN void cgrpc_channel_options_set_keepalive_time_ms_for_testing(
    cgrpc_channel_options *opts, int64_t time_ms);

/* How long a keepalive PING may go unanswered before the connection is
 * closed (default 20 s; values <= 0 restore the default). */
CGRPC_EXTERN void
cgrpc_channel_options_set_keepalive_timeout_ms(cgrpc_channel_options *opts,
                                               int64_t timeout_ms);

/* Nonzero: send keepalive pings on a connection with no calls in flight
 * too (default 0: only while calls are in flight).  Servers refuse such
 * pings unless they allow them (gRPC: permit_without_calls). */
CGRPC_EXTERN void cgrpc_channel_options_set_keepalive_permit_without_calls(
    cgrpc_channel_options *opts, int permit);

/*
 * The load-balancing policy, used unless the service config names one
 * (loadBalancingConfig):
 *
 *   "pick_first"   (the default) tries the addresses in order and keeps
 *                  the first that connects for every call; when it drops,
 *                  the next call starts over from the first address
 *   "round_robin"  connects to every address and spreads the calls over
 *                  those that are READY, one after the other;
 *                  a connection that drops is made again at once
 *
 * Returns 0, or CGRPC_ERR_INVALID_ARGUMENT (another name; logged).
 * Thread safety: one thread at a time per object.
 */
CGRPC_EXTERN int
cgrpc_channel_options_set_lb_policy(cgrpc_channel_options *opts,
                                    const char *name);

/*
 * Sets the connection backoff (see cgrpc_connect_backoff); NULL restores
 * the defaults.  Returns 0, or CGRPC_ERR_INVALID_ARGUMENT (a negative
 * time, a multiplier below 1, a jitter outside [0, 1], max below initial).
 */
CGRPC_EXTERN int
cgrpc_channel_options_set_connect_backoff(cgrpc_channel_options *opts,
                                          const cgrpc_connect_backoff *b);

/*
 * A channel with no call for |timeout_ms| (default 30 minutes) goes IDLE:
 * its connections close (a GOAWAY tells the server) and the next call
 * connects again (and looks the name up again, at most every 30 s).
 * 0 or less: never idle.
 */
CGRPC_EXTERN void
cgrpc_channel_options_set_idle_timeout_ms(cgrpc_channel_options *opts,
                                          int64_t timeout_ms);

/*
 * Makes channels from these options take their addresses from |resolver|
 * (see resolver.h) instead of a name lookup; NULL: none (the default).  A
 * channel created with a resolver must have a target of the resolver's
 * scheme ("static:///greeter" for a resolver of scheme "static"); another
 * target is refused.  The options keep a reference.
 * Thread safety: one thread at a time per object.
 */
CGRPC_EXTERN void
cgrpc_channel_options_set_resolver(cgrpc_channel_options *opts,
                                   cgrpc_resolver *resolver);

/* Sets the log callback (default: silent, see log.h). */
CGRPC_EXTERN void cgrpc_channel_options_set_log(cgrpc_channel_options *opts,
                                                cgrpc_log_cb cb,
                                                void *user_data);

/*
 * Creates a channel to |target|, named as in gRPC (doc/naming.md):
 *
 *   host[:port]                      the same as "dns:///host[:port]"
 *   dns:[//server/]host[:port]       |host| is looked up (A and AAAA, after
 *                                    /etc/hosts) on the channel's thread
 *                                    without blocking it, through |server|
 *                                    ("ip[:port]", "[v6][:port]") when
 *                                    given, else the system's servers; an
 *                                    IP address needs no lookup
 *   ipv4:addr[:port][,addr[:port]...]   IPv4 addresses, no lookup
 *   ipv6:addr|[addr][:port][,...]       IPv6 addresses (brackets when a
 *                                       port follows), no lookup
 *
 * The port defaults to 443.  Every address gets its own connection
 * (a subchannel), used as the load-balancing policy says (see
 * cgrpc_channel_options_set_lb_policy(): by default the first address
 * that connects, in order).  A looked-up name is looked up again when a
 * connection drops or fails, at most once every 30 s (see
 * cgrpc_channel_options_set_dns_min_resolution_interval_ms()).  Nothing
 * is connected (or looked up) until the first call.  |opts| may be NULL; it is
 * copied. The ":authority" is the host[:port] part (":443" added when no port
 * is written); for an address list, its first address.
 *
 * Unix-domain sockets are named as in gRPC (doc/naming.md), and need no
 * name resolution: "unix:path" (relative to the working directory when
 * the channel connects, or absolute), "unix:///absolute/path" (an empty
 * authority; "unix://host/..." is refused) and "unix-abstract:name" (Linux's
 * abstract namespace; the name may hold any byte, "%00" for a NUL).  The
 * path or name is percent-decoded and holds at most 107 bytes.  Such a
 * channel sends ":authority: localhost", as gRPC C-core and grpc-go do,
 * unless cgrpc_channel_options_set_authority() says otherwise.
 *
 * With a resolver in |opts| (cgrpc_channel_options_set_resolver()), the
 * target is "scheme:///endpoint", "scheme://authority/endpoint" or
 * "scheme:endpoint" with the resolver's scheme, and the addresses are the
 * resolver's list.  The ":authority" is then the endpoint ("greeter" for
 * "static:///greeter"), unless the options set one; an empty endpoint
 * needs cgrpc_channel_options_set_authority().
 *
 * Returns 0, or one of:
 *   CGRPC_ERR_INVALID_ARGUMENT  |target| is malformed (an empty host, a
 *                               bad port, an address that is not of its
 *                               list's family, a DNS server that is not
 *                               an IP address, an unknown scheme; for a
 *                               Unix target an empty or too long path, a
 *                               host after "unix://"; with a resolver,
 *                               a target of another scheme or an empty
 *                               endpoint; the log says which).
 *   CGRPC_ERR_NOMEM             Out of memory.
 *   CGRPC_ERR_IO                the channel's thread could not start.
 * Thread safety: any thread.
 */
CGRPC_EXTERN int cgrpc_channel_new(cgrpc_channel **channel_ptr,
                                   const char *target,
                                   const cgrpc_channel_options *opts);

/*
 * The channel's connectivity state.  With a nonzero |try_to_connect| an
 * IDLE channel starts connecting (the state read is still IDLE).
 * Thread safety: any thread, callbacks included.
 */
CGRPC_EXTERN cgrpc_connectivity_state
cgrpc_channel_get_state(cgrpc_channel *channel, int try_to_connect);

/* Called once, on the channel's thread, when the state is no longer the
 * |last_seen| of cgrpc_channel_watch_state().  |channel| may be used in
 * the callback (to watch again), except when |state| is SHUTDOWN.  It
 * must not block. */
typedef void (*cgrpc_channel_state_cb)(cgrpc_channel *channel,
                                       cgrpc_connectivity_state state,
                                       void *user_data);

/*
 * Calls |cb| once when the channel's state differs from |last_seen|: soon
 * (not from within this call) when it already does, else at the next
 * change.  cgrpc_channel_del() calls every watch still waiting with
 * SHUTDOWN before it returns, so |user_data| need live only until then.
 * To follow every change, watch again from the callback with the state
 * it was given.  Returns 0, CGRPC_ERR_INVALID_ARGUMENT, CGRPC_ERR_NOMEM,
 * or CGRPC_ERR_CLOSED (the channel is being deleted).
 * Thread safety: any thread, callbacks included.
 */
CGRPC_EXTERN int cgrpc_channel_watch_state(cgrpc_channel *channel,
                                           cgrpc_connectivity_state last_seen,
                                           cgrpc_channel_state_cb cb,
                                           void *user_data);

/*
 * Starts connecting if the channel is IDLE and waits until it is READY,
 * for at most |timeout_ms| (< 0: without limit).  TRANSIENT_FAILURE does
 * not end the wait: the channel keeps trying until the timeout.
 * Returns 0 (READY), CGRPC_ERR_TIMEOUT, CGRPC_ERR_CLOSED (the channel was
 * deleted meanwhile), CGRPC_ERR_INVALID_ARGUMENT, or
 * CGRPC_ERR_WOULD_DEADLOCK (called from one of the library's threads).
 * Thread safety: any application thread.
 */
CGRPC_EXTERN int cgrpc_channel_wait_for_ready(cgrpc_channel *channel,
                                              int64_t timeout_ms);

/*
 * Cancels the calls still in flight (their callbacks see CANCELLED), closes
 * the connections and releases the application's hold on |channel|.  From
 * an application thread it waits for the connections to close; then, unless
 * the application still holds calls, the channel's thread and memory are
 * gone when it returns.  Calls still held stay usable until released: they
 * have ended (cgrpc_call_finish() reports CANCELLED, writes return
 * CGRPC_ERR_CLOSED, reads the end), and the channel's memory goes with the
 * last of them.  |channel| itself must not be used afterwards.  Passing NULL
 * does nothing.
 * Thread safety: any thread, including the channel's own callbacks (then it
 * returns at once and the rest happens once the callback has returned).
 */
CGRPC_EXTERN void cgrpc_channel_del(cgrpc_channel *channel);

#ifdef __cplusplus
}
#endif

#endif /* CGRPC_CHANNEL_H */
