#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A grpcio EchoService client for the keepalive interop tests
(run_keepalive_interop.py), the counterpart of grpcxx_keepalive_peer's
--client:

  py_keepalive_client.py --target=HOST:PORT --stubs-dir=DIR
                         [--option=NAME=INT ...] [--busy_ms=N]
                         --idle_ms=N --expect_goaway=true|false

--option adds an integer channel argument (grpc.keepalive_time_ms=200,
...).  An Echo; with --busy_ms an Echo that sleeps that long on the server
(pings with a call in flight); then, with no call, waits for the channel to
leave READY (its connection ended: a GOAWAY) for at most --idle_ms; then a
last Echo.  --expect_goaway=true: the channel must have left READY; false:
it must have stayed READY all along.  Prints PASS/FAIL lines; exits 0 when
every call succeeded and the channel did what was expected, else 1.
"""
import argparse
import sys
import threading
import time

from interop_harness import int_channel_option


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", required=True)
    ap.add_argument("--stubs-dir", required=True,
                    help="folder holding echo_pb2*.py")
    ap.add_argument("--option", action="append", default=[],
                    type=int_channel_option, metavar="NAME=INT",
                    help="an integer channel argument (repeatable)")
    ap.add_argument("--busy_ms", type=int, default=0)
    ap.add_argument("--idle_ms", type=int, required=True)
    ap.add_argument("--expect_goaway", choices=("true", "false"),
                    required=True)
    args = ap.parse_args()
    sys.path.insert(0, args.stubs_dir)

    import grpc
    import echo_pb2
    import echo_pb2_grpc

    ok = True

    def check(good, what):
        nonlocal ok
        print(f"{'PASS' if good else 'FAIL'}: {what}", flush=True)
        ok &= good

    def echo(what, sleep_ms=0):
        try:
            r = stub.Echo(echo_pb2.EchoRequest(message="keepalive",
                                               sleep_ms=sleep_ms),
                          timeout=10 + sleep_ms / 1000.0)
            check(r.message == "keepalive", f"{what}: {r.message!r}")
        except grpc.RpcError as e:
            check(False, f"{what}: {e.code()} {e.details()}")

    ch = grpc.insecure_channel(
        args.target, options=[("grpc.enable_http_proxy", 0), *args.option])
    stub = echo_pb2_grpc.EchoServiceStub(ch)
    # The channel's state as grpcio reports it (on one of its threads).
    cond = threading.Condition()
    state = [None]

    def on_state(s):
        with cond:
            state[0] = s
            cond.notify_all()

    ch.subscribe(on_state, try_to_connect=False)
    ready = grpc.ChannelConnectivity.READY

    echo("an Echo")
    if args.busy_ms > 0:
        echo("an Echo sleeping on the server", args.busy_ms)
    with cond:
        check(cond.wait_for(lambda: state[0] == ready, timeout=10),
              f"channel READY after the calls ({state[0]})")
        start = time.monotonic()
        left = cond.wait_for(lambda: state[0] != ready,
                             timeout=args.idle_ms / 1000.0)
        waited = int((time.monotonic() - start) * 1000)
        now = state[0]
    if args.expect_goaway == "true":
        check(left, f"channel left READY while idle (after {waited} ms: "
              f"{now})")
    else:
        check(not left, f"channel stayed READY while idle ({waited} ms: "
              f"{now})")
    echo("an Echo after the idle time")
    ch.unsubscribe(on_state)
    ch.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
