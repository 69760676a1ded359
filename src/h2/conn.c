/* SPDX-License-Identifier: MIT */
#include "h2/conn.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cgrpc/error.h"
#include "util/mem.h"

/* Largest batch gathered before a write(): bounds the buffer per connection. */
#define WRITE_BATCH (256 * 1024)
#define READ_CHUNK (64 * 1024)

static void conn_flush(void *user_data);

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
  conn->wlen = conn->woff = conn->wcap = 0;
  /* Posted, so the owner never frees the connection under a callback. */
  if (cgrpc__loop_post(conn->loop, closed_task, conn) != 0)
    closed_task(conn);
}

void cgrpc__h2conn_schedule_flush(cgrpc__h2conn *conn) {
  if (!conn->closed)
    cgrpc__loop_defer(conn->loop, &conn->flush_task);
}

/* Writes what is buffered.  Returns 1 when all of it went out, 0 when the
 * socket is full, -1 on error. */
static int write_pending(cgrpc__h2conn *conn) {
  while (conn->woff < conn->wlen) {
    ssize_t n = send(conn->fd, conn->wbuf + conn->woff, conn->wlen - conn->woff,
                     MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
      return -1;
    }
    conn->woff += (size_t)n;
  }
  conn->wlen = conn->woff = 0;
  return 1;
}

static int buffer_append(cgrpc__h2conn *conn, const uint8_t *data, size_t n) {
  if (conn->wlen + n > conn->wcap) {
    size_t cap = conn->wcap ? conn->wcap : 16384;
    uint8_t *p;
    while (cap < conn->wlen + n)
      cap *= 2;
    p = cgrpc__realloc(conn->wbuf, cap);
    if (!p)
      return CGRPC_ERR_NOMEM;
    conn->wbuf = p;
    conn->wcap = cap;
  }
  memcpy(conn->wbuf + conn->wlen, data, n);
  conn->wlen += n;
  return 0;
}

static void conn_flush(void *user_data) {
  cgrpc__h2conn *conn = user_data;
  int rv;
  if (conn->closed)
    return;
  for (;;) {
    rv = write_pending(conn);
    if (rv < 0)
      goto fail;
    if (rv == 0)
      break; /* socket full: wait for EPOLLOUT */
    /* Gather one batch of frames from the session. */
    while (conn->wlen < WRITE_BATCH) {
      const uint8_t *data;
      ssize_t n = nghttp2_session_mem_send(conn->session, &data);
      if (n < 0)
        goto fail;
      if (n == 0)
        break;
      if (buffer_append(conn, data, (size_t)n) != 0)
        goto fail;
    }
    if (conn->wlen == 0)
      break;
  }
  if (conn->wlen > 0) {
    cgrpc__loop_watch_update(conn->loop, &conn->watch,
                             CGRPC__IO_READ | CGRPC__IO_WRITE);
    return;
  }
  cgrpc__loop_watch_update(conn->loop, &conn->watch, CGRPC__IO_READ);
  /* Shrink a buffer that grew for a large burst. */
  if (conn->wcap > WRITE_BATCH * 2) {
    cgrpc__free(conn->wbuf);
    conn->wbuf = NULL;
    conn->wcap = 0;
  }
  if (!nghttp2_session_want_read(conn->session) &&
      !nghttp2_session_want_write(conn->session))
    cgrpc__h2conn_close(conn);
  return;
fail:
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
      conn->in_recv = 1;
      ssize_t r = nghttp2_session_mem_recv(conn->session, buf, (size_t)n);
      conn->in_recv = 0;
      if (r < 0) {
        /* Bad framing: nghttp2 queued a GOAWAY; try to send it, then close. */
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

int cgrpc__h2conn_start(cgrpc__h2conn *conn, cgrpc__loop *loop, int fd,
                        nghttp2_session *session,
                        cgrpc__h2conn_close_cb on_close, void *user_data) {
  conn->loop = loop;
  conn->fd = fd;
  conn->session = session;
  conn->on_close = on_close;
  conn->user_data = user_data;
  conn->flush_task.cb = conn_flush;
  conn->flush_task.user_data = conn;
  conn->flush_task.queued = 0;
  conn->closed = 0;
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
