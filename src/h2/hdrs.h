/* SPDX-License-Identifier: MIT */
/*
 * Builds the header lists of gRPC requests, responses and trailers for
 * nghttp2_submit_*().  nghttp2 copies names and values when a list is
 * submitted, so everything here lives in an arena only until then.
 */
#ifndef CGRPC_H2_HDRS_H
#define CGRPC_H2_HDRS_H

#include <nghttp2/nghttp2.h>
#include <stddef.h>

#include "cgrpc/metadata.h"
#include "util/arena.h"

typedef struct cgrpc__hdrs {
  nghttp2_nv *nv;
  size_t len, cap;
  int failed; /* an add ran out of memory; submit nothing */
  nghttp2_nv inline_nv[12];
  cgrpc__arena arena;
} cgrpc__hdrs;

void cgrpc__hdrs_init(cgrpc__hdrs *h);
void cgrpc__hdrs_free(cgrpc__hdrs *h);

/* Adds one header; |name| and |value| must stay valid until submit (static
 * strings, or arena memory). */
void cgrpc__hdrs_add(cgrpc__hdrs *h, const char *name, size_t name_len,
                     const char *value, size_t value_len);
#define CGRPC__HDRS_ADD_LIT(h, name, value)                                    \
  cgrpc__hdrs_add((h), name, sizeof(name) - 1, value, sizeof(value) - 1)
/* Copies |value| into the arena first. */
void cgrpc__hdrs_add_copy(cgrpc__hdrs *h, const char *name, const char *value,
                          size_t value_len);

/* Adds a copy of every entry of |md| (so |md| may go before the submit);
 * "-bin" values are base64-encoded (unpadded). */
void cgrpc__hdrs_add_metadata(cgrpc__hdrs *h, const cgrpc_metadata_array *md);

/* Adds grpc-status and, when |message| is not NULL or empty, grpc-message
 * percent-encoded. */
void cgrpc__hdrs_add_status(cgrpc__hdrs *h, int code, const char *message);

#endif /* CGRPC_H2_HDRS_H */
