/* SPDX-License-Identifier: MIT */
#include "util/percent.h"

static const char hex_upper[16] = "0123456789ABCDEF";

/* Escapes what the gRPC spec asks for (outside 0x20-0x7e, and '%'), plus a
 * space at either end: HTTP/2 (RFC 9113) forbids field values that start or
 * end with whitespace, and strict peers reset the stream over one. */
static int needs_escape(const uint8_t *src, size_t n, size_t i) {
  uint8_t c = src[i];
  if (c == ' ')
    return i == 0 || i == n - 1;
  return c < 0x20 || c > 0x7e || c == '%';
}

/* Returns the value of hex digit |c|, or -1. */
static int hex_value(uint8_t c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  return -1;
}

size_t cgrpc__percent_encoded_len(const uint8_t *src, size_t n) {
  size_t len = n, i;
  for (i = 0; i < n; ++i) {
    if (needs_escape(src, n, i)) {
      len += 2;
    }
  }
  return len;
}

size_t cgrpc__percent_encode(char *dst, const uint8_t *src, size_t n) {
  char *p = dst;
  size_t i;
  for (i = 0; i < n; ++i) {
    uint8_t c = src[i];
    if (needs_escape(src, n, i)) {
      p[0] = '%';
      p[1] = hex_upper[c >> 4];
      p[2] = hex_upper[c & 0xf];
      p += 3;
    } else {
      *p++ = (char)c;
    }
  }
  *p = '\0';
  return (size_t)(p - dst);
}

size_t cgrpc__percent_decode(uint8_t *dst, const char *src, size_t n) {
  const uint8_t *s = (const uint8_t *)src;
  size_t i = 0, o = 0;
  while (i < n) {
    if (s[i] == '%' && n - i >= 3) {
      int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        dst[o++] = (uint8_t)(hi << 4 | lo);
        i += 3;
        continue;
      }
    }
    dst[o++] = s[i++];
  }
  dst[o] = '\0';
  return o;
}
