/* SPDX-License-Identifier: MIT */
#include "io/loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cgrpc/error.h"
#include "util/clock.h"
#include "util/mem.h"

typedef cgrpc__task task;

struct cgrpc__loop {
  int epfd;
  int wakefd;
  cgrpc__watch wake_watch;
  pthread_t thread;
  int has_thread;
  atomic_int stop;
  atomic_int stop_posted;
  cgrpc__task stop_task;
  cgrpc__task_cb exit_cb; /* cgrpc__loop_on_exit */
  void *exit_user_data;

  pthread_mutex_t lock; /* guards the posted-task queue and the token */
  task *head, *tail;

  /* The token (see loop.h), guarded by |lock|.  |parked|: the loop's thread
   * waits on |park_cond| instead of in epoll_wait.  |borrowed|: another
   * thread drives the loop.  |resume|: the parked thread is asked to take
   * the token back at once.  |blocked|: threads waiting for this loop's
   * work without driving it.  |released_ns|: when the token was last free
   * to take; |park_until|: when the parked thread looks again. */
  pthread_cond_t park_cond;
  int parked, borrowed, resume, blocked;
  int64_t released_ns, park_until, grace_ns;
  /* Set by the driver (cgrpc__loop_unblock): park at the end of the turn.
   * Written under |lock|; loop_run() peeks at it without, which is safe as
   * only the driver sets it and the loop's thread drives whenever it is
   * not parked. */
  int lend_hint;
  /* Set while the eventfd holds an unread wake-up, to skip needless writes. */
  atomic_int woken;

  cgrpc__timer **heap;
  size_t heap_len, heap_cap;

  cgrpc__deferred *deferred;
  uint8_t *scratch;

  /* The events epoll_wait returned, while they are dispatched: an unwatch
   * clears the entries still to come that name its watch, whose owner may
   * be freed right after (a connection given up by the callback of an
   * earlier entry).  NULL outside the dispatch. */
  struct epoll_event *batch;
  int batch_n, batch_next;
};

#define SCRATCH_SIZE (256 * 1024)

uint8_t *cgrpc__loop_scratch(cgrpc__loop *loop, size_t *size) {
  if (!loop->scratch)
    loop->scratch = cgrpc__malloc(SCRATCH_SIZE);
  *size = SCRATCH_SIZE;
  return loop->scratch;
}

static _Thread_local const cgrpc__loop *current_loop;

int cgrpc__loop_in_thread(const cgrpc__loop *loop) {
  return current_loop == loop;
}

int cgrpc__in_any_loop_thread(void) { return current_loop != NULL; }

static void wake_read(void *user_data, unsigned events) {
  cgrpc__loop *loop = user_data;
  uint64_t n;
  (void)events;
  /* Drain first, then re-arm: clearing the flag before the read would let a
   * poster's write be swallowed with the flag left set, and every later
   * post would then skip its wake-up.  A post racing with this read still
   * has its task run by this turn's run_posted(). */
  while (read(loop->wakefd, &n, sizeof n) > 0) {
  }
  atomic_store(&loop->woken, 0);
}

int cgrpc__loop_new(cgrpc__loop **loop_ptr) {
  cgrpc__loop *loop = cgrpc__calloc(1, sizeof *loop);
  if (!loop)
    return CGRPC_ERR_NOMEM;
  loop->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (loop->epfd < 0)
    goto fail_epoll;
  loop->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (loop->wakefd < 0)
    goto fail_eventfd;
  loop->grace_ns = CGRPC__LOOP_LEND_GRACE_NS;
  pthread_mutex_init(&loop->lock, NULL);
  {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&loop->park_cond, &attr);
    pthread_condattr_destroy(&attr);
  }
  if (cgrpc__loop_watch(loop, &loop->wake_watch, loop->wakefd, CGRPC__IO_READ,
                        wake_read, loop) != 0)
    goto fail_watch;
  *loop_ptr = loop;
  return 0;

fail_watch:
  pthread_cond_destroy(&loop->park_cond);
  pthread_mutex_destroy(&loop->lock);
  close(loop->wakefd);
