/* SPDX-License-Identifier: MIT */
#include "io/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "cgrpc/error.h"
#include "util/mem.h"

/* ---- PEM material ---- */

typedef struct pem {
  char *data;
  size_t len;
} pem;

static void pem_clear(pem *p) {
  cgrpc__free(p->data);
  p->data = NULL;
  p->len = 0;
}

/* Replaces |*p| with a copy of |data|.  Returns 0 or CGRPC_ERR_NOMEM. */
static int pem_set(pem *p, const char *data, size_t len) {
  char *copy = cgrpc__malloc(len + 1);
  if (!copy)
    return CGRPC_ERR_NOMEM;
  memcpy(copy, data, len);
  copy[len] = '\0';
  pem_clear(p);
  p->data = copy;
  p->len = len;
  return 0;
}

/* Reads the file |path| into |*p|.  Returns 0, CGRPC_ERR_NOT_FOUND or
 * CGRPC_ERR_NOMEM. */
static int pem_read_file(pem *p, const char *path) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  size_t len = 0, cap = 0;
  if (!f)
    return CGRPC_ERR_NOT_FOUND;
  for (;;) {
    size_t n;
    if (len == cap) {
      char *nb;
      cap = cap ? cap * 2 : 4096;
      if (cap > (64u << 20) || !(nb = cgrpc__realloc(buf, cap + 1))) {
        cgrpc__free(buf);
        fclose(f);
        return cap > (64u << 20) ? CGRPC_ERR_PROTO : CGRPC_ERR_NOMEM;
      }
      buf = nb;
    }
    n = fread(buf + len, 1, cap - len, f);
    len += n;
    if (n == 0)
      break;
  }
  fclose(f);
  buf[len] = '\0';
  pem_clear(p);
  p->data = buf;
  p->len = len;
  return 0;
}

static BIO *pem_bio(const pem *p) {
  return BIO_new_mem_buf(p->data, (int)p->len);
}

/* A certificate chain and its key, from memory (|files| 0: |a| and |b| hold
 * |a_len| and |b_len| bytes) or from the files |a| and |b|.  Returns 0, or
 * the error with nothing allocated. */
static int pem_pair_load(pem *cert, pem *key, int files, const char *a,
                         size_t a_len, const char *b, size_t b_len) {
  int rv = files ? pem_read_file(cert, a) : pem_set(cert, a, a_len);
  if (rv == 0 && (rv = files ? pem_read_file(key, b) : pem_set(key, b, b_len)))
    pem_clear(cert);
  return rv;
}

/*
 * Puts |a| (and |b|, when |slot2| is not NULL) in place of |*slot|
 * (|*slot2|) and keeps them if |check(obj)| accepts the result (returns 0);
 * else the old ones go back.  Whichever pair is dropped is freed.  |lock|,
 * when not NULL, is held from the first read of the slots to the last
 * write.  Returns what |check| returned.
 */
static int pem_replace(pthread_mutex_t *lock, pem *slot, pem a, pem *slot2,
                       pem b, int (*check)(void *obj), void *obj) {
  pem old, old2 = {NULL, 0};
  int rv;
  if (lock)
    pthread_mutex_lock(lock);
  old = *slot;
  *slot = a;
  if (slot2) {
    old2 = *slot2;
    *slot2 = b;
  }
  rv = check(obj);
  if (rv != 0) {
    *slot = old;
    if (slot2)
      *slot2 = old2;
    old = a;
    old2 = b;
  }
  if (lock)
    pthread_mutex_unlock(lock);
  pem_clear(&old);
  pem_clear(&old2);
  return rv;
}

/* Loads a certificate chain (the first is the end entity) and its key into
 * |ctx|.  Returns 0 or CGRPC_ERR_PROTO. */
static int load_cert_and_key(SSL_CTX *ctx, const pem *cert, const pem *key) {
  BIO *b = pem_bio(cert);
  X509 *x;
  EVP_PKEY *pk;
  int rv = CGRPC_ERR_PROTO;
  if (!b)
    return CGRPC_ERR_NOMEM;
  x = PEM_read_bio_X509(b, NULL, NULL, NULL);
  if (x && SSL_CTX_use_certificate(ctx, x) == 1) {
    X509 *extra;
    rv = 0;
    while ((extra = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
      if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
        X509_free(extra);
        rv = CGRPC_ERR_PROTO;
      }
  }
  X509_free(x);
  BIO_free(b);
  ERR_clear_error(); /* the end of the chain reads as an error */
  if (rv != 0)
    return rv;
  b = pem_bio(key);
  if (!b)
    return CGRPC_ERR_NOMEM;
  pk = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
  BIO_free(b);
  rv = pk && SSL_CTX_use_PrivateKey(ctx, pk) == 1 &&
               SSL_CTX_check_private_key(ctx) == 1
           ? 0
           : CGRPC_ERR_PROTO;
  EVP_PKEY_free(pk);
  ERR_clear_error();
  return rv;
}

/* Adds every certificate of |ca| to |ctx|'s store (and, for a server, to
 * the CA names it sends).  Returns 0 or CGRPC_ERR_PROTO. */
static int load_cas(SSL_CTX *ctx, const pem *ca, int server) {
  X509_STORE *store = SSL_CTX_get_cert_store(ctx);
  BIO *b = pem_bio(ca);
  X509 *x;
  int n = 0;
  if (!b)
    return CGRPC_ERR_NOMEM;
  while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
    if (X509_STORE_add_cert(store, x) == 1)
      n++;
    if (server)
      SSL_CTX_add_client_CA(ctx, x);
    X509_free(x);
  }
  BIO_free(b);
  ERR_clear_error();
  return n > 0 ? 0 : CGRPC_ERR_PROTO;
}

