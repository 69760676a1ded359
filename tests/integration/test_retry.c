/* SPDX-License-Identifier: MIT */
/*
 * Retries of the service config's retryPolicy (gRFC A6) against our
 * server failing the first N attempts (counted server-side): retries until
 * OK, maxAttempts, which codes are retried, and retryThrottling; and
 * streaming calls, retried until committed: every message sent so far goes
 * again, in order, within the retry buffer's limits.  What
 * goes on the wire (grpc-previous-rpc-attempts, pushback, committed calls,
 * a backoff cut by the deadline or the channel's deletion) is checked
 * against a raw server in test_wire.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"
#include "stream.grpc-c.h"

#define SLOW IT_SLOW
#define BOUND_MS (10000 * SLOW)

/* ---- the server: Echo fails the first |fail_first| attempts ---- */

typedef struct flaky {
  pthread_mutex_t lock;
  int attempts;           /* Echo calls seen */
  int fail_first;         /* attempts that fail */
  cgrpc_status_code code; /* with this */
} flaky;

static flaky fl = {PTHREAD_MUTEX_INITIALIZER, 0, 0, CGRPC_STATUS_OK};

static cgrpc_status_code flaky_echo(cgrpc_server_ctx *ctx,
                                    const Cgrpc__Test__EchoRequest *request,
                                    Cgrpc__Test__EchoReply *reply,
                                    void *user_data) {
  int fail;
  (void)user_data;
  pthread_mutex_lock(&fl.lock);
  fail = fl.attempts++ < fl.fail_first;
  pthread_mutex_unlock(&fl.lock);
  if (!fail) {
    reply->message = cgrpc_server_ctx_strdup(ctx, request->message);
    return CGRPC_STATUS_OK;
  }
  return cgrpc_server_ctx_fail(ctx, fl.code, "failing on purpose");
}

static cgrpc_server *server;
static int port;

static int setup(void **state) {
  static const Cgrpc__Test__EchoService_Servicer servicer = {flaky_echo, NULL};
  (void)state;
  pthread_mutex_lock(&fl.lock);
  fl.attempts = 0;
  fl.fail_first = 0;
  fl.code = CGRPC_STATUS_UNAVAILABLE;
  pthread_mutex_unlock(&fl.lock);
  assert_int_equal(cgrpc_server_new(&server, NULL), 0);
  assert_int_equal(cgrpc_server_add_insecure_port(server, "127.0.0.1:0", &port),
                   0);
  assert_int_equal(
      cgrpc__test__echo_service__servicer__register(server, &servicer, NULL),
      0);
  assert_int_equal(cgrpc_server_start(server), 0);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  cgrpc_server_shutdown(server, 1000);
  cgrpc_server_del(server);
  return 0;
}

#define POLICY(attempts, codes)                                                \
  "{\"methodConfig\": [{\"name\": [{\"service\": "                             \
  "\"cgrpc.test.EchoService\"}], \"retryPolicy\": "                            \
  "{\"maxAttempts\": " #attempts                                               \
  ", \"initialBackoff\": \"0.01s\", \"maxBackoff\": \"0.05s\", "               \
  "\"backoffMultiplier\": 2, \"retryableStatusCodes\": [" codes "]}}]"

static cgrpc_channel *channel_with(const char *json) {
  cgrpc_channel_options *o;
  cgrpc_channel *ch = NULL;
  char err[300] = "", target[64];
  assert_int_equal(cgrpc_channel_options_new(&o), 0);
  if (cgrpc_channel_options_set_service_config(o, json, err, sizeof err) != 0)
    fail_msg("service config refused: %s", err);
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  assert_int_equal(cgrpc_channel_new(&ch, target, o), 0);
  cgrpc_channel_options_del(o);
  return ch;
}

static cgrpc_status_code echo(cgrpc_channel *ch, int64_t timeout_ms) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_call_options opts = {.timeout_ms = timeout_ms};
  cgrpc_status st = {0};
  cgrpc_status_code code;
  req.message = "again";
  code = cgrpc__test__echo_service__echo__call(ch, &req, &reply, &opts, &st);
  if (code == CGRPC_STATUS_OK)
    assert_string_equal(reply->message, "again");
  if (reply)
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_status_clear(&st);
  return code;
}

static int attempts(void) {
  int n;
  pthread_mutex_lock(&fl.lock);
  n = fl.attempts;
  pthread_mutex_unlock(&fl.lock);
  return n;
}

/* Two failures, then the third attempt answers.  (What each attempt sends,
 * the pushback, committed calls and backoffs are checked on the wire by
 * test_wire's retry_policy tests.) */
static void test_retry_until_ok(void **state) {
  cgrpc_channel *ch = channel_with(POLICY(3, "\"UNAVAILABLE\"") "}");
  (void)state;
  fl.fail_first = 2;
  assert_int_equal(echo(ch, BOUND_MS), CGRPC_STATUS_OK);
  assert_int_equal(attempts(), 3);
  cgrpc_channel_del(ch);
}

