#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A grpcio implementation of helloworld.Greeter, the peer for interop tests.

  py_greeter_server.py [--host=127.0.0.1] [--port=0] [--stubs-dir=DIR]

SayHello answers "Hello, NAME!" and SayHelloAgain "Hello again, NAME!".
Port 0 (the default) binds a free port.  Once serving, the bound port is
printed alone on the first line of stdout.  SIGTERM or SIGINT stops it
(grace 1 s) with exit status 0.
"""
import argparse
import signal
import sys
import threading
from concurrent import futures


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="[::]",
                    help="address to bind (default [::])")
    ap.add_argument("--port", type=int, default=0,
                    help="port to bind; 0 picks a free one (default)")
    ap.add_argument("--stubs-dir",
                    help="folder holding helloworld_pb2*.py")
    args = ap.parse_args()
    if args.stubs_dir:
        sys.path.insert(0, args.stubs_dir)

    import grpc
    import helloworld_pb2
    import helloworld_pb2_grpc

    class Greeter(helloworld_pb2_grpc.GreeterServicer):
        def SayHello(self, request, context):
            return helloworld_pb2.HelloReply(message=f"Hello, {request.name}!")

        def SayHelloAgain(self, request, context):
            return helloworld_pb2.HelloReply(
                message=f"Hello again, {request.name}!")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    # SO_REUSEPORT off: a second server must not share a port by accident.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                         options=[("grpc.so_reuseport", 0)])
    helloworld_pb2_grpc.add_GreeterServicer_to_server(Greeter(), server)
    port = server.add_insecure_port(f"{args.host}:{args.port}")
    if not port:
        print(f"py_greeter_server: cannot bind {args.host}:{args.port}",
              file=sys.stderr)
        return 1
    server.start()
    print(port, flush=True)
    # A bounded wait in a loop lets the signal handlers run promptly.
    while not stop.wait(0.2):
        pass
    server.stop(grace=1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
