/* SPDX-License-Identifier: MIT */
/*
 * Client calls.  Generated stubs wrap these with the exact message types:
 *
 *   Helloworld__HelloReply *reply = NULL;
 *   cgrpc_status status = {0};
 *   if (helloworld__greeter__say_hello__call(channel, &req, &reply, NULL,
 *                                            &status) == CGRPC_STATUS_OK) ...
 */
#ifndef CGRPC_CALL_H
#define CGRPC_CALL_H

#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "cgrpc/channel.h"
#include "cgrpc/export.h"
#include "cgrpc/metadata.h"
#include "cgrpc/service.h"
#include "cgrpc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cgrpc_call cgrpc_call;

/*
 * Per-call options; a NULL pointer or a zeroed struct means the defaults.
 * |timeout_ms| > 0 sets a deadline that far in the future (sent as
 * grpc-timeout; values too far ahead to represent, such as INT64_MAX, are
 * cut to the farthest representable deadline); 0 means none.  |metadata|,
 * when not NULL, is sent with the request; it is read before the call
 * function returns.  |compression| (a cgrpc_compression) compresses the
 * call's requests; 0 (CGRPC_COMPRESS_DEFAULT) means the channel's default
 * (cgrpc_channel_options_set_default_compression()), and
 * CGRPC_COMPRESS_IDENTITY sends them uncompressed whatever that is.  A
 * value that is not a cgrpc_compression makes the call functions fail
 * with CGRPC_ERR_INVALID_ARGUMENT (cgrpc_unary_call(): INVALID_ARGUMENT).
 * |wait_for_ready|: CGRPC_WAIT_FOR_READY (1) makes the call wait, until its
 * deadline, for a connection while the channel is in TRANSIENT_FAILURE,
 * instead of failing at once with UNAVAILABLE; CGRPC_FAIL_FAST (-1) fails
 * at once even if the service config says waitForReady; 0 does as the
 * service config says, else fails fast (gRPC's default).
 *
 * Changed: |compression| and |wait_for_ready| were added (at the end).  Initialize the struct
 * with designated initializers ({.timeout_ms = 500}), "= {0}" or memset,
 * so that fields added later start at their defaults; a positional
 * {500, NULL} still compiles, but -Wextra now warns about it
 * (-Wmissing-field-initializers).
 */
typedef struct cgrpc_call_options {
  int64_t timeout_ms;
  const cgrpc_metadata_array *metadata;
  int compression;
  int wait_for_ready;
} cgrpc_call_options;

enum { CGRPC_FAIL_FAST = -1, CGRPC_WAIT_FOR_READY = 1 };

/*
 * Makes a unary call and waits for its outcome.  On OK, |*reply| receives a
 * message of method->output type that the caller frees with
 * protobuf_c_message_free_unpacked(reply, NULL); otherwise it is set to NULL.
 * |status|, when not NULL, receives the code, message and metadata; free them
 * with cgrpc_status_clear().  Misuse (NULL arguments, a call from one of the
 * library's own threads) yields INVALID_ARGUMENT or FAILED_PRECONDITION with
 * a message that says what went wrong.
 *
 * While it waits, the calling thread may drive the channel's loop itself
 * (when no other thread does): it then runs the channel's I/O, timers and
 * the callbacks that fall due meanwhile, as the channel's thread would (see
 * channel.h), until its own call is over.
 *
 * Returns the status code.  Thread safety: any thread except the library's
 * own (not from a callback or handler).
 */
CGRPC_EXTERN cgrpc_status_code cgrpc_unary_call(
    cgrpc_channel *channel, const cgrpc_method_desc *method,
    const ProtobufCMessage *request, ProtobufCMessage **reply,
    const cgrpc_call_options *opts, cgrpc_status *status);

/*
 * Called once when an async call completes, on the channel's thread (see
 * channel.h: possibly an application thread blocked in cgrpc_unary_call()
 * on the same channel, which drives the channel's loop meanwhile).
 * |status| is valid during the callback only; take what you need with
 * cgrpc_call_take_status().  |reply| (NULL unless the status is OK) belongs
 * to the callback: free it with protobuf_c_message_free_unpacked(reply, NULL).
 * The callback must not block.
 */
