/* SPDX-License-Identifier: MIT */
/*
 * cgrpc's load client for the benchmark and the perf-smoke test.
 *
 *   cgrpc_load_client unary --target=HOST:PORT [--channels=C]
 *       [--outstanding=N] [--calls=K | --duration=S [--warmup=S]]
 *       [--name=NAME] [--expect=TEXT]
 *   cgrpc_load_client stream --target=HOST:PORT --count=K --size=BYTES
 *
 * unary: keeps N SayHello calls in flight on each of C channels with the
 * async stub (the next call starts from the previous call's callback).
 * With --calls it makes exactly K calls; with --duration it warms up, then
 * measures for S seconds.  Every reply is checked: status OK and the message
 * equal to --expect (default "Hello, " NAME "!").
 *
 * stream: one bidi bench.Bench/Stream call; a second thread writes K
 * messages of BYTES bytes (the first 8 carry the sequence number) while this
 * one reads the echoes and checks their size and order.
 *
 * Prints one line of JSON with the counts, the wall time and this process's
 * CPU time (user+sys) over the measured window.  Exits 0 when every call
 * (or message) came back right, 1 otherwise, 2 on bad usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <cgrpc/cgrpc.h>

#include "bench.grpc-c.h"
#include "helloworld.grpc-c.h"

/* ---- clocks ---------------------------------------------------------------- */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* User+system CPU of the whole process (every thread), in seconds. */
static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void sleep_s(double s) {
  struct timespec ts;
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* ---- unary ----------------------------------------------------------------- */

struct unary_run {
  Helloworld__HelloRequest request;
  const char *expect;
  int64_t total_calls;         /* > 0: make exactly this many */
  atomic_int_fast64_t issued;  /* calls started (with total_calls) */
  atomic_int_fast64_t done;    /* calls completed, right or wrong */
  atomic_int_fast64_t errors;  /* calls completed wrong, or not started */
  atomic_int stopping;         /* --duration: start no more calls */
  pthread_mutex_t lock;
  pthread_cond_t idle;
  int64_t inflight;            /* guarded by lock */
};

struct slot {
  struct unary_run *run;
  cgrpc_channel *channel;
};

static void report_error(struct unary_run *run, const char *what,
                         const char *detail) {
  int_fast64_t n = atomic_fetch_add(&run->errors, 1);
  if (n < 5) {
    fprintf(stderr, "cgrpc_load_client: %s%s%s\n", what, detail ? ": " : "",
            detail ? detail : "");
  }
}

static void slot_retire(struct unary_run *run) {
  pthread_mutex_lock(&run->lock);
  if (--run->inflight == 0) {
    pthread_cond_broadcast(&run->idle);
  }
  pthread_mutex_unlock(&run->lock);
}

static void on_reply(cgrpc_call *call, const cgrpc_status *status,
                     ProtobufCMessage *reply, void *user_data);

/* Starts the slot's next call, or retires the slot.  Any thread. */
static void slot_next(struct slot *slot) {
  struct unary_run *run = slot->run;
  int rv;

  if (run->total_calls > 0) {
    if (atomic_fetch_add(&run->issued, 1) >= run->total_calls) {
      slot_retire(run);
      return;
    }
  } else if (atomic_load(&run->stopping)) {
    slot_retire(run);
    return;
  }
  rv = helloworld__greeter__say_hello__start(slot->channel, &run->request,
                                             NULL, on_reply, slot, NULL);
  if (rv != 0) {
    report_error(run, "start failed", cgrpc_strerror(rv));
    atomic_fetch_add(&run->done, 1);
    slot_retire(run);
  }
}

static void on_reply(cgrpc_call *call, const cgrpc_status *status,
                     ProtobufCMessage *reply, void *user_data) {
  struct slot *slot = user_data;
  struct unary_run *run = slot->run;
  const Helloworld__HelloReply *hello = (const Helloworld__HelloReply *)reply;

  (void)call;
  if (status->code != CGRPC_STATUS_OK) {
    report_error(run, cgrpc_status_code_name(status->code), status->message);
  } else if (hello == NULL || hello->message == NULL ||
             strcmp(hello->message, run->expect) != 0) {
    report_error(run, "wrong reply",
                 hello && hello->message ? hello->message : "(none)");
  }
  if (reply != NULL) {
    protobuf_c_message_free_unpacked(reply, NULL);
  }
  atomic_fetch_add(&run->done, 1);
  slot_next(slot);
}

static int run_unary(const char *target, int channels, int outstanding,
                     int64_t calls, double duration, double warmup,
                     const char *name, const char *expect) {
  struct unary_run run;
  cgrpc_channel **chans = calloc((size_t)channels, sizeof *chans);
  struct slot *slots = calloc((size_t)channels * (size_t)outstanding,
                              sizeof *slots);
  char expect_buf[256];
  double t0, t1 = 0, c0, c1 = 0;
  int64_t d0, d1 = 0, e0, e1 = 0, n_slots = (int64_t)channels * outstanding;
  int rv;

  if (chans == NULL || slots == NULL) {
    fprintf(stderr, "cgrpc_load_client: out of memory\n");
    return 1;
  }
  memset(&run, 0, sizeof run);
  helloworld__hello_request__init(&run.request);
  run.request.name = (char *)name;
  if (expect == NULL) {
    snprintf(expect_buf, sizeof expect_buf, "Hello, %s!", name);
    expect = expect_buf;
  }
  run.expect = expect;
  run.total_calls = calls;
  atomic_init(&run.issued, 0);
  atomic_init(&run.done, 0);
  atomic_init(&run.errors, 0);
  atomic_init(&run.stopping, 0);
  pthread_mutex_init(&run.lock, NULL);
  pthread_cond_init(&run.idle, NULL);

  for (int i = 0; i < channels; i++) {
    if ((rv = cgrpc_channel_new(&chans[i], target, NULL)) != 0) {
      fprintf(stderr, "cgrpc_load_client: %s: %s\n", target, cgrpc_strerror(rv));
      return 1;
    }
  }
  run.inflight = n_slots;
  t0 = now_s();
  c0 = cpu_s();
  for (int64_t i = 0; i < n_slots; i++) {
    slots[i].run = &run;
    slots[i].channel = chans[i % channels];
    slot_next(&slots[i]);
  }

  d0 = e0 = 0;
  if (calls <= 0) {
    /* Timed: warm up, then measure the window between two snapshots. */
    sleep_s(warmup);
    t0 = now_s();
    c0 = cpu_s();
    d0 = (int64_t)atomic_load(&run.done);
    e0 = (int64_t)atomic_load(&run.errors);
    sleep_s(duration);
    t1 = now_s();
    c1 = cpu_s();
    d1 = (int64_t)atomic_load(&run.done);
    e1 = (int64_t)atomic_load(&run.errors);
    atomic_store(&run.stopping, 1);
  }
  pthread_mutex_lock(&run.lock);
  while (run.inflight > 0) {
    pthread_cond_wait(&run.idle, &run.lock);
  }
  pthread_mutex_unlock(&run.lock);
  if (calls > 0) {
    t1 = now_s();
    c1 = cpu_s();
    d1 = (int64_t)atomic_load(&run.done);
    e1 = (int64_t)atomic_load(&run.errors);
  }
  for (int i = 0; i < channels; i++) {
    cgrpc_channel_del(chans[i]);
  }

  {
    int64_t n = d1 - d0, all_errors = (int64_t)atomic_load(&run.errors);
    double secs = t1 - t0, cpu = c1 - c0;
    int bad = all_errors > 0 || (calls > 0 && d1 != calls);
    printf("{\"mode\":\"unary\",\"channels\":%d,\"outstanding\":%d,"
           "\"calls\":%" PRId64 ",\"errors\":%" PRId64 ",\"errors_total\":%"
           PRId64 ",\"seconds\":%.6f,\"cpu_s\":%.6f,\"calls_per_s\":%.1f,"
           "\"cpu_us_per_call\":%.3f,\"ok\":%s}\n",
           channels, outstanding, n, e1 - e0, all_errors, secs, cpu,
           secs > 0 ? (double)n / secs : 0.0,
           n > 0 ? cpu * 1e6 / (double)n : 0.0, bad ? "false" : "true");
    free(chans);
    free(slots);
    return bad ? 1 : 0;
  }
}

/* ---- stream ---------------------------------------------------------------- */

struct stream_run {
  cgrpc_call *call;
  int64_t count;
  size_t size;
  int write_rv;
  int64_t written;
};

static void put_seq(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) {
    p[i] = (uint8_t)(v >> (8 * i));
  }
}

