/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target for the gRPC message deframer (src/call/deframer.c).
 *
 * Input: byte 0 picks a small max_len (0-255) and byte 1 when the third
 * deframer's callback stops parsing; the rest is a sequence of chunks, each
 * a length byte followed by up to that many bytes.  The same chunks are fed
 * to deframers with the small limit, with no limit, and with no limit and a
 * callback that fails, and every message they deliver is checked against a
 * one-shot reference parse of the concatenated bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "call/deframer.h"
#include "cgrpc/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                               \
  do {                                                                         \
    if (!(x))                                                                  \
      abort();                                                                 \
  } while (0)

#define MAX_CHUNKS 4096
#define CB_STOP 12345

/* One message found by the reference parser. */
typedef struct ref_msg {
  int compressed;
  size_t off, len;
} ref_msg;

typedef struct ref_parse {
  ref_msg *msgs;
  size_t n;
  int error;    /* 0, CGRPC_ERR_PROTO or CGRPC_ERR_TOO_LARGE */
  size_t end;   /* bytes consumed by complete messages */
} ref_parse;

/* Parses |len| bytes at |p| in one go: the behaviour the deframer must show
 * whatever the chunking. */
static void ref_run(ref_parse *r, const uint8_t *p, size_t len,
                    int64_t max_len) {
  size_t pos = 0;
  r->n = 0;
  r->error = 0;
  while (len - pos >= CGRPC__FRAME_PREFIX_LEN) {
    uint32_t mlen = (uint32_t)p[pos + 1] << 24 | (uint32_t)p[pos + 2] << 16 |
                    (uint32_t)p[pos + 3] << 8 | p[pos + 4];
    if (p[pos] > 1) {
      r->error = CGRPC_ERR_PROTO;
      break;
    }
    if (max_len >= 0 && (int64_t)mlen > max_len) {
      r->error = CGRPC_ERR_TOO_LARGE;
      break;
    }
    if (len - pos - CGRPC__FRAME_PREFIX_LEN < mlen)
      break;
    r->msgs[r->n].compressed = p[pos];
    r->msgs[r->n].off = pos + CGRPC__FRAME_PREFIX_LEN;
    r->msgs[r->n].len = mlen;
    r->n++;
    pos += CGRPC__FRAME_PREFIX_LEN + mlen;
  }
  r->end = pos;
}

typedef struct sink {
  const ref_parse *ref;
  const uint8_t *all;
  int64_t max_len;
  size_t seen;
  size_t stop_after; /* return CB_STOP on this message (0: never) */
} sink;

static int on_msg(void *user_data, int compressed, const uint8_t *data,
                  size_t len) {
  sink *s = user_data;
  const ref_msg *m;
  volatile uint8_t x = 0;
  size_t i;
  CHECK(data != NULL);
  CHECK(compressed == 0 || compressed == 1);
  CHECK(s->max_len < 0 || (int64_t)len <= s->max_len);
  CHECK(s->seen < s->ref->n);
  m = &s->ref->msgs[s->seen];
  CHECK(m->compressed == compressed && m->len == len);
  CHECK(len == 0 || memcmp(s->all + m->off, data, len) == 0);
  for (i = 0; i < len; i++) /* touch every byte for ASan */
    x ^= data[i];
  (void)x;
  s->seen++;
  if (s->stop_after && s->seen == s->stop_after)
    return CB_STOP;
  return 0;
}

/* Feeds every chunk to a fresh deframer and checks the outcome. */
static void run(const uint8_t *all, const size_t *chunk_len, size_t nchunks,
                int64_t max_len, size_t stop_after, ref_parse *ref) {
  cgrpc__deframer d;
  sink s = {ref, all, max_len, 0, stop_after};
  size_t i, off = 0;
  int rv = 0, want_err;

  cgrpc__deframer_init(&d, max_len);
  CHECK(cgrpc__deframer_is_idle(&d));
  for (i = 0; i < nchunks; i++) {
    /* A zero-length chunk is passed as NULL, which the API allows. */
    const uint8_t *p = chunk_len[i] ? all + off : NULL;
    int r = cgrpc__deframer_feed(&d, p, chunk_len[i], on_msg, &s);
    off += chunk_len[i];
    if (rv != 0) {
      CHECK(r == rv); /* failed deframers repeat their error */
      CHECK(!cgrpc__deframer_is_idle(&d));
    }
    rv = r;
    /* Idle exactly when every byte fed so far belongs to whole messages. */
    if (rv == 0) {
      size_t done = 0, k;
      for (k = 0; k < s.seen; k++)
        done = ref->msgs[k].off + ref->msgs[k].len;
      CHECK(!!cgrpc__deframer_is_idle(&d) == (done == off));
    }
  }
  CHECK(cgrpc__deframer_feed(&d, NULL, 0, on_msg, &s) == rv);

  if (stop_after && stop_after <= ref->n) {
    want_err = CB_STOP;
    CHECK(s.seen == stop_after);
  } else {
    CHECK(s.seen == ref->n);
    /* The reference error shows only once its prefix is complete, and the
     * whole input was fed, so it must have shown. */
    want_err = ref->error;
  }
  CHECK(rv == want_err);
  if (rv == 0)
    CHECK(!!cgrpc__deframer_is_idle(&d) == (ref->end == off));
  cgrpc__deframer_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static size_t chunk_len[MAX_CHUNKS];
  uint8_t *all;
  size_t nchunks = 0, total = 0, pos, stop_after;
  int64_t small_max;
  ref_parse ref;

  if (size < 2)
    return 0;
  small_max = data[0];
  stop_after = data[1] % 8;
  /* Gather the chunk payloads into one buffer of exactly their size. */
  all = malloc(size);
  if (!all)
    return 0;
  for (pos = 2; pos < size && nchunks < MAX_CHUNKS;) {
    size_t n = data[pos++];
    if (n > size - pos)
      n = size - pos;
    memcpy(all + total, data + pos, n);
    total += n;
    pos += n;
    chunk_len[nchunks++] = n;
  }
  /* A message needs at least 5 bytes, so this bounds the message count. */
  ref.msgs = malloc((total / CGRPC__FRAME_PREFIX_LEN + 1) * sizeof *ref.msgs);
  if (!ref.msgs) {
    free(all);
    return 0;
  }

  ref_run(&ref, all, total, small_max);
  run(all, chunk_len, nchunks, small_max, 0, &ref);
  ref_run(&ref, all, total, -1);
  run(all, chunk_len, nchunks, -1, 0, &ref);
  if (stop_after)
    run(all, chunk_len, nchunks, -1, stop_after, &ref);

  free(ref.msgs);
  free(all);
  return 0;
}
