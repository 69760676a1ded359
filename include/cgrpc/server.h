/* SPDX-License-Identifier: MIT */
/*
 * The server: listens on ports, dispatches calls to registered services.
 *
 *   cgrpc_server *server;
 *   cgrpc_server_new(&server, NULL);
 *   cgrpc_server_add_insecure_port(server, "[::]:50051", NULL);
 *   helloworld__greeter__servicer__register(server, &greeter, NULL);
 *   cgrpc_server_start(server);
 *   cgrpc_server_wait(server);
 */
#ifndef CGRPC_SERVER_H
#define CGRPC_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "cgrpc/compression.h"
#include "cgrpc/export.h"
#include "cgrpc/log.h"
#include "cgrpc/metadata.h"
#include "cgrpc/service.h"
#include "cgrpc/status.h"
#include "cgrpc/tls.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cgrpc_server cgrpc_server;
typedef struct cgrpc_server_options cgrpc_server_options;

/* Creates options with the defaults. Returns 0 or CGRPC_ERR_NOMEM. */
CGRPC_EXTERN int cgrpc_server_options_new(cgrpc_server_options **opts_ptr);

/* Frees |opts|.  Passing NULL does nothing. */
CGRPC_EXTERN void cgrpc_server_options_del(cgrpc_server_options *opts);

/*
 * The most handler threads the server runs at once (default 1024).  The
 * pool grows on demand: a call whose handler is ready gets an idle thread,
 * or a new one while fewer than |max_workers| exist, so a unary call never
 * waits behind handlers that block (streams waiting for their clients) as
 * long as a thread can be made.  Threads idle for a few seconds exit, down
 * to a floor of 2.  At the maximum, or when the system refuses a new thread
 * (pthread_create() fails; a warning is logged), the call waits until a
 * running handler returns.  Each thread takes a stack of the system's
 * default size (virtual memory; only the pages a handler touches are
 * resident).  To turn calls away rather than let them wait, see
 * cgrpc_server_options_set_max_concurrent_rpcs().
 *
 * 0 runs handlers inline on the event-loop thread: fastest, but a handler
 * must then never block.  Negative values are ignored.
 *
 * Changed: this used to be a fixed pool of exactly |max_workers| threads
 * (default 8), which 8 blocked handlers could starve; it is now the
 * pool's upper bound.
 *
 * Thread safety: one thread at a time per object.
 */
CGRPC_EXTERN void cgrpc_server_options_set_max_workers(cgrpc_server_options *opts,
                                                       int max_workers);

/*
 * Limits the calls the server handles at once, across all connections, like
 * grpcio's maximum_concurrent_rpcs (default 0: no limit).  A call counts
 * from the moment its handler is about to run until the call has ended and
 * its memory is freed; a call that arrives past the limit fails at once
 * with RESOURCE_EXHAUSTED (a Trailers-Only response whose message says the
 * limit was reached) and its handler never runs.  Values <= 0 mean no
 * limit.
 *
 * Thread safety: one thread at a time per object.
 */
CGRPC_EXTERN void
cgrpc_server_options_set_max_concurrent_rpcs(cgrpc_server_options *opts,
                                             int max_rpcs);

/* Largest request message accepted, in bytes (default 4 MiB).  A larger one
 * fails the call with RESOURCE_EXHAUSTED.  -1 means no limit. */
CGRPC_EXTERN void cgrpc_server_options_set_max_receive_message_length(
    cgrpc_server_options *opts, int64_t max_bytes);

/* Largest response message sent (default: no limit, -1). */
CGRPC_EXTERN void cgrpc_server_options_set_max_send_message_length(
    cgrpc_server_options *opts, int64_t max_bytes);

/* HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per connection (default 1000). */
CGRPC_EXTERN void cgrpc_server_options_set_max_concurrent_streams(
    cgrpc_server_options *opts, uint32_t max_streams);

