/* SPDX-License-Identifier: MIT */
/*
 * Our cgrpc.test.StreamService client for the retry interop test
 * (run_retry_interop.py): calls with the channel's service config, each
 * telling a server that fails attempts on request (grpcxx_retry_server)
 * how to fail:
 *
 *   retry_client --target=HOST:PORT --method=unary|download|upload|chat
 *                [--service_config=JSON] [--key=K] [--fail_first=N]
 *                [--code=C] [--pushback=TEXT] [--fail_after=WHAT]
 *                [--messages=M] [--size=BYTES] [--timeout_ms=T]
 *                [--count=N]
 *
 * --key, --fail_first, --code, --pushback and --fail_after go out as the
 * request metadata x-retry-key, x-retry-fail-first, x-retry-code,
 * x-retry-pushback-ms and x-retry-fail-after (absent when not given).
 * --count=N makes N calls, one after the other on one channel, whose keys
 * are K.1 ... K.N (K alone when N is 1, the default).  Each chunk sent
 * carries BYTES bytes of data (default 1).  unary sends one chunk and
 * expects it back; download asks for M chunks (default 3); upload sends M
 * chunks and expects their count, bytes and last seq; chat sends M chunks,
 * one at a time, and expects each back.  The deadline is T ms (default
 * 20000).
 *
 * Prints one line per call:
 *
 *   result method=M key=K status=NAME elapsed_ms=E replies=R content=ok|bad
 *     message=TEXT
 *
 * (on one line), E from before the call to its end on the monotonic clock,
 * R the responses received, content "ok" when they are what was asked for
 * (always "bad" for a call that failed with responses).  Exits 0 when
 * every call ended OK with the right content, 1 when one did not, 2 on
 * usage errors or when the channel cannot be made.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cgrpc/cgrpc.h>

#include "stream.grpc-c.h"

enum method { M_UNARY, M_DOWNLOAD, M_UPLOAD, M_CHAT };

static const char *const method_names[] = {"unary", "download", "upload",
                                           "chat"};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "--|name|=" at the start of |arg|: the value after it, else NULL. */
static const char *flag(const char *arg, const char *name) {
  size_t n = strlen(name);
  if (strncmp(arg, "--", 2) != 0 || strncmp(arg + 2, name, n) != 0 ||
      arg[2 + n] != '=')
    return NULL;
  return arg + 3 + n;
}

/* A decimal in [|min|, |max|] into |*out|: 1; else 0. */
static int parse_long(const char *s, long min, long max, long *out) {
  char *end;
  long v = strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < min || v > max)
    return 0;
  *out = v;
  return 1;
}

/* The data of each chunk sent: --size bytes, all 'a' + seq % 26. */
#define MAX_SIZE (1024 * 1024)
static uint8_t payload[MAX_SIZE];
static long payload_size = 1;

static void chunk_init(Cgrpc__Test__Chunk *c, long seq) {
  cgrpc__test__chunk__init(c);
  memset(payload, 'a' + (int)(seq % 26), (size_t)payload_size);
  c->data.data = payload;
  c->data.len = (size_t)payload_size;
  c->seq = seq;
}

/* The response |c| to the |seq|th chunk sent (chat, unary): 1 when right. */
static int echo_ok(const Cgrpc__Test__Chunk *c, long seq) {
  size_t i;
  if (c->seq != seq || c->data.len != (size_t)payload_size)
    return 0;
  for (i = 0; i < c->data.len; i++)
    if (c->data.data[i] != (uint8_t)('a' + seq % 26))
      return 0;
  return 1;
}

/* Runs the call.  Writes the count of responses to |*replies| and whether
 * they were right to |*content_ok|. */
