/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cgrpc/error.h"
#include "call/deframer.h"

#define MAX_MSGS 16

/* What the callback saw. */
struct sink {
  int calls;
  int compressed[MAX_MSGS];
  size_t len[MAX_MSGS];
  uint8_t data[MAX_MSGS][512];
  const uint8_t *ptr[MAX_MSGS];
  /* Return this from call number |fail_at| (1-based), 0 = never. */
  int fail_at;
  int fail_rv;
};

static int sink_cb(void *user_data, int compressed, const uint8_t *data,
                   size_t len) {
  struct sink *s = user_data;
  int i = s->calls++;
  assert_non_null(data);
  assert_true(i < MAX_MSGS);
  s->compressed[i] = compressed;
  s->len[i] = len;
  s->ptr[i] = data;
  if (len <= sizeof(s->data[i])) {
    memcpy(s->data[i], data, len);
  }
  if (s->fail_at == s->calls) {
    return s->fail_rv;
  }
  return 0;
}

struct fixture {
  cgrpc__deframer d;
  struct sink s;
};

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof(*f));
  assert_non_null(f);
  cgrpc__deframer_init(&f->d, 4 * 1024 * 1024);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  cgrpc__deframer_free(&f->d);
  free(f);
  return 0;
}

/* Appends a framed message to |out| at |*pos|. */
static void put_msg(uint8_t *out, size_t *pos, int compressed, const char *s,
                    size_t n) {
  cgrpc__frame_prefix(out + *pos, compressed, (uint32_t)n);
  *pos += CGRPC__FRAME_PREFIX_LEN;
  memcpy(out + *pos, s, n);
  *pos += n;
}

static int feed(struct fixture *f, const uint8_t *p, size_t n) {
  return cgrpc__deframer_feed(&f->d, p, n, sink_cb, &f->s);
}

static void test_deframer_frame_prefix(void **state) {
  uint8_t p[5];
  (void)state;
  cgrpc__frame_prefix(p, 0, 0);
  assert_memory_equal(p, "\0\0\0\0\0", 5);
  cgrpc__frame_prefix(p, 1, 0x01020304);
  assert_memory_equal(p, "\x01\x01\x02\x03\x04", 5);
  cgrpc__frame_prefix(p, 7, 0xffffffffu);
  assert_memory_equal(p, "\x01\xff\xff\xff\xff", 5);
}

static void test_deframer_single_message_zero_copy(void **state) {
  struct fixture *f = *state;
  uint8_t buf[64];
  size_t n = 0;
  put_msg(buf, &n, 0, "hello", 5);
  assert_true(cgrpc__deframer_is_idle(&f->d));
  assert_int_equal(feed(f, buf, n), 0);
  assert_int_equal(f->s.calls, 1);
  assert_int_equal(f->s.compressed[0], 0);
  assert_int_equal(f->s.len[0], 5);
  assert_memory_equal(f->s.data[0], "hello", 5);
  /* Delivered in place, straight from the caller's buffer. */
  assert_ptr_equal(f->s.ptr[0], buf + 5);
  assert_null(f->d.buf);
  assert_true(cgrpc__deframer_is_idle(&f->d));
}

static void test_deframer_several_in_one_feed(void **state) {
  struct fixture *f = *state;
  uint8_t buf[128];
  size_t n = 0;
  put_msg(buf, &n, 0, "one", 3);
  put_msg(buf, &n, 1, "", 0);
  put_msg(buf, &n, 1, "three", 5);
  put_msg(buf, &n, 0, "4", 1);
  assert_int_equal(feed(f, buf, n), 0);
  assert_int_equal(f->s.calls, 4);
  assert_int_equal(f->s.len[0], 3);
  assert_memory_equal(f->s.data[0], "one", 3);
  assert_int_equal(f->s.len[1], 0);
  assert_int_equal(f->s.compressed[1], 1);
  assert_int_equal(f->s.compressed[2], 1);
  assert_memory_equal(f->s.data[2], "three", 5);
  assert_int_equal(f->s.compressed[3], 0);
  assert_memory_equal(f->s.data[3], "4", 1);
  assert_null(f->d.buf);
  assert_true(cgrpc__deframer_is_idle(&f->d));
}