/* What both sides share: TLS 1.2 and later, partial writes from a buffer
 * that may move between retries, buffers released while idle. */
static SSL_CTX *ctx_new(const SSL_METHOD *method) {
  SSL_CTX *ctx = SSL_CTX_new(method);
  if (!ctx)
    return NULL;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  return ctx;
}

/* ---- server credentials ---- */

struct cgrpc_server_credentials {
  atomic_int refs;
  pthread_mutex_t lock; /* guards everything below */
  pem cert, key, ca;
  cgrpc_client_auth auth;
  SSL_CTX *ctx; /* built from the above once a certificate is set */
};

const char *cgrpc_tls_load_error(void) {
  return cgrpc__ossl_load() == 0 ? NULL : cgrpc__ossl_error();
}

int cgrpc_server_credentials_new(cgrpc_server_credentials **creds) {
  cgrpc_server_credentials *c;
  int rv;
  if (!creds)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if ((rv = cgrpc__ossl_load()) != 0)
    return rv;
  c = cgrpc__calloc(1, sizeof *c);
  if (!c)
    return CGRPC_ERR_NOMEM;
  atomic_init(&c->refs, 1);
  pthread_mutex_init(&c->lock, NULL);
  *creds = c;
  return 0;
}

void cgrpc__server_creds_ref(cgrpc_server_credentials *creds) {
  atomic_fetch_add(&creds->refs, 1);
}

void cgrpc_server_credentials_del(cgrpc_server_credentials *creds) {
  if (!creds || atomic_fetch_sub(&creds->refs, 1) != 1)
    return;
  SSL_CTX_free(creds->ctx);
  pem_clear(&creds->cert);
  pem_clear(&creds->key);
  pem_clear(&creds->ca);
  pthread_mutex_destroy(&creds->lock);
  cgrpc__free(creds);
}

