/* SPDX-License-Identifier: MIT */
/*
 * Interceptors: callbacks that see every call of a server or a channel
 * start and end (and, if asked, each message), for metrics, logging,
 * tracing and access checks.
 *
 *   static cgrpc_status_code auth_start(const cgrpc_interceptor_info *info,
 *                                       const cgrpc_metadata_array *md,
 *                                       cgrpc_metadata_array *send_initial,
 *                                       cgrpc_metadata_array *send_trailing,
 *                                       char *message, size_t message_size,
 *                                       void **call_data, void *user_data) {
 *     if (!cgrpc_metadata_array_get(md, "x-api-key", NULL)) {
 *       snprintf(message, message_size, "no x-api-key");
 *       return CGRPC_STATUS_UNAUTHENTICATED;
 *     }
 *     return CGRPC_STATUS_OK;
 *   }
 *
 *   cgrpc_interceptor auth = {.on_start = auth_start};
 *   cgrpc_server_add_interceptor(server, &auth);         (before start)
 *   cgrpc_channel_options_add_interceptor(opts, &timing); (a client's)
 *
 * The chain.  A server's interceptors (cgrpc_server_add_interceptor(),
 * before cgrpc_server_start()) see every call to a registered method;
 * calls the server answers itself (an unknown method, a request that is not
 * gRPC) do not reach them.  A channel's (cgrpc_channel_options_add_
 * interceptor(), taken when the channel is created) see every call made on
 * it.  The first interceptor added is the outermost layer, nearest the
 * application on a client and nearest the network on a server: on_start
 * runs in the order added, on_end in the reverse order, and a message
 * passes them the way it travels: requests in the order added, responses
 * in the reverse order (on both sides).
 *
 * Every interceptor whose on_start ran gets exactly one on_end, the one
 * that rejected the call included; those after a rejecting one are not
 * started and get no on_end.  |call_data| is the interceptor's own slot for
 * the call (NULL at first): set it in on_start, it reaches on_message and
 * on_end, which must free what it points to.
 *
 * Threads.  The callbacks run on whatever thread runs that part of the
 * call, never on a thread of their own, and none may block:
 *  - client on_start: the thread that creates the call
 *    (cgrpc_unary_call(), cgrpc_unary_start(), cgrpc_call_open(),
 *    cgrpc_call_new_async(), ...); client on_end: the channel's thread (see
 *    channel.h; for a blocking call possibly the caller's own while it
 *    drives the loop), or the thread that releases a call never started;
 *  - server on_start and on_end: the server's loop thread, before the
 *    handler is dispatched and after the response has gone (or the call
 *    was cancelled);
 *  - on_message for a message sent: the thread that sends it, before it
 *    is sent: the caller of cgrpc_unary_call() / _start() or of a write
 *    (cgrpc_call_write(), cgrpc_server_ctx_write(), their async forms),
 *    the handler's thread for a unary reply (the one that finishes a
 *    detached call);
 *  - on_message for a message received: the loop thread (the channel's,
 *    the server's), as it arrives, before the application reads it (a
 *    streamed message is decoded once more for the interceptor).
 * One call's callbacks never run at the same time: the library holds a
 * lock of the call's around each on_message and its on_end (so a writer
 * and a reader of one call take turns), and drops messages sent or
 * received after on_end.  Different calls' callbacks run concurrently on
 * different threads: what |user_data| points to must be thread safe.
 * So a callback must not write to the call it is watching (that write's
 * on_message would wait for the lock the callback runs under), nor wait
 * for another call's callbacks; calling the library otherwise is fine
 * (cgrpc_server_set_health() from on_message or on_end is tested).
 *
 * Cost.  A server or channel without interceptors pays one pointer test
 * per call; on_message is called only when set, so an interceptor without
 * it adds nothing per message.
 */
#ifndef CGRPC_INTERCEPTOR_H
#define CGRPC_INTERCEPTOR_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "cgrpc/channel.h"
#include "cgrpc/export.h"
#include "cgrpc/metadata.h"
#include "cgrpc/server.h"
#include "cgrpc/service.h"
#include "cgrpc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * What an interceptor knows of a call.  Owned by the library and valid
 * during each callback; the strings too (copy what you keep).  Fields may
 * be added at the end.
 */