static void test_deframer_byte_by_byte(void **state) {
  struct fixture *f = *state;
  uint8_t buf[512];
  char payload[300];
  size_t n = 0, i;
  memset(payload, 'p', sizeof(payload));
  payload[0] = 'A';
  payload[299] = 'Z';
  put_msg(buf, &n, 0, "ab", 2);
  put_msg(buf, &n, 1, payload, sizeof(payload));
  put_msg(buf, &n, 0, "", 0);
  for (i = 0; i < n; ++i) {
    assert_int_equal(feed(f, buf + i, 1), 0);
    /* Idle exactly at message boundaries. */
    if (i + 1 == 7 || i + 1 == 7 + 305 || i + 1 == n) {
      assert_true(cgrpc__deframer_is_idle(&f->d));
    } else {
      assert_false(cgrpc__deframer_is_idle(&f->d));
    }
  }
  assert_int_equal(f->s.calls, 3);
  assert_memory_equal(f->s.data[0], "ab", 2);
  assert_int_equal(f->s.len[1], 300);
  assert_int_equal(f->s.compressed[1], 1);
  assert_memory_equal(f->s.data[1], payload, 300);
  assert_int_equal(f->s.len[2], 0);
}

static void test_deframer_every_split_point(void **state) {
  struct fixture *f = *state;
  uint8_t buf[128];
  size_t n = 0, cut;
  put_msg(buf, &n, 0, "first message", 13);
  put_msg(buf, &n, 1, "second", 6);
  for (cut = 0; cut <= n; ++cut) {
    cgrpc__deframer_free(&f->d);
    cgrpc__deframer_init(&f->d, -1);
    memset(&f->s, 0, sizeof(f->s));
    assert_int_equal(feed(f, buf, cut), 0);
    assert_int_equal(feed(f, buf + cut, n - cut), 0);
    assert_int_equal(f->s.calls, 2);
    assert_int_equal(f->s.len[0], 13);
    assert_memory_equal(f->s.data[0], "first message", 13);
    assert_int_equal(f->s.len[1], 6);
    assert_memory_equal(f->s.data[1], "second", 6);
    assert_true(cgrpc__deframer_is_idle(&f->d));
  }
}

static void test_deframer_prefix_split(void **state) {
  struct fixture *f = *state;
  uint8_t buf[32];
  size_t n = 0;
  put_msg(buf, &n, 0, "xyz", 3);
  assert_int_equal(feed(f, buf, 2), 0);
  assert_false(cgrpc__deframer_is_idle(&f->d));
  assert_int_equal(feed(f, buf + 2, 2), 0);
  assert_int_equal(f->s.calls, 0);
  /* Rest of prefix and the whole payload arrive together: in place. */
  assert_int_equal(feed(f, buf + 4, n - 4), 0);
  assert_int_equal(f->s.calls, 1);
  assert_ptr_equal(f->s.ptr[0], buf + 5);
  assert_memory_equal(f->s.data[0], "xyz", 3);
}

static void test_deframer_zero_length(void **state) {
  struct fixture *f = *state;
  uint8_t buf[5];
  cgrpc__frame_prefix(buf, 0, 0);
  assert_int_equal(feed(f, buf, 5), 0);
  assert_int_equal(f->s.calls, 1);
  assert_int_equal(f->s.len[0], 0);
  assert_true(cgrpc__deframer_is_idle(&f->d));
  /* Split prefix of a zero-length message: delivered on the last byte. */
  assert_int_equal(feed(f, buf, 4), 0);
  assert_int_equal(f->s.calls, 1);
  assert_int_equal(feed(f, buf + 4, 1), 0);
  assert_int_equal(f->s.calls, 2);
  /* Empty feeds are fine, with or without a pointer. */
  assert_int_equal(feed(f, NULL, 0), 0);
  assert_int_equal(feed(f, buf, 0), 0);
  assert_int_equal(f->s.calls, 2);
  assert_null(f->d.buf);
}

