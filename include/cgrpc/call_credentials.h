/* SPDX-License-Identifier: MIT */
/*
 * Call credentials: metadata that authenticates each call, such as an
 * OAuth2 bearer token, added by the channel to every call it makes.
 *
 *   cgrpc_call_credentials *token;
 *   cgrpc_call_credentials_new_access_token(&token, "s3cr3t");
 *   cgrpc_channel_options_set_call_credentials(opts, token);
 *   cgrpc_call_credentials_del(token);        (the options keep their own)
 *
 * Every call on channels made from |opts| then carries
 * "authorization: Bearer s3cr3t".  For anything else (a token that
 * expires, a signed JWT, an API key header), a callback produces the
 * metadata of each call from its method and authority, or fails the call.
 *
 * Call credentials are secrets, so as in gRPC a channel sends them only
 * over TLS: cgrpc_channel_new() refuses a plaintext channel with call
 * credentials (CGRPC_ERR_INVALID_ARGUMENT, and the log says why) unless
 * cgrpc_channel_options_allow_insecure_call_credentials() says otherwise
 * (a test, or a Unix socket the application trusts).
 *
 * Reference counted like the TLS credentials (tls.h).
 */
#ifndef CGRPC_CALL_CREDENTIALS_H
#define CGRPC_CALL_CREDENTIALS_H

#include <stddef.h>

#include "cgrpc/export.h"
#include "cgrpc/metadata.h"
#include "cgrpc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cgrpc_call_credentials cgrpc_call_credentials;

/* What the callback knows of the call (gRPC's auth metadata context). */
typedef struct cgrpc_auth_metadata_context {
  /* "https://example.com/helloworld.Greeter": the scheme, the call's
   * :authority and its service (the audience of a JWT). */
  const char *service_url;
  /* The full method path, "/helloworld.Greeter/SayHello". */
  const char *method;
  /* The call's :authority, "example.com:443". */
  const char *authority;
} cgrpc_auth_metadata_context;

/*
 * Adds the call's credentials to |metadata| (with
 * cgrpc_metadata_array_add(); "authorization", "x-api-key", ...) and
 * returns CGRPC_STATUS_OK; or returns another code, usually
 * CGRPC_STATUS_UNAUTHENTICATED or CGRPC_STATUS_UNAVAILABLE (no token could
 * be had), with a message for people in |message| (|message_size| bytes,
 * NUL-terminated), to fail the call with that status before anything is
 * sent.  As gRPC does (gRFC A54), codes that only the control plane may
 * give (INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION,
 * ABORTED, OUT_OF_RANGE, DATA_LOSS) become INTERNAL.  (The metadata rules
 * hold: cgrpc_metadata_array_add() refuses reserved or malformed keys.)
 *
 * Runs on the thread that starts the call (cgrpc_unary_call(),
 * cgrpc_unary_start(), cgrpc_call_open(), cgrpc_call_start(), ...), once
 * per call (a transparent retry reuses the metadata), and from several
 * threads at once when they all make calls: it must be thread safe.  It may
 * block (to fetch a token), which blocks that caller only.
 */
typedef cgrpc_status_code (*cgrpc_call_credentials_cb)(
    const cgrpc_auth_metadata_context *context, cgrpc_metadata_array *metadata,
    char *message, size_t message_size, void *user_data);

/*
 * Credentials that add "authorization: Bearer |token|" to every call.
 * |token| is copied; it must be printable ASCII (0x20-0x7e).
 * Returns 0, CGRPC_ERR_INVALID_ARGUMENT or CGRPC_ERR_NOMEM.
 */
CGRPC_EXTERN int
cgrpc_call_credentials_new_access_token(cgrpc_call_credentials **creds,
                                        const char *token);

/*
 * Credentials whose metadata |cb| produces, with |user_data|.  |destroy|,
 * if not NULL, is called with |user_data| when the last reference goes.
 * Returns 0, CGRPC_ERR_INVALID_ARGUMENT (NULL |creds| or |cb|) or
 * CGRPC_ERR_NOMEM.
 */
CGRPC_EXTERN int cgrpc_call_credentials_new_callback(
    cgrpc_call_credentials **creds, cgrpc_call_credentials_cb cb,
    void *user_data, void (*destroy)(void *user_data));

/* Releases the caller's reference.  NULL does nothing.  Any thread. */
CGRPC_EXTERN void cgrpc_call_credentials_del(cgrpc_call_credentials *creds);

#ifdef __cplusplus
}
#endif

#endif /* CGRPC_CALL_CREDENTIALS_H */