/* maxAttempts counts the original call: 3 attempts, then the status. */
static void test_retry_max_attempts(void **state) {
  cgrpc_channel *ch = channel_with(POLICY(3, "\"UNAVAILABLE\"") "}");
  (void)state;
  fl.fail_first = 100;
  assert_int_equal(echo(ch, BOUND_MS), CGRPC_STATUS_UNAVAILABLE);
  assert_int_equal(attempts(), 3);
  cgrpc_channel_del(ch);
}

/* A code the policy does not list is not retried; one it lists by number
 * is. */
static void test_retry_codes(void **state) {
  cgrpc_channel *ch = channel_with(POLICY(4, "\"UNAVAILABLE\", 8") "}");
  (void)state;
  fl.fail_first = 1;
  fl.code = CGRPC_STATUS_INTERNAL;
  assert_int_equal(echo(ch, BOUND_MS), CGRPC_STATUS_INTERNAL);
  assert_int_equal(attempts(), 1);
  fl.attempts = 0;
  fl.code = CGRPC_STATUS_RESOURCE_EXHAUSTED; /* 8 */
  assert_int_equal(echo(ch, BOUND_MS), CGRPC_STATUS_OK);
  assert_int_equal(attempts(), 2);
  cgrpc_channel_del(ch);
}

/* retryThrottling: with maxTokens 2, one failure leaves 1 token, at or
 * below half: no retry. */
static void test_retry_throttled(void **state) {
  cgrpc_channel *ch = channel_with(
      POLICY(3, "\"UNAVAILABLE\"") ", \"retryThrottling\": {\"maxTokens\": "
                                   "2, \"tokenRatio\": 0.5}}");
  (void)state;
  fl.fail_first = 100;
  assert_int_equal(echo(ch, BOUND_MS), CGRPC_STATUS_UNAVAILABLE);
  assert_int_equal(attempts(), 1);
  cgrpc_channel_del(ch);
}

/* ---- streaming: StreamService whose calls fail their first attempts ----
 *
 * Each call names its key ("x-key") and how many of its attempts fail
 * ("x-fail": UNAVAILABLE, Trailers-Only) after reading how many messages
 * ("x-fail-after"; Download fails at once), or after sending one message
 * first ("x-send-first": committed, must not be retried).  "x-hold" keeps
 * a failing attempt of Upload, once it has read every message, until the
 * test releases it.  The server counts the attempts per key.  (Our server
 * keeps grpc-* headers from the application, so grpc-previous-rpc-attempts
 * is checked on the wire in test_wire, and against grpc++ in the interop
 * tests.) */

#define MAX_KEYS 16

typedef struct key_stats {
  char key[16];
  int attempts;
  int received; /* messages read by the attempts so far */
} key_stats;

static struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  key_stats keys[MAX_KEYS];
  int held, released;
} sfl = {
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {{"", 0, 0}}, 0, 0};

static int md_int(cgrpc_server_ctx *ctx, const char *key, int dflt) {
  const char *v =
      cgrpc_metadata_array_get(cgrpc_server_ctx_metadata(ctx), key, NULL);
  return v ? atoi(v) : dflt;
}

/* Counts this attempt of the call's key; returns its stats (under lock). */
static key_stats *attempt_begin(cgrpc_server_ctx *ctx) {
  const char *key =
      cgrpc_metadata_array_get(cgrpc_server_ctx_metadata(ctx), "x-key", NULL);
  key_stats *k = NULL;
  int i;
  pthread_mutex_lock(&sfl.lock);
  for (i = 0; i < MAX_KEYS && !k; i++)
    if (!sfl.keys[i].key[0] || strcmp(sfl.keys[i].key, key ? key : "") == 0)
      k = &sfl.keys[i];
  assert_non_null(k);
  snprintf(k->key, sizeof k->key, "%s", key ? key : "");
  k->attempts++;
  pthread_mutex_unlock(&sfl.lock);
  return k;
}

static key_stats key_get(const char *key) {
  key_stats out = {"", 0, 0};
  int i;
  pthread_mutex_lock(&sfl.lock);
  for (i = 0; i < MAX_KEYS; i++)
    if (strcmp(sfl.keys[i].key, key) == 0)
      out = sfl.keys[i];
  pthread_mutex_unlock(&sfl.lock);
  return out;
}

/* Whether attempt |k->attempts| (just counted) is one that fails. */
static int attempt_fails(cgrpc_server_ctx *ctx, key_stats *k) {
  int n;
  pthread_mutex_lock(&sfl.lock);
  n = k->attempts;
  pthread_mutex_unlock(&sfl.lock);
  return n <= md_int(ctx, "x-fail", 0);
}

