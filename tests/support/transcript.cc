#include "tests/support/transcript.h"

#include <algorithm>
#include <cctype>
#include <regex>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace ganglion::tests {
namespace {

// Bounds what a transcript can ask for, so a typo cannot exhaust memory.
constexpr int kSeqMax = 100000;
constexpr int64_t kStdinBytesMax = 64ll * 1024 * 1024;
// Wall-clock limit a transcript line may give a command (!timeout, !bg).
constexpr int64_t kCommandMsMax = 60000;
// Bounds the O(n*m) diff table; larger outputs are shown whole instead.
constexpr size_t kDiffCellsMax = 16u * 1024 * 1024;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

absl::StatusOr<std::vector<std::string>> SplitArgs(const std::string& line, int line_no) {
  std::vector<std::string> args;
  std::string current;
  bool in_word = false;
  char quote = 0;
  for (char c : line) {
    if (quote != 0) {
      if (c == quote) {
        quote = 0;
      } else {
        current += c;
      }
    } else if (c == '\'' || c == '"') {
      quote = c;
      in_word = true;
    } else if (c == ' ' || c == '\t') {
      if (in_word) args.push_back(std::move(current));
      current.clear();
      in_word = false;
    } else {
      current += c;
      in_word = true;
    }
  }
  if (quote != 0) return absl::InvalidArgumentError(absl::StrCat("line ", line_no, ": open quote"));
  if (in_word) args.push_back(std::move(current));
  return args;
}

bool IsWordChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0;
}

std::string ReplaceTokens(const std::string& text,
                          const std::vector<std::pair<std::string, std::string>>& tokens) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const bool at_boundary = i == 0 || !IsWordChar(text[i - 1]);
    bool replaced = false;
    if (at_boundary) {
      // tokens are sorted longest first, so a shorter id never eats a longer one
      for (const auto& [token, placeholder] : tokens) {
        if (text.compare(i, token.size(), token) != 0) continue;
        const size_t end = i + token.size();
        if (end < text.size() && IsWordChar(text[end])) continue;
        out += placeholder;
        i = end;
        replaced = true;
        break;
      }
    }
    if (!replaced) out += text[i++];
  }
  return out;
}

bool IsBool(const std::string& s) {
  return s == "true" || s == "false";
}
bool IsDigits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(c); });
}

// etcdctl's tables pad cells to the widest value, so a different db size or
// duration shifts every border: cells are trimmed and borders shortened.
std::string NormalizeTableLine(const std::string& line) {
  static const std::regex kDuration(R"(^[0-9]+(\.[0-9]+)?(ns|µs|us|ms|s)$)");
  static const std::regex kDashes("-+");
  if (line.rfind("+-", 0) == 0) return std::regex_replace(line, kDashes, "-");
  std::vector<std::string> cells = absl::StrSplit(line, '|');
  // "| a | b |" splits into "", " a ", " b ", "".
  if (cells.size() < 3) return line;
  cells.erase(cells.begin());
  cells.pop_back();
  for (auto& c : cells) c = std::string(absl::StripAsciiWhitespace(c));
  // endpoint status: ENDPOINT ID VERSION DBSIZE LEADER LEARNER TERM INDEX APPLIED ERRORS
  if (cells.size() == 10 && IsBool(cells[4]) && IsBool(cells[5]) && IsDigits(cells[6]) &&
      IsDigits(cells[7]) && IsDigits(cells[8])) {
    cells[2] = "<version>";
    cells[3] = "<size>";
    cells[6] = "<term>";
    cells[7] = "<index>";
    cells[8] = "<applied>";
  }
  for (auto& c : cells) {
    if (std::regex_match(c, kDuration)) c = "<duration>";
  }
  return absl::StrCat("| ", absl::StrJoin(cells, " | "), " |");
}