static void test_deframer_max_len(void **state) {
  struct fixture *f = *state;
  uint8_t buf[64];
  size_t n = 0;
  cgrpc__deframer_init(&f->d, 4);
  put_msg(buf, &n, 0, "four", 4);
  assert_int_equal(feed(f, buf, n), 0);
  assert_int_equal(f->s.calls, 1);
  n = 0;
  put_msg(buf, &n, 0, "fives", 5);
  /* Only the prefix is fed: refused before any payload is buffered. */
  assert_int_equal(feed(f, buf, 5), CGRPC_ERR_TOO_LARGE);
  assert_null(f->d.buf);
  assert_int_equal(f->s.calls, 1);
  /* Sticky. */
  assert_int_equal(feed(f, buf + 5, 5), CGRPC_ERR_TOO_LARGE);
  assert_false(cgrpc__deframer_is_idle(&f->d));
}

static void test_deframer_huge_announced_length(void **state) {
  struct fixture *f = *state;
  uint8_t pre[5] = {0, 0xff, 0xff, 0xff, 0xff};
  /* Limited: TOO_LARGE at once, nothing allocated. */
  assert_int_equal(feed(f, pre, 5), CGRPC_ERR_TOO_LARGE);
  assert_null(f->d.buf);
  assert_int_equal(f->d.buf_cap, 0);
  assert_int_equal(f->s.calls, 0);
}

static void test_deframer_unlimited_grows_with_data(void **state) {
  struct fixture *f = *state;
  uint8_t pre[5] = {0, 0xff, 0xff, 0xff, 0xff};
  uint8_t chunk[1000];
  int i;
  /* No limit: a 4 GiB announcement must not allocate 4 GiB; the buffer
   * follows the bytes actually received. */
  cgrpc__deframer_init(&f->d, -1);
  memset(chunk, 'c', sizeof(chunk));
  assert_int_equal(feed(f, pre, 5), 0);
  assert_null(f->d.buf);
  for (i = 0; i < 10; ++i) {
    assert_int_equal(feed(f, chunk, sizeof(chunk)), 0);
  }
  assert_int_equal(f->d.buf_len, 10000);
  assert_true(f->d.buf_cap >= 10000);
  assert_true(f->d.buf_cap <= 2 * 10000);
  assert_int_equal(f->s.calls, 0);
  assert_false(cgrpc__deframer_is_idle(&f->d));
}

static void test_deframer_buffer_bounded_by_length(void **state) {
  struct fixture *f = *state;
  uint8_t buf[64];
  size_t n = 0;
  put_msg(buf, &n, 0, "0123456789", 10);
  assert_int_equal(feed(f, buf, 8), 0);
  assert_non_null(f->d.buf);
  /* Never more than the announced length, even below the minimum size. */
  assert_true(f->d.buf_cap <= 10);
  assert_int_equal(feed(f, buf + 8, n - 8), 0);
  assert_int_equal(f->s.calls, 1);
  assert_memory_equal(f->s.data[0], "0123456789", 10);
}

static void test_deframer_bad_flag(void **state) {
  struct fixture *f = *state;
  uint8_t buf[16];
  size_t n = 0;
  put_msg(buf, &n, 0, "ok", 2);
  buf[n++] = 2; /* flag byte 2 */
  memset(buf + n, 0, 4);
  n += 4;
  assert_int_equal(feed(f, buf, n), CGRPC_ERR_PROTO);
  assert_int_equal(f->s.calls, 1);
  assert_int_equal(feed(f, buf, 7), CGRPC_ERR_PROTO);
  assert_int_equal(f->s.calls, 1);
  /* 0x80 too, split across feeds. */
  cgrpc__deframer_init(&f->d, -1);
  buf[0] = 0x80;
  assert_int_equal(feed(f, buf, 1), 0);
  assert_int_equal(feed(f, buf + 1, 4), CGRPC_ERR_PROTO);
}

static void test_deframer_callback_stops(void **state) {
  struct fixture *f = *state;
  uint8_t buf[64];
  size_t n = 0;
  put_msg(buf, &n, 0, "a", 1);
  put_msg(buf, &n, 0, "b", 1);
  put_msg(buf, &n, 0, "c", 1);
  f->s.fail_at = 2;
  f->s.fail_rv = CGRPC_ERR_CALLBACK_FAILURE;
  assert_int_equal(feed(f, buf, n), CGRPC_ERR_CALLBACK_FAILURE);
  assert_int_equal(f->s.calls, 2);
  assert_int_equal(feed(f, buf, n), CGRPC_ERR_CALLBACK_FAILURE);
  assert_int_equal(f->s.calls, 2);
  assert_false(cgrpc__deframer_is_idle(&f->d));
}

