/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target for the small text codecs a peer controls: base64 (-bin
 * metadata), percent-encoding (grpc-message), grpc-timeout, grpc-status,
 * received metadata (cgrpc__wire_add_metadata) and the public metadata
 * array setters.
 *
 * Input: byte 0 is where the input splits into a name and a value for the
 * metadata functions; the whole input (from byte 1) is also run through
 * each codec.  Every buffer handed to the library has exactly the size its
 * contract asks for, so ASan sees any overrun.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "call/metadata.h"
#include "call/wire.h"
#include "cgrpc/error.h"
#include "util/base64.h"
#include "util/percent.h"
#include "util/timeout.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                               \
  do {                                                                         \
    if (!(x))                                                                  \
      abort();                                                                 \
  } while (0)

static uint8_t *dup_exact(const uint8_t *p, size_t n) {
  uint8_t *d = malloc(n ? n : 1);
  if (d && n)
    memcpy(d, p, n);
  return d;
}

/* Encodes |n| bytes and decodes them back. */
static void base64_round_trip(const uint8_t *p, size_t n) {
  size_t elen = cgrpc__base64_encoded_len(n), dlen = 0;
  char *enc = malloc(elen + 1);
  uint8_t *dec;
  if (!enc)
    return;
  CHECK(cgrpc__base64_encode(enc, p, n) == elen);
  CHECK(enc[elen] == '\0' && strlen(enc) == elen);
  dec = malloc(cgrpc__base64_decoded_max(elen));
  if (dec) {
    CHECK(cgrpc__base64_decode(dec, &dlen, enc, elen) == 0);
    CHECK(dlen == n && (n == 0 || memcmp(dec, p, n) == 0));
  }
  free(dec);
  free(enc);
}

static void fuzz_base64(const uint8_t *p, size_t n) {
  size_t max = cgrpc__base64_decoded_max(n), len = 12345;
  uint8_t *dst = malloc(max);
  char *src = (char *)dup_exact(p, n);
  if (dst && src && cgrpc__base64_decode(dst, &len, src, n) == 0) {
    CHECK(len <= max);
    CHECK(len <= n / 4 * 3 + 2);
    /* Whatever decoded must survive our own encode/decode. */
    base64_round_trip(dst, len);
  } else if (dst && src) {
    CHECK(len == 12345); /* untouched on failure */
  }
  free(src);
  free(dst);
  base64_round_trip(p, n);
}

static void fuzz_percent(const uint8_t *p, size_t n) {
  size_t elen = cgrpc__percent_encoded_len(p, n), dlen, i;
  char *enc = malloc(elen + 1);
  uint8_t *dec;
  char *inplace;
  CHECK(elen <= 3 * n);
  if (enc) {
    CHECK(cgrpc__percent_encode(enc, p, n) == elen);
    for (i = 0; i < elen; i++) /* printable, no edge spaces */
      CHECK(enc[i] >= 0x20 && enc[i] <= 0x7e);
    CHECK(elen == 0 || (enc[0] != ' ' && enc[elen - 1] != ' '));
    dec = malloc(elen + 1);
    if (dec) {
      CHECK(cgrpc__percent_decode(dec, enc, elen) == n);
      CHECK(n == 0 || memcmp(dec, p, n) == 0);
      CHECK(dec[n] == '\0');
    }
    free(dec);
  }
  free(enc);
  /* Arbitrary input, into a separate buffer and in place. */
  dec = malloc(n + 1);
  inplace = malloc(n + 1);
  if (dec && inplace) {
    dlen = cgrpc__percent_decode(dec, (const char *)p, n);
    CHECK(dlen <= n && dec[dlen] == '\0');
    if (n)
      memcpy(inplace, p, n);
    CHECK(cgrpc__percent_decode((uint8_t *)inplace, inplace, n) == dlen);
    CHECK(dlen == 0 || memcmp(inplace, dec, dlen) == 0);
  }
  free(inplace);
  free(dec);
  dec = (uint8_t *)cgrpc__wire_decode_message(p, n);
  free(dec);
}

static void fuzz_timeout(const uint8_t *p, size_t n) {
  char *s = (char *)dup_exact(p, n), buf[CGRPC__TIMEOUT_BUFLEN];
  int64_t ns = -7, back = -7;
  size_t len;
  if (!s)
    return;
  if (cgrpc__timeout_parse(s, n, &ns) == 0) {
    CHECK(n >= 2 && n <= 9 && ns >= 0);
    len = cgrpc__timeout_format(buf, ns);
    CHECK(len >= 2 && len <= 9 && strlen(buf) == len);
    CHECK(cgrpc__timeout_parse(buf, len, &back) == 0);
    CHECK(back >= ns); /* formatting rounds up, never down */
  } else {
    CHECK(ns == -7);
  }
  free(s);
  /* Format any int64 the input spells, then parse it back. */
  if (n >= 8) {
    int64_t v;
    memcpy(&v, p, sizeof v);
    len = cgrpc__timeout_format(buf, v);
    CHECK(len >= 2 && len <= 9);
    CHECK(cgrpc__timeout_parse(buf, len, &back) == 0);
    CHECK(back >= (v > 0 ? v : 1));
  }
}

