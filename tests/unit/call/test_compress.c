/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <zlib.h>

#include "call/compress.h"
#include "call/deframer.h"
#include "cgrpc/error.h"

#define HEADROOM 24

/* A framed message (prefix with flag 0) around |n| bytes of |p|. */
static uint8_t *frame(const uint8_t *p, size_t n) {
  uint8_t *f = malloc(CGRPC__FRAME_PREFIX_LEN + n + 1);
  assert_non_null(f);
  cgrpc__frame_prefix(f, 0, (uint32_t)n);
  if (n)
    memcpy(f + CGRPC__FRAME_PREFIX_LEN, p, n);
  return f;
}

/* |n| bytes: a pattern (compressible) or xorshift noise (not). */
static uint8_t *payload(size_t n, int noise) {
  uint8_t *p = malloc(n + 1);
  uint32_t x = 2463534242u;
  size_t i;
  assert_non_null(p);
  for (i = 0; i < n; i++) {
    if (noise) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      p[i] = (uint8_t)x;
    } else {
      p[i] = (uint8_t)("hello, world "[i % 13]);
    }
  }
  return p;
}

static uint32_t prefix_len(const uint8_t *p) {
  return (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 |
         p[4];
}

/* Compresses |n| bytes with |enc| through cgrpc__compress_framed(), checks
 * the framing and inflates it back with cgrpc__decompress(). */
static void roundtrip(int enc, size_t n, int noise) {
  uint8_t *p = payload(n, noise), *f = frame(p, n), *c, *out;
  size_t clen = 0, out_len = 0;
  int err = 0;
  c = cgrpc__compress_framed(enc, f, CGRPC__FRAME_PREFIX_LEN + n, HEADROOM,
                             &clen, &err);
  assert_non_null(c);
  assert_true(clen >= CGRPC__FRAME_PREFIX_LEN);
  assert_int_equal(c[HEADROOM], 1); /* the compressed flag */
  assert_int_equal(prefix_len(c + HEADROOM), clen - CGRPC__FRAME_PREFIX_LEN);
  if (enc == CGRPC_COMPRESS_GZIP) {
    assert_int_equal(c[HEADROOM + 5], 0x1f); /* RFC 1952 magic */
    assert_int_equal(c[HEADROOM + 6], 0x8b);
  } else {
    /* RFC 1950: CM 8 (deflate), and the header checksum. */
    assert_int_equal(c[HEADROOM + 5] & 0x0f, 8);
    assert_int_equal(((c[HEADROOM + 5] << 8) | c[HEADROOM + 6]) % 31, 0);
  }
  if (!noise && n > 1000)
    assert_true(clen < n / 10);
  assert_int_equal(cgrpc__decompress(enc, c + HEADROOM + 5, clen - 5,
                                     (int64_t)n, HEADROOM, &out, &out_len),
                   0);
  assert_int_equal(out_len, n);
  if (n)
    assert_memory_equal(out + HEADROOM, p, n);
  free(out);
  free(c);
  free(f);
  free(p);
}

static void test_compress_roundtrip_gzip(void **state) {
  (void)state;
  roundtrip(CGRPC_COMPRESS_GZIP, 0, 0);
  roundtrip(CGRPC_COMPRESS_GZIP, 1, 0);
  roundtrip(CGRPC_COMPRESS_GZIP, 100, 1);
  roundtrip(CGRPC_COMPRESS_GZIP, 314159, 0);
  roundtrip(CGRPC_COMPRESS_GZIP, 200000, 1);
}

/* A message compresses with a window no larger than it needs: zlib
 * allocates about four times the window for each message, so a small
 * message at the 32 KiB default costs 256 KiB of zeroed memory (and most
 * of the time it takes).  The window keeps zlib's 262 bytes of lookahead
 * past the message, so that every match in it can still be found.  The
 * zlib header's CINFO (RFC 1950) says which window was used:
 * log2(window) - 8. */
static void test_compress_window_fits_message(void **state) {
  static const struct {
    size_t n;
    int cinfo;
  } cases[] = {{0, 1},    {100, 1},  {250, 1},   {251, 2},    {512, 2},
               {3834, 4}, {3835, 5}, {32768, 7}, {1 << 20, 7}};
  size_t i;
  (void)state;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint8_t *p = payload(cases[i].n, 0), *f = frame(p, cases[i].n), *c;
    size_t clen = 0;
    int err = 0;
    c = cgrpc__compress_framed(CGRPC_COMPRESS_DEFLATE, f,
                               CGRPC__FRAME_PREFIX_LEN + cases[i].n, 0, &clen,
                               &err);
    assert_non_null(c);
    if ((c[5] >> 4) != cases[i].cinfo)
      fail_msg("%zu bytes: CINFO %d, expected %d", cases[i].n, c[5] >> 4,
               cases[i].cinfo);
    free(c);
    free(f);
    free(p);
    /* and the round trip at the window's edges, both ways */
    roundtrip(CGRPC_COMPRESS_DEFLATE, cases[i].n, 0);
    roundtrip(CGRPC_COMPRESS_GZIP, cases[i].n, 1);
  }
}

