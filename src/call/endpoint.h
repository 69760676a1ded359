/* SPDX-License-Identifier: MIT */
/*
 * One end of a gRPC call: what the client's cgrpc_call and the server's
 * cgrpc_server_ctx share, so that each lifetime rule is written once.
 *
 *  - References.  |refs| counts every holder: the application's handle,
 *    the stream (from the moment nghttp2 knows the endpoint as a stream's
 *    user data or data source until it says it is done with it:
 *    on_stream_close, the request HEADERS dropped unsent, or the session
 *    deleted), a queued kick or notify, a running handler.  A deadline or
 *    a cancel marks the call done; it frees nothing nghttp2 may still read.
 *    The last reference calls ops->destroy.
 *  - Kicks.  Other threads never touch the session: they set request bits
 *    under the lock and post the endpoint's one embedded task node, at most
 *    once at a time (st.kick_pending), so a post cannot fail and no
 *    out-of-memory path loses a wake-up.
 *  - The body.  Both sides' DATA come from the send queue through one data
 *    provider.  The provider promises bytes to nghttp2 (NO_COPY) and those
 *    bytes stay queued until the connection has copied them: nghttp2 may
 *    retry the same frame after the socket refused it, even after the call
 *    has ended, as long as the stream is open.
 *  - Receiving.  DATA goes through the deframer to the side's message hook,
 *    its errors map to one status each, and the window is given back to the
 *    peer only as fast as the reader takes messages (call/stream.h).  A
 *    compressed message is inflated here, in the peer's grpc-encoding
 *    (|recv_enc|, which the side sets from the headers) and within the
 *    receive limit, before the hook sees it (call/compress.h).
 *  - Async delivery.  The notify task hands due read and write completions
 *    to the side's callbacks on the loop thread.
 *
 * Thread safety: fields under "loop thread" are touched only on the
 * endpoint's loop; the rest is guarded by st.lock.
 */
#ifndef CGRPC_CALL_ENDPOINT_H
#define CGRPC_CALL_ENDPOINT_H

#include <nghttp2/nghttp2.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "call/deframer.h"
#include "call/stream.h"
#include "cgrpc/status.h"
#include "h2/conn.h"
#include "io/loop.h"

#include <protobuf-c/protobuf-c.h>

/* Largest header list (headers + trailers, names + values + 32 per field,
 * as HTTP/2 counts it) one call stores; a larger one resets the stream. */
#define CGRPC__EP_MAX_HEADER_BYTES (64 * 1024)

typedef struct cgrpc__ep cgrpc__ep;

/* How an endpoint left its stream (cgrpc__ep_ops.unbound). */
typedef enum cgrpc__ep_end {
  /* nghttp2 closed the stream; |error_code| is the RST_STREAM code, or 0. */
  CGRPC__EP_CLOSED,
  /* The request HEADERS were dropped before they went out: the peer never
   * saw the stream. */
  CGRPC__EP_NOT_SENT,
  /* The connection went while the stream was open. */
  CGRPC__EP_CONN_LOST,
  /* The connection went before the request HEADERS were sent. */
  CGRPC__EP_CONN_LOST_UNSENT
} cgrpc__ep_end;

/* Request bits carried to the loop by a kick.  Bits from CGRPC__EP_REQ_SIDE
 * up are the side's own. */
enum {
  /* The send queue grew or writes closed: resume the body. */
  CGRPC__EP_REQ_SEND = 1u << 0,
  /* End the call with fail_code / fail_message (set with the bit). */
  CGRPC__EP_REQ_FAIL = 1u << 1,
  /* Run the async completions (an async read was asked for). */
  CGRPC__EP_REQ_NOTIFY = 1u << 2,
  CGRPC__EP_REQ_SIDE = 1u << 4
};

/* What differs between the client and the server.  Every hook but destroy
 * runs on the loop thread. */
