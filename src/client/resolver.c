/* SPDX-License-Identifier: MIT */
/*
 * cgrpc_resolver: an application's address list and the channels that
 * follow it (see resolver.h).  The channel side, what a channel does with
 * a list, is in lb.c.
 */
#include "client/resolver.h"

#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cgrpc/error.h"
#include "client/internal.h"
#include "client/target.h"
#include "util/mem.h"

#define SCHEME_MAX 31

struct cgrpc_resolver {
  atomic_int refs;
  char scheme[SCHEME_MAX + 1];
  pthread_mutex_t lock;
  pthread_cond_t cond; /* a resolve callback returned */
  /* Guarded by |lock|. */
  cgrpc_resolver_resolve_cb resolve; /* NULL once deleted */
  void *user_data;
  int deleted;
  int calls_running;            /* resolve callbacks running now */
  cgrpc__resolver_state *state; /* a reference; NULL: nothing given yet */
  cgrpc__resolver_link *links;
};

/* The resolver whose callback this thread runs, if any (so that a delete
 * from inside the callback does not wait for itself). */
static _Thread_local const cgrpc_resolver *in_callback;

int cgrpc_resolver_new(cgrpc_resolver **resolver_ptr, const char *scheme,
                       cgrpc_resolver_resolve_cb resolve, void *user_data) {
  cgrpc_resolver *r;
  size_t n, i;
  if (!resolver_ptr || !scheme)
    return CGRPC_ERR_INVALID_ARGUMENT;
  n = strlen(scheme);
  if (n == 0 || n > SCHEME_MAX || !isalpha((unsigned char)scheme[0]) ||
      cgrpc__target_builtin_scheme(scheme, n))
    return CGRPC_ERR_INVALID_ARGUMENT;
  for (i = 0; i < n; i++)
    if (!isalnum((unsigned char)scheme[i]) && scheme[i] != '+' &&
        scheme[i] != '-' && scheme[i] != '.')
      return CGRPC_ERR_INVALID_ARGUMENT;
  r = cgrpc__calloc(1, sizeof *r);
  if (!r)
    return CGRPC_ERR_NOMEM;
  atomic_init(&r->refs, 1);
  memcpy(r->scheme, scheme, n + 1);
  pthread_mutex_init(&r->lock, NULL);
  pthread_cond_init(&r->cond, NULL);
  r->resolve = resolve;
  r->user_data = user_data;
  *resolver_ptr = r;
  return 0;
}

void cgrpc__resolver_ref(cgrpc_resolver *r) { atomic_fetch_add(&r->refs, 1); }

void cgrpc__resolver_unref(cgrpc_resolver *r) {
  if (!r || atomic_fetch_sub(&r->refs, 1) != 1)
    return;
  /* No channel is linked: each holds a reference until it is freed. */
  cgrpc__resolver_state_unref(r->state);
  pthread_cond_destroy(&r->cond);
  pthread_mutex_destroy(&r->lock);
  cgrpc__free(r);
}

const char *cgrpc__resolver_scheme(const cgrpc_resolver *r) {
  return r->scheme;
}

void cgrpc__resolver_state_unref(cgrpc__resolver_state *s) {
  if (s && atomic_fetch_sub(&s->refs, 1) == 1)
    cgrpc__free(s);
}

cgrpc__resolver_state *cgrpc__resolver_current(cgrpc_resolver *r) {
  cgrpc__resolver_state *s;
  pthread_mutex_lock(&r->lock);
  s = r->state;
  if (s)
    atomic_fetch_add(&s->refs, 1);
  pthread_mutex_unlock(&r->lock);
  return s;
}

/* Posts |l|'s task unless it is on its way already (it reads the newest
 * state when it runs).  Under the lock. */
static void post_locked(cgrpc__resolver_link *l) {
  if (l->posted || !l->linked)
    return;
  l->posted = 1;
  cgrpc__channel_ref(l->ch); /* the task's */
  cgrpc__loop_post_task(l->ch->loop, &l->task);
}

void cgrpc__resolver_link_post(cgrpc_resolver *r, cgrpc__resolver_link *link) {
  pthread_mutex_lock(&r->lock);
  post_locked(link);
  pthread_mutex_unlock(&r->lock);
}

/* Makes |s| the current state (taking the caller's reference) and tells
 * every linked channel. */
static void set_state(cgrpc_resolver *r, cgrpc__resolver_state *s) {
  cgrpc__resolver_state *old;
  cgrpc__resolver_link *l;
  pthread_mutex_lock(&r->lock);
  old = r->state;
  r->state = s;
  for (l = r->links; l; l = l->next)
    post_locked(l);
  pthread_mutex_unlock(&r->lock);
  cgrpc__resolver_state_unref(old);
}

