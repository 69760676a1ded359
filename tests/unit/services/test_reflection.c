/* SPDX-License-Identifier: MIT */
/*
 * services/reflection: the walk over serialized FileDescriptorProtos, on
 * the library's own reflection.proto, on hand-built descriptors (long
 * names, deep nesting) and on damaged bytes, which must never be read
 * past their end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "services/reflection.h"

typedef struct seen {
  int n;
  char names[64][96];
  cgrpc__refl_kind kinds[64];
  int32_t numbers[64];
  char extendees[64][64];
  const char *stop_at;
} seen;

static int record(const cgrpc__refl_sym *sym, void *arg) {
  seen *s = arg;
  assert_int_equal(strlen(sym->name), sym->name_len);
  if (s->n < 64 && sym->name_len < 96) {
    memcpy(s->names[s->n], sym->name, sym->name_len + 1);
    s->kinds[s->n] = sym->kind;
    s->numbers[s->n] = sym->number;
    s->extendees[s->n][0] = '\0';
    if (sym->extendee != NULL && sym->extendee_len < 64) {
      memcpy(s->extendees[s->n], sym->extendee, sym->extendee_len);
      s->extendees[s->n][sym->extendee_len] = '\0';
    }
  }
  s->n++;
  return s->stop_at && strcmp(sym->name, s->stop_at) == 0;
}

static int find(const seen *s, const char *name, cgrpc__refl_kind kind) {
  int i;
  for (i = 0; i < s->n && i < 64; i++)
    if (strcmp(s->names[i], name) == 0 && s->kinds[i] == kind)
      return i;
  return -1;
}

static void test_reflection_walk_own_file(void **state) {
  const cgrpc_file_desc *f = &cgrpc__reflection_v1_file;
  seen s = {0};
  (void)state;
  assert_string_equal(f->name, "grpc/reflection/v1/reflection.proto");
  assert_int_equal(cgrpc__refl_walk_file(f->data, f->len, record, &s), 0);
  assert_true(find(&s, "grpc.reflection.v1.ServerReflection",
                   CGRPC__REFL_SERVICE) >= 0);
  assert_true(find(&s,
                   "grpc.reflection.v1.ServerReflection.ServerReflectionInfo",
                   CGRPC__REFL_METHOD) >= 0);
  assert_true(find(&s, "grpc.reflection.v1.ServerReflectionRequest",
                   CGRPC__REFL_MESSAGE) >= 0);
  assert_true(find(&s, "grpc.reflection.v1.ServerReflectionRequest.host",
                   CGRPC__REFL_FIELD) >= 0);
  assert_true(find(&s,
                   "grpc.reflection.v1.ServerReflectionRequest.message_request",
                   CGRPC__REFL_ONEOF) >= 0);
  assert_true(
      find(&s, "grpc.reflection.v1.ErrorResponse", CGRPC__REFL_MESSAGE) >= 0);
  /* Stopping early. */
  memset(&s, 0, sizeof s);
  s.stop_at = "grpc.reflection.v1.ExtensionRequest";
  assert_int_equal(cgrpc__refl_walk_file(f->data, f->len, record, &s), 1);
  assert_string_equal(s.names[s.n - 1], s.stop_at);
}

/* ---- hand-built descriptors ---- */

typedef struct buf {
  uint8_t *p;
  size_t len, cap;
} buf;

static void put(buf *b, const void *data, size_t n) {
  if (b->len + n > b->cap) {
    b->cap = (b->len + n) * 2 + 64;
    b->p = realloc(b->p, b->cap);
    assert_non_null(b->p);
  }
  memcpy(b->p + b->len, data, n);
  b->len += n;
}

static void put_varint(buf *b, uint64_t v) {
  uint8_t c;
  do {
    c = (uint8_t)(v & 0x7f);
    v >>= 7;
    if (v)
      c |= 0x80;
    put(b, &c, 1);
  } while (v);
}

static void put_bytes(buf *b, unsigned field, const void *data, size_t n) {
  put_varint(b, (uint64_t)field << 3 | 2);
  put_varint(b, n);
  put(b, data, n);
}

static void put_str(buf *b, unsigned field, const char *s) {
  put_bytes(b, field, s, strlen(s));
}

/* message <name> { <inner> } as DescriptorProto bytes into |out|. */
static void message(buf *out, const char *name, const buf *inner) {
  buf m = {0};
  put_str(&m, 1, name);
  if (inner)
    put(&m, inner->p, inner->len);
  put_bytes(out, 3, m.p, m.len); /* nested_type */
  free(m.p);
}