static void test_compress_roundtrip_deflate(void **state) {
  (void)state;
  roundtrip(CGRPC_COMPRESS_DEFLATE, 0, 0);
  roundtrip(CGRPC_COMPRESS_DEFLATE, 1, 1);
  roundtrip(CGRPC_COMPRESS_DEFLATE, 100, 0);
  roundtrip(CGRPC_COMPRESS_DEFLATE, 314159, 0);
  roundtrip(CGRPC_COMPRESS_DEFLATE, 200000, 1);
}

/* zlib's own encoders with gRPC's parameters: what other implementations
 * send.  |bits| 15 + 16 is gzip, 15 zlib-wrapped deflate. */
static uint8_t *zlib_compress(const uint8_t *p, size_t n, int bits,
                              size_t *out_len) {
  z_stream zs;
  uLong bound;
  uint8_t *out;
  memset(&zs, 0, sizeof zs);
  assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, bits, 8,
                                Z_DEFAULT_STRATEGY),
                   Z_OK);
  bound = deflateBound(&zs, (uLong)n);
  out = malloc(bound);
  assert_non_null(out);
  zs.next_in = (Bytef *)(uintptr_t)p;
  zs.avail_in = (uInt)n;
  zs.next_out = out;
  zs.avail_out = (uInt)bound;
  assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
  *out_len = zs.total_out;
  deflateEnd(&zs);
  return out;
}

static void test_compress_reads_zlib(void **state) {
  uint8_t *p = payload(50000, 0), *z, *out;
  size_t zlen, out_len;
  (void)state;
  z = zlib_compress(p, 50000, 15 + 16, &zlen);
  assert_int_equal(
      cgrpc__decompress(CGRPC_COMPRESS_GZIP, z, zlen, -1, 0, &out, &out_len),
      0);
  assert_int_equal(out_len, 50000);
  assert_memory_equal(out, p, 50000);
  free(out);
  free(z);
  z = zlib_compress(p, 50000, 15, &zlen);
  assert_int_equal(cgrpc__decompress(CGRPC_COMPRESS_DEFLATE, z, zlen, -1, 0,
                                     &out, &out_len),
                   0);
  assert_int_equal(out_len, 50000);
  assert_memory_equal(out, p, 50000);
  free(out);
  free(z);
  free(p);
}

static void expect_proto(int enc, const uint8_t *in, size_t len) {
  uint8_t *out = (uint8_t *)1;
  size_t out_len;
  assert_int_equal(cgrpc__decompress(enc, in, len, -1, 8, &out, &out_len),
                   CGRPC_ERR_PROTO);
  assert_null(out);
}

