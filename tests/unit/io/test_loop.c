/* SPDX-License-Identifier: MIT */
/*
 * io/loop: lending the loop to a waiting thread (issue 9).  A borrower
 * drives the loop (and is its thread for cgrpc__loop_in_thread()) only
 * while the loop's thread is parked; posted tasks, due timers, a stop,
 * blocked waiters and busy give-backs bring the loop's thread back at
 * once, and the grace period brings it back otherwise; one thread runs the
 * loop's callbacks at a time.  Every wait is bounded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "io/loop.h"
#include "util/clock.h"

/* Generous bounds: a wait that should end at once, and a grace period that
 * a test must not be waiting for (so passing proves the early resume). */
#define WAIT_MS 5000
#define WIDE_GRACE_NS (60LL * 1000 * 1000 * 1000)

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

static int64_t now_ms(void) { return cgrpc__now_ns() / 1000000; }

/* A flag with a bounded wait, set from any thread. */
typedef struct flag {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int set;
  pthread_t by; /* the thread that set it */
  int in_loop;  /* cgrpc__loop_in_thread() there */
} flag;

typedef struct fixture {
  cgrpc__loop *loop;
  int pipefd[2];
  cgrpc__watch watch;
  flag readable; /* set by the pipe's watch */
} fixture;

static fixture *the_fixture;

static void flag_init(flag *f) {
  memset(f, 0, sizeof *f);
  pthread_mutex_init(&f->lock, NULL);
  pthread_cond_init(&f->cond, NULL);
}

static void flag_fini(flag *f) {
  pthread_mutex_destroy(&f->lock);
  pthread_cond_destroy(&f->cond);
}

static void flag_set(flag *f) {
  pthread_mutex_lock(&f->lock);
  f->set = 1;
  f->by = pthread_self();
  f->in_loop = the_fixture ? cgrpc__loop_in_thread(the_fixture->loop) : 0;
  pthread_cond_broadcast(&f->cond);
  pthread_mutex_unlock(&f->lock);
}

static int flag_get(flag *f) {
  int v;
  pthread_mutex_lock(&f->lock);
  v = f->set;
  pthread_mutex_unlock(&f->lock);
  return v;
}

/* Waits up to |ms| for the flag; returns it. */
static int flag_wait(flag *f, int ms) {
  struct timespec ts;
  int v;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (long)(ms % 1000) * 1000000;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000;
  }
  pthread_mutex_lock(&f->lock);
  while (!f->set && pthread_cond_timedwait(&f->cond, &f->lock, &ts) == 0) {
  }
  v = f->set;
  pthread_mutex_unlock(&f->lock);
  return v;
}

static void task_set_flag(void *user_data) { flag_set(user_data); }

static void on_readable(void *user_data, unsigned events) {
  fixture *f = user_data;
  char buf[16];
  (void)events;
  while (read(f->pipefd[0], buf, sizeof buf) > 0) {
  }
  flag_set(&f->readable);
}

static int setup_grace(void **state, int64_t grace_ns) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  assert_int_equal(cgrpc__loop_new(&f->loop), 0);
  cgrpc__loop_set_lend_grace(f->loop, grace_ns);
  assert_int_equal(pipe2(f->pipefd, O_NONBLOCK | O_CLOEXEC), 0);
  flag_init(&f->readable);
  assert_int_equal(cgrpc__loop_watch(f->loop, &f->watch, f->pipefd[0],
                                     CGRPC__IO_READ, on_readable, f),
                   0);
  assert_int_equal(cgrpc__loop_start_thread(f->loop, "test-loop"), 0);
  the_fixture = f;
  *state = f;
  return 0;
}

static int setup_wide(void **state) {
  return setup_grace(state, WIDE_GRACE_NS);
}

static int setup_narrow(void **state) {
  return setup_grace(state, 20 * 1000 * 1000);
}

static int teardown(void **state) {
  fixture *f = *state;
  cgrpc__loop_stop_join(f->loop);
  cgrpc__loop_del(f->loop);
  close(f->pipefd[0]);
  close(f->pipefd[1]);
  flag_fini(&f->readable);
  the_fixture = NULL;
  free(f);
  return 0;
}

