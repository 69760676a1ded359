/* SPDX-License-Identifier: MIT */
/*
 * The async sides of streaming: the client callback API (chaining reads and
 * writes from the callbacks, cancel) against the blocking server, and the
 * blocking client against an inline (max_workers = 0) server whose handlers
 * detach and use the async calls: thousands of open streams, no thread each.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "stream_harness.h"

static int setup_inline(void **state) {
  st_config cfg = {0, 1, 0, 4096};
  return st_fixture_start(state, &cfg);
}

static const cgrpc_call_options guard = {.timeout_ms = 30000};

/* ---- the client callback API ---- */

/* State shared by the callbacks of one async call.  The callbacks run on the
 * channel's loop thread one at a time; the test thread only waits on |done|
 * and reads the rest once it is set. */
typedef struct actx {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int done;
  cgrpc_status status;
  int64_t n;            /* messages to send (chat, upload) */
  int64_t next_write;   /* next seq to write */
  int64_t reads;        /* messages received */
  int64_t writes_done_ok, writes_done_failed;
  int eos;              /* on_read got NULL */
  int bad;              /* a check failed inside a callback */
  int write_wanted;     /* a write waits for the pending one to complete */
  int cancel_after;     /* cancel once this many messages were read */
  summary_t *reply;
  uint8_t buf[512];
} actx;

static void actx_init(actx *a) {
  memset(a, 0, sizeof *a);
  pthread_mutex_init(&a->lock, NULL);
  pthread_cond_init(&a->cond, NULL);
}

static void actx_fini(actx *a) {
  cgrpc_status_clear(&a->status);
  if (a->reply)
    protobuf_c_message_free_unpacked(&a->reply->base, NULL);
  pthread_mutex_destroy(&a->lock);
  pthread_cond_destroy(&a->cond);
}

static int actx_wait(actx *a, int ms) {
  int64_t end = it_now_ms() + ms;
  int done;
  for (;;) {
    pthread_mutex_lock(&a->lock);
    done = a->done;
    pthread_mutex_unlock(&a->lock);
    if (done || it_now_ms() >= end)
      return done;
    it_sleep_ms(2);
  }
}

static void on_done(cgrpc_call *call, const cgrpc_status *status, void *ud) {
  actx *a = ud;
  (void)status;
  pthread_mutex_lock(&a->lock);
  if (a->done++ == 0)
    cgrpc_call_take_status(call, &a->status);
  pthread_cond_broadcast(&a->cond);
  pthread_mutex_unlock(&a->lock);
}

/* Writes chunk |a->next_write| (async); the chat sends lockstep. */
static void write_next(cgrpc_call *call, actx *a) {
  chunk_t c = CGRPC__TEST__CHUNK__INIT;
  size_t len = (size_t)(a->next_write % (int64_t)sizeof a->buf);
  int rv;
  stream_fill(a->buf, len, a->next_write);
  c.data.data = a->buf;
  c.data.len = len;
  c.seq = a->next_write++; /* before: on_write_done may run at once */
  rv = cgrpc__test__stream_service__chat__write_async(call, &c);
  if (rv == CGRPC_ERR_INVALID_STATE) {
    /* The previous write has not reported yet: on_write_done sends it. */
    a->next_write--;
    a->write_wanted = 1;
    return;
  }
  if (rv != 0)
    a->bad = 1;
}

static int check_chunk(actx *a, ProtobufCMessage *msg) {
  chunk_t *c = (chunk_t *)msg;
  int ok = c->seq == a->reads && stream_check(c->data.data, c->data.len, c->seq);
  if (!ok)
    a->bad = 1;
  a->reads++;
  protobuf_c_message_free_unpacked(msg, NULL);
  return ok;
}

/* Download: keep asking for the next message until the end. */
static void dl_on_read(cgrpc_call *call, ProtobufCMessage *msg, void *ud) {
  actx *a = ud;
  if (!msg) {
    a->eos = 1;
    return;
  }
  check_chunk(a, msg);
  if (a->cancel_after && a->reads == a->cancel_after) {
    cgrpc_call_cancel(call);
    return; /* no more reads: on_done still comes */
  }
  if (cgrpc_call_read_async(call) != 0)
    a->bad = 1;
}

/* Downloads |count| chunks of |size| bytes with the callback API, read by
 * dl_on_read into |a| (set up by the caller), and waits until the call is
 * done.  Returns the call. */