static void test_compress_corrupt(void **state) {
  uint8_t *p = payload(20000, 1), *g, *d, *bad;
  size_t glen, dlen, i;
  (void)state;
  g = zlib_compress(p, 20000, 15 + 16, &glen);
  d = zlib_compress(p, 20000, 15, &dlen);
  /* Nothing, and a few bytes of nothing in particular. */
  expect_proto(CGRPC_COMPRESS_GZIP, (const uint8_t *)"", 0);
  expect_proto(CGRPC_COMPRESS_DEFLATE, (const uint8_t *)"", 0);
  expect_proto(CGRPC_COMPRESS_GZIP, (const uint8_t *)"not gzip", 8);
  expect_proto(CGRPC_COMPRESS_DEFLATE, (const uint8_t *)"not zlib", 8);
  /* The other wrapper. */
  expect_proto(CGRPC_COMPRESS_DEFLATE, g, glen);
  expect_proto(CGRPC_COMPRESS_GZIP, d, dlen);
  /* Truncated anywhere. */
  for (i = 0; i < glen; i += glen / 7 + 1)
    expect_proto(CGRPC_COMPRESS_GZIP, g, i);
  expect_proto(CGRPC_COMPRESS_GZIP, g, glen - 1);
  expect_proto(CGRPC_COMPRESS_DEFLATE, d, dlen - 1);
  /* A byte after the end of the stream. */
  bad = malloc(glen + 1);
  assert_non_null(bad);
  memcpy(bad, g, glen);
  bad[glen] = 0;
  expect_proto(CGRPC_COMPRESS_GZIP, bad, glen + 1);
  /* A flipped byte in the body or in the trailer's CRC-32 / ISIZE. */
  memcpy(bad, g, glen);
  bad[glen / 2] ^= 0x55;
  expect_proto(CGRPC_COMPRESS_GZIP, bad, glen);
  memcpy(bad, g, glen);
  bad[glen - 6] ^= 0x01;
  expect_proto(CGRPC_COMPRESS_GZIP, bad, glen);
  memcpy(bad, d, dlen);
  bad[dlen - 1] ^= 0x01; /* the Adler-32 */
  expect_proto(CGRPC_COMPRESS_DEFLATE, bad, dlen);
  free(bad);
  free(g);
  free(d);
  free(p);
}

/* Inflating stops one byte past the limit: a small input that would
 * inflate to 32 MiB costs 1 MiB + 1. */
static void test_compress_bomb_limit(void **state) {
  size_t big = 32u << 20, limit = 1u << 20, zlen, out_len;
  uint8_t *zeros = calloc(big, 1), *z, *out = (uint8_t *)1;
  (void)state;
  assert_non_null(zeros);
  z = zlib_compress(zeros, big, 15 + 16, &zlen);
  free(zeros);
  assert_true(zlen < 64 * 1024); /* the bomb is small */
  assert_int_equal(cgrpc__decompress(CGRPC_COMPRESS_GZIP, z, zlen,
                                     (int64_t)limit, 32, &out, &out_len),
                   CGRPC_ERR_TOO_LARGE);
  assert_null(out);
  assert_int_equal(out_len, limit + 1);
  /* Limit 0 takes only an empty message. */
  assert_int_equal(
      cgrpc__decompress(CGRPC_COMPRESS_GZIP, z, zlen, 0, 0, &out, &out_len),
      CGRPC_ERR_TOO_LARGE);
  assert_int_equal(out_len, 1);
  free(z);
}

/* The limit is inclusive: exactly |limit| bytes pass, one more does not. */
static void test_compress_limit_exact(void **state) {
  uint8_t *p = payload(4097, 0), *z, *out;
  size_t zlen, out_len;
  (void)state;
  z = zlib_compress(p, 4096, 15, &zlen);
  assert_int_equal(cgrpc__decompress(CGRPC_COMPRESS_DEFLATE, z, zlen, 4096, 0,
                                     &out, &out_len),
                   0);
  assert_int_equal(out_len, 4096);
  free(out);
  assert_int_equal(cgrpc__decompress(CGRPC_COMPRESS_DEFLATE, z, zlen, 4095, 0,
                                     &out, &out_len),
                   CGRPC_ERR_TOO_LARGE);
  free(z);
  z = zlib_compress(p, 0, 15 + 16, &zlen);
  assert_int_equal(
      cgrpc__decompress(CGRPC_COMPRESS_GZIP, z, zlen, 0, 4, &out, &out_len),
      0);
  assert_int_equal(out_len, 0);
  free(out);
  free(z);
  free(p);
}

