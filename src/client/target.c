/* SPDX-License-Identifier: MIT */
/*
 * Target parsing (see target.h).  Every error says what is wrong, for the
 * log line cgrpc_channel_new() writes.
 */
#include "client/target.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cgrpc/error.h"
#include "util/mem.h"

#define DEFAULT_PORT "443"

/* One "host[:port]" item, split (brackets removed). */
typedef struct hostport {
  char host[256];
  char port[8];
  int has_port;
} hostport;

static int parse_port(const char *s, size_t n, char *out, const char **why) {
  unsigned long v = 0;
  size_t i;
  if (n == 0 || n > 5) {
    *why = n ? "the port is not a number from 1 to 65535" : "empty port";
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  for (i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') {
      *why = "the port is not a number from 1 to 65535";
      return CGRPC_ERR_INVALID_ARGUMENT;
    }
    v = v * 10 + (unsigned long)(s[i] - '0');
  }
  if (v == 0 || v > 65535) {
    *why = "the port is not a number from 1 to 65535";
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  snprintf(out, 8, "%lu", v);
  return 0;
}

/* Splits |s| (|n| bytes): "[v6]", "[v6]:port", "host", "host:port", or an
 * IPv6 address without brackets and so without a port (as gRPC's
 * SplitHostPort reads "::1"). */
static int split_item(const char *s, size_t n, hostport *hp,
                      const char **why) {
  const char *hs = s, *he, *colon = NULL;
  memset(hp, 0, sizeof *hp);
  if (n && s[0] == '[') {
    he = memchr(s, ']', n);
    if (!he) {
      *why = "'[' without ']'";
      return CGRPC_ERR_INVALID_ARGUMENT;
    }
    hs = s + 1;
    if (he + 1 < s + n) {
      if (he[1] != ':') {
        *why = "text after ']' that is not \":port\"";
        return CGRPC_ERR_INVALID_ARGUMENT;
      }
      colon = he + 1;
    }
  } else {
    const char *first = memchr(s, ':', n);
    he = s + n;
    if (first && !memchr(first + 1, ':', (size_t)(s + n - first - 1))) {
      colon = first;
      he = first;
    }
  }
  if (he == hs) {
    *why = "empty host";
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  if ((size_t)(he - hs) >= sizeof hp->host) {
    *why = "the host is longer than 255 bytes";
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  memcpy(hp->host, hs, (size_t)(he - hs));
  if (colon) {
    hp->has_port = 1;
    return parse_port(colon + 1, (size_t)(s + n - colon - 1), hp->port, why);
  }
  memcpy(hp->port, DEFAULT_PORT, sizeof DEFAULT_PORT);
  return 0;
}

/* Fills |a| when |host| is an IP address of |family| (AF_UNSPEC: either).
 * Returns 1 when it is, 0 when not. */
static int ip_addr(const char *host, const char *port, int family,
                   cgrpc__addr *a) {
  memset(a, 0, sizeof *a);
  if (family != AF_INET6) {
    struct sockaddr_in *in = (struct sockaddr_in *)&a->ss;
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
      in->sin_family = AF_INET;
      in->sin_port = htons((uint16_t)atoi(port));
      a->len = sizeof *in;
      return 1;
    }
  }
  if (family != AF_INET) {
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a->ss;
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons((uint16_t)atoi(port));
      a->len = sizeof *in6;
      return 1;
    }
  }
  return 0;
}

/* "host:port" with brackets around an IPv6 host: the authority. */
static char *join_hostport(const hostport *hp) {
  char buf[300];
  snprintf(buf, sizeof buf, strchr(hp->host, ':') ? "[%s]:%s" : "%s:%s",
           hp->host, hp->port);
  return cgrpc__strdup(buf);
}

static int valid_dns_name(const char *h) {
  for (; *h; h++)
    if (!isalnum((unsigned char)*h) && *h != '-' && *h != '.' && *h != '_')
      return 0;
  return 1;
}

/* "ipv4:" and "ipv6:" lists. */
static int parse_list(cgrpc__target *t, const char *s, int family,
                      const char **why) {
  size_t n = 1, i = 0;
  const char *p;
  for (p = s; *p; p++)
    n += *p == ',';
  t->addrs = cgrpc__calloc(n, sizeof *t->addrs);
  if (!t->addrs)
    return CGRPC_ERR_NOMEM;
  t->kind = CGRPC__TARGET_ADDRS;
  for (p = s;; i++) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    hostport hp;
    int rv;
    if (len == 0) {
      *why = "an empty address in the list";
      return CGRPC_ERR_INVALID_ARGUMENT;
    }
    if ((rv = split_item(p, len, &hp, why)) != 0)
      return rv;
    if (!ip_addr(hp.host, hp.port, family, &t->addrs[i])) {
      *why = family == AF_INET ? "an \"ipv4:\" address that is not IPv4"
                               : "an \"ipv6:\" address that is not IPv6";
      return CGRPC_ERR_INVALID_ARGUMENT;
    }
    if (i == 0) {
      memcpy(t->host, hp.host, sizeof t->host);
      memcpy(t->port, hp.port, sizeof t->port);
      if (!(t->authority = join_hostport(&hp)))
        return CGRPC_ERR_NOMEM;
    }
    if (!end)
      break;
    p = end + 1;
  }
  t->n_addrs = i + 1;
  return 0;
}

