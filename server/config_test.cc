#include "server/config.h"

#include <gtest/gtest.h>

#include <map>

namespace ganglion::server {
namespace {

using Args = std::vector<std::string>;

std::string ErrorOf(const Args& args) {
  auto c = ParseFlags(args);
  EXPECT_FALSE(c.ok()) << "flags were accepted";
  return c.ok() ? "" : std::string(c.status().message());
}

std::vector<std::string> Strings(const std::vector<Url>& urls) {
  std::vector<std::string> out;
  for (const Url& u : urls) out.push_back(u.ToString());
  return out;
}

// The three-member cluster every test below starts from.
Args ThreeMembers(const std::string& name, const std::string& port) {
  return {"--name=" + name, "--initial-advertise-peer-urls=http://127.0.0.1:" + port,
          "--initial-cluster-token=tok",
          "--initial-cluster=a=http://127.0.0.1:12380,b=http://127.0.0.1:22380,"
          "c=http://127.0.0.1:32380"};
}

TEST(ConfigTest, DefaultsAreEtcds) {
  auto c = ParseFlags(Args{});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->name, "default");
  EXPECT_EQ(c->data_dir, "default.etcd");
  EXPECT_EQ(Strings(c->listen_client_urls), Args{"http://localhost:2379"});
  EXPECT_EQ(Strings(c->advertise_client_urls), Args{"http://localhost:2379"});
  EXPECT_EQ(Strings(c->listen_peer_urls), Args{"http://localhost:2380"});
  EXPECT_EQ(Strings(c->initial_advertise_peer_urls), Args{"http://localhost:2380"});
  EXPECT_TRUE(c->listen_metrics_urls.empty());
  EXPECT_TRUE(c->listen_api_urls.empty());
  EXPECT_EQ(c->initial_cluster, "default=http://localhost:2380");
  EXPECT_EQ(c->initial_cluster_state, "new");
  EXPECT_TRUE(c->IsNewCluster());
  EXPECT_EQ(c->initial_cluster_token, "etcd-cluster");
  EXPECT_EQ(c->heartbeat_interval_ms, 100u);
  EXPECT_EQ(c->election_timeout_ms, 1000u);
  EXPECT_EQ(c->snapshot_count, 100000u);
  EXPECT_EQ(c->quota_backend_bytes, 0);
  EXPECT_EQ(c->QuotaBackendBytesEffective(), 2ull * 1024 * 1024 * 1024);
  EXPECT_EQ(c->max_request_bytes, 1572864u);
  EXPECT_EQ(c->max_txn_ops, 128u);
  EXPECT_EQ(c->log_level, "info");
  // A default single-member etcd reports exactly these ids.
  EXPECT_EQ(c->member_id, 0x8e9e05c52164694dull);
  EXPECT_EQ(c->cluster_id, 0xcdf818194e3a8c32ull);
}

TEST(ConfigTest, NameDrivesDataDirAndDefaultInitialCluster) {
  auto c = ParseFlags(Args{"--name", "infra1", "--initial-advertise-peer-urls",
                           "http://10.0.0.1:2380,http://10.0.0.2:2380"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->data_dir, "infra1.etcd");
  EXPECT_EQ(c->initial_cluster, "infra1=http://10.0.0.1:2380,infra1=http://10.0.0.2:2380");
  ASSERT_EQ(c->initial_members.size(), 1u);
  EXPECT_EQ(c->initial_members[0].peer_urls.size(), 2u);
}

TEST(ConfigTest, BothSyntaxesAndSingleDash) {
  Args equals = {"--name=a",
                 "--data-dir=/var/lib/a",
                 "--listen-client-urls=http://0.0.0.0:2379",
                 "--advertise-client-urls=http://10.0.0.1:2379",
                 "--listen-peer-urls=https://0.0.0.0:2380",
                 "--initial-advertise-peer-urls=http://127.0.0.1:12380",
                 "--initial-cluster=a=http://127.0.0.1:12380,b=http://127.0.0.1:22380",
                 "--initial-cluster-state=existing",
                 "--initial-cluster-token=tok",
                 "--heartbeat-interval=50",
                 "--election-timeout=500",
                 "--snapshot-count=7",
                 "--quota-backend-bytes=4096",
                 "--max-request-bytes=10",
                 "--max-txn-ops=3",
                 "--listen-metrics-urls=http://127.0.0.1:2381",
                 "--listen-api-urls=http://127.0.0.1:6443,http://0.0.0.0:6444",
                 "--log-level=debug"};
  Args spaced;
  for (const std::string& a : equals) {
    size_t eq = a.find('=');
    spaced.push_back(a.substr(0, eq));
    spaced.push_back(a.substr(eq + 1));
  }
  spaced[0] = "-name";  // Go's flag package also takes one dash
  for (const Args& args : {equals, spaced}) {
    auto c = ParseFlags(args);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->name, "a");
    EXPECT_EQ(c->data_dir, "/var/lib/a");
    EXPECT_EQ(Strings(c->listen_client_urls), Args{"http://0.0.0.0:2379"});
    EXPECT_EQ(Strings(c->advertise_client_urls), Args{"http://10.0.0.1:2379"});
    EXPECT_EQ(Strings(c->listen_peer_urls), Args{"https://0.0.0.0:2380"});
    EXPECT_EQ(c->listen_peer_urls[0].HostPort(), "0.0.0.0:2380");
    EXPECT_FALSE(c->IsNewCluster());
    EXPECT_EQ(c->initial_cluster_token, "tok");
    EXPECT_EQ(c->heartbeat_interval_ms, 50u);
    EXPECT_EQ(c->election_timeout_ms, 500u);
    EXPECT_EQ(c->snapshot_count, 7u);
    EXPECT_EQ(c->QuotaBackendBytesEffective(), 4096u);
    EXPECT_EQ(c->max_request_bytes, 10u);
    EXPECT_EQ(c->max_txn_ops, 3u);
    EXPECT_EQ(Strings(c->listen_metrics_urls), Args{"http://127.0.0.1:2381"});
    EXPECT_EQ(Strings(c->listen_api_urls), (Args{"http://127.0.0.1:6443", "http://0.0.0.0:6444"}));
    EXPECT_EQ(c->log_level, "debug");
    EXPECT_EQ(c->initial_members.size(), 2u);
  }
}

TEST(ConfigTest, HelpAndVersionSkipValidation) {
  auto h = ParseFlags(Args{"--help", "--election-timeout=1"});
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_TRUE(h->print_help);
  auto v = ParseFlags(Args{"--version"});
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(v->print_version);
  auto off = ParseFlags(Args{"--version=false"});
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_FALSE(off->print_version);
  EXPECT_NE(FlagsUsage().find("--initial-cluster-state"), std::string::npos);
}

TEST(ConfigTest, ArgcArgvForm) {
  const char* argv[] = {"ganglion",          "--name",       "x",
                        "--initial-cluster", "x=http://h:1", "--initial-advertise-peer-urls",
                        "http://h:1"};
  auto c = ParseFlags(7, const_cast<char**>(argv));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->name, "x");
}

