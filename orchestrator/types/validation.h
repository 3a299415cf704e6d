// Validation and defaulting helpers shared by the per-group type tables:
// Kubernetes' name rules (DNS-1123 labels and subdomains, label keys and
// values), object metadata, and the pod template every workload embeds.
// Pure functions; they must never throw on malformed input (a wrong JSON type
// is a FieldError, not an exception).
#pragma once

#include <string>
#include <string_view>

#include "orchestrator/types/registry.h"

namespace ganglion::orchestrator {

bool IsDns1123Label(std::string_view s);      // [a-z0-9]([-a-z0-9]*[a-z0-9])?, <= 63
bool IsDns1123Subdomain(std::string_view s);  // dot-separated labels, <= 253
bool IsQualifiedName(std::string_view s);     // label key: [prefix/]name
bool IsLabelValue(std::string_view s);

// Metadata every object has: name (subdomain, or label when `name_is_label`),
// labels, annotations. Adds to `errors`.
void ValidateObjectMeta(const Json& object, bool namespaced, bool name_is_label,
                        FieldErrors& errors);
// A pod spec at `path` ("spec" or "spec.template.spec").
void ValidatePodSpec(const Json& spec, const std::string& path, FieldErrors& errors);
void DefaultPodSpec(Json& spec);
// A workload's selector and template: selector required, non-empty, and
// matching the template's labels.
void ValidateSelectorAndTemplate(const Json& spec, FieldErrors& errors);
// Reads obj[path...] if every step exists and is an object; else null.
const Json* Find(const Json& obj, std::initializer_list<std::string_view> path);
// obj[key] as a string, or "" when missing or not a string.
std::string StringAt(const Json& obj, std::string_view key);
int64_t IntAt(const Json& obj, std::string_view key, int64_t fallback = 0);

inline void Required(FieldErrors& e, const std::string& field) {
  e.push_back({"FieldValueRequired", field, "Required value"});
}
inline void Invalid(FieldErrors& e, const std::string& field, const Json& value,
                    const std::string& detail) {
  e.push_back({"FieldValueInvalid", field, "Invalid value: " + value.dump() + ": " + detail});
}
inline void NotSupported(FieldErrors& e, const std::string& field, const Json& value,
                         const std::string& supported) {
  e.push_back({"FieldValueNotSupported", field,
               "Unsupported value: " + value.dump() + ": supported values: " + supported});
}

}  // namespace ganglion::orchestrator