std::string NormalizeLine(std::string line) {
  struct Rule {
    std::regex pattern;
    const char* replacement;
  };
  static const std::vector<Rule> kRules = [] {
    std::vector<Rule> r;
    auto add = [&](const char* p, const char* s) { r.push_back({std::regex(p), s}); };
    // The client's own log lines (retry warnings carry the gRPC code: kept).
    add(R"("ts":"[^"]*")", R"("ts":"<ts>")");
    add(R"(client-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})", "client-<uuid>");
    // Raft positions and storage sizes are implementation details.
    add(R"re("(raft_term|raftTerm|raftIndex|raftAppliedIndex|dbSize|dbSizeInUse)":[0-9]+)re",
        R"("$1":<n>)");
    // Only the string-valued version (server version); a key's "version":N stays.
    add(R"("version":"[^"]*")", R"("version":"<version>")");
    add(R"("took":"[^"]*")", R"("took":"<duration>")");
    add(R"re("RaftTerm" : [0-9]+)re", R"("RaftTerm" : <n>)");  // -w fields
    add(R"(took = [^ ]+)", "took = <duration>");
    // lease timetolive: a second may pass between grant and ask.
    add(R"(remaining\([0-9]+s\))", "remaining(<ttl>)");
    // endpoint status, simple format.
    add(R"(^([^,]+), ([^,]+), [^,]+, [^,]+, (true|false), (true|false), [0-9]+, [0-9]+, [0-9]+, )",
        "$1, $2, <version>, <size>, $3, $4, <term>, <index>, <applied>, ");
    return r;
  }();
  for (const auto& rule : kRules) line = std::regex_replace(line, rule.pattern, rule.replacement);
  // etcd lists a lease's keys in Go map order, which changes from run to run.
  static const std::regex kAttachedKeys(R"(attached keys\(\[([^\]]*)\]\))");
  if (std::smatch m; std::regex_search(line, m, kAttachedKeys)) {
    std::vector<std::string> keys = absl::StrSplit(m[1].str(), ' ', absl::SkipEmpty());
    std::sort(keys.begin(), keys.end());
    line = absl::StrCat(m.prefix().str(), "attached keys([", absl::StrJoin(keys, " "), "])",
                        m.suffix().str());
  }
  if (!line.empty() && (line[0] == '|' || line.rfind("+-", 0) == 0)) {
    line = NormalizeTableLine(line);
  }
  return line;
}

}  // namespace

absl::StatusOr<std::vector<TranscriptStep>> ParseTranscript(const std::string& text) {
  std::vector<TranscriptStep> steps;
  const std::vector<std::string> lines = absl::StrSplit(text, '\n');
  for (size_t n = 0; n < lines.size(); ++n) {
    const int line_no = static_cast<int>(n) + 1;
    std::string line(absl::StripAsciiWhitespace(lines[n]));
    if (line.empty() || line[0] == '#') continue;
    TranscriptStep step;
    step.line = line_no;
    step.text = line;
    auto args = SplitArgs(line, line_no);
    if (!args.ok()) return args.status();
    // Leading !modifiers.
    size_t first = 0;
    for (; first < args->size() && (*args)[first].rfind('!', 0) == 0; ++first) {
      const std::string& mod = (*args)[first];
      int64_t bytes = 0;
      int64_t ms = 0;
      if (mod == "!all") {
        step.all_endpoints = true;
      } else if (mod == "!sort") {
        step.sort_output = true;
      } else if (mod.rfind("!stdin-bytes=", 0) == 0 && absl::SimpleAtoi(mod.substr(13), &bytes) &&
                 bytes >= 0 && bytes <= kStdinBytesMax) {
        step.stdin_data.assign(static_cast<size_t>(bytes), 'x');
      } else if (mod.rfind("!timeout=", 0) == 0 && absl::SimpleAtoi(mod.substr(9), &ms) && ms > 0 &&
                 ms <= kCommandMsMax) {
        step.timeout_ms = ms;
      } else if (mod.rfind("!bg=", 0) == 0 && absl::SimpleAtoi(mod.substr(4), &ms) && ms > 0 &&
                 ms <= kCommandMsMax) {
        step.background_ms = ms;
      } else if (mod == "!interrupt") {
        step.interrupt = true;
      } else if (mod == "!join") {
        step.join = true;
      } else {
        return absl::InvalidArgumentError(absl::StrCat("line ", line_no, ": bad modifier ", mod));
      }
    }
    step.args.assign(args->begin() + static_cast<long>(first), args->end());
    // A trailing <<WORD opens a heredoc.
    if (!step.args.empty() && step.args.back().rfind("<<", 0) == 0) {
      const std::string terminator = step.args.back().substr(2);
      step.args.pop_back();
      if (terminator.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("line ", line_no, ": empty heredoc word"));
      }
      bool closed = false;
      std::vector<std::string> input;
      for (++n; n < lines.size(); ++n) {
        const std::string& body_line = lines[n];
        if (absl::StripAsciiWhitespace(body_line) == terminator) {
          closed = true;
          break;
        }
        step.body.push_back(body_line);
        if (body_line.rfind("!seq ", 0) == 0) {
          std::vector<std::string> parts = absl::StrSplit(body_line, absl::MaxSplits(' ', 2));
          int count = 0;
          if (parts.size() != 3 || !absl::SimpleAtoi(parts[1], &count) || count < 0 ||
              count > kSeqMax) {
            return absl::InvalidArgumentError(
                absl::StrCat("line ", n + 1, ": expected `!seq N template`"));
          }
          for (int i = 1; i <= count; ++i) {
            input.push_back(absl::StrReplaceAll(parts[2], {{"{i}", std::to_string(i)}}));
          }
        } else {
          input.push_back(body_line);
        }
      }
      if (!closed) {
        return absl::InvalidArgumentError(
            absl::StrCat("line ", line_no, ": heredoc not closed by ", terminator));
      }
      step.stdin_data = absl::StrJoin(input, "\n") + "\n";
    }
    if (step.join != step.args.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "line ", line_no, step.join ? ": !join takes no arguments" : ": no etcdctl arguments"));
    }
    steps.push_back(std::move(step));
  }
  return steps;
}