TEST(ConfigTest, SyntaxErrors) {
  EXPECT_EQ(ErrorOf({"--no-such-flag=1"}), "flag provided but not defined: -no-such-flag");
  EXPECT_EQ(ErrorOf({"--name"}), "flag needs an argument: -name");
  EXPECT_EQ(ErrorOf({"stray"}), "'stray' is not a valid flag");
  EXPECT_EQ(ErrorOf({"--", "stray"}), "'stray' is not a valid flag");
  EXPECT_EQ(ErrorOf({"--version=maybe"}), "invalid value \"maybe\" for flag -version: parse error");
}

TEST(ConfigTest, NonNumericValues) {
  EXPECT_EQ(ErrorOf({"--heartbeat-interval=abc"}),
            "invalid value \"abc\" for flag -heartbeat-interval: parse error");
  EXPECT_EQ(ErrorOf({"--election-timeout", "10ms"}),
            "invalid value \"10ms\" for flag -election-timeout: parse error");
  EXPECT_EQ(ErrorOf({"--snapshot-count=-1"}),
            "invalid value \"-1\" for flag -snapshot-count: parse error");
  EXPECT_EQ(ErrorOf({"--quota-backend-bytes=2G"}),
            "invalid value \"2G\" for flag -quota-backend-bytes: parse error");
  EXPECT_EQ(ErrorOf({"--max-txn-ops=99999999999999999999999"}),
            "invalid value \"99999999999999999999999\" for flag -max-txn-ops: value out of range");
  EXPECT_EQ(ErrorOf({"--max-request-bytes="}),
            "invalid value \"\" for flag -max-request-bytes: parse error");
}

TEST(ConfigTest, UrlErrors) {
  EXPECT_EQ(ErrorOf({"--listen-peer-urls=unix://sock:1"}),
            "invalid value \"unix://sock:1\" for flag -listen-peer-urls: "
            "URL scheme must be http or https: unix://sock:1");
  EXPECT_EQ(ErrorOf({"--listen-client-urls=http://nohost"}),
            "invalid value \"http://nohost\" for flag -listen-client-urls: "
            "URL address does not have the form \"host:port\": http://nohost");
  EXPECT_EQ(ErrorOf({"--advertise-client-urls=http://h:1/path"}),
            "invalid value \"http://h:1/path\" for flag -advertise-client-urls: "
            "URL must not contain a path: http://h:1/path");
  EXPECT_EQ(ErrorOf({"--listen-api-urls=https://127.0.0.1:6443"}),
            "invalid value \"https://127.0.0.1:6443\" for flag -listen-api-urls: the API serves "
            "plain http only (TLS comes later)");
  EXPECT_EQ(ErrorOf({"--listen-metrics-urls=http://h:99999"}),
            "invalid value \"http://h:99999\" for flag -listen-metrics-urls: "
            "URL has an invalid port: http://h:99999");
  EXPECT_EQ(ErrorOf({"--initial-advertise-peer-urls=,"}),
            "invalid value \",\" for flag -initial-advertise-peer-urls: no valid URLs given");
  EXPECT_EQ(ErrorOf({"--initial-cluster=default=localhost:2380"}),
            "URL scheme must be http or https: localhost:2380");
}

