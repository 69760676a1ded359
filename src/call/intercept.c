/* SPDX-License-Identifier: MIT */
/*
 * Interceptor chains and one call's run through one (call/intercept.h).
 */
#include <string.h>

#include "call/intercept.h"
#include "cgrpc/error.h"
#include "util/clock.h"
#include "util/mem.h"

int cgrpc__ichain_add(cgrpc__ichain *chain, const cgrpc_interceptor *ic) {
  cgrpc_interceptor *v =
      cgrpc__realloc(chain->v, (chain->n + 1) * sizeof *chain->v);
  if (!v)
    return CGRPC_ERR_NOMEM;
  v[chain->n++] = *ic;
  chain->v = v;
  if (ic->on_message)
    chain->any_message = 1;
  return 0;
}

int cgrpc__ichain_copy(cgrpc__ichain *dst, const cgrpc__ichain *src) {
  memset(dst, 0, sizeof *dst);
  if (!src->n)
    return 0;
  dst->v = cgrpc__malloc(src->n * sizeof *dst->v);
  if (!dst->v)
    return CGRPC_ERR_NOMEM;
  memcpy(dst->v, src->v, src->n * sizeof *dst->v);
  dst->n = src->n;
  dst->any_message = src->any_message;
  return 0;
}

void cgrpc__ichain_free(cgrpc__ichain *chain) {
  cgrpc__free(chain->v);
  memset(chain, 0, sizeof *chain);
}

cgrpc__icall *cgrpc__icall_new(const cgrpc__ichain *chain, const char *method,
                               cgrpc_method_kind kind, int is_client) {
  cgrpc__icall *ic =
      cgrpc__calloc(1, sizeof *ic + chain->n * sizeof ic->slots[0]);
  if (!ic)
    return NULL;
  pthread_mutex_init(&ic->lock, NULL);
  ic->chain = chain;
  ic->info.method = method;
  ic->info.authority = "";
  ic->info.kind = kind;
  ic->info.is_client = is_client;
  return ic;
}

void cgrpc__icall_free(cgrpc__icall *ic) {
  if (!ic)
    return;
  /* A call that never got to its end (a client call released unstarted,
   * a failure before it was submitted): the slots must be freed. */
  cgrpc__icall_end(ic, CGRPC_STATUS_CANCELLED, "Cancelled", NULL);
  pthread_mutex_destroy(&ic->lock);
  cgrpc__free(ic->message);
  cgrpc__free(ic);
}

cgrpc_status_code cgrpc__icall_start(cgrpc__icall *ic,
                                     const cgrpc_metadata_array *metadata,
                                     cgrpc_metadata_array *send_initial,
                                     cgrpc_metadata_array *send_trailing,
                                     char *message, size_t size) {
  const cgrpc__ichain *chain = ic->chain;
  cgrpc_status_code code = CGRPC_STATUS_OK;
  size_t i;
  message[0] = '\0';
  ic->info.start_ns = cgrpc__now_ns();
  /* No other thread knows the call yet: no lock. */
  for (i = 0; i < chain->n; i++) {
    const cgrpc_interceptor *it = &chain->v[i];
    ic->started = i + 1;
    if (!it->on_start)
      continue;
    message[0] = '\0';
    code = it->on_start(&ic->info, metadata, send_initial, send_trailing,
                        message, size, &ic->slots[i], it->user_data);
    if (code != CGRPC_STATUS_OK) {
      message[size - 1] = '\0';
      if ((unsigned)code > CGRPC_STATUS_UNAUTHENTICATED)
        code = CGRPC_STATUS_UNKNOWN;
      ic->rejected = 1;
      break;
    }
  }
  if (code == CGRPC_STATUS_OK)
    message[0] = '\0';
  return code;
}

void cgrpc__icall_message(cgrpc__icall *ic, int direction,
                          const ProtobufCMessage *msg) {
  const cgrpc__ichain *chain = ic->chain;
  /* Requests go in the order added, responses in reverse. */
  int reverse = (direction == CGRPC_INTERCEPT_SEND) != ic->info.is_client;
  size_t i, k;
  pthread_mutex_lock(&ic->lock);
  if (!ic->ended && !ic->rejected) {
    for (k = 0; k < ic->started; k++) {
      const cgrpc_interceptor *it;
      i = reverse ? ic->started - 1 - k : k;
      it = &chain->v[i];
      if (it->on_message)
        it->on_message(&ic->info, direction, msg, ic->slots[i], it->user_data);
    }
  }
  pthread_mutex_unlock(&ic->lock);
}

void cgrpc__icall_set_peer(cgrpc__icall *ic, const char *peer) {
  pthread_mutex_lock(&ic->lock);
  if (!ic->info.peer) {
    size_t n = strlen(peer);
    if (n >= sizeof ic->peer)
      n = sizeof ic->peer - 1;
    memcpy(ic->peer, peer, n);
    ic->peer[n] = '\0';
    ic->info.peer = ic->peer;
  }
  pthread_mutex_unlock(&ic->lock);
}

void cgrpc__icall_set_outcome(cgrpc__icall *ic, cgrpc_status_code code,
                              const char *message,
                              const cgrpc_metadata_array *trailing) {
  if (ic->has_outcome)
    return;
  ic->has_outcome = 1;
  ic->code = code;
  ic->message = message && *message ? cgrpc__strdup(message) : NULL;
  ic->trailing = trailing;
}

void cgrpc__icall_end(cgrpc__icall *ic, cgrpc_status_code code,
                      const char *message,
                      const cgrpc_metadata_array *trailing) {
  const cgrpc__ichain *chain = ic->chain;
  size_t i;
  pthread_mutex_lock(&ic->lock);
  if (!ic->ended) {
    ic->ended = 1;
    for (i = ic->started; i-- > 0;) {
      const cgrpc_interceptor *it = &chain->v[i];
      if (it->on_end)
        it->on_end(&ic->info, code, message, trailing, ic->slots[i],
                   it->user_data);
    }
  }
  pthread_mutex_unlock(&ic->lock);
}

void cgrpc__icall_end_recorded(cgrpc__icall *ic, cgrpc_status_code code,
                               const char *message) {
  if (ic->has_outcome)
    cgrpc__icall_end(ic, ic->code, ic->message, ic->trailing);
  else
    cgrpc__icall_end(ic, code, message, NULL);
}
