/* SPDX-License-Identifier: MIT */
/*
 * Unix-domain sockets, named as gRPC names them: "unix:path" (relative or
 * absolute), "unix:///absolute/path" and "unix-abstract:name", with our
 * server and our channel; the socket file's life (created at add time,
 * removed at shutdown, a stale one replaced, a live one or another file
 * left alone); the peer name and credentials a handler sees; and malformed
 * targets.  Socket files live in a fresh folder (mkdtemp) that each test
 * removes.  The watchdog ends a test that hangs; every call has a deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"

#define CALL_TIMEOUT_MS 10000

/* ---- a folder for the socket files ---- */

static char tmpdir[64];

static int unix_setup(void **state) {
  const char *base = getenv("TMPDIR");
  it_watchdog_setup(state);
  /* sun_path is short (108 bytes): keep the folder's name short too. */
  if (!base || strlen(base) > 40)
    base = "/tmp";
  snprintf(tmpdir, sizeof tmpdir, "%s/cgrpc-unix-XXXXXX", base);
  assert_non_null(mkdtemp(tmpdir));
  return 0;
}

/* Removes what a test left in the folder (nothing, when all went well),
 * then the folder. */
static int unix_teardown(void **state) {
  static const char *const leftovers[] = {
      "a.sock",    "b.sock",    "rel.sock",  "stale.sock",
      "live.sock", "file.sock", "other.sock"};
  char path[128];
  size_t i;
  for (i = 0; i < sizeof leftovers / sizeof leftovers[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", tmpdir, leftovers[i]);
    unlink(path);
  }
  if (rmdir(tmpdir) != 0)
    print_error("cannot remove %s: %s\n", tmpdir, strerror(errno));
  return it_watchdog_teardown(state);
}

static void path_in_tmp(char *out, size_t size, const char *name) {
  snprintf(out, size, "%s/%s", tmpdir, name);
}

/* 1 when |path| is a socket file, 0 when it is absent, -1 otherwise. */
static int sock_file_state(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0)
    return errno == ENOENT ? 0 : -1;
  return S_ISSOCK(st.st_mode) ? 1 : -1;
}

/* A name in the abstract namespace no other run uses at the same time. */
static void abstract_name(char *out, size_t size, const char *tag) {
  snprintf(out, size, "cgrpc-test-%ld-%s", (long)getpid(), tag);
}

/* ---- log capture ---- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_error[512];

static void capture_log(cgrpc_log_level level, const char *msg,
                        void *user_data) {
  (void)user_data;
  if (level < CGRPC_LOG_ERROR)
    return;
  pthread_mutex_lock(&log_lock);
  snprintf(last_error, sizeof last_error, "%s", msg);
  pthread_mutex_unlock(&log_lock);
}

static void last_error_copy(char *out, size_t size) {
  pthread_mutex_lock(&log_lock);
  snprintf(out, size, "%s", last_error);
  last_error[0] = '\0';
  pthread_mutex_unlock(&log_lock);
}

/* ---- a server that records the peer's credentials ---- */

typedef struct cred_seen {
  int rv; /* what cgrpc_server_ctx_peer_cred returned */
  int64_t pid, uid, gid;
  int null_ctx_rv;
} cred_seen;

static pthread_mutex_t cred_lock = PTHREAD_MUTEX_INITIALIZER;
static cred_seen last_cred;

static cgrpc_status_code cred_echo(cgrpc_server_ctx *ctx,
                                   const Cgrpc__Test__EchoRequest *request,
                                   Cgrpc__Test__EchoReply *reply,
                                   void *user_data) {
  cred_seen seen;
  seen.pid = seen.uid = seen.gid = -1;
  seen.rv = cgrpc_server_ctx_peer_cred(ctx, &seen.pid, &seen.uid, &seen.gid);
  seen.null_ctx_rv = cgrpc_server_ctx_peer_cred(NULL, NULL, NULL, NULL);
  pthread_mutex_lock(&cred_lock);
  last_cred = seen;
  pthread_mutex_unlock(&cred_lock);
  return echo_service_echo(ctx, request, reply, user_data);
}

/* Starts a server listening on |addr| (with the log captured) whose Echo
 * records the peer's credentials.  Returns the server; |*bound_port| gets
 * what add_insecure_port wrote. */