static void fuzz_status(const uint8_t *p, size_t n) {
  uint8_t *v = dup_exact(p, n);
  int code = -1;
  if (!v)
    return;
  if (cgrpc__wire_parse_status(v, n, &code) == 0)
    CHECK(n >= 1 && n <= 9 && code >= 0);
  (void)cgrpc__wire_content_type_ok(v, n);
  (void)cgrpc__wire_header_reserved(v, n);
  if (n >= 4) {
    uint32_t x;
    memcpy(&x, v, 4);
    CHECK((unsigned)cgrpc__wire_rst_to_status(x) <= 16);
    CHECK((unsigned)cgrpc__wire_http_to_status((int)x) <= 16);
  }
  free(v);
}

/* A received header: name and value are arbitrary bytes. */
static void fuzz_wire_metadata(const uint8_t *name, size_t nlen,
                               const uint8_t *value, size_t vlen) {
  cgrpc_metadata_array *md = NULL;
  uint8_t *n = dup_exact(name, nlen), *v = dup_exact(value, vlen);
  int rv;
  if (n && v && cgrpc_metadata_array_new(&md) == 0) {
    const char *key;
    const uint8_t *val;
    size_t len;
    rv = cgrpc__wire_add_metadata(md, n, nlen, v, vlen);
    CHECK(rv == 0 || rv == CGRPC_ERR_PROTO || rv == CGRPC_ERR_NOMEM);
    if (rv == 0) {
      CHECK(cgrpc_metadata_array_count(md) == 1);
      CHECK(cgrpc_metadata_array_at(md, 0, &key, &val, &len) == 0);
      CHECK(val[len] == '\0');
      CHECK(nlen == 0 || memcmp(key, n, nlen) == 0);
      if (!cgrpc__md_key_is_bin((const char *)n, nlen))
        CHECK(len == vlen && (vlen == 0 || memcmp(val, v, vlen) == 0));
    } else {
      CHECK(rv != CGRPC_ERR_PROTO ||
            cgrpc__md_key_is_bin((const char *)n, nlen));
      CHECK(cgrpc_metadata_array_count(md) == 0);
    }
    CHECK(cgrpc_metadata_array_at(md, 1, &key, &val, &len) ==
          CGRPC_ERR_INVALID_ARGUMENT);
    /* The same entry through the internal -bin path. */
    rv = cgrpc__metadata_array_add_b64(md, (const char *)n, nlen,
                                       (const char *)v, vlen);
    CHECK(rv == 0 || rv == CGRPC_ERR_INVALID_ARGUMENT);
  }
  cgrpc_metadata_array_del(md);
  free(n);
  free(v);
}

/* The public setters, with NUL-terminated copies of the bytes. */
static void fuzz_user_metadata(const uint8_t *name, size_t nlen,
                               const uint8_t *value, size_t vlen) {
  cgrpc_metadata_array *md = NULL;
  char *k = malloc(nlen + 1), *v = malloc(vlen + 1);
  int rv;
  if (k && v && cgrpc_metadata_array_new(&md) == 0) {
    size_t klen, slen, len = 0;
    const char *got;
    if (nlen)
      memcpy(k, name, nlen);
    k[nlen] = '\0';
    if (vlen)
      memcpy(v, value, vlen);
    v[vlen] = '\0';
    klen = strlen(k);
    slen = strlen(v);
    rv = cgrpc_metadata_array_add(md, k, v);
    CHECK(rv == 0 || rv == CGRPC_ERR_INVALID_ARGUMENT ||
          rv == CGRPC_ERR_NOMEM);
    if (rv == 0) {
      /* Accepted keys are valid, unreserved, and values printable unless
       * the key is -bin. */
      CHECK(cgrpc__md_key_valid(k, klen) && !cgrpc__md_key_reserved(k, klen));
      CHECK(cgrpc__md_key_is_bin(k, klen) ||
            cgrpc__md_value_valid((const uint8_t *)v, slen));
      got = cgrpc_metadata_array_get(md, k, &len);
      CHECK(got != NULL && len == slen && memcmp(got, v, slen) == 0);
    }
    rv = cgrpc_metadata_array_add_bin(md, k, value, vlen);
    CHECK(rv == 0 || rv == CGRPC_ERR_INVALID_ARGUMENT ||
          rv == CGRPC_ERR_NOMEM);
    if (rv == 0)
      CHECK(cgrpc__md_key_is_bin(k, klen));
    (void)cgrpc_metadata_array_get(md, v, NULL);
  }
  cgrpc_metadata_array_del(md);
  free(k);
  free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *p;
  size_t n, split;
  if (size < 1)
    return 0;
  p = data + 1;
  n = size - 1;
  fuzz_base64(p, n);
  fuzz_percent(p, n);
  fuzz_timeout(p, n);
  fuzz_status(p, n);
  split = data[0] < n ? data[0] : n;
  fuzz_wire_metadata(p, split, p + split, n - split);
  fuzz_user_metadata(p, split, p + split, n - split);
  return 0;
}