static cgrpc_call *download_async(st_fixture *f, actx *a, int count, int size) {
  static const cgrpc_call_callbacks cbs = {dl_on_read, NULL, on_done};
  download_t req = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
  cgrpc_call *call = NULL;
  req.count = count;
  req.size = size;
  assert_int_equal(cgrpc__test__stream_service__download__open_async(
                       f->ch, &req, &guard, &cbs, a, &call),
                   0);
  assert_int_equal(cgrpc_call_read_async(call), 0);
  assert_int_equal(actx_wait(a, IT_WAIT_MS), 1);
  return call;
}

static void test_async_download(void **state) {
  st_fixture *f = *state;
  cgrpc_call *call;
  actx a;
  actx_init(&a);
  call = download_async(f, &a, 500, 100);
  IT_ASSERT_STATUS(a.status, CGRPC_STATUS_OK);
  assert_int_equal(a.bad, 0);
  assert_int_equal(a.reads, 500);
  assert_int_equal(a.eos, 1);
  assert_string_equal(it_md_get(a.status.trailing_metadata, "x-count"), "500");
  /* Once done, no more reads. */
  assert_int_equal(cgrpc_call_read_async(call), CGRPC_ERR_INVALID_STATE);
  cgrpc_call_unref(call);
  it_sleep_ms(20);
  assert_int_equal(a.done, 1);
  actx_fini(&a);
}

/* A call that is not started yet: the first read is asked for before any
 * message can arrive, so even a stream that ends at once loses none.  (With
 * open_async, on_done may come before a read asked for right after it.) */
static void test_async_unstarted_reads_everything(void **state) {
  st_fixture *f = *state;
  static const cgrpc_call_callbacks cbs = {dl_on_read, NULL, on_done};
  int i, n = st_quick() ? 50 : 200;
  for (i = 0; i < n; i++) {
    download_t req = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
    cgrpc_call *call = NULL;
    actx a;
    actx_init(&a);
    req.count = 1 + i % 5;
    req.size = 16;
    assert_int_equal(cgrpc__test__stream_service__download__new_async(
                         f->ch, &req, &guard, &cbs, &a, &call),
                     0);
    assert_int_equal(cgrpc_call_read_async(call), 0);
    it_sleep_ms(i % 3 == 0 ? 1 : 0); /* nothing runs before the start */
    assert_int_equal(a.done, 0);
    assert_int_equal(cgrpc_call_start(call), 0);
    assert_int_equal(cgrpc_call_start(call), CGRPC_ERR_INVALID_STATE);
    assert_int_equal(actx_wait(&a, IT_WAIT_MS), 1);
    IT_ASSERT_STATUS(a.status, CGRPC_STATUS_OK);
    assert_int_equal(a.bad, 0);
    assert_int_equal(a.reads, req.count);
    assert_int_equal(a.eos, 1);
    cgrpc_call_unref(call);
    actx_fini(&a);
  }
}

/* Released before its start: freed, and no callback runs; cancelled
 * before its start: it ends at once when started. */
static void test_async_unstarted_release_and_cancel(void **state) {
  st_fixture *f = *state;
  static const cgrpc_call_callbacks cbs = {dl_on_read, NULL, on_done};
  download_t req = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
  cgrpc_call *call = NULL;
  actx a;
  actx_init(&a);
  req.count = 3;
  req.size = 16;
  assert_int_equal(cgrpc__test__stream_service__download__new_async(
                       f->ch, &req, &guard, &cbs, &a, &call),
                   0);
  assert_int_equal(cgrpc_call_read_async(call), 0);
  cgrpc_call_unref(call);
  it_sleep_ms(50);
  assert_int_equal(a.done, 0);
  assert_int_equal(a.reads, 0);

  assert_int_equal(cgrpc__test__stream_service__download__new_async(
                       f->ch, &req, &guard, &cbs, &a, &call),
                   0);
  cgrpc_call_cancel(call);
  assert_int_equal(cgrpc_call_start(call), 0);
  assert_int_equal(actx_wait(&a, IT_WAIT_MS), 1);
  IT_ASSERT_STATUS(a.status, CGRPC_STATUS_CANCELLED);
  cgrpc_call_unref(call);
  actx_fini(&a);

  /* A call from open_async has started already. */
  actx_init(&a);
  assert_int_equal(cgrpc__test__stream_service__download__open_async(
                       f->ch, &req, &guard, &cbs, &a, &call),
                   0);
  assert_int_equal(cgrpc_call_start(call), CGRPC_ERR_INVALID_STATE);
  assert_int_equal(actx_wait(&a, IT_WAIT_MS), 1);
  cgrpc_call_unref(call);
  actx_fini(&a);
}

