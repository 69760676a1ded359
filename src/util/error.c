/* SPDX-License-Identifier: MIT */
/*
 * Library error strings and gRPC status code names.  The error strings are
 * generated from CGRPC_ERROR_MAP so they cannot drift from the enum.
 */
#include "cgrpc/error.h"
#include "cgrpc/status.h"

#include <stddef.h>

const char *cgrpc_strerror(int err) {
  switch (err) {
#define CGRPC__ERR_TEXT(name, value, text)                                     \
  case value:                                                                  \
    return text;
    CGRPC_ERROR_MAP(CGRPC__ERR_TEXT)
#undef CGRPC__ERR_TEXT
  case 0:
    return "Success";
  default:
    return "Unknown error";
  }
}

const char *cgrpc_err_name(int err) {
  switch (err) {
#define CGRPC__ERR_NAME(name, value, text)                                     \
  case value:                                                                  \
    return #name;
    CGRPC_ERROR_MAP(CGRPC__ERR_NAME)
#undef CGRPC__ERR_NAME
  default:
    return "UNKNOWN";
  }
}

int cgrpc_is_fatal(int err) {
  return err == CGRPC_ERR_NOMEM || err == CGRPC_ERR_INTERNAL;
}

/* Indexed by wire value; the order is fixed by the gRPC specification. */
static const char *const status_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *cgrpc_status_code_name(int code) {
  if (code < 0 ||
      (size_t)code >= sizeof(status_names) / sizeof(status_names[0])) {
    return "UNKNOWN";
  }
  return status_names[code];
}
