#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Retries (gRFC A6) of our client against a grpc++ or a grpcio server.

  run_retry_interop.py (--grpcxx-server=BIN | --py-server=SCRIPT
                        --stubs-dir=DIR) --retry-client=BIN [--streaming]
                       [--case=NAME ...] [--list] [--keep-logs]

grpcxx_retry_server (grpc++, cgrpc.test.StreamService), or its grpcio twin
py_retry_server.py, fails the first N
attempts of each call key with the status the call asks for, Trailers-Only,
optionally with grpc-retry-pushback-ms, and logs every attempt with the
grpc-previous-rpc-attempts it came with.  retry_client (cgrpc) makes a
case's calls with a retryPolicy in its channel's service config; each case
checks the calls' outcome and the server's record of their attempts (and,
for the pushback, the time between them).  --list says what each case is.

Without --streaming the unary cases run; with it, the same retry checks for
Download (server streaming), Upload (client streaming) and Chat (bidi),
whose server fails before reading or writing anything (our client has sent
its messages by then, and sends them again), and calls that the server's
response headers or first message commit (never retried).

Processes, waits and timeouts are as interop_harness.py describes: one
server for the whole run (every case uses its own key), every wait bounded,
every process stopped by pid.
"""
import argparse
import json
import os
import re
import shutil
import sys

from interop_harness import (
    SANITIZER_RE, Harness, add_peer_args, dump, main_loop, run_labelled)

SERVICE = "cgrpc.test.StreamService"

ATTEMPT_RE = re.compile(
    rb"(?m)^attempt method=(\S+) key=(\S*) n=(\d+) previous=(\S+) "
    rb"t_ms=(\d+) code=(\d+)$")
RESULT_RE = re.compile(
    r"(?m)^result method=(\S+) key=(\S*) status=(\S+) elapsed_ms=(\d+) "
    r"replies=(\d+) content=(ok|bad) message=(.*)$")


def service_config(max_attempts=3, initial_backoff="0.01s",
                   codes=("UNAVAILABLE",), policy=True):
    """A service config for StreamService with a retryPolicy (or none)."""
    mc = {"name": [{"service": SERVICE}]}
    if policy:
        mc["retryPolicy"] = {
            "maxAttempts": max_attempts, "initialBackoff": initial_backoff,
            "maxBackoff": "0.1s", "backoffMultiplier": 2,
            "retryableStatusCodes": list(codes)}
    return json.dumps({"methodConfig": [mc]})


class RetryHarness(Harness):
    def __init__(self, args, workdir):
        super().__init__(args, workdir)
        self.server = None
        self.port = None

    def attempts(self, key):
        """The server's record of |key|'s attempts, in order: dicts with
        method, n, previous, t_ms and code."""
        out = []
        for m in ATTEMPT_RE.finditer(self.server.log()):
            if m.group(2).decode() != key:
                continue
            out.append({"method": m.group(1).decode(),
                        "n": int(m.group(3)),
                        "previous": m.group(4).decode(),
                        "t_ms": int(m.group(5)),
                        "code": int(m.group(6))})
        return out

    def calls(self, method, key, config, fail_first=0, code=None,
              pushback=None, timeout_ms=None, count=1, fail_after=None,
              size=None, timeout=30):
        """Runs retry_client once for |count| calls on one channel (keys
        KEY.1 ... when more than one).  Returns a list of (exit status, the
        result line's fields as a dict, or None), one per call."""
        if timeout_ms is None:
            timeout_ms = int(self.timeout(20) * 1000)
        argv = [self.args.retry_client, f"--target=127.0.0.1:{self.port}",
                f"--method={method}", f"--key={key}",
                f"--fail_first={fail_first}", f"--timeout_ms={timeout_ms}",
                f"--count={count}"]
        if config is not None:
            argv.append(f"--service_config={config}")
        if code is not None:
            argv.append(f"--code={code}")
        if pushback is not None:
            argv.append(f"--pushback={pushback}")
        if fail_after is not None:
            argv.append(f"--fail_after={fail_after}")
        if size is not None:
            argv.append(f"--size={size}")
        status, out, err = self.run(f"retry_client {key}", argv, timeout)
        self.check(f"{key}: retry_client: no sanitizer report",
                   not SANITIZER_RE.search(out + err))
        lines = list(RESULT_RE.finditer(out.decode("utf-8", "replace")))
        if status not in (0, 1) or len(lines) != count:
            dump(f"retry_client {key}", out + err)
            self.check(f"{key}: retry_client ran and printed its results",
                       False, f"exit status {status}")
            return [(status, None)] * count
        results = []
        for m in lines:
            print(f"    {m.group(0)}", flush=True)
            results.append((status, {
                "key": m.group(2), "status": m.group(3),
                "elapsed_ms": int(m.group(4)), "replies": int(m.group(5)),
                "content": m.group(6), "message": m.group(7)}))
        return results

    def call(self, method, key, config, **kw):
        """calls() for one call; returns its (exit status, fields)."""
        return self.calls(method, key, config, **kw)[0]

    def expect(self, label, method, key, result, want_status, want_previous,
               want_code_last=0):
        """Checks |result| ended |want_status| (with the right content on
        OK), and that the server saw exactly the attempts whose
        grpc-previous-rpc-attempts are |want_previous| ("-" for none), all
        of |method|, each but the last failed UNAVAILABLE (14) and the last
        ended |want_code_last| (0: answered).  Returns the attempts."""
        _, r = result
        seen = self.attempts(key)
        if r is None:
            return seen
        ok_content = want_status != "OK" or r["content"] == "ok"
        self.check(f"{label}: the call ends {want_status}",
                   r["status"] == want_status and ok_content,
                   f"got {r['status']} ({r['message']!r}), content "
                   f"{r['content']}, {r['replies']} replies")
        self.check_equal(f"{label}: the server saw {len(want_previous)} "
                         f"attempt(s), grpc-previous-rpc-attempts "
                         f"{' '.join(want_previous)}",
                         [(a["method"], a["n"], a["previous"]) for a in seen],
                         [(method, i + 1, p)
                          for i, p in enumerate(want_previous)])
        self.check_equal(f"{label}: each attempt but the last failed "
                         f"UNAVAILABLE, the last ended {want_code_last}",
                         [a["code"] for a in seen],
                         [14] * (len(want_previous) - 1) + [want_code_last])
        return seen


# ---- the cases ----------------------------------------------------------

CASES = {}
STREAMING_CASES = {}


def case(name, streaming=False):
    def register(fn):
        (STREAMING_CASES if streaming else CASES)[name] = (
            fn, (fn.__doc__ or "").strip())
        return fn
    return register


def retried_until_ok(h, method, key):
    r = h.call(method, key, service_config(max_attempts=3), fail_first=2)
    h.expect(f"{method}: 2 UNAVAILABLE then OK", method_name(method), key,
             r, "OK", ["-", "1", "2"])


def non_retryable(h, method, key):
    r = h.call(method, key, service_config(max_attempts=5), fail_first=2,
               code=13)
    h.expect(f"{method}: INTERNAL is not in retryableStatusCodes",
             method_name(method), key, r, "INTERNAL", ["-"], 13)


def max_attempts_reached(h, method, key, max_attempts, want):
    r = h.call(method, key, service_config(max_attempts=max_attempts),
               fail_first=10)
    seen = h.expect(f"{method}: maxAttempts {max_attempts}, 10 failures",
                    method_name(method), key, r, "UNAVAILABLE",
                    ["-"] + [str(i) for i in range(1, want)], 14)
    _, res = r
    if res:
        h.check(f"{method}: the status is the server's last failure",
                res["message"] == f"failing on purpose (attempt {want})",
                repr(res["message"]))
    return seen


def method_name(method):
    return {"unary": "Unary", "download": "Download", "upload": "Upload",
            "chat": "Chat"}[method]


# Cases that look at what grpc++ itself puts on the wire.
GRPCXX_ONLY = ("server-trailers-only",)


@case("server-trailers-only")
def server_trailers_only(h):
    """what the grpc++ server sends for a failing attempt, seen by nghttp
    (nghttp2-client): one HEADERS frame with END_STREAM (Trailers-Only),
    grpc-status 14, the pushback asked for; an invalid pushback (abc)
    reaches the wire as a negative number, so that is what our client sees"""
    nghttp = shutil.which("nghttp")
    if not nghttp:
        print("SKIP: nghttp (nghttp2-client) not found", flush=True)
        return
    body = os.path.join(h.workdir, "empty-message.bin")
    with open(body, "wb") as f:
        f.write(b"\0\0\0\0\0")  # one empty, uncompressed message
    for path, pushback, want in (("Unary", "300", "300"),
                                 ("Unary", "abc", "-9223372036854775808"),
                                 ("Chat", None, None)):
        key = f"probe-{path}-{pushback}"
        argv = [nghttp, "-v", "-H", ":method: POST",
                "-H", "content-type: application/grpc",
                "-H", "te: trailers", "-H", f"x-retry-key: {key}",
                "-H", "x-retry-fail-first: 1", "-d", body,
                f"http://127.0.0.1:{h.port}/{SERVICE}/{path}"]
        if pushback is not None:
            argv[-3:-3] = ["-H", f"x-retry-pushback-ms: {pushback}"]
        status, out, err = h.run(f"nghttp {key}", argv, 10)
        text = out.decode("utf-8", "replace")
        frames = re.findall(r"recv (HEADERS|DATA) frame <length=\d+, "
                            r"flags=0x([0-9a-f]+), stream_id=(\d+)>", text)
        frames = [(t, int(fl, 16), sid) for t, fl, sid in frames
                  if sid != "0"]
        fields = dict(re.findall(r"(?m)recv \(stream_id=\d+\) "
                                 r"([a-z0-9:-]+): (.*)$", text))
        ok = (status == 0 and len(frames) == 1 and frames[0][0] == "HEADERS"
              and frames[0][1] & 0x1 and fields.get("grpc-status") == "14"
              and fields.get("grpc-retry-pushback-ms") == want)
        h.check(f"{path}, pushback {pushback}: Trailers-Only, grpc-status "
                f"14, grpc-retry-pushback-ms {want}", ok,
                f"exit {status}, frames {frames}, fields {fields}")
        if not ok:
            dump(f"nghttp {key}", out + err)


@case("unary-retried-until-ok")
def unary_retried_until_ok(h):
    """maxAttempts 3, the first 2 fail UNAVAILABLE: OK on the third, which
    came with grpc-previous-rpc-attempts 2 (the second with 1)"""
    retried_until_ok(h, "unary", "unary-ok")


@case("unary-non-retryable")
def unary_non_retryable(h):
    """a code not in retryableStatusCodes (INTERNAL): one attempt"""
    non_retryable(h, "unary", "unary-internal")


@case("unary-no-policy")
def unary_no_policy(h):
    """a methodConfig without retryPolicy: one attempt, UNAVAILABLE"""
    r = h.call("unary", "unary-nopolicy", service_config(policy=False),
               fail_first=2)
    h.expect("unary: no retryPolicy", "Unary", "unary-nopolicy", r,
             "UNAVAILABLE", ["-"], 14)


@case("unary-max-attempts")
def unary_max_attempts(h):
    """maxAttempts 3 and 4 against 10 failures: the server's UNAVAILABLE
    after exactly 3 (4) attempts; maxAttempts 7 is taken as 5 (gRFC A6)"""
    max_attempts_reached(h, "unary", "unary-max3", 3, 3)
    max_attempts_reached(h, "unary", "unary-max4", 4, 4)
    max_attempts_reached(h, "unary", "unary-max7", 7, 5)


@case("unary-pushback")
def unary_pushback(h):
    """grpc-retry-pushback-ms 300 (backoff otherwise 10 ms): the retry comes
    at least 300 ms after the failure, and well within bounds"""
    key = "unary-pushback"
    r = h.call("unary", key, service_config(max_attempts=3), fail_first=1,
               pushback="300")
    seen = h.expect("unary: pushback 300 ms, then OK", "Unary", key, r, "OK",
                    ["-", "1"])
    _, res = r
    if len(seen) == 2 and res:
        gap = seen[1]["t_ms"] - seen[0]["t_ms"]
        # The server stamps each attempt as it sees it; the client waits
        # 300 ms from the failure, which comes after the first stamp.
        upper = 300 + h.timeout(3) * 1000
        h.check(f"unary: the retry came 300 ms or more after the first "
                f"attempt, and under {upper:.0f} ms",
                295 <= gap <= upper, f"{gap} ms apart on the server")
        h.check("unary: the call took at least the pushback",
                res["elapsed_ms"] >= 295, f"{res['elapsed_ms']} ms")
    # The same without pushback is quick: the 300 ms came from the server.
    key = "unary-no-pushback"
    r = h.call("unary", key, service_config(max_attempts=3), fail_first=1)
    seen = h.expect("unary: no pushback, then OK", "Unary", key, r, "OK",
                    ["-", "1"])
    if len(seen) == 2:
        gap = seen[1]["t_ms"] - seen[0]["t_ms"]
        h.check("unary: without pushback the retry came within the 10 ms "
                "backoff (bounded loosely)", gap < 250 * h.mult,
                f"{gap} ms apart on the server")


@case("unary-pushback-stops")
def unary_pushback_stops(h):
    """a negative (-1) or invalid (abc) grpc-retry-pushback-ms: no retry, the
    server's UNAVAILABLE after one attempt (grpc++ sends "abc" as
    -9223372036854775808: see server-trailers-only)"""
    for tag, value in (("negative", "-1"), ("invalid", "abc")):
        key = f"unary-pushback-{tag}"
        r = h.call("unary", key, service_config(max_attempts=5),
                   fail_first=2, pushback=value)
        h.expect(f"unary: pushback {value!r} stops the retries", "Unary", key,
                 r, "UNAVAILABLE", ["-"], 14)


@case("unary-pushback-zero")
def unary_pushback_zero(h):
    """grpc-retry-pushback-ms 0: retried at once, OK on the third attempt"""
    key = "unary-pushback-zero"
    r = h.call("unary", key, service_config(max_attempts=3), fail_first=2,
               pushback="0")
    h.expect("unary: pushback 0, then OK", "Unary", key, r, "OK",
             ["-", "1", "2"])


@case("unary-pushback-past-deadline")
def unary_pushback_past_deadline(h):
    """a pushback (60 s) that would end past the deadline: no retry, the
    server's UNAVAILABLE at once rather than the deadline's status"""
    key = "unary-pushback-late"
    deadline_ms = int(h.timeout(10) * 1000)
    r = h.call("unary", key, service_config(max_attempts=3), fail_first=2,
               pushback="60000", timeout_ms=deadline_ms)
    h.expect("unary: pushback past the deadline", "Unary", key, r,
             "UNAVAILABLE", ["-"], 14)
    _, res = r
    if res:
        h.check("unary: the status came well before the deadline",
                res["elapsed_ms"] < deadline_ms / 2,
                f"{res['elapsed_ms']} ms, deadline {deadline_ms} ms")


@case("unary-throttling")
def unary_throttling(h):
    """retryThrottling maxTokens 10, tokenRatio 0.1, maxAttempts 5, two
    calls on one channel that always fail: the first makes 5 attempts
    (tokens 10 -> 5), the second 1 (4 tokens are at or below half)"""
    config = json.loads(service_config(max_attempts=5))
    config["retryThrottling"] = {"maxTokens": 10, "tokenRatio": 0.1}
    first, second = h.calls("unary", "unary-throttle", json.dumps(config),
                            fail_first=10, count=2)
    h.expect("unary: throttling, first call", "Unary", "unary-throttle.1",
             first, "UNAVAILABLE", ["-", "1", "2", "3", "4"], 14)
    h.expect("unary: throttling, second call", "Unary", "unary-throttle.2",
             second, "UNAVAILABLE", ["-"], 14)


@case("unary-large-request")
def unary_large_request(h):
    """a 200 KiB request is kept and retried; a 300 KiB one is over the
    per-call retry buffer (256 KiB, as C-core's) and is not retried"""
    for size, want in ((200 * 1024, ["-", "1"]), (300 * 1024, ["-"])):
        key = f"unary-large-{size // 1024}k"
        r = h.call("unary", key, service_config(max_attempts=3),
                   fail_first=1, size=size)
        h.expect(f"unary: a {size // 1024} KiB request", "Unary", key, r,
                 "OK" if len(want) == 2 else "UNAVAILABLE", want,
                 0 if len(want) == 2 else 14)


@case("unary-keys-apart")
def unary_keys_apart(h):
    """two keys with failures of their own: each counted on its own"""
    for key in ("unary-apart-a", "unary-apart-b"):
        r = h.call("unary", key, service_config(max_attempts=3), fail_first=1)
        h.expect(f"unary: key {key}", "Unary", key, r, "OK", ["-", "1"])


for _m in ("download", "upload", "chat"):
    def _ok(h, m=_m):
        retried_until_ok(h, m, f"{m}-ok")
    _ok.__doc__ = (f"{method_name(_m)}: the first 2 attempts fail "
                   "UNAVAILABLE before any response: OK on the third, with "
                   "every message")
    case(f"{_m}-retried-until-ok", streaming=True)(_ok)

    def _nr(h, m=_m):
        non_retryable(h, m, f"{m}-internal")
    _nr.__doc__ = f"{method_name(_m)}: INTERNAL is not retried"
    case(f"{_m}-non-retryable", streaming=True)(_nr)

    def _max(h, m=_m):
        max_attempts_reached(h, m, f"{m}-max3", 3, 3)
    _max.__doc__ = (f"{method_name(_m)}: maxAttempts 3 against 10 failures: "
                    "UNAVAILABLE after exactly 3")
    case(f"{_m}-max-attempts", streaming=True)(_max)


def committed(h, method, after, want_replies):
    key = f"{method}-committed-{after}"
    r = h.call(method, key, service_config(max_attempts=5), fail_first=2,
               fail_after=after)
    h.expect(f"{method}: UNAVAILABLE after the response {after} is final",
             method_name(method), key, r, "UNAVAILABLE", ["-"], 14)
    _, res = r
    if res:
        h.check_equal(f"{method}: responses before the failure",
                      res["replies"], want_replies)


for _m, _after, _n in (("download", "headers", 0),
                       ("download", "message", 1), ("upload", "headers", 0),
                       ("chat", "headers", 0),
                       ("chat", "message", 1)):
    def _c(h, m=_m, after=_after, n=_n):
        committed(h, m, after, n)
    _c.__doc__ = (f"{method_name(_m)}: the server sends its response "
                  f"{_after} and then "
                  "fails UNAVAILABLE: the call was committed, one attempt")
    case(f"{_m}-committed-by-{_after}", streaming=True)(_c)


@case("chat-pushback", streaming=True)
def chat_pushback(h):
    """Chat: grpc-retry-pushback-ms 300 is waited before the retry"""
    key = "chat-pushback"
    r = h.call("chat", key, service_config(max_attempts=3), fail_first=1,
               pushback="300")
    seen = h.expect("chat: pushback 300 ms, then OK", "Chat", key, r, "OK",
                    ["-", "1"])
    if len(seen) == 2:
        gap = seen[1]["t_ms"] - seen[0]["t_ms"]
        upper = 300 + h.timeout(3) * 1000
        h.check(f"chat: the retry came 300 ms or more after the first "
                f"attempt, and under {upper:.0f} ms",
                295 <= gap <= upper, f"{gap} ms apart on the server")


def body(h, cases):
    if h.args.py_server:
        label = "py_retry_server"
        h.server, h.port = h.start_py_server(h.args.py_server, label=label)
    else:
        label = "grpcxx_retry_server"
        h.server, h.port = h.start_cgrpc_server(h.args.grpcxx_server,
                                                label=label)
    try:
        for name, (fn, doc) in cases:
            print(f"== {name}: {doc.splitlines()[0]}", flush=True)
            run_labelled(h, name, fn, h)
            if not h.server.running():
                h.check(f"{label} still running after {name}", False)
                break
    finally:
        h.stop(h.server)


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grpcxx-server", help="path to grpcxx_retry_server")
    ap.add_argument("--py-server", help="path to py_retry_server.py")
    ap.add_argument("--stubs-dir", help="folder holding stream_pb2*.py")
    ap.add_argument("--retry-client", help="path to cgrpc's retry_client")
    ap.add_argument("--streaming", action="store_true",
                    help="the streaming cases instead of the unary ones")
    ap.add_argument("--case", action="append", default=[],
                    help="run only this case (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the cases")
    add_peer_args(ap)
    args = ap.parse_args()
    table = STREAMING_CASES if args.streaming else CASES
    if args.list:
        for name, (_, doc) in table.items():
            print(f"{name}\n    {' '.join(doc.split())}")
        return 0
    if (bool(args.grpcxx_server) == bool(args.py_server) or
            not args.retry_client or
            (args.py_server and not args.stubs_dir)):
        ap.error("--retry-client and one of --grpcxx-server or --py-server "
                 "(with --stubs-dir) are required")
    unknown = [c for c in args.case if c not in table]
    if unknown:
        ap.error(f"unknown case(s) {', '.join(unknown)} (see --list)")
    names = args.case or [n for n in table
                          if not (args.py_server and n in GRPCXX_ONLY)]
    cases = [(n, table[n]) for n in names]
    return main_loop(RetryHarness, args, "cgrpc-retry-",
                     lambda h: body(h, cases))


if __name__ == "__main__":
    sys.exit(main())
