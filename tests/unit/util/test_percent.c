/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "util/percent.h"

/* Encodes |in| (|n| bytes) and checks the result against |expect|. */
static void check_encode(const char *in, size_t n, const char *expect) {
  char buf[256];
  size_t len;
  assert_true(3 * n + 1 <= sizeof(buf));
  assert_int_equal(cgrpc__percent_encoded_len((const uint8_t *)in, n),
                   strlen(expect));
  memset(buf, 'X', sizeof(buf));
  len = cgrpc__percent_encode(buf, (const uint8_t *)in, n);
  assert_int_equal(len, strlen(expect));
  assert_string_equal(buf, expect);
}

/* Decodes the NUL-terminated |in| and checks against |expect|/|n|. */
static void check_decode(const char *in, const char *expect, size_t n) {
  uint8_t buf[256];
  size_t len;
  len = cgrpc__percent_decode(buf, in, strlen(in));
  assert_int_equal(len, n);
  assert_memory_equal(buf, expect, n);
  assert_int_equal(buf[len], '\0');
}

static void test_percent_encode_ascii_passthrough(void **state) {
  (void)state;
  check_encode("", 0, "");
  check_encode("hello world", 11, "hello world");
  /* Every printable ASCII byte except '%' is copied... */
  check_encode("a !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~", 33,
               "a !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~");
}

static void test_percent_encode_edge_spaces(void **state) {
  (void)state;
  /* ...except a space at either end, which HTTP/2 forbids in a value. */
  check_encode(" a b ", 5, "%20a b%20");
  check_encode(" ", 1, "%20");
  check_encode("  ", 2, "%20%20");
}

static void test_percent_encode_escapes(void **state) {
  (void)state;
  check_encode("%", 1, "%25");
  check_encode("100%", 4, "100%25");
  check_encode("a\nb", 3, "a%0Ab");
  check_encode("\t\r\x1f\x7f", 4, "%09%0D%1F%7F");
  check_encode("\0", 1, "%00");
  check_encode("\xff", 1, "%FF");
  /* UTF-8: "h\xc3\xa9llo" is "héllo"; the snowman is E2 98 83. */
  check_encode("h\xc3\xa9llo", 6, "h%C3%A9llo");
  check_encode("\xe2\x98\x83", 3, "%E2%98%83");
}

static void test_percent_decode_basic(void **state) {
  (void)state;
  check_decode("", "", 0);
  check_decode("plain", "plain", 5);
  check_decode("%25", "%", 1);
  check_decode("h%C3%A9llo", "h\xc3\xa9llo", 6);
  /* Lower-case hex is accepted on input. */
  check_decode("%e2%98%83", "\xe2\x98\x83", 3);
  check_decode("%00x", "\0x", 2);
  /* '+' is not a space in this encoding. */
  check_decode("a+b", "a+b", 3);
}

static void test_percent_decode_malformed_kept(void **state) {
  (void)state;
  check_decode("%", "%", 1);
  check_decode("%4", "%4", 2);
  check_decode("abc%", "abc%", 4);
  check_decode("%zz", "%zz", 3);
  check_decode("%4g", "%4g", 3);
  check_decode("%g4", "%g4", 3);
  check_decode("%%41", "%A", 2);
  check_decode("%%%", "%%%", 3);
  check_decode("100% sure", "100% sure", 9);
  check_decode("%2", "%2", 2);
}

static void test_percent_round_trip_all_bytes(void **state) {
  uint8_t src[256], dec[3 * 256 + 1];
  char enc[3 * 256 + 1];
  size_t i, elen, dlen;
  (void)state;
  for (i = 0; i < 256; ++i) {
    src[i] = (uint8_t)i;
  }
  elen = cgrpc__percent_encode(enc, src, sizeof(src));
  assert_int_equal(elen, cgrpc__percent_encoded_len(src, sizeof(src)));
  /* 95 printable bytes minus '%' pass through, the other 162 take 3. */
  assert_int_equal(elen, 94 + 162 * 3);
  for (i = 0; i < elen; ++i) {
    assert_true(enc[i] >= 0x20 && enc[i] <= 0x7e);
  }
  dlen = cgrpc__percent_decode(dec, enc, elen);
  assert_int_equal(dlen, sizeof(src));
  assert_memory_equal(dec, src, sizeof(src));
}

static void test_percent_round_trip_utf8_message(void **state) {
  static const char msg[] = "Übermäßig: 100% 失败 \xf0\x9f\x98\x80\n";
  char enc[3 * sizeof(msg)];
  uint8_t dec[3 * sizeof(msg)];
  size_t n = sizeof(msg) - 1, elen, dlen;
  (void)state;
  elen = cgrpc__percent_encode(enc, (const uint8_t *)msg, n);
  assert_null(memchr(enc, '\n', elen));
  dlen = cgrpc__percent_decode(dec, enc, elen);
  assert_int_equal(dlen, n);
  assert_memory_equal(dec, msg, n);
}

static void test_percent_decode_in_place(void **state) {
  char buf[] = "a%20b%zz%41";
  size_t len;
  (void)state;
  len = cgrpc__percent_decode((uint8_t *)buf, buf, strlen(buf));
  assert_int_equal(len, 7);
  assert_string_equal(buf, "a b%zzA");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_percent_encode_ascii_passthrough),
      cmocka_unit_test(test_percent_encode_edge_spaces),
      cmocka_unit_test(test_percent_encode_escapes),
      cmocka_unit_test(test_percent_decode_basic),
      cmocka_unit_test(test_percent_decode_malformed_kept),
      cmocka_unit_test(test_percent_round_trip_all_bytes),
      cmocka_unit_test(test_percent_round_trip_utf8_message),
      cmocka_unit_test(test_percent_decode_in_place),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
