/* SPDX-License-Identifier: MIT */
/*
 * The floor for bench/run: a bare nghttp2 server that answers every POST
 * with a canned gRPC reply, the "bare nghttp2 server" of issue 4.
 *
 *   nghttp2_canned_server [--port=N]      (port 0 picks one)
 *
 * One thread, one epoll loop, non-blocking sockets, no gRPC library: each
 * request stream that ends (END_STREAM) and was a POST gets
 *   HEADERS  :status 200, content-type application/grpc
 *   DATA     00 00000f 0a0d "Hello, world!"  (a framed HelloReply, 20 bytes)
 *   HEADERS  grpc-status 0 (trailers, END_STREAM)
 * whatever its path and body; anything else gets :status 405.  The request
 * body is not parsed.  Like cgrpc's server it sets nghttp2's
 * no_closed_streams option and does one read and at most one write syscall
 * per connection per loop turn: input through one shared 64 KiB buffer,
 * output gathered from nghttp2_session_mem_send into one shared buffer and
 * copied to the connection only when the socket takes less than all of it,
 * so an idle connection holds just its nghttp2 session.  Prints
 * "Server started, listening on PORT"; SIGTERM or SIGINT end it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MAKE_NV(n, v)                                                      \
  {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1,          \
   NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE}

/* HelloReply{message: "Hello, world!"}, length-prefixed, uncompressed. */
static const uint8_t REPLY[] = "\x00\x00\x00\x00\x0f\x0a\x0dHello, world!";
#define REPLY_LEN (sizeof(REPLY) - 1)

static nghttp2_nv RESP_HDRS[] = {
    MAKE_NV(":status", "200"),
    MAKE_NV("content-type", "application/grpc"),
};
static nghttp2_nv TRAILERS[] = {MAKE_NV("grpc-status", "0")};
static nghttp2_nv RESP_405[] = {MAKE_NV(":status", "405")};

/* Stream user data: NULL until the request's :method is seen. */
#define STREAM_POST ((void *)1)
#define STREAM_OTHER ((void *)2)

typedef struct conn {
  int fd;
  nghttp2_session *session;
  uint8_t *out; /* output the socket did not take yet (malloc'd) */
  size_t out_len, out_off;
  int want_out; /* EPOLLOUT registered */
} conn;

static nghttp2_session_callbacks *g_callbacks;
static nghttp2_option *g_option;
static int g_epfd;
static volatile sig_atomic_t g_stop;
/* The loop's output gather buffer, shared by all connections. */
static uint8_t *g_out;
static size_t g_out_len, g_out_cap;

static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

static ssize_t reply_read(nghttp2_session *session, int32_t stream_id,
                          uint8_t *buf, size_t length, uint32_t *data_flags,
                          nghttp2_data_source *source, void *user_data) {
  (void)source;
  (void)user_data;
  if (length < REPLY_LEN) {
    return NGHTTP2_ERR_DEFERRED; /* never: frames are >= 16 KiB */
  }
  memcpy(buf, REPLY, REPLY_LEN);
  *data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
  if (nghttp2_submit_trailer(session, stream_id, TRAILERS,
                             ARRAY_LEN(TRAILERS)) != 0) {
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  return (ssize_t)REPLY_LEN;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame,
                     const uint8_t *name, size_t namelen, const uint8_t *value,
                     size_t valuelen, uint8_t flags, void *user_data) {
  (void)flags;
  (void)user_data;
  if (frame->hd.type == NGHTTP2_HEADERS &&
      frame->headers.cat == NGHTTP2_HCAT_REQUEST && namelen == 7 &&
      memcmp(name, ":method", 7) == 0) {
    int post = valuelen == 4 && memcmp(value, "POST", 4) == 0;
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id,
                                         post ? STREAM_POST : STREAM_OTHER);
  }
  return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
                         void *user_data) {
  (void)user_data;
  if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    int32_t id = frame->hd.stream_id;
    void *kind = nghttp2_session_get_stream_user_data(session, id);
    if (kind == STREAM_POST) {
      nghttp2_data_provider prd = {.source = {.ptr = NULL},
                                   .read_callback = reply_read};
      return nghttp2_submit_response(session, id, RESP_HDRS,
                                     ARRAY_LEN(RESP_HDRS), &prd) == 0
                 ? 0
                 : NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    if (kind == STREAM_OTHER) {
      return nghttp2_submit_response(session, id, RESP_405,
                                     ARRAY_LEN(RESP_405), NULL) == 0
                 ? 0
                 : NGHTTP2_ERR_CALLBACK_FAILURE;
    }
  }
  return 0;
}

