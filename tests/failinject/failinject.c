/* SPDX-License-Identifier: MIT */
/*
 * The failure-injection sweep, in the style of nghttp2's failmalloc tests.
 *
 *   failinject SCENARIO SITE[,SITE...] [-n N] [-r FROM:TO] [-s STRIDE]
 *
 * SCENARIO is one of scenarios.c (unary, stream, inline, tls); SITE is
 * malloc, one of the system calls of fi_wrap.h (epoll_ctl, eventfd, ...),
 * "syscalls" for all of those, or openssl (OpenSSL's own allocations).  For
 * each site a first run without failures counts the calls the scenario makes;
 * then, for every N in 1..count (plus a margin, since the count varies a little
 * with thread timing), a fork()ed child runs the scenario with the Nth call
 * failing and the parent judges how it ended:
 *
 *   crash (signal S)   the child died of a signal
 *   sanitizer          ASan/UBSan reported an error (exit code 86)
 *   hang               it did not finish within the timeout
 *   reply wrong        a wrong reply reported as OK, or an unclean error
 *   stall              a call ended only by its deadline (the failure was
 *                      swallowed), or an async callback never ran
 *   leak of K          K allocations still live after full teardown
 *   bad free           free() of a block that was not allocated (double free)
 *
 * The parent prints one line per failing N and then the failures grouped by
 * the place where the failure was injected, and exits 1 if any N failed.
 *
 * The default run is bounded so that it stays short while the library
 * still hangs on some N: at most CGRPC_FAILINJECT_MAX_RUNS N per site (a
 * stride when the scenario makes more calls), visited in an order that
 * spreads them over the range, and at most CGRPC_FAILINJECT_BUDGET seconds
 * per site; the N left over are reported.
 *
 * Environment:
 *   CGRPC_FAILINJECT_FULL=1     every N, no time budget
 *   CGRPC_FAILINJECT_MAX_RUNS   N per site in the default run (300)
 *   CGRPC_FAILINJECT_BUDGET     seconds per site in the default run (12;
 *                               120 under sanitizers)
 *   CGRPC_FAILINJECT_TIMEOUT    seconds before a child counts as hung (5;
 *                               30 under sanitizers).  Calls have a deadline
 *                               of 1 s (3 s), so a call that stalls ends
 *                               long before.
 *   CGRPC_FAILINJECT_BT=0       keep only the caller of each allocation, not
 *                               a backtrace (for leak sites)
 *   CGRPC_FAILINJECT_PERSIST=1  fail every call from the Nth on, until the
 *                               scenario's teardown begins
 *   CGRPC_FAILINJECT_REPEAT=K   run each N up to K times until it fails
 *                               (default 1 for malloc, 3 for the system
 *                               calls: the client's and the server's
 *                               calls race, so N does not always hit the
 *                               same one)
 *   CGRPC_FAILINJECT_GDB=1      print the threads of a hung child (gdb)
 *   CGRPC_FAILINJECT_VERBOSE=1  print a failing child's stderr (2, or -v -v:
 *                               and a line for every N that passed)
 *   CGRPC_TEST_LOG=1            give the server and channel a stderr logger
 * With -n N a single child runs with its stderr shown, for debugging.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fi_wrap.h"
#include "scenarios.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FI_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define FI_SANITIZED 1
#endif
#endif
#ifndef FI_SANITIZED
#define FI_SANITIZED 0
#endif

/* A sanitizer's report makes the child exit with this code. */
#define EXIT_SANITIZER 86
#define EXIT_FAILED 10

const char *__asan_default_options(void);
const char *__asan_default_options(void) {
  return "exitcode=86:detect_leaks=0:handle_abort=1";
}
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void) {
  return "exitcode=86:print_stacktrace=1:halt_on_error=1";
}

/* ---- options ---- */

static int opt_full, opt_max_runs = 300, opt_timeout_s = 5, opt_budget_s = 12,
                     opt_bt, opt_persist, opt_gdb, opt_verbose, opt_repeat;

static int env_int(const char *name, int dflt) {
  const char *v = getenv(name);
  return v && *v ? atoi(v) : dflt;
}

/* ---- running one child ---- */

typedef enum outcome_kind {
  O_PASS,
  O_NOT_REACHED, /* passed, and the Nth call never came */
  O_CRASH,
  O_SANITIZER,
  O_HANG,
  O_WRONG,
  O_STALL,
  O_LEAK,
  O_BAD_FREE,
} outcome_kind;

