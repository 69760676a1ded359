/* SPDX-License-Identifier: MIT */
#include "io/sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgrpc/error.h"

int cgrpc__sock_split_hostport(const char *addr, char *host, size_t host_size,
                               char *port, size_t port_size) {
  const char *colon, *hstart, *hend;
  size_t hlen, plen;
  if (!addr || !*addr)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (addr[0] == '[') {
    hend = strchr(addr, ']');
    if (!hend || hend[1] != ':')
      return CGRPC_ERR_INVALID_ARGUMENT;
    hstart = addr + 1;
    colon = hend + 1;
  } else {
    colon = strrchr(addr, ':');
    if (!colon || memchr(addr, ':', (size_t)(colon - addr)))
      return CGRPC_ERR_INVALID_ARGUMENT; /* bare IPv6 needs brackets */
    hstart = addr;
    hend = colon;
  }
  hlen = (size_t)(hend - hstart);
  plen = strlen(colon + 1);
  if (hlen >= host_size || plen == 0 || plen >= port_size)
    return CGRPC_ERR_INVALID_ARGUMENT;
  for (size_t i = 0; i < plen; i++)
    if (colon[1 + i] < '0' || colon[1 + i] > '9')
      return CGRPC_ERR_INVALID_ARGUMENT;
  if (atol(colon + 1) > 65535)
    return CGRPC_ERR_INVALID_ARGUMENT;
  memcpy(host, hstart, hlen);
  host[hlen] = '\0';
  memcpy(port, colon + 1, plen + 1);
  return 0;
}

static int port_of(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET6)
    return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
  return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
}

static void set_port(struct sockaddr *sa, int port) {
  if (sa->sa_family == AF_INET6)
    ((struct sockaddr_in6 *)(void *)sa)->sin6_port = htons((uint16_t)port);
  else
    ((struct sockaddr_in *)(void *)sa)->sin_port = htons((uint16_t)port);
}

/* Binds one listening socket; returns the fd or a negative cgrpc error. */
static int listen_one(struct addrinfo *ai) {
  int one = 1, zero = 0, err;
  int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                  ai->ai_protocol);
  if (fd < 0)
    return CGRPC_ERR_IO;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ai->ai_family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0)
    return fd;
  err = errno == EADDRINUSE ? CGRPC_ERR_ADDR_IN_USE : CGRPC_ERR_IO;
  close(fd);
  return err;
}

int cgrpc__sock_listen(const char *addr, int *fds, int max_fds, int *n_fds,
                       int *port_out) {
  char host[256], port[16];
  struct addrinfo hints, *res = NULL, *ai;
  int rv, n = 0, bound_port = -1, err = CGRPC_ERR_IO;

  rv = cgrpc__sock_split_hostport(addr, host, sizeof host, port, sizeof port);
  if (rv != 0)
    return rv;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  if (getaddrinfo(host[0] ? host : NULL, port, &hints, &res) != 0)
    return CGRPC_ERR_ADDR_RESOLVE;
  for (ai = res; ai && n < max_fds; ai = ai->ai_next) {
    int fd;
    if (bound_port >= 0)
      set_port(ai->ai_addr, bound_port);
    fd = listen_one(ai);
    if (fd < 0) {
      /* A dual-stack "[::]" socket already covers 0.0.0.0. */
      if (n > 0 && fd == CGRPC_ERR_ADDR_IN_USE)
        continue;
      err = fd;
      continue;
    }
    if (bound_port < 0) {
      struct sockaddr_storage ss;
      socklen_t sslen = sizeof ss;
      if (getsockname(fd, (struct sockaddr *)&ss, &sslen) != 0) {
        close(fd);
        continue;
      }
      bound_port = port_of((struct sockaddr *)&ss);
    }
    fds[n++] = fd;
  }
  freeaddrinfo(res);
  if (n == 0 && strcmp(host, "::") == 0) {
    /* No IPv6 on this machine: serve IPv4 as "[::]" users expect. */
    char v4[32];
    snprintf(v4, sizeof v4, "0.0.0.0:%s", port);
    return cgrpc__sock_listen(v4, fds, max_fds, n_fds, port_out);
  }
  if (n == 0)
    return err;
  *n_fds = n;
  if (port_out)
    *port_out = bound_port;
  return 0;
}

int cgrpc__sock_accept(int listen_fd, char *peer, size_t peer_size) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int one = 1;
  int fd = accept4(listen_fd, (struct sockaddr *)&ss, &len,
                   SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0)
    return -1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  cgrpc__sock_peer_name((struct sockaddr *)&ss, peer, peer_size);
  return fd;
}

int cgrpc__sock_connect(const struct sockaddr *sa, socklen_t len) {
  int one = 1;
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, sa, len) != 0 && errno != EINPROGRESS) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

int cgrpc__sock_connect_result(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
    return errno;
  return err;
}

void cgrpc__sock_peer_name(const struct sockaddr *sa, char *out, size_t size) {
  char buf[INET6_ADDRSTRLEN];
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const void *)sa;
    if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
      inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], buf, sizeof buf);
      snprintf(out, size, "ipv4:%s:%d", buf, port_of(sa));
    } else {
      inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof buf);
      snprintf(out, size, "ipv6:[%s]:%d", buf, port_of(sa));
    }
  } else if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *s4 = (const void *)sa;
    inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof buf);
    snprintf(out, size, "ipv4:%s:%d", buf, port_of(sa));
  } else {
    snprintf(out, size, "unknown");
  }
}
