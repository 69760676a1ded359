/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <protobuf-c/protobuf-c.h>

#include "util/arena.h"

static int setup(void **state) {
  static cgrpc__arena arena;
  cgrpc__arena_init(&arena);
  *state = &arena;
  return 0;
}

static int teardown(void **state) {
  cgrpc__arena_reset(*state);
  return 0;
}

static int is_aligned(const void *p) {
  return ((uintptr_t)p % CGRPC__ARENA_ALIGN) == 0;
}

static int in_inline(const cgrpc__arena *a, const void *p) {
  const unsigned char *c = p;
  return c >= a->inline_buf && c < a->inline_buf + sizeof(a->inline_buf);
}

static void test_arena_inline_first(void **state) {
  cgrpc__arena *a = *state;
  void *p = cgrpc__arena_alloc(a, 10), *q = cgrpc__arena_alloc(a, 10);
  assert_non_null(p);
  assert_non_null(q);
  assert_true(in_inline(a, p));
  assert_true(in_inline(a, q));
  assert_ptr_not_equal(p, q);
  assert_null(a->chunks);
  memset(p, 0xaa, 10);
  memset(q, 0xbb, 10);
  assert_int_equal(((unsigned char *)p)[9], 0xaa);
}

static void test_arena_alignment(void **state) {
  cgrpc__arena *a = *state;
  size_t i;
  for (i = 0; i < 2000; ++i) {
    void *p = cgrpc__arena_alloc(a, i % 37);
    assert_non_null(p);
    assert_true(is_aligned(p));
  }
}

static void test_arena_zero_size_unique(void **state) {
  cgrpc__arena *a = *state;
  void *p = cgrpc__arena_alloc(a, 0), *q = cgrpc__arena_alloc(a, 0);
  assert_non_null(p);
  assert_non_null(q);
  assert_ptr_not_equal(p, q);
}

static void test_arena_grows_and_keeps_data(void **state) {
  cgrpc__arena *a = *state;
  unsigned char *ptrs[400];
  size_t i, j;
  /* 400 x 100 bytes = 40 KB: several chunks beyond the inline block. */
  for (i = 0; i < 400; ++i) {
    ptrs[i] = cgrpc__arena_alloc(a, 100);
    assert_non_null(ptrs[i]);
    memset(ptrs[i], (int)(i & 0xff), 100);
  }
  assert_non_null(a->chunks);
  for (i = 0; i < 400; ++i) {
    for (j = 0; j < 100; ++j) {
      assert_int_equal(ptrs[i][j], i & 0xff);
    }
  }
}

static void test_arena_large_alloc_dedicated_chunk(void **state) {
  cgrpc__arena *a = *state;
  unsigned char *small = cgrpc__arena_alloc(a, 16);
  unsigned char *big = cgrpc__arena_alloc(a, 1 << 20);
  unsigned char *small2 = cgrpc__arena_alloc(a, 16);
  assert_non_null(big);
  assert_true(is_aligned(big));
  memset(big, 1, 1 << 20);
  /* The inline block is still the current block after a big request. */
  assert_true(in_inline(a, small));
  assert_true(in_inline(a, small2));
}

static void test_arena_overflow_returns_null(void **state) {
  cgrpc__arena *a = *state;
  assert_null(cgrpc__arena_alloc(a, SIZE_MAX));
  assert_null(cgrpc__arena_alloc(a, SIZE_MAX - 8));
  assert_null(cgrpc__arena_alloc(a, SIZE_MAX - CGRPC__ARENA_ALIGN));
  assert_null(cgrpc__arena_memdup(a, "x", SIZE_MAX));
  /* Still usable afterwards. */
  assert_non_null(cgrpc__arena_alloc(a, 8));
}

static void test_arena_reset_reuses_inline(void **state) {
  cgrpc__arena *a = *state;
  void *first = cgrpc__arena_alloc(a, 32), *again;
  size_t i;
  for (i = 0; i < 100; ++i) {
    assert_non_null(cgrpc__arena_alloc(a, 1000));
  }
  assert_non_null(a->chunks);
  cgrpc__arena_reset(a);
  assert_null(a->chunks);
  assert_int_equal(a->allocated, 0);
  again = cgrpc__arena_alloc(a, 32);
  assert_ptr_equal(first, again);
  /* Reset twice is harmless. */
  cgrpc__arena_reset(a);
  cgrpc__arena_reset(a);
}

