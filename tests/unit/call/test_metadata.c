/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "cgrpc/error.h"
#include "cgrpc/status.h"
#include "call/metadata.h"
#include "util/mem.h"

#define S(lit) lit, sizeof(lit) - 1

static int setup(void **state) {
  cgrpc_metadata_array *md = NULL;
  assert_int_equal(cgrpc_metadata_array_new(&md), 0);
  assert_non_null(md);
  *state = md;
  return 0;
}

static int teardown(void **state) {
  cgrpc_metadata_array_del(*state);
  return 0;
}

static void test_metadata_key_valid(void **state) {
  (void)state;
  assert_true(cgrpc__md_key_valid(S("x")));
  assert_true(cgrpc__md_key_valid(S("x-request-id")));
  assert_true(cgrpc__md_key_valid(S("a.b_c-d0123456789")));
  assert_true(cgrpc__md_key_valid(S("trace-bin")));
  assert_false(cgrpc__md_key_valid(S("")));
  assert_false(cgrpc__md_key_valid(S("X-Upper")));
  assert_false(cgrpc__md_key_valid(S("has space")));
  assert_false(cgrpc__md_key_valid(S(":path")));
  assert_false(cgrpc__md_key_valid(S("a/b")));
  assert_false(cgrpc__md_key_valid(S("caf\xc3\xa9")));
  assert_false(cgrpc__md_key_valid("a\0b", 3));
}

static void test_metadata_key_is_bin(void **state) {
  (void)state;
  assert_true(cgrpc__md_key_is_bin(S("trace-bin")));
  assert_true(cgrpc__md_key_is_bin(S("-bin")));
  assert_false(cgrpc__md_key_is_bin(S("bin")));
  assert_false(cgrpc__md_key_is_bin(S("trace-bin2")));
  assert_false(cgrpc__md_key_is_bin(S("tracebin")));
  assert_false(cgrpc__md_key_is_bin(S("")));
  /* Only the first 9 bytes count as the key here. */
  assert_true(cgrpc__md_key_is_bin("trace-binXYZ", 9));
}

static void test_metadata_value_valid(void **state) {
  (void)state;
  assert_true(cgrpc__md_value_valid((const uint8_t *)"", 0));
  assert_true(cgrpc__md_value_valid((const uint8_t *)S(" any ~ text! ")));
  assert_false(cgrpc__md_value_valid((const uint8_t *)S("tab\there")));
  assert_false(cgrpc__md_value_valid((const uint8_t *)S("line\n")));
  assert_false(cgrpc__md_value_valid((const uint8_t *)S("del\x7f")));
  assert_false(cgrpc__md_value_valid((const uint8_t *)S("caf\xc3\xa9")));
  assert_false(cgrpc__md_value_valid((const uint8_t *)"a\0b", 3));
}

static void test_metadata_key_reserved(void **state) {
  (void)state;
  assert_true(cgrpc__md_key_reserved(S("grpc-timeout")));
  assert_true(cgrpc__md_key_reserved(S("grpc-")));
  assert_true(cgrpc__md_key_reserved(S("grpc-custom-bin")));
  assert_true(cgrpc__md_key_reserved(S(":authority")));
  assert_true(cgrpc__md_key_reserved(S("content-type")));
  assert_true(cgrpc__md_key_reserved(S("te")));
  assert_true(cgrpc__md_key_reserved(S("user-agent")));
  assert_true(cgrpc__md_key_reserved(S("host")));
  assert_true(cgrpc__md_key_reserved(S("connection")));
  assert_true(cgrpc__md_key_reserved(S("transfer-encoding")));
  assert_false(cgrpc__md_key_reserved(S("grpc")));
  assert_false(cgrpc__md_key_reserved(S("grpcx-key")));
  assert_false(cgrpc__md_key_reserved(S("my-grpc-key")));
  assert_false(cgrpc__md_key_reserved(S("tee")));
  assert_false(cgrpc__md_key_reserved(S("content-type2")));
  assert_false(cgrpc__md_key_reserved(S("authorization")));
  assert_false(cgrpc__md_key_reserved(S("")));
}

