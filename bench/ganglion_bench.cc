// ganglion-bench: a load generator that speaks the etcd v3 API, so it
// measures ganglion and etcd alike. Many logical clients share a few gRPC
// connections and a few completion-queue threads; each has one call in
// flight, closed-loop or paced to --rate.
//
//   ganglion-bench --endpoints=127.0.0.1:2379,... --mode=put|range|txn|lease|mixed|watch|load
//     [--clients=50] [--connections=clients] [--threads=2] [--key-size=8] [--value-size=256]
//     [--keyspace=10000] [--total=N | --duration=S] [--rate=R] [--timeout-ms=10000]
//     range:  [--consistency=l|s]
//     txn:    [--txn-keys=own|shared]  (compare-and-set on the client's own keys, or on any)
//     mixed:  [--mix=range-s:80,put:20]   (kinds: put, range-l, range-s, txn)
//     lease:  [--leases-per-client=10] [--ttl=60]
//     watch:  [--streams=1000] [--watchers=10] [--watch-keys=1000] [--writers=8]
//     load:   puts --keyspace keys once each, in order (to load a data set)
//     [--preload]  put every key of the key space once before measuring
//     [--json=FILE] also write the report as JSON ("-" for stdout)
//
// Output: per kind of call, the calls that succeeded and failed, throughput,
// latency p50/p90/p99/p99.9/max, and the failures by gRPC code and message.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/str_split.h"
#include "bench/load/driver.h"
#include "bench/load/ops.h"
#include "bench/load/watch_load.h"
#include "nlohmann/json.hpp"

namespace {

using ganglion::bench::DriverOptions;
using ganglion::bench::DriverReport;
using ganglion::bench::KeySpace;
using ganglion::bench::LatencyHistogram;
using ganglion::bench::Op;
using ganglion::bench::OpStats;

struct Args {
  std::vector<std::string> endpoints = {"127.0.0.1:2379"};
  std::string mode = "put";
  int clients = 50;
  int connections = 0;
  int threads = 2;
  int key_size = 8;
  int value_size = 256;
  uint64_t keyspace = 10000;
  uint64_t total = 0;
  double duration_s = 0;
  double rate = 0;
  int timeout_ms = 10000;
  std::string consistency = "l";
  std::string txn_keys = "own";
  std::string mix = "range-s:80,put:20";
  int leases_per_client = 10;
  int64_t ttl = 60;
  int streams = 1000, watchers = 10, watch_keys = 1000, writers = 8;
  bool preload = false;
  std::string json_path;
};

int Usage(const std::string& why) {
  std::fprintf(stderr, "ganglion-bench: %s (see the header of bench/ganglion_bench.cc)\n",
               why.c_str());
  return 2;
}

bool ParseArgs(int argc, char** argv, Args* a, std::string* error) {
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    if (arg == "--preload") {
      a->preload = true;
      continue;
    }
    const size_t eq = arg.find('=');
    if (arg.rfind("--", 0) != 0 || eq == std::string::npos) {
      *error = "expected --name=value, got " + arg;
      return false;
    }
    const std::string name = arg.substr(2, eq - 2), v = arg.substr(eq + 1);
    bool ok = true;
    if (name == "endpoints") {
      a->endpoints = absl::StrSplit(v, ',', absl::SkipEmpty());
      for (auto& e : a->endpoints) {
        if (e.rfind("http://", 0) == 0) e = e.substr(7);
      }
      ok = !a->endpoints.empty();
    } else if (name == "mode") {
      a->mode = v;
    } else if (name == "clients") {
      ok = absl::SimpleAtoi(v, &a->clients) && a->clients > 0;
    } else if (name == "connections") {
      ok = absl::SimpleAtoi(v, &a->connections) && a->connections > 0;
    } else if (name == "threads") {
      ok = absl::SimpleAtoi(v, &a->threads) && a->threads > 0;
    } else if (name == "key-size") {
      ok = absl::SimpleAtoi(v, &a->key_size) && a->key_size > 0;
    } else if (name == "value-size") {
      ok = absl::SimpleAtoi(v, &a->value_size) && a->value_size >= 0;
    } else if (name == "keyspace") {
      ok = absl::SimpleAtoi(v, &a->keyspace) && a->keyspace > 0;
    } else if (name == "total") {
      ok = absl::SimpleAtoi(v, &a->total);
    } else if (name == "duration") {
      ok = absl::SimpleAtod(v, &a->duration_s) && a->duration_s > 0;
    } else if (name == "rate") {
      ok = absl::SimpleAtod(v, &a->rate) && a->rate >= 0;
    } else if (name == "timeout-ms") {
      ok = absl::SimpleAtoi(v, &a->timeout_ms) && a->timeout_ms > 0;
    } else if (name == "consistency") {
      a->consistency = v;
      ok = v == "l" || v == "s";
    } else if (name == "txn-keys") {
      a->txn_keys = v;
      ok = v == "own" || v == "shared";
    } else if (name == "mix") {
      a->mix = v;
    } else if (name == "leases-per-client") {
      ok = absl::SimpleAtoi(v, &a->leases_per_client) && a->leases_per_client > 0;
    } else if (name == "ttl") {
      ok = absl::SimpleAtoi(v, &a->ttl) && a->ttl > 0;
    } else if (name == "streams") {
      ok = absl::SimpleAtoi(v, &a->streams) && a->streams > 0;
    } else if (name == "watchers") {
      ok = absl::SimpleAtoi(v, &a->watchers) && a->watchers > 0;
    } else if (name == "watch-keys") {
      ok = absl::SimpleAtoi(v, &a->watch_keys) && a->watch_keys > 0;
    } else if (name == "writers") {
      ok = absl::SimpleAtoi(v, &a->writers) && a->writers > 0;
    } else if (name == "json") {
      a->json_path = v;
    } else {
      *error = "unknown flag --" + name;
      return false;
    }
    if (!ok) {
      *error = "bad value for --" + name + ": " + v;
      return false;
    }
  }
  if (a->total == 0 && a->duration_s == 0) a->duration_s = 10;
  if (a->connections == 0) a->connections = a->clients;
  return true;
}