static void test_arena_memdup(void **state) {
  cgrpc__arena *a = *state;
  char *s = cgrpc__arena_memdup(a, "hello", 5);
  char *e = cgrpc__arena_memdup(a, NULL, 0);
  assert_string_equal(s, "hello");
  assert_non_null(e);
  assert_string_equal(e, "");
}

static void test_arena_protobuf_allocator(void **state) {
  cgrpc__arena *a = *state;
  ProtobufCAllocator alloc;
  void *p;
  cgrpc__arena_protobuf_allocator(a, &alloc);
  assert_ptr_equal(alloc.allocator_data, a);
  p = alloc.alloc(alloc.allocator_data, 64);
  assert_non_null(p);
  assert_true(is_aligned(p));
  memset(p, 0, 64);
  alloc.free(alloc.allocator_data, p); /* no-op */
  alloc.free(alloc.allocator_data, NULL);
  assert_int_equal(a->allocated, 64);
}

/* Unpacks a message through protobuf-c with the arena allocator.  Uses the
 * descriptor-driven generic API, with a hand-written one-field descriptor,
 * so no generated code is needed. */
typedef struct {
  ProtobufCMessage base;
  char *name;
  size_t n_ids;
  int32_t *ids;
} TestMsg;

static const ProtobufCFieldDescriptor test_msg_fields[2] = {
    {"name", 1, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_STRING, 0,
     offsetof(TestMsg, name), NULL, &protobuf_c_empty_string, 0, 0, NULL, NULL},
    {"ids", 2, PROTOBUF_C_LABEL_REPEATED, PROTOBUF_C_TYPE_INT32,
     offsetof(TestMsg, n_ids), offsetof(TestMsg, ids), NULL, NULL,
     PROTOBUF_C_FIELD_FLAG_PACKED, 0, NULL, NULL},
};
static const unsigned test_msg_by_name[2] = {1, 0};
static const ProtobufCIntRange test_msg_ranges[2] = {{1, 0}, {0, 2}};
static const ProtobufCMessageDescriptor test_msg_desc = {
    PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    "test.Msg",
    "Msg",
    "Test__Msg",
    "test",
    sizeof(TestMsg),
    2,
    test_msg_fields,
    test_msg_by_name,
    1,
    test_msg_ranges,
    NULL,
    NULL,
    NULL,
    NULL};

static void test_arena_protobuf_unpack(void **state) {
  cgrpc__arena *a = *state;
  ProtobufCAllocator alloc;
  /* name = "arena", ids = [1, 300] packed */
  static const uint8_t wire[] = {0x0a, 5,    'a', 'r', 'e',  'n',
                                 'a',  0x12, 3,   1,   0xac, 0x02};
  TestMsg *m;
  cgrpc__arena_protobuf_allocator(a, &alloc);
  m = (TestMsg *)protobuf_c_message_unpack(&test_msg_desc, &alloc, sizeof(wire),
                                           wire);
  assert_non_null(m);
  assert_string_equal(m->name, "arena");
  assert_int_equal(m->n_ids, 2);
  assert_int_equal(m->ids[0], 1);
  assert_int_equal(m->ids[1], 300);
  assert_true(a->allocated > 0);
  /* Freeing through the arena allocator is a no-op; reset reclaims it. */
  protobuf_c_message_free_unpacked(&m->base, &alloc);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
      T(test_arena_inline_first),
      T(test_arena_alignment),
      T(test_arena_zero_size_unique),
      T(test_arena_grows_and_keeps_data),
      T(test_arena_large_alloc_dedicated_chunk),
      T(test_arena_overflow_returns_null),
      T(test_arena_reset_reuses_inline),
      T(test_arena_memdup),
      T(test_arena_protobuf_allocator),
      T(test_arena_protobuf_unpack),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
