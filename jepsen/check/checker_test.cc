// The history checkers on histories written by hand: each anomaly they must
// find, and the valid histories they must accept.
#include <chrono>
#include <map>
#include <random>
#include <sstream>

#include "gtest/gtest.h"
#include "jepsen/check/history.h"
#include "jepsen/check/linearizable.h"
#include "jepsen/check/list_append.h"

namespace ganglion::jepsen {
namespace {

class RegisterHistory {
 public:
  RegisterHistory& Op(const std::string& f, OpType type, std::optional<int64_t> v, int64_t start,
                      int64_t end, std::string key = "k",
                      std::optional<int64_t> v2 = std::nullopt) {
    Operation op;
    op.index = static_cast<int64_t>(ops.size());
    op.process = static_cast<int>(ops.size());
    op.type = type;
    op.f = f;
    op.key = key;
    op.value = v;
    op.value2 = v2;
    op.start_ns = start;
    op.end_ns = end;
    ops.push_back(op);
    return *this;
  }
  std::vector<Operation> ops;
};

constexpr auto kOk = OpType::kOk;
constexpr auto kFail = OpType::kFail;
constexpr auto kInfo = OpType::kInfo;

TEST(Linearizable, SequentialRegisterIsValid) {
  RegisterHistory h;
  h.Op("read", kOk, std::nullopt, 0, 1)
      .Op("write", kOk, 1, 2, 3)
      .Op("read", kOk, 1, 4, 5)
      .Op("cas", kOk, 1, 6, 7, "k", 2)
      .Op("read", kOk, 2, 8, 9);
  EXPECT_EQ(CheckRegisters(h.ops).verdict, Verdict::kValid);
}

TEST(Linearizable, StaleReadIsCaught) {
  RegisterHistory h;
  h.Op("write", kOk, 1, 0, 1).Op("write", kOk, 2, 2, 3).Op("read", kOk, 1, 4, 5);
  LinearizabilityResult r = CheckRegisters(h.ops);
  ASSERT_EQ(r.verdict, Verdict::kInvalid);
  EXPECT_EQ(r.keys["k"].stuck_op, 2);
  EXPECT_EQ(r.keys["k"].longest_prefix, (std::vector<int64_t>{0, 1}));
}

TEST(Linearizable, ConcurrentOperationsMayOrderEitherWay) {
  RegisterHistory h;
  // The read overlaps the write: it may see the value before or after it.
  h.Op("write", kOk, 1, 0, 10).Op("read", kOk, std::nullopt, 1, 2).Op("read", kOk, 1, 3, 4);
  EXPECT_EQ(CheckRegisters(h.ops).verdict, Verdict::kValid);
  // But once a read saw the new value, a later read may not see the old.
  RegisterHistory h2;
  h2.Op("write", kOk, 1, 0, 10).Op("read", kOk, 1, 1, 2).Op("read", kOk, std::nullopt, 3, 4);
  EXPECT_EQ(CheckRegisters(h2.ops).verdict, Verdict::kInvalid);
}

TEST(Linearizable, IndeterminateWritesMayOrMayNotHappen) {
  RegisterHistory h;
  h.Op("write", kOk, 1, 0, 1).Op("write", kInfo, 3, 2, 3).Op("read", kOk, 1, 4, 5);
  EXPECT_EQ(CheckRegisters(h.ops).verdict, Verdict::kValid) << "the info write never happened";
  RegisterHistory later;
  later.Op("write", kOk, 1, 0, 1).Op("write", kInfo, 3, 2, 3).Op("read", kOk, 3, 100, 101);
  EXPECT_EQ(CheckRegisters(later.ops).verdict, Verdict::kValid) << "it happened late";
  RegisterHistory early;
  early.Op("write", kOk, 1, 0, 1).Op("read", kOk, 3, 2, 3).Op("write", kInfo, 3, 10, 11);
  EXPECT_EQ(CheckRegisters(early.ops).verdict, Verdict::kInvalid)
      << "a value read before anyone began to write it";
  RegisterHistory cas;
  cas.Op("write", kOk, 1, 0, 1).Op("cas", kInfo, 7, 2, 3, "k", 8).Op("read", kOk, 1, 4, 5);
  EXPECT_EQ(CheckRegisters(cas.ops).verdict, Verdict::kValid);
}

TEST(Linearizable, FailedOperationsDidNotHappen) {
  RegisterHistory h;
  h.Op("write", kOk, 1, 0, 1).Op("write", kFail, 2, 2, 3).Op("read", kOk, 2, 4, 5);
  EXPECT_EQ(CheckRegisters(h.ops).verdict, Verdict::kInvalid);
}

TEST(Linearizable, KeysAreIndependent) {
  RegisterHistory h;
  h.Op("write", kOk, 1, 0, 1, "a").Op("write", kOk, 5, 0, 1, "b").Op("read", kOk, 5, 2, 3, "a");
  h.Op("read", kOk, 5, 2, 3, "b");
  LinearizabilityResult r = CheckRegisters(h.ops);
  EXPECT_EQ(r.verdict, Verdict::kInvalid);
  EXPECT_EQ(r.keys["a"].verdict, Verdict::kInvalid);
  EXPECT_EQ(r.keys["b"].verdict, Verdict::kValid);
}

TEST(Linearizable, OutOfTimeIsUnknownNeverValid) {
  // Many overlapping writes and reads of distinct values: a huge search space.
  RegisterHistory h;
  for (int i = 0; i < 60; i++) h.Op("write", kInfo, i, i, 1000 + i);
  for (int i = 0; i < 60; i++) h.Op("read", kOk, 59 - i, 2000 + 2 * i, 2001 + 2 * i);
  LinearizabilityOptions o;
  o.time_limit = std::chrono::milliseconds(0);
  EXPECT_EQ(CheckRegisters(h.ops, o).verdict, Verdict::kUnknown);
}

// A valid concurrent history of 10,000 operations over 100 keys, built from a
// real register with overlapping operations; no timing is asserted (the
// figure goes to the closing note), only that it is valid.
TEST(Linearizable, LargeValidHistoryIsValid) {
  std::mt19937_64 rng(1);
  RegisterHistory h;
  std::map<std::string, std::optional<int64_t>> reg;
  int64_t now = 0;
  for (int i = 0; i < 10000; i++) {
    const std::string key = "k" + std::to_string(rng() % 100);
    const int64_t start = now;
    const int64_t effect = now + 1 + static_cast<int64_t>(rng() % 5);
    const int64_t end = effect + 1 + static_cast<int64_t>(rng() % 5);
    now += 2;  // operations overlap
    const int kind = static_cast<int>(rng() % 3);
    if (kind == 0) {
      reg[key] = i;
      h.Op("write", rng() % 10 == 0 ? kInfo : kOk, i, start, end, key);
    } else if (kind == 1) {
      h.Op("read", kOk, reg[key], start, end, key);
    } else {
      const std::optional<int64_t> cur = reg[key];
      if (cur) {
        reg[key] = i;
        h.Op("cas", kOk, *cur, start, end, key, i);
      } else {
        h.Op("cas", kFail, 0, start, end, key, i);
      }
    }
    // Keep the register's effects in the order of their effect times by
    // only overlapping operations of different keys: each key's ops here
    // are sequential in effect order since `now` increases.
    (void)effect;
  }
  auto t0 = std::chrono::steady_clock::now();
  LinearizabilityResult r = CheckRegisters(h.ops);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("10,000 operations over 100 keys checked in %.2f s\n", seconds);
  EXPECT_EQ(r.verdict, Verdict::kValid);
}

TEST(History, RoundTripsThroughJsonLines) {
  Operation op;
  op.index = 3;
  op.process = 7;
  op.type = OpType::kInfo;
  op.f = "txn";
  op.txn = {{MicroOp::kAppend, "x", 5, std::nullopt},
            {MicroOp::kRead, "y", 0, std::vector<int64_t>{1, 2}}};
  op.start_ns = 10;
  op.end_ns = 20;
  op.error = "DEADLINE_EXCEEDED";
  auto parsed = ParseHistory(FormatOperation(op) + "\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->size(), 1u);
  EXPECT_EQ(FormatOperation((*parsed)[0]), FormatOperation(op));
  EXPECT_FALSE(ParseHistory("{\"type\":\"maybe\"}\n").ok());
  EXPECT_FALSE(ParseHistory("not json\n").ok());
}

// ---- list-append ----

class TxnHistory {
 public:
  // txn("a x 1, r y 1 2, r z -") : micro-ops separated by commas; "-" = empty list.
  TxnHistory& Txn(OpType type, const std::string& spec, int64_t start, int64_t end) {
    Operation op;
    op.index = static_cast<int64_t>(ops.size());
    op.type = type;
    op.f = "txn";
    op.start_ns = start;
    op.end_ns = end;
    std::stringstream all(spec);
    std::string part;
    while (std::getline(all, part, ',')) {
      std::stringstream in(part);
      std::string kind, key, word;
      in >> kind >> key;
      MicroOp m;
      m.key = key;
      if (kind == "a") {
        m.kind = MicroOp::kAppend;
        in >> m.value;
      } else {
        m.kind = MicroOp::kRead;
        m.read.emplace();
        while (in >> word) {
          if (word != "-") m.read->push_back(std::stoll(word));
        }
      }
      op.txn.push_back(m);
    }
    ops.push_back(op);
    return *this;
  }
  std::vector<Operation> ops;
};

std::vector<std::string> Types(const ListAppendResult& r) {
  std::vector<std::string> out;
  for (const auto& a : r.anomalies) out.push_back(a.type);
  return out;
}

TEST(ListAppend, SerialHistoryIsValid) {
  TxnHistory h;
  h.Txn(kOk, "a x 1, r x 1", 0, 1).Txn(kOk, "a x 2, a y 1", 2, 3).Txn(kOk, "r x 1 2, r y 1", 4, 5);
  ListAppendResult r = CheckListAppend(h.ops);
  EXPECT_EQ(r.verdict, Verdict::kValid) << ::testing::PrintToString(Types(r));
  EXPECT_EQ(r.transactions, 3u);
}

TEST(ListAppend, WriteCycleIsG0) {
  TxnHistory h;
  h.Txn(kOk, "a x 1, a y 1", 0, 10).Txn(kOk, "a x 2, a y 2", 0, 10);
  h.Txn(kOk, "r x 1 2, r y 2 1", 20, 21);
  EXPECT_EQ(Types(CheckListAppend(h.ops)), std::vector<std::string>{"G0"});
}

TEST(ListAppend, CircularInformationFlowIsG1c) {
  TxnHistory h;
  h.Txn(kOk, "a x 1, r y 1", 0, 10).Txn(kOk, "a y 1, r x 1", 0, 10);
  EXPECT_EQ(Types(CheckListAppend(h.ops)), std::vector<std::string>{"G1c"});
}

TEST(ListAppend, ReadSkewIsGSingle) {
  TxnHistory h;
  h.Txn(kOk, "r x -, r y 1", 0, 10).Txn(kOk, "a x 1, a y 1", 0, 10).Txn(kOk, "r x 1", 20, 21);
  EXPECT_EQ(Types(CheckListAppend(h.ops)), std::vector<std::string>{"G-single"});
}

TEST(ListAppend, WriteSkewIsG2) {
  TxnHistory h;
  h.Txn(kOk, "r x -, a y 1", 0, 10).Txn(kOk, "r y -, a x 1", 0, 10);
  h.Txn(kOk, "r x 1, r y 1", 20, 21);
  EXPECT_EQ(Types(CheckListAppend(h.ops)), std::vector<std::string>{"G2"});
}

TEST(ListAppend, AbortedAndIntermediateReads) {
  TxnHistory h;
  h.Txn(kFail, "a x 5", 0, 1).Txn(kOk, "r x 5", 2, 3);
  EXPECT_EQ(Types(CheckListAppend(h.ops)), std::vector<std::string>{"G1a"});
  TxnHistory mid;
  mid.Txn(kOk, "a x 1, a x 2", 0, 10).Txn(kOk, "r x 1", 0, 10);
  auto types = Types(CheckListAppend(mid.ops));
  EXPECT_NE(std::find(types.begin(), types.end(), "G1b"), types.end())
      << ::testing::PrintToString(types);
}

TEST(ListAppend, IncompatibleOrdersAndGarbage) {
  TxnHistory h;
  h.Txn(kOk, "a x 1", 0, 1)
      .Txn(kOk, "a x 2", 0, 1)
      .Txn(kOk, "r x 1 2", 2, 3)
      .Txn(kOk, "r x 2", 2, 3);
  auto types = Types(CheckListAppend(h.ops));
  EXPECT_NE(std::find(types.begin(), types.end(), "incompatible-order"), types.end());
  TxnHistory g;
  g.Txn(kOk, "r x 9", 0, 1);
  EXPECT_EQ(Types(CheckListAppend(g.ops)), std::vector<std::string>{"garbage-read"});
}

TEST(ListAppend, StaleReadAfterCommitIsARealtimeCycle) {
  TxnHistory h;
  // The append completed before the read began, yet the read missed it.
  h.Txn(kOk, "a x 1", 0, 10).Txn(kOk, "r x -", 20, 30).Txn(kOk, "r x 1", 40, 50);
  EXPECT_EQ(Types(CheckListAppend(h.ops)), std::vector<std::string>{"G-single-realtime"});
  // Concurrent, the same reads are serializable.
  TxnHistory c;
  c.Txn(kOk, "a x 1", 0, 30).Txn(kOk, "r x -", 20, 30).Txn(kOk, "r x 1", 40, 50);
  EXPECT_EQ(CheckListAppend(c.ops).verdict, Verdict::kValid);
}

}  // namespace
}  // namespace ganglion::jepsen
