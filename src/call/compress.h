/* SPDX-License-Identifier: MIT */
/*
 * The message codecs both sides share (include/cgrpc/compression.h):
 * gzip and zlib-wrapped deflate through zlib, the encoding names of
 * grpc-encoding and grpc-accept-encoding, and the choice of a response's
 * encoding.  Encodings are cgrpc_compression values; anything at or below
 * CGRPC_COMPRESS_IDENTITY means "not compressed".
 */
#ifndef CGRPC_CALL_COMPRESS_H
#define CGRPC_CALL_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "cgrpc/compression.h"
#include "cgrpc/log.h"

/* For the compression paths of functions that the uncompressed hot path
 * also runs through: out of line, so that the hot path keeps a small
 * frame. */
#if defined(__GNUC__)
#define CGRPC__COLD __attribute__((cold, noinline))
#else
#define CGRPC__COLD
#endif

/* What this library accepts, as sent in grpc-accept-encoding. */
#define CGRPC__ACCEPT_ENCODING "identity,deflate,gzip"

/* An encoding the peer does not support (grpc-encoding we cannot read). */
#define CGRPC__COMPRESS_UNKNOWN (-1)

/* The bit of |enc| in an accept set. */
#define CGRPC__COMPRESS_BIT(enc) (1u << (unsigned)(enc))

/* Nonzero when |enc| is a cgrpc_compression value. */
static inline int cgrpc__compress_valid(int enc) {
  return enc >= CGRPC_COMPRESS_DEFAULT && enc <= CGRPC_COMPRESS_DEFLATE;
}

/* For the default-compression setters of the options objects: 0 when
 * |enc| is valid, else CGRPC_ERR_INVALID_ARGUMENT after a log line naming
 * |func| through |log_cb| (or CGRPC_TRACE). */
int cgrpc__compress_check_option(int enc, cgrpc_log_cb log_cb, void *ud,
                                 const char *func);

/* Nonzero when |enc| compresses (gzip or deflate). */
static inline int cgrpc__compress_on(int enc) {
  return enc > CGRPC_COMPRESS_IDENTITY;
}

/* The encoding a grpc-encoding value names: CGRPC_COMPRESS_IDENTITY,
 * _GZIP, _DEFLATE, or CGRPC__COMPRESS_UNKNOWN. */
int cgrpc__compress_parse(const uint8_t *value, size_t len);

/* The set of encodings (CGRPC__COMPRESS_BIT) a grpc-accept-encoding value
 * lists: comma-separated names, optional spaces; unknown names are
 * skipped.  Identity is always in it. */
unsigned cgrpc__compress_parse_accept(const uint8_t *value, size_t len);

/* The encoding to send with when |want| was asked for and the peer accepts
 * |accepted|: |want| when it compresses and is accepted, else identity. */
static inline int cgrpc__compress_pick(int want, unsigned accepted) {
  return cgrpc__compress_on(want) && (accepted & CGRPC__COMPRESS_BIT(want))
             ? want
             : CGRPC_COMPRESS_IDENTITY;
}

/*
 * Compresses the framed message at |framed| (|framed_len| bytes: the 5-byte
 * prefix, then the payload) with |enc| (gzip or deflate) into a new framed
 * message with the compressed flag set.  The new buffer (free with
 * cgrpc__free()) has |headroom| spare bytes in front; its prefix starts at
 * buf + headroom, and *out_len is its framed length.  Returns NULL with
 * *err set to CGRPC_ERR_NOMEM, CGRPC_ERR_TOO_LARGE (the result would not
 * fit a 4 GiB prefix) or CGRPC_ERR_INVALID_ARGUMENT (|enc| does not
 * compress).  Thread safety: any thread.
 */
uint8_t *cgrpc__compress_framed(int enc, const uint8_t *framed,
                                size_t framed_len, size_t headroom,
                                size_t *out_len, int *err);

/*
 * Inflates the |len| payload bytes at |in| of a message compressed with
 * |enc| into a new buffer (free with cgrpc__free()) with |headroom| spare
 * bytes in front: the payload starts at *out + headroom and has *out_len
 * bytes.  At most |limit| bytes are accepted (-1: no limit but 4 GiB): the
 * output never grows past limit + 1 bytes, so a small input that would
 * inflate to gigabytes costs no more than the limit.  |in| must be exactly
 * one complete stream.
 *
 * Returns 0, or one of:
 *   CGRPC_ERR_TOO_LARGE  the payload inflates past |limit|; inflating
 *                        stopped after limit + 1 bytes (*out_len says so,
 *                        and *out is NULL).
 *   CGRPC_ERR_PROTO      not a valid stream: corrupt, truncated, or with
 *                        bytes after its end.
 *   CGRPC_ERR_NOMEM      out of memory.
 *   CGRPC_ERR_INVALID_ARGUMENT  |enc| does not compress.
 * Thread safety: any thread.
 */
int cgrpc__decompress(int enc, const uint8_t *in, size_t len, int64_t limit,
                      size_t headroom, uint8_t **out, size_t *out_len);

#endif /* CGRPC_CALL_COMPRESS_H */