fail_eventfd:
  close(loop->epfd);
fail_epoll:
  cgrpc__free(loop);
  return CGRPC_ERR_IO;
}

void cgrpc__loop_del(cgrpc__loop *loop) {
  if (!loop)
    return;
  close(loop->wakefd);
  close(loop->epfd);
  pthread_cond_destroy(&loop->park_cond);
  pthread_mutex_destroy(&loop->lock);
  cgrpc__free(loop->heap);
  cgrpc__free(loop->scratch);
  cgrpc__free(loop);
}

static uint32_t to_epoll(unsigned events) {
  uint32_t ev = 0;
  if (events & CGRPC__IO_READ)
    ev |= EPOLLIN | EPOLLRDHUP;
  if (events & CGRPC__IO_WRITE)
    ev |= EPOLLOUT;
  return ev;
}

int cgrpc__loop_watch(cgrpc__loop *loop, cgrpc__watch *w, int fd,
                      unsigned events, cgrpc__io_cb cb, void *user_data) {
  struct epoll_event ev;
  w->fd = fd;
  w->events = events;
  w->cb = cb;
  w->user_data = user_data;
  memset(&ev, 0, sizeof ev);
  ev.events = to_epoll(events);
  ev.data.ptr = w;
  if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
    return CGRPC_ERR_IO;
  return 0;
}

int cgrpc__loop_watch_update(cgrpc__loop *loop, cgrpc__watch *w,
                             unsigned events) {
  struct epoll_event ev;
  if (w->events == events)
    return 0;
  w->events = events;
  memset(&ev, 0, sizeof ev);
  ev.events = to_epoll(events);
  ev.data.ptr = w;
  if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, w->fd, &ev) != 0)
    return CGRPC_ERR_IO;
  return 0;
}

void cgrpc__loop_unwatch(cgrpc__loop *loop, cgrpc__watch *w) {
  int i;
  if (w->fd >= 0 && w->cb)
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
  w->cb = NULL;
  if (loop->batch)
    for (i = loop->batch_next; i < loop->batch_n; i++)
      if (loop->batch[i].data.ptr == w)
        loop->batch[i].data.ptr = NULL;
}

/* ---- timers: a binary min-heap on when_ns ---- */

void cgrpc__timer_init(cgrpc__timer *t, cgrpc__task_cb cb, void *user_data) {
  t->when_ns = 0;
  t->heap_index = -1;
  t->cb = cb;
  t->user_data = user_data;
}

static void heap_set(cgrpc__loop *loop, size_t i, cgrpc__timer *t) {
  loop->heap[i] = t;
  t->heap_index = (ptrdiff_t)i;
}

static void heap_up(cgrpc__loop *loop, size_t i) {
  cgrpc__timer *t = loop->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (loop->heap[parent]->when_ns <= t->when_ns)
      break;
    heap_set(loop, i, loop->heap[parent]);
    i = parent;
  }
  heap_set(loop, i, t);
}

static void heap_down(cgrpc__loop *loop, size_t i) {
  cgrpc__timer *t = loop->heap[i];
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= loop->heap_len)
      break;
    if (child + 1 < loop->heap_len &&
        loop->heap[child + 1]->when_ns < loop->heap[child]->when_ns)
      child++;
    if (t->when_ns <= loop->heap[child]->when_ns)
      break;
    heap_set(loop, i, loop->heap[child]);
    i = child;
  }
  heap_set(loop, i, t);
}

void cgrpc__loop_timer_stop(cgrpc__loop *loop, cgrpc__timer *t) {
  size_t i;
  cgrpc__timer *last;
  if (t->heap_index < 0)
    return;
  i = (size_t)t->heap_index;
  t->heap_index = -1;
  last = loop->heap[--loop->heap_len];
  if (i == loop->heap_len)
    return;
  heap_set(loop, i, last);
  heap_up(loop, i);
  heap_down(loop, (size_t)last->heap_index);
}

