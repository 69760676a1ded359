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
#include <sys/stat.h>
#include <unistd.h>

#include "cgrpc/error.h"
#include "util/percent.h"

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

/* ---- Unix-domain sockets ---- */

int cgrpc__sock_parse_unix(const char *addr, struct sockaddr_un *sun,
                           socklen_t *len, const char **why) {
  const char *src;
  size_t n, off = 0;
  char buf[3 * CGRPC__SOCK_UNIX_MAX + 1];
  int abstract;
  if (strncmp(addr, "unix-abstract:", 14) == 0) {
    abstract = 1;
    src = addr + 14;
  } else if (strncmp(addr, "unix:", 5) == 0) {
    abstract = 0;
    src = addr + 5;
    if (strncmp(src, "//", 2) == 0) {
      /* unix://authority/path: gRPC takes only an empty authority. */
      if (src[2] != '/' && src[2] != '\0') {
        *why = "unix:// takes no host; write unix:///absolute/path or "
               "unix:relative/path";
        return CGRPC_ERR_INVALID_ARGUMENT;
      }
      src += 2;
    }
  } else {
    return 0;
  }
  n = strlen(src);
  if (n == 0) {
    *why = abstract ? "empty abstract socket name" : "empty socket path";
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  /* Decoding only shrinks: more than 3x the limit cannot fit. */
  if (n >= sizeof buf)
    goto too_long;
  n = cgrpc__percent_decode((uint8_t *)buf, src, n);
  if (n > CGRPC__SOCK_UNIX_MAX)
    goto too_long;
  if (!abstract && memchr(buf, '\0', n)) {
    *why = "socket path holds a NUL byte";
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  memset(sun, 0, sizeof *sun);
  sun->sun_family = AF_UNIX;
  if (abstract)
    off = 1; /* sun_path[0] = '\0' */
  memcpy(sun->sun_path + off, buf, n);
  /* A path's length counts its NUL; an abstract name is exactly its bytes. */
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + off + n +
                     (abstract ? 0 : 1));
  return 1;
too_long:
  *why = abstract ? "abstract socket name longer than 107 bytes"
                  : "socket path longer than 107 bytes";
  return CGRPC_ERR_INVALID_ARGUMENT;
}

static int is_abstract(const struct sockaddr_un *sun, socklen_t len) {
  return len > offsetof(struct sockaddr_un, sun_path) &&
         sun->sun_path[0] == '\0';
}

/* Binds and listens; returns the fd, or -1 with errno set. */
static int listen_unix_once(const struct sockaddr_un *sun, socklen_t len) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), e;
  if (fd < 0)
    return -1;
  if (bind(fd, (const struct sockaddr *)sun, len) == 0 && listen(fd, 1024) == 0)
    return fd;
  e = errno;
  close(fd);
  errno = e;
  return -1;
}

/* Nonzero when |path| is a socket file that nobody accepts on: a server
 * died without removing it.  A full backlog (EAGAIN) or a socket of another
 * type counts as in use. */
static int unix_path_is_stale(const struct sockaddr_un *sun, socklen_t len) {
  struct stat st;
  int fd, rv, e;
  if (lstat(sun->sun_path, &st) != 0 || !S_ISSOCK(st.st_mode))
    return 0;
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return 0;
  rv = connect(fd, (const struct sockaddr *)sun, len);
  e = errno;
  close(fd);
  return rv != 0 && e == ECONNREFUSED;
}

/* Remembers the socket file |path| made by bind(): its folder (opened, so
 * that a later chdir() does not matter), its name there and its inode. */
static void unix_file_note(const char *path, cgrpc__sock_unix_file *file) {
  struct stat st;
  const char *slash = strrchr(path, '/');
  char dir[CGRPC__SOCK_UNIX_MAX + 1];
  file->dir_fd = -1;
  if (lstat(path, &st) != 0)
    return;
  if (!slash) {
    snprintf(dir, sizeof dir, ".");
  } else if (slash == path) {
    snprintf(dir, sizeof dir, "/");
  } else {
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = '\0';
  }
  snprintf(file->name, sizeof file->name, "%s", slash ? slash + 1 : path);
  file->dev = st.st_dev;
  file->ino = st.st_ino;
  file->dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (file->dir_fd < 0) {
    /* No handle on the folder: fall back on the path as given. */
    file->dir_fd = AT_FDCWD;
    snprintf(file->name, sizeof file->name, "%s", path);
  }
}