static cgrpc_server *server_on(const char *addr, int *bound_port) {
  Cgrpc__Test__EchoService_Servicer servicer = {0};
  cgrpc_server_options *o = NULL;
  cgrpc_server *server = NULL;
  assert_int_equal(cgrpc_server_options_new(&o), 0);
  cgrpc_server_options_set_log(o, capture_log, NULL);
  assert_int_equal(cgrpc_server_new(&server, o), 0);
  cgrpc_server_options_del(o);
  *bound_port = -1;
  assert_int_equal(cgrpc_server_add_insecure_port(server, addr, bound_port), 0);
  servicer.echo = cred_echo;
  assert_int_equal(
      cgrpc__test__echo_service__servicer__register(server, &servicer, NULL),
      0);
  assert_int_equal(cgrpc_server_start(server), 0);
  return server;
}

static void server_stop(cgrpc_server *server) {
  assert_int_equal(cgrpc_server_shutdown(server, 1000), 0);
  cgrpc_server_del(server);
}

static cgrpc_channel *channel_to(const char *target, const char *authority) {
  cgrpc_channel_options *o = NULL;
  cgrpc_channel *ch = NULL;
  assert_int_equal(cgrpc_channel_options_new(&o), 0);
  cgrpc_channel_options_set_log(o, capture_log, NULL);
  if (authority)
    assert_int_equal(cgrpc_channel_options_set_authority(o, authority), 0);
  assert_int_equal(cgrpc_channel_new(&ch, target, o), 0);
  cgrpc_channel_options_del(o);
  return ch;
}

/* One Echo call with a deadline; returns its code and, on OK, |*reply|
 * (|reply| may be NULL: then the reply is dropped). */
static cgrpc_status_code echo(cgrpc_channel *ch, const char *message,
                              Cgrpc__Test__EchoReply **reply,
                              cgrpc_status *status) {
  Cgrpc__Test__EchoRequest req = CGRPC__TEST__ECHO_REQUEST__INIT;
  cgrpc_call_options opts = {.timeout_ms = CALL_TIMEOUT_MS};
  Cgrpc__Test__EchoReply *dropped = NULL;
  cgrpc_status_code code;
  req.message = (char *)(uintptr_t)message;
  code = cgrpc__test__echo_service__echo__call(
      ch, &req, reply ? reply : &dropped, &opts, status);
  if (dropped)
    protobuf_c_message_free_unpacked(&dropped->base, NULL);
  return code;
}

/* An Echo call to |target| that must succeed and report |authority| and
 * |peer| (NULL: not checked) as the server saw them. */
static void echo_ok(const char *target, const char *authority,
                    const char *peer) {
  cgrpc_channel *ch = channel_to(target, NULL);
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_status status = {0};
  echo(ch, target, &reply, &status);
  IT_ASSERT_STATUS(status, CGRPC_STATUS_OK);
  assert_non_null(reply);
  assert_string_equal(reply->message, target);
  assert_string_equal(reply->authority, authority);
  if (peer)
    assert_string_equal(reply->peer, peer);
  protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_status_clear(&status);
  cgrpc_channel_del(ch);
}

/* ---- target forms ---- */

/* "unix:/abs/path" both ways; the file exists while the server does and is
 * gone after its shutdown; the authority is "localhost" and the peer
 * (an unnamed client socket) "unix:", as in gRPC. */
static void test_unix_absolute_path(void **state) {
  char path[128], addr[160];
  cgrpc_server *server;
  int port;
  (void)state;
  path_in_tmp(path, sizeof path, "a.sock");
  snprintf(addr, sizeof addr, "unix:%s", path);
  server = server_on(addr, &port);
  assert_int_equal(port, 0);
  assert_int_equal(sock_file_state(path), 1);
  echo_ok(addr, "localhost", "unix:");
  server_stop(server);
  assert_int_equal(sock_file_state(path), 0);
}

/* "unix:///abs/path" listens on the same socket as "unix:/abs/path": each
 * form's client reaches the other form's server. */
static void test_unix_triple_slash(void **state) {
  char path[128], plain[160], slashes[160];
  cgrpc_server *server;
  int port;
  (void)state;
  path_in_tmp(path, sizeof path, "b.sock");
  snprintf(plain, sizeof plain, "unix:%s", path);
  snprintf(slashes, sizeof slashes, "unix://%s", path);
  server = server_on(slashes, &port);
  assert_int_equal(port, 0);
  assert_int_equal(sock_file_state(path), 1);
  echo_ok(slashes, "localhost", "unix:");
  echo_ok(plain, "localhost", "unix:");
  server_stop(server);
  assert_int_equal(sock_file_state(path), 0);

  server = server_on(plain, &port);
  echo_ok(slashes, "localhost", "unix:");
  server_stop(server);
  assert_int_equal(sock_file_state(path), 0);
}