int cgrpc__loop_timer_start(cgrpc__loop *loop, cgrpc__timer *t,
                            int64_t when_ns) {
  cgrpc__loop_timer_stop(loop, t);
  if (loop->heap_len == loop->heap_cap) {
    size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
    cgrpc__timer **heap = cgrpc__realloc(loop->heap, cap * sizeof *heap);
    if (!heap)
      return CGRPC_ERR_NOMEM;
    loop->heap = heap;
    loop->heap_cap = cap;
  }
  t->when_ns = when_ns;
  heap_set(loop, loop->heap_len++, t);
  heap_up(loop, (size_t)t->heap_index);
  return 0;
}

static void run_timers(cgrpc__loop *loop) {
  int64_t now;
  if (loop->heap_len == 0)
    return;
  now = cgrpc__now_ns();
  while (loop->heap_len > 0 && loop->heap[0]->when_ns <= now) {
    cgrpc__timer *t = loop->heap[0];
    cgrpc__loop_timer_stop(loop, t);
    t->cb(t->user_data);
  }
}

static int next_timeout_ms(cgrpc__loop *loop) {
  int64_t delta;
  int posted;
  if (loop->deferred)
    return 0;
  /* Tasks the loop posted to itself do not write the eventfd. */
  pthread_mutex_lock(&loop->lock);
  posted = loop->head != NULL;
  pthread_mutex_unlock(&loop->lock);
  if (posted)
    return 0;
  if (loop->heap_len == 0)
    return -1;
  delta = loop->heap[0]->when_ns - cgrpc__now_ns();
  if (delta <= 0)
    return 0;
  /* Round up so a timer never fires early. */
  delta = (delta + 999999) / 1000000;
  return delta > 60000 ? 60000 : (int)delta;
}

/* ---- posted tasks ---- */

void cgrpc__task_init(task *t, cgrpc__task_cb cb, void *user_data) {
  t->next = NULL;
  t->cb = cb;
  t->user_data = user_data;
}

void cgrpc__loop_post_task(cgrpc__loop *loop, task *t) {
  int parked_idle;
  t->next = NULL;
  pthread_mutex_lock(&loop->lock);
  if (loop->tail)
    loop->tail->next = t;
  else
    loop->head = t;
  loop->tail = t;
  /* Nobody is in epoll_wait while the loop's thread is parked and nobody
   * borrows the loop: the parked thread takes the token back for this. */
  parked_idle = loop->parked && !loop->borrowed;
  if (parked_idle && !loop->resume) {
    loop->resume = 1;
    pthread_cond_signal(&loop->park_cond);
  }
  pthread_mutex_unlock(&loop->lock);
  if (!parked_idle && !cgrpc__loop_in_thread(loop) &&
      !atomic_exchange(&loop->woken, 1)) {
    uint64_t one = 1;
    ssize_t r = write(loop->wakefd, &one, sizeof one);
    (void)r;
  }
}

static void run_posted(cgrpc__loop *loop) {
  task *t;
  pthread_mutex_lock(&loop->lock);
  t = loop->head;
  loop->head = loop->tail = NULL;
  pthread_mutex_unlock(&loop->lock);
  while (t) {
    task *next = t->next;
    /* The node may be posted again or freed by its own callback. */
    t->cb(t->user_data);
    t = next;
  }
}

void cgrpc__loop_defer(cgrpc__loop *loop, cgrpc__deferred *d) {
  if (d->queued)
    return;
  d->queued = 1;
  d->next = loop->deferred;
  loop->deferred = d;
}

void cgrpc__loop_undefer(cgrpc__loop *loop, cgrpc__deferred *d) {
  cgrpc__deferred **p;
  if (!d->queued)
    return;
  for (p = &loop->deferred; *p; p = &(*p)->next) {
    if (*p == d) {
      *p = d->next;
      break;
    }
  }
  d->queued = 0;
}

static void run_deferred(cgrpc__loop *loop) {
  while (loop->deferred) {
    cgrpc__deferred *d = loop->deferred;
    loop->deferred = d->next;
    d->queued = 0;
    d->cb(d->user_data);
  }
}

