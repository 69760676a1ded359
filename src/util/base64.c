/* SPDX-License-Identifier: MIT */
#include "util/base64.h"

static const char enc_table[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Maps a character to its 6-bit value, or 0xff for anything else ('='
 * included: padding is stripped before the table is consulted). */
#define B64_BAD 0xff
static const uint8_t dec_table[256] = {
#define R16                                                                    \
  B64_BAD, B64_BAD, B64_BAD, B64_BAD, B64_BAD, B64_BAD, B64_BAD, B64_BAD,      \
      B64_BAD, B64_BAD, B64_BAD, B64_BAD, B64_BAD, B64_BAD, B64_BAD, B64_BAD
    R16, R16,
    /* 0x20 - 0x2f: '+' = 62, '/' = 63 */
    B64_BAD, B64_BAD, B64_BAD, B64_BAD, B64_BAD, B64_BAD, B64_BAD, B64_BAD,
    B64_BAD, B64_BAD, B64_BAD, 62, B64_BAD, B64_BAD, B64_BAD, 63,
    /* 0x30 - 0x3f: digits */
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, B64_BAD, B64_BAD, B64_BAD, B64_BAD,
    B64_BAD, B64_BAD,
    /* 0x40 - 0x5f: upper case */
    B64_BAD, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
    19, 20, 21, 22, 23, 24, 25, B64_BAD, B64_BAD, B64_BAD, B64_BAD, B64_BAD,
    /* 0x60 - 0x7f: lower case */
    B64_BAD, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42,
    43, 44, 45, 46, 47, 48, 49, 50, 51, B64_BAD, B64_BAD, B64_BAD, B64_BAD,
    B64_BAD,
    /* 0x80 - 0xff */
    R16, R16, R16, R16, R16, R16, R16, R16
#undef R16
};

size_t cgrpc__base64_encoded_len(size_t n) {
  return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

size_t cgrpc__base64_encode(char *dst, const uint8_t *src, size_t n) {
  char *p = dst;
  size_t i = 0;

  for (; n - i >= 3; i += 3) {
    uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 |
                 (uint32_t)src[i + 2];
    p[0] = enc_table[v >> 18];
    p[1] = enc_table[(v >> 12) & 0x3f];
    p[2] = enc_table[(v >> 6) & 0x3f];
    p[3] = enc_table[v & 0x3f];
    p += 4;
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)src[i] << 16;
    p[0] = enc_table[v >> 18];
    p[1] = enc_table[(v >> 12) & 0x3f];
    p += 2;
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8;
    p[0] = enc_table[v >> 18];
    p[1] = enc_table[(v >> 12) & 0x3f];
    p[2] = enc_table[(v >> 6) & 0x3f];
    p += 3;
  }
  *p = '\0';
  return (size_t)(p - dst);
}

size_t cgrpc__base64_decoded_max(size_t n) { return n / 4 * 3 + 2; }

int cgrpc__base64_decode(uint8_t *dst, size_t *dst_len, const char *src,
                         size_t n) {
  const uint8_t *s = (const uint8_t *)src;
  uint8_t *p = dst;
  size_t i, rem;

  /* Padding is legal only when the input is whole 4-character groups, and
   * then only as the last one or two characters. */
  if (n > 0 && s[n - 1] == '=') {
    if (n % 4 != 0) {
      return -1;
    }
    --n;
    if (s[n - 1] == '=') {
      --n;
    }
    /* What is left is "...xx" or "...xxx"; a third '=' ("x===") stays in
     * the data and fails the alphabet check below. */
  }
  rem = n % 4;
  if (rem == 1) {
    return -1;
  }

  for (i = 0; n - i >= 4; i += 4) {
    uint8_t a = dec_table[s[i]], b = dec_table[s[i + 1]],
            c = dec_table[s[i + 2]], d = dec_table[s[i + 3]];
    uint32_t v;
    if ((a | b | c | d) & 0xc0) {
      return -1;
    }
    v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | d;
    p[0] = (uint8_t)(v >> 16);
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)v;
    p += 3;
  }
  if (rem >= 2) {
    uint8_t a = dec_table[s[i]], b = dec_table[s[i + 1]];
    uint8_t c = rem == 3 ? dec_table[s[i + 2]] : 0;
    uint32_t v;
    if ((a | b | c) & 0xc0) {
      return -1;
    }
    v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
    *p++ = (uint8_t)(v >> 16);
    if (rem == 3) {
      *p++ = (uint8_t)(v >> 8);
    }
  }
  *dst_len = (size_t)(p - dst);
  return 0;
}
