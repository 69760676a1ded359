/* SPDX-License-Identifier: MIT */
/*
 * A cgrpc client of grpc.testing.TestService that runs the cases of gRPC's
 * interop test descriptions (doc/interop-test-descriptions.md in grpc/grpc)
 * against any implementation's interop server.
 *
 *   interop_client --server_host=H --server_port=N --test_case=NAME
 *                  [--use_tls=false|true] [--use_test_ca=false|true]
 *                  [--ca_file=PEM] [--server_host_override=NAME]
 *                  [--access_token=T]
 *
 * Cases: empty_unary large_unary client_streaming server_streaming ping_pong
 * empty_stream cancel_after_begin cancel_after_first_response
 * timeout_on_sleeping_server status_code_and_message special_status_message
 * custom_metadata unimplemented_method unimplemented_service
 * client_compressed_unary server_compressed_unary client_compressed_streaming
 * server_compressed_streaming, and "all", which runs every case on one
 * channel.  The compression cases check the compressed flag of what the
 * server sends (cgrpc_call_last_message_compressed()), as the descriptions
 * allow where an implementation can see it.
 *
 * Prints "PASS: case" or "FAIL: case: why" per case and exits 0 when every
 * case passed, 1 otherwise, 2 on usage errors.
 *
 * --use_tls=true connects over TLS and checks the server's certificate
 * against the system's roots, gRPC's test CA with --use_test_ca=true
 * (testdata/ca.pem), or the CAs in --ca_file (grpc-go's flag); and its name
 * against --server_host_override when given (gRPC's test server certificate
 * is for *.test.google.fr), else against --server_host.
 *
 * --access_token=T adds "authorization: Bearer T" to every call (call
 * credentials, cgrpc_call_credentials_new_access_token()).  It needs
 * --use_tls=true: the library sends call credentials over TLS only, and
 * this program does not ask it to allow plaintext.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cgrpc/cgrpc.h>

#include "grpc/testing/test.grpc-c.h"
#include "interop_testdata.h"

/* The deadline of every call but timeout_on_sleeping_server's. */
#define CALL_TIMEOUT_MS 20000

static const char ECHO_INITIAL_KEY[] = "x-grpc-test-echo-initial";
static const char ECHO_INITIAL_VALUE[] = "test_initial_metadata_value";
static const char ECHO_TRAILING_KEY[] = "x-grpc-test-echo-trailing-bin";
static const uint8_t ECHO_TRAILING_VALUE[] = {0xab, 0xab, 0xab};
static const char SPECIAL_MESSAGE[] =
    "\t\ntest with whitespace\r\nand Unicode BMP \xe2\x98\xba"
    " and non-BMP \xf0\x9f\x98\x88\t\n";

/* The sizes of client_streaming, server_streaming and ping_pong. */
static const int32_t REQUEST_SIZES[] = {27182, 8, 1828, 45904};
static const int32_t RESPONSE_SIZES[] = {31415, 9, 2653, 58979};
#define N_SIZES 4

typedef struct client {
  cgrpc_channel *channel;
  char why[1024]; /* why the current case failed */
} client;

/* Records why the case fails (the first reason wins) and returns 0, so that
 * a case can "return fail(c, ...)". */
