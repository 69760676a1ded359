// SPDX-License-Identifier: MIT
//
// A grpc++ cgrpc.test.StreamService server (protos/test/stream.proto) that
// fails the first attempts of each call, for the retry interop test
// (run_retry_interop.py, gRFC A6):
//
//   grpcxx_retry_server --port=N
//
// Serves on 127.0.0.1:N (0: a free port), prints "listening on PORT", and
// runs until SIGTERM or SIGINT.  Each call says what it wants in its request
// metadata:
//
//   x-retry-key          the call's key (default ""); attempts are counted
//                        per key, so that independent calls do not interfere
//   x-retry-fail-first   how many attempts of the key fail (default 0)
//   x-retry-code         with this status code (default 14, UNAVAILABLE)
//   x-retry-pushback-ms  sent back as trailing metadata grpc-retry-pushback-ms
//                        with each failure (absent: none)
//
//   x-retry-fail-after   streaming methods only: a failing attempt first
//                        sends its response headers ("headers"; Upload:
//                        any value), or reads and answers one message
//                        ("message": Download sends one chunk, Chat echoes
//                        one), which commits the call (gRFC A6)
//
// Otherwise a failing attempt returns its status from the handler before
// reading any request or writing anything, so grpc++ answers Trailers-Only
// (one HEADERS frame with END_STREAM and no response headers before it).  Every
// attempt, failing or not, prints one line before its handler returns:
//
//   attempt method=M key=K n=N previous=P t_ms=T code=C
//
// |n| is the key's attempt count (1 for the first), |previous| the value of
// the grpc-previous-rpc-attempts header the attempt came with ("-": none),
// |t_ms| milliseconds since the server started (steady clock), |code| the
// status the attempt ends with (0: it goes on to answer).  The answers of
// attempts that do not fail: Unary echoes its chunk; Download sends |count|
// chunks of |size| bytes (seq 0, 1, ...); Upload reads every chunk and
// answers their count, bytes, byte sum and last seq; Chat echoes each chunk.
#include <signal.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <grpcpp/grpcpp.h>

#include "grpcxx_interop.h"
#include "stream.grpc.pb.h"

using cgrpc::test::Chunk;
using cgrpc::test::DownloadRequest;
using cgrpc::test::StreamService;
using cgrpc::test::UploadSummary;

namespace {

const auto kStart = std::chrono::steady_clock::now();

// The value of request metadata |key| of |ctx|, or |def| when absent.
std::string Metadata(const grpc::ServerContext *ctx, const char *key,
                     const std::string &def) {
  auto it = ctx->client_metadata().find(key);
  if (it == ctx->client_metadata().end())
    return def;
  return std::string(it->second.data(), it->second.size());
}

// Sends the response headers ahead of a failure, so that they commit the
// call. They carry a key of their own: with nothing but the defaults in them,
// gRPC's transport folds headers still unwritten when the status comes into
// a Trailers-Only answer, which the client may retry.
template <typename Stream>
void SendHeaders(grpc::ServerContext *ctx, Stream *stream) {
  ctx->AddInitialMetadata("x-retry-committed", "headers");
  stream->SendInitialMetadata();
}

// A decimal integer in [|min|, |max|], or |def| for anything else.
long ToLong(const std::string &s, long min, long max, long def) {
  char *end;
  long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || v < min || v > max)
    return def;
  return v;
}

class RetryImpl final : public StreamService::Service {
public:
  grpc::Status Unary(grpc::ServerContext *ctx, const Chunk *req,
                     Chunk *reply) override {
    grpc::Status st;
    if (Fail(ctx, "Unary", &st))
      return st;
    *reply = *req;
    return grpc::Status::OK;
  }

  grpc::Status Download(grpc::ServerContext *ctx, const DownloadRequest *req,
                        grpc::ServerWriter<Chunk> *writer) override {
    grpc::Status st;
    bool fail = Fail(ctx, "Download", &st);
    std::string after = Metadata(ctx, "x-retry-fail-after", "");
    if (fail && after == "headers")
      SendHeaders(ctx, writer);
    for (int32_t i = 0; i < req->count() && (!fail || after == "message");
         i++) {
      Chunk c;
      c.set_seq(i);
      c.set_data(std::string(static_cast<size_t>(req->size()), 'd'));
      if (!writer->Write(c))
        return grpc::Status(grpc::StatusCode::ABORTED, "write failed");
      if (fail)
        break;
    }
    return st;
  }