/*
 * Compresses responses with |compression| (a cgrpc_compression; default
 * identity, which CGRPC_COMPRESS_DEFAULT also means here) unless the
 * handler chooses otherwise (cgrpc_server_ctx_set_compression()), and only
 * for clients whose grpc-accept-encoding lists it (others get identity).
 * Requests are accepted in identity, gzip and deflate whatever this says.
 *
 * Thread safety: one thread at a time per object.
 *
 * Returns 0, or CGRPC_ERR_INVALID_ARGUMENT (|opts| is NULL or
 * |compression| is not a cgrpc_compression).
 */
CGRPC_EXTERN int
cgrpc_server_options_set_default_compression(cgrpc_server_options *opts,
                                             int compression);

/*
 * Connection management (gRPC's doc/keepalive.md, gRFC A9).  Times are in
 * milliseconds; values <= 0 mean "never" unless stated.  Thread safety of
 * every setter: one thread at a time per object.
 *
 * The server's own keepalive pings: after |time_ms| with nothing read from
 * a client (default: never; gRPC servers use 2 hours), a PING; with no
 * answer within the timeout (default 20 s) the connection is closed and
 * its calls are cancelled.  The server pings with or without calls.
 */
CGRPC_EXTERN void
cgrpc_server_options_set_keepalive_time_ms(cgrpc_server_options *opts,
                                           int64_t time_ms);
CGRPC_EXTERN void
cgrpc_server_options_set_keepalive_timeout_ms(cgrpc_server_options *opts,
                                              int64_t timeout_ms);

/*
 * The ping policy for clients, enforced as gRPC C-core and grpc-go do: a
 * PING that comes less than |interval_ms| after the previous one (default
 * 5 minutes; 0 allows any rate) with no HEADERS or DATA sent by the server
 * in between, or any PING but the first while the connection has no calls
 * unless pings without calls are permitted (default: not), is a strike.
 * More than the maximum strikes (default 2; 0: no limit) and the server
 * sends GOAWAY ENHANCE_YOUR_CALM with debug data "too_many_pings" and
 * closes the connection.
 */
CGRPC_EXTERN void cgrpc_server_options_set_keepalive_min_ping_interval_ms(
    cgrpc_server_options *opts, int64_t interval_ms);
CGRPC_EXTERN void cgrpc_server_options_set_keepalive_permit_without_calls(
    cgrpc_server_options *opts, int permit);
CGRPC_EXTERN void
cgrpc_server_options_set_max_ping_strikes(cgrpc_server_options *opts,
                                          int strikes);

/* A connection with no calls for |idle_ms| (default: never) is sent a
 * GOAWAY and closed; the client's next call opens a new one. */
CGRPC_EXTERN void
cgrpc_server_options_set_max_connection_idle_ms(cgrpc_server_options *opts,
                                                int64_t idle_ms);

/*
 * A connection older than |age_ms| (default: never; +-10% jitter, as gRPC
 * spreads reconnections) is drained: GOAWAY, then a PING, then GOAWAY with
 * the last stream id, so calls already started go on and new ones go to a
 * new connection.  |grace_ms| after the GOAWAY (default: never), the
 * connection is closed and the calls still on it are cancelled.
 */
CGRPC_EXTERN void
cgrpc_server_options_set_max_connection_age_ms(cgrpc_server_options *opts,
                                               int64_t age_ms,
                                               int64_t grace_ms);

/* Sets the log callback (default: silent, see log.h). */
CGRPC_EXTERN void cgrpc_server_options_set_log(cgrpc_server_options *opts,
                                               cgrpc_log_cb cb,
                                               void *user_data);

/*
 * Creates a server.  |opts| may be NULL for the defaults; it is copied and
 * may be freed afterwards.
 *
 * Returns 0, or CGRPC_ERR_NOMEM.  Thread safety: any thread.
 */
CGRPC_EXTERN int cgrpc_server_new(cgrpc_server **server_ptr,
                                  const cgrpc_server_options *opts);

