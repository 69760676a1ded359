/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util/log.h"
#include "util/trace.h"

struct capture {
  int calls;
  cgrpc_log_level level;
  char msg[2048];
};

static void capture_cb(cgrpc_log_level level, const char *msg,
                       void *user_data) {
  struct capture *c = user_data;
  c->calls++;
  c->level = level;
  strncpy(c->msg, msg, sizeof(c->msg) - 1);
  c->msg[sizeof(c->msg) - 1] = '\0';
}

static void test_log_callback_formats(void **state) {
  struct capture cap = {0};
  cgrpc__logger lg;
  (void)state;
  cgrpc__logger_init(&lg, capture_cb, &cap);
  cgrpc__log(&lg, CGRPC_LOG_WARNING, "stream %d: %s", 7, "reset");
  assert_int_equal(cap.calls, 1);
  assert_int_equal(cap.level, CGRPC_LOG_WARNING);
  assert_string_equal(cap.msg, "stream 7: reset");
  cgrpc__log(&lg, CGRPC_LOG_DEBUG, "debug %u", 1u);
  assert_int_equal(cap.calls, 2);
  assert_true(cgrpc__log_enabled(&lg, CGRPC_LOG_DEBUG));
}

static void test_log_level_min_filters(void **state) {
  struct capture cap = {0};
  cgrpc__logger lg;
  (void)state;
  cgrpc__logger_init(&lg, capture_cb, &cap);
  lg.level_min = CGRPC_LOG_ERROR;
  cgrpc__log(&lg, CGRPC_LOG_INFO, "dropped");
  assert_int_equal(cap.calls, 0);
  cgrpc__log(&lg, CGRPC_LOG_ERROR, "kept");
  assert_int_equal(cap.calls, 1);
}

