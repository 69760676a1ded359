# SPDX-License-Identifier: MIT
"""Process and check helpers shared by the interop runners
(run_greeter_interop.py, run_echo_interop.py, run_testservice_interop.py),
and serve(), the serving loop of their grpcio peer servers.

Every wait is bounded, every process started leads its own process group
and is stopped with it, and timeouts are multiplied by
$CGRPC_TEST_TIMEOUT_MULTIPLIER (sanitizer builds set it).  A runner's exit
status is 0 when every check passed, 1 otherwise, 2 on usage errors.
"""
import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures

# Lines that mean a sanitizer fired in one of our binaries.
SANITIZER_RE = re.compile(
    rb"ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:")

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "grpc_proxy",
              "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")

# The modes of the runners that pair one client side with one server side:
# mode: (client side, server side).
SIDE_MODES = {
    "py-client-py-server": ("py", "py"),
    "py-client-cgrpc-server": ("py", "cgrpc"),
    "cgrpc-client-py-server": ("cgrpc", "py"),
    "cgrpc-client-cgrpc-server": ("cgrpc", "cgrpc"),
}


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

    def start(self, label, argv, env=None):
        log_path = os.path.join(self.workdir, f"{len(self.procs)}-{label}.log")
        print(f"start: {label}: {show(argv)}", flush=True)
        proc = Proc(label, argv, log_path, env or self.env)
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

    def run(self, label, argv, timeout=20, env=None):
        """Runs a client to completion (with |env| instead of the harness's
        when given).  Returns (status, stdout, stderr) with bytes output;
        status is None when it timed out (and was killed)."""
        print(f"run: {label}: {show(argv)}", flush=True)
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL,
                                  capture_output=True, env=env or self.env,
                                  timeout=self.timeout(timeout))
        except subprocess.TimeoutExpired as e:
            return None, e.stdout or b"", e.stderr or b""
        return done.returncode, done.stdout, done.stderr

    def run_case_client(self, label, what, argv, timeout, cgrpc,
                        timed_out="timed out", env=None):
        """Runs a client that prints its own "PASS: "/"FAIL: " lines (passed
        through) and checks that |what| exits 0; |cgrpc| when it is one of
        our binaries (then its output must carry no sanitizer report).
        |timed_out| is the detail of a run that timed out; |env| as for
        run().  Returns (status, its stdout and stderr as text)."""
        status, out, err = self.run(what, argv, timeout=timeout, env=env)
        text = (out + err).decode("utf-8", "replace")
        for line in text.splitlines():
            if line.startswith(("PASS: ", "FAIL: ")):
                print(f"    {line}", flush=True)
        if cgrpc:
            self.check(f"{label}: no sanitizer report",
                       not SANITIZER_RE.search(out + err))
        ok = self.check(f"{what} exits 0", status == 0,
                        timed_out if status is None
                        else f"exit status {status}")
        if not ok:
            dump(label, out + err)
        return status, text

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

    def wait_accepting_unix(self, proc, address, timeout=15):
        """wait_accepting for a Unix socket |address| (unix:PATH or
        unix-abstract:NAME, no percent-escapes)."""
        deadline = time.monotonic() + self.timeout(timeout)
        while time.monotonic() < deadline:
            if not proc.running():
                return False
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(0.5)
                    s.connect(unix_sockaddr(address))
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def unix_address(self, transport, tag):
        """A fresh Unix socket address for |transport| ("unix": a path in
        the log folder; "unix-abstract": a name no other run uses)."""
        if transport == "unix":
            return f"unix:{os.path.join(self.workdir, tag + '.sock')}"
        return f"unix-abstract:cgrpc-interop-{os.getpid()}-{tag}"

    def start_unix_server(self, label, argv, address, timeout=15):
        """Starts a server |argv| that listens on the Unix socket |address|
        and waits until it accepts there.  Returns the proc."""
        proc = self.start(label, argv)
        if self.wait_accepting_unix(proc, address, timeout):
            return proc
        proc.stop(self.timeout(5))
        dump(label, proc.log())
        raise Failure(f"{label} never accepted connections on {address}")

    # ---- the two sides' servers ---------------------------------------------

    def start_cgrpc_server(self, binary, label="cgrpc server", extra=(),
                           env=None):
        """Starts one of our servers with --port=N on a free port N and waits
        until it accepts (|env| as for run()).  Returns (proc, port)."""
        for attempt in range(3):
            port = free_port()
            proc = self.start(label, [binary, f"--port={port}", *extra], env)
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

    def start_py_server(self, script, label="grpcio server", extra=(),
                        timeout=15):
        """Starts a grpcio server |script| (with |extra| arguments) that binds
        a free port and prints it on its first stdout line.  Returns
        (proc, port)."""
        proc = self.start(label, [self.args.python, script, "--host=127.0.0.1",
                                  "--port=0",
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
        dump(label, proc.log())
        raise Failure(f"{label} did not report a port")


def unix_sockaddr(address):
    """The Python socket address of unix:PATH or unix-abstract:NAME."""
    if address.startswith("unix-abstract:"):
        return "\0" + address[len("unix-abstract:"):]
    path = address[len("unix:"):]
    return path[2:] if path.startswith("///") else path


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


def serve_cases(h, server, cases, run_case, case_flag):
    """Runs |run_case(case)| for each of |cases| against |server| (a Proc),
    stopping early when the server dies, and stops and checks the server at
    the end.  |case_flag| names the client's case flag in messages."""
    try:
        for case in cases:
            run_case(case)
            if not server.running():
                h.check(f"server still running after {case_flag}={case}",
                        False)
                break
    finally:
        h.stop(server)


def add_peer_args(ap):
    """The options every runner takes after its own."""
    ap.add_argument("--python", default=sys.executable,
                    help="Python with grpcio for the peers (default: this one)")
    ap.add_argument("--keep-logs", action="store_true",
                    help="keep the folder of process logs")


def side_mode_parser(doc, stubs_help, binary, modes=SIDE_MODES):
    """The command line of a runner of |modes| (SIDE_MODES, or a dict like
    it) and cases, whose cgrpc sides are |binary|_server and |binary|_client
    (--BINARY-server, --BINARY-client)."""
    ap = argparse.ArgumentParser(
        description=doc.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=tuple(modes),
                    help="who talks to whom")
    ap.add_argument("--case", action="append", default=[],
                    help="case to run (repeatable)")
    ap.add_argument("--list", action="store_true", help="list modes and cases")
    ap.add_argument("--stubs-dir", help=stubs_help)
    ap.add_argument(f"--{binary}-server",
                    help=f"path to cgrpc's {binary}_server")
    ap.add_argument(f"--{binary}-client",
                    help=f"path to cgrpc's {binary}_client")
    add_peer_args(ap)
    return ap


def check_side_args(ap, args, binary, modes=SIDE_MODES):
    """Exits with a usage error unless |args| (not --list) name a mode of
    |modes|, a case, the stubs and the cgrpc binaries the mode needs.
    Returns the mode's (client side, server side)."""
    if not args.mode or not args.case:
        ap.error("give --mode and at least one --case (or --list)")
    if not args.stubs_dir:
        ap.error("--stubs-dir is required")
    client_side, server_side = modes[args.mode]
    if server_side == "cgrpc" and not getattr(args, f"{binary}_server"):
        ap.error(f"mode {args.mode} needs --{binary}-server")
    if client_side == "cgrpc" and not getattr(args, f"{binary}_client"):
        ap.error(f"mode {args.mode} needs --{binary}-client")
    return client_side, server_side


def main_loop(harness_class, args, workdir_prefix, body):
    """Runs |body(h)| with a |harness_class| Harness over a fresh folder of
    process logs; SIGTERM and SIGINT unwind it.  Stops every process
    started, keeps the logs when asked or on failure, prints the summary
    and returns the exit status."""
    # ctest and a terminal stop us with SIGTERM/SIGINT: unwind through the
    # finally blocks so that every child is stopped.
    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sys.stdout.reconfigure(encoding="utf-8")

    workdir = tempfile.mkdtemp(prefix=workdir_prefix)
    h = harness_class(args, workdir)
    try:
        body(h)
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


def run_labelled(h, label, fn, *args):
    """Calls |fn(*args)|; a Failure it raises becomes a failed check
    |label|."""
    try:
        fn(*args)
    except Failure as e:
        h.check(label, False, str(e))


def side_main(harness_class, args, workdir_prefix, run_mode):
    """main_loop for a runner of SIDE_MODES: |run_mode(h, mode, cases)|
    once, for args.mode and args.case."""
    def body(h):
        print(f"== {args.mode}: {' '.join(args.case)}", flush=True)
        run_labelled(h, args.mode, run_mode, h, args.mode, args.case)
    return main_loop(harness_class, args, workdir_prefix, body)


def int_channel_option(text):
    """A peer's --option=NAME=INT as a grpcio option tuple (an argparse
    type)."""
    name, sep, value = text.partition("=")
    try:
        if not sep or not name:
            raise ValueError(text)
        return (name, int(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not NAME=INT: {text!r}")


def add_serve_args(ap):
    """A grpcio peer server's --host and --port, or --address."""
    ap.add_argument("--host", default="[::]",
                    help="address to bind (default [::])")
    ap.add_argument("--port", type=int, default=0,
                    help="port to bind; 0 picks a free one (default)")
    ap.add_argument("--address",
                    help="listen here instead of --host and --port: a Unix "
                         "socket (unix:PATH, unix-abstract:NAME)")


# gRPC's interop test credentials (testdata/README.md): what the peers use
# with --use_tls=true and no files named.  The server certificate is for
# *.test.google.fr.
TESTDATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "testdata")
TEST_SERVER_NAME = "foo.test.google.fr"


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _tls_flag(ap, name, help_text):
    ap.add_argument(name, default="false", choices=("true", "false"),
                    help=help_text)


def add_tls_server_args(ap):
    """A grpcio peer server's TLS flags (interop_server's and grpc-go's
    names, and greeter_server's --client_ca_file)."""
    _tls_flag(ap, "--use_tls", "serve TLS (default false)")
    ap.add_argument("--tls_cert_file", help="certificate chain (PEM; "
                    "default gRPC's test server1.pem)")
    ap.add_argument("--tls_key_file", help="its key (PEM)")
    ap.add_argument("--client_ca_file", help="require client certificates "
                    "signed by these CAs (PEM)")


def server_credentials(grpc, args):
    """grpc.ServerCredentials for the flags of add_tls_server_args, or None
    for plaintext."""
    if args.use_tls != "true":
        return None
    cert = args.tls_cert_file or os.path.join(TESTDATA, "server1.pem")
    key = args.tls_key_file or os.path.join(TESTDATA, "server1.key")
    roots = _read(args.client_ca_file) if args.client_ca_file else None
    return grpc.ssl_server_credentials(
        [(_read(key), _read(cert))], root_certificates=roots,
        require_client_auth=roots is not None)


def add_tls_client_args(ap):
    """A grpcio peer client's TLS flags (interop_client's and grpc-go's
    names, and greeter_client's client certificate)."""
    _tls_flag(ap, "--use_tls", "connect with TLS (default false)")
    _tls_flag(ap, "--use_test_ca", "trust gRPC's test CA (default false)")
    ap.add_argument("--ca_file", help="trust these CAs (PEM)")
    ap.add_argument("--server_host_override",
                    help="the name the server's certificate must carry")
    ap.add_argument("--client_cert_file", help="client certificate (PEM)")
    ap.add_argument("--client_key_file", help="its key (PEM)")
    ap.add_argument("--access_token",
                    help="send \"authorization: Bearer TOKEN\" (needs TLS)")


def open_channel(grpc, target, args, options=()):
    """A grpcio channel to |target| as the add_tls_client_args flags say,
    never through a proxy from the environment."""
    options = [("grpc.enable_http_proxy", 0), *options]
    if args.use_tls != "true":
        return grpc.insecure_channel(target, options=options)
    roots = None
    if args.ca_file:
        roots = _read(args.ca_file)
    elif args.use_test_ca == "true":
        roots = _read(os.path.join(TESTDATA, "ca.pem"))
    key = _read(args.client_key_file) if args.client_key_file else None
    cert = _read(args.client_cert_file) if args.client_cert_file else None
    if args.server_host_override:
        options.append(("grpc.ssl_target_name_override",
                        args.server_host_override))
    creds = grpc.ssl_channel_credentials(roots, key, cert)
    if args.access_token:
        creds = grpc.composite_channel_credentials(
            creds, grpc.access_token_call_credentials(args.access_token))
    return grpc.secure_channel(target, creds, options=options)


def serve(grpc, name, args, max_workers, add_servicer, options=(),
          credentials=None):
    """Runs the grpcio peer server |name|: a grpc.server with |max_workers|
    threads and |options|, its servicer added by |add_servicer(server)|, on
    args.host:args.port, or args.address (a Unix socket), TLS with
    |credentials| when given.  Prints the bound port alone on the first line
    of stdout, serves until SIGTERM or SIGINT, then stops with a grace of
    1 s.  Returns the exit status: 0, or 1 when it cannot bind.  For a Unix
    socket the "port" printed is what grpcio returns for it (1)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    # SO_REUSEPORT off: a second server must not share a port by accident.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers),
                         options=[("grpc.so_reuseport", 0), *options])
    add_servicer(server)
    address = args.address or f"{args.host}:{args.port}"
    if credentials is not None:
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    if not port:
        print(f"{name}: cannot bind {address}", file=sys.stderr)
        return 1
    server.start()
    print(port, flush=True)
    # A bounded wait in a loop lets the signal handlers run promptly.
    while not stop.wait(0.2):
        pass
    server.stop(grace=1).wait()
    return 0
