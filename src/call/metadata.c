/* SPDX-License-Identifier: MIT */
#include "call/metadata.h"

#include <string.h>

#include "call/wire.h"
#include "cgrpc/error.h"
#include "cgrpc/status.h"
#include "util/base64.h"
#include "util/mem.h"

#define BIN_SUFFIX "-bin"
#define BIN_SUFFIX_LEN (sizeof(BIN_SUFFIX) - 1)

/* Keys the transport owns, besides the "grpc-" and ':' prefixes. */
static const struct {
  const char *name;
  size_t len;
} reserved_keys[] = {
#define K(s)                                                                   \
  { s, sizeof(s) - 1 }
    K("content-type"),     K("te"),
    K("user-agent"),       K("host"),
    K("connection"),       K("keep-alive"),
    K("proxy-connection"), K("transfer-encoding"),
    K("upgrade"),
#undef K
};

int cgrpc__md_key_valid(const char *k, size_t n) {
  size_t i;
  if (n == 0) {
    return 0;
  }
  for (i = 0; i < n; ++i) {
    char c = k[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_' || c == '.')) {
      return 0;
    }
  }
  return 1;
}

int cgrpc__md_key_is_bin(const char *k, size_t n) {
  return n >= BIN_SUFFIX_LEN &&
         memcmp(k + n - BIN_SUFFIX_LEN, BIN_SUFFIX, BIN_SUFFIX_LEN) == 0;
}

int cgrpc__md_value_valid(const uint8_t *v, size_t n) {
  size_t i;
  for (i = 0; i < n; ++i) {
    if (v[i] < 0x20 || v[i] > 0x7e) {
      return 0;
    }
  }
  return 1;
}

int cgrpc__md_key_reserved(const char *k, size_t n) {
  size_t i;
  if (n >= 1 && k[0] == ':') {
    return 1;
  }
  if (n >= 5 && memcmp(k, "grpc-", 5) == 0) {
    return 1;
  }
  for (i = 0; i < sizeof(reserved_keys) / sizeof(reserved_keys[0]); ++i) {
    if (n == reserved_keys[i].len && memcmp(k, reserved_keys[i].name, n) == 0) {
      return 1;
    }
  }
  return 0;
}

void cgrpc__metadata_array_init(cgrpc_metadata_array *md) {
  md->entries = NULL;
  md->count = 0;
  md->cap = 0;
}

void cgrpc__metadata_array_clear(cgrpc_metadata_array *md) {
  size_t i;
  for (i = 0; i < md->count; ++i) {
    cgrpc__free(md->entries[i].key);
  }
  cgrpc__free(md->entries);
  cgrpc__metadata_array_init(md);
}

/* Appends an entry with room for |value_len| value bytes and copies the key;
 * the caller fills the value.  Returns the entry or NULL when out of
 * memory. */
static cgrpc__md_entry *entry_push(cgrpc_metadata_array *md, const char *key,
                                   size_t key_len, size_t value_len) {
  cgrpc__md_entry *e;
  char *mem;

  if (key_len > SIZE_MAX / 2 - 2 || value_len > SIZE_MAX / 2) {
    return NULL;
  }
  if (md->count == md->cap) {
    size_t cap = md->cap ? md->cap * 2 : 8;
    cgrpc__md_entry *entries;
    if (cap > SIZE_MAX / sizeof(*entries)) {
      return NULL;
    }
    entries = cgrpc__realloc(md->entries, cap * sizeof(*entries));
    if (entries == NULL) {
      return NULL;
    }
    md->entries = entries;
    md->cap = cap;
  }
  mem = cgrpc__malloc(key_len + 1 + value_len + 1);
  if (mem == NULL) {
    return NULL;
  }
  memcpy(mem, key, key_len);
  mem[key_len] = '\0';
  e = &md->entries[md->count++];
  e->key = mem;
  e->key_len = key_len;
  e->value = (uint8_t *)mem + key_len + 1;
  e->value_len = value_len;
  e->value[value_len] = '\0';
  return e;
}

int cgrpc__metadata_array_add_raw(cgrpc_metadata_array *md, const char *key,
                                  size_t key_len, const uint8_t *value,
                                  size_t value_len) {
  cgrpc__md_entry *e = entry_push(md, key, key_len, value_len);
  if (e == NULL) {
    return CGRPC_ERR_NOMEM;
  }
  if (value_len > 0) {
    memcpy(e->value, value, value_len);
  }
  return 0;
}

