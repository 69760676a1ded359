/* SPDX-License-Identifier: MIT */
/*
 * The send queue's retry buffer (call/stream.h): messages taken in full are
 * kept and come back, in order, on a rewind; a message taken in part is
 * sent again whole, and counts whole from its first byte; the per-stream
 * and shared limits stop the keeping and free what was kept; the shared
 * count goes back to zero.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "call/stream.h"

/* Queues a message of |len| bytes, all |byte|, as a writer would. */
static void queue(cgrpc__stream *st, size_t len, uint8_t byte) {
  cgrpc__msg *m = cgrpc__msg_new(len);
  assert_non_null(m);
  memset(m->data, byte, len);
  m->seq = ++st->send_seq;
  cgrpc__msgq_push(&st->sendq, m);
}

/* Takes up to |len| bytes as the transport would; returns them in |out|. */
static size_t take(cgrpc__stream *st, uint8_t *out, size_t len) {
  int due;
  return cgrpc__stream_take_body(st, out, len, &due);
}

static void expect_bytes(const uint8_t *b, size_t off, size_t n, uint8_t byte) {
  size_t i;
  for (i = 0; i < n; i++)
    assert_int_equal(b[off + i], byte);
}

static void test_stream_rewind_resends_in_order(void **state) {
  cgrpc__stream st;
  uint8_t buf[64];
  (void)state;
  cgrpc__stream_init(&st, 1024, 1024);
  st.keep_sent = 1;
  queue(&st, 10, 'a');
  queue(&st, 10, 'b');
  queue(&st, 10, 'c');
  /* a and b in full, 5 bytes of c. */
  assert_int_equal(take(&st, buf, 25), 25);
  assert_int_equal(st.sent_seq, 2);
  assert_int_equal(st.kept.bytes, 20);
  queue(&st, 10, 'd'); /* written meanwhile */
  assert_int_equal(cgrpc__stream_rewind(&st), 0);
  assert_int_equal(st.sendq.bytes, 40);
  assert_int_equal(st.kept.bytes, 0);
  assert_int_equal(take(&st, buf, sizeof buf), 40);
  expect_bytes(buf, 0, 10, 'a');
  expect_bytes(buf, 10, 10, 'b');
  expect_bytes(buf, 20, 10, 'c');
  expect_bytes(buf, 30, 10, 'd');
  /* Sent again: the writes' completion count does not go back. */
  assert_int_equal(st.sent_seq, 4);
  assert_int_equal(st.kept.bytes, 40);
  /* And once more, everything was kept. */
  assert_int_equal(cgrpc__stream_rewind(&st), 0);
  assert_int_equal(take(&st, buf, sizeof buf), 40);
  expect_bytes(buf, 0, 10, 'a');
  expect_bytes(buf, 30, 10, 'd');
  cgrpc__stream_free(&st);
}

static void test_stream_rewind_without_keeping(void **state) {
  cgrpc__stream st;
  uint8_t buf[16];
  (void)state;
  cgrpc__stream_init(&st, 1024, 1024);
  /* Nothing taken yet: a rewind is a no-op that succeeds. */
  queue(&st, 10, 'a');
  assert_int_equal(cgrpc__stream_rewind(&st), 0);
  assert_int_equal(take(&st, buf, 4), 4);
  assert_int_equal(cgrpc__stream_rewind(&st), -1);
  cgrpc__stream_free(&st);
}

static void test_stream_keep_limit_commits(void **state) {
  cgrpc__stream st;
  uint8_t buf[64];
  (void)state;
  cgrpc__stream_init(&st, 1024, 1024);
  st.keep_sent = 1;
  st.keep_limit = 25;
  queue(&st, 10, 'a');
  queue(&st, 10, 'b');
  queue(&st, 10, 'c');
  assert_int_equal(take(&st, buf, 20), 20);
  assert_int_equal(st.kept.bytes, 20);
  assert_true(st.keep_sent);
  /* c would make 30 > 25: nothing is kept any more. */
  assert_int_equal(take(&st, buf, 10), 10);
  assert_false(st.keep_sent);
  assert_null(st.kept.head);
  assert_int_equal(st.kept.bytes, 0);
  assert_int_equal(cgrpc__stream_rewind(&st), -1);
  cgrpc__stream_free(&st);
}

static void test_stream_keep_pool_shared(void **state) {
  cgrpc__stream a, b;
  atomic_size_t pool = 0;
  uint8_t buf[64];
  (void)state;
  cgrpc__stream_init(&a, 1024, 1024);
  cgrpc__stream_init(&b, 1024, 1024);
  a.keep_sent = b.keep_sent = 1;
  a.keep_pool = b.keep_pool = &pool;
  a.keep_pool_limit = b.keep_pool_limit = 30;
  queue(&a, 20, 'a');
  queue(&b, 5, 'b');
  queue(&b, 10, 'c');
  assert_int_equal(take(&a, buf, 20), 20);
  assert_int_equal(atomic_load(&pool), 20);
  assert_int_equal(take(&b, buf, 5), 5);
  assert_int_equal(atomic_load(&pool), 25);
  /* 25 + 10 > 30: b stops keeping and gives its 5 back; a keeps its own. */
  assert_int_equal(take(&b, buf, 10), 10);
  assert_false(b.keep_sent);
  assert_true(a.keep_sent);
  assert_int_equal(atomic_load(&pool), 20);
  /* A rewind takes a's bytes out of the pool until they are sent again. */
  assert_int_equal(cgrpc__stream_rewind(&a), 0);
  assert_int_equal(atomic_load(&pool), 0);
  assert_int_equal(take(&a, buf, 20), 20);
  assert_int_equal(atomic_load(&pool), 20);
  /* The commit (or the end of the call) gives everything back. */
  cgrpc__stream_drop_kept(&a);
  assert_int_equal(atomic_load(&pool), 0);
  queue(&a, 5, 'd');
  assert_int_equal(take(&a, buf, 5), 5);
  assert_int_equal(atomic_load(&pool), 0); /* not kept after a commit */
  cgrpc__stream_free(&a);
  cgrpc__stream_free(&b);
  assert_int_equal(atomic_load(&pool), 0);
}

static void test_stream_free_returns_pool(void **state) {
  cgrpc__stream st;
  atomic_size_t pool = 0;
  uint8_t buf[64];
  (void)state;
  cgrpc__stream_init(&st, 1024, 1024);
  st.keep_sent = 1;
  st.keep_pool = &pool;
  st.keep_pool_limit = 1000;
  queue(&st, 30, 'a');
  queue(&st, 30, 'b');
  assert_int_equal(take(&st, buf, 45), 45);
  /* a, and b from its first byte (it must be kept whole). */
  assert_int_equal(atomic_load(&pool), 60);
  cgrpc__stream_free(&st);
  assert_int_equal(atomic_load(&pool), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stream_rewind_resends_in_order),
      cmocka_unit_test(test_stream_rewind_without_keeping),
      cmocka_unit_test(test_stream_keep_limit_commits),
      cmocka_unit_test(test_stream_keep_pool_shared),
      cmocka_unit_test(test_stream_free_returns_pool),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