/* A task that unblocks a waiter with the lend hint, as a completed blocking
 * call does. */
typedef struct unblock_task {
  cgrpc__task node;
  cgrpc__loop *loop;
  flag done;
} unblock_task;

static void unblock_run(void *user_data) {
  unblock_task *u = user_data;
  cgrpc__loop_unblock(u->loop, 1);
  flag_set(&u->done);
}

/* Counts this thread as blocked, has the loop unblock it with the hint, and
 * then takes the token as a returning waiter does: with a wide grace the
 * loop's thread stays parked until then.  Bounded. */
static void borrow_after_hint(fixture *f) {
  unblock_task u;
  int64_t until = now_ms() + WAIT_MS;
  flag_init(&u.done);
  u.loop = f->loop;
  assert_int_equal(cgrpc__loop_borrow(f->loop, 1), 0); /* in epoll_wait */
  cgrpc__task_init(&u.node, unblock_run, &u);
  cgrpc__loop_post_task(f->loop, &u.node);
  assert_true(flag_wait(&u.done, WAIT_MS));
  /* The loop's thread parks at the end of the turn that ran the task. */
  while (!cgrpc__loop_borrow(f->loop, 0)) {
    if (now_ms() > until)
      fail_msg("the loop's thread did not park after the lend hint");
    sleep_ms(1);
  }
  flag_fini(&u.done);
}

static void test_loop_borrow_needs_parked_thread(void **state) {
  fixture *f = *state;
  /* The loop's thread sleeps in epoll_wait: no token to take. */
  assert_int_equal(cgrpc__loop_borrow(f->loop, 0), 0);
  assert_false(cgrpc__loop_in_thread(f->loop));
  assert_false(cgrpc__in_any_loop_thread());
  /* Counted, and uncounted by the waiter itself. */
  assert_int_equal(cgrpc__loop_borrow(f->loop, 1), 0);
  cgrpc__loop_unblock(f->loop, 0);
  /* Without the hint the loop's thread still serves the loop. */
  assert_int_equal(write(f->pipefd[1], "x", 1), 1);
  assert_true(flag_wait(&f->readable, WAIT_MS));
  assert_false(pthread_equal(f->readable.by, pthread_self()));
}

/* A helper thread that posts one task. */
typedef struct poster {
  cgrpc__loop *loop;
  cgrpc__task node;
  flag ran;
} poster;

static void *post_thread(void *arg) {
  poster *p = arg;
  cgrpc__loop_post_task(p->loop, &p->node);
  return NULL;
}

static void test_loop_borrower_drives(void **state) {
  fixture *f = *state;
  poster p;
  pthread_t t;
  int turns = 0;
  borrow_after_hint(f);
  /* This thread is now the loop's thread, and only it. */
  assert_true(cgrpc__loop_in_thread(f->loop));
  assert_true(cgrpc__in_any_loop_thread());
  /* Work posted from another thread wakes the borrower's epoll_wait and
   * runs here; so does I/O. */
  p.loop = f->loop;
  flag_init(&p.ran);
  cgrpc__task_init(&p.node, task_set_flag, &p.ran);
  assert_int_equal(pthread_create(&t, NULL, post_thread, &p), 0);
  while (!flag_get(&p.ran) && turns++ < 1000)
    assert_int_equal(cgrpc__loop_turn(f->loop), 0);
  pthread_join(t, NULL);
  assert_true(flag_get(&p.ran));
  assert_true(pthread_equal(p.ran.by, pthread_self()));
  assert_true(p.ran.in_loop);
  assert_int_equal(write(f->pipefd[1], "x", 1), 1);
  for (turns = 0; !flag_get(&f->readable) && turns < 1000; turns++)
    assert_int_equal(cgrpc__loop_turn(f->loop), 0);
  assert_true(pthread_equal(f->readable.by, pthread_self()));
  cgrpc__loop_give_back(f->loop, 0);
  assert_false(cgrpc__loop_in_thread(f->loop));
  assert_false(cgrpc__in_any_loop_thread());
  flag_fini(&p.ran);
}

