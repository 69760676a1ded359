/* SPDX-License-Identifier: MIT */
/*
 * The cgrpc.test.EchoService servicer used by the integration tests and by
 * echo_server.  What Echo does is controlled by the request (see
 * protos/test/echo.proto):
 *
 *   - echo_metadata: every request metadata entry is sent back as initial
 *     metadata under the same key, and as trailing metadata under the key
 *     with "-trailer" appended ("x-a" -> "x-a-trailer",
 *     "x-b-bin" -> "x-b-trailer-bin").  Entries the API refuses to send
 *     back (reserved keys such as user-agent) are skipped.
 *   - sleep_ms: the handler sleeps that long, in slices of at most
 *     ECHO_SLEEP_SLICE_MS, and stops early (answering CANCELLED) once the
 *     call is cancelled or its deadline passes.
 *   - status_code != 0: the call fails with that code and status_message
 *     (no grpc-message when status_message is empty).
 *   - otherwise the reply carries |message|, a payload (response_size bytes
 *     of echo_payload_byte(i), or the request's payload when response_size
 *     is 0) and what the server saw: peer, time_remaining_ms (-1 without a
 *     deadline), authority and method.
 *
 * Unimplemented is left NULL, so the server answers it UNIMPLEMENTED.
 */
#ifndef CGRPC_TEST_ECHO_SERVICE_H
#define CGRPC_TEST_ECHO_SERVICE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cgrpc/cgrpc.h>

#include "echo.grpc-c.h"

#define ECHO_SLEEP_SLICE_MS 10

/* What the servicer observed; pass one as user_data to count calls. */
typedef struct echo_stats {
  atomic_int calls;          /* Echo handler entries */
  atomic_int in_flight;      /* handlers running now */
  atomic_int cancelled_seen; /* sleeps cut short by cancellation */
  atomic_int max_in_flight;  /* highest in_flight seen */
} echo_stats;

/* Resets every counter to 0. */
void echo_stats_reset(echo_stats *stats);

/* The byte at |index| of a payload made for response_size. */
static inline uint8_t echo_payload_byte(size_t index) {
  return (uint8_t)(index * 131u + 7u);
}

/* The Echo handler (exposed so tests can wrap it). */
cgrpc_status_code echo_service_echo(cgrpc_server_ctx *ctx,
                                    const Cgrpc__Test__EchoRequest *request,
                                    Cgrpc__Test__EchoReply *reply,
                                    void *user_data);

/*
 * Registers EchoService on |server| (Echo implemented, Unimplemented NULL).
 * |stats| may be NULL.  Returns what the generated register function returns.
 */
int echo_service_register(cgrpc_server *server, echo_stats *stats);

#endif /* CGRPC_TEST_ECHO_SERVICE_H */