/* The server's choice of protocol: h2 or nothing (a fatal alert). */
static int alpn_select(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg) {
  unsigned int i = 0;
  (void)ssl;
  (void)arg;
  while (i < inlen) {
    unsigned int n = in[i];
    if (i + 1 + n > inlen)
      break;
    if (n == 2 && memcmp(in + i + 1, "h2", 2) == 0) {
      *out = in + i + 1;
      *outlen = 2;
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + n;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* Builds the server context from |c|'s material (lock held).  Returns 0,
 * or an error code leaving |c->ctx| as it was. */
static int server_build(cgrpc_server_credentials *c) {
  static const unsigned char sid_ctx[] = "cgrpc";
  SSL_CTX *ctx;
  int rv, mode = SSL_VERIFY_NONE;
  if (!c->cert.data || !c->key.data)
    return 0; /* not usable yet */
  ctx = ctx_new(TLS_server_method());
  if (!ctx)
    return CGRPC_ERR_NOMEM;
  SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
  /* Sessions are resumed (tickets, and the cache for TLS 1.2 ids); the id
   * context is needed once client certificates are verified. */
  SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
  rv = load_cert_and_key(ctx, &c->cert, &c->key);
  if (rv == 0 && c->ca.data)
    rv = load_cas(ctx, &c->ca, 1);
  if (rv == 0 && c->auth != CGRPC_CLIENT_AUTH_NONE) {
    if (!c->ca.data)
      rv = CGRPC_ERR_INVALID_ARGUMENT;
    mode = SSL_VERIFY_PEER;
    if (c->auth == CGRPC_CLIENT_AUTH_REQUIRE)
      mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  }
  if (rv != 0) {
    SSL_CTX_free(ctx);
    return rv;
  }
  SSL_CTX_set_verify(ctx, mode, NULL);
  SSL_CTX_free(c->ctx); /* connections keep theirs */
  c->ctx = ctx;
  return 0;
}

/* Sets |*slot| (and |*slot2|) from |a| (|b|) and rebuilds; restores the
 * old material when the build fails. */
static int server_check(void *c) { return server_build(c); }

/* The new material in place if the credentials still build a context. */
static int server_update(cgrpc_server_credentials *c, pem *slot, pem a,
                         pem *slot2, pem b) {
  return pem_replace(&c->lock, slot, a, slot2, b, server_check, c);
}

int cgrpc_server_credentials_set_cert_pem(cgrpc_server_credentials *creds,
                                          const char *cert_chain,
                                          size_t cert_len,
                                          const char *private_key,
                                          size_t key_len) {
  pem cert = {NULL, 0}, key = {NULL, 0};
  int rv;
  if (!creds || !cert_chain || !private_key)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if ((rv = pem_pair_load(&cert, &key, 0, cert_chain, cert_len, private_key,
                          key_len)) != 0)
    return rv;
  return server_update(creds, &creds->cert, cert, &creds->key, key);
}

int cgrpc_server_credentials_set_cert_files(cgrpc_server_credentials *creds,
                                            const char *cert_chain_file,
                                            const char *private_key_file) {
  pem cert = {NULL, 0}, key = {NULL, 0};
  int rv;
  if (!creds || !cert_chain_file || !private_key_file)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if ((rv = pem_pair_load(&cert, &key, 1, cert_chain_file, 0, private_key_file,
                          0)) != 0)
    return rv;
  return server_update(creds, &creds->cert, cert, &creds->key, key);
}

int cgrpc_server_credentials_set_client_ca_pem(cgrpc_server_credentials *creds,
                                               const char *ca, size_t len) {
  pem p = {NULL, 0};
  int rv;
  if (!creds || !ca)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if ((rv = pem_set(&p, ca, len)) != 0)
    return rv;
  return server_update(creds, &creds->ca, p, NULL, (pem){NULL, 0});
}

int cgrpc_server_credentials_set_client_ca_file(cgrpc_server_credentials *creds,
                                                const char *ca_file) {
  pem p = {NULL, 0};
  int rv;
  if (!creds || !ca_file)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if ((rv = pem_read_file(&p, ca_file)) != 0)
    return rv;
  return server_update(creds, &creds->ca, p, NULL, (pem){NULL, 0});
}

int cgrpc_server_credentials_set_client_auth(cgrpc_server_credentials *creds,
                                             cgrpc_client_auth mode) {
  cgrpc_client_auth old;
  int rv;
  if (!creds || (unsigned)mode > CGRPC_CLIENT_AUTH_REQUIRE)
    return CGRPC_ERR_INVALID_ARGUMENT;
  pthread_mutex_lock(&creds->lock);
  old = creds->auth;
  creds->auth = mode;
  rv = server_build(creds);
  if (rv != 0 && rv != CGRPC_ERR_INVALID_ARGUMENT)
    creds->auth = old;
  pthread_mutex_unlock(&creds->lock);
  /* Without CAs yet: accepted now, checked again when they come. */
  return rv == CGRPC_ERR_INVALID_ARGUMENT ? 0 : rv;
}

SSL_CTX *cgrpc__server_creds_ctx(cgrpc_server_credentials *creds) {
  SSL_CTX *ctx;
  pthread_mutex_lock(&creds->lock);
  ctx = creds->ctx;
  if (ctx)
    SSL_CTX_up_ref(ctx);
  pthread_mutex_unlock(&creds->lock);
  return ctx;
}

/* ---- channel credentials ---- */

struct cgrpc_channel_credentials {
  atomic_int refs;
  pem ca, cert, key;
  int skip_hostname;
};

int cgrpc_channel_credentials_new(cgrpc_channel_credentials **creds) {
  cgrpc_channel_credentials *c;
  int rv;
  if (!creds)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if ((rv = cgrpc__ossl_load()) != 0)
    return rv;
  c = cgrpc__calloc(1, sizeof *c);
  if (!c)
    return CGRPC_ERR_NOMEM;
  atomic_init(&c->refs, 1);
  *creds = c;
  return 0;
}

void cgrpc__channel_creds_ref(cgrpc_channel_credentials *creds) {
  atomic_fetch_add(&creds->refs, 1);
}

void cgrpc_channel_credentials_del(cgrpc_channel_credentials *creds) {
  if (!creds || atomic_fetch_sub(&creds->refs, 1) != 1)
    return;
  pem_clear(&creds->ca);
  pem_clear(&creds->cert);
  pem_clear(&creds->key);
  cgrpc__free(creds);
}

/* Checks |c|'s material by building a context from it. */
static int channel_check(const cgrpc_channel_credentials *c) {
  char err[128];
  SSL_CTX *ctx = cgrpc__channel_creds_ctx_new(c, NULL, err, sizeof err);
  if (!ctx)
    return CGRPC_ERR_PROTO;
  SSL_CTX_free(ctx);
  return 0;
}

/* Sets |*slot| (and |*slot2|) from |a| (|b|), keeping the old material
 * when it does not load. */
static int channel_check_cb(void *c) { return channel_check(c); }

/* The new material in place if the credentials still check.  (One thread
 * at a time per object: no lock.) */
static int channel_update(cgrpc_channel_credentials *c, pem *slot, pem a,
                          pem *slot2, pem b) {
  return pem_replace(NULL, slot, a, slot2, b, channel_check_cb, c);
}

int cgrpc_channel_credentials_set_root_certs_pem(
    cgrpc_channel_credentials *creds, const char *ca, size_t len) {
  pem p = {NULL, 0};
  int rv;
  if (!creds || !ca)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if ((rv = pem_set(&p, ca, len)) != 0)
    return rv;
  return channel_update(creds, &creds->ca, p, NULL, (pem){NULL, 0});
}

int cgrpc_channel_credentials_set_root_certs_file(
    cgrpc_channel_credentials *creds, const char *ca_file) {
  pem p = {NULL, 0};
  int rv;
  if (!creds || !ca_file)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if ((rv = pem_read_file(&p, ca_file)) != 0)
    return rv;
  return channel_update(creds, &creds->ca, p, NULL, (pem){NULL, 0});
}

int cgrpc_channel_credentials_set_cert_pem(cgrpc_channel_credentials *creds,
                                           const char *cert_chain,
                                           size_t cert_len,
                                           const char *private_key,
                                           size_t key_len) {
  pem cert = {NULL, 0}, key = {NULL, 0};
  int rv;
  if (!creds || !cert_chain || !private_key)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if ((rv = pem_pair_load(&cert, &key, 0, cert_chain, cert_len, private_key,
                          key_len)) != 0)
    return rv;
  return channel_update(creds, &creds->cert, cert, &creds->key, key);
}

int cgrpc_channel_credentials_set_cert_files(cgrpc_channel_credentials *creds,
                                             const char *cert_chain_file,
                                             const char *private_key_file) {
  pem cert = {NULL, 0}, key = {NULL, 0};
  int rv;
  if (!creds || !cert_chain_file || !private_key_file)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if ((rv = pem_pair_load(&cert, &key, 1, cert_chain_file, 0, private_key_file,
                          0)) != 0)
    return rv;
  return channel_update(creds, &creds->cert, cert, &creds->key, key);
}

void cgrpc_channel_credentials_set_insecure_skip_hostname_check_for_testing(
    cgrpc_channel_credentials *creds, int insecure) {
  if (creds)
    creds->skip_hostname = insecure != 0;
}

int cgrpc__channel_creds_skip_hostname(const cgrpc_channel_credentials *creds) {
  return creds->skip_hostname;
}

/* ---- sessions for resumption ---- */

typedef struct cache_entry {
  char *key;
  SSL_SESSION *session;
  uint64_t used; /* the cache's clock when last put or taken */
} cache_entry;

struct cgrpc_tls_session_cache {
  atomic_int refs;
  pthread_mutex_t lock;
  size_t cap, n;
  uint64_t clock;
  cache_entry *entries;
};

int cgrpc_tls_session_cache_new(cgrpc_tls_session_cache **cache,
                                size_t capacity) {
  cgrpc_tls_session_cache *c;
  int rv;
  if (!cache || capacity == 0 || capacity > 1000000)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if ((rv = cgrpc__ossl_load()) != 0)
    return rv;
  c = cgrpc__calloc(1, sizeof *c);
  if (c)
    c->entries = cgrpc__calloc(capacity, sizeof *c->entries);
  if (!c || !c->entries) {
    cgrpc__free(c);
    return CGRPC_ERR_NOMEM;
  }
  atomic_init(&c->refs, 1);
  pthread_mutex_init(&c->lock, NULL);
  c->cap = capacity;
  *cache = c;
  return 0;
}

void cgrpc__tls_session_cache_ref(cgrpc_tls_session_cache *cache) {
  atomic_fetch_add(&cache->refs, 1);
}

void cgrpc_tls_session_cache_del(cgrpc_tls_session_cache *cache) {
  size_t i;
  if (!cache || atomic_fetch_sub(&cache->refs, 1) != 1)
    return;
  for (i = 0; i < cache->n; i++) {
    cgrpc__free(cache->entries[i].key);
    SSL_SESSION_free(cache->entries[i].session);
  }
  cgrpc__free(cache->entries);
  pthread_mutex_destroy(&cache->lock);
  cgrpc__free(cache);
}

static cache_entry *cache_find(cgrpc_tls_session_cache *c, const char *key) {
  for (size_t i = 0; i < c->n; i++)
    if (strcmp(c->entries[i].key, key) == 0)
      return &c->entries[i];
  return NULL;
}

/* Puts a reference to |session| under |key|, in place of an older one or
 * of the least recently used entry.  Out of memory it keeps nothing. */
static void cache_put(cgrpc_tls_session_cache *c, const char *key,
                      SSL_SESSION *session) {
  cache_entry *e;
  pthread_mutex_lock(&c->lock);
  if (!(e = cache_find(c, key))) {
    char *k = cgrpc__strdup(key);
    if (!k) {
      pthread_mutex_unlock(&c->lock);
      return;
    }
    if (c->n < c->cap) {
      e = &c->entries[c->n++];
    } else {
      e = &c->entries[0];
      for (size_t i = 1; i < c->n; i++)
        if (c->entries[i].used < e->used)
          e = &c->entries[i];
      cgrpc__free(e->key);
    }
    e->key = k;
  }
  SSL_SESSION_free(e->session); /* the replaced or evicted one, or NULL */
  SSL_SESSION_up_ref(session);
  e->session = session;
  e->used = ++c->clock;
  pthread_mutex_unlock(&c->lock);
}

/* A reference to the session under |key|, or NULL. */
static SSL_SESSION *cache_get(cgrpc_tls_session_cache *c, const char *key) {
  SSL_SESSION *s = NULL;
  cache_entry *e;
  pthread_mutex_lock(&c->lock);
  if ((e = cache_find(c, key)) != NULL) {
    s = e->session;
    SSL_SESSION_up_ref(s);
    e->used = ++c->clock;
  }
  pthread_mutex_unlock(&c->lock);
  return s;
}

int cgrpc__tls_sessions_init(cgrpc__tls_sessions *s,
                             cgrpc_tls_session_cache *cache, const char *key) {
  memset(s, 0, sizeof *s);
  if (cache) {
    if (!(s->key = cgrpc__strdup(key)))
      return CGRPC_ERR_NOMEM;
    cgrpc__tls_session_cache_ref(cache);
    s->cache = cache;
  }
  return 0;
}

void cgrpc__tls_sessions_clear(cgrpc__tls_sessions *s) {
  if (s->last) /* a plaintext channel may not have loaded OpenSSL */
    SSL_SESSION_free(s->last);
  cgrpc_tls_session_cache_del(s->cache);
  cgrpc__free(s->key);
  memset(s, 0, sizeof *s);
}

/*
 * A connection and the sessions kept for later ones never share an
 * SSL_SESSION object: OpenSSL marks the session a connection uses not
 * resumable when that connection is freed without having sent close_notify
 * (SSL_free, ssl_clear_bad_session), which would spoil a kept session for
 * every channel of the cache, from whichever loop thread frees it.  So
 * keep_session keeps a copy, and sessions_take hands out a copy.
 */

/* The session to offer: a copy of the shared cache's (another channel may
 * have a newer one), else of the newest this channel got; or NULL. */
static SSL_SESSION *sessions_take(cgrpc__tls_sessions *s) {
  SSL_SESSION *kept = s->cache ? cache_get(s->cache, s->key) : NULL;
  SSL_SESSION *copy;
  if (!kept && s->last && SSL_SESSION_up_ref(s->last))
    kept = s->last;
  if (!kept)
    return NULL;
  copy = SSL_SESSION_dup(kept); /* out of memory: a full handshake */
  SSL_SESSION_free(kept);
  return copy;
}

/* A new session from the server (after a handshake, or a TLS 1.3 ticket):
 * a copy is kept for the next connection of the channel, and in the shared
 * cache.  Out of memory it keeps nothing. */
static int keep_session(SSL *ssl, SSL_SESSION *session) {
  cgrpc__tls_sessions *s = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
  SSL_SESSION *copy;
  if (!s || !(copy = SSL_SESSION_dup(session)))
    return 0;
  if (s->cache)
    cache_put(s->cache, s->key, copy);
  SSL_SESSION_free(s->last);
  s->last = copy;
  return 0; /* OpenSSL keeps its reference to |session| */
}

/*
 * The system's root certificates (OpenSSL's default paths), parsed once for
 * the process and shared by every channel that sets no roots of its own:
 * Debian's bundle takes some 15 ms to parse, which a channel per call
 * would otherwise pay each time.  A failed load (out of memory) is tried
 * again by the next channel.  Returns 0, or -1 when the store cannot be
 * made.
 */
static pthread_mutex_t system_roots_lock = PTHREAD_MUTEX_INITIALIZER;
static X509_STORE *system_roots; /* kept until the process exits */

static int use_system_roots(SSL_CTX *ctx) {
  X509_STORE *store;
  pthread_mutex_lock(&system_roots_lock);
  if (!system_roots) {
    store = X509_STORE_new();
    if (store && X509_STORE_set_default_paths(store) == 1)
      system_roots = store;
    else
      X509_STORE_free(store);
    ERR_clear_error();
  }
  store = system_roots;
  pthread_mutex_unlock(&system_roots_lock);
  if (!store)
    return -1;
  SSL_CTX_set1_cert_store(ctx, store); /* takes a reference */
  return 0;
}

SSL_CTX *cgrpc__channel_creds_ctx_new(const cgrpc_channel_credentials *creds,
                                      cgrpc__tls_sessions *sessions, char *err,
                                      size_t err_size) {
  static const unsigned char alpn[] = {2, 'h', '2'};
  SSL_CTX *ctx = ctx_new(TLS_client_method());
  if (!ctx) {
    snprintf(err, err_size, "out of memory");
    return NULL;
  }
  /* SSL_CTX_set_alpn_protos returns 0 on success. */
  if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn) != 0)
    goto fail;
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  if (creds->ca.data) {
    if (load_cas(ctx, &creds->ca, 0) != 0) {
      snprintf(err, err_size, "the root certificates do not parse");
      SSL_CTX_free(ctx);
      return NULL;
    }
  } else if (use_system_roots(ctx) != 0) {
    snprintf(err, err_size, "cannot load the system's root certificates");
    SSL_CTX_free(ctx);
    return NULL;
  }
  if (creds->cert.data &&
      load_cert_and_key(ctx, &creds->cert, &creds->key) != 0) {
    snprintf(err, err_size,
             "the client certificate or key does not parse, or they do not "
             "match");
    SSL_CTX_free(ctx);
    return NULL;
  }
  /* Sessions for resumption are kept by the connection's owner. */
  if (sessions) {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
                                            SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_set_app_data(ctx, sessions);
    SSL_CTX_sess_set_new_cb(ctx, keep_session);
  }
  return ctx;
fail:
  snprintf(err, err_size, "cannot set up TLS");
  SSL_CTX_free(ctx);
  ERR_clear_error();
  return NULL;
}

/* ---- one connection ---- */

/*
 * The socket under a connection.  OpenSSL's socket BIO writes with write(),
 * which raises SIGPIPE when the peer has gone (a server that refuses our
 * certificate and closes, say) and kills a process that did not ignore it;
 * this one sends with MSG_NOSIGNAL, as the plaintext path does.  The fd is
 * the BIO's data; the connection owns and closes it.
 */
static int sock_bio_write(BIO *b, const char *buf, int n) {
  ssize_t r =
      send((int)(intptr_t)BIO_get_data(b), buf, (size_t)n, MSG_NOSIGNAL);
  BIO_clear_retry_flags(b);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    BIO_set_retry_write(b);
  return (int)r;
}

static int sock_bio_read(BIO *b, char *buf, int n) {
  ssize_t r = recv((int)(intptr_t)BIO_get_data(b), buf, (size_t)n, 0);
  BIO_clear_retry_flags(b);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    BIO_set_retry_read(b);
  return (int)r;
}

static long sock_bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)b;
  (void)num;
  (void)ptr;
  /* Writes are not buffered here: a flush has nothing to do.  Every other
   * request (kTLS, duplication, fd queries) is declined. */
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int sock_bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

