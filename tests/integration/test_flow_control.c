/* SPDX-License-Identifier: MIT */
/*
 * Flow control end to end (label "stress"): volume through one bidi stream
 * with memory that stays flat, and backpressure in both directions — a slow
 * reader stops a fast writer after a bounded number of messages.
 *
 * Client and server run in this process, so the resident set covers both.
 * Sanitizer builds and CGRPC_TEST_QUICK=1 move less data (st_quick()); the
 * memory bounds are checked only without sanitizers (ASan's quarantine and
 * shadow memory are not the library's buffering).
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

/* Bytes a stream may hold between a writer and a reader: the send queue
 * (256 KiB), the HTTP/2 stream window (1 MiB) and the receive queue's limit
 * (1 MiB) plus the window it may hold back (1 MiB), rounded up generously. */
#define BUFFERED_BOUND (4u << 20)

#ifdef CGRPC_TEST_SANITIZED
#define CHECK_RSS 0
#else
#define CHECK_RSS 1
#endif

static const cgrpc_call_options guard = {.timeout_ms = 120000};

static void report(const char *fmt, ...) CGRPC_PRINTF(1, 2);
static void report(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("[ FIGURES  ] ");
  vprintf(fmt, ap);
  printf("\n");
  fflush(stdout);
  va_end(ap);
}

/* ---- volume through one bidi stream ---- */

/* The writer side: |n| messages of |size| bytes whose first 8 bytes are the
 * seq, the rest from |base|; a checksum of everything written. */
typedef struct writer {
  pthread_t thread;
  cgrpc_call *call;
  int64_t n;
  size_t size;
  const uint8_t *base;
  stream_csum csum;
  int rv; /* the first failing write's result */
  atomic_llong written;
} writer;

static void *writer_run(void *arg) {
  writer *w = arg;
  uint8_t *buf = malloc(w->size ? w->size : 1);
  int64_t i;
  stream_csum_init(&w->csum);
  if (!buf) {
    w->rv = CGRPC_ERR_NOMEM;
    return NULL;
  }
  for (i = 0; i < w->n; i++) {
    chunk_t c = CGRPC__TEST__CHUNK__INIT;
    memcpy(buf, w->base, w->size);
    if (w->size >= 8)
      memcpy(buf, &i, 8);
    stream_csum_add(&w->csum, buf, w->size);
    c.data.data = buf;
    c.data.len = w->size;
    c.seq = i;
    w->rv = cgrpc__test__stream_service__chat__write(w->call, &c);
    if (w->rv != 0)
      break;
    atomic_fetch_add(&w->written, 1);
  }
  if (w->rv == 0)
    w->rv = cgrpc_call_writes_done(w->call);
  free(buf);
  return NULL;
}

typedef struct volume {
  double seconds;
  long rss_peak_kib; /* highest current RSS sampled */
  long rss_start_kib;
} volume;

/* Sends |n| messages of |size| bytes through Chat while reading the echoes;
 * checks count, order and content. */
static void chat_volume(st_fixture *f, int64_t n, size_t size, volume *v) {
  uint8_t *base = malloc(size ? size : 1);
  cgrpc_call *call = NULL;
  cgrpc_status st = {0};
  stream_csum rcsum;
  writer w;
  int64_t got = 0;
  double t0;
  int rv, bad_seq = 0;
  chunk_t *r;
  assert_non_null(base);
  stream_fill(base, size, 12345);
  memset(&w, 0, sizeof w);
  stream_csum_init(&rcsum);
  v->rss_start_kib = v->rss_peak_kib = st_rss_kib();
  assert_int_equal(cgrpc__test__stream_service__chat__open(f->ch, &guard, &call),
                   0);
  w.call = call;
  w.n = n;
  w.size = size;
  w.base = base;
  t0 = st_now_s();
  assert_int_equal(pthread_create(&w.thread, NULL, writer_run, &w), 0);
  while ((rv = cgrpc__test__stream_service__chat__read(call, &r)) == 1) {
    if (r->seq != got || r->data.len != size)
      bad_seq++;
    stream_csum_add(&rcsum, r->data.data, r->data.len);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    if ((++got & 63) == 0 || size >= 65536) {
      long rss = st_rss_kib();
      if (rss > v->rss_peak_kib)
        v->rss_peak_kib = rss;
    }
  }
  v->seconds = st_now_s() - t0;
  pthread_join(w.thread, NULL);
  cgrpc_call_finish(call, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_OK);
  assert_int_equal(rv, 0);
  assert_int_equal(w.rv, 0);
  assert_int_equal(got, n);
  assert_int_equal(bad_seq, 0);
  assert_true(rcsum.bytes == w.csum.bytes);
  assert_true(rcsum.a == w.csum.a && rcsum.b == w.csum.b);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  free(base);
}

