/* SPDX-License-Identifier: MIT */
/*
 * gRPC message framing ("Length-Prefixed-Message" in the gRPC HTTP/2
 * protocol): a 1-byte compressed flag, a 4-byte big-endian length, then that
 * many bytes.  A message may span DATA frames and a frame may hold several
 * messages, so the parser is incremental, with two explicit states: expect
 * the 5-byte prefix, then expect the payload.
 */
#ifndef CGRPC_CALL_DEFRAMER_H
#define CGRPC_CALL_DEFRAMER_H

#include <stddef.h>
#include <stdint.h>

/* Size of the length prefix in front of every message. */
#define CGRPC__FRAME_PREFIX_LEN 5

/*
 * Receives one complete message: |compressed| is the flag byte (0 or 1),
 * |data| and |len| the payload (|data| is never NULL, even when |len| is 0).
 * |data| is valid only until the callback returns; it may point into the
 * caller's buffer or into the deframer's own buffer.  The callback must not
 * feed or free the deframer.
 *
 * Returns 0 to continue, or any nonzero value to stop parsing; that value is
 * returned by cgrpc__deframer_feed() and the deframer stays failed.
 */
typedef int (*cgrpc__deframer_msg_cb)(void *user_data, int compressed,
                                      const uint8_t *data, size_t len);

/* Parser states. */
typedef enum cgrpc__deframer_state {
  /* Waiting for (the rest of) a 5-byte prefix. */
  CGRPC__DEFRAMER_EXPECT_PREFIX,
  /* Prefix read; waiting for (the rest of) the payload. */
  CGRPC__DEFRAMER_EXPECT_PAYLOAD,
  /* An error occurred; every later feed returns it again. */
  CGRPC__DEFRAMER_FAILED
} cgrpc__deframer_state;

/* The deframer.  Fields are private to deframer.c. */
typedef struct cgrpc__deframer {
  cgrpc__deframer_state state;
  /* Error returned by every feed once |state| is FAILED. */
  int error;
  /* Prefix bytes gathered so far, when a prefix spans feeds. */
  uint8_t prefix[CGRPC__FRAME_PREFIX_LEN];
  size_t prefix_len;
  /* From the current message's prefix. */
  int compressed;
  uint32_t msg_len;
  /* Payload of a message that spans feeds: |buf_len| bytes of |buf_cap|
   * received so far.  Grows with the bytes actually received, never
   * straight to |msg_len|. */
  uint8_t *buf;
  size_t buf_len;
  size_t buf_cap;
  /* Bytes reserved in front of |buf|'s payload (see set_headroom); |alloc|
   * is the allocation itself. */
  size_t headroom;
  uint8_t *alloc;
  /* Set while |cb| runs on a buffered message: it may be stolen. */
  int delivering_buf;
  /* Largest accepted message, or -1 for no limit. */
  int64_t max_len;
} cgrpc__deframer;

/*
 * Initializes |d| to expect a prefix.  Messages longer than |max_len| bytes
 * are refused; -1 means no limit.  Does not allocate.
 */
void cgrpc__deframer_init(cgrpc__deframer *d, int64_t max_len);

/*
 * Parses the |len| bytes at |data| and calls |cb| with |user_data| once per
 * complete message, in order.  When a whole message lies inside |data|,
 * |cb| gets a pointer into |data| (no copy); only a message split across
 * feeds is buffered.  |data| may be NULL when |len| is 0.
 *
 * Returns 0, or one of:
 *   CGRPC_ERR_TOO_LARGE  A prefix announced more than max_len bytes.  Detected
 *                        on the prefix, before anything is buffered.
 *   CGRPC_ERR_PROTO      The flag byte is neither 0 nor 1.
 *   CGRPC_ERR_NOMEM      Out of memory while buffering a split message.
 *   any nonzero value    returned by |cb|, which stops parsing at once.
 * After an error the deframer stays failed and returns the same value.
 *
 * Thread safety: one thread at a time per deframer.
 */
int cgrpc__deframer_feed(cgrpc__deframer *d, const uint8_t *data, size_t len,
                         cgrpc__deframer_msg_cb cb, void *user_data);

/*
 * Reserves |headroom| bytes in front of every buffered payload, so that a
 * caller that steals the buffer can put its own header there.  Call before
 * the first feed.
 */
void cgrpc__deframer_set_headroom(cgrpc__deframer *d, size_t headroom);

/*
 * From inside the message callback only: takes the buffer that holds the
 * message being delivered and returns its allocation (the payload starts
 * |headroom| bytes in), which the caller then owns and frees with
 * cgrpc__free(); or NULL when the message was delivered in place from the
 * fed data (then copy it).  Saves a copy of every message that spans feeds.
 */
uint8_t *cgrpc__deframer_steal(cgrpc__deframer *d);

/*
 * Returns nonzero when no partial message is pending (no prefix byte or
 * payload byte of an unfinished message has been seen) and the deframer has
 * not failed.  At END_STREAM, zero means the stream was truncated.
 */
int cgrpc__deframer_is_idle(const cgrpc__deframer *d);

/*
 * Frees the buffer held by |d|.  |d| may be initialized again afterwards.
 */
void cgrpc__deframer_free(cgrpc__deframer *d);

/*
 * Writes the 5-byte prefix for a message of |len| bytes into |out|:
 * flag 1 when |compressed| is nonzero, else 0, then |len| big-endian.
 */
void cgrpc__frame_prefix(uint8_t out[CGRPC__FRAME_PREFIX_LEN], int compressed,
                         uint32_t len);

#endif /* CGRPC_CALL_DEFRAMER_H */
