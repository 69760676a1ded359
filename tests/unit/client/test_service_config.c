/* SPDX-License-Identifier: MIT */
/*
 * The service config parser (client/service_config.c): what a valid config
 * gives each method, and the message for every kind of wrong field.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "cgrpc/status.h"
#include "client/service_config.h"

static char err[300];

static cgrpc__service_config *parse_ok(const char *json) {
  cgrpc__service_config *sc;
  err[0] = '\0';
  sc = cgrpc__service_config_parse(json, err, sizeof err);
  if (!sc)
    fail_msg("%s: %s", json, err);
  return sc;
}

/* Parsing |json| fails with a message that contains |want|. */
static void expect_error(const char *json, const char *want) {
  cgrpc__service_config *sc;
  err[0] = '\0';
  sc = cgrpc__service_config_parse(json, err, sizeof err);
  if (sc) {
    cgrpc__service_config_unref(sc);
    fail_msg("%s parsed; expected an error with \"%s\"", json, want);
  }
  if (!strstr(err, want))
    fail_msg("%s: error \"%s\" lacks \"%s\"", json, err, want);
}

static void test_full_config(void **state) {
  const cgrpc__method_config *mc;
  cgrpc__service_config *sc;
  int tokens, ratio;
  (void)state;
  sc = parse_ok(
      "{\"methodConfig\": [{\"name\": [{\"service\": \"a.S\", "
      "\"method\": \"M\"}], \"timeout\": \"1.5s\", \"waitForReady\": true, "
      "\"maxRequestMessageBytes\": 1024, \"maxResponseMessageBytes\": "
      "\"2048\", \"retryPolicy\": {\"maxAttempts\": 10, \"initialBackoff\": "
      "\"0.1s\", \"maxBackoff\": \"1s\", \"backoffMultiplier\": 2.5, "
      "\"retryableStatusCodes\": [\"UNAVAILABLE\", 4]}}], "
      "\"retryThrottling\": {\"maxTokens\": 10, \"tokenRatio\": 0.125}, "
      "\"loadBalancingConfig\": [{\"round_robin\": {}}], "
      "\"someFutureField\": 1}");
  mc = cgrpc__service_config_method(sc, "/a.S/M");
  assert_non_null(mc);
  assert_int_equal(mc->timeout_ns, 1500000000);
  assert_int_equal(mc->wait_for_ready, 1);
  assert_int_equal(mc->max_request_bytes, 1024);
  assert_int_equal(mc->max_response_bytes, 2048);
  assert_true(mc->has_retry_policy);
  assert_int_equal(mc->retry.max_attempts, 5); /* cut to 5, as gRFC A6 */
  assert_int_equal(mc->retry.initial_backoff_ns, 100000000);
  assert_int_equal(mc->retry.max_backoff_ns, 1000000000);
  assert_true(mc->retry.backoff_multiplier == 2.5);
  assert_int_equal(mc->retry.retryable_codes,
                   (1u << CGRPC_STATUS_UNAVAILABLE) |
                       (1u << CGRPC_STATUS_DEADLINE_EXCEEDED));
  assert_null(cgrpc__service_config_method(sc, "/a.S/Other"));
  assert_int_equal(cgrpc__service_config_lb_policy(sc), CGRPC__LB_ROUND_ROBIN);
  assert_int_equal(cgrpc__service_config_throttling(sc, &tokens, &ratio), 1);
  assert_int_equal(tokens, 10000);
  assert_int_equal(ratio, 125);
  cgrpc__service_config_ref(sc);
  cgrpc__service_config_unref(sc);
  cgrpc__service_config_unref(sc);
}

/* The method's entry, else its service's, else the default. */
static void test_lookup_precedence(void **state) {
  cgrpc__service_config *sc;
  (void)state;
  sc = parse_ok("{\"methodConfig\": ["
                "{\"name\": [{}], \"timeout\": \"3s\"},"
                "{\"name\": [{\"service\": \"a.S\"}], \"timeout\": \"2s\"},"
                "{\"name\": [{\"service\": \"a.S\", \"method\": \"M\"},"
                "            {\"service\": \"b.T\", \"method\": \"N\"}],"
                " \"timeout\": \"1s\"}]}");
  assert_int_equal(cgrpc__service_config_method(sc, "/a.S/M")->timeout_ns,
                   1000000000);
  assert_int_equal(cgrpc__service_config_method(sc, "/b.T/N")->timeout_ns,
                   1000000000);
  assert_int_equal(cgrpc__service_config_method(sc, "/a.S/X")->timeout_ns,
                   2000000000);
  assert_int_equal(cgrpc__service_config_method(sc, "/a.SS/M")->timeout_ns,
                   3000000000);
  assert_int_equal(cgrpc__service_config_method(sc, "/c.U/M")->timeout_ns,
                   3000000000);
  assert_null(cgrpc__service_config_method(sc, "no-slash"));
  assert_null(cgrpc__service_config_method(NULL, "/a.S/M"));
  assert_int_equal(cgrpc__service_config_method(sc, "/a.S/M")->wait_for_ready,
                   -1);
  assert_int_equal(
      cgrpc__service_config_method(sc, "/a.S/M")->max_request_bytes, -1);
  assert_int_equal(cgrpc__service_config_lb_policy(sc), CGRPC__LB_UNSET);
  cgrpc__service_config_unref(sc);
}

