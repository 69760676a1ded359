/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed inputs of fuzz_server_wire and fuzz_client_wire: HTTP/2
 * frames built by hand, with header blocks from nghttp2's HPACK deflater.
 *
 *   fuzz_gen_seeds CORPUS_DIR    (writes CORPUS_DIR/server_wire/seed_*,
 *                                 CORPUS_DIR/client_wire/seed_*)
 *
 * Not part of the normal build (EXCLUDE_FROM_ALL); the seeds it wrote are
 * committed under tests/fuzz/corpus/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#define FT_DATA 0x0
#define FT_HEADERS 0x1
#define FT_PRIORITY 0x2
#define FT_RST_STREAM 0x3
#define FT_SETTINGS 0x4
#define FT_PING 0x6
#define FT_GOAWAY 0x7
#define FT_WINDOW_UPDATE 0x8
#define FT_CONTINUATION 0x9
#define FL_END_STREAM 0x1
#define FL_ACK 0x1
#define FL_END_HEADERS 0x4

/* The bytes of one seed, and where seeds go. */
static uint8_t out[1 << 16];
static size_t out_len;
static const char *out_dir;
static nghttp2_hd_deflater *deflater;

static void put(const void *p, size_t n) {
  if (out_len + n > sizeof out) {
    fprintf(stderr, "seed too large\n");
    exit(1);
  }
  memcpy(out + out_len, p, n);
  out_len += n;
}

static void put_u8(unsigned v) {
  uint8_t b = (uint8_t)v;
  put(&b, 1);
}

static void put_u32(uint32_t v) {
  uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
                  (uint8_t)v};
  put(b, 4);
}

static void frame(unsigned type, unsigned flags, uint32_t stream,
                  const void *payload, size_t len) {
  put_u8((unsigned)(len >> 16));
  put_u8((unsigned)(len >> 8));
  put_u8((unsigned)len);
  put_u8(type);
  put_u8(flags);
  put_u32(stream);
  put(payload, len);
}

/* Starts a seed: flags byte, then (for the server) nothing else. */
static void begin(unsigned flags) {
  out_len = 0;
  put_u8(flags);
  /* Each seed is one connection, so each gets a fresh HPACK context. */
  if (deflater)
    nghttp2_hd_deflate_del(deflater);
  if (nghttp2_hd_deflate_new(&deflater, 4096) != 0)
    exit(1);
}

static void finish(const char *sub, const char *name) {
  char path[1024];
  FILE *f;
  snprintf(path, sizeof path, "%s/%s/seed_%s", out_dir, sub, name);
  f = fopen(path, "wb");
  if (!f || fwrite(out, 1, out_len, f) != out_len || fclose(f) != 0) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(1);
  }
}

/* HPACK-encodes "name", "value", ... (NULL-terminated) into |buf|. */
static size_t hpack(uint8_t *buf, size_t cap, const char *const *kv) {
  nghttp2_nv nv[32];
  size_t n = 0;
  ssize_t len;
  for (; kv[0]; kv += 2, n++) {
    nv[n].name = (uint8_t *)(uintptr_t)kv[0];
    nv[n].namelen = strlen(kv[0]);
    nv[n].value = (uint8_t *)(uintptr_t)kv[1];
    nv[n].valuelen = strlen(kv[1]);
    nv[n].flags = NGHTTP2_NV_FLAG_NONE;
  }
  len = nghttp2_hd_deflate_hd(deflater, buf, cap, nv, n);
  if (len < 0)
    exit(1);
  return (size_t)len;
}

static void headers(uint32_t stream, unsigned flags, const char *const *kv) {
  uint8_t buf[4096];
  frame(FT_HEADERS, flags | FL_END_HEADERS, stream, buf,
        hpack(buf, sizeof buf, kv));
}

static void settings(void) { frame(FT_SETTINGS, 0, 0, NULL, 0); }
static void settings_ack(void) { frame(FT_SETTINGS, FL_ACK, 0, NULL, 0); }

/* A gRPC message: prefix plus a HelloRequest/HelloReply with field 1. */
static size_t grpc_msg(uint8_t *buf, const char *name) {
  size_t n = strlen(name);
  buf[0] = 0;
  buf[1] = 0;
  buf[2] = 0;
  buf[3] = 0;
  buf[4] = (uint8_t)(n + 2);
  buf[5] = 0x0a;
  buf[6] = (uint8_t)n;
  memcpy(buf + 7, name, n);
  return n + 7;
}

static void data(uint32_t stream, unsigned flags, const void *p, size_t n) {
  frame(FT_DATA, flags, stream, p, n);
}