static uint64_t get_seq(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) {
    v |= (uint64_t)p[i] << (8 * i);
  }
  return v;
}

static void *stream_writer(void *arg) {
  struct stream_run *sr = arg;
  Bench__Chunk chunk = BENCH__CHUNK__INIT;
  uint8_t *buf = malloc(sr->size);

  if (buf == NULL) {
    sr->write_rv = CGRPC_ERR_NOMEM;
    cgrpc_call_cancel(sr->call);
    return NULL;
  }
  for (size_t i = 0; i < sr->size; i++) {
    buf[i] = (uint8_t)(i * 131u + 7u);
  }
  chunk.payload.data = buf;
  chunk.payload.len = sr->size;
  for (int64_t i = 0; i < sr->count; i++) {
    put_seq(buf, (uint64_t)i);
    if ((sr->write_rv = bench__bench__stream__write(sr->call, &chunk)) != 0) {
      break;
    }
    sr->written++;
  }
  cgrpc_call_writes_done(sr->call);
  free(buf);
  return NULL;
}

static int run_stream(const char *target, int64_t count, size_t size) {
  struct stream_run sr;
  cgrpc_channel *channel = NULL;
  cgrpc_status status = {0};
  pthread_t writer;
  Bench__Chunk *in = NULL;
  int64_t received = 0, bad = 0;
  double t0, t1, c0, c1;
  int rv;

  memset(&sr, 0, sizeof sr);
  sr.count = count;
  sr.size = size;
  if ((rv = cgrpc_channel_new(&channel, target, NULL)) != 0) {
    fprintf(stderr, "cgrpc_load_client: %s: %s\n", target, cgrpc_strerror(rv));
    return 1;
  }
  t0 = now_s();
  c0 = cpu_s();
  if ((rv = bench__bench__stream__open(channel, NULL, &sr.call)) != 0) {
    fprintf(stderr, "cgrpc_load_client: open: %s\n", cgrpc_strerror(rv));
    cgrpc_channel_del(channel);
    return 1;
  }
  if (pthread_create(&writer, NULL, stream_writer, &sr) != 0) {
    fprintf(stderr, "cgrpc_load_client: pthread_create failed\n");
    return 1;
  }
  while ((rv = bench__bench__stream__read(sr.call, &in)) == 1) {
    if (in->payload.len != size || get_seq(in->payload.data) !=
                                       (uint64_t)received) {
      if (bad++ < 5) {
        fprintf(stderr, "cgrpc_load_client: message %" PRId64
                        ": wrong size or order\n", received);
      }
    }
    received++;
    protobuf_c_message_free_unpacked(&in->base, NULL);
  }
  pthread_join(writer, NULL);
  cgrpc_call_finish(sr.call, &status);
  t1 = now_s();
  c1 = cpu_s();
  if (status.code != CGRPC_STATUS_OK) {
    fprintf(stderr, "cgrpc_load_client: stream ended %s: %s\n",
            cgrpc_status_code_name(status.code),
            status.message ? status.message : "");
  }
  if (sr.write_rv != 0) {
    fprintf(stderr, "cgrpc_load_client: write: %s\n",
            cgrpc_strerror(sr.write_rv));
  }
  {
    double secs = t1 - t0, cpu = c1 - c0;
    int ok = status.code == CGRPC_STATUS_OK && sr.write_rv == 0 && bad == 0 &&
             received == count;
    printf("{\"mode\":\"stream\",\"messages\":%" PRId64 ",\"size\":%zu,"
           "\"errors\":%" PRId64 ",\"seconds\":%.6f,\"cpu_s\":%.6f,"
           "\"msgs_per_s\":%.1f,\"mb_per_s\":%.2f,\"cpu_us_per_msg\":%.3f,"
           "\"ok\":%s}\n",
           received, size, bad + (count - received), secs, cpu,
           secs > 0 ? (double)received / secs : 0.0,
           secs > 0 ? (double)received * (double)size / secs / 1e6 : 0.0,
           received > 0 ? cpu * 1e6 / (double)received : 0.0,
           ok ? "true" : "false");
    cgrpc_status_clear(&status);
    cgrpc_call_unref(sr.call);
    cgrpc_channel_del(channel);
    return ok ? 0 : 1;
  }
}

