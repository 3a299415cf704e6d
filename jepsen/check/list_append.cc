#include "jepsen/check/list_append.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ganglion::jepsen {
namespace {

enum EdgeKind : uint8_t { kWW = 1, kWR = 2, kRW = 4, kRT = 8 };

struct Graph {
  // node -> (successor -> kinds of edges between them)
  std::vector<std::map<size_t, uint8_t>> out;
  explicit Graph(size_t n) : out(n) {}
  void Add(size_t from, size_t to, EdgeKind k) {
    if (from != to) out[from][to] |= k;
  }
};

std::string EdgeName(uint8_t k) {
  if (k & kWW) return "ww";
  if (k & kWR) return "wr";
  if (k & kRW) return "rw";
  return "rt";
}

// Strongly connected components (Tarjan, iterative).
std::vector<std::vector<size_t>> Components(const Graph& g) {
  const size_t n = g.out.size();
  std::vector<int64_t> index(n, -1), low(n, 0);
  std::vector<bool> on_stack(n, false);
  std::vector<size_t> stack;
  std::vector<std::vector<size_t>> sccs;
  int64_t counter = 0;
  for (size_t root = 0; root < n; root++) {
    if (index[root] >= 0) continue;
    std::vector<std::pair<size_t, std::map<size_t, uint8_t>::const_iterator>> work;
    index[root] = low[root] = counter++;
    stack.push_back(root);
    on_stack[root] = true;
    work.push_back({root, g.out[root].begin()});
    while (!work.empty()) {
      auto& [v, it] = work.back();
      if (it != g.out[v].end()) {
        const size_t w = it->first;
        ++it;
        if (index[w] < 0) {
          index[w] = low[w] = counter++;
          stack.push_back(w);
          on_stack[w] = true;
          work.push_back({w, g.out[w].begin()});
        } else if (on_stack[w]) {
          low[v] = std::min(low[v], index[w]);
        }
        continue;
      }
      if (low[v] == index[v]) {
        std::vector<size_t> scc;
        size_t w;
        do {
          w = stack.back();
          stack.pop_back();
          on_stack[w] = false;
          scc.push_back(w);
        } while (w != v);
        if (scc.size() > 1) sccs.push_back(std::move(scc));
      }
      const size_t done = v;
      work.pop_back();
      if (!work.empty()) low[work.back().first] = std::min(low[work.back().first], low[done]);
    }
  }
  return sccs;
}

// A shortest cycle through `start` inside `members`, using only edges whose
// kinds intersect `allowed` and at most `rw_max` read-write edges (-1: any).
// `nodes` are the cycle from `start`; kinds[i] is the edge nodes[i] ->
// nodes[i+1] (the last one closes the cycle).
bool FindCycle(const Graph& g, const std::set<size_t>& members, size_t start, uint8_t allowed,
               int rw_max, std::vector<size_t>* nodes, std::vector<uint8_t>* kinds) {
  using State = std::pair<size_t, int>;  // node, read-write edges used
  struct Prev {
    State from;
    uint8_t kind;
  };
  std::map<State, Prev> prev;
  std::set<State> seen = {{start, 0}};
  std::deque<State> queue = {{start, 0}};
  while (!queue.empty()) {
    const State at = queue.front();
    queue.pop_front();
    for (const auto& [w, k] : g.out[at.first]) {
      if (!members.count(w)) continue;
      const uint8_t take = k & allowed;
      if (!take) continue;
      // Of several kinds on one edge, the weakest claim: anything but rw.
      const uint8_t others = take & static_cast<uint8_t>(~kRW);
      const uint8_t kind =
          others ? static_cast<uint8_t>(others & -others) : static_cast<uint8_t>(kRW);
      const int used = at.second + (kind == kRW && rw_max >= 0 ? 1 : 0);
      if (rw_max >= 0 && used > rw_max) continue;
      if (w == start) {
        std::vector<size_t> path = {at.first};
        std::vector<uint8_t> path_kinds;
        for (State cur = at; cur != State{start, 0};) {
          const Prev& p = prev.at(cur);
          path_kinds.push_back(p.kind);
          path.push_back(p.from.first);
          cur = p.from;
        }
        std::reverse(path.begin(), path.end());
        std::reverse(path_kinds.begin(), path_kinds.end());
        path_kinds.push_back(kind);
        *nodes = std::move(path);
        *kinds = std::move(path_kinds);
        return true;
      }
      const State next = {w, used};
      if (!seen.insert(next).second) continue;
      prev[next] = {at, kind};
      queue.push_back(next);
    }
  }
  return false;
}

}  // namespace