  grpc::Status Upload(grpc::ServerContext *ctx,
                      grpc::ServerReader<Chunk> *reader,
                      UploadSummary *reply) override {
    grpc::Status st;
    if (Fail(ctx, "Upload", &st)) {
      if (Metadata(ctx, "x-retry-fail-after", "") != "")
        SendHeaders(ctx, reader);
      return st;
    }
    Chunk c;
    uint64_t sum = 0;
    int64_t count = 0, bytes = 0;
    while (reader->Read(&c)) {
      count++;
      bytes += static_cast<int64_t>(c.data().size());
      for (unsigned char b : c.data())
        sum += b;
      reply->set_last_seq(c.seq());
    }
    reply->set_count(count);
    reply->set_bytes(bytes);
    reply->set_sum(sum);
    return grpc::Status::OK;
  }

  grpc::Status Chat(grpc::ServerContext *ctx,
                    grpc::ServerReaderWriter<Chunk, Chunk> *stream) override {
    grpc::Status st;
    bool fail = Fail(ctx, "Chat", &st);
    std::string after = Metadata(ctx, "x-retry-fail-after", "");
    if (fail && after == "headers")
      SendHeaders(ctx, stream);
    if (fail && after != "message")
      return st;
    Chunk c;
    while (stream->Read(&c)) {
      if (!stream->Write(c))
        return grpc::Status(grpc::StatusCode::ABORTED, "write failed");
      if (fail)
        break;
    }
    return st;
  }

private:
  // Counts the attempt and prints its line.  True, with the status in
  // |*st| (and the pushback added to the trailers), when it is to fail.
  bool Fail(grpc::ServerContext *ctx, const char *method, grpc::Status *st) {
    std::string key = Metadata(ctx, "x-retry-key", "");
    long fail_first =
        ToLong(Metadata(ctx, "x-retry-fail-first", "0"), 0, 1000000, 0);
    long code = ToLong(Metadata(ctx, "x-retry-code", "14"), 1, 16, 14);
    auto pushback = ctx->client_metadata().find("x-retry-pushback-ms");
    std::string previous = Metadata(ctx, "grpc-previous-rpc-attempts", "-");
    long t_ms =
        static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - kStart)
                              .count());
    long n;
    {
      std::lock_guard<std::mutex> lock(mu_);
      n = ++attempts_[key];
      bool fail = n <= fail_first;
      // One line at a time, and out before the client can see the answer.
      std::printf("attempt method=%s key=%s n=%ld previous=%s t_ms=%ld "
                  "code=%ld\n",
                  method, key.c_str(), n, previous.c_str(), t_ms,
                  fail ? code : 0L);
      std::fflush(stdout);
      if (!fail)
        return false;
    }
    if (pushback != ctx->client_metadata().end())
      ctx->AddTrailingMetadata(
          "grpc-retry-pushback-ms",
          std::string(pushback->second.data(), pushback->second.size()));
    *st =
        grpc::Status(static_cast<grpc::StatusCode>(code),
                     "failing on purpose (attempt " + std::to_string(n) + ")");
    return true;
  }

  std::mutex mu_;
  std::map<std::string, long> attempts_;
};

} // namespace

int main(int argc, char **argv) {
  long port = -1;
  for (int i = 1; i < argc; i++) {
    const char *v = grpcxx_interop::FlagValue(argv[i], "port");
    if (v == nullptr || !grpcxx_interop::ParsePort(v, 0, &port)) {
      std::fprintf(stderr, "usage: %s --port=N\n", argv[0]);
      return 2;
    }
  }
  if (port < 0) {
    std::fprintf(stderr, "usage: %s --port=N\n", argv[0]);
    return 2;
  }
  // grpc++'s threads inherit the mask: only sigwait() below sees these.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  RetryImpl service;
  grpc::ServerBuilder builder;
  int bound = 0;
  builder.AddListeningPort("127.0.0.1:" + std::to_string(port),
                           grpc::InsecureServerCredentials(), &bound);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || bound == 0) {
    std::fprintf(stderr, "grpcxx_retry_server: cannot serve on port %ld\n",
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
