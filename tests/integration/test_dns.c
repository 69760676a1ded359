/* SPDX-License-Identifier: MIT */
/*
 * Name resolution: names looked up through a DNS responder on loopback
 * (dns_server.c) named in the target ("dns://127.0.0.1:PORT/name:port"),
 * /etc/hosts, IP address lists; and that a slow or silent DNS server
 * blocks nothing else on the channel, is bounded, and may be abandoned by
 * deleting the channel.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "dns_server.h"
#include "harness.h"

/* An echo server and a DNS responder (not started: the test fills it). */
typedef struct dns_fixture {
  it_server srv;
  it_dns_server dns;
} dns_fixture;

static int dns_setup(void **state) {
  dns_fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  it_watchdog_setup(state);
  assert_int_equal(it_server_start(&f->srv, NULL, 0), 0);
  it_dns_init(&f->dns);
  *state = f;
  return 0;
}

static int dns_teardown(void **state) {
  dns_fixture *f = *state;
  it_dns_stop(&f->dns);
  it_server_stop(&f->srv, 1000);
  free(f);
  return it_watchdog_teardown(state);
}

static void add_name(it_dns_server *d, const char *name, const char *a0,
                     const char *a1) {
  it_dns_name *n = &d->names[d->n_names++];
  n->name = name;
  n->a[0] = a0;
  n->a[1] = a1;
}

/* A channel to |name| through the fixture's DNS server, with a lookup
 * bound of |dns_timeout_ms| (0: the default). */
static cgrpc_channel *channel_via_dns(dns_fixture *f, const char *name,
                                      int64_t dns_timeout_ms) {
  char target[160];
  cgrpc_channel_options *o;
  cgrpc_channel *ch = NULL;
  assert_int_equal(it_dns_start(&f->dns), 0);
  snprintf(target, sizeof target, "dns://127.0.0.1:%d/%s:%d", f->dns.port,
           name, f->srv.port);
  assert_int_equal(cgrpc_channel_options_new(&o), 0);
  if (dns_timeout_ms)
    cgrpc_channel_options_set_dns_timeout_ms(o, dns_timeout_ms);
  assert_int_equal(cgrpc_channel_new(&ch, target, o), 0);
  cgrpc_channel_options_del(o);
  return ch;
}

static cgrpc_status_code echo_timeout(cgrpc_channel *ch, int64_t timeout_ms,
                                      cgrpc_status *status) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_call_options opts = {0};
  cgrpc_status_code code;
  req.message = "hi";
  opts.timeout_ms = timeout_ms;
  code = cgrpc__test__echo_service__echo__call(ch, &req, &reply, &opts,
                                               status);
  if (reply)
    protobuf_c_message_free_unpacked(&reply->base, NULL);
  return code;
}

/* A DNS server answering for |name| (after |delay_ms|, or never), a
 * channel through it, and one blocking call of |timeout_ms| on it whose
 * outcome goes to |*st|; returns how long the call took. */
static int64_t echo_via(dns_fixture *f, const char *name, int delay_ms,
                        int never, int64_t dns_timeout_ms, int64_t timeout_ms,
                        cgrpc_channel **ch, cgrpc_status *st) {
  int64_t t0;
  add_name(&f->dns, name, "127.0.0.1", NULL);
  f->dns.delay_ms = delay_ms;
  f->dns.never = never;
  *ch = channel_via_dns(f, name, dns_timeout_ms);
  t0 = it_now_ms();
  echo_timeout(*ch, timeout_ms, st);
  return it_now_ms() - t0;
}

static void start_echo(cgrpc_channel *ch, int64_t timeout_ms, it_async *a) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  cgrpc_call_options opts = {0};
  req.message = "async";
  opts.timeout_ms = timeout_ms;
  it_async_init(a);
  assert_int_equal(cgrpc__test__echo_service__echo__start(
                       ch, &req, &opts, it_async_done, a, NULL),
                   0);
}

static void assert_message_has(const cgrpc_status *st, const char *part) {
  if (!st->message || !strstr(st->message, part))
    fail_msg("message \"%s\" lacks \"%s\"",
             st->message ? st->message : "(none)", part);
}

/* Two A records, the first with nothing listening: the call goes to the
 * second; :authority is the name and port of the target. */