static void test_metadata_add_get_at(void **state) {
  cgrpc_metadata_array *md = *state;
  const char *key, *v;
  const uint8_t *value;
  size_t len = 99;
  assert_int_equal(cgrpc_metadata_array_count(md), 0);
  assert_null(cgrpc_metadata_array_get(md, "x-a", &len));
  assert_int_equal(cgrpc_metadata_array_add(md, "x-a", "1"), 0);
  assert_int_equal(cgrpc_metadata_array_add(md, "x-b", ""), 0);
  assert_int_equal(cgrpc_metadata_array_add(md, "x-a", "second"), 0);
  assert_int_equal(cgrpc_metadata_array_count(md), 3);

  v = cgrpc_metadata_array_get(md, "x-a", &len);
  assert_string_equal(v, "1"); /* first match */
  assert_int_equal(len, 1);
  v = cgrpc_metadata_array_get(md, "x-b", NULL);
  assert_string_equal(v, "");
  assert_null(cgrpc_metadata_array_get(md, "x", NULL));
  assert_null(cgrpc_metadata_array_get(md, "x-a-", NULL));

  assert_int_equal(cgrpc_metadata_array_at(md, 2, &key, &value, &len), 0);
  assert_string_equal(key, "x-a");
  assert_int_equal(len, 6);
  assert_string_equal((const char *)value, "second");
  assert_int_equal(cgrpc_metadata_array_at(md, 0, NULL, NULL, &len), 0);
  assert_int_equal(len, 1);
  assert_int_equal(cgrpc_metadata_array_at(md, 3, &key, &value, &len),
                   CGRPC_ERR_INVALID_ARGUMENT);
  /* Entries are directly readable by the runtime. */
  assert_int_equal(md->count, 3);
  assert_int_equal(md->entries[1].key_len, 3);
  assert_int_equal(md->entries[1].value_len, 0);
}

static void test_metadata_add_rejects(void **state) {
  cgrpc_metadata_array *md = *state;
  (void)state;
  assert_int_equal(cgrpc_metadata_array_add(md, "Bad-Key", "v"),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_metadata_array_add(md, "", "v"),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_metadata_array_add(md, "x", "new\nline"),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_metadata_array_add(md, "x", "\xc3\xa9"),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_metadata_array_add(md, "grpc-status", "0"),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_metadata_array_add(md, "grpc-retry-pushback-msx", "1"),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_metadata_array_add(md, ":path", "/x"),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_metadata_array_add(md, "content-type", "a"),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_metadata_array_add(md, "te", "trailers"),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_metadata_array_add(md, "user-agent", "me"),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_metadata_array_add(md, NULL, "v"),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_metadata_array_add(md, "x", NULL),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_metadata_array_add(NULL, "x", "v"),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_metadata_array_add_bin(md, "grpc-x-bin", "v", 1),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_metadata_array_add_bin(md, "not-binary", "v", 1),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_metadata_array_add_bin(md, "x-bin", NULL, 1),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_metadata_array_count(md), 0);
  /* The one grpc-* key an application sets: a server's retry pushback. */
  assert_int_equal(
      cgrpc_metadata_array_add(md, "grpc-retry-pushback-ms", "100"), 0);
  assert_int_equal(cgrpc_metadata_array_count(md), 1);
}

static void test_metadata_bin(void **state) {
  cgrpc_metadata_array *md = *state;
  static const uint8_t bin[] = {0x00, 0xff, 0x0a, 0x80, 0x00};
  const char *key;
  const uint8_t *value;
  size_t len;
  assert_int_equal(
      cgrpc_metadata_array_add_bin(md, "trace-bin", bin, sizeof(bin)), 0);
  assert_int_equal(cgrpc_metadata_array_add_bin(md, "empty-bin", NULL, 0), 0);
  /* add() on a -bin key takes the string's bytes as binary. */
  assert_int_equal(cgrpc_metadata_array_add(md, "utf8-bin", "\xc3\xa9\n"), 0);
  assert_int_equal(cgrpc_metadata_array_at(md, 0, &key, &value, &len), 0);
  assert_string_equal(key, "trace-bin");
  assert_int_equal(len, sizeof(bin));
  assert_memory_equal(value, bin, sizeof(bin));
  assert_int_equal(value[len], 0); /* NUL after binary too */
  assert_int_equal(cgrpc_metadata_array_at(md, 1, NULL, &value, &len), 0);
  assert_int_equal(len, 0);
  assert_int_equal(value[0], 0);
  assert_non_null(cgrpc_metadata_array_get(md, "utf8-bin", &len));
  assert_int_equal(len, 3);
}

