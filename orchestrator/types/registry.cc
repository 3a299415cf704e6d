#include "orchestrator/types/registry.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "orchestrator/types/validation.h"

namespace ganglion::orchestrator {

bool ResourceType::HasSubresource(std::string_view name) const {
  return std::find(subresources.begin(), subresources.end(), name) != subresources.end();
}

ResourceType MakeType(std::string group, std::string version, std::string kind, std::string plural,
                      std::string singular, bool namespaced, std::vector<std::string> short_names,
                      std::vector<std::string> categories) {
  ResourceType t;
  t.group = std::move(group);
  t.version = std::move(version);
  t.kind = std::move(kind);
  t.plural = std::move(plural);
  t.singular = std::move(singular);
  t.namespaced = namespaced;
  t.short_names = std::move(short_names);
  t.categories = std::move(categories);
  return t;
}

const std::vector<ResourceType>& AllResourceTypes() {
  static const std::vector<ResourceType>* const types = [] {
    auto* all = new std::vector<ResourceType>(CoreTypes());
    for (auto& t : AppsTypes()) all->push_back(std::move(t));
    for (auto& t : CoordinationTypes()) all->push_back(std::move(t));
    return all;
  }();
  return *types;
}

const ResourceType* FindResourceType(std::string_view group, std::string_view version,
                                     std::string_view plural) {
  for (const ResourceType& t : AllResourceTypes()) {
    if (t.group == group && t.version == version && t.plural == plural) return &t;
  }
  return nullptr;
}

std::vector<std::pair<std::string, std::string>> ServedGroupVersions() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const ResourceType& t : AllResourceTypes()) {
    std::pair<std::string, std::string> gv{t.group, t.version};
    if (std::find(out.begin(), out.end(), gv) == out.end()) out.push_back(gv);
  }
  return out;
}

std::optional<std::string> SelectableFieldValue(const ResourceType& type, const Json& object,
                                                std::string_view field) {
  const bool allowed = field == "metadata.name" ||
                       (field == "metadata.namespace" && type.namespaced) ||
                       std::find(type.selectable_fields.begin(), type.selectable_fields.end(),
                                 field) != type.selectable_fields.end();
  if (!allowed) return std::nullopt;
  const Json* cur = &object;
  const std::string path(field);
  for (absl::string_view step : absl::StrSplit(path, '.')) {
    if (!cur->is_object()) return std::string();
    auto it = cur->find(std::string(step));
    if (it == cur->end()) return std::string();
    cur = &*it;
  }
  if (cur->is_string()) return cur->get<std::string>();
  if (cur->is_null()) return std::string();
  if (cur->is_boolean()) return cur->get<bool>() ? "true" : "false";
  return cur->dump();
}

std::string HumanDuration(absl::Duration d) {
  if (d < absl::ZeroDuration()) d = absl::ZeroDuration();
  const int64_t seconds = absl::ToInt64Seconds(d);
  const int64_t minutes = seconds / 60;
  const int64_t hours = minutes / 60;
  const int64_t days = hours / 24;
  if (seconds < 120) return absl::StrCat(seconds, "s");
  if (minutes < 10) {
    return seconds % 60 == 0 ? absl::StrCat(minutes, "m")
                             : absl::StrCat(minutes, "m", seconds % 60, "s");
  }
  if (minutes < 180) return absl::StrCat(minutes, "m");
  if (hours < 8) {
    return minutes % 60 == 0 ? absl::StrCat(hours, "h")
                             : absl::StrCat(hours, "h", minutes % 60, "m");
  }
  if (hours < 48) return absl::StrCat(hours, "h");
  if (hours < 24 * 8) {
    return hours % 24 == 0 ? absl::StrCat(days, "d") : absl::StrCat(days, "d", hours % 24, "h");
  }
  if (days < 365 * 2) return absl::StrCat(days, "d");
  if (days < 365 * 8) {
    return days % 365 == 0 ? absl::StrCat(days / 365, "y")
                           : absl::StrCat(days / 365, "y", days % 365, "d");
  }
  return absl::StrCat(days / 365, "y");
}

std::string AgeOf(const Json& object, absl::Time now) {
  const Json* ts = Find(object, {"metadata", "creationTimestamp"});
  if (ts == nullptr || !ts->is_string()) return "<unknown>";
  absl::Time created;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, ts->get<std::string>(), &created, &err)) {
    return "<unknown>";
  }
  return HumanDuration(now - created);
}

Json ParseStoredObject(std::string_view value, int64_t mod_revision) {
  Json o = Json::parse(value, nullptr, false);
  if (!o.is_object()) o = Json::object();
  o["metadata"]["resourceVersion"] = std::to_string(mod_revision);
  return o;
}

}  // namespace ganglion::orchestrator