/* "unix:rel.sock" is relative to the working directory: at add time for
 * the server, at connect time for the channel.  The file is removed from
 * the folder it was made in even after the process changed directory. */
static void test_unix_relative_path(void **state) {
  char path[128];
  cgrpc_server *server;
  int port, here = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  (void)state;
  assert_true(here >= 0);
  path_in_tmp(path, sizeof path, "rel.sock");
  assert_int_equal(chdir(tmpdir), 0);
  server = server_on("unix:rel.sock", &port);
  assert_int_equal(port, 0);
  assert_int_equal(sock_file_state(path), 1);
  echo_ok("unix:rel.sock", "localhost", "unix:");
  /* Elsewhere, the same relative name points nowhere... */
  assert_int_equal(fchdir(here), 0);
  close(here);
  if (sock_file_state("rel.sock") == 0) {
    cgrpc_channel *ch = channel_to("unix:rel.sock", NULL);
    cgrpc_status status = {0};
    echo(ch, "elsewhere", NULL, &status);
    IT_ASSERT_STATUS(status, CGRPC_STATUS_UNAVAILABLE);
    cgrpc_status_clear(&status);
    cgrpc_channel_del(ch);
  }
  {
    char abs_target[160];
    snprintf(abs_target, sizeof abs_target, "unix:%s", path);
    echo_ok(abs_target, "localhost", "unix:");
  }
  /* ...and shutdown still removes the right file. */
  server_stop(server);
  assert_int_equal(sock_file_state(path), 0);
}

/* "unix-abstract:name": no file anywhere; a name with a NUL inside
 * ("%00"), and one that differs only after that NUL, are distinct. */
static void test_unix_abstract(void **state) {
  char name[64], addr[96], other[96], with_nul[96];
  cgrpc_server *server, *server2;
  cgrpc_channel *ch;
  cgrpc_status status = {0};
  int port;
  (void)state;
  abstract_name(name, sizeof name, "abs");
  snprintf(addr, sizeof addr, "unix-abstract:%s", name);
  server = server_on(addr, &port);
  assert_int_equal(port, 0);
  echo_ok(addr, "localhost", "unix:");
  server_stop(server);
  /* Gone with its server: nothing listens there any more. */
  ch = channel_to(addr, NULL);
  echo(ch, "nobody", NULL, &status);
  IT_ASSERT_STATUS(status, CGRPC_STATUS_UNAVAILABLE);
  cgrpc_status_clear(&status);
  cgrpc_channel_del(ch);

  snprintf(with_nul, sizeof with_nul, "unix-abstract:%s%%00one", name);
  snprintf(other, sizeof other, "unix-abstract:%s%%00two", name);
  server = server_on(with_nul, &port);
  server2 = server_on(other, &port); /* not "in use": another name */
  echo_ok(with_nul, "localhost", "unix:");
  echo_ok(other, "localhost", "unix:");
  /* The bare prefix is a third name, which nobody listens on. */
  ch = channel_to(addr, NULL);
  echo(ch, "nobody", NULL, &status);
  IT_ASSERT_STATUS(status, CGRPC_STATUS_UNAVAILABLE);
  cgrpc_status_clear(&status);
  cgrpc_channel_del(ch);
  server_stop(server2);
  server_stop(server);
}

/* An abstract name in use gives ADDR_IN_USE. */
static void test_unix_abstract_in_use(void **state) {
  char name[64], addr[96];
  cgrpc_server *server, *second = NULL;
  int port;
  (void)state;
  abstract_name(name, sizeof name, "busy");
  snprintf(addr, sizeof addr, "unix-abstract:%s", name);
  server = server_on(addr, &port);
  assert_int_equal(cgrpc_server_new(&second, NULL), 0);
  assert_int_equal(cgrpc_server_add_insecure_port(second, addr, NULL),
                   CGRPC_ERR_ADDR_IN_USE);
  cgrpc_server_del(second);
  echo_ok(addr, "localhost", NULL);
  server_stop(server);
}