static const char *const kind_names[] = {
    "pass",        "not reached", "crash", "sanitizer", "hang",
    "reply wrong", "stall",       "leak",  "bad free"};

typedef struct run_result {
  outcome_kind kind;
  int signal;
  int exit_code;
  int have_result, have_injected, have_crash, have_bad_free;
  fi_event result, injected, crash, bad_free;
  int n_leaks;
  fi_event leaks[8];
  char san[300];  /* the sanitizer's SUMMARY line */
  char line[600]; /* the description printed for this N */
} run_result;

static const fi_scenario *scenario;
static int report_fd = -1; /* the child's end of the event pipe */

static void crash_handler(int sig) {
  fi_event ev;
  memset(&ev, 0, sizeof ev);
  ev.kind = FI_EV_CRASH;
  ev.n = (uint64_t)sig;
  ev.n_frames = fi_backtrace(ev.frames, FI_FRAMES);
  fi_emit(&ev);
  signal(sig, SIG_DFL);
  raise(sig);
}

/* The child: runs the scenario with call |n| of |site| failing. */
static void child_main(fi_site site, uint64_t n, int timeout_s) {
  fi_outcome out;
  fi_event ev;
  sigset_t all;
  fi_config cfg;
  int i;

  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, NULL);
  prctl(PR_SET_PDEATHSIG, SIGKILL); /* no orphan when the sweep is killed */
  alarm((unsigned)timeout_s + 10);  /* the parent kills us first */
  if (!FI_SANITIZED) {
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
    for (i = 0; i < (int)(sizeof sigs / sizeof sigs[0]); i++)
      signal(sigs[i], crash_handler);
  }
  cfg.backtraces = opt_bt;
  cfg.persist = opt_persist;
  cfg.report_fd = report_fd;
  fi_configure(&cfg);

  memset(&out, 0, sizeof out);
  fi_start(site, n);
  scenario->run(&out);
  fi_stop();

  memset(&ev, 0, sizeof ev);
  ev.kind = FI_EV_RESULT;
  ev.site = site;
  ev.n = n;
  ev.verdict = out.verdict;
  for (i = 0; i < FI_N_SITES; i++)
    ev.counts[i] = fi_count((fi_site)i);
  ev.live = fi_live();
  ev.bad_frees = fi_bad_frees();
  snprintf(ev.text, sizeof ev.text, "%s", out.text);
  snprintf(ev.calls, sizeof ev.calls, "%s", out.calls);
  if (ev.live)
    fi_report_leaks(8);
  fi_emit(&ev);
  _exit(out.verdict == FI_PASS && ev.live == 0 && ev.bad_frees == 0
            ? 0
            : EXIT_FAILED);
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for |pid| up to |ms|; returns 0 with |*status| set, or -1. */
static int wait_child(pid_t pid, int *status, int64_t ms) {
  int64_t end = now_ms() + ms;
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  for (;;) {
    struct timespec ts;
    int64_t left;
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid)
      return 0;
    left = end - now_ms();
    if (left <= 0)
      return -1;
    if (left > 100)
      left = 100; /* SIGCHLD may have come before the mask took it */
    ts.tv_sec = left / 1000;
    ts.tv_nsec = (long)(left % 1000) * 1000000L;
    sigtimedwait(&chld, NULL, &ts);
  }
}

static void gdb_threads(pid_t pid) {
  char cmd[128];
  fflush(stdout);
  snprintf(cmd, sizeof cmd,
           "gdb -p %d -batch -nx -ex 'thread apply all bt' 2>/dev/null"
           " | grep -E '^(Thread|#)'",
           (int)pid);
  if (system(cmd) != 0)
    printf("    (gdb could not attach)\n");
}

/* Reads the events the child wrote. */
static void read_events(int fd, run_result *r) {
  fi_event ev;
  for (;;) {
    ssize_t got = read(fd, &ev, sizeof ev);
    if (got < 0 && errno == EINTR)
      continue;
    if (got != (ssize_t)sizeof ev)
      break;
    switch (ev.kind) {
    case FI_EV_INJECTED:
      r->injected = ev;
      r->have_injected = 1;
      break;
    case FI_EV_BAD_FREE:
      r->bad_free = ev;
      r->have_bad_free = 1;
      break;
    case FI_EV_LEAK:
      if (r->n_leaks < (int)(sizeof r->leaks / sizeof r->leaks[0]))
        r->leaks[r->n_leaks++] = ev;
      break;
    case FI_EV_RESULT:
      r->result = ev;
      r->have_result = 1;
      break;
    case FI_EV_CRASH:
      r->crash = ev;
      r->have_crash = 1;
      break;
    default:
      break;
    }
  }
}