static cgrpc_status_code run(cgrpc_channel *ch, enum method m, long messages,
                             const cgrpc_call_options *copts, cgrpc_status *st,
                             long *replies, int *content_ok) {
  cgrpc_call *call = NULL;
  Cgrpc__Test__Chunk req, *reply = NULL;
  long i;
  int rc = 0;
  *replies = 0;
  *content_ok = 1;
  if (m == M_UNARY) {
    chunk_init(&req, 7);
    cgrpc__test__stream_service__unary__call(ch, &req, &reply, copts, st);
    if (reply) {
      *replies = 1;
      *content_ok = echo_ok(reply, 7);
      protobuf_c_message_free_unpacked(&reply->base, NULL);
    } else {
      *content_ok = st->code != CGRPC_STATUS_OK ? 1 : 0;
    }
    return st->code;
  }
  if (m == M_DOWNLOAD) {
    Cgrpc__Test__DownloadRequest dreq = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
    dreq.count = (int32_t)messages;
    dreq.size = 4;
    rc = cgrpc__test__stream_service__download__open(ch, &dreq, copts, &call);
    if (rc != 0)
      goto open_failed;
    while (cgrpc__test__stream_service__download__read(call, &reply) == 1) {
      *content_ok &= reply->seq == *replies && reply->data.len == 4;
      ++*replies;
      protobuf_c_message_free_unpacked(&reply->base, NULL);
    }
    cgrpc_call_finish(call, st);
    *content_ok &= *replies == messages;
  } else if (m == M_UPLOAD) {
    Cgrpc__Test__UploadSummary *sum = NULL;
    rc = cgrpc__test__stream_service__upload__open(ch, copts, &call);
    if (rc != 0)
      goto open_failed;
    /* A write may fail once the call has ended (the attempt failed and
     * was not retried); the status tells why. */
    for (i = 0; i < messages; i++) {
      chunk_init(&req, i);
      if (cgrpc__test__stream_service__upload__write(call, &req) != 0)
        break;
    }
    cgrpc__test__stream_service__upload__finish(call, &sum, st);
    if (sum) {
      *replies = 1;
      *content_ok = sum->count == messages && sum->last_seq == messages - 1 &&
                    sum->bytes == messages * payload_size;
      protobuf_c_message_free_unpacked(&sum->base, NULL);
    }
  } else {
    rc = cgrpc__test__stream_service__chat__open(ch, copts, &call);
    if (rc != 0)
      goto open_failed;
    /* One message at a time: write, read its echo. */
    for (i = 0; i < messages; i++) {
      chunk_init(&req, i);
      if (cgrpc__test__stream_service__chat__write(call, &req) != 0)
        break;
      if (cgrpc__test__stream_service__chat__read(call, &reply) != 1)
        break;
      *content_ok &= echo_ok(reply, i);
      ++*replies;
      protobuf_c_message_free_unpacked(&reply->base, NULL);
    }
    cgrpc_call_writes_done(call);
    while (cgrpc__test__stream_service__chat__read(call, &reply) == 1) {
      *content_ok = 0; /* more echoes than chunks */
      ++*replies;
      protobuf_c_message_free_unpacked(&reply->base, NULL);
    }
    cgrpc_call_finish(call, st);
    *content_ok &= *replies == messages;
  }
  cgrpc_call_unref(call);
  if (st->code != CGRPC_STATUS_OK)
    *content_ok = *replies == 0;
  return st->code;
open_failed:
  st->code = CGRPC_STATUS_INTERNAL;
  st->message = NULL;
  fprintf(stderr, "retry_client: open failed: %s\n", cgrpc_strerror(rc));
  *content_ok = 0;
  return st->code;
}

