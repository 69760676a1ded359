#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A grpcio client for the server-interceptor interop test.

  py_intercept_client.py --target=HOST:PORT [--stubs-dir=DIR] [--timeout=S]

Runs against a cgrpc EchoService server whose interceptor (see
tests/integration/test_intercept.c, test_intercept_py_client) adds
"x-server-intercepted: yes" to the response headers and
"x-server-trailer: done" to the trailers, and rejects calls that carry
"x-deny" with PERMISSION_DENIED "denied by interceptor":

  1. Echo with "x-from-grpcio: from-python": OK, the message comes back,
     and grpcio sees both pieces of the interceptor's metadata;
  2. Echo with "x-deny": PERMISSION_DENIED with the interceptor's message.

Prints "PASS: ..." / "FAIL: ..." per check; exits 0 when every check
passed, 1 otherwise.
"""
import argparse
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", required=True)
    ap.add_argument("--stubs-dir", help="folder holding echo_pb2*.py")
    ap.add_argument("--timeout", type=float, default=10.0)
    args = ap.parse_args()
    if args.stubs_dir:
        sys.path.insert(0, args.stubs_dir)

    import grpc
    import echo_pb2
    import echo_pb2_grpc

    failures = 0

    def check(label, ok, detail=""):
        nonlocal failures
        print(f"{'PASS' if ok else 'FAIL'}: {label}" +
              ("" if ok or not detail else f": {detail}"), flush=True)
        if not ok:
            failures += 1

    channel = grpc.insecure_channel(
        args.target, options=[("grpc.enable_http_proxy", 0)])
    stub = echo_pb2_grpc.EchoServiceStub(channel)

    try:
        reply, call = stub.Echo.with_call(
            echo_pb2.EchoRequest(message="through the interceptor"),
            timeout=args.timeout, metadata=[("x-from-grpcio", "from-python")])
        check("Echo answers OK", call.code() == grpc.StatusCode.OK)
        check("the message comes back",
              reply.message == "through the interceptor", repr(reply.message))
        initial = dict(call.initial_metadata())
        trailing = dict(call.trailing_metadata())
        check("response headers carry the interceptor's metadata",
              initial.get("x-server-intercepted") == "yes", repr(initial))
        check("trailers carry the interceptor's metadata",
              trailing.get("x-server-trailer") == "done", repr(trailing))
    except grpc.RpcError as e:
        check("Echo answers OK", False, f"{e.code().name}: {e.details()!r}")

    try:
        stub.Echo(echo_pb2.EchoRequest(message="let me in"),
                  timeout=args.timeout, metadata=[("x-deny", "1")])
        check("a call with x-deny is rejected", False, "it answered OK")
    except grpc.RpcError as e:
        check("a call with x-deny is rejected",
              e.code() == grpc.StatusCode.PERMISSION_DENIED, e.code().name)
        check("with the interceptor's message",
              e.details() == "denied by interceptor", repr(e.details()))
    channel.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
