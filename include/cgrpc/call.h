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
 * grpc-timeout); 0 means none.  |metadata|, when not NULL, is sent with the
 * request; it is read before the call function returns.
 */
typedef struct cgrpc_call_options {
  int64_t timeout_ms;
  const cgrpc_metadata_array *metadata;
} cgrpc_call_options;

/*
 * Makes a unary call and waits for its outcome.  On OK, |*reply| receives a
 * message of method->output type that the caller frees with
 * protobuf_c_message_free_unpacked(reply, NULL); otherwise it is set to NULL.
 * |status|, when not NULL, receives the code, message and metadata; free them
 * with cgrpc_status_clear().  Misuse (NULL arguments, a call from one of the
 * library's own threads) yields INVALID_ARGUMENT or FAILED_PRECONDITION with
 * a message that says what went wrong.
 *
 * Returns the status code.  Thread safety: any thread except the library's
 * own (not from a callback or handler).
 */
CGRPC_EXTERN cgrpc_status_code cgrpc_unary_call(
    cgrpc_channel *channel, const cgrpc_method_desc *method,
    const ProtobufCMessage *request, ProtobufCMessage **reply,
    const cgrpc_call_options *opts, cgrpc_status *status);

/*
 * Called once when an async call completes, on the channel's thread.
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
 * Streaming calls are not available in this version: returns
 * CGRPC_ERR_UNSUPPORTED.  Generated stubs for streaming methods call this.
 */
CGRPC_EXTERN int cgrpc_stream_open(cgrpc_channel *channel,
                                   const cgrpc_method_desc *method,
                                   const cgrpc_call_options *opts,
                                   cgrpc_call **call_ptr);

#ifdef __cplusplus
}
#endif

#endif /* CGRPC_CALL_H */
