/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <time.h>
#include <cmocka.h>

#include "util/clock.h"

static void test_clock_monotonic(void **state) {
  int64_t a, b, ms;
  (void)state;
  a = cgrpc__now_ns();
  b = cgrpc__now_ns();
  ms = cgrpc__now_ms();
  assert_true(a > 0);
  assert_true(b >= a);
  assert_true(ms >= a / 1000000);
  assert_true(ms <= cgrpc__now_ns() / 1000000);
}

static void test_clock_advances(void **state) {
  struct timespec ts = {0, 2000000}; /* 2 ms */
  int64_t a, b;
  (void)state;
  a = cgrpc__now_ns();
  nanosleep(&ts, NULL);
  b = cgrpc__now_ns();
  assert_true(b - a >= 2000000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_clock_monotonic),
      cmocka_unit_test(test_clock_advances),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
