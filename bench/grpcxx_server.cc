// SPDX-License-Identifier: MIT
//
// The grpc++ side of the benchmark: helloworld.Greeter and bench.Bench on
// grpc++'s callback API (grpc::CallbackService), as grpc++'s own examples
// write them.
//
//   grpcxx_server [--port=N] [--bench]      (port 0 picks one)
//                 [--tls_cert_file=F --tls_key_file=F [--client_ca_file=F]]
//
// --bench adds the bench.Bench bidi echo service.  The TLS flags are
// greeter_server's: with a certificate and key the port is TLS
// (grpc::SslServerCredentials); --client_ca_file then requires client
// certificates signed by those CAs (mutual TLS).  When a SayHello request
// carries the header "bench-tls-info" (the load clients send it over TLS),
// the reply's headers say whether the client resumed a TLS session
// (bench-tls-reused "1" or "0", from the call's auth context); grpc++
// does not tell a handler the protocol version or cipher, so
// cgrpc_bench_server's bench-tls-version and bench-tls-cipher are missing.
// Prints "Server started, listening on PORT" and stops on SIGINT or
// SIGTERM.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <grpc/grpc_security_constants.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>

#include "bench.grpc.pb.h"
#include "helloworld.grpc.pb.h"

namespace {

// The reply headers for "bench-tls-info" (nothing on plaintext).
void AddTlsInfo(grpc::CallbackServerContext* ctx) {
  if (ctx->client_metadata().find("bench-tls-info") ==
      ctx->client_metadata().end())
    return;
  std::shared_ptr<const grpc::AuthContext> auth = ctx->auth_context();
  if (!auth || auth->FindPropertyValues(
                       GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME).empty())
    return;
  std::vector<grpc::string_ref> reused =
      auth->FindPropertyValues(GRPC_SSL_SESSION_REUSED_PROPERTY);
  ctx->AddInitialMetadata(
      "bench-tls-reused",
      !reused.empty() && reused[0] == grpc::string_ref("true") ? "1" : "0");
}

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::ostringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return !f.bad();
}

class GreeterImpl final : public helloworld::Greeter::CallbackService {
  grpc::ServerUnaryReactor* SayHello(grpc::CallbackServerContext* ctx,
                                     const helloworld::HelloRequest* request,
                                     helloworld::HelloReply* reply) override {
    AddTlsInfo(ctx);
    reply->set_message("Hello, " + request->name() + "!");
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  grpc::ServerUnaryReactor* SayHelloAgain(
      grpc::CallbackServerContext* ctx, const helloworld::HelloRequest* request,
      helloworld::HelloReply* reply) override {
    reply->set_message("Hello again, " + request->name() + "!");
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

// Reads one message, writes it back, reads the next: one in flight.
class Echo final : public grpc::ServerBidiReactor<bench::Chunk, bench::Chunk> {
 public:
  Echo() { StartRead(&msg_); }
  void OnReadDone(bool ok) override {
    if (!ok) {  // the client half-closed (or went away)
      Finish(grpc::Status::OK);
      return;
    }
    StartWrite(&msg_);
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
      return;
    }
    StartRead(&msg_);
  }
  void OnDone() override { delete this; }

 private:
  bench::Chunk msg_;
};

class BenchImpl final : public bench::Bench::CallbackService {
  grpc::ServerBidiReactor<bench::Chunk, bench::Chunk>* Stream(
      grpc::CallbackServerContext*) override {
    return new Echo();
  }
};

}  // namespace

int main(int argc, char** argv) {
  int port = 50071;
  bool with_bench = false;
  const char *cert_file = nullptr, *key_file = nullptr, *ca_file = nullptr;
  for (int i = 1; i < argc; i++) {
    if (std::strncmp(argv[i], "--port=", 7) == 0) {
      port = std::atoi(argv[i] + 7);
    } else if (std::strcmp(argv[i], "--bench") == 0) {
      with_bench = true;
    } else if (std::strncmp(argv[i], "--tls_cert_file=", 16) == 0) {
      cert_file = argv[i] + 16;
    } else if (std::strncmp(argv[i], "--tls_key_file=", 15) == 0) {
      key_file = argv[i] + 15;
    } else if (std::strncmp(argv[i], "--client_ca_file=", 17) == 0) {
      ca_file = argv[i] + 17;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--port=N] [--bench] [--tls_cert_file=F "
                   "--tls_key_file=F [--client_ca_file=F]]\n",
                   argv[0]);
      return 2;
    }
  }

  std::shared_ptr<grpc::ServerCredentials> creds =
      grpc::InsecureServerCredentials();
  if (cert_file || key_file || ca_file) {
    if (!cert_file || !key_file) {
      std::fprintf(stderr,
                   "grpcxx_server: TLS flags: a certificate needs its key, "
                   "and client CAs need both\n");
      return 2;
    }
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    std::string ca;
    if (!ReadFile(key_file, &pair.private_key) ||
        !ReadFile(cert_file, &pair.cert_chain) ||
        (ca_file && !ReadFile(ca_file, &ca))) {
      std::fprintf(stderr, "grpcxx_server: cannot read %s, %s%s%s\n",
                   cert_file, key_file, ca_file ? " or " : "",
                   ca_file ? ca_file : "");
      return 2;
    }
    grpc::SslServerCredentialsOptions opts(
        ca_file ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    opts.pem_root_certs = ca;
    opts.pem_key_cert_pairs.push_back(pair);
    creds = grpc::SslServerCredentials(opts);
  }

  // Block the stop signals in every thread grpc++ starts; main waits below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  GreeterImpl greeter;
  BenchImpl bench_service;
  grpc::ServerBuilder builder;
  int bound = 0;
  builder.AddListeningPort("[::]:" + std::to_string(port),
                           creds, &bound);
  builder.RegisterService(&greeter);
  if (with_bench) builder.RegisterService(&bench_service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || bound == 0) {
    std::fprintf(stderr, "grpcxx_server: could not listen on port %d\n", port);
    return 1;
  }
  std::printf("Server started, listening on %d\n", bound);
  std::fflush(stdout);

  int sig;
  sigwait(&stop_signals, &sig);
  server->Shutdown();
  return 0;
}
