/* SPDX-License-Identifier: MIT */
/*
 * Failure injection through link-time wrappers (ld --wrap=malloc,...).
 *
 * The test executable links cgrpc_static with --wrap for the allocator and
 * for the system calls the library's io layer makes, so every call the
 * library (and the nghttp2 sessions it creates with cgrpc__h2_mem) makes to
 * them lands in fi_wrap.c.  Between fi_start() and fi_stop() each call is
 * counted per site, the Nth call of one site can be made to fail, and every
 * allocation is kept in a table of live blocks, so that a leak after full
 * teardown is seen without ASan.
 *
 * Shared libraries (protobuf-c with a NULL allocator, zlib, glibc's
 * getaddrinfo) are not wrapped: what they allocate they free themselves and
 * it never enters the table.  Test-side code that must not be failed
 * (the StreamService servicer) is compiled with fi_libc.h, which maps
 * malloc() and free() to the __real_ functions.
 */
#ifndef CGRPC_TEST_FI_WRAP_H
#define CGRPC_TEST_FI_WRAP_H

#include <stddef.h>
#include <stdint.h>

typedef enum fi_site {
  FI_MALLOC,         /* malloc, calloc, realloc: fail with NULL / ENOMEM */
  FI_EPOLL_CREATE,   /* epoll_create1: EMFILE */
  FI_EPOLL_CTL,      /* epoll_ctl(EPOLL_CTL_ADD): ENOSPC (MOD, DEL: never) */
  FI_EVENTFD,        /* eventfd: EMFILE */
  FI_PTHREAD_CREATE, /* pthread_create: EAGAIN */
  FI_SOCKET,         /* socket: EMFILE */
  FI_ACCEPT4,        /* accept4: EMFILE */
  FI_OPENSSL,        /* OpenSSL's allocator (see fi_hook_openssl()) */
  FI_N_SITES
} fi_site;

/* "malloc", "epoll_ctl", ...; fi_site_parse returns -1 for an unknown name. */
const char *fi_site_name(fi_site site);
int fi_site_parse(const char *name);

/*
 * Routes OpenSSL's allocations (CRYPTO_malloc, ...) through the "openssl"
 * site, so that a handshake, a session cache or a certificate load can be
 * made to fail inside libcrypto and libssl.  They are counted and failed
 * but not tracked: OpenSSL keeps global state until exit, and frees what it
 * allocates itself.  Must run before OpenSSL allocates anything; returns 0,
 * or -1 when that is too late.
 */
int fi_hook_openssl(void);

/* Frames kept per allocation and per event (injected failure, bad free). */
#define FI_FRAMES 8

/* Options fixed before fi_start(), in the process that forks the children. */
typedef struct fi_config {
  int backtraces; /* keep a backtrace per allocation (else: the caller) */
  int persist;    /* fail every call of the site from the Nth on */
  int report_fd;  /* events are written here as fi_event records; -1: none */
} fi_config;
void fi_configure(const fi_config *cfg);

/* An event the child writes to report_fd as it happens, so that the parent
 * still learns where the failure was injected when the child then dies. */
typedef enum fi_event_kind {
  FI_EV_INJECTED = 1, /* the failure was injected here */
  FI_EV_BAD_FREE,     /* free/realloc of a block not allocated while armed */
  FI_EV_LEAK,         /* one leaked block (size, frames) */
  FI_EV_RESULT,       /* the scenario's verdict (see failinject.c) */
  FI_EV_CRASH,        /* a fatal signal (n) and where it hit */
} fi_event_kind;

typedef struct fi_event {
  int kind;
  int site;
  uint64_t n; /* FI_EV_INJECTED: which call; FI_EV_LEAK: the size */
  int n_frames;
  void *frames[FI_FRAMES];
  /* FI_EV_RESULT: */
  int verdict;
  uint64_t counts[FI_N_SITES];
  uint64_t live;
  uint64_t bad_frees;
  char text[256];
  char calls[256];
} fi_event;

/*
 * Starts counting (the counters are reset) and arms the failure of the
 * |n|th call of |site| (n = 0: none).  Allocations from now on are tracked.
 */
void fi_start(fi_site site, uint64_t n);

/* Stops counting and injecting.  Frees still update the table. */
void fi_stop(void);

/* The scenario starts its teardown: in persist mode no call fails from now
 * on (the teardown needs memory too, and would otherwise always hang).  A
 * single injected failure may still hit the teardown. */
void fi_teardown_begins(void);

/* Calls of |site| counted since fi_start(). */
uint64_t fi_count(fi_site site);

/* Nonzero once the armed failure has been injected. */
int fi_injected(void);

/* Tracked blocks not freed, and frees of blocks that were not tracked. */
uint64_t fi_live(void);
uint64_t fi_bad_frees(void);

/* Writes up to |max| FI_EV_LEAK records, one per live block. */
void fi_report_leaks(int max);

/* Writes |ev| to report_fd (one write, so records do not interleave). */
void fi_emit(const fi_event *ev);

/* Fills |frames| with the caller's backtrace; returns the count. */
int fi_backtrace(void **frames, int max);

#endif /* CGRPC_TEST_FI_WRAP_H */