/*
 * Adds a plaintext listening address: "[::]:50051", "0.0.0.0:8080",
 * "localhost:0", "127.0.0.1:0".  Port 0 picks a free port.  The socket is
 * bound at once, so the port is known (and written to |*bound_port| when it
 * is not NULL) before the server starts.  "[::]" also accepts IPv4 where the
 * system allows dual-stack sockets.
 *
 * Unix-domain sockets are named as in gRPC (doc/naming.md):
 * "unix:/run/app.sock" or "unix:relative/app.sock", "unix:///run/app.sock"
 * (an empty authority; "unix://host/..." is refused), and
 * "unix-abstract:name" for Linux's abstract namespace (no file; the name
 * may hold any byte, "%00" for a NUL).  The path or name is percent-decoded
 * and holds at most 107 bytes.  |*bound_port| gets 0.  The socket file is
 * created here, with the permissions the umask leaves, and removed when the
 * server shuts down or is deleted, unless another file has taken its place
 * by then.  A socket file already at the path is replaced when it is stale
 * (connecting to it is refused: its server is gone); gRPC replaces one
 * that a live server listens on too, cgrpc refuses that
 * (CGRPC_ERR_ADDR_IN_USE), and never replaces a file that is not a socket.
 *
 * Returns 0, or one of:
 *   CGRPC_ERR_INVALID_ARGUMENT  |addr| is not "host:port", or a malformed
 *                               Unix address (empty, too long; the log
 *                               says why).
 *   CGRPC_ERR_ADDR_RESOLVE      |host| does not resolve.
 *   CGRPC_ERR_ADDR_IN_USE       bind() failed: the port is taken, or the
 *                               socket path is in use.
 *   CGRPC_ERR_INVALID_STATE     the server has already started.
 *   CGRPC_ERR_IO                another socket error, such as a missing
 *                               folder or no permission (see the log).
 * Thread safety: one thread at a time per object.
 */
CGRPC_EXTERN int cgrpc_server_add_insecure_port(cgrpc_server *server,
                                                const char *addr,
                                                int *bound_port);

/*
 * Like cgrpc_server_add_insecure_port(), for TLS with |creds| (see tls.h):
 * connections on this address handshake first (ALPN "h2" required), and
 * the credentials' certificate as it is at each handshake is presented, so
 * cgrpc_server_credentials_set_cert_*() swaps it without a restart.  The
 * server keeps a reference to |creds|.  One server may mix plaintext and
 * TLS addresses.
 * Returns 0, or as cgrpc_server_add_insecure_port(), and
 * CGRPC_ERR_INVALID_ARGUMENT when |creds| has no certificate yet (or asks
 * for client certificates without client CAs).
 * Thread safety: one thread at a time per object.
 */
CGRPC_EXTERN int cgrpc_server_add_secure_port(cgrpc_server *server,
                                              const char *addr,
                                              cgrpc_server_credentials *creds,
                                              int *bound_port);

/*
 * Registers a service.  Generated code calls this from
 * <service>__servicer__register(); |handlers| has desc->n_methods entries
 * (it may be NULL when there are none) and is copied.  The servicer
 * (|servicer_size| bytes) is copied, so it may live on the caller's stack.
 * |user_data| reaches every handler.
 *
 * Returns 0, or one of:
 *   CGRPC_ERR_INVALID_ARGUMENT  a NULL argument or a bad descriptor.
 *   CGRPC_ERR_ALREADY_EXISTS    a service or method path is registered.
 *   CGRPC_ERR_INVALID_STATE     the server has already started.
 *   CGRPC_ERR_NOMEM             Out of memory.
 * Thread safety: one thread at a time per object.
 */
CGRPC_EXTERN int cgrpc_server_register_service(
    cgrpc_server *server, const cgrpc_service_desc *desc,
    const cgrpc_method_handler *handlers, const void *servicer,
    size_t servicer_size, void *user_data);

/*
 * Starts serving on every added port, on background threads.
 *
 * Returns 0, or CGRPC_ERR_INVALID_STATE (already started, or no port added),
 * CGRPC_ERR_NOMEM or CGRPC_ERR_IO.  Thread safety: any thread.
 */
CGRPC_EXTERN int cgrpc_server_start(cgrpc_server *server);

/*
 * Blocks until the server has shut down (cgrpc_server_shutdown() from
 * another thread or from a handler, or a signal handler's write to a pipe
 * the application watches).  Returns 0, CGRPC_ERR_INVALID_STATE if it never
 * started, or CGRPC_ERR_WOULD_DEADLOCK from one of the server's own threads
 * (a handler or a callback).
 * Thread safety: any thread.
 */
