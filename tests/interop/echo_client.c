/* SPDX-License-Identifier: MIT */
/*
 * A cgrpc client of cgrpc.test.EchoService that runs one named interop case
 * against whatever EchoService server is at the target (cgrpc's echo_server,
 * grpcio's py_echo_server.py).
 *
 *   echo_client --target=TARGET --case=NAME [--timeout_ms=N]
 *
 * TARGET is HOST:PORT, or a Unix socket (unix:PATH, unix-abstract:NAME).
 *
 * Cases (the same as py_echo_client.py):
 *   unary                   a message and payload round trip, and what the
 *                           server saw (method, authority, peer, deadline)
 *   status_codes            each code 1..16 with a message comes back exactly
 *   special_status_message  the interop spec's whitespace/Unicode message
 *                           comes back byte-exact
 *   metadata                an ASCII and a -bin entry (bytes 0x00..0xff)
 *                           come back in initial and trailing metadata
 *   large                   1 MiB payload each way
 *   deadline                sleep_ms=2000 with a 200 ms timeout ->
 *                           DEADLINE_EXCEEDED
 *   unimplemented           the Unimplemented method -> UNIMPLEMENTED
 *   all                     every case above
 *
 * --timeout_ms (default 10000) is the deadline of every call but the
 * deadline case's.  Prints "PASS: ..." / "FAIL: ..." per check and exits 0
 * when every check passed, 1 otherwise, 2 on usage errors.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cgrpc/cgrpc.h>

#include "echo.grpc-c.h"

#define MIB (1024 * 1024)

static const char SPECIAL_MESSAGE[] =
    "\t\ntest with whitespace\r\nand Unicode BMP \xe2\x98\xba"
    " and non-BMP \xf0\x9f\x98\x88\t\n";
static const char INITIAL_KEY[] = "x-grpc-test-echo-initial";
static const char INITIAL_VALUE[] = "test_initial_metadata_value";
static const char INITIAL_TRAILER_KEY[] = "x-grpc-test-echo-initial-trailer";
static const char BIN_KEY[] = "x-grpc-test-echo-trailing-bin";
static const char BIN_TRAILER_KEY[] = "x-grpc-test-echo-trailing-trailer-bin";
static const char ECHO_PATH[] = "/cgrpc.test.EchoService/Echo";

typedef struct client {
  cgrpc_channel *channel;
  const char *target;
  int64_t timeout_ms;
  int failures;
} client;

static void check(client *c, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Unix-domain socket targets: gRPC sends ":authority: localhost" for them,
 * and the server sees the client's unnamed socket as "unix:". */
static int is_unix_target(const char *target) {
  return strncmp(target, "unix:", 5) == 0 ||
         strncmp(target, "unix-abstract:", 14) == 0;
}

static const char *expected_authority(const char *target) {
  return is_unix_target(target) ? "localhost" : target;
}

/* Prints PASS or FAIL and the label; the label of a failure should say what
 * was seen. */
