/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "util/base64.h"

/* Decodes the NUL-terminated |in|; returns the decoder's result and the
 * output in |out| / |*out_len|. */
static int decode_str(const char *in, uint8_t *out, size_t *out_len) {
  return cgrpc__base64_decode(out, out_len, in, strlen(in));
}

static void test_base64_rfc4648_vectors(void **state) {
  /* RFC 4648 section 10, without padding (gRPC emits unpadded). */
  static const char *const plain[] = {"",     "f",     "fo",    "foo",
                                      "foob", "fooba", "foobar"};
  static const char *const unpadded[] = {"",       "Zg",      "Zm8",     "Zm9v",
                                         "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
  char buf[64];
  size_t i;
  (void)state;
  for (i = 0; i < sizeof(plain) / sizeof(plain[0]); ++i) {
    size_t n = strlen(plain[i]);
    memset(buf, 'X', sizeof(buf));
    assert_int_equal(cgrpc__base64_encoded_len(n), strlen(unpadded[i]));
    assert_int_equal(cgrpc__base64_encode(buf, (const uint8_t *)plain[i], n),
                     strlen(unpadded[i]));
    assert_string_equal(buf, unpadded[i]);
  }
}

static void test_base64_decode_padded_and_unpadded(void **state) {
  static const char *const plain[] = {"",     "f",     "fo",    "foo",
                                      "foob", "fooba", "foobar"};
  static const char *const padded[] = {
      "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  static const char *const unpadded[] = {"",       "Zg",      "Zm8",     "Zm9v",
                                         "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
  uint8_t out[64];
  size_t i, len;
  (void)state;
  for (i = 0; i < sizeof(plain) / sizeof(plain[0]); ++i) {
    size_t n = strlen(plain[i]);
    assert_true(cgrpc__base64_decoded_max(strlen(padded[i])) >= n);
    assert_true(cgrpc__base64_decoded_max(strlen(unpadded[i])) >= n);
    len = 999;
    assert_int_equal(decode_str(padded[i], out, &len), 0);
    assert_int_equal(len, n);
    assert_memory_equal(out, plain[i], n);
    len = 999;
    assert_int_equal(decode_str(unpadded[i], out, &len), 0);
    assert_int_equal(len, n);
    assert_memory_equal(out, plain[i], n);
  }
}

static void test_base64_binary_round_trip(void **state) {
  uint8_t src[300], out[300 + 2];
  char enc[401];
  size_t n, len, elen;
  (void)state;
  for (n = 0; n < sizeof(src); ++n) {
    src[n] = (uint8_t)(n * 37 + 11);
  }
  /* Every length mod 3, and every byte value 0..255 at least once. */
  for (n = 0; n <= sizeof(src); ++n) {
    elen = cgrpc__base64_encode(enc, src, n);
    assert_int_equal(elen, cgrpc__base64_encoded_len(n));
    assert_int_equal(enc[elen], '\0');
    assert_null(strchr(enc, '='));
    assert_true(cgrpc__base64_decoded_max(elen) <= sizeof(out));
    assert_int_equal(cgrpc__base64_decode(out, &len, enc, elen), 0);
    assert_int_equal(len, n);
    if (n > 0) {
      assert_memory_equal(out, src, n);
    }
  }
}

static void test_base64_all_alphabet(void **state) {
  /* 0x00 0x10 0x83 ... covers every 6-bit value. */
  static const char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  uint8_t out[64];
  char enc[128];
  size_t len;
  (void)state;
  assert_int_equal(decode_str(alphabet, out, &len), 0);
  assert_int_equal(len, 48);
  cgrpc__base64_encode(enc, out, len);
  assert_string_equal(enc, alphabet);
  /* Bytes 0xfb 0xff give "+/8" unpadded; the URL-safe alphabet is refused. */
  assert_int_equal(decode_str("-_8", out, &len), -1);
  assert_int_equal(decode_str("+/8", out, &len), 0);
  assert_int_equal(len, 2);
  assert_int_equal(out[0], 0xfb);
  assert_int_equal(out[1], 0xff);
}

static void test_base64_every_byte_value(void **state) {
  static const char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  uint8_t out[8];
  char in[4];
  size_t len;
  int c;
  (void)state;
  /* "AA?A" decodes only when ? is in the alphabet; checks the whole table. */
  for (c = 0; c < 256; ++c) {
    int valid = c != 0 && strchr(alphabet, c) != NULL;
    in[0] = 'A';
    in[1] = 'A';
    in[2] = (char)c;
    in[3] = 'A';
    assert_int_equal(cgrpc__base64_decode(out, &len, in, 4), valid ? 0 : -1);
    if (valid) {
      assert_int_equal(len, 3);
      assert_int_equal((out[1] & 0x0f) << 2 | out[2] >> 6,
                       (int)(strchr(alphabet, c) - alphabet));
    }
  }
}

static void test_base64_decode_invalid(void **state) {
  static const char *const bad[] = {
      "Z",                          /* len % 4 == 1 */
      "Zm9vY",                      /* len % 4 == 1 */
      "Zg=",                        /* padded but not a multiple of 4 */
      "Zg===",                      /* too much padding */
      "Z===",                       /* three '=' */
      "====",                       /* only padding */
      "=",        "==", "Zg==Zg==", /* padding in the middle */
      "Z=g=",                       /* '=' not at the end */
      "Zm9v=",                      /* '=' after a full group */
      "Zm 9v",                      /* whitespace */
      "Zm9v\n",                     /* newline */
      "Zm9*",                       /* bad char in a full group */
      "Zm*",                        /* bad char in the tail */
      "Zm9vYm*=",                   /* bad char before padding */
      "\x80\x81",                   /* high bytes */
  };
  uint8_t out[64];
  size_t i, len = 12345;
  (void)state;
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
    assert_int_equal(decode_str(bad[i], out, &len), -1);
  }
  /* An embedded NUL is invalid too, and |*dst_len| is untouched. */
  assert_int_equal(cgrpc__base64_decode(out, &len, "Zm\0v", 4), -1);
  assert_int_equal(len, 12345);
}

static void test_base64_decode_sloppy_trailing_bits(void **state) {
  /* "Zh" has non-zero bits after 'f'; tolerated like most decoders do. */
  uint8_t out[4];
  size_t len;
  (void)state;
  assert_int_equal(decode_str("Zh", out, &len), 0);
  assert_int_equal(len, 1);
  assert_int_equal(out[0], 'f');
}

static void test_base64_lengths(void **state) {
  (void)state;
  assert_int_equal(cgrpc__base64_encoded_len(0), 0);
  assert_int_equal(cgrpc__base64_encoded_len(1), 2);
  assert_int_equal(cgrpc__base64_encoded_len(2), 3);
  assert_int_equal(cgrpc__base64_encoded_len(3), 4);
  assert_int_equal(cgrpc__base64_encoded_len(4), 6);
  assert_true(cgrpc__base64_decoded_max(3) >= 2);
  assert_true(cgrpc__base64_decoded_max(4) >= 3);
}

/* Random input never crashes the decoder (run under ASan), and whatever it
 * accepts re-encodes to the same text minus padding. */
static void test_base64_decode_random_input(void **state) {
  static const char pick[] = "AZaz09+/=*- \n";
  char in[40], enc[64];
  uint8_t out[40];
  uint32_t seed = 7;
  size_t len, n, i;
  int round;
  (void)state;
  for (round = 0; round < 20000; ++round) {
    seed = seed * 1103515245u + 12345u;
    n = (seed >> 8) % sizeof(in);
    for (i = 0; i < n; ++i) {
      seed = seed * 1103515245u + 12345u;
      in[i] = (seed >> 8) % 8 ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrst"
                                "uvwxyz0123456789+/"[(seed >> 12) % 64]
                              : pick[(seed >> 12) % (sizeof(pick) - 1)];
    }
    assert_true(cgrpc__base64_decoded_max(n) <= sizeof(out));
    if (cgrpc__base64_decode(out, &len, in, n) == 0) {
      size_t elen = cgrpc__base64_encode(enc, out, len);
      size_t unpadded = n;
      while (unpadded > 0 && in[unpadded - 1] == '=') {
        --unpadded;
      }
      assert_int_equal(elen, unpadded);
      /* Trailing bits may differ in the last character only. */
      if (elen > 1) {
        assert_memory_equal(enc, in, elen - 1);
      }
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_base64_rfc4648_vectors),
      cmocka_unit_test(test_base64_decode_padded_and_unpadded),
      cmocka_unit_test(test_base64_binary_round_trip),
      cmocka_unit_test(test_base64_all_alphabet),
      cmocka_unit_test(test_base64_every_byte_value),
      cmocka_unit_test(test_base64_decode_invalid),
      cmocka_unit_test(test_base64_decode_random_input),
      cmocka_unit_test(test_base64_decode_sloppy_trailing_bits),
      cmocka_unit_test(test_base64_lengths),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
