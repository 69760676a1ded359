/* SPDX-License-Identifier: MIT */
/*
 * Allocation entry points for src/.  Code in src/ calls these, never malloc()
 * directly, so that an allocator hook can be put behind them in one place.
 */
#ifndef CGRPC_UTIL_MEM_H
#define CGRPC_UTIL_MEM_H

#include <stdlib.h>
#include <string.h>

static inline void *cgrpc__malloc(size_t n) { return malloc(n ? n : 1); }
static inline void *cgrpc__calloc(size_t n, size_t size) {
  return calloc(n ? n : 1, size ? size : 1);
}
static inline void *cgrpc__realloc(void *p, size_t n) {
  return realloc(p, n ? n : 1);
}
static inline void cgrpc__free(void *p) { free(p); }

/* A NUL-terminated copy of the |n| bytes at |s|, or NULL. */
static inline char *cgrpc__strndup(const char *s, size_t n) {
  char *p = (char *)cgrpc__malloc(n + 1);
  if (p) {
    memcpy(p, s, n);
    p[n] = '\0';
  }
  return p;
}
static inline char *cgrpc__strdup(const char *s) {
  return cgrpc__strndup(s, strlen(s));
}

#endif /* CGRPC_UTIL_MEM_H */
