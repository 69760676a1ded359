/* SPDX-License-Identifier: MIT */
/*
 * Soak test: for --duration seconds, client threads make mixed unary and
 * streaming calls (blocking and callback forms, all three streaming kinds)
 * over a few channels to two in-process servers that serve EchoService and
 * StreamService: one with the default worker pool, one inline
 * (max_workers = 0, the detaching async StreamService servicer).  Calls get
 * random deadlines (some short enough to expire) and random cancels (from
 * the calling thread, from a canceller thread, from inside callbacks), and a
 * restart thread stops a server now and then (random grace) and starts a new
 * one on the same port while calls are in flight.
 *
 * Every outcome is checked (see classify()): OK only with the exact reply,
 * and a non-OK status only where the scenario allows it.  Every --sample
 * seconds the process's RSS and open fds are printed; at the end, with the
 * servers and channels gone, the fds must be back near the start and RSS
 * must not have kept growing.  A watchdog aborts when a thread makes no
 * progress for --watchdog seconds.  The exit status is 0 only with no
 * failure.  Random choices come from --seed (printed), one stream per
 * thread, so a run can be replayed (thread timing still differs).
 *
 * Run it through tests/soak/run; see tests/soak/README.md.
 */
#include <dirent.h>
#include <errno.h>
#include <execinfo.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cgrpc/cgrpc.h>

#include "echo_service.h"
#include "stream_service.h"

#if defined(__SANITIZE_ADDRESS__)
#define SOAK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SOAK_ASAN 1
#endif
#endif
#ifndef SOAK_ASAN
#define SOAK_ASAN 0
#endif

#define SOAK_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Bounds of the generated calls (small: the machine is shared). */
#define MAX_THREADS 64
#define MAX_CHANNELS 16
#define MAX_BURST 4       /* async unary calls one thread has in flight */
#define SMALL_CHUNKS 40   /* messages per ordinary stream */
#define SMALL_CHUNK 2048  /* bytes per message of an ordinary stream */
#define MAX_CHUNKS 200    /* messages per bulk stream */
#define MAX_CHUNK 16384   /* bytes per message of a bulk stream */
#define MAX_PAYLOAD 2048  /* Echo request payload */
#define MAX_FAIL_PRINT 10 /* failures printed per kind of failure */
/* How long a channel may take to work again after its server came back:
 * the channel backs off 1 s (+-20%) after a failed connect, then x1.6, and
 * a restart costs at most two or three failed connects. */
#define RECOVERY_LIMIT_US (20 * 1000000LL)
/* A deadline is measured from inside the call function, after our t0, and
 * the loop's timers have millisecond granularity. */
#define DEADLINE_SLACK_US 2000
/* Open fds allowed above the starting count after teardown. */
#define FD_SLACK 2

/* ---- options ---------------------------------------------------------- */

typedef struct soak_opts {
  int duration_s;
  uint64_t seed;
  int threads;
  int channels;
  int restart_min_ms, restart_max_ms; /* 0/0: no restarts */
  int recycle_min_ms, recycle_max_ms; /* 0/0: no recycling */
  int cancels, deadlines;             /* 0 turns them off */
  int sample_s;
  int watchdog_s;
  int rss_check; /* 1 fail on growth, 0 report only */
  int log;
  int verbose;
} soak_opts;

