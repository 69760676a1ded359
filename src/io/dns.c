/* SPDX-License-Identifier: MIT */
#include "io/dns.h"

#include <ares.h>
#include <stdio.h>
#include <string.h>

#include "cgrpc/error.h"
#include "util/clock.h"
#include "util/mem.h"

/* c-ares keeps one UDP socket per server, and a TCP one after a truncated
 * answer: a few slots are plenty.  They are embedded, not allocated per
 * socket, because the loop may still hold an event for a slot that c-ares
 * closed earlier in the same turn: a slot unwatched (cb NULL) is skipped,
 * a slot freed would be read after the free. */
#define MAX_SOCKETS 16

/* Per try; c-ares doubles it on each retry.  Our own timer bounds the
 * whole lookup. */
#define TRY_TIMEOUT_MS 3000
#define TRIES 3

typedef struct dns_sock {
  cgrpc__dns *dns;
  cgrpc__watch w;
  int fd; /* -1: free */
} dns_sock;

struct cgrpc__dns {
  cgrpc__loop *loop;
  ares_channel ares;
  dns_sock socks[MAX_SOCKETS];
  cgrpc__timer ares_timer; /* c-ares' next retransmission */
  cgrpc__timer deadline;   /* the lookup's bound */
  /* The lookup in flight: |cb| is NULL when there is none. */
  cgrpc__dns_cb cb;
  void *user_data;
  char host[256];
  int64_t timeout_ms;
};

static void deadline_fired(void *user_data);

static void update_timer(cgrpc__dns *dns) {
  struct timeval tv, *next = ares_timeout(dns->ares, NULL, &tv);
  if (!next) {
    cgrpc__loop_timer_stop(dns->loop, &dns->ares_timer);
    return;
  }
  /* A failure to arm it leaves the lookup to its deadline. */
  cgrpc__loop_timer_start(dns->loop, &dns->ares_timer,
                          cgrpc__now_ns() + (int64_t)next->tv_sec * 1000000000 +
                              (int64_t)next->tv_usec * 1000);
}

static void sock_io(void *user_data, unsigned events) {
  dns_sock *s = user_data;
  cgrpc__dns *dns = s->dns;
  int fd = s->fd;
  ares_process_fd(dns->ares, events & CGRPC__IO_READ ? fd : ARES_SOCKET_BAD,
                  events & CGRPC__IO_WRITE ? fd : ARES_SOCKET_BAD);
  update_timer(dns);
}

