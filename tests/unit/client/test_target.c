/* SPDX-License-Identifier: MIT */
/*
 * client/target: gRPC's target names (doc/naming.md) parsed into a name
 * to look up or a list of addresses, the default :authority, and what is
 * wrong with a malformed one.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "cgrpc/error.h"
#include "client/target.h"

/* "1.2.3.4:5" or "[::1]:5" for address |i| of |t|. */
static void addr_text(const cgrpc__target *t, size_t i, char *out,
                      size_t size) {
  char ip[INET6_ADDRSTRLEN];
  const struct sockaddr_storage *ss = &t->addrs[i].ss;
  assert_true(i < t->n_addrs);
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
    assert_int_equal(t->addrs[i].len, sizeof *in);
    inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
    snprintf(out, size, "%s:%u", ip, ntohs(in->sin_port));
  } else {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    assert_int_equal(ss->ss_family, AF_INET6);
    assert_int_equal(t->addrs[i].len, sizeof *in6);
    inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
    snprintf(out, size, "[%s]:%u", ip, ntohs(in6->sin6_port));
  }
}

static void check_dns(const char *text, const char *host, const char *port,
                      const char *server, const char *authority) {
  cgrpc__target t;
  const char *why = "unset";
  print_message("%s\n", text);
  assert_int_equal(cgrpc__target_parse(&t, text, &why), 0);
  assert_null(why);
  assert_int_equal(t.kind, CGRPC__TARGET_DNS);
  assert_string_equal(t.host, host);
  assert_string_equal(t.port, port);
  assert_string_equal(t.dns_server, server);
  assert_string_equal(t.authority, authority);
  assert_int_equal(t.n_addrs, 0);
  cgrpc__target_free(&t);
}

/* |addrs|: the expected addresses, comma-separated, as addr_text writes. */
static void check_addrs(const char *text, const char *addrs,
                        const char *host, const char *authority) {
  cgrpc__target t;
  char got[512] = "", one[80];
  size_t i;
  print_message("%s\n", text);
  assert_int_equal(cgrpc__target_parse(&t, text, NULL), 0);
  assert_int_equal(t.kind, CGRPC__TARGET_ADDRS);
  for (i = 0; i < t.n_addrs; i++) {
    addr_text(&t, i, one, sizeof one);
    if (i)
      strcat(got, ",");
    strcat(got, one);
  }
  assert_string_equal(got, addrs);
  assert_string_equal(t.host, host);
  assert_string_equal(t.authority, authority);
  cgrpc__target_free(&t);
}

