/* SPDX-License-Identifier: MIT */
#include "client/service_config.h"

#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cgrpc/status.h"
#include "util/mem.h"

/* Which methods an entry of |configs| applies to. */
typedef struct sc_name {
  char *service; /* NULL: every service (the default entry) */
  char *method;  /* NULL: every method of |service| */
  size_t config; /* index into configs */
} sc_name;

struct cgrpc__service_config {
  atomic_int refs;
  cgrpc__method_config *configs;
  size_t n_configs;
  sc_name *names;
  size_t n_names;
  int lb_policy;
  int has_throttling;
  int max_tokens_milli, token_ratio_milli;
};

/* The parse in progress: the first error wins. */
typedef struct parser {
  char *err;
  size_t err_size;
  int failed;
} parser;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int
fail(parser *p, const char *path, const char *fmt, ...) {
  va_list ap;
  size_t n;
  if (p->failed)
    return -1;
  p->failed = 1;
  n = (size_t)snprintf(p->err, p->err_size, "%s: ", path);
  if (n < p->err_size) {
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->err_size - n, fmt, ap);
    va_end(ap);
  }
  return -1;
}

static int nomem(parser *p) {
  if (!p->failed) {
    p->failed = 1;
    snprintf(p->err, p->err_size, "out of memory");
  }
  return -1;
}

/* Formats a field's path into |out| (cut short if it must be: it only
 * names the field in a message). */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
pathf(char *out, size_t size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out, size, fmt, ap);
  va_end(ap);
}

/* |path| + "." + |field|. */
static void join(char *out, size_t size, const char *path, const char *field) {
  pathf(out, size, "%s.%s", path, field);
}

/*
 * A google.protobuf.Duration in JSON: decimal seconds with up to 9
 * fractional digits and an "s" ("1.5s", "0.000000001s"); must be above 0
 * unless |zero_ok|.  Returns 0 with |*ns| set, or -1 (failed).
 */
static int parse_duration(parser *p, const char *path, const json_t *v,
                          int zero_ok, int64_t *ns) {
  const char *s = json_string_value(v), *q;
  int64_t secs = 0, frac = 0;
  int digits = 0, frac_digits = 0;
  if (!s)
    return fail(p, path, "must be a duration string such as \"1.5s\"");
  for (q = s; isdigit((unsigned char)*q); q++, digits++) {
    if (secs > (INT64_MAX / 1000000000 - 9) / 10)
      return fail(p, path, "\"%s\" is too long a duration", s);
    secs = secs * 10 + (*q - '0');
  }
  if (*q == '.')
    for (q++; isdigit((unsigned char)*q) && frac_digits < 10;
         q++, frac_digits++)
      frac = frac * 10 + (*q - '0');
  if (!digits || frac_digits > 9 || q[0] != 's' || q[1] != '\0')
    return fail(p, path,
                "\"%s\" is not a duration (decimal seconds and \"s\", at "
                "most 9 fractional digits, such as \"1.5s\")",
                s);
  for (; frac_digits < 9; frac_digits++)
    frac *= 10;
  *ns = secs * 1000000000 + frac;
  if (*ns == 0 && !zero_ok)
    return fail(p, path, "must be above 0s");
  return 0;
}

/* A count in a UInt32Value: a JSON integer, or a string of digits. */
static int parse_uint32(parser *p, const char *path, const json_t *v,
                        int64_t *out) {
  json_int_t n;
  if (json_is_integer(v)) {
    n = json_integer_value(v);
  } else if (json_is_string(v)) {
    const char *s = json_string_value(v);
    char *end;
    long long ll = strtoll(s, &end, 10);
    if (!*s || *end)
      return fail(p, path, "\"%s\" is not an integer", s);
    n = (json_int_t)ll;
  } else {
    return fail(p, path, "must be an integer");
  }
  if (n < 0 || n > (json_int_t)UINT32_MAX)
    return fail(p, path, "must be between 0 and 4294967295");
  *out = (int64_t)n;
  return 0;
}

/* A status code by its name ("UNAVAILABLE") or number. */
static int parse_code(parser *p, const char *path, const json_t *v, int *code) {
  if (json_is_integer(v)) {
    json_int_t n = json_integer_value(v);
    if (n < 0 || n > 16)
      return fail(p, path, "%lld is not a status code (0-16)", (long long)n);
    *code = (int)n;
    return 0;
  }
  if (json_is_string(v)) {
    for (int c = 0; c <= 16; c++) {
      if (strcmp(json_string_value(v), cgrpc_status_code_name(c)) == 0) {
        *code = c;
        return 0;
      }
    }
    return fail(p, path,
                "\"%s\" is not a status code name (such as "
                "\"UNAVAILABLE\")",
                json_string_value(v));
  }
  return fail(p, path, "must be a status code name or number");
}

