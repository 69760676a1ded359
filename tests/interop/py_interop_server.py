#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A grpcio implementation of grpc.testing.TestService, the interop peer.

  py_interop_server.py [--host=127.0.0.1] [--port=0] [--stubs-dir=DIR]
                       [--use_tls=false|true] [--tls_cert_file=PEM]
                       [--tls_key_file=PEM] [--client_ca_file=PEM]

Behaves as the server of gRPC's interop test descriptions
(doc/interop-test-descriptions.md in grpc/grpc), like cgrpc's
interop_server:

  EmptyCall            answers Empty.
  UnaryCall            a payload of response_size zero bytes; a
                       response_status with a nonzero code ends the call with
                       that code and message instead; with fill_server_id,
                       server_id is --server_id's name.
  StreamingOutputCall  one response per response_parameters entry (sleeping
                       interval_us before each), then OK, or the
                       response_status when it has a nonzero code (after
                       the responses, as grpc's interop servers do).
  StreamingInputCall   the sum of the request payload sizes, after the
                       client half-closes.
  FullDuplexCall       answers each request as it arrives (as
                       StreamingOutputCall); a request with a nonzero
                       response_status ends the call with that status.
  HalfDuplexCall       buffers the requests until the client half-closes,
                       then answers them in order.
  UnimplementedCall    not overridden: UNIMPLEMENTED.
  CompressedResponse   response_compressed (UnaryCall) and
                       response_parameters' compressed (the streaming
                       methods): gzip for the call, and the messages that
                       ask for none go uncompressed
                       (disable_next_message_compression).

CompressedRequest (expect_compressed) is not checked: a grpcio server
cannot see whether a request came compressed, so client_compressed_* cannot
run against it.

Every method echoes the request metadata "x-grpc-test-echo-initial" as
initial metadata and "x-grpc-test-echo-trailing-bin" as trailing metadata.

Port 0 (the default) binds a free port.  Once serving, the bound port is
printed alone on the first line of stdout.  SIGTERM or SIGINT stops it
(grace 1 s) with exit status 0.  --use_tls=true serves TLS with gRPC's
test server certificate (testdata/server1.pem), or the named files;
--client_ca_file requires client certificates signed by those CAs.
"""
import argparse
import os
import sys
import time

from interop_harness import (
    add_serve_args, add_tls_server_args, serve, server_credentials)

ECHO_INITIAL_KEY = "x-grpc-test-echo-initial"
ECHO_TRAILING_KEY = "x-grpc-test-echo-trailing-bin"


def import_stubs(stubs_dir):
    """Imports the grpc.testing modules generated into |stubs_dir|/grpc/testing.

    The proto package is "grpc.testing", so protoc writes modules that import
    "grpc.testing.*_pb2".  grpcio owns the "grpc" package; adding our folder
    to its __path__ lets "grpc.testing" resolve to the generated code."""
    import grpc
    if stubs_dir:
        extra = os.path.join(os.path.abspath(stubs_dir), "grpc")
        if extra not in grpc.__path__:
            grpc.__path__.append(extra)
    from grpc.testing import empty_pb2, messages_pb2, test_pb2_grpc
    return grpc, empty_pb2, messages_pb2, test_pb2_grpc


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_serve_args(ap)
    add_tls_server_args(ap)
    ap.add_argument("--stubs-dir",
                    help="folder holding grpc/testing/*_pb2*.py")
    ap.add_argument("--server_id", default="py_interop_server",
                    help="the name UnaryCall reports with fill_server_id")
    args = ap.parse_args()

    grpc, empty_pb2, messages_pb2, test_pb2_grpc = import_stubs(args.stubs_dir)
    codes = {c.value[0]: c for c in grpc.StatusCode}

    def echo_metadata(context):
        """Sends back the echo keys; call before the first response."""
        initial, trailing = [], []
        for key, value in context.invocation_metadata():
            if key == ECHO_INITIAL_KEY:
                initial.append((key, value))
            elif key == ECHO_TRAILING_KEY:
                trailing.append((key, value))
        if initial:
            context.send_initial_metadata(tuple(initial))
        if trailing:
            context.set_trailing_metadata(tuple(trailing))

    def set_status(context, echo_status):
        code = codes.get(echo_status.code, grpc.StatusCode.UNKNOWN)
        context.set_code(code)
        context.set_details(echo_status.message)

    def response(size):
        return messages_pb2.StreamingOutputCallResponse(
            payload=messages_pb2.Payload(body=bytes(size)))

    def responses_for(request, context):
        if any(p.HasField("compressed") for p in request.response_parameters):
            context.set_compression(grpc.Compression.Gzip)
        for params in request.response_parameters:
            if params.interval_us > 0:
                time.sleep(params.interval_us / 1e6)
            if not context.is_active():
                return
            if not (params.HasField("compressed") and params.compressed.value):
                context.disable_next_message_compression()
            yield response(params.size)

    class TestService(test_pb2_grpc.TestServiceServicer):
        def EmptyCall(self, request, context):
            echo_metadata(context)
            return empty_pb2.Empty()

        def UnaryCall(self, request, context):
            echo_metadata(context)
            if request.response_status.code != 0:
                set_status(context, request.response_status)
                return messages_pb2.SimpleResponse()
            if request.response_size < 0:
                context.set_code(grpc.StatusCode.INVALID_ARGUMENT)
                context.set_details("negative response_size")
                return messages_pb2.SimpleResponse()
            if request.HasField("response_compressed"):
                context.set_compression(
                    grpc.Compression.Gzip if request.response_compressed.value
                    else grpc.Compression.NoCompression)
            return messages_pb2.SimpleResponse(
                payload=messages_pb2.Payload(
                    body=bytes(request.response_size)),
                server_id=args.server_id if request.fill_server_id else "")

        def CacheableUnaryCall(self, request, context):
            echo_metadata(context)
            return messages_pb2.SimpleResponse(
                payload=messages_pb2.Payload(
                    body=str(time.time_ns()).encode()))

        def StreamingOutputCall(self, request, context):
            echo_metadata(context)
            yield from responses_for(request, context)
            if request.response_status.code != 0:
                set_status(context, request.response_status)

        def StreamingInputCall(self, request_iterator, context):
            echo_metadata(context)
            total = 0
            for request in request_iterator:
                total += len(request.payload.body)
            return messages_pb2.StreamingInputCallResponse(
                aggregated_payload_size=total)

        def FullDuplexCall(self, request_iterator, context):
            echo_metadata(context)
            for request in request_iterator:
                if request.response_status.code != 0:
                    set_status(context, request.response_status)
                    return
                yield from responses_for(request, context)

        def HalfDuplexCall(self, request_iterator, context):
            echo_metadata(context)
            requests = list(request_iterator)
            for request in requests:
                if request.response_status.code != 0:
                    set_status(context, request.response_status)
                    return
                yield from responses_for(request, context)

    # Enough workers for the streams a client case keeps open at once.
    return serve(grpc, "py_interop_server", args, 32,
                 lambda server: test_pb2_grpc
                 .add_TestServiceServicer_to_server(TestService(), server),
                 credentials=server_credentials(grpc, args))


if __name__ == "__main__":
    sys.exit(main())
