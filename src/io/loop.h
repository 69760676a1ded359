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
void cgrpc__loop_on_exit(cgrpc__loop *loop, cgrpc__task_cb cb,
                         void *user_data);

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