#define REQ(path)                                                              \
  ":method", "POST", ":scheme", "http", ":path", path, ":authority",           \
      "localhost", "content-type", "application/grpc", "te", "trailers"

static void request(uint32_t stream, const char *path, const char *name) {
  const char *kv[] = {REQ(path), NULL};
  uint8_t msg[300];
  headers(stream, 0, kv);
  data(stream, FL_END_STREAM, msg, grpc_msg(msg, name));
}

static void server_seeds(void) {
  static const char hello[] = "/helloworld.Greeter/SayHello";
  static const char again[] = "/helloworld.Greeter/SayHelloAgain";
  uint8_t msg[300], buf[4096];
  size_t n, hl;
  unsigned fl;
  int i;

  /* Plain SayHello, inline and on the pool, half-closed and kept open. */
  for (fl = 1; fl < 8; fl += 2) {
    char name[32];
    begin(fl);
    settings();
    request(1, hello, "world");
    snprintf(name, sizeof name, "say_hello_%u", fl);
    finish("server_wire", name);
  }

  /* SayHelloAgain with metadata (text and -bin) and a deadline. */
  begin(7);
  settings();
  {
    const char *kv[] = {REQ(again), "grpc-timeout", "1S", "x-user", "alice",
                        "x-trace-bin", "AAECAwQ", "x-pad-bin", "AAECAw==",
                        NULL};
    headers(1, 0, kv);
  }
  data(1, FL_END_STREAM, msg, grpc_msg(msg, "fail%00\xff"));
  finish("server_wire", "say_hello_again_md");

  /* Oversized length prefix. */
  begin(1);
  settings();
  {
    const char *kv[] = {REQ(hello), NULL};
    uint8_t big[] = {0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3};
    headers(1, 0, kv);
    data(1, 0, big, sizeof big);
  }
  finish("server_wire", "oversized_prefix");

  /* Truncated message: announces 100 bytes, ends after 3. */
  begin(1);
  settings();
  {
    const char *kv[] = {REQ(hello), NULL};
    uint8_t part[] = {0, 0, 0, 0, 100, 0x0a, 0x62, 0x62};
    headers(1, 0, kv);
    data(1, FL_END_STREAM, part, sizeof part);
  }
  finish("server_wire", "truncated_message");

  /* Bad protobuf, and a compressed flag without grpc-encoding. */
  begin(1);
  settings();
  {
    const char *kv[] = {REQ(hello), NULL};
    uint8_t bad[] = {0, 0, 0, 0, 4, 0x0a, 0xff, 0xff, 0xff};
    uint8_t comp[] = {1, 0, 0, 0, 2, 0x0a, 0x00};
    headers(1, 0, kv);
    data(1, FL_END_STREAM, bad, sizeof bad);
    headers(3, 0, kv);
    data(3, FL_END_STREAM, comp, sizeof comp);
  }
  finish("server_wire", "bad_protobuf");

  /* gzip request (a valid gzip of HelloRequest{name: "gzipd"}) and a
   * corrupted one. */
  begin(1);
  settings();
  {
    const char *kv[] = {REQ(hello), "grpc-encoding", "gzip", NULL};
    static const uint8_t gz[] = {
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
        0x03, 0xe3, 0x62, 0x4d, 0xaf, 0xca, 0x2c, 0x48, 0x01,
        0x00, 0x3e, 0xd6, 0xa7, 0x64, 0x07, 0x00, 0x00, 0x00};
    uint8_t m[64];
    m[0] = 1;
    m[1] = m[2] = m[3] = 0;
    m[4] = (uint8_t)sizeof gz;
    memcpy(m + 5, gz, sizeof gz);
    headers(1, 0, kv);
    data(1, FL_END_STREAM, m, 5 + sizeof gz);
    m[16] ^= 0x55;
    headers(3, 0, kv);
    data(3, FL_END_STREAM, m, 5 + sizeof gz);
  }
  finish("server_wire", "gzip");

  /* Unknown path, unknown service, missing :path, GET, bad encoding. */
  begin(1);
  settings();
  request(1, "/helloworld.Greeter/Nope", "x");
  request(3, "/no.Such/Service", "x");
  {
    const char *nopath[] = {":method", "POST", ":scheme", "http",
                            "content-type", "application/grpc", NULL};
    const char *get[] = {":method", "GET", ":scheme", "http", ":path", hello,
                         "content-type", "application/grpc", NULL};
    const char *enc[] = {REQ(hello), "grpc-encoding", "snappy", NULL};
    headers(5, FL_END_STREAM, nopath);
    headers(7, FL_END_STREAM, get);
    headers(9, FL_END_STREAM, enc);
  }
  finish("server_wire", "unknown_path");

  /* Missing and wrong content-type. */
  begin(1);
  settings();
  {
    const char *none[] = {":method", "POST", ":scheme", "http", ":path", hello,
                          ":authority", "x", NULL};
    const char *text[] = {":method", "POST", ":scheme", "http", ":path", hello,
                          ":authority", "x", "content-type", "text/plain",
                          NULL};
    headers(1, 0, none);
    data(1, FL_END_STREAM, msg, grpc_msg(msg, "a"));
    headers(3, 0, text);
    data(3, FL_END_STREAM, msg, grpc_msg(msg, "b"));
  }
  finish("server_wire", "content_type");

  /* Many streams at once, past MAX_CONCURRENT_STREAMS (16). */
  begin(3);
  settings();
  for (i = 0; i < 40; i++)
    request((uint32_t)(2 * i + 1), i % 2 ? again : hello, "many");
  finish("server_wire", "many_streams");

  /* Two messages in a unary request, and a message split over frames with
   * client trailers at the end. */
  begin(5);
  settings();
  {
    const char *kv[] = {REQ(hello), NULL};
    const char *trailers[] = {"x-t", "1", NULL};
    headers(1, 0, kv);
    n = grpc_msg(msg, "one");
    data(1, 0, msg, n);
    data(1, FL_END_STREAM, msg, n);
    headers(3, 0, kv);
    n = grpc_msg(msg, "split");
    data(3, 0, msg, 2);
    data(3, 0, msg + 2, 4);
    data(3, 0, msg + 6, n - 6);
    headers(3, FL_END_STREAM, trailers);
  }
  finish("server_wire", "two_messages_trailers");

  /* RST_STREAM flood: on an open stream, then on idle and closed ones. */
  begin(1);
  settings();
  {
    const char *kv[] = {REQ(hello), NULL};
    uint8_t code[4] = {0, 0, 0, 8};
    headers(1, 0, kv);
    for (i = 0; i < 60; i++) {
      headers((uint32_t)(2 * i + 3), 0, kv);
      frame(FT_RST_STREAM, 0, (uint32_t)(2 * i + 3), code, 4);
    }
    frame(FT_RST_STREAM, 0, 1, code, 4);
  }
  finish("server_wire", "rst_flood");

  /* PING flood. */
  begin(5);
  settings();
  for (i = 0; i < 200; i++) {
    uint8_t opaque[8] = {(uint8_t)i, 1, 2, 3, 4, 5, 6, 7};
    frame(FT_PING, 0, 0, opaque, 8);
  }
  finish("server_wire", "ping_flood");

  /* WINDOW_UPDATE: legal values (1, large) before a request, then the edge
   * values 0 and an overflowing increment on the connection. */
  begin(5);
  settings();
  {
    const char *kv[] = {REQ(hello), NULL};
    uint8_t one[4] = {0, 0, 0, 1}, big[4] = {0x40, 0, 0, 0};
    uint8_t zero[4] = {0, 0, 0, 0}, max[4] = {0x7f, 0xff, 0xff, 0xff};
    headers(1, 0, kv);
    frame(FT_WINDOW_UPDATE, 0, 1, one, 4);
    frame(FT_WINDOW_UPDATE, 0, 0, big, 4);
    frame(FT_WINDOW_UPDATE, 0, 1, big, 4);
    data(1, FL_END_STREAM, msg, grpc_msg(msg, "w"));
    finish("server_wire", "window_update");
    frame(FT_WINDOW_UPDATE, 0, 3, one, 4); /* idle stream */
    frame(FT_WINDOW_UPDATE, 0, 1, zero, 4);
    frame(FT_WINDOW_UPDATE, 0, 0, max, 4);
    frame(FT_WINDOW_UPDATE, 0, 0, max, 4);
    finish("server_wire", "window_update_edges");
  }

  /* A header block split into HEADERS + CONTINUATION + CONTINUATION. */
  begin(1);
  settings();
  {
    const char *kv[] = {REQ(again), "x-long", "0123456789abcdef0123456789",
                        NULL};
    size_t a, b;
    hl = hpack(buf, sizeof buf, kv);
    a = hl / 3;
    b = 2 * hl / 3;
    frame(FT_HEADERS, 0, 1, buf, a);
    frame(FT_CONTINUATION, 0, 1, buf + a, b - a);
    frame(FT_CONTINUATION, FL_END_HEADERS, 1, buf + b, hl - b);
    data(1, FL_END_STREAM, msg, grpc_msg(msg, "cont"));
  }
  finish("server_wire", "continuation");

  /* A deadline that has already passed, on the pool. */
  begin(7);
  settings();
  {
    const char *kv[] = {REQ(hello), "grpc-timeout", "1n", NULL};
    headers(1, 0, kv);
  }
  finish("server_wire", "deadline_1n");

  /* SETTINGS with odd values, PRIORITY, client GOAWAY, then a request. */
  begin(1);
  {
    uint8_t s[] = {0, 1, 0, 0, 0, 0,       /* HEADER_TABLE_SIZE 0 */
                   0, 4, 0x7f, 0xff, 0xff, 0xff, /* INITIAL_WINDOW max */
                   0, 5, 0, 0xff, 0xff, 0xff,    /* MAX_FRAME_SIZE max */
                   0, 0x42, 1, 2, 3, 4};         /* unknown */
    uint8_t prio[5] = {0x80, 0, 0, 0, 16};
    uint8_t ga[8] = {0, 0, 0, 1, 0, 0, 0, 0};
    frame(FT_SETTINGS, 0, 0, s, sizeof s);
    frame(FT_PRIORITY, 0, 1, prio, 5);
    request(1, hello, "prio");
    frame(FT_GOAWAY, 0, 0, ga, sizeof ga);
  }
  finish("server_wire", "settings_goaway");

  /* Bad prefaces: HTTP/1.1, and a truncated HTTP/2 preface. */
  begin(0);
  put("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
  finish("server_wire", "http1");
  begin(0);
  put("PRI * HTTP/2.0\r\n\r\nS", 19);
  finish("server_wire", "short_preface");
}

/* For fuzz_client_wire the input is what the server sends after its
 * SETTINGS; byte 0 holds flags (see fuzz_client_wire.c). */
static void client_seeds(void) {
  uint8_t msg[300];
  const char *resp[] = {":status", "200", "content-type", "application/grpc",
                        NULL};
  const char *ok[] = {"grpc-status", "0", NULL};

  begin(0);
  settings_ack();
  headers(1, 0, resp);
  data(1, 0, msg, grpc_msg(msg, "Hello, world!"));
  headers(1, FL_END_STREAM, ok);
  finish("client_wire", "ok");

  begin(0);
  settings_ack();
  {
    const char *tonly[] = {":status", "200", "content-type",
                           "application/grpc", "grpc-status", "3",
                           "grpc-message", "bad%20name%ZZ%e2%9c%93",
                           "x-err-bin", "AAECAw==", NULL};
    headers(1, FL_END_STREAM, tonly);
  }
  finish("client_wire", "trailers_only");

  begin(0);
  settings_ack();
  {
    const char *md[] = {":status", "200", "content-type",
                        "application/grpc+proto", "x-a", "1", "x-b-bin",
                        "AAEC", "x-bad-bin", "!!", NULL};
    const char *tr[] = {"grpc-status", "0", "x-t-bin", "/w", NULL};
    headers(1, 0, md);
    {
      size_t n = grpc_msg(msg, "split");
      data(1, 0, msg, 3);
      data(1, 0, msg + 3, n - 3);
    }
    headers(1, FL_END_STREAM, tr);
  }
  finish("client_wire", "metadata_split");

  begin(0);
  settings_ack();
  {
    const char *r404[] = {":status", "404", NULL};
    headers(1, FL_END_STREAM, r404);
  }
  finish("client_wire", "http_404");

  begin(0);
  settings_ack();
  {
    uint8_t big[] = {0, 0x7f, 0xff, 0xff, 0xff, 1};
    headers(1, 0, resp);
    data(1, 0, big, sizeof big);
  }
  finish("client_wire", "oversized");

  begin(0);
  settings_ack();
  {
    uint8_t two[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    const char *tr[] = {"grpc-status", "999999999", NULL};
    headers(1, 0, resp);
    data(1, 0, two, sizeof two);
    headers(1, FL_END_STREAM, tr);
  }
  finish("client_wire", "two_messages_bad_status");

  begin(0);
  settings_ack();
  {
    uint8_t code[4] = {0, 0, 0, 7};
    uint8_t ga[8] = {0, 0, 0, 0, 0, 0, 0, 2};
    headers(1, 0, resp);
    frame(FT_RST_STREAM, 0, 1, code, 4);
    frame(FT_GOAWAY, 0, 0, ga, 8);
  }
  finish("client_wire", "rst_goaway");

  begin(0);
  settings_ack();
  {
    uint8_t p[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint8_t cmp[] = {1, 0, 0, 0, 3, 1, 2, 3};
    frame(FT_PING, 0, 0, p, 8);
    headers(1, 0, resp);
    data(1, FL_END_STREAM, cmp, sizeof cmp);
  }
  finish("client_wire", "compressed_no_trailers");
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  out_dir = argv[1];
  server_seeds();
  client_seeds();
  nghttp2_hd_deflate_del(deflater);
  return 0;
}
