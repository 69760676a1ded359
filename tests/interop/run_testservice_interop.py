#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""gRPC's interop test cases on grpc.testing.TestService, cgrpc and grpcio.

  run_testservice_interop.py --mode=MODE --case=CASE [--case=CASE ...]
                             --stubs-dir=DIR [--interop-server=PATH]
                             [--interop-client=PATH] [--grpcxx-server=PATH]
                             [--grpcxx-client=PATH]
                             [--tls=none|test-ca|files] [--certs-dir=DIR]
                             [--require-token=T] [--access-token=T]
                             [--expect-code=NAME]
  run_testservice_interop.py --list

Modes (--list prints them):
  py-client-py-server        py_interop_client.py -> py_interop_server.py
                             (checks the harness itself)
  py-client-cgrpc-server     py_interop_client.py -> cgrpc's interop_server
  cgrpc-client-py-server     cgrpc's interop_client -> py_interop_server.py
  cgrpc-client-cgrpc-server  cgrpc's interop_client -> cgrpc's interop_server
  grpcxx-client-cgrpc-server grpcxx_interop_client -> cgrpc's interop_server
  cgrpc-client-grpcxx-server cgrpc's interop_client -> grpcxx_interop_server

Cases are those of doc/interop-test-descriptions.md that the clients run
(--list prints them; the grpc++ peers run only some: see their sources),
and "all".  One server is started per run; each case runs in its own
client process with the standard interop flags (--server_host,
--server_port, --test_case, --use_tls and the TLS flags).  The grpc++
programs run with LeakSanitizer off (grpc++ itself is not built with the
sanitizers and keeps process-lifetime state).