ListAppendResult CheckListAppend(const std::vector<Operation>& history) {
  ListAppendResult result;
  // Who appended what: (key, value) -> op, for every append in ok, info and
  // failed transactions; and each transaction's final append per key.
  std::map<std::pair<std::string, int64_t>, const Operation*> appender;
  std::map<std::pair<std::string, int64_t>, bool> final_append;  // within its txn
  for (const Operation& op : history) {
    if (op.f != "txn") continue;
    std::map<std::string, int64_t> last;
    for (const MicroOp& m : op.txn) {
      if (m.kind != MicroOp::kAppend) continue;
      auto [it, fresh] = appender.emplace(std::make_pair(m.key, m.value), &op);
      if (!fresh) {
        result.anomalies.push_back(
            {"duplicate-append",
             {it->second->index, op.index},
             absl::StrCat("value ", m.value, " appended to ", m.key, " twice")});
      }
      last[m.key] = m.value;
    }
    for (const MicroOp& m : op.txn) {
      if (m.kind == MicroOp::kAppend) final_append[{m.key, m.value}] = last[m.key] == m.value;
    }
  }
  // The committed transactions are the graph's nodes.
  std::vector<const Operation*> txns;
  std::unordered_map<const Operation*, size_t> node_of;
  for (const Operation& op : history) {
    if (op.f == "txn" && op.type == OpType::kOk) {
      node_of[&op] = txns.size();
      txns.push_back(&op);
    }
  }
  result.transactions = txns.size();

  // Each key's version order: the longest list read; every other read must
  // be a prefix of it.
  std::map<std::string, std::vector<int64_t>> order;
  for (const Operation* t : txns) {
    for (const MicroOp& m : t->txn) {
      if (m.kind != MicroOp::kRead || !m.read) continue;
      std::vector<int64_t>& longest = order[m.key];
      if (m.read->size() > longest.size()) longest = *m.read;
    }
  }
  for (const Operation* t : txns) {
    for (const MicroOp& m : t->txn) {
      if (m.kind != MicroOp::kRead || !m.read) continue;
      const std::vector<int64_t>& longest = order[m.key];
      if (!std::equal(m.read->begin(), m.read->end(), longest.begin())) {
        result.anomalies.push_back(
            {"incompatible-order",
             {t->index},
             absl::StrCat("read of ", m.key, " [", absl::StrJoin(*m.read, " "),
                          "] is not a prefix of [", absl::StrJoin(longest, " "), "]")});
      }
      std::set<int64_t> seen;
      for (size_t i = 0; i < m.read->size(); i++) {
        const int64_t v = (*m.read)[i];
        if (!seen.insert(v).second) {
          result.anomalies.push_back(
              {"duplicate-element", {t->index}, absl::StrCat(m.key, " holds ", v, " twice")});
        }
        auto a = appender.find({m.key, v});
        if (a == appender.end()) {
          result.anomalies.push_back(
              {"garbage-read", {t->index}, absl::StrCat(m.key, " holds ", v, ", never appended")});
          continue;
        }
        if (a->second->type == OpType::kFail) {
          result.anomalies.push_back(
              {"G1a",
               {a->second->index, t->index},
               absl::StrCat("read ", v, " in ", m.key, ", appended by a failed transaction")});
        }
        // The last element read is what the reader observed of that writer.
        if (i + 1 == m.read->size() && a->second != t && !final_append[{m.key, v}]) {
          result.anomalies.push_back({"G1b",
                                      {a->second->index, t->index},
                                      absl::StrCat("read of ", m.key, " ends at ", v,
                                                   ", an intermediate append of its transaction")});
        }
      }
    }
  }

  // The dependency graph.
  Graph g(txns.size());
  auto writer_node = [&](const std::string& key, int64_t v) -> int64_t {
    auto a = appender.find({key, v});
    if (a == appender.end()) return -1;
    auto n = node_of.find(a->second);
    return n == node_of.end() ? -1 : static_cast<int64_t>(n->second);
  };
  for (const auto& [key, versions] : order) {
    for (size_t i = 0; i + 1 < versions.size(); i++) {
      const int64_t a = writer_node(key, versions[i]), b = writer_node(key, versions[i + 1]);
      if (a >= 0 && b >= 0) g.Add(static_cast<size_t>(a), static_cast<size_t>(b), kWW);
    }
  }
  for (size_t n = 0; n < txns.size(); n++) {
    for (const MicroOp& m : txns[n]->txn) {
      if (m.kind != MicroOp::kRead || !m.read) continue;
      const std::vector<int64_t>& versions = order[m.key];
      if (!m.read->empty()) {
        const int64_t w = writer_node(m.key, m.read->back());
        if (w >= 0) g.Add(static_cast<size_t>(w), n, kWR);
      }
      // The version after the one read was written by someone who overwrote it.
      if (m.read->size() < versions.size()) {
        const int64_t next = writer_node(m.key, versions[m.read->size()]);
        if (next >= 0) g.Add(n, static_cast<size_t>(next), kRW);
      }
    }
  }
  // Real time, reduced: each transaction follows the frontier of those that
  // completed before it began.
  {
    struct Event {
      int64_t time;
      bool invoke;
      size_t node;
    };
    std::vector<Event> events;
    for (size_t n = 0; n < txns.size(); n++) {
      events.push_back({txns[n]->start_ns, true, n});
      events.push_back({txns[n]->end_ns, false, n});
    }
    std::sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
      if (a.time != b.time) return a.time < b.time;
      return a.invoke && !b.invoke;  // same instant: concurrent
    });
    std::set<size_t> frontier;
    std::vector<std::vector<size_t>> preds(txns.size());
    for (const Event& e : events) {
      if (e.invoke) {
        preds[e.node].assign(frontier.begin(), frontier.end());
        for (size_t p : frontier) g.Add(p, e.node, kRT);
      } else {
        for (size_t p : preds[e.node]) frontier.erase(p);
        frontier.insert(e.node);
      }
    }
  }

  // Cycles, one reported per strongly connected component, classified by
  // the weakest edges that make one.
  for (const auto& scc : Components(g)) {
    const std::set<size_t> members(scc.begin(), scc.end());
    struct Level {
      const char* name;
      uint8_t allowed;
      int rw_max;
    };
    const Level levels[] = {{"G0", kWW, 0},
                            {"G1c", kWW | kWR, 0},
                            {"G-single", kWW | kWR | kRW, 1},
                            {"G2", kWW | kWR | kRW, -1},
                            {"G0-realtime", kWW | kRT, 0},
                            {"G1c-realtime", kWW | kWR | kRT, 0},
                            {"G-single-realtime", kWW | kWR | kRW | kRT, 1},
                            {"G2-realtime", kWW | kWR | kRW | kRT, -1}};
    bool found = false;
    for (const Level& level : levels) {
      for (size_t start : scc) {
        std::vector<size_t> nodes;
        std::vector<uint8_t> kinds;
        if (!FindCycle(g, members, start, level.allowed, level.rw_max, &nodes, &kinds)) continue;
        Anomaly a;
        a.type = level.name;
        std::vector<std::string> steps;
        for (size_t i = 0; i < nodes.size(); i++) {
          a.ops.push_back(txns[nodes[i]]->index);
          steps.push_back(
              absl::StrCat("op ", txns[nodes[i]]->index, " -", EdgeName(kinds[i]), "-> "));
        }
        a.explanation = absl::StrCat(absl::StrJoin(steps, ""), "op ", txns[nodes[0]]->index);
        result.anomalies.push_back(std::move(a));
        found = true;
        break;
      }
      if (found) break;
    }
  }
  if (!result.anomalies.empty()) result.verdict = Verdict::kInvalid;
  return result;
}

}  // namespace ganglion::jepsen
