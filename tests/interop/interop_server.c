/* SPDX-License-Identifier: MIT */
/*
 * grpc.testing.TestService on cgrpc: the server of gRPC's interop test
 * descriptions (doc/interop-test-descriptions.md in grpc/grpc).
 *
 *   interop_server --port=N [--use_tls=false|true] [--tls_cert_file=PEM]
 *                  [--tls_key_file=PEM] [--max_workers=N]
 *                  [--require_token=T]
 *
 * Server features, as the descriptions name them:
 *   EmptyCall            answers Empty.
 *   UnaryCall            a payload of response_size zero bytes; a
 *                        response_status with a nonzero code ends the call
 *                        with that code and message instead; with
 *                        fill_server_id, server_id is --server_id's name.
 *   CacheableUnaryCall   a payload holding the current time in ns.
 *   StreamingOutputCall  one response per response_parameters entry, each
 *                        after sleeping interval_us, then OK, or the
 *                        response_status when it has a nonzero code (after
 *                        the responses, as grpc's interop servers do: an
 *                        error that follows messages).
 *   StreamingInputCall   after the client half-closes, the sum of the request
 *                        payload sizes.
 *   FullDuplexCall       answers each request as it arrives; a request with a
 *                        nonzero response_status ends the call with it.
 *   HalfDuplexCall       buffers the requests until the client half-closes,
 *                        then answers them in order.
 *   UnimplementedCall    left NULL: UNIMPLEMENTED (as is the whole
 *                        UnimplementedService, which is not registered).
 *   CompressedRequest    a request with expect_compressed must have come
 *                        compressed when it says true, uncompressed when it
 *                        says false (the compressed flag of the message, as
 *                        grpc++'s interop server checks it); otherwise
 *                        INVALID_ARGUMENT.
 *   CompressedResponse   response_compressed: the reply goes gzip-compressed
 *                        (true) or uncompressed (false); in the streaming
 *                        methods, response_parameters' compressed does so
 *                        per message (gzip for the call as soon as one asks
 *                        for it, CGRPC_WRITE_NO_COMPRESS for those that do
 *                        not).
 * Every method echoes the request metadata "x-grpc-test-echo-initial" as
 * initial metadata and "x-grpc-test-echo-trailing-bin" as trailing metadata.
 *
 * --port=0 (the default) picks a free port.  Once serving it prints
 * "listening on PORT" and flushes stdout.  Handlers block, so they run on a
 * pool of --max_workers threads (default 32): one per open stream.  Stops
 * cleanly on SIGINT or SIGTERM.  --use_tls=true serves TLS with gRPC's test
 * server certificate (testdata/server1.pem, for *.test.google.fr), or the
 * certificate chain and key that --tls_cert_file and --tls_key_file name
 * (grpc-go's flags).
 *
 * --server_id=NAME (default "interop_server") names this server in the
 * replies that ask for it (fill_server_id), so that a test behind a load
 * balancer sees which backend answered.
 *
 * --require_token=T (a cgrpc test flag, not one of gRPC's): every call of
 * the methods above whose metadata lacks "authorization: Bearer T" fails
 * UNAUTHENTICATED, saying so (UnimplementedCall stays UNIMPLEMENTED).  It
 * needs --use_tls=true: bearer tokens travel over TLS only.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cgrpc/cgrpc.h>

#include "grpc/testing/test.grpc-c.h"
#include "interop_testdata.h"
#include "test_server.h"

#define DEFAULT_MAX_WORKERS 32
/* Longest sleep slice while honouring interval_us, so that a cancelled call
 * is noticed promptly. */
#define SLEEP_SLICE_US 10000

static const char ECHO_INITIAL_KEY[] = "x-grpc-test-echo-initial";
static const char ECHO_TRAILING_KEY[] = "x-grpc-test-echo-trailing-bin";

/* --server_id: set once in main(), before the server starts. */
static const char *server_id = "interop_server";

