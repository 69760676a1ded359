/* SPDX-License-Identifier: MIT */
/*
 * The --wrap functions.  See fi_wrap.h.
 *
 * Nothing here allocates: the table of live blocks is a static array, the
 * lock a statically initialised mutex, and events go out with write().
 */
#include "fi_wrap.h"

#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#if defined(__SANITIZE_ADDRESS__)
#define FI_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FI_ASAN 1
#endif
#endif

/* The real functions (ld resolves __real_x to x) and our replacements. */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
int __real_epoll_create1(int flags);
int __real_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
int __real_eventfd(unsigned int initval, int flags);
int __real_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg);
int __real_socket(int domain, int type, int protocol);
int __real_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags);

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);
int __wrap_epoll_create1(int flags);
int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
int __wrap_eventfd(unsigned int initval, int flags);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg);
int __wrap_socket(int domain, int type, int protocol);
int __wrap_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags);

static const char *const site_names[FI_N_SITES] = {
    "malloc",         "epoll_create1", "epoll_ctl", "eventfd",
    "pthread_create", "socket",        "accept4",   "openssl"};

const char *fi_site_name(fi_site site) {
  return (unsigned)site < FI_N_SITES ? site_names[site] : "?";
}

int fi_site_parse(const char *name) {
  int i;
  for (i = 0; i < FI_N_SITES; i++)
    if (strcmp(name, site_names[i]) == 0)
      return i;
  return -1;
}

static fi_config config = {0, 0, -1};

void fi_configure(const fi_config *cfg) { config = *cfg; }

/* ---- counting and injection ---- */

static atomic_int active;  /* between fi_start() and fi_stop() */
static atomic_int started; /* since the first fi_start() */
static atomic_uint_fast64_t calls[FI_N_SITES];
static int fail_site;
static uint64_t fail_at;
static atomic_int injected;
static atomic_int tearing_down;
static atomic_uint_fast64_t bad_frees;

int fi_backtrace(void **frames, int max) { return backtrace(frames, max); }

void fi_emit(const fi_event *ev) {
  ssize_t w;
  if (config.report_fd < 0)
    return;
  do
    w = write(config.report_fd, ev, sizeof *ev);
  while (w < 0 && errno == EINTR);
}

/* Nonzero when this call of |site| is to fail; counts it. */
static int should_fail(fi_site site) {
  uint64_t k;
  if (!atomic_load_explicit(&active, memory_order_acquire))
    return 0;
  k = atomic_fetch_add(&calls[site], 1) + 1;
  if (fail_at == 0 || (int)site != fail_site)
    return 0;
  if (k != fail_at &&
      !(config.persist && k > fail_at && !atomic_load(&tearing_down)))
    return 0;
  if (atomic_fetch_add(&injected, 1) == 0) {
    fi_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = FI_EV_INJECTED;
    ev.site = site;
    ev.n = k;
    ev.n_frames = fi_backtrace(ev.frames, FI_FRAMES);
    fi_emit(&ev);
  }
  return 1;
}

void fi_start(fi_site site, uint64_t n) {
  int i;
  for (i = 0; i < FI_N_SITES; i++)
    atomic_store(&calls[i], 0);
  atomic_store(&injected, 0);
  atomic_store(&tearing_down, 0);
  atomic_store(&bad_frees, 0);
  fail_site = site;
  fail_at = n;
  atomic_store(&started, 1);
  atomic_store_explicit(&active, 1, memory_order_release);
}

void fi_stop(void) { atomic_store(&active, 0); }

void fi_teardown_begins(void) { atomic_store(&tearing_down, 1); }

uint64_t fi_count(fi_site site) { return atomic_load(&calls[site]); }

int fi_injected(void) { return atomic_load(&injected) != 0; }

uint64_t fi_bad_frees(void) { return atomic_load(&bad_frees); }

/* ---- the table of live blocks: open addressing, linear probing,
 * backward-shift deletion ---- */

#define TABLE_BITS 17
#define TABLE_SIZE ((size_t)1 << TABLE_BITS)
#define TABLE_MASK (TABLE_SIZE - 1)

