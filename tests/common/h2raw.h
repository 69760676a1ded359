/* SPDX-License-Identifier: MIT */
/*
 * A tiny raw HTTP/2 toolkit for tests that play a hostile peer: frames are
 * built by hand into a growable buffer and written to a plain TCP socket,
 * with no nghttp2 in between, so a test can send exactly what a misbehaving
 * client or server would (and then, say, never read its socket).
 *
 *   h2raw_buf b;
 *   h2raw_buf_init(&b);
 *   h2raw_preface(&b);
 *   h2raw_settings(&b, NULL, 0);
 *   h2raw_headers(&b, 1, 0, kv);          (kv: name, value, ..., NULL)
 *   h2raw_data(&b, 1, 1, msg, msg_len);
 *   h2raw_send_buf(fd, &b);
 *   h2raw_buf_free(&b);
 *
 * Header blocks use only HPACK "literal header field without indexing, new
 * name" entries with raw (non-Huffman) strings (RFC 7541 §6.2.2), which
 * every decoder accepts and which leave the peer's dynamic table alone.
 *
 * The second half of this header reads frames and decodes header blocks
 * (with nghttp2's HPACK inflater, the one piece of nghttp2 used here), for
 * tests that check what a peer sends.
 *
 * Builders never fail loudly: when memory runs out the buffer is marked
 * |failed| and later appends do nothing; h2raw_send_buf() then returns -1.
 * Thread safety: one thread at a time per buffer.
 */
#ifndef CGRPC_TEST_H2RAW_H
#define CGRPC_TEST_H2RAW_H

#include <stddef.h>
#include <stdint.h>

/* Frame types and flags (RFC 9113 §6). */
enum {
  H2RAW_DATA = 0x0,
  H2RAW_HEADERS = 0x1,
  H2RAW_RST_STREAM = 0x3,
  H2RAW_SETTINGS = 0x4,
  H2RAW_PING = 0x6,
  H2RAW_GOAWAY = 0x7,
  H2RAW_WINDOW_UPDATE = 0x8,
  H2RAW_CONTINUATION = 0x9
};
enum {
  H2RAW_FLAG_END_STREAM = 0x1,
  H2RAW_FLAG_ACK = 0x1,
  H2RAW_FLAG_END_HEADERS = 0x4,
  H2RAW_FLAG_PADDED = 0x8,
  H2RAW_FLAG_PRIORITY = 0x20
};

/* Error codes (RFC 9113 §7). */
enum {
  H2RAW_NO_ERROR = 0x0,
  H2RAW_PROTOCOL_ERROR = 0x1,
  H2RAW_INTERNAL_ERROR = 0x2,
  H2RAW_STREAM_CLOSED = 0x5,
  H2RAW_REFUSED_STREAM = 0x7,
  H2RAW_CANCEL = 0x8
};

/* SETTINGS identifiers. */
enum {
  H2RAW_SETTINGS_HEADER_TABLE_SIZE = 0x1,
  H2RAW_SETTINGS_ENABLE_PUSH = 0x2,
  H2RAW_SETTINGS_MAX_CONCURRENT_STREAMS = 0x3,
  H2RAW_SETTINGS_INITIAL_WINDOW_SIZE = 0x4,
  H2RAW_SETTINGS_MAX_FRAME_SIZE = 0x5,
  H2RAW_SETTINGS_MAX_HEADER_LIST_SIZE = 0x6
};

/* The largest flow-control window, 2^31-1. */
#define H2RAW_MAX_WINDOW 0x7fffffffu
/* The initial window every stream and the connection start with. */
#define H2RAW_DEFAULT_WINDOW 65535u

typedef struct h2raw_buf {
  uint8_t *data;
  size_t len, cap;
  int failed; /* an allocation failed: the contents are incomplete */
} h2raw_buf;

typedef struct h2raw_setting {
  uint16_t id;
  uint32_t value;
} h2raw_setting;

void h2raw_buf_init(h2raw_buf *b);
/* Frees what |b| holds and makes it empty again. */
void h2raw_buf_free(h2raw_buf *b);
/* Empties |b| but keeps its memory. */
void h2raw_buf_reset(h2raw_buf *b);
/* Appends |n| raw bytes. */
void h2raw_append(h2raw_buf *b, const void *p, size_t n);

