/* SPDX-License-Identifier: MIT */
/*
 * Streaming calls with the blocking API on both ends: server-streaming,
 * client-streaming and bidi; metadata before the first message; cancel and
 * deadline in the middle of a stream; the receive limit per message; misuse.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "stream_harness.h"

/* A call option with a deadline far enough to turn a hang into a failure. */
static const cgrpc_call_options guard = {.timeout_ms = 30000};

/* Fails the test with the call's status when an operation returned |rv|
 * rather than |want|. */
static void check_rv(cgrpc_call *call, int rv, int want, const char *what,
                     int line) {
  cgrpc_status st = {0};
  if (rv == want)
    return;
  cgrpc_call_finish(call, &st);
  fail_msg("line %d: %s returned %d, expected %d; the call ended with %s "
           "(\"%s\")",
           line, what, rv, want, cgrpc_status_code_name(st.code),
           st.message ? st.message : "");
}
#define CHECK_RV(call, expr, want) check_rv(call, (expr), want, #expr, __LINE__)

/* Reads the rest of a Download/Chat stream, checking seq and data from
 * |*next| on; returns the number of chunks read. */
static int read_chunks(cgrpc_call *call, int64_t *next) {
  chunk_t *c;
  int n = 0, rv;
  while ((rv = cgrpc__test__stream_service__chat__read(call, &c)) == 1) {
    assert_int_equal(c->seq, *next);
    assert_true(stream_check(c->data.data, c->data.len, c->seq));
    protobuf_c_message_free_unpacked(&c->base, NULL);
    (*next)++;
    n++;
  }
  check_rv(call, rv, 0, "read", __LINE__);
  return n;
}

/* ---- server streaming ---- */

static void download_n(st_fixture *f, int count, int size) {
  download_t req = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
  cgrpc_call *call = NULL;
  cgrpc_status st = {0};
  int64_t next = 0;
  char want[32];
  req.count = count;
  req.size = size;
  assert_int_equal(cgrpc__test__stream_service__download__open(f->ch, &req,
                                                               &guard, &call),
                   0);
  assert_int_equal(read_chunks(call, &next), count);
  cgrpc_call_finish(call, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_OK);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_OK);
  /* The trailers follow the last message (Trailers-Only when none). */
  snprintf(want, sizeof want, "%d", count);
  assert_non_null(it_md_get(st.trailing_metadata, "x-count"));
  assert_string_equal(it_md_get(st.trailing_metadata, "x-count"), want);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
}

static void test_download_0_1_1000(void **state) {
  st_fixture *f = *state;
  download_n(f, 0, 10);
  download_n(f, 1, 10);
  download_n(f, 1000, 100);
  download_n(f, 3, 0); /* empty messages are messages too */
}

static void test_download_error_after_some(void **state) {
  st_fixture *f = *state;
  download_t req = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
  cgrpc_call *call = NULL;
  cgrpc_status st = {0};
  int64_t next = 0;
  req.count = 5;
  req.size = 32;
  req.status_code = CGRPC_STATUS_NOT_FOUND;
  req.status_message = "gone after five";
  assert_int_equal(cgrpc__test__stream_service__download__open(f->ch, &req,
                                                               &guard, &call),
                   0);
  assert_int_equal(read_chunks(call, &next), 5);
  cgrpc_call_finish(call, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_NOT_FOUND);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_NOT_FOUND);
  assert_non_null(st.message);
  assert_string_equal(st.message, "gone after five");
  assert_string_equal(it_md_get(st.trailing_metadata, "x-count"), "5");
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
}

/* finish() without reading: the messages not read are dropped, and the
 * window they took is given back, so a server with more to send than the
 * buffers hold still gets to the end. */
static void test_download_finish_without_reading(void **state) {
  st_fixture *f = *state;
  download_t req = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
  cgrpc_call *call = NULL;
  cgrpc_status st = {0};
  req.count = 500;
  req.size = 32 * 1024; /* 16 MiB: far more than the buffers hold */
  assert_int_equal(cgrpc__test__stream_service__download__open(f->ch, &req,
                                                               &guard, &call),
                   0);
  cgrpc_call_finish(call, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_OK);
  assert_string_equal(it_md_get(st.trailing_metadata, "x-count"), "500");
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  assert_int_equal(atomic_load(&f->srv.stats.sent), 500);
}

/* ---- client streaming ---- */