static int fail(client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fail(client *c, const char *fmt, ...) {
  va_list ap;
  if (c->why[0] != '\0')
    return 0;
  va_start(ap, fmt);
  vsnprintf(c->why, sizeof c->why, fmt, ap);
  va_end(ap);
  return 0;
}

static const char *str_or_none(const char *s) { return s ? s : "(none)"; }

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static cgrpc_call_options call_opts(int64_t timeout_ms,
                                    const cgrpc_metadata_array *md) {
  cgrpc_call_options opts;
  memset(&opts, 0, sizeof opts);
  opts.timeout_ms = timeout_ms;
  opts.metadata = md;
  return opts;
}

/* A payload of |size| zero bytes; free with free_payload(). */
static Grpc__Testing__Payload *zero_payload(int32_t size) {
  Grpc__Testing__Payload *p = malloc(sizeof *p);
  uint8_t *body = calloc((size_t)size + 1, 1);
  if (p == NULL || body == NULL) {
    free(p);
    free(body);
    fprintf(stderr, "interop_client: out of memory\n");
    exit(1);
  }
  grpc__testing__payload__init(p);
  p->body.data = body;
  p->body.len = (size_t)size;
  return p;
}

static void free_payload(Grpc__Testing__Payload *p) {
  if (p) {
    free(p->body.data);
    free(p);
  }
}

/* Checks that |p| holds |size| zero bytes. */
static int check_payload(client *c, const char *what,
                         const Grpc__Testing__Payload *p, int32_t size) {
  size_t i, len = p ? p->body.len : 0;
  if (len != (size_t)size)
    return fail(c, "%s: payload of %zu bytes, want %d", what, len, (int)size);
  for (i = 0; i < len; i++)
    if (p->body.data[i] != 0)
      return fail(c, "%s: payload byte %zu is 0x%02x, want 0", what, i,
                  p->body.data[i]);
  return 1;
}

static int check_code(client *c, const char *what, cgrpc_status_code got,
                      const cgrpc_status *st, cgrpc_status_code want) {
  if (got == want)
    return 1;
  return fail(c, "%s: got %s (\"%s\"), want %s", what,
              cgrpc_status_code_name(got), str_or_none(st->message),
              cgrpc_status_code_name(want));
}

/* A StreamingOutputCallRequest asking for one response of |response_size|
 * (none when < 0) and carrying |payload_size| bytes (none when < 0).
 * Free with free_streaming_request(). */
typedef struct streaming_request {
  Grpc__Testing__StreamingOutputCallRequest req;
  Grpc__Testing__ResponseParameters params;
  Grpc__Testing__ResponseParameters *params_ptr;
} streaming_request;

static void make_streaming_request(streaming_request *s, int32_t response_size,
                                   int32_t payload_size) {
  grpc__testing__streaming_output_call_request__init(&s->req);
  grpc__testing__response_parameters__init(&s->params);
  if (response_size >= 0) {
    s->params.size = response_size;
    s->params_ptr = &s->params;
    s->req.n_response_parameters = 1;
    s->req.response_parameters = &s->params_ptr;
  }
  if (payload_size >= 0)
    s->req.payload = zero_payload(payload_size);
}

static void free_streaming_request(streaming_request *s) {
  free_payload(s->req.payload);
  s->req.payload = NULL;
}

static void free_msg(void *msg) {
  if (msg)
    protobuf_c_message_free_unpacked((ProtobufCMessage *)msg, NULL);
}

/* Reads responses until the end of |call|, counting them. */
static int drain(cgrpc_call *call) {
  Grpc__Testing__StreamingOutputCallResponse *resp;
  int n = 0;
  while (grpc__testing__test_service__full_duplex_call__read(call, &resp) ==
         1) {
    free_msg(resp);
    n++;
  }
  return n;
}

/* ---- cases -------------------------------------------------------------- */

static int empty_unary(client *c) {
  Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT, *reply = NULL;
  cgrpc_status st = {0};
  cgrpc_call_options opts = call_opts(CALL_TIMEOUT_MS, NULL);
  cgrpc_status_code code = grpc__testing__test_service__empty_call__call(
      c->channel, &req, &reply, &opts, &st);
  int ok = check_code(c, "EmptyCall", code, &st, CGRPC_STATUS_OK) &&
           (reply != NULL || fail(c, "EmptyCall: OK without a response"));
  free_msg(reply);
  cgrpc_status_clear(&st);
  return ok;
}

static int large_unary(client *c) {
  Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
  Grpc__Testing__SimpleResponse *reply = NULL;
  cgrpc_status st = {0};
  cgrpc_call_options opts = call_opts(CALL_TIMEOUT_MS, NULL);
  cgrpc_status_code code;
  int ok;

  req.response_size = 314159;
  req.payload = zero_payload(271828);
  code = grpc__testing__test_service__unary_call__call(c->channel, &req,
                                                       &reply, &opts, &st);
  ok = check_code(c, "UnaryCall", code, &st, CGRPC_STATUS_OK) &&
       check_payload(c, "UnaryCall response", reply->payload, 314159);
  free_payload(req.payload);
  free_msg(reply);
  cgrpc_status_clear(&st);
  return ok;
}

/* Half-closes StreamingInputCall |call| (its writes went well when |ok|),
 * checks for OK and |want| aggregated bytes, and drops the call. */
static int finish_input(client *c, cgrpc_call *call, int ok, int32_t want) {
  Grpc__Testing__StreamingInputCallResponse *reply = NULL;
  cgrpc_status st = {0};
  cgrpc_status_code code =
      grpc__testing__test_service__streaming_input_call__finish(call, &reply,
                                                                &st);
  ok = check_code(c, "StreamingInputCall", code, &st, CGRPC_STATUS_OK) && ok;
  if (ok && reply->aggregated_payload_size != want)
    ok = fail(c, "aggregated_payload_size %d, want %d",
              (int)reply->aggregated_payload_size, (int)want);
  free_msg(reply);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  return ok;
}

static int client_streaming(client *c) {
  cgrpc_call_options opts = call_opts(CALL_TIMEOUT_MS, NULL);
  cgrpc_call *call = NULL;
  int i, rv, ok = 1;

  rv = grpc__testing__test_service__streaming_input_call__open(c->channel,
                                                               &opts, &call);
  if (rv != 0)
    return fail(c, "open StreamingInputCall: %s", cgrpc_strerror(rv));
  for (i = 0; i < N_SIZES && ok; i++) {
    Grpc__Testing__StreamingInputCallRequest req =
        GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
    req.payload = zero_payload(REQUEST_SIZES[i]);
    rv = grpc__testing__test_service__streaming_input_call__write(call, &req);
    free_payload(req.payload);
    if (rv != 0)
      ok = fail(c, "write request %d: %s", i, cgrpc_strerror(rv));
  }
  return finish_input(c, call, ok, 74922);
}

static int server_streaming(client *c) {
  Grpc__Testing__StreamingOutputCallRequest req =
      GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
  Grpc__Testing__ResponseParameters params[N_SIZES], *pp[N_SIZES];
  Grpc__Testing__StreamingOutputCallResponse *resp;
  cgrpc_call_options opts = call_opts(CALL_TIMEOUT_MS, NULL);
  cgrpc_status st = {0};
  cgrpc_status_code code;
  cgrpc_call *call = NULL;
  int i, n = 0, rv, ok = 1;
  char what[64];

  for (i = 0; i < N_SIZES; i++) {
    grpc__testing__response_parameters__init(&params[i]);
    params[i].size = RESPONSE_SIZES[i];
    pp[i] = &params[i];
  }
  req.n_response_parameters = N_SIZES;
  req.response_parameters = pp;
  rv = grpc__testing__test_service__streaming_output_call__open(
      c->channel, &req, &opts, &call);
  if (rv != 0)
    return fail(c, "open StreamingOutputCall: %s", cgrpc_strerror(rv));
  while ((rv = grpc__testing__test_service__streaming_output_call__read(
              call, &resp)) == 1) {
    if (n < N_SIZES) {
      snprintf(what, sizeof what, "response %d", n);
      ok = ok && check_payload(c, what, resp->payload, RESPONSE_SIZES[n]);
    }
    n++;
    free_msg(resp);
  }
  code = cgrpc_call_finish(call, &st);
  ok = check_code(c, "StreamingOutputCall", code, &st, CGRPC_STATUS_OK) && ok;
  if (ok && n != N_SIZES)
    ok = fail(c, "%d responses, want %d", n, N_SIZES);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  return ok;
}

static int ping_pong(client *c) {
  cgrpc_call_options opts = call_opts(CALL_TIMEOUT_MS, NULL);
  Grpc__Testing__StreamingOutputCallResponse *resp;
  cgrpc_status st = {0};
  cgrpc_status_code code;
  cgrpc_call *call = NULL;
  int i, rv, ok = 1, extra;
  char what[64];

  rv = grpc__testing__test_service__full_duplex_call__open(c->channel, &opts,
                                                           &call);
  if (rv != 0)
    return fail(c, "open FullDuplexCall: %s", cgrpc_strerror(rv));
  for (i = 0; i < N_SIZES && ok; i++) {
    streaming_request s;
    make_streaming_request(&s, RESPONSE_SIZES[i], REQUEST_SIZES[i]);
    rv = grpc__testing__test_service__full_duplex_call__write(call, &s.req);
    free_streaming_request(&s);
    if (rv != 0) {
      ok = fail(c, "write request %d: %s", i, cgrpc_strerror(rv));
      break;
    }
    rv = grpc__testing__test_service__full_duplex_call__read(call, &resp);
    if (rv != 1) {
      ok = fail(c, "read response %d: %s", i,
                rv == 0 ? "the stream ended" : cgrpc_strerror(rv));
      break;
    }
    snprintf(what, sizeof what, "response %d", i);
    ok = check_payload(c, what, resp->payload, RESPONSE_SIZES[i]);
    free_msg(resp);
  }
  cgrpc_call_writes_done(call);
  extra = drain(call);
  code = cgrpc_call_finish(call, &st);
  ok = check_code(c, "FullDuplexCall", code, &st, CGRPC_STATUS_OK) && ok;
  if (ok && extra != 0)
    ok = fail(c, "%d responses after the last request's", extra);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  return ok;
}

static int empty_stream(client *c) {
  cgrpc_call_options opts = call_opts(CALL_TIMEOUT_MS, NULL);
  cgrpc_status st = {0};
  cgrpc_status_code code;
  cgrpc_call *call = NULL;
  int rv, n, ok;

  rv = grpc__testing__test_service__full_duplex_call__open(c->channel, &opts,
                                                           &call);
  if (rv != 0)
    return fail(c, "open FullDuplexCall: %s", cgrpc_strerror(rv));
  rv = cgrpc_call_writes_done(call);
  ok = rv == 0 || fail(c, "writes_done: %s", cgrpc_strerror(rv));
  n = drain(call);
  code = cgrpc_call_finish(call, &st);
  ok = check_code(c, "FullDuplexCall", code, &st, CGRPC_STATUS_OK) && ok;
  if (ok && n != 0)
    ok = fail(c, "%d responses, want none", n);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  return ok;
}

static int cancel_after_begin(client *c) {
  cgrpc_call_options opts = call_opts(CALL_TIMEOUT_MS, NULL);
  Grpc__Testing__StreamingInputCallResponse *reply = NULL;
  cgrpc_status st = {0};
  cgrpc_status_code code;
  cgrpc_call *call = NULL;
  int rv, ok;

  rv = grpc__testing__test_service__streaming_input_call__open(c->channel,
                                                               &opts, &call);
  if (rv != 0)
    return fail(c, "open StreamingInputCall: %s", cgrpc_strerror(rv));
  cgrpc_call_cancel(call);
  code = grpc__testing__test_service__streaming_input_call__finish(call, &reply,
                                                                   &st);
  ok = check_code(c, "StreamingInputCall", code, &st, CGRPC_STATUS_CANCELLED);
  free_msg(reply);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  return ok;
}

static int cancel_after_first_response(client *c) {
  cgrpc_call_options opts = call_opts(CALL_TIMEOUT_MS, NULL);
  Grpc__Testing__StreamingOutputCallResponse *resp = NULL;
  cgrpc_status st = {0};
  cgrpc_status_code code;
  cgrpc_call *call = NULL;
  streaming_request s;
  int rv, ok = 1;

  rv = grpc__testing__test_service__full_duplex_call__open(c->channel, &opts,
                                                           &call);
  if (rv != 0)
    return fail(c, "open FullDuplexCall: %s", cgrpc_strerror(rv));
  make_streaming_request(&s, 31415, 27182);
  rv = grpc__testing__test_service__full_duplex_call__write(call, &s.req);
  free_streaming_request(&s);
  if (rv != 0)
    ok = fail(c, "write: %s", cgrpc_strerror(rv));
  if (ok) {
    rv = grpc__testing__test_service__full_duplex_call__read(call, &resp);
    if (rv != 1)
      ok = fail(c, "read the first response: %s",
                rv == 0 ? "the stream ended" : cgrpc_strerror(rv));
    else
      ok = check_payload(c, "the first response", resp->payload, 31415);
    free_msg(resp);
  }
  cgrpc_call_cancel(call);
  code = cgrpc_call_finish(call, &st);
  ok = check_code(c, "FullDuplexCall after cancel", code, &st,
                  CGRPC_STATUS_CANCELLED) &&
       ok;
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  return ok;
}

static int timeout_on_sleeping_server(client *c) {
  cgrpc_call_options opts = call_opts(1, NULL);
  cgrpc_status st = {0};
  cgrpc_status_code code;
  cgrpc_call *call = NULL;
  streaming_request s;
  int rv, n, ok = 1;

  rv = grpc__testing__test_service__full_duplex_call__open(c->channel, &opts,
                                                           &call);
  if (rv != 0)
    return fail(c, "open FullDuplexCall: %s", cgrpc_strerror(rv));
  make_streaming_request(&s, -1, 27182);
  rv = grpc__testing__test_service__full_duplex_call__write(call, &s.req);
  free_streaming_request(&s);
  /* The deadline may pass before the write: then the call has ended. */
  if (rv != 0 && rv != CGRPC_ERR_CLOSED)
    ok = fail(c, "write: %s", cgrpc_strerror(rv));
  n = drain(call);
  code = cgrpc_call_finish(call, &st);
  ok = check_code(c, "FullDuplexCall with a 1 ms timeout", code, &st,
                  CGRPC_STATUS_DEADLINE_EXCEEDED) &&
       ok;
  if (ok && n != 0)
    ok = fail(c, "%d responses, want none", n);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  return ok;
}

/* ---- compression ---- */

/* A unary call whose outcome, reply and the reply's compressed flag are
 * taken in the done callback (the blocking stub has no call to ask). */
typedef struct unary_wait {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int done;
  cgrpc_status status;
  ProtobufCMessage *reply;
  int compressed;
} unary_wait;

static void unary_wait_done(cgrpc_call *call, const cgrpc_status *status,
                            ProtobufCMessage *reply, void *user_data) {
  unary_wait *w = user_data;
  (void)status;
  pthread_mutex_lock(&w->lock);
  cgrpc_call_take_status(call, &w->status);
  w->reply = reply;
  w->compressed = cgrpc_call_last_message_compressed(call);
  w->done = 1;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->lock);
}