/* The client connection preface (the 24-byte magic; a SETTINGS frame must
 * follow it). */
void h2raw_preface(h2raw_buf *b);

/* Any frame: the 9-byte header and |len| bytes of |payload| (which may be
 * NULL when |len| is 0). */
void h2raw_frame(h2raw_buf *b, uint8_t type, uint8_t flags, uint32_t stream,
                 const void *payload, size_t len);

/* SETTINGS with |n| entries (|s| may be NULL when |n| is 0). */
void h2raw_settings(h2raw_buf *b, const h2raw_setting *s, size_t n);
void h2raw_settings_ack(h2raw_buf *b);
/* WINDOW_UPDATE of |increment| on |stream| (0: the connection). */
void h2raw_window_update(h2raw_buf *b, uint32_t stream, uint32_t increment);

/*
 * HEADERS with END_HEADERS (and END_STREAM when |end_stream|) whose block
 * holds the |kv| pairs: name, value, name, value, ..., NULL.  Names are
 * sent as given (HTTP/2 wants them lower-case).
 */
void h2raw_headers(h2raw_buf *b, uint32_t stream, int end_stream,
                   const char *const *kv);
/* Just the HPACK block h2raw_headers() would carry, appended to |b|. */
void h2raw_hpack_block(h2raw_buf *b, const char *const *kv);

/* DATA carrying |n| bytes of |p|, with END_STREAM when |end_stream|. */
void h2raw_data(h2raw_buf *b, uint32_t stream, int end_stream, const void *p,
                size_t n);
void h2raw_rst_stream(h2raw_buf *b, uint32_t stream, uint32_t error_code);
/* PING with |opaque| (8 bytes; NULL for zeros), an ACK when |ack|. */
void h2raw_ping(h2raw_buf *b, int ack, const uint8_t *opaque);
void h2raw_goaway(h2raw_buf *b, uint32_t last_stream, uint32_t error_code);

/* A gRPC length-prefixed message (gRPC's PROTOCOL-HTTP2.md): the
 * compressed flag 0, the 4-byte big-endian length and |n| bytes of |p|.
 * Appended as is: send the result as the payload of h2raw_data(). */
void h2raw_grpc_message(h2raw_buf *b, const void *p, size_t n);

/* ---- sockets ---------------------------------------------------------- */

/*
 * A blocking TCP socket connected to 127.0.0.1:|port|, or -1.  |rcvbuf| > 0
 * sets SO_RCVBUF before connecting (so the advertised TCP window is small
 * too): a peer that never reads then stalls the other side quickly.
 */
int h2raw_connect(int port, int rcvbuf);

/*
 * A listening socket on 127.0.0.1 with a port the system picks, written to
 * |*port|; -1 on failure.  |rcvbuf| > 0 sets SO_RCVBUF on it, which accepted
 * sockets inherit from the handshake on.
 */
int h2raw_listen(int *port, int rcvbuf);

/*
 * Accepts one connection on |lfd|, waiting at most |ms| milliseconds.
 * |rcvbuf| > 0 sets SO_RCVBUF on the accepted socket as well.  Returns the
 * (blocking) socket, or -1 on timeout or error.
 */
int h2raw_accept(int lfd, int rcvbuf, int ms);

/* Sends all |n| bytes of |p| (MSG_NOSIGNAL); returns 0 or -1. */
int h2raw_send(int fd, const void *p, size_t n);
/* Sends the contents of |b|; returns 0, or -1 when |b| failed or send did. */
int h2raw_send_buf(int fd, const h2raw_buf *b);

/*
 * Reads and discards whatever arrives on |fd| for |ms| milliseconds, or
 * until the peer closes.  Returns the bytes read, or -1 on an error other
 * than a reset.
 */
long h2raw_drain(int fd, int ms);