CGRPC_EXTERN int cgrpc_server_wait(cgrpc_server *server);

/*
 * Stops accepting connections and new calls (GOAWAY), lets calls in flight
 * finish for up to |grace_ms| milliseconds, then cancels the rest and closes
 * every connection.  Blocks until done.  |grace_ms| < 0 waits for ever.
 * Called from one of the server's own threads (a handler, say for a "Quit"
 * method, or an async callback), it only begins the shutdown, which goes on
 * in the background, and returns at once; cgrpc_server_wait() on another
 * thread returns when it is over.  Calling it twice is harmless.
 * Returns 0, or CGRPC_ERR_IO when a background shutdown could not start a
 * thread.  Thread safety: any thread.
 */
CGRPC_EXTERN int cgrpc_server_shutdown(cgrpc_server *server, int64_t grace_ms);

/*
 * Shuts down (grace 0) if needed and frees |server|.  NULL does nothing.
 * Thread safety: any thread except the server's own; called from a handler
 * or a callback of |server| it logs an error and does nothing (shut down
 * from there, and delete from the thread that waits).
 */
CGRPC_EXTERN void cgrpc_server_del(cgrpc_server *server);

/* ---- inside a handler ------------------------------------------------- */

/* The request's metadata (custom headers).  Valid during the handler. */
CGRPC_EXTERN const cgrpc_metadata_array *
cgrpc_server_ctx_metadata(const cgrpc_server_ctx *ctx);

/*
 * The peer's address in gRPC's form, such as "ipv4:127.0.0.1:41234" or
 * "ipv6:[::1]:5".  On a Unix-domain socket it is the client socket's own
 * name, which clients rarely bind, so it is usually "unix:" (as grpcio and
 * gRPC C-core report); a bound client gives "unix:/path" or
 * "unix-abstract:name", percent-encoded as a URI path.  To tell who the
 * client is, see cgrpc_server_ctx_peer_cred().  Valid during the handler
 * (a detached one: until cgrpc_server_ctx_finish()).
 */
CGRPC_EXTERN const char *cgrpc_server_ctx_peer(const cgrpc_server_ctx *ctx);

/*
 * The transport's view of the client: nonzero from _is_secure() when the
 * call came over TLS; from _peer_verified() when the client presented a
 * certificate that was verified against the server's client CAs.  Its
 * subject (RFC 2253, "CN=client,O=Example") and subjectAltNames ("DNS:x",
 * "IP:127.0.0.1", "URI:spiffe://...", "email:...") are NULL / 0 without a
 * certificate.  The strings are valid while the call is.
 * Thread safety: the handler's thread, or any while the call is alive.
 */
CGRPC_EXTERN int cgrpc_server_ctx_is_secure(const cgrpc_server_ctx *ctx);
CGRPC_EXTERN int cgrpc_server_ctx_peer_verified(const cgrpc_server_ctx *ctx);
CGRPC_EXTERN const char *
cgrpc_server_ctx_peer_subject(const cgrpc_server_ctx *ctx);
CGRPC_EXTERN size_t cgrpc_server_ctx_peer_san_count(const cgrpc_server_ctx *ctx);
/* The |i|th subjectAltName, or NULL past the last. */
CGRPC_EXTERN const char *cgrpc_server_ctx_peer_san(const cgrpc_server_ctx *ctx,
                                                   size_t i);

/* The connection's TLS: the protocol ("TLSv1.3", "TLSv1.2") and cipher
 * ("TLS_AES_128_GCM_SHA256") negotiated, NULL on plaintext; and nonzero
 * from _session_reused() when the client resumed an earlier session. */
CGRPC_EXTERN const char *
cgrpc_server_ctx_tls_version(const cgrpc_server_ctx *ctx);
CGRPC_EXTERN const char *
cgrpc_server_ctx_tls_cipher(const cgrpc_server_ctx *ctx);
CGRPC_EXTERN int
cgrpc_server_ctx_tls_session_reused(const cgrpc_server_ctx *ctx);