/* The method, made by the first connection (again after an allocation
 * failure); it lives as long as the process. */
static BIO_METHOD *sock_bio_method(void) {
  static _Atomic(BIO_METHOD *) method;
  static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  BIO_METHOD *m = atomic_load_explicit(&method, memory_order_acquire);
  if (m)
    return m;
  pthread_mutex_lock(&lock);
  if (!(m = atomic_load_explicit(&method, memory_order_relaxed))) {
    m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK |
                         BIO_TYPE_DESCRIPTOR,
                     "cgrpc socket");
    if (m && (!BIO_meth_set_write(m, sock_bio_write) ||
              !BIO_meth_set_read(m, sock_bio_read) ||
              !BIO_meth_set_ctrl(m, sock_bio_ctrl) ||
              !BIO_meth_set_create(m, sock_bio_create))) {
      BIO_meth_free(m);
      m = NULL;
    }
    if (m)
      atomic_store_explicit(&method, m, memory_order_release);
  }
  pthread_mutex_unlock(&lock);
  return m;
}

/* A BIO over |fd|, or NULL when out of memory. */
static BIO *sock_bio_new(int fd) {
  BIO_METHOD *m = sock_bio_method();
  BIO *b;
  if (!m || !(b = BIO_new(m)))
    return NULL;
  BIO_set_data(b, (void *)(intptr_t)fd);
  return b;
}

