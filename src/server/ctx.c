/* SPDX-License-Identifier: MIT */
/*
 * The handler-facing API.  A handler runs on one thread at a time, and the
 * loop leaves these fields alone while it runs.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "call/compress.h"
#include "call/wire.h"
#include "cgrpc/error.h"
#include "server/internal.h"
#include "util/clock.h"

const cgrpc_metadata_array *
cgrpc_server_ctx_metadata(const cgrpc_server_ctx *ctx) {
  cgrpc_server_ctx *call = (cgrpc_server_ctx *)(uintptr_t)ctx;
  const cgrpc__raw_header *rh;
  if (!call || call->metadata || !call->raw_headers)
    return call ? call->metadata : NULL;
  /* Built on first use from the headers kept raw in the arena. */
  if (cgrpc_metadata_array_new(&call->metadata) != 0)
    return NULL;
  for (rh = call->raw_headers; rh; rh = rh->next) {
    /* A -bin value that is not base64 is dropped, as other servers do. */
    if (cgrpc__wire_add_metadata(call->metadata, rh->name, rh->name_len,
                                 rh->value, rh->value_len) == CGRPC_ERR_NOMEM)
      break;
  }
  return call->metadata;
}

const char *cgrpc_server_ctx_peer(const cgrpc_server_ctx *ctx) {
  return ctx && ctx->peer ? ctx->peer : "";
}

int cgrpc_server_ctx_is_secure(const cgrpc_server_ctx *ctx) {
  return ctx && ctx->tls_peer;
}

int cgrpc_server_ctx_peer_verified(const cgrpc_server_ctx *ctx) {
  return ctx && ctx->tls_peer && ctx->tls_peer->verified;
}

const char *cgrpc_server_ctx_peer_subject(const cgrpc_server_ctx *ctx) {
  return ctx && ctx->tls_peer ? ctx->tls_peer->subject : NULL;
}

size_t cgrpc_server_ctx_peer_san_count(const cgrpc_server_ctx *ctx) {
  return ctx && ctx->tls_peer ? ctx->tls_peer->n_sans : 0;
}

const char *cgrpc_server_ctx_peer_san(const cgrpc_server_ctx *ctx, size_t i) {
  return i < cgrpc_server_ctx_peer_san_count(ctx) ? ctx->tls_peer->sans[i]
                                                  : NULL;
}

const char *cgrpc_server_ctx_tls_version(const cgrpc_server_ctx *ctx) {
  return ctx && ctx->tls_peer ? ctx->tls_peer->version : NULL;
}

const char *cgrpc_server_ctx_tls_cipher(const cgrpc_server_ctx *ctx) {
  return ctx && ctx->tls_peer ? ctx->tls_peer->cipher : NULL;
}

int cgrpc_server_ctx_tls_session_reused(const cgrpc_server_ctx *ctx) {
  return ctx && ctx->tls_peer && ctx->tls_peer->reused;
}

int cgrpc_server_ctx_peer_cred(const cgrpc_server_ctx *ctx, int64_t *pid,
                               int64_t *uid, int64_t *gid) {
  if (!ctx)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (!ctx->peer_cred.valid)
    return CGRPC_ERR_UNSUPPORTED;
  if (pid)
    *pid = ctx->peer_cred.pid;
  if (uid)
    *uid = ctx->peer_cred.uid;
  if (gid)
    *gid = ctx->peer_cred.gid;
  return 0;
}

const char *cgrpc_server_ctx_method(const cgrpc_server_ctx *ctx) {
  return ctx && ctx->path ? ctx->path : "";
}

const char *cgrpc_server_ctx_authority(const cgrpc_server_ctx *ctx) {
  return ctx && ctx->authority ? ctx->authority : "";
}

int64_t cgrpc_server_ctx_time_remaining_ms(const cgrpc_server_ctx *ctx) {
  int64_t left;
  if (!ctx || ctx->deadline_ns == 0)
    return INT64_MAX;
  left = ctx->deadline_ns - cgrpc__now_ns();
  return left <= 0 ? 0 : left / 1000000;
}

int cgrpc_server_ctx_is_cancelled(const cgrpc_server_ctx *ctx) {
  return ctx ? atomic_load(&((cgrpc_server_ctx *)(uintptr_t)ctx)->cancelled)
             : 0;
}

