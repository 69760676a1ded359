// SPDX-License-Identifier: MIT
//
// grpc++'s load client for the benchmark: the same shapes and the same JSON
// line as cgrpc_load_client, so the two compare one for one.
//
//   grpcxx_load_client unary --target=HOST:PORT [--channels=C]
//       [--outstanding=N] [--calls=K | --duration=S [--warmup=S]]
//       [--name=NAME] [--expect=TEXT]
//   grpcxx_load_client stream --target=HOST:PORT --count=K --size=BYTES
//
// unary uses the callback API (stub->async()->SayHello); each completion
// starts the slot's next call.  Every channel gets its own connection
// (a local subchannel pool and a distinct channel argument).  stream is one
// bidi bench.Bench/Stream call on the sync API: a second thread writes
// while this one reads and checks size and order.
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "bench.grpc.pb.h"
#include "helloworld.grpc.pb.h"

namespace {

double now_s() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double cpu_s() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

void sleep_s(double s) {
  std::this_thread::sleep_for(std::chrono::duration<double>(s));
}

std::shared_ptr<grpc::Channel> make_channel(const std::string& target, int i) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt("cgrpc.bench.channel_index", i);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(),
                                   args);
}

// ---- unary ------------------------------------------------------------------

struct UnaryRun {
  helloworld::HelloRequest request;
  std::string expect;
  int64_t total_calls = 0;
  std::atomic<int64_t> issued{0}, done{0}, errors{0};
  std::atomic<bool> stopping{false};
  std::mutex lock;
  std::condition_variable idle;
  int64_t inflight = 0;
};

struct Slot {
  UnaryRun* run;
  helloworld::Greeter::Stub* stub;
  std::unique_ptr<grpc::ClientContext> ctx;
  helloworld::HelloReply reply;
};

void report_error(UnaryRun* run, const std::string& what) {
  if (run->errors.fetch_add(1) < 5)
    std::fprintf(stderr, "grpcxx_load_client: %s\n", what.c_str());
}

void retire(UnaryRun* run) {
  std::lock_guard<std::mutex> g(run->lock);
  if (--run->inflight == 0) run->idle.notify_all();
}

void next(Slot* slot) {
  UnaryRun* run = slot->run;
  if (run->total_calls > 0) {
    if (run->issued.fetch_add(1) >= run->total_calls) return retire(run);
  } else if (run->stopping.load()) {
    return retire(run);
  }
  slot->ctx.reset(new grpc::ClientContext());
  slot->reply.Clear();
  slot->stub->async()->SayHello(
      slot->ctx.get(), &run->request, &slot->reply,
      [slot](grpc::Status status) {
        UnaryRun* r = slot->run;
        if (!status.ok()) {
          report_error(r, "status " + std::to_string(status.error_code()) +
                              ": " + status.error_message());
        } else if (slot->reply.message() != r->expect) {
          report_error(r, "wrong reply: " + slot->reply.message());
        }
        r->done.fetch_add(1);
        next(slot);
      });
}

int run_unary(const std::string& target, int channels, int outstanding,
              int64_t calls, double duration, double warmup,
              const std::string& name, const std::string& expect) {
  UnaryRun run;
  run.request.set_name(name);
  run.expect = expect.empty() ? "Hello, " + name + "!" : expect;
  run.total_calls = calls;
  std::vector<std::shared_ptr<grpc::Channel>> chans;
  std::vector<std::unique_ptr<helloworld::Greeter::Stub>> stubs;
  for (int i = 0; i < channels; i++) {
    chans.push_back(make_channel(target, i));
    stubs.push_back(helloworld::Greeter::NewStub(chans.back()));
  }
  std::vector<Slot> slots(static_cast<size_t>(channels) * outstanding);
  run.inflight = static_cast<int64_t>(slots.size());
  double t0 = now_s(), c0 = cpu_s(), t1 = 0, c1 = 0;
  int64_t d0 = 0, e0 = 0, d1 = 0, e1 = 0;
  for (size_t i = 0; i < slots.size(); i++) {
    slots[i].run = &run;
    slots[i].stub = stubs[i % channels].get();
    next(&slots[i]);
  }
  if (calls <= 0) {
    sleep_s(warmup);
    t0 = now_s();
    c0 = cpu_s();
    d0 = run.done.load();
    e0 = run.errors.load();
    sleep_s(duration);
    t1 = now_s();
    c1 = cpu_s();
    d1 = run.done.load();
    e1 = run.errors.load();
    run.stopping.store(true);
  }
  {
    std::unique_lock<std::mutex> g(run.lock);
    run.idle.wait(g, [&] { return run.inflight == 0; });
  }
  if (calls > 0) {
    t1 = now_s();
    c1 = cpu_s();
    d1 = run.done.load();
    e1 = run.errors.load();
  }
  int64_t n = d1 - d0, all_errors = run.errors.load();
  double secs = t1 - t0, cpu = c1 - c0;
  bool bad = all_errors > 0 || (calls > 0 && d1 != calls);
  std::printf(
      "{\"mode\":\"unary\",\"channels\":%d,\"outstanding\":%d,\"calls\":%lld,"
      "\"errors\":%lld,\"errors_total\":%lld,\"seconds\":%.6f,\"cpu_s\":%.6f,"
      "\"calls_per_s\":%.1f,\"cpu_us_per_call\":%.3f,\"ok\":%s}\n",
      channels, outstanding, static_cast<long long>(n),
      static_cast<long long>(e1 - e0), static_cast<long long>(all_errors),
      secs, cpu, secs > 0 ? n / secs : 0.0, n > 0 ? cpu * 1e6 / n : 0.0,
      bad ? "false" : "true");
  return bad ? 1 : 0;
}

