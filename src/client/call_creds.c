/* SPDX-License-Identifier: MIT */
/* Call credentials (include/cgrpc/call_credentials.h). */
#include "client/call_creds.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "call/metadata.h"
#include "cgrpc/error.h"
#include "util/mem.h"

struct cgrpc_call_credentials {
  atomic_int refs;
  cgrpc_call_credentials_cb cb;
  void *user_data;
  void (*destroy)(void *user_data);
};

int cgrpc_call_credentials_new_callback(cgrpc_call_credentials **creds,
                                        cgrpc_call_credentials_cb cb,
                                        void *user_data,
                                        void (*destroy)(void *user_data)) {
  cgrpc_call_credentials *c;
  if (!creds || !cb)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (!(c = cgrpc__calloc(1, sizeof *c)))
    return CGRPC_ERR_NOMEM;
  atomic_init(&c->refs, 1);
  c->cb = cb;
  c->user_data = user_data;
  c->destroy = destroy;
  *creds = c;
  return 0;
}

/* The access token's callback: |user_data| is "Bearer <token>". */
static cgrpc_status_code add_bearer(const cgrpc_auth_metadata_context *context,
                                    cgrpc_metadata_array *metadata,
                                    char *message, size_t message_size,
                                    void *user_data) {
  (void)context;
  if (cgrpc_metadata_array_add(metadata, "authorization", user_data) != 0) {
    snprintf(message, message_size, "out of memory");
    return CGRPC_STATUS_UNAVAILABLE;
  }
  return CGRPC_STATUS_OK;
}

int cgrpc_call_credentials_new_access_token(cgrpc_call_credentials **creds,
                                            const char *token) {
  char *value;
  size_t n;
  int rv;
  if (!creds || !token || !*token)
    return CGRPC_ERR_INVALID_ARGUMENT;
  n = strlen(token);
  if (!cgrpc__md_value_valid((const uint8_t *)token, n))
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (!(value = cgrpc__malloc(n + sizeof "Bearer ")))
    return CGRPC_ERR_NOMEM;
  memcpy(value, "Bearer ", 7);
  memcpy(value + 7, token, n + 1);
  rv = cgrpc_call_credentials_new_callback(creds, add_bearer, value,
                                           cgrpc__free);
  if (rv != 0)
    cgrpc__free(value);
  return rv;
}

void cgrpc__call_creds_ref(cgrpc_call_credentials *creds) {
  atomic_fetch_add(&creds->refs, 1);
}

void cgrpc_call_credentials_del(cgrpc_call_credentials *creds) {
  if (!creds || atomic_fetch_sub(&creds->refs, 1) != 1)
    return;
  if (creds->destroy)
    creds->destroy(creds->user_data);
  cgrpc__free(creds);
}

/* gRFC A54: codes the control plane must not hand to the application. */
static cgrpc_status_code data_plane_code(cgrpc_status_code code) {
  switch (code) {
  case CGRPC_STATUS_INVALID_ARGUMENT:
  case CGRPC_STATUS_NOT_FOUND:
  case CGRPC_STATUS_ALREADY_EXISTS:
  case CGRPC_STATUS_FAILED_PRECONDITION:
  case CGRPC_STATUS_ABORTED:
  case CGRPC_STATUS_OUT_OF_RANGE:
  case CGRPC_STATUS_DATA_LOSS:
    return CGRPC_STATUS_INTERNAL;
  default:
    return code;
  }
}

cgrpc_status_code cgrpc__call_creds_apply(cgrpc_call_credentials *creds,
                                          const char *scheme,
                                          const char *authority,
                                          const char *method,
                                          cgrpc_metadata_array **out,
                                          char *message, size_t message_size) {
  cgrpc_auth_metadata_context ctx;
  const char *end = strrchr(method, '/');
  size_t service_len = end && end > method ? (size_t)(end - method) : 0;
  size_t url_len = strlen(scheme) + 3 + strlen(authority) + service_len + 1;
  char *url = cgrpc__malloc(url_len);
  cgrpc_status_code code;
  *out = NULL;
  message[0] = '\0';
  if (!url || cgrpc_metadata_array_new(out) != 0) {
    cgrpc__free(url);
    snprintf(message, message_size, "out of memory");
    return CGRPC_STATUS_RESOURCE_EXHAUSTED;
  }
  /* The method's service part starts with its own '/'. */
  snprintf(url, url_len, "%s://%s%.*s", scheme, authority, (int)service_len,
           method);
  ctx.service_url = url;
  ctx.method = method;
  ctx.authority = authority;
  code = creds->cb(&ctx, *out, message, message_size, creds->user_data);
  cgrpc__free(url);
  if (code != CGRPC_STATUS_OK) {
    if ((unsigned)code > CGRPC_STATUS_UNAUTHENTICATED)
      code = CGRPC_STATUS_UNKNOWN;
    code = data_plane_code(code);
    if (!message[0])
      snprintf(message, message_size, "call credentials failed");
    cgrpc_metadata_array_del(*out);
    *out = NULL;
  }
  return code;
}
