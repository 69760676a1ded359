/* SPDX-License-Identifier: MIT */
/*
 * The cgrpc.test.StreamService servicers of the streaming tests (see
 * protos/test/stream.proto), in two forms:
 *
 *  - blocking (stream_service_register): handlers run on the worker pool and
 *    use the blocking cgrpc_server_ctx_read()/_write();
 *  - async (stream_service_register_async), for an inline server
 *    (max_workers = 0): handlers detach and drive the call with
 *    cgrpc_server_ctx_read_async()/_write_async()/_finish().  Chat, Download
 *    and Upload only.
 *
 * Chunk i of a stream carries seq = i and stream_fill(data, size, i).
 *
 *   Download  count chunks of size bytes, interval_us apart; then the status
 *             asked for, with trailing metadata "x-count: <count>".  With
 *             early_metadata the headers (initial metadata
 *             "x-stream: download") go out first; with gate the handler waits
 *             for stream_stats.gate before the first chunk.
 *   Upload    reads to the end; replies with count, bytes, sum, last_seq and
 *             out_of_order.  A chunk with status_code ends the call with it.
 *   Chat      echoes each chunk (after sleeping its sleep_ms); a chunk with
 *             status_code ends the call with that code instead.  A request
 *             with metadata "x-early" gets its headers (initial metadata
 *             "x-stream: chat") before anything is read.  Trailing metadata
 *             "x-count: <echoed>".
 *   SlowChat  Chat that sleeps stats->sleep_us before each read.
 *   Flood     Download without pauses, counting stats->sent.
 *   SlowUpload Upload that sleeps stats->sleep_us before each read.
 *   Unary     echoes its chunk; records what the streaming calls return on a
 *             unary ctx (misuse_read, misuse_write).
 *
 * Every handler that sees a read or write fail with CGRPC_ERR_CLOSED counts
 * closed_seen, records whether cgrpc_server_ctx_is_cancelled() said so in
 * cancelled_seen, and returns CANCELLED.
 */
#ifndef CGRPC_TEST_STREAM_SERVICE_H
#define CGRPC_TEST_STREAM_SERVICE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cgrpc/cgrpc.h>

#include "stream.grpc-c.h"

/* Short names for the StreamService messages. */
typedef Cgrpc__Test__Chunk chunk_t;
typedef Cgrpc__Test__DownloadRequest download_t;
typedef Cgrpc__Test__UploadSummary summary_t;

typedef struct stream_stats {
  atomic_int handlers;       /* handler entries */
  atomic_int in_flight;      /* handlers (or detached calls) not finished */
  atomic_int finished;       /* handlers returned / detached calls finished */
  atomic_llong sent;         /* messages written successfully */
  atomic_llong received;     /* messages read */
  atomic_int closed_seen;    /* a read or write returned CGRPC_ERR_CLOSED */
  atomic_int cancelled_seen; /* ... and is_cancelled() was nonzero then */
  atomic_int last_error;     /* the last failing read/write return value */
  atomic_int misuse_read;    /* Unary: cgrpc_server_ctx_read() result */
  atomic_int misuse_write;   /* Unary: cgrpc_server_ctx_write() result */
  atomic_int gate;           /* Download(gate): nonzero lets it go on */
  atomic_int sleep_us;       /* SlowChat, SlowUpload: per-message sleep */
} stream_stats;

/* Resets every counter to 0. */
void stream_stats_reset(stream_stats *stats);

/* The data of chunk |seq|: a pattern that differs per chunk. */
void stream_fill(uint8_t *buf, size_t len, int64_t seq);
/* Nonzero when |buf| is what stream_fill(buf, len, seq) wrote. */
int stream_check(const uint8_t *buf, size_t len, int64_t seq);

/* A fast rolling (Fletcher-style, over 8-byte words) checksum of a
 * sequence of messages; both ends must feed the same message boundaries. */
typedef struct stream_csum {
  uint64_t a, b;
  uint64_t bytes;
} stream_csum;
void stream_csum_init(stream_csum *c);
void stream_csum_add(stream_csum *c, const uint8_t *p, size_t n);

/* Registers the blocking servicer; |stats| must outlive the server. */
int stream_service_register(cgrpc_server *server, stream_stats *stats);

/* Registers the async (detaching) servicer, for max_workers = 0. */
int stream_service_register_async(cgrpc_server *server, stream_stats *stats);

#endif /* CGRPC_TEST_STREAM_SERVICE_H */
