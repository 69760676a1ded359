/* SPDX-License-Identifier: MIT */
/*
 * Force-included (-include fi_libc.h) into the test-side sources that the
 * sweep must not fail or count (the StreamService servicer): their malloc()
 * and free() go straight to the C library, past the --wrap functions.
 */
#ifndef CGRPC_TEST_FI_LIBC_H
#define CGRPC_TEST_FI_LIBC_H

#include <stdlib.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);

#define malloc(n) __real_malloc(n)
#define calloc(n, size) __real_calloc(n, size)
#define realloc(p, n) __real_realloc(p, n)
#define free(p) __real_free(p)

#endif /* CGRPC_TEST_FI_LIBC_H */