static int parse_retry_policy(parser *p, const char *path, const json_t *rp,
                              cgrpc__retry_policy *r) {
  char sub[160];
  const json_t *v, *codes;
  size_t i;
  if (!json_is_object(rp))
    return fail(p, path, "must be an object");
  join(sub, sizeof sub, path, "maxAttempts");
  v = json_object_get(rp, "maxAttempts");
  if (!json_is_integer(v) || json_integer_value(v) < 2)
    return fail(p, sub, "must be an integer of at least 2");
  /* gRFC A6: values above 5 are treated as 5. */
  r->max_attempts = json_integer_value(v) > 5 ? 5 : (int)json_integer_value(v);
  join(sub, sizeof sub, path, "initialBackoff");
  if (parse_duration(p, sub, json_object_get(rp, "initialBackoff"), 0,
                     &r->initial_backoff_ns) != 0)
    return -1;
  join(sub, sizeof sub, path, "maxBackoff");
  if (parse_duration(p, sub, json_object_get(rp, "maxBackoff"), 0,
                     &r->max_backoff_ns) != 0)
    return -1;
  join(sub, sizeof sub, path, "backoffMultiplier");
  v = json_object_get(rp, "backoffMultiplier");
  if (!json_is_number(v) || json_number_value(v) <= 0)
    return fail(p, sub, "must be a number above 0");
  r->backoff_multiplier = json_number_value(v);
  join(sub, sizeof sub, path, "retryableStatusCodes");
  codes = json_object_get(rp, "retryableStatusCodes");
  if (!json_is_array(codes) || json_array_size(codes) == 0)
    return fail(p, sub, "must be a non-empty list of status codes");
  r->retryable_codes = 0;
  for (i = 0; i < json_array_size(codes); i++) {
    char item[180];
    int code = 0;
    pathf(item, sizeof item, "%s[%zu]", sub, i);
    if (parse_code(p, item, json_array_get(codes, i), &code) != 0)
      return -1;
    if (code == CGRPC_STATUS_OK)
      return fail(p, item, "OK cannot be retried");
    r->retryable_codes |= 1u << code;
  }
  return 0;
}

/* Adds the names of methodConfig[|index|] (its "name" list). */
static int parse_names(parser *p, const char *path, const json_t *names,
                       size_t index, cgrpc__service_config *sc) {
  size_t i, j;
  if (!json_is_array(names) || json_array_size(names) == 0)
    return fail(p, path, "must be a non-empty list of names");
  for (i = 0; i < json_array_size(names); i++) {
    const json_t *n = json_array_get(names, i);
    const json_t *svc = json_object_get(n, "service");
    const json_t *meth = json_object_get(n, "method");
    const char *s = json_string_value(svc), *m = json_string_value(meth);
    char item[180];
    sc_name *grown;
    pathf(item, sizeof item, "%s[%zu]", path, i);
    if (!json_is_object(n))
      return fail(p, item, "must be an object");
    if ((svc && !s) || (meth && !m))
      return fail(p, item, "service and method must be strings");
    if (s && !*s)
      s = NULL;
    if (m && !*m)
      m = NULL;
    if (m && !s)
      return fail(p, item, "a method needs its service");
    for (j = 0; j < sc->n_names; j++) {
      const sc_name *o = &sc->names[j];
      if ((!o->service == !s) && (!s || strcmp(o->service, s) == 0) &&
          (!o->method == !m) && (!m || strcmp(o->method, m) == 0))
        return fail(p, item, "names %s%s%s again (each name may appear once)",
                    s ? s : "the default", m ? "/" : "", m ? m : "");
    }
    grown = cgrpc__realloc(sc->names, (sc->n_names + 1) * sizeof *grown);
    if (!grown)
      return nomem(p);
    sc->names = grown;
    grown = &sc->names[sc->n_names];
    memset(grown, 0, sizeof *grown);
    grown->config = index;
    if ((s && !(grown->service = cgrpc__strdup(s))) ||
        (m && !(grown->method = cgrpc__strdup(m)))) {
      cgrpc__free(grown->service);
      return nomem(p);
    }
    sc->n_names++;
  }
  return 0;
}

