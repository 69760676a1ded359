/* SPDX-License-Identifier: MIT */
/*
 * io/sock: gRPC's Unix-domain socket names (parsing) and peer names
 * (formatting), without sockets.
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
#include "io/sock.h"

#define SUN_OFF offsetof(struct sockaddr_un, sun_path)

/* Parses |addr|, which must be a Unix address for |expect| (|n| bytes of
 * sun_path, the abstract name's leading NUL included). */
static void check_parse(const char *addr, const char *expect, size_t n) {
  struct sockaddr_un sun;
  socklen_t len = 0;
  const char *why = NULL;
  assert_int_equal(cgrpc__sock_parse_unix(addr, &sun, &len, &why), 1);
  assert_null(why);
  assert_int_equal(sun.sun_family, AF_UNIX);
  assert_int_equal(len, SUN_OFF + n);
  assert_memory_equal(sun.sun_path, expect, n);
}

static void check_bad(const char *addr, const char *why_part) {
  struct sockaddr_un sun;
  socklen_t len = 0;
  const char *why = NULL;
  assert_int_equal(cgrpc__sock_parse_unix(addr, &sun, &len, &why),
                   CGRPC_ERR_INVALID_ARGUMENT);
  assert_non_null(why);
  if (!strstr(why, why_part))
    fail_msg("%s: \"%s\" lacks \"%s\"", addr, why, why_part);
}

static void test_sock_parse_unix_forms(void **state) {
  (void)state;
  /* A path's length counts its NUL. */
  check_parse("unix:/tmp/x.sock", "/tmp/x.sock", 12);
  check_parse("unix:rel/x.sock", "rel/x.sock", 11);
  check_parse("unix:///tmp/x.sock", "/tmp/x.sock", 12);
  check_parse("unix:/tmp/a%20b", "/tmp/a b", 9);
  check_parse("unix:/tmp/100%", "/tmp/100%", 10); /* kept: not an escape */
  /* An abstract name is its bytes after a NUL, no terminator. */
  check_parse("unix-abstract:name", "\0name", 5);
  check_parse("unix-abstract:a%00b", "\0a\0b", 4);
  check_parse("unix-abstract:/x//y", "\0/x//y", 6);
}

static void test_sock_parse_unix_not_unix(void **state) {
  struct sockaddr_un sun;
  socklen_t len = 0;
  const char *why = NULL;
  (void)state;
  assert_int_equal(cgrpc__sock_parse_unix("localhost:50051", &sun, &len, &why),
                   0);
  assert_int_equal(cgrpc__sock_parse_unix("dns:///x:1", &sun, &len, &why), 0);
  assert_int_equal(cgrpc__sock_parse_unix("[::1]:1", &sun, &len, &why), 0);
  assert_int_equal(cgrpc__sock_parse_unix("unixy:1", &sun, &len, &why), 0);
  assert_null(why);
}

static void test_sock_parse_unix_malformed(void **state) {
  char buf[400];
  (void)state;
  check_bad("unix:", "empty socket path");
  check_bad("unix://", "empty socket path");
  check_bad("unix://host/p", "takes no host");
  check_bad("unix-abstract:", "empty abstract socket name");
  check_bad("unix:/a%00b", "NUL");
  /* 107 bytes fit, 108 do not; escapes count once decoded. */
  snprintf(buf, sizeof buf, "unix:/%0106d", 0);
  check_parse(buf, buf + 5, 108);
  snprintf(buf, sizeof buf, "unix:/%0107d", 0);
  check_bad(buf, "longer than 107 bytes");
  snprintf(buf, sizeof buf, "unix-abstract:%0107d", 0);
  {
    char want[108];
    want[0] = '\0';
    memset(want + 1, '0', 107);
    check_parse(buf, want, 108);
  }
  snprintf(buf, sizeof buf, "unix-abstract:%0108d", 0);
  check_bad(buf, "longer than 107 bytes");
  strcpy(buf, "unix:/");
  for (int i = 0; i < 106; i++)
    strcat(buf, "%41");
  {
    char want[108];
    want[0] = '/';
    memset(want + 1, 'A', 106);
    want[107] = '\0';
    check_parse(buf, want, 108);
  }
  strcat(buf, "%41");
  check_bad(buf, "longer than 107 bytes");
  /* Far too long to decode at all. */
  memset(buf, 'a', sizeof buf - 1);
  memcpy(buf, "unix:", 5);
  buf[sizeof buf - 1] = '\0';
  check_bad(buf, "longer than 107 bytes");
}

