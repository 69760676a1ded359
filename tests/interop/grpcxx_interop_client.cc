// SPDX-License-Identifier: MIT
//
// A grpc++ client of grpc.testing.TestService that runs cases of gRPC's
// interop test descriptions, the compression ones as grpc++'s own interop
// client does (test/cpp/interop/interop_client.cc in grpc/grpc): the
// feature probes, per-message compression with WriteOptions, and the
// compressed flag of each response (grpcxx_interop.h).
//
//   grpcxx_interop_client --server_host=H --server_port=N --test_case=NAME
//                         [--use_tls=false|true] [--use_test_ca=false|true]
//                         [--ca_file=PEM] [--server_host_override=NAME]
//                         [--access_token=T]
//
// Cases: large_unary client_streaming server_streaming
// client_compressed_unary server_compressed_unary client_compressed_streaming
// server_compressed_streaming, and "all".  Prints "PASS: case" or
// "FAIL: case: why" per case; exits 0 when every case passed, 1 otherwise,
// 2 on usage errors.  Every call has a 20 s deadline.  A wrong status
// prints as "got NAME (\"message\"), want NAME", as interop_client's does.
//
// The TLS flags are those of gRPC's interop clients: --use_tls=true
// connects with grpc::SslCredentials and checks the server's certificate
// against the system's roots, gRPC's test CA with --use_test_ca=true
// (testdata/ca.pem, compiled in) or the CAs in --ca_file; and its name
// against --server_host_override when given (the channel argument
// grpc.ssl_target_name_override), else against --server_host.
// --access_token=T sends "authorization: Bearer T" with every call
// (grpc::AccessTokenCredentials composed with the SSL credentials); it
// needs --use_tls=true, as gRPC sends such credentials over TLS only.
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <cgrpc/status.h>
#include <grpcpp/grpcpp.h>

#include "grpc/testing/test.grpc.pb.h"
#include "grpcxx_interop.h"

using grpc::ClientContext;
using grpc::Status;
using grpc::StatusCode;
using grpc::testing::SimpleRequest;
using grpc::testing::SimpleResponse;
using grpc::testing::StreamingInputCallRequest;
using grpc::testing::StreamingInputCallResponse;
using grpc::testing::StreamingOutputCallRequest;
using grpc::testing::StreamingOutputCallResponse;
using grpc::testing::TestService;

namespace {

// A case's failure, with why.
struct Failure {
  std::string why;
};

void Expect(bool cond, const std::string &why) {
  if (!cond)
    throw Failure{why};
}

// gRPC's name of |code|: cgrpc's table of the spec's names (a pure
// function, the only thing of cgrpc this grpc++ peer uses).
std::string CodeName(StatusCode code) {
  return cgrpc_status_code_name(static_cast<int>(code));
}

void ExpectCode(const Status &st, StatusCode want, const std::string &what) {
  Expect(st.error_code() == want, what + ": got " + CodeName(st.error_code()) +
                                      " (\"" + st.error_message() +
                                      "\"), want " + CodeName(want));
}

void ExpectZeros(const std::string &body, size_t size,
                 const std::string &what) {
  Expect(body.size() == size, what + ": payload of " +
                                  std::to_string(body.size()) +
                                  " bytes, want " + std::to_string(size));
  Expect(body == std::string(size, '\0'), what + ": payload is not zeros");
}

void SetDeadline(ClientContext *ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(20));
}

class Cases {
public:
  explicit Cases(std::shared_ptr<grpc::Channel> ch)
      : stub_(TestService::NewStub(ch)) {}

  void LargeUnary() {
    ClientContext ctx;
    SimpleRequest req;
    SimpleResponse resp;
    SetDeadline(&ctx);
    req.set_response_size(314159);
    req.mutable_payload()->set_body(std::string(271828, '\0'));
    ExpectCode(stub_->UnaryCall(&ctx, req, &resp), StatusCode::OK, "UnaryCall");
    ExpectZeros(resp.payload().body(), 314159, "UnaryCall response");
  }

  void ClientStreaming() {
    ClientContext ctx;
    StreamingInputCallResponse resp;
    SetDeadline(&ctx);
    auto writer = stub_->StreamingInputCall(&ctx, &resp);
    bool wrote_all = true;
    for (int size : {27182, 8, 1828, 45904}) {
      StreamingInputCallRequest req;
      req.mutable_payload()->set_body(std::string(size, '\0'));
      // A write fails once the server has ended the call (a refusal, say):
      // its status is what Finish() reports.
      if (!writer->Write(req)) {
        wrote_all = false;
        break;
      }
    }
    writer->WritesDone();
    ExpectCode(writer->Finish(), StatusCode::OK, "StreamingInputCall");
    Expect(wrote_all, "a write failed on a call that ended OK");
    Expect(resp.aggregated_payload_size() == 74922,
           "aggregated_payload_size " +
               std::to_string(resp.aggregated_payload_size()));
  }

