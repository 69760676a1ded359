/* SPDX-License-Identifier: MIT */
/*
 * Channel targets, as gRPC names them (doc/naming.md):
 *
 *   dns:[//server/]host[:port]   a name to look up (A and AAAA), through
 *                                |server| ("ip[:port]", "[v6][:port]") when
 *                                given, else the system's servers
 *   host[:port]                  the same as "dns:///host[:port]"
 *   ipv4:addr[:port][,addr[:port]...]
 *   ipv6:addr|[addr][:port][,...]  address lists, no lookup
 *   unix:path, unix:///path, unix-abstract:name   (io/sock.h)
 *
 * The port defaults to 443.  A dns target whose host is an IP address
 * needs no lookup either: it becomes a one-address list.
 */
#ifndef CGRPC_CLIENT_TARGET_H
#define CGRPC_CLIENT_TARGET_H

#include <stddef.h>

#include "io/sock.h"

enum {
  CGRPC__TARGET_DNS,   /* |host| and |port| to look up */
  CGRPC__TARGET_ADDRS, /* |addrs|: IP addresses given in the target */
  CGRPC__TARGET_UNIX,  /* |addrs|: one Unix-domain address */
  CGRPC__TARGET_CUSTOM /* an application's resolver gives the addresses */
};

typedef struct cgrpc__target {
  int kind;
  /* DNS: the name; ADDRS: the first address (no brackets); UNIX and
   * CUSTOM: the target itself, for messages. */
  char host[256];
  char port[8];
  /* DNS: the server named after "dns://", as c-ares' server list takes it
   * ("127.0.0.1:5353", "[::1]:53"); "" for the system's. */
  char dns_server[80];
  /* The default :authority: the host[:port] text for dns targets (":443"
   * added when no port is written), the first address for lists,
   * "localhost" for Unix sockets, the endpoint for CUSTOM (NULL when it is
   * empty).  Allocated. */
  char *authority;
  cgrpc__addr *addrs; /* ADDRS and UNIX; allocated */
  size_t n_addrs;
} cgrpc__target;

/*
 * Parses |text| into |*t| (zeroed first).  Returns 0, CGRPC_ERR_NOMEM, or
 * CGRPC_ERR_INVALID_ARGUMENT with |*why| set to a static description of
 * what is wrong.  |*t| holds nothing to free after a failure.
 */
int cgrpc__target_parse(cgrpc__target *t, const char *text, const char **why);

/*
 * Parses |text| as a target of an application's resolver for |scheme|:
 * "scheme:///endpoint", "scheme://authority/endpoint" or "scheme:endpoint"
 * (the scheme without regard to case).  |t->kind| is CGRPC__TARGET_CUSTOM,
 * |t->host| the target, |t->authority| the endpoint (NULL when empty).
 * Returns as cgrpc__target_parse().
 */
int cgrpc__target_parse_custom(cgrpc__target *t, const char *text,
                               const char *scheme, const char **why);

/*
 * Parses one address of an application's resolver: "a.b.c.d:port",
 * "[v6]:port", or a Unix-domain name ("unix:path", "unix:///path",
 * "unix-abstract:name").  No name is looked up; the port is required.
 * Returns 0, or CGRPC_ERR_INVALID_ARGUMENT with |*why| set to a static
 * description.
 */
int cgrpc__target_parse_address(const char *text, cgrpc__addr *a,
                                const char **why);

/* Whether |scheme| (|n| bytes) is one cgrpc__target_parse() knows. */
int cgrpc__target_builtin_scheme(const char *scheme, size_t n);

/* Frees what |t| holds; then it is zeroed.  NULL-safe. */
void cgrpc__target_free(cgrpc__target *t);

#endif /* CGRPC_CLIENT_TARGET_H */