static void test_loop_post_resumes_parked_thread(void **state) {
  fixture *f = *state;
  flag ran;
  cgrpc__task node;
  borrow_after_hint(f);
  cgrpc__loop_give_back(f->loop, 0);
  /* Parked, the grace a minute long, nobody drives: a posted task brings
   * the loop's thread back now, and then it serves I/O again. */
  flag_init(&ran);
  cgrpc__task_init(&node, task_set_flag, &ran);
  cgrpc__loop_post_task(f->loop, &node);
  assert_true(flag_wait(&ran, WAIT_MS));
  assert_false(pthread_equal(ran.by, pthread_self()));
  assert_true(ran.in_loop);
  assert_int_equal(write(f->pipefd[1], "x", 1), 1);
  assert_true(flag_wait(&f->readable, WAIT_MS));
  flag_fini(&ran);
}

static void timer_set_flag(void *user_data) { flag_set(user_data); }

static void test_loop_give_back_resumes_for_timer(void **state) {
  fixture *f = *state;
  cgrpc__timer t;
  flag fired;
  flag_init(&fired);
  borrow_after_hint(f);
  /* A timer the borrower arms, due long before the grace ends, fires on
   * the loop's thread once the token is back. */
  cgrpc__timer_init(&t, timer_set_flag, &fired);
  assert_int_equal(
      cgrpc__loop_timer_start(f->loop, &t, cgrpc__now_ns() + 20 * 1000000), 0);
  cgrpc__loop_give_back(f->loop, 0);
  assert_true(flag_wait(&fired, WAIT_MS));
  assert_false(pthread_equal(fired.by, pthread_self()));
  flag_fini(&fired);
}

static void test_loop_give_back_busy_resumes(void **state) {
  fixture *f = *state;
  borrow_after_hint(f);
  cgrpc__loop_give_back(f->loop, 1);
  /* Other work in flight: the loop's thread takes its I/O at once. */
  assert_int_equal(write(f->pipefd[1], "x", 1), 1);
  assert_true(flag_wait(&f->readable, WAIT_MS));
  assert_false(pthread_equal(f->readable.by, pthread_self()));
}

typedef struct second_caller {
  cgrpc__loop *loop;
  int got;
} second_caller;

static void *second_borrow(void *arg) {
  second_caller *c = arg;
  c->got = cgrpc__loop_borrow(c->loop, 1);
  return NULL;
}

static void test_loop_blocked_waiter_resumes(void **state) {
  fixture *f = *state;
  second_caller c = {f->loop, -1};
  pthread_t t;
  borrow_after_hint(f);
  /* A second waiter finds the token taken and is counted as blocked. */
  assert_int_equal(pthread_create(&t, NULL, second_borrow, &c), 0);
  pthread_join(t, NULL);
  assert_int_equal(c.got, 0);
  /* When the first gives the token back, the loop's thread drives at once
   * for the second (which waits on its own condvar, not on the grace). */
  cgrpc__loop_give_back(f->loop, 0);
  assert_int_equal(write(f->pipefd[1], "x", 1), 1);
  assert_true(flag_wait(&f->readable, WAIT_MS));
  assert_false(pthread_equal(f->readable.by, pthread_self()));
  cgrpc__loop_unblock(f->loop, 0);
}

static void test_loop_resumes_after_grace(void **state) {
  fixture *f = *state;
  int64_t t0;
  /* A 20 ms grace: I/O that comes after the borrower left with nothing in
   * flight waits at most about that long for the loop's thread. */
  borrow_after_hint(f);
  cgrpc__loop_give_back(f->loop, 0);
  t0 = now_ms();
  assert_int_equal(write(f->pipefd[1], "x", 1), 1);
  assert_true(flag_wait(&f->readable, WAIT_MS));
  assert_false(pthread_equal(f->readable.by, pthread_self()));
  assert_true(now_ms() - t0 < WAIT_MS);
}

static void *stop_join_thread(void *arg) {
  cgrpc__loop_stop_join(arg);
  return NULL;
}

