/* SPDX-License-Identifier: MIT */
/*
 * Metadata: ordered (key, value) pairs sent as HTTP/2 headers and trailers.
 *
 * Keys are lower-case ASCII ([0-9a-z._-]).  Keys ending in "-bin" carry
 * binary values, sent base64-encoded; every other value is printable ASCII
 * (0x20-0x7e).  Keys starting with "grpc-" and the HTTP/2 pseudo-headers are
 * reserved and rejected, but for "grpc-retry-pushback-ms", which a server's
 * trailing metadata may carry to tell a client with a retry policy how many
 * milliseconds to wait before its next attempt (a negative value: not to
 * retry; gRFC A6).
 */
#ifndef CGRPC_METADATA_H
#define CGRPC_METADATA_H

#include <stddef.h>
#include <stdint.h>

#include "cgrpc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cgrpc_metadata_array cgrpc_metadata_array;

/*
 * Creates an empty array in |*md_ptr|.
 *
 * Returns 0, or CGRPC_ERR_NOMEM.  Thread safety: any thread.
 */
CGRPC_EXTERN int cgrpc_metadata_array_new(cgrpc_metadata_array **md_ptr);

/* Frees |md| and everything in it.  Passing NULL does nothing. */
CGRPC_EXTERN void cgrpc_metadata_array_del(cgrpc_metadata_array *md);

/*
 * Appends |key| with the NUL-terminated ASCII |value|.  Both are copied.
 * For a "-bin" key the bytes of |value| are taken as the binary value.
 *
 * Returns 0, or one of:
 *   CGRPC_ERR_INVALID_ARGUMENT  bad or reserved key, or a non-printable value.
 *   CGRPC_ERR_NOMEM             Out of memory.
 * Thread safety: one thread at a time per object.
 */
CGRPC_EXTERN int cgrpc_metadata_array_add(cgrpc_metadata_array *md,
                                          const char *key, const char *value);

/*
 * Appends the binary |value| of |len| bytes under |key|, which must end in
 * "-bin".  The bytes are copied.
 *
 * Returns 0, CGRPC_ERR_INVALID_ARGUMENT or CGRPC_ERR_NOMEM.
 * Thread safety: one thread at a time per object.
 */
CGRPC_EXTERN int cgrpc_metadata_array_add_bin(cgrpc_metadata_array *md,
                                              const char *key,
                                              const void *value, size_t len);

/* Returns the number of entries in |md| (0 for NULL). */
CGRPC_EXTERN size_t cgrpc_metadata_array_count(const cgrpc_metadata_array *md);

/*
 * Reads entry |index| of |md|: its key, value and value length.  Values are
 * also NUL-terminated, so ASCII values can be used as C strings.  The
 * pointers stay valid until |md| is changed or freed.
 *
 * Returns 0, or CGRPC_ERR_INVALID_ARGUMENT when |index| is out of range.
 */
CGRPC_EXTERN int cgrpc_metadata_array_at(const cgrpc_metadata_array *md,
                                         size_t index, const char **key,
                                         const uint8_t **value, size_t *len);

/*
 * Returns the first value stored under |key| (NUL-terminated), and its length
 * in |*len| when |len| is not NULL; or NULL when |md| has no such key.
 */
CGRPC_EXTERN const char *cgrpc_metadata_array_get(const cgrpc_metadata_array *md,
                                                  const char *key, size_t *len);

#ifdef __cplusplus
}
#endif

#endif /* CGRPC_METADATA_H */
