// Runs the scenario transcripts in raft/testdata/*.txt: each block is a
// command for an InteractionEnv and the exact output it must produce. The
// transcripts are the specification of the protocol's observable behaviour.
//
//   GANGLION_REWRITE=1 build/bin/raft_scenario_test
// rewrites the expected outputs in the source tree from what the code does
// now; read every changed line before committing it.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "raft/testing/interaction_env.h"

#ifndef GANGLION_RAFT_TESTDATA_DIR
#error "GANGLION_RAFT_TESTDATA_DIR must name the source testdata directory"
#endif

namespace ganglion::raft {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> ScenarioFiles() {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(GANGLION_RAFT_TESTDATA_DIR)) {
    if (e.path().extension() == ".txt") names.push_back(e.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> Lines(const std::string& s) {
  return absl::StrSplit(s, '\n');
}

// A line diff (longest common subsequence); outputs are a few hundred lines.
std::string Diff(const std::vector<std::string>& want, const std::vector<std::string>& got) {
  size_t n = want.size(), m = got.size();
  std::vector<std::vector<int>> lcs(n + 1, std::vector<int>(m + 1, 0));
  for (size_t i = n; i-- > 0;) {
    for (size_t j = m; j-- > 0;) {
      lcs[i][j] =
          want[i] == got[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  std::string out;
  size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && want[i] == got[j]) {
      absl::StrAppend(&out, "  ", want[i], "\n");
      i++, j++;
    } else if (i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1])) {
      absl::StrAppend(&out, "- ", want[i++], "\n");
    } else {
      absl::StrAppend(&out, "+ ", got[j++], "\n");
    }
  }
  return out;
}

bool IsBlank(const std::string& l) {
  return l.find_first_not_of(" \t\r") == std::string::npos;
}

class ScenarioTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ScenarioTest, Transcript) {
  const fs::path path = fs::path(GANGLION_RAFT_TESTDATA_DIR) / (GetParam() + ".txt");
  std::ifstream in(path);
  ASSERT_TRUE(in) << "cannot read " << path;
  std::stringstream buf;
  buf << in.rdbuf();
  std::string text = buf.str();
  const bool rewrite = std::getenv("GANGLION_REWRITE") != nullptr &&
                       std::string(std::getenv("GANGLION_REWRITE")) == "1";

  std::vector<std::string> lines = Lines(text);
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  std::vector<std::string> rewritten;
  testing::InteractionEnv env;
  size_t i = 0;
  while (i < lines.size()) {
    const std::string& line = lines[i];
    if (IsBlank(line) || line[0] == '#') {
      rewritten.push_back(line);
      i++;
      continue;
    }
    const size_t cmd_line_no = i + 1;
    const std::string where = absl::StrCat(path.string(), ":", cmd_line_no);
    rewritten.push_back(line);
    i++;
    if (i >= lines.size() || lines[i] != "----") {
      FAIL() << where << ": expected '----' after command '" << line << "'";
    }
    rewritten.push_back(lines[i]);
    i++;
    std::vector<std::string> want;
    while (i < lines.size() && !IsBlank(lines[i])) want.push_back(lines[i++]);

    auto cmd = testing::ParseCommand(line);
    ASSERT_TRUE(cmd.ok()) << where << ": " << cmd.status();
    std::vector<std::string> got = Lines(env.Handle(*cmd));
    if (rewrite) {
      rewritten.insert(rewritten.end(), got.begin(), got.end());
    } else if (got != want) {
      ADD_FAILURE() << where << ": output of '" << line << "' differs (- expected, + actual):\n"
                    << Diff(want, got);
    }
  }
  if (rewrite) {
    std::string out = absl::StrJoin(rewritten, "\n") + "\n";
    if (out != text) {
      std::ofstream o(path, std::ios::trunc);
      o << out;
      ASSERT_TRUE(o.good()) << "cannot write " << path;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Testdata, ScenarioTest, ::testing::ValuesIn(ScenarioFiles()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace ganglion::raft