/* How many grace periods the parked thread waits between looks while the
 * loop is borrowed: the bound on how late the loop's thread sees I/O that
 * comes after a borrower left with nothing in flight. */
#define LEND_RECHECK_GRACES 10

/* One turn: wait for I/O (bounded by the timers and the work due), run the
 * I/O callbacks, the posted tasks, the due timers, the deferred work.
 * Returns -1 when epoll_wait fails for good. */
static int run_turn(cgrpc__loop *loop) {
  struct epoll_event events[64];
  int i, n = epoll_wait(loop->epfd, events, 64, next_timeout_ms(loop));
  if (n < 0 && errno != EINTR)
    return -1;
  loop->batch = events;
  loop->batch_n = n;
  for (i = 0; i < n; i++) {
    cgrpc__watch *w = events[i].data.ptr;
    unsigned ev = 0;
    loop->batch_next = i + 1;
    if (!w)
      continue; /* unwatched by an earlier callback of this batch */
    if (events[i].events & (EPOLLIN | EPOLLRDHUP))
      ev |= CGRPC__IO_READ;
    if (events[i].events & EPOLLOUT)
      ev |= CGRPC__IO_WRITE;
    if (events[i].events & (EPOLLERR | EPOLLHUP))
      ev |= CGRPC__IO_ERROR | CGRPC__IO_READ;
    if (w->cb)
      w->cb(w->user_data, ev);
  }
  loop->batch = NULL;
  run_posted(loop);
  run_timers(loop);
  run_deferred(loop);
  return 0;
}

/* ---- lending the loop (loop.h) ---- */

static void deadline_timespec(int64_t ns, struct timespec *ts) {
  ts->tv_sec = (time_t)(ns / 1000000000);
  ts->tv_nsec = (long)(ns % 1000000000);
}

/*
 * The loop's thread, at the end of a turn in which it completed a blocked
 * waiter's work: unless something needs it, it waits on |park_cond| (where
 * a returning waiter can take the token without a wake-up) until nobody has
 * held the token for the grace period, a timer falls due, or it is asked to
 * resume.  Each look is under |lock|, and the heap is read only while
 * nobody holds the token (a borrower changes it only while it does).
 */
static void park(cgrpc__loop *loop) {
  pthread_mutex_lock(&loop->lock);
  if (!loop->lend_hint || loop->blocked || loop->head || loop->deferred ||
      atomic_load(&loop->stop)) {
    loop->lend_hint = 0;
    pthread_mutex_unlock(&loop->lock);
    return;
  }
  loop->lend_hint = 0;
  loop->parked = 1;
  loop->resume = 0;
  loop->released_ns = cgrpc__now_ns();
  for (;;) {
    struct timespec ts;
    int64_t now = cgrpc__now_ns(), until;
    if (loop->borrowed) {
      /* Looks again now and then: a giver that leaves nothing for the loop
       * does not wake this thread, which then sees the token free at its
       * next look.  Rarely, so as not to cost a wake-up every few calls;
       * what the giver leaves due (tasks, timers, calls, waiters) wakes it
       * at once. */
      until = now + LEND_RECHECK_GRACES * loop->grace_ns;
    } else {
      if (loop->resume || loop->head || atomic_load(&loop->stop))
        break;
      until = loop->released_ns + loop->grace_ns;
      if (loop->heap_len > 0 && loop->heap[0]->when_ns < until)
        until = loop->heap[0]->when_ns;
      if (now >= until)
        break;
    }
    loop->park_until = until;
    deadline_timespec(until, &ts);
    pthread_cond_timedwait(&loop->park_cond, &loop->lock, &ts);
  }
  loop->parked = 0;
  loop->resume = 0;
  loop->lend_hint = 0;
  pthread_mutex_unlock(&loop->lock);
}

void cgrpc__loop_set_lend_grace(cgrpc__loop *loop, int64_t grace_ns) {
  loop->grace_ns = grace_ns;
}

