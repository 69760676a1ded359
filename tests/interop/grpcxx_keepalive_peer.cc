// SPDX-License-Identifier: MIT
//
// A grpc++ peer of cgrpc.test.EchoService (protos/test/echo.proto) for the
// keepalive interop tests (run_keepalive_interop.py): a server with grpc++'s
// ping policy channel arguments, or a client with its keepalive ones.
//
//   grpcxx_keepalive_peer --server --port=N
//       [--min_recv_ping_interval_without_data_ms=N] [--max_ping_strikes=N]
//       [--keepalive_permit_without_calls=0|1]
//
//     Echo answers |message| after sleeping |sleep_ms|.  Serves on
//     127.0.0.1:N (0: a free port), prints "listening on PORT", and runs
//     until SIGTERM or SIGINT.  Unset arguments keep grpc++'s defaults
//     (5 minutes, 2 strikes, no pings without calls).
//
//   grpcxx_keepalive_peer --client --target=HOST:PORT
//       --keepalive_time_ms=N [--keepalive_timeout_ms=N]
//       [--keepalive_permit_without_calls=0|1] [--max_pings_without_data=N]
//       [--busy_ms=N] --idle_ms=N --expect_goaway=true|false
//
//     An Echo; with --busy_ms an Echo that sleeps that long on the server
//     (pings with a call in flight); then, with no call, waits for the
//     channel to leave READY (the connection ended: a GOAWAY) for at most
//     --idle_ms; then a last Echo.  --expect_goaway=true: the channel must
//     have left READY; false: it must have stayed READY all along.  Prints
//     PASS/FAIL lines; exits 0 when every call succeeded and the channel
//     did what was expected, 1 otherwise, 2 on usage errors.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "echo.grpc.pb.h"
#include "grpcxx_interop.h"

using cgrpc::test::EchoReply;
using cgrpc::test::EchoRequest;
using cgrpc::test::EchoService;
using grpcxx_interop::FlagValue;

namespace {

class EchoImpl final : public EchoService::Service {
  grpc::Status Echo(grpc::ServerContext *, const EchoRequest *req,
                    EchoReply *reply) override {
    if (req->sleep_ms() > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(req->sleep_ms()));
    reply->set_message(req->message());
    return grpc::Status::OK;
  }
};

// A decimal integer in [|min|, |max|] into |*out|; false for anything else.
bool ParseInt(const char *value, long min, long max, long *out) {
  char *end;
  long v = std::strtol(value, &end, 10);
  if (end == value || *end != '\0' || v < min || v > max)
    return false;
  *out = v;
  return true;
}

// -1: not given on the command line.
struct Flags {
  bool server = false, client = false;
  long port = -1;
  const char *target = nullptr;
  long min_recv_ping_interval_ms = -1, max_ping_strikes = -1;
  long permit_without_calls = -1, max_pings_without_data = -1;
  long keepalive_time_ms = -1, keepalive_timeout_ms = -1;
  long busy_ms = 0, idle_ms = -1;
  bool expect_goaway = false, expect_goaway_set = false;
};

const char kUsage[] =
    "usage: %s --server --port=N "
    "[--min_recv_ping_interval_without_data_ms=N] [--max_ping_strikes=N] "
    "[--keepalive_permit_without_calls=0|1]\n"
    "       %s --client --target=HOST:PORT --keepalive_time_ms=N "
    "[--keepalive_timeout_ms=N] [--keepalive_permit_without_calls=0|1] "
    "[--max_pings_without_data=N] [--busy_ms=N] --idle_ms=N "
    "--expect_goaway=true|false\n";

bool ParseFlag(const char *a, Flags *f) {
  const long kMax = 3600 * 1000;
  const char *v;
  if (std::string(a) == "--server")
    return f->server = true;
  if (std::string(a) == "--client")
    return f->client = true;
  if ((v = FlagValue(a, "port")) != nullptr)
    return grpcxx_interop::ParsePort(v, 0, &f->port);
  if ((v = FlagValue(a, "target")) != nullptr)
    return *(f->target = v) != '\0';
  if ((v = FlagValue(a, "min_recv_ping_interval_without_data_ms")) != nullptr)
    return ParseInt(v, 0, kMax, &f->min_recv_ping_interval_ms);
  if ((v = FlagValue(a, "max_ping_strikes")) != nullptr)
    return ParseInt(v, 0, 1000, &f->max_ping_strikes);
  if ((v = FlagValue(a, "keepalive_permit_without_calls")) != nullptr)
    return ParseInt(v, 0, 1, &f->permit_without_calls);
  if ((v = FlagValue(a, "max_pings_without_data")) != nullptr)
    return ParseInt(v, 0, 1000, &f->max_pings_without_data);
  if ((v = FlagValue(a, "keepalive_time_ms")) != nullptr)
    return ParseInt(v, 1, kMax, &f->keepalive_time_ms);
  if ((v = FlagValue(a, "keepalive_timeout_ms")) != nullptr)
    return ParseInt(v, 1, kMax, &f->keepalive_timeout_ms);
  if ((v = FlagValue(a, "busy_ms")) != nullptr)
    return ParseInt(v, 0, 60000, &f->busy_ms);
  if ((v = FlagValue(a, "idle_ms")) != nullptr)
    return ParseInt(v, 0, 600000, &f->idle_ms);
  if ((v = FlagValue(a, "expect_goaway")) != nullptr)
    return f->expect_goaway_set =
               grpcxx_interop::ParseBool(v, &f->expect_goaway);
  return false;
}

int RunServer(const Flags &f) {
  // grpc++'s threads inherit the mask: only sigwait() below sees these.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  EchoImpl service;
  grpc::ServerBuilder builder;
  if (f.min_recv_ping_interval_ms >= 0)
    builder.AddChannelArgument(
        GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
        static_cast<int>(f.min_recv_ping_interval_ms));
  if (f.max_ping_strikes >= 0)
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES,
                               static_cast<int>(f.max_ping_strikes));
  if (f.permit_without_calls >= 0)
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS,
                               static_cast<int>(f.permit_without_calls));
  int bound = 0;
  builder.AddListeningPort("127.0.0.1:" + std::to_string(f.port),
                           grpc::InsecureServerCredentials(), &bound);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || bound == 0) {
    std::fprintf(stderr, "grpcxx_keepalive_peer: cannot serve on port %ld\n",
                 f.port);
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

bool Echo(EchoService::Stub *stub, const char *what, long sleep_ms) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(10000 + sleep_ms));
  EchoRequest req;
  EchoReply reply;
  req.set_message("keepalive");
  req.set_sleep_ms(static_cast<int32_t>(sleep_ms));
  grpc::Status st = stub->Echo(&ctx, req, &reply);
  bool ok = st.ok() && reply.message() == "keepalive";
  std::printf("%s: %s: code %d %s\n", ok ? "PASS" : "FAIL", what,
              static_cast<int>(st.error_code()), st.error_message().c_str());
  std::fflush(stdout);
  return ok;
}

