/* SPDX-License-Identifier: MIT */
/*
 * The event loop: one thread, one epoll set, timers in a binary heap, and a
 * queue through which other threads post work (woken by an eventfd).
 *
 * Every epoll call in the library lives in loop.c, so that another backend
 * (an application's own loop) can later stand behind this small interface:
 * watch an fd, arm a timer, post work from another thread.
 */
#ifndef CGRPC_IO_LOOP_H
#define CGRPC_IO_LOOP_H

#include <stddef.h>
#include <stdint.h>

typedef struct cgrpc__loop cgrpc__loop;

enum {
  CGRPC__IO_READ = 1,
  CGRPC__IO_WRITE = 2,
  /* Error or hang-up; always reported. */
  CGRPC__IO_ERROR = 4
};

typedef void (*cgrpc__io_cb)(void *user_data, unsigned events);
typedef void (*cgrpc__task_cb)(void *user_data);

/* An fd registration, owned by its user (embedded in a connection). */
typedef struct cgrpc__watch {
  int fd;
  unsigned events;
  unsigned flags;
  cgrpc__io_cb cb;
  void *user_data;
} cgrpc__watch;

/* A one-shot timer, owned by its user.  |heap_index| is -1 when idle. */
typedef struct cgrpc__timer {
  int64_t when_ns;
  ptrdiff_t heap_index;
  cgrpc__task_cb cb;
  void *user_data;
} cgrpc__timer;

/*
 * Work to run once at the end of the current loop turn (before the loop
 * sleeps), on the loop thread: used to batch the writes of a turn.
 */
typedef struct cgrpc__deferred {
  struct cgrpc__deferred *next;
  int queued;
  cgrpc__task_cb cb;
  void *user_data;
} cgrpc__deferred;

/* Returns 0, CGRPC_ERR_NOMEM or CGRPC_ERR_IO. */
int cgrpc__loop_new(cgrpc__loop **loop_ptr);

/* Frees |loop|; its thread must have been joined. Posted tasks not run are
 * dropped.  NULL does nothing. */
void cgrpc__loop_del(cgrpc__loop *loop);

/* Starts a thread that runs the loop until cgrpc__loop_stop().  Returns 0 or
 * CGRPC_ERR_IO. */
int cgrpc__loop_start_thread(cgrpc__loop *loop, const char *name);

/* Asks the loop to return once the tasks posted so far have run.  Any
 * thread; idempotent; cannot fail. */
void cgrpc__loop_stop(cgrpc__loop *loop);

/* cgrpc__loop_stop(), then joins the loop's thread.  Not from the loop's
 * own thread (use cgrpc__loop_on_exit() there). */
void cgrpc__loop_stop_join(cgrpc__loop *loop);

/* Loop thread only: once the loop has returned, its thread detaches itself
 * and calls |cb(user_data)|, which may free the loop.  For an object whose
 * last reference goes on its own loop thread. */
void cgrpc__loop_on_exit(cgrpc__loop *loop, cgrpc__task_cb cb, void *user_data);

/* Nonzero when called on |loop|'s own thread. */
int cgrpc__loop_in_thread(const cgrpc__loop *loop);

/* Nonzero when called on any cgrpc loop thread. */
int cgrpc__in_any_loop_thread(void);

/* Watches |w->fd| for |events| (READ/WRITE). Loop thread (or before the loop
 * thread starts).  Returns 0 or CGRPC_ERR_IO. */
int cgrpc__loop_watch(cgrpc__loop *loop, cgrpc__watch *w, int fd,
                      unsigned events, cgrpc__io_cb cb, void *user_data);
/* Changes the event mask of a watched fd.  Returns 0 or CGRPC_ERR_IO. */
int cgrpc__loop_watch_update(cgrpc__loop *loop, cgrpc__watch *w,
                             unsigned events);
/* Stops watching (the fd is not closed). */
void cgrpc__loop_unwatch(cgrpc__loop *loop, cgrpc__watch *w);

void cgrpc__timer_init(cgrpc__timer *t, cgrpc__task_cb cb, void *user_data);
/* Arms |t| to fire at the monotonic time |when_ns| (re-arms if active).
 * Loop thread only.  Returns 0 or CGRPC_ERR_NOMEM. */
int cgrpc__loop_timer_start(cgrpc__loop *loop, cgrpc__timer *t,
                            int64_t when_ns);
void cgrpc__loop_timer_stop(cgrpc__loop *loop, cgrpc__timer *t);

/* A task node, embedded in the object whose work it carries: posting one
 * allocates nothing, so it cannot fail. */
typedef struct cgrpc__task {
  struct cgrpc__task *next;
  cgrpc__task_cb cb;
  void *user_data;
} cgrpc__task;

/* Sets up |t| to run |cb(user_data)|. */
void cgrpc__task_init(cgrpc__task *t, cgrpc__task_cb cb, void *user_data);

