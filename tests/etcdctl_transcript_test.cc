// Runs tests/testdata/etcdctl.transcript against a fresh 3-member cluster of
// real etcd 3.4 (the reference) and a fresh 3-member cluster of the binary
// under test, and requires the normalized records to be identical: what an
// etcdctl user sees must not tell the two apart.
//
// The etcd record is also compared with the checked-in golden
// tests/testdata/etcdctl.expected. That catches a transcript edited without
// regenerating the golden, and a normalizer that lets run-to-run noise
// through (etcd against itself would then fail). GANGLION_REWRITE=1 rewrites
// the golden from etcd's record. GANGLION_TRANSCRIPT_SKIP_REFERENCE=1 skips
// running etcd and compares the binary under test with the golden alone.
//
// GANGLION_TRANSCRIPT_BINARY overrides the binary under test (default: the
// ganglion target when the build has it, /usr/bin/etcd before that).
#include <cstdlib>
#include <fstream>
#include <future>
#include <regex>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/process_cluster.h"
#include "tests/support/transcript.h"

namespace ganglion::tests {
namespace {

std::string TranscriptPath(const std::string& name) {
  return std::string(GANGLION_TESTDATA_DIR) + "/" + name + ".transcript";
}
std::string GoldenPath(const std::string& name) {
  return std::string(GANGLION_TESTDATA_DIR) + "/" + name + ".expected";
}

bool EnvSet(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' && std::string(v) != "0";
}

std::string BinaryUnderTest() {
  const char* v = std::getenv("GANGLION_TRANSCRIPT_BINARY");
  return v != nullptr && *v != '\0' ? v : GANGLION_TRANSCRIPT_DEFAULT_BINARY;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Placeholders for what differs between two correct clusters: member and
// cluster ids (they hash the peer URLs, hence the ports) and the ports.
absl::StatusOr<Normalizer> NormalizerFor(const ProcessCluster& cluster) {
  CommandResult r = cluster.Etcdctl({"member", "list", "-w", "json"}, cluster.client_endpoint(0));
  if (r.exit_code != 0) return absl::UnavailableError(absl::StrCat("member list: ", r.err));
  nlohmann::json list = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  if (!list.is_object()) return absl::InternalError(absl::StrCat("member list: ", r.out));
  Normalizer normalizer;
  normalizer.AddId(list["header"].value("cluster_id", uint64_t{0}), "<cluster-id>");
  for (const auto& m : list.value("members", nlohmann::json::array())) {
    normalizer.AddId(m.value("ID", uint64_t{0}), "<id:" + m.value("name", "?") + ">");
  }
  for (int i = 0; i < cluster.size(); ++i) {
    const Member& m = cluster.member(i);
    normalizer.AddToken(absl::StrCat("127.0.0.1:", m.client_port), "<" + m.name + ".client>");
    normalizer.AddToken(absl::StrCat("127.0.0.1:", m.peer_port), "<" + m.name + ".peer>");
    normalizer.AddToken(absl::StrCat("127.0.0.1:", m.metrics_port), "<" + m.name + ".metrics>");
  }
  return normalizer;
}

void AppendLines(std::string* record, const std::string& text, const std::string& prefix) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  for (const auto& line : lines) absl::StrAppend(record, prefix, line, "\n");
}

// Leases that etcdctl creates for itself (the session of `elect` and `lock`)
// show up in keys like "myelection/694d7a1b2c3d4e5f" (or with fewer digits). When `text` still
// holds such a hex word after normalizing, the cluster's leases that appear in it are named in
// order of discovery, as granted leases are.
void LearnSessionLeases(const ProcessCluster& cluster, const std::string& text,
                        Normalizer* normalizer, int* leases) {
  static const std::regex kHexWord(R"(\b[0-9a-f]*[a-f][0-9a-f]*\b)");
  bool unknown = false;
  const std::string normalized = normalizer->Normalize(text);
  for (std::sregex_iterator it(normalized.begin(), normalized.end(), kHexWord), end; it != end;
       ++it) {
    if (it->length() >= 10 && it->length() <= 16) unknown = true;
  }
  if (!unknown) return;
  const CommandResult list = cluster.Etcdctl({"lease", "list"}, cluster.client_endpoint(0));
  for (const auto& word : absl::StrSplit(list.out, '\n')) {
    uint64_t id = 0;
    if (word.empty() || !absl::SimpleHexAtoi(word, &id)) continue;
    // `lease list` pads ids to 16 digits; keys hold them unpadded.
    if (!absl::StrContains(normalized, absl::StrCat(absl::Hex(id)))) continue;
    normalizer->AddId(id, absl::StrCat("<lease:", ++*leases, ">"));
  }
}

// Runs every step and returns the normalized record.
absl::StatusOr<std::string> RunTranscript(const ProcessCluster& cluster,
                                          const std::vector<TranscriptStep>& steps) {
  auto normalizer = NormalizerFor(cluster);
  if (!normalizer.ok()) return normalizer.status();
  std::string lease_hex;  // $LEASE
  int leases = 0;
  std::string record;
  // !bg commands running, in start order; recorded at the next !join.
  struct Background {
    const TranscriptStep* step;
    std::future<CommandResult> result;
  };
  std::vector<Background> background;
  auto record_step = [&](const TranscriptStep& step, const CommandResult& r) {
    LearnSessionLeases(cluster, r.out, &*normalizer, &leases);
    std::string out = normalizer->Normalize(r.out);
    std::string err = normalizer->Normalize(r.err);
    if (step.sort_output) {
      out = SortLines(out);
      err = SortLines(err);
    }
    absl::StrAppend(&record, "$ ", step.text, "\n");
    for (const auto& line : step.body) absl::StrAppend(&record, "<< ", line, "\n");
    AppendLines(&record, out, "");
    AppendLines(&record, err, "2> ");
    if (r.timed_out) {
      absl::StrAppend(&record, "-> timed out\n\n");
    } else {
      absl::StrAppend(&record, "-> exit ", r.exit_code, "\n\n");
    }
  };
  auto join = [&] {
    for (Background& b : background) record_step(*b.step, b.result.get());
    background.clear();
  };
  for (const auto& step : steps) {
    if (step.join) {
      join();
      continue;
    }
    std::vector<std::string> args = step.args;
    for (auto& a : args) a = absl::StrReplaceAll(a, {{"$LEASE", lease_hex}});
    const std::string input = absl::StrReplaceAll(step.stdin_data, {{"$LEASE", lease_hex}});
    const std::string endpoints =
        step.all_endpoints ? cluster.client_endpoints() : cluster.client_endpoint(0);
    if (step.background_ms > 0) {
      const int stop_signal = step.interrupt ? SIGINT : SIGKILL;
      background.push_back(
          {&step, std::async(std::launch::async, [&cluster, args, endpoints, input,
                                                  ms = step.background_ms, stop_signal] {
             return cluster.Etcdctl(args, endpoints, input, std::chrono::milliseconds(ms),
                                    stop_signal);
           })});
      // Time to connect before the next lines write.
      std::this_thread::sleep_for(std::chrono::seconds(1));
      continue;
    }
    CommandResult r =
        cluster.Etcdctl(args, endpoints, input, std::chrono::milliseconds(step.timeout_ms),
                        step.interrupt ? SIGINT : SIGKILL);

    // Lease ids are chosen by the server; name them by order of grant.
    if (r.exit_code == 0 && args.size() >= 2 && args[0] == "lease" && args[1] == "grant") {
      std::vector<std::string> words = absl::StrSplit(r.out, ' ');
      uint64_t id = 0;
      if (words.size() < 2 || !absl::SimpleHexAtoi(words[1], &id)) {
        return absl::InternalError(absl::StrCat("line ", step.line, ": no lease id in ", r.out));
      }
      lease_hex = words[1];
      normalizer->AddId(id, absl::StrCat("<lease:", ++leases, ">"));
    }

    record_step(step, r);
  }
  join();
  return record;
}

// Starts a fresh 3-member cluster of `binary`, pins leadership on m1 (so
// "is leader" columns compare) and runs the transcript.
absl::StatusOr<std::string> RecordWith(const std::string& binary,
                                       const std::vector<TranscriptStep>& steps) {
  ClusterOptions options;
  options.binary = binary;
  options.members = 3;
  ProcessCluster cluster(options);
  if (auto s = cluster.Start(); !s.ok()) return s;
  if (auto s = cluster.TransferLeadership(0); !s.ok()) return s;
  auto record = RunTranscript(cluster, steps);
  if (record.ok() && EnvSet("GANGLION_KEEP_DATA")) {
    std::ofstream(cluster.data_root() + "/transcript.record") << *record;
    std::cerr << "record and logs kept in " << cluster.data_root() << "\n";
  }
  return record;
}

// Runs testdata/<name>.transcript against etcd and the binary under test and
// compares both with testdata/<name>.expected.
void CheckTranscript(const std::string& name) {
  const std::string kTranscriptPath = TranscriptPath(name);
  const std::string kGoldenPath = GoldenPath(name);
  const std::string script = ReadFile(kTranscriptPath);
  ASSERT_FALSE(script.empty()) << "cannot read " << kTranscriptPath;
  auto steps = ParseTranscript(script);
  ASSERT_TRUE(steps.ok()) << kTranscriptPath << ": " << steps.status();
  const std::string golden = ReadFile(kGoldenPath);

  std::string reference;
  if (EnvSet("GANGLION_TRANSCRIPT_SKIP_REFERENCE")) {
    ASSERT_FALSE(golden.empty()) << "no golden at " << kGoldenPath;
    reference = golden;
  } else {
    auto etcd = RecordWith(GANGLION_ETCD_BINARY, *steps);
    ASSERT_TRUE(etcd.ok()) << "reference cluster (" << GANGLION_ETCD_BINARY
                           << "): " << etcd.status();
    reference = *etcd;
    if (EnvSet("GANGLION_REWRITE")) {
      std::ofstream(kGoldenPath) << reference;
      std::cerr << "rewrote " << kGoldenPath << "\n";
    } else {
      const std::string diff = LineDiff(golden, reference, kGoldenPath, "etcd 3.4 now");
      EXPECT_TRUE(diff.empty())
          << diff
          << "etcd's record differs from the golden: either the transcript changed (rerun with "
             "GANGLION_REWRITE=1 and review the diff) or the normalizer lets run-to-run noise "
             "through";
    }
  }

  const std::string binary = BinaryUnderTest();
  auto actual = RecordWith(binary, *steps);
  ASSERT_TRUE(actual.ok()) << "cluster under test (" << binary << "): " << actual.status();
  const std::string diff = LineDiff(reference, *actual, "etcd 3.4 (reference)", binary);
  EXPECT_TRUE(diff.empty()) << diff
                            << "the binary under test answers etcdctl differently from etcd 3.4";
}

TEST(EtcdctlTranscript, BinaryUnderTestMatchesEtcd) {
  CheckTranscript("etcdctl");
}

// etcdctl watch: historical (--rev), --prefix, --prev-kv, ranges, a txn's
// events together, live events while writes run, a compacted start revision.
TEST(EtcdctlTranscript, WatchMatchesEtcd) {
  CheckTranscript("watch");
}

}  // namespace
}  // namespace ganglion::tests
