/* SPDX-License-Identifier: MIT */
/*
 * cgrpc's load client for the benchmark and the perf-smoke test.
 *
 *   cgrpc_load_client unary --target=HOST:PORT [--channels=C]
 *       [--outstanding=N] [--calls=K | --duration=S [--warmup=S]]
 *       [--name=NAME] [--expect=TEXT] [--channel_per_call | --blocking]
 *       [TLS flags]
 *   cgrpc_load_client stream --target=HOST:PORT --count=K --size=BYTES
 *       [TLS flags]
 *
 *   TLS flags: --ca_file=F [--server_host_override=NAME]
 *              [--client_cert_file=F --client_key_file=F] [--session_cache]
 *
 * unary: keeps N SayHello calls in flight on each of C channels with the
 * async stub (the next call starts from the previous call's callback).
 * With --calls it makes exactly K calls; with --duration it warms up, then
 * measures for S seconds.  Every reply is checked: status OK and the message
 * equal to --expect (default "Hello, " NAME "!").
 *
 * --blocking: N threads per channel instead of N slots, each making blocking
 * calls (the blocking stub) one after another on its channel.
 *
 * --channel_per_call: a new connection per call instead.  N threads each
 * make their calls one after another, each on a new channel (connect,
 * handshake, one blocking call, delete); --channels must be 1.  This is the
 * handshake benchmark.
 *
 * stream: one bidi bench.Bench/Stream call; a second thread writes K
 * messages of BYTES bytes (the first 8 carry the sequence number) while this
 * one reads the echoes and checks their size and order.
 *
 * TLS: --ca_file turns it on, trusting the CAs in F; --server_host_override
 * checks the server's certificate for NAME instead of the target's host;
 * the client certificate and key make it mutual TLS (the greeter_client's
 * flags).  --session_cache shares one TLS session cache among all the
 * channels, so that new connections resume the sessions of earlier ones.
 * Over TLS each unary call asks the server (header "bench-tls-info") for
 * its view of the connection; cgrpc_bench_server and grpcxx_server answer
 * in the reply's headers (bench-tls-reused, and bench-tls-version and
 * bench-tls-cipher where the server can tell), and the JSON line counts
 * them: "server_resumed" of "server_tls_info" calls.  cgrpc's client API
 * does not say whether its own handshake resumed a session, so
 * "client_resumed" is null.
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

/* ---- TLS info ------------------------------------------------------------- */

/* Asks the server for its view of the connection (see the top comment). */
#define TLS_INFO_ASK "bench-tls-info"

struct tls_info {
  pthread_mutex_t lock;
  int64_t reported; /* calls whose reply carried the server's view */
  int64_t resumed;  /* ... that said the session was resumed */
  char version[32]; /* the first reported version and cipher, or "" */
  char cipher[64];
};

static void copy_value(char *dst, size_t size, const char *v, size_t len) {
  if (len >= size) {
    len = size - 1;
  }
  memcpy(dst, v, len);
  dst[len] = '\0';
}

/* Counts what the server said about the call's connection.  Any thread. */
static void tls_info_note(struct tls_info *ti, const cgrpc_metadata_array *md) {
  const char *reused, *version, *cipher;
  size_t reused_len = 0, version_len = 0, cipher_len = 0;

  if (md == NULL ||
      (reused = cgrpc_metadata_array_get(md, "bench-tls-reused",
                                         &reused_len)) == NULL) {
    return;
  }
  version = cgrpc_metadata_array_get(md, "bench-tls-version", &version_len);
  cipher = cgrpc_metadata_array_get(md, "bench-tls-cipher", &cipher_len);
  pthread_mutex_lock(&ti->lock);
  ti->reported++;
  if (reused_len == 1 && reused[0] == '1') {
    ti->resumed++;
  }
  if (version != NULL && ti->version[0] == '\0') {
    copy_value(ti->version, sizeof ti->version, version, version_len);
  }
  if (cipher != NULL && ti->cipher[0] == '\0') {
    copy_value(ti->cipher, sizeof ti->cipher, cipher, cipher_len);
  }
  pthread_mutex_unlock(&ti->lock);
}