/* Fails the attempt, with the pushback "x-pushback" asks for. */
static cgrpc_status_code fail_attempt(cgrpc_server_ctx *ctx) {
  const char *pushback = cgrpc_metadata_array_get(
      cgrpc_server_ctx_metadata(ctx), "x-pushback", NULL);
  if (pushback)
    assert_int_equal(cgrpc_server_ctx_add_trailing_metadata(
                         ctx, "grpc-retry-pushback-ms", pushback),
                     0);
  return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_UNAVAILABLE,
                               "failing this attempt on purpose");
}

static void count_received(key_stats *k) {
  pthread_mutex_lock(&sfl.lock);
  k->received++;
  pthread_mutex_unlock(&sfl.lock);
}

/* Holds a failing attempt until the test releases it (bounded). */
static void hold(void) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 10 * SLOW;
  pthread_mutex_lock(&sfl.lock);
  sfl.held++;
  pthread_cond_broadcast(&sfl.cond);
  while (!sfl.released &&
         pthread_cond_timedwait(&sfl.cond, &sfl.lock, &until) == 0)
    ;
  pthread_mutex_unlock(&sfl.lock);
}

static cgrpc_status_code s_upload(cgrpc_server_ctx *ctx,
                                  Cgrpc__Test__UploadSummary *reply,
                                  void *user_data) {
  key_stats *k = attempt_begin(ctx);
  int fails = attempt_fails(ctx, k), after = md_int(ctx, "x-fail-after", 0);
  int64_t n = 0;
  (void)user_data;
  for (;;) {
    Cgrpc__Test__Chunk *c = NULL;
    int rv;
    if (fails && n == after && after >= 0)
      return fail_attempt(ctx);
    rv = cgrpc__test__stream_service__upload__recv(ctx, &c);
    if (rv <= 0)
      break;
    count_received(k);
    if (c->seq != n)
      reply->out_of_order++;
    reply->bytes += (int64_t)c->data.len;
    reply->last_seq = c->seq;
    n++;
    protobuf_c_message_free_unpacked(&c->base, NULL);
  }
  if (fails) { /* x-fail-after -1: fail once every message is read */
    if (cgrpc_metadata_array_get(cgrpc_server_ctx_metadata(ctx), "x-hold",
                                 NULL))
      hold();
    return fail_attempt(ctx);
  }
  reply->count = n;
  return CGRPC_STATUS_OK;
}

static cgrpc_status_code s_chat(cgrpc_server_ctx *ctx, void *user_data) {
  key_stats *k = attempt_begin(ctx);
  int fails = attempt_fails(ctx, k), after = md_int(ctx, "x-fail-after", 0);
  int n = 0;
  (void)user_data;
  for (;;) {
    Cgrpc__Test__Chunk *c = NULL;
    int rv;
    if (fails && n == after)
      return fail_attempt(ctx);
    rv = cgrpc__test__stream_service__chat__recv(ctx, &c);
    if (rv <= 0)
      break;
    count_received(k);
    n++;
    if (!fails)
      rv = cgrpc__test__stream_service__chat__send(ctx, c);
    protobuf_c_message_free_unpacked(&c->base, NULL);
    if (rv < 0)
      return CGRPC_STATUS_CANCELLED;
  }
  return fails ? fail_attempt(ctx) : CGRPC_STATUS_OK;
}

static cgrpc_status_code s_download(cgrpc_server_ctx *ctx,
                                    const Cgrpc__Test__DownloadRequest *req,
                                    void *user_data) {
  key_stats *k = attempt_begin(ctx);
  Cgrpc__Test__Chunk c = CGRPC__TEST__CHUNK__INIT;
  int fails = attempt_fails(ctx, k), i;
  (void)user_data;
  if (fails && !md_int(ctx, "x-send-first", 0))
    return fail_attempt(ctx);
  for (i = 0; i < req->count; i++) {
    c.seq = i;
    if (cgrpc__test__stream_service__download__send(ctx, &c) != 0)
      return CGRPC_STATUS_CANCELLED;
    if (fails)
      return fail_attempt(ctx); /* after one message: committed */
  }
  return CGRPC_STATUS_OK;
}

static int stream_setup(void **state) {
  Cgrpc__Test__StreamService_Servicer sv;
  memset(&sv, 0, sizeof sv);
  sv.upload = s_upload;
  sv.chat = s_chat;
  sv.download = s_download;
  pthread_mutex_lock(&sfl.lock);
  memset(sfl.keys, 0, sizeof sfl.keys);
  sfl.held = sfl.released = 0;
  pthread_mutex_unlock(&sfl.lock);
  it_watchdog_setup(state);
  assert_int_equal(cgrpc_server_new(&server, NULL), 0);
  assert_int_equal(cgrpc_server_add_insecure_port(server, "127.0.0.1:0", &port),
                   0);
  assert_int_equal(
      cgrpc__test__stream_service__servicer__register(server, &sv, NULL), 0);
  assert_int_equal(cgrpc_server_start(server), 0);
  return 0;
}

