#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Interop on cgrpc.test.EchoService between cgrpc and grpcio.

  run_echo_interop.py --mode=MODE --case=CASE [--case=CASE ...]
                      --stubs-dir=DIR [--echo-server=PATH]
                      [--echo-client=PATH] [--transport=TRANSPORT]
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

--transport picks how they meet: tcp (the default: 127.0.0.1 and a port),
unix (a socket file in the run's log folder, target unix:PATH) or
unix-abstract (a name in Linux's abstract namespace, unix-abstract:NAME).

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


TRANSPORTS = ("tcp", "unix", "unix-abstract")


class EchoHarness(Harness):

    def start_server(self, side, cases):
        """Starts |side|'s server.  Returns (proc, target)."""
        extra = []
        if any(c in RAW_CASES for c in cases):
            extra.append(f"--max_receive_message_length={RAW_MAX_RECEIVE}")
        if self.args.transport != "tcp":
            address = self.unix_address(self.args.transport, "echo")
            if side == "cgrpc":
                label = "echo_server"
                argv = [self.args.echo_server, f"--address={address}", *extra]
            else:
                label = "py_echo_server"
                argv = [self.args.python, PY_SERVER, f"--address={address}",
                        f"--stubs-dir={self.args.stubs_dir}", *extra]
            return self.start_unix_server(label, argv, address), address
        if side == "cgrpc":
            server, port = self.start_cgrpc_server(
                self.args.echo_server, label="echo_server", extra=extra)
        else:
            server, port = self.start_py_server(
                PY_SERVER, label="py_echo_server", extra=extra)
        return server, f"127.0.0.1:{port}"

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
    server, target = h.start_server(server_side, cases)
    serve_cases(h, server, cases,
                lambda case: h.run_client(client_side, target, case),
                "--case")
    if h.args.transport == "unix":
        # Either side's server removes its socket file when it stops.
        path = target[len("unix:"):]
        h.check(f"{server.label} removed {path} at shutdown",
                not os.path.exists(path))


def main():
    ap = side_mode_parser(__doc__, "folder holding echo_pb2*.py", "echo")
    ap.add_argument("--transport", choices=TRANSPORTS, default="tcp",
                    help="how client and server meet (default tcp)")
    args = ap.parse_args()

    if args.list:
        print("modes: " + " ".join(MODES))
        print("cases: " + " ".join(CASES))
        print("grpcio client only: " + " ".join(RAW_CASES))
        print("transports: " + " ".join(TRANSPORTS))
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