/* Formats a Unix address of |n| bytes of sun_path. */
static void check_peer(const char *path, size_t n, const char *expect) {
  struct sockaddr_un sun;
  char out[CGRPC__SOCK_NAME_MAX];
  memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  memcpy(sun.sun_path, path, n);
  memset(out, 'X', sizeof out);
  cgrpc__sock_peer_name((struct sockaddr *)&sun, (socklen_t)(SUN_OFF + n), out,
                        sizeof out);
  assert_string_equal(out, expect);
}

static void test_sock_peer_name_unix(void **state) {
  char name[CGRPC__SOCK_UNIX_MAX + 1], expect[CGRPC__SOCK_NAME_MAX];
  struct sockaddr_un sun;
  char out[CGRPC__SOCK_NAME_MAX];
  size_t i;
  (void)state;
  /* An unnamed socket (what accept() reports for most clients). */
  check_peer("", 0, "unix:");
  memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  cgrpc__sock_peer_name((struct sockaddr *)&sun, sizeof(sa_family_t), out,
                        sizeof out);
  assert_string_equal(out, "unix:");
  check_peer("/tmp/x.sock", 12, "unix:/tmp/x.sock");
  check_peer("rel-_.~!$&'()*+,;=:@x", 22, "unix:rel-_.~!$&'()*+,;=:@x");
  check_peer("/tmp/a b%", 10, "unix:/tmp/a%20b%25");
  check_peer("\0abc12", 6, "unix-abstract:abc12");
  check_peer("\0a\0\xff", 4, "unix-abstract:a%00%FF");
  /* The longest name, every byte escaped, fits the buffer. */
  name[0] = '\0';
  memset(name + 1, 0xfe, CGRPC__SOCK_UNIX_MAX);
  strcpy(expect, "unix-abstract:");
  for (i = 0; i < CGRPC__SOCK_UNIX_MAX; i++)
    strcat(expect, "%FE");
  check_peer(name, CGRPC__SOCK_UNIX_MAX + 1, expect);
  /* A small buffer cuts the name short, never an escape in half. */
  memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  memcpy(sun.sun_path, "/abcdef gh", 11);
  cgrpc__sock_peer_name((struct sockaddr *)&sun, SUN_OFF + 11, out, 16);
  assert_string_equal(out, "unix:/abcdef%20");
  cgrpc__sock_peer_name((struct sockaddr *)&sun, SUN_OFF + 11, out, 15);
  assert_string_equal(out, "unix:/abcdef");
  cgrpc__sock_peer_name((struct sockaddr *)&sun, SUN_OFF + 11, out, 4);
  assert_string_equal(out, "uni");
}

static void test_sock_peer_name_ip_unchanged(void **state) {
  struct sockaddr_in s4;
  struct sockaddr_in6 s6;
  char out[CGRPC__SOCK_NAME_MAX];
  (void)state;
  memset(&s4, 0, sizeof s4);
  s4.sin_family = AF_INET;
  s4.sin_port = htons(5);
  inet_pton(AF_INET, "127.0.0.1", &s4.sin_addr);
  cgrpc__sock_peer_name((struct sockaddr *)&s4, sizeof s4, out, sizeof out);
  assert_string_equal(out, "ipv4:127.0.0.1:5");
  memset(&s6, 0, sizeof s6);
  s6.sin6_family = AF_INET6;
  s6.sin6_port = htons(50051);
  inet_pton(AF_INET6, "::1", &s6.sin6_addr);
  cgrpc__sock_peer_name((struct sockaddr *)&s6, sizeof s6, out, sizeof out);
  assert_string_equal(out, "ipv6:[::1]:50051");
  inet_pton(AF_INET6, "::ffff:10.0.0.1", &s6.sin6_addr);
  cgrpc__sock_peer_name((struct sockaddr *)&s6, sizeof s6, out, sizeof out);
  assert_string_equal(out, "ipv4:10.0.0.1:50051");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sock_parse_unix_forms),
      cmocka_unit_test(test_sock_parse_unix_not_unix),
      cmocka_unit_test(test_sock_parse_unix_malformed),
      cmocka_unit_test(test_sock_peer_name_unix),
      cmocka_unit_test(test_sock_peer_name_ip_unchanged),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