/* The authority can still be set, and the server sees it. */
static void test_unix_authority_option(void **state) {
  char path[128], addr[160];
  cgrpc_server *server;
  cgrpc_channel *ch;
  Cgrpc__Test__EchoReply *reply = NULL;
  cgrpc_status status = {0};
  int port;
  (void)state;
  path_in_tmp(path, sizeof path, "a.sock");
  snprintf(addr, sizeof addr, "unix:%s", path);
  server = server_on(addr, &port);
  ch = channel_to(addr, "svc.example:8443");
  echo(ch, "x", &reply, &status);
  IT_ASSERT_STATUS(status, CGRPC_STATUS_OK);
  assert_string_equal(reply->authority, "svc.example:8443");
  protobuf_c_message_free_unpacked(&reply->base, NULL);
  cgrpc_status_clear(&status);
  cgrpc_channel_del(ch);
  server_stop(server);
}

/* ---- the socket file ---- */

/* A server that is deleted without ever starting removes its file too. */
static void test_unix_file_removed_without_start(void **state) {
  char path[128], addr[160];
  cgrpc_server *server = NULL;
  int port = -1;
  (void)state;
  path_in_tmp(path, sizeof path, "a.sock");
  snprintf(addr, sizeof addr, "unix:%s", path);
  assert_int_equal(cgrpc_server_new(&server, NULL), 0);
  assert_int_equal(cgrpc_server_add_insecure_port(server, addr, &port), 0);
  assert_int_equal(port, 0);
  assert_int_equal(sock_file_state(path), 1);
  cgrpc_server_del(server);
  assert_int_equal(sock_file_state(path), 0);
}

/* Binds a socket file at |path| and closes it: what a crashed server
 * leaves behind.  With |listen_too| it listens instead, and the fd is
 * returned open. */
static void sun_of(struct sockaddr_un *sun, const char *path) {
  size_t n = strlen(path);
  assert_true(n < sizeof sun->sun_path);
  memset(sun, 0, sizeof *sun);
  sun->sun_family = AF_UNIX;
  memcpy(sun->sun_path, path, n);
}

static int raw_unix_socket(const char *path, int listen_too) {
  struct sockaddr_un sun;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  sun_of(&sun, path);
  assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
  if (!listen_too) {
    close(fd);
    return -1;
  }
  assert_int_equal(listen(fd, 4), 0);
  return fd;
}

/* A stale socket file (nobody listens on it) is replaced, as gRPC does. */
static void test_unix_stale_file_replaced(void **state) {
  char path[128], addr[160];
  cgrpc_server *server;
  int port;
  (void)state;
  path_in_tmp(path, sizeof path, "stale.sock");
  snprintf(addr, sizeof addr, "unix:%s", path);
  raw_unix_socket(path, 0);
  assert_int_equal(sock_file_state(path), 1);
  server = server_on(addr, &port);
  echo_ok(addr, "localhost", "unix:");
  server_stop(server);
  assert_int_equal(sock_file_state(path), 0);
}

/* A socket something listens on is not taken over (gRPC would), and a file
 * that is not a socket is never replaced: ADDR_IN_USE, with a log message,
 * and both stay as they were. */
static void test_unix_live_or_other_file_kept(void **state) {
  char path[128], addr[160], msg[512];
  cgrpc_server_options *o = NULL;
  cgrpc_server *server = NULL;
  int fd, live;
  struct stat st;
  (void)state;
  assert_int_equal(cgrpc_server_options_new(&o), 0);
  cgrpc_server_options_set_log(o, capture_log, NULL);
  assert_int_equal(cgrpc_server_new(&server, o), 0);
  cgrpc_server_options_del(o);

  path_in_tmp(path, sizeof path, "live.sock");
  snprintf(addr, sizeof addr, "unix:%s", path);
  live = raw_unix_socket(path, 1);
  last_error_copy(msg, sizeof msg);
  assert_int_equal(cgrpc_server_add_insecure_port(server, addr, NULL),
                   CGRPC_ERR_ADDR_IN_USE);
  last_error_copy(msg, sizeof msg);
  assert_non_null(strstr(msg, path));
  assert_int_equal(sock_file_state(path), 1);
  /* Still the listener's: a connection reaches it. */
  {
    struct sockaddr_un sun;
    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sun_of(&sun, path);
    assert_int_equal(connect(c, (struct sockaddr *)&sun, sizeof sun), 0);
    close(c);
  }
  close(live);

  path_in_tmp(path, sizeof path, "file.sock");
  snprintf(addr, sizeof addr, "unix:%s", path);
  fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "keep", 4), 4);
  close(fd);
  assert_int_equal(cgrpc_server_add_insecure_port(server, addr, NULL),
                   CGRPC_ERR_ADDR_IN_USE);
  assert_int_equal(stat(path, &st), 0);
  assert_true(S_ISREG(st.st_mode));
  assert_int_equal((int)st.st_size, 4);
  cgrpc_server_del(server);
  assert_int_equal(stat(path, &st), 0); /* not removed at delete either */
}

