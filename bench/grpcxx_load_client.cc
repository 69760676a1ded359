// SPDX-License-Identifier: MIT
//
// grpc++'s load client for the benchmark: the same shapes, flags and JSON
// line as cgrpc_load_client, so the two compare one for one.
//
//   grpcxx_load_client unary --target=HOST:PORT [--channels=C]
//       [--outstanding=N] [--calls=K | --duration=S [--warmup=S]]
//       [--name=NAME] [--expect=TEXT] [--channel_per_call | --blocking]
//       [TLS flags]
//   grpcxx_load_client stream --target=HOST:PORT --count=K --size=BYTES
//       [TLS flags]
//
//   TLS flags: --ca_file=F [--server_host_override=NAME]
//              [--client_cert_file=F --client_key_file=F] [--session_cache]
//
// unary uses the callback API (stub->async()->SayHello); each completion
// starts the slot's next call.  Every channel gets its own connection
// (a local subchannel pool and a distinct channel argument).  stream is one
// bidi bench.Bench/Stream call on the sync API: a second thread writes
// while this one reads and checks size and order.
//
// --blocking: N threads per channel instead of N slots, each making calls
// one after another on the sync API (stub->SayHello).
//
// --channel_per_call: a new connection per call instead.  N threads each
// make their calls one after another on the sync API, each on a new
// channel with its own subchannel pool ("grpc.use_local_subchannel_pool"),
// so no connection is shared; --channels must be 1.
//
// TLS: grpc::SslCredentials with the PEM contents of the files, and
// "grpc.ssl_target_name_override" for --server_host_override.
// --session_cache shares one grpc_ssl_session_cache (C-core's LRU, channel
// argument GRPC_SSL_SESSION_CACHE_ARG) among all the channels.  Over TLS
// each unary call asks the server for its view ("bench-tls-info"; see
// cgrpc_bench_server and grpcxx_server) and the JSON line counts the
// answers ("server_resumed" of "server_tls_info"), and the client's own
// view from the call's auth context ("client_resumed": calls whose
// connection resumed a session, as grpc++ saw it).
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpc/grpc_security.h>
#include <grpc/grpc_security_constants.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>

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

// ---- channels ---------------------------------------------------------------

struct Tls {
  bool on = false;
  std::string host_override;
  grpc::SslCredentialsOptions pem;
  grpc_ssl_session_cache* cache = nullptr;  // --session_cache
};

bool read_file(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::ostringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return !f.bad();
}

std::shared_ptr<grpc::Channel> make_channel(const std::string& target, int i,
                                            const Tls& tls) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt("cgrpc.bench.channel_index", i);
  if (!tls.on)
    return grpc::CreateCustomChannel(
        target, grpc::InsecureChannelCredentials(), args);
  if (!tls.host_override.empty())
    args.SetSslTargetNameOverride(tls.host_override);
  if (tls.cache) {
    // The cache's own vtable: each copy of the argument holds a reference.
    grpc_arg arg = grpc_ssl_session_cache_create_channel_arg(tls.cache);
    args.SetPointerWithVtable(arg.key, arg.value.pointer.p,
                              arg.value.pointer.vtable);
  }
  return grpc::CreateCustomChannel(target, grpc::SslCredentials(tls.pem),
                                   args);
}

// ---- unary ------------------------------------------------------------------