  void ServerStreaming() {
    ClientContext ctx;
    StreamingOutputCallRequest req;
    StreamingOutputCallResponse resp;
    const std::vector<int> sizes = {31415, 9, 2653, 58979};
    SetDeadline(&ctx);
    for (int size : sizes)
      req.add_response_parameters()->set_size(size);
    auto reader = stub_->StreamingOutputCall(&ctx, req);
    size_t n = 0;
    while (reader->Read(&resp)) {
      Expect(n < sizes.size(), "too many responses");
      ExpectZeros(resp.payload().body(), sizes[n],
                  "response " + std::to_string(n));
      n++;
    }
    ExpectCode(reader->Finish(), StatusCode::OK, "StreamingOutputCall");
    Expect(n == sizes.size(), std::to_string(n) + " responses");
  }

  void ClientCompressedUnary() {
    // The probe: expect_compressed, sent uncompressed.
    {
      ClientContext ctx;
      SimpleRequest req = LargeRequest();
      SimpleResponse resp;
      SetDeadline(&ctx);
      req.mutable_expect_compressed()->set_value(true);
      ExpectCode(stub_->UnaryCall(&ctx, req, &resp),
                 StatusCode::INVALID_ARGUMENT, "the probe");
    }
    for (bool compressed : {true, false}) {
      ClientContext ctx;
      SimpleRequest req = LargeRequest();
      SimpleResponse resp;
      SetDeadline(&ctx);
      if (compressed)
        ctx.set_compression_algorithm(GRPC_COMPRESS_GZIP);
      req.mutable_expect_compressed()->set_value(compressed);
      std::string what =
          compressed ? "a compressed request" : "an uncompressed request";
      ExpectCode(stub_->UnaryCall(&ctx, req, &resp), StatusCode::OK, what);
      ExpectZeros(resp.payload().body(), 314159, what);
    }
  }

  void ServerCompressedUnary() {
    for (bool compressed : {true, false}) {
      ClientContext ctx;
      SimpleRequest req = LargeRequest();
      SimpleResponse resp;
      SetDeadline(&ctx);
      req.mutable_response_compressed()->set_value(compressed);
      std::string what =
          std::string("response_compressed ") + (compressed ? "true" : "false");
      ExpectCode(stub_->UnaryCall(&ctx, req, &resp), StatusCode::OK, what);
      ExpectZeros(resp.payload().body(), 314159, what);
      Expect(grpcxx_interop::LastMessageCompressed(ctx.c_call()) == compressed,
             what + ": the response's compressed flag is wrong");
    }
  }

  void ClientCompressedStreaming() {
    // The probe.
    {
      ClientContext ctx;
      StreamingInputCallResponse resp;
      StreamingInputCallRequest req;
      SetDeadline(&ctx);
      auto writer = stub_->StreamingInputCall(&ctx, &resp);
      req.mutable_expect_compressed()->set_value(true);
      req.mutable_payload()->set_body(std::string(27182, '\0'));
      writer->Write(req); // may fail: the server may have answered
      writer->WritesDone();
      ExpectCode(writer->Finish(), StatusCode::INVALID_ARGUMENT, "the probe");
    }
    ClientContext ctx;
    StreamingInputCallResponse resp;
    SetDeadline(&ctx);
    ctx.set_compression_algorithm(GRPC_COMPRESS_GZIP);
    auto writer = stub_->StreamingInputCall(&ctx, &resp);
    StreamingInputCallRequest req;
    req.mutable_expect_compressed()->set_value(true);
    req.mutable_payload()->set_body(std::string(27182, '\0'));
    Expect(writer->Write(req), "writing the compressed request failed");
    req.mutable_expect_compressed()->set_value(false);
    req.mutable_payload()->set_body(std::string(45904, '\0'));
    Expect(writer->Write(req, grpc::WriteOptions().set_no_compression()),
           "writing the uncompressed request failed");
    writer->WritesDone();
    ExpectCode(writer->Finish(), StatusCode::OK, "StreamingInputCall");
    Expect(resp.aggregated_payload_size() == 73086,
           "aggregated_payload_size " +
               std::to_string(resp.aggregated_payload_size()));
  }

  void ServerCompressedStreaming() {
    ClientContext ctx;
    StreamingOutputCallRequest req;
    StreamingOutputCallResponse resp;
    const int sizes[2] = {31415, 92653};
    SetDeadline(&ctx);
    for (int i = 0; i < 2; i++) {
      auto *p = req.add_response_parameters();
      p->set_size(sizes[i]);
      p->mutable_compressed()->set_value(i == 0);
    }
    auto reader = stub_->StreamingOutputCall(&ctx, req);
    int n = 0;
    while (reader->Read(&resp)) {
      std::string what = "response " + std::to_string(n);
      Expect(n < 2, "too many responses");
      ExpectZeros(resp.payload().body(), sizes[n], what);
      Expect(grpcxx_interop::LastMessageCompressed(ctx.c_call()) == (n == 0),
             what + ": the compressed flag is wrong");
      n++;
    }
    ExpectCode(reader->Finish(), StatusCode::OK, "StreamingOutputCall");
    Expect(n == 2, std::to_string(n) + " responses, want 2");
  }

private:
  static SimpleRequest LargeRequest() {
    SimpleRequest req;
    req.set_response_size(314159);
    req.mutable_payload()->set_body(std::string(271828, '\0'));
    return req;
  }

