/* SPDX-License-Identifier: MIT */
/*
 * gRPC status codes and the outcome of an RPC.
 */
#ifndef CGRPC_STATUS_H
#define CGRPC_STATUS_H

#include "cgrpc/export.h"
#include "cgrpc/metadata.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The 17 status codes of the gRPC specification, with their wire values. */
typedef enum cgrpc_status_code {
  CGRPC_STATUS_OK = 0,
  CGRPC_STATUS_CANCELLED = 1,
  CGRPC_STATUS_UNKNOWN = 2,
  CGRPC_STATUS_INVALID_ARGUMENT = 3,
  CGRPC_STATUS_DEADLINE_EXCEEDED = 4,
  CGRPC_STATUS_NOT_FOUND = 5,
  CGRPC_STATUS_ALREADY_EXISTS = 6,
  CGRPC_STATUS_PERMISSION_DENIED = 7,
  CGRPC_STATUS_RESOURCE_EXHAUSTED = 8,
  CGRPC_STATUS_FAILED_PRECONDITION = 9,
  CGRPC_STATUS_ABORTED = 10,
  CGRPC_STATUS_OUT_OF_RANGE = 11,
  CGRPC_STATUS_UNIMPLEMENTED = 12,
  CGRPC_STATUS_INTERNAL = 13,
  CGRPC_STATUS_UNAVAILABLE = 14,
  CGRPC_STATUS_DATA_LOSS = 15,
  CGRPC_STATUS_UNAUTHENTICATED = 16
} cgrpc_status_code;

/*
 * Returns the canonical upper-case name of |code| ("NOT_FOUND"), or
 * "UNKNOWN" for a value outside the 17 codes.  Thread safety: any thread.
 */
CGRPC_EXTERN const char *cgrpc_status_code_name(int code);

/*
 * The outcome of a client call.  The library fills it in; the caller releases
 * what it holds with cgrpc_status_clear().
 *
 * |message| is the decoded grpc-message (UTF-8, NUL-terminated), or NULL when
 * the server sent none.  |initial_metadata| and |trailing_metadata| hold what
 * the server sent (either may be NULL when it sent nothing).
 */
typedef struct cgrpc_status {
  cgrpc_status_code code;
  char *message;
  cgrpc_metadata_array *initial_metadata;
  cgrpc_metadata_array *trailing_metadata;
} cgrpc_status;

/*
 * Frees what |status| holds and resets it to { CGRPC_STATUS_OK, NULL, NULL,
 * NULL }.  Passing NULL does nothing.  Thread safety: one thread at a time per
 * object.
 */
CGRPC_EXTERN void cgrpc_status_clear(cgrpc_status *status);

#ifdef __cplusplus
}
#endif

#endif /* CGRPC_STATUS_H */
