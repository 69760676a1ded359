/* SPDX-License-Identifier: MIT */
#include "h2/trace.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *frame_name(uint8_t type) {
  static const char *const names[] = {
      "DATA",    "HEADERS", "PRIORITY", "RST_STREAM",    "SETTINGS",
      "PUSH_PROMISE", "PING", "GOAWAY", "WINDOW_UPDATE", "CONTINUATION"};
  return type < sizeof names / sizeof names[0] ? names[type] : "unknown";
}

const char *cgrpc__h2_error_name(uint32_t code) {
  static const char *const names[] = {
      "NO_ERROR",           "PROTOCOL_ERROR",      "INTERNAL_ERROR",
      "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",    "STREAM_CLOSED",
      "FRAME_SIZE_ERROR",   "REFUSED_STREAM",      "CANCEL",
      "COMPRESSION_ERROR",  "CONNECT_ERROR",       "ENHANCE_YOUR_CALM",
      "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"};
  return code < sizeof names / sizeof names[0] ? names[code] : "UNKNOWN";
}

static const char *settings_name(int32_t id) {
  switch (id) {
  case NGHTTP2_SETTINGS_HEADER_TABLE_SIZE:
    return "HEADER_TABLE_SIZE";
  case NGHTTP2_SETTINGS_ENABLE_PUSH:
    return "ENABLE_PUSH";
  case NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS:
    return "MAX_CONCURRENT_STREAMS";
  case NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE:
    return "INITIAL_WINDOW_SIZE";
  case NGHTTP2_SETTINGS_MAX_FRAME_SIZE:
    return "MAX_FRAME_SIZE";
  case NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE:
    return "MAX_HEADER_LIST_SIZE";
  case NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL:
    return "ENABLE_CONNECT_PROTOCOL";
  default:
    return "unknown";
  }
}

/* Appends printf-style to |buf| (|*used| of |size| taken); cuts silently. */
static void append(char *buf, size_t size, size_t *used, const char *fmt,
                   ...) CGRPC_PRINTF(4, 5);

static void append(char *buf, size_t size, size_t *used, const char *fmt,
                   ...) {
  va_list ap;
  int n;
  if (*used >= size)
    return;
  va_start(ap, fmt);
  n = vsnprintf(buf + *used, size - *used, fmt, ap);
  va_end(ap);
  if (n > 0)
    *used = *used + (size_t)n < size ? *used + (size_t)n : size;
}

/* The names of the header fields that say what a HEADERS frame is about:
 * their values go into the trace line.  (Other values, credentials among
 * them, are left out.) */
static int shown_header(const nghttp2_nv *nv) {
  static const char *const shown[] = {":method", ":path",        ":status",
                                      ":authority", "content-type",
                                      "grpc-status", "grpc-message",
                                      "grpc-timeout", "grpc-encoding"};
  for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++)
    if (nv->namelen == strlen(shown[i]) &&
        memcmp(nv->name, shown[i], nv->namelen) == 0)
      return 1;
  return 0;
}

void cgrpc__h2_trace_frame_(const cgrpc__h2conn *conn, int sent,
                            const nghttp2_frame *frame) {
  char line[768];
  size_t used = 0;
  const nghttp2_frame_hd *hd = &frame->hd;

  append(line, sizeof line, &used, "%s %s %s stream=%" PRId32 " len=%zu",
         conn->peer[0] ? conn->peer : "?", sent ? "send" : "recv",
         frame_name(hd->type), hd->stream_id, hd->length);
  if (hd->flags & NGHTTP2_FLAG_END_STREAM &&
      (hd->type == NGHTTP2_DATA || hd->type == NGHTTP2_HEADERS))
    append(line, sizeof line, &used, " END_STREAM");
  if (hd->flags & NGHTTP2_FLAG_ACK &&
      (hd->type == NGHTTP2_SETTINGS || hd->type == NGHTTP2_PING))
    append(line, sizeof line, &used, " ACK");
  switch (hd->type) {
  case NGHTTP2_HEADERS:
    /* Received headers come one by one through on_header; only those
     * sent are in the frame. */
    for (size_t i = 0; i < frame->headers.nvlen; i++) {
      const nghttp2_nv *nv = &frame->headers.nva[i];
      if (shown_header(nv))
        append(line, sizeof line, &used, " %.*s=%.*s", (int)nv->namelen,
               (const char *)nv->name, (int)(nv->valuelen > 80 ? 80 : nv->valuelen),
               (const char *)nv->value);
    }
    if (frame->headers.nvlen > 0)
      append(line, sizeof line, &used, " (%zu fields)", frame->headers.nvlen);
    break;
  case NGHTTP2_RST_STREAM:
    append(line, sizeof line, &used, " error=%s",
           cgrpc__h2_error_name(frame->rst_stream.error_code));
    break;
  case NGHTTP2_SETTINGS:
    for (size_t i = 0; i < frame->settings.niv; i++)
      append(line, sizeof line, &used, " %s=%" PRIu32,
             settings_name(frame->settings.iv[i].settings_id),
             frame->settings.iv[i].value);
    break;
  case NGHTTP2_PING: {
    uint64_t v;
    memcpy(&v, frame->ping.opaque_data, sizeof v);
    append(line, sizeof line, &used, " opaque=%016" PRIx64, v);
    break;
  }
  case NGHTTP2_GOAWAY:
    append(line, sizeof line, &used, " last_stream=%" PRId32 " error=%s",
           frame->goaway.last_stream_id,
           cgrpc__h2_error_name(frame->goaway.error_code));
    if (frame->goaway.opaque_data_len > 0)
      append(line, sizeof line, &used, " debug=\"%.*s\"",
             (int)(frame->goaway.opaque_data_len > 100
                       ? 100
                       : frame->goaway.opaque_data_len),
             (const char *)frame->goaway.opaque_data);
    break;
  case NGHTTP2_WINDOW_UPDATE:
    append(line, sizeof line, &used, " increment=%" PRId32,
           frame->window_update.window_size_increment);
    break;
  default:
    break;
  }
  cgrpc__trace(conn->log, CGRPC__TRACE_H2, "%s", line);
}

static int trace_sent(nghttp2_session *session, const nghttp2_frame *frame,
                      void *user_data) {
  (void)session;
  cgrpc__h2_trace_frame(user_data, 1, frame);
  return 0;
}

static int trace_error(nghttp2_session *session, int lib_error_code,
                       const char *msg, size_t len, void *user_data) {
  const cgrpc__h2conn *conn = user_data;
  (void)session;
  cgrpc__trace(conn->log, CGRPC__TRACE_H2, "%s nghttp2: %.*s (%s)",
               conn->peer[0] ? conn->peer : "?", (int)len, msg,
               nghttp2_strerror(lib_error_code));
  return 0;
}

void cgrpc__h2_trace_callbacks(nghttp2_session_callbacks *cbs, int client) {
  if (!(cgrpc__trace_mask & CGRPC__TRACE_H2))
    return;
  nghttp2_session_callbacks_set_error_callback2(cbs, trace_error);
  if (client)
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, trace_sent);
}
