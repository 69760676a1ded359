/* SPDX-License-Identifier: MIT */
/*
 * The channel's addresses and how calls are spread over them: name
 * resolution (a "dns:" target's lookups, at most every 30 s by default
 * after a connection dropped or failed; or the lists of an application's
 * cgrpc_resolver, client/resolver.h), one subchannel per address, and the two
 * policies of gRPC's load-balancing doc (and gRFC A61/A62):
 *
 *   pick_first   tries the addresses in order, one at a time, and uses the
 *                first that connects (the others are let go).  When every
 *                address failed the channel is TRANSIENT_FAILURE and each
 *                address retries on its own, after its backoff, until one
 *                connects.  When the chosen connection drops or gets a
 *                GOAWAY, the channel goes IDLE: the next call starts over.
 *   round_robin  connects every address and gives each call the next
 *                READY one; an address whose connection drops reconnects
 *                at once (after its backoff when it failed).  READY while
 *                any is; TRANSIENT_FAILURE when all failed, until one
 *                connects.
 *
 * Nothing here reports to the policy from inside the policy: subchannels
 * report from their own events, and lookups start on a timer (so that a
 * lookup answered at once, from /etc/hosts, does not change the address
 * list under whoever asked for it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cgrpc/error.h"
#include "client/internal.h"
#include "util/clock.h"
#include "io/sock.h"
#include "util/mem.h"
#include "util/trace.h"

#define NS_PER_MS ((int64_t)1000000)

/* ---- the address list ---- */