static void conn_close(conn *c) {
  epoll_ctl(g_epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  nghttp2_session_del(c->session);
  free(c->out);
  free(c);
}

static int gather(const uint8_t *data, size_t len) {
  if (g_out_len + len > g_out_cap) {
    size_t cap = g_out_cap ? g_out_cap : 65536;
    while (cap < g_out_len + len) {
      cap *= 2;
    }
    uint8_t *p = realloc(g_out, cap);
    if (!p) {
      return -1;
    }
    g_out = p;
    g_out_cap = cap;
  }
  memcpy(g_out + g_out_len, data, len);
  g_out_len += len;
  return 0;
}

/* Gathers everything nghttp2 has to send behind what the socket has not
 * taken yet and writes it with one syscall; keeps the rest for EPOLLOUT.
 * Returns -1 when the connection should be closed. */
static int conn_flush(conn *c) {
  g_out_len = 0;
  if (c->out_off < c->out_len &&
      gather(c->out + c->out_off, c->out_len - c->out_off) != 0) {
    return -1;
  }
  free(c->out);
  c->out = NULL;
  c->out_len = c->out_off = 0;
  for (;;) {
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(c->session, &data);
    if (n < 0) {
      return -1;
    }
    if (n == 0) {
      break;
    }
    if (gather(data, (size_t)n) != 0) {
      return -1;
    }
  }
  size_t done = 0;
  if (g_out_len > 0) {
    ssize_t w = send(c->fd, g_out, g_out_len, MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN && errno != EINTR) {
      return -1;
    }
    done = w > 0 ? (size_t)w : 0;
  }
  if (done < g_out_len) {
    c->out_len = g_out_len - done;
    c->out = malloc(c->out_len);
    if (!c->out) {
      return -1;
    }
    memcpy(c->out, g_out + done, c->out_len);
  }
  if (g_out_cap > (4u << 20)) { /* don't keep a big burst's buffer */
    free(g_out);
    g_out = NULL;
    g_out_cap = 0;
  }
  int want = c->out_len > 0;
  if (want != c->want_out) {
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0),
                             .data.ptr = c};
    epoll_ctl(g_epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = want;
  }
  if (!nghttp2_session_want_read(c->session) &&
      !nghttp2_session_want_write(c->session) && c->out_len == 0) {
    return -1;
  }
  return 0;
}

static void conn_io(conn *c, uint32_t events) {
  static uint8_t buf[65536];
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    ssize_t n = recv(c->fd, buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      conn_close(c);
      return;
    }
    if (n > 0 && nghttp2_session_mem_recv(c->session, buf, (size_t)n) != n) {
      conn_close(c);
      return;
    }
  }
  if (conn_flush(c) != 0) {
    conn_close(c);
  }
}

static void accept_all(int lfd) {
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      return; /* EAGAIN, or out of descriptors: try on the next event */
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn *c = calloc(1, sizeof *c);
    if (!c) {
      close(fd);
      continue;
    }
    c->fd = fd;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100}};
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (nghttp2_session_server_new2(&c->session, g_callbacks, c, g_option) !=
        0) {
      close(fd);
      free(c);
      continue;
    }
    if (nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv,
                                ARRAY_LEN(iv)) != 0 ||
        epoll_ctl(g_epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      nghttp2_session_del(c->session);
      close(fd);
      free(c);
      continue;
    }
    if (conn_flush(c) != 0) {
      conn_close(c);
    }
  }
}

int main(int argc, char **argv) {
  int port = 50071;
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--port=", 7) == 0) {
      port = atoi(argv[i] + 7);
    } else {
      fprintf(stderr, "usage: %s [--port=N]\n", argv[0]);
      return 2;
    }
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  nghttp2_session_callbacks_new(&g_callbacks);
  nghttp2_session_callbacks_set_on_header_callback(g_callbacks, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(g_callbacks,
                                                       on_frame_recv);
  nghttp2_option_new(&g_option);
  nghttp2_option_set_no_closed_streams(g_option, 1);

  int lfd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1, zero = 0;
  struct sockaddr_in6 addr;
  socklen_t alen = sizeof addr;
  memset(&addr, 0, sizeof addr);
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = in6addr_any;
  addr.sin6_port = htons((uint16_t)port);
  if (lfd < 0 ||
      setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) != 0 ||
      bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
      listen(lfd, 4096) != 0 ||
      getsockname(lfd, (struct sockaddr *)&addr, &alen) != 0) {
    perror("nghttp2_canned_server");
    return 1;
  }
  g_epfd = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  if (g_epfd < 0 || epoll_ctl(g_epfd, EPOLL_CTL_ADD, lfd, &lev) != 0) {
    perror("nghttp2_canned_server: epoll");
    return 1;
  }
  printf("Server started, listening on %d\n", ntohs(addr.sin6_port));
  fflush(stdout);

  struct epoll_event evs[256];
  while (!g_stop) {
    int n = epoll_wait(g_epfd, evs, (int)ARRAY_LEN(evs), -1);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      perror("nghttp2_canned_server: epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; i++) {
      if (evs[i].data.ptr == NULL) {
        accept_all(lfd);
      } else {
        conn_io(evs[i].data.ptr, evs[i].events);
      }
    }
  }
  close(lfd);
  close(g_epfd);
  nghttp2_option_del(g_option);
  nghttp2_session_callbacks_del(g_callbacks);
  return 0;
}