int RunClient(const Flags &f) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS,
              static_cast<int>(f.keepalive_time_ms));
  if (f.keepalive_timeout_ms > 0)
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                static_cast<int>(f.keepalive_timeout_ms));
  if (f.permit_without_calls >= 0)
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS,
                static_cast<int>(f.permit_without_calls));
  if (f.max_pings_without_data >= 0)
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA,
                static_cast<int>(f.max_pings_without_data));
  args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  std::shared_ptr<grpc::Channel> ch = grpc::CreateCustomChannel(
      f.target, grpc::InsecureChannelCredentials(), args);
  std::unique_ptr<EchoService::Stub> stub = EchoService::NewStub(ch);

  bool ok = Echo(stub.get(), "an Echo", 0);
  if (f.busy_ms > 0)
    ok &= Echo(stub.get(), "an Echo sleeping on the server", f.busy_ms);
  bool ready = ch->GetState(false) == GRPC_CHANNEL_READY;
  std::printf("%s: channel READY after the calls\n", ready ? "PASS" : "FAIL");
  ok &= ready;
  // Returns false at the deadline if the state is still READY.
  auto start = std::chrono::steady_clock::now();
  bool left =
      ready && ch->WaitForStateChange(GRPC_CHANNEL_READY,
                                      std::chrono::system_clock::now() +
                                          std::chrono::milliseconds(f.idle_ms));
  long waited =
      static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - start)
                            .count());
  if (left)
    std::printf("%s: channel left READY while idle (after %ld ms)\n",
                f.expect_goaway ? "PASS" : "FAIL", waited);
  else
    std::printf("%s: channel stayed READY while idle (%ld ms)\n",
                f.expect_goaway ? "FAIL" : "PASS", waited);
  ok &= left == f.expect_goaway;
  ok &= Echo(stub.get(), "an Echo after the idle time", 0);
  return ok ? 0 : 1;
}

} // namespace

int main(int argc, char **argv) {
  Flags f;
  for (int i = 1; i < argc; i++) {
    if (!ParseFlag(argv[i], &f)) {
      std::fprintf(stderr, kUsage, argv[0], argv[0]);
      std::fprintf(stderr, "grpcxx_keepalive_peer: bad argument \"%s\"\n",
                   argv[i]);
      return 2;
    }
  }
  const char *misuse = nullptr;
  if (f.server == f.client)
    misuse = "one of --server and --client";
  else if (f.server && f.port < 0)
    misuse = "--server needs --port";
  else if (f.client && (f.target == nullptr || f.keepalive_time_ms < 0 ||
                        f.idle_ms < 0 || !f.expect_goaway_set))
    misuse = "--client needs --target, --keepalive_time_ms, --idle_ms and "
             "--expect_goaway";
  if (misuse != nullptr) {
    std::fprintf(stderr, kUsage, argv[0], argv[0]);
    std::fprintf(stderr, "grpcxx_keepalive_peer: %s\n", misuse);
    return 2;
  }
  return f.server ? RunServer(f) : RunClient(f);
}