static int parse_method_config(parser *p, const char *path, const json_t *mc,
                               size_t index, cgrpc__service_config *sc) {
  cgrpc__method_config *c = &sc->configs[index];
  char sub[160];
  const json_t *v;
  if (!json_is_object(mc))
    return fail(p, path, "must be an object");
  join(sub, sizeof sub, path, "name");
  if (parse_names(p, sub, json_object_get(mc, "name"), index, sc) != 0)
    return -1;
  if ((v = json_object_get(mc, "timeout"))) {
    join(sub, sizeof sub, path, "timeout");
    if (parse_duration(p, sub, v, 0, &c->timeout_ns) != 0)
      return -1;
  }
  if ((v = json_object_get(mc, "waitForReady"))) {
    join(sub, sizeof sub, path, "waitForReady");
    if (!json_is_boolean(v))
      return fail(p, sub, "must be true or false");
    c->wait_for_ready = json_is_true(v);
  }
  if ((v = json_object_get(mc, "maxRequestMessageBytes"))) {
    join(sub, sizeof sub, path, "maxRequestMessageBytes");
    if (parse_uint32(p, sub, v, &c->max_request_bytes) != 0)
      return -1;
  }
  if ((v = json_object_get(mc, "maxResponseMessageBytes"))) {
    join(sub, sizeof sub, path, "maxResponseMessageBytes");
    if (parse_uint32(p, sub, v, &c->max_response_bytes) != 0)
      return -1;
  }
  if ((v = json_object_get(mc, "retryPolicy"))) {
    join(sub, sizeof sub, path, "retryPolicy");
    if (json_object_get(mc, "hedgingPolicy"))
      return fail(p, path, "has both retryPolicy and hedgingPolicy");
    if (parse_retry_policy(p, sub, v, &c->retry) != 0)
      return -1;
    c->has_retry_policy = 1;
  }
  return 0;
}

/* A number in (0, max] with at most 3 decimals, in thousandths. */
static int parse_milli(parser *p, const char *path, const json_t *v, double max,
                       int *out) {
  double d;
  if (!json_is_number(v))
    return fail(p, path, "must be a number");
  d = json_number_value(v);
  if (!(d > 0) || d > max)
    return fail(p, path, "must be above 0 and at most %g", max);
  *out = (int)(d * 1000 + 0.5);
  if (*out == 0)
    *out = 1;
  return 0;
}

static int parse_throttling(parser *p, const json_t *t,
                            cgrpc__service_config *sc) {
  if (!json_is_object(t))
    return fail(p, "retryThrottling", "must be an object");
  if (parse_milli(p, "retryThrottling.maxTokens",
                  json_object_get(t, "maxTokens"), 1000,
                  &sc->max_tokens_milli) != 0 ||
      parse_milli(p, "retryThrottling.tokenRatio",
                  json_object_get(t, "tokenRatio"), 1e9,
                  &sc->token_ratio_milli) != 0)
    return -1;
  sc->has_throttling = 1;
  return 0;
}

/* The first policy of loadBalancingConfig that this library has. */
static int parse_lb_config(parser *p, const json_t *list,
                           cgrpc__service_config *sc) {
  size_t i;
  if (!json_is_array(list))
    return fail(p, "loadBalancingConfig", "must be a list");
  for (i = 0; i < json_array_size(list); i++) {
    const json_t *entry = json_array_get(list, i);
    char item[64];
    pathf(item, sizeof item, "loadBalancingConfig[%zu]", i);
    if (!json_is_object(entry) || json_object_size(entry) != 1)
      return fail(p, item, "must be an object with one policy");
    if (json_object_get(entry, "pick_first")) {
      sc->lb_policy = CGRPC__LB_PICK_FIRST;
      return 0;
    }
    if (json_object_get(entry, "round_robin")) {
      sc->lb_policy = CGRPC__LB_ROUND_ROBIN;
      return 0;
    }
  }
  return fail(p, "loadBalancingConfig",
              "names no policy this library has (pick_first, round_robin)");
}

static int parse_lb_policy_name(parser *p, const json_t *v,
                                cgrpc__service_config *sc) {
  const char *s = json_string_value(v);
  if (s && strcasecmp(s, "pick_first") == 0)
    sc->lb_policy = CGRPC__LB_PICK_FIRST;
  else if (s && strcasecmp(s, "round_robin") == 0)
    sc->lb_policy = CGRPC__LB_ROUND_ROBIN;
  else
    return fail(p, "loadBalancingPolicy",
                "must be \"pick_first\" or \"round_robin\"");
  return 0;
}