static int uninteresting(const char *fn);

/* What a sanitizer reported, from the child's stderr (file |fd|): the
 * error's kind and the first two frames of its stack that are not the
 * sanitizer's or the wrappers', as "heap-use-after-free in f (x.c:1) < g
 * (y.c:2)"; UBSan's "file:line: runtime error: ..." line as it is. */
static void find_summary(int fd, char *out, size_t size, int dump) {
  static char buf[1 << 18];
  ssize_t n;
  char *p, *line;
  size_t len = 0;
  int frames = 0;
  out[0] = '\0';
  if (lseek(fd, 0, SEEK_SET) != 0)
    return;
  n = read(fd, buf, sizeof buf - 1);
  if (n <= 0)
    return;
  buf[n] = '\0';
  if (dump)
    printf("    --- child stderr ---\n%s    ---\n", buf);
  if ((p = strstr(buf, "runtime error: ")) != NULL) {
    while (p > buf && p[-1] != '\n')
      p--;
    snprintf(out, size, "%.*s", (int)strcspn(p, "\n"), p);
    return;
  }
  p = strstr(buf, "ERROR: AddressSanitizer: ");
  if (!p) {
    p = strstr(buf, "SUMMARY: ");
    if (p)
      snprintf(out, size, "%.*s", (int)strcspn(p, "\n"), p);
    return;
  }
  p += strlen("ERROR: AddressSanitizer: ");
  len = strcspn(p, "\n");
  {
    /* "heap-use-after-free on address ...", "attempting double-free on" */
    char *on = strstr(p, " on ");
    if (on && (size_t)(on - p) < len)
      len = (size_t)(on - p);
  }
  len = (size_t)snprintf(out, size, "%.*s", (int)len, p);
  /* Frames: "    #3 0x7f... in func /path/file.c:12" or "(lib.so+0x12)". */
  for (line = strchr(p, '\n'); line && frames < 2 && len < size;
       line = strchr(line + 1, '\n')) {
    char fn[160], loc[300];
    const char *q = line + 1, *slash;
    while (*q == ' ')
      q++;
    if (*q != '#')
      break; /* the end of the first stack */
    if (sscanf(q, "#%*d %*s in %159s %299s", fn, loc) != 2)
      continue;
    if (uninteresting(fn) || strncmp(fn, "__interceptor", 13) == 0 ||
        strncmp(fn, "__asan", 6) == 0 || strstr(fn, "nghttp2_mem_"))
      continue;
    if (loc[0] == '(' && loc[strlen(loc) - 1] == ')')
      loc[strlen(loc) - 1] = '\0';
    slash = strrchr(loc, '/');
    len +=
        (size_t)snprintf(out + len, size - len, "%s%s (%s)",
                         frames ? " < " : " in ", fn, slash ? slash + 1 : loc);
    frames++;
  }
}

/* Runs one child with call |n| of |site| failing (n = 0: none). */
static void run_one(fi_site site, uint64_t n, int show_stderr, run_result *r) {
  int pfd[2], errfd = -1, status = 0;
  char path[] = "/tmp/cgrpc-failinject-XXXXXX";
  const char *tmpdir = getenv("TMPDIR");
  char tpath[512];
  pid_t pid;

  memset(r, 0, sizeof *r);
  if (pipe(pfd) != 0) {
    perror("pipe");
    exit(2);
  }
  if (!show_stderr) {
    if (tmpdir && *tmpdir) {
      snprintf(tpath, sizeof tpath, "%s/cgrpc-failinject-XXXXXX", tmpdir);
      errfd = mkstemp(tpath);
      if (errfd >= 0)
        unlink(tpath);
    }
    if (errfd < 0) {
      errfd = mkstemp(path);
      if (errfd >= 0)
        unlink(path);
    }
  }
  fflush(stdout);
  fflush(stderr);
  pid = fork();
  if (pid < 0) {
    perror("fork");
    exit(2);
  }
  if (pid == 0) {
    close(pfd[0]);
    report_fd = pfd[1];
    if (errfd >= 0) {
      dup2(errfd, 2);
      close(errfd);
    }
    child_main(site, n, opt_timeout_s);
  }
  close(pfd[1]);
  if (wait_child(pid, &status, (int64_t)opt_timeout_s * 1000) != 0) {
    r->kind = O_HANG;
    if (opt_gdb)
      gdb_threads(pid);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    read_events(pfd[0], r);
    close(pfd[0]);
    if (errfd >= 0)
      close(errfd);
    return;
  }
  read_events(pfd[0], r);
  close(pfd[0]);
  if (WIFSIGNALED(status)) {
    r->signal = WTERMSIG(status);
    r->kind = r->signal == SIGALRM ? O_HANG : O_CRASH;
  } else {
    r->exit_code = WEXITSTATUS(status);
    if (r->exit_code == EXIT_SANITIZER)
      r->kind = O_SANITIZER;
    else if (!r->have_result)
      r->kind = O_CRASH; /* exited before the end: exit() in the library? */
    else if (r->result.verdict == FI_WRONG)
      r->kind = O_WRONG;
    else if (r->result.bad_frees)
      r->kind = O_BAD_FREE;
    else if (r->result.verdict == FI_STALL)
      r->kind = O_STALL;
    else if (r->result.live)
      r->kind = O_LEAK;
    else
      r->kind = n && !r->have_injected ? O_NOT_REACHED : O_PASS;
  }
  if (errfd < 0 && r->kind == O_SANITIZER)
    snprintf(r->san, sizeof r->san, "(the report is above)");
  if (errfd >= 0) {
    if (r->kind != O_PASS && r->kind != O_NOT_REACHED)
      find_summary(errfd, r->san, sizeof r->san, opt_verbose);
    close(errfd);
  }
}

