/* SPDX-License-Identifier: MIT */
/*
 * Client internals: the channel (one loop thread, one current connection,
 * reconnect with backoff) and its calls.
 */
#ifndef CGRPC_CLIENT_INTERNAL_H
#define CGRPC_CLIENT_INTERNAL_H

#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>

#include "call/deframer.h"
#include "call/stream.h"
#include "cgrpc/call.h"
#include "cgrpc/channel.h"
#include "h2/conn.h"
#include "h2/hdrs.h"
#include "io/loop.h"
#include "util/log.h"

struct cgrpc_channel_options {
  int64_t max_recv;
  int64_t max_send;
  char *authority;
  cgrpc_log_cb log_cb;
  void *log_user_data;
};

typedef struct cgrpc__client_conn cgrpc__client_conn;

enum {
  CHANNEL_IDLE,
  CHANNEL_CONNECTING,
  CHANNEL_READY,
  CHANNEL_TRANSIENT_FAILURE
};

struct cgrpc_channel {
  struct cgrpc_channel_options opts;
  cgrpc__logger log;
  char host[256];
  char port[16];
  char *authority;
  cgrpc__loop *loop;

  pthread_mutex_t lock; /* guards |closing| against cgrpc_unary_start */
  int closing;

  /* Loop thread only. */
  int state;
  cgrpc__client_conn *conn;    /* current: connecting or ready */
  cgrpc__client_conn *conns;   /* every live one, draining ones too */
  struct cgrpc_call *pending;  /* calls waiting for a connection */
  int64_t backoff_ms;
  cgrpc__timer backoff_timer;
  char last_error[128];
};

struct cgrpc__client_conn {
  cgrpc__h2conn h2;
  cgrpc_channel *ch;
  cgrpc__client_conn *prev_conn, *next_conn;
  struct addrinfo *addrs, *next_addr;
  int connecting_fd;
  cgrpc__watch connect_watch;
  cgrpc__timer connect_timer;
  int ready;
  struct cgrpc_call *calls; /* submitted on this connection */
};

struct cgrpc_call {
  atomic_int refs;
  cgrpc_channel *ch;
  const cgrpc_method_desc *method;
  cgrpc_unary_done_cb done;
  void *user_data;
  struct cgrpc_call *prev, *next; /* in ch->pending or conn->calls */
  cgrpc__client_conn *conn;
  int32_t stream_id;

  cgrpc__hdrs hdrs;   /* request headers, built by the caller's thread */
  uint8_t *request;   /* prefix + message */
  size_t request_len, request_off;
  int64_t deadline_ns; /* 0: none */
  cgrpc__timer deadline_timer;

  cgrpc__deframer deframer;
  uint8_t *response;
  size_t response_len;
  int n_responses;
  int http_status;
  int bad_content_type;
  int have_grpc_status;
  int in_trailers;
  size_t header_bytes; /* response headers + trailers seen, for the cap */
  cgrpc_status status;

  /* Pre-start failure (reported on the loop so callbacks stay there). */
  cgrpc_status_code early_code;
  const char *early_message;

  unsigned linked : 1;
  unsigned completed : 1;

  /* Streaming calls only (st != NULL). */
  cgrpc__stream *st;
  int async;
  cgrpc_call_callbacks cbs;
  cgrpc__deferred notify; /* delivers async callbacks, loop thread */
  /* Guarded by st->lock (application threads write read_pending). */
  unsigned char read_pending;
  unsigned char headers_received;
  unsigned char done_delivered;
};

#endif /* CGRPC_CLIENT_INTERNAL_H */