static void test_log_long_message_truncated(void **state) {
  struct capture cap = {0};
  cgrpc__logger lg;
  char big[1500];
  (void)state;
  memset(big, 'x', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  cgrpc__logger_init(&lg, capture_cb, &cap);
  cgrpc__log(&lg, CGRPC_LOG_INFO, "%s", big);
  assert_int_equal(cap.calls, 1);
  assert_int_equal(strlen(cap.msg), 1023);
}

static void test_log_silent_without_trace(void **state) {
  cgrpc__logger lg;
  (void)state;
  unsetenv("CGRPC_TRACE");
  cgrpc__logger_init(&lg, NULL, NULL);
  assert_null(lg.cb);
  assert_false(cgrpc__log_enabled(&lg, CGRPC_LOG_ERROR));
  cgrpc__log(&lg, CGRPC_LOG_ERROR, "nothing %d", 1);
  cgrpc__log(NULL, CGRPC_LOG_ERROR, "nothing");

  setenv("CGRPC_TRACE", "", 1);
  cgrpc__logger_init(&lg, NULL, NULL);
  assert_null(lg.cb);
  setenv("CGRPC_TRACE", "0", 1);
  cgrpc__logger_init(&lg, NULL, NULL);
  assert_null(lg.cb);
  unsetenv("CGRPC_TRACE");
}

static void test_log_trace_env_uses_stderr(void **state) {
  struct capture cap = {0};
  cgrpc__logger lg;
  (void)state;
  setenv("CGRPC_TRACE", "1", 1);
  cgrpc__logger_init(&lg, NULL, NULL);
  assert_ptr_equal(lg.cb, cgrpc_log_stderr);
  assert_true(cgrpc__log_enabled(&lg, CGRPC_LOG_DEBUG));
  cgrpc__log(&lg, CGRPC_LOG_DEBUG, "trace line from test_log (expected)");
  setenv("CGRPC_TRACE", "all", 1);
  cgrpc__logger_init(&lg, NULL, NULL);
  assert_ptr_equal(lg.cb, cgrpc_log_stderr);
  /* An explicit callback wins over the environment. */
  cgrpc__logger_init(&lg, capture_cb, &cap);
  assert_ptr_equal(lg.cb, capture_cb);
  unsetenv("CGRPC_TRACE");
}

static void test_trace_parse(void **state) {
  unsigned mask;
  char bad[64];
  (void)state;
  assert_false(cgrpc__trace_parse("call,h2", &mask, bad, sizeof bad));
  assert_int_equal(mask, CGRPC__TRACE_CALL | CGRPC__TRACE_H2);
  assert_string_equal(bad, "");
  /* Spaces around names; empty items; "-name" after "all". */
  assert_true(cgrpc__trace_parse("all, -h2,,", &mask, bad, sizeof bad));
  assert_int_equal(mask, CGRPC__TRACE_ALL & ~CGRPC__TRACE_H2);
  assert_true(cgrpc__trace_parse("1", &mask, bad, sizeof bad));
  assert_int_equal(mask, CGRPC__TRACE_ALL);
  /* "all" later in the list turns every tracer on, but the other
   * messages stay at INFO. */
  assert_false(cgrpc__trace_parse("conn,all", &mask, bad, sizeof bad));
  assert_int_equal(mask, CGRPC__TRACE_ALL);
  assert_false(cgrpc__trace_parse("-all", &mask, bad, sizeof bad));
  assert_int_equal(mask, 0);
  /* Unknown names are listed and ignored; "0" is nothing. */
  assert_false(cgrpc__trace_parse("calls,tls,-bogus,0", &mask, bad,
                                  sizeof bad));
  assert_int_equal(mask, CGRPC__TRACE_TLS);
  assert_string_equal(bad, "calls,bogus");
  assert_false(cgrpc__trace_parse(NULL, &mask, bad, sizeof bad));
  assert_int_equal(mask, 0);
  /* A list of unknown names longer than |bad| is cut, not overrun. */
  assert_false(cgrpc__trace_parse("aaaaaaaaaa,bbbbbbbbbb,cccccccccc", &mask,
                                  bad, 16));
  assert_string_equal(bad, "aaaaaaaaaa");
}

static void test_trace_event_goes_to_the_callback(void **state) {
  struct capture cap = {0};
  cgrpc__logger lg;
  unsigned saved = cgrpc__trace_mask;
  (void)state;
  cgrpc__logger_init(&lg, capture_cb, &cap);
  lg.level_min = CGRPC_LOG_ERROR; /* tracers print whatever the level */
  cgrpc__trace_mask = CGRPC__TRACE_CALL;
  CGRPC__TRACE(&lg, H2, "not this one %d", 1);
  assert_int_equal(cap.calls, 0);
  CGRPC__TRACE(&lg, CALL, "call %d ends %s", 7, "OK");
  assert_int_equal(cap.calls, 1);
  assert_int_equal(cap.level, CGRPC_LOG_DEBUG);
  assert_string_equal(cap.msg, "[call] call 7 ends OK");
  CGRPC__TRACE((const cgrpc__logger *)NULL, CALL, "no logger");
  assert_int_equal(cap.calls, 1);
  cgrpc__trace_mask = saved;
}

static void test_trace_names_set_info_level(void **state) {
  cgrpc__logger lg;
  (void)state;
  setenv("CGRPC_TRACE", "call,conn", 1);
  cgrpc__logger_init(&lg, NULL, NULL);
  assert_ptr_equal(lg.cb, cgrpc_log_stderr);
  assert_false(cgrpc__log_enabled(&lg, CGRPC_LOG_DEBUG));
  assert_true(cgrpc__log_enabled(&lg, CGRPC_LOG_INFO));
  setenv("CGRPC_TRACE", "all,-h2", 1);
  cgrpc__logger_init(&lg, NULL, NULL);
  assert_true(cgrpc__log_enabled(&lg, CGRPC_LOG_DEBUG));
  unsetenv("CGRPC_TRACE");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_log_callback_formats),
      cmocka_unit_test(test_log_level_min_filters),
      cmocka_unit_test(test_log_long_message_truncated),
      cmocka_unit_test(test_log_silent_without_trace),
      cmocka_unit_test(test_log_trace_env_uses_stderr),
      cmocka_unit_test(test_trace_parse),
      cmocka_unit_test(test_trace_event_goes_to_the_callback),
      cmocka_unit_test(test_trace_names_set_info_level),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
