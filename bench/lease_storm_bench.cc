// A lease expiry storm against a local 3-member cluster of ganglion and,
// with the same harness, of etcd 3.4: grant N leases (one key attached to
// each) so that they all expire within a short window, and measure the
// latency of a steady stream of unrelated puts while nothing expires (quiet)
// and while the leases are being revoked (storm). Reports p50/p99 of both,
// the storm/quiet ratio, and how long the storm took, for each binary.
//
//   lease_storm_bench [--leases=100000] [--ttl=40] [--put_rate=200]
//                     [--ganglion=<path>] [--etcd=/usr/bin/etcd] [--only=ganglion|etcd]
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "tests/support/process_cluster.h"

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct Args {
  int leases = 100000;
  int ttl = 40;
  int put_rate = 200;
  std::string ganglion = GANGLION_BINARY;
  std::string etcd = "/usr/bin/etcd";
  std::string only;
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

int64_t CountLeases(etcdserverpb::Lease::Stub* stub) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  etcdserverpb::LeaseLeasesResponse resp;
  if (!stub->LeaseLeases(&ctx, etcdserverpb::LeaseLeasesRequest(), &resp).ok()) return -1;
  return resp.leases_size();
}

struct Outcome {
  double quiet_p50_us = 0, quiet_p99_us = 0, storm_p50_us = 0, storm_p99_us = 0;
  double grant_seconds = 0, storm_seconds = 0;
  size_t quiet_n = 0, storm_n = 0;
};