TEST(ConfigTest, UrlListsAndIpv6) {
  auto urls = ParseUrlList(" http://a:1 ,https://[::1]:2380,");
  ASSERT_TRUE(urls.ok()) << urls.status();
  ASSERT_EQ(urls->size(), 2u);
  EXPECT_EQ((*urls)[1].host, "::1");
  EXPECT_EQ((*urls)[1].port, 2380);
  EXPECT_EQ((*urls)[1].ToString(), "https://[::1]:2380");
  EXPECT_EQ((*urls)[1].HostPort(), "[::1]:2380");
}

TEST(ConfigTest, InitialClusterStateMustBeNewOrExisting) {
  EXPECT_EQ(ErrorOf({"--initial-cluster-state=old"}),
            "invalid value \"old\" for flag -initial-cluster-state: "
            "valid values are \"new\" and \"existing\"");
}

TEST(ConfigTest, TimeoutRules) {
  EXPECT_EQ(ErrorOf({"--heartbeat-interval=0"}), "--heartbeat-interval must be >0 (set to 0ms)");
  EXPECT_EQ(ErrorOf({"--election-timeout=0"}), "--election-timeout must be >0 (set to 0ms)");
  EXPECT_EQ(ErrorOf({"--heartbeat-interval=100", "--election-timeout=499"}),
            "--election-timeout[499ms] should be at least as 5 times as "
            "--heartbeat-interval[100ms]");
  EXPECT_TRUE(ParseFlags(Args{"--heartbeat-interval=100", "--election-timeout=500"}).ok());
  EXPECT_EQ(ErrorOf({"--election-timeout=50001"}),
            "--election-timeout[50001ms] is too long, and should be set less than 50000ms");
}

TEST(ConfigTest, ListenClientNeedsAdvertiseClient) {
  EXPECT_EQ(ErrorOf({"--listen-client-urls=http://0.0.0.0:2379"}),
            "--advertise-client-urls is required when --listen-client-urls is set explicitly");
}

TEST(ConfigTest, LogLevel) {
  for (const char* level : {"debug", "info", "warn", "error", "panic", "fatal"}) {
    EXPECT_TRUE(ParseFlags(Args{std::string("--log-level=") + level}).ok()) << level;
  }
  EXPECT_EQ(ErrorOf({"--log-level=verbose"}),
            "unknown log-level \"verbose\" (only supports debug, info, warn, error, panic, or "
            "fatal)");
}

