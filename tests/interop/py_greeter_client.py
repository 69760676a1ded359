#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A grpcio client of helloworld.Greeter, the peer for interop tests.

  py_greeter_client.py --target=HOST:PORT [--name=NAME]
                       [--method=SayHello|SayHelloAgain] [--timeout=SECONDS]
                       [--stubs-dir=DIR] [TLS flags]

TLS flags (interop_harness.add_tls_client_args): --use_tls=true,
--use_test_ca=true or --ca_file=PEM, --server_host_override=NAME,
--client_cert_file=PEM --client_key_file=PEM.

Prints the reply's message (UTF-8) and exits 0; when the call fails, prints
"CODE_NAME: details" and exits 1.
"""
import argparse
import os
import sys

from interop_harness import add_tls_client_args, open_channel


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", required=True, help="HOST:PORT")
    ap.add_argument("--name", default="world")
    ap.add_argument("--method", default="SayHello",
                    choices=("SayHello", "SayHelloAgain"))
    ap.add_argument("--timeout", type=float, default=10.0,
                    help="call deadline in seconds (default 10)")
    ap.add_argument("--stubs-dir",
                    help="folder holding helloworld_pb2*.py")
    add_tls_client_args(ap)
    args = ap.parse_args()
    if args.stubs_dir:
        sys.path.insert(0, args.stubs_dir)
    # argv holds UTF-8 bytes whatever the locale says.
    name = os.fsencode(args.name).decode("utf-8")
    sys.stdout.reconfigure(encoding="utf-8")

    import grpc
    import helloworld_pb2
    import helloworld_pb2_grpc

    with open_channel(grpc, args.target, args) as channel:
        stub = helloworld_pb2_grpc.GreeterStub(channel)
        method = getattr(stub, args.method)
        try:
            reply = method(helloworld_pb2.HelloRequest(name=name),
                           timeout=args.timeout)
        except grpc.RpcError as e:
            print(f"{e.code().name}: {e.details()}", flush=True)
            return 1
    print(reply.message, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