static void usage(void);

/* ---- symbols ---- */

typedef struct sym_cache_entry {
  void *addr;
  char text[200];
  char fn[128]; /* the function, for a frame of the executable; else "" */
  int skip;     /* a frame of the wrappers or the allocator glue */
} sym_cache_entry;

static sym_cache_entry sym_cache[2048];
static int n_sym_cache;

/* Frames that say nothing about the path: the wrappers, the inline
 * allocation entry points, the nghttp2_mem glue, glibc. */
static int uninteresting(const char *fn) {
  static const char *const names[] = {
      "__wrap_",       "should_fail",   "fi_backtrace",   "crash_handler",
      "cgrpc__malloc", "cgrpc__calloc", "cgrpc__realloc", "cgrpc__free",
      "h2_malloc",     "h2_calloc",     "h2_realloc",     "h2_free",
      "note_bad_free", "describe",      "track",          "libc.so",
      "raise",         "abort",         "__restore_rt",   "killpg",
      "libasan.so",    "libubsan.so",   "libtsan.so"};
  size_t i;
  for (i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strstr(fn, names[i]))
      return 1;
  return 0;
}

/* "function (file:line)" for a return address in this process's image (the
 * children are forks of it, so their addresses mean the same here). */
static const sym_cache_entry *symbolize(void *addr) {
  sym_cache_entry *e;
  Dl_info info;
  int i;
  for (i = 0; i < n_sym_cache; i++)
    if (sym_cache[i].addr == addr)
      return &sym_cache[i];
  if (n_sym_cache == (int)(sizeof sym_cache / sizeof sym_cache[0]))
    n_sym_cache = 0; /* cheap reset */
  e = &sym_cache[n_sym_cache++];
  e->addr = addr;
  e->skip = 0;
  e->fn[0] = '\0';
  snprintf(e->text, sizeof e->text, "%p", addr);
  if (dladdr(addr, &info) && info.dli_fname) {
    uintptr_t off = (uintptr_t)addr - (uintptr_t)info.dli_fbase - 1;
    const char *base = strrchr(info.dli_fname, '/');
    char cmd[1200], fn[256] = "", loc[512] = "";
    FILE *p;
    base = base ? base + 1 : info.dli_fname;
    Dl_info self;
    if (!dladdr((void *)(uintptr_t)usage, &self) ||
        self.dli_fbase != info.dli_fbase) {
      if (info.dli_sname)
        snprintf(e->text, sizeof e->text, "%s:%s", base, info.dli_sname);
      else
        snprintf(e->text, sizeof e->text, "%s+0x%lx", base, (unsigned long)off);
      e->skip = uninteresting(e->text);
      return e;
    }
    /* The executable (through /proc, so that a rebuild during the sweep
     * does not matter): addr2line, keeping the outermost function of an
     * inline chain that is not allocator glue (-i prints inner first). */
    snprintf(cmd, sizeof cmd,
             "addr2line -f -i -C -e /proc/%d/exe 0x%lx 2>/dev/null",
             (int)getpid(), (unsigned long)off);
    p = popen(cmd, "r");
    if (p) {
      char f[256], l[512];
      int first = 1;
      while (fgets(f, sizeof f, p) && fgets(l, sizeof l, p)) {
        const char *slash;
        f[strcspn(f, "\n")] = '\0';
        l[strcspn(l, "\n")] = '\0';
        if (!first && uninteresting(f))
          continue;
        if (first || !uninteresting(f)) {
          slash = strrchr(l, '/');
          snprintf(fn, sizeof fn, "%s", f);
          snprintf(loc, sizeof loc, "%s", slash ? slash + 1 : l);
        }
        first = 0;
      }
      pclose(p);
    }
    if (fn[0] && strcmp(fn, "??") != 0) {
      char *disc = strstr(loc, " (discriminator");
      if (disc)
        *disc = '\0';
      snprintf(e->text, sizeof e->text, "%.120s (%.76s)", fn, loc);
      snprintf(e->fn, sizeof e->fn, "%.127s", fn);
      e->skip = uninteresting(fn);
    }
  }
  return e;
}