/* A socket file that replaced ours while the server ran (someone removed
 * ours and bound their own) is left alone at shutdown. */
static void test_unix_replaced_file_not_removed(void **state) {
  char path[128], addr[160];
  cgrpc_server *server;
  int port;
  (void)state;
  path_in_tmp(path, sizeof path, "other.sock");
  snprintf(addr, sizeof addr, "unix:%s", path);
  server = server_on(addr, &port);
  assert_int_equal(unlink(path), 0);
  raw_unix_socket(path, 0);
  server_stop(server);
  assert_int_equal(sock_file_state(path), 1);
  assert_int_equal(unlink(path), 0);
}

/* A missing folder: CGRPC_ERR_IO, and the log says why. */
static void test_unix_missing_folder(void **state) {
  char addr[160], msg[512];
  cgrpc_server_options *o = NULL;
  cgrpc_server *server = NULL;
  (void)state;
  assert_int_equal(cgrpc_server_options_new(&o), 0);
  cgrpc_server_options_set_log(o, capture_log, NULL);
  assert_int_equal(cgrpc_server_new(&server, o), 0);
  cgrpc_server_options_del(o);
  snprintf(addr, sizeof addr, "unix:%s/no/such/dir.sock", tmpdir);
  last_error_copy(msg, sizeof msg);
  assert_int_equal(cgrpc_server_add_insecure_port(server, addr, NULL),
                   CGRPC_ERR_IO);
  last_error_copy(msg, sizeof msg);
  assert_non_null(strstr(msg, strerror(ENOENT)));
  cgrpc_server_del(server);
}

/* ---- peer credentials ---- */

/* Over a Unix socket the handler reads this process's pid, uid and gid;
 * over TCP it gets CGRPC_ERR_UNSUPPORTED and its peer name is unchanged. */
static void test_unix_peer_cred(void **state) {
  char path[128], addr[160];
  cgrpc_server *server;
  cred_seen seen;
  int port;
  (void)state;
  path_in_tmp(path, sizeof path, "a.sock");
  snprintf(addr, sizeof addr, "unix:%s", path);
  server = server_on(addr, &port);
  echo_ok(addr, "localhost", "unix:");
  server_stop(server);
  pthread_mutex_lock(&cred_lock);
  seen = last_cred;
  pthread_mutex_unlock(&cred_lock);
  assert_int_equal(seen.rv, 0);
  assert_int_equal(seen.pid, (int64_t)getpid());
  assert_int_equal(seen.uid, (int64_t)geteuid());
  assert_int_equal(seen.gid, (int64_t)getegid());
  assert_int_equal(seen.null_ctx_rv, CGRPC_ERR_INVALID_ARGUMENT);

  /* TCP: no credentials, nothing written. */
  server = server_on("127.0.0.1:0", &port);
  assert_true(port > 0);
  {
    char target[64], peer_prefix[] = "ipv4:127.0.0.1:";
    cgrpc_channel *ch;
    Cgrpc__Test__EchoReply *reply = NULL;
    cgrpc_status status = {0};
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    ch = channel_to(target, NULL);
    echo(ch, "tcp", &reply, &status);
    IT_ASSERT_STATUS(status, CGRPC_STATUS_OK);
    assert_string_equal(reply->authority, target);
    assert_memory_equal(reply->peer, peer_prefix, strlen(peer_prefix));
    protobuf_c_message_free_unpacked(&reply->base, NULL);
    cgrpc_status_clear(&status);
    cgrpc_channel_del(ch);
  }
  server_stop(server);
  pthread_mutex_lock(&cred_lock);
  seen = last_cred;
  pthread_mutex_unlock(&cred_lock);
  assert_int_equal(seen.rv, CGRPC_ERR_UNSUPPORTED);
  assert_int_equal(seen.pid, -1);
  assert_int_equal(seen.uid, -1);
  assert_int_equal(seen.gid, -1);
}

/* ---- failures ---- */

/* Nobody at the path: the call fails UNAVAILABLE, promptly, and the
 * message names the target and the reason. */