static int stream_teardown(void **state) {
  pthread_mutex_lock(&sfl.lock);
  sfl.released = 1;
  pthread_cond_broadcast(&sfl.cond);
  pthread_mutex_unlock(&sfl.lock);
  teardown(state);
  return it_watchdog_teardown(state);
}

#define STREAM_POLICY(attempts, backoff)                                       \
  "{\"methodConfig\": [{\"name\": [{\"service\": "                             \
  "\"cgrpc.test.StreamService\"}], \"retryPolicy\": "                          \
  "{\"maxAttempts\": " #attempts ", \"initialBackoff\": \"" backoff            \
  "\", \"maxBackoff\": \"" backoff "\", \"backoffMultiplier\": 2, "            \
  "\"retryableStatusCodes\": [\"UNAVAILABLE\"]}}]}"

/* A channel with a streaming retryPolicy and the retry buffer's limits
 * (-1: the default). */
static cgrpc_channel *stream_channel(const char *json, int64_t per_call,
                                     int64_t per_channel) {
  cgrpc_channel_options *o;
  cgrpc_channel *ch = NULL;
  char err[300] = "", target[64];
  assert_int_equal(cgrpc_channel_options_new(&o), 0);
  if (cgrpc_channel_options_set_service_config(o, json, err, sizeof err) != 0)
    fail_msg("service config refused: %s", err);
  cgrpc_channel_options_set_retry_buffer_size(o, per_call, per_channel);
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  assert_int_equal(cgrpc_channel_new(&ch, target, o), 0);
  cgrpc_channel_options_del(o);
  return ch;
}

/* Call options carrying the server's instructions. */
typedef struct instr {
  cgrpc_metadata_array *md;
  cgrpc_call_options opts;
} instr;

static void instr_init(instr *in, const char *key, const char *fail,
                       const char *after) {
  memset(in, 0, sizeof *in);
  assert_int_equal(cgrpc_metadata_array_new(&in->md), 0);
  assert_int_equal(cgrpc_metadata_array_add(in->md, "x-key", key), 0);
  assert_int_equal(cgrpc_metadata_array_add(in->md, "x-fail", fail), 0);
  if (after)
    assert_int_equal(cgrpc_metadata_array_add(in->md, "x-fail-after", after),
                     0);
  in->opts.metadata = in->md;
  in->opts.timeout_ms = BOUND_MS;
}

static void instr_free(instr *in) { cgrpc_metadata_array_del(in->md); }

/* Uploads |count| chunks of |size| bytes (seq 0, 1, ...) on |ch| and
 * returns the status; |*reply_count| the server's count (-1: no reply). */
static cgrpc_status_code upload(cgrpc_channel *ch, const instr *in, int count,
                                size_t size, int64_t *reply_count) {
  static uint8_t data[4096];
  Cgrpc__Test__UploadSummary *reply = NULL;
  cgrpc_status st = {0};
  cgrpc_status_code code;
  cgrpc_call *call;
  int i;
  assert_true(size <= sizeof data);
  assert_int_equal(
      cgrpc__test__stream_service__upload__open(ch, &in->opts, &call), 0);
  for (i = 0; i < count; i++) {
    Cgrpc__Test__Chunk c = CGRPC__TEST__CHUNK__INIT;
    c.seq = i;
    c.data.data = data;
    c.data.len = size;
    if (cgrpc__test__stream_service__upload__write(call, &c) != 0)
      break; /* the call ended: finish says how */
  }
  code = cgrpc__test__stream_service__upload__finish(call, &reply, &st);
  *reply_count = -1;
  if (reply) {
    assert_int_equal(reply->out_of_order, 0);
    assert_int_equal(reply->last_seq, count - 1);
    assert_int_equal(reply->bytes, (int64_t)(count * size));
    *reply_count = reply->count;
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  }
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  return code;
}

/* Client streaming: two attempts fail after reading 3 of 10 messages (the
 * client still writing); the third gets all 10, in order, and the attempts
 * said how many came before them. */
static void test_retry_upload_resends(void **state) {
  cgrpc_channel *ch = stream_channel(STREAM_POLICY(3, "0.01s"), -1, -1);
  key_stats k;
  int64_t n;
  instr in;
  (void)state;
  instr_init(&in, "up", "2", "3");
  assert_int_equal(upload(ch, &in, 10, 100, &n), CGRPC_STATUS_OK);
  assert_int_equal(n, 10);
  k = key_get("up");
  assert_int_equal(k.attempts, 3);
  assert_int_equal(k.received, 3 + 3 + 10);
  instr_free(&in);
  cgrpc_channel_del(ch);
}

/* Bidi: the first attempt fails after reading 2 of 5 messages, before
 * answering any; the second echoes all 5. */
