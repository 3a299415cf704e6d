// PodWorker with real supervised processes (the ganglion-agent binary as the
// supervisor) but no store: restart policies and phases, back-off, init
// containers, termination, and adoption of a running container by a second
// worker built from the first one's state on disk (an agent restart).
#include "orchestrator/agent/pod_worker.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "orchestrator/agent/process.h"

namespace ganglion::orchestrator::agent {
namespace {

namespace fs = std::filesystem;

class PodWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / absl::StrCat("pod_worker_test_", getpid(), "_", counter_++);
    fs::create_directories(dir_);
    config_.agent_binary = GANGLION_AGENT_BINARY;
    config_.node_name = "n1";
    config_.node_ip = "127.0.0.1";
    config_.pods_dir = (dir_ / "pods").string();
    config_.backoff = {absl::Milliseconds(200), absl::Milliseconds(800), absl::Minutes(10)};
    config_.base_env = {"PATH=/usr/bin:/bin"};
  }
  void TearDown() override {
    for (auto& w : workers_) {
      for (const auto& [name, r] : w->record().containers) {
        if (r.pid != 0) SignalGroup(r.pid, SIGKILL);
      }
    }
    fs::remove_all(dir_);
  }

  static Json Pod(const std::string& restart_policy, std::vector<std::string> script,
                  std::vector<std::string> init = {}) {
    Json containers = Json::array();
    for (size_t i = 0; i < script.size(); ++i) {
      containers.push_back({{"name", absl::StrCat("c", i)},
                            {"image", "none"},
                            {"command", {"sh", "-c", script[i]}}});
    }
    Json pod = {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata", {{"name", "p"}, {"namespace", "ns"}, {"uid", "uid-1"}}},
                {"spec",
                 {{"nodeName", "n1"},
                  {"restartPolicy", restart_policy},
                  {"terminationGracePeriodSeconds", 1},
                  {"containers", containers}}}};
    if (!init.empty()) {
      Json ic = Json::array();
      for (size_t i = 0; i < init.size(); ++i) {
        ic.push_back({{"name", absl::StrCat("init", i)},
                      {"image", "none"},
                      {"command", {"sh", "-c", init[i]}}});
      }
      pod["spec"]["initContainers"] = ic;
    }
    return pod;
  }

  PodWorker& NewWorker(PodRecord record) {
    workers_.push_back(std::make_unique<PodWorker>(config_, std::move(record)));
    return *workers_.back();
  }
  PodWorker& NewWorker() {
    PodRecord r;
    r.uid = "uid-1";
    r.namespace_name = "ns";
    r.name = "p";
    r.pod_ip = "127.9.9.9";
    return NewWorker(r);
  }

  // Syncs every 50 ms until `done` holds for the built status (or 10 s pass).
  static bool SyncUntil(PodWorker& w, const Json* pod,
                        const std::function<bool(const Json&)>& done) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (absl::Now() < deadline) {
      w.Sync(pod, absl::Now());
      if (auto s = w.StatusToWrite()) {
        if (done(*s)) return true;
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }
  static std::string Phase(const Json& s) { return s.value("phase", ""); }

  fs::path dir_;
  WorkerConfig config_;
  std::vector<std::unique_ptr<PodWorker>> workers_;
  static inline int counter_ = 0;
};

TEST_F(PodWorkerTest, NeverWithAFailureIsFailed) {
  Json pod = Pod("Never", {"exit 2"});
  PodWorker& w = NewWorker();
  ASSERT_TRUE(SyncUntil(w, &pod, [](const Json& s) { return Phase(s) == "Failed"; }));
  Json s = *w.StatusToWrite();
  EXPECT_EQ(s["containerStatuses"][0]["state"]["terminated"]["exitCode"], 2);
  EXPECT_EQ(s["containerStatuses"][0]["state"]["terminated"]["reason"], "Error");
  EXPECT_EQ(s["containerStatuses"][0]["restartCount"], 0);
}

TEST_F(PodWorkerTest, OnFailureRestartsUntilSuccessThenSucceeded) {
  // Fails twice (a counter file in the working directory), then succeeds.
  Json pod =
      Pod("OnFailure", {"n=$(cat n 2>/dev/null || echo 0); echo $((n+1)) > n; [ $n -ge 2 ]"});
  PodWorker& w = NewWorker();
  ASSERT_TRUE(SyncUntil(w, &pod, [](const Json& s) { return Phase(s) == "Succeeded"; }));
  Json s = *w.StatusToWrite();
  EXPECT_EQ(s["containerStatuses"][0]["restartCount"], 2);
  EXPECT_EQ(s["containerStatuses"][0]["state"]["terminated"]["reason"], "Completed");
}

TEST_F(PodWorkerTest, AlwaysBacksOffWithCrashLoopBackOff) {
  Json pod = Pod("Always", {"exit 0"});
  PodWorker& w = NewWorker();
  ASSERT_TRUE(SyncUntil(w, &pod, [](const Json& s) {
    const Json& st = s["containerStatuses"][0]["state"];
    return st.contains("waiting") && st["waiting"].value("reason", "") == "CrashLoopBackOff";
  }));
  // A container that exits with 0 under Always is restarted too.
  ASSERT_TRUE(SyncUntil(w, &pod, [](const Json& s) {
    return s["containerStatuses"][0].value("restartCount", 0) >= 2;
  }));
  Json s = *w.StatusToWrite();
  EXPECT_EQ(Phase(s), "Running");
  EXPECT_EQ(s["containerStatuses"][0]["lastState"]["terminated"]["reason"], "Completed");
}

TEST_F(PodWorkerTest, InitContainersRunFirstInOrder) {
  Json pod = Pod("Never", {"cat order"}, {"echo a >> order", "echo b >> order"});
  PodWorker& w = NewWorker();
  ASSERT_TRUE(SyncUntil(w, &pod, [](const Json& s) { return Phase(s) == "Succeeded"; }));
  Json s = *w.StatusToWrite();
  EXPECT_EQ(s["initContainerStatuses"].size(), 2u);
  const std::string order_file = w.PodDir() + "/rootfs/order";
  std::ifstream in(order_file);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "a\nb\n");
}