static void test_bulk_1gib(void **state) {
  st_fixture *f = *state;
  const size_t size = 1u << 20;
  const int64_t n = st_quick() ? 64 : 1024;
  double mib = (double)n * (double)size / (1 << 20);
  volume v;
  chat_volume(f, n, size, &v);
  report("bulk: %.0f MiB each way through one bidi stream in 1 MiB messages: "
         "%.2f s, %.1f MB/s each way (%.1f MB/s both)",
         mib, v.seconds, mib * 1.048576 / v.seconds,
         2 * mib * 1.048576 / v.seconds);
  report("bulk: RSS at start %.1f MiB, sampled peak %.1f MiB, process peak "
         "(ru_maxrss) %.1f MiB",
         v.rss_start_kib / 1024.0, v.rss_peak_kib / 1024.0,
         st_peak_rss_kib() / 1024.0);
  if (CHECK_RSS)
    assert_true(st_peak_rss_kib() < 64 * 1024);
}

static void test_many_small(void **state) {
  st_fixture *f = *state;
  const int64_t n = st_quick() ? 20000 : 100000;
  volume v;
  chat_volume(f, n, 32, &v);
  report("small: %lld messages of 32 bytes each way: %.2f s, %.0f msgs/s each "
         "way",
         (long long)n, v.seconds, (double)n / v.seconds);
  report("small: RSS at start %.1f MiB, sampled peak %.1f MiB (growth %.1f "
         "MiB), process peak %.1f MiB",
         v.rss_start_kib / 1024.0, v.rss_peak_kib / 1024.0,
         (v.rss_peak_kib - v.rss_start_kib) / 1024.0,
         st_peak_rss_kib() / 1024.0);
  if (CHECK_RSS)
    assert_true(v.rss_peak_kib - v.rss_start_kib < 32 * 1024);
}

/* ---- backpressure ---- */

enum { BP_SIZE = 32 * 1024, BP_SLOW = 300 };

/* A fast server writer and a client that reads slowly: the handler's writes
 * block, so it never gets more than the buffered bound ahead. */
