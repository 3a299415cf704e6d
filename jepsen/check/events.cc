#include "jepsen/check/events.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"

namespace ganglion::jepsen {
namespace {

// Reports past this many lines say nothing new.
constexpr size_t kProblemsMax = 20;

void Problem(EventCheckResult& r, std::string line, std::vector<int64_t> ops = {}) {
  r.verdict = Verdict::kInvalid;
  if (r.problems.size() < kProblemsMax) r.problems.push_back(std::move(line));
  for (int64_t op : ops) {
    if (r.ops.size() < kProblemsMax * 2) r.ops.push_back(op);
  }
}

std::string Describe(const WatchEvent& e) {
  return absl::StrCat("(rev ", e.revision, ", ", e.key, ", ", e.is_delete ? "DELETE" : e.value,
                      ")");
}

}  // namespace

EventCheckResult CheckWatch(const std::vector<WatcherLog>& watchers,
                            const std::vector<AckedWrite>& acked) {
  EventCheckResult r;
  if (watchers.empty()) return r;
  // Each watcher alone: strictly increasing revisions within a revision's
  // events are allowed to share the revision (a Txn writes several keys),
  // but one (revision, key) twice is a duplicate.
  for (const WatcherLog& w : watchers) {
    if (!w.complete) {
      Problem(r,
              absl::StrCat("watcher ", w.watcher, " did not reach the final revision: ", w.error));
    }
    std::set<std::pair<int64_t, std::string>> seen;
    for (size_t i = 0; i < w.events.size(); i++) {
      const WatchEvent& e = w.events[i];
      if (i > 0 && e.revision < w.events[i - 1].revision) {
        Problem(r, absl::StrCat("watcher ", w.watcher, ": ", Describe(e), " after ",
                                Describe(w.events[i - 1]), " (out of order)"));
      }
      if (!seen.insert({e.revision, e.key}).second) {
        Problem(r, absl::StrCat("watcher ", w.watcher, ": ", Describe(e), " delivered twice"));
      }
    }
  }
  // Against each other: the union of what any watcher saw is the reference;
  // a watcher missing an event of it has a gap, one that disagrees on an
  // event's value saw a different history.
  std::map<std::pair<int64_t, std::string>, WatchEvent> all;
  for (const WatcherLog& w : watchers) {
    for (const WatchEvent& e : w.events) {
      auto [it, fresh] = all.emplace(std::make_pair(e.revision, e.key), e);
      if (!fresh && !(it->second == e)) {
        Problem(r, absl::StrCat("watchers disagree at rev ", e.revision, " key ", e.key, ": ",
                                Describe(it->second), " vs ", Describe(e), " (watcher ", w.watcher,
                                ")"));
      }
    }
  }
  for (const WatcherLog& w : watchers) {
    if (!w.complete) continue;
    std::set<std::pair<int64_t, std::string>> has;
    for (const WatchEvent& e : w.events) has.insert({e.revision, e.key});
    size_t missing = 0;
    for (const auto& [k, e] : all) {
      if (has.contains(k)) continue;
      if (missing++ == 0) {
        Problem(r, absl::StrCat("watcher ", w.watcher, " has a gap: it never saw ", Describe(e),
                                " that another watcher saw"));
      }
    }
    if (missing > 1)
      Problem(r, absl::StrCat("watcher ", w.watcher, " missed ", missing, " events"));
  }
  // Every acknowledged write, at the revision its response named.
  for (const AckedWrite& a : acked) {
    auto it = all.find({a.revision, a.key});
    if (it == all.end()) {
      Problem(r,
              absl::StrCat("acknowledged write of ", a.key, "=", a.value, " at rev ", a.revision,
                           " never reached a watcher"),
              {a.op_index});
    } else if (it->second.is_delete || it->second.value != a.value) {
      Problem(r,
              absl::StrCat("acknowledged write of ", a.key, "=", a.value, " at rev ", a.revision,
                           " but watchers saw ", Describe(it->second)),
              {a.op_index});
    }
  }
  return r;
}

EventCheckResult CheckFencedWrites(std::vector<FencedWrite> writes) {
  EventCheckResult r;
  std::sort(writes.begin(), writes.end(),
            [](const FencedWrite& a, const FencedWrite& b) { return a.revision < b.revision; });
  std::set<int64_t> finished;  // holders another holder's write followed
  for (size_t i = 0; i < writes.size(); i++) {
    const FencedWrite& w = writes[i];
    if (i == 0) continue;
    const FencedWrite& prev = writes[i - 1];
    if (w.revision == prev.revision) {
      Problem(r, absl::StrCat("two fenced writes at one revision ", w.revision),
              {prev.op_index, w.op_index});
    }
    if (w.token == prev.token) continue;
    if (finished.contains(w.token)) {
      Problem(r,
              absl::StrCat("holder with token ", w.token, " (process ", w.process,
                           ") wrote at rev ", w.revision, " after holder ", prev.token,
                           " had written: their critical sections interleave"),
              {prev.op_index, w.op_index});
    }
    if (w.token < prev.token) {
      Problem(r,
              absl::StrCat("fencing token went backwards: ", prev.token, " at rev ", prev.revision,
                           ", then ", w.token, " at rev ", w.revision),
              {prev.op_index, w.op_index});
    }
    finished.insert(prev.token);
  }
  return r;
}

EventCheckResult CheckLeases(const std::vector<LeaseLife>& leases, int64_t grace_ns) {
  EventCheckResult r;
  for (const LeaseLife& l : leases) {
    // A keep-alive that succeeded proves the lease lived until the server
    // handled it, which was after the keep-alive was sent.
    int64_t alive_until_ns = -1;
    for (int64_t s : l.renewal_start_ns) alive_until_ns = std::max(alive_until_ns, s);
    for (const LeaseRead& read : l.reads) {
      if (read.present) {
        if (l.stopped_ns >= 0 && read.start_ns >= l.stopped_ns &&
            read.start_ns > l.last_renewal_end_ns + l.ttl_s * 1'000'000'000 + grace_ns) {
          Problem(
              r,
              absl::StrCat("key ", l.key, " of lease ", absl::Hex(l.lease_id), " still present ",
                           (read.start_ns - l.last_renewal_end_ns) / 1'000'000,
                           " ms after its last renewal (ttl ", l.ttl_s, " s)"),
              {read.op_index});
        }
        continue;
      }
      if (read.start_ns >= l.put_end_ns && read.end_ns <= alive_until_ns) {
        Problem(r,
                absl::StrCat("key ", l.key, " of lease ", absl::Hex(l.lease_id),
                             " vanished while its lease was kept alive (a later keep-alive "
                             "succeeded)"),
                {read.op_index});
      }
    }
  }
  return r;
}

}  // namespace ganglion::jepsen
