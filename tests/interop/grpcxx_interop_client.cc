// SPDX-License-Identifier: MIT
//
// A grpc++ client of grpc.testing.TestService that runs cases of gRPC's
// interop test descriptions, the compression ones as grpc++'s own interop
// client does (test/cpp/interop/interop_client.cc in grpc/grpc): the
// feature probes, per-message compression with WriteOptions, and the
// compressed flag of each response (grpcxx_interop.h).
//
//   grpcxx_interop_client --server_host=H --server_port=N --test_case=NAME
//                         [--use_tls=false]
//
// Cases: large_unary client_streaming server_streaming
// client_compressed_unary server_compressed_unary client_compressed_streaming
// server_compressed_streaming, and "all".  Prints "PASS: case" or
// "FAIL: case: why" per case; exits 0 when every case passed, 1 otherwise,
// 2 on usage errors.  Every call has a 20 s deadline.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

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

void ExpectCode(const Status &st, StatusCode want, const std::string &what) {
  Expect(st.error_code() == want,
         what + ": got code " + std::to_string(st.error_code()) + " (\"" +
             st.error_message() + "\"), want " + std::to_string(want));
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
    for (int size : {27182, 8, 1828, 45904}) {
      StreamingInputCallRequest req;
      req.mutable_payload()->set_body(std::string(size, '\0'));
      Expect(writer->Write(req), "a write failed");
    }
    writer->WritesDone();
    ExpectCode(writer->Finish(), StatusCode::OK, "StreamingInputCall");
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

} // namespace

int main(int argc, char **argv) {
  std::string host = "localhost", test_case;
  long port = -1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (std::strncmp(a, "--server_host=", 14) == 0) {
      host = a + 14;
    } else if (std::strncmp(a, "--server_port=", 14) == 0) {
      port = std::strtol(a + 14, nullptr, 10);
    } else if (std::strncmp(a, "--test_case=", 12) == 0) {
      test_case = a + 12;
    } else if (std::strcmp(a, "--use_tls=false") == 0) {
    } else {
      std::fprintf(stderr, "grpcxx_interop_client: bad argument \"%s\"\n", a);
      return 2;
    }
  }
  if (port <= 0 || port > 65535 || test_case.empty()) {
    std::fprintf(stderr,
                 "usage: %s --server_host=H --server_port=N --test_case=NAME "
                 "[--use_tls=false]\n",
                 argv[0]);
    return 2;
  }

  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  Cases cases(grpc::CreateCustomChannel(host + ":" + std::to_string(port),
                                        grpc::InsecureChannelCredentials(),
                                        args));
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