static void test_retry_chat_resends(void **state) {
  cgrpc_channel *ch = stream_channel(STREAM_POLICY(2, "0.01s"), -1, -1);
  cgrpc_status st = {0};
  cgrpc_call *call;
  Cgrpc__Test__Chunk *r;
  instr in;
  int i;
  (void)state;
  instr_init(&in, "chat", "1", "2");
  assert_int_equal(cgrpc__test__stream_service__chat__open(ch, &in.opts, &call),
                   0);
  for (i = 0; i < 5; i++) {
    Cgrpc__Test__Chunk c = CGRPC__TEST__CHUNK__INIT;
    c.seq = i;
    assert_int_equal(cgrpc__test__stream_service__chat__write(call, &c), 0);
  }
  assert_int_equal(cgrpc_call_writes_done(call), 0);
  for (i = 0; i < 5; i++) {
    assert_int_equal(cgrpc__test__stream_service__chat__read(call, &r), 1);
    assert_int_equal(r->seq, i);
    protobuf_c_message_free_unpacked(&r->base, NULL);
  }
  assert_int_equal(cgrpc__test__stream_service__chat__read(call, &r), 0);
  cgrpc_call_finish(call, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_OK);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  assert_int_equal(key_get("chat").attempts, 2);
  instr_free(&in);
  cgrpc_channel_del(ch);
}

/* Reads a Download to its end: the chunks, and the status. */
static cgrpc_status_code download(cgrpc_channel *ch, const instr *in, int count,
                                  int *got) {
  Cgrpc__Test__DownloadRequest req = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
  Cgrpc__Test__Chunk *c;
  cgrpc_status st = {0};
  cgrpc_status_code code;
  cgrpc_call *call;
  req.count = count;
  *got = 0;
  assert_int_equal(
      cgrpc__test__stream_service__download__open(ch, &req, &in->opts, &call),
      0);
  while (cgrpc__test__stream_service__download__read(call, &c) == 1) {
    assert_int_equal(c->seq, *got);
    (*got)++;
    protobuf_c_message_free_unpacked(&c->base, NULL);
  }
  code = cgrpc_call_finish(call, &st);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  return code;
}

/* Server streaming: two attempts fail at once; the third streams. */
static void test_retry_download(void **state) {
  cgrpc_channel *ch = stream_channel(STREAM_POLICY(3, "0.01s"), -1, -1);
  instr in;
  int got;
  (void)state;
  instr_init(&in, "down", "2", NULL);
  assert_int_equal(download(ch, &in, 4, &got), CGRPC_STATUS_OK);
  assert_int_equal(got, 4);
  assert_int_equal(key_get("down").attempts, 3);
  instr_free(&in);
  cgrpc_channel_del(ch);
}

/* Our server's grpc-retry-pushback-ms (300 ms, the policy's backoff 10 ms)
 * is waited before the next attempt. */
static void test_retry_stream_pushback(void **state) {
  cgrpc_channel *ch = stream_channel(STREAM_POLICY(2, "0.01s"), -1, -1);
  int64_t t0, n;
  instr in;
  (void)state;
  instr_init(&in, "push", "1", "1");
  assert_int_equal(cgrpc_metadata_array_add(in.md, "x-pushback", "300"), 0);
  t0 = it_now_ms();
  assert_int_equal(upload(ch, &in, 3, 10, &n), CGRPC_STATUS_OK);
  assert_true(it_now_ms() - t0 >= 295);
  assert_int_equal(n, 3);
  assert_int_equal(key_get("push").attempts, 2);
  instr_free(&in);
  cgrpc_channel_del(ch);
}

/* A response message (and the headers before it) commits the call: its
 * failure after that is the call's, not retried. */
static void test_retry_stream_committed(void **state) {
  cgrpc_channel *ch = stream_channel(STREAM_POLICY(3, "0.01s"), -1, -1);
  instr in;
  int got;
  (void)state;
  instr_init(&in, "commit", "2", NULL);
  assert_int_equal(cgrpc_metadata_array_add(in.md, "x-send-first", "1"), 0);
  assert_int_equal(download(ch, &in, 4, &got), CGRPC_STATUS_UNAVAILABLE);
  assert_int_equal(got, 1);
  assert_int_equal(key_get("commit").attempts, 1);
  instr_free(&in);
  cgrpc_channel_del(ch);
}

/* The per-call retry buffer: 10 messages of ~105 bytes pass a 1000-byte
 * limit, so the call is committed and fails with its first attempt; 8 fit
 * and are sent again. */
