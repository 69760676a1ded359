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

Processes, waits, timeouts and the exit status are as interop_harness.py
describes.
"""
import os
import sys

from interop_harness import (
    SIDE_MODES as MODES, Harness, check_side_args, serve_cases, side_main,
    side_mode_parser)

HERE = os.path.dirname(os.path.abspath(__file__))

PY_SERVER = os.path.join(HERE, "py_interop_server.py")
PY_CLIENT = os.path.join(HERE, "py_interop_client.py")

CASES = ("empty_unary", "large_unary", "client_streaming", "server_streaming",
         "ping_pong", "empty_stream", "cancel_after_begin",
         "cancel_after_first_response", "timeout_on_sleeping_server",
         "status_code_and_message", "special_status_message",
         "custom_metadata", "unimplemented_method", "unimplemented_service",
         "all")

# A client run's time limit, seconds (before the multiplier); "all" runs
# every case in one process.
CLIENT_TIMEOUT = 30
CLIENT_TIMEOUT_ALL = 60


class TestServiceHarness(Harness):

    def start_server(self, side):
        if side == "cgrpc":
            return self.start_cgrpc_server(self.args.interop_server,
                                           label="interop_server",
                                           extra=("--use_tls=false",))
        return self.start_py_server(PY_SERVER, label="py_interop_server",
                                    extra=("--use_tls=false",))

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
        self.run_case_client(
            label, f"{label} --test_case={case}", argv, limit,
            cgrpc=side == "cgrpc",
            timed_out=f"timed out after {self.timeout(limit):g} s")


def run_mode(h, name, cases):
    client_side, server_side = MODES[name]
    server, port = h.start_server(server_side)
    serve_cases(h, server, cases,
                lambda case: h.run_client(client_side, port, case),
                "--test_case")


def main():
    ap = side_mode_parser(__doc__, "folder holding grpc/testing/*_pb2*.py",
                          "interop")
    args = ap.parse_args()

    if args.list:
        print("modes: " + " ".join(MODES))
        print("cases: " + " ".join(CASES))
        return 0
    check_side_args(ap, args, "interop")
    for case in args.case:
        if case not in CASES:
            ap.error(f"unknown case {case!r} (see --list)")

    return side_main(TestServiceHarness, args, "cgrpc-ts-interop-", run_mode)


if __name__ == "__main__":
    sys.exit(main())
