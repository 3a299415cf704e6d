// The `ganglion` process: etcd 3.4's flags, one member, the etcd v3 gRPC API
// on --listen-client-urls. Exits 1 with a one-line reason on bad flags or a
// member that cannot start; stops cleanly on SIGTERM/SIGINT.
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>
#include <thread>

#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "orchestrator/api/api_server.h"
#include "orchestrator/orchestrator.h"
#include "server/config.h"
#include "server/http_endpoint.h"
#include "server/server.h"
#include "server/services.h"
#include "server/watch_service.h"

namespace {

using ganglion::server::ServerConfig;

// gRPC adds framing around a request; etcd allows this much on top of
// --max-request-bytes before gRPC itself refuses a message.
constexpr int kGrpcOverheadBytes = 512 * 1024;

bool SetLogLevel(const std::string& level) {
  if (level == "debug") {
    spdlog::set_level(spdlog::level::debug);
  } else if (level == "info") {
    spdlog::set_level(spdlog::level::info);
  } else if (level == "warn") {
    spdlog::set_level(spdlog::level::warn);
  } else if (level == "error") {
    spdlog::set_level(spdlog::level::err);
  } else if (level == "panic" || level == "fatal") {
    spdlog::set_level(spdlog::level::critical);
  } else {
    return false;
  }
  return true;
}

int Run(int argc, char** argv) {
  auto config = ganglion::server::ParseFlags(argc, argv);
  if (!config.ok()) {
    std::fprintf(stderr, "ganglion: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  if (config->print_help) {
    std::printf("Usage: ganglion [flags]\n\n%s", ganglion::server::FlagsUsage().c_str());
    return 0;
  }
  if (config->print_version) {
    std::printf("ganglion Version: 0.1.0\netcd API Version: %s\n",
                ganglion::server::kEtcdApiVersion);
    return 0;
  }
  auto logger = spdlog::stderr_color_mt("ganglion");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  if (!SetLogLevel(config->log_level)) {
    std::fprintf(stderr, "ganglion: invalid value \"%s\" for flag -log-level\n",
                 config->log_level.c_str());
    return 1;
  }

  // Signals are taken by one thread with sigwait, so no handler runs inside
  // gRPC or RocksDB code.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  if (!config->restore_snapshot.empty()) {
    if (auto s = ganglion::server::Server::RestoreDataDir(*config, config->restore_snapshot);
        !s.ok()) {
      std::fprintf(stderr, "ganglion: restore: %s\n", std::string(s.message()).c_str());
      return 1;
    }
  }
  // Test-only flags, said loudly so a log of a production member shows them.
  if (config->unsafe_no_fsync) {
    spdlog::critical(
        "event=unsafe_flag flag=--unsafe-no-fsync: writes are acknowledged before they are "
        "durable; a crash loses them. FOR TESTS ONLY.");
  }
  if (config->unsafe_local_linearizable_reads) {
    spdlog::critical(
        "event=unsafe_flag flag=--unsafe-local-linearizable-reads: linearizable reads are served "
        "from local state without ReadIndex and may be stale. FOR TESTS ONLY.");
  }
  if (config->experimental_fault_injection) {
    spdlog::warn(
        "event=test_flag flag=--experimental-fault-injection: /debug/fault on the metrics "
        "listener can cut this member off its peers. FOR TESTS ONLY.");
  }
  ganglion::server::ServerOptions options;
  options.lease_checkpoint_interval =
      std::chrono::milliseconds(config->lease_checkpoint_interval_ms);
  auto server = ganglion::server::Server::Start(*config, options);
  if (!server.ok()) {
    spdlog::critical("event=start_failed error=\"{}\"", server.status().ToString());
    std::fprintf(stderr, "ganglion: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  for (const auto& url : config->listen_client_urls) {
    builder.AddListeningPort(url.HostPort(), grpc::InsecureServerCredentials());
  }
  builder.SetMaxReceiveMessageSize(static_cast<int>(config->max_request_bytes) +
                                   kGrpcOverheadBytes);
  builder.SetMaxSendMessageSize(std::numeric_limits<int>::max());
  // etcd's server keepalive: ping idle clients every 2 h, allow client
  // pings every 5 s.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // The server never compresses what it sends (no default compression level
  // or algorithm is set, and no handler asks for one), so gRPC's outgoing
  // compression filter would only cost every call ~290 bytes of arena: a
  // watch stream lives as long as its client. Compressed requests are still
  // decompressed (GanglionCluster.GzipCompressedRequestsAreServed).
  builder.AddChannelArgument(GRPC_ARG_ENABLE_PER_MESSAGE_COMPRESSION, 0);
  auto services = ganglion::server::MakeEtcdServices(server->get());
  for (auto& s : services) builder.RegisterService(s.get());
  // Declared before grpc_server: on every return its queue is drained after
  // the grpc::Server is shut down.
  ganglion::server::WatchService watch_service(server->get());
  watch_service.AddTo(&builder);
  std::unique_ptr<grpc::Server> grpc_server = builder.BuildAndStart();
  if (!grpc_server) {
    std::fprintf(stderr, "ganglion: cannot listen for clients on %s\n",
                 config->listen_client_urls.at(0).ToString().c_str());
    (*server)->Stop();
    return 1;
  }
  watch_service.Start();
  for (const auto& url : config->listen_client_urls) {
    spdlog::info("event=serving_clients url={}", url.ToString());
  }

  // The orchestrator's reconcilers run on this member only while it leads;
  // they reach its store through an in-process channel (no network hop).
  std::unique_ptr<ganglion::orchestrator::Orchestrator> orchestrator;
  {
    ganglion::orchestrator::OrchestratorOptions oo;
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    oo.channel = grpc_server->InProcessChannel(args);
    oo.reconcilers = config->reconcilers;
    auto started = ganglion::orchestrator::Orchestrator::Start(std::move(oo));
    if (!started.ok()) {
      std::fprintf(stderr, "ganglion: %s\n", std::string(started.status().message()).c_str());
      grpc_server->Shutdown();
      (*server)->Stop();
      return 1;
    }
    orchestrator = std::move(*started);
    ganglion::orchestrator::Orchestrator* o = orchestrator.get();
    auto& registry = (*server)->metrics_registry();
    registry.AddGaugeFunc("ganglion_reconcilers_leading",
                          "1 while this member runs the orchestrator's reconcilers (it leads).",
                          [o] { return o->stats().leading ? 1.0 : 0.0; });
    registry.AddGaugeFunc("ganglion_reconcilers_running", "Reconcilers running on this member.",
                          [o] { return o->stats().reconcilers_running; });
    registry.AddGaugeFunc("ganglion_reconciles_total", "Reconcile calls made on this member.",
                          [o] { return static_cast<double>(o->stats().reconciles_total); });
    registry.AddGaugeFunc("ganglion_reconcile_errors_total",
                          "Reconcile calls that failed (and were requeued with back-off).",
                          [o] { return static_cast<double>(o->stats().reconcile_errors_total); });
    registry.AddGaugeFunc(
        "ganglion_reconcilers_leading_since_seconds",
        "Unix time at which this member's reconcilers last started (0: never).", [o] {
          const absl::Time t = o->stats().leading_since;
          return t == absl::InfinitePast() ? 0.0 : absl::ToDoubleSeconds(t - absl::UnixEpoch());
        });
    registry.AddGaugeFunc(
        "ganglion_reconcile_first_seconds",
        "Unix time of the first reconcile in this member's current or last term (0: none).", [o] {
          const absl::Time t = o->stats().first_reconcile_at;
          return t == absl::InfinitePast() ? 0.0 : absl::ToDoubleSeconds(t - absl::UnixEpoch());
        });
    (*server)->SetLeadershipObserver(
        [o](bool leading, uint64_t term) { o->SetLeading(leading, term); });
    spdlog::info("event=reconcilers_registered names=\"{}\"",
                 absl::StrJoin(o->reconciler_names(), ","));
  }

  std::unique_ptr<ganglion::server::MetricsHttpServer> metrics_http;
  std::unique_ptr<ganglion::orchestrator::ApiServer> api_server;
  // Every way out, in one order: the orchestrator first, whose calls go
  // through grpc_server's in-process channel and must not outlive it.
  auto stop_serving = [&] {
    (*server)->SetLeadershipObserver(nullptr);
    orchestrator->Stop();
    if (api_server) api_server->Stop();
    if (metrics_http) metrics_http->Stop();
    grpc_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    watch_service.Stop();
    (*server)->Stop();
  };
  if (!config->listen_metrics_urls.empty()) {
    ganglion::server::MetricsHttpOptions mo;
    for (const auto& url : config->listen_metrics_urls)
      mo.listen_addresses.push_back(url.HostPort());
    ganglion::server::Server* s = server->get();
    mo.health = [s] {
      ganglion::server::HealthResult h;
      if (!s->HasLeader()) {
        h.reason = "no leader";
      } else if (!s->Alarms().empty()) {
        h.reason = "alarm raised";
      } else {
        h.healthy = true;
      }
      return h;
    };
    if (config->experimental_fault_injection) {
      mo.fault_injection = [s](bool set, std::string_view query) -> absl::StatusOr<std::string> {
        if (set) {
          auto rules = ganglion::server::ParsePeerFaultRules(query);
          if (!rules.ok()) return rules.status();
          s->SetPeerFaultRules(*std::move(rules));
        }
        return ganglion::server::FormatPeerFaultRules(s->peer_fault_rules()) + "\n";
      };
    }
    metrics_http = std::make_unique<ganglion::server::MetricsHttpServer>(
        &(*server)->metrics_registry(), std::move(mo));
    if (auto st = metrics_http->Start(); !st.ok()) {
      std::fprintf(stderr, "ganglion: %s\n", std::string(st.message()).c_str());
      stop_serving();
      return 1;
    }
    for (const auto& url : config->listen_metrics_urls) {
      spdlog::info("event=serving_metrics url={}", url.ToString());
    }
  }

  // The orchestrator's API talks to this member over its own client URL, so
  // its writes take the same proposal path as any etcd client's. It connects
  // in the background: a member without a leader yet still starts.
  if (!config->listen_api_urls.empty()) {
    ganglion::orchestrator::ApiServerOptions ao;
    for (const auto& url : config->listen_api_urls) ao.listen_addresses.push_back(url.HostPort());
    std::string self = config->listen_client_urls.at(0).HostPort();
    // A wildcard listen address is reached on loopback.
    if (self.rfind("0.0.0.0:", 0) == 0) self = "127.0.0.1:" + self.substr(8);
    if (self.rfind("[::]:", 0) == 0) self = "[::1]:" + self.substr(5);
    ao.store_endpoints = {self};
    auto started = ganglion::orchestrator::ApiServer::Start(std::move(ao));
    if (!started.ok()) {
      std::fprintf(stderr, "ganglion: %s\n", std::string(started.status().message()).c_str());
      stop_serving();
      return 1;
    }
    api_server = std::move(*started);
    for (const auto& address : api_server->addresses()) {
      spdlog::info("event=serving_api address={}", address);
    }
  }

  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    spdlog::info("event=signal signal={}", sig);
    (*server)->Stop();
  });
  const bool removed = (*server)->WaitUntilRemovedOrStopped();
  if (removed) {
    // Let the last answers (the removal itself) leave before exiting.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  stop_serving();
  if (removed) {
    spdlog::warn("event=exit reason=removed");
    std::_Exit(0);  // the signal thread still waits in sigwait
  }
  waiter.join();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's Abseil checks every absl::Mutex acquisition for lock-order
  // cycles (gRPC locks one per call step): measurable CPU on every RPC, for
  // a check gRPC's own tests already make.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return Run(argc, argv);
}
