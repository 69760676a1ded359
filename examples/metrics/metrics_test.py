#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The metrics example end to end: metrics_server, calls through
greeter_client, then /metrics scraped and parsed with prometheus_client.

  metrics_test.py --server=metrics_server --client=greeter_client

Three SayHello calls answer OK and one (a name over 64 bytes) fails with
INVALID_ARGUMENT; the scrape must count 4 started, 3 OK and 1
INVALID_ARGUMENT handled, 4 messages received and 3 sent, and a histogram
whose buckets never go down and whose +Inf bucket equals its count.  Bad
requests (another path, another method, a malformed request line, a head
too large, a client that says nothing) get their HTTP error or are dropped,
and the endpoint still answers afterwards.  Exits 0 when every check
passed.
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

MULT = int(os.environ.get("CGRPC_TEST_TIMEOUT_MULTIPLIER", "1"))
SERVICE = "helloworld.Greeter"
failures = 0


def check(label, ok, detail=""):
    global failures
    print(f"{'PASS' if ok else 'FAIL'}: {label}" +
          ("" if ok or not detail else f": {detail}"), flush=True)
    if not ok:
        failures += 1
    return ok


def read_ports(proc):
    """The gRPC and metrics ports from the server's first two lines."""
    grpc_port = metrics_port = None
    deadline = time.monotonic() + 20 * MULT
    while time.monotonic() < deadline and metrics_port is None:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("Server started, listening on "):
            grpc_port = int(line.rsplit(" ", 1)[1])
        elif line.startswith("Metrics on port "):
            metrics_port = int(line.rsplit(" ", 1)[1])
    return grpc_port, metrics_port


def raw_http(port, data, timeout=10):
    """Sends |data| (bytes) and returns all the server answers (bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        if data:
            s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
    return out


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                timeout=10 * MULT) as r:
        return r.status, r.headers.get("Content-Type"), r.read().decode()


def samples(families, sample_name, **labels):
    """Values of the samples called |sample_name| whose labels include
    |labels|."""
    out = []
    for fam in families:
        for s in fam.samples:
            if s.name == sample_name and all(
                    s.labels.get(k) == v for k, v in labels.items()):
                out.append((s.labels, s.value))
    return out


def one(families, sample_name, **labels):
    got = samples(families, sample_name, **labels)
    return got[0][1] if len(got) == 1 else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", required=True)
    ap.add_argument("--client", required=True)
    args = ap.parse_args()

    proc = subprocess.Popen([args.server, "--port=0", "--metrics_port=0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        grpc_port, metrics_port = read_ports(proc)
        if not check("the server prints both ports",
                     grpc_port and metrics_port,
                     f"{grpc_port} / {metrics_port}"):
            return 1
        target = f"--target=127.0.0.1:{grpc_port}"
        timeout = 30 * MULT
        ok = subprocess.run([args.client, target, "--count=3"],
                            timeout=timeout, capture_output=True, text=True)
        check("three calls answer OK", ok.returncode == 0, ok.stderr)
        bad = subprocess.run([args.client, target, "--name=" + "x" * 100],
                             timeout=timeout, capture_output=True, text=True)
        check("a long name fails with INVALID_ARGUMENT",
              bad.returncode == 1 and "INVALID_ARGUMENT" in bad.stderr,
              f"exit {bad.returncode}: {bad.stderr.strip()}")

        # on_end runs once the response has gone: give the last call's a
        # moment to be counted.
        deadline = time.monotonic() + 10 * MULT
        while True:
            status, ctype, body = scrape(metrics_port)
            fams = list(text_string_to_metric_families(body))
            count = one(fams, "grpc_server_handling_seconds_count",
                        grpc_method="SayHello")
            if count == 4 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        check("GET /metrics answers 200", status == 200, str(status))
        check("in the text format 0.0.4",
              ctype and ctype.startswith("text/plain; version=0.0.4"),
              str(ctype))
        lab = dict(grpc_type="unary", grpc_service=SERVICE,
                   grpc_method="SayHello")
        check("4 calls started",
              one(fams, "grpc_server_started_total", **lab) == 4,
              str(samples(fams, "grpc_server_started_total")))
        check("3 handled OK",
              one(fams, "grpc_server_handled_total", grpc_code="OK",
                  **lab) == 3,
              str(samples(fams, "grpc_server_handled_total")))
        check("1 handled INVALID_ARGUMENT",
              one(fams, "grpc_server_handled_total",
                  grpc_code="INVALID_ARGUMENT", **lab) == 1)
        check("no other code",
              len(samples(fams, "grpc_server_handled_total", **lab)) == 2)
        check("4 messages received",
              one(fams, "grpc_server_msg_received_total", **lab) == 4)
        check("3 messages sent",
              one(fams, "grpc_server_msg_sent_total", **lab) == 3)
        check("SayHelloAgain is listed, with nothing started",
              one(fams, "grpc_server_started_total",
                  grpc_method="SayHelloAgain") == 0)

        buckets = samples(fams, "grpc_server_handling_seconds_bucket", **lab)
        les = [b[0]["le"] for b in buckets]
        values = [b[1] for b in buckets]
        check("12 buckets ending in +Inf",
              len(buckets) == 12 and les[-1] == "+Inf", str(les))
        check("the buckets never go down",
              all(a <= b for a, b in zip(values, values[1:])), str(values))
        check("+Inf equals _count == 4",
              values and values[-1] == count == 4, f"{values} {count}")
        total = one(fams, "grpc_server_handling_seconds_sum", **lab)
        check("_sum is a positive time under a minute",
              total is not None and 0 < total < 60, str(total))
        check("the families have their types",
              {f.name: f.type for f in fams}.get(
                  "grpc_server_handling_seconds") == "histogram" and
              {f.name: f.type for f in fams}.get(
                  "grpc_server_started") == "counter")

        # Bad requests.
        for label, data, want in [
                ("another path: 404", b"GET /nope HTTP/1.1\r\n\r\n", b" 404 "),
                ("another method: 405",
                 b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
                 b" 405 "),
                ("a malformed request line: 400", b"GARBAGE\r\n\r\n", b" 400 "),
                ("not HTTP/1: 400", b"GET /metrics SPDY/3\r\n\r\n", b" 400 "),
                ("a head too large: 431",
                 b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 10000 + b"\r\n\r\n",
                 b" 431 "),
                ("binary bytes: 400", bytes(range(1, 256)) + b"\r\n\r\n",
                 b" 400 ")]:
            try:
                got = raw_http(metrics_port, data)
            except OSError as e:
                got = repr(e).encode()
            check(label, got.startswith(b"HTTP/1.1") and want in got[:16],
                  repr(got[:60]))
        # A client that connects and says nothing is dropped after a few
        # seconds; one that goes away at once is harmless.
        s = socket.create_connection(("127.0.0.1", metrics_port))
        s.close()
        t0 = time.monotonic()
        try:
            got = raw_http(metrics_port, b"", timeout=20 * MULT)
        except OSError as e:
            got = repr(e).encode()
        check("a silent client is dropped", got == b"" and
              time.monotonic() - t0 < 15 * MULT, repr(got[:60]))
        head = raw_http(metrics_port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
        check("HEAD answers 200 without a body",
              head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n"),
              repr(head[-40:]))
        status, _, body = scrape(metrics_port)
        check("the endpoint still answers", status == 200 and
              "grpc_server_started_total" in body)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=20 * MULT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = None
        check("the server stops cleanly on SIGTERM", rc == 0, str(rc))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
