#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Keepalive interop (gRFC A8/A9) with grpcio and grpc++, both ways.

  run_keepalive_interop.py --case=CASE --stubs-dir=DIR
      [--echo-server=BIN] [--keepalive-client=BIN] [--grpcxx-peer=BIN]
      [--python=PY] [--keep-logs]

Every client reaches its server through a tap: a TCP relay that reads the
HTTP/2 frames going by and counts, per connection, the client's PINGs, the
server's PING ACKs, the client's HEADERS (requests) and the server's
GOAWAYs.  "Strict" and "permissive" are the servers' ping policies; our
clients (keepalive_client) ping every 200 ms, grpcio and grpc++ ones ask for
200 ms and, C-core being what it is, ping every second at most (see
py_client_cgrpc_server below).

  cgrpc-client-py-server
      keepalive_client against py_echo_server.py with
      grpc.http2.min_ping_interval_without_data_ms=5000, max_ping_strikes=2
      and keepalive_permit_without_calls=1: the grpcio server sends GOAWAY
      ENHANCE_YOUR_CALM "too_many_pings" on the first connection, our
      channel logs "keepalive time now 400 ms", and the next call goes on a
      second connection.
  py-client-cgrpc-server
      py_keepalive_client.py against echo_server with the default policy:
      busy (keepalive 200 ms, a 2 s call, grpcio's default of 2 pings
      without data): it pings, no GOAWAY, one connection; idle
      (permit_without_calls, max_pings_without_data=0): our server sends
      GOAWAY too_many_pings (wire and server log), grpcio's channel leaves
      READY and its next call goes on a second connection.
  cgrpc-client-grpcxx-server-permissive
      keepalive_client (keepalive 200 ms, timeout 5 s) against
      grpcxx_keepalive_peer --server with min_recv_ping_interval 100 ms and
      keepalive_permit_without_calls=1: a 1 s call, 2 s idle, another call;
      at least 6 PINGs, all ACKed, three calls on one connection, no GOAWAY,
      no doubling.
  cgrpc-client-grpcxx-server-strict
      the same client against grpc++'s default policy (5 minutes, 2
      strikes, no pings without calls): GOAWAY too_many_pings on the first
      connection, "keepalive time now 400 ms", the next call on a second.
  grpcxx-client-cgrpc-server-permissive
      grpcxx_keepalive_peer --client (GRPC_ARG_KEEPALIVE_TIME_MS 200,
      TIMEOUT 5000, PERMIT_WITHOUT_CALLS 1, MAX_PINGS_WITHOUT_DATA 0)
      against echo_server with --keepalive_min_ping_interval_ms=100
      --keepalive_permit_without_calls=1: a 1.5 s call, 5 s idle, another
      call; at least 5 PINGs, all ACKed, one connection, no GOAWAY, no
      too_many_pings in the server log.
  grpcxx-client-cgrpc-server-strict
      the same client against echo_server's default policy: GOAWAY
      too_many_pings (wire and server log), the channel leaves READY, the
      next call on a second connection.

