/* SPDX-License-Identifier: MIT */
/*
 * Health checking (cgrpc_server_enable_health, cgrpc_server_set_health)
 * through our own client: Check for the server, registered, set and
 * unknown services; Watch's first message, changes, coalescing for a
 * watcher that does not read, statuses set from other threads and from a
 * handler, cancels; NOT_SERVING at shutdown before the stream ends and
 * before any GOAWAY (on a raw connection); a server deleted under open
 * watches; many watchers on a small pool.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <cgrpc/cgrpc.h>

#include "echo.grpc-c.h"
#include "grpc/health/v1/health.grpc-c.h"
#include "harness.h"
#include "h2raw.h"

typedef Grpc__Health__V1__HealthCheckRequest req_t;
typedef Grpc__Health__V1__HealthCheckResponse resp_t;

#define HEALTH(fn) grpc__health__v1__health__##fn

typedef struct fixture {
  cgrpc_server *server;
  cgrpc_channel *ch;
  int port;
  /* Added to the server when set before fixture_start(). */
  const cgrpc_interceptor *interceptor;
  atomic_int watch_ends; /* Watch calls set_on_end() saw end */
} fixture;

static const cgrpc_call_options call_opts = {.timeout_ms = 20000 * IT_SLOW};

/* Echo: sets "" to NOT_SERVING and SERVING, |sleep_ms| times over, ending
 * on the status given as |status_code| (run on the loop thread by an
 * inline server, where no write can complete in between). */
static cgrpc_status_code flip_health(cgrpc_server_ctx *ctx,
                                     const Cgrpc__Test__EchoRequest *request,
                                     Cgrpc__Test__EchoReply *reply,
                                     void *user_data) {
  fixture *f = user_data;
  int i;
  (void)ctx;
  (void)reply;
  for (i = 0; i < request->sleep_ms; i++)
    if (cgrpc_server_set_health(f->server, request->message,
                                i % 2 ? CGRPC_HEALTH_SERVING
                                      : CGRPC_HEALTH_NOT_SERVING) != 0)
      return CGRPC_STATUS_INTERNAL;
  return cgrpc_server_set_health(f->server, request->message,
                                 (cgrpc_health_status)request->status_code)
             ? CGRPC_STATUS_INTERNAL
             : CGRPC_STATUS_OK;
}

/* A server with EchoService (its Echo is flip_health) and health on.
 * |max_workers| and |max_rpcs| < 0 keep the defaults. */
static void fixture_start(fixture *f, int max_workers, int max_rpcs) {
  static const Cgrpc__Test__EchoService_Servicer echo = {.echo = flip_health};
  cgrpc_server_options *opts;
  char target[64];
  assert_int_equal(cgrpc_server_options_new(&opts), 0);
  if (max_workers >= 0)
    cgrpc_server_options_set_max_workers(opts, max_workers);
  if (max_rpcs >= 0)
    cgrpc_server_options_set_max_concurrent_rpcs(opts, max_rpcs);
  assert_int_equal(cgrpc_server_new(&f->server, opts), 0);
  cgrpc_server_options_del(opts);
  assert_int_equal(cgrpc_server_enable_health(f->server), 0);
  if (f->interceptor)
    assert_int_equal(cgrpc_server_add_interceptor(f->server, f->interceptor),
                     0);
  /* Registered after health: SERVING all the same. */
  assert_int_equal(
      cgrpc__test__echo_service__servicer__register(f->server, &echo, f), 0);
  assert_int_equal(
      cgrpc_server_add_insecure_port(f->server, "127.0.0.1:0", &f->port), 0);
  assert_int_equal(cgrpc_server_start(f->server), 0);
  snprintf(target, sizeof target, "127.0.0.1:%d", f->port);
  assert_int_equal(cgrpc_channel_new(&f->ch, target, NULL), 0);
}

static void fixture_stop(fixture *f) {
  if (f->ch)
    cgrpc_channel_del(f->ch);
  if (f->server) {
    cgrpc_server_shutdown(f->server, 1000);
    cgrpc_server_del(f->server);
  }
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  it_watchdog_setup(state);
  fixture_start(f, -1, -1);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  fixture_stop(f);
  free(f);
  return it_watchdog_teardown(state);
}

