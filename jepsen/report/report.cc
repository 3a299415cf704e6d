#include "jepsen/report/report.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

namespace ganglion::jepsen {
namespace {

// Bounds that keep report.html small enough for a browser: rows beyond the
// limit and points beyond the cap are left out (and the report says so).
constexpr size_t kTimelineRowsMax = 60;
constexpr size_t kTimelineOpsMax = 40000;
constexpr size_t kLatencyPointsMax = 20000;
constexpr int kWidthPx = 1200;
constexpr int kLeftPx = 70;
constexpr int kRowPx = 8;

std::string Escape(const std::string& s) {
  return absl::StrReplaceAll(s, {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}, {"\"", "&quot;"}});
}

const char* Color(OpType t) {
  switch (t) {
    case OpType::kOk:
      return "#3a3";
    case OpType::kFail:
      return "#d33";
    case OpType::kInfo:
      return "#eb0";
  }
  return "#999";
}

absl::Status WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::trunc);
  out << data;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("write ", path));
  return absl::OkStatus();
}

std::string Describe(const Operation& op) {
  std::string s = absl::StrCat(op.f, " ", op.key);
  if (op.value) absl::StrAppend(&s, " ", *op.value);
  if (op.value2) absl::StrAppend(&s, " -> ", *op.value2);
  absl::StrAppend(&s, " ", OpTypeName(op.type), " ", (op.end_ns - op.start_ns) / 1000, " us");
  if (!op.error.empty()) absl::StrAppend(&s, " (", op.error, ")");
  return s;
}

}  // namespace

Verdict Overall(const std::vector<CheckResult>& results) {
  Verdict v = Verdict::kValid;
  for (const CheckResult& r : results) {
    if (r.verdict == Verdict::kInvalid) return Verdict::kInvalid;
    if (r.verdict == Verdict::kUnknown) v = Verdict::kUnknown;
  }
  return v;
}

absl::Status WriteHistory(const std::string& path, const std::vector<Operation>& history) {
  std::string out;
  for (const Operation& op : history) absl::StrAppend(&out, FormatOperation(op), "\n");
  return WriteFile(path, out);
}

absl::Status WriteResults(const std::string& path, const RunInfo& info,
                          const std::vector<CheckResult>& results,
                          const std::vector<NemesisInterval>& nemesis) {
  nlohmann::json j;
  j["run"] = info.run;
  j["settings"] = info.settings;
  j["duration_s"] = info.duration_ns / 1e9;
  j["valid"] = VerdictName(Overall(results));
  j["checkers"] = nlohmann::json::array();
  for (const CheckResult& r : results) {
    j["checkers"].push_back({{"checker", r.checker},
                             {"valid", VerdictName(r.verdict)},
                             {"summary", r.summary},
                             {"details", r.details}});
  }
  j["nemesis"] = nlohmann::json::array();
  for (const NemesisInterval& n : nemesis) {
    j["nemesis"].push_back({{"fault", n.fault},
                            {"detail", n.detail},
                            {"start_s", n.start_ns / 1e9},
                            {"end_s", n.end_ns / 1e9},
                            {"error", n.error}});
  }
  return WriteFile(path, j.dump(2) + "\n");
}

