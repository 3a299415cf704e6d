#include "server/config.h"

#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <optional>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace ganglion::server {
namespace {

enum class FlagKind { kString, kBool, kUint, kInt, kUrls, kChoice };

struct FlagSpec {
  const char* name;
  FlagKind kind;
  const char* default_text;  // shown by --help
  const char* help;
};

// Every flag ganglion accepts. Names, defaults and meaning are etcd 3.4's.
constexpr FlagSpec kFlags[] = {
    {"name", FlagKind::kString, "default", "Human-readable name for this member."},
    {"data-dir", FlagKind::kString, "${name}.etcd", "Path to the data directory."},
    {"listen-client-urls", FlagKind::kUrls, "http://localhost:2379",
     "List of URLs to listen on for client traffic."},
    {"advertise-client-urls", FlagKind::kUrls, "http://localhost:2379",
     "List of this member's client URLs to advertise to the public."},
    {"listen-peer-urls", FlagKind::kUrls, "http://localhost:2380",
     "List of URLs to listen on for peer traffic."},
    {"initial-advertise-peer-urls", FlagKind::kUrls, "http://localhost:2380",
     "List of this member's peer URLs to advertise to the rest of the cluster."},
    {"initial-cluster", FlagKind::kString, "default=http://localhost:2380",
     "Initial cluster configuration for bootstrapping."},
    {"initial-cluster-state", FlagKind::kChoice, "new",
     "Initial cluster state ('new' or 'existing')."},
    {"initial-cluster-token", FlagKind::kString, "etcd-cluster",
     "Initial cluster token for the cluster during bootstrap."},
    {"heartbeat-interval", FlagKind::kUint, "100",
     "Time (in milliseconds) of a heartbeat interval."},
    {"election-timeout", FlagKind::kUint, "1000",
     "Time (in milliseconds) for an election to timeout."},
    {"snapshot-count", FlagKind::kUint, "100000",
     "Number of committed transactions to trigger a snapshot to disk."},
    {"quota-backend-bytes", FlagKind::kInt, "0",
     "Maximum size (in bytes) the backend may consume. 0 means the default 2GiB."},
    {"max-request-bytes", FlagKind::kUint, "1572864",
     "Maximum client request size in bytes the server will accept."},
    {"max-txn-ops", FlagKind::kUint, "128",
     "Maximum number of operations permitted in a transaction."},
    {"listen-metrics-urls", FlagKind::kUrls, "",
     "List of URLs to listen on for the metrics and health endpoints."},
    {"listen-api-urls", FlagKind::kUrls, "",
     "Ganglion: list of URLs to serve the orchestrator's Kubernetes-shaped API on (http only "
     "for now)."},
    {"reconcilers", FlagKind::kString, "all",
     "Ganglion: the orchestrator's reconcilers this member runs while it is leader: 'all', "
     "'none', or a comma-separated list of names (scheduler, replicaset, deployment, ...)."},
    {"restore", FlagKind::kString, "",
     "Ganglion: seed a new --data-dir from this snapshot file (from `etcdctl snapshot save`) "
     "as a member of the --initial-cluster, then start."},
    {"lease-checkpoint-interval", FlagKind::kUint, "300000",
     "Ganglion: how often (ms) the leader records long leases' remaining TTL in the log, so a "
     "new leader does not restart them from their full TTL."},
    {"experimental-enable-lease-checkpoint", FlagKind::kBool, "true",
     "Accepted for etcd compatibility: ganglion always checkpoints leases."},
    {"experimental-fault-injection", FlagKind::kBool, "false",
     "Ganglion, tests only: serve GET/PUT /debug/fault on the metrics listener, which sets "
     "rules that drop peer messages to or from given members (a network partition without "
     "a network)."},
    {"unsafe-no-fsync", FlagKind::kBool, "false",
     "Ganglion, tests only, UNSAFE: acknowledge writes the Raft log has not made durable "
     "(no fsync, no RocksDB WAL), so a crash loses them."},
    {"unsafe-local-linearizable-reads", FlagKind::kBool, "false",
     "Ganglion, tests only, UNSAFE: serve linearizable reads from local state without "
     "ReadIndex, so a member that is behind or partitioned answers stale data."},
    {"log-level", FlagKind::kString, "info",
     "Configures log level. Only supports debug, info, warn, error, panic, or fatal."},
    {"version", FlagKind::kBool, "false", "Print the version and exit."},
    {"help", FlagKind::kBool, "false", "Print this help and exit."},
};

const FlagSpec* FindFlag(absl::string_view name) {
  if (name == "h") name = "help";
  for (const FlagSpec& f : kFlags) {
    if (name == f.name) return &f;
  }
  return nullptr;
}

absl::Status InvalidValue(const std::string& flag, const std::string& value,
                          absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid value \"", value, "\" for flag -", flag, ": ", why));
}