static void check(client *c, int ok, const char *fmt, ...) {
  va_list ap;
  fputs(ok ? "PASS: " : "FAIL: ", stdout);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
  fflush(stdout);
  if (!ok)
    c->failures++;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *str_or_null(const char *s) { return s ? s : "(none)"; }

/* Calls Echo (or Unimplemented) with |timeout_ms| (< 0: the client's
 * default, 0: none) and |md|.  |*reply| must be freed with free_reply(). */
static cgrpc_status_code call(client *c, int unimplemented,
                              const Cgrpc__Test__EchoRequest *req,
                              int64_t timeout_ms, const cgrpc_metadata_array *md,
                              Cgrpc__Test__EchoReply **reply,
                              cgrpc_status *status) {
  cgrpc_call_options opts;
  memset(&opts, 0, sizeof opts);
  opts.timeout_ms = timeout_ms < 0 ? c->timeout_ms : timeout_ms;
  opts.metadata = md;
  *reply = NULL;
  if (unimplemented)
    return cgrpc__test__echo_service__unimplemented__call(c->channel, req,
                                                          reply, &opts, status);
  return cgrpc__test__echo_service__echo__call(c->channel, req, reply, &opts,
                                               status);
}

static void free_reply(Cgrpc__Test__EchoReply *reply) {
  if (reply)
    protobuf_c_message_free_unpacked(&reply->base, NULL);
}

/* Checks the call answered OK; returns nonzero if it did. */
static int check_ok(client *c, const char *label, cgrpc_status_code code,
                    const cgrpc_status *status) {
  int ok = code == CGRPC_STATUS_OK;
  if (ok)
    check(c, 1, "%s", label);
  else
    check(c, 0, "%s: got %s: \"%s\"", label, cgrpc_status_code_name(code),
          str_or_null(status->message));
  return ok;
}

/* ---- cases --------------------------------------------------------------- */

static void case_unary(client *c) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply;
  cgrpc_status status = {0};
  cgrpc_status_code code;
  uint8_t payload[1024];
  size_t i;

  for (i = 0; i < sizeof payload; i++)
    payload[i] = (uint8_t)i;
  req.message = "hello, echo \xe2\x9c\x93";
  req.payload.data = payload;
  req.payload.len = sizeof payload;
  code = call(c, 0, &req, -1, NULL, &reply, &status);
  if (check_ok(c, "unary: Echo answers OK", code, &status)) {
    check(c, strcmp(reply->message, req.message) == 0,
          "unary: message comes back (got \"%s\")", reply->message);
    check(c,
          reply->payload.len == sizeof payload &&
              memcmp(reply->payload.data, payload, sizeof payload) == 0,
          "unary: payload comes back (%zu bytes)", reply->payload.len);
    check(c, strcmp(reply->method, ECHO_PATH) == 0,
          "unary: server saw the method (got \"%s\")", reply->method);
    check(c, strcmp(reply->authority, expected_authority(c->target)) == 0,
          "unary: server saw the authority (got \"%s\", want \"%s\")",
          reply->authority, expected_authority(c->target));
    if (is_unix_target(c->target))
      check(c, strcmp(reply->peer, "unix:") == 0,
            "unary: server saw the unnamed unix peer (got \"%s\", want "
            "\"unix:\")",
            reply->peer);
    else
      check(c, reply->peer[0] != '\0', "unary: server saw a peer (\"%s\")",
            reply->peer);
    check(c,
          reply->time_remaining_ms > 0 &&
              reply->time_remaining_ms <= c->timeout_ms,
          "unary: server saw the deadline (time_remaining_ms %lld, want in "
          "(0, %lld])",
          (long long)reply->time_remaining_ms, (long long)c->timeout_ms);
  }
  free_reply(reply);
  cgrpc_status_clear(&status);

  /* Without a deadline the server sees none. */
  memset(&req.payload, 0, sizeof req.payload);
  req.message = "x";
  code = call(c, 0, &req, 0, NULL, &reply, &status);
  if (check_ok(c, "unary: Echo without a deadline answers OK", code, &status))
    check(c, reply->time_remaining_ms == -1,
          "unary: no deadline seen without a timeout (time_remaining_ms "
          "%lld)",
          (long long)reply->time_remaining_ms);
  free_reply(reply);
  cgrpc_status_clear(&status);

  req.response_size = 1000;
  code = call(c, 0, &req, -1, NULL, &reply, &status);
  if (check_ok(c, "unary: response_size answers OK", code, &status))
    check(c, reply->payload.len == 1000,
          "unary: response_size sets the payload size (%zu bytes)",
          reply->payload.len);
  free_reply(reply);
  cgrpc_status_clear(&status);
}

static void case_status_codes(client *c) {
  int value;
  for (value = 1; value <= 16; value++) {
    Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
    Cgrpc__Test__EchoReply *reply;
    cgrpc_status status = {0};
    cgrpc_status_code code;
    const char *name = cgrpc_status_code_name(value);
    char message[96];

    snprintf(message, sizeof message, "status %d (%s) from the server", value,
             name);
    req.status_code = value;
    req.status_message = message;
    code = call(c, 0, &req, -1, NULL, &reply, &status);
    check(c,
          (int)code == value && (int)status.code == value && status.message &&
              strcmp(status.message, message) == 0,
          "status_codes: %s and its message (got %s: \"%s\")", name,
          cgrpc_status_code_name(code), str_or_null(status.message));
    check(c, reply == NULL, "status_codes: %s has no reply", name);
    free_reply(reply);
    cgrpc_status_clear(&status);
  }
}

/* Writes |n| bytes of |s| as a C-escaped string into |out|. */
static const char *escaped(const char *s, size_t n, char *out, size_t size) {
  size_t o = 0, i;
  for (i = 0; i < n && o + 5 < size; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch >= 0x20 && ch < 0x7f && ch != '\\' && ch != '"')
      out[o++] = (char)ch;
    else
      o += (size_t)snprintf(out + o, size - o, "\\x%02x", ch);
  }
  out[o] = '\0';
  return out;
}