nlohmann::json LatencyJson(const LatencyHistogram& h) {
  auto us = [&](double q) { return h.Percentile(q) / 1e3; };
  return {{"p50_us", us(0.5)},
          {"p90_us", us(0.9)},
          {"p99_us", us(0.99)},
          {"p999_us", us(0.999)},
          {"max_us", h.max_ns() / 1e3}};
}

void PrintRow(const std::string& kind, const OpStats& s, double seconds) {
  const LatencyHistogram& h = s.latency;
  std::printf("%-20s %10llu %8llu %11.0f %9.0f %9.0f %9.0f %9.0f %9.0f\n", kind.c_str(),
              static_cast<unsigned long long>(s.ok), static_cast<unsigned long long>(s.failed()),
              s.ok / seconds, h.Percentile(0.5) / 1e3, h.Percentile(0.9) / 1e3,
              h.Percentile(0.99) / 1e3, h.Percentile(0.999) / 1e3, h.max_ns() / 1e3);
}

void PrintHeader() {
  std::printf("%-20s %10s %8s %11s %9s %9s %9s %9s %9s\n", "call", "ok", "failed", "per second",
              "p50 us", "p90 us", "p99 us", "p99.9 us", "max us");
}

nlohmann::json ReportJson(const DriverReport& r) {
  nlohmann::json out = {{"elapsed_s", r.elapsed_seconds}, {"calls", nlohmann::json::object()}};
  for (const auto& [kind, s] : r.by_kind) {
    out["calls"][kind] = {{"ok", s.ok},
                          {"failed", s.failed()},
                          {"per_second", s.ok / r.elapsed_seconds},
                          {"latency", LatencyJson(s.latency)},
                          {"errors", s.errors}};
  }
  return out;
}

void PrintReport(const DriverReport& r) {
  PrintHeader();
  for (const auto& [kind, s] : r.by_kind) PrintRow(kind, s, r.elapsed_seconds);
  for (const auto& [kind, s] : r.by_kind) {
    for (const auto& [what, n] : s.errors) {
      std::printf("  %s failed %llu x: %s\n", kind.c_str(), static_cast<unsigned long long>(n),
                  what.c_str());
    }
  }
}

std::unique_ptr<Op> MakeOp(const std::string& kind, const Args& a,
                           std::shared_ptr<grpc::Channel> channel, uint64_t client, uint64_t seed,
                           std::string* error) {
  KeySpace keys{"k", a.key_size, a.keyspace};
  ganglion::bench::CallOptions call{std::chrono::milliseconds(a.timeout_ms)};
  if (kind == "put") {
    ganglion::bench::PutOp::Options po;
    po.keys = keys;
    po.value_bytes = a.value_size;
    po.call = call;
    return std::make_unique<ganglion::bench::PutOp>(channel, po, seed);
  }
  if (kind == "range-l" || kind == "range-s") {
    return std::make_unique<ganglion::bench::RangeOp>(channel, keys, kind == "range-s", call, seed);
  }
  if (kind == "txn") {
    // --txn-keys=own: each client its own keys; shared: every client every key.
    const bool own = a.txn_keys == "own";
    return std::make_unique<ganglion::bench::TxnCasOp>(channel, keys, a.value_size, call, seed,
                                                       own ? client : 0, own ? a.clients : 1);
  }
  if (kind == "lease") {
    return std::make_unique<ganglion::bench::LeaseOp>(channel, a.leases_per_client, a.ttl, call);
  }
  *error = "unknown kind of call " + kind;
  return nullptr;
}

