/* SPDX-License-Identifier: MIT */
/*
 * Message compression (gRPC's doc/compression.md).  Each message is
 * compressed on its own, and its 5-byte prefix says whether it was (the
 * compressed flag); the call's grpc-encoding header names the algorithm.
 *
 * What is sent:
 *  - A client compresses its requests with the call's choice
 *    (cgrpc_call_options.compression), else the channel's default
 *    (cgrpc_channel_options_set_default_compression()), and then sends
 *    "grpc-encoding".  It always sends "grpc-accept-encoding:
 *    identity,deflate,gzip".  The server is not known to support the
 *    algorithm: a server that does not answers UNIMPLEMENTED.
 *  - A server compresses its responses with the handler's choice
 *    (cgrpc_server_ctx_set_compression()), else the server's default
 *    (cgrpc_server_options_set_default_compression()), but only with an
 *    algorithm the client listed in its grpc-accept-encoding; otherwise
 *    (and for a client that sent none) the response goes uncompressed.
 *  - CGRPC_WRITE_NO_COMPRESS sends one message of a stream uncompressed
 *    (flag 0), as doc/compression.md asks of "disabling compression" for
 *    messages that mix secrets with attacker-controlled data (CRIME/BEAST).
 *    A message that is to be compressed is compressed whatever its size.
 *
 * What is received: identity, gzip and deflate, on both sides.  A request
 * in another encoding fails with UNIMPLEMENTED (its Trailers-Only answer
 * lists what the server accepts in grpc-accept-encoding); a compressed
 * message under no grpc-encoding (or "identity") fails with INTERNAL, as
 * does one that does not decompress.  The receive limit
 * (max_receive_message_length) applies to the decompressed size too: a
 * message that inflates past it fails with RESOURCE_EXHAUSTED, and
 * inflating stops there (a small "zip bomb" costs at most the limit).
 *
 * A message is compressed by the thread that writes it (the application's,
 * or the handler's), not by the event loop: only handlers that run on the
 * loop (max_workers = 0, or async callbacks) compress there.  A received
 * message of a stream is inflated when it is read (by the thread of a
 * blocking read, on the loop for an async one), so one that waits for a
 * reader costs its compressed size, and a stream's reader that lags holds
 * no more memory than without compression; its failures (too large, not
 * inflating) end the call when that message is read.  The one message of
 * a unary request or response is inflated on the loop as it arrives.
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
