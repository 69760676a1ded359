/* SPDX-License-Identifier: MIT */
#include "h2/conn.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cgrpc/error.h"
#include "util/mem.h"
#include "util/trace.h"

#define READ_CHUNK (64 * 1024)

static void conn_flush(void *user_data);
static int scan_frames(cgrpc__h2conn *conn, const uint8_t *p, size_t n);

static void closed_task(void *user_data) {
  cgrpc__h2conn *conn = user_data;
  char *error = conn->error; /* the owner may free |conn| in on_close */
  conn->on_close(conn, conn->user_data);
  cgrpc__free(error);
}

/* Sets why the connection failed, replacing what was said before (out of
 * memory, the text is lost: the owner then gives a generic reason). */
static void set_error(cgrpc__h2conn *conn, const char *why) {
  char *copy = cgrpc__strdup(why);
  if (!copy)
    return;
  cgrpc__free(conn->error);
  conn->error = copy;
}

void cgrpc__h2conn_close(cgrpc__h2conn *conn) {
  if (conn->closed)
    return;
  conn->closed = 1;
  CGRPC__TRACE(conn->log, CONN, "%s: connection closed%s%s", conn->peer,
               conn->error ? ": " : "", conn->error ? conn->error : "");
  cgrpc__h2_keepalive_free(conn->ka);
  conn->ka = NULL;
  cgrpc__loop_undefer(conn->loop, &conn->flush_task);
  cgrpc__loop_undefer(conn->loop, &conn->read_again);
  cgrpc__loop_unwatch(conn->loop, &conn->watch);
  cgrpc__tls_conn_free(conn->tls);
  conn->tls = NULL;
  close(conn->fd);
  conn->fd = -1;
  cgrpc__free(conn->wbuf);
  conn->wbuf = NULL;
  conn->wlen = conn->woff = 0;
  /* Posted, so the owner never frees the session or the connection under
   * one of their callbacks. */
  cgrpc__task_init(&conn->close_task, closed_task, conn);
  cgrpc__loop_post_task(conn->loop, &conn->close_task);
}

void cgrpc__h2conn_fail(cgrpc__h2conn *conn, const char *why) {
  if (conn->closed)
    return;
  if (why && !conn->error)
    set_error(conn, why);
  cgrpc__h2conn_close(conn);
}

void cgrpc__h2conn_close_when_sent(cgrpc__h2conn *conn) {
  conn->close_when_sent = 1;
  cgrpc__h2conn_schedule_flush(conn);
}

void cgrpc__h2conn_schedule_flush(cgrpc__h2conn *conn) {
  if (!conn->closed && conn->ready)
    cgrpc__loop_defer(conn->loop, &conn->flush_task);
}

/* Sends as much of |p| as the connection takes (through TLS when it has
 * it).  Returns the bytes sent, or -1 on an error. */
static ssize_t send_some(cgrpc__h2conn *conn, const uint8_t *p, size_t n) {
  size_t sent = 0;
  while (conn->tls && sent < n) {
    char err[160];
    ssize_t r =
        cgrpc__tls_write(conn->tls, p + sent, n - sent, err, sizeof err);
    if (r == CGRPC__TLS_FAILED) {
      set_error(conn, err);
      return -1;
    }
    if (r < 0)
      break; /* WANT_WRITE (EPOLLOUT) or WANT_READ (we always read) */
    sent += (size_t)r;
  }
  while (!conn->tls && sent < n) {
    ssize_t r = send(conn->fd, p + sent, n - sent, MSG_NOSIGNAL);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      return -1;
    }
    sent += (size_t)r;
  }
  return (ssize_t)sent;
}

/* Keeps the |n| bytes the socket did not take for the next EPOLLOUT, and
 * asks for it.  Returns 0 or CGRPC_ERR_NOMEM. */
