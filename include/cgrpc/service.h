/* SPDX-License-Identifier: MIT */
/*
 * Service and method descriptors.  protoc-gen-c-grpc emits one
 * cgrpc_service_desc per `service` and the small functions that connect a
 * typed servicer vtable to the server; users rarely touch these directly.
 */
#ifndef CGRPC_SERVICE_H
#define CGRPC_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "cgrpc/export.h"
#include "cgrpc/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cgrpc_method_kind {
  CGRPC_METHOD_UNARY = 0,
  CGRPC_METHOD_CLIENT_STREAMING = 1,
  CGRPC_METHOD_SERVER_STREAMING = 2,
  CGRPC_METHOD_BIDI_STREAMING = 3
} cgrpc_method_kind;

/* One RPC method. */
typedef struct cgrpc_method_desc {
  const char *name;                          /* "SayHello" */
  const char *path;                          /* "/helloworld.Greeter/SayHello" */
  cgrpc_method_kind kind;
  const ProtobufCMessageDescriptor *input;   /* request type */
  const ProtobufCMessageDescriptor *output;  /* response type */
} cgrpc_method_desc;

/*
 * One .proto file as server reflection (reflection.h) serves it: |data| is
 * the file's FileDescriptorProto, serialized (without source_code_info),
 * and |deps| are the files it imports, in its import order.  Generated code
 * embeds one per file and per file it imports, directly or not, as
 * static constants of the generated .c file; so two generated files that
 * import the same file each carry a copy, and reflection tells them apart
 * by |name|.
 */
typedef struct cgrpc_file_desc {
  const char *name;                          /* "helloworld.proto" */
  const uint8_t *data;
  size_t len;
  size_t n_deps;
  const struct cgrpc_file_desc *const *deps; /* NULL when n_deps is 0 */
} cgrpc_file_desc;

/*
 * One service: its full name, its methods in declaration order and the
 * file that declares it.  |file_desc| came last, so initialisers written
 * before it leave it NULL: reflection then lists the service but has no
 * file for it.
 */
typedef struct cgrpc_service_desc {
  const char *name;                          /* "helloworld.Greeter" */
  size_t n_methods;
  const cgrpc_method_desc *methods;
  const cgrpc_file_desc *file_desc;          /* or NULL */
} cgrpc_service_desc;

typedef struct cgrpc_server_ctx cgrpc_server_ctx;

/*
 * Calls one method of a servicer with its exact type.  Generated code
 * provides one per method: it casts |servicer| to the generated vtable type
 * and calls the method's function pointer.  |request| is the decoded request
 * for unary and server-streaming methods (NULL otherwise); |response| is an
 * initialised, empty message of the output type for unary and
 * client-streaming methods (NULL otherwise).  Streaming handlers read and
 * write through |ctx| (cgrpc_server_ctx_read(), cgrpc_server_ctx_write()).
 */
typedef cgrpc_status_code (*cgrpc_dispatch_fn)(const void *servicer,
                                               cgrpc_server_ctx *ctx,
                                               const ProtobufCMessage *request,
                                               ProtobufCMessage *response,
                                               void *user_data);

/* The name used before streaming methods existed; same type. */
typedef cgrpc_dispatch_fn cgrpc_unary_dispatch_fn;

/*
 * How the server reaches one method of a registered servicer: |dispatch| is
 * NULL when the servicer leaves the method NULL, and the server then answers
 * UNIMPLEMENTED.
 */
typedef struct cgrpc_method_handler {
  cgrpc_dispatch_fn dispatch;
} cgrpc_method_handler;

#ifdef __cplusplus
}
#endif

#endif /* CGRPC_SERVICE_H */
