#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Interop on cgrpc.test.EchoService between cgrpc and grpcio.

  run_echo_interop.py --mode=MODE --case=CASE [--case=CASE ...]
                      --stubs-dir=DIR [--echo-server=PATH]
                      [--echo-client=PATH]
  run_echo_interop.py --list

Modes (--list prints them):
  py-client-py-server        py_echo_client.py -> py_echo_server.py (checks
                             the harness itself)
  py-client-cgrpc-server     py_echo_client.py -> cgrpc's echo_server
  cgrpc-client-py-server     cgrpc's echo_client -> py_echo_server.py
  cgrpc-client-cgrpc-server  cgrpc's echo_client -> cgrpc's echo_server

Cases are those of py_echo_client.py and echo_client (unary, status_codes,
special_status_message, metadata, large, deadline, unimplemented, all), and
for the grpcio client also the hostile-input ones (malformed, oversized,
unknown_service, raw).  For those the server is started with
--max_receive_message_length=1024.  Each case runs in one client process
against one server started for the run.

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

PY_SERVER = os.path.join(HERE, "py_echo_server.py")
PY_CLIENT = os.path.join(HERE, "py_echo_client.py")

CASES = ("unary", "status_codes", "special_status_message", "metadata",
         "large", "deadline", "unimplemented", "all")
RAW_CASES = ("malformed", "oversized", "unknown_service", "raw")
RAW_MAX_RECEIVE = 1024

# mode: (client side, server side)
MODES = {
    "py-client-py-server": ("py", "py"),
    "py-client-cgrpc-server": ("py", "cgrpc"),
    "cgrpc-client-py-server": ("cgrpc", "py"),
    "cgrpc-client-cgrpc-server": ("cgrpc", "cgrpc"),
}


class EchoHarness(rgi.Harness):

    def start_server(self, side, cases):
        extra = []
        if any(c in RAW_CASES for c in cases):
            extra.append(f"--max_receive_message_length={RAW_MAX_RECEIVE}")
        if side == "cgrpc":
            return self.start_cgrpc_server(self.args.echo_server,
                                           label="echo_server", extra=extra)
        return self.start_echo_py_server(extra)

    def start_echo_py_server(self, extra, timeout=15):
        """Like Harness.start_py_server, with extra arguments."""
        label = "py_echo_server"
        proc = self.start(label, [self.args.python, PY_SERVER,
                                  "--host=127.0.0.1", "--port=0",
                                  f"--stubs-dir={self.args.stubs_dir}",
                                  *extra])
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

    def run_client(self, side, target, case):
        if side == "py":
            label = "py_echo_client"
            argv = [self.args.python, PY_CLIENT, f"--target={target}",
                    f"--case={case}", f"--timeout={self.timeout(10)}",
                    f"--stubs-dir={self.args.stubs_dir}"]
        else:
            label = "echo_client"
            argv = [self.args.echo_client, f"--target={target}",
                    f"--case={case}",
                    f"--timeout_ms={int(self.timeout(10) * 1000)}"]
        status, out, err = self.run(f"{label} --case={case}", argv,
                                    timeout=30)
        text = (out + err).decode("utf-8", "replace")
        # Pass the client's own per-check lines through.
        for line in text.splitlines():
            if line.startswith(("PASS: ", "FAIL: ")):
                print(f"    {line}", flush=True)
        if side == "cgrpc":
            self.check(f"{label}: no sanitizer report",
                       not rgi.SANITIZER_RE.search(out + err))
        ok = self.check(f"{label} --case={case} exits 0", status == 0,
                        "timed out" if status is None
                        else f"exit status {status}")
        if not ok:
            rgi.dump(label, out + err)


def run_mode(h, name, cases):
    client_side, server_side = MODES[name]
    server, port = h.start_server(server_side, cases)
    try:
        for case in cases:
            h.run_client(client_side, f"127.0.0.1:{port}", case)
            if not server.running():
                h.check(f"server still running after --case={case}", False)
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
    ap.add_argument("--stubs-dir", help="folder holding echo_pb2*.py")
    ap.add_argument("--echo-server", help="path to cgrpc's echo_server")
    ap.add_argument("--echo-client", help="path to cgrpc's echo_client")
    ap.add_argument("--python", default=sys.executable,
                    help="Python with grpcio for the peers (default: this one)")
    ap.add_argument("--keep-logs", action="store_true",
                    help="keep the folder of process logs")
    args = ap.parse_args()

    if args.list:
        print("modes: " + " ".join(MODES))
        print("cases: " + " ".join(CASES))
        print("grpcio client only: " + " ".join(RAW_CASES))
        return 0
    if not args.mode or not args.case:
        ap.error("give --mode and at least one --case (or --list)")
    if not args.stubs_dir:
        ap.error("--stubs-dir is required")
    client_side, server_side = MODES[args.mode]
    if server_side == "cgrpc" and not args.echo_server:
        ap.error(f"mode {args.mode} needs --echo-server")
    if client_side == "cgrpc" and not args.echo_client:
        ap.error(f"mode {args.mode} needs --echo-client")
    for case in args.case:
        if case in RAW_CASES and client_side != "py":
            ap.error(f"case {case} needs the grpcio client")
        if case not in CASES + RAW_CASES:
            ap.error(f"unknown case {case!r} (see --list)")

    # ctest and a terminal stop us with SIGTERM/SIGINT: unwind through the
    # finally blocks so that every child is stopped.
    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sys.stdout.reconfigure(encoding="utf-8")

    workdir = tempfile.mkdtemp(prefix="cgrpc-echo-interop-")
    h = EchoHarness(args, workdir)
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
