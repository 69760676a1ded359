/* SPDX-License-Identifier: MIT */
/*
 * Socket helpers: "host:port" parsing, gRPC's Unix-domain socket names
 * ("unix:path", "unix:///path", "unix-abstract:name"), listening and
 * connecting sockets, and peer names in gRPC's form: "ipv4:1.2.3.4:5",
 * "ipv6:[::1]:5", "unix:/path", "unix:" (an unnamed client socket) or
 * "unix-abstract:name".
 */
#ifndef CGRPC_IO_SOCK_H
#define CGRPC_IO_SOCK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

/* The longest socket name a Unix address holds (sun_path less the NUL that
 * ends a path, or the NUL that starts an abstract name): 107 on Linux. */
#define CGRPC__SOCK_UNIX_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

/* Room for any peer name cgrpc__sock_peer_name() writes, NUL included:
 * "unix-abstract:" and a name of CGRPC__SOCK_UNIX_MAX bytes, each
 * percent-encoded. */
#define CGRPC__SOCK_NAME_MAX (14 + 3 * CGRPC__SOCK_UNIX_MAX + 1)

/* One socket address to connect to: IPv4, IPv6 or Unix-domain. */
typedef struct cgrpc__addr {
  socklen_t len;
  struct sockaddr_storage ss;
} cgrpc__addr;

/*
 * Splits "host:port", "[v6]:port" or ":port" into |host| (brackets removed,
 * "" when absent) and |port|.  Returns 0, or CGRPC_ERR_INVALID_ARGUMENT.
 */
int cgrpc__sock_split_hostport(const char *addr, char *host, size_t host_size,
                               char *port, size_t port_size);

/*
 * Binds and listens on every address |addr| resolves to ("[::]:50051",
 * "0.0.0.0:0", "localhost:0" gives both ::1 and 127.0.0.1), all on one port:
 * with port 0, the one the first bind picked.  "[::]" falls back to
 * "0.0.0.0" where IPv6 is not available.  Writes up to |max_fds| fds
 * (non-blocking, close-on-exec) to |fds|, their count to |*n_fds| and the
 * port to |*port_out|.
 * Returns 0, or CGRPC_ERR_INVALID_ARGUMENT, CGRPC_ERR_ADDR_RESOLVE,
 * CGRPC_ERR_ADDR_IN_USE or CGRPC_ERR_IO.
 */
int cgrpc__sock_listen(const char *addr, int *fds, int max_fds, int *n_fds,
                       int *port_out);

/*
 * Parses gRPC's Unix-domain socket names (doc/naming.md):
 *
 *   unix:path              a relative or absolute filesystem path
 *   unix:///absolute/path  the same with an empty authority ("unix://host/p"
 *                          is refused, as gRPC does)
 *   unix-abstract:name     a name in Linux's abstract namespace; a NUL
 *                          byte is put before it, and it may hold any byte
 *                          ("%00" for a NUL)
 *
 * The path or name is percent-decoded, as a URI path is.  Returns 1 and
 * fills |*sun| and |*len| (the address length to pass to bind() or
 * connect()) when |addr| is one of these, 0 when it has another form (left
 * to the TCP code), or CGRPC_ERR_INVALID_ARGUMENT with |*why| pointing to a
 * static description of what is wrong (an empty or too long path, a host).
 */
int cgrpc__sock_parse_unix(const char *addr, struct sockaddr_un *sun,
                           socklen_t *len, const char **why);

/* The socket file a Unix listener created, to be removed at shutdown. */
typedef struct cgrpc__sock_unix_file {
  int dir_fd; /* the folder it was made in; -1: nothing to remove */
  char name[CGRPC__SOCK_UNIX_MAX + 1]; /* its name in that folder */
  dev_t dev;
  ino_t ino;
} cgrpc__sock_unix_file;

/*
 * Binds and listens on the Unix-domain address |sun| (|len| bytes, from
 * cgrpc__sock_parse_unix).  A filesystem path that holds a stale socket
 * file (nobody accepts on it: connect() is refused) is replaced; a socket
 * something listens on, or a file of another kind, gives
 * CGRPC_ERR_ADDR_IN_USE.  Writes the fd (non-blocking, close-on-exec) to
 * |*fd_out| and describes the socket file in |*file| (dir_fd -1 for an
 * abstract name), for cgrpc__sock_unix_file_remove().
 * Returns 0, or CGRPC_ERR_ADDR_IN_USE or CGRPC_ERR_IO with errno set.
 */
int cgrpc__sock_listen_unix(const struct sockaddr_un *sun, socklen_t len,
                            int *fd_out, cgrpc__sock_unix_file *file);

/*
 * Removes the socket file |file| describes if it is still the one the
 * listener made (same device and inode: a file another server put there
 * since is left alone), relative to the folder it was made in, whatever the
 * working directory is now; then forgets it (dir_fd -1).  Does nothing
 * when dir_fd is -1.
 */
void cgrpc__sock_unix_file_remove(cgrpc__sock_unix_file *file);

/* What SO_PEERCRED tells of the process at the other end of a Unix-domain
 * socket, as it was when it connected. */
typedef struct cgrpc__sock_cred {
  int valid; /* 0: not a Unix socket, or the system told nothing */
  int64_t pid, uid, gid;
} cgrpc__sock_cred;

/*
 * Accepts one connection (non-blocking; TCP_NODELAY on TCP).  Writes its
 * peer name to |peer| and, when |cred| is not NULL, the peer's credentials
 * to |*cred| (valid only for Unix-domain sockets).  Returns the fd, or -1
 * with errno set (EAGAIN when none is pending).
 */
int cgrpc__sock_accept(int listen_fd, char *peer, size_t peer_size,
                       cgrpc__sock_cred *cred);

/*
 * Starts a non-blocking connect to |sa| (TCP_NODELAY on TCP).  Returns the
 * fd (connection in progress or done), or -1 with errno set.
 */
int cgrpc__sock_connect(const struct sockaddr *sa, socklen_t len);

/* Returns 0 when a non-blocking connect on |fd| succeeded, else the errno. */
int cgrpc__sock_connect_result(int fd);

/*
 * Formats |sa| (|len| bytes, as accept() or getpeername() gave it) as
 * "ipv4:a.b.c.d:port", "ipv6:[addr]:port", "unix:path" ("unix:" for an
 * unnamed socket) or "unix-abstract:name", the path or name
 * percent-encoded as gRPC does (RFC 3986 path characters are kept), or
 * "unknown".  CGRPC__SOCK_NAME_MAX bytes hold any of these.
 */
void cgrpc__sock_peer_name(const struct sockaddr *sa, socklen_t len, char *out,
                           size_t size);

#endif /* CGRPC_IO_SOCK_H */