/* UnaryCall with |req| and |opts|; returns the code and sets |*reply|
 * (free_msg()), |*compressed| and |st| (cgrpc_status_clear()).  The call's
 * deadline bounds the wait. */
static cgrpc_status_code unary_flagged(client *c,
                                       const Grpc__Testing__SimpleRequest *req,
                                       const cgrpc_call_options *opts,
                                       Grpc__Testing__SimpleResponse **reply,
                                       int *compressed, cgrpc_status *st) {
  unary_wait w;
  int rv;
  memset(&w, 0, sizeof w);
  pthread_mutex_init(&w.lock, NULL);
  pthread_cond_init(&w.cond, NULL);
  *reply = NULL;
  *compressed = 0;
  rv = grpc__testing__test_service__unary_call__start(
      c->channel, req, opts, unary_wait_done, &w, NULL);
  if (rv != 0) {
    memset(st, 0, sizeof *st);
    st->code = CGRPC_STATUS_INTERNAL;
    fail(c, "starting UnaryCall: %s", cgrpc_strerror(rv));
  } else {
    pthread_mutex_lock(&w.lock);
    while (!w.done)
      pthread_cond_wait(&w.cond, &w.lock);
    pthread_mutex_unlock(&w.lock);
    *st = w.status;
    *reply = (Grpc__Testing__SimpleResponse *)w.reply;
    *compressed = w.compressed;
  }
  pthread_mutex_destroy(&w.lock);
  pthread_cond_destroy(&w.cond);
  return st->code;
}