  std::unique_ptr<TestService::Stub> stub_;
};

// The TLS flags of gRPC's interop clients.
struct TlsFlags {
  bool use_tls = false;
  bool use_test_ca = false;
  const char *ca_file = nullptr;
  std::string host_override;
  const char *access_token = nullptr;
};

// The channel credentials |tls| asks for, nullptr after printing why.
std::shared_ptr<grpc::ChannelCredentials>
MakeCredentials(const TlsFlags &tls, grpc::ChannelArguments *args) {
  if (!tls.use_tls)
    return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions pem; // empty roots: the system's
  if (tls.ca_file != nullptr) {
    if (!grpcxx_interop::ReadFile(tls.ca_file, &pem.pem_root_certs)) {
      std::fprintf(stderr, "grpcxx_interop_client: cannot read %s\n",
                   tls.ca_file);
      return nullptr;
    }
  } else if (tls.use_test_ca) {
    pem.pem_root_certs = interop_testdata_ca_pem;
  }
  if (!tls.host_override.empty())
    args->SetSslTargetNameOverride(tls.host_override);
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::SslCredentials(pem);
  if (tls.access_token != nullptr)
    creds = grpc::CompositeChannelCredentials(
        creds, grpc::AccessTokenCredentials(tls.access_token));
  return creds;
}

const char kUsage[] =
    "usage: %s --server_host=H --server_port=N --test_case=NAME\n"
    "          [--use_tls=false|true] [--use_test_ca=false|true]\n"
    "          [--ca_file=PEM] [--server_host_override=NAME]\n"
    "          [--access_token=T]\n";

} // namespace

int main(int argc, char **argv) {
  using grpcxx_interop::FlagValue;
  std::string host = "localhost", test_case;
  long port = -1;
  TlsFlags tls;
  const char *v;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    bool ok = true;
    if ((v = FlagValue(a, "server_host")) != nullptr)
      host = v;
    else if ((v = FlagValue(a, "server_port")) != nullptr)
      ok = grpcxx_interop::ParsePort(v, 1, &port);
    else if ((v = FlagValue(a, "test_case")) != nullptr)
      test_case = v;
    else if ((v = FlagValue(a, "use_tls")) != nullptr)
      ok = grpcxx_interop::ParseBool(v, &tls.use_tls);
    else if ((v = FlagValue(a, "use_test_ca")) != nullptr)
      ok = grpcxx_interop::ParseBool(v, &tls.use_test_ca);
    else if ((v = FlagValue(a, "ca_file")) != nullptr)
      tls.ca_file = v;
    else if ((v = FlagValue(a, "server_host_override")) != nullptr)
      tls.host_override = v;
    else if ((v = FlagValue(a, "access_token")) != nullptr)
      tls.access_token = v;
    else
      ok = false;
    if (!ok) {
      std::fprintf(stderr, kUsage, argv[0]);
      std::fprintf(stderr, "grpcxx_interop_client: bad argument \"%s\"\n", a);
      return 2;
    }
  }
  if (port < 0 || test_case.empty()) {
    std::fprintf(stderr, kUsage, argv[0]);
    return 2;
  }
  if (tls.access_token != nullptr && !tls.use_tls) {
    std::fprintf(stderr, "grpcxx_interop_client: --access_token needs "
                         "--use_tls=true (gRPC sends call credentials over "
                         "TLS only)\n");
    return 2;
  }

  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  std::shared_ptr<grpc::ChannelCredentials> creds = MakeCredentials(tls, &args);
  if (!creds)
    return 1;
  Cases cases(grpc::CreateCustomChannel(host + ":" + std::to_string(port),
                                        creds, args));
  const std::vector<std::pair<std::string, std::function<void()>>> all = {
      {"large_unary", [&] { cases.LargeUnary(); }},
      {"client_streaming", [&] { cases.ClientStreaming(); }},
      {"server_streaming", [&] { cases.ServerStreaming(); }},
      {"client_compressed_unary", [&] { cases.ClientCompressedUnary(); }},
      {"server_compressed_unary", [&] { cases.ServerCompressedUnary(); }},
      {"client_compressed_streaming",
       [&] { cases.ClientCompressedStreaming(); }},
      {"server_compressed_streaming",
       [&] { cases.ServerCompressedStreaming(); }},
  };
  int ran = 0, failed = 0;
  for (const auto &c : all) {
    if (test_case != "all" && test_case != c.first)
      continue;
    ran++;
    try {
      c.second();
      std::printf("PASS: %s\n", c.first.c_str());
    } catch (const Failure &f) {
      failed++;
      std::printf("FAIL: %s: %s\n", c.first.c_str(), f.why.c_str());
    }
    std::fflush(stdout);
  }
  if (ran == 0) {
    std::fprintf(stderr, "grpcxx_interop_client: unknown test case \"%s\"\n",
                 test_case.c_str());
    return 2;
  }
  return failed ? 1 : 0;
}