static void test_unix_no_server(void **state) {
  char addr[160];
  cgrpc_channel *ch;
  cgrpc_status status = {0};
  int64_t t0;
  (void)state;
  snprintf(addr, sizeof addr, "unix:%s/nobody.sock", tmpdir);
  ch = channel_to(addr, NULL);
  t0 = it_now_ms();
  echo(ch, "hello?", NULL, &status);
  IT_ASSERT_STATUS(status, CGRPC_STATUS_UNAVAILABLE);
  assert_true(it_now_ms() - t0 < 3000);
  assert_non_null(status.message);
  assert_non_null(strstr(status.message, addr));
  assert_non_null(strstr(status.message, strerror(ENOENT)));
  cgrpc_status_clear(&status);
  cgrpc_channel_del(ch);
}

/* Malformed targets and listen addresses: INVALID_ARGUMENT from
 * cgrpc_channel_new and cgrpc_server_add_insecure_port, with a log message
 * that says what is wrong. */
static void test_unix_malformed(void **state) {
  char long_path[200], long_abstract[200], max_path[200];
  struct {
    const char *target, *why;
  } bad[] = {
      {"unix:", "empty socket path"},
      {"unix://", "empty socket path"},
      {"unix://host/tmp/x.sock", "unix:// takes no host"},
      {"unix-abstract:", "empty abstract socket name"},
      {"unix:/tmp/a%00b", "NUL"},
      {long_path, "longer than 107 bytes"},
      {long_abstract, "longer than 107 bytes"},
  };
  size_t i;
  (void)state;
  /* 108 bytes: one more than sun_path holds with its NUL. */
  snprintf(long_path, sizeof long_path, "unix:/%0107d", 0);
  snprintf(long_abstract, sizeof long_abstract, "unix-abstract:%0108d", 0);
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cgrpc_channel_options *co = NULL;
    cgrpc_server_options *so = NULL;
    cgrpc_channel *ch = NULL;
    cgrpc_server *server = NULL;
    char msg[512];
    int port = 12345;
    print_message("%s\n", bad[i].target);
    assert_int_equal(cgrpc_channel_options_new(&co), 0);
    cgrpc_channel_options_set_log(co, capture_log, NULL);
    last_error_copy(msg, sizeof msg);
    assert_int_equal(cgrpc_channel_new(&ch, bad[i].target, co),
                     CGRPC_ERR_INVALID_ARGUMENT);
    assert_null(ch);
    cgrpc_channel_options_del(co);
    last_error_copy(msg, sizeof msg);
    if (!strstr(msg, bad[i].why))
      fail_msg("channel %s: log \"%s\" lacks \"%s\"", bad[i].target, msg,
               bad[i].why);

    assert_int_equal(cgrpc_server_options_new(&so), 0);
    cgrpc_server_options_set_log(so, capture_log, NULL);
    assert_int_equal(cgrpc_server_new(&server, so), 0);
    cgrpc_server_options_del(so);
    assert_int_equal(
        cgrpc_server_add_insecure_port(server, bad[i].target, &port),
        CGRPC_ERR_INVALID_ARGUMENT);
    assert_int_equal(port, 12345);
    last_error_copy(msg, sizeof msg);
    if (!strstr(msg, bad[i].why))
      fail_msg("server %s: log \"%s\" lacks \"%s\"", bad[i].target, msg,
               bad[i].why);
    cgrpc_server_del(server);
  }

  /* 107 bytes is the most that fits: accepted (nothing connects yet). */
  {
    cgrpc_channel *ch = NULL;
    snprintf(max_path, sizeof max_path, "unix:/%0106d", 0);
    assert_int_equal(cgrpc_channel_new(&ch, max_path, NULL), 0);
    cgrpc_channel_del(ch);
    snprintf(max_path, sizeof max_path, "unix-abstract:%0107d", 0);
    assert_int_equal(cgrpc_channel_new(&ch, max_path, NULL), 0);
    cgrpc_channel_del(ch);
  }
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, unix_setup, unix_teardown)
      T(test_unix_absolute_path),
      T(test_unix_triple_slash),
      T(test_unix_relative_path),
      T(test_unix_abstract),
      T(test_unix_abstract_in_use),
      T(test_unix_authority_option),
      T(test_unix_file_removed_without_start),
      T(test_unix_stale_file_replaced),
      T(test_unix_live_or_other_file_kept),
      T(test_unix_replaced_file_not_removed),
      T(test_unix_missing_folder),
      T(test_unix_peer_cred),
      T(test_unix_no_server),
      T(test_unix_malformed),
#undef T
  };
  /* One test (a cmocka filter pattern) per CTest entry. */
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