static int is_ip_literal(const char *host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host, buf) == 1 ||
         inet_pton(AF_INET6, host, buf) == 1;
}

SSL *cgrpc__tls_conn_new(SSL_CTX *ctx, int fd, int server, const char *host,
                         int skip_host, cgrpc__tls_sessions *sessions) {
  SSL_SESSION *session;
  SSL *ssl = SSL_new(ctx);
  BIO *bio;
  if (!ssl)
    return NULL;
  if (!(bio = sock_bio_new(fd)))
    goto fail;
  SSL_set_bio(ssl, bio, bio); /* the SSL owns it now */
  if (server) {
    SSL_set_accept_state(ssl);
    return ssl;
  }
  SSL_set_connect_state(ssl);
  if (host && *host) {
    if (!is_ip_literal(host) && SSL_set_tlsext_host_name(ssl, host) != 1)
      goto fail;
    if (!skip_host) {
      X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
      int ok = is_ip_literal(host)
                   ? X509_VERIFY_PARAM_set1_ip_asc(param, host)
                   : X509_VERIFY_PARAM_set1_host(param, host, 0);
      if (ok != 1)
        goto fail;
    }
  }
  if (sessions && (session = sessions_take(sessions)) != NULL) {
    SSL_set_session(ssl, session); /* takes its own reference */
    SSL_SESSION_free(session);
  }
  return ssl;
fail:
  SSL_free(ssl);
  ERR_clear_error();
  return NULL;
}

