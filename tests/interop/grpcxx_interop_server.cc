// SPDX-License-Identifier: MIT
//
// A grpc++ server of grpc.testing.TestService for the interop tests: the
// server features of gRPC's interop test descriptions that the cases run
// against it need, the compression ones as grpc++'s own interop server
// implements them (test/cpp/interop/interop_server.cc in grpc/grpc).
//
//   grpcxx_interop_server --port=N [--use_tls=false]
//
//   EmptyCall            answers Empty.
//   UnaryCall            a payload of response_size zero bytes;
//                        response_compressed: gzip (true) or none (false);
//                        expect_compressed: the request's compressed flag
//                        must match, else INVALID_ARGUMENT.
//   StreamingInputCall   the sum of the payload sizes; expect_compressed
//                        checked per message as above.
//   StreamingOutputCall  one response per response_parameters entry; an
//                        entry with compressed turns gzip on for the call
//                        and sends its message compressed when it says true
//                        (WriteOptions::set_no_compression() otherwise).
//   FullDuplexCall       answers each request as StreamingOutputCall does.
//
// Serves on 0.0.0.0:N until SIGTERM or SIGINT, then shuts down (grace 1 s)
// and exits 0.  --use_tls=true is refused (exit 2).
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "grpc/testing/test.grpc.pb.h"
#include "grpcxx_interop.h"

using grpc::ServerContext;
using grpc::Status;
using grpc::StatusCode;
using grpc::testing::Empty;
using grpc::testing::SimpleRequest;
using grpc::testing::SimpleResponse;
using grpc::testing::StreamingInputCallRequest;
using grpc::testing::StreamingInputCallResponse;
using grpc::testing::StreamingOutputCallRequest;
using grpc::testing::StreamingOutputCallResponse;

namespace {

// CompressedRequest: the request just read must be compressed as
// |expected| says.
Status CheckExpectedCompression(ServerContext *ctx, bool expected) {
  bool was = grpcxx_interop::LastMessageCompressed(ctx->c_call());
  if (expected && !was)
    return Status(StatusCode::INVALID_ARGUMENT,
                  "expected a compressed request, got an uncompressed one");
  if (!expected && was)
    return Status(StatusCode::INVALID_ARGUMENT,
                  "expected an uncompressed request, got a compressed one");
  return Status::OK;
}

template <typename Writer>
Status SendResponses(ServerContext *ctx, const StreamingOutputCallRequest &req,
                     Writer *writer) {
  for (const auto &p : req.response_parameters()) {
    StreamingOutputCallResponse resp;
    grpc::WriteOptions wopts;
    if (p.size() < 0)
      return Status(StatusCode::INVALID_ARGUMENT, "negative size");
    if (p.has_compressed()) {
      ctx->set_compression_algorithm(GRPC_COMPRESS_GZIP);
      if (!p.compressed().value())
        wopts.set_no_compression();
    }
    resp.mutable_payload()->set_body(std::string(p.size(), '\0'));
    if (!writer->Write(resp, wopts))
      return Status(StatusCode::CANCELLED, "the client went away");
  }
  return Status::OK;
}

class TestServiceImpl final : public grpc::testing::TestService::Service {
public:
  Status EmptyCall(ServerContext *, const Empty *, Empty *) override {
    return Status::OK;
  }

  Status UnaryCall(ServerContext *ctx, const SimpleRequest *req,
                   SimpleResponse *resp) override {
    if (req->has_response_compressed())
      ctx->set_compression_algorithm(req->response_compressed().value()
                                         ? GRPC_COMPRESS_GZIP
                                         : GRPC_COMPRESS_NONE);
    if (req->has_expect_compressed()) {
      Status st =
          CheckExpectedCompression(ctx, req->expect_compressed().value());
      if (!st.ok())
        return st;
    }
    if (req->response_size() < 0)
      return Status(StatusCode::INVALID_ARGUMENT, "negative response_size");
    resp->mutable_payload()->set_body(std::string(req->response_size(), '\0'));
    return Status::OK;
  }

  Status
  StreamingInputCall(ServerContext *ctx,
                     grpc::ServerReader<StreamingInputCallRequest> *reader,
                     StreamingInputCallResponse *resp) override {
    StreamingInputCallRequest req;
    int64_t total = 0;
    while (reader->Read(&req)) {
      if (req.has_expect_compressed()) {
        Status st =
            CheckExpectedCompression(ctx, req.expect_compressed().value());
        if (!st.ok())
          return st;
      }
      total += static_cast<int64_t>(req.payload().body().size());
    }
    resp->set_aggregated_payload_size(static_cast<int32_t>(total));
    return Status::OK;
  }

  Status StreamingOutputCall(
      ServerContext *ctx, const StreamingOutputCallRequest *req,
      grpc::ServerWriter<StreamingOutputCallResponse> *writer) override {
    return SendResponses(ctx, *req, writer);
  }

  Status FullDuplexCall(
      ServerContext *ctx,
      grpc::ServerReaderWriter<StreamingOutputCallResponse,
                               StreamingOutputCallRequest> *stream) override {
    StreamingOutputCallRequest req;
    while (stream->Read(&req)) {
      Status st = SendResponses(ctx, req, stream);
      if (!st.ok())
        return st;
    }
    return Status::OK;
  }
};

} // namespace

int main(int argc, char **argv) {
  long port = -1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    char *end;
    if (std::strncmp(a, "--port=", 7) == 0) {
      port = std::strtol(a + 7, &end, 10);
      if (*end != '\0' || port < 0 || port > 65535) {
        std::fprintf(stderr, "grpcxx_interop_server: bad port \"%s\"\n", a);
        return 2;
      }
    } else if (std::strcmp(a, "--use_tls=false") == 0) {
    } else {
      std::fprintf(stderr,
                   "usage: %s --port=N [--use_tls=false]\n"
                   "grpcxx_interop_server: bad argument \"%s\"\n",
                   argv[0], a);
      return 2;
    }
  }
  if (port < 0) {
    std::fprintf(stderr, "usage: %s --port=N [--use_tls=false]\n", argv[0]);
    return 2;
  }

  // grpc++'s threads inherit the mask: only sigwait() below sees these.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  TestServiceImpl service;
  grpc::ServerBuilder builder;
  int bound = 0;
  builder.AddListeningPort("0.0.0.0:" + std::to_string(port),
                           grpc::InsecureServerCredentials(), &bound);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || bound == 0) {
    std::fprintf(stderr, "grpcxx_interop_server: cannot serve on port %ld\n",
                 port);
    return 1;
  }
  std::printf("listening on %d\n", bound);
  std::fflush(stdout);
  int sig;
  sigwait(&stop, &sig);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server->Wait();
  return 0;
}
