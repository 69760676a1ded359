/* SPDX-License-Identifier: MIT */
#include "call/compress.h"

#include <limits.h>
#include <string.h>
#include <zlib.h>

#include "call/deframer.h"
#include "call/wire.h"
#include "cgrpc/error.h"
#include "util/log.h"
#include "util/mem.h"

#define LIT_EQ CGRPC__LIT_EQ

/* A shrunk compressed buffer saves at least this much, or it is kept. */
#define SHRINK_MIN 4096

const char *cgrpc_compression_name(int compression) {
  switch (compression) {
  case CGRPC_COMPRESS_DEFAULT:
  case CGRPC_COMPRESS_IDENTITY:
    return "identity";
  case CGRPC_COMPRESS_GZIP:
    return "gzip";
  case CGRPC_COMPRESS_DEFLATE:
    return "deflate";
  default:
    return NULL;
  }
}

int cgrpc__compress_parse(const uint8_t *value, size_t len) {
  if (LIT_EQ(value, len, "gzip"))
    return CGRPC_COMPRESS_GZIP;
  if (LIT_EQ(value, len, "identity"))
    return CGRPC_COMPRESS_IDENTITY;
  if (LIT_EQ(value, len, "deflate"))
    return CGRPC_COMPRESS_DEFLATE;
  return CGRPC__COMPRESS_UNKNOWN;
}

unsigned cgrpc__compress_parse_accept(const uint8_t *value, size_t len) {
  unsigned set = CGRPC__COMPRESS_BIT(CGRPC_COMPRESS_IDENTITY);
  size_t i = 0;
  /* What gRPC's own implementations (and this one) send. */
  if (LIT_EQ(value, len, CGRPC__ACCEPT_ENCODING))
    return set | CGRPC__COMPRESS_BIT(CGRPC_COMPRESS_GZIP) |
           CGRPC__COMPRESS_BIT(CGRPC_COMPRESS_DEFLATE);
  while (i < len) {
    size_t start, end;
    int enc;
    while (i < len && (value[i] == ' ' || value[i] == '\t'))
      i++;
    start = i;
    while (i < len && value[i] != ',')
      i++;
    end = i;
    while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t'))
      end--;
    enc = cgrpc__compress_parse(value + start, end - start);
    if (enc != CGRPC__COMPRESS_UNKNOWN)
      set |= CGRPC__COMPRESS_BIT(enc);
    i++; /* the comma */
  }
  return set;
}

/* ---- zlib ---- */

static voidpf z_alloc(voidpf opaque, uInt items, uInt size) {
  (void)opaque;
  return cgrpc__calloc(items, size);
}

static void z_free(voidpf opaque, voidpf p) {
  (void)opaque;
  cgrpc__free(p);
}

/* zlib's windowBits for |enc|: 15 (32 KiB), plus 16 for the gzip
 * wrapper instead of zlib's.  0 for an encoding that does not compress. */
static int window_bits(int enc) {
  return enc == CGRPC_COMPRESS_GZIP      ? 15 + 16
         : enc == CGRPC_COMPRESS_DEFLATE ? 15
                                         : 0;
}

/* The window and memLevel for compressing |n| bytes: no larger than the
 * input needs.  At the 32 KiB window and memLevel 8, zlib allocates about
 * 256 KiB (window, prev, head, pending), calloc'd and mostly zeroed, for
 * each message whatever its size: compressing a 100-byte message took
 * some 80 us instead of 2.
 *
 * The output should not change: zlib matches at most the window less
 * MIN_LOOKAHEAD (262) bytes back, so a window with that much room past
 * the input can find every match a larger one would; memLevel sizes the
 * hash (collisions mostly cost time) and the symbol buffer (at least the
 * input keeps it one block).  Measured: the same sizes from 100 bytes to
 * 100 KB.  Readers accept any window up to 32 KiB (RFC 1950's CINFO; gzip
 * carries none). */
static int compress_window_bits(int enc, size_t n, int *mem_level) {
  int bits = 9, level = 1; /* zlib's least */
  while (bits < 15 && ((size_t)1 << bits) < n + 262)
    bits++;
  while (level < 8 && ((size_t)1 << (level + 6)) < n)
    level++;
  *mem_level = level;
  return window_bits(enc) - 15 + bits;
}

static void z_init(z_stream *zs) {
  memset(zs, 0, sizeof *zs);
  zs->zalloc = z_alloc;
  zs->zfree = z_free;
}

/* The next chunk zlib can take of |n| bytes (its counts are uInt). */
static uInt z_chunk(size_t n) { return n > UINT_MAX ? UINT_MAX : (uInt)n; }