/* ---- helpers ------------------------------------------------------------ */

/* Sends back the echo metadata the client asked for.  Initial metadata goes
 * with the response headers, trailing metadata with the status, so this is
 * called first thing in every handler. */
static void echo_metadata(cgrpc_server_ctx *ctx) {
  const cgrpc_metadata_array *md = cgrpc_server_ctx_metadata(ctx);
  const char *value;
  size_t len;

  if ((value = cgrpc_metadata_array_get(md, ECHO_INITIAL_KEY, &len)) != NULL)
    cgrpc_server_ctx_add_initial_metadata(ctx, ECHO_INITIAL_KEY, value);
  if ((value = cgrpc_metadata_array_get(md, ECHO_TRAILING_KEY, &len)) != NULL)
    cgrpc_server_ctx_add_trailing_metadata_bin(ctx, ECHO_TRAILING_KEY, value,
                                               len);
}

/* The start of every handler: |bearer| is "Bearer T" for --require_token=T
 * (the handlers' user_data), or NULL.  Refuses a call that does not carry
 * it with UNAUTHENTICATED; otherwise sends back the echo metadata and
 * returns OK. */
static cgrpc_status_code begin_call(cgrpc_server_ctx *ctx, const char *bearer) {
  if (bearer != NULL) {
    const char *got = cgrpc_metadata_array_get(cgrpc_server_ctx_metadata(ctx),
                                               "authorization", NULL);
    if (got == NULL || strcmp(got, bearer) != 0)
      return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_UNAUTHENTICATED,
                                   "missing or wrong bearer token "
                                   "(interop_server --require_token)");
  }
  echo_metadata(ctx);
  return CGRPC_STATUS_OK;
}

/* The status a request's response_status asks for; OK when it has none. */
static cgrpc_status_code echo_status(cgrpc_server_ctx *ctx,
                                     const Grpc__Testing__EchoStatus *st) {
  cgrpc_status_code code;
  if (st == NULL || st->code == 0)
    return CGRPC_STATUS_OK;
  code = st->code > 0 && st->code <= CGRPC_STATUS_UNAUTHENTICATED
             ? (cgrpc_status_code)st->code
             : CGRPC_STATUS_UNKNOWN;
  return cgrpc_server_ctx_fail(ctx, code, "%s",
                               st->message ? st->message : "");
}

/* Checks the parts of a request that ask for what we do not offer, and
 * expect_compressed (CompressedRequest) against the request message just
 * read. */
static cgrpc_status_code check_request(cgrpc_server_ctx *ctx,
                                       Grpc__Testing__PayloadType type,
                                       const Grpc__Testing__BoolValue *expect) {
  int compressed = cgrpc_server_ctx_last_message_compressed(ctx);
  if (type != GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE)
    return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_INVALID_ARGUMENT,
                                 "unsupported response_type %d", (int)type);
  if (expect != NULL && expect->value && !compressed)
    return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_INVALID_ARGUMENT,
                                 "expected a compressed request, got an "
                                 "uncompressed one");
  if (expect != NULL && !expect->value && compressed)
    return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_INVALID_ARGUMENT,
                                 "expected an uncompressed request, got a "
                                 "compressed one");
  return CGRPC_STATUS_OK;
}

/* Sleeps |us| microseconds in short slices; returns nonzero when the call
 * was cancelled meanwhile. */
static int sleep_us(cgrpc_server_ctx *ctx, int64_t us) {
  while (us > 0) {
    int64_t slice = us < SLEEP_SLICE_US ? us : SLEEP_SLICE_US;
    struct timespec ts = {(time_t)(slice / 1000000),
                          (long)(slice % 1000000) * 1000};
    if (cgrpc_server_ctx_is_cancelled(ctx))
      return 1;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
      ;
    us -= slice;
  }
  return cgrpc_server_ctx_is_cancelled(ctx);
}

