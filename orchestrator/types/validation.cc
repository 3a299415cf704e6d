#include "orchestrator/types/validation.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ganglion::orchestrator {

namespace {

constexpr size_t kDns1123LabelBytesMax = 63;
constexpr size_t kDns1123SubdomainBytesMax = 253;
constexpr size_t kLabelValueBytesMax = 63;
// Kubernetes caps the total size of an object's annotations.
constexpr size_t kAnnotationsBytesMax = 256 * 1024;

bool IsAlnumLower(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
bool IsAlnum(char c) {
  return IsAlnumLower(c) || (c >= 'A' && c <= 'Z');
}

// [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?, at most 63 bytes.
bool IsQualifiedNamePart(std::string_view s) {
  if (s.empty() || s.size() > kLabelValueBytesMax) return false;
  if (!IsAlnum(s.front()) || !IsAlnum(s.back())) return false;
  for (char c : s) {
    if (!IsAlnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

void ValidateStringMap(const Json& obj, const char* key, const std::string& path, bool labels,
                       FieldErrors& errors) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return;
  if (!it->is_object()) {
    Invalid(errors, path, *it, "must be a map of strings");
    return;
  }
  size_t total_bytes = 0;
  for (auto& [k, v] : it->items()) {
    if (!IsQualifiedName(k)) {
      Invalid(errors, path, k,
              "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
              "start and end with an alphanumeric character");
    }
    if (!v.is_string()) {
      Invalid(errors, absl::StrCat(path, "[", k, "]"), v, "must be a string");
      continue;
    }
    total_bytes += k.size() + v.get_ref<const std::string&>().size();
    if (labels && !IsLabelValue(v.get_ref<const std::string&>())) {
      Invalid(errors, absl::StrCat(path), v,
              "a valid label must be an empty string or consist of alphanumeric characters, "
              "'-', '_' or '.', and must start and end with an alphanumeric character");
    }
  }
  if (!labels && total_bytes > kAnnotationsBytesMax) {
    errors.push_back(
        {"FieldValueTooLong", path,
         absl::StrCat("Too long: must have at most ", kAnnotationsBytesMax, " bytes")});
  }
}

}  // namespace

bool IsDns1123Label(std::string_view s) {
  if (s.empty() || s.size() > kDns1123LabelBytesMax) return false;
  if (!IsAlnumLower(s.front()) || !IsAlnumLower(s.back())) return false;
  for (char c : s) {
    if (!IsAlnumLower(c) && c != '-') return false;
  }
  return true;
}

bool IsDns1123Subdomain(std::string_view s) {
  if (s.empty() || s.size() > kDns1123SubdomainBytesMax) return false;
  for (absl::string_view part : absl::StrSplit(absl::string_view(s.data(), s.size()), '.')) {
    if (part.empty() || !IsAlnumLower(part.front()) || !IsAlnumLower(part.back())) return false;
    for (char c : part) {
      if (!IsAlnumLower(c) && c != '-') return false;
    }
  }
  return true;
}

bool IsQualifiedName(std::string_view s) {
  size_t slash = s.find('/');
  if (slash == std::string_view::npos) return IsQualifiedNamePart(s);
  std::string_view prefix = s.substr(0, slash);
  return IsDns1123Subdomain(prefix) && IsQualifiedNamePart(s.substr(slash + 1));
}

bool IsLabelValue(std::string_view s) {
  return s.empty() || IsQualifiedNamePart(s);
}

const Json* Find(const Json& obj, std::initializer_list<std::string_view> path) {
  const Json* cur = &obj;
  for (std::string_view step : path) {
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(std::string(step));
    if (it == cur->end()) return nullptr;
    cur = &*it;
  }
  return cur;
}

std::string StringAt(const Json& obj, std::string_view key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(std::string(key));
  if (it == obj.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

int64_t IntAt(const Json& obj, std::string_view key, int64_t fallback) {
  if (!obj.is_object()) return fallback;
  auto it = obj.find(std::string(key));
  if (it == obj.end() || !it->is_number_integer()) return fallback;
  return it->get<int64_t>();
}

void ValidateObjectMeta(const Json& object, bool namespaced, bool name_is_label,
                        FieldErrors& errors) {
  const Json* meta = Find(object, {"metadata"});
  if (meta == nullptr || !meta->is_object()) {
    Required(errors, "metadata");
    return;
  }
  const std::string name = StringAt(*meta, "name");
  if (name.empty()) {
    errors.push_back({"FieldValueRequired", "metadata.name",
                      "Required value: name or "
                      "generateName is required"});
  } else if (name_is_label ? !IsDns1123Label(name) : !IsDns1123Subdomain(name)) {
    Invalid(errors, "metadata.name", name,
            name_is_label
                ? "a lowercase RFC 1123 label must consist of lower case alphanumeric "
                  "characters or '-', and must start and end with an alphanumeric character "
                  "(e.g. 'my-name',  or '123-abc', regex used for validation is "
                  "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
                : "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                  "characters, '-' or '.', and must start and end with an alphanumeric "
                  "character (e.g. 'example.com', regex used for validation is "
                  "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')");
  }
  if (namespaced && StringAt(*meta, "namespace").empty()) Required(errors, "metadata.namespace");
  ValidateStringMap(*meta, "labels", "metadata.labels", true, errors);
  ValidateStringMap(*meta, "annotations", "metadata.annotations", false, errors);
}

void DefaultPodSpec(Json& spec) {
  if (!spec.is_object()) return;
  if (!spec.contains("restartPolicy")) spec["restartPolicy"] = "Always";
  if (!spec.contains("terminationGracePeriodSeconds")) spec["terminationGracePeriodSeconds"] = 30;
  if (!spec.contains("dnsPolicy")) spec["dnsPolicy"] = "ClusterFirst";
  if (!spec.contains("schedulerName")) spec["schedulerName"] = "default-scheduler";
  if (!spec.contains("securityContext")) spec["securityContext"] = Json::object();
  for (const char* list : {"containers", "initContainers"}) {
    auto it = spec.find(list);
    if (it == spec.end() || !it->is_array()) continue;
    for (Json& c : *it) {
      if (!c.is_object()) continue;
      if (!c.contains("imagePullPolicy")) {
        const std::string image = StringAt(c, "image");
        const size_t colon = image.rfind(':');
        const bool untagged_or_latest =
            image.find('@') == std::string::npos &&
            (colon == std::string::npos || image.find('/', colon) != std::string::npos ||
             image.substr(colon + 1) == "latest");
        c["imagePullPolicy"] = untagged_or_latest ? "Always" : "IfNotPresent";
      }
      if (!c.contains("terminationMessagePath"))
        c["terminationMessagePath"] = "/dev/termination-log";
      if (!c.contains("terminationMessagePolicy")) c["terminationMessagePolicy"] = "File";
      if (!c.contains("resources")) c["resources"] = Json::object();
      if (auto ports = c.find("ports"); ports != c.end() && ports->is_array()) {
        for (Json& p : *ports) {
          if (p.is_object() && !p.contains("protocol")) p["protocol"] = "TCP";
        }
      }
    }
  }
}

void ValidatePodSpec(const Json& spec, const std::string& path, FieldErrors& errors) {
  if (!spec.is_object()) {
    Required(errors, path);
    return;
  }
  auto containers = spec.find("containers");
  if (containers == spec.end() || !containers->is_array() || containers->empty()) {
    Required(errors, path + ".containers");
  } else {
    std::set<std::string> names;
    for (size_t i = 0; i < containers->size(); ++i) {
      const Json& c = (*containers)[i];
      const std::string at = absl::StrCat(path, ".containers[", i, "]");
      const std::string name = StringAt(c, "name");
      if (name.empty()) {
        Required(errors, at + ".name");
      } else if (!IsDns1123Label(name)) {
        Invalid(errors, at + ".name", name,
                "a lowercase RFC 1123 label must consist of lower case alphanumeric "
                "characters or '-', and must start and end with an alphanumeric character");
      } else if (!names.insert(name).second) {
        errors.push_back(
            {"FieldValueDuplicate", at + ".name", "Duplicate value: \"" + name + "\""});
      }
      if (StringAt(c, "image").empty()) Required(errors, at + ".image");
      if (auto ports = c.find("ports"); ports != c.end() && ports->is_array()) {
        for (size_t j = 0; j < ports->size(); ++j) {
          const int64_t port = IntAt((*ports)[j], "containerPort", -1);
          if (port < 1 || port > 65535) {
            Invalid(errors, absl::StrCat(at, ".ports[", j, "].containerPort"),
                    (*ports)[j].value("containerPort", Json()),
                    "must be between 1 and 65535, inclusive");
          }
        }
      }
    }
  }
  const std::string restart = StringAt(spec, "restartPolicy");
  if (restart != "Always" && restart != "OnFailure" && restart != "Never") {
    NotSupported(errors, path + ".restartPolicy", spec.value("restartPolicy", Json()),
                 "\"Always\", \"OnFailure\", \"Never\"");
  }
  if (IntAt(spec, "terminationGracePeriodSeconds", 0) < 0) {
    Invalid(errors, path + ".terminationGracePeriodSeconds", spec["terminationGracePeriodSeconds"],
            "must be greater than or equal to 0");
  }
}

void ValidateSelectorAndTemplate(const Json& spec, FieldErrors& errors) {
  const Json* selector = Find(spec, {"selector"});
  const Json* match_labels = selector ? Find(*selector, {"matchLabels"}) : nullptr;
  const Json* match_expressions = selector ? Find(*selector, {"matchExpressions"}) : nullptr;
  const bool empty =
      (match_labels == nullptr || !match_labels->is_object() || match_labels->empty()) &&
      (match_expressions == nullptr || !match_expressions->is_array() ||
       match_expressions->empty());
  if (selector == nullptr) {
    Required(errors, "spec.selector");
  } else if (empty) {
    Invalid(errors, "spec.selector", *selector, "empty selector is invalid for deployment");
  }
  const Json* labels = Find(spec, {"template", "metadata", "labels"});
  if (match_labels != nullptr && match_labels->is_object()) {
    for (auto& [k, v] : match_labels->items()) {
      if (labels == nullptr || !labels->is_object() || !labels->contains(k) || (*labels)[k] != v) {
        Invalid(errors, "spec.template.metadata.labels", labels ? *labels : Json::object(),
                "`selector` does not match template `labels`");
        break;
      }
    }
  }
  const Json* pod_spec = Find(spec, {"template", "spec"});
  if (pod_spec == nullptr) {
    Required(errors, "spec.template.spec");
  } else {
    ValidatePodSpec(*pod_spec, "spec.template.spec", errors);
  }
}

}  // namespace ganglion::orchestrator
