/* SPDX-License-Identifier: MIT */
/*
 * An application's own name resolution: a resolver is a list of addresses
 * the application keeps up to date, for channels whose target uses the
 * resolver's scheme (gRPC's manual resolver in grpc-go, the NameResolver
 * of grpc-java).
 *
 *   cgrpc_resolver *r;
 *   cgrpc_resolver_new(&r, "static", NULL, NULL);
 *   const char *addrs[] = {"10.0.0.1:50051", "10.0.0.2:50051"};
 *   cgrpc_resolver_update(r, addrs, 2, NULL, 0);
 *   cgrpc_channel_options_set_resolver(opts, r);
 *   cgrpc_channel_new(&ch, "static:///greeter", opts);
 *   ...                                      (any thread, any time)
 *   const char *moved[] = {"10.0.0.3:50051"};
 *   cgrpc_resolver_update(r, moved, 1, NULL, 0);
 *   ...
 *   cgrpc_channel_del(ch);
 *   cgrpc_resolver_del(r);                   (in either order)
 *
 * The channel's load-balancing policy works on the list as it does on the
 * addresses of a "dns:" name: an update keeps the connections of the
 * addresses that stay, connects the new ones as the policy says, and lets
 * the connections of the addresses that went finish their calls (behind a
 * GOAWAY of their own) before they close.
 *
 * A resolver is reference counted: channel options and channels that use
 * it keep their own reference, so the application may delete its object
 * when it no longer updates the list; the channels then keep the last list
 * they were given.
 */
#ifndef CGRPC_RESOLVER_H
#define CGRPC_RESOLVER_H

#include <stddef.h>

#include "cgrpc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cgrpc_resolver cgrpc_resolver;

/*
 * Called when a channel would like a fresh list: when it first needs
 * addresses and the resolver has none yet, when one of its connections
 * drops or fails to connect (the server may have moved), when it leaves
 * IDLE after its idle timeout, and again after a backoff (the connection
 * backoff's) while the list is empty or failed and calls wait.  Until an
 * answer comes the channel goes on with the list it has.  Answer with
 * cgrpc_resolver_update() or cgrpc_resolver_fail(), from the callback or
 * later from any thread, or not at all (a resolver that pushes its
 * updates on its own may ignore it).  The channel does not pace these calls
 * beyond its connection backoff: a resolver that asks a remote service paces
 * its own lookups.
 *
 * Runs on the thread of the channel that asks (one channel at a time per
 * call, several channels may call at once) and must not block.  It may
 * call any function of this header on |resolver|, cgrpc_resolver_del()
 * included.
 */
typedef void (*cgrpc_resolver_resolve_cb)(cgrpc_resolver *resolver,
                                          void *user_data);

/*
 * Creates a resolver for targets of the form "|scheme|:///endpoint",
 * "|scheme|://authority/endpoint" (the authority is not used) or
 * "|scheme|:endpoint", the scheme matched without regard to case.  Its list
 * is unset until the first cgrpc_resolver_update() or
 * cgrpc_resolver_fail(); a channel that needs addresses before then calls
 * |resolve| (may be NULL) and waits for them.
 *
 * |scheme| is a URI scheme (a letter, then letters, digits, '+', '-' or
 * '.'; at most 31 bytes), and not one the library resolves itself ("dns",
 * "ipv4", "ipv6", "unix", "unix-abstract").  The resolver copies it.
 * |user_data| is passed to |resolve|.
 *
 * Thread safety: any thread.
 *
 * Returns 0 (and writes |*resolver_ptr|), or one of:
 *   CGRPC_ERR_INVALID_ARGUMENT  |resolver_ptr| or |scheme| is NULL, or
 *                               |scheme| is malformed or built in.
 *   CGRPC_ERR_NOMEM             Out of memory.
 */
CGRPC_EXTERN int cgrpc_resolver_new(cgrpc_resolver **resolver_ptr,
                                    const char *scheme,
                                    cgrpc_resolver_resolve_cb resolve,
                                    void *user_data);

/*
 * Replaces the resolver's list with the |n_addrs| addresses of |addrs|, in
 * the order the load-balancing policy should see them (pick_first tries
 * them in this order).  Each is one of
 *
 *   "1.2.3.4:50051"        an IPv4 address and port
 *   "[::1]:50051"          an IPv6 address (in brackets) and port
 *   "unix:path", "unix:///absolute/path", "unix-abstract:name"
 *                          a Unix-domain socket, named as in a target
 *
 * Host names are not looked up (this list is what a lookup gives), and
 * the port must be written.  Every channel that uses the resolver takes
 * the new list soon, on its own thread; a channel created later starts
 * with it.  An empty list (|n_addrs| 0; |addrs| may then be NULL) closes
 * the channels' connections as they finish their calls and puts the
 * channels in TRANSIENT_FAILURE: fail-fast calls fail with UNAVAILABLE
 * ("... the resolver gave no addresses"), wait-for-ready calls wait for a
 * later update until their deadline.
 *
 * Does not take ownership of |addrs|: the library does not refer to it
 * after this function returns.  When an address is malformed, the list is
 * left as it was, and what is wrong is written to |err| when not NULL (at
 * most |err_size| bytes, NUL included), e.g.
 * "address 1 (\"10.0.0.2\"): no port (write \"addr:PORT\")".
 *
 * Thread safety: any thread, the resolve callback and other callbacks of
 * the library included.  Not after cgrpc_resolver_del().
 *
 * Returns 0, or one of:
 *   CGRPC_ERR_INVALID_ARGUMENT  |resolver| is NULL, |addrs| is NULL with
 *                               |n_addrs| > 0, or an address is malformed.
 *   CGRPC_ERR_NOMEM             Out of memory (the list is unchanged).
 */
CGRPC_EXTERN int cgrpc_resolver_update(cgrpc_resolver *resolver,
                                       const char *const *addrs, size_t n_addrs,
                                       char *err, size_t err_size);

/*
 * Reports that the addresses cannot be found now, with |message| (copied;
 * NULL: "resolution failed"), as gRPC resolvers report an error.  A channel
 * that has addresses from an earlier update keeps using them (the failure
 * is logged).  One without any, or with an empty list, is in
 * TRANSIENT_FAILURE until an update comes: fail-fast calls fail with
 * UNAVAILABLE and a message that holds |message|, wait-for-ready calls
 * wait until their deadline.  A channel created later starts in this
 * state.
 *
 * Thread safety: any thread, callbacks included.  Not after
 * cgrpc_resolver_del().
 *
 * Returns 0, CGRPC_ERR_INVALID_ARGUMENT (|resolver| is NULL) or
 * CGRPC_ERR_NOMEM (nothing changed).
 */
CGRPC_EXTERN int cgrpc_resolver_fail(cgrpc_resolver *resolver,
                                     const char *message);

/*
 * Releases the application's hold on |resolver|.  The resolve callback is
 * not called again: when this returns, no call of it is running (unless
 * this is called from the callback itself: then none runs once that one
 * has returned), so its |user_data| may be freed.  Channels that use the
 * resolver keep its last list (or failure), and options keep it for the
 * channels they create; the memory goes with the last of them.
 * |resolver| must not be used afterwards.  Passing NULL does nothing.
 *
 * Thread safety: any thread, the resolve callback included.  From another
 * callback of a channel it may wait for a resolve callback running on
 * another channel's thread to return.
 */
CGRPC_EXTERN void cgrpc_resolver_del(cgrpc_resolver *resolver);

#ifdef __cplusplus
}
#endif

#endif /* CGRPC_RESOLVER_H */
