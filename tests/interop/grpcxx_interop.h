// SPDX-License-Identifier: MIT
//
// What grpcxx_interop_server.cc and grpcxx_interop_client.cc share: how
// grpc++ shows whether the message a call received last came compressed.
//
// grpc++ has no public API for it.  Its own interop programs (grpc/grpc
// test/cpp/interop, InteropServerContextInspector and
// InteropClientContextInspector) read the call's last message flags
// through C-core's test-only accessor, which Debian's libgrpc exports
// (with C++ linkage: it is declared in a C++ header there); this does the
// same.  The two flag bits are grpc-core's internal ones
// (src/core/lib/transport/transport.h): the message came with the
// compressed flag, or was decompressed on the way in.
#ifndef CGRPC_TEST_GRPCXX_INTEROP_H
#define CGRPC_TEST_GRPCXX_INTEROP_H

#include <cstdint>

#include <grpc/grpc.h>

uint32_t grpc_call_test_only_get_message_flags(grpc_call *call);

namespace grpcxx_interop {

constexpr uint32_t kInternalCompress = 0x80000000u;
constexpr uint32_t kInternalWasCompressed = 0x40000000u;

// Nonzero when the message |call| received last came compressed.
inline bool LastMessageCompressed(grpc_call *call) {
  return call != nullptr && (grpc_call_test_only_get_message_flags(call) &
                             (kInternalCompress | kInternalWasCompressed)) != 0;
}

} // namespace grpcxx_interop

#endif // CGRPC_TEST_GRPCXX_INTEROP_H