uint8_t *cgrpc__compress_framed(int enc, const uint8_t *framed,
                                size_t framed_len, size_t headroom,
                                size_t *out_len, int *err) {
  const uint8_t *in = framed + CGRPC__FRAME_PREFIX_LEN;
  size_t in_left = framed_len - CGRPC__FRAME_PREFIX_LEN, bound, out_left;
  size_t start = headroom + CGRPC__FRAME_PREFIX_LEN, used;
  uint8_t *buf, *p;
  z_stream zs;
  int rv, mem_level, bits = window_bits(enc);
  if (bits == 0) {
    *err = CGRPC_ERR_INVALID_ARGUMENT;
    return NULL;
  }
  bits = compress_window_bits(enc, in_left, &mem_level);
  z_init(&zs);
  rv = deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, bits, mem_level,
                    Z_DEFAULT_STRATEGY);
  if (rv != Z_OK) {
    *err = rv == Z_MEM_ERROR ? CGRPC_ERR_NOMEM : CGRPC_ERR_INTERNAL;
    return NULL;
  }
  /* Room for the worst case, so one pass with Z_FINISH completes; a
   * result over 4 GiB cannot be framed anyway. */
  bound = deflateBound(&zs, (uLong)in_left);
  if (bound > (size_t)UINT32_MAX + 1)
    bound = (size_t)UINT32_MAX + 1;
  buf = cgrpc__malloc(start + bound);
  if (!buf) {
    deflateEnd(&zs);
    *err = CGRPC_ERR_NOMEM;
    return NULL;
  }
  zs.next_in = (Bytef *)(uintptr_t)in;
  zs.next_out = buf + start;
  out_left = bound;
  for (;;) {
    uInt ai = z_chunk(in_left), ao = z_chunk(out_left);
    zs.avail_in = ai;
    zs.avail_out = ao;
    rv = deflate(&zs, ai == in_left ? Z_FINISH : Z_NO_FLUSH);
    in_left -= ai - zs.avail_in;
    out_left -= ao - zs.avail_out;
    if (rv == Z_STREAM_END)
      break;
    if ((rv != Z_OK && rv != Z_BUF_ERROR) || out_left == 0) {
      deflateEnd(&zs);
      cgrpc__free(buf);
      *err = out_left == 0 ? CGRPC_ERR_TOO_LARGE : CGRPC_ERR_INTERNAL;
      return NULL;
    }
  }
  deflateEnd(&zs);
  used = bound - out_left;
  if (used > UINT32_MAX) {
    cgrpc__free(buf);
    *err = CGRPC_ERR_TOO_LARGE;
    return NULL;
  }
  cgrpc__frame_prefix(buf + headroom, 1, (uint32_t)used);
  *out_len = CGRPC__FRAME_PREFIX_LEN + used;
  /* deflateBound() is about the input's size; what compressed well need
   * not hold that much while it waits in the send queue. */
  if (out_left >= SHRINK_MIN && (p = cgrpc__realloc(buf, start + used)))
    buf = p;
  return buf;
}

int cgrpc__decompress(int enc, const uint8_t *in, size_t len, int64_t limit,
                      size_t headroom, uint8_t **out, size_t *out_len) {
  /* Accept at most |max| bytes; the buffer ends one byte past it, so
   * filling it means "too large". */
  size_t max = limit < 0 || limit > (int64_t)UINT32_MAX ? UINT32_MAX
                                                        : (size_t)limit;
  size_t cap = len < 64 ? 256 : len * 4, n = 0, in_left = len;
  uint8_t *buf, *p;
  z_stream zs;
  int rv, bits = window_bits(enc), result;
  *out = NULL;
  *out_len = 0;
  if (bits == 0)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (cap > max + 1)
    cap = max + 1;
  z_init(&zs);
  rv = inflateInit2(&zs, bits);
  if (rv != Z_OK)
    return rv == Z_MEM_ERROR ? CGRPC_ERR_NOMEM : CGRPC_ERR_INTERNAL;
  buf = cgrpc__malloc(headroom + cap);
  if (!buf) {
    inflateEnd(&zs);
    return CGRPC_ERR_NOMEM;
  }
  zs.next_in = (Bytef *)(uintptr_t)in;
  for (;;) {
    uInt ai, ao;
    if (n == cap) {
      if (cap > max) {
        result = CGRPC_ERR_TOO_LARGE;
        break;
      }
      cap = cap > (max + 1) / 2 ? max + 1 : cap * 2;
      p = cgrpc__realloc(buf, headroom + cap);
      if (!p) {
        result = CGRPC_ERR_NOMEM;
        break;
      }
      buf = p;
    }
    ai = z_chunk(in_left);
    ao = z_chunk(cap - n);
    zs.avail_in = ai;
    zs.next_out = buf + headroom + n;
    zs.avail_out = ao;
    rv = inflate(&zs, Z_NO_FLUSH);
    in_left -= ai - zs.avail_in;
    n += ao - zs.avail_out;
    if (rv == Z_STREAM_END) {
      result = n > max ? CGRPC_ERR_TOO_LARGE
               : in_left ? CGRPC_ERR_PROTO /* bytes after the end */
                         : 0;
      break;
    }
    if (rv == Z_OK || (rv == Z_BUF_ERROR && n == cap))
      continue; /* more to read, or it needs room */
    /* Z_BUF_ERROR with room: the input ended before the stream did. */
    result = rv == Z_MEM_ERROR ? CGRPC_ERR_NOMEM : CGRPC_ERR_PROTO;
    break;
  }
  inflateEnd(&zs);
  *out_len = n;
  if (result != 0) {
    cgrpc__free(buf);
    return result;
  }
  *out = buf;
  return 0;
}

int cgrpc__compress_check_option(int enc, cgrpc_log_cb log_cb, void *ud,
                                 const char *func) {
  cgrpc__logger lg;
  if (cgrpc__compress_valid(enc))
    return 0;
  /* The options' log callback, if set yet; else CGRPC_TRACE. */
  cgrpc__logger_init(&lg, log_cb, ud);
  cgrpc__log(&lg, CGRPC_LOG_ERROR, "%s: %d is not a cgrpc_compression", func,
             enc);
  return CGRPC_ERR_INVALID_ARGUMENT;
}