static cgrpc_call_options compress_opts(int compression) {
  cgrpc_call_options opts = call_opts(CALL_TIMEOUT_MS, NULL);
  opts.compression = compression;
  return opts;
}

/* The probe (expect_compressed but sent plain: INVALID_ARGUMENT), then a
 * compressed and a plain request that say what they are. */
static int client_compressed_unary(client *c) {
  static const struct {
    const char *what;
    int expect, compression;
    cgrpc_status_code want;
  } steps[] = {
      {"the probe (expect_compressed, sent uncompressed)", 1,
       CGRPC_COMPRESS_IDENTITY, CGRPC_STATUS_INVALID_ARGUMENT},
      {"a compressed request", 1, CGRPC_COMPRESS_GZIP, CGRPC_STATUS_OK},
      {"an uncompressed request", 0, CGRPC_COMPRESS_IDENTITY,
       CGRPC_STATUS_OK}};
  size_t i;
  int ok = 1;
  for (i = 0; i < 3 && ok; i++) {
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__BoolValue expect = GRPC__TESTING__BOOL_VALUE__INIT;
    Grpc__Testing__SimpleResponse *reply = NULL;
    cgrpc_call_options opts = compress_opts(steps[i].compression);
    cgrpc_status st = {0};
    cgrpc_status_code code;
    int compressed;
    expect.value = steps[i].expect;
    req.expect_compressed = &expect;
    req.response_size = 314159;
    req.payload = zero_payload(271828);
    code = unary_flagged(c, &req, &opts, &reply, &compressed, &st);
    ok = check_code(c, steps[i].what, code, &st, steps[i].want);
    if (ok && steps[i].want == CGRPC_STATUS_OK)
      ok = check_payload(c, steps[i].what, reply->payload, 314159);
    free_payload(req.payload);
    free_msg(reply);
    cgrpc_status_clear(&st);
  }
  return ok;
}