struct UnaryRun {
  helloworld::HelloRequest request;
  std::string expect;
  std::string target;
  const Tls* tls = nullptr;
  int64_t total_calls = 0;
  std::atomic<int64_t> issued{0}, done{0}, errors{0};
  std::atomic<bool> stopping{false};
  std::mutex lock;
  std::condition_variable idle;
  int64_t inflight = 0;
  // The TLS views (see the top comment).
  std::atomic<int64_t> server_info{0}, server_resumed{0}, client_resumed{0};
  std::mutex info_lock;
  std::string version, cipher;  // the first reported, guarded by info_lock
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

// Whether another call may start (see cgrpc_load_client's take_call).
bool take_call(UnaryRun* run) {
  if (run->total_calls > 0) return run->issued.fetch_add(1) < run->total_calls;
  return !run->stopping.load();
}

void prepare(UnaryRun* run, grpc::ClientContext* ctx) {
  if (run->tls->on) ctx->AddMetadata("bench-tls-info", "1");
}

// Checks one call's outcome, counts the TLS views and the call done.
void check(UnaryRun* run, const grpc::Status& status,
           const helloworld::HelloReply& reply, grpc::ClientContext* ctx) {
  if (!status.ok()) {
    report_error(run, "status " + std::to_string(status.error_code()) + ": " +
                          status.error_message());
  } else if (reply.message() != run->expect) {
    report_error(run, "wrong reply: " + reply.message());
  } else if (run->tls->on) {
    const auto& md = ctx->GetServerInitialMetadata();
    auto it = md.find("bench-tls-reused");
    if (it != md.end()) {
      run->server_info.fetch_add(1);
      if (it->second == grpc::string_ref("1")) run->server_resumed.fetch_add(1);
      auto v = md.find("bench-tls-version"), c = md.find("bench-tls-cipher");
      std::lock_guard<std::mutex> g(run->info_lock);
      if (v != md.end() && run->version.empty())
        run->version.assign(v->second.data(), v->second.size());
      if (c != md.end() && run->cipher.empty())
        run->cipher.assign(c->second.data(), c->second.size());
    }
    std::shared_ptr<const grpc::AuthContext> auth = ctx->auth_context();
    if (auth) {
      std::vector<grpc::string_ref> v =
          auth->FindPropertyValues(GRPC_SSL_SESSION_REUSED_PROPERTY);
      if (!v.empty() && v[0] == grpc::string_ref("true"))
        run->client_resumed.fetch_add(1);
    }
  }
  run->done.fetch_add(1);
}

void next(Slot* slot) {
  UnaryRun* run = slot->run;
  if (!take_call(run)) return retire(run);
  slot->ctx.reset(new grpc::ClientContext());
  prepare(run, slot->ctx.get());
  slot->reply.Clear();
  slot->stub->async()->SayHello(
      slot->ctx.get(), &run->request, &slot->reply,
      [slot](grpc::Status status) {
        check(slot->run, status, slot->reply, slot->ctx.get());
        next(slot);
      });
}

// --channel_per_call: one of the N threads; each call on a channel (and a
// subchannel pool, so a connection) of its own, dropped after the call.
void percall_thread(UnaryRun* run) {
  while (take_call(run)) {
    std::shared_ptr<grpc::Channel> channel =
        make_channel(run->target, 0, *run->tls);
    std::unique_ptr<helloworld::Greeter::Stub> stub =
        helloworld::Greeter::NewStub(channel);
    grpc::ClientContext ctx;
    helloworld::HelloReply reply;
    prepare(run, &ctx);
    grpc::Status status = stub->SayHello(&ctx, run->request, &reply);
    check(run, status, reply, &ctx);
  }
  retire(run);
}

// --blocking: one of the N threads of a channel, on the sync API.
void blocking_thread(UnaryRun* run, helloworld::Greeter::Stub* stub) {
  while (take_call(run)) {
    grpc::ClientContext ctx;
    helloworld::HelloReply reply;
    prepare(run, &ctx);
    grpc::Status status = stub->SayHello(&ctx, run->request, &reply);
    check(run, status, reply, &ctx);
  }
  retire(run);
}

int run_unary(const std::string& target, const Tls& tls, int channels,
              int outstanding, bool per_call, bool blocking, int64_t calls,
              double duration,
              double warmup, const std::string& name,
              const std::string& expect) {
  UnaryRun run;
  run.request.set_name(name);
  run.expect = expect.empty() ? "Hello, " + name + "!" : expect;
  run.target = target;
  run.tls = &tls;
  run.total_calls = calls;
  std::vector<std::shared_ptr<grpc::Channel>> chans;
  std::vector<std::unique_ptr<helloworld::Greeter::Stub>> stubs;
  std::vector<std::thread> threads;
  if (!per_call) {
    for (int i = 0; i < channels; i++) {
      chans.push_back(make_channel(target, i, tls));
      stubs.push_back(helloworld::Greeter::NewStub(chans.back()));
    }
  }
  std::vector<Slot> slots(per_call ? 0
                                   : static_cast<size_t>(channels) *
                                         outstanding);
  run.inflight = per_call ? outstanding : static_cast<int64_t>(slots.size());
  double t0 = now_s(), c0 = cpu_s(), t1 = 0, c1 = 0;
  int64_t d0 = 0, e0 = 0, d1 = 0, e1 = 0;
  if (per_call) {
    for (int i = 0; i < outstanding; i++)
      threads.emplace_back(percall_thread, &run);
  } else if (blocking) {
    for (size_t i = 0; i < slots.size(); i++)
      threads.emplace_back(blocking_thread, &run, stubs[i % channels].get());
  } else {
    for (size_t i = 0; i < slots.size(); i++) {
      slots[i].run = &run;
      slots[i].stub = stubs[i % channels].get();
      next(&slots[i]);
    }
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
  for (std::thread& t : threads) t.join();
  int64_t n = d1 - d0, all_errors = run.errors.load();
  double secs = t1 - t0, cpu = c1 - c0;
  bool bad = all_errors > 0 || (calls > 0 && d1 != calls);
  // The strings come from the bench servers: no quotes or backslashes.
  auto json_str = [](const std::string& v) {
    return v.empty() ? std::string("null") : "\"" + v + "\"";
  };
  std::printf(
      "{\"mode\":\"unary\",\"channels\":%d,\"outstanding\":%d,"
      "\"blocking\":%s,\"channel_per_call\":%s,\"calls\":%lld,\"errors\":%lld,"
      "\"errors_total\":%lld,\"seconds\":%.6f,\"cpu_s\":%.6f,"
      "\"calls_per_s\":%.1f,\"cpu_us_per_call\":%.3f,\"tls\":%s,"
      "\"server_tls_info\":%lld,\"server_resumed\":%lld,"
      "\"server_tls_version\":%s,\"server_tls_cipher\":%s,"
      "\"client_resumed\":%lld,\"ok\":%s}\n",
      channels, outstanding, blocking ? "true" : "false",
      per_call ? "true" : "false",
      static_cast<long long>(n), static_cast<long long>(e1 - e0),
      static_cast<long long>(all_errors), secs, cpu,
      secs > 0 ? n / secs : 0.0, n > 0 ? cpu * 1e6 / n : 0.0,
      tls.on ? "true" : "false",
      static_cast<long long>(run.server_info.load()),
      static_cast<long long>(run.server_resumed.load()),
      json_str(run.version).c_str(), json_str(run.cipher).c_str(),
      static_cast<long long>(run.client_resumed.load()),
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

int run_stream(const std::string& target, const Tls& tls, int64_t count,
               size_t size) {
  auto channel = make_channel(target, 0, tls);
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

int usage(const char* why = nullptr) {
  if (why) std::fprintf(stderr, "grpcxx_load_client: %s\n", why);
  std::fprintf(stderr,
               "usage: grpcxx_load_client unary --target=HOST:PORT "
               "[--channels=C] [--outstanding=N]\n"
               "           [--calls=K | --duration=S [--warmup=S]] "
               "[--name=NAME] [--expect=TEXT]\n"
               "           [--channel_per_call | --blocking] [TLS flags]\n"
               "       grpcxx_load_client stream --target=HOST:PORT --count=K "
               "--size=BYTES [TLS flags]\n"
               "  TLS flags: --ca_file=F [--server_host_override=NAME]\n"
               "             [--client_cert_file=F --client_key_file=F] "
               "[--session_cache]\n");
  return 2;
}

// Fills |tls| from the TLS flags; returns an error message or nullptr.
const char* tls_setup(Tls* tls, const char* ca, const char* host_override,
                      const char* cert, const char* key, bool session_cache) {
  if (!ca) {
    if (host_override || cert || key || session_cache)
      return "--server_host_override, --client_cert_file, --client_key_file "
             "and --session_cache need --ca_file (TLS)";
    return nullptr;
  }
  if (!cert != !key)
    return "--client_cert_file and --client_key_file go together";
  if (!read_file(ca, &tls->pem.pem_root_certs))
    return "cannot read --ca_file";
  if (cert && (!read_file(cert, &tls->pem.pem_cert_chain) ||
               !read_file(key, &tls->pem.pem_private_key)))
    return "cannot read --client_cert_file or --client_key_file";
  if (host_override) tls->host_override = host_override;
  if (session_cache) tls->cache = grpc_ssl_session_cache_create_lru(64);
  tls->on = true;
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  std::string target = "localhost:50051", name = "world", expect;
  const char *ca = nullptr, *host_override = nullptr, *cert = nullptr,
             *key = nullptr;
  bool per_call = false, blocking = false, session_cache = false;
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
    else if (std::strcmp(argv[i], "--channel_per_call") == 0) per_call = true;
    else if (std::strcmp(argv[i], "--blocking") == 0) blocking = true;
    else if ((v = opt(argv[i], "--ca_file"))) ca = v;
    else if ((v = opt(argv[i], "--server_host_override"))) host_override = v;
    else if ((v = opt(argv[i], "--client_cert_file"))) cert = v;
    else if ((v = opt(argv[i], "--client_key_file"))) key = v;
    else if (std::strcmp(argv[i], "--session_cache") == 0) session_cache = true;
    else {
      std::fprintf(stderr, "grpcxx_load_client: unknown flag %s\n", argv[i]);
      return usage();
    }
  }
  bool unary = std::strcmp(argv[1], "unary") == 0;
  if (unary) {
    if (channels < 1 || outstanding < 1 || (calls <= 0 && duration <= 0))
      return usage("unary needs --channels >= 1, --outstanding >= 1 and "
                   "--calls or --duration");
    if (per_call && blocking)
      return usage("--channel_per_call and --blocking do not go together");
    if (per_call && channels != 1)
      return usage("--channel_per_call makes its own channels: leave "
                   "--channels at 1 (--outstanding sets the concurrency)");
  } else if (std::strcmp(argv[1], "stream") == 0) {
    if (count < 1 || size < 8)
      return usage("stream needs --count >= 1 and --size >= 8");
    if (per_call || blocking)
      return usage("--channel_per_call and --blocking are for unary");
  } else {
    return usage();
  }
  Tls tls;
  if (const char* why =
          tls_setup(&tls, ca, host_override, cert, key, session_cache)) {
    std::fprintf(stderr, "grpcxx_load_client: TLS flags: %s\n", why);
    return 2;
  }
  int rv = unary ? run_unary(target, tls, channels, outstanding, per_call,
                             blocking, calls, duration, warmup, name, expect)
                 : run_stream(target, tls, count, size);
  // Channels (and their arguments' references) are gone by now.
  if (tls.cache) grpc_ssl_session_cache_destroy(tls.cache);
  return rv;
}
