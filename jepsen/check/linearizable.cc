#include "jepsen/check/linearizable.h"

#include <algorithm>
#include <atomic>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_set>

#include "absl/strings/str_cat.h"

namespace ganglion::jepsen {

const char* VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kValid:
      return "valid";
    case Verdict::kInvalid:
      return "invalid";
    case Verdict::kUnknown:
      return "unknown";
  }
  return "?";
}

namespace {

// The register: absent, or holding a value.
struct RegisterState {
  bool present = false;
  int64_t value = 0;
  bool operator==(const RegisterState&) const = default;
};

// The state after `op` from `s`, if `op` is legal there. For an
// indeterminate op, variant 1 is "it never happened".
std::optional<RegisterState> Apply(const Operation& op, const RegisterState& s, int variant) {
  if (variant == 1) return s;
  if (op.f == "read") {
    const bool expect_present = op.value.has_value();
    if (s.present != expect_present) return std::nullopt;
    if (expect_present && s.value != *op.value) return std::nullopt;
    return s;
  }
  if (op.f == "write") return RegisterState{true, op.value.value_or(0)};
  if (op.f == "cas") {
    if (!s.present || !op.value || s.value != *op.value) return std::nullopt;
    return RegisterState{true, op.value2.value_or(0)};
  }
  return std::nullopt;
}

// The search over one key's operations.
class WglSearch {
 public:
  WglSearch(std::vector<const Operation*> ops, std::chrono::steady_clock::time_point deadline)
      : ops_(std::move(ops)), deadline_(deadline) {}

  KeyResult Run() {
    KeyResult result;
    result.operations = ops_.size();
    const size_t n = ops_.size();
    if (n == 0) return result;
    // Events: a call and a return per op; an indeterminate op returns after
    // everything (it may take effect at any later time).
    struct Event {
      int64_t time;
      bool is_call;
      size_t op;
    };
    std::vector<Event> events;
    events.reserve(2 * n);
    for (size_t i = 0; i < n; i++) {
      const Operation& op = *ops_[i];
      events.push_back({op.start_ns, true, i});
      const int64_t end =
          op.type == OpType::kInfo ? std::numeric_limits<int64_t>::max() : op.end_ns;
      events.push_back({end, false, i});
    }
    // Calls before returns at the same instant: such ops may overlap.
    std::stable_sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
      if (a.time != b.time) return a.time < b.time;
      return a.is_call && !b.is_call;
    });
    // A doubly linked list over the events, with a head sentinel at index 0.
    const size_t m = events.size() + 1;
    next_.assign(m, 0);
    prev_.assign(m, 0);
    is_call_.assign(m, false);
    op_of_.assign(m, 0);
    call_entry_.assign(n, 0);
    return_entry_.assign(n, 0);
    for (size_t e = 0; e < events.size(); e++) {
      const size_t node = e + 1;
      is_call_[node] = events[e].is_call;
      op_of_[node] = events[e].op;
      (events[e].is_call ? call_entry_ : return_entry_)[events[e].op] = node;
      prev_[node] = node - 1;
      next_[node - 1] = node;
      next_[node] = 0;  // 0: end of list
    }

