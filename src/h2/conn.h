/* SPDX-License-Identifier: MIT */
/*
 * One HTTP/2 connection: a socket, its nghttp2 session, and the plumbing
 * between them.  Reads go straight into nghttp2_session_mem_recv(); writes
 * are batched: whatever the session wants to send during a loop turn is
 * gathered into one buffer and written with one write() at the end of the
 * turn.  When the socket is full, the session is not asked for more until it
 * drains, which is what holds a fast writer back.
 *
 * The session's callbacks (server or client side) belong to the layer above;
 * this module only moves bytes and reports the end of the connection.
 */
#ifndef CGRPC_H2_CONN_H
#define CGRPC_H2_CONN_H

#include <nghttp2/nghttp2.h>
#include <stddef.h>
#include <stdint.h>

#include "h2/keepalive.h"
#include "io/loop.h"
#include "io/tls.h"
#include "util/log.h"

typedef struct cgrpc__h2conn cgrpc__h2conn;

/* Called once, from a posted task, after the connection has closed; the
 * owner then frees the session and its streams. */
typedef void (*cgrpc__h2conn_close_cb)(cgrpc__h2conn *conn, void *user_data);

/* Called once the connection can carry HTTP/2: at once in
 * cgrpc__h2conn_start() for plaintext, after the handshake for TLS (not at
 * all when the handshake fails: the close comes with |error| set). */
typedef void (*cgrpc__h2conn_ready_cb)(cgrpc__h2conn *conn, void *user_data);

/*
 * A request or response body as the connection reads it.  The body's data
 * source read callback only promises a length (it returns it with
 * NGHTTP2_DATA_FLAG_NO_COPY and copies nothing); the connection then has
 * the bytes copied straight from the call's queue into its write batch, so
 * a payload is copied once on its way to the socket.  (Frames larger than
 * 16 KiB, with writev() from the queue, measured no faster on loopback.)
 * |source| is the data source's ptr.
 */
typedef struct cgrpc__h2_body_ops {
  /* Copies the next |len| bytes to |dst| and consumes them; returns the
   * number copied (less than |len| only when the source broke its
   * promise). */
  size_t (*take)(void *source, uint8_t *dst, size_t len);
} cgrpc__h2_body_ops;

/* How many recently closed streams a connection remembers (RFC 9113 5.1:
 * what a frame on one of them gets). */
#define CGRPC__H2_CLOSED_STREAMS 16

struct cgrpc__h2conn {
  cgrpc__loop *loop;
  cgrpc__watch watch;
  int fd;
  nghttp2_session *session;
  cgrpc__deferred flush_task;
  uint8_t *wbuf;
  size_t wlen, woff; /* bytes the socket refused, kept for EPOLLOUT */
  /* The write batch of the flush under way (the loop's scratch buffer). */
  uint8_t *batch;
  size_t blen, bcap;
  int write_failed;
  const cgrpc__h2_body_ops *body;
  int closed;
  int ready; /* the ready callback ran: HTTP/2 flows */
  int received; /* bytes have come in (over plaintext, the first are checked) */
  /* Close once what is queued has been written (a GOAWAY that ends the
   * connection: cgrpc__h2conn_close_when_sent()). */
  int close_when_sent;
  /* Keepalive pings, when they are on (h2/keepalive.h); else NULL. */
  cgrpc__h2_keepalive *ka;
  cgrpc__task close_task; /* carries on_close */
  cgrpc__h2conn_ready_cb on_ready;
  /* TLS, when not NULL: every byte goes through it, after its handshake. */
  SSL *tls;
  cgrpc__deferred read_again; /* TLS holds decrypted bytes to read */
  /* Why the connection failed (a TLS handshake error, ...), for the owner's
   * on_close: NULL while nothing failed (most connections never do, so
   * the text is allocated when it is set, and freed after on_close). */
  char *error;
  /* Streams closed lately whose peer had ended or reset them, in a ring:
   * nghttp2 keeps no closed streams (no_closed_streams), and remembering
   * these few costs 80 bytes a connection. */
  int32_t closed_ids[CGRPC__H2_CLOSED_STREAMS];
  uint8_t closed_how[CGRPC__H2_CLOSED_STREAMS];
  unsigned closed_next;
  int32_t closed_max; /* the highest id in the ring */
  /* Where the received bytes are in their framing (scan_frames). */
  size_t scan_skip;
  uint8_t scan_hd[9];
  size_t scan_hd_len;
  cgrpc__h2conn_close_cb on_close;
  void *user_data;
  /* Where its trace events and messages go (the server's or channel's
   * logger); set by the owner before cgrpc__h2conn_start(), may be NULL. */
  const cgrpc__logger *log;
  char peer[64];
};

