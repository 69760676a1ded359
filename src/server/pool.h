/* SPDX-License-Identifier: MIT */
/*
 * A fixed pool of handler threads fed from one FIFO of intrusive jobs, the
 * equivalent of grpcio's ThreadPoolExecutor(max_workers).
 */
#ifndef CGRPC_SERVER_POOL_H
#define CGRPC_SERVER_POOL_H

#include <pthread.h>

typedef struct cgrpc__job {
  struct cgrpc__job *next;
  void (*run)(struct cgrpc__job *job);
} cgrpc__job;

/* Jobs gathered during one loop turn, handed over with one lock. */
typedef struct cgrpc__job_batch {
  cgrpc__job *head, *tail;
  int n;
} cgrpc__job_batch;

typedef struct cgrpc__pool {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  cgrpc__job *head, *tail;
  int idle; /* workers waiting for a job */
  pthread_t *threads;
  int n_threads;
  int stopping;
} cgrpc__pool;

/* Starts |n| threads.  Returns 0, CGRPC_ERR_NOMEM or CGRPC_ERR_IO. */
int cgrpc__pool_start(cgrpc__pool *pool, int n);

/* Queues |job|; a worker calls job->run(job).  Any thread. */
void cgrpc__pool_submit(cgrpc__pool *pool, cgrpc__job *job);

/* Adds |job| to |b| (owned by one thread). */
void cgrpc__job_batch_add(cgrpc__job_batch *b, cgrpc__job *job);

/* Queues every job of |b| under one lock, wakes as many idle workers as
 * there are jobs, and empties |b|.  Any thread. */
void cgrpc__pool_submit_batch(cgrpc__pool *pool, cgrpc__job_batch *b);

/* Nonzero when called on one of |pool|'s worker threads. */
int cgrpc__pool_in_worker(const cgrpc__pool *pool);

/* Runs the jobs still queued, then joins every thread.  Idempotent. */
void cgrpc__pool_stop(cgrpc__pool *pool);

#endif /* CGRPC_SERVER_POOL_H */