int cgrpc__loop_borrow(cgrpc__loop *loop, int count_blocked) {
  int got;
  pthread_mutex_lock(&loop->lock);
  got = loop->parked && !loop->borrowed && !loop->resume &&
        !atomic_load(&loop->stop);
  if (got)
    loop->borrowed = 1;
  else if (count_blocked)
    loop->blocked++;
  pthread_mutex_unlock(&loop->lock);
  if (got)
    current_loop = loop;
  return got;
}

int cgrpc__loop_turn(cgrpc__loop *loop) {
  if (atomic_load(&loop->stop))
    return 1;
  if (run_turn(loop) != 0)
    return 1;
  return atomic_load(&loop->stop);
}

void cgrpc__loop_give_back(cgrpc__loop *loop, int busy) {
  current_loop = NULL;
  pthread_mutex_lock(&loop->lock);
  loop->borrowed = 0;
  loop->released_ns = cgrpc__now_ns();
  /* The hint of a waiter unblocked during this borrow: the parked thread
   * parks anyway. */
  loop->lend_hint = 0;
  if (busy || loop->blocked || loop->head || loop->deferred ||
      atomic_load(&loop->stop) ||
      (loop->heap_len > 0 && loop->heap[0]->when_ns < loop->park_until)) {
    loop->resume = 1;
    pthread_cond_signal(&loop->park_cond);
  }
  pthread_mutex_unlock(&loop->lock);
}

void cgrpc__loop_unblock(cgrpc__loop *loop, int lend) {
  pthread_mutex_lock(&loop->lock);
  loop->blocked--;
  if (lend)
    loop->lend_hint = 1;
  pthread_mutex_unlock(&loop->lock);
}

static void loop_run(cgrpc__loop *loop) {
  int i;
  current_loop = loop;
  while (!atomic_load(&loop->stop)) {
    if (run_turn(loop) != 0)
      break;
    if (loop->lend_hint)
      park(loop);
  }
  /* What was posted before the stop runs, and what that posts in turn
   * (a connection's close, the calls it releases), within a bound. */
  for (i = 0; i < 1000; i++) {
    int more;
    run_posted(loop);
    run_deferred(loop);
    pthread_mutex_lock(&loop->lock);
    more = loop->head != NULL;
    pthread_mutex_unlock(&loop->lock);
    if (!more)
      break;
  }
  current_loop = NULL;
}

static void *loop_thread(void *arg) {
  cgrpc__loop *loop = arg;
  loop_run(loop);
  if (loop->exit_cb) {
    /* Nobody will join this thread: the object that owned the loop went
     * on it, and |exit_cb| frees what is left. */
    pthread_detach(pthread_self());
    loop->exit_cb(loop->exit_user_data);
  }
  return NULL;
}

int cgrpc__loop_start_thread(cgrpc__loop *loop, const char *name) {
  if (pthread_create(&loop->thread, NULL, loop_thread, loop) != 0)
    return CGRPC_ERR_IO;
  if (name)
    pthread_setname_np(loop->thread, name);
  loop->has_thread = 1;
  return 0;
}

static void stop_run(void *user_data) {
  cgrpc__loop *loop = user_data;
  atomic_store(&loop->stop, 1);
}

void cgrpc__loop_stop(cgrpc__loop *loop) {
  if (atomic_exchange(&loop->stop_posted, 1))
    return;
  cgrpc__task_init(&loop->stop_task, stop_run, loop);
  cgrpc__loop_post_task(loop, &loop->stop_task);
}

void cgrpc__loop_stop_join(cgrpc__loop *loop) {
  if (!loop->has_thread)
    return;
  cgrpc__loop_stop(loop);
  pthread_join(loop->thread, NULL);
  loop->has_thread = 0;
}

void cgrpc__loop_on_exit(cgrpc__loop *loop, cgrpc__task_cb cb,
                         void *user_data) {
  loop->exit_cb = cb;
  loop->exit_user_data = user_data;
  loop->has_thread = 0; /* not to be joined */
}