Outcome RunOne(const std::string& binary, const Args& a) {
  ganglion::tests::ClusterOptions o;
  o.binary = binary;
  o.members = 3;
  ganglion::tests::ProcessCluster cluster(o);
  if (auto s = cluster.Start(); !s.ok()) {
    std::fprintf(stderr, "start %s: %s\n", binary.c_str(), std::string(s.message()).c_str());
    std::exit(1);
  }
  auto leader = cluster.LeaderIndex();
  const int endpoint_index = leader.ok() ? *leader : 0;
  const std::string endpoint = cluster.client_endpoint(endpoint_index);
  auto channel = grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials());
  auto kv = etcdserverpb::KV::NewStub(channel);
  auto lease = etcdserverpb::Lease::NewStub(channel);

  // The storm is over once the deletion of every attached key was seen, on
  // a watch served by another member and opened before the first grant.
  // (Listing 100,000 leases twice a second to find the end would load the
  // cluster being measured.) A lease whose key was not attached deletes
  // nothing: if deletions stop coming, one LeaseLeases call settles it.
  std::atomic<int64_t> attached{0};
  std::atomic<bool> storm_over{false};
  std::atomic<bool> granted{false};
  std::atomic<int64_t> deleted{0};
  auto watch_channel =
      grpc::CreateChannel(cluster.client_endpoint((endpoint_index + 1) % cluster.size()),
                          grpc::InsecureChannelCredentials());
  auto watch = etcdserverpb::Watch::NewStub(watch_channel);
  grpc::ClientContext watch_ctx;
  auto stream = watch->Watch(&watch_ctx);
  {
    etcdserverpb::WatchRequest w;
    w.mutable_create_request()->set_key("storm/");
    w.mutable_create_request()->set_range_end("storm0");  // the prefix storm/
    w.mutable_create_request()->add_filters(etcdserverpb::WatchCreateRequest::NOPUT);
    if (!stream->Write(w)) {
      std::fprintf(stderr, "watch: could not create\n");
      std::exit(1);
    }
  }
  std::thread watcher([&] {
    etcdserverpb::WatchResponse r;
    while (stream->Read(&r)) {
      deleted += r.events_size();
      if (granted && deleted >= attached) storm_over = true;
    }
  });

  // Grant with 16 concurrent clients, each lease holding one key.
  const auto grant_start = Clock::now();
  std::atomic<int> next{0};
  std::vector<std::thread> granters;
  for (int t = 0; t < 16; t++) {
    granters.emplace_back([&] {
      auto ch = grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials());
      auto l = etcdserverpb::Lease::NewStub(ch);
      auto k = etcdserverpb::KV::NewStub(ch);
      for (int i; (i = next++) < a.leases;) {
        grpc::ClientContext gctx;
        etcdserverpb::LeaseGrantRequest g;
        g.set_ttl(a.ttl);
        etcdserverpb::LeaseGrantResponse gr;
        if (!l->LeaseGrant(&gctx, g, &gr).ok()) continue;
        grpc::ClientContext pctx;
        etcdserverpb::PutRequest p;
        p.set_key(absl::StrCat("storm/", i));
        p.set_value("x");
        p.set_lease(gr.id());
        etcdserverpb::PutResponse pr;
        if (k->Put(&pctx, p, &pr).ok()) attached++;
      }
    });
  }
  for (auto& t : granters) t.join();
  granted = true;
  Outcome out;
  out.grant_seconds = std::chrono::duration<double>(Clock::now() - grant_start).count();
  const auto expiry_start = grant_start + std::chrono::seconds(a.ttl);
  std::vector<double> quiet, storm;

  std::thread poller([&] {
    int64_t seen = -1;
    auto last_change = Clock::now();
    while (!storm_over) {
      std::this_thread::sleep_for(milliseconds(500));
      if (deleted != seen) {
        seen = deleted;
        last_change = Clock::now();
      } else if (Clock::now() > expiry_start &&
                 Clock::now() - last_change > std::chrono::seconds(3) &&
                 CountLeases(lease.get()) == 0) {
        storm_over = true;
      }
    }
  });
  const auto period = std::chrono::microseconds(1000000 / std::max(1, a.put_rate));
  const auto give_up = expiry_start + std::chrono::seconds(600);
  auto next_put = Clock::now();
  while (!storm_over && Clock::now() < give_up) {
    std::this_thread::sleep_until(next_put);
    next_put += period;
    grpc::ClientContext ctx;
    etcdserverpb::PutRequest p;
    p.set_key("steady");
    p.set_value("v");
    etcdserverpb::PutResponse pr;
    const auto t0 = Clock::now();
    const bool ok = kv->Put(&ctx, p, &pr).ok();
    const double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    if (!ok) continue;
    (t0 < expiry_start ? quiet : storm).push_back(us);
  }
  storm_over = true;
  poller.join();
  watch_ctx.TryCancel();
  watcher.join();
  out.storm_seconds = std::chrono::duration<double>(Clock::now() - expiry_start).count();
  out.quiet_p50_us = Percentile(quiet, 0.50);
  out.quiet_p99_us = Percentile(quiet, 0.99);
  out.storm_p50_us = Percentile(storm, 0.50);
  out.storm_p99_us = Percentile(storm, 0.99);
  out.quiet_n = quiet.size();
  out.storm_n = storm.size();
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    auto value = [&](const char* name) -> const char* {
      std::string prefix = std::string("--") + name + "=";
      return arg.rfind(prefix, 0) == 0 ? argv[i] + prefix.size() : nullptr;
    };
    if (const char* v = value("leases")) {
      (void)absl::SimpleAtoi(v, &a.leases);
    } else if (const char* v = value("ttl")) {
      (void)absl::SimpleAtoi(v, &a.ttl);
    } else if (const char* v = value("put_rate")) {
      (void)absl::SimpleAtoi(v, &a.put_rate);
    } else if (const char* v = value("ganglion")) {
      a.ganglion = v;
    } else if (const char* v = value("etcd")) {
      a.etcd = v;
    } else if (const char* v = value("only")) {
      a.only = v;
    } else {
      std::fprintf(stderr, "unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  std::printf("%-9s %8s %10s %10s %10s %10s %7s %9s %9s\n", "binary", "grant_s", "quiet_p50",
              "quiet_p99", "storm_p50", "storm_p99", "ratio", "storm_s", "puts q/s");
  for (const auto& [name, path] : {std::pair<std::string, std::string>{"etcd", a.etcd},
                                   std::pair<std::string, std::string>{"ganglion", a.ganglion}}) {
    if (!a.only.empty() && a.only != name) continue;
    Outcome o = RunOne(path, a);
    std::printf("%-9s %8.1f %8.0fus %8.0fus %8.0fus %8.0fus %7.2f %9.1f %4zu/%zu\n", name.c_str(),
                o.grant_seconds, o.quiet_p50_us, o.quiet_p99_us, o.storm_p50_us, o.storm_p99_us,
                o.quiet_p99_us > 0 ? o.storm_p99_us / o.quiet_p99_us : 0.0, o.storm_seconds,
                o.quiet_n, o.storm_n);
    std::fflush(stdout);
  }
  return 0;
}