/*
 * The credentials of the client process on a Unix-domain socket
 * connection, as the kernel recorded them when it connected (SO_PEERCRED):
 * its process id to |*pid|, its effective user id to |*uid| and group id to
 * |*gid|.  Any of the three may be NULL.  They are read when the connection
 * is accepted, so they stay available after the connection has gone.  The
 * pid may belong to another process by the time it is read, if the client
 * has exited.
 *
 * Returns 0, or one of:
 *   CGRPC_ERR_INVALID_ARGUMENT  |ctx| is NULL.
 *   CGRPC_ERR_UNSUPPORTED       not a Unix-domain socket connection (TCP),
 *                               or the system gave no credentials; nothing
 *                               is written.
 * Thread safety: any thread while |ctx| is valid (the values never change).
 */
CGRPC_EXTERN int cgrpc_server_ctx_peer_cred(const cgrpc_server_ctx *ctx,
                                            int64_t *pid, int64_t *uid,
                                            int64_t *gid);

/* The full method path, such as "/helloworld.Greeter/SayHello". */
CGRPC_EXTERN const char *cgrpc_server_ctx_method(const cgrpc_server_ctx *ctx);

/* The ":authority" the client asked for, or "" if none. */
CGRPC_EXTERN const char *cgrpc_server_ctx_authority(const cgrpc_server_ctx *ctx);

/*
 * Milliseconds left until the client's deadline (0 once it has passed), or
 * INT64_MAX when the client set no deadline.
 */
CGRPC_EXTERN int64_t cgrpc_server_ctx_time_remaining_ms(const cgrpc_server_ctx *ctx);

/* Nonzero once the client cancelled the call or its deadline passed. */
CGRPC_EXTERN int cgrpc_server_ctx_is_cancelled(const cgrpc_server_ctx *ctx);

/*
 * Chooses how this call's responses are compressed: |compression| is a
 * cgrpc_compression, CGRPC_COMPRESS_DEFAULT for the server's default
 * (cgrpc_server_options_set_default_compression()).  An algorithm the
 * client did not list in its grpc-accept-encoding is not used: the
 * responses then go uncompressed.  The choice goes out with the response
 * headers (as grpc-encoding), so it must be made before them: before the
 * first cgrpc_server_ctx_write() or _write_async() and before
 * cgrpc_server_ctx_send_initial_metadata(); for a unary or
 * client-streaming method, any time before the handler returns (or, when
 * detached, before cgrpc_server_ctx_finish()).  Single messages of a
 * stream can still go uncompressed with CGRPC_WRITE_NO_COMPRESS.
 *
 * Returns 0, or one of:
 *   CGRPC_ERR_INVALID_ARGUMENT  |ctx| is NULL or |compression| is not a
 *                               cgrpc_compression.
 *   CGRPC_ERR_INVALID_STATE     the response headers are on their way.
 * Thread safety: the handler's thread, or one thread at a time.
 */
CGRPC_EXTERN int cgrpc_server_ctx_set_compression(cgrpc_server_ctx *ctx,
                                                  int compression);

/*
 * Returns 1 when the request message the handler got last came compressed
 * (its compressed flag was set; it was inflated before it was handed
 * over), else 0.  "Last" means:
 *  - unary and server-streaming methods: the one request, during the
 *    whole handler;
 *  - cgrpc_server_ctx_read(): the message it returned last (0 after it
 *    returned none), in the reading thread;
 *  - cgrpc_server_ctx_read_async(): the message the callback was given,
 *    during the callback and until the next read is asked for (0 with
 *    NULL).
 * Thread safety: the reader's thread, as above.
 */
CGRPC_EXTERN int
cgrpc_server_ctx_last_message_compressed(const cgrpc_server_ctx *ctx);