typedef void (*cgrpc_unary_done_cb)(cgrpc_call *call, const cgrpc_status *status,
                                    ProtobufCMessage *reply, void *user_data);

/*
 * Starts a unary call; |done| runs when it completes.  |request| is
 * serialized before this function returns.  When |call_ptr| is not NULL it
 * receives a reference to the call, usable with cgrpc_call_cancel() until
 * released with cgrpc_call_unref(); the callback may run before this
 * function returns.
 *
 * Returns 0, or CGRPC_ERR_INVALID_ARGUMENT, CGRPC_ERR_CLOSED (the channel is
 * being deleted) or CGRPC_ERR_NOMEM; |done| is then never called.
 * Thread safety: any thread.
 */
CGRPC_EXTERN int cgrpc_unary_start(cgrpc_channel *channel,
                                   const cgrpc_method_desc *method,
                                   const ProtobufCMessage *request,
                                   const cgrpc_call_options *opts,
                                   cgrpc_unary_done_cb done, void *user_data,
                                   cgrpc_call **call_ptr);

/*
 * Cancels |call|: the server sees RST_STREAM(CANCEL) and the callback runs
 * with CANCELLED, unless the call had already completed.
 * Thread safety: any thread.
 */
CGRPC_EXTERN void cgrpc_call_cancel(cgrpc_call *call);

/*
 * Moves the status of a completing call into |*dst| (which the caller then
 * releases with cgrpc_status_clear()).  Only valid inside the done callback.
 */
CGRPC_EXTERN void cgrpc_call_take_status(cgrpc_call *call, cgrpc_status *dst);

/* Releases a reference obtained from |call_ptr|.  NULL does nothing. */
CGRPC_EXTERN void cgrpc_call_unref(cgrpc_call *call);

/*
 * Returns 1 when the response message the application got last from
 * |call| came compressed (its compressed flag was set; it was inflated
 * before it was handed over), else 0.  "Last" means:
 *  - a unary call: its reply, from the done callback on;
 *  - cgrpc_call_read(): the message it returned last (0 after it returned
 *    none), in the reading thread;
 *  - the async form: the message on_read was given, during on_read and
 *    until the next read is asked for (0 with NULL).
 * Thread safety: the reader's thread, as above.
 */
CGRPC_EXTERN int cgrpc_call_last_message_compressed(const cgrpc_call *call);

/* ---- streaming calls ----------------------------------------------------
 *
 * A streaming call works for every method kind.  Generated stubs wrap these
 * functions with the exact message types.  The blocking form:
 *
 *   cgrpc_call *call;
 *   cgrpc_call_open(channel, method, NULL, &call);
 *   cgrpc_call_write(call, &note.base);        (any number of times)
 *   cgrpc_call_writes_done(call);
 *   while (cgrpc_call_read(call, &msg) == 1) { ...; free msg }
 *   cgrpc_call_finish(call, &status);
 *   cgrpc_call_unref(call);
 *
 * One thread may write while another reads.  Writes are flow-controlled: a
 * write waits while the peer is not taking messages and more than a small
 * buffer is queued, so a fast writer cannot use unbounded memory.
 */

/*
 * Starts a streaming call on |channel|; the request headers go out at once.
 * |*call_ptr| receives the call, which the caller releases with
 * cgrpc_call_unref() once done with it.  |opts| is read before this returns.
 *
 * Returns 0, or CGRPC_ERR_INVALID_ARGUMENT, CGRPC_ERR_CLOSED (the channel is
 * being deleted) or CGRPC_ERR_NOMEM.  Thread safety: any thread.
 */
CGRPC_EXTERN int cgrpc_call_open(cgrpc_channel *channel,
                                 const cgrpc_method_desc *method,
                                 const cgrpc_call_options *opts,
                                 cgrpc_call **call_ptr);

