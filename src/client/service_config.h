/* SPDX-License-Identifier: MIT */
/*
 * A channel's service config (gRPC's doc/service_config.md), parsed from
 * its JSON with jansson: per-service and per-method settings (timeout,
 * waitForReady, message size limits, a retry policy per gRFC A6), retry
 * throttling and the load-balancing policy.  Parsed and checked once, when
 * the application sets it; immutable afterwards, so any thread may read a
 * config it holds a reference to.
 */
#ifndef CGRPC_CLIENT_SERVICE_CONFIG_H
#define CGRPC_CLIENT_SERVICE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/* Load-balancing policies. */
enum {
  CGRPC__LB_UNSET = -1,
  CGRPC__LB_PICK_FIRST = 0, /* the default */
  CGRPC__LB_ROUND_ROBIN = 1
};

/* retryPolicy (gRFC A6). */
typedef struct cgrpc__retry_policy {
  int max_attempts;           /* 2..5 (larger values are cut to 5) */
  int64_t initial_backoff_ns; /* > 0 */
  int64_t max_backoff_ns;     /* > 0 */
  double backoff_multiplier;  /* > 0 */
  uint32_t retryable_codes;   /* bit (1 << code) per retryable status */
} cgrpc__retry_policy;

/* One methodConfig entry. */
typedef struct cgrpc__method_config {
  int64_t timeout_ns;         /* 0: none */
  int wait_for_ready;         /* -1: not set; 0 or 1 */
  int64_t max_request_bytes;  /* -1: not set */
  int64_t max_response_bytes; /* -1: not set */
  int has_retry_policy;
  cgrpc__retry_policy retry;
} cgrpc__method_config;

typedef struct cgrpc__service_config cgrpc__service_config;

/*
 * Parses |json|.  Returns the config (one reference), or NULL with the
 * reason in |err| (|err_size| bytes): a JSON syntax error with its line
 * and column, or the path of the field that is wrong and why
 * ("methodConfig[0].retryPolicy.maxAttempts: must be an integer of at
 * least 2").  Out of memory: NULL with "out of memory".
 */
cgrpc__service_config *cgrpc__service_config_parse(const char *json, char *err,
                                                   size_t err_size);

void cgrpc__service_config_ref(cgrpc__service_config *sc);
/* NULL does nothing. */
void cgrpc__service_config_unref(cgrpc__service_config *sc);

/*
 * The method config for |path| ("/package.Service/Method"): the entry that
 * names the method, else the one that names its service, else the default
 * entry (a name with neither), else NULL.  |sc| may be NULL.
 */
const cgrpc__method_config *
cgrpc__service_config_method(const cgrpc__service_config *sc, const char *path);

/* The load-balancing policy the config names (CGRPC__LB_*), or
 * CGRPC__LB_UNSET (none named, or |sc| is NULL). */
int cgrpc__service_config_lb_policy(const cgrpc__service_config *sc);

/* retryThrottling: returns 1 and the values (maxTokens and tokenRatio in
 * thousandths, as gRFC A6 keeps them) when it is set, else 0. */
int cgrpc__service_config_throttling(const cgrpc__service_config *sc,
                                     int *max_tokens_milli,
                                     int *token_ratio_milli);

#endif /* CGRPC_CLIENT_SERVICE_CONFIG_H */