template <typename T>
absl::StatusOr<T> ParseNumber(const std::string& flag, const std::string& value) {
  T out{};
  const char* end = value.data() + value.size();
  auto [ptr, ec] = std::from_chars(value.data(), end, out);
  if (ec == std::errc::result_out_of_range) return InvalidValue(flag, value, "value out of range");
  if (ec != std::errc() || ptr != end || value.empty()) {
    return InvalidValue(flag, value, "parse error");
  }
  return out;
}

uint64_t FirstEightBytesOfSha1(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha1(), nullptr);
  uint64_t out = 0;
  for (int i = 0; i < 8; i++) out = (out << 8) | digest[i];
  return out;
}

// "name=url,..." sorted, as etcd prints a URLs map in its errors.
std::string DescribeUrlsMap(const std::map<std::string, std::vector<Url>>& m) {
  std::vector<std::string> pairs;
  for (const auto& [name, urls] : m) {
    for (const Url& u : urls) pairs.push_back(name + "=" + u.ToString());
  }
  std::sort(pairs.begin(), pairs.end());
  return absl::StrJoin(pairs, ",");
}

// --initial-cluster: "name=url,name=url". A name given more than once is one
// member with several peer URLs (as in etcd).
absl::StatusOr<std::map<std::string, std::vector<Url>>> ParseInitialCluster(
    const std::string& text) {
  std::map<std::string, std::vector<std::string>> raw;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    absl::string_view name = item, value;
    if (size_t eq = item.find('='); eq != absl::string_view::npos) {
      name = item.substr(0, eq);
      value = item.substr(eq + 1);
    }
    raw[std::string(name)].emplace_back(value);
  }
  std::map<std::string, std::vector<Url>> out;
  for (const auto& [name, urls] : raw) {
    for (const std::string& text : urls) {
      auto u = ParseUrl(text);
      if (!u.ok()) return u.status();
      out[name].push_back(*std::move(u));
    }
  }
  return out;
}

