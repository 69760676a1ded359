#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""gRPC's interop test cases on grpc.testing.TestService, cgrpc and grpcio.

  run_testservice_interop.py --mode=MODE --case=CASE [--case=CASE ...]
                             --stubs-dir=DIR [--interop-server=PATH]
                             [--interop-client=PATH]
  run_testservice_interop.py --list

Modes (--list prints them):
  py-client-py-server        py_interop_client.py -> py_interop_server.py
                             (checks the harness itself)
  py-client-cgrpc-server     py_interop_client.py -> cgrpc's interop_server
  cgrpc-client-py-server     cgrpc's interop_client -> py_interop_server.py
  cgrpc-client-cgrpc-server  cgrpc's interop_client -> cgrpc's interop_server

Cases are those of doc/interop-test-descriptions.md that both clients run
(--list prints them), and "all".  One server is started per run; each case
runs in its own client process with the standard interop flags
(--server_host, --server_port, --test_case, --use_tls=false).

Uses the process helpers of run_greeter_interop.py: every wait is bounded,
every process started leads its own process group and is stopped with it,
and timeouts are multiplied by $CGRPC_TEST_TIMEOUT_MULTIPLIER (sanitizer
builds set it).  Exit status: 0 when every check passed, 1 otherwise, 2 on
usage errors.
"""
import argparse
import os
import re
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run_greeter_interop as rgi  # noqa: E402

PY_SERVER = os.path.join(HERE, "py_interop_server.py")
PY_CLIENT = os.path.join(HERE, "py_interop_client.py")

CASES = ("empty_unary", "large_unary", "client_streaming", "server_streaming",
         "ping_pong", "empty_stream", "cancel_after_begin",
         "cancel_after_first_response", "timeout_on_sleeping_server",
         "status_code_and_message", "special_status_message",
         "custom_metadata", "unimplemented_method", "unimplemented_service",
         "all")

# mode: (client side, server side)
MODES = {
    "py-client-py-server": ("py", "py"),
    "py-client-cgrpc-server": ("py", "cgrpc"),
    "cgrpc-client-py-server": ("cgrpc", "py"),
    "cgrpc-client-cgrpc-server": ("cgrpc", "cgrpc"),
}

# A client run's time limit, seconds (before the multiplier); "all" runs
# every case in one process.
CLIENT_TIMEOUT = 30
CLIENT_TIMEOUT_ALL = 60


class TestServiceHarness(rgi.Harness):

    def start_server(self, side):
        if side == "cgrpc":
            return self.start_cgrpc_server(self.args.interop_server,
                                           label="interop_server",
                                           extra=("--use_tls=false",))
        return self.start_interop_py_server()

    def start_interop_py_server(self, timeout=15):
        """Like Harness.start_py_server, for py_interop_server.py."""
        label = "py_interop_server"
        proc = self.start(label, [self.args.python, PY_SERVER,
                                  "--host=127.0.0.1", "--port=0",
                                  "--use_tls=false",
                                  f"--stubs-dir={self.args.stubs_dir}"])
        deadline = time.monotonic() + self.timeout(timeout)
        while time.monotonic() < deadline:
            m = re.search(rb"(?m)^(\d+)\r?\n", proc.log())
            if m:
                port = int(m.group(1))
                if self.wait_accepting(proc, port, timeout):
                    return proc, port
                break
            if not proc.running():
                break
            time.sleep(0.05)
        proc.stop(self.timeout(5))
        rgi.dump(label, proc.log())
        raise rgi.Failure(f"{label} did not report a port")

    def run_client(self, side, port, case):
        flags = ["--server_host=127.0.0.1", f"--server_port={port}",
                 f"--test_case={case}", "--use_tls=false"]
        if side == "py":
            label = "py_interop_client"
            argv = [self.args.python, PY_CLIENT, *flags,
                    f"--stubs-dir={self.args.stubs_dir}"]
        else:
            label = "interop_client"
            argv = [self.args.interop_client, *flags]
        limit = CLIENT_TIMEOUT_ALL if case == "all" else CLIENT_TIMEOUT
        status, out, err = self.run(f"{label} --test_case={case}", argv,
                                    timeout=limit)
        text = (out + err).decode("utf-8", "replace")
        # Pass the client's own per-case lines through.
        for line in text.splitlines():
            if line.startswith(("PASS: ", "FAIL: ")):
                print(f"    {line}", flush=True)
        if side == "cgrpc":
            self.check(f"{label}: no sanitizer report",
                       not rgi.SANITIZER_RE.search(out + err))
        ok = self.check(f"{label} --test_case={case} exits 0", status == 0,
                        f"timed out after {self.timeout(limit):g} s"
                        if status is None else f"exit status {status}")
        if not ok:
            rgi.dump(label, out + err)


def run_mode(h, name, cases):
    client_side, server_side = MODES[name]
    server, port = h.start_server(server_side)
    try:
        for case in cases:
            h.run_client(client_side, port, case)
            if not server.running():
                h.check(f"server still running after --test_case={case}",
                        False)
                break
    finally:
        h.stop(server)


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=tuple(MODES), help="who talks to whom")
    ap.add_argument("--case", action="append", default=[],
                    help="case to run (repeatable)")
    ap.add_argument("--list", action="store_true", help="list modes and cases")
    ap.add_argument("--stubs-dir",
                    help="folder holding grpc/testing/*_pb2*.py")
    ap.add_argument("--interop-server", help="path to cgrpc's interop_server")
    ap.add_argument("--interop-client", help="path to cgrpc's interop_client")
    ap.add_argument("--python", default=sys.executable,
                    help="Python with grpcio for the peers (default: this one)")
    ap.add_argument("--keep-logs", action="store_true",
                    help="keep the folder of process logs")
    args = ap.parse_args()

    if args.list:
        print("modes: " + " ".join(MODES))
        print("cases: " + " ".join(CASES))
        return 0
    if not args.mode or not args.case:
        ap.error("give --mode and at least one --case (or --list)")
    if not args.stubs_dir:
        ap.error("--stubs-dir is required")
    client_side, server_side = MODES[args.mode]
    if server_side == "cgrpc" and not args.interop_server:
        ap.error(f"mode {args.mode} needs --interop-server")
    if client_side == "cgrpc" and not args.interop_client:
        ap.error(f"mode {args.mode} needs --interop-client")
    for case in args.case:
        if case not in CASES:
            ap.error(f"unknown case {case!r} (see --list)")

    # ctest and a terminal stop us with SIGTERM/SIGINT: unwind through the
    # finally blocks so that every child is stopped.
    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sys.stdout.reconfigure(encoding="utf-8")

    workdir = tempfile.mkdtemp(prefix="cgrpc-ts-interop-")
    h = TestServiceHarness(args, workdir)
    try:
        print(f"== {args.mode}: {' '.join(args.case)}", flush=True)
        try:
            run_mode(h, args.mode, args.case)
        except rgi.Failure as e:
            h.check(args.mode, False, str(e))
    finally:
        h.stop_all()
        if args.keep_logs or h.failures:
            print(f"process logs: {workdir}")
        else:
            for f in os.listdir(workdir):
                os.unlink(os.path.join(workdir, f))
            os.rmdir(workdir)
    print(f"{'FAILED' if h.failures else 'OK'}: {h.failures} failed check(s)")
    return 1 if h.failures else 0


if __name__ == "__main__":
    sys.exit(main())
