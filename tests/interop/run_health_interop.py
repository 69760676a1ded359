#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""grpcio as a health checking client (grpc.health.v1.Health) of a cgrpc
server, the way load balancers, Kubernetes' gRPC probes and
grpc_health_probe ask.

  run_health_interop.py --stubs-dir=DIR --server=PATH

DIR holds health_pb2.py (protoc --python_out of
protos/grpc/health/v1/health.proto; no grpcio stubs: the calls are made
with channel.unary_unary and channel.unary_stream).  PATH is a cgrpc server
that takes --port=N, switches health checking on and shuts down on SIGTERM
(greeter_server).

Checks: Check for "" and helloworld.Greeter says SERVING, an unknown
service is NOT_FOUND; Watch sends SERVING at once (SERVICE_UNKNOWN for an
unknown service); on SIGTERM the watch receives NOT_SERVING before its
stream ends, and the server exits 0.  Every wait is bounded; timeouts are
multiplied by $CGRPC_TEST_TIMEOUT_MULTIPLIER.  Exit status: 0 when every
check passed, 1 otherwise, 2 on usage errors.
"""
import argparse
import os
import signal
import subprocess
import sys

from interop_harness import Failure, Harness, add_peer_args, main_loop

import grpc  # noqa: E402  (the system grpcio)

SERVICE = "grpc.health.v1.Health"


class HealthHarness(Harness):
    def __init__(self, args, workdir):
        super().__init__(args, workdir)
        sys.path.insert(0, args.stubs_dir)
        import health_pb2  # generated into --stubs-dir
        self.pb = health_pb2

    def methods(self, channel):
        pb = self.pb
        check = channel.unary_unary(
            f"/{SERVICE}/Check",
            request_serializer=pb.HealthCheckRequest.SerializeToString,
            response_deserializer=pb.HealthCheckResponse.FromString)
        watch = channel.unary_stream(
            f"/{SERVICE}/Watch",
            request_serializer=pb.HealthCheckRequest.SerializeToString,
            response_deserializer=pb.HealthCheckResponse.FromString)
        return check, watch


def status_name(pb, status):
    return pb.HealthCheckResponse.ServingStatus.Name(status)


def next_status(h, stream, label):
    """The next status on |stream| by name, or raises Failure."""
    try:
        return status_name(h.pb, next(stream).status)
    except StopIteration:
        raise Failure(f"{label}: the stream ended")
    except grpc.RpcError as e:
        raise Failure(f"{label}: {e.code()}: {e.details()}")


def run(h, args):
    pb = h.pb
    server, port = h.start_cgrpc_server(args.server, "cgrpc server")
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    exited = False
    try:
        check, watch = h.methods(channel)
        for service in ("", "helloworld.Greeter", SERVICE):
            reply = check(pb.HealthCheckRequest(service=service),
                          timeout=h.timeout(20))
            h.check_equal(f"Check {service!r}",
                          status_name(pb, reply.status), "SERVING")
        try:
            check(pb.HealthCheckRequest(service="helloworld.Nope"),
                  timeout=h.timeout(20))
            h.check("Check of an unknown service fails", False)
        except grpc.RpcError as e:
            h.check_equal("Check of an unknown service: NOT_FOUND", e.code(),
                          grpc.StatusCode.NOT_FOUND)

        whole = watch(pb.HealthCheckRequest(service=""),
                      timeout=h.timeout(60))
        unknown = watch(pb.HealthCheckRequest(service="helloworld.Nope"),
                        timeout=h.timeout(60))
        h.check_equal("Watch '': SERVING at once",
                      next_status(h, whole, "Watch ''"), "SERVING")
        h.check_equal("Watch of an unknown service: SERVICE_UNKNOWN",
                      next_status(h, unknown, "Watch unknown"),
                      "SERVICE_UNKNOWN")

        # Shutdown: NOT_SERVING first, then the end of the stream.
        server.popen.send_signal(signal.SIGTERM)
        h.check_equal("on SIGTERM the watch receives NOT_SERVING",
                      next_status(h, whole, "Watch '' at shutdown"),
                      "NOT_SERVING")
        for label, stream in (("Watch ''", whole), ("Watch unknown", unknown)):
            try:
                extra = [status_name(pb, r.status) for r in stream]
                h.check(f"{label}: the stream ends after it", not extra,
                        f"then {extra}")
            except grpc.RpcError as e:
                h.check_equal(f"{label}: ends with UNAVAILABLE", e.code(),
                              grpc.StatusCode.UNAVAILABLE)
        try:
            status = server.popen.wait(timeout=h.timeout(15))
            exited = True
            h.check_equal("the server exits 0", status, 0)
        except subprocess.TimeoutExpired:
            h.check("the server exits after SIGTERM", False)
    finally:
        channel.close()
        if exited:
            h.stop(server, clean_statuses=(0,))
        else:
            h.stop(server)


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stubs-dir", required=True,
                    help="folder holding health_pb2.py")
    ap.add_argument("--server", required=True, help="the cgrpc server")
    add_peer_args(ap)
    args = ap.parse_args()
    if not os.path.isdir(args.stubs_dir):
        ap.error(f"--stubs-dir {args.stubs_dir} is not a folder")

    def body(h):
        try:
            run(h, args)
        except Failure as e:
            h.check("health checking", False, str(e))

    return main_loop(HealthHarness, args, "cgrpc-health-interop-", body)


if __name__ == "__main__":
    sys.exit(main())