absl::Status Validate(ServerConfig& c, bool advertise_client_unset) {
  if (c.initial_cluster_state != "new" && c.initial_cluster_state != "existing") {
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected clusterState \"", c.initial_cluster_state, "\""));
  }
  if (c.heartbeat_interval_ms == 0) {
    return absl::InvalidArgumentError("--heartbeat-interval must be >0 (set to 0ms)");
  }
  if (c.election_timeout_ms == 0) {
    return absl::InvalidArgumentError("--election-timeout must be >0 (set to 0ms)");
  }
  if (c.lease_checkpoint_interval_ms < 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("--lease-checkpoint-interval must be >= 100ms (set to ",
                     c.lease_checkpoint_interval_ms, "ms)"));
  }
  if (5 * c.heartbeat_interval_ms > c.election_timeout_ms) {
    return absl::InvalidArgumentError(
        absl::StrCat("--election-timeout[", c.election_timeout_ms,
                     "ms] should be at least as 5 times as --heartbeat-interval[",
                     c.heartbeat_interval_ms, "ms]"));
  }
  if (c.election_timeout_ms > kMaxElectionTimeoutMs) {
    return absl::InvalidArgumentError(absl::StrCat("--election-timeout[", c.election_timeout_ms,
                                                   "ms] is too long, and should be set less than ",
                                                   kMaxElectionTimeoutMs, "ms"));
  }
  if (advertise_client_unset) {
    return absl::InvalidArgumentError(
        "--advertise-client-urls is required when --listen-client-urls is set explicitly");
  }
  if (c.experimental_fault_injection && c.listen_metrics_urls.empty()) {
    return absl::InvalidArgumentError(
        "--experimental-fault-injection needs --listen-metrics-urls (its endpoint lives there)");
  }
  static const std::set<std::string> kLevels = {"debug", "info", "warn", "error", "panic", "fatal"};
  if (!kLevels.contains(c.log_level)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown log-level \"", c.log_level,
                     "\" (only supports debug, info, warn, error, panic, or fatal)"));
  }

  auto cluster = ParseInitialCluster(c.initial_cluster);
  if (!cluster.ok()) return cluster.status();
  auto local = cluster->find(c.name);
  if (local == cluster->end()) {
    return absl::InvalidArgumentError(absl::StrCat("couldn't find local name \"", c.name,
                                                   "\" in the initial cluster configuration"));
  }
  if (c.IsNewCluster()) {
    // The URLs this member advertises must be exactly its --initial-cluster entry.
    std::set<std::string> in_cluster, advertised;
    for (const Url& u : local->second) in_cluster.insert(u.ToString());
    for (const Url& u : c.initial_advertise_peer_urls) advertised.insert(u.ToString());
    std::vector<std::string> missing;
    for (const std::string& u : in_cluster) {
      if (!advertised.contains(u)) missing.push_back(c.name + "=" + u);
    }
    if (!missing.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--initial-cluster has ", absl::StrJoin(missing, ","),
          " but missing from --initial-advertise-peer-urls=", absl::StrJoin(advertised, ",")));
    }
    for (const std::string& u : advertised) {
      if (!in_cluster.contains(u)) missing.push_back(u);
    }
    if (!missing.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--initial-advertise-peer-urls has ", absl::StrJoin(missing, ","),
                       " but missing from --initial-cluster=",
                       DescribeUrlsMap({{c.name, c.initial_advertise_peer_urls}})));
    }
  }
  std::set<std::string> seen_urls;
  for (const auto& [name, urls] : *cluster) {
    for (const Url& u : urls) {
      if (!seen_urls.insert(u.ToString()).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("initial cluster ", DescribeUrlsMap(*cluster), " has duplicate url"));
      }
    }
  }

  c.initial_members.clear();
  std::set<uint64_t> ids;
  for (const auto& [name, urls] : *cluster) {
    InitialMember m{name, urls, 0};
    std::sort(m.peer_urls.begin(), m.peer_urls.end(),
              [](const Url& a, const Url& b) { return a.ToString() < b.ToString(); });
    std::vector<std::string> strs;
    for (const Url& u : m.peer_urls) strs.push_back(u.ToString());
    m.id = ComputeMemberId(strs, c.initial_cluster_token);
    if (m.id == 0) return absl::InvalidArgumentError("cannot use 0 as member id");
    if (!ids.insert(m.id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("member exists with identical ID ", absl::Hex(m.id), " (name ", name, ")"));
    }
    if (name == c.name) c.member_id = m.id;
    c.initial_members.push_back(std::move(m));
  }
  std::sort(c.initial_members.begin(), c.initial_members.end(),
            [](const InitialMember& a, const InitialMember& b) { return a.id < b.id; });
  c.cluster_id = ComputeClusterId(std::vector<uint64_t>(ids.begin(), ids.end()));
  return absl::OkStatus();
}

}  // namespace

std::string Url::ToString() const {
  return absl::StrCat(scheme, "://", HostPort());
}

