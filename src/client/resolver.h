/* SPDX-License-Identifier: MIT */
/*
 * An application's resolver (cgrpc_resolver, include/cgrpc/resolver.h):
 * the list it was last given, the channels that follow it, and its
 * resolve callback.
 *
 * Threads.  The application updates the list from any thread; the update
 * replaces an immutable, reference-counted state under the resolver's lock
 * and posts a task (embedded in each channel's link, so posting cannot
 * fail) to every channel that follows the resolver.  The channel reads the
 * current state on its own loop thread.  Nothing here touches a channel's
 * load-balancing state.
 *
 * Lifetimes.  The application, each options object and each channel hold
 * a reference.  A channel links itself at creation and unlinks in its close
 * task; while linked it is alive (its close task has not run), and a task
 * posted to it holds a channel reference until it has run.  The resolve
 * callback is called without the lock; cgrpc_resolver_del() clears it and
 * waits for the calls running on other threads.
 */
#ifndef CGRPC_CLIENT_RESOLVER_H
#define CGRPC_CLIENT_RESOLVER_H

#include <stdatomic.h>
#include <stddef.h>

#include "cgrpc/resolver.h"
#include "io/loop.h"
#include "io/sock.h"

struct cgrpc_channel;

/* One list (or failure) as the application gave it; never changed. */
typedef struct cgrpc__resolver_state {
  atomic_int refs;
  int failed; /* cgrpc_resolver_fail(): |message| says why */
  char message[200];
  size_t n_addrs;
  cgrpc__addr addrs[]; /* |n_addrs| of them */
} cgrpc__resolver_state;

/* A channel's place in its resolver's list of channels.  Embedded in the
 * channel; |next|, |prev| and |posted| are guarded by the resolver's lock. */
typedef struct cgrpc__resolver_link {
  struct cgrpc__resolver_link *next, *prev;
  struct cgrpc_channel *ch;
  int linked;
  int posted; /* |task| is on its way to the channel's loop */
  cgrpc__task task;
} cgrpc__resolver_link;

/* A reference on |r| (any thread), and its release: the last frees it. */
void cgrpc__resolver_ref(cgrpc_resolver *r);
void cgrpc__resolver_unref(cgrpc_resolver *r);

/* The scheme |r| serves, as given to cgrpc_resolver_new(). */
const char *cgrpc__resolver_scheme(const cgrpc_resolver *r);

/* Links |link| (of the channel |ch|, whose loop runs) to |r|: every later
 * update posts |link->task|, which runs |cb(ch)| on the channel's loop with
 * a channel reference that |cb| must drop.  Any thread. */
void cgrpc__resolver_link_add(cgrpc_resolver *r, cgrpc__resolver_link *link,
                              struct cgrpc_channel *ch, cgrpc__task_cb cb);
/* Unlinks |link|; no task is posted to it afterwards (one on its way still
 * runs).  NULL-safe for an unlinked |link|.  Any thread. */
void cgrpc__resolver_link_remove(cgrpc_resolver *r, cgrpc__resolver_link *link);
/* Posts |link|'s task as an update does (it applies the current state in
 * a later turn), unless it is on its way already.  Any thread. */
void cgrpc__resolver_link_post(cgrpc_resolver *r, cgrpc__resolver_link *link);
/* Marks |link|'s task as run, so that the next update posts it again
 * (called first thing by the task). */
void cgrpc__resolver_link_ran(cgrpc_resolver *r, cgrpc__resolver_link *link);

/* The current state with a reference, or NULL when the application has
 * given none yet.  Any thread. */
cgrpc__resolver_state *cgrpc__resolver_current(cgrpc_resolver *r);
void cgrpc__resolver_state_unref(cgrpc__resolver_state *s);

/* Calls the resolve callback, unless there is none or the application
 * deleted the resolver.  A channel's loop thread, holding no lock. */
void cgrpc__resolver_call(cgrpc_resolver *r);

#endif /* CGRPC_CLIENT_RESOLVER_H */
