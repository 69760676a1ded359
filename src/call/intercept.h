/* SPDX-License-Identifier: MIT */
/*
 * Interceptor chains (cgrpc/interceptor.h), shared by the client and the
 * server: the chain a server or channel holds, and one call's run through
 * it (its info, its slots, which interceptors started, its outcome).
 *
 * A call without interceptors has no cgrpc__icall (NULL): every hook in
 * client/ and server/ is one pointer test.  A call with them allocates one
 * at its creation.  |lock| serialises the callbacks of one call (a writer
 * and a reader may send and receive at once) and keeps on_message from
 * running after on_end.
 */
#ifndef CGRPC_CALL_INTERCEPT_H
#define CGRPC_CALL_INTERCEPT_H

#include <pthread.h>
#include <stddef.h>

#include "cgrpc/interceptor.h"

typedef struct cgrpc__ichain {
  cgrpc_interceptor *v;
  size_t n;
  int any_message; /* some interceptor has on_message */
} cgrpc__ichain;

/* Appends a copy of |ic|.  Returns 0 or CGRPC_ERR_NOMEM. */
int cgrpc__ichain_add(cgrpc__ichain *chain, const cgrpc_interceptor *ic);
/* |*dst| becomes a copy of |src| (empty for an empty one).  Returns 0 or
 * CGRPC_ERR_NOMEM (|*dst| is then empty). */
int cgrpc__ichain_copy(cgrpc__ichain *dst, const cgrpc__ichain *src);
void cgrpc__ichain_free(cgrpc__ichain *chain);

/* The peer's address as the client's on_end gets it (h2conn's peer). */
#define CGRPC__ICALL_PEER_MAX 64

typedef struct cgrpc__icall {
  const cgrpc__ichain *chain; /* the server's or the channel's */
  pthread_mutex_t lock;
  cgrpc_interceptor_info info;
  size_t started;         /* on_start ran for chain->v[0 .. started) */
  unsigned char ended;    /* on_end ran */
  unsigned char rejected; /* an on_start refused the call */
  unsigned char has_outcome;
  /* The server's outcome as sent (cgrpc__icall_set_outcome()). */
  cgrpc_status_code code;
  char *message;
  const cgrpc_metadata_array *trailing;
  char peer[CGRPC__ICALL_PEER_MAX];
  void *slots[];
} cgrpc__icall;

/* A call's run through |chain| (not empty) for |method| of |kind|;
 * |is_client| as in the info.  NULL when out of memory. */
cgrpc__icall *cgrpc__icall_new(const cgrpc__ichain *chain, const char *method,
                               cgrpc_method_kind kind, int is_client);
/* Ends the call first (CANCELLED) if it started and did not end, then
 * frees it.  NULL does nothing. */
void cgrpc__icall_free(cgrpc__icall *ic);

/* Runs on_start in order until one rejects: returns CGRPC_STATUS_OK or
 * that code, with its message in |message| (|size| bytes; "" when it gave
 * none).  Sets info.start_ns first; the caller fills the rest of the
 * info before. */
cgrpc_status_code cgrpc__icall_start(cgrpc__icall *ic,
                                     const cgrpc_metadata_array *metadata,
                                     cgrpc_metadata_array *send_initial,
                                     cgrpc_metadata_array *send_trailing,
                                     char *message, size_t size);

/* A message sent (|direction| CGRPC_INTERCEPT_SEND) or received; requests
 * go through the chain in order, responses in reverse. */
void cgrpc__icall_message(cgrpc__icall *ic, int direction,
                          const ProtobufCMessage *msg);
/* Whether cgrpc__icall_message() would call anything for |ic| (may be
 * NULL): the test the hot paths make. */
static inline int cgrpc__icall_wants_messages(const cgrpc__icall *ic) {
  return ic && ic->chain->any_message;
}

/* The client's call went to a connection whose peer is |peer|. */
void cgrpc__icall_set_peer(cgrpc__icall *ic, const char *peer);

/* Records the outcome the server sends (|message| is copied; |trailing|
 * must live as long as |ic|).  The first one counts. */
void cgrpc__icall_set_outcome(cgrpc__icall *ic, cgrpc_status_code code,
                              const char *message,
                              const cgrpc_metadata_array *trailing);

/* Runs on_end, once, in reverse order, for the interceptors that started. */
void cgrpc__icall_end(cgrpc__icall *ic, cgrpc_status_code code,
                      const char *message,
                      const cgrpc_metadata_array *trailing);
/* On_end with the outcome recorded, else |code| and |message|. */
void cgrpc__icall_end_recorded(cgrpc__icall *ic, cgrpc_status_code code,
                               const char *message);

#endif /* CGRPC_CALL_INTERCEPT_H */