static void upload_n(st_fixture *f, int count, int size) {
  cgrpc_call *call = NULL;
  cgrpc_status st = {0};
  summary_t *reply = NULL;
  uint8_t *buf = malloc(size ? (size_t)size : 1);
  uint64_t sum = 0;
  int i, j;
  assert_non_null(buf);
  assert_int_equal(
      cgrpc__test__stream_service__upload__open(f->ch, &guard, &call), 0);
  for (i = 0; i < count; i++) {
    chunk_t c = CGRPC__TEST__CHUNK__INIT;
    stream_fill(buf, (size_t)size, i);
    for (j = 0; j < size; j++)
      sum += buf[j];
    c.data.data = buf;
    c.data.len = (size_t)size;
    c.seq = i;
    CHECK_RV(call, cgrpc__test__stream_service__upload__write(call, &c), 0);
  }
  cgrpc__test__stream_service__upload__finish(call, &reply, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_OK);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_OK);
  assert_non_null(reply);
  assert_int_equal(reply->count, count);
  assert_int_equal(reply->bytes, (int64_t)count * size);
  assert_int_equal(reply->sum, sum);
  assert_int_equal(reply->out_of_order, 0);
  if (count)
    assert_int_equal(reply->last_seq, count - 1);
  protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  free(buf);
}

static void test_upload_0_1_1000(void **state) {
  st_fixture *f = *state;
  upload_n(f, 0, 10);
  upload_n(f, 1, 10);
  upload_n(f, 1000, 100);
}

static void test_upload_error(void **state) {
  st_fixture *f = *state;
  cgrpc_call *call = NULL;
  cgrpc_status st = {0};
  summary_t *reply = (summary_t *)(uintptr_t)1;
  static uint8_t data[32 * 1024];
  int i, rv;
  assert_int_equal(
      cgrpc__test__stream_service__upload__open(f->ch, &guard, &call), 0);
  /* 10 MiB: once the handler has returned, the writer, blocked on a full
   * queue, must be woken with CLOSED. */
  for (i = 0; i < 320; i++) {
    chunk_t c = CGRPC__TEST__CHUNK__INIT;
    c.data.data = data;
    c.data.len = sizeof data;
    c.seq = i;
    c.status_code = i == 3 ? CGRPC_STATUS_FAILED_PRECONDITION : 0;
    rv = cgrpc__test__stream_service__upload__write(call, &c);
    /* Once the server has answered, writes report CLOSED. */
    assert_true(rv == 0 || rv == CGRPC_ERR_CLOSED);
  }
  cgrpc__test__stream_service__upload__finish(call, &reply, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_FAILED_PRECONDITION);
  assert_null(reply);
  assert_string_equal(st.message, "upload ended at chunk 3");
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
}

/* ---- bidi ---- */

static void test_chat_ping_pong(void **state) {
  st_fixture *f = *state;
  enum { N = 200 };
  cgrpc_call *call = NULL;
  cgrpc_status st = {0};
  uint8_t buf[256];
  chunk_t *r = NULL;
  int i;
  assert_int_equal(cgrpc__test__stream_service__chat__open(f->ch, &guard, &call),
                   0);
  for (i = 0; i < N; i++) {
    chunk_t c = CGRPC__TEST__CHUNK__INIT;
    size_t len = (size_t)(i % 256);
    stream_fill(buf, len, i);
    c.data.data = buf;
    c.data.len = len;
    c.seq = i;
    CHECK_RV(call, cgrpc__test__stream_service__chat__write(call, &c), 0);
    CHECK_RV(call, cgrpc__test__stream_service__chat__read(call, &r), 1);
    assert_int_equal(r->seq, i);
    assert_int_equal(r->data.len, len);
    assert_true(stream_check(r->data.data, len, i));
    protobuf_c_message_free_unpacked(&r->base, NULL);
  }
  assert_int_equal(cgrpc_call_writes_done(call), 0);
  assert_int_equal(cgrpc__test__stream_service__chat__read(call, &r), 0);
  assert_null(r);
  cgrpc_call_finish(call, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_OK);
  assert_string_equal(it_md_get(st.trailing_metadata, "x-count"), "200");
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
}

/* One thread writes every message before reading any: the queues and
 * windows on the way (a few MiB) hold them all, so nothing deadlocks. */
static void test_chat_write_all_then_read_all(void **state) {
  st_fixture *f = *state;
  enum { N = 10000, SIZE = 64 };
  cgrpc_call *call = NULL;
  cgrpc_status st = {0};
  uint8_t buf[SIZE];
  int64_t next = 0;
  int i;
  assert_int_equal(cgrpc__test__stream_service__chat__open(f->ch, &guard, &call),
                   0);
  for (i = 0; i < N; i++) {
    chunk_t c = CGRPC__TEST__CHUNK__INIT;
    stream_fill(buf, SIZE, i);
    c.data.data = buf;
    c.data.len = SIZE;
    c.seq = i;
    CHECK_RV(call, cgrpc__test__stream_service__chat__write(call, &c), 0);
  }
  assert_int_equal(cgrpc_call_writes_done(call), 0);
  assert_int_equal(read_chunks(call, &next), N);
  cgrpc_call_finish(call, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_OK);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_OK);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  assert_int_equal(atomic_load(&f->srv.stats.received), N);
}