static void test_deframer_callback_stops_buffered(void **state) {
  struct fixture *f = *state;
  uint8_t buf[64];
  size_t n = 0;
  put_msg(buf, &n, 1, "split", 5);
  f->s.fail_at = 1;
  f->s.fail_rv = 42; /* any nonzero value comes back as is */
  assert_int_equal(feed(f, buf, 7), 0);
  assert_int_equal(feed(f, buf + 7, n - 7), 42);
  assert_int_equal(f->s.calls, 1);
  assert_memory_equal(f->s.data[0], "split", 5);
  assert_int_equal(feed(f, buf, 1), 42);
}

static void test_deframer_large_split_message(void **state) {
  struct fixture *f = *state;
  size_t len = 100000, pos = 0, step = 1;
  uint8_t *buf = malloc(len + 5);
  size_t i;
  assert_non_null(buf);
  cgrpc__frame_prefix(buf, 0, (uint32_t)len);
  for (i = 0; i < len; ++i) {
    buf[5 + i] = (uint8_t)(i * 7);
  }
  /* Uneven feeds of growing size. */
  while (pos < len + 5) {
    size_t take = step < len + 5 - pos ? step : len + 5 - pos;
    assert_int_equal(feed(f, buf + pos, take), 0);
    pos += take;
    step = step * 3 + 1;
  }
  assert_int_equal(f->s.calls, 1);
  assert_int_equal(f->s.len[0], len);
  /* Large buffers are released after delivery. */
  assert_null(f->d.buf);
  assert_true(cgrpc__deframer_is_idle(&f->d));
  free(buf);
}

static void test_deframer_is_idle_partial_payload(void **state) {
  struct fixture *f = *state;
  uint8_t buf[32];
  size_t n = 0;
  put_msg(buf, &n, 0, "abcdef", 6);
  assert_int_equal(feed(f, buf, 5), 0);
  /* Prefix done, payload pending: a truncated stream. */
  assert_false(cgrpc__deframer_is_idle(&f->d));
  assert_int_equal(feed(f, buf + 5, 3), 0);
  assert_false(cgrpc__deframer_is_idle(&f->d));
  assert_int_equal(feed(f, buf + 8, n - 8), 0);
  assert_true(cgrpc__deframer_is_idle(&f->d));
}

/* Checks a stream of random messages against what was framed, for many
 * random chunkings.  A fixed LCG keeps failures reproducible. */
struct rand_sink {
  const uint8_t *expect;
  size_t pos;
  int count;
};

static int rand_cb(void *user_data, int compressed, const uint8_t *data,
                   size_t len) {
  struct rand_sink *rs = user_data;
  size_t n = (size_t)rs->expect[rs->pos + 1] << 24 |
             (size_t)rs->expect[rs->pos + 2] << 16 |
             (size_t)rs->expect[rs->pos + 3] << 8 | rs->expect[rs->pos + 4];
  assert_int_equal(compressed, rs->expect[rs->pos]);
  assert_int_equal(len, n);
  if (len > 0) {
    assert_memory_equal(data, rs->expect + rs->pos + 5, len);
  }
  rs->pos += 5 + len;
  rs->count++;
  return 0;
}

static uint32_t lcg(uint32_t *seed) {
  *seed = *seed * 1103515245u + 12345u;
  return *seed >> 8;
}

static void test_deframer_random_chunking(void **state) {
  struct fixture *f = *state;
  enum { STREAM_MAX = 64 * 1024 };
  uint8_t *stream = malloc(STREAM_MAX);
  uint32_t seed = 42;
  int round;
  assert_non_null(stream);
  for (round = 0; round < 200; ++round) {
    struct rand_sink rs = {stream, 0, 0};
    size_t n = 0, pos = 0, i;
    int msgs = 0;
    /* Build a stream of messages of 0..3000 bytes, many of them empty. */
    while (n < STREAM_MAX - 3005 - 5) {
      size_t len = lcg(&seed) % 4 == 0 ? 0 : lcg(&seed) % 3000;
      cgrpc__frame_prefix(stream + n, (int)(lcg(&seed) & 1), (uint32_t)len);
      n += 5;
      for (i = 0; i < len; ++i) {
        stream[n++] = (uint8_t)lcg(&seed);
      }
      ++msgs;
      if (lcg(&seed) % 16 == 0) {
        break;
      }
    }
    cgrpc__deframer_free(&f->d);
    cgrpc__deframer_init(&f->d, 3000);
    while (pos < n) {
      size_t take = lcg(&seed) % (round % 2 ? 64 : 8000) + 1;
      if (take > n - pos) {
        take = n - pos;
      }
      assert_int_equal(
          cgrpc__deframer_feed(&f->d, stream + pos, take, rand_cb, &rs), 0);
      pos += take;
    }
    assert_int_equal(rs.count, msgs);
    assert_int_equal(rs.pos, n);
    assert_true(cgrpc__deframer_is_idle(&f->d));
  }
  free(stream);
}