static void case_special_status_message(client *c) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply;
  cgrpc_status status = {0};
  cgrpc_status_code code;
  char shown[512];

  req.status_code = CGRPC_STATUS_UNKNOWN;
  req.status_message = (char *)SPECIAL_MESSAGE;
  code = call(c, 0, &req, -1, NULL, &reply, &status);
  check(c,
        code == CGRPC_STATUS_UNKNOWN && status.message &&
            strcmp(status.message, SPECIAL_MESSAGE) == 0,
        "special_status_message: UNKNOWN with the message byte-exact "
        "(got %s: \"%s\")",
        cgrpc_status_code_name(code),
        status.message
            ? escaped(status.message, strlen(status.message), shown,
                      sizeof shown)
            : "(none)");
  free_reply(reply);
  cgrpc_status_clear(&status);
}

/* Checks |md| holds |key| with exactly |value| (|len| bytes). */
static void check_md(client *c, const char *label,
                     const cgrpc_metadata_array *md, const char *key,
                     const void *value, size_t len) {
  size_t got_len = 0;
  const char *got = md ? cgrpc_metadata_array_get(md, key, &got_len) : NULL;
  char shown[1100];
  check(c, got && got_len == len && memcmp(got, value, len) == 0,
        "%s %s (got %s%s%s, %zu bytes)", label, key, got ? "\"" : "",
        got ? escaped(got, got_len, shown, sizeof shown) : "nothing",
        got ? "\"" : "", got_len);
}

static void case_metadata(client *c) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply;
  cgrpc_status status = {0};
  cgrpc_metadata_array *md = NULL;
  cgrpc_status_code code;
  uint8_t bin[256];
  int rv, i;

  for (i = 0; i < 256; i++)
    bin[i] = (uint8_t)i;
  rv = cgrpc_metadata_array_new(&md);
  if (rv == 0)
    rv = cgrpc_metadata_array_add(md, INITIAL_KEY, INITIAL_VALUE);
  if (rv == 0)
    rv = cgrpc_metadata_array_add_bin(md, BIN_KEY, bin, sizeof bin);
  if (rv != 0) {
    check(c, 0, "metadata: build the request metadata: %s",
          cgrpc_strerror(rv));
    cgrpc_metadata_array_del(md);
    return;
  }

  req.message = "md";
  req.echo_metadata = 1;
  code = call(c, 0, &req, -1, md, &reply, &status);
  if (check_ok(c, "metadata: Echo answers OK", code, &status)) {
    check_md(c, "metadata: initial metadata has", status.initial_metadata,
             INITIAL_KEY, INITIAL_VALUE, strlen(INITIAL_VALUE));
    check_md(c, "metadata: initial metadata has", status.initial_metadata,
             BIN_KEY, bin, sizeof bin);
    check_md(c, "metadata: trailing metadata has", status.trailing_metadata,
             INITIAL_TRAILER_KEY, INITIAL_VALUE, strlen(INITIAL_VALUE));
    check_md(c, "metadata: trailing metadata has", status.trailing_metadata,
             BIN_TRAILER_KEY, bin, sizeof bin);
  }
  free_reply(reply);
  cgrpc_status_clear(&status);

  /* Trailing metadata also travels with an error status. */
  req.message = "";
  req.status_code = CGRPC_STATUS_FAILED_PRECONDITION;
  req.status_message = "with metadata";
  code = call(c, 0, &req, -1, md, &reply, &status);
  check(c,
        code == CGRPC_STATUS_FAILED_PRECONDITION && status.message &&
            strcmp(status.message, "with metadata") == 0,
        "metadata: the error status arrives (got %s: \"%s\")",
        cgrpc_status_code_name(code), str_or_null(status.message));
  if (code == CGRPC_STATUS_FAILED_PRECONDITION) {
    check_md(c, "metadata: error trailing metadata has",
             status.trailing_metadata, INITIAL_TRAILER_KEY, INITIAL_VALUE,
             strlen(INITIAL_VALUE));
    check_md(c, "metadata: error trailing metadata has",
             status.trailing_metadata, BIN_TRAILER_KEY, bin, sizeof bin);
  }
  free_reply(reply);
  cgrpc_status_clear(&status);
  cgrpc_metadata_array_del(md);
}

static void case_large(client *c) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply;
  cgrpc_status status = {0};
  cgrpc_status_code code;
  uint8_t *payload = malloc(MIB);
  size_t i;

  if (!payload) {
    check(c, 0, "large: allocate 1 MiB");
    return;
  }
  for (i = 0; i < MIB; i++)
    payload[i] = (uint8_t)(i * 7 + (i >> 8));
  req.payload.data = payload;
  req.payload.len = MIB;
  code = call(c, 0, &req, -1, NULL, &reply, &status);
  if (check_ok(c, "large: 1 MiB request payload echoed OK", code, &status))
    check(c,
          reply->payload.len == MIB &&
              memcmp(reply->payload.data, payload, MIB) == 0,
          "large: 1 MiB comes back byte-exact (%zu bytes back)",
          reply->payload.len);
  free_reply(reply);
  cgrpc_status_clear(&status);
  free(payload);

  memset(&req.payload, 0, sizeof req.payload);
  req.response_size = MIB;
  code = call(c, 0, &req, -1, NULL, &reply, &status);
  if (check_ok(c, "large: response_size=1 MiB answers OK", code, &status))
    check(c, reply->payload.len == MIB,
          "large: 1 MiB response payload (%zu bytes)", reply->payload.len);
  free_reply(reply);
  cgrpc_status_clear(&status);
}