/* response_compressed true and false; the reply's flag must follow. */
static int server_compressed_unary(client *c) {
  int i, ok = 1;
  for (i = 1; i >= 0 && ok; i--) {
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__BoolValue want = GRPC__TESTING__BOOL_VALUE__INIT;
    Grpc__Testing__SimpleResponse *reply = NULL;
    cgrpc_call_options opts = call_opts(CALL_TIMEOUT_MS, NULL);
    cgrpc_status st = {0};
    cgrpc_status_code code;
    const char *what = i ? "response_compressed true" : "response_compressed "
                                                        "false";
    int compressed;
    want.value = i;
    req.response_compressed = &want;
    req.response_size = 314159;
    req.payload = zero_payload(271828);
    code = unary_flagged(c, &req, &opts, &reply, &compressed, &st);
    ok = check_code(c, what, code, &st, CGRPC_STATUS_OK) &&
         check_payload(c, what, reply->payload, 314159);
    if (ok && compressed != i)
      ok = fail(c, "%s: the response's compressed flag is %d", what,
                compressed);
    free_payload(req.payload);
    free_msg(reply);
    cgrpc_status_clear(&st);
  }
  return ok;
}

/* StreamingInputCall: the probe, then one compressed and one plain
 * message in one call (CGRPC_WRITE_NO_COMPRESS). */
static int client_compressed_streaming(client *c) {
  Grpc__Testing__StreamingInputCallResponse *reply = NULL;
  cgrpc_call_options plain = compress_opts(CGRPC_COMPRESS_IDENTITY);
  cgrpc_call_options gzip = compress_opts(CGRPC_COMPRESS_GZIP);
  cgrpc_status st = {0};
  cgrpc_status_code code;
  cgrpc_call *call = NULL;
  int i, rv, ok = 1;

  /* The probe. */
  rv = grpc__testing__test_service__streaming_input_call__open(c->channel,
                                                               &plain, &call);
  if (rv != 0)
    return fail(c, "open StreamingInputCall: %s", cgrpc_strerror(rv));
  {
    Grpc__Testing__StreamingInputCallRequest req =
        GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
    Grpc__Testing__BoolValue expect = GRPC__TESTING__BOOL_VALUE__INIT;
    expect.value = 1;
    req.expect_compressed = &expect;
    req.payload = zero_payload(27182);
    rv = grpc__testing__test_service__streaming_input_call__write(call, &req);
    free_payload(req.payload);
    /* The server may fail the call at once: then the write is refused. */
    if (rv != 0 && rv != CGRPC_ERR_CLOSED)
      ok = fail(c, "probe: write: %s", cgrpc_strerror(rv));
  }
  code = grpc__testing__test_service__streaming_input_call__finish(call, &reply,
                                                                   &st);
  ok = ok && check_code(c, "the probe (expect_compressed, sent uncompressed)",
                        code, &st, CGRPC_STATUS_INVALID_ARGUMENT);
  free_msg(reply);
  reply = NULL;
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  if (!ok)
    return 0;

  rv = grpc__testing__test_service__streaming_input_call__open(c->channel,
                                                               &gzip, &call);
  if (rv != 0)
    return fail(c, "open StreamingInputCall: %s", cgrpc_strerror(rv));
  for (i = 0; i < 2 && ok; i++) {
    Grpc__Testing__StreamingInputCallRequest req =
        GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
    Grpc__Testing__BoolValue expect = GRPC__TESTING__BOOL_VALUE__INIT;
    expect.value = i == 0;
    req.expect_compressed = &expect;
    req.payload = zero_payload(i == 0 ? 27182 : 45904);
    rv = cgrpc_call_write_flags(call, &req.base,
                                i == 0 ? 0 : CGRPC_WRITE_NO_COMPRESS);
    free_payload(req.payload);
    if (rv != 0)
      ok = fail(c, "write request %d: %s", i, cgrpc_strerror(rv));
  }
  return finish_input(c, call, ok, 73086);
}

/* StreamingOutputCall: a compressed and an uncompressed response, each
 * with the flag its parameters asked for. */
static int server_compressed_streaming(client *c) {
  static const int32_t sizes[2] = {31415, 92653};
  Grpc__Testing__StreamingOutputCallRequest req =
      GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
  Grpc__Testing__ResponseParameters params[2], *pp[2];
  Grpc__Testing__BoolValue flags[2];
  Grpc__Testing__StreamingOutputCallResponse *resp;
  cgrpc_call_options opts = call_opts(CALL_TIMEOUT_MS, NULL);
  cgrpc_status st = {0};
  cgrpc_status_code code;
  cgrpc_call *call = NULL;
  int i, n = 0, rv, ok = 1;
  char what[64];

  for (i = 0; i < 2; i++) {
    grpc__testing__response_parameters__init(&params[i]);
    grpc__testing__bool_value__init(&flags[i]);
    flags[i].value = i == 0;
    params[i].compressed = &flags[i];
    params[i].size = sizes[i];
    pp[i] = &params[i];
  }
  req.n_response_parameters = 2;
  req.response_parameters = pp;
  rv = grpc__testing__test_service__streaming_output_call__open(
      c->channel, &req, &opts, &call);
  if (rv != 0)
    return fail(c, "open StreamingOutputCall: %s", cgrpc_strerror(rv));
  while ((rv = grpc__testing__test_service__streaming_output_call__read(
              call, &resp)) == 1) {
    if (n < 2) {
      int compressed = cgrpc_call_last_message_compressed(call);
      snprintf(what, sizeof what, "response %d", n);
      ok = ok && check_payload(c, what, resp->payload, sizes[n]);
      if (ok && compressed != (n == 0))
        ok = fail(c, "response %d: compressed flag %d, want %d", n,
                  compressed, n == 0);
    }
    n++;
    free_msg(resp);
  }
  code = cgrpc_call_finish(call, &st);
  ok = check_code(c, "StreamingOutputCall", code, &st, CGRPC_STATUS_OK) && ok;
  if (ok && n != 2)
    ok = fail(c, "%d responses, want 2", n);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  return ok;
}