static void test_metadata_add_raw_and_b64(void **state) {
  cgrpc_metadata_array *md = *state;
  size_t len;
  const char *v;
  /* The runtime may store reserved keys. */
  assert_int_equal(cgrpc__metadata_array_add_raw(md, S("grpc-status"),
                                                 (const uint8_t *)"5", 1),
                   0);
  assert_string_equal(cgrpc_metadata_array_get(md, "grpc-status", NULL), "5");
  /* Key/value need not be NUL-terminated on input. */
  assert_int_equal(cgrpc__metadata_array_add_raw(md, "x-keyXXX", 5,
                                                 (const uint8_t *)"valYYY", 3),
                   0);
  v = cgrpc_metadata_array_get(md, "x-key", &len);
  assert_string_equal(v, "val");
  assert_int_equal(cgrpc__metadata_array_add_raw(md, S("x-empty"), NULL, 0), 0);

  assert_int_equal(cgrpc__metadata_array_add_b64(md, S("t-bin"), S("AP8KgA")),
                   0);
  v = cgrpc_metadata_array_get(md, "t-bin", &len);
  assert_int_equal(len, 4);
  assert_memory_equal(v, "\x00\xff\x0a\x80", 4);
  assert_int_equal(v[4], 0);
  assert_int_equal(cgrpc__metadata_array_add_b64(md, S("p-bin"), S("AP8KgA==")),
                   0);
  v = cgrpc_metadata_array_get(md, "p-bin", &len);
  assert_int_equal(len, 4);
  assert_int_equal(cgrpc_metadata_array_count(md), 5);
  assert_int_equal(cgrpc__metadata_array_add_b64(md, S("bad-bin"), S("A*==")),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_metadata_array_count(md), 5);
  assert_null(cgrpc_metadata_array_get(md, "bad-bin", NULL));
}

static void test_metadata_many_entries(void **state) {
  cgrpc_metadata_array *md = *state;
  char key[32], val[32];
  size_t i;
  for (i = 0; i < 1000; ++i) {
    snprintf(key, sizeof(key), "k%zu", i);
    snprintf(val, sizeof(val), "v%zu", i * 3);
    assert_int_equal(cgrpc_metadata_array_add(md, key, val), 0);
  }
  assert_int_equal(cgrpc_metadata_array_count(md), 1000);
  assert_string_equal(cgrpc_metadata_array_get(md, "k999", NULL), "v2997");
  assert_string_equal(cgrpc_metadata_array_get(md, "k0", NULL), "v0");
}

static void test_metadata_null_array(void **state) {
  (void)state;
  assert_int_equal(cgrpc_metadata_array_count(NULL), 0);
  assert_null(cgrpc_metadata_array_get(NULL, "x", NULL));
  assert_int_equal(cgrpc_metadata_array_at(NULL, 0, NULL, NULL, NULL),
                   CGRPC_ERR_INVALID_ARGUMENT);
  cgrpc_metadata_array_del(NULL);
}

static void test_metadata_embedded_clear(void **state) {
  cgrpc_metadata_array md;
  (void)state;
  cgrpc__metadata_array_init(&md);
  assert_int_equal(cgrpc_metadata_array_add(&md, "a", "b"), 0);
  cgrpc__metadata_array_clear(&md);
  assert_int_equal(cgrpc_metadata_array_count(&md), 0);
  assert_int_equal(cgrpc_metadata_array_add(&md, "c", "d"), 0);
  assert_string_equal(cgrpc_metadata_array_get(&md, "c", NULL), "d");
  cgrpc__metadata_array_clear(&md);
}

static void test_metadata_status_clear(void **state) {
  cgrpc_status st;
  char *msg = cgrpc__malloc(6);
  (void)state;
  memcpy(msg, "oops!", 6);
  st.code = CGRPC_STATUS_INTERNAL;
  st.message = msg;
  assert_int_equal(cgrpc_metadata_array_new(&st.initial_metadata), 0);
  assert_int_equal(cgrpc_metadata_array_new(&st.trailing_metadata), 0);
  assert_int_equal(cgrpc_metadata_array_add(st.trailing_metadata, "k", "v"), 0);
  cgrpc_status_clear(&st);
  assert_int_equal(st.code, CGRPC_STATUS_OK);
  assert_null(st.message);
  assert_null(st.initial_metadata);
  assert_null(st.trailing_metadata);
  cgrpc_status_clear(&st); /* again: nothing left to free */
  cgrpc_status_clear(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
      T(test_metadata_key_valid),
      T(test_metadata_key_is_bin),
      T(test_metadata_value_valid),
      T(test_metadata_key_reserved),
      T(test_metadata_add_get_at),
      T(test_metadata_add_rejects),
      T(test_metadata_bin),
      T(test_metadata_add_raw_and_b64),
      T(test_metadata_many_entries),
      T(test_metadata_null_array),
      T(test_metadata_embedded_clear),
      T(test_metadata_status_clear),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