/* Sends one response per response_parameters entry of |req|.  An entry
 * with |compressed| set turns gzip on for the call (while it still can be:
 * before the first response) and sends its message compressed when it
 * says true; every other message goes uncompressed.  Returns OK, or the
 * status that ends the call. */
static cgrpc_status_code send_responses(
    cgrpc_server_ctx *ctx,
    const Grpc__Testing__StreamingOutputCallRequest *req) {
  cgrpc_status_code code;
  size_t i;

  if ((code = check_request(ctx, req->response_type, NULL)) != CGRPC_STATUS_OK)
    return code;
  for (i = 0; i < req->n_response_parameters; i++)
    if (req->response_parameters[i]->compressed != NULL) {
      /* INVALID_STATE once a response went: the call's choice stays. */
      cgrpc_server_ctx_set_compression(ctx, CGRPC_COMPRESS_GZIP);
      break;
    }
  for (i = 0; i < req->n_response_parameters; i++) {
    const Grpc__Testing__ResponseParameters *p = req->response_parameters[i];
    Grpc__Testing__StreamingOutputCallResponse resp =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
    Grpc__Testing__Payload payload = GRPC__TESTING__PAYLOAD__INIT;
    uint8_t *body;
    unsigned flags = p->compressed != NULL && p->compressed->value
                         ? 0
                         : (unsigned)CGRPC_WRITE_NO_COMPRESS;
    int rv;

    if (p->size < 0)
      return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_INVALID_ARGUMENT,
                                   "negative size in response_parameters[%zu]",
                                   i);
    if (p->interval_us > 0 && sleep_us(ctx, p->interval_us))
      return CGRPC_STATUS_CANCELLED;
    /* One byte more, so that a size of 0 does not depend on calloc(0). */
    body = calloc((size_t)p->size + 1, 1);
    if (body == NULL)
      return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_RESOURCE_EXHAUSTED,
                                   "out of memory for %d bytes", p->size);
    payload.body.data = body;
    payload.body.len = (size_t)p->size;
    resp.payload = &payload;
    rv = cgrpc_server_ctx_write_flags(ctx, &resp.base, flags); /* packed */
    free(body);
    if (rv == CGRPC_ERR_CLOSED)
      return CGRPC_STATUS_CANCELLED; /* the client is gone; nobody reads it */
    if (rv != 0)
      return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_INTERNAL,
                                   "sending response %zu: %s", i,
                                   cgrpc_strerror(rv));
  }
  return CGRPC_STATUS_OK;
}

/* ---- handlers ----------------------------------------------------------- */

static cgrpc_status_code empty_call(cgrpc_server_ctx *ctx,
                                    const Grpc__Testing__Empty *request,
                                    Grpc__Testing__Empty *reply,
                                    void *user_data) {
  (void)request;
  (void)reply;
  if (begin_call(ctx, user_data) != CGRPC_STATUS_OK)
    return CGRPC_STATUS_UNAUTHENTICATED;
  return CGRPC_STATUS_OK;
}

