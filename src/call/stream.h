/* SPDX-License-Identifier: MIT */
/*
 * The message queues of a call (a unary call's one message too), shared by
 * the client and the server (call/endpoint.h).  The application's threads
 * write serialized messages into the send queue and take received messages
 * from the receive queue; the loop thread moves bytes between the queues
 * and nghttp2.  Both queues are
 * bounded, which is what carries HTTP/2 flow control to the application:
 *
 *  - a writer waits (or its async write completes later) while more than
 *    |send_limit| bytes are queued, i.e. while the peer's window is shut;
 *  - received bytes are given back to the peer's window (consumed) only
 *    while fewer than |recv_limit| bytes wait for the reader, so a slow
 *    reader stops the peer instead of growing a buffer.
 *
 * One mutex guards everything here; it is never held across a callback or
 * an nghttp2 call.
 */
#ifndef CGRPC_CALL_STREAM_H
#define CGRPC_CALL_STREAM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "call/deframer.h"

#include <protobuf-c/protobuf-c.h>

/* Bytes a writer may queue before it waits, and bytes of received messages
 * held for a reader before the peer's window stops being refilled. */
#define CGRPC__STREAM_SEND_LIMIT (256 * 1024)
#define CGRPC__STREAM_RECV_LIMIT (1024 * 1024)

typedef struct cgrpc__msg {
  struct cgrpc__msg *next;
  size_t len; /* bytes in data[] */
  size_t off; /* bytes already taken (send side) */
  uint64_t seq;
  /* Receive side: the message came compressed (its flag was 1).  data[]
   * holds it inflated, unless |deflated| names its encoding: then data[]
   * holds the compressed bytes, for the reader to inflate when it takes
   * the message (cgrpc__ep_decode()). */
  unsigned char compressed;
  signed char deflated;
  uint8_t data[];
} cgrpc__msg;

typedef struct cgrpc__msgq {
  cgrpc__msg *head, *tail;
  size_t bytes; /* unsent/unread bytes */
} cgrpc__msgq;

typedef struct cgrpc__stream {
  pthread_mutex_t lock;
  pthread_cond_t cond; /* broadcast on every change a waiter cares about */
  cgrpc__msgq sendq;
  cgrpc__msgq recvq;
  size_t send_limit;
  size_t recv_limit;
  uint64_t send_seq;  /* last message queued */
  uint64_t sent_seq;  /* last message fully handed to the transport */
  uint64_t async_seq; /* the pending async write, when async_pending */
  size_t unconsumed;  /* received bytes held back from the peer's window */
  size_t to_consume;  /* bytes the loop should now give back */
  /* Queued bytes promised to nghttp2 for a DATA frame not yet copied out:
   * they stay queued whatever happens to the call. */
  size_t promised;
  uint64_t sent_bytes; /* taken from the send queue so far */
  /* The retry buffer (client): while |keep_sent|, each message taken in
   * full waits in |kept| so the body can be sent again on a new stream
   * (cgrpc__stream_rewind).  It holds at most |keep_limit| bytes (SIZE_MAX
   * by default), and all
   * the streams that share |*keep_pool| (a channel's calls) at most
   * |keep_pool_limit| (NULL: no such limit); past either, the stream stops
   * keeping and frees what it kept (cgrpc__stream_drop_kept). */
  cgrpc__msgq kept;
  /* The message being sent counts against the limits from its first byte
   * on (it must be kept whole): its length, counted in |*keep_pool| but
   * not yet in |kept|. */
  size_t keep_pending;
  size_t keep_limit;
  atomic_size_t *keep_pool;
  size_t keep_pool_limit;
  unsigned keep_sent : 1;
  int waiters;                /* threads in cgrpc__stream_wait() */
  unsigned write_closed : 1;  /* no more messages will be queued */
  unsigned read_closed : 1;   /* the peer half-closed */
  unsigned done : 1;          /* the call is over */
  unsigned kick_pending : 1;  /* a loop task is already on its way */
  unsigned async_pending : 1; /* an async write waits for its callback */
} cgrpc__stream;

void cgrpc__stream_init(cgrpc__stream *st, size_t send_limit,
                        size_t recv_limit);
/* Frees queued messages and the sync objects. */
void cgrpc__stream_free(cgrpc__stream *st);

/* Allocates a message of |len| data bytes (not linked).  NULL when out of
 * memory. */