static void test_reflection_walk_built(void **state) {
  buf file = {0}, msg = {0}, inner = {0}, ext = {0}, en = {0}, val = {0};
  seen s = {0};
  int i;
  (void)state;
  /* package a.b; message M { message N {} enum E { V = 0; }
   *   extend .a.b.M { optional int32 x = 7; } } enum Top { T = 0; } */
  put_str(&inner, 1, "N");
  put_str(&msg, 1, "M");
  put_bytes(&msg, 3, inner.p, inner.len);
  put_str(&val, 1, "V");
  put_str(&en, 1, "E");
  put_bytes(&en, 2, val.p, val.len);
  put_bytes(&msg, 4, en.p, en.len);
  put_str(&ext, 1, "x");
  put_str(&ext, 2, ".a.b.M");
  put_varint(&ext, 3 << 3 | 0);
  put_varint(&ext, 7);
  put_bytes(&msg, 6, ext.p, ext.len);
  put_str(&file, 1, "x.proto");
  put_bytes(&file, 4, msg.p, msg.len); /* message_type */
  put_str(&file, 2, "a.b");            /* the package may come late */
  en.len = val.len = 0;
  put_str(&val, 1, "T");
  put_str(&en, 1, "Top");
  put_bytes(&en, 2, val.p, val.len);
  put_bytes(&file, 5, en.p, en.len);
  assert_int_equal(cgrpc__refl_walk_file(file.p, file.len, record, &s), 0);
  assert_true(find(&s, "a.b.M", CGRPC__REFL_MESSAGE) >= 0);
  assert_true(find(&s, "a.b.M.N", CGRPC__REFL_MESSAGE) >= 0);
  assert_true(find(&s, "a.b.M.E", CGRPC__REFL_ENUM) >= 0);
  assert_true(find(&s, "a.b.M.V", CGRPC__REFL_ENUM_VALUE) >= 0);
  assert_true(find(&s, "a.b.Top", CGRPC__REFL_ENUM) >= 0);
  assert_true(find(&s, "a.b.T", CGRPC__REFL_ENUM_VALUE) >= 0);
  i = find(&s, "a.b.M.x", CGRPC__REFL_EXTENSION);
  assert_true(i >= 0);
  assert_int_equal(s.numbers[i], 7);
  assert_string_equal(s.extendees[i], ".a.b.M");
  assert_int_equal(s.n, 7);

  /* Every truncation and every single-byte change: no reads past the end
   * (ASan and valgrind watch), and an answer of 0 or PROTO. */
  for (i = 0; i < (int)file.len; i++) {
    uint8_t *copy = malloc(file.len);
    int j, r;
    assert_non_null(copy);
    memcpy(copy, file.p, (size_t)i);
    memset(&s, 0, sizeof s);
    r = cgrpc__refl_walk_file(copy, (size_t)i, record, &s);
    assert_true(r == 0 || r == CGRPC_ERR_PROTO);
    for (j = 0; j < 8; j++) {
      memcpy(copy, file.p, file.len);
      copy[i] ^= (uint8_t)(1u << j);
      memset(&s, 0, sizeof s);
      r = cgrpc__refl_walk_file(copy, file.len, record, &s);
      assert_true(r == 0 || r == CGRPC_ERR_PROTO);
    }
    free(copy);
  }
  assert_int_equal(cgrpc__refl_walk_file(NULL, 0, record, &s), 0);
  assert_int_equal(cgrpc__refl_walk_file(NULL, 1, record, &s), CGRPC_ERR_PROTO);
  free(file.p);
  free(msg.p);
  free(inner.p);
  free(ext.p);
  free(en.p);
  free(val.p);
}

/* Names past CGRPC__REFL_MAX_NAME and nesting past 100 levels are
 * skipped, not overflowed. */
static void test_reflection_walk_limits(void **state) {
  buf file = {0}, chain = {0};
  char *name = malloc(CGRPC__REFL_MAX_NAME + 2);
  seen s = {0};
  int depth;
  (void)state;
  assert_non_null(name);
  memset(name, 'n', CGRPC__REFL_MAX_NAME + 1);
  name[CGRPC__REFL_MAX_NAME + 1] = '\0';
  put_str(&file, 2, "p");
  {
    buf m = {0};
    put_str(&m, 1, name); /* "p." + this: too long */
    put_bytes(&file, 4, m.p, m.len);
    m.len = 0;
    name[CGRPC__REFL_MAX_NAME - 2] = '\0'; /* "p." + this: just fits */
    put_str(&m, 1, name);
    put_bytes(&file, 4, m.p, m.len);
    free(m.p);
  }
  assert_int_equal(cgrpc__refl_walk_file(file.p, file.len, record, &s), 0);
  assert_int_equal(s.n, 1);
  free(file.p);

  /* 150 nested messages named "m". */
  for (depth = 0; depth < 150; depth++) {
    buf outer = {0};
    message(&outer, "m", depth ? &chain : NULL);
    free(chain.p);
    chain = outer;
  }
  /* |chain| is a nested_type field (3); make it a message_type (4). */
  chain.p[0] = 4 << 3 | 2;
  memset(&s, 0, sizeof s);
  assert_int_equal(cgrpc__refl_walk_file(chain.p, chain.len, record, &s), 0);
  assert_int_equal(s.n, 101);
  free(chain.p);
  free(name);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reflection_walk_own_file),
      cmocka_unit_test(test_reflection_walk_built),
      cmocka_unit_test(test_reflection_walk_limits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
