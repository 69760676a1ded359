/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cgrpc/error.h"
#include "cgrpc/status.h"

static void test_error_strerror_every_code(void **state) {
  (void)state;
#define CHECK(name, value, text)                                               \
  assert_string_equal(cgrpc_strerror(CGRPC_ERR_##name), text);                 \
  assert_string_equal(cgrpc_err_name(value), #name);
  CGRPC_ERROR_MAP(CHECK)
#undef CHECK
}

static void test_error_unknown_values(void **state) {
  (void)state;
  assert_string_equal(cgrpc_strerror(-1), "Unknown error");
  assert_string_equal(cgrpc_strerror(12345), "Unknown error");
  assert_string_equal(cgrpc_err_name(-1), "UNKNOWN");
  assert_string_equal(cgrpc_err_name(0), "UNKNOWN");
  assert_string_equal(cgrpc_strerror(0), "Success");
}

static void test_error_is_fatal(void **state) {
  (void)state;
  assert_true(cgrpc_is_fatal(CGRPC_ERR_NOMEM));
  assert_true(cgrpc_is_fatal(CGRPC_ERR_INTERNAL));
  assert_false(cgrpc_is_fatal(0));
  assert_false(cgrpc_is_fatal(CGRPC_ERR_PROTO));
  assert_false(cgrpc_is_fatal(CGRPC_ERR_CALLBACK_FAILURE));
  assert_false(cgrpc_is_fatal(CGRPC_ERR_TOO_LARGE));
}

static void test_error_status_code_name(void **state) {
  (void)state;
  assert_string_equal(cgrpc_status_code_name(CGRPC_STATUS_OK), "OK");
  assert_string_equal(cgrpc_status_code_name(CGRPC_STATUS_CANCELLED),
                      "CANCELLED");
  assert_string_equal(cgrpc_status_code_name(CGRPC_STATUS_NOT_FOUND),
                      "NOT_FOUND");
  assert_string_equal(cgrpc_status_code_name(CGRPC_STATUS_RESOURCE_EXHAUSTED),
                      "RESOURCE_EXHAUSTED");
  assert_string_equal(cgrpc_status_code_name(CGRPC_STATUS_DATA_LOSS),
                      "DATA_LOSS");
  assert_string_equal(cgrpc_status_code_name(CGRPC_STATUS_UNAUTHENTICATED),
                      "UNAUTHENTICATED");
  assert_string_equal(cgrpc_status_code_name(-1), "UNKNOWN");
  assert_string_equal(cgrpc_status_code_name(17), "UNKNOWN");
  assert_string_equal(cgrpc_status_code_name(1000000), "UNKNOWN");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_error_strerror_every_code),
      cmocka_unit_test(test_error_unknown_values),
      cmocka_unit_test(test_error_is_fatal),
      cmocka_unit_test(test_error_status_code_name),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