static void test_backpressure_slow_client(void **state) {
  st_fixture *f = *state;
  const int64_t bound = BUFFERED_BOUND / BP_SIZE + 16;
  download_t req = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
  cgrpc_call *call = NULL;
  cgrpc_status st = {0};
  int64_t got = 0, ahead, max_ahead = 0, sent_at_slow_end;
  long rss_slow_start = 0, rss_max = 0;
  double t0 = st_now_s();
  chunk_t *r;
  int rv;
  req.count = 2000;
  req.size = BP_SIZE;
  assert_int_equal(cgrpc__test__stream_service__flood__open(f->ch, &req,
                                                            &guard, &call),
                   0);
  while ((rv = cgrpc__test__stream_service__flood__read(call, &r)) == 1) {
    assert_int_equal(r->seq, got);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    got++;
    ahead = atomic_load(&f->srv.stats.sent) - got;
    if (ahead > max_ahead)
      max_ahead = ahead;
    if (got <= BP_SLOW) {
      long rss = st_rss_kib();
      if (got == 20)
        rss_slow_start = rss;
      if (rss > rss_max)
        rss_max = rss;
      it_sleep_ms(1); /* the slow reader */
    }
    if (got == BP_SLOW)
      sent_at_slow_end = atomic_load(&f->srv.stats.sent);
  }
  assert_int_equal(rv, 0);
  cgrpc_call_finish(call, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_OK);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  assert_int_equal(got, req.count);
  report("slow client: %d messages of %d KiB; the server's writer was at most "
         "%lld messages (%.1f MiB) ahead of the reader (bound %lld); sent %lld "
         "when the slow phase ended at %d; RSS %.1f -> %.1f MiB during it; "
         "%.2f s",
         req.count, BP_SIZE / 1024, (long long)max_ahead,
         max_ahead * (double)BP_SIZE / (1 << 20), (long long)bound,
         (long long)sent_at_slow_end, BP_SLOW, rss_slow_start / 1024.0,
         rss_max / 1024.0, st_now_s() - t0);
  assert_true(max_ahead <= bound);
  /* The writer had to wait: it was nowhere near done when the slow reader
   * had read BP_SLOW. */
  assert_true(sent_at_slow_end <= BP_SLOW + bound);
  assert_true(sent_at_slow_end < req.count);
  if (CHECK_RSS)
    assert_true(rss_max - rss_slow_start < 16 * 1024);
}

/* A fast client writer and a server handler that reads slowly: the client's
 * writes block. */
static void test_backpressure_slow_server(void **state) {
  st_fixture *f = *state;
  const int64_t bound = BUFFERED_BOUND / BP_SIZE + 16;
  const int64_t n = 600;
  static uint8_t buf[BP_SIZE];
  cgrpc_call *call = NULL;
  cgrpc_status st = {0};
  summary_t *reply = NULL;
  int64_t i, ahead, max_ahead = 0;
  long rss_start = 0, rss_max = 0;
  double t0 = st_now_s();
  atomic_store(&f->srv.stats.sleep_us, 1000);
  assert_int_equal(
      cgrpc__test__stream_service__slow_upload__open(f->ch, &guard, &call), 0);
  for (i = 0; i < n; i++) {
    chunk_t c = CGRPC__TEST__CHUNK__INIT;
    long rss;
    c.data.data = buf;
    c.data.len = sizeof buf;
    c.seq = i;
    assert_int_equal(cgrpc__test__stream_service__slow_upload__write(call, &c),
                     0);
    ahead = i + 1 - atomic_load(&f->srv.stats.received);
    if (ahead > max_ahead)
      max_ahead = ahead;
    rss = st_rss_kib();
    if (i == 20)
      rss_start = rss;
    if (rss > rss_max)
      rss_max = rss;
  }
  cgrpc__test__stream_service__slow_upload__finish(call, &reply, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_OK);
  assert_int_equal(reply->count, n);
  assert_int_equal(reply->out_of_order, 0);
  protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  report("slow server: %lld messages of %d KiB; the client's writer was at "
         "most %lld messages (%.1f MiB) ahead of the handler (bound %lld); "
         "RSS %.1f -> %.1f MiB; %.2f s",
         (long long)n, BP_SIZE / 1024, (long long)max_ahead,
         max_ahead * (double)BP_SIZE / (1 << 20), (long long)bound,
         rss_start / 1024.0, rss_max / 1024.0, st_now_s() - t0);
  assert_true(max_ahead <= bound);
  if (CHECK_RSS)
    assert_true(rss_max - rss_start < 16 * 1024);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
#define T(name) ST_FIXTURE_TEST(name)
      /* First: ru_maxrss is the process's peak so far. */
      T(test_bulk_1gib),
      T(test_many_small),
      T(test_backpressure_slow_client),
      T(test_backpressure_slow_server),
#undef T
  };
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