static void test_loop_stop_while_borrowed(void **state) {
  fixture *f = *state;
  pthread_t t;
  int turns = 0, stopping = 0;
  borrow_after_hint(f);
  /* Another thread stops and joins the loop while this one drives: the
   * borrower runs the stop, hears it, and gives the token back; the loop's
   * thread finishes the stop and returns. */
  assert_int_equal(pthread_create(&t, NULL, stop_join_thread, f->loop), 0);
  while (!stopping && turns++ < 1000)
    stopping = cgrpc__loop_turn(f->loop);
  assert_true(stopping);
  cgrpc__loop_give_back(f->loop, 1);
  pthread_join(t, NULL);
  /* A stopping loop lends itself no more. */
  assert_int_equal(cgrpc__loop_borrow(f->loop, 0), 0);
}

/* ---- one driver at a time, under contention ---- */

#define RACERS 4
#define ROUNDS 300

typedef struct race {
  cgrpc__loop *loop;
  atomic_int inside;  /* callbacks running now */
  atomic_int overlap; /* times two ran at once */
  atomic_int borrowed;
  atomic_int wrong_thread; /* a callback where in_thread was false */
} race;

typedef struct race_task {
  cgrpc__task node;
  race *r;
  int unblock;
  flag done;
} race_task;

static void race_cb(void *user_data) {
  race_task *t = user_data;
  if (atomic_fetch_add(&t->r->inside, 1) != 0)
    atomic_fetch_add(&t->r->overlap, 1);
  if (!cgrpc__loop_in_thread(t->r->loop))
    atomic_fetch_add(&t->r->wrong_thread, 1);
  atomic_fetch_sub(&t->r->inside, 1);
  if (t->unblock)
    cgrpc__loop_unblock(t->r->loop, 1);
  flag_set(&t->done);
}

static void *racer(void *arg) {
  race *r = arg;
  int i;
  for (i = 0; i < ROUNDS; i++) {
    race_task t;
    t.r = r;
    flag_init(&t.done);
    cgrpc__task_init(&t.node, race_cb, &t);
    t.unblock = !cgrpc__loop_borrow(r->loop, 1);
    cgrpc__loop_post_task(r->loop, &t.node);
    if (!t.unblock) {
      int turns = 0;
      atomic_fetch_add(&r->borrowed, 1);
      while (!flag_get(&t.done) && turns++ < 1000)
        cgrpc__loop_turn(r->loop);
      cgrpc__loop_give_back(r->loop, 0);
    }
    if (!flag_wait(&t.done, WAIT_MS)) {
      fprintf(stderr, "a task did not run\n");
      abort(); /* |t| is on this stack: nothing can go on safely */
    }
    flag_fini(&t.done);
  }
  return NULL;
}

static void test_loop_one_driver_at_a_time(void **state) {
  fixture *f = *state;
  race r;
  pthread_t t[RACERS];
  int i;
  memset(&r, 0, sizeof r);
  r.loop = f->loop;
  for (i = 0; i < RACERS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, racer, &r), 0);
  for (i = 0; i < RACERS; i++)
    pthread_join(t[i], NULL);
  assert_int_equal(atomic_load(&r.overlap), 0);
  assert_int_equal(atomic_load(&r.wrong_thread), 0);
  /* How often the token was lent depends on the scheduling; not asserted. */
  printf("# %d of %d rounds drove the loop on the caller's thread\n",
         atomic_load(&r.borrowed), RACERS * ROUNDS);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_loop_borrow_needs_parked_thread,
                                      setup_wide, teardown),
      cmocka_unit_test_setup_teardown(test_loop_borrower_drives, setup_wide,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_loop_post_resumes_parked_thread,
                                      setup_wide, teardown),
      cmocka_unit_test_setup_teardown(test_loop_give_back_resumes_for_timer,
                                      setup_wide, teardown),
      cmocka_unit_test_setup_teardown(test_loop_give_back_busy_resumes,
                                      setup_wide, teardown),
      cmocka_unit_test_setup_teardown(test_loop_blocked_waiter_resumes,
                                      setup_wide, teardown),
      cmocka_unit_test_setup_teardown(test_loop_resumes_after_grace,
                                      setup_narrow, teardown),
      cmocka_unit_test_setup_teardown(test_loop_stop_while_borrowed, setup_wide,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_loop_one_driver_at_a_time,
                                      setup_narrow, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