typedef struct block {
  uintptr_t p; /* 0: empty slot */
  size_t size;
  int n_frames;
  void *frames[FI_FRAMES];
} block;

static block table[TABLE_SIZE];
static uint64_t n_live;
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t slot_of(uintptr_t p) {
  return (size_t)(((uint64_t)p >> 4) * 0x9E3779B97F4A7C15ull >>
                  (64 - TABLE_BITS));
}

/* Index of |p|, or SIZE_MAX.  Lock held. */
static size_t table_find(uintptr_t p) {
  size_t i = slot_of(p);
  while (table[i].p != 0) {
    if (table[i].p == p)
      return i;
    i = (i + 1) & TABLE_MASK;
  }
  return SIZE_MAX;
}

/* Lock held.  A full table cannot be recovered from: abort loudly. */
static void table_insert(const block *b) {
  size_t i = slot_of(b->p);
  if (n_live >= TABLE_SIZE - TABLE_SIZE / 8) {
    static const char msg[] = "failinject: live-block table full\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(99);
  }
  while (table[i].p != 0 && table[i].p != b->p)
    i = (i + 1) & TABLE_MASK;
  if (table[i].p == 0)
    n_live++;
  table[i] = *b;
}

/* Removes |p| and copies its entry to |out| (may be NULL); returns 0, or -1
 * when |p| is not in the table.  Lock held. */
static int table_remove(uintptr_t p, block *out) {
  size_t i = table_find(p), j;
  if (i == SIZE_MAX)
    return -1;
  if (out)
    *out = table[i];
  table[i].p = 0;
  n_live--;
  for (j = (i + 1) & TABLE_MASK; table[j].p != 0; j = (j + 1) & TABLE_MASK) {
    size_t home = slot_of(table[j].p);
    /* The entry at j may move to the hole at i unless its home lies
     * cyclically in (i, j]. */
    int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (!stays) {
      table[i] = table[j];
      table[j].p = 0;
      i = j;
    }
  }
  return 0;
}

uint64_t fi_live(void) {
  uint64_t n;
  pthread_mutex_lock(&table_lock);
  n = n_live;
  pthread_mutex_unlock(&table_lock);
  return n;
}

void fi_report_leaks(int max) {
  size_t i;
  int sent = 0;
  pthread_mutex_lock(&table_lock);
  for (i = 0; i < TABLE_SIZE && sent < max; i++) {
    fi_event ev;
    if (table[i].p == 0)
      continue;
    memset(&ev, 0, sizeof ev);
    ev.kind = FI_EV_LEAK;
    ev.n = table[i].size;
    ev.n_frames = table[i].n_frames;
    memcpy(ev.frames, table[i].frames, sizeof ev.frames);
    fi_emit(&ev);
    sent++;
  }
  pthread_mutex_unlock(&table_lock);
}

/* Fills |b| for a new block |p| of |size| bytes allocated by |caller|. */
static void describe(block *b, void *p, size_t size, void *caller) {
  b->p = (uintptr_t)p;
  b->size = size;
  if (config.backtraces) {
    b->n_frames = fi_backtrace(b->frames, FI_FRAMES);
  } else {
    b->n_frames = 1;
    b->frames[0] = caller;
  }
}

static void track(void *p, size_t size, void *caller) {
  block b;
  if (!p || !atomic_load_explicit(&active, memory_order_acquire))
    return;
  describe(&b, p, size, caller);
  pthread_mutex_lock(&table_lock);
  table_insert(&b);
  pthread_mutex_unlock(&table_lock);
}

static void note_bad_free(void *p) {
  fi_event ev;
  if (atomic_fetch_add(&bad_frees, 1) != 0)
    return; /* the first one is enough to locate the bug */
  memset(&ev, 0, sizeof ev);
  ev.kind = FI_EV_BAD_FREE;
  ev.n = (uint64_t)(uintptr_t)p;
  ev.n_frames = fi_backtrace(ev.frames, FI_FRAMES);
  fi_emit(&ev);
}

/* ---- the allocator ---- */

void *__wrap_malloc(size_t n) {
  void *p;
  if (should_fail(FI_MALLOC)) {
    errno = ENOMEM;
    return NULL;
  }
  p = __real_malloc(n);
  track(p, n, __builtin_return_address(0));
  return p;
}

