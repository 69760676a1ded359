/* SPDX-License-Identifier: MIT */
/*
 * The handler pool, after Go's scheduler (runtime/proc.go: spinning Ms,
 * wakep()):
 *
 *  - A submit wakes one sleeper (or makes a thread) only when no worker is
 *    already "searching" (spinning on the queue, or woken or made and not
 *    yet at it): a batch of jobs costs at most one wake-up, where the fixed
 *    pool woke a thread per job.
 *  - A searching worker that takes a job while more wait, and no other
 *    worker searches, wakes or makes one more thread before it runs its
 *    job: the job may block (a streaming handler waiting for its client),
 *    and the jobs behind it must not wait for it.  So while the pool is
 *    below its maximum, every queued job has a thread on its way.
 *  - A worker with nothing to do spins on the queue for up to POOL_SPIN_NS
 *    before it sleeps, but only while a CPU is left over by the event loops
 *    and the running handlers (Go spins only while a P is idle), and only
 *    one at a time.  Then the next job usually costs no futex wake-up and
 *    no context switch, and the spin takes no CPU that work needs.  (On 2
 *    CPUs with 2 loop threads nobody spins: measured there, a 20 us spin
 *    cost 0.5 us more server CPU per call at 4 x 32 than sleeping at once.)
 *  - Sleepers form a stack, the most recently idle on top, and the top one
 *    is woken first: under light load the same few threads serve, and the
 *    rest time out after POOL_IDLE_MS and exit, down to POOL_MIN_THREADS.
 */
#include "server/pool.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cgrpc/error.h"
#include "util/clock.h"
#include "util/mem.h"

/* Threads kept however long they idle; the pool starts with them. */
#define POOL_MIN_THREADS 2
/* An idle thread above the floor exits after this long. */
#define POOL_IDLE_MS 5000
/* How long a worker spins on an empty queue before it sleeps. */
#define POOL_SPIN_NS 20000

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__) || defined(__arm__)
#define cpu_relax() __asm__ __volatile__("yield" ::: "memory")
#else
#define cpu_relax() ((void)0)
#endif

struct cgrpc__pool_sleeper {
  struct cgrpc__pool_sleeper *prev, *next;
  pthread_cond_t cond;
  /* Taken off the stack by a waker, which counted it in |searching|. */
  int woken;
  /* Wakers that have let go of the lock and not yet signalled |cond|: the
   * thread may not destroy it (exit) before this is 0. */
  atomic_int signalling;
};

typedef struct cgrpc__pool_sleeper sleeper;

/* What wake_one() decided, carried out by wake_finish() without the lock
 * (a signal under the lock would have the woken thread wait for it). */
typedef struct wake {
  sleeper *s;
  int make_thread;
} wake;

static void *worker_main(void *arg);

static void sleepers_remove(cgrpc__pool *pool, sleeper *s) {
  if (s->prev)
    s->prev->next = s->next;
  else
    pool->sleepers = s->next;
  if (s->next)
    s->next->prev = s->prev;
  s->prev = s->next = NULL;
}

/* Gets one more worker looking at the queue: the most recently idle one,
 * or a new thread (counted now, made by wake_finish()).  At the maximum it
 * does nothing: the jobs wait for a worker.  Lock held. */
static void wake_one(cgrpc__pool *pool, wake *w) {
  sleeper *s = pool->sleepers;
  w->s = NULL;
  w->make_thread = 0;
  if (s) {
    sleepers_remove(pool, s);
    s->woken = 1;
    atomic_fetch_add(&s->signalling, 1);
    pool->searching++;
    w->s = s;
  } else if (pool->n_threads < pool->max_threads) {
    pool->n_threads++;
    pool->searching++;
    w->make_thread = 1;
  }
}

static void make_thread(cgrpc__pool *pool);

/* Lock not held. */
static void wake_finish(cgrpc__pool *pool, const wake *w) {
  if (w->s) {
    pthread_cond_signal(&w->s->cond);
    atomic_fetch_sub(&w->s->signalling, 1);
  } else if (w->make_thread) {
    make_thread(pool);
  }
}