static cgrpc_status_code unary_call(cgrpc_server_ctx *ctx,
                                    const Grpc__Testing__SimpleRequest *req,
                                    Grpc__Testing__SimpleResponse *reply,
                                    void *user_data) {
  Grpc__Testing__Payload *payload;
  cgrpc_status_code code;
  uint8_t *body;

  if (begin_call(ctx, user_data) != CGRPC_STATUS_OK)
    return CGRPC_STATUS_UNAUTHENTICATED;
  if ((code = echo_status(ctx, req->response_status)) != CGRPC_STATUS_OK)
    return code;
  code = check_request(ctx, req->response_type, req->expect_compressed);
  if (code != CGRPC_STATUS_OK)
    return code;
  if (req->response_compressed != NULL &&
      cgrpc_server_ctx_set_compression(ctx, req->response_compressed->value
                                                ? CGRPC_COMPRESS_GZIP
                                                : CGRPC_COMPRESS_IDENTITY) != 0)
    return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_INTERNAL,
                                 "could not set the response compression");
  if (req->response_size < 0)
    return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_INVALID_ARGUMENT,
                                 "negative response_size %d",
                                 req->response_size);
  payload = cgrpc_server_ctx_alloc(ctx, sizeof *payload);
  body = cgrpc_server_ctx_alloc(ctx, (size_t)req->response_size + 1);
  if (payload == NULL || body == NULL)
    return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_RESOURCE_EXHAUSTED,
                                 "out of memory for %d bytes",
                                 req->response_size);
  grpc__testing__payload__init(payload);
  memset(body, 0, (size_t)req->response_size);
  payload->body.data = body;
  payload->body.len = (size_t)req->response_size;
  reply->payload = payload;
  if (req->fill_server_id) {
    size_t n = strlen(server_id) + 1;
    char *id = cgrpc_server_ctx_alloc(ctx, n);
    if (id == NULL)
      return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_RESOURCE_EXHAUSTED,
                                   "out of memory");
    memcpy(id, server_id, n);
    reply->server_id = id;
  }
  return CGRPC_STATUS_OK;
}

static cgrpc_status_code cacheable_unary_call(
    cgrpc_server_ctx *ctx, const Grpc__Testing__SimpleRequest *req,
    Grpc__Testing__SimpleResponse *reply, void *user_data) {
  Grpc__Testing__Payload *payload;
  struct timespec ts;
  char *now;
  (void)req;

  if (begin_call(ctx, user_data) != CGRPC_STATUS_OK)
    return CGRPC_STATUS_UNAUTHENTICATED;
  clock_gettime(CLOCK_REALTIME, &ts);
  payload = cgrpc_server_ctx_alloc(ctx, sizeof *payload);
  now = cgrpc_server_ctx_printf(ctx, "%lld%09ld", (long long)ts.tv_sec,
                                ts.tv_nsec);
  if (payload == NULL || now == NULL)
    return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_RESOURCE_EXHAUSTED,
                                 "out of memory");
  grpc__testing__payload__init(payload);
  payload->body.data = (uint8_t *)now;
  payload->body.len = strlen(now);
  reply->payload = payload;
  return CGRPC_STATUS_OK;
}

static cgrpc_status_code streaming_output_call(
    cgrpc_server_ctx *ctx, const Grpc__Testing__StreamingOutputCallRequest *req,
    void *user_data) {
  cgrpc_status_code code;

  if (begin_call(ctx, user_data) != CGRPC_STATUS_OK)
    return CGRPC_STATUS_UNAUTHENTICATED;
  /* The responses first, then the status asked for. */
  if ((code = send_responses(ctx, req)) != CGRPC_STATUS_OK)
    return code;
  return echo_status(ctx, req->response_status);
}

static cgrpc_status_code streaming_input_call(
    cgrpc_server_ctx *ctx, Grpc__Testing__StreamingInputCallResponse *reply,
    void *user_data) {
  Grpc__Testing__StreamingInputCallRequest *req;
  int64_t total = 0;
  int rv;

  if (begin_call(ctx, user_data) != CGRPC_STATUS_OK)
    return CGRPC_STATUS_UNAUTHENTICATED;
  while ((rv = grpc__testing__test_service__streaming_input_call__recv(
              ctx, &req)) == 1) {
    cgrpc_status_code code =
        check_request(ctx, GRPC__TESTING__PAYLOAD_TYPE__COMPRESSABLE,
                      req->expect_compressed);
    if (req->payload != NULL)
      total += (int64_t)req->payload->body.len;
    protobuf_c_message_free_unpacked(&req->base, NULL);
    if (code != CGRPC_STATUS_OK)
      return code;
  }
  if (rv < 0)
    return CGRPC_STATUS_CANCELLED; /* cancelled or failed: nobody listens */
  if (total > INT32_MAX)
    return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_OUT_OF_RANGE,
                                 "%lld payload bytes do not fit an int32",
                                 (long long)total);
  reply->aggregated_payload_size = (int32_t)total;
  return CGRPC_STATUS_OK;
}

