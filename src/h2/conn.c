/* SPDX-License-Identifier: MIT */
#include "h2/conn.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cgrpc/error.h"
#include "util/mem.h"

#define READ_CHUNK (64 * 1024)

static void conn_flush(void *user_data);
static int scan_frames(cgrpc__h2conn *conn, const uint8_t *p, size_t n);

static void closed_task(void *user_data) {
  cgrpc__h2conn *conn = user_data;
  conn->on_close(conn, conn->user_data);
}

void cgrpc__h2conn_close(cgrpc__h2conn *conn) {
  if (conn->closed)
    return;
  conn->closed = 1;
  cgrpc__loop_undefer(conn->loop, &conn->flush_task);
  cgrpc__loop_unwatch(conn->loop, &conn->watch);
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

void cgrpc__h2conn_schedule_flush(cgrpc__h2conn *conn) {
  if (!conn->closed)
    cgrpc__loop_defer(conn->loop, &conn->flush_task);
}

/* Sends as much of |p| as the socket takes.  Returns the bytes sent, or -1
 * on a socket error. */
static ssize_t send_some(int fd, const uint8_t *p, size_t n) {
  size_t sent = 0;
  while (sent < n) {
    ssize_t r = send(fd, p + sent, n - sent, MSG_NOSIGNAL);
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
  w = send_some(conn->fd, conn->batch, conn->blen);
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
  if (conn->closed)
    return;
  if (conn->wlen > conn->woff) {
    ssize_t w =
        send_some(conn->fd, conn->wbuf + conn->woff, conn->wlen - conn->woff);
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
  if (!nghttp2_session_want_read(conn->session) &&
      !nghttp2_session_want_write(conn->session))
    cgrpc__h2conn_close(conn);
  return;
fail:
  conn->batch = NULL;
  cgrpc__h2conn_close(conn);
}

static void conn_io(void *user_data, unsigned events) {
  cgrpc__h2conn *conn = user_data;
  if (events & CGRPC__IO_READ) {
    uint8_t buf[READ_CHUNK];
    int rounds;
    /* Bounded rounds keep one busy connection from starving the others;
     * epoll is level-triggered, so what is left is read next turn. */
    for (rounds = 0; rounds < 4 && !conn->closed; rounds++) {
      ssize_t n = recv(conn->fd, buf, sizeof buf, 0);
      if (n == 0) {
        cgrpc__h2conn_close(conn);
        return;
      }
      if (n < 0) {
        if (errno == EINTR)
          continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
          break;
        cgrpc__h2conn_close(conn);
        return;
      }
      if (scan_frames(conn, buf, (size_t)n) != 0) {
        /* A connection error: nghttp2 (or scan_frames) queued a GOAWAY;
         * try to send it, then close. */
        conn_flush(conn);
        cgrpc__h2conn_close(conn);
        return;
      }
      if ((size_t)n < sizeof buf)
        break;
    }
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
                        nghttp2_session *session,
                        cgrpc__h2conn_close_cb on_close,
                        const cgrpc__h2_body_ops *body, void *user_data) {
  conn->loop = loop;
  conn->body = body;
  conn->fd = fd;
  conn->session = session;
  conn->on_close = on_close;
  conn->user_data = user_data;
  conn->flush_task.cb = conn_flush;
  conn->flush_task.user_data = conn;
  conn->flush_task.queued = 0;
  conn->closed = 0;
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
    close(fd);
    conn->fd = -1;
    conn->closed = 1;
    return CGRPC_ERR_IO;
  }
  cgrpc__h2conn_schedule_flush(conn);
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