typedef struct cgrpc__ep_ops {
  /* A kick with |requests| (cleared before the call).  The shared part
   * (window given back, body resumed, a FAIL through ops->fail) has
   * run. */
  void (*kick)(cgrpc__ep *ep, unsigned requests);
  /* A received message, valid during the call only (take it with
   * cgrpc__ep_take_message()); |compressed| says it came compressed.  On
   * a unary side (|unary_recv|) |data| is what it inflated to; on a
   * streaming side it is still compressed, inflated only when the reader
   * takes it, so a reader that lags holds the bytes the window let in,
   * not what they inflate to.  Returns 0 to go on, CGRPC_ERR_NOMEM,
   * or 1 after the side has ended the call itself. */
  int (*message)(cgrpc__ep *ep, int compressed, const uint8_t *data,
                 size_t len);
  /* Ends the call with |code| and |message| now (idempotent). */
  void (*fail)(cgrpc__ep *ep, cgrpc_status_code code, const char *message);
  /* The body's end was reached: returns flags for the last DATA frame
   * (NGHTTP2_DATA_FLAG_NO_END_STREAM when the side submits trailers, which
   * it does here), or 0. */
  uint32_t (*body_end)(cgrpc__ep *ep);
  /* Async completions: a message asked for with cgrpc__ep_read_async()
   * (owned by the callee; NULL at the end), and the pending async write
   * (|ok| 0 when the call ended before it went out). */
  void (*read_done)(cgrpc__ep *ep, ProtobufCMessage *msg);
  void (*write_done)(cgrpc__ep *ep, int ok);
  /* After the due completions were delivered (may be NULL). */
  void (*idle)(cgrpc__ep *ep);
  /* The endpoint left its stream (see cgrpc__ep_end).  The stream's
   * reference is dropped right after. */
  void (*unbound)(cgrpc__ep *ep, cgrpc__ep_end how, uint32_t error_code);
  /* The last reference went: free the object.  On the server always the
   * loop thread; on the client any thread, once nothing on the loop refers
   * to the call. */
  void (*destroy)(cgrpc__ep *ep);
} cgrpc__ep_ops;

struct cgrpc__ep {
  atomic_int refs;
  const cgrpc__ep_ops *ops;
  cgrpc__loop *loop;
  cgrpc__stream st; /* the queues, with the lock and cond */

  /* Guarded by st.lock. */
  unsigned requests;
  cgrpc_status_code fail_code;
  const char *fail_message;   /* static */
  unsigned char read_pending; /* an async read waits for its message */
  unsigned char reads_ended;  /* the side takes no more async reads */

  /* Loop thread only. */
  cgrpc__task kick_node;
  cgrpc__deferred notify;
  cgrpc__h2conn *conn; /* the stream's connection while bound, else NULL */
  int32_t stream_id;
  unsigned char peer_reset; /* the peer sent RST_STREAM */
  cgrpc__ep *prev, *next;   /* in the connection's list */
  cgrpc__ep **list;
  cgrpc__deframer deframer;
  size_t header_bytes;
  /* One message is expected: the window is never held back for it, and
   * it waits in |unary_msg| (loop thread only) for the side to take. */
  unsigned char unary_recv;
  cgrpc__msg *unary_msg;
  /* The side has async completions beyond pending reads and writes (the
   * client's on_done): the notify runs when the call stops. */
  unsigned char async;
  int64_t max_recv;
  const ProtobufCMessageDescriptor *recv_desc;
  const char *recv_what; /* "request" or "response", for messages */
  /* The peer's grpc-encoding: a cgrpc_compression, 0 when it sent none,
   * or CGRPC__COMPRESS_UNKNOWN. */
  signed char recv_enc;
  /* The inflated allocation of the message being delivered (headroom for
   * a cgrpc__msg in front), for cgrpc__ep_take_message() to adopt. */
  uint8_t *inflated;

  /* The reader's: whether the message it took last came compressed (see
   * cgrpc__ep_read_wait() and ops->read_done; a unary side sets it itself
   * before the application sees the message). */
  unsigned char last_compressed;
};

/* Sets up |ep| with |refs| references (the creator's), the queue limits of
 * call/stream.h and a deframer refusing messages over |max_recv| (-1: no
 * limit).  Received messages decode as |recv_desc|. */
