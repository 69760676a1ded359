/* SPDX-License-Identifier: MIT */
/*
 * Our EchoService client with keepalive pings far too frequent, for the
 * keepalive interop tests (run_keepalive_interop.py):
 *
 *   keepalive_client --target=HOST:PORT --keepalive_time_ms=N
 *                    [--keepalive_timeout_ms=N] [--wait_ms=M]
 *                    [--busy_ms=B] [--expect_goaway=1|0]
 *
 * The channel's keepalive time is N ms (the _for_testing setter: no 10 s
 * minimum), with pings without calls allowed.  It makes an Echo call; with
 * --busy_ms an Echo the server sleeps B ms in (pings with a call in
 * flight); then, with no call, it waits up to M ms (default 10000) for the
 * server's GOAWAY ENHANCE_YOUR_CALM "too_many_pings" (the channel logs that
 * it doubled its keepalive time); then it makes another Echo call.
 *
 * --expect_goaway=1 (the default): the GOAWAY must come, and the last call
 * must work on a new connection.  --expect_goaway=0: the whole M ms pass
 * without it, and every call works.  Prints the log lines it saw; exits 0
 * when all of that happened, 1 otherwise, 2 on usage errors.
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

static int echo(cgrpc_channel *ch, const char *what, long sleep_ms) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_status st = {0};
  cgrpc_call_options copts = {0};
  int ok;
  req.message = "keepalive";
  req.sleep_ms = (int32_t)sleep_ms;
  copts.timeout_ms = 10000 + sleep_ms;
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

/* "--|name|=" and a decimal in [|min|, |max|] into |*out|: 1; else 0. */
static int flag_long(const char *arg, const char *name, long min, long max,
                     long *out) {
  size_t n = strlen(name);
  char *end;
  long v;
  if (strncmp(arg, "--", 2) != 0 || strncmp(arg + 2, name, n) != 0 ||
      arg[2 + n] != '=')
    return 0;
  v = strtol(arg + 3 + n, &end, 10);
  if (end == arg + 3 + n || *end != '\0' || v < min || v > max)
    return 0;
  *out = v;
  return 1;
}

int main(int argc, char **argv) {
  const char *target = NULL;
  long time_ms = 0, timeout_ms = 0, wait_ms = 10000, busy_ms = 0;
  long expect_goaway = 1, waited;
  cgrpc_channel_options *o;
  cgrpc_channel *ch;
  int i, ok, seen;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--target=", 9) == 0 && a[9] != '\0')
      target = a + 9;
    else if (!flag_long(a, "keepalive_time_ms", 1, 3600000, &time_ms) &&
             !flag_long(a, "keepalive_timeout_ms", 1, 3600000, &timeout_ms) &&
             !flag_long(a, "wait_ms", 0, 600000, &wait_ms) &&
             !flag_long(a, "busy_ms", 0, 60000, &busy_ms) &&
             !flag_long(a, "expect_goaway", 0, 1, &expect_goaway))
      target = NULL, i = argc;
  }
  if (!target || time_ms <= 0) {
    fprintf(stderr,
            "usage: %s --target=HOST:PORT --keepalive_time_ms=N "
            "[--keepalive_timeout_ms=N] [--wait_ms=M] [--busy_ms=B] "
            "[--expect_goaway=1|0]\n",
            argv[0]);
    return 2;
  }
  if (cgrpc_channel_options_new(&o) != 0)
    return 1;
  cgrpc_channel_options_set_log(o, log_cb, NULL);
  cgrpc_channel_options_set_keepalive_time_ms_for_testing(o, time_ms);
  if (timeout_ms > 0)
    cgrpc_channel_options_set_keepalive_timeout_ms(o, timeout_ms);
  cgrpc_channel_options_set_keepalive_permit_without_calls(o, 1);
  if (cgrpc_channel_new(&ch, target, o) != 0) {
    cgrpc_channel_options_del(o);
    return 1;
  }
  cgrpc_channel_options_del(o);
  ok = echo(ch, "an Echo before the pings", 0);
  if (busy_ms > 0)
    ok &= echo(ch, "an Echo sleeping on the server", busy_ms);
  for (waited = 0; waited < wait_ms && !atomic_load(&doubled); waited += 10) {
    struct timespec ts = {0, 10 * 1000000};
    nanosleep(&ts, NULL);
  }
  seen = atomic_load(&doubled);
  if (expect_goaway)
    printf("%s: GOAWAY too_many_pings seen, keepalive time doubled "
           "(after %ld ms)\n",
           seen ? "PASS" : "FAIL", waited);
  else
    printf("%s: no GOAWAY too_many_pings in %ld ms of pings\n",
           seen ? "FAIL" : "PASS", waited);
  ok &= seen == (int)expect_goaway;
  ok &= echo(ch,
             expect_goaway ? "an Echo on a new connection after the GOAWAY"
                           : "an Echo after the pings",
             0);
  cgrpc_channel_del(ch);
  return ok ? 0 : 1;
}