absl::Status WriteReport(const std::string& path, const RunInfo& info,
                         const std::vector<Operation>& history,
                         const std::vector<CheckResult>& results,
                         const std::vector<NemesisInterval>& nemesis) {
  int64_t end_ns = std::max<int64_t>(info.duration_ns, 1);
  for (const Operation& op : history) end_ns = std::max(end_ns, op.end_ns);
  const double plot_px = kWidthPx - kLeftPx - 10;
  auto x = [&](int64_t ns) { return kLeftPx + plot_px * static_cast<double>(ns) / end_ns; };

  std::string html = absl::StrCat(
      "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>ganglion-jepsen ",
      Escape(info.run),
      "</title><style>body{font-family:sans-serif;margin:20px}table{border-collapse:collapse}"
      "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
      ".valid{color:#080;font-weight:bold}.invalid{color:#c00;font-weight:bold}"
      ".unknown{color:#a60;font-weight:bold}pre{white-space:pre-wrap;max-height:300px;"
      "overflow:auto;background:#f6f6f6;padding:6px}</style></head><body>");
  const Verdict overall = Overall(results);
  absl::StrAppend(&html, "<h1>ganglion-jepsen run ", Escape(info.run), ": <span class=\"",
                  VerdictName(overall), "\">", VerdictName(overall), "</span></h1>");
  absl::StrAppend(&html, "<p>", history.size(), " operations over ",
                  absl::StrFormat("%.1f", end_ns / 1e9), " s. Settings: <code>",
                  Escape(info.settings.dump()), "</code></p>");

  // Results table.
  absl::StrAppend(&html,
                  "<h2>Checkers</h2><table><tr><th>checker</th><th>verdict</th>"
                  "<th>summary</th><th>details</th></tr>");
  for (const CheckResult& r : results) {
    absl::StrAppend(&html, "<tr><td>", Escape(r.checker), "</td><td class=\"",
                    VerdictName(r.verdict), "\">", VerdictName(r.verdict), "</td><td>",
                    Escape(r.summary), "</td><td><pre>", Escape(r.details.dump(1)),
                    "</pre></td></tr>");
  }
  absl::StrAppend(&html, "</table>");

  // Timeline: one row per process.
  std::map<int, int> row_of;
  for (const Operation& op : history) row_of.emplace(op.process, 0);
  int rows = 0;
  for (auto& [p, r] : row_of) r = rows++;
  const int shown_rows = std::min<int>(rows, kTimelineRowsMax);
  const int height = 30 + shown_rows * kRowPx + 20;
  absl::StrAppend(&html,
                  "<h2>Timeline</h2><p>One row per process (a thread becomes a new "
                  "process after an indeterminate operation). Green ok, red fail, yellow "
                  "info; shaded: nemesis faults.");
  if (rows > shown_rows) absl::StrAppend(&html, " Showing ", shown_rows, " of ", rows, " rows.");
  absl::StrAppend(&html, "</p><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", kWidthPx,
                  "\" height=\"", height, "\" style=\"border:1px solid #ddd\">");
  for (const NemesisInterval& n : nemesis) {
    const double x0 = x(n.start_ns), x1 = std::max(x(n.end_ns), x0 + 2);
    absl::StrAppend(
        &html,
        absl::StrFormat("<rect x=\"%.1f\" y=\"0\" width=\"%.1f\" height=\"%d\" "
                        "fill=\"%s\" opacity=\"0.25\"><title>",
                        x0, x1 - x0, height, n.error.empty() ? "#88f" : "#f88"),
        Escape(n.fault + ": " + n.detail + (n.error.empty() ? "" : " ERROR " + n.error)),
        "</title></rect>", absl::StrFormat("<text x=\"%.1f\" y=\"12\" font-size=\"10\">", x0 + 2),
        Escape(n.fault), "</text>");
  }
  for (int s = 0; s <= end_ns / 1'000'000'000; s += std::max<int>(1, end_ns / 1e9 / 10)) {
    const double xs = x(static_cast<int64_t>(s) * 1'000'000'000);
    absl::StrAppend(&html,
                    absl::StrFormat("<line x1=\"%.1f\" y1=\"20\" x2=\"%.1f\" y2=\"%d\" "
                                    "stroke=\"#eee\"/><text x=\"%.1f\" y=\"%d\" font-size=\"10\">"
                                    "%ds</text>",
                                    xs, xs, height - 15, xs, height - 3, s));
  }
  size_t drawn = 0;
  for (const Operation& op : history) {
    const int row = row_of[op.process];
    if (row >= shown_rows || drawn >= kTimelineOpsMax) continue;
    drawn++;
    const double x0 = x(op.start_ns), x1 = std::max(x(op.end_ns), x0 + 1);
    absl::StrAppend(&html,
                    absl::StrFormat("<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" "
                                    "fill=\"%s\"><title>",
                                    x0, 24 + row * kRowPx, x1 - x0, kRowPx - 2, Color(op.type)),
                    Escape(absl::StrCat(op.process, ": ", Describe(op))), "</title></rect>");
  }
  for (const auto& [p, r] : row_of) {
    if (r >= shown_rows) break;
    absl::StrAppend(&html, absl::StrFormat("<text x=\"2\" y=\"%d\" font-size=\"7\">p%d</text>",
                                           24 + r * kRowPx + 6, p));
  }
  absl::StrAppend(&html, "</svg>");

  // Latency over time, log scale from 0.1 ms to 10 s.
  const int lat_height = 300;
  auto y = [&](int64_t ns) {
    double ms = std::max(ns / 1e6, 0.1);
    double f = (std::log10(ms) + 1) / 5;  // 0.1 ms .. 10 s
    return 10 + (lat_height - 30) * (1 - std::clamp(f, 0.0, 1.0));
  };
  absl::StrAppend(&html, "<h2>Latency</h2><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"",
                  kWidthPx, "\" height=\"", lat_height, "\" style=\"border:1px solid #ddd\">");
  for (const NemesisInterval& n : nemesis) {
    const double x0 = x(n.start_ns), x1 = std::max(x(n.end_ns), x0 + 2);
    absl::StrAppend(&html, absl::StrFormat("<rect x=\"%.1f\" y=\"0\" width=\"%.1f\" height=\"%d\" "
                                           "fill=\"#88f\" opacity=\"0.2\"/>",
                                           x0, x1 - x0, lat_height));
  }
  for (int64_t ms : {1, 10, 100, 1000, 10000}) {
    const double yy = y(ms * 1'000'000);
    absl::StrAppend(&html, absl::StrFormat("<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" "
                                           "stroke=\"#eee\"/><text x=\"2\" y=\"%.1f\" "
                                           "font-size=\"10\">%d ms</text>",
                                           kLeftPx, yy, kWidthPx, yy, yy + 3, ms));
  }
  const size_t step = std::max<size_t>(1, history.size() / kLatencyPointsMax);
  for (size_t i = 0; i < history.size(); i += step) {
    const Operation& op = history[i];
    absl::StrAppend(&html,
                    absl::StrFormat("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"1.5\" fill=\"%s\"/>",
                                    x(op.end_ns), y(op.end_ns - op.start_ns), Color(op.type)));
  }
  absl::StrAppend(&html, "</svg>");
  if (step > 1) absl::StrAppend(&html, "<p>Every ", step, "th operation shown.</p>");

  // Nemesis table.
  absl::StrAppend(&html,
                  "<h2>Nemesis</h2><table><tr><th>start</th><th>end</th><th>fault</th>"
                  "<th>detail</th><th>error</th></tr>");
  for (const NemesisInterval& n : nemesis) {
    absl::StrAppend(
        &html,
        absl::StrFormat("<tr><td>%.1f s</td><td>%.1f s</td><td>", n.start_ns / 1e9, n.end_ns / 1e9),
        Escape(n.fault), "</td><td>", Escape(n.detail), "</td><td>", Escape(n.error), "</td></tr>");
  }
  absl::StrAppend(&html, "</table></body></html>\n");
  return WriteFile(path, html);
}

}  // namespace ganglion::jepsen