static void case_deadline(client *c) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply;
  cgrpc_status status = {0};
  cgrpc_status_code code;
  int64_t start = now_ms(), took;

  req.sleep_ms = 2000;
  code = call(c, 0, &req, 200, NULL, &reply, &status);
  took = now_ms() - start;
  check(c, code == CGRPC_STATUS_DEADLINE_EXCEEDED,
        "deadline: sleep_ms=2000 with 200 ms -> DEADLINE_EXCEEDED (got %s: "
        "\"%s\")",
        cgrpc_status_code_name(code), str_or_null(status.message));
  check(c, took < 1900,
        "deadline: the call ends before the sleep would (took %lld ms)",
        (long long)took);
  free_reply(reply);
  cgrpc_status_clear(&status);

  req.sleep_ms = 0;
  req.message = "after";
  code = call(c, 0, &req, -1, NULL, &reply, &status);
  check_ok(c, "deadline: the channel still works", code, &status);
  free_reply(reply);
  cgrpc_status_clear(&status);
}

static void case_unimplemented(client *c) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply;
  cgrpc_status status = {0};
  cgrpc_status_code code;

  req.message = "x";
  code = call(c, 1, &req, -1, NULL, &reply, &status);
  check(c, code == CGRPC_STATUS_UNIMPLEMENTED,
        "unimplemented: Unimplemented -> UNIMPLEMENTED (got %s: \"%s\")",
        cgrpc_status_code_name(code), str_or_null(status.message));
  free_reply(reply);
  cgrpc_status_clear(&status);
}

static const struct {
  const char *name;
  void (*run)(client *c);
} CASES[] = {
    {"unary", case_unary},
    {"status_codes", case_status_codes},
    {"special_status_message", case_special_status_message},
    {"metadata", case_metadata},
    {"large", case_large},
    {"deadline", case_deadline},
    {"unimplemented", case_unimplemented},
};
#define N_CASES (sizeof CASES / sizeof CASES[0])

static void usage(const char *argv0) {
  size_t i;
  fprintf(stderr,
          "usage: %s --target=HOST:PORT --case=NAME [--timeout_ms=N]\n"
          "cases: all",
          argv0);
  for (i = 0; i < N_CASES; i++)
    fprintf(stderr, " %s", CASES[i].name);
  fputc('\n', stderr);
}

int main(int argc, char **argv) {
  client c;
  const char *case_name = NULL;
  size_t i;
  int rv, found = 0;

  memset(&c, 0, sizeof c);
  c.timeout_ms = 10000;
  for (i = 1; i < (size_t)argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--target=", 9) == 0) {
      c.target = a + 9;
    } else if (strncmp(a, "--case=", 7) == 0) {
      case_name = a + 7;
    } else if (strncmp(a, "--timeout_ms=", 13) == 0) {
      char *end;
      c.timeout_ms = strtoll(a + 13, &end, 10);
      if (*end != '\0' || c.timeout_ms <= 0) {
        usage(argv[0]);
        return 2;
      }
    } else {
      usage(argv[0]);
      return 2;
    }
  }
  if (!c.target || !case_name) {
    usage(argv[0]);
    return 2;
  }
  for (i = 0; i < N_CASES; i++)
    if (strcmp(case_name, "all") == 0 || strcmp(case_name, CASES[i].name) == 0)
      found = 1;
  if (!found) {
    usage(argv[0]);
    return 2;
  }

  if ((rv = cgrpc_channel_new(&c.channel, c.target, NULL)) != 0) {
    fprintf(stderr, "echo_client: %s: %s\n", c.target, cgrpc_strerror(rv));
    return 1;
  }
  for (i = 0; i < N_CASES; i++)
    if (strcmp(case_name, "all") == 0 || strcmp(case_name, CASES[i].name) == 0)
      CASES[i].run(&c);
  cgrpc_channel_del(c.channel);
  printf("%s: %d failed check(s)\n", c.failures ? "FAILED" : "OK",
         c.failures);
  return c.failures ? 1 : 0;
}
