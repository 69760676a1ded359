#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Interop between cgrpc and grpc++ through the bench programs (a ctest).

    interop_grpcxx.py --server BIN [--server-arg=ARG ...] --client BIN
                      [--client-arg=ARG ...] [TLS options]
                      --mode unary [--calls N] [--outstanding N]
                      [--channel-per-call [--session-cache]]
                      [--expect-resumed] [--expect-failure REGEX]
    interop_grpcxx.py --server BIN [--server-arg=ARG ...] --client BIN
                      [--client-arg=ARG ...] [TLS options]
                      --mode stream --stream COUNTxSIZE [--stream ...]

    TLS options: --tls | --mtls, [--certs-dir DIR | --make-certs SCRIPT],
                 [--trust NAME] [--host-override NAME]

Starts the server with --port=0 (the kernel picks a free port; the server
prints "Server started, listening on PORT"), waits until the port accepts
TCP connections (bounded), runs the load client once per shape against it,
checks the client's exit status and its one JSON line ("ok": true, no
errors, every call or message accounted for), then stops the server with
SIGTERM (bounded wait, then SIGKILL).  Exits 0 only if every run passed and
the server was still alive at the end.

TLS: --tls gives the server the certificate server.pem / server.key and the
client --ca_file=ca.pem (--trust NAME: NAME.pem instead); --mtls adds
--client_ca_file=ca.pem to the server and client.pem / client.key to the
client.  The certificates come from --certs-dir (the ctest fixture
tls_certs), or are made into a temporary directory with --make-certs
(tests/common/make_test_certs.sh).  --host-override NAME connects to
127.0.0.1 and checks the certificate for NAME instead of "localhost".
"{certs}" in a --server-arg or --client-arg is replaced by the certificate
directory.

--channel-per-call and --session-cache pass the load clients' flags of the
same name; --expect-resumed then requires that the server saw every call
after the first resume a TLS session (server_resumed >= calls -
outstanding; use --outstanding=1 for an exact check), and so did the client
where it can tell (client_resumed, grpc++ only).

--expect-failure REGEX turns the check around: the client must fail (exit
status 1, "ok" false) and its stderr must match REGEX (re.search), for a
refusal such as an untrusted certificate.

grpc++ is not built with the sanitizers, so LeakSanitizer is turned off for
the grpc++ programs (its process-lifetime state would be reported as leaks);
the cgrpc side keeps the environment it was given.
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
EXPECT = "Hello, world!"


def log(msg):
    print("interop_grpcxx: " + msg, flush=True)


def env_for(binary):
    env = dict(os.environ)
    if os.path.basename(binary).startswith("grpcxx_"):
        opts = env.get("ASAN_OPTIONS", "")
        env["ASAN_OPTIONS"] = (opts + ":" if opts else "") + "detect_leaks=0"
    return env


def wait_for_port(proc, out_path):
    deadline = time.monotonic() + START_TIMEOUT
    port = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited with status %d" % proc.returncode)
        if port is None:
            with open(out_path) as f:
                m = re.search(r"^Server started, listening on (\d+)$",
                              f.read(), re.M)
            if m:
                port = int(m.group(1))
        if port is not None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return port
            except OSError:
                pass
        time.sleep(0.05)
    raise RuntimeError("server did not accept connections within %.0f s"
                       % START_TIMEOUT)


def stop(proc):
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        log("server ignored SIGTERM for %.0f s; killing it" % STOP_TIMEOUT)
        proc.kill()
        proc.wait()


def check(result, expect):
    """Returns a list of problems with the client's JSON line."""
    problems = []
    if result.get("ok") is not True:
        problems.append('"ok" is not true')
    for key in ("errors", "errors_total"):
        if key in result and result[key] != 0:
            problems.append("%s = %r" % (key, result[key]))
    for key, want in expect.items():
        if result.get(key) != want:
            problems.append("%s = %r, expected %r" % (key, result.get(key), want))
    return problems