// ---- stream -----------------------------------------------------------------

void put_seq(std::string* s, uint64_t v) {
  for (int i = 0; i < 8; i++) (*s)[i] = static_cast<char>(v >> (8 * i));
}

uint64_t get_seq(const std::string& s) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v |= static_cast<uint64_t>(static_cast<unsigned char>(s[i])) << (8 * i);
  return v;
}

int run_stream(const std::string& target, int64_t count, size_t size) {
  auto channel = make_channel(target, 0);
  auto stub = bench::Bench::NewStub(channel);
  grpc::ClientContext ctx;
  double t0 = now_s(), c0 = cpu_s();
  auto stream = stub->Stream(&ctx);
  bool write_failed = false;
  std::thread writer([&] {
    bench::Chunk chunk;
    std::string* p = chunk.mutable_payload();
    p->resize(size);
    for (size_t i = 0; i < size; i++) (*p)[i] = static_cast<char>(i * 131 + 7);
    for (int64_t i = 0; i < count; i++) {
      put_seq(p, static_cast<uint64_t>(i));
      if (!stream->Write(chunk)) {
        write_failed = true;
        break;
      }
    }
    stream->WritesDone();
  });
  bench::Chunk in;
  int64_t received = 0, bad = 0;
  while (stream->Read(&in)) {
    if (in.payload().size() != size ||
        get_seq(in.payload()) != static_cast<uint64_t>(received)) {
      if (bad++ < 5)
        std::fprintf(stderr, "grpcxx_load_client: message %lld: wrong size "
                     "or order\n", static_cast<long long>(received));
    }
    received++;
  }
  writer.join();
  grpc::Status status = stream->Finish();
  double secs = now_s() - t0, cpu = cpu_s() - c0;
  if (!status.ok())
    std::fprintf(stderr, "grpcxx_load_client: stream ended %d: %s\n",
                 status.error_code(), status.error_message().c_str());
  bool ok = status.ok() && !write_failed && bad == 0 && received == count;
  std::printf(
      "{\"mode\":\"stream\",\"messages\":%lld,\"size\":%zu,\"errors\":%lld,"
      "\"seconds\":%.6f,\"cpu_s\":%.6f,\"msgs_per_s\":%.1f,\"mb_per_s\":%.2f,"
      "\"cpu_us_per_msg\":%.3f,\"ok\":%s}\n",
      static_cast<long long>(received), size,
      static_cast<long long>(bad + (count - received)), secs, cpu,
      secs > 0 ? received / secs : 0.0,
      secs > 0 ? static_cast<double>(received) * size / secs / 1e6 : 0.0,
      received > 0 ? cpu * 1e6 / received : 0.0, ok ? "true" : "false");
  return ok ? 0 : 1;
}

const char* opt(const char* arg, const char* name) {
  size_t n = std::strlen(name);
  return std::strncmp(arg, name, n) == 0 && arg[n] == '=' ? arg + n + 1
                                                            : nullptr;
}

int usage() {
  std::fprintf(stderr,
               "usage: grpcxx_load_client unary --target=HOST:PORT "
               "[--channels=C] [--outstanding=N]\n"
               "           [--calls=K | --duration=S [--warmup=S]] "
               "[--name=NAME] [--expect=TEXT]\n"
               "       grpcxx_load_client stream --target=HOST:PORT --count=K "
               "--size=BYTES\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string target = "localhost:50051", name = "world", expect;
  int channels = 1, outstanding = 1;
  int64_t calls = 0, count = 1000;
  double duration = 0, warmup = 0.5;
  size_t size = 16;
  const char* v;
  if (argc < 2) return usage();
  for (int i = 2; i < argc; i++) {
    if ((v = opt(argv[i], "--target"))) target = v;
    else if ((v = opt(argv[i], "--channels"))) channels = std::atoi(v);
    else if ((v = opt(argv[i], "--outstanding"))) outstanding = std::atoi(v);
    else if ((v = opt(argv[i], "--calls"))) calls = std::strtoll(v, nullptr, 10);
    else if ((v = opt(argv[i], "--duration"))) duration = std::atof(v);
    else if ((v = opt(argv[i], "--warmup"))) warmup = std::atof(v);
    else if ((v = opt(argv[i], "--name"))) name = v;
    else if ((v = opt(argv[i], "--expect"))) expect = v;
    else if ((v = opt(argv[i], "--count"))) count = std::strtoll(v, nullptr, 10);
    else if ((v = opt(argv[i], "--size"))) size = std::strtoull(v, nullptr, 10);
    else return usage();
  }
  if (std::strcmp(argv[1], "unary") == 0) {
    if (channels < 1 || outstanding < 1 || (calls <= 0 && duration <= 0))
      return usage();
    return run_unary(target, channels, outstanding, calls, duration, warmup,
                     name, expect);
  }
  if (std::strcmp(argv[1], "stream") == 0) {
    if (count < 1 || size < 8) return usage();
    return run_stream(target, count, size);
  }
  return usage();
}