int cgrpc__metadata_array_add_b64(cgrpc_metadata_array *md, const char *key,
                                  size_t key_len, const char *b64,
                                  size_t b64_len) {
  cgrpc__md_entry *e;
  size_t len;

  /* Reserve the upper bound, decode in place, then record the exact size;
   * the few spare bytes stay in the allocation. */
  e = entry_push(md, key, key_len, cgrpc__base64_decoded_max(b64_len));
  if (e == NULL) {
    return CGRPC_ERR_NOMEM;
  }
  if (cgrpc__base64_decode(e->value, &len, b64, b64_len) != 0) {
    cgrpc__free(e->key);
    --md->count;
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  e->value_len = len;
  e->value[len] = '\0';
  return 0;
}

int cgrpc_metadata_array_new(cgrpc_metadata_array **md_ptr) {
  cgrpc_metadata_array *md = cgrpc__malloc(sizeof(*md));
  if (md == NULL) {
    return CGRPC_ERR_NOMEM;
  }
  cgrpc__metadata_array_init(md);
  *md_ptr = md;
  return 0;
}

void cgrpc_metadata_array_del(cgrpc_metadata_array *md) {
  if (md == NULL) {
    return;
  }
  cgrpc__metadata_array_clear(md);
  cgrpc__free(md);
}

/* Checks a key an application wants to set.  Of the reserved grpc-* keys,
 * only grpc-retry-pushback-ms: a server's trailer that tells the client
 * when (or, negative, not) to retry (gRFC A6). */
static int user_key_ok(const char *key, size_t key_len) {
  return cgrpc__md_key_valid(key, key_len) &&
         (!cgrpc__md_key_reserved(key, key_len) ||
          CGRPC__LIT_EQ(key, key_len, "grpc-retry-pushback-ms"));
}

int cgrpc_metadata_array_add(cgrpc_metadata_array *md, const char *key,
                             const char *value) {
  size_t key_len, value_len;
  if (md == NULL || key == NULL || value == NULL) {
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  key_len = strlen(key);
  value_len = strlen(value);
  if (!user_key_ok(key, key_len)) {
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  /* A "-bin" value is binary: any byte but NUL (strlen stops there). */
  if (!cgrpc__md_key_is_bin(key, key_len) &&
      !cgrpc__md_value_valid((const uint8_t *)value, value_len)) {
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  return cgrpc__metadata_array_add_raw(md, key, key_len, (const uint8_t *)value,
                                       value_len);
}

int cgrpc_metadata_array_add_bin(cgrpc_metadata_array *md, const char *key,
                                 const void *value, size_t len) {
  size_t key_len;
  if (md == NULL || key == NULL || (value == NULL && len > 0)) {
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  key_len = strlen(key);
  if (!user_key_ok(key, key_len) || !cgrpc__md_key_is_bin(key, key_len)) {
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  return cgrpc__metadata_array_add_raw(md, key, key_len, value, len);
}

size_t cgrpc_metadata_array_count(const cgrpc_metadata_array *md) {
  return md == NULL ? 0 : md->count;
}

int cgrpc_metadata_array_at(const cgrpc_metadata_array *md, size_t index,
                            const char **key, const uint8_t **value,
                            size_t *len) {
  const cgrpc__md_entry *e;
  if (md == NULL || index >= md->count) {
    return CGRPC_ERR_INVALID_ARGUMENT;
  }
  e = &md->entries[index];
  if (key != NULL) {
    *key = e->key;
  }
  if (value != NULL) {
    *value = e->value;
  }
  if (len != NULL) {
    *len = e->value_len;
  }
  return 0;
}

const char *cgrpc_metadata_array_get(const cgrpc_metadata_array *md,
                                     const char *key, size_t *len) {
  size_t i, key_len;
  if (md == NULL || key == NULL) {
    return NULL;
  }
  key_len = strlen(key);
  for (i = 0; i < md->count; ++i) {
    const cgrpc__md_entry *e = &md->entries[i];
    if (e->key_len == key_len && memcmp(e->key, key, key_len) == 0) {
      if (len != NULL) {
        *len = e->value_len;
      }
      return (const char *)e->value;
    }
  }
  return NULL;
}

void cgrpc_status_clear(cgrpc_status *status) {
  if (status == NULL) {
    return;
  }
  cgrpc__free(status->message);
  cgrpc_metadata_array_del(status->initial_metadata);
  cgrpc_metadata_array_del(status->trailing_metadata);
  status->code = CGRPC_STATUS_OK;
  status->message = NULL;
  status->initial_metadata = NULL;
  status->trailing_metadata = NULL;
}