/*
 * Starts driving |session| over |fd|: watches the fd, runs the TLS
 * handshake first when |tls| is not NULL (an SSL on |fd|; the connection
 * owns it), calls |on_ready| (may be NULL) and schedules the first flush
 * (preface / SETTINGS).  Takes ownership of |fd| and |tls|, which are
 * closed and freed on failure too.  Returns 0, or CGRPC_ERR_IO.  Loop
 * thread only.
 */
int cgrpc__h2conn_start(cgrpc__h2conn *conn, cgrpc__loop *loop, int fd,
                        nghttp2_session *session, SSL *tls,
                        cgrpc__h2conn_ready_cb on_ready,
                        cgrpc__h2conn_close_cb on_close,
                        const cgrpc__h2_body_ops *body, void *user_data);

/* Closes the connection as failed: |why| goes to |error| (for the owner's
 * messages), then as cgrpc__h2conn_close(). */
void cgrpc__h2conn_fail(cgrpc__h2conn *conn, const char *why);

/* The session's send callbacks: both sides register these, with the
 * connection (whose first member is its cgrpc__h2conn) as user_data. */
ssize_t cgrpc__h2conn_send_cb(nghttp2_session *session, const uint8_t *data,
                              size_t length, int flags, void *user_data);
int cgrpc__h2conn_send_data_cb(nghttp2_session *session, nghttp2_frame *frame,
                               const uint8_t *framehd, size_t length,
                               nghttp2_data_source *source, void *user_data);

/*
 * Remembers that |stream_id| closed (call it from on_stream_close, while
 * nghttp2 still knows the stream).  |peer_reset| tells that the peer ended
 * it with RST_STREAM.  Then, as RFC 9113 5.1 says, DATA or HEADERS on it
 * get a stream error STREAM_CLOSED after the peer's reset, and a connection
 * error STREAM_CLOSED after its END_STREAM; after our own reset they are
 * ignored (nghttp2's default for streams it no longer knows).
 */
void cgrpc__h2conn_stream_closed(cgrpc__h2conn *conn, int32_t stream_id,
                                 int peer_reset);

/* Asks for the session's pending frames to be written at the end of this
 * loop turn.  Call after every nghttp2_submit_*() or resume. */
void cgrpc__h2conn_schedule_flush(cgrpc__h2conn *conn);

/* Closes the connection once the frames queued so far (a GOAWAY) have
 * been written; reads stop counting.  Loop thread only. */
void cgrpc__h2conn_close_when_sent(cgrpc__h2conn *conn);

/* Closes the socket now (pending output is dropped) and schedules
 * |on_close|.  Idempotent.  Loop thread only. */
void cgrpc__h2conn_close(cgrpc__h2conn *conn);

/* Builds nghttp2 options/callbacks shared by both sides. */
int cgrpc__h2_session_option_new(nghttp2_option **opt_ptr, int server);

/* The allocator sessions are created with (nghttp2_session_*_new3): the
 * library's own entry points (util/mem.h), so that every allocation a
 * connection makes goes through one place. */
nghttp2_mem *cgrpc__h2_mem(void);


#endif /* CGRPC_H2_CONN_H */
