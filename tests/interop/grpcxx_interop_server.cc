// SPDX-License-Identifier: MIT
//
// A grpc++ server of grpc.testing.TestService for the interop tests: the
// server features of gRPC's interop test descriptions that the cases run
// against it need, the compression ones as grpc++'s own interop server
// implements them (test/cpp/interop/interop_server.cc in grpc/grpc).
//
//   grpcxx_interop_server --port=N [--use_tls=false|true]
//                         [--tls_cert_file=PEM --tls_key_file=PEM]
//                         [--require_token=T]
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
// and exits 0.  --use_tls=true serves TLS (grpc::SslServerCredentials, no
// client certificate asked for) with gRPC's test server certificate
// (testdata/server1.pem, for *.test.google.fr, compiled in), or the chain
// and key --tls_cert_file and --tls_key_file name (grpc-go's flags), as
// cgrpc's interop_server does.
//
// --require_token=T (a cgrpc test flag, not one of gRPC's; as in
// interop_server): every call of the methods above whose client metadata
// lacks "authorization: Bearer T" fails UNAUTHENTICATED, saying so
// (UnimplementedCall stays UNIMPLEMENTED).  Needs --use_tls=true: bearer
// tokens travel over TLS only.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>

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
using grpcxx_interop::FlagValue;

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
  // |bearer|: "Bearer T" for --require_token=T, or empty.
  explicit TestServiceImpl(std::string bearer) : bearer_(std::move(bearer)) {}

  Status EmptyCall(ServerContext *ctx, const Empty *, Empty *) override {
    return Authorize(ctx);
  }

  Status UnaryCall(ServerContext *ctx, const SimpleRequest *req,
                   SimpleResponse *resp) override {
    Status auth = Authorize(ctx);
    if (!auth.ok())
      return auth;
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
    Status auth = Authorize(ctx);
    if (!auth.ok())
      return auth;
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
    Status auth = Authorize(ctx);
    if (!auth.ok())
      return auth;
    return SendResponses(ctx, *req, writer);
  }

  Status FullDuplexCall(
      ServerContext *ctx,
      grpc::ServerReaderWriter<StreamingOutputCallResponse,
                               StreamingOutputCallRequest> *stream) override {
    Status auth = Authorize(ctx);
    if (!auth.ok())
      return auth;
    StreamingOutputCallRequest req;
    while (stream->Read(&req)) {
      Status st = SendResponses(ctx, req, stream);
      if (!st.ok())
        return st;
    }
    return Status::OK;
  }

private:
  // OK, or UNAUTHENTICATED when --require_token's token is not the call's.
  Status Authorize(ServerContext *ctx) const {
    if (bearer_.empty())
      return Status::OK;
    auto range = ctx->client_metadata().equal_range("authorization");
    for (auto it = range.first; it != range.second; ++it)
      if (std::string(it->second.data(), it->second.size()) == bearer_)
        return Status::OK;
    return Status(StatusCode::UNAUTHENTICATED,
                  "missing or wrong bearer token "
                  "(grpcxx_interop_server --require_token)");
  }

  const std::string bearer_;
};

// The server's credentials from the TLS flags; nullptr after printing why.
std::shared_ptr<grpc::ServerCredentials>
MakeCredentials(bool use_tls, const char *cert_file, const char *key_file) {
  if (!use_tls)
    return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  if (cert_file == nullptr) {
    pair.cert_chain = interop_testdata_server1_pem;
    pair.private_key = interop_testdata_server1_key;
  } else if (!grpcxx_interop::ReadFile(cert_file, &pair.cert_chain) ||
             !grpcxx_interop::ReadFile(key_file, &pair.private_key)) {
    std::fprintf(stderr, "grpcxx_interop_server: cannot read %s or %s\n",
                 cert_file, key_file);
    return nullptr;
  }
  grpc::SslServerCredentialsOptions opts(
      GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  opts.pem_key_cert_pairs.push_back(pair);
  return grpc::SslServerCredentials(opts);
}

const char kUsage[] = "usage: %s --port=N [--use_tls=false|true] "
                      "[--tls_cert_file=PEM --tls_key_file=PEM] "
                      "[--require_token=T]\n";

} // namespace

int main(int argc, char **argv) {
  long port = -1;
  bool use_tls = false;
  const char *cert_file = nullptr, *key_file = nullptr, *v;
  std::string bearer;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    bool ok = true;
    if ((v = FlagValue(a, "port")) != nullptr)
      ok = grpcxx_interop::ParsePort(v, 0, &port);
    else if ((v = FlagValue(a, "use_tls")) != nullptr)
      ok = grpcxx_interop::ParseBool(v, &use_tls);
    else if ((v = FlagValue(a, "tls_cert_file")) != nullptr)
      cert_file = v;
    else if ((v = FlagValue(a, "tls_key_file")) != nullptr)
      key_file = v;
    else if ((v = FlagValue(a, "require_token")) != nullptr && *v != '\0')
      bearer = std::string("Bearer ") + v;
    else
      ok = false;
    if (!ok) {
      std::fprintf(stderr, kUsage, argv[0]);
      std::fprintf(stderr, "grpcxx_interop_server: bad argument \"%s\"\n", a);
      return 2;
    }
  }
  const char *misuse = nullptr;
  if (port < 0)
    misuse = "--port is required";
  else if ((cert_file == nullptr) != (key_file == nullptr))
    misuse = "--tls_cert_file and --tls_key_file go together";
  else if (!use_tls && cert_file != nullptr)
    misuse = "--tls_cert_file and --tls_key_file need --use_tls=true";
  else if (!use_tls && !bearer.empty())
    misuse = "--require_token needs --use_tls=true (bearer tokens travel "
             "over TLS only)";
  if (misuse != nullptr) {
    std::fprintf(stderr, kUsage, argv[0]);
    std::fprintf(stderr, "grpcxx_interop_server: %s\n", misuse);
    return 2;
  }
  std::shared_ptr<grpc::ServerCredentials> creds =
      MakeCredentials(use_tls, cert_file, key_file);
  if (!creds)
    return 1;

  // grpc++'s threads inherit the mask: only sigwait() below sees these.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  TestServiceImpl service(bearer);
  grpc::ServerBuilder builder;
  int bound = 0;
  builder.AddListeningPort("0.0.0.0:" + std::to_string(port), creds, &bound);
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
