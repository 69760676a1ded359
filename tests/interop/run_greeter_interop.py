#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Interop between cgrpc's Greeter examples and grpcio's.

  run_greeter_interop.py --mode=MODE [--mode=MODE ...] --stubs-dir=DIR
                         [--cgrpc-server=PATH] [--cgrpc-client=PATH]
  run_greeter_interop.py --list

Modes (--list prints them):
  py-client-py-server     grpcio against grpcio: checks the harness itself
  py-client-cgrpc-server  grpcio client -> cgrpc greeter_server
  cgrpc-client-py-server  cgrpc greeter_client -> grpcio server

Every wait is bounded, and every process started is stopped before exit.
Timeouts are multiplied by $CGRPC_TEST_TIMEOUT_MULTIPLIER (sanitizer
builds set it).  Exit status: 0 when every check passed, 1 otherwise, 2 on
usage errors.

To add a case, write a function taking the Harness and decorate it with
@mode("name", needs=(...)); the helpers below start either side's server,
run either side's client and record checks.
"""
import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY_SERVER = os.path.join(HERE, "py_greeter_server.py")
PY_CLIENT = os.path.join(HERE, "py_greeter_client.py")

# Names sent in both directions: ASCII, and UTF-8 with 2- and 3-byte forms.
NAMES = ("world", "W\u00f6rld \u2713")

# Lines that mean a sanitizer fired in one of our binaries.
SANITIZER_RE = re.compile(
    rb"ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:")

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "grpc_proxy",
              "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")

MODES = {}


def mode(name, needs=()):
    """Registers a test mode; |needs| names the options it requires."""
    def register(fn):
        MODES[name] = (fn, tuple(needs), (fn.__doc__ or "").strip())
        return fn
    return register


class Failure(Exception):
    pass


class Proc:
    """A started process whose stdout and stderr go to one log file.  It
    leads its own process group, so that stopping it also stops whatever it
    started (a wrapper script, valgrind)."""

    def __init__(self, label, argv, log_path, env):
        self.label = label
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                      stdout=self._log,
                                      stderr=subprocess.STDOUT, env=env,
                                      start_new_session=True)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read()

    def running(self):
        return self.popen.poll() is None

    def stop(self, grace):
        """SIGTERM, wait up to |grace| s, then SIGKILL.  Returns the status."""
        if self.running():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=grace)
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except OSError:
            pass  # the group is already gone
        self._log.close()
        return self.popen.returncode


class Harness:
    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.mult = float(os.environ.get("CGRPC_TEST_TIMEOUT_MULTIPLIER") or 1)
        self.procs = []
        self.failures = 0
        self.env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
        self.env["PYTHONIOENCODING"] = "utf-8"
        self._stubs = None

    def timeout(self, seconds):
        return seconds * self.mult

    # ---- checks -----------------------------------------------------------

    def check(self, label, ok, detail=""):
        print(f"{'PASS' if ok else 'FAIL'}: {label}" +
              ("" if ok or not detail else f"\n    {detail}"), flush=True)
        if not ok:
            self.failures += 1
        return ok

    def check_equal(self, label, got, want):
        return self.check(label, got == want, f"got {got!r}, want {want!r}")

    # ---- processes ----------------------------------------------------------

    def start(self, label, argv):
        log_path = os.path.join(self.workdir, f"{len(self.procs)}-{label}.log")
        print(f"start: {label}: {show(argv)}", flush=True)
        proc = Proc(label, argv, log_path, self.env)
        self.procs.append(proc)
        return proc

    def stop(self, proc, clean_statuses=(0, -signal.SIGTERM,
                                         128 + signal.SIGTERM)):
        """Stops |proc| and checks it exited cleanly and without a sanitizer
        report."""
        status = proc.stop(self.timeout(5))
        log = proc.log()
        ok = self.check(f"{proc.label} exits cleanly on SIGTERM",
                        status in clean_statuses,
                        f"exit status {status}")
        ok &= self.check(f"{proc.label}: no sanitizer report",
                         not SANITIZER_RE.search(log))
        if not ok:
            dump(proc.label, log)

    def stop_all(self):
        for proc in self.procs:
            if proc.running():
                proc.stop(self.timeout(5))

    def run(self, label, argv, timeout=20):
        """Runs a client to completion.  Returns (status, stdout, stderr) with
        bytes output; status is None when it timed out (and was killed)."""
        print(f"run: {label}: {show(argv)}", flush=True)
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL,
                                  capture_output=True, env=self.env,
                                  timeout=self.timeout(timeout))
        except subprocess.TimeoutExpired as e:
            return None, e.stdout or b"", e.stderr or b""
        return done.returncode, done.stdout, done.stderr

    def wait_accepting(self, proc, port, timeout=15):
        """Polls 127.0.0.1:|port| until it accepts, |proc| dies or time is up.
        Returns True once it accepts."""
        deadline = time.monotonic() + self.timeout(timeout)
        while time.monotonic() < deadline:
            if not proc.running():
                return False
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    # ---- the two sides' servers ---------------------------------------------

    def start_cgrpc_server(self, binary, label="cgrpc server", extra=()):
        """Starts one of our servers with --port=N on a free port N and waits
        until it accepts.  Returns (proc, port)."""
        for attempt in range(3):
            port = free_port()
            proc = self.start(label, [binary, f"--port={port}", *extra])
            if self.wait_accepting(proc, port):
                return proc, port
            # Another process may have taken the port between free_port()
            # and the bind; try another unless the server is hung.
            hung = proc.running()
            proc.stop(self.timeout(5))
            dump(label, proc.log())
            if hung:
                break
        raise Failure(f"{label} never accepted connections")

    def start_py_server(self, script=PY_SERVER, label="grpcio server",
                        timeout=15):
        """Starts a grpcio server that binds a free port and prints it on its
        first stdout line.  Returns (proc, port)."""
        proc = self.start(label, [self.args.python, script, "--host=127.0.0.1",
                                  "--port=0", f"--stubs-dir={self.args.stubs_dir}"])
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
        dump(label, proc.log())
        raise Failure(f"{label} did not report a port")

    # ---- clients ------------------------------------------------------------

    def py_client(self, target, name, method="SayHello"):
        """Runs py_greeter_client.py.  Returns (status, stdout text)."""
        status, out, err = self.run(
            f"grpcio client {method}",
            [self.args.python, PY_CLIENT, f"--target={target}",
             f"--method={method}", f"--timeout={self.timeout(10)}",
             f"--stubs-dir={self.args.stubs_dir}",
             b"--name=" + name.encode("utf-8")])
        if status != 0:
            dump("grpcio client", out + err)
        return status, out.decode("utf-8", "replace")

    def cgrpc_client(self, binary, target, name):
        """Runs our greeter_client.  Returns (status, stdout lines)."""
        status, out, err = self.run(
            "cgrpc client",
            [binary, f"--target={target}", b"--name=" + name.encode("utf-8")])
        self.check("cgrpc client: no sanitizer report",
                   not SANITIZER_RE.search(out + err))
        if status != 0:
            dump("cgrpc client", out + err)
        return status, out.decode("utf-8", "replace").splitlines()

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


def free_port():
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def show(argv):
    return " ".join(os.fsdecode(a) if isinstance(a, bytes) else str(a)
                    for a in argv)


def dump(label, data):
    text = data.decode("utf-8", "replace").rstrip()
    print(f"---- {label} output ----\n{text or '(none)'}\n---- end ----",
          flush=True)


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
    server, port = h.start_py_server()
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
    server, port = h.start_py_server()
    try:
        for name in NAMES:
            status, lines = h.cgrpc_client(h.args.cgrpc_client,
                                           f"127.0.0.1:{port}", name)
            want = f"Hello, {name}!"
            h.check(f"greeter_client --name={name!r} exits 0 and prints "
                    f"{want!r}", status == 0 and want in lines,
                    f"exit status {status}, stdout {lines!r}")
    finally:
        h.stop(server)


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
    ap.add_argument("--python", default=sys.executable,
                    help="Python with grpcio for the peers (default: this one)")
    ap.add_argument("--keep-logs", action="store_true",
                    help="keep the folder of process logs")
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

    # ctest and a terminal stop us with SIGTERM/SIGINT: unwind through the
    # finally blocks so that every child is stopped.
    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sys.stdout.reconfigure(encoding="utf-8")

    workdir = tempfile.mkdtemp(prefix="cgrpc-interop-")
    h = Harness(args, workdir)
    try:
        for name in selected:
            print(f"== {name}", flush=True)
            try:
                MODES[name][0](h)
            except Failure as e:
                h.check(name, False, str(e))
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