static int keep_unsent(cgrpc__h2conn *conn, const uint8_t *p, size_t n) {
  uint8_t *copy = cgrpc__malloc(n);
  if (!copy)
    return CGRPC_ERR_NOMEM;
  memcpy(copy, p, n);
  conn->wbuf = copy;
  conn->wlen = n;
  conn->woff = 0;
  cgrpc__loop_watch_update(conn->loop, &conn->watch,
                           CGRPC__IO_READ | CGRPC__IO_WRITE);
  return 0;
}

/* Writes the batch gathered so far; what the socket refuses is kept for
 * EPOLLOUT and stops this flush.  Returns 0, or -1 on a socket error. */
static int flush_batch(cgrpc__h2conn *conn) {
  ssize_t w;
  if (conn->blen == 0)
    return 0;
  w = send_some(conn, conn->batch, conn->blen);
  if (w < 0)
    return -1;
  if ((size_t)w < conn->blen &&
      keep_unsent(conn, conn->batch + w, conn->blen - (size_t)w) != 0)
    return -1;
  conn->blen = 0;
  return 0;
}

/* Room for |n| more bytes in the batch: writes it out first if needed.
 * Returns 0, NGHTTP2_ERR_WOULDBLOCK (socket full) or
 * NGHTTP2_ERR_CALLBACK_FAILURE. */
