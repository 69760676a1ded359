#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A grpcio client of cgrpc.test.EchoService that runs named interop cases.

  py_echo_client.py --target=TARGET --case=NAME [--timeout=SECONDS]
                    [--stubs-dir=DIR]

TARGET is HOST:PORT, or a Unix socket (unix:PATH, unix-abstract:NAME).

Cases (the same as tests/interop/echo_client.c):
  unary                   a message and payload round trip; what the server
                          saw (method, authority, peer, deadline)
  status_codes            each code 1..16 with a message comes back exactly
  special_status_message  the interop spec's whitespace/Unicode message
                          comes back byte-exact
  metadata                an ASCII and a -bin entry (bytes 0x00..0xff) come
                          back in initial and trailing metadata
  large                   1 MiB payload each way
  deadline                sleep_ms=2000 with a 200 ms timeout ->
                          DEADLINE_EXCEEDED
  unimplemented           the Unimplemented method -> UNIMPLEMENTED
  all                     every case above

Hostile input, sent as raw bytes with grpc's generic API (for cgrpc's
echo_server; "oversized" needs a server started with
--max_receive_message_length=1024).  After each, a normal call on the same
channel must still work:
  malformed               bytes that are no EchoRequest -> INTERNAL
  oversized               a 4 KiB request -> RESOURCE_EXHAUSTED
  unknown_service         /no.such.Service/Foo and an unknown method of
                          EchoService -> UNIMPLEMENTED
  raw                     the three above