static void check_bad(const char *text, const char *why_part) {
  cgrpc__target t;
  const char *why = NULL;
  print_message("%s\n", text);
  assert_int_equal(cgrpc__target_parse(&t, text, &why),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_non_null(why);
  if (!strstr(why, why_part))
    fail_msg("\"%s\": \"%s\" lacks \"%s\"", text, why, why_part);
  assert_null(t.authority);
  assert_null(t.addrs);
}

static void test_target_dns_forms(void **state) {
  (void)state;
  check_dns("foo.test:50051", "foo.test", "50051", "", "foo.test:50051");
  check_dns("foo.test", "foo.test", "443", "", "foo.test:443");
  check_dns("localhost:1", "localhost", "1", "", "localhost:1");
  check_dns("dns:foo.test:8080", "foo.test", "8080", "", "foo.test:8080");
  check_dns("dns:///foo.test", "foo.test", "443", "", "foo.test:443");
  check_dns("dns:///my_host-1.example.com:9",
            "my_host-1.example.com", "9", "", "my_host-1.example.com:9");
  check_dns("dns://127.0.0.1:5353/foo.test:50051", "foo.test", "50051",
            "127.0.0.1:5353", "foo.test:50051");
  check_dns("dns://8.8.8.8/foo.test", "foo.test", "443", "8.8.8.8:53",
            "foo.test:443");
  check_dns("dns://[::1]:5353/foo.test:1", "foo.test", "1", "[::1]:5353",
            "foo.test:1");
  check_dns("dns://[::1]/foo.test:1", "foo.test", "1", "[::1]:53",
            "foo.test:1");
  /* A scheme-like prefix without "//" is a host name. */
  check_dns("xds:50051", "xds", "50051", "", "xds:50051");
}

static void test_target_ip_literals(void **state) {
  (void)state;
  check_addrs("127.0.0.1:50051", "127.0.0.1:50051", "127.0.0.1",
              "127.0.0.1:50051");
  check_addrs("127.0.0.1", "127.0.0.1:443", "127.0.0.1", "127.0.0.1:443");
  check_addrs("[::1]:50051", "[::1]:50051", "::1", "[::1]:50051");
  check_addrs("[::1]", "[::1]:443", "::1", "[::1]:443");
  check_addrs("::1", "[::1]:443", "::1", "[::1]:443");
  check_addrs("dns:///10.0.0.1:7", "10.0.0.1:7", "10.0.0.1", "10.0.0.1:7");
  check_addrs("dns://1.1.1.1/[fe80::1]:7", "[fe80::1]:7", "fe80::1",
              "[fe80::1]:7");
}

static void test_target_address_lists(void **state) {
  (void)state;
  check_addrs("ipv4:127.0.0.1:1", "127.0.0.1:1", "127.0.0.1", "127.0.0.1:1");
  check_addrs("ipv4:127.0.0.1:1,10.1.2.3:2,127.0.0.2",
              "127.0.0.1:1,10.1.2.3:2,127.0.0.2:443", "127.0.0.1",
              "127.0.0.1:1");
  check_addrs("ipv4:10.0.0.1", "10.0.0.1:443", "10.0.0.1", "10.0.0.1:443");
  check_addrs("ipv6:[::1]:50051", "[::1]:50051", "::1", "[::1]:50051");
  check_addrs("ipv6:::1", "[::1]:443", "::1", "[::1]:443");
  check_addrs("ipv6:[::1]:1,[2001:db8::2]:2,fe80::3",
              "[::1]:1,[2001:db8::2]:2,[fe80::3]:443", "::1", "[::1]:1");
}

static void test_target_unix(void **state) {
  cgrpc__target t;
  (void)state;
  assert_int_equal(cgrpc__target_parse(&t, "unix:/tmp/x.sock", NULL), 0);
  assert_int_equal(t.kind, CGRPC__TARGET_UNIX);
  assert_int_equal(t.n_addrs, 1);
  assert_int_equal(t.addrs[0].ss.ss_family, AF_UNIX);
  assert_string_equal(t.authority, "localhost");
  assert_string_equal(t.host, "unix:/tmp/x.sock");
  cgrpc__target_free(&t);
  assert_int_equal(cgrpc__target_parse(&t, "unix:///tmp/x.sock", NULL), 0);
  assert_int_equal(t.kind, CGRPC__TARGET_UNIX);
  cgrpc__target_free(&t);
  assert_int_equal(cgrpc__target_parse(&t, "unix-abstract:name", NULL), 0);
  assert_int_equal(t.kind, CGRPC__TARGET_UNIX);
  cgrpc__target_free(&t);
  check_bad("unix://host/tmp/x", "");
  check_bad("unix:", "");
}

static void test_target_malformed(void **state) {
  (void)state;
  check_bad("", "empty target");
  check_bad(":50051", "empty host");
  check_bad("dns:///:50051", "empty host");
  check_bad("foo.test:", "empty port");
  check_bad("foo.test:http", "port is not a number");
  check_bad("foo.test:0", "port is not a number from 1 to 65535");
  check_bad("foo.test:65536", "from 1 to 65535");
  check_bad("foo.test:123456", "from 1 to 65535");
  check_bad("foo bar:1", "character other than");
  check_bad("foo/bar:1", "character other than");
  check_bad("[::1:50051", "'[' without ']'");
  check_bad("[::1]x", "after ']'");
  check_bad("[::1]:", "empty port");
  check_bad("[]:1", "empty host");
  check_bad("fe80::1:zz", "");
  check_bad("dns://127.0.0.1:53", "no '/' after the DNS server");
  check_bad("dns://dns.example/foo.test", "not an IP address");
  check_bad("dns://127.0.0.1:x/foo.test", "not an IP address");
  check_bad("ipv4:", "empty address");
  check_bad("ipv4:127.0.0.1:1,", "empty address");
  check_bad("ipv4:127.0.0.1:1,,127.0.0.2:2", "empty address");
  check_bad("ipv4:localhost:1", "not IPv4");
  check_bad("ipv4:[::1]:1", "not IPv4");
  check_bad("ipv4:127.0.0.1:99999", "from 1 to 65535");
  check_bad("ipv6:127.0.0.1:1", "not IPv6");
  check_bad("ipv6:[::1]:1,[zz]:2", "not IPv6");
  check_bad("xds:///foo", "unsupported scheme");
  check_bad("vsock://2:50051", "unsupported scheme");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_target_dns_forms),
      cmocka_unit_test(test_target_ip_literals),
      cmocka_unit_test(test_target_address_lists),
      cmocka_unit_test(test_target_unix),
      cmocka_unit_test(test_target_malformed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