static void ares_timer_fired(void *user_data) {
  cgrpc__dns *dns = user_data;
  ares_process_fd(dns->ares, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
  update_timer(dns);
}

/* c-ares opens, changes or closes a socket. */
static void sock_state(void *data, ares_socket_t fd, int readable,
                       int writable) {
  cgrpc__dns *dns = data;
  unsigned events = (readable ? CGRPC__IO_READ : 0) |
                    (writable ? CGRPC__IO_WRITE : 0);
  dns_sock *s = NULL, *free_slot = NULL;
  size_t i;
  for (i = 0; i < MAX_SOCKETS; i++) {
    if (dns->socks[i].fd == fd)
      s = &dns->socks[i];
    else if (dns->socks[i].fd < 0 && !free_slot)
      free_slot = &dns->socks[i];
  }
  if (!events) {
    if (s) {
      cgrpc__loop_unwatch(dns->loop, &s->w);
      s->fd = -1;
    }
    return;
  }
  if (s) {
    cgrpc__loop_watch_update(dns->loop, &s->w, events);
    return;
  }
  /* No slot, or no watch: the socket is never read, and the lookup ends
   * at its deadline. */
  if (free_slot && cgrpc__loop_watch(dns->loop, &free_slot->w, fd, events,
                                     sock_io, free_slot) == 0)
    free_slot->fd = fd;
}

int cgrpc__dns_new(cgrpc__dns **dns_ptr, cgrpc__loop *loop,
                   const char *server) {
  struct ares_options o;
  int mask, rv;
  size_t i;
  char lookups[] = "fb"; /* /etc/hosts, then DNS */
  cgrpc__dns *dns = cgrpc__calloc(1, sizeof *dns);
  if (!dns)
    return CGRPC_ERR_NOMEM;
  dns->loop = loop;
  for (i = 0; i < MAX_SOCKETS; i++) {
    dns->socks[i].dns = dns;
    dns->socks[i].fd = -1;
  }
  cgrpc__timer_init(&dns->ares_timer, ares_timer_fired, dns);
  cgrpc__timer_init(&dns->deadline, deadline_fired, dns);
  memset(&o, 0, sizeof o);
  o.sock_state_cb = sock_state;
  o.sock_state_cb_data = dns;
  o.lookups = lookups;
  o.timeout = TRY_TIMEOUT_MS;
  o.tries = TRIES;
  mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_LOOKUPS | ARES_OPT_TIMEOUTMS |
         ARES_OPT_TRIES;
  rv = ares_init_options(&dns->ares, &o, mask);
  if (rv != ARES_SUCCESS) {
    cgrpc__free(dns);
    return rv == ARES_ENOMEM ? CGRPC_ERR_NOMEM : CGRPC_ERR_IO;
  }
  if (server && *server &&
      (rv = ares_set_servers_ports_csv(dns->ares, server)) != ARES_SUCCESS) {
    ares_destroy(dns->ares);
    cgrpc__free(dns);
    return rv == ARES_ENOMEM ? CGRPC_ERR_NOMEM : CGRPC_ERR_IO;
  }
  *dns_ptr = dns;
  return 0;
}

void cgrpc__dns_del(cgrpc__dns *dns) {
  size_t i;
  if (!dns)
    return;
  dns->cb = NULL; /* ares_destroy() reports ARES_EDESTRUCTION: unheard */
  ares_destroy(dns->ares);
  for (i = 0; i < MAX_SOCKETS; i++)
    if (dns->socks[i].fd >= 0)
      cgrpc__loop_unwatch(dns->loop, &dns->socks[i].w);
  cgrpc__loop_timer_stop(dns->loop, &dns->ares_timer);
  cgrpc__loop_timer_stop(dns->loop, &dns->deadline);
  cgrpc__free(dns);
}

/* Ends the lookup: its callback no longer runs for anything c-ares says. */
static void finish(cgrpc__dns *dns, const cgrpc__addr *addrs, size_t n,
                   const char *error) {
  cgrpc__dns_cb cb = dns->cb;
  void *user_data = dns->user_data;
  dns->cb = NULL;
  cgrpc__loop_timer_stop(dns->loop, &dns->deadline);
  if (cb)
    cb(user_data, addrs, n, error);
}

static void lookup_done(void *arg, int status, int timeouts,
                        struct ares_addrinfo *res) {
  cgrpc__dns *dns = arg;
  struct ares_addrinfo_node *node;
  cgrpc__addr *addrs = NULL;
  size_t n = 0;
  char msg[320];
  (void)timeouts;
  if (!dns->cb || status == ARES_ECANCELLED || status == ARES_EDESTRUCTION) {
    ares_freeaddrinfo(res);
    return; /* cancelled: nobody waits */
  }
  if (status == ARES_SUCCESS && res) {
    for (node = res->nodes; node; node = node->ai_next)
      n++;
    addrs = cgrpc__calloc(n ? n : 1, sizeof *addrs);
    if (!addrs)
      status = ARES_ENOMEM;
    n = 0;
    for (node = addrs ? res->nodes : NULL; node; node = node->ai_next) {
      if (node->ai_addrlen > sizeof addrs[n].ss ||
          (node->ai_family != AF_INET && node->ai_family != AF_INET6))
        continue;
      memcpy(&addrs[n].ss, node->ai_addr, node->ai_addrlen);
      addrs[n].len = (socklen_t)node->ai_addrlen;
      n++;
    }
  }
  ares_freeaddrinfo(res);
  if (status == ARES_SUCCESS && n == 0)
    status = ARES_ENODATA;
  if (status != ARES_SUCCESS) {
    snprintf(msg, sizeof msg, "cannot resolve %s: %s", dns->host,
             ares_strerror(status));
    finish(dns, NULL, 0, msg);
  } else {
    finish(dns, addrs, n, NULL);
  }
  cgrpc__free(addrs);
}

static void deadline_fired(void *user_data) {
  cgrpc__dns *dns = user_data;
  cgrpc__dns_cb cb = dns->cb;
  char msg[320];
  snprintf(msg, sizeof msg, "DNS query for %s timed out after %lld ms",
           dns->host, (long long)dns->timeout_ms);
  /* Unhear c-ares first: ares_cancel() reports ARES_ECANCELLED. */
  dns->cb = NULL;
  ares_cancel(dns->ares);
  update_timer(dns);
  dns->cb = cb;
  finish(dns, NULL, 0, msg);
}

int cgrpc__dns_resolve(cgrpc__dns *dns, const char *host, const char *port,
                       int64_t timeout_ms, cgrpc__dns_cb cb, void *user_data) {
  struct ares_addrinfo_hints hints;
  if (dns->cb)
    return CGRPC_ERR_INVALID_STATE;
  if (cgrpc__loop_timer_start(dns->loop, &dns->deadline,
                              cgrpc__now_ns() + timeout_ms * 1000000) != 0)
    return CGRPC_ERR_NOMEM;
  snprintf(dns->host, sizeof dns->host, "%s", host);
  dns->timeout_ms = timeout_ms;
  dns->cb = cb;
  dns->user_data = user_data;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = ARES_AI_NUMERICSERV;
  ares_getaddrinfo(dns->ares, host, port, &hints, lookup_done, dns);
  update_timer(dns);
  return 0;
}

void cgrpc__dns_cancel(cgrpc__dns *dns) {
  if (!dns || !dns->cb)
    return;
  dns->cb = NULL;
  cgrpc__loop_timer_stop(dns->loop, &dns->deadline);
  ares_cancel(dns->ares);
  update_timer(dns);
}