static void test_dns_several_addresses(void **state) {
  dns_fixture *f = *state;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_status st = {0};
  char authority[64];
  cgrpc_channel *ch;
  add_name(&f->dns, "multi.test", "127.0.0.2", "127.0.0.1");
  ch = channel_via_dns(f, "multi.test", 0);
  assert_int_equal(it_echo(ch, "x", &reply, &st), CGRPC_STATUS_OK);
  snprintf(authority, sizeof authority, "multi.test:%d", f->srv.port);
  assert_string_equal(reply->authority, authority);
  protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_status_clear(&st);
  assert_true(atomic_load(&f->dns.questions) >= 1);
  /* The next call reuses the connection: no new question. */
  {
    int asked = atomic_load(&f->dns.questions);
    assert_int_equal(echo_timeout(ch, 5000, &st), CGRPC_STATUS_OK);
    cgrpc_status_clear(&st);
    assert_int_equal(atomic_load(&f->dns.questions), asked);
  }
  cgrpc_channel_del(ch);
}

/* An unknown name: UNAVAILABLE, and the message names it. */
static void test_dns_nxdomain(void **state) {
  dns_fixture *f = *state;
  cgrpc_status st = {0};
  cgrpc_channel *ch;
  add_name(&f->dns, "other.test", "127.0.0.1", NULL);
  ch = channel_via_dns(f, "missing.test", 0);
  echo_timeout(ch, 10000, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_UNAVAILABLE);
  assert_message_has(&st, "missing.test");
  assert_message_has(&st, "not found");
  cgrpc_status_clear(&st);
  cgrpc_channel_del(ch);
}

/* A DNS server that answers after 2 s: meanwhile the loop runs, so a call
 * with a 200 ms deadline ends on time; the call that waits gets through
 * once the answer arrives. */
static void test_dns_slow_answer(void **state) {
  dns_fixture *f = *state;
  cgrpc_status st = {0};
  cgrpc_channel *ch;
  it_async slow;
  int64_t t0, elapsed;
  add_name(&f->dns, "slow.test", "127.0.0.1", NULL);
  f->dns.delay_ms = 2000;
  ch = channel_via_dns(f, "slow.test", 0);
  t0 = it_now_ms();
  start_echo(ch, 20000, &slow);
  echo_timeout(ch, 200, &st);
  elapsed = it_now_ms() - t0;
  IT_ASSERT_STATUS(st, CGRPC_STATUS_DEADLINE_EXCEEDED);
  cgrpc_status_clear(&st);
  if (elapsed > 1200)
    fail_msg("a 200 ms deadline ended after %lld ms", (long long)elapsed);
  assert_int_equal(it_async_wait(&slow, IT_WAIT_MS), 1);
  IT_ASSERT_STATUS(slow.status, CGRPC_STATUS_OK);
  assert_true(slow.done_at_ms - t0 >= 1800);
  it_async_fini(&slow);
  cgrpc_channel_del(ch);
}

/* A DNS server that never answers: the lookup's bound fails the call with
 * UNAVAILABLE long before its own deadline. */
static void test_dns_never_answers(void **state) {
  dns_fixture *f = *state;
  cgrpc_status st = {0};
  cgrpc_channel *ch;
  int64_t elapsed = echo_via(f, "silent.test", 0, 1, 1000, 20000, &ch, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_UNAVAILABLE);
  assert_message_has(&st, "silent.test");
  assert_message_has(&st, "timed out");
  cgrpc_status_clear(&st);
  assert_true(elapsed >= 900);
  if (elapsed > 8000)
    fail_msg("the lookup failed after %lld ms", (long long)elapsed);
  assert_true(atomic_load(&f->dns.questions) >= 1);
  cgrpc_channel_del(ch);
}

/* The channel deleted while its lookup waits: the call ends CANCELLED, the
 * delete returns at once, nothing leaks (ASan). */