static cgrpc_status_code full_duplex_call(cgrpc_server_ctx *ctx,
                                          void *user_data) {
  Grpc__Testing__StreamingOutputCallRequest *req;
  int rv;

  if (begin_call(ctx, user_data) != CGRPC_STATUS_OK)
    return CGRPC_STATUS_UNAUTHENTICATED;
  while ((rv = grpc__testing__test_service__full_duplex_call__recv(ctx, &req)) ==
         1) {
    cgrpc_status_code code = echo_status(ctx, req->response_status);
    if (code == CGRPC_STATUS_OK)
      code = send_responses(ctx, req);
    protobuf_c_message_free_unpacked(&req->base, NULL);
    if (code != CGRPC_STATUS_OK)
      return code;
  }
  return rv < 0 ? CGRPC_STATUS_CANCELLED : CGRPC_STATUS_OK;
}

static cgrpc_status_code half_duplex_call(cgrpc_server_ctx *ctx,
                                          void *user_data) {
  Grpc__Testing__StreamingOutputCallRequest **reqs = NULL, *req;
  cgrpc_status_code code = CGRPC_STATUS_OK;
  size_t n = 0, cap = 0, i;
  int rv;

  if (begin_call(ctx, user_data) != CGRPC_STATUS_OK)
    return CGRPC_STATUS_UNAUTHENTICATED;
  while ((rv = grpc__testing__test_service__half_duplex_call__recv(ctx, &req)) ==
         1) {
    if (n == cap) {
      size_t ncap = cap ? cap * 2 : 8;
      void *p = realloc(reqs, ncap * sizeof *reqs);
      if (p == NULL) {
        protobuf_c_message_free_unpacked(&req->base, NULL);
        code = cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_RESOURCE_EXHAUSTED,
                                     "out of memory after %zu requests", n);
        break;
      }
      reqs = p;
      cap = ncap;
    }
    reqs[n++] = req;
  }
  if (code == CGRPC_STATUS_OK && rv < 0)
    code = CGRPC_STATUS_CANCELLED;
  for (i = 0; i < n && code == CGRPC_STATUS_OK; i++) {
    code = echo_status(ctx, reqs[i]->response_status);
    if (code == CGRPC_STATUS_OK)
      code = send_responses(ctx, reqs[i]);
  }
  for (i = 0; i < n; i++)
    protobuf_c_message_free_unpacked(&reqs[i]->base, NULL);
  free(reqs);
  return code;
}

/* ---- main --------------------------------------------------------------- */

static void usage(const char *argv0) {
  fprintf(stderr,
          "usage: %s [--port=N] [--use_tls=false|true] [--tls_cert_file=PEM]\n"
          "          [--tls_key_file=PEM] [--max_workers=N]\n"
          "          [--require_token=T] [--server_id=NAME]\n"
          "  grpc.testing.TestService for the gRPC interop tests.\n",
          argv0);
}

/* |arg|: the handlers' user_data, "Bearer T" for --require_token=T or
 * NULL. */
static int register_test_service(cgrpc_server *server, void *arg) {
  Grpc__Testing__TestService_Servicer servicer;
  int rv;
  memset(&servicer, 0, sizeof servicer);
  servicer.empty_call = empty_call;
  servicer.unary_call = unary_call;
  servicer.cacheable_unary_call = cacheable_unary_call;
  servicer.streaming_output_call = streaming_output_call;
  servicer.streaming_input_call = streaming_input_call;
  servicer.full_duplex_call = full_duplex_call;
  servicer.half_duplex_call = half_duplex_call;
  /* unimplemented_call stays NULL: the server answers UNIMPLEMENTED. */
  rv = grpc__testing__test_service__servicer__register(server, &servicer, arg);
  /* Reflection, so that tools (and the reflection interop test) can find
   * the services without the .proto files; health checking for probes. */
  if (rv == 0)
    rv = cgrpc_server_enable_reflection(server);
  return rv != 0 ? rv : cgrpc_server_enable_health(server);
}

