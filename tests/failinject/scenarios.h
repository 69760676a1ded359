/* SPDX-License-Identifier: MIT */
/*
 * The scenarios the failure-injection sweep runs: each builds a server and a
 * channel in this process, makes a few calls, checks every result, and tears
 * everything down.  A result is acceptable when it is a clean error (a
 * negative cgrpc error code, a non-OK status) or a correct reply; anything
 * else is recorded in the fi_outcome.
 */
#ifndef CGRPC_TEST_FI_SCENARIOS_H
#define CGRPC_TEST_FI_SCENARIOS_H

#include <stdint.h>

/* How a scenario went, worst first. */
typedef enum fi_verdict {
  FI_PASS = 0,
  FI_STALL, /* a call ended only by its deadline, or a callback never ran */
  FI_WRONG, /* a wrong reply reported as OK, or an unclean error */
} fi_verdict;

typedef struct fi_outcome {
  fi_verdict verdict;
  int calls_ok;    /* calls that ended OK with a correct reply */
  char text[240];  /* what went wrong first */
  char calls[240]; /* how each call ended: "echo 0=OK echo 1=UNAVAILABLE" */
} fi_outcome;

typedef struct fi_scenario {
  const char *name;
  const char *about;
  void (*run)(fi_outcome *out);
} fi_scenario;

/* NULL-terminated. */
extern const fi_scenario fi_scenarios[];

/* Milliseconds each call may take before it counts as stalled. */
extern int fi_call_timeout_ms;

/* Nonzero: give the server and channel a log callback (stderr). */
extern int fi_log;

#endif /* CGRPC_TEST_FI_SCENARIOS_H */