/* Starts the thread wake_one() counted.  Lock not held. */
static void make_thread(cgrpc__pool *pool) {
  pthread_t t;
  wake w = {NULL, 0};
  int rv = pthread_create(&t, NULL, worker_main, pool), was_failing, running;
  pthread_mutex_lock(&pool->lock);
  was_failing = pool->create_failing;
  pool->create_failing = rv != 0;
  if (rv != 0) {
    pool->n_threads--;
    pool->searching--;
    /* A worker may have gone to sleep since, counting on this thread. */
    if (pool->head && pool->searching == 0 && pool->sleepers)
      wake_one(pool, &w);
    if (pool->n_threads == 0)
      pthread_cond_broadcast(&pool->gone);
  }
  running = pool->n_threads;
  pthread_mutex_unlock(&pool->lock);
  if (w.s)
    wake_finish(pool, &w);
  if (rv != 0 && !was_failing && pool->log)
    cgrpc__log(pool->log, CGRPC_LOG_WARNING,
               "cannot start a handler thread (%s); calls wait for a busy "
               "one (%d running)",
               strerror(rv), running);
}

/* Spins until a job is queued, the pool stops, or POOL_SPIN_NS pass. */
static void spin(cgrpc__pool *pool) {
  int64_t end = cgrpc__now_ns() + POOL_SPIN_NS;
  unsigned i = 0;
  while (atomic_load_explicit(&pool->queued, memory_order_relaxed) == 0 &&
         !atomic_load_explicit(&pool->stopping, memory_order_relaxed)) {
    cpu_relax();
    if ((++i & 63) == 0 && cgrpc__now_ns() >= end)
      return;
  }
}

/* Whether one more worker may spin: only on a CPU that the loop threads,
 * the running handlers and the other spinners leave free (Go spins only
 * while a P is idle), so that spinning never takes a CPU from work.  On 2
 * CPUs with 2 loop threads, nobody spins.  Lock held. */
static int may_spin(const cgrpc__pool *pool, int searching) {
  return pool->searching == searching &&
         pool->other_threads + pool->running < pool->cpus;
}

static void deadline_in(struct timespec *ts, long ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

/* The pool whose worker this thread is, if any. */
static _Thread_local const cgrpc__pool *current_pool;

int cgrpc__pool_in_worker(const cgrpc__pool *pool) {
  return current_pool == pool;
}

static void *worker_main(void *arg) {
  cgrpc__pool *pool = arg;
  sleeper me;
  pthread_condattr_t attr;
  pthread_t prev = pthread_self();
  int searching = 1; /* counted by whoever made this thread */
  int join_prev;
  current_pool = pool;
  pthread_setname_np(pthread_self(), "cgrpc-worker");
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&me.cond, &attr);
  pthread_condattr_destroy(&attr);
  me.prev = me.next = NULL;
  atomic_init(&me.signalling, 0);
  pthread_mutex_lock(&pool->lock);
  for (;;) {
    cgrpc__job *job = pool->head;
    struct timespec ts;
    int rv = 0;
    if (job) {
      wake w = {NULL, 0};
      pool->head = job->next;
      if (!pool->head)
        pool->tail = NULL;
      atomic_fetch_sub_explicit(&pool->queued, 1, memory_order_relaxed);
      if (searching) {
        searching = 0;
        pool->searching--;
      }
      /* This job may block: see that the ones behind it get a thread. */
      if (pool->head && pool->searching == 0)
        wake_one(pool, &w);
      pool->running++;
      pthread_mutex_unlock(&pool->lock);
      wake_finish(pool, &w);
      job->run(job);
      pthread_mutex_lock(&pool->lock);
      pool->running--;
      continue;
    }
    if (atomic_load(&pool->stopping))
      break;
    if (!searching && may_spin(pool, 0)) {
      searching = 1;
      pool->searching++;
    }
    if (searching && may_spin(pool, 1)) {
      pthread_mutex_unlock(&pool->lock);
      spin(pool);
      pthread_mutex_lock(&pool->lock);
      if (pool->head || atomic_load(&pool->stopping))
        continue;
    }
    if (searching) {
      searching = 0;
      pool->searching--;
    }
    /* Sleep, on top of the stack, until woken, stopped or idle too long.
     * The queue is empty and the lock held: a submit after this sees
     * |searching| (ours is gone) and wakes us or someone. */
    me.woken = 0;
    me.prev = NULL;
    me.next = pool->sleepers;
    if (me.next)
      me.next->prev = &me;
    pool->sleepers = &me;
    deadline_in(&ts, POOL_IDLE_MS);
    while (!me.woken && !atomic_load(&pool->stopping) && rv != ETIMEDOUT)
      rv = pthread_cond_timedwait(&me.cond, &pool->lock, &ts);
    if (me.woken) {
      searching = 1; /* the waker counted us */
      continue;
    }
    sleepers_remove(pool, &me);
    if (rv == ETIMEDOUT && !atomic_load(&pool->stopping) && !pool->head &&
        pool->n_threads > POOL_MIN_THREADS)
      break;
  }
  /* Exit: hand our pthread_t to the next thread out (or to stop), and join
   * the previous one. */
  if (searching)
    pool->searching--;
  pool->n_threads--;
  join_prev = pool->has_zombie;
  if (join_prev)
    prev = pool->zombie;
  pool->zombie = pthread_self();
  pool->has_zombie = 1;
  if (pool->n_threads == 0)
    pthread_cond_broadcast(&pool->gone);
  pthread_mutex_unlock(&pool->lock);
  while (atomic_load(&me.signalling) > 0)
    sched_yield(); /* a waker that has not signalled yet; rare */
  pthread_cond_destroy(&me.cond);
  if (join_prev)
    pthread_join(prev, NULL);
  return NULL;
}

