/* SPDX-License-Identifier: MIT */
#include "call/stream.h"

#include <stddef.h>
#include <string.h>

#include "call/compress.h"
#include "call/wire.h"
#include "cgrpc/error.h"
#include "util/mem.h"

void cgrpc__stream_init(cgrpc__stream *st, size_t send_limit,
                        size_t recv_limit) {
  /* The static initializers: the default attributes, and cheaper than
   * the init calls on the per-call path. */
  static const pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  static const pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
  memset(st, 0, sizeof *st);
  st->lock = lock;
  st->cond = cond;
  st->send_limit = send_limit;
  st->recv_limit = recv_limit;
  st->keep_limit = SIZE_MAX;
}

void cgrpc__stream_free(cgrpc__stream *st) {
  cgrpc__stream_drop_kept(st);
  cgrpc__msgq_clear(&st->sendq);
  cgrpc__msgq_clear(&st->recvq);
  pthread_mutex_destroy(&st->lock);
  pthread_cond_destroy(&st->cond);
}

/* Sets up the header of a message of |len| data bytes; NULL stays NULL. */
static cgrpc__msg *msg_init(cgrpc__msg *m, size_t len) {
  if (m) {
    m->next = NULL;
    m->len = len;
    m->off = 0;
    m->seq = 0;
    m->compressed = 0;
    m->deflated = 0;
  }
  return m;
}

cgrpc__msg *cgrpc__msg_new(size_t len) {
  return msg_init(cgrpc__malloc(sizeof(cgrpc__msg) + len), len);
}

cgrpc__msg *cgrpc__msg_adopt(uint8_t *alloc, size_t len) {
  return msg_init((cgrpc__msg *)(void *)alloc, len);
}

/* A packed message compressed with |enc|: packed without headroom, then
 * compressed into the message (a copy the identity path never makes). */
static CGRPC__COLD cgrpc__msg *pack_compressed(const ProtobufCMessage *msg,
                                               int64_t max_send, int enc,
                                               int *err) {
  size_t len, clen;
  uint8_t *plain = cgrpc__pack_framed(msg, max_send, 0, &len, err), *c;
  if (!plain)
    return NULL;
  c = cgrpc__compress_framed(enc, plain, len, offsetof(cgrpc__msg, data), &clen,
                             err);
  cgrpc__free(plain);
  return c ? msg_init((cgrpc__msg *)(void *)c, clen) : NULL;
}

cgrpc__msg *cgrpc__msg_pack(const ProtobufCMessage *msg, int64_t max_send,
                            int enc, int *err) {
  size_t len;
  cgrpc__msg *m;
  if (cgrpc__compress_on(enc))
    return pack_compressed(msg, max_send, enc, err);
  m = (cgrpc__msg *)(void *)cgrpc__pack_framed(
      msg, max_send, offsetof(cgrpc__msg, data), &len, err);
  return msg_init(m, len);
}

void cgrpc__stream_deframer_init(cgrpc__deframer *d) {
  cgrpc__deframer_set_headroom(d, offsetof(cgrpc__msg, data));
}

cgrpc__msg *cgrpc__msg_received(cgrpc__deframer *d, const uint8_t *data,
                                size_t len) {
  /* Only the buffer that holds |data| itself (not, say, the compressed
   * original of a message inflated elsewhere). */
  cgrpc__msg *m =
      data == d->buf ? (cgrpc__msg *)(void *)cgrpc__deframer_steal(d) : NULL;
  if (m)
    return msg_init(m, len);
  m = cgrpc__msg_new(len);
  if (m)
    memcpy(m->data, data, len);
  return m;
}

void cgrpc__stream_wait(cgrpc__stream *st) {
  st->waiters++;
  pthread_cond_wait(&st->cond, &st->lock);
  st->waiters--;
}

void cgrpc__msgq_push(cgrpc__msgq *q, cgrpc__msg *m) {
  m->next = NULL;
  if (q->tail)
    q->tail->next = m;
  else
    q->head = m;
  q->tail = m;
  q->bytes += m->len - m->off;
}

cgrpc__msg *cgrpc__msgq_pop(cgrpc__msgq *q) {
  cgrpc__msg *m = q->head;
  if (!m)
    return NULL;
  q->head = m->next;
  if (!q->head)
    q->tail = NULL;
  q->bytes -= m->len - m->off;
  m->next = NULL;
  return m;
}

void cgrpc__msgq_clear(cgrpc__msgq *q) {
  cgrpc__msg *m;
  while ((m = cgrpc__msgq_pop(q)) != NULL)
    cgrpc__free(m);
}

static void pool_sub(cgrpc__stream *st, size_t n) {
  if (st->keep_pool && n)
    atomic_fetch_sub_explicit(st->keep_pool, n, memory_order_relaxed);
}

/* Counts the message |m|, about to be sent, against the retry buffer's
 * limits: the whole message must be kept to be sent again, from its first
 * byte on.  Returns 1, or 0 when it would pass a limit: the stream then
 * keeps nothing more (committed). */
