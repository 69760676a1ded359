/* SPDX-License-Identifier: MIT */
/*
 * The "h2" tracer (util/trace.h): one line per HTTP/2 frame a connection
 * sends or receives, and nghttp2's own words for the protocol errors it
 * finds.  Both sides call these from their session callbacks.
 */
#ifndef CGRPC_H2_TRACE_H
#define CGRPC_H2_TRACE_H

#include <nghttp2/nghttp2.h>

#include "h2/conn.h"
#include "util/trace.h"

/* Writes |frame| (|sent|: going out, else coming in) to |conn|'s logger
 * when the h2 tracer is on.  Loop thread. */
void cgrpc__h2_trace_frame_(const cgrpc__h2conn *conn, int sent,
                            const nghttp2_frame *frame);

static inline void cgrpc__h2_trace_frame(const cgrpc__h2conn *conn, int sent,
                                         const nghttp2_frame *frame) {
  if (cgrpc__trace_on(conn->log, CGRPC__TRACE_H2))
    cgrpc__h2_trace_frame_(conn, sent, frame);
}

/* Adds the callbacks that only trace (nghttp2's error messages; for a
 * client, which has no other use for it, the frames it sends) to |cbs|
 * when the h2 tracer is on.  Call once per callback table. */
void cgrpc__h2_trace_callbacks(nghttp2_session_callbacks *cbs, int client);

/* The name of an HTTP/2 error code ("CANCEL"), or "UNKNOWN". */
const char *cgrpc__h2_error_name(uint32_t code);

#endif /* CGRPC_H2_TRACE_H */
