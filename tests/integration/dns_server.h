/* SPDX-License-Identifier: MIT */
/*
 * A small DNS responder for the tests: one UDP socket on 127.0.0.1 (port
 * picked by the system) and a thread that answers A and AAAA questions for
 * the names it was given, NXDOMAIN for the others; optionally each answer
 * |delay_ms| late, or never.  Point a channel at it with the target
 * "dns://127.0.0.1:PORT/name:port".
 */
#ifndef CGRPC_TEST_DNS_SERVER_H
#define CGRPC_TEST_DNS_SERVER_H

#include <pthread.h>
#include <stdatomic.h>

#define IT_DNS_MAX_NAMES 8
#define IT_DNS_MAX_ADDRS 4

typedef struct it_dns_name {
  const char *name; /* case-insensitive, without the trailing dot */
  const char *a[IT_DNS_MAX_ADDRS];    /* IPv4 addresses, NULL-ended */
  const char *aaaa[IT_DNS_MAX_ADDRS]; /* IPv6 addresses, NULL-ended */
} it_dns_name;

typedef struct it_dns_server {
  int fd;
  int port;
  int delay_ms;   /* each answer this late */
  int never;      /* read the questions, answer none */
  it_dns_name names[IT_DNS_MAX_NAMES];
  int n_names;
  atomic_int questions; /* questions received */
  pthread_mutex_t lock;  /* guards |names| once started */
  atomic_int stop;
  pthread_t thread;
} it_dns_server;

/* Zeroes |s|; then add names and set delay_ms/never before starting. */
void it_dns_init(it_dns_server *s);
/* Changes the addresses of |name| (added before the start) while the
 * server runs: its first A and AAAA records (NULL: none). */
void it_dns_set(it_dns_server *s, const char *name, const char *a,
                const char *aaaa);
/* Binds and starts the thread; returns 0 or -1. */
int it_dns_start(it_dns_server *s);
/* Stops the thread and closes the socket. */
void it_dns_stop(it_dns_server *s);

#endif /* CGRPC_TEST_DNS_SERVER_H */