def check_resumed(result):
    """--expect-resumed: problems with the resumption counts."""
    problems = []
    want = result.get("calls", 0) - result.get("outstanding", 1)
    if result.get("tls") is not True:
        problems.append("the client did not use TLS")
    for key in ("server_resumed", "client_resumed"):
        got = result.get(key)
        if got is None and key == "client_resumed":
            continue  # cgrpc's client cannot tell
        if got is None or got < want:
            problems.append("%s = %r, expected >= %d (calls - outstanding)"
                            % (key, got, want))
    if result.get("server_tls_info") != result.get("calls"):
        problems.append("server_tls_info = %r: the server did not report "
                        "every call" % result.get("server_tls_info"))
    return problems


def run_failing_client(argv, pattern, deadline):
    """--expect-failure: the client must fail, saying why on stderr."""
    log("running (expected to fail) " + " ".join(argv))
    timeout = max(1.0, deadline - time.monotonic())
    try:
        cp = subprocess.run(argv, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            timeout=timeout, env=env_for(argv[0]))
    except subprocess.TimeoutExpired:
        log("FAILED: client timed out after %.0f s" % timeout)
        return False
    log("client stdout: " + cp.stdout.strip())
    log("client stderr: " + cp.stderr.strip())
    problems = []
    if cp.returncode != 1:
        problems.append("client exit status %d, expected 1" % cp.returncode)
    if '"ok":true' in cp.stdout.replace(" ", ""):
        problems.append('the client said "ok": true')
    if not re.search(pattern, cp.stderr):
        problems.append("stderr does not match %r" % pattern)
    if problems:
        log("FAILED: " + "; ".join(problems))
        return False
    return True


def run_client(argv, expect, deadline, resumed=False):
    log("running " + " ".join(argv))
    timeout = max(1.0, deadline - time.monotonic())
    try:
        cp = subprocess.run(argv, stdout=subprocess.PIPE, text=True,
                            timeout=timeout, env=env_for(argv[0]))
    except subprocess.TimeoutExpired:
        log("FAILED: client timed out after %.0f s" % timeout)
        return False
    lines = [l for l in cp.stdout.splitlines() if l.startswith("{")]
    if not lines:
        log("FAILED: client (status %d) printed no JSON line; stdout: %r"
            % (cp.returncode, cp.stdout))
        return False
    log("client: " + lines[-1])
    try:
        result = json.loads(lines[-1])
    except ValueError as e:
        log("FAILED: bad JSON from client: %s" % e)
        return False
    problems = check(result, expect)
    if resumed:
        problems += check_resumed(result)
    if cp.returncode != 0:
        problems.append("client exit status %d" % cp.returncode)
    if problems:
        log("FAILED: " + "; ".join(problems))
        return False
    return True