void Normalizer::AddId(uint64_t id, const std::string& placeholder) {
  // etcdctl prints ids with %x in some places and %016x in others.
  AddToken(absl::StrCat(absl::Hex(id)), placeholder);
  AddToken(absl::StrCat(absl::Hex(id, absl::kZeroPad16)), placeholder);
  AddToken(std::to_string(id), placeholder);
}

void Normalizer::AddToken(std::string token, std::string placeholder) {
  if (token.empty()) return;
  for (const auto& t : tokens) {
    if (t.first == token) return;  // the first placeholder for a token wins
  }
  tokens.emplace_back(std::move(token), std::move(placeholder));
  std::stable_sort(tokens.begin(), tokens.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

std::string Normalizer::Normalize(const std::string& text) const {
  std::string input = text;
  // A Go panic's goroutine dump holds addresses that change from run to run;
  // the panic message (the first line) is what matters.
  if (size_t trace = input.find("\ngoroutine ");
      trace != std::string::npos && input.find("panic: ") != std::string::npos) {
    input = input.substr(0, trace) + "\n<goroutine trace>\n";
  }
  std::vector<std::string> out;
  for (const auto& line : absl::StrSplit(input, '\n')) {
    out.push_back(NormalizeLine(ReplaceTokens(std::string(line), tokens)));
  }
  return absl::StrJoin(out, "\n");
}

std::string SortLines(const std::string& text) {
  std::vector<std::string> lines = Lines(text);
  std::vector<size_t> positions;
  std::vector<std::string> movable;
  bool seen_header = false;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].rfind('+', 0) == 0) continue;
    if (lines[i].rfind('|', 0) == 0 && !seen_header) {
      seen_header = true;
      continue;
    }
    positions.push_back(i);
    movable.push_back(lines[i]);
  }
  std::sort(movable.begin(), movable.end());
  for (size_t k = 0; k < positions.size(); ++k) lines[positions[k]] = movable[k];
  std::string out = absl::StrJoin(lines, "\n");
  if (!text.empty() && text.back() == '\n') out += '\n';
  return out;
}

std::string LineDiff(const std::string& expected, const std::string& actual,
                     const std::string& expected_name, const std::string& actual_name,
                     int context) {
  if (expected == actual) return "";
  const std::vector<std::string> a = Lines(expected), b = Lines(actual);
  std::string out = absl::StrCat("--- ", expected_name, "\n+++ ", actual_name, "\n");
  if ((a.size() + 1) * (b.size() + 1) > kDiffCellsMax) {
    return absl::StrCat(out, "(too long to diff; expected:)\n", expected, "\n(actual:)\n", actual);
  }
  // LCS table, then walk it into a list of (op, line) with op in ' ', '-', '+'.
  std::vector<std::vector<uint32_t>> lcs(a.size() + 1, std::vector<uint32_t>(b.size() + 1, 0));
  for (size_t i = a.size(); i-- > 0;) {
    for (size_t j = b.size(); j-- > 0;) {
      lcs[i][j] = a[i] == b[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  std::vector<std::pair<char, std::string>> ops;
  size_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    if (i < a.size() && j < b.size() && a[i] == b[j]) {
      ops.emplace_back(' ', a[i++]);
      j++;
    } else if (i < a.size() && (j == b.size() || lcs[i + 1][j] >= lcs[i][j + 1])) {
      ops.emplace_back('-', a[i++]);
    } else {
      ops.emplace_back('+', b[j++]);
    }
  }
  // Print changed lines with `context` unchanged lines around them.
  std::vector<bool> show(ops.size(), false);
  for (size_t k = 0; k < ops.size(); ++k) {
    if (ops[k].first == ' ') continue;
    const size_t lo = k >= static_cast<size_t>(context) ? k - context : 0;
    const size_t hi = std::min(ops.size(), k + context + 1);
    for (size_t x = lo; x < hi; ++x) show[x] = true;
  }
  bool gap = false;
  size_t line_a = 1;
  for (size_t k = 0; k < ops.size(); ++k) {
    if (show[k]) {
      if (gap || k == 0) absl::StrAppend(&out, "@@ line ", line_a, " @@\n");
      gap = false;
      absl::StrAppend(&out, std::string(1, ops[k].first), ops[k].second, "\n");
    } else {
      gap = true;
    }
    if (ops[k].first != '+') ++line_a;
  }
  return out;
}

}  // namespace ganglion::tests
