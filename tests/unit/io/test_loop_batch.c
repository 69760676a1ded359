/* SPDX-License-Identifier: MIT */
/*
 * The event loop: a watch unwatched by the callback of an earlier event of
 * the same epoll batch is not called for its own event of that batch, even
 * when its memory is used at once for another watch (as when a connection
 * is freed and another one allocated in its place).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#include <cmocka.h>

#include "io/loop.h"

typedef struct pair pair;
typedef struct side {
  pair *p;
  int index;
} side;

struct pair {
  cgrpc__loop *loop;
  cgrpc__watch w[2];
  side sides[2];
  int fds[2][2]; /* two pipes, both readable before the loop runs */
  int spare[2];  /* a pipe never written */
  atomic_int first_calls, reused_calls, done;
};

static void reused_cb(void *user_data, unsigned events) {
  pair *p = user_data;
  (void)events;
  atomic_fetch_add(&p->reused_calls, 1);
}

/* Whichever fires first gives the other up and puts a watch of an idle fd
 * in its place, in the same memory. */
static void first_cb(void *user_data, unsigned events) {
  side *s = user_data;
  pair *p = s->p;
  int other = 1 - s->index;
  char c;
  (void)events;
  if (read(p->w[s->index].fd, &c, 1) != 1) /* level-triggered: drain it */
    atomic_fetch_add(&p->reused_calls, 1000);
  if (atomic_fetch_add(&p->first_calls, 1) > 0)
    return;
  cgrpc__loop_unwatch(p->loop, &p->w[other]);
  if (cgrpc__loop_watch(p->loop, &p->w[other], p->spare[0], CGRPC__IO_READ,
                        reused_cb, p) != 0)
    atomic_fetch_add(&p->reused_calls, 100);
  atomic_store(&p->done, 1);
}

static void test_loop_unwatch_within_batch(void **state) {
  pair p = {0};
  int i;
  (void)state;
  assert_int_equal(cgrpc__loop_new(&p.loop), 0);
  assert_int_equal(pipe(p.spare), 0);
  for (i = 0; i < 2; i++) {
    assert_int_equal(pipe(p.fds[i]), 0);
    assert_int_equal(write(p.fds[i][1], "x", 1), 1);
    p.sides[i].p = &p;
    p.sides[i].index = i;
    assert_int_equal(cgrpc__loop_watch(p.loop, &p.w[i], p.fds[i][0],
                                       CGRPC__IO_READ, first_cb, &p.sides[i]),
                     0);
  }
  assert_int_equal(cgrpc__loop_start_thread(p.loop, "test-loop"), 0);
  for (i = 0; i < 2000 && !atomic_load(&p.done); i++)
    usleep(1000);
  usleep(20000); /* the rest of the batch, and a later turn */
  cgrpc__loop_stop_join(p.loop);
  assert_int_equal(atomic_load(&p.done), 1);
  assert_int_equal(atomic_load(&p.first_calls), 1);
  assert_int_equal(atomic_load(&p.reused_calls), 0);
  cgrpc__loop_del(p.loop);
  for (i = 0; i < 2; i++) {
    close(p.fds[i][0]);
    close(p.fds[i][1]);
  }
  close(p.spare[0]);
  close(p.spare[1]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_loop_unwatch_within_batch),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