void cgrpc__ep_init(cgrpc__ep *ep, const cgrpc__ep_ops *ops, cgrpc__loop *loop,
                    int refs, int64_t max_recv,
                    const ProtobufCMessageDescriptor *recv_desc,
                    const char *recv_what);

/* Frees what cgrpc__ep_init() set up (for the side's destroy). */
void cgrpc__ep_free(cgrpc__ep *ep);

/* Any thread.  The last unref calls ops->destroy. */
void cgrpc__ep_ref(cgrpc__ep *ep);
void cgrpc__ep_unref(cgrpc__ep *ep);

/* ---- kicks (any thread) ---- */

/* Adds |requests| and makes sure a kick is on its way. */
void cgrpc__ep_kick(cgrpc__ep *ep, unsigned requests);

/* With st.lock held: adds |requests|; returns nonzero when the caller must
 * then call cgrpc__ep_post_kick() (after unlocking), with the reference the
 * kick will hold already taken. */
int cgrpc__ep_want_kick(cgrpc__ep *ep, unsigned requests);
/* With st.lock held: cgrpc__stream_release_recv(), and when window is due
 * back, a kick to post as above. */
int cgrpc__ep_release_recv(cgrpc__ep *ep);
void cgrpc__ep_post_kick(cgrpc__ep *ep);

/* Ends the call with |code| and the static |message|: at once on the loop
 * thread, else through a kick. */
void cgrpc__ep_fail_any(cgrpc__ep *ep, cgrpc_status_code code,
                        const char *message);

/* ---- the stream (loop thread) ---- */

/* Binds |ep| to |stream_id| on |conn| and links it into |*list| (the
 * connection's endpoints); takes the stream's reference. */
void cgrpc__ep_bind(cgrpc__ep *ep, cgrpc__h2conn *conn, cgrpc__ep **list,
                    int32_t stream_id);

/* The endpoint bound to |stream_id| in |list|, or NULL (for streams that
 * nghttp2 has not opened, whose user data it does not report). */
cgrpc__ep *cgrpc__ep_find(cgrpc__ep *list, int32_t stream_id);

/* nghttp2 closed |stream_id| (on_stream_close) or dropped its unsent
 * request HEADERS (on_frame_not_send): unbinds, with ops->unbound, and
 * drops the stream's reference.  No-op when |ep| is not bound to that
 * stream (a retried request is bound to its new one by the time nghttp2
 * closes the old). */
void cgrpc__ep_closed(cgrpc__ep *ep, int32_t stream_id, uint32_t error_code);
void cgrpc__ep_not_sent(cgrpc__ep *ep);

/* A frame the side's on_frame_recv got for |ep|'s stream (bookkeeping
 * both sides share). */
static inline void cgrpc__ep_frame_recv(cgrpc__ep *ep,
                                        const nghttp2_frame *frame) {
  if (frame->hd.type == NGHTTP2_RST_STREAM)
    ep->peer_reset = 1;
}

/* The connection of every endpoint in |*list| is going (before its session
 * is deleted): unbinds them all. */
void cgrpc__ep_conn_lost(cgrpc__ep **list);

/* Resets |ep|'s stream with |error_code| (loop thread; nothing when not
 * bound).  When even that cannot be queued (out of memory), the connection
 * is closed: the peer must not wait for a stream nobody will end. */
void cgrpc__ep_reset(cgrpc__ep *ep, uint32_t error_code);

/* Nonzero while |ep| is bound and the request's half of its stream is
 * open (the peer's on a server, ours on a client).  Asked when the
 * response's END_STREAM has gone out (a server's on_frame_send) or come in
 * (a client's on_frame_recv): the call is answered while the request is
 * still open.  A client then ends its half with RST_STREAM(NO_ERROR) (RFC
 * 9113 8.1, as gRPC's PROTOCOL-HTTP2.md allows); a server reads and drops
 * the rest of the request for a while first (server/conn.c).  Loop
 * thread. */
int cgrpc__ep_request_open(const cgrpc__ep *ep);

/* Nonzero while |ep| is bound to an open connection. */
int cgrpc__ep_bound(const cgrpc__ep *ep);

/* Counts a received header against the per-call cap; nonzero when over
 * (then reset the stream: NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE). */
