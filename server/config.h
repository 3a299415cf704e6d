// The `ganglion` process configuration: command-line flags named, defaulted
// and validated as etcd 3.4 does, so scripts and operators written for etcd
// work unchanged. Also derives member and cluster ids from --initial-cluster
// the way etcd does, so every member of a new cluster computes the same ids
// without talking. Parsing never exits the process and never touches the
// network or the file system: errors come back as a Status for the caller
// (the process's main) to print.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ganglion::server {

// An http(s)://host:port URL with no path. host keeps IPv6 brackets off.
struct Url {
  std::string scheme;
  std::string host;
  uint16_t port = 0;

  // "scheme://host:port" (IPv6 hosts in brackets): the canonical form used
  // for comparison and for member id derivation.
  std::string ToString() const;
  // "host:port" as gRPC and bind() want it.
  std::string HostPort() const;
  bool operator==(const Url&) const = default;
};

absl::StatusOr<Url> ParseUrl(const std::string& text);
// Comma-separated; empty items are skipped, an empty list is an error.
absl::StatusOr<std::vector<Url>> ParseUrlList(const std::string& text);

struct InitialMember {
  std::string name;
  std::vector<Url> peer_urls;  // sorted by ToString()
  uint64_t id = 0;
};

inline constexpr uint64_t kDefaultQuotaBackendBytes = 2ull * 1024 * 1024 * 1024;
inline constexpr uint64_t kMaxElectionTimeoutMs = 50000;

struct ServerConfig {
  std::string name = "default";
  std::string data_dir;  // "<name>.etcd" unless set

  std::vector<Url> listen_client_urls;
  std::vector<Url> advertise_client_urls;
  std::vector<Url> listen_peer_urls;
  std::vector<Url> initial_advertise_peer_urls;
  std::vector<Url> listen_metrics_urls;  // empty: no metrics listener
  std::vector<Url> listen_api_urls;      // empty: no orchestrator API
  std::string reconcilers = "all";       // which reconcilers the leader runs

  std::string initial_cluster;  // as given (or defaulted)
  std::string initial_cluster_state = "new";
  std::string initial_cluster_token = "etcd-cluster";

  uint64_t heartbeat_interval_ms = 100;
  uint64_t election_timeout_ms = 1000;
  uint64_t snapshot_count = 100000;
  // As given: 0 means the default (2 GiB), negative disables the quota.
  int64_t quota_backend_bytes = 0;
  uint64_t max_request_bytes = 1572864;
  uint64_t max_txn_ops = 128;
  std::string log_level = "info";
  // Ganglion's own: a snapshot file to seed an empty data dir from.
  std::string restore_snapshot;
  uint64_t lease_checkpoint_interval_ms = 300000;

  // Tests only. The fault endpoint needs --listen-metrics-urls; the unsafe
  // flags exist so the fault-injection harness can show it catches what they
  // break, and main() logs them loudly.
  bool experimental_fault_injection = false;
  bool unsafe_no_fsync = false;
  bool unsafe_local_linearizable_reads = false;

  bool print_version = false;
  bool print_help = false;

  // Derived from initial_cluster + initial_cluster_token, sorted by id.
  // For --initial-cluster-state=existing these are what the flags imply; the
  // real ids of a joining member come from the cluster it joins.
  std::vector<InitialMember> initial_members;
  uint64_t member_id = 0;
  uint64_t cluster_id = 0;

  bool IsNewCluster() const { return initial_cluster_state == "new"; }
  uint64_t QuotaBackendBytesEffective() const {
    return quota_backend_bytes == 0 ? kDefaultQuotaBackendBytes
                                    : static_cast<uint64_t>(quota_backend_bytes);
  }
};

// Parses and validates. argv[0] is the program name. With --help or --version
// the returned config has print_help/print_version set and is not validated.
absl::StatusOr<ServerConfig> ParseFlags(int argc, char** argv);
// Same, without the program name.
absl::StatusOr<ServerConfig> ParseFlags(const std::vector<std::string>& args);

// The flag summary printed by --help.
std::string FlagsUsage();

// etcd's member id: the first 8 bytes (big-endian) of SHA-1 over the sorted
// peer URLs concatenated, followed by the cluster token.
uint64_t ComputeMemberId(std::vector<std::string> peer_urls, const std::string& token);
// etcd's cluster id: the first 8 bytes of SHA-1 over the sorted member ids,
// each as 8 big-endian bytes.
uint64_t ComputeClusterId(std::vector<uint64_t> member_ids);

}  // namespace ganglion::server
