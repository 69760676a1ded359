/* SPDX-License-Identifier: MIT */
#include "h2/hdrs.h"

#include <stdio.h>
#include <string.h>

#include "call/metadata.h"
#include "util/base64.h"
#include "util/mem.h"
#include "util/percent.h"

void cgrpc__hdrs_init(cgrpc__hdrs *h) {
  h->nv = h->inline_nv;
  h->len = 0;
  h->cap = sizeof h->inline_nv / sizeof h->inline_nv[0];
  h->failed = 0;
  cgrpc__arena_init(&h->arena);
}

void cgrpc__hdrs_free(cgrpc__hdrs *h) {
  if (h->nv != h->inline_nv)
    cgrpc__free(h->nv);
  cgrpc__arena_reset(&h->arena);
}

void cgrpc__hdrs_add(cgrpc__hdrs *h, const char *name, size_t name_len,
                     const char *value, size_t value_len) {
  nghttp2_nv *nv;
  if (h->failed)
    return;
  if (h->len == h->cap) {
    size_t cap = h->cap * 2;
    nghttp2_nv *p = cgrpc__malloc(cap * sizeof *p);
    if (!p) {
      h->failed = 1;
      return;
    }
    memcpy(p, h->nv, h->len * sizeof *p);
    if (h->nv != h->inline_nv)
      cgrpc__free(h->nv);
    h->nv = p;
    h->cap = cap;
  }
  nv = &h->nv[h->len++];
  nv->name = (uint8_t *)(uintptr_t)name;
  nv->namelen = name_len;
  nv->value = (uint8_t *)(uintptr_t)value;
  nv->valuelen = value_len;
  nv->flags = NGHTTP2_NV_FLAG_NONE;
}

void cgrpc__hdrs_add_copy(cgrpc__hdrs *h, const char *name, const char *value,
                          size_t value_len) {
  char *v = cgrpc__arena_memdup(&h->arena, value, value_len);
  if (!v) {
    h->failed = 1;
    return;
  }
  cgrpc__hdrs_add(h, name, strlen(name), v, value_len);
}

void cgrpc__hdrs_add_metadata(cgrpc__hdrs *h, const cgrpc_metadata_array *md) {
  size_t i, n = cgrpc_metadata_array_count(md);
  for (i = 0; i < n; i++) {
    const char *key;
    const uint8_t *value;
    size_t len, klen;
    char *k;
    cgrpc_metadata_array_at(md, i, &key, &value, &len);
    klen = strlen(key);
    /* Copies: the caller may free |md| before the list is submitted (a
     * client call's metadata is only read before cgrpc_unary_start()
     * returns; the headers go out later on the loop thread). */
    k = cgrpc__arena_memdup(&h->arena, key, klen + 1);
    if (!k) {
      h->failed = 1;
      return;
    }
    if (cgrpc__md_key_is_bin(key, klen)) {
      char *enc = cgrpc__arena_alloc(&h->arena, cgrpc__base64_encoded_len(len) + 1);
      if (!enc) {
        h->failed = 1;
        return;
      }
      cgrpc__hdrs_add(h, k, klen, enc, cgrpc__base64_encode(enc, value, len));
    } else {
      char *v = cgrpc__arena_memdup(&h->arena, value, len + 1);
      if (!v) {
        h->failed = 1;
        return;
      }
      cgrpc__hdrs_add(h, k, klen, v, len);
    }
  }
}

void cgrpc__hdrs_add_status(cgrpc__hdrs *h, int code, const char *message) {
  /* The 17 codes as static strings: no formatting on the hot path. */
  static const char *const codes[] = {"0",  "1",  "2",  "3",  "4",  "5",
                                      "6",  "7",  "8",  "9",  "10", "11",
                                      "12", "13", "14", "15", "16"};
  if (code >= 0 && code <= 16) {
    cgrpc__hdrs_add(h, "grpc-status", 11, codes[code], strlen(codes[code]));
  } else {
    char *num = cgrpc__arena_alloc(&h->arena, 12);
    if (!num) {
      h->failed = 1;
      return;
    }
    cgrpc__hdrs_add(h, "grpc-status", 11, num,
                    (size_t)snprintf(num, 12, "%d", code));
  }
  if (message && *message) {
    size_t n = strlen(message);
    size_t elen = cgrpc__percent_encoded_len((const uint8_t *)message, n);
    char *enc = cgrpc__arena_alloc(&h->arena, elen + 1);
    if (!enc) {
      h->failed = 1;
      return;
    }
    cgrpc__hdrs_add(h, "grpc-message", 12, enc,
                    cgrpc__percent_encode(enc, (const uint8_t *)message, n));
  }
}