/*
 * Sends |msg| (of the method's input type), which is serialized before this
 * returns.  Blocks while the call's send buffer is full.
 *
 * Returns 0, or one of:
 *   CGRPC_ERR_CLOSED         the call has ended; cgrpc_call_finish() tells why.
 *   CGRPC_ERR_INVALID_STATE  after cgrpc_call_writes_done(), or another write
 *                            is still pending on an async call.
 *   CGRPC_ERR_INVALID_ARGUMENT  |msg| is NULL or of the wrong type.
 *   CGRPC_ERR_WOULD_DEADLOCK called from a library thread (blocking form).
 * Thread safety: one writer at a time per call; any thread.
 */
CGRPC_EXTERN int cgrpc_call_write(cgrpc_call *call, const ProtobufCMessage *msg);

/*
 * cgrpc_call_write() with |flags|: 0, or CGRPC_WRITE_NO_COMPRESS to send
 * this message uncompressed (compressed flag 0) on a call that compresses
 * its requests.  Returns as cgrpc_call_write(), and
 * CGRPC_ERR_INVALID_ARGUMENT for an unknown flag.
 * Thread safety: one writer at a time per call; any thread.
 */
CGRPC_EXTERN int cgrpc_call_write_flags(cgrpc_call *call,
                                        const ProtobufCMessage *msg,
                                        unsigned flags);

/*
 * Half-closes the call: no more messages will be written (END_STREAM).
 * Never blocks.  Returns 0, or CGRPC_ERR_INVALID_STATE when already done.
 * Thread safety: any thread.
 */
CGRPC_EXTERN int cgrpc_call_writes_done(cgrpc_call *call);

/*
 * Waits for the next message from the server.  Returns 1 and sets |*msg|
 * (free it with protobuf_c_message_free_unpacked(msg, NULL)), 0 at the end
 * of the stream (|*msg| = NULL; then call cgrpc_call_finish()), or
 * CGRPC_ERR_WOULD_DEADLOCK / CGRPC_ERR_INVALID_ARGUMENT.  A message that does
 * not decode ends the call with INTERNAL.
 * Thread safety: one reader at a time per call; any thread but the library's.
 */
CGRPC_EXTERN int cgrpc_call_read(cgrpc_call *call, ProtobufCMessage **msg);

/*
 * Waits for the server's response headers and returns its initial metadata
 * (NULL when it sent none, or the call ended without headers).  The array
 * stays valid until the call is released.  Thread safety: any thread but the
 * library's.
 */
CGRPC_EXTERN const cgrpc_metadata_array *
cgrpc_call_initial_metadata(cgrpc_call *call);

/*
 * Waits for the end of the call and copies its outcome into |status| (when
 * not NULL; release with cgrpc_status_clear()).  Messages not read are
 * dropped.  Half-closes the call first if the caller has not.  Calling it
 * again reports the same outcome again.
 *
 * Returns the status code.  Thread safety: any thread but the library's.
 */
CGRPC_EXTERN cgrpc_status_code cgrpc_call_finish(cgrpc_call *call,
                                                 cgrpc_status *status);

/*
 * For client-streaming methods: half-closes, waits for the single response
 * and the status.  On OK |*reply| receives the response (free it with
 * protobuf_c_message_free_unpacked()); otherwise NULL.  Returns the status
 * code; a stream without exactly one response ends as INTERNAL (none: as
 * UNIMPLEMENTED, as gRPC does for unary methods).
 */
CGRPC_EXTERN cgrpc_status_code cgrpc_call_finish_with_reply(
    cgrpc_call *call, ProtobufCMessage **reply, cgrpc_status *status);