/* Why |ssl| failed, for people; clears OpenSSL's error queue. */
static void describe_failure(SSL *ssl, int ssl_err, char *err,
                             size_t err_size) {
  long verify = SSL_get_verify_result(ssl);
  unsigned long e = ERR_peek_last_error();
  if (verify != X509_V_OK &&
      ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
    snprintf(err, err_size, "certificate verify failed: %s",
             X509_verify_cert_error_string(verify));
  } else if (e != 0) {
    const char *why = ERR_reason_error_string(e);
    int reason = ERR_GET_REASON(e);
    snprintf(err, err_size, "%s%s", why ? why : "TLS error",
             reason == SSL_R_WRONG_VERSION_NUMBER ||
                     reason == SSL_R_PACKET_LENGTH_TOO_LONG ||
                     reason == SSL_R_HTTP_REQUEST
                 ? " (is the peer speaking TLS?)"
                 : "");
  } else if (ssl_err == SSL_ERROR_SYSCALL) {
    snprintf(err, err_size, "%s",
             errno ? strerror(errno)
                   : "the peer closed the connection during the TLS "
                     "handshake");
  } else {
    snprintf(err, err_size, "TLS error %d", ssl_err);
  }
  ERR_clear_error();
}

int cgrpc__tls_handshake(SSL *ssl, char *err, size_t err_size) {
  const unsigned char *proto = NULL;
  unsigned int len = 0;
  int rv = SSL_do_handshake(ssl);
  if (rv != 1) {
    int e = SSL_get_error(ssl, rv);
    if (e == SSL_ERROR_WANT_READ)
      return CGRPC__TLS_WANT_READ;
    if (e == SSL_ERROR_WANT_WRITE)
      return CGRPC__TLS_WANT_WRITE;
    describe_failure(ssl, e, err, err_size);
    return CGRPC__TLS_FAILED;
  }
  SSL_get0_alpn_selected(ssl, &proto, &len);
  if (len != 2 || memcmp(proto, "h2", 2) != 0) {
    snprintf(err, err_size,
             "the peer did not negotiate HTTP/2 (ALPN \"h2\") over TLS");
    return CGRPC__TLS_FAILED;
  }
  return 0;
}

