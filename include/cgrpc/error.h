/* SPDX-License-Identifier: MIT */
/*
 * Library error codes.  These describe misuse of the API or failures of the
 * library itself; the outcome of an RPC is a gRPC status (see status.h), a
 * separate space.
 */
#ifndef CGRPC_ERROR_H
#define CGRPC_ERROR_H

#include "cgrpc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * X-macro list of every library error: name, value, description.  The enum
 * and the strings are generated from it so they cannot drift apart.  Values
 * are never renumbered or removed.
 */
#define CGRPC_ERROR_MAP(X)                                                     \
  X(INVALID_ARGUMENT, -501, "Invalid argument")                                \
  X(INVALID_STATE, -502, "Invalid state for this operation")                   \
  X(ADDR_IN_USE, -503, "Address already in use")                               \
  X(ADDR_RESOLVE, -504, "Could not resolve address")                           \
  X(IO, -505, "I/O error")                                                     \
  X(UNSUPPORTED, -506, "Not supported")                                        \
  X(CLOSED, -507, "Object is closed or shutting down")                         \
  X(WOULD_DEADLOCK, -508, "Blocking call made from an event-loop thread")      \
  X(ALREADY_EXISTS, -509, "Already registered")                                \
  X(PROTO, -510, "Protocol error")                                             \
  X(TOO_LARGE, -511, "Message larger than the configured limit")               \
  X(NOT_FOUND, -512, "Not found")                                              \
  X(TIMEOUT, -513, "Timed out")                                                \
  X(NOMEM, -901, "Out of memory")                                              \
  X(CALLBACK_FAILURE, -902, "User callback failed")                            \
  X(INTERNAL, -903, "Internal error")

typedef enum cgrpc_error {
#define CGRPC__ERR_ENUM(name, value, text) CGRPC_ERR_##name = value,
  CGRPC_ERROR_MAP(CGRPC__ERR_ENUM)
#undef CGRPC__ERR_ENUM
} cgrpc_error;

/*
 * Returns a description of |err|, or "Unknown error" for a value that is not
 * a cgrpc_error.  The string is static.  Thread safety: any thread.
 */
CGRPC_EXTERN const char *cgrpc_strerror(int err);

/*
 * Returns the name of |err| without the prefix, such as "NOMEM", or
 * "UNKNOWN".  The string is static.  Thread safety: any thread.
 */
CGRPC_EXTERN const char *cgrpc_err_name(int err);

/*
 * Returns nonzero if |err| leaves the object it came from unusable (out of
 * memory, internal errors).  Thread safety: any thread.
 */
CGRPC_EXTERN int cgrpc_is_fatal(int err);

#ifdef __cplusplus
}
#endif

#endif /* CGRPC_ERROR_H */