static int parse_root(parser *p, const json_t *root,
                      cgrpc__service_config *sc) {
  const json_t *v;
  size_t i;
  if (!json_is_object(root))
    return fail(p, "(top level)", "must be an object");
  if ((v = json_object_get(root, "methodConfig"))) {
    if (!json_is_array(v))
      return fail(p, "methodConfig", "must be a list");
    sc->n_configs = json_array_size(v);
    sc->configs =
        cgrpc__calloc(sc->n_configs ? sc->n_configs : 1, sizeof *sc->configs);
    if (!sc->configs)
      return nomem(p);
    for (i = 0; i < sc->n_configs; i++) {
      char path[40];
      sc->configs[i].wait_for_ready = -1;
      sc->configs[i].max_request_bytes = -1;
      sc->configs[i].max_response_bytes = -1;
      pathf(path, sizeof path, "methodConfig[%zu]", i);
      if (parse_method_config(p, path, json_array_get(v, i), i, sc) != 0)
        return -1;
    }
  }
  if ((v = json_object_get(root, "retryThrottling")) &&
      parse_throttling(p, v, sc) != 0)
    return -1;
  /* loadBalancingConfig wins over the older loadBalancingPolicy. */
  if ((v = json_object_get(root, "loadBalancingConfig")))
    return parse_lb_config(p, v, sc);
  if ((v = json_object_get(root, "loadBalancingPolicy")))
    return parse_lb_policy_name(p, v, sc);
  return 0;
}

static void config_free(cgrpc__service_config *sc) {
  size_t i;
  for (i = 0; i < sc->n_names; i++) {
    cgrpc__free(sc->names[i].service);
    cgrpc__free(sc->names[i].method);
  }
  cgrpc__free(sc->names);
  cgrpc__free(sc->configs);
  cgrpc__free(sc);
}

cgrpc__service_config *cgrpc__service_config_parse(const char *json, char *err,
                                                   size_t err_size) {
  parser p = {err, err_size, 0};
  cgrpc__service_config *sc;
  json_error_t jerr;
  json_t *root;
  if (!json) {
    snprintf(err, err_size, "no service config (NULL)");
    return NULL;
  }
  root = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) {
    snprintf(err, err_size, "not JSON: %s (line %d, column %d)", jerr.text,
             jerr.line, jerr.column);
    return NULL;
  }
  sc = cgrpc__calloc(1, sizeof *sc);
  if (!sc) {
    json_decref(root);
    nomem(&p);
    return NULL;
  }
  atomic_init(&sc->refs, 1);
  sc->lb_policy = CGRPC__LB_UNSET;
  if (parse_root(&p, root, sc) != 0) {
    config_free(sc);
    sc = NULL;
  }
  json_decref(root);
  return sc;
}

void cgrpc__service_config_ref(cgrpc__service_config *sc) {
  atomic_fetch_add(&sc->refs, 1);
}

void cgrpc__service_config_unref(cgrpc__service_config *sc) {
  if (sc && atomic_fetch_sub(&sc->refs, 1) == 1)
    config_free(sc);
}

const cgrpc__method_config *
cgrpc__service_config_method(const cgrpc__service_config *sc,
                             const char *path) {
  const sc_name *by_service = NULL, *by_default = NULL;
  const char *slash;
  size_t i, svc_len;
  if (!sc || !path || path[0] != '/' || !(slash = strchr(path + 1, '/')))
    return NULL;
  svc_len = (size_t)(slash - (path + 1));
  for (i = 0; i < sc->n_names; i++) {
    const sc_name *n = &sc->names[i];
    if (!n->service) {
      by_default = n;
    } else if (strlen(n->service) == svc_len &&
               memcmp(n->service, path + 1, svc_len) == 0) {
      if (!n->method)
        by_service = n;
      else if (strcmp(n->method, slash + 1) == 0)
        return &sc->configs[n->config];
    }
  }
  if (by_service)
    return &sc->configs[by_service->config];
  return by_default ? &sc->configs[by_default->config] : NULL;
}

int cgrpc__service_config_lb_policy(const cgrpc__service_config *sc) {
  return sc ? sc->lb_policy : CGRPC__LB_UNSET;
}

int cgrpc__service_config_throttling(const cgrpc__service_config *sc,
                                     int *max_tokens_milli,
                                     int *token_ratio_milli) {
  if (!sc || !sc->has_throttling)
    return 0;
  *max_tokens_milli = sc->max_tokens_milli;
  *token_ratio_milli = sc->token_ratio_milli;
  return 1;
}