/* The server in "dns://server/": an IP address, optionally with a port. */
static int parse_dns_server(cgrpc__target *t, const char *s, size_t n,
                            const char **why) {
  hostport hp;
  cgrpc__addr a;
  if (n == 0)
    return 0; /* "dns:///": the system's servers */
  if (split_item(s, n, &hp, why) != 0 ||
      !ip_addr(hp.host, hp.has_port ? hp.port : "53", AF_UNSPEC, &a)) {
    *why = "the DNS server after \"dns://\" is not an IP address[:port]";
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  snprintf(t->dns_server, sizeof t->dns_server,
           a.ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", hp.host,
           hp.has_port ? hp.port : "53");
  return 0;
}

static int parse_dns(cgrpc__target *t, const char *s, const char **why) {
  hostport hp;
  cgrpc__addr a;
  int rv;
  if ((rv = split_item(s, strlen(s), &hp, why)) != 0)
    return rv;
  memcpy(t->host, hp.host, sizeof t->host);
  memcpy(t->port, hp.port, sizeof t->port);
  /* The text as written, with the default port added. */
  if (hp.has_port)
    t->authority = cgrpc__strdup(s);
  else
    t->authority = join_hostport(&hp);
  if (!t->authority)
    return CGRPC_ERR_NOMEM;
  if (ip_addr(hp.host, hp.port, AF_UNSPEC, &a)) {
    /* An IP literal: nothing to look up. */
    t->addrs = cgrpc__malloc(sizeof a);
    if (!t->addrs)
      return CGRPC_ERR_NOMEM;
    t->addrs[0] = a;
    t->n_addrs = 1;
    t->kind = CGRPC__TARGET_ADDRS;
    return 0;
  }
  if (!valid_dns_name(hp.host)) {
    *why = strchr(hp.host, ':')
               ? "an IPv6 address with a port needs brackets: [addr]:port"
               : "the host name holds a character other than letters, "
                 "digits, '-', '.' and '_'";
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  t->kind = CGRPC__TARGET_DNS;
  return 0;
}

static int parse_unix(cgrpc__target *t, const char *text, const char **why) {
  struct sockaddr_un sun;
  socklen_t len;
  int rv = cgrpc__sock_parse_unix(text, &sun, &len, why);
  if (rv <= 0)
    return rv;
  t->addrs = cgrpc__calloc(1, sizeof *t->addrs);
  t->authority = cgrpc__strdup("localhost");
  if (!t->addrs || !t->authority)
    return CGRPC_ERR_NOMEM;
  memcpy(&t->addrs[0].ss, &sun, len);
  t->addrs[0].len = len;
  t->n_addrs = 1;
  t->kind = CGRPC__TARGET_UNIX;
  snprintf(t->host, sizeof t->host, "%s", text);
  return 1;
}

static int parse(cgrpc__target *t, const char *text, const char **why) {
  const char *p;
  int rv;
  if (!*text) {
    *why = "empty target";
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  if ((rv = parse_unix(t, text, why)) != 0)
    return rv < 0 ? rv : 0;
  if (strncmp(text, "ipv4:", 5) == 0)
    return parse_list(t, text + 5, AF_INET, why);
  if (strncmp(text, "ipv6:", 5) == 0)
    return parse_list(t, text + 5, AF_INET6, why);
  if (strncmp(text, "dns:", 4) == 0) {
    text += 4;
    if (strncmp(text, "//", 2) == 0) {
      const char *slash = strchr(text + 2, '/');
      if (!slash) {
        *why = "no '/' after the DNS server in \"dns://server/host\"";
        return CGRPC_ERR_INVALID_ARGUMENT;
      }
      if ((rv = parse_dns_server(t, text + 2, (size_t)(slash - text - 2),
                                 why)) != 0)
        return rv;
      text = slash + 1;
    }
    return parse_dns(t, text, why);
  }
  /* "scheme://..." with a scheme we do not know (xds:, vsock: ...). */
  for (p = text; isalnum((unsigned char)*p) || *p == '+' || *p == '-' ||
                 *p == '.';
       p++)
    ;
  if (p != text && strncmp(p, "://", 3) == 0) {
    *why = "unsupported scheme (dns:, ipv4:, ipv6:, unix: and "
           "unix-abstract: are; another needs a resolver of that scheme, "
           "cgrpc_channel_options_set_resolver())";
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  return parse_dns(t, text, why);
}

/* The length of the URI scheme that starts |s| ("" when none). */
static size_t scheme_len(const char *s) {
  const char *p = s;
  if (!isalpha((unsigned char)*p))
    return 0;
  while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.')
    p++;
  return (size_t)(p - s);
}

int cgrpc__target_builtin_scheme(const char *scheme, size_t n) {
  static const char *const builtin[] = {"dns", "ipv4", "ipv6", "unix",
                                        "unix-abstract"};
  size_t i;
  for (i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
    if (strlen(builtin[i]) == n && strncasecmp(builtin[i], scheme, n) == 0)
      return 1;
  return 0;
}

static int parse_custom(cgrpc__target *t, const char *text, const char *scheme,
                        const char **why) {
  size_t n = strlen(scheme);
  const char *p;
  if (scheme_len(text) != n || strncasecmp(text, scheme, n) != 0 ||
      text[n] != ':') {
    *why = "the channel's resolver takes only targets of its own scheme "
           "(\"scheme:///endpoint\")";
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  if (strlen(text) >= sizeof t->host) {
    *why = "the target is longer than 255 bytes";
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  p = text + n + 1;
  if (strncmp(p, "//", 2) == 0) {
    p = strchr(p + 2, '/');
    if (!p) {
      *why = "no '/' after the authority in \"scheme://authority/endpoint\"";
      return CGRPC_ERR_INVALID_ARGUMENT;
    }
    p++;
  }
  for (const char *c = p; *c; c++)
    if ((unsigned char)*c <= ' ' || (unsigned char)*c == 0x7f) {
      *why = "the endpoint holds a space or a control character";
      return CGRPC_ERR_INVALID_ARGUMENT;
    }
  t->kind = CGRPC__TARGET_CUSTOM;
  snprintf(t->host, sizeof t->host, "%s", text);
  if (*p && !(t->authority = cgrpc__strdup(p)))
    return CGRPC_ERR_NOMEM;
  return 0;
}

int cgrpc__target_parse_custom(cgrpc__target *t, const char *text,
                               const char *scheme, const char **why) {
  int rv;
  const char *unused;
  if (!why)
    why = &unused;
  *why = NULL;
  memset(t, 0, sizeof *t);
  rv = parse_custom(t, text, scheme, why);
  if (rv != 0)
    cgrpc__target_free(t);
  return rv;
}

int cgrpc__target_parse_address(const char *text, cgrpc__addr *a,
                                const char **why) {
  struct sockaddr_un sun;
  socklen_t len;
  hostport hp;
  size_t n;
  int rv;
  memset(a, 0, sizeof *a);
  if (!*text) {
    *why = "empty address";
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  rv = cgrpc__sock_parse_unix(text, &sun, &len, why);
  if (rv < 0)
    return rv;
  if (rv > 0) {
    memcpy(&a->ss, &sun, len);
    a->len = len;
    return 0;
  }
  n = scheme_len(text);
  if (n && text[n] == ':' &&
      (text[n + 1] == '/' || cgrpc__target_builtin_scheme(text, n))) {
    *why = "a target, not an address (write a.b.c.d:port, [v6]:port or "
           "unix:path)";
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  if ((rv = split_item(text, strlen(text), &hp, why)) != 0)
    return rv;
  if (!ip_addr(hp.host, hp.port, AF_UNSPEC, a)) {
    *why = strchr(hp.host, ':')
               ? "an IPv6 address with a port needs brackets: [addr]:port"
               : "not an IP address (a resolver gives addresses: look names "
                 "up before the update)";
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  if (!hp.has_port) {
    *why = strchr(hp.host, ':') ? "no port (write \"[addr]:PORT\")"
                                : "no port (write \"addr:PORT\")";
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  return 0;
}

int cgrpc__target_parse(cgrpc__target *t, const char *text, const char **why) {
  int rv;
  const char *unused;
  if (!why)
    why = &unused;
  *why = NULL;
  memset(t, 0, sizeof *t);
  rv = parse(t, text, why);
  if (rv != 0)
    cgrpc__target_free(t);
  return rv;
}

void cgrpc__target_free(cgrpc__target *t) {
  if (!t)
    return;
  cgrpc__free(t->addrs);
  cgrpc__free(t->authority);
  memset(t, 0, sizeof *t);
}
