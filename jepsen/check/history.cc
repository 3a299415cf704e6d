#include "jepsen/check/history.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace ganglion::jepsen {

const char* OpTypeName(OpType t) {
  switch (t) {
    case OpType::kOk:
      return "ok";
    case OpType::kFail:
      return "fail";
    case OpType::kInfo:
      return "info";
  }
  return "?";
}

std::string FormatOperation(const Operation& op) {
  nlohmann::json j = {{"index", op.index}, {"process", op.process},   {"type", OpTypeName(op.type)},
                      {"f", op.f},         {"start_ns", op.start_ns}, {"end_ns", op.end_ns}};
  if (!op.key.empty()) j["key"] = op.key;
  if (op.value) j["value"] = *op.value;
  if (op.value2) j["value2"] = *op.value2;
  if (!op.txn.empty()) {
    nlohmann::json txn = nlohmann::json::array();
    for (const MicroOp& m : op.txn) {
      if (m.kind == MicroOp::kAppend) {
        txn.push_back({"append", m.key, m.value});
      } else if (m.read) {
        txn.push_back({"r", m.key, *m.read});
      } else {
        txn.push_back({"r", m.key, nullptr});
      }
    }
    j["txn"] = txn;
  }
  if (!op.error.empty()) j["error"] = op.error;
  return j.dump();
}

absl::StatusOr<std::vector<Operation>> ParseHistory(const std::string& jsonl) {
  std::vector<Operation> ops;
  int line_no = 0;
  for (const auto& line : absl::StrSplit(jsonl, '\n', absl::SkipWhitespace())) {
    line_no++;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat("history line ", line_no, ": not JSON"));
    }
    Operation op;
    op.index = j.value("index", int64_t{0});
    op.process = j.value("process", 0);
    const std::string type = j.value("type", "");
    if (type == "ok") {
      op.type = OpType::kOk;
    } else if (type == "fail") {
      op.type = OpType::kFail;
    } else if (type == "info") {
      op.type = OpType::kInfo;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("history line ", line_no, ": bad type \"", type, "\""));
    }
    op.f = j.value("f", "");
    op.key = j.value("key", "");
    if (j.contains("value") && j["value"].is_number_integer()) op.value = j["value"].get<int64_t>();
    if (j.contains("value2") && j["value2"].is_number_integer()) {
      op.value2 = j["value2"].get<int64_t>();
    }
    if (j.contains("txn")) {
      for (const auto& m : j["txn"]) {
        if (!m.is_array() || m.size() != 3) {
          return absl::InvalidArgumentError(absl::StrCat("history line ", line_no, ": bad txn"));
        }
        MicroOp micro;
        micro.key = m[1].get<std::string>();
        if (m[0] == "append") {
          micro.kind = MicroOp::kAppend;
          micro.value = m[2].get<int64_t>();
        } else {
          micro.kind = MicroOp::kRead;
          if (!m[2].is_null()) micro.read = m[2].get<std::vector<int64_t>>();
        }
        op.txn.push_back(std::move(micro));
      }
    }
    op.start_ns = j.value("start_ns", int64_t{0});
    op.end_ns = j.value("end_ns", int64_t{0});
    op.error = j.value("error", "");
    ops.push_back(std::move(op));
  }
  return ops;
}

}  // namespace ganglion::jepsen