std::string Url::HostPort() const {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<Url> ParseUrl(const std::string& text) {
  absl::string_view in = absl::StripAsciiWhitespace(text);
  std::string shown(in);
  Url u;
  size_t sep = in.find("://");
  if (sep == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("URL scheme must be http or https: ", shown));
  }
  u.scheme = std::string(in.substr(0, sep));
  if (u.scheme != "http" && u.scheme != "https") {
    return absl::InvalidArgumentError(absl::StrCat("URL scheme must be http or https: ", shown));
  }
  absl::string_view rest = in.substr(sep + 3);
  size_t slash = rest.find_first_of("/?#");
  if (slash != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("URL must not contain a path: ", shown));
  }
  const absl::Status no_host_port = absl::InvalidArgumentError(
      absl::StrCat("URL address does not have the form \"host:port\": ", shown));
  absl::string_view host, port;
  if (absl::StartsWith(rest, "[")) {
    size_t close = rest.find(']');
    if (close == absl::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
      return no_host_port;
    }
    host = rest.substr(1, close - 1);
    port = rest.substr(close + 2);
  } else {
    size_t colon = rest.rfind(':');
    if (colon == absl::string_view::npos || rest.find(':') != colon) return no_host_port;
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty() || port.empty()) return no_host_port;
  uint32_t port_number = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), port_number);
  if (ec != std::errc() || ptr != port.data() + port.size() || port_number > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("URL has an invalid port: ", shown));
  }
  u.host = std::string(host);
  u.port = static_cast<uint16_t>(port_number);
  return u;
}

absl::StatusOr<std::vector<Url>> ParseUrlList(const std::string& text) {
  std::vector<Url> out;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    auto u = ParseUrl(std::string(item));
    if (!u.ok()) return u.status();
    out.push_back(*std::move(u));
  }
  if (out.empty()) return absl::InvalidArgumentError("no valid URLs given");
  return out;
}

uint64_t ComputeMemberId(std::vector<std::string> peer_urls, const std::string& token) {
  std::sort(peer_urls.begin(), peer_urls.end());
  return FirstEightBytesOfSha1(absl::StrCat(absl::StrJoin(peer_urls, ""), token));
}

uint64_t ComputeClusterId(std::vector<uint64_t> member_ids) {
  std::sort(member_ids.begin(), member_ids.end());
  std::string bytes;
  for (uint64_t id : member_ids) {
    for (int shift = 56; shift >= 0; shift -= 8) bytes.push_back(static_cast<char>(id >> shift));
  }
  return FirstEightBytesOfSha1(bytes);
}

std::string FlagsUsage() {
  std::string out = "Usage: ganglion [flags]\n\nFlags (as etcd 3.4):\n";
  for (const FlagSpec& f : kFlags) {
    absl::StrAppend(&out, "  --", f.name, "\n      ", f.help);
    if (f.default_text[0] != '\0') absl::StrAppend(&out, " (default ", f.default_text, ")");
    out += "\n";
  }
  return out;
}

absl::StatusOr<ServerConfig> ParseFlags(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; i++) args.emplace_back(argv[i]);
  return ParseFlags(args);
}