TEST_F(PodWorkerTest, FailedInitContainerWithNeverFailsThePod) {
  Json pod = Pod("Never", {"echo never runs > ran"}, {"exit 1"});
  PodWorker& w = NewWorker();
  ASSERT_TRUE(SyncUntil(w, &pod, [](const Json& s) { return Phase(s) == "Failed"; }));
  EXPECT_FALSE(fs::exists(w.PodDir() + "/rootfs/ran"));
}

TEST_F(PodWorkerTest, DeletionStopsThenAllowsConfirmation) {
  Json pod = Pod("Always", {"trap '' TERM; while true; do sleep 0.1; done"});
  PodWorker& w = NewWorker();
  ASSERT_TRUE(SyncUntil(w, &pod, [](const Json& s) { return Phase(s) == "Running"; }));
  const pid_t pgid = w.record().containers.at("c0").pid;
  ASSERT_FALSE(GroupMembers(pgid).empty());
  pod["metadata"]["deletionTimestamp"] = "2000-01-01T00:00:00Z";  // past: no grace left
  pod["metadata"]["deletionGracePeriodSeconds"] = 1;
  const absl::Time start = absl::Now();
  while (!w.ReadyToConfirmDelete() && absl::Now() - start < absl::Seconds(10)) {
    w.Sync(&pod, absl::Now());
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(w.ReadyToConfirmDelete());
  EXPECT_TRUE(GroupMembers(pgid).empty());
  w.Sync(nullptr, absl::Now());
  EXPECT_TRUE(w.Done());
}

TEST_F(PodWorkerTest, ASecondWorkerFromTheStateFileAdoptsTheProcess) {
  Json pod = Pod("Always", {"sleep 1000; exit 0"});
  PodWorker& first = NewWorker();
  ASSERT_TRUE(SyncUntil(first, &pod, [](const Json& s) { return Phase(s) == "Running"; }));
  const ContainerRecord before = first.record().containers.at("c0");
  // The supervisor, sh and sleep.
  for (int i = 0; i < 100 && GroupMembers(before.pid).size() < 3; ++i) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  const std::vector<pid_t> group = GroupMembers(before.pid);
  ASSERT_EQ(group.size(), 3u);
  auto record = ReadPodRecord(first.PodDir() + "/state.json");
  ASSERT_TRUE(record.ok()) << record.status();
  // An agent restart: a new worker from what is on disk.
  PodWorker& second = NewWorker(*record);
  ASSERT_TRUE(SyncUntil(second, &pod, [](const Json& s) { return Phase(s) == "Running"; }));
  const ContainerRecord& after = second.record().containers.at("c0");
  EXPECT_EQ(after.pid, before.pid);
  EXPECT_EQ(after.restart_count, before.restart_count);
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(GroupMembers(before.pid), group);  // the same processes, none started twice
  // The pod is gone: the adopted processes are killed.
  const absl::Time start = absl::Now();
  while (!second.Done() && absl::Now() - start < absl::Seconds(10)) {
    second.Sync(nullptr, absl::Now());
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(second.Done());
  EXPECT_TRUE(GroupMembers(before.pid).empty());
}

}  // namespace
}  // namespace ganglion::orchestrator::agent