--tls picks the transport:
  none     plaintext (the default): --use_tls=false on both sides.
  test-ca  the standard interop TLS set-up: the server runs with
           --use_tls=true alone (gRPC's test server certificate), the client
           with --use_tls=true --use_test_ca=true
           --server_host_override=foo.test.google.fr.
  files    certificates from --certs-dir (tests/common/make_test_certs.sh):
           the server gets --tls_cert_file/--tls_key_file (server.pem, for
           localhost and 127.0.0.1), the client --ca_file=ca.pem and no
           override, so the name checked is the address 127.0.0.1.

Bearer tokens (TLS only; cgrpc and grpc++ sides):
  --require-token=T  the server runs with --require_token=T (a cgrpc test
                     flag of interop_server and grpcxx_interop_server):
                     calls without "authorization: Bearer T" fail
                     UNAUTHENTICATED.
  --access-token=T   the client runs with --access_token=T (call
                     credentials).
  --expect-code=NAME every case must fail with that status instead: the
                     client exits 1, prints no PASS line, and each FAIL
                     line says "got NAME (" (the clients' wording for the
                     status they got instead of the one they wanted).

Processes, waits, timeouts and the exit status are as interop_harness.py
describes.
"""
import os
import sys

from interop_harness import (
    SANITIZER_RE, SIDE_MODES, TEST_SERVER_NAME, Harness, check_side_args,
    dump, serve_cases, side_main, side_mode_parser)

MODES = dict(SIDE_MODES)
MODES["grpcxx-client-cgrpc-server"] = ("grpcxx", "cgrpc")
MODES["cgrpc-client-grpcxx-server"] = ("cgrpc", "grpcxx")

HERE = os.path.dirname(os.path.abspath(__file__))

PY_SERVER = os.path.join(HERE, "py_interop_server.py")
PY_CLIENT = os.path.join(HERE, "py_interop_client.py")

CASES = ("empty_unary", "large_unary", "client_streaming", "server_streaming",
         "ping_pong", "empty_stream", "cancel_after_begin",
         "cancel_after_first_response", "timeout_on_sleeping_server",
         "status_code_and_message", "special_status_message",
         "custom_metadata", "unimplemented_method", "unimplemented_service",
         "client_compressed_unary", "server_compressed_unary",
         "client_compressed_streaming", "server_compressed_streaming",
         "all")

# A client run's time limit, seconds (before the multiplier); "all" runs
# every case in one process.
CLIENT_TIMEOUT = 30
CLIENT_TIMEOUT_ALL = 60


class TestServiceHarness(Harness):

    def grpcxx_env(self):
        env = dict(self.env)
        opts = env.get("ASAN_OPTIONS", "")
        env["ASAN_OPTIONS"] = (opts + ":" if opts else "") + "detect_leaks=0"
        return env

    def server_flags(self):
        tls = self.args.tls
        token = ([f"--require_token={self.args.require_token}"]
                 if self.args.require_token else [])
        if tls == "none":
            return ["--use_tls=false", *token]
        if tls == "test-ca":
            return ["--use_tls=true", *token]
        certs = self.args.certs_dir
        return ["--use_tls=true",
                f"--tls_cert_file={os.path.join(certs, 'server.pem')}",
                f"--tls_key_file={os.path.join(certs, 'server.key')}", *token]

    def client_flags(self):
        tls = self.args.tls
        token = ([f"--access_token={self.args.access_token}"]
                 if self.args.access_token else [])
        if tls == "none":
            return ["--use_tls=false", *token]
        if tls == "test-ca":
            return ["--use_tls=true", "--use_test_ca=true",
                    f"--server_host_override={TEST_SERVER_NAME}", *token]
        return ["--use_tls=true",
                f"--ca_file={os.path.join(self.args.certs_dir, 'ca.pem')}",
                *token]

    def start_server(self, side):
        if side == "grpcxx":
            return self.start_cgrpc_server(self.args.grpcxx_server,
                                           label="grpcxx_interop_server",
                                           extra=self.server_flags(),
                                           env=self.grpcxx_env())
        if side == "cgrpc":
            return self.start_cgrpc_server(self.args.interop_server,
                                           label="interop_server",
                                           extra=self.server_flags())
        return self.start_py_server(PY_SERVER, label="py_interop_server",
                                    extra=self.server_flags())

    def run_client(self, side, port, case):
        flags = ["--server_host=127.0.0.1", f"--server_port={port}",
                 f"--test_case={case}", *self.client_flags()]
        env = None
        if side == "py":
            label = "py_interop_client"
            argv = [self.args.python, PY_CLIENT, *flags,
                    f"--stubs-dir={self.args.stubs_dir}"]
        elif side == "grpcxx":
            label = "grpcxx_interop_client"
            argv = [self.args.grpcxx_client, *flags]
            env = self.grpcxx_env()
        else:
            label = "interop_client"
            argv = [self.args.interop_client, *flags]
        limit = CLIENT_TIMEOUT_ALL if case == "all" else CLIENT_TIMEOUT
        what = f"{label} --test_case={case}"
        if self.args.expect_code:
            self.run_refused_client(label, what, argv, limit,
                                    cgrpc=side != "py", env=env)
            return
        self.run_case_client(
            label, what, argv, limit, cgrpc=side != "py",
            timed_out=f"timed out after {self.timeout(limit):g} s", env=env)

    def run_refused_client(self, label, what, argv, limit, cgrpc, env):
        """Runs a client whose every case must fail with the status
        --expect-code names (see the top comment)."""
        code = self.args.expect_code
        status, out, err = self.run(what, argv, timeout=limit, env=env)
        lines = (out + err).decode("utf-8", "replace").splitlines()
        passed = [l for l in lines if l.startswith("PASS: ")]
        failed = [l for l in lines if l.startswith("FAIL: ")]
        for line in passed + failed:
            print(f"    {line}", flush=True)
        if cgrpc:
            self.check(f"{label}: no sanitizer report",
                       not SANITIZER_RE.search(out + err))
        wrong = [l for l in failed if f"got {code} (" not in l]
        ok = self.check(
            f"{what} fails {code}",
            status == 1 and failed and not passed and not wrong,
            f"exit status {status}, {len(passed)} passed, "
            f"{len(wrong)} of {len(failed)} failed otherwise"
            if status is not None else
            f"timed out after {self.timeout(limit):g} s")
        if not ok:
            dump(label, out + err)


def run_mode(h, name, cases):
    client_side, server_side = MODES[name]
    server, port = h.start_server(server_side)
    serve_cases(h, server, cases,
                lambda case: h.run_client(client_side, port, case),
                "--test_case")


def main():
    ap = side_mode_parser(__doc__, "folder holding grpc/testing/*_pb2*.py",
                          "interop", MODES)
    ap.add_argument("--grpcxx-server", help="path to grpcxx_interop_server")
    ap.add_argument("--grpcxx-client", help="path to grpcxx_interop_client")
    ap.add_argument("--tls", choices=("none", "test-ca", "files"),
                    default="none", help="transport (default none)")
    ap.add_argument("--certs-dir", default=os.environ.get("CGRPC_TEST_CERTS"),
                    help="certificates for --tls=files (default "
                    "$CGRPC_TEST_CERTS)")
    ap.add_argument("--require-token",
                    help="the server refuses calls without this bearer token")
    ap.add_argument("--access-token", help="the client sends this token")
    ap.add_argument("--expect-code",
                    help="every case must fail with this status name "
                    "(UNAUTHENTICATED, ...)")
    args = ap.parse_args()

    if args.list:
        print("modes: " + " ".join(MODES))
        print("cases: " + " ".join(CASES))
        return 0
    client_side, server_side = check_side_args(ap, args, "interop", MODES)
    if server_side == "grpcxx" and not args.grpcxx_server:
        ap.error(f"mode {args.mode} needs --grpcxx-server")
    if client_side == "grpcxx" and not args.grpcxx_client:
        ap.error(f"mode {args.mode} needs --grpcxx-client")
    if args.tls == "files" and not args.certs_dir:
        ap.error("--tls=files needs --certs-dir")
    if (args.require_token or args.access_token) and args.tls == "none":
        ap.error("bearer tokens need TLS (--tls=test-ca or files)")
    if args.require_token and server_side == "py":
        ap.error("py_interop_server.py has no --require_token")
    for case in args.case:
        if case not in CASES:
            ap.error(f"unknown case {case!r} (see --list)")

    return side_main(TestServiceHarness, args, "cgrpc-ts-interop-", run_mode)


if __name__ == "__main__":
    sys.exit(main())
