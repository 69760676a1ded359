/* SPDX-License-Identifier: MIT */
/*
 * A bump allocator for per-call memory (decoded requests, metadata copies).
 * Allocations are never freed one by one: cgrpc__arena_reset() releases
 * everything at once.  The first 512 bytes come from a buffer inside the
 * arena itself, so a small unary call needs no malloc at all; after that the
 * arena takes chunks from cgrpc__malloc() whose size doubles up to a cap.
 */
#ifndef CGRPC_UTIL_ARENA_H
#define CGRPC_UTIL_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* Size of the block embedded in cgrpc__arena. */
#define CGRPC__ARENA_INLINE_SIZE 512
/* Every pointer returned by cgrpc__arena_alloc() is aligned to this. */
#define CGRPC__ARENA_ALIGN 16

struct cgrpc__arena_chunk;

/*
 * The arena.  Fields are private to arena.c.  The struct holds pointers into
 * itself, so it must not be copied or moved between cgrpc__arena_init() and
 * the last cgrpc__arena_reset().
 */
typedef struct cgrpc__arena {
  /* Free space of the current block: [cur, end). */
  unsigned char *cur;
  unsigned char *end;
  /* malloc'd chunks, newest first. */
  struct cgrpc__arena_chunk *chunks;
  /* Size of the next regular chunk. */
  size_t next_chunk_size;
  /* Bytes handed out since the last reset (statistics, tests). */
  size_t allocated;
  /* Aligned at run time rather than with _Alignas, so the arena may sit in
   * memory from an allocator that only guarantees 8-byte alignment. */
  unsigned char inline_buf[CGRPC__ARENA_INLINE_SIZE];
} cgrpc__arena;

/*
 * Initializes the empty arena |a|.  Does not allocate.
 * Thread safety: one thread at a time per arena (as for all arena calls).
 */
void cgrpc__arena_init(cgrpc__arena *a);

/*
 * Returns |n| bytes aligned to CGRPC__ARENA_ALIGN, valid until the next
 * cgrpc__arena_reset().  The memory is not zeroed.  |n| == 0 returns a valid
 * unique pointer.  Requests larger than the current chunk size get a chunk
 * of their own, so one big message does not waste a half-used chunk.
 *
 * Returns NULL when out of memory or when |n| is so large that the size
 * computation would overflow; the arena is unchanged then.
 */
void *cgrpc__arena_alloc(cgrpc__arena *a, size_t n);

/*
 * Like cgrpc__arena_alloc(), then copies |n| bytes from |src| and appends a
 * NUL (so |n| + 1 bytes are taken).  Returns NULL on failure.
 */
void *cgrpc__arena_memdup(cgrpc__arena *a, const void *src, size_t n);

/*
 * Frees every chunk and makes the whole inline block available again.  Every
 * pointer handed out before becomes invalid.  This is also the destructor:
 * an arena needs no other cleanup.
 */
void cgrpc__arena_reset(cgrpc__arena *a);

/*
 * Fills |out| with a ProtobufCAllocator that allocates from |a| and whose
 * free is a no-op, so that protobuf_c_message_unpack(desc, out, len, data)
 * builds the decoded message inside the arena and
 * protobuf_c_message_free_unpacked(msg, out) costs nothing.  |out| refers to
 * |a| and must not outlive it.
 */
void cgrpc__arena_protobuf_allocator(cgrpc__arena *a, ProtobufCAllocator *out);

#endif /* CGRPC_UTIL_ARENA_H */