/* Chat in lockstep, every step started from a callback. */
static void chat_on_read(cgrpc_call *call, ProtobufCMessage *msg, void *ud) {
  actx *a = ud;
  if (!msg) {
    a->eos = 1;
    return;
  }
  check_chunk(a, msg);
  if (a->next_write < a->n)
    write_next(call, a);
  else if (cgrpc_call_writes_done(call) != 0)
    a->bad = 1;
  if (cgrpc_call_read_async(call) != 0)
    a->bad = 1;
}

static void chat_on_write_done(cgrpc_call *call, int ok, void *ud) {
  actx *a = ud;
  if (ok)
    a->writes_done_ok++;
  else
    a->writes_done_failed++;
  if (a->write_wanted && ok) {
    a->write_wanted = 0;
    write_next(call, a);
  }
}

static void test_async_chat_chained(void **state) {
  st_fixture *f = *state;
  static const cgrpc_call_callbacks cbs = {chat_on_read, chat_on_write_done,
                                           on_done};
  cgrpc_call *call = NULL;
  actx a;
  actx_init(&a);
  a.n = 300;
  assert_int_equal(cgrpc__test__stream_service__chat__open_async(
                       f->ch, &guard, &cbs, &a, &call),
                   0);
  /* The test thread starts the first round; callbacks do the rest. */
  write_next(call, &a);
  assert_int_equal(cgrpc_call_read_async(call), 0);
  assert_int_equal(actx_wait(&a, IT_WAIT_MS * 2), 1);
  IT_ASSERT_STATUS(a.status, CGRPC_STATUS_OK);
  assert_int_equal(a.bad, 0);
  assert_int_equal(a.reads, 300);
  assert_int_equal(a.writes_done_ok, 300);
  assert_int_equal(a.writes_done_failed, 0);
  assert_int_equal(a.eos, 1);
  assert_string_equal(it_md_get(a.status.trailing_metadata, "x-count"), "300");
  cgrpc_call_unref(call);
  actx_fini(&a);
}

/* Upload: each write is started from the previous one's on_write_done. */
static void up_on_write_done(cgrpc_call *call, int ok, void *ud) {
  actx *a = ud;
  if (!ok) {
    a->writes_done_failed++;
    return;
  }
  a->writes_done_ok++;
  if (a->next_write < a->n) {
    write_next(call, a);
    return;
  }
  if (cgrpc_call_writes_done(call) != 0 || cgrpc_call_read_async(call) != 0)
    a->bad = 1;
}

static void up_on_read(cgrpc_call *call, ProtobufCMessage *msg, void *ud) {
  actx *a = ud;
  if (!msg) {
    a->eos = 1;
    return;
  }
  if (a->reply) {
    a->bad = 1; /* a second reply */
    protobuf_c_message_free_unpacked(msg, NULL);
  } else {
    a->reply = (summary_t *)msg;
  }
  if (cgrpc_call_read_async(call) != 0)
    a->bad = 1;
}

static void test_async_upload_chained(void **state) {
  st_fixture *f = *state;
  static const cgrpc_call_callbacks cbs = {up_on_read, up_on_write_done,
                                           on_done};
  cgrpc_call *call = NULL;
  actx a;
  actx_init(&a);
  a.n = 1000;
  assert_int_equal(cgrpc__test__stream_service__upload__open_async(
                       f->ch, &guard, &cbs, &a, &call),
                   0);
  write_next(call, &a);
  assert_int_equal(actx_wait(&a, IT_WAIT_MS * 2), 1);
  IT_ASSERT_STATUS(a.status, CGRPC_STATUS_OK);
  assert_int_equal(a.bad, 0);
  assert_int_equal(a.writes_done_ok, 1000);
  assert_non_null(a.reply);
  assert_int_equal(a.reply->count, 1000);
  assert_int_equal(a.reply->out_of_order, 0);
  assert_int_equal(a.reply->last_seq, 999);
  assert_int_equal(a.eos, 1);
  cgrpc_call_unref(call);
  actx_fini(&a);
}

/* Cancel from inside on_read, in the middle of a download. */
static void test_async_cancel_from_callback(void **state) {
  st_fixture *f = *state;
  cgrpc_call *call;
  actx a;
  actx_init(&a);
  a.cancel_after = 10;
  call = download_async(f, &a, 1000000, 1000);
  IT_ASSERT_STATUS(a.status, CGRPC_STATUS_CANCELLED);
  assert_int_equal(a.reads, 10);
  assert_int_equal(a.bad, 0);
  assert_int_equal(it_wait_flag(&f->srv.stats.closed_seen, 1, IT_WAIT_MS), 1);
  assert_int_equal(atomic_load(&f->srv.stats.cancelled_seen), 1);
  cgrpc_call_unref(call);
  actx_fini(&a);
}