Prints "PASS: ..." / "FAIL: ..." per check; exits 0 when every check
passed, 1 otherwise, 2 on usage errors.
"""
import argparse
import sys
import time

CASES = ("unary", "status_codes", "special_status_message", "metadata",
         "large", "deadline", "unimplemented")
RAW_CASES = ("malformed", "oversized", "unknown_service")

# From the gRPC interop test descriptions (special_status_message).
SPECIAL_MESSAGE = ("\t\ntest with whitespace\r\nand Unicode BMP \u263a "
                   "and non-BMP \U0001f608\t\n")
INITIAL_KEY = "x-grpc-test-echo-initial"
INITIAL_VALUE = "test_initial_metadata_value"
BIN_KEY = "x-grpc-test-echo-trailing-bin"
BIN_VALUE = bytes(range(256))
ECHO_PATH = "/cgrpc.test.EchoService/Echo"
MIB = 1 << 20


def trailer_key(key):
    if key.endswith("-bin"):
        return key[:-4] + "-trailer-bin"
    return key + "-trailer"


class Client:
    def __init__(self, args, grpc, pb2, pb2_grpc):
        self.args = args
        self.grpc = grpc
        self.pb2 = pb2
        self.failures = 0
        self.channel = grpc.insecure_channel(
            args.target, options=[("grpc.enable_http_proxy", 0)])
        self.stub = pb2_grpc.EchoServiceStub(self.channel)

    def close(self):
        self.channel.close()

    def check(self, label, ok, detail=""):
        print(f"{'PASS' if ok else 'FAIL'}: {label}" +
              ("" if ok or not detail else f": {detail}"), flush=True)
        if not ok:
            self.failures += 1
        return ok

    def check_equal(self, label, got, want):
        return self.check(label, got == want, f"got {got!r}, want {want!r}")

    def echo(self, request, timeout=None, metadata=None, method="Echo"):
        """Returns (code name, details, reply or None, call or error)."""
        if timeout is None:
            timeout = self.args.timeout
        fn = getattr(self.stub, method)
        try:
            reply, call = fn.with_call(request, timeout=timeout,
                                       metadata=metadata)
        except self.grpc.RpcError as e:
            return e.code().name, e.details(), None, e
        return call.code().name, call.details(), reply, call

    def check_ok(self, label, result):
        code, details, _, _ = result
        return self.check(label, code == "OK", f"{code}: {details!r}")

    # ---- cases ---------------------------------------------------------------

    def case_unary(self):
        msg = "hello, echo \u2713"
        payload = bytes(range(256)) * 4
        res = self.echo(self.pb2.EchoRequest(message=msg, payload=payload))
        if self.check_ok("unary: Echo answers OK", res):
            reply = res[2]
            self.check_equal("unary: message comes back", reply.message, msg)
            self.check("unary: payload comes back", reply.payload == payload,
                       f"{len(reply.payload)} bytes, want {len(payload)}")
            self.check_equal("unary: server saw the method", reply.method,
                             ECHO_PATH)
            # gRPC sends "localhost" for Unix socket targets, and the
            # server sees the client's unnamed socket as "unix:".
            unix = self.args.target.startswith(("unix:", "unix-abstract:"))
            self.check_equal("unary: server saw the authority",
                             reply.authority,
                             "localhost" if unix else self.args.target)
            if unix:
                self.check_equal("unary: server saw the unnamed unix peer",
                                 reply.peer, "unix:")
            else:
                self.check("unary: server saw a peer", reply.peer != "",
                           "empty peer")
            # grpcio rounds the grpc-timeout it sends up to a coarser unit
            # (10 s left as 9.999 s goes out as "10100m"): allow 2% + 100 ms.
            limit = self.args.timeout * 1000 * 1.02 + 100
            self.check("unary: server saw the deadline",
                       0 < reply.time_remaining_ms <= limit,
                       f"time_remaining_ms {reply.time_remaining_ms}, "
                       f"want in (0, {limit:.0f}]")
        # Without a deadline the server sees none.
        try:
            reply = self.stub.Echo(self.pb2.EchoRequest(message="x"))
        except self.grpc.RpcError as e:
            self.check("unary: Echo without a deadline answers OK", False,
                       f"{e.code().name}: {e.details()!r}")
        else:
            self.check_equal("unary: no deadline seen without a timeout",
                             reply.time_remaining_ms, -1)
        res = self.echo(self.pb2.EchoRequest(response_size=1000))
        if self.check_ok("unary: response_size answers OK", res):
            self.check_equal("unary: response_size sets the payload size",
                             len(res[2].payload), 1000)

    def case_status_codes(self):
        for value in range(1, 17):
            want = [c for c in self.grpc.StatusCode if c.value[0] == value][0]
            message = f"status {value} ({want.name}) from the server"
            code, details, _, _ = self.echo(self.pb2.EchoRequest(
                status_code=value, status_message=message))
            self.check_equal(f"status_codes: {want.name} and its message",
                             (code, details), (want.name, message))

    def case_special_status_message(self):
        code, details, _, _ = self.echo(self.pb2.EchoRequest(
            status_code=2, status_message=SPECIAL_MESSAGE))
        self.check_equal("special_status_message: UNKNOWN with the message "
                         "byte-exact", (code, details),
                         ("UNKNOWN", SPECIAL_MESSAGE))

    def check_metadata(self, label, md, pairs):
        got = {}
        for key, value in md or ():
            got.setdefault(key, []).append(value)
        for key, value in pairs:
            self.check_equal(f"{label} {key}", got.get(key), [value])

    def case_metadata(self):
        sent = ((INITIAL_KEY, INITIAL_VALUE), (BIN_KEY, BIN_VALUE))
        echoed = tuple((trailer_key(k), v) for k, v in sent)
        code, details, _, call = self.echo(
            self.pb2.EchoRequest(message="md", echo_metadata=True),
            metadata=sent)
        if self.check("metadata: Echo answers OK", code == "OK",
                      f"{code}: {details!r}"):
            self.check_metadata("metadata: initial metadata has",
                                call.initial_metadata(), sent)
            self.check_metadata("metadata: trailing metadata has",
                                call.trailing_metadata(), echoed)
        # Trailing metadata also travels with an error status.
        code, details, _, err = self.echo(
            self.pb2.EchoRequest(echo_metadata=True, status_code=9,
                                 status_message="with metadata"),
            metadata=sent)
        if self.check_equal("metadata: the error status arrives",
                            (code, details),
                            ("FAILED_PRECONDITION", "with metadata")):
            self.check_metadata("metadata: error trailing metadata has",
                                err.trailing_metadata(), echoed)

    def case_large(self):
        payload = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(MIB))
        res = self.echo(self.pb2.EchoRequest(payload=payload))
        if self.check_ok("large: 1 MiB request payload echoed OK", res):
            self.check("large: 1 MiB comes back byte-exact",
                       res[2].payload == payload,
                       f"{len(res[2].payload)} bytes back")
        res = self.echo(self.pb2.EchoRequest(response_size=MIB))
        if self.check_ok("large: response_size=1 MiB answers OK", res):
            self.check_equal("large: 1 MiB response payload",
                             len(res[2].payload), MIB)

    def case_deadline(self):
        start = time.monotonic()
        code, details, _, _ = self.echo(
            self.pb2.EchoRequest(sleep_ms=2000), timeout=0.2)
        took = time.monotonic() - start
        self.check_equal("deadline: sleep_ms=2000 with 200 ms -> code",
                         code, "DEADLINE_EXCEEDED")
        self.check("deadline: the call ends before the sleep would", took <
                   1.9, f"took {took:.2f} s")
        self.check_ok("deadline: the channel still works",
                      self.echo(self.pb2.EchoRequest(message="after")))

    def case_unimplemented(self):
        code, _, _, _ = self.echo(self.pb2.EchoRequest(message="x"),
                                  method="Unimplemented")
        self.check_equal("unimplemented: Unimplemented -> code", code,
                         "UNIMPLEMENTED")

    # ---- hostile input ---------------------------------------------------------

    def raw_call(self, path, data):
        fn = self.channel.unary_unary(path, request_serializer=None,
                                      response_deserializer=None)
        try:
            fn(data, timeout=self.args.timeout)
        except self.grpc.RpcError as e:
            return e.code().name, e.details()
        return "OK", ""

    def still_works(self, label):
        res = self.echo(self.pb2.EchoRequest(message="still here"))
        if self.check_ok(f"{label}: a normal call on the same channel works",
                         res):
            self.check_equal(f"{label}: its reply", res[2].message,
                             "still here")

    def case_malformed(self):
        # Field 1, length-delimited, length 2^32-1: truncated.
        code, details = self.raw_call(ECHO_PATH, b"\x0a\xff\xff\xff\xff\x0f")
        self.check_equal("malformed: an unparsable request -> code", code,
                         "INTERNAL")
        self.still_works("malformed")

    def case_oversized(self):
        data = self.pb2.EchoRequest(payload=b"\x55" * 4096).SerializeToString()
        code, details = self.raw_call(ECHO_PATH, data)
        self.check_equal("oversized: a 4 KiB request to a 1 KiB server -> "
                         "code", code, "RESOURCE_EXHAUSTED")
        self.still_works("oversized")

    def case_unknown_service(self):
        code, details = self.raw_call("/no.such.Service/Foo", b"")
        self.check_equal("unknown_service: /no.such.Service/Foo -> code",
                         code, "UNIMPLEMENTED")
        code, details = self.raw_call("/cgrpc.test.EchoService/NoSuchMethod",
                                      b"")
        self.check_equal("unknown_service: an unknown method of a known "
                         "service -> code", code, "UNIMPLEMENTED")
        self.still_works("unknown_service")


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", required=True,
                    help="HOST:PORT, unix:PATH or unix-abstract:NAME")
    ap.add_argument("--case", required=True,
                    choices=CASES + ("all",) + RAW_CASES + ("raw",))
    ap.add_argument("--timeout", type=float, default=10.0,
                    help="deadline of each call in seconds (default 10)")
    ap.add_argument("--stubs-dir", help="folder holding echo_pb2*.py")
    args = ap.parse_args()
    if args.stubs_dir:
        sys.path.insert(0, args.stubs_dir)
    sys.stdout.reconfigure(encoding="utf-8")

    import grpc
    import echo_pb2
    import echo_pb2_grpc

    if args.case == "all":
        cases = CASES
    elif args.case == "raw":
        cases = RAW_CASES
    else:
        cases = (args.case,)
    client = Client(args, grpc, echo_pb2, echo_pb2_grpc)
    try:
        for name in cases:
            getattr(client, "case_" + name)()
    finally:
        client.close()
    print(f"{'FAILED' if client.failures else 'OK'}: "
          f"{client.failures} failed check(s)", flush=True)
    return 1 if client.failures else 0


if __name__ == "__main__":
    sys.exit(main())