typedef struct cgrpc_interceptor_info {
  /* The full method path, "/helloworld.Greeter/SayHello". */
  const char *method;
  /* The :authority, "example.com:443" ("" when the client sent none). */
  const char *authority;
  /* The other end in gRPC's form, "ipv4:127.0.0.1:41234", "ipv6:[::1]:5",
   * "unix:/run/app.sock".  On a client the server's address, known once
   * the call has gone to a connection: NULL in on_start, and in on_end of
   * a call that never reached one (rejected, failed before). */
  const char *peer;
  /* The deadline on CLOCK_MONOTONIC, in nanoseconds (clock_gettime()'s
   * tv_sec * 1000000000 + tv_nsec), or 0 when the call has none. */
  int64_t deadline_ns;
  /* When the chain began (just before the first on_start), on the same
   * clock: on_end's latency is the clock then minus this. */
  int64_t start_ns;
  /* The method's kind (a unary call or one of the streaming kinds). */
  cgrpc_method_kind kind;
  /* 1 on a channel's interceptor, 0 on a server's. */
  int is_client;
} cgrpc_interceptor_info;

/* The direction of a message given to on_message. */
typedef enum cgrpc_interceptor_direction {
  CGRPC_INTERCEPT_SEND = 0, /* this side sends it */
  CGRPC_INTERCEPT_RECV = 1  /* this side received it */
} cgrpc_interceptor_direction;

/*
 * An interceptor: optional callbacks (any may be NULL) and the |user_data|
 * they all get.  Registering copies the struct; |user_data| must stay
 * valid while the server or any channel made with the options lives.
 */
typedef struct cgrpc_interceptor {
  /*
   * The call starts (see the threads above).  |metadata| is what the call
   * carries: on a server the request's metadata; on a client the call's
   * own (cgrpc_call_options.metadata), or NULL.  Metadata added to
   * |send_initial| (cgrpc_metadata_array_add(); the rules of metadata.h
   * hold) goes out with the request on a client, with the response
   * headers on a server, ahead of what the handler adds; |send_trailing|
   * (a server's only; NULL on a client) goes with the trailers.
   *
   * Returns CGRPC_STATUS_OK to go on, or another code to reject the call,
   * with a message in |message| (|message_size| bytes, NUL-terminated;
   * empty: none).  A rejected server call never reaches its handler: the
   * client gets that status (with the metadata added so far) at once.  A
   * rejected client call fails with that status without going to the
   * wire.  A code outside the 17 becomes UNKNOWN.
   */
  cgrpc_status_code (*on_start)(const cgrpc_interceptor_info *info,
                                const cgrpc_metadata_array *metadata,
                                cgrpc_metadata_array *send_initial,
                                cgrpc_metadata_array *send_trailing,
                                char *message, size_t message_size,
                                void **call_data, void *user_data);
  /*
   * A message of the call (|direction| a cgrpc_interceptor_direction), valid
   * during the callback: a request as the application gives it before it
   * is sent, or as it was decoded before the application gets it.  Not
   * called for a call that was rejected, nor after on_end.
   */
  void (*on_message)(const cgrpc_interceptor_info *info, int direction,
                     const ProtobufCMessage *msg, void *call_data,
                     void *user_data);
  /*
   * The call has ended with |code| and |message| (NULL or the status
   * message): on a client the status the application gets; on a server
   * the status sent, or CANCELLED when the client went (reset the stream,
   * the connection closed) before the response was complete.
   * |trailing| is the trailing metadata sent (server) or received
   * (client), or NULL.  Valid during the callback only.
   */
  void (*on_end)(const cgrpc_interceptor_info *info, cgrpc_status_code code,
                 const char *message, const cgrpc_metadata_array *trailing,
                 void *call_data, void *user_data);
  void *user_data;
} cgrpc_interceptor;

/*
 * Appends a copy of |interceptor| to |server|'s chain.
 *
 * Returns 0, or one of:
 *   CGRPC_ERR_INVALID_ARGUMENT  |server| or |interceptor| is NULL.
 *   CGRPC_ERR_INVALID_STATE     the server has started.
 *   CGRPC_ERR_NOMEM             Out of memory.
 * Thread safety: one thread at a time per object.
 */
CGRPC_EXTERN int
cgrpc_server_add_interceptor(cgrpc_server *server,
                             const cgrpc_interceptor *interceptor);

/*
 * Appends a copy of |interceptor| to the chain of the channels made from
 * |opts| from now on (each channel copies the chain when it is created).
 *
 * Returns 0, CGRPC_ERR_INVALID_ARGUMENT (a NULL argument) or
 * CGRPC_ERR_NOMEM.  Thread safety: one thread at a time per object.
 */
CGRPC_EXTERN int
cgrpc_channel_options_add_interceptor(cgrpc_channel_options *opts,
                                      const cgrpc_interceptor *interceptor);

#ifdef __cplusplus
}
#endif

#endif /* CGRPC_INTERCEPTOR_H */
