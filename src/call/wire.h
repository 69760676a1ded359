/* SPDX-License-Identifier: MIT */
/*
 * gRPC-over-HTTP/2 rules shared by the client and the server: which headers
 * are metadata, how -bin values and grpc-message decode, and how HTTP
 * statuses and RST_STREAM codes map to gRPC status codes.
 */
#ifndef CGRPC_CALL_WIRE_H
#define CGRPC_CALL_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cgrpc/metadata.h"
#include "cgrpc/status.h"

#include <protobuf-c/protobuf-c.h>

/* Compares |n| bytes at |p| with a string literal. */
#define CGRPC__LIT_EQ(p, n, lit)                                               \
  ((n) == sizeof(lit) - 1 && memcmp((p), lit, (n)) == 0)

/* Nonzero for headers the transport owns (pseudo-headers, content-type, te,
 * grpc-*...), which are not reported as metadata. */
int cgrpc__wire_header_reserved(const uint8_t *name, size_t len);

/* Appends a received header to |md|, base64-decoding "-bin" values.
 * Returns 0, CGRPC_ERR_PROTO (bad base64) or CGRPC_ERR_NOMEM. */
int cgrpc__wire_add_metadata(cgrpc_metadata_array *md, const uint8_t *name,
                             size_t name_len, const uint8_t *value,
                             size_t value_len);

/* Parses a grpc-status value (decimal).  Returns 0 or -1. */
int cgrpc__wire_parse_status(const uint8_t *value, size_t len, int *code);

/* Returns a malloc'd, NUL-terminated, percent-decoded grpc-message, or NULL
 * when out of memory. */
char *cgrpc__wire_decode_message(const uint8_t *value, size_t len);

/* The gRPC code for a non-200 HTTP status without grpc-status. */
cgrpc_status_code cgrpc__wire_http_to_status(int http_status);

/* The gRPC code for a stream reset with |error_code|. */
cgrpc_status_code cgrpc__wire_rst_to_status(uint32_t error_code);

/*
 * Packs |msg| behind the 5-byte gRPC message prefix into a new buffer (free
 * with cgrpc__free()) with |headroom| spare bytes in front; the prefix
 * starts at buf + headroom and *len is the framed length (set even when
 * the message is refused, for error messages).  Returns NULL with *err set
 * to CGRPC_ERR_TOO_LARGE (over |max_send|, -1 = no limit, or over 4 GiB)
 * or CGRPC_ERR_NOMEM.
 */
uint8_t *cgrpc__pack_framed(const ProtobufCMessage *msg, int64_t max_send,
                            size_t headroom, size_t *len, int *err);

/* Nonzero when |value| is "application/grpc" or "application/grpc+..." or
 * "application/grpc;...". */
int cgrpc__wire_content_type_ok(const uint8_t *value, size_t len);

#endif /* CGRPC_CALL_WIRE_H */