static inline int cgrpc__ep_header_over(cgrpc__ep *ep, size_t namelen,
                                        size_t valuelen) {
  ep->header_bytes += namelen + valuelen + 32;
  return ep->header_bytes > CGRPC__EP_MAX_HEADER_BYTES;
}

/* Received DATA: feeds the deframer (messages go to ops->message; a
 * framing error ends the call through ops->fail with its status) and
 * returns how many of the |len| bytes to give back to the peer now. */
size_t cgrpc__ep_on_data(cgrpc__ep *ep, const uint8_t *data, size_t len);

/* A data provider that sends the send queue (ops->body_end at its end). */
nghttp2_data_provider cgrpc__ep_provider(cgrpc__ep *ep);

/* How the connection reads the bodies (h2/conn.h); the data source is the
 * endpoint. */
extern const cgrpc__h2_body_ops cgrpc__ep_body;

/* The call is over for the application: writers get CGRPC_ERR_CLOSED,
 * readers what is queued and then the end, and queued bytes not yet
 * promised to nghttp2 are dropped (the body then ends).  Wakes waiters and
 * schedules the async completions. */
void cgrpc__ep_stop(cgrpc__ep *ep);

/* From inside ops->message: the message being delivered as a cgrpc__msg
 * marked |compressed|, adopting the buffer that holds |data| when it can
 * (an inflated message, or one the deframer buffered), else a copy.  NULL
 * when out of memory. */
cgrpc__msg *cgrpc__ep_take_message(cgrpc__ep *ep, int compressed,
                                   const uint8_t *data, size_t len);

/* From inside ops->message on a streaming side: the message being
 * delivered, decoded for an observer (an interceptor's on_message),
 * inflated first when it came compressed; the delivery itself is not
 * affected.  NULL when it does not inflate or parse (the reader fails the
 * call when it takes it).  Free with protobuf_c_message_free_unpacked(msg,
 * NULL). */
ProtobufCMessage *cgrpc__ep_peek_message(cgrpc__ep *ep, int compressed,
                                         const uint8_t *data, size_t len);

/* Queues the received message |m| for the reader, or keeps it in
 * |unary_msg| (loop thread). */
void cgrpc__ep_push_received(cgrpc__ep *ep, cgrpc__msg *m);

/* Schedules ops' async completions at the end of this loop turn (holds a
 * reference until they ran). */
void cgrpc__ep_defer_notify(cgrpc__ep *ep);

/* ---- the application's side (any thread) ---- */

/* Queues |m| (ownership passes on success): a |blocking| writer waits
 * while the queue is full, otherwise |m| becomes the one pending async
 * write.  Returns 0, CGRPC_ERR_CLOSED (the call is over) or
 * CGRPC_ERR_INVALID_STATE (writes are closed, or an async write is already
 * pending). */
int cgrpc__ep_write(cgrpc__ep *ep, cgrpc__msg *m, int blocking);

/* No more messages will be queued.  Returns 0 or CGRPC_ERR_INVALID_STATE
 * (already closed). */
int cgrpc__ep_close_writes(cgrpc__ep *ep);

/* Waits for the next received message (NULL at the end of the stream or
 * when the call is over) and gives its window back.  Sets
 * |last_compressed| for it (0 for NULL). */
cgrpc__msg *cgrpc__ep_read_wait(cgrpc__ep *ep);

/* Asks for the next message through ops->read_done (|last_compressed|
 * is set for it before the call).  Returns 0, or
 * CGRPC_ERR_INVALID_STATE when a read is already pending or the side has
 * set |reads_ended|. */
int cgrpc__ep_read_async(cgrpc__ep *ep);

/* Decodes and frees |m|, inflating it first when it is still compressed
 * (|deflated|).  NULL when it does not parse; when it does not inflate
 * (within the receive limit) the call has also been failed, with
 * RESOURCE_EXHAUSTED or INTERNAL.  Any thread. */
ProtobufCMessage *cgrpc__ep_decode(cgrpc__ep *ep, cgrpc__msg *m);

#endif /* CGRPC_CALL_ENDPOINT_H */