static int check_status(client *c, const char *what, cgrpc_status_code code,
                        const cgrpc_status *st, const char *message) {
  if (!check_code(c, what, code, st, CGRPC_STATUS_UNKNOWN))
    return 0;
  if (st->message == NULL || strcmp(st->message, message) != 0)
    return fail(c, "%s: message \"%s\", want \"%s\"", what,
                str_or_none(st->message), message);
  return 1;
}

/* UnaryCall and FullDuplexCall with response_status {2, message}. */
static int status_echo(client *c, const char *message) {
  Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
  Grpc__Testing__EchoStatus es = GRPC__TESTING__ECHO_STATUS__INIT;
  Grpc__Testing__SimpleResponse *reply = NULL;
  cgrpc_call_options opts = call_opts(CALL_TIMEOUT_MS, NULL);
  cgrpc_status st = {0};
  cgrpc_status_code code;
  cgrpc_call *call = NULL;
  streaming_request s;
  int rv, ok;

  es.code = 2;
  es.message = (char *)message;
  req.response_status = &es;
  code = grpc__testing__test_service__unary_call__call(c->channel, &req,
                                                       &reply, &opts, &st);
  ok = check_status(c, "UnaryCall", code, &st, message);
  free_msg(reply);
  cgrpc_status_clear(&st);
  if (!ok)
    return 0;

  rv = grpc__testing__test_service__full_duplex_call__open(c->channel, &opts,
                                                           &call);
  if (rv != 0)
    return fail(c, "open FullDuplexCall: %s", cgrpc_strerror(rv));
  make_streaming_request(&s, -1, -1);
  s.req.response_status = &es;
  rv = grpc__testing__test_service__full_duplex_call__write(call, &s.req);
  free_streaming_request(&s);
  if (rv != 0 && rv != CGRPC_ERR_CLOSED)
    ok = fail(c, "FullDuplexCall: write: %s", cgrpc_strerror(rv));
  cgrpc_call_writes_done(call);
  drain(call);
  code = cgrpc_call_finish(call, &st);
  ok = check_status(c, "FullDuplexCall", code, &st, message) && ok;
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  return ok;
}

static int status_code_and_message(client *c) {
  return status_echo(c, "test status message");
}

static int special_status_message(client *c) {
  return status_echo(c, SPECIAL_MESSAGE);
}

/* Checks that |initial| holds the echoed ASCII key. */
static int check_initial(client *c, const char *what,
                         const cgrpc_metadata_array *initial) {
  const char *v = cgrpc_metadata_array_get(initial, ECHO_INITIAL_KEY, NULL);
  if (v == NULL || strcmp(v, ECHO_INITIAL_VALUE) != 0)
    return fail(c, "%s: initial metadata %s is \"%s\", want \"%s\"", what,
                ECHO_INITIAL_KEY, str_or_none(v), ECHO_INITIAL_VALUE);
  return 1;
}

/* Checks the echoed metadata: |initial| holds the ASCII key and |trailing|
 * the binary one. */
static int check_echoed(client *c, const char *what,
                        const cgrpc_metadata_array *initial,
                        const cgrpc_metadata_array *trailing) {
  const char *v;
  size_t len = 0;
  if (!check_initial(c, what, initial))
    return 0;
  v = cgrpc_metadata_array_get(trailing, ECHO_TRAILING_KEY, &len);
  if (v == NULL)
    return fail(c, "%s: no trailing metadata %s (%zu trailing entries)", what,
                ECHO_TRAILING_KEY, cgrpc_metadata_array_count(trailing));
  if (len != sizeof ECHO_TRAILING_VALUE ||
      memcmp(v, ECHO_TRAILING_VALUE, len) != 0)
    return fail(c, "%s: trailing metadata %s has %zu bytes (first 0x%02x), "
                   "want ab ab ab",
                what, ECHO_TRAILING_KEY, len, len ? (uint8_t)v[0] : 0);
  return 1;
}

static int custom_metadata(client *c) {
  Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
  Grpc__Testing__SimpleResponse *reply = NULL;
  Grpc__Testing__StreamingOutputCallResponse *resp = NULL;
  cgrpc_metadata_array *md = NULL;
  cgrpc_call_options opts;
  cgrpc_status st = {0};
  cgrpc_status_code code;
  cgrpc_call *call = NULL;
  streaming_request s;
  int rv, n, ok;

  if (cgrpc_metadata_array_new(&md) != 0 ||
      cgrpc_metadata_array_add(md, ECHO_INITIAL_KEY, ECHO_INITIAL_VALUE) != 0 ||
      cgrpc_metadata_array_add_bin(md, ECHO_TRAILING_KEY, ECHO_TRAILING_VALUE,
                                   sizeof ECHO_TRAILING_VALUE) != 0) {
    cgrpc_metadata_array_del(md);
    return fail(c, "building the request metadata failed");
  }
  opts = call_opts(CALL_TIMEOUT_MS, md);

  /* 1. UnaryCall. */
  req.response_size = 314159;
  req.payload = zero_payload(271828);
  code = grpc__testing__test_service__unary_call__call(c->channel, &req,
                                                       &reply, &opts, &st);
  free_payload(req.payload);
  ok = check_code(c, "UnaryCall", code, &st, CGRPC_STATUS_OK) &&
       check_payload(c, "UnaryCall response", reply->payload, 314159) &&
       check_echoed(c, "UnaryCall", st.initial_metadata,
                    st.trailing_metadata);
  free_msg(reply);
  cgrpc_status_clear(&st);

  /* 2. FullDuplexCall, half-closed after one request. */
  rv = grpc__testing__test_service__full_duplex_call__open(c->channel, &opts,
                                                           &call);
  cgrpc_metadata_array_del(md); /* read by open */
  if (rv != 0)
    return fail(c, "open FullDuplexCall: %s", cgrpc_strerror(rv));
  make_streaming_request(&s, 314159, 271828);
  rv = grpc__testing__test_service__full_duplex_call__write(call, &s.req);
  free_streaming_request(&s);
  if (rv != 0)
    ok = fail(c, "FullDuplexCall: write: %s", cgrpc_strerror(rv));
  cgrpc_call_writes_done(call);
  rv = grpc__testing__test_service__full_duplex_call__read(call, &resp);
  if (rv != 1)
    ok = fail(c, "FullDuplexCall: read: %s",
              rv == 0 ? "the stream ended" : cgrpc_strerror(rv));
  else
    ok = check_payload(c, "FullDuplexCall response", resp->payload, 314159) &&
         ok;
  free_msg(resp);
  /* The initial metadata as the call offers it while open (it has arrived
   * with the response); cgrpc_call_finish() moves it into the status. */
  if (ok)
    ok = check_initial(c, "FullDuplexCall (cgrpc_call_initial_metadata)",
                       cgrpc_call_initial_metadata(call));
  n = drain(call);
  code = cgrpc_call_finish(call, &st);
  ok = check_code(c, "FullDuplexCall", code, &st, CGRPC_STATUS_OK) && ok;
  if (ok && n != 0)
    ok = fail(c, "FullDuplexCall: %d responses, want 1", n + 1);
  if (ok)
    ok = check_echoed(c, "FullDuplexCall (status)", st.initial_metadata,
                      st.trailing_metadata);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  return ok;
}

