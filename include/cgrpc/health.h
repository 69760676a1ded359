/* SPDX-License-Identifier: MIT */
/*
 * Health checking (gRPC's doc/health-checking.md): the standard service
 * grpc.health.v1.Health that load balancers, Kubernetes' gRPC probes,
 * grpc_health_probe and client-side health checking ask whether a server,
 * or one service of it, is ready for calls.
 *
 *   cgrpc_server_new(&server, NULL);
 *   helloworld__greeter__servicer__register(server, &greeter, NULL);
 *   cgrpc_server_enable_health(server);
 *   cgrpc_server_start(server);
 *   ...
 *   cgrpc_server_set_health(server, "helloworld.Greeter",
 *                           CGRPC_HEALTH_NOT_SERVING);
 *
 *   $ grpc_health_probe -addr=localhost:50051
 *   status: SERVING
 *
 * Check answers at once with a service's status, or NOT_FOUND for a
 * service the server does not know.  Watch sends the current status at
 * once (SERVICE_UNKNOWN for an unknown service, and the stream stays open),
 * then each change.  A watcher that reads slowly is sent only the latest
 * status when it can take one: changes in between are folded together, so
 * nothing queues up behind it and cgrpc_server_set_health() never waits
 * for it.  Watch streams hold no handler thread.
 *
 * When cgrpc_server_shutdown() begins, every status turns NOT_SERVING and
 * every watcher is sent that before any connection is told to go away, so
 * balancers stop sending calls while those in flight finish; the watches
 * then end with UNAVAILABLE.  Statuses set from then on are ignored.
 */
#ifndef CGRPC_HEALTH_H
#define CGRPC_HEALTH_H

#include "cgrpc/export.h"
#include "cgrpc/server.h"

#ifdef __cplusplus
extern "C" {
#endif

/* grpc.health.v1.HealthCheckResponse.ServingStatus, value for value. */
typedef enum cgrpc_health_status {
  CGRPC_HEALTH_UNKNOWN = 0,
  CGRPC_HEALTH_SERVING = 1,
  CGRPC_HEALTH_NOT_SERVING = 2,
  /* What Watch reports for a service the server does not know. */
  CGRPC_HEALTH_SERVICE_UNKNOWN = 3
} cgrpc_health_status;

/*
 * Registers grpc.health.v1.Health on |server|.  From then on the server as
 * a whole (the service name "") and every service registered on it, before
 * or after this call, are SERVING until cgrpc_server_set_health() says
 * otherwise; any other name is unknown until it is set.
 *
 * Returns 0, or one of:
 *   CGRPC_ERR_INVALID_ARGUMENT  |server| is NULL.
 *   CGRPC_ERR_ALREADY_EXISTS    grpc.health.v1.Health is registered already.
 *   CGRPC_ERR_INVALID_STATE     the server has already started.
 *   CGRPC_ERR_NOMEM             Out of memory.
 * Thread safety: one thread at a time per server.
 */
CGRPC_EXTERN int cgrpc_server_enable_health(cgrpc_server *server);

/*
 * Sets the status of |service| ("" for the whole server; a name that is
 * not registered is fine, say for a part of the application) and sends it
 * to the service's watchers, coalesced for those that read slowly.  Never
 * blocks on a watcher.  Once the server's shutdown has begun the call does
 * nothing (every status stays NOT_SERVING) and returns 0.  |service| is
 * copied.
 *
 * Returns 0, or one of:
 *   CGRPC_ERR_INVALID_ARGUMENT  |server| or |service| is NULL, or |status|
 *                               is not a cgrpc_health_status.
 *   CGRPC_ERR_INVALID_STATE     cgrpc_server_enable_health() was not called.
 *   CGRPC_ERR_NOMEM             Out of memory (the status is unchanged).
 * Thread safety: any thread, handlers and callbacks of |server| included,
 * until cgrpc_server_del().
 */
CGRPC_EXTERN int cgrpc_server_set_health(cgrpc_server *server,
                                         const char *service,
                                         cgrpc_health_status status);

#ifdef __cplusplus
}
#endif

#endif /* CGRPC_HEALTH_H */