/* ---- initial metadata before any message ---- */

static void test_initial_metadata_early(void **state) {
  st_fixture *f = *state;
  download_t req = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
  cgrpc_metadata_array *md_out = NULL;
  cgrpc_call_options opts = {.timeout_ms = 30000};
  const cgrpc_metadata_array *md;
  cgrpc_call *call = NULL;
  cgrpc_status st = {0};
  int64_t next = 0, t0;

  /* Server streaming: the handler sends its headers, then waits at the
   * gate, so they can only arrive before any message. */
  req.count = 3;
  req.size = 8;
  req.early_metadata = 1;
  req.gate = 1;
  assert_int_equal(cgrpc__test__stream_service__download__open(f->ch, &req,
                                                               &guard, &call),
                   0);
  t0 = it_now_ms();
  md = cgrpc_call_initial_metadata(call);
  assert_true(it_now_ms() - t0 < 5000); /* the gate holds for 10 s */
  assert_non_null(md);
  assert_string_equal(it_md_get(md, "x-stream"), "download");
  assert_int_equal(atomic_load(&f->srv.stats.sent), 0);
  atomic_store(&f->srv.stats.gate, 1);
  assert_int_equal(read_chunks(call, &next), 3);
  cgrpc_call_finish(call, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_OK);
  /* The status keeps the initial metadata too. */
  assert_string_equal(it_md_get(st.initial_metadata, "x-stream"), "download");
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);

  /* Bidi: the headers come before the client has written anything. */
  assert_int_equal(cgrpc_metadata_array_new(&md_out), 0);
  assert_int_equal(cgrpc_metadata_array_add(md_out, "x-early", "1"), 0);
  opts.metadata = md_out;
  assert_int_equal(cgrpc__test__stream_service__chat__open(f->ch, &opts, &call),
                   0);
  md = cgrpc_call_initial_metadata(call);
  assert_non_null(md);
  assert_string_equal(it_md_get(md, "x-stream"), "chat");
  assert_int_equal(cgrpc_call_writes_done(call), 0);
  next = 0;
  assert_int_equal(read_chunks(call, &next), 0);
  cgrpc_call_finish(call, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_OK);
  assert_string_equal(it_md_get(st.trailing_metadata, "x-count"), "0");
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  cgrpc_metadata_array_del(md_out);

  /* Without early headers, a stream with no message is Trailers-Only and
   * has no initial metadata. */
  assert_int_equal(cgrpc__test__stream_service__chat__open(f->ch, &guard, &call),
                   0);
  assert_int_equal(cgrpc_call_writes_done(call), 0);
  assert_null(cgrpc_call_initial_metadata(call));
  cgrpc_call_finish(call, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_OK);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
}

/* ---- cancel and deadline in the middle of a stream ---- */

static void test_cancel_mid_stream_bidi(void **state) {
  st_fixture *f = *state;
  cgrpc_call *call = NULL;
  cgrpc_status st = {0};
  chunk_t *r = NULL;
  int i;
  assert_int_equal(cgrpc__test__stream_service__chat__open(f->ch, &guard, &call),
                   0);
  for (i = 0; i < 3; i++) {
    chunk_t c = CGRPC__TEST__CHUNK__INIT;
    c.seq = i;
    CHECK_RV(call, cgrpc__test__stream_service__chat__write(call, &c), 0);
    CHECK_RV(call, cgrpc__test__stream_service__chat__read(call, &r), 1);
    protobuf_c_message_free_unpacked(&r->base, NULL);
  }
  /* The handler now waits in read: the cancel must wake it. */
  cgrpc_call_cancel(call);
  cgrpc_call_finish(call, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_CANCELLED);
  cgrpc_status_clear(&st);
  {
    chunk_t c = CGRPC__TEST__CHUNK__INIT;
    assert_int_equal(cgrpc__test__stream_service__chat__write(call, &c),
                     CGRPC_ERR_CLOSED);
  }
  assert_int_equal(it_wait_flag(&f->srv.stats.closed_seen, 1, IT_WAIT_MS), 1);
  assert_int_equal(atomic_load(&f->srv.stats.last_error), CGRPC_ERR_CLOSED);
  assert_int_equal(atomic_load(&f->srv.stats.cancelled_seen), 1);
  cgrpc_call_unref(call);
}