/* ---- main ------------------------------------------------------------------ */

static const char *opt(const char *arg, const char *name) {
  size_t n = strlen(name);
  return strncmp(arg, name, n) == 0 && arg[n] == '=' ? arg + n + 1 : NULL;
}

static int usage(void) {
  fprintf(stderr,
          "usage: cgrpc_load_client unary --target=HOST:PORT [--channels=C] "
          "[--outstanding=N]\n"
          "           [--calls=K | --duration=S [--warmup=S]] [--name=NAME] "
          "[--expect=TEXT]\n"
          "       cgrpc_load_client stream --target=HOST:PORT --count=K "
          "--size=BYTES\n");
  return 2;
}

int main(int argc, char **argv) {
  const char *target = "localhost:50051", *name = "world", *expect = NULL, *v;
  int channels = 1, outstanding = 1;
  int64_t calls = 0, count = 1000;
  double duration = 0, warmup = 0.5;
  size_t size = 16;

  if (argc < 2) {
    return usage();
  }
  for (int i = 2; i < argc; i++) {
    if ((v = opt(argv[i], "--target"))) {
      target = v;
    } else if ((v = opt(argv[i], "--channels"))) {
      channels = atoi(v);
    } else if ((v = opt(argv[i], "--outstanding"))) {
      outstanding = atoi(v);
    } else if ((v = opt(argv[i], "--calls"))) {
      calls = strtoll(v, NULL, 10);
    } else if ((v = opt(argv[i], "--duration"))) {
      duration = atof(v);
    } else if ((v = opt(argv[i], "--warmup"))) {
      warmup = atof(v);
    } else if ((v = opt(argv[i], "--name"))) {
      name = v;
    } else if ((v = opt(argv[i], "--expect"))) {
      expect = v;
    } else if ((v = opt(argv[i], "--count"))) {
      count = strtoll(v, NULL, 10);
    } else if ((v = opt(argv[i], "--size"))) {
      size = (size_t)strtoull(v, NULL, 10);
    } else {
      return usage();
    }
  }
  if (strcmp(argv[1], "unary") == 0) {
    if (channels < 1 || outstanding < 1 || (calls <= 0 && duration <= 0)) {
      return usage();
    }
    return run_unary(target, channels, outstanding, calls, duration, warmup,
                     name, expect);
  }
  if (strcmp(argv[1], "stream") == 0) {
    if (count < 1 || size < 8) {
      return usage();
    }
    return run_stream(target, count, size);
  }
  return usage();
}
