#include "orchestrator/workloads/revision.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "orchestrator/types/validation.h"
#include "orchestrator/workloads/objects.h"

namespace ganglion::orchestrator::workloads {

namespace {

// Past this the revision-history annotation drops its oldest entries.
constexpr size_t kRevisionHistoryChars = 2000;

// Typed clients (kubectl decodes into Go structs and encodes back) add nulls
// and empty objects or lists where a field is unset ("creationTimestamp":
// null, "resources": {}); they mean the same as an absent field, so they must
// not make two templates differ nor change a template's hash.
Json Canonical(const Json& v) {
  if (v.is_object()) {
    Json out = Json::object();
    for (auto& [key, value] : v.items()) {
      Json c = Canonical(value);
      if (c.is_null() || (c.is_object() && c.empty()) || (c.is_array() && c.empty())) continue;
      out[key] = std::move(c);
    }
    return out;
  }
  if (v.is_array()) {
    Json out = Json::array();
    for (const Json& e : v) out.push_back(Canonical(e));
    return out;
  }
  return v;
}

Json WithoutHashLabel(Json t) {
  if (!t.is_object()) return t;
  auto meta = t.find("metadata");
  if (meta == t.end() || !meta->is_object()) return t;
  auto labels = meta->find("labels");
  if (labels == meta->end() || !labels->is_object()) return t;
  labels->erase(kPodTemplateHashLabel);
  if (labels->empty()) meta->erase("labels");
  return t;
}

Json& Annotations(Json& o) {
  Json& meta = o["metadata"];
  if (!meta.contains("annotations") || !meta["annotations"].is_object()) {
    meta["annotations"] = Json::object();
  }
  return meta["annotations"];
}

}  // namespace

std::string SafeEncode(std::string_view s) {
  static constexpr char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
  constexpr size_t kSize = sizeof(kAlphabet) - 1;
  std::string out;
  out.reserve(s.size());
  for (char c : s) out.push_back(kAlphabet[static_cast<unsigned char>(c) % kSize]);
  return out;
}

std::string PodTemplateHash(const Json& pod_template, std::optional<int64_t> collision_count) {
  constexpr uint32_t kOffsetBasis = 2166136261u;
  constexpr uint32_t kPrime = 16777619u;
  uint32_t hash = kOffsetBasis;
  auto write = [&hash](std::string_view bytes) {
    for (unsigned char b : bytes) {
      hash ^= b;
      hash *= kPrime;
    }
  };
  // nlohmann's JSON keeps object keys sorted: dump() of the canonical
  // template is a stable byte form.
  write(Canonical(pod_template).dump());
  if (collision_count) {
    // The count as a 32-bit little-endian integer in an 8-byte buffer.
    const uint32_t n = static_cast<uint32_t>(*collision_count);
    char bytes[8] = {};
    for (int i = 0; i < 4; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    write(std::string_view(bytes, sizeof(bytes)));
  }
  return SafeEncode(absl::StrCat(hash));
}

bool TemplatesEqualIgnoringHash(const Json& a, const Json& b) {
  return Canonical(WithoutHashLabel(a)) == Canonical(WithoutHashLabel(b));
}

int64_t RevisionOf(const Json& object) {
  int64_t n = 0;
  if (!absl::SimpleAtoi(AnnotationOf(object, kRevisionAnnotation), &n) || n < 0) return 0;
  return n;
}

bool IsControllerAnnotation(const std::string& key) {
  return key == "kubectl.kubernetes.io/last-applied-configuration" || key == kRevisionAnnotation ||
         key == kRevisionHistoryAnnotation || key == kDesiredReplicasAnnotation ||
         key == kMaxReplicasAnnotation || key == "deprecated.deployment.rollback.to";
}

bool SetReplicasAnnotations(Json& rs, int64_t desired, int64_t max) {
  bool changed = false;
  Json& a = Annotations(rs);
  for (auto [key, value] : {std::pair<const char*, int64_t>{kDesiredReplicasAnnotation, desired},
                            {kMaxReplicasAnnotation, max}}) {
    const std::string text = absl::StrCat(value);
    if (StringAt(a, key) != text) {
      a[key] = text;
      changed = true;
    }
  }
  return changed;
}

bool SetNewReplicaSetAnnotations(const Json& deployment, Json& rs, int64_t new_revision,
                                 bool creating, int64_t max_surge) {
  bool changed = false;
  Json& a = Annotations(rs);
  if (const Json* from = Find(deployment, {"metadata", "annotations"}); from && from->is_object()) {
    for (auto& [key, value] : from->items()) {
      if (IsControllerAnnotation(key) || (a.contains(key) && a[key] == value)) continue;
      a[key] = value;
      changed = true;
    }
  }
  const std::string old_text = StringAt(a, kRevisionAnnotation);
  int64_t old_revision = 0;
  if (!old_text.empty() && !absl::SimpleAtoi(old_text, &old_revision)) {
    return changed;  // not ours to renumber
  }
  if (old_revision < new_revision) {
    a[kRevisionAnnotation] = absl::StrCat(new_revision);
    changed = true;
    if (!old_text.empty()) {
      // A replica set brought back (a rollback) keeps the numbers it had.
      std::string history = StringAt(a, kRevisionHistoryAnnotation);
      history = history.empty() ? old_text : absl::StrCat(history, ",", old_text);
      while (history.size() > kRevisionHistoryChars && history.find(',') != std::string::npos) {
        history.erase(0, history.find(',') + 1);
      }
      a[kRevisionHistoryAnnotation] = history;
    }
  }
  if (creating) {
    const int64_t replicas = SpecReplicas(deployment);
    changed = SetReplicasAnnotations(rs, replicas, replicas + max_surge) || changed;
  }
  return changed;
}

}  // namespace ganglion::orchestrator::workloads