/* Cancel from the test thread while a read and a write are pending. */
static void idle_on_read(cgrpc_call *call, ProtobufCMessage *msg, void *ud) {
  actx *a = ud;
  (void)call;
  if (msg) {
    a->reads++;
    protobuf_c_message_free_unpacked(msg, NULL);
  } else {
    a->eos = 1;
  }
}

static void test_async_cancel_pending(void **state) {
  st_fixture *f = *state;
  static const cgrpc_call_callbacks cbs = {idle_on_read, NULL, on_done};
  cgrpc_call *call = NULL;
  actx a;
  actx_init(&a);
  assert_int_equal(cgrpc__test__stream_service__chat__open_async(
                       f->ch, &guard, &cbs, &a, &call),
                   0);
  assert_int_equal(cgrpc_call_read_async(call), 0);
  assert_int_equal(cgrpc_call_read_async(call), CGRPC_ERR_INVALID_STATE);
  assert_int_equal(it_wait_flag(&f->srv.stats.handlers, 1, IT_WAIT_MS), 1);
  cgrpc_call_cancel(call);
  assert_int_equal(actx_wait(&a, IT_WAIT_MS), 1);
  IT_ASSERT_STATUS(a.status, CGRPC_STATUS_CANCELLED);
  assert_int_equal(a.eos, 1); /* the pending read ended before on_done */
  assert_int_equal(it_wait_flag(&f->srv.stats.closed_seen, 1, IT_WAIT_MS), 1);
  assert_int_equal(atomic_load(&f->srv.stats.cancelled_seen), 1);
  cgrpc_call_unref(call);
  actx_fini(&a);
}

/* ---- the blocking client against the inline async server ---- */