int cgrpc__sock_listen_unix(const struct sockaddr_un *sun, socklen_t len,
                            int *fd_out, cgrpc__sock_unix_file *file) {
  int fd = listen_unix_once(sun, len), e = errno;
  file->dir_fd = -1;
  if (fd < 0 && e == EADDRINUSE && !is_abstract(sun, len) &&
      unix_path_is_stale(sun, len)) {
    /* As gRPC does, take the place of a dead server's socket file (gRPC
     * takes it from a live server too; we do not). */
    if (unlink(sun->sun_path) == 0 || errno == ENOENT) {
      fd = listen_unix_once(sun, len);
      e = errno;
    }
  }
  if (fd < 0) {
    errno = e;
    return e == EADDRINUSE ? CGRPC_ERR_ADDR_IN_USE : CGRPC_ERR_IO;
  }
  if (!is_abstract(sun, len))
    unix_file_note(sun->sun_path, file);
  *fd_out = fd;
  return 0;
}

void cgrpc__sock_unix_file_remove(cgrpc__sock_unix_file *file) {
  struct stat st;
  if (file->dir_fd == -1)
    return;
  if (fstatat(file->dir_fd, file->name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISSOCK(st.st_mode) && st.st_dev == file->dev && st.st_ino == file->ino)
    unlinkat(file->dir_fd, file->name, 0);
  if (file->dir_fd >= 0)
    close(file->dir_fd);
  file->dir_fd = -1;
}

static void read_cred(int fd, cgrpc__sock_cred *cred) {
  struct ucred uc;
  socklen_t len = sizeof uc;
  memset(cred, 0, sizeof *cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == 0 &&
      len == sizeof uc) {
    cred->valid = 1;
    cred->pid = uc.pid;
    cred->uid = uc.uid;
    cred->gid = uc.gid;
  }
}

/* ---- connections ---- */

int cgrpc__sock_accept(int listen_fd, char *peer, size_t peer_size,
                       cgrpc__sock_cred *cred) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int one = 1;
  int fd = accept4(listen_fd, (struct sockaddr *)&ss, &len,
                   SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0)
    return -1;
  if (cred)
    memset(cred, 0, sizeof *cred);
  if (ss.ss_family == AF_UNIX) {
    if (cred)
      read_cred(fd, cred);
  } else {
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  cgrpc__sock_peer_name((struct sockaddr *)&ss, len, peer, peer_size);
  return fd;
}

int cgrpc__sock_connect(const struct sockaddr *sa, socklen_t len) {
  int one = 1;
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  if (sa->sa_family != AF_UNIX)
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

/* Writes |scheme| and the |n| bytes at |p| percent-encoded the way gRPC
 * writes a URI path: RFC 3986 unreserved and sub-delim characters, ':',
 * '@' and '/' stay, every other byte is "%XX". */
static void unix_name(const char *scheme, const char *p, size_t n, char *out,
                      size_t size) {
  static const char keep[] = "-._~!$&'()*+,;=:@/";
  static const char hex[] = "0123456789ABCDEF";
  size_t i, o = strlen(scheme);
  if (o >= size)
    o = size - 1;
  memcpy(out, scheme, o);
  /* Room for an escape and the NUL, so that none is cut in half. */
  for (i = 0; i < n && o + 4 <= size; i++) {
    unsigned char c = (unsigned char)p[i];
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9') || (c && strchr(keep, c))) {
      out[o++] = (char)c;
    } else {
      out[o++] = '%';
      out[o++] = hex[c >> 4];
      out[o++] = hex[c & 15];
    }
  }
  out[o] = '\0';
}

void cgrpc__sock_peer_name(const struct sockaddr *sa, socklen_t len, char *out,
                           size_t size) {
  char buf[INET6_ADDRSTRLEN];
  if (size == 0)
    return;
  if (sa->sa_family == AF_UNIX) {
    const struct sockaddr_un *un = (const void *)sa;
    size_t off = offsetof(struct sockaddr_un, sun_path);
    size_t n = len > off ? len - off : 0;
    if (n > sizeof un->sun_path)
      n = sizeof un->sun_path;
    if (n > 1 && un->sun_path[0] == '\0') {
      unix_name("unix-abstract:", un->sun_path + 1, n - 1, out, size);
    } else {
      /* A path ends at its NUL; an unnamed socket has none: "unix:". */
      const char *nul = memchr(un->sun_path, '\0', n);
      unix_name("unix:", un->sun_path, nul ? (size_t)(nul - un->sun_path) : n,
                out, size);
    }
  } else if (sa->sa_family == AF_INET6) {
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
