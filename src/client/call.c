/* SPDX-License-Identifier: MIT */
/*
 * Client calls: start from any thread, run on the channel's loop, complete
 * through the user's callback, or, in the blocking forms, wake the waiting
 * thread.  A unary call is a streaming call with one queued request and one
 * expected reply; both move their messages through the endpoint's queues
 * (call/endpoint.h), which also owns the lifetime rules.
 */
#include <stdio.h>
#include <string.h>

#include "call/compress.h"
#include "call/metadata.h"
#include "call/wire.h"
#include "cgrpc/error.h"
#include "cgrpc/version.h"
#include "client/call_creds.h"
#include "client/internal.h"
#include "h2/trace.h"
#include "util/clock.h"
#include "util/mem.h"
#include "util/timeout.h"

#define LIT_EQ CGRPC__LIT_EQ

static cgrpc_call *call_of(cgrpc__ep *ep) { return (cgrpc_call *)ep; }

static void call_destroy(cgrpc__ep *ep) {
  cgrpc_call *call = call_of(ep);
  cgrpc_channel *ch = call->ch;
  if (call->ic) /* a call never started ends here */
    cgrpc__icall_free(call->ic);
  cgrpc__hdrs_free(&call->hdrs);
  cgrpc_status_clear(&call->status);
  cgrpc__ep_free(&call->ep);
  cgrpc__free(call);
  cgrpc__channel_unref(ch);
}

void cgrpc_call_unref(cgrpc_call *call) {
  if (!call)
    return;
  atomic_fetch_sub(&call->ch->app_calls, 1); /* before the call may go */
  cgrpc__ep_unref(&call->ep);
}

static int set_message(cgrpc_call *call, const char *message) {
  size_t n;
  cgrpc__free(call->status.message);
  call->status.message = NULL;
  if (!message)
    return 0;
  n = strlen(message) + 1;
  call->status.message = cgrpc__malloc(n);
  if (!call->status.message)
    return CGRPC_ERR_NOMEM;
  memcpy(call->status.message, message, n);
  return 0;
}

/* ---- retries of the service config's retryPolicy (gRFC A6) ---- */

static void backoff_leave(cgrpc_call *call) {
  cgrpc_channel *ch = call->ch;
  cgrpc__loop_timer_stop(call->ep.loop, &call->retry_timer);
  if (call->prev)
    call->prev->next = call->next;
  else
    ch->backing_off = call->next;
  if (call->next)
    call->next->prev = call->prev;
  call->prev = call->next = NULL;
  call->backing_off = 0;
}

void cgrpc__call_fail_backing_off(cgrpc_channel *ch, cgrpc_status_code code,
                                  const char *message) {
  while (ch->backing_off)
    cgrpc__call_fail(ch->backing_off, code, message);
}

static void throttle_count(cgrpc_call *call, cgrpc_status_code code);
static int maybe_policy_retry(cgrpc_call *call, cgrpc_status_code code);

static void retry_fired(void *user_data) {
  cgrpc_call *call = user_data;
  backoff_leave(call);
  cgrpc__channel_enqueue(call->ch, call);
}

/*
 * Delivers the outcome once: stops the timer, ends the application's side
 * of the queues and wakes or calls the user.  The stream (if any) lives on
 * until nghttp2 is done with it.  The loop's reference goes with the
 * delivery (for async streams, once on_done has run).
 */
static void call_complete(cgrpc_call *call, ProtobufCMessage *reply) {
  if (call->completed)
    return;
  call->completed = 1;
  CGRPC__TRACE(&call->ch->log, CALL, "%s: %s ends %s%s%s",
               cgrpc__channel_target_name(call->ch), call->method->path,
               cgrpc_status_code_name(call->status.code),
               call->status.message ? ": " : "",
               call->status.message ? call->status.message : "");
  cgrpc__channel_call_ended(call->ch);
  cgrpc__loop_timer_stop(call->ep.loop, &call->deadline_timer);
  if (call->pending)
    cgrpc__channel_dequeue(call->ch, call);
  if (call->backing_off)
    backoff_leave(call);
  /* Before the application can see the outcome. */
  if (call->ic)
    cgrpc__icall_end(call->ic, call->status.code, call->status.message,
                     call->status.trailing_metadata);
  cgrpc__ep_stop(&call->ep);
  if (call->unary) {
    call->done(call, &call->status, reply, call->user_data);
    cgrpc__ep_unref(&call->ep);
  } else if (!call->async) {
    cgrpc__ep_unref(&call->ep);
  }
  /* Async streams: on_done comes from call_idle, after the completions
   * that are still due. */
}

void cgrpc__call_fail(cgrpc_call *call, cgrpc_status_code code,
                      const char *message) {
  if (call->completed)
    return;
  /* nghttp2 drops request HEADERS still queued, and reports them. */
  cgrpc__ep_reset(&call->ep, NGHTTP2_CANCEL);
  call->status.code = code;
  set_message(call, message);
  call_complete(call, NULL);
}

static void ep_fail(cgrpc__ep *ep, cgrpc_status_code code,
                    const char *message) {
  cgrpc_call *call = call_of(ep);
  if (atomic_load(&call->start_state) == CALL_NEW) {
    /* Not started: it ends with this as soon as it starts. */
    if (call->early_code == CGRPC_STATUS_OK) {
      call->early_code = code;
      call->early_message = message;
    }
    return;
  }
  cgrpc__call_fail(call, code, message);
}

/* ---- sending ---- */

