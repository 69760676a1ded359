/* SPDX-License-Identifier: MIT */
/*
 * Our EchoService client with keepalive pings far too frequent, for the
 * keepalive interop test (run_keepalive_interop.py):
 *
 *   keepalive_client --target=HOST:PORT --keepalive_time_ms=N [--wait_ms=M]
 *
 * Makes an Echo call on a channel whose keepalive time is N ms (the
 * _for_testing setter: no 10 s minimum) with pings without calls allowed,
 * then waits up to M ms (default 10000) for the server's GOAWAY
 * ENHANCE_YOUR_CALM "too_many_pings" (the channel logs that it doubled its
 * keepalive time), then makes another Echo call, which must work on a new
 * connection.  Prints the log lines it saw; exits 0 when all of that
 * happened, 1 otherwise, 2 on usage errors.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cgrpc/cgrpc.h>

#include "echo.grpc-c.h"

static atomic_int doubled;

static void log_cb(cgrpc_log_level level, const char *msg, void *user_data) {
  (void)level;
  (void)user_data;
  printf("log: %s\n", msg);
  fflush(stdout);
  if (strstr(msg, "too_many_pings") && strstr(msg, "keepalive time now"))
    atomic_store(&doubled, 1);
}

static int echo(cgrpc_channel *ch, const char *what) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_status st = {0};
  cgrpc_call_options copts = {0};
  int ok;
  req.message = "keepalive";
  copts.timeout_ms = 10000;
  cgrpc__test__echo_service__echo__call(ch, &req, &reply, &copts, &st);
  ok = st.code == CGRPC_STATUS_OK && reply &&
       strcmp(reply->message, "keepalive") == 0;
  printf("%s: %s %s: %s\n", ok ? "PASS" : "FAIL", what,
         cgrpc_status_code_name(st.code), st.message ? st.message : "");
  if (reply)
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_status_clear(&st);
  return ok;
}

int main(int argc, char **argv) {
  const char *target = NULL;
  long time_ms = 0, wait_ms = 10000, waited;
  cgrpc_channel_options *o;
  cgrpc_channel *ch;
  int i, ok;
  for (i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--target=", 9) == 0)
      target = argv[i] + 9;
    else if (strncmp(argv[i], "--keepalive_time_ms=", 20) == 0)
      time_ms = atol(argv[i] + 20);
    else if (strncmp(argv[i], "--wait_ms=", 10) == 0)
      wait_ms = atol(argv[i] + 10);
    else
      target = NULL, i = argc;
  }
  if (!target || time_ms <= 0) {
    fprintf(stderr, "usage: %s --target=HOST:PORT --keepalive_time_ms=N "
                    "[--wait_ms=M]\n", argv[0]);
    return 2;
  }
  if (cgrpc_channel_options_new(&o) != 0)
    return 1;
  cgrpc_channel_options_set_log(o, log_cb, NULL);
  cgrpc_channel_options_set_keepalive_time_ms_for_testing(o, time_ms);
  cgrpc_channel_options_set_keepalive_permit_without_calls(o, 1);
  if (cgrpc_channel_new(&ch, target, o) != 0) {
    cgrpc_channel_options_del(o);
    return 1;
  }
  cgrpc_channel_options_del(o);
  ok = echo(ch, "an Echo before the pings");
  for (waited = 0; waited < wait_ms && !atomic_load(&doubled); waited += 10) {
    struct timespec ts = {0, 10 * 1000000};
    nanosleep(&ts, NULL);
  }
  printf("%s: GOAWAY too_many_pings seen, keepalive time doubled "
         "(after %ld ms)\n", atomic_load(&doubled) ? "PASS" : "FAIL", waited);
  ok &= atomic_load(&doubled);
  ok &= echo(ch, "an Echo on a new connection after the GOAWAY");
  cgrpc_channel_del(ch);
  return ok ? 0 : 1;
}