int main(int argc, char **argv) {
  const char *target = NULL, *config = NULL, *key = NULL, *pushback = NULL;
  const char *fail_first = NULL, *code = NULL, *fail_after = NULL, *v;
  long messages = 3, timeout_ms = 20000, count = 1, replies = 0, dummy, n;
  int m = -1, content_ok = 0, i, rc, failed = 0;
  char call_key[256];
  cgrpc_channel_options *o = NULL;
  cgrpc_channel *ch = NULL;
  cgrpc_metadata_array *md = NULL;
  cgrpc_call_options copts = {0};
  cgrpc_status st = {0};
  char err[256] = "";
  int64_t start, elapsed;

  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    int ok = 1;
    if ((v = flag(a, "target")) != NULL)
      target = v;
    else if ((v = flag(a, "service_config")) != NULL)
      config = v;
    else if ((v = flag(a, "key")) != NULL)
      ok = strlen(key = v) < sizeof call_key - 8;
    else if ((v = flag(a, "fail_first")) != NULL)
      ok = parse_long(fail_first = v, 0, 1000000, &dummy);
    else if ((v = flag(a, "code")) != NULL)
      ok = parse_long(code = v, 1, 16, &dummy);
    else if ((v = flag(a, "pushback")) != NULL)
      pushback = v;
    else if ((v = flag(a, "fail_after")) != NULL)
      fail_after = v;
    else if ((v = flag(a, "size")) != NULL)
      ok = parse_long(v, 0, MAX_SIZE, &payload_size);
    else if ((v = flag(a, "messages")) != NULL)
      ok = parse_long(v, 0, 1000, &messages);
    else if ((v = flag(a, "timeout_ms")) != NULL)
      ok = parse_long(v, 1, 600000, &timeout_ms);
    else if ((v = flag(a, "count")) != NULL)
      ok = parse_long(v, 1, 1000, &count);
    else if ((v = flag(a, "method")) != NULL) {
      for (m = 3; m >= 0 && strcmp(v, method_names[m]) != 0; m--)
        ;
      ok = m >= 0;
    } else
      ok = 0;
    if (!ok) {
      fprintf(stderr, "retry_client: bad argument \"%s\"\n", a);
      target = NULL;
      break;
    }
  }
  if (!target || *target == '\0' || m < 0) {
    fprintf(stderr,
            "usage: %s --target=HOST:PORT --method=unary|download|upload|chat "
            "[--service_config=JSON] [--key=K] [--fail_first=N] [--code=C] "
            "[--pushback=TEXT] [--messages=M] [--size=BYTES] [--timeout_ms=T] "
            "[--count=N] [--fail_after=WHAT]\n",
            argv[0]);
    return 2;
  }

  rc = cgrpc_channel_options_new(&o);
  if (rc == 0 && config)
    rc = cgrpc_channel_options_set_service_config(o, config, err, sizeof err);
  if (rc == 0)
    rc = cgrpc_channel_new(&ch, target, o);
  cgrpc_channel_options_del(o);
  if (rc != 0) {
    fprintf(stderr, "retry_client: channel: %s%s%s\n", cgrpc_strerror(rc),
            *err ? ": " : "", err);
    cgrpc_channel_del(ch);
    return 2;
  }
  for (n = 1; n <= count; n++) {
    if (count > 1)
      snprintf(call_key, sizeof call_key, "%s.%ld", key ? key : "", n);
    else
      snprintf(call_key, sizeof call_key, "%s", key ? key : "");
    rc = cgrpc_metadata_array_new(&md);
    if (rc == 0 && (key || count > 1))
      rc = cgrpc_metadata_array_add(md, "x-retry-key", call_key);
    if (rc == 0 && fail_first)
      rc = cgrpc_metadata_array_add(md, "x-retry-fail-first", fail_first);
    if (rc == 0 && code)
      rc = cgrpc_metadata_array_add(md, "x-retry-code", code);
    if (rc == 0 && pushback)
      rc = cgrpc_metadata_array_add(md, "x-retry-pushback-ms", pushback);
    if (rc == 0 && fail_after)
      rc = cgrpc_metadata_array_add(md, "x-retry-fail-after", fail_after);
    if (rc != 0) {
      fprintf(stderr, "retry_client: metadata: %s\n", cgrpc_strerror(rc));
      cgrpc_metadata_array_del(md);
      cgrpc_channel_del(ch);
      return 2;
    }
    copts.timeout_ms = timeout_ms;
    copts.metadata = md;

    start = now_ms();
    run(ch, (enum method)m, messages, &copts, &st, &replies, &content_ok);
    elapsed = now_ms() - start;
    printf("result method=%s key=%s status=%s elapsed_ms=%lld replies=%ld "
           "content=%s message=%s\n",
           method_names[m], call_key, cgrpc_status_code_name(st.code),
           (long long)elapsed, replies, content_ok ? "ok" : "bad",
           st.message ? st.message : "");
    fflush(stdout);
    failed |= st.code != CGRPC_STATUS_OK || !content_ok;
    cgrpc_status_clear(&st);
    cgrpc_metadata_array_del(md);
    md = NULL;
  }
  cgrpc_channel_del(ch);
  return failed ? 1 : 0;
}