/*
 * Adds metadata to the response headers (initial) or trailers (trailing).
 * The rules of cgrpc_metadata_array_add() apply; a "-bin" key takes binary
 * values through the _bin forms.  Initial metadata can be added until the
 * response headers are on their way: the first cgrpc_server_ctx_write() or
 * _write_async(), cgrpc_server_ctx_send_initial_metadata(), or the end of
 * the handler (a detached one: cgrpc_server_ctx_finish()).
 * Returns 0, CGRPC_ERR_INVALID_ARGUMENT, CGRPC_ERR_NOMEM, or
 * CGRPC_ERR_INVALID_STATE for initial metadata after the headers went.
 * Thread safety: the handler's thread, or one thread at a time.
 */
CGRPC_EXTERN int cgrpc_server_ctx_add_initial_metadata(cgrpc_server_ctx *ctx,
                                                       const char *key,
                                                       const char *value);
CGRPC_EXTERN int cgrpc_server_ctx_add_initial_metadata_bin(
    cgrpc_server_ctx *ctx, const char *key, const void *value, size_t len);
CGRPC_EXTERN int cgrpc_server_ctx_add_trailing_metadata(cgrpc_server_ctx *ctx,
                                                        const char *key,
                                                        const char *value);
CGRPC_EXTERN int cgrpc_server_ctx_add_trailing_metadata_bin(
    cgrpc_server_ctx *ctx, const char *key, const void *value, size_t len);

/*
 * Sets the status message (UTF-8) sent with a non-OK status and returns
 * |code|, so a handler can end with
 *
 *   return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_NOT_FOUND, "no %s", name);
 */
CGRPC_EXTERN cgrpc_status_code cgrpc_server_ctx_fail(cgrpc_server_ctx *ctx,
                                                     cgrpc_status_code code,
                                                     const char *fmt, ...)
    CGRPC_PRINTF(3, 4);

/*
 * Memory that lives until the response has been sent: use it for strings
 * and sub-messages referenced by the response.  Returns NULL when out of
 * memory.  Freed by the library; never pass it to free().
 */
CGRPC_EXTERN void *cgrpc_server_ctx_alloc(cgrpc_server_ctx *ctx, size_t size);
CGRPC_EXTERN char *cgrpc_server_ctx_strdup(cgrpc_server_ctx *ctx,
                                           const char *s);
CGRPC_EXTERN char *cgrpc_server_ctx_printf(cgrpc_server_ctx *ctx,
                                           const char *fmt, ...)
    CGRPC_PRINTF(2, 3);

/* ---- streaming handlers ---------------------------------------------------
 *
 * A client-streaming or bidi handler reads the request stream with
 * cgrpc_server_ctx_read(); server-streaming and bidi handlers write with
 * cgrpc_server_ctx_write().  The call ends when the handler returns its
 * status (the trailers follow the last message).  Generated code offers
 * typed wrappers: <pkg>__<svc>__<method>__recv() and __send().
 */

/*
 * Waits for the next request message.  Returns 1 and sets |*msg| (free it
 * with protobuf_c_message_free_unpacked(msg, NULL)), 0 when the client has
 * half-closed (|*msg| = NULL), or CGRPC_ERR_CLOSED when the call was
 * cancelled or failed (the handler should return), CGRPC_ERR_PROTO when a
 * request does not decode (return CGRPC_STATUS_INTERNAL),
 * CGRPC_ERR_INVALID_STATE for a unary or server-streaming method,
 * CGRPC_ERR_WOULD_DEADLOCK on an inline (max_workers = 0) server, whose
 * handlers use the async form.
 * Thread safety: one reader at a time.
 */
CGRPC_EXTERN int cgrpc_server_ctx_read(cgrpc_server_ctx *ctx,
                                       ProtobufCMessage **msg);

/*
 * Sends one response message (serialized before this returns); the response
 * headers go first if they have not.  Blocks while the send buffer is full
 * (the client is not reading).  Returns 0, or CGRPC_ERR_CLOSED (the call
 * was cancelled or has ended), CGRPC_ERR_INVALID_STATE (a unary or
 * client-streaming method: return the reply instead), CGRPC_ERR_TOO_LARGE
 * (over the server's send limit), CGRPC_ERR_WOULD_DEADLOCK (inline server).
 * Thread safety: one writer at a time.
 */
CGRPC_EXTERN int cgrpc_server_ctx_write(cgrpc_server_ctx *ctx,
                                        const ProtobufCMessage *msg);