/* What the stealing callback took: the allocation and the payload offset. */
struct stolen {
  cgrpc__deframer *d;
  uint8_t *alloc[4];
  const uint8_t *data[4];
  int n;
};

static int steal_cb(void *user_data, int compressed, const uint8_t *data,
                    size_t len) {
  struct stolen *s = user_data;
  (void)compressed;
  (void)len;
  s->data[s->n] = data;
  s->alloc[s->n] = cgrpc__deframer_steal(s->d);
  s->n++;
  return 0;
}

static void test_deframer_steal(void **state) {
  struct fixture *f = *state;
  struct stolen s;
  uint8_t msg[5 + 300], two[2 * (5 + 3)];
  int i;
  memset(&s, 0, sizeof s);
  s.d = &f->d;
  cgrpc__deframer_set_headroom(&f->d, 32);
  cgrpc__frame_prefix(msg, 0, 300);
  for (i = 0; i < 300; i++)
    msg[5 + i] = (uint8_t)i;
  /* Split across feeds: buffered, so the buffer can be taken... */
  assert_int_equal(cgrpc__deframer_feed(&f->d, msg, 100, steal_cb, &s), 0);
  assert_int_equal(cgrpc__deframer_feed(&f->d, msg + 100, sizeof msg - 100,
                                        steal_cb, &s),
                   0);
  assert_int_equal(s.n, 1);
  assert_non_null(s.alloc[0]);
  assert_ptr_equal(s.alloc[0] + 32, s.data[0]);
  assert_memory_equal(s.alloc[0] + 32, msg + 5, 300);
  free(s.alloc[0]);
  /* ...while messages delivered in place from the feed cannot be. */
  cgrpc__frame_prefix(two, 0, 3);
  memcpy(two + 5, "abc", 3);
  cgrpc__frame_prefix(two + 8, 0, 3);
  memcpy(two + 13, "def", 3);
  assert_int_equal(cgrpc__deframer_feed(&f->d, two, sizeof two, steal_cb, &s),
                   0);
  assert_int_equal(s.n, 3);
  assert_null(s.alloc[1]);
  assert_null(s.alloc[2]);
  /* The deframer goes on working after a steal. */
  assert_int_equal(cgrpc__deframer_feed(&f->d, msg, 7, steal_cb, &s), 0);
  assert_int_equal(cgrpc__deframer_feed(&f->d, msg + 7, sizeof msg - 7,
                                        steal_cb, &s),
                   0);
  assert_int_equal(s.n, 4);
  assert_non_null(s.alloc[3]);
  assert_memory_equal(s.alloc[3] + 32, msg + 5, 300);
  free(s.alloc[3]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
      T(test_deframer_frame_prefix),
      T(test_deframer_single_message_zero_copy),
      T(test_deframer_several_in_one_feed),
      T(test_deframer_byte_by_byte),
      T(test_deframer_every_split_point),
      T(test_deframer_prefix_split),
      T(test_deframer_zero_length),
      T(test_deframer_max_len),
      T(test_deframer_huge_announced_length),
      T(test_deframer_unlimited_grows_with_data),
      T(test_deframer_buffer_bounded_by_length),
      T(test_deframer_bad_flag),
      T(test_deframer_callback_stops),
      T(test_deframer_callback_stops_buffered),
      T(test_deframer_large_split_message),
      T(test_deframer_is_idle_partial_payload),
      T(test_deframer_random_chunking),
      T(test_deframer_steal),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