int cgrpc__pool_start(cgrpc__pool *pool, int max_threads, int other_threads,
                      const cgrpc__logger *log) {
  cpu_set_t set;
  int i, n;
  memset(pool, 0, sizeof *pool);
  pthread_mutex_init(&pool->lock, NULL);
  pthread_cond_init(&pool->gone, NULL);
  atomic_init(&pool->queued, 0);
  atomic_init(&pool->stopping, 0);
  pool->max_threads = max_threads < 1 ? 1 : max_threads;
  pool->log = log;
  /* The CPUs this process may run on (taskset counts), not the machine's. */
  pool->cpus = sched_getaffinity(0, sizeof set, &set) == 0
                   ? CPU_COUNT(&set)
                   : (int)sysconf(_SC_NPROCESSORS_ONLN);
  pool->other_threads = other_threads;
  pool->started = 1;
  n = pool->max_threads < POOL_MIN_THREADS ? pool->max_threads
                                           : POOL_MIN_THREADS;
  for (i = 0; i < n; i++) {
    pthread_t t;
    pthread_mutex_lock(&pool->lock);
    pool->n_threads++;
    pool->searching++;
    pthread_mutex_unlock(&pool->lock);
    if (pthread_create(&t, NULL, worker_main, pool) != 0) {
      pthread_mutex_lock(&pool->lock);
      pool->n_threads--;
      pool->searching--;
      pthread_mutex_unlock(&pool->lock);
      cgrpc__pool_stop(pool);
      return CGRPC_ERR_IO;
    }
  }
  return 0;
}

void cgrpc__job_batch_add(cgrpc__job_batch *b, cgrpc__job *job) {
  job->next = NULL;
  if (b->tail)
    b->tail->next = job;
  else
    b->head = job;
  b->tail = job;
  b->n++;
}

void cgrpc__pool_submit_batch(cgrpc__pool *pool, cgrpc__job_batch *b) {
  wake w = {NULL, 0};
  if (!b->head)
    return;
  pthread_mutex_lock(&pool->lock);
  if (pool->tail)
    pool->tail->next = b->head;
  else
    pool->head = b->head;
  pool->tail = b->tail;
  atomic_fetch_add_explicit(&pool->queued, b->n, memory_order_relaxed);
  /* A searching worker takes the first job and passes the rest on. */
  if (pool->searching == 0)
    wake_one(pool, &w);
  pthread_mutex_unlock(&pool->lock);
  wake_finish(pool, &w);
  b->head = b->tail = NULL;
  b->n = 0;
}

void cgrpc__pool_submit(cgrpc__pool *pool, cgrpc__job *job) {
  cgrpc__job_batch b = {NULL, NULL, 0};
  cgrpc__job_batch_add(&b, job);
  cgrpc__pool_submit_batch(pool, &b);
}

void cgrpc__pool_stop(cgrpc__pool *pool) {
  sleeper *s;
  if (!pool->started)
    return;
  pthread_mutex_lock(&pool->lock);
  atomic_store(&pool->stopping, 1);
  for (s = pool->sleepers; s; s = s->next)
    pthread_cond_signal(&s->cond);
  while (pool->n_threads > 0)
    pthread_cond_wait(&pool->gone, &pool->lock);
  pthread_mutex_unlock(&pool->lock);
  /* Joining the last thread out joins them all (each joined its
   * predecessor before it returned). */
  if (pool->has_zombie)
    pthread_join(pool->zombie, NULL);
  pool->has_zombie = 0;
  pool->started = 0;
  pthread_mutex_destroy(&pool->lock);
  pthread_cond_destroy(&pool->gone);
}
