#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Interop between cgrpc's Greeter examples and grpcio's.

  run_greeter_interop.py --mode=MODE [--mode=MODE ...] --stubs-dir=DIR
                         [--cgrpc-server=PATH] [--cgrpc-client=PATH]
                         [--certs-dir=DIR]
  run_greeter_interop.py --list

Modes (--list prints them):
  py-client-py-server     grpcio against grpcio: checks the harness itself
  py-client-cgrpc-server  grpcio client -> cgrpc greeter_server
  cgrpc-client-py-server  cgrpc greeter_client -> grpcio server
  ...-tls, ...-mtls       the same over TLS, and mutual TLS, with the
                          certificates in --certs-dir
                          (tests/common/make_test_certs.sh)

Every wait is bounded, and every process started is stopped before exit.
Timeouts are multiplied by $CGRPC_TEST_TIMEOUT_MULTIPLIER (sanitizer
builds set it).  Exit status: 0 when every check passed, 1 otherwise, 2 on
usage errors.

To add a case, write a function taking the Harness and decorate it with
@mode("name", needs=(...)); the helpers of GreeterHarness and of
interop_harness.Harness start either side's server, run either side's
client and record checks.
"""
import argparse
import os
import sys

from interop_harness import (
    SANITIZER_RE, Harness, add_peer_args, dump, main_loop, run_labelled)

HERE = os.path.dirname(os.path.abspath(__file__))

PY_SERVER = os.path.join(HERE, "py_greeter_server.py")
PY_CLIENT = os.path.join(HERE, "py_greeter_client.py")

# Names sent in both directions: ASCII, and UTF-8 with 2- and 3-byte forms.
NAMES = ("world", "W\u00f6rld \u2713")

MODES = {}


def mode(name, needs=()):
    """Registers a test mode; |needs| names the options it requires."""
    def register(fn):
        MODES[name] = (fn, tuple(needs), (fn.__doc__ or "").strip())
        return fn
    return register


class GreeterHarness(Harness):
    def __init__(self, args, workdir):
        super().__init__(args, workdir)
        self._stubs = None

    # ---- clients ------------------------------------------------------------

    def py_client(self, target, name, method="SayHello", tls=()):
        """Runs py_greeter_client.py with the TLS flags |tls|.  Returns
        (status, stdout text)."""
        status, out, err = self.run(
            f"grpcio client {method}",
            [self.args.python, PY_CLIENT, f"--target={target}",
             f"--method={method}", f"--timeout={self.timeout(10)}",
             f"--stubs-dir={self.args.stubs_dir}",
             b"--name=" + name.encode("utf-8"), *tls])
        if status != 0:
            dump("grpcio client", out + err)
        return status, out.decode("utf-8", "replace")

    def cgrpc_client(self, binary, target, name, flags=()):
        """Runs our greeter_client with the further flags |flags| (TLS,
        --count, ...).  Returns (status, stdout lines, stderr text)."""
        status, out, err = self.run(
            "cgrpc client",
            [binary, f"--target={target}", b"--name=" + name.encode("utf-8"),
             *flags])
        self.check("cgrpc client: no sanitizer report",
                   not SANITIZER_RE.search(out + err))
        if status != 0:
            dump("cgrpc client", out + err)
        return (status, out.decode("utf-8", "replace").splitlines(),
                err.decode("utf-8", "replace"))

    def stubs(self):
        """Imports grpc and the generated helloworld modules in-process."""
        if self._stubs is None:
            sys.path.insert(0, self.args.stubs_dir)
            import grpc
            import helloworld_pb2
            import helloworld_pb2_grpc
            self._stubs = (grpc, helloworld_pb2, helloworld_pb2_grpc)
        return self._stubs

    def grpc_call(self, target, method, name):
        """Calls a Greeter method through grpcio in this process.
        Returns (status code name, reply message or details)."""
        grpc, pb2, pb2_grpc = self.stubs()
        with grpc.insecure_channel(
                target, options=[("grpc.enable_http_proxy", 0)]) as channel:
            stub = pb2_grpc.GreeterStub(channel)
            try:
                reply = getattr(stub, method)(pb2.HelloRequest(name=name),
                                              timeout=self.timeout(10))
            except grpc.RpcError as e:
                return e.code().name, e.details()
        return "OK", reply.message


# ---- modes -------------------------------------------------------------------

def greeter_checks_via_grpcio(h, target, who):
    """SayHello through the grpcio client script, SayHelloAgain in-process."""
    for name in NAMES:
        status, out = h.py_client(target, name)
        h.check_equal(f"{who}: SayHello({name!r}) via py_greeter_client",
                      (status, out.rstrip("\n")), (0, f"Hello, {name}!"))
        h.check_equal(f"{who}: SayHelloAgain({name!r}) via grpcio",
                      h.grpc_call(target, "SayHelloAgain", name),
                      ("OK", f"Hello again, {name}!"))


@mode("py-client-py-server")
def py_client_py_server(h):
    """grpcio client -> grpcio server (checks the harness itself)"""
    server, port = h.start_py_server(PY_SERVER)
    try:
        greeter_checks_via_grpcio(h, f"127.0.0.1:{port}", "grpcio server")
    finally:
        h.stop(server)


@mode("py-client-cgrpc-server", needs=("cgrpc_server",))
def py_client_cgrpc_server(h):
    """grpcio client -> cgrpc greeter_server"""
    server, port = h.start_cgrpc_server(h.args.cgrpc_server,
                                        label="greeter_server")
    try:
        greeter_checks_via_grpcio(h, f"127.0.0.1:{port}", "greeter_server")
    finally:
        h.stop(server)


@mode("cgrpc-client-py-server", needs=("cgrpc_client",))
def cgrpc_client_py_server(h):
    """cgrpc greeter_client -> grpcio server"""
    server, port = h.start_py_server(PY_SERVER)
    try:
        for name in NAMES:
            status, lines, _ = h.cgrpc_client(h.args.cgrpc_client,
                                              f"127.0.0.1:{port}", name)
            want = f"Hello, {name}!"
            h.check(f"greeter_client --name={name!r} exits 0 and prints "
                    f"{want!r}", status == 0 and want in lines,
                    f"exit status {status}, stdout {lines!r}")
    finally:
        h.stop(server)


# ---- TLS modes -----------------------------------------------------------------

@mode("cgrpc-client-cgrpc-server-count",
      needs=("cgrpc_client", "cgrpc_server"))
def cgrpc_client_cgrpc_server_count(h):
    """greeter_client --count/--interval_ms/--timeout_ms -> greeter_server
    --name: one line per call, and the exit status counts the failures"""
    server, port = h.start_cgrpc_server(h.args.cgrpc_server,
                                        label="greeter_server",
                                        extra=("--name=alpha",))
    target = f"127.0.0.1:{port}"
    try:
        status, lines, _ = h.cgrpc_client(
            h.args.cgrpc_client, target, "world",
            ("--count=3", "--interval_ms=10",
             f"--timeout_ms={h.timeout(10) * 1000:.0f}"))
        h.check_equal("3 calls to greeter_server --name=alpha",
                      (status, lines), (0, ["Hello, world! (from alpha)"] * 3))
    finally:
        h.stop(server)
    # Nobody listens there now: every call fails, and says so.
    status, lines, err = h.cgrpc_client(h.args.cgrpc_client, target, "world",
                                        ("--count=2", "--timeout_ms=2000"))
    failures = [l for l in err.splitlines() if "RPC failed: " in l]
    h.check_equal("2 calls to a stopped server: exit 1, 2 failure lines",
                  (status, lines, len(failures)), (1, [], 2))
    h.check("the failures name their status",
            all("UNAVAILABLE" in l or "DEADLINE_EXCEEDED" in l
                for l in failures), err)


@mode("cgrpc-client-cgrpc-servers-lb",
      needs=("cgrpc_client", "cgrpc_server"))
def cgrpc_client_cgrpc_servers_lb(h):
    """greeter_client --target=ipv4:A,B,C against three greeter_servers (and
    a grpcio one): round_robin spreads the calls, pick_first keeps to the
    first address and fails over when it is stopped"""
    procs, ports = {}, {}
    py = None
    try:
        for name in ("a", "b", "c"):
            procs[name], ports[name] = h.start_cgrpc_server(
                h.args.cgrpc_server, label=f"greeter_server {name}",
                extra=(f"--name={name}",))

        def run(names, flags, count):
            target = "ipv4:" + ",".join(f"127.0.0.1:{ports[n]}" for n in names)
            status, lines, _ = h.cgrpc_client(
                h.args.cgrpc_client, target, "world",
                (f"--count={count}",
                 f"--timeout_ms={h.timeout(10) * 1000:.0f}", *flags))
            return status, [l.replace("Hello, world!", "").strip(" ()")
                            .replace("from ", "") for l in lines]

        # round_robin sends calls to the subchannels READY so far: calls
        # 20 ms apart leave the others time to connect under load (20 calls
        # back to back could all go to the first one up).
        spread = ("--lb=round_robin", "--interval_ms=20")
        status, seen = run("abc", spread, 30)
        counts = {n: seen.count(n) for n in "abc"}
        h.check("round_robin: 30 calls, each server answers some",
                status == 0 and len(seen) == 30 and min(counts.values()) >= 5,
                f"exit {status}, counts {counts}")
        status, seen = run("abc", (), 5)
        h.check_equal("pick_first (the default): every call to the first",
                      (status, seen), (0, ["a"] * 5))
        h.stop(procs.pop("a"))
        status, seen = run("abc", (), 5)
        h.check_equal("pick_first with the first stopped: the second",
                      (status, seen), (0, ["b"] * 5))
        status, seen = run("abc", spread, 20)
        h.check("round_robin with one stopped: the two live ones, no failure",
                status == 0 and sorted(set(seen)) == ["b", "c"],
                f"exit {status}, seen {seen}")
        # A grpcio server among ours (its greeting names no server).
        py, ports["p"] = h.start_py_server(PY_SERVER)
        status, seen = run("bcp", spread, 30)
        h.check("round_robin over two cgrpc servers and a grpcio one",
                status == 0 and seen.count("") >= 5 and seen.count("b") >= 5
                and seen.count("c") >= 5, f"exit {status}, seen {seen}")
    finally:
        for proc in procs.values():
            h.stop(proc)
        if py:
            h.stop(py)


RETRY_CONFIG = (
    '{"methodConfig": [{"name": [{"service": "helloworld.Greeter"}], '
    '"retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.01s", '
    '"maxBackoff": "0.1s", "backoffMultiplier": 2, '
    '"retryableStatusCodes": ["UNAVAILABLE"]}}]}')


@mode("cgrpc-client-py-server-retry", needs=("cgrpc_client",))
def cgrpc_client_py_server_retry(h):
    """cgrpc greeter_client with a retryPolicy -> a grpcio server failing
    the first attempts (counted server-side)"""
    server, port = h.start_py_server(PY_SERVER, extra=["--fail_first=2"])
    target = f"127.0.0.1:{port}"
    try:
        status, lines, _ = h.cgrpc_client(
            h.args.cgrpc_client, target, "world",
            (f"--service_config={RETRY_CONFIG}",))
        h.check_equal("two UNAVAILABLE attempts, then the third answers",
                      (status, lines),
                      (0, ["Hello, world! (attempt 3, previous 2)"]))
    finally:
        h.stop(server)
    # Without the policy the first failure is final.
    server, port = h.start_py_server(PY_SERVER, extra=["--fail_first=1"])
    try:
        status, lines, err = h.cgrpc_client(
            h.args.cgrpc_client, f"127.0.0.1:{port}", "world",
            ("--count=2",))
        h.check_equal("no policy: the first call fails, the next is the "
                      "server's second attempt",
                      (status, lines),
                      (1, ["Hello, world! (attempt 2, previous -)"]))
        h.check("the failure is the server's UNAVAILABLE",
                "UNAVAILABLE: failing on purpose (attempt 1)" in err, err)
    finally:
        h.stop(server)


def cert(h, name):
    return os.path.join(h.args.certs_dir, name)


def tls_server_flags(h, mutual):
    """Server flags (greeter_server's and py_greeter_server's): server.pem
    (for localhost, 127.0.0.1 and server.test); client certificates from
    ca.pem required when |mutual|."""
    flags = [f"--tls_cert_file={cert(h, 'server.pem')}",
             f"--tls_key_file={cert(h, 'server.key')}"]
    if mutual:
        flags.append(f"--client_ca_file={cert(h, 'ca.pem')}")
    return flags


def client_cert_flags(h):
    return [f"--client_cert_file={cert(h, 'client.pem')}",
            f"--client_key_file={cert(h, 'client.key')}"]


def start_tls_server(h, side, mutual):
    flags = tls_server_flags(h, mutual)
    if side == "cgrpc":
        return h.start_cgrpc_server(h.args.cgrpc_server,
                                    label="greeter_server", extra=flags)
    return h.start_py_server(PY_SERVER, extra=["--use_tls=true", *flags])


def tls_client(h, side, target, name, flags):
    """One SayHello from |side| with the TLS flags |flags| (greeter_client's
    names; the grpcio client also gets --use_tls=true).  Returns (exit
    status, output text)."""
    if side == "py":
        return h.py_client(target, name, tls=["--use_tls=true", *flags])
    status, lines, err = h.cgrpc_client(h.args.cgrpc_client, target, name,
                                        flags=flags)
    return status, "\n".join(lines) + err


def tls_checks(h, client_side, server_side, mutual):
    """The Greeter over TLS between the two sides, and the handshakes that
    must fail: a wrong CA, a name the certificate lacks, plaintext against
    the TLS port, and (mutual) no client certificate."""
    server, port = start_tls_server(h, server_side, mutual)
    who = f"{client_side} client -> {server_side} server"
    ca = f"--ca_file={cert(h, 'ca.pem')}"
    mine = client_cert_flags(h) if mutual else []
    try:
        for name, target, extra in (
                (NAMES[0], f"127.0.0.1:{port}", []),
                (NAMES[1], f"localhost:{port}", []),
                (NAMES[0], f"127.0.0.1:{port}",
                 ["--server_host_override=server.test"])):
            status, out = tls_client(h, client_side, target, name,
                                     [ca, *extra, *mine])
            h.check(f"{who}: SayHello({name!r}) to {target} {extra}",
                    status == 0 and f"Hello, {name}!" in out,
                    f"exit status {status}, output {out!r}")
        refused = [
            ("a server certificate from an unknown CA",
             [f"--ca_file={cert(h, 'other_ca.pem')}", *mine]),
            ("a name the certificate lacks",
             [ca, "--server_host_override=wrong.test", *mine]),
        ]
        if mutual:
            refused.append(("no client certificate", [ca]))
        for why, flags in refused:
            status, out = tls_client(h, client_side, f"127.0.0.1:{port}",
                                     NAMES[0], flags)
            h.check(f"{who}: refused with {why}",
                    status == 1 and "UNAVAILABLE" in out,
                    f"exit status {status}, output {out!r}")
        if client_side == "py":
            status, out = h.py_client(f"127.0.0.1:{port}", NAMES[0])
        else:
            status, _, out = h.cgrpc_client(h.args.cgrpc_client,
                                            f"127.0.0.1:{port}", NAMES[0])
        h.check(f"{who}: a plaintext client is refused",
                status == 1 and "UNAVAILABLE" in out,
                f"exit status {status}, output {out!r}")
    finally:
        h.stop(server)


def tls_mode(client_side, server_side, mutual):
    needs = ["certs_dir"]
    if server_side == "cgrpc":
        needs.append("cgrpc_server")
    if client_side == "cgrpc":
        needs.append("cgrpc_client")
    kind = "mtls" if mutual else "tls"
    what = "mutual TLS" if mutual else "TLS"

    def run(h):
        tls_checks(h, client_side, server_side, mutual)
    run.__doc__ = (f"{client_side} client -> {server_side} server over "
                   f"{what}")
    mode(f"{client_side}-client-{server_side}-server-{kind}", needs)(run)


def token_checks(h, client_side, server_side):
    """A bearer token over TLS: the right one passes, a wrong one or none
    gets UNAUTHENTICATED from the server."""
    flags = tls_server_flags(h, False) + ["--require_token=s3cr3t"]
    if server_side == "cgrpc":
        server, port = h.start_cgrpc_server(h.args.cgrpc_server,
                                            label="greeter_server",
                                            extra=flags)
    else:
        server, port = h.start_py_server(PY_SERVER,
                                         extra=["--use_tls=true", *flags])
    who = f"{client_side} client -> {server_side} server"
    ca = f"--ca_file={cert(h, 'ca.pem')}"
    try:
        for token, ok in (("s3cr3t", True), ("wrong", False), (None, False)):
            flags = [ca] + ([f"--access_token={token}"] if token else [])
            status, out = tls_client(h, client_side, f"127.0.0.1:{port}",
                                     NAMES[0], flags)
            if ok:
                h.check(f"{who}: token {token!r} accepted",
                        status == 0 and f"Hello, {NAMES[0]}!" in out,
                        f"exit status {status}, output {out!r}")
            else:
                h.check(f"{who}: token {token!r} refused",
                        status == 1 and "UNAUTHENTICATED" in out,
                        f"exit status {status}, output {out!r}")
    finally:
        h.stop(server)


def token_mode(client_side, server_side):
    needs = ["certs_dir"]
    if server_side == "cgrpc":
        needs.append("cgrpc_server")
    if client_side == "cgrpc":
        needs.append("cgrpc_client")

    def run(h):
        token_checks(h, client_side, server_side)
    run.__doc__ = (f"{client_side} client -> {server_side} server with a "
                   f"bearer token")
    mode(f"{client_side}-client-{server_side}-server-token", needs)(run)


for _client, _server in (("py", "cgrpc"), ("cgrpc", "py"), ("py", "py")):
    token_mode(_client, _server)

for _mutual in (False, True):
    for _client, _server in (("py", "cgrpc"), ("cgrpc", "py"), ("py", "py")):
        tls_mode(_client, _server, _mutual)


# ---- main ----------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", action="append", default=[],
                    help="mode to run (repeatable; 'all' runs every mode "
                         "whose binaries are given)")
    ap.add_argument("--list", action="store_true", help="list the modes")
    ap.add_argument("--stubs-dir", help="folder holding helloworld_pb2*.py")
    ap.add_argument("--cgrpc-server", help="path to cgrpc's greeter_server")
    ap.add_argument("--cgrpc-client", help="path to cgrpc's greeter_client")
    ap.add_argument("--certs-dir", default=os.environ.get("CGRPC_TEST_CERTS"),
                    help="certificates for the TLS modes (default "
                    "$CGRPC_TEST_CERTS)")
    add_peer_args(ap)
    args = ap.parse_args()

    if args.list:
        for name, (_, needs, doc) in MODES.items():
            flags = ", ".join("--" + n.replace("_", "-") for n in needs)
            print(f"{name:26} {doc}" + (f" (needs {flags})" if flags else ""))
        return 0
    if not args.mode:
        ap.error("give at least one --mode (or --list)")
    if not args.stubs_dir:
        ap.error("--stubs-dir is required")
    if "all" in args.mode:
        selected = [n for n, (_, needs, _) in MODES.items()
                    if all(getattr(args, x) for x in needs)]
    else:
        selected = args.mode
    for name in selected:
        if name not in MODES:
            ap.error(f"unknown mode {name!r} (see --list)")
        missing = [x for x in MODES[name][1] if not getattr(args, x)]
        if missing:
            ap.error(f"mode {name} needs --{missing[0].replace('_', '-')}")

    def body(h):
        for name in selected:
            print(f"== {name}", flush=True)
            run_labelled(h, name, MODES[name][0], h)
    return main_loop(GreeterHarness, args, "cgrpc-interop-", body)

if __name__ == "__main__":
    sys.exit(main())