/* Appends up to |max| interesting frames of |ev| to |buf|, " < "-joined. */
static void frames_text(const fi_event *ev, int max, char *buf, size_t size) {
  int i, shown = 0;
  size_t len = 0;
  buf[0] = '\0';
  for (i = 0; i < ev->n_frames && shown < max; i++) {
    const sym_cache_entry *e = symbolize(ev->frames[i]);
    if (e->skip)
      continue;
    len += (size_t)snprintf(buf + len, len < size ? size - len : 0, "%s%s",
                            shown ? " < " : "", e->text);
    if (len >= size)
      break;
    shown++;
  }
}

/* The names of the first |max| interesting frames of |ev| in the
 * executable (the library's path, whatever nghttp2 did in between),
 * " < "-joined: the grouping key. */
static void path_key(const fi_event *ev, int max, char *buf, size_t size) {
  int i, shown = 0;
  size_t len = 0;
  buf[0] = '\0';
  for (i = 0; i < ev->n_frames && shown < max; i++) {
    const sym_cache_entry *e = symbolize(ev->frames[i]);
    if (e->skip || !e->fn[0])
      continue;
    len += (size_t)snprintf(buf + len, len < size ? size - len : 0, "%s%s",
                            shown ? " < " : "", e->fn);
    if (len >= size)
      break;
    shown++;
  }
}

/* The first interesting frame's function name (no location). */
static void top_function(const fi_event *ev, char *buf, size_t size) {
  frames_text(ev, 1, buf, size);
  buf[strcspn(buf, " ")] = '\0';
}

static void describe(run_result *r, uint64_t n, fi_site site) {
  char where[400] = "", tmp[400];
  size_t len;
  switch (r->kind) {
  case O_CRASH:
    if (r->signal)
      len = (size_t)snprintf(r->line, sizeof r->line, "crash (signal %d, %s)",
                             r->signal, strsignal(r->signal));
    else
      len = (size_t)snprintf(r->line, sizeof r->line,
                             "exited %d before the end", r->exit_code);
    if (r->have_crash) {
      frames_text(&r->crash, 3, tmp, sizeof tmp);
      snprintf(r->line + len, sizeof r->line - len, " in %s", tmp);
    }
    break;
  case O_SANITIZER:
    snprintf(r->line, sizeof r->line, "sanitizer: %s",
             r->san[0] ? r->san : "(no summary)");
    break;
  case O_HANG:
    snprintf(r->line, sizeof r->line, "hang (no end within %d s)",
             opt_timeout_s);
    break;
  case O_WRONG:
  case O_STALL:
    snprintf(r->line, sizeof r->line, "%s: %s", kind_names[r->kind],
             r->result.text);
    break;
  case O_LEAK:
    len = (size_t)snprintf(r->line, sizeof r->line, "leak of %llu allocations",
                           (unsigned long long)r->result.live);
    if (r->n_leaks) {
      frames_text(&r->leaks[0], opt_bt ? 3 : 1, tmp, sizeof tmp);
      snprintf(r->line + len, sizeof r->line - len,
               " (e.g. %llu bytes from %s)", (unsigned long long)r->leaks[0].n,
               tmp);
    }
    break;
  case O_BAD_FREE:
    len = (size_t)snprintf(r->line, sizeof r->line,
                           "bad free (double free, or a foreign block)");
    if (r->have_bad_free) {
      frames_text(&r->bad_free, 3, tmp, sizeof tmp);
      snprintf(r->line + len, sizeof r->line - len, " in %s", tmp);
    }
    break;
  default:
    snprintf(r->line, sizeof r->line, "%s", kind_names[r->kind]);
  }
  if (r->have_injected)
    frames_text(&r->injected, 3, where, sizeof where);
  printf("  %s N=%llu: %s\n      injected at: %s\n", fi_site_name(site),
         (unsigned long long)n, r->line, where[0] ? where : "(not reached)");
  if (opt_verbose && r->n_leaks) {
    int i;
    for (i = 0; i < r->n_leaks; i++) {
      frames_text(&r->leaks[i], 6, tmp, sizeof tmp);
      printf("      leaked %llu bytes from %s\n",
             (unsigned long long)r->leaks[i].n, tmp);
    }
  }
}