static void test_retry_stream_buffer_per_call(void **state) {
  cgrpc_channel *ch = stream_channel(STREAM_POLICY(3, "0.01s"), 1000, -1);
  int64_t n;
  instr in;
  (void)state;
  instr_init(&in, "big", "1", "-1");
  assert_int_equal(upload(ch, &in, 10, 100, &n), CGRPC_STATUS_UNAVAILABLE);
  assert_int_equal(key_get("big").attempts, 1);
  instr_free(&in);
  instr_init(&in, "fits", "1", "-1");
  assert_int_equal(upload(ch, &in, 8, 100, &n), CGRPC_STATUS_OK);
  assert_int_equal(n, 8);
  assert_int_equal(key_get("fits").attempts, 2);
  instr_free(&in);
  cgrpc_channel_del(ch);
}

typedef struct upload_job {
  cgrpc_channel *ch;
  instr in;
  int count;
  cgrpc_status_code code;
  int64_t n;
} upload_job;

static void upload_bg(void *arg) {
  upload_job *j = arg;
  j->code = upload(j->ch, &j->in, j->count, 100, &j->n);
}

/* The channel's retry buffer: while call A keeps 840 bytes (its server
 * holds it), call B's messages do not fit in 1000, so B is committed and
 * not retried; A, within the limit, is; and once both ended the buffer is
 * free again for call C. */
static void test_retry_stream_buffer_per_channel(void **state) {
  cgrpc_channel *ch = stream_channel(STREAM_POLICY(3, "0.01s"), -1, 1000);
  upload_job a = {ch, {0}, 8, CGRPC_STATUS_UNKNOWN, 0};
  it_bg_job *job;
  int64_t n;
  instr in;
  int held = 0, i;
  (void)state;
  instr_init(&a.in, "a", "1", "-1");
  assert_int_equal(cgrpc_metadata_array_add(a.in.md, "x-hold", "1"), 0);
  job = it_bg_start(upload_bg, &a);
  for (i = 0; i < 1000 * SLOW && !held; i++) {
    usleep(10000);
    pthread_mutex_lock(&sfl.lock);
    held = sfl.held;
    pthread_mutex_unlock(&sfl.lock);
  }
  assert_true(held);
  instr_init(&in, "b", "1", "-1");
  assert_int_equal(upload(ch, &in, 4, 100, &n), CGRPC_STATUS_UNAVAILABLE);
  assert_int_equal(key_get("b").attempts, 1);
  instr_free(&in);
  pthread_mutex_lock(&sfl.lock);
  sfl.released = 1;
  pthread_cond_broadcast(&sfl.cond);
  pthread_mutex_unlock(&sfl.lock);
  assert_true(it_bg_wait(job, BOUND_MS));
  assert_int_equal(a.code, CGRPC_STATUS_OK);
  assert_int_equal(a.n, 8);
  assert_int_equal(key_get("a").attempts, 2);
  instr_free(&a.in);
  instr_init(&in, "c", "1", "-1");
  assert_int_equal(upload(ch, &in, 8, 100, &n), CGRPC_STATUS_OK);
  assert_int_equal(key_get("c").attempts, 2);
  instr_free(&in);
  cgrpc_channel_del(ch);
}

/* The callback form: one message written async, its attempt fails after
 * reading it, the second echoes it; on_done says OK. */
typedef struct async_chat {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int done, echoes;
  cgrpc_status_code code;
} async_chat;

static void ac_write_done(cgrpc_call *call, int ok, void *user_data) {
  (void)user_data;
  if (ok)
    cgrpc_call_writes_done(call);
}

static void ac_read(cgrpc_call *call, ProtobufCMessage *msg, void *user_data) {
  async_chat *a = user_data;
  if (!msg)
    return;
  a->echoes++;
  protobuf_c_message_free_unpacked(msg, NULL);
  cgrpc_call_read_async(call);
}

static void ac_done(cgrpc_call *call, const cgrpc_status *status,
                    void *user_data) {
  async_chat *a = user_data;
  (void)call;
  pthread_mutex_lock(&a->lock);
  a->code = status->code;
  a->done = 1;
  pthread_cond_signal(&a->cond);
  pthread_mutex_unlock(&a->lock);
}

static void test_retry_chat_async(void **state) {
  static const cgrpc_call_callbacks cbs = {ac_read, ac_write_done, ac_done};
  cgrpc_channel *ch = stream_channel(STREAM_POLICY(2, "0.01s"), -1, -1);
  async_chat a = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0,
                  CGRPC_STATUS_UNKNOWN};
  Cgrpc__Test__Chunk c = CGRPC__TEST__CHUNK__INIT;
  struct timespec until;
  cgrpc_call *call;
  instr in;
  (void)state;
  instr_init(&in, "achat", "1", "1");
  assert_int_equal(cgrpc__test__stream_service__chat__open_async(
                       ch, &in.opts, &cbs, &a, &call),
                   0);
  assert_int_equal(cgrpc__test__stream_service__chat__write_async(call, &c), 0);
  assert_int_equal(cgrpc_call_read_async(call), 0);
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 10 * SLOW;
  pthread_mutex_lock(&a.lock);
  while (!a.done && pthread_cond_timedwait(&a.cond, &a.lock, &until) == 0)
    ;
  pthread_mutex_unlock(&a.lock);
  assert_true(a.done);
  assert_int_equal(a.code, CGRPC_STATUS_OK);
  assert_int_equal(a.echoes, 1);
  assert_int_equal(key_get("achat").attempts, 2);
  cgrpc_call_unref(call);
  instr_free(&in);
  cgrpc_channel_del(ch);
}

