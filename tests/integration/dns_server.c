/* SPDX-License-Identifier: MIT */
#include "dns_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TYPE_A 1
#define TYPE_AAAA 28
#define MAX_QUEUED 64

/* An answer waiting for its time. */
typedef struct queued {
  int64_t due_ms;
  struct sockaddr_in to;
  size_t len;
  unsigned char buf[512];
} queued;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void it_dns_init(it_dns_server *s) {
  memset(s, 0, sizeof *s);
  s->fd = -1;
  pthread_mutex_init(&s->lock, NULL);
}

void it_dns_set(it_dns_server *s, const char *name, const char *a,
                const char *aaaa) {
  int i;
  pthread_mutex_lock(&s->lock);
  for (i = 0; i < s->n_names; i++)
    if (strcasecmp(s->names[i].name, name) == 0) {
      memset(s->names[i].a, 0, sizeof s->names[i].a);
      memset(s->names[i].aaaa, 0, sizeof s->names[i].aaaa);
      s->names[i].a[0] = a;
      s->names[i].aaaa[0] = aaaa;
    }
  pthread_mutex_unlock(&s->lock);
}

static const it_dns_name *find(const it_dns_server *s, const char *name) {
  int i;
  for (i = 0; i < s->n_names; i++)
    if (strcasecmp(s->names[i].name, name) == 0)
      return &s->names[i];
  return NULL;
}

/* Builds the answer to the question in |q| (|n| bytes) into |out|;
 * returns its length, or 0 to drop a packet that is not a question. */
static size_t answer(const it_dns_server *s, const unsigned char *q, size_t n,
                     unsigned char *out) {
  char name[256];
  size_t pos = 12, nlen = 0, qend, len;
  unsigned qtype, ancount = 0;
  const it_dns_name *entry;
  const char *const *list;
  int family, rlen, i;
  if (n < 12 || (q[2] & 0x80) || q[4] != 0 || q[5] != 1)
    return 0;
  while (pos < n && q[pos]) {
    size_t l = q[pos];
    if (l > 63 || pos + 1 + l >= n || nlen + l + 1 >= sizeof name)
      return 0;
    if (nlen)
      name[nlen++] = '.';
    memcpy(name + nlen, q + pos + 1, l);
    nlen += l;
    pos += 1 + l;
  }
  name[nlen] = 0;
  if (pos + 5 > n)
    return 0;
  qend = pos + 5; /* the name's 0, type, class */
  qtype = (unsigned)q[pos + 1] << 8 | q[pos + 2];
  memcpy(out, q, qend);
  out[2] = 0x80 | (q[2] & 0x01); /* QR, RD copied */
  out[3] = 0x80;                 /* RA, NOERROR */
  memset(out + 6, 0, 6);         /* counts: answers set below */
  len = qend;
  entry = find(s, name);
  if (!entry) {
    out[3] |= 3; /* NXDOMAIN */
    return len;
  }
  list = qtype == TYPE_A ? entry->a : qtype == TYPE_AAAA ? entry->aaaa : NULL;
  family = qtype == TYPE_A ? AF_INET : AF_INET6;
  rlen = qtype == TYPE_A ? 4 : 16;
  for (i = 0; list && i < IT_DNS_MAX_ADDRS && list[i]; i++) {
    unsigned char *r = out + len;
    if (len + 12 + (size_t)rlen > 512)
      break;
    r[0] = 0xc0; /* the name: a pointer to the question's */
    r[1] = 12;
    r[2] = 0;
    r[3] = (unsigned char)qtype;
    r[4] = 0;
    r[5] = 1;                      /* class IN */
    r[6] = r[7] = r[8] = 0;
    r[9] = 60;                     /* TTL */
    r[10] = 0;
    r[11] = (unsigned char)rlen;
    if (inet_pton(family, list[i], r + 12) != 1)
      continue;
    len += 12 + (size_t)rlen;
    ancount++;
  }
  out[7] = (unsigned char)ancount;
  return len;
}

static void *serve(void *arg) {
  it_dns_server *s = arg;
  queued queue[MAX_QUEUED];
  int n_queued = 0, i;
  while (!atomic_load(&s->stop)) {
    struct pollfd p = {.fd = s->fd, .events = POLLIN};
    int64_t now = now_ms();
    /* Send what is due. */
    for (i = 0; i < n_queued;) {
      if (queue[i].due_ms <= now) {
        sendto(s->fd, queue[i].buf, queue[i].len, 0,
               (struct sockaddr *)&queue[i].to, sizeof queue[i].to);
        queue[i] = queue[--n_queued];
      } else {
        i++;
      }
    }
    if (poll(&p, 1, 20) == 1) {
      unsigned char q[512];
      struct sockaddr_in from;
      socklen_t flen = sizeof from;
      ssize_t r = recvfrom(s->fd, q, sizeof q, 0, (struct sockaddr *)&from,
                           &flen);
      queued *out;
      if (r <= 0)
        continue;
      atomic_fetch_add(&s->questions, 1);
      if (s->never || n_queued == MAX_QUEUED)
        continue;
      out = &queue[n_queued];
      pthread_mutex_lock(&s->lock);
      out->len = answer(s, q, (size_t)r, out->buf);
      pthread_mutex_unlock(&s->lock);
      if (!out->len)
        continue;
      out->to = from;
      out->due_ms = now_ms() + s->delay_ms;
      n_queued++;
    }
  }
  return NULL;
}

int it_dns_start(it_dns_server *s) {
  struct sockaddr_in sin;
  socklen_t len = sizeof sin;
  s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s->fd < 0)
    return -1;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s->fd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
      getsockname(s->fd, (struct sockaddr *)&sin, &len) != 0 ||
      pthread_create(&s->thread, NULL, serve, s) != 0) {
    close(s->fd);
    s->fd = -1;
    return -1;
  }
  s->port = ntohs(sin.sin_port);
  return 0;
}

void it_dns_stop(it_dns_server *s) {
  if (s->fd < 0)
    return;
  atomic_store(&s->stop, 1);
  pthread_join(s->thread, NULL);
  close(s->fd);
  s->fd = -1;
}
