/* SPDX-License-Identifier: MIT */
/*
 * A channel outlives its server: calls fail UNAVAILABLE while the server is
 * gone and succeed again once a new one listens on the same port.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "harness.h"

/* The channel backs off 1 s (+-20%) after a failed connect, then x1.6. */
#define RECOVERY_MS 6000

static cgrpc_status_code echo_status(cgrpc_channel *ch, const char *msg,
                                     cgrpc_status *status) {
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_status_code code = it_echo(ch, msg, &reply, status);
  if (reply) {
    if (strcmp(reply->message, msg) != 0)
      code = CGRPC_STATUS_DATA_LOSS;
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  }
  return code;
}

static void test_restart_same_port(void **state) {
  it_server srv;
  cgrpc_channel *ch;
  cgrpc_status status = {0};
  int port, attempts = 0, round;
  int64_t t0;
  (void)state;
  assert_int_equal(it_server_start(&srv, NULL, 0), 0);
  port = srv.port;
  ch = it_channel(&srv, NULL);
  assert_non_null(ch);
  assert_int_equal(echo_status(ch, "first", NULL), CGRPC_STATUS_OK);

  for (round = 0; round < 2; round++) {
    it_server_stop(&srv, 1000);
    /* Gone: the next call fails UNAVAILABLE, promptly. */
    t0 = it_now_ms();
    echo_status(ch, "nobody home", &status);
    IT_ASSERT_STATUS(status, CGRPC_STATUS_UNAVAILABLE);
    assert_true(it_now_ms() - t0 < 3000);
    cgrpc_status_clear(&status);
    /* While backing off, calls fail fast too. */
    echo_status(ch, "still nobody", &status);
    IT_ASSERT_STATUS(status, CGRPC_STATUS_UNAVAILABLE);
    cgrpc_status_clear(&status);

    assert_int_equal(it_server_start(&srv, NULL, port), 0);
    assert_int_equal(srv.port, port);
    t0 = it_now_ms();
    for (;;) {
      cgrpc_status_code code = echo_status(ch, "back again", &status);
      attempts++;
      if (code == CGRPC_STATUS_OK)
        break;
      IT_ASSERT_STATUS(status, CGRPC_STATUS_UNAVAILABLE);
      cgrpc_status_clear(&status);
      if (it_now_ms() - t0 > RECOVERY_MS)
        fail_msg("no recovery within %d ms", RECOVERY_MS);
      it_sleep_ms(100);
    }
    cgrpc_status_clear(&status);
    print_message("round %d: recovered after %lld ms\n", round,
                  (long long)(it_now_ms() - t0));
    /* And it stays up. */
    assert_int_equal(echo_status(ch, "steady", NULL), CGRPC_STATUS_OK);
    assert_int_equal(echo_status(ch, "steady 2", NULL), CGRPC_STATUS_OK);
  }
  cgrpc_channel_del(ch);
  it_server_stop(&srv, 1000);
}

/* A channel created before any server exists. */
static void test_restart_server_starts_late(void **state) {
  it_server srv;
  cgrpc_channel *ch;
  cgrpc_status status = {0};
  int port;
  int64_t t0;
  (void)state;
  /* Find a free port, then free it again. */
  assert_int_equal(it_server_start(&srv, NULL, 0), 0);
  port = srv.port;
  it_server_stop(&srv, 0);
  ch = it_channel(&srv, NULL); /* srv.target still names the port */
  assert_non_null(ch);
  echo_status(ch, "too early", &status);
  IT_ASSERT_STATUS(status, CGRPC_STATUS_UNAVAILABLE);
  cgrpc_status_clear(&status);
  assert_int_equal(it_server_start(&srv, NULL, port), 0);
  t0 = it_now_ms();
  while (echo_status(ch, "now", NULL) != CGRPC_STATUS_OK) {
    if (it_now_ms() - t0 > RECOVERY_MS)
      fail_msg("no connection within %d ms", RECOVERY_MS);
    it_sleep_ms(100);
  }
  cgrpc_channel_del(ch);
  it_server_stop(&srv, 1000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_restart_same_port),
      cmocka_unit_test(test_restart_server_starts_late),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
