#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A grpcio cgrpc.test.StreamService server that fails the first attempts of each call.

  py_retry_server.py --stubs-dir=DIR [--host=127.0.0.1] [--port=0]

The grpcio twin of grpcxx_retry_server (see its header for the protocol),
for run_retry_interop.py --py-server: each call's request metadata says
which attempts fail and how (x-retry-key, x-retry-fail-first, x-retry-code,
x-retry-pushback-ms, x-retry-fail-after), and every attempt prints

  attempt method=M key=K n=N previous=P t_ms=T code=C

before it answers.  A failing attempt aborts before reading or writing, so
grpcio answers Trailers-Only, unless x-retry-fail-after asks it to send its
response headers ("headers") or one message ("message") first.  Port 0
(the default) binds a free port, printed alone on the first line of stdout;
SIGTERM or SIGINT stops it (grace 1 s) with exit status 0.
"""
import argparse
import sys
import threading
import time

from interop_harness import add_serve_args, serve

START = time.monotonic()


def metadata(context, key, default):
    for k, v in context.invocation_metadata():
        if k == key:
            return v
    return default


def send_headers(context):
    """Sends the response headers ahead of a failure, so that they commit
    the call. They carry a key of their own: with nothing but the defaults in
    them, gRPC's transport folds headers still unwritten when the status comes
    into a Trailers-Only answer, which the client may retry."""
    context.send_initial_metadata((("x-retry-committed", "headers"),))


def to_int(s, lo, hi, default):
    try:
        v = int(s)
    except ValueError:
        return default
    return v if lo <= v <= hi else default


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_serve_args(ap)
    ap.add_argument("--stubs-dir", required=True,
                    help="folder holding stream_pb2*.py")
    args = ap.parse_args()
    sys.path.insert(0, args.stubs_dir)
    import grpc
    import stream_pb2
    import stream_pb2_grpc

    lock = threading.Lock()
    attempts = {}

    def attempt(context, method):
        """Counts and prints the attempt; returns (fails, code, message)."""
        key = metadata(context, "x-retry-key", "")
        fail_first = to_int(metadata(context, "x-retry-fail-first", "0"), 0,
                            1000000, 0)
        code = to_int(metadata(context, "x-retry-code", "14"), 1, 16, 14)
        previous = metadata(context, "grpc-previous-rpc-attempts", "-")
        t_ms = int((time.monotonic() - START) * 1000)
        with lock:
            n = attempts[key] = attempts.get(key, 0) + 1
            fails = n <= fail_first
            print(f"attempt method={method} key={key} n={n} "
                  f"previous={previous} t_ms={t_ms} code={code if fails else 0}",
                  flush=True)
        if not fails:
            return False, None, None
        pushback = metadata(context, "x-retry-pushback-ms", None)
        if pushback is not None:
            context.set_trailing_metadata(
                (("grpc-retry-pushback-ms", pushback),))
        status = next(s for s in grpc.StatusCode if s.value[0] == code)
        return True, status, f"failing on purpose (attempt {n})"

    class Servicer(stream_pb2_grpc.StreamServiceServicer):
        def Unary(self, request, context):
            fails, code, msg = attempt(context, "Unary")
            if fails:
                context.abort(code, msg)
            return request

        def Download(self, request, context):
            fails, code, msg = attempt(context, "Download")
            after = metadata(context, "x-retry-fail-after", "")
            if fails and after == "headers":
                send_headers(context)
            for i in range(request.count):
                if fails and after != "message":
                    break
                yield stream_pb2.Chunk(seq=i, data=b"d" * request.size)
                if fails:
                    break
            if fails:
                context.abort(code, msg)

        def Upload(self, request_iterator, context):
            fails, code, msg = attempt(context, "Upload")
            if fails:
                if metadata(context, "x-retry-fail-after", ""):
                    send_headers(context)
                context.abort(code, msg)
            reply = stream_pb2.UploadSummary()
            for c in request_iterator:
                reply.count += 1
                reply.bytes += len(c.data)
                reply.sum = (reply.sum + sum(c.data)) % (1 << 64)
                reply.last_seq = c.seq
            return reply

        def Chat(self, request_iterator, context):
            fails, code, msg = attempt(context, "Chat")
            after = metadata(context, "x-retry-fail-after", "")
            if fails and after == "headers":
                send_headers(context)
            if not fails or after == "message":
                for c in request_iterator:
                    yield c
                    if fails:
                        break
            if fails:
                context.abort(code, msg)

    return serve(grpc, "py_retry_server", args, 8,
                 lambda server: stream_pb2_grpc.add_StreamServiceServicer_to_server(
                     Servicer(), server))


if __name__ == "__main__":
    sys.exit(main())