static int unimplemented_method(client *c) {
  Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT, *reply = NULL;
  cgrpc_call_options opts = call_opts(CALL_TIMEOUT_MS, NULL);
  cgrpc_status st = {0};
  cgrpc_status_code code = grpc__testing__test_service__unimplemented_call__call(
      c->channel, &req, &reply, &opts, &st);
  int ok = check_code(c, "TestService/UnimplementedCall", code, &st,
                      CGRPC_STATUS_UNIMPLEMENTED);
  free_msg(reply);
  cgrpc_status_clear(&st);
  return ok;
}

static int unimplemented_service(client *c) {
  Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT, *reply = NULL;
  cgrpc_call_options opts = call_opts(CALL_TIMEOUT_MS, NULL);
  cgrpc_status st = {0};
  cgrpc_status_code code =
      grpc__testing__unimplemented_service__unimplemented_call__call(
          c->channel, &req, &reply, &opts, &st);
  int ok = check_code(c, "UnimplementedService/UnimplementedCall", code, &st,
                      CGRPC_STATUS_UNIMPLEMENTED);
  free_msg(reply);
  cgrpc_status_clear(&st);
  return ok;
}

/* ---- main --------------------------------------------------------------- */

static const struct {
  const char *name;
  int (*run)(client *c);
} CASES[] = {
    {"empty_unary", empty_unary},
    {"large_unary", large_unary},
    {"client_streaming", client_streaming},
    {"server_streaming", server_streaming},
    {"ping_pong", ping_pong},
    {"empty_stream", empty_stream},
    {"cancel_after_begin", cancel_after_begin},
    {"cancel_after_first_response", cancel_after_first_response},
    {"timeout_on_sleeping_server", timeout_on_sleeping_server},
    {"status_code_and_message", status_code_and_message},
    {"special_status_message", special_status_message},
    {"custom_metadata", custom_metadata},
    {"unimplemented_method", unimplemented_method},
    {"unimplemented_service", unimplemented_service},
    {"client_compressed_unary", client_compressed_unary},
    {"server_compressed_unary", server_compressed_unary},
    {"client_compressed_streaming", client_compressed_streaming},
    {"server_compressed_streaming", server_compressed_streaming},
};
#define N_CASES (sizeof CASES / sizeof CASES[0])

/* Errors to stderr; CGRPC_TRACE=1 shows everything. */
static void log_errors(cgrpc_log_level level, const char *msg,
                       void *user_data) {
  if (level >= CGRPC_LOG_ERROR)
    cgrpc_log_stderr(level, msg, user_data);
}

static void usage(const char *argv0) {
  size_t i;
  fprintf(stderr,
          "usage: %s --server_host=HOST --server_port=PORT --test_case=NAME\n"
          "          [--use_tls=false|true] [--use_test_ca=false|true]\n"
          "          [--ca_file=PEM] [--server_host_override=NAME]\n"
          "          [--access_token=T]\n"
          "cases: all",
          argv0);
  for (i = 0; i < N_CASES; i++)
    fprintf(stderr, " %s", CASES[i].name);
  fputc('\n', stderr);
}

/* Parses "true" or "false" after a flag's '=' into |*out|. */
static int parse_bool(const char *arg, const char *value, int *out) {
  if (strcmp(value, "true") == 0 || strcmp(value, "false") == 0) {
    *out = value[0] == 't';
    return 0;
  }
  fprintf(stderr, "interop_client: bad argument \"%s\"\n", arg);
  return -1;
}

/* The TLS settings of |opts| from the flags.  Returns 0 or an exit code. */
static int set_tls(cgrpc_channel_options *opts, int use_test_ca,
                   const char *ca_file, const char *host_override) {
  cgrpc_channel_credentials *creds = NULL;
  int rv = cgrpc_channel_credentials_new(&creds);
  if (rv == 0 && ca_file != NULL)
    rv = cgrpc_channel_credentials_set_root_certs_file(creds, ca_file);
  else if (rv == 0 && use_test_ca)
    rv = cgrpc_channel_credentials_set_root_certs_pem(
        creds, interop_testdata_ca_pem, strlen(interop_testdata_ca_pem));
  if (rv == 0)
    cgrpc_channel_options_set_credentials(opts, creds);
  if (rv == 0 && host_override != NULL && host_override[0] != '\0')
    rv = cgrpc_channel_options_set_ssl_target_name_override(opts,
                                                            host_override);
  cgrpc_channel_credentials_del(creds);
  if (rv != 0) {
    fprintf(stderr, "interop_client: TLS settings%s%s: %s\n",
            ca_file ? " with " : "", ca_file ? ca_file : "",
            cgrpc_strerror(rv));
    return 1;
  }
  return 0;
}

