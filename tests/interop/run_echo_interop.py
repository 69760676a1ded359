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

Processes, waits, timeouts and the exit status are as interop_harness.py
describes.
"""
import os
import sys

from interop_harness import (
    SIDE_MODES as MODES, Harness, check_side_args, serve_cases, side_main,
    side_mode_parser)

HERE = os.path.dirname(os.path.abspath(__file__))

PY_SERVER = os.path.join(HERE, "py_echo_server.py")
PY_CLIENT = os.path.join(HERE, "py_echo_client.py")

CASES = ("unary", "status_codes", "special_status_message", "metadata",
         "large", "deadline", "unimplemented", "all")
RAW_CASES = ("malformed", "oversized", "unknown_service", "raw")
RAW_MAX_RECEIVE = 1024


class EchoHarness(Harness):

    def start_server(self, side, cases):
        extra = []
        if any(c in RAW_CASES for c in cases):
            extra.append(f"--max_receive_message_length={RAW_MAX_RECEIVE}")
        if side == "cgrpc":
            return self.start_cgrpc_server(self.args.echo_server,
                                           label="echo_server", extra=extra)
        return self.start_py_server(PY_SERVER, label="py_echo_server",
                                    extra=extra)

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
        self.run_case_client(label, f"{label} --case={case}", argv, 30,
                             cgrpc=side == "cgrpc")


def run_mode(h, name, cases):
    client_side, server_side = MODES[name]
    server, port = h.start_server(server_side, cases)
    serve_cases(h, server, cases,
                lambda case: h.run_client(client_side, f"127.0.0.1:{port}",
                                          case),
                "--case")


def main():
    ap = side_mode_parser(__doc__, "folder holding echo_pb2*.py", "echo")
    args = ap.parse_args()

    if args.list:
        print("modes: " + " ".join(MODES))
        print("cases: " + " ".join(CASES))
        print("grpcio client only: " + " ".join(RAW_CASES))
        return 0
    client_side, _ = check_side_args(ap, args, "echo")
    for case in args.case:
        if case in RAW_CASES and client_side != "py":
            ap.error(f"case {case} needs the grpcio client")
        if case not in CASES + RAW_CASES:
            ap.error(f"unknown case {case!r} (see --list)")

    return side_main(EchoHarness, args, "cgrpc-echo-interop-", run_mode)


if __name__ == "__main__":
    sys.exit(main())
