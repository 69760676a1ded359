/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "util/timeout.h"

#define NS_PER_S INT64_C(1000000000)

static int parse(const char *s, int64_t *out) {
  return cgrpc__timeout_parse(s, strlen(s), out);
}

static void check_parse(const char *s, int64_t expect) {
  int64_t v = -42;
  assert_int_equal(parse(s, &v), 0);
  assert_int_equal(v, expect);
}

static void check_format(int64_t ns, const char *expect) {
  char buf[CGRPC__TIMEOUT_BUFLEN];
  memset(buf, 'X', sizeof(buf));
  assert_int_equal(cgrpc__timeout_format(buf, ns), strlen(expect));
  assert_string_equal(buf, expect);
}

static void test_timeout_parse_every_unit(void **state) {
  (void)state;
  check_parse("1n", 1);
  check_parse("1u", 1000);
  check_parse("1m", 1000000);
  check_parse("1S", NS_PER_S);
  check_parse("1M", 60 * NS_PER_S);
  check_parse("1H", 3600 * NS_PER_S);
  check_parse("250m", 250 * INT64_C(1000000));
  check_parse("0n", 0);
  check_parse("0H", 0);
  check_parse("00000007S", 7 * NS_PER_S);
}

static void test_timeout_parse_eight_digits(void **state) {
  (void)state;
  check_parse("99999999n", 99999999);
  check_parse("99999999u", INT64_C(99999999) * 1000);
  check_parse("99999999m", INT64_C(99999999) * 1000000);
  check_parse("99999999S", INT64_C(99999999) * NS_PER_S);
  check_parse("12345678M", INT64_C(12345678) * 60 * NS_PER_S);
  check_parse("00000001S", NS_PER_S);
}

static void test_timeout_parse_overflow_saturates(void **state) {
  (void)state;
  /* INT64_MAX nanoseconds is about 292 years: 99999999 hours exceed it,
   * 99999999 minutes (~190 years) still fit. */
  check_parse("99999999H", INT64_MAX);
  check_parse("99999999M", INT64_C(99999999) * 60 * NS_PER_S);
  check_parse("2562048H", INT64_MAX);
  /* 2562047 hours still fits. */
  check_parse("2562047H", INT64_C(2562047) * 3600 * NS_PER_S);
}

static void test_timeout_parse_invalid(void **state) {
  static const char *const bad[] = {
      "",           "n",   "S",    "1",   "12",   "123456789n", /* 9 digits */
      "000000001S", /* 9 digits, even with zeros */
      "1s",         "1h",  "1x",   "1 S", " 1S",  "1S ",        "1SS",
      "-1S",        "+1S", "1.5S", "S1",  "0x1S", "1m\n",
  };
  size_t i;
  int64_t v = -42;
  (void)state;
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
    assert_int_equal(parse(bad[i], &v), -1);
  }
  /* An embedded NUL is just a bad character. */
  assert_int_equal(cgrpc__timeout_parse("1\0S", 3, &v), -1);
  /* The length is honoured: "10S" cut to two characters is "10" (no unit). */
  assert_int_equal(cgrpc__timeout_parse("10S", 2, &v), -1);
  assert_int_equal(cgrpc__timeout_parse("1SX", 2, &v), 0);
  assert_int_equal(v, NS_PER_S);
}

static void test_timeout_format_units(void **state) {
  (void)state;
  check_format(1, "1n");
  check_format(99999999, "99999999n");
  check_format(100000000, "100000u");
  check_format(100000001, "100001u"); /* rounded up */
  check_format(NS_PER_S, "1000000u");
  check_format(INT64_C(99999999) * 1000, "99999999u");
  check_format(INT64_C(99999999) * 1000 + 1, "100000m");
  check_format(200 * NS_PER_S, "200000m");
  check_format(INT64_C(99999999) * 1000000 + 1, "100000S");
  check_format(INT64_C(99999999) * NS_PER_S + 1, "1666667M");
  check_format(INT64_C(99999999) * 60 * NS_PER_S + 1, "1666667H");
  check_format(INT64_MAX, "2562048H");
}

static void test_timeout_format_non_positive(void **state) {
  (void)state;
  check_format(0, "1n");
  check_format(-1, "1n");
  check_format(INT64_MIN, "1n");
}

/* format(parse(x)) must never be shorter than x, and parse(format(ns)) must
 * never be shorter than ns. */
static void test_timeout_format_round_trip(void **state) {
  static const char *const inputs[] = {
      "1n",        "999n",      "99999999n", "1u",       "99999999u", "1m",
      "50m",       "99999999m", "1S",        "30S",      "99999999S", "1M",
      "99999999M", "1H",        "24H",       "2562047H", "99999999H",
  };
  static const int64_t durations[] = {
      1,
      7,
      999,
      1001,
      123456789,
      999999999,
      NS_PER_S + 1,
      INT64_C(86400) * NS_PER_S + 3,
      INT64_MAX / 2,
      INT64_MAX - 1,
      INT64_MAX,
  };
  char buf[CGRPC__TIMEOUT_BUFLEN];
  size_t i, len;
  int64_t a, b;
  (void)state;
  for (i = 0; i < sizeof(inputs) / sizeof(inputs[0]); ++i) {
    assert_int_equal(parse(inputs[i], &a), 0);
    len = cgrpc__timeout_format(buf, a);
    assert_true(len >= 2 && len <= 9);
    assert_int_equal(cgrpc__timeout_parse(buf, len, &b), 0);
    assert_true(b >= a);
  }
  for (i = 0; i < sizeof(durations) / sizeof(durations[0]); ++i) {
    len = cgrpc__timeout_format(buf, durations[i]);
    assert_int_equal(cgrpc__timeout_parse(buf, len, &b), 0);
    assert_true(b >= durations[i]);
  }
  /* Exact values come back exactly. */
  len = cgrpc__timeout_format(buf, 30 * NS_PER_S);
  assert_int_equal(cgrpc__timeout_parse(buf, len, &b), 0);
  assert_int_equal(b, 30 * NS_PER_S);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_timeout_parse_every_unit),
      cmocka_unit_test(test_timeout_parse_eight_digits),
      cmocka_unit_test(test_timeout_parse_overflow_saturates),
      cmocka_unit_test(test_timeout_parse_invalid),
      cmocka_unit_test(test_timeout_format_units),
      cmocka_unit_test(test_timeout_format_non_positive),
      cmocka_unit_test(test_timeout_format_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
