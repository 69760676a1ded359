/* SPDX-License-Identifier: MIT */
#include "server/pool.h"

#include "cgrpc/error.h"
#include "util/mem.h"

static _Thread_local const cgrpc__pool *current_pool;

int cgrpc__pool_in_worker(const cgrpc__pool *pool) {
  return current_pool == pool;
}

static void *worker(void *arg) {
  cgrpc__pool *pool = arg;
  current_pool = pool;
  pthread_mutex_lock(&pool->lock);
  for (;;) {
    cgrpc__job *job;
    while (!pool->head && !pool->stopping) {
      pool->idle++;
      pthread_cond_wait(&pool->cond, &pool->lock);
      pool->idle--;
    }
    job = pool->head;
    if (!job)
      break; /* stopping and drained */
    pool->head = job->next;
    if (!pool->head)
      pool->tail = NULL;
    pthread_mutex_unlock(&pool->lock);
    job->run(job);
    pthread_mutex_lock(&pool->lock);
  }
  pthread_mutex_unlock(&pool->lock);
  return NULL;
}

int cgrpc__pool_start(cgrpc__pool *pool, int n) {
  int i;
  pthread_mutex_init(&pool->lock, NULL);
  pthread_cond_init(&pool->cond, NULL);
  pool->head = pool->tail = NULL;
  pool->idle = 0;
  pool->stopping = 0;
  pool->n_threads = 0;
  pool->threads = cgrpc__calloc((size_t)n, sizeof *pool->threads);
  if (!pool->threads)
    return CGRPC_ERR_NOMEM;
  for (i = 0; i < n; i++) {
    if (pthread_create(&pool->threads[i], NULL, worker, pool) != 0) {
      cgrpc__pool_stop(pool);
      return CGRPC_ERR_IO;
    }
    pthread_setname_np(pool->threads[i], "cgrpc-worker");
    pool->n_threads++;
  }
  return 0;
}

void cgrpc__pool_submit(cgrpc__pool *pool, cgrpc__job *job) {
  job->next = NULL;
  pthread_mutex_lock(&pool->lock);
  if (pool->tail)
    pool->tail->next = job;
  else
    pool->head = job;
  pool->tail = job;
  pthread_cond_signal(&pool->cond);
  pthread_mutex_unlock(&pool->lock);
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
  int wake;
  if (!b->head)
    return;
  pthread_mutex_lock(&pool->lock);
  if (pool->tail)
    pool->tail->next = b->head;
  else
    pool->head = b->head;
  pool->tail = b->tail;
  /* Busy workers pick up the rest when they finish their job. */
  wake = b->n < pool->idle ? b->n : pool->idle;
  if (wake >= pool->idle)
    pthread_cond_broadcast(&pool->cond);
  else
    while (wake-- > 0)
      pthread_cond_signal(&pool->cond);
  pthread_mutex_unlock(&pool->lock);
  b->head = b->tail = NULL;
  b->n = 0;
}

void cgrpc__pool_stop(cgrpc__pool *pool) {
  int i;
  if (!pool->threads)
    return;
  pthread_mutex_lock(&pool->lock);
  pool->stopping = 1;
  pthread_cond_broadcast(&pool->cond);
  pthread_mutex_unlock(&pool->lock);
  for (i = 0; i < pool->n_threads; i++)
    pthread_join(pool->threads[i], NULL);
  cgrpc__free(pool->threads);
  pool->threads = NULL;
  pool->n_threads = 0;
  pthread_mutex_destroy(&pool->lock);
  pthread_cond_destroy(&pool->cond);
}
