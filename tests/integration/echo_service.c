/* SPDX-License-Identifier: MIT */
#include "echo_service.h"

#include <string.h>
#include <time.h>

void echo_stats_reset(echo_stats *stats) {
  atomic_store(&stats->calls, 0);
  atomic_store(&stats->in_flight, 0);
  atomic_store(&stats->cancelled_seen, 0);
  atomic_store(&stats->max_in_flight, 0);
}

static void sleep_ms(int ms) {
  struct timespec ts;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps up to |ms| in slices; returns nonzero if the call got cancelled. */
static int sleep_unless_cancelled(cgrpc_server_ctx *ctx, int ms) {
  int64_t end = now_ms() + ms;
  for (;;) {
    int64_t left;
    if (cgrpc_server_ctx_is_cancelled(ctx))
      return 1;
    left = end - now_ms();
    if (left <= 0)
      return 0;
    sleep_ms(left < ECHO_SLEEP_SLICE_MS ? (int)left : ECHO_SLEEP_SLICE_MS);
  }
}

static int ends_with_bin(const char *key) {
  size_t n = strlen(key);
  return n >= 4 && memcmp(key + n - 4, "-bin", 4) == 0;
}

/* Echoes the request metadata; returns 0 or the first error other than a
 * rejected key. */
static int echo_metadata(cgrpc_server_ctx *ctx) {
  const cgrpc_metadata_array *md = cgrpc_server_ctx_metadata(ctx);
  size_t i, n = cgrpc_metadata_array_count(md);
  for (i = 0; i < n; i++) {
    const char *key;
    const uint8_t *value;
    size_t len, klen;
    char tkey[256];
    int bin, rv;
    if (cgrpc_metadata_array_at(md, i, &key, &value, &len) != 0)
      return CGRPC_ERR_INTERNAL;
    bin = ends_with_bin(key);
    klen = strlen(key);
    if (klen + sizeof "-trailer" > sizeof tkey)
      return CGRPC_ERR_INVALID_ARGUMENT;
    if (bin) {
      memcpy(tkey, key, klen - 4);
      memcpy(tkey + klen - 4, "-trailer-bin", sizeof "-trailer-bin");
      rv = cgrpc_server_ctx_add_initial_metadata_bin(ctx, key, value, len);
      if (rv == 0)
        rv = cgrpc_server_ctx_add_trailing_metadata_bin(ctx, tkey, value, len);
    } else {
      memcpy(tkey, key, klen);
      memcpy(tkey + klen, "-trailer", sizeof "-trailer");
      rv = cgrpc_server_ctx_add_initial_metadata(ctx, key, (const char *)value);
      if (rv == 0)
        rv = cgrpc_server_ctx_add_trailing_metadata(ctx, tkey,
                                                    (const char *)value);
    }
    /* Keys the application may not send (user-agent reaches the handler
     * but is reserved for responses) are skipped. */
    if (rv != 0 && rv != CGRPC_ERR_INVALID_ARGUMENT)
      return rv;
  }
  return 0;
}

static void note_in_flight(echo_stats *stats) {
  int now = atomic_fetch_add(&stats->in_flight, 1) + 1;
  int max = atomic_load(&stats->max_in_flight);
  while (now > max &&
         !atomic_compare_exchange_weak(&stats->max_in_flight, &max, now)) {
  }
}

cgrpc_status_code echo_service_echo(cgrpc_server_ctx *ctx,
                                    const Cgrpc__Test__EchoRequest *request,
                                    Cgrpc__Test__EchoReply *reply,
                                    void *user_data) {
  echo_stats *stats = user_data;
  cgrpc_status_code code = CGRPC_STATUS_OK;
  int64_t left;

  if (stats) {
    atomic_fetch_add(&stats->calls, 1);
    note_in_flight(stats);
  }
  if (request->echo_metadata && echo_metadata(ctx) != 0) {
    code = cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_INTERNAL,
                                 "could not echo the request metadata");
    goto out;
  }
  if (request->sleep_ms > 0 && sleep_unless_cancelled(ctx, request->sleep_ms)) {
    if (stats)
      atomic_fetch_add(&stats->cancelled_seen, 1);
    code = cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_CANCELLED,
                                 "cancelled while sleeping");
    goto out;
  }
  if (request->status_code != 0) {
    if (request->status_message && request->status_message[0])
      code = cgrpc_server_ctx_fail(ctx, (cgrpc_status_code)request->status_code,
                                   "%s", request->status_message);
    else
      code = (cgrpc_status_code)request->status_code;
    goto out;
  }

  reply->message = cgrpc_server_ctx_strdup(ctx, request->message);
  if (request->response_size > 0) {
    size_t i, n = (size_t)request->response_size;
    uint8_t *p = cgrpc_server_ctx_alloc(ctx, n);
    if (!p) {
      code = cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_RESOURCE_EXHAUSTED,
                                   "cannot allocate %zu bytes", n);
      goto out;
    }
    for (i = 0; i < n; i++)
      p[i] = echo_payload_byte(i);
    reply->payload.data = p;
    reply->payload.len = n;
  } else {
    /* The request lives until the response has been packed. */
    reply->payload = request->payload;
  }
  reply->peer = cgrpc_server_ctx_strdup(ctx, cgrpc_server_ctx_peer(ctx));
  left = cgrpc_server_ctx_time_remaining_ms(ctx);
  reply->time_remaining_ms = left == INT64_MAX ? -1 : left;
  reply->authority =
      cgrpc_server_ctx_strdup(ctx, cgrpc_server_ctx_authority(ctx));
  reply->method = cgrpc_server_ctx_strdup(ctx, cgrpc_server_ctx_method(ctx));
  if (!reply->message || !reply->peer || !reply->authority || !reply->method)
    code = cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_RESOURCE_EXHAUSTED,
                                 "out of memory");
out:
  if (stats)
    atomic_fetch_sub(&stats->in_flight, 1);
  return code;
}

int echo_service_register(cgrpc_server *server, echo_stats *stats) {
  Cgrpc__Test__EchoService_Servicer servicer;
  memset(&servicer, 0, sizeof servicer);
  servicer.echo = echo_service_echo;
  servicer.unimplemented = NULL;
  return cgrpc__test__echo_service__servicer__register(server, &servicer,
                                                        stats);
}