/* The server's TLS credentials: the named files, else gRPC's test pair.
 * Returns 0, or prints why and returns an exit code. */
static int make_credentials(const char *cert_file, const char *key_file,
                            cgrpc_server_credentials **out) {
  cgrpc_server_credentials *creds = NULL;
  int rv;
  if ((cert_file == NULL) != (key_file == NULL)) {
    fprintf(stderr, "interop_server: --tls_cert_file and --tls_key_file go "
                    "together\n");
    return 2;
  }
  rv = cgrpc_server_credentials_new(&creds);
  if (rv == 0 && cert_file != NULL)
    rv = cgrpc_server_credentials_set_cert_files(creds, cert_file, key_file);
  else if (rv == 0)
    rv = cgrpc_server_credentials_set_cert_pem(
        creds, interop_testdata_server1_pem,
        strlen(interop_testdata_server1_pem), interop_testdata_server1_key,
        strlen(interop_testdata_server1_key));
  if (rv != 0) {
    fprintf(stderr, "interop_server: TLS credentials%s%s: %s\n",
            cert_file ? " from " : "", cert_file ? cert_file : "",
            cgrpc_strerror(rv));
    cgrpc_server_credentials_del(creds);
    return 1;
  }
  *out = creds;
  return 0;
}

int main(int argc, char **argv) {
  test_server_config cfg = {"interop_server", 0, DEFAULT_MAX_WORKERS, -2,
                            2000, register_test_service, NULL, NULL, NULL,
                            NULL};
  const char *cert_file = NULL, *key_file = NULL;
  char bearer[512];
  int i, use_tls = 0, rv;

  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    int bad = 0;
    if (strncmp(a, "--port=", 7) == 0) {
      bad = test_server_parse_ll(a + 7, 0, 65535, &cfg.port) != 0;
    } else if (strncmp(a, "--max_workers=", 14) == 0) {
      bad = test_server_parse_ll(a + 14, 1, 10000, &cfg.max_workers) != 0;
    } else if (strncmp(a, "--use_tls=", 10) == 0) {
      use_tls = strcmp(a + 10, "true") == 0;
      bad = !use_tls && strcmp(a + 10, "false") != 0;
    } else if (strncmp(a, "--tls_cert_file=", 16) == 0) {
      cert_file = a + 16;
    } else if (strncmp(a, "--tls_key_file=", 15) == 0) {
      key_file = a + 15;
    } else if (strncmp(a, "--require_token=", 16) == 0) {
      int n = snprintf(bearer, sizeof bearer, "Bearer %s", a + 16);
      bad = a[16] == '\0' || n < 0 || (size_t)n >= sizeof bearer;
      cfg.arg = bearer;
    } else if (strncmp(a, "--server_id=", 12) == 0) {
      server_id = a + 12;
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(argv[0]);
      return 0;
    } else {
      bad = 1;
    }
    if (bad) {
      fprintf(stderr, "interop_server: bad argument \"%s\"\n", a);
      usage(argv[0]);
      return 2;
    }
  }
  if (!use_tls && (cert_file != NULL || key_file != NULL)) {
    fprintf(stderr, "interop_server: --tls_cert_file and --tls_key_file need "
                    "--use_tls=true\n");
    return 2;
  }
  if (!use_tls && cfg.arg != NULL) {
    fprintf(stderr, "interop_server: --require_token needs --use_tls=true "
                    "(bearer tokens travel over TLS only)\n");
    return 2;
  }
  if (use_tls && (rv = make_credentials(cert_file, key_file, &cfg.creds)) != 0)
    return rv;
  rv = test_server_run(&cfg);
  cgrpc_server_credentials_del(cfg.creds);
  return rv;
}
