/* SPDX-License-Identifier: MIT */
#include "call/wire.h"

#include <string.h>

#include "call/deframer.h"
#include "call/metadata.h"
#include "cgrpc/error.h"
#include "util/base64.h"
#include "util/mem.h"
#include "util/percent.h"

#define LIT_EQ CGRPC__LIT_EQ

int cgrpc__wire_header_reserved(const uint8_t *name, size_t len) {
  if (len == 0 || name[0] == ':')
    return 1;
  if (len >= 5 && memcmp(name, "grpc-", 5) == 0)
    return 1;
  return LIT_EQ(name, len, "content-type") || LIT_EQ(name, len, "te") ||
         LIT_EQ(name, len, "content-length") ||
         LIT_EQ(name, len, "connection") || LIT_EQ(name, len, "host");
}

int cgrpc__wire_add_metadata(cgrpc_metadata_array *md, const uint8_t *name,
                             size_t name_len, const uint8_t *value,
                             size_t value_len) {
  if (cgrpc__md_key_is_bin((const char *)name, name_len)) {
    uint8_t stack[256], *buf = stack;
    size_t max = cgrpc__base64_decoded_max(value_len), out;
    int rv;
    if (max > sizeof stack) {
      buf = cgrpc__malloc(max);
      if (!buf)
        return CGRPC_ERR_NOMEM;
    }
    rv = cgrpc__base64_decode(buf, &out, (const char *)value, value_len);
    if (rv == 0)
      rv = cgrpc__metadata_array_add_raw(md, (const char *)name, name_len, buf,
                                         out);
    else
      rv = CGRPC_ERR_PROTO;
    if (buf != stack)
      cgrpc__free(buf);
    return rv;
  }
  return cgrpc__metadata_array_add_raw(md, (const char *)name, name_len, value,
                                       value_len);
}

int cgrpc__wire_parse_status(const uint8_t *value, size_t len, int *code) {
  int v = 0;
  size_t i;
  if (len == 0 || len > 9)
    return -1;
  for (i = 0; i < len; i++) {
    if (value[i] < '0' || value[i] > '9')
      return -1;
    v = v * 10 + (value[i] - '0');
  }
  *code = v;
  return 0;
}

char *cgrpc__wire_decode_message(const uint8_t *value, size_t len) {
  char *out = cgrpc__malloc(len + 1);
  if (out)
    cgrpc__percent_decode((uint8_t *)out, (const char *)value, len);
  return out;
}

cgrpc_status_code cgrpc__wire_http_to_status(int http_status) {
  switch (http_status) {
  case 400:
    return CGRPC_STATUS_INTERNAL;
  case 401:
    return CGRPC_STATUS_UNAUTHENTICATED;
  case 403:
    return CGRPC_STATUS_PERMISSION_DENIED;
  case 404:
    return CGRPC_STATUS_UNIMPLEMENTED;
  case 429:
  case 502:
  case 503:
  case 504:
    return CGRPC_STATUS_UNAVAILABLE;
  default:
    return CGRPC_STATUS_UNKNOWN;
  }
}

cgrpc_status_code cgrpc__wire_rst_to_status(uint32_t error_code) {
  switch (error_code) {
  case 0x7: /* REFUSED_STREAM */
    return CGRPC_STATUS_UNAVAILABLE;
  case 0x8: /* CANCEL */
    return CGRPC_STATUS_CANCELLED;
  case 0xb: /* ENHANCE_YOUR_CALM */
    return CGRPC_STATUS_RESOURCE_EXHAUSTED;
  case 0xc: /* INADEQUATE_SECURITY */
    return CGRPC_STATUS_PERMISSION_DENIED;
  default: /* NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, ... */
    return CGRPC_STATUS_INTERNAL;
  }
}

int cgrpc__wire_content_type_ok(const uint8_t *value, size_t len) {
  static const char base[] = "application/grpc";
  size_t n = sizeof base - 1;
  if (len < n || memcmp(value, base, n) != 0)
    return 0;
  return len == n || value[n] == '+' || value[n] == ';';
}

uint8_t *cgrpc__pack_framed(const ProtobufCMessage *msg, int64_t max_send,
                            size_t headroom, size_t *len, int *err) {
  size_t size = protobuf_c_message_get_packed_size(msg);
  uint8_t *buf;
  *len = CGRPC__FRAME_PREFIX_LEN + size;
  if ((max_send >= 0 && (int64_t)size > max_send) || size > UINT32_MAX) {
    *err = CGRPC_ERR_TOO_LARGE;
    return NULL;
  }
  buf = cgrpc__malloc(headroom + CGRPC__FRAME_PREFIX_LEN + size);
  if (!buf) {
    *err = CGRPC_ERR_NOMEM;
    return NULL;
  }
  cgrpc__frame_prefix(buf + headroom, 0, (uint32_t)size);
  protobuf_c_message_pack(msg, buf + headroom + CGRPC__FRAME_PREFIX_LEN);
  return buf;
}