void cgrpc__call_submit(cgrpc_call *call, cgrpc__client_conn *conn) {
  nghttp2_data_provider prd = cgrpc__ep_provider(&call->ep);
  int32_t id;
  if (call->deadline_ns) {
    /* The slot right after the reserved headers (PROTOCOL-HTTP2.md:
     * Timeout comes before Content-Type and the custom metadata). */
    nghttp2_nv *nv = &call->hdrs.nv[call->timeout_index];
    char *buf = cgrpc__arena_alloc(&call->hdrs.arena, CGRPC__TIMEOUT_BUFLEN);
    if (!buf) {
      cgrpc__call_fail(call, CGRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
      return;
    }
    nv->value = (uint8_t *)buf;
    nv->valuelen =
        cgrpc__timeout_format(buf, call->deadline_ns - cgrpc__now_ns());
  }
  id = nghttp2_submit_request(conn->h2.session, NULL, call->hdrs.nv,
                              call->hdrs.len, &prd, &call->ep);
  if (id < 0) {
    cgrpc__call_fail(call, CGRPC_STATUS_UNAVAILABLE, nghttp2_strerror(id));
    return;
  }
  call->attempts++;
  CGRPC__TRACE(&call->ch->log, CALL, "%s: %s on stream %d (attempt %d%s)",
               conn->h2.peer, call->method->path, (int)id,
               call->policy_attempts,
               call->attempts > 1 ? ", sent again transparently" : "");
  if (call->ic)
    cgrpc__icall_set_peer(call->ic, conn->h2.peer);
  cgrpc__ep_bind(&call->ep, &conn->h2, &conn->calls, id);
  cgrpc__h2conn_schedule_flush(&conn->h2);
}

static void deadline_fired(void *user_data) {
  cgrpc__call_fail(user_data, CGRPC_STATUS_DEADLINE_EXCEEDED,
                   "Deadline Exceeded");
}

static void call_start(cgrpc_call *call) {
  if (call->early_code != CGRPC_STATUS_OK) {
    cgrpc__call_fail(call, call->early_code, call->early_message);
    return;
  }
  if (call->deadline_ns) {
    if (call->deadline_ns <= cgrpc__now_ns()) {
      cgrpc__call_fail(call, CGRPC_STATUS_DEADLINE_EXCEEDED,
                       "Deadline Exceeded");
      return;
    }
    if (cgrpc__loop_timer_start(call->ep.loop, &call->deadline_timer,
                                call->deadline_ns) != 0) {
      cgrpc__call_fail(call, CGRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
      return;
    }
  }
  cgrpc__channel_enqueue(call->ch, call);
}

/* The kick: the start, or a cancel from another thread. */
static void call_kick(cgrpc__ep *ep, unsigned requests) {
  cgrpc_call *call = call_of(ep);
  if (atomic_load(&call->start_state) == CALL_NEW) {
    /* Not started: nothing runs yet; a cancel waits for the start. */
    if (requests & CALL_REQ_CANCEL) {
      call->early_code = CGRPC_STATUS_CANCELLED;
      call->early_message = "Cancelled";
    }
    return;
  }
  if (requests & CALL_REQ_CANCEL)
    cgrpc__call_fail(call, CGRPC_STATUS_CANCELLED, "Cancelled");
  if ((requests & CALL_REQ_START) && !call->completed)
    call_start(call);
}

void cgrpc_call_cancel(cgrpc_call *call) {
  if (call)
    cgrpc__ep_kick(&call->ep, CALL_REQ_CANCEL);
}

void cgrpc_call_take_status(cgrpc_call *call, cgrpc_status *dst) {
  if (!call || !dst)
    return;
  *dst = call->status;
  memset(&call->status, 0, sizeof call->status);
  call->status.code = dst->code;
}

/* The channel's call credentials for |call|: their metadata, or the status
 * the call fails with when it starts. */
static void add_call_creds(cgrpc_call *call) {
  cgrpc_channel *ch = call->ch;
  cgrpc_metadata_array *md = NULL;
  char msg[256];
  cgrpc_status_code code = cgrpc__call_creds_apply(
      ch->opts.call_creds, ch->tls_ctx ? "https" : "http", ch->authority,
      call->method->path, &md, msg, sizeof msg);
  if (code == CGRPC_STATUS_OK) {
    cgrpc__hdrs_add_metadata(&call->hdrs, md);
    cgrpc_metadata_array_del(md);
  } else if (call->early_code == CGRPC_STATUS_OK) {
    call->early_code = code;
    call->early_message =
        cgrpc__arena_memdup(&call->hdrs.arena, msg, strlen(msg) + 1);
    if (!call->early_message)
      call->early_message = "call credentials failed";
  }
}

/* The channel's interceptors' on_start (the caller's thread): what they
 * add goes with the request's metadata; a rejection becomes the status
 * the call fails with when it starts, before anything is sent.  Returns 0
 * or CGRPC_ERR_NOMEM. */
static int intercept_start(cgrpc_call *call, const cgrpc_call_options *opts) {
  cgrpc__icall *ic = call->ic;
  cgrpc_metadata_array *send;
  cgrpc_status_code code;
  char msg[256];
  if (cgrpc_metadata_array_new(&send) != 0)
    return CGRPC_ERR_NOMEM;
  ic->info.authority = call->ch->authority;
  ic->info.deadline_ns = call->deadline_ns;
  code = cgrpc__icall_start(ic, opts ? opts->metadata : NULL, send, NULL, msg,
                            sizeof msg);
  cgrpc__hdrs_add_metadata(&call->hdrs, send);
  cgrpc_metadata_array_del(send);
  if (code != CGRPC_STATUS_OK) {
    call->early_code = code;
    call->early_message =
        msg[0] ? cgrpc__arena_memdup(&call->hdrs.arena, msg, strlen(msg) + 1)
               : NULL;
  }
  return 0;
}

/* Builds the request headers in the caller's thread.  Order as in
 * PROTOCOL-HTTP2.md (pseudo-headers first, as HTTP/2 requires): the
 * reserved headers, grpc-timeout, content-type, the encodings, user-agent,
 * then the custom metadata. */
static int call_prepare_headers(cgrpc_call *call,
                                const cgrpc_call_options *opts) {
  cgrpc_channel *ch = call->ch;
  cgrpc__hdrs *h = &call->hdrs;
  /* The call's choice, else the service config's, else fail fast. */
  call->wait_for_ready = opts && opts->wait_for_ready
                             ? opts->wait_for_ready > 0
                             : call->mc && call->mc->wait_for_ready == 1;
  CGRPC__HDRS_ADD_LIT(h, ":method", "POST");
  if (ch->tls_ctx)
    CGRPC__HDRS_ADD_LIT(h, ":scheme", "https");
  else
    CGRPC__HDRS_ADD_LIT(h, ":scheme", "http");
  cgrpc__hdrs_add(h, ":path", 5, call->method->path,
                  strlen(call->method->path));
  cgrpc__hdrs_add(h, ":authority", 10, ch->authority, strlen(ch->authority));
  CGRPC__HDRS_ADD_LIT(h, "te", "trailers");
  if ((opts && opts->timeout_ms > 0) || (call->mc && call->mc->timeout_ns)) {
    /* Saturated: INT64_MAX, a common "no deadline", stays far away.  The
     * service config's timeout caps the call's. */
    int64_t now = cgrpc__now_ns();
    int64_t left = INT64_MAX - now;
    if (opts && opts->timeout_ms > 0)
      left =
          opts->timeout_ms < left / 1000000 ? opts->timeout_ms * 1000000 : left;
    if (call->mc && call->mc->timeout_ns && call->mc->timeout_ns < left)
      left = call->mc->timeout_ns;
    call->deadline_ns = now + left;
    call->timeout_index = h->len;
    CGRPC__HDRS_ADD_LIT(h, "grpc-timeout", ""); /* filled at submission */
  }
  CGRPC__HDRS_ADD_LIT(h, "content-type", "application/grpc");
  if (cgrpc__compress_on(call->send_enc)) {
    const char *name = cgrpc_compression_name(call->send_enc);
    cgrpc__hdrs_add(h, "grpc-encoding", 13, name, strlen(name));
  }
  CGRPC__HDRS_ADD_LIT(h, "grpc-accept-encoding", CGRPC__ACCEPT_ENCODING);
  CGRPC__HDRS_ADD_LIT(h, "user-agent", "grpc-c-cgrpc/" CGRPC_VERSION);
  if (opts && opts->metadata)
    cgrpc__hdrs_add_metadata(h, opts->metadata);
  if (call->ic && intercept_start(call, opts) != 0)
    return CGRPC_ERR_NOMEM;
  if (ch->opts.call_creds && call->early_code == CGRPC_STATUS_OK)
    add_call_creds(call);
  return h->failed ? CGRPC_ERR_NOMEM : 0;
}

static const cgrpc__ep_ops call_ops;

/* The requests' encoding: the call's choice, else the channel's default;
 * -1 when |opts| asks for something that is not a cgrpc_compression. */
static int request_encoding(const cgrpc_channel *ch,
                            const cgrpc_call_options *opts) {
  int c = opts ? opts->compression : CGRPC_COMPRESS_DEFAULT;
  if (!cgrpc__compress_valid(c)) {
    cgrpc__log(&ch->log, CGRPC_LOG_ERROR,
               "call options: compression %d is not a cgrpc_compression", c);
    return -1;
  }
  if (c == CGRPC_COMPRESS_DEFAULT)
    c = ch->opts.compression;
  return c == CGRPC_COMPRESS_DEFAULT ? CGRPC_COMPRESS_IDENTITY : c;
}

/* The lower of two size limits, -1 meaning none. */
static int64_t min_limit(int64_t a, int64_t b) {
  if (a < 0)
    return b;
  return b < 0 || a < b ? a : b;
}

/* A call with |refs| references (the loop's, and the caller's), sending
 * in |enc|. */
static cgrpc_call *call_new(cgrpc_channel *ch, const cgrpc_method_desc *method,
                            int refs, int enc) {
  cgrpc_call *call = cgrpc__calloc(1, sizeof *call);
  int64_t max_recv = ch->opts.max_recv;
  if (!call)
    return NULL;
  if (ch->opts.interceptors.n) {
    call->ic =
        cgrpc__icall_new(&ch->opts.interceptors, method->path, method->kind, 1);
    if (!call->ic) {
      cgrpc__free(call);
      return NULL;
    }
  }
  call->send_enc = (signed char)enc;
  call->max_send = ch->opts.max_send;
  /* The service config's limits apply where they are lower (-1: none). */
  call->mc =
      cgrpc__service_config_method(ch->opts.service_config, method->path);
  if (call->mc) {
    call->max_send = min_limit(call->max_send, call->mc->max_request_bytes);
    max_recv = min_limit(max_recv, call->mc->max_response_bytes);
  }
  cgrpc__ep_init(&call->ep, &call_ops, ch->loop, refs, max_recv, method->output,
                 "response");
  cgrpc__channel_ref(ch);
  call->ch = ch;
  call->method = method;
  cgrpc__hdrs_init(&call->hdrs);
  cgrpc__timer_init(&call->deadline_timer, deadline_fired, call);
  cgrpc__timer_init(&call->retry_timer, retry_fired, call);
  call->policy_attempts = 1;
  if (call->mc && call->mc->has_retry_policy) {
    /* gRFC A6's retry buffer: what was sent is kept, within the call's and
     * the channel's limits, until the call commits to an attempt. */
    call->retry_backoff_ns = call->mc->retry.initial_backoff_ns;
    call->ep.st.keep_sent = 1;
    call->ep.st.keep_limit = (size_t)ch->opts.retry_buffer_per_call;
    call->ep.st.keep_pool = &ch->retry_buffered;
    call->ep.st.keep_pool_limit = (size_t)ch->opts.retry_buffer_per_channel;
  }
  return call;
}

/* Frees a call that never reached the loop. */
static void call_discard(cgrpc_call *call) {
  atomic_store(&call->ep.refs, 1);
  cgrpc__ep_unref(&call->ep);
}

/* Posts the call's start to the loop unless the channel is closing. */
static int call_post_start(cgrpc_call *call) {
  cgrpc_channel *ch = call->ch;
  int rv = 0;
  atomic_store(&call->start_called, 1);
  pthread_mutex_lock(&ch->lock);
  if (ch->closing)
    rv = CGRPC_ERR_CLOSED;
  else {
    atomic_store(&call->start_state, CALL_STARTED);
    cgrpc__ep_kick(&call->ep, CALL_REQ_START);
  }
  pthread_mutex_unlock(&ch->lock);
  return rv;
}

int cgrpc_call_start(cgrpc_call *call) {
  int rv;
  if (!call || call->unary)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (atomic_exchange(&call->start_called, 1))
    return CGRPC_ERR_INVALID_STATE;
  /* The loop's reference: until the outcome is delivered. */
  cgrpc__ep_ref(&call->ep);
  rv = call_post_start(call);
  if (rv != 0)
    cgrpc__ep_unref(&call->ep);
  return rv;
}

int cgrpc_unary_start(cgrpc_channel *ch, const cgrpc_method_desc *method,
                      const ProtobufCMessage *request,
                      const cgrpc_call_options *opts, cgrpc_unary_done_cb done,
                      void *user_data, cgrpc_call **call_ptr) {
  cgrpc_call *call;
  cgrpc__msg *m;
  int rv, err = 0, enc;
  if (!ch || !method || !method->path || !method->output || !request || !done)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (method->kind != CGRPC_METHOD_UNARY ||
      (method->input && request->descriptor != method->input))
    return CGRPC_ERR_INVALID_ARGUMENT;
  if ((enc = request_encoding(ch, opts)) < 0)
    return CGRPC_ERR_INVALID_ARGUMENT;
  call = call_new(ch, method, call_ptr ? 2 : 1, enc);
  if (!call)
    return CGRPC_ERR_NOMEM;
  call->unary = 1;
  call->ep.unary_recv = 1;
  call->done = done;
  call->user_data = user_data;
  rv = call_prepare_headers(call, opts);
  if (rv == 0 && cgrpc__icall_wants_messages(call->ic))
    cgrpc__icall_message(call->ic, CGRPC_INTERCEPT_SEND, request);
  if (rv == 0) {
    m = cgrpc__msg_pack(request, call->max_send, enc, &err);
    if (m) {
      /* Not yet shared with any thread.  Kept once sent, for a retry
       * (within the retry buffer's limits when the method has a
       * retryPolicy). */
      m->seq = ++call->ep.st.send_seq;
      cgrpc__msgq_push(&call->ep.st.sendq, m);
      call->ep.st.keep_sent = 1;
    } else if (err == CGRPC_ERR_TOO_LARGE) {
      call->early_code = CGRPC_STATUS_RESOURCE_EXHAUSTED;
      call->early_message = "request message larger than the send limit";
    } else {
      rv = CGRPC_ERR_NOMEM;
    }
    call->ep.st.write_closed = 1;
  }
  /* Counted before the start: the channel's delete may be waiting. */
  if (call_ptr)
    atomic_fetch_add(&ch->app_calls, 1);
  if (rv == 0)
    rv = call_post_start(call);
  if (rv != 0) {
    if (call_ptr)
      atomic_fetch_sub(&ch->app_calls, 1);
    call_discard(call);
    return rv;
  }
  if (call_ptr)
    *call_ptr = call;
  return 0;
}

typedef struct sync_wait {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int done;
  cgrpc_status status;
  ProtobufCMessage *reply;
  /* The loop this waiter is counted as blocked on (it did not get to drive
   * it), or NULL. */
  cgrpc__loop *blocked_on;
} sync_wait;

static void sync_done(cgrpc_call *call, const cgrpc_status *status,
                      ProtobufCMessage *reply, void *user_data) {
  sync_wait *w = user_data;
  (void)status;
  /* Before the wake-up, after which |w| may be gone: the waiter will likely
   * make another call, and may then drive the loop itself. */
  if (w->blocked_on)
    cgrpc__loop_unblock(w->blocked_on, 1);
  pthread_mutex_lock(&w->lock);
  cgrpc_call_take_status(call, &w->status);
  w->reply = reply;
  w->done = 1;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->lock);
}

static cgrpc_status_code misuse(cgrpc_status *status, cgrpc_status_code code,
                                const char *message) {
  if (status) {
    size_t n = strlen(message) + 1;
    memset(status, 0, sizeof *status);
    status->code = code;
    status->message = cgrpc__malloc(n);
    if (status->message)
      memcpy(status->message, message, n);
  }
  return code;
}

/*
 * The borrower's wait: turns of the channel's loop until the call is done
 * (its outcome comes from one of them, on this thread), then the token goes
 * back.  While this thread holds the token the loop cannot stop, so the
 * channel and its loop outlive this even when another thread deletes the
 * channel meanwhile.  A loop that stops first (the channel's delete) gives
 * the rest to the loop's thread; the caller then waits on its condvar.
 */
static void drive_until_done(cgrpc_channel *ch, sync_wait *w) {
  int done, stopping = 0;
  for (;;) {
    pthread_mutex_lock(&w->lock);
    done = w->done;
    pthread_mutex_unlock(&w->lock);
    if (done || (stopping = cgrpc__loop_turn(ch->loop)) != 0)
      break;
  }
  /* Other calls in flight need a driver at once, not after the grace. */
  cgrpc__loop_give_back(ch->loop, stopping || cgrpc__channel_busy(ch));
}

cgrpc_status_code
cgrpc_unary_call(cgrpc_channel *ch, const cgrpc_method_desc *method,
                 const ProtobufCMessage *request, ProtobufCMessage **reply,
                 const cgrpc_call_options *opts, cgrpc_status *status) {
  sync_wait w;
  cgrpc_status_code code;
  int rv, borrowed;
  if (reply)
    *reply = NULL;
  if (!ch || !method || !request || !reply)
    return misuse(status, CGRPC_STATUS_INVALID_ARGUMENT,
                  "cgrpc_unary_call: channel, method, request and reply "
                  "must not be NULL");
  if (cgrpc__in_any_loop_thread())
    return misuse(status, CGRPC_STATUS_FAILED_PRECONDITION,
                  "blocking call made from a cgrpc callback or loop thread; "
                  "use the async form there");
  memset(&w, 0, sizeof w);
  pthread_mutex_init(&w.lock, NULL);
  pthread_cond_init(&w.cond, NULL);
  /* Drive the channel's loop on this thread while waiting, if its thread
   * is parked and nobody else drives it (io/loop.h); else wait for the
   * thread that does. */
  borrowed = cgrpc__loop_borrow(ch->loop, 1);
  if (!borrowed)
    w.blocked_on = ch->loop;
  rv = cgrpc_unary_start(ch, method, request, opts, sync_done, &w, NULL);
  if (rv == 0 && borrowed)
    drive_until_done(ch, &w);
  else if (borrowed)
    cgrpc__loop_give_back(ch->loop, 0);
  else if (rv != 0)
    cgrpc__loop_unblock(ch->loop, 0);
  if (rv != 0) {
    pthread_mutex_destroy(&w.lock);
    pthread_cond_destroy(&w.cond);
    if (rv == CGRPC_ERR_INVALID_ARGUMENT)
      return misuse(status, CGRPC_STATUS_INVALID_ARGUMENT,
                    "request type does not match the method, the method is "
                    "not unary, or opts->compression is not a "
                    "cgrpc_compression");
    return misuse(status,
                  rv == CGRPC_ERR_CLOSED ? CGRPC_STATUS_CANCELLED
                                         : CGRPC_STATUS_RESOURCE_EXHAUSTED,
                  cgrpc_strerror(rv));
  }
  pthread_mutex_lock(&w.lock);
  while (!w.done)
    pthread_cond_wait(&w.cond, &w.lock);
  pthread_mutex_unlock(&w.lock);
  pthread_mutex_destroy(&w.lock);
  pthread_cond_destroy(&w.cond);
  *reply = w.reply;
  code = w.status.code; /* cgrpc_status_clear() resets it */
  if (status)
    *status = w.status;
  else
    cgrpc_status_clear(&w.status);
  return code;
}

/* ---- streaming calls ---- */

/* Async completions (loop thread). */
static void call_read_done(cgrpc__ep *ep, ProtobufCMessage *msg) {
  cgrpc_call *call = call_of(ep);
  if (call->cbs.on_read)
    call->cbs.on_read(call, msg, call->user_data);
  else if (msg)
    protobuf_c_message_free_unpacked(msg, NULL);
}

static void call_write_done(cgrpc__ep *ep, int ok) {
  cgrpc_call *call = call_of(ep);
  if (call->cbs.on_write_done)
    call->cbs.on_write_done(call, ok, call->user_data);
}

/* After the due completions: an async stream's on_done, once, last, when
 * no read or write is pending. */
static void call_idle(cgrpc__ep *ep) {
  cgrpc_call *call = call_of(ep);
  int due;
  if (!call->async || !call->completed || call->done_delivered)
    return;
  pthread_mutex_lock(&ep->st.lock);
  due = !ep->read_pending && !ep->st.async_pending;
  if (due)
    ep->reads_ended = 1; /* nothing is delivered after on_done */
  pthread_mutex_unlock(&ep->st.lock);
  if (!due)
    return;
  call->done_delivered = 1;
  if (call->cbs.on_done)
    call->cbs.on_done(call, &call->status, call->user_data);
  cgrpc__ep_unref(ep); /* the loop's reference */
}

/* A streaming call; |start| 0 leaves it to cgrpc_call_start(). */
static int stream_open(cgrpc_channel *ch, const cgrpc_method_desc *method,
                       const cgrpc_call_options *opts,
                       const cgrpc_call_callbacks *cbs, void *user_data,
                       int start, cgrpc_call **call_ptr) {
  cgrpc_call *call;
  int rv, enc;
  if (!ch || !method || !method->path || !method->output || !call_ptr)
    return CGRPC_ERR_INVALID_ARGUMENT;
  *call_ptr = NULL;
  if ((enc = request_encoding(ch, opts)) < 0)
    return CGRPC_ERR_INVALID_ARGUMENT;
  /* The application's reference, and the loop's once started. */
  call = call_new(ch, method, start ? 2 : 1, enc);
  if (!call)
    return CGRPC_ERR_NOMEM;
  if (cbs) {
    call->async = 1;
    call->ep.async = 1;
    call->cbs = *cbs;
    call->user_data = user_data;
  }
  /* Counted before the start: the channel's delete may be waiting. */
  atomic_fetch_add(&ch->app_calls, 1);
  rv = call_prepare_headers(call, opts);
  if (rv == 0 && start)
    rv = call_post_start(call);
  if (rv != 0) {
    atomic_fetch_sub(&ch->app_calls, 1);
    call_discard(call);
    return rv;
  }
  *call_ptr = call;
  return 0;
}

int cgrpc_call_open(cgrpc_channel *channel, const cgrpc_method_desc *method,
                    const cgrpc_call_options *opts, cgrpc_call **call_ptr) {
  return stream_open(channel, method, opts, NULL, NULL, 1, call_ptr);
}

/* The callback form; NULL |cbs| means no callbacks. */
static int async_open(cgrpc_channel *channel, const cgrpc_method_desc *method,
                      const cgrpc_call_options *opts,
                      const cgrpc_call_callbacks *cbs, void *user_data,
                      int start, cgrpc_call **call_ptr) {
  static const cgrpc_call_callbacks none = {NULL, NULL, NULL};
  return stream_open(channel, method, opts, cbs ? cbs : &none, user_data, start,
                     call_ptr);
}

int cgrpc_call_open_async(cgrpc_channel *channel,
                          const cgrpc_method_desc *method,
                          const cgrpc_call_options *opts,
                          const cgrpc_call_callbacks *cbs, void *user_data,
                          cgrpc_call **call_ptr) {
  return async_open(channel, method, opts, cbs, user_data, 1, call_ptr);
}

int cgrpc_call_new_async(cgrpc_channel *channel,
                         const cgrpc_method_desc *method,
                         const cgrpc_call_options *opts,
                         const cgrpc_call_callbacks *cbs, void *user_data,
                         cgrpc_call **call_ptr) {
  return async_open(channel, method, opts, cbs, user_data, 0, call_ptr);
}

/* Queues one message; |blocking| waits for room. */
static int stream_write(cgrpc_call *call, const ProtobufCMessage *msg,
                        unsigned flags, int blocking) {
  cgrpc__msg *m;
  int rv;
  if (!call || call->unary || !msg ||
      (call->method->input && msg->descriptor != call->method->input) ||
      (flags & ~(unsigned)CGRPC_WRITE_NO_COMPRESS))
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (blocking && cgrpc__in_any_loop_thread())
    return CGRPC_ERR_WOULD_DEADLOCK;
  if (cgrpc__icall_wants_messages(call->ic))
    cgrpc__icall_message(call->ic, CGRPC_INTERCEPT_SEND, msg);
  m = cgrpc__msg_pack(msg, call->max_send,
                      (flags & CGRPC_WRITE_NO_COMPRESS)
                          ? CGRPC_COMPRESS_IDENTITY
                          : call->send_enc,
                      &rv);
  if (!m) {
    if (rv == CGRPC_ERR_TOO_LARGE)
      cgrpc__ep_fail_any(&call->ep, CGRPC_STATUS_RESOURCE_EXHAUSTED,
                         "request message larger than the send limit");
    return rv;
  }
  rv = cgrpc__ep_write(&call->ep, m, blocking);
  if (rv != 0)
    cgrpc__free(m);
  return rv;
}

int cgrpc_call_write(cgrpc_call *call, const ProtobufCMessage *msg) {
  return stream_write(call, msg, 0, 1);
}

int cgrpc_call_write_flags(cgrpc_call *call, const ProtobufCMessage *msg,
                           unsigned flags) {
  return stream_write(call, msg, flags, 1);
}

int cgrpc_call_write_async(cgrpc_call *call, const ProtobufCMessage *msg) {
  return cgrpc_call_write_async_flags(call, msg, 0);
}

int cgrpc_call_write_async_flags(cgrpc_call *call, const ProtobufCMessage *msg,
                                 unsigned flags) {
  if (call && !call->async)
    return CGRPC_ERR_INVALID_STATE;
  return stream_write(call, msg, flags, 0);
}

int cgrpc_call_last_message_compressed(const cgrpc_call *call) {
  return call ? call->ep.last_compressed : 0;
}

/* Here rather than in channel.c: the rest of the client's compression is
 * in this file. */
int cgrpc_channel_options_set_default_compression(cgrpc_channel_options *opts,
                                                  int compression) {
  int rv;
  if (!opts)
    return CGRPC_ERR_INVALID_ARGUMENT;
  rv = cgrpc__compress_check_option(compression, opts->log_cb,
                                    opts->log_user_data, __func__);
  if (rv == 0)
    opts->compression = compression;
  return rv;
}

int cgrpc_call_writes_done(cgrpc_call *call) {
  if (!call || call->unary)
    return CGRPC_ERR_INVALID_ARGUMENT;
  return cgrpc__ep_close_writes(&call->ep);
}

int cgrpc_call_read(cgrpc_call *call, ProtobufCMessage **msg) {
  cgrpc__msg *m;
  if (!msg)
    return CGRPC_ERR_INVALID_ARGUMENT;
  *msg = NULL;
  if (!call || call->unary || call->async)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (cgrpc__in_any_loop_thread())
    return CGRPC_ERR_WOULD_DEADLOCK;
  m = cgrpc__ep_read_wait(&call->ep);
  if (!m)
    return 0;
  *msg = cgrpc__ep_decode(&call->ep, m);
  if (!*msg) {
    cgrpc__ep_fail_any(&call->ep, CGRPC_STATUS_INTERNAL,
                       "could not decode a response message");
    return 0;
  }
  return 1;
}

int cgrpc_call_read_async(cgrpc_call *call) {
  if (!call || call->unary || !call->async)
    return CGRPC_ERR_INVALID_ARGUMENT;
  return cgrpc__ep_read_async(&call->ep);
}

const cgrpc_metadata_array *cgrpc_call_initial_metadata(cgrpc_call *call) {
  cgrpc__stream *st;
  const cgrpc_metadata_array *md;
  if (!call || call->unary || cgrpc__in_any_loop_thread())
    return NULL;
  st = &call->ep.st;
  pthread_mutex_lock(&st->lock);
  while (!call->headers_received && !st->done)
    cgrpc__stream_wait(st);
  md = call->headers_received ? call->status.initial_metadata : NULL;
  pthread_mutex_unlock(&st->lock);
  return md;
}

/* A copy of |md| (NULL for NULL, or when out of memory). */
static cgrpc_metadata_array *copy_metadata(const cgrpc_metadata_array *md) {
  cgrpc_metadata_array *copy;
  size_t i, n = cgrpc_metadata_array_count(md);
  if (!md || cgrpc_metadata_array_new(&copy) != 0)
    return NULL;
  for (i = 0; i < n; i++) {
    const char *key;
    const uint8_t *value;
    size_t len;
    cgrpc_metadata_array_at(md, i, &key, &value, &len);
    if (cgrpc__metadata_array_add_raw(copy, key, strlen(key), value, len) !=
        0) {
      cgrpc_metadata_array_del(copy);
      return NULL;
    }
  }
  return copy;
}

cgrpc_status_code cgrpc_call_finish(cgrpc_call *call, cgrpc_status *status) {
  cgrpc__stream *st;
  if (!call || call->unary)
    return misuse(status, CGRPC_STATUS_INVALID_ARGUMENT,
                  "cgrpc_call_finish: not a streaming call");
  if (call->async || cgrpc__in_any_loop_thread())
    return misuse(status, CGRPC_STATUS_FAILED_PRECONDITION,
                  "cgrpc_call_finish: blocking wait on an async call or "
                  "from a library thread");
  st = &call->ep.st;
  cgrpc_call_writes_done(call); /* no-op when already done */
  pthread_mutex_lock(&st->lock);
  while (!st->done) {
    if (st->recvq.head) {
      /* Drop what the caller will not read, and give its window back: a
       * server with more to send would otherwise wait for ever. */
      int post;
      cgrpc__msgq_clear(&st->recvq);
      post = cgrpc__ep_release_recv(&call->ep);
      if (post) {
        pthread_mutex_unlock(&st->lock);
        cgrpc__ep_post_kick(&call->ep);
        pthread_mutex_lock(&st->lock);
        continue;
      }
    }
    cgrpc__stream_wait(st);
  }
  pthread_mutex_unlock(&st->lock);
  /* The outcome is final (done is set after it, under the lock), and stays
   * with the call: every finish reports the same, each with its own copy,
   * and cgrpc_call_initial_metadata()'s array lives until the release. */
  if (status) {
    memset(status, 0, sizeof *status);
    status->code = call->status.code;
    if (call->status.message) {
      size_t n = strlen(call->status.message) + 1;
      status->message = cgrpc__malloc(n);
      if (status->message)
        memcpy(status->message, call->status.message, n);
    }
    status->initial_metadata = copy_metadata(call->status.initial_metadata);
    status->trailing_metadata = copy_metadata(call->status.trailing_metadata);
  }
  return call->status.code;
}

cgrpc_status_code cgrpc_call_finish_with_reply(cgrpc_call *call,
                                               ProtobufCMessage **reply,
                                               cgrpc_status *status) {
  ProtobufCMessage *msg = NULL, *extra = NULL;
  cgrpc_status st;
  cgrpc_status_code code;
  const char *problem = NULL;
  if (reply)
    *reply = NULL;
  if (!call || call->unary || !reply)
    return misuse(status, CGRPC_STATUS_INVALID_ARGUMENT,
                  "cgrpc_call_finish_with_reply: NULL call or reply");
  cgrpc_call_writes_done(call); /* no-op when already done */
  if (cgrpc_call_read(call, &msg) == 1 && cgrpc_call_read(call, &extra) == 1) {
    protobuf_c_message_free_unpacked(extra, NULL);
    cgrpc_call_cancel(call);
    problem = "client-streaming call got more than one response";
  }
  cgrpc_call_finish(call, &st);
  if (st.code == CGRPC_STATUS_OK && (problem || !msg)) {
    cgrpc_status_clear(&st);
    misuse(&st, problem ? CGRPC_STATUS_INTERNAL : CGRPC_STATUS_UNIMPLEMENTED,
           problem ? problem : "client-streaming call got no response message");
  }
  if (st.code != CGRPC_STATUS_OK && msg) {
    protobuf_c_message_free_unpacked(msg, NULL);
    msg = NULL;
  }
  *reply = msg;
  code = st.code; /* cgrpc_status_clear() resets it */
  if (status)
    *status = st;
  else
    cgrpc_status_clear(&st);
  return code;
}

/* ---- nghttp2 callbacks ---- */

static cgrpc_call *stream_call(nghttp2_session *session, int32_t stream_id) {
  return nghttp2_session_get_stream_user_data(session, stream_id);
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame,
                     const uint8_t *name, size_t namelen, const uint8_t *value,
                     size_t valuelen, uint8_t flags, void *user_data) {
  cgrpc_call *call;
  cgrpc_metadata_array **md;
  (void)flags;
  (void)user_data;
  if (frame->hd.type != NGHTTP2_HEADERS)
    return 0;
  call = stream_call(session, frame->hd.stream_id);
  if (!call || call->completed)
    return 0;
  if (frame->headers.cat == NGHTTP2_HCAT_HEADERS)
    call->in_trailers = 1;
  /* Bounds what one response's headers may make us store. */
  if (cgrpc__ep_header_over(&call->ep, namelen, valuelen))
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  if (LIT_EQ(name, namelen, ":status")) {
    int st;
    if (cgrpc__wire_parse_status(value, valuelen, &st) == 0)
      call->http_status = st;
    return 0;
  }
  if (LIT_EQ(name, namelen, "grpc-status")) {
    int code;
    if (cgrpc__wire_parse_status(value, valuelen, &code) == 0) {
      call->status.code = (cgrpc_status_code)code;
      call->have_grpc_status = 1;
    }
    return 0;
  }
  if (LIT_EQ(name, namelen, "grpc-message")) {
    cgrpc__free(call->status.message);
    call->status.message = cgrpc__wire_decode_message(value, valuelen);
    return 0;
  }
  if (LIT_EQ(name, namelen, "content-type")) {
    size_t n = valuelen < sizeof call->content_type - 1
                   ? valuelen
                   : sizeof call->content_type - 1;
    call->bad_content_type = !cgrpc__wire_content_type_ok(value, valuelen);
    memcpy(call->content_type, value, n);
    call->content_type[n] = '\0';
    return 0;
  }
  if (LIT_EQ(name, namelen, "grpc-retry-pushback-ms")) {
    /* gRFC A6: a non-negative integer; anything else stops retries. */
    char buf[24];
    char *end;
    long long ms = -1;
    if (valuelen > 0 && valuelen < sizeof buf) {
      memcpy(buf, value, valuelen);
      buf[valuelen] = '\0';
      ms = strtoll(buf, &end, 10);
      if (*end || ms > INT64_MAX / 1000000)
        ms = -1;
    }
    call->pushback_ms = ms < 0 ? -1 : ms;
    call->has_pushback = 1;
    return 0;
  }
  if (LIT_EQ(name, namelen, "grpc-encoding")) {
    /* An encoding we cannot read fails the first compressed message. */
    call->ep.recv_enc = (signed char)cgrpc__compress_parse(value, valuelen);
    return 0;
  }
  if (cgrpc__wire_header_reserved(name, namelen))
    return 0;
  md = call->in_trailers ? &call->status.trailing_metadata
                         : &call->status.initial_metadata;
  if (!*md && cgrpc_metadata_array_new(md) != 0)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  if (cgrpc__wire_add_metadata(*md, name, namelen, value, valuelen) ==
      CGRPC_ERR_NOMEM)
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  return 0;
}

/* A received message (see cgrpc__ep_ops.message). */
static int call_message(cgrpc__ep *ep, int compressed, const uint8_t *data,
                        size_t len) {
  cgrpc_call *call = call_of(ep);
  cgrpc__msg *m;
  /* A unary call keeps its first reply and counts the others. */
  if (++call->n_responses > 1 && call->unary)
    return 0;
  /* A unary reply is given to on_message once decoded (call_finish). */
  if (!call->unary && cgrpc__icall_wants_messages(call->ic)) {
    ProtobufCMessage *msg = cgrpc__ep_peek_message(ep, compressed, data, len);
    if (msg) {
      cgrpc__icall_message(call->ic, CGRPC_INTERCEPT_RECV, msg);
      protobuf_c_message_free_unpacked(msg, NULL);
    }
  }
  m = cgrpc__ep_take_message(ep, compressed, data, len);
  if (!m)
    return CGRPC_ERR_NOMEM;
  cgrpc__ep_push_received(ep, m);
  return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags,
                         int32_t stream_id, const uint8_t *data, size_t len,
                         void *user_data) {
  cgrpc_call *call = stream_call(session, stream_id);
  size_t consume = len;
  (void)flags;
  (void)user_data;
  /* Only a gRPC response's body is deframed: an HTTP error answer or one
   * of another content-type (a proxy's own HTML error page) carries no
   * messages, and its status comes from the headers (call_finish). */
  if (call && !call->completed && call->http_status == 200 &&
      !call->bad_content_type)
    consume = cgrpc__ep_on_data(&call->ep, data, len);
  if (consume)
    nghttp2_session_consume(session, stream_id, consume);
  return 0;
}

/* The stream ended: work out the status the way the gRPC spec says. */
static void call_finish(cgrpc_call *call, uint32_t error_code) {
  ProtobufCMessage *reply = NULL;
  char msg[160];
  if (call->have_grpc_status && !call->in_trailers &&
      !call->status.trailing_metadata) {
    /* Trailers-Only: the one HEADERS frame is the trailers. */
    call->status.trailing_metadata = call->status.initial_metadata;
    call->status.initial_metadata = NULL;
  }
  if (call->have_grpc_status) {
    if ((unsigned)call->status.code > CGRPC_STATUS_UNAUTHENTICATED)
      call->status.code = CGRPC_STATUS_UNKNOWN;
  } else if (call->http_status != 0 && call->http_status != 200) {
    /* gRPC's http-grpc-status-mapping.md: 502/503/504 UNAVAILABLE, ... */
    call->status.code = cgrpc__wire_http_to_status(call->http_status);
    snprintf(msg, sizeof msg, "HTTP %d from the peer (content-type %s)",
             call->http_status,
             call->content_type[0] ? call->content_type : "none");
    set_message(call, msg);
  } else if (error_code != 0) {
    call->status.code = cgrpc__wire_rst_to_status(error_code);
    snprintf(msg, sizeof msg,
             "Stream reset by the server (HTTP/2 error %s, 0x%x)",
             cgrpc__h2_error_name(error_code), error_code);
    set_message(call, msg);
  } else if (call->http_status == 200 && call->bad_content_type) {
    call->status.code = CGRPC_STATUS_UNKNOWN;
    snprintf(msg, sizeof msg,
             "HTTP 200 from the peer with content-type %s, not "
             "application/grpc",
             call->content_type);
    set_message(call, msg);
  } else if (!call->in_trailers) {
    /* The body ended (END_STREAM on DATA, as a proxy ends a stream whose
     * backend went away) with no trailers: never OK. */
    call->status.code = CGRPC_STATUS_INTERNAL;
    set_message(call, "stream ended without trailers (no grpc-status)");
  } else {
    call->status.code = CGRPC_STATUS_INTERNAL;
    set_message(call, "the trailers carry no grpc-status");
  }
  /* Trailers-Only (no response headers of its own): not committed. */
  if (call->have_grpc_status && !call->in_trailers && call->n_responses == 0) {
    if (maybe_policy_retry(call, call->status.code))
      return;
  } else if (call->status.code == CGRPC_STATUS_OK) {
    throttle_count(call, CGRPC_STATUS_OK);
  }
  if (call->status.code == CGRPC_STATUS_OK &&
      !cgrpc__deframer_is_idle(&call->ep.deframer)) {
    call->status.code = CGRPC_STATUS_INTERNAL;
    set_message(call, "response stream ended inside a message");
  }
  if (call->status.code == CGRPC_STATUS_OK && call->unary) {
    if (call->n_responses != 1) {
      call->status.code = call->n_responses == 0 ? CGRPC_STATUS_UNIMPLEMENTED
                                                 : CGRPC_STATUS_INTERNAL;
      snprintf(msg, sizeof msg,
               "unary call expected one response message, got %d",
               call->n_responses);
      set_message(call, msg);
    } else {
      cgrpc__msg *m = call->ep.unary_msg;
      call->ep.unary_msg = NULL;
      if (m)
        call->ep.last_compressed = m->compressed;
      reply = m ? cgrpc__ep_decode(&call->ep, m) : NULL;
      if (reply && cgrpc__icall_wants_messages(call->ic))
        cgrpc__icall_message(call->ic, CGRPC_INTERCEPT_RECV, reply);
      if (!reply) {
        call->status.code = CGRPC_STATUS_INTERNAL;
        snprintf(msg, sizeof msg, "could not decode the response as %s",
                 call->method->output->name);
        set_message(call, msg);
      }
    }
  }
  call_complete(call, reply);
}

/* Whether what was sent can be sent again: nothing was, or all of it is
 * still kept (the call is not committed). */
static int attempt_rewindable(cgrpc_call *call) {
  cgrpc__stream *st = &call->ep.st;
  int rv;
  pthread_mutex_lock(&st->lock);
  rv = st->sent_bytes == 0 || st->keep_sent;
  pthread_mutex_unlock(&st->lock);
  return rv;
}

/* Forgets what the last attempt received and rewinds the request for the
 * next one.  Returns 0, or -1 when the request cannot be sent again. */
static int attempt_reset(cgrpc_call *call) {
  int rv;
  pthread_mutex_lock(&call->ep.st.lock);
  rv = cgrpc__stream_rewind(&call->ep.st);
  pthread_mutex_unlock(&call->ep.st.lock);
  if (rv != 0)
    return -1;
  call->ep.header_bytes = 0;
  call->ep.recv_enc = 0;
  call->in_trailers = 0;
  call->have_grpc_status = 0;
  call->bad_content_type = 0;
  call->http_status = 0;
  call->content_type[0] = '\0';
  call->n_responses = 0;
  call->has_pushback = 0;
  call->status.code = CGRPC_STATUS_OK;
  cgrpc__free(call->status.message);
  call->status.message = NULL;
  cgrpc_metadata_array_del(call->status.initial_metadata);
  cgrpc_metadata_array_del(call->status.trailing_metadata);
  call->status.initial_metadata = call->status.trailing_metadata = NULL;
  return 0;
}

/* A number in [0, 1) for backoff jitter (no shared state: any loop). */
static double jitter_unit(const cgrpc_call *call) {
  uint64_t x = (uint64_t)cgrpc__now_ns() ^ (uint64_t)(uintptr_t)call ^
               ((uint64_t)call->policy_attempts << 32);
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return (double)(x >> 11) / 9007199254740992.0;
}

/* retryThrottling's token count for an attempt that ended with |code|. */
static void throttle_count(cgrpc_call *call, cgrpc_status_code code) {
  cgrpc_channel *ch = call->ch;
  if (!ch->retry_max_tokens)
    return;
  if (code == CGRPC_STATUS_OK) {
    ch->retry_tokens += ch->retry_token_ratio;
    if (ch->retry_tokens > ch->retry_max_tokens)
      ch->retry_tokens = ch->retry_max_tokens;
  } else if (call->mc && call->mc->has_retry_policy &&
             (call->mc->retry.retryable_codes & (1u << code))) {
    ch->retry_tokens = ch->retry_tokens > 1000 ? ch->retry_tokens - 1000 : 0;
  }
}

/*
 * Whether the attempt that ended with |code| (the call not committed: no
 * response headers came) goes again under the method's retryPolicy, and
 * after how long: the server's grpc-retry-pushback-ms, else a random time
 * up to the current backoff (gRFC A6).  A pushback that is not a
 * non-negative number stops the retries, as does a retry that could not
 * start before the deadline.
 */
static int policy_retry_delay(cgrpc_call *call, cgrpc_status_code code,
                              int64_t *delay_ns) {
  const cgrpc__method_config *mc = call->mc;
  cgrpc_channel *ch = call->ch;
  if (!mc || !mc->has_retry_policy || call->completed ||
      code == CGRPC_STATUS_OK || !attempt_rewindable(call) ||
      !(mc->retry.retryable_codes & (1u << code)) ||
      call->policy_attempts >= mc->retry.max_attempts)
    return 0;
  if (ch->retry_max_tokens && ch->retry_tokens <= ch->retry_max_tokens / 2)
    return 0; /* throttled */
  if (call->has_pushback) {
    if (call->pushback_ms < 0)
      return 0;
    *delay_ns = call->pushback_ms * 1000000;
  } else {
    double next = (double)call->retry_backoff_ns * mc->retry.backoff_multiplier;
    *delay_ns = (int64_t)(jitter_unit(call) * (double)call->retry_backoff_ns);
    call->retry_backoff_ns = next > (double)mc->retry.max_backoff_ns
                                 ? mc->retry.max_backoff_ns
                                 : (int64_t)next;
  }
  return !call->deadline_ns || cgrpc__now_ns() + *delay_ns < call->deadline_ns;
}

/* Starts the next attempt of the retryPolicy after |delay_ns|, saying how
 * many came before (grpc-previous-rpc-attempts).  Returns 1, or 0 when it
 * cannot (the call then ends with what it has). */
static int policy_retry(cgrpc_call *call, int64_t delay_ns) {
  cgrpc_channel *ch = call->ch;
  cgrpc__hdrs *h = &call->hdrs;
  int n = snprintf(call->retry_header_value, sizeof call->retry_header_value,
                   "%d", call->policy_attempts);
  if (call->retry_header_index) {
    h->nv[call->retry_header_index].valuelen = (size_t)n;
  } else {
    call->retry_header_index = h->len;
    cgrpc__hdrs_add(h, "grpc-previous-rpc-attempts", 26,
                    call->retry_header_value, (size_t)n);
    if (h->failed)
      return 0;
  }
  if (attempt_reset(call) != 0)
    return 0;
  call->policy_attempts++;
  CGRPC__TRACE(&ch->log, RETRY, "%s: %s: attempt %d failed; next in %lld ms",
               cgrpc__channel_target_name(ch), call->method->path,
               call->policy_attempts, (long long)(delay_ns / 1000000));
  if (delay_ns > 0) {
    call->next = ch->backing_off;
    if (ch->backing_off)
      ch->backing_off->prev = call;
    ch->backing_off = call;
    call->prev = NULL;
    call->backing_off = 1;
    if (cgrpc__loop_timer_start(call->ep.loop, &call->retry_timer,
                                cgrpc__now_ns() + delay_ns) == 0)
      return 1;
    backoff_leave(call);
  }
  cgrpc__channel_enqueue(ch, call);
  return 1;
}

/* The attempt ended with |code| before the call was committed: retried
 * under the retryPolicy when it allows.  Returns 1 when it goes again. */
static int maybe_policy_retry(cgrpc_call *call, cgrpc_status_code code) {
  int64_t delay_ns = 0;
  throttle_count(call, code);
  return policy_retry_delay(call, code, &delay_ns) &&
         policy_retry(call, delay_ns);
}

/*
 * gRFC A6's transparent retry: a request the server provably never
 * processed goes once more, on whatever connection the channel has next,
 * while nothing was answered and its body can be sent again: a unary
 * request is kept until the call ends; a stream's messages while the
 * method's retryPolicy keeps them (the retry buffer), else only while none
 * of it was sent yet.
 */
static int call_retry(cgrpc_call *call) {
  if (call->completed || call->attempts > 1 || call->http_status != 0 ||
      call->n_responses > 0 || attempt_reset(call) != 0)
    return 0;
  CGRPC__TRACE(&call->ch->log, RETRY, "%s: %s: transparent retry",
               cgrpc__channel_target_name(call->ch), call->method->path);
  cgrpc__channel_enqueue(call->ch, call);
  return 1;
}

/* The call left its stream (see cgrpc__ep_ops.unbound). */
static void call_unbound(cgrpc__ep *ep, cgrpc__ep_end how,
                         uint32_t error_code) {
  cgrpc_call *call = call_of(ep);
  if (call->completed)
    return;
  switch (how) {
  case CGRPC__EP_CLOSED:
    /* REFUSED_STREAM: the server did not look at it (RFC 9113 8.7), and
     * nghttp2 closes streams above a GOAWAY's last id with it too. */
    if (error_code == NGHTTP2_REFUSED_STREAM) {
      if (call_retry(call))
        return;
      /* Refused again after the one transparent retry: the retryPolicy
       * handles it (gRFC A6), as the UNAVAILABLE it maps to. */
      if (call->http_status == 0 &&
          maybe_policy_retry(call, CGRPC_STATUS_UNAVAILABLE))
        return;
    }
    call_finish(call, error_code);
    return;
  case CGRPC__EP_NOT_SENT:
  case CGRPC__EP_CONN_LOST_UNSENT:
    if (call_retry(call))
      return;
    cgrpc__call_fail(call, CGRPC_STATUS_UNAVAILABLE,
                     "the connection went before the request was sent");
    return;
  case CGRPC__EP_CONN_LOST:
    if (call->http_status == 0 &&
        maybe_policy_retry(call, CGRPC_STATUS_UNAVAILABLE))
      return;
    cgrpc__call_fail(call, CGRPC_STATUS_UNAVAILABLE,
                     call->ch->lost_reason[0] ? call->ch->lost_reason
                                              : "connection closed");
    return;
  }
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id,
                           uint32_t error_code, void *user_data) {
  cgrpc_call *call = stream_call(session, stream_id);
  if (call)
    cgrpc__ep_closed(&call->ep, stream_id, error_code);
  cgrpc__channel_conn_stream_closed(user_data);
  return 0;
}

/* Request HEADERS nghttp2 dropped unsent (a GOAWAY came first, or the call
 * was reset while queued): it opened no stream and will not report one. */
static int on_frame_not_send(nghttp2_session *session,
                             const nghttp2_frame *frame, int lib_error_code,
                             void *user_data) {
  cgrpc__client_conn *conn = user_data;
  cgrpc__ep *ep;
  (void)session;
  (void)lib_error_code;
  if (frame->hd.type != NGHTTP2_HEADERS ||
      frame->headers.cat != NGHTTP2_HCAT_REQUEST)
    return 0;
  ep = cgrpc__ep_find(conn->calls, frame->hd.stream_id);
  if (ep)
    cgrpc__ep_not_sent(ep);
  cgrpc__channel_conn_stream_closed(conn);
  return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
                         void *user_data) {
  cgrpc_call *call;
  cgrpc__h2_trace_frame(user_data, 0, frame);
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    cgrpc__channel_conn_goaway(user_data, &frame->goaway);
    return 0;
  }
  if (frame->hd.type == NGHTTP2_SETTINGS) {
    if (!(frame->hd.flags & NGHTTP2_FLAG_ACK))
      cgrpc__channel_conn_settings(user_data);
    return 0;
  }
  if (frame->hd.type == NGHTTP2_RST_STREAM) {
    call = stream_call(session, frame->hd.stream_id);
    if (call)
      cgrpc__ep_frame_recv(&call->ep, frame);
    return 0;
  }
  if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    /* The response is complete: if the server answered while our request
     * is still open, the call ends now with that answer (the reset closes
     * the stream, whose close runs call_finish). */
    call = stream_call(session, frame->hd.stream_id);
    if (call && !call->completed && cgrpc__ep_request_open(&call->ep))
      cgrpc__ep_reset(&call->ep, NGHTTP2_NO_ERROR);
    return 0;
  }
  if (frame->hd.type != NGHTTP2_HEADERS ||
      frame->headers.cat != NGHTTP2_HCAT_RESPONSE)
    return 0;
  call = stream_call(session, frame->hd.stream_id);
  /* Response headers commit the call to this attempt (gRFC A6): the retry
   * buffer goes (a unary call without a retryPolicy has none to free). */
  if (call && (!call->unary || call->ep.st.keep_pool)) {
    pthread_mutex_lock(&call->ep.st.lock);
    if (call->ep.st.keep_pool)
      cgrpc__stream_drop_kept(&call->ep.st);
    call->headers_received = 1;
    cgrpc__stream_wake(&call->ep.st);
    pthread_mutex_unlock(&call->ep.st.lock);
  }
  return 0;
}

