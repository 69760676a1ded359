/* SPDX-License-Identifier: MIT */
/*
 * Server reflection (gRPC's doc/server-reflection.md): lets grpcurl,
 * grpc_cli, Evans and other tools list a server's services, fetch the
 * .proto files that describe them and call them, with no .proto files at
 * hand.
 *
 *   cgrpc_server_new(&server, NULL);
 *   helloworld__greeter__servicer__register(server, &greeter, NULL);
 *   cgrpc_server_enable_reflection(server);
 *   cgrpc_server_start(server);
 *
 *   $ grpcurl -plaintext localhost:50051 list
 *   $ grpcurl -plaintext -d '{"name": "you"}' localhost:50051 \
 *       helloworld.Greeter/SayHello
 *
 * The answers come from the descriptors protoc-gen-c-grpc embeds in the
 * generated code (cgrpc_file_desc in service.h): each service's .proto file
 * and every file it imports, well-known types such as
 * google/protobuf/empty.proto included.  A service registered with a
 * hand-written cgrpc_service_desc whose |file_desc| is NULL is listed, but
 * its file cannot be fetched.
 */
#ifndef CGRPC_REFLECTION_H
#define CGRPC_REFLECTION_H

#include "cgrpc/export.h"
#include "cgrpc/server.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Registers the reflection services on |server|: both
 * grpc.reflection.v1.ServerReflection and the older, wire-identical
 * grpc.reflection.v1alpha.ServerReflection, which many clients still ask
 * for.  They answer for every service of |server|, whether registered
 * before or after this call, and for themselves.
 *
 * Each reflection stream answers its requests one at a time, in order:
 * the services' names (list_services); a file and the files it imports,
 * directly or not (file_by_filename; file_containing_symbol for a
 * package-qualified service, method, message, nested message, field, enum,
 * enum value or extension; file_containing_extension); the extension
 * numbers of a message (all_extension_numbers_of_type).  A question it
 * cannot answer gets an ErrorResponse with a gRPC status code (NOT_FOUND
 * for an unknown name, INVALID_ARGUMENT for a name longer than 4096 bytes,
 * UNIMPLEMENTED for a request of an unknown kind) and the stream goes on.
 * Streams hold no handler thread while they wait for requests.
 *
 * Returns 0, or one of:
 *   CGRPC_ERR_INVALID_ARGUMENT  |server| is NULL.
 *   CGRPC_ERR_ALREADY_EXISTS    either service is registered already
 *                               (nothing is registered then).
 *   CGRPC_ERR_INVALID_STATE     the server has already started.
 *   CGRPC_ERR_NOMEM             Out of memory (the v1 service may be
 *                               registered).
 * Thread safety: one thread at a time per server.
 */
CGRPC_EXTERN int cgrpc_server_enable_reflection(cgrpc_server *server);

#ifdef __cplusplus
}
#endif

#endif /* CGRPC_REFLECTION_H */