/* The call credentials of --access_token=|token|.  Returns 0 or an exit
 * code. */
static int set_access_token(cgrpc_channel_options *opts, const char *token) {
  cgrpc_call_credentials *creds = NULL;
  int rv = cgrpc_call_credentials_new_access_token(&creds, token);
  if (rv == 0)
    cgrpc_channel_options_set_call_credentials(opts, creds);
  cgrpc_call_credentials_del(creds);
  if (rv != 0) {
    fprintf(stderr, "interop_client: --access_token: %s\n", cgrpc_strerror(rv));
    return rv == CGRPC_ERR_INVALID_ARGUMENT ? 2 : 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  const char *host = "localhost", *test_case = NULL;
  const char *ca_file = NULL, *host_override = NULL, *access_token = NULL;
  cgrpc_channel_options *copts = NULL;
  long port = -1;
  char target[300];
  client c;
  size_t i;
  int rv, failures = 0, ran = 0, use_tls = 0, use_test_ca = 0;

  for (i = 1; i < (size_t)argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--server_host=", 14) == 0) {
      host = a + 14;
    } else if (strncmp(a, "--server_port=", 14) == 0) {
      char *end;
      port = strtol(a + 14, &end, 10);
      if (*end != '\0' || end == a + 14 || port <= 0 || port > 65535) {
        fprintf(stderr, "interop_client: bad port \"%s\"\n", a + 14);
        return 2;
      }
    } else if (strncmp(a, "--test_case=", 12) == 0) {
      test_case = a + 12;
    } else if (strncmp(a, "--use_tls=", 10) == 0) {
      if (parse_bool(a, a + 10, &use_tls) != 0)
        return 2;
    } else if (strncmp(a, "--use_test_ca=", 14) == 0) {
      if (parse_bool(a, a + 14, &use_test_ca) != 0)
        return 2;
    } else if (strncmp(a, "--ca_file=", 10) == 0) {
      ca_file = a + 10;
    } else if (strncmp(a, "--server_host_override=", 23) == 0) {
      host_override = a + 23;
    } else if (strncmp(a, "--access_token=", 15) == 0) {
      access_token = a + 15;
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(argv[0]);
      return 0;
    } else {
      fprintf(stderr, "interop_client: bad argument \"%s\"\n", a);
      usage(argv[0]);
      return 2;
    }
  }
  if (port < 0 || test_case == NULL || host[0] == '\0') {
    usage(argv[0]);
    return 2;
  }
  if (access_token != NULL && !use_tls) {
    fprintf(stderr, "interop_client: --access_token needs --use_tls=true "
                    "(call credentials are sent over TLS only)\n");
    return 2;
  }
  if (strcmp(test_case, "all") != 0) {
    for (i = 0; i < N_CASES && strcmp(CASES[i].name, test_case) != 0; i++)
      ;
    if (i == N_CASES) {
      fprintf(stderr, "interop_client: unknown test case \"%s\"\n", test_case);
      usage(argv[0]);
      return 2;
    }
  }
  /* A bare IPv6 address needs brackets before the port. */
  if (strchr(host, ':') != NULL && host[0] != '[')
    snprintf(target, sizeof target, "[%s]:%ld", host, port);
  else
    snprintf(target, sizeof target, "%s:%ld", host, port);

  memset(&c, 0, sizeof c);
  rv = cgrpc_channel_options_new(&copts);
  if (rv == 0 && use_tls &&
      (rv = set_tls(copts, use_test_ca, ca_file, host_override)) != 0) {
    cgrpc_channel_options_del(copts);
    return rv;
  }
  if (rv == 0 && access_token != NULL &&
      (rv = set_access_token(copts, access_token)) != 0) {
    cgrpc_channel_options_del(copts);
    return rv;
  }
  if (rv == 0) {
    if (getenv("CGRPC_TRACE") == NULL)
      cgrpc_channel_options_set_log(copts, log_errors, NULL);
    rv = cgrpc_channel_new(&c.channel, target, copts);
    cgrpc_channel_options_del(copts);
  }
  if (rv != 0) {
    fprintf(stderr, "interop_client: channel to %s: %s\n", target,
            cgrpc_strerror(rv));
    return 1;
  }

  for (i = 0; i < N_CASES; i++) {
    int64_t start;
    int ok;
    if (strcmp(test_case, "all") != 0 && strcmp(test_case, CASES[i].name) != 0)
      continue;
    c.why[0] = '\0';
    start = now_ms();
    ok = CASES[i].run(&c);
    if (ok && c.why[0] != '\0')
      ok = 0; /* a check failed on the way */
    if (ok) {
      printf("PASS: %s (%lld ms)\n", CASES[i].name,
             (long long)(now_ms() - start));
    } else {
      printf("FAIL: %s: %s\n", CASES[i].name,
             c.why[0] ? c.why : "failed without a reason");
      failures++;
    }
    fflush(stdout);
    ran++;
  }
  cgrpc_channel_del(c.channel);
  if (ran > 1)
    printf("%d of %d cases passed\n", ran - failures, ran);
  return failures ? 1 : 0;
}