typedef struct cancel_job {
  cgrpc_call *call;
  cgrpc_channel *ch; /* deleted instead when set */
} cancel_job;

static void cancel_bg(void *arg) {
  cancel_job *j = arg;
  int i;
  /* Until the first attempt has failed: the call waits out the server's
   * 5 s pushback. */
  for (i = 0; i < 1000 * SLOW && key_get("wait").attempts < 1; i++)
    usleep(10000);
  usleep(50000);
  if (j->ch)
    cgrpc_channel_del(j->ch);
  else
    cgrpc_call_cancel(j->call);
}

/* A stream waiting out its backoff, with messages kept, is ended at once by
 * a cancel from another thread, or by the channel's deletion (no leak: the
 * sanitizer build checks). */
static void backoff_ended(int delete_channel) {
  cgrpc_channel *ch = stream_channel(STREAM_POLICY(3, "0.01s"), -1, -1);
  cgrpc_status st = {0};
  cancel_job j = {NULL, NULL};
  it_bg_job *job;
  cgrpc_call *call;
  int64_t t0;
  instr in;
  int i;
  /* The server's pushback, not the policy's random backoff (which may be
   * short), makes the wait long: 5 s, within the call's deadline. */
  instr_init(&in, "wait", "1", "2");
  assert_int_equal(cgrpc_metadata_array_add(in.md, "x-pushback", "5000"), 0);
  assert_int_equal(
      cgrpc__test__stream_service__upload__open(ch, &in.opts, &call), 0);
  for (i = 0; i < 4; i++) {
    Cgrpc__Test__Chunk c = CGRPC__TEST__CHUNK__INIT;
    c.seq = i;
    cgrpc__test__stream_service__upload__write(call, &c);
  }
  j.call = call;
  j.ch = delete_channel ? ch : NULL;
  job = it_bg_start(cancel_bg, &j);
  t0 = it_now_ms();
  cgrpc_call_finish(call, &st);
  assert_true(it_now_ms() - t0 < 4000);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_CANCELLED); /* "channel closed" too */
  cgrpc_status_clear(&st);
  assert_true(it_bg_wait(job, BOUND_MS));
  assert_int_equal(key_get("wait").attempts, 1);
  cgrpc_call_unref(call);
  instr_free(&in);
  if (!delete_channel)
    cgrpc_channel_del(ch);
}

static void test_retry_stream_cancelled_in_backoff(void **state) {
  (void)state;
  backoff_ended(0);
}

static void test_retry_stream_channel_deleted_in_backoff(void **state) {
  (void)state;
  backoff_ended(1);
}

/* Opens an Upload, writes |count| 100-byte chunks, waits until the server
 * has read them all (bounded), then cancels it. */
static void upload_cancelled_midway(cgrpc_channel *ch, const char *key,
                                    int count) {
  static uint8_t data[100];
  cgrpc_status st = {0};
  cgrpc_call *call;
  instr in;
  int i;
  instr_init(&in, key, "1", "-1");
  assert_int_equal(cgrpc_metadata_array_add(in.md, "x-hold", "1"), 0);
  assert_int_equal(
      cgrpc__test__stream_service__upload__open(ch, &in.opts, &call), 0);
  for (i = 0; i < count; i++) {
    Cgrpc__Test__Chunk c = CGRPC__TEST__CHUNK__INIT;
    c.seq = i;
    c.data.data = data;
    c.data.len = sizeof data;
    assert_int_equal(cgrpc__test__stream_service__upload__write(call, &c), 0);
  }
  for (i = 0; i < 1000 * SLOW && key_get(key).received < count; i++)
    usleep(2000);
  assert_int_equal(key_get(key).received, count);
  cgrpc_call_cancel(call);
  cgrpc_call_finish(call, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_CANCELLED);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  instr_free(&in);
}

/* The channel's retry buffer is all free again after calls that commit
 * (OK at once), pass the channel's limit, are retried, or are cancelled
 * with messages kept: at the end, a call that needs all of it is still
 * retried.  (A leak of one message, or an underflow, would commit it.) */
