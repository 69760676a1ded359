#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""gRPC's interop cases through an HTTP/2 reverse proxy (nginx, HAProxy).

  run_proxy_interop.py --proxy=nginx|haproxy --proxy-bin=PATH
                       --interop-client=PATH --stubs-dir=DIR
                       [--backend=cgrpc|py] [--interop-server=PATH]
                       [--tls=none|terminate|e2e] [--certs-dir=DIR]
                       [--case=CASE ...] [--skip=CASE ...]

Three backends (cgrpc's interop_server, or py_interop_server.py with
--backend=py), each on a free loopback port with its own --server_id, sit
behind one proxy started as a child process with a config made from
tests/proxy/nginx.conf.in or tests/proxy/haproxy.cfg.in (nginx in the
foreground, one process, every path in the run's folder; HAProxy with -db).
Then, through the proxy:

  1. interop_client runs each case of CASES, one process per case, and
     grpcio makes each call of PROBES (--case picks some, --skip leaves
     some out);
  2. grpcio makes unary calls with fill_server_id set: every backend must
     answer some of them;
  3. one backend is stopped; the calls that follow must all succeed (the
     proxy moves a call whose connection is refused to another backend)
     and be answered by the two left; some cases are run again;
  4. the other two are stopped: the proxy's own error page (nginx 502,
     HAProxy 503) must reach our client and grpcio as UNAVAILABLE.