/* Check |service|: the call's status code; the serving status in |*out|
 * when it is OK. */
static cgrpc_status_code check(cgrpc_channel *ch, const char *service,
                               int *out) {
  req_t req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  resp_t *resp = NULL;
  cgrpc_status st = {0};
  cgrpc_status_code code;
  req.service = (char *)service;
  code = HEALTH(check__call)(ch, &req, &resp, &call_opts, &st);
  cgrpc_status_clear(&st);
  if (resp) {
    *out = resp->status;
    protobuf_c_message_free_unpacked(&resp->base, NULL);
  }
  return code;
}

static int check_ok(cgrpc_channel *ch, const char *service) {
  int status = -1;
  assert_int_equal(check(ch, service, &status), CGRPC_STATUS_OK);
  return status;
}

static cgrpc_call *watch(cgrpc_channel *ch, const char *service) {
  req_t req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  cgrpc_call *call = NULL;
  req.service = (char *)service;
  assert_int_equal(HEALTH(watch__open)(ch, &req, &call_opts, &call), 0);
  return call;
}

/* The next status on |call|, or -1 at the end of the stream. */
static int next(cgrpc_call *call) {
  resp_t *resp = NULL;
  int r = HEALTH(watch__read)(call, &resp), status;
  if (r != 1)
    return -1;
  status = resp->status;
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  return status;
}

/* Ends |call| (cancelled unless it ended) and returns its status code. */
static cgrpc_status_code end(cgrpc_call *call, int cancel) {
  cgrpc_status st = {0};
  cgrpc_status_code code;
  if (cancel)
    cgrpc_call_cancel(call);
  code = cgrpc_call_finish(call, &st);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  return code;
}

/* ---- Check --------------------------------------------------------------- */

static void test_health_check_serving(void **state) {
  fixture *f = *state;
  int status = -1;
  assert_int_equal(check_ok(f->ch, ""), CGRPC_HEALTH_SERVING);
  assert_int_equal(check_ok(f->ch, "cgrpc.test.EchoService"),
                   CGRPC_HEALTH_SERVING);
  assert_int_equal(check_ok(f->ch, "grpc.health.v1.Health"),
                   CGRPC_HEALTH_SERVING);
  assert_int_equal(check(f->ch, "cgrpc.test.Nope", &status),
                   CGRPC_STATUS_NOT_FOUND);
  assert_int_equal(check(f->ch, "cgrpc.test.echoservice", &status),
                   CGRPC_STATUS_NOT_FOUND);
}

static void test_health_check_changed(void **state) {
  fixture *f = *state;
  assert_int_equal(cgrpc_server_set_health(f->server, "cgrpc.test.EchoService",
                                           CGRPC_HEALTH_NOT_SERVING),
                   0);
  assert_int_equal(check_ok(f->ch, "cgrpc.test.EchoService"),
                   CGRPC_HEALTH_NOT_SERVING);
  assert_int_equal(check_ok(f->ch, ""), CGRPC_HEALTH_SERVING);
  /* A name of the application's own becomes known once set. */
  assert_int_equal(
      cgrpc_server_set_health(f->server, "db", CGRPC_HEALTH_SERVING), 0);
  assert_int_equal(check_ok(f->ch, "db"), CGRPC_HEALTH_SERVING);
  assert_int_equal(
      cgrpc_server_set_health(f->server, "", CGRPC_HEALTH_NOT_SERVING), 0);
  assert_int_equal(check_ok(f->ch, ""), CGRPC_HEALTH_NOT_SERVING);
  assert_int_equal(cgrpc_server_set_health(f->server, "", CGRPC_HEALTH_SERVING),
                   0);
  assert_int_equal(check_ok(f->ch, ""), CGRPC_HEALTH_SERVING);
}

