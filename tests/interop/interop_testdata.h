/* SPDX-License-Identifier: MIT */
/*
 * gRPC's public interop test credentials (testdata/README.md), compiled in
 * by CMake: NUL-terminated PEM.  Linked into the cgrpc and the grpc++
 * interop programs (cgrpc_interop_testdata).
 */
#ifndef CGRPC_TESTS_INTEROP_TESTDATA_H
#define CGRPC_TESTS_INTEROP_TESTDATA_H

#ifdef __cplusplus
extern "C" {
#endif

extern const char interop_testdata_ca_pem[];      /* the test CA */
extern const char interop_testdata_server1_pem[]; /* *.test.google.fr */
extern const char interop_testdata_server1_key[];

#ifdef __cplusplus
}
#endif

#endif /* CGRPC_TESTS_INTEROP_TESTDATA_H */