static int batch_room(cgrpc__h2conn *conn, size_t n) {
  if (conn->wlen > conn->woff)
    return NGHTTP2_ERR_WOULDBLOCK;
  if (conn->blen + n <= conn->bcap)
    return 0;
  if (flush_batch(conn) != 0) {
    conn->write_failed = 1;
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  return conn->wlen > conn->woff ? NGHTTP2_ERR_WOULDBLOCK : 0;
}

ssize_t cgrpc__h2conn_send_cb(nghttp2_session *session, const uint8_t *data,
                              size_t length, int flags, void *user_data) {
  cgrpc__h2conn *conn = user_data;
  size_t n;
  int rv;
  (void)session;
  (void)flags;
  rv = batch_room(conn, length < conn->bcap ? length : conn->bcap);
  if (rv != 0)
    return rv;
  n = conn->bcap - conn->blen;
  if (n > length)
    n = length;
  memcpy(conn->batch + conn->blen, data, n);
  conn->blen += n;
  return (ssize_t)n;
}

int cgrpc__h2conn_send_data_cb(nghttp2_session *session, nghttp2_frame *frame,
                               const uint8_t *framehd, size_t length,
                               nghttp2_data_source *source, void *user_data) {
  cgrpc__h2conn *conn = user_data;
  int rv;
  (void)session;
  (void)frame; /* no padding: nghttp2 pads only when asked to */
  /* DATA frames are at most 16 KiB (SETTINGS_MAX_FRAME_SIZE is left at its
   * default), far below the batch. */
  rv = batch_room(conn, 9 + length);
  if (rv != 0)
    return rv;
  memcpy(conn->batch + conn->blen, framehd, 9);
  /* A source holding fewer bytes than it promised is a bug above; the
   * stream is then reset rather than the frame retried for ever. */
  if (conn->body->take(source->ptr, conn->batch + conn->blen + 9, length) !=
      length)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  conn->blen += 9 + length;
  return 0;
}

/*
 * Writes what the session has to send.  Frames are gathered in the loop's
 * scratch buffer (DATA payloads copied there straight from the calls'
 * queues) and written with as few send() calls as fit; only bytes the
 * socket refuses are copied to the connection, so an idle connection holds
 * no write buffer.  While such bytes wait, the session is not asked for
 * more: that is the backpressure on the writers above.
 */
static void conn_flush(void *user_data) {
  cgrpc__h2conn *conn = user_data;
  int rv;
  if (conn->closed || !conn->ready)
    return;
  if (conn->wlen > conn->woff) {
    ssize_t w = send_some(conn, conn->wbuf + conn->woff, conn->wlen - conn->woff);
    if (w < 0)
      goto fail;
    conn->woff += (size_t)w;
    if (conn->woff < conn->wlen)
      return; /* still full: EPOLLOUT brings us back */
  }
  cgrpc__free(conn->wbuf);
  conn->wbuf = NULL;
  conn->wlen = conn->woff = 0;
  conn->batch = cgrpc__loop_scratch(conn->loop, &conn->bcap);
  if (!conn->batch)
    goto fail;
  conn->blen = 0;
  rv = nghttp2_session_send(conn->session);
  if (rv != 0 || conn->write_failed || flush_batch(conn) != 0)
    goto fail;
  conn->batch = NULL;
  if (conn->wlen > conn->woff)
    return; /* EPOLLOUT is armed */
  cgrpc__loop_watch_update(conn->loop, &conn->watch, CGRPC__IO_READ);
  if (conn->close_when_sent ||
      (!nghttp2_session_want_read(conn->session) &&
       !nghttp2_session_want_write(conn->session)))
    cgrpc__h2conn_close(conn);
  return;
fail:
  conn->batch = NULL;
  cgrpc__h2conn_close(conn);
}

/* Reads up to |n| bytes: their count, 0 when the peer closed, -1 when
 * nothing more is there now, or -2 on an error (with |error| set). */
static ssize_t recv_some(cgrpc__h2conn *conn, uint8_t *buf, size_t n) {
  if (conn->tls) {
    char err[160];
    ssize_t r = cgrpc__tls_read(conn->tls, buf, n, err, sizeof err);
    if (r >= 0)
      return r;
    if (r == CGRPC__TLS_WANT_WRITE)
      cgrpc__loop_watch_update(conn->loop, &conn->watch,
                               CGRPC__IO_READ | CGRPC__IO_WRITE);
    if (r != CGRPC__TLS_FAILED)
      return -1;
    set_error(conn, err);
    return -2;
  }
  for (;;) {
    ssize_t r = recv(conn->fd, buf, n, 0);
    if (r >= 0)
      return r;
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return -1;
    set_error(conn, strerror(errno));
    return -2;
  }
}

/* Nonzero when |p| starts like a TLS record (a handshake or an alert):
 * what a TLS peer sends where HTTP/2 in plaintext was expected. */
static int tls_record(const uint8_t *p, size_t n) {
  return n >= 3 && (p[0] == 0x15 || p[0] == 0x16) && p[1] == 0x03 &&
         p[2] <= 0x04;
}

/* The connection carries HTTP/2 from now on. */
static void start_http2(cgrpc__h2conn *conn) {
  conn->ready = 1;
  if (conn->on_ready)
    conn->on_ready(conn, conn->user_data);
  cgrpc__h2conn_schedule_flush(conn);
}

/* One step of the TLS handshake, on the loop's events. */
static void handshake_step(cgrpc__h2conn *conn) {
  char err[160];
  int rv = cgrpc__tls_handshake(conn->tls, err, sizeof err);
  if (rv == CGRPC__TLS_FAILED) {
    CGRPC__TRACE(conn->log, TLS, "%s: handshake failed: %s", conn->peer,
                 err);
    set_error(conn, err);
    cgrpc__h2conn_close(conn);
    return;
  }
  cgrpc__loop_watch_update(conn->loop, &conn->watch,
                           rv == CGRPC__TLS_WANT_WRITE
                               ? CGRPC__IO_READ | CGRPC__IO_WRITE
                               : CGRPC__IO_READ);
  if (rv != 0)
    return;
  if (cgrpc__trace_on(conn->log, CGRPC__TRACE_TLS)) {
    char what[256];
    cgrpc__tls_describe(conn->tls, what, sizeof what);
    cgrpc__trace(conn->log, CGRPC__TRACE_TLS, "%s: handshake done: %s",
                 conn->peer, what);
  }
  start_http2(conn);
  /* What came with the handshake's last flight is decrypted already. */
  if (!conn->closed && SSL_has_pending(conn->tls))
    cgrpc__loop_defer(conn->loop, &conn->read_again);
}

static void conn_io(void *user_data, unsigned events) {
  cgrpc__h2conn *conn = user_data;
  if (!conn->ready) {
    handshake_step(conn);
    return;
  }
  if (events & CGRPC__IO_READ) {
    uint8_t buf[READ_CHUNK];
    int rounds;
    /* Bounded rounds keep one busy connection from starving the others;
     * epoll is level-triggered, so what is left is read next turn. */
    for (rounds = 0; rounds < 4 && !conn->closed; rounds++) {
      ssize_t n = recv_some(conn, buf, sizeof buf);
      if (n == 0 || n == -2) {
        if (n == 0)
          CGRPC__TRACE(conn->log, CONN, "%s: the peer closed the connection",
                       conn->peer);
        if (!conn->received && !conn->tls &&
            !nghttp2_session_check_server_session(conn->session)) {
          /* Nothing came back at all: likely a TLS-only server. */
          char why[160];
          snprintf(why, sizeof why,
                   "%.60s before the server said anything "
                   "(is it a TLS port?)",
                   n == 0 || !conn->error ? "the connection closed"
                                          : conn->error);
          set_error(conn, why);
        }
        cgrpc__h2conn_close(conn);
        return;
      }
      if (n < 0)
        break;
      if (conn->ka) {
        cgrpc__h2_keepalive_on_read(conn->ka);
        if (conn->closed)
          return;
      }
      if (!conn->received++ && !conn->tls && tls_record(buf, (size_t)n)) {
        cgrpc__h2conn_fail(conn, nghttp2_session_check_server_session(
                                     conn->session)
                                     ? "the client speaks TLS to a plaintext "
                                       "port"
                                     : "the server answered with TLS: this "
                                       "channel is plaintext (it needs TLS "
                                       "credentials)");
        return;
      }
      if (scan_frames(conn, buf, (size_t)n) != 0) {
        /* A connection error: nghttp2 (or scan_frames) queued a GOAWAY;
         * try to send it, then close. */
        conn_flush(conn);
        cgrpc__h2conn_close(conn);
        return;
      }
      if ((size_t)n < sizeof buf && !conn->tls)
        break;
    }
    /* Decrypted bytes that TLS holds raise no event of the socket. */
    if (!conn->closed && conn->tls && SSL_has_pending(conn->tls))
      cgrpc__loop_defer(conn->loop, &conn->read_again);
  }
  if (conn->closed)
    return;
  if (events & CGRPC__IO_ERROR) {
    cgrpc__h2conn_close(conn);
    return;
  }
  if (events & CGRPC__IO_WRITE)
    conn_flush(conn);
  else
    cgrpc__h2conn_schedule_flush(conn);
}

static void read_again(void *user_data) {
  cgrpc__h2conn *conn = user_data;
  if (!conn->closed)
    conn_io(conn, CGRPC__IO_READ);
}

enum { CLOSED_NONE, CLOSED_BY_RESET, CLOSED_BY_END_STREAM };

void cgrpc__h2conn_stream_closed(cgrpc__h2conn *conn, int32_t stream_id,
                                 int peer_reset) {
  unsigned i;
  uint8_t how;
  if (peer_reset)
    how = CLOSED_BY_RESET;
  else if (nghttp2_session_get_stream_remote_close(conn->session,
                                                   stream_id) == 1)
    how = CLOSED_BY_END_STREAM;
  else
    return; /* we reset it: whatever still comes is ignored */
  i = conn->closed_next++ % CGRPC__H2_CLOSED_STREAMS;
  conn->closed_ids[i] = stream_id;
  conn->closed_how[i] = how;
  if (stream_id > conn->closed_max)
    conn->closed_max = stream_id;
}

/* A DATA or HEADERS frame arrived for |stream_id|: the answer if it is a
 * stream we remember closing.  Returns 0, or -1 for a connection error
 * (the GOAWAY is queued). */
static int closed_stream_frame(cgrpc__h2conn *conn, int32_t stream_id) {
  unsigned i;
  for (i = 0; i < CGRPC__H2_CLOSED_STREAMS; i++) {
    if (conn->closed_ids[i] != stream_id)
      continue;
    if (conn->closed_how[i] == CLOSED_BY_RESET) {
      /* A stream error, once; nghttp2 then ignores the frame. */
      conn->closed_how[i] = CLOSED_NONE;
      nghttp2_submit_rst_stream(conn->session, NGHTTP2_FLAG_NONE, stream_id,
                                NGHTTP2_STREAM_CLOSED);
    } else if (conn->closed_how[i] == CLOSED_BY_END_STREAM) {
      static const char why[] = "frame on a closed stream";
      nghttp2_submit_goaway(
          conn->session, NGHTTP2_FLAG_NONE,
          nghttp2_session_get_last_proc_stream_id(conn->session),
          NGHTTP2_STREAM_CLOSED, (const uint8_t *)why, sizeof why - 1);
      return -1;
    }
    return 0;
  }
  return 0;
}

/*
 * Feeds the received bytes to nghttp2, following their frame headers (RFC
 * 9113 4.1) on the way: nghttp2 says nothing about frames on streams it
 * has forgotten, so those on recently closed streams get their answer here,
 * once nghttp2 has taken what came before them.  Cheap: a header every
 * frame, the payloads skipped, and one nghttp2 call a read (two when the
 * peer reset a stream in it).  Returns 0, or -1 for a connection error (a GOAWAY is
 * queued, by nghttp2 or closed_stream_frame).
 */
static int scan_frames(cgrpc__h2conn *conn, const uint8_t *buf, size_t n) {
  const uint8_t *p = buf, *fed = buf;
  int reset_unfed = 0; /* an RST_STREAM not yet given to nghttp2 */
  while (n > 0) {
    const uint8_t *h;
    int32_t id;
    if (conn->scan_skip > 0) {
      size_t k = n < conn->scan_skip ? n : conn->scan_skip;
      conn->scan_skip -= k;
      p += k;
      n -= k;
      continue;
    }
    if (conn->scan_hd_len == 0 && n >= sizeof conn->scan_hd) {
      h = p; /* the usual case: a whole header in this read */
      p += sizeof conn->scan_hd;
      n -= sizeof conn->scan_hd;
    } else {
      size_t k = sizeof conn->scan_hd - conn->scan_hd_len;
      if (k > n)
        k = n;
      memcpy(conn->scan_hd + conn->scan_hd_len, p, k);
      conn->scan_hd_len += k;
      p += k;
      n -= k;
      if (conn->scan_hd_len < sizeof conn->scan_hd)
        break;
      conn->scan_hd_len = 0;
      h = conn->scan_hd;
    }
    conn->scan_skip = ((size_t)h[0] << 16) | ((size_t)h[1] << 8) | h[2];
    if (h[3] == NGHTTP2_RST_STREAM)
      reset_unfed = 1;
    if (h[3] != NGHTTP2_DATA && h[3] != NGHTTP2_HEADERS)
      continue;
    id = (int32_t)(((uint32_t)(h[5] & 0x7f) << 24) | ((uint32_t)h[6] << 16) |
                   ((uint32_t)h[7] << 8) | h[8]);
    /* The peer's reset of a stream just before this frame closes it only
     * once nghttp2 has taken the reset: give it what came before. */
    if (reset_unfed && h == p - sizeof conn->scan_hd && h > fed) {
      reset_unfed = 0;
      if (nghttp2_session_mem_recv(conn->session, fed, (size_t)(h - fed)) < 0)
        return -1;
      fed = h;
      if (conn->closed)
        return 0;
    }
    /* Frames of new streams, most of them, skip the ring. */
    if (id > conn->closed_max)
      continue;
    if (closed_stream_frame(conn, id) != 0)
      return -1;
  }
  if (p > fed &&
      nghttp2_session_mem_recv(conn->session, fed, (size_t)(p - fed)) < 0)
    return -1;
  return 0;
}

int cgrpc__h2conn_start(cgrpc__h2conn *conn, cgrpc__loop *loop, int fd,
                        nghttp2_session *session, SSL *tls,
                        cgrpc__h2conn_ready_cb on_ready,
                        cgrpc__h2conn_close_cb on_close,
                        const cgrpc__h2_body_ops *body, void *user_data) {
  conn->loop = loop;
  conn->body = body;
  conn->fd = fd;
  conn->session = session;
  conn->tls = tls;
  conn->on_ready = on_ready;
  conn->on_close = on_close;
  conn->user_data = user_data;
  conn->flush_task.cb = conn_flush;
  conn->flush_task.user_data = conn;
  conn->flush_task.queued = 0;
  conn->read_again.cb = read_again;
  conn->read_again.user_data = conn;
  conn->read_again.queued = 0;
  conn->closed = 0;
  conn->ready = 0;
  conn->received = 0;
  conn->close_when_sent = 0;
  conn->ka = NULL;
  conn->error = NULL;
  memset(conn->closed_ids, 0, sizeof conn->closed_ids);
  conn->closed_next = 0;
  conn->closed_max = 0;
  /* A server reads the client's preface first; it is not framed. */
  conn->scan_skip = nghttp2_session_check_server_session(session)
                        ? NGHTTP2_CLIENT_MAGIC_LEN
                        : 0;
  conn->scan_hd_len = 0;
  if (cgrpc__loop_watch(loop, &conn->watch, fd, CGRPC__IO_READ, conn_io,
                        conn) != 0) {
    cgrpc__tls_conn_free(tls);
    conn->tls = NULL;
    close(fd);
    conn->fd = -1;
    conn->closed = 1;
    return CGRPC_ERR_IO;
  }
  if (tls)
    handshake_step(conn); /* a client's hello goes out now */
  else
    start_http2(conn);
  return 0;
}

int cgrpc__h2_session_option_new(nghttp2_option **opt_ptr, int server) {
  nghttp2_option *opt;
  if (nghttp2_option_new(&opt) != 0)
    return CGRPC_ERR_NOMEM;
  if (server) {
    /* Closed streams kept for priority bookkeeping cost memory per stream;
     * gRPC does not use priorities. */
    nghttp2_option_set_no_closed_streams(opt, 1);
  }
  nghttp2_option_set_peer_max_concurrent_streams(opt, 100);
  /* The call layer gives received bytes back to the peer's window itself
   * (nghttp2_session_consume), when the application has taken them: that
   * is what stops a fast sender from filling a slow reader's memory. */
  nghttp2_option_set_no_auto_window_update(opt, 1);
  /* Other gRPC stacks send grpc-message and metadata values with leading or
   * trailing spaces; RFC 9113 forbids them, but refusing the whole stream
   * over it helps nobody. */
  nghttp2_option_set_no_rfc9113_leading_and_trailing_ws_validation(opt, 1);
  *opt_ptr = opt;
  return 0;
}

static void *h2_malloc(size_t size, void *user_data) {
  (void)user_data;
  return cgrpc__malloc(size);
}

static void h2_free(void *ptr, void *user_data) {
  (void)user_data;
  cgrpc__free(ptr);
}

static void *h2_calloc(size_t n, size_t size, void *user_data) {
  (void)user_data;
  return cgrpc__calloc(n, size);
}

static void *h2_realloc(void *ptr, size_t size, void *user_data) {
  (void)user_data;
  return cgrpc__realloc(ptr, size);
}

nghttp2_mem *cgrpc__h2_mem(void) {
  /* nghttp2 copies it into each session; never written. */
  static nghttp2_mem mem = {NULL, h2_malloc, h2_free, h2_calloc, h2_realloc};
  return &mem;
}