/* ---- clock, output, random numbers ------------------------------------ */

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_us(int64_t us) {
  struct timespec ts;
  if (us <= 0)
    return;
  ts.tv_sec = (time_t)(us / 1000000);
  ts.tv_nsec = (long)(us % 1000000) * 1000L;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static int64_t t_start_us;
static pthread_mutex_t say_lock = PTHREAD_MUTEX_INITIALIZER;

static void say(const char *fmt, ...) SOAK_PRINTF(1, 2);
static void say(const char *fmt, ...) {
  va_list ap;
  pthread_mutex_lock(&say_lock);
  fprintf(stdout, "[soak %7.1fs] ", (double)(now_us() - t_start_us) / 1e6);
  va_start(ap, fmt);
  vfprintf(stdout, fmt, ap);
  va_end(ap);
  fputc('\n', stdout);
  fflush(stdout);
  pthread_mutex_unlock(&say_lock);
}

/* splitmix64: small, fast, and good enough to pick scenarios. */
typedef struct rng {
  uint64_t s;
} rng;

static uint64_t rng_next(rng *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static int rng_range(rng *r, int lo, int hi) {
  if (hi <= lo)
    return lo;
  return lo + (int)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

/* True with probability |pct| percent. */
static int rng_pct(rng *r, int pct) { return (int)(rng_next(r) % 100) < pct; }

/* ---- progress trackers and the watchdog ------------------------------- */

/* One per thread the watchdog watches: the time of its last progress and
 * what it is doing, printed when it gets stuck (or the process crashes). */
typedef struct tracker {
  char name[24];
  atomic_llong last_us;
  atomic_int active;
  pthread_mutex_t lock;
  char what[256];
} tracker;

#define MAX_TRACKERS (MAX_THREADS + 4)
static tracker *trackers[MAX_TRACKERS];
static atomic_int n_trackers;

static void trk_init(tracker *t, const char *name) {
  int i;
  snprintf(t->name, sizeof t->name, "%s", name);
  atomic_store(&t->last_us, now_us());
  atomic_store(&t->active, 1);
  pthread_mutex_init(&t->lock, NULL);
  t->what[0] = '\0';
  i = atomic_fetch_add(&n_trackers, 1);
  if (i < MAX_TRACKERS)
    trackers[i] = t;
}

static void trk_bump(tracker *t) { atomic_store(&t->last_us, now_us()); }

static void trk_note(tracker *t, const char *fmt, ...) SOAK_PRINTF(2, 3);
static void trk_note(tracker *t, const char *fmt, ...) {
  va_list ap;
  pthread_mutex_lock(&t->lock);
  va_start(ap, fmt);
  vsnprintf(t->what, sizeof t->what, fmt, ap);
  va_end(ap);
  pthread_mutex_unlock(&t->lock);
  trk_bump(t);
}

/* ---- global state ----------------------------------------------------- */

enum { SRV_POOL = 0, SRV_INLINE = 1, N_SERVERS = 2 };

typedef struct soak_server {
  const char *name;
  int inline_loop; /* max_workers = 0 and the async StreamService */
  int port;
  cgrpc_server *server; /* touched by main and the restart thread only */
  echo_stats echo;      /* outlive every server instance */
  stream_stats stream;
  int restarts;
} soak_server;

/* A stretch of time during which a server restart may fail a call on a
 * channel: from the moment the restart thread begins the shutdown until the
 * first OK of a call the channel started after the new server was up. */
typedef struct window {
  int64_t down_us, up_us, recovered_us; /* INT64_MAX: not yet */
} window;

typedef struct soak_channel {
  int index;
  int server;
  char target[64];
  pthread_rwlock_t use; /* read: starting a call; write: replacing |ch| */
  cgrpc_channel *ch;
  int gen;              /* how many times |ch| was replaced */
  pthread_mutex_t lock; /* the windows and |del_at| */
  window *w;
  size_t n_w, cap_w;
  int64_t *del_at; /* when generation i began to be deleted */
  size_t cap_del;
} soak_channel;

enum {
  K_UNARY,
  K_UNARY_ASYNC,
  K_DOWNLOAD,
  K_DOWNLOAD_ASYNC,
  K_UPLOAD,
  K_UPLOAD_ASYNC,
  K_CHAT,
  K_CHAT_ASYNC,
  K__N
};
static const char *const kind_names[K__N] = {
    "unary",  "unary-async",  "download", "download-async",
    "upload", "upload-async", "chat",     "chat-async"};
/* Relative weights of the kinds. */
static const int kind_weights[K__N] = {18, 14, 12, 10, 12, 10, 13, 11};

enum { CANCEL_NONE, CANCEL_SELF, CANCEL_OTHER, CANCEL_CALLBACK };
static const char *const cancel_names[] = {"none", "self", "other-thread",
                                           "callback"};

#define N_CODES 17

static struct {
  soak_opts o;
  soak_server servers[N_SERVERS];
  soak_channel chans[MAX_CHANNELS];
  atomic_int stopping;      /* workers: start no new call */
  atomic_int stop_services; /* canceller, restarter */
  atomic_int stop_monitors; /* sampler, watchdog */
  atomic_llong failures;
  atomic_llong counts[K__N][N_CODES];
  atomic_llong fails[K__N];
  atomic_llong cancels_issued, deadlines_set, deadlines_short;
  atomic_llong calls_in_restart;
  atomic_int unavailable_seen[MAX_THREADS]; /* per worker, see worker_main */
  tracker main_trk, restart_trk, recycle_trk;
  int recycles;
} G;

/* ---- call records and the verdict ------------------------------------- */

typedef struct callrec {
  int kind, tid, chan;
  int gen0; /* the channel's generation when the call started */
  unsigned long long seq;
  int64_t t0_us, t1_us;
  int timeout_ms;         /* 0: no deadline */
  int cancel_mode;        /* CANCEL_* */
  int cancel_after;       /* SELF/CALLBACK: after this many messages;
                             OTHER and async unary: delay in ms */
  atomic_llong cancel_at; /* when a cancel was issued (us), 0: never */
  cgrpc_status_code want; /* OK, or the error the request asks for */
  char want_msg[64];
  cgrpc_status_code got;
  char got_msg[200];
  char bad[240]; /* the first failed check of the data */
  char params[160];
  long long msgs; /* messages received */
} callrec;

static void set_bad(callrec *r, const char *fmt, ...) SOAK_PRINTF(2, 3);
static void set_bad(callrec *r, const char *fmt, ...) {
  va_list ap;
  if (r->bad[0])
    return;
  va_start(ap, fmt);
  vsnprintf(r->bad, sizeof r->bad, fmt, ap);
  va_end(ap);
  if (!r->bad[0])
    snprintf(r->bad, sizeof r->bad, "?");
}

static void take_got(callrec *r, const cgrpc_status *st) {
  r->got = st->code;
  snprintf(r->got_msg, sizeof r->got_msg, "%s", st->message ? st->message : "");
}

/* Records the cancel before issuing it, so the verdict knows. */
static void issue_cancel(callrec *r, cgrpc_call *call) {
  long long expect = 0;
  atomic_compare_exchange_strong(&r->cancel_at, &expect, (long long)now_us());
  atomic_fetch_add(&G.cancels_issued, 1);
  cgrpc_call_cancel(call);
}

static const char *code_name(int code) { return cgrpc_status_code_name(code); }

/* Nonzero when a restart of the channel's server overlaps [t0, t1]. */
static int in_restart_window(int chan, int64_t t0, int64_t t1) {
  soak_channel *c = &G.chans[chan];
  size_t i;
  int hit = 0;
  pthread_mutex_lock(&c->lock);
  for (i = c->n_w; i-- > 0 && !hit;) {
    const window *w = &c->w[i];
    if (w->down_us <= t1 && t0 <= w->recovered_us)
      hit = 1;
    if (w->recovered_us < t0)
      break; /* windows are in time order */
  }
  pthread_mutex_unlock(&c->lock);
  return hit;
}

/* Nonzero when the channel the call started on began to be deleted before
 * the call ended. */
static int deleted_during(const callrec *r) {
  soak_channel *c = &G.chans[r->chan];
  int hit;
  pthread_mutex_lock(&c->lock);
  hit = (size_t)r->gen0 < c->cap_del && c->del_at[r->gen0] != 0 &&
        c->del_at[r->gen0] <= r->t1_us;
  pthread_mutex_unlock(&c->lock);
  return hit;
}

/* An OK call that the channel started after its server came back ends the
 * restart window. */
static void note_ok(int chan, int64_t t0, int64_t t1) {
  soak_channel *c = &G.chans[chan];
  pthread_mutex_lock(&c->lock);
  if (c->n_w > 0) {
    window *w = &c->w[c->n_w - 1];
    if (w->up_us != INT64_MAX && t0 >= w->up_us && w->recovered_us == INT64_MAX)
      w->recovered_us = t1;
  }
  pthread_mutex_unlock(&c->lock);
}

/* Failures are counted by kind (|what|, a static string), and only the
 * first MAX_FAIL_PRINT of each kind are printed, so that a frequent one does
 * not hide the others. */
#define MAX_FAIL_KINDS 32
static struct {
  pthread_mutex_t lock;
  const char *what[MAX_FAIL_KINDS];
  long long n[MAX_FAIL_KINDS];
  int count;
} fail_kinds = {PTHREAD_MUTEX_INITIALIZER, {NULL}, {0}, 0};

/* Counts a failure of kind |what|; returns nonzero when it should be
 * printed. */
static int count_failure(const char *what) {
  int i, print;
  atomic_fetch_add(&G.failures, 1);
  pthread_mutex_lock(&fail_kinds.lock);
  for (i = 0; i < fail_kinds.count; i++)
    if (strcmp(fail_kinds.what[i], what) == 0)
      break;
  if (i == fail_kinds.count && i < MAX_FAIL_KINDS)
    fail_kinds.what[fail_kinds.count++] = what;
  if (i == MAX_FAIL_KINDS)
    i--; /* lump the rest together */
  print = ++fail_kinds.n[i] <= MAX_FAIL_PRINT;
  if (fail_kinds.n[i] == MAX_FAIL_PRINT + 1)
    say("(more failures of the kind \"%s\" are counted, not printed)", what);
  pthread_mutex_unlock(&fail_kinds.lock);
  return print;
}

static void report_failure(const callrec *r, const char *what,
                           const char *detail) {
  long long cancel_at = atomic_load(&r->cancel_at);
  char cancel[64] = "";
  atomic_fetch_add(&G.fails[r->kind], 1);
  if (!count_failure(what))
    return;
  if (r->cancel_mode != CANCEL_NONE)
    snprintf(cancel, sizeof cancel, " cancel=%s/%d%s",
             cancel_names[r->cancel_mode], r->cancel_after,
             cancel_at ? "(issued)" : "(not issued)");
  say("FAIL %s t%d #%llu ch%d(%s) %s deadline=%dms%s elapsed=%.1fms "
      "msgs=%lld: got %s \"%s\", want %s%s%s%s: %s%s%s",
      kind_names[r->kind], r->tid, r->seq, r->chan,
      G.servers[G.chans[r->chan].server].name, r->params, r->timeout_ms, cancel,
      (double)(r->t1_us - r->t0_us) / 1000.0, r->msgs, code_name(r->got),
      r->got_msg, code_name(r->want), r->want_msg[0] ? " \"" : "", r->want_msg,
      r->want_msg[0] ? "\"" : "", what, detail ? ": " : "",
      detail ? detail : "");
}

/*
 * The verdict on one finished call.  OK (or the error the request asked
 * for) must come with exactly the expected data; r->bad holds the first
 * check that failed.  Any other status must be one the scenario explains:
 *
 *  CANCELLED          only when this call was cancelled (by its thread, the
 *                     canceller thread or a callback) before it ended, or
 *                     its channel was deleted (--recycle) before it ended:
 *                     cgrpc_channel_del() cancels the calls in flight.  A
 *                     server shutdown never produces it: after the grace
 *                     the server closes the sockets (UNAVAILABLE), and a
 *                     deadline on either side is DEADLINE_EXCEEDED.
 *  DEADLINE_EXCEEDED  only when the call had a deadline and at least that
 *                     long has passed (DEADLINE_SLACK_US for granularity).
 *  UNAVAILABLE        only when the call overlaps a restart window of its
 *                     channel's server: connect refused or fail-fast in the
 *                     channel's backoff, the connection closed by the
 *                     shutdown, or REFUSED_STREAM after GOAWAY.
 *
 * Nothing else is explained: INTERNAL, UNKNOWN, UNIMPLEMENTED,
 * RESOURCE_EXHAUSTED (every message is far below the limits) and the
 * requested codes on a call that did not ask for them are failures.
 */
static void classify(callrec *r) {
  int64_t elapsed = r->t1_us - r->t0_us;
  long long cancel_at = atomic_load(&r->cancel_at);
  int code = (int)r->got;
  const char *why = NULL;

  if ((unsigned)code >= N_CODES)
    code = CGRPC_STATUS_UNKNOWN;
  atomic_fetch_add(&G.counts[r->kind][code], 1);
  if (r->got == CGRPC_STATUS_OK)
    note_ok(r->chan, r->t0_us, r->t1_us);
  if (r->bad[0]) {
    int race = strncmp(r->bad, "API race: ", 10) == 0;
    report_failure(
        r, race ? "API race: on_done before the first read_async" : "bad data",
        race ? r->bad + 10 : r->bad);
    return;
  }
  if (r->got == r->want) {
    if (r->want != CGRPC_STATUS_OK && strcmp(r->got_msg, r->want_msg) != 0)
      report_failure(r, "wrong status message", NULL);
    return;
  }
  switch (r->got) {
  case CGRPC_STATUS_CANCELLED:
    if (cancel_at != 0 && cancel_at <= r->t1_us)
      return;
    if (deleted_during(r))
      return;
    why = "CANCELLED without a cancel";
    break;
  case CGRPC_STATUS_DEADLINE_EXCEEDED:
    if (r->timeout_ms > 0 &&
        elapsed + DEADLINE_SLACK_US >= (int64_t)r->timeout_ms * 1000)
      return;
    why = r->timeout_ms > 0 ? "DEADLINE_EXCEEDED before the deadline"
                            : "DEADLINE_EXCEEDED without a deadline";
    break;
  case CGRPC_STATUS_UNAVAILABLE:
    atomic_store(&G.unavailable_seen[r->tid], 1);
    if (in_restart_window(r->chan, r->t0_us, r->t1_us)) {
      atomic_fetch_add(&G.calls_in_restart, 1);
      return;
    }
    why = "UNAVAILABLE outside a restart window";
    break;
  default:
    why = r->got == CGRPC_STATUS_OK ? "OK instead of the requested error"
                                    : "status not explained by the scenario";
    break;
  }
  report_failure(r, why, NULL);
}

/* ---- servers and channels --------------------------------------------- */

static cgrpc_log_cb log_cb(void) { return G.o.log ? cgrpc_log_stderr : NULL; }

/* Starts server |s| on its port (a free one the first time).  A port just
 * released may be refused for a moment: retry for up to 5 s. */
static int server_start(soak_server *s) {
  int64_t give_up = now_us() + 5000000;
  for (;;) {
    cgrpc_server_options *o = NULL;
    char addr[64];
    int rv, port = 0;
    if ((rv = cgrpc_server_options_new(&o)) != 0)
      return rv;
    if (s->inline_loop)
      cgrpc_server_options_set_max_workers(o, 0);
    if (log_cb())
      cgrpc_server_options_set_log(o, log_cb(), NULL);
    rv = cgrpc_server_new(&s->server, o);
    cgrpc_server_options_del(o);
    if (rv != 0)
      return rv;
    snprintf(addr, sizeof addr, "127.0.0.1:%d", s->port);
    rv = cgrpc_server_add_insecure_port(s->server, addr, &port);
    if (rv == 0)
      rv = echo_service_register(s->server, &s->echo);
    if (rv == 0)
      rv = s->inline_loop ? stream_service_register_async(s->server, &s->stream)
                          : stream_service_register(s->server, &s->stream);
    if (rv == 0)
      rv = cgrpc_server_start(s->server);
    if (rv == 0) {
      s->port = port;
      return 0;
    }
    cgrpc_server_del(s->server);
    s->server = NULL;
    if (rv != CGRPC_ERR_ADDR_IN_USE || now_us() > give_up)
      return rv;
    sleep_us(50000);
  }
}

static void server_stop(soak_server *s, int64_t grace_ms) {
  if (!s->server)
    return;
  cgrpc_server_shutdown(s->server, grace_ms);
  cgrpc_server_del(s->server);
  s->server = NULL;
}

static void windows_push(soak_channel *c, int64_t down) {
  window *w;
  if (c->n_w == c->cap_w) {
    size_t cap = c->cap_w ? c->cap_w * 2 : 64;
    window *nw = realloc(c->w, cap * sizeof *nw);
    if (!nw) {
      say("out of memory for restart windows");
      abort();
    }
    c->w = nw;
    c->cap_w = cap;
  }
  w = &c->w[c->n_w++];
  w->down_us = down;
  w->up_us = INT64_MAX;
  w->recovered_us = INT64_MAX;
}

/* A failure that is not one call's: |what| is its kind (static). */
static void fail_plain(const char *what, const char *fmt, ...)
    SOAK_PRINTF(2, 3);
static void fail_plain(const char *what, const char *fmt, ...) {
  char buf[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (count_failure(what))
    say("FAIL %s: %s", what, buf);
}

/* A restart of server |srv| begins now: open a window on its channels, and
 * check that the previous one closed in time. */
static void restart_begin(int srv, int64_t now) {
  int i;
  for (i = 0; i < G.o.channels; i++) {
    soak_channel *c = &G.chans[i];
    if (c->server != srv)
      continue;
    pthread_mutex_lock(&c->lock);
    if (c->n_w > 0) {
      window *w = &c->w[c->n_w - 1];
      if (w->recovered_us == INT64_MAX) {
        if (now - w->up_us > RECOVERY_LIMIT_US)
          fail_plain("no recovery",
                     "channel %d did not recover within %lld s of its "
                     "server's restart",
                     i, RECOVERY_LIMIT_US / 1000000);
        w->recovered_us = now; /* the new window takes over */
      }
    }
    windows_push(c, now);
    pthread_mutex_unlock(&c->lock);
  }
}

static void restart_up(int srv, int64_t now) {
  int i;
  for (i = 0; i < G.o.channels; i++) {
    soak_channel *c = &G.chans[i];
    if (c->server != srv)
      continue;
    pthread_mutex_lock(&c->lock);
    c->w[c->n_w - 1].up_us = now;
    pthread_mutex_unlock(&c->lock);
  }
}

/* ---- per-thread state ------------------------------------------------- */

/* A call the canceller thread may cancel: the worker holds its reference
 * until it has cleared the slot, so the call is alive while the canceller
 * uses it. */
typedef struct slot {
  pthread_mutex_t lock;
  cgrpc_call *call;
  callrec *rec;
  int64_t due_us; /* 0: no cancel planned */
} slot;

typedef struct worker {
  int id;
  pthread_t thread;
  rng rng;
  unsigned long long nseq;
  tracker trk;
  slot slots[MAX_BURST];
  pthread_mutex_t wlock; /* async completions */
  pthread_cond_t wcond;
} worker;

static worker workers[MAX_THREADS];

static void slot_arm(slot *s, cgrpc_call *call, callrec *r) {
  pthread_mutex_lock(&s->lock);
  s->call = call;
  s->rec = r;
  s->due_us = r->cancel_mode == CANCEL_OTHER
                  ? r->t0_us + (int64_t)r->cancel_after * 1000
                  : 0;
  pthread_mutex_unlock(&s->lock);
}

static void slot_disarm(slot *s) {
  pthread_mutex_lock(&s->lock);
  s->call = NULL;
  s->rec = NULL;
  s->due_us = 0;
  pthread_mutex_unlock(&s->lock);
}

/* Waits (bounded by the watchdog) until |*flag| is set under w->wlock. */
static void wait_flag(worker *w, const int *flag) {
  pthread_mutex_lock(&w->wlock);
  while (!*flag) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    pthread_cond_timedwait(&w->wcond, &w->wlock, &ts);
  }
  pthread_mutex_unlock(&w->wlock);
}

static void set_flag(worker *w, int *flag) {
  pthread_mutex_lock(&w->wlock);
  *flag = 1;
  pthread_cond_broadcast(&w->wcond);
  pthread_mutex_unlock(&w->wlock);
}

/* The parts every call plans the same way: channel, deadline, cancel. */
static void plan_common(worker *w, callrec *r, int kind, int cancellable,
                        int async) {
  rng *g = &w->rng;
  memset(r, 0, sizeof *r);
  atomic_init(&r->cancel_at, 0);
  r->kind = kind;
  r->tid = w->id;
  r->seq = ++w->nseq;
  r->chan = rng_range(g, 0, G.o.channels - 1);
  r->want = CGRPC_STATUS_OK;
  if (G.o.deadlines) {
    int p = rng_range(g, 0, 99);
    if (p < 15) {
      r->timeout_ms = rng_range(g, 1, 100); /* often expires */
      atomic_fetch_add(&G.deadlines_short, 1);
    } else if (p < 35) {
      r->timeout_ms = 10000; /* should not expire */
    }
    if (r->timeout_ms)
      atomic_fetch_add(&G.deadlines_set, 1);
  }
  if (G.o.cancels && cancellable) {
    int p = rng_range(g, 0, 99);
    if (p < 12)
      r->cancel_mode = CANCEL_SELF;
    else if (p < 25)
      r->cancel_mode = CANCEL_OTHER;
    else if (p < 31)
      r->cancel_mode = async ? CANCEL_CALLBACK : CANCEL_OTHER;
    if (r->cancel_mode == CANCEL_OTHER)
      r->cancel_after = rng_range(g, 0, 80);
  }
}

static int on_pool(const callrec *r) {
  return G.chans[r->chan].server == SRV_POOL;
}

/* The channel of |r|, held (for reading) until chan_leave(): the recycler
 * replaces a channel only between the calls' starts, never during one, so
 * every call starts on a live channel; what happens to a call after that is
 * the library's business.  Records the channel's generation in |r|. */
static cgrpc_channel *chan_enter(callrec *r) {
  soak_channel *c = &G.chans[r->chan];
  pthread_rwlock_rdlock(&c->use);
  r->gen0 = c->gen;
  return c->ch;
}

static void chan_leave(const callrec *r) {
  pthread_rwlock_unlock(&G.chans[r->chan].use);
}

/* An error the servers never produce on their own, for requests that ask
 * for one. */
static cgrpc_status_code pick_error(rng *g) {
  static const cgrpc_status_code codes[] = {
      CGRPC_STATUS_NOT_FOUND, CGRPC_STATUS_ALREADY_EXISTS, CGRPC_STATUS_ABORTED,
      CGRPC_STATUS_OUT_OF_RANGE};
  return codes[rng_range(g, 0, 3)];
}

/* ---- states of async calls: a graveyard ------------------------------
 *
 * Buried states are freed only after GRAVE_DEPTH later ones, with their
 * magic changed: a callback that comes after on_done (or a second
 * completion of a unary call) then reports itself as a library failure
 * instead of reading freed memory in this file.
 */
#define MAGIC_LIVE 0x50a4c0deU
#define MAGIC_DEAD 0xdeadca11U
#define GRAVE_DEPTH 64

typedef struct grave {
  void *slots[GRAVE_DEPTH];
  unsigned next;
} grave;

static grave graves[MAX_THREADS];

/* |p| starts with its magic (an unsigned). */
static void bury(worker *w, void *p) {
  grave *g = &graves[w->id];
  *(volatile unsigned *)p = MAGIC_DEAD;
  free(g->slots[g->next]);
  g->slots[g->next] = p;
  g->next = (g->next + 1) % GRAVE_DEPTH;
}

static void graves_free(void) {
  int i, j;
  for (i = 0; i < MAX_THREADS; i++)
    for (j = 0; j < GRAVE_DEPTH; j++) {
      free(graves[i].slots[j]);
      graves[i].slots[j] = NULL;
    }
}

/* Nonzero (after reporting it) when a callback reaches a buried state. */
static int dead_state(const void *p, const char *what) {
  if (*(const volatile unsigned *)p == MAGIC_LIVE)
    return 0;
  fail_plain("callback after on_done", "%s", what);
  return 1;
}

/* ---- unary calls (EchoService.Echo) ----------------------------------- */

typedef struct echo_plan {
  Cgrpc__Test__EchoRequest req;
  char message[64];
  char status_message[64];
  uint8_t payload[MAX_PAYLOAD];
  char md_value[32];
  cgrpc_metadata_array *md;
  cgrpc_call_options opts;
} echo_plan;

static void plan_echo(worker *w, callrec *r, echo_plan *p) {
  rng *g = &w->rng;
  Cgrpc__Test__EchoRequest init = CGRPC__TEST__ECHO_REQUEST__INIT;
  memset(p, 0, sizeof *p);
  p->req = init;
  snprintf(p->message, sizeof p->message, "soak t%d #%llu", r->tid, r->seq);
  p->req.message = p->message;
  if (rng_pct(g, 8)) {
    r->want = pick_error(g);
    snprintf(r->want_msg, sizeof r->want_msg, "err t%d #%llu", r->tid, r->seq);
    snprintf(p->status_message, sizeof p->status_message, "%s", r->want_msg);
    p->req.status_code = (int32_t)r->want;
    p->req.status_message = p->status_message;
  }
  /* Only the pool server may sleep: an inline handler blocks its loop. */
  if (on_pool(r) && rng_pct(g, 35))
    p->req.sleep_ms = rng_range(g, 1, 200);
  if (rng_pct(g, 25)) {
    p->req.response_size = rng_range(g, 1, 4096);
  } else if (rng_pct(g, 60)) {
    size_t i, n = (size_t)rng_range(g, 0, MAX_PAYLOAD);
    for (i = 0; i < n; i++)
      p->payload[i] = (uint8_t)rng_next(g);
    p->req.payload.data = p->payload;
    p->req.payload.len = n;
  }
  if (rng_pct(g, 10) && cgrpc_metadata_array_new(&p->md) == 0) {
    snprintf(p->md_value, sizeof p->md_value, "t%d-%llu", r->tid, r->seq);
    if (cgrpc_metadata_array_add(p->md, "x-soak", p->md_value) != 0) {
      cgrpc_metadata_array_del(p->md);
      p->md = NULL;
    } else {
      p->req.echo_metadata = 1;
    }
  }
  p->opts.timeout_ms = r->timeout_ms;
  p->opts.metadata = p->md;
  snprintf(r->params, sizeof r->params,
           "sleep=%d payload=%zu response_size=%d md=%d err=%s",
           p->req.sleep_ms, p->req.payload.len, p->req.response_size,
           p->md != NULL, code_name(r->want));
}

static void check_echo(callrec *r, const echo_plan *p,
                       const Cgrpc__Test__EchoReply *reply,
                       const cgrpc_status *st) {
  size_t i;
  if (r->got != CGRPC_STATUS_OK) {
    if (reply)
      set_bad(r, "a reply with status %s", code_name(r->got));
    return;
  }
  if (!reply) {
    set_bad(r, "OK without a reply");
    return;
  }
  if (!reply->message || strcmp(reply->message, p->message) != 0)
    set_bad(r, "message \"%s\"", reply->message ? reply->message : "(null)");
  if (!reply->method ||
      strcmp(reply->method, "/cgrpc.test.EchoService/Echo") != 0)
    set_bad(r, "method \"%s\"", reply->method ? reply->method : "(null)");
  if (p->req.response_size > 0) {
    if (reply->payload.len != (size_t)p->req.response_size)
      set_bad(r, "payload of %zu bytes", reply->payload.len);
    else
      for (i = 0; i < reply->payload.len; i++)
        if (reply->payload.data[i] != echo_payload_byte(i)) {
          set_bad(r, "payload byte %zu", i);
          break;
        }
  } else if (reply->payload.len != p->req.payload.len ||
             (p->req.payload.len &&
              memcmp(reply->payload.data, p->payload, p->req.payload.len))) {
    set_bad(r, "payload differs (%zu bytes back)", reply->payload.len);
  }
  if (p->md) {
    const char *v =
        cgrpc_metadata_array_get(st->initial_metadata, "x-soak", NULL);
    const char *t =
        cgrpc_metadata_array_get(st->trailing_metadata, "x-soak-trailer", NULL);
    if (!v || strcmp(v, p->md_value) != 0)
      set_bad(r, "initial metadata x-soak \"%s\"", v ? v : "(none)");
    else if (!t || strcmp(t, p->md_value) != 0)
      set_bad(r, "trailing metadata x-soak-trailer \"%s\"", t ? t : "(none)");
  }
}

static void op_unary(worker *w) {
  callrec r;
  echo_plan *p = malloc(sizeof *p);
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_status st = {0};
  if (!p)
    abort();
  plan_common(w, &r, K_UNARY, 0, 0);
  plan_echo(w, &r, p);
  trk_note(&w->trk, "unary #%llu ch%d %s", r.seq, r.chan, r.params);
  r.t0_us = now_us();
  /* Held for the whole call: a blocking unary call has no handle, so the
   * channel is never deleted under it. */
  cgrpc__test__echo_service__echo__call(chan_enter(&r), &p->req, &reply,
                                        &p->opts, &st);
  chan_leave(&r);
  r.t1_us = now_us();
  take_got(&r, &st);
  check_echo(&r, p, reply, &st);
  classify(&r);
  if (reply)
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_status_clear(&st);
  cgrpc_metadata_array_del(p->md);
  free(p);
}

typedef struct ucall {
  unsigned magic; /* MAGIC_LIVE until buried (see bury()) */
  callrec rec;
  echo_plan plan;
  worker *w;
  int cancel_in_cb; /* cancel the completing call from its own callback */
  cgrpc_status st;
  Cgrpc__Test__EchoReply *reply;
  int done;
} ucall;

static void unary_done(cgrpc_call *call, const cgrpc_status *status,
                       ProtobufCMessage *reply, void *user_data) {
  ucall *u = user_data;
  (void)status;
  if (dead_state(u, "unary done")) {
    if (reply)
      protobuf_c_message_free_unpacked(reply, NULL);
    return;
  }
  if (u->done) {
    fail_plain("second completion", "unary t%d #%llu", u->rec.tid, u->rec.seq);
    if (reply)
      protobuf_c_message_free_unpacked(reply, NULL);
    return;
  }
  u->rec.t1_us = now_us();
  /* Too late to matter: the outcome is decided, and must stay as it is. */
  if (u->cancel_in_cb)
    cgrpc_call_cancel(call);
  cgrpc_call_take_status(call, &u->st);
  u->reply = (Cgrpc__Test__EchoReply *)reply;
  trk_bump(&u->w->trk);
  set_flag(u->w, &u->done);
}

static void op_unary_async(worker *w) {
  ucall *u[MAX_BURST];
  cgrpc_call *calls[MAX_BURST];
  int i, n = rng_range(&w->rng, 1, MAX_BURST);
  for (i = 0; i < n; i++) {
    int rv;
    u[i] = calloc(1, sizeof *u[i]);
    if (!u[i])
      abort();
    u[i]->magic = MAGIC_LIVE;
    u[i]->w = w;
    plan_common(w, &u[i]->rec, K_UNARY_ASYNC, 1, 1);
    plan_echo(w, &u[i]->rec, &u[i]->plan);
    if (u[i]->rec.cancel_mode == CANCEL_CALLBACK) {
      /* A unary call has no callback before its end: cancel after it. */
      u[i]->rec.cancel_mode = CANCEL_NONE;
      u[i]->cancel_in_cb = 1;
    } else if (u[i]->rec.cancel_mode == CANCEL_SELF) {
      u[i]->rec.cancel_after = rng_range(&w->rng, 0, 60);
    }
    trk_note(&w->trk, "unary-async #%llu (%d of %d) ch%d %s cancel=%s/%d",
             u[i]->rec.seq, i + 1, n, u[i]->rec.chan, u[i]->rec.params,
             cancel_names[u[i]->rec.cancel_mode], u[i]->rec.cancel_after);
    calls[i] = NULL;
    u[i]->rec.t0_us = now_us();
    rv = cgrpc__test__echo_service__echo__start(
        chan_enter(&u[i]->rec), &u[i]->plan.req, &u[i]->plan.opts, unary_done,
        u[i], &calls[i]);
    chan_leave(&u[i]->rec);
    if (rv != 0) {
      u[i]->rec.t1_us = now_us();
      set_bad(&u[i]->rec, "echo__start returned %s", cgrpc_err_name(rv));
      u[i]->done = 1;
      calls[i] = NULL;
      continue;
    }
    slot_arm(&w->slots[i], calls[i], &u[i]->rec);
  }
  /* Cancels from this thread, at their planned times. */
  for (i = 0; i < n; i++) {
    if (!calls[i] || u[i]->rec.cancel_mode != CANCEL_SELF)
      continue;
    sleep_us(u[i]->rec.t0_us + u[i]->rec.cancel_after * 1000LL - now_us());
    issue_cancel(&u[i]->rec, calls[i]);
  }
  for (i = 0; i < n; i++) {
    wait_flag(w, &u[i]->done);
    slot_disarm(&w->slots[i]);
    cgrpc_call_unref(calls[i]);
    if (!u[i]->rec.bad[0]) {
      take_got(&u[i]->rec, &u[i]->st);
      check_echo(&u[i]->rec, &u[i]->plan, u[i]->reply, &u[i]->st);
    }
    classify(&u[i]->rec);
    if (u[i]->reply)
      protobuf_c_message_free_unpacked(&u[i]->reply->base, NULL);
    cgrpc_status_clear(&u[i]->st);
    cgrpc_metadata_array_del(u[i]->plan.md);
    bury(w, u[i]);
  }
}

/* ---- streaming calls (StreamService) ---------------------------------- */

typedef struct stream_plan {
  int n;           /* chunks (upload, chat) or count (download) */
  int size;        /* download chunk size */
  int interval_us; /* download pacing (pool server only) */
  int err_at;      /* upload/chat: chunk that carries the error; -1 */
  cgrpc_status_code err_code;
  int sizes[MAX_CHUNKS]; /* upload/chat chunk sizes */
  int window;            /* blocking chat: writes ahead of reads */
  int bulk;              /* more and larger messages: flow control bites */
  int reader;            /* download: READ_* */
  int stall_after;       /* READ_STALL: messages read before it stops */
  cgrpc_call_options opts;
} stream_plan;

/* How a download is read.  A stalled reader stops reading (the sender's
 * DATA then waits for window) until a deadline or a cancel ends the call:
 * the state in which those used to free what nghttp2 still reads. */
enum { READ_ALL, READ_SLOW, READ_STALL };
static const char *const reader_names[] = {"all", "slow", "stall"};

static void plan_stream(worker *w, callrec *r, stream_plan *p) {
  rng *g = &w->rng;
  int i, dl = r->kind == K_DOWNLOAD || r->kind == K_DOWNLOAD_ASYNC;
  int up = r->kind == K_UPLOAD || r->kind == K_UPLOAD_ASYNC;
  int max_n = SMALL_CHUNKS, max_size = SMALL_CHUNK;
  memset(p, 0, sizeof *p);
  p->err_at = -1;
  if ((dl || up) && rng_pct(g, 20)) {
    p->bulk = 1;
    max_n = MAX_CHUNKS;
    max_size = MAX_CHUNK;
  }
  p->n = rng_range(g, 0, max_n);
  p->size = rng_range(g, 0, max_size);
  for (i = 0; i < p->n; i++)
    p->sizes[i] = rng_pct(g, 30) ? 0 : rng_range(g, 0, max_size);
  if (dl && !p->bulk && on_pool(r) && rng_pct(g, 40))
    p->interval_us = rng_range(g, 0, 3000);
  p->window = rng_pct(g, 70) ? 1 : rng_range(g, 2, 6);
  if (rng_pct(g, 8)) {
    r->want = p->err_code = pick_error(g);
    if (dl) {
      snprintf(r->want_msg, sizeof r->want_msg, "dl-err t%d #%llu", r->tid,
               r->seq);
    } else {
      if (p->n == 0)
        p->n = 1;
      p->err_at = rng_range(g, 0, p->n - 1);
      snprintf(r->want_msg, sizeof r->want_msg,
               up ? "upload ended at chunk %d" : "chat ended at seq %d",
               p->err_at);
    }
  }
  if (r->cancel_mode == CANCEL_SELF || r->cancel_mode == CANCEL_CALLBACK)
    r->cancel_after = rng_range(g, 0, p->n);
  if (dl && p->bulk) {
    int q = rng_range(g, 0, 99);
    if (q < 40 && r->kind == K_DOWNLOAD)
      p->reader = READ_SLOW;
    else if (q < 80)
      p->reader = READ_STALL;
  }
  if (p->reader == READ_STALL) {
    p->stall_after = rng_range(g, 0, p->n);
    if (r->timeout_ms > 1000)
      r->timeout_ms = rng_range(g, 20, 400); /* not a 10 s stall */
    /* Something must end a stalled call: a deadline, unless a cancel that
     * does not depend on reading more is planned. */
    if (r->timeout_ms == 0 && r->cancel_mode != CANCEL_OTHER &&
        !(r->kind == K_DOWNLOAD && r->cancel_mode == CANCEL_SELF &&
          r->cancel_after <= p->stall_after) &&
        !(r->kind == K_DOWNLOAD_ASYNC && r->cancel_mode == CANCEL_SELF)) {
      r->timeout_ms = rng_range(g, 20, 400);
      atomic_fetch_add(&G.deadlines_set, 1);
    }
  }
  p->opts.timeout_ms = r->timeout_ms;
  if (dl)
    snprintf(r->params, sizeof r->params,
             "count=%d size=%d interval=%dus reader=%s/%d err=%s%s", p->n,
             p->size, p->interval_us, reader_names[p->reader], p->stall_after,
             code_name(r->want), p->bulk ? " bulk" : "");
  else
    snprintf(r->params, sizeof r->params, "n=%d window=%d err=%s@%d%s", p->n,
             p->window, code_name(r->want), p->err_at,
             p->bulk ? (on_pool(r) && up ? " bulk SlowUpload" : " bulk") : "");
}

/* Chunk |i| as the plan sends it, with its data in |buf|. */
static void make_chunk(const stream_plan *p, int i, uint8_t *buf, chunk_t *c) {
  chunk_t init = CGRPC__TEST__CHUNK__INIT;
  *c = init;
  stream_fill(buf, (size_t)p->sizes[i], i);
  c->data.data = buf;
  c->data.len = (size_t)p->sizes[i];
  c->seq = i;
  if (i == p->err_at)
    c->status_code = (int32_t)p->err_code;
}

/* Checks received chunk |c| against chunk |seq| of |size| bytes. */
static void check_chunk(callrec *r, const chunk_t *c, long long seq, int size) {
  if (c->seq != seq)
    set_bad(r, "chunk %lld has seq %lld", seq, (long long)c->seq);
  else if (c->data.len != (size_t)size)
    set_bad(r, "chunk %lld has %zu bytes, want %d", seq, c->data.len, size);
  else if (!stream_check(c->data.data, c->data.len, seq))
    set_bad(r, "chunk %lld: data differs", seq);
}

/* The "x-count" trailer must say |n| on an OK stream. */
static void check_count(callrec *r, const cgrpc_status *st, long long n) {
  const char *v =
      cgrpc_metadata_array_get(st->trailing_metadata, "x-count", NULL);
  if (!v || strtoll(v, NULL, 10) != n)
    set_bad(r, "x-count \"%s\", want %lld", v ? v : "(none)", n);
}

static void download_request(const callrec *r, const stream_plan *p,
                             download_t *req) {
  download_t init = CGRPC__TEST__DOWNLOAD_REQUEST__INIT;
  *req = init;
  req->count = p->n;
  req->size = p->size;
  req->interval_us = p->interval_us;
  if (r->want != CGRPC_STATUS_OK) {
    req->status_code = (int32_t)r->want;
    req->status_message = (char *)(uintptr_t)r->want_msg;
  }
}

/* Whatever the outcome, a stream must have delivered whole, correct
 * messages; these are the checks that depend on it. */
static void check_download_end(callrec *r, const stream_plan *p,
                               const cgrpc_status *st, int read_all) {
  if (read_all && (r->got == CGRPC_STATUS_OK || r->got == r->want)) {
    if (r->msgs != p->n)
      set_bad(r, "%lld chunks, want %d", r->msgs, p->n);
    else if (r->got == CGRPC_STATUS_OK)
      check_count(r, st, p->n);
  }
}

static void op_download(worker *w) {
  callrec r;
  stream_plan p;
  download_t req;
  cgrpc_call *call = NULL;
  cgrpc_status st = {0};
  chunk_t *c;
  int rv;
  plan_common(w, &r, K_DOWNLOAD, 1, 0);
  plan_stream(w, &r, &p);
  download_request(&r, &p, &req);
  trk_note(&w->trk, "download #%llu ch%d %s cancel=%s/%d", r.seq, r.chan,
           r.params, cancel_names[r.cancel_mode], r.cancel_after);
  r.t0_us = now_us();
  rv = cgrpc__test__stream_service__download__open(chan_enter(&r), &req,
                                                   &p.opts, &call);
  chan_leave(&r);
  if (rv != 0) {
    r.t1_us = now_us();
    set_bad(&r, "download__open returned %s", cgrpc_err_name(rv));
    classify(&r);
    return;
  }
  slot_arm(&w->slots[0], call, &r);
  if (r.cancel_mode == CANCEL_SELF && r.cancel_after == 0)
    issue_cancel(&r, call);
  rv = 1;
  while (p.reader != READ_STALL || r.msgs < p.stall_after) {
    rv = cgrpc__test__stream_service__download__read(call, &c);
    if (rv != 1)
      break;
    check_chunk(&r, c, r.msgs, p.size);
    protobuf_c_message_free_unpacked(&c->base, NULL);
    r.msgs++;
    trk_bump(&w->trk);
    if (r.cancel_mode == CANCEL_SELF && r.msgs == r.cancel_after)
      issue_cancel(&r, call);
    if (p.reader == READ_SLOW && r.msgs % 8 == 0)
      sleep_us(rng_range(&w->rng, 500, 3000));
  }
  if (rv < 0)
    set_bad(&r, "read returned %s", cgrpc_err_name(rv));
  if (rv == 1) {
    /* Stalled: read nothing more until the deadline or the cancel has
     * ended the call (finish would drop what is queued, and give the
     * window back, before the end). */
    int64_t until = INT64_MAX;
    if (r.timeout_ms)
      until = r.t0_us + r.timeout_ms * 1000LL;
    if (r.cancel_mode == CANCEL_OTHER &&
        r.t0_us + r.cancel_after * 1000LL < until)
      until = r.t0_us + r.cancel_after * 1000LL;
    if (r.cancel_mode == CANCEL_SELF && !atomic_load(&r.cancel_at) &&
        !r.timeout_ms) {
      sleep_us(1000LL * rng_range(&w->rng, 0, 50));
      issue_cancel(&r, call);
    }
    if (atomic_load(&r.cancel_at) && now_us() < until)
      until = now_us();
    if (until == INT64_MAX) {
      set_bad(&r, "soak bug: a stalled reader with nothing to end it");
      until = now_us();
    }
    trk_note(&w->trk, "download #%llu stalled after %lld chunks", r.seq,
             r.msgs);
    sleep_us(until + 50000 - now_us());
  }
  cgrpc_call_finish(call, &st);
  r.t1_us = now_us();
  slot_disarm(&w->slots[0]);
  take_got(&r, &st);
  check_download_end(&r, &p, &st, rv != 1);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  classify(&r);
}

static void check_summary(callrec *r, const stream_plan *p,
                          const summary_t *s) {
  long long bytes = 0;
  uint64_t sum = 0;
  int i;
  for (i = 0; i < p->n; i++) {
    uint8_t buf[MAX_CHUNK];
    int j;
    stream_fill(buf, (size_t)p->sizes[i], i);
    for (j = 0; j < p->sizes[i]; j++)
      sum += buf[j];
    bytes += p->sizes[i];
  }
  if (!s) {
    set_bad(r, "OK without a summary");
    return;
  }
  if (s->count != p->n || s->bytes != bytes || s->sum != sum ||
      s->last_seq != (p->n ? p->n - 1 : 0) || s->out_of_order != 0)
    set_bad(r,
            "summary count=%lld bytes=%lld sum=%" PRIu64 " last_seq=%lld "
            "out_of_order=%lld, want %d/%lld/%" PRIu64 "/%d/0",
            (long long)s->count, (long long)s->bytes, s->sum,
            (long long)s->last_seq, (long long)s->out_of_order, p->n, bytes,
            sum, p->n ? p->n - 1 : 0);
}

static void op_upload(worker *w) {
  callrec r;
  stream_plan p;
  cgrpc_call *call = NULL;
  cgrpc_status st = {0};
  summary_t *reply = NULL;
  uint8_t buf[MAX_CHUNK];
  int i, rv;
  plan_common(w, &r, K_UPLOAD, 1, 0);
  plan_stream(w, &r, &p);
  trk_note(&w->trk, "upload #%llu ch%d %s cancel=%s/%d", r.seq, r.chan,
           r.params, cancel_names[r.cancel_mode], r.cancel_after);
  r.t0_us = now_us();
  /* Bulk uploads to the pool go to SlowUpload: the sender then waits for
   * window. */
  rv = p.bulk && on_pool(&r)
           ? cgrpc__test__stream_service__slow_upload__open(chan_enter(&r),
                                                            &p.opts, &call)
           : cgrpc__test__stream_service__upload__open(chan_enter(&r), &p.opts,
                                                       &call);
  chan_leave(&r);
  if (rv != 0) {
    r.t1_us = now_us();
    set_bad(&r, "upload__open returned %s", cgrpc_err_name(rv));
    classify(&r);
    return;
  }
  slot_arm(&w->slots[0], call, &r);
  for (i = 0; i < p.n; i++) {
    chunk_t c;
    if (r.cancel_mode == CANCEL_SELF && i == r.cancel_after)
      issue_cancel(&r, call);
    make_chunk(&p, i, buf, &c);
    rv = cgrpc_call_write(call, &c.base);
    trk_bump(&w->trk);
    if (rv == CGRPC_ERR_CLOSED)
      break; /* the call has ended; finish says why */
    if (rv != 0) {
      set_bad(&r, "write %d returned %s", i, cgrpc_err_name(rv));
      break;
    }
  }
  if (r.cancel_mode == CANCEL_SELF && r.cancel_after == p.n)
    issue_cancel(&r, call);
  /* Sometimes half-close by hand first (finish does it otherwise); after
   * a cancel this is the writes_done-on-a-dead-call case. */
  if (rng_pct(&w->rng, 30)) {
    rv = cgrpc_call_writes_done(call);
    if (rv != 0 && rv != CGRPC_ERR_INVALID_STATE)
      set_bad(&r, "writes_done returned %s", cgrpc_err_name(rv));
  }
  {
    ProtobufCMessage *out = NULL;
    cgrpc_call_finish_with_reply(call, &out, &st);
    reply = (summary_t *)out;
  }
  r.t1_us = now_us();
  slot_disarm(&w->slots[0]);
  take_got(&r, &st);
  if (r.got == CGRPC_STATUS_OK)
    check_summary(&r, &p, reply);
  else if (reply)
    set_bad(&r, "a summary with status %s", code_name(r.got));
  if (reply)
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  classify(&r);
}

/* Echoes expected from a chat: every chunk, or those before the error. */
static int chat_echoes(const stream_plan *p) {
  return p->err_at >= 0 ? p->err_at : p->n;
}

static void check_chat_end(callrec *r, const stream_plan *p,
                           const cgrpc_status *st, int read_all) {
  if (read_all && (r->got == CGRPC_STATUS_OK || r->got == r->want)) {
    if (r->msgs != chat_echoes(p))
      set_bad(r, "%lld echoes, want %d", r->msgs, chat_echoes(p));
    else if (r->got == CGRPC_STATUS_OK)
      check_count(r, st, p->n);
  }
}

static void op_chat(worker *w) {
  callrec r;
  stream_plan p;
  cgrpc_call *call = NULL;
  cgrpc_status st = {0};
  uint8_t buf[MAX_CHUNK];
  chunk_t *echo;
  int sent = 0, ended = 0, rv, want = 0;
  plan_common(w, &r, K_CHAT, 1, 0);
  plan_stream(w, &r, &p);
  want = chat_echoes(&p);
  trk_note(&w->trk, "chat #%llu ch%d %s cancel=%s/%d", r.seq, r.chan, r.params,
           cancel_names[r.cancel_mode], r.cancel_after);
  r.t0_us = now_us();
  rv = cgrpc__test__stream_service__chat__open(chan_enter(&r), &p.opts, &call);
  chan_leave(&r);
  if (rv != 0) {
    r.t1_us = now_us();
    set_bad(&r, "chat__open returned %s", cgrpc_err_name(rv));
    classify(&r);
    return;
  }
  slot_arm(&w->slots[0], call, &r);
  if (r.cancel_mode == CANCEL_SELF && r.cancel_after == 0)
    issue_cancel(&r, call);
  for (;;) {
    /* Up to |window| chunks ahead of the echoes; none after the error. */
    while (!ended && sent < p.n && sent - r.msgs < p.window &&
           (p.err_at < 0 || sent <= p.err_at)) {
      chunk_t c;
      make_chunk(&p, sent, buf, &c);
      rv = cgrpc__test__stream_service__chat__write(call, &c);
      if (rv == CGRPC_ERR_CLOSED) {
        ended = 1;
      } else if (rv != 0) {
        set_bad(&r, "write %d returned %s", sent, cgrpc_err_name(rv));
        ended = 1;
      }
      sent++;
    }
    if (ended || r.msgs == want)
      break;
    rv = cgrpc__test__stream_service__chat__read(call, &echo);
    if (rv != 1) {
      if (rv != 0)
        set_bad(&r, "read returned %s", cgrpc_err_name(rv));
      ended = 1;
      break;
    }
    check_chunk(&r, echo, r.msgs, p.sizes[r.msgs]);
    protobuf_c_message_free_unpacked(&echo->base, NULL);
    r.msgs++;
    trk_bump(&w->trk);
    if (r.cancel_mode == CANCEL_SELF && r.msgs == r.cancel_after)
      issue_cancel(&r, call);
  }
  if (!ended) {
    /* Every echo is in: half-close; nothing more may arrive. */
    rv = cgrpc_call_writes_done(call);
    if (rv != 0 && rv != CGRPC_ERR_INVALID_STATE)
      set_bad(&r, "writes_done returned %s", cgrpc_err_name(rv));
    rv = cgrpc__test__stream_service__chat__read(call, &echo);
    if (rv == 1) {
      set_bad(&r, "an echo after the last (seq %lld)", (long long)echo->seq);
      protobuf_c_message_free_unpacked(&echo->base, NULL);
    } else if (rv != 0) {
      set_bad(&r, "read returned %s", cgrpc_err_name(rv));
    }
  } else if (rng_pct(&w->rng, 30)) {
    rv = cgrpc_call_writes_done(call); /* on an ended call */
    if (rv != 0 && rv != CGRPC_ERR_INVALID_STATE)
      set_bad(&r, "writes_done returned %s", cgrpc_err_name(rv));
  }
  cgrpc_call_finish(call, &st);
  r.t1_us = now_us();
  slot_disarm(&w->slots[0]);
  take_got(&r, &st);
  check_chat_end(&r, &p, &st, 1);
  cgrpc_status_clear(&st);
  cgrpc_call_unref(call);
  classify(&r);
}

/* ---- streaming calls, callback form ------------------------------------
 *
 * The callbacks of one call run on its channel's thread; the worker thread
 * starts the call and then only waits for on_done.  |lock| (recursive, in
 * case a library call made from a callback ever calls back) serialises the
 * callbacks with the worker's first operations.  on_done comes last: once
 * it has set |done| the worker checks the outcome and buries the state.
 */
typedef struct astream {
  unsigned magic;
  pthread_mutex_t lock;
  callrec rec;
  stream_plan plan;
  worker *w;
  int next_write;         /* next chunk to write */
  int write_wanted;       /* a write waits for the pending one to report */
  int stop_writing;       /* the error chunk went, or a write failed */
  int finishing;          /* writes_done sent (upload: and the reply read) */
  int stop_reading;       /* after a cancel from a callback, sometimes */
  int stopped;            /* ... and it did stop */
  int stalled;            /* READ_STALL: it stopped asking for messages */
  int first_read_refused; /* the worker's first read_async: INVALID_STATE */
  long long reads_issued, reads_delivered, eos;
  long long writes_ok, writes_failed;
  summary_t *reply;
  cgrpc_status st;
  int done;
  uint8_t buf[MAX_CHUNK];
} astream;

static astream *astream_new(worker *w, int kind) {
  astream *a = calloc(1, sizeof *a);
  pthread_mutexattr_t attr;
  if (!a)
    abort();
  a->magic = MAGIC_LIVE;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
  pthread_mutex_init(&a->lock, &attr);
  pthread_mutexattr_destroy(&attr);
  a->w = w;
  plan_common(w, &a->rec, kind, 1, 1);
  plan_stream(w, &a->rec, &a->plan);
  if (a->rec.cancel_mode == CANCEL_SELF)
    a->rec.cancel_after = rng_range(&w->rng, 0, 60); /* ms after the start */
  a->stop_reading = rng_pct(&w->rng, 30);
  return a;
}

static void astream_bury(astream *a) {
  cgrpc_status_clear(&a->st);
  if (a->reply)
    protobuf_c_message_free_unpacked(&a->reply->base, NULL);
  a->reply = NULL;
  pthread_mutex_destroy(&a->lock);
  bury(a->w, a);
}

static void a_on_done(cgrpc_call *call, const cgrpc_status *status,
                      void *user_data) {
  astream *a = user_data;
  (void)status;
  if (dead_state(a, "on_done"))
    return;
  pthread_mutex_lock(&a->lock);
  a->rec.t1_us = now_us();
  cgrpc_call_take_status(call, &a->st);
  pthread_mutex_unlock(&a->lock);
  trk_bump(&a->w->trk);
  set_flag(a->w, &a->done);
}

/* Asks for the next message.  Each accepted read gets exactly one on_read
 * (a message, or NULL at the end), which is checked once the call is done.
 * From the worker's first operations INVALID_STATE means that the call has
 * already ended and its on_done is on the way (waiting for our lock); in a
 * callback it cannot happen, since on_done comes last. */
static void a_read(astream *a, cgrpc_call *call, int from_cb) {
  int rv = cgrpc_call_read_async(call);
  if (rv == 0)
    a->reads_issued++;
  else if (rv == CGRPC_ERR_INVALID_STATE && !from_cb)
    a->first_read_refused = 1;
  else
    set_bad(&a->rec, "read_async returned %s%s", cgrpc_err_name(rv),
            from_cb ? " in a callback" : "");
}

/* Counts one on_read; returns nonzero for the end of the stream. */
static int a_delivered(astream *a, ProtobufCMessage *msg) {
  a->reads_delivered++;
  trk_bump(&a->w->trk);
  if (msg)
    return 0;
  a->eos++;
  return 1;
}

/* A cancel from inside a callback once |progress| (messages read, or
 * writes done) reaches the plan.  Returns nonzero when it cancelled. */
static int a_maybe_cancel(astream *a, cgrpc_call *call, long long progress) {
  if (a->rec.cancel_mode != CANCEL_CALLBACK ||
      progress != a->rec.cancel_after || atomic_load(&a->rec.cancel_at))
    return 0;
  issue_cancel(&a->rec, call);
  if (a->stop_reading)
    a->stopped = 1;
  return 1;
}

/* Writes chunk a->next_write; a call's writes go one at a time. */
static void a_write_next(astream *a, cgrpc_call *call) {
  chunk_t c;
  int i = a->next_write, rv;
  make_chunk(&a->plan, i, a->buf, &c);
  a->next_write++; /* before: on_write_done may run at once */
  rv = cgrpc_call_write_async(call, &c.base);
  if (rv == 0) {
    if (i == a->plan.err_at)
      a->stop_writing = 1; /* the server ends the call on this one */
  } else if (rv == CGRPC_ERR_INVALID_STATE) {
    /* The previous write has not reported yet: its on_write_done sends
     * this one. */
    a->next_write--;
    a->write_wanted = 1;
  } else {
    a->stop_writing = 1;
    if (rv != CGRPC_ERR_CLOSED) /* CLOSED: ended; on_done says why */
      set_bad(&a->rec, "write_async %d returned %s", i, cgrpc_err_name(rv));
  }
}

/* Download: read to the end. */
static void dl_on_read(cgrpc_call *call, ProtobufCMessage *msg,
                       void *user_data) {
  astream *a = user_data;
  if (dead_state(a, "download on_read"))
    return;
  pthread_mutex_lock(&a->lock);
  if (!a_delivered(a, msg)) {
    check_chunk(&a->rec, (chunk_t *)msg, a->rec.msgs, a->plan.size);
    protobuf_c_message_free_unpacked(msg, NULL);
    a->rec.msgs++;
    if (a_maybe_cancel(a, call, a->rec.msgs) && a->stop_reading)
      ; /* stopped reading */
    else if (a->plan.reader == READ_STALL && a->rec.msgs >= a->plan.stall_after)
      a->stalled = 1; /* until the deadline or a cancel ends the call */
    else
      a_read(a, call, 1);
  }
  pthread_mutex_unlock(&a->lock);
}

/* Chat in lockstep: each echo lets the next chunk go. */
static void chat_on_read(cgrpc_call *call, ProtobufCMessage *msg,
                         void *user_data) {
  astream *a = user_data;
  if (dead_state(a, "chat on_read"))
    return;
  pthread_mutex_lock(&a->lock);
  if (a_delivered(a, msg)) {
    pthread_mutex_unlock(&a->lock);
    return;
  }
  if (a->rec.msgs < a->plan.n)
    check_chunk(&a->rec, (chunk_t *)msg, a->rec.msgs,
                a->plan.sizes[a->rec.msgs]);
  else
    set_bad(&a->rec, "an echo after the last (seq %lld)",
            (long long)((chunk_t *)msg)->seq);
  protobuf_c_message_free_unpacked(msg, NULL);
  a->rec.msgs++;
  if (a_maybe_cancel(a, call, a->rec.msgs) && a->stop_reading) {
    pthread_mutex_unlock(&a->lock);
    return;
  }
  if (!a->stop_writing && a->next_write < a->plan.n) {
    a_write_next(a, call);
  } else if (!a->stop_writing && !a->finishing && a->rec.msgs == a->plan.n) {
    int rv = cgrpc_call_writes_done(call);
    a->finishing = 1;
    if (rv != 0)
      set_bad(&a->rec, "writes_done returned %s", cgrpc_err_name(rv));
  }
  a_read(a, call, 1);
  pthread_mutex_unlock(&a->lock);
}

static void chat_on_write_done(cgrpc_call *call, int ok, void *user_data) {
  astream *a = user_data;
  if (dead_state(a, "chat on_write_done"))
    return;
  pthread_mutex_lock(&a->lock);
  trk_bump(&a->w->trk);
  if (ok)
    a->writes_ok++;
  else
    a->writes_failed++;
  if (a->write_wanted) {
    a->write_wanted = 0;
    if (ok)
      a_write_next(a, call);
  }
  pthread_mutex_unlock(&a->lock);
}

/* Upload: the read of the one reply, then the end of the writes (in this
 * order: once half-closed, the call may end before a read could be
 * issued). */
static void up_finish(astream *a, cgrpc_call *call, int from_cb) {
  int rv;
  if (a->finishing)
    return;
  a->finishing = 1;
  a_read(a, call, from_cb);
  rv = cgrpc_call_writes_done(call);
  if (rv != 0 && rv != CGRPC_ERR_INVALID_STATE)
    set_bad(&a->rec, "writes_done returned %s", cgrpc_err_name(rv));
}

static void up_on_write_done(cgrpc_call *call, int ok, void *user_data) {
  astream *a = user_data;
  if (dead_state(a, "upload on_write_done"))
    return;
  pthread_mutex_lock(&a->lock);
  trk_bump(&a->w->trk);
  if (!ok) {
    /* The call ended (cancel, deadline, restart, or the server's error):
     * the read of the reply still sees the end. */
    a->writes_failed++;
    a->write_wanted = 0;
    up_finish(a, call, 1);
    pthread_mutex_unlock(&a->lock);
    return;
  }
  a->writes_ok++;
  if (a_maybe_cancel(a, call, a->writes_ok) && a->stop_reading) {
    pthread_mutex_unlock(&a->lock);
    return;
  }
  if (a->write_wanted) {
    a->write_wanted = 0;
    a_write_next(a, call);
  } else if (!a->stop_writing && a->next_write < a->plan.n) {
    a_write_next(a, call);
  } else {
    up_finish(a, call, 1);
  }
  pthread_mutex_unlock(&a->lock);
}

static void up_on_read(cgrpc_call *call, ProtobufCMessage *msg,
                       void *user_data) {
  astream *a = user_data;
  if (dead_state(a, "upload on_read"))
    return;
  pthread_mutex_lock(&a->lock);
  if (!a_delivered(a, msg)) {
    a->rec.msgs++;
    if (a->reply) {
      set_bad(&a->rec, "a second summary");
      protobuf_c_message_free_unpacked(msg, NULL);
    } else {
      a->reply = (summary_t *)msg;
    }
    a_read(a, call, 1);
  }
  pthread_mutex_unlock(&a->lock);
}

static void op_stream_async(worker *w, int kind) {
  static const cgrpc_call_callbacks dl_cbs = {dl_on_read, NULL, a_on_done};
  static const cgrpc_call_callbacks chat_cbs = {chat_on_read,
                                                chat_on_write_done, a_on_done};
  static const cgrpc_call_callbacks up_cbs = {up_on_read, up_on_write_done,
                                              a_on_done};
  astream *a = astream_new(w, kind);
  callrec *r = &a->rec;
  cgrpc_call *call = NULL;
  download_t req;
  int rv;
  trk_note(&w->trk, "%s #%llu ch%d %s cancel=%s/%d", kind_names[kind], r->seq,
           r->chan, r->params, cancel_names[r->cancel_mode], r->cancel_after);
  pthread_mutex_lock(&a->lock);
  r->t0_us = now_us();
  switch (kind) {
  case K_DOWNLOAD_ASYNC:
    download_request(r, &a->plan, &req);
    /* Not started yet: the first read is asked for before any message can
     * come (with open_async, a short stream could end before it). */
    rv = cgrpc__test__stream_service__download__new_async(
        chan_enter(r), &req, &a->plan.opts, &dl_cbs, a, &call);
    if (rv == 0) {
      if (a->plan.reader == READ_STALL && a->plan.stall_after == 0)
        a->stalled = 1;
      else
        a_read(a, call, 0);
      rv = cgrpc_call_start(call);
      if (rv != 0) {
        cgrpc_call_unref(call); /* never started: no callback comes */
        call = NULL;
      }
    }
    chan_leave(r);
    break;
  case K_CHAT_ASYNC:
    rv = cgrpc__test__stream_service__chat__open_async(
        chan_enter(r), &a->plan.opts, &chat_cbs, a, &call);
    chan_leave(r);
    if (rv != 0)
      break;
    /* The read first: the call cannot end before the half-close or the
     * error chunk. */
    a_read(a, call, 0);
    if (a->plan.n == 0) {
      int wd = cgrpc_call_writes_done(call);
      a->finishing = 1;
      if (wd != 0)
        set_bad(r, "writes_done returned %s", cgrpc_err_name(wd));
    } else {
      a_write_next(a, call);
    }
    break;
  default:
    rv = a->plan.bulk && on_pool(r)
             ? cgrpc__test__stream_service__slow_upload__open_async(
                   chan_enter(r), &a->plan.opts, &up_cbs, a, &call)
             : cgrpc__test__stream_service__upload__open_async(
                   chan_enter(r), &a->plan.opts, &up_cbs, a, &call);
    chan_leave(r);
    if (rv != 0)
      break;
    if (a->plan.n == 0)
      up_finish(a, call, 0);
    else
      a_write_next(a, call);
    break;
  }
  pthread_mutex_unlock(&a->lock);
  if (rv != 0) {
    r->t1_us = now_us();
    set_bad(r, "open_async returned %s", cgrpc_err_name(rv));
    classify(r);
    astream_bury(a);
    return;
  }
  slot_arm(&w->slots[0], call, r);
  if (r->cancel_mode == CANCEL_SELF) {
    sleep_us(r->t0_us + r->cancel_after * 1000LL - now_us());
    issue_cancel(r, call);
  }
  wait_flag(w, &a->done);
  slot_disarm(&w->slots[0]);
  cgrpc_call_unref(call);
  /* on_done has run: the state is ours alone again. */
  take_got(r, &a->st);
  if (a->reads_delivered != a->reads_issued)
    set_bad(r, "%lld reads accepted, %lld on_read calls before on_done",
            a->reads_issued, a->reads_delivered);
  /* The first read went before the start: it cannot be refused. */
  if (kind == K_DOWNLOAD_ASYNC && a->first_read_refused)
    set_bad(r, "the first read_async, asked for before the start, was "
               "refused");
  switch (kind) {
  case K_DOWNLOAD_ASYNC:
    check_download_end(r, &a->plan, &a->st, !a->stopped && !a->stalled);
    break;
  case K_CHAT_ASYNC:
    check_chat_end(r, &a->plan, &a->st, !a->stopped);
    break;
  default:
    if (r->got == CGRPC_STATUS_OK)
      check_summary(r, &a->plan, a->reply);
    else if (a->reply)
      set_bad(r, "a summary with status %s", code_name(r->got));
    break;
  }
  classify(r);
  astream_bury(a);
}

/* ---- threads: workers, canceller, restarter --------------------------- */

static void *worker_main(void *arg) {
  worker *w = arg;
  int total = 0, k;
  for (k = 0; k < K__N; k++)
    total += kind_weights[k];
  while (!atomic_load(&G.stopping)) {
    int pick = rng_range(&w->rng, 0, total - 1);
    for (k = 0; pick >= kind_weights[k]; k++)
      pick -= kind_weights[k];
    switch (k) {
    case K_UNARY:
      op_unary(w);
      break;
    case K_UNARY_ASYNC:
      op_unary_async(w);
      break;
    case K_DOWNLOAD:
      op_download(w);
      break;
    case K_UPLOAD:
      op_upload(w);
      break;
    case K_CHAT:
      op_chat(w);
      break;
    default:
      op_stream_async(w, k);
      break;
    }
    trk_note(&w->trk, "between calls");
    /* While a channel backs off, its calls fail at once: pause rather than
     * spin through thousands of them. */
    if (atomic_exchange(&G.unavailable_seen[w->id], 0))
      sleep_us(1000LL * rng_range(&w->rng, 10, 50));
  }
  atomic_store(&w->trk.active, 0);
  return NULL;
}

/* Cancels the calls whose planned time has come (CANCEL_OTHER). */
static void *canceller_main(void *arg) {
  (void)arg;
  while (!atomic_load(&G.stop_services)) {
    int64_t now = now_us();
    int i, j;
    for (i = 0; i < G.o.threads; i++)
      for (j = 0; j < MAX_BURST; j++) {
        slot *s = &workers[i].slots[j];
        pthread_mutex_lock(&s->lock);
        if (s->call && s->due_us && now >= s->due_us) {
          s->due_us = 0;
          issue_cancel(s->rec, s->call);
        }
        pthread_mutex_unlock(&s->lock);
      }
    sleep_us(2000);
  }
  return NULL;
}

/* Sleeps |us| unless told to stop; returns nonzero when told.  A planned
 * sleep is progress for the watchdog (|t| may be NULL). */
static int nap(int64_t us, atomic_int *stop, tracker *t) {
  int64_t end = now_us() + us;
  while (!atomic_load(stop)) {
    int64_t left = end - now_us();
    if (left <= 0)
      return 0;
    sleep_us(left < 100000 ? left : 100000);
    if (t)
      trk_bump(t);
  }
  return 1;
}

static void *restarter_main(void *arg) {
  rng g = {G.o.seed ^ 0x7265737461727421ULL};
  (void)arg;
  for (;;) {
    int srv, grace, down, rv;
    int64_t t;
    trk_note(&G.restart_trk, "waiting for the next restart");
    if (nap(1000LL * rng_range(&g, G.o.restart_min_ms, G.o.restart_max_ms),
            &G.stop_services, &G.restart_trk))
      break;
    srv = rng_range(&g, 0, N_SERVERS - 1);
    /* Grace: none (cut everything), short (some calls cut), or long
     * enough for most calls to finish. */
    switch (rng_range(&g, 0, 4)) {
    case 0:
      grace = 0;
      break;
    case 1:
    case 2:
      grace = rng_range(&g, 1, 200);
      break;
    default:
      grace = rng_range(&g, 200, 1500);
      break;
    }
    down = rng_range(&g, 0, 300);
    t = now_us();
    if (G.o.verbose)
      say("restart: stopping the %s server (grace %d ms)", G.servers[srv].name,
          grace);
    restart_begin(srv, t);
    trk_note(&G.restart_trk, "stopping the %s server (grace %d ms)",
             G.servers[srv].name, grace);
    server_stop(&G.servers[srv], grace);
    trk_note(&G.restart_trk, "%s server down for %d ms", G.servers[srv].name,
             down);
    sleep_us(down * 1000LL);
    trk_note(&G.restart_trk, "starting the %s server on port %d",
             G.servers[srv].name, G.servers[srv].port);
    rv = server_start(&G.servers[srv]);
    if (rv != 0) {
      fail_plain("server restart",
                 "could not restart the %s server on port %d: %s",
                 G.servers[srv].name, G.servers[srv].port, cgrpc_err_name(rv));
      atomic_store(&G.stopping, 1);
      break;
    }
    restart_up(srv, now_us());
    G.servers[srv].restarts++;
    if (G.o.verbose)
      say("restarted the %s server (grace %d ms, down %d ms) in %.0f ms",
          G.servers[srv].name, grace, down, (double)(now_us() - t) / 1000);
  }
  atomic_store(&G.restart_trk.active, 0);
  return NULL;
}

/* A new channel to |c|'s target, or NULL. */
static cgrpc_channel *channel_new(const soak_channel *c) {
  cgrpc_channel_options *co = NULL;
  cgrpc_channel *ch = NULL;
  if (cgrpc_channel_options_new(&co) != 0)
    return NULL;
  if (log_cb())
    cgrpc_channel_options_set_log(co, log_cb(), NULL);
  if (cgrpc_channel_new(&ch, c->target, co) != 0)
    ch = NULL;
  cgrpc_channel_options_del(co);
  return ch;
}

/* --recycle: now and then a channel is replaced by a new one, and the old
 * one deleted while its calls are in flight and the workers still hold
 * them (to read, write, cancel, finish and release).  cgrpc_channel_del()
 * says it cancels the calls in flight; nothing says the calls' handles die
 * with it. */
static void *recycler_main(void *arg) {
  rng g = {G.o.seed ^ 0x6368616e6e656c21ULL};
  (void)arg;
  for (;;) {
    soak_channel *c;
    cgrpc_channel *fresh, *old;
    int64_t t;
    trk_note(&G.recycle_trk, "waiting for the next channel replacement");
    if (nap(1000LL * rng_range(&g, G.o.recycle_min_ms, G.o.recycle_max_ms),
            &G.stop_services, &G.recycle_trk))
      break;
    c = &G.chans[rng_range(&g, 0, G.o.channels - 1)];
    fresh = channel_new(c);
    if (!fresh) {
      fail_plain("channel recycle", "could not create a channel to %s",
                 c->target);
      continue;
    }
    trk_note(&G.recycle_trk, "replacing channel %d", c->index);
    pthread_rwlock_wrlock(&c->use);
    t = now_us();
    old = c->ch;
    pthread_mutex_lock(&c->lock);
    if ((size_t)c->gen >= c->cap_del) {
      size_t cap = c->cap_del ? c->cap_del * 2 : 64;
      int64_t *nd = realloc(c->del_at, cap * sizeof *nd);
      if (!nd)
        abort();
      memset(nd + c->cap_del, 0, (cap - c->cap_del) * sizeof *nd);
      c->del_at = nd;
      c->cap_del = cap;
    }
    c->del_at[c->gen] = t;
    pthread_mutex_unlock(&c->lock);
    c->ch = fresh;
    c->gen++;
    pthread_rwlock_unlock(&c->use);
    trk_note(&G.recycle_trk, "deleting the old channel %d (generation %d)",
             c->index, c->gen - 1);
    cgrpc_channel_del(old);
    G.recycles++;
    if (G.o.verbose)
      say("replaced channel %d; the old one deleted in %.0f ms", c->index,
          (double)(now_us() - t) / 1000);
  }
  atomic_store(&G.recycle_trk.active, 0);
  return NULL;
}

/* ---- resources: samples, fds ------------------------------------------ */

static int count_dir(const char *path) {
  DIR *d = opendir(path);
  struct dirent *e;
  int n = 0;
  if (!d)
    return -1;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

/* Open fds, not counting the one that reads the directory. */
static int count_fds(void) {
  int n = count_dir("/proc/self/fd");
  return n < 0 ? -1 : n - 1;
}

static void list_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  if (!d)
    return;
  while ((e = readdir(d)) != NULL) {
    char path[300], target[256];
    ssize_t n;
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
    n = readlink(path, target, sizeof target - 1);
    target[n < 0 ? 0 : n] = '\0';
    say("  fd %s -> %s", e->d_name, target);
  }
  closedir(d);
}

static long rss_kib(void) {
  long size = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f)
    return -1;
  if (fscanf(f, "%ld %ld", &size, &resident) != 2)
    resident = -1;
  fclose(f);
  return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

typedef struct sample {
  double t_s;
  long rss_kib;
  int fds, threads;
  long long calls;
} sample;

static pthread_mutex_t samples_lock = PTHREAD_MUTEX_INITIALIZER;
static sample *samples;
static size_t n_samples, cap_samples;

static long long total_calls(void) {
  long long n = 0;
  int k, c;
  for (k = 0; k < K__N; k++)
    for (c = 0; c < N_CODES; c++)
      n += atomic_load(&G.counts[k][c]);
  return n;
}

static void take_sample(const char *label) {
  sample s;
  s.t_s = (double)(now_us() - t_start_us) / 1e6;
  s.rss_kib = rss_kib();
  s.fds = count_fds();
  s.threads = count_dir("/proc/self/task");
  s.calls = total_calls();
  say("%s rss=%ld KiB fds=%d threads=%d calls=%lld failures=%lld", label,
      s.rss_kib, s.fds, s.threads, s.calls,
      (long long)atomic_load(&G.failures));
  if (strcmp(label, "sample") != 0)
    return;
  pthread_mutex_lock(&samples_lock);
  if (n_samples == cap_samples) {
    size_t cap = cap_samples ? cap_samples * 2 : 64;
    sample *ns = realloc(samples, cap * sizeof *ns);
    if (ns) {
      samples = ns;
      cap_samples = cap;
    }
  }
  if (n_samples < cap_samples)
    samples[n_samples++] = s;
  pthread_mutex_unlock(&samples_lock);
}

static void *sampler_main(void *arg) {
  (void)arg;
  while (!nap(G.o.sample_s * 1000000LL, &G.stop_monitors, NULL))
    take_sample("sample");
  return NULL;
}

/*
 * RSS must not grow without bound.  The early figure is the largest sample
 * of the first third of the run, the late one the smallest of the last
 * third, so a single spike passes and only lasting growth counts; and the
 * margin is generous (x1.5 + 32 MiB) because heaps fragment, glibc keeps
 * per-thread arenas, and servers are rebuilt on every restart.  A steady
 * leak of a few hundred bytes per call still crosses it within minutes.
 * Under AddressSanitizer the quarantine (freed memory held back, 256 MiB by
 * default) grows for most of a run, so the check only reports there.
 * Returns nonzero when it fails.
 */
static int check_rss(void) {
  long early = -1, late = -1;
  double third;
  size_t i;
  int failed = 0;
  pthread_mutex_lock(&samples_lock);
  if (n_samples < 3) {
    pthread_mutex_unlock(&samples_lock);
    say("RSS: only %zu samples; growth not checked (run 30 s or more)",
        n_samples);
    return 0;
  }
  third = samples[n_samples - 1].t_s / 3.0;
  for (i = 0; i < n_samples; i++) {
    const sample *s = &samples[i];
    if (s->t_s <= third + 1e-9 && s->rss_kib > early)
      early = s->rss_kib;
    if (s->t_s >= 2.0 * third - 1e-9 && (late < 0 || s->rss_kib < late))
      late = s->rss_kib;
  }
  if (early < 0)
    early = samples[0].rss_kib;
  pthread_mutex_unlock(&samples_lock);
  if (late > early + early / 2 + 32 * 1024) {
    failed = G.o.rss_check;
    say("%s RSS grew from %ld KiB (early max) to %ld KiB (late min)%s",
        failed ? "FAIL" : "warning:", early, late,
        failed ? "" : "; reported only (--rss-check=0 or ASan)");
  } else {
    say("RSS: early max %ld KiB, late min %ld KiB: no lasting growth", early,
        late);
  }
  return failed;
}

/* ---- the watchdog and crash reports ----------------------------------- */

static void print_trackers(void) {
  int i, n = atomic_load(&n_trackers);
  int64_t now = now_us();
  for (i = 0; i < n && i < MAX_TRACKERS; i++) {
    tracker *t = trackers[i];
    char what[sizeof t->what];
    pthread_mutex_lock(&t->lock);
    memcpy(what, t->what, sizeof what);
    pthread_mutex_unlock(&t->lock);
    say("  %-10s %s, last progress %.1f s ago: %s", t->name,
        atomic_load(&t->active) ? "active" : "done",
        (double)(now - atomic_load(&t->last_us)) / 1e6, what);
  }
}

static void *watchdog_main(void *arg) {
  (void)arg;
  while (!nap(1000000, &G.stop_monitors, NULL)) {
    int i, n = atomic_load(&n_trackers);
    int64_t now = now_us();
    for (i = 0; i < n && i < MAX_TRACKERS; i++) {
      tracker *t = trackers[i];
      if (atomic_load(&t->active) &&
          now - atomic_load(&t->last_us) > G.o.watchdog_s * 1000000LL) {
        say("WATCHDOG: %s made no progress for %d s (seed %" PRIu64
            "); threads:",
            t->name, G.o.watchdog_s, G.o.seed);
        print_trackers();
        abort();
      }
    }
  }
  return NULL;
}

/* Without ASan (which reports crashes itself): the seed, what each thread
 * was doing and the crashing thread's stack, then the default action.  Not
 * async-signal-safe, but the process is going down anyway. */
static void crash_handler(int sig) {
  void *frames[64];
  int i, n = atomic_load(&n_trackers);
  char buf[400];
  int len;
  signal(sig, SIG_DFL);
  len = snprintf(buf, sizeof buf,
                 "\nsoak: signal %d (%s), seed %" PRIu64 "; threads:\n", sig,
                 strsignal(sig), G.o.seed);
  if (write(STDERR_FILENO, buf, (size_t)len) < 0)
    _exit(1);
  for (i = 0; i < n && i < MAX_TRACKERS; i++) {
    len = snprintf(buf, sizeof buf, "  %-10s %s\n", trackers[i]->name,
                   trackers[i]->what);
    if (write(STDERR_FILENO, buf, (size_t)len) < 0)
      _exit(1);
  }
  n = backtrace(frames, 64);
  backtrace_symbols_fd(frames, n, STDERR_FILENO);
  raise(sig);
}

static void install_crash_handlers(void) {
  if (SOAK_ASAN)
    return;
  signal(SIGSEGV, crash_handler);
  signal(SIGBUS, crash_handler);
  signal(SIGFPE, crash_handler);
  signal(SIGILL, crash_handler);
}

/* ---- main ------------------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(f,
          "usage: soak [options]\n"
          "  --duration=S        run time in seconds (default 60)\n"
          "  --seed=N            random seed (default: from the clock)\n"
          "  --threads=N         client threads (default 8)\n"
          "  --channels=N        channels, alternating between the two "
          "servers (default 3)\n"
          "  --restart=MIN,MAX   ms between server restarts (default "
          "3000,8000);\n"
          "                      --restart=0 turns restarts off\n"
          "  --recycle=MIN,MAX   ms between replacing a channel, the old one\n"
          "                      deleted with calls in flight (default "
          "4000,10000);\n"
          "                      --recycle=0 turns it off\n"
          "  --cancels=0|1       random cancels (default 1)\n"
          "  --deadlines=0|1     random deadlines (default 1)\n"
          "  --sample=S          resource sample period (default 10)\n"
          "  --watchdog=S        abort after S s without progress "
          "(default 30)\n"
          "  --rss-check=0|1     fail on RSS growth (default 1; 0 under "
          "ASan)\n"
          "  --log               library log to stderr\n"
          "  --verbose           print every restart\n");
}

static int parse_int(const char *arg, const char *name, long long lo,
                     long long hi, long long *out) {
  size_t n = strlen(name);
  char *end;
  long long v;
  if (strncmp(arg, name, n) != 0 || arg[n] != '=')
    return 0;
  errno = 0;
  v = strtoll(arg + n + 1, &end, 10);
  if (errno || *end || end == arg + n + 1 || v < lo || v > hi) {
    fprintf(stderr, "soak: bad value in %s (%lld..%lld)\n", arg, lo, hi);
    exit(2);
  }
  *out = v;
  return 1;
}

static void parse_args(int argc, char **argv) {
  int i;
  soak_opts *o = &G.o;
  o->duration_s = 60;
  o->seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
  o->threads = 8;
  o->channels = 3;
  o->restart_min_ms = 3000;
  o->restart_max_ms = 8000;
  o->recycle_min_ms = 4000;
  o->recycle_max_ms = 10000;
  o->cancels = o->deadlines = 1;
  o->sample_s = 10;
  o->watchdog_s = 30;
  o->rss_check = !SOAK_ASAN;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    long long v;
    if (parse_int(a, "--duration", 1, 86400 * 7, &v))
      o->duration_s = (int)v;
    else if (strncmp(a, "--seed=", 7) == 0) {
      char *end;
      errno = 0;
      o->seed = strtoull(a + 7, &end, 0);
      if (errno || *end || end == a + 7) {
        fprintf(stderr, "soak: bad seed %s\n", a + 7);
        exit(2);
      }
    } else if (parse_int(a, "--threads", 1, MAX_THREADS, &v))
      o->threads = (int)v;
    else if (parse_int(a, "--channels", 1, MAX_CHANNELS, &v))
      o->channels = (int)v;
    else if (strcmp(a, "--recycle=0") == 0)
      o->recycle_min_ms = o->recycle_max_ms = 0;
    else if (strncmp(a, "--recycle=", 10) == 0) {
      if (sscanf(a + 10, "%d,%d", &o->recycle_min_ms, &o->recycle_max_ms) !=
              2 ||
          o->recycle_min_ms < 100 || o->recycle_max_ms < o->recycle_min_ms) {
        fprintf(stderr, "soak: bad %s (MIN,MAX ms, MIN >= 100)\n", a);
        exit(2);
      }
    } else if (strcmp(a, "--restart=0") == 0)
      o->restart_min_ms = o->restart_max_ms = 0;
    else if (strncmp(a, "--restart=", 10) == 0) {
      if (sscanf(a + 10, "%d,%d", &o->restart_min_ms, &o->restart_max_ms) !=
              2 ||
          o->restart_min_ms < 100 || o->restart_max_ms < o->restart_min_ms) {
        fprintf(stderr, "soak: bad %s (MIN,MAX ms, MIN >= 100)\n", a);
        exit(2);
      }
    } else if (parse_int(a, "--cancels", 0, 1, &v))
      o->cancels = (int)v;
    else if (parse_int(a, "--deadlines", 0, 1, &v))
      o->deadlines = (int)v;
    else if (parse_int(a, "--sample", 1, 3600, &v))
      o->sample_s = (int)v;
    else if (parse_int(a, "--watchdog", 5, 3600, &v))
      o->watchdog_s = (int)v;
    else if (parse_int(a, "--rss-check", 0, 1, &v))
      o->rss_check = (int)v;
    else if (strcmp(a, "--log") == 0)
      o->log = 1;
    else if (strcmp(a, "--verbose") == 0)
      o->verbose = 1;
    else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      exit(0);
    } else {
      fprintf(stderr, "soak: unknown option %s\n", a);
      usage(stderr);
      exit(2);
    }
  }
}

static void print_summary(void) {
  int k, c;
  say("summary (seed %" PRIu64 "): calls by kind and status", G.o.seed);
  for (k = 0; k < K__N; k++) {
    char line[600];
    size_t len = 0;
    long long total = 0;
    for (c = 0; c < N_CODES; c++) {
      long long n = atomic_load(&G.counts[k][c]);
      total += n;
      if (n && len < sizeof line)
        len += (size_t)snprintf(line + len, sizeof line - len, " %s=%lld",
                                code_name(c), n);
    }
    if (len == 0)
      line[0] = '\0';
    say("  %-15s %7lld:%s; failures %lld", kind_names[k], total, line,
        (long long)atomic_load(&G.fails[k]));
  }
  say("  cancels issued %lld, deadlines set %lld (short %lld), "
      "UNAVAILABLE in restart windows %lld",
      (long long)atomic_load(&G.cancels_issued),
      (long long)atomic_load(&G.deadlines_set),
      (long long)atomic_load(&G.deadlines_short),
      (long long)atomic_load(&G.calls_in_restart));
  pthread_mutex_lock(&fail_kinds.lock);
  for (k = 0; k < fail_kinds.count; k++)
    say("  failures of the kind \"%s\": %lld", fail_kinds.what[k],
        fail_kinds.n[k]);
  pthread_mutex_unlock(&fail_kinds.lock);
  say("  restarts: %s %d, %s %d; channels replaced: %d", G.servers[0].name,
      G.servers[0].restarts, G.servers[1].name, G.servers[1].restarts,
      G.recycles);
  pthread_mutex_lock(&samples_lock);
  {
    size_t i;
    for (i = 0; i < n_samples; i++)
      say("  sample %6.1fs rss=%ld KiB fds=%d threads=%d calls=%lld",
          samples[i].t_s, samples[i].rss_kib, samples[i].fds,
          samples[i].threads, samples[i].calls);
  }
  pthread_mutex_unlock(&samples_lock);
}

/* After the run, each channel must work again (its server may have just
 * restarted): an Echo must succeed within the recovery limit. */
static void final_probe(void) {
  int i;
  for (i = 0; i < G.o.channels; i++) {
    int64_t give_up = now_us() + RECOVERY_LIMIT_US;
    cgrpc_status_code code;
    for (;;) {
      Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
      Cgrpc__Test__EchoReply *reply = NULL;
      cgrpc_status st = {0};
      req.message = "probe";
      trk_note(&G.main_trk, "final probe of channel %d", i);
      code = cgrpc__test__echo_service__echo__call(G.chans[i].ch, &req, &reply,
                                                   NULL, &st);
      if (code == CGRPC_STATUS_OK &&
          (!reply || !reply->message || strcmp(reply->message, "probe")))
        code = CGRPC_STATUS_DATA_LOSS;
      if (reply)
        protobuf_c_message_free_unpacked(&reply->base, NULL);
      if (code == CGRPC_STATUS_OK) {
        cgrpc_status_clear(&st);
        break;
      }
      if (code != CGRPC_STATUS_UNAVAILABLE || now_us() > give_up) {
        fail_plain("final probe", "channel %d: %s \"%s\"", i, code_name(code),
                   st.message ? st.message : "");
        cgrpc_status_clear(&st);
        break;
      }
      cgrpc_status_clear(&st);
      sleep_us(100000);
    }
  }
}

int main(int argc, char **argv) {
  pthread_t canceller, restarter, recycler, sampler, watchdog;
  pthread_rwlockattr_t rwa;
  int i, fds_start, fds_end, rv;
  long rss_start;
  char name[24];

  t_start_us = now_us();
  parse_args(argc, argv);
  install_crash_handlers();
  fds_start = count_fds();
  rss_start = rss_kib();
  say("seed %" PRIu64 ", %d s, %d threads, %d channels, restarts %d..%d ms, "
      "channel recycling %d..%d ms, cancels %d, deadlines %d%s",
      G.o.seed, G.o.duration_s, G.o.threads, G.o.channels, G.o.restart_min_ms,
      G.o.restart_max_ms, G.o.recycle_min_ms, G.o.recycle_max_ms, G.o.cancels,
      G.o.deadlines, SOAK_ASAN ? ", ASan build" : "");
  say("replay: soak --seed=%" PRIu64 " --duration=%d --threads=%d "
      "--channels=%d --restart=%d,%d --recycle=%d,%d --cancels=%d "
      "--deadlines=%d",
      G.o.seed, G.o.duration_s, G.o.threads, G.o.channels, G.o.restart_min_ms,
      G.o.restart_max_ms, G.o.recycle_min_ms, G.o.recycle_max_ms, G.o.cancels,
      G.o.deadlines);
  say("start: rss=%ld KiB fds=%d", rss_start, fds_start);
  trk_init(&G.main_trk, "main");
  trk_init(&G.restart_trk, "restarter");
  trk_init(&G.recycle_trk, "recycler");

  G.servers[SRV_POOL].name = "pool";
  G.servers[SRV_INLINE].name = "inline";
  G.servers[SRV_INLINE].inline_loop = 1;
  for (i = 0; i < N_SERVERS; i++) {
    echo_stats_reset(&G.servers[i].echo);
    stream_stats_reset(&G.servers[i].stream);
    /* SlowUpload (pool server): this long before reading each message. */
    atomic_store(&G.servers[i].stream.sleep_us, 200);
    trk_note(&G.main_trk, "starting the %s server", G.servers[i].name);
    if ((rv = server_start(&G.servers[i])) != 0) {
      say("FAIL could not start the %s server: %s", G.servers[i].name,
          cgrpc_err_name(rv));
      return 1;
    }
    say("%s server on 127.0.0.1:%d", G.servers[i].name, G.servers[i].port);
  }
  /* Writers first: the recycler must not starve behind the workers. */
  pthread_rwlockattr_init(&rwa);
  pthread_rwlockattr_setkind_np(&rwa,
                                PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  for (i = 0; i < G.o.channels; i++) {
    soak_channel *c = &G.chans[i];
    c->index = i;
    c->server = i % N_SERVERS;
    pthread_mutex_init(&c->lock, NULL);
    pthread_rwlock_init(&c->use, &rwa);
    snprintf(c->target, sizeof c->target, "127.0.0.1:%d",
             G.servers[c->server].port);
    c->ch = channel_new(c);
    if (!c->ch) {
      say("FAIL could not create channel %d", i);
      return 1;
    }
  }
  pthread_rwlockattr_destroy(&rwa);

  pthread_create(&watchdog, NULL, watchdog_main, NULL);
  pthread_create(&sampler, NULL, sampler_main, NULL);
  pthread_create(&canceller, NULL, canceller_main, NULL);
  if (G.o.restart_max_ms > 0)
    pthread_create(&restarter, NULL, restarter_main, NULL);
  else
    atomic_store(&G.restart_trk.active, 0);
  if (G.o.recycle_max_ms > 0)
    pthread_create(&recycler, NULL, recycler_main, NULL);
  else
    atomic_store(&G.recycle_trk.active, 0);
  for (i = 0; i < G.o.threads; i++) {
    worker *w = &workers[i];
    int j;
    w->id = i;
    w->rng.s = G.o.seed * 0x100000001b3ULL + (uint64_t)i * 0x9e3779b9ULL + 1;
    for (j = 0; j < MAX_BURST; j++)
      pthread_mutex_init(&w->slots[j].lock, NULL);
    pthread_mutex_init(&w->wlock, NULL);
    pthread_cond_init(&w->wcond, NULL);
    snprintf(name, sizeof name, "worker %d", i);
    trk_init(&w->trk, name);
    pthread_create(&w->thread, NULL, worker_main, w);
  }

  {
    int64_t end = t_start_us + G.o.duration_s * 1000000LL;
    while (now_us() < end && !atomic_load(&G.stopping)) {
      trk_note(&G.main_trk, "running");
      sleep_us(end - now_us() < 200000 ? end - now_us() : 200000);
    }
  }
  trk_note(&G.main_trk, "waiting for the workers to finish their calls");
  atomic_store(&G.stopping, 1);
  for (i = 0; i < G.o.threads; i++)
    pthread_join(workers[i].thread, NULL);
  trk_note(&G.main_trk, "stopping the restarter, recycler and canceller");
  atomic_store(&G.stop_services, 1);
  if (G.o.restart_max_ms > 0)
    pthread_join(restarter, NULL);
  if (G.o.recycle_max_ms > 0)
    pthread_join(recycler, NULL);
  pthread_join(canceller, NULL);
  final_probe();

  take_sample("before teardown:");
  for (i = 0; i < G.o.channels; i++) {
    trk_note(&G.main_trk, "deleting channel %d", i);
    cgrpc_channel_del(G.chans[i].ch);
    G.chans[i].ch = NULL;
  }
  for (i = 0; i < N_SERVERS; i++) {
    trk_note(&G.main_trk, "stopping the %s server", G.servers[i].name);
    server_stop(&G.servers[i], 1000);
  }
  trk_note(&G.main_trk, "teardown done");
  atomic_store(&G.main_trk.active, 0);
  atomic_store(&G.stop_monitors, 1);
  pthread_join(sampler, NULL);
  pthread_join(watchdog, NULL);
  graves_free();

  /* Every library thread and socket is gone now; allow FD_SLACK for what
   * libc opens lazily. */
  fds_end = count_fds();
  take_sample("after teardown:");
  if (fds_end > fds_start + FD_SLACK) {
    fail_plain("fds left open", "%d fds open after teardown, %d at the start",
               fds_end, fds_start);
    list_fds();
  } else {
    say("fds: %d at the start, %d after teardown", fds_start, fds_end);
  }
  if (check_rss())
    count_failure("RSS growth");
  print_summary();
  for (i = 0; i < G.o.channels; i++) {
    free(G.chans[i].w);
    free(G.chans[i].del_at);
    pthread_mutex_destroy(&G.chans[i].lock);
    pthread_rwlock_destroy(&G.chans[i].use);
  }
  free(samples);
  if (atomic_load(&G.failures)) {
    say("FAILED: %lld failures (seed %" PRIu64 ")",
        (long long)atomic_load(&G.failures), G.o.seed);
    return 1;
  }
  say("PASSED (seed %" PRIu64 ")", G.o.seed);
  return 0;
}