TEST(ConfigTest, TestOnlyFlagsAreOffUnlessGiven) {
  auto c = ParseFlags(Args{});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->experimental_fault_injection);
  EXPECT_FALSE(c->unsafe_no_fsync);
  EXPECT_FALSE(c->unsafe_local_linearizable_reads);

  c = ParseFlags(Args{"--unsafe-no-fsync", "--unsafe-local-linearizable-reads=true",
                      "--experimental-fault-injection",
                      "--listen-metrics-urls=http://127.0.0.1:0"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->experimental_fault_injection);
  EXPECT_TRUE(c->unsafe_no_fsync);
  EXPECT_TRUE(c->unsafe_local_linearizable_reads);

  c = ParseFlags(Args{"--unsafe-no-fsync=false"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->unsafe_no_fsync);
}

TEST(ConfigTest, FaultInjectionNeedsTheMetricsListener) {
  EXPECT_EQ(
      ErrorOf({"--experimental-fault-injection"}),
      "--experimental-fault-injection needs --listen-metrics-urls (its endpoint lives there)");
}

TEST(ConfigTest, LocalNameMustBeInInitialCluster) {
  EXPECT_EQ(ErrorOf({"--name=z", "--initial-cluster=a=http://h:1"}),
            "couldn't find local name \"z\" in the initial cluster configuration");
}

TEST(ConfigTest, AdvertisedPeerUrlsMustMatchInitialCluster) {
  EXPECT_EQ(ErrorOf({"--name=a", "--initial-advertise-peer-urls=http://h:2",
                     "--initial-cluster=a=http://h:1,b=http://h:3"}),
            "--initial-cluster has a=http://h:1 but missing from "
            "--initial-advertise-peer-urls=http://h:2");
  EXPECT_EQ(ErrorOf({"--name=a", "--initial-advertise-peer-urls=http://h:1,http://h:2",
                     "--initial-cluster=a=http://h:1"}),
            "--initial-advertise-peer-urls has http://h:2 but missing from "
            "--initial-cluster=a=http://h:1,a=http://h:2");
  // Joining an existing cluster does not check this (as in etcd).
  EXPECT_TRUE(ParseFlags(Args{"--name=a", "--initial-advertise-peer-urls=http://h:2",
                              "--initial-cluster=a=http://h:1", "--initial-cluster-state=existing"})
                  .ok());
}

TEST(ConfigTest, DuplicateUrlsInInitialCluster) {
  EXPECT_EQ(ErrorOf({"--name=a", "--initial-advertise-peer-urls=http://h:1",
                     "--initial-cluster=a=http://h:1,b=http://h:1"}),
            "initial cluster a=http://h:1,b=http://h:1 has duplicate url");
}

TEST(ConfigTest, RepeatedNameIsOneMemberWithSeveralUrls) {
  // etcd reads a repeated name as more peer URLs of the same member; a name
  // cannot therefore name two members.
  auto c = ParseFlags(Args{"--name=a", "--initial-advertise-peer-urls=http://h:1,http://h:2",
                           "--initial-cluster=a=http://h:2,b=http://h:3,a=http://h:1"});
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->initial_members.size(), 2u);
  std::vector<std::string> urls;
  for (const auto& m : c->initial_members) {
    if (m.name == "a") urls = Strings(m.peer_urls);
  }
  EXPECT_EQ(urls, (Args{"http://h:1", "http://h:2"}));
  EXPECT_EQ(c->member_id, ComputeMemberId({"http://h:1", "http://h:2"}, "etcd-cluster"));
}

TEST(ConfigTest, EmptyUrlInInitialCluster) {
  EXPECT_EQ(ErrorOf({"--name=a", "--initial-cluster=a=,b=http://h:3"}),
            "URL scheme must be http or https: ");
}

TEST(ConfigTest, MemberIdsMatchEtcd) {
  // Vectors from etcd's own membership tests.
  EXPECT_EQ(ComputeMemberId({"http://10.0.0.8:2379"}, ""), 14544069596553697298ull);
  EXPECT_EQ(ComputeMemberId({"http://10.0.0.1:2379", "http://10.0.0.2:2379"}, ""),
            16552244735972308939ull);
  EXPECT_EQ(ComputeMemberId({"http://10.0.0.2:2379", "http://10.0.0.1:2379"}, ""),
            16552244735972308939ull);
  EXPECT_NE(ComputeMemberId({"http://10.0.0.8:2379"}, "other-token"),
            ComputeMemberId({"http://10.0.0.8:2379"}, ""));
}

TEST(ConfigTest, EveryMemberDerivesTheSameIds) {
  // Computed independently (Python hashlib) for the cluster in ThreeMembers().
  const uint64_t a = 15429915573580438332ull, b = 1259761490123835750ull,
                 c = 14590032085621120027ull, cluster = 17857285563427398504ull;
  std::map<std::string, uint64_t> expected = {{"a", a}, {"b", b}, {"c", c}};
  for (const auto& [name, port] : std::vector<std::pair<std::string, std::string>>{
           {"a", "12380"}, {"b", "22380"}, {"c", "32380"}}) {
    auto cfg = ParseFlags(ThreeMembers(name, port));
    ASSERT_TRUE(cfg.ok()) << cfg.status();
    EXPECT_EQ(cfg->member_id, expected[name]);
    EXPECT_EQ(cfg->cluster_id, cluster);
    ASSERT_EQ(cfg->initial_members.size(), 3u);
    // Sorted by id, and the same list on every member.
    EXPECT_EQ(cfg->initial_members[0].id, b);
    EXPECT_EQ(cfg->initial_members[1].id, c);
    EXPECT_EQ(cfg->initial_members[2].id, a);
  }
  // Order in the flag does not matter; the token does.
  Args reordered = ThreeMembers("a", "12380");
  reordered[3] =
      "--initial-cluster=c=http://127.0.0.1:32380,a=http://127.0.0.1:12380,b=http://"
      "127.0.0.1:22380";
  EXPECT_EQ(ParseFlags(reordered)->cluster_id, cluster);
  Args other_token = ThreeMembers("a", "12380");
  other_token[2] = "--initial-cluster-token=tok2";
  EXPECT_NE(ParseFlags(other_token)->cluster_id, cluster);
  EXPECT_EQ(ComputeClusterId({a, b, c}), ComputeClusterId({c, a, b}));
}

}  // namespace
}  // namespace ganglion::server
