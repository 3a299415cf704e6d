#include "orchestrator/api/selectors.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "orchestrator/types/validation.h"

namespace ganglion::orchestrator {

namespace {

// Splits at commas outside parentheses.
std::vector<std::string> SplitTopLevel(absl::string_view text) {
  std::vector<std::string> parts;
  std::string cur;
  int depth = 0;
  for (char c : text) {
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (c == ',' && depth == 0) {
      parts.push_back(cur);
      cur.clear();
      continue;
    }
    cur.push_back(c);
  }
  parts.push_back(cur);
  return parts;
}

absl::Status BadSelector(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("unable to parse requirement: ", why, ": \"", text, "\""));
}

}  // namespace

absl::StatusOr<LabelSelector> LabelSelector::Parse(absl::string_view text) {
  LabelSelector s;
  if (absl::StripAsciiWhitespace(text).empty()) return s;
  for (std::string part : SplitTopLevel(text)) {
    absl::string_view p = absl::StripAsciiWhitespace(part);
    if (p.empty()) return BadSelector(text, "found ',', expected: identifier");
    Requirement r;
    size_t pos;
    if (p.front() == '!') {
      r.key = std::string(absl::StripAsciiWhitespace(p.substr(1)));
      r.op = Op::kDoesNotExist;
    } else if ((pos = p.find("!=")) != absl::string_view::npos) {
      r.key = std::string(absl::StripAsciiWhitespace(p.substr(0, pos)));
      r.op = Op::kNotEquals;
      r.values = {std::string(absl::StripAsciiWhitespace(p.substr(pos + 2)))};
    } else if ((pos = p.find("==")) != absl::string_view::npos) {
      r.key = std::string(absl::StripAsciiWhitespace(p.substr(0, pos)));
      r.op = Op::kEquals;
      r.values = {std::string(absl::StripAsciiWhitespace(p.substr(pos + 2)))};
    } else if ((pos = p.find('=')) != absl::string_view::npos) {
      r.key = std::string(absl::StripAsciiWhitespace(p.substr(0, pos)));
      r.op = Op::kEquals;
      r.values = {std::string(absl::StripAsciiWhitespace(p.substr(pos + 1)))};
    } else if ((pos = p.find('(')) != absl::string_view::npos) {
      if (p.back() != ')') return BadSelector(text, "found '(', expected: ')'");
      std::vector<std::string> words =
          absl::StrSplit(p.substr(0, pos), ' ', absl::SkipWhitespace());
      if (words.size() != 2 || (words[1] != "in" && words[1] != "notin")) {
        return BadSelector(text, "expected: in, notin");
      }
      r.key = words[0];
      r.op = words[1] == "in" ? Op::kIn : Op::kNotIn;
      for (absl::string_view v :
           absl::StrSplit(p.substr(pos + 1, p.size() - pos - 2), ',', absl::SkipWhitespace())) {
        r.values.push_back(std::string(absl::StripAsciiWhitespace(v)));
      }
    } else {
      r.key = std::string(p);
      r.op = Op::kExists;
    }
    if (!IsQualifiedName(r.key)) {
      return absl::InvalidArgumentError(
          absl::StrCat("unable to parse requirement: invalid label key \"", r.key, "\""));
    }
    for (const std::string& v : r.values) {
      if (!IsLabelValue(v)) {
        return absl::InvalidArgumentError(
            absl::StrCat("unable to parse requirement: invalid label value: \"", v, "\""));
      }
    }
    s.requirements_.push_back(std::move(r));
  }
  return s;
}

