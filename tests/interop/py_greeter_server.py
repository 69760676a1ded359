#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A grpcio implementation of helloworld.Greeter, the peer for interop tests.

  py_greeter_server.py [--host=127.0.0.1] [--port=0] [--stubs-dir=DIR]
                       [--use_tls=true [--tls_cert_file=PEM --tls_key_file=PEM]
                        [--client_ca_file=PEM]] [--require_token=T]
                       [--fail_first=N]

SayHello answers "Hello, NAME!" and SayHelloAgain "Hello again, NAME!".
Port 0 (the default) binds a free port.  Once serving, the bound port is
printed alone on the first line of stdout.  SIGTERM or SIGINT stops it
(grace 1 s) with exit status 0.  --client_ca_file requires client
certificates signed by those CAs; --require_token answers UNAUTHENTICATED
to calls without "authorization: Bearer T".  --fail_first=N fails the first
N SayHello calls with UNAVAILABLE (for retries), and every SayHello reply
then says which attempt it was and the grpc-previous-rpc-attempts it saw:
"Hello, NAME! (attempt K, previous P)" (P "-" when absent).
"""
import argparse
import sys

from interop_harness import (
    add_serve_args, add_tls_server_args, serve, server_credentials)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_serve_args(ap)
    ap.add_argument("--stubs-dir",
                    help="folder holding helloworld_pb2*.py")
    add_tls_server_args(ap)
    ap.add_argument("--require_token")
    ap.add_argument("--fail_first", type=int, default=None)
    args = ap.parse_args()
    if args.stubs_dir:
        sys.path.insert(0, args.stubs_dir)

    import grpc
    import helloworld_pb2
    import helloworld_pb2_grpc

    def check_token(context):
        if not args.require_token:
            return
        want = f"Bearer {args.require_token}"
        if dict(context.invocation_metadata()).get("authorization") != want:
            context.abort(grpc.StatusCode.UNAUTHENTICATED,
                          "missing or wrong bearer token")

    import threading
    attempts = [0]
    lock = threading.Lock()

    class Greeter(helloworld_pb2_grpc.GreeterServicer):
        def SayHello(self, request, context):
            check_token(context)
            if args.fail_first is None:
                return helloworld_pb2.HelloReply(
                    message=f"Hello, {request.name}!")
            with lock:
                attempts[0] += 1
                n = attempts[0]
            prev = dict(context.invocation_metadata()).get(
                "grpc-previous-rpc-attempts", "-")
            if n <= args.fail_first:
                context.abort(grpc.StatusCode.UNAVAILABLE,
                              f"failing on purpose (attempt {n})")
            return helloworld_pb2.HelloReply(
                message=f"Hello, {request.name}! (attempt {n}, previous "
                        f"{prev})")

        def SayHelloAgain(self, request, context):
            check_token(context)
            return helloworld_pb2.HelloReply(
                message=f"Hello again, {request.name}!")

    return serve(grpc, "py_greeter_server", args, 4,
                 lambda server: helloworld_pb2_grpc
                 .add_GreeterServicer_to_server(Greeter(), server),
                 credentials=server_credentials(grpc, args))


if __name__ == "__main__":
    sys.exit(main())