static int same_addr(const cgrpc__addr *a, const cgrpc__addr *b) {
  return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

/* Replaces the subchannels with one per address of |addrs|, keeping those
 * (and their connections) of the addresses that stay.  Returns 0, or
 * CGRPC_ERR_NOMEM with the list unchanged. */
static int set_addresses(cgrpc_channel *ch, const cgrpc__addr *addrs,
                         size_t n) {
  cgrpc__subchannel **subs = cgrpc__calloc(n ? n : 1, sizeof *subs);
  size_t i, j;
  if (!subs)
    return CGRPC_ERR_NOMEM;
  for (i = 0; i < ch->n_subs; i++)
    ch->subs[i]->keep = 0;
  for (i = 0; i < n; i++) {
    for (j = 0; j < ch->n_subs && !subs[i]; j++)
      if (!ch->subs[j]->keep && same_addr(&ch->subs[j]->addr, &addrs[i])) {
        subs[i] = ch->subs[j];
        subs[i]->keep = 1;
      }
    if (!subs[i]) {
      subs[i] = cgrpc__subchannel_new(ch, &addrs[i]);
      if (!subs[i])
        break;
      subs[i]->keep = 2; /* new */
    }
  }
  if (i < n) {
    for (j = 0; j < i; j++)
      if (subs[j]->keep == 2)
        cgrpc__subchannel_del(subs[j]);
    cgrpc__free(subs);
    return CGRPC_ERR_NOMEM;
  }
  for (i = 0; i < ch->n_subs; i++) {
    cgrpc__subchannel *old = ch->subs[i];
    if (old->keep)
      continue;
    if (ch->selected == old)
      ch->selected = NULL;
    cgrpc__subchannel_del(old);
  }
  cgrpc__free(ch->subs);
  ch->subs = subs;
  ch->n_subs = n;
  ch->pf_index = 0;
  ch->rr_next = 0;
  ch->has_addresses = 1;
  return 0;
}

/* ---- pick_first ---- */

static void pf_select(cgrpc_channel *ch, cgrpc__subchannel *sc) {
  size_t i;
  ch->selected = sc;
  ch->pf_failed_pass = 0;
  for (i = 0; i < ch->n_subs; i++)
    if (ch->subs[i] != sc)
      cgrpc__subchannel_reset(ch->subs[i]);
  cgrpc__channel_set_state(ch, CGRPC_CHANNEL_READY);
}

/* The pass over the addresses goes on from |pf_index|. */
static void pf_advance(cgrpc_channel *ch) {
  size_t i;
  while (ch->pf_index < ch->n_subs) {
    cgrpc__subchannel *sc = ch->subs[ch->pf_index];
    if (sc->state == CGRPC_CHANNEL_READY) {
      pf_select(ch, sc);
      return;
    }
    cgrpc__subchannel_connect(sc); /* if IDLE */
    if (sc->state == CGRPC_CHANNEL_CONNECTING) {
      if (ch->state != CGRPC_CHANNEL_TRANSIENT_FAILURE) /* sticky */
        cgrpc__channel_set_state(ch, CGRPC_CHANNEL_CONNECTING);
      return;
    }
    ch->pf_index++; /* failed (maybe just now): the next one */
  }
  /* Every address failed: each tries again when its backoff is over. */
  ch->pf_failed_pass = 1;
  cgrpc__channel_set_state(ch, CGRPC_CHANNEL_TRANSIENT_FAILURE);
  for (i = 0; i < ch->n_subs && !ch->selected; i++)
    cgrpc__subchannel_connect(ch->subs[i]);
}

static void pf_start(cgrpc_channel *ch) {
  if (ch->selected)
    return;
  ch->pf_index = 0;
  ch->pf_failed_pass = 0;
  pf_advance(ch);
}

static void pf_changed(cgrpc__subchannel *sc, int old) {
  cgrpc_channel *ch = sc->ch;
  (void)old;
  if (sc == ch->selected) {
    if (sc->state == CGRPC_CHANNEL_READY)
      return;
    /* The connection in use went: IDLE, and the next call starts over
     * (gRFC A62). */
    ch->selected = NULL;
    cgrpc__channel_set_state(ch, CGRPC_CHANNEL_IDLE);
    if (ch->pending)
      cgrpc__lb_exit_idle(ch);
    return;
  }
  if (ch->selected || ch->state == CGRPC_CHANNEL_IDLE)
    return;
  if (sc->state == CGRPC_CHANNEL_READY) {
    pf_select(ch, sc);
    return;
  }
  if (ch->pf_failed_pass) {
    cgrpc__subchannel_connect(sc); /* its backoff is over (if IDLE) */
    return;
  }
  if (ch->pf_index < ch->n_subs && ch->subs[ch->pf_index] == sc &&
      sc->state != CGRPC_CHANNEL_CONNECTING) {
    if (sc->state == CGRPC_CHANNEL_TRANSIENT_FAILURE)
      ch->pf_index++;
    pf_advance(ch);
  }
}

/* ---- round_robin ---- */

static void rr_update_state(cgrpc_channel *ch) {
  int ready = 0, trying = 0;
  size_t i;
  for (i = 0; i < ch->n_subs; i++) {
    if (ch->subs[i]->state == CGRPC_CHANNEL_READY)
      ready = 1;
    else if (ch->subs[i]->state != CGRPC_CHANNEL_TRANSIENT_FAILURE)
      trying = 1;
  }
  if (ready)
    cgrpc__channel_set_state(ch, CGRPC_CHANNEL_READY);
  else if (!trying || ch->state == CGRPC_CHANNEL_TRANSIENT_FAILURE)
    cgrpc__channel_set_state(ch, CGRPC_CHANNEL_TRANSIENT_FAILURE);
  else
    cgrpc__channel_set_state(ch, CGRPC_CHANNEL_CONNECTING);
}

static void rr_start(cgrpc_channel *ch) {
  size_t i;
  for (i = 0; i < ch->n_subs; i++)
    cgrpc__subchannel_connect(ch->subs[i]);
  rr_update_state(ch);
}

static void rr_changed(cgrpc__subchannel *sc, int old) {
  cgrpc_channel *ch = sc->ch;
  (void)old;
  if (ch->state == CGRPC_CHANNEL_IDLE)
    return;
  cgrpc__subchannel_connect(sc); /* reconnect at once (if IDLE) */
  rr_update_state(ch);
}

/* ---- the policy ---- */

static void policy_start(cgrpc_channel *ch) {
  if (ch->lb_policy == CGRPC__LB_ROUND_ROBIN)
    rr_start(ch);
  else
    pf_start(ch);
}

void cgrpc__lb_subchannel_changed(cgrpc__subchannel *sc, int old) {
  cgrpc_channel *ch = sc->ch;
  if (ch->close_started)
    return;
  if (ch->lb_policy == CGRPC__LB_ROUND_ROBIN)
    rr_changed(sc, old);
  else
    pf_changed(sc, old);
  if (ch->state == CGRPC_CHANNEL_READY && ch->pending)
    cgrpc__channel_submit_pending(ch);
}

cgrpc__client_conn *cgrpc__lb_pick(cgrpc_channel *ch) {
  size_t i, n = ch->n_subs;
  if (ch->lb_policy != CGRPC__LB_ROUND_ROBIN)
    return ch->selected ? cgrpc__subchannel_pickable(ch->selected) : NULL;
  for (i = 0; i < n; i++) {
    size_t at = ch->rr_next + i < n ? ch->rr_next + i : ch->rr_next + i - n;
    cgrpc__client_conn *conn = cgrpc__subchannel_pickable(ch->subs[at]);
    if (conn) {
      ch->rr_next = at + 1 < n ? at + 1 : 0;
      return conn;
    }
  }
  return NULL;
}

/* ---- resolution ---- */

static int64_t jittered_ms(int64_t ms, double jitter) {
  double unit = 2.0 * ((double)rand() / RAND_MAX) - 1.0;
  return (int64_t)((double)ms * (1.0 + jitter * unit));
}

/* No addresses to use (|last_error| says why): TRANSIENT_FAILURE until a
 * backoff is over; then the resolver is asked again if calls (or
 * cgrpc_channel_wait_for_ready()) wait, else the channel goes IDLE and the
 * next call asks. */
static void resolution_backoff(cgrpc_channel *ch) {
  const cgrpc_connect_backoff *b = &ch->opts.backoff;
  double next;
  ch->resolve_failed = 1;
  if (ch->resolve_backoff_ms <= 0)
    ch->resolve_backoff_ms = b->initial_ms;
  if (cgrpc__loop_timer_start(
          ch->loop, &ch->resolve_timer,
          cgrpc__now_ns() +
              jittered_ms(ch->resolve_backoff_ms, b->jitter) * NS_PER_MS) != 0)
    ch->resolve_failed = 0; /* no timer: the next call looks again */
  next = (double)ch->resolve_backoff_ms * b->multiplier;
  ch->resolve_backoff_ms = next > (double)b->max_ms ? b->max_ms : (int64_t)next;
  cgrpc__channel_set_state(ch, CGRPC_CHANNEL_TRANSIENT_FAILURE);
  if (!ch->resolve_failed)
    cgrpc__channel_set_state(ch, CGRPC_CHANNEL_IDLE);
}

/* The lookup failed with |why|.  With addresses from before, they stay in
 * use.  Without, the channel is in TRANSIENT_FAILURE until a backoff is
 * over; then it looks again if calls (or cgrpc_channel_wait_for_ready())
 * wait, else it goes IDLE and the next call looks again. */
static void resolution_failed(cgrpc_channel *ch, const char *why) {
  cgrpc__log(&ch->log, CGRPC_LOG_WARNING, "resolving %s: %s",
             cgrpc__channel_target_name(ch), why);
  if (ch->has_addresses) {
    /* The addresses from before go on (a connection may wait for this
     * lookup to begin). */
    if (ch->state != CGRPC_CHANNEL_IDLE &&
        (ch->lb_policy == CGRPC__LB_ROUND_ROBIN || !ch->selected))
      policy_start(ch);
    return;
  }
  snprintf(ch->last_error, sizeof ch->last_error, "%.*s",
           (int)sizeof ch->last_error - 1, why); /* cut to fit */
  resolution_backoff(ch);
}

/* The lookup ended (loop thread; maybe inside cgrpc__dns_resolve()). */
static void resolved(void *user_data, const cgrpc__addr *addrs, size_t n,
                     const char *error) {
  cgrpc_channel *ch = user_data;
  ch->resolving = 0;
  if (cgrpc__trace_on(&ch->log, CGRPC__TRACE_DNS)) {
    char list[256], name[64];
    size_t used = 0;
    list[0] = '\0';
    for (size_t i = 0; i < n && used < sizeof list; i++) {
      int k;
      cgrpc__sock_peer_name((const struct sockaddr *)&addrs[i].ss,
                            addrs[i].len, name, sizeof name);
      k = snprintf(list + used, sizeof list - used, "%s%s", i ? " " : "",
                   name);
      if (k > 0)
        used += (size_t)k;
    }
    cgrpc__trace(&ch->log, CGRPC__TRACE_DNS, "%s: %zu address(es)%s%s%s",
                 ch->target.host, n, n ? ": " : "", list,
                 error ? error : "");
  }
  if (error || n == 0) {
    resolution_failed(ch, error ? error : "no addresses");
    return;
  }
  if (set_addresses(ch, addrs, n) != 0) {
    resolution_failed(ch, "out of memory");
    return;
  }
  ch->resolve_stale = 0;
  ch->resolve_failed = 0;
  ch->resolve_backoff_ms = 0;
  if (ch->state == CGRPC_CHANNEL_IDLE)
    return;
  if (ch->lb_policy == CGRPC__LB_ROUND_ROBIN || !ch->selected)
    policy_start(ch);
  if (ch->state == CGRPC_CHANNEL_READY && ch->pending)
    cgrpc__channel_submit_pending(ch);
}

static void resolve(cgrpc_channel *ch) {
  char why[300];
  int rv;
  if (ch->resolving || !ch->dns || ch->close_started)
    return;
  ch->resolving = 1;
  ch->resolved_at_ns = cgrpc__now_ns();
  CGRPC__TRACE(&ch->log, DNS, "resolving %s", ch->target.host);
  rv = cgrpc__dns_resolve(ch->dns, ch->target.host, ch->target.port,
                          ch->opts.dns_timeout_ms, resolved, ch);
  if (rv != 0) {
    ch->resolving = 0;
    snprintf(why, sizeof why, "cannot resolve %.200s: %s", ch->target.host,
             cgrpc_strerror(rv));
    resolution_failed(ch, why);
  }
}

static void custom_timer_fired(cgrpc_channel *ch);

static void resolve_timer_fired(void *user_data) {
  cgrpc_channel *ch = user_data;
  if (ch->close_started)
    return;
  if (ch->resolver) {
    custom_timer_fired(ch);
    return;
  }
  if (ch->resolve_failed) {
    ch->resolve_failed = 0;
    if (ch->pending || atomic_load(&ch->ready_waiters))
      resolve(ch);
    else
      cgrpc__channel_set_state(ch, CGRPC_CHANNEL_IDLE);
    return;
  }
  if (ch->state != CGRPC_CHANNEL_IDLE &&
      (ch->resolve_stale || !ch->has_addresses))
    resolve(ch);
}

/* Looks the name up on the next turn, or when 30 s have passed since the
 * last lookup began. */
static void resolve_soon(cgrpc_channel *ch, int64_t now) {
  int64_t at = ch->resolved_at_ns + ch->opts.dns_min_interval_ms * NS_PER_MS;
  if (!ch->has_addresses || at < now)
    at = now;
  if (ch->resolve_timer.heap_index < 0 &&
      cgrpc__loop_timer_start(ch->loop, &ch->resolve_timer, at) != 0)
    cgrpc__log(&ch->log, CGRPC_LOG_WARNING,
               "out of memory: %s not looked up again",
               cgrpc__channel_target_name(ch));
}

static void custom_request(cgrpc_channel *ch);

void cgrpc__lb_request_resolution(cgrpc_channel *ch) {
  if (ch->resolver) {
    custom_request(ch);
    return;
  }
  ch->resolve_stale = 1;
  if (!ch->dns || ch->resolving || ch->resolve_failed ||
      ch->state == CGRPC_CHANNEL_IDLE || ch->close_started)
    return;
  resolve_soon(ch, cgrpc__now_ns());
}

void cgrpc__lb_init(cgrpc_channel *ch) {
  cgrpc__timer_init(&ch->resolve_timer, resolve_timer_fired, ch);
}

void cgrpc__lb_exit_idle(cgrpc_channel *ch) {
  int64_t now;
  if (ch->state != CGRPC_CHANNEL_IDLE || ch->close_started)
    return;
  cgrpc__channel_set_state(ch, CGRPC_CHANNEL_CONNECTING);
  if (ch->resolver) {
    /* The resolver's current list, applied in the next turn (not under a
     * subchannel's report, which may have brought us here); and a fresh
     * one asked for after a drop or the idle timeout. */
    if (ch->resolve_stale)
      custom_request(ch);
    cgrpc__resolver_link_post(ch->resolver, &ch->resolver_link);
    return;
  }
  if (ch->target.kind != CGRPC__TARGET_DNS) {
    if (!ch->has_addresses &&
        set_addresses(ch, ch->target.addrs, ch->target.n_addrs) != 0) {
      snprintf(ch->last_error, sizeof ch->last_error, "out of memory");
      cgrpc__channel_set_state(ch, CGRPC_CHANNEL_TRANSIENT_FAILURE);
      cgrpc__channel_set_state(ch, CGRPC_CHANNEL_IDLE);
      return;
    }
    policy_start(ch);
    return;
  }
  if (ch->resolving || ch->resolve_failed)
    return;
  /* Looked up first: the first time, and after a drop or failure when the
   * last lookup is 30 s old (the server may have moved). */
  now = cgrpc__now_ns();
  if (!ch->has_addresses ||
      (ch->resolve_stale &&
       now - ch->resolved_at_ns >= ch->opts.dns_min_interval_ms * NS_PER_MS)) {
    resolve_soon(ch, now);
    return;
  }
  if (ch->resolve_stale)
    cgrpc__lb_request_resolution(ch);
  policy_start(ch);
}

/* ---- an application's resolver (cgrpc_resolver, CUSTOM targets) ---- */

/* Asks the application for a fresh list: its callback runs from the
 * resolve timer in a later turn, never from inside the policy.  While a
 * failed list backs off, the backoff's end asks instead. */
static void custom_request(cgrpc_channel *ch) {
  ch->resolve_stale = 1;
  if (ch->resolve_failed || ch->close_started)
    return;
  if (ch->resolve_timer.heap_index >= 0)
    return; /* already on its way */
  if (cgrpc__loop_timer_start(ch->loop, &ch->resolve_timer, cgrpc__now_ns()))
    cgrpc__log(&ch->log, CGRPC_LOG_WARNING,
               "out of memory: %s's resolver not asked for a new list",
               cgrpc__channel_target_name(ch));
}

static void custom_timer_fired(cgrpc_channel *ch) {
  if (ch->resolve_failed) {
    /* The backoff after an empty or failed list is over: ask again if
     * calls (or cgrpc_channel_wait_for_ready()) wait, else go IDLE (the
     * next call looks at the list again). */
    ch->resolve_failed = 0;
    if (!ch->pending && !atomic_load(&ch->ready_waiters)) {
      cgrpc__channel_set_state(ch, CGRPC_CHANNEL_IDLE);
      return;
    }
  }
  ch->resolve_stale = 0;
  cgrpc__resolver_call(ch->resolver);
}

/* Uses the resolver's current list (the channel is not IDLE).  A failure
 * keeps the addresses from before, as gRPC does; an empty list, or a
 * failure with nothing from before, is TRANSIENT_FAILURE. */
static void custom_apply(cgrpc_channel *ch) {
  cgrpc__resolver_state *s = cgrpc__resolver_current(ch->resolver);
  int was_empty = ch->n_subs == 0, rv;
  if (!s) {
    custom_request(ch); /* nothing yet: CONNECTING until it comes */
    return;
  }
  if (s->failed) {
    cgrpc__log(&ch->log, CGRPC_LOG_WARNING, "resolving %s: %s%s",
               cgrpc__channel_target_name(ch), s->message,
               ch->n_subs ? " (the addresses from before stay)" : "");
    if (ch->n_subs) {
      if (ch->lb_policy == CGRPC__LB_ROUND_ROBIN || !ch->selected)
        policy_start(ch);
    } else {
      snprintf(ch->last_error, sizeof ch->last_error, "resolver error: %s",
               s->message);
      resolution_backoff(ch);
    }
    cgrpc__resolver_state_unref(s);
    return;
  }
  if (s->n_addrs == 0) {
    cgrpc__resolver_state_unref(s);
    if (set_addresses(ch, NULL, 0) != 0)
      cgrpc__log(&ch->log, CGRPC_LOG_WARNING,
                 "out of memory: %s keeps its addresses",
                 cgrpc__channel_target_name(ch));
    snprintf(ch->last_error, sizeof ch->last_error,
             "the resolver gave no addresses");
    resolution_backoff(ch);
    return;
  }
  rv = set_addresses(ch, s->addrs, s->n_addrs);
  cgrpc__resolver_state_unref(s);
  if (rv != 0) {
    snprintf(ch->last_error, sizeof ch->last_error, "out of memory");
    if (ch->n_subs == 0)
      resolution_backoff(ch);
    return;
  }
  ch->resolve_backoff_ms = 0;
  if (ch->resolve_failed) {
    ch->resolve_failed = 0;
    cgrpc__loop_timer_stop(ch->loop, &ch->resolve_timer);
  }
  /* Out of a failure the resolver caused: calls wait for the new
   * addresses to connect rather than fail with the old message. */
  if (was_empty && ch->state == CGRPC_CHANNEL_TRANSIENT_FAILURE)
    cgrpc__channel_set_state(ch, CGRPC_CHANNEL_CONNECTING);
  if (ch->lb_policy == CGRPC__LB_ROUND_ROBIN || !ch->selected)
    policy_start(ch);
  if (ch->state == CGRPC_CHANNEL_READY && ch->pending)
    cgrpc__channel_submit_pending(ch);
}

void cgrpc__lb_resolver_updated(void *user_data) {
  cgrpc_channel *ch = user_data;
  cgrpc__resolver_link_ran(ch->resolver, &ch->resolver_link);
  /* An IDLE channel takes the list when it leaves IDLE. */
  if (!ch->close_started && ch->state != CGRPC_CHANNEL_IDLE)
    custom_apply(ch);
  cgrpc__channel_unref(ch); /* the task's */
}

void cgrpc__lb_go_idle(cgrpc_channel *ch) {
  size_t i;
  for (i = 0; i < ch->n_subs; i++)
    cgrpc__subchannel_reset(ch->subs[i]);
  ch->selected = NULL;
  ch->pf_index = 0;
  ch->pf_failed_pass = 0;
  if (ch->resolving) {
    cgrpc__dns_cancel(ch->dns);
    ch->resolving = 0;
  }
  cgrpc__loop_timer_stop(ch->loop, &ch->resolve_timer);
  ch->resolve_failed = 0;
  ch->resolve_stale = 1; /* looked up again when it leaves IDLE */
  cgrpc__channel_set_state(ch, CGRPC_CHANNEL_IDLE);
}

void cgrpc__lb_shutdown(cgrpc_channel *ch) {
  size_t i;
  if (ch->resolving) {
    cgrpc__dns_cancel(ch->dns);
    ch->resolving = 0;
  }
  cgrpc__loop_timer_stop(ch->loop, &ch->resolve_timer);
  cgrpc__subchannel_close_all(ch);
  for (i = 0; i < ch->n_subs; i++)
    cgrpc__subchannel_del(ch->subs[i]);
  cgrpc__free(ch->subs);
  ch->subs = NULL;
  ch->n_subs = 0;
  ch->selected = NULL;
}