--tls=terminate: the proxy serves TLS (ALPN h2) with --certs-dir's
server.pem and server.key (tests/common/make_test_certs.sh; HAProxy reads
both from one file the run writes), the clients trust ca.pem and check the
name 127.0.0.1; the backends are plaintext.  --tls=e2e: the same, and the
backends serve TLS with server.pem too; the proxy speaks TLS with ALPN h2
to them, trusts ca.pem only and checks the backend's certificate for the
name localhost (nginx matches grpc_ssl_name against DNS names only, so not
127.0.0.1; HAProxy's verifyhost likewise).

Processes, waits, timeouts and the exit status are as interop_harness.py
describes.
"""
import argparse
import os
import shutil
import sys
import tempfile
import threading

from interop_harness import (
    Failure, Harness, add_peer_args, dump, free_port, main_loop,
    run_labelled)

HERE = os.path.dirname(os.path.abspath(__file__))
PROXY_DIR = os.path.join(os.path.dirname(HERE), "proxy")
PY_SERVER = os.path.join(HERE, "py_interop_server.py")

CASES = ("empty_unary", "large_unary", "client_streaming", "server_streaming",
         "ping_pong", "custom_metadata", "status_code_and_message",
         "special_status_message", "unimplemented_method",
         "timeout_on_sleeping_server", "cancel_after_begin")
# grpcio calls that the backend answers while their request is still open
# (the request iterator waits for the answer): the backend ends the call,
# then the stream with RST_STREAM(NO_ERROR) (RFC 9113 8.1); the client must
# get the backend's status.
#   status_before_half_close        FullDuplexCall asking for UNKNOWN and
#                                   a message (status_code_and_message's
#                                   streaming half, without the half-close)
#   unimplemented_before_half_close an unknown method called as a
#                                   bidi-streaming call
PROBES = ("status_before_half_close", "unimplemented_before_half_close")
# Run again once a backend is gone.
AFTER_KILL_CASES = ("empty_unary", "large_unary", "server_streaming",
                    "ping_pong")

BACKENDS = 3
SPREAD_CALLS = 30
CLIENT_TIMEOUT = 30


def import_stubs(stubs_dir):
    """grpcio and the grpc.testing stubs, which live in |stubs_dir|/grpc
    (see py_interop_server.py)."""
    import grpc
    extra = os.path.join(os.path.abspath(stubs_dir), "grpc")
    if extra not in grpc.__path__:
        grpc.__path__.append(extra)
    from grpc.testing import messages_pb2, test_pb2_grpc
    return grpc, messages_pb2, test_pb2_grpc


def fill(template, fields):
    with open(template, encoding="utf-8") as f:
        text = f.read()
    for name, value in fields.items():
        text = text.replace(f"@{name}@", value)
    return text


class ProxyHarness(Harness):

    def cert(self, name):
        return os.path.join(os.path.abspath(self.args.certs_dir), name)

    def start_backends(self):
        """Starts the backends; returns [(proc, port, server_id)]."""
        if self.args.tls == "e2e":
            tls = ["--use_tls=true",
                   f"--tls_cert_file={self.cert('server.pem')}",
                   f"--tls_key_file={self.cert('server.key')}"]
        else:
            tls = ["--use_tls=false"]
        backends = []
        for i in range(BACKENDS):
            sid = f"backend-{i}"
            if self.args.backend == "cgrpc":
                proc, port = self.start_cgrpc_server(
                    self.args.interop_server, label=f"interop_server {sid}",
                    extra=[*tls, f"--server_id={sid}"])
            else:
                proc, port = self.start_py_server(
                    PY_SERVER, label=f"py_interop_server {sid}",
                    extra=[*tls, f"--server_id={sid}"])
            backends.append((proc, port, sid))
        return backends

    def proxy_config(self, port, backends):
        """Writes the proxy's config for |port| in front of |backends|;
        returns its path."""
        tls = self.args.tls != "none"
        e2e = self.args.tls == "e2e"
        if self.args.proxy == "nginx":
            servers = "\n".join(
                f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=30s;"
                for _, p, _ in backends)
            upstream_tls = ""
            if e2e:
                upstream_tls = (
                    f"            grpc_ssl_trusted_certificate "
                    f"{self.cert('ca.pem')};\n"
                    "            grpc_ssl_verify on;\n"
                    "            grpc_ssl_verify_depth 2;\n"
                    "            grpc_ssl_name localhost;\n"
                    "            grpc_ssl_server_name off;\n")
            text = fill(os.path.join(PROXY_DIR, "nginx.conf.in"), {
                "DIR": self.proxy_dir, "PORT": str(port), "SERVERS": servers,
                "LISTEN_TLS": "ssl " if tls else "",
                "TLS": (f"        ssl_certificate "
                        f"{self.cert('server.pem')};\n"
                        f"        ssl_certificate_key "
                        f"{self.cert('server.key')};\n"
                        if tls else ""),
                "SCHEME": "grpcs" if e2e else "grpc",
                "UPSTREAM_TLS": upstream_tls,
            })
            path = os.path.join(self.workdir, "nginx.conf")
        else:
            bind = "proto h2"
            if tls:
                # HAProxy's crt is one PEM holding the chain and the key.
                crt = os.path.join(self.workdir, "haproxy-server.pem")
                with open(crt, "w", encoding="utf-8") as out:
                    for name in ("server.pem", "server.key"):
                        with open(self.cert(name), encoding="utf-8") as f:
                            out.write(f.read())
                bind = f"ssl crt {crt} alpn h2"
            server_tls = ""
            if e2e:
                server_tls = (f" ssl verify required "
                              f"ca-file {self.cert('ca.pem')} "
                              f"verifyhost localhost alpn h2")
            servers = "\n".join(
                f"    server {sid} 127.0.0.1:{p}{server_tls} proto h2"
                for _, p, sid in backends)
            text = fill(os.path.join(PROXY_DIR, "haproxy.cfg.in"), {
                "PORT": str(port), "BIND": bind, "SERVERS": servers})
            path = os.path.join(self.workdir, "haproxy.cfg")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def start_proxy(self, backends):
        """Starts the proxy on a free port; returns (proc, port)."""
        for _ in range(3):
            port = free_port()
            conf = self.proxy_config(port, backends)
            if self.args.proxy == "nginx":
                argv = [self.args.proxy_bin, "-p", self.proxy_dir + "/",
                        "-c", conf, "-e", "stderr"]
            else:
                argv = [self.args.proxy_bin, "-f", conf, "-db"]
            proc = self.start(self.args.proxy, argv)
            if self.wait_accepting(proc, port):
                return proc, port
            hung = proc.running()
            proc.stop(self.timeout(5))
            dump(self.args.proxy, proc.log())
            if hung:
                break
        raise Failure(f"{self.args.proxy} never accepted connections")

    def client_flags(self):
        if self.args.tls != "none":
            return ["--use_tls=true", f"--ca_file={self.cert('ca.pem')}"]
        return ["--use_tls=false"]

    def run_case(self, port, case, tag=""):
        argv = [self.args.interop_client, "--server_host=127.0.0.1",
                f"--server_port={port}", f"--test_case={case}",
                *self.client_flags()]
        self.run_case_client(
            "interop_client", f"interop_client --test_case={case}{tag}", argv,
            CLIENT_TIMEOUT,
            cgrpc=True,
            timed_out=f"timed out after {self.timeout(CLIENT_TIMEOUT):g} s")

    def server_ids(self, port, calls):
        """Makes |calls| unary calls with fill_server_id through the proxy,
        one grpcio channel.  Returns (list of server ids, list of
        errors)."""
        grpc, messages_pb2, test_pb2_grpc = import_stubs(self.args.stubs_dir)
        ids, errors = [], []
        with self.open_channel(grpc, port) as channel:
            stub = test_pb2_grpc.TestServiceStub(channel)
            for _ in range(calls):
                try:
                    reply = stub.UnaryCall(
                        messages_pb2.SimpleRequest(fill_server_id=True,
                                                   response_size=10),
                        timeout=self.timeout(15))
                    ids.append(reply.server_id)
                except grpc.RpcError as e:
                    errors.append(f"{e.code().name}: {e.details()}")
        return ids, errors

    def open_channel(self, grpc, port):
        target = f"127.0.0.1:{port}"
        options = [("grpc.enable_http_proxy", 0)]
        if self.args.tls != "none":
            with open(self.cert("ca.pem"), "rb") as f:
                creds = grpc.ssl_channel_credentials(f.read())
            return grpc.secure_channel(target, creds, options=options)
        return grpc.insecure_channel(target, options=options)

    def run_probe(self, port, probe):
        """One of PROBES through the proxy."""
        grpc, messages_pb2, test_pb2_grpc = import_stubs(self.args.stubs_dir)
        answered = threading.Event()
        limit = self.timeout(15)

        def requests(first):
            yield first
            # Bounded: the call's deadline ends it anyway.
            answered.wait(limit)

        with self.open_channel(grpc, port) as channel:
            if probe == "status_before_half_close":
                call = test_pb2_grpc.TestServiceStub(channel).FullDuplexCall
                first = messages_pb2.StreamingOutputCallRequest(
                    response_status=messages_pb2.EchoStatus(
                        code=2, message="test status message"))
                want = (grpc.StatusCode.UNKNOWN, "test status message")
            else:
                call = channel.stream_stream(
                    "/grpc.testing.TestService/UnimplementedCall")
                first = b""
                want = (grpc.StatusCode.UNIMPLEMENTED, None)
            got = None
            try:
                for _ in call(requests(first), timeout=limit):
                    pass
                got = (grpc.StatusCode.OK, "")
            except grpc.RpcError as e:
                got = (e.code(), e.details())
            finally:
                answered.set()
        ok = got[0] == want[0] and (want[1] is None or got[1] == want[1])
        self.check(f"{probe}: the backend's status", ok,
                   f"got {got[0].name} {got[1]!r}, want {want[0].name}" +
                   (f" {want[1]!r}" if want[1] else ""))

    def check_no_backend(self, port):
        """With every backend gone the proxy answers with its own error
        page (nginx 502, HAProxy 503, HTML): our client and grpcio must
        both report UNAVAILABLE, the status gRPC maps those codes to."""
        argv = [self.args.interop_client, "--server_host=127.0.0.1",
                f"--server_port={port}", "--test_case=empty_unary",
                *self.client_flags()]
        status, out, err = self.run("interop_client with no backend", argv,
                                    timeout=CLIENT_TIMEOUT)
        text = (out + err).decode("utf-8", "replace")
        ok = self.check("our client with no backend: UNAVAILABLE from the "
                        "proxy's error page",
                        status not in (0, None) and "UNAVAILABLE" in text
                        and "HTTP 50" in text,
                        f"exit status {status}")
        if not ok:
            dump("interop_client", out + err)
        _, errors = self.server_ids(port, 1)
        self.check("grpcio with no backend: UNAVAILABLE",
                   len(errors) == 1 and errors[0].startswith("UNAVAILABLE"),
                   "; ".join(errors) or "the call succeeded")

    def check_spread(self, port, want, what):
        ids, errors = self.server_ids(port, SPREAD_CALLS)
        counts = {sid: ids.count(sid) for sid in sorted(set(ids))}
        print(f"    server ids {what}: {counts}", flush=True)
        self.check(f"{SPREAD_CALLS} unary calls {what} all succeed",
                   not errors, "; ".join(errors[:3]))
        self.check_equal(f"the calls {what} reach exactly these backends",
                         sorted(counts), sorted(want))


def run(h):
    args = h.args
    cases = [c for c in (args.case or CASES + PROBES) if c not in args.skip]
    for c in args.skip:
        print(f"SKIP: {c} (left out by --skip)", flush=True)
    # nginx's pid file and temp folders (its log goes to stderr).
    h.proxy_dir = tempfile.mkdtemp(prefix="cgrpc-proxy-")
    backends = []
    proxy = None
    try:
        backends = h.start_backends()
        proxy, port = h.start_proxy(backends)
        for case in cases:
            if case in PROBES:
                h.run_probe(port, case)
            else:
                h.run_case(port, case)
            if not proxy.running():
                raise Failure(f"{args.proxy} died during {case}")
        h.check_spread(port, [sid for _, _, sid in backends],
                       "through the proxy")
        gone_proc, _, gone_sid = backends[0]
        h.stop(gone_proc)
        print(f"stopped {gone_sid}", flush=True)
        h.check_spread(port, [sid for _, _, sid in backends[1:]],
                       f"with {gone_sid} gone")
        for case in AFTER_KILL_CASES:
            if case in cases:
                h.run_case(port, case, f" (with {gone_sid} gone)")
        for proc, _, _ in backends[1:]:
            h.check(f"{proc.label} still running", proc.running())
        for proc, _, _ in backends[1:]:
            h.stop(proc)
        h.check_no_backend(port)
    finally:
        if proxy is not None:
            status = proxy.stop(h.timeout(5))
            print(f"{args.proxy} stopped (status {status})", flush=True)
            if h.failures:
                dump(args.proxy, proxy.log())
        for proc, _, _ in backends:
            if proc.running():
                h.stop(proc)
        shutil.rmtree(h.proxy_dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proxy", choices=("nginx", "haproxy"), required=True)
    ap.add_argument("--proxy-bin", required=True,
                    help="path to nginx or haproxy")
    ap.add_argument("--backend", choices=("cgrpc", "py"), default="cgrpc")
    ap.add_argument("--interop-server", help="path to cgrpc's interop_server")
    ap.add_argument("--interop-client", required=True,
                    help="path to cgrpc's interop_client")
    ap.add_argument("--stubs-dir", required=True,
                    help="folder holding grpc/testing/*_pb2*.py")
    ap.add_argument("--tls", choices=("none", "terminate", "e2e"),
                    default="none")
    ap.add_argument("--certs-dir", default=os.environ.get("CGRPC_TEST_CERTS"))
    ap.add_argument("--case", action="append", default=[],
                    help="case to run (repeatable; default: all of CASES)")
    ap.add_argument("--skip", action="append", default=[],
                    help="case not to run (repeatable)")
    add_peer_args(ap)
    args = ap.parse_args()
    if args.backend == "cgrpc" and not args.interop_server:
        ap.error("--backend=cgrpc needs --interop-server")
    if args.tls != "none" and not args.certs_dir:
        ap.error(f"--tls={args.tls} needs --certs-dir")
    for c in args.case + args.skip:
        if c not in CASES + PROBES:
            ap.error(f"unknown case {c!r}; cases: "
                     f"{' '.join(CASES + PROBES)}")

    def body(h):
        print(f"== {args.proxy} in front of {BACKENDS} {args.backend} "
              f"backends, tls {args.tls}", flush=True)
        run_labelled(h, args.proxy, run, h)
    return main_loop(ProxyHarness, args, "cgrpc-proxy-interop-", body)


if __name__ == "__main__":
    sys.exit(main())