absl::StatusOr<ServerConfig> ParseFlags(const std::vector<std::string>& args) {
  // Pass 1: syntax. Like Go's flag package: -flag and --flag, "=value" or the
  // next argument as the value; booleans take a value only after "=".
  std::map<std::string, std::string> given;
  for (size_t i = 0; i < args.size(); i++) {
    const std::string& arg = args[i];
    if (arg == "--" || arg.size() < 2 || arg[0] != '-') {
      size_t first = arg == "--" ? i + 1 : i;
      if (first >= args.size()) break;
      return absl::InvalidArgumentError(absl::StrCat("'", args[first], "' is not a valid flag"));
    }
    absl::string_view body = arg;
    body.remove_prefix(absl::StartsWith(body, "--") ? 2 : 1);
    absl::string_view name = body;
    std::optional<std::string> value;
    if (size_t eq = body.find('='); eq != absl::string_view::npos) {
      name = body.substr(0, eq);
      value = std::string(body.substr(eq + 1));
    }
    const FlagSpec* spec = FindFlag(name);
    if (spec == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("flag provided but not defined: -", name));
    }
    if (spec->kind == FlagKind::kBool) {
      if (!value) value = "true";
    } else if (!value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat("flag needs an argument: -", name));
      }
      value = args[++i];
    }
    given[spec->name] = *value;  // a repeated flag: the last one wins
  }

  // Pass 2: values.
  ServerConfig c;
  auto is_set = [&](const char* n) { return given.contains(n); };
  for (const auto& [name, value] : given) {
    const FlagSpec* spec = FindFlag(name);
    switch (spec->kind) {
      case FlagKind::kBool: {
        bool b;
        if (value == "true" || value == "1" || value == "t" || value == "TRUE" || value == "True" ||
            value == "T") {
          b = true;
        } else if (value == "false" || value == "0" || value == "f" || value == "FALSE" ||
                   value == "False" || value == "F") {
          b = false;
        } else {
          return InvalidValue(name, value, "parse error");
        }
        if (name == "version") c.print_version = b;
        if (name == "help") c.print_help = b;
        if (name == "experimental-fault-injection") c.experimental_fault_injection = b;
        if (name == "unsafe-no-fsync") c.unsafe_no_fsync = b;
        if (name == "unsafe-local-linearizable-reads") c.unsafe_local_linearizable_reads = b;
        break;
      }
      case FlagKind::kUint: {
        auto n = ParseNumber<uint64_t>(name, value);
        if (!n.ok()) return n.status();
        if (name == "heartbeat-interval") c.heartbeat_interval_ms = *n;
        if (name == "election-timeout") c.election_timeout_ms = *n;
        if (name == "snapshot-count") c.snapshot_count = *n;
        if (name == "max-request-bytes") c.max_request_bytes = *n;
        if (name == "max-txn-ops") c.max_txn_ops = *n;
        if (name == "lease-checkpoint-interval") c.lease_checkpoint_interval_ms = *n;
        break;
      }
      case FlagKind::kInt: {
        auto n = ParseNumber<int64_t>(name, value);
        if (!n.ok()) return n.status();
        c.quota_backend_bytes = *n;
        break;
      }
      case FlagKind::kUrls: {
        auto urls = ParseUrlList(value);
        if (!urls.ok()) return InvalidValue(name, value, urls.status().message());
        if (name == "listen-client-urls") c.listen_client_urls = *urls;
        if (name == "advertise-client-urls") c.advertise_client_urls = *urls;
        if (name == "listen-peer-urls") c.listen_peer_urls = *urls;
        if (name == "initial-advertise-peer-urls") c.initial_advertise_peer_urls = *urls;
        if (name == "listen-metrics-urls") c.listen_metrics_urls = *urls;
        if (name == "listen-api-urls") {
          for (const Url& u : *urls) {
            if (u.scheme != "http") {
              return InvalidValue(name, value, "the API serves plain http only (TLS comes later)");
            }
          }
          c.listen_api_urls = *urls;
        }
        break;
      }
      case FlagKind::kChoice:
        if (value != "new" && value != "existing") {
          return InvalidValue(name, value, "valid values are \"new\" and \"existing\"");
        }
        c.initial_cluster_state = value;
        break;
      case FlagKind::kString:
        if (name == "name") c.name = value;
        if (name == "data-dir") c.data_dir = value;
        if (name == "initial-cluster") c.initial_cluster = value;
        if (name == "initial-cluster-token") c.initial_cluster_token = value;
        if (name == "log-level") c.log_level = value;
        if (name == "restore") c.restore_snapshot = value;
        if (name == "reconcilers") c.reconcilers = value;
        break;
    }
  }
  if (c.print_help || c.print_version) return c;

  // Pass 3: defaults that depend on other flags.
  auto must = [](const char* text) { return *ParseUrlList(text); };
  if (!is_set("listen-client-urls")) c.listen_client_urls = must("http://localhost:2379");
  if (!is_set("advertise-client-urls")) c.advertise_client_urls = must("http://localhost:2379");
  if (!is_set("listen-peer-urls")) c.listen_peer_urls = must("http://localhost:2380");
  if (!is_set("initial-advertise-peer-urls")) {
    c.initial_advertise_peer_urls = must("http://localhost:2380");
  }
  if (c.data_dir.empty()) c.data_dir = c.name + ".etcd";
  if (!is_set("initial-cluster")) {
    std::vector<std::string> entries;
    for (const Url& u : c.initial_advertise_peer_urls) {
      entries.push_back((c.name.empty() ? std::string("default") : c.name) + "=" + u.ToString());
    }
    c.initial_cluster = absl::StrJoin(entries, ",");
  }
  const bool advertise_client_unset =
      is_set("listen-client-urls") && !is_set("advertise-client-urls");

  if (absl::Status s = Validate(c, advertise_client_unset); !s.ok()) return s;
  return c;
}

}  // namespace ganglion::server
