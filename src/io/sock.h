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
 * Binds and listens on |addr| ("[::]:50051", "0.0.0.0:0", "localhost:0").
 * Writes the fd (non-blocking, close-on-exec) and the bound port.
 * Returns 0, or CGRPC_ERR_INVALID_ARGUMENT, CGRPC_ERR_ADDR_RESOLVE,
 * CGRPC_ERR_ADDR_IN_USE or CGRPC_ERR_IO.
 */
int cgrpc__sock_listen(const char *addr, int *fd_out, int *port_out);

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
