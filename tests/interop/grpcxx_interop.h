// SPDX-License-Identifier: MIT
//
// What grpcxx_interop_server.cc and grpcxx_interop_client.cc share: the
// parsing of their grpc-go style flags, files and gRPC's test credentials
// (interop_testdata.h) for TLS, and how grpc++ shows whether the message a
// call received last came compressed.
//
// grpc++ has no public API for the last.  Its own interop programs (grpc/grpc
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
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include <grpc/grpc.h>

#include "interop_testdata.h"

uint32_t grpc_call_test_only_get_message_flags(grpc_call *call);

namespace grpcxx_interop {

constexpr uint32_t kInternalCompress = 0x80000000u;
constexpr uint32_t kInternalWasCompressed = 0x40000000u;

// Nonzero when the message |call| received last came compressed.
inline bool LastMessageCompressed(grpc_call *call) {
  return call != nullptr && (grpc_call_test_only_get_message_flags(call) &
                             (kInternalCompress | kInternalWasCompressed)) != 0;
}

// The value of |arg| when it is "--|name|=value", else nullptr.
inline const char *FlagValue(const char *arg, const char *name) {
  size_t n = std::strlen(name);
  if (std::strncmp(arg, "--", 2) != 0 || std::strncmp(arg + 2, name, n) != 0 ||
      arg[2 + n] != '=')
    return nullptr;
  return arg + 3 + n;
}

// "true" or "false" into |*out|; false for anything else.
inline bool ParseBool(const char *value, bool *out) {
  if (std::strcmp(value, "true") != 0 && std::strcmp(value, "false") != 0)
    return false;
  *out = value[0] == 't';
  return true;
}

// A port in [|min|, 65535] into |*out|; false for anything else.
inline bool ParsePort(const char *value, long min, long *out) {
  char *end;
  long port = std::strtol(value, &end, 10);
  if (end == value || *end != '\0' || port < min || port > 65535)
    return false;
  *out = port;
  return true;
}

// The whole of the file |path| into |*out|.
inline bool ReadFile(const std::string &path, std::string *out) {
  std::ifstream f(path, std::ios::binary);
  if (!f)
    return false;
  std::ostringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return !f.bad();
}

} // namespace grpcxx_interop

#endif // CGRPC_TEST_GRPCXX_INTEROP_H