void *__wrap_calloc(size_t n, size_t size) {
  void *p;
  if (should_fail(FI_MALLOC)) {
    errno = ENOMEM;
    return NULL;
  }
  p = __real_calloc(n, size);
  track(p, n * size, __builtin_return_address(0));
  return p;
}

void *__wrap_realloc(void *p, size_t n) {
  void *q;
  block b;
  int known;
  if (!p)
    return __wrap_malloc(n);
  if (should_fail(FI_MALLOC)) {
    errno = ENOMEM;
    return NULL;
  }
  /* The lock is held across the real realloc: once it has freed |p|,
   * another thread's malloc may get the same address, and its entry must
   * not be the one removed here. */
  pthread_mutex_lock(&table_lock);
  known = table_remove((uintptr_t)p, &b) == 0;
  q = __real_realloc(p, n);
  if (!q) {
    if (known)
      table_insert(&b);
  } else if (known || atomic_load(&active)) {
    describe(&b, q, n, __builtin_return_address(0));
    table_insert(&b);
  }
  pthread_mutex_unlock(&table_lock);
  if (!known && atomic_load(&started))
    note_bad_free(p);
  return q;
}

void __wrap_free(void *p) {
  int known;
  if (!p)
    return;
  pthread_mutex_lock(&table_lock);
  known = table_remove((uintptr_t)p, NULL) == 0;
  pthread_mutex_unlock(&table_lock);
  if (!known && atomic_load(&started)) {
    note_bad_free(p);
#ifndef FI_ASAN
    /* A double free, or a block from another allocator: glibc would
     * abort or corrupt its heap, which says less than the report.  ASan
     * gets the block and reports it with both stacks. */
    return;
#endif
  }
  __real_free(p);
}

/* ---- system calls ---- */

int __wrap_epoll_create1(int flags) {
  if (should_fail(FI_EPOLL_CREATE)) {
    errno = EMFILE;
    return -1;
  }
  return __real_epoll_create1(flags);
}

int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev) {
  /* Only ADD allocates in the kernel (ENOSPC at fs.epoll.max_user_watches,
   * or ENOMEM); MOD and DEL of a registered fd do not fail that way, so
   * they are neither counted nor failed. */
  if (op == EPOLL_CTL_ADD && should_fail(FI_EPOLL_CTL)) {
    errno = ENOSPC;
    return -1;
  }
  return __real_epoll_ctl(epfd, op, fd, ev);
}

int __wrap_eventfd(unsigned int initval, int flags) {
  if (should_fail(FI_EVENTFD)) {
    errno = EMFILE;
    return -1;
  }
  return __real_eventfd(initval, flags);
}

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg) {
  if (should_fail(FI_PTHREAD_CREATE))
    return EAGAIN;
  return __real_pthread_create(t, attr, fn, arg);
}

int __wrap_socket(int domain, int type, int protocol) {
  if (should_fail(FI_SOCKET)) {
    errno = EMFILE;
    return -1;
  }
  return __real_socket(domain, type, protocol);
}

int __wrap_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags) {
  if (should_fail(FI_ACCEPT4)) {
    errno = EMFILE;
    return -1;
  }
  return __real_accept4(fd, sa, len, flags);
}

/* ---- OpenSSL's allocator ---- */

static void *fi_crypto_malloc(size_t n, const char *file, int line) {
  (void)file;
  (void)line;
  if (should_fail(FI_OPENSSL)) {
    errno = ENOMEM;
    return NULL;
  }
  return __real_malloc(n);
}

static void *fi_crypto_realloc(void *p, size_t n, const char *file, int line) {
  (void)file;
  (void)line;
  if (should_fail(FI_OPENSSL)) {
    errno = ENOMEM;
    return NULL;
  }
  return __real_realloc(p, n);
}

static void fi_crypto_free(void *p, const char *file, int line) {
  (void)file;
  (void)line;
  __real_free(p);
}

int fi_hook_openssl(void) {
  return CRYPTO_set_mem_functions(fi_crypto_malloc, fi_crypto_realloc,
                                  fi_crypto_free)
             ? 0
             : -1;
}
