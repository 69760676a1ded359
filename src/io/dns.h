/* SPDX-License-Identifier: MIT */
/*
 * Asynchronous name resolution on the event loop, with c-ares: A and AAAA
 * records (and /etc/hosts first), every address kept.  c-ares' sockets are
 * watched with the loop's watch API and its retransmissions run from a
 * loop timer, so no lookup ever blocks the loop.  c-ares stays behind this
 * header, as OpenSSL stays behind io/tls.h.
 */
#ifndef CGRPC_IO_DNS_H
#define CGRPC_IO_DNS_H

#include <stddef.h>
#include <stdint.h>

#include "io/loop.h"
#include "io/sock.h"

typedef struct cgrpc__dns cgrpc__dns;

/*
 * The outcome of a lookup: |n_addrs| addresses (valid until the callback
 * returns), or none and |error|, a message naming the host ("cannot
 * resolve foo.test: Domain name not found", "DNS query for foo.test timed
 * out after 1000 ms").
 */
typedef void (*cgrpc__dns_cb)(void *user_data, const cgrpc__addr *addrs,
                              size_t n_addrs, const char *error);

/*
 * A resolver for |loop|, asking |server| ("ip:port", "[v6]:port"; NULL or
 * "" for the system's servers from /etc/resolv.conf).  Opens no socket
 * until the first lookup.  Any thread.
 * Returns 0, CGRPC_ERR_NOMEM, or CGRPC_ERR_IO (c-ares would not start).
 */
int cgrpc__dns_new(cgrpc__dns **dns_ptr, cgrpc__loop *loop,
                   const char *server);

/* Cancels a lookup in flight (its callback is not called), closes the
 * sockets and frees |dns|.  Loop thread, or any thread before the first
 * lookup.  Not from a lookup's own callback.  NULL does nothing. */
void cgrpc__dns_del(cgrpc__dns *dns);

/*
 * Looks up |host| (port |port|, digits) for at most |timeout_ms|; calls
 * |cb(user_data, ...)| once with the outcome, on the loop thread, possibly
 * before this function returns (a name found in /etc/hosts).  One lookup
 * at a time per resolver.  Loop thread only.
 * Returns 0, or CGRPC_ERR_INVALID_STATE (a lookup is in flight) or
 * CGRPC_ERR_NOMEM (then |cb| is not called).
 */
int cgrpc__dns_resolve(cgrpc__dns *dns, const char *host, const char *port,
                       int64_t timeout_ms, cgrpc__dns_cb cb, void *user_data);

/* Cancels the lookup in flight, if any, without calling its callback.
 * Loop thread only; NULL-safe; may be called from the lookup's callback. */
void cgrpc__dns_cancel(cgrpc__dns *dns);

#endif /* CGRPC_IO_DNS_H */