static void test_dns_channel_deleted_mid_lookup(void **state) {
  dns_fixture *f = *state;
  cgrpc_channel *ch;
  it_async a;
  int64_t t0;
  add_name(&f->dns, "silent.test", "127.0.0.1", NULL);
  f->dns.never = 1;
  ch = channel_via_dns(f, "silent.test", 0);
  start_echo(ch, 20000, &a);
  /* The question is out: the lookup is in flight. */
  for (t0 = it_now_ms(); atomic_load(&f->dns.questions) == 0 &&
                         it_now_ms() - t0 < IT_WAIT_MS;)
    it_sleep_ms(5);
  assert_true(atomic_load(&f->dns.questions) >= 1);
  t0 = it_now_ms();
  cgrpc_channel_del(ch);
  assert_true(it_now_ms() - t0 < 2000);
  assert_int_equal(it_async_wait(&a, IT_WAIT_MS), 1);
  IT_ASSERT_STATUS(a.status, CGRPC_STATUS_CANCELLED);
  it_async_fini(&a);
}

/* "localhost" comes from /etc/hosts (c-ares reads it first). */
static void test_dns_localhost(void **state) {
  dns_fixture *f = *state;
  char target[64];
  cgrpc_status st = {0};
  cgrpc_channel *ch = NULL;
  snprintf(target, sizeof target, "localhost:%d", f->srv.port);
  assert_int_equal(cgrpc_channel_new(&ch, target, NULL), 0);
  assert_int_equal(echo_timeout(ch, 10000, &st), CGRPC_STATUS_OK);
  cgrpc_status_clear(&st);
  cgrpc_channel_del(ch);
}

/* "ipv4:" with a dead address first: no lookup, the second one answers. */
static void test_dns_ipv4_list(void **state) {
  dns_fixture *f = *state;
  char target[96];
  cgrpc_status st = {0};
  cgrpc_channel *ch = NULL;
  snprintf(target, sizeof target, "ipv4:127.0.0.1:%d,127.0.0.1:%d",
           it_dead_port(), f->srv.port);
  assert_int_equal(cgrpc_channel_new(&ch, target, NULL), 0);
  assert_int_equal(echo_timeout(ch, 10000, &st), CGRPC_STATUS_OK);
  cgrpc_status_clear(&st);
  cgrpc_channel_del(ch);
}

/* Malformed targets fail at creation. */
static void test_dns_malformed(void **state) {
  static const char *const bad[] = {
      "dns://not-an-ip/foo.test:1", "dns://127.0.0.1/", "ipv4:::1:5",
      "ipv6:127.0.0.1:1", "foo.test:99999", "xds:///foo"};
  size_t i;
  (void)state;
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cgrpc_channel *ch = NULL;
    assert_int_equal(cgrpc_channel_new(&ch, bad[i], NULL),
                     CGRPC_ERR_INVALID_ARGUMENT);
    assert_null(ch);
  }
}

/* An EchoService server on |addr| ("127.0.0.2:PORT", "[::1]:PORT");
 * NULL when it cannot listen there. */
static cgrpc_server *server_on(const char *addr, echo_stats *stats) {
  cgrpc_server *s = NULL;
  echo_stats_reset(stats);
  if (cgrpc_server_new(&s, NULL) != 0)
    return NULL;
  if (cgrpc_server_add_insecure_port(s, addr, NULL) != 0 ||
      echo_service_register(s, stats) != 0 || cgrpc_server_start(s) != 0) {
    cgrpc_server_del(s);
    return NULL;
  }
  return s;
}

static void server_gone(cgrpc_server *s) {
  cgrpc_server_shutdown(s, 0);
  cgrpc_server_del(s);
}

/* A channel to |name| with lookups at most |interval_ms| apart (-1: the
 * default). */
static cgrpc_channel *channel_interval(dns_fixture *f, const char *name,
                                       int64_t interval_ms) {
  char target[160];
  cgrpc_channel_options *o;
  cgrpc_channel *ch = NULL;
  snprintf(target, sizeof target, "dns://127.0.0.1:%d/%s:%d", f->dns.port,
           name, f->srv.port);
  assert_int_equal(cgrpc_channel_options_new(&o), 0);
  cgrpc_channel_options_set_dns_min_resolution_interval_ms(o, interval_ms);
  assert_int_equal(cgrpc_channel_new(&ch, target, o), 0);
  cgrpc_channel_options_del(o);
  return ch;
}

/* Calls until one succeeds (each bounded), for at most |ms|; returns 1
 * when one did. */