ssize_t cgrpc__tls_read(SSL *ssl, void *buf, size_t n, char *err,
                        size_t err_size) {
  int rv = SSL_read(ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
  int e;
  if (rv > 0)
    return rv;
  e = SSL_get_error(ssl, rv);
  switch (e) {
  case SSL_ERROR_WANT_READ:
    return CGRPC__TLS_WANT_READ;
  case SSL_ERROR_WANT_WRITE:
    return CGRPC__TLS_WANT_WRITE;
  case SSL_ERROR_ZERO_RETURN:
    return 0;
  case SSL_ERROR_SYSCALL:
    if (ERR_peek_error() == 0 &&
        (rv == 0 || errno == 0 || errno == EPIPE || errno == ECONNRESET)) {
      ERR_clear_error();
      return 0; /* closed without close_notify: a plain close for us */
    }
    /* fall through */
  default:
    describe_failure(ssl, e, err, err_size);
    return CGRPC__TLS_FAILED;
  }
}

ssize_t cgrpc__tls_write(SSL *ssl, const void *p, size_t n, char *err,
                         size_t err_size) {
  int rv = SSL_write(ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
  int e;
  if (rv > 0)
    return rv;
  e = SSL_get_error(ssl, rv);
  if (e == SSL_ERROR_WANT_WRITE)
    return CGRPC__TLS_WANT_WRITE;
  if (e == SSL_ERROR_WANT_READ)
    return CGRPC__TLS_WANT_READ;
  describe_failure(ssl, e, err, err_size);
  return CGRPC__TLS_FAILED;
}

void cgrpc__tls_conn_free(SSL *ssl) {
  if (!ssl)
    return;
  if (SSL_is_init_finished(ssl))
    SSL_shutdown(ssl); /* one try: close_notify if the socket takes it */
  ERR_clear_error();
  SSL_free(ssl);
}

/* ---- the peer ---- */

static char *name_string(X509_NAME *name) {
  BIO *b = BIO_new(BIO_s_mem());
  char *data, *s = NULL;
  long len;
  if (!b)
    return NULL;
  if (X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) >= 0) {
    len = BIO_get_mem_data(b, &data);
    s = cgrpc__strndup(data, (size_t)len);
  }
  BIO_free(b);
  return s;
}

/* "DNS:name", "IP:addr", "URI:...", "email:..." for one SAN, or NULL. */
static char *san_string(const GENERAL_NAME *gn) {
  char buf[300];
  const unsigned char *d;
  int len;
  switch (gn->type) {
  case GEN_DNS:
  case GEN_URI:
  case GEN_EMAIL:
    d = ASN1_STRING_get0_data(gn->d.ia5);
    len = ASN1_STRING_length(gn->d.ia5);
    snprintf(buf, sizeof buf, "%s:%.*s",
             gn->type == GEN_DNS   ? "DNS"
             : gn->type == GEN_URI ? "URI"
                                   : "email",
             len, (const char *)d);
    break;
  case GEN_IPADD: {
    char ip[INET6_ADDRSTRLEN];
    d = ASN1_STRING_get0_data(gn->d.ip);
    len = ASN1_STRING_length(gn->d.ip);
    if (!inet_ntop(len == 4 ? AF_INET : AF_INET6, d, ip, sizeof ip) ||
        (len != 4 && len != 16))
      return NULL;
    snprintf(buf, sizeof buf, "IP:%s", ip);
    break;
  }
  default:
    return NULL;
  }
  return cgrpc__strdup(buf);
}

void cgrpc__tls_describe(SSL *ssl, char *buf, size_t size) {
  X509 *cert = SSL_get0_peer_certificate(ssl);
  char *subject = cert ? name_string(X509_get_subject_name(cert)) : NULL;
  snprintf(buf, size, "%s %s%s, %s%s%s", SSL_get_version(ssl),
           SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)),
           SSL_session_reused(ssl) == 1 ? ", resumed" : "",
           cert ? "peer certificate " : "no peer certificate",
           subject ? subject : "",
           cert && SSL_get_verify_result(ssl) != X509_V_OK ? " (not verified)"
                                                            : "");
  cgrpc__free(subject);
  ERR_clear_error();
}