static int keep_reserve(cgrpc__stream *st, cgrpc__msg *m) {
  if (m->len > st->keep_limit - st->kept.bytes)
    goto full;
  if (st->keep_pool &&
      atomic_fetch_add_explicit(st->keep_pool, m->len, memory_order_relaxed) +
              m->len >
          st->keep_pool_limit) {
    atomic_fetch_sub_explicit(st->keep_pool, m->len, memory_order_relaxed);
    goto full;
  }
  st->keep_pending = m->len;
  return 1;
full:
  cgrpc__stream_drop_kept(st);
  return 0;
}

/* Adds the message |m|, sent in full and reserved by keep_reserve(), to
 * the retry buffer. */
static void keep(cgrpc__stream *st, cgrpc__msg *m) {
  st->keep_pending = 0;
  m->off = 0; /* sent again from the start */
  cgrpc__msgq_push(&st->kept, m);
}

size_t cgrpc__stream_take_send(cgrpc__stream *st, uint8_t *buf, size_t len) {
  size_t copied = 0;
  int was_full = st->sendq.bytes >= st->send_limit;
  while (copied < len && st->sendq.head) {
    cgrpc__msg *m = st->sendq.head;
    size_t n = m->len - m->off;
    if (m->off == 0 && st->keep_sent)
      (void)keep_reserve(st, m);
    if (n > len - copied)
      n = len - copied;
    if (buf)
      memcpy(buf + copied, m->data + m->off, n);
    m->off += n;
    st->sendq.bytes -= n;
    st->sent_bytes += n;
    copied += n;
    if (m->off == m->len) {
      if (m->seq > st->sent_seq) /* not a message sent again */
        st->sent_seq = m->seq;
      st->sendq.head = m->next;
      if (!st->sendq.head)
        st->sendq.tail = NULL;
      if (st->keep_sent)
        keep(st, m);
      else
        cgrpc__free(m);
    }
  }
  if (was_full && st->sendq.bytes < st->send_limit)
    cgrpc__stream_wake(st);
  return copied;
}

size_t cgrpc__stream_take_body(cgrpc__stream *st, uint8_t *dst, size_t len,
                               int *write_due) {
  size_t n;
  pthread_mutex_lock(&st->lock);
  n = cgrpc__stream_take_send(st, dst, len);
  st->promised = n < st->promised ? st->promised - n : 0;
  *write_due = st->async_pending && st->sent_seq >= st->async_seq;
  pthread_mutex_unlock(&st->lock);
  return n;
}

int cgrpc__stream_rewind(cgrpc__stream *st) {
  cgrpc__msg *head = st->sendq.head;
  if (st->sent_bytes == 0)
    return 0;
  if (!st->keep_sent)
    return -1;
  if (head) { /* one sent in part, or not at all */
    st->sendq.bytes += head->off;
    head->off = 0;
  }
  if (st->kept.head) { /* those sent in full go first again */
    st->kept.tail->next = head;
    st->sendq.head = st->kept.head;
    if (!head)
      st->sendq.tail = st->kept.tail;
    st->sendq.bytes += st->kept.bytes;
    pool_sub(st, st->kept.bytes);
    st->kept.head = st->kept.tail = NULL;
    st->kept.bytes = 0;
  }
  pool_sub(st, st->keep_pending); /* counted again when sent again */
  st->keep_pending = 0;
  st->sent_bytes = 0;
  st->promised = 0;
  return 0;
}

void cgrpc__stream_drop_kept(cgrpc__stream *st) {
  st->keep_sent = 0;
  pool_sub(st, st->kept.bytes + st->keep_pending);
  st->keep_pending = 0;
  cgrpc__msgq_clear(&st->kept);
}

void cgrpc__stream_drop_unpromised(cgrpc__stream *st) {
  size_t keep = st->promised;
  cgrpc__msg **link = &st->sendq.head, *m;
  st->sendq.tail = NULL;
  while ((m = *link) != NULL && keep > 0) {
    size_t left = m->len - m->off;
    if (left > keep) {
      m->len = m->off + keep; /* the rest of it will not be sent */
      m->seq = 0;             /* nor reported as written */
    }
    keep -= m->len - m->off;
    st->sendq.tail = m;
    link = &m->next;
  }
  *link = NULL;
  while (m) {
    cgrpc__msg *next = m->next;
    cgrpc__free(m);
    m = next;
  }
  st->sendq.bytes = st->promised;
  cgrpc__stream_wake(st);
}

size_t cgrpc__stream_account_recv(cgrpc__stream *st, size_t len) {
  if (st->recvq.bytes <= st->recv_limit && st->unconsumed == 0)
    return len;
  st->unconsumed += len;
  return 0;
}

int cgrpc__stream_release_recv(cgrpc__stream *st) {
  if (st->unconsumed == 0 || st->recvq.bytes > st->recv_limit / 2)
    return 0;
  st->to_consume += st->unconsumed;
  st->unconsumed = 0;
  return cgrpc__stream_want_kick(st);
}

int cgrpc__stream_want_kick(cgrpc__stream *st) {
  if (st->kick_pending)
    return 0;
  st->kick_pending = 1;
  return 1;
}

int cgrpc__stream_async_write_due(cgrpc__stream *st, int *ok) {
  if (!st->async_pending || (st->sent_seq < st->async_seq && !st->done))
    return 0;
  *ok = st->sent_seq >= st->async_seq;
  st->async_pending = 0;
  return 1;
}
