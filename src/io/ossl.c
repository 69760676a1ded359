/* SPDX-License-Identifier: MIT */
#define CGRPC__OSSL_NO_REDIRECT
#include "io/ossl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "cgrpc/error.h"

cgrpc__ossl_api cgrpc__ossl;

#define CGRPC__STR2(x) #x
#define CGRPC__STR(x) CGRPC__STR2(x)
/* The libssl of the major version the headers are from: its ABI. */
#define LIBSSL_SONAME "libssl.so." CGRPC__STR(OPENSSL_VERSION_MAJOR)

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int load_rv;
static char load_err[200];

static void load(void) {
  /* RTLD_NODELETE: the table points into it for the process's life.  A
   * process that links OpenSSL itself gets the same instance. */
  void *h = dlopen(LIBSSL_SONAME, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (!h) {
    const char *why = dlerror();
    snprintf(load_err, sizeof load_err,
             "TLS needs OpenSSL's " LIBSSL_SONAME " (Debian: libssl3): %s",
             why ? why : "not found");
    load_rv = CGRPC_ERR_UNSUPPORTED;
    return;
  }
  /* dlsym on the handle also searches what libssl depends on (libcrypto). */
#define CGRPC__OSSL_LOOKUP(name)                                               \
  *(void **)&cgrpc__ossl.p_##name = dlsym(h, #name);                           \
  if (!cgrpc__ossl.p_##name) {                                                 \
    snprintf(load_err, sizeof load_err,                                        \
             LIBSSL_SONAME " has no %s (OpenSSL too old?)", #name);            \
    memset(&cgrpc__ossl, 0, sizeof cgrpc__ossl);                               \
    load_rv = CGRPC_ERR_UNSUPPORTED;                                           \
    return;                                                                    \
  }
  CGRPC__OSSL_FUNCS(CGRPC__OSSL_LOOKUP)
#undef CGRPC__OSSL_LOOKUP
}

int cgrpc__ossl_load(void) {
  pthread_once(&load_once, load);
  return load_rv;
}

const char *cgrpc__ossl_error(void) { return load_err; }
