/* SPDX-License-Identifier: MIT */
#include "util/arena.h"

#include <string.h>

#include "util/mem.h"

/* First malloc'd chunk, and the cap on doubling: beyond 64 KiB a larger
 * chunk saves few mallocs and risks wasting a lot of memory per call. */
#define FIRST_CHUNK_SIZE 2048
#define MAX_CHUNK_SIZE (64 * 1024)

/* A chunk: this header, then padding up to CGRPC__ARENA_ALIGN, then data.
 * The padding is computed from the address because malloc() guarantees only
 * alignof(max_align_t), which is 8 on some 32-bit targets. */
struct cgrpc__arena_chunk {
  struct cgrpc__arena_chunk *next;
};

#define CHUNK_OVERHEAD                                                         \
  (sizeof(struct cgrpc__arena_chunk) + CGRPC__ARENA_ALIGN - 1)

static size_t align_up(size_t n) {
  return (n + (CGRPC__ARENA_ALIGN - 1)) & ~(size_t)(CGRPC__ARENA_ALIGN - 1);
}

static unsigned char *align_ptr(unsigned char *p) {
  uintptr_t u = (uintptr_t)p;
  return p + (align_up((size_t)u) - (size_t)u);
}

void cgrpc__arena_init(cgrpc__arena *a) {
  a->cur = align_ptr(a->inline_buf);
  a->end = a->inline_buf + sizeof(a->inline_buf);
  a->chunks = NULL;
  a->next_chunk_size = FIRST_CHUNK_SIZE;
  a->allocated = 0;
}

/* Allocates a chunk with |size| aligned bytes of data, links it into |a| and
 * returns the start of the data. */
static unsigned char *chunk_new(cgrpc__arena *a, size_t size) {
  struct cgrpc__arena_chunk *c;
  if (size > SIZE_MAX - CHUNK_OVERHEAD) {
    return NULL;
  }
  c = cgrpc__malloc(CHUNK_OVERHEAD + size);
  if (c == NULL) {
    return NULL;
  }
  c->next = a->chunks;
  a->chunks = c;
  return align_ptr((unsigned char *)(c + 1));
}

void *cgrpc__arena_alloc(cgrpc__arena *a, size_t n) {
  unsigned char *p;
  size_t need;

  if (n > SIZE_MAX - CGRPC__ARENA_ALIGN) {
    return NULL;
  }
  /* Rounding every size up keeps |cur| aligned, so no per-call pointer
   * arithmetic on addresses is needed; n == 0 still takes one slot so the
   * pointer is unique. */
  need = n == 0 ? CGRPC__ARENA_ALIGN : align_up(n);
  if ((size_t)(a->end - a->cur) >= need) {
    p = a->cur;
    a->cur += need;
    a->allocated += need;
    return p;
  }

  if (need > a->next_chunk_size / 2) {
    /* Big request: a dedicated chunk, leaving the current block in use. */
    p = chunk_new(a, need);
    if (p == NULL) {
      return NULL;
    }
    a->allocated += need;
    return p;
  }

  p = chunk_new(a, a->next_chunk_size);
  if (p == NULL) {
    return NULL;
  }
  a->cur = p + need;
  a->end = p + a->next_chunk_size;
  if (a->next_chunk_size < MAX_CHUNK_SIZE) {
    a->next_chunk_size *= 2;
  }
  a->allocated += need;
  return p;
}

void *cgrpc__arena_memdup(cgrpc__arena *a, const void *src, size_t n) {
  unsigned char *p;
  if (n == SIZE_MAX) {
    return NULL;
  }
  p = cgrpc__arena_alloc(a, n + 1);
  if (p == NULL) {
    return NULL;
  }
  if (n > 0) {
    memcpy(p, src, n);
  }
  p[n] = '\0';
  return p;
}

void cgrpc__arena_reset(cgrpc__arena *a) {
  struct cgrpc__arena_chunk *c = a->chunks, *next;
  while (c != NULL) {
    next = c->next;
    cgrpc__free(c);
    c = next;
  }
  cgrpc__arena_init(a);
}

static void *pb_alloc(void *allocator_data, size_t size) {
  return cgrpc__arena_alloc(allocator_data, size);
}

static void pb_free(void *allocator_data, void *pointer) {
  /* Arena memory goes away all at once in cgrpc__arena_reset(). */
  (void)allocator_data;
  (void)pointer;
}

void cgrpc__arena_protobuf_allocator(cgrpc__arena *a, ProtobufCAllocator *out) {
  out->alloc = pb_alloc;
  out->free = pb_free;
  out->allocator_data = a;
}