// Puts every key of the key space once, in order, with 100 clients.
DriverReport Preload(const Args& a) {
  auto channels = ganglion::bench::MakeChannels(a.endpoints, std::min(a.connections, 100));
  auto sequence = std::make_shared<std::atomic<uint64_t>>(0);
  std::vector<std::unique_ptr<Op>> clients;
  for (int c = 0; c < 100; c++) {
    ganglion::bench::PutOp::Options po;
    po.keys = KeySpace{"k", a.key_size, a.keyspace};
    po.value_bytes = a.value_size;
    po.sequential_keys = true;
    po.sequence = sequence;
    clients.push_back(std::make_unique<ganglion::bench::PutOp>(
        channels[static_cast<size_t>(c) % channels.size()], po, c));
  }
  DriverOptions d;
  d.threads = a.threads;
  d.total_ops = a.keyspace;
  d.progress_label = "load";
  return ganglion::bench::RunLoad(clients, d);
}

}  // namespace

int main(int argc, char** argv) {
  // As the server: Abseil's lock-order checking is not what we measure.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  Args a;
  std::string error;
  if (!ParseArgs(argc, argv, &a, &error)) return Usage(error);
  nlohmann::json json = {{"mode", a.mode},         {"endpoints", a.endpoints},
                         {"clients", a.clients},   {"connections", a.connections},
                         {"key_size", a.key_size}, {"value_size", a.value_size},
                         {"keyspace", a.keyspace}, {"rate", a.rate}};

  if (a.mode == "watch") {
    ganglion::bench::WatchLoadOptions w;
    w.watch_endpoints = a.endpoints;
    w.put_endpoints = a.endpoints;
    w.streams = a.streams;
    w.watchers_per_stream = a.watchers;
    w.keys = a.watch_keys;
    w.connections = a.connections == a.clients ? 0 : a.connections;
    w.client_threads = a.threads;
    w.rate = a.rate > 0 ? a.rate : 1000;
    w.writers = a.writers;
    w.duration = std::chrono::seconds(static_cast<int64_t>(a.duration_s > 0 ? a.duration_s : 10));
    auto r = ganglion::bench::RunWatchLoad(w);
    if (!r.ok()) {
      std::fprintf(stderr, "ganglion-bench: %s\n", r.status().ToString().c_str());
      return 1;
    }
    std::printf("watch: %d streams x %d watchers over %d keys, %.0f puts/s\n", a.streams,
                a.watchers, w.keys, w.rate);
    PrintReport(r->puts);
    OpStats delivery;
    delivery.latency = r->delivery;
    delivery.ok = r->delivered;
    PrintRow("watch-delivery", delivery, r->puts.elapsed_seconds);
    std::printf("events delivered %llu of %llu expected\n",
                static_cast<unsigned long long>(r->delivered),
                static_cast<unsigned long long>(r->expected));
    json["puts"] = ReportJson(r->puts);
    json["delivery"] = {{"delivered", r->delivered},
                        {"expected", r->expected},
                        {"latency", LatencyJson(r->delivery)}};
  } else if (a.mode == "load") {
    DriverReport r = Preload(a);
    PrintReport(r);
    json["report"] = ReportJson(r);
  } else {
    if (a.preload) {
      DriverReport pre = Preload(a);
      std::fprintf(stderr, "preloaded %llu keys in %.1f s\n",
                   static_cast<unsigned long long>(pre.total()), pre.elapsed_seconds);
    }
    auto channels = ganglion::bench::MakeChannels(a.endpoints, a.connections);
    std::vector<std::unique_ptr<Op>> clients;
    for (int c = 0; c < a.clients; c++) {
      auto channel = channels[static_cast<size_t>(c) % channels.size()];
      const uint64_t seed = 1000003ULL * static_cast<uint64_t>(c + 1);
      std::unique_ptr<Op> op;
      if (a.mode == "mixed") {
        std::vector<std::pair<std::unique_ptr<Op>, int>> weighted;
        for (const auto& part : absl::StrSplit(a.mix, ',', absl::SkipEmpty())) {
          std::vector<std::string> kv = absl::StrSplit(part, ':');
          int weight = 0;
          if (kv.size() != 2 || !absl::SimpleAtoi(kv[1], &weight) || weight < 0) {
            return Usage("bad --mix part " + std::string(part));
          }
          auto sub = MakeOp(kv[0], a, channel, c, seed + weighted.size(), &error);
          if (!sub) return Usage(error);
          weighted.emplace_back(std::move(sub), weight);
        }
        op = std::make_unique<ganglion::bench::MixedOp>(std::move(weighted), seed);
      } else {
        const std::string kind = a.mode == "range" ? "range-" + a.consistency : a.mode;
        op = MakeOp(kind, a, channel, c, seed, &error);
        if (!op) return Usage("unknown --mode " + a.mode);
      }
      clients.push_back(std::move(op));
    }
    DriverOptions d;
    d.threads = a.threads;
    d.rate_per_second = a.rate;
    d.duration = std::chrono::milliseconds(static_cast<int64_t>(a.duration_s * 1000));
    d.total_ops = a.total;
    d.progress_label = a.mode;
    DriverReport r = ganglion::bench::RunLoad(clients, d);
    PrintReport(r);
    json["report"] = ReportJson(r);
  }
  if (!a.json_path.empty()) {
    if (a.json_path == "-") {
      std::cout << json.dump() << "\n";
    } else {
      std::ofstream(a.json_path) << json.dump(2) << "\n";
    }
  }
  return 0;
}
