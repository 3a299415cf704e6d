// The transcript parser and normalizer, without processes: the normalizer
// must erase what differs between two correct clusters and nothing else.
#include "gtest/gtest.h"
#include "tests/support/transcript.h"

namespace ganglion::tests {
namespace {

TEST(ParseTranscript, ModifiersHeredocsAndSeq) {
  auto steps = ParseTranscript(
      "# comment\n"
      "\n"
      "put foo 'bar baz'\n"
      "!all !sort endpoint health\n"
      "!stdin-bytes=3 put big\n"
      "txn -w json <<EOF\n"
      "value(\"k\") = \"v\"\n"
      "\n"
      "!seq 2 put k{i} v{i}\n"
      "\n"
      "EOF\n");
  ASSERT_TRUE(steps.ok()) << steps.status();
  ASSERT_EQ(steps->size(), 4u);
  EXPECT_EQ((*steps)[0].args, (std::vector<std::string>{"put", "foo", "bar baz"}));
  EXPECT_EQ((*steps)[0].line, 3);
  EXPECT_TRUE((*steps)[1].all_endpoints);
  EXPECT_TRUE((*steps)[1].sort_output);
  EXPECT_EQ((*steps)[1].args, (std::vector<std::string>{"endpoint", "health"}));
  EXPECT_EQ((*steps)[2].stdin_data, "xxx");
  EXPECT_EQ((*steps)[3].args, (std::vector<std::string>{"txn", "-w", "json"}));
  EXPECT_EQ((*steps)[3].stdin_data, "value(\"k\") = \"v\"\n\nput k1 v1\nput k2 v2\n\n");
  EXPECT_EQ((*steps)[3].body.size(), 4u);
}

TEST(ParseTranscript, RejectsUnclosedHeredocAndUnknownModifier) {
  EXPECT_FALSE(ParseTranscript("txn <<EOF\nput a b\n").ok());
  EXPECT_FALSE(ParseTranscript("!bogus get a\n").ok());
  EXPECT_FALSE(ParseTranscript("get 'a\n").ok());
}

TEST(Normalizer, ReplacesIdsOnlyAsWholeTokens) {
  Normalizer n;
  n.AddId(0xcc25c1f51a19754, "<id:m2>");
  n.AddToken("127.0.0.1:40010", "<m1.client>");
  EXPECT_EQ(n.Normalize("cc25c1f51a19754, started, m2, http://127.0.0.1:40010, false"),
            "<id:m2>, started, m2, http://<m1.client>, false");
  EXPECT_EQ(n.Normalize(R"({"member_id":919398563520288596,"revision":2})"),
            R"({"member_id":<id:m2>,"revision":2})");
  EXPECT_EQ(n.Normalize("member 0cc25c1f51a19754 added"), "member <id:m2> added");
  // Part of a longer word or number: not an id.
  EXPECT_EQ(n.Normalize("acc25c1f51a19754 9193985635202885961 127.0.0.1:400101"),
            "acc25c1f51a19754 9193985635202885961 127.0.0.1:400101");
}

TEST(Normalizer, KeepsWhatClientsSee) {
  Normalizer n;
  const std::string kv =
      R"({"kvs":[{"key":"Zm9v","create_revision":2,"mod_revision":7,"version":3,"value":"YmFy"}]})";
  EXPECT_EQ(n.Normalize(kv), kv);
  EXPECT_EQ(n.Normalize("Error: etcdserver: mvcc: required revision has been compacted"),
            "Error: etcdserver: mvcc: required revision has been compacted");
}

TEST(Normalizer, ErasesTermsIndexesSizesDurations) {
  Normalizer n;
  EXPECT_EQ(n.Normalize("127.0.0.1:1, e9b2, 3.4.23, 20 kB, false, false, 2, 8, 8, "),
            "127.0.0.1:1, e9b2, <version>, <size>, false, false, <term>, <index>, <applied>, ");
  EXPECT_EQ(n.Normalize(R"({"raft_term":2},"version":"3.4.23","dbSize":20480,"raftIndex":8})"),
            R"({"raft_term":<n>},"version":"<version>","dbSize":<n>,"raftIndex":<n>})");
  EXPECT_EQ(n.Normalize("x is healthy: successfully committed proposal: took = 7.788384ms"),
            "x is healthy: successfully committed proposal: took = <duration>");
  EXPECT_EQ(n.Normalize("| 127.0.0.1:1 |   true | 1.782057ms |       |"),
            "| 127.0.0.1:1 | true | <duration> |  |");
  EXPECT_EQ(n.Normalize("+-----+---+"), "+-+-+");
  EXPECT_EQ(n.Normalize("| e | i |  3.4.23 |   20 kB |     false |      false |         2 |    "
                        "     12 |                 12 |        |"),
            "| e | i | <version> | <size> | false | false | <term> | <index> | <applied> |  |");
  // A different leader is NOT erased: the test pins leadership instead.
  EXPECT_NE(n.Normalize("a, b, 3.4.23, 20 kB, true, false, 2, 8, 8, "),
            n.Normalize("a, b, 3.4.23, 20 kB, false, false, 2, 8, 8, "));
}

TEST(Normalizer, SortsALeasesAttachedKeys) {
  Normalizer n;
  // Go map order: the same keys in any order normalize alike; other keys do not.
  EXPECT_EQ(n.Normalize("lease 1 granted with TTL(600s), attached keys([b a c])"),
            "lease 1 granted with TTL(600s), attached keys([a b c])");
  EXPECT_NE(n.Normalize("attached keys([a b])"), n.Normalize("attached keys([a c])"));
  EXPECT_EQ(n.Normalize("attached keys([])"), "attached keys([])");
}

TEST(ParseTranscript, InterruptModifier) {
  auto steps = ParseTranscript("!bg=6000 !interrupt elect e p\nget e\n");
  ASSERT_TRUE(steps.ok()) << steps.status();
  EXPECT_TRUE((*steps)[0].interrupt);
  EXPECT_EQ((*steps)[0].background_ms, 6000);
  EXPECT_FALSE((*steps)[1].interrupt);
}

TEST(Normalizer, CutsGoroutineDumps) {
  Normalizer n;
  EXPECT_EQ(n.Normalize("panic: bad value\n\ngoroutine 1 [running]:\nmain.main()\n\t0xc000\n"),
            "panic: bad value\n\n<goroutine trace>\n");
}

TEST(SortLines, KeepsTableFrame) {
  EXPECT_EQ(SortLines("+-+\n| H |\n+-+\n| b |\n| a |\n+-+\n"),
            "+-+\n| H |\n+-+\n| a |\n| b |\n+-+\n");
  EXPECT_EQ(SortLines("c\na\nb"), "a\nb\nc");
}

TEST(LineDiff, EmptyWhenEqualAndShowsChanges) {
  EXPECT_EQ(LineDiff("a\nb\n", "a\nb\n", "x", "y"), "");
  const std::string d = LineDiff("a\nb\nc\n", "a\nB\nc\n", "x", "y");
  EXPECT_NE(d.find("-b\n"), std::string::npos) << d;
  EXPECT_NE(d.find("+B\n"), std::string::npos) << d;
  EXPECT_NE(d.find(" a\n"), std::string::npos) << d;
}

}  // namespace
}  // namespace ganglion::tests