static void test_durations(void **state) {
  static const struct {
    const char *text;
    int64_t ns;
  } ok[] = {{"\"1s\"", 1000000000},
            {"\"0.5s\"", 500000000},
            {"\"0.000000001s\"", 1},
            {"\"120.25s\"", 120250000000}};
  (void)state;
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    char json[200];
    cgrpc__service_config *sc;
    snprintf(json, sizeof json,
             "{\"methodConfig\": [{\"name\": [{}], \"timeout\": %s}]}",
             ok[i].text);
    sc = parse_ok(json);
    assert_int_equal(cgrpc__service_config_method(sc, "/x/y")->timeout_ns,
                     ok[i].ns);
    cgrpc__service_config_unref(sc);
  }
  expect_error("{\"methodConfig\": [{\"name\": [{}], \"timeout\": \"1.5\"}]}",
               "methodConfig[0].timeout: \"1.5\" is not a duration");
  expect_error("{\"methodConfig\": [{\"name\": [{}], \"timeout\": \"-1s\"}]}",
               "is not a duration");
  expect_error("{\"methodConfig\": [{\"name\": [{}], "
               "\"timeout\": \"1.0000000001s\"}]}",
               "at most 9 fractional digits");
  expect_error("{\"methodConfig\": [{\"name\": [{}], \"timeout\": \"0s\"}]}",
               "methodConfig[0].timeout: must be above 0s");
  expect_error("{\"methodConfig\": [{\"name\": [{}], \"timeout\": 5}]}",
               "methodConfig[0].timeout: must be a duration string");
}

static void test_retry_policy_errors(void **state) {
#define RP(body)                                                               \
  "{\"methodConfig\": [{\"name\": [{}], \"retryPolicy\": {" body "}}]}"
#define GOOD_REST                                                              \
  "\"initialBackoff\": \"0.1s\", \"maxBackoff\": \"1s\", "                     \
  "\"backoffMultiplier\": 2, \"retryableStatusCodes\": [\"UNAVAILABLE\"]"
  (void)state;
  expect_error(RP("\"maxAttempts\": 1, " GOOD_REST),
               "methodConfig[0].retryPolicy.maxAttempts: must be an integer "
               "of at least 2");
  expect_error(RP(GOOD_REST), "retryPolicy.maxAttempts");
  expect_error(RP("\"maxAttempts\": 3, \"maxBackoff\": \"1s\", "
                  "\"backoffMultiplier\": 2, "
                  "\"retryableStatusCodes\": [\"UNAVAILABLE\"]"),
               "retryPolicy.initialBackoff: must be a duration string");
  expect_error(RP("\"maxAttempts\": 3, \"initialBackoff\": \"0.1s\", "
                  "\"maxBackoff\": \"1s\", \"backoffMultiplier\": 0, "
                  "\"retryableStatusCodes\": [\"UNAVAILABLE\"]"),
               "retryPolicy.backoffMultiplier: must be a number above 0");
  expect_error(RP("\"maxAttempts\": 3, \"initialBackoff\": \"0.1s\", "
                  "\"maxBackoff\": \"1s\", \"backoffMultiplier\": 2, "
                  "\"retryableStatusCodes\": []"),
               "retryableStatusCodes: must be a non-empty list");
  expect_error(RP("\"maxAttempts\": 3, \"initialBackoff\": \"0.1s\", "
                  "\"maxBackoff\": \"1s\", \"backoffMultiplier\": 2, "
                  "\"retryableStatusCodes\": [\"UNAVAILABLE\", \"NOPE\"]"),
               "retryableStatusCodes[1]: \"NOPE\" is not a status code name");
  expect_error(RP("\"maxAttempts\": 3, \"initialBackoff\": \"0.1s\", "
                  "\"maxBackoff\": \"1s\", \"backoffMultiplier\": 2, "
                  "\"retryableStatusCodes\": [17]"),
               "17 is not a status code");
  expect_error(RP("\"maxAttempts\": 3, \"initialBackoff\": \"0.1s\", "
                  "\"maxBackoff\": \"1s\", \"backoffMultiplier\": 2, "
                  "\"retryableStatusCodes\": [\"OK\"]"),
               "OK cannot be retried");
  expect_error("{\"methodConfig\": [{\"name\": [{}], \"retryPolicy\": {"
               "\"maxAttempts\": 3, " GOOD_REST "}, \"hedgingPolicy\": {}}]}",
               "methodConfig[0]: has both retryPolicy and hedgingPolicy");
#undef RP
#undef GOOD_REST
}

