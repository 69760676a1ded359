/* SPDX-License-Identifier: MIT */
/*
 * cgrpc: gRPC for C.  Include this one header.
 */
#ifndef CGRPC_H
#define CGRPC_H

#include "cgrpc/version.h"
#include "cgrpc/export.h"
#include "cgrpc/error.h"
#include "cgrpc/log.h"
#include "cgrpc/metadata.h"
#include "cgrpc/status.h"
#include "cgrpc/compression.h"
#include "cgrpc/service.h"
#include "cgrpc/tls.h"
#include "cgrpc/call_credentials.h"
#include "cgrpc/server.h"
#include "cgrpc/resolver.h"
#include "cgrpc/channel.h"
#include "cgrpc/call.h"
#include "cgrpc/reflection.h"
#include "cgrpc/health.h"
#include "cgrpc/interceptor.h"

#endif /* CGRPC_H */