cgrpc__msg *cgrpc__msg_new(size_t len);

/* Packs |msg| as a framed send message (see cgrpc__pack_framed()),
 * compressed with |enc| when that is gzip or deflate (call/compress.h);
 * |max_send| limits the uncompressed size.  NULL with *err set when it is
 * too large or memory runs out. */
cgrpc__msg *cgrpc__msg_pack(const ProtobufCMessage *msg, int64_t max_send,
                            int enc, int *err);

/* The allocation |alloc| of |len| data bytes after offsetof(cgrpc__msg,
 * data) bytes of headroom, as a message (not linked, not compressed). */
cgrpc__msg *cgrpc__msg_adopt(uint8_t *alloc, size_t len);

/* Reserves room for a message header in front of |d|'s buffered payloads,
 * so cgrpc__msg_received() can adopt them. */
void cgrpc__stream_deframer_init(cgrpc__deframer *d);

/* From inside |d|'s message callback: the message as a cgrpc__msg, adopting
 * the deframer's buffer when the message was buffered (no copy), else a
 * copy of |data|.  NULL when out of memory. */
cgrpc__msg *cgrpc__msg_received(cgrpc__deframer *d, const uint8_t *data,
                                size_t len);

/*
 * The send queue as a no-copy body (see h2/conn.h): copies the next |len|
 * queued bytes to |dst| and drops them (the promise they were made under
 * with them); returns the number copied, and sets |*write_due| when that
 * completed the pending async write (its callback is due).  Takes the
 * lock.
 */
size_t cgrpc__stream_take_body(cgrpc__stream *st, uint8_t *dst, size_t len,
                               int *write_due);

/* With st->lock held: puts the send queue back as it was before anything
 * was taken (for a new stream; nothing is promised any more).  Returns 0,
 * or -1 when bytes were taken that were not kept (keep_sent), or are no
 * longer. */
int cgrpc__stream_rewind(cgrpc__stream *st);

/* With st->lock held: keeps no more sent messages and frees those kept
 * (the call is committed to its current attempt). */
void cgrpc__stream_drop_kept(cgrpc__stream *st);

/* With st->lock held: drops every queued send byte but the promised ones
 * (a message they end inside is cut short) and wakes blocked writers. */
void cgrpc__stream_drop_unpromised(cgrpc__stream *st);

/* ---- called with st->lock held ---- */

/* Waits on st->cond (cgrpc__stream_wake() ends it). */
void cgrpc__stream_wait(cgrpc__stream *st);

/* Wakes every waiter, if there is one (a broadcast costs even when nobody
 * waits, and most calls never have a waiter). */
static inline void cgrpc__stream_wake(cgrpc__stream *st) {
  if (st->waiters > 0)
    pthread_cond_broadcast(&st->cond);
}

/* Nonzero when the pending async write has gone to the transport (or can
 * no longer), i.e. its callback is due; |*ok| tells which.  Clears it. */
int cgrpc__stream_async_write_due(cgrpc__stream *st, int *ok);

void cgrpc__msgq_push(cgrpc__msgq *q, cgrpc__msg *m);
cgrpc__msg *cgrpc__msgq_pop(cgrpc__msgq *q);
void cgrpc__msgq_clear(cgrpc__msgq *q);

/*
 * Copies up to |len| queued send bytes into |buf| (several messages may
 * share one DATA frame; |buf| NULL skips the copy) and frees what is fully
 * taken.  Returns the number
 * of bytes copied.  Wakes blocked writers when the queue drains below the
 * limit.
 */
size_t cgrpc__stream_take_send(cgrpc__stream *st, uint8_t *buf, size_t len);

/*
 * Accounts |len| received DATA bytes: returns how many the loop may give
 * back to the peer now (all of them while the reader keeps up, else 0 and
 * they are held back until the reader drains the queue).
 */
size_t cgrpc__stream_account_recv(cgrpc__stream *st, size_t len);

/* After the reader took a message: moves held-back bytes to |to_consume|
 * once the queue is below the limit.  Returns nonzero when the loop needs a
 * kick to consume them. */
int cgrpc__stream_release_recv(cgrpc__stream *st);

/* Marks a kick as pending; returns nonzero if the caller must post it (no
 * kick was pending). */
int cgrpc__stream_want_kick(cgrpc__stream *st);

#endif /* CGRPC_CALL_STREAM_H */