static void test_other_errors(void **state) {
  (void)state;
  expect_error("{\"methodConfig\": [", "not JSON");
  expect_error("{\"methodConfig\": [], \"methodConfig\": []}", "not JSON");
  expect_error("[]", "(top level): must be an object");
  expect_error("{\"methodConfig\": {}}", "methodConfig: must be a list");
  expect_error("{\"methodConfig\": [{\"timeout\": \"1s\"}]}",
               "methodConfig[0].name: must be a non-empty list");
  expect_error("{\"methodConfig\": [{\"name\": [{\"method\": \"M\"}]}]}",
               "methodConfig[0].name[0]: a method needs its service");
  expect_error("{\"methodConfig\": [{\"name\": [{\"service\": \"a\"}]},"
               "{\"name\": [{\"service\": \"a\"}]}]}",
               "methodConfig[1].name[0]: names a again");
  expect_error("{\"methodConfig\": [{\"name\": [{}]}, {\"name\": [{}]}]}",
               "names the default again");
  expect_error("{\"methodConfig\": [{\"name\": [{}], "
               "\"maxRequestMessageBytes\": -1}]}",
               "maxRequestMessageBytes: must be between 0 and 4294967295");
  expect_error("{\"methodConfig\": [{\"name\": [{}], "
               "\"maxResponseMessageBytes\": 4294967296}]}",
               "maxResponseMessageBytes: must be between");
  expect_error("{\"methodConfig\": [{\"name\": [{}], "
               "\"waitForReady\": \"yes\"}]}",
               "methodConfig[0].waitForReady: must be true or false");
  expect_error("{\"retryThrottling\": {\"maxTokens\": 0, "
               "\"tokenRatio\": 0.1}}",
               "retryThrottling.maxTokens: must be above 0 and at most 1000");
  expect_error("{\"retryThrottling\": {\"maxTokens\": 1001, "
               "\"tokenRatio\": 0.1}}",
               "retryThrottling.maxTokens");
  expect_error("{\"retryThrottling\": {\"maxTokens\": 10}}",
               "retryThrottling.tokenRatio: must be a number");
  expect_error("{\"loadBalancingConfig\": [{\"grpclb\": {}}]}",
               "loadBalancingConfig: names no policy this library has");
  expect_error("{\"loadBalancingConfig\": [{\"a\": {}, \"b\": {}}]}",
               "loadBalancingConfig[0]: must be an object with one policy");
  expect_error("{\"loadBalancingPolicy\": \"weighted\"}",
               "loadBalancingPolicy: must be");
}

static void test_lb_choice(void **state) {
  cgrpc__service_config *sc;
  (void)state;
  /* The first policy this library has. */
  sc = parse_ok("{\"loadBalancingConfig\": [{\"xds\": {}}, "
                "{\"pick_first\": {\"shuffleAddressList\": true}}, "
                "{\"round_robin\": {}}]}");
  assert_int_equal(cgrpc__service_config_lb_policy(sc), CGRPC__LB_PICK_FIRST);
  cgrpc__service_config_unref(sc);
  sc = parse_ok("{\"loadBalancingPolicy\": \"ROUND_ROBIN\"}");
  assert_int_equal(cgrpc__service_config_lb_policy(sc), CGRPC__LB_ROUND_ROBIN);
  cgrpc__service_config_unref(sc);
  sc = parse_ok("{}");
  assert_int_equal(cgrpc__service_config_lb_policy(sc), CGRPC__LB_UNSET);
  assert_int_equal(cgrpc__service_config_lb_policy(NULL), CGRPC__LB_UNSET);
  assert_null(cgrpc__service_config_method(sc, "/a/b"));
  cgrpc__service_config_unref(sc);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_full_config),
      cmocka_unit_test(test_lookup_precedence),
      cmocka_unit_test(test_durations),
      cmocka_unit_test(test_retry_policy_errors),
      cmocka_unit_test(test_other_errors),
      cmocka_unit_test(test_lb_choice),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