static void test_health_errors(void **state) {
  cgrpc_server *server;
  int port = 0;
  (void)state;
  assert_int_equal(cgrpc_server_enable_health(NULL),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_server_set_health(NULL, "", CGRPC_HEALTH_SERVING),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_server_new(&server, NULL), 0);
  assert_int_equal(cgrpc_server_set_health(server, "", CGRPC_HEALTH_SERVING),
                   CGRPC_ERR_INVALID_STATE);
  assert_int_equal(cgrpc_server_enable_health(server), 0);
  assert_int_equal(cgrpc_server_enable_health(server),
                   CGRPC_ERR_ALREADY_EXISTS);
  assert_int_equal(cgrpc_server_set_health(server, NULL, CGRPC_HEALTH_SERVING),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_int_equal(cgrpc_server_set_health(server, "", (cgrpc_health_status)4),
                   CGRPC_ERR_INVALID_ARGUMENT);
  /* Before the start is fine. */
  assert_int_equal(
      cgrpc_server_set_health(server, "x", CGRPC_HEALTH_NOT_SERVING), 0);
  assert_int_equal(cgrpc_server_add_insecure_port(server, "127.0.0.1:0", &port),
                   0);
  assert_int_equal(cgrpc_server_start(server), 0);
  assert_int_equal(cgrpc_server_enable_health(server), CGRPC_ERR_INVALID_STATE);
  cgrpc_server_del(server);
  /* Never started. */
  assert_int_equal(cgrpc_server_new(&server, NULL), 0);
  assert_int_equal(cgrpc_server_enable_health(server), 0);
  cgrpc_server_del(server);
}

/* ---- Watch --------------------------------------------------------------- */

static void test_health_watch_changes(void **state) {
  fixture *f = *state;
  cgrpc_call *call = watch(f->ch, "");
  assert_int_equal(next(call), CGRPC_HEALTH_SERVING);
  assert_int_equal(
      cgrpc_server_set_health(f->server, "", CGRPC_HEALTH_NOT_SERVING), 0);
  assert_int_equal(next(call), CGRPC_HEALTH_NOT_SERVING);
  /* The same status again is no change. */
  assert_int_equal(
      cgrpc_server_set_health(f->server, "", CGRPC_HEALTH_NOT_SERVING), 0);
  assert_int_equal(cgrpc_server_set_health(f->server, "", CGRPC_HEALTH_SERVING),
                   0);
  assert_int_equal(next(call), CGRPC_HEALTH_SERVING);
  end(call, 1);
}

static void test_health_watch_unknown(void **state) {
  fixture *f = *state;
  cgrpc_call *call = watch(f->ch, "later");
  assert_int_equal(next(call), CGRPC_HEALTH_SERVICE_UNKNOWN);
  assert_int_equal(
      cgrpc_server_set_health(f->server, "later", CGRPC_HEALTH_SERVING), 0);
  assert_int_equal(next(call), CGRPC_HEALTH_SERVING);
  end(call, 1);
}

/* Changes made while a write is in flight fold into one: on an inline
 * server the handler runs on the loop thread, so none of its writes can
 * complete before it returns.  The watcher gets the write in flight, then
 * only the last status. */
static void test_health_watch_coalesces(void **state) {
  fixture inl = {0}, *f = &inl;
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_status st = {0};
  cgrpc_call *call;
  (void)state;
  fixture_start(f, 0, -1);
  call = watch(f->ch, "");
  assert_int_equal(next(call), CGRPC_HEALTH_SERVING);
  req.message = "";
  req.sleep_ms = 1001; /* flips */
  req.status_code = CGRPC_HEALTH_SERVING;
  /* The same channel: the same connection and loop as the watch. */
  assert_int_equal(cgrpc__test__echo_service__echo__call(f->ch, &req, &reply,
                                                         &call_opts, &st),
                   CGRPC_STATUS_OK);
  cgrpc_status_clear(&st);
  protobuf_c_message_free_unpacked(&reply->base, NULL);
  /* The first flip went out; the last status follows it. */
  assert_int_equal(next(call), CGRPC_HEALTH_NOT_SERVING);
  assert_int_equal(next(call), CGRPC_HEALTH_SERVING);
  /* Nothing else was queued: the next message is a new change. */
  assert_int_equal(cgrpc_server_set_health(f->server, "", CGRPC_HEALTH_UNKNOWN),
                   0);
  assert_int_equal(next(call), CGRPC_HEALTH_UNKNOWN);
  end(call, 1);
  fixture_stop(f);
}

/* A watcher that does not read: set_health never waits for it, and when
 * it reads again it gets to the latest status after far fewer messages
 * than there were changes. */
static void test_health_watch_not_reading(void **state) {
  fixture *f = *state;
  enum { N = 200000 };
  cgrpc_call *call = watch(f->ch, "");
  int64_t t0;
  int i, n = 0, status = -1;
  assert_int_equal(next(call), CGRPC_HEALTH_SERVING);
  t0 = it_now_ms();
  for (i = 0; i < N; i++)
    assert_int_equal(cgrpc_server_set_health(f->server, "",
                                             i % 2 ? CGRPC_HEALTH_SERVING
                                                   : CGRPC_HEALTH_NOT_SERVING),
                     0);
  assert_int_equal(cgrpc_server_set_health(f->server, "", CGRPC_HEALTH_UNKNOWN),
                   0);
  assert_true(it_now_ms() - t0 < 10000 * IT_SLOW);
  while (status != CGRPC_HEALTH_UNKNOWN && n <= N) {
    status = next(call);
    assert_int_not_equal(status, -1);
    n++;
  }
  assert_int_equal(status, CGRPC_HEALTH_UNKNOWN);
  assert_true(n < N);
  end(call, 1);
}

typedef struct setter {
  cgrpc_server *server;
  int n;
} setter;

static void set_many(void *arg) {
  setter *s = arg;
  int i;
  for (i = 0; i < s->n; i++)
    cgrpc_server_set_health(s->server, "cgrpc.test.EchoService",
                            i % 2 ? CGRPC_HEALTH_SERVING
                                  : CGRPC_HEALTH_NOT_SERVING);
  cgrpc_server_set_health(s->server, "cgrpc.test.EchoService",
                          CGRPC_HEALTH_UNKNOWN);
}

/* Statuses set from other threads while the watcher reads. */
static void test_health_watch_other_threads(void **state) {
  fixture *f = *state;
  setter s = {f->server, 5000};
  it_bg_job *jobs[2];
  cgrpc_call *call = watch(f->ch, "cgrpc.test.EchoService");
  int status = -1, n = 0;
  assert_int_equal(next(call), CGRPC_HEALTH_SERVING);
  jobs[0] = it_bg_start(set_many, &s);
  jobs[1] = it_bg_start(set_many, &s);
  assert_true(it_bg_wait(jobs[0], IT_WAIT_MS * IT_SLOW));
  assert_true(it_bg_wait(jobs[1], IT_WAIT_MS * IT_SLOW));
  while (status != CGRPC_HEALTH_UNKNOWN && n++ < 20001) {
    status = next(call);
    assert_int_not_equal(status, -1);
  }
  assert_int_equal(check_ok(f->ch, "cgrpc.test.EchoService"),
                   CGRPC_HEALTH_UNKNOWN);
  end(call, 1);
}

/* From a handler on a worker thread. */
static void test_health_set_from_handler(void **state) {
  fixture *f = *state;
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_status st = {0};
  cgrpc_call *call = watch(f->ch, "svc");
  assert_int_equal(next(call), CGRPC_HEALTH_SERVICE_UNKNOWN);
  req.message = "svc";
  req.status_code = CGRPC_HEALTH_NOT_SERVING;
  assert_int_equal(cgrpc__test__echo_service__echo__call(f->ch, &req, &reply,
                                                         &call_opts, &st),
                   CGRPC_STATUS_OK);
  cgrpc_status_clear(&st);
  protobuf_c_message_free_unpacked(&reply->base, NULL);
  assert_int_equal(next(call), CGRPC_HEALTH_NOT_SERVING);
  assert_int_equal(check_ok(f->ch, "svc"), CGRPC_HEALTH_NOT_SERVING);
  end(call, 1);
}

/* A cancelled watch is freed: with room for one call at a time, the next
 * call gets in once it is. */
static void test_health_watch_cancel(void **state) {
  fixture one = {0}, *f = &one;
  int i, status = -1;
  (void)state;
  fixture_start(f, -1, 1);
  for (i = 0; i < 3; i++) {
    cgrpc_call *call = watch(f->ch, i == 1 ? "unknown" : "");
    cgrpc_status_code code = CGRPC_STATUS_RESOURCE_EXHAUSTED;
    int64_t t0;
    assert_int_not_equal(next(call), -1);
    assert_int_equal(end(call, 1), CGRPC_STATUS_CANCELLED);
    /* The server frees the call once the reset reaches it. */
    for (t0 = it_now_ms(); code == CGRPC_STATUS_RESOURCE_EXHAUSTED &&
                           it_now_ms() - t0 < IT_WAIT_MS * IT_SLOW;) {
      code = check(f->ch, "", &status);
      if (code == CGRPC_STATUS_RESOURCE_EXHAUSTED)
        it_sleep_ms(5);
    }
    assert_int_equal(code, CGRPC_STATUS_OK);
    assert_int_equal(status, CGRPC_HEALTH_SERVING);
  }
  /* And a change after the cancels reaches no one. */
  assert_int_equal(
      cgrpc_server_set_health(f->server, "", CGRPC_HEALTH_NOT_SERVING), 0);
  fixture_stop(f);
}

/* ---- set from the server's interceptors ---------------------------------- */

static const char watch_path[] = "/grpc.health.v1.Health/Watch";

/* On each Watch response it sends: "side" to NOT_SERVING, from inside
 * the write (under the call's interceptor lock). */
static void set_on_send(const cgrpc_interceptor_info *info, int direction,
                        const ProtobufCMessage *msg, void *call_data,
                        void *user_data) {
  fixture *f = user_data;
  (void)msg;
  (void)call_data;
  if (direction == CGRPC_INTERCEPT_SEND &&
      strcmp(info->method, watch_path) == 0)
    IT_CHECK(cgrpc_server_set_health(f->server, "side",
                                     CGRPC_HEALTH_NOT_SERVING) == 0,
             "set_health in on_message");
}

/* An interceptor's on_message sets a status while a Watch's write runs
 * it: the health lock is not held across the write. */
static void test_health_set_from_on_message(void **state) {
  fixture fx = {0}, *f = &fx;
  cgrpc_interceptor ic = {.on_message = set_on_send, .user_data = f};
  cgrpc_call *call, *side;
  (void)state;
  f->interceptor = &ic;
  fixture_start(f, -1, -1);
  assert_int_equal(
      cgrpc_server_set_health(f->server, "side", CGRPC_HEALTH_SERVING), 0);
  side = watch(f->ch, "side");
  /* Its own first message set it NOT_SERVING: that follows. */
  assert_int_equal(next(side), CGRPC_HEALTH_SERVING);
  assert_int_equal(next(side), CGRPC_HEALTH_NOT_SERVING);
  call = watch(f->ch, "");
  assert_int_equal(next(call), CGRPC_HEALTH_SERVING);
  assert_int_equal(
      cgrpc_server_set_health(f->server, "", CGRPC_HEALTH_NOT_SERVING), 0);
  assert_int_equal(next(call), CGRPC_HEALTH_NOT_SERVING);
  assert_int_equal(check_ok(f->ch, "side"), CGRPC_HEALTH_NOT_SERVING);
  end(call, 1);
  end(side, 1);
  fixture_stop(f);
  IT_CHECKS_DONE();
}

/* When a Watch call ends (on the loop, under the call's interceptor
 * lock): "" flips, which the other watchers of "" see. */
static void set_on_end(const cgrpc_interceptor_info *info,
                       cgrpc_status_code code, const char *message,
                       const cgrpc_metadata_array *trailing, void *call_data,
                       void *user_data) {
  fixture *f = user_data;
  (void)code;
  (void)message;
  (void)trailing;
  (void)call_data;
  if (strcmp(info->method, watch_path) == 0)
    IT_CHECK(cgrpc_server_set_health(f->server, "", CGRPC_HEALTH_NOT_SERVING) ==
                 0,
             "set_health in on_end");
  if (strcmp(info->method, watch_path) == 0)
    atomic_fetch_add(&f->watch_ends, 1);
}

/* Only there to make every write take the call's interceptor lock. */
static void see_message(const cgrpc_interceptor_info *info, int direction,
                        const ProtobufCMessage *msg, void *call_data,
                        void *user_data) {
  (void)info;
  (void)direction;
  (void)msg;
  (void)call_data;
  (void)user_data;
}

typedef struct churn {
  cgrpc_server *server;
  atomic_int stop;
  atomic_int failed; /* a set_health returned an error */
} churn;

static void flip_until_stopped(void *arg) {
  churn *c = arg;
  int i;
  for (i = 0; !atomic_load(&c->stop); i++)
    if (cgrpc_server_set_health(c->server, "",
                                i % 2 ? CGRPC_HEALTH_SERVING
                                      : CGRPC_HEALTH_UNKNOWN) != 0)
      atomic_store(&c->failed, 1);
}

/* An interceptor's on_end sets the status that the ending call itself
 * watches, while another thread keeps setting it too.  on_end runs under
 * the ending call's interceptor lock before the watch leaves its entry,
 * and each write to it takes that lock (on_message): no setter may hold the
 * health lock while it writes. */
static void test_health_set_from_on_end(void **state) {
  fixture fx = {0}, *f = &fx;
  cgrpc_interceptor ic = {
      .on_message = see_message, .on_end = set_on_end, .user_data = f};
  churn c = {0};
  it_bg_job *job;
  cgrpc_call *calls[8];
  int i;
  (void)state;
  f->interceptor = &ic;
  fixture_start(f, -1, -1);
  c.server = f->server;
  for (i = 0; i < 8; i++) {
    calls[i] = watch(f->ch, "");
    assert_int_equal(next(calls[i]), CGRPC_HEALTH_SERVING);
  }
  job = it_bg_start(flip_until_stopped, &c);
  for (i = 0; i < 8; i++)
    assert_int_equal(end(calls[i], 1), CGRPC_STATUS_CANCELLED);
  atomic_store(&c.stop, 1);
  assert_true(it_bg_wait(job, IT_WAIT_MS * IT_SLOW));
  /* Each cancel ran on_end, so the last word is on_end's or the setter's;
   * either way the loop still answers. */
  calls[0] = watch(f->ch, "");
  assert_int_not_equal(next(calls[0]), -1);
  assert_int_equal(end(calls[0], 1), CGRPC_STATUS_CANCELLED);
  /* The server's on_end may come after the client saw the cancel. */
  assert_int_equal(it_wait_flag(&f->watch_ends, 9, IT_WAIT_MS * IT_SLOW), 9);
  assert_int_equal(cgrpc_server_set_health(f->server, "", CGRPC_HEALTH_SERVING),
                   0);
  assert_int_equal(check_ok(f->ch, ""), CGRPC_HEALTH_SERVING);
  fixture_stop(f);
  IT_CHECKS_DONE();
}

/* ---- shutdown ------------------------------------------------------------ */

typedef struct shutter {
  cgrpc_server *server;
  int64_t grace_ms;
} shutter;

static void shut(void *arg) {
  shutter *s = arg;
  cgrpc_server_shutdown(s->server, s->grace_ms);
}

/* The watchers see NOT_SERVING, then their streams end (UNAVAILABLE);
 * statuses set during the shutdown are ignored. */
static void test_health_shutdown_not_serving(void **state) {
  fixture *f = *state;
  cgrpc_call *calls[3];
  shutter s = {f->server, 5000 * IT_SLOW};
  it_bg_job *job;
  int i;
  assert_int_equal(
      cgrpc_server_set_health(f->server, "db", CGRPC_HEALTH_SERVING), 0);
  calls[0] = watch(f->ch, "");
  calls[1] = watch(f->ch, "db");
  calls[2] = watch(f->ch, "nope");
  assert_int_equal(next(calls[0]), CGRPC_HEALTH_SERVING);
  assert_int_equal(next(calls[1]), CGRPC_HEALTH_SERVING);
  assert_int_equal(next(calls[2]), CGRPC_HEALTH_SERVICE_UNKNOWN);
  job = it_bg_start(shut, &s);
  assert_int_equal(next(calls[0]), CGRPC_HEALTH_NOT_SERVING);
  assert_int_equal(next(calls[1]), CGRPC_HEALTH_NOT_SERVING);
  assert_int_equal(cgrpc_server_set_health(f->server, "", CGRPC_HEALTH_SERVING),
                   0);
  for (i = 0; i < 3; i++) {
    assert_int_equal(next(calls[i]), -1);
    assert_int_equal(end(calls[i], 0), CGRPC_STATUS_UNAVAILABLE);
  }
  /* The watches ended, so the drain does not wait out its grace. */
  assert_true(it_bg_wait(job, 4000 * IT_SLOW));
  assert_int_equal(cgrpc_server_set_health(f->server, "", CGRPC_HEALTH_SERVING),
                   0);
}

/* Another thread keeps setting a status while the shutdown runs, with
 * watchers open and every write through an interceptor: each set returns
 * 0, every watch's last message is NOT_SERVING and it ends UNAVAILABLE,
 * and sets after the shutdown (up to cgrpc_server_del()) change nothing. */
static void test_health_set_racing_shutdown(void **state) {
  fixture fx = {0}, *f = &fx;
  cgrpc_interceptor ic = {.on_message = see_message, .user_data = f};
  enum { N = 4 };
  cgrpc_call *calls[N];
  churn c = {0};
  it_bg_job *job;
  int i;
  (void)state;
  f->interceptor = &ic;
  fixture_start(f, -1, -1);
  c.server = f->server;
  for (i = 0; i < N; i++) {
    calls[i] = watch(f->ch, "");
    assert_int_equal(next(calls[i]), CGRPC_HEALTH_SERVING);
  }
  job = it_bg_start(flip_until_stopped, &c);
  assert_true(it_server_shutdown_bounded(f->server, 5000 * IT_SLOW,
                                         IT_WAIT_MS * IT_SLOW) >= 0);
  for (i = 0; i < N; i++) {
    int status, last = -1, n;
    /* Coalesced: at most one message in flight per watcher. */
    for (n = 0; n < 1000000 && (status = next(calls[i])) != -1; n++)
      last = status;
    assert_int_equal(last, CGRPC_HEALTH_NOT_SERVING);
    assert_int_equal(end(calls[i], 0), CGRPC_STATUS_UNAVAILABLE);
  }
  atomic_store(&c.stop, 1);
  assert_true(it_bg_wait(job, IT_WAIT_MS * IT_SLOW));
  assert_int_equal(atomic_load(&c.failed), 0);
  assert_int_equal(cgrpc_server_set_health(f->server, "", CGRPC_HEALTH_SERVING),
                   0);
  assert_true(it_server_del_bounded(f->server, IT_WAIT_MS * IT_SLOW) >= 0);
  f->server = NULL;
  fixture_stop(f);
}

/* The wire: the NOT_SERVING message comes before the first GOAWAY. */
static void test_health_shutdown_before_goaway(void **state) {
  fixture *f = *state;
  req_t req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  shutter s = {f->server, 5000 * IT_SLOW};
  h2raw_buf b, msg;
  h2raw_rframe fr;
  h2raw_hpack *hp;
  it_bg_job *job = NULL;
  int fd, seen_goaway = 0, messages = 0, ended = 0;
  assert_int_equal(h2raw_hpack_new(&hp), 0);
  h2raw_buf_init(&b);
  h2raw_buf_init(&msg);
  it_raw_client_greeting(&b);
  it_raw_request_headers(&b, 1, "/grpc.health.v1.Health/Watch", f->port, NULL,
                         NULL);
  it_raw_grpc_message(&msg, &req.base);
  h2raw_data(&b, 1, 1, msg.data, msg.len);
  fd = h2raw_connect(f->port, 0);
  assert_true(fd >= 0);
  assert_int_equal(h2raw_send_buf(fd, &b), 0);
  h2raw_buf_free(&b);
  h2raw_buf_free(&msg);
  while (!ended) {
    assert_int_equal(h2raw_read_frame(fd, IT_WAIT_MS * IT_SLOW, &fr), 1);
    assert_int_not_equal(h2raw_ack_settings(fd, &fr), -1);
    if (fr.type == 1) { /* HEADERS: decoded, to keep the table in step */
      h2raw_fields fields;
      assert_int_equal(h2raw_hpack_decode(hp, &fr, &fields), 0);
      if (fr.flags & 1) {
        assert_string_equal(h2raw_fields_get(&fields, "grpc-status"), "14");
        ended = 1;
      }
      h2raw_fields_free(&fields);
    } else if (fr.type == 0 && fr.stream == 1 && fr.len >= 5) {
      /* One message per frame here: 5 bytes of prefix, then field 1. */
      uint8_t want =
          messages == 0 ? CGRPC_HEALTH_SERVING : CGRPC_HEALTH_NOT_SERVING;
      assert_int_equal(fr.len, 7);
      assert_int_equal(fr.payload[5], 0x08);
      assert_int_equal(fr.payload[6], want);
      if (messages == 1)
        assert_false(seen_goaway);
      messages++;
      if (messages == 1)
        job = it_bg_start(shut, &s);
    } else if (fr.type == 7) {
      seen_goaway = 1;
    } else if (fr.type == 6 && !(fr.flags & 1)) { /* PING: answered */
      h2raw_buf_init(&b);
      h2raw_ping(&b, 1, fr.payload);
      assert_int_equal(h2raw_send_buf(fd, &b), 0);
      h2raw_buf_free(&b);
    }
    h2raw_rframe_free(&fr);
  }
  assert_int_equal(messages, 2);
  assert_non_null(job);
  close(fd);
  assert_true(it_bg_wait(job, 4000 * IT_SLOW));
  h2raw_hpack_del(hp);
}

/* Deleting the server (no grace) with watches open ends them all. */
static void test_health_del_with_watchers(void **state) {
  fixture *f = *state;
  enum { N = 8 };
  cgrpc_call *calls[N];
  int i;
  for (i = 0; i < N; i++) {
    calls[i] = watch(f->ch, i % 2 ? "" : "unknown");
    assert_int_not_equal(next(calls[i]), -1);
  }
  assert_true(it_server_del_bounded(f->server, IT_WAIT_MS * IT_SLOW) >= 0);
  f->server = NULL;
  for (i = 0; i < N; i++) {
    int status, n = 0;
    while ((status = next(calls[i])) != -1 && n++ < 3)
      assert_int_equal(status, i % 2 ? CGRPC_HEALTH_NOT_SERVING
                                     : CGRPC_HEALTH_SERVICE_UNKNOWN);
    assert_int_equal(status, -1);
    assert_int_not_equal(end(calls[i], 0), CGRPC_STATUS_OK);
  }
}

/* Many watchers on a pool of two threads: they hold none. */
static void test_health_many_watchers(void **state) {
  fixture small = {0}, *f = &small;
  enum { N = 300 };
  cgrpc_call **calls = calloc(N, sizeof *calls);
  int i;
  (void)state;
  assert_non_null(calls);
  fixture_start(f, 2, -1);
  for (i = 0; i < N; i++) {
    calls[i] = watch(f->ch, i % 3 ? "" : "cgrpc.test.EchoService");
    assert_int_equal(next(calls[i]), CGRPC_HEALTH_SERVING);
  }
  assert_int_equal(check_ok(f->ch, ""), CGRPC_HEALTH_SERVING);
  assert_int_equal(
      cgrpc_server_set_health(f->server, "", CGRPC_HEALTH_NOT_SERVING), 0);
  for (i = 0; i < N; i += 3)
    assert_int_equal(cgrpc_server_set_health(f->server,
                                             "cgrpc.test.EchoService",
                                             CGRPC_HEALTH_NOT_SERVING),
                     0);
  for (i = 0; i < N; i++)
    assert_int_equal(next(calls[i]), CGRPC_HEALTH_NOT_SERVING);
  for (i = 0; i < N; i++)
    assert_int_equal(end(calls[i], 1), CGRPC_STATUS_CANCELLED);
  free(calls);
  fixture_stop(f);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
      T(test_health_check_serving),
      T(test_health_check_changed),
      T(test_health_errors),
      T(test_health_watch_changes),
      T(test_health_watch_unknown),
      T(test_health_watch_coalesces),
      T(test_health_watch_not_reading),
      T(test_health_watch_other_threads),
      T(test_health_set_from_handler),
      T(test_health_watch_cancel),
      T(test_health_set_from_on_message),
      T(test_health_set_from_on_end),
      T(test_health_shutdown_not_serving),
      T(test_health_shutdown_before_goaway),
      T(test_health_set_racing_shutdown),
      T(test_health_del_with_watchers),
      T(test_health_many_watchers),
#undef T
  };
  /* One test (a cmocka filter pattern) per CTest entry. */
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