def tls_args(args, certs):
    """The server's and the client's TLS flags for --tls / --mtls."""
    if not (args.tls or args.mtls):
        return [], []
    server = ["--tls_cert_file=%s/server.pem" % certs,
              "--tls_key_file=%s/server.key" % certs]
    client = ["--ca_file=%s/%s.pem" % (certs, args.trust)]
    if args.mtls:
        server.append("--client_ca_file=%s/ca.pem" % certs)
        client += ["--client_cert_file=%s/client.pem" % certs,
                   "--client_key_file=%s/client.key" % certs]
    if args.host_override:
        client.append("--server_host_override=" + args.host_override)
    return server, client


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--server-arg", action="append", default=[])
    ap.add_argument("--client", required=True)
    ap.add_argument("--client-arg", action="append", default=[])
    ap.add_argument("--mode", choices=("unary", "stream"), required=True)
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--outstanding", type=int, default=16)
    ap.add_argument("--stream", action="append", default=[],
                    metavar="COUNTxSIZE")
    tls = ap.add_mutually_exclusive_group()
    tls.add_argument("--tls", action="store_true")
    tls.add_argument("--mtls", action="store_true")
    certs = ap.add_mutually_exclusive_group()
    certs.add_argument("--certs-dir", help="the tls_certs fixture's directory")
    certs.add_argument("--make-certs", metavar="SCRIPT",
                       help="make_test_certs.sh, run into a temporary directory")
    ap.add_argument("--trust", default="ca",
                    help="the CA file (in the certificate directory, without "
                         ".pem) the client trusts")
    ap.add_argument("--host-override", metavar="NAME")
    ap.add_argument("--channel-per-call", action="store_true")
    ap.add_argument("--session-cache", action="store_true")
    ap.add_argument("--expect-resumed", action="store_true")
    ap.add_argument("--expect-failure", metavar="REGEX")
    ap.add_argument("--budget", type=float, default=50.0,
                    help="seconds for all the client runs together (keep it "
                         "under the ctest TIMEOUT so the server is stopped)")
    args = ap.parse_args()
    shapes = []
    for s in args.stream:
        m = re.fullmatch(r"(\d+)x(\d+)", s)
        if not m:
            ap.error("--stream wants COUNTxSIZE, got %r" % s)
        shapes.append((int(m.group(1)), int(m.group(2))))
    if args.mode == "stream" and not shapes:
        ap.error("--mode stream needs at least one --stream")
    uses_tls = args.tls or args.mtls
    if uses_tls and not (args.certs_dir or args.make_certs):
        ap.error("--tls and --mtls need --certs-dir or --make-certs")
    if (args.host_override or args.trust != "ca" or args.session_cache or
            args.expect_resumed) and not uses_tls:
        ap.error("--trust, --host-override, --session-cache and "
                 "--expect-resumed need --tls or --mtls")
    if (args.channel_per_call or args.expect_failure or
            args.expect_resumed) and args.mode != "unary":
        ap.error("--channel-per-call, --expect-failure and --expect-resumed "
                 "are for --mode unary")
    if args.certs_dir and not os.path.isfile(
            os.path.join(args.certs_dir, "ca.pem")):
        ap.error("%s/ca.pem not found (is the tls_certs fixture set up?)"
                 % args.certs_dir)
    deadline = time.monotonic() + args.budget

    with tempfile.TemporaryDirectory(prefix="interop_grpcxx.") as tmp:
        certs = args.certs_dir
        if uses_tls and not certs:
            certs = os.path.join(tmp, "certs")
            subprocess.run([args.make_certs, certs], check=True)
        server_tls, client_tls = tls_args(args, certs)
        sub = lambda a: a.replace("{certs}", certs or "")
        server_args = server_tls + [sub(a) for a in args.server_arg]
        client_args = client_tls + [sub(a) for a in args.client_arg]
        out_path = os.path.join(tmp, "server.out")
        err_path = os.path.join(tmp, "server.err")
        with open(out_path, "w") as out, open(err_path, "w") as err:
            server = subprocess.Popen(
                [args.server, "--port=0"] + server_args,
                stdout=out, stderr=err, env=env_for(args.server))
        ok = True
        try:
            try:
                port = wait_for_port(server, out_path)
            except RuntimeError as e:
                log("FAILED: %s: %s" % (os.path.basename(args.server), e))
                ok = False
            else:
                log("%s listening on %d" % (os.path.basename(args.server), port))
                host = "127.0.0.1" if args.host_override else "localhost"
                target = "--target=%s:%d" % (host, port)
                if args.mode == "unary":
                    argv = [args.client, "unary", target,
                            "--outstanding=%d" % args.outstanding,
                            "--calls=%d" % args.calls,
                            "--expect=" + EXPECT] + client_args
                    if args.channel_per_call:
                        argv.append("--channel_per_call")
                    if args.session_cache:
                        argv.append("--session_cache")
                    if args.expect_failure:
                        ok = run_failing_client(argv, args.expect_failure,
                                                deadline)
                    else:
                        ok = run_client(argv, {"calls": args.calls}, deadline,
                                        args.expect_resumed)
                else:
                    for count, size in shapes:
                        ok = run_client(
                            [args.client, "stream", target,
                             "--count=%d" % count, "--size=%d" % size]
                            + client_args,
                            {"messages": count, "size": size}, deadline) and ok
                if server.poll() is not None:
                    log("FAILED: server died during the run (status %d)"
                        % server.returncode)
                    ok = False
        finally:
            stop(server)
        with open(err_path) as f:
            server_err = f.read()
        if server_err.strip() and not ok:
            log("server stderr:\n" + server_err)
    log("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