cgrpc__tls_peer *cgrpc__tls_peer_new(SSL *ssl) {
  cgrpc__tls_peer *peer = cgrpc__calloc(1, sizeof *peer);
  X509 *cert;
  GENERAL_NAMES *names;
  int i, n;
  if (!peer)
    return NULL;
  atomic_init(&peer->refs, 1);
  peer->version = SSL_get_version(ssl);
  snprintf(peer->cipher, sizeof peer->cipher, "%s",
           SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)));
  peer->reused = SSL_session_reused(ssl) == 1;
  cert = SSL_get0_peer_certificate(ssl);
  if (!cert)
    return peer;
  peer->verified = SSL_get_verify_result(ssl) == X509_V_OK;
  peer->subject = name_string(X509_get_subject_name(cert));
  names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
  n = names ? sk_GENERAL_NAME_num(names) : 0;
  if (n > 0)
    peer->sans = cgrpc__calloc((size_t)n, sizeof *peer->sans);
  for (i = 0; peer->sans && i < n; i++) {
    char *s = san_string(sk_GENERAL_NAME_value(names, i));
    if (s)
      peer->sans[peer->n_sans++] = s;
  }
  GENERAL_NAMES_free(names);
  ERR_clear_error();
  return peer;
}

void cgrpc__tls_peer_ref(cgrpc__tls_peer *peer) {
  atomic_fetch_add(&peer->refs, 1);
}

void cgrpc__tls_peer_unref(cgrpc__tls_peer *peer) {
  size_t i;
  if (!peer || atomic_fetch_sub(&peer->refs, 1) != 1)
    return;
  for (i = 0; i < peer->n_sans; i++)
    cgrpc__free(peer->sans[i]);
  cgrpc__free(peer->sans);
  cgrpc__free(peer->subject);
  cgrpc__free(peer);
}
