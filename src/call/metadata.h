/* SPDX-License-Identifier: MIT */
/*
 * Metadata arrays and the validation rules for metadata keys and values.
 * The struct behind the public opaque cgrpc_metadata_array is defined here so
 * the runtime can iterate entries directly and embed arrays in its own
 * structs (cgrpc__metadata_array_init / _clear).
 */
#ifndef CGRPC_CALL_METADATA_H
#define CGRPC_CALL_METADATA_H

#include <stddef.h>
#include <stdint.h>

#include "cgrpc/metadata.h"

/*
 * One entry.  |key| and |value| share one allocation owned by |key|: the key
 * and a NUL, then the value and a NUL.  For "-bin" keys |value| holds the
 * decoded binary bytes (base64 exists only on the wire).
 */
typedef struct cgrpc__md_entry {
  char *key;
  size_t key_len;
  uint8_t *value;
  size_t value_len;
} cgrpc__md_entry;

struct cgrpc_metadata_array {
  cgrpc__md_entry *entries;
  size_t count;
  size_t cap;
};

/* Initializes the empty array |md| in place.  Does not allocate. */
void cgrpc__metadata_array_init(cgrpc_metadata_array *md);

/*
 * Frees every entry of |md| and its entry table, leaving it empty and
 * reusable; does not free |md| itself (use it for embedded arrays).
 */
void cgrpc__metadata_array_clear(cgrpc_metadata_array *md);

/*
 * Appends |key| (|key_len| bytes) and |value| (|value_len| bytes), copying
 * both, without any validation: for the runtime's own entries and for
 * received headers it has already checked.  |value| may be NULL when
 * |value_len| is 0.
 *
 * Returns 0, or CGRPC_ERR_NOMEM.
 */
int cgrpc__metadata_array_add_raw(cgrpc_metadata_array *md, const char *key,
                                  size_t key_len, const uint8_t *value,
                                  size_t value_len);

/*
 * Appends a received "-bin" entry: decodes the base64 (padded or not) |b64|
 * of |b64_len| characters straight into the entry.  The key is not checked.
 *
 * Returns 0, or one of:
 *   CGRPC_ERR_INVALID_ARGUMENT  |b64| is not valid base64.
 *   CGRPC_ERR_NOMEM             Out of memory.
 */
int cgrpc__metadata_array_add_b64(cgrpc_metadata_array *md, const char *key,
                                  size_t key_len, const char *b64,
                                  size_t b64_len);

/*
 * Returns nonzero when the |n| bytes at |k| form a valid metadata key:
 * non-empty, only [0-9a-z._-].  Upper case is invalid (HTTP/2 requires
 * lower-case header names).
 */
int cgrpc__md_key_valid(const char *k, size_t n);

/* Returns nonzero when the key |k| of |n| bytes ends in "-bin". */
int cgrpc__md_key_is_bin(const char *k, size_t n);

/*
 * Returns nonzero when the |n| bytes at |v| are a valid non-binary value:
 * every byte in 0x20-0x7e.  The empty value is valid.
 */
int cgrpc__md_value_valid(const uint8_t *v, size_t n);

/*
 * Returns nonzero when the key |k| of |n| bytes is owned by gRPC or the
 * transport, and so cannot be set by applications:
 *   - keys starting with "grpc-" or ':' (pseudo-headers);
 *   - content-type, te, user-agent and host, which the transport writes;
 *   - the HTTP/1 connection-specific headers that HTTP/2 forbids
 *     (connection, keep-alive, proxy-connection, transfer-encoding,
 *     upgrade; RFC 7540 section 8.1.2.2).
 */
int cgrpc__md_key_reserved(const char *k, size_t n);

#endif /* CGRPC_CALL_METADATA_H */