/* ---- grouping ---- */

typedef struct group {
  char key[700];
  char sample[700];
  char where[400];
  uint64_t ns[64];
  int n_ns, total;
} group;

static group groups[256];
static int n_groups;

/* The key: the kind of failure, where it showed, where it was injected. */
static void group_add(const run_result *r, uint64_t n) {
  char key[700], where[400] = "", what[300] = "";
  int i;
  if (r->have_injected)
    path_key(&r->injected, 2, where, sizeof where);
  switch (r->kind) {
  case O_CRASH:
    if (r->have_crash)
      top_function(&r->crash, what, sizeof what);
    break;
  case O_SANITIZER: {
    /* "SUMMARY: AddressSanitizer: heap-use-after-free file:line in fn" */
    const char *p = strstr(r->san, "Sanitizer: ");
    snprintf(what, sizeof what, "%s", p ? p + 11 : r->san);
    break;
  }
  case O_WRONG:
  case O_STALL: {
    /* "echo 1: DEADLINE_EXCEEDED ..." -> "echo" */
    char *d;
    snprintf(what, sizeof what, "%.40s", r->result.text);
    what[strcspn(what, ":0123456789")] = '\0';
    d = what + strlen(what);
    while (d > what && d[-1] == ' ')
      *--d = '\0';
    break;
  }
  case O_LEAK:
    if (r->n_leaks)
      top_function(&r->leaks[0], what, sizeof what);
    break;
  case O_BAD_FREE:
    if (r->have_bad_free)
      top_function(&r->bad_free, what, sizeof what);
    break;
  default:
    break;
  }
  snprintf(key, sizeof key, "%s [%.150s] injected at %.400s",
           kind_names[r->kind], what, where[0] ? where : "(not reached)");
  for (i = 0; i < n_groups; i++)
    if (strcmp(groups[i].key, key) == 0)
      break;
  if (i == n_groups) {
    if (n_groups == (int)(sizeof groups / sizeof groups[0]))
      i = n_groups - 1; /* lump the rest into the last */
    else
      n_groups++;
    if (!groups[i].total) {
      snprintf(groups[i].key, sizeof groups[i].key, "%s", key);
      snprintf(groups[i].sample, sizeof groups[i].sample, "%s", r->line);
      if (r->have_injected)
        frames_text(&r->injected, 6, groups[i].where, sizeof groups[i].where);
    }
  }
  if (groups[i].n_ns < (int)(sizeof groups[i].ns / sizeof groups[i].ns[0]))
    groups[i].ns[groups[i].n_ns++] = n;
  groups[i].total++;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void print_groups(const char *label) {
  int i, j;
  if (!n_groups)
    return;
  printf("\n%s: %d group(s) of failures, by where they show and where the "
         "failure was injected:\n",
         label, n_groups);
  for (i = 0; i < n_groups; i++) {
    group *g = &groups[i];
    qsort(g->ns, (size_t)g->n_ns, sizeof g->ns[0], cmp_u64);
    printf("\n  [%d] %s  (%d N)\n      e.g. %s\n      injected: %s\n"
           "      N =",
           i + 1, g->key, g->total, g->sample,
           g->where[0] ? g->where : "(not reached)");
    for (j = 0; j < g->n_ns; j++)
      printf(" %llu", (unsigned long long)g->ns[j]);
    printf("%s\n", g->total > g->n_ns ? " ..." : "");
  }
}

/* ---- the sweep ---- */

static int sweep(fi_site site, int64_t from, int64_t to, int64_t stride,
                 const char *label) {
  run_result r;
  uint64_t counts[3] = {0, 0, 0}, max_count = 0;
  int64_t n, m, g, top, idx;
  int rep, repeat = opt_repeat > 0                            ? opt_repeat
                    : site == FI_MALLOC || site == FI_OPENSSL ? 1
                                                              : 3;
  int i, runs = 0, passed = 0, not_reached = 0, failed = 0, over_budget = 0;
  int64_t start, budget_ms = opt_full ? 0 : (int64_t)opt_budget_s * 1000;

  /* The count, three times: it varies with thread timing. */
  for (i = 0; i < 3; i++) {
    run_one(site, 0, 0, &r);
    if (r.kind != O_PASS) {
      describe(&r, 0, site);
      printf("%s: the run without failures fails; no sweep\n", label);
      return 1;
    }
    counts[i] = r.result.counts[site];
    if (counts[i] > max_count)
      max_count = counts[i];
  }
  if (from <= 0)
    from = 1;
  if (to <= 0)
    to = (int64_t)(max_count + (site == FI_MALLOC || site == FI_OPENSSL
                                    ? max_count / 20 + 2
                                    : 1));
  if (stride <= 0) {
    int64_t span = to - from + 1;
    stride = opt_full || span <= opt_max_runs
                 ? 1
                 : (span + opt_max_runs - 1) / opt_max_runs;
  }
  printf("%s: %llu/%llu/%llu calls of %s without failures; failing "
         "N = %lld..%lld, stride %lld, up to %d run(s) per N%s\n",
         label, (unsigned long long)counts[0], (unsigned long long)counts[1],
         (unsigned long long)counts[2], fi_site_name(site), (long long)from,
         (long long)to, (long long)stride, repeat,
         stride > 1 ? " (CGRPC_FAILINJECT_FULL=1 for every N)" : "");
  fflush(stdout);
  /* Every N of from, from + stride, ... once, in an order that spreads
   * them over the range (0, M/2, M/4, 3M/4, ...), so that a sweep cut
   * short by the time budget still covers the whole range. */
  m = (to - from) / stride + 1;
  start = now_ms();
  for (top = 1; top * 2 <= m; top *= 2) {
  }
  for (g = top; g >= 1 && !over_budget; g /= 2) {
    for (idx = g == top ? 0 : g; idx < m; idx += g == top ? g : 2 * g) {
      if (budget_ms > 0 && now_ms() - start > budget_ms) {
        over_budget = 1;
        break;
      }
      n = from + idx * stride;
      /* Which call is the Nth depends on how the threads interleave (the
       * client's connect and the server's accept race), so an N may be
       * run more than once; the first failing run counts. */
      for (rep = 0; rep < repeat; rep++) {
        run_one(site, (uint64_t)n, 0, &r);
        if (r.kind != O_PASS && r.kind != O_NOT_REACHED)
          break;
      }
      runs++;
      if (opt_verbose > 1 && (r.kind == O_PASS || r.kind == O_NOT_REACHED))
        describe(&r, (uint64_t)n, site);
      if (r.kind == O_PASS) {
        passed++;
        continue;
      }
      if (r.kind == O_NOT_REACHED) {
        not_reached++;
        continue;
      }
      failed++;
      describe(&r, (uint64_t)n, site);
      group_add(&r, (uint64_t)n);
      fflush(stdout);
    }
  }
  printf("%s: %d runs in %.1f s: %d passed, %d not reached (N beyond the "
         "calls made), %d failed\n",
         label, runs, (double)(now_ms() - start) / 1000.0, passed, not_reached,
         failed);
  if (over_budget)
    printf("%s: time budget of %d s spent; %lld N not run "
           "(CGRPC_FAILINJECT_FULL=1 runs them all)\n",
           label, opt_budget_s, (long long)(m - runs));
  return failed ? 1 : 0;
}

static void usage(void) {
  int i;
  fprintf(stderr,
          "usage: failinject SCENARIO SITE[,SITE...] [-n N] [-r FROM:TO] "
          "[-s STRIDE]\n  scenarios:");
  for (i = 0; fi_scenarios[i].name; i++)
    fprintf(stderr, " %s", fi_scenarios[i].name);
  fprintf(stderr, "\n  sites: syscalls (all but malloc)");
  for (i = 0; i < FI_N_SITES; i++)
    fprintf(stderr, " %s", fi_site_name((fi_site)i));
  fprintf(stderr, "\n");
  exit(2);
}

int main(int argc, char **argv) {
  int sites[FI_N_SITES], n_sites = 0, i, rv = 0, opt;
  int64_t single = -1, from = 0, to = 0, stride = 0;
  char list[256], *tok, *save = NULL;
  void *warm[4];
  sigset_t chld;

  while ((opt = getopt(argc, argv, "n:r:s:v")) != -1) {
    switch (opt) {
    case 'n':
      single = atoll(optarg);
      break;
    case 'r':
      if (sscanf(optarg, "%lld:%lld", (long long *)&from, (long long *)&to) !=
          2)
        usage();
      break;
    case 's':
      stride = atoll(optarg);
      break;
    case 'v':
      opt_verbose++;
      break;
    default:
      usage();
    }
  }
  if (argc - optind != 2)
    usage();
  for (i = 0; fi_scenarios[i].name; i++)
    if (strcmp(fi_scenarios[i].name, argv[optind]) == 0)
      scenario = &fi_scenarios[i];
  if (!scenario)
    usage();
  snprintf(list, sizeof list, "%s", argv[optind + 1]);
  for (tok = strtok_r(list, ",", &save); tok;
       tok = strtok_r(NULL, ",", &save)) {
    int s = fi_site_parse(tok);
    if (strcmp(tok, "syscalls") == 0) {
      for (s = 1; s < FI_OPENSSL && n_sites < FI_N_SITES; s++)
        sites[n_sites++] = s;
      continue;
    }
    if (s < 0 || n_sites == FI_N_SITES)
      usage();
    sites[n_sites++] = s;
  }

  if (fi_hook_openssl() != 0) {
    fprintf(stderr, "failinject: OpenSSL allocated before its allocator "
                    "could be hooked\n");
    return 2;
  }
  opt_full = env_int("CGRPC_FAILINJECT_FULL", 0);
  opt_max_runs = env_int("CGRPC_FAILINJECT_MAX_RUNS", 300);
  opt_timeout_s = env_int("CGRPC_FAILINJECT_TIMEOUT", FI_SANITIZED ? 30 : 5);
  opt_budget_s = env_int("CGRPC_FAILINJECT_BUDGET", FI_SANITIZED ? 120 : 12);
  fi_call_timeout_ms = FI_SANITIZED ? 3000 : 1000;
  opt_bt = env_int("CGRPC_FAILINJECT_BT", 1);
  opt_repeat = env_int("CGRPC_FAILINJECT_REPEAT", 0);
  opt_persist = env_int("CGRPC_FAILINJECT_PERSIST", 0);
  opt_gdb = env_int("CGRPC_FAILINJECT_GDB", 0);
  if (!opt_verbose)
    opt_verbose = env_int("CGRPC_FAILINJECT_VERBOSE", 0);
  fi_log = getenv("CGRPC_TEST_LOG") != NULL;
  if (opt_max_runs < 1)
    opt_max_runs = 1;

  /* backtrace() loads its unwinder on first use; do that here, not in a
   * child's malloc. */
  fi_backtrace(warm, 4);
  /* The parent waits for SIGCHLD with sigtimedwait(). */
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  setvbuf(stdout, NULL, _IOLBF, 0);

  printf("failinject %s: %s\n", scenario->name, scenario->about);
  for (i = 0; i < n_sites; i++) {
    char label[128];
    snprintf(label, sizeof label, "%s/%s", scenario->name,
             fi_site_name((fi_site)sites[i]));
    if (single >= 0) {
      run_result r;
      run_one((fi_site)sites[i], (uint64_t)single, 1, &r);
      describe(&r, (uint64_t)single, (fi_site)sites[i]);
      if (r.have_result) {
        int k;
        printf("  outcome: %s\n", r.result.calls);
        printf("  calls:");
        for (k = 0; k < FI_N_SITES; k++)
          printf(" %s=%llu", fi_site_name((fi_site)k),
                 (unsigned long long)r.result.counts[k]);
        printf("\n");
      }
      if (r.have_injected) {
        char tmp[1200];
        frames_text(&r.injected, FI_FRAMES, tmp, sizeof tmp);
        printf("  injected at: %s\n", tmp);
      }
      for (int k = 0; k < r.n_leaks; k++) {
        char tmp[1200];
        frames_text(&r.leaks[k], FI_FRAMES, tmp, sizeof tmp);
        printf("  leaked %llu bytes from %s\n",
               (unsigned long long)r.leaks[k].n, tmp);
      }
      rv |= r.kind != O_PASS && r.kind != O_NOT_REACHED;
      continue;
    }
    rv |= sweep((fi_site)sites[i], from, to, stride, label);
  }
  print_groups(scenario->name);
  printf("\nfailinject %s: %s\n", scenario->name, rv ? "FAILED" : "passed");
  return rv;
}
