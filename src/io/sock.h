/* SPDX-License-Identifier: MIT */
/*
 * TCP helpers: "host:port" parsing, listening and connecting sockets, and
 * peer names in gRPC's "ipv4:1.2.3.4:5" / "ipv6:[::1]:5" form.
 */
#ifndef CGRPC_IO_SOCK_H
#define CGRPC_IO_SOCK_H

#include <stddef.h>
#include <sys/socket.h>

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

/* Accepts one connection (non-blocking, TCP_NODELAY).  Returns the fd, or -1
 * with errno set (EAGAIN when none is pending). */
int cgrpc__sock_accept(int listen_fd, char *peer, size_t peer_size);

/*
 * Starts a non-blocking connect to |sa|.  Returns the fd (connection in
 * progress or done), or -1 with errno set.
 */
int cgrpc__sock_connect(const struct sockaddr *sa, socklen_t len);

/* Returns 0 when a non-blocking connect on |fd| succeeded, else the errno. */
int cgrpc__sock_connect_result(int fd);

/* Formats |sa| as "ipv4:a.b.c.d:port" or "ipv6:[addr]:port". */
void cgrpc__sock_peer_name(const struct sockaddr *sa, char *out, size_t size);

#endif /* CGRPC_IO_SOCK_H */
