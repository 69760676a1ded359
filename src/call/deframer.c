/* SPDX-License-Identifier: MIT */
#include "call/deframer.h"

#include <string.h>

#include "cgrpc/error.h"
#include "util/mem.h"

/* Smallest buffer allocated for a split message. */
#define MIN_BUF 256
/* A buffer larger than this is freed after its message, so an idle stream
 * does not keep a big allocation. */
#define KEEP_BUF 16384

/* Passed to the callback for zero-length messages, so |data| is never
 * NULL. */
static const uint8_t empty_payload[1];

void cgrpc__deframer_init(cgrpc__deframer *d, int64_t max_len) {
  memset(d, 0, sizeof(*d));
  d->state = CGRPC__DEFRAMER_EXPECT_PREFIX;
  d->max_len = max_len;
}

static int fail(cgrpc__deframer *d, int rv) {
  d->state = CGRPC__DEFRAMER_FAILED;
  d->error = rv;
  return rv;
}

/* Validates the 5 prefix bytes at |p| and moves to EXPECT_PAYLOAD. */
static int on_prefix(cgrpc__deframer *d, const uint8_t *p) {
  uint32_t len;
  if (p[0] > 1) {
    return fail(d, CGRPC_ERR_PROTO);
  }
  len = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 |
        (uint32_t)p[4];
  if (d->max_len >= 0 && (int64_t)len > d->max_len) {
    return fail(d, CGRPC_ERR_TOO_LARGE);
  }
  d->compressed = p[0];
  d->msg_len = len;
  d->buf_len = 0;
  d->state = CGRPC__DEFRAMER_EXPECT_PAYLOAD;
  return 0;
}

/* Hands a complete message to |cb| and goes back to EXPECT_PREFIX. */
static int deliver(cgrpc__deframer *d, const uint8_t *data,
                   cgrpc__deframer_msg_cb cb, void *user_data) {
  int rv;
  d->state = CGRPC__DEFRAMER_EXPECT_PREFIX;
  d->prefix_len = 0;
  d->delivering_buf = d->msg_len && data == d->buf;
  rv = cb(user_data, d->compressed, d->msg_len ? data : empty_payload,
          d->msg_len);
  d->delivering_buf = 0;
  d->buf_len = 0;
  if (d->buf_cap > KEEP_BUF) {
    cgrpc__free(d->alloc);
    d->alloc = d->buf = NULL;
    d->buf_cap = 0;
  }
  return rv ? fail(d, rv) : 0;
}

/* Makes room for |need| bytes in the split-message buffer.  Growth doubles
 * but stops at the announced length, and |need| never exceeds it, so memory
 * tracks what the peer actually sent rather than what it announced. */
static int buf_reserve(cgrpc__deframer *d, size_t need) {
  size_t cap;
  uint8_t *p;
  if (need <= d->buf_cap) {
    return 0;
  }
  cap = d->buf_cap ? d->buf_cap : MIN_BUF;
  while (cap < need) {
    cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
  }
  if (cap > d->msg_len) {
    cap = d->msg_len;
  }
  p = cgrpc__realloc(d->alloc, d->headroom + cap);
  if (p == NULL) {
    return CGRPC_ERR_NOMEM;
  }
  d->alloc = p;
  d->buf = p + d->headroom;
  d->buf_cap = cap;
  return 0;
}

/* EXPECT_PREFIX: consumes up to 5 bytes; returns the count or an error. */
static int expect_prefix(cgrpc__deframer *d, const uint8_t *data, size_t len,
                         size_t *consumed) {
  size_t take;
  if (d->prefix_len == 0 && len >= CGRPC__FRAME_PREFIX_LEN) {
    /* Common case: the whole prefix is in this feed; read it in place. */
    *consumed = CGRPC__FRAME_PREFIX_LEN;
    return on_prefix(d, data);
  }
  take = CGRPC__FRAME_PREFIX_LEN - d->prefix_len;
  if (take > len) {
    take = len;
  }
  memcpy(d->prefix + d->prefix_len, data, take);
  d->prefix_len += take;
  *consumed = take;
  if (d->prefix_len < CGRPC__FRAME_PREFIX_LEN) {
    return 0;
  }
  return on_prefix(d, d->prefix);
}

/* EXPECT_PAYLOAD: delivers in place when possible, else buffers. */
static int expect_payload(cgrpc__deframer *d, const uint8_t *data, size_t len,
                          size_t *consumed, cgrpc__deframer_msg_cb cb,
                          void *user_data) {
  size_t want = d->msg_len - d->buf_len, take;
  int rv;
  if (d->buf_len == 0 && len >= want) {
    *consumed = want;
    return deliver(d, data, cb, user_data);
  }
  take = len < want ? len : want;
  rv = buf_reserve(d, d->buf_len + take);
  if (rv != 0) {
    return fail(d, rv);
  }
  memcpy(d->buf + d->buf_len, data, take);
  d->buf_len += take;
  *consumed = take;
  if (d->buf_len < d->msg_len) {
    return 0;
  }
  return deliver(d, d->buf, cb, user_data);
}

void cgrpc__deframer_set_headroom(cgrpc__deframer *d, size_t headroom) {
  d->headroom = headroom;
}

uint8_t *cgrpc__deframer_steal(cgrpc__deframer *d) {
  uint8_t *p;
  if (!d->delivering_buf)
    return NULL;
  p = d->alloc;
  d->alloc = d->buf = NULL;
  d->buf_cap = 0;
  d->delivering_buf = 0;
  return p;
}

int cgrpc__deframer_feed(cgrpc__deframer *d, const uint8_t *data, size_t len,
                         cgrpc__deframer_msg_cb cb, void *user_data) {
  size_t consumed = 0;
  int rv = 0;

  if (d->state == CGRPC__DEFRAMER_FAILED) {
    return d->error;
  }
  /* A zero-length message completes with its prefix, even when the feed
   * ends right after it, so the payload state also runs with len == 0. */
  for (;;) {
    if (d->state == CGRPC__DEFRAMER_EXPECT_PREFIX) {
      if (len == 0) {
        break;
      }
      rv = expect_prefix(d, data, len, &consumed);
    } else if (d->state == CGRPC__DEFRAMER_EXPECT_PAYLOAD) {
      if (len == 0 && d->msg_len != 0) {
        break;
      }
      rv = expect_payload(d, data, len, &consumed, cb, user_data);
    } else {
      return d->error;
    }
    if (rv != 0) {
      return rv;
    }
    if (consumed > 0) { /* |data| may be NULL when |len| is 0 */
      data += consumed;
      len -= consumed;
    }
  }
  return 0;
}

int cgrpc__deframer_is_idle(const cgrpc__deframer *d) {
  return d->state == CGRPC__DEFRAMER_EXPECT_PREFIX && d->prefix_len == 0;
}

void cgrpc__deframer_free(cgrpc__deframer *d) {
  cgrpc__free(d->alloc);
  d->alloc = d->buf = NULL;
  d->buf_cap = 0;
  d->buf_len = 0;
}

void cgrpc__frame_prefix(uint8_t out[CGRPC__FRAME_PREFIX_LEN], int compressed,
                         uint32_t len) {
  out[0] = compressed ? 1 : 0;
  out[1] = (uint8_t)(len >> 24);
  out[2] = (uint8_t)(len >> 16);
  out[3] = (uint8_t)(len >> 8);
  out[4] = (uint8_t)len;
}
