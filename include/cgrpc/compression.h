/* SPDX-License-Identifier: MIT */
/*
 * Message compression (gRPC's doc/compression.md).  Each message is
 * compressed on its own, and its 5-byte prefix says whether it was (the
 * compressed flag); the call's grpc-encoding header names the algorithm.
 *
 * Compression runs on the thread that writes the message (the
 * application's, or the handler's), never on the event loop.
 */
#ifndef CGRPC_COMPRESSION_H
#define CGRPC_COMPRESSION_H

#include "cgrpc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Compression algorithms.  0 is "no choice": for a call, the channel's
 * default; for a handler, the server's; as a default itself, identity.
 * Values are never renumbered.
 */
typedef enum cgrpc_compression {
  /* The next level's choice (see above). */
  CGRPC_COMPRESS_DEFAULT = 0,
  /* No compression ("identity"). */
  CGRPC_COMPRESS_IDENTITY = 1,
  /* gzip (RFC 1952), "gzip" on the wire. */
  CGRPC_COMPRESS_GZIP = 2,
  /* zlib-wrapped deflate (RFC 1950), "deflate" on the wire, as other gRPC
   * implementations send it. */
  CGRPC_COMPRESS_DEFLATE = 3
} cgrpc_compression;

/* Write flags (cgrpc_call_write_flags(), cgrpc_server_ctx_write_flags()). */
enum {
  /* Send this message uncompressed (flag 0), whatever the call's
   * compression. */
  CGRPC_WRITE_NO_COMPRESS = 1u << 0
};

/*
 * Returns the wire name of |compression| ("identity", "gzip", "deflate";
 * "identity" for CGRPC_COMPRESS_DEFAULT), or NULL for a value that is not a
 * cgrpc_compression.  The string is static.  Thread safety: any thread.
 */
CGRPC_EXTERN const char *cgrpc_compression_name(int compression);

#ifdef __cplusplus
}
#endif

#endif /* CGRPC_COMPRESSION_H */