    struct Frame {
      size_t entry;  // the call entry lifted
      RegisterState before;
      int variant;
    };
    std::vector<Frame> stack;
    std::vector<bool> linearized(n, false);
    std::unordered_set<std::string> cache;
    RegisterState state;
    size_t entry = next_[0];
    int start_variant = 0;
    uint64_t steps = 0;
    size_t best_depth = 0;
    size_t stuck_best = 0;
    while (next_[0] != 0) {
      if ((++steps & 0x3ff) == 0 && std::chrono::steady_clock::now() > deadline_) {
        result.verdict = Verdict::kUnknown;
        result.detail = "time limit reached";
        return result;
      }
      if (entry != 0 && is_call_[entry]) {
        const size_t op = op_of_[entry];
        const bool indeterminate = ops_[op]->type == OpType::kInfo;
        bool advanced = false;
        for (int variant = start_variant; variant <= (indeterminate ? 1 : 0); variant++) {
          std::optional<RegisterState> after = Apply(*ops_[op], state, variant);
          if (!after) continue;
          linearized[op] = true;
          if (cache.insert(CacheKey(linearized, *after)).second) {
            stack.push_back({entry, state, variant});
            state = *after;
            Lift(entry);
            advanced = true;
            break;
          }
          linearized[op] = false;
        }
        start_variant = 0;
        if (advanced) {
          if (stack.size() > best_depth) {
            best_depth = stack.size();
            result.longest_prefix.clear();
            for (const Frame& f : stack)
              result.longest_prefix.push_back(ops_[op_of_[f.entry]]->index);
          }
          entry = next_[0];
        } else {
          entry = next_[entry];
        }
        continue;
      }
      // A return (or the end of the list) before its call was linearized:
      // undo the last choice and try the next one.
      // On the longest order found, the op whose return came before any
      // state allowed it is the one to show.
      if (entry != 0 && stack.size() >= best_depth) stuck_best = op_of_[entry];
      if (stack.empty()) {
        result.verdict = Verdict::kInvalid;
        result.stuck_op = ops_[stuck_best]->index;
        result.detail = absl::StrCat("no linearization places operation ", result.stuck_op,
                                     " after the ", result.longest_prefix.size(),
                                     " operations of the longest order found");
        return result;
      }
      Frame f = stack.back();
      stack.pop_back();
      const size_t op = op_of_[f.entry];
      linearized[op] = false;
      state = f.before;
      Unlift(f.entry);
      entry = f.entry;
      start_variant = f.variant + 1;  // the same op's next variant, then the next entry
      if (start_variant > (ops_[op]->type == OpType::kInfo ? 1 : 0)) {
        start_variant = 0;
        entry = next_[f.entry];
      }
    }
    return result;
  }

 private:
  static std::string CacheKey(const std::vector<bool>& linearized, const RegisterState& s) {
    std::string key;
    key.reserve(linearized.size() / 8 + 10);
    uint8_t byte = 0;
    for (size_t i = 0; i < linearized.size(); i++) {
      if (linearized[i]) byte |= static_cast<uint8_t>(1u << (i % 8));
      if (i % 8 == 7) {
        key.push_back(static_cast<char>(byte));
        byte = 0;
      }
    }
    key.push_back(static_cast<char>(byte));
    key.push_back(s.present ? 1 : 0);
    key.append(reinterpret_cast<const char*>(&s.value), sizeof(s.value));
    return key;
  }
  // Removes an op's call and return entries from the list (it is linearized).
  void Lift(size_t call) {
    const size_t ret = return_entry_[op_of_[call]];
    next_[prev_[call]] = next_[call];
    if (next_[call] != 0) prev_[next_[call]] = prev_[call];
    next_[prev_[ret]] = next_[ret];
    if (next_[ret] != 0) prev_[next_[ret]] = prev_[ret];
  }
  void Unlift(size_t call) {
    const size_t ret = return_entry_[op_of_[call]];
    next_[prev_[ret]] = ret;
    if (next_[ret] != 0) prev_[next_[ret]] = ret;
    next_[prev_[call]] = call;
    if (next_[call] != 0) prev_[next_[call]] = call;
  }

  std::vector<const Operation*> ops_;
  std::chrono::steady_clock::time_point deadline_;
  std::vector<size_t> next_, prev_, op_of_, call_entry_, return_entry_;
  std::vector<bool> is_call_;
};

}  // namespace

LinearizabilityResult CheckRegisters(const std::vector<Operation>& history,
                                     const LinearizabilityOptions& options) {
  std::map<std::string, std::vector<const Operation*>> by_key;
  for (const Operation& op : history) {
    if (op.f != "read" && op.f != "write" && op.f != "cas") continue;
    if (op.type == OpType::kFail) continue;                    // did not happen
    if (op.type == OpType::kInfo && op.f == "read") continue;  // says nothing
    by_key[op.key].push_back(&op);
  }
  LinearizabilityResult result;
  for (const auto& [key, ops] : by_key) result.keys[key];
  const auto deadline = std::chrono::steady_clock::now() + options.time_limit;
  std::vector<std::string> keys;
  for (const auto& [key, ops] : by_key) keys.push_back(key);
  std::atomic<size_t> next{0};
  std::mutex mu;
  auto worker = [&] {
    for (size_t i; (i = next++) < keys.size();) {
      KeyResult r = WglSearch(by_key[keys[i]], deadline).Run();
      std::lock_guard lock(mu);
      result.keys[keys[i]] = std::move(r);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < std::max(1, options.threads); t++) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  for (const auto& [key, r] : result.keys) {
    if (r.verdict == Verdict::kInvalid) {
      result.verdict = Verdict::kInvalid;
    } else if (r.verdict == Verdict::kUnknown && result.verdict == Verdict::kValid) {
      result.verdict = Verdict::kUnknown;
    }
  }
  return result;
}

}  // namespace ganglion::jepsen
