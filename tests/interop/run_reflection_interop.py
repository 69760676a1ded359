#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""grpcio as a server reflection client of cgrpc servers, the way grpcurl
and grpc_cli use reflection: with no .proto file of the server's at hand.

  run_reflection_interop.py --stubs-dir=DIR --server=PATH --kind=KIND

DIR holds reflection_pb2.py (protoc --python_out of
protos/grpc/reflection/v1/reflection.proto; no grpcio stubs: the stream is
opened with channel.stream_stream).  PATH is a cgrpc server that takes
--port=N and switches reflection on: greeter_server (KIND=greeter) or
interop_server (KIND=testservice).

Over v1 (and v1alpha, which has the same messages), the runner lists the
services, fetches the file that declares the service, builds a descriptor
pool from the returned FileDescriptorProtos alone, and calls the service
with messages made from those descriptors; it also checks the errors for
unknown names.  Every wait is bounded; timeouts are multiplied by
$CGRPC_TEST_TIMEOUT_MULTIPLIER.  Exit status: 0 when every check passed, 1
otherwise, 2 on usage errors.
"""
import argparse
import os
import sys

from interop_harness import Failure, Harness, add_peer_args, main_loop

import grpc  # noqa: E402  (the system grpcio)

V1 = "grpc.reflection.v1.ServerReflection"
V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
NOT_FOUND = 5

# What each server offers, and one call to make through reflection alone:
# (service, method, request fields, check of the response).
KINDS = {
    "greeter": dict(
        service="helloworld.Greeter",
        calls=[("SayHello", {"name": "reflection"},
                lambda r: "reflection" in r.message)],
        symbols=["helloworld.Greeter.SayHelloAgain", "helloworld.HelloReply"],
    ),
    "testservice": dict(
        service="grpc.testing.TestService",
        calls=[
            # The request and reply types come from imported files.
            ("EmptyCall", {}, lambda r: r.ByteSize() == 0),
            ("UnaryCall", {"response_size": 17},
             lambda r: len(r.payload.body) == 17),
        ],
        symbols=["grpc.testing.TestService.FullDuplexCall",
                 "grpc.testing.SimpleRequest", "grpc.testing.Empty",
                 "grpc.testing.PayloadType"],
    ),
}


def message_class(pool, full_name):
    """The Python class of |full_name| from |pool| (protobuf 4.x, or the
    older MessageFactory)."""
    from google.protobuf import message_factory
    desc = pool.FindMessageTypeByName(full_name)
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(desc)
    return message_factory.MessageFactory(pool).GetPrototype(desc)


class ReflectionHarness(Harness):
    def __init__(self, args, workdir):
        super().__init__(args, workdir)
        sys.path.insert(0, args.stubs_dir)
        import reflection_pb2  # generated into --stubs-dir
        self.pb = reflection_pb2

    def ask(self, channel, service, requests):
        """Sends |requests| on one reflection stream of |service|; returns
        the responses (one per request, in order)."""
        stream = channel.stream_stream(
            f"/{service}/ServerReflectionInfo",
            request_serializer=self.pb.ServerReflectionRequest.SerializeToString,
            response_deserializer=self.pb.ServerReflectionResponse.FromString)
        responses = list(stream(iter(requests), timeout=self.timeout(20)))
        if len(responses) != len(requests):
            raise Failure(f"{len(responses)} responses to {len(requests)} "
                          "requests")
        return responses

    def build_pool(self, file_protos):
        """A DescriptorPool of the serialized FileDescriptorProtos
        |file_protos|, each added once the files it imports are in."""
        from google.protobuf import descriptor_pb2, descriptor_pool
        pending = {}
        for blob in file_protos:
            fdp = descriptor_pb2.FileDescriptorProto.FromString(blob)
            pending[fdp.name] = fdp
        pool = descriptor_pool.DescriptorPool()
        added = set()
        while pending:
            ready = [n for n, f in pending.items()
                     if all(d in added for d in f.dependency)]
            if not ready:
                raise Failure("files whose imports never came: " +
                              ", ".join(f"{n} (imports {list(f.dependency)})"
                                        for n, f in pending.items()))
            for name in ready:
                pool.Add(pending.pop(name))
                added.add(name)
        return pool, added


def run(h, args):
    kind = KINDS[args.kind]
    pb = h.pb
    server, port = h.start_cgrpc_server(args.server, "cgrpc server")
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        # ---- list, on both versions ----
        for version in (V1, V1ALPHA):
            (resp,) = h.ask(channel, version, [pb.ServerReflectionRequest(
                host="localhost", list_services="")])
            names = [s.name for s in resp.list_services_response.service]
            h.check(f"{version}: lists {kind['service']}, {V1}, {V1ALPHA}",
                    {kind["service"], V1, V1ALPHA} <= set(names), names)
            h.check_equal(f"{version}: original_request echoed",
                          resp.original_request.WhichOneof("message_request"),
                          "list_services")

        # ---- the service's file and its imports; a pool from them ----
        requests = [pb.ServerReflectionRequest(
            file_containing_symbol=kind["service"])]
        requests += [pb.ServerReflectionRequest(file_containing_symbol=s)
                     for s in kind["symbols"]]
        requests.append(pb.ServerReflectionRequest(
            file_containing_symbol=kind["service"] + "Nope"))
        requests.append(pb.ServerReflectionRequest(
            file_by_filename="no/such.proto"))
        responses = h.ask(channel, V1, requests)
        first = responses[0]
        h.check_equal("file_containing_symbol answers with files",
                      first.WhichOneof("message_response"),
                      "file_descriptor_response")
        blobs = list(first.file_descriptor_response.file_descriptor_proto)
        pool, files = h.build_pool(blobs)
        print(f"files: {sorted(files)}", flush=True)
        for sym, resp in zip(kind["symbols"], responses[1:]):
            ok = resp.WhichOneof("message_response") == "file_descriptor_response"
            h.check(f"file_containing_symbol {sym}", ok, str(resp)[:300])
            if ok:
                # Every file it names is one the service's answer had.
                from google.protobuf import descriptor_pb2
                name = descriptor_pb2.FileDescriptorProto.FromString(
                    resp.file_descriptor_response.file_descriptor_proto[0]).name
                h.check(f"{sym} is in {name}, one of the service's files",
                        name in files)
        for resp, what in ((responses[-2], "an unknown symbol"),
                           (responses[-1], "an unknown file")):
            h.check_equal(f"{what}: an error response",
                          resp.WhichOneof("message_response"),
                          "error_response")
            h.check_equal(f"{what}: NOT_FOUND",
                          resp.error_response.error_code, NOT_FOUND)

        # ---- the files by name, over v1alpha ----
        responses = h.ask(channel, V1ALPHA, [
            pb.ServerReflectionRequest(file_by_filename=f) for f in files])
        h.check("v1alpha: every file by name",
                all(r.WhichOneof("message_response") ==
                    "file_descriptor_response" for r in responses))

        # ---- calls made from the reflected descriptors alone ----
        service = pool.FindServiceByName(kind["service"])
        for method_name, fields, check in kind["calls"]:
            method = service.methods_by_name[method_name]
            req_cls = message_class(pool, method.input_type.full_name)
            resp_cls = message_class(pool, method.output_type.full_name)
            call = channel.unary_unary(
                f"/{service.full_name}/{method.name}",
                request_serializer=req_cls.SerializeToString,
                response_deserializer=resp_cls.FromString)
            try:
                reply = call(req_cls(**fields), timeout=h.timeout(20))
            except grpc.RpcError as e:
                h.check(f"{method_name} called dynamically", False,
                        f"{e.code()}: {e.details()}")
                continue
            h.check(f"{method_name} called dynamically "
                    f"({method.input_type.full_name} -> "
                    f"{method.output_type.full_name})", check(reply),
                    str(reply)[:300])
    finally:
        channel.close()
        h.stop(server)


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stubs-dir", required=True,
                    help="folder holding reflection_pb2.py")
    ap.add_argument("--server", required=True, help="the cgrpc server")
    ap.add_argument("--kind", required=True, choices=sorted(KINDS))
    add_peer_args(ap)
    args = ap.parse_args()
    if not os.path.isdir(args.stubs_dir):
        ap.error(f"--stubs-dir {args.stubs_dir} is not a folder")

    def body(h):
        try:
            run(h, args)
        except Failure as e:
            h.check(f"reflection of {args.kind}", False, str(e))

    return main_loop(ReflectionHarness, args, "cgrpc-reflection-interop-", body)


if __name__ == "__main__":
    sys.exit(main())