int cgrpc_server_ctx_set_compression(cgrpc_server_ctx *ctx, int compression) {
  int rv = 0;
  if (!ctx)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (!cgrpc__compress_valid(compression)) {
    cgrpc__log(&ctx->server->log, CGRPC_LOG_ERROR,
               "cgrpc_server_ctx_set_compression: %d is not a "
               "cgrpc_compression",
               compression);
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  if (compression == CGRPC_COMPRESS_DEFAULT)
    compression = ctx->server->opts.compression;
  /* Under the lock that freezes the headers: grpc-encoding goes with
   * them, and the loop reads this when it builds them. */
  pthread_mutex_lock(&ctx->ep.st.lock);
  if (ctx->headers_frozen)
    rv = CGRPC_ERR_INVALID_STATE;
  else
    ctx->compression = (signed char)compression;
  pthread_mutex_unlock(&ctx->ep.st.lock);
  if (rv != 0)
    cgrpc__log(&ctx->server->log, CGRPC_LOG_WARNING,
               "cgrpc_server_ctx_set_compression: the response headers "
               "are already on their way");
  return rv;
}

int cgrpc_server_ctx_last_message_compressed(const cgrpc_server_ctx *ctx) {
  return ctx ? ctx->ep.last_compressed : 0;
}

static int add_md(cgrpc_metadata_array **md, const char *key, const void *value,
                  size_t len, int bin) {
  int rv;
  if (!key || !value)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (!*md && (rv = cgrpc_metadata_array_new(md)) != 0)
    return rv;
  return bin ? cgrpc_metadata_array_add_bin(*md, key, value, len)
             : cgrpc_metadata_array_add(*md, key, value);
}

/* Initial metadata is final once the response headers are on their way
 * (the loop reads it then). */
static int add_initial(cgrpc_server_ctx *ctx, const char *key,
                       const void *value, size_t len, int bin) {
  int rv;
  if (!ctx)
    return CGRPC_ERR_INVALID_ARGUMENT;
  pthread_mutex_lock(&ctx->ep.st.lock);
  rv = ctx->headers_frozen ? CGRPC_ERR_INVALID_STATE
                           : add_md(&ctx->initial_md, key, value, len, bin);
  pthread_mutex_unlock(&ctx->ep.st.lock);
  return rv;
}

int cgrpc_server_ctx_add_initial_metadata(cgrpc_server_ctx *ctx,
                                          const char *key, const char *value) {
  return add_initial(ctx, key, value, 0, 0);
}

int cgrpc_server_ctx_add_initial_metadata_bin(cgrpc_server_ctx *ctx,
                                              const char *key,
                                              const void *value, size_t len) {
  return add_initial(ctx, key, value, len, 1);
}

int cgrpc_server_ctx_add_trailing_metadata(cgrpc_server_ctx *ctx,
                                           const char *key, const char *value) {
  return ctx ? add_md(&ctx->trailing_md, key, value, 0, 0)
             : CGRPC_ERR_INVALID_ARGUMENT;
}

int cgrpc_server_ctx_add_trailing_metadata_bin(cgrpc_server_ctx *ctx,
                                               const char *key,
                                               const void *value, size_t len) {
  return ctx ? add_md(&ctx->trailing_md, key, value, len, 1)
             : CGRPC_ERR_INVALID_ARGUMENT;
}

static char *vprintf_arena(cgrpc_server_ctx *ctx, const char *fmt, va_list ap)
    CGRPC_PRINTF(2, 0);
static char *vprintf_arena(cgrpc_server_ctx *ctx, const char *fmt, va_list ap) {
  va_list ap2;
  int n;
  char *s;
  va_copy(ap2, ap);
  n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0)
    return NULL;
  s = cgrpc__arena_alloc(&ctx->arena, (size_t)n + 1);
  if (s)
    vsnprintf(s, (size_t)n + 1, fmt, ap);
  return s;
}

cgrpc_status_code cgrpc_server_ctx_fail(cgrpc_server_ctx *ctx,
                                        cgrpc_status_code code,
                                        const char *fmt, ...) {
  va_list ap;
  if (!ctx)
    return code;
  if (fmt) {
    va_start(ap, fmt);
    ctx->status_message = vprintf_arena(ctx, fmt, ap);
    va_end(ap);
  }
  return code;
}

void *cgrpc_server_ctx_alloc(cgrpc_server_ctx *ctx, size_t size) {
  return ctx ? cgrpc__arena_alloc(&ctx->arena, size) : NULL;
}

char *cgrpc_server_ctx_strdup(cgrpc_server_ctx *ctx, const char *s) {
  if (!ctx || !s)
    return NULL;
  return cgrpc__arena_memdup(&ctx->arena, s, strlen(s) + 1);
}

char *cgrpc_server_ctx_printf(cgrpc_server_ctx *ctx, const char *fmt, ...) {
  va_list ap;
  char *s;
  if (!ctx || !fmt)
    return NULL;
  va_start(ap, fmt);
  s = vprintf_arena(ctx, fmt, ap);
  va_end(ap);
  return s;
}
