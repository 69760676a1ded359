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
  H2RAW_WINDOW_UPDATE = 0x8
};
enum {
  H2RAW_FLAG_END_STREAM = 0x1,
  H2RAW_FLAG_ACK = 0x1,
  H2RAW_FLAG_END_HEADERS = 0x4
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

#endif /* CGRPC_TEST_H2RAW_H */