static int until_ok(cgrpc_channel *ch, int ms) {
  int64_t end = it_now_ms() + ms;
  while (it_now_ms() < end) {
    if (echo_timeout(ch, 1000, NULL) == CGRPC_STATUS_OK)
      return 1;
    it_sleep_ms(20);
  }
  return 0;
}

/* The server moves to another address: once its connection drops, the
 * name is looked up again and the channel follows it. */
static void test_dns_reresolves_moved_server(void **state) {
  dns_fixture *f = *state;
  echo_stats b_stats;
  cgrpc_server *b;
  cgrpc_channel *ch;
  char addr[64];
  int q0;
  snprintf(addr, sizeof addr, "127.0.0.2:%d", f->srv.port);
  b = server_on(addr, &b_stats);
  assert_non_null(b);
  add_name(&f->dns, "moving.test", "127.0.0.1", NULL);
  assert_int_equal(it_dns_start(&f->dns), 0);
  ch = channel_interval(f, "moving.test", 100);
  assert_int_equal(echo_timeout(ch, 5000, NULL), CGRPC_STATUS_OK);
  assert_int_equal(atomic_load(&f->srv.stats.calls), 1);
  q0 = atomic_load(&f->dns.questions);
  it_dns_set(&f->dns, "moving.test", "127.0.0.2", NULL);
  it_server_stop(&f->srv, 0);
  it_sleep_ms(150); /* past the minimum interval */
  assert_true(until_ok(ch, 10000));
  assert_true(atomic_load(&b_stats.calls) >= 1);
  assert_true(atomic_load(&f->dns.questions) > q0);
  cgrpc_channel_del(ch);
  server_gone(b);
}

/* gRPC's 30 s between lookups: a dropped connection does not make the
 * channel ask again sooner; it reconnects to the address it has. */
static void test_dns_reresolution_rate_limited(void **state) {
  dns_fixture *f = *state;
  cgrpc_channel *ch;
  int q0, port = f->srv.port, i;
  add_name(&f->dns, "steady.test", "127.0.0.1", NULL);
  assert_int_equal(it_dns_start(&f->dns), 0);
  ch = channel_interval(f, "steady.test", -1);
  assert_int_equal(echo_timeout(ch, 5000, NULL), CGRPC_STATUS_OK);
  q0 = atomic_load(&f->dns.questions);
  assert_true(q0 >= 1);
  for (i = 0; i < 3; i++) { /* three drops */
    it_server_stop(&f->srv, 0);
    assert_int_equal(it_server_start(&f->srv, NULL, port), 0);
    assert_true(until_ok(ch, 10000));
  }
  assert_int_equal(atomic_load(&f->dns.questions), q0);
  cgrpc_channel_del(ch);
}

/* A name with only an AAAA record, served on [::1]. */
static void test_dns_aaaa_only(void **state) {
  dns_fixture *f = *state;
  echo_stats stats;
  cgrpc_server *six;
  cgrpc_channel *ch;
  cgrpc_status st = {0};
  char addr[64];
  snprintf(addr, sizeof addr, "[::1]:%d", f->srv.port);
  six = server_on(addr, &stats);
  if (!six) {
    print_message("  no IPv6 loopback here: skipped\n");
    skip();
  }
  {
    it_dns_name *n = &f->dns.names[f->dns.n_names++];
    n->name = "six.test";
    n->aaaa[0] = "::1";
  }
  assert_int_equal(it_dns_start(&f->dns), 0);
  ch = channel_interval(f, "six.test", -1);
  echo_timeout(ch, 5000, &st);
  IT_ASSERT_STATUS(st, CGRPC_STATUS_OK);
  cgrpc_status_clear(&st);
  assert_int_equal(atomic_load(&stats.calls), 1);
  assert_int_equal(atomic_load(&f->srv.stats.calls), 0);
  cgrpc_channel_del(ch);
  server_gone(six);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, dns_setup, dns_teardown)
      T(test_dns_several_addresses),
      T(test_dns_nxdomain),
      T(test_dns_slow_answer),
      T(test_dns_never_answers),
      T(test_dns_channel_deleted_mid_lookup),
      T(test_dns_localhost),
      T(test_dns_ipv4_list),
      T(test_dns_malformed),
      T(test_dns_reresolves_moved_server),
      T(test_dns_reresolution_rate_limited),
      T(test_dns_aaaa_only),
#undef T
  };
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