static cgrpc__resolver_state *state_new(size_t n) {
  cgrpc__resolver_state *s;
  if (n > (SIZE_MAX - sizeof *s) / sizeof s->addrs[0])
    return NULL;
  s = cgrpc__calloc(1, sizeof *s + n * sizeof s->addrs[0]);
  if (s) {
    atomic_init(&s->refs, 1);
    s->n_addrs = n;
  }
  return s;
}

int cgrpc_resolver_update(cgrpc_resolver *r, const char *const *addrs, size_t n,
                          char *err, size_t err_size) {
  cgrpc__resolver_state *s;
  size_t i;
  if (err && err_size)
    err[0] = '\0';
  if (!r || (n && !addrs)) {
    if (err && err_size)
      snprintf(err, err_size, "%s", r ? "NULL address list" : "NULL resolver");
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  s = state_new(n);
  if (!s) {
    if (err && err_size)
      snprintf(err, err_size, "out of memory");
    return CGRPC_ERR_NOMEM;
  }
  for (i = 0; i < n; i++) {
    const char *why = "NULL address";
    if (!addrs[i] ||
        cgrpc__target_parse_address(addrs[i], &s->addrs[i], &why) != 0) {
      if (err && err_size)
        snprintf(err, err_size, "address %zu (\"%.100s\"): %s", i,
                 addrs[i] ? addrs[i] : "(null)", why);
      cgrpc__resolver_state_unref(s);
      return CGRPC_ERR_INVALID_ARGUMENT;
    }
  }
  set_state(r, s);
  return 0;
}

int cgrpc_resolver_fail(cgrpc_resolver *r, const char *message) {
  cgrpc__resolver_state *s;
  if (!r)
    return CGRPC_ERR_INVALID_ARGUMENT;
  s = state_new(0);
  if (!s)
    return CGRPC_ERR_NOMEM;
  s->failed = 1;
  snprintf(s->message, sizeof s->message, "%s",
           message && *message ? message : "resolution failed");
  set_state(r, s);
  return 0;
}

void cgrpc_resolver_del(cgrpc_resolver *r) {
  if (!r)
    return;
  pthread_mutex_lock(&r->lock);
  r->resolve = NULL;
  r->user_data = NULL;
  r->deleted = 1;
  /* The callbacks running on other threads finish first; one running on
   * this thread (the caller) is not waited for. */
  while (r->calls_running > (in_callback == r ? 1 : 0))
    pthread_cond_wait(&r->cond, &r->lock);
  pthread_mutex_unlock(&r->lock);
  cgrpc__resolver_unref(r);
}

void cgrpc__resolver_call(cgrpc_resolver *r) {
  cgrpc_resolver_resolve_cb cb;
  void *user_data;
  const cgrpc_resolver *outer;
  pthread_mutex_lock(&r->lock);
  cb = r->resolve;
  user_data = r->user_data;
  if (cb)
    r->calls_running++;
  pthread_mutex_unlock(&r->lock);
  if (!cb)
    return;
  outer = in_callback;
  in_callback = r;
  cb(r, user_data);
  in_callback = outer;
  pthread_mutex_lock(&r->lock);
  r->calls_running--;
  if (r->deleted)
    pthread_cond_broadcast(&r->cond);
  pthread_mutex_unlock(&r->lock);
}

void cgrpc__resolver_link_add(cgrpc_resolver *r, cgrpc__resolver_link *link,
                              struct cgrpc_channel *ch, cgrpc__task_cb cb) {
  link->ch = ch;
  link->posted = 0;
  cgrpc__task_init(&link->task, cb, ch);
  pthread_mutex_lock(&r->lock);
  link->prev = NULL;
  link->next = r->links;
  if (r->links)
    r->links->prev = link;
  r->links = link;
  link->linked = 1;
  pthread_mutex_unlock(&r->lock);
}

void cgrpc__resolver_link_remove(cgrpc_resolver *r,
                                 cgrpc__resolver_link *link) {
  pthread_mutex_lock(&r->lock);
  if (link->linked) {
    if (link->prev)
      link->prev->next = link->next;
    else
      r->links = link->next;
    if (link->next)
      link->next->prev = link->prev;
    link->next = link->prev = NULL;
    link->linked = 0;
  }
  pthread_mutex_unlock(&r->lock);
}

void cgrpc__resolver_link_ran(cgrpc_resolver *r, cgrpc__resolver_link *link) {
  pthread_mutex_lock(&r->lock);
  link->posted = 0;
  pthread_mutex_unlock(&r->lock);
}