/* The JSON members for the TLS info (after a comma). */
static void tls_info_print(struct tls_info *ti, int tls) {
  pthread_mutex_lock(&ti->lock);
  printf("\"tls\":%s,\"server_tls_info\":%" PRId64 ",\"server_resumed\":%"
         PRId64 ",\"server_tls_version\":",
         tls ? "true" : "false", ti->reported, ti->resumed);
  /* Both strings come from our own server: no quotes or backslashes. */
  printf(ti->version[0] ? "\"%s\"" : "null", ti->version);
  printf(",\"server_tls_cipher\":");
  printf(ti->cipher[0] ? "\"%s\"" : "null", ti->cipher);
  printf(",\"client_resumed\":null");
  pthread_mutex_unlock(&ti->lock);
}

/* ---- unary ----------------------------------------------------------------- */

struct unary_run {
  Helloworld__HelloRequest request;
  const char *expect;
  const char *target;
  const cgrpc_channel_options *channel_opts; /* for --channel_per_call */
  const cgrpc_call_options *call_opts;       /* NULL, or the TLS info ask */
  int64_t total_calls;         /* > 0: make exactly this many */
  atomic_int_fast64_t issued;  /* calls started (with total_calls) */
  atomic_int_fast64_t done;    /* calls completed, right or wrong */
  atomic_int_fast64_t errors;  /* calls completed wrong, or not started */
  atomic_int stopping;         /* --duration: start no more calls */
  pthread_mutex_t lock;
  pthread_cond_t idle;
  int64_t inflight;            /* guarded by lock */
  struct tls_info tls;
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

/* Checks one call's outcome and counts it done; frees |reply|. */
static void check_reply(struct unary_run *run, const cgrpc_status *status,
                        ProtobufCMessage *reply) {
  const Helloworld__HelloReply *hello = (const Helloworld__HelloReply *)reply;

  if (status->code != CGRPC_STATUS_OK) {
    report_error(run, cgrpc_status_code_name(status->code), status->message);
  } else if (hello == NULL || hello->message == NULL ||
             strcmp(hello->message, run->expect) != 0) {
    report_error(run, "wrong reply",
                 hello && hello->message ? hello->message : "(none)");
  } else if (run->call_opts != NULL) {
    tls_info_note(&run->tls, status->initial_metadata);
  }
  if (reply != NULL) {
    protobuf_c_message_free_unpacked(reply, NULL);
  }
  atomic_fetch_add(&run->done, 1);
}

/* Whether another call may start: counts it against --calls, or checks
 * the --duration stop.  Any thread. */
static int take_call(struct unary_run *run) {
  if (run->total_calls > 0) {
    return atomic_fetch_add(&run->issued, 1) < run->total_calls;
  }
  return !atomic_load(&run->stopping);
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

  if (!take_call(run)) {
    slot_retire(run);
    return;
  }
  rv = helloworld__greeter__say_hello__start(slot->channel, &run->request,
                                             run->call_opts, on_reply, slot,
                                             NULL);
  if (rv != 0) {
    report_error(run, "start failed", cgrpc_strerror(rv));
    atomic_fetch_add(&run->done, 1);
    slot_retire(run);
  }
}

static void on_reply(cgrpc_call *call, const cgrpc_status *status,
                     ProtobufCMessage *reply, void *user_data) {
  struct slot *slot = user_data;

  (void)call;
  check_reply(slot->run, status, reply);
  slot_next(slot);
}

/*
 * --channel_per_call: one of the N threads.  Each call gets a channel of
 * its own, so each pays for a connection (and a TLS handshake); the
 * channel is deleted once the call is done, before the next one starts.
 * Bounded by --calls or by the --duration stop, like the slots.
 */
static void *percall_thread(void *arg) {
  struct unary_run *run = arg;

  while (take_call(run)) {
    cgrpc_channel *channel = NULL;
    Helloworld__HelloReply *reply = NULL;
    cgrpc_status status = {0};
    int rv = cgrpc_channel_new(&channel, run->target, run->channel_opts);

    if (rv != 0) {
      report_error(run, "channel", cgrpc_strerror(rv));
      atomic_fetch_add(&run->done, 1);
      continue;
    }
    helloworld__greeter__say_hello__call(channel, &run->request, &reply,
                                         run->call_opts, &status);
    check_reply(run, &status, reply ? &reply->base : NULL);
    cgrpc_status_clear(&status);
    cgrpc_channel_del(channel);
  }
  slot_retire(run);
  return NULL;
}

/* --blocking: one of the N threads of a channel, one call after another
 * with the blocking stub. */
static void *blocking_thread(void *arg) {
  struct slot *slot = arg;
  struct unary_run *run = slot->run;

  while (take_call(run)) {
    Helloworld__HelloReply *reply = NULL;
    cgrpc_status status = {0};

    helloworld__greeter__say_hello__call(slot->channel, &run->request, &reply,
                                         run->call_opts, &status);
    check_reply(run, &status, reply ? &reply->base : NULL);
    cgrpc_status_clear(&status);
  }
  slot_retire(run);
  return NULL;
}

static int run_unary(const char *target, const cgrpc_channel_options *opts,
                     int tls, int channels, int outstanding, int per_call,
                     int blocking,
                     int64_t calls, double duration, double warmup,
                     const char *name, const char *expect) {
  struct unary_run run;
  cgrpc_metadata_array *ask = NULL;
  cgrpc_call_options call_opts = {0};
  cgrpc_channel **chans = calloc((size_t)channels, sizeof *chans);
  struct slot *slots = calloc((size_t)channels * (size_t)outstanding,
                              sizeof *slots);
  size_t n_want = per_call   ? (size_t)outstanding
                  : blocking ? (size_t)channels * (size_t)outstanding
                             : 0;
  pthread_t *threads = n_want ? calloc(n_want, sizeof *threads) : NULL;
  char expect_buf[256];
  double t0, t1 = 0, c0, c1 = 0;
  int64_t d0, d1 = 0, e0, e1 = 0, n_slots = (int64_t)channels * outstanding;
  int rv, n_threads = 0;

  if (chans == NULL || slots == NULL || (n_want && threads == NULL)) {
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
  run.target = target;
  run.channel_opts = opts;
  run.total_calls = calls;
  atomic_init(&run.issued, 0);
  atomic_init(&run.done, 0);
  atomic_init(&run.errors, 0);
  atomic_init(&run.stopping, 0);
  pthread_mutex_init(&run.lock, NULL);
  pthread_cond_init(&run.idle, NULL);
  pthread_mutex_init(&run.tls.lock, NULL);
  if (tls) {
    if ((rv = cgrpc_metadata_array_new(&ask)) != 0 ||
        (rv = cgrpc_metadata_array_add(ask, TLS_INFO_ASK, "1")) != 0) {
      fprintf(stderr, "cgrpc_load_client: %s\n", cgrpc_strerror(rv));
      return 1;
    }
    call_opts.metadata = ask;
    run.call_opts = &call_opts;
  }

  if (!per_call) {
    for (int i = 0; i < channels; i++) {
      if ((rv = cgrpc_channel_new(&chans[i], target, opts)) != 0) {
        fprintf(stderr, "cgrpc_load_client: %s: %s\n", target,
                cgrpc_strerror(rv));
        return 1;
      }
    }
  }
  run.inflight = per_call ? outstanding : n_slots;
  t0 = now_s();
  c0 = cpu_s();
  if (per_call) {
    for (; n_threads < outstanding; n_threads++) {
      if (pthread_create(&threads[n_threads], NULL, percall_thread, &run) !=
          0) {
        fprintf(stderr, "cgrpc_load_client: pthread_create failed\n");
        atomic_store(&run.stopping, 1);
        atomic_store(&run.issued, INT64_MAX / 2);
        atomic_fetch_add(&run.errors, 1);
        pthread_mutex_lock(&run.lock);
        run.inflight -= outstanding - n_threads;
        pthread_mutex_unlock(&run.lock);
        break;
      }
    }
  } else {
    for (int64_t i = 0; i < n_slots; i++) {
      slots[i].run = &run;
      slots[i].channel = chans[i % channels];
      if (!blocking) {
        slot_next(&slots[i]);
      } else if (pthread_create(&threads[n_threads], NULL, blocking_thread,
                                &slots[i]) == 0) {
        n_threads++;
      } else {
        fprintf(stderr, "cgrpc_load_client: pthread_create failed\n");
        atomic_fetch_add(&run.errors, 1);
        slot_retire(&run);
      }
    }
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
  for (int i = 0; i < n_threads; i++) {
    pthread_join(threads[i], NULL);
  }
  if (!per_call) {
    for (int i = 0; i < channels; i++) {
      cgrpc_channel_del(chans[i]);
    }
  }

  {
    int64_t n = d1 - d0, all_errors = (int64_t)atomic_load(&run.errors);
    double secs = t1 - t0, cpu = c1 - c0;
    int bad = all_errors > 0 || (calls > 0 && d1 != calls);
    printf("{\"mode\":\"unary\",\"channels\":%d,\"outstanding\":%d,"
           "\"blocking\":%s,\"channel_per_call\":%s,\"calls\":%" PRId64 ",\"errors\":%" PRId64
           ",\"errors_total\":%" PRId64 ",\"seconds\":%.6f,\"cpu_s\":%.6f,"
           "\"calls_per_s\":%.1f,\"cpu_us_per_call\":%.3f,",
           channels, outstanding, blocking ? "true" : "false",
           per_call ? "true" : "false", n, e1 - e0,
           all_errors, secs, cpu, secs > 0 ? (double)n / secs : 0.0,
           n > 0 ? cpu * 1e6 / (double)n : 0.0);
    tls_info_print(&run.tls, tls);
    printf(",\"ok\":%s}\n", bad ? "false" : "true");
    cgrpc_metadata_array_del(ask);
    free(chans);
    free(slots);
    free(threads);
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

static int run_stream(const char *target, const cgrpc_channel_options *opts,
                      int64_t count, size_t size) {
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
  if ((rv = cgrpc_channel_new(&channel, target, opts)) != 0) {
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

struct tls_flags {
  const char *ca, *host_override, *cert, *key;
  int session_cache;
};

/* Channel options for the TLS flags in |*opts|; NULL for plaintext.
 * Returns 0, or an error message for bad flags (|*rv| then says why). */
static const char *tls_options(cgrpc_channel_options **opts,
                               const struct tls_flags *f, int *rv) {
  cgrpc_channel_credentials *creds = NULL;

  *opts = NULL;
  *rv = 0;
  if (f->ca == NULL) {
    if (f->host_override || f->cert || f->key || f->session_cache) {
      *rv = CGRPC_ERR_INVALID_ARGUMENT;
      return "--server_host_override, --client_cert_file, --client_key_file "
             "and --session_cache need --ca_file (TLS)";
    }
    return NULL;
  }
  if ((f->cert == NULL) != (f->key == NULL)) {
    *rv = CGRPC_ERR_INVALID_ARGUMENT;
    return "--client_cert_file and --client_key_file go together";
  }
  if ((*rv = cgrpc_channel_options_new(opts)) != 0 ||
      (*rv = cgrpc_channel_credentials_new(&creds)) != 0) {
    goto fail;
  }
  if ((*rv = cgrpc_channel_credentials_set_root_certs_file(creds, f->ca)) !=
      0) {
    cgrpc_channel_credentials_del(creds);
    cgrpc_channel_options_del(*opts);
    *opts = NULL;
    return "--ca_file cannot be read or does not parse";
  }
  if (f->cert != NULL && (*rv = cgrpc_channel_credentials_set_cert_files(
                              creds, f->cert, f->key)) != 0) {
    cgrpc_channel_credentials_del(creds);
    cgrpc_channel_options_del(*opts);
    *opts = NULL;
    return "--client_cert_file / --client_key_file cannot be read, do not "
           "parse, or do not match";
  }
  if (f->host_override != NULL &&
      (*rv = cgrpc_channel_options_set_ssl_target_name_override(
           *opts, f->host_override)) != 0) {
    goto fail;
  }
  if (f->session_cache) {
    cgrpc_tls_session_cache *cache = NULL;
    /* Room for every server a run talks to; it holds one per host. */
    if ((*rv = cgrpc_tls_session_cache_new(&cache, 64)) != 0) {
      goto fail;
    }
    cgrpc_channel_options_set_tls_session_cache(*opts, cache);
    cgrpc_tls_session_cache_del(cache); /* the options keep their own */
  }
  cgrpc_channel_options_set_credentials(*opts, creds);
  cgrpc_channel_credentials_del(creds); /* the options keep their own */
  return NULL;
fail:
  cgrpc_channel_credentials_del(creds);
  cgrpc_channel_options_del(*opts);
  *opts = NULL;
  return cgrpc_strerror(*rv);
}

static const char *opt(const char *arg, const char *name) {
  size_t n = strlen(name);
  return strncmp(arg, name, n) == 0 && arg[n] == '=' ? arg + n + 1 : NULL;
}

static int usage(const char *why) {
  if (why != NULL) {
    fprintf(stderr, "cgrpc_load_client: %s\n", why);
  }
  fprintf(stderr,
          "usage: cgrpc_load_client unary --target=HOST:PORT [--channels=C] "
          "[--outstanding=N]\n"
          "           [--calls=K | --duration=S [--warmup=S]] [--name=NAME] "
          "[--expect=TEXT]\n"
          "           [--channel_per_call | --blocking] [TLS flags]\n"
          "       cgrpc_load_client stream --target=HOST:PORT --count=K "
          "--size=BYTES [TLS flags]\n"
          "  TLS flags: --ca_file=F [--server_host_override=NAME]\n"
          "             [--client_cert_file=F --client_key_file=F] "
          "[--session_cache]\n");
  return 2;
}

int main(int argc, char **argv) {
  const char *target = "localhost:50051", *name = "world", *expect = NULL, *v;
  const char *why;
  struct tls_flags tls = {0};
  cgrpc_channel_options *opts = NULL;
  int channels = 1, outstanding = 1, per_call = 0, blocking = 0, rv;
  int64_t calls = 0, count = 1000;
  double duration = 0, warmup = 0.5;
  size_t size = 16;

  if (argc < 2) {
    return usage(NULL);
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
    } else if (strcmp(argv[i], "--channel_per_call") == 0) {
      per_call = 1;
    } else if (strcmp(argv[i], "--blocking") == 0) {
      blocking = 1;
    } else if ((v = opt(argv[i], "--ca_file"))) {
      tls.ca = v;
    } else if ((v = opt(argv[i], "--server_host_override"))) {
      tls.host_override = v;
    } else if ((v = opt(argv[i], "--client_cert_file"))) {
      tls.cert = v;
    } else if ((v = opt(argv[i], "--client_key_file"))) {
      tls.key = v;
    } else if (strcmp(argv[i], "--session_cache") == 0) {
      tls.session_cache = 1;
    } else {
      fprintf(stderr, "cgrpc_load_client: unknown flag %s\n", argv[i]);
      return usage(NULL);
    }
  }
  if (strcmp(argv[1], "unary") == 0) {
    if (channels < 1 || outstanding < 1 || (calls <= 0 && duration <= 0)) {
      return usage("unary needs --channels >= 1, --outstanding >= 1 and "
                   "--calls or --duration");
    }
    if (per_call && blocking) {
      return usage("--channel_per_call and --blocking do not go together");
    }
    if (per_call && channels != 1) {
      return usage("--channel_per_call makes its own channels: leave "
                   "--channels at 1 (--outstanding sets the concurrency)");
    }
  } else if (strcmp(argv[1], "stream") == 0) {
    if (count < 1 || size < 8) {
      return usage("stream needs --count >= 1 and --size >= 8");
    }
    if (per_call || blocking) {
      return usage("--channel_per_call and --blocking are for unary");
    }
  } else {
    return usage(NULL);
  }
  if ((why = tls_options(&opts, &tls, &rv)) != NULL) {
    fprintf(stderr, "cgrpc_load_client: TLS flags: %s (%s)\n", why,
            cgrpc_err_name(rv));
    return 2;
  }
  if (strcmp(argv[1], "unary") == 0) {
    rv = run_unary(target, opts, tls.ca != NULL, channels, outstanding,
                   per_call, blocking, calls, duration, warmup, name, expect);
  } else {
    rv = run_stream(target, opts, count, size);
  }
  cgrpc_channel_options_del(opts);
  return rv;
}