/* Runs |t| on the loop thread soon (from the loop thread itself: in the
 * next turn).  |t| must stay valid until it has run, and must not be
 * posted again before that; its callback may post it again or free it.
 * Any thread; cannot fail. */
void cgrpc__loop_post_task(cgrpc__loop *loop, cgrpc__task *t);

/*
 * Lending the loop to a waiting thread (issue 9).  A thread that blocks for
 * work of this loop (a blocking call) may drive the loop itself while it
 * waits, instead of handing the work to the loop's thread and being woken
 * back: a closed loop of blocking calls then costs one wake-up per call
 * (the socket's) instead of three (the start's hop to the loop thread, the
 * socket's, the hop back to the waiter).
 *
 * One thread drives the loop at a time; it holds the loop's token.  The
 * loop's own thread holds it by default.  When that thread has just
 * completed a blocked waiter's work (cgrpc__loop_unblock() with |lend|), it
 * expects the waiter to come back with more and, at the end of its turn,
 * parks on a condition variable (not in epoll_wait) for a grace period
 * (CGRPC__LOOP_LEND_GRACE_NS, 1 ms) instead of sleeping in epoll_wait.  A
 * waiter that finds it parked takes the token without waking anyone and drives
 * the loop until its own work is done, then gives the token back; the parked
 * thread takes it back once nobody has held it for the grace period (while
 * the loop is borrowed it looks only every 10 grace periods, so as not to
 * cost a wake-up every few calls), and at once when a task is posted from
 * another thread, a timer falls due, the loop is asked to stop, another
 * waiter is blocked, or the giver says other work is in flight.  So timers,
 * tasks, waiters and calls in flight never wait for a driver, and I/O that
 * comes while nothing is in flight waits at most 11 grace periods (11 ms);
 * nothing is delayed indefinitely.
 *
 * While a thread holds the token, cgrpc__loop_in_thread() and
 * cgrpc__in_any_loop_thread() are true on it (and the parked thread runs
 * nothing), so the library's checks against blocking inside the loop hold
 * for whichever thread drives it.
 */
#define CGRPC__LOOP_LEND_GRACE_NS (1000 * 1000)

/* Sets the grace period of |loop| (CGRPC__LOOP_LEND_GRACE_NS by default);
 * before its thread starts.  For tests, which need a wide or a narrow one. */
void cgrpc__loop_set_lend_grace(cgrpc__loop *loop, int64_t grace_ns);

/*
 * Takes the token if the loop's thread is parked and nobody drives the
 * loop: returns 1, and the caller now drives it (cgrpc__loop_turn() until
 * its work is done, then cgrpc__loop_give_back()).  Otherwise returns 0
 * and, when |count_blocked|, counts the caller as a blocked waiter until
 * cgrpc__loop_unblock().  Not on any loop thread (the caller must not
 * already drive a loop); any other thread.
 */
int cgrpc__loop_borrow(cgrpc__loop *loop, int count_blocked);

/*
 * Runs one turn of the loop on the borrowing thread: waits for I/O (at most
 * until the next timer, not at all with tasks or deferred work due), then
 * runs the I/O callbacks, the posted tasks, the due timers and the deferred
 * work.  Returns 0, or nonzero when the loop is stopping (then the caller
 * gives the token back; the loop's thread finishes the stop).  Borrower
 * only.
 */
int cgrpc__loop_turn(cgrpc__loop *loop);

/*
 * Gives the token back; the caller no longer drives the loop and must not
 * touch it again unless something else keeps it alive.  |busy| nonzero
 * says that other work is in flight on the loop (it may need I/O at any
 * moment): the loop's thread then takes the token back at once rather than
 * after the grace period.  Borrower only.
 */
void cgrpc__loop_give_back(cgrpc__loop *loop, int busy);

/*
 * The driver of |loop| has completed the work a waiter counted by
 * cgrpc__loop_borrow() blocks for: it is no longer counted.  |lend|
 * nonzero: the waiter is likely to come back with more, so the loop's
 * thread parks at the end of this turn if nothing else needs it.  Also from
 * the waiter itself when its work never reached the loop.  Any thread.
 */
void cgrpc__loop_unblock(cgrpc__loop *loop, int lend);

/* A buffer of |*size| bytes that any code on the loop thread may use until
 * it returns to the loop (the connections' write batches); NULL when out of
 * memory. */
uint8_t *cgrpc__loop_scratch(cgrpc__loop *loop, size_t *size);

/* Queues |d| to run at the end of this loop turn (no-op if queued). Loop
 * thread only. */
void cgrpc__loop_defer(cgrpc__loop *loop, cgrpc__deferred *d);
/* Removes |d| from the queue if it is queued.  Loop thread only. */
void cgrpc__loop_undefer(cgrpc__loop *loop, cgrpc__deferred *d);

#endif /* CGRPC_IO_LOOP_H */