absl::StatusOr<LabelSelector> LabelSelector::FromJson(const Json& selector) {
  LabelSelector s;
  if (!selector.is_object()) return s;
  if (const Json* ml = Find(selector, {"matchLabels"}); ml && ml->is_object()) {
    for (auto& [k, v] : ml->items()) {
      if (!v.is_string()) return absl::InvalidArgumentError("matchLabels values must be strings");
      s.requirements_.push_back({k, Op::kEquals, {v.get<std::string>()}});
    }
  }
  if (const Json* me = Find(selector, {"matchExpressions"}); me && me->is_array()) {
    for (const Json& e : *me) {
      Requirement r;
      r.key = StringAt(e, "key");
      const std::string op = StringAt(e, "operator");
      if (op == "In")
        r.op = Op::kIn;
      else if (op == "NotIn")
        r.op = Op::kNotIn;
      else if (op == "Exists")
        r.op = Op::kExists;
      else if (op == "DoesNotExist")
        r.op = Op::kDoesNotExist;
      else
        return absl::InvalidArgumentError(absl::StrCat("invalid operator \"", op, "\""));
      for (const Json& v : e.value("values", Json::array())) {
        if (v.is_string()) r.values.push_back(v.get<std::string>());
      }
      s.requirements_.push_back(std::move(r));
    }
  }
  return s;
}

bool LabelSelector::Matches(const Json* labels) const {
  for (const Requirement& r : requirements_) {
    const Json* v = nullptr;
    if (labels != nullptr && labels->is_object()) {
      auto it = labels->find(r.key);
      if (it != labels->end() && it->is_string()) v = &*it;
    }
    const bool has = v != nullptr;
    const std::string value = has ? v->get<std::string>() : "";
    const bool in_values =
        has && std::find(r.values.begin(), r.values.end(), value) != r.values.end();
    switch (r.op) {
      case Op::kEquals:
      case Op::kIn:
        if (!in_values) return false;
        break;
      case Op::kNotEquals:
      case Op::kNotIn:
        if (in_values) return false;
        break;
      case Op::kExists:
        if (!has) return false;
        break;
      case Op::kDoesNotExist:
        if (has) return false;
        break;
    }
  }
  return true;
}

absl::StatusOr<FieldSelector> FieldSelector::Parse(absl::string_view text,
                                                   const ResourceType& type) {
  FieldSelector s;
  if (absl::StripAsciiWhitespace(text).empty()) return s;
  // Values may escape ',' '=' '!' and '\' with a backslash.
  std::vector<std::string> parts(1);
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) {
      parts.back().push_back('\\');
      parts.back().push_back(text[++i]);
    } else if (text[i] == ',') {
      parts.emplace_back();
    } else {
      parts.back().push_back(text[i]);
    }
  }
  for (const std::string& part : parts) {
    Requirement r;
    size_t pos, len;
    if ((pos = part.find("!=")) != std::string::npos) {
      r.equals = false;
      len = 2;
    } else if ((pos = part.find("==")) != std::string::npos) {
      r.equals = true;
      len = 2;
    } else if ((pos = part.find('=')) != std::string::npos) {
      r.equals = true;
      len = 1;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid selector: '", text, "'; can't understand '", part, "'"));
    }
    r.field = std::string(absl::StripAsciiWhitespace(part.substr(0, pos)));
    std::string raw = std::string(absl::StripAsciiWhitespace(part.substr(pos + len)));
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '\\' && i + 1 < raw.size()) ++i;
      r.value.push_back(raw[i]);
    }
    if (!SelectableFieldValue(type, Json::object(), std::string_view(r.field)).has_value()) {
      return absl::InvalidArgumentError(absl::StrCat("field label not supported: ", r.field));
    }
    s.requirements_.push_back(std::move(r));
  }
  return s;
}

bool FieldSelector::Matches(const ResourceType& type, const Json& object) const {
  for (const Requirement& r : requirements_) {
    const std::string v =
        SelectableFieldValue(type, object, std::string_view(r.field)).value_or("");
    if ((v == r.value) != r.equals) return false;
  }
  return true;
}

std::string FieldSelector::Pinned(absl::string_view field) const {
  for (const Requirement& r : requirements_) {
    if (r.field == field && r.equals) return r.value;
  }
  return "";
}

}  // namespace ganglion::orchestrator
