#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Interop between cgrpc and grpc++ through the bench programs (a ctest).

    interop_grpcxx.py --server BIN [--server-arg=ARG ...] --client BIN
                      --mode unary [--calls N] [--outstanding N]
    interop_grpcxx.py --server BIN [--server-arg=ARG ...] --client BIN
                      --mode stream --stream COUNTxSIZE [--stream ...]

Starts the server with --port=0 (the kernel picks a free port; the server
prints "Server started, listening on PORT"), waits until the port accepts
TCP connections (bounded), runs the load client once per shape against it,
checks the client's exit status and its one JSON line ("ok": true, no
errors, every call or message accounted for), then stops the server with
SIGTERM (bounded wait, then SIGKILL).  Exits 0 only if every run passed and
the server was still alive at the end.

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


def run_client(argv, expect, deadline):
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
    if cp.returncode != 0:
        problems.append("client exit status %d" % cp.returncode)
    if problems:
        log("FAILED: " + "; ".join(problems))
        return False
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--server-arg", action="append", default=[])
    ap.add_argument("--client", required=True)
    ap.add_argument("--mode", choices=("unary", "stream"), required=True)
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--outstanding", type=int, default=16)
    ap.add_argument("--stream", action="append", default=[],
                    metavar="COUNTxSIZE")
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
    deadline = time.monotonic() + args.budget

    with tempfile.TemporaryDirectory(prefix="interop_grpcxx.") as tmp:
        out_path = os.path.join(tmp, "server.out")
        err_path = os.path.join(tmp, "server.err")
        with open(out_path, "w") as out, open(err_path, "w") as err:
            server = subprocess.Popen(
                [args.server, "--port=0"] + args.server_arg,
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
                target = "--target=localhost:%d" % port
                if args.mode == "unary":
                    ok = run_client(
                        [args.client, "unary", target,
                         "--outstanding=%d" % args.outstanding,
                         "--calls=%d" % args.calls, "--expect=" + EXPECT],
                        {"calls": args.calls}, deadline)
                else:
                    for count, size in shapes:
                        ok = run_client(
                            [args.client, "stream", target,
                             "--count=%d" % count, "--size=%d" % size],
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
