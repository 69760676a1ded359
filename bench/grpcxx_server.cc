// SPDX-License-Identifier: MIT
//
// The grpc++ side of the benchmark: helloworld.Greeter and bench.Bench on
// grpc++'s callback API (grpc::CallbackService), as grpc++'s own examples
// write them.
//
//   grpcxx_server [--port=N] [--bench]      (port 0 picks one)
//
// --bench adds the bench.Bench bidi echo service.  Prints
// "Server started, listening on PORT" and stops on SIGINT or SIGTERM.
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "bench.grpc.pb.h"
#include "helloworld.grpc.pb.h"

namespace {

class GreeterImpl final : public helloworld::Greeter::CallbackService {
  grpc::ServerUnaryReactor* SayHello(grpc::CallbackServerContext* ctx,
                                     const helloworld::HelloRequest* request,
                                     helloworld::HelloReply* reply) override {
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
  for (int i = 1; i < argc; i++) {
    if (std::strncmp(argv[i], "--port=", 7) == 0) {
      port = std::atoi(argv[i] + 7);
    } else if (std::strcmp(argv[i], "--bench") == 0) {
      with_bench = true;
    } else {
      std::fprintf(stderr, "usage: %s [--port=N] [--bench]\n", argv[0]);
      return 2;
    }
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
                           grpc::InsecureServerCredentials(), &bound);
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