/*
 * cgrpc_server_ctx_write() with |flags|: 0, or CGRPC_WRITE_NO_COMPRESS to
 * send this message uncompressed (compressed flag 0) on a call whose
 * responses are compressed.  Returns as cgrpc_server_ctx_write(), and
 * CGRPC_ERR_INVALID_ARGUMENT for an unknown flag.
 * Thread safety: one writer at a time.
 */
CGRPC_EXTERN int cgrpc_server_ctx_write_flags(cgrpc_server_ctx *ctx,
                                              const ProtobufCMessage *msg,
                                              unsigned flags);

/*
 * Sends the response headers (with the initial metadata added so far) now,
 * rather than with the first message or the status.  Returns 0, or
 * CGRPC_ERR_INVALID_STATE when they were sent already.
 */
CGRPC_EXTERN int cgrpc_server_ctx_send_initial_metadata(cgrpc_server_ctx *ctx);

/* ---- async handlers ----------------------------------------------------------
 *
 * A handler that calls cgrpc_server_ctx_detach() may return at once (its
 * return value is then ignored) and finish the call later, from any thread,
 * with cgrpc_server_ctx_finish().  Reads and writes then use the _async
 * forms, whose callbacks run on the server's loop thread and must not block.
 * This is how a server holds thousands of open streams without a thread
 * each.  For unary and client-streaming methods the handler's |reply| stays
 * valid until the call is finished.
 */

/* Keeps the call open after the handler returns. */
CGRPC_EXTERN void cgrpc_server_ctx_detach(cgrpc_server_ctx *ctx);

/*
 * Ends a detached call with |code| (the reply, for unary and
 * client-streaming methods, is sent first when |code| is OK; the message set
 * with cgrpc_server_ctx_fail() goes with a non-OK code).  |ctx| must not be
 * used afterwards.  Returns 0, or CGRPC_ERR_INVALID_STATE (not detached, or
 * finished already).  Thread safety: any thread; once.
 */
CGRPC_EXTERN int cgrpc_server_ctx_finish(cgrpc_server_ctx *ctx,
                                         cgrpc_status_code code);

/* |msg| is the next request message (owned by the callback; free it with
 * protobuf_c_message_free_unpacked()), or NULL at the end of the requests
 * or when the call was cancelled (check cgrpc_server_ctx_is_cancelled()). */
typedef void (*cgrpc_server_read_cb)(cgrpc_server_ctx *ctx,
                                     ProtobufCMessage *msg, void *user_data);

/* |ok| is 0 when the call ended before the message could be sent. */
typedef void (*cgrpc_server_write_cb)(cgrpc_server_ctx *ctx, int ok,
                                      void *user_data);

/*
 * Asks for the next request message; |cb| runs once with it.  One read may
 * be pending at a time.  Returns 0, or CGRPC_ERR_INVALID_STATE.
 * Thread safety: any thread.
 */
CGRPC_EXTERN int cgrpc_server_ctx_read_async(cgrpc_server_ctx *ctx,
                                             cgrpc_server_read_cb cb,
                                             void *user_data);

/*
 * Queues |msg| without blocking; |cb| (may be NULL) runs once it has gone to
 * the transport.  One write may be pending at a time.  Returns 0, or as
 * cgrpc_server_ctx_write().  Thread safety: any thread.
 */
CGRPC_EXTERN int cgrpc_server_ctx_write_async(cgrpc_server_ctx *ctx,
                                              const ProtobufCMessage *msg,
                                              cgrpc_server_write_cb cb,
                                              void *user_data);

/*
 * cgrpc_server_ctx_write_async() with |flags| (see
 * cgrpc_server_ctx_write_flags()).  Thread safety: any thread.
 */
CGRPC_EXTERN int cgrpc_server_ctx_write_async_flags(
    cgrpc_server_ctx *ctx, const ProtobufCMessage *msg, unsigned flags,
    cgrpc_server_write_cb cb, void *user_data);

#ifdef __cplusplus
}
#endif

#endif /* CGRPC_SERVER_H */
