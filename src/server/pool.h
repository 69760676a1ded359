/* SPDX-License-Identifier: MIT */
/*
 * The handler pool: threads made on demand up to a maximum and fed from one
 * FIFO of intrusive jobs.  A worker spins briefly on the queue before it
 * sleeps when a CPU is left over by the event loops, and threads idle for
 * POOL_IDLE_MS exit, down to a floor of POOL_MIN_THREADS (see pool.c).  Like grpc++'s sync server, which grows its
 * pool, rather than grpcio's fixed ThreadPoolExecutor(max_workers): a
 * handler that blocks (a stream waiting for its client) takes a thread, and
 * the calls behind it get another.
 */
#ifndef CGRPC_SERVER_POOL_H
#define CGRPC_SERVER_POOL_H

#include <pthread.h>
#include <stdatomic.h>

#include "util/log.h"

typedef struct cgrpc__job {
  struct cgrpc__job *next;
  void (*run)(struct cgrpc__job *job);
} cgrpc__job;

/* Jobs gathered during one loop turn, handed over with one lock. */
typedef struct cgrpc__job_batch {
  cgrpc__job *head, *tail;
  int n;
} cgrpc__job_batch;

/* A sleeping worker, on its own stack (pool.c). */
struct cgrpc__pool_sleeper;

typedef struct cgrpc__pool {
  pthread_mutex_t lock;
  pthread_cond_t gone; /* the last thread has exited */
  cgrpc__job *head, *tail;
  atomic_int queued; /* jobs in the queue; spinning workers poll it */
  struct cgrpc__pool_sleeper *sleepers; /* most recently idle first */
  /* Workers spinning on the queue, or woken or made and not yet at it: a
   * queued job has a thread on its way while this is nonzero. */
  int searching;
  int n_threads; /* started (or being started) and not exited */
  int max_threads;
  int running;       /* workers running a job */
  int cpus;          /* CPUs the process may use */
  int other_threads; /* busy threads outside the pool (the event loops) */
  atomic_int stopping;
  int started;
  /* The last thread to exit, not joined yet: each exiting thread joins the
   * one before it, and cgrpc__pool_stop() joins the last. */
  pthread_t zombie;
  int has_zombie;
  int create_failing; /* pthread_create() failed; logged once per spell */
  const cgrpc__logger *log;
} cgrpc__pool;

/*
 * Starts the pool's floor of threads; it grows to |max_threads| (>= 1) on
 * demand.  |other_threads| is how many busy threads share the CPUs with
 * the pool (the event loops): workers spin only on CPUs left over.  |log|
 * (may be NULL) must outlive the pool.  Returns 0 or CGRPC_ERR_IO (a thread
 * could not be started).
 */
int cgrpc__pool_start(cgrpc__pool *pool, int max_threads, int other_threads,
                      const cgrpc__logger *log);

/* Queues |job|; a worker calls job->run(job).  Any thread. */
void cgrpc__pool_submit(cgrpc__pool *pool, cgrpc__job *job);

/* Adds |job| to |b| (owned by one thread). */
void cgrpc__job_batch_add(cgrpc__job_batch *b, cgrpc__job *job);

/*
 * Queues every job of |b| under one lock and empties |b|.  Wakes one idle
 * worker, or makes a thread, only when no worker is already looking at the
 * queue; each worker that takes a job and sees more waiting gets one more
 * thread going before it runs its job, which may block.  When no thread can
 * be made (the maximum is reached, or pthread_create() fails), the jobs wait
 * for a worker to finish.  Any thread.
 */
void cgrpc__pool_submit_batch(cgrpc__pool *pool, cgrpc__job_batch *b);

/* Nonzero when called on one of |pool|'s worker threads. */
int cgrpc__pool_in_worker(const cgrpc__pool *pool);

/* Runs the jobs still queued, then joins every thread.  No job may be
 * submitted once it has been called.  Idempotent. */
void cgrpc__pool_stop(cgrpc__pool *pool);

#endif /* CGRPC_SERVER_POOL_H */