static void test_cancel_mid_stream_download(void **state) {
  st_fixture *f = *state;
  download_t req = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
  cgrpc_call *call = NULL;
  cgrpc_status st = {0};
  chunk_t *r = NULL;
  int i;
  req.count = 1000000;
  req.size = 1000;
  assert_int_equal(cgrpc__test__stream_service__download__open(f->ch, &req,
                                                               &guard, &call),
                   0);
  for (i = 0; i < 5; i++) {
    CHECK_RV(call, cgrpc__test__stream_service__download__read(call, &r), 1);
    assert_int_equal(r->seq, i);
    protobuf_c_message_free_unpacked(&r->base, NULL);
  }
  /* The handler is blocked in write (the client reads no more). */
  cgrpc_call_cancel(call);
  cgrpc_call_finish(call, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_CANCELLED);
  cgrpc_status_clear(&st);
  assert_int_equal(it_wait_flag(&f->srv.stats.closed_seen, 1, IT_WAIT_MS), 1);
  assert_int_equal(atomic_load(&f->srv.stats.cancelled_seen), 1);
  assert_true(atomic_load(&f->srv.stats.sent) < req.count);
  cgrpc_call_unref(call);
}

static void test_deadline_mid_stream(void **state) {
  st_fixture *f = *state;
  download_t req = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
  cgrpc_call_options opts = {.timeout_ms = 300};
  cgrpc_call *call = NULL;
  cgrpc_status st = {0};
  int64_t next = 0, t0 = it_now_ms();
  int n;
  req.count = 100000;
  req.size = 16;
  req.interval_us = 2000;
  assert_int_equal(cgrpc__test__stream_service__download__open(f->ch, &req,
                                                               &opts, &call),
                   0);
  n = read_chunks(call, &next);
  assert_true(n > 0);
  assert_true(n < req.count);
  cgrpc_call_finish(call, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_DEADLINE_EXCEEDED);
  assert_true(it_now_ms() - t0 < 5000);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  /* The server's deadline fires too: the handler's write fails. */
  assert_int_equal(it_wait_flag(&f->srv.stats.closed_seen, 1, IT_WAIT_MS), 1);
  assert_int_equal(atomic_load(&f->srv.stats.cancelled_seen), 1);
}

/* ---- the receive limit applies to each message of a stream ---- */

static void test_max_receive_per_message_server(void **state) {
  st_fixture *f = *state;
  st_config cfg = {-1, 0, 64 * 1024, 0};
  st_server small;
  cgrpc_channel *ch;
  cgrpc_call *call = NULL;
  cgrpc_status st = {0};
  summary_t *reply = NULL;
  static uint8_t big[100 * 1024];
  int i, rv;
  (void)f;
  assert_int_equal(st_server_start(&small, &cfg), 0);
  ch = st_channel(&small, 0);
  assert_non_null(ch);
  /* Under the limit, many messages make more than the limit in total. */
  assert_int_equal(
      cgrpc__test__stream_service__upload__open(ch, &guard, &call), 0);
  for (i = 0; i < 10; i++) {
    chunk_t c = CGRPC__TEST__CHUNK__INIT;
    c.data.data = big;
    c.data.len = 60 * 1024;
    c.seq = i;
    CHECK_RV(call, cgrpc__test__stream_service__upload__write(call, &c), 0);
  }
  cgrpc__test__stream_service__upload__finish(call, &reply, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_OK);
  assert_int_equal(reply->count, 10);
  protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);

  /* One oversized message in the middle fails the call. */
  assert_int_equal(
      cgrpc__test__stream_service__upload__open(ch, &guard, &call), 0);
  for (i = 0; i < 10; i++) {
    chunk_t c = CGRPC__TEST__CHUNK__INIT;
    c.data.data = big;
    c.data.len = i == 5 ? sizeof big : 1024;
    c.seq = i;
    rv = cgrpc__test__stream_service__upload__write(call, &c);
    assert_true(rv == 0 || rv == CGRPC_ERR_CLOSED);
  }
  cgrpc__test__stream_service__upload__finish(call, &reply, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_null(reply);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  /* The handler read the first five and then saw the call end. */
  assert_int_equal(it_wait_flag(&small.stats.finished, 2, IT_WAIT_MS), 2);
  assert_int_equal(atomic_load(&small.stats.received), 10 + 5);

  /* The same for bidi. */
  assert_int_equal(cgrpc__test__stream_service__chat__open(ch, &guard, &call),
                   0);
  for (i = 0; i < 10; i++) {
    chunk_t c = CGRPC__TEST__CHUNK__INIT;
    c.data.data = big;
    c.data.len = i == 5 ? sizeof big : 1024;
    c.seq = i;
    rv = cgrpc__test__stream_service__chat__write(call, &c);
    assert_true(rv == 0 || rv == CGRPC_ERR_CLOSED);
  }
  cgrpc_call_finish(call, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_RESOURCE_EXHAUSTED);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  cgrpc_channel_del(ch);
  st_server_stop(&small, 1000);
}