static void test_compress_identity_refused(void **state) {
  uint8_t f[5] = {0}, *out;
  size_t len;
  int err = 0;
  (void)state;
  assert_null(cgrpc__compress_framed(CGRPC_COMPRESS_IDENTITY, f, 5, 0, &len,
                                     &err));
  assert_int_equal(err, CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(
      cgrpc__decompress(CGRPC_COMPRESS_DEFAULT, f, 5, -1, 0, &out, &len),
      CGRPC_ERR_INVALID_ARGUMENT);
}

#define PARSE(s) cgrpc__compress_parse((const uint8_t *)(s), strlen(s))
#define ACCEPT(s) cgrpc__compress_parse_accept((const uint8_t *)(s), strlen(s))
#define BIT CGRPC__COMPRESS_BIT

static void test_compress_parse(void **state) {
  (void)state;
  assert_int_equal(PARSE("gzip"), CGRPC_COMPRESS_GZIP);
  assert_int_equal(PARSE("deflate"), CGRPC_COMPRESS_DEFLATE);
  assert_int_equal(PARSE("identity"), CGRPC_COMPRESS_IDENTITY);
  assert_int_equal(PARSE("snappy"), CGRPC__COMPRESS_UNKNOWN);
  assert_int_equal(PARSE("GZIP"), CGRPC__COMPRESS_UNKNOWN);
  assert_int_equal(PARSE(""), CGRPC__COMPRESS_UNKNOWN);
  assert_int_equal(PARSE("gzip "), CGRPC__COMPRESS_UNKNOWN);
}

static void test_compress_parse_accept(void **state) {
  unsigned all = BIT(CGRPC_COMPRESS_IDENTITY) | BIT(CGRPC_COMPRESS_GZIP) |
                 BIT(CGRPC_COMPRESS_DEFLATE);
  (void)state;
  assert_int_equal(ACCEPT(CGRPC__ACCEPT_ENCODING), all);
  assert_int_equal(ACCEPT("identity, deflate, gzip"), all);
  assert_int_equal(ACCEPT(" gzip ,\tdeflate\t"), all);
  assert_int_equal(ACCEPT("gzip"),
                   BIT(CGRPC_COMPRESS_IDENTITY) | BIT(CGRPC_COMPRESS_GZIP));
  assert_int_equal(ACCEPT("identity"), BIT(CGRPC_COMPRESS_IDENTITY));
  assert_int_equal(ACCEPT(""), BIT(CGRPC_COMPRESS_IDENTITY));
  assert_int_equal(ACCEPT(",,snappy,zstd,"), BIT(CGRPC_COMPRESS_IDENTITY));
  assert_int_equal(ACCEPT("zstd,deflate"),
                   BIT(CGRPC_COMPRESS_IDENTITY) | BIT(CGRPC_COMPRESS_DEFLATE));
  assert_int_equal(ACCEPT("gzipx,xgzip"), BIT(CGRPC_COMPRESS_IDENTITY));
}

static void test_compress_pick(void **state) {
  unsigned gz = BIT(CGRPC_COMPRESS_IDENTITY) | BIT(CGRPC_COMPRESS_GZIP);
  (void)state;
  assert_int_equal(cgrpc__compress_pick(CGRPC_COMPRESS_GZIP, gz),
                   CGRPC_COMPRESS_GZIP);
  assert_int_equal(cgrpc__compress_pick(CGRPC_COMPRESS_DEFLATE, gz),
                   CGRPC_COMPRESS_IDENTITY);
  assert_int_equal(cgrpc__compress_pick(CGRPC_COMPRESS_GZIP, 0),
                   CGRPC_COMPRESS_IDENTITY);
  assert_int_equal(cgrpc__compress_pick(CGRPC_COMPRESS_DEFAULT, gz),
                   CGRPC_COMPRESS_IDENTITY);
}

static void test_compress_name(void **state) {
  (void)state;
  assert_string_equal(cgrpc_compression_name(CGRPC_COMPRESS_DEFAULT),
                      "identity");
  assert_string_equal(cgrpc_compression_name(CGRPC_COMPRESS_IDENTITY),
                      "identity");
  assert_string_equal(cgrpc_compression_name(CGRPC_COMPRESS_GZIP), "gzip");
  assert_string_equal(cgrpc_compression_name(CGRPC_COMPRESS_DEFLATE),
                      "deflate");
  assert_null(cgrpc_compression_name(4));
  assert_null(cgrpc_compression_name(-1));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_compress_roundtrip_gzip),
      cmocka_unit_test(test_compress_roundtrip_deflate),
      cmocka_unit_test(test_compress_window_fits_message),
      cmocka_unit_test(test_compress_reads_zlib),
      cmocka_unit_test(test_compress_corrupt),
      cmocka_unit_test(test_compress_bomb_limit),
      cmocka_unit_test(test_compress_limit_exact),
      cmocka_unit_test(test_compress_identity_refused),
      cmocka_unit_test(test_compress_parse),
      cmocka_unit_test(test_compress_parse_accept),
      cmocka_unit_test(test_compress_pick),
      cmocka_unit_test(test_compress_name),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