/* ---- reading frames ----------------------------------------------------
 *
 * The other direction, for tests that check what a peer sends:
 *
 *   h2raw_rframe f;
 *   h2raw_hpack *hp;                       (one per connection)
 *   h2raw_fields hdrs;
 *   h2raw_hpack_new(&hp);
 *   while (h2raw_read_frame(fd, 1000, &f) == 1) {
 *     h2raw_ack_settings(fd, &f);
 *     if (f.type == H2RAW_HEADERS && h2raw_hpack_decode(hp, &f, &hdrs) == 0)
 *       ... h2raw_fields_get(&hdrs, ":status") ...
 *     h2raw_rframe_free(&f);
 *   }
 *
 * Reads take exactly the bytes of one frame from the socket (no read-ahead
 * buffer), so a test may mix them freely with h2raw_drain() or close().
 */

/* One received frame.  |payload| (|len| bytes, NULL when |len| is 0) is
 * owned by the frame: h2raw_rframe_free() releases it. */
typedef struct h2raw_rframe {
  uint8_t type, flags;
  uint32_t stream;
  uint8_t *payload;
  size_t len;
} h2raw_rframe;

/*
 * Reads the client connection preface (the 24-byte magic, not the SETTINGS
 * frame after it) from |fd| within |ms| milliseconds.  Returns 0, or -1 on
 * timeout, close, error or a wrong magic.
 */
int h2raw_read_preface(int fd, int ms);

/*
 * Reads the next frame from |fd| into |*f|, waiting at most |ms|
 * milliseconds for all of it.  Returns 1 with a frame; 0 when the peer
 * closed the connection (EOF or reset) before another frame began; -1 on
 * timeout, an error, a close inside a frame, or out of memory.  |*f| is
 * filled only when 1 is returned.
 */
int h2raw_read_frame(int fd, int ms, h2raw_rframe *f);
void h2raw_rframe_free(h2raw_rframe *f);

/* The big-endian 32-bit word at byte |off| of |f|'s payload, or 0 when the
 * payload is shorter: the error code of RST_STREAM (|off| 0); GOAWAY's last
 * stream id (0, mask with 0x7fffffff) and error code (4). */
uint32_t h2raw_rframe_u32(const h2raw_rframe *f, size_t off);

/*
 * Answers a peer's SETTINGS frame |f| with a SETTINGS ACK on |fd| (RFC 9113
 * 6.5.3).  Returns 1 when |f| was a SETTINGS frame without ACK and the ACK
 * was sent, 0 when |f| is any other frame, -1 when the send failed.
 */
int h2raw_ack_settings(int fd, const h2raw_rframe *f);

/* ---- decoding header blocks (nghttp2's HPACK inflater) ----------------- */

/* One decoded header field: NUL-terminated copies of the name and value
 * (the lengths count the bytes, which may include a NUL). */
typedef struct h2raw_field {
  char *name, *value;
  size_t name_len, value_len;
} h2raw_field;

/* The fields of one header block, in the order they were sent. */
typedef struct h2raw_fields {
  h2raw_field *v;
  size_t n;
} h2raw_fields;

/* An HPACK decoder (an nghttp2_hd_inflater inside).  The peer's encoder
 * keeps a dynamic table per connection, so a test needs one decoder per
 * connection and must feed it every header block of that connection, in
 * order, including the ones it does not look at. */
typedef struct h2raw_hpack h2raw_hpack;

/* Returns 0 with a new decoder in |*hp|, or -1 (out of memory). */
int h2raw_hpack_new(h2raw_hpack **hp);
/* Frees |hp|; NULL does nothing. */
void h2raw_hpack_del(h2raw_hpack *hp);

/*
 * Decodes the header block of the HEADERS frame |f| (skipping its padding
 * and priority fields) into |*out|, which it initialises; free it with
 * h2raw_fields_free().  The frame must carry END_HEADERS: CONTINUATION is
 * not supported (the peers under test send small blocks).  Returns 0, or -1
 * when |f| is not such a frame, the block is malformed or memory ran out;
 * after -1 for a malformed block the decoder is out of step with the peer
 * and of no further use.
 */
int h2raw_hpack_decode(h2raw_hpack *hp, const h2raw_rframe *f,
                       h2raw_fields *out);
void h2raw_fields_free(h2raw_fields *l);
/* The index of the first field called |name| in |l|, or -1. */
int h2raw_fields_find(const h2raw_fields *l, const char *name);
/* The value of the first field called |name| in |l|, or NULL. */
const char *h2raw_fields_get(const h2raw_fields *l, const char *name);

#endif /* CGRPC_TEST_H2RAW_H */
