/* SPDX-License-Identifier: MIT */
/*
 * Misbehaving TCP peers: garbage instead of the HTTP/2 preface, silent
 * connections, half a preface, connection churn.  The server drops the bad
 * ones and keeps serving real calls.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static void expect_call_ok(it_fixture *f, const char *msg) {
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_status status = {0};
  it_echo(f->ch, msg, &reply, &status);
  IT_ASSERT_STATUS(status, CGRPC_STATUS_OK);
  assert_string_equal(reply->message, msg);
  protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_status_clear(&status);
}

static void test_robustness_garbage_preface(void **state) {
  it_fixture *f = *state;
  static const char http1[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  uint8_t junk[300];
  size_t i;
  int fd, closed;
  expect_call_ok(f, "before");
  fd = it_tcp_connect(f->srv.port);
  assert_true(fd >= 0);
  assert_int_equal(it_tcp_send_all(fd, http1, sizeof http1 - 1), 0);
  closed = it_tcp_wait_closed(fd, 5000);
  close(fd);
  assert_int_equal(closed, 1);

  /* Binary junk. */
  for (i = 0; i < sizeof junk; i++)
    junk[i] = (uint8_t)(i * 73 + 11);
  fd = it_tcp_connect(f->srv.port);
  assert_true(fd >= 0);
  assert_int_equal(it_tcp_send_all(fd, junk, sizeof junk), 0);
  closed = it_tcp_wait_closed(fd, 5000);
  close(fd);
  assert_int_equal(closed, 1);

  /* A valid preface, then frames that make no sense. */
  fd = it_tcp_connect(f->srv.port);
  assert_true(fd >= 0);
  assert_int_equal(it_tcp_send_all(fd, preface, sizeof preface - 1), 0);
  assert_int_equal(it_tcp_send_all(fd, junk, sizeof junk), 0);
  closed = it_tcp_wait_closed(fd, 5000);
  close(fd);
  assert_int_equal(closed, 1);

  expect_call_ok(f, "after");
}

static void test_robustness_silent_client(void **state) {
  it_fixture *f = *state;
  int fds[5], i;
  for (i = 0; i < 5; i++) {
    fds[i] = it_tcp_connect(f->srv.port);
    assert_true(fds[i] >= 0);
  }
  /* One that sent a preface and then nothing. */
  assert_int_equal(it_tcp_send_all(fds[4], preface, sizeof preface - 1), 0);
  for (i = 0; i < 20; i++)
    expect_call_ok(f, "while others idle");
  for (i = 0; i < 5; i++)
    close(fds[i]);
  expect_call_ok(f, "after they left");
}

static void test_robustness_half_preface(void **state) {
  it_fixture *f = *state;
  int i;
  for (i = 0; i < 10; i++) {
    int fd = it_tcp_connect(f->srv.port);
    assert_true(fd >= 0);
    assert_int_equal(it_tcp_send_all(fd, preface, 10 + (size_t)i), 0);
    close(fd);
  }
  expect_call_ok(f, "after half prefaces");
  /* Half a preface, held open during calls. */
  {
    int fd = it_tcp_connect(f->srv.port);
    assert_true(fd >= 0);
    assert_int_equal(it_tcp_send_all(fd, preface, 8), 0);
    expect_call_ok(f, "with half a preface pending");
    close(fd);
  }
  expect_call_ok(f, "done");
}

static void test_robustness_connection_churn(void **state) {
  it_fixture *f = *state;
  int i;
  for (i = 0; i < 200; i++) {
    int fd = it_tcp_connect(f->srv.port);
    assert_true(fd >= 0);
    if (i % 2) {
      /* Abortive close: RST instead of FIN. */
      struct linger lg = {1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    if (i % 3 == 0)
      it_tcp_send_all(fd, preface, sizeof preface - 1);
    close(fd);
    if (i % 50 == 0)
      expect_call_ok(f, "during churn");
  }
  /* Whole channels too. */
  for (i = 0; i < 20; i++) {
    cgrpc_channel *ch = it_channel(&f->srv, NULL);
    Cgrpc__Test__EchoReply *reply = NULL;
    assert_non_null(ch);
    assert_int_equal(it_echo(ch, "short-lived", &reply, NULL), CGRPC_STATUS_OK);
    protobuf_c_message_free_unpacked(&reply->base, NULL);
    cgrpc_channel_del(ch);
  }
  expect_call_ok(f, "after churn");
}

/* A client that disconnects while its call is being handled. */
static void test_robustness_client_vanishes_mid_call(void **state) {
  it_fixture *f = *state;
  cgrpc_channel *ch = it_channel(&f->srv, NULL);
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  it_async a;
  assert_non_null(ch);
  it_async_init(&a);
  req.sleep_ms = 2000;
  assert_int_equal(cgrpc__test__echo_service__echo__start(
                       ch, &req, NULL, it_async_done, &a, NULL),
                   0);
  assert_int_equal(it_wait_flag(&f->srv.stats.in_flight, 1, IT_WAIT_MS), 1);
  cgrpc_channel_del(ch); /* closes the connection under the handler */
  assert_int_equal(it_async_wait(&a, 1000), 1);
  it_async_fini(&a);
  assert_int_equal(it_wait_flag(&f->srv.stats.cancelled_seen, 1, 2000), 1);
  expect_call_ok(f, "others unaffected");
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(name) IT_FIXTURE_TEST(name)
      T(test_robustness_garbage_preface),
      T(test_robustness_silent_client),
      T(test_robustness_half_preface),
      T(test_robustness_connection_churn),
      T(test_robustness_client_vanishes_mid_call),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