Processes, waits and timeouts are as interop_harness.py describes.
"""
import argparse
import os
import socket
import sys
import threading

from interop_harness import Harness, add_peer_args, main_loop, run_labelled

HERE = os.path.dirname(os.path.abspath(__file__))
PY_SERVER = os.path.join(HERE, "py_echo_server.py")
PY_CLIENT = os.path.join(HERE, "py_keepalive_client.py")

CASES = ("cgrpc-client-py-server", "py-client-cgrpc-server",
         "cgrpc-client-grpcxx-server-permissive",
         "cgrpc-client-grpcxx-server-strict",
         "grpcxx-client-cgrpc-server-permissive",
         "grpcxx-client-cgrpc-server-strict")

# What our server logs when its ping policy ends a connection.
SERVER_GOAWAY_LOG = b"GOAWAY ENHANCE_YOUR_CALM too_many_pings"

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADERS, PING, GOAWAY = 0x1, 0x6, 0x7
FLAG_ACK = 0x1
ENHANCE_YOUR_CALM = 0xB

# The keepalive arguments of the grpcio and grpc++ clients.
CORE_CLIENT_ARGS = (("grpc.keepalive_time_ms", 200),
                    ("grpc.keepalive_timeout_ms", 5000))
CORE_IDLE_ARGS = (("grpc.keepalive_permit_without_calls", 1),
                  ("grpc.http2.max_pings_without_data", 0))


class Conn:
    """What the tap saw on one connection."""

    def __init__(self):
        self.pings = 0     # PINGs from the client (not ACKs)
        self.acks = 0      # PING ACKs from the server
        self.requests = 0  # HEADERS from the client
        self.goaways = []  # (error code, debug data) from the server

    def goaway_calm(self):
        return (ENHANCE_YOUR_CALM, b"too_many_pings") in self.goaways

    def __str__(self):
        goaways = ", ".join(f"code {c} {d!r}" for c, d in self.goaways)
        return (f"{self.pings} PINGs from the client, {self.acks} ACKs, "
                f"{self.requests} requests, GOAWAY from the server: "
                f"{goaways or 'none'}")


class H2Tap:
    """A TCP relay on 127.0.0.1 in front of 127.0.0.1:|upstream| that
    forwards every byte as it comes and parses the plaintext HTTP/2 frames
    of both directions into one Conn per connection.  Its threads end when
    the sockets close: the peers', or close()'s."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.conns = []
        self.lock = threading.Lock()
        self.socks = []
        self.threads = []
        self.closing = False
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self._spawn(self._accept)

    def _spawn(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        with self.lock:
            self.threads.append(t)
        t.start()

    def _accept(self):
        while True:
            try:
                down, _ = self.lsock.accept()
            except OSError:
                return  # close() shut the listener
            try:
                up = socket.create_connection(("127.0.0.1", self.upstream),
                                              timeout=10)
                up.settimeout(None)
            except OSError:
                down.close()
                continue
            conn = Conn()
            with self.lock:
                if self.closing:
                    down.close()
                    up.close()
                    return
                self.conns.append(conn)
                self.socks += [down, up]
            for s in (down, up):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._spawn(self._pump, down, up, conn, True)
            self._spawn(self._pump, up, down, conn, False)

    def _pump(self, src, dst, conn, from_client):
        buf = b""
        preface = from_client
        while True:
            try:
                data = src.recv(65536)
                if data:
                    dst.sendall(data)
            except OSError:
                data = b""
            if not data:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            buf += data
            if preface:
                if len(buf) < len(PREFACE):
                    continue
                buf = buf[len(PREFACE):]
                preface = False
            while len(buf) >= 9:
                length = int.from_bytes(buf[0:3], "big")
                if len(buf) < 9 + length:
                    break
                ftype, flags, payload = buf[3], buf[4], buf[9:9 + length]
                buf = buf[9 + length:]
                with self.lock:
                    self._frame(conn, from_client, ftype, flags, payload)

    @staticmethod
    def _frame(conn, from_client, ftype, flags, payload):
        if from_client and ftype == HEADERS:
            conn.requests += 1
        elif ftype == PING and from_client and not flags & FLAG_ACK:
            conn.pings += 1
        elif ftype == PING and not from_client and flags & FLAG_ACK:
            conn.acks += 1
        elif ftype == GOAWAY and not from_client and len(payload) >= 8:
            conn.goaways.append((int.from_bytes(payload[4:8], "big"),
                                 bytes(payload[8:])))

    def close(self, timeout):
        """Closes every socket and waits (up to |timeout| s each) for the
        threads; returns the Conns."""
        with self.lock:
            self.closing = True
            socks = [self.lsock, *self.socks]
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self.lock:
            threads = list(self.threads)
        for t in threads:
            t.join(timeout)
        for s in socks:
            s.close()
        for i, c in enumerate(self.conns, 1):
            print(f"    tap: connection {i}: {c}", flush=True)
        return self.conns


class KeepaliveHarness(Harness):

    def serve(self, kind, extra=()):
        """Starts |kind|'s server ("cgrpc", "py", "grpcxx") with |extra|
        arguments and a tap in front of it.  Returns (proc, tap)."""
        if kind == "cgrpc":
            proc, port = self.start_cgrpc_server(
                self.args.echo_server, label="echo_server", extra=extra)
        elif kind == "grpcxx":
            proc, port = self.start_cgrpc_server(
                self.args.grpcxx_peer, label="grpcxx_keepalive_peer server",
                extra=("--server", *extra))
        else:
            proc, port = self.start_py_server(
                PY_SERVER, label="py_echo_server", extra=extra)
        return proc, H2Tap(port)

    def finish(self, proc, tap):
        """Closes |tap| and stops and checks |proc|.  Returns (the tap's
        Conns, the server's log)."""
        conns = tap.close(self.timeout(5))
        self.stop(proc)
        return conns, proc.log()

    def run_client(self, kind, target, extra, timeout=40):
        """Runs |kind|'s keepalive client ("cgrpc", "py", "grpcxx") against
        |target| with |extra| arguments.  Returns its output."""
        if kind == "cgrpc":
            argv = [self.args.keepalive_client, f"--target={target}", *extra]
            label = "keepalive_client"
        elif kind == "grpcxx":
            argv = [self.args.grpcxx_peer, "--client", f"--target={target}",
                    *extra]
            label = "grpcxx_keepalive_peer client"
        else:
            argv = [self.args.python, PY_CLIENT, f"--target={target}",
                    f"--stubs-dir={self.args.stubs_dir}", *extra]
            label = "py_keepalive_client.py"
        _, text = self.run_case_client(label, label, argv, timeout,
                                       cgrpc=kind == "cgrpc")
        return text

    # ---- what the tap saw --------------------------------------------------

    def check_goaway(self, who, conns):
        """The first connection ended with the server's GOAWAY
        ENHANCE_YOUR_CALM "too_many_pings" after one request, and the
        client's later request went on a new connection."""
        self.check(f"{who}: GOAWAY ENHANCE_YOUR_CALM too_many_pings on the "
                   "first connection", bool(conns) and conns[0].goaway_calm(),
                   "; ".join(str(c) for c in conns) or "no connection")
        # Three strikes (more than 2) need three PINGs after the first.
        self.check(f"{who}: the pings came before it", bool(conns) and
                   conns[0].pings >= 3)
        self.check(f"{who}: the next call on a new connection",
                   len(conns) >= 2 and conns[0].requests >= 1 and
                   sum(c.requests for c in conns[1:]) >= 1,
                   f"{len(conns)} connection(s)")

    def check_quiet(self, who, conns, min_pings, requests):
        """One connection, at least |min_pings| PINGs from the client and
        an ACK for each (the last may still be on its way), |requests|
        requests, no GOAWAY from the server."""
        self.check_equal(f"{who}: one connection", len(conns), 1)
        if len(conns) != 1:
            return
        c = conns[0]
        self.check(f"{who}: at least {min_pings} PINGs from the client",
                   c.pings >= min_pings, str(c))
        self.check(f"{who}: the server ACKed them",
                   c.acks >= c.pings - 1, str(c))
        self.check_equal(f"{who}: requests on it", c.requests, requests)
        self.check_equal(f"{who}: GOAWAYs from the server", c.goaways, [])

    def check_server_log(self, who, log, want):
        self.check_equal(f"{who}: times our server logged too_many_pings",
                         log.count(SERVER_GOAWAY_LOG), want)


def core_client_args(kind, pairs, expect_goaway, idle_ms, busy_ms=0):
    """The grpcio or grpc++ client's arguments for channel args |pairs|
    (grpcxx_keepalive_peer's flags are the last part of their names)."""
    if kind == "py":
        args = [f"--option={k}={v}" for k, v in pairs]
    else:
        args = [f"--{k.split('.')[-1]}={v}" for k, v in pairs]
    if busy_ms:
        args.append(f"--busy_ms={busy_ms}")
    return args + [f"--idle_ms={idle_ms}",
                   f"--expect_goaway={'true' if expect_goaway else 'false'}"]


def cgrpc_client(h, server_kind, server_args, who, strict):
    """keepalive_client (200 ms pings, timeout 5 s) against a strict or
    permissive grpcio or grpc++ server."""
    proc, tap = h.serve(server_kind, server_args)
    try:
        extra = ["--keepalive_time_ms=200", "--keepalive_timeout_ms=5000"]
        if strict:
            extra += [f"--wait_ms={int(h.timeout(15000))}"]
        else:
            extra += ["--busy_ms=1000", "--wait_ms=2000", "--expect_goaway=0"]
        text = h.run_client("cgrpc", f"127.0.0.1:{tap.port}", extra)
    finally:
        conns, _ = h.finish(proc, tap)
    if strict:
        h.check(f"{who}: our channel logged \"keepalive time now 400 ms\"",
                "keepalive time now 400 ms" in text)
        h.check_goaway(who, conns)
    else:
        h.check(f"{who}: our channel did not double its keepalive time",
                "keepalive time now" not in text)
        # 200 ms pings through a 1 s call and 2 s idle: about 14.
        h.check_quiet(who, conns, 6, 3)


def core_client(h, client_kind, server_args, who, strict):
    """A grpcio or grpc++ client (keepalive 200 ms, timeout 5 s, pings
    without calls and without data) against echo_server."""
    proc, tap = h.serve("cgrpc", server_args)
    try:
        pairs = CORE_CLIENT_ARGS + CORE_IDLE_ARGS
        if strict:
            extra = core_client_args(client_kind, pairs, True,
                                     int(h.timeout(20000)))
        else:
            extra = core_client_args(client_kind, pairs, False, 5000, 1500)
        h.run_client(client_kind, f"127.0.0.1:{tap.port}", extra)
    finally:
        conns, log = h.finish(proc, tap)
    if strict:
        h.check_server_log(who, log, 1)
        h.check_goaway(who, conns)
    else:
        h.check_server_log(who, log, 0)
        # At most one PING a second through a 1.5 s call and 5 s idle.
        h.check_quiet(who, conns, 5, 3)


def cgrpc_client_py_server(h):
    cgrpc_client(h, "py", [
        "--option=grpc.http2.min_ping_interval_without_data_ms=5000",
        "--option=grpc.http2.max_ping_strikes=2",
        "--option=grpc.keepalive_permit_without_calls=1"],
        "cgrpc client vs strict grpcio server", strict=True)


def py_client_cgrpc_server(h):
    # Busy: a call in flight, grpcio's default max_pings_without_data (2):
    # its pings stop before our default policy's third strike.
    proc, tap = h.serve("cgrpc")
    try:
        h.run_client("py", f"127.0.0.1:{tap.port}", core_client_args(
            "py", CORE_CLIENT_ARGS, False, 0, 2000))
    finally:
        conns, log = h.finish(proc, tap)
    who = "grpcio client (busy) vs cgrpc server"
    h.check_server_log(who, log, 0)
    h.check_quiet(who, conns, 1, 3)
    # Idle: with permit_without_calls and max_pings_without_data=0 grpcio
    # keeps pinging without calls, which our default policy (one ping in
    # two hours without calls, 2 strikes) ends with a GOAWAY at the fourth
    # ping.  C-core (1.51, writing.cc maybe_initiate_ping) sends a client's
    # pings at least 1 s apart whatever keepalive_time_ms says (2 hours
    # apart without calls unless permit_without_calls), and
    # grpc.http2.min_time_between_pings_ms no longer changes that (it is
    # ignored, grpc_types.h says): the fourth ping comes about 3 s after the
    # first call, which is why an idle time of exactly 3 s used to end just
    # before it.  The client now waits for the GOAWAY instead.
    core_client(h, "py", [], "grpcio client (idle) vs strict cgrpc server",
                strict=True)


def run(h, case):
    if case == "cgrpc-client-py-server":
        cgrpc_client_py_server(h)
    elif case == "py-client-cgrpc-server":
        py_client_cgrpc_server(h)
    elif case == "cgrpc-client-grpcxx-server-permissive":
        cgrpc_client(h, "grpcxx", [
            "--min_recv_ping_interval_without_data_ms=100",
            "--keepalive_permit_without_calls=1"],
            "cgrpc client vs permissive grpc++ server", strict=False)
    elif case == "cgrpc-client-grpcxx-server-strict":
        cgrpc_client(h, "grpcxx", [],
                     "cgrpc client vs strict grpc++ server", strict=True)
    elif case == "grpcxx-client-cgrpc-server-permissive":
        core_client(h, "grpcxx", [
            "--keepalive_min_ping_interval_ms=100",
            "--keepalive_permit_without_calls=1"],
            "grpc++ client vs permissive cgrpc server", strict=False)
    elif case == "grpcxx-client-cgrpc-server-strict":
        core_client(h, "grpcxx", [],
                    "grpc++ client vs strict cgrpc server", strict=True)


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=CASES, required=True)
    ap.add_argument("--stubs-dir", required=True,
                    help="folder holding echo_pb2*.py")
    ap.add_argument("--echo-server", help="path to cgrpc's echo_server")
    ap.add_argument("--keepalive-client",
                    help="path to cgrpc's keepalive_client")
    ap.add_argument("--grpcxx-peer", help="path to grpcxx_keepalive_peer")
    add_peer_args(ap)
    args = ap.parse_args()
    need = {"echo_server": "cgrpc-server" in args.case,
            "keepalive_client": args.case.startswith("cgrpc-client"),
            "grpcxx_peer": "grpcxx" in args.case}
    for name, needed in need.items():
        if needed and not getattr(args, name):
            ap.error(f"--case={args.case} needs --{name.replace('_', '-')}")

    def body(h):
        print(f"== {args.case}", flush=True)
        run_labelled(h, args.case, run, h, args.case)
    return main_loop(KeepaliveHarness, args, "cgrpc-keepalive-", body)


if __name__ == "__main__":
    sys.exit(main())
