#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A grpcio implementation of cgrpc.test.EchoService, the peer for interop tests.

  py_echo_server.py [--host=127.0.0.1] [--port=0 | --address=ADDR]
                    [--stubs-dir=DIR] [--max_receive_message_length=N]
                    [--option=NAME=INT ...]

Echo behaves as protos/test/echo.proto and tests/integration/echo_service.h
describe, like cgrpc's echo_server:

  - echo_metadata: every request metadata entry (except the reserved ones
    grpcio itself adds, such as user-agent) comes back as initial metadata
    under the same key, and as trailing metadata under the key with
    "-trailer" inserted before a "-bin" suffix or appended otherwise;
  - sleep_ms: sleeps that long in short slices, answering CANCELLED as soon
    as the call is no longer active (cancelled, or past its deadline);
  - status_code != 0: fails with that code and status_message (no details
    when the message is empty);
  - otherwise replies with |message|, a payload (response_size bytes of
    (i * 131 + 7) & 0xff, or the request's payload), and what the server
    saw: peer, time_remaining_ms (-1 without a deadline), authority, method.

Unimplemented is not overridden, so grpcio answers it UNIMPLEMENTED.
--option adds an integer channel argument to the server's (for example
grpc.http2.max_ping_strikes=2).
Port 0 (the default) binds a free port.  Once serving, the bound port is
printed alone on the first line of stdout.  SIGTERM or SIGINT stops it
(grace 1 s) with exit status 0.
"""
import argparse
import sys
import time

from interop_harness import add_serve_args, int_channel_option, serve

SLEEP_SLICE_S = 0.01

# Request metadata that grpcio adds or that a server may not send back.
RESERVED_KEYS = ("user-agent", "te", "content-type", "host")


def payload_bytes(n):
    return bytes((i * 131 + 7) & 0xFF for i in range(n))


def trailer_key(key):
    if key.endswith("-bin"):
        return key[:-4] + "-trailer-bin"
    return key + "-trailer"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_serve_args(ap)
    ap.add_argument("--max_receive_message_length", type=int, default=None,
                    help="largest request message accepted (grpcio's "
                         "default: 4 MiB)")
    ap.add_argument("--stubs-dir", help="folder holding echo_pb2*.py")
    ap.add_argument("--option", action="append", default=[],
                    type=int_channel_option, metavar="NAME=INT",
                    help="an integer server channel argument (repeatable)")
    args = ap.parse_args()
    if args.stubs_dir:
        sys.path.insert(0, args.stubs_dir)

    import grpc
    import echo_pb2
    import echo_pb2_grpc

    codes = {c.value[0]: c for c in grpc.StatusCode}

    def call_host(context):
        # grpcio has no public accessor for :authority; the call details of
        # the underlying request event carry it.
        try:
            host = context._rpc_event.call_details.host
        except AttributeError:
            return ""
        return host.decode("utf-8", "replace") if isinstance(host, bytes) \
            else str(host)

    def call_method(context):
        try:
            method = context._rpc_event.call_details.method
        except AttributeError:
            return "/cgrpc.test.EchoService/Echo"
        return method.decode("utf-8", "replace") \
            if isinstance(method, bytes) else str(method)

    class EchoService(echo_pb2_grpc.EchoServiceServicer):
        def Echo(self, request, context):
            if request.echo_metadata:
                initial, trailing = [], []
                for key, value in context.invocation_metadata():
                    if key.startswith((":", "grpc-")) or key in RESERVED_KEYS:
                        continue
                    initial.append((key, value))
                    trailing.append((trailer_key(key), value))
                context.send_initial_metadata(tuple(initial))
                context.set_trailing_metadata(tuple(trailing))
            if request.sleep_ms > 0:
                end = time.monotonic() + request.sleep_ms / 1000.0
                while time.monotonic() < end:
                    if not context.is_active():
                        context.abort(grpc.StatusCode.CANCELLED,
                                      "cancelled while sleeping")
                    time.sleep(min(SLEEP_SLICE_S,
                                   max(0.0, end - time.monotonic())))
            if request.status_code != 0:
                code = codes.get(request.status_code, grpc.StatusCode.UNKNOWN)
                if request.status_message:
                    context.abort(code, request.status_message)
                context.set_code(code)
                return echo_pb2.EchoReply()

            reply = echo_pb2.EchoReply(message=request.message)
            if request.response_size > 0:
                reply.payload = payload_bytes(request.response_size)
            else:
                reply.payload = request.payload
            reply.peer = context.peer()
            left = context.time_remaining()
            # grpcio reports an absent deadline as a huge time_remaining.
            if left is None or left > 1e8:
                reply.time_remaining_ms = -1
            else:
                reply.time_remaining_ms = int(left * 1000)
            reply.authority = call_host(context)
            reply.method = call_method(context)
            return reply

    options = list(args.option)
    if args.max_receive_message_length is not None:
        options.append(("grpc.max_receive_message_length",
                        args.max_receive_message_length))
    return serve(grpc, "py_echo_server", args, 8,
                 lambda server: echo_pb2_grpc
                 .add_EchoServiceServicer_to_server(EchoService(), server),
                 options)


if __name__ == "__main__":
    sys.exit(main())
