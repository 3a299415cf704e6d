#include "jepsen/nemesis/nemesis.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ganglion::jepsen {
namespace {

const std::map<std::string, std::vector<std::string>>& Groups() {
  static const auto* groups = new std::map<std::string, std::vector<std::string>>{
      {"kill", {"kill-one", "kill-leader", "kill-majority"}},
      {"pause", {"pause-one", "pause-leader"}},
      {"partition",
       {"partition-leader", "partition-halves", "partition-ring", "partition-bridge",
        "partition-one-way"}},
      {"clock", {"clock-skew"}},
      {"membership", {"membership"}},
      {"transfer", {"transfer"}},
      {"compaction", {"compaction"}},
  };
  return *groups;
}

std::string Names(const Cluster& c, const std::vector<int>& members) {
  return absl::StrJoin(members, ",",
                       [&](std::string* out, int i) { absl::StrAppend(out, c.member(i).name); });
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ExpandFaults(const std::vector<std::string>& groups) {
  std::vector<std::string> out;
  auto add = [&](const std::string& f) {
    if (std::find(out.begin(), out.end(), f) == out.end()) out.push_back(f);
  };
  for (const std::string& g : groups) {
    if (g == "all") {
      for (const auto& [name, faults] : Groups()) {
        for (const auto& f : faults) add(f);
      }
    } else if (g == "none") {
    } else if (auto it = Groups().find(g); it != Groups().end()) {
      for (const auto& f : it->second) add(f);
    } else if (g == "kill-all") {
      add(g);
    } else {
      bool known = false;
      for (const auto& [name, faults] : Groups()) {
        known = known || std::find(faults.begin(), faults.end(), g) != faults.end();
      }
      if (!known) return absl::InvalidArgumentError(absl::StrCat("unknown nemesis \"", g, "\""));
      add(g);
    }
  }
  return out;
}

Nemesis::Nemesis(Cluster& cluster, NemesisOptions options, std::function<int64_t()> now_ns)
    : cluster_(cluster),
      options_(std::move(options)),
      now_ns_(std::move(now_ns)),
      rng_(options_.seed) {}

Nemesis::~Nemesis() {
  Stop();
}

void Nemesis::Start() {
  if (options_.faults.empty()) return;
  thread_ = std::thread([this] { Run(); });
}

void Nemesis::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::vector<NemesisInterval> Nemesis::intervals() const {
  std::lock_guard lock(const_cast<std::mutex&>(mu_));
  return intervals_;
}

bool Nemesis::SleepFor(std::chrono::milliseconds d) {
  std::unique_lock lock(mu_);
  return !cv_.wait_for(lock, d, [this] { return stop_; });
}

std::chrono::milliseconds Nemesis::Between(std::chrono::milliseconds lo,
                                           std::chrono::milliseconds hi) {
  if (hi <= lo) return lo;
  return lo + std::chrono::milliseconds(rng_() % (hi - lo).count());
}

std::vector<int> Nemesis::Pick(int count) {
  std::vector<int> all;
  for (int i = 0; i < cluster_.size(); i++) all.push_back(i);
  std::shuffle(all.begin(), all.end(), rng_);
  all.resize(std::min<size_t>(count, all.size()));
  std::sort(all.begin(), all.end());
  return all;
}

void Nemesis::Run() {
  while (SleepFor(Between(options_.quiet_min, options_.quiet_max))) {
    const std::string fault = options_.faults[rng_() % options_.faults.size()];
    NemesisInterval interval;
    interval.fault = fault;
    interval.start_ns = now_ns_();
    auto heal = Inject(fault, interval.detail);
    spdlog::info("event=nemesis fault={} detail=\"{}\" ok={}", fault, interval.detail, heal.ok());
    if (!heal.ok()) {
      interval.error = heal.status().ToString();
    } else if (*heal) {
      // Held until its time is up or the run stops; healed either way.
      SleepFor(Between(options_.fault_min, options_.fault_max));
      if (absl::Status s = (*heal)(); !s.ok()) {
        interval.error = absl::StrCat("heal: ", s.ToString());
        spdlog::warn("event=nemesis_heal_failed fault={} error=\"{}\"", fault, s.ToString());
      }
    }
    interval.end_ns = now_ns_();
    std::lock_guard lock(mu_);
    intervals_.push_back(std::move(interval));
  }
}

absl::StatusOr<std::function<absl::Status()>> Nemesis::Inject(const std::string& fault,
                                                              std::string& detail) {
  const int n = cluster_.size();
  const int majority = n / 2 + 1;
  auto leader_or_random = [&](bool leader) -> std::vector<int> {
    if (leader) {
      auto l = cluster_.Leader();
      if (l.ok()) return {*l};
    }
    return Pick(1);
  };

  if (absl::StartsWith(fault, "kill-")) {
    std::vector<int> victims = fault == "kill-one"        ? Pick(1)
                               : fault == "kill-leader"   ? leader_or_random(true)
                               : fault == "kill-majority" ? Pick(majority)
                                                          : Pick(n);
    detail = absl::StrCat("kill -9 ", Names(cluster_, victims));
    for (int v : victims) {
      if (auto s = cluster_.Kill(v); !s.ok()) return s;
    }
    return std::function<absl::Status()>([this, victims] {
      absl::Status first;
      for (int v : victims) {
        if (auto s = cluster_.StartMember(v); !s.ok() && first.ok()) first = s;
      }
      return first;
    });
  }

  if (absl::StartsWith(fault, "pause-")) {
    std::vector<int> victims = leader_or_random(fault == "pause-leader");
    detail = absl::StrCat("SIGSTOP ", Names(cluster_, victims));
    for (int v : victims) {
      if (auto s = cluster_.Pause(v); !s.ok()) return s;
    }
    return std::function<absl::Status()>([this, victims] {
      for (int v : victims) (void)cluster_.Resume(v);
      return absl::OkStatus();
    });
  }

  if (absl::StartsWith(fault, "partition-")) {
    std::vector<std::set<int>> drop(n);
    auto cut = [&](const std::vector<int>& a, const std::vector<int>& b) {
      for (int x : a) {
        for (int y : b) {
          drop[x].insert(y);
          drop[y].insert(x);
        }
      }
    };
    std::vector<int> order = Pick(n);
    std::shuffle(order.begin(), order.end(), rng_);
    if (fault == "partition-leader") {
      int l = leader_or_random(true)[0];
      std::vector<int> rest;
      for (int i = 0; i < n; i++) {
        if (i != l) rest.push_back(i);
      }
      cut({l}, rest);
      detail = absl::StrCat("isolate leader ", cluster_.member(l).name);
    } else if (fault == "partition-halves") {
      std::vector<int> minority(order.begin(), order.begin() + n / 2);
      std::vector<int> rest(order.begin() + n / 2, order.end());
      cut(minority, rest);
      detail = absl::StrCat("minority ", Names(cluster_, minority), " | majority ",
                            Names(cluster_, rest));
    } else if (fault == "partition-ring") {
      // Each member hears only its two neighbours in a random ring, so every
      // member sees a majority but no two majorities are the same.
      for (int k = 0; k < n; k++) {
        for (int d = 2; d <= n - 2; d++) drop[order[k]].insert(order[(k + d) % n]);
      }
      detail = absl::StrCat("ring ", Names(cluster_, order));
    } else if (fault == "partition-bridge") {
      // Two halves that reach each other only through one member.
      const int half = (n - 1) / 2;
      std::vector<int> a(order.begin(), order.begin() + half);
      std::vector<int> b(order.begin() + half + 1, order.end());
      cut(a, b);
      detail = absl::StrCat(Names(cluster_, a), " <-> bridge ", cluster_.member(order[half]).name,
                            " <-> ", Names(cluster_, b));
    } else {  // partition-one-way
      int deaf = leader_or_random(rng_() % 2 == 0)[0];
      for (int i = 0; i < n; i++) {
        if (i != deaf) drop[deaf].insert(i);
      }
      detail = absl::StrCat(cluster_.member(deaf).name, " hears nobody (others hear it)");
    }
    absl::StrAppend(&detail, " [", cluster_.net_mode(), "]");
    if (auto s = cluster_.Partition(drop); !s.ok()) {
      (void)cluster_.Heal();
      return s;
    }
    return std::function<absl::Status()>([this] { return cluster_.Heal(); });
  }

  if (fault == "clock-skew") {
    if (!std::filesystem::exists(options_.faketime_lib)) {
      return absl::FailedPreconditionError(
          absl::StrCat(options_.faketime_lib, " missing (apt-get install libfaketime)"));
    }
    static const char* kSkews[] = {"+90s", "-90s", "+0 x1.2", "+0 x0.8"};
    const std::string skew = kSkews[rng_() % 4];
    int v = Pick(1)[0];
    detail = absl::StrCat(cluster_.member(v).name, " restarted with FAKETIME=\"", skew, "\"");
    if (auto s = cluster_.Kill(v); !s.ok()) return s;
    if (auto s = cluster_.StartMember(
            v, {"LD_PRELOAD=" + options_.faketime_lib, "FAKETIME=" + skew, "FAKETIME_NO_CACHE=1"});
        !s.ok()) {
      return s;
    }
    return std::function<absl::Status()>([this, v] {
      if (auto s = cluster_.Kill(v); !s.ok()) return s;
      return cluster_.StartMember(v);
    });
  }

  if (fault == "membership") {
    auto leader = cluster_.Leader();
    if (!leader.ok()) return leader.status();
    int v = (*leader + 1 + static_cast<int>(rng_() % (n - 1))) % n;
    detail = absl::StrCat("remove ", cluster_.member(v).name, ", later add back as new");
    if (auto s = cluster_.Remove(v); !s.ok()) return s;
    return std::function<absl::Status()>([this, v] { return cluster_.AddBack(v); });
  }

  if (fault == "transfer") {
    auto leader = cluster_.Leader();
    if (!leader.ok()) return leader.status();
    int to = (*leader + 1 + static_cast<int>(rng_() % (n - 1))) % n;
    detail = absl::StrCat("move leader ", cluster_.member(*leader).name, " -> ",
                          cluster_.member(to).name);
    if (auto s = cluster_.TransferLeadership(to); !s.ok()) return s;
    return std::function<absl::Status()>();
  }

  if (fault == "compaction") {
    auto current = cluster_.CurrentRevision();
    if (!current.ok()) return current.status();
    int64_t rev = *current - 1;
    if (options_.compaction_floor) rev = std::min(rev, options_.compaction_floor());
    if (rev < 2 || rev <= compacted_revision_) {
      // A watcher still needs what is left, or it is compacted already.
      detail = "nothing to compact";
      return std::function<absl::Status()>();
    }
    detail = absl::StrCat("compact to rev ", rev, " (current ", *current, ")");
    auto r = cluster_.Compact(rev);
    if (!r.ok()) return r.status();
    compacted_revision_ = rev;
    return std::function<absl::Status()>();
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown fault ", fault));
}

}  // namespace ganglion::jepsen