/*
 * The async (callback) form.  Callbacks run on the channel's thread and must
 * not block; each may start the next operation.
 *
 * |on_read| receives one message per cgrpc_call_read_async(), which it owns
 * (free with protobuf_c_message_free_unpacked()), or NULL at the end of the
 * stream.  |on_write_done| reports each cgrpc_call_write_async(): |ok| is 0
 * when the call ended before the message could be sent.  |on_done| runs once,
 * last, with the outcome (valid during the callback; see
 * cgrpc_call_take_status()), as soon as the call is over and no read or
 * write is pending: messages received but not asked for are dropped then.
 * A call from cgrpc_call_open_async() starts at once, so one that ends
 * quickly can report on_done before the application's first
 * cgrpc_call_read_async() (which then returns CGRPC_ERR_INVALID_STATE):
 * a reader that must see every message creates the call with
 * cgrpc_call_new_async(), asks for its first read, then starts it with
 * cgrpc_call_start(), and asks for each next message from on_read.  Any
 * member may be NULL.
 */
typedef struct cgrpc_call_callbacks {
  void (*on_read)(cgrpc_call *call, ProtobufCMessage *msg, void *user_data);
  void (*on_write_done)(cgrpc_call *call, int ok, void *user_data);
  void (*on_done)(cgrpc_call *call, const cgrpc_status *status,
                  void *user_data);
} cgrpc_call_callbacks;

/*
 * Like cgrpc_call_open(), for the callback form.  |cbs| is copied.
 * Returns 0, or as cgrpc_call_open().  Thread safety: any thread.
 */
CGRPC_EXTERN int cgrpc_call_open_async(cgrpc_channel *channel,
                                       const cgrpc_method_desc *method,
                                       const cgrpc_call_options *opts,
                                       const cgrpc_call_callbacks *cbs,
                                       void *user_data, cgrpc_call **call_ptr);

/*
 * Like cgrpc_call_open_async(), but the call does not start (nothing is
 * sent and no callback runs) until cgrpc_call_start(): reads and writes
 * asked for in between are carried out from the start on, so that none of
 * the server's messages can come before the first read was asked for (as
 * grpc++'s StartRead() before StartCall()).  A call released without being
 * started is freed and reports nothing.
 * Returns 0, or as cgrpc_call_open().  Thread safety: any thread.
 */
CGRPC_EXTERN int cgrpc_call_new_async(cgrpc_channel *channel,
                                      const cgrpc_method_desc *method,
                                      const cgrpc_call_options *opts,
                                      const cgrpc_call_callbacks *cbs,
                                      void *user_data, cgrpc_call **call_ptr);

/*
 * Starts a call from cgrpc_call_new_async(); from then on it runs as one
 * from cgrpc_call_open_async() (on_done will run).  A cancel asked for
 * before makes it end at once with CANCELLED.
 * Returns 0, or one of:
 *   CGRPC_ERR_INVALID_STATE  already started (or not from new_async).
 *   CGRPC_ERR_CLOSED         the channel is being deleted; the call will
 *                            not start, and no callback runs.
 * Thread safety: any thread; once.
 */
CGRPC_EXTERN int cgrpc_call_start(cgrpc_call *call);

/*
 * Asks for the next message: |on_read| runs when it arrives (or at the end).
 * One read may be pending at a time.  Returns 0, or
 * CGRPC_ERR_INVALID_STATE (a read is pending, or the stream has ended).
 * Thread safety: any thread.
 */
CGRPC_EXTERN int cgrpc_call_read_async(cgrpc_call *call);

/*
 * Queues |msg| (serialized before this returns) without blocking;
 * |on_write_done| runs once it has gone to the transport.  One write may be
 * pending at a time.  Returns 0, or as cgrpc_call_write().
 * Thread safety: any thread.
 */
CGRPC_EXTERN int cgrpc_call_write_async(cgrpc_call *call,
                                        const ProtobufCMessage *msg);

/*
 * cgrpc_call_write_async() with |flags| (see cgrpc_call_write_flags()).
 * Thread safety: any thread.
 */
CGRPC_EXTERN int cgrpc_call_write_async_flags(cgrpc_call *call,
                                              const ProtobufCMessage *msg,
                                              unsigned flags);

#ifdef __cplusplus
}
#endif

#endif /* CGRPC_CALL_H */