static uint32_t call_body_end(cgrpc__ep *ep) {
  (void)ep;
  return 0; /* END_STREAM with the last DATA */
}

static const cgrpc__ep_ops call_ops = {
    call_kick,       call_message, ep_fail,      call_body_end, call_read_done,
    call_write_done, call_idle,    call_unbound, call_destroy};

static nghttp2_session_callbacks *client_cbs;
static pthread_once_t client_cbs_once = PTHREAD_ONCE_INIT;

static void client_cbs_init(void) {
  nghttp2_session_callbacks *c;
  if (nghttp2_session_callbacks_new(&c) != 0)
    return;
  nghttp2_session_callbacks_set_on_header_callback(c, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, on_data_chunk);
  nghttp2_session_callbacks_set_on_frame_recv_callback(c, on_frame_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(c, on_stream_close);
  nghttp2_session_callbacks_set_on_frame_not_send_callback(c,
                                                           on_frame_not_send);
  nghttp2_session_callbacks_set_send_callback(c, cgrpc__h2conn_send_cb);
  nghttp2_session_callbacks_set_send_data_callback(c,
                                                   cgrpc__h2conn_send_data_cb);
  cgrpc__h2_trace_callbacks(c, 1);
  client_cbs = c;
}

nghttp2_session_callbacks *cgrpc__client_callbacks(void) {
  pthread_once(&client_cbs_once, client_cbs_init);
  return client_cbs;
}