static int count_threads(void) {
  DIR *d = opendir("/proc/self/task");
  struct dirent *e;
  int n = 0;
  if (!d)
    return -1;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

static void test_inline_many_open_streams(void **state) {
  st_fixture *f = *state;
  enum { N = 2000 };
  cgrpc_call **calls = calloc(N, sizeof *calls);
  int i, threads_before = count_threads(), threads_open;
  double t0 = st_now_s();
  assert_non_null(calls);
  for (i = 0; i < N; i++)
    assert_int_equal(
        cgrpc__test__stream_service__chat__open(f->ch, &guard, &calls[i]), 0);
  /* Every stream is open on the server at once, each a detached call. */
  assert_int_equal(it_wait_flag(&f->srv.stats.handlers, N, IT_WAIT_MS * 3), N);
  assert_int_equal(atomic_load(&f->srv.stats.in_flight), N);
  assert_int_equal(atomic_load(&f->srv.stats.finished), 0);
  threads_open = count_threads();
  print_message("%d streams open on an inline server after %.2f s; threads "
                "%d before, %d with them open\n",
                N, st_now_s() - t0, threads_before, threads_open);
  assert_true(threads_open - threads_before < 16);
  for (i = 0; i < N; i++) {
    chunk_t c = CGRPC__TEST__CHUNK__INIT;
    uint8_t b[16];
    stream_fill(b, sizeof b, i);
    c.data.data = b;
    c.data.len = sizeof b;
    c.seq = i;
    assert_int_equal(cgrpc__test__stream_service__chat__write(calls[i], &c),
                     0);
  }
  for (i = 0; i < N; i++) {
    chunk_t *r = NULL;
    cgrpc_status st = {0};
    assert_int_equal(cgrpc__test__stream_service__chat__read(calls[i], &r), 1);
    assert_int_equal(r->seq, i);
    assert_true(stream_check(r->data.data, r->data.len, i));
    protobuf_c_message_free_unpacked(&r->base, NULL);
    assert_int_equal(cgrpc_call_writes_done(calls[i]), 0);
    assert_int_equal(cgrpc__test__stream_service__chat__read(calls[i], &r), 0);
    cgrpc_call_finish(calls[i], &st);
    IT_ASSERT_STATUS(st, CGRPC_STATUS_OK);
    assert_string_equal(it_md_get(st.trailing_metadata, "x-count"), "1");
    cgrpc_status_clear(&st);
    cgrpc_call_unref(calls[i]);
  }
  assert_int_equal(it_wait_flag(&f->srv.stats.finished, N, IT_WAIT_MS), N);
  assert_int_equal(atomic_load(&f->srv.stats.in_flight), 0);
  print_message("%d streams done in %.2f s\n", N, st_now_s() - t0);
  free(calls);
}

static void test_inline_download_upload(void **state) {
  st_fixture *f = *state;
  static const int counts[] = {0, 1, 1000};
  size_t k;
  for (k = 0; k < sizeof counts / sizeof counts[0]; k++) {
    download_t req = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
    cgrpc_call *call = NULL;
    cgrpc_status st = {0};
    summary_t *reply = NULL;
    chunk_t *r;
    int n = 0, i, rv;
    req.count = counts[k];
    req.size = 50;
    req.early_metadata = 1;
    assert_int_equal(cgrpc__test__stream_service__download__open(
                         f->ch, &req, &guard, &call),
                     0);
    assert_string_equal(
        it_md_get(cgrpc_call_initial_metadata(call), "x-stream"), "download");
    while ((rv = cgrpc__test__stream_service__download__read(call, &r)) == 1) {
      assert_int_equal(r->seq, n);
      assert_true(stream_check(r->data.data, r->data.len, n));
      protobuf_c_message_free_unpacked(&r->base, NULL);
      n++;
    }
    assert_int_equal(rv, 0);
    assert_int_equal(n, counts[k]);
    cgrpc_call_finish(call, &st);
    IT_ASSERT_STATUS(st, CGRPC_STATUS_OK);
    cgrpc_status_clear(&st);
    cgrpc_call_unref(call);

    assert_int_equal(
        cgrpc__test__stream_service__upload__open(f->ch, &guard, &call), 0);
    for (i = 0; i < counts[k]; i++) {
      chunk_t c = CGRPC__TEST__CHUNK__INIT;
      c.seq = i;
      assert_int_equal(cgrpc__test__stream_service__upload__write(call, &c), 0);
    }
    cgrpc__test__stream_service__upload__finish(call, &reply, &st);
    IT_ASSERT_STATUS(st, CGRPC_STATUS_OK);
    assert_int_equal(reply->count, counts[k]);
    assert_int_equal(reply->out_of_order, 0);
    protobuf_c_message_free_unpacked(&reply->base, NULL);
    cgrpc_status_clear(&st);
    cgrpc_call_unref(call);
  }
  /* An error status after some messages. */
  {
    download_t req = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
    cgrpc_call *call = NULL;
    cgrpc_status st = {0};
    chunk_t *r;
    int n = 0;
    req.count = 3;
    req.status_code = CGRPC_STATUS_ABORTED;
    req.status_message = "async abort";
    assert_int_equal(cgrpc__test__stream_service__download__open(
                         f->ch, &req, &guard, &call),
                     0);
    while (cgrpc__test__stream_service__download__read(call, &r) == 1) {
      protobuf_c_message_free_unpacked(&r->base, NULL);
      n++;
    }
    assert_int_equal(n, 3);
    cgrpc_call_finish(call, &st);
    IT_ASSERT_STATUS(st, CGRPC_STATUS_ABORTED);
    assert_string_equal(st.message, "async abort");
    cgrpc_status_clear(&st);
    cgrpc_call_unref(call);
  }
}

static void test_inline_cancel(void **state) {
  st_fixture *f = *state;
  chunk_t c = CGRPC__TEST__CHUNK__INIT;
  cgrpc_call *call = NULL;
  cgrpc_status st = {0};
  chunk_t *r;
  assert_int_equal(cgrpc__test__stream_service__chat__open(f->ch, &guard, &call),
                   0);
  assert_int_equal(cgrpc__test__stream_service__chat__write(call, &c), 0);
  assert_int_equal(cgrpc__test__stream_service__chat__read(call, &r), 1);
  protobuf_c_message_free_unpacked(&r->base, NULL);
  cgrpc_call_cancel(call);
  cgrpc_call_finish(call, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_CANCELLED);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  /* The pending read_async ends with NULL and the call cancelled. */
  assert_int_equal(it_wait_flag(&f->srv.stats.closed_seen, 1, IT_WAIT_MS), 1);
  assert_int_equal(atomic_load(&f->srv.stats.cancelled_seen), 1);
  assert_int_equal(it_wait_flag(&f->srv.stats.finished, 1, IT_WAIT_MS), 1);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
#define B(name) ST_FIXTURE_TEST(name)
#define I(name)                                                                \
  cmocka_unit_test_setup_teardown(name, setup_inline, st_fixture_teardown)
      B(test_async_download),
      B(test_async_unstarted_reads_everything),
      B(test_async_unstarted_release_and_cancel),
      B(test_async_chat_chained),
      B(test_async_upload_chained),
      B(test_async_cancel_from_callback),
      B(test_async_cancel_pending),
      I(test_inline_many_open_streams),
      I(test_inline_download_upload),
      I(test_inline_cancel),
#undef B
#undef I
  };
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
