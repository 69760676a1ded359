/* SPDX-License-Identifier: MIT */
/* Call credentials: what the client's call code uses of them. */
#ifndef CGRPC_CLIENT_CALL_CREDS_H
#define CGRPC_CLIENT_CALL_CREDS_H

#include <stddef.h>

#include "cgrpc/call_credentials.h"

void cgrpc__call_creds_ref(cgrpc_call_credentials *creds);

/*
 * Runs |creds| for a call to |method| on |authority| over |scheme|
 * ("https", or "http" where allowed).  CGRPC_STATUS_OK with the metadata
 * in |*out| (the caller deletes it), or the code to fail the call with
 * (restricted as gRFC A54 says) and its |message|.
 */
cgrpc_status_code cgrpc__call_creds_apply(cgrpc_call_credentials *creds,
                                          const char *scheme,
                                          const char *authority,
                                          const char *method,
                                          cgrpc_metadata_array **out,
                                          char *message, size_t message_size);

#endif /* CGRPC_CLIENT_CALL_CREDS_H */