static void test_max_receive_per_message_client(void **state) {
  st_fixture *f = *state;
  cgrpc_channel *ch = st_channel(&f->srv, 64 * 1024);
  cgrpc_call *call = NULL;
  cgrpc_status st = {0};
  static uint8_t big[100 * 1024];
  chunk_t *r = NULL;
  int i, got = 0;
  assert_non_null(ch);
  assert_int_equal(cgrpc__test__stream_service__chat__open(ch, &guard, &call),
                   0);
  for (i = 0; i < 10; i++) {
    chunk_t c = CGRPC__TEST__CHUNK__INIT;
    int rv;
    c.data.data = big;
    c.data.len = i == 5 ? sizeof big : 1024;
    c.seq = i;
    rv = cgrpc__test__stream_service__chat__write(call, &c);
    assert_true(rv == 0 || rv == CGRPC_ERR_CLOSED);
  }
  cgrpc_call_writes_done(call);
  while (cgrpc__test__stream_service__chat__read(call, &r) == 1) {
    assert_int_equal(r->seq, got);
    got++;
    protobuf_c_message_free_unpacked(&r->base, NULL);
  }
  assert_true(got <= 5); /* the echo of #5 is too large for this client */
  cgrpc_call_finish(call, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_RESOURCE_EXHAUSTED);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  cgrpc_channel_del(ch);
}

/* ---- misuse ---- */

static void test_misuse(void **state) {
  st_fixture *f = *state;
  chunk_t c = CGRPC__TEST__CHUNK__INIT;
  chunk_t *reply = NULL;
  cgrpc_call *call = NULL;
  cgrpc_status st = {0};
  assert_int_equal(cgrpc__test__stream_service__chat__open(f->ch, &guard, &call),
                   0);
  assert_int_equal(cgrpc__test__stream_service__chat__write(call, &c), 0);
  assert_int_equal(cgrpc_call_writes_done(call), 0);
  /* The server answers once our half ends, so the call may be over by
   * now: then the write says so (CLOSED) before it says misuse. */
  {
    int rv = cgrpc__test__stream_service__chat__write(call, &c);
    assert_true(rv == CGRPC_ERR_INVALID_STATE || rv == CGRPC_ERR_CLOSED);
  }
  assert_int_equal(cgrpc_call_writes_done(call), CGRPC_ERR_INVALID_STATE);
  /* A message of the wrong type. */
  {
    download_t d = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
    assert_int_equal(cgrpc_call_write(call, &d.base),
                     CGRPC_ERR_INVALID_ARGUMENT);
  }
  /* The async forms on a blocking call. */
  assert_int_equal(cgrpc_call_write_async(call, &c.base),
                   CGRPC_ERR_INVALID_STATE);
  assert_int_not_equal(cgrpc_call_read_async(call), 0);
  cgrpc_call_finish(call, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_OK);
  assert_string_equal(it_md_get(st.trailing_metadata, "x-count"), "1");
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);

  /* The streaming calls on a unary method's ctx. */
  c.seq = 42;
  assert_int_equal(cgrpc__test__stream_service__unary__call(f->ch, &c, &reply,
                                                            NULL, &st),
                   CGRPC_STATUS_OK);
  assert_int_equal(reply->seq, 42);
  protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_status_clear(&st);
  assert_int_equal(atomic_load(&f->srv.stats.misuse_read),
                   CGRPC_ERR_INVALID_STATE);
  assert_int_equal(atomic_load(&f->srv.stats.misuse_write),
                   CGRPC_ERR_INVALID_STATE);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
#define T(name) ST_FIXTURE_TEST(name)
      T(test_download_0_1_1000),
      T(test_download_error_after_some),
      T(test_download_finish_without_reading),
      T(test_upload_0_1_1000),
      T(test_upload_error),
      T(test_chat_ping_pong),
      T(test_chat_write_all_then_read_all),
      T(test_initial_metadata_early),
      T(test_cancel_mid_stream_bidi),
      T(test_cancel_mid_stream_download),
      T(test_deadline_mid_stream),
      T(test_max_receive_per_message_server),
      T(test_max_receive_per_message_client),
      T(test_misuse),
#undef T
  };
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