static void test_retry_stream_pool_balanced(void **state) {
  static uint8_t data[100];
  cgrpc_channel *ch;
  char key[16];
  int64_t n, need = 0;
  instr in;
  int round, i;
  (void)state;
  for (i = 0; i < 19; i++) { /* the framed size of the last call's 19 */
    Cgrpc__Test__Chunk c = CGRPC__TEST__CHUNK__INIT;
    c.seq = i;
    c.data.data = data;
    c.data.len = sizeof data;
    need += 5 + (int64_t)protobuf_c_message_get_packed_size(&c.base);
  }
  /* Exactly: a single byte left behind commits the last call. */
  ch = stream_channel(STREAM_POLICY(3, "0.01s"), -1, need);
  for (round = 0; round < 2; round++) {
    snprintf(key, sizeof key, "ok%d", round);
    instr_init(&in, key, "0", NULL);
    assert_int_equal(upload(ch, &in, 10, 100, &n), CGRPC_STATUS_OK);
    instr_free(&in);
    snprintf(key, sizeof key, "over%d", round);
    instr_init(&in, key, "1", "-1");
    assert_int_equal(upload(ch, &in, 20, 100, &n), CGRPC_STATUS_UNAVAILABLE);
    assert_int_equal(key_get(key).attempts, 1);
    instr_free(&in);
    snprintf(key, sizeof key, "again%d", round);
    instr_init(&in, key, "2", "3");
    assert_int_equal(upload(ch, &in, 10, 100, &n), CGRPC_STATUS_OK);
    assert_int_equal(key_get(key).attempts, 3);
    instr_free(&in);
    snprintf(key, sizeof key, "cancel%d", round);
    upload_cancelled_midway(ch, key, 6);
  }
  instr_init(&in, "full", "1", "-1");
  assert_int_equal(upload(ch, &in, 19, 100, &n), CGRPC_STATUS_OK);
  assert_int_equal(n, 19);
  assert_int_equal(key_get("full").attempts, 2);
  instr_free(&in);
  cgrpc_channel_del(ch);
}

typedef struct chat_reader {
  cgrpc_call *call;
  int got_md;
  int seqs[8], n, end;
} chat_reader;

/* Waits for the response headers, then reads to the end. */
static void chat_reader_bg(void *arg) {
  chat_reader *r = arg;
  Cgrpc__Test__Chunk *m;
  /* Returns once the second attempt's headers came (or the call ended). */
  (void)cgrpc_call_initial_metadata(r->call);
  r->got_md = 1; /* NULL is fine when the server sent no metadata */
  while (r->n < 8 &&
         cgrpc__test__stream_service__chat__read(r->call, &m) == 1) {
    r->seqs[r->n++] = (int)m->seq;
    protobuf_c_message_free_unpacked(&m->base, NULL);
  }
  r->end = 1;
}

/* A reader blocked (in cgrpc_call_initial_metadata, then cgrpc_call_read)
 * from before the first attempt fails until the second answers: it sees
 * the second attempt's 5 echoes, in order, once. */
static void test_retry_chat_reader_waits_across_retry(void **state) {
  cgrpc_channel *ch = stream_channel(STREAM_POLICY(2, "0.05s"), -1, -1);
  chat_reader r = {NULL, 0, {0}, 0, 0};
  cgrpc_status st = {0};
  it_bg_job *job;
  instr in;
  int i;
  (void)state;
  instr_init(&in, "rchat", "1", "2");
  assert_int_equal(
      cgrpc__test__stream_service__chat__open(ch, &in.opts, &r.call), 0);
  job = it_bg_start(chat_reader_bg, &r);
  for (i = 0; i < 5; i++) {
    Cgrpc__Test__Chunk c = CGRPC__TEST__CHUNK__INIT;
    c.seq = i;
    assert_int_equal(cgrpc__test__stream_service__chat__write(r.call, &c), 0);
  }
  assert_int_equal(cgrpc_call_writes_done(r.call), 0);
  assert_true(it_bg_wait(job, BOUND_MS));
  assert_int_equal(r.n, 5);
  for (i = 0; i < 5; i++)
    assert_int_equal(r.seqs[i], i);
  cgrpc_call_finish(r.call, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_OK);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(r.call);
  assert_int_equal(key_get("rchat").attempts, 2);
  instr_free(&in);
  cgrpc_channel_del(ch);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
      T(test_retry_until_ok),
      T(test_retry_max_attempts),
      T(test_retry_codes),
      T(test_retry_throttled),
#undef T
#define T(name)                                                                \
  cmocka_unit_test_setup_teardown(name, stream_setup, stream_teardown)
      T(test_retry_upload_resends),
      T(test_retry_chat_resends),
      T(test_retry_download),
      T(test_retry_stream_committed),
      T(test_retry_stream_pushback),
      T(test_retry_stream_buffer_per_call),
      T(test_retry_stream_buffer_per_channel),
      T(test_retry_chat_async),
      T(test_retry_stream_cancelled_in_backoff),
      T(test_retry_stream_channel_deleted_in_backoff),
      T(test_retry_stream_pool_balanced),
      T(test_retry_chat_reader_waits_across_retry),
#undef T
  };
  /* One test (a cmocka filter pattern) per CTest entry. */
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
